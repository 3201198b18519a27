/* SPDX-License-Identifier: MIT */
/* imapc: drives the IMAP engine (imap_conn over transport and tls) against
 * a real server, for the integration tests and the memory measurement.
 * Not installed. Every line it prints is meant to be parsed by a test.
 *
 *   imapc [OPTIONS] run COMMAND...        each COMMAND sent as written
 *   imapc [OPTIONS] idle MAILBOX MS       wait for EXISTS while idling
 *   imapc [OPTIONS] hold N MAILBOX SECS   N idle sessions in one loop
 *
 * OPTIONS: --host H --port P --tls none|implicit|starttls --ca FILE
 *          --no-verify --user U --auth auto|login|plain (password from
 *          $IMAPC_PASSWORD) --tunnel CMD --timeout MS
 */
#include <getopt.h>
#include <malloc.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <uv.h>

#include "errors.h"
#include "imap_conn.h"
#include "log.h"
#include "tls.h"
#include "transport.h"
#include "util.h"

struct opts {
    const char *host, *ca, *user, *tunnel;
    uint16_t port;
    enum imap_tls_mode tls;
    enum imap_auth auth;
    bool verify;
    uint64_t timeout_ms;
};

struct session {
    struct opts *o;
    struct imap_conn *c;
    char **cmds;
    int n_cmds, next;
    int failures;
    const char *mailbox;
    bool idle_mode, saw_exists, done;
    unsigned index;
};

static uv_loop_t *loop;
static struct transport_pool *pool;
static struct tls_ctx *tls;
static unsigned n_ready, n_closed, n_total;
static int exit_code;

static void
print_resp(const struct imap_response *r)
{
    printf("%.*s%s\n", (int)r->line_len, r->line,
           r->line_truncated ? "..." : "");
}

static void next_cmd(struct session *s);

static bool
on_data(struct imap_conn *c, const struct imap_response *r, void *arg)
{
    (void)c;
    (void)arg;
    print_resp(r);
    return true;
}

static void
cmd_done(struct imap_conn *c, const struct imap_reply *r, void *arg)
{
    struct session *s = arg;

    (void)c;
    printf("= %s %s\n", imap_status_name(r->status), r->text ? r->text : "");
    if (r->status != IMAP_OK)
        s->failures++;
    if (r->status == IMAP_OK || r->status == IMAP_NO || r->status == IMAP_BAD)
        next_cmd(s);
}

static void
next_cmd(struct session *s)
{
    struct imap_build *b;
    struct imap_cmd_opts o = {.done = cmd_done, .untagged = on_data,
                              .arg = s};

    if (s->next >= s->n_cmds) {
        imap_conn_logout(s->c);
        return;
    }
    b = imap_conn_build(s->c);
    imap_build_atom(b, s->cmds[s->next++]);
    if (imap_conn_submit(s->c, b, &o) < 0) {
        printf("= SUBMIT-FAILED\n");
        s->failures++;
    }
}

static void
idle_noop_done(struct imap_conn *c, const struct imap_reply *r, void *arg)
{
    struct session *s = arg;

    (void)s;
    printf("= NOOP-AFTER-IDLE %s\n", imap_status_name(r->status));
    imap_conn_logout(c);
}

static void
select_done(struct imap_conn *c, const struct imap_reply *r, void *arg)
{
    struct session *s = arg;

    if (r->status != IMAP_OK) {
        printf("= SELECT %s %s\n", imap_status_name(r->status), r->text);
        s->failures++;
        imap_conn_logout(c);
        return;
    }
    if (s->idle_mode) {
        printf("= SELECTED\n");
        fflush(stdout);
    }
    imap_conn_idle(c, true);
}

static void
login_done(struct imap_conn *c, const struct imap_reply *r, void *arg)
{
    struct session *s = arg;

    if (n_total == 1)
        printf("= LOGIN %s %s\n", imap_status_name(r->status),
               r->text ? r->text : "");
    if (r->status != IMAP_OK) {
        s->failures++;
        if (r->status == IMAP_NO || r->status == IMAP_BAD)
            imap_conn_logout(c);
        return;
    }
    if (n_total == 1)
        printf("= CAPS %s\n", imap_conn_caps(c));
    if (s->mailbox != NULL)
        imap_conn_select(c, s->mailbox, false, select_done, s);
    else
        next_cmd(s);
}

static void
ev_ready(struct imap_conn *c, void *arg)
{
    struct session *s = arg;
    const char *pw = getenv("IMAPC_PASSWORD");

    if (n_total == 1) {
        const char *t = imap_conn_tls_describe(c);

        printf("= GREETING %s\n", t ? t : "plaintext");
    }
    if (imap_conn_state(c) == IMAP_CONN_AUTH) {
        struct imap_reply ok = {.status = IMAP_OK, .text = "PREAUTH"};

        login_done(c, &ok, s);
        return;
    }
    imap_conn_login(c, s->o->auth, s->o->user ? s->o->user : "",
                    pw ? pw : "", pw ? strlen(pw) : 0, false, login_done, s);
}

static void
ev_untagged(struct imap_conn *c, const struct imap_response *r, void *arg)
{
    struct session *s = arg;

    if (s->idle_mode && r->has_number && r->name != NULL &&
        strcmp(r->name, "EXISTS") == 0 && imap_conn_is_idling(c) &&
        !s->saw_exists) {
        struct imap_build *b = imap_conn_build(c);
        struct imap_cmd_opts o = {.done = idle_noop_done, .arg = s};

        s->saw_exists = true;
        printf("= EXISTS %u\n", r->number);
        fflush(stdout);
        /* a queued command must end IDLE with DONE */
        imap_build_atom(b, "NOOP");
        imap_conn_submit(c, b, &o);
        return;
    }
    if (n_total == 1 && !s->idle_mode)
        print_resp(r);
}

static void
ev_closed(struct imap_conn *c, int err, const char *msg, void *arg)
{
    struct session *s = arg;

    if (n_total == 1 || err != 0)
        printf("= CLOSED %s %s\n", err ? errors_name(err) : "OK", msg);
    if (err != 0)
        s->failures++;
    if (s->failures > 0)
        exit_code = 1;
    n_closed++;
    imap_conn_free(c);
    s->c = NULL;
}

static const struct imap_conn_events events = {
    .ready = ev_ready,
    .untagged = ev_untagged,
    .closed = ev_closed,
};

static struct imap_conn *
open_conn(struct opts *o, struct session *s)
{
    struct imap_conn_settings cs = {
        .account = "imapc",
        .host = o->host,
        .port = o->port,
        .tunnel = o->tunnel,
        .tls = o->tls,
        .tls_ctx = tls,
        .connect_timeout_ms = o->timeout_ms,
        .command_timeout_ms = o->timeout_ms,
        .idle_refresh_ms = 10 * 60 * 1000,
        .keepalive_s = 60,
        .allow_plaintext_auth = o->tls == IMAP_TLS_NONE,
    };

    return imap_conn_new(pool, &cs, &events, s);
}

static long
rss_kib(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long v = -1;

    if (f == NULL)
        return -1;
    while (fgets(line, sizeof(line), f) != NULL) {
        if (strncmp(line, "VmRSS:", 6) == 0)
            v = strtol(line + 6, NULL, 10);
    }
    fclose(f);
    return v;
}

static uv_timer_t tick;
static unsigned hold_secs;
static struct session *sessions;
static long rss_before;

static void
on_tick(uv_timer_t *t)
{
    static uint64_t all_ready_at;

    if (all_ready_at == 0) {
        n_ready = 0;
        for (unsigned i = 0; i < n_total; i++) {
            if (sessions[i].c != NULL && imap_conn_is_idling(sessions[i].c))
                n_ready++;
        }
    }
    if (n_ready == n_total && all_ready_at == 0) {
        long untrimmed = rss_kib(), rss;

        /* as the daemon does once set-ups settle */
        malloc_trim(0);
        rss = rss_kib();
        all_ready_at = uv_now(loop);
        printf("= READY %u idle sessions; RSS %ld KiB (before %ld KiB): "
               "%.1f KiB per session (%.1f before malloc_trim)\n", n_total,
               rss, rss_before, (double)(rss - rss_before) / n_total,
               (double)(untrimmed - rss_before) / n_total);
        fflush(stdout);
    }
    if (n_closed == n_total) {
        uv_timer_stop(t);
        uv_close((uv_handle_t *)t, NULL);
        return;
    }
    if (all_ready_at != 0 && uv_now(loop) - all_ready_at >= hold_secs * 1000) {
        for (unsigned i = 0; i < n_total; i++) {
            if (sessions[i].c != NULL)
                imap_conn_logout(sessions[i].c);
        }
        all_ready_at = UINT64_MAX / 2;
    }
}

static void
usage(void)
{
    fprintf(stderr, "usage: imapc [OPTIONS] run CMD... | idle MAILBOX MS | "
                    "hold N MAILBOX SECS\n");
    exit(64);
}

int
main(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"host", required_argument, NULL, 'H'},
        {"port", required_argument, NULL, 'p'},
        {"tls", required_argument, NULL, 't'},
        {"ca", required_argument, NULL, 'C'},
        {"no-verify", no_argument, NULL, 'n'},
        {"user", required_argument, NULL, 'u'},
        {"auth", required_argument, NULL, 'a'},
        {"tunnel", required_argument, NULL, 'T'},
        {"timeout", required_argument, NULL, 'o'},
        {"trace", no_argument, NULL, 'x'},
        {NULL, 0, NULL, 0},
    };
    struct opts o = {.host = "127.0.0.1", .port = 143, .verify = true,
                     .timeout_ms = 10000};
    const char *mode;
    int c;

    signal(SIGPIPE, SIG_IGN);
    log_init();
    log_set_level(LL_WARNING);
    while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        switch (c) {
        case 'H': o.host = optarg; break;
        case 'p': o.port = (uint16_t)strtoul(optarg, NULL, 10); break;
        case 'C': o.ca = optarg; break;
        case 'n': o.verify = false; break;
        case 'u': o.user = optarg; break;
        case 'T': o.tunnel = optarg; break;
        case 'o': o.timeout_ms = strtoull(optarg, NULL, 10); break;
        case 'x': log_set_level(LL_TRACE); break;
        case 't':
            o.tls = strcmp(optarg, "implicit") == 0   ? IMAP_TLS_IMPLICIT
                    : strcmp(optarg, "starttls") == 0 ? IMAP_TLS_STARTTLS
                                                      : IMAP_TLS_NONE;
            break;
        case 'a':
            o.auth = strcmp(optarg, "login") == 0   ? IMAP_AUTH_LOGIN
                     : strcmp(optarg, "plain") == 0 ? IMAP_AUTH_PLAIN
                                                    : IMAP_AUTH_AUTO;
            break;
        default:
            usage();
        }
    }
    if (optind >= argc)
        usage();
    mode = argv[optind++];
    loop = uv_default_loop();
    pool = transport_pool_new(loop);
    if (o.tls != IMAP_TLS_NONE) {
        char *err = NULL;

        tls = tls_ctx_new(o.ca, o.verify, &err);
        if (tls == NULL) {
            printf("= TLS-CONTEXT %s\n", err);
            return 1;
        }
    }
    if (strcmp(mode, "run") == 0) {
        struct session s = {.o = &o, .cmds = argv + optind,
                            .n_cmds = argc - optind};

        n_total = 1;
        s.c = open_conn(&o, &s);
        uv_run(loop, UV_RUN_DEFAULT);
        if (s.failures > 0)
            exit_code = 1;
    } else if (strcmp(mode, "idle") == 0 && argc - optind == 2) {
        struct session s = {.o = &o, .mailbox = argv[optind],
                            .idle_mode = true};

        n_total = 1;
        o.timeout_ms = strtoull(argv[optind + 1], NULL, 10);
        s.c = open_conn(&o, &s);
        uv_run(loop, UV_RUN_DEFAULT);
        if (!s.saw_exists)
            exit_code = 1;
    } else if (strcmp(mode, "hold") == 0 && argc - optind == 3) {
        n_total = (unsigned)strtoul(argv[optind], NULL, 10);
        hold_secs = (unsigned)strtoul(argv[optind + 2], NULL, 10);
        sessions = xcalloc(n_total, sizeof(*sessions));
        rss_before = rss_kib();
        for (unsigned i = 0; i < n_total; i++) {
            sessions[i].o = &o;
            sessions[i].mailbox = argv[optind + 1];
            sessions[i].index = i;
            sessions[i].c = open_conn(&o, &sessions[i]);
        }
        uv_timer_init(loop, &tick);
        uv_timer_start(&tick, on_tick, 50, 50);
        uv_run(loop, UV_RUN_DEFAULT);
        printf("= DONE %u sessions, %u ready\n", n_total, n_ready);
        free(sessions);
        if (n_ready != n_total)
            exit_code = 1;
    } else {
        usage();
    }
    transport_pool_free(pool);
    tls_ctx_unref(tls);
    uv_run(loop, UV_RUN_DEFAULT);
    uv_loop_close(loop);
    return exit_code;
}
