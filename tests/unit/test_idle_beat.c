/* SPDX-License-Identifier: MIT */
/* idle_beat: a polling IDLE is found from the timing of what it announces;
 * changes at random times (a pushing server) are never taken for one. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "idle_beat.h"

/* A fixed generator, so every run sees the same "random" mail. */
static uint64_t rng_state;

static uint64_t
rng(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}

/* Uniform in [lo, hi] milliseconds. */
static uint64_t
uniform(uint64_t lo, uint64_t hi)
{
    return lo + rng() % (hi - lo + 1);
}

/* Milliseconds of network and scheduling jitter, -j..+j. */
static int64_t
jitter(int64_t j)
{
    return (int64_t)(rng() % (uint64_t)(2 * j + 1)) - j;
}

static void
test_test_server_pattern(void **state)
{
    /* the interop suite: each mail arrives right after IDLE starts, the
     * server (polling every 5 s) announces it one beat later */
    struct idle_beat b;
    uint64_t offs[] = {5003, 5001, 4998, 5010, 5002, 5040, 4990};

    (void)state;
    idle_beat_init(&b);
    for (size_t i = 0; i < 6; i++)
        assert_false(idle_beat_add(&b, offs[i]));
    assert_true(idle_beat_add(&b, offs[6]));
    assert_int_equal(b.beat_ms, 5006); /* their mean */
    /* said once */
    assert_false(idle_beat_add(&b, 5000));
    assert_false(idle_beat_add(&b, 1234));
}

static void
test_default_poll_random_mail(void **state)
{
    /* Courier's and Cyrus's default: a 60 s beat; mail at random times,
     * so a change waits one to ten beats (IDLE restarts every 10 min) */
    unsigned found = 0, total_samples = 0;

    (void)state;
    rng_state = 0x9e3779b97f4a7c15ULL;
    for (unsigned run = 0; run < 1000; run++) {
        struct idle_beat b;
        unsigned n = 0;

        idle_beat_init(&b);
        while (n < 40) {
            uint64_t k = uniform(1, 10);

            n++;
            if (idle_beat_add(&b, (uint64_t)((int64_t)(k * 60000) +
                                             jitter(60)))) {
                /* rarely a multiple (every change waited an even number
                 * of beats): still a poll */
                uint64_t k1 = (b.beat_ms + 30000) / 60000;

                assert_true(k1 >= 1 && b.beat_ms >= k1 * 60000 - 100 &&
                            b.beat_ms <= k1 * 60000 + 100);
                found++;
                total_samples += n;
                break;
            }
        }
    }
    /* found nearly always, after a handful of changes */
    assert_true(found >= 990);
    assert_true(total_samples / found <= 10);
}

static void
test_dovecot_fallback_poll(void **state)
{
    /* Dovecot without inotify: mailbox_idle_check_interval, 30 s */
    struct idle_beat b;
    uint64_t offs[] = {60020, 30010, 90030, 30005, 120040, 240010, 570050};

    (void)state;
    idle_beat_init(&b);
    for (size_t i = 0; i < 6; i++)
        assert_false(idle_beat_add(&b, offs[i]));
    assert_true(idle_beat_add(&b, offs[6]));
    assert_true(b.beat_ms >= 29900 && b.beat_ms <= 30100);
}

/* Push: changes at random offsets from the IDLE start, never a verdict.
 * Each distribution is run over many windows of the same connection. */
static unsigned
false_verdicts(uint64_t lo, uint64_t hi, unsigned samples)
{
    struct idle_beat b;
    unsigned verdicts = 0;

    idle_beat_init(&b);
    for (unsigned i = 0; i < samples; i++) {
        if (idle_beat_add(&b, uniform(lo, hi))) {
            verdicts++;
            idle_beat_init(&b);
        }
    }
    return verdicts;
}

static void
test_push_never_taken_for_a_poll(void **state)
{
    (void)state;
    rng_state = 0x2545f4914f6cdd1dULL;
    /* quiet mailbox: changes anywhere in a 10 min IDLE */
    assert_int_equal(false_verdicts(0, 600000, 1000000), 0);
    /* busy mailboxes: a change every few seconds, every minute */
    assert_int_equal(false_verdicts(0, 10000, 1000000), 0);
    assert_int_equal(false_verdicts(0, 60000, 1000000), 0);
    /* the worst case: every change 4-8 s after IDLE starts (5,000,000
     * such changes gave one false verdict) */
    assert_int_equal(false_verdicts(4000, 8000, 1000000), 0);
}

static void
test_prompt_changes_break_the_beat(void **state)
{
    /* six on a beat, then one pushed at once: no verdict */
    struct idle_beat b;
    uint64_t offs[] = {5000, 5001, 5002, 5000, 5001, 5000, 300};

    (void)state;
    idle_beat_init(&b);
    for (size_t i = 0; i < 7; i++)
        assert_false(idle_beat_add(&b, offs[i]));
    assert_int_equal(b.beat_ms, 0);
}

static void
test_short_beats_are_not_counted(void **state)
{
    /* a server pushing after a fixed 2 s delay, mail right after IDLE
     * starts: regular, but not a poll worth a note */
    struct idle_beat b;

    (void)state;
    idle_beat_init(&b);
    for (size_t i = 0; i < 20; i++)
        assert_false(idle_beat_add(&b, 2000 + i % 3));
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_test_server_pattern),
        cmocka_unit_test(test_default_poll_random_mail),
        cmocka_unit_test(test_dovecot_fallback_poll),
        cmocka_unit_test(test_push_never_taken_for_a_poll),
        cmocka_unit_test(test_prompt_changes_break_the_beat),
        cmocka_unit_test(test_short_beats_are_not_counted),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
