/* SPDX-License-Identifier: MIT */
#include "account.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "poller.h"
#include "secret.h"
#include "tls.h"
#include "util.h"

struct account {
    const struct watcher_env *env;
    struct config *config;
    const struct config_account *acc;
    char *name;
    struct log_ctx log;          /* the account name */
    struct tls_ctx *tls;
    char *tls_error;
    struct secret_cache *secrets;  /* one run of a secret command for all */
    struct watcher **w;
    size_t n, cap;
    struct watcher **gone;       /* removed by a reload, logging out */
    size_t n_gone, cap_gone;
    struct poller *poller;
    struct poller **old_pollers; /* no shared mailbox left: logging out */
    size_t n_old_pollers, cap_old_pollers;
    unsigned stop_pending;
    void (*stop_cb)(struct account *a, void *arg);
    void *stop_arg;
    uv_timer_t stop_timer;       /* reports stop completion from the loop */
    bool stopping;
};

static void stop_one_done(struct account *a);

/* --- the poller's view ---------------------------------------------------- */

static struct watcher *const *
poller_watchers(void *arg, size_t *n_r)
{
    struct account *a = arg;

    *n_r = a->n;
    return a->w;
}

static void
poller_logged_out(void *arg)
{
    struct account *a = arg;

    if (a->stopping)
        stop_one_done(a);
}

static struct watcher *
find_watcher(const struct account *a, const char *name)
{
    for (size_t i = 0; i < a->n; i++) {
        const char *m = watcher_mailbox(a->w[i]);

        if (strcmp(m, name) == 0 ||
            (util_strcaseeq(m, "INBOX") && util_strcaseeq(name, "INBOX")))
            return a->w[i];
    }
    return NULL;
}

/* A move or trash target of this account's rules that went away is
 * reported now, not when a sweep fails on it. */
static void
check_targets(struct account *a, const char *name, const char *what)
{
    const struct config *c = a->config;

    if (a->acc->trash_mailbox != NULL &&
        strcmp(a->acc->trash_mailbox, name) == 0)
        log_ctx_msg(&a->log, LL_WARNING,
                    "%s, the trash_mailbox, was %s on the server: trash "
                    "rules will fail until it is there again", name, what);
    for (size_t i = 0; i < a->acc->n_rules; i++) {
        const struct rule *r = c->rules[a->acc->rules[i]];

        if (r->action == RULE_ACTION_MOVE && r->target != NULL &&
            strcmp(r->target, name) == 0)
            log_ctx_msg(&a->log, LL_WARNING,
                        "%s, where rule %s moves messages, was %s on the "
                        "server: the rule will fail until it is there "
                        "again%s", name, r->name, what,
                        r->create ? " (it is created again when needed)"
                                  : "");
    }
}

static void
poller_mailbox_event(void *arg, const char *name, const char *newname)
{
    struct account *a = arg;
    struct watcher *w = find_watcher(a, name);
    char *why;

    check_targets(a, name, newname != NULL ? "renamed" : "deleted");
    if (w == NULL || watcher_halted(w))
        return;
    if (a->poller != NULL)
        poller_forget(a->poller, w);
    if (newname != NULL && a->acc->on_rename == CONFIG_ON_RENAME_FOLLOW) {
        log_ctx_msg(&a->log, LL_WARNING,
                    "%s was renamed to %s on the server: watching %s "
                    "(on_rename: follow; until the next reload)", name,
                    newname, newname);
        watcher_rename(w, newname);
        return;
    }
    why = newname != NULL
              ? xasprintf("renamed to %s on the server; not watched "
                          "(on_rename: stop)", newname)
              : xstrdup("deleted on the server; not watched");
    log_ctx_msg(&a->log, LL_WARNING, "%s: %s", name, why);
    watcher_halt(w, why);
    free(why);
}

static const struct poller_ops account_poller_ops = {
    .watchers = poller_watchers,
    .logged_out = poller_logged_out,
    .mailbox_event = poller_mailbox_event,
};

static struct poller *
account_poller_new(struct account *a)
{
    return poller_new(a->env, a->config, a->acc, a->tls, a->secrets,
                      &a->log, &account_poller_ops, a);
}

/* A poller with no mailbox left to poll logs out; it is freed once its
 * connection has ended (or with the account). */
static struct watcher *const *
no_watchers(void *arg, size_t *n_r)
{
    (void)arg;
    *n_r = 0;
    return NULL;
}

static void
old_poller_logged_out(void *arg)
{
    struct account *a = arg;

    /* from the loop; the poller that ended is not told which, so free
     * the ones that are down */
    for (size_t i = 0; i < a->n_old_pollers;) {
        if (poller_is_down(a->old_pollers[i])) {
            poller_free(a->old_pollers[i]);
            a->old_pollers[i] = a->old_pollers[--a->n_old_pollers];
            if (a->stopping)
                stop_one_done(a);
        } else {
            i++;
        }
    }
}

static const struct poller_ops old_poller_ops = {
    .watchers = no_watchers,
    .logged_out = old_poller_logged_out,
};

static void
retire_poller(struct account *a)
{
    struct poller *p = a->poller;

    a->poller = NULL;
    poller_set_ops(p, &old_poller_ops, a);
    if (!poller_stop(p)) {
        poller_free(p);
        return;
    }
    ARRAY_GROW(a->old_pollers, a->cap_old_pollers, a->n_old_pollers + 1);
    a->old_pollers[a->n_old_pollers++] = p;
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

/* Which mailboxes of acc share the account's one shared connection (the
 * rest get one each), in shared[]: all get their own when they fit in
 * max_connections and none is idle: false (nor, with notify: on, left to
 * its default); otherwise max_connections - 1 do, those with idle: true
 * first, then the ones without the key, in configured order. */
static void
budget_split(const struct config_account *acc, bool *shared)
{
    size_t budget = acc->max_connections ? acc->max_connections : 1;
    size_t n = acc->n_mailboxes, given = 0;
    bool all = n <= budget;

    for (size_t i = 0; i < n; i++) {
        enum config_idle x = acc->mailbox_idle != NULL ? acc->mailbox_idle[i]
                                                       : CONFIG_IDLE_AUTO;

        shared[i] = true;
        if (x == CONFIG_IDLE_NO ||
            (x == CONFIG_IDLE_AUTO && acc->notify == CONFIG_NOTIFY_ON))
            all = false;
    }
    for (int pass = 0; pass < 2; pass++) {
        enum config_idle want = pass == 0 ? CONFIG_IDLE_YES : CONFIG_IDLE_AUTO;

        if (pass == 1 && acc->notify == CONFIG_NOTIFY_ON && !all)
            break;
        for (size_t i = 0; i < n; i++) {
            enum config_idle x = acc->mailbox_idle != NULL
                                     ? acc->mailbox_idle[i]
                                     : CONFIG_IDLE_AUTO;

            if (x == want && (all || given + 1 < budget)) {
                shared[i] = false;
                given++;
            }
        }
    }
}

/* Decide which watchers are dedicated (budget_split). */
static void
apply_budget(struct account *a)
{
    bool *split = xcalloc(a->acc->n_mailboxes + 1, sizeof(*split));
    bool now_shared = false;

    budget_split(a->acc, split);
    for (size_t i = 0; i < a->n; i++) {
        /* a->w is in configured order (account_update) */
        bool shared = i < a->acc->n_mailboxes ? split[i] : true;

        if (watcher_halted(a->w[i]))
            continue;
        if (shared == watcher_is_shared(a->w[i]))
            continue;
        /* one the poller may be visiting gets its own connection: the
         * poller lets go of it first */
        if (!shared && a->poller != NULL)
            poller_forget(a->poller, a->w[i]);
        now_shared |= shared;
        watcher_set_shared(a->w[i], shared);
    }
    if (has_shared(a) && a->poller == NULL) {
        a->poller = account_poller_new(a);
        if (a->tls_error == NULL)
            poller_start(a->poller);
    } else if (!has_shared(a) && a->poller != NULL) {
        retire_poller(a);
    } else if (now_shared && a->poller != NULL) {
        /* a mailbox that had its own connection is polled now: visit it
         * soon rather than a poll_interval later */
        poller_sweep_soon(a->poller);
    }
    free(split);
}

static struct watcher *
add_watcher(struct account *a, const char *mailbox, bool shared)
{
    struct watcher *w = watcher_new(a->env, a->config, a->acc, a->tls,
                                    a->secrets, mailbox, shared);

    ARRAY_GROW(a->w, a->cap, a->n + 1);
    a->w[a->n++] = w;
    return w;
}

struct account *
account_new(const struct watcher_env *env, struct config *config,
            const struct config_account *acc)
{
    struct account *a = xcalloc(1, sizeof(*a));
    bool *split = xcalloc(acc->n_mailboxes + 1, sizeof(*split));
    bool any_shared = false;

    a->env = env;
    a->config = config_ref(config);
    a->acc = acc;
    a->name = xstrdup(acc->name);
    a->log.account = a->name;
    a->secrets = secret_cache_new(env->session.loop, &acc->secret,
                                  acc->command_timeout * 1000);
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
    budget_split(acc, split);
    for (size_t i = 0; i < acc->n_mailboxes; i++) {
        add_watcher(a, acc->mailboxes[i], split[i]);
        any_shared |= split[i];
    }
    free(split);
    if (any_shared)
        a->poller = account_poller_new(a);
    for (size_t i = 0; i < a->n; i++) {
        if (a->tls_error != NULL) {
            log_ctx_msg(&a->log, LL_ERROR, "%s", a->tls_error);
            watcher_set_shared_state(a->w[i], WATCHER_ERROR, a->tls_error);
        } else {
            watcher_start(a->w[i]);
        }
    }
    if (a->poller != NULL && a->tls_error == NULL)
        poller_start(a->poller);
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
    if (a->stopping)
        stop_one_done(a);
}

void
account_update(struct account *a, struct config *config,
               const struct config_account *acc)
{
    size_t kept = 0;
    bool added = false;

    config_ref(config);
    /* secrets are read again after a reload (the next login) */
    secret_cache_drop(a->secrets);
    /* watchers of mailboxes that are gone log out */
    for (size_t i = 0; i < a->n; i++) {
        struct watcher *w = a->w[i];
        bool keep = false;

        for (size_t k = 0; k < acc->n_mailboxes && !keep; k++)
            keep = strcmp(acc->mailboxes[k], watcher_mailbox(w)) == 0;
        if (keep && !watcher_halted(w)) {
            a->w[kept++] = w;
            continue;
        }
        /* one stopped by a deletion or rename starts afresh if listed */
        log_ctx_msg(&a->log, LL_INFO, "%s: %s", watcher_mailbox(w),
                    keep ? "watching it again" : "no longer watched");
        if (a->poller != NULL)
            poller_forget(a->poller, w);
        ARRAY_GROW(a->gone, a->cap_gone, a->n_gone + 1);
        a->gone[a->n_gone++] = w;
        watcher_stop(w, on_watcher_stopped, a);
    }
    a->n = kept;
    config_unref(a->config);
    a->config = config;
    a->acc = acc;
    if (a->poller != NULL)
        poller_set_account(a->poller, config, acc);
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
            added = true;
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
    /* a new mailbox left to the shared connection is swept soon (with
     * NOTIFY: the connection arms again; its STATUS lines bring the
     * visit), not a poll_interval or an idle_refresh later */
    if (added && a->poller != NULL && has_shared(a))
        poller_sweep_soon(a->poller);
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
    /* what is already logging out (removed mailboxes, a poller left
     * without mailboxes) is waited for too */
    a->stop_pending += (unsigned)(a->n_gone + a->n_old_pollers);
    /* its logged_out event comes from the loop, after this */
    if (a->poller != NULL && poller_stop(a->poller))
        a->stop_pending++;
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
    for (size_t i = 0; i < a->n_old_pollers; i++)
        poller_free(a->old_pollers[i]);
    free(a->old_pollers);
    for (size_t i = 0; i < a->n; i++)
        watcher_free(a->w[i]);
    for (size_t i = 0; i < a->n_gone; i++)
        watcher_free(a->gone[i]);
    free(a->w);
    free(a->gone);
    tls_ctx_unref(a->tls);
    secret_cache_unref(a->secrets);
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
        if (watcher_is_shared(a->w[i]) && a->poller != NULL)
            poller_sweep_soon(a->poller);
    }
    return found;
}

struct tls_ctx *
account_tls(const struct account *a)
{
    return a->tls;
}

struct secret_cache *
account_secrets(const struct account *a)
{
    return a->secrets;
}
