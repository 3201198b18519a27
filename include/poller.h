/* SPDX-License-Identifier: MIT */
/* poller: the one shared connection of an account's mailboxes beyond its
 * connection budget. Every poll_interval it asks STATUS for each shared
 * watcher and visits (watcher_visit) those that changed, one at a time, on
 * that connection; with --once it visits every shared watcher fully, then
 * logs out. On a failure it reconnects after a backoff, and shows its
 * state on the shared watchers (connecting, polling, backoff, error).
 *
 * The event connection: when the server offers NOTIFY (RFC 5465) and the
 * account's notify is not off, the same connection arms NOTIFY instead of
 * polling and visits a shared watcher when a STATUS event shows it
 * changed (poller_notify.c tells how nothing is missed: the check after
 * visits, the re-arm every idle_refresh). NOTIFY SET refused: it polls,
 * said once. notify: on and no NOTIFY: the shared watchers show the error
 * and the connection logs out for good. Renames and deletions go to the
 * owner (ops->mailbox_event).
 *
 * Ownership. The owner (the account) owns the poller and the watchers;
 * the poller owns its session, its timer, its visit queue and its
 * in-flight STATUS commands. env, log, ops, tls and secrets are borrowed
 * and must outlive the poller; it holds a reference to the configuration
 * acc belongs to (poller_set_account swaps both). Every watcher it keeps —
 * in its visit queue, the one being visited, and the one each STATUS in
 * flight asks about — is a reference (watcher_ref), so a reply that comes
 * after a reload dropped the watcher finds it still allocated, sees
 * watcher_gone() and ignores it. poller_forget() abandons a visit at once
 * and lets the cycle go on. During a visit the watcher borrows the
 * poller's connection; the poller abandons the visit (watcher_visit_abort)
 * before the connection goes (it closed, poller_stop, poller_free). */
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
    void (*logged_out)(void *arg);    /* NOTIFY reported a mailbox of the account deleted (newname NULL) or
     * renamed to newname (names in UTF-8). Runs inside the poller's
     * event handling: it may call poller_forget(), not free the poller.
     * NULL: ignored. */
    void (*mailbox_event)(void *arg, const char *name, const char *newname);
};

/* Replace the ops (and their arg): the owner retiring a poller that has
 * nothing left to poll sends its events elsewhere. */
void poller_set_ops(struct poller *p, const struct poller_ops *ops,
                    void *arg);
/* True when the poller has no connection and none coming (after
 * poller_stop(), once logged out). */
bool poller_is_down(const struct poller *p);
/* Create; it does not connect until poller_start(). acc belongs to config
 * (a reference is taken). */
struct poller *poller_new(const struct watcher_env *env,
                          struct config *config,
                          const struct config_account *acc,
                          struct tls_ctx *tls, struct secret_cache *secrets,
                          const struct log_ctx *log,
                          const struct poller_ops *ops, void *arg);
/* Connect (the shared watchers show connecting), then poll. */
void poller_start(struct poller *p);
/* A reload kept the account's connection settings: poll with acc of config
 * (its poll_interval, reconnect delays; the next connection's settings). */
void poller_set_account(struct poller *p, struct config *config,
                        const struct config_account *acc);
/* The owner drops w (a reload removed its mailbox) or gives it a
 * connection of its own: the poller stops holding it. If w is being
 * visited, the visit is abandoned (watcher_visit_abort, no error) and the
 * cycle goes on with the next mailbox (from the loop). Entries of w in
 * the queue are cleared. A STATUS in flight for w keeps its reference
 * until it completes and then ignores w. */
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
