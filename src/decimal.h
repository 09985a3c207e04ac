/* decimal.h - the one reader of decimal numbers in command-line options
 * and EPLB_* environment variables (files have their own: src/json.c, the
 * ESFT reader; the CSV weights and the profile reader check their numbers'
 * syntax with eplb_decimal_real_len).
 *
 * strtoll and strtod, used directly before, skip leading white space and
 * take a '+', strtod also hexadecimal ("0x10"), and strtoll clamps past
 * int64: " 7", "+7" and "0x1p3" were accepted by some options and refused
 * by others.  Here a number is what a user types: an optional '-', digits,
 * and for a real also a fraction and an exponent. */
#ifndef EPLB_DECIMAL_H
#define EPLB_DECIMAL_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Reads the integer at the start of s: an optional '-' and one or more
 * ASCII digits, nothing before them.  Returns 0 with *out set, ERANGE
 * where the digits are beyond int64 (*out unchanged), EINVAL where s does
 * not start so; *end (if end is not NULL) points past the digits read,
 * or at s for EINVAL. */
int eplb_decimal_read(int64_t *out, const char **end, const char *s);

/* eplb_decimal_read of the whole of s: EINVAL also for anything after the
 * digits. */
int eplb_decimal_parse(int64_t *out, const char *s);

/* The whole of s as a finite double: an optional '-', digits with an
 * optional '.' (at least one digit on one side), an optional exponent
 * (e or E, a sign, digits).  Returns 0 with *out set, ERANGE beyond a
 * double or below its smallest denormal (1e-999, which strtod makes 0)
 * (*out unchanged), EINVAL otherwise (also "inf", "nan"). */
int eplb_decimal_parse_double(double *out, const char *s);

/* The length of the decimal real at the start of s in the syntax of
 * eplb_decimal_parse_double (0 where s does not start with one): for the
 * number readers of data files (CSV weights, profiles), which then check
 * that strtod/strtof read exactly these bytes (strtod takes "0x10" as 16,
 * "+5", " 5", "inf"). */
size_t eplb_decimal_real_len(const char *s);

/* The environment variable name as an integer in [lo, hi]; dflt where it
 * is unset, empty, not such an integer or outside the range (timing and
 * diagnostic switches: a wrong value gives the default, as documented in
 * docs/environment.md). */
int64_t eplb_env_int(const char *name, int64_t lo, int64_t hi, int64_t dflt);

#ifdef __cplusplus
}
#endif
#endif /* EPLB_DECIMAL_H */
