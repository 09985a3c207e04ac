/* jsonw.c - JSON writer helpers. */
#include "json.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

/* Length of the well-formed UTF-8 sequence at p (lead byte >= 0x80), or
 * minus the length of its longest valid prefix (at least 1 byte), which is
 * then replaced by one U+FFFD ("maximal subpart" substitution, Unicode
 * 15.0 section 3.9, Table 3-7 of well-formed byte sequences: no overlong
 * forms, no surrogates D800..DFFF, nothing above U+10FFFF). */
static int utf8_seq(const unsigned char *p)
{
    unsigned char b = p[0], lo = 0x80, hi = 0xBF;
    int need;
    if (b >= 0xC2 && b <= 0xDF)
        need = 1;
    else if (b >= 0xE0 && b <= 0xEF)
        need = 2;
    else if (b >= 0xF0 && b <= 0xF4)
        need = 3;
    else
        return -1; /* 80..C1 (continuation or overlong lead), F5..FF */
    if (b == 0xE0)
        lo = 0xA0;
    else if (b == 0xED)
        hi = 0x9F;
    else if (b == 0xF0)
        lo = 0x90;
    else if (b == 0xF4)
        hi = 0x8F;
    for (int i = 1; i <= need; i++) {
        if (p[i] < lo || p[i] > hi) /* the terminating NUL stops here too */
            return -i;
        lo = 0x80;
        hi = 0xBF;
    }
    return need + 1;
}

void eplb_json_write_string(FILE *f, const char *s)
{
    fputc('"', f);
    for (const unsigned char *p = (const unsigned char *)(s ? s : ""); *p; p++) {
        if (*p >= 0x80) {
            /* valid UTF-8 is copied, anything else becomes U+FFFD: the
             * output is always valid JSON (RFC 8259 section 8.1) */
            int n = utf8_seq(p);
            if (n > 0)
                fwrite(p, 1, (size_t)n, f);
            else
                fputs("\\ufffd", f);
            p += (n > 0 ? n : -n) - 1;
            continue;
        }
        switch (*p) {
        case '"': fputs("\\\"", f); break;
        case '\\': fputs("\\\\", f); break;
        case '\n': fputs("\\n", f); break;
        case '\r': fputs("\\r", f); break;
        case '\t': fputs("\\t", f); break;
        default:
            if (*p < 0x20)
                fprintf(f, "\\u%04x", *p);
            else
                fputc(*p, f);
        }
    }
    fputc('"', f);
}

void eplb_json_format_real(char buf[EPLB_REAL_CHARS], double x)
{
    /* 17 significant digits always read back (IEEE 754-2008 s. 5.12.2);
     * fewer often do: 0.9 rather than 0.90000000000000002 */
    for (int p = 15; p < 17; p++) {
        snprintf(buf, EPLB_REAL_CHARS, "%.*g", p, x);
        if (strtod(buf, NULL) == x)
            return;
    }
    snprintf(buf, EPLB_REAL_CHARS, "%.17g", x);
}

void eplb_json_write_number(FILE *f, double x)
{
    char buf[EPLB_REAL_CHARS];
    if (!isfinite(x))
        fputs("null", f);
    else if (fabs(x) <= 9007199254740992.0 && x == (double)(long long)x)
        fprintf(f, "%lld", (long long)x); /* whole numbers to 2^53: counts, bytes */
    else {
        eplb_json_format_real(buf, x);
        fputs(buf, f);
    }
}

void eplb_json_write_i32_array(FILE *f, const int32_t *a, size_t n)
{
    fputc('[', f);
    for (size_t i = 0; i < n; i++)
        fprintf(f, i ? ",%d" : "%d", (int)a[i]);
    fputc(']', f);
}
