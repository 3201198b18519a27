/* SPDX-License-Identifier: MIT */
/* daemon_explain: "why was this deleted?" from the control socket
 * (imapsweepctl explain) and from the command line without a running
 * daemon (imapsweepd --explain). Both run src/sweep's explain. */
#include "daemon.h"
#include "daemon_private.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "account.h"
#include "config.h"
#include "ctl_proto.h"
#include "explain.h"
#include "gate.h"
#include "log.h"
#include "transport.h"
#include "util.h"

/* One explanation in flight for a control client. Owned by the daemon's
 * list until its callback (or the daemon stopping) ends it. */
struct daemon_explain {
    struct daemon *d;
    struct explain *ex;
    struct control_req *req;
    struct daemon_explain *prev, *next;
};

static void
unlink_explain(struct daemon_explain *de)
{
    struct daemon *d = de->d;

    if (de->prev != NULL)
        de->prev->next = de->next;
    else
        d->explains = de->next;
    if (de->next != NULL)
        de->next->prev = de->prev;
}

static void
on_explained(const struct explain_report *r, void *arg)
{
    struct daemon_explain *de = arg;

    /* the explain logs out and frees itself after this */
    unlink_explain(de);
    control_req_reply(de->req, ctl_reply_explain(r));
    free(de);
}

/* Parse a UID: 1 to 2^32-1, digits only. */
static bool
parse_uid(const char *s, uint32_t *uid_r)
{
    uint32_t v;

    if (util_parse_u32(s, strlen(s), &v) < 0 || v == 0)
        return false;
    *uid_r = v;
    return true;
}

static struct account *
find_account(struct daemon *d, const char *name)
{
    for (size_t i = 0; i < d->n_accounts; i++) {
        if (strcmp(account_name(d->accounts[i]), name) == 0)
            return d->accounts[i];
    }
    return NULL;
}

char *
daemon_cmd_explain(void *arg, const char *const *args, size_t n,
                   struct control_req *req)
{
    struct daemon *d = arg;
    const struct config_account *acc;
    struct account *a;
    struct daemon_explain *de;
    struct explain_params p;
    uint32_t uid;
    char *msg, *reply;

    (void)n;
    a = find_account(d, args[0]);
    acc = config_find_account(d->config, args[0]);
    if (a == NULL || acc == NULL) {
        msg = xasprintf("no account \"%s\"", args[0]);
        reply = ctl_reply_error(msg);
        free(msg);
        return reply;
    }
    if (!parse_uid(args[2], &uid)) {
        msg = xasprintf("\"%s\" is not a UID (a number from 1 up, as the "
                        "audit lines show it)", args[2]);
        reply = ctl_reply_error(msg);
        free(msg);
        return reply;
    }
    memset(&p, 0, sizeof(p));
    p.env = &d->env.session;
    p.config = d->config;
    p.account = acc;
    p.tls = account_tls(a);
    p.secrets = account_secrets(a);
    p.mailbox = args[1];
    p.uid = uid;
    p.force_dry = d->opts.dry_run;
    de = xcalloc(1, sizeof(*de));
    de->d = d;
    de->req = req;
    de->next = d->explains;
    if (d->explains != NULL)
        d->explains->prev = de;
    d->explains = de;
    de->ex = explain_start(&p, on_explained, de);
    return NULL;
}

void
daemon_cancel_explains(struct daemon *d)
{
    while (d->explains != NULL) {
        struct daemon_explain *de = d->explains;

        unlink_explain(de);
        explain_cancel(de->ex);
        control_req_reply(de->req, ctl_reply_error("the daemon is stopping"));
        free(de);
    }
}

/* --- imapsweepd --explain -------------------------------------------------- */

struct once {
    char *text;
    bool error;                /* no explanation: the text says why */
    bool found;                /* the message is there */
};

static void
on_once_explained(const struct explain_report *r, void *arg)
{
    struct once *o = arg;

    o->text = explain_report_text(r);
    o->error = r->error != NULL;
    o->found = r->found;
}

static void
close_walk(uv_handle_t *h, void *arg)
{
    (void)arg;
    if (!uv_is_closing(h))
        uv_close(h, NULL);
}

int
daemon_explain(const struct daemon_opts *opts, const char *account,
               const char *mailbox, const char *uid_text)
{
    struct config_diag diag;
    struct config *c = NULL;
    const struct config_account *acc;
    struct session_env env;
    struct explain_params p;
    struct once o = {0};
    uv_loop_t loop;
    uint32_t uid;

    if (!parse_uid(uid_text, &uid)) {
        fprintf(stderr, "imapsweepd: \"%s\" is not a UID (a number from 1 "
                        "up)\n", uid_text);
        return CTL_EXIT_USAGE;
    }
    config_diag_init(&diag);
    if (config_load(opts->config_path, &c, &diag) < 0) {
        daemon_print_diag(&diag, stderr);
        config_diag_free(&diag);
        return CTL_EXIT_CONFIG;
    }
    config_diag_free(&diag);
    acc = config_find_account(c, account);
    if (acc == NULL) {
        fprintf(stderr, "imapsweepd: no account \"%s\" in %s\n", account,
                opts->config_path);
        config_unref(c);
        return CTL_EXIT_USAGE;
    }
    log_set_level(opts->level_set ? opts->level : LL_WARNING);
    uv_loop_init(&loop);
    memset(&env, 0, sizeof(env));
    env.loop = &loop;
    env.pool = transport_pool_new(&loop);
    env.gates = gate_set_new(GATE_DEFAULT_SLOTS);
    memset(&p, 0, sizeof(p));
    p.env = &env;
    p.config = c;
    p.account = acc;
    p.mailbox = mailbox;
    p.uid = uid;
    p.force_dry = opts->dry_run;
    explain_start(&p, on_once_explained, &o);
    uv_run(&loop, UV_RUN_DEFAULT);
    transport_pool_free(env.pool);
    uv_walk(&loop, close_walk, NULL);
    uv_run(&loop, UV_RUN_DEFAULT);
    gate_set_free(env.gates);
    if (uv_loop_close(&loop) != 0)
        log_debug("loop closed with handles left");
    config_unref(c);
    if (o.text == NULL) {
        fprintf(stderr, "imapsweepd: no explanation\n");
        return CTL_EXIT_FAILED;
    }
    fputs(o.text, o.error ? stderr : stdout);
    free(o.text);
    /* no such message: nothing was explained either */
    return o.error || !o.found ? CTL_EXIT_FAILED : 0;
}
