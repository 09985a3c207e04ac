/* decimal.c - decimal numbers in options and environment variables. */
#include "decimal.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>

static int is_digit(char c)
{
    return c >= '0' && c <= '9';
}

int eplb_decimal_read(int64_t *out, const char **end, const char *s)
{
    const char *p = s;
    const int neg = *p == '-';
    p += neg;
    if (!is_digit(*p)) {
        if (end)
            *end = s;
        return EINVAL;
    }
    /* accumulate the magnitude as a negative number: -2^63 fits */
    int64_t v = 0;
    int range = 0;
    for (; is_digit(*p); p++) {
        const int d = *p - '0';
        if (v < (INT64_MIN + d) / 10)
            range = 1;
        else
            v = v * 10 - d;
    }
    if (end)
        *end = p;
    if (range || (!neg && v == INT64_MIN))
        return ERANGE;
    *out = neg ? v : -v;
    return 0;
}

int eplb_decimal_parse(int64_t *out, const char *s)
{
    const char *end;
    int64_t v;
    const int rc = eplb_decimal_read(&v, &end, s);
    if (*end)
        return EINVAL; /* also "9999999999999999999x": not a number at all */
    if (rc == 0)
        *out = v;
    return rc;
}

static const char *digits(const char *p)
{
    while (is_digit(*p))
        p++;
    return p;
}

size_t eplb_decimal_real_len(const char *s)
{
    const char *p = s + (*s == '-');
    const char *q = digits(p);
    int n = (int)(q - p);
    if (*q == '.') {
        const char *f = digits(q + 1);
        n += (int)(f - q - 1);
        q = f;
    }
    if (n == 0)
        return 0;
    if (*q == 'e' || *q == 'E') {
        const char *x = q + 1;
        x += *x == '+' || *x == '-';
        const char *xe = digits(x);
        if (xe != x) /* "1e" is the number 1 followed by 'e' */
            q = xe;
    }
    return (size_t)(q - s);
}

int eplb_decimal_parse_double(double *out, const char *s)
{
    const size_t n = eplb_decimal_real_len(s);
    if (n == 0 || s[n])
        return EINVAL;
    errno = 0;
    const double v = strtod(s, NULL);
    /* ERANGE: beyond a double, or so small that it became 0 although its
     * digits are not all 0 (1e-999 read as 0 named a value not typed); a
     * denormal (1e-320) is kept */
    if (!isfinite(v) || (v == 0 && errno == ERANGE))
        return ERANGE;
    *out = v;
    return 0;
}

int64_t eplb_env_int(const char *name, int64_t lo, int64_t hi, int64_t dflt)
{
    const char *s = getenv(name);
    int64_t v;
    if (!s || eplb_decimal_parse(&v, s) != 0 || v < lo || v > hi)
        return dflt;
    return v;
}
