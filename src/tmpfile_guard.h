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
 * (the file is then just not cleaned up on a signal).  Thread-safe. */
#ifndef EPLB_TMPFILE_GUARD_H
#define EPLB_TMPFILE_GUARD_H

#define EPLB_TMP_GUARD_SLOTS 16

/* Guard path; returns a slot id (>= 0) for eplb_tmp_guard_disarm, or -1 if
 * the path could not be guarded (too long, all slots taken). */
int eplb_tmp_guard_arm(const char *path);
/* Stop guarding slot id (from eplb_tmp_guard_arm; -1 is ignored).  Call it
 * after the temporary file was renamed or deleted. */
void eplb_tmp_guard_disarm(int id);

#endif
