/* SPDX-License-Identifier: MIT */
/* account: the watchers of one configured account and its connection
 * budget. With N watched mailboxes and max_connections B, every mailbox
 * gets its own IDLE connection when N <= B and none says idle: false (nor,
 * with notify: on, leaves idle unset); otherwise B - 1 do (idle: true
 * first, then those without the key, in configured order), and the rest
 * share one connection (poller.h): the event connection with NOTIFY, else
 * one that every poll_interval asks STATUS for each of them; either
 * sweeps those that changed. The account owns its watchers and that
 * poller, and tells the poller before it drops a watcher. A mailbox that
 * NOTIFY reports renamed or deleted is stopped (watcher_halt) or, with
 * on_rename: follow, watched under its new name (watcher_rename); a move
 * or trash target reported gone is logged. Also owns the account's TLS
 * context (session resumption). */
#ifndef IMAPSWEEP_ACCOUNT_H
#define IMAPSWEEP_ACCOUNT_H

#include <stdbool.h>
#include <stddef.h>

#include "config.h"
#include "watcher.h"

struct account;

/* Create and start. If the TLS context cannot be made (ca_file), every
 * watcher shows the error instead of connecting. */
struct account *account_new(const struct watcher_env *env,
                            struct config *config,
                            const struct config_account *acc);
/* Apply a reload whose connection settings are unchanged: mailboxes
 * removed log out, new ones connect, kept ones keep their connection and
 * get the new rules (a full sweep if their rules changed). */
void account_update(struct account *a, struct config *config,
                    const struct config_account *acc);
/* Log everything out (IDLE ended, commands in flight finish, LOGOUT); cb
 * runs from the loop when all sessions are closed. */
void account_stop(struct account *a, void (*cb)(struct account *a,
                                                 void *arg), void *arg);
/* Free now (no LOGOUT). NULL-safe. */
void account_free(struct account *a);

const char *account_name(const struct account *a);
size_t account_n_watchers(const struct account *a);
struct watcher *account_watcher(const struct account *a, size_t i);
/* Full sweep of one mailbox (or all with NULL). False if unknown. */
bool account_sweep_now(struct account *a, const char *mailbox);
/* What a one-off session of this account uses (explain): its TLS context
 * (NULL without TLS, or when it could not be made) and its secret cache.
 * Borrowed: take references to keep them. */
struct tls_ctx *account_tls(const struct account *a);
struct secret_cache *account_secrets(const struct account *a);

#endif
