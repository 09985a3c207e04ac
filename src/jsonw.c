/* jsonw.c - JSON writer helpers. */
#include "json.h"

#include <math.h>

void eplb_json_write_string(FILE *f, const char *s)
{
    fputc('"', f);
    for (const unsigned char *p = (const unsigned char *)(s ? s : ""); *p; p++) {
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

void eplb_json_write_number(FILE *f, double x)
{
    if (!isfinite(x))
        fputs("null", f);
    else if (x == (double)(long long)x && fabs(x) < 1e15)
        fprintf(f, "%lld", (long long)x);
    else
        fprintf(f, "%.17g", x);
}

void eplb_json_write_i32_array(FILE *f, const int32_t *a, size_t n)
{
    fputc('[', f);
    for (size_t i = 0; i < n; i++)
        fprintf(f, i ? ",%d" : "%d", (int)a[i]);
    fputc(']', f);
}
