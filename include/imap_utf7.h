/* SPDX-License-Identifier: MIT */
/* imap_utf7: mailbox names in modified UTF-7 (RFC 3501 section 5.1.3). */
#ifndef IMAPSWEEP_IMAP_UTF7_H
#define IMAPSWEEP_IMAP_UTF7_H

#include <stdbool.h>
#include <stddef.h>

#include "buf.h"

/* Encode a UTF-8 name. Returns 0, or -EINVAL if it is not valid UTF-8 or
 * holds a NUL (nothing is appended then). */
int imap_utf7_encode(const char *utf8, size_t len, struct buf *out);
/* Decode a modified UTF-7 name to UTF-8. Returns 0, or -EINVAL for
 * malformed input, an encoded NUL included (nothing is appended then). */
int imap_utf7_decode(const char *s, size_t len, struct buf *out);
/* True if the name needs no encoding (printable ASCII without '&'). */
bool imap_utf7_is_plain(const char *s, size_t len);

#endif
