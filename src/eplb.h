/* eplb.h - core types shared by every module of eplb-replay.
 *
 * One status enum for the whole project (house style 4): functions return
 * eplb_status_t; the message of the last failure on this thread is kept in a
 * thread-local buffer and read with eplb_error_last().  Errors are set (and
 * so described) once, where they are classified, then propagated. */
#ifndef EPLB_H
#define EPLB_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum {
    EPLB_OK = 0,
    EPLB_ERR_INVALID_ARG, /* impossible option or argument */
    EPLB_ERR_IO,          /* missing, unreadable or unwritable file */
    EPLB_ERR_FORMAT,      /* file readable but wrong schema, shape or values */
    EPLB_ERR_NOMEM,       /* allocation failed */
    EPLB_ERR_CUDA,        /* CUDA runtime error */
    EPLB_ERR_NO_DEVICE,   /* GPU asked for but none usable */
    EPLB_ERR_UNSUPPORTED, /* feature not built in or not implemented */
    EPLB_ERR_INTERNAL     /* broken invariant: a bug */
} eplb_status_t;

/* Short fixed text for a status ("invalid argument", ...). */
const char *eplb_strerror(eplb_status_t st);

/* Record a printf-style message for this thread and return st, so that
 * `return eplb_error_set(EPLB_ERR_IO, "%s: cannot open", path);` both
 * describes and propagates a failure. */
eplb_status_t eplb_error_set(eplb_status_t st, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;

/* Message of the last failure on this thread ("" if none). */
const char *eplb_error_last(void);

/* Forget the last message of this thread. */
void eplb_error_clear(void);

/* Element type of router logits. */
typedef enum {
    EPLB_DTYPE_F32 = 0,
    EPLB_DTYPE_F16 = 1,
    EPLB_DTYPE_BF16 = 2
} eplb_dtype_t;

/* Size in bytes of one element of dt. */
size_t eplb_dtype_size(eplb_dtype_t dt);
/* "f32", "f16", "bf16"; NULL-safe parse returning EPLB_ERR_INVALID_ARG. */
const char *eplb_dtype_name(eplb_dtype_t dt);
eplb_status_t eplb_dtype_parse(eplb_dtype_t *out, const char *name);

/* IEEE half and bfloat16 conversions (round to nearest even). */
float eplb_f16_to_f32(uint16_t h);
uint16_t eplb_f32_to_f16(float f);
float eplb_bf16_to_f32(uint16_t b);
uint16_t eplb_f32_to_bf16(float f);
/* Element i of a dtype-dt array p set to f (rounded as above). */
void eplb_dtype_store(void *p, eplb_dtype_t dt, size_t i, float f);

/* Router scoring function. */
typedef enum {
    EPLB_SCORING_SOFTMAX = 0,
    EPLB_SCORING_SIGMOID = 1
} eplb_scoring_t;

const char *eplb_scoring_name(eplb_scoring_t s);
eplb_status_t eplb_scoring_parse(eplb_scoring_t *out, const char *name);

/* Routing configuration of one MoE model (trace root attributes). */
typedef struct {
    int num_experts;             /* E: logical routed experts */
    int top_k;                   /* K */
    eplb_scoring_t scoring;
    int num_groups;              /* 1 if the model has no groups */
    int topk_groups;             /* groups kept (== num_groups if none) */
    int renormalize;             /* 0/1 */
    float routed_scaling_factor; /* 1.0 if none */
} eplb_route_cfg_t;

#define EPLB_ROUTE_CFG_INIT                                                   \
    { 0, 0, EPLB_SCORING_SOFTMAX, 1, 1, 0, 1.0f }

/* Limits of the kernels and of the trace reader. */
#define EPLB_MAX_EXPERTS 512
#define EPLB_MAX_TOPK 16
#define EPLB_MAX_GROUPS 32

/* Upper bound on the number of hardware threads to use (EPLB_THREADS in the
 * environment, else the online CPU count). */
int eplb_num_threads(void);

/* n bytes rounded up to whole 2 MiB pages (*size: the rounded size),
 * aligned to 2 MiB and advised as transparent huge pages (best effort: THP
 * may be off); free with free().  NULL when out of memory.  Large buffers
 * written once and read once (pinned stages, the replay's prefetch) fault
 * in 512 times fewer pages: docs/perf/sim.md, runs 62-66. */
void *eplb_huge_alloc(size_t n, size_t *size);

/* Seconds on the monotonic clock (for intervals). */
double eplb_now(void);

/* The process's virtual size in bytes (/proc/self/statm: what RLIMIT_AS
 * counts); 0 where it cannot be read. */
uint64_t eplb_process_vm_bytes(void);

/* Bytes of memory this process may still take: the least of the machine's
 * MemAvailable, its cgroup's limit less its non-cache usage and the
 * address-space limit less the process's size; SIZE_MAX where none can be
 * read.  EPLB_MEMORY_AVAILABLE (bytes) replaces it (tests; to model a
 * smaller machine); eplb_memory_override gives that, or -1 where unset. */
size_t eplb_memory_available(void);
int64_t eplb_memory_override(void);
/* `bytes` as text in the largest unit it has at least one of ("512 bytes",
 * "3.2 KiB", "1.5 MiB", "2.0 GiB"), into buf; returns buf. */
const char *eplb_bytes_text(char buf[32], double bytes);

/* Whether the environment variable `name` is set to something other than
 * empty or "0" (diagnostic switches such as EPLB_TIMINGS). */
int eplb_env_on(const char *name);
/* Whether `name` is set to exactly "0": a switch that is on by default,
 * turned off (EPLB_PREFETCH=0, EPLB_READ_OVERLAP=0, ...). */
int eplb_env_off(const char *name);

#ifdef __cplusplus
}
#endif
#endif /* EPLB_H */
