/* SPDX-License-Identifier: MIT */
/* uidset: a set of IMAP UIDs (1 … 4294967295) kept as sorted, merged ranges,
 * written in the compressed form "1:5,9,12:40". A value type: init, use,
 * free. Every operation keeps the set normalized. */
#ifndef IMAPSWEEP_UIDSET_H
#define IMAPSWEEP_UIDSET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"

struct uid_range {
    uint32_t lo, hi; /* inclusive, 1 <= lo <= hi */
};

struct uidset {
    struct uid_range *r;
    size_t n, cap;
};

void uidset_init(struct uidset *s);
void uidset_free(struct uidset *s);
void uidset_clear(struct uidset *s);
void uidset_copy(struct uidset *dst, const struct uidset *src);

/* Add one UID or a range (lo > hi is swapped; 0 is ignored). Adding in
 * ascending order is O(1) amortized; any other order costs a memmove of
 * the ranges after it (O(n)): input in server order (SEARCH numbers,
 * duplicates) is collected and built with uidset_from_array instead. */
void uidset_add(struct uidset *s, uint32_t uid);
void uidset_add_range(struct uidset *s, uint32_t lo, uint32_t hi);
/* Build from an array in any order, with duplicates: O(n log n). */
void uidset_from_array(struct uidset *s, const uint32_t *uids, size_t n);

bool uidset_contains(const struct uidset *s, uint32_t uid);
bool uidset_empty(const struct uidset *s);
/* Number of UIDs (up to 2^32 - 1, hence 64 bits). */
uint64_t uidset_count(const struct uidset *s);
uint32_t uidset_min(const struct uidset *s); /* 0 when empty */
uint32_t uidset_max(const struct uidset *s); /* 0 when empty */

/* s := s minus other; s := s intersected with other; s := s union other.
 * Each is one pass over both sets (O(n + m)). */
void uidset_subtract(struct uidset *s, const struct uidset *other);
void uidset_intersect(struct uidset *s, const struct uidset *other);
void uidset_union(struct uidset *s, const struct uidset *other);
/* Keep only UIDs in [lo, hi]. */
void uidset_clip(struct uidset *s, uint32_t lo, uint32_t hi);

/* Append the compressed form to out ("" for an empty set). */
void uidset_format(const struct uidset *s, struct buf *out);

/* Chunking for batched commands: append to out the largest prefix of the
 * set, starting at range index *pos_io, whose text is at most max_bytes
 * long (at least one range is always taken, whatever max_bytes is), and
 * advance *pos_io. Returns false when *pos_io is already at the end. */
bool uidset_format_chunk(const struct uidset *s, size_t *pos_io,
                         size_t max_bytes, struct buf *out);
/* Like uidset_format_chunk, but copies the chunk into `chunk` (cleared
 * first) instead of formatting it. */
bool uidset_next_chunk(const struct uidset *s, size_t *pos_io,
                       size_t max_bytes, struct uidset *chunk);

/* Parse "1:5,9,12:40" (ranges in either order, any order, overlaps allowed;
 * no "*", no 0, no spaces) into s (cleared first): the ranges are
 * collected, sorted and merged, O(n log n) whatever their order. Return 0
 * or -EINVAL; on error s is left empty. */
int uidset_parse(struct uidset *s, const char *str, size_t len);

#endif
