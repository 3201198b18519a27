/* SPDX-License-Identifier: MIT */
#include "poller_private.h"

#include <stdlib.h>
#include <string.h>

#include "backoff.h"
#include "session.h"
#include "util.h"

static void poller_connect(struct poller *p);

/* --- the watchers it holds ------------------------------------------------ */

static void
drop_current(struct poller *p)
{
    struct watcher *w = p->current;

    p->current = NULL;
    watcher_unref(w);
}

/* Abandon the visit in progress, if any (the watcher is told). */
static void
abort_visit(struct poller *p)
{
    if (p->current != NULL) {
        watcher_visit_abort(p->current, NULL);
        drop_current(p);
    }
}

void
poller_clear_queue(struct poller *p)
{
    for (size_t i = 0; i < p->n_queue; i++)
        watcher_unref(p->queue[i]);
    p->n_queue = 0;
    p->pos = 0;
}

/* --- the cycle ----------------------------------------------------------- */

void
poller_set_shared_states(struct poller *p, enum watcher_state st, const char *err)
{
    size_t n;
    struct watcher *const *w = p->ops->watchers(p->arg, &n);

    for (size_t i = 0; i < n; i++) {
        if (watcher_is_shared(w[i]) && w[i] != p->current)
            watcher_set_shared_state(w[i], st, err);
    }
}

void
poller_on_timer(uv_timer_t *t)
{
    struct poller *p = t->data;

    if (p->st == PS_BACKOFF || p->st == PS_DOWN)
        poller_connect(p);
    else if (p->st == PS_VISITING && p->current == NULL)
        poller_visit_next(p); /* the visit was abandoned (poller_forget) */
    else if (p->notify)
        poller_notify_timer(p);
    else if (p->st == PS_WAITING)
        poller_cycle(p);
}

static void
visit_done(struct watcher *w, bool ok, void *arg)
{
    (void)w;
    (void)ok;
    poller_visit_next(arg);
}

/* Close the visited mailbox before asking STATUS: RFC 3501 says STATUS
 * should not be used on the selected mailbox. */
void
poller_unselect(struct poller *p)
{
    if (imap_conn_mailbox(p->conn)->selected &&
        imap_conn_has_cap(p->conn, "UNSELECT")) {
        struct imap_build *b = imap_conn_build(p->conn);

        imap_build_atom(b, "UNSELECT");
        imap_conn_submit(p->conn, b, NULL);
    }
}

void
poller_visit_next(struct poller *p)
{
    drop_current(p);
    if (p->st == PS_STOPPING)
        return;
    while (p->pos < p->n_queue) {
        struct watcher *w = p->queue[p->pos];

        p->queue[p->pos++] = NULL;
        /* dropped by a reload meanwhile, or no longer shared */
        if (w == NULL || watcher_gone(w) || !watcher_is_shared(w) ||
            watcher_halted(w)) {
            watcher_unref(w);
            continue;
        }
        p->st = PS_VISITING;
        p->current = w;       /* the queue's reference moves here */
        if (p->notify) {
            size_t i;

            for (i = 0; i < p->n_visited && p->visited[i] != w; i++)
                ;
            if (i == p->n_visited) {
                ARRAY_GROW(p->visited, p->cap_visited, p->n_visited + 1);
                p->visited[p->n_visited++] = watcher_ref(w);
            }
        }
        watcher_visit(w, p->conn, p->env->once, visit_done, p);
        return;
    }
    p->failures = 0;
    if (p->notify) {
        poller_notify_drained(p);
        return;
    }
    if (p->env->once) {
        p->st = PS_STOPPING;
        session_logout(p->session);
        return;
    }
    p->st = PS_WAITING;
    if (p->again) {
        p->again = false;
        uv_timer_start(&p->timer, poller_on_timer, 0, 0);
    } else {
        uv_timer_start(&p->timer, poller_on_timer,
                       p->acc->poll_interval * 1000, 0);
    }
}

struct watcher *
poller_shared_by_name(struct poller *p, const char *name)
{
    size_t n;
    struct watcher *const *w = p->ops->watchers(p->arg, &n);

    for (size_t i = 0; i < n; i++) {
        if (watcher_is_shared(w[i]) && !watcher_halted(w[i]) &&
            (strcmp(watcher_mailbox(w[i]), name) == 0 ||
             (util_strcaseeq(name, "INBOX") &&
              util_strcaseeq(watcher_mailbox(w[i]), "INBOX"))))
            return w[i];
    }
    return NULL;
}

void
poller_enqueue(struct poller *p, struct watcher *w)
{
    for (size_t i = 0; i < p->n_queue; i++) {
        if (p->queue[i] == w)
            return;
    }
    ARRAY_GROW(p->queue, p->cap_queue, p->n_queue + 1);
    p->queue[p->n_queue++] = watcher_ref(w);
}

/* A STATUS in flight: the poller (which outlives it: freeing the poller
 * cancels its commands first) and a reference to the watcher it asks
 * about. */
struct status_req {
    struct poller *p;
    struct watcher *w;
};

static bool
status_untagged(struct imap_conn *c, const struct imap_response *r,
                void *arg)
{
    /* the command's argument is its status_req, not the poller */
    (void)c;
    return poller_status_line(((struct status_req *)arg)->p, r, false);
}

static void
status_done(struct imap_conn *c, const struct imap_reply *r, void *arg)
{
    struct status_req *req = arg;
    struct poller *p = req->p;

    (void)c;
    if ((r->status == IMAP_NO || r->status == IMAP_BAD) &&
        !watcher_gone(req->w)) {
        char *msg = xasprintf("STATUS \"%s\" failed: %s",
                              watcher_mailbox(req->w), r->text);

        watcher_set_shared_state(req->w, WATCHER_POLLING, msg);
        free(msg);
    }
    watcher_unref(req->w);
    free(req);
    if (r->status == IMAP_CANCELLED || r->status == IMAP_DISCONNECTED)
        return;
    if (--p->status_pending == 0 && p->st == PS_STATUS) {
        p->pos = 0;
        poller_visit_next(p);
    }
}

bool
poller_send_status(struct poller *p, struct watcher *w)
{
    struct imap_build *b = imap_conn_build(p->conn);
    struct status_req *req = xmalloc(sizeof(*req));
    struct imap_cmd_opts o;

    req->p = p;
    req->w = watcher_ref(w);
    imap_build_atom(b, "STATUS");
    imap_build_mailbox(b, watcher_mailbox(w));
    imap_build_list_open(b);
    imap_build_atom(b, "MESSAGES");
    imap_build_atom(b, "UIDNEXT");
    imap_build_atom(b, "UIDVALIDITY");
    imap_build_list_close(b);
    o = (struct imap_cmd_opts){.done = status_done,
                               .untagged = status_untagged, .arg = req};
    if (imap_conn_submit(p->conn, b, &o) < 0) {
        watcher_unref(req->w);
        free(req);
        return false;
    }
    p->status_pending++;
    return true;
}

void
poller_set_notified(struct poller *p, bool notified)
{
    size_t n;
    struct watcher *const *w = p->ops->watchers(p->arg, &n);

    for (size_t i = 0; i < n; i++) {
        if (watcher_is_shared(w[i]))
            watcher_set_notified(w[i], notified);
    }
}

void
poller_cycle(struct poller *p)
{
    size_t n;
    struct watcher *const *w = p->ops->watchers(p->arg, &n);

    poller_clear_queue(p);
    if (p->env->once) {
        /* every shared mailbox, fully */
        for (size_t i = 0; i < n; i++) {
            if (watcher_is_shared(w[i]))
                poller_enqueue(p, w[i]);
        }
        poller_visit_next(p);
        return;
    }
    p->st = PS_STATUS;
    p->status_pending = 0;
    poller_unselect(p);
    for (size_t i = 0; i < n; i++) {
        if (watcher_is_shared(w[i]) && !watcher_halted(w[i]))
            poller_send_status(p, w[i]);
    }
    if (p->status_pending == 0)
        poller_visit_next(p);
}

/* --- the connection ------------------------------------------------------ */

static void
p_ready(struct session *s, void *arg)
{
    struct poller *p = arg;

    p->conn = session_conn(s);
    poller_set_shared_states(p, WATCHER_POLLING, NULL);
    if (!poller_notify_ready(p))
        poller_cycle(p);
}

static void
p_untagged(struct session *s, const struct imap_response *r, void *arg)
{
    struct poller *p = arg;

    (void)s;
    if (p->notify && poller_notify_untagged(p, r))
        return;
    if (p->current != NULL)
        watcher_conn_event(p->current, r);
}

static void
p_closed(struct session *s, int err, const char *msg, bool auth, void *arg)
{
    struct poller *p = arg;
    uint64_t delay;
    bool was_notify;

    session_free(s);
    p->session = NULL;
    p->conn = NULL;
    if (p->current != NULL) {
        watcher_visit_abort(p->current, err ? msg : NULL);
        drop_current(p);
    }
    poller_clear_queue(p);
    poller_notify_reset(p);
    was_notify = p->notify;
    p->notify = false;
    if (p->st == PS_REFUSED) {
        p->st = PS_DOWN;
        return;
    }
    if (p->st == PS_STOPPING) {
        p->st = PS_DOWN;
        p->ops->logged_out(p->arg);
        return;
    }
    if (p->env->once) {
        poller_set_shared_states(p, WATCHER_ERROR, msg);
        p->st = PS_DOWN;
        return;
    }
    delay = auth ? p->acc->reconnect_max * 1000
                 : backoff_delay_ms(p->failures, p->acc->reconnect_min * 1000,
                                    p->acc->reconnect_max * 1000);
    p->failures++;
    log_ctx_msg(p->log, LL_WARNING, "%s connection: %s; reconnecting in %.1fs",
                was_notify ? "event" : "polling", msg,
                (double)delay / 1000.0);
    poller_set_shared_states(p, WATCHER_BACKOFF, msg);
    p->st = PS_BACKOFF;
    uv_timer_start(&p->timer, poller_on_timer, delay, 0);
}

static const struct session_events poller_events = {
    .ready = p_ready,
    .untagged = p_untagged,
    .closed = p_closed,
};

static void
poller_connect(struct poller *p)
{
    p->st = PS_CONNECTING;
    poller_set_shared_states(p, WATCHER_CONNECTING, NULL);
    p->session = session_new(&p->env->session, p->config, p->acc, p->tls,
                             p->secrets, NULL, &poller_events, p);
}

/* --- the owner's calls --------------------------------------------------- */

struct poller *
poller_new(const struct watcher_env *env, struct config *config,
           const struct config_account *acc, struct tls_ctx *tls,
           struct secret_cache *secrets, const struct log_ctx *log,
           const struct poller_ops *ops, void *arg)
{
    struct poller *p = xcalloc(1, sizeof(*p));

    p->env = env;
    p->config = config_ref(config);
    p->acc = acc;
    p->tls = tls;
    p->secrets = secrets;
    p->log = log;
    p->ops = ops;
    p->arg = arg;
    p->st = PS_DOWN;
    uv_timer_init(env->session.loop, &p->timer);
    p->timer.data = p;
    return p;
}

void
poller_set_ops(struct poller *p, const struct poller_ops *ops, void *arg)
{
    p->ops = ops;
    p->arg = arg;
}

bool
poller_is_down(const struct poller *p)
{
    return p->st == PS_DOWN && p->session == NULL;
}

void
poller_start(struct poller *p)
{
    poller_connect(p);
}

void
poller_set_account(struct poller *p, struct config *config,
                   const struct config_account *acc)
{
    config_ref(config);
    config_unref(p->config);
    p->config = config;
    p->acc = acc;
    session_set_account(p->session, config, acc);
}

void
poller_forget(struct poller *p, struct watcher *w)
{
    if (p->current == w) {
        abort_visit(p);
        /* go on with the rest of the cycle, from the loop: the owner is
         * in the middle of changing its watchers */
        if (p->st == PS_VISITING)
            uv_timer_start(&p->timer, poller_on_timer, 0, 0);
    }
    for (size_t q = p->pos; q < p->n_queue; q++) {
        if (p->queue[q] == w) {
            p->queue[q] = NULL;
            watcher_unref(w);
        }
    }
}

void
poller_sweep_soon(struct poller *p)
{
    if (p->refused) {
        poller_notify_show_refusal(p); /* for mailboxes new to it */
        return;
    }
    if (p->notify) {
        /* NOTIFY SET again: its STATUS lines show what is due */
        p->rearm_due = true;
        if (p->st == PS_LISTENING)
            uv_timer_start(&p->timer, poller_on_timer, 0, 0);
        return;
    }
    if (p->st == PS_WAITING)
        uv_timer_start(&p->timer, poller_on_timer, 0, 0);
    else
        p->again = true;
}

bool
poller_stop(struct poller *p)
{
    uv_timer_stop(&p->timer);
    abort_visit(p);
    poller_clear_queue(p);
    poller_notify_reset(p);
    if (p->session == NULL)
        return false;
    p->st = PS_STOPPING;
    session_logout(p->session);
    return true;
}

static void
on_poller_timer_closed(uv_handle_t *h)
{
    struct poller *p = h->data;

    free(p->queue);
    free(p->visited);
    free(p);
}

void
poller_free(struct poller *p)
{
    if (p == NULL)
        return;
    abort_visit(p);
    poller_clear_queue(p);
    poller_notify_reset(p);
    /* cancels the STATUS commands in flight: their references go */
    session_free(p->session);
    p->session = NULL;
    config_unref(p->config);
    p->config = NULL;
    uv_timer_stop(&p->timer);
    uv_close((uv_handle_t *)&p->timer, on_poller_timer_closed);
}
