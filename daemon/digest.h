/*
 * digest.h - SHA-256, HMAC-SHA256 and hex, fast enough to run per message.
 *
 * OpenSSL 3 looks an algorithm up (under a lock) every time a legacy
 * EVP_sha256() or HMAC() call starts, and its EVP_MAC duplicates digest
 * contexts for every MAC; at tens of thousands of messages a second that
 * cost more than the hashing. Here SHA-256 runs through the low-level calls
 * (the same assembly, no provider, no allocation) and each secret's HMAC
 * key is prepared once (hmac_sha256.h) and kept (the secrets are a handful
 * of config values). Loop thread only: the cache is not locked. Allocation
 * failure is fatal, like xmalloc.
 */
#ifndef HERALD_DIGEST_H
#define HERALD_DIGEST_H

#include <stddef.h>

#define DIGEST_SHA256_LEN 32

void digest_sha256(const void *data, size_t len, unsigned char out[DIGEST_SHA256_LEN]);
/* key is a NUL-terminated secret (its bytes are the HMAC key). */
void digest_hmac_sha256(const char *key, const void *data, size_t len, unsigned char out[DIGEST_SHA256_LEN]);
/* The same with a key of keylen bytes (binary: NUL bytes allowed). */
void digest_hmac_sha256_raw(const void *key, size_t keylen, const void *data, size_t len,
                            unsigned char out[DIGEST_SHA256_LEN]);
/* Lower-case hex of n bytes into out, which holds 2n + 1 bytes. */
void digest_hex(char *out, const unsigned char *in, size_t n);

#endif
