/* probe.c - open a trace once in a forked child before opening it here.
 *
 * Some corrupt metadata crashes the HDF5 library itself rather than
 * failing a call: with HDF5 1.10, a variable-length string attribute whose
 * global-heap reference holds an object index far past the heap's objects
 * dies of SIGSEGV in H5HG_read, and a corrupt chunk index can read wild
 * memory (tests/fuzz/trace_fuzz.sh found both).  No check of ours can run
 * before the library reads those bytes, so eplb_trace_open first does the
 * same open in a child process (which reads the attributes and small
 * datasets the open reads, and walks each dataset's chunk index to count
 * its chunks) and there also looks up every chunk of every dataset (as the
 * readers do later; the open checked that all were written).  A child
 * killed by a crash signal becomes EPLB_ERR_FORMAT naming the file; a
 * child that merely failed lets the open here report the error itself.
 * Other corrupt metadata makes the library loop for ever instead (HDF5
 * 1.10.8: a global-heap object of size 0 in the collection holding a
 * string attribute, H5HG_read called from H5Aread): the child is killed
 * once it has run for EPLB_TRACE_PROBE_TIMEOUT seconds (default
 * PROBE_TIMEOUT_S) and that too becomes EPLB_ERR_FORMAT naming the file.
 *
 * fork() is only safe while no other thread runs (another could hold the
 * HDF5 lock or the allocator's): the threads besides this one must be the
 * pool's helpers, which its lock keeps asleep across the fork
 * (src/pool.h, eplb_pool_fork_lock).  With other threads (a replay's
 * read-ahead, CUDA's), or without /proc, or with EPLB_TRACE_PROBE=0,
 * nothing is probed.  The command line opens its trace before it starts
 * any thread. */
#include "trace_impl.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <stdint.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/wait.h>
#if defined(__linux__)
#include <sys/prctl.h>
#endif
#include <time.h>
#include <unistd.h>

#include "decimal.h"
#include "h5util.h"
#include "pool.h"

static int in_probe_child;

/* The threads of this process (Linux /proc), or -1. */
static int count_threads(void)
{
    DIR *d = opendir("/proc/self/task");
    if (!d)
        return -1;
    int n = 0;
    for (struct dirent *e; (e = readdir(d)) != NULL;)
        if (e->d_name[0] != '.')
            n++;
    closedir(d);
    return n;
}

/* Under eplb_pool_fork_lock (helpers >= 0 of them, asleep): 1 when no
 * other thread runs, so none can hold the HDF5 lock or another lock the
 * child needs. */
static int only_sleeping_helpers(int helpers)
{
    return helpers >= 0 && count_threads() == 1 + helpers;
}

#if !H5_VERSION_GE(1, 10, 5)
/* Without H5Dget_num_chunks the open cannot tell written chunks from
 * unwritten ones: no walk past this many slots (a 10 KB file declared
 * 1.7e9 slots of unwritten chunks: the walk over them hung). */
#define SLOTS_MAX ((uint64_t)1 << 16)
#endif

/* Look up every chunk of dataset d (nothing for contiguous or compact
 * ones; their sizes were checked by the open, which ran first), as the
 * readers do later.  The open refused a dataset with a chunk of its extent
 * unwritten (check_written, HDF5 >= 1.10.5), so the slots are allocated
 * chunks, as many as the file has room for.  -1 where HDF5 fails.  Caller
 * holds the HDF5 lock. */
static int walk_chunks(hid_t d)
{
    if (d < 0)
        return 0;
    hid_t pl = H5Dget_create_plist(d), sp = H5Dget_space(d);
    int r = -1;
    hsize_t dims[8], cd[8], at[8] = {0};
    int rank = sp >= 0 ? H5Sget_simple_extent_ndims(sp) : -1;
    if (pl < 0 || rank < 0 || rank > 8)
        goto out;
    if (H5Pget_layout(pl) != H5D_CHUNKED || rank == 0) {
        r = 0;
        goto out;
    }
    if (H5Sget_simple_extent_dims(sp, dims, NULL) < 0 || H5Pget_chunk(pl, rank, cd) != rank)
        goto out;
    uint64_t slots = eplb_h5_chunk_slots(rank, dims, cd);
#if !H5_VERSION_GE(1, 10, 5)
    if (slots > SLOTS_MAX)
        slots = 0; /* not walked */
#endif
    if (slots == 0) {
        r = 0;
        goto out;
    }
    for (;;) {
        hsize_t nbytes;
        if (H5Dget_chunk_storage_size(d, at, &nbytes) < 0)
            goto out;
        int i = rank - 1;
        for (; i >= 0; i--) {
            at[i] += cd[i];
            if (at[i] < dims[i])
                break;
            at[i] = 0;
        }
        if (i < 0)
            break;
    }
    r = 0;
out:
    eplb_h5_close(&pl);
    eplb_h5_close(&sp);
    return r;
}

/* The signals of a crash: in the child set back to their default action,
 * and the only ones by which its death blames the file. */
static const int crash_signals[] = {SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGABRT, SIGSYS};

static int is_crash(int sg)
{
    for (size_t i = 0; i < sizeof crash_signals / sizeof crash_signals[0]; i++)
        if (crash_signals[i] == sg)
            return 1;
    return 0;
}

/* What the child's open may allocate: the open reads the attributes,
 * token_offset (at most 2^26 steps, 512 MiB) and phase (64 MiB); HDF5
 * allocates a variable-length string attribute's declared length before
 * reading it, and a corrupt length of 2^32 - 1 cost 4 GB twice and 27 s
 * (probe, then the open here) before a command went on as if the file
 * were fine. */
#define PROBE_MEM_BYTES ((rlim_t)2 << 30)
#define PROBE_EXIT_MEMORY 3

static struct rlimit saved_as; /* the child's limit before cap_memory */

/* Limit the child's address space to what it has now plus
 * PROBE_MEM_BYTES (/proc/self/statm; a sanitizer's reserved shadow is
 * counted in what it has).  1 if this limit is the one that holds (a
 * lower one set by the user stays, and then an allocation that fails is
 * not the file's doing), else 0. */
static int cap_memory(void)
{
#if defined(__linux__)
    const uint64_t have = eplb_process_vm_bytes();
    struct rlimit r;
    if (!have || getrlimit(RLIMIT_AS, &r) != 0)
        return 0;
    /* in 64 bits: rlim_t has 32 on a 32-bit build without large-file
     * support, where the sum could wrap below what the process has */
    const uint64_t want = have + (uint64_t)PROBE_MEM_BYTES;
    if (want >= (uint64_t)RLIM_INFINITY || (rlim_t)want != want)
        return 0;
    if (r.rlim_cur != RLIM_INFINITY && r.rlim_cur <= (rlim_t)want)
        return 0;
    saved_as = r;
    r.rlim_cur = (rlim_t)want;
    return setrlimit(RLIMIT_AS, &r) == 0;
#else
    return 0;
#endif
}

/* After an allocation failed under the cap: 1 if the cap was what
 * stopped it, i.e. with the limit from before the cap the address space
 * for PROBE_MEM_BYTES more is there (mapped, never touched).  0 where
 * memory is short for another reason (RLIMIT_DATA, strict overcommit): the
 * open here then fails and says so itself, and the file is not blamed. */
static int cap_was_the_limit(void)
{
    if (setrlimit(RLIMIT_AS, &saved_as) != 0)
        return 0;
    void *p = mmap(NULL, (size_t)PROBE_MEM_BYTES, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED)
        return 0;
    munmap(p, (size_t)PROBE_MEM_BYTES);
    return 1;
}

/* How long the child may run, in seconds (0: no limit).  A valid trace
 * opens in well under a second (a probe of the shipped traces and of a
 * 2 GB generated one took 10-20 ms, of one of 10^7 steps in 1,467 chunks
 * 0.2 s); 30 s leaves a slow disk or a loaded machine a hundredfold margin
 * and still ends a loop of HDF5's in reasonable time.  Read as the other
 * EPLB_* numbers (src/decimal.h): anything but 0-10^6 keeps the default. */
#define PROBE_TIMEOUT_S 30
#define PROBE_TIMEOUT_ENV "EPLB_TRACE_PROBE_TIMEOUT"

static int64_t probe_timeout_s(void)
{
    return eplb_env_int(PROBE_TIMEOUT_ENV, 0, 1000000, PROBE_TIMEOUT_S);
}

/* The child: open, walk, exit 0 (opened), PROBE_EXIT_MEMORY (the open
 * ran out of the cap) or 1 (an error the parent's own open will report).
 * No clean-up: _exit skips the parent's atexit handlers and stdio
 * buffers. */
static void child(const char *path, pid_t parent)
{
    in_probe_child = 1;
#if defined(__linux__)
    /* killed with its parent (an interrupted command leaves no probe
     * behind: a corrupt file can keep HDF5 busy for seconds) */
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent) /* the parent died before the line above */
        _exit(1);
#else
    (void)parent;
#endif
    /* die of the signal itself: a handler installed for it (AddressSanitizer
     * installs one for SIGSEGV and SIGBUS, and then exits 1) would hide the
     * crash from the parent */
    struct sigaction dfl;
    memset(&dfl, 0, sizeof dfl);
    dfl.sa_handler = SIG_DFL;
    for (size_t i = 0; i < sizeof crash_signals / sizeof crash_signals[0]; i++)
        sigaction(crash_signals[i], &dfl, NULL);
    int fd = open("/dev/null", O_WRONLY);
    if (fd >= 0) { /* the parent reports; nothing printed twice */
        dup2(fd, STDERR_FILENO);
        dup2(fd, STDOUT_FILENO);
    }
    const int capped = cap_memory();
    eplb_trace_t *tr = NULL;
    errno = 0;
    const eplb_status_t st = eplb_trace_open(&tr, path);
    /* out of memory: our allocation, or HDF5's ("memory allocation failed
     * for ...", "can't allocate ..." with errno ENOMEM; errno alone could
     * be left from an allocation that failed and was recovered from) */
    const int nomem = st == EPLB_ERR_NOMEM ||
                      (errno == ENOMEM && strstr(eplb_error_last(), "allocat"));
    if (st != EPLB_OK)
        _exit(capped && nomem && cap_was_the_limit() ? PROBE_EXIT_MEMORY : 1);
    hid_t ds[] = {tr->d_logits, tr->d_ids, tr->d_wts, tr->d_counts,
                  tr->d_bias,   tr->d_phase, tr->d_src};
    eplb_h5_lock();
    for (size_t i = 0; i < sizeof ds / sizeof ds[0]; i++)
        if (walk_chunks(ds[i]) < 0)
            _exit(1);
    _exit(0);
}

/* Milliseconds from now to deadline (CLOCK_MONOTONIC), at least 0. */
static int ms_left(const struct timespec *deadline)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    const int64_t ms = (int64_t)(deadline->tv_sec - now.tv_sec) * 1000 +
                       (deadline->tv_nsec - now.tv_nsec) / 1000000;
    return ms < 0 ? 0 : (int)ms; /* at most 10^9: the limit is 10^6 s at most */
}

/* Wait until the child has exited or limit_s seconds (0: no limit) have
 * passed, by the pipe whose write end only the child holds: its exit
 * closes it, and poll sees the end of the pipe at once.  1 if it exited
 * (not reaped yet), 0 at the limit, -1 where poll fails. */
static int wait_exit(int done_fd, int64_t limit_s)
{
    struct timespec deadline;
    clock_gettime(CLOCK_MONOTONIC, &deadline);
    deadline.tv_sec += (time_t)limit_s; /* at most 10^6 */
    for (;;) {
        struct pollfd pf = {.fd = done_fd, .events = POLLIN};
        const int r = poll(&pf, 1, limit_s > 0 ? ms_left(&deadline) : -1);
        if (r > 0)
            return 1; /* POLLHUP (the child writes nothing) */
        if (r == 0)
            return 0;
        if (errno != EINTR)
            return -1;
    }
}

int eplb_trace_probe_run(const char *path)
{
    if (in_probe_child || eplb_env_off("EPLB_TRACE_PROBE"))
        return -1;
    const int64_t limit_s = probe_timeout_s();
    const int h = eplb_pool_fork_lock(); /* the helpers stay asleep */
    if (!only_sleeping_helpers(h)) {
        if (h >= 0)
            eplb_pool_fork_unlock();
        return -1;
    }
    /* no other thread runs: none can fork or exec with these open */
    int done[2];
    if (pipe(done) != 0) {
        eplb_pool_fork_unlock();
        return -1; /* no probe: open as before */
    }
    fcntl(done[0], F_SETFD, FD_CLOEXEC);
    fcntl(done[1], F_SETFD, FD_CLOEXEC);
    fflush(NULL); /* nothing buffered is inherited twice */
    const pid_t parent = getpid();
    pid_t pid = fork();
    if (pid == 0) {
        close(done[0]);      /* done[1] stays open until its exit */
        child(path, parent); /* its pool: no helpers, a fresh lock */
    }
    eplb_pool_fork_unlock();
    close(done[1]);
    if (pid < 0) {
        close(done[0]);
        return -1; /* no probe: open as before */
    }
    const int exited = wait_exit(done[0], limit_s);
    close(done[0]);
    if (exited == 0)
        kill(pid, SIGKILL); /* HDF5 looping (or stopped): reaped below */
    int ws = 0;
    while (waitpid(pid, &ws, 0) < 0)
        if (errno != EINTR)
            return -1;
    /* killed at the limit, unless it exited between poll and kill */
    if (exited == 0 && WIFSIGNALED(ws) && WTERMSIG(ws) == SIGKILL)
        return 3;
    /* any signal but a crash (SIGKILL of a container's out-of-memory
     * killer, an interrupt) says nothing of the file: the open here goes on */
    if (WIFSIGNALED(ws))
        return is_crash(WTERMSIG(ws)) ? 128 + WTERMSIG(ws) : 1;
    if (WIFEXITED(ws) && WEXITSTATUS(ws) == PROBE_EXIT_MEMORY)
        return 2;
    return WIFEXITED(ws) && WEXITSTATUS(ws) == 0 ? 0 : 1;
}

eplb_status_t eplb_trace_probe(const char *path)
{
    const int r = eplb_trace_probe_run(path);
    if (r == 2)
        return eplb_error_set(EPLB_ERR_FORMAT,
                              "%s: corrupt HDF5 metadata: opening it needs more than %llu GiB "
                              "of memory (a corrupt length, such as a string attribute's; in "
                              "a child process that checks the file before it is opened; "
                              "EPLB_TRACE_PROBE=0 turns that off)",
                              path, (unsigned long long)(PROBE_MEM_BYTES >> 30));
    if (r == 3)
        return eplb_error_set(EPLB_ERR_FORMAT,
                              "%s: opening it did not finish in %lld s: corrupt HDF5 metadata "
                              "(the HDF5 library looping)? (in a child process that checks "
                              "the file before it is opened, then killed; " PROBE_TIMEOUT_ENV
                              " sets the limit in seconds, 0 for none; EPLB_TRACE_PROBE=0 "
                              "turns the check off)",
                              path, (long long)probe_timeout_s());
    if (r > 128)
        return eplb_error_set(EPLB_ERR_FORMAT,
                              "%s: corrupt HDF5 metadata: the HDF5 library died of signal "
                              "%d (%s) reading it (in a child process that checks the file "
                              "before it is opened; EPLB_TRACE_PROBE=0 turns that off)",
                              path, r - 128, strsignal(r - 128));
    return EPLB_OK;
}
