/*
 * test_rcluster.c - rcluster.c's pure part: the slot of a key as Redis
 * computes it (Redis's own examples), the tag table, the slot map parsed
 * from CLUSTER SHARDS and CLUSTER SLOTS replies (built here as hiredis
 * builds them), MOVED/ASK and the seed list.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "rcluster.h"

#define S(k) rcluster_slot(k, strlen(k))

static void slots_of_known_keys(void **st)
{
    (void)st;
    assert_int_equal(rcluster_crc16("123456789", 9), 0x31C3);
    assert_int_equal(S("123456789"), 12739);
    assert_int_equal(S("{user1000}.following"), S("{user1000}.followers"));
    assert_int_equal(S("{user1000}.following"), S("user1000"));
    /* An empty tag hashes the whole key; only the first '{' counts. */
    assert_int_equal(S("foo{}{bar}"), rcluster_crc16("foo{}{bar}", 10) & 16383);
    assert_int_not_equal(S("foo{}{bar}"), S("bar"));
    assert_int_equal(S("foo{{bar}}zap"), S("{bar"));
    assert_int_equal(S("foo{bar}{zap}"), S("bar"));
    /* What herald relies on: a person's keys share one slot, control keys another. */
    assert_int_equal(S("herald:r:{p-1}"), S("herald:r:{p-1}:history"));
    assert_int_equal(S("{herald}:jobs"), S("{herald}:campaign:c1:runs"));
    /* Values redis-cli's CLUSTER KEYSLOT gives. */
    assert_int_equal(S("foo"), 12182);
    assert_int_equal(S("bar"), 5061);
}

static void a_tag_for_every_slot(void **st)
{
    (void)st;
    for (unsigned s = 0; s < RCLUSTER_SLOTS; s++) {
        const char *t = rcluster_slot_tag(s);
        size_t n = strlen(t);
        assert_true(n >= 1 && n <= 4);
        assert_int_equal(rcluster_slot(t, n), s);
        char key[32];
        snprintf(key, sizeof(key), "herald:n:{%s}:audit", t);
        assert_int_equal(S(key), s);
    }
}

/* ---- replies as hiredis builds them -------------------------------------- */

static redisReply *str(const char *s)
{
    redisReply *r = calloc(1, sizeof(*r));
    r->type = REDIS_REPLY_STRING;
    r->str = strdup(s);
    r->len = strlen(s);
    return r;
}

static redisReply *num(long long v)
{
    redisReply *r = calloc(1, sizeof(*r));
    r->type = REDIS_REPLY_INTEGER;
    r->integer = v;
    return r;
}

static redisReply *arr(size_t n, ...)
{
    redisReply *r = calloc(1, sizeof(*r));
    r->type = REDIS_REPLY_ARRAY;
    r->elements = n;
    r->element = calloc(n ? n : 1, sizeof(*r->element));
    va_list ap;
    va_start(ap, n);
    for (size_t i = 0; i < n; i++) r->element[i] = va_arg(ap, redisReply *);
    va_end(ap);
    return r;
}

static void reply_free(redisReply *r)
{
    for (size_t i = 0; r->type == REDIS_REPLY_ARRAY && i < r->elements; i++) reply_free(r->element[i]);
    if (r->type == REDIS_REPLY_ARRAY) free(r->element);
    if (r->type == REDIS_REPLY_STRING) free(r->str);
    free(r);
}

static redisReply *node(const char *ip, long long port, const char *role, const char *health)
{
    return arr(10, str("id"), str("abc"), str("port"), num(port), str("ip"), str(ip), str("role"), str(role),
               str("health"), str(health));
}

static void map_from_shards(void **st)
{
    (void)st;
    /* Listed out of slot order, as Redis may; one shard's master failed
     * and its replica is not promoted yet: its slots are unserved. */
    redisReply *r = arr(3,
        arr(4, str("slots"), arr(2, num(10923), num(16383)), str("nodes"),
            arr(2, node("127.0.0.1", 7003, "master", "online"), node("127.0.0.1", 7006, "replica", "online"))),
        arr(4, str("slots"), arr(4, num(0), num(99), num(200), num(5460)), str("nodes"),
            arr(1, node("127.0.0.1", 7001, "master", "online"))),
        arr(4, str("slots"), arr(2, num(5461), num(10922)), str("nodes"),
            arr(2, node("127.0.0.1", 7002, "master", "failed"), node("127.0.0.1", 7005, "replica", "online"))));
    struct rcluster_map *m = malloc(sizeof(*m));
    char err[128];
    assert_int_equal(rcluster_map_from_shards(r, "10.0.0.1", m, err, sizeof(err)), 0);
    assert_int_equal(m->nmasters, 2);
    assert_int_equal(m->masters[0].port, 7001); /* by first slot */
    assert_string_equal(m->masters[0].host, "127.0.0.1");
    assert_int_equal(m->masters[1].port, 7003);
    assert_int_equal(m->owner[0], 0);
    assert_int_equal(m->owner[99], 0);
    assert_int_equal(m->owner[100], RCLUSTER_NONE);
    assert_int_equal(m->owner[5460], 0);
    assert_int_equal(m->owner[5461], RCLUSTER_NONE);
    assert_int_equal(m->owner[16383], 1);
    assert_int_equal(m->unserved, 100 + (10922 - 5461 + 1));
    reply_free(r);

    r = arr(1, arr(2, str("slots"), num(3)));
    assert_int_equal(rcluster_map_from_shards(r, "h", m, err, sizeof(err)), -HERALD_EINVAL);
    assert_non_null(strstr(err, "CLUSTER SHARDS"));
    reply_free(r);
    free(m);
}

static void map_from_slots(void **st)
{
    (void)st;
    redisReply *r = arr(2,
        arr(4, num(8192), num(16383), arr(3, str("127.0.0.1"), num(7002), str("id2")),
            arr(3, str("127.0.0.1"), num(7004), str("id4"))),
        arr(3, num(0), num(8191), arr(3, str(""), num(7001), str("id1"))));
    struct rcluster_map *m = malloc(sizeof(*m));
    char err[128];
    assert_int_equal(rcluster_map_from_slots(r, "10.0.0.9", m, err, sizeof(err)), 0);
    assert_int_equal(m->nmasters, 2);
    assert_string_equal(m->masters[0].host, "10.0.0.9"); /* no endpoint: the node asked */
    assert_int_equal(m->masters[0].port, 7001);
    assert_int_equal(m->owner[8191], 0);
    assert_int_equal(m->owner[8192], 1);
    assert_int_equal(m->unserved, 0);
    reply_free(r);
    r = arr(1, arr(3, num(0), num(20000), arr(2, str("h"), num(1))));
    assert_int_equal(rcluster_map_from_slots(r, "h", m, err, sizeof(err)), -HERALD_EINVAL);
    reply_free(r);
    free(m);
}

static void redirects(void **st)
{
    (void)st;
    unsigned slot = 0;
    struct rcluster_addr to;
    assert_int_equal(rcluster_redirect_parse("MOVED 3999 127.0.0.1:6381", &slot, &to), RCLUSTER_MOVED);
    assert_int_equal(slot, 3999);
    assert_string_equal(to.host, "127.0.0.1");
    assert_int_equal(to.port, 6381);
    assert_int_equal(rcluster_redirect_parse("ASK 12 ::1:7000", &slot, &to), RCLUSTER_ASK);
    assert_string_equal(to.host, "::1");
    assert_int_equal(rcluster_redirect_parse("MOVED 16384 h:1", &slot, &to), RCLUSTER_NO_REDIRECT);
    assert_int_equal(rcluster_redirect_parse("MOVED x h:1", &slot, &to), RCLUSTER_NO_REDIRECT);
    assert_int_equal(rcluster_redirect_parse("MOVED 1 h", &slot, &to), RCLUSTER_NO_REDIRECT);
    assert_int_equal(rcluster_redirect_parse("ERR MOVED 1 h:1", &slot, &to), RCLUSTER_NO_REDIRECT);
}

static void seeds(void **st)
{
    (void)st;
    struct rcluster_addr a[4];
    size_t n;
    char err[128];
    assert_int_equal(rcluster_parse_seeds("127.0.0.1:7000, redis-2:7001,redis-3:7002", a, 4, &n, err, sizeof(err)), 0);
    assert_int_equal(n, 3);
    assert_string_equal(a[1].host, "redis-2");
    assert_int_equal(a[2].port, 7002);
    assert_int_equal(rcluster_parse_seeds("", a, 4, &n, err, sizeof(err)), -HERALD_EINVAL);
    assert_int_equal(rcluster_parse_seeds("host", a, 4, &n, err, sizeof(err)), -HERALD_EINVAL);
    assert_int_equal(rcluster_parse_seeds("h:0", a, 4, &n, err, sizeof(err)), -HERALD_EINVAL);
    assert_int_equal(rcluster_parse_seeds("h:70000", a, 4, &n, err, sizeof(err)), -HERALD_EINVAL);
    assert_int_equal(rcluster_parse_seeds(":7000", a, 4, &n, err, sizeof(err)), -HERALD_EINVAL);
    assert_int_equal(rcluster_parse_seeds("a:1,b:2,c:3,d:4,e:5", a, 4, &n, err, sizeof(err)), -HERALD_EINVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(slots_of_known_keys), cmocka_unit_test(a_tag_for_every_slot),
        cmocka_unit_test(map_from_shards),     cmocka_unit_test(map_from_slots),
        cmocka_unit_test(redirects),           cmocka_unit_test(seeds),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
