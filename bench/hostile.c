/* SPDX-License-Identifier: MIT */
/* bench/hostile: what a hostile or merely large server costs one sweep,
 * measured in-process over the unit-test library's scripted server (no
 * sockets, no Dovecot): `make bench-hostile`.
 *
 *   hostile descending N   one SEARCH line of N UIDs in descending order,
 *                          every other one (2N, 2N-2, ... 2: adjacent
 *                          UIDs would merge into one range), in a mailbox
 *                          that has them: the time the loop spends on
 *                          that one response
 *   hostile liar N         a mailbox of 3 messages whose server answers
 *                          the top with UID N and every search with
 *                          "ESEARCH ... ALL 1:N": time until the
 *                          connection is given up, and peak RSS
 *
 * Prints one line: case, N, milliseconds, peak RSS in KiB, outcome. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "buf.h"
#include "config.h"
#include "imap_conn.h"
#include "log.h"
#include "sweep.h"
#include "testlib.h"
#include "util.h"

static const char *yaml =
    "accounts:\n"
    "  - {name: acct, host: imap.test, user: alice, password: s3cret,"
    "     tls: none, mailboxes: [INBOX]}\n"
    "rules:\n"
    "  - {name: cron, match: {from: Cron Daemon}, action: delete}\n";

struct run {
    uv_loop_t loop;
    struct fakenet *net;
    struct fakesrv *f;
    struct imap_conn *c;
    int closed, done, err;
    char why[512];
};

static void
ev_closed(struct imap_conn *c, int err, const char *msg, void *arg)
{
    struct run *r = arg;

    (void)c;
    r->closed = 1;
    r->err = err;
    util_strlcpy(r->why, msg, sizeof(r->why));
}

static const struct imap_conn_events events = {.closed = ev_closed};

static void
on_done(struct sweep *s, const struct sweep_result *res, void *arg)
{
    struct run *r = arg;

    (void)s;
    r->done = 1;
    if (res->err != 0 && r->err == 0)
        r->err = res->err;
}

static double
now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

/* VmHWM: this program's peak resident size (ru_maxrss would include the
 * parent's, from before exec). */
static long
peak_kib(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long kib = -1;

    while (f != NULL && fgets(line, sizeof(line), f) != NULL) {
        if (strncmp(line, "VmHWM:", 6) == 0)
            kib = strtol(line + 6, NULL, 10);
    }
    if (f != NULL)
        fclose(f);
    return kib;
}

/* The next client command's tag (the text is not checked here). */
static char *
next_tag(struct run *r)
{
    struct fakesrv_cmd cmd;

    if (!fakesrv_wait_line(r->f, 10000) || !fakesrv_next_cmd(r->f, &cmd)) {
        fprintf(stderr, "hostile: the client sent no command\n");
        exit(1);
    }
    free(cmd.text);
    return cmd.tag;
}

static void
noop_cb(struct imap_conn *c, const struct imap_reply *r, void *arg)
{
    (void)c;
    (void)r;
    (void)arg;
}

int
main(int argc, char **argv)
{
    struct imap_conn_settings s = {
        .account = "acct", .mailbox = "INBOX", .host = "imap.test",
        .port = 143, .tls = IMAP_TLS_NONE, .command_timeout_ms = 600000,
        .allow_plaintext_auth = true,
    };
    struct config *config = NULL;
    struct config_diag diag;
    struct sweep_memo memo = {0};
    const struct rule *rules[1];
    struct sweep_params p;
    struct run r;
    bool liar;
    unsigned long n;
    char *tag, *t_top, *t_search;
    double t0, t1;
    struct buf line;

    if (argc != 3 || (strcmp(argv[1], "liar") != 0 &&
                      strcmp(argv[1], "descending") != 0)) {
        fprintf(stderr, "usage: hostile liar|descending N\n");
        return 64;
    }
    liar = strcmp(argv[1], "liar") == 0;
    n = strtoul(argv[2], NULL, 10);
    log_set_level(LL_ERROR);
    config_diag_init(&diag);
    if (config_load_buffer("b.yaml", yaml, strlen(yaml), &config,
                           &diag) < 0)
        return 1;
    config_diag_free(&diag);
    rules[0] = config->rules[0];
    memset(&r, 0, sizeof(r));
    uv_loop_init(&r.loop);
    r.net = fakenet_new(&r.loop);
    r.f = fakenet_open(r.net);
    r.c = imap_conn_new_with_transport(fakesrv_transport(r.f), &r.loop, &s,
                                       &events, &r);
    testlib_settle(&r.loop);
    fakesrv_send(r.f, liar ? "* PREAUTH [CAPABILITY IMAP4rev1 UIDPLUS "
                             "ESEARCH] hi\r\n"
                           : "* PREAUTH [CAPABILITY IMAP4rev1 UIDPLUS] "
                             "hi\r\n");
    imap_conn_select(r.c, "INBOX", false, noop_cb, NULL);
    tag = next_tag(&r);
    fakesrv_printf(r.f, "* %lu EXISTS\r\n* OK [UIDVALIDITY 5] x\r\n",
                   liar ? 3UL : n);
    fakesrv_reply(r.f, tag, "OK [READ-WRITE] selected");
    free(tag);

    memset(&p, 0, sizeof(p));
    p.conn = r.c;
    p.config = config;
    p.account = &config->accounts[0];
    p.mailbox = "INBOX";
    p.rules = rules;
    p.n_rules = 1;
    p.memo = &memo;
    p.uid_lo = 1;
    p.uidvalidity = 5;
    p.audit = CONFIG_AUDIT_MESSAGES; /* the default: per-message lines */
    sweep_start(&p, on_done, &r);
    t_top = next_tag(&r);
    buf_init(&line, BUF_NOCAP);
    t0 = now_ms();
    if (liar) {
        t_search = next_tag(&r);
        fakesrv_printf(r.f, "* 3 FETCH (UID %lu)\r\n", n);
        fakesrv_reply(r.f, t_top, "OK done");
        fakesrv_printf(r.f, "* ESEARCH (TAG \"%s\") UID ALL 1:%lu\r\n",
                       t_search, n);
        fakesrv_reply(r.f, t_search, "OK done");
        /* an honest client gives up; one that believes it acts on it:
         * answer whatever comes next, up to the sweep's end */
        for (;;) {
            testlib_settle(&r.loop);
            if (r.closed || r.done)
                break;
            if (fakesrv_wait_line(r.f, 10)) {
                tag = next_tag(&r);
                fakesrv_reply(r.f, tag, "OK done");
                free(tag);
            }
        }
    } else {
        fakesrv_printf(r.f, "* %lu FETCH (UID %lu)\r\n", n, 2 * n);
        fakesrv_reply(r.f, t_top, "OK done");
        t_search = next_tag(&r);
        buf_append_str(&line, "* SEARCH");
        for (unsigned long u = 2 * n; u > 0; u -= 2)
            buf_printf(&line, " %lu", u);
        buf_append_str(&line, "\r\n");
        t0 = now_ms();
        fakesrv_send_bytes(r.f, line.data, line.len);
        t1 = now_ms();
        fakesrv_reply(r.f, t_search, "OK done");
        testlib_settle(&r.loop);
        printf("%s %lu: %.1f ms, peak RSS %ld KiB, %s\n", argv[1], n,
               t1 - t0, peak_kib(),
               r.closed ? r.why
                        : fakesrv_wait_line(r.f, 1000)
                              ? "accepted: the sweep went on to its fetch"
                              : "no next command");
        goto out;
    }
    t1 = now_ms();
    printf("%s %lu: %.1f ms, peak RSS %ld KiB, %s\n", argv[1], n, t1 - t0,
           peak_kib(),
           r.closed ? r.why : r.done ? "sweep finished" : "still going");
out:
    buf_free(&line);
    free(t_top);
    free(t_search);
    imap_conn_free(r.c);
    uv_run(&r.loop, UV_RUN_DEFAULT);
    fakenet_free(r.net);
    sweep_memo_free(&memo);
    config_unref(config);
    uv_loop_close(&r.loop);
    return 0;
}
