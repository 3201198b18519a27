/* SPDX-License-Identifier: MIT */
/* Transcript assertions: see transcript.h. The only part of the test
 * library that uses cmocka. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "transcript.h"

#include "buf.h"
#include "uidset.h"
#include "util.h"

char *
expect_cmd(struct fakesrv *f, const char *want)
{
    struct fakesrv_cmd c;
    char *tag;

    if (!fakesrv_wait_line(f, EXPECT_TIMEOUT_MS))
        fail_msg("waited for \"%s\"; the client sent \"%s\" and no more",
                 want, fakesrv_all(f));
    assert_true(fakesrv_next_cmd(f, &c));
    if (strcmp(c.text, want) != 0)
        fail_msg("expected \"%s\", the client sent \"%s\"", want, c.text);
    tag = c.tag;
    free(c.text);
    return tag;
}

void
expect_line(struct fakesrv *f, const char *want)
{
    char *line;

    if (!fakesrv_wait_line(f, EXPECT_TIMEOUT_MS))
        fail_msg("waited for \"%s\"; the client sent \"%s\" and no more",
                 want, fakesrv_all(f));
    line = fakesrv_line(f);
    if (strcmp(line, want) != 0)
        fail_msg("expected \"%s\", the client sent \"%s\"", want, line);
    free(line);
}

void
expect_cmd_reply(struct fakesrv *f, const char *want, const char *reply)
{
    char *tag = expect_cmd(f, want);

    fakesrv_reply(f, tag, "%s", reply);
    free(tag);
}

void
expect_quiet(struct fakesrv *f)
{
    char *rest;

    testlib_settle(fakesrv_loop(f));
    rest = fakesrv_take(f);
    if (*rest != '\0')
        fail_msg("expected nothing more, the client sent \"%s\"", rest);
    free(rest);
}

void
expect_acted_within(const struct fakesrv *f, const char *allowed,
                    bool plain_ok)
{
    struct uidset acted, ok, outside;
    const char *p = fakesrv_all(f);
    bool plain = false;
    struct buf text;

    uidset_init(&acted);
    uidset_init(&ok);
    uidset_init(&outside);
    while (*p != '\0') {
        const char *nl = strchr(p, '\n');
        size_t len = nl ? (size_t)(nl - p) : strlen(p);
        char *line = xstrndup(p, len);

        testlib_action_uids(line, &acted, &plain);
        free(line);
        p += len + (nl ? 1 : 0);
    }
    if (*allowed != '\0')
        assert_int_equal(uidset_parse(&ok, allowed, strlen(allowed)), 0);
    uidset_copy(&outside, &acted);
    uidset_subtract(&outside, &ok);
    buf_init(&text, BUF_NOCAP);
    uidset_format(&outside, &text);
    if (!uidset_empty(&outside))
        fail_msg("acted on UIDs %s outside %s:\n%s", buf_cstr(&text),
                 allowed, fakesrv_all(f));
    if (plain && !plain_ok)
        fail_msg("a plain EXPUNGE was sent:\n%s", fakesrv_all(f));
    buf_free(&text);
    uidset_free(&acted);
    uidset_free(&ok);
    uidset_free(&outside);
}

void
script_login(struct fakesrv *f, const char *user, const char *pass,
             const char *caps)
{
    struct buf raw, want;
    char *tag;

    fakesrv_printf(f, "* OK [CAPABILITY %s AUTH=PLAIN SASL-IR] ready\r\n",
                   caps);
    buf_init(&raw, BUF_NOCAP);
    buf_init(&want, BUF_NOCAP);
    buf_append_char(&raw, '\0');
    buf_append_str(&raw, user);
    buf_append_char(&raw, '\0');
    buf_append_str(&raw, pass);
    buf_append_str(&want, "AUTHENTICATE PLAIN ");
    buf_append_base64(&want, raw.data, raw.len);
    tag = expect_cmd(f, buf_cstr(&want));
    fakesrv_reply(f, tag, "OK [CAPABILITY %s] Logged in", caps);
    free(tag);
    buf_free(&raw);
    buf_free(&want);
}

void
script_select(struct fakesrv *f, const char *mailbox, uint32_t exists,
              uint32_t uidvalidity, uint32_t uidnext)
{
    char *want = xasprintf("SELECT %s", mailbox);
    char *tag = expect_cmd(f, want);

    fakesrv_printf(f, "* %u EXISTS\r\n* OK [UIDVALIDITY %u] ok\r\n", exists,
                   uidvalidity);
    if (uidnext != 0)
        fakesrv_printf(f, "* OK [UIDNEXT %u] ok\r\n", uidnext);
    fakesrv_reply(f, tag, "OK [READ-WRITE] selected");
    free(tag);
    free(want);
}

void
transcript_filter_from_env(void)
{
    const char *f = getenv("TEST_FILTER");

    if (f != NULL && *f != '\0')
        cmocka_set_test_filter(f);
}
