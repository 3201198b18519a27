/* SPDX-License-Identifier: MIT */
/* libFuzzer target for the control socket's protocol: request lines as a
 * client writes them (words or JSON), the replies built from what they
 * said, and reply lines as imapsweepctl reads them. Checked: a split
 * request gives NUL-terminated words and a NULL end; UTF-8 words encode
 * to a JSON request that splits back to the same words; every reply built
 * from the words (an error naming them, a version, a `sweep` list, a
 * `status` of a watcher with them as its last error, notes and
 * capabilities) is one line of ASCII that parses as a JSON object with
 * "ok" and loses nothing: each text reads back as it was, invalid UTF-8
 * as U+FFFD, and a watcher with an error is never healthy; any reply line
 * parses or is refused with a reason. */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "buf.h"
#include "ctl_proto.h"
#include "util.h"
#include "watcher.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
check(bool cond)
{
    if (!cond)
        abort();
}

/* One line of ASCII holding a JSON object with a boolean "ok"; returns
 * what imapsweepctl reads of it (caller frees). */
static struct ctl_result *
check_reply(char *reply)
{
    struct ctl_result *res = NULL;
    char *err = NULL;
    size_t len;
    json_t *o;

    check(reply != NULL);
    len = strlen(reply);
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)reply[i];

        check(c >= 0x20 && c <= 0x7f);
    }
    o = json_loads(reply, 0, NULL);
    check(json_is_object(o) && json_is_boolean(json_object_get(o, "ok")));
    json_decref(o);
    check(ctl_result_parse(reply, len, &res, &err) == 0 && err == NULL);
    free(reply);
    return res;
}

/* What a text must read back as: itself, invalid bytes as U+FFFD. */
static bool
reads_back(const char *got, const char *sent)
{
    struct buf want;
    bool same;

    if (got == NULL)
        return false;
    buf_init(&want, BUF_NOCAP);
    buf_append_utf8(&want, sent, strlen(sent));
    same = strcmp(got, buf_cstr(&want)) == 0;
    if (util_utf8_valid(sent, strlen(sent)))
        same = same && strcmp(got, sent) == 0;
    buf_free(&want);
    return same;
}

static void
check_error_reply(const char *msg)
{
    struct ctl_result *res = check_reply(ctl_reply_error(msg));

    check(!res->ok && reads_back(res->error, msg));
    ctl_result_free(res);
}

/* `status` with one watcher whose texts are the words. */
static void
check_status_reply(char **words, int n)
{
    const char *const *notes = (const char *const *)words;
    struct ctl_daemon_info info = {
        .version = "1", .pid = 1, .config = words[n - 1],
    };
    struct watcher_status st = {
        .account = words[0], .mailbox = words[n - 1],
        .state = WATCHER_IDLE, .capabilities = words[0],
        .last_error = words[n / 2], .notes = notes, .n_notes = (size_t)n,
    };
    struct ctl_reply *r = ctl_reply_status_new(&info);
    struct ctl_result *res;
    const struct ctl_result_watcher *w;

    ctl_reply_status_add(r, &st);
    res = check_reply(ctl_reply_finish(r));
    check(res->ok && res->n_watchers == 1);
    w = &res->watchers[0];
    check(reads_back(res->config, info.config));
    check(reads_back(w->account, st.account));
    check(reads_back(w->mailbox, st.mailbox));
    check(reads_back(w->last_error, st.last_error));
    check(!ctl_watcher_healthy(w));
    check(w->n_notes == (size_t)n);
    for (int i = 0; i < n; i++)
        check(reads_back(w->notes[i], words[i]));
    ctl_result_free(res);
}

static void
check_words(char **words, int n)
{
    bool utf8 = true;
    char *line, **back = NULL, *msg;
    struct ctl_reply *swept;
    struct ctl_result *res;
    int m;

    check(words[n] == NULL);
    for (int i = 0; i < n; i++)
        utf8 = utf8 && util_utf8_valid(words[i], strlen(words[i]));
    /* what the daemon says to an unknown request, or a missing account */
    msg = xasprintf("unknown request \"%s\"", words[0]);
    check_error_reply(msg);
    free(msg);
    check_error_reply(words[n - 1]);
    res = check_reply(ctl_reply_version(words[0]));
    check(res->ok && reads_back(res->version, words[0]));
    ctl_result_free(res);
    check_status_reply(words, n);
    swept = ctl_reply_swept_new();
    for (int i = 0; i + 1 < n; i += 2)
        ctl_reply_swept_add(swept, words[i], words[i + 1]);
    res = check_reply(ctl_reply_finish(swept));
    check(res->ok && res->n_swept == (size_t)n / 2);
    for (int i = 0; i + 1 < n; i += 2) {
        check(reads_back(res->swept[i / 2].account, words[i]));
        check(reads_back(res->swept[i / 2].mailbox, words[i + 1]));
    }
    ctl_result_free(res);
    /* imapsweepctl's encoding of the same request */
    line = ctl_request_encode(words[0], (const char *const *)words + 1,
                              (size_t)n - 1);
    check((line != NULL) == utf8);
    if (line == NULL)
        return;
    check(strchr(line, '\n') == NULL);
    m = ctl_request_split(line, strlen(line), &back);
    check(m == n);
    for (int i = 0; i < n; i++) {
        check(strcmp(back[i], words[i]) == 0);
        free(back[i]);
    }
    free(back);
    free(line);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *in = (const char *)data;
    struct ctl_result *res = NULL;
    char **words = NULL, *err = NULL;
    int n;

    n = ctl_request_split(in, size, &words);
    check(n >= -1);
    if (n > 0)
        check_words(words, n);
    for (int i = 0; i < n; i++) {
        check(words[i] != NULL);
        free(words[i]);
    }
    free(words);

    /* a reply line from whatever answers on the socket */
    if (ctl_result_parse(in, size, &res, &err) == 0) {
        check(res != NULL && err == NULL);
        ctl_result_free(res);
    } else {
        check(res == NULL && err != NULL && err[0] != '\0');
        free(err);
    }
    return 0;
}
