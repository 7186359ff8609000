/*
 * digest.c - see digest.h. The only module besides store and links that
 * touches libcrypto's digests; it never logs and cannot fail (the
 * low-level SHA-256 calls only fail on a NULL context).
 */
#include "hmac_sha256.h" /* first: it allows the low-level SHA-256 calls */

#include "digest.h"

#include <stdlib.h>
#include <string.h>

#include "herald.h"

#define DIGEST_KEYS_MAX 8

_Static_assert(DIGEST_SHA256_LEN == HMAC_SHA256_LEN, "one length for both");

static struct {
    unsigned char *key;
    size_t keylen;
    struct hmac_sha256_key prepared;
} keyed[DIGEST_KEYS_MAX];

void digest_sha256(const void *data, size_t len, unsigned char out[DIGEST_SHA256_LEN])
{
    SHA256_CTX c;
    SHA256_Init(&c);
    SHA256_Update(&c, data, len);
    SHA256_Final(out, &c);
}

void digest_hmac_sha256(const char *key, const void *data, size_t len, unsigned char out[DIGEST_SHA256_LEN])
{
    digest_hmac_sha256_raw(key, strlen(key), data, len, out);
}

void digest_hmac_sha256_raw(const void *key, size_t keylen, const void *data, size_t len,
                            unsigned char out[DIGEST_SHA256_LEN])
{
    size_t i = 0;
    for (; i < DIGEST_KEYS_MAX && keyed[i].key; i++) {
        if (keyed[i].keylen == keylen && memcmp(keyed[i].key, key, keylen) == 0) {
            hmac_sha256(&keyed[i].prepared, data, len, out);
            return;
        }
    }
    if (i == DIGEST_KEYS_MAX) { /* more secrets than slots: prepared for this call only */
        struct hmac_sha256_key k;
        hmac_sha256_key_init(&k, key, keylen);
        hmac_sha256(&k, data, len, out);
        hmac_sha256_key_wipe(&k);
        return;
    }
    keyed[i].key = xmalloc(keylen ? keylen : 1);
    memcpy(keyed[i].key, key, keylen);
    keyed[i].keylen = keylen;
    hmac_sha256_key_init(&keyed[i].prepared, key, keylen);
    hmac_sha256(&keyed[i].prepared, data, len, out);
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
