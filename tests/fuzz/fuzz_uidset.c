/* SPDX-License-Identifier: MIT */
/* libFuzzer target for UID sets: uidset_parse reads what servers send
 * (ESEARCH ALL, COPYUID). Input: one control byte, then two sets
 * separated by a newline. Checked: a parsed set is normalized (sorted,
 * merged, within 1..2^32-1) and contains every range written; format ->
 * parse gives the same set; chunks cover the set exactly, in order, each
 * within its byte limit unless it is one range; union, intersection,
 * difference and clipping agree with each other and with counting;
 * building from an array of UIDs gives the set of those UIDs. */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "uidset.h"
#include "util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
check(bool cond)
{
    if (!cond)
        abort();
}

static void
check_normal(const struct uidset *s)
{
    uint64_t count = 0;

    for (size_t i = 0; i < s->n; i++) {
        check(s->r[i].lo >= 1 && s->r[i].lo <= s->r[i].hi);
        if (i > 0)
            check((uint64_t)s->r[i - 1].hi + 1 < s->r[i].lo);
        count += (uint64_t)s->r[i].hi - s->r[i].lo + 1;
    }
    check(uidset_count(s) == count);
    check(uidset_empty(s) == (s->n == 0));
    check(uidset_min(s) == (s->n ? s->r[0].lo : 0));
    check(uidset_max(s) == (s->n ? s->r[s->n - 1].hi : 0));
}

static bool
same(const struct uidset *a, const struct uidset *b)
{
    return a->n == b->n &&
           (a->n == 0 || memcmp(a->r, b->r, a->n * sizeof(*a->r)) == 0);
}

/* Every range written in str ("a" or "a:b", comma-separated) is in s. */
static void
check_covers(const struct uidset *s, const char *str, size_t len)
{
    size_t i = 0;

    while (i < len) {
        size_t start = i, colon = 0;
        uint32_t lo, hi;

        while (i < len && str[i] != ',') {
            if (str[i] == ':')
                colon = i;
            i++;
        }
        if (colon == 0) {
            check(util_parse_u32(str + start, i - start, &lo) == 0);
            hi = lo;
        } else {
            check(util_parse_u32(str + start, colon - start, &lo) == 0);
            check(util_parse_u32(str + colon + 1, i - colon - 1, &hi) == 0);
        }
        check(uidset_contains(s, lo) && uidset_contains(s, hi));
        i++;
    }
}

static void
check_format(const struct uidset *s)
{
    struct buf b;
    struct uidset back;

    buf_init(&b, BUF_NOCAP);
    uidset_init(&back);
    uidset_format(s, &b);
    if (s->n == 0) {
        check(b.len == 0);
    } else {
        check(uidset_parse(&back, buf_cstr(&b), b.len) == 0);
        check(same(s, &back));
    }
    uidset_free(&back);
    buf_free(&b);
}

static void
check_chunks(const struct uidset *s, size_t max_bytes)
{
    struct uidset chunk, all;
    struct buf text, whole;
    size_t pos = 0, tpos = 0;

    uidset_init(&chunk);
    uidset_init(&all);
    buf_init(&text, BUF_NOCAP);
    buf_init(&whole, BUF_NOCAP);
    while (uidset_next_chunk(s, &pos, max_bytes, &chunk)) {
        struct buf one;

        check(chunk.n > 0);
        check(uidset_empty(&all) ||
              uidset_min(&chunk) > uidset_max(&all));
        buf_init(&one, BUF_NOCAP);
        uidset_format(&chunk, &one);
        check(chunk.n == 1 || one.len <= max_bytes);
        buf_free(&one);
        uidset_union(&all, &chunk);
    }
    check(pos == s->n && same(&all, s));
    /* the formatting variant gives the same text, piece by piece */
    while (uidset_format_chunk(s, &tpos, max_bytes, &text))
        buf_append_char(&text, ',');
    uidset_format(s, &whole);
    check(text.len == (whole.len ? whole.len + 1 : 0));
    check(whole.len == 0 || (memcmp(text.data, whole.data, whole.len) == 0 &&
                             text.data[whole.len] == ','));
    uidset_free(&chunk);
    uidset_free(&all);
    buf_free(&text);
    buf_free(&whole);
}

static void
check_algebra(const struct uidset *a, const struct uidset *b, uint32_t lo,
              uint32_t hi)
{
    struct uidset u, x, d, t, c, r;

    uidset_init(&u);
    uidset_init(&x);
    uidset_init(&d);
    uidset_init(&t);
    uidset_init(&c);
    uidset_init(&r);
    uidset_copy(&u, a);
    uidset_union(&u, b);
    uidset_copy(&x, a);
    uidset_intersect(&x, b);
    uidset_copy(&d, a);
    uidset_subtract(&d, b);
    check_normal(&u);
    check_normal(&x);
    check_normal(&d);
    check(uidset_count(&u) + uidset_count(&x) ==
          uidset_count(a) + uidset_count(b));
    check(uidset_count(&d) + uidset_count(&x) == uidset_count(a));
    /* (a - b) u (a n b) == a; (a - b) n b is empty */
    uidset_copy(&t, &d);
    uidset_union(&t, &x);
    check(same(&t, a));
    uidset_copy(&t, &d);
    uidset_intersect(&t, b);
    check(uidset_empty(&t));
    /* clip == intersect with [lo, hi] */
    if (lo > hi) {
        uint32_t tmp = lo;

        lo = hi;
        hi = tmp;
    }
    uidset_copy(&c, a);
    uidset_clip(&c, lo, hi);
    check_normal(&c);
    if (hi >= 1) {
        uidset_add_range(&r, lo ? lo : 1, hi);
        uidset_copy(&t, a);
        uidset_intersect(&t, &r);
        check(same(&c, &t));
    } else {
        check(uidset_empty(&c));
    }
    uidset_free(&u);
    uidset_free(&x);
    uidset_free(&d);
    uidset_free(&t);
    uidset_free(&c);
    uidset_free(&r);
}

/* UIDs from raw bytes, in input order: the set built from them holds
 * exactly them, one at a time or all at once. */
static void
check_array(const uint8_t *data, size_t size)
{
    size_t n = size / 4;
    uint32_t *uids = xcalloc(n ? n : 1, sizeof(*uids));
    struct uidset a, b;

    uidset_init(&a);
    uidset_init(&b);
    for (size_t i = 0; i < n; i++) {
        memcpy(&uids[i], data + 4 * i, 4);
        uidset_add(&b, uids[i]);
    }
    uidset_from_array(&a, uids, n);
    check_normal(&a);
    check(same(&a, &b));
    for (size_t i = 0; i < n; i++)
        check(uids[i] == 0 || uidset_contains(&a, uids[i]));
    uidset_free(&a);
    uidset_free(&b);
    free(uids);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *in = (const char *)data + 1, *nl;
    size_t len, alen, blen;
    struct uidset a, b;
    size_t max_bytes;
    uint32_t lo = 0, hi = 0;

    if (size < 1)
        return 0;
    max_bytes = data[0];
    len = size - 1;
    nl = memchr(in, '\n', len);
    alen = nl ? (size_t)(nl - in) : len;
    blen = nl ? len - alen - 1 : 0;
    uidset_init(&a);
    uidset_init(&b);
    if (uidset_parse(&a, in, alen) == 0) {
        check_normal(&a);
        check_covers(&a, in, alen);
        check_format(&a);
        check_chunks(&a, max_bytes);
    } else {
        check(uidset_empty(&a));
    }
    if (nl != NULL && uidset_parse(&b, nl + 1, blen) == 0) {
        check_normal(&b);
        check_format(&b);
    } else {
        check(uidset_empty(&b));
    }
    if (a.n > 0) {
        lo = a.r[0].lo + (uint32_t)data[0];
        hi = a.r[a.n - 1].hi - (uint32_t)data[0];
    }
    check_algebra(&a, &b, lo, hi);
    check_algebra(&b, &a, hi, lo);
    check_array(data, size);
    uidset_free(&a);
    uidset_free(&b);
    return 0;
}
