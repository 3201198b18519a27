/* SPDX-License-Identifier: MIT */
/* imap_conn: one IMAP session on a libuv loop, in the spirit of imaplib2: a
 * queue of tagged commands, each with a completion callback and an optional
 * handler for the untagged data it provokes.
 *
 * - Commands that do not change state are pipelined (up to a cap);
 *   SELECT, EXAMINE, CLOSE, UNSELECT, EXPUNGE (also UID EXPUNGE), STARTTLS,
 *   AUTHENTICATE, LOGIN, LOGOUT and ENABLE wait for every command ahead of
 *   them and hold the queue until they complete.
 * - Nothing is sent behind a command waiting for a "+" continuation.
 * - IDLE is a state of the queue: with idling enabled, the connection enters
 *   IDLE whenever the queue empties, leaves it with DONE as soon as a command
 *   is submitted (the command follows DONE at once, without waiting for
 *   IDLE's tagged OK, unless it is a barrier), and re-issues it every
 *   idle_refresh.
 * - A response is awaited at most command_timeout after the last byte
 *   received (anything the server sends counts as life); an expired wait, a
 *   BYE, a parse error or a transport error ends the connection, and then
 *   every queued and in-flight callback fires exactly once with
 *   IMAP_DISCONNECTED (or IMAP_CANCELLED when the owner frees it).
 * - The last 20 protocol lines are kept (credentials redacted) and logged
 *   when the connection ends unexpectedly; log level trace logs all lines.
 *
 * Knows nothing of rules, YAML, systemd or the control socket. */
#ifndef IMAPSWEEP_IMAP_CONN_H
#define IMAPSWEEP_IMAP_CONN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "imap_arg.h"
#include "imap_build.h"
#include "imap_parser.h"
#include "transport.h"

struct tls_ctx;
struct imap_conn;

enum imap_status {
    IMAP_OK,
    IMAP_NO,
    IMAP_BAD,
    IMAP_CANCELLED,     /* the owner freed the connection */
    IMAP_DISCONNECTED,  /* the connection ended before the reply */
};
const char *imap_status_name(enum imap_status s);

enum imap_conn_state {
    IMAP_CONN_CONNECTING,
    IMAP_CONN_GREETING,
    IMAP_CONN_STARTTLS,
    IMAP_CONN_NOT_AUTH,      /* ready: imap_conn_login() */
    IMAP_CONN_AUTHENTICATING,
    IMAP_CONN_AUTH,          /* authenticated, nothing selected */
    IMAP_CONN_SELECTED,
    IMAP_CONN_LOGOUT,
    IMAP_CONN_CLOSED,
};
const char *imap_conn_state_name(enum imap_conn_state s);

enum imap_tls_mode {
    IMAP_TLS_NONE,
    IMAP_TLS_IMPLICIT,
    IMAP_TLS_STARTTLS,
};

enum imap_auth {
    IMAP_AUTH_AUTO,         /* password: PLAIN if offered, else LOGIN;
                               token: OAUTHBEARER, else XOAUTH2 */
    IMAP_AUTH_LOGIN,
    IMAP_AUTH_PLAIN,
    IMAP_AUTH_XOAUTH2,
    IMAP_AUTH_OAUTHBEARER,
};

/* The outcome of a command. For IMAP_OK/NO/BAD the members come from the
 * tagged response (borrowed: valid during the callback only); for
 * CANCELLED/DISCONNECTED, text says why and code/code_args are NULL. */
struct imap_reply {
    enum imap_status status;
    const char *code;
    const struct imap_arg *code_args;
    const char *text;
    int err;               /* DISCONNECTED: the errors.h code */
};

typedef void imap_done_cb(struct imap_conn *c, const struct imap_reply *r,
                          void *arg);
/* Offered each untagged response while the command is the oldest in flight
 * with a handler (an ESEARCH with a TAG correlator goes to its command).
 * Return true if consumed; otherwise it goes to the next command with a
 * handler and then to the owner's `untagged` event. */
typedef bool imap_untagged_cb(struct imap_conn *c,
                              const struct imap_response *r, void *arg);

struct imap_cmd_opts {
    imap_done_cb *done;        /* may be NULL */
    imap_untagged_cb *untagged;
    /* Streams literals of the responses this command provokes (message
     * bodies for digests); see imap_parser_stream_ops. Arguments are
     * (arg, …) like the handlers. */
    const struct imap_parser_stream_ops *stream;
    void *arg;
};

struct imap_conn_events {
    /* Greeting received, capabilities known and, for STARTTLS, TLS up:
     * call imap_conn_login(), unless the server greeted with PREAUTH
     * (state is then IMAP_CONN_AUTH). */
    void (*ready)(struct imap_conn *c, void *arg);
    /* An untagged response no command consumed: EXISTS, EXPUNGE, FETCH
     * flag updates, OK [UIDVALIDITY …], NO/BAD alerts, … The connection
     * has already applied it to its own state (capabilities, mailbox). */
    void (*untagged)(struct imap_conn *c, const struct imap_response *r,
                     void *arg);
    /* The session ended: err 0 after a requested LOGOUT, else an errors.h
     * code and a message saying what happened. Called at most once, never
     * after imap_conn_free(). The owner frees the connection (it may do so
     * from inside this callback). */
    void (*closed)(struct imap_conn *c, int err, const char *msg, void *arg);
};

/* What a setting left 0 means; the configuration's defaults are these. */
#define IMAP_CONN_DEFAULT_COMMAND_TIMEOUT_S 60
#define IMAP_CONN_DEFAULT_IDLE_REFRESH_S (10 * 60)

struct imap_conn_settings {
    const char *account;       /* log fields (copied); mailbox may be NULL */
    const char *mailbox;
    const char *host;          /* TCP */
    uint16_t port;
    const char *tunnel;        /* or a tunnel command (PREAUTH expected) */
    enum imap_tls_mode tls;
    struct tls_ctx *tls_ctx;   /* required unless tls == IMAP_TLS_NONE */
    uint64_t connect_timeout_ms;
    uint64_t command_timeout_ms;
    uint64_t idle_refresh_ms;
    unsigned keepalive_s;
    uint64_t max_literal;      /* in-memory literals; 0: 1 MiB */
    unsigned pipeline_max;     /* 0: 32 */
    /* Allow credentials on a connection without TLS (tls none, tunnel). */
    bool allow_plaintext_auth;
};

struct imap_mailbox_info {
    bool selected;
    bool readonly;
    uint32_t exists;
    uint32_t uidvalidity;      /* 0 until known */
    uint32_t uidnext;          /* 0 until known, and again once an EXISTS
                                * announced new messages: then it no
                                * longer bounds the mailbox's UIDs */
    /* UIDVALIDITY values taken on this connection: one more at every new
     * value, never less (kept across SELECTs). A value that changes and
     * comes back still moved this: compare it, not only uidvalidity. */
    uint32_t uidvalidity_changes;
};

/* Create and start connecting. Never NULL; failures arrive as `closed`. */
struct imap_conn *imap_conn_new(struct transport_pool *pool,
                                const struct imap_conn_settings *s,
                                const struct imap_conn_events *ev, void *arg);
/* The same over a transport the caller made (tests use a scripted one).
 * Takes ownership of t. */
struct imap_conn *imap_conn_new_with_transport(
    struct transport *t, uv_loop_t *loop, const struct imap_conn_settings *s,
    const struct imap_conn_events *ev, void *arg);
/* End the session now (no LOGOUT): every pending callback fires with
 * IMAP_CANCELLED before this returns, no event fires afterwards, and the
 * memory is released once the handles are closed. NULL-safe; may be called
 * from any callback of this connection. */
void imap_conn_free(struct imap_conn *c);

/* End the session because of something the owner found wrong in what the
 * server said (a protocol violation the parser cannot see, such as a
 * search result the mailbox cannot hold): from now on nothing more is sent
 * or accepted, and from the loop (never inside this call) the trace is
 * logged, every pending callback fires with IMAP_DISCONNECTED, and `closed`
 * follows with err and msg. NULL-safe. */
void imap_conn_abort(struct imap_conn *c, int err, const char *msg);

/* Authenticate with a password (or, for XOAUTH2/OAUTHBEARER or AUTO with
 * is_token, an access token). The secret is copied into the command and
 * wiped when sent; the caller wipes its own copy. done gets the outcome,
 * after capabilities were refreshed (and UTF8=ACCEPT enabled when offered).
 * If the login cannot be attempted at all (LOGINDISABLED, no usable
 * mechanism, no TLS while credentials need it) the connection ends with
 * `closed` (from the loop, not inside this call) and done is not called. */
void imap_conn_login(struct imap_conn *c, enum imap_auth mech,
                     const char *user, const char *secret, size_t secret_len,
                     bool is_token, imap_done_cb *done, void *arg);

/* A new command builder with this connection's literal and UTF-8 mode. */
struct imap_build *imap_conn_build(const struct imap_conn *c);
/* Queue a command (ownership of b is taken). Returns 0, or an error (and
 * no callback) if the connection is closing or the command is invalid. */
int imap_conn_submit(struct imap_conn *c, struct imap_build *b,
                     const struct imap_cmd_opts *o);
/* SELECT (or EXAMINE when readonly), updating imap_conn_mailbox(). */
int imap_conn_select(struct imap_conn *c, const char *mailbox, bool readonly,
                     imap_done_cb *done, void *arg);
/* Enable or disable automatic IDLE (only if the server has IDLE). */
void imap_conn_idle(struct imap_conn *c, bool enable);
/* True while an IDLE is active on the server (after its "+"). */
bool imap_conn_is_idling(const struct imap_conn *c);
/* While idling (after the "+", before DONE): true, with the loop time
 * (uv_now, ms) at which the server accepted this IDLE; what an untagged
 * event brings now was announced by the server during that IDLE, not in
 * answer to a command. Otherwise false and since_ms_r untouched. */
bool imap_conn_idle_since(const struct imap_conn *c, uint64_t *since_ms_r);
/* Send LOGOUT after what is queued; `closed` follows with err 0. */
void imap_conn_logout(struct imap_conn *c);

enum imap_conn_state imap_conn_state(const struct imap_conn *c);
/* Capability test, case-insensitive ("UIDPLUS", "AUTH=PLAIN"). */
bool imap_conn_has_cap(const struct imap_conn *c, const char *cap);
/* All capabilities, upper-cased, space-separated ("" before known). */
const char *imap_conn_caps(const struct imap_conn *c);
const struct imap_mailbox_info *imap_conn_mailbox(const struct imap_conn *c);
/* True when UTF8=ACCEPT was enabled (mailbox names are UTF-8). */
bool imap_conn_utf8(const struct imap_conn *c);
/* True once the server's greeting arrived (also in the `closed` event:
 * a connection that ends without one never heard the server speak IMAP). */
bool imap_conn_greeted(const struct imap_conn *c);
/* Commands queued or in flight (not counting IDLE). */
size_t imap_conn_pending(const struct imap_conn *c);
const char *imap_conn_peer(const struct imap_conn *c);
const char *imap_conn_tls_describe(const struct imap_conn *c);

#endif
