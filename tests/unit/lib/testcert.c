/* SPDX-License-Identifier: MIT */
/* The certificate fixture: see testcert.h. */
#include "testcert.h"

#include <stdlib.h>
#include <unistd.h>

#include "util.h"

static void
add_ext(X509 *x, X509 *issuer, int nid, const char *value)
{
    X509V3_CTX v3;
    X509_EXTENSION *ext;

    X509V3_set_ctx_nodb(&v3);
    X509V3_set_ctx(&v3, issuer, x, NULL, NULL, 0);
    ext = X509V3_EXT_conf_nid(NULL, &v3, nid, value);
    if (ext == NULL || X509_add_ext(x, ext, -1) != 1)
        abort();
    X509_EXTENSION_free(ext);
}

/* A certificate for `cn` with subjectAltName `san` (NULL: none), valid
 * from now + not_before to now + not_after (seconds), signed by `issuer`
 * (NULL: self-signed). */
struct testcert
testcert_make(const char *cn, const char *san, const struct testcert *issuer,
              bool ca, long not_before, long not_after)
{
    static long serial = 1;
    struct testcert c;
    X509 *signer_cert;
    EVP_PKEY *signer_key;
    X509_NAME *name;

    c.key = EVP_EC_gen("P-256");
    c.cert = X509_new();
    if (c.key == NULL || c.cert == NULL)
        abort();
    X509_set_version(c.cert, X509_VERSION_3);
    ASN1_INTEGER_set(X509_get_serialNumber(c.cert), serial++);
    X509_gmtime_adj(X509_getm_notBefore(c.cert), not_before);
    X509_gmtime_adj(X509_getm_notAfter(c.cert), not_after);
    X509_set_pubkey(c.cert, c.key);
    name = X509_get_subject_name(c.cert);
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                               (const unsigned char *)cn, -1, -1, 0);
    signer_cert = issuer != NULL ? issuer->cert : c.cert;
    signer_key = issuer != NULL ? issuer->key : c.key;
    X509_set_issuer_name(c.cert, X509_get_subject_name(signer_cert));
    if (ca) {
        add_ext(c.cert, signer_cert, NID_basic_constraints,
                         "critical,CA:TRUE");
        add_ext(c.cert, signer_cert, NID_key_usage,
                         "critical,keyCertSign,cRLSign");
    } else {
        add_ext(c.cert, signer_cert, NID_basic_constraints,
                         "CA:FALSE");
    }
    add_ext(c.cert, signer_cert, NID_subject_key_identifier, "hash");
    if (issuer != NULL)
        add_ext(c.cert, signer_cert, NID_authority_key_identifier,
                         "keyid:always");
    if (san != NULL)
        add_ext(c.cert, signer_cert, NID_subject_alt_name, san);
    if (X509_sign(c.cert, signer_key, EVP_sha256()) == 0)
        abort();
    return c;
}

void
testcert_free(struct testcert *c)
{
    X509_free(c->cert);
    EVP_PKEY_free(c->key);
    c->cert = NULL;
    c->key = NULL;
}

/* Write the certificate as PEM to a new temporary file; returns its path
 * (caller unlinks and frees). */
char *
testcert_write_tmp(const struct testcert *c)
{
    const char *dir = getenv("TMPDIR");
    char *path;
    int fd;
    FILE *f;

    if (dir == NULL || *dir == '\0')
        dir = "/tmp";
    path = xasprintf("%s/imapsweep-test-ca-XXXXXX", dir);
    fd = mkstemp(path);
    if (fd < 0)
        abort();
    f = fdopen(fd, "w");
    if (f == NULL || PEM_write_X509(f, c->cert) != 1)
        abort();
    fclose(f);
    return path;
}

/* A server SSL_CTX presenting `c`; versions 0 mean OpenSSL's defaults. */
SSL_CTX *
testcert_server_ctx(const struct testcert *c, int min_version, int max_version)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());

    if (ctx == NULL)
        abort();
    if (min_version != 0 && min_version < TLS1_2_VERSION)
        SSL_CTX_set_security_level(ctx, 0); /* allow TLS 1.0/1.1 */
    if (min_version != 0)
        SSL_CTX_set_min_proto_version(ctx, min_version);
    if (max_version != 0)
        SSL_CTX_set_max_proto_version(ctx, max_version);
    if (SSL_CTX_use_certificate(ctx, c->cert) != 1 ||
        SSL_CTX_use_PrivateKey(ctx, c->key) != 1)
        abort();
    return ctx;
}

