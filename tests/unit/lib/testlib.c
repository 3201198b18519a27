/* SPDX-License-Identifier: MIT */
/* The unit-test library's loop helpers, action parsing and log capture:
 * see testlib.h. */
#include "testlib.h"

#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "buf.h"
#include "log.h"
#include "uidset.h"
#include "util.h"

/* --- the loop ------------------------------------------------------------ */

struct deadline {
    uv_timer_t timer;
    bool hit;
};

static void
on_deadline(uv_timer_t *t)
{
    ((struct deadline *)t->data)->hit = true;
}

static void
on_deadline_closed(uv_handle_t *h)
{
    free(h->data);
}

bool
testlib_run_until(uv_loop_t *loop, bool (*cond)(void *), void *arg,
                  uint64_t timeout_ms)
{
    struct deadline *d = xcalloc(1, sizeof(*d));
    bool ok;

    uv_update_time(loop);
    uv_timer_init(loop, &d->timer);
    d->timer.data = d;
    uv_timer_start(&d->timer, on_deadline, timeout_ms, 0);
    while (!(ok = cond(arg)) && !d->hit)
        uv_run(loop, UV_RUN_ONCE);
    uv_close((uv_handle_t *)&d->timer, on_deadline_closed);
    return ok;
}

void
testlib_settle(uv_loop_t *loop)
{
    for (int i = 0; i < 10000; i++) {
        uv_run(loop, UV_RUN_NOWAIT);
        if (!uv_loop_alive(loop) || uv_backend_timeout(loop) != 0)
            return;
    }
}

static bool
is_true(void *arg)
{
    return *(bool *)arg;
}

static void
on_period(uv_timer_t *t)
{
    *(bool *)t->data = true;
}

static void
on_period_closed(uv_handle_t *h)
{
    free(h);
}

void
testlib_run_for(uv_loop_t *loop, uint64_t ms)
{
    uv_timer_t *t = xcalloc(1, sizeof(*t));
    bool done = false;

    uv_update_time(loop);
    uv_timer_init(loop, t);
    t->data = &done;
    uv_timer_start(t, on_period, ms, 0);
    while (!is_true(&done))
        uv_run(loop, UV_RUN_ONCE);
    uv_close((uv_handle_t *)t, on_period_closed);
    testlib_settle(loop);
}

/* --- actions ------------------------------------------------------------- */

#define MAX_WORDS 4

static bool
word_is(const char *w, size_t len, const char *what)
{
    return len == strlen(what) && util_strncaseeq(w, what, len);
}

bool
testlib_action_uids(const char *line, struct uidset *set,
                    bool *plain_expunge)
{
    const char *w[MAX_WORDS];
    size_t wl[MAX_WORDS], n = 0, i;
    const char *p = line;
    struct uidset part;

    while (n < MAX_WORDS) {
        while (*p == ' ')
            p++;
        w[n] = p;
        while (*p != '\0' && *p != ' ' && *p != '\r' && *p != '\n')
            p++;
        wl[n] = (size_t)(p - w[n]);
        if (wl[n] == 0)
            break;
        n++;
    }
    if (n == 0)
        return false;
    /* an optional tag first */
    i = word_is(w[0], wl[0], "UID") || word_is(w[0], wl[0], "EXPUNGE") ? 0
                                                                      : 1;
    if (i < n && word_is(w[i], wl[i], "EXPUNGE")) {
        if (plain_expunge != NULL)
            *plain_expunge = true;
        return false;
    }
    if (i + 1 >= n || !word_is(w[i], wl[i], "UID"))
        return false;
    if (!word_is(w[i + 1], wl[i + 1], "STORE") &&
        !word_is(w[i + 1], wl[i + 1], "COPY") &&
        !word_is(w[i + 1], wl[i + 1], "MOVE") &&
        !word_is(w[i + 1], wl[i + 1], "EXPUNGE"))
        return false;
    uidset_init(&part);
    if (i + 2 >= n || uidset_parse(&part, w[i + 2], wl[i + 2]) < 0)
        uidset_add(&part, UINT32_MAX);
    uidset_union(set, &part);
    uidset_free(&part);
    return true;
}

/* --- memory --------------------------------------------------------------- */

bool
testlib_peek(const void *addr, void *out, size_t n)
{
    int fd = open("/proc/self/mem", O_RDONLY | O_CLOEXEC);
    ssize_t got;

    if (fd < 0)
        return false;
    got = pread(fd, out, n, (off_t)(uintptr_t)addr);
    close(fd);
    return got == (ssize_t)n;
}

/* --- logs ---------------------------------------------------------------- */

static struct buf captured;
static enum log_level saved_level;
static bool capturing;

static void
sink(enum log_level level, const struct log_fields *f, const char *msg,
     void *arg)
{
    (void)f;
    (void)arg;
    buf_printf(&captured, "%s %s\n", log_level_name(level), msg);
}

void
testlog_start(enum log_level level)
{
    if (!capturing) {
        saved_level = log_get_level();
        buf_init(&captured, BUF_NOCAP);
    }
    capturing = true;
    log_set_level(level);
    log_set_sink(sink, NULL);
}

void
testlog_stop(void)
{
    if (!capturing)
        return;
    capturing = false;
    log_set_sink(NULL, NULL);
    log_set_level(saved_level);
    buf_free(&captured);
}

const char *
testlog_text(void)
{
    return buf_cstr(&captured);
}

bool
testlog_has(const char *needle)
{
    return strstr(buf_cstr(&captured), needle) != NULL;
}

void
testlog_clear(void)
{
    buf_reset(&captured);
}
