/* tmpfile_guard.h - delete temporary output files when the process is
 * killed by SIGINT, SIGTERM or SIGHUP.
 *
 * Outputs are written under a temporary name and renamed when complete
 * (trace writer, results.h5).  A guarded temporary path is unlinked by the
 * signal handler, which then re-raises the signal with its default action,
 * so the process still dies of it (exit status as before, no file left).
 * The handler only calls unlink() and raise() (async-signal-safe) on paths
 * formatted when the guard was armed.
 *
 * Handlers are installed when the first path is armed and the previous
 * actions restored when the last one is disarmed; a signal that did not
 * have its default action (a background job that ignores SIGINT, a program
 * with its own handler) is left alone.  At most EPLB_TMP_GUARD_SLOTS paths
 * of at most 4095 bytes are guarded at once; arming more fails quietly
 * (the file is then just not cleaned up on a signal).  Thread-safe.
 *
 * The handler does its work on the main thread, the one that creates the
 * files and directories (so that it cannot delete a path before the code
 * it interrupted creates it), and the process dies there, in the handler:
 * every thread the program starts must be started with eplb_thread_create,
 * which blocks those signals in it; a thread that does not block them (a
 * library's) hands the signal on to the main thread. */
#ifndef EPLB_TMPFILE_GUARD_H
#define EPLB_TMPFILE_GUARD_H

#include <pthread.h>

#include "eplb.h"

#define EPLB_TMP_GUARD_SLOTS 16

/* Guard path; returns a slot id (>= 0) for eplb_tmp_guard_disarm, or -1 if
 * the path could not be guarded (too long, all slots taken). */
int eplb_tmp_guard_arm(const char *path);
/* Guard a directory the command created: removed (if empty, after the
 * guarded files) on those signals.  Same slots and return as above. */
int eplb_tmp_guard_arm_dir(const char *path);
/* Stop guarding slot id (from eplb_tmp_guard_arm; -1 is ignored).  Call it
 * after the temporary file was renamed or deleted. */
void eplb_tmp_guard_disarm(int id);

/* pthread_create, with SIGINT, SIGTERM and SIGHUP blocked in the new thread
 * (it inherits the mask, blocked around the call: from its first
 * instruction on, the signals go to the main thread).  Returns as
 * pthread_create. */
int eplb_thread_create(pthread_t *t, const pthread_attr_t *attr, void *(*fn)(void *),
                       void *arg);

/* ---- output sets ---------------------------------------------------------
 * Files that are only meaningful together (run --out: results.h5,
 * config.json, summary.json, summary.csv, report.txt) are each written under a guarded
 * temporary name "<final>.tmp.<pid>" and renamed to their final names only
 * once every one of them is complete, so that a failed run leaves the final
 * names as they were: no mix of new files and earlier ones.  Not
 * thread-safe (one set belongs to one thread). */
#define EPLB_TMP_SET_MAX 8

typedef struct {
    int n;
    char *final[EPLB_TMP_SET_MAX], *tmp[EPLB_TMP_SET_MAX];
    int guard[EPLB_TMP_SET_MAX];
} eplb_tmp_set_t;

#define EPLB_TMP_SET_INIT {0, {NULL}, {NULL}, {0}}

/* fsync() path (opened read-only): 0, or -1 with errno.  Before a
 * temporary file is renamed into place, so that after a crash or power
 * loss the final name holds a whole file or the earlier one. */
int eplb_file_sync(const char *path);
/* fsync() the directory holding path, after renames into it (best effort:
 * errors are ignored, some file systems refuse it). */
void eplb_dir_sync_of(const char *path);
/* Put a complete temporary file into place: sync tmp, rename it to final,
 * sync final's directory.  EPLB_ERR_IO "FINAL: cannot sync TMP: <errno
 * text>" or "FINAL: cannot rename TMP to it: <errno text>" (tmp is left
 * for the caller to remove).  Where tmp is final (a member of an output
 * set, which its commit syncs and renames), nothing is done. */
eplb_status_t eplb_tmp_rename_into_place(const char *tmp, const char *final);

/* Write into `final` a temporary name "<final>.tmp.<pid>" of this process
 * (n bytes at most; strlen(final) + 32 always fits), or, where `final` is
 * such a name already (a member of an output set handed to a writer that
 * makes its own), `final` itself: one suffix, not two
 * ("results.h5.tmp.P.tmp.P" before). */
void eplb_tmp_name(char *out, size_t n, const char *final);

/* Add final path `final` to set s and guard its temporary name, which *tmp
 * receives (owned by the set) for the caller to write the file to. */
eplb_status_t eplb_tmp_set_add(const char **tmp, eplb_tmp_set_t *s, const char *final);
/* Rename every temporary file to its final name, after checking that each
 * exists and syncing it to the disk (eplb_file_sync), and sync the
 * directories after the renames (eplb_dir_sync_of); then empty the set.
 * The guard's signals wait until it is done (a signal does not stop it
 * half-way).  On failure ("FINAL: cannot rename TMP to it: <errno text>")
 * the final names are put back as they were: each earlier file is kept
 * under a hard link "<final>.old.<pid>" until the renames are done and
 * renamed back, a new file that had no earlier one is removed, and the
 * temporary files are removed (best effort: where no link can be made, or
 * a rename back fails, that member keeps the new file).  A guarded signal
 * that came meanwhile (and is not blocked by the caller) is delivered when
 * it returns, so the process dies of it with the set complete (unless it
 * is ignored or has a caller's handler: then nothing is said); a line on
 * stderr says so first ("eplb-replay: Terminated came while the outputs were
 * renamed into place; all N are complete (FIRST ...)"). */
eplb_status_t eplb_tmp_set_commit(eplb_tmp_set_t *s);
/* Tests only: called (where set) after each rename of a commit with the
 * number renamed so far, while the signals wait. */
extern void (*eplb_tmp_set_rename_hook)(int renamed);
/* Remove every temporary file of the set (those that exist) and empty it;
 * the final names are not touched. */
void eplb_tmp_set_abort(eplb_tmp_set_t *s);

#endif
