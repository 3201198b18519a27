/* SPDX-License-Identifier: MIT */
/* watcher internals shared by its files:
 *  watcher.c         lifetime and references, the dedicated connection,
 *                    selecting, sweeping, idling, timers, status;
 *  watcher_shared.c  shared watchers: the poller's visits, the switch
 *                    between shared and dedicated;
 *  watcher_idle.c    the note that the server's IDLE only polls.
 * Not part of the contract (include/watcher.h). */
#ifndef IMAPSWEEP_WATCHER_PRIVATE_H
#define IMAPSWEEP_WATCHER_PRIVATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "idle_beat.h"
#include "log.h"
#include "watcher.h"

enum timer_kind { T_NONE, T_BACKOFF, T_FULL, T_POLL, T_STOP };

struct watcher {
    /* The owner's reference and one per holder that may outlive a reload:
     * each command in flight for the watcher (struct wcmd) and each
     * place the poller keeps it. watcher_free() tears everything down and
     * marks it freed; the memory goes with the last reference, once the
     * timer has closed. */
    unsigned refs;
    bool freed;
    bool timer_closed;
    /* Bumped whenever the watcher stops using a connection (a visit ends
     * or is abandoned, its session goes, it becomes shared or dedicated):
     * a reply to a command sent under an older value is stale. */
    uint64_t conn_gen;
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
    uint32_t uidnext_seen;      /* UIDNEXT when last selected (0: unknown) */
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
    /* NOTIFY: the event connection covers this shared watcher */
    bool notified;
    uint64_t last_event;        /* seconds since the epoch; 0: none */
    bool halted;                /* watcher_halt(): deleted or renamed */
};

/* The watcher stops using its current connection: a reply to a command
 * sent before is stale from now on. */
void watcher_conn_gone(struct watcher *w);
void watcher_set_state(struct watcher *w, enum watcher_state st);
/* last_error (copied; NULL clears it). */
void watcher_set_error(struct watcher *w, const char *msg);
/* --once: report this watcher finished (once). */
void watcher_report_once(struct watcher *w, bool ok);
/* SELECT the mailbox on w->conn (a sweep follows). */
void watcher_reselect(struct watcher *w);
/* Milliseconds until a full sweep is due (0: now). */
uint64_t watcher_full_due_in(const struct watcher *w);
/* Untagged data of the connection that serves w (EXISTS, EXPUNGE,
 * UIDVALIDITY, NO/BAD while idle). */
void watcher_handle_event(struct watcher *w, const struct imap_response *r);
void watcher_timer_clear(struct watcher *w);
/* Open a dedicated connection (through the gate). */
void watcher_start_connect(struct watcher *w);
/* A visit of the poller ends: the connection goes back, done(ok) runs. */
void watcher_finish_visit(struct watcher *w, bool ok);
/* Ask the owner to publish the status again. */
void watcher_changed(struct watcher *w);
/* Give up the dedicated connection (LOGOUT after what is in flight; the
 * sweep is detached). */
void watcher_retire_session(struct watcher *w);

/* watcher_idle.c */
/* An untagged response on the watcher's own connection: if the server
 * announced it while idling, its time feeds idle_beat (one per IDLE), and
 * a polling IDLE is noted once, naming idle_refresh. */
void watcher_sample_idle_change(struct watcher *w,
                                const struct imap_response *r);

#endif
