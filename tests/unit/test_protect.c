/* SPDX-License-Identifier: MIT */
/* daemon_protect_secrets: what imapsweepd does first thing so that no
 * secret it reads can end up in a core file (issue 12, defect 5). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <sys/resource.h>

#include <cmocka.h>

#include "daemon.h"

static void
test_no_core_dumps(void **state)
{
    struct rlimit rl;

    (void)state;
    assert_int_equal(daemon_protect_secrets(), 0);
    assert_int_equal(prctl(PR_GET_DUMPABLE, 0, 0, 0, 0), 0);
    assert_int_equal(getrlimit(RLIMIT_CORE, &rl), 0);
    assert_int_equal(rl.rlim_cur, 0);
    assert_int_equal(rl.rlim_max, 0);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_no_core_dumps),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
