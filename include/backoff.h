/* SPDX-License-Identifier: MIT */
/* backoff: how long to wait before reconnecting after `failures`
 * consecutive failures. One policy for every connection: exponential from
 * min, capped at max, with jitter (anywhere in [delay/2, delay], never
 * below min), so that connections that fail together do not all come back
 * in the same instant. */
#ifndef IMAPSWEEP_BACKOFF_H
#define IMAPSWEEP_BACKOFF_H

#include <stdint.h>

/* The delay in ms after the failures-th failure in a row (0: the first);
 * min_ms <= result <= max(min_ms, max_ms). */
uint64_t backoff_delay_ms(unsigned failures, uint64_t min_ms,
                          uint64_t max_ms);

#endif
