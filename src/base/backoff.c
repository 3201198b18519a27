/* SPDX-License-Identifier: MIT */
#include "backoff.h"

#include <stdlib.h>

uint64_t
backoff_delay_ms(unsigned failures, uint64_t min_ms, uint64_t max_ms)
{
    uint64_t delay = min_ms;

    if (max_ms < min_ms)
        max_ms = min_ms;
    for (unsigned i = 0; i < failures && delay < max_ms; i++)
        delay *= 2;
    if (delay > max_ms)
        delay = max_ms;
    delay = delay / 2 + (uint64_t)rand() % (delay / 2 + 1);
    return delay < min_ms ? min_ms : delay;
}
