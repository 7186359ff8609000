/*
 * digest.c - see digest.h. The only module besides store and links that
 * touches libcrypto's digests; it never logs and never fails softly: a
 * digest that cannot be computed is a broken installation (abort).
 */
#include "digest.h"

#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "herald.h"

#define DIGEST_KEYS_MAX 8

static EVP_MD *sha256_md;
static EVP_MAC *hmac_alg;
static struct {
    unsigned char *key;
    size_t keylen;
    EVP_MAC_CTX *ctx; /* initialised with key; restarted per call */
} keyed[DIGEST_KEYS_MAX];

static void fatal(const char *what)
{
    fprintf(stderr, "herald: libcrypto: %s failed\n", what);
    abort();
}

void digest_sha256(const void *data, size_t len, unsigned char out[DIGEST_SHA256_LEN])
{
    if (!sha256_md && !(sha256_md = EVP_MD_fetch(NULL, "SHA256", NULL))) fatal("EVP_MD_fetch(SHA256)");
    unsigned int n = 0;
    if (!EVP_Digest(data, len, out, &n, sha256_md, NULL) || n != DIGEST_SHA256_LEN) fatal("EVP_Digest");
}

static EVP_MAC_CTX *keyed_ctx(const void *key, size_t keylen)
{
    size_t i = 0;
    for (; i < DIGEST_KEYS_MAX && keyed[i].key; i++)
        if (keyed[i].keylen == keylen && memcmp(keyed[i].key, key, keylen) == 0) return keyed[i].ctx;
    if (!hmac_alg && !(hmac_alg = EVP_MAC_fetch(NULL, "HMAC", NULL))) fatal("EVP_MAC_fetch(HMAC)");
    EVP_MAC_CTX *ctx = EVP_MAC_CTX_new(hmac_alg);
    OSSL_PARAM params[] = {OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, "SHA256", 0),
                           OSSL_PARAM_construct_end()};
    /* An empty key is legal HMAC; OpenSSL wants a non-NULL pointer for it. */
    if (!ctx || !EVP_MAC_init(ctx, key, keylen, params)) fatal("EVP_MAC_init");
    if (i == DIGEST_KEYS_MAX) return ctx; /* more secrets than slots: the caller frees it */
    keyed[i].key = xmalloc(keylen ? keylen : 1);
    memcpy(keyed[i].key, key, keylen);
    keyed[i].keylen = keylen;
    keyed[i].ctx = ctx;
    return ctx;
}

void digest_hmac_sha256(const char *key, const void *data, size_t len, unsigned char out[DIGEST_SHA256_LEN])
{
    digest_hmac_sha256_raw(key, strlen(key), data, len, out);
}

void digest_hmac_sha256_raw(const void *key, size_t keylen, const void *data, size_t len,
                            unsigned char out[DIGEST_SHA256_LEN])
{
    EVP_MAC_CTX *ctx = keyed_ctx(key, keylen);
    bool cached = false;
    for (size_t i = 0; i < DIGEST_KEYS_MAX && !cached; i++) cached = keyed[i].ctx == ctx;
    /* A NULL key restarts the context with the key it holds: no copy of
     * the context (and its allocations) per call. */
    size_t n = 0;
    if (!EVP_MAC_init(ctx, NULL, 0, NULL) || !EVP_MAC_update(ctx, data, len) ||
        !EVP_MAC_final(ctx, out, &n, DIGEST_SHA256_LEN) || n != DIGEST_SHA256_LEN)
        fatal("HMAC-SHA256");
    if (!cached) EVP_MAC_CTX_free(ctx);
}

void digest_hex(char *out, const unsigned char *in, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = hex[in[i] >> 4];
        out[2 * i + 1] = hex[in[i] & 15];
    }
    out[2 * n] = '\0';
}
