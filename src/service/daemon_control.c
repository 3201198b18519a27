/* SPDX-License-Identifier: MIT */
#include "daemon_private.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "account.h"
#include "config.h"
#include "ctl_proto.h"
#include "util.h"

/* Which watchers a command with ACCOUNT [MAILBOX] is about; an error
 * reply (caller frees) when it names an account or mailbox that is not
 * watched, else NULL. */
static char *
check_filter(struct daemon *d, const char *const *args, size_t n)
{
    char *msg, *reply;

    if (n == 0)
        return NULL;
    for (size_t i = 0; i < d->n_accounts; i++) {
        struct account *a = d->accounts[i];

        if (strcmp(args[0], account_name(a)) != 0)
            continue;
        if (n < 2)
            return NULL;
        for (size_t k = 0; k < account_n_watchers(a); k++) {
            if (strcmp(watcher_mailbox(account_watcher(a, k)), args[1]) == 0)
                return NULL;
        }
        msg = xasprintf("account %s watches no mailbox \"%s\"", args[0],
                        args[1]);
        reply = ctl_reply_error(msg);
        free(msg);
        return reply;
    }
    msg = xasprintf("no account \"%s\"", args[0]);
    reply = ctl_reply_error(msg);
    free(msg);
    return reply;
}

struct status_walk {
    struct ctl_reply *r;
    const char *const *args;
    size_t n;
};

static void
add_watcher_status(struct daemon *d, struct watcher *w, void *arg)
{
    struct status_walk *sw = arg;
    struct watcher_status st;

    (void)d;
    watcher_status(w, &st);
    if (sw->n >= 1 && strcmp(st.account, sw->args[0]) != 0)
        return;
    if (sw->n >= 2 && strcmp(st.mailbox, sw->args[1]) != 0)
        return;
    ctl_reply_status_add(sw->r, &st);
}

static char *
cmd_status(void *arg, const char *const *args, size_t n,
           struct control_req *req)
{
    struct daemon *d = arg;
    struct ctl_daemon_info info = {
        .version = IMAPSWEEP_VERSION,
        .pid = getpid(),
        .uptime_s = (uint64_t)time(NULL) - d->started,
        .config = d->opts.config_path,
        .generation = d->generation,
        .dry_run = d->opts.dry_run || d->config->daemon.dry_run,
        .stats = &d->stats,
    };
    struct status_walk sw = {.args = args, .n = n};
    char *reply = check_filter(d, args, n);

    (void)req;
    if (reply != NULL)
        return reply;
    sw.r = ctl_reply_status_new(&info);
    daemon_for_each_watcher(d, add_watcher_status, &sw);
    reply = ctl_reply_finish(sw.r);
    /* the reply is a few hundred bytes per watcher in small blocks: with
     * 10,000 watchers one status doubled the resident size for good */
    daemon_schedule_trim(d);
    return reply;
}

static char *
cmd_version(void *arg, const char *const *args, size_t n,
            struct control_req *req)
{
    (void)arg;
    (void)args;
    (void)n;
    (void)req;
    return ctl_reply_version(IMAPSWEEP_VERSION);
}

static char *
cmd_sweep(void *arg, const char *const *args, size_t n,
          struct control_req *req)
{
    struct daemon *d = arg;
    struct ctl_reply *swept = ctl_reply_swept_new();
    char *reply;
    bool found = n == 0;

    (void)req;
    for (size_t i = 0; i < d->n_accounts; i++) {
        struct account *a = d->accounts[i];

        if (n >= 1 && strcmp(args[0], account_name(a)) != 0)
            continue;
        if (!account_sweep_now(a, n >= 2 ? args[1] : NULL)) {
            char *msg = xasprintf("account %s watches no mailbox \"%s\"",
                                  args[0], args[1]);

            ctl_reply_free(swept);
            reply = ctl_reply_error(msg);
            free(msg);
            return reply;
        }
        found = true;
        for (size_t k = 0; k < account_n_watchers(a); k++) {
            const char *mb = watcher_mailbox(account_watcher(a, k));

            if (n < 2 || strcmp(mb, args[1]) == 0)
                ctl_reply_swept_add(swept, account_name(a), mb);
        }
    }
    if (!found) {
        char *msg = xasprintf("no account \"%s\"", args[0]);

        ctl_reply_free(swept);
        reply = ctl_reply_error(msg);
        free(msg);
        return reply;
    }
    return ctl_reply_finish(swept);
}

static char *
cmd_reload(void *arg, const char *const *args, size_t n,
           struct control_req *req)
{
    struct daemon *d = arg;
    struct config_diag diag;
    char *reply;

    (void)args;
    (void)n;
    (void)req;
    config_diag_init(&diag);
    if (daemon_reload(d, &diag) < 0)
        reply = ctl_reply_reload_failed(&diag);
    else
        reply = ctl_reply_reloaded(d->generation);
    config_diag_free(&diag);
    return reply;
}

const struct control_cmd daemon_commands[] = {
    {"status", cmd_status, 0, 2},
    {"reload", cmd_reload, 0, 0},
    {"sweep", cmd_sweep, 0, 2},
    {"version", cmd_version, 0, 0},
    {"explain", daemon_cmd_explain, 3, 3},
};
const size_t daemon_n_commands = ARRAY_SIZE(daemon_commands);
