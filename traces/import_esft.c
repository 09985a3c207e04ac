/* import_esft.c - DeepSeek ESFT routing logs to an eplb trace (format in
 * import.h and ../shared/data/README.md). */
#include "import.h"

#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "checks.h"
#include "json.h"
#include "trace.h"

#define ESFT_PREFIX "expert_weights_"

/* The longest line read.  A line is one sample: per token 6 ids (at most
 * 3 bytes with the tab) and 6 weights (7 bytes at the logs' 4 decimals,
 * about 25 at full double precision), 60 to 170 bytes a token; the longest
 * line of the published logs is 34 KB (567 tokens).  4 MiB holds a sample
 * of 24K tokens even at full precision (ESFT trains on samples of at most
 * 4096), and stops a wrong file (one long line, endless bytes) from
 * growing the line until memory runs out. */
#define ESFT_MAX_LINE ((size_t)4 << 20)

/* Growable buffers of one parsed line. */
typedef struct {
    int32_t *ids;
    float *w;
    size_t cap;
} line_buf_t;

static eplb_status_t line_buf_reserve(line_buf_t *b, size_t n)
{
    if (n <= b->cap)
        return EPLB_OK;
    size_t cap = b->cap ? b->cap : 1024;
    while (cap < n)
        cap *= 2;
    int32_t *ids = realloc(b->ids, cap * sizeof *ids);
    if (!ids)
        return eplb_error_set(EPLB_ERR_NOMEM, "ESFT import: out of memory");
    b->ids = ids;
    float *w = realloc(b->w, cap * sizeof *w);
    if (!w)
        return eplb_error_set(EPLB_ERR_NOMEM, "ESFT import: out of memory");
    b->w = w;
    b->cap = cap;
    return EPLB_OK;
}

/* Count tab-separated fields of s[0..n) (n > 0). */
static size_t count_fields(const char *s, size_t n)
{
    size_t f = 1;
    for (size_t i = 0; i < n; i++)
        f += s[i] == '\t';
    return f;
}

/* Length of the weight at s, [DIGITS][.DIGITS][(e|E)[+-]DIGITS] with a
 * digit before the exponent (the logs write "0.1234", Python "1e-05");
 * 0 if s does not start with one.  strtod alone took " 0.1", "0x0.1" and
 * "0.e031" (a corrupt 0.0031 read as 0). */
static size_t weight_len(const char *s)
{
    size_t n = strspn(s, "0123456789");
    if (n == 0 && s[0] != '.')
        return 0;
    if (s[n] == '.') {
        size_t f = strspn(s + n + 1, "0123456789");
        if (f == 0)
            return 0;
        n += 1 + f;
    }
    if (s[n] == 'e' || s[n] == 'E') {
        size_t k = n + 1 + (s[n + 1] == '+' || s[n + 1] == '-');
        size_t x = strspn(s + k, "0123456789");
        if (x == 0)
            return 0;
        n = k + x;
    }
    return n;
}

/* Parse one line (no newline) into b: *ntok tokens of K ids and weights.
 * Errors name file:line. */
static eplb_status_t parse_line(line_buf_t *b, int64_t *ntok, char *line,
                                size_t len, const char *file, int64_t lineno,
                                int E, int K)
{
    char *sep = strstr(line, "\t\t");
    if (!sep)
        return eplb_error_set(EPLB_ERR_FORMAT,
                              "%s:%lld: no two-tab separator between ids and weights",
                              file, (long long)lineno);
    size_t nl = (size_t)(sep - line);
    char *wp = sep + 2;
    size_t nw = len - nl - 2;
    if (nl == 0 || nw == 0)
        return eplb_error_set(EPLB_ERR_FORMAT, "%s:%lld: empty %s list", file,
                              (long long)lineno, nl == 0 ? "id" : "weight");
    size_t fi = count_fields(line, nl), fw = count_fields(wp, nw);
    if (fi != fw || fi % (size_t)K != 0)
        return eplb_error_set(EPLB_ERR_FORMAT,
                              "%s:%lld: %zu ids and %zu weights (need equal counts, "
                              "%d per token)",
                              file, (long long)lineno, fi, fw, K);
    EPLB_CHECK(line_buf_reserve(b, fi));
    *sep = '\0';
    char *p = line;
    for (size_t i = 0; i < fi; i++) {
        char *end;
        errno = 0;
        /* digits only: strtol also skipped spaces and took a sign (a
         * corrupt " 7" or "+7" read as 7) */
        long v = *p >= '0' && *p <= '9' ? strtol(p, &end, 10) : (end = p, 0);
        if (end == p || (*end != '\t' && *end != '\0') || errno)
            return eplb_error_set(EPLB_ERR_FORMAT,
                                  "%s:%lld: id %zu: not an expert id (decimal digits, 0..%d)",
                                  file, (long long)lineno, i + 1, E - 1);
        if (v < 0 || v >= E)
            return eplb_error_set(EPLB_ERR_FORMAT,
                                  "%s:%lld: id %zu = %ld: outside 0..%d", file,
                                  (long long)lineno, i + 1, v, E - 1);
        b->ids[i] = (int32_t)v;
        p = end + (*end == '\t');
    }
    p = wp;
    for (size_t i = 0; i < fw; i++) {
        char *end;
        size_t n = weight_len(p);
        double v = n ? strtod(p, &end) : (end = p, 0);
        if (end != p + n || (*end != '\t' && *end != '\0'))
            return eplb_error_set(EPLB_ERR_FORMAT, "%s:%lld: weight %zu: not a number",
                                  file, (long long)lineno, i + 1);
        if (!(v >= 0.0 && v <= 1.0))
            return eplb_error_set(EPLB_ERR_FORMAT,
                                  "%s:%lld: weight %zu = %g: outside [0, 1]", file,
                                  (long long)lineno, i + 1, v);
        b->w[i] = (float)v;
        p = end + (*end == '\t');
    }
    int64_t n = (int64_t)(fi / (size_t)K);
    for (int64_t t = 0; t < n; t++) {
        int32_t *id = b->ids + t * K;
        float *w = b->w + t * K;
        for (int i = 0; i < K; i++)
            for (int j = 0; j < i; j++)
                if (id[i] == id[j])
                    return eplb_error_set(EPLB_ERR_FORMAT,
                                          "%s:%lld: token %lld: expert %d chosen twice",
                                          file, (long long)lineno, (long long)t, id[i]);
        /* Descending weight, equal weights by ascending id. */
        for (int i = 1; i < K; i++) {
            int32_t ci = id[i];
            float cw = w[i];
            int j = i;
            while (j > 0 && (w[j - 1] < cw || (w[j - 1] == cw && id[j - 1] > ci))) {
                id[j] = id[j - 1];
                w[j] = w[j - 1];
                j--;
            }
            id[j] = ci;
            w[j] = cw;
        }
    }
    *ntok = n;
    return EPLB_OK;
}

/* Check that dir holds exactly the layer files 1..L. */
static eplb_status_t check_dir(const char *dir, int L)
{
    struct stat sb;
    if (stat(dir, &sb) != 0 || !S_ISDIR(sb.st_mode))
        return eplb_error_set(EPLB_ERR_IO, "%s: not a directory (%s)", dir,
                              stat(dir, &sb) != 0 ? strerror(errno) : "a file");
    DIR *d = opendir(dir);
    if (!d)
        return eplb_error_set(EPLB_ERR_IO, "%s: cannot open directory: %s", dir,
                              strerror(errno));
    int seen[EPLB_ESFT_LAYERS + 1] = {0};
    int nfiles = 0;
    eplb_status_t st = EPLB_OK;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        const char *n = de->d_name;
        if (strncmp(n, ESFT_PREFIX, strlen(ESFT_PREFIX)) != 0)
            continue;
        char *end;
        const char *num = n + strlen(ESFT_PREFIX);
        long layer = strtol(num, &end, 10);
        if (strcmp(end, ".txt") != 0)
            continue;
        nfiles++;
        /* the number as the logs write it: strtol also took "01", "+1"
         * and " 1", which then counted as layer 1 (with the real file
         * missing, "expert_weights_1.txt: cannot open" followed) */
        if (*num < '1' || *num > '9' || (size_t)(end - num) != strspn(num, "0123456789")) {
            st = eplb_error_set(EPLB_ERR_FORMAT,
                                "%s/%s: not a layer file name (expected " ESFT_PREFIX
                                "1.txt .. " ESFT_PREFIX "%d.txt)",
                                dir, n, L);
            break;
        }
        if (layer < 1 || layer > L) {
            st = eplb_error_set(EPLB_ERR_FORMAT,
                                "%s/%s: layer %ld outside 1..%d (ESFT-vanilla-lite "
                                "has %d MoE layers)",
                                dir, n, layer, L, L);
            break;
        }
        seen[layer] = 1;
    }
    closedir(d);
    EPLB_CHECK(st);
    for (int l = 1; l <= L; l++)
        if (!seen[l])
            return eplb_error_set(EPLB_ERR_IO,
                                  "%s/" ESFT_PREFIX "%d.txt: missing (found %d layer "
                                  "files, need layers 1..%d)",
                                  dir, l, nfiles, L);
    if (nfiles != L)
        return eplb_error_set(EPLB_ERR_FORMAT, "%s: %d layer files, expected %d", dir,
                              nfiles, L);
    return EPLB_OK;
}

static void trim_eol(char *line, ssize_t *len)
{
    while (*len > 0 && (line[*len - 1] == '\n' || line[*len - 1] == '\r'))
        line[--*len] = '\0';
}

/* getline() with a bound: the next line of f (with its newline) into *line
 * (grown, NUL-terminated), *len its length or -1 at the end of the file.
 * A line longer than ESFT_MAX_LINE, or one with a NUL byte (which would end
 * it early for the string functions of parse_line), is an error naming
 * file and line lineno. */
static eplb_status_t read_line(char **line, size_t *cap, ssize_t *len, FILE *f,
                               const char *file, int64_t lineno)
{
    size_t n = 0;
    int c;
    while ((c = getc_unlocked(f)) != EOF) {
        if (c == '\0')
            return eplb_error_set(EPLB_ERR_FORMAT, "%s:%lld: a NUL byte (not a text file?)",
                                  file, (long long)lineno);
        if (n >= ESFT_MAX_LINE && c != '\n')
            return eplb_error_set(EPLB_ERR_FORMAT,
                                  "%s:%lld: line longer than %zu bytes (not an ESFT log?)",
                                  file, (long long)lineno, ESFT_MAX_LINE);
        if (n + 2 > *cap) {
            size_t nc = *cap ? *cap * 2 : 4096;
            if (nc > ESFT_MAX_LINE + 2)
                nc = ESFT_MAX_LINE + 2;
            char *nl = realloc(*line, nc);
            if (!nl)
                return eplb_error_set(EPLB_ERR_NOMEM, "ESFT import: out of memory");
            *line = nl;
            *cap = nc;
        }
        (*line)[n++] = (char)c;
        if (c == '\n')
            break;
    }
    if (n == 0) {
        *len = -1;
        return EPLB_OK;
    }
    (*line)[n] = '\0';
    *len = (ssize_t)n;
    return EPLB_OK;
}

void eplb_import_esft_free(eplb_import_esft_t *d)
{
    if (!d)
        return;
    free(d->sample_tokens);
    free(d->ids);
    free(d->weights);
    memset(d, 0, sizeof *d);
}

/* Layer 1: learn the samples and their token counts.  Keeps the parsed
 * ids/weights of all samples in *ids, *w (grown as needed). */
static eplb_status_t read_first_layer(eplb_import_esft_t *r, int32_t **ids,
                                      float **w, const char *file, line_buf_t *b)
{
    eplb_status_t st = EPLB_OK;
    FILE *f = NULL;
    EPLB_CHECK(eplb_input_file_open(&f, file));
    char *line = NULL;
    size_t lcap = 0, scap = 0, tcap = 0;
    ssize_t len;
    int64_t lineno = 0;
    const int K = r->top_k;
    for (;;) {
        EPLB_CHECK_GOTO(read_line(&line, &lcap, &len, f, file, lineno + 1), st, out);
        if (len < 0)
            break;
        lineno++;
        trim_eol(line, &len);
        if (len == 0) /* blank lines (a final empty line) are not samples */
            continue;
        int64_t n;
        EPLB_CHECK_GOTO(parse_line(b, &n, line, (size_t)len, file, lineno,
                                   r->num_experts, K),
                        st, out);
        if ((size_t)r->num_samples == scap) {
            scap = scap ? scap * 2 : 256;
            int64_t *p = realloc(r->sample_tokens, scap * sizeof *p);
            EPLB_ALLOC_GOTO(p, st, out);
            r->sample_tokens = p;
        }
        r->sample_tokens[r->num_samples++] = n;
        size_t need = (size_t)(r->num_tokens + n) * (size_t)K;
        if (need > tcap) {
            while (tcap < need)
                tcap = tcap ? tcap * 2 : 65536;
            int32_t *pi = realloc(*ids, tcap * sizeof *pi);
            EPLB_ALLOC_GOTO(pi, st, out);
            *ids = pi;
            float *pw = realloc(*w, tcap * sizeof *pw);
            EPLB_ALLOC_GOTO(pw, st, out);
            *w = pw;
        }
        memcpy(*ids + r->num_tokens * K, b->ids, sizeof(int32_t) * (size_t)(n * K));
        memcpy(*w + r->num_tokens * K, b->w, sizeof(float) * (size_t)(n * K));
        r->num_tokens += n;
    }
    if (ferror(f))
        st = eplb_error_set(EPLB_ERR_IO, "%s: read error: %s", file, strerror(errno));
    else if (r->num_samples == 0)
        st = eplb_error_set(EPLB_ERR_FORMAT, "%s: no samples (empty file)", file);
out:
    free(line);
    fclose(f);
    return st;
}

/* Layer l (0-based) other than the first: same samples, same token counts. */
static eplb_status_t read_layer(eplb_import_esft_t *r, int l, const char *file,
                                const char *first, line_buf_t *b)
{
    eplb_status_t st = EPLB_OK;
    FILE *f = NULL;
    EPLB_CHECK(eplb_input_file_open(&f, file));
    char *line = NULL;
    size_t lcap = 0;
    ssize_t len;
    int64_t lineno = 0, tok = 0, smp = 0;
    const int K = r->top_k, L = r->num_layers;
    for (;;) {
        EPLB_CHECK_GOTO(read_line(&line, &lcap, &len, f, file, lineno + 1), st, out);
        if (len < 0)
            break;
        lineno++;
        trim_eol(line, &len);
        if (len == 0)
            continue;
        if (++smp > r->num_samples) {
            st = eplb_error_set(EPLB_ERR_FORMAT,
                                "%s:%lld: more samples than %s (%lld)", file,
                                (long long)lineno, first, (long long)r->num_samples);
            goto out;
        }
        int64_t n;
        EPLB_CHECK_GOTO(parse_line(b, &n, line, (size_t)len, file, lineno,
                                   r->num_experts, K),
                        st, out);
        if (n != r->sample_tokens[smp - 1]) {
            st = eplb_error_set(EPLB_ERR_FORMAT,
                                "%s:%lld: %lld tokens, but sample %lld of %s has %lld",
                                file, (long long)lineno, (long long)n, (long long)smp,
                                first, (long long)r->sample_tokens[smp - 1]);
            goto out;
        }
        for (int64_t t = 0; t < n; t++) {
            size_t dst = ((size_t)(tok + t) * L + (size_t)l) * K;
            memcpy(r->ids + dst, b->ids + t * K, sizeof(int32_t) * K);
            memcpy(r->weights + dst, b->w + t * K, sizeof(float) * K);
        }
        tok += n;
    }
    if (ferror(f))
        st = eplb_error_set(EPLB_ERR_IO, "%s: read error: %s", file, strerror(errno));
    else if (smp != r->num_samples)
        st = eplb_error_set(EPLB_ERR_FORMAT, "%s: %lld samples, but %s has %lld", file,
                            (long long)smp, first, (long long)r->num_samples);
out:
    free(line);
    fclose(f);
    return st;
}

eplb_status_t eplb_import_esft_read(eplb_import_esft_t *out, const char *dir)
{
    eplb_status_t st = EPLB_OK;
    eplb_import_esft_t r = {0};
    r.num_layers = EPLB_ESFT_LAYERS;
    r.num_experts = EPLB_ESFT_EXPERTS;
    r.top_k = EPLB_ESFT_TOPK;
    const int L = r.num_layers, K = r.top_k;
    int32_t *ids1 = NULL;
    float *w1 = NULL;
    line_buf_t b = {0};
    char first[4096], file[4096];
    EPLB_CHECK_GOTO(check_dir(dir, L), st, out);
    snprintf(first, sizeof first, "%s/" ESFT_PREFIX "1.txt", dir);
    EPLB_CHECK_GOTO(read_first_layer(&r, &ids1, &w1, first, &b), st, out);
    size_t n = (size_t)r.num_tokens * (size_t)L * (size_t)K;
    r.ids = malloc(n * sizeof *r.ids);
    EPLB_ALLOC_GOTO(r.ids, st, out);
    r.weights = malloc(n * sizeof *r.weights);
    EPLB_ALLOC_GOTO(r.weights, st, out);
    for (int64_t t = 0; t < r.num_tokens; t++) {
        memcpy(r.ids + (size_t)t * L * K, ids1 + t * K, sizeof(int32_t) * K);
        memcpy(r.weights + (size_t)t * L * K, w1 + t * K, sizeof(float) * K);
    }
    for (int l = 1; l < L; l++) {
        snprintf(file, sizeof file, "%s/" ESFT_PREFIX "%d.txt", dir, l + 1);
        EPLB_CHECK_GOTO(read_layer(&r, l, file, first, &b), st, out);
    }
    *out = r;
    r = (eplb_import_esft_t){0};
out:
    eplb_import_esft_free(&r);
    free(ids1);
    free(w1);
    free(b.ids);
    free(b.w);
    return st;
}

eplb_status_t eplb_import_esft_pack(int64_t **offsets, int64_t *num_steps,
                                    const int64_t *sample_tokens, int64_t num_samples,
                                    int64_t tokens_per_step)
{
    if (tokens_per_step < 1)
        return eplb_error_set(EPLB_ERR_INVALID_ARG,
                              "--tokens-per-step: must be >= 1 (got %lld)",
                              (long long)tokens_per_step);
    int64_t *off = malloc(sizeof *off * (size_t)(num_samples + 1));
    if (!off)
        return eplb_error_set(EPLB_ERR_NOMEM, "ESFT import: out of memory");
    int64_t s = 0, cur = 0, pos = 0;
    off[0] = 0;
    for (int64_t i = 0; i < num_samples; i++) {
        if (cur > 0 && cur + sample_tokens[i] > tokens_per_step) {
            off[++s] = pos;
            cur = 0;
        }
        cur += sample_tokens[i];
        pos += sample_tokens[i];
    }
    if (cur > 0)
        off[++s] = pos;
    *offsets = off;
    *num_steps = s;
    return EPLB_OK;
}

int eplb_import_esft_standin(float *logits, const int32_t *ids, const float *weights,
                             int E, int K)
{
    if (E > EPLB_MAX_EXPERTS || K < 1 || K > E)
        return 0;
    /* A recorded 0 stands for a weight below 5e-5: give each such expert an
     * equal share of what the nonzero weights leave, so that they and the
     * others still add up to 1 (at most 5e-5, at least 1e-7). */
    double sum = 0;
    int nz = 0;
    for (int k = 0; k < K; k++) {
        sum += weights[k];
        nz += !(weights[k] > 0);
    }
    double wz = (1.0 - sum) / (nz + 1);
    wz = wz > 0.5e-4 ? 0.5e-4 : wz < 1e-7 ? 1e-7 : wz;
    double minw = 1.0;
    for (int k = 0; k < K; k++) {
        double w = weights[k] > 0 ? weights[k] : wz;
        if (w < minw)
            minw = w;
    }
    sum += nz * wz;
    int others = E - K;
    double r = others > 0 ? (1.0 - sum) / others : 0.0;
    /* Each other expert must stay below the smallest chosen one (by far more
     * than float rounding of the logits); rounded weights can break that or
     * leave nothing for the others, and then the record is not exactly
     * reproducible. */
    if (r > minw * 0.999)
        r = minw * 0.999;
    if (r <= 0)
        r = minw * 1e-3;
    /* Softmax ignores a common shift: put the others at exactly 0, which
     * makes 58 of 64 logits zero bytes that deflate well.  The chosen ones
     * are rounded to a grid of 2^-12 (a softmax error below 1e-4, the
     * weights' own precision being 5e-5) so that their low mantissa bytes
     * are zero too; the grid keeps descending weights strictly descending
     * and equal weights equal. */
    for (int e = 0; e < E; e++)
        logits[e] = 0.0f;
    const double q = 4096.0;
    double prev = 0;
    for (int k = 0; k < K; k++) {
        double w = weights[k] > 0 ? weights[k] : wz;
        double z = nearbyint(log(w / r) * q) / q;
        if (z < 1.0 / q)
            z = 1.0 / q;
        if (k > 0 && weights[k] == weights[k - 1])
            z = prev;
        else if (k > 0 && z >= prev)
            z = prev - 1.0 / q;
        logits[ids[k]] = (float)z;
        prev = z;
    }
    /* Check: top-k of the logits (ties to the lower id) and softmax in
     * double. */
    double mx = logits[0];
    for (int e = 1; e < E; e++)
        if (logits[e] > mx)
            mx = logits[e];
    double z = 0;
    for (int e = 0; e < E; e++)
        z += exp((double)logits[e] - mx);
    int taken[EPLB_MAX_EXPERTS] = {0};
    for (int k = 0; k < K; k++) {
        int best = -1;
        for (int e = 0; e < E; e++)
            if (!taken[e] && (best < 0 || logits[e] > logits[best]))
                best = e;
        taken[best] = 1;
        if (best != ids[k])
            return 0;
        double p = exp((double)logits[best] - mx) / z;
        if (fabs(p - weights[k]) > 1e-4)
            return 0;
    }
    return 1;
}

/* The reader's limits on a trace (traces/FORMAT.md, Limits) that a log can
 * pass, checked before anything is allocated or written: errors name the
 * directory (and the sample), or --tokens-per-step where a smaller one
 * would do. */
static eplb_status_t check_limits(const eplb_import_esft_t *d, const int64_t *off,
                                  int64_t nsteps, int64_t tokens_per_step, const char *dir)
{
    const uint64_t per_tok = (uint64_t)d->num_layers * (uint64_t)d->top_k * 4;
    const int64_t most = (int64_t)(EPLB_TRACE_MAX_STEP_ID_BYTES / per_tok);
    if (d->num_tokens > EPLB_TRACE_MAX_TOKENS)
        return eplb_error_set(EPLB_ERR_FORMAT, "%s: %lld tokens; a trace holds at most %lld",
                              dir, (long long)d->num_tokens, (long long)EPLB_TRACE_MAX_TOKENS);
    for (int64_t i = 0; i < d->num_samples; i++)
        if (d->sample_tokens[i] > most)
            return eplb_error_set(EPLB_ERR_FORMAT,
                                  "%s: sample %lld (its non-blank line in every layer file): "
                                  "%lld tokens; a step (never split) holds at most %lld "
                                  "(%d layers x top-%d ids within 2 GiB)",
                                  dir, (long long)i + 1, (long long)d->sample_tokens[i],
                                  (long long)most, d->num_layers, d->top_k);
    for (int64_t s = 0; s < nsteps; s++)
        if (off[s + 1] - off[s] > most)
            return eplb_error_set(EPLB_ERR_INVALID_ARG,
                                  "--tokens-per-step: %lld; a step holds at most %lld tokens "
                                  "(%d layers x top-%d ids within 2 GiB)",
                                  (long long)tokens_per_step, (long long)most, d->num_layers,
                                  d->top_k);
    if (nsteps > EPLB_TRACE_MAX_STEPS)
        return eplb_error_set(EPLB_ERR_FORMAT,
                              "%s: %lld steps of at most %lld tokens; a trace holds at most "
                              "%lld steps (a larger --tokens-per-step makes fewer)",
                              dir, (long long)nsteps, (long long)tokens_per_step,
                              (long long)EPLB_TRACE_MAX_STEPS);
    return EPLB_OK;
}

/* Last two components of a path, for the source text. */
static const char *short_path(const char *p)
{
    const char *a = strrchr(p, '/');
    if (!a || a == p)
        return p;
    if (a[1] == '\0') /* trailing slash: keep as is */
        return p;
    const char *b = a - 1;
    while (b > p && *b != '/')
        b--;
    return *b == '/' ? b + 1 : b;
}

eplb_status_t eplb_import_esft(const char *dir, const char *path,
                               int64_t tokens_per_step, int64_t *unreproduced)
{
    eplb_status_t st = EPLB_OK;
    eplb_import_esft_t d = {0};
    int64_t *off = NULL, nsteps = 0;
    float *logits = NULL;
    eplb_trace_writer_t *w = NULL;
    if (tokens_per_step < 1)
        return eplb_error_set(EPLB_ERR_INVALID_ARG,
                              "--tokens-per-step: must be >= 1 (got %lld)",
                              (long long)tokens_per_step);
    EPLB_CHECK(eplb_trace_writer_check_path(path));
    EPLB_CHECK_GOTO(eplb_import_esft_read(&d, dir), st, out);
    EPLB_CHECK_GOTO(eplb_import_esft_pack(&off, &nsteps, d.sample_tokens, d.num_samples,
                                          tokens_per_step),
                    st, out);
    EPLB_CHECK_GOTO(check_limits(&d, off, nsteps, tokens_per_step, dir), st, out);
    const int L = d.num_layers, E = d.num_experts, K = d.top_k;
    int64_t maxtok = 0;
    for (int64_t s = 0; s < nsteps; s++)
        if (off[s + 1] - off[s] > maxtok)
            maxtok = off[s + 1] - off[s];
    size_t le = (size_t)L * (size_t)E;
    /* one step's stand-in logits (L x E floats a token, ~11x its ids):
     * refused with the numbers where the process may not take them, as
     * the JSON reader does, rather than killed (a step at the reader's
     * limit, 3,441,480 tokens of 2 GiB of ids, needs 21.3 GiB here) */
    const double need = (double)sizeof(float) * (double)le * (double)maxtok;
    const size_t avail = eplb_memory_available();
    if (avail != SIZE_MAX && need > (double)avail) {
        char bn[32], ba[32];
        st = eplb_error_set(EPLB_ERR_NOMEM,
                            "%s: the largest step (%lld tokens, --tokens-per-step %lld; a sample "
                            "is never split) needs %s for its stand-in logits (%d layers x %d "
                            "experts x 4 bytes a token), more than the %s this process may take",
                            dir, (long long)maxtok, (long long)tokens_per_step,
                            eplb_bytes_text(bn, need), L, E, eplb_bytes_text(ba, (double)avail));
        goto out;
    }
    logits = malloc(sizeof(float) * le * (size_t)maxtok);
    EPLB_ALLOC_GOTO(logits, st, out);
    /* First pass: count the tokens the stand-in logits do not reproduce
     * (they go into the source attribute, written at create time). */
    int64_t bad = 0;
    for (int64_t t = 0; t < d.num_tokens; t++) {
        int ok = 1;
        for (int l = 0; l < L; l++) {
            size_t o = ((size_t)t * L + (size_t)l) * K;
            ok &= eplb_import_esft_standin(logits, d.ids + o, d.weights + o, E, K);
        }
        bad += !ok;
    }
    char source[256];
    snprintf(source, sizeof source,
             "ESFT routing log %.60s: %lld samples, %lld tokens in steps of <= %lld "
             "tokens; ids by descending weight; stand-in logits: %lld tokens not "
             "reproduced",
             short_path(dir), (long long)d.num_samples, (long long)d.num_tokens,
             (long long)tokens_per_step, (long long)bad);
    eplb_trace_writer_opts_t wo = EPLB_TRACE_WRITER_OPTS_INIT;
    wo.model = "ESFT-vanilla-lite";
    wo.source = source;
    wo.num_layers = L;
    wo.route = (eplb_route_cfg_t){E, K, EPLB_SCORING_SOFTMAX, 1, 1, 0, 1.0f};
    wo.levels = EPLB_LEVEL_LOGITS | EPLB_LEVEL_TOPK;
    wo.logits_dtype = EPLB_DTYPE_F32;
    wo.topk_weights = 1;
    wo.phase = 1;
    /* 58 of 64 logits are 0: deflate alone packs the zero runs better than
     * after shuffle splits every float into byte planes (8.x vs 11.9 MB
     * for the intent task, traces/README.md) */
    wo.no_shuffle = 1;
    EPLB_CHECK_GOTO(eplb_import_input_fault(eplb_trace_writer_create(&w, path, &wo), dir), st, out);
    for (int64_t s = 0; s < nsteps; s++) {
        int64_t n = off[s + 1] - off[s];
        for (int64_t t = 0; t < n; t++)
            for (int l = 0; l < L; l++) {
                size_t o = ((size_t)(off[s] + t) * L + (size_t)l) * K;
                eplb_import_esft_standin(logits + ((size_t)t * L + (size_t)l) * E,
                                         d.ids + o, d.weights + o, E, K);
            }
        size_t o = (size_t)off[s] * L * K;
        EPLB_CHECK_GOTO(
            eplb_import_input_fault(eplb_trace_writer_append_step(w, n, logits, d.ids + o,
                                                                  d.weights + o, NULL, NULL, 0),
                                    dir),
            st, out);
    }
    st = eplb_trace_writer_finish(w);
    w = NULL;
    if (st == EPLB_OK && unreproduced)
        *unreproduced = bad;
out:
    if (w)
        eplb_trace_writer_abort(w);
    eplb_import_esft_free(&d);
    free(off);
    free(logits);
    return st;
}
