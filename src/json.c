/* json.c - a small recursive-descent JSON reader. */
#include "json.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "checks.h"
#include "decimal.h"

typedef struct {
    const char *s, *end, *start, *what;
    int depth;
} parser_t;

static eplb_status_t perr(parser_t *p, const char *msg)
{
    return eplb_error_set(EPLB_ERR_FORMAT, "%s: invalid JSON at byte %ld: %s",
                          p->what, (long)(p->s - p->start), msg);
}

static void skip_ws(parser_t *p)
{
    while (p->s < p->end && (*p->s == ' ' || *p->s == '\n' || *p->s == '\r' || *p->s == '\t'))
        p->s++;
}

static eplb_status_t parse_value(parser_t *p, eplb_json_t *v);
static void free_inner(eplb_json_t *v);

/* The code point of the 4 hex digits at s (of a \u escape); -1 if there
 * are fewer than 4 before end, or one is not a hex digit (strtol would
 * read "+1" or stop early). */
static long hex4(const char *s, const char *end)
{
    if (end - s < 4)
        return -1;
    long cp = 0;
    for (int i = 0; i < 4; i++) {
        char c = s[i];
        int d = c >= '0' && c <= '9'   ? c - '0'
                : c >= 'a' && c <= 'f' ? c - 'a' + 10
                : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                       : -1;
        if (d < 0)
            return -1;
        cp = cp * 16 + d;
    }
    return cp;
}

static eplb_status_t parse_string(parser_t *p, char **out)
{
    p->s++; /* opening quote */
    size_t cap = 16, n = 0;
    char *buf = malloc(cap);
    if (!buf)
        return eplb_error_set(EPLB_ERR_NOMEM, "%s: out of memory", p->what);
    while (p->s < p->end && *p->s != '"') {
        char u[4]; /* the bytes this character adds: k of them */
        int k = 1;
        u[0] = *p->s++;
        /* a NUL would end the C string the caller gets early (JSON allows
         * no raw control character in a string at all) */
        if ((unsigned char)u[0] < 0x20) { /* RFC 8259: escaped, as Python's json asks */
            free(buf);
            p->s--;
            return perr(p, u[0] ? "a control character in a string (write it as \\uXXXX)"
                                : "a NUL byte in a string");
        }
        if (u[0] == '\\') {
            if (p->s >= p->end)
                break;
            char e = *p->s++;
            switch (e) {
            case 'n': u[0] = '\n'; break;
            case 't': u[0] = '\t'; break;
            case 'r': u[0] = '\r'; break;
            case 'b': u[0] = '\b'; break;
            case 'f': u[0] = '\f'; break;
            case 'u': { /* as UTF-8 (Python's json.dump writes every
                          * non-ASCII character so, by default) */
                long cp = hex4(p->s, p->end);
                /* U+0000 too: it would end the string early */
                if (cp <= 0) {
                    free(buf);
                    return perr(p, cp ? "\\u needs 4 hex digits" : "\\u0000 (NUL) in a string");
                }
                p->s += 4;
                if (cp >= 0xd800 && cp < 0xdc00 && p->end - p->s >= 6 && p->s[0] == '\\' &&
                    p->s[1] == 'u') { /* a surrogate pair */
                    long lo = hex4(p->s + 2, p->end);
                    if (lo >= 0xdc00 && lo < 0xe000) {
                        cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
                        p->s += 6;
                    }
                }
                if (cp >= 0xd800 && cp < 0xe000)
                    cp = 0xfffd; /* a lone surrogate: U+FFFD, as Python's 'replace' */
                k = cp < 0x80 ? 1 : cp < 0x800 ? 2 : cp < 0x10000 ? 3 : 4;
                for (int q = k - 1; q > 0; q--, cp >>= 6)
                    u[q] = (char)(0x80 | (cp & 0x3f));
                u[0] = (char)(k == 1 ? cp : (k == 2 ? 0xc0 : k == 3 ? 0xe0 : 0xf0) | cp);
                break;
            }
            case '"':
            case '\\':
            case '/':
                u[0] = e;
                break;
            default: /* "\q" read as "q" and "\<NUL>" put a NUL in the
                      * string (it ended there as a C string) */
                free(buf);
                p->s--;
                return perr(p, e ? "a bad escape" : "a NUL byte in a string");
            }
        }
        if (n + (size_t)k + 1 > cap) { /* room for them and the terminator */
            char *nb = realloc(buf, cap = 2 * cap + 4);
            if (!nb) {
                free(buf);
                return eplb_error_set(EPLB_ERR_NOMEM, "%s: out of memory", p->what);
            }
            buf = nb;
        }
        memcpy(buf + n, u, (size_t)k);
        n += (size_t)k;
    }
    if (p->s >= p->end) {
        free(buf);
        return perr(p, "unterminated string");
    }
    p->s++;
    buf[n] = '\0';
    if (cap > n + 1) { /* the doubling's slack back: strings are kept */
        char *nb = realloc(buf, n + 1);
        if (nb)
            buf = nb;
    }
    *out = buf;
    return EPLB_OK;
}

static eplb_status_t push(parser_t *p, eplb_json_t *v, size_t *cap)
{
    if (v->n == *cap) {
        size_t nc = *cap ? *cap * 2 : 8;
        eplb_json_t *ni = realloc(v->values, nc * sizeof *ni);
        if (!ni)
            return eplb_error_set(EPLB_ERR_NOMEM, "%s: out of memory", p->what);
        v->values = ni;
        if (v->type == EPLB_JSON_OBJECT) {
            char **nk = realloc(v->keys, nc * sizeof *nk);
            if (!nk)
                return eplb_error_set(EPLB_ERR_NOMEM, "%s: out of memory", p->what);
            v->keys = nk;
        }
        *cap = nc;
    }
    memset(&v->values[v->n], 0, sizeof v->values[0]);
    if (v->type == EPLB_JSON_OBJECT)
        v->keys[v->n] = NULL;
    v->n++;
    return EPLB_OK;
}

static int key_cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* A key given twice in object v (just parsed, p->s past its '}') is an
 * error: eplb_json_get returned the first silently, whichever the writer
 * meant.  Sorted copies of the keys, so that an object of a million keys
 * is not a quadratic scan. */
static eplb_status_t check_keys(parser_t *p, const eplb_json_t *v)
{
    if (v->n < 2)
        return EPLB_OK;
    char **k = malloc(v->n * sizeof *k);
    if (!k)
        return eplb_error_set(EPLB_ERR_NOMEM, "%s: out of memory", p->what);
    memcpy(k, v->keys, v->n * sizeof *k);
    qsort(k, v->n, sizeof *k, key_cmp);
    eplb_status_t st = EPLB_OK;
    for (size_t i = 1; i < v->n && st == EPLB_OK; i++)
        if (!strcmp(k[i - 1], k[i])) {
            p->s--; /* at the '}' */
            st = eplb_error_set(EPLB_ERR_FORMAT,
                                "%s: invalid JSON at byte %ld: the object ending here has "
                                "the key \"%.64s\" twice",
                                p->what, (long)(p->s - p->start), k[i]);
        }
    free(k);
    return st;
}

/* Close container v (p->s at its closing character): the doubling's slack
 * back (up to half of it). */
static void trim(eplb_json_t *v, size_t cap)
{
    if (cap <= v->n)
        return;
    if (v->packed) {
        double *nn = realloc(v->nums, v->n * sizeof *nn);
        if (nn)
            v->nums = nn;
        return;
    }
    eplb_json_t *ni = realloc(v->values, v->n * sizeof *ni);
    if (ni)
        v->values = ni;
    char **nk = v->type == EPLB_JSON_OBJECT ? realloc(v->keys, v->n * sizeof *nk) : NULL;
    if (nk)
        v->keys = nk;
}

/* Item x (just parsed) onto the end of array v.  While every item is a
 * number the array stays packed (8 bytes an item, not 32); the first item
 * of another type unpacks it.  On an error x is freed (v holds what it
 * had). */
static eplb_status_t append(parser_t *p, eplb_json_t *v, size_t *cap, eplb_json_t *x)
{
    if (v->n == 0)
        v->packed = x->type == EPLB_JSON_NUMBER;
    if (v->packed && x->type != EPLB_JSON_NUMBER) { /* unpack */
        size_t nc = *cap > v->n ? *cap : v->n + 1;
        eplb_json_t *ni = calloc(nc, sizeof *ni);
        if (!ni) {
            free_inner(x);
            return eplb_error_set(EPLB_ERR_NOMEM, "%s: out of memory", p->what);
        }
        for (size_t i = 0; i < v->n; i++) {
            ni[i].type = EPLB_JSON_NUMBER;
            ni[i].num = v->nums[i];
        }
        free(v->nums);
        v->values = ni;
        v->packed = 0;
        *cap = nc;
    }
    if (v->n == *cap) {
        size_t nc = *cap ? *cap * 2 : 8;
        void *nb = v->packed ? realloc(v->nums, nc * sizeof *v->nums)
                             : realloc(v->values, nc * sizeof *v->values);
        if (!nb) {
            free_inner(x);
            return eplb_error_set(EPLB_ERR_NOMEM, "%s: out of memory", p->what);
        }
        if (v->packed)
            v->nums = nb;
        else
            v->values = nb;
        *cap = nc;
    }
    if (v->packed)
        v->nums[v->n++] = x->num;
    else
        v->values[v->n++] = *x;
    return EPLB_OK;
}

static eplb_status_t parse_container(parser_t *p, eplb_json_t *v, int obj)
{
    char close = obj ? '}' : ']';
    size_t cap = 0;
    v->type = obj ? EPLB_JSON_OBJECT : EPLB_JSON_ARRAY;
    if (++p->depth > 256)
        return perr(p, "nesting too deep");
    p->s++;
    skip_ws(p);
    if (p->s < p->end && *p->s == close) {
        p->s++;
        p->depth--;
        return EPLB_OK;
    }
    for (;;) {
        skip_ws(p);
        if (obj) {
            EPLB_CHECK(push(p, v, &cap));
            if (p->s >= p->end || *p->s != '"')
                return perr(p, "expected a key string");
            EPLB_CHECK(parse_string(p, &v->keys[v->n - 1]));
            skip_ws(p);
            if (p->s >= p->end || *p->s != ':')
                return perr(p, "expected ':'");
            p->s++;
            EPLB_CHECK(parse_value(p, &v->values[v->n - 1]));
        } else {
            eplb_json_t x = {0};
            eplb_status_t st = parse_value(p, &x);
            if (st != EPLB_OK) {
                free_inner(&x);
                return st;
            }
            EPLB_CHECK(append(p, v, &cap, &x));
        }
        skip_ws(p);
        if (p->s < p->end && *p->s == ',') {
            p->s++;
            continue;
        }
        if (p->s < p->end && *p->s == close) {
            p->s++;
            p->depth--;
            trim(v, cap);
            return obj ? check_keys(p, v) : EPLB_OK;
        }
        return perr(p, obj ? "expected ',' or '}'" : "expected ',' or ']'");
    }
}

/* 1 if the literal lit starts at s (before end). */
static int match_at(const char *s, const char *end, const char *lit)
{
    size_t n = strlen(lit);
    return (size_t)(end - s) >= n && !memcmp(s, lit, n);
}

static int match(parser_t *p, const char *lit)
{
    if (!match_at(p->s, p->end, lit))
        return 0;
    p->s += strlen(lit);
    return 1;
}

/* Length of the digits at s (before end). */
static size_t digits(const char *s, const char *end)
{
    size_t n = 0;
    while (s + n < end && s[n] >= '0' && s[n] <= '9')
        n++;
    return n;
}

/* A number as RFC 8259 spells it, -?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)?,
 * or NaN, Infinity, -Infinity (Python's json writes them; the readers
 * refuse them with the file's own words).  strtod alone took "00012",
 * "1." and "0x10" (exit 0 on an invalid file), and a number of more than
 * 63 characters was cut there (a valid "0.000...1" was refused as "expected
 * ','").  A literal beyond a double (1e400) is an error here: it is not
 * inf.  One below the smallest double (1e-400) reads as 0, as in Python. */
static eplb_status_t parse_number(parser_t *p, eplb_json_t *v)
{
    const char *s = p->s, *e = p->s;
    int neg = e < p->end && *e == '-';
    e += neg;
    v->type = EPLB_JSON_NUMBER;
    if (match_at(e, p->end, "NaN") && !neg) {
        p->s = e + 3;
        v->num = NAN;
        return EPLB_OK;
    }
    if (match_at(e, p->end, "Infinity")) {
        p->s = e + 8;
        v->num = neg ? -INFINITY : INFINITY;
        return EPLB_OK;
    }
    size_t n = digits(e, p->end);
    if (n == 0 && !neg) /* N or I not starting NaN or Infinity */
        return perr(p, "unexpected character");
    if (n == 0 || (n > 1 && *e == '0'))
        return perr(p, n ? "bad number (a leading zero)" : "bad number");
    e += n;
    if (e < p->end && *e == '.') {
        n = digits(e + 1, p->end);
        if (n == 0) {
            p->s = e + 1;
            return perr(p, "bad number (no digit after '.')");
        }
        e += 1 + n;
    }
    if (e < p->end && (*e == 'e' || *e == 'E')) {
        const char *x = e + 1;
        x += x < p->end && (*x == '+' || *x == '-');
        n = digits(x, p->end);
        if (n == 0) {
            p->s = x;
            return perr(p, "bad number (no digit in the exponent)");
        }
        e = x + n;
    }
    /* strtod needs a terminated copy (the text is not one past the number) */
    char small[64], *tmp = small;
    size_t len = (size_t)(e - s);
    if (len >= sizeof small) {
        tmp = malloc(len + 1);
        if (!tmp)
            return eplb_error_set(EPLB_ERR_NOMEM, "%s: out of memory", p->what);
    }
    memcpy(tmp, s, len);
    tmp[len] = '\0';
    v->num = strtod(tmp, NULL);
    if (tmp != small)
        free(tmp);
    if (isinf(v->num))
        return perr(p, "number beyond the range of a double");
    p->s = e;
    return EPLB_OK;
}

static eplb_status_t parse_value(parser_t *p, eplb_json_t *v)
{
    skip_ws(p);
    if (p->s >= p->end)
        return perr(p, "unexpected end of input");
    char c = *p->s;
    if (c == '{' || c == '[')
        return parse_container(p, v, c == '{');
    if (c == '"') {
        v->type = EPLB_JSON_STRING;
        return parse_string(p, &v->str);
    }
    if (match(p, "true") || match(p, "false")) {
        v->type = EPLB_JSON_BOOL;
        v->num = p->s[-1] == 'e' && p->s[-2] == 'u';
        return EPLB_OK;
    }
    if (match(p, "null")) {
        v->type = EPLB_JSON_NULL;
        return EPLB_OK;
    }
    if (c == '-' || (c >= '0' && c <= '9') || c == 'N' || c == 'I')
        return parse_number(p, v);
    return perr(p, "unexpected character");
}

/* Bytes the values of text[0..len) take once parsed.  Each item of an
 * array is 8 bytes while all of its items are numbers (packed), 32 once one
 * is not (every item a value, the numbers too); a member of an object 32
 * and its key's pointer 8; a string's buffer and a container's at least
 * 32 (the smallest malloc chunk; a string's text is in len).  An array's items are counted as it
 * closes, from the first character of each.  *vals: the values counted.
 * At least what the parser keeps, past the doubling's slack (given back
 * as each container closes). */
static double need_bytes(const char *text, size_t len, size_t *vals)
{
    enum { DEEP = 258 }; /* the parser refuses more than 256 */
    struct {
        char open;
        unsigned char mixed; /* an item that is no number: not packed */
        size_t items;
    } open[DEEP];
    int depth = 0, item_next = 0; /* the next character starts an array item */
    double need = sizeof(eplb_json_t);
    size_t n = 1;
    for (const char *c = text, *e = text + len; c < e; c++) {
        if (*c == ' ' || *c == '\n' || *c == '\r' || *c == '\t')
            continue;
        if (item_next && *c != ']' && depth > 0 && depth <= DEEP) {
            open[depth - 1].items++;
            open[depth - 1].mixed |=
                !(*c == '-' || (*c >= '0' && *c <= '9') || *c == 'N' || *c == 'I');
        }
        item_next = 0;
        if (*c == '"') {
            for (c++; c < e && *c != '"'; c++)
                c += *c == '\\';
            need += 32;
            continue;
        }
        const int in = depth > 0 && depth <= DEEP;
        if (*c == '[' || *c == '{') {
            if (depth < DEEP) {
                open[depth].open = *c;
                open[depth].mixed = 0;
                open[depth].items = 0;
            }
            depth++;
            item_next = *c == '[';
        } else if (*c == ']' || *c == '}') {
            if (in) {
                const size_t k = open[depth - 1].items;
                need +=
                    (double)k * (open[depth - 1].open == '{' ? sizeof(eplb_json_t) + sizeof(char *)
                                 : open[depth - 1].mixed     ? sizeof(eplb_json_t)
                                                             : sizeof(double));
                need += k ? 32 : 0; /* its buffer's smallest malloc chunk */
                n += k;
            }
            depth -= depth > 0;
        } else if (*c == ',') {
            item_next = in && open[depth - 1].open == '[';
        } else if (*c == ':' && in && open[depth - 1].open == '{') {
            open[depth - 1].items++;
        }
    }
    *vals = n;
    return need;
}

/* Large texts only: refused with the memory they need where that is more
 * than the process may take (a 420 MB file of small numbers needed 11 GB
 * and the machine killed the process, with no message). */
#define JSON_CHECK_MEMORY_FROM ((size_t)64 << 20)

eplb_status_t eplb_json_parse(eplb_json_t **out, const char *text, size_t len, const char *what)
{
    parser_t p = {text, text + len, text, what ? what : "(json)", 0};
    if (len >= JSON_CHECK_MEMORY_FROM || eplb_memory_override() > 0) {
        size_t vals = 0;
        const double need = need_bytes(text, len, &vals) * 1.1 + (double)len;
        const size_t avail = eplb_memory_available();
        if (avail != SIZE_MAX && need > (double)avail) {
            /* each in its own unit (a small limit printed "0.0 MiB", and
             * so did a limit far below the need: "0.0 GiB") */
            char bn[32], ba[32];
            return eplb_error_set(EPLB_ERR_NOMEM,
                                  "%s: reading it needs about %s of memory (%zu values), "
                                  "more than the %s this process may take",
                                  p.what, eplb_bytes_text(bn, need), vals,
                                  eplb_bytes_text(ba, (double)avail));
        }
    }
    eplb_json_t *v = calloc(1, sizeof *v);
    if (!v)
        return eplb_error_set(EPLB_ERR_NOMEM, "%s: out of memory", p.what);
    /* a UTF-8 byte order mark (Windows editors write one) is no part of
     * the text (RFC 8259 section 8.1 lets a reader ignore it) */
    if (match_at(p.s, p.end, "\xEF\xBB\xBF"))
        p.s += 3;
    eplb_status_t st = parse_value(&p, v);
    if (st == EPLB_OK) {
        skip_ws(&p);
        if (p.s != p.end)
            st = perr(&p, "trailing characters");
    }
    if (st != EPLB_OK) {
        eplb_json_free(v);
        return st;
    }
    *out = v;
    return EPLB_OK;
}

/* Why a path that stat() says is not a regular file is refused. */
static const char *file_kind(mode_t m)
{
    return S_ISDIR(m)    ? "a directory"
           : S_ISFIFO(m) ? "a FIFO"
           : S_ISCHR(m)  ? "a character device"
           : S_ISBLK(m)  ? "a block device"
           : S_ISSOCK(m) ? "a socket"
                         : "not a plain file";
}

eplb_status_t eplb_input_file_open(FILE **out, const char *path)
{
    struct stat sb;
    if (stat(path, &sb) != 0)
        return eplb_error_set(EPLB_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    if (!S_ISREG(sb.st_mode))
        return eplb_error_set(EPLB_ERR_IO, "%s: not a regular file (it is %s)", path,
                              file_kind(sb.st_mode));
    FILE *f = fopen(path, "rb");
    if (!f)
        return eplb_error_set(EPLB_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    *out = f;
    return EPLB_OK;
}

static eplb_status_t too_large(const char *path, size_t max_bytes)
{
    return eplb_error_set(EPLB_ERR_FORMAT, "%s: larger than %zu bytes: not read", path,
                          max_bytes);
}

/* A NUL in text[0..n) is an error naming its line (1-based). */
static eplb_status_t check_no_nul(const char *text, size_t n, const char *path)
{
    const char *z = memchr(text, '\0', n);
    if (!z)
        return EPLB_OK;
    size_t line = 1;
    for (const char *c = text; c < z; c++)
        line += *c == '\n';
    return eplb_error_set(EPLB_ERR_FORMAT, "%s: line %zu: a NUL byte (not a text file?)", path,
                          line);
}

eplb_status_t eplb_input_file_read(char **out, size_t *len, const char *path, size_t max_bytes)
{
    FILE *f = NULL;
    EPLB_CHECK(eplb_input_file_open(&f, path));
    eplb_status_t st = EPLB_OK;
    char *buf = NULL;
    size_t n = 0, cap = 65536;
    struct stat sb;
    if (fstat(fileno(f), &sb) == 0) {
        if ((uint64_t)sb.st_size > max_bytes) {
            st = too_large(path, max_bytes);
            goto out;
        }
        /* the size is a hint (the file may grow while read): room for it,
         * one byte to see the end and one for the terminator */
        if ((size_t)sb.st_size + 2 > cap)
            cap = (size_t)sb.st_size + 2;
    }
    buf = malloc(cap);
    EPLB_ALLOC_GOTO(buf, st, out);
    for (;;) {
        if (cap - n < 2) { /* never past max + 2: one byte shows it passed */
            size_t nc = cap * 2 > max_bytes + 2 ? max_bytes + 2 : cap * 2;
            char *nb = realloc(buf, nc);
            EPLB_ALLOC_GOTO(nb, st, out);
            buf = nb;
            cap = nc;
        }
        size_t r = fread(buf + n, 1, cap - n - 1, f);
        n += r;
        if (n > max_bytes) {
            st = too_large(path, max_bytes);
            goto out;
        }
        if (r == 0)
            break;
    }
    if (ferror(f)) {
        st = eplb_error_set(EPLB_ERR_IO, "%s: read error: %s", path, strerror(errno));
        goto out;
    }
    EPLB_CHECK_GOTO(check_no_nul(buf, n, path), st, out);
    buf[n] = '\0';
    *out = buf;
    *len = n;
    buf = NULL;
out:
    free(buf);
    fclose(f);
    return st;
}

/* The largest file eplb_json_parse_file reads (a file of the wrong kind
 * must not read until memory runs out). */
#define JSON_MAX_FILE_BYTES ((size_t)1 << 30)

eplb_status_t eplb_json_parse_file(eplb_json_t **out, const char *path)
{
    char *text = NULL;
    size_t n = 0;
    EPLB_CHECK(eplb_input_file_read(&text, &n, path, JSON_MAX_FILE_BYTES));
    eplb_status_t st = eplb_json_parse(out, text, n, path);
    free(text);
    return st;
}

static void free_inner(eplb_json_t *v)
{
    if (v->type == EPLB_JSON_STRING) {
        free(v->str);
        return;
    }
    if (v->type != EPLB_JSON_ARRAY && v->type != EPLB_JSON_OBJECT)
        return;
    if (v->packed) {
        free(v->nums);
        return;
    }
    for (size_t i = 0; i < v->n; i++) {
        free_inner(&v->values[i]);
        if (v->keys)
            free(v->keys[i]);
    }
    free(v->values);
    free(v->keys);
}

void eplb_json_free(eplb_json_t *v)
{
    if (!v)
        return;
    free_inner(v);
    free(v);
}

const eplb_json_t *eplb_json_get(const eplb_json_t *v, const char *key)
{
    if (!v || v->type != EPLB_JSON_OBJECT)
        return NULL;
    for (size_t i = 0; i < v->n; i++)
        if (v->keys[i] && !strcmp(v->keys[i], key))
            return &v->values[i];
    return NULL;
}

const eplb_json_t *eplb_json_at(const eplb_json_t *v, size_t i)
{
    if (!v || (v->type != EPLB_JSON_ARRAY && v->type != EPLB_JSON_OBJECT) || v->packed || i >= v->n)
        return NULL;
    return &v->values[i];
}

int eplb_json_number_at(const eplb_json_t *v, size_t i, double *x)
{
    if (!v || v->type != EPLB_JSON_ARRAY || i >= v->n)
        return 0;
    if (v->packed) {
        *x = v->nums[i];
        return 1;
    }
    if (v->values[i].type != EPLB_JSON_NUMBER)
        return 0;
    *x = v->values[i].num;
    return 1;
}

static eplb_status_t matrix_shape(int *rows, int *cols, const eplb_json_t *v, const char *what)
{
    if (!v || v->type != EPLB_JSON_ARRAY || v->n == 0)
        return eplb_error_set(EPLB_ERR_FORMAT, "%s: expected a non-empty array of rows", what);
    size_t c = 0;
    for (size_t r = 0; r < v->n; r++) {
        const eplb_json_t *row = eplb_json_at(v, r);
        if (!row || row->type != EPLB_JSON_ARRAY || row->n == 0)
            return eplb_error_set(EPLB_ERR_FORMAT, "%s: row %zu is not a non-empty array", what, r);
        if (r == 0)
            c = row->n;
        else if (row->n != c)
            return eplb_error_set(EPLB_ERR_FORMAT,
                                  "%s: ragged rows: row %zu has %zu values, row 0 has %zu",
                                  what, r, row->n, c);
        for (size_t j = 0; !row->packed && j < row->n; j++)
            if (row->values[j].type != EPLB_JSON_NUMBER)
                return eplb_error_set(EPLB_ERR_FORMAT, "%s: row %zu column %zu is not a number",
                                      what, r, j);
    }
    if (v->n > INT32_MAX || c > INT32_MAX)
        return eplb_error_set(EPLB_ERR_FORMAT, "%s: matrix too large", what);
    *rows = (int)v->n;
    *cols = (int)c;
    return EPLB_OK;
}

eplb_status_t eplb_json_matrix_f32(float **out, int *rows, int *cols, const eplb_json_t *v,
                                   const char *what)
{
    int r, c;
    EPLB_CHECK(matrix_shape(&r, &c, v, what));
    float *m = malloc((size_t)r * c * sizeof *m);
    if (!m)
        return eplb_error_set(EPLB_ERR_NOMEM, "%s: out of memory", what);
    for (int i = 0; i < r; i++)
        for (int j = 0; j < c; j++) {
            double x = 0;
            eplb_json_number_at(&v->values[i], (size_t)j, &x);
            /* 1e39 became inf as a float, and the readers then said the
             * file held "inf" (a value that rounds to FLT_MAX, as
             * 3.4028235e+38 does, is a float) */
            if (isfinite(x) && isinf((float)x)) {
                free(m);
                return eplb_error_set(EPLB_ERR_FORMAT,
                                      "%s: row %d column %d: %g is beyond the range of a "
                                      "float (3.4e38)",
                                      what, i, j, x);
            }
            m[(size_t)i * c + j] = (float)x;
        }
    *out = m;
    *rows = r;
    *cols = c;
    return EPLB_OK;
}

eplb_status_t eplb_json_matrix_i32(int32_t **out, int *rows, int *cols, const eplb_json_t *v,
                                   const char *what)
{
    int r, c;
    EPLB_CHECK(matrix_shape(&r, &c, v, what));
    int32_t *m = malloc((size_t)r * c * sizeof *m);
    if (!m)
        return eplb_error_set(EPLB_ERR_NOMEM, "%s: out of memory", what);
    for (int i = 0; i < r; i++)
        for (int j = 0; j < c; j++) {
            double x = 0;
            eplb_json_number_at(&v->values[i], (size_t)j, &x);
            if (x != floor(x) || x < INT32_MIN || x > INT32_MAX) {
                free(m);
                return eplb_error_set(EPLB_ERR_FORMAT,
                                      "%s: row %d column %d is not an integer", what, i, j);
            }
            m[(size_t)i * c + j] = (int32_t)x;
        }
    *out = m;
    *rows = r;
    *cols = c;
    return EPLB_OK;
}
