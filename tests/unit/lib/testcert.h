/* SPDX-License-Identifier: MIT */
/* The certificate fixture of the unit-test library (tests/unit/lib):
 * test-only certificates made with the OpenSSL API (a CA, leaf certificates
 * signed by it or by themselves) and server SSL_CTXs. Used by test_tls.c
 * and test_transport.c. */
#ifndef IMAPSWEEP_TESTCERT_H
#define IMAPSWEEP_TESTCERT_H

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#define TESTCERT_DAY (24L * 3600)

struct testcert {
    EVP_PKEY *key;
    X509 *cert;
};

/* A certificate for `cn` with subjectAltName `san` (NULL: none), valid
 * from now + not_before to now + not_after (seconds), signed by `issuer`
 * (NULL: self-signed); a CA when `ca`. Aborts on an OpenSSL failure. */
struct testcert testcert_make(const char *cn, const char *san,
                              const struct testcert *issuer, bool ca,
                              long not_before, long not_after);
void testcert_free(struct testcert *c);
/* Write the certificate as PEM to a new temporary file; returns its path
 * (caller unlinks and frees). */
char *testcert_write_tmp(const struct testcert *c);
/* A server SSL_CTX presenting `c`; versions 0 mean OpenSSL's defaults. */
SSL_CTX *testcert_server_ctx(const struct testcert *c, int min_version,
                             int max_version);

#endif
