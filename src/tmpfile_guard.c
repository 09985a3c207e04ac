/* tmpfile_guard.c - unlink guarded temporary files on SIGINT/SIGTERM/SIGHUP
 * (see tmpfile_guard.h).
 *
 * The signal handler reads only the slot table: a path is copied into its
 * slot before the slot's flag is set (release store), and the handler reads
 * the flag with an acquire load before it touches the path.  The pid kept
 * with the table keeps a forked child that did not exec (and so still has
 * the handler) from deleting its parent's file.
 *
 * The cleanup runs on the main thread, which creates the files and the
 * directories: the program's own threads block the signals
 * (eplb_thread_create), and a thread that does not (a library's) hands the
 * signal on to the main thread.  On any other thread the handler could
 * unlink a path armed but not created yet while the main thread went on to
 * create it, and a second signal (timeout(1) sends one to the process and
 * one to its group) could reach a thread after SA_RESETHAND had put the
 * default action back and kill the process before the cleanup was done. */
#include "tmpfile_guard.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

static const int guard_signals[] = {SIGINT, SIGTERM, SIGHUP};
#define NSIGS ((int)(sizeof guard_signals / sizeof guard_signals[0]))

static char slot_path[EPLB_TMP_GUARD_SLOTS][4096];
static int slot_armed[EPLB_TMP_GUARD_SLOTS]; /* atomics */
static pid_t slot_pid[EPLB_TMP_GUARD_SLOTS];
static int slot_dir[EPLB_TMP_GUARD_SLOTS]; /* a directory: rmdir, after the files */
static int narmed, next_slot;
static struct sigaction old_action[NSIGS];
static int installed[NSIGS];
static pthread_mutex_t guard_lock = PTHREAD_MUTEX_INITIALIZER;

static void guard_sigset(sigset_t *set)
{
    sigemptyset(set);
    for (int i = 0; i < NSIGS; i++)
        sigaddset(set, guard_signals[i]);
}

static void on_signal(int sig)
{
    pid_t self = getpid();
#if defined(SYS_gettid) && defined(SYS_tgkill)
    if ((pid_t)syscall(SYS_gettid) != self) {
        /* not the main thread (whose id is the pid): the signal to it (it
         * has it pending if it is blocking it for a moment, or is in this
         * handler already), and wait here for the process to die of it */
        syscall(SYS_tgkill, self, self, sig);
        for (;;)
            pause();
    }
#endif
    for (int i = 0; i < EPLB_TMP_GUARD_SLOTS; i++)
        if (__atomic_load_n(&slot_armed[i], __ATOMIC_ACQUIRE) && slot_pid[i] == self &&
            !slot_dir[i])
            unlink(slot_path[i]);
    /* then the directories, as many passes as there are slots, so that a
     * parent goes once its children have (rmdir fails on a non-empty one
     * and leaves it) */
    for (int pass = 0; pass < EPLB_TMP_GUARD_SLOTS; pass++)
        for (int i = EPLB_TMP_GUARD_SLOTS - 1; i >= 0; i--)
            if (__atomic_load_n(&slot_armed[i], __ATOMIC_ACQUIRE) && slot_pid[i] == self &&
                slot_dir[i])
                rmdir(slot_path[i]);
    /* die of the signal here, not back in the interrupted code: the default
     * action back, the signal raised (pending: the handler blocks it) and
     * unblocked, which delivers it */
    struct sigaction dfl;
    memset(&dfl, 0, sizeof dfl);
    dfl.sa_handler = SIG_DFL;
    sigemptyset(&dfl.sa_mask);
    sigaction(sig, &dfl, NULL);
    raise(sig);
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, sig);
    pthread_sigmask(SIG_UNBLOCK, &set, NULL);
    _exit(128 + sig); /* not reached */
}

static void install(void)
{
    for (int i = 0; i < NSIGS; i++) {
        installed[i] = 0;
        if (sigaction(guard_signals[i], NULL, &old_action[i]) != 0 ||
            (old_action[i].sa_flags & SA_SIGINFO) || old_action[i].sa_handler != SIG_DFL)
            continue;
        struct sigaction sa;
        memset(&sa, 0, sizeof sa);
        sa.sa_handler = on_signal;
        sa.sa_flags = 0; /* the handler puts the default action back itself */
        guard_sigset(&sa.sa_mask); /* one cleanup at a time */
        installed[i] = sigaction(guard_signals[i], &sa, NULL) == 0;
    }
}

static void restore(void)
{
    for (int i = 0; i < NSIGS; i++) {
        struct sigaction cur;
        /* leave alone a handler someone else installed since (and the
         * default action the handler already put back) */
        if (installed[i] && sigaction(guard_signals[i], NULL, &cur) == 0 &&
            !(cur.sa_flags & SA_SIGINFO) && cur.sa_handler == on_signal)
            sigaction(guard_signals[i], &old_action[i], NULL);
        installed[i] = 0;
    }
}

static int arm(const char *path, int dir);

int eplb_tmp_guard_arm(const char *path) { return arm(path, 0); }

int eplb_tmp_guard_arm_dir(const char *path) { return arm(path, 1); }

static int arm(const char *path, int dir)
{
    size_t n = path ? strlen(path) : 0;
    if (n == 0 || n >= sizeof slot_path[0])
        return -1;
    int id = -1;
    pthread_mutex_lock(&guard_lock);
    /* round robin: a slot just disarmed is reused last */
    for (int k = 0; k < EPLB_TMP_GUARD_SLOTS && id < 0; k++) {
        int i = (next_slot + k) % EPLB_TMP_GUARD_SLOTS;
        if (!__atomic_load_n(&slot_armed[i], __ATOMIC_ACQUIRE))
            id = i;
    }
    if (id >= 0) {
        memcpy(slot_path[id], path, n + 1);
        slot_pid[id] = getpid();
        slot_dir[id] = dir;
        __atomic_store_n(&slot_armed[id], 1, __ATOMIC_RELEASE);
        next_slot = (id + 1) % EPLB_TMP_GUARD_SLOTS;
        if (narmed++ == 0)
            install();
    }
    pthread_mutex_unlock(&guard_lock);
    return id;
}

int eplb_thread_create(pthread_t *t, const pthread_attr_t *attr, void *(*fn)(void *),
                       void *arg)
{
    sigset_t block, old;
    guard_sigset(&block);
    int rc = pthread_sigmask(SIG_BLOCK, &block, &old);
    if (rc != 0)
        return rc; /* no thread rather than one that takes the signals */
    rc = pthread_create(t, attr, fn, arg);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    return rc;
}

void eplb_tmp_guard_disarm(int id)
{
    if (id < 0 || id >= EPLB_TMP_GUARD_SLOTS)
        return;
    pthread_mutex_lock(&guard_lock);
    if (__atomic_load_n(&slot_armed[id], __ATOMIC_ACQUIRE)) {
        __atomic_store_n(&slot_armed[id], 0, __ATOMIC_RELEASE);
        if (--narmed == 0)
            restore();
    }
    pthread_mutex_unlock(&guard_lock);
}

/* ---- output sets -------------------------------------------------------- */

void eplb_tmp_name(char *out, size_t n, const char *final)
{
    char sfx[32];
    int k = snprintf(sfx, sizeof sfx, ".tmp.%ld", (long)getpid());
    size_t len = strlen(final);
    if (k > 0 && len > (size_t)k && !strcmp(final + len - (size_t)k, sfx))
        snprintf(out, n, "%s", final);
    else
        snprintf(out, n, "%s%s", final, sfx);
}

eplb_status_t eplb_tmp_set_add(const char **tmp, eplb_tmp_set_t *s, const char *final)
{
    if (s->n >= EPLB_TMP_SET_MAX)
        return eplb_error_set(EPLB_ERR_INTERNAL, "%s: more than %d files in one output set",
                              final, EPLB_TMP_SET_MAX);
    size_t n = strlen(final) + 32;
    char *f = strdup(final), *t = malloc(n);
    if (!f || !t) {
        free(f);
        free(t);
        return eplb_error_set(EPLB_ERR_NOMEM, "%s: out of memory", final);
    }
    eplb_tmp_name(t, n, final);
    s->final[s->n] = f;
    s->tmp[s->n] = t;
    s->guard[s->n] = eplb_tmp_guard_arm(t);
    s->n++;
    *tmp = t;
    return EPLB_OK;
}

/* Remove members from..n-1 (their temporary files) and empty the set. */
static void set_clear(eplb_tmp_set_t *s, int from)
{
    for (int i = 0; i < s->n; i++) {
        if (i >= from)
            unlink(s->tmp[i]);
        eplb_tmp_guard_disarm(s->guard[i]);
        free(s->final[i]);
        free(s->tmp[i]);
    }
    s->n = 0;
}

void (*eplb_tmp_set_rename_hook)(int renamed);

/* 1 if sig, once unblocked, ends the process: the default action or the
 * guard's handler (not SIG_IGN, as under nohup, nor a caller's handler) */
static int ends_process(int sig)
{
    struct sigaction cur;
    if (sigaction(sig, NULL, &cur) != 0 || (cur.sa_flags & SA_SIGINFO))
        return 0;
    return cur.sa_handler == SIG_DFL || cur.sa_handler == on_signal;
}

int eplb_file_sync(const char *path)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    int rc = fsync(fd);
    int e = errno;
    close(fd);
    errno = e;
    return rc;
}

void eplb_dir_sync_of(const char *path)
{
    char dir[4096];
    const char *slash = strrchr(path, '/');
    if (!slash)
        snprintf(dir, sizeof dir, ".");
    else if (slash == path)
        snprintf(dir, sizeof dir, "/");
    else
        snprintf(dir, sizeof dir, "%.*s", (int)(slash - path), path);
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return;
    (void)fsync(fd); /* best effort: some file systems refuse it */
    close(fd);
}

eplb_status_t eplb_tmp_rename_into_place(const char *tmp, const char *final)
{
    if (!strcmp(tmp, final))
        return EPLB_OK;
    if (eplb_file_sync(tmp) != 0)
        return eplb_error_set(EPLB_ERR_IO, "%s: cannot sync %s: %s", final, tmp, strerror(errno));
    if (rename(tmp, final) != 0)
        return eplb_error_set(EPLB_ERR_IO, "%s: cannot rename %s to it: %s", final, tmp,
                              strerror(errno));
    eplb_dir_sync_of(final);
    return EPLB_OK;
}

/* 1 if paths a and b are in the same directory (the same text before the
 * last '/'). */
static int same_dir(const char *a, const char *b)
{
    const char *sa = strrchr(a, '/'), *sb = strrchr(b, '/');
    const size_t na = sa ? (size_t)(sa - a) : 0, nb = sb ? (size_t)(sb - b) : 0;
    return na == nb && !strncmp(a, b, na);
}

/* The earlier file of each final name (bak[i], NULL where there was none)
 * put back, and the finals renamed so far that had none removed: a rename
 * that fails half-way leaves the names as they were. */
static void set_roll_back(eplb_tmp_set_t *s, int done, char **bak)
{
    for (int i = 0; i < done; i++) {
        if (bak[i]) {
            if (rename(bak[i], s->final[i]) == 0) {
                free(bak[i]);
                bak[i] = NULL;
            }
        } else {
            unlink(s->final[i]);
        }
    }
}

eplb_status_t eplb_tmp_set_commit(eplb_tmp_set_t *s)
{
    /* the signals wait until the set is renamed (or removed): one that
     * came in between the renames would leave part of the set under the
     * final names and the rest nowhere */
    sigset_t block, old;
    guard_sigset(&block);
    pthread_sigmask(SIG_BLOCK, &block, &old);
    eplb_status_t st = EPLB_OK;
    /* all present before the first rename: a writer that failed without
     * saying so must not leave half a set */
    for (int i = 0; i < s->n && st == EPLB_OK; i++)
        if (access(s->tmp[i], F_OK) != 0)
            st = eplb_error_set(EPLB_ERR_IO, "%s: %s is missing: %s", s->final[i], s->tmp[i],
                                strerror(errno));
    /* on the disk before any rename: after a crash or power loss a final
     * name holds a whole file or the earlier one, never an empty one */
    for (int i = 0; i < s->n && st == EPLB_OK; i++)
        if (eplb_file_sync(s->tmp[i]) != 0)
            st = eplb_error_set(EPLB_ERR_IO, "%s: cannot sync %s: %s", s->final[i], s->tmp[i],
                                strerror(errno));
    /* each earlier final file kept under a second name (a hard link: the
     * final name stays in place) until the last rename is done, so that a
     * rename that fails half-way can put the earlier set back (found by an
     * I/O fault-injection audit: the new files renamed by then stayed,
     * beside the earlier rest); where no link can be made (a file system
     * without them) that member is renamed without one */
    char *bak[EPLB_TMP_SET_MAX] = {NULL};
    for (int i = 0; i < s->n && st == EPLB_OK; i++) {
        size_t n = strlen(s->final[i]) + 32;
        if (access(s->final[i], F_OK) != 0 || !(bak[i] = malloc(n)))
            continue;
        snprintf(bak[i], n, "%s.old.%ld", s->final[i], (long)getpid());
        unlink(bak[i]); /* one of a process of this pid that died here */
        if (link(s->final[i], bak[i]) != 0) {
            free(bak[i]);
            bak[i] = NULL;
        }
    }
    int done = 0;
    while (st == EPLB_OK && done < s->n) {
        if (rename(s->tmp[done], s->final[done]) != 0)
            st = eplb_error_set(EPLB_ERR_IO, "%s: cannot rename %s to it: %s",
                                s->final[done], s->tmp[done], strerror(errno));
        else if (++done, eplb_tmp_set_rename_hook)
            eplb_tmp_set_rename_hook(done);
    }
    if (st != EPLB_OK) {
        set_roll_back(s, done, bak);
        done = 0; /* every temporary file still there is removed below */
    }
    for (int i = 0; i < s->n; i++) {
        if (bak[i])
            unlink(bak[i]);
        free(bak[i]);
    }
    /* a signal that came meanwhile ends the process as soon as the mask is
     * restored (128 + signal), yet the set is complete: say so, so that a
     * script that reads only the exit status can be told */
    sigset_t pend;
    if (st == EPLB_OK && done > 0 && sigpending(&pend) == 0)
        for (int i = 0; i < NSIGS; i++)
            if (sigismember(&pend, guard_signals[i]) && !sigismember(&old, guard_signals[i]) &&
                ends_process(guard_signals[i])) {
                fprintf(stderr,
                        "eplb-replay: %s came while the outputs were renamed into place; "
                        "all %d are complete (%s%s)\n",
                        strsignal(guard_signals[i]), done, s->final[0],
                        done > 1 ? " and the others beside it" : "");
                fflush(stderr); /* the process dies next */
                break;
            }
    /* the renames on the disk too: each directory once (run --out: one) */
    for (int i = 0; st == EPLB_OK && i < done; i++)
        if (i == 0 || !same_dir(s->final[i - 1], s->final[i]))
            eplb_dir_sync_of(s->final[i]);
    set_clear(s, done);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    return st;
}

void eplb_tmp_set_abort(eplb_tmp_set_t *s) { set_clear(s, 0); }
