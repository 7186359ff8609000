/*
 * test_store_cmd.c - the command layer (store_cmd.h) against a real
 * redis-server started here on a free loopback port, through the daemon's
 * async connection (rconn): what STORE_CMD_ONCE promises an interactive
 * caller, next to what a default command promises the job pipeline.
 *
 *   - refused at once, its callback never firing, while the connection is
 *     down (an HTTP caller answers 503 at once);
 *   - an OOM error reply (maxmemory 1) reaches a ONCE callback as
 *     STORE_E_OOM with a NULL reply, while a default command sent after it
 *     is retried and lands once maxmemory is raised;
 *   - a ONCE command denied by an ACL gets STORE_E_NOPERM;
 *   - a ONCE EVALSHA after SCRIPT FLUSH still gets its answer (NOSCRIPT:
 *     the body is sent once);
 *   - a ONCE command whose connection is killed gets STORE_E_CONNECTION;
 *   - every callback fires exactly once;
 *   - what a demoted master answers (READONLY, a refused WAIT, a WAIT
 *     unblocked by the demotion) is known as a replica's.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <hiredis/hiredis.h>
#include <uv.h>

#include "rconn.h"
#include "redis_fixture.h"
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

#define sync_ok(...) redis_fixture_ok(sync_c, __VA_ARGS__)

/* What one callback saw. */
struct seen {
    int calls;
    bool reply;           /* a reply (not NULL) */
    int type;             /* its type */
    char str[64];         /* its text, when a string or status */
    enum store_error err;
};

struct run {
    uv_loop_t loop;
    struct rconn *rc;
    struct store_cmds *sc;
    uv_timer_t timer;
    int step;
    struct seen once_oom, dflt, once_noperm, once_script, once_killed, refused;
};

static void record(struct seen *s, redisReply *r, enum store_error err)
{
    s->calls++;
    s->reply = r != NULL;
    s->err = err;
    if (r) {
        s->type = r->type;
        if (r->type == REDIS_REPLY_STRING || r->type == REDIS_REPLY_STATUS)
            snprintf(s->str, sizeof(s->str), "%s", r->str);
        else if (r->type == REDIS_REPLY_INTEGER)
            snprintf(s->str, sizeof(s->str), "%lld", r->integer);
    }
}

static void next_step(struct run *run);

static void on_timer_step(uv_timer_t *t) { next_step(t->data); }

static void on_seen(redisReply *r, enum store_error err, const char *text, void *arg)
{
    (void)text;
    record(arg, r, err);
}

static void on_once_oom(redisReply *r, enum store_error err, const char *text, void *arg)
{
    struct run *run = arg;
    (void)text;
    record(&run->once_oom, r, err);
    /* The default command sent behind it is being retried: give memory
     * back a little later, and it lands. */
    uv_timer_start(&run->timer, on_timer_step, 300, 0);
}

static void on_dflt(redisReply *r, enum store_error err, const char *text, void *arg)
{
    struct run *run = arg;
    (void)text;
    record(&run->dflt, r, err);
    next_step(run);
}

static void on_once_script(redisReply *r, enum store_error err, const char *text, void *arg)
{
    struct run *run = arg;
    (void)text;
    record(&run->once_script, r, err);
    next_step(run);
}

static void on_step_done(redisReply *r, enum store_error err, const char *text, void *arg)
{
    struct run *run = arg;
    (void)text;
    record(&run->once_noperm, r, err);
    next_step(run);
}

static void on_killed(redisReply *r, enum store_error err, const char *text, void *arg)
{
    struct run *run = arg;
    (void)text;
    record(&run->once_killed, r, err);
    store_cmds_free(run->sc, NULL, NULL);
    rconn_close(run->rc, NULL, NULL);
}

static void kill_clients(uv_timer_t *t)
{
    (void)t;
    /* Every client but this one: the async connection's BLPOP is cut. */
    sync_ok("CLIENT KILL TYPE normal SKIPME yes");
}

static const char script[] = "#!lua\nreturn ARGV[1] .. '!'\n";

static void next_step(struct run *run)
{
    run->step++;
    switch (run->step) {
    case 1: {
        /* Over maxmemory with noeviction: every write is refused OOM. */
        sync_ok("CONFIG SET maxmemory-policy noeviction");
        sync_ok("CONFIG SET maxmemory 1");
        assert_int_equal(STORE_SEND(run->sc, STORE_CMD_ONCE, on_once_oom, run, "SET", "once", "1"), 0);
        assert_int_equal(STORE_SEND(run->sc, 0, on_dflt, run, "SET", "dflt", "1"), 0);
        break;
    }
    case 2:
        /* The ONCE command has its answer; the default one waits. */
        assert_int_equal(run->dflt.calls, 0);
        sync_ok("CONFIG SET maxmemory 0");
        break;
    case 3: {
        /* An ACL denial: permanent, to the ONCE callback at once. */
        sync_ok("ACL SETUSER default -hset");
        assert_int_equal(STORE_SEND(run->sc, STORE_CMD_ONCE, on_step_done, run, "HSET", "h", "f", "v"), 0);
        break;
    }
    case 4: {
        sync_ok("ACL SETUSER default +@all");
        sync_ok("SCRIPT FLUSH");
        struct store_args a;
        store_args_script(&a, script, 0);
        store_args_add(&a, "hi");
        assert_int_equal(store_cmds_send(run->sc, STORE_CMD_ONCE, on_once_script, run, NULL, &a, script), 0);
        break;
    }
    case 5:
        assert_int_equal(STORE_SEND(run->sc, STORE_CMD_ONCE, on_killed, run, "BLPOP", "nothing", "5"), 0);
        uv_timer_start(&run->timer, kill_clients, 200, 0);
        break;
    default: break;
    }
}

static void on_state(struct rconn *rc, bool connected, const char *err, void *arg)
{
    struct run *run = arg;
    (void)rc;
    (void)err;
    if (!connected) return;
    store_cmds_connected(run->sc);
    if (run->step == 0) next_step(run);
}

static void once_fails_fast_and_default_waits(void **st)
{
    (void)st;
    freeReplyObject(redisCommand(sync_c, "FLUSHALL"));
    struct run run;
    memset(&run, 0, sizeof(run));
    assert_int_equal(uv_loop_init(&run.loop), 0);
    uv_timer_init(&run.loop, &run.timer);
    run.timer.data = &run;
    struct rconn_options opt = {.name = "test", .host = "127.0.0.1", .port = port, .timeout_ms = 10000};
    run.rc = rconn_new(&run.loop, &opt, on_state, &run);
    run.sc = store_cmds_new(&run.loop, run.rc, "test");

    /* Not connected yet: refused at once, the callback never fires. */
    assert_int_equal(STORE_SEND(run.sc, STORE_CMD_ONCE, on_seen, &run.refused, "PING"), -HERALD_EREDIS);
    struct store_args a;
    store_args_script(&a, script, 0);
    store_args_add(&a, "x");
    assert_int_equal(store_cmds_send(run.sc, STORE_CMD_ONCE, on_seen, &run.refused, NULL, &a, script),
                     -HERALD_EREDIS);
    store_args_free(&a);

    rconn_start(run.rc);
    uv_run(&run.loop, UV_RUN_DEFAULT);
    uv_close((uv_handle_t *)&run.timer, NULL);
    uv_run(&run.loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&run.loop), 0);

    assert_int_equal(run.refused.calls, 0);

    assert_int_equal(run.once_oom.calls, 1);
    assert_false(run.once_oom.reply);
    assert_int_equal(run.once_oom.err, STORE_E_OOM);
    assert_int_equal(store_error_class(run.once_oom.err), STORE_TRANSIENT);

    assert_int_equal(run.dflt.calls, 1);
    assert_true(run.dflt.reply);
    assert_int_equal(run.dflt.err, STORE_E_COUNT);
    assert_string_equal(run.dflt.str, "OK");

    assert_int_equal(run.once_noperm.calls, 1);
    assert_false(run.once_noperm.reply);
    assert_int_equal(run.once_noperm.err, STORE_E_NOPERM);

    assert_int_equal(run.once_script.calls, 1);
    assert_true(run.once_script.reply);
    assert_string_equal(run.once_script.str, "hi!");

    assert_int_equal(run.once_killed.calls, 1);
    assert_false(run.once_killed.reply);
    assert_int_equal(run.once_killed.err, STORE_E_CONNECTION);

    /* What landed: the default write, never the refused ONCE one. */
    redisReply *r = redisCommand(sync_c, "MGET once dflt");
    assert_int_equal(r->element[0]->type, REDIS_REPLY_NIL);
    assert_string_equal(r->element[1]->str, "1");
    freeReplyObject(r);
}

/* What a master that a failover demoted answers, in Redis's own words:
 * each names a replica (store_error_from_replica), so the cluster layer
 * reads the slot map again and a finishing write whose WAIT failed goes
 * again (docs/architecture.md "A master that stalls and comes back as a
 * replica"). The WAIT blocked when the demotion came is the one a stalled
 * master gives most often, and the one easiest to miss. */
static void a_demoted_masters_answers_name_a_replica(void **st)
{
    (void)st;
    redisContext *blocked = redisConnect("127.0.0.1", port);
    assert_non_null(blocked);
    assert_int_equal(blocked->err, 0);
    /* A WAIT for a replica this server does not have: it blocks. */
    assert_int_equal(redisAppendCommand(blocked, "WAIT 1 10000"), REDIS_OK);
    int done = 0;
    while (!done) assert_int_equal(redisBufferWrite(blocked, &done), REDIS_OK);
    bool held = false;
    for (int i = 0; i < 200 && !held; i++) { /* until the server holds it */
        redisReply *info = redisCommand(sync_c, "INFO clients");
        held = strstr(info->str, "blocked_clients:1\r") != NULL;
        freeReplyObject(info);
        if (!held) usleep(10000);
    }
    assert_true(held); /* else the demotion would meet no blocked WAIT */
    /* Demoted (its new master is a port nobody listens on: it stays a
     * replica, never syncing). */
    int nobody = port == 1 ? 2 : 1;
    freeReplyObject(redisCommand(sync_c, "REPLICAOF 127.0.0.1 %d", nobody));

    redisReply *unblocked = NULL;
    assert_int_equal(redisGetReply(blocked, (void **)&unblocked), REDIS_OK);
    redisReply *wait = redisCommand(sync_c, "WAIT 1 10");
    redisReply *write = redisCommand(sync_c, "SET demoted 1");
    freeReplyObject(redisCommand(sync_c, "REPLICAOF NO ONE"));

    redisReply *answers[] = {unblocked, wait, write};
    for (size_t i = 0; i < sizeof(answers) / sizeof(answers[0]); i++) {
        assert_int_equal(answers[i]->type, REDIS_REPLY_ERROR);
        enum store_error err = store_error_classify(answers[i]->str);
        if (!store_error_from_replica(err, answers[i]->str)) fail_msg("not known as a replica's: %s", answers[i]->str);
        freeReplyObject(answers[i]);
    }
    /* Nor is every error a replica's. */
    assert_false(store_error_from_replica(STORE_E_ERROR, "ERR unknown command 'WAT'"));
    assert_false(store_error_from_replica(STORE_E_OOM, "OOM command not allowed"));
    redisFree(blocked);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(once_fails_fast_and_default_waits),
        cmocka_unit_test(a_demoted_masters_answers_name_a_replica),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
