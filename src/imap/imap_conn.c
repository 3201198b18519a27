/* SPDX-License-Identifier: MIT */
/* imap_conn's core: the tagged command queue (sending, pipelining,
 * barriers, IDLE), timers, response dispatch, literal streaming, teardown
 * and the public API. */
#include "imap_conn_private.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "errors.h"
#include "log.h"
#include "util.h"

#define DEFAULT_PIPELINE 32
#define DEFAULT_MAX_LITERAL (1024 * 1024)

/* --- small helpers ----------------------------------------------------- */

static void
list_init(struct cmd_list *l)
{
    l->head = NULL;
    l->tailp = &l->head;
    l->n = 0;
}

void
imap_cmd_list_push(struct cmd_list *l, struct imap_cmd *cmd)
{
    cmd->next = NULL;
    *l->tailp = cmd;
    l->tailp = &cmd->next;
    l->n++;
}

static struct imap_cmd *
list_pop(struct cmd_list *l)
{
    struct imap_cmd *cmd = l->head;

    if (cmd != NULL) {
        l->head = cmd->next;
        if (l->head == NULL)
            l->tailp = &l->head;
        l->n--;
        cmd->next = NULL;
    }
    return cmd;
}

static void
list_remove(struct cmd_list *l, struct imap_cmd *cmd)
{
    struct imap_cmd **pp = &l->head;

    while (*pp != NULL && *pp != cmd)
        pp = &(*pp)->next;
    if (*pp == NULL)
        return;
    *pp = cmd->next;
    if (l->tailp == &cmd->next)
        l->tailp = pp;
    l->n--;
    cmd->next = NULL;
}

static void
cmd_free(struct imap_cmd *cmd)
{
    imap_build_free(cmd->b);
    imap_auth_sasl_free(cmd->sasl);
    free(cmd);
}

void
imap_conn_ref(struct imap_conn *c)
{
    c->refs++;
}

void
imap_conn_destroy(struct imap_conn *c)
{
    struct imap_cmd *cmd;

    while ((cmd = list_pop(&c->pending)) != NULL)
        cmd_free(cmd);
    while ((cmd = list_pop(&c->inflight)) != NULL)
        cmd_free(cmd);
    imap_parser_free(c->parser);
    imap_trace_free(c->ring);
    free(c->caps);
    free(c->account);
    free(c->mailbox);
    free(c->host);
    free(c->tunnel);
    free(c->fail_msg);
    free(c);
}

void
imap_conn_unref(struct imap_conn *c)
{
    if (--c->refs == 0 && c->transport_closed && c->timer_closed)
        imap_conn_destroy(c);
}

static void
on_timer_closed(uv_handle_t *h)
{
    struct imap_conn *c = h->data;

    c->timer_closed = true;
    if (c->refs == 0 && c->transport_closed)
        imap_conn_destroy(c);
}

/* --- sending ------------------------------------------------------------- */

void
imap_conn_write(struct imap_conn *c, const char *p, size_t n, bool secret)
{
    transport_write(c->t, p, n, secret);
}

void
imap_conn_mark_activity(struct imap_conn *c)
{
    c->last_activity = uv_now(c->loop);
}

/* Send the next part of cmd (the first with its tag). */
static void
send_part(struct imap_conn *c, struct imap_cmd *cmd)
{
    size_t nparts = imap_build_nparts(cmd->b), len;
    const char *p = imap_build_part(cmd->b, cmd->parts_sent, &len);
    bool secret = imap_build_is_secret(cmd->b);

    if (cmd->parts_sent == 0) {
        struct buf line;

        if (secret)
            buf_init_secret(&line, BUF_NOCAP);
        else
            buf_init(&line, BUF_NOCAP);
        buf_printf(&line, "%s ", cmd->tag);
        buf_append(&line, p, len);
        imap_trace_line(c, true, line.data, line.len, false);
        if (secret)
            buf_free_secret(&line);
        else
            buf_free(&line);
        imap_conn_write(c, cmd->tag, strlen(cmd->tag), false);
        imap_conn_write(c, " ", 1, false);
    } else {
        imap_trace_line(c, true, p, len, secret);
    }
    imap_conn_write(c, p, len, secret);
    cmd->parts_sent++;
    if (cmd->parts_sent == nparts) {
        imap_conn_write(c, "\r\n", 2, false);
        if (c->waiting == cmd && cmd->sasl == NULL && !cmd->idle)
            c->waiting = NULL;
    } else {
        c->waiting = cmd;
    }
}

static void
send_cmd(struct imap_conn *c, struct imap_cmd *cmd)
{
    snprintf(cmd->tag, sizeof(cmd->tag), "A%u", ++c->next_tag);
    if (cmd->select)
        imap_state_forget_mailbox(c);
    if (strcmp(cmd->name, "LOGOUT") == 0)
        imap_state_set(c, IMAP_CONN_LOGOUT);
    if (c->inflight.n == 1)
        imap_conn_mark_activity(c);
    if (cmd->sasl != NULL || cmd->idle)
        c->waiting = cmd;
    send_part(c, cmd);
}

static void
send_done(struct imap_conn *c)
{
    imap_trace_line(c, true, "DONE", 4, false);
    imap_conn_write(c, "DONE\r\n", 6, false);
    c->done_sent = true;
    imap_conn_mark_activity(c);
}

static void
start_idle(struct imap_conn *c)
{
    struct imap_cmd *cmd = xcalloc(1, sizeof(*cmd));

    cmd->b = imap_build_new(0);
    imap_build_atom(cmd->b, "IDLE");
    util_strlcpy(cmd->name, "IDLE", sizeof(cmd->name));
    cmd->idle = true;
    c->idle_cmd = cmd;
    c->idling = false;
    c->done_sent = false;
    imap_cmd_list_push(&c->inflight, cmd);
    send_cmd(c, cmd);
}

void
imap_conn_pump(struct imap_conn *c)
{
    struct imap_cmd *cmd;

    if (c->closing || c->timer_mode == TM_FAIL)
        return; /* ending: nothing more goes out */
    while ((cmd = c->pending.head) != NULL) {
        if (c->state == IMAP_CONN_CONNECTING ||
            c->state == IMAP_CONN_STARTTLS || c->state == IMAP_CONN_LOGOUT)
            break;
        if (!cmd->early && c->state < IMAP_CONN_NOT_AUTH)
            break;
        if (c->waiting != NULL)
            break;
        if (c->idle_cmd != NULL) {
            /* leave IDLE first; DONE only after the server's "+" */
            if (!c->idling)
                break;
            if (!c->done_sent)
                send_done(c);
            /* Commands may follow DONE at once: RFC 2177 forbids them only
             * while the server waits for DONE. Barriers still wait for
             * IDLE's tagged OK, as for any command in flight. */
        }
        if (c->inflight_barriers > 0)
            break;
        if (cmd->barrier && c->inflight.n > 0)
            break;
        if (c->inflight.n >= c->s.pipeline_max)
            break;
        list_pop(&c->pending);
        imap_cmd_list_push(&c->inflight, cmd);
        if (cmd->barrier)
            c->inflight_barriers++;
        send_cmd(c, cmd);
    }
    if (c->pending.head == NULL && c->inflight.n == 0 && c->idle_wanted &&
        c->idle_cmd == NULL &&
        (c->state == IMAP_CONN_AUTH || c->state == IMAP_CONN_SELECTED))
        start_idle(c);
    imap_conn_arm_timer(c);
}

/* --- timers -------------------------------------------------------------- */

static void
on_timer(uv_timer_t *h)
{
    struct imap_conn *c = h->data;
    enum timer_mode mode = c->timer_mode;

    c->timer_mode = TM_NONE;
    if (c->closing)
        return;
    switch (mode) {
    case TM_FAIL:
        imap_conn_fail(c, c->fail_err, "%s", c->fail_msg ? c->fail_msg : "");
        return;
    case TM_IDLE:
        /* re-issue IDLE: DONE now, a new IDLE once it is answered */
        if (c->idle_cmd != NULL && c->idling && !c->done_sent)
            send_done(c);
        imap_conn_arm_timer(c);
        return;
    case TM_RESPONSE: {
        uint64_t now = uv_now(c->loop);
        const char *what = c->inflight.head ? c->inflight.head->name
                                            : "the greeting";

        if (now - c->last_activity >= c->s.command_timeout_ms) {
            imap_conn_fail(c, ERR_TIMEOUT,
                           "no response from the server within %llus "
                           "(waiting for %s)",
                           (unsigned long long)(c->s.command_timeout_ms
                                                / 1000),
                           c->idle_cmd && c->done_sent ? "DONE" : what);
            return;
        }
        c->timer_mode = TM_RESPONSE;
        uv_timer_start(&c->timer, on_timer,
                       c->s.command_timeout_ms - (now - c->last_activity), 0);
        return;
    }
    case TM_NONE:
        return;
    }
}

void
imap_conn_arm_timer(struct imap_conn *c)
{
    bool awaiting;

    if (c->closing || c->timer_mode == TM_FAIL)
        return;
    if (c->idle_cmd != NULL && c->idling && !c->done_sent &&
        c->inflight.n == 1) {
        if (c->timer_mode != TM_IDLE) {
            c->timer_mode = TM_IDLE;
            uv_timer_start(&c->timer, on_timer, c->s.idle_refresh_ms, 0);
        }
        return;
    }
    awaiting = c->inflight.n > 0 || c->state == IMAP_CONN_GREETING ||
               c->state == IMAP_CONN_STARTTLS || c->state == IMAP_CONN_LOGOUT;
    if (awaiting) {
        if (c->timer_mode != TM_RESPONSE) {
            uint64_t now = uv_now(c->loop), elapsed;

            if (c->timer_mode == TM_IDLE || c->last_activity == 0)
                imap_conn_mark_activity(c);
            elapsed = now - c->last_activity;
            c->timer_mode = TM_RESPONSE;
            uv_timer_start(&c->timer, on_timer,
                           elapsed >= c->s.command_timeout_ms
                               ? 0
                               : c->s.command_timeout_ms - elapsed,
                           0);
        }
        return;
    }
    if (c->timer_mode != TM_NONE) {
        uv_timer_stop(&c->timer);
        c->timer_mode = TM_NONE;
    }
}

/* Fail from the loop rather than inside the caller's call. */
void
imap_conn_fail_later(struct imap_conn *c, int err, const char *msg)
{
    if (c->closing || c->timer_mode == TM_FAIL)
        return;
    c->fail_err = err;
    free(c->fail_msg);
    c->fail_msg = xstrdup(msg);
    c->timer_mode = TM_FAIL;
    uv_timer_start(&c->timer, on_timer, 0, 0);
}

/* --- teardown ------------------------------------------------------------ */

static void
cancel_all(struct imap_conn *c, enum imap_status status, int err,
           const char *msg)
{
    struct cmd_list all;
    struct imap_cmd *cmd;

    list_init(&all);
    while ((cmd = list_pop(&c->inflight)) != NULL)
        imap_cmd_list_push(&all, cmd);
    while ((cmd = list_pop(&c->pending)) != NULL)
        imap_cmd_list_push(&all, cmd);
    c->waiting = NULL;
    c->idle_cmd = NULL;
    c->streaming = NULL;
    c->inflight_barriers = 0;
    while ((cmd = list_pop(&all)) != NULL) {
        struct imap_reply r = {.status = status, .text = msg, .err = err};

        if (cmd->done != NULL)
            cmd->done(c, &r, cmd->arg);
        cmd_free(cmd);
    }
}

static void
begin_close(struct imap_conn *c)
{
    c->closing = true;
    imap_state_set(c, IMAP_CONN_CLOSED);
    uv_timer_stop(&c->timer);
    c->timer_mode = TM_NONE;
    uv_close((uv_handle_t *)&c->timer, on_timer_closed);
    if (c->t != NULL)
        transport_close(c->t);
}

void
imap_conn_fail(struct imap_conn *c, int err, const char *fmt, ...)
{
    va_list ap;
    char *msg;

    if (c->closing)
        return;
    va_start(ap, fmt);
    msg = xvasprintf(fmt, ap);
    va_end(ap);
    if (err == ERR_PROTOCOL || err == ERR_LIMIT || err == ERR_BYE ||
        err == ERR_TIMEOUT)
        imap_trace_dump(c);
    imap_conn_ref(c);
    begin_close(c);
    cancel_all(c, IMAP_DISCONNECTED, err ? err : ERR_CLOSED, msg);
    if (!c->freed && c->ev->closed != NULL)
        c->ev->closed(c, err, msg, c->ev_arg);
    free(msg);
    imap_conn_unref(c);
}

void
imap_conn_free(struct imap_conn *c)
{
    if (c == NULL || c->freed)
        return;
    c->freed = true;
    if (!c->closing) {
        imap_conn_ref(c);
        begin_close(c);
        cancel_all(c, IMAP_CANCELLED, ERR_CANCELLED, "connection closed");
        imap_conn_unref(c);
    }
    imap_conn_unref(c);
}

/* --- commands ------------------------------------------------------------ */

struct imap_cmd *
imap_cmd_new(struct imap_build *b, const struct imap_cmd_opts *o)
{
    struct imap_cmd *cmd = xcalloc(1, sizeof(*cmd));
    struct buf r;
    size_t n = 0;

    cmd->b = b;
    if (o != NULL) {
        cmd->done = o->done;
        cmd->untagged = o->untagged;
        cmd->stream = o->stream;
        cmd->arg = o->arg;
    }
    /* the command name: one word, two for UID commands */
    if (imap_build_is_secret(b))
        buf_init_secret(&r, BUF_NOCAP);
    else
        buf_init(&r, BUF_NOCAP);
    imap_build_render(b, &r);
    while (n < r.len && n < sizeof(cmd->name) - 1 && r.data[n] != ' ')
        n++;
    if (n < r.len && util_strncaseeq(r.data, "UID ", 4)) {
        n = 4;
        while (n < r.len && n < sizeof(cmd->name) - 1 && r.data[n] != ' ')
            n++;
    }
    memcpy(cmd->name, buf_cstr(&r), n);
    cmd->name[n] = '\0';
    if (imap_build_is_secret(b))
        buf_free_secret(&r);
    else
        buf_free(&r);
    for (char *p = cmd->name; *p; p++)
        *p = util_toupper(*p);
    {
        static const char *const barriers[] = {
            "SELECT", "EXAMINE", "CLOSE",    "UNSELECT", "EXPUNGE",
            "UID EXPUNGE", "STARTTLS", "AUTHENTICATE", "LOGIN", "LOGOUT",
            "ENABLE", "COMPRESS",
        };

        for (size_t i = 0; i < ARRAY_SIZE(barriers); i++) {
            if (strcmp(cmd->name, barriers[i]) == 0)
                cmd->barrier = true;
        }
    }
    cmd->select = strcmp(cmd->name, "SELECT") == 0 ||
                  strcmp(cmd->name, "EXAMINE") == 0;
    return cmd;
}

void
imap_conn_submit_internal(struct imap_conn *c, struct imap_build *b,
                          imap_done_cb *done, void *arg, bool early)
{
    struct imap_cmd_opts o = {.done = done, .arg = arg};
    struct imap_cmd *cmd = imap_cmd_new(b, &o);

    cmd->early = early;
    imap_cmd_list_push(&c->pending, cmd);
    imap_conn_pump(c);
}

/* --- responses ----------------------------------------------------------- */

static struct imap_cmd *
find_inflight(struct imap_conn *c, const char *tag)
{
    for (struct imap_cmd *cmd = c->inflight.head; cmd; cmd = cmd->next) {
        if (strcmp(cmd->tag, tag) == 0)
            return cmd;
    }
    return NULL;
}

static void
route_untagged(struct imap_conn *c, const struct imap_response *r)
{
    /* ESEARCH (TAG "x") belongs to command x */
    if (r->name != NULL && strcmp(r->name, "ESEARCH") == 0 &&
        r->args != NULL && r->args->type == IMAP_ARG_LIST) {
        const struct imap_arg *l = r->args->list;
        const char *tag;
        size_t len;

        if (imap_arg_is_atom(l, "TAG") &&
            imap_arg_get_astring(l->next, &tag, &len)) {
            for (struct imap_cmd *cmd = c->inflight.head; cmd;
                 cmd = cmd->next) {
                if (cmd->untagged != NULL && strlen(cmd->tag) == len &&
                    memcmp(cmd->tag, tag, len) == 0) {
                    if (cmd->untagged(c, r, cmd->arg))
                        return;
                    break;
                }
            }
        }
    }
    for (struct imap_cmd *cmd = c->inflight.head; cmd; cmd = cmd->next) {
        if (cmd->untagged != NULL) {
            bool consumed = cmd->untagged(c, r, cmd->arg);

            /* a handler cannot complete commands, only end the session */
            if (c->closing || consumed)
                return;
        }
    }
    if (!c->freed && c->ev->untagged != NULL)
        c->ev->untagged(c, r, c->ev_arg);
}

static void
handle_untagged(struct imap_conn *c, const struct imap_response *r)
{
    if (!c->greeted) {
        imap_state_greeting(c, r);
        return;
    }
    if (r->cond == IMAP_COND_BYE) {
        if (c->logout_requested)
            return;
        imap_conn_fail(c, ERR_BYE, "server closed the session: BYE %s",
                       r->text);
        return;
    }
    if (r->cond == IMAP_COND_PREAUTH) {
        imap_conn_fail(c, ERR_PROTOCOL, "unexpected PREAUTH");
        return;
    }
    imap_state_apply_code(c, r);
    if (r->name != NULL && strcmp(r->name, "CAPABILITY") == 0)
        imap_state_set_caps(c, r->args);
    if (r->has_number && r->name != NULL) {
        if (strcmp(r->name, "EXISTS") == 0) {
            /* new messages took UIDs from the UIDNEXT the server gave:
             * it no longer bounds the mailbox's UIDs */
            if (c->mbox.selected && r->number > c->mbox.exists)
                c->mbox.uidnext = 0;
            c->mbox.exists = r->number;
        } else if (strcmp(r->name, "EXPUNGE") == 0) {
            /* the count is informational (actions use UIDs): a late
             * EXPUNGE for the previous mailbox must not end the session */
            if (c->mbox.exists > 0)
                c->mbox.exists--;
        }
    }
    route_untagged(c, r);
}

static void
handle_tagged(struct imap_conn *c, const struct imap_response *r)
{
    struct imap_cmd *cmd = find_inflight(c, r->tag);
    struct imap_reply reply;

    if (cmd == NULL) {
        imap_conn_fail(c, ERR_PROTOCOL, "response for unknown tag: %.*s",
                       (int)r->line_len, r->line);
        return;
    }
    if (r->cond != IMAP_COND_OK && r->cond != IMAP_COND_NO &&
        r->cond != IMAP_COND_BAD) {
        imap_conn_fail(c, ERR_PROTOCOL, "invalid tagged response: %.*s",
                       (int)r->line_len, r->line);
        return;
    }
    list_remove(&c->inflight, cmd);
    if (cmd->barrier)
        c->inflight_barriers--;
    if (c->waiting == cmd)
        c->waiting = NULL;
    if (c->streaming == cmd)
        c->streaming = NULL;
    imap_state_apply_code(c, r);
    reply.status = r->cond == IMAP_COND_OK   ? IMAP_OK
                   : r->cond == IMAP_COND_NO ? IMAP_NO
                                             : IMAP_BAD;
    reply.code = r->code;
    reply.code_args = r->code_args;
    reply.text = r->text;
    reply.err = 0;

    if (cmd->idle) {
        c->idle_cmd = NULL;
        c->idling = false;
        c->done_sent = false;
        if (reply.status != IMAP_OK) {
            cmd_free(cmd);
            imap_conn_fail(c, ERR_CMD_NO, "server refused IDLE: %s",
                           reply.text);
            return;
        }
    } else if (cmd->done != NULL) {
        cmd->done(c, &reply, cmd->arg);
    }
    cmd_free(cmd);
    if (!c->closing)
        imap_conn_pump(c);
}

static void
handle_continue(struct imap_conn *c, const struct imap_response *r)
{
    struct imap_cmd *cmd = c->waiting;

    if (cmd == NULL) {
        imap_conn_fail(c, ERR_PROTOCOL, "unexpected continuation: %.*s",
                       (int)r->line_len, r->line);
        return;
    }
    if (cmd->idle) {
        c->waiting = NULL;
        c->idling = true;
        c->idle_since = uv_now(c->loop);
        imap_conn_pump(c);        /* DONE right away if something is queued */
        return;
    }
    if (cmd->sasl != NULL) {
        imap_auth_continue(c, cmd);
        return;
    }
    send_part(c, cmd);
    if (c->waiting == NULL)
        imap_conn_pump(c);
}

void
imap_conn_handle_response(struct imap_conn *c, const struct imap_response *r)
{
    imap_trace_line(c, false, r->line, r->line_len, false);
    switch (r->type) {
    case IMAP_RESP_TAGGED:
        handle_tagged(c, r);
        break;
    case IMAP_RESP_UNTAGGED:
        handle_untagged(c, r);
        break;
    case IMAP_RESP_CONTINUE:
        handle_continue(c, r);
        break;
    }
}

/* --- literal streaming, delegated to the command that wants it ---------- */

static bool
stream_start(void *arg, const struct imap_response *partial,
             const struct imap_arg *prev, uint64_t size, unsigned id)
{
    struct imap_conn *c = arg;

    if (c->closing)
        return false;
    for (struct imap_cmd *cmd = c->inflight.head; cmd; cmd = cmd->next) {
        if (cmd->stream != NULL) {
            c->streaming = cmd;
            return cmd->stream->start(cmd->arg, partial, prev, size, id);
        }
    }
    return false;
}

static void
stream_data(void *arg, unsigned id, const void *p, size_t n)
{
    struct imap_conn *c = arg;

    if (c->streaming != NULL && !c->closing)
        c->streaming->stream->data(c->streaming->arg, id, p, n);
}

static void
stream_end(void *arg, unsigned id)
{
    struct imap_conn *c = arg;

    if (c->streaming != NULL && !c->closing)
        c->streaming->stream->end(c->streaming->arg, id);
}

static const struct imap_parser_stream_ops stream_ops = {
    .start = stream_start,
    .data = stream_data,
    .end = stream_end,
};

struct imap_parser *
imap_conn_new_parser(struct imap_conn *c)
{
    struct imap_parser_limits limits = {
        .max_line = 1024 * 1024,
        .max_literal = c->s.max_literal,
        .max_stream = (uint64_t)4 << 30,
        .max_depth = 32,
    };

    return imap_parser_new(&limits, &stream_ops, c);
}

/* --- public -------------------------------------------------------------- */

struct imap_conn *
imap_conn_new_with_transport(struct transport *t, uv_loop_t *loop,
                             const struct imap_conn_settings *s,
                             const struct imap_conn_events *ev, void *arg)
{
    struct imap_conn *c = xcalloc(1, sizeof(*c));
    int ret;

    c->refs = 1;
    c->loop = loop;
    c->s = *s;
    c->account = s->account ? xstrdup(s->account) : NULL;
    c->mailbox = s->mailbox ? xstrdup(s->mailbox) : NULL;
    c->log.account = c->account;
    c->log.mailbox = c->mailbox;
    c->host = s->host ? xstrdup(s->host) : NULL;
    c->tunnel = s->tunnel ? xstrdup(s->tunnel) : NULL;
    c->s.account = c->account;
    c->s.mailbox = c->mailbox;
    c->s.host = c->host;
    c->s.tunnel = c->tunnel;
    if (c->s.pipeline_max == 0)
        c->s.pipeline_max = DEFAULT_PIPELINE;
    if (c->s.max_literal == 0)
        c->s.max_literal = DEFAULT_MAX_LITERAL;
    if (c->s.command_timeout_ms == 0)
        c->s.command_timeout_ms = IMAP_CONN_DEFAULT_COMMAND_TIMEOUT_S * 1000;
    if (c->s.idle_refresh_ms == 0)
        c->s.idle_refresh_ms = IMAP_CONN_DEFAULT_IDLE_REFRESH_S * 1000;
    c->ev = ev;
    c->ev_arg = arg;
    list_init(&c->pending);
    list_init(&c->inflight);
    c->state = IMAP_CONN_CONNECTING;
    c->parser = imap_conn_new_parser(c);
    uv_timer_init(loop, &c->timer);
    c->timer.data = c;
    c->t = t;
    transport_set_callbacks(t, &imap_state_transport_events, c);
    ret = transport_connect(t);
    if (ret < 0)
        imap_conn_fail_later(c, ret, errors_str(ret));
    return c;
}

struct imap_conn *
imap_conn_new(struct transport_pool *pool, const struct imap_conn_settings *s,
              const struct imap_conn_events *ev, void *arg)
{
    struct transport_settings ts = {
        .host = s->host,
        .port = s->port,
        .tunnel = s->tunnel,
        .tls = s->tls == IMAP_TLS_IMPLICIT ? s->tls_ctx : NULL,
        .connect_timeout_ms = s->connect_timeout_ms,
        .keepalive_s = s->keepalive_s,
    };

    return imap_conn_new_with_transport(transport_new(pool, &ts),
                                        transport_pool_loop(pool), s, ev,
                                        arg);
}

void
imap_conn_abort(struct imap_conn *c, int err, const char *msg)
{
    if (c == NULL || c->closing)
        return;
    imap_conn_fail_later(c, err, msg);
}

struct imap_build *
imap_conn_build(const struct imap_conn *c)
{
    unsigned flags = 0;

    if (imap_conn_has_cap(c, "LITERAL+"))
        flags |= IMAP_BUILD_LITERAL_PLUS;
    else if (imap_conn_has_cap(c, "LITERAL-"))
        flags |= IMAP_BUILD_LITERAL_MINUS;
    if (c->utf8)
        flags |= IMAP_BUILD_UTF8;
    return imap_build_new(flags);
}

int
imap_conn_submit(struct imap_conn *c, struct imap_build *b,
                 const struct imap_cmd_opts *o)
{
    if (c->closing || c->logout_requested || c->timer_mode == TM_FAIL) {
        imap_build_free(b);
        return ERR_CANCELLED;
    }
    if (imap_build_error(b) != NULL || imap_build_len(b) == 0) {
        imap_build_free(b);
        return -EINVAL;
    }
    imap_cmd_list_push(&c->pending, imap_cmd_new(b, o));
    imap_conn_pump(c);
    return 0;
}

void
imap_conn_idle(struct imap_conn *c, bool enable)
{
    c->idle_wanted = enable;
    if (!enable && c->idle_cmd != NULL && c->idling && !c->done_sent)
        send_done(c);
    imap_conn_pump(c);
}

bool
imap_conn_is_idling(const struct imap_conn *c)
{
    return c->idle_cmd != NULL && c->idling && !c->done_sent;
}

bool
imap_conn_idle_since(const struct imap_conn *c, uint64_t *since_ms_r)
{
    if (!imap_conn_is_idling(c))
        return false;
    *since_ms_r = c->idle_since;
    return true;
}

static void
logout_done(struct imap_conn *c, const struct imap_reply *r, void *arg)
{
    (void)arg;
    if (r->status == IMAP_CANCELLED || r->status == IMAP_DISCONNECTED)
        return;
    imap_conn_fail(c, 0, "logged out");
}

void
imap_conn_logout(struct imap_conn *c)
{
    struct imap_build *b;

    if (c->closing || c->logout_requested)
        return;
    c->idle_wanted = false;
    b = imap_build_new(0);
    imap_build_atom(b, "LOGOUT");
    imap_conn_submit_internal(c, b, logout_done, NULL, true);
    c->logout_requested = true;
}

size_t
imap_conn_pending(const struct imap_conn *c)
{
    return c->pending.n + c->inflight.n - (c->idle_cmd != NULL);
}

const char *
imap_conn_peer(const struct imap_conn *c)
{
    return c->t ? transport_peer(c->t) : "(closed)";
}

const char *
imap_conn_tls_describe(const struct imap_conn *c)
{
    return c->t ? transport_tls_describe(c->t) : NULL;
}
