/* SPDX-License-Identifier: MIT */
/* The control protocol: request splitting (words and the JSON form), the
 * exact text of the daemon's replies, and reading them back as
 * imapsweepctl does. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "config.h"
#include "ctl_proto.h"
#include "explain.h"
#include "util.h"
#include "watcher.h"

static void
free_words(char **words, int n)
{
    for (int i = 0; i < n; i++)
        free(words[i]);
    free(words);
}

static void
check_split(const char *line, int want_n, const char *const *want)
{
    char **words = NULL;
    int n = ctl_request_split(line, strlen(line), &words);

    assert_int_equal(n, want_n);
    for (int i = 0; i < n; i++)
        assert_string_equal(words[i], want[i]);
    if (n > 0)
        assert_null(words[n]);
    free_words(words, n);
}

static void
test_split_words(void **state)
{
    (void)state;
    check_split("status", 1, (const char *const[]){"status"});
    check_split("  sweep\twork  INBOX ", 3,
                (const char *const[]){"sweep", "work", "INBOX"});
    check_split("sweep work \"Old Mail\"", 3,
                (const char *const[]){"sweep", "work", "Old Mail"});
    check_split("sweep a\\ b \"q\\\"x\"", 3,
                (const char *const[]){"sweep", "a b", "q\"x"});
    check_split("sweep \"\"", 2, (const char *const[]){"sweep", ""});
    check_split("", 0, NULL);
    check_split("   ", 0, NULL);
    check_split("sweep \"open", -1, NULL);
    check_split("sweep x\\", -1, NULL);
}

static void
test_split_json(void **state)
{
    (void)state;
    check_split("{\"cmd\": \"sweep\", \"args\": [\"work\", \"Old Mail\"]}", 3,
                (const char *const[]){"sweep", "work", "Old Mail"});
    check_split(" {\"cmd\":\"status\"}", 1, (const char *const[]){"status"});
    check_split("{\"cmd\":\"status\",\"args\":[]}", 1,
                (const char *const[]){"status"});
    check_split("{\"cmd\": 1}", -1, NULL);
    check_split("{\"args\": []}", -1, NULL);
    check_split("{\"cmd\": \"sweep\", \"args\": \"x\"}", -1, NULL);
    check_split("{\"cmd\": \"sweep\", \"args\": [\"a\", 2]}", -1, NULL);
    check_split("{\"cmd\": \"a\", \"cmd\": \"b\"}", -1, NULL);
    check_split("{\"cmd\": \"status\"", -1, NULL);
}

static void
test_request_encode(void **state)
{
    static const char *const args[] = {"work", "Old Mail"};
    char *line;
    char **words = NULL;
    int n;

    (void)state;
    line = ctl_request_encode("sweep", args, 2);
    assert_string_equal(line,
                        "{\"cmd\":\"sweep\",\"args\":[\"work\",\"Old Mail\"]}");
    /* what the client sends, the server splits back */
    n = ctl_request_split(line, strlen(line), &words);
    assert_int_equal(n, 3);
    assert_string_equal(words[2], "Old Mail");
    free_words(words, n);
    free(line);
    line = ctl_request_encode("status", NULL, 0);
    assert_string_equal(line, "{\"cmd\":\"status\",\"args\":[]}");
    free(line);
    assert_null(ctl_request_encode("\xff", NULL, 0));
    /* an argument is never dropped: "sweep work <latin-1>" must not
     * become "sweep work" (every mailbox) */
    {
        const char *bad[] = {"work", "Entw\xfcrfe"};

        assert_null(ctl_request_encode("sweep", bad, 2));
    }
}

static void
test_simple_replies(void **state)
{
    char *r;

    (void)state;
    r = ctl_reply_error("no account \"x\"");
    assert_string_equal(r, "{\"ok\":false,\"error\":\"no account \\\"x\\\"\"}");
    free(r);
    r = ctl_reply_version("1.2.3");
    assert_string_equal(r, "{\"ok\":true,\"version\":\"1.2.3\"}");
    free(r);
    r = ctl_reply_reloaded(7);
    assert_string_equal(r, "{\"ok\":true,\"generation\":7}");
    free(r);
    /* replies are ASCII: the socket's clients need not decode UTF-8 */
    r = ctl_reply_error("Entw\xc3\xbcrfe");
    assert_string_equal(r, "{\"ok\":false,\"error\":\"Entw\\u00FCrfe\"}");
    free(r);
}

static void
test_status_reply(void **state)
{
    static const struct watcher_count counts[] = {
        {.rule = "cron", .action = "delete", .dry = false, .n = 4},
        {.rule = "cron", .action = "move", .dry = true, .n = 2},
        {.rule = "old", .action = "trash", .dry = false, .n = 1},
    };
    static const char *const notes[] = {"server lacks UIDPLUS"};
    struct ctl_daemon_info info = {
        .version = "0.1.0", .pid = 42, .uptime_s = 90,
        .config = "/etc/imapsweep/imapsweep.yaml", .generation = 3,
        .dry_run = false,
    };
    struct watcher_status st = {
        .account = "work", .mailbox = "INBOX", .state = WATCHER_IDLE,
        .state_since = (uint64_t)time(NULL) + 3600, /* clock went back */
        .shared = false, .capabilities = "IMAP4REV1 IDLE",
        .uidvalidity = 17, .messages = 9, .uid_swept = 30,
        .counts = counts, .n_counts = 3, .last_sweep = 86400 + 61,
        .last_sweep_ms = 12, .reconnects = 1, .last_error = NULL,
        .notes = notes, .n_notes = 1,
    };
    struct ctl_reply *r = ctl_reply_status_new(&info);
    struct ctl_result *res = NULL;
    char *line, *err = NULL;

    (void)state;
    ctl_reply_status_add(r, &st);
    st.mailbox = "Archive";
    st.state = WATCHER_BACKOFF;
    st.shared = true;
    st.via = WATCHER_VIA_NOTIFY;
    st.last_event = (uint64_t)time(NULL) + 10; /* clock went back */
    st.capabilities = "";
    st.n_counts = 0;
    st.last_sweep = 0;
    st.last_error = "connection refused";
    st.n_notes = 0;
    ctl_reply_status_add(r, &st);
    line = ctl_reply_finish(r);
    /* the keys and their order are what scripts read: byte for byte */
    assert_string_equal(line,
        "{\"ok\":true,\"version\":\"0.1.0\",\"pid\":42,\"uptime_s\":90,"
        "\"config\":\"/etc/imapsweep/imapsweep.yaml\",\"generation\":3,"
        "\"dry_run\":false,\"watchers\":["
        "{\"account\":\"work\",\"mailbox\":\"INBOX\",\"state\":\"idle\","
        "\"state_s\":0,\"shared\":false,\"watched_by\":\"idle\","
        "\"last_event_s\":null,\"capabilities\":[\"IMAP4REV1\","
        "\"IDLE\"],\"uidvalidity\":17,\"messages\":9,\"uid_swept\":30,"
        "\"actions\":{\"cron\":{\"delete\":4,\"would_move\":2},"
        "\"old\":{\"trash\":1}},\"last_sweep\":\"1970-01-02T00:01:01Z\","
        "\"last_sweep_ms\":12,\"reconnects\":1,\"last_error\":null,"
        "\"notes\":[\"server lacks UIDPLUS\"]},"
        "{\"account\":\"work\",\"mailbox\":\"Archive\",\"state\":\"backoff\","
        "\"state_s\":0,\"shared\":true,\"watched_by\":\"notify\","
        "\"last_event_s\":0,\"capabilities\":[],"
        "\"uidvalidity\":17,\"messages\":9,\"uid_swept\":30,\"actions\":{},"
        "\"last_sweep\":null,\"last_sweep_ms\":12,\"reconnects\":1,"
        "\"last_error\":\"connection refused\",\"notes\":[]}]}");

    assert_int_equal(ctl_result_parse(line, strlen(line), &res, &err), 0);
    assert_true(res->ok);
    assert_null(res->error);
    assert_string_equal(res->version, "0.1.0");
    assert_int_equal(res->pid, 42);
    assert_int_equal(res->uptime_s, 90);
    assert_int_equal(res->generation, 3);
    assert_false(res->dry_run);
    assert_int_equal(res->n_watchers, 2);
    assert_string_equal(res->watchers[0].account, "work");
    assert_string_equal(res->watchers[0].mailbox, "INBOX");
    assert_string_equal(res->watchers[0].state, "idle");
    assert_string_equal(res->watchers[0].watched_by, "idle");
    assert_int_equal(res->watchers[0].last_event_s, -1);
    assert_string_equal(res->watchers[1].watched_by, "notify");
    assert_int_equal(res->watchers[1].last_event_s, 0);
    assert_int_equal(res->watchers[0].messages, 9);
    assert_int_equal(res->watchers[0].n_counts, 3);
    assert_string_equal(res->watchers[0].counts[1].rule, "cron");
    assert_string_equal(res->watchers[0].counts[1].kind, "would_move");
    assert_int_equal(res->watchers[0].counts[1].n, 2);
    assert_string_equal(res->watchers[0].counts[2].rule, "old");
    assert_string_equal(res->watchers[0].last_sweep, "1970-01-02T00:01:01Z");
    assert_int_equal(res->watchers[0].last_sweep_ms, 12);
    assert_null(res->watchers[0].last_error);
    assert_int_equal(res->watchers[0].n_notes, 1);
    assert_string_equal(res->watchers[0].notes[0], "server lacks UIDPLUS");
    assert_null(res->watchers[1].last_sweep);
    assert_string_equal(res->watchers[1].last_error, "connection refused");
    assert_int_equal(res->watchers[1].n_counts, 0);
    assert_int_equal(res->n_swept, 0);
    ctl_result_free(res);
    free(line);
}

/* Text from a server (an error reply, capabilities) need not be UTF-8.
 * It used to vanish from the reply (jansson refuses such a string), so a
 * watcher whose last sweep failed with "NO ... \xe4" showed no last_error
 * and status --check called it healthy; an error reply quoting such text
 * became "cannot encode reply". Invalid bytes become U+FFFD instead. */
static void
test_replies_keep_text_that_is_not_utf8(void **state)
{
    static const char *const notes[] = {"note \xff"};
    struct ctl_daemon_info info = {
        .version = "1.0", .pid = 1, .config = "/etc/imapsweep\xe9.yaml",
    };
    struct watcher_status st = {
        .account = "work", .mailbox = "INBOX", .state = WATCHER_IDLE,
        .capabilities = "IMAP4rev1 X-\xfe", .notes = notes, .n_notes = 1,
        .last_error = "SELECT failed: NO Zugriff verweigert \xe4",
    };
    struct ctl_reply *r;
    struct ctl_result *res = NULL;
    char *line, *err = NULL;

    (void)state;
    r = ctl_reply_status_new(&info);
    ctl_reply_status_add(r, &st);
    line = ctl_reply_finish(r);
    assert_int_equal(ctl_result_parse(line, strlen(line), &res, &err), 0);
    assert_int_equal(res->n_watchers, 1);
    assert_non_null(res->watchers[0].last_error);
    assert_string_equal(res->watchers[0].last_error,
                        "SELECT failed: NO Zugriff verweigert \xef\xbf\xbd");
    assert_false(ctl_watcher_healthy(&res->watchers[0]));
    assert_int_equal(res->watchers[0].n_notes, 1);
    assert_string_equal(res->watchers[0].notes[0], "note \xef\xbf\xbd");
    assert_string_equal(res->config, "/etc/imapsweep\xef\xbf\xbd.yaml");
    ctl_result_free(res);
    free(line);

    line = ctl_reply_error("no account \"\xc3\"");
    assert_string_equal(line,
        "{\"ok\":false,\"error\":\"no account \\\"\\uFFFD\\\"\"}");
    free(line);

    r = ctl_reply_swept_new();
    ctl_reply_swept_add(r, "work", "Entw\xfcrfe");
    line = ctl_reply_finish(r);
    assert_int_equal(ctl_result_parse(line, strlen(line), &res, &err), 0);
    assert_int_equal(res->n_swept, 1);
    assert_string_equal(res->swept[0].mailbox, "Entw\xef\xbf\xbdrfe");
    ctl_result_free(res);
    free(line);
}

static void
test_swept_reply(void **state)
{
    struct ctl_reply *r;
    struct ctl_result *res = NULL;
    char *line, *err = NULL;

    (void)state;
    r = ctl_reply_swept_new();
    ctl_reply_swept_add(r, "work", "INBOX");
    ctl_reply_swept_add(r, "work", "Old Mail");
    line = ctl_reply_finish(r);
    assert_string_equal(line,
        "{\"ok\":true,\"swept\":[{\"account\":\"work\",\"mailbox\":\"INBOX\"},"
        "{\"account\":\"work\",\"mailbox\":\"Old Mail\"}]}");
    assert_int_equal(ctl_result_parse(line, strlen(line), &res, &err), 0);
    assert_int_equal(res->n_swept, 2);
    assert_string_equal(res->swept[1].mailbox, "Old Mail");
    assert_int_equal(res->n_watchers, 0);
    ctl_result_free(res);
    free(line);
    /* a reply dropped on an error path */
    r = ctl_reply_swept_new();
    ctl_reply_swept_add(r, "work", "INBOX");
    ctl_reply_free(r);
    ctl_reply_free(NULL);
}

static void
test_reload_failed(void **state)
{
    static const char yaml[] = "accounts:\n  - {name: a, port: x}\n";
    struct config_diag diag;
    struct config *c = NULL;
    struct ctl_result *res = NULL;
    char *line, *err = NULL, *first;

    (void)state;
    config_diag_init(&diag);
    assert_true(config_load_buffer("t.yaml", yaml, strlen(yaml), &c,
                                   &diag) < 0);
    assert_true(diag.n_errors > 1);
    line = ctl_reply_reload_failed(&diag);
    assert_int_equal(ctl_result_parse(line, strlen(line), &res, &err), 0);
    assert_false(res->ok);
    assert_int_equal(res->n_errors, diag.n_errors);
    first = config_diag_format(&diag.errors[0]);
    assert_string_equal(res->errors[0], first);
    free(first);
    first = xasprintf("configuration has %zu errors; the previous one stays "
                      "in force", diag.n_errors);
    assert_string_equal(res->error, first);
    free(first);
    ctl_result_free(res);
    free(line);
    config_diag_free(&diag);
}

static void
test_parse_bad(void **state)
{
    struct ctl_result *res = NULL;
    char *err = NULL;

    (void)state;
    assert_int_equal(ctl_result_parse("[1]", 3, &res, &err), -1);
    assert_null(res);
    /* valid JSON but no object: a reason all the same (found by
     * fuzz_ctl_proto; it was "") */
    assert_string_equal(err, "not a JSON object");
    free(err);
    err = NULL;
    assert_int_equal(ctl_result_parse("{\"ok\":", 6, &res, &err), -1);
    assert_non_null(err);
    assert_true(*err != '\0');
    free(err);
    /* members of the wrong type read as absent */
    assert_int_equal(ctl_result_parse("{\"ok\":1,\"error\":2,\"watchers\":{}}",
                                      32, &res, &err), 0);
    assert_false(res->ok);
    assert_null(res->error);
    assert_int_equal(res->n_watchers, 0);
    ctl_result_free(res);
    ctl_result_free(NULL);
}

/* explain: the report survives the JSON both ways, byte for byte as text
 * (a subject's control characters escaped, unknown answers kept). */
static void
test_explain_reply(void **state)
{
    struct explain_part parts0[] = {
        {.text = "whose From contains \"backup@example.org\"", .server = true,
         .holds = 1},
        {.text = "whose Subject matches /^nightly \\d+$/", .server = false,
         .holds = -1},
        {.text = "older than 14d", .server = true, .holds = 0},
    };
    struct explain_part parts1[] = {
        {.text = "whose From contains \"Cron Daemon\"", .server = true,
         .holds = 1},
    };
    struct explain_rule rules[] = {
        {.name = "backups", .does = "delete messages ...", .matches = 0,
         .parts = parts0, .n_parts = 3},
        {.name = "cron", .does = "delete messages whose ...", .dry = true,
         .matches = 1, .parts = parts1, .n_parts = 1},
    };
    struct explain_report r = {
        .account = "work", .mailbox = "INBOX", .uid = 42,
        .uidvalidity = 1700000001, .watched = true, .found = true,
        .from = "\"Cron Daemon\" <root@host>", .subject = "a\x1b[2Jb",
        .date = NULL, .message_id = "<c1@host>", .flags = "\\Seen",
        .size = 2048, .rules = rules, .n_rules = 2, .n_later = 3,
        .verdict_rule = "cron", .acts = true,
        .verdict = "rule cron would delete it, but only previews (dry run): "
                   "nothing is done",
    };
    struct explain_report bad = {.error = "cannot reach work: refused"};
    struct ctl_result *res = NULL;
    char *line = ctl_reply_explain(&r), *err = NULL, *want, *got;

    (void)state;
    assert_int_equal(ctl_result_parse(line, strlen(line), &res, &err), 0);
    assert_true(res->ok);
    assert_non_null(res->explain);
    assert_int_equal(res->explain->rules[0].parts[1].holds, -1);
    assert_null(res->explain->date);
    want = explain_report_text(&r);
    got = explain_report_text(res->explain);
    assert_string_equal(got, want);
    assert_non_null(strstr(got, "Subject: a\\x1b[2Jb\n"));
    assert_non_null(strstr(got, "  ?    whose Subject matches"));
    assert_non_null(strstr(got, "(3 later rules not consulted"));
    free(want);
    free(got);
    free(line);
    ctl_result_free(res);
    line = ctl_reply_explain(&bad);
    assert_string_equal(line, "{\"ok\":false,\"error\":\"cannot reach work: "
                              "refused\"}");
    free(line);
}

static void
test_default_paths(void **state)
{
    char *p, *err = NULL;

    (void)state;
    setenv("XDG_CONFIG_HOME", "/x/config", 1);
    setenv("XDG_RUNTIME_DIR", "/x/run", 1);
    setenv("HOME", "/x/home", 1);
    /* root keeps the system's paths, whatever the environment says */
    p = ctl_default_config(0, &err);
    assert_string_equal(p, CTL_SYSTEM_CONFIG);
    free(p);
    p = ctl_socket_dir(0, false, &err);
    assert_string_equal(p, "/run/imapsweep");
    free(p);
    /* a user: XDG */
    p = ctl_default_config(1000, &err);
    assert_string_equal(p, "/x/config/imapsweep/imapsweep.yaml");
    free(p);
    p = ctl_socket_dir(1000, false, &err);
    assert_string_equal(p, "/x/run/imapsweep");
    free(p);
    p = ctl_socket_dir(1000, true, &err);
    assert_string_equal(p, "/run/imapsweep");
    free(p);
    /* XDG_CONFIG_HOME empty or relative: ignored, HOME/.config */
    setenv("XDG_CONFIG_HOME", "relative", 1);
    p = ctl_default_config(1000, &err);
    assert_string_equal(p, "/x/home/.config/imapsweep/imapsweep.yaml");
    free(p);
    unsetenv("XDG_CONFIG_HOME");
    p = ctl_default_config(1000, &err);
    assert_string_equal(p, "/x/home/.config/imapsweep/imapsweep.yaml");
    free(p);
    /* no runtime directory: no default socket, and why */
    unsetenv("XDG_RUNTIME_DIR");
    assert_null(ctl_socket_dir(1000, false, &err));
    assert_non_null(strstr(err, "XDG_RUNTIME_DIR"));
    free(err);
    err = NULL;
    setenv("XDG_RUNTIME_DIR", "run", 1);
    assert_null(ctl_socket_dir(1000, false, &err));
    free(err);
}

static void
test_instance_socket(void **state)
{
    static const char *const bad[] = {
        "", ".", "..", ".hidden", "a/b", "../x", "a b", "x\n", "\xc3\xa9",
        "12345678901234567890123456789012345678901234567890123456789012345",
    };
    char *p;

    (void)state;
    p = ctl_instance_socket("/run/imapsweep", "shard1");
    assert_string_equal(p, "/run/imapsweep/shard1.sock");
    free(p);
    p = ctl_instance_socket("/d", "a.b_c-d@e:f");
    assert_string_equal(p, "/d/a.b_c-d@e:f.sock");
    free(p);
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_null(ctl_instance_socket("/d", bad[i]));
}

static void
test_sweep_seconds(void **state)
{
    struct watcher_stats stats;
    struct ctl_daemon_info info = {
        .version = "0.1.0", .pid = 1, .config = "c", .generation = 1,
        .stats = &stats,
    };
    struct ctl_reply *r;
    struct ctl_result *res = NULL;
    char *line, *err = NULL;

    (void)state;
    memset(&stats, 0, sizeof(stats));
    watcher_sweep_hist_add(&stats.full, 3000);         /* 3 ms */
    watcher_sweep_hist_add(&stats.full, 1000);         /* on a bound */
    watcher_sweep_hist_add(&stats.full, 90000000);     /* 90 s: +Inf */
    watcher_sweep_hist_add(&stats.incremental, 400);
    r = ctl_reply_status_new(&info);
    line = ctl_reply_finish(r);
    assert_non_null(strstr(line, "\"sweep_seconds\":{\"le\":[0.001,0.0025,"));
    assert_int_equal(ctl_result_parse(line, strlen(line), &res, &err), 0);
    assert_true(res->has_hist);
    assert_int_equal(res->n_bounds, WATCHER_SWEEP_BUCKETS - 1);
    assert_true(res->bounds[0] == 0.001);
    assert_true(res->bounds[res->n_bounds - 1] == 60.0);
    assert_int_equal(res->full.count, 3);
    assert_true(res->full.sum > 90.0039 && res->full.sum < 90.0041);
    assert_int_equal(res->full.le[0], 1);               /* <= 1 ms */
    assert_int_equal(res->full.le[1], 1);               /* <= 2.5 ms */
    assert_int_equal(res->full.le[2], 2);               /* <= 5 ms */
    assert_int_equal(res->full.le[res->n_bounds - 1], 2); /* <= 60 s */
    assert_int_equal(res->incremental.count, 1);
    assert_int_equal(res->incremental.le[0], 1);
    ctl_result_free(res);
    free(line);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_split_words),
        cmocka_unit_test(test_split_json),
        cmocka_unit_test(test_request_encode),
        cmocka_unit_test(test_simple_replies),
        cmocka_unit_test(test_status_reply),
        cmocka_unit_test(test_swept_reply),
        cmocka_unit_test(test_replies_keep_text_that_is_not_utf8),
        cmocka_unit_test(test_reload_failed),
        cmocka_unit_test(test_parse_bad),
        cmocka_unit_test(test_explain_reply),
        cmocka_unit_test(test_default_paths),
        cmocka_unit_test(test_instance_socket),
        cmocka_unit_test(test_sweep_seconds),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
