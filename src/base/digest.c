/* SPDX-License-Identifier: MIT */
#include "digest.h"

#include <stdio.h>
#include <stdlib.h>

#include <openssl/evp.h>

#include "util.h"

struct digest {
    EVP_MD_CTX *md5;
    EVP_MD_CTX *sha256;
};

static EVP_MD_CTX *
start(const EVP_MD *md)
{
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();

    if (ctx == NULL || EVP_DigestInit_ex(ctx, md, NULL) != 1) {
        fprintf(stderr, "imapsweep: cannot initialise a digest\n");
        abort();
    }
    return ctx;
}

struct digest *
digest_new(bool md5, bool sha256)
{
    struct digest *d = xcalloc(1, sizeof(*d));

    if (md5)
        d->md5 = start(EVP_md5());
    if (sha256)
        d->sha256 = start(EVP_sha256());
    return d;
}

void
digest_update(struct digest *d, const void *data, size_t len)
{
    if (d->md5 != NULL)
        EVP_DigestUpdate(d->md5, data, len);
    if (d->sha256 != NULL)
        EVP_DigestUpdate(d->sha256, data, len);
}

void
digest_final(struct digest *d, unsigned char md5[16],
             unsigned char sha256[32])
{
    unsigned int n;

    if (d->md5 != NULL)
        EVP_DigestFinal_ex(d->md5, md5, &n);
    if (d->sha256 != NULL)
        EVP_DigestFinal_ex(d->sha256, sha256, &n);
}

void
digest_free(struct digest *d)
{
    if (d == NULL)
        return;
    EVP_MD_CTX_free(d->md5);
    EVP_MD_CTX_free(d->sha256);
    free(d);
}

void
digest_hex(const unsigned char *bytes, size_t n, char *out)
{
    static const char hex[] = "0123456789abcdef";

    for (size_t i = 0; i < n; i++) {
        out[2 * i] = hex[bytes[i] >> 4];
        out[2 * i + 1] = hex[bytes[i] & 15];
    }
    out[2 * n] = '\0';
}
