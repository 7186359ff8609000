/*
 * digest.h - SHA-256, HMAC-SHA256 and hex, fast enough to run per message.
 *
 * OpenSSL 3 looks an algorithm up (under a lock) every time a legacy
 * EVP_sha256() or HMAC() call starts; at tens of thousands of messages a
 * second that lookup cost more than the hashing. Here the algorithms are
 * fetched once and a keyed HMAC context is kept per secret (the secrets
 * are a handful of config values) and copied per call. Loop thread only:
 * the caches are not locked. Allocation failure is fatal, like xmalloc.
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
