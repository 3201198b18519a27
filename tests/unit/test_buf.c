/* SPDX-License-Identifier: MIT */
/* buf: growth, consuming, and what a secret buffer leaves behind. A buffer
 * made with buf_init_secret must not leave its secret in freed memory when
 * it grows (realloc frees the old block as it is), nor in the part it
 * consumes or resets; the freed blocks are inspected through
 * /proc/self/mem (testlib_peek), which works the same under ASan. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "buf.h"
#include "testlib.h"
#include "util.h"

#define SECRET "correct horse battery staple / 0123456789abcdef"

/* True if the block [p, p + n) still holds a piece of SECRET: any 16
 * bytes of it beyond the allocator's first 16 (glibc keeps its free-list
 * pointers there). */
static bool
holds_secret(const char *p, size_t n)
{
    char copy[4096];

    assert_true(n <= sizeof(copy));
    assert_true(testlib_peek(p, copy, n));
    for (size_t off = 16; off + 16 <= n; off++) {
        for (size_t k = 0; k + 16 <= strlen(SECRET); k++) {
            if (memcmp(copy + off, &SECRET[k], 16) == 0)
                return true;
        }
    }
    return false;
}

static void
test_plain_growth(void **state)
{
    struct buf b;

    (void)state;
    buf_init(&b, 10);
    assert_int_equal(buf_append_str(&b, "0123456789"), 0);
    assert_int_equal(buf_append_char(&b, 'x'), -ENOBUFS);
    assert_string_equal(buf_cstr(&b), "0123456789");
    buf_consume(&b, 4);
    assert_string_equal(buf_cstr(&b), "456789");
    buf_free(&b);
}

/* Each growth moves the secret to a new block; the old one is wiped. */
static void
test_secret_growth_wipes_the_old_block(void **state)
{
    struct buf b;
    void *blocker[64];
    size_t moves = 0;

    (void)state;
    buf_init_secret(&b, BUF_NOCAP);
    for (size_t i = 0; i < 64; i++) {
        char *old = b.data;
        size_t old_cap = b.cap;

        /* something allocated right after keeps realloc from growing
         * the block in place */
        blocker[i] = xmalloc(32);
        buf_append_str(&b, SECRET);
        if (old != NULL && b.data != old) {
            moves++;
            if (holds_secret(old, old_cap))
                fail_msg("growing from %zu bytes left the secret in the "
                         "freed block", old_cap);
        }
    }
    assert_true(moves >= 4);
    /* consuming and resetting wipe what they give up */
    {
        char *p = b.data;
        size_t len = b.len;

        buf_consume(&b, len - 10);
        assert_false(holds_secret(p + 10, len - 10 < 4000 ? len - 10
                                                          : 4000));
        buf_reset(&b);
        assert_false(holds_secret(p, 64));
    }
    buf_free(&b);
    for (size_t i = 0; i < 64; i++)
        free(blocker[i]);
}

/* buf_free of a secret buffer wipes it before freeing. */
static void
test_secret_free_wipes(void **state)
{
    struct buf b;
    char *p;
    size_t cap;

    (void)state;
    buf_init_secret(&b, BUF_NOCAP);
    buf_append_str(&b, SECRET);
    p = b.data;
    cap = b.cap;
    buf_free(&b);
    assert_false(holds_secret(p, cap));
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_plain_growth),
        cmocka_unit_test(test_secret_growth_wipes_the_old_block),
        cmocka_unit_test(test_secret_free_wipes),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
