/* SPDX-License-Identifier: MIT */
/* UID sets: building, set algebra, compressed form, chunking, parsing. */
#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "uidset.h"

static char *
fmt(const struct uidset *s)
{
    struct buf b;

    buf_init(&b, BUF_NOCAP);
    uidset_format(s, &b);
    return buf_steal(&b);
}

static void
assert_set(const struct uidset *s, const char *want)
{
    char *got = fmt(s);

    assert_string_equal(got, want);
    free(got);
}

static void
test_empty(void **state)
{
    struct uidset s;

    (void)state;
    uidset_init(&s);
    assert_true(uidset_empty(&s));
    assert_int_equal(uidset_count(&s), 0);
    assert_int_equal(uidset_min(&s), 0);
    assert_int_equal(uidset_max(&s), 0);
    assert_false(uidset_contains(&s, 1));
    assert_set(&s, "");
    uidset_add(&s, 0); /* 0 is not a UID */
    assert_true(uidset_empty(&s));
    uidset_free(&s);
}

static void
test_single_and_full_range(void **state)
{
    struct uidset s;

    (void)state;
    uidset_init(&s);
    uidset_add(&s, 7);
    assert_set(&s, "7");
    assert_int_equal(uidset_count(&s), 1);
    uidset_clear(&s);
    uidset_add_range(&s, 1, UINT32_MAX);
    assert_set(&s, "1:4294967295");
    assert_int_equal(uidset_count(&s), (uint64_t)UINT32_MAX);
    assert_true(uidset_contains(&s, UINT32_MAX));
    assert_true(uidset_contains(&s, 1));
    /* adding inside or at the edge changes nothing */
    uidset_add(&s, UINT32_MAX);
    uidset_add(&s, 1);
    assert_set(&s, "1:4294967295");
    uidset_free(&s);
}

static void
test_merge_ascending(void **state)
{
    struct uidset s;
    uint32_t uids[] = {1, 2, 3, 4, 5, 9, 12, 13, 14, 40};

    (void)state;
    uidset_init(&s);
    for (size_t i = 0; i < sizeof(uids) / sizeof(uids[0]); i++)
        uidset_add(&s, uids[i]);
    assert_set(&s, "1:5,9,12:14,40");
    uidset_add_range(&s, 15, 39);
    assert_set(&s, "1:5,9,12:40");
    uidset_free(&s);
}

static void
test_unsorted_duplicates(void **state)
{
    struct uidset s;
    uint32_t uids[] = {40, 5, 9, 1, 3, 2, 4, 5, 5, 13, 12, 14, 40, 1};

    (void)state;
    uidset_init(&s);
    uidset_from_array(&s, uids, sizeof(uids) / sizeof(uids[0]));
    assert_set(&s, "1:5,9,12:14,40");
    assert_int_equal(uidset_count(&s), 10);
    /* random-order adds give the same set */
    uidset_clear(&s);
    for (size_t i = 0; i < sizeof(uids) / sizeof(uids[0]); i++)
        uidset_add(&s, uids[i]);
    assert_set(&s, "1:5,9,12:14,40");
    /* a range bridging several ranges merges them */
    uidset_add_range(&s, 13, 6);
    assert_set(&s, "1:14,40");
    uidset_add_range(&s, 41, 41);
    assert_set(&s, "1:14,40:41");
    uidset_add_range(&s, 16, 20);
    assert_set(&s, "1:14,16:20,40:41");
    uidset_add(&s, 15);
    assert_set(&s, "1:20,40:41");
    uidset_free(&s);
}

static void
test_algebra(void **state)
{
    struct uidset a, b;

    (void)state;
    uidset_init(&a);
    uidset_init(&b);
    uidset_add_range(&a, 1, 20);
    uidset_add_range(&a, 30, 40);
    uidset_add_range(&b, 5, 7);
    uidset_add(&b, 20);
    uidset_add_range(&b, 25, 35);
    uidset_add(&b, 100);

    uidset_subtract(&a, &b);
    assert_set(&a, "1:4,8:19,36:40");
    uidset_union(&a, &b);
    assert_set(&a, "1:20,25:40,100");
    uidset_intersect(&a, &b);
    assert_set(&a, "5:7,20,25:35,100");
    uidset_clip(&a, 6, 30);
    assert_set(&a, "6:7,20,25:30");
    uidset_clip(&a, 31, 30);
    assert_true(uidset_empty(&a));

    /* subtracting everything, and from the empty set */
    uidset_add_range(&a, 1, UINT32_MAX);
    uidset_subtract(&a, &a);
    assert_true(uidset_empty(&a));
    uidset_subtract(&a, &b);
    assert_true(uidset_empty(&a));
    uidset_free(&a);
    uidset_free(&b);
}

static void
test_parse_roundtrip(void **state)
{
    static const struct {
        const char *in, *out;
    } ok[] = {
        {"1", "1"},
        {"1:5,9,12:40", "1:5,9,12:40"},
        {"5:1", "1:5"},
        {"9,1:5,3,40,12:40", "1:5,9,12:40"},
        {"4294967295", "4294967295"},
        {"1:4294967295", "1:4294967295"},
        {"2,1", "1:2"},
    };
    static const char *const bad[] = {
        "", "0", "1:0", "a", "1,", ",1", "1::2", "1:2:3", "*", "1:*",
        " 1", "1 ", "4294967296", "-1", "1,,2",
    };
    struct uidset s;

    (void)state;
    uidset_init(&s);
    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
        assert_int_equal(uidset_parse(&s, ok[i].in, strlen(ok[i].in)), 0);
        assert_set(&s, ok[i].out);
    }
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        uidset_add(&s, 3);
        assert_int_equal(uidset_parse(&s, bad[i], strlen(bad[i])), -EINVAL);
        assert_true(uidset_empty(&s));
    }
    uidset_free(&s);
}

static void
test_roundtrip_random(void **state)
{
    struct uidset s, t;
    uint32_t uids[2000];
    char *text;

    (void)state;
    srand(42);
    uidset_init(&s);
    uidset_init(&t);
    for (int round = 0; round < 50; round++) {
        size_t n = (size_t)(rand() % 2000);

        for (size_t i = 0; i < n; i++)
            uids[i] = (uint32_t)(rand() % 5000) + 1;
        uidset_from_array(&s, uids, n);
        text = fmt(&s);
        if (n == 0) {
            assert_string_equal(text, "");
        } else {
            assert_int_equal(uidset_parse(&t, text, strlen(text)), 0);
            assert_int_equal(uidset_count(&t), uidset_count(&s));
            for (size_t i = 0; i < n; i++)
                assert_true(uidset_contains(&t, uids[i]));
        }
        free(text);
    }
    uidset_free(&s);
    uidset_free(&t);
}

/* Union and parse against a bitmap, with ranges in random order,
 * overlapping, touching, reversed: the merge paths must agree with it. */
#define MODEL 600

static void
model_check(const struct uidset *s, const bool *model)
{
    uint64_t n = 0;

    for (uint32_t u = 1; u < MODEL; u++) {
        assert_int_equal(uidset_contains(s, u), model[u]);
        n += model[u];
    }
    assert_int_equal(uidset_count(s), n);
    /* normalized: sorted, disjoint, not touching */
    for (size_t i = 0; i < s->n; i++) {
        assert_true(s->r[i].lo <= s->r[i].hi);
        if (i > 0)
            assert_true((uint64_t)s->r[i - 1].hi + 1 < s->r[i].lo);
    }
}

static void
test_union_and_parse_any_order(void **state)
{
    struct uidset a, b, p;
    bool model[MODEL];
    struct buf text;

    (void)state;
    srand(7);
    uidset_init(&a);
    uidset_init(&b);
    uidset_init(&p);
    buf_init(&text, BUF_NOCAP);
    for (int round = 0; round < 300; round++) {
        memset(model, 0, sizeof(model));
        uidset_clear(&a);
        buf_reset(&text);
        for (int k = rand() % 6; k > 0; k--) {
            uint32_t lo = (uint32_t)(rand() % (MODEL - 1)) + 1;
            uint32_t hi = lo + (uint32_t)(rand() % 20);

            if (hi >= MODEL)
                hi = MODEL - 1;
            uidset_add_range(&a, lo, hi);
            for (uint32_t u = lo; u <= hi; u++)
                model[u] = true;
        }
        for (int k = rand() % 40; k > 0; k--) {
            uint32_t lo = (uint32_t)(rand() % (MODEL - 1)) + 1;
            uint32_t hi = lo + (uint32_t)(rand() % 30);

            if (hi >= MODEL)
                hi = MODEL - 1;
            for (uint32_t u = lo; u <= hi; u++)
                model[u] = true;
            /* written either way round, in random order */
            if (text.len > 0)
                buf_append_char(&text, ',');
            if (lo == hi)
                buf_printf(&text, "%u", lo);
            else if (rand() % 2)
                buf_printf(&text, "%u:%u", hi, lo);
            else
                buf_printf(&text, "%u:%u", lo, hi);
        }
        if (text.len > 0) {
            assert_int_equal(uidset_parse(&b, text.data, text.len), 0);
            uidset_copy(&p, &b);
            uidset_union(&a, &b);
        }
        model_check(&a, model);
    }
    /* descending input, as a server may list it: one pass */
    buf_reset(&text);
    for (uint32_t u = 150000; u >= 1; u--)
        buf_printf(&text, u == 150000 ? "%u" : ",%u", u);
    assert_int_equal(uidset_parse(&p, text.data, text.len), 0);
    assert_set(&p, "1:150000");
    buf_free(&text);
    uidset_free(&a);
    uidset_free(&b);
    uidset_free(&p);
}

static void
test_chunks(void **state)
{
    struct uidset s, chunk, all;
    struct buf b;
    size_t pos = 0, n = 0;

    (void)state;
    uidset_init(&s);
    uidset_init(&chunk);
    uidset_init(&all);
    /* 1000 isolated UIDs: 1,3,5,... */
    for (uint32_t u = 1; u < 2000; u += 2)
        uidset_add(&s, u);
    buf_init(&b, BUF_NOCAP);
    while (uidset_format_chunk(&s, &pos, 100, &b)) {
        assert_true(b.len <= 100);
        assert_int_equal(uidset_parse(&chunk, b.data, b.len), 0);
        /* chunks are disjoint and ascending */
        assert_true(uidset_min(&chunk) > uidset_max(&all));
        uidset_union(&all, &chunk);
        buf_reset(&b);
        n++;
    }
    assert_true(n > 10);
    assert_int_equal(uidset_count(&all), 1000);
    uidset_subtract(&all, &s);
    assert_true(uidset_empty(&all));

    /* a chunk always takes at least one range */
    pos = 0;
    uidset_clear(&s);
    uidset_add_range(&s, 1000000, 2000000);
    assert_true(uidset_format_chunk(&s, &pos, 3, &b));
    assert_string_equal(b.data, "1000000:2000000");
    assert_false(uidset_format_chunk(&s, &pos, 3, &b));

    /* the uidset variant yields the same chunks */
    pos = 0;
    assert_true(uidset_next_chunk(&s, &pos, 3, &chunk));
    assert_set(&chunk, "1000000:2000000");
    assert_false(uidset_next_chunk(&s, &pos, 3, &chunk));
    assert_true(uidset_empty(&chunk));

    /* empty set: no chunk */
    uidset_clear(&s);
    pos = 0;
    assert_false(uidset_format_chunk(&s, &pos, 100, &b));
    buf_free(&b);
    uidset_free(&s);
    uidset_free(&chunk);
    uidset_free(&all);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_empty),
        cmocka_unit_test(test_single_and_full_range),
        cmocka_unit_test(test_merge_ascending),
        cmocka_unit_test(test_unsorted_duplicates),
        cmocka_unit_test(test_algebra),
        cmocka_unit_test(test_parse_roundtrip),
        cmocka_unit_test(test_roundtrip_random),
        cmocka_unit_test(test_union_and_parse_any_order),
        cmocka_unit_test(test_chunks),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
