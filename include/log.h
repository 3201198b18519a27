/* SPDX-License-Identifier: MIT */
/* log: leveled logging to stderr. Under journald (JOURNAL_STREAM names our
 * stderr) each line starts with a "<N>" syslog priority, or goes to a sink
 * (notify.c registers one that sends structured journal fields); otherwise
 * lines carry a UTC timestamp and the level name. */
#ifndef IMAPSWEEP_LOG_H
#define IMAPSWEEP_LOG_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util.h"

enum log_level {
    LL_ERROR,
    LL_WARNING,
    LL_NOTICE,
    LL_INFO,
    LL_DEBUG,
    LL_TRACE,
};

/* Who a line is about. An object that logs embeds one, pointing at its own
 * copies of the names, and passes it to every call (NULL: no one). Lines
 * are prefixed "account/mailbox: " (or "account: "); under journald the
 * names travel as the fields ACCOUNT and MAILBOX. */
struct log_ctx {
    const char *account;
    const char *mailbox;
};

/* What a sink receives: the context and, for action (audit) lines, the
 * rule, the action ("delete", or "would_delete" in a dry run), the UID
 * and the message's Message-ID, From and Subject (decoded). Any member
 * may be NULL / 0. */
struct log_fields {
    const char *account;
    const char *mailbox;
    const char *rule;
    const char *action;
    uint32_t uid;
    bool dry_run;              /* a preview: nothing was done */
    const char *message_id;
    const char *from;
    const char *subject;
};

typedef void log_sink_cb(enum log_level level, const struct log_fields *f,
                         const char *msg, void *arg);

/* Read JOURNAL_STREAM and set the output format. Safe to call again. */
void log_init(void);
void log_set_level(enum log_level level);
enum log_level log_get_level(void);
/* True if a message at `level` would be written: test before building
 * expensive messages (protocol traces). */
bool log_enabled(enum log_level level);
/* True when stderr is connected to the journal. */
bool log_to_journal(void);
/* Route lines to `cb` instead of stderr (NULL restores stderr). */
void log_set_sink(log_sink_cb *cb, void *arg);

/* "error", "warning", … Parse returns 0 or -EINVAL (r untouched). */
const char *log_level_name(enum log_level level);
int log_level_parse(const char *s, enum log_level *r);
/* Syslog priority of a level (3 … 7). */
int log_level_priority(enum log_level level);

/* A line about ctx (NULL: a line of the process as a whole). */
void log_ctx_msg(const struct log_ctx *ctx, enum log_level level,
                 const char *fmt, ...) PRINTF_LIKE(3, 4);
void log_ctx_vmsg(const struct log_ctx *ctx, enum log_level level,
                  const char *fmt, va_list ap) PRINTF_LIKE(3, 0);
/* A line about an action: rule, action and uid (0: none) become journal
 * fields of their own. */
void log_ctx_action(const struct log_ctx *ctx, enum log_level level,
                    const char *rule, const char *action, uint32_t uid,
                    const char *fmt, ...) PRINTF_LIKE(6, 7);
/* The same with every field given (account and mailbox come from ctx). */
void log_ctx_fields(const struct log_ctx *ctx, enum log_level level,
                    const struct log_fields *f, const char *fmt, ...)
    PRINTF_LIKE(4, 5);

#define log_error(...) log_ctx_msg(NULL, LL_ERROR, __VA_ARGS__)
#define log_warning(...) log_ctx_msg(NULL, LL_WARNING, __VA_ARGS__)
#define log_notice(...) log_ctx_msg(NULL, LL_NOTICE, __VA_ARGS__)
#define log_info(...) log_ctx_msg(NULL, LL_INFO, __VA_ARGS__)
#define log_debug(...) log_ctx_msg(NULL, LL_DEBUG, __VA_ARGS__)

#endif
