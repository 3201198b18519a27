/* SPDX-License-Identifier: MIT */
/* units: durations ("30s", "5m", "2h", "14d", "1w", "1h30m"; a bare number is
 * seconds) and sizes ("512", "10k", "5M", "1G"; powers of 1024, an optional
 * trailing "B"/"iB"). Pure functions. */
#ifndef IMAPSWEEP_UNITS_H
#define IMAPSWEEP_UNITS_H

#include <stdint.h>

/* Largest accepted duration: 100 years. */
#define UNITS_DURATION_MAX ((uint64_t)100 * 366 * 86400)
/* Largest accepted size: 1 TiB. */
#define UNITS_SIZE_MAX ((uint64_t)1 << 40)

/* Parse into seconds. Return 0, or -EINVAL (malformed) / -ERANGE (too
 * large); *seconds_r is untouched on error. */
int units_parse_duration(const char *s, uint64_t *seconds_r);
/* Parse into bytes, same conventions. */
int units_parse_size(const char *s, uint64_t *bytes_r);

#endif
