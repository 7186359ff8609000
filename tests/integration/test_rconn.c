/*
 * test_rconn.c - replies read through rconn (the daemon's async
 * connection) against a real redis-server: rconn builds each reply in a few
 * blocks of its own rather than an allocation per element, so every shape
 * of reply is checked here, byte for byte: strings from empty to 256 KiB,
 * thousands of elements over many blocks, nil, integers, status and error
 * replies, empty arrays, nested arrays as streams and scripts return them.
 * Under AddressSanitizer this is also the test of the block arithmetic.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <hiredis/hiredis.h>
#include <uv.h>

#include "rconn.h"
#include "redis_fixture.h"

#define NLIST 3000
#define BIG (256 * 1024)

static redisContext *sync_c;
static int port;

static int setup(void **st)
{
    (void)st;
    return redis_fixture_start(&sync_c, &port);
}

static int teardown(void **st)
{
    (void)st;
    redis_fixture_stop(sync_c);
    return 0;
}

/* The i-th list value: its length and bytes follow from i alone. */
static size_t value_len(int i) { return i == NLIST / 2 ? BIG : (size_t)(i % 300); }
static char value_byte(int i, size_t j) { return (char)('a' + (i + (int)j) % 26); }

static void seed(void)
{
    redisReply *r = redisCommand(sync_c, "FLUSHALL");
    freeReplyObject(r);
    char *v = malloc(BIG);
    for (int i = 0; i < NLIST; i++) {
        size_t n = value_len(i);
        for (size_t j = 0; j < n; j++) v[j] = value_byte(i, j);
        r = redisCommand(sync_c, "RPUSH list %b", v, n);
        assert_int_equal(r->type, REDIS_REPLY_INTEGER);
        freeReplyObject(r);
    }
    free(v);
    freeReplyObject(redisCommand(sync_c, "HSET h f1 v1"));
    for (int i = 0; i < 3; i++) freeReplyObject(redisCommand(sync_c, "XADD s * a %d b two", i));
}

struct run {
    uv_loop_t loop;
    struct rconn *rc;
    int pending;
    int checked;
};

static void issue(struct run *run, rconn_reply_cb cb, int argc, const char **argv)
{
    size_t lens[8];
    for (int i = 0; i < argc; i++) lens[i] = strlen(argv[i]);
    assert_int_equal(rconn_commandargv(run->rc, cb, run, argc, argv, lens), 0);
    run->pending++;
}

static void done_one(struct run *run)
{
    run->checked++;
    if (--run->pending == 0) rconn_close(run->rc, NULL, NULL);
}

static void on_list(struct rconn *rc, redisReply *r, void *arg)
{
    (void)rc;
    assert_non_null(r);
    assert_int_equal(r->type, REDIS_REPLY_ARRAY);
    assert_int_equal(r->elements, NLIST);
    for (int i = 0; i < NLIST; i++) {
        const redisReply *e = r->element[i];
        assert_int_equal(e->type, REDIS_REPLY_STRING);
        assert_int_equal(e->len, value_len(i));
        for (size_t j = 0; j < e->len; j++)
            if (e->str[j] != value_byte(i, j)) fail_msg("element %d byte %zu differs", i, j);
        assert_int_equal(e->str[e->len], '\0');
    }
    done_one(arg);
}

static void on_hmget(struct rconn *rc, redisReply *r, void *arg)
{
    (void)rc;
    assert_int_equal(r->type, REDIS_REPLY_ARRAY);
    assert_int_equal(r->elements, 2);
    assert_string_equal(r->element[0]->str, "v1");
    assert_int_equal(r->element[1]->type, REDIS_REPLY_NIL);
    done_one(arg);
}

static void on_xrange(struct rconn *rc, redisReply *r, void *arg)
{
    (void)rc;
    assert_int_equal(r->type, REDIS_REPLY_ARRAY);
    assert_int_equal(r->elements, 3);
    for (size_t i = 0; i < 3; i++) {
        const redisReply *entry = r->element[i];
        assert_int_equal(entry->elements, 2);
        assert_int_equal(entry->element[0]->type, REDIS_REPLY_STRING); /* the id */
        const redisReply *f = entry->element[1];
        assert_int_equal(f->elements, 4);
        char want[8];
        snprintf(want, sizeof(want), "%zu", i);
        assert_string_equal(f->element[0]->str, "a");
        assert_string_equal(f->element[1]->str, want);
        assert_string_equal(f->element[3]->str, "two");
    }
    done_one(arg);
}

static void on_script(struct rconn *rc, redisReply *r, void *arg)
{
    (void)rc;
    /* {7, '', {'x', {-2, false}}, {}} */
    assert_int_equal(r->type, REDIS_REPLY_ARRAY);
    assert_int_equal(r->elements, 4);
    assert_int_equal(r->element[0]->integer, 7);
    assert_int_equal(r->element[1]->type, REDIS_REPLY_STRING);
    assert_int_equal(r->element[1]->len, 0);
    const redisReply *n = r->element[2];
    assert_string_equal(n->element[0]->str, "x");
    assert_int_equal(n->element[1]->element[0]->integer, -2);
    assert_int_equal(n->element[1]->element[1]->type, REDIS_REPLY_NIL);
    assert_int_equal(r->element[3]->type, REDIS_REPLY_ARRAY);
    assert_int_equal(r->element[3]->elements, 0);
    done_one(arg);
}

static void on_plain(struct rconn *rc, redisReply *r, void *arg)
{
    (void)rc;
    switch (r->type) {
    case REDIS_REPLY_STATUS: assert_string_equal(r->str, "PONG"); break;
    case REDIS_REPLY_INTEGER: assert_int_equal(r->integer, 1); break;
    case REDIS_REPLY_ERROR: assert_non_null(strstr(r->str, "unknown command")); break;
    case REDIS_REPLY_NIL: break;
    case REDIS_REPLY_STRING: assert_int_equal(r->len, BIG); break;
    case REDIS_REPLY_ARRAY: assert_int_equal(r->elements, 0); break;
    default: fail_msg("unexpected reply type %d", r->type);
    }
    done_one(arg);
}

/* One element far larger than the room a first block guesses for it. */
static void on_one_big(struct rconn *rc, redisReply *r, void *arg)
{
    (void)rc;
    assert_int_equal(r->type, REDIS_REPLY_ARRAY);
    assert_int_equal(r->elements, 1);
    assert_int_equal(r->element[0]->len, BIG);
    for (size_t j = 0; j < BIG; j++)
        if (r->element[0]->str[j] != value_byte(NLIST / 2, j)) fail_msg("byte %zu differs", j);
    done_one(arg);
}

static void on_state(struct rconn *rc, bool connected, const char *err, void *arg)
{
    struct run *run = arg;
    (void)rc;
    if (!connected) {
        assert_int_equal(run->pending, 0); /* only the close, once all is checked */
        (void)err;
        return;
    }
    if (run->pending || run->checked) return;
    const char *lrange[] = {"LRANGE", "list", "0", "-1"};
    const char *hmget[] = {"HMGET", "h", "f1", "nope"};
    const char *xrange[] = {"XRANGE", "s", "-", "+"};
    const char *script[] = {"EVAL", "return {7, '', {'x', {-2, false}}, {}}", "0"};
    const char *ping[] = {"PING"};
    const char *incr[] = {"INCR", "counter"};
    const char *bogus[] = {"NOSUCHCOMMAND"};
    const char *get_nil[] = {"GET", "nope"};
    const char *big[] = {"LINDEX", "list", "1500"};
    const char *empty[] = {"LRANGE", "nope", "0", "-1"};
    const char *one_big[] = {"LRANGE", "list", "1500", "1500"};
    /* Twice over, so that blocks freed by one reply are reused by the next. */
    for (int round = 0; round < 2; round++) {
        issue(run, on_list, 4, lrange);
        issue(run, on_hmget, 4, hmget);
        issue(run, on_xrange, 4, xrange);
        issue(run, on_script, 3, script);
        issue(run, on_plain, 1, ping);
        if (round == 0) issue(run, on_plain, 2, incr);
        issue(run, on_plain, 1, bogus);
        issue(run, on_plain, 2, get_nil);
        issue(run, on_plain, 3, big);
        issue(run, on_plain, 4, empty);
        issue(run, on_one_big, 4, one_big);
    }
}

static void every_shape_of_reply_arrives_intact(void **st)
{
    (void)st;
    seed();
    struct run run = {0};
    assert_int_equal(uv_loop_init(&run.loop), 0);
    struct rconn_options opt = {.name = "test", .host = "127.0.0.1", .port = port, .timeout_ms = 10000};
    run.rc = rconn_new(&run.loop, &opt, on_state, &run);
    rconn_start(run.rc);
    uv_run(&run.loop, UV_RUN_DEFAULT);
    assert_int_equal(run.checked, 21);
    assert_int_equal(run.pending, 0);
    assert_int_equal(uv_loop_close(&run.loop), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(every_shape_of_reply_arrives_intact),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
