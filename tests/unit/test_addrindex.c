/* addrindex: the keyed, sharded members of the address indexes (key
 * layout 3): what heraldctl migrate re-keys must be what the daemon
 * computes from an address, and a binary key is used whole. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "addrindex.h"
#include "digest.h"
#include "herald_channel.h"

static void key_file_forms(void **state)
{
    (void)state;
    unsigned char raw[32], key[32], hexkey[32];
    char err[256];
    for (int i = 0; i < 32; i++) raw[i] = (unsigned char)(i * 37 + 1);
    raw[5] = '\n';
    raw[6] = '\0'; /* random bytes may be anything */
    assert_int_equal(addrindex_key_parse(raw, 32, key, err, sizeof(err)), 0);
    assert_memory_equal(key, raw, 32);
    char text[66];
    digest_hex(text, raw, 32);
    text[64] = '\n';
    assert_int_equal(addrindex_key_parse((unsigned char *)text, 65, hexkey, err, sizeof(err)), 0);
    assert_memory_equal(hexkey, raw, 32);
    assert_int_equal(addrindex_key_parse((unsigned char *)text, 64, hexkey, err, sizeof(err)), 0);
    assert_int_equal(addrindex_key_parse(raw, 31, key, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "holds 31 bytes"));
    text[3] = 'x';
    assert_int_equal(addrindex_key_parse((unsigned char *)text, 65, key, err, sizeof(err)), -1);
}

static void member_is_the_keyed_layout_2_member(void **state)
{
    (void)state;
    unsigned char key[32], m[ADDRINDEX_LEN], again[ADDRINDEX_LEN], md[DIGEST_SHA256_LEN];
    for (int i = 0; i < 32; i++) key[i] = (unsigned char)i;
    addrindex_member(key, HERALD_CH_EMAIL, " Ann@Example.COM", m);
    /* "email:" + hex SHA-256 of the normalised address, HMAC'd, 16 bytes. */
    unsigned char sha[DIGEST_SHA256_LEN];
    char plain[6 + 65] = "email:";
    digest_sha256("ann@example.com", 15, sha);
    digest_hex(plain + 6, sha, sizeof(sha));
    digest_hmac_sha256_raw(key, 32, plain, strlen(plain), md);
    assert_memory_equal(m, md, ADDRINDEX_LEN);
    addrindex_rekey(key, plain, strlen(plain), again);
    assert_memory_equal(m, again, ADDRINDEX_LEN);
    struct strbuf sb;
    strbuf_init(&sb);
    addrindex_plain(&sb, HERALD_CH_EMAIL, "ANN@example.com");
    assert_string_equal(sb.buf, plain);
    /* The same address on another channel, another member. */
    addrindex_member(key, HERALD_CH_SMS, "+15550100001", again);
    assert_memory_not_equal(m, again, ADDRINDEX_LEN);
    /* A key is used whole, NUL bytes included. */
    unsigned char k2[32];
    memcpy(k2, key, 32);
    k2[31] ^= 1; /* key[0] is NUL: a C string of either would be empty */
    addrindex_member(k2, HERALD_CH_EMAIL, "ann@example.com", again);
    assert_memory_not_equal(m, again, ADDRINDEX_LEN);
    /* Its shard, by its first 4 bits, in the key's hash tag. */
    addrindex_key_of(&sb, "herald", ADDRINDEX_SUPPRESS, m);
    char want[64];
    snprintf(want, sizeof(want), "herald:suppress:{i%x}", m[0] >> 4);
    assert_string_equal(sb.buf, want);
    assert_int_equal(addrindex_shard(m), m[0] >> 4);
    addrindex_key(&sb, "p", ADDRINDEX_SUPPRESS_INFO, 15);
    assert_string_equal(sb.buf, "p:suppress:info:{if}");
    addrindex_key(&sb, "p", ADDRINDEX_ADDR, 0);
    assert_string_equal(sb.buf, "p:addr:{i0}");
    addrindex_key(&sb, "p", ADDRINDEX_TOMBSTONES, 10);
    assert_string_equal(sb.buf, "p:tombstones:{ia}");
    /* Layout 4: the address index in buckets by the first 12 bits, under
     * the shard's hash tag (the same slot as the address's other entries). */
    addrindex_key_of(&sb, "herald", ADDRINDEX_ADDR, m);
    snprintf(want, sizeof(want), "herald:addr:{i%x}:%x%02x", m[0] >> 4, m[0] >> 4, (m[0] & 15) << 4 | m[1] >> 4);
    assert_string_equal(sb.buf, want);
    assert_int_equal(addrindex_bucket(m), (unsigned)(m[0] << 4 | m[1] >> 4));
    addrindex_bucket_key(&sb, "p", 0xa07);
    assert_string_equal(sb.buf, "p:addr:{ia}:a07");
    addrindex_bucket_key(&sb, "p", ADDRINDEX_BUCKETS - 1);
    assert_string_equal(sb.buf, "p:addr:{if}:fff");
    strbuf_free(&sb);
}

static void derived_key_and_id(void **state)
{
    (void)state;
    unsigned char a[32], b[32], md[DIGEST_SHA256_LEN];
    addrindex_key_derive("a-link-secret-0123456789", a);
    digest_hmac_sha256("a-link-secret-0123456789", "herald index key", 16, md);
    assert_memory_equal(a, md, 32);
    addrindex_key_derive("another-secret-0123456789", b);
    assert_memory_not_equal(a, b, 32);
    char id[17], id2[17];
    addrindex_key_id(a, id);
    addrindex_key_id(b, id2);
    assert_int_equal(strlen(id), 16);
    assert_string_not_equal(id, id2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(key_file_forms),
        cmocka_unit_test(member_is_the_keyed_layout_2_member),
        cmocka_unit_test(derived_key_and_id),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
