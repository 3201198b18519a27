/* SPDX-License-Identifier: MIT */
/* digest: MD5 and SHA-256 computed while a message body streams in (so
 * memory does not grow with message size). Wraps OpenSSL's EVP. */
#ifndef IMAPSWEEP_DIGEST_H
#define IMAPSWEEP_DIGEST_H

#include <stdbool.h>
#include <stddef.h>

struct digest;

/* Compute either or both. Never NULL. */
struct digest *digest_new(bool md5, bool sha256);
void digest_update(struct digest *d, const void *data, size_t len);
/* Finish; outputs for digests not asked for are left untouched. The digest
 * may not be updated afterwards. */
void digest_final(struct digest *d, unsigned char md5[16],
                  unsigned char sha256[32]);
/* NULL-safe. */
void digest_free(struct digest *d);
/* Lower-case hex of n bytes into out (2n + 1 bytes). */
void digest_hex(const unsigned char *bytes, size_t n, char *out);

#endif
