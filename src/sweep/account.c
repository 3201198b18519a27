#include "account.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "backoff.h"
#include "errors.h"
#include "imap_utf7.h"
#include "log.h"
#include "tls.h"
#include "util.h"

enum poller_state {
    PS_DOWN,
    PS_CONNECTING,
    PS_STATUS,
    PS_VISITING,
    PS_WAITING,
    PS_BACKOFF,
    PS_STOPPING,
};

/* The shared connection of the mailboxes beyond the budget. */
struct poller {
    struct account *a;
    enum poller_state st;
    struct session *session;
    struct imap_conn *conn;
    uv_timer_t timer;
    struct watcher **queue;      /* to visit in this cycle */
    size_t n_queue, cap_queue, pos;
    struct watcher *current;
    unsigned status_pending;
    unsigned failures;
    bool again;                  /* a sweep was asked for during a cycle */
};

struct account {
    const struct watcher_env *env;
    struct config *config;
    const struct config_account *acc;
    char *name;
    struct log_ctx log;          /* the account name */
    struct tls_ctx *tls;
    char *tls_error;
    struct watcher **w;
    size_t n, cap;
    struct watcher **gone;       /* removed by a reload, logging out */
    size_t n_gone, cap_gone;
    struct poller *poller;
    unsigned stop_pending;
    void (*stop_cb)(struct account *a, void *arg);
    void *stop_arg;
    uv_timer_t stop_timer;       /* reports stop completion from the loop */
    bool stopping;
};

static void poller_cycle(struct poller *p);
static void poller_connect(struct poller *p);
static void stop_one_done(struct account *a);

/* --- the poller ------------------------------------------------------------ */

static void
set_shared_states(struct poller *p, enum watcher_state st, const char *err)
{
    struct account *a = p->a;

    for (size_t i = 0; i < a->n; i++) {
        if (watcher_is_shared(a->w[i]) && a->w[i] != p->current)
            watcher_set_shared_state(a->w[i], st, err);
    }
}

static void
on_poll_timer(uv_timer_t *t)
{
    struct poller *p = t->data;

    if (p->st == PS_BACKOFF || p->st == PS_DOWN)
        poller_connect(p);
    else if (p->st == PS_WAITING)
        poller_cycle(p);
}

static void visit_next(struct poller *p);

static void
visit_done(struct watcher *w, bool ok, void *arg)
{
    (void)w;
    (void)ok;
    visit_next(arg);
}

static void
visit_next(struct poller *p)
{
    struct account *a = p->a;

    p->current = NULL;
    if (p->st == PS_STOPPING)
        return;
    while (p->pos < p->n_queue) {
        struct watcher *w = p->queue[p->pos++];

        if (w == NULL)
            continue; /* removed by a reload meanwhile */
        p->st = PS_VISITING;
        p->current = w;
        watcher_visit(w, p->conn, a->env->once, visit_done, p);
        return;
    }
    p->failures = 0;
    if (a->env->once) {
        p->st = PS_STOPPING;
        session_logout(p->session);
        return;
    }
    p->st = PS_WAITING;
    if (p->again) {
        p->again = false;
        uv_timer_start(&p->timer, on_poll_timer, 0, 0);
    } else {
        uv_timer_start(&p->timer, on_poll_timer,
                       a->acc->poll_interval * 1000, 0);
    }
}


static struct watcher *
shared_by_name(struct account *a, const char *name)
{
    for (size_t i = 0; i < a->n; i++) {
        if (watcher_is_shared(a->w[i]) &&
            (strcmp(watcher_mailbox(a->w[i]), name) == 0 ||
             (util_strcaseeq(name, "INBOX") &&
              util_strcaseeq(watcher_mailbox(a->w[i]), "INBOX"))))
            return a->w[i];
    }
    return NULL;
}

static void
enqueue(struct poller *p, struct watcher *w)
{
    for (size_t i = 0; i < p->n_queue; i++) {
        if (p->queue[i] == w)
            return;
    }
    ARRAY_GROW(p->queue, p->cap_queue, p->n_queue + 1);
    p->queue[p->n_queue++] = w;
}

struct status_req {
    struct poller *p;
    struct watcher *w;
};

static bool
status_untagged(struct imap_conn *c, const struct imap_response *r,
                void *arg)
{
    /* the command's argument is its status_req, not the poller */
    struct poller *p = ((struct status_req *)arg)->p;
    const char *name;
    size_t len;
    const struct imap_arg *items, *it;
    uint32_t messages = 0, uidnext = 0, uidvalidity = 0;
    struct buf dec;
    struct watcher *w;

    if (r->name == NULL || strcmp(r->name, "STATUS") != 0 ||
        !imap_arg_get_astring(r->args, &name, &len))
        return false;
    items = r->args->next;
    if (items == NULL || items->type != IMAP_ARG_LIST)
        return true;
    for (it = items->list; it != NULL && it->next != NULL;
         it = it->next->next) {
        if (imap_arg_is_atom(it, "MESSAGES"))
            imap_arg_get_u32(it->next, &messages);
        else if (imap_arg_is_atom(it, "UIDNEXT"))
            imap_arg_get_u32(it->next, &uidnext);
        else if (imap_arg_is_atom(it, "UIDVALIDITY"))
            imap_arg_get_u32(it->next, &uidvalidity);
    }
    buf_init(&dec, BUF_NOCAP);
    if (imap_conn_utf8(c) || imap_utf7_decode(name, len, &dec) < 0) {
        buf_reset(&dec);
        buf_append(&dec, name, len);
    }
    w = shared_by_name(p->a, buf_cstr(&dec));
    buf_free(&dec);
    if (w != NULL && watcher_status_changed(w, uidnext, uidvalidity,
                                            messages))
        enqueue(p, w);
    return true;
}

static void
status_done(struct imap_conn *c, const struct imap_reply *r, void *arg)
{
    struct status_req *req = arg;
    struct poller *p = req->p;

    (void)c;
    if (r->status == IMAP_NO || r->status == IMAP_BAD) {
        char *msg = xasprintf("STATUS \"%s\" failed: %s",
                              watcher_mailbox(req->w), r->text);

        watcher_set_shared_state(req->w, WATCHER_POLLING, msg);
        free(msg);
    }
    free(req);
    if (r->status == IMAP_CANCELLED || r->status == IMAP_DISCONNECTED)
        return;
    if (--p->status_pending == 0 && p->st == PS_STATUS) {
        p->pos = 0;
        visit_next(p);
    }
}

static void
poller_cycle(struct poller *p)
{
    struct account *a = p->a;

    p->n_queue = 0;
    p->pos = 0;
    if (a->env->once) {
        /* every shared mailbox, fully */
        for (size_t i = 0; i < a->n; i++) {
            if (watcher_is_shared(a->w[i]))
                enqueue(p, a->w[i]);
        }
        visit_next(p);
        return;
    }
    p->st = PS_STATUS;
    p->status_pending = 0;
    /* RFC 3501: STATUS should not be used on the selected mailbox */
    if (imap_conn_mailbox(p->conn)->selected &&
        imap_conn_has_cap(p->conn, "UNSELECT")) {
        struct imap_build *b = imap_conn_build(p->conn);

        imap_build_atom(b, "UNSELECT");
        imap_conn_submit(p->conn, b, NULL);
    }
    for (size_t i = 0; i < a->n; i++) {
        struct imap_build *b;
        struct status_req *req;
        struct imap_cmd_opts o;

        if (!watcher_is_shared(a->w[i]))
            continue;
        b = imap_conn_build(p->conn);
        req = xmalloc(sizeof(*req));
        req->p = p;
        req->w = a->w[i];
        imap_build_atom(b, "STATUS");
        imap_build_mailbox(b, watcher_mailbox(a->w[i]));
        imap_build_list_open(b);
        imap_build_atom(b, "MESSAGES");
        imap_build_atom(b, "UIDNEXT");
        imap_build_atom(b, "UIDVALIDITY");
        imap_build_list_close(b);
        o = (struct imap_cmd_opts){.done = status_done,
                                   .untagged = status_untagged, .arg = req};
        if (imap_conn_submit(p->conn, b, &o) < 0) {
            free(req);
            continue;
        }
        p->status_pending++;
    }
    if (p->status_pending == 0)
        visit_next(p);
}

static void
p_ready(struct session *s, void *arg)
{
    struct poller *p = arg;

    p->conn = session_conn(s);
    set_shared_states(p, WATCHER_POLLING, NULL);
    poller_cycle(p);
}

static void
p_untagged(struct session *s, const struct imap_response *r, void *arg)
{
    struct poller *p = arg;

    (void)s;
    if (p->current != NULL)
        watcher_conn_event(p->current, r);
}

static void
p_closed(struct session *s, int err, const char *msg, bool auth, void *arg)
{
    struct poller *p = arg;
    struct account *a = p->a;
    uint64_t delay;

    session_free(s);
    p->session = NULL;
    p->conn = NULL;
    if (p->current != NULL) {
        watcher_visit_abort(p->current, err ? msg : NULL);
        p->current = NULL;
    }
    if (p->st == PS_STOPPING) {
        p->st = PS_DOWN;
        if (a->stopping)
            stop_one_done(a);
        return;
    }
    if (a->env->once) {
        set_shared_states(p, WATCHER_ERROR, msg);
        p->st = PS_DOWN;
        return;
    }
    delay = auth ? a->acc->reconnect_max * 1000
                 : backoff_delay_ms(p->failures, a->acc->reconnect_min * 1000,
                                    a->acc->reconnect_max * 1000);
    p->failures++;
    log_ctx_msg(&a->log, LL_WARNING,
                "polling connection: %s; reconnecting in %.1fs", msg,
                (double)delay / 1000.0);
    set_shared_states(p, WATCHER_BACKOFF, msg);
    p->st = PS_BACKOFF;
    uv_timer_start(&p->timer, on_poll_timer, delay, 0);
}

static const struct session_events poller_events = {
    .ready = p_ready,
    .untagged = p_untagged,
    .closed = p_closed,
};

static void
poller_connect(struct poller *p)
{
    struct account *a = p->a;

    p->st = PS_CONNECTING;
    set_shared_states(p, WATCHER_CONNECTING, NULL);
    p->session = session_new(&a->env->session, a->acc, a->tls, NULL,
                             &poller_events, p);
}

static struct poller *
poller_new(struct account *a)
{
    struct poller *p = xcalloc(1, sizeof(*p));

    p->a = a;
    p->st = PS_DOWN;
    uv_timer_init(a->env->session.loop, &p->timer);
    p->timer.data = p;
    return p;
}

static void
on_poller_timer_closed(uv_handle_t *h)
{
    struct poller *p = h->data;

    free(p->queue);
    free(p);
}

static void
poller_free(struct poller *p)
{
    if (p == NULL)
        return;
    if (p->current != NULL)
        watcher_visit_abort(p->current, NULL);
    session_free(p->session);
    uv_timer_stop(&p->timer);
    uv_close((uv_handle_t *)&p->timer, on_poller_timer_closed);
}

/* --- watchers and the budget --------------------------------------------- */

static bool
has_shared(const struct account *a)
{
    for (size_t i = 0; i < a->n; i++) {
        if (watcher_is_shared(a->w[i]))
            return true;
    }
    return false;
}

/* Decide which watchers are dedicated: the first D in mailbox order. */
static void
apply_budget(struct account *a)
{
    size_t budget = a->acc->max_connections ? a->acc->max_connections : 1;
    size_t dedicated = a->n <= budget ? a->n : budget - 1;

    for (size_t i = 0; i < a->n; i++)
        watcher_set_shared(a->w[i], i >= dedicated);
    if (has_shared(a) && a->poller == NULL) {
        a->poller = poller_new(a);
        if (a->tls_error == NULL)
            poller_connect(a->poller);
    } else if (!has_shared(a) && a->poller != NULL) {
        poller_free(a->poller);
        a->poller = NULL;
    }
}

static struct watcher *
add_watcher(struct account *a, const char *mailbox, bool shared)
{
    struct watcher *w = watcher_new(a->env, a->config, a->acc, a->tls,
                                    mailbox, shared);

    ARRAY_GROW(a->w, a->cap, a->n + 1);
    a->w[a->n++] = w;
    return w;
}

struct account *
account_new(const struct watcher_env *env, struct config *config,
            const struct config_account *acc)
{
    struct account *a = xcalloc(1, sizeof(*a));
    size_t budget = acc->max_connections ? acc->max_connections : 1;
    size_t dedicated = acc->n_mailboxes <= budget ? acc->n_mailboxes
                                                  : budget - 1;

    a->env = env;
    a->config = config_ref(config);
    a->acc = acc;
    a->name = xstrdup(acc->name);
    a->log.account = a->name;
    uv_timer_init(env->session.loop, &a->stop_timer);
    a->stop_timer.data = a;
    if (acc->tunnel == NULL && acc->tls != CONFIG_TLS_NONE) {
        char *err = NULL;

        a->tls = tls_ctx_new(acc->ca_file, acc->tls_verify, &err);
        if (a->tls == NULL) {
            a->tls_error = xasprintf("cannot set up TLS: %s",
                                     err ? err : "unknown error");
            free(err);
        }
    }
    for (size_t i = 0; i < acc->n_mailboxes; i++)
        add_watcher(a, acc->mailboxes[i], i >= dedicated);
    if (acc->n_mailboxes > dedicated)
        a->poller = poller_new(a);
    for (size_t i = 0; i < a->n; i++) {
        if (a->tls_error != NULL) {
            log_ctx_msg(&a->log, LL_ERROR, "%s", a->tls_error);
            watcher_set_shared_state(a->w[i], WATCHER_ERROR, a->tls_error);
        } else {
            watcher_start(a->w[i]);
        }
    }
    if (a->poller != NULL && a->tls_error == NULL)
        poller_connect(a->poller);
    return a;
}

static void
on_watcher_stopped(struct watcher *w, void *arg)
{
    struct account *a = arg;

    for (size_t i = 0; i < a->n_gone; i++) {
        if (a->gone[i] == w) {
            a->gone[i] = a->gone[--a->n_gone];
            break;
        }
    }
    watcher_free(w);
}

void
account_update(struct account *a, struct config *config,
               const struct config_account *acc)
{
    size_t kept = 0;

    config_ref(config);
    /* watchers of mailboxes that are gone log out */
    for (size_t i = 0; i < a->n; i++) {
        struct watcher *w = a->w[i];
        bool keep = false;

        for (size_t k = 0; k < acc->n_mailboxes && !keep; k++)
            keep = strcmp(acc->mailboxes[k], watcher_mailbox(w)) == 0;
        if (keep) {
            a->w[kept++] = w;
            continue;
        }
        log_ctx_msg(&a->log, LL_INFO,
                    "%s: no longer watched", watcher_mailbox(w));
        if (a->poller != NULL && a->poller->current == w) {
            watcher_visit_abort(w, NULL);
            a->poller->current = NULL;
            /* the poller's cycle continues from its queue */
        }
        if (a->poller != NULL) {
            for (size_t q = 0; q < a->poller->n_queue; q++) {
                if (a->poller->queue[q] == w)
                    a->poller->queue[q] = NULL;
            }
        }
        ARRAY_GROW(a->gone, a->cap_gone, a->n_gone + 1);
        a->gone[a->n_gone++] = w;
        watcher_stop(w, on_watcher_stopped, a);
    }
    a->n = kept;
    config_unref(a->config);
    a->config = config;
    a->acc = acc;
    for (size_t i = 0; i < a->n; i++)
        watcher_update(a->w[i], config, acc);
    /* new mailboxes, in configuration order */
    for (size_t k = 0; k < acc->n_mailboxes; k++) {
        bool have = false;

        for (size_t i = 0; i < a->n && !have; i++)
            have = strcmp(acc->mailboxes[k], watcher_mailbox(a->w[i])) == 0;
        if (!have) {
            struct watcher *w = add_watcher(a, acc->mailboxes[k], true);

            log_ctx_msg(&a->log, LL_INFO,
                        "%s: now watched", acc->mailboxes[k]);
            watcher_start(w);
        }
    }
    /* keep the configured order so the budget split is stable */
    for (size_t k = 0, pos = 0; k < acc->n_mailboxes; k++) {
        for (size_t i = pos; i < a->n; i++) {
            if (strcmp(acc->mailboxes[k], watcher_mailbox(a->w[i])) == 0) {
                struct watcher *t = a->w[pos];

                a->w[pos] = a->w[i];
                a->w[i] = t;
                pos++;
                break;
            }
        }
    }
    apply_budget(a);
}

static void
stop_reported(uv_timer_t *t)
{
    struct account *a = t->data;

    if (a->stop_cb != NULL)
        a->stop_cb(a, a->stop_arg);
}

static void
stop_one_done(struct account *a)
{
    if (--a->stop_pending == 0)
        uv_timer_start(&a->stop_timer, stop_reported, 0, 0);
}

static void
on_stopped(struct watcher *w, void *arg)
{
    (void)w;
    stop_one_done(arg);
}

void
account_stop(struct account *a, void (*cb)(struct account *, void *),
             void *arg)
{
    a->stopping = true;
    a->stop_cb = cb;
    a->stop_arg = arg;
    a->stop_pending = 1; /* released below, after starting everything */
    if (a->poller != NULL) {
        struct poller *p = a->poller;

        uv_timer_stop(&p->timer);
        if (p->current != NULL) {
            watcher_visit_abort(p->current, NULL);
            p->current = NULL;
        }
        if (p->session != NULL) {
            p->st = PS_STOPPING;
            a->stop_pending++;
            session_logout(p->session);
        }
    }
    for (size_t i = 0; i < a->n; i++) {
        a->stop_pending++;
        watcher_stop(a->w[i], on_stopped, a);
    }
    stop_one_done(a);
}

static void
on_account_timer_closed(uv_handle_t *h)
{
    free(h->data);
}

void
account_free(struct account *a)
{
    if (a == NULL)
        return;
    poller_free(a->poller);
    for (size_t i = 0; i < a->n; i++)
        watcher_free(a->w[i]);
    for (size_t i = 0; i < a->n_gone; i++)
        watcher_free(a->gone[i]);
    free(a->w);
    free(a->gone);
    tls_ctx_unref(a->tls);
    config_unref(a->config);
    free(a->tls_error);
    free(a->name);
    uv_timer_stop(&a->stop_timer);
    uv_close((uv_handle_t *)&a->stop_timer, on_account_timer_closed);
}

const char *
account_name(const struct account *a)
{
    return a->name;
}

size_t
account_n_watchers(const struct account *a)
{
    return a->n;
}

struct watcher *
account_watcher(const struct account *a, size_t i)
{
    return i < a->n ? a->w[i] : NULL;
}

bool
account_sweep_now(struct account *a, const char *mailbox)
{
    bool found = false;

    for (size_t i = 0; i < a->n; i++) {
        if (mailbox != NULL && strcmp(mailbox, watcher_mailbox(a->w[i])) != 0)
            continue;
        found = true;
        watcher_sweep_now(a->w[i]);
        if (watcher_is_shared(a->w[i]) && a->poller != NULL) {
            if (a->poller->st == PS_WAITING)
                uv_timer_start(&a->poller->timer, on_poll_timer, 0, 0);
            else
                a->poller->again = true;
        }
    }
    return found;
}
