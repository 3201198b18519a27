/* SPDX-License-Identifier: MIT */
#include "notify.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include <systemd/sd-daemon.h>
#include <systemd/sd-journal.h>

#include "util.h"

struct notify {
    bool enabled;
    uv_timer_t watchdog;
    bool watchdog_on;
    char *status;
};

static void
on_watchdog(uv_timer_t *t)
{
    (void)t;
    sd_notify(0, "WATCHDOG=1");
}

struct notify *
notify_new(uv_loop_t *loop)
{
    struct notify *n = xcalloc(1, sizeof(*n));
    const char *sock = getenv("NOTIFY_SOCKET");
    uint64_t usec = 0;

    n->enabled = sock != NULL && *sock != '\0';
    uv_timer_init(loop, &n->watchdog);
    n->watchdog.data = n;
    if (n->enabled && sd_watchdog_enabled(0, &usec) > 0 && usec > 0) {
        uint64_t ms = usec / 2000;

        n->watchdog_on = true;
        uv_timer_start(&n->watchdog, on_watchdog, ms ? ms : 1, ms ? ms : 1);
        /* a timer alone must not keep the loop running */
        uv_unref((uv_handle_t *)&n->watchdog);
    }
    return n;
}

static void
on_closed(uv_handle_t *h)
{
    struct notify *n = h->data;

    free(n->status);
    free(n);
}

void
notify_free(struct notify *n)
{
    if (n == NULL)
        return;
    uv_timer_stop(&n->watchdog);
    uv_close((uv_handle_t *)&n->watchdog, on_closed);
}

static void
send_status(struct notify *n, const char *prefix, const char *status)
{
    char *msg;

    if (n == NULL || !n->enabled)
        return;
    msg = xasprintf("%s%s%s", prefix, status ? "STATUS=" : "",
                    status ? status : "");
    sd_notify(0, msg);
    free(msg);
    if (status != NULL) {
        free(n->status);
        n->status = xstrdup(status);
    }
}

void
notify_ready(struct notify *n, const char *status)
{
    send_status(n, "READY=1\n", status);
}

void
notify_status(struct notify *n, const char *status)
{
    if (n == NULL || !n->enabled)
        return;
    if (n->status != NULL && strcmp(n->status, status) == 0)
        return;
    send_status(n, "", status);
}

void
notify_reloading(struct notify *n)
{
    struct timespec ts;
    char msg[96];

    if (n == NULL || !n->enabled)
        return;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    snprintf(msg, sizeof(msg), "RELOADING=1\nMONOTONIC_USEC=%llu",
             (unsigned long long)ts.tv_sec * 1000000ULL +
                 (unsigned long long)ts.tv_nsec / 1000ULL);
    sd_notify(0, msg);
}

void
notify_stopping(struct notify *n)
{
    if (n != NULL && n->enabled)
        sd_notify(0, "STOPPING=1");
}

int
notify_listen_fd(void)
{
    int n = sd_listen_fds(1);

    if (n <= 0)
        return -1;
    if (n > 1)
        return -2;
    if (sd_is_socket(SD_LISTEN_FDS_START, AF_UNIX, SOCK_STREAM, 1) <= 0)
        return -3;
    return SD_LISTEN_FDS_START;
}

/* sd_journal_sendv() drops a message silently (and returns 0) when the
 * journal's socket does not exist, so only use it when it does. */
bool
notify_journal_available(void)
{
    return access("/run/systemd/journal/socket", W_OK) == 0;
}

size_t
notify_journal_fields(enum log_level level, const struct log_fields *f,
                      const char *msg, char **parts, size_t max)
{
    size_t n = 0;

#define ADD(...)                                                              \
    do {                                                                      \
        if (n < max)                                                          \
            parts[n++] = xasprintf(__VA_ARGS__);                              \
    } while (0)
    ADD("MESSAGE=%s", msg);
    ADD("PRIORITY=%d", log_level_priority(level));
    ADD("SYSLOG_IDENTIFIER=imapsweepd");
    if (f == NULL)
        return n;
    if (f->account != NULL)
        ADD("ACCOUNT=%s", f->account);
    if (f->mailbox != NULL)
        ADD("MAILBOX=%s", f->mailbox);
    if (f->rule != NULL)
        ADD("RULE=%s", f->rule);
    if (f->action != NULL)
        ADD("ACTION=%s", f->action);
    if (f->dry_run)
        ADD("DRY_RUN=1");
    if (f->uid != 0)
        ADD("UID=%u", f->uid);
    /* MESSAGE_ID= is journald's: the 128-bit id of a message catalog entry */
    if (f->message_id != NULL)
        ADD("MAIL_MESSAGE_ID=%s", f->message_id);
    if (f->from != NULL)
        ADD("FROM=%s", f->from);
    if (f->subject != NULL)
        ADD("SUBJECT=%s", f->subject);
#undef ADD
    return n;
}

void
notify_journal_sink(enum log_level level, const struct log_fields *f,
                    const char *msg, void *arg)
{
    struct iovec iov[NOTIFY_JOURNAL_MAX_FIELDS];
    char *parts[NOTIFY_JOURNAL_MAX_FIELDS];
    size_t n = notify_journal_fields(level, f, msg, parts,
                                     NOTIFY_JOURNAL_MAX_FIELDS);

    (void)arg;
    for (size_t i = 0; i < n; i++) {
        iov[i].iov_base = parts[i];
        iov[i].iov_len = strlen(parts[i]);
    }
    if (sd_journal_sendv(iov, (int)n) < 0) {
        /* journal unreachable: keep the line on stderr */
        fprintf(stderr, "<%d>%s\n", log_level_priority(level), msg);
    }
    for (size_t i = 0; i < n; i++)
        free(parts[i]);
}
