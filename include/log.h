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

#include "buf.h"
#include "util.h"

enum log_level {
    LL_ERROR,
    LL_WARNING,
    LL_NOTICE,
    LL_INFO,
    LL_DEBUG,
    LL_TRACE,
};

/* Structured context of a line. Any member may be NULL / 0. When account is
 * set, the message is prefixed "account/mailbox: ". */
struct log_fields {
    const char *account;
    const char *mailbox;
    const char *rule;
    const char *action;
    uint32_t uid;
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

void log_msg(enum log_level level, const struct log_fields *f,
             const char *fmt, ...) PRINTF_LIKE(3, 4);
void log_vmsg(enum log_level level, const struct log_fields *f,
              const char *fmt, va_list ap) PRINTF_LIKE(3, 0);

#define log_error(...) log_msg(LL_ERROR, NULL, __VA_ARGS__)
#define log_warning(...) log_msg(LL_WARNING, NULL, __VA_ARGS__)
#define log_notice(...) log_msg(LL_NOTICE, NULL, __VA_ARGS__)
#define log_info(...) log_msg(LL_INFO, NULL, __VA_ARGS__)
#define log_debug(...) log_msg(LL_DEBUG, NULL, __VA_ARGS__)

/* Append a printable, redacted copy of one IMAP protocol line (without its
 * CRLF) to out: the arguments of LOGIN after the user name and of
 * AUTHENTICATE after the mechanism become "<redacted>", control bytes are
 * escaped as \xNN, and at most `max` bytes of the line are shown. Returns
 * true if something was redacted. */
bool log_redact_imap(const char *line, size_t len, size_t max,
                     struct buf *out);

#endif
