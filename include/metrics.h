/* SPDX-License-Identifier: MIT */
/* metrics: the daemon's status as Prometheus text exposition (format
 * 0.0.4: what Prometheus scrapes, what node_exporter's textfile collector
 * reads and `promtool check metrics` checks). Built by imapsweepctl from a
 * `status` reply, so the daemon needs no HTTP server and no second
 * protocol. Every family has HELP and TYPE lines; label values are
 * escaped (backslash, double quote, newline), so any mailbox name is
 * safe. */
#ifndef IMAPSWEEP_METRICS_H
#define IMAPSWEEP_METRICS_H

#include <stdint.h>

struct ctl_result;

/* The exposition of a status reply r (ok), read at now (seconds since
 * the epoch). Allocated; ends with a newline. */
char *metrics_render(const struct ctl_result *r, uint64_t now);
/* When the daemon could not be asked: imapsweep_up 0 (so that an alert can
 * fire on it instead of on stale numbers). Allocated. */
char *metrics_render_down(void);

#endif
