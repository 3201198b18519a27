/* SPDX-License-Identifier: MIT */
/* poller internals shared by its files:
 *  poller.c         the connection, the STATUS cycle, visits, the owner's
 *                   calls;
 *  poller_notify.c  the event connection: NOTIFY SET (RFC 5465), its
 *                   STATUS and LIST events, the check after visits, the
 *                   re-arm on the idle_refresh schedule.
 * Not part of the contract (include/poller.h). */
#ifndef IMAPSWEEP_POLLER_PRIVATE_H
#define IMAPSWEEP_POLLER_PRIVATE_H

#include <stdbool.h>
#include <stddef.h>

#include <uv.h>

#include "poller.h"

enum poller_state {
    PS_DOWN,
    PS_CONNECTING,
    PS_STATUS,
    PS_VISITING,
    PS_WAITING,
    PS_BACKOFF,
    PS_STOPPING,
    PS_ARMING,      /* NOTIFY SET in flight */
    PS_LISTENING,   /* NOTIFY armed, nothing to visit */
    PS_REFUSED,     /* notify: on, the server has no NOTIFY: logging out */
};

struct poller {
    const struct watcher_env *env;
    struct config *config;       /* a reference: acc is one of its accounts */
    const struct config_account *acc;
    struct tls_ctx *tls;
    struct secret_cache *secrets;   /* borrowed, like tls */
    const struct log_ctx *log;   /* the account's */
    const struct poller_ops *ops;
    void *arg;
    enum poller_state st;
    struct session *session;
    struct imap_conn *conn;
    uv_timer_t timer;
    /* Every watcher the poller keeps is a reference (watcher_ref): the
     * queue's entries, the one being visited, each STATUS in flight and
     * the visited list. A watcher the owner dropped meanwhile
     * (watcher_gone) is skipped. */
    struct watcher **queue;      /* to visit in this cycle */
    size_t n_queue, cap_queue, pos;
    struct watcher *current;
    unsigned status_pending;
    unsigned failures;
    bool again;                  /* a sweep was asked for during a cycle */
    /* NOTIFY */
    bool notify;                 /* this connection is an event connection */
    bool notify_failed;          /* NOTIFY SET was refused: poll from now */
    bool refused;                /* notify: on, and the server has none */
    bool rearm_due;              /* idle_refresh passed while busy */
    struct watcher **visited;    /* since the last check (STATUS after) */
    size_t n_visited, cap_visited;
};

/* poller.c */
void poller_visit_next(struct poller *p);
/* UNSELECT the visited mailbox (when the server can) before STATUS. */
void poller_unselect(struct poller *p);
/* Ask STATUS of every shared watcher, then visit those that changed. */
void poller_cycle(struct poller *p);
/* Show st (and err) on the shared watchers but the one being visited. */
void poller_set_shared_states(struct poller *p, enum watcher_state st,
                              const char *err);
void poller_enqueue(struct poller *p, struct watcher *w);
void poller_clear_queue(struct poller *p);
void poller_on_timer(uv_timer_t *t);
/* The shared watcher named name (decoded), or NULL. */
struct watcher *poller_shared_by_name(struct poller *p, const char *name);
/* Ask STATUS for w (a reference is taken); false if it could not be
 * sent. */
bool poller_send_status(struct poller *p, struct watcher *w);
void poller_set_notified(struct poller *p, bool notified);

/* poller_notify.c */
/* A STATUS line (answer or NOTIFY event): the shared watcher it names is
 * queued for a visit if it changed; a malformed line ends the connection.
 * Returns false if r is no STATUS response. */
bool poller_status_line(struct poller *p, const struct imap_response *r,
                        bool event);
/* Logged in: arm NOTIFY if the server has it and the account wants it
 * (true), or refuse (notify: on without NOTIFY; true). false: poll. */
bool poller_notify_ready(struct poller *p);
/* Unsolicited data of an event connection: STATUS and LIST events.
 * Returns false for anything else. */
bool poller_notify_untagged(struct poller *p, const struct imap_response *r);
/* Nothing left to visit on an event connection: check the mailboxes just
 * visited, re-arm if due, else listen. */
void poller_notify_drained(struct poller *p);
/* The idle_refresh timer of an event connection. */
void poller_notify_timer(struct poller *p);
/* notify: on without NOTIFY: show why on every shared watcher. */
void poller_notify_show_refusal(struct poller *p);
/* Forget the visited list (the connection closed, the poller stops). */
void poller_notify_reset(struct poller *p);

#endif
