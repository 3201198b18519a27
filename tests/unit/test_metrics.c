/* SPDX-License-Identifier: MIT */
/* The Prometheus exposition built from a status reply: exact text of each
 * family, label escaping (a mailbox may be named anything), dry-run
 * counts apart, the histogram, and the text when no daemon answered. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "ctl_proto.h"
#include "metrics.h"
#include "util.h"

/* a status reply as the daemon sends it */
static const char status_line[] =
    "{\"ok\":true,\"version\":\"9.8.7\",\"pid\":42,\"uptime_s\":100,"
    "\"config\":\"/c\",\"generation\":3,\"dry_run\":false,"
    "\"sweep_seconds\":{\"le\":[0.001,0.5],"
    "\"full\":{\"count\":3,\"sum\":1.25,\"buckets\":[1,2]},"
    "\"incremental\":{\"count\":0,\"sum\":0.0,\"buckets\":[0,0]}},"
    "\"watchers\":["
    "{\"account\":\"work\",\"mailbox\":\"Say \\\"hi\\\" \\\\ now\\n\","
    "\"state\":\"idle\",\"actions\":{\"cron\":{\"delete\":4,"
    "\"would_move\":2}},\"last_sweep\":\"1970-01-02T00:00:00Z\","
    "\"reconnects\":1,\"last_error\":null},"
    "{\"account\":\"home\",\"mailbox\":\"INBOX\",\"state\":\"backoff\","
    "\"actions\":{},\"last_sweep\":null,\"reconnects\":7,"
    "\"last_error\":\"authentication failed\"}]}";

static char *
render(void)
{
    struct ctl_result *r = NULL;
    char *err = NULL, *text;

    assert_int_equal(ctl_result_parse(status_line, strlen(status_line), &r,
                                      &err), 0);
    text = metrics_render(r, 1000);
    ctl_result_free(r);
    return text;
}

static void
assert_has_line(const char *text, const char *line)
{
    size_t n = strlen(line);

    for (const char *p = text; p != NULL && *p; ) {
        const char *nl = strchr(p, '\n');
        size_t len = nl ? (size_t)(nl - p) : strlen(p);

        if (len == n && memcmp(p, line, n) == 0)
            return;
        p = nl ? nl + 1 : NULL;
    }
    fail_msg("no line \"%s\" in:\n%s", line, text);
}

static void
test_families(void **state)
{
    char *t = render();

    (void)state;
    assert_has_line(t, "# TYPE imapsweep_up gauge");
    assert_has_line(t, "imapsweep_up 1");
    assert_has_line(t, "imapsweep_build_info{version=\"9.8.7\"} 1");
    assert_has_line(t, "imapsweep_start_time_seconds 900");
    assert_has_line(t, "imapsweep_config_generation 3");
    assert_has_line(t, "imapsweep_dry_run 0");
    assert_has_line(t, "# TYPE imapsweep_watchers gauge");
    assert_has_line(t, "imapsweep_watchers{state=\"idle\"} 1");
    assert_has_line(t, "imapsweep_watchers{state=\"backoff\"} 1");
    assert_has_line(t, "imapsweep_watchers{state=\"connecting\"} 0");
    assert_has_line(t, "imapsweep_watchers{state=\"error\"} 0");
    assert_has_line(t, "# TYPE imapsweep_actions_total counter");
    assert_has_line(t, "imapsweep_actions_total{account=\"work\",mailbox="
                       "\"Say \\\"hi\\\" \\\\ now\\n\",rule=\"cron\","
                       "action=\"delete\"} 4");
    assert_has_line(t, "imapsweep_dry_run_actions_total{account=\"work\","
                       "mailbox=\"Say \\\"hi\\\" \\\\ now\\n\",rule=\"cron\","
                       "action=\"move\"} 2");
    assert_has_line(t, "imapsweep_reconnects_total{account=\"home\","
                       "mailbox=\"INBOX\"} 7");
    assert_has_line(t, "imapsweep_watcher_healthy{account=\"home\","
                       "mailbox=\"INBOX\"} 0");
    assert_has_line(t, "imapsweep_last_sweep_timestamp_seconds{account="
                       "\"work\",mailbox=\"Say \\\"hi\\\" \\\\ now\\n\"} "
                       "86400");
    /* never swept: no timestamp */
    assert_null(strstr(t, "imapsweep_last_sweep_timestamp_seconds{account="
                          "\"home\""));
    assert_has_line(t, "# TYPE imapsweep_sweep_duration_seconds histogram");
    assert_has_line(t, "imapsweep_sweep_duration_seconds_bucket{type=\"full\","
                       "le=\"0.001\"} 1");
    assert_has_line(t, "imapsweep_sweep_duration_seconds_bucket{type=\"full\","
                       "le=\"0.5\"} 2");
    assert_has_line(t, "imapsweep_sweep_duration_seconds_bucket{type=\"full\","
                       "le=\"+Inf\"} 3");
    assert_has_line(t, "imapsweep_sweep_duration_seconds_sum{type=\"full\"} "
                       "1.250000");
    assert_has_line(t, "imapsweep_sweep_duration_seconds_count{type="
                       "\"incremental\"} 0");
    /* a newline only ever ends a line: every line is a comment or a sample */
    for (const char *p = t; *p; p = strchr(p, '\n') + 1)
        assert_true(*p == '#' || strncmp(p, "imapsweep_", 10) == 0);
    assert_int_equal(t[strlen(t) - 1], '\n');
    free(t);
}

static void
test_no_histogram_from_an_old_daemon(void **state)
{
    static const char line[] =
        "{\"ok\":true,\"version\":\"0.1.0\",\"watchers\":[]}";
    struct ctl_result *r = NULL;
    char *err = NULL, *t;

    (void)state;
    assert_int_equal(ctl_result_parse(line, strlen(line), &r, &err), 0);
    t = metrics_render(r, 5);
    assert_null(strstr(t, "imapsweep_sweep_duration_seconds"));
    assert_has_line(t, "imapsweep_watchers{state=\"idle\"} 0");
    ctl_result_free(r);
    free(t);
}

static void
test_down(void **state)
{
    char *t = metrics_render_down();

    (void)state;
    assert_string_equal(t,
        "# HELP imapsweep_up 1 if imapsweepctl read the daemon's status, 0 "
        "if no daemon answered.\n"
        "# TYPE imapsweep_up gauge\n"
        "imapsweep_up 0\n");
    free(t);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_families),
        cmocka_unit_test(test_no_histogram_from_an_old_daemon),
        cmocka_unit_test(test_down),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
