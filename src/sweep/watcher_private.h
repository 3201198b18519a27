/* SPDX-License-Identifier: MIT */
/* watcher internals shared by its files:
 * - watcher.c: the state machine (connect, select, sweep, idle, poll,
 *   failures and backoff) and the public calls that drive it;
 * - watcher_report.c: what it reports (state names, counts, status, the
 *   sweep-duration histogram) and the note that the server's IDLE polls.
 * Not part of the contract (include/watcher.h). */
#ifndef IMAPSWEEP_WATCHER_PRIVATE_H
#define IMAPSWEEP_WATCHER_PRIVATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "idle_beat.h"
#include "log.h"
#include "sweep.h"
#include "watcher.h"

enum timer_kind { T_NONE, T_BACKOFF, T_FULL, T_POLL, T_STOP };

struct watcher {
    const struct watcher_env *env;
    struct config *config;
    const struct config_account *acc;
    struct tls_ctx *tls;
    struct secret_cache *secrets;   /* the account's (referenced) */
    char *account;
    char *mailbox;
    struct log_ctx log;         /* account, mailbox */
    const struct rule **rules;
    size_t n_rules;
    char *rules_canon;
    bool shared;
    enum watcher_state state;
    uint64_t state_since;
    struct session *session;    /* dedicated watchers */
    struct imap_conn *conn;     /* the session's, or the poller's */
    struct sweep *sweep;
    bool want_full, want_incr, need_reselect;
    bool examined;              /* opened with EXAMINE: every rule is dry */
    struct sweep_memo memo;
    struct idle_beat beat;      /* does the server's IDLE only poll? */
    uint64_t beat_idle_since;   /* the IDLE last sampled (one per IDLE) */
    uint32_t uidvalidity, uid_swept, exists;
    bool swept_once;
    uv_timer_t timer;
    enum timer_kind timer_kind;
    uint64_t last_full_ms;
    unsigned failures, reconnects;
    unsigned sweep_failures;    /* failed sweeps in a row (connection up) */
    uint64_t retry_ms;          /* a failed sweep is retried after this */
    bool auth_failed;
    char *last_error;
    char *caps;
    struct watcher_count *counts;
    size_t n_counts, cap_counts;
    uint64_t last_sweep, last_sweep_ms;
    bool stopping;
    struct session *retired;    /* logging out after becoming shared */
    void (*stop_cb)(struct watcher *w, void *arg);
    void *stop_arg;
    bool logging_out;
    /* shared watchers: the poller's visit */
    bool visiting;
    bool visit_full;
    void (*visit_done)(struct watcher *w, bool ok, void *arg);
    void *visit_arg;
    bool once_reported;
};

/* watcher.c: ask the owner to publish the status again. */
void watcher_changed(struct watcher *w);

/* watcher_report.c */
/* Add a finished sweep's counts for one rule to the status. */
void watcher_add_count(struct watcher *w, const struct sweep_stat *st);
/* An untagged response on the watcher's own connection: if the server
 * announced it while idling, its time feeds idle_beat (one per IDLE), and
 * a polling IDLE is noted once, naming idle_refresh. */
void watcher_sample_idle_change(struct watcher *w,
                                const struct imap_response *r);

#endif
