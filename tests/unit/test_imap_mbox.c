/* SPDX-License-Identifier: MIT */
/* imap_mbox: STATUS and LIST lines as servers send them (Dovecot's NOTIFY
 * lines among them), and lines that must be refused. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "imap_mbox.h"
#include "imap_parser.h"

/* Parse one line; the response lives until the parser is freed. */
static const struct imap_response *
parse(struct imap_parser **pp, const char *line)
{
    const struct imap_response *r = NULL;
    size_t used = 0;

    *pp = imap_parser_new(NULL, NULL, NULL);
    assert_int_equal(imap_parser_feed(*pp, line, strlen(line), &used, &r),
                     IMAP_PARSE_DONE);
    return r;
}

static enum imap_mbox_result
status_of(const char *line, bool utf8, struct imap_mbox_status *st)
{
    struct imap_parser *p;
    enum imap_mbox_result res = imap_mbox_parse_status(parse(&p, line), utf8,
                                                       st);

    imap_parser_free(p);
    return res;
}

static enum imap_mbox_result
list_of(const char *line, bool utf8, struct imap_mbox_list *l)
{
    struct imap_parser *p;
    enum imap_mbox_result res = imap_mbox_parse_list(parse(&p, line), utf8,
                                                     l);

    imap_parser_free(p);
    return res;
}

static void
test_status_good(void **state)
{
    struct imap_mbox_status st;

    (void)state;
    imap_mbox_status_init(&st);
    assert_int_equal(status_of("* STATUS Archive (MESSAGES 2 UIDNEXT 3 "
                               "UIDVALIDITY 1796229311 UNSEEN 2)\r\n",
                               false, &st), IMAP_MBOX_OK);
    assert_string_equal(buf_cstr(&st.name), "Archive");
    assert_true(st.has_messages && st.has_uidnext && st.has_uidvalidity);
    assert_int_equal(st.messages, 2);
    assert_int_equal(st.uidnext, 3);
    assert_int_equal(st.uidvalidity, 1796229311u);

    /* NOTIFY after a delivery: no UIDVALIDITY */
    assert_int_equal(status_of("* STATUS \"Lists/a b\" (MESSAGES 1 UIDNEXT 2 "
                               "UNSEEN 1)\r\n", false, &st), IMAP_MBOX_OK);
    assert_string_equal(buf_cstr(&st.name), "Lists/a b");
    assert_false(st.has_uidvalidity);
    assert_int_equal(st.uidvalidity, 0);

    /* modified UTF-7, INBOX spelt once, a literal name, an empty list */
    assert_int_equal(status_of("* STATUS Entw&APw-rfe (UIDNEXT 9)\r\n", false,
                               &st), IMAP_MBOX_OK);
    assert_string_equal(buf_cstr(&st.name), "Entw\xc3\xbcrfe");
    assert_int_equal(status_of("* STATUS Entw&APw-rfe (UIDNEXT 9)\r\n", true,
                               &st), IMAP_MBOX_OK);
    assert_string_equal(buf_cstr(&st.name), "Entw&APw-rfe");
    assert_int_equal(status_of("* STATUS inbox (MESSAGES 0)\r\n", false, &st),
                     IMAP_MBOX_OK);
    assert_string_equal(buf_cstr(&st.name), "INBOX");
    assert_int_equal(status_of("* STATUS {3}\r\nabc ()\r\n", false, &st),
                     IMAP_MBOX_OK);
    assert_string_equal(buf_cstr(&st.name), "abc");
    assert_false(st.has_messages || st.has_uidnext);
    imap_mbox_status_free(&st);
}

static void
test_status_bad(void **state)
{
    static const char *const bad[] = {
        "* STATUS\r\n",
        "* STATUS Archive\r\n",
        "* STATUS Archive MESSAGES 2\r\n",
        "* STATUS Archive (MESSAGES)\r\n",
        "* STATUS Archive (MESSAGES 2 UIDNEXT)\r\n",
        "* STATUS Archive (MESSAGES -1)\r\n",
        "* STATUS Archive (MESSAGES 4294967296)\r\n",
        "* STATUS Archive (UIDNEXT NIL)\r\n",
        "* STATUS Archive (UIDNEXT (3))\r\n",
        "* STATUS Archive (UIDNEXT 3 UIDNEXT 4)\r\n",
        "* STATUS Archive (\"UIDNEXT\" 3)\r\n",
        "* STATUS Archive (UNSEEN (1))\r\n",
        "* STATUS Archive (UIDNEXT 3) extra\r\n",
        "* STATUS NIL (UIDNEXT 3)\r\n",
        "* STATUS \"\" (UIDNEXT 3)\r\n",
        "* STATUS (UIDNEXT 3)\r\n",
        "* STATUS {3}\r\na\0b (UIDNEXT 3)\r\n",
    };
    struct imap_mbox_status st;

    (void)state;
    imap_mbox_status_init(&st);
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct imap_parser *p;
        const struct imap_response *r = NULL;
        size_t used = 0, len = strlen(bad[i]);

        if (strstr(bad[i], "{3}") != NULL)
            len = 31; /* the NUL inside the literal */
        p = imap_parser_new(NULL, NULL, NULL);
        assert_int_equal(imap_parser_feed(p, bad[i], len, &used, &r),
                         IMAP_PARSE_DONE);
        if (imap_mbox_parse_status(r, false, &st) != IMAP_MBOX_MALFORMED)
            fail_msg("accepted: %s", bad[i]);
        imap_parser_free(p);
    }
    /* not a STATUS at all */
    assert_int_equal(status_of("* 3 EXISTS\r\n", false, &st),
                     IMAP_MBOX_OTHER);
    assert_int_equal(status_of("* LIST () \"/\" INBOX\r\n", false, &st),
                     IMAP_MBOX_OTHER);
    assert_int_equal(status_of("A1 OK STATUS done\r\n", false, &st),
                     IMAP_MBOX_OTHER);
    imap_mbox_status_free(&st);
}

static void
test_list(void **state)
{
    struct imap_mbox_list l;

    (void)state;
    imap_mbox_list_init(&l);
    assert_int_equal(list_of("* LIST () \"/\" New\r\n", false, &l),
                     IMAP_MBOX_OK);
    assert_string_equal(buf_cstr(&l.name), "New");
    assert_int_equal(l.flags, 0);
    assert_int_equal(l.delimiter, '/');
    assert_false(l.has_oldname);

    /* Dovecot's rename and delete, as NOTIFY sends them */
    assert_int_equal(list_of("* LIST () \"/\" Archive2 (\"OLDNAME\" "
                             "(Archive))\r\n", false, &l), IMAP_MBOX_OK);
    assert_string_equal(buf_cstr(&l.name), "Archive2");
    assert_true(l.has_oldname);
    assert_string_equal(buf_cstr(&l.oldname), "Archive");
    assert_int_equal(list_of("* LIST (\\NonExistent) \"/\" Lists\r\n", false,
                             &l), IMAP_MBOX_OK);
    assert_int_equal(l.flags, IMAP_MBOX_NONEXISTENT);
    assert_false(l.has_oldname);
    assert_int_equal(list_of("* LIST (\\Noselect \\HasChildren) NIL "
                             "&AOk-t&AOk- (CHILDINFO (SUBSCRIBED) oldname "
                             "(\"&AOk-\"))\r\n", false, &l), IMAP_MBOX_OK);
    assert_int_equal(l.flags, IMAP_MBOX_NOSELECT);
    assert_int_equal(l.delimiter, 0);
    assert_string_equal(buf_cstr(&l.name), "\xc3\xa9t\xc3\xa9");
    assert_string_equal(buf_cstr(&l.oldname), "\xc3\xa9");
    imap_mbox_list_free(&l);
}

static void
test_list_bad(void **state)
{
    static const char *const bad[] = {
        "* LIST\r\n",
        "* LIST ()\r\n",
        "* LIST () \"/\"\r\n",
        "* LIST NIL \"/\" INBOX\r\n",
        "* LIST (Seen) \"/\" INBOX\r\n",
        "* LIST () \"//\" INBOX\r\n",
        "* LIST () / INBOX\r\n",
        "* LIST () \"/\" NIL\r\n",
        "* LIST () \"/\" a (\"OLDNAME\")\r\n",
        "* LIST () \"/\" a (\"OLDNAME\" b)\r\n",
        "* LIST () \"/\" a (\"OLDNAME\" (b c))\r\n",
        "* LIST () \"/\" a (\"OLDNAME\" (b) \"OLDNAME\" (c))\r\n",
        "* LIST () \"/\" a (\"OLDNAME\" (b)) x\r\n",
        "* LIST () \"/\" a ((x) y)\r\n",
        "* LIST () \"/\" a x\r\n",
    };
    struct imap_mbox_list l;

    (void)state;
    imap_mbox_list_init(&l);
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        if (list_of(bad[i], false, &l) != IMAP_MBOX_MALFORMED)
            fail_msg("accepted: %s", bad[i]);
    }
    assert_int_equal(list_of("* STATUS a (UIDNEXT 1)\r\n", false, &l),
                     IMAP_MBOX_OTHER);
    assert_int_equal(list_of("* LSUB () \"/\" a\r\n", false, &l),
                     IMAP_MBOX_OTHER);
    imap_mbox_list_free(&l);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_status_good),
        cmocka_unit_test(test_status_bad),
        cmocka_unit_test(test_list),
        cmocka_unit_test(test_list_bad),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
