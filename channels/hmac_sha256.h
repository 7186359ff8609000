/*
 * hmac_sha256.h - HMAC-SHA256 under a key prepared once, for the MACs
 * herald computes per message (the links' signatures, the webhook plugin's
 * body signature, the keyed address digests). Header-only: the daemon
 * (digest.c) and the plugins (each a self-contained .so) both use it.
 *
 * A prepared key is the SHA-256 state after the key's inner and outer pad
 * blocks; a MAC copies those two states (plain structs) and hashes the data
 * and the inner digest on. OpenSSL 3's EVP_MAC does the same work behind a
 * provider: per MAC it restarts the context, duplicates two digest contexts
 * (an allocation and a free each) and looks parameters up, which cost more
 * than hashing a link's payload. The low-level SHA-256 calls are deprecated
 * in OpenSSL 3 but kept, and they run the same assembly (SHA-NI where the
 * CPU has it). Pure: no allocation, no failure (SHA256_* only fail on a NULL
 * context), no I/O. A prepared key is as secret as the key: wipe it
 * (hmac_sha256_key_wipe) before freeing it. Include it before any other
 * OpenSSL header, so that its OPENSSL_SUPPRESS_DEPRECATED applies.
 */
#ifndef HERALD_HMAC_SHA256_H
#define HERALD_HMAC_SHA256_H

/* SHA256_Init and friends: deprecated in 3.0, present in every 3.x build
 * that keeps the deprecated API (the default, and Debian's). */
#ifndef OPENSSL_SUPPRESS_DEPRECATED
#define OPENSSL_SUPPRESS_DEPRECATED
#endif
#include <openssl/crypto.h>
#include <openssl/sha.h>
#include <stddef.h>
#include <string.h>

#define HMAC_SHA256_LEN 32
#define HMAC_SHA256_BLOCK 64

struct hmac_sha256_key {
    SHA256_CTX inner; /* after the block key ^ 0x36 */
    SHA256_CTX outer; /* after the block key ^ 0x5c */
};

/* Prepares k for key (keylen bytes, any length: a key longer than a block
 * is hashed first, as RFC 2104 says). */
static inline void hmac_sha256_key_init(struct hmac_sha256_key *k, const void *key, size_t keylen)
{
    unsigned char block[HMAC_SHA256_BLOCK] = {0}, pad[HMAC_SHA256_BLOCK];
    if (keylen > HMAC_SHA256_BLOCK) {
        SHA256_CTX c;
        SHA256_Init(&c);
        SHA256_Update(&c, key, keylen);
        SHA256_Final(block, &c);
        OPENSSL_cleanse(&c, sizeof(c));
    } else if (keylen) {
        memcpy(block, key, keylen);
    }
    for (size_t i = 0; i < HMAC_SHA256_BLOCK; i++) pad[i] = block[i] ^ 0x36;
    SHA256_Init(&k->inner);
    SHA256_Update(&k->inner, pad, sizeof(pad));
    for (size_t i = 0; i < HMAC_SHA256_BLOCK; i++) pad[i] = block[i] ^ 0x5c;
    SHA256_Init(&k->outer);
    SHA256_Update(&k->outer, pad, sizeof(pad));
    OPENSSL_cleanse(block, sizeof(block));
    OPENSSL_cleanse(pad, sizeof(pad));
}

/* HMAC-SHA256(key of k, data) into out. k is only read: one prepared key
 * serves any number of MACs. */
static inline void hmac_sha256(const struct hmac_sha256_key *k, const void *data, size_t len,
                               unsigned char out[HMAC_SHA256_LEN])
{
    SHA256_CTX c = k->inner;
    SHA256_Update(&c, data, len);
    SHA256_Final(out, &c);
    c = k->outer;
    SHA256_Update(&c, out, HMAC_SHA256_LEN);
    SHA256_Final(out, &c); /* c now holds the MAC and no more of the key: left as it is */
}

static inline void hmac_sha256_key_wipe(struct hmac_sha256_key *k)
{
    OPENSSL_cleanse(k, sizeof(*k));
}

#endif
