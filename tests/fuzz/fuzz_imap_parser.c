/* SPDX-License-Identifier: MIT */
/* libFuzzer target for the IMAP response parser.
 *
 * Input: 4 control bytes, then server output. Byte 0 picks the stream ops
 * (none / decline all / stream some / stream all), tight limits, and how
 * often to release; bytes 1-3 seed the sizes of the pieces the output is
 * fed in. Every response is walked in full; stream callbacks check that
 * they see exactly the announced bytes. */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "imap_arg.h"
#include "imap_parser.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct fuzz_stream {
    unsigned mode;
    uint32_t seed;
    bool active;
    unsigned id;
    uint64_t want;
    uint64_t got;
    unsigned char sum;
};

static void
check(bool cond)
{
    if (!cond)
        abort();
}

static bool
fs_start(void *arg, const struct imap_response *partial,
         const struct imap_arg *prev, uint64_t size, unsigned stream_id)
{
    struct fuzz_stream *fs = arg;
    bool accept;

    check(!fs->active);
    check(partial != NULL && partial->type != IMAP_RESP_CONTINUE);
    check(partial->name != NULL);
    if (partial->type == IMAP_RESP_TAGGED)
        check(partial->tag != NULL);
    if (prev != NULL && prev->type == IMAP_ARG_ATOM)
        check(prev->str[prev->len] == '\0');
    switch (fs->mode) {
    case 1:
        accept = false;
        break;
    case 2:
        accept = (size + stream_id + fs->seed) % 3 != 0;
        break;
    default:
        accept = true;
        break;
    }
    if (accept) {
        fs->active = true;
        fs->id = stream_id;
        fs->want = size;
        fs->got = 0;
    }
    return accept;
}

static void
fs_data(void *arg, unsigned stream_id, const void *p, size_t n)
{
    struct fuzz_stream *fs = arg;
    const unsigned char *b = p;

    check(fs->active && stream_id == fs->id && n > 0);
    check(n <= fs->want - fs->got);
    for (size_t i = 0; i < n; i++)
        fs->sum = (unsigned char)(fs->sum + b[i]);
    fs->got += n;
}

static void
fs_end(void *arg, unsigned stream_id)
{
    struct fuzz_stream *fs = arg;

    check(fs->active && stream_id == fs->id && fs->got == fs->want);
    fs->active = false;
}

static const struct imap_parser_stream_ops fuzz_ops = {
    .start = fs_start,
    .data = fs_data,
    .end = fs_end,
};

static unsigned char
touch(const char *s, size_t n)
{
    unsigned char sum = 0;

    for (size_t i = 0; i < n; i++)
        sum = (unsigned char)(sum + (unsigned char)s[i]);
    return sum;
}

/* depth is bounded by the parser's max_depth */
static unsigned char
walk(const struct imap_arg *arg, unsigned depth, unsigned max_depth)
{
    unsigned char sum = 0;

    check(depth <= max_depth + 1);
    for (; arg != NULL; arg = arg->next) {
        switch (arg->type) {
        case IMAP_ARG_NIL:
            check(arg->str == NULL && arg->len == 0);
            break;
        case IMAP_ARG_ATOM:
            check(arg->len > 0 && strlen(arg->str) == arg->len);
            sum = (unsigned char)(sum + touch(arg->str, arg->len + 1));
            break;
        case IMAP_ARG_STRING:
        case IMAP_ARG_LITERAL:
            check(arg->str[arg->len] == '\0');
            sum = (unsigned char)(sum + touch(arg->str, arg->len + 1));
            break;
        case IMAP_ARG_STREAMED:
            break;
        case IMAP_ARG_LIST:
            check(imap_arg_count(arg->list) == arg->count);
            sum = (unsigned char)(sum + walk(arg->list, depth + 1,
                                             max_depth));
            break;
        default:
            check(false);
        }
    }
    return sum;
}

static unsigned char
walk_response(const struct imap_response *r, unsigned max_depth)
{
    unsigned char sum = touch(r->line, r->line_len + 1);

    check(r->line_len <= IMAP_PARSER_TRACE_MAX);
    check(strlen(r->line) == r->line_len);
    if (r->tag != NULL)
        sum = (unsigned char)(sum + touch(r->tag, strlen(r->tag)));
    if (r->name != NULL)
        sum = (unsigned char)(sum + touch(r->name, strlen(r->name)));
    if (r->code != NULL)
        sum = (unsigned char)(sum + touch(r->code, strlen(r->code)));
    if (r->text != NULL)
        sum = (unsigned char)(sum + touch(r->text, strlen(r->text)));
    if (r->cond != IMAP_COND_NONE || r->type == IMAP_RESP_CONTINUE)
        check(r->text != NULL && r->args == NULL);
    else
        check(r->text == NULL && r->code == NULL);
    if (r->code == NULL)
        check(r->code_args == NULL);
    sum = (unsigned char)(sum + walk(r->code_args, 0, max_depth));
    sum = (unsigned char)(sum + walk(r->args, 0, max_depth));
    return sum;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const size_t max_chunk[4] = {1, 7, 64, 4096};
    struct imap_parser_limits tight = {
        .max_line = 256, .max_literal = 64, .max_stream = 1024,
        .max_depth = 4,
    };
    struct fuzz_stream fs = {0};
    struct imap_parser *p;
    const char *in;
    size_t len, off = 0, chunk;
    uint32_t rng;
    bool small, release_often;
    volatile unsigned char sink = 0;

    if (size < 4)
        return 0;
    fs.mode = data[0] & 3;
    small = (data[0] & 4) != 0;
    release_often = (data[0] & 8) != 0;
    chunk = max_chunk[(data[0] >> 4) & 3];
    rng = ((uint32_t)data[1] << 16 | (uint32_t)data[2] << 8 | data[3]) | 1;
    fs.seed = rng;
    in = (const char *)data + 4;
    len = size - 4;

    p = imap_parser_new(small ? &tight : NULL,
                        fs.mode == 0 ? NULL : &fuzz_ops, &fs);
    while (off < len) {
        size_t n, used = 0, done = 0;
        bool failed = false;

        /* xorshift32 */
        rng ^= rng << 13;
        rng ^= rng >> 17;
        rng ^= rng << 5;
        n = 1 + rng % chunk;
        if (n > len - off)
            n = len - off;
        for (;;) {
            const struct imap_response *r = NULL;
            enum imap_parse_result res;

            res = imap_parser_feed(p, in + off + done, n - done, &used, &r);
            check(used <= n - done);
            done += used;
            if (res == IMAP_PARSE_DONE) {
                check(r != NULL && used > 0);
                check(!fs.active);
                check(imap_parser_is_idle(p));
                sink = (unsigned char)(sink +
                                       walk_response(r, small ? 4 : 32));
                if (release_often || (rng & 1))
                    imap_parser_release(p);
                continue;
            }
            if (res == IMAP_PARSE_ERROR) {
                const char *msg = imap_parser_error(p);

                check(msg != NULL && msg[0] != '\0');
                sink = (unsigned char)(sink + touch(msg, strlen(msg)));
                failed = true;
            } else {
                check(done == n);
            }
            break;
        }
        if (failed)
            break;
        if (release_often)
            imap_parser_release(p);
        off += n;
    }
    (void)sink;
    imap_parser_release(p);
    imap_parser_free(p);
    return 0;
}
