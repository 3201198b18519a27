/* SPDX-License-Identifier: MIT */
/* The journal fields of a log line: what `journalctl RULE=cron-noise
 * ACTION=delete` finds, and what it must not find (a preview). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "log.h"
#include "notify.h"

static void
expect_fields(enum log_level level, const struct log_fields *f,
              const char *msg, const char *const *want)
{
    char *parts[NOTIFY_JOURNAL_MAX_FIELDS];
    size_t n = notify_journal_fields(level, f, msg, parts,
                                     NOTIFY_JOURNAL_MAX_FIELDS);
    size_t n_want = 0;

    while (want[n_want] != NULL)
        n_want++;
    for (size_t i = 0; i < n && i < n_want; i++)
        assert_string_equal(parts[i], want[i]);
    assert_int_equal(n, n_want);
    for (size_t i = 0; i < n; i++)
        free(parts[i]);
}

static void
test_audit_fields(void **state)
{
    struct log_fields f = {
        .account = "work", .mailbox = "INBOX", .rule = "cron-noise",
        .action = "delete", .uid = 42, .message_id = "<c1@host>",
        .from = "Cron Daemon <root@host>", .subject = "Cron <root@host> ls",
    };

    (void)state;
    expect_fields(LL_INFO, &f, "work/INBOX: cron-noise: delete uid 42",
                  (const char *const[]){
                      "MESSAGE=work/INBOX: cron-noise: delete uid 42",
                      "PRIORITY=6", "SYSLOG_IDENTIFIER=imapsweepd",
                      "ACCOUNT=work", "MAILBOX=INBOX", "RULE=cron-noise",
                      "ACTION=delete", "UID=42", "MAIL_MESSAGE_ID=<c1@host>",
                      "FROM=Cron Daemon <root@host>",
                      "SUBJECT=Cron <root@host> ls", NULL});
    /* a preview never carries ACTION=delete */
    f.action = "would_delete";
    f.dry_run = true;
    expect_fields(LL_INFO, &f, "m",
                  (const char *const[]){
                      "MESSAGE=m", "PRIORITY=6",
                      "SYSLOG_IDENTIFIER=imapsweepd", "ACCOUNT=work",
                      "MAILBOX=INBOX", "RULE=cron-noise",
                      "ACTION=would_delete", "DRY_RUN=1", "UID=42",
                      "MAIL_MESSAGE_ID=<c1@host>",
                      "FROM=Cron Daemon <root@host>",
                      "SUBJECT=Cron <root@host> ls", NULL});
    /* an ordinary line: the context only */
    expect_fields(LL_ERROR, &(struct log_fields){.account = "work"}, "x",
                  (const char *const[]){"MESSAGE=x", "PRIORITY=3",
                                        "SYSLOG_IDENTIFIER=imapsweepd",
                                        "ACCOUNT=work", NULL});
    expect_fields(LL_DEBUG, NULL, "y",
                  (const char *const[]){"MESSAGE=y", "PRIORITY=7",
                                        "SYSLOG_IDENTIFIER=imapsweepd",
                                        NULL});
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_audit_fields),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
