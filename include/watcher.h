/* SPDX-License-Identifier: MIT */
/* watcher: one watched mailbox of one account. A dedicated watcher owns an
 * IMAP connection and runs
 *
 *   connecting -> authenticating -> selecting -> sweeping -> idle
 *        ^                                          ^          |
 *        |                                          +-- new mail
 *        +------------- backoff <----- any failure
 *
 * (polling instead of idle when the server lacks IDLE). A shared watcher
 * (a mailbox beyond the account's connection budget) has no connection of
 * its own: the account's poller visits it on a shared connection.
 *
 * The watcher keeps everything `imapsweepctl status` shows.
 *
 * Lifetime. The owner (the account) creates the watcher and frees it with
 * watcher_free(), never from inside one of the watcher's own calls into
 * it except the stop callback. Anything that may outlive a reload holds a
 * reference (watcher_ref): each command in flight for the watcher (its
 * SELECT, its NOOP: the reply is also checked against the connection the
 * watcher uses now, so a late reply to an abandoned visit or a closed
 * session is ignored) and the poller's queue, visit and STATUS commands.
 * watcher_free() tears everything down at once (session, sweep, timer,
 * config) and marks the watcher gone; the memory goes with the last
 * reference. A sweep the watcher started is detached (sweep.h) and
 * touches nothing of the watcher's afterwards. */
#ifndef IMAPSWEEP_WATCHER_H
#define IMAPSWEEP_WATCHER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "config.h"
#include "imap_conn.h"
#include "imap_mbox.h"
#include "session.h"
#include "sweep.h"

struct secret_cache;
struct tls_ctx;
struct watcher;

enum watcher_state {
    WATCHER_CONNECTING,
    WATCHER_AUTHENTICATING,
    WATCHER_SELECTING,
    WATCHER_SWEEPING,
    WATCHER_IDLE,
    WATCHER_POLLING,
    WATCHER_BACKOFF,
    WATCHER_ERROR,
    WATCHER_STOPPED,
};
const char *watcher_state_name(enum watcher_state s);

/* How a mailbox is watched: its own connection in IDLE, the account's
 * event connection (NOTIFY), or polled (the shared connection's STATUS
 * cycle, or a dedicated connection to a server without IDLE). */
enum watcher_via {
    WATCHER_VIA_IDLE,
    WATCHER_VIA_NOTIFY,
    WATCHER_VIA_POLL,
};
const char *watcher_via_name(enum watcher_via v);

/* How long sweeps took, over every watcher of a daemon: a histogram whose
 * bucket i counts the sweeps that took at most watcher_sweep_bounds_us[i]
 * microseconds (cumulative, as Prometheus has it; the last bound is
 * UINT64_MAX, "+Inf"). Only sweeps that completed are counted. */
#define WATCHER_SWEEP_BUCKETS 16
extern const uint64_t watcher_sweep_bounds_us[WATCHER_SWEEP_BUCKETS];

struct watcher_sweep_hist {
    uint64_t count;
    uint64_t sum_us;
    uint64_t le[WATCHER_SWEEP_BUCKETS];
};

struct watcher_stats {
    struct watcher_sweep_hist full;
    struct watcher_sweep_hist incremental;
};

/* Count one sweep of us microseconds. */
void watcher_sweep_hist_add(struct watcher_sweep_hist *h, uint64_t us);

/* What the daemon provides to every watcher. */
struct watcher_env {
    struct session_env session; /* loop, transport pool, gates */
    bool cli_dry_run;          /* --dry-run */
    bool once;                 /* --once: one full sweep, then log out */
    /* the daemon's totals, or NULL; the daemon owns it and it outlives
     * every watcher (and every account) of the daemon */
    struct watcher_stats *stats;
    /* something status shows changed (state, counts) */
    void (*changed)(void *arg);
    /* --once: this watcher is finished (ok or failed) */
    void (*once_done)(struct watcher *w, bool ok, void *arg);
    void *arg;
};

/* Rule action totals, per rule and kind. */
struct watcher_count {
    char *rule;
    char action[8];            /* delete, trash, move, flag */
    bool dry;                  /* counted as "would" */
    uint64_t n;
};

struct watcher_status {
    const char *account;
    const char *mailbox;
    enum watcher_state state;
    uint64_t state_since;      /* seconds since the epoch */
    bool shared;               /* visited by the account's poller */
    enum watcher_via via;
    uint64_t last_event;       /* seconds since the epoch; 0: none yet */
    const char *capabilities;  /* space-separated, "" before known */
    uint32_t uidvalidity;
    uint32_t messages;
    uint32_t uid_swept;
    const struct watcher_count *counts;
    size_t n_counts;
    uint64_t last_sweep;       /* seconds since the epoch; 0: never */
    uint64_t last_sweep_ms;
    unsigned reconnects;
    const char *last_error;    /* NULL when fine */
    const char *const *notes;
    size_t n_notes;
};

/* Create (not started). rules: the account's rules that apply to this
 * mailbox, in order (borrowed from config, which is referenced). */
struct watcher *watcher_new(const struct watcher_env *env,
                            struct config *config,
                            const struct config_account *account,
                            struct tls_ctx *tls,
                            struct secret_cache *secrets,
                            const char *mailbox, bool shared);
/* Dedicated: start connecting (through the gate). Shared: only marks it
 * polling; the poller drives it. */
void watcher_start(struct watcher *w);
/* Stop: cancel the sweep (commands in flight finish), LOGOUT, then cb
 * runs (from the loop). After cb the watcher may be freed. */
void watcher_stop(struct watcher *w, void (*cb)(struct watcher *w,
                                                 void *arg), void *arg);
/* Free now, closing any connection without LOGOUT: the owner's reference
 * goes; holders of other references see watcher_gone(). NULL-safe. */
void watcher_free(struct watcher *w);
/* Keep w allocated (see Lifetime above); returns w. */
struct watcher *watcher_ref(struct watcher *w);
/* Drop a reference. NULL-safe. */
void watcher_unref(struct watcher *w);
/* True once the owner stopped or freed w: a holder of a reference must
 * not use it for anything but watcher_unref(). */
bool watcher_gone(const struct watcher *w);

/* A reload kept this watcher: switch to the new config. If the rules that
 * apply changed, a running sweep is cancelled (nothing more is acted on
 * under the old rules) and a full sweep follows. */
void watcher_update(struct watcher *w, struct config *config,
                    const struct config_account *account);
/* Sweep the whole mailbox now (or as soon as the current sweep ends). */
void watcher_sweep_now(struct watcher *w);

/* For the poller: sweep this shared watcher's mailbox over conn (already
 * authenticated): SELECT, sweep (full when due), then done(ok). EXISTS
 * and other events of conn are passed in with watcher_conn_event while it
 * runs. */
void watcher_visit(struct watcher *w, struct imap_conn *conn, bool force_full,
                   void (*done)(struct watcher *w, bool ok, void *arg),
                   void *arg);
/* Untagged data of the poller's connection during a visit. */
void watcher_conn_event(struct watcher *w, const struct imap_response *r);
/* The poller's connection failed: abandon the visit (done is not
 * called), remember the error. */
void watcher_visit_abort(struct watcher *w, const char *error);
/* The poller learnt STATUS values (those the line carried; NOTIFY's lines
 * after a delivery have no UIDVALIDITY): true if a visit is worthwhile
 * (new UIDs, another UIDVALIDITY, or a full sweep due). The time is kept
 * as the watcher's last event when event is true (a NOTIFY line). */
bool watcher_status_changed(struct watcher *w,
                            const struct imap_mbox_status *st, bool event);
/* The shared connection watches this shared watcher by NOTIFY (true) or
 * by polling (false); status shows it. */
void watcher_set_notified(struct watcher *w, bool notified);
/* The mailbox was deleted or renamed on the server (a NOTIFY event) and is
 * not followed: the watcher gives up its connection and its sweep, and
 * stays stopped with why as its error until a reload drops it. The owner
 * first tells the poller (poller_forget). */
void watcher_halt(struct watcher *w, const char *why);
bool watcher_halted(const struct watcher *w);
/* on_rename: follow: watch the mailbox under its new name from now on (a
 * dedicated watcher connects again and SELECTs it; a shared one is
 * visited under it). The owner first tells the poller (poller_forget). */
void watcher_rename(struct watcher *w, const char *name);
/* Set the state of a shared watcher (the poller's view). */
void watcher_set_shared_state(struct watcher *w, enum watcher_state st,
                              const char *error);

const char *watcher_mailbox(const struct watcher *w);
bool watcher_is_shared(const struct watcher *w);
void watcher_set_shared(struct watcher *w, bool shared);
void watcher_status(const struct watcher *w, struct watcher_status *st);
/* Totals for STATUS=: number of actions taken (not dry). */
uint64_t watcher_total_actions(const struct watcher *w);
/* True for states where the mailbox is being watched (idle, polling,
 * sweeping). */
bool watcher_is_watching(const struct watcher *w);

#endif
