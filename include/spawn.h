/* SPDX-License-Identifier: MIT */
/* spawn: run a command line through "/bin/sh -c" as a child of a libuv
 * loop, its stdout (and, if asked, its stdin) on pipes to us; its stderr
 * and environment are the daemon's. The pipes are real pipes, not
 * socketpairs, so the command sees what a shell pipeline or ssh would give
 * it. The tunnel transport and the secret commands run their commands
 * through it; reading, killing and reporting the exit stay with them. */
#ifndef IMAPSWEEP_SPAWN_H
#define IMAPSWEEP_SPAWN_H

#include <uv.h>

/* Start `command`. The caller owns proc, in and out: proc zeroed (as
 * calloc leaves it), in and out set up with uv_pipe_init(loop, p, 0); in
 * may be NULL, and the child's stdin is then /dev/null.
 *
 * Returns 0 when the child runs: out reads its stdout, in (if any) writes
 * to its stdin, and exit_cb reports its exit. Otherwise returns a libuv
 * error and no child runs. Either way the caller closes in and out with
 * uv_close(), and proc too whenever proc->loop is set (uv_spawn sets up
 * the handle even when it fails). */
int spawn_shell(uv_loop_t *loop, uv_process_t *proc, const char *command,
                uv_pipe_t *in, uv_pipe_t *out, uv_exit_cb exit_cb);

#endif
