/* SPDX-License-Identifier: MIT */
#include "spawn.h"

#include <stddef.h>
#include <string.h>
#include <unistd.h>

int
spawn_shell(uv_loop_t *loop, uv_process_t *proc, const char *command,
            uv_pipe_t *in, uv_pipe_t *out, uv_exit_cb exit_cb)
{
    char *args[] = {"/bin/sh", "-c", (char *)command, NULL};
    uv_process_options_t opts;
    uv_stdio_container_t stdio[3];
    uv_file to_child[2] = {-1, -1}, from_child[2] = {-1, -1};
    int r;

    /* Real pipes, not socketpairs: the command sees what ssh would give
     * it (Dovecot's imap binary refuses a socket on stdin as "inetd"). */
    if (in != NULL) {
        r = uv_pipe(to_child, 0, UV_NONBLOCK_PIPE);
        if (r < 0)
            return r;
    }
    r = uv_pipe(from_child, UV_NONBLOCK_PIPE, 0);
    if (r < 0)
        goto out;
    /* Our ends go to the handles before the spawn, so that no failure
     * leaves a child behind. */
    if (in != NULL) {
        r = uv_pipe_open(in, to_child[1]);
        if (r < 0)
            goto out;
        to_child[1] = -1;
    }
    r = uv_pipe_open(out, from_child[0]);
    if (r < 0)
        goto out;
    from_child[0] = -1;

    if (in != NULL) {
        stdio[0].flags = UV_INHERIT_FD;
        stdio[0].data.fd = to_child[0];
    } else {
        stdio[0].flags = UV_IGNORE;
    }
    stdio[1].flags = UV_INHERIT_FD;
    stdio[1].data.fd = from_child[1];
    stdio[2].flags = UV_INHERIT_FD;
    stdio[2].data.fd = 2;
    memset(&opts, 0, sizeof(opts));
    opts.file = args[0];
    opts.args = args;
    opts.exit_cb = exit_cb;
    opts.stdio = stdio;
    opts.stdio_count = 3;
    r = uv_spawn(loop, proc, &opts);
out:
    /* The child's ends, and ours unless a handle took them. */
    for (size_t i = 0; i < 2; i++) {
        if (to_child[i] >= 0)
            close(to_child[i]);
        if (from_child[i] >= 0)
            close(from_child[i]);
    }
    return r;
}
