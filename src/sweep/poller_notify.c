/* SPDX-License-Identifier: MIT */
/* poller: the event connection. With NOTIFY (RFC 5465) the shared
 * connection does not poll: it asks
 *
 *   NOTIFY SET STATUS (selected (MessageNew MessageExpunge))
 *              (personal (MessageNew MessageExpunge MailboxName))
 *
 * and listens. The answer's STATUS lines (one per mailbox) and every later
 * one queue the shared watchers that changed for a visit on this
 * connection. While a visit has a mailbox selected, a delivery there is
 * only seen if it comes before the sweep's last command, so each visited
 * mailbox is asked STATUS once the visits are done (after UNSELECT) and
 * visited again if it moved. The "personal" filter (not "mailboxes") makes
 * Dovecot report renames and deletions (as LIST lines), which go to the
 * owner. Every idle_refresh the connection re-arms (NOTIFY NONE, NOTIFY
 * SET): its STATUS lines cover anything a slow server did not report. */
#include "poller_private.h"

#include <stdlib.h>
#include <string.h>

#include "errors.h"
#include "imap_mbox.h"
#include "session.h"
#include "units.h"
#include "util.h"

static void arm(struct poller *p);

static const char refusal[] =
    "notify: on, but the server does not offer NOTIFY (RFC 5465): the "
    "mailboxes without a connection of their own are not watched";

void
poller_notify_show_refusal(struct poller *p)
{
    poller_set_shared_states(p, WATCHER_ERROR, refusal);
}

static void
violation(struct poller *p, const char *what)
{
    char *msg = xasprintf("protocol violation: %s; ending the connection",
                          what);

    imap_conn_abort(p->conn, ERR_PROTOCOL, msg);
    free(msg);
}

bool
poller_status_line(struct poller *p, const struct imap_response *r,
                   bool event)
{
    struct imap_mbox_status st;
    enum imap_mbox_result res;
    struct watcher *w;

    imap_mbox_status_init(&st);
    res = imap_mbox_parse_status(r, p->conn != NULL && imap_conn_utf8(p->conn),
                                 &st);
    if (res == IMAP_MBOX_MALFORMED) {
        violation(p, "malformed STATUS response");
    } else if (res == IMAP_MBOX_OK &&
               (w = poller_shared_by_name(p, buf_cstr(&st.name))) != NULL &&
               watcher_status_changed(w, &st, event)) {
        poller_enqueue(p, w);
        if (p->st == PS_LISTENING)
            poller_visit_next(p);
    }
    imap_mbox_status_free(&st);
    return res != IMAP_MBOX_OTHER;
}

bool
poller_notify_untagged(struct poller *p, const struct imap_response *r)
{
    struct imap_mbox_list l;
    enum imap_mbox_result res;

    if (poller_status_line(p, r, true))
        return true;
    imap_mbox_list_init(&l);
    res = imap_mbox_parse_list(r, imap_conn_utf8(p->conn), &l);
    if (res == IMAP_MBOX_MALFORMED) {
        violation(p, "malformed LIST response");
    } else if (res == IMAP_MBOX_OK && p->ops->mailbox_event != NULL) {
        /* a rename names the old mailbox; a deletion is \NonExistent */
        if (l.has_oldname)
            p->ops->mailbox_event(p->arg, buf_cstr(&l.oldname),
                                  buf_cstr(&l.name));
        else if (l.flags & IMAP_MBOX_NONEXISTENT)
            p->ops->mailbox_event(p->arg, buf_cstr(&l.name), NULL);
    }
    imap_mbox_list_free(&l);
    return res != IMAP_MBOX_OTHER;
}

static void
armed(struct imap_conn *c, const struct imap_reply *r, void *arg)
{
    struct poller *p = arg;
    char d[32];

    (void)c;
    if (r->status == IMAP_CANCELLED || r->status == IMAP_DISCONNECTED ||
        p->st != PS_ARMING)
        return;
    if (r->status != IMAP_OK) {
        /* once per poller: it polls from now on, also after reconnecting */
        log_ctx_msg(p->log, LL_WARNING,
                    "NOTIFY SET refused (%s %s): polling the mailboxes "
                    "without a connection of their own every %s instead",
                    imap_status_name(r->status), r->text,
                    units_format_duration(p->acc->poll_interval, d,
                                          sizeof(d)));
        p->notify = false;
        p->notify_failed = true;
        poller_set_notified(p, false);
        poller_cycle(p);
        return;
    }
    poller_set_notified(p, true);
    uv_timer_start(&p->timer, poller_on_timer, p->acc->idle_refresh * 1000,
                   0);
    p->pos = 0;
    poller_visit_next(p);
}

static void
arm(struct poller *p)
{
    struct imap_build *b;
    struct imap_cmd_opts o = {.done = armed, .arg = p};

    p->rearm_due = false;
    p->st = PS_ARMING;
    poller_clear_queue(p);
    b = imap_conn_build(p->conn);
    imap_build_atom(b, "NOTIFY");
    imap_build_atom(b, "NONE");
    imap_conn_submit(p->conn, b, NULL);
    b = imap_conn_build(p->conn);
    imap_build_atom(b, "NOTIFY");
    imap_build_atom(b, "SET");
    imap_build_atom(b, "STATUS");
    imap_build_list_open(b);
    imap_build_atom(b, "selected");
    imap_build_list_open(b);
    imap_build_atom(b, "MessageNew");
    imap_build_atom(b, "MessageExpunge");
    imap_build_list_close(b);
    imap_build_list_close(b);
    imap_build_list_open(b);
    imap_build_atom(b, "personal");
    imap_build_list_open(b);
    imap_build_atom(b, "MessageNew");
    imap_build_atom(b, "MessageExpunge");
    imap_build_atom(b, "MailboxName");
    imap_build_list_close(b);
    imap_build_list_close(b);
    imap_conn_submit(p->conn, b, &o);
}

bool
poller_notify_ready(struct poller *p)
{
    bool has = imap_conn_has_cap(p->conn, "NOTIFY");

    p->notify = false;
    if (p->env->once || p->acc->notify == CONFIG_NOTIFY_OFF ||
        (!has && p->acc->notify == CONFIG_NOTIFY_AUTO) || p->notify_failed) {
        poller_set_notified(p, false);
        return false;
    }
    if (!has) {
        log_ctx_msg(p->log, LL_ERROR, "%s", refusal);
        p->st = PS_REFUSED;
        p->refused = true;
        poller_notify_show_refusal(p);
        session_logout(p->session);
        return true;
    }
    p->notify = true;
    arm(p);
    return true;
}

static void
check_visited(struct poller *p)
{
    p->st = PS_STATUS;
    p->status_pending = 0;
    poller_unselect(p);
    for (size_t i = 0; i < p->n_visited; i++) {
        struct watcher *w = p->visited[i];

        if (!watcher_gone(w) && watcher_is_shared(w) && !watcher_halted(w))
            poller_send_status(p, w);
        watcher_unref(w);
    }
    p->n_visited = 0;
    if (p->status_pending == 0)
        poller_visit_next(p);
}

void
poller_notify_drained(struct poller *p)
{
    poller_clear_queue(p); /* every entry was taken: start afresh */
    if (p->n_visited > 0)
        check_visited(p);
    else if (p->rearm_due)
        arm(p);
    else
        p->st = PS_LISTENING;
}

void
poller_notify_timer(struct poller *p)
{
    if (p->st == PS_LISTENING)
        arm(p);
    else if (p->st != PS_ARMING)
        p->rearm_due = true;
}

void
poller_notify_reset(struct poller *p)
{
    for (size_t i = 0; i < p->n_visited; i++)
        watcher_unref(p->visited[i]);
    p->n_visited = 0;
    p->rearm_due = false;
}
