/* SPDX-License-Identifier: MIT */
/* Durations, sizes and the reconnect backoff. */
#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdlib.h>

#include <cmocka.h>

#include "backoff.h"
#include "units.h"

static void
test_durations(void **state)
{
    static const struct {
        const char *in;
        uint64_t want;
    } ok[] = {
        {"30s", 30},
        {"5m", 300},     {"2h", 7200},        {"14d", 14 * 86400},
        {"1w", 604800},  {"1h30m", 5400},     {"1d2h3m4s", 93784},
        {"29m", 1740},   {"0s", 0},           {"36600d", 36600ULL * 86400},
    };
    uint64_t v;

    (void)state;
    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
        v = 12345;
        assert_int_equal(units_parse_duration(ok[i].in, &v), 0);
        assert_int_equal(v, ok[i].want);
    }
}

static void
test_bad_durations(void **state)
{
    static const char *const bad[] = {
        "", "s", "5x", "5 m", " 5m", "5m ", "-5m", "5M", "1.5h", "m5",
        "30m1h",   /* units must go from large to small */
        "1h1h",    /* each unit once */
        "5m30",    /* every number has its unit */
        "5ms", "1y",
    };
    uint64_t v = 777;

    (void)state;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_int_equal(units_parse_duration(bad[i], &v), -EINVAL);
    assert_int_equal(units_parse_duration(NULL, &v), -EINVAL);
    /* a bare number has no unit: refused, never taken as seconds */
    assert_int_equal(units_parse_duration("14", &v), -EDOM);
    assert_int_equal(units_parse_duration("0", &v), -EDOM);
    assert_int_equal(units_parse_duration("30", &v), -EDOM);
    assert_int_equal(units_parse_duration("36601d", &v), -ERANGE);
    assert_int_equal(units_parse_duration("99999999999999999999", &v),
                     -ERANGE);
    assert_int_equal(units_parse_duration("999999999999w", &v), -ERANGE);
    assert_int_equal(v, 777); /* untouched on error */
}

static void
test_sizes(void **state)
{
    static const struct {
        const char *in;
        uint64_t want;
    } ok[] = {
        {"0", 0},
        {"512", 512},
        {"10k", 10240},
        {"10K", 10240},
        {"5M", 5 << 20},
        {"5m", 5 << 20},
        {"1G", 1ULL << 30},
        {"1T", 1ULL << 40},
        {"10KB", 10240},
        {"10KiB", 10240},
        {"100B", 100},
    };
    static const char *const bad[] = {
        "", "k", "10 k", "10kk", "-1", "1.5M", "10x", "10KiBB", "0x10",
        "10iB",
    };
    uint64_t v = 5;

    (void)state;
    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
        assert_int_equal(units_parse_size(ok[i].in, &v), 0);
        assert_int_equal(v, ok[i].want);
    }
    v = 5;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_int_equal(units_parse_size(bad[i], &v), -EINVAL);
    assert_int_equal(units_parse_size("2T", &v), -ERANGE);
    assert_int_equal(units_parse_size("1099511627777", &v), -ERANGE);
    assert_int_equal(v, 5);
}

/* Exponential from min, capped, jittered within [delay/2, delay] but never
 * below min: checked over many draws at every step. */
static void
test_backoff(void **state)
{
    (void)state;
    srand(7);
    for (unsigned f = 0; f < 40; f++) {
        uint64_t full = 1000;
        uint64_t lo_seen = UINT64_MAX, hi_seen = 0;

        for (unsigned i = 0; i < f && full < 300000; i++)
            full *= 2;
        if (full > 300000)
            full = 300000;
        for (int k = 0; k < 2000; k++) {
            uint64_t d = backoff_delay_ms(f, 1000, 300000);

            assert_true(d >= 1000);
            assert_true(d <= full);
            assert_true(d >= full / 2);
            lo_seen = d < lo_seen ? d : lo_seen;
            hi_seen = d > hi_seen ? d : hi_seen;
        }
        if (full >= 4000)  /* the jitter really spreads the delays */
            assert_true(hi_seen - lo_seen > full / 4);
    }
    /* max below min: min wins; min 0 stays 0 */
    assert_int_equal(backoff_delay_ms(5, 2000, 1000), 2000);
    assert_int_equal(backoff_delay_ms(3, 0, 0), 0);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_durations),
        cmocka_unit_test(test_bad_durations),
        cmocka_unit_test(test_sizes),
        cmocka_unit_test(test_backoff),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
