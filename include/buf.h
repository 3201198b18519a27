/* SPDX-License-Identifier: MIT */
/* buf: a growable byte buffer with a hard cap and a consume offset.
 * A value type: embed it, buf_init() it, buf_free() it. The data is always
 * NUL-terminated (not counted in len) so it can be used as a C string. */
#ifndef IMAPSWEEP_BUF_H
#define IMAPSWEEP_BUF_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>

#include "util.h"

struct buf {
    char *data;   /* NULL until the first append */
    size_t len;   /* bytes in data, from data[0] */
    size_t cap;   /* allocated size */
    size_t max;   /* appends that would make len exceed max fail */
    bool secret;  /* buf_init_secret: never leaves a copy behind */
};

#define BUF_NOCAP ((size_t)-1)

void buf_init(struct buf *b, size_t max);
/* The same for a buffer that will hold a secret (a password, a token, a
 * SASL response): when it grows, the old block is wiped before it is
 * freed (realloc would leave the secret behind in freed memory), and
 * buf_free, buf_reset and buf_consume wipe what they let go of. */
void buf_init_secret(struct buf *b, size_t max);
/* From now on treat b as holding a secret (as buf_init_secret). */
void buf_mark_secret(struct buf *b);
/* Free the storage; the buf may be reused after buf_init. */
void buf_free(struct buf *b);
/* Wipe then free: for buffers that held a secret (buf_free does this by
 * itself for a buffer made with buf_init_secret). */
void buf_free_secret(struct buf *b);
/* Forget the contents but keep the storage. */
void buf_reset(struct buf *b);

/* Append; return 0, or -ENOBUFS (nothing appended) if len would pass max. */
int buf_append(struct buf *b, const void *p, size_t n);
int buf_append_str(struct buf *b, const char *s);
int buf_append_char(struct buf *b, char c);
int buf_printf(struct buf *b, const char *fmt, ...) PRINTF_LIKE(2, 3);
int buf_vprintf(struct buf *b, const char *fmt, va_list ap) PRINTF_LIKE(2, 0);

/* Append text that should be UTF-8: every invalid sequence, and every
 * NUL, becomes U+FFFD. Returns as buf_append. */
int buf_append_utf8(struct buf *b, const char *s, size_t len);

/* Append data encoded in base64 (RFC 4648, with padding). */
int buf_append_base64(struct buf *b, const void *data, size_t n);

/* Drop the first n bytes (n <= len). */
void buf_consume(struct buf *b, size_t n);
/* Detach the storage: the caller owns the returned NUL-terminated string
 * (never NULL) and the buf is empty again. */
char *buf_steal(struct buf *b);
/* The contents as a C string ("" when empty). Valid until the next change. */
const char *buf_cstr(const struct buf *b);

#endif
