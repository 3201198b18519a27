/* SPDX-License-Identifier: MIT */
#include "uidset.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

void
uidset_init(struct uidset *s)
{
    s->r = NULL;
    s->n = s->cap = 0;
}

void
uidset_free(struct uidset *s)
{
    free(s->r);
    uidset_init(s);
}

void
uidset_clear(struct uidset *s)
{
    s->n = 0;
}

void
uidset_copy(struct uidset *dst, const struct uidset *src)
{
    uidset_clear(dst);
    ARRAY_GROW(dst->r, dst->cap, src->n);
    if (src->n > 0)
        memcpy(dst->r, src->r, src->n * sizeof(*src->r));
    dst->n = src->n;
}

/* Index of the first range whose hi + 1 >= lo: the first that lo could
 * touch or precede. */
static size_t
first_touching(const struct uidset *s, uint64_t lo)
{
    size_t a = 0, b = s->n;

    while (a < b) {
        size_t m = a + (b - a) / 2;

        if ((uint64_t)s->r[m].hi + 1 < lo)
            a = m + 1;
        else
            b = m;
    }
    return a;
}

void
uidset_add_range(struct uidset *s, uint32_t lo, uint32_t hi)
{
    size_t i, j;

    if (lo > hi) {
        uint32_t t = lo;
        lo = hi;
        hi = t;
    }
    if (lo == 0)
        lo = 1;
    if (hi == 0)
        return;
    /* fast paths: append or extend at the end */
    if (s->n == 0 || (uint64_t)s->r[s->n - 1].hi + 1 < lo) {
        ARRAY_GROW(s->r, s->cap, s->n + 1);
        s->r[s->n].lo = lo;
        s->r[s->n].hi = hi;
        s->n++;
        return;
    }
    i = first_touching(s, lo);
    /* j: one past the last range with lo <= hi + 1 */
    j = i;
    while (j < s->n && (uint64_t)s->r[j].lo <= (uint64_t)hi + 1)
        j++;
    if (i == j) {
        ARRAY_GROW(s->r, s->cap, s->n + 1);
        memmove(&s->r[i + 1], &s->r[i], (s->n - i) * sizeof(*s->r));
        s->r[i].lo = lo;
        s->r[i].hi = hi;
        s->n++;
        return;
    }
    if (s->r[i].lo < lo)
        lo = s->r[i].lo;
    if (s->r[j - 1].hi > hi)
        hi = s->r[j - 1].hi;
    s->r[i].lo = lo;
    s->r[i].hi = hi;
    memmove(&s->r[i + 1], &s->r[j], (s->n - j) * sizeof(*s->r));
    s->n -= j - i - 1;
}

void
uidset_add(struct uidset *s, uint32_t uid)
{
    uidset_add_range(s, uid, uid);
}

static int
cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

    return x < y ? -1 : x > y;
}

static int
cmp_range(const void *a, const void *b)
{
    const struct uid_range *x = a, *y = b;

    if (x->lo != y->lo)
        return x->lo < y->lo ? -1 : 1;
    return x->hi < y->hi ? -1 : x->hi > y->hi;
}

void
uidset_from_array(struct uidset *s, const uint32_t *uids, size_t n)
{
    uint32_t *sorted = xmemdup(uids, n * sizeof(*uids));

    qsort(sorted, n, sizeof(*sorted), cmp_u32);
    uidset_clear(s);
    for (size_t i = 0; i < n; i++)
        uidset_add(s, sorted[i]);
    free(sorted);
}

bool
uidset_contains(const struct uidset *s, uint32_t uid)
{
    size_t i;

    if (uid == 0)
        return false;
    i = first_touching(s, (uint64_t)uid + 1);
    /* first_touching(uid + 1) finds the first range with hi >= uid */
    return i < s->n && s->r[i].lo <= uid && uid <= s->r[i].hi;
}

bool
uidset_empty(const struct uidset *s)
{
    return s->n == 0;
}

uint64_t
uidset_count(const struct uidset *s)
{
    uint64_t c = 0;

    for (size_t i = 0; i < s->n; i++)
        c += (uint64_t)s->r[i].hi - s->r[i].lo + 1;
    return c;
}

uint32_t
uidset_min(const struct uidset *s)
{
    return s->n ? s->r[0].lo : 0;
}

uint32_t
uidset_max(const struct uidset *s)
{
    return s->n ? s->r[s->n - 1].hi : 0;
}

static void
push(struct uid_range **out, size_t *n, size_t *cap, uint32_t lo, uint32_t hi)
{
    ARRAY_GROW(*out, *cap, *n + 1);
    (*out)[*n].lo = lo;
    (*out)[*n].hi = hi;
    (*n)++;
}

static void
replace(struct uidset *s, struct uid_range *r, size_t n, size_t cap)
{
    free(s->r);
    s->r = r;
    s->n = n;
    s->cap = cap;
}

void
uidset_subtract(struct uidset *s, const struct uidset *o)
{
    struct uid_range *out = NULL;
    size_t n = 0, cap = 0, j = 0;

    for (size_t i = 0; i < s->n; i++) {
        uint64_t lo = s->r[i].lo, hi = s->r[i].hi;

        while (j < o->n && o->r[j].hi < lo)
            j++;
        for (size_t k = j; k < o->n && o->r[k].lo <= hi && lo <= hi; k++) {
            if (o->r[k].lo > lo)
                push(&out, &n, &cap, (uint32_t)lo, o->r[k].lo - 1);
            lo = (uint64_t)o->r[k].hi + 1;
        }
        if (lo <= hi)
            push(&out, &n, &cap, (uint32_t)lo, (uint32_t)hi);
    }
    replace(s, out, n, cap);
}

void
uidset_intersect(struct uidset *s, const struct uidset *o)
{
    struct uid_range *out = NULL;
    size_t n = 0, cap = 0, i = 0, j = 0;

    while (i < s->n && j < o->n) {
        uint32_t lo = s->r[i].lo > o->r[j].lo ? s->r[i].lo : o->r[j].lo;
        uint32_t hi = s->r[i].hi < o->r[j].hi ? s->r[i].hi : o->r[j].hi;

        if (lo <= hi)
            push(&out, &n, &cap, lo, hi);
        if (s->r[i].hi < o->r[j].hi)
            i++;
        else
            j++;
    }
    replace(s, out, n, cap);
}

/* Append [lo, hi] to a sorted output, merging with its last range when
 * they overlap or touch. */
static void
push_merge(struct uid_range **out, size_t *n, size_t *cap, uint32_t lo,
           uint32_t hi)
{
    if (*n > 0 && (uint64_t)(*out)[*n - 1].hi + 1 >= lo) {
        if (hi > (*out)[*n - 1].hi)
            (*out)[*n - 1].hi = hi;
        return;
    }
    push(out, n, cap, lo, hi);
}

/* One pass over both (sorted) sets: O(n + m), whatever their order of
 * arrival. */
void
uidset_union(struct uidset *s, const struct uidset *o)
{
    struct uid_range *out = NULL;
    size_t n = 0, cap = 0, i = 0, j = 0;

    if (o->n == 0)
        return;
    if (s->n == 0 || (uint64_t)s->r[s->n - 1].hi + 1 < o->r[0].lo) {
        /* appending: the common case of ascending input */
        ARRAY_GROW(s->r, s->cap, s->n + o->n);
        memcpy(&s->r[s->n], o->r, o->n * sizeof(*o->r));
        s->n += o->n;
        return;
    }
    ARRAY_GROW(out, cap, s->n + o->n);
    while (i < s->n || j < o->n) {
        const struct uid_range *r =
            j >= o->n || (i < s->n && s->r[i].lo <= o->r[j].lo) ? &s->r[i++]
                                                                : &o->r[j++];

        push_merge(&out, &n, &cap, r->lo, r->hi);
    }
    replace(s, out, n, cap);
}

void
uidset_clip(struct uidset *s, uint32_t lo, uint32_t hi)
{
    struct uidset window;

    if (lo == 0)
        lo = 1;
    uidset_init(&window);
    if (lo <= hi)
        uidset_add_range(&window, lo, hi);
    uidset_intersect(s, &window);
    uidset_free(&window);
}

static size_t
digits(uint32_t v)
{
    size_t d = 1;

    while (v >= 10) {
        v /= 10;
        d++;
    }
    return d;
}

static size_t
range_len(const struct uid_range *r)
{
    return r->lo == r->hi ? digits(r->lo) : digits(r->lo) + 1 + digits(r->hi);
}

static void
format_range(const struct uid_range *r, struct buf *out)
{
    if (r->lo == r->hi)
        buf_printf(out, "%u", r->lo);
    else
        buf_printf(out, "%u:%u", r->lo, r->hi);
}

void
uidset_format(const struct uidset *s, struct buf *out)
{
    for (size_t i = 0; i < s->n; i++) {
        if (i > 0)
            buf_append_char(out, ',');
        format_range(&s->r[i], out);
    }
}

/* One past the last range index of the chunk starting at pos. */
static size_t
chunk_end(const struct uidset *s, size_t pos, size_t max_bytes)
{
    size_t end = pos, used = 0;

    while (end < s->n) {
        size_t add = range_len(&s->r[end]) + (end > pos ? 1 : 0);

        if (end > pos && used + add > max_bytes)
            break;
        used += add;
        end++;
    }
    return end;
}

bool
uidset_format_chunk(const struct uidset *s, size_t *pos_io, size_t max_bytes,
                    struct buf *out)
{
    size_t pos = *pos_io, end;

    if (pos >= s->n)
        return false;
    end = chunk_end(s, pos, max_bytes);
    for (size_t i = pos; i < end; i++) {
        if (i > pos)
            buf_append_char(out, ',');
        format_range(&s->r[i], out);
    }
    *pos_io = end;
    return true;
}

bool
uidset_next_chunk(const struct uidset *s, size_t *pos_io, size_t max_bytes,
                  struct uidset *chunk)
{
    size_t pos = *pos_io, end;

    uidset_clear(chunk);
    if (pos >= s->n)
        return false;
    end = chunk_end(s, pos, max_bytes);
    for (size_t i = pos; i < end; i++)
        uidset_add_range(chunk, s->r[i].lo, s->r[i].hi);
    *pos_io = end;
    return true;
}

/* Sort ranges (lo <= hi each) and merge them into s: O(n log n) for any
 * order, where adding one by one costs a memmove each out of order. */
static void
normalize_into(struct uidset *s, struct uid_range *r, size_t n)
{
    struct uid_range *out = NULL;
    size_t m = 0, cap = 0;

    qsort(r, n, sizeof(*r), cmp_range);
    ARRAY_GROW(out, cap, n ? n : 1);
    for (size_t i = 0; i < n; i++)
        push_merge(&out, &m, &cap, r[i].lo, r[i].hi);
    replace(s, out, m, cap);
}

int
uidset_parse(struct uidset *s, const char *str, size_t len)
{
    size_t i = 0;
    struct uid_range *ranges = NULL;
    size_t n = 0, cap = 0;

    uidset_clear(s);
    if (len == 0)
        goto bad;
    while (i < len) {
        size_t start = i, colon = 0;
        bool has_colon = false;
        uint32_t lo, hi;

        while (i < len && str[i] != ',') {
            if (str[i] == ':') {
                if (has_colon)
                    goto bad;
                has_colon = true;
                colon = i;
            }
            i++;
        }
        if (!has_colon) {
            if (util_parse_u32(str + start, i - start, &lo) < 0 || lo == 0)
                goto bad;
            hi = lo;
        } else if (util_parse_u32(str + start, colon - start, &lo) < 0 ||
                   util_parse_u32(str + colon + 1, i - colon - 1, &hi) < 0 ||
                   lo == 0 || hi == 0) {
            goto bad;
        }
        push(&ranges, &n, &cap, lo < hi ? lo : hi, lo < hi ? hi : lo);
        if (i < len) {
            i++; /* the comma */
            if (i == len)
                goto bad;
        }
    }
    normalize_into(s, ranges, n);
    free(ranges);
    return 0;
bad:
    free(ranges);
    uidset_clear(s);
    return -EINVAL;
}
