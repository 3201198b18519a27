/* SPDX-License-Identifier: MIT */
/* imap_conn's session state: the state names and transitions, the
 * transport's events, the greeting, CAPABILITY and STARTTLS up to `ready`,
 * the capability list, response codes and SELECT. */
#include "imap_conn_private.h"

#include <stdlib.h>
#include <string.h>

#include "errors.h"

/* --- names and transitions ----------------------------------------------- */

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

void
imap_state_set(struct imap_conn *c, enum imap_conn_state st)
{
    if (c->state == st)
        return;
    log_ctx_msg(&c->log, LL_DEBUG,
                "session %s -> %s", imap_conn_state_name(c->state),
                imap_conn_state_name(st));
    c->state = st;
}

/* --- capabilities and response codes ------------------------------------ */

void
imap_state_set_caps(struct imap_conn *c, const struct imap_arg *args)
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

void
imap_state_forget_mailbox(struct imap_conn *c)
{
    uint32_t changes = c->mbox.uidvalidity_changes;

    memset(&c->mbox, 0, sizeof(c->mbox));
    c->mbox.uidvalidity_changes = changes;
}

void
imap_state_apply_code(struct imap_conn *c, const struct imap_response *r)
{
    uint32_t v;

    if (r->code == NULL)
        return;
    if (strcmp(r->code, "CAPABILITY") == 0) {
        imap_state_set_caps(c, r->code_args);
    } else if (strcmp(r->code, "UIDVALIDITY") == 0) {
        if (imap_arg_get_u32(r->code_args, &v) && v != c->mbox.uidvalidity) {
            c->mbox.uidvalidity = v;
            c->mbox.uidvalidity_changes++;
        }
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
    imap_state_set(c, st);
    if (!c->ready_sent) {
        c->ready_sent = true;
        imap_conn_ref(c);
        if (c->ev->ready != NULL)
            c->ev->ready(c, c->ev_arg);
        if (!c->closing)
            imap_conn_pump(c);
        imap_conn_unref(c);
    }
}

static void caps_then_ready_done(struct imap_conn *c,
                                 const struct imap_reply *r, void *arg);

static void
request_caps_then_ready(struct imap_conn *c)
{
    struct imap_build *b = imap_build_new(0);

    imap_build_atom(b, "CAPABILITY");
    imap_conn_submit_internal(c, b, caps_then_ready_done, NULL, true);
}

static void
starttls_done(struct imap_conn *c, const struct imap_reply *r, void *arg)
{
    int ret;

    (void)arg;
    if (r->status == IMAP_CANCELLED || r->status == IMAP_DISCONNECTED)
        return;
    if (r->status != IMAP_OK) {
        imap_conn_fail(c, ERR_TLS, "server refused STARTTLS: %s %s",
                       imap_status_name(r->status), r->text);
        return;
    }
    /* Nothing the server sent in plaintext may survive the switch. */
    imap_state_set(c, IMAP_CONN_STARTTLS);
    c->tls_switched = true;
    ret = transport_start_tls(c->t, c->s.tls_ctx, c->host);
    if (ret < 0)
        imap_conn_fail(c, ret, "cannot start TLS: %s", errors_str(ret));
}

static void
after_caps(struct imap_conn *c)
{
    if (!c->preauth && c->s.tls == IMAP_TLS_STARTTLS &&
        transport_tls_describe(c->t) == NULL) {
        struct imap_build *b;

        if (!imap_conn_has_cap(c, "STARTTLS")) {
            imap_conn_fail(c, ERR_UNSUPPORTED,
                           "server does not offer STARTTLS (tls: starttls "
                           "requires it; refusing to continue without TLS)");
            return;
        }
        b = imap_build_new(0);
        imap_build_atom(b, "STARTTLS");
        imap_conn_submit_internal(c, b, starttls_done, NULL, true);
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
        imap_conn_fail(c, ERR_PROTOCOL, "CAPABILITY failed: %s %s",
                       imap_status_name(r->status), r->text);
        return;
    }
    after_caps(c);
}

void
imap_state_greeting(struct imap_conn *c, const struct imap_response *r)
{
    if (r->type != IMAP_RESP_UNTAGGED ||
        (r->cond != IMAP_COND_OK && r->cond != IMAP_COND_PREAUTH &&
         r->cond != IMAP_COND_BYE)) {
        imap_conn_fail(c, ERR_PROTOCOL, "expected a greeting, got: %.*s",
                       (int)r->line_len, r->line);
        return;
    }
    if (r->cond == IMAP_COND_BYE) {
        imap_conn_fail(c, ERR_BYE, "server refused the connection: %s",
                       r->text);
        return;
    }
    c->greeted = true;
    imap_state_apply_code(c, r);
    if (r->cond == IMAP_COND_PREAUTH) {
        if (c->s.tls == IMAP_TLS_STARTTLS) {
            /* RFC 3501: no STARTTLS after PREAUTH; continuing would
             * silently drop TLS. */
            imap_conn_fail(c, ERR_UNSUPPORTED,
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

/* --- transport events ---------------------------------------------------- */

static void
on_connected(struct transport *t, void *arg)
{
    struct imap_conn *c = arg;
    const char *tls = transport_tls_describe(t);

    log_ctx_msg(&c->log, LL_DEBUG, "connected to %s%s%s", transport_peer(t),
                tls ? " with " : "", tls ? tls : "");
    imap_state_set(c, IMAP_CONN_GREETING);
    imap_conn_mark_activity(c);
    imap_conn_arm_timer(c);
}

static void
on_read(struct transport *t, const char *data, size_t len, void *arg)
{
    struct imap_conn *c = arg;

    (void)t;
    /* closing, or ending (imap_conn_abort): nothing more is taken in */
    if (c->closing || c->timer_mode == TM_FAIL)
        return;
    imap_conn_mark_activity(c);
    imap_conn_ref(c);
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
            imap_conn_fail(c, imap_parser_error_is_limit(c->parser)
                             ? ERR_LIMIT : ERR_PROTOCOL,
                           "bad response from server: %s",
                           imap_parser_error(c->parser));
            break;
        }
        imap_conn_handle_response(c, r);
        if (c->closing || c->timer_mode == TM_FAIL)
            break;
        if (c->tls_switched) {
            /* bytes after STARTTLS's OK came in plaintext: an injection
             * attempt (CVE-2011-0411 style) */
            c->tls_switched = false;
            if (len > 0)
                imap_conn_fail(c, ERR_PROTOCOL,
                               "server sent %zu bytes after accepting "
                               "STARTTLS", len);
            break;
        }
        imap_parser_release(c->parser);
    }
    if (!c->closing)
        imap_conn_arm_timer(c);
    imap_conn_unref(c);
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
    c->parser = imap_conn_new_parser(c);
    imap_state_set(c, IMAP_CONN_GREETING);
    request_caps_then_ready(c);
}

static void
on_error(struct transport *t, int err, const char *msg, void *arg)
{
    struct imap_conn *c = arg;

    (void)t;
    if (c->logout_requested && err == ERR_CLOSED) {
        imap_conn_fail(c, 0, "logged out");
        return;
    }
    imap_conn_fail(c, err, "%s", msg);
}

static void
on_closed(struct transport *t, void *arg)
{
    struct imap_conn *c = arg;

    (void)t;
    c->t = NULL;
    c->transport_closed = true;
    if (c->refs == 0 && c->timer_closed)
        imap_conn_destroy(c);
}

const struct transport_cbs imap_state_transport_events = {
    .connected = on_connected,
    .read = on_read,
    .tls_ready = on_tls_ready,
    .error = on_error,
    .closed = on_closed,
};

/* --- SELECT and the mailbox ---------------------------------------------- */

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
        imap_state_set(c, IMAP_CONN_SELECTED);
    } else if (r->status == IMAP_NO || r->status == IMAP_BAD) {
        /* a failed SELECT leaves nothing selected (RFC 3501 6.3.1) */
        imap_state_forget_mailbox(c);
        imap_state_set(c, IMAP_CONN_AUTH);
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

bool
imap_conn_greeted(const struct imap_conn *c)
{
    return c->greeted;
}
