#include "imap_conn.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "errors.h"
#include "log.h"
#include "util.h"

#define RING_LINES 20
#define RING_LINE_MAX 200
#define DEFAULT_PIPELINE 32
#define DEFAULT_MAX_LITERAL (1024 * 1024)

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

enum sasl_mech { SASL_PLAIN, SASL_XOAUTH2, SASL_OAUTHBEARER };

struct sasl {
    enum sasl_mech mech;
    char *ir;               /* base64 initial response (secret) */
    bool ir_sent;
};

enum timer_mode { TM_NONE, TM_RESPONSE, TM_IDLE, TM_FAIL };

struct trace_ring {
    char *lines[RING_LINES];
    unsigned head;
};

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

static const char *const state_names[] = {
    [IMAP_CONN_CONNECTING] = "connecting",
    [IMAP_CONN_GREETING] = "greeting",
    [IMAP_CONN_STARTTLS] = "starttls",
    [IMAP_CONN_NOT_AUTH] = "not-authenticated",
    [IMAP_CONN_AUTHENTICATING] = "authenticating",
    [IMAP_CONN_AUTH] = "authenticated",
    [IMAP_CONN_SELECTED] = "selected",
    [IMAP_CONN_LOGOUT] = "logout",
    [IMAP_CONN_CLOSED] = "closed",
};

const char *
imap_conn_state_name(enum imap_conn_state s)
{
    return (unsigned)s < ARRAY_SIZE(state_names) ? state_names[s] : "?";
}

const char *
imap_status_name(enum imap_status s)
{
    static const char *const names[] = {"OK", "NO", "BAD", "CANCELLED",
                                        "DISCONNECTED"};

    return (unsigned)s < ARRAY_SIZE(names) ? names[s] : "?";
}

static void pump(struct imap_conn *c);
static void arm_timer(struct imap_conn *c);
static void conn_fail(struct imap_conn *c, int err, const char *fmt, ...)
    PRINTF_LIKE(3, 4);

/* --- small helpers ----------------------------------------------------- */

static void
set_state(struct imap_conn *c, enum imap_conn_state st)
{
    if (c->state == st)
        return;
    log_ctx_msg(&c->log, LL_DEBUG,
                "session %s -> %s", imap_conn_state_name(c->state),
                imap_conn_state_name(st));
    c->state = st;
}

static void
list_init(struct cmd_list *l)
{
    l->head = NULL;
    l->tailp = &l->head;
    l->n = 0;
}

static void
list_push(struct cmd_list *l, struct imap_cmd *cmd)
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
sasl_free(struct sasl *sa)
{
    if (sa == NULL)
        return;
    util_free_secret(sa->ir);
    free(sa);
}

static void
cmd_free(struct imap_cmd *cmd)
{
    imap_build_free(cmd->b);
    sasl_free(cmd->sasl);
    free(cmd);
}

static void
conn_ref(struct imap_conn *c)
{
    c->refs++;
}

static void
conn_destroy(struct imap_conn *c)
{
    struct imap_cmd *cmd;

    while ((cmd = list_pop(&c->pending)) != NULL)
        cmd_free(cmd);
    while ((cmd = list_pop(&c->inflight)) != NULL)
        cmd_free(cmd);
    imap_parser_free(c->parser);
    if (c->ring != NULL) {
        for (unsigned i = 0; i < RING_LINES; i++)
            free(c->ring->lines[i]);
        free(c->ring);
    }
    free(c->caps);
    free(c->account);
    free(c->mailbox);
    free(c->host);
    free(c->tunnel);
    free(c->fail_msg);
    free(c);
}

static void
conn_unref(struct imap_conn *c)
{
    if (--c->refs == 0 && c->transport_closed && c->timer_closed)
        conn_destroy(c);
}

static void
on_timer_closed(uv_handle_t *h)
{
    struct imap_conn *c = h->data;

    c->timer_closed = true;
    if (c->refs == 0 && c->transport_closed)
        conn_destroy(c);
}

/* --- protocol trace ------------------------------------------------------ */

static void
trace(struct imap_conn *c, bool client, const char *line, size_t len,
      bool secret)
{
    struct buf b;
    char **slot;

    buf_init(&b, BUF_NOCAP);
    buf_append_str(&b, client ? "C: " : "S: ");
    if (secret) {
        buf_append_str(&b, "<redacted>");
    } else {
        while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r'))
            len--;
        log_redact_imap(line, len, RING_LINE_MAX, &b);
    }
    if (log_enabled(LL_TRACE))
        log_ctx_msg(&c->log, LL_TRACE, "%s", buf_cstr(&b));
    if (c->ring == NULL)
        c->ring = xcalloc(1, sizeof(*c->ring));
    slot = &c->ring->lines[c->ring->head];
    free(*slot);
    *slot = buf_steal(&b);
    c->ring->head = (c->ring->head + 1) % RING_LINES;
}

static void
dump_ring(struct imap_conn *c)
{
    if (c->ring == NULL || log_enabled(LL_TRACE))
        return; /* at trace level every line was logged already */
    log_ctx_msg(&c->log, LL_NOTICE, "last protocol lines:");
    for (unsigned i = 0; i < RING_LINES; i++) {
        const char *l = c->ring->lines[(c->ring->head + i) % RING_LINES];

        if (l != NULL)
            log_ctx_msg(&c->log, LL_NOTICE, "  %s", l);
    }
}

/* --- sending ------------------------------------------------------------- */

static void
write_bytes(struct imap_conn *c, const char *p, size_t n, bool secret)
{
    transport_write(c->t, p, n, secret);
}

static void
mark_activity(struct imap_conn *c)
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

        buf_init(&line, BUF_NOCAP);
        buf_printf(&line, "%s ", cmd->tag);
        buf_append(&line, p, len);
        trace(c, true, line.data, line.len, false);
        if (secret)
            buf_free_secret(&line);
        else
            buf_free(&line);
        write_bytes(c, cmd->tag, strlen(cmd->tag), false);
        write_bytes(c, " ", 1, false);
    } else {
        trace(c, true, p, len, secret);
    }
    write_bytes(c, p, len, secret);
    cmd->parts_sent++;
    if (cmd->parts_sent == nparts) {
        write_bytes(c, "\r\n", 2, false);
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
        memset(&c->mbox, 0, sizeof(c->mbox));
    if (strcmp(cmd->name, "LOGOUT") == 0)
        set_state(c, IMAP_CONN_LOGOUT);
    if (c->inflight.n == 1)
        mark_activity(c);
    if (cmd->sasl != NULL || cmd->idle)
        c->waiting = cmd;
    send_part(c, cmd);
}

static void
send_done(struct imap_conn *c)
{
    trace(c, true, "DONE", 4, false);
    write_bytes(c, "DONE\r\n", 6, false);
    c->done_sent = true;
    mark_activity(c);
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
    list_push(&c->inflight, cmd);
    send_cmd(c, cmd);
}

static void
pump(struct imap_conn *c)
{
    struct imap_cmd *cmd;

    if (c->closing)
        return;
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
        list_push(&c->inflight, cmd);
        if (cmd->barrier)
            c->inflight_barriers++;
        send_cmd(c, cmd);
    }
    if (c->pending.head == NULL && c->inflight.n == 0 && c->idle_wanted &&
        c->idle_cmd == NULL &&
        (c->state == IMAP_CONN_AUTH || c->state == IMAP_CONN_SELECTED))
        start_idle(c);
    arm_timer(c);
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
        conn_fail(c, c->fail_err, "%s", c->fail_msg ? c->fail_msg : "");
        return;
    case TM_IDLE:
        /* re-issue IDLE: DONE now, a new IDLE once it is answered */
        if (c->idle_cmd != NULL && c->idling && !c->done_sent)
            send_done(c);
        arm_timer(c);
        return;
    case TM_RESPONSE: {
        uint64_t now = uv_now(c->loop);
        const char *what = c->inflight.head ? c->inflight.head->name
                                            : "the greeting";

        if (now - c->last_activity >= c->s.command_timeout_ms) {
            conn_fail(c, ERR_TIMEOUT,
                      "no response from the server within %llus (waiting "
                      "for %s)",
                      (unsigned long long)(c->s.command_timeout_ms / 1000),
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

static void
arm_timer(struct imap_conn *c)
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
                mark_activity(c);
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
static void
fail_later(struct imap_conn *c, int err, const char *msg)
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
        list_push(&all, cmd);
    while ((cmd = list_pop(&c->pending)) != NULL)
        list_push(&all, cmd);
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
    set_state(c, IMAP_CONN_CLOSED);
    uv_timer_stop(&c->timer);
    c->timer_mode = TM_NONE;
    uv_close((uv_handle_t *)&c->timer, on_timer_closed);
    if (c->t != NULL)
        transport_close(c->t);
}

static void
conn_fail(struct imap_conn *c, int err, const char *fmt, ...)
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
        dump_ring(c);
    conn_ref(c);
    begin_close(c);
    cancel_all(c, IMAP_DISCONNECTED, err ? err : ERR_CLOSED, msg);
    if (!c->freed && c->ev->closed != NULL)
        c->ev->closed(c, err, msg, c->ev_arg);
    free(msg);
    conn_unref(c);
}

void
imap_conn_free(struct imap_conn *c)
{
    if (c == NULL || c->freed)
        return;
    c->freed = true;
    if (!c->closing) {
        conn_ref(c);
        begin_close(c);
        cancel_all(c, IMAP_CANCELLED, ERR_CANCELLED, "connection closed");
        conn_unref(c);
    }
    conn_unref(c);
}

/* --- capabilities and response codes ------------------------------------ */

static void
set_caps(struct imap_conn *c, const struct imap_arg *args)
{
    struct buf b;

    buf_init(&b, BUF_NOCAP);
    for (const struct imap_arg *a = args; a != NULL; a = a->next) {
        if (a->type != IMAP_ARG_ATOM)
            continue;
        if (b.len > 0)
            buf_append_char(&b, ' ');
        for (size_t i = 0; i < a->len; i++)
            buf_append_char(&b, util_toupper(a->str[i]));
    }
    free(c->caps);
    c->caps = buf_steal(&b);
    if (c->state == IMAP_CONN_AUTHENTICATING)
        c->caps_at_auth = true;
}

bool
imap_conn_has_cap(const struct imap_conn *c, const char *cap)
{
    size_t n = strlen(cap);
    const char *p = c->caps;

    if (p == NULL || n == 0)
        return false;
    while (*p) {
        const char *end = strchr(p, ' ');
        size_t len = end ? (size_t)(end - p) : strlen(p);

        if (len == n && util_strncaseeq(p, cap, n))
            return true;
        if (end == NULL)
            break;
        p = end + 1;
    }
    return false;
}

const char *
imap_conn_caps(const struct imap_conn *c)
{
    return c->caps ? c->caps : "";
}

static void
apply_code(struct imap_conn *c, const struct imap_response *r)
{
    uint32_t v;

    if (r->code == NULL)
        return;
    if (strcmp(r->code, "CAPABILITY") == 0) {
        set_caps(c, r->code_args);
    } else if (strcmp(r->code, "UIDVALIDITY") == 0) {
        if (imap_arg_get_u32(r->code_args, &v))
            c->mbox.uidvalidity = v;
    } else if (strcmp(r->code, "UIDNEXT") == 0) {
        if (imap_arg_get_u32(r->code_args, &v))
            c->mbox.uidnext = v;
    } else if (strcmp(r->code, "READ-ONLY") == 0) {
        c->mbox.readonly = true;
    } else if (strcmp(r->code, "READ-WRITE") == 0) {
        c->mbox.readonly = false;
    } else if (strcmp(r->code, "ALERT") == 0) {
        log_ctx_msg(&c->log, LL_WARNING, "server alert: %s", r->text);
    }
}

/* --- connection set-up ---------------------------------------------------- */

static void
become_ready(struct imap_conn *c, enum imap_conn_state st)
{
    set_state(c, st);
    if (!c->ready_sent) {
        c->ready_sent = true;
        conn_ref(c);
        if (c->ev->ready != NULL)
            c->ev->ready(c, c->ev_arg);
        if (!c->closing)
            pump(c);
        conn_unref(c);
    }
}

static struct imap_cmd *
new_cmd(struct imap_build *b, const struct imap_cmd_opts *o)
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

static void
submit_internal(struct imap_conn *c, struct imap_build *b, imap_done_cb *done,
                void *arg, bool early)
{
    struct imap_cmd_opts o = {.done = done, .arg = arg};
    struct imap_cmd *cmd = new_cmd(b, &o);

    cmd->early = early;
    list_push(&c->pending, cmd);
    pump(c);
}

static void caps_then_ready_done(struct imap_conn *c,
                                 const struct imap_reply *r, void *arg);

static void
request_caps_then_ready(struct imap_conn *c)
{
    struct imap_build *b = imap_build_new(0);

    imap_build_atom(b, "CAPABILITY");
    submit_internal(c, b, caps_then_ready_done, NULL, true);
}

static void
starttls_done(struct imap_conn *c, const struct imap_reply *r, void *arg)
{
    int ret;

    (void)arg;
    if (r->status == IMAP_CANCELLED || r->status == IMAP_DISCONNECTED)
        return;
    if (r->status != IMAP_OK) {
        conn_fail(c, ERR_TLS, "server refused STARTTLS: %s %s",
                  imap_status_name(r->status), r->text);
        return;
    }
    /* Nothing the server sent in plaintext may survive the switch. */
    set_state(c, IMAP_CONN_STARTTLS);
    c->tls_switched = true;
    ret = transport_start_tls(c->t, c->s.tls_ctx, c->host);
    if (ret < 0)
        conn_fail(c, ret, "cannot start TLS: %s", errors_str(ret));
}

static void
after_caps(struct imap_conn *c)
{
    if (!c->preauth && c->s.tls == IMAP_TLS_STARTTLS &&
        transport_tls_describe(c->t) == NULL) {
        struct imap_build *b;

        if (!imap_conn_has_cap(c, "STARTTLS")) {
            conn_fail(c, ERR_UNSUPPORTED,
                      "server does not offer STARTTLS (tls: starttls "
                      "requires it; refusing to continue without TLS)");
            return;
        }
        b = imap_build_new(0);
        imap_build_atom(b, "STARTTLS");
        submit_internal(c, b, starttls_done, NULL, true);
        return;
    }
    become_ready(c, c->preauth ? IMAP_CONN_AUTH : IMAP_CONN_NOT_AUTH);
}

static void
caps_then_ready_done(struct imap_conn *c, const struct imap_reply *r,
                     void *arg)
{
    (void)arg;
    if (r->status == IMAP_CANCELLED || r->status == IMAP_DISCONNECTED)
        return;
    if (r->status != IMAP_OK) {
        conn_fail(c, ERR_PROTOCOL, "CAPABILITY failed: %s %s",
                  imap_status_name(r->status), r->text);
        return;
    }
    after_caps(c);
}

static void
handle_greeting(struct imap_conn *c, const struct imap_response *r)
{
    if (r->type != IMAP_RESP_UNTAGGED ||
        (r->cond != IMAP_COND_OK && r->cond != IMAP_COND_PREAUTH &&
         r->cond != IMAP_COND_BYE)) {
        conn_fail(c, ERR_PROTOCOL, "expected a greeting, got: %.*s",
                  (int)r->line_len, r->line);
        return;
    }
    if (r->cond == IMAP_COND_BYE) {
        conn_fail(c, ERR_BYE, "server refused the connection: %s", r->text);
        return;
    }
    c->greeted = true;
    apply_code(c, r);
    if (r->cond == IMAP_COND_PREAUTH) {
        if (c->s.tls == IMAP_TLS_STARTTLS) {
            /* RFC 3501: no STARTTLS after PREAUTH; continuing would
             * silently drop TLS. */
            conn_fail(c, ERR_UNSUPPORTED,
                      "server greeted with PREAUTH, so STARTTLS is "
                      "impossible; refusing to continue without TLS");
            return;
        }
        c->preauth = true;
    }
    if (c->caps == NULL || c->caps[0] == '\0')
        request_caps_then_ready(c);
    else
        after_caps(c);
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
        handle_greeting(c, r);
        return;
    }
    if (r->cond == IMAP_COND_BYE) {
        if (c->logout_requested)
            return;
        conn_fail(c, ERR_BYE, "server closed the session: BYE %s", r->text);
        return;
    }
    if (r->cond == IMAP_COND_PREAUTH) {
        conn_fail(c, ERR_PROTOCOL, "unexpected PREAUTH");
        return;
    }
    apply_code(c, r);
    if (r->name != NULL && strcmp(r->name, "CAPABILITY") == 0)
        set_caps(c, r->args);
    if (r->has_number && r->name != NULL) {
        if (strcmp(r->name, "EXISTS") == 0) {
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
        conn_fail(c, ERR_PROTOCOL, "response for unknown tag: %.*s",
                  (int)r->line_len, r->line);
        return;
    }
    if (r->cond != IMAP_COND_OK && r->cond != IMAP_COND_NO &&
        r->cond != IMAP_COND_BAD) {
        conn_fail(c, ERR_PROTOCOL, "invalid tagged response: %.*s",
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
    apply_code(c, r);
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
            conn_fail(c, ERR_CMD_NO, "server refused IDLE: %s",
                      reply.text);
            return;
        }
    } else if (cmd->done != NULL) {
        cmd->done(c, &reply, cmd->arg);
    }
    cmd_free(cmd);
    if (!c->closing)
        pump(c);
}

static void
sasl_continue(struct imap_conn *c, struct imap_cmd *cmd)
{
    struct sasl *sa = cmd->sasl;

    if (!sa->ir_sent) {
        sa->ir_sent = true;
        trace(c, true, "", 0, true);
        write_bytes(c, sa->ir, strlen(sa->ir), true);
        write_bytes(c, "\r\n", 2, false);
        return;
    }
    /* A challenge after our credentials is an error report (RFC 7628,
     * XOAUTH2): acknowledge it so the server sends the tagged NO. PLAIN has
     * no second step: cancel. */
    switch (sa->mech) {
    case SASL_XOAUTH2:
        trace(c, true, "", 0, false);
        write_bytes(c, "\r\n", 2, false);
        break;
    case SASL_OAUTHBEARER:
        trace(c, true, "AQ==", 4, false);
        write_bytes(c, "AQ==\r\n", 6, false);
        break;
    case SASL_PLAIN:
        trace(c, true, "*", 1, false);
        write_bytes(c, "*\r\n", 3, false);
        break;
    }
}

static void
handle_continue(struct imap_conn *c, const struct imap_response *r)
{
    struct imap_cmd *cmd = c->waiting;

    if (cmd == NULL) {
        conn_fail(c, ERR_PROTOCOL, "unexpected continuation: %.*s",
                  (int)r->line_len, r->line);
        return;
    }
    if (cmd->idle) {
        c->waiting = NULL;
        c->idling = true;
        pump(c);        /* DONE right away if something is queued */
        return;
    }
    if (cmd->sasl != NULL) {
        sasl_continue(c, cmd);
        return;
    }
    send_part(c, cmd);
    if (c->waiting == NULL)
        pump(c);
}

static void
handle_response(struct imap_conn *c, const struct imap_response *r)
{
    trace(c, false, r->line, r->line_len, false);
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

static struct imap_parser *
new_parser(struct imap_conn *c)
{
    struct imap_parser_limits limits = {
        .max_line = 1024 * 1024,
        .max_literal = c->s.max_literal,
        .max_stream = (uint64_t)4 << 30,
        .max_depth = 32,
    };

    return imap_parser_new(&limits, &stream_ops, c);
}

/* --- transport events ---------------------------------------------------- */

static void
on_connected(struct transport *t, void *arg)
{
    struct imap_conn *c = arg;
    const char *tls = transport_tls_describe(t);

    log_ctx_msg(&c->log, LL_DEBUG, "connected to %s%s%s", transport_peer(t),
                tls ? " with " : "", tls ? tls : "");
    set_state(c, IMAP_CONN_GREETING);
    mark_activity(c);
    arm_timer(c);
}

static void
on_read(struct transport *t, const char *data, size_t len, void *arg)
{
    struct imap_conn *c = arg;

    (void)t;
    if (c->closing)
        return;
    mark_activity(c);
    conn_ref(c);
    while (len > 0 && !c->closing) {
        const struct imap_response *r = NULL;
        size_t used = 0;
        enum imap_parse_result pr;

        pr = imap_parser_feed(c->parser, data, len, &used, &r);
        data += used;
        len -= used;
        if (pr == IMAP_PARSE_MORE)
            break;
        if (pr == IMAP_PARSE_ERROR) {
            conn_fail(c, imap_parser_error_is_limit(c->parser)
                             ? ERR_LIMIT : ERR_PROTOCOL,
                      "bad response from server: %s",
                      imap_parser_error(c->parser));
            break;
        }
        handle_response(c, r);
        if (c->closing)
            break;
        if (c->tls_switched) {
            /* bytes after STARTTLS's OK came in plaintext: an injection
             * attempt (CVE-2011-0411 style) */
            c->tls_switched = false;
            if (len > 0)
                conn_fail(c, ERR_PROTOCOL,
                          "server sent %zu bytes after accepting STARTTLS",
                          len);
            break;
        }
        imap_parser_release(c->parser);
    }
    if (!c->closing)
        arm_timer(c);
    conn_unref(c);
}

static void
on_tls_ready(struct transport *t, void *arg)
{
    struct imap_conn *c = arg;

    log_ctx_msg(&c->log, LL_DEBUG,
                "TLS started: %s", transport_tls_describe(t));
    /* capabilities from before TLS cannot be trusted */
    free(c->caps);
    c->caps = NULL;
    imap_parser_free(c->parser);
    c->parser = new_parser(c);
    set_state(c, IMAP_CONN_GREETING);
    request_caps_then_ready(c);
}

static void
on_error(struct transport *t, int err, const char *msg, void *arg)
{
    struct imap_conn *c = arg;

    (void)t;
    if (c->logout_requested && err == ERR_CLOSED) {
        conn_fail(c, 0, "logged out");
        return;
    }
    conn_fail(c, err, "%s", msg);
}

static void
on_closed(struct transport *t, void *arg)
{
    struct imap_conn *c = arg;

    (void)t;
    c->t = NULL;
    c->transport_closed = true;
    if (c->refs == 0 && c->timer_closed)
        conn_destroy(c);
}

static const struct transport_cbs transport_events = {
    .connected = on_connected,
    .read = on_read,
    .tls_ready = on_tls_ready,
    .error = on_error,
    .closed = on_closed,
};

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
    c->parser = new_parser(c);
    uv_timer_init(loop, &c->timer);
    c->timer.data = c;
    c->t = t;
    transport_set_callbacks(t, &transport_events, c);
    ret = transport_connect(t);
    if (ret < 0)
        fail_later(c, ret, errors_str(ret));
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
    if (c->closing || c->logout_requested) {
        imap_build_free(b);
        return ERR_CANCELLED;
    }
    if (imap_build_error(b) != NULL || imap_build_len(b) == 0) {
        imap_build_free(b);
        return -EINVAL;
    }
    list_push(&c->pending, new_cmd(b, o));
    pump(c);
    return 0;
}

struct select_ctx {
    imap_done_cb *done;
    void *arg;
    bool readonly;
};

static void
select_done(struct imap_conn *c, const struct imap_reply *r, void *arg)
{
    struct select_ctx *sc = arg;

    if (r->status == IMAP_OK) {
        c->mbox.selected = true;
        if (sc->readonly)
            c->mbox.readonly = true;
        set_state(c, IMAP_CONN_SELECTED);
    } else if (r->status == IMAP_NO || r->status == IMAP_BAD) {
        /* a failed SELECT leaves nothing selected (RFC 3501 6.3.1) */
        memset(&c->mbox, 0, sizeof(c->mbox));
        set_state(c, IMAP_CONN_AUTH);
    }
    if (sc->done != NULL)
        sc->done(c, r, sc->arg);
    free(sc);
}

int
imap_conn_select(struct imap_conn *c, const char *mailbox, bool readonly,
                 imap_done_cb *done, void *arg)
{
    struct imap_build *b = imap_conn_build(c);
    struct select_ctx *sc = xmalloc(sizeof(*sc));
    struct imap_cmd_opts o = {.done = select_done, .arg = sc};
    int ret;

    sc->done = done;
    sc->arg = arg;
    sc->readonly = readonly;
    imap_build_atom(b, readonly ? "EXAMINE" : "SELECT");
    imap_build_mailbox(b, mailbox);
    ret = imap_conn_submit(c, b, &o);
    if (ret < 0)
        free(sc);
    return ret;
}

/* login: AUTHENTICATE / LOGIN, then CAPABILITY if the OK did not carry
 * them, then ENABLE UTF8=ACCEPT if offered, then the caller's callback. */
struct login_ctx {
    imap_done_cb *done;
    void *arg;
    char *ok_text;
};

static void
login_finish(struct imap_conn *c, struct login_ctx *lc,
             const struct imap_reply *r)
{
    if (r->status == IMAP_OK)
        set_state(c, IMAP_CONN_AUTH);
    if (lc->done != NULL)
        lc->done(c, r, lc->arg);
    free(lc->ok_text);
    free(lc);
}

static void
login_enable_done(struct imap_conn *c, const struct imap_reply *r, void *arg)
{
    struct login_ctx *lc = arg;
    struct imap_reply ok = {.status = IMAP_OK, .text = lc->ok_text};

    if (r->status == IMAP_OK)
        c->utf8 = true;
    if (r->status == IMAP_CANCELLED || r->status == IMAP_DISCONNECTED) {
        login_finish(c, lc, r);
        return;
    }
    /* a refused ENABLE is not fatal: names stay in modified UTF-7 */
    login_finish(c, lc, &ok);
}

static void
login_caps_done(struct imap_conn *c, const struct imap_reply *r, void *arg)
{
    struct login_ctx *lc = arg;
    struct imap_reply ok = {.status = IMAP_OK, .text = lc->ok_text};

    if (r->status != IMAP_OK) {
        login_finish(c, lc, r);
        return;
    }
    if (imap_conn_has_cap(c, "UTF8=ACCEPT") && imap_conn_has_cap(c, "ENABLE")) {
        struct imap_build *b = imap_build_new(0);

        imap_build_atom(b, "ENABLE");
        imap_build_atom(b, "UTF8=ACCEPT");
        submit_internal(c, b, login_enable_done, lc, true);
        return;
    }
    login_finish(c, lc, &ok);
}

static void
login_auth_done(struct imap_conn *c, const struct imap_reply *r, void *arg)
{
    struct login_ctx *lc = arg;
    struct imap_reply fake = {.status = IMAP_OK, .text = "ok"};

    if (r->status != IMAP_OK) {
        if (r->status == IMAP_NO || r->status == IMAP_BAD)
            set_state(c, IMAP_CONN_NOT_AUTH);
        login_finish(c, lc, r);
        return;
    }
    lc->ok_text = xstrdup(r->text ? r->text : "");
    set_state(c, IMAP_CONN_AUTH);
    if (c->caps_at_auth) {
        login_caps_done(c, &fake, lc);
    } else {
        struct imap_build *b = imap_build_new(0);

        imap_build_atom(b, "CAPABILITY");
        submit_internal(c, b, login_caps_done, lc, true);
    }
}

/* SASL initial responses (RFC 4616, Google XOAUTH2, RFC 7628). */
static char *
sasl_ir(enum sasl_mech mech, const char *user, const char *secret,
        size_t secret_len, const char *host, uint16_t port)
{
    struct buf raw, b64;

    buf_init(&raw, BUF_NOCAP);
    buf_init(&b64, BUF_NOCAP);
    switch (mech) {
    case SASL_PLAIN:
        buf_append_char(&raw, '\0');
        buf_append_str(&raw, user);
        buf_append_char(&raw, '\0');
        buf_append(&raw, secret, secret_len);
        break;
    case SASL_XOAUTH2:
        buf_printf(&raw, "user=%s\001auth=Bearer ", user);
        buf_append(&raw, secret, secret_len);
        buf_append_str(&raw, "\001\001");
        break;
    case SASL_OAUTHBEARER:
        buf_append_str(&raw, "n,a=");
        for (const char *p = user; *p; p++) {
            if (*p == ',')
                buf_append_str(&raw, "=2C");
            else if (*p == '=')
                buf_append_str(&raw, "=3D");
            else
                buf_append_char(&raw, *p);
        }
        buf_printf(&raw, ",\001host=%s\001port=%u\001auth=Bearer ",
                   host ? host : "", port);
        buf_append(&raw, secret, secret_len);
        buf_append_str(&raw, "\001\001");
        break;
    }
    buf_append_base64(&b64, raw.data, raw.len);
    buf_free_secret(&raw);
    return buf_steal(&b64);
}

void
imap_conn_login(struct imap_conn *c, enum imap_auth mech, const char *user,
                const char *secret, size_t secret_len, bool is_token,
                imap_done_cb *done, void *arg)
{
    bool tls_up = c->t != NULL && transport_tls_describe(c->t) != NULL;
    struct login_ctx *lc;
    struct imap_build *b;
    enum sasl_mech sm = SASL_PLAIN;
    bool use_sasl = true;

    if (c->closing)
        return;
    if (!tls_up && !c->s.allow_plaintext_auth) {
        fail_later(c, ERR_UNSUPPORTED,
                   "refusing to send credentials without TLS");
        return;
    }
    switch (mech) {
    case IMAP_AUTH_AUTO:
        if (is_token) {
            if (imap_conn_has_cap(c, "AUTH=OAUTHBEARER")) {
                sm = SASL_OAUTHBEARER;
            } else if (imap_conn_has_cap(c, "AUTH=XOAUTH2")) {
                sm = SASL_XOAUTH2;
            } else {
                fail_later(c, ERR_UNSUPPORTED,
                           "server offers neither AUTH=OAUTHBEARER nor "
                           "AUTH=XOAUTH2 for the access token");
                return;
            }
        } else if (imap_conn_has_cap(c, "AUTH=PLAIN")) {
            sm = SASL_PLAIN;
        } else if (!imap_conn_has_cap(c, "LOGINDISABLED")) {
            use_sasl = false;
        } else {
            fail_later(c, ERR_UNSUPPORTED,
                       "server disables LOGIN (LOGINDISABLED) and offers no "
                       "AUTH=PLAIN");
            return;
        }
        break;
    case IMAP_AUTH_LOGIN:
        if (imap_conn_has_cap(c, "LOGINDISABLED")) {
            fail_later(c, ERR_UNSUPPORTED,
                       "server disables LOGIN (LOGINDISABLED); try auth: "
                       "plain");
            return;
        }
        use_sasl = false;
        break;
    case IMAP_AUTH_PLAIN:
        sm = SASL_PLAIN;
        break;
    case IMAP_AUTH_XOAUTH2:
        sm = SASL_XOAUTH2;
        break;
    case IMAP_AUTH_OAUTHBEARER:
        sm = SASL_OAUTHBEARER;
        break;
    }

    lc = xcalloc(1, sizeof(*lc));
    lc->done = done;
    lc->arg = arg;
    c->caps_at_auth = false;
    b = imap_conn_build(c);
    if (use_sasl) {
        static const char *const names[] = {"PLAIN", "XOAUTH2",
                                            "OAUTHBEARER"};
        struct sasl *sa = xcalloc(1, sizeof(*sa));
        struct imap_cmd *cmd;

        sa->mech = sm;
        sa->ir = sasl_ir(sm, user, secret, secret_len, c->host, c->s.port);
        imap_build_atom(b, "AUTHENTICATE");
        imap_build_atom(b, names[sm]);
        if (imap_conn_has_cap(c, "SASL-IR")) {
            imap_build_mark_secret(b);
            imap_build_atom(b, sa->ir);
            sa->ir_sent = true;
        }
        cmd = new_cmd(b, &(struct imap_cmd_opts){.done = login_auth_done,
                                                 .arg = lc});
        cmd->sasl = sa;
        cmd->early = true;
        list_push(&c->pending, cmd);
    } else {
        imap_build_atom(b, "LOGIN");
        imap_build_astring(b, user, strlen(user));
        imap_build_mark_secret(b);
        imap_build_string(b, secret, secret_len);
        submit_internal(c, b, login_auth_done, lc, true);
        set_state(c, IMAP_CONN_AUTHENTICATING);
        return;
    }
    set_state(c, IMAP_CONN_AUTHENTICATING);
    pump(c);
}

void
imap_conn_idle(struct imap_conn *c, bool enable)
{
    c->idle_wanted = enable;
    if (!enable && c->idle_cmd != NULL && c->idling && !c->done_sent)
        send_done(c);
    pump(c);
}

bool
imap_conn_is_idling(const struct imap_conn *c)
{
    return c->idle_cmd != NULL && c->idling && !c->done_sent;
}

static void
logout_done(struct imap_conn *c, const struct imap_reply *r, void *arg)
{
    (void)arg;
    if (r->status == IMAP_CANCELLED || r->status == IMAP_DISCONNECTED)
        return;
    conn_fail(c, 0, "logged out");
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
    submit_internal(c, b, logout_done, NULL, true);
    c->logout_requested = true;
}

enum imap_conn_state
imap_conn_state(const struct imap_conn *c)
{
    return c->state;
}

const struct imap_mailbox_info *
imap_conn_mailbox(const struct imap_conn *c)
{
    return &c->mbox;
}

bool
imap_conn_utf8(const struct imap_conn *c)
{
    return c->utf8;
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
