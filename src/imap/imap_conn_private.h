/* SPDX-License-Identifier: MIT */
/* imap_conn internals shared by the module's files:
 * - imap_conn.c: the command queue and dispatch (sending, pipelining,
 *   barriers, IDLE, timers, responses, literal streaming, teardown);
 * - imap_state.c: the session's state (names, transport events, greeting,
 *   CAPABILITY and STARTTLS up to `ready`, response codes, SELECT);
 * - imap_auth.c: LOGIN and AUTHENTICATE;
 * - imap_trace.c: the redacted protocol trace.
 * Not part of the contract (include/imap_conn.h). */
#ifndef IMAPSWEEP_IMAP_CONN_PRIVATE_H
#define IMAPSWEEP_IMAP_CONN_PRIVATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "imap_conn.h"
#include "log.h"
#include "util.h"

struct sasl;            /* imap_auth.c */
struct trace_ring;      /* imap_trace.c */

struct imap_cmd {
    struct imap_cmd *next;
    struct imap_build *b;
    char tag[16];
    char name[24];          /* "UID SEARCH", for messages */
    size_t parts_sent;
    bool barrier;
    bool early;             /* may go out before the session is ready */
    bool idle;              /* the IDLE command */
    bool select;            /* SELECT/EXAMINE: resets the mailbox state */
    struct sasl *sasl;      /* AUTHENTICATE in progress */
    imap_done_cb *done;
    imap_untagged_cb *untagged;
    const struct imap_parser_stream_ops *stream;
    void *arg;
};

struct cmd_list {
    struct imap_cmd *head;
    struct imap_cmd **tailp;
    size_t n;
};

enum timer_mode { TM_NONE, TM_RESPONSE, TM_IDLE, TM_FAIL };

struct imap_conn {
    unsigned refs;
    bool freed;             /* the owner let go */
    bool closing;
    bool transport_closed;
    bool timer_closed;
    bool greeted;
    bool preauth;
    bool ready_sent;
    bool logout_requested;
    bool caps_at_auth;      /* the auth OK carried capabilities */
    bool utf8;
    bool idle_wanted;
    bool tls_switched;      /* STARTTLS accepted while reading */
    bool idling;            /* the server answered IDLE's "+" */
    bool done_sent;
    uint64_t idle_since;        /* loop time of IDLE's "+" */
    enum imap_conn_state state;
    enum timer_mode timer_mode;
    uv_loop_t *loop;
    struct transport *t;
    struct imap_parser *parser;
    uv_timer_t timer;
    uint64_t last_activity;
    struct imap_conn_settings s;
    char *account, *mailbox, *host, *tunnel;
    struct log_ctx log;         /* account, mailbox */
    const struct imap_conn_events *ev;
    void *ev_arg;
    char *caps;
    struct cmd_list pending, inflight;
    unsigned inflight_barriers;
    struct imap_cmd *waiting;   /* sent, waiting for "+" */
    struct imap_cmd *idle_cmd;
    struct imap_cmd *streaming;
    uint32_t next_tag;
    struct imap_mailbox_info mbox;
    struct trace_ring *ring;
    int fail_err;               /* TM_FAIL: the deferred failure */
    char *fail_msg;
};

/* imap_conn.c */
void imap_conn_ref(struct imap_conn *c);
/* Drop a reference; frees c once nothing refers to it and its handles are
 * closed. */
void imap_conn_unref(struct imap_conn *c);
/* Free c and all it holds: no reference is left and the handles are closed. */
void imap_conn_destroy(struct imap_conn *c);
/* Send what the queue allows (pipelining cap, barriers, "+" waits, IDLE). */
void imap_conn_pump(struct imap_conn *c);
/* Start, keep or stop the timer for what the connection waits for: a
 * response, or the IDLE refresh. */
void imap_conn_arm_timer(struct imap_conn *c);
/* The response wait counts from now. */
void imap_conn_mark_activity(struct imap_conn *c);
/* End the session (once): the trace is dumped after unexpected errors,
 * every command's callback fires with IMAP_DISCONNECTED, then `closed`. */
void imap_conn_fail(struct imap_conn *c, int err, const char *fmt, ...)
    PRINTF_LIKE(3, 4);
/* The same from the loop, never inside the caller's call. */
void imap_conn_fail_later(struct imap_conn *c, int err, const char *msg);
/* Queue bytes on the transport; secret ones are wiped once sent. */
void imap_conn_write(struct imap_conn *c, const char *p, size_t n,
                     bool secret);
/* A command for b (owned), its name and barrier flag read from b. */
struct imap_cmd *imap_cmd_new(struct imap_build *b,
                              const struct imap_cmd_opts *o);
void imap_cmd_list_push(struct cmd_list *l, struct imap_cmd *cmd);
/* Queue a command of our own (early: it may precede `ready`). */
void imap_conn_submit_internal(struct imap_conn *c, struct imap_build *b,
                               imap_done_cb *done, void *arg, bool early);
/* One parsed response: tagged, untagged or a continuation. */
void imap_conn_handle_response(struct imap_conn *c,
                               const struct imap_response *r);
/* A parser with the connection's limits, streaming literals to the
 * command that asks for them. */
struct imap_parser *imap_conn_new_parser(struct imap_conn *c);

/* imap_state.c */
/* Change state, logging "from -> to". */
void imap_state_set(struct imap_conn *c, enum imap_conn_state st);
void imap_state_set_caps(struct imap_conn *c, const struct imap_arg *args);
/* Nothing selected any more (a SELECT sent, or refused): the mailbox
 * info is cleared but for the count of UIDVALIDITY changes. */
void imap_state_forget_mailbox(struct imap_conn *c);
/* Apply a response code (CAPABILITY, UIDVALIDITY, READ-ONLY, ALERT, …). */
void imap_state_apply_code(struct imap_conn *c,
                           const struct imap_response *r);
/* The first response: OK, PREAUTH or BYE; then capabilities, STARTTLS and
 * `ready`. */
void imap_state_greeting(struct imap_conn *c, const struct imap_response *r);
/* What the transport reports, handed to transport_set_callbacks(). */
extern const struct transport_cbs imap_state_transport_events;

/* imap_auth.c */
void imap_auth_sasl_free(struct sasl *sa);
/* The server's "+" to an AUTHENTICATE in progress. */
void imap_auth_continue(struct imap_conn *c, struct imap_cmd *cmd);

/* imap_trace.c */
/* Keep one protocol line (client: ours) in the ring, redacted (or wholly
 * hidden when secret), and log it at level trace. */
void imap_trace_line(struct imap_conn *c, bool client, const char *line,
                     size_t len, bool secret);
/* Log the ring's lines at level notice (unless trace logged them). */
void imap_trace_dump(struct imap_conn *c);
/* NULL-safe. */
void imap_trace_free(struct trace_ring *ring);
/* Append a printable, redacted copy of one IMAP protocol line (without its
 * CRLF) to out: the arguments of LOGIN after the user name and of
 * AUTHENTICATE after the mechanism become "<redacted>", control bytes are
 * escaped as \xNN, and at most `max` bytes of the line are shown. Returns
 * true if something was redacted. */
bool imap_trace_redact(const char *line, size_t len, size_t max,
                       struct buf *out);

#endif
