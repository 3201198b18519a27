/* SPDX-License-Identifier: MIT */
/* IMAP response parser: every table input is fed whole, split at every byte
 * boundary into two feeds, and one byte at a time, and must give the same
 * canonical text (and, for bad input, the same error) each way. */
#include <inttypes.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "buf.h"
#include "imap_arg.h"
#include "imap_parser.h"
#include "util.h"

/* --- canonical text of a response ---------------------------------------- */

static void
put_quoted(struct buf *b, const char *s, size_t n)
{
    buf_append_char(b, '"');
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];

        if (c == '"' || c == '\\') {
            buf_append_char(b, '\\');
            buf_append_char(b, (char)c);
        } else if (c >= 0x20 && c < 0x7f) {
            buf_append_char(b, (char)c);
        } else {
            buf_printf(b, "\\x%02x", c);
        }
    }
    buf_append_char(b, '"');
}

static void put_args(struct buf *b, const struct imap_arg *arg);

static void
put_arg(struct buf *b, const struct imap_arg *arg)
{
    switch (arg->type) {
    case IMAP_ARG_NIL:
        assert_null(arg->str);
        buf_append_str(b, "NIL");
        break;
    case IMAP_ARG_ATOM:
        assert_int_equal(strlen(arg->str), arg->len);
        assert_true(arg->len > 0);
        buf_append(b, arg->str, arg->len);
        break;
    case IMAP_ARG_STRING:
        assert_int_equal(arg->str[arg->len], '\0');
        put_quoted(b, arg->str, arg->len);
        break;
    case IMAP_ARG_LITERAL:
        assert_int_equal(arg->str[arg->len], '\0');
        buf_printf(b, "{%zu}", arg->len);
        put_quoted(b, arg->str, arg->len);
        break;
    case IMAP_ARG_STREAMED:
        buf_printf(b, "<stream %u:%" PRIu64 ">", arg->stream_id,
                   arg->literal_size);
        break;
    case IMAP_ARG_LIST:
        assert_int_equal(imap_arg_count(arg->list), arg->count);
        buf_append_char(b, '(');
        put_args(b, arg->list);
        buf_append_char(b, ')');
        break;
    default:
        fail_msg("bad arg type %d", (int)arg->type);
    }
}

static void
put_args(struct buf *b, const struct imap_arg *arg)
{
    for (; arg != NULL; arg = arg->next) {
        put_arg(b, arg);
        if (arg->next != NULL)
            buf_append_char(b, ' ');
    }
}

static const char *const cond_names[] = {
    [IMAP_COND_NONE] = "NONE", [IMAP_COND_OK] = "OK",
    [IMAP_COND_NO] = "NO",     [IMAP_COND_BAD] = "BAD",
    [IMAP_COND_BYE] = "BYE",   [IMAP_COND_PREAUTH] = "PREAUTH",
};

/* type, tag, number and name: what a stream consumer may look at */
static void
put_header(struct buf *b, const struct imap_response *r)
{
    switch (r->type) {
    case IMAP_RESP_UNTAGGED:
        assert_null(r->tag);
        buf_append_char(b, '*');
        break;
    case IMAP_RESP_TAGGED:
        assert_non_null(r->tag);
        buf_append_str(b, r->tag);
        break;
    case IMAP_RESP_CONTINUE:
        assert_null(r->tag);
        assert_null(r->name);
        buf_append_char(b, '+');
        break;
    }
    if (r->has_number)
        buf_printf(b, " #%" PRIu32, r->number);
    else
        assert_int_equal(r->number, 0);
    if (r->name != NULL)
        buf_printf(b, " %s", r->name);
}

static void
put_response(struct buf *b, const struct imap_response *r)
{
    put_header(b, r);
    if (r->cond != IMAP_COND_NONE) {
        assert_string_equal(r->name, cond_names[r->cond]);
        buf_printf(b, " cond=%s", cond_names[r->cond]);
    }
    if (r->code != NULL) {
        buf_printf(b, " [%s", r->code);
        if (r->code_args != NULL) {
            buf_append_char(b, ' ');
            put_args(b, r->code_args);
        }
        buf_append_char(b, ']');
    } else {
        assert_null(r->code_args);
    }
    if (r->cond != IMAP_COND_NONE || r->type == IMAP_RESP_CONTINUE) {
        assert_non_null(r->text);
        assert_null(r->args);
        buf_append_str(b, " text=");
        put_quoted(b, r->text, strlen(r->text));
    } else {
        assert_null(r->text);
        assert_null(r->code);
    }
    if (r->args != NULL) {
        buf_append_str(b, " args=");
        put_args(b, r->args);
    }
    assert_non_null(r->line);
    assert_true(r->line_len <= IMAP_PARSER_TRACE_MAX);
    assert_int_equal(strlen(r->line), r->line_len);
}

/* --- stream consumer that records what it sees ---------------------------- */

enum ops_mode {
    OPS_NONE,    /* no ops: every literal is kept */
    OPS_DECLINE, /* start() always says no */
    OPS_BODY,    /* stream literals that follow an atom BODY… / BINARY… */
    OPS_ALL,     /* stream every literal */
};

struct rec {
    enum ops_mode mode;
    struct buf log;
    struct buf data;
    bool streaming;
    unsigned id;
};

static bool
rec_start(void *arg, const struct imap_response *partial,
          const struct imap_arg *prev, uint64_t size, unsigned stream_id)
{
    struct rec *r = arg;
    bool accept = r->mode == OPS_ALL;

    assert_false(r->streaming);
    if (r->mode == OPS_BODY && prev != NULL && prev->type == IMAP_ARG_ATOM)
        accept = strncmp(prev->str, "BODY", 4) == 0 ||
                 strncmp(prev->str, "BINARY", 6) == 0;
    buf_printf(&r->log, " <%s %u:%" PRIu64 " prev=",
               accept ? "stream" : "keep", stream_id, size);
    if (prev != NULL)
        put_arg(&r->log, prev);
    else
        buf_append_char(&r->log, '-');
    buf_append_str(&r->log, " in ");
    put_header(&r->log, partial);
    buf_append_char(&r->log, '>');
    if (accept) {
        r->streaming = true;
        r->id = stream_id;
        buf_reset(&r->data);
    }
    return accept;
}

static void
rec_data(void *arg, unsigned stream_id, const void *p, size_t n)
{
    struct rec *r = arg;

    assert_true(r->streaming);
    assert_int_equal(stream_id, r->id);
    assert_true(n > 0);
    buf_append(&r->data, p, n);
}

static void
rec_end(void *arg, unsigned stream_id)
{
    struct rec *r = arg;

    assert_true(r->streaming);
    assert_int_equal(stream_id, r->id);
    r->streaming = false;
    buf_printf(&r->log, " <end %u ", stream_id);
    put_quoted(&r->log, r->data.data ? r->data.data : "", r->data.len);
    buf_append_char(&r->log, '>');
}

static const struct imap_parser_stream_ops rec_ops = {
    .start = rec_start,
    .data = rec_data,
    .end = rec_end,
};

/* --- the runner -------------------------------------------------------- */

struct pcase {
    const char *in;
    size_t len;
    const char *want; /* each response's text and "\n"; "PENDING\n" if
                         input remains; for errors, what comes before */
    const char *err;  /* error cases: a substring of the message */
    const struct imap_parser_limits *limits;
    enum ops_mode ops;
};

#define OK(i, w) {.in = i, .len = sizeof(i) - 1, .want = w}
#define OKL(i, w, l) {.in = i, .len = sizeof(i) - 1, .want = w, .limits = l}
#define OKS(i, w, m) {.in = i, .len = sizeof(i) - 1, .want = w, .ops = m}
#define BAD(i, e) {.in = i, .len = sizeof(i) - 1, .want = "", .err = e}
#define BADL(i, e, l)                                                         \
    {.in = i, .len = sizeof(i) - 1, .want = "", .err = e, .limits = l}
#define CASE(i, ...) {.in = i, .len = sizeof(i) - 1, __VA_ARGS__}

struct runner {
    const struct pcase *c;
    struct imap_parser *p;
    struct rec rec;
    struct buf out;
    bool failed;
    bool release; /* release after every response and every piece */
};

static void
feed_piece(struct runner *r, const char *data, size_t len)
{
    size_t off = 0;

    while (!r->failed) {
        const struct imap_response *resp = NULL;
        size_t used = SIZE_MAX;
        enum imap_parse_result res;

        res = imap_parser_feed(r->p, data + off, len - off, &used, &resp);
        assert_true(used <= len - off);
        off += used;
        if (res == IMAP_PARSE_DONE) {
            assert_non_null(resp);
            assert_true(used > 0);
            assert_false(r->rec.streaming);
            assert_true(imap_parser_is_idle(r->p));
            put_response(&r->out, resp);
            buf_append(&r->out, r->rec.log.data, r->rec.log.len);
            buf_reset(&r->rec.log);
            buf_append_char(&r->out, '\n');
            if (r->release)
                imap_parser_release(r->p);
        } else if (res == IMAP_PARSE_MORE) {
            assert_int_equal(off, len);
            assert_null(resp);
            return;
        } else {
            const char *msg = imap_parser_error(r->p);

            assert_non_null(msg);
            buf_append(&r->out, r->rec.log.data, r->rec.log.len);
            buf_printf(&r->out, "ERROR: %s\n", msg);
            r->failed = true;
            /* the parser stays failed */
            assert_int_equal(imap_parser_feed(r->p, "* OK\r\n", 6, &used,
                                              &resp), IMAP_PARSE_ERROR);
        }
    }
}

enum feed_mode { FEED_WHOLE, FEED_SPLIT, FEED_BYTES };

/* The canonical text of everything parsed from the case's input, fed as
 * the mode says (split: at byte k). Caller frees. */
static char *
run(const struct pcase *c, enum feed_mode mode, size_t k)
{
    struct runner r = {.c = c};

    r.rec.mode = c->ops;
    buf_init(&r.rec.log, BUF_NOCAP);
    buf_init(&r.rec.data, BUF_NOCAP);
    buf_init(&r.out, BUF_NOCAP);
    r.p = imap_parser_new(c->limits, c->ops == OPS_NONE ? NULL : &rec_ops,
                          &r.rec);
    assert_true(imap_parser_is_idle(r.p));
    switch (mode) {
    case FEED_WHOLE:
        feed_piece(&r, c->in, c->len);
        break;
    case FEED_SPLIT:
        r.release = k % 2 == 1;
        feed_piece(&r, c->in, k);
        feed_piece(&r, c->in + k, c->len - k);
        break;
    case FEED_BYTES:
        r.release = true;
        for (size_t i = 0; i < c->len && !r.failed; i++) {
            feed_piece(&r, c->in + i, 1);
            imap_parser_release(r.p);
        }
        break;
    }
    if (!r.failed && !imap_parser_is_idle(r.p))
        buf_append_str(&r.out, "PENDING\n");
    imap_parser_free(r.p);
    buf_free(&r.rec.log);
    buf_free(&r.rec.data);
    return buf_steal(&r.out);
}

static void
check_case(const struct pcase *c)
{
    char *whole = run(c, FEED_WHOLE, 0);

    if (c->err == NULL) {
        if (strcmp(whole, c->want) != 0)
            print_error("input: %.*s\n", (int)c->len, c->in);
        assert_string_equal(whole, c->want);
    } else {
        size_t wl = strlen(c->want);

        if (strncmp(whole, c->want, wl) != 0 ||
            strncmp(whole + wl, "ERROR: ", 7) != 0 ||
            strstr(whole + wl, c->err) == NULL)
            fail_msg("input %.*s: got \"%s\", want error \"%s\"",
                     (int)c->len, c->in, whole, c->err);
    }
    /* every other way of feeding gives exactly the same text */
    for (size_t k = 0; k <= c->len; k++) {
        char *split = run(c, FEED_SPLIT, k);

        if (strcmp(split, whole) != 0)
            print_error("split at %zu: %.*s\n", k, (int)c->len, c->in);
        assert_string_equal(split, whole);
        free(split);
    }
    {
        char *bytes = run(c, FEED_BYTES, 0);

        assert_string_equal(bytes, whole);
        free(bytes);
    }
    free(whole);
}

static void
check_table(const struct pcase *cases, size_t n)
{
    for (size_t i = 0; i < n; i++)
        check_case(&cases[i]);
}

/* --- tables ------------------------------------------------------------ */

static const struct pcase status_cases[] = {
    OK("* OK [CAPABILITY IMAP4rev1 SASL-IR LOGIN-REFERRALS ID ENABLE IDLE "
       "LITERAL+ AUTH=PLAIN] Dovecot ready.\r\n",
       "* OK cond=OK [CAPABILITY IMAP4rev1 SASL-IR LOGIN-REFERRALS ID ENABLE "
       "IDLE LITERAL+ AUTH=PLAIN] text=\"Dovecot ready.\"\n"),
    OK("* OK Gimap ready for requests from 192.0.2.1 q1mb\r\n",
       "* OK cond=OK text=\"Gimap ready for requests from 192.0.2.1 q1mb\"\n"),
    OK("* PREAUTH [CAPABILITY IMAP4rev2] Logged in as joe\r\n",
       "* PREAUTH cond=PREAUTH [CAPABILITY IMAP4rev2] "
       "text=\"Logged in as joe\"\n"),
    OK("* BYE Autologout; idle for too long\r\n",
       "* BYE cond=BYE text=\"Autologout; idle for too long\"\n"),
    OK("* BYE\r\n", "* BYE cond=BYE text=\"\"\n"),
    OK("* bye \r\n", "* BYE cond=BYE text=\"\"\n"),
    OK("* NO [ALERT] Mailbox is at 95% of quota\r\n",
       "* NO cond=NO [ALERT] text=\"Mailbox is at 95% of quota\"\n"),
    OK("* BAD Invalid tag\r\n", "* BAD cond=BAD text=\"Invalid tag\"\n"),
    OK("a1 OK [READ-WRITE] Select completed (0.001 + 0.000 secs).\r\n",
       "a1 OK cond=OK [READ-WRITE] "
       "text=\"Select completed (0.001 + 0.000 secs).\"\n"),
    OK("A2 NO [TRYCREATE] Mailbox doesn't exist: Junk\r\n",
       "A2 NO cond=NO [TRYCREATE] text=\"Mailbox doesn't exist: Junk\"\n"),
    OK("A3 BAD Error in IMAP command XYZZY: Unknown command.\r\n",
       "A3 BAD cond=BAD text=\"Error in IMAP command XYZZY: Unknown "
       "command.\"\n"),
    OK("A4 OK\r\n", "A4 OK cond=OK text=\"\"\n"),
    OK("A5 ok [READ-ONLY]\r\n", "A5 OK cond=OK [READ-ONLY] text=\"\"\n"),
    OK("A6 NO [ALERT] \r\n", "A6 NO cond=NO [ALERT] text=\"\"\n"),
    OK("tag]1 OK done\r\n", "tag]1 OK cond=OK text=\"done\"\n"),
    OK("* OK [UIDVALIDITY 3857529045] UIDs valid\r\n",
       "* OK cond=OK [UIDVALIDITY 3857529045] text=\"UIDs valid\"\n"),
    OK("* OK [UIDNEXT 4392] Predicted next UID\r\n",
       "* OK cond=OK [UIDNEXT 4392] text=\"Predicted next UID\"\n"),
    OK("* OK [uidnext 7]\r\n", "* OK cond=OK [UIDNEXT 7] text=\"\"\n"),
    OK("* OK [PERMANENTFLAGS (\\Deleted \\Seen \\*)] Limited\r\n",
       "* OK cond=OK [PERMANENTFLAGS (\\Deleted \\Seen \\*)] "
       "text=\"Limited\"\n"),
    OK("* OK [PERMANENTFLAGS ()] No permanent flags permitted\r\n",
       "* OK cond=OK [PERMANENTFLAGS ()] "
       "text=\"No permanent flags permitted\"\n"),
    OK("A7 OK [CAPABILITY IMAP4rev1 LITERAL+ SASL-IR AUTH=PLAIN] Logged in\r\n",
       "A7 OK cond=OK [CAPABILITY IMAP4rev1 LITERAL+ SASL-IR AUTH=PLAIN] "
       "text=\"Logged in\"\n"),
    OK("* OK [ALERT] System shutdown in 10 minutes\r\n",
       "* OK cond=OK [ALERT] text=\"System shutdown in 10 minutes\"\n"),
    OK("A8 OK [COPYUID 38505 304,319:320 3956:3958] Done\r\n",
       "A8 OK cond=OK [COPYUID 38505 304,319:320 3956:3958] text=\"Done\"\n"),
    OK("A9 OK [APPENDUID 38505 3955] APPEND completed\r\n",
       "A9 OK cond=OK [APPENDUID 38505 3955] text=\"APPEND completed\"\n"),
    OK("A10 NO [BADCHARSET (UTF-8)] Unsupported charset\r\n",
       "A10 NO cond=NO [BADCHARSET (UTF-8)] text=\"Unsupported charset\"\n"),
    OK("* OK [HIGHESTMODSEQ 715194045007] Highest\r\n",
       "* OK cond=OK [HIGHESTMODSEQ 715194045007] text=\"Highest\"\n"),
    OK("* OK [X-CODE \"quoted ] arg\" NIL] text\r\n",
       "* OK cond=OK [X-CODE \"quoted ] arg\" NIL] text=\"text\"\n"),
    OK("* OK [ALERT ]x\r\n", "* OK cond=OK [ALERT] text=\"x\"\n"),
    /* what is not a code stays text */
    OK("* OK [UNCLOSED code text\r\n",
       "* OK cond=OK text=\"[UNCLOSED code text\"\n"),
    OK("* NO [] empty code\r\n", "* NO cond=NO text=\"[] empty code\"\n"),
    OK("* OK [X (a] b\r\n", "* OK cond=OK text=\"[X (a] b\"\n"),
    OK("* OK [X a)] b\r\n", "* OK cond=OK text=\"[X a)] b\"\n"),
    OK("* OK [X {5}] b\r\n", "* OK cond=OK text=\"[X {5}] b\"\n"),
    OK("* OK [X \"a] b\r\n", "* OK cond=OK text=\"[X \\\"a] b\"\n"),
    OK("* OK [X a\tb] c\r\n", "* OK cond=OK text=\"[X a\\x09b] c\"\n"),
    OK("* OK [A(B] c\r\n", "* OK cond=OK text=\"[A(B] c\"\n"),
    /* text is raw: 8-bit, brackets, quotes, a literal marker, TAB */
    OK("* OK \xc3\x87" "a va \"x\" [y] {5}\r\n",
       "* OK cond=OK text=\"\\xc3\\x87a va \\\"x\\\" [y] {5}\"\n"),
    OK("A1 NO a\tb\r\n", "A1 NO cond=NO text=\"a\\x09b\"\n"),
    /* continuations */
    OK("+ idling\r\n", "+ text=\"idling\"\n"),
    OK("+ Ready for literal data\r\n", "+ text=\"Ready for literal data\"\n"),
    OK("+ YGgGCSqGSIb3EgECAgIBAAD/////6jcyG4GE3KkTzBeBiVHeceP2CWY0SR0fAQ==\r\n",
       "+ text=\"YGgGCSqGSIb3EgECAgIBAAD/////6jcyG4GE3KkTzBeBiVHeceP2CWY0SR0fAQ"
       "==\"\n"),
    OK("+\r\n", "+ text=\"\"\n"),
    OK("+ \r\n", "+ text=\"\"\n"),
    OK("+  two\r\n", "+ text=\" two\"\n"),
    OK("+OK\r\n", "+ text=\"OK\"\n"),
    OK("+ [ALERT] not a code\r\n", "+ text=\"[ALERT] not a code\"\n"),
};

static const struct pcase data_cases[] = {
    OK("* 172 EXISTS\r\n", "* #172 EXISTS\n"),
    OK("* 0 RECENT\r\n", "* #0 RECENT\n"),
    OK("* 44 EXPUNGE\r\n", "* #44 EXPUNGE\n"),
    OK("* 4294967295 EXISTS\r\n", "* #4294967295 EXISTS\n"),
    OK("* 5 exists\r\n", "* #5 EXISTS\n"),
    OK("* 5 XFOO bar (baz)\r\n", "* #5 XFOO args=bar (baz)\n"),
    OK("* 1X FOO\r\n", "* 1X args=FOO\n"),
    OK("* 12 FETCH (UID 4827 FLAGS (\\Seen \\Answered $Forwarded) "
       "INTERNALDATE \"17-Jul-1996 02:44:25 -0700\" RFC822.SIZE 4286 "
       "BODY[HEADER.FIELDS (FROM SUBJECT)] {68}\r\n"
       "From: Joe <joe@example.org>\r\nSubject: Cron <root@host> run-parts"
       "\r\n\r\n)\r\n",
       "* #12 FETCH args=(UID 4827 FLAGS (\\Seen \\Answered $Forwarded) "
       "INTERNALDATE \"17-Jul-1996 02:44:25 -0700\" RFC822.SIZE 4286 "
       "BODY[HEADER.FIELDS (FROM SUBJECT)] {68}\"From: Joe "
       "<joe@example.org>\\x0d\\x0aSubject: Cron <root@host> run-parts"
       "\\x0d\\x0a\\x0d\\x0a\")\n"),
    OK("* 3 FETCH (UID 9 BODY[TEXT] {26}\r\nHello Joe,\r\nthe job ran.\r\n"
       " FLAGS ())\r\n",
       "* #3 FETCH args=(UID 9 BODY[TEXT] {26}\"Hello Joe,\\x0d\\x0athe job "
       "ran.\\x0d\\x0a\" FLAGS ())\n"),
    OK("* 4 FETCH (BODY[TEXT] NIL UID 1)\r\n",
       "* #4 FETCH args=(BODY[TEXT] NIL UID 1)\n"),
    OK("* 5 FETCH (BODY[TEXT] \"say \\\"hi\\\" c:\\\\dir \\x\")\r\n",
       "* #5 FETCH args=(BODY[TEXT] \"say \\\"hi\\\" c:\\\\dir x\")\n"),
    OK("* 6 FETCH (BODY[TEXT]<0> {3}\r\nabc UID 9)\r\n",
       "* #6 FETCH args=(BODY[TEXT]<0> {3}\"abc\" UID 9)\n"),
    OK("* 7 FETCH (BODY[HEADER.FIELDS (\"From\" X[1])]<0.100> \"\")\r\n",
       "* #7 FETCH args=(BODY[HEADER.FIELDS (\"From\" X[1])]<0.100> \"\")\n"),
    OK("* 8 FETCH (X-GM-THRID 1278455344230334865 X-GM-LABELS (\\Inbox "
       "\"Some label\" \\Important) UID 9)\r\n",
       "* #8 FETCH args=(X-GM-THRID 1278455344230334865 X-GM-LABELS (\\Inbox "
       "\"Some label\" \\Important) UID 9)\n"),
    OK("* 9 FETCH (BODY[] {0}\r\n UID 3)\r\n",
       "* #9 FETCH args=(BODY[] {0}\"\" UID 3)\n"),
    OK("* 10 FETCH (BODY[] {3+}\r\nabc)\r\n",
       "* #10 FETCH args=(BODY[] {3}\"abc\")\n"),
    OK("* 11 FETCH (BODY[1] {1}\r\nx BODY[2] {2}\r\nyz)\r\n",
       "* #11 FETCH args=(BODY[1] {1}\"x\" BODY[2] {2}\"yz\")\n"),
    OK("* 12 FETCH (BINARY[1] ~{4}\r\na\0b\xff)\r\n",
       "* #12 FETCH args=(BINARY[1] {4}\"a\\x00b\\xff\")\n"),
    OK("* 13 FETCH (BODYSTRUCTURE ((\"text\" \"plain\" (\"charset\" "
       "\"us-ascii\") NIL NIL \"7bit\" 2 1 NIL NIL NIL)(\"text\" \"html\" NIL "
       "NIL NIL \"7bit\" 3 1 NIL NIL NIL) \"alternative\" (\"boundary\" \"x\") "
       "NIL NIL))\r\n",
       "* #13 FETCH args=(BODYSTRUCTURE ((\"text\" \"plain\" (\"charset\" "
       "\"us-ascii\") NIL NIL \"7bit\" 2 1 NIL NIL NIL) (\"text\" \"html\" NIL "
       "NIL NIL \"7bit\" 3 1 NIL NIL NIL) \"alternative\" (\"boundary\" \"x\") "
       "NIL NIL))\n"),
    OK("* 14 fetch ( uid 5  FLAGS ( ) )\r\n",
       "* #14 FETCH args=(uid 5 FLAGS ())\n"),
    OK("* 15 FETCH (ENVELOPE (\"Mon, 7 Feb 1994 21:52:25 -0800\" \"a\tb\" "
       "((\"Fred\" NIL \"fred\" \"example.org\")) NIL))\r\n",
       "* #15 FETCH args=(ENVELOPE (\"Mon, 7 Feb 1994 21:52:25 -0800\" "
       "\"a\\x09b\" ((\"Fred\" NIL \"fred\" \"example.org\")) NIL))\n"),
    OK("* SEARCH 2 84 882\r\n", "* SEARCH args=2 84 882\n"),
    OK("* SEARCH\r\n", "* SEARCH\n"),
    OK("* SEARCH \r\n", "* SEARCH\n"),
    OK("* ESEARCH (TAG \"A5\") UID ALL 1:5,9\r\n",
       "* ESEARCH args=(TAG \"A5\") UID ALL 1:5,9\n"),
    OK("* ESEARCH (TAG \"A6\") UID\r\n", "* ESEARCH args=(TAG \"A6\") UID\n"),
    OK("* CAPABILITY IMAP4rev1 LITERAL+ SASL-IR LOGIN-REFERRALS ID ENABLE "
       "IDLE SORT SORT=DISPLAY THREAD=REFERENCES MOVE UIDPLUS "
       "AUTH=PLAIN AUTH=XOAUTH2\r\n",
       "* CAPABILITY args=IMAP4rev1 LITERAL+ SASL-IR LOGIN-REFERRALS ID ENABLE "
       "IDLE SORT SORT=DISPLAY THREAD=REFERENCES MOVE UIDPLUS "
       "AUTH=PLAIN AUTH=XOAUTH2\n"),
    OK("* capability imap4rev1\r\n", "* CAPABILITY args=imap4rev1\n"),
    OK("* LIST (\\HasNoChildren \\Trash) \"/\" Trash\r\n",
       "* LIST args=(\\HasNoChildren \\Trash) \"/\" Trash\n"),
    OK("* LIST () NIL {10}\r\nfoo \"bar\"\\\r\n",
       "* LIST args=() NIL {10}\"foo \\\"bar\\\"\\\\\"\n"),
    OK("* LIST (\\Noselect) \".\" \"\"\r\n",
       "* LIST args=(\\Noselect) \".\" \"\"\n"),
    OK("* LIST (\\HasNoChildren \\UnMarked \\Junk) \"/\" \"[Gmail]/Spam\"\r\n",
       "* LIST args=(\\HasNoChildren \\UnMarked \\Junk) \"/\" "
       "\"[Gmail]/Spam\"\n"),
    OK("* LSUB () \".\" #news.comp.mail.misc\r\n",
       "* LSUB args=() \".\" #news.comp.mail.misc\n"),
    OK("* STATUS INBOX (MESSAGES 231 UIDNEXT 44292 UIDVALIDITY 1 UNSEEN 0)\r\n",
       "* STATUS args=INBOX (MESSAGES 231 UIDNEXT 44292 UIDVALIDITY 1 UNSEEN "
       "0)\n"),
    OK("* STATUS {5}\r\nINBOX (MESSAGES 2)\r\n",
       "* STATUS args={5}\"INBOX\" (MESSAGES 2)\n"),
    OK("* FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft $Junk)\r\n",
       "* FLAGS args=(\\Answered \\Flagged \\Deleted \\Seen \\Draft $Junk)\n"),
    OK("* ENABLED CONDSTORE QRESYNC\r\n",
       "* ENABLED args=CONDSTORE QRESYNC\n"),
    OK("* ENABLED\r\n", "* ENABLED\n"),
    OK("* ID (\"name\" \"Dovecot\" \"version\" NIL)\r\n",
       "* ID args=(\"name\" \"Dovecot\" \"version\" NIL)\n"),
    OK("* ID nil\r\n", "* ID args=NIL\n"),
    OK("* NAMESPACE ((\"\" \"/\")) NIL ((\"#shared/\" \"/\"))\r\n",
       "* NAMESPACE args=((\"\" \"/\")) NIL ((\"#shared/\" \"/\"))\n"),
    OK("* QUOTAROOT INBOX \"\"\r\n", "* QUOTAROOT args=INBOX \"\"\n"),
    OK("* QUOTA \"\" (STORAGE 10 512)\r\n",
       "* QUOTA args=\"\" (STORAGE 10 512)\n"),
    OK("* XUNKNOWN NILS \"NIL\" nil ~foo a]b\r\n",
       "* XUNKNOWN args=NILS \"NIL\" NIL ~foo a]b\n"),
    OK("* X a\"b\"(c)d\r\n", "* X args=a \"b\" (c) d\n"),
    OK("* X \xc3\xa9t\xc3\xa9 \"caf\xc3\xa9\"\r\n",
       "* X args=\xc3\xa9t\xc3\xa9 \"caf\\xc3\\xa9\"\n"),
    OK("* X ((((((((((((((((((((((((((((((((a))))))))))))))))))))))))))))))))"
       "\r\n",
       "* X args=((((((((((((((((((((((((((((((((a))))))))))))))))))))))))))))"
       "))))\n"),
    OK("* X (a (b {2}\r\nc) d) e)\r\n",
       "* X args=(a (b {2}\"c)\" d) e)\n"),
};

/* several responses in one buffer, LF-only line ends, empty lines */
static const struct pcase sequence_cases[] = {
    OK("* 3 EXISTS\n* OK done\nA1 OK x\n",
       "* #3 EXISTS\n* OK cond=OK text=\"done\"\nA1 OK cond=OK text=\"x\"\n"),
    OK("* 1 FETCH (BODY[] {4}\nab\r\n)\n",
       "* #1 FETCH args=(BODY[] {4}\"ab\\x0d\\x0a\")\n"),
    OK("\r\n\n* 1 EXISTS\r\n\r\n",
       "* #1 EXISTS\n"),
    OK("* FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft)\r\n"
       "* OK [PERMANENTFLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft "
       "\\*)] Flags permitted.\r\n"
       "* 12 EXISTS\r\n"
       "* 0 RECENT\r\n"
       "* OK [UNSEEN 3] First unseen.\r\n"
       "* OK [UIDVALIDITY 1700000000] UIDs valid\r\n"
       "* OK [UIDNEXT 13] Predicted next UID\r\n"
       "* OK [HIGHESTMODSEQ 42] Highest\r\n"
       "A3 OK [READ-WRITE] Select completed (0.002 + 0.000 secs).\r\n",
       "* FLAGS args=(\\Answered \\Flagged \\Deleted \\Seen \\Draft)\n"
       "* OK cond=OK [PERMANENTFLAGS (\\Answered \\Flagged \\Deleted \\Seen "
       "\\Draft \\*)] text=\"Flags permitted.\"\n"
       "* #12 EXISTS\n"
       "* #0 RECENT\n"
       "* OK cond=OK [UNSEEN 3] text=\"First unseen.\"\n"
       "* OK cond=OK [UIDVALIDITY 1700000000] text=\"UIDs valid\"\n"
       "* OK cond=OK [UIDNEXT 13] text=\"Predicted next UID\"\n"
       "* OK cond=OK [HIGHESTMODSEQ 42] text=\"Highest\"\n"
       "A3 OK cond=OK [READ-WRITE] text=\"Select completed (0.002 + 0.000 "
       "secs).\"\n"),
    OK("+ idling\r\n* 5 EXISTS\r\n* 3 EXPUNGE\r\nDONE",
       "+ text=\"idling\"\n* #5 EXISTS\n* #3 EXPUNGE\nPENDING\n"),
    OK("* 1 FETCH (UID 1 BODY[TEXT] {2}\r\nab)\r\n"
       "* 2 FETCH (UID 2 BODY[TEXT] {2}\r\ncd)\r\n"
       "A4 OK Fetch completed.\r\n",
       "* #1 FETCH args=(UID 1 BODY[TEXT] {2}\"ab\")\n"
       "* #2 FETCH args=(UID 2 BODY[TEXT] {2}\"cd\")\n"
       "A4 OK cond=OK text=\"Fetch completed.\"\n"),
    OK("* 1 FETCH (BODY[] {3}\r\nab", "PENDING\n"),
    OK("* OK x\r", "PENDING\n"),
};

static const struct imap_parser_limits small_limits = {
    .max_line = 32, .max_literal = 10, .max_stream = 20, .max_depth = 3,
};

static const struct pcase limit_cases[] = {
    /* exactly at the limits is fine */
    OKL("* OK 456789012345678901234567890\r\n",
        "* OK cond=OK text=\"456789012345678901234567890\"\n", &small_limits),
    OKL("* X (((a)))\r\n", "* X args=(((a)))\n", &small_limits),
    OKL("* X {10}\r\n0123456789\r\n", "* X args={10}\"0123456789\"\n",
        &small_limits),
    /* the second response starts afresh */
    OKL("* OK 456789012345678901234567890\r\n* OK 4567890123456789012345678"
        "90\r\n",
        "* OK cond=OK text=\"456789012345678901234567890\"\n"
        "* OK cond=OK text=\"456789012345678901234567890\"\n", &small_limits),
};

static const struct pcase stream_cases[] = {
    OKS("* 1 FETCH (UID 7 BODY[TEXT] {11}\r\nhello world BODY[HEADER] {0}\r\n"
        " FLAGS (\\Seen))\r\n",
        "* #1 FETCH args=(UID 7 BODY[TEXT] <stream 0:11> BODY[HEADER] "
        "<stream 1:0> FLAGS (\\Seen)) <stream 0:11 prev=BODY[TEXT] in "
        "* #1 FETCH> <end 0 \"hello world\"> <stream 1:0 prev=BODY[HEADER] "
        "in * #1 FETCH> <end 1 \"\">\n", OPS_BODY),
    /* declined literals are kept; the next offer reuses the id */
    OKS("* LIST () NIL {3}\r\nabc\r\n* 2 FETCH (BINARY[] ~{3}\r\nx\0y)\r\n",
        "* LIST args=() NIL {3}\"abc\" <keep 0:3 prev=NIL in * LIST>\n"
        "* #2 FETCH args=(BINARY[] <stream 0:3>) <stream 0:3 prev=BINARY[] "
        "in * #2 FETCH> <end 0 \"x\\x00y\">\n", OPS_BODY),
    OKS("* 3 FETCH ({2}\r\nab {1}\r\nc)\r\n",
        "* #3 FETCH args=(<stream 0:2> <stream 1:1>) <stream 0:2 prev=- in "
        "* #3 FETCH> <end 0 \"ab\"> <stream 1:1 prev=<stream 0:2> in * #3 "
        "FETCH> <end 1 \"c\">\n", OPS_ALL),
    OKS("* 4 FETCH (X {2}\r\nab)\r\n",
        "* #4 FETCH args=(X {2}\"ab\") <keep 0:2 prev=X in * #4 FETCH>\n",
        OPS_DECLINE),
    OKS("A1 OK [ALERT] {3}\r\n", "A1 OK cond=OK [ALERT] text=\"{3}\"\n",
        OPS_ALL),
};

/* streams may exceed max_literal, up to max_stream */
static const struct pcase stream_limit_cases[] = {
    CASE("* 1 FETCH (BODY[] {20}\r\n01234567890123456789)\r\n",
     .want = "* #1 FETCH args=(BODY[] <stream 0:20>) <stream 0:20 "
             "prev=BODY[] in * #1 FETCH> <end 0 \"01234567890123456789\">\n",
     .limits = &small_limits, .ops = OPS_ALL),
    /* above max_stream but within max_literal: kept, never offered */
    CASE("* 1 X {10}\r\n0123456789\r\n",
         .want = "* #1 X args={10}\"0123456789\"\n",
         .limits = &(const struct imap_parser_limits){.max_literal = 10,
                                                      .max_stream = 5},
         .ops = OPS_ALL),
};

static const struct imap_parser_limits line40 = {.max_line = 40};

static const struct pcase error_cases[] = {
    BADL("* OK 4567890123456789012345678901\r\n", "line longer than 32 bytes",
         &small_limits),
    BADL("* OK 4567890123456789012345678901", "line longer than 32 bytes",
         &small_limits),
    /* the limit holds for all line segments of a response together */
    BADL("* 1 FETCH (BODY[1] {1}\r\nx BODY[2] {1}\r\ny BODY[3] {1}\r\nz)\r\n",
         "line longer than 40 bytes", &line40),
    BADL("* X {11}\r\n01234567890\r\n", "literal of 11 bytes exceeds the "
         "10-byte limit", &small_limits),
    BADL("* X {6}\r\n012345 {5}\r\n01234\r\n", "literals of one response "
         "exceed the 10-byte limit", &small_limits),
    BAD("* 1 FETCH (BODY[] {99999999999}\r\n", "literal of 99999999999 bytes "
        "exceeds the 1048576-byte limit"),
    BAD("* 1 FETCH (BODY[] {184467440737095516160}\r\n",
        "literal size out of range"),
    BAD("* 1 FETCH (BODY[] {5} UID 1)\r\n", "literal not at the end of line"),
    BAD("* 1 FETCH (BODY[] {5)\r\n", "bad literal size"),
    BAD("* X {}\r\n", "bad literal size"),
    BAD("* X {-1}\r\n", "bad literal size"),
    BAD("* OK \0\r\n", "unexpected byte 0x00 in line: * OK \\x00"),
    BAD("* 1 FETCH (BODY[] \"a\0b\")\r\n", "unexpected byte 0x00"),
    BAD("* OK \x7f\r\n", "unexpected byte 0x7f"),
    BAD("* OK a\rb\r\n", "unexpected byte 0x0d in line: * OK a\\x0d"),
    BAD("* OK \x1b[0m\r\n", "unexpected byte 0x1b"),
    BAD("\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03",
        "unexpected byte 0x16 in line: \\x16"),
    BAD("SSH-2.0-OpenSSH_9.2p1 Debian-2\r\n",
        "expected OK, NO or BAD after the tag"),
    BAD("A1 FOO bar\r\n", "expected OK, NO or BAD after the tag in line: "
        "A1 FOO bar"),
    BAD("A1 BYE x\r\n", "expected OK, NO or BAD"),
    BAD("A1\r\n", "expected OK, NO or BAD"),
    BAD(" A1 OK\r\n", "bad tag"),
    BAD("A(1 OK\r\n", "bad tag"),
    BAD("A\xc3\xa9" "1 OK\r\n", "bad tag"),
    BAD("*OK\r\n", "expected SP after *"),
    BAD("*\r\n", "expected SP after *"),
    BAD("* \r\n", "missing response name"),
    BAD("* 5\r\n", "missing response name"),
    BAD("* 5 \r\n", "missing response name"),
    BAD("* 99999999999 EXISTS\r\n", "number out of range in line: "
        "* 99999999999 EXISTS"),
    BAD("* 4294967296 EXISTS\r\n", "number out of range"),
    BAD("* FLAGS(\\Seen)\r\n", "bad response name"),
    BAD("* LIST () \"/ INBOX\r\n", "unterminated quoted string"),
    BAD("* LIST () \"/\\\r\n", "unterminated quoted string"),
    BAD("* FLAGS (\\Seen))\r\n", "unbalanced )"),
    BAD("* FLAGS )\r\n", "unbalanced )"),
    BAD("* FLAGS (\\Seen\r\n", "missing ) at the end of response"),
    BAD("* 1 FETCH (BODY[] {2}\r\nab\r\n", "missing ) at the end of response: "
        "* 1 FETCH (BODY[] {2}"),
    BADL("* X ((((a))))\r\n", "lists nested deeper than 3", &small_limits),
    BAD("* X (((((((((((((((((((((((((((((((((a)))))))))))))))))))))))))))))"
        ")))\r\n", "lists nested deeper than 32"),
    BAD("* 1 FETCH (BODY[TEXT )\r\n", "missing ] in atom"),
    BAD("* FLAGS (\\Seen\t\\Draft)\r\n", "unexpected byte 0x09"),
    CASE("* 3 EXISTS\r\n* 4 EXISTS\r\n\0",
         .want = "* #3 EXISTS\n* #4 EXISTS\n", .err = "unexpected byte 0x00"),
};

/* errors after good responses, and in stream limits */
static const struct pcase late_error_cases[] = {
    CASE("* 3 EXISTS\r\n* OK \0\r\n", .want = "* #3 EXISTS\n",
         .err = "unexpected byte 0x00"),
    /* above both limits: refused before start() is called */
    CASE("* 1 FETCH (BODY[] {21}\r\n", .want = "",
         .err = "literal of 21 bytes exceeds the 20-byte limit",
         .limits = &small_limits, .ops = OPS_ALL),
    /* declined and too big to keep */
    CASE("* 1 FETCH (X {11}\r\n",
         .want = " <keep 0:11 prev=X in * #1 FETCH>",
         .err = "literal of 11 bytes exceeds the 10-byte limit",
         .limits = &small_limits, .ops = OPS_BODY),
};

static void
test_status(void **state)
{
    (void)state;
    check_table(status_cases, ARRAY_SIZE(status_cases));
}

static void
test_data(void **state)
{
    (void)state;
    check_table(data_cases, ARRAY_SIZE(data_cases));
}

static void
test_sequences(void **state)
{
    (void)state;
    check_table(sequence_cases, ARRAY_SIZE(sequence_cases));
}

static void
test_limits(void **state)
{
    (void)state;
    check_table(limit_cases, ARRAY_SIZE(limit_cases));
}

static void
test_streams(void **state)
{
    (void)state;
    check_table(stream_cases, ARRAY_SIZE(stream_cases));
    check_table(stream_limit_cases, ARRAY_SIZE(stream_limit_cases));
}

static void
test_errors(void **state)
{
    (void)state;
    check_table(error_cases, ARRAY_SIZE(error_cases));
    check_table(late_error_cases, ARRAY_SIZE(late_error_cases));
}

/* --- single tests ------------------------------------------------------ */

static void
test_consumed(void **state)
{
    static const char in[] = "* 1 EXISTS\r\n* 2 FETCH (BODY[] {3}\r\nabc)\r\n"
                             "A1 OK done\r\n* 3";
    struct imap_parser *p = imap_parser_new(NULL, NULL, NULL);
    const struct imap_response *r;
    size_t used, off = 0;

    (void)state;
    assert_int_equal(imap_parser_feed(p, in, sizeof(in) - 1, &used, &r),
                     IMAP_PARSE_DONE);
    assert_int_equal(used, 12);
    assert_int_equal(r->number, 1);
    off += used;
    assert_int_equal(imap_parser_feed(p, in + off, sizeof(in) - 1 - off,
                                      &used, &r), IMAP_PARSE_DONE);
    assert_int_equal(used, 29);
    assert_int_equal(r->args->list->next->len, 3);
    off += used;
    assert_int_equal(imap_parser_feed(p, in + off, sizeof(in) - 1 - off,
                                      &used, &r), IMAP_PARSE_DONE);
    assert_int_equal(used, 12);
    assert_string_equal(r->tag, "A1");
    off += used;
    assert_int_equal(imap_parser_feed(p, in + off, sizeof(in) - 1 - off,
                                      &used, &r), IMAP_PARSE_MORE);
    assert_int_equal(used, 3);
    assert_false(imap_parser_is_idle(p));
    imap_parser_free(p);
}

static void
test_trace_line(void **state)
{
    char in[1200];
    struct imap_parser *p = imap_parser_new(NULL, NULL, NULL);
    const struct imap_response *r;
    size_t used, n;

    (void)state;
    memcpy(in, "* OK ", 5);
    memset(in + 5, 'x', 600);
    memcpy(in + 605, "\r\n", 2);
    assert_int_equal(imap_parser_feed(p, in, 607, &used, &r),
                     IMAP_PARSE_DONE);
    assert_int_equal(r->line_len, IMAP_PARSER_TRACE_MAX);
    assert_true(r->line_truncated);
    assert_int_equal(strncmp(r->line, "* OK xxx", 8), 0);
    assert_int_equal(strlen(r->text), 600);

    n = (size_t)snprintf(in, sizeof(in),
                         "* 1 FETCH (BODY[] {3}\r\nabc UID 5)\r\n");
    assert_int_equal(imap_parser_feed(p, in, n, &used, &r), IMAP_PARSE_DONE);
    assert_int_equal(used, n);
    assert_string_equal(r->line, "* 1 FETCH (BODY[] {3}");
    assert_false(r->line_truncated);

    assert_int_equal(imap_parser_feed(p, "A1 OK\n", 6, &used, &r),
                     IMAP_PARSE_DONE);
    assert_string_equal(r->line, "A1 OK");
    assert_int_equal(r->line_len, 5);
    imap_parser_free(p);
}

static void
test_release_idle(void **state)
{
    static const char part1[] = "* 1 FETCH (BODY[] {5}\r\nab";
    static const char part2[] = "cde)\r\n* 2 EXI";
    struct imap_parser *p = imap_parser_new(NULL, NULL, NULL);
    const struct imap_response *r = NULL;
    size_t used;

    (void)state;
    assert_true(imap_parser_is_idle(p));
    imap_parser_release(p);
    assert_true(imap_parser_is_idle(p));

    assert_int_equal(imap_parser_feed(p, part1, sizeof(part1) - 1, &used, &r),
                     IMAP_PARSE_MORE);
    assert_false(imap_parser_is_idle(p));
    /* a partial response survives a release */
    imap_parser_release(p);
    assert_false(imap_parser_is_idle(p));
    assert_int_equal(imap_parser_feed(p, part2, sizeof(part2) - 1, &used, &r),
                     IMAP_PARSE_DONE);
    assert_int_equal(used, 6);
    assert_true(imap_parser_is_idle(p));
    assert_string_equal(r->args->list->next->str, "abcde");
    imap_parser_release(p);
    assert_true(imap_parser_is_idle(p));

    assert_int_equal(imap_parser_feed(p, part2 + 6, sizeof(part2) - 7, &used,
                                      &r), IMAP_PARSE_MORE);
    assert_false(imap_parser_is_idle(p));
    imap_parser_release(p);
    assert_int_equal(imap_parser_feed(p, "STS\r", 4, &used, &r),
                     IMAP_PARSE_MORE);
    assert_false(imap_parser_is_idle(p));
    assert_int_equal(imap_parser_feed(p, "\n", 1, &used, &r),
                     IMAP_PARSE_DONE);
    assert_int_equal(r->number, 2);
    assert_string_equal(r->name, "EXISTS");
    imap_parser_release(p);
    assert_true(imap_parser_is_idle(p));
    imap_parser_free(p);
    imap_parser_free(NULL);
}

/* A 100,000-UID sweep sends SEARCH lines like this one. */
static void
test_big_search(void **state)
{
    const size_t count = 50000;
    struct buf in;
    struct imap_parser *p = imap_parser_new(NULL, NULL, NULL);
    const struct imap_response *r = NULL;
    const struct imap_arg *a;
    size_t off = 0, used, i;
    enum imap_parse_result res = IMAP_PARSE_MORE;

    (void)state;
    buf_init(&in, BUF_NOCAP);
    buf_append_str(&in, "* SEARCH");
    for (i = 0; i < count; i++)
        buf_printf(&in, " %zu", 100000 + i * 3);
    buf_append_str(&in, "\r\nA9 OK Search completed\r\n");
    assert_true(in.len > 300000);
    while (off < in.len) {
        size_t n = in.len - off < 4096 ? in.len - off : 4096;

        res = imap_parser_feed(p, in.data + off, n, &used, &r);
        off += used;
        if (res == IMAP_PARSE_DONE)
            break;
        assert_int_equal(res, IMAP_PARSE_MORE);
    }
    assert_int_equal(res, IMAP_PARSE_DONE);
    assert_string_equal(r->name, "SEARCH");
    assert_int_equal(imap_arg_count(r->args), count);
    for (a = r->args, i = 0; a != NULL; a = a->next, i++) {
        uint32_t v;

        assert_true(imap_arg_get_u32(a, &v));
        assert_int_equal(v, 100000 + i * 3);
    }
    assert_int_equal(imap_parser_feed(p, in.data + off, in.len - off, &used,
                                      &r), IMAP_PARSE_DONE);
    assert_string_equal(r->tag, "A9");
    imap_parser_release(p);
    assert_true(imap_parser_is_idle(p));
    imap_parser_free(p);
    buf_free(&in);
}

static void
test_accessors(void **state)
{
    static const char in[] = "* 1 FETCH (UID 4294967295 MODSEQ "
                             "18446744073709551615 X 4294967296 "
                             "S \"str\" L {3}\r\nlit N nil E ())\r\n";
    struct imap_parser *p = imap_parser_new(NULL, NULL, NULL);
    const struct imap_response *r;
    const struct imap_arg *l, *first;
    const char *s;
    size_t used, len, count;
    uint32_t v32;
    uint64_t v64;

    (void)state;
    assert_int_equal(imap_parser_feed(p, in, sizeof(in) - 1, &used, &r),
                     IMAP_PARSE_DONE);
    assert_true(imap_arg_get_list(r->args, &l, &count));
    assert_int_equal(count, 14);
    assert_false(imap_arg_get_list(l, &first, &count));
    assert_true(imap_arg_is_atom(l, "UID"));
    assert_false(imap_arg_is_atom(l, "UI"));
    assert_false(imap_arg_is_atom(NULL, "UID"));
    assert_true(imap_arg_get_u32(imap_arg_nth(l, 1), &v32));
    assert_int_equal(v32, UINT32_MAX);
    assert_true(imap_arg_get_u64(imap_arg_nth(l, 3), &v64));
    assert_true(v64 == UINT64_MAX);
    assert_false(imap_arg_get_u32(imap_arg_nth(l, 5), &v32));
    assert_true(imap_arg_get_u64(imap_arg_nth(l, 5), &v64));
    assert_true(v64 == 4294967296ULL);
    assert_false(imap_arg_get_u32(imap_arg_nth(l, 0), &v32));
    assert_false(imap_arg_get_u32(imap_arg_nth(l, 7), &v32)); /* "str" */
    assert_true(imap_arg_get_astring(imap_arg_nth(l, 7), &s, &len));
    assert_string_equal(s, "str");
    assert_true(imap_arg_get_astring(imap_arg_nth(l, 9), &s, &len));
    assert_int_equal(len, 3);
    assert_string_equal(s, "lit");
    assert_false(imap_arg_get_astring(imap_arg_nth(l, 11), &s, &len));
    assert_true(imap_arg_get_nstring(imap_arg_nth(l, 11), &s, &len));
    assert_null(s);
    assert_int_equal(len, 0);
    assert_true(imap_arg_get_nstring(imap_arg_nth(l, 9), &s, &len));
    assert_string_equal(s, "lit");
    assert_true(imap_arg_get_list(imap_arg_nth(l, 13), &first, &count));
    assert_null(first);
    assert_int_equal(count, 0);
    assert_false(imap_arg_get_nstring(imap_arg_nth(l, 13), &s, &len));
    assert_null(imap_arg_nth(l, 14));
    assert_int_equal(imap_arg_count(l), 14);
    assert_int_equal(imap_arg_count(NULL), 0);
    imap_parser_free(p);
}

/* A stream consumer may see its literal in many small pieces; the
 * concatenation is the literal, also for a large one. */
static void
test_stream_large(void **state)
{
    struct imap_parser_limits lim = {.max_literal = 16};
    struct rec rec = {.mode = OPS_ALL};
    struct imap_parser *p;
    struct buf in;
    const struct imap_response *r = NULL;
    size_t off = 0, used;
    enum imap_parse_result res = IMAP_PARSE_MORE;

    (void)state;
    buf_init(&rec.log, BUF_NOCAP);
    buf_init(&rec.data, BUF_NOCAP);
    buf_init(&in, BUF_NOCAP);
    p = imap_parser_new(&lim, &rec_ops, &rec);
    buf_append_str(&in, "* 1 FETCH (BODY[] {3000000}\r\n");
    for (size_t i = 0; i < 3000000; i++)
        buf_append_char(&in, (char)('a' + i % 26));
    buf_append_str(&in, " UID 5)\r\n");
    while (off < in.len) {
        size_t n = in.len - off < 1000 ? in.len - off : 1000;

        res = imap_parser_feed(p, in.data + off, n, &used, &r);
        off += used;
        if (res != IMAP_PARSE_MORE)
            break;
        imap_parser_release(p);
    }
    assert_int_equal(res, IMAP_PARSE_DONE);
    assert_int_equal(rec.data.len, 3000000);
    assert_memory_equal(rec.data.data, in.data + 29, 3000000);
    assert_int_equal(r->args->list->next->type, IMAP_ARG_STREAMED);
    assert_true(r->args->list->next->literal_size == 3000000);
    imap_parser_free(p);
    buf_free(&in);
    buf_free(&rec.log);
    buf_free(&rec.data);
}

/* Broken limits are told apart from bytes that are not IMAP. */
static void
test_error_kind(void **state)
{
    static const struct {
        const char *in;
        bool limit;
    } cases[] = {
        {"* OK [ALERT] literal limit exceeded \x01\r\n", false},
        {"* SEARCH 1 \x7f\r\n", false},
        {"A1 FOO bar\r\n", false},
        {"* 1 FETCH (BODY[] {99999999999}\r\n", true},
        {"* LIST ((((((((((((((((((((((((((((((((((((x\r\n", true},
    };
    struct imap_parser_limits lim = {.max_line = 1024, .max_literal = 1024,
                                     .max_stream = 4096, .max_depth = 8};

    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct imap_parser *p = imap_parser_new(&lim, NULL, NULL);
        const struct imap_response *r;
        size_t used;

        assert_int_equal(imap_parser_feed(p, cases[i].in,
                                          strlen(cases[i].in), &used, &r),
                         IMAP_PARSE_ERROR);
        assert_int_equal(imap_parser_error_is_limit(p), cases[i].limit);
        imap_parser_free(p);
    }
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_status),
        cmocka_unit_test(test_data),
        cmocka_unit_test(test_sequences),
        cmocka_unit_test(test_limits),
        cmocka_unit_test(test_streams),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_consumed),
        cmocka_unit_test(test_trace_line),
        cmocka_unit_test(test_release_idle),
        cmocka_unit_test(test_big_search),
        cmocka_unit_test(test_accessors),
        cmocka_unit_test(test_stream_large),
        cmocka_unit_test(test_error_kind),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
