/* SPDX-License-Identifier: MIT */
/* units: durations ("30s", "5m", "2h", "14d", "1w", "1h30m"; always with a
 * unit: a bare number is refused, never taken as seconds) and sizes ("512",
 * "10k", "5M", "1G"; a bare number is bytes; powers of 1024, an optional
 * trailing "B"/"iB"). Pure functions. */
#ifndef IMAPSWEEP_UNITS_H
#define IMAPSWEEP_UNITS_H

#include <stddef.h>
#include <stdint.h>

/* Largest accepted duration: 100 years. */
#define UNITS_DURATION_MAX ((uint64_t)100 * 366 * 86400)
/* Largest accepted size: 1 TiB. */
#define UNITS_SIZE_MAX ((uint64_t)1 << 40)

/* Parse into seconds. Return 0, or -EDOM (a bare number such as "14": the
 * unit is missing), -EINVAL (malformed) or -ERANGE (too large); *seconds_r
 * is untouched on error. */
int units_parse_duration(const char *s, uint64_t *seconds_r);
/* Parse into bytes, same conventions. */
int units_parse_size(const char *s, uint64_t *bytes_r);

/* The shortest text that parses back to the value: "1h30m", "14d", "0s";
 * "512", "10k", "5M". Returns out. */
char *units_format_duration(uint64_t seconds, char *out, size_t size);
char *units_format_size(uint64_t bytes, char *out, size_t size);

#endif
