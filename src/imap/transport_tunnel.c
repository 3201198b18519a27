/* SPDX-License-Identifier: MIT */
/* The tunnel side of the libuv transport: the command runs under /bin/sh
 * with its stdin and stdout as the stream; its exit status ends up in the
 * error message, and closing stops it (SIGTERM, then SIGKILL). */
#include "transport_private.h"

#include <signal.h>
#include <stdlib.h>

#include "errors.h"
#include "spawn.h"
#include "util.h"

/* ---- tunnel ----------------------------------------------------------- */

static void
tunnel_report(struct uv_transport *t)
{
    struct tunnel *tun = t->tun;

    if (!tun->exited)
        uvt_fail(t, ERR_CLOSED, "tunnel command closed its output");
    else if (tun->term_signal != 0)
        uvt_fail(t, ERR_CLOSED, "tunnel command killed by signal %d",
                 tun->term_signal);
    else
        uvt_fail(t, ERR_CLOSED, "tunnel command exited with status %lld",
                 (long long)tun->status);
}

static void
on_tunnel_grace(uv_timer_t *timer)
{
    tunnel_report(timer->data);
}

/* The command's output ended or its input broke: report once it has also
 * exited, so the message carries the exit status. */
void
uvt_tunnel_closed_output(struct uv_transport *t)
{
    if (!uvt_active(t) || t->tun->eof)
        return;
    t->tun->eof = true;
    uvt_stop_reading(t);
    if (t->tun->exited)
        tunnel_report(t);
    else
        uv_timer_start(&t->timer, on_tunnel_grace, TUNNEL_GRACE_MS, 0);
}

static void
on_tunnel_exit(uv_process_t *proc, int64_t status, int term_signal)
{
    struct uv_transport *t = proc->data;
    struct tunnel *tun = t->tun;

    tun->running = false;
    tun->exited = true;
    tun->status = status;
    tun->term_signal = term_signal;
    tun->proc_open = false;
    uv_close((uv_handle_t *)proc, uvt_on_handle_closed);
    if (t->closing) {
        /* transport_close() kept the timer for the SIGKILL escalation. */
        if (t->timer_open) {
            t->timer_open = false;
            uv_close((uv_handle_t *)&t->timer, uvt_on_handle_closed);
        }
        return;
    }
    /* Output may still be buffered in the pipe: wait for its EOF (once
     * reading has started; on_tunnel_started handles the rest). */
    if (tun->eof)
        tunnel_report(t);
    else if (uvt_active(t) && tun->started)
        uv_timer_start(&t->timer, on_tunnel_grace, TUNNEL_GRACE_MS, 0);
}

static void
on_tunnel_started(uv_timer_t *timer)
{
    struct uv_transport *t = timer->data;

    t->tun->started = true;
    uvt_stream_connected(t, (uv_stream_t *)&t->tun->out);
    if (!uvt_active(t))
        return;
    if (t->tun->exited)
        uv_timer_start(&t->timer, on_tunnel_grace, TUNNEL_GRACE_MS, 0);
    else if (t->tls_ctx != NULL && t->timeout_ms > 0)
        uv_timer_start(&t->timer, uvt_on_connect_timeout, t->timeout_ms, 0);
}

int
uvt_tunnel_spawn(struct uv_transport *t)
{
    struct tunnel *tun = xcalloc(1, sizeof(*tun));
    int r;

    t->tun = tun;
    uv_pipe_init(t->pool->loop, &tun->in, 0);
    uv_pipe_init(t->pool->loop, &tun->out, 0);
    tun->in.data = tun->out.data = tun->proc.data = t;
    tun->pipes_open = true;
    t->pending += 2;
    r = spawn_shell(t->pool->loop, &tun->proc, t->tunnel_cmd, &tun->in,
                    &tun->out, on_tunnel_exit);
    if (tun->proc.loop != NULL) {
        /* The handle is initialized even when the spawn failed. */
        tun->proc_open = true;
        t->pending++;
    }
    if (r < 0)
        return r;
    tun->running = true;
    free(t->peer);
    t->peer = xasprintf("tunnel (pid %d)", tun->proc.pid);
    t->phase = PHASE_HANDSHAKING;
    /* `connected` comes from the loop, never from inside connect. */
    uv_timer_start(&t->timer, on_tunnel_started, 0, 0);
    return 0;
}

void
uvt_on_tunnel_kill_timer(uv_timer_t *timer)
{
    struct uv_transport *t = timer->data;

    if (t->tun->running)
        uv_process_kill(&t->tun->proc, SIGKILL);
}
