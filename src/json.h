/* json.h - a small JSON reader (DOM) and writer helpers.
 *
 * Reader: enough for weights files, SGLang count files, placements and the
 * test vectors.  Numbers are doubles.  Errors name the file (or the `what`
 * label) and the byte offset. */
#ifndef EPLB_JSON_H
#define EPLB_JSON_H

#include <stdio.h>

#include "eplb.h"

typedef enum {
    EPLB_JSON_NULL,
    EPLB_JSON_BOOL,
    EPLB_JSON_NUMBER,
    EPLB_JSON_STRING,
    EPLB_JSON_ARRAY,
    EPLB_JSON_OBJECT
} eplb_json_type_t;

/* 32 bytes a value (48 before the union).  An array whose items are all
 * numbers (at least one) is stored packed: its n doubles in `nums`, 8 bytes
 * each, and it has no `values`: a 1 GiB file of "0," holds ~540 M numbers,
 * 4.3 GB so (17 GB as values).  Read the member of the value's type only, and an
 * array's items through eplb_json_at / eplb_json_number_at, which see both
 * forms (`values` is named so, not `items`, so that no code written before
 * the packing reads a packed array as values). */
typedef struct eplb_json eplb_json_t;
struct eplb_json {
    eplb_json_type_t type;
    unsigned char packed; /* ARRAY: the items are the numbers nums[0..n) */
    union {
        double num;         /* NUMBER, BOOL (0/1) */
        char *str;          /* STRING */
        eplb_json_t *values; /* ARRAY (not packed), OBJECT: values */
        double *nums;        /* ARRAY (packed) */
    };
    size_t n;    /* ARRAY/OBJECT: number of items */
    char **keys; /* OBJECT: keys */
};

/* ---- Input files -------------------------------------------------------
 * Every reader of a named input file (JSON, the weights CSV, profiles, ESFT
 * logs) opens it through these, so that what is not a regular file is
 * refused before open(): a FIFO would block the open until a writer came
 * (forever), a device such as /dev/zero never ends, a directory reads as an
 * error.  (A file swapped between the stat() and the open() is not
 * guarded against.) */

/* *out = path opened for reading ("rb") if stat() (following links) says it
 * is a regular file; else EPLB_ERR_IO, "PATH: cannot open: REASON" or
 * "PATH: not a regular file (it is a FIFO)". */
eplb_status_t eplb_input_file_open(FILE **out, const char *path);

/* Read all of the regular file path into *out (malloc'd, NUL-terminated
 * after *len bytes).  Errors: those of eplb_input_file_open; EPLB_ERR_FORMAT
 * for more than max_bytes ("PATH: larger than N bytes", refused from the
 * size before reading) or for a NUL byte ("PATH: line N: a NUL byte"): the
 * readers scan the text as a C string, and a NUL would silently end it. */
eplb_status_t eplb_input_file_read(char **out, size_t *len, const char *path,
                                   size_t max_bytes);

/* Parse text[0..len).  `what` names the source in error messages
 * ("WHAT: invalid JSON at byte N: why").  Numbers as RFC 8259 spells them
 * (no 00012, 1., .5, +1, 0x10), plus NaN, Infinity and -Infinity as
 * Python's json writes them; a literal beyond a double (1e400) is an error,
 * one below the smallest (1e-400) reads as 0.  Strings take the escapes of
 * RFC 8259 only and no raw control character (below 0x20), as Python's
 * json; bytes of 0x80 and above are kept as they are (not checked as
 * UTF-8).  A key given twice in one object is an error; a leading UTF-8
 * byte order mark is skipped. */
eplb_status_t eplb_json_parse(eplb_json_t **out, const char *text, size_t len,
                              const char *what);
/* Read (eplb_input_file_read, at most 1 GiB) and parse a whole file. */
eplb_status_t eplb_json_parse_file(eplb_json_t **out, const char *path);
void eplb_json_free(eplb_json_t *v);

/* Member of an object (NULL if absent or v is not an object). */
const eplb_json_t *eplb_json_get(const eplb_json_t *v, const char *key);
/* Item i of an array (or the value of an object's i-th key) as a value;
 * NULL where v is no array or object, i >= n, or the array is packed (its
 * items are numbers: eplb_json_number_at). */
const eplb_json_t *eplb_json_at(const eplb_json_t *v, size_t i);
/* 1 and *x = the number, if item i of array v is a number (packed or not);
 * else 0 and *x untouched. */
int eplb_json_number_at(const eplb_json_t *v, size_t i, double *x);

/* Read a numeric matrix (array of equal-length arrays of numbers) into a
 * malloc'd row-major float buffer.  Errors (ragged rows, non-numbers, a
 * finite value beyond the range of a float) name `what` and the row. */
eplb_status_t eplb_json_matrix_f32(float **out, int *rows, int *cols,
                                   const eplb_json_t *v, const char *what);
eplb_status_t eplb_json_matrix_i32(int32_t **out, int *rows, int *cols,
                                   const eplb_json_t *v, const char *what);

/* Writer helpers. */
void eplb_json_write_string(FILE *f, const char *s);
/* A finite double in the fewest of 15, 16 or 17 significant digits (%g)
 * that read back as x with strtod. */
#define EPLB_REAL_CHARS 32
void eplb_json_format_real(char buf[EPLB_REAL_CHARS], double x);
/* Whole doubles up to 2^53 as integers, others as eplb_json_format_real,
 * NaN/Inf as null (JSON has none). */
void eplb_json_write_number(FILE *f, double x);
void eplb_json_write_i32_array(FILE *f, const int32_t *a, size_t n);

#endif
