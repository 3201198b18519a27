/* SPDX-License-Identifier: MIT */
/* watcher: lifetime and references, the dedicated connection, selecting,
 * sweeping, idling, timers and status (shared watchers: watcher_shared.c). */
#include "watcher_private.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "backoff.h"
#include "errors.h"
#include "log.h"
#include "secret.h"
#include "tls.h"
#include "util.h"


/* A command in flight on the watcher's behalf. */
struct wcmd {
    struct watcher *w;      /* a reference */
    uint64_t gen;           /* w->conn_gen when it was sent */
};

static struct wcmd *
wcmd_new(struct watcher *w)
{
    struct wcmd *t = xmalloc(sizeof(*t));

    t->w = watcher_ref(w);
    t->gen = w->conn_gen;
    return t;
}

/* The watcher a reply is for, or NULL when the reply is stale: the
 * command was cancelled or the connection lost, the owner dropped the
 * watcher, or it no longer uses the connection the command went on. Frees
 * t; a watcher returned carries t's reference (release it with
 * watcher_unref when done). */
static struct watcher *
wcmd_take(struct wcmd *t, const struct imap_reply *r)
{
    struct watcher *w = t->w;
    bool live = !w->freed && t->gen == w->conn_gen &&
                r->status != IMAP_CANCELLED &&
                r->status != IMAP_DISCONNECTED;

    free(t);
    if (!live) {
        watcher_unref(w);
        return NULL;
    }
    return w;
}

/* The watcher stops using its current connection. */
void
watcher_conn_gone(struct watcher *w)
{
    w->conn = NULL;
    w->conn_gen++;
}

static const char *const state_names[] = {
    [WATCHER_CONNECTING] = "connecting",
    [WATCHER_AUTHENTICATING] = "authenticating",
    [WATCHER_SELECTING] = "selecting",
    [WATCHER_SWEEPING] = "sweeping",
    [WATCHER_IDLE] = "idle",
    [WATCHER_POLLING] = "polling",
    [WATCHER_BACKOFF] = "backoff",
    [WATCHER_ERROR] = "error",
    [WATCHER_STOPPED] = "stopped",
};

const char *
watcher_state_name(enum watcher_state s)
{
    return (unsigned)s < ARRAY_SIZE(state_names) ? state_names[s] : "?";
}

const uint64_t watcher_sweep_bounds_us[WATCHER_SWEEP_BUCKETS] = {
    1000, 2500, 5000, 10000, 25000, 50000, 100000, 250000, 500000,
    1000000, 2500000, 5000000, 10000000, 30000000, 60000000, UINT64_MAX,
};

void
watcher_sweep_hist_add(struct watcher_sweep_hist *h, uint64_t us)
{
    h->count++;
    h->sum_us += us;
    for (size_t i = 0; i < WATCHER_SWEEP_BUCKETS; i++) {
        if (us <= watcher_sweep_bounds_us[i])
            h->le[i]++;
    }
}

static void start_sweep(struct watcher *w, bool full);
static void timer_set(struct watcher *w, enum timer_kind kind, uint64_t ms);
static void failure(struct watcher *w, int err, const char *fmt, ...)
    PRINTF_LIKE(3, 4);

/* --- small helpers ------------------------------------------------------ */

void
watcher_changed(struct watcher *w)
{
    if (w->env->changed != NULL)
        w->env->changed(w->env->arg);
}

void
watcher_set_state(struct watcher *w, enum watcher_state st)
{
    if (w->state == st)
        return;
    log_ctx_msg(&w->log, LL_DEBUG, "%s -> %s", watcher_state_name(w->state),
                watcher_state_name(st));
    w->state = st;
    w->state_since = (uint64_t)time(NULL);
    watcher_changed(w);
}

void
watcher_set_error(struct watcher *w, const char *msg)
{
    free(w->last_error);
    w->last_error = msg ? xstrdup(msg) : NULL;
}

static uint64_t
now_ms(const struct watcher *w)
{
    return uv_now(w->env->session.loop);
}

static void
compute_rules(struct watcher *w)
{
    struct buf canon;

    free(w->rules);
    free(w->rules_canon);
    w->rules = xcalloc(w->acc->n_rules ? w->acc->n_rules : 1,
                       sizeof(*w->rules));
    w->n_rules = 0;
    buf_init(&canon, BUF_NOCAP);
    for (size_t i = 0; i < w->acc->n_rules; i++) {
        const struct rule *r = w->config->rules[w->acc->rules[i]];

        if (rule_applies_to(r, w->mailbox)) {
            char *c = rule_canonical(r);

            w->rules[w->n_rules++] = r;
            buf_append_str(&canon, c);
            buf_append_char(&canon, '\n');
            free(c);
        }
    }
    w->rules_canon = buf_steal(&canon);
}

/* --- timers -------------------------------------------------------------- */

static void
noop_done(struct imap_conn *c, const struct imap_reply *r, void *arg)
{
    struct watcher *w = wcmd_take(arg, r);

    (void)c;
    if (w == NULL)
        return;
    if (w->sweep == NULL && w->state == WATCHER_POLLING && !w->stopping)
        timer_set(w, T_POLL, w->acc->poll_interval * 1000);
    watcher_unref(w);
}

static void
on_timer(uv_timer_t *t)
{
    struct watcher *w = t->data;
    enum timer_kind kind = w->timer_kind;

    w->timer_kind = T_NONE;
    switch (kind) {
    case T_BACKOFF:
        watcher_start_connect(w);
        break;
    case T_FULL:
        if (w->sweep != NULL || w->state != WATCHER_IDLE)
            w->want_full = true;
        else
            start_sweep(w, true);
        break;
    case T_POLL:
        if (w->sweep != NULL || w->conn == NULL)
            break;
        if (w->want_full ||
            now_ms(w) - w->last_full_ms >= w->acc->full_sweep_interval * 1000) {
            start_sweep(w, true);
        } else {
            /* NOOP: new mail arrives as EXISTS and starts a sweep */
            struct imap_build *b = imap_conn_build(w->conn);
            struct imap_cmd_opts o = {.done = noop_done,
                                      .arg = wcmd_new(w)};

            imap_build_atom(b, "NOOP");
            if (imap_conn_submit(w->conn, b, &o) < 0)
                wcmd_take(o.arg, &(struct imap_reply){
                                     .status = IMAP_CANCELLED});
        }
        break;
    case T_STOP:
        if (w->stop_cb != NULL) {
            void (*cb)(struct watcher *, void *) = w->stop_cb;

            w->stop_cb = NULL;
            cb(w, w->stop_arg);
        }
        break;
    case T_NONE:
        break;
    }
}

static void
timer_set(struct watcher *w, enum timer_kind kind, uint64_t ms)
{
    w->timer_kind = kind;
    uv_timer_start(&w->timer, on_timer, ms, 0);
}

void
watcher_timer_clear(struct watcher *w)
{
    w->timer_kind = T_NONE;
    uv_timer_stop(&w->timer);
}

/* --- idle ---------------------------------------------------------------- */

uint64_t
watcher_full_due_in(const struct watcher *w)
{
    uint64_t interval = w->acc->full_sweep_interval * 1000;
    uint64_t elapsed = now_ms(w) - w->last_full_ms;

    return elapsed >= interval ? 0 : interval - elapsed;
}

static void
go_idle(struct watcher *w)
{
    uint64_t retry = w->retry_ms;

    w->failures = 0;
    w->auth_failed = false;
    w->retry_ms = 0;
    if (retry != 0)
        w->want_full = true;
    if (imap_conn_has_cap(w->conn, "IDLE")) {
        imap_conn_idle(w->conn, true);
        watcher_set_state(w, WATCHER_IDLE);
        timer_set(w, T_FULL, retry != 0 ? retry : watcher_full_due_in(w));
    } else {
        watcher_set_state(w, WATCHER_POLLING);
        timer_set(w, T_POLL, retry != 0 ? retry
                                        : w->acc->poll_interval * 1000);
    }
}

/* --- sweeping ------------------------------------------------------------ */

static void
add_count(struct watcher *w, const struct sweep_stat *st)
{
    const char *action = rule_action_name(st->action);

    if (st->acted == 0)
        return;
    for (size_t i = 0; i < w->n_counts; i++) {
        struct watcher_count *c = &w->counts[i];

        if (strcmp(c->rule, st->rule) == 0 && strcmp(c->action, action) == 0
            && c->dry == st->dry) {
            c->n += st->acted;
            return;
        }
    }
    ARRAY_GROW(w->counts, w->cap_counts, w->n_counts + 1);
    w->counts[w->n_counts].rule = xstrdup(st->rule);
    util_strlcpy(w->counts[w->n_counts].action, action,
                 sizeof(w->counts[w->n_counts].action));
    w->counts[w->n_counts].dry = st->dry;
    w->counts[w->n_counts].n = st->acted;
    w->n_counts++;
}

void
watcher_report_once(struct watcher *w, bool ok)
{
    if (!w->env->once || w->once_reported)
        return;
    w->once_reported = true;
    if (w->env->once_done != NULL)
        w->env->once_done(w, ok, w->env->arg);
}

/* After a sweep or a select: what comes next. */
static void
next_step(struct watcher *w)
{
    if (w->stopping || w->conn == NULL ||
        imap_conn_state(w->conn) == IMAP_CONN_CLOSED)
        return;
    if (w->env->once && w->swept_once && !w->visiting) {
        /* one full sweep is the whole job; later mail waits for the next
         * run */
        w->logging_out = true;
        session_logout(w->session);
        return;
    }
    if (w->need_reselect) {
        watcher_reselect(w);
        return;
    }
    if (w->want_full) {
        start_sweep(w, true);
        return;
    }
    if (w->want_incr) {
        start_sweep(w, false);
        return;
    }
    if (w->visiting) {
        watcher_finish_visit(w, true);
        return;
    }
    if (w->env->once) {
        /* the full sweep failed: log out all the same */
        w->logging_out = true;
        session_logout(w->session);
        return;
    }
    go_idle(w);
}

static void
on_sweep_done(struct sweep *s, const struct sweep_result *r, void *arg)
{
    struct watcher *w = arg;

    (void)s;
    w->sweep = NULL;
    for (size_t i = 0; i < r->n_stats; i++)
        add_count(w, &r->stats[i]);
    w->last_sweep = (uint64_t)time(NULL);
    w->last_sweep_ms = r->duration_ms;
    if (r->err == 0) {
        const struct sweep_stat *refused = NULL;

        w->sweep_failures = 0;
        if (r->uid_top > w->uid_swept || r->full)
            w->uid_swept = r->uid_top;
        if (r->full) {
            w->last_full_ms = now_ms(w);
            w->swept_once = true;
        }
        if (w->env->stats != NULL)
            watcher_sweep_hist_add(r->full ? &w->env->stats->full
                                           : &w->env->stats->incremental,
                                   r->duration_us);
        for (size_t i = 0; i < r->n_stats && refused == NULL; i++) {
            if (r->stats[i].failed)
                refused = &r->stats[i];
        }
        if (refused != NULL) {
            /* the sweep went through but an action failed or could not
             * be sent (logged where it happened): keep it visible, and
             * fail --once */
            char *msg = xasprintf("rule %s: %s", refused->rule,
                                  refused->why != NULL
                                      ? refused->why
                                      : "the server refused its action");

            watcher_set_error(w, msg);
            free(msg);
            if (w->env->once)
                watcher_report_once(w, false);
        } else {
            watcher_set_error(w, NULL);
        }
        log_ctx_msg(&w->log, LL_DEBUG,
                    "%s sweep done in %llu ms (UIDs up to %u)",
                    r->full ? "full" : "incremental",
                    (unsigned long long)r->duration_ms, r->uid_top);
    } else if (r->err == ERR_CANCELLED) {
        w->want_full = true;  /* rules changed: sweep again under them */
    } else if (r->err == ERR_UIDVALIDITY) {
        log_ctx_msg(&w->log, LL_NOTICE, "%s", r->msg);
        w->need_reselect = true;
    } else if (w->conn != NULL &&
               imap_conn_state(w->conn) != IMAP_CONN_CLOSED) {
        if (w->env->once || w->visiting) {
            log_ctx_msg(&w->log, LL_ERROR, "sweep failed: %s", r->msg);
        } else {
            /* refused (a server under load says NO: Microsoft 365's
             * "Request is throttled"): IDLE goes on, and the mailbox is
             * swept in full again after a backoff, not at the next mail
             * or the next full_sweep_interval */
            w->retry_ms = backoff_delay_ms(w->sweep_failures++,
                                           w->acc->reconnect_min * 1000,
                                           w->acc->reconnect_max * 1000);
            log_ctx_msg(&w->log, LL_ERROR,
                        "sweep failed: %s; sweeping again in %.1fs", r->msg,
                        (double)w->retry_ms / 1000.0);
        }
        watcher_set_error(w, r->msg);
        if (w->env->once)
            watcher_report_once(w, false);
    }
    watcher_changed(w);
    if (w->env->once && r->err == 0 && r->full)
        watcher_report_once(w, true);
    if (w->env->once && r->err != 0 && r->err != ERR_CANCELLED &&
        r->err != ERR_UIDVALIDITY && w->visiting) {
        watcher_finish_visit(w, false);
        return;
    }
    next_step(w);
}

static void
start_sweep(struct watcher *w, bool full)
{
    struct sweep_params p;

    if (w->conn == NULL || imap_conn_state(w->conn) == IMAP_CONN_CLOSED) {
        /* a shared watcher between visits, or a session going away: the
         * next visit or connection sweeps */
        if (full)
            w->want_full = true;
        else
            w->want_incr = true;
        return;
    }
    if (full)
        w->want_full = false;
    w->want_incr = false;
    if (!full && !w->swept_once)
        full = true;
    memset(&p, 0, sizeof(p));
    p.conn = w->conn;
    p.config = w->config;
    p.account = w->acc;
    p.mailbox = w->mailbox;
    p.rules = w->rules;
    p.n_rules = w->n_rules;
    p.memo = &w->memo;
    p.uid_lo = full ? 1 : w->uid_swept + 1;
    p.uidvalidity = w->uidvalidity;
    p.force_dry_run = w->env->cli_dry_run;
    p.default_dry_run = w->config->daemon.dry_run;
    p.audit = w->config->daemon.audit;
    watcher_timer_clear(w);
    watcher_set_state(w, WATCHER_SWEEPING);
    w->sweep = sweep_start(&p, on_sweep_done, w);
    /* NULL: the connection is closing; its `closed` event follows */
}

/* --- selecting ---------------------------------------------------------- */

static void select_reply(struct watcher *w, struct imap_conn *c,
                         const struct imap_reply *r);

static void
select_done(struct imap_conn *c, const struct imap_reply *r, void *arg)
{
    struct watcher *w = wcmd_take(arg, r);

    if (w == NULL)
        return; /* an abandoned visit's, a closed session's, or gone */
    select_reply(w, c, r);
    watcher_unref(w);
}

static void
select_reply(struct watcher *w, struct imap_conn *c,
             const struct imap_reply *r)
{
    const struct imap_mailbox_info *mb = imap_conn_mailbox(c);
    bool full;

    if (w->stopping)
        return; /* LOGOUT follows */
    if (r->status != IMAP_OK) {
        char *msg = xasprintf("cannot select \"%s\": %s %s", w->mailbox,
                              imap_status_name(r->status),
                              r->text ? r->text : "");

        if (w->visiting) {
            log_ctx_msg(&w->log, LL_ERROR, "%s", msg);
            watcher_set_error(w, msg);
            free(msg);
            watcher_report_once(w, false);
            watcher_finish_visit(w, false);
            return;
        }
        failure(w, ERR_CMD_NO, "%s", msg);
        free(msg);
        return;
    }
    if (w->uidvalidity != 0 && w->uidvalidity != mb->uidvalidity) {
        log_ctx_msg(&w->log, LL_NOTICE,
                    "UIDVALIDITY changed from %u to %u: forgetting swept UIDs",
                    w->uidvalidity, mb->uidvalidity);
        w->uid_swept = 0;
        w->swept_once = false;
    }
    if (mb->uidvalidity == 0) {
        failure(w, ERR_PROTOCOL, "server reported no UIDVALIDITY for \"%s\"",
                w->mailbox);
        return;
    }
    w->uidvalidity = mb->uidvalidity;
    w->exists = mb->exists;
    w->uidnext_seen = mb->uidnext;
    w->need_reselect = false;
    free(w->caps);
    w->caps = xstrdup(imap_conn_caps(c));
    /* full after every SELECT of a dedicated connection; the poller's
     * visits are incremental unless a full sweep is due */
    full = !w->visiting || w->visit_full || !w->swept_once ||
           watcher_full_due_in(w) == 0;
    start_sweep(w, full);
}

/* When every rule that applies only previews, the mailbox is opened with
 * EXAMINE: read-only, so nothing (not even \Recent) changes in it. */
static bool
all_dry(const struct watcher *w)
{
    for (size_t i = 0; i < w->n_rules; i++) {
        if (!rule_is_dry(w->rules[i], w->env->cli_dry_run,
                         w->config->daemon.dry_run))
            return false;
    }
    return true;
}

void
watcher_reselect(struct watcher *w)
{
    struct wcmd *t = wcmd_new(w);

    watcher_set_state(w, WATCHER_SELECTING);
    w->examined = all_dry(w);
    if (imap_conn_select(w->conn, w->mailbox, w->examined, select_done,
                         t) < 0) {
        wcmd_take(t, &(struct imap_reply){.status = IMAP_CANCELLED});
        if (!w->visiting)
            failure(w, ERR_CLOSED, "connection closed while selecting");
    }
}

/* --- connection ------------------------------------------------------- */

static void
on_authenticating(struct session *sn, void *arg)
{
    (void)sn;
    watcher_set_state(arg, WATCHER_AUTHENTICATING);
}

static void
on_ready(struct session *sn, void *arg)
{
    struct watcher *w = arg;

    w->conn = session_conn(sn);
    watcher_reselect(w);
}

/* Events of whichever connection serves this watcher. */
void
watcher_handle_event(struct watcher *w, const struct imap_response *r)
{
    if (r->has_number && r->name != NULL)
        watcher_sample_idle_change(w, r);
    if (r->has_number && r->name != NULL) {
        if (strcmp(r->name, "EXISTS") == 0) {
            bool more = r->number > w->exists;

            w->last_event = (uint64_t)time(NULL);
            w->exists = r->number;
            watcher_changed(w);
            if (!more || w->state == WATCHER_SELECTING)
                return;
            if (w->sweep != NULL) {
                w->want_incr = true; /* coalesced into one more sweep */
            } else if (w->state == WATCHER_IDLE ||
                       w->state == WATCHER_POLLING) {
                start_sweep(w, false);
            }
        } else if (strcmp(r->name, "EXPUNGE") == 0) {
            if (w->exists > 0)
                w->exists--;
        }
        return;
    }
    if (r->code != NULL && strcmp(r->code, "UIDVALIDITY") == 0 &&
        w->state != WATCHER_SELECTING) {
        uint32_t v;

        if (imap_arg_get_u32(r->code_args, &v) && v != w->uidvalidity) {
            log_ctx_msg(&w->log, LL_NOTICE, "UIDVALIDITY changed to %u", v);
            w->need_reselect = true;
            if (w->sweep != NULL)
                sweep_cancel(w->sweep);
            else if (w->state == WATCHER_IDLE || w->state == WATCHER_POLLING)
                watcher_reselect(w);
        }
        return;
    }
    if ((r->cond == IMAP_COND_NO || r->cond == IMAP_COND_BAD) &&
        w->state == WATCHER_IDLE) {
        /* e.g. Dovecot when the mailbox was deleted and re-created */
        log_ctx_msg(&w->log, LL_NOTICE,
                    "server said %s while idle: %s; selecting again",
                    r->cond == IMAP_COND_NO ? "NO" : "BAD", r->text);
        watcher_reselect(w);
    }
}

static void
on_untagged(struct session *sn, const struct imap_response *r, void *arg)
{
    (void)sn;
    watcher_handle_event(arg, r);
}

static void
on_closed(struct session *sn, int err, const char *msg, bool auth,
          void *arg)
{
    struct watcher *w = arg;

    session_free(sn);
    if (sn == w->retired) {
        w->retired = NULL;
        return;
    }
    w->session = NULL;
    watcher_conn_gone(w);
    if (w->sweep != NULL) {
        sweep_detach(w->sweep);
        w->sweep = NULL;
    }
    if (w->stopping) {
        watcher_set_state(w, WATCHER_STOPPED);
        timer_set(w, T_STOP, 0);
        return;
    }
    if (w->logging_out && err == 0) {
        watcher_set_state(w, WATCHER_STOPPED);
        return;
    }
    failure(w, auth ? ERR_AUTH : err ? err : ERR_CLOSED, "%s", msg);
}

static const struct session_events session_events = {
    .authenticating = on_authenticating,
    .ready = on_ready,
    .untagged = on_untagged,
    .closed = on_closed,
};

void
watcher_start_connect(struct watcher *w)
{
    watcher_conn_gone(w);
    watcher_set_state(w, WATCHER_CONNECTING);
    w->session = session_new(&w->env->session, w->config, w->acc, w->tls,
                             w->secrets, w->mailbox, &session_events, w);
}

static void
failure(struct watcher *w, int err, const char *fmt, ...)
{
    va_list ap;
    char *msg;
    uint64_t delay, min = w->acc->reconnect_min * 1000;
    uint64_t max = w->acc->reconnect_max * 1000;

    va_start(ap, fmt);
    msg = xvasprintf(fmt, ap);
    va_end(ap);
    if (w->sweep != NULL) {
        sweep_detach(w->sweep);
        w->sweep = NULL;
    }
    if (w->session != NULL) {
        struct session *sn = w->session;

        w->session = NULL;
        session_free(sn);
    }
    watcher_conn_gone(w);
    watcher_set_error(w, msg);
    /* a refused login or a missing secret will not fix itself soon */
    if (err == ERR_AUTH || err == ERR_SECRET)
        w->auth_failed = true;
    if (w->env->once) {
        log_ctx_msg(&w->log, LL_ERROR, "%s", msg);
        watcher_set_state(w, WATCHER_ERROR);
        watcher_report_once(w, false);
        free(msg);
        return;
    }
    delay = w->auth_failed ? max : backoff_delay_ms(w->failures, min, max);
    w->failures++;
    w->reconnects++;
    log_ctx_msg(&w->log, LL_WARNING, "%s; reconnecting in %.1fs", msg,
                (double)delay / 1000.0);
    free(msg);
    watcher_set_state(w, WATCHER_BACKOFF);
    timer_set(w, T_BACKOFF, delay);
}

/* --- public --------------------------------------------------------------- */

struct watcher *
watcher_new(const struct watcher_env *env, struct config *config,
            const struct config_account *account, struct tls_ctx *tls,
            struct secret_cache *secrets, const char *mailbox, bool shared)
{
    struct watcher *w = xcalloc(1, sizeof(*w));

    w->refs = 1; /* the owner's */
    w->env = env;
    w->config = config_ref(config);
    w->acc = account;
    w->tls = tls ? tls_ctx_ref(tls) : NULL;
    w->secrets = secrets ? secret_cache_ref(secrets) : NULL;
    w->account = xstrdup(account->name);
    w->mailbox = xstrdup(mailbox);
    w->log.account = w->account;
    w->log.mailbox = w->mailbox;
    w->shared = shared;
    w->state = shared ? WATCHER_POLLING : WATCHER_CONNECTING;
    w->state_since = (uint64_t)time(NULL);
    uv_timer_init(env->session.loop, &w->timer);
    w->timer.data = w;
    compute_rules(w);
    return w;
}

void
watcher_start(struct watcher *w)
{
    if (w->shared) {
        watcher_set_state(w, WATCHER_POLLING);
        return;
    }
    watcher_start_connect(w);
}

void
watcher_stop(struct watcher *w, void (*cb)(struct watcher *, void *),
             void *arg)
{
    w->stopping = true;
    w->stop_cb = cb;
    w->stop_arg = arg;
    watcher_timer_clear(w);
    if (w->sweep != NULL)
        sweep_cancel(w->sweep);
    if (w->session != NULL) {
        /* LOGOUT after the commands in flight; `closed` completes it */
        session_logout(w->session);
        return;
    }
    if (w->visiting)
        watcher_visit_abort(w, NULL);
    watcher_set_state(w, WATCHER_STOPPED);
    timer_set(w, T_STOP, 0);
}

static void
destroy(struct watcher *w)
{
    free(w->account);
    free(w->mailbox);
    free(w);
}

static void
on_timer_closed(uv_handle_t *h)
{
    struct watcher *w = h->data;

    w->timer_closed = true;
    if (w->refs == 0)
        destroy(w);
}

struct watcher *
watcher_ref(struct watcher *w)
{
    w->refs++;
    return w;
}

void
watcher_unref(struct watcher *w)
{
    if (w == NULL)
        return;
    if (--w->refs == 0 && w->timer_closed)
        destroy(w);
}

bool
watcher_gone(const struct watcher *w)
{
    return w->freed || w->stopping;
}

void
watcher_free(struct watcher *w)
{
    if (w == NULL || w->freed)
        return;
    w->freed = true;
    w->visiting = false;
    w->visit_done = NULL;
    watcher_conn_gone(w);
    if (w->sweep != NULL)
        sweep_detach(w->sweep);
    w->sweep = NULL;
    session_free(w->session);
    w->session = NULL;
    session_free(w->retired);
    w->retired = NULL;
    config_unref(w->config);
    w->config = NULL;
    w->acc = NULL;
    tls_ctx_unref(w->tls);
    w->tls = NULL;
    secret_cache_unref(w->secrets);
    w->secrets = NULL;
    sweep_memo_free(&w->memo);
    for (size_t i = 0; i < w->n_counts; i++)
        free(w->counts[i].rule);
    free(w->counts);
    w->counts = NULL;
    w->n_counts = 0;
    free(w->rules);
    w->rules = NULL;
    free(w->rules_canon);
    w->rules_canon = NULL;
    free(w->last_error);
    w->last_error = NULL;
    free(w->caps);
    w->caps = NULL;
    uv_timer_stop(&w->timer);
    uv_close((uv_handle_t *)&w->timer, on_timer_closed);
    watcher_unref(w); /* the owner's */
}

void
watcher_update(struct watcher *w, struct config *config,
               const struct config_account *account)
{
    char *old = w->rules_canon;
    bool rules_changed, mode_changed;

    config_ref(config);
    config_unref(w->config);
    w->config = config;
    w->acc = account;
    session_set_account(w->session, config, account);
    w->rules_canon = NULL;
    compute_rules(w);
    rules_changed = strcmp(old, w->rules_canon) != 0;
    free(old);
    /* from a preview to acting (or back): SELECT instead of EXAMINE */
    mode_changed = w->conn != NULL && !w->visiting &&
                   imap_conn_mailbox(w->conn)->selected &&
                   all_dry(w) != w->examined;
    if (!rules_changed && !mode_changed)
        return;
    log_ctx_msg(&w->log, LL_INFO, "%s: sweeping again",
                rules_changed ? "rules changed"
                              : all_dry(w) ? "every rule is a dry run now"
                                           : "rules act now");
    if (mode_changed)
        w->need_reselect = true;
    if (w->sweep != NULL) {
        sweep_cancel(w->sweep); /* nothing more acted on under old rules */
        w->want_full = true;
    } else if ((w->state == WATCHER_IDLE || w->state == WATCHER_POLLING) &&
               w->conn != NULL && !w->shared) {
        if (mode_changed)
            watcher_reselect(w); /* a full sweep follows the SELECT */
        else
            start_sweep(w, true);
    } else {
        w->want_full = true;
    }
}

void
watcher_sweep_now(struct watcher *w)
{
    if (w->sweep != NULL || w->conn == NULL || w->visiting) {
        w->want_full = true;
        return;
    }
    if (w->state == WATCHER_IDLE || w->state == WATCHER_POLLING)
        start_sweep(w, true);
    else
        w->want_full = true;
}

const char *
watcher_mailbox(const struct watcher *w)
{
    return w->mailbox;
}

void
watcher_status(const struct watcher *w, struct watcher_status *st)
{
    memset(st, 0, sizeof(*st));
    st->account = w->account;
    st->mailbox = w->mailbox;
    st->state = w->state;
    st->state_since = w->state_since;
    st->shared = w->shared;
    if (w->shared)
        st->via = w->notified ? WATCHER_VIA_NOTIFY : WATCHER_VIA_POLL;
    else
        st->via = w->conn != NULL && !imap_conn_has_cap(w->conn, "IDLE")
                      ? WATCHER_VIA_POLL
                      : WATCHER_VIA_IDLE;
    st->last_event = w->last_event;
    st->capabilities = w->caps ? w->caps : "";
    st->uidvalidity = w->uidvalidity;
    st->messages = w->exists;
    st->uid_swept = w->uid_swept;
    st->counts = w->counts;
    st->n_counts = w->n_counts;
    st->last_sweep = w->last_sweep;
    st->last_sweep_ms = w->last_sweep_ms;
    st->reconnects = w->reconnects;
    st->last_error = w->last_error;
    st->notes = (const char *const *)w->memo.notes;
    st->n_notes = w->memo.n_notes;
}

uint64_t
watcher_total_actions(const struct watcher *w)
{
    uint64_t n = 0;

    for (size_t i = 0; i < w->n_counts; i++) {
        if (!w->counts[i].dry)
            n += w->counts[i].n;
    }
    return n;
}

bool
watcher_is_watching(const struct watcher *w)
{
    return w->state == WATCHER_IDLE || w->state == WATCHER_POLLING ||
           w->state == WATCHER_SWEEPING;
}
