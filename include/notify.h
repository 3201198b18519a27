/* SPDX-License-Identifier: MIT */
/* notify: the systemd integration, and the only module that includes
 * libsystemd's headers. Without NOTIFY_SOCKET (or with a NULL notify)
 * every call is a no-op.
 * WATCHDOG=1 comes from a timer on the loop itself (at half of
 * WATCHDOG_USEC), so a stuck loop stops the pings and systemd notices. */
#ifndef IMAPSWEEP_NOTIFY_H
#define IMAPSWEEP_NOTIFY_H

#include <stdbool.h>
#include <stddef.h>

#include <uv.h>

#include "log.h"

struct notify;

struct notify *notify_new(uv_loop_t *loop);
/* NULL-safe; closes the watchdog timer (run the loop afterwards). */
void notify_free(struct notify *n);

/* READY=1 with a STATUS= line. */
void notify_ready(struct notify *n, const char *status);
/* STATUS=…, sent only when it differs from the last one. */
void notify_status(struct notify *n, const char *status);
/* RELOADING=1 with MONOTONIC_USEC=…; follow with notify_ready(). */
void notify_reloading(struct notify *n);
void notify_stopping(struct notify *n);

/* A socket passed by systemd socket activation (sd_listen_fds): its fd,
 * or -1 when there is none; -2 when there are several, -3 when it is not
 * a listening Unix stream socket. Call it before creating any fd (the
 * passed ones start at 3). */
int notify_listen_fd(void);

/* True when journald's native socket is there to send to. */
bool notify_journal_available(void);

/* A log sink sending lines to the journal with the fields ACCOUNT,
 * MAILBOX and, on audit lines, RULE, ACTION (would_delete in a dry run,
 * with DRY_RUN=1), UID, MAIL_MESSAGE_ID (journald's own MESSAGE_ID names
 * catalog entries), FROM and SUBJECT (see log_set_sink). */
void notify_journal_sink(enum log_level level, const struct log_fields *f,
                         const char *msg, void *arg);
/* The "FIELD=value" texts of one line, as the sink sends them: at most max
 * into parts (each allocated; the caller frees them). Returns the count. */
#define NOTIFY_JOURNAL_MAX_FIELDS 16
size_t notify_journal_fields(enum log_level level, const struct log_fields *f,
                             const char *msg, char **parts, size_t max);

#endif
