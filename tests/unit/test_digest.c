/*
 * test_digest.c - digest.c against published vectors (FIPS 180-2 for
 * SHA-256, RFC 4231 for HMAC-SHA256). The keyed contexts are cached and
 * restarted per call, so the vectors are computed repeatedly and with two
 * keys interleaved: a context that kept state from an earlier message
 * would give a different MAC; and against OpenSSL's HMAC() for keys of
 * every length around the block size.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "digest.h"

static void hex_of(const unsigned char *d, char out[2 * DIGEST_SHA256_LEN + 1])
{
    digest_hex(out, d, DIGEST_SHA256_LEN);
}

static void sha256_abc(void **st)
{
    (void)st;
    unsigned char d[DIGEST_SHA256_LEN];
    char hex[2 * DIGEST_SHA256_LEN + 1];
    digest_sha256("abc", 3, d);
    hex_of(d, hex);
    assert_string_equal(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

/* RFC 4231 test case 2 (key "Jefe") and test case 1 (key 20 x 0x0b). */
#define TC2_DATA "what do ya want for nothing?"
#define TC2_MAC "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
#define TC1_DATA "Hi There"
#define TC1_MAC "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7"

static void hmac_vectors_repeated_and_interleaved(void **st)
{
    (void)st;
    char key1[21];
    memset(key1, 0x0b, 20);
    key1[20] = '\0';
    unsigned char d[DIGEST_SHA256_LEN];
    char hex[2 * DIGEST_SHA256_LEN + 1];
    for (int i = 0; i < 5; i++) {
        digest_hmac_sha256("Jefe", TC2_DATA, strlen(TC2_DATA), d);
        hex_of(d, hex);
        assert_string_equal(hex, TC2_MAC);
        digest_hmac_sha256(key1, TC1_DATA, strlen(TC1_DATA), d);
        hex_of(d, hex);
        assert_string_equal(hex, TC1_MAC);
    }
}

/* More secrets than cached slots: a key met after the slots are full takes
 * the uncached path, and still gives the right MAC (RFC 4231 test case 3,
 * key 20 x 0xaa, data 50 x 0xdd); the cached keys keep working. */
static void hmac_many_keys(void **st)
{
    (void)st;
    unsigned char d[DIGEST_SHA256_LEN];
    char hex[2 * DIGEST_SHA256_LEN + 1], key[16];
    for (int i = 0; i < 20; i++) {
        snprintf(key, sizeof(key), "k%d", i);
        digest_hmac_sha256(key, "x", 1, d);
    }
    char key3[21];
    unsigned char data3[50];
    memset(key3, 0xaa, 20);
    key3[20] = '\0';
    memset(data3, 0xdd, sizeof(data3));
    for (int i = 0; i < 2; i++) {
        digest_hmac_sha256(key3, data3, sizeof(data3), d);
        hex_of(d, hex);
        assert_string_equal(hex, "773ea91e36800e46854db8ebd09181a72959098b3ef8c122d9635514ced565fe");
    }
    digest_hmac_sha256("Jefe", TC2_DATA, strlen(TC2_DATA), d);
    hex_of(d, hex);
    assert_string_equal(hex, TC2_MAC);
}

/* RFC 4231 test case 6: a key longer than SHA-256's block is hashed first. */
static void hmac_long_key(void **st)
{
    (void)st;
    char key[132];
    memset(key, 0xaa, 131);
    key[131] = '\0';
    const char *data = "Test Using Larger Than Block-Size Key - Hash Key First";
    unsigned char d[DIGEST_SHA256_LEN];
    char hex[2 * DIGEST_SHA256_LEN + 1];
    digest_hmac_sha256(key, data, strlen(data), d);
    hex_of(d, hex);
    assert_string_equal(hex, "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54");
}

/* Against OpenSSL's own HMAC() for every key length around the block
 * size (0 to 140 bytes, binary keys: cached and, past the slots, uncached)
 * and data that ends on and off block boundaries. */
static void hmac_matches_openssl(void **st)
{
    (void)st;
    unsigned char key[140], data[200], want[EVP_MAX_MD_SIZE], got[DIGEST_SHA256_LEN];
    for (size_t i = 0; i < sizeof(key); i++) key[i] = (unsigned char)(i * 7 + 1);
    for (size_t i = 0; i < sizeof(data); i++) data[i] = (unsigned char)(i * 13 + 5);
    for (size_t kl = 0; kl <= sizeof(key); kl++) {
        size_t dl = (kl * 37) % sizeof(data);
        unsigned wl = 0;
        assert_non_null(HMAC(EVP_sha256(), key, (int)kl, data, dl, want, &wl));
        assert_int_equal(wl, DIGEST_SHA256_LEN);
        for (int twice = 0; twice < 2; twice++) {
            digest_hmac_sha256_raw(key, kl, data, dl, got);
            assert_memory_equal(got, want, DIGEST_SHA256_LEN);
        }
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(sha256_abc),
        cmocka_unit_test(hmac_vectors_repeated_and_interleaved),
        cmocka_unit_test(hmac_many_keys),
        cmocka_unit_test(hmac_long_key),
        cmocka_unit_test(hmac_matches_openssl),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
