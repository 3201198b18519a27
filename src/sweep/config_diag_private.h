/* SPDX-License-Identifier: MIT */
/* config_diag_private.h: the diagnostics store as the config loader's
 * files use it. Free of libyaml, like config_diag.c. */
#ifndef IMAPSWEEP_CONFIG_DIAG_PRIVATE_H
#define IMAPSWEEP_CONFIG_DIAG_PRIVATE_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>

#include "config.h"
#include "util.h"

/* The diagnostics of one load, to drop exact repeats as they come: a node
 * reached through many aliases reports the same problem each time. Zeroed
 * to start; the caller frees slot. */
struct diag_set {
    size_t *slot;    /* 0: empty, else 1 + (index << 1 | warning) */
    size_t cap, n;
};

/* Append an entry to d; msg is copied, escaped to one printable line. */
void config_diag_add(struct config_diag *d, bool warning, const char *file,
                     unsigned line, unsigned col, const char *msg);
/* Format a message and add it like config_diag_add(), unless seen holds an
 * equal entry (same kind, position and text) of this load. */
void config_diag_report_v(struct config_diag *d, struct diag_set *seen,
                          const char *file, bool warning, unsigned line,
                          unsigned col, const char *fmt, va_list ap)
    PRINTF_LIKE(7, 0);
/* Put the entries from `first` on in file order (stable). */
void config_diag_sort(struct config_diag_entry *e, size_t first,
                      size_t n_all);

#endif
