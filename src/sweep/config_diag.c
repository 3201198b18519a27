/* SPDX-License-Identifier: MIT */
/* config_diag: the diagnostics store of the config module: collects
 * "FILE:LINE:COLUMN: message" entries (one printable line each, exact repeats
 * dropped), sorts them in file order and formats them. Knows nothing of
 * YAML. */
#include "config_diag_private.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "util.h"

/* --- diagnostics --------------------------------------------------------- */

void
config_diag_init(struct config_diag *d)
{
    memset(d, 0, sizeof(*d));
}

static void
diag_entries_free(struct config_diag_entry *e, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(e[i].file);
        free(e[i].msg);
    }
    free(e);
}

void
config_diag_free(struct config_diag *d)
{
    if (d == NULL)
        return;
    diag_entries_free(d->errors, d->n_errors);
    diag_entries_free(d->warnings, d->n_warnings);
    config_diag_init(d);
}

char *
config_diag_format(const struct config_diag_entry *e)
{
    return xasprintf("%s:%u:%u: %s", e->file, e->line ? e->line : 1,
                     e->col ? e->col : 1, e->msg);
}

/* Messages must stay one printable line whatever the file contained. */
static char *
clean_message(const char *msg)
{
    size_t len = strlen(msg);
    bool utf8 = util_utf8_valid(msg, len);
    struct buf out;

    buf_init(&out, BUF_NOCAP);
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)msg[i];

        if (c < 0x20 || c == 0x7f || (c >= 0x80 && !utf8))
            buf_printf(&out, "\\x%02x", c);
        else
            buf_append_char(&out, (char)c);
    }
    return buf_steal(&out);
}

void
config_diag_add(struct config_diag *d, bool warning, const char *file,
                unsigned line, unsigned col, const char *msg)
{
    struct config_diag_entry *e;

    if (warning) {
        ARRAY_GROW(d->warnings, d->cap_warnings, d->n_warnings + 1);
        e = &d->warnings[d->n_warnings++];
    } else {
        ARRAY_GROW(d->errors, d->cap_errors, d->n_errors + 1);
        e = &d->errors[d->n_errors++];
    }
    e->file = xstrdup(file);
    e->line = line;
    e->col = col;
    e->msg = clean_message(msg);
}

struct sort_item {
    struct config_diag_entry e;
    size_t seq;
};

static int
sort_item_cmp(const void *pa, const void *pb)
{
    const struct sort_item *a = pa, *b = pb;

    if (a->e.line != b->e.line)
        return a->e.line < b->e.line ? -1 : 1;
    if (a->e.col != b->e.col)
        return a->e.col < b->e.col ? -1 : 1;
    return a->seq < b->seq ? -1 : a->seq > b->seq;
}

void
config_diag_sort(struct config_diag_entry *e, size_t first, size_t n_all)
{
    size_t n = n_all - first;
    struct sort_item *items;

    if (n < 2)
        return;
    items = xreallocarray(NULL, n, sizeof(*items));
    for (size_t i = 0; i < n; i++) {
        items[i].e = e[first + i];
        items[i].seq = i;
    }
    qsort(items, n, sizeof(*items), sort_item_cmp);
    for (size_t i = 0; i < n; i++)
        e[first + i] = items[i].e;
    free(items);
}

/* --- repeats ------------------------------------------------------------- */

static size_t
diag_hash(bool warning, unsigned line, unsigned col, const char *msg)
{
    uint64_t h = 1469598103934665603ULL;  /* FNV-1a */

    h = (h ^ (uint64_t)warning) * 1099511628211ULL;
    h = (h ^ line) * 1099511628211ULL;
    h = (h ^ col) * 1099511628211ULL;
    for (; *msg != '\0'; msg++)
        h = (h ^ (unsigned char)*msg) * 1099511628211ULL;
    return (size_t)h;
}

static const struct config_diag_entry *
diag_set_entry(const struct config_diag *d, size_t slot)
{
    size_t idx = (slot - 1) >> 1;

    return (slot - 1) & 1 ? &d->warnings[idx] : &d->errors[idx];
}

/* Find the slot of an equal entry, or the empty slot where it belongs. */
static size_t *
diag_set_find(struct diag_set *s, const struct config_diag *d, bool warning,
              unsigned line, unsigned col, const char *msg)
{
    size_t mask = s->cap - 1;
    size_t i = diag_hash(warning, line, col, msg) & mask;

    for (;; i = (i + 1) & mask) {
        size_t *slot = &s->slot[i];
        const struct config_diag_entry *e;

        if (*slot == 0)
            return slot;
        e = diag_set_entry(d, *slot);
        if ((bool)((*slot - 1) & 1) == warning && e->line == line &&
            e->col == col && strcmp(e->msg, msg) == 0)
            return slot;
    }
}

static void
diag_set_grow(struct diag_set *s, const struct config_diag *d)
{
    struct diag_set old = *s;

    s->cap = old.cap ? old.cap * 2 : 64;
    s->slot = xcalloc(s->cap, sizeof(*s->slot));
    for (size_t i = 0; i < old.cap; i++) {
        const struct config_diag_entry *e;

        if (old.slot[i] == 0)
            continue;
        e = diag_set_entry(d, old.slot[i]);
        *diag_set_find(s, d, (old.slot[i] - 1) & 1, e->line, e->col,
                       e->msg) = old.slot[i];
    }
    free(old.slot);
}

void PRINTF_LIKE(7, 0)
config_diag_report_v(struct config_diag *d, struct diag_set *seen,
                     const char *file, bool warning, unsigned line,
                     unsigned col, const char *fmt, va_list ap)
{
    char *raw = xvasprintf(fmt, ap), *msg = clean_message(raw);
    size_t *slot;

    free(raw);
    if (2 * (seen->n + 1) > seen->cap)
        diag_set_grow(seen, d);
    slot = diag_set_find(seen, d, warning, line, col, msg);
    if (*slot != 0) {
        free(msg);
        return;
    }
    config_diag_add(d, warning, file, line, col, msg);
    free(msg);
    *slot = 1 + ((warning ? d->n_warnings - 1 : d->n_errors - 1) << 1 |
                 (warning ? 1 : 0));
    seen->n++;
}
