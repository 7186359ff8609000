/*
 * test_keyreg.c - the key registry's decisions (keyreg.c): a fingerprint
 * names a key's bytes without revealing them; a key file is refused when it
 * lacks a registered id that is not retired, holds a registered id over
 * other bytes, or seals with a retired id; a retired id further down is only
 * warned of; an entry of another shape is refused, never taken as "no key".
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "keyreg.h"

#define K1 "k1 000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f\n"
#define K1_OTHER "k1 1f1e1d1c1b1a191817161514131211100f0e0d0c0b0a09080706050403020100\n"
#define K2 "k2 ffeeddccbbaa99887766554433221100ffeeddccbbaa99887766554433221100\n"

static void ring(struct seal_keys *k, const char *text)
{
    char err[256];
    assert_int_equal(seal_keys_parse(text, strlen(text), "keys", k, err, sizeof(err)), 0);
}

static void fp_of(const char *text, size_t i, char out[KEYREG_FP_HEX + 1])
{
    struct seal_keys k;
    ring(&k, text);
    keyreg_fingerprint(&k.v[i], out);
    seal_keys_free(&k);
}

static void test_fingerprint(void **state)
{
    (void)state;
    char a[KEYREG_FP_HEX + 1], b[KEYREG_FP_HEX + 1], c[KEYREG_FP_HEX + 1], d[KEYREG_FP_HEX + 1];
    fp_of(K1, 0, a);
    fp_of(K2 K1, 1, b); /* the same bytes, elsewhere in a file */
    fp_of(K1_OTHER, 0, c);
    fp_of(K2, 0, d);
    assert_int_equal(strlen(a), KEYREG_FP_HEX);
    assert_string_equal(a, b);
    assert_string_not_equal(a, c);
    assert_string_not_equal(a, d);
    assert_null(strstr(K1, a)); /* not a piece of the key's hex */
    for (size_t i = 0; i < KEYREG_FP_HEX; i++)
        assert_non_null(strchr("0123456789abcdef", a[i]));
}

/* keyreg_decide of the key file text against reg; returns rc, err and warn. */
static int decide(const char *text, const struct keyreg_entry *reg, size_t n, char *err, size_t errlen,
                  struct strbuf *warn)
{
    struct seal_keys k = {0};
    if (text) ring(&k, text);
    err[0] = '\0';
    int rc = keyreg_decide(text ? &k : NULL, reg, n, warn, err, errlen);
    seal_keys_free(&k);
    return rc;
}

static void test_decisions(void **state)
{
    (void)state;
    char f1[KEYREG_FP_HEX + 1], f2[KEYREG_FP_HEX + 1], err[512];
    fp_of(K1, 0, f1);
    fp_of(K2, 0, f2);
    struct strbuf warn;
    strbuf_init(&warn);
    const struct keyreg_entry both[] = {{"k1", f1}, {"k2", f2}};

    /* Nothing registered, or exactly the file's keys: accepted. */
    assert_int_equal(decide(K1, NULL, 0, err, sizeof(err), &warn), 0);
    assert_int_equal(decide(NULL, NULL, 0, err, sizeof(err), &warn), 0);
    assert_int_equal(decide(K2 K1, both, 2, err, sizeof(err), &warn), 0);
    assert_int_equal(warn.len, 0);

    /* k1 dropped while not retired, from a file or with no file at all. */
    assert_int_equal(decide(K2, both, 2, err, sizeof(err), &warn), -HERALD_EINVAL);
    assert_non_null(strstr(err, "key 'k1' is no longer in key_file but is not retired"));
    assert_non_null(strstr(err, "heraldctl retire-key k1"));
    assert_int_equal(decide(NULL, both, 1, err, sizeof(err), &warn), -HERALD_EINVAL);
    assert_non_null(strstr(err, "key 'k1' is no longer in key_file"));

    /* k1 over other bytes. */
    assert_int_equal(decide(K1_OTHER, both, 1, err, sizeof(err), &warn), -HERALD_EINVAL);
    assert_non_null(strstr(err, "key 'k1' in key_file is not the key 'k1' that sealed data before"));

    /* k1 retired: may leave; further down it is warned of; first it is refused. */
    const struct keyreg_entry retired[] = {{"k1", "retired 1700000000"}, {"k2", f2}};
    assert_int_equal(decide(K2, retired, 2, err, sizeof(err), &warn), 0);
    assert_int_equal(warn.len, 0);
    assert_int_equal(decide(K2 K1_OTHER, retired, 2, err, sizeof(err), &warn), 0);
    assert_non_null(strstr(warn.buf, "key 'k1' in key_file was retired (retired 1700000000)"));
    assert_int_equal(decide(K1 K2, retired, 2, err, sizeof(err), &warn), -HERALD_EINVAL);
    assert_non_null(strstr(err, "key 'k1', the first of key_file (the one that seals), was retired"));

    /* An entry of another shape is refused, whatever the file. */
    const struct keyreg_entry odd[] = {{"k1", "5A5A"}};
    assert_int_equal(decide(K1, odd, 1, err, sizeof(err), &warn), -HERALD_EINVAL);
    assert_non_null(strstr(err, "neither a fingerprint nor"));
    strbuf_free(&warn);
}

static void test_reply_shape(void **state)
{
    (void)state;
    char err[256];
    redisReply el[2] = {{.type = REDIS_REPLY_STRING, .str = "k1", .len = 2},
                        {.type = REDIS_REPLY_INTEGER, .integer = 1}};
    redisReply *els[2] = {&el[0], &el[1]};
    redisReply arr = {.type = REDIS_REPLY_ARRAY, .elements = 2, .element = els};
    assert_int_equal(keyreg_decide_reply(NULL, &arr, NULL, err, sizeof(err)), -HERALD_EINVAL);
    arr.elements = 1;
    assert_int_equal(keyreg_decide_reply(NULL, &arr, NULL, err, sizeof(err)), -HERALD_EINVAL);
    redisReply nil = {.type = REDIS_REPLY_NIL};
    assert_int_equal(keyreg_decide_reply(NULL, &nil, NULL, err, sizeof(err)), -HERALD_EINVAL);
    redisReply empty = {.type = REDIS_REPLY_ARRAY};
    assert_int_equal(keyreg_decide_reply(NULL, &empty, NULL, err, sizeof(err)), 0);

    /* Registered: every id of the file is a field (a value is never taken for an id). */
    struct seal_keys k;
    ring(&k, K2 K1);
    assert_false(keyreg_registered(&k, &empty));
    assert_true(keyreg_registered(NULL, &empty));
    redisReply f[4] = {{.type = REDIS_REPLY_STRING, .str = "k1", .len = 2},
                       {.type = REDIS_REPLY_STRING, .str = "k2", .len = 2},
                       {.type = REDIS_REPLY_STRING, .str = "k2", .len = 2},
                       {.type = REDIS_REPLY_STRING, .str = "0011223344556677", .len = 16}};
    redisReply *fs[4] = {&f[0], &f[1], &f[2], &f[3]};
    redisReply reg = {.type = REDIS_REPLY_ARRAY, .elements = 2, .element = fs};
    assert_false(keyreg_registered(&k, &reg)); /* k1 only ("k2" is its value) */
    reg.elements = 4;
    assert_true(keyreg_registered(&k, &reg));
    assert_false(keyreg_registered(&k, &nil));
    seal_keys_free(&k);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fingerprint),
        cmocka_unit_test(test_decisions),
        cmocka_unit_test(test_reply_shape),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
