/*
 * test_dispatch.c - dispatch's own rules on a real libuv loop with the fake
 * plugin (scripted verdicts, delivered on libuv's worker threads): the
 * handoff gate (one callback per loop iteration, nothing starts before the
 * owner's answer, no second pass on a retry, interrupt and abort while
 * messages wait for the answer), waiting for an open circuit without
 * counting attempts, give_up_after and the campaign's expires_at ending
 * that wait as provider_unavailable, and a 429 (slow_down) neither opening
 * the circuit nor using up the message's retries.
 *
 * Owns a temporary directory (the config file) and its loop. Time is the
 * loop's real time: the durations here are the config's smallest (1 s).
 * Invariant: every message a test submits is done before it returns,
 * except where the test says so.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <uv.h>

#include "config.h"
#include "dispatch.h"
#include "log.h"
#include "metrics.h"
#include "plugin.h"
#include "fake_config.h"

#ifndef FAKE_PLUGIN_DIR
#error "FAKE_PLUGIN_DIR must name build/tests/plugins"
#endif

#define NMSG 8

struct fx {
    struct fake_config fc;
    uv_loop_t loop;
    struct dispatch *d;
    struct dispatch_msg m[NMSG];
    char rid[NMSG][16];
    int done[NMSG];      /* done callbacks per message: must end at 1 */
    int ndone;
    /* the handoff callback's calls */
    int gate_calls;
    struct dispatch_msg *asked[NMSG * 2];
    size_t nasked;
    bool answer_inside; /* answer go for all from inside the callback */
};

static void on_done(struct dispatch_msg *m, void *arg)
{
    struct fx *fx = arg;
    fx->done[m - fx->m]++;
    fx->ndone++;
}

static void on_handoff(struct dispatch_msg **msgs, size_t n, void *arg)
{
    struct fx *fx = arg;
    fx->gate_calls++;
    for (size_t i = 0; i < n; i++) {
        /* nothing reached the plugin before the answer */
        assert_int_equal(msgs[i]->requests, 0);
        assert_false(msgs[i]->handed);
        fx->asked[fx->nasked++] = msgs[i];
    }
    if (fx->answer_inside) {
        bool go[NMSG * 2];
        for (size_t i = 0; i < n; i++) go[i] = true;
        dispatch_handoff_done(fx->d, msgs, n, go);
    }
}

/* A dispatch over one provider "a" (the fake plugin) with extra lines. */
static struct fx *fx_new(const char *provider_extra)
{
    struct fx *fx = calloc(1, sizeof(*fx));
    assert_non_null(fx);
    fake_config_load(&fx->fc, "", provider_extra);
    assert_int_equal(uv_loop_init(&fx->loop), 0);
    fx->d = dispatch_new(&fx->loop, &fx->fc.cfg, fx->fc.ps);
    for (int i = 0; i < NMSG; i++) {
        snprintf(fx->rid[i], sizeof(fx->rid[i]), "r%d", i);
        fx->m[i] = (struct dispatch_msg){.channel = HERALD_CH_EMAIL, .campaign = "c1", .recipient = fx->rid[i],
                                         .topic = "news", .to = "x@example.org", .text = "hi",
                                         .idempotency_key = fx->rid[i]};
    }
    return fx;
}

static void fx_free(struct fx *fx)
{
    dispatch_close(fx->d);
    uv_run(&fx->loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&fx->loop), 0);
    dispatch_free(fx->d);
    fake_config_free(&fx->fc);
    free(fx);
}

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* Runs the loop until ndone reaches want (or the loop has nothing left to
 * do, or max_ms passed); returns the milliseconds it took. */
static uint64_t run_until_done(struct fx *fx, int want, uint64_t max_ms)
{
    uint64_t t0 = now_ms();
    while (fx->ndone < want && now_ms() - t0 < max_ms) {
        if (uv_run(&fx->loop, UV_RUN_ONCE) == 0 && fx->ndone < want) break; /* idle: waiting for us */
    }
    return now_ms() - t0;
}

static void submit(struct fx *fx, int i)
{
    assert_int_equal(dispatch_submit(fx->d, &fx->m[i], on_done, fx), 0);
}

/* ---- reload ------------------------------------------------------------- */

struct released {
    const struct config *cfg[4];
    int n;
};

static void on_release(const struct config *cfg, struct plugin_set *ps, void *arg)
{
    (void)ps; /* the fixtures free their own */
    struct released *r = arg;
    r->cfg[r->n++] = cfg;
}

static int count_lines(const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f) return 0;
    int n = 0, c;
    while ((c = fgetc(f)) != EOF) n += c == '\n';
    fclose(f);
    return n;
}

/* The message at the provider finishes there; the ones waiting unseen in
 * its FIFO go to the new configuration's provider; the old configuration
 * is given back once its last message is done, the new one at free. */
static void reload_moves_the_waiting_and_finishes_the_rest_on_the_old(void **state)
{
    (void)state;
    char old_rec[64], new_rec[64], extra[160];
    snprintf(old_rec, sizeof(old_rec), "/tmp/herald-test-reload-old-%d", (int)getpid());
    snprintf(new_rec, sizeof(new_rec), "/tmp/herald-test-reload-new-%d", (int)getpid());
    unlink(old_rec);
    unlink(new_rec);
    snprintf(extra, sizeof(extra), "concurrency = 1\ndelay_ms = 200\nrecord = %s\n", old_rec);
    struct fx *fx = fx_new(extra);
    struct released rel = {0};
    dispatch_set_release(fx->d, on_release, &rel);
    for (int i = 0; i < 4; i++) submit(fx, i);
    struct fake_config next;
    snprintf(extra, sizeof(extra), "concurrency = 4\nrecord = %s\n", new_rec);
    fake_config_load(&next, "", extra);
    dispatch_reload(fx->d, &next.cfg, next.ps);
    assert_int_equal(dispatch_generations(fx->d), 2);
    assert_int_equal(dispatch_in_flight(fx->d), 4);
    run_until_done(fx, 4, 5000);
    for (int i = 0; i < 4; i++) {
        assert_int_equal(fx->done[i], 1);
        assert_int_equal(fx->m[i].outcome, HERALD_OUTCOME_SENT);
        assert_int_equal(fx->m[i].requests, 1);
    }
    assert_int_equal(count_lines(old_rec), 1); /* m0, at the provider when the reload came */
    assert_int_equal(count_lines(new_rec), 3); /* m1..m3, waiting unseen */
    for (int i = 0; i < 10 && rel.n == 0; i++) uv_run(&fx->loop, UV_RUN_NOWAIT); /* the timers' close */
    assert_int_equal(rel.n, 1);
    assert_ptr_equal(rel.cfg[0], &fx->fc.cfg);
    assert_int_equal(dispatch_generations(fx->d), 1);
    fx_free(fx); /* dispatch_free gives the current one back */
    assert_int_equal(rel.n, 2);
    assert_ptr_equal(rel.cfg[1], &next.cfg);
    fake_config_free(&next);
    unlink(old_rec);
    unlink(new_rec);
}

/* Messages already asked at the gate stay with the old generation (the
 * owner answers for them there); only the unseen one moves. A recall (a
 * pause) reaches the waiting messages of both generations. */
static void reload_keeps_the_asked_and_recall_reaches_every_generation(void **state)
{
    (void)state;
    char old_rec[64], extra[160];
    snprintf(old_rec, sizeof(old_rec), "/tmp/herald-test-reload-asked-%d", (int)getpid());
    unlink(old_rec);
    snprintf(extra, sizeof(extra), "concurrency = 1\ndelay_ms = 300\nrecord = %s\n", old_rec);
    struct fx *fx = fx_new(extra);
    struct released rel = {0};
    dispatch_set_release(fx->d, on_release, &rel);
    dispatch_set_handoff(fx->d, on_handoff, fx);
    for (int i = 0; i < 3; i++) submit(fx, i);
    run_until_done(fx, 1, 300);
    assert_int_equal(fx->nasked, 2); /* m0 and m1 (ahead); m2 unseen */
    struct fake_config next;
    fake_config_load(&next, "", "concurrency = 1\n");
    dispatch_reload(fx->d, &next.cfg, next.ps);
    bool go[2] = {true, true};
    dispatch_handoff_done(fx->d, fx->asked, 2, go); /* m0 starts on the old provider, m1 waits for its slot */
    for (int i = 0; i < 10 && fx->nasked < 3; i++) uv_run(&fx->loop, UV_RUN_NOWAIT); /* m0 takes 300 ms */
    assert_int_equal(fx->ndone, 0);
    assert_int_equal(fx->nasked, 3); /* m2, moved, asked by the new generation */
    assert_ptr_equal(fx->asked[2], &fx->m[2]);
    dispatch_recall(fx->d);
    assert_int_equal(fx->done[1], 1);
    assert_true(fx->m[1].interrupted);
    /* m2 took the new provider's free slot while asked: it stays until answered */
    assert_int_equal(fx->done[2], 0);
    bool no = false;
    dispatch_handoff_done(fx->d, &fx->asked[2], 1, &no);
    assert_int_equal(fx->done[2], 1);
    assert_true(fx->m[2].interrupted);
    run_until_done(fx, 3, 5000);
    assert_int_equal(fx->m[0].outcome, HERALD_OUTCOME_SENT); /* it was at the provider */
    assert_int_equal(count_lines(old_rec), 1);
    for (int i = 0; i < 10 && rel.n == 0; i++) uv_run(&fx->loop, UV_RUN_NOWAIT);
    assert_int_equal(rel.n, 1);
    fx_free(fx);
    assert_int_equal(rel.n, 2);
    fake_config_free(&next);
    unlink(old_rec);
}

/* ---- the handoff gate ------------------------------------------------- */

/* herald_provider_handoff_wait_seconds_total of provider, as /metrics
 * renders it (-1: absent). */
static double handoff_wait(const char *provider)
{
    struct strbuf out;
    strbuf_init(&out);
    metrics_render(&out, &(struct metrics_gauges){.stream_lag = -1, .stream_pending = -1, .scheduled = -1});
    char want[128];
    snprintf(want, sizeof(want), "herald_provider_handoff_wait_seconds_total{provider=\"%s\"} ", provider);
    const char *at = strstr(out.buf, want);
    double v = at ? strtod(at + strlen(want), NULL) : -1;
    strbuf_free(&out);
    return v;
}

static void gate_batches_and_waits_for_the_answer(void **state)
{
    (void)state;
    metrics_reset();
    struct fx *fx = fx_new("concurrency = 8\n");
    dispatch_set_handoff(fx->d, on_handoff, fx);
    for (int i = 0; i < 5; i++) submit(fx, i);
    run_until_done(fx, 5, 2000);
    /* One call for the five, and none of them started. */
    assert_int_equal(fx->gate_calls, 1);
    assert_int_equal(fx->nasked, 5);
    assert_int_equal(fx->ndone, 0);
    assert_int_equal(dispatch_in_flight(fx->d), 5);
    /* Each holds one of the eight slots while it waits: counted once it
     * lets the slot go (none yet). */
    assert_true(handoff_wait("a") <= 0);
    usleep(30 * 1000);
    /* Answers in any order, a subset at a time. */
    struct dispatch_msg *first[2] = {fx->asked[3], fx->asked[0]};
    bool go1[2] = {true, false};
    dispatch_handoff_done(fx->d, first, 2, go1);
    run_until_done(fx, 2, 5000);
    struct dispatch_msg *g = fx->asked[3], *ng = fx->asked[0];
    assert_int_equal(fx->done[g - fx->m], 1);
    assert_int_equal(g->outcome, HERALD_OUTCOME_SENT);
    assert_true(g->handed);
    assert_int_equal(g->requests, 1);
    assert_int_equal(fx->done[ng - fx->m], 1);
    assert_int_equal(ng->outcome, HERALD_OUTCOME_UNKNOWN);
    assert_int_equal(ng->reason, HERALD_REASON_INTERRUPTED);
    assert_true(ng->interrupted);
    assert_false(ng->handed);
    assert_int_equal(ng->requests, 0);
    /* Answering again for a message already answered changes nothing. */
    dispatch_handoff_done(fx->d, first, 2, go1);
    struct dispatch_msg *rest[3] = {fx->asked[1], fx->asked[2], fx->asked[4]};
    bool go2[3] = {true, true, true};
    dispatch_handoff_done(fx->d, rest, 3, go2);
    run_until_done(fx, 5, 5000);
    assert_int_equal(fx->ndone, 5);
    for (int i = 0; i < 5; i++) assert_int_equal(fx->done[i], 1);
    assert_int_equal(fx->gate_calls, 1);
    /* The five slots waited at least the 30 ms before the answers, the
     * refused one's included. */
    assert_true(handoff_wait("a") >= 5 * 0.030);
    fx_free(fx);
}

/* The gate asks ahead of the slots, at most `concurrency` messages per
 * provider: with concurrency 1 the message holding the slot and the next
 * one are asked in one call, a third only once the second has a slot. A
 * message cleared ahead starts the moment the slot frees, with no call of
 * its own. A retry of a message let go does not pass the gate again. */
static void gate_asks_ahead_of_the_slots_and_is_passed_once(void **state)
{
    (void)state;
    struct fx *fx = fx_new("concurrency = 1\nverdicts = retry, accept\nretry_after_ms = 0\n");
    dispatch_set_handoff(fx->d, on_handoff, fx);
    for (int i = 0; i < 3; i++) submit(fx, i);
    run_until_done(fx, 1, 300);
    assert_int_equal(fx->ndone, 0);
    assert_int_equal(fx->gate_calls, 1);
    assert_int_equal(fx->nasked, 2);
    assert_ptr_equal(fx->asked[0], &fx->m[0]);
    assert_ptr_equal(fx->asked[1], &fx->m[1]);
    bool go[2] = {true, true};
    dispatch_handoff_done(fx->d, fx->asked, 2, go);
    /* m0: retry (1 s backoff); m1, cleared, takes the freed slot at once
     * and is sent; then m2 is asked. */
    run_until_done(fx, 1, 800);
    assert_int_equal(fx->done[1], 1);
    assert_int_equal(fx->m[1].outcome, HERALD_OUTCOME_SENT);
    assert_int_equal(fx->nasked, 3);
    assert_int_equal(fx->gate_calls, 2);
    assert_ptr_equal(fx->asked[2], &fx->m[2]);
    dispatch_handoff_done(fx->d, &fx->asked[2], 1, go);
    run_until_done(fx, 3, 10000);
    assert_int_equal(fx->ndone, 3);
    assert_int_equal(fx->nasked, 3); /* the retries did not come back to the gate */
    assert_int_equal(fx->m[1].requests, 1);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(fx->m[i].outcome, HERALD_OUTCOME_SENT);
        assert_true(fx->m[i].handed);
    }
    fx_free(fx);
}

/* `lookahead = 0`: nothing is recorded ahead of a slot (what a crash
 * leaves handed and unsent is then only what holds a slot). Each message
 * is asked only once it holds the slot, so each takes a gate call of its
 * own; with the default (the concurrency, 1 here) the next one is asked
 * beside it (above). */
static void gate_asks_nothing_ahead_with_lookahead_0(void **state)
{
    (void)state;
    struct fx *fx = fx_new("concurrency = 1\nlookahead = 0\n");
    dispatch_set_handoff(fx->d, on_handoff, fx);
    for (int i = 0; i < 3; i++) submit(fx, i);
    run_until_done(fx, 1, 300);
    assert_int_equal(fx->gate_calls, 1);
    assert_int_equal(fx->nasked, 1);
    assert_ptr_equal(fx->asked[0], &fx->m[0]);
    bool go = true;
    for (int i = 0; i < 3; i++) {
        assert_int_equal(fx->nasked, i + 1);
        assert_ptr_equal(fx->asked[i], &fx->m[i]);
        dispatch_handoff_done(fx->d, &fx->asked[i], 1, &go);
        run_until_done(fx, i + 1, 2000);
        assert_int_equal(fx->done[i], 1);
        assert_int_equal(fx->m[i].outcome, HERALD_OUTCOME_SENT);
        for (int k = 0; k < 20 && fx->nasked < (size_t)i + 2 && i < 2; k++) uv_run(&fx->loop, UV_RUN_NOWAIT);
    }
    assert_int_equal(fx->gate_calls, 3);
    fx_free(fx);
}

/* A message the owner refuses while it waits ahead of a slot (its person
 * was erased) ends interrupted when its turn comes, never sent; the one
 * behind it is unaffected. */
static void gate_refused_ahead_is_never_sent(void **state)
{
    (void)state;
    struct fx *fx = fx_new("concurrency = 1\n");
    dispatch_set_handoff(fx->d, on_handoff, fx);
    for (int i = 0; i < 3; i++) submit(fx, i);
    run_until_done(fx, 1, 300);
    assert_int_equal(fx->nasked, 2);
    struct dispatch_msg *one = fx->asked[1];
    bool no = false, yes = true;
    dispatch_handoff_done(fx->d, &one, 1, &no); /* m1, still without a slot */
    assert_int_equal(fx->ndone, 0);
    dispatch_handoff_done(fx->d, &fx->asked[0], 1, &yes);
    run_until_done(fx, 2, 2000);
    assert_int_equal(fx->done[1], 1);
    assert_true(fx->m[1].interrupted);
    assert_false(fx->m[1].handed);
    assert_int_equal(fx->m[1].requests, 0);
    /* m2 was asked once m1 left the FIFO */
    assert_int_equal(fx->nasked, 3);
    dispatch_handoff_done(fx->d, &fx->asked[2], 1, &yes);
    run_until_done(fx, 3, 2000);
    assert_int_equal(fx->m[0].outcome, HERALD_OUTCOME_SENT);
    assert_int_equal(fx->m[2].outcome, HERALD_OUTCOME_SENT);
    assert_int_equal(dispatch_in_flight(fx->d), 0);
    fx_free(fx);
}

/* The owner may answer from inside its callback. */
static void gate_answer_inside_the_callback(void **state)
{
    (void)state;
    struct fx *fx = fx_new("concurrency = 4\n");
    dispatch_set_handoff(fx->d, on_handoff, fx);
    fx->answer_inside = true;
    for (int i = 0; i < 4; i++) submit(fx, i);
    run_until_done(fx, 4, 5000);
    assert_int_equal(fx->ndone, 4);
    for (int i = 0; i < 4; i++) assert_int_equal(fx->m[i].outcome, HERALD_OUTCOME_SENT);
    fx_free(fx);
}

/* Interrupt leaves messages the owner was shown waiting for its answer,
 * which then ends them as interrupted whatever it says; abort ends them at
 * once and makes a later answer harmless. */
static void gate_interrupt_and_abort(void **state)
{
    (void)state;
    struct fx *fx = fx_new("concurrency = 4\n");
    dispatch_set_handoff(fx->d, on_handoff, fx);
    for (int i = 0; i < 3; i++) submit(fx, i);
    run_until_done(fx, 3, 2000);
    assert_int_equal(fx->nasked, 3);
    dispatch_interrupt(fx->d);
    assert_int_equal(fx->ndone, 0);
    bool go[3] = {true, true, true};
    dispatch_handoff_done(fx->d, fx->asked, 1, go);
    assert_int_equal(fx->ndone, 1);
    struct dispatch_msg *m = fx->asked[0];
    assert_int_equal(m->outcome, HERALD_OUTCOME_UNKNOWN);
    assert_true(m->interrupted);
    assert_false(m->handed);
    assert_int_equal(m->requests, 0);
    dispatch_abort(fx->d);
    assert_int_equal(fx->ndone, 3);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(fx->done[i], 1);
        assert_true(fx->m[i].interrupted);
    }
    /* After abort the answer reads nothing (the messages may be gone). */
    memset(&fx->m[1], 0xAB, sizeof(fx->m[1]));
    dispatch_handoff_done(fx->d, fx->asked + 1, 2, go);
    assert_int_equal(fx->ndone, 3);
    assert_int_equal(dispatch_in_flight(fx->d), 0);
    fx_free(fx);
}

/* ---- waiting for the provider ------------------------------------------ */

/* The only provider fails twice (each failure reopens its circuit): the
 * message waits for the circuit instead of using up its retries, and is
 * sent when the provider recovers. Every request is counted. */
static void open_circuit_is_waited_for_not_attempted(void **state)
{
    (void)state;
    struct fx *fx = fx_new("verdicts = retry, retry, accept\nretries = 0\ncircuit_failures = 1\n"
                           "circuit_cooldown = 1s\n");
    submit(fx, 0);
    uint64_t took = run_until_done(fx, 1, 15000);
    assert_int_equal(fx->ndone, 1);
    assert_int_equal(fx->m[0].outcome, HERALD_OUTCOME_SENT);
    assert_int_equal(fx->m[0].requests, 3);
    assert_true(took >= 1900); /* two cool-downs */
    fx_free(fx);
}

/* give_up_after bounds the wait: failed, provider_unavailable, with the
 * one request that opened the circuit and no probe (cool-down 5 s). */
static void give_up_after_ends_the_wait(void **state)
{
    (void)state;
    struct fx *fx = fx_new("concurrency = 1\nverdicts = retry\nretries = 0\ncircuit_failures = 1\ncircuit_cooldown = 5s\n"
                           "give_up_after = 1s\n");
    submit(fx, 0);
    submit(fx, 1);
    uint64_t took = run_until_done(fx, 2, 10000);
    assert_int_equal(fx->ndone, 2);
    for (int i = 0; i < 2; i++) {
        assert_int_equal(fx->m[i].outcome, HERALD_OUTCOME_FAILED);
        assert_int_equal(fx->m[i].reason, HERALD_REASON_PROVIDER_UNAVAILABLE);
    }
    /* m0 opened the circuit; m1 never reached the provider */
    assert_int_equal(fx->m[0].requests + fx->m[1].requests, 1);
    assert_true(took >= 900 && took < 4000);
    fx_free(fx);
}

/* give_up_after = 0: only the campaign's end stops the wait. */
static void expires_at_ends_the_wait(void **state)
{
    (void)state;
    struct fx *fx = fx_new("verdicts = retry\nretries = 0\ncircuit_failures = 1\ncircuit_cooldown = 1h\n"
                           "give_up_after = 0\n");
    fx->m[0].expires_at = (int64_t)time(NULL) + 2;
    fx->m[1].expires_at = 0; /* never: still waiting at the end */
    submit(fx, 0);
    submit(fx, 1);
    uint64_t took = run_until_done(fx, 1, 6000);
    assert_int_equal(fx->ndone, 1);
    assert_int_equal(fx->done[0], 1);
    assert_int_equal(fx->m[0].outcome, HERALD_OUTCOME_FAILED);
    assert_int_equal(fx->m[0].reason, HERALD_REASON_PROVIDER_UNAVAILABLE);
    assert_true(took >= 900 && took < 4000);
    assert_int_equal(fx->done[1], 0);
    dispatch_interrupt(fx->d); /* the other one ends interrupted, never failed */
    assert_int_equal(fx->done[1], 1);
    assert_int_equal(fx->m[1].outcome, HERALD_OUTCOME_UNKNOWN);
    assert_true(fx->m[1].interrupted);
    fx_free(fx);
}

/* Answers of 429 (slow_down) open no circuit and use up no retries: with
 * retries = 0 and circuit_failures = 1 every message is still sent, soon
 * (not after a 30 s cool-down). */
static void slow_down_neither_opens_the_circuit_nor_fails(void **state)
{
    (void)state;
    struct fx *fx = fx_new("concurrency = 1\nverdicts = slow, slow, accept, accept, accept, accept\n"
                           "retry_after_ms = 200\nretries = 0\ncircuit_failures = 1\n");
    for (int i = 0; i < 3; i++) submit(fx, i);
    uint64_t took = run_until_done(fx, 3, 20000);
    assert_int_equal(fx->ndone, 3);
    int requests = 0;
    for (int i = 0; i < 3; i++) {
        assert_int_equal(fx->m[i].outcome, HERALD_OUTCOME_SENT);
        requests += fx->m[i].requests;
    }
    assert_int_equal(requests, 5);
    assert_true(took < 10000);
    fx_free(fx);
}

/* A 429 with give_up_after short: the wait's bound ends it too. */
static void slow_down_is_bounded_by_give_up_after(void **state)
{
    (void)state;
    struct fx *fx = fx_new("verdicts = slow\nretry_after_ms = 300\ngive_up_after = 1s\n");
    submit(fx, 0);
    run_until_done(fx, 1, 10000);
    assert_int_equal(fx->ndone, 1);
    assert_int_equal(fx->m[0].outcome, HERALD_OUTCOME_FAILED);
    assert_int_equal(fx->m[0].reason, HERALD_REASON_PROVIDER_UNAVAILABLE);
    assert_true(fx->m[0].requests >= 2);
    fx_free(fx);
}

static bool of_campaign(const struct dispatch_msg *m, void *arg)
{
    return strcmp(m->campaign, arg) == 0;
}

/* A recall of one owner's messages (a run paused beside others) finishes
 * those waiting for a slot at once, as interrupted, and leaves the others
 * in the provider's FIFO, in order, to be sent; the one at the provider
 * finishes there. */
static void recall_if_takes_only_the_matching_messages(void **state)
{
    (void)state;
    struct fx *fx = fx_new("concurrency = 1\ndelay_ms = 100\n");
    for (int i = 0; i < 6; i++) {
        fx->m[i].campaign = i % 2 ? "c2" : "c1";
        submit(fx, i);
    }
    dispatch_recall_if(fx->d, of_campaign, "c2"); /* m1, m3, m5: waiting for the slot m0 holds */
    assert_int_equal(fx->ndone, 3);
    for (int i = 1; i < 6; i += 2) {
        assert_int_equal(fx->done[i], 1);
        assert_true(fx->m[i].interrupted);
        assert_int_equal(fx->m[i].requests, 0);
    }
    assert_int_equal(dispatch_in_flight(fx->d), 3);
    assert_int_equal(dispatch_in_flight_channel(fx->d, HERALD_CH_EMAIL), 3);
    run_until_done(fx, 6, 5000);
    for (int i = 0; i < 6; i += 2) {
        assert_int_equal(fx->done[i], 1);
        assert_int_equal(fx->m[i].outcome, HERALD_OUTCOME_SENT);
    }
    assert_int_equal(dispatch_in_flight_channel(fx->d, HERALD_CH_EMAIL), 0);
    fx_free(fx);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(reload_moves_the_waiting_and_finishes_the_rest_on_the_old),
        cmocka_unit_test(reload_keeps_the_asked_and_recall_reaches_every_generation),
        cmocka_unit_test(gate_batches_and_waits_for_the_answer),
        cmocka_unit_test(gate_asks_ahead_of_the_slots_and_is_passed_once),
        cmocka_unit_test(gate_refused_ahead_is_never_sent),
        cmocka_unit_test(gate_asks_nothing_ahead_with_lookahead_0),
        cmocka_unit_test(gate_answer_inside_the_callback),
        cmocka_unit_test(gate_interrupt_and_abort),
        cmocka_unit_test(open_circuit_is_waited_for_not_attempted),
        cmocka_unit_test(give_up_after_ends_the_wait),
        cmocka_unit_test(expires_at_ends_the_wait),
        cmocka_unit_test(slow_down_neither_opens_the_circuit_nor_fails),
        cmocka_unit_test(slow_down_is_bounded_by_give_up_after),
        cmocka_unit_test(recall_if_takes_only_the_matching_messages),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
