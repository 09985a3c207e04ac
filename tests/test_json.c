/* test_json.c - the JSON reader and writer (src/json.c): nested documents,
 * matrices, errors naming the source and byte offset, invalid UTF-8 on
 * output, and files that are not regular files. */
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <unistd.h>

#include "helpers.h"
#include "json.h"

Test(json, parses_nested_document)
{
    const char *txt = "{\"logical_count\": [[1, 2.5, -3e2], [4, 5, 6]], \"s\": \"a\\\"b\","
                      " \"t\": true, \"n\": null}";
    eplb_json_t *v = NULL;
    eplb_assert_ok(eplb_json_parse(&v, txt, strlen(txt), "doc"));
    const eplb_json_t *lc = eplb_json_get(v, "logical_count");
    cr_assert_not_null(lc);
    float *m = NULL;
    int r, c;
    eplb_assert_ok(eplb_json_matrix_f32(&m, &r, &c, lc, "doc"));
    cr_assert_eq(r, 2);
    cr_assert_eq(c, 3);
    cr_assert_float_eq(m[1], 2.5f, 0);
    cr_assert_float_eq(m[2], -300.0f, 0);
    cr_assert_str_eq(eplb_json_get(v, "s")->str, "a\"b");
    cr_assert_eq(eplb_json_get(v, "t")->num, 1);
    cr_assert_eq(eplb_json_get(v, "n")->type, EPLB_JSON_NULL);
    free(m);
    eplb_json_free(v);
}

Test(json, errors_name_source_and_offset)
{
    eplb_json_t *v = NULL;
    /* ragged rows are fine for the parser but not for a matrix */
    eplb_assert_ok(eplb_json_parse(&v, "[[1,2],[3]]", 11, "w.json"));
    float *m;
    int r, c;
    eplb_assert_fails(eplb_json_matrix_f32(&m, &r, &c, v, "w.json"), EPLB_ERR_FORMAT, "ragged");
    eplb_json_free(v);
    /* FLT_MAX as numpy prints it and as %.9g does are floats (a review
     * found them refused: the check compared with FLT_MAX before rounding);
     * a value that rounds to inf is not */
    const char *fm = "[[3.4028235e+38, 3.40282347e+38, -3.4028235e38]]";
    eplb_assert_ok(eplb_json_parse(&v, fm, strlen(fm), "w.json"));
    eplb_assert_ok(eplb_json_matrix_f32(&m, &r, &c, v, "w.json"));
    cr_assert(m[0] == FLT_MAX && m[1] == FLT_MAX && m[2] == -FLT_MAX);
    free(m);
    eplb_json_free(v);
    eplb_assert_ok(eplb_json_parse(&v, "[[3.5e38]]", 10, "w.json"));
    eplb_assert_fails(eplb_json_matrix_f32(&m, &r, &c, v, "w.json"), EPLB_ERR_FORMAT,
                      "beyond the range of a float");
    eplb_json_free(v);
    /* offsets from 0: the end of "[1, 2" is byte 5; the "x" of "[1] x" is
     * byte 4 */
    eplb_assert_fails(eplb_json_parse(&v, "[1, 2", 5, "w.json"), EPLB_ERR_FORMAT,
                      "w.json: invalid JSON at byte 5: ");
    eplb_assert_fails(eplb_json_parse(&v, "[1] x", 5, "w.json"), EPLB_ERR_FORMAT,
                      "w.json: invalid JSON at byte 4: trailing");
    eplb_assert_fails(eplb_json_parse_file(&v, "/nonexistent/w.json"), EPLB_ERR_IO,
                      "/nonexistent/w.json");
}

/* Strings as RFC 8259 (and Python's json, which writes the files) has
 * them: the escapes \" \\ \/ \b \f \n \r \t \uXXXX only ("\q" read as "q",
 * and a backslash before a NUL byte put a NUL into the string, which ended
 * it there), and no raw control character (a raw byte 0x01 was kept).
 * Found by a differential fuzz against Python's json. */
Test(json, strings_refuse_bad_escapes_and_control_characters)
{
    static const struct {
        const char *text;
        size_t len;
        const char *why; /* NULL: accepted */
        const char *want;
    } c[] = {
        {"[\"a\\\"\\\\\\/\\b\\f\\n\\r\\t\\u0041\"]", 0, NULL, "a\"\\/\b\f\n\r\tA"},
        {"[\"\\q\"]", 0, "byte 3: a bad escape", NULL},
        {"[\"\\x41\"]", 0, "byte 3: a bad escape", NULL},
        {"[\"\\U0041\"]", 0, "byte 3: a bad escape", NULL},
        {"[\"\\\0x\"]", 7, "byte 3: a NUL byte in a string", NULL},
        {"[\"a\001\"]", 0, "byte 3: a control character in a string", NULL},
        {"[\"a\tb\"]", 0, "byte 3: a control character in a string", NULL},
        {"{\"k\037\": 1}", 0, "byte 3: a control character in a string", NULL},
        {"[\"a\0\"]", 5, "byte 3: a NUL byte in a string", NULL},
    };
    for (size_t i = 0; i < sizeof c / sizeof c[0]; i++) {
        const size_t len = c[i].len ? c[i].len : strlen(c[i].text);
        eplb_json_t *v = NULL;
        if (!c[i].why) {
            eplb_assert_ok(eplb_json_parse(&v, c[i].text, len, "s.json"));
            cr_assert_str_eq(eplb_json_at(v, 0)->str, c[i].want, "case %zu", i);
            eplb_json_free(v);
        } else {
            eplb_assert_fails(eplb_json_parse(&v, c[i].text, len, "s.json"), EPLB_ERR_FORMAT,
                              c[i].why);
            cr_assert_null(v);
        }
    }
}

/* JSON text of one string through eplb_json_write_string (malloc'd). */
static char *json_string_of(const char *s)
{
    char *buf = NULL;
    size_t n = 0;
    FILE *f = open_memstream(&buf, &n);
    cr_assert_not_null(f);
    eplb_json_write_string(f, s);
    fclose(f);
    return buf;
}

/* Found: invalid UTF-8 (from trace attributes) was written unescaped, so
 * `info --json` could print invalid JSON.  Valid sequences are copied;
 * each maximal invalid subpart becomes one U+FFFD (Unicode 15.0 s. 3.9). */
Test(json, writer_replaces_invalid_utf8)
{
    static const struct {
        const char *in, *want;
    } cases[] = {
        {"plain \"q\" \\ \n", "\"plain \\\"q\\\" \\\\ \\n\""},
        /* valid: e-acute (2 bytes), euro sign (3), U+1F600 (4), U+10FFFF */
        {"\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80 \xf4\x8f\xbf\xbf",
         "\"\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80 \xf4\x8f\xbf\xbf\""},
        {"a\xff" "b", "\"a\\ufffdb\""},                      /* never valid */
        {"\xe2\x82" "c", "\"\\ufffdc\""},                    /* truncated: one */
        {"x\xe2\x82", "\"x\\ufffd\""},                       /* truncated at end */
        {"\xc0\xaf", "\"\\ufffd\\ufffd\""},                  /* overlong '/' */
        {"\xed\xa0\x80", "\"\\ufffd\\ufffd\\ufffd\""},       /* surrogate D800 */
        {"\xf4\x90\x80\x80", "\"\\ufffd\\ufffd\\ufffd\\ufffd\""}, /* > U+10FFFF */
        {"\x80", "\"\\ufffd\""},                             /* lone continuation */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *got = json_string_of(cases[i].in);
        cr_assert_str_eq(got, cases[i].want, "case %zu", i);
        /* and it reads back (the reader accepts any bytes >= 0x20) */
        eplb_json_t *v = NULL;
        eplb_assert_ok(eplb_json_parse(&v, got, strlen(got), "out"));
        cr_assert_eq(v->type, EPLB_JSON_STRING);
        eplb_json_free(v);
        free(got);
    }
}

/* Found: eplb_json_parse_file read /dev/zero until memory ran out, and a
 * directory gave only "read error". */
Test(json, parse_file_refuses_non_files)
{
    eplb_json_t *v = NULL;
    const char *d = eplb_test_tmpdir();
    eplb_assert_fails(eplb_json_parse_file(&v, d), EPLB_ERR_IO, "is a directory");
    cr_assert(strstr(eplb_error_last(), d) != NULL, "%s", eplb_error_last());
    if (access("/dev/zero", R_OK) == 0)
        eplb_assert_fails(eplb_json_parse_file(&v, "/dev/zero"), EPLB_ERR_IO,
                          "/dev/zero: not a regular file");
    /* a sparse file one byte over 1 GiB: refused from its size, unread */
    char big[4096];
    snprintf(big, sizeof big, "%s/big.json", d);
    FILE *f = fopen(big, "w");
    cr_assert_not_null(f);
    cr_assert_eq(ftruncate(fileno(f), ((off_t)1 << 30) + 1), 0);
    fclose(f);
    eplb_assert_fails(eplb_json_parse_file(&v, big), EPLB_ERR_FORMAT, "larger than");
    cr_assert(strstr(eplb_error_last(), "big.json") != NULL, "%s", eplb_error_last());
    /* a small file still parses */
    eplb_test_write_text(big, "[1, 2]");
    eplb_assert_ok(eplb_json_parse_file(&v, big));
    cr_assert_eq(v->n, 2);
    eplb_json_free(v);
    unlink(big);
    rmdir(d);
}

/* Reals are written in the fewest of 15-17 significant digits that read
 * back: config.json said "threshold": 0.90000000000000002 for 0.9.  The
 * expected strings are Python's repr() of the same doubles (the shortest
 * round trip).  Not always the shortest: for some doubles (2^-1017) 17
 * digits come out where 16 would read back; still exact. */
Test(json, reals_shortest_that_read_back)
{
    static const struct {
        double x;
        const char *want;
    } cases[] = {
        {0.9, "0.9"},
        {0.1 + 0.2, "0.30000000000000004"},
        {1.0 / 3.0, "0.3333333333333333"},
        {0.95, "0.95"},
        {4.5e11, "450000000000"},
        {1e-320, "9.99988867182683e-321"}, /* subnormal: Python's '%.15g' */
        {-2.5e-7, "-2.5e-07"},
    };
    char buf[EPLB_REAL_CHARS];
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        eplb_json_format_real(buf, cases[i].x);
        cr_assert_str_eq(buf, cases[i].want, "case %zu", i);
    }
    /* any finite bit pattern reads back exactly */
    uint64_t st = 7;
    for (int i = 0; i < 200000; i++) {
        uint64_t bits = eplb_test_rng_next(&st);
        double x;
        memcpy(&x, &bits, sizeof x);
        if (!isfinite(x))
            continue;
        eplb_json_format_real(buf, x);
        cr_assert(strtod(buf, NULL) == x, "%s does not read back", buf);
    }
    /* the writer: integral values as integers, others as above, null for
     * what JSON has no literal for */
    static const struct {
        double x;
        const char *want;
    } w[] = {{3, "3"},
             {0.9, "0.9"},
             {NAN, "null"},
             {-INFINITY, "null"},
             {1.979e15, "1979000000000000"},               /* whole numbers up to 2^53 */
             {9007199254740992.0, "9007199254740992"},     /* 2^53 */
             {1.8014398509481984e16, "18014398509481984"}, /* 2^54: Python %.17g */
             {-0.0, "0"}};
    for (size_t i = 0; i < sizeof w / sizeof w[0]; i++) {
        char *txt = NULL;
        size_t len = 0;
        FILE *f = open_memstream(&txt, &len);
        cr_assert(f);
        eplb_json_write_number(f, w[i].x);
        fclose(f);
        cr_assert_str_eq(txt, w[i].want, "writer case %zu", i);
        free(txt);
    }
}

/* An array of numbers only is packed (doubles); the first item of another
 * type unpacks it, wherever it comes; the accessors read both forms, and
 * the matrix readers name the first item that is not a number. */
Test(json, packs_arrays_of_numbers)
{
    static const struct {
        const char *text;
        int packed;
        double want[3]; /* NAN: item is no number */
    } c[] = {
        {"[1, 2.5, -3e2]", 1, {1, 2.5, -300}},  {"[1, \"a\", 2]", 0, {1, NAN, 2}},
        {"[\"a\", 1, 2]", 0, {NAN, 1, 2}},      {"[1, 2, null]", 0, {1, 2, NAN}},
        {"[1, true, 3]", 0, {1, NAN, 3}},       {"[[1], 2, 3]", 0, {NAN, 2, 3}},
        {"[1, 2, {\"k\": 3}]", 0, {1, 2, NAN}}, {"[NaN, Infinity, 0]", 1, {NAN, INFINITY, 0}},
    };
    for (size_t i = 0; i < sizeof c / sizeof c[0]; i++) {
        eplb_json_t *v = NULL;
        eplb_assert_ok(eplb_json_parse(&v, c[i].text, strlen(c[i].text), "p.json"));
        cr_assert_eq(v->type, EPLB_JSON_ARRAY, "%s", c[i].text);
        cr_assert_eq(v->n, 3u, "%s", c[i].text);
        cr_assert_eq(v->packed, c[i].packed, "%s", c[i].text);
        for (size_t k = 0; k < 3; k++) {
            double x = -7;
            const int is = eplb_json_number_at(v, k, &x);
            const int at_number =
                !c[i].packed && eplb_json_at(v, k) && eplb_json_at(v, k)->type == EPLB_JSON_NUMBER;
            if (isnan(c[i].want[k]) && !(c[i].packed && k == 0)) {
                cr_assert(!is && x == -7, "%s item %zu", c[i].text, k);
                cr_assert(eplb_json_at(v, k) && !at_number, "%s item %zu", c[i].text, k);
            } else {
                cr_assert(is, "%s item %zu", c[i].text, k);
                cr_assert(isnan(c[i].want[k]) ? isnan(x) : x == c[i].want[k], "%s item %zu",
                          c[i].text, k);
                cr_assert(c[i].packed ? !eplb_json_at(v, k) : at_number, "%s item %zu", c[i].text,
                          k);
            }
        }
        cr_assert_null(eplb_json_at(v, 3));
        eplb_json_free(v);
    }
    /* matrices: packed rows, and a row unpacked by a string names it */
    eplb_json_t *v = NULL;
    float *m = NULL;
    int r = 0, k = 0;
    const char *ok = "[[1, 2], [3, 4]]", *bad = "[[1, 2], [3, \"x\"]]";
    eplb_assert_ok(eplb_json_parse(&v, ok, strlen(ok), "m.json"));
    eplb_assert_ok(eplb_json_matrix_f32(&m, &r, &k, v, "m.json"));
    cr_assert(r == 2 && k == 2 && m[0] == 1 && m[1] == 2 && m[2] == 3 && m[3] == 4);
    free(m);
    eplb_json_free(v);
    eplb_assert_ok(eplb_json_parse(&v, bad, strlen(bad), "m.json"));
    eplb_assert_fails(eplb_json_matrix_f32(&m, &r, &k, v, "m.json"), EPLB_ERR_FORMAT,
                      "m.json: row 1 column 1 is not a number");
    eplb_json_free(v);
    /* a flat array is no matrix */
    eplb_assert_ok(eplb_json_parse(&v, "[1, 2]", 6, "f.json"));
    eplb_assert_fails(eplb_json_matrix_f32(&m, &r, &k, v, "f.json"), EPLB_ERR_FORMAT,
                      "f.json: row 0 is not a non-empty array");
    eplb_json_free(v);
    /* errors inside an array free what was parsed (the ASan build checks) */
    static const char *const broken[] = {"[1, 2, [3, x]]", "[1, \"abc", "[1, {\"a\": [1,",
                                         "[[1, 2], 3, {\"k\": tru}]"};
    for (size_t i = 0; i < sizeof broken / sizeof broken[0]; i++)
        cr_assert_eq(eplb_json_parse(&v, broken[i], strlen(broken[i]), "b.json"), EPLB_ERR_FORMAT,
                     "%s", broken[i]);
}

/* A value is 32 bytes (the union); a text whose values need more memory
 * than the process may take is refused with the numbers, before parsing
 * (a 420 MB file of small numbers got the process killed).
 * EPLB_MEMORY_AVAILABLE stands for the machine's memory here; each
 * Criterion test runs in its own process, so the variable stays in it. */
Test(json, refuses_what_memory_cannot_hold)
{
    cr_assert_eq(sizeof(eplb_json_t), 32);
    enum { N = 100000 }; /* [0,0,...]: 100,001 values in 200 KB */
    char *t = malloc(2 * N + 2);
    cr_assert_not_null(t);
    t[0] = '[';
    for (int i = 0; i < N; i++) {
        t[1 + 2 * i] = '0';
        t[2 + 2 * i] = i + 1 < N ? ',' : ']';
    }
    t[2 * N + 1] = '\0';
    eplb_json_t *v = NULL;
    /* 100,000 numbers packed, 8 bytes each, plus 10% and the 200 KB text:
     * 1.08 MB */
    cr_assert_eq(setenv("EPLB_MEMORY_AVAILABLE", "500000", 1), 0);
    eplb_assert_fails(eplb_json_parse(&v, t, 2 * N + 1, "w.json"), EPLB_ERR_NOMEM,
                      "w.json: reading it needs about 1.0 MiB of memory (100001 values), "
                      "more than the 488.3 KiB this process may take");
    cr_assert_null(v);
    /* the limit in its own unit, not the need's ("0.0 MiB") */
    cr_assert_eq(setenv("EPLB_MEMORY_AVAILABLE", "30000", 1), 0);
    eplb_assert_fails(eplb_json_parse(&v, t, 2 * N + 1, "w.json"), EPLB_ERR_NOMEM,
                      "w.json: reading it needs about 1.0 MiB of memory (100001 values), "
                      "more than the 29.3 KiB this process may take");
    cr_assert_eq(setenv("EPLB_MEMORY_AVAILABLE", "1100000", 1), 0);
    eplb_assert_ok(eplb_json_parse(&v, t, 2 * N + 1, "w.json"));
    eplb_json_free(v);
    v = NULL;
    cr_assert_eq(setenv("EPLB_MEMORY_AVAILABLE", "100000000", 1), 0);
    eplb_assert_ok(eplb_json_parse(&v, t, 2 * N + 1, "w.json"));
    cr_assert_eq(v->n, (size_t)N);
    cr_assert(v->packed);
    cr_assert_eq(eplb_test_num_at(v, N - 1), 0);
    eplb_json_free(v);
    /* items that are no number unpack an array: 32 bytes each, not 8
     * (200,000 nulls passed a limit of 4 MB and took 8.4 MB) */
    enum { NN = 200000 };
    char *nl = malloc(5 * NN + 2);
    cr_assert_not_null(nl);
    nl[0] = '[';
    for (int i = 0; i < NN; i++)
        memcpy(nl + 1 + 5 * i, i + 1 < NN ? "null," : "null]", 5);
    nl[5 * NN + 1] = '\0';
    cr_assert_eq(setenv("EPLB_MEMORY_AVAILABLE", "4000000", 1), 0);
    eplb_assert_fails(eplb_json_parse(&v, nl, 5 * NN + 1, "n.json"), EPLB_ERR_NOMEM,
                      "n.json: reading it needs about");
    cr_assert_eq(setenv("EPLB_MEMORY_AVAILABLE", "9000000", 1), 0);
    eplb_assert_ok(eplb_json_parse(&v, nl, 5 * NN + 1, "n.json"));
    cr_assert(!v->packed && v->n == NN);
    eplb_json_free(v);
    v = NULL;
    free(nl);
    /* a small need in bytes (it said "0.0 MiB"): [1, 2] packed 16 bytes,
     * its node 32 and the array's chunk 32, +10%, plus the 6 bytes of text */
    cr_assert_eq(setenv("EPLB_MEMORY_AVAILABLE", "50", 1), 0);
    eplb_assert_fails(eplb_json_parse(&v, "[1, 2]", 6, "k.json"), EPLB_ERR_NOMEM,
                      "k.json: reading it needs about 94 bytes of memory (3 values), more "
                      "than the 50 bytes this process may take");
    /* commas and brackets inside strings are not values */
    cr_assert_eq(setenv("EPLB_MEMORY_AVAILABLE", "350", 1), 0);
    const char *s = "[\"a,b,[c]\\\",{\", 1]";
    eplb_assert_ok(eplb_json_parse(&v, s, strlen(s), "s.json"));
    cr_assert_str_eq(v->values[0].str, "a,b,[c]\",{");
    eplb_json_free(v);
    unsetenv("EPLB_MEMORY_AVAILABLE");
    free(t);
}

/* \u escapes become UTF-8 at every length boundary (U+007F/0080,
 * 07FF/0800, FFFF and a surrogate pair to U+1F600), hex digits in either
 * case up to F, and a high surrogate followed by a \u that is not a low one
 * (U+E000, just past them) stays two characters: U+FFFD then U+E000, as
 * Python's json with errors='replace'.  Whitespace between tokens includes
 * \r (files written on Windows).  Found by mutation testing (each passed
 * the suite before): U+0080 written as one byte, 'F' not a hex digit,
 * U+E000 taken as a low surrogate, \r refused. */
Test(json, unicode_escapes_at_utf8_boundaries)
{
    static const struct {
        const char *text, *want;
    } c[] = {
        {"[\"\\u007f\"]", "\x7f"},
        {"[\"\\u0080\"]", "\xc2\x80"},
        {"[\"\\u07FF\"]", "\xdf\xbf"},
        {"[\"\\u0800\"]", "\xe0\xa0\x80"},
        {"[\"\\uFFFF\"]", "\xef\xbf\xbf"},
        {"[\"\\u00ff\\u00FF\"]", "\xc3\xbf\xc3\xbf"},
        {"[\"\\ud83d\\ude00\"]", "\xf0\x9f\x98\x80"},
        {"[\"\\ud800\\ue000\"]", "\xef\xbf\xbd\xee\x80\x80"},
        {"[\"\\udc00\"]", "\xef\xbf\xbd"},
    };
    for (size_t i = 0; i < sizeof c / sizeof c[0]; i++) {
        eplb_json_t *v = NULL;
        eplb_assert_ok(eplb_json_parse(&v, c[i].text, strlen(c[i].text), "u.json"));
        cr_assert_str_eq(eplb_json_at(v, 0)->str, c[i].want, "case %zu (%s)", i, c[i].text);
        eplb_json_free(v);
    }
    const char *crlf = "{\"a\":\r\n [1,\r\n\t2]\r\n}\r\n";
    eplb_json_t *v = NULL;
    eplb_assert_ok(eplb_json_parse(&v, crlf, strlen(crlf), "crlf.json"));
    cr_assert_eq(eplb_test_num_at(eplb_json_get(v, "a"), 1), 2);
    eplb_json_free(v);
}
