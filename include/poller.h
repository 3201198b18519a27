/* SPDX-License-Identifier: MIT */
/* poller: the one shared connection of an account's mailboxes beyond its
 * connection budget. Every poll_interval it asks STATUS for each shared
 * watcher and visits (watcher_visit) those that changed, one at a time, on
 * that connection; with --once it visits every shared watcher fully, then
 * logs out. On a failure it reconnects after a backoff, and shows its
 * state on the shared watchers (connecting, polling, backoff, error).
 *
 * Ownership. The owner (the account) owns the poller and the watchers;
 * the poller owns its session, its timer, its visit queue and its
 * in-flight STATUS commands. Everything passed to poller_new() is
 * borrowed: env, log, ops, tls and secrets must outlive the poller; acc must stay
 * valid until replaced with poller_set_account(). The poller borrows
 * watchers in three places: its visit queue, the one being visited, and
 * each STATUS command in flight (it names its watcher for the error of a
 * NO reply). Before the owner stops or frees a watcher it drops, it calls
 * poller_forget(), which clears the first two; the STATUS commands keep
 * their watcher until they complete (a gap left as it is). During a visit
 * the watcher borrows the poller's connection; the poller abandons the
 * visit (watcher_visit_abort) before the connection goes (it closed,
 * poller_stop, poller_free). */
#ifndef IMAPSWEEP_POLLER_H
#define IMAPSWEEP_POLLER_H

#include <stdbool.h>
#include <stddef.h>

#include "config.h"
#include "log.h"
#include "watcher.h"

struct secret_cache;
struct tls_ctx;
struct poller;

/* How the poller reaches its owner; arg is poller_new()'s. */
struct poller_ops {
    /* The owner's watchers, in configured order; the poller polls those
     * marked shared (watcher_is_shared). The array is borrowed only until
     * the poller next returns to the loop: it keeps no copy, and asks again
     * at each step. It must not call into the poller. */
    struct watcher *const *(*watchers)(void *arg, size_t *n_r);
    /* The connection ended after a logout: poller_stop(), or the end of a
     * --once cycle. Runs from the loop, never from inside a poller_*()
     * call; the poller is down. It must not free the poller. */
    void (*logged_out)(void *arg);
};

/* Create; it does not connect until poller_start(). */
struct poller *poller_new(const struct watcher_env *env,
                          const struct config_account *acc,
                          struct tls_ctx *tls, struct secret_cache *secrets,
                          const struct log_ctx *log,
                          const struct poller_ops *ops, void *arg);
/* Connect (the shared watchers show connecting), then poll. */
void poller_start(struct poller *p);
/* A reload kept the account's connection settings: poll with acc (its
 * poll_interval, reconnect delays; the next connection's settings). */
void poller_set_account(struct poller *p, const struct config_account *acc);
/* The owner drops w (a reload removed its mailbox): the poller stops
 * holding it. If w is being visited, the visit is abandoned
 * (watcher_visit_abort, no error); its done callback does not come, so the
 * cycle does not go on to the rest of the queue: the poller stays in its
 * visiting state until its connection closes. Entries of w in the queue
 * are cleared. */
void poller_forget(struct poller *p, struct watcher *w);
/* A full sweep was asked for a shared watcher: poll now if waiting, else
 * start another cycle as soon as this one ends. */
void poller_sweep_soon(struct poller *p);
/* Stop polling: the timer stops, a visit in progress is abandoned, and a
 * connection logs out. Returns true if there was a connection: then
 * ops->logged_out follows (from the loop) when it has ended. */
bool poller_stop(struct poller *p);
/* Free now (no LOGOUT); a visit in progress is abandoned. The memory goes
 * from the loop (its timer closes). NULL-safe. */
void poller_free(struct poller *p);

#endif
