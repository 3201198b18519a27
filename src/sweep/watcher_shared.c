/* SPDX-License-Identifier: MIT */
/* watcher: shared watchers, the poller's side. A mailbox beyond the
 * account's connection budget has no connection of its own; the poller
 * visits it on the shared connection (SELECT, sweep, done), and a reload
 * may switch a watcher between shared and dedicated. */
#include "watcher_private.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "util.h"

void
watcher_finish_visit(struct watcher *w, bool ok)
{
    void (*done)(struct watcher *, bool, void *) = w->visit_done;

    w->visiting = false;
    w->visit_done = NULL;
    watcher_conn_gone(w);
    if (!w->stopping)
        watcher_set_state(w, WATCHER_POLLING);
    if (done != NULL) {
        /* the poller goes on to its next visit from here */
        watcher_ref(w);
        done(w, ok, w->visit_arg);
        watcher_unref(w);
    }
}

void
watcher_visit(struct watcher *w, struct imap_conn *conn, bool force_full,
              void (*done)(struct watcher *, bool, void *), void *arg)
{
    watcher_conn_gone(w); /* anything still in flight from an earlier visit */
    w->conn = conn;
    w->visiting = true;
    w->visit_full = force_full || w->want_full;
    w->want_full = false;
    w->visit_done = done;
    w->visit_arg = arg;
    watcher_reselect(w);
}

void
watcher_conn_event(struct watcher *w, const struct imap_response *r)
{
    watcher_handle_event(w, r);
}

void
watcher_visit_abort(struct watcher *w, const char *error)
{
    if (w->sweep != NULL) {
        sweep_detach(w->sweep);
        w->sweep = NULL;
    }
    w->visiting = false;
    w->visit_done = NULL;
    watcher_conn_gone(w);
    if (error != NULL)
        watcher_set_error(w, error);
    if (w->env->once) {
        watcher_set_state(w, WATCHER_ERROR);
        watcher_report_once(w, false);
    } else if (!w->stopping) {
        watcher_set_state(w, WATCHER_POLLING);
    }
}

bool
watcher_status_changed(struct watcher *w, const struct imap_mbox_status *st,
                       bool event)
{
    if (event)
        w->last_event = (uint64_t)time(NULL);
    if (st->has_messages && st->messages != w->exists) {
        w->exists = st->messages;
        watcher_changed(w);
    }
    if (w->halted)
        return false;
    if (!w->swept_once || w->want_full || watcher_full_due_in(w) == 0 ||
        (st->has_uidvalidity && st->uidvalidity != w->uidvalidity))
        return true;
    /* UIDs below the UIDNEXT of the last SELECT were there for its sweep
     * (or gone again before it) */
    return st->has_uidnext && st->uidnext > 0 &&
           st->uidnext - 1 > w->uid_swept && st->uidnext > w->uidnext_seen;
}

void
watcher_set_notified(struct watcher *w, bool notified)
{
    if (w->notified != notified) {
        w->notified = notified;
        watcher_changed(w);
    }
}

const char *
watcher_via_name(enum watcher_via v)
{
    switch (v) {
    case WATCHER_VIA_IDLE:
        return "idle";
    case WATCHER_VIA_NOTIFY:
        return "notify";
    case WATCHER_VIA_POLL:
        return "poll";
    }
    return "?";
}

void
watcher_retire_session(struct watcher *w)
{
    if (w->sweep != NULL) {
        sweep_detach(w->sweep);
        w->sweep = NULL;
    }
    if (w->session != NULL) {
        session_free(w->retired);
        w->retired = w->session;
        w->session = NULL;
        watcher_conn_gone(w);
        session_logout(w->retired);
    }
}

void
watcher_halt(struct watcher *w, const char *why)
{
    watcher_timer_clear(w);
    if (w->visiting)
        watcher_visit_abort(w, NULL); /* the owner told the poller first */
    watcher_retire_session(w);
    w->halted = true;
    w->want_full = w->want_incr = false;
    watcher_set_error(w, why);
    watcher_set_state(w, WATCHER_STOPPED);
    watcher_report_once(w, false);
}

bool
watcher_halted(const struct watcher *w)
{
    return w->halted;
}

void
watcher_rename(struct watcher *w, const char *name)
{
    bool reconnect = !w->shared && !w->halted;

    if (w->visiting)
        watcher_visit_abort(w, NULL); /* the owner told the poller first */
    /* a dedicated connection has the old name selected; its sweep may
     * still name the old mailbox in its log lines: it goes first */
    if (reconnect) {
        watcher_timer_clear(w);
        watcher_retire_session(w);
    }
    free(w->mailbox);
    w->mailbox = xstrdup(name);
    w->log.mailbox = w->mailbox;
    w->want_full = true;
    if (reconnect)
        watcher_start_connect(w);
}

void
watcher_set_shared_state(struct watcher *w, enum watcher_state st,
                         const char *error)
{
    if (error != NULL)
        watcher_set_error(w, error);
    watcher_set_state(w, st);
    if (st == WATCHER_ERROR)
        watcher_report_once(w, false);
}

bool
watcher_is_shared(const struct watcher *w)
{
    return w->shared;
}

void
watcher_set_shared(struct watcher *w, bool shared)
{
    if (w->shared == shared)
        return;
    w->shared = shared;
    watcher_timer_clear(w);
    if (w->visiting)
        watcher_visit_abort(w, NULL); /* the owner told the poller first */
    if (shared) {
        /* give the connection back; the poller takes over */
        watcher_retire_session(w);
        w->want_full = true;
        watcher_set_state(w, WATCHER_POLLING);
    } else {
        watcher_start_connect(w);
    }
}

