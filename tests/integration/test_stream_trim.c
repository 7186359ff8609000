/*
 * test_stream_trim.c - stream_trim.c on a real libuv loop against a real
 * redis-server started here: each round deletes what has become older
 * than its stream's age since the round before (so the rounds do come
 * every period, not only at start), keeps the younger entries and the
 * streams without an age, counts what it deleted, and a reload applies a
 * new age at once. The ages leave seconds of slack: a slow machine makes
 * the test longer, not wrong.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>
#include <hiredis/hiredis.h>
#include <uv.h>

#include "config.h"
#include "metrics.h"
#include "rconn.h"
#include "redis_fixture.h"
#include "stream_trim.h"
#include "store_cmd.h"

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

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static long long xlen(const char *key)
{
    redisReply *r = redisCommand(sync_c, "XLEN %s", key);
    assert_non_null(r);
    long long n = r->integer;
    freeReplyObject(r);
    return n;
}

/* An entry added age_ms ago, as Redis would have numbered it then. */
static void seed(const char *key, int64_t age_ms, int seq)
{
    redis_fixture_ok(sync_c, "XADD %s %lld-%d f v", key, (long long)(now_ms() - age_ms), seq);
}

static long long trimmed(const char *stream)
{
    struct strbuf out;
    strbuf_init(&out);
    struct metrics_gauges g = {.stream_lag = -1, .stream_pending = -1, .scheduled = -1, .redis_waiting = -1,
                               .redis_connected = -1};
    metrics_render(&out, &g);
    char needle[96];
    snprintf(needle, sizeof(needle), "herald_retention_trimmed_total{stream=\"%s\"} ", stream);
    const char *p = strstr(out.buf, needle);
    long long n = p ? strtoll(p + strlen(needle), NULL, 10) : -1;
    strbuf_free(&out);
    return n;
}

struct run {
    uv_loop_t loop;
    struct rconn *rc;
    struct store_cmds *sc;
    struct stream_trim *ret;
    uv_timer_t timer;
    int step;
    struct config cfg, next;
    long long audit_at_first_look;
};

static void on_state(struct rconn *rc, bool connected, const char *err, void *arg)
{
    struct run *run = arg;
    (void)rc;
    (void)err;
    if (connected) store_cmds_connected(run->sc);
}

static void on_look(uv_timer_t *t)
{
    struct run *run = t->data;
    switch (run->step++) {
    case 0:
        /* 400 ms in: two rounds ran; only what was already 3 s old is gone. */
        run->audit_at_first_look = xlen("herald:audit");
        uv_timer_start(&run->timer, on_look, 3200, 0);
        break;
    case 1:
        /* 3.6 s in: the entries that were new at start are 3.6 s old, past
         * the age: a round since deleted them. Now no audit age, 1 h for
         * dead letters. */
        stream_trim_reload(run->ret, &run->next);
        uv_timer_start(&run->timer, on_look, 300, 0);
        break;
    default:
        stream_trim_close(run->ret);
        uv_close((uv_handle_t *)&run->timer, NULL);
        store_cmds_free(run->sc, NULL, NULL);
        rconn_close(run->rc, NULL, NULL);
        break;
    }
}

static void rounds_by_age(void **st)
{
    (void)st;
    freeReplyObject(redisCommand(sync_c, "FLUSHALL"));
    metrics_reset();
    seed("herald:audit", 9000, 0);    /* gone at the first round */
    seed("herald:audit", 0, 1);       /* 3 s old after 3 s: gone at a later round */
    seed("herald:events", 9000, 0);
    seed("herald:events", 0, 1);
    seed("herald:dead", 86400000, 0); /* no age for dead letters: kept, until the reload */
    seed("herald:dead", 0, 1);

    struct run run;
    memset(&run, 0, sizeof(run));
    run.cfg.prefix = "herald";
    run.cfg.retention_audit_ms = 3000;
    run.next = run.cfg;
    run.next.retention_audit_ms = 0;
    run.next.retention_dead_letters_ms = 3600 * 1000;
    assert_int_equal(uv_loop_init(&run.loop), 0);
    uv_timer_init(&run.loop, &run.timer);
    run.timer.data = &run;
    struct rconn_options opt = {.name = "test", .host = "127.0.0.1", .port = port, .timeout_ms = 10000};
    run.rc = rconn_new(&run.loop, &opt, on_state, &run);
    run.sc = store_cmds_new(&run.loop, run.rc, "test");
    run.ret = stream_trim_new(&run.loop, run.sc, &run.cfg, 150);
    uv_timer_start(&run.timer, on_look, 400, 0);
    rconn_start(run.rc);
    int64_t start = now_ms();
    uv_run(&run.loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&run.loop), 0);
    stream_trim_free(run.ret);

    if (now_ms() - start < 3600) fail_msg("the loop ended early");
    assert_int_equal(run.audit_at_first_look, 1);
    assert_int_equal(xlen("herald:audit"), 0);
    assert_int_equal(xlen("herald:events"), 0);
    assert_int_equal(xlen("herald:dead"), 1);
    assert_int_equal(trimmed("audit"), 2);
    assert_int_equal(trimmed("events"), 2);
    assert_int_equal(trimmed("admin"), 0);
    assert_int_equal(trimmed("dead"), 1);
}

static void minid(void **st)
{
    (void)st;
    char buf[32];
    stream_trim_minid(buf, sizeof(buf), 1765000000123LL, 1000);
    assert_string_equal(buf, "1764999999123-0");
    stream_trim_minid(buf, sizeof(buf), 1000, 5000);
    assert_string_equal(buf, "0-0");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(minid),
        cmocka_unit_test(rounds_by_age),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
