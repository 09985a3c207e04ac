/* alloc_fail.c - an LD_PRELOAD library that makes one allocation, or one
 * file read, write or rename, fail, for tests/test_alloc_fail.c and
 * scripts/alloc_sweep.sh: every out-of-memory and I/O-error path of a
 * command is taken once, one run each, and must end in a message and exit
 * 1 (never a crash, never a wrong output).
 *
 * A "site" is a call of malloc, calloc or realloc from one place (return
 * address) in the main program (not libc, HDF5 or zlib, whose own failures
 * are theirs), once main() has begun (static constructors, such as those
 * of a statically linked CUDA runtime, are not the program's code).  Sites
 * are numbered in the order they are first reached.
 *   EPLB_FAIL_SITE=N   the first call from site N returns NULL (ENOMEM);
 *                      later calls from it succeed
 *   EPLB_FAIL_CALL=C   the C-th call from site N fails instead (default 1:
 *                      loops and growing buffers fail later on)
 *   EPLB_FAIL_REPORT=1 at exit, "alloc_fail: S sites" on stderr
 *   EPLB_FAIL_SHOW=1   "alloc_fail: site N fails at +0xOFF" on stderr when it
 *                      fails (OFF: the return address less the program's
 *                      load address; `addr2line -e eplb-replay 0xOFF`)
 * File I/O, counted over the whole process (HDF5's reads and writes are
 * pread and pwrite calls of libhdf5) from main() on; a forked child counts
 * on from its parent's numbers:
 *   EPLB_FAIL_PWRITE=N the N-th pwrite fails (EIO)
 *   EPLB_FAIL_PREAD=N  the N-th pread fails (EIO)
 *   EPLB_FAIL_RENAME=N the N-th rename fails (EIO)
 *   EPLB_FAIL_FSYNC=N  the N-th fsync fails (EIO)
 *   with EPLB_FAIL_REPORT, also "alloc_fail: W pwrite, R pread, M rename,
 *   F fsync"
 * strdup is a site of its own (libc's would call malloc from libc).
 * glibc only (__libc_malloc and friends: dlsym would allocate itself). */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <dlfcn.h>
#include <errno.h>
#include <link.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <unistd.h>

extern void *__libc_malloc(size_t n);
extern void *__libc_calloc(size_t n, size_t size);
extern void *__libc_realloc(void *p, size_t n);

enum { MAX_SITES = 16384 };

static uintptr_t lo, hi, base; /* the main program's loaded segments, load address */
/* set while this thread holds the lock: a call made meanwhile (by
 * dl_iterate_phdr, say) passes (initial-exec: no allocation to reach it) */
static __thread int inside __attribute__((tls_model("initial-exec")));
static uintptr_t sites[MAX_SITES];
static int nsites, ready, busy, in_main;
static long fail_at = -1, fail_call = 1, calls; /* calls: from site fail_at */

static int main_range(struct dl_phdr_info *info, size_t size, void *data)
{
    (void)size;
    (void)data;
    base = info->dlpi_addr;
    for (int i = 0; i < info->dlpi_phnum; i++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
        if (ph->p_type != PT_LOAD)
            continue;
        uintptr_t a = info->dlpi_addr + ph->p_vaddr, b = a + ph->p_memsz;
        if (!lo || a < lo)
            lo = a;
        if (b > hi)
            hi = b;
    }
    return 1; /* the first object is the main program */
}

/* Whether this call, from return address ra, is to fail. */
static int fail_here(uintptr_t ra)
{
    int fail = 0;
    if (inside)
        return 0;
    inside = 1;
    while (__atomic_exchange_n(&busy, 1, __ATOMIC_ACQUIRE))
        ;
    if (!ready) {
        ready = 1;
        const char *s = getenv("EPLB_FAIL_SITE");
        fail_at = s ? atol(s) : -1;
        const char *c = getenv("EPLB_FAIL_CALL");
        fail_call = c ? atol(c) : 1;
        dl_iterate_phdr(main_range, NULL);
    }
    if (in_main && ra >= lo && ra < hi) {
        int i = 0;
        while (i < nsites && sites[i] != ra)
            i++;
        if (i == nsites && nsites < MAX_SITES)
            sites[nsites++] = ra;
        if (i < nsites && i + 1 == fail_at)
            fail = ++calls == fail_call;
    }
    __atomic_store_n(&busy, 0, __ATOMIC_RELEASE);
    if (fail && getenv("EPLB_FAIL_SHOW")) {
        char b[96];
        int k = snprintf(b, sizeof b, "alloc_fail: site %ld fails at +0x%lx\n", fail_at,
                         (unsigned long)(ra - base));
        if (write(2, b, (size_t)k) < 0)
            fail = 1;
    }
    inside = 0;
    return fail;
}

/* __libc_start_main runs the constructors, then main: main is wrapped so
 * that counting starts there. */
typedef int (*main_fn)(int, char **, char **);
static main_fn real_main;

static int counted_main(int argc, char **argv, char **envp)
{
    __atomic_store_n(&in_main, 1, __ATOMIC_RELEASE);
    return real_main(argc, argv, envp);
}

int __libc_start_main(main_fn m, int argc, char **argv, void (*init)(void), void (*fini)(void),
                      void (*rtld_fini)(void), void *stack_end)
{
    typedef int (*start_fn)(main_fn, int, char **, void (*)(void), void (*)(void), void (*)(void),
                            void *);
    start_fn next = (start_fn)dlsym(RTLD_NEXT, "__libc_start_main");
    real_main = m;
    return next(counted_main, argc, argv, init, fini, rtld_fini, stack_end);
}

#define CALLER ((uintptr_t)__builtin_return_address(0))

/* ---- file I/O ---------------------------------------------------------- */
enum { IO_PWRITE, IO_PREAD, IO_RENAME, IO_FSYNC, IO_KINDS };
static const char *const io_env[IO_KINDS] = {"EPLB_FAIL_PWRITE", "EPLB_FAIL_PREAD",
                                             "EPLB_FAIL_RENAME", "EPLB_FAIL_FSYNC"};
static long io_calls[IO_KINDS], io_fail_at[IO_KINDS] = {-2, -2, -2, -2}; /* -2: not read yet */

static int io_fail(int kind)
{
    if (!__atomic_load_n(&in_main, __ATOMIC_ACQUIRE))
        return 0;
    if (__atomic_load_n(&io_fail_at[kind], __ATOMIC_ACQUIRE) == -2) {
        const char *v = getenv(io_env[kind]);
        __atomic_store_n(&io_fail_at[kind], v ? atol(v) : -1, __ATOMIC_RELEASE);
    }
    const long n = __atomic_add_fetch(&io_calls[kind], 1, __ATOMIC_ACQ_REL);
    if (n != io_fail_at[kind])
        return 0;
    errno = EIO;
    return 1;
}

ssize_t pwrite(int fd, const void *buf, size_t n, off_t off)
{
    static ssize_t (*next)(int, const void *, size_t, off_t);
    if (!next)
        next = (ssize_t(*)(int, const void *, size_t, off_t))dlsym(RTLD_NEXT, "pwrite");
    return io_fail(IO_PWRITE) ? -1 : next(fd, buf, n, off);
}

ssize_t pread(int fd, void *buf, size_t n, off_t off)
{
    static ssize_t (*next)(int, void *, size_t, off_t);
    if (!next)
        next = (ssize_t(*)(int, void *, size_t, off_t))dlsym(RTLD_NEXT, "pread");
    return io_fail(IO_PREAD) ? -1 : next(fd, buf, n, off);
}

int rename(const char *from, const char *to)
{
    static int (*next)(const char *, const char *);
    if (!next)
        next = (int (*)(const char *, const char *))dlsym(RTLD_NEXT, "rename");
    return io_fail(IO_RENAME) ? -1 : next(from, to);
}

int fsync(int fd)
{
    static int (*next)(int);
    if (!next)
        next = (int (*)(int))dlsym(RTLD_NEXT, "fsync");
    return io_fail(IO_FSYNC) ? -1 : next(fd);
}

void *malloc(size_t n)
{
    if (fail_here(CALLER)) {
        errno = ENOMEM;
        return NULL;
    }
    return __libc_malloc(n);
}

void *calloc(size_t n, size_t size)
{
    if (fail_here(CALLER)) {
        errno = ENOMEM;
        return NULL;
    }
    return __libc_calloc(n, size);
}

void *realloc(void *p, size_t n)
{
    if (fail_here(CALLER)) {
        errno = ENOMEM;
        return NULL;
    }
    return __libc_realloc(p, n);
}

void *aligned_alloc(size_t align, size_t n)
{
    if (fail_here(CALLER)) {
        errno = ENOMEM;
        return NULL;
    }
    extern void *__libc_memalign(size_t align, size_t n);
    return __libc_memalign(align, n);
}

/* strdup allocates inside libc, where malloc's caller is not the
 * program's: a site of its own (the path copies of the reader, writer and
 * results, an HDF5 string attribute's copy) */
char *strdup(const char *s)
{
    if (fail_here(CALLER)) {
        errno = ENOMEM;
        return NULL;
    }
    const size_t n = strlen(s) + 1;
    char *d = __libc_malloc(n);
    if (d)
        memcpy(d, s, n);
    return d;
}

__attribute__((destructor)) static void report(void)
{
    if (!getenv("EPLB_FAIL_REPORT"))
        return;
    char b[200];
    int k = snprintf(b, sizeof b,
                     "alloc_fail: %d sites\nalloc_fail: %ld pwrite, %ld pread, %ld rename, %ld "
                     "fsync\n",
                     nsites, io_calls[IO_PWRITE], io_calls[IO_PREAD], io_calls[IO_RENAME],
                     io_calls[IO_FSYNC]);
    if (write(2, b, (size_t)k) < 0)
        return;
}
