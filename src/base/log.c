/* SPDX-License-Identifier: MIT */
#include "log.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "buf.h"

static enum log_level cur_level = LL_INFO;
static bool journal;
static log_sink_cb *sink;
static void *sink_arg;

static const char *const level_names[] = {
    [LL_ERROR] = "error", [LL_WARNING] = "warning", [LL_NOTICE] = "notice",
    [LL_INFO] = "info",   [LL_DEBUG] = "debug",     [LL_TRACE] = "trace",
};

void
log_init(void)
{
    const char *js = getenv("JOURNAL_STREAM");
    unsigned long long dev, ino;
    struct stat st;

    journal = false;
    if (js != NULL && sscanf(js, "%llu:%llu", &dev, &ino) == 2 &&
        fstat(2, &st) == 0 && (unsigned long long)st.st_dev == dev &&
        (unsigned long long)st.st_ino == ino)
        journal = true;
}

void
log_set_level(enum log_level level)
{
    cur_level = level;
}

enum log_level
log_get_level(void)
{
    return cur_level;
}

bool
log_enabled(enum log_level level)
{
    return level <= cur_level;
}

bool
log_to_journal(void)
{
    return journal;
}

void
log_set_sink(log_sink_cb *cb, void *arg)
{
    sink = cb;
    sink_arg = arg;
}

const char *
log_level_name(enum log_level level)
{
    if ((unsigned)level >= ARRAY_SIZE(level_names))
        return "unknown";
    return level_names[level];
}

int
log_level_parse(const char *s, enum log_level *r)
{
    for (size_t i = 0; i < ARRAY_SIZE(level_names); i++) {
        if (strcmp(s, level_names[i]) == 0) {
            *r = (enum log_level)i;
            return 0;
        }
    }
    return -EINVAL;
}

int
log_level_priority(enum log_level level)
{
    static const int prio[] = {3, 4, 5, 6, 7, 7};

    return prio[(unsigned)level < ARRAY_SIZE(prio) ? level : LL_TRACE];
}

static void
vmsg(enum log_level level, const struct log_fields *f, const char *fmt,
     va_list ap)
{
    struct buf line;
    int saved_errno = errno;

    buf_init(&line, BUF_NOCAP);
    if (f->account != NULL) {
        if (f->mailbox != NULL)
            buf_printf(&line, "%s/%s: ", f->account, f->mailbox);
        else
            buf_printf(&line, "%s: ", f->account);
    }
    buf_vprintf(&line, fmt, ap);

    if (sink != NULL) {
        sink(level, f, buf_cstr(&line), sink_arg);
    } else if (journal) {
        fprintf(stderr, "<%d>%s\n", log_level_priority(level),
                buf_cstr(&line));
    } else {
        struct timespec ts;
        struct tm tm;
        char stamp[32];

        clock_gettime(CLOCK_REALTIME, &ts);
        gmtime_r(&ts.tv_sec, &tm);
        strftime(stamp, sizeof(stamp), "%Y-%m-%dT%H:%M:%S", &tm);
        fprintf(stderr, "%s.%03ldZ %-7s %s\n", stamp, ts.tv_nsec / 1000000,
                log_level_name(level), buf_cstr(&line));
    }
    buf_free(&line);
    errno = saved_errno;
}

void
log_ctx_vmsg(const struct log_ctx *ctx, enum log_level level,
             const char *fmt, va_list ap)
{
    struct log_fields f = {0};

    if (!log_enabled(level))
        return;
    if (ctx != NULL) {
        f.account = ctx->account;
        f.mailbox = ctx->mailbox;
    }
    vmsg(level, &f, fmt, ap);
}

void
log_ctx_msg(const struct log_ctx *ctx, enum log_level level, const char *fmt,
            ...)
{
    va_list ap;

    va_start(ap, fmt);
    log_ctx_vmsg(ctx, level, fmt, ap);
    va_end(ap);
}

void
log_ctx_action(const struct log_ctx *ctx, enum log_level level,
               const char *rule, const char *action, uint32_t uid,
               const char *fmt, ...)
{
    struct log_fields f = {.rule = rule, .action = action, .uid = uid};
    va_list ap;

    if (!log_enabled(level))
        return;
    if (ctx != NULL) {
        f.account = ctx->account;
        f.mailbox = ctx->mailbox;
    }
    va_start(ap, fmt);
    vmsg(level, &f, fmt, ap);
    va_end(ap);
}

void
log_ctx_fields(const struct log_ctx *ctx, enum log_level level,
               const struct log_fields *fields, const char *fmt, ...)
{
    struct log_fields f = *fields;
    va_list ap;

    if (!log_enabled(level))
        return;
    f.account = ctx != NULL ? ctx->account : NULL;
    f.mailbox = ctx != NULL ? ctx->mailbox : NULL;
    va_start(ap, fmt);
    vmsg(level, &f, fmt, ap);
    va_end(ap);
}
