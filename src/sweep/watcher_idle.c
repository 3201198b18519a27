/* SPDX-License-Identifier: MIT */
/* watcher: the note that the server's IDLE only polls (idle_beat.h says
 * how that is found), with the idle_refresh that bounds the wait. */
#include "watcher_private.h"

#include <stdlib.h>
#include <string.h>

#include "sweep.h"
#include "units.h"
#include "util.h"

/* A change the server announced while idling (not in answer to one of
 * our commands): when, after that IDLE began, tells a polling IDLE from a
 * pushing one. One sample per IDLE: an EXISTS often comes with a RECENT
 * or FETCH in the same breath. */
void
watcher_sample_idle_change(struct watcher *w, const struct imap_response *r)
{
    uint64_t since, now;

    if (w->session == NULL || w->conn == NULL || w->visiting ||
        (strcmp(r->name, "EXISTS") != 0 && strcmp(r->name, "EXPUNGE") != 0 &&
         strcmp(r->name, "FETCH") != 0) ||
        !imap_conn_idle_since(w->conn, &since) ||
        since == w->beat_idle_since)
        return;
    w->beat_idle_since = since;
    now = uv_now(w->env->session.loop);
    log_ctx_msg(&w->log, LL_DEBUG, "%s announced %.3f s into IDLE", r->name,
                (double)(now - since) / 1000.0);
    if (idle_beat_add(&w->beat, now - since)) {
        char refresh[32];
        char *text = xasprintf(
            "IDLE on this server polls: changes arrive only every %.1f s "
            "(on a beat from the start of IDLE), so new mail can wait that "
            "long; idle_refresh (now %s) bounds the wait: set it lower",
            (double)w->beat.beat_ms / 1000.0,
            units_format_duration(w->acc->idle_refresh, refresh,
                                  sizeof(refresh)));

        (void)sweep_memo_note(&w->memo, &w->log, text);
        free(text);
        watcher_changed(w);
    }
}
