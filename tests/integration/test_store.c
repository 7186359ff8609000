/*
 * test_store.c - the queue's Lua scripts (daemon/lua, store.h) against a
 * real redis-server started here on a free loopback port: lookup (its
 * reply in the layout of store.h's STORE_LOOKUP_*), reserve
 * (including the `rev` check that makes a change of mind apply to a
 * message already looked up, and the takeover of a dead run's
 * reservation), release, finish (history cap, no record for an erased
 * person, aggregated progress, the handoffs it records too), the fence
 * every writing script
 * starts with, and the heartbeat. The daemon's e2e tests cover them end
 * to end; these pin the contracts down where a failure names the script.
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

#include "redis_fixture.h"
#include "job.h"
#include "store.h"
#include "store_events.h"

static redisContext *rc;

static int setup(void **st)
{
    (void)st;
    int port;
    return redis_fixture_start(&rc, &port);
}

static int teardown(void **st)
{
    (void)st;
    redis_fixture_stop(rc);
    rc = NULL;
    return 0;
}

static redisReply *cmd(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    redisReply *r = redisvCommand(rc, fmt, ap);
    va_end(ap);
    assert_non_null(r);
    return r;
}

#define cmd_ok(...) redis_fixture_ok(rc, __VA_ARGS__)

/* The integer or the string a command answers (the command names itself
 * in the failure). */
static void expect_int(const char *command, long long want)
{
    redisReply *r = cmd(command);
    if (r->type != REDIS_REPLY_INTEGER || r->integer != want)
        fail_msg("%s: got %lld (type %d), expected %lld", command, r->integer, r->type, want);
    freeReplyObject(r);
}

static void expect_str(const char *command, const char *want)
{
    redisReply *r = cmd(command);
    if (r->type != REDIS_REPLY_STRING || strcmp(r->str, want) != 0)
        fail_msg("%s: got \"%s\" (type %d), expected \"%s\"", command, r->str ? r->str : "", r->type, want);
    freeReplyObject(r);
}

/* EVAL script with argv (NULL-terminated), nkeys of them keys. */
static redisReply *eval(const char *script, int nkeys, const char **args)
{
    const char *argv[256];
    int argc = 0;
    char nk[16];
    snprintf(nk, sizeof(nk), "%d", nkeys);
    argv[argc++] = "EVAL";
    argv[argc++] = script;
    argv[argc++] = nk;
    for (; *args; args++) argv[argc++] = *args;
    redisReply *r = redisCommandArgv(rc, argc, argv, NULL);
    assert_non_null(r);
    if (r->type == REDIS_REPLY_ERROR) fail_msg("script error: %s", r->str);
    return r;
}

/* The fence: job entry 1-1 of t:jobs, group g, pending for consumer "me". */
static void own_entry(void)
{
    cmd_ok("XGROUP CREATE t:jobs g $ MKSTREAM");
    cmd_ok("XADD t:jobs 1-1 job x");
    redisReply *r = cmd("XREADGROUP GROUP g me COUNT 1 STREAMS t:jobs >");
    assert_int_equal(r->type, REDIS_REPLY_ARRAY);
    freeReplyObject(r);
}

/* EVAL of a fenced script: t:jobs goes before the nkeys keys of args, and
 * the fence's group, entry, consumer before the other arguments. */
static redisReply *eval_fenced(const char *script, int nkeys, const char **args)
{
    const char *all[256];
    int n = 0;
    all[n++] = "t:jobs";
    for (int i = 0; i < nkeys; i++) all[n++] = args[i];
    all[n++] = "g";
    all[n++] = "1-1";
    all[n++] = "me";
    for (const char **a = args + nkeys; *a; a++) all[n++] = *a;
    all[n] = NULL;
    return eval(script, nkeys + 1, all);
}

/* finish.lua, its arguments given as its tests list them: the keys, the 6
 * values after the fence (ARGV 4 .. 9, the last the number of outcomes),
 * then per outcome 15 values (id, record, unsend, history, channel,
 * outcome, reason, provider, provider_id, at, flags, requests, provider
 * id key, locale, slot), then the handoffs' records; sent in the script's
 * layout, each outcome a kind of its own. */
static redisReply *finish_fenced(int nkeys, const char **args)
{
    static const int kind_of[] = {4, 5, 6, 7, 9, 10, 11, 13, 1, 3}; /* a kind's 10 values, in order */
    static const int own_of[] = {0, 8, 14};                         /* then an outcome's own 3, its kind */
    const char *all[256];
    char names[32][12], flags[32][16];
    int n = 0;
    for (int i = 0; i < nkeys + 6; i++) all[n++] = args[i];
    int nout = (int)strtol(args[nkeys + 5], NULL, 10);
    assert_true(nout < 32);
    all[n++] = args[nkeys + 5]; /* as many kinds */
    const char **o = args + nkeys + 6;
    for (int k = 0; k < nout; k++) {
        /* "x": the outcome carries its sends member and provider id key. */
        const char *const *v = o + 15 * k;
        snprintf(flags[k], sizeof(flags[k]), "%s%s", v[10], v[2][0] || v[12][0] ? "x" : "");
        for (int j = 0; j < 10; j++) all[n++] = kind_of[j] == 10 ? flags[k] : v[kind_of[j]];
    }
    for (int k = 0; k < nout; k++) {
        const char *const *v = o + 15 * k;
        for (int j = 0; j < 3; j++) all[n++] = v[own_of[j]];
        snprintf(names[k], sizeof(names[k]), "%d", k + 1);
        all[n++] = names[k];
        if (flags[k][0] && strchr(flags[k], 'x')) {
            all[n++] = v[2];
            all[n++] = v[12];
        }
    }
    for (const char **a = o + 15 * nout; *a; a++) all[n++] = *a;
    all[n] = NULL;
    return eval_fenced(store_lua_finish, nkeys, all);
}

/* reserve.lua, its arguments given as its tests list them: the keys, now,
 * campaign, topic, history, ncaps and the caps' 5 values each, then per
 * recipient rev, record, channel, and "" or "+" then prior, member, keep,
 * nfreq and its limits' 3 values each; sent in the script's layout: the
 * first recipient's channel the call's usual one, a recipient of "" on it
 * in 3 values, any other in the long form. */
static redisReply *reserve_fenced(int nkeys, const char **args)
{
    const char *all[256];
    int n = 0;
    for (int i = 0; i < nkeys + 5; i++) all[n++] = args[i];
    int ncaps = (int)strtol(args[nkeys + 4], NULL, 10);
    for (int i = 0; i < 5 * ncaps; i++) all[n++] = args[nkeys + 5 + i];
    const char **r = args + nkeys + 5 + 5 * ncaps;
    const char *uch = r[2];
    all[n++] = uch;
    for (int k = 0; k < nkeys; k++) {
        all[n++] = r[0];
        all[n++] = r[1];
        bool plain = r[3][0] == '\0';
        if (plain && strcmp(r[2], uch) == 0) {
            all[n++] = "";
            r += 4;
            continue;
        }
        all[n++] = "+";
        all[n++] = r[2];
        if (plain) {
            static const char *const none[] = {"", "", "0", "0"};
            for (int j = 0; j < 4; j++) all[n++] = none[j];
            r += 4;
            continue;
        }
        int nf = (int)strtol(r[7], NULL, 10);
        for (int j = 4; j < 8 + 3 * nf; j++) all[n++] = r[j];
        r += 8 + 3 * nf;
    }
    assert_null(*r);
    all[n] = NULL;
    return eval_fenced(store_lua_reserve, nkeys, all);
}

static void expect_lost(redisReply *r)
{
    if (r->type != REDIS_REPLY_STRING || strcmp(r->str, "lost") != 0)
        fail_msg("expected 'lost', got type %d %s", r->type, r->type == REDIS_REPLY_STRING ? r->str : "");
    freeReplyObject(r);
}

/* One reserve call for two people, no caps: rev "1" for a, given rev_b for b. */
static redisReply *reserve_two(const char *rev_a, const char *rev_b, const char *record_b)
{
    const char *args[] = {"t:r:{a}", "t:r:{b}",
                          "1000", "c1", "news", "50", "0",
                          rev_a, "reserved 1-0 run 1000 1", "email", "", /* the short form */
                          rev_b, record_b, "email", "+", "", "email|news|c1", "0", "0", NULL};
    return reserve_fenced(2, args);
}

static void reserve_refuses_a_person_changed_since_the_lookup(void **st)
{
    (void)st;
    cmd_ok("FLUSHALL");
    own_entry();
    cmd_ok("HSET t:r:{a} rev 1");
    cmd_ok("HSET t:r:{b} rev 7"); /* changed (API, page, webhook) after the daemon read rev 6 */
    redisReply *r = reserve_two("1", "6", "reserved 1-0 run 1000 2");
    assert_int_equal(r->elements, 2);
    assert_string_equal(r->element[0]->str, "h0"); /* reserved, in the first slot of a's history */
    assert_string_equal(r->element[1]->str, "stale");
    freeReplyObject(r);
    expect_str("HGET t:r:{a} hn", "1");
    expect_str("HGET t:r:{a} h0", ""); /* the slot written empty: finish.lua's HSET creates no field */
    expect_int("HEXISTS t:r:{b} hn", 0);
    r = cmd("HGET t:r:{b} c:c1");
    assert_int_equal(r->type, REDIS_REPLY_NIL); /* nothing reserved for b */
    freeReplyObject(r);
    expect_str("HGET t:r:{a} c:c1", "reserved 1-0 run 1000 1");

    /* Decided again with the new rev: reserved. A person erased meanwhile
     * (no hash, rev "") is stale for any rev that was read. */
    r = reserve_two("1", "7", "reserved 1-0 run 1000 3");
    assert_string_equal(r->element[0]->str, "duplicate reserved 1-0 run 1000 1"); /* a: its own record, met again */
    assert_string_equal(r->element[1]->str, "h0");
    freeReplyObject(r);
    cmd_ok("DEL t:r:{b}");
    r = reserve_two("1", "7", "reserved 1-0 run 1000 4");
    assert_string_equal(r->element[1]->str, "stale");
    freeReplyObject(r);
}

/* A recipient on another channel than the call's first one takes the long
 * form; each is reserved with its own record, and the caps of its own
 * channel apply to it. */
static void reserve_short_and_long_forms(void **st)
{
    (void)st;
    cmd_ok("FLUSHALL");
    own_entry();
    cmd_ok("HSET t:r:{a} rev 1");
    cmd_ok("HSET t:r:{b} rev 2");
    cmd_ok("HSET t:r:{c} rev 3");
    /* No SMS at all: a cap of 0 on sms refuses b alone. */
    const char *args[] = {"t:r:{a}", "t:r:{b}", "t:r:{c}", "1000", "c1", "news", "50", "1",
                          "no_sms", "sms", "0", "86400", "",
                          "1", "reserved 1-0 run 1000 1", "email", "",
                          "2", "reserved 1-0 run 1000 2", "sms", "",
                          "3", "reserved 1-0 run 1000 3", "email", "", NULL};
    redisReply *r = reserve_fenced(3, args);
    assert_int_equal(r->elements, 3);
    assert_string_equal(r->element[0]->str, "h0");
    assert_string_equal(r->element[1]->str, "cap no_sms");
    assert_string_equal(r->element[2]->str, "h0");
    freeReplyObject(r);
    expect_str("HGET t:r:{a} c:c1", "reserved 1-0 run 1000 1");
    expect_int("HEXISTS t:r:{b} c:c1", 0);
    expect_str("HGET t:r:{c} c:c1", "reserved 1-0 run 1000 3");
}

static void reserve_checks_caps_in_order(void **st)
{
    (void)st;
    cmd_ok("FLUSHALL");
    own_entry();
    cmd_ok("ZADD t:r:{a}:sends 990 email|news|old1 995 sms|news|old2");
    const char *args[] = {"t:r:{a}", "1000", "c1", "news", "50", "2",
                          "daily_email", "email", "1", "86400", "",
                          "any_news", "any", "5", "86400", ",news,",
                          "", "reserved 1-0 run 1000 1", "email", "+", "", "email|news|c1", "86400", "0", NULL};
    redisReply *r = reserve_fenced(1, args);
    assert_string_equal(r->element[0]->str, "cap daily_email");
    freeReplyObject(r);
    /* Nothing was reserved: the history still holds the two old messages. */
    expect_int("ZCARD t:r:{a}:sends", 2);
}

static void finish_writes_record_history_audit_and_progress(void **st)
{
    (void)st;
    cmd_ok("FLUSHALL");
    own_entry();
    cmd_ok("HSET t:r:{a} rev 1");
    /* b was erased while its message was in flight: no key of b comes back.
     * u has no profile: no record, flag "n". */
    const char *fixed[] = {"t:audit", "t:campaign:c1", "t:campaign:c1:norecord"};
    const char *per_a = "t:r:{a}", *per_b = "t:r:{b}", *per_u = "t:r:{u}";
    for (int round = 0; round < 3; round++) {
        const char *args[64];
        int n = 0;
        for (int k = 0; k < 3; k++) args[n++] = fixed[k];
        args[n++] = per_a;
        args[n++] = per_b;
        args[n++] = per_u;
        /* Each round is a different outcome for a (a new record), except
         * that rounds 1 and 2 carry the same, in the same batch: round 2 is
         * the same command sent again after a lost connection. */
        char rec[64];
        snprintf(rec, sizeof(rec), "sent 1-0 run.%d 1000", round == 2 ? 1 : round);
        const char *vals[] = {"1000", "c1", "1-0", round == 0 ? "b0" : "b1", "100", "3",
                              "a", rec, "", "{\"campaign\":\"c1\"}", "email", "sent", "", "p1",
                              "id-1", "2026-01-01T00:00:00Z", "", "1", "t:pid:p1:id-1", "", "",
                              "b", "sent 1-0 run 1000", "", "{\"campaign\":\"c1\"}", "email", "sent", "", "p1",
                              "id-2", "2026-01-01T00:00:00Z", "", "2", "", "", "",
                              "u", "", "", "", "", "suppressed", "unknown_recipient", "", "",
                              "2026-01-01T00:00:00Z", "n", "", "", "", "", NULL};
        for (int k = 0; vals[k]; k++) args[n++] = vals[k];
        args[n] = NULL;
        redisReply *r = finish_fenced(6, args);
        /* b and u have no record to tell a repeat by: each is written the
         * first time only, through the campaign's norecord set. */
        assert_int_equal(r->element[0]->integer, round == 0 ? 3 : round == 1 ? 1 : 0);
        freeReplyObject(r);
    }
    {
        /* A second copy of a in the job's recipients, decided a moment
         * later in another batch: the same state by the same run is the
         * same outcome, written once. */
        const char *args[] = {fixed[0], fixed[1], fixed[2], per_a, "1000", "c1", "1-0", "b9", "100",
                              "1", "a", "sent 1-0 run.1 1999", "", "{}", "email", "sent", "", "p1", "id-1",
                              "2026-01-01T00:00:01Z", "", "1", "", "", "", NULL};
        redisReply *r = finish_fenced(4, args);
        assert_int_equal(r->element[0]->integer, 0);
        freeReplyObject(r);
    }
    expect_str("HGET t:campaign:c1 sent", "3"); /* a twice (the repeat counted once), b once */
    expect_str("HGET t:campaign:c1 suppressed:unknown_recipient", "1");
    expect_int("XLEN t:audit", 4); /* the audit names no address: b's record stays */
    expect_int("SCARD t:campaign:c1:norecord", 5); /* b and u, and the three batches */
    /* A provider with `feedback = on` gets its provider id remembered (30
     * days) for its callbacks; one without (b) gets no key. */
    expect_str("GET t:pid:p1:id-1", "c1 a email");
    {
        redisReply *t = cmd("TTL t:pid:p1:id-1");
        assert_true(t->integer > 29 * 86400 && t->integer <= 30 * 86400);
        freeReplyObject(t);
    }
    expect_int("EXISTS t:pid:p1:id-2", 0);
    expect_int("EXISTS t:r:{u} t:r:{u}:history", 0); /* an id with no profile gets no key of its own */
    /* The same job enqueued again is a new run (another stream entry): audited again. */
    {
        const char *args[] = {fixed[0], fixed[1], fixed[2], per_u, "1000", "c1",
                              "2-0", "b2", "100", "1", "u", "", "", "", "", "suppressed", "unknown_recipient", "", "",
                              "2026-01-01T00:00:00Z", "n", "", "", "", "", NULL};
        redisReply *r = finish_fenced(4, args);
        assert_int_equal(r->element[0]->integer, 1);
        freeReplyObject(r);
        r = finish_fenced(4, args);
        assert_int_equal(r->element[0]->integer, 0);
        freeReplyObject(r);
    }
    /* a's two outcomes took the first two slots of its history's ring. */
    expect_str("HGET t:r:{a} hn", "2");
    expect_str("HGET t:r:{a} h1", "{\"campaign\":\"c1\"}");
    expect_int("EXISTS t:r:{a}:history t:r:{b} t:r:{b}:history", 0);

    /* Leaving the deferred count, and the history keeps the newest STORE_HISTORY_MAX. */
    cmd_ok("HSET t:campaign:c1 deferred:quiet_hours %d", STORE_HISTORY_MAX + 20);
    for (int i = 0; i < STORE_HISTORY_MAX + 20; i++) {
        char h[64], rec[64], batch[16];
        snprintf(h, sizeof(h), "{\"n\":%d}", i);
        snprintf(rec, sizeof(rec), "suppressed 1-0 run.%d 2000", i);
        snprintf(batch, sizeof(batch), "h%d", i);
        const char *args[] = {"t:audit", "t:campaign:c1", "t:campaign:c1:norecord", per_a, "1000", "c1", "1-0", batch, "100", "1",
                              "a", rec, "", h, "email", "suppressed", "duplicate", "", "", "x", "d", "", "", "", "", NULL};
        freeReplyObject(finish_fenced(4, args));
    }
    expect_str("HGET t:campaign:c1 deferred:quiet_hours", "0");
    redisReply *all = cmd("HGETALL t:r:{a}");
    json_t *hist = store_history_read(all, NULL, STORE_HISTORY_MAX);
    freeReplyObject(all);
    assert_int_equal(json_array_size(hist), STORE_HISTORY_MAX);
    assert_int_equal(json_integer_value(json_object_get(json_array_get(hist, 0), "n")), STORE_HISTORY_MAX + 19);
    assert_int_equal(json_integer_value(json_object_get(json_array_get(hist, STORE_HISTORY_MAX - 1), "n")), 20);
    json_decref(hist);
}

/* Recipients holding a reservation (flag "r"): the record replaces the
 * pending one; a repeat writes nothing; a person erased in flight (their
 * reservation gone with their keys) gets no record or history back. */
static void finish_with_reservations(void **st)
{
    (void)st;
    cmd_ok("FLUSHALL");
    own_entry();
    cmd_ok("HSET t:r:{c} rev 1");
    cmd_ok("HSET t:r:{c} c:c1 %s h5 %s", "reserved 1-0 run 1000 7", ""); /* as reserve.lua writes it */
    const char *keys[] = {"t:audit", "t:campaign:c1", "t:campaign:c1:norecord", "t:r:{c}", "t:r:{d}"};
    for (int round = 0; round < 2; round++) {
        const char *args[64];
        int n = 0;
        for (int k = 0; k < 5; k++) args[n++] = keys[k];
        const char *vals[] = {"1000", "c1", "1-0", "b0", "100", "2",
                              "c", "sent 1-0 run 1000", "", "{\"h\":1}", "email", "sent", "", "p1",
                              "id-1", "2026-01-01T00:00:00Z", "r", "1", "", "ko", "h5",
                              "d", "sent 1-0 run 1000", "", "{\"h\":2}", "email", "sent", "", "p1",
                              "id-2", "2026-01-01T00:00:00Z", "r", "3", "", "", "h0", NULL};
        for (int k = 0; vals[k]; k++) args[n++] = vals[k];
        args[n] = NULL;
        redisReply *r = finish_fenced(5, args);
        /* Round 1 is the same batch again: c's record already says it; d
         * (erased) has no record to tell a repeat by: the norecord set does. */
        assert_int_equal(r->element[0]->integer, round == 0 ? 2 : 0);
        freeReplyObject(r);
    }
    expect_str("HGET t:r:{c} c:c1", "sent 1-0 run 1000");
    expect_str("HGET t:r:{c} h5", "{\"h\":1}"); /* the slot its reservation took */
    expect_int("HEXISTS t:r:{c} hn", 0);         /* taken by the reservation, not here */
    expect_int("EXISTS t:r:{d} t:r:{d}:history", 0);
    expect_int("XLEN t:audit", 2);
}

/* A reservation gone while its person stays stored (a failover kept an
 * older copy of the hash): the one HSET of the record and the entry
 * created the record's field; both stand, the rest of the hash as it was. */
static void finish_keeps_the_outcome_of_a_stored_person(void **st)
{
    (void)st;
    cmd_ok("FLUSHALL");
    own_entry();
    cmd_ok("HSET t:r:{e} rev 1 hn 2 h0 %s h1 %s", "2|1|old|0s|p", ""); /* h1: its slot, the record gone */
    const char *args[] = {"t:audit", "t:campaign:c1", "t:campaign:c1:norecord", "t:r:{e}",
                          "1000", "c1", "1-0", "b1", "100", "1",
                          "e", "sent 1-0 run 1000", "", "{\"h\":1}", "email", "sent", "", "p1",
                          "id-1", "2026-01-01T00:00:00Z", "r", "1", "", "", "h1", NULL};
    redisReply *r = finish_fenced(4, args);
    assert_int_equal(r->element[0]->integer, 1);
    freeReplyObject(r);
    expect_str("HGET t:r:{e} c:c1", "sent 1-0 run 1000");
    expect_str("HGET t:r:{e} h1", "{\"h\":1}");
    expect_str("HGET t:r:{e} h0", "2|1|old|0s|p");
    expect_str("HGET t:r:{e} hn", "2");
    expect_int("SCARD t:campaign:c1:norecord", 1); /* the batch alone: the outcome has its record */
}

/* The audit record says how many requests herald sent for the message,
 * and the language of its content when the job gave content per language. */
static void finish_audits_the_requests(void **st)
{
    (void)st;
    redisReply *r = cmd("XRANGE t:audit - + COUNT 2");
    assert_int_equal(r->type, REDIS_REPLY_ARRAY);
    /* finish_with_reservations' records: c's content was Korean, d's one for all. */
    const char *want[2][2] = {{"1", "ko"}, {"3", NULL}};
    for (size_t k = 0; k < 2; k++) {
        const redisReply *f = r->element[k]->element[1];
        const char *got = NULL, *loc = NULL;
        for (size_t i = 0; i + 1 < f->elements; i += 2) {
            if (strcmp(f->element[i]->str, "requests") == 0) got = f->element[i + 1]->str;
            if (strcmp(f->element[i]->str, "locale") == 0) loc = f->element[i + 1]->str;
        }
        if (!got || strcmp(got, want[k][0]) != 0) fail_msg("requests: got %s, expected %s", got ? got : "(none)", want[k][0]);
        if (want[k][1] ? !loc || strcmp(loc, want[k][1]) != 0 : loc != NULL)
            fail_msg("locale: got %s, expected %s", loc ? loc : "(none)", want[k][1] ? want[k][1] : "(none)");
    }
    freeReplyObject(r);
}

/* A run whose consumer no longer owns its entry (taken over after a pause
 * past claim_idle, acknowledged, or the stream gone with an emptied Redis)
 * writes nothing: every writing script answers 'lost'. */
static void the_fence_stops_a_run_that_lost_its_entry(void **st)
{
    (void)st;
    cmd_ok("FLUSHALL");
    own_entry();
    cmd_ok("HSET t:r:{a} rev 1");
    const char *res[] = {"t:r:{a}", "1000", "c1", "news", "50", "0",
                         "1", "reserved 1-0 run 1000 1", "email", "", NULL};
    const char *fin[] = {"t:audit", "t:campaign:c1", "t:campaign:c1:norecord", "t:r:{a}",
                         "1000", "c1", "1-1", "b0", "100", "1",
                         "a", "sent 1-1 run 1", "", "{}", "email", "sent", "", "p", "id", "at", "", "1", "", "", "",
                         NULL};
    /* A handoff alone: no outcome (ARGV 8 "0"), one person hash. */
    const char *hand[] = {"t:audit", "t:campaign:c1", "t:campaign:c1:norecord", "t:r:{a}", "1000", "c1",
                          "1-1", "b1", "100", "0", "pending 1-0 run 1000 1", NULL};
    const char *rel[] = {"t:r:{a}", "t:r:{a}:sends", "c1", "reserved 1-0 run 1000 1",
                         "pending 1-0 run 1000 1", "email|news|c1", NULL};
    /* Another daemon claimed the entry. */
    cmd_ok("XCLAIM t:jobs g other 0 1-1 JUSTID");
    expect_lost(reserve_fenced(1, res));
    expect_lost(finish_fenced(4, hand));
    expect_lost(eval_fenced(store_lua_release, 2, rel));
    expect_lost(finish_fenced(4, fin));
    /* Acknowledged, then the stream gone. */
    cmd_ok("XACK t:jobs g 1-1");
    expect_lost(finish_fenced(4, fin));
    cmd_ok("DEL t:jobs");
    expect_lost(reserve_fenced(1, res));
    expect_int("HEXISTS t:r:{a} c:c1", 0);
    expect_int("EXISTS t:r:{a}:sends t:audit t:campaign:c1 t:campaign:c1:norecord", 0);
}

/* reserved -> pending before the handoff (the finishing script records the
 * iteration's handoffs too); an erased person's message is not handed; the
 * same command again (after a lost connection) is no error. Release gives
 * back our reservation in either form, never someone else's. */
static void handed_and_release(void **st)
{
    (void)st;
    cmd_ok("FLUSHALL");
    own_entry();
    cmd_ok("HSET t:r:{a} rev 1 c:c1 %s", "reserved 1-1 r.1 1000 1");
    cmd_ok("HSET t:r:{c} rev 1 c:c1 %s", "reserved 1-1 r.1 1000 1");
    const char *hand[] = {"t:audit", "t:campaign:c1", "t:campaign:c1:norecord", "t:r:{a}", "t:r:{c}",
                          "t:r:{b}", "1000", "c1", "1-1", "b0", "100", "0",
                          "pending 1-1 r.1 1000 1", "pending 1-1 r.1 1000 1", "pending 1-1 r.1 1000 2", NULL};
    for (int round = 0; round < 2; round++) {
        redisReply *r = finish_fenced(6, hand);
        assert_int_equal(r->type, REDIS_REPLY_ARRAY);
        assert_int_equal(r->elements, 2);
        assert_int_equal(r->element[0]->integer, 0); /* no outcome */
        const redisReply *h = r->element[1];
        assert_int_equal(h->elements, 3);
        assert_int_equal(h->element[0]->integer, 1);
        assert_int_equal(h->element[1]->integer, 1);
        assert_int_equal(h->element[2]->integer, 0); /* b: erased, no reservation */
        freeReplyObject(r);
    }
    expect_int("XLEN t:audit", 0); /* a handoff is no outcome */
    expect_str("HGET t:r:{a} c:c1", "pending 1-1 r.1 1000 1");
    expect_str("HGET t:r:{c} c:c1", "pending 1-1 r.1 1000 1");
    expect_int("EXISTS t:r:{b}", 0); /* the erased person's hash is not brought back */
    cmd_ok("ZADD t:r:{a}:sends 1000 email|news|c1");
    const char *rel[] = {"t:r:{a}", "t:r:{a}:sends", "c1", "reserved 1-1 r.1 1000 1",
                         "pending 1-1 r.1 1000 1", "email|news|c1", NULL};
    freeReplyObject(eval_fenced(store_lua_release, 2, rel));
    expect_int("HEXISTS t:r:{a} c:c1", 0);
    expect_int("EXISTS t:r:{a}:sends", 0);
    expect_str("HGET t:r:{a} rev", "1"); /* the rest of the person stays */
    /* Someone else's record stays. */
    cmd_ok("HSET t:r:{a} c:c1 %s", "sent 9-9 other 1000");
    freeReplyObject(eval_fenced(store_lua_release, 2, rel));
    expect_str("HGET t:r:{a} c:c1", "sent 9-9 other 1000");
}

/* On one Redis a handoff goes to its run's handed log (a bit per
 * reservation number), and erasure (lua/people_erase.lua) adds each
 * reservation of the person to its run's erased set, which that log's
 * handoffs read: the erased person's message is not handed, the same
 * command again answers the same, and nothing of the people's is written
 * (the bytes of the log as the daemon sends them are written as they are).
 * On a cluster erasure adds nothing (its handoffs read the person hash). */
static void erased_before_the_logged_handoff(void **st)
{
    (void)st;
    cmd_ok("FLUSHALL");
    own_entry();
    cmd_ok("HSET t:r:{a} profile {} rev 1 c:c1 %s c:c0 %s", "r 1-1 r.1 1000 1", "s 9-9 x 1000");
    cmd_ok("HSET t:r:{b} profile {} rev 1 c:c1 %s c:c0 %s c:c2 %s", "r 1-1 r.1 1000 2", "s 9-9 x 1000",
           "r 3-3 r.9 1000 7");
    const char *erase[] = {"t:r:{b}", "t:r:{b}:history", "t:r:{b}:sends", "1", "", "t:erased:", "604800", NULL};
    redisReply *r = eval(store_lua_people_erase, 3, erase);
    assert_int_equal(r->integer, 0);
    freeReplyObject(r);
    expect_int("EXISTS t:r:{b}", 0);
    expect_int("SCARD t:erased:r.1", 1);
    expect_int("SISMEMBER t:erased:r.1 2", 1);
    expect_int("SISMEMBER t:erased:r.9 7", 1);
    r = cmd("TTL t:erased:r.1");
    assert_true(r->integer > 604000 && r->integer <= 604800);
    freeReplyObject(r);
    /* As store_job.c sends them: the end, 2 handoffs, their numbers, then
     * the byte they touch whole (bits 1 and 2: 0x60). */
    const char *hand[] = {"t:audit", "t:campaign:c1", "t:campaign:c1:norecord", "t:handed:r.1", "t:erased:r.1",
                          "1000", "c1", "1-1", "b0", "100", "0", "@", "4102444800", "2", "2 1", "0", "\x60", NULL};
    for (int round = 0; round < 2; round++) {
        r = finish_fenced(5, hand);
        assert_int_equal(r->type, REDIS_REPLY_ARRAY);
        assert_int_equal(r->element[0]->integer, 0); /* no outcome */
        const redisReply *h = r->element[1];
        assert_int_equal(h->elements, 2);
        assert_int_equal(h->element[0]->integer, 0); /* b: erased */
        assert_int_equal(h->element[1]->integer, 1);
        freeReplyObject(r);
    }
    expect_int("GETBIT t:handed:r.1 1", 1);
    expect_int("BITCOUNT t:handed:r.1", 2); /* b's too: no record of b is ever looked up again */
    expect_int("EXPIRETIME t:handed:r.1", 4102444800LL);
    expect_str("HGET t:r:{a} c:c1", "r 1-1 r.1 1000 1"); /* the person untouched */
    expect_int("EXISTS t:r:{b}", 0);
    expect_int("XLEN t:audit", 0);
    /* On a cluster: no erased set. */
    cmd_ok("HSET t:r:{c} profile {} rev 1 c:c1 %s", "r 1-1 r.3 1000 4");
    const char *erase_c[] = {"t:r:{c}", "t:r:{c}:history", "t:r:{c}:sends", "1", "", "", "604800", NULL};
    freeReplyObject(eval(store_lua_people_erase, 3, erase_c));
    expect_int("EXISTS t:r:{c}", 0);
    expect_int("EXISTS t:erased:r.3", 0);
}

/* A reservation left by a run that ended before the handoff is this
 * message's: the next run takes it over (it was never sent) instead of
 * calling it a duplicate, and its history entry does not count against
 * the person's caps. Anything else in the record is a duplicate. */
static void reserve_takes_over_a_dead_runs_reservation(void **st)
{
    (void)st;
    cmd_ok("FLUSHALL");
    own_entry();
    cmd_ok("HSET t:r:{a} c:c1 %s", "reserved 1-1 dead.1 900 4");
    cmd_ok("ZADD t:r:{a}:sends 900 email|news|c1");
    const char *args[] = {"t:r:{a}", "1000", "c1", "news", "50", "1",
                          "one_a_day", "email", "1", "86400", "",
                          "", "reserved 1-1 new.1 1000 1", "email", "+", "reserved 1-1 dead.1 900 4", "email|news|c1",
                          "86400", "0", NULL};
    redisReply *r = reserve_fenced(1, args);
    assert_string_equal(r->element[0]->str, "h0"); /* reserved */
    freeReplyObject(r);
    expect_str("HGET t:r:{a} c:c1", "reserved 1-1 new.1 1000 1");
    expect_int("ZCARD t:r:{a}:sends", 1);
    /* Without the takeover (prior ""), the same record is a duplicate. */
    cmd_ok("HSET t:r:{a} c:c1 %s", "pending 1-1 dead.1 900 4");
    args[15] = "";                          /* prior */
    args[12] = "reserved 1-1 new.1 1000 2"; /* record */
    r = reserve_fenced(1, args);
    assert_string_equal(r->element[0]->str, "duplicate pending 1-1 dead.1 900 4");
    freeReplyObject(r);
}

/* The heartbeat keeps the entry ours, never takes it back from another
 * consumer, and says when it is gone. */
static void heartbeat_never_takes_an_entry_back(void **st)
{
    (void)st;
    cmd_ok("FLUSHALL");
    own_entry();
    const char *args[] = {"t:jobs", "g", "1-1", "me", NULL};
    redisReply *r = eval(store_lua_heartbeat, 1, args);
    assert_string_equal(r->str, "ok");
    freeReplyObject(r);
    cmd_ok("XCLAIM t:jobs g other 0 1-1 JUSTID");
    r = eval(store_lua_heartbeat, 1, args);
    assert_string_equal(r->str, "lost");
    freeReplyObject(r);
    r = cmd("XPENDING t:jobs g - + 10 other");
    assert_int_equal(r->elements, 1); /* still the other's */
    freeReplyObject(r);
    cmd_ok("XACK t:jobs g 1-1");
    r = eval(store_lua_heartbeat, 1, args);
    assert_string_equal(r->str, "gone");
    freeReplyObject(r);
}

/* The once-only record's words, written and read by store.c: an outcome
 * carries "<channel>/<reason>", a reservation its sequence number, and
 * records from before the outcome word still read. */
static void records_round_trip(void **st)
{
    (void)st;
    struct strbuf sb;
    strbuf_init(&sb);
    struct store_record rec;
    store_record_format_outcome(&sb, REC_SUPPRESSED, "1-1", "run.1", 1000, "email", "cap:daily");
    assert_string_equal(sb.buf, "x 1-1 run.1 1000 email/cap:daily");
    assert_int_equal(store_record_parse(sb.buf, &rec), 0);
    assert_int_equal(rec.state, REC_SUPPRESSED);
    assert_string_equal(rec.entry, "1-1");
    assert_string_equal(rec.run, "run.1");
    assert_int_equal(rec.at, 1000);
    assert_string_equal(rec.channel, "email");
    assert_string_equal(rec.reason, "cap:daily");
    store_record_format_outcome(&sb, REC_SENT, "2-0", "run.2", 2000, "sms", "");
    assert_int_equal(store_record_parse(sb.buf, &rec), 0);
    assert_true(store_record_reached(&rec));
    assert_string_equal(rec.channel, "sms");
    assert_string_equal(rec.reason, "");
    store_record_format_outcome(&sb, REC_SUPPRESSED, "2-0", "run.2", 2000, "", "topic_opt_out");
    assert_string_equal(sb.buf, "x 2-0 run.2 2000 /to"); /* the reason's code */
    assert_int_equal(store_record_parse(sb.buf, &rec), 0);
    assert_string_equal(rec.channel, "");
    assert_string_equal(rec.reason, "topic_opt_out");
    /* Records written before the codes read the same. */
    assert_int_equal(store_record_parse("suppressed 1733493245123-0 0123456789abcdef.1 1733493245 email/no_consent",
                                        &rec), 0);
    assert_int_equal(rec.state, REC_SUPPRESSED);
    assert_string_equal(rec.reason, "no_consent");
    assert_int_equal(store_record_parse("reserved 1-1 r.1 1000 7", &rec), 0);
    assert_int_equal(rec.state, REC_RESERVED);
    /* Every state and reason herald writes stays within a listpack value
     * (64 bytes) with realistic stream entries and runs. */
    for (int state = REC_PENDING; state <= REC_RESERVED; state++)
        for (int rs = 0; rs < HERALD_REASON_COUNT; rs++) {
            store_record_format_outcome(&sb, (enum store_rec_state)state, "1733493245123-10", "0123456789abcdef.12",
                                        1733493245, "email", herald_reason_name(rs));
            if (sb.len > 64) fail_msg("record of %zu bytes: %s", sb.len, sb.buf);
            assert_int_equal(store_record_parse(sb.buf, &rec), 0);
            assert_int_equal(rec.state, state);
            assert_string_equal(rec.reason, herald_reason_name(rs));
        }
    assert_int_equal(store_record_parse("reserved 1-1 run.1 1000 42", &rec), 0);
    assert_int_equal(rec.state, REC_RESERVED);
    assert_string_equal(rec.channel, "");
    assert_int_equal(store_record_parse("sent 1-1 run.1 1000", &rec), 0);
    assert_int_equal(rec.state, REC_SENT);
    assert_string_equal(rec.reason, "");
    assert_int_equal(store_record_parse("sent 1-1 run.1", &rec), -HERALD_EINVAL);
    strbuf_free(&sb);
}

/* events_take.lua and events_claim.lua: a new event, then it again as our
 * own pending one; another consumer cannot claim it for another attempt,
 * we can; acknowledged, there is none; one trimmed from the stream while
 * pending is acknowledged, not returned. The record's JSON has the counts
 * as numbers. */
static void events_take_and_claim(void **st)
{
    (void)st;
    cmd_ok("FLUSHALL");
    const char *take[] = {"t:events", "herald-events", "me", "60000", "1", NULL};
    redisReply *r = eval(store_lua_events_take, 1, take);
    assert_string_equal(r->element[0]->str, "none"); /* the group is created at $ */
    freeReplyObject(r);
    r = cmd("XADD t:events 5-1 event finished campaign c1 entry 1-1 at 2026-12-01T09:00:00Z total 3 sent 2");
    freeReplyObject(r);
    r = eval(store_lua_events_take, 1, take);
    assert_string_equal(r->element[0]->str, "new");
    assert_string_equal(r->element[1]->str, "5-1");
    assert_int_equal(r->element[2]->elements, 12);
    assert_int_equal(r->element[3]->integer, 1); /* pending */
    freeReplyObject(r);
    r = eval(store_lua_events_take, 1, take);
    assert_string_equal(r->element[0]->str, "own");
    freeReplyObject(r);
    const char *other[] = {"t:events", "herald-events", "other", "5-1", NULL};
    r = eval(store_lua_events_claim, 1, other);
    assert_int_equal(r->integer, 0);
    freeReplyObject(r);
    const char *mine[] = {"t:events", "herald-events", "me", "5-1", NULL};
    r = eval(store_lua_events_claim, 1, mine);
    assert_int_equal(r->integer, 1);
    freeReplyObject(r);
    cmd_ok("XACK t:events herald-events 5-1");
    r = eval(store_lua_events_take, 1, take);
    assert_string_equal(r->element[0]->str, "none");
    assert_int_equal(r->element[3]->integer, 0);
    freeReplyObject(r);
    r = cmd("XADD t:events 6-1 event started campaign c2 entry 2-1 at 2026-12-01T09:00:00Z");
    freeReplyObject(r);
    r = eval(store_lua_events_take, 1, take);
    assert_string_equal(r->element[1]->str, "6-1");
    freeReplyObject(r);
    cmd_ok("XDEL t:events 6-1");
    r = eval(store_lua_events_take, 1, take);
    assert_string_equal(r->element[0]->str, "none");
    freeReplyObject(r);
    r = cmd("XPENDING t:events herald-events");
    assert_int_equal(r->element[0]->integer, 0);
    freeReplyObject(r);

    const char *f[] = {"event", "campaign", "total", "error"}, *v[] = {"finished", "c1", "3", "x"};
    size_t len;
    char *json = store_event_json("5-1", f, v, 4, &len);
    assert_string_equal(json, "{\"campaign\":\"c1\",\"error\":\"x\",\"event\":\"finished\",\"id\":\"5-1\",\"total\":3}");
    assert_int_equal(len, strlen(json));
    free(json);
}

/* campaign_enqueue.lua: a hash from before runs is run 1 (live while an
 * entry is not done); a finished run needs rerun and moves to the runs
 * hash; an entry registered already is 'same'; an Idempotency-Key digest
 * replays its answer, another digest is a conflict. */
static void campaign_enqueue_registers_runs(void **st)
{
    (void)st;
    cmd_ok("FLUSHALL");
    /* KEYS: hash, runs, index, jobs, ids, idempotency; ARGV: campaign,
     * entry, rerun, at, now ms, job, recipients_key, digest, ttl, group, ids... */
    const char *stream_entry[] = {"t:campaign:c", "t:campaign:c:runs", "t:campaigns", "t:jobs", "t:campaign:c:ids",
                                  "t:idem:k", "c", "9-1", "0", "2026-12-01T09:00:00Z", "1000", "", "", "", "86400",
                                  "g", "{\"topic\":\"news\"}", "a", "b", NULL};
    cmd_ok("HSET t:campaign:c state:1-1 running total:1-1 2");
    redisReply *r = eval(store_lua_campaign_enqueue, 6, stream_entry);
    assert_string_equal(r->element[0]->str, "live");
    assert_int_equal(r->element[1]->integer, 1);
    freeReplyObject(r);
    cmd_ok("HSET t:campaign:c state:1-1 done sent 2");
    r = eval(store_lua_campaign_enqueue, 6, stream_entry);
    assert_string_equal(r->element[0]->str, "finished");
    freeReplyObject(r);
    stream_entry[8] = "1"; /* rerun */
    r = eval(store_lua_campaign_enqueue, 6, stream_entry);
    assert_string_equal(r->element[0]->str, "ok");
    assert_int_equal(r->element[1]->integer, 2);
    assert_string_equal(r->element[2]->str, "9-1");
    freeReplyObject(r);
    r = cmd("HGET t:campaign:c:runs 1");
    assert_non_null(strstr(r->str, "\"sent\":\"2\""));
    freeReplyObject(r);
    r = cmd("HGETALL t:campaign:c");
    assert_int_equal(r->elements, 8); /* run, enqueued_at, state:9-1, info */
    freeReplyObject(r);
    r = cmd("HGET t:campaign:c info"); /* the campaign's topic and names, for its people's history */
    assert_string_equal(r->str, "{\"topic\":\"news\"}");
    freeReplyObject(r);
    r = cmd("LRANGE t:campaign:c:ids 0 -1");
    assert_int_equal(r->elements, 2);
    freeReplyObject(r);
    r = eval(store_lua_campaign_enqueue, 6, stream_entry); /* read again after a restart */
    assert_string_equal(r->element[0]->str, "same");
    assert_int_equal(r->element[1]->integer, 2);
    freeReplyObject(r);

    /* The API's way: the job is added here, with an idempotency digest. */
    cmd_ok("HSET t:campaign:c finished_at 2026-12-01T09:01:00Z");
    const char *api[] = {"t:campaign:c", "t:campaign:c:runs", "t:campaigns", "t:jobs", "t:campaign:c:ids",
                         "t:idem:k", "c", "", "1", "2026-12-01T09:02:00Z", "2000", "{\"id\":\"c\"}",
                         "t:list", "d1", "86400", "g", "", NULL};
    r = eval(store_lua_campaign_enqueue, 6, api);
    assert_string_equal(r->element[0]->str, "ok");
    assert_int_equal(r->element[1]->integer, 3);
    char entry[64];
    snprintf(entry, sizeof(entry), "%s", r->element[2]->str);
    freeReplyObject(r);
    r = eval(store_lua_campaign_enqueue, 6, api);
    assert_string_equal(r->element[0]->str, "replay");
    assert_string_equal(r->element[2]->str, entry);
    freeReplyObject(r);
    api[13] = "d2";
    r = eval(store_lua_campaign_enqueue, 6, api);
    assert_string_equal(r->element[0]->str, "conflict");
    freeReplyObject(r);
    r = cmd("XLEN t:jobs");
    assert_int_equal(r->integer, 1);
    freeReplyObject(r);
    r = cmd("HGET t:campaign:c recipients_key");
    assert_string_equal(r->str, "t:list");
    freeReplyObject(r);
    r = cmd("ZSCORE t:campaigns c"); /* the first enqueue's time, kept */
    assert_string_equal(r->str, "1000");
    freeReplyObject(r);
    r = cmd("TTL t:idem:k");
    assert_true(r->integer > 86000 && r->integer <= 86400);
    freeReplyObject(r);
}

/* [retention] inactive_people reads the history's newest sent entry in
 * either form: one sent lately (codes, or names as written before them)
 * keeps the person, one suppressed does not. */
static void inactive_check_reads_both_history_forms(void **st)
{
    (void)st;
    struct {
        const char *entry;
        bool kept;
    } cases[] = {
        {"2|%s|c1|0s|hook", true},
        {"1|%s|c1|email|news|sent||hook", true},
        {"2|%s|c1|0xnc|", false},
        {"2|%s|c1|-xto|", false},
        {"1|%s|c1|email|news|suppressed|no_consent|", false},
    };
    redisReply *t = cmd("TIME");
    long long now = strtoll(t->element[0]->str, NULL, 10);
    freeReplyObject(t);
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        /* "%s" in each case stands for a minute ago */
        char at[32], entry[96];
        snprintf(at, sizeof(at), "%lld", now - 60);
        const char *mark = strstr(cases[i].entry, "%s");
        snprintf(entry, sizeof(entry), "%.*s%s%s", (int)(mark - cases[i].entry), cases[i].entry, at, mark + 2);
        cmd_ok("DEL t:r:{ic}");
        cmd_ok("HSET t:r:{ic} profile {} rev 7 act %lld hn 1 h0 %s", now - 86400, entry);
        const char *args[] = {"t:r:{ic}", "t:r:{ic}:history", "3600", "~email", NULL};
        redisReply *r = eval(store_lua_inactive_check, 2, args);
        if ((r->type == REDIS_REPLY_NIL) != cases[i].kept)
            fail_msg("%s: %s", entry, cases[i].kept ? "erased" : "kept");
        freeReplyObject(r);
    }
}

/* A history entry is compact on the way in and the same JSON on the way
 * out (the API, the pages, explain), its topic and the campaign's name
 * added from the campaign's info; a value holding '|' falls back to JSON;
 * entries written before the codes, and layout 1's (JSON), still read;
 * anything else is refused. */
static void history_entries_compact_and_read_back(void **st)
{
    (void)st;
    struct strbuf sb;
    strbuf_init(&sb);
    store_history_format(&sb, "spring-sale", "email", "sent", "", "hook", 1765005630);
    assert_string_equal(sb.buf, "2|1765005630|spring-sale|0s|hook");
    json_t *o = store_history_json(sb.buf, sb.len);
    assert_non_null(o);
    json_t *info = json_pack("{s:s, s:{s:s, s:s, s:s}}", "topic", "promotions", "display_name", "en", "Spring sale",
                             "ko", "봄 세일", "default", "en");
    job_info_apply(o, info, "ko-KR");
    char *text = json_dumps(o, JSON_SORT_KEYS | JSON_COMPACT);
    assert_string_equal(text, "{\"at\":\"2025-12-06T07:20:30Z\",\"campaign\":\"spring-sale\",\"campaign_name\":\"봄 세일\","
                              "\"channel\":\"email\",\"outcome\":\"sent\",\"provider\":\"hook\",\"reason\":\"\","
                              "\"topic\":\"promotions\"}");
    free(text);
    json_decref(o);
    /* The same entry written before the codes reads the same. */
    const char *old = "1|1765005630|spring-sale|email|promotions|sent||hook|봄 세일";
    o = store_history_json(old, strlen(old));
    json_t *n = store_history_json(sb.buf, sb.len);
    job_info_apply(n, info, "ko");
    job_info_apply(o, info, "en"); /* an entry that has its topic and name keeps them */
    assert_true(json_equal(o, n));
    json_decref(o);
    json_decref(n);
    json_decref(info);
    store_history_format(&sb, "c1", "sms", "suppressed", "cap:daily", "odd|name", 0);
    assert_int_equal(sb.buf[0], '{');
    o = store_history_json(sb.buf, sb.len);
    assert_string_equal(json_string_value(json_object_get(o, "provider")), "odd|name");
    json_decref(o);
    /* The outcome and reason as codes, read back by name; a reason herald
     * does not name (a cap's) as it is. */
    const char *same[][2] = {
        {"2|0|c1|1xnc|", "1|0|c1|sms|t|suppressed|no_consent|"},
        {"2|0|c1|1xcap:daily|", "1|0|c1|sms|t|suppressed|cap:daily|"},
        {"2|0|c1|0fpr|hook", "1|0|c1|email|t|failed|provider_rejected|hook"},
        {"2|0|c1|1dqh|", "1|0|c1|sms|t|deferred|quiet_hours|"},
        {"2|0|c1|-xto|", "1|0|c1||t|suppressed|topic_opt_out|"}, /* no channel decided */
    };
    for (size_t i = 0; i < sizeof(same) / sizeof(same[0]); i++) {
        json_t *a = store_history_json(same[i][0], strlen(same[i][0]));
        json_t *b = store_history_json(same[i][1], strlen(same[i][1]));
        if (a) json_object_set_new(a, "topic", json_string("t"));
        if (!a || !b || !json_equal(a, b)) fail_msg("reads differently: %s", same[i][0]);
        json_decref(a);
        json_decref(b);
    }
    store_history_format(&sb, "c1", "sms", "suppressed", "no_consent", "", 0);
    assert_string_equal(sb.buf, same[0][0]);
    store_history_format(&sb, "c1", "", "suppressed", "topic_opt_out", "", 0);
    assert_string_equal(sb.buf, same[4][0]);
    /* Every outcome and reason herald writes, with a campaign id of 32
     * characters and a provider's name of 12: within a listpack value. */
    for (int oc = 0; oc < HERALD_OUTCOME_COUNT; oc++)
        for (int rs = 0; rs < HERALD_REASON_COUNT; rs++) {
            store_history_format(&sb, "spring-sale-2026-newsletter-de-1", rs % 2 ? "email" : "",
                                 herald_outcome_name(oc), herald_reason_name(rs), "sendgrid-eu1", 1733493245);
            if (sb.len > 64) fail_msg("entry of %zu bytes: %s", sb.len, sb.buf);
            o = store_history_json(sb.buf, sb.len);
            assert_non_null(o);
            assert_string_equal(json_string_value(json_object_get(o, "reason")), herald_reason_name(rs));
            assert_string_equal(json_string_value(json_object_get(o, "outcome")), herald_outcome_name(oc));
            json_decref(o);
        }
    const char *bad[] = {"", "1|", "1|x|c|e|t|o|r|p", "3|1|c|e|t|o|r|p", "2|1|c|0q|p", "2|1|c|9s|p", "2|1|c|0|p",
                         "2|1|c|0s", "2|1|c|+s|p", "1|1|c|e|t|o|r|p|n|extra", "1|1|c|e|t|o|r", "{"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        if (store_history_json(bad[i], strlen(bad[i]))) fail_msg("read a bad entry: %s", bad[i]);
    strbuf_free(&sb);
}

/* The history's ring reads newest first, back from the cursor over one turn
 * (a slot taken but never written is skipped, a field past the ring's
 * length is no slot), then the list written before the ring, up to max. */
static void history_ring_reads_newest_first_then_the_old_list(void **st)
{
    (void)st;
    cmd_ok("FLUSHALL");
    /* A ring of 3, next slot 2: slots 1, 0, 2 newest first; slot 2 given back
     * (a ring of 1 is slot 0 alone; in a ring of 8, h7 is of the turn before). */
    cmd_ok("HSET t:r:{z} rev 1 hn 2 h0 1|4|c4|email|t|sent||p h1 1|5|c5|email|t|sent||p h7 1|1|c1|email|t|sent||p");
    cmd_ok("RPUSH t:r:{z}:history 1|0|old1|email|t|sent||p 1|0|old2|email|t|sent||p");
    redisReply *h = cmd("HGETALL t:r:{z}"), *l = cmd("LRANGE t:r:{z}:history 0 -1");
    const struct {
        size_t max;
        const char *want;
    } cases[] = {{3, "c5 c4 old1 "}, {8, "c5 c4 c1 old1 old2 "}, {1, "c4 "}, {0, ""}};
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        json_t *out = store_history_read(h, l, cases[i].max);
        char got[128] = "";
        size_t k;
        json_t *e;
        json_array_foreach(out, k, e)
        {
            size_t len = strlen(got);
            snprintf(got + len, sizeof(got) - len, "%s ", json_string_value(json_object_get(e, "campaign")));
        }
        json_decref(out);
        if (strcmp(got, cases[i].want) != 0) fail_msg("max %zu: got \"%s\", expected \"%s\"", cases[i].max, got, cases[i].want);
    }
    freeReplyObject(h);
    freeReplyObject(l);
    /* Neither is there: none. */
    json_t *none = store_history_read(NULL, NULL, 50);
    assert_int_equal(json_array_size(none), 0);
    json_decref(none);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(history_entries_compact_and_read_back),
        cmocka_unit_test(history_ring_reads_newest_first_then_the_old_list),
        cmocka_unit_test(campaign_enqueue_registers_runs),
        cmocka_unit_test(events_take_and_claim),
        cmocka_unit_test(records_round_trip),
        cmocka_unit_test(reserve_refuses_a_person_changed_since_the_lookup),
        cmocka_unit_test(reserve_short_and_long_forms),
        cmocka_unit_test(reserve_checks_caps_in_order),
        cmocka_unit_test(finish_writes_record_history_audit_and_progress),
        cmocka_unit_test(finish_with_reservations),
        cmocka_unit_test(finish_audits_the_requests),
        cmocka_unit_test(finish_keeps_the_outcome_of_a_stored_person),
        cmocka_unit_test(the_fence_stops_a_run_that_lost_its_entry),
        cmocka_unit_test(handed_and_release),
        cmocka_unit_test(erased_before_the_logged_handoff),
        cmocka_unit_test(reserve_takes_over_a_dead_runs_reservation),
        cmocka_unit_test(heartbeat_never_takes_an_entry_back),
        cmocka_unit_test(inactive_check_reads_both_history_forms),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
