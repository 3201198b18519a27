/* SPDX-License-Identifier: MIT */
/* libFuzzer target, structure-aware: one real sweep (imap_conn + sweep)
 * over the unit-test library's scripted server, where the input chooses
 * the configuration, the mailbox and every reply of the server.
 *
 * Input: a header (rules, capabilities, EXISTS, UIDNEXT, uid_lo, the chunk
 * size, dry run), then one operation after another: answer a command in
 * flight (chosen by the input; its untagged data from the command's text
 * and the input; tagged OK, NO, BAD, with or without a response code),
 * send an untagged response (EXISTS, EXPUNGE, UIDVALIDITY, BYE, ...), send
 * raw bytes, or drop the connection. When the input runs out, every
 * command is answered OK, so most inputs reach the actions.
 *
 * After every step the safety invariant is asserted on what the client
 * sent: no UID STORE/COPY/MOVE/EXPUNGE names a UID outside what the
 * server's searches returned, intersected with [lo, top] (top: the UIDs
 * the server gave for "UID FETCH * (UID)"; lo: uid_lo, or 1 with rules
 * over the whole mailbox); nothing once a changed UIDVALIDITY was
 * reported, and when it is, no more than the one action command it may
 * answer in flight (pipelined actions would reach the new generation);
 * nothing in a dry run; never a plain EXPUNGE. The result of
 * every SEARCH is counted together (the actions do not say which rule
 * they are for), so the check is per sweep, not per rule. The sweep must
 * call back exactly once, and the process never aborts.
 *
 * FUZZ_SWEEP_TRACE=1 in the environment prints the conversation (S: the
 * server, C: the client) to stderr, to read what a crashing input did. */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <uv.h>

#include "buf.h"
#include "config.h"
#include "errors.h"
#include "imap_conn.h"
#include "log.h"
#include "sweep.h"
#include "testlib.h"
#include "uidset.h"
#include "util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define ACCOUNT                                                              \
    "accounts:\n"                                                            \
    "  - {name: acct, host: imap.test, user: alice, password: s3cret,"       \
    "     tls: none, mailboxes: [INBOX]}\n"                                  \
    "rules:\n"

/* The rule sets; whole_mailbox: keep_newest or duplicate (they act below
 * uid_lo). */
static const struct {
    const char *rules;
    bool whole_mailbox;
} rule_sets[] = {
    {"  - {name: cron, match: {from: Cron Daemon}, action: delete}\n",
     false},
    {"  - {name: spam, match: {subject_regex: '(?i)spam'}, action: trash}\n"
     "  - {name: cron, match: {from: Cron}, action: delete}\n",
     false},
    {"  - {name: k, match: {subject: report}, keep_newest: 2,"
     "     action: {flag: '\\Seen'}}\n"
     "  - {name: d, match: {duplicate: message_id}, action: delete}\n",
     true},
    {"  - {name: old, match: {from: alerts, older_than: 14d},"
     "     action: {move: Archive/Alerts, create: true}}\n"
     "  - {name: dupb, match: {duplicate: body}, action: trash}\n",
     true},
    {"  - {name: b, match: {body_md5: 9e107d9d372bb6826bd81d3542a419d6},"
     "     action: delete}\n"
     "  - {name: f, match: {any: [{subject: x}, {seen: true}]},"
     "     action: {flag: ['\\Flagged']}}\n",
     false},
    {"  - {name: all, match: {all: true}, action: {move: Old}}\n", false},
};
#define N_SETS (sizeof(rule_sets) / sizeof(rule_sets[0]))

static const char *const cap_bits[] = {
    "UIDPLUS", "ESEARCH", "MOVE", "SPECIAL-USE", "X-GM-EXT-1", "CONDSTORE",
};

static const char *const headers[] = {
    ("From: Cron Daemon <root@h>\r\nSubject: Cron <root@h> x\r\n"
     "Message-ID: <a@h>\r\n\r\n"),
    "From: alerts@x\r\nSubject: spam report\r\nMessage-ID: <b@h>\r\n\r\n",
    "Subject: =?UTF-8?B?c3BhbQ==?=\r\nMessage-ID: <a@h>\r\n\r\n",
    "",
};

static const char *const bodies[] = {
    "The quick brown fox jumps over the lazy dog", "a\r\n", "",
};

static void
check(bool cond)
{
    if (!cond)
        abort();
}

static void
discard_log(enum log_level level, const struct log_fields *f,
            const char *msg, void *arg)
{
    (void)level;
    (void)f;
    (void)msg;
    (void)arg;
}

/* --- the input ----------------------------------------------------------- */

struct input {
    const uint8_t *p;
    size_t n, i;
};

/* The next byte; 0 once the input is used up. */
static unsigned
byte(struct input *in)
{
    return in->i < in->n ? in->p[in->i++] : 0;
}

/* A UID: mostly small, sometimes anywhere. */
static uint32_t
some_uid(struct input *in)
{
    unsigned b = byte(in);

    if (b == 0xff)
        return UINT32_MAX - (uint32_t)byte(in);
    if (b >= 0xf0)
        return (uint32_t)byte(in) << 16 | (uint32_t)byte(in) << 8;
    return b % 64 + 1;
}

/* A set of a few ranges. */
static void
some_set(struct input *in, struct uidset *s)
{
    unsigned n = byte(in) % 5;

    for (unsigned k = 0; k < n; k++) {
        uint32_t lo = some_uid(in);

        uidset_add_range(s, lo, lo + byte(in) % 8);
    }
}

/* --- the state ----------------------------------------------------------- */

struct cmd {
    char *tag, *text;
};

struct fz {
    uv_loop_t loop;
    struct fakenet *net;
    struct fakesrv *f;
    struct imap_conn *c;
    struct sweep *sweep;
    struct input in;
    struct cmd pending[64];
    size_t n_pending;
    size_t checked;             /* client bytes checked so far */
    struct uidset found;        /* every UID a SEARCH returned */
    uint32_t lo, top;
    uint32_t uidvalidity;       /* as the server said it last */
    bool changed;               /* a new UIDVALIDITY was reported */
    bool dry;
    bool trace;
    int done;
};

static void
ev_closed(struct imap_conn *c, int err, const char *msg, void *arg)
{
    (void)c;
    (void)err;
    (void)msg;
    (void)arg;
}

static const struct imap_conn_events events = {.closed = ev_closed};

static void
noop_done(struct imap_conn *c, const struct imap_reply *r, void *arg)
{
    (void)c;
    (void)r;
    (void)arg;
}

static void
on_done(struct sweep *s, const struct sweep_result *r, void *arg)
{
    struct fz *z = arg;

    (void)s;
    (void)r;
    z->done++;
    z->sweep = NULL;
}

/* The invariant, on every complete line the client sent since the last
 * check. */
static void
check_actions(struct fz *z)
{
    const char *all = fakesrv_all(z->f);
    const char *end = strrchr(all + z->checked, '\n');
    struct uidset allowed;

    if (end == NULL)
        return;
    uidset_init(&allowed);
    if (!z->changed && !z->dry && z->top >= z->lo) {
        uidset_copy(&allowed, &z->found);
        uidset_clip(&allowed, z->lo, z->top);
    }
    for (const char *p = all + z->checked; p <= end;) {
        const char *nl = strchr(p, '\n');
        char *line = xstrndup(p, (size_t)(nl - p));
        struct uidset acted;
        bool plain = false;

        if (z->trace)
            fprintf(stderr, "C: %s\n", line);
        uidset_init(&acted);
        if (testlib_action_uids(line, &acted, &plain) || plain) {
            check(!plain);
            uidset_subtract(&acted, &allowed);
            if (!uidset_empty(&acted)) {
                fprintf(stderr, "fuzz_sweep: \"%s\" acts outside what "
                        "the sweep may touch\n", line);
                abort();
            }
        }
        uidset_free(&acted);
        free(line);
        p = nl + 1;
    }
    z->checked = (size_t)(end + 1 - all);
    uidset_free(&allowed);
}

static void
srv_send(struct fz *z, const char *text, size_t len)
{
    if (z->trace && len > 0)
        fprintf(stderr, "S: %.*s", (int)len, text);
    fakesrv_send_bytes(z->f, text, len);
    testlib_settle(&z->loop);
    check_actions(z);
}

static void
send_buf(struct fz *z, struct buf *b)
{
    srv_send(z, buf_cstr(b), b->len);
    buf_reset(b);
}

static bool
is_action(const char *text)
{
    struct uidset u;
    bool plain = false, act;

    uidset_init(&u);
    act = testlib_action_uids(text, &u, &plain) || plain;
    uidset_free(&u);
    return act;
}

/* Take the client's new commands into pending. */
static void
collect(struct fz *z)
{
    struct fakesrv_cmd c;

    while (z->n_pending < 64 && fakesrv_next_cmd(z->f, &c)) {
        z->pending[z->n_pending].tag = c.tag;
        z->pending[z->n_pending].text = c.text;
        z->n_pending++;
    }
}

/* --- replies ------------------------------------------------------------- */

/* The server is about to report UIDVALIDITY v. A new value, even the
 * first one again: from now on nothing may be acted on, and of the action
 * commands in flight (their UIDs will be taken in the new generation) at
 * most max_actions may be there, the one whose reply the report may
 * concern. */
static void
report_uidvalidity(struct fz *z, uint32_t v, size_t max_actions)
{
    size_t n = 0;

    if (v == z->uidvalidity)
        return;
    z->uidvalidity = v;
    if (z->changed)
        return;
    collect(z);
    for (size_t i = 0; i < z->n_pending; i++) {
        if (is_action(z->pending[i].text))
            n++;
    }
    if (n > max_actions) {
        fprintf(stderr, "fuzz_sweep: %zu action commands in flight across "
                "a UIDVALIDITY change\n", n);
        abort();
    }
    z->changed = true;
}

/* "* n FETCH (UID u ...)" for a FETCH of a set: items from the text. */
static void
fetch_data(struct fz *z, const char *text, struct buf *b)
{
    struct uidset want;
    const char *sp = strchr(text + 10, ' ');
    unsigned n = byte(&z->in) % 6;

    uidset_init(&want);
    if (sp != NULL)
        (void)uidset_parse(&want, text + 10, (size_t)(sp - text - 10));
    for (unsigned k = 0; k < n; k++) {
        uint32_t uid = byte(&z->in) % 4 == 0 || want.n == 0
                           ? some_uid(&z->in)
                           : want.r[byte(&z->in) % want.n].lo;
        const char *p = text;

        buf_printf(b, "* %u FETCH (UID %u", k + 1, uid);
        if (strstr(text, "INTERNALDATE") != NULL)
            buf_printf(b, " INTERNALDATE \"0%u-Jan-20%02u 00:00:00 +0000\"",
                       1 + byte(&z->in) % 9, byte(&z->in) % 30);
        if (strstr(text, "RFC822.SIZE") != NULL)
            buf_printf(b, " RFC822.SIZE %u", byte(&z->in) << 8);
        if (strstr(text, "FLAGS") != NULL && byte(&z->in) % 2)
            buf_append_str(b, " FLAGS (\\Seen)");
        while ((p = strstr(p, "BODY.PEEK[")) != NULL) {
            const char *close = strchr(p, ']');
            bool hdr = strstr(p, "HEADER") == p + 10;
            unsigned m = byte(&z->in);
            const char *lit = hdr ? headers[m % 4] : bodies[m % 3];

            if (close == NULL)
                break;
            buf_printf(b, " BODY[%.*s] {%zu}\r\n%s", (int)(close - p - 10),
                       p + 10, strlen(lit), lit);
            p = close;
        }
        buf_append_str(b, ")\r\n");
        send_buf(z, b);
    }
    uidset_free(&want);
}

/* SEARCH results as ESEARCH or SEARCH, counted in found. */
static void
search_data(struct fz *z, const struct cmd *c, struct buf *b)
{
    struct uidset s;

    uidset_init(&s);
    some_set(&z->in, &s);
    uidset_union(&z->found, &s);
    if (strstr(c->text, "RETURN (") != NULL) {
        if (!uidset_empty(&s)) {
            buf_printf(b, "* ESEARCH (TAG \"%s\") UID ALL ", c->tag);
            uidset_format(&s, b);
            buf_append_str(b, "\r\n");
        }
    } else {
        bool down = byte(&z->in) % 2;

        buf_append_str(b, "* SEARCH");
        /* at most 64 numbers; the rest of the set is not sent, which
         * only makes found larger than what the client saw */
        for (size_t i = 0, k = 0; i < s.n && k < 64; i++) {
            const struct uid_range *r = &s.r[down ? s.n - 1 - i : i];

            for (uint64_t u = r->lo; u <= r->hi && k < 64; u++, k++)
                buf_printf(b, " %llu", (unsigned long long)
                           (down ? r->hi - (u - r->lo) : u));
        }
        buf_append_str(b, "\r\n");
    }
    uidset_free(&s);
    send_buf(z, b);
}

static void
list_data(struct fz *z, struct buf *b)
{
    static const char *const lists[] = {
        "* LIST (\\HasNoChildren \\Trash) \"/\" Trash\r\n",
        "* LIST (\\HasNoChildren) \"/\" Trash\r\n",
        "* LIST (\\HasNoChildren) \".\" \"Deleted Items\"\r\n",
        "* LIST (\\Noselect \\Trash) \"/\" \"[Gmail]/Trash\"\r\n",
        "* LIST () \"/\" Archive/Alerts\r\n* LIST () \"/\" Old\r\n",
        "",
    };
    unsigned n = byte(&z->in) % 3;

    for (unsigned k = 0; k < n; k++) {
        buf_append_str(b, lists[byte(&z->in) % 6]);
        send_buf(z, b);
    }
}

/* Answer pending[i]: its data, then the tagged reply. */
static void
answer(struct fz *z, size_t i, bool ok)
{
    static const char *const codes[] = {
        "", "[TRYCREATE] ", "[ALERT] ", "[UNAVAILABLE] ",
        "[COPYUID 5 1:3 10:12] ", "[UIDVALIDITY 5] ", "[UIDVALIDITY 6] ",
        "[CLOSED] ",
    };
    struct cmd c = z->pending[i];
    const char *t = c.text;
    unsigned st = ok ? 0 : byte(&z->in), code = ok ? 0 : byte(&z->in) % 8;
    struct buf b;

    memmove(&z->pending[i], &z->pending[i + 1],
            (z->n_pending - i - 1) * sizeof(*z->pending));
    z->n_pending--;
    if (code == 5 || code == 6)
        report_uidvalidity(z, code, is_action(t) ? 0 : 1);
    buf_init(&b, BUF_NOCAP);
    if (strcmp(t, "UID FETCH * (UID)") == 0) {
        unsigned n = ok ? 1 : byte(&z->in) % 3;

        for (unsigned k = 0; k < n; k++) {
            uint32_t uid = some_uid(&z->in);

            if (uid > z->top)
                z->top = uid;
            buf_printf(&b, "* %u FETCH (UID %u)\r\n", k + 1, uid);
            send_buf(z, &b);
        }
    } else if (strncmp(t, "UID SEARCH", 10) == 0) {
        search_data(z, &c, &b);
    } else if (strncmp(t, "UID FETCH", 9) == 0) {
        fetch_data(z, t, &b);
    } else if (strncmp(t, "LIST", 4) == 0) {
        list_data(z, &b);
    }
    buf_printf(&b, "%s %s %sdone\r\n", c.tag,
               st % 8 < 6 ? "OK" : st % 8 == 6 ? "NO" : "BAD", codes[code]);
    send_buf(z, &b);
    buf_free(&b);
    free(c.tag);
    free(c.text);
}

/* An untagged response out of the blue. */
static void
interleave(struct fz *z)
{
    unsigned k = byte(&z->in) % 8;
    uint32_t v = some_uid(&z->in);
    struct buf b;

    buf_init(&b, BUF_NOCAP);
    switch (k) {
    case 0:
        buf_printf(&b, "* %u EXISTS\r\n", v);
        break;
    case 1:
        buf_printf(&b, "* %u EXPUNGE\r\n", v);
        break;
    case 2:
        report_uidvalidity(z, v % 2 ? 6 : 5, 1);
        buf_printf(&b, "* OK [UIDVALIDITY %u] x\r\n", v % 2 ? 6 : 5);
        break;
    case 3:
        buf_printf(&b, "* OK [UIDNEXT %u] x\r\n", v);
        break;
    case 4:
        buf_printf(&b, "* %u FETCH (FLAGS (\\Deleted))\r\n", v);
        break;
    case 5:
        buf_append_str(&b, "* BYE going away\r\n");
        break;
    case 6:
        buf_append_str(&b, "* NO [ALERT] disk full\r\n");
        break;
    default:
        buf_append_str(&b, "* CAPABILITY IMAP4rev1 UIDPLUS\r\n");
        break;
    }
    send_buf(z, &b);
    buf_free(&b);
}

/* Bytes from the input, unless they could carry a search result, a UID
 * or a UIDVALIDITY that the invariant would not know of. */
static void
raw(struct fz *z)
{
    size_t n = byte(&z->in) % 64, avail = z->in.n - z->in.i;
    char *text;

    if (n > avail)
        n = avail;
    text = xstrndup((const char *)z->in.p + z->in.i, n);
    z->in.i += n;
    if (strlen(text) == n && strcasestr(text, "SEARCH") == NULL &&
        strcasestr(text, "FETCH") == NULL &&
        strcasestr(text, "UIDVALIDITY") == NULL)
        srv_send(z, text, n);
    free(text);
}

/* --- the run ------------------------------------------------------------- */

static struct config *
config_of(unsigned set)
{
    static struct config *configs[N_SETS];

    if (configs[set] == NULL) {
        char *yaml = xasprintf(ACCOUNT "%s", rule_sets[set].rules);
        struct config_diag diag;

        config_diag_init(&diag);
        check(config_load_buffer("fuzz.yaml", yaml, strlen(yaml),
                                 &configs[set], &diag) == 0);
        config_diag_free(&diag);
        free(yaml);
    }
    return configs[set];
}

/* Greeting, login and SELECT, answered as a server would. */
static bool
open_mailbox(struct fz *z, const char *caps, uint32_t exists,
             uint32_t uidnext)
{
    struct fakesrv_cmd c;
    struct buf b;

    buf_init(&b, BUF_NOCAP);
    buf_printf(&b, "* OK [CAPABILITY IMAP4rev1 %s AUTH=PLAIN SASL-IR] hi\r\n",
               caps);
    send_buf(z, &b);
    imap_conn_login(z->c, IMAP_AUTH_AUTO, "alice", "s3cret", 6, false,
                    noop_done, NULL);
    testlib_settle(&z->loop);
    if (!fakesrv_next_cmd(z->f, &c))
        return false;
    buf_printf(&b, "%s OK [CAPABILITY IMAP4rev1 %s] in\r\n", c.tag, caps);
    send_buf(z, &b);
    fakesrv_cmd_free(&c);
    imap_conn_select(z->c, "INBOX", false, noop_done, NULL);
    testlib_settle(&z->loop);
    if (!fakesrv_next_cmd(z->f, &c))
        return false;
    buf_printf(&b, "* %u EXISTS\r\n* OK [UIDVALIDITY 5] x\r\n", exists);
    if (uidnext != 0)
        buf_printf(&b, "* OK [UIDNEXT %u] x\r\n", uidnext);
    buf_printf(&b, "%s OK [READ-WRITE] selected\r\n", c.tag);
    send_buf(z, &b);
    fakesrv_cmd_free(&c);
    buf_free(&b);
    z->checked = strlen(fakesrv_all(z->f));
    return imap_conn_mailbox(z->c)->selected;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct imap_conn_settings cs = {
        .account = "acct", .mailbox = "INBOX", .host = "imap.test",
        .port = 143, .tls = IMAP_TLS_NONE, .command_timeout_ms = 5000,
        .allow_plaintext_auth = true,
    };
    struct fz z;
    struct sweep_memo memo = {0};
    struct config *config;
    const struct rule *rules[4];
    struct sweep_params p = {0};
    struct buf caps;
    unsigned set, capmask, flags;
    uint32_t exists, uidnext;

    memset(&z, 0, sizeof(z));
    z.in.p = data;
    z.in.n = size;
    z.trace = getenv("FUZZ_SWEEP_TRACE") != NULL;
    log_set_sink(discard_log, NULL);
    set = byte(&z.in) % N_SETS;
    capmask = byte(&z.in);
    exists = byte(&z.in) % 64;
    uidnext = byte(&z.in) % 4 == 0 ? 0 : exists + 1 + byte(&z.in) % 64;
    flags = byte(&z.in);
    config = config_of(set);
    buf_init(&caps, BUF_NOCAP);
    buf_append_str(&caps, "IDLE");
    for (size_t i = 0; i < sizeof(cap_bits) / sizeof(cap_bits[0]); i++) {
        if (capmask & (1u << i))
            buf_printf(&caps, " %s", cap_bits[i]);
    }
    uidset_init(&z.found);
    check(uv_loop_init(&z.loop) == 0);
    z.net = fakenet_new(&z.loop);
    z.f = fakenet_open(z.net);
    z.c = imap_conn_new_with_transport(fakesrv_transport(z.f), &z.loop, &cs,
                                       &events, &z);
    testlib_settle(&z.loop);
    if (open_mailbox(&z, buf_cstr(&caps), exists, uidnext)) {
        for (size_t i = 0; i < config->n_rules && i < 4; i++)
            rules[i] = config->rules[i];
        p.conn = z.c;
        p.config = config;
        p.account = &config->accounts[0];
        p.mailbox = "INBOX";
        p.rules = rules;
        p.n_rules = config->n_rules < 4 ? config->n_rules : 4;
        p.memo = &memo;
        p.uid_lo = flags & 1 ? 1 + byte(&z.in) % 32 : 1;
        p.uidvalidity = 5;
        z.uidvalidity = 5;
        p.force_dry_run = (flags & 6) == 6;
        p.evaluate_only = (flags & 6) == 4;
        p.audit = flags & 8 ? CONFIG_AUDIT_MESSAGES : CONFIG_AUDIT_COUNTS;
        p.max_set_len = flags & 16 ? 1 + byte(&z.in) % 16 : 0;
        z.lo = rule_sets[set].whole_mailbox ? 1 : p.uid_lo;
        z.dry = p.force_dry_run || p.evaluate_only;
        z.sweep = sweep_start(&p, on_done, &z);
        check(z.sweep != NULL);
        for (unsigned step = 0; step < 256 && z.done == 0; step++) {
            unsigned op;

            testlib_settle(&z.loop);
            check_actions(&z);
            collect(&z);
            if (z.n_pending == 0 || !fakesrv_open(z.f))
                break;
            op = byte(&z.in);
            switch (op % 8) {
            case 4:
                interleave(&z);
                break;
            case 5:
                raw(&z);
                break;
            case 6:
                while (z.n_pending > 0 && fakesrv_open(z.f))
                    answer(&z, 0, true);
                break;
            case 7:
                if (op == 7) {
                    fakesrv_drop(z.f, ERR_CLOSED, NULL);
                    break;
                }
                answer(&z, 0, true);
                break;
            default:
                answer(&z, byte(&z.in) % z.n_pending, op < 4);
                break;
            }
        }
        if (z.sweep != NULL)
            sweep_cancel(z.sweep);
        testlib_settle(&z.loop);
        check_actions(&z);
    }
    imap_conn_free(z.c);
    uv_run(&z.loop, UV_RUN_DEFAULT);
    check(z.sweep == NULL);
    check(p.conn == NULL || z.done == 1);
    fakenet_free(z.net);
    check(uv_loop_close(&z.loop) == 0);
    for (size_t i = 0; i < z.n_pending; i++) {
        free(z.pending[i].tag);
        free(z.pending[i].text);
    }
    sweep_memo_free(&memo);
    uidset_free(&z.found);
    buf_free(&caps);
    return 0;
}
