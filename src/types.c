/* types.c - dtype and scoring helpers, half/bfloat16 conversion, threads,
 * huge-page buffers. */
#include "eplb.h"

#include "decimal.h"

#include <errno.h>
#include <math.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

size_t eplb_dtype_size(eplb_dtype_t dt) { return dt == EPLB_DTYPE_F32 ? 4 : 2; }

const char *eplb_dtype_name(eplb_dtype_t dt)
{
    switch (dt) {
    case EPLB_DTYPE_F32: return "f32";
    case EPLB_DTYPE_F16: return "f16";
    case EPLB_DTYPE_BF16: return "bf16";
    }
    return "?";
}

eplb_status_t eplb_dtype_parse(eplb_dtype_t *out, const char *name)
{
    static const struct { const char *n; eplb_dtype_t d; } tab[] = {
        {"f32", EPLB_DTYPE_F32},  {"float32", EPLB_DTYPE_F32},
        {"f16", EPLB_DTYPE_F16},  {"float16", EPLB_DTYPE_F16},
        {"bf16", EPLB_DTYPE_BF16}, {"bfloat16", EPLB_DTYPE_BF16},
    };
    for (size_t i = 0; name && i < sizeof tab / sizeof tab[0]; i++)
        if (strcmp(name, tab[i].n) == 0) {
            *out = tab[i].d;
            return EPLB_OK;
        }
    return eplb_error_set(EPLB_ERR_INVALID_ARG,
                          "unknown dtype '%s' (expected f32, f16 or bf16)",
                          name ? name : "(null)");
}

const char *eplb_scoring_name(eplb_scoring_t s)
{
    return s == EPLB_SCORING_SIGMOID ? "sigmoid" : "softmax";
}

eplb_status_t eplb_scoring_parse(eplb_scoring_t *out, const char *name)
{
    if (name && strcmp(name, "softmax") == 0) {
        *out = EPLB_SCORING_SOFTMAX;
        return EPLB_OK;
    }
    if (name && strcmp(name, "sigmoid") == 0) {
        *out = EPLB_SCORING_SIGMOID;
        return EPLB_OK;
    }
    return eplb_error_set(EPLB_ERR_INVALID_ARG,
                          "unknown scoring '%s' (expected softmax or sigmoid)",
                          name ? name : "(null)");
}

float eplb_f16_to_f32(uint16_t h)
{
    uint32_t sign = (uint32_t)(h >> 15) << 31;
    uint32_t exp = (h >> 10) & 0x1f, man = h & 0x3ff, bits;
    if (exp == 0x1f) {
        bits = sign | 0x7f800000u | (man << 13);
    } else if (exp == 0) {
        float f = ldexpf((float)man, -24);
        return sign ? -f : f;
    } else {
        bits = sign | ((exp + 112) << 23) | (man << 13);
    }
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

uint16_t eplb_f32_to_f16(float f)
{
    uint32_t x;
    memcpy(&x, &f, 4);
    uint16_t sign = (uint16_t)((x >> 16) & 0x8000);
    uint32_t ax = x & 0x7fffffffu;
    if (ax >= 0x7f800000u) /* inf or nan */
        return sign | 0x7c00 | (ax > 0x7f800000u ? 0x200 : 0);
    if (ax >= 0x477ff000u) /* rounds to >= 65520: overflow */
        return sign | 0x7c00;
    if (ax < 0x38800000u) { /* subnormal half or zero */
        float a;
        memcpy(&a, &ax, 4);
        float scaled = a * 16777216.0f; /* 2^24: units of the smallest half */
        uint32_t m = (uint32_t)lrintf(scaled); /* round to nearest even */
        return sign | (uint16_t)m;
    }
    uint32_t mant = ax & 0x7fffff, exp = (ax >> 23) - 112;
    uint32_t h = (exp << 10) | (mant >> 13);
    uint32_t rest = mant & 0x1fff;
    if (rest > 0x1000 || (rest == 0x1000 && (h & 1)))
        h++;
    return sign | (uint16_t)h;
}

float eplb_bf16_to_f32(uint16_t b)
{
    uint32_t bits = (uint32_t)b << 16;
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

uint16_t eplb_f32_to_bf16(float f)
{
    uint32_t x;
    memcpy(&x, &f, 4);
    if ((x & 0x7fffffffu) > 0x7f800000u)
        return (uint16_t)((x >> 16) | 0x40); /* quiet nan */
    x += 0x7fffu + ((x >> 16) & 1);
    return (uint16_t)(x >> 16);
}

void eplb_dtype_store(void *p, eplb_dtype_t dt, size_t i, float f)
{
    if (dt == EPLB_DTYPE_F32)
        ((float *)p)[i] = f;
    else if (dt == EPLB_DTYPE_F16)
        ((uint16_t *)p)[i] = eplb_f32_to_f16(f);
    else
        ((uint16_t *)p)[i] = eplb_f32_to_bf16(f);
}

double eplb_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

uint64_t eplb_process_vm_bytes(void)
{
    FILE *f = fopen("/proc/self/statm", "r");
    unsigned long long pages = 0;
    const int ok = f && fscanf(f, "%llu", &pages) == 1;
    if (f)
        fclose(f);
    const long ps = sysconf(_SC_PAGESIZE);
    return ok && ps > 0 ? (uint64_t)pages * (uint64_t)ps : 0;
}

/* EPLB_MEMORY_AVAILABLE, or -1 where it is unset or not a number >= 1 */
int64_t eplb_memory_override(void)
{
    return eplb_env_int("EPLB_MEMORY_AVAILABLE", 1, INT64_MAX, -1);
}

/* `bytes` in the largest unit it has at least one of (src/eplb.h) */
const char *eplb_bytes_text(char buf[32], double bytes)
{
    static const char *const names[] = {"bytes", "KiB", "MiB", "GiB"};
    const int k = bytes >= 1 << 30 ? 3 : bytes >= 1 << 20 ? 2 : bytes >= 1024 ? 1 : 0;
    if (k == 0)
        snprintf(buf, 32, "%.0f bytes", bytes);
    else
        snprintf(buf, 32, "%.1f %s", bytes / (double)(1ull << (10 * k)), names[k]);
    return buf;
}

/* Bytes of memory this process may still take: the least of the machine's
 * MemAvailable, its cgroup's limit less usage (v2, then v1) and the
 * address-space limit (ulimit -v) less the process's size; SIZE_MAX where
 * none can be read.  EPLB_MEMORY_AVAILABLE (bytes) replaces it (tests; to
 * model a smaller machine). */
size_t eplb_memory_available(void)
{
    const int64_t set = eplb_memory_override();
    if (set > 0)
        return (size_t)set;
    size_t avail = SIZE_MAX;
    struct rlimit rl;
    const uint64_t used = eplb_process_vm_bytes();
    if (used && getrlimit(RLIMIT_AS, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY)
        avail = rl.rlim_cur > used ? (size_t)(rl.rlim_cur - used) : 0;
    FILE *f = fopen("/proc/meminfo", "r");
    if (f) {
        char line[256];
        unsigned long long kb;
        while (fgets(line, sizeof line, f))
            if (sscanf(line, "MemAvailable: %llu kB", &kb) == 1) {
                avail = (size_t)kb * 1024 < avail ? (size_t)kb * 1024 : avail;
                break;
            }
        fclose(f);
    }
    /* the cgroup's limit less what it uses; its usage counts the page
     * cache, which the kernel frees when a program needs the memory: the
     * inactive file pages are added back (a container that had just
     * written a big trace was near its limit in cache alone) */
    static const char *const lim[][4] = {
        {"/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory.current", "/sys/fs/cgroup/memory.stat",
         "inactive_file "},
        {"/sys/fs/cgroup/memory/memory.limit_in_bytes",
         "/sys/fs/cgroup/memory/memory.usage_in_bytes", "/sys/fs/cgroup/memory/memory.stat",
         "total_inactive_file "},
    };
    for (size_t i = 0; i < sizeof lim / sizeof lim[0]; i++) {
        unsigned long long l = 0, u = 0, cache = 0;
        FILE *a = fopen(lim[i][0], "r"), *b = fopen(lim[i][1], "r"), *c = fopen(lim[i][2], "r");
        const int ok = a && b && fscanf(a, "%llu", &l) == 1 && fscanf(b, "%llu", &u) == 1;
        char line[256];
        const size_t kn = strlen(lim[i][3]);
        while (ok && c && fgets(line, sizeof line, c))
            if (!strncmp(line, lim[i][3], kn) && sscanf(line + kn, "%llu", &cache) == 1)
                break;
        if (a)
            fclose(a);
        if (b)
            fclose(b);
        if (c)
            fclose(c);
        u = cache < u ? u - cache : 0;
        /* "max" (no limit) reads as no number; a usage at the limit says
         * nothing sure either: left to MemAvailable */
        if (ok && l > u && l - u < avail)
            avail = (size_t)(l - u);
        if (ok)
            break;
    }
    return avail;
}

int eplb_env_on(const char *name)
{
    const char *v = getenv(name);
    return v && *v && strcmp(v, "0") != 0;
}

int eplb_env_off(const char *name)
{
    const char *v = getenv(name);
    return v && strcmp(v, "0") == 0;
}

/* Once per process, however many threads ask (an atomic flag). */
static atomic_int threads_warned;

int eplb_num_threads(void)
{
    /* at most 4096, as --threads (20000 ran out of thread stacks and blamed
     * the trace) */
    enum { MAX_THREADS = 4096 };
    /* the CPU count once (sysconf reads /sys; this runs on every CPU
     * routing and selection call) */
    static atomic_int ncpu;
    int cpus = atomic_load_explicit(&ncpu, memory_order_relaxed);
    if (cpus <= 0) {
        const long n = sysconf(_SC_NPROCESSORS_ONLN);
        cpus = n > 0 ? (int)n : 1;
        atomic_store_explicit(&ncpu, cpus, memory_order_relaxed);
    }
    const char *env = getenv("EPLB_THREADS");
    if (!env)
        return cpus;
    int64_t v = 0;
    const int rc = eplb_decimal_parse(&v, env);
    if (rc == 0 && v >= 1 && v <= MAX_THREADS)
        return (int)v;
    /* a value that is not a thread count must not pass unnoticed (0, -1,
     * "abc" and "" once fell back to the CPU count silently) */
    const int big = (rc == 0 && v > MAX_THREADS) || (rc == ERANGE && env[0] != '-');
    if (!atomic_exchange(&threads_warned, 1)) {
        if (big)
            fprintf(stderr, "eplb-replay: EPLB_THREADS='%s' clamped to %d\n", env,
                    MAX_THREADS);
        else
            fprintf(stderr, "eplb-replay: EPLB_THREADS='%s' ignored (expected 1-%d); using %d\n",
                    env, MAX_THREADS, cpus);
    }
    return big ? MAX_THREADS : cpus;
}

void *eplb_huge_alloc(size_t n, size_t *size)
{
    const size_t huge = (size_t)2 << 20, sz = n > 0 ? (n + huge - 1) / huge * huge : huge;
    void *p = aligned_alloc(huge, sz);
    *size = p ? sz : 0;
#ifdef MADV_HUGEPAGE
    if (p)
        (void)madvise(p, sz, MADV_HUGEPAGE);
#endif
    return p;
}
