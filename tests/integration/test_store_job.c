/*
 * test_store_job.c - the typed calls of store_job.h round-tripped through
 * the real scripts on a real redis-server (started here on a free port):
 * each call's request is encoded by store_job, run by its Lua script, and
 * its reply decoded back into typed results, which are checked against
 * what Redis then holds. This is the test of the C <-> Lua protocol: a
 * script and its encoder that drift apart fail here, by name.
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

#include "policy.h"
#include "profile.h"
#include "rconn.h"
#include "redis_fixture.h"
#include "store_job.h"

static redisContext *sync_c;
static int port;
static uv_loop_t loop;
static struct rconn *rc;
static struct store_cmds *sc;
static struct store_job *sj;
static struct config cfg;
static struct config_cap cap;
static bool ready;

static void on_state(struct rconn *c, bool connected, const char *err, void *arg)
{
    (void)c;
    (void)err;
    (void)arg;
    ready = connected;
    if (connected) store_cmds_connected(sc);
}

static void run_until(const bool *flag)
{
    for (int i = 0; i < 100000 && !*flag; i++) uv_run(&loop, UV_RUN_ONCE);
    assert_true(*flag);
}

static int setup(void **st)
{
    (void)st;
    if (redis_fixture_start(&sync_c, &port) < 0) return -1;
    uv_loop_init(&loop);
    struct rconn_options o = {.name = "test", .host = "127.0.0.1", .port = port};
    rc = rconn_new(&loop, &o, on_state, NULL);
    sc = store_cmds_new(&loop, rc, "test");
    cfg.prefix = "herald";
    cfg.audit_maxlen = 1000;
    cap = (struct config_cap){.name = "daily", .channel = -1, .limit = 1, .window_s = 86400};
    cfg.caps = &cap;
    cfg.ncaps = 1;
    sj = store_job_new(sc, &cfg, "me");
    rconn_start(rc);
    run_until(&ready);
    return 0;
}

static bool closed;
static void on_closed(void *arg)
{
    (void)arg;
    closed = true;
}

static int teardown(void **st)
{
    (void)st;
    store_job_free(sj);
    store_cmds_free(sc, NULL, NULL);
    rconn_close(rc, on_closed, NULL);
    run_until(&closed);
    uv_run(&loop, UV_RUN_DEFAULT);
    uv_loop_close(&loop);
    redis_fixture_stop(sync_c);
    return 0;
}

#define cmd_ok(...) redis_fixture_ok(sync_c, __VA_ARGS__)

static void expect_str(const char *want, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    redisReply *r = redisvCommand(sync_c, fmt, ap);
    va_end(ap);
    if (r->type != REDIS_REPLY_STRING || strcmp(r->str, want) != 0)
        fail_msg("%s: got \"%s\" (type %d), expected \"%s\"", fmt, r->str ? r->str : "", r->type, want);
    freeReplyObject(r);
}

static long long int_of(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    redisReply *r = redisvCommand(sync_c, fmt, ap);
    va_end(ap);
    long long v = r->type == REDIS_REPLY_INTEGER ? r->integer : -1;
    freeReplyObject(r);
    return v;
}

/* Job entry 1-1 of herald:jobs, pending for consumer "me": the fence passes. */
static void own_entry(void)
{
    cmd_ok("FLUSHALL");
    cmd_ok("XGROUP CREATE herald:jobs herald $ MKSTREAM");
    cmd_ok("XADD herald:jobs 1-1 job x");
    cmd_ok("XREADGROUP GROUP herald me COUNT 1 STREAMS herald:jobs >");
}

struct done {
    bool fired;
    struct store_job_result res;
};

static void on_done(const struct store_job_result *res, void *arg)
{
    struct done *d = arg;
    d->fired = true;
    d->res = *res;
    d->res.text = NULL; /* valid during the callback only */
}

#define ALL_CHANNELS ((1u << HERALD_CH_COUNT) - 1)

static const char PROFILE_A[] = "{\"id\":\"a\",\"email\":\"a@example.com\",\"channels\":[\"email\"]}";

static void lookup_rows(void **st)
{
    (void)st;
    own_entry();
    cmd_ok("HSET herald:r:{a} profile %s rev 4", PROFILE_A);
    cmd_ok("HSET herald:r:{a} c:c1 %s", "sent 1-1 r.1 1000");
    struct profile pa, pb;
    struct strbuf ra, rb;
    strbuf_init(&ra);
    strbuf_init(&rb);
    struct strbuf env;
    strbuf_init(&env);
    struct store_job_person a = {.id = "a", .p = &pa, .raw_rec = &ra, .envelope = &env},
                            b = {.id = "b", .p = &pb, .raw_rec = &rb, .envelope = &env};
    struct store_job_person *rows[] = {&a, &b};
    struct done d = {0};
    store_job_lookup(sj, "c1", ALL_CHANNELS, rows, 2, on_done, &d, NULL);
    run_until(&d.fired);
    assert_int_equal(d.res.status, STORE_JOB_OK);
    assert_int_equal(a.found, 1);
    assert_string_equal(pa.id, "a");
    assert_string_equal(a.rev, "4");
    assert_true(a.has_rec);
    assert_int_equal(a.rec.state, REC_SENT);
    assert_string_equal(ra.buf, "sent 1-1 r.1 1000");
    assert_int_equal(b.found, 0);
    assert_string_equal(b.rev, "");
    assert_false(b.has_rec);
    profile_free(&pa);
    /* Another campaign's record is not this one's. */
    d.fired = false;
    store_job_lookup(sj, "c2", ALL_CHANNELS, rows, 1, on_done, &d, NULL);
    run_until(&d.fired);
    assert_int_equal(d.res.status, STORE_JOB_OK);
    assert_int_equal(a.found, 1);
    assert_false(a.has_rec);
    profile_free(&pa);
    /* Consent on both channels; a campaign on email alone reads the email
     * consent only: the other channel's is none. */
    cmd_ok("HSET herald:r:{a} ~email %s ~sms %s", "1|email|1|1000|signup|", "1|sms|1|1000|signup|");
    for (unsigned only = 0; only < HERALD_CH_COUNT; only++) {
        d.fired = false;
        store_job_lookup(sj, "c1", 1u << only, rows, 1, on_done, &d, NULL);
        run_until(&d.fired);
        assert_int_equal(d.res.status, STORE_JOB_OK);
        assert_int_equal(a.found, 1);
        assert_true(a.has_rec);
        assert_string_equal(a.rev, "4");
        for (int ch = 0; ch < HERALD_CH_COUNT; ch++) {
            assert_int_equal(pa.consent[ch].known, ch == (int)only);
            assert_int_equal(pa.consent[ch].granted, ch == (int)only);
        }
        profile_free(&pa);
    }
    d.fired = false;
    store_job_lookup(sj, "c1", ALL_CHANNELS, rows, 1, on_done, &d, NULL);
    run_until(&d.fired);
    for (int ch = 0; ch < HERALD_CH_COUNT; ch++) assert_true(pa.consent[ch].known && pa.consent[ch].granted);
    profile_free(&pa);
    /* Nobody to read: answered all the same, and never from inside the call. */
    d.fired = false;
    store_job_lookup(sj, "c1", ALL_CHANNELS, rows, 0, on_done, &d, NULL);
    assert_false(d.fired);
    run_until(&d.fired);
    assert_int_equal(d.res.status, STORE_JOB_OK);
    strbuf_free(&ra);
    strbuf_free(&rb);
    strbuf_free(&env);
}

static void suppression_flags(void **st)
{
    (void)st;
    own_entry();
    /* Keyed and sharded (addrindex.h): the member of the address as the
     * channel normalises it, in its shard's set. */
    unsigned char m[ADDRINDEX_LEN];
    struct strbuf k;
    strbuf_init(&k);
    addrindex_member(cfg.index_key, HERALD_CH_EMAIL, "  B@Example.com ", m);
    addrindex_key_of(&k, "herald", ADDRINDEX_SUPPRESS, m);
    const char *argv[] = {"SADD", k.buf, (const char *)m};
    size_t argl[] = {4, k.len, ADDRINDEX_LEN};
    redisReply *r = redisCommandArgv(sync_c, 3, argv, argl);
    assert_true(r && r->type == REDIS_REPLY_INTEGER);
    freeReplyObject(r);
    strbuf_free(&k);
    /* The members as the lookup gives them (stored beside the envelope, or
     * computed from the address). */
    unsigned char ma[ADDRINDEX_LEN], mb[ADDRINDEX_LEN], mp[ADDRINDEX_LEN];
    addrindex_member(cfg.index_key, HERALD_CH_EMAIL, "a@example.com", ma);
    addrindex_member(cfg.index_key, HERALD_CH_EMAIL, "b@example.com", mb);
    addrindex_member(cfg.index_key, HERALD_CH_SMS, "+15550100", mp);
    const unsigned char *members[2 * HERALD_CH_COUNT] = {0};
    members[0 * HERALD_CH_COUNT + HERALD_CH_EMAIL] = ma;
    members[1 * HERALD_CH_COUNT + HERALD_CH_EMAIL] = mb;
    members[1 * HERALD_CH_COUNT + HERALD_CH_SMS] = mp;
    bool fa[HERALD_CH_COUNT] = {true, true}, fb[HERALD_CH_COUNT] = {0};
    bool(*out[])[HERALD_CH_COUNT] = {&fa, &fb};
    struct done d = {0};
    store_job_suppressed(sj, members, (bool(*const *)[HERALD_CH_COUNT])out, 2, on_done, &d, NULL);
    run_until(&d.fired);
    assert_int_equal(d.res.status, STORE_JOB_OK);
    assert_false(fa[HERALD_CH_EMAIL]);
    assert_true(fa[HERALD_CH_SMS]); /* no address asked: left as it was */
    assert_true(fb[HERALD_CH_EMAIL]);
    assert_false(fb[HERALD_CH_SMS]);
    assert_false(store_job_any_address((const unsigned char *[2 * HERALD_CH_COUNT]){0}, 2));
}

static void reserve_one(struct store_job_reservation *it, const char *id, const char *rev, const char *record)
{
    memset(it, 0, sizeof(*it));
    it->id = id;
    it->rev = rev;
    it->record = record;
    it->prior = "";
    it->channel = "email";
    it->member = "email|news|c1";
    it->keep = 86400;
}

static void reserve_verdicts(void **st)
{
    (void)st;
    own_entry();
    cmd_ok("HSET herald:r:{a} rev 1");
    cmd_ok("HSET herald:r:{b} rev 7");
    cmd_ok("ZADD herald:r:{c}:sends 999 sms|news|old");
    struct store_job_reservation a, b, c;
    reserve_one(&a, "a", "1", "reserved 1-1 r.1 1000 1");
    reserve_one(&b, "b", "6", "reserved 1-1 r.1 1000 2"); /* changed since the lookup */
    reserve_one(&c, "c", "", "reserved 1-1 r.1 1000 3");  /* the cap "daily" (any channel, 1/day) */
    c.nfreq = 1;
    c.fchan[0] = "any";
    c.flim[0] = 5;
    c.fwin[0] = 86400;
    struct store_job_reservation *items[] = {&a, &b, &c};
    struct done d = {0};
    store_job_reserve(sj, "1-1", 1000, "c1", "news", items, 3, on_done, &d, NULL);
    run_until(&d.fired);
    assert_int_equal(d.res.status, STORE_JOB_OK);
    assert_int_equal(a.verdict, SJV_OK);
    assert_int_equal(b.verdict, SJV_STALE);
    assert_int_equal(c.verdict, SJV_CAP);
    assert_string_equal(c.detail, "daily");
    expect_str("reserved 1-1 r.1 1000 1", "HGET herald:r:{a} c:c1");
    /* Again: a meets its own record. */
    d.fired = false;
    store_job_reserve(sj, "1-1", 1000, "c1", "news", items, 1, on_done, &d, NULL);
    run_until(&d.fired);
    assert_int_equal(a.verdict, SJV_DUPLICATE);
    assert_string_equal(a.detail, "reserved 1-1 r.1 1000 1");
}

/* Outcomes alike in channel, outcome, reason, provider, time, flags,
 * requests, locale, record and history entry share one kind, sent once per
 * call (lua/finish.lua): each still reads back as itself and gets its own
 * record, audit record and count. */
/* Each of o's n outcomes reads back as want[i]. */
static void expect_outcomes_back(const struct store_outcomes *o, const struct store_outcome *const *want, size_t n)
{
    struct strbuf scratch;
    strbuf_init(&scratch);
    for (size_t i = 0; i < n; i++) {
        struct store_outcome back;
        store_outcomes_get(o, i, &back, &scratch);
        assert_string_equal(back.id, want[i]->id);
        assert_string_equal(back.record, want[i]->record);
        assert_string_equal(back.history, want[i]->history);
        assert_string_equal(back.provider_id, want[i]->provider_id);
        assert_string_equal(back.outcome, want[i]->outcome);
        assert_string_equal(back.reason, want[i]->reason);
        assert_string_equal(back.provider, want[i]->provider);
        assert_string_equal(back.at, want[i]->at);
        assert_string_equal(back.locale, want[i]->locale ? want[i]->locale : "");
        assert_string_equal(back.slot, want[i]->slot ? want[i]->slot : "");
        assert_string_equal(back.unsend, want[i]->unsend);
        assert_int_equal(back.reserved, want[i]->reserved);
        assert_int_equal(back.requests, want[i]->requests);
    }
    strbuf_free(&scratch);
}

/* A record or history entry of its own makes a kind of its own: neither is
 * sent per outcome, so each outcome must read back its own. */
static void outcomes_kinds_split_by_record(void **st)
{
    (void)st;
    struct store_outcomes o;
    store_outcomes_init(&o, "herald");
    const struct store_outcome a = {.id = "a", .record = "s 1-1 r.1 1000 email/-", .unsend = "",
                                    .history = "2|1000|c3|0s-|hook", .channel = "email", .outcome = "sent",
                                    .reason = "", .provider = "hook", .provider_id = "", .at = "2026-01-01T00:00:00Z",
                                    .reserved = true, .requests = 1, .slot = "h0"};
    struct store_outcome b = a, c = a;
    b.id = "b", b.record = "s 1-1 r.1 1001 email/-";
    c.id = "c", c.history = "2|1001|c3|0s-|hook";
    store_outcomes_add(&o, &a);
    store_outcomes_add(&o, &b);
    store_outcomes_add(&o, &c);
    assert_int_equal(o.nkinds, 3);
    expect_outcomes_back(&o, (const struct store_outcome *[]){&a, &b, &c}, 3);
    store_outcomes_free(&o);
}

static void outcomes_share_kinds(void **st)
{
    (void)st;
    own_entry();
    cmd_ok("HSET herald:r:{ka} rev 1 c:c3 %s h0 %s", "r 1-1 r.1 1000 1", "");
    cmd_ok("HSET herald:r:{kb} rev 1 c:c3 %s h4 %s", "r 1-1 r.1 1000 2", "");
    cmd_ok("HSET herald:r:{kc} rev 1");
    cmd_ok("HSET herald:r:{kd} rev 1 c:c3 %s h0 %s", "r 1-1 r.1 1000 3", "");
    cmd_ok("ZADD herald:r:{kd}:sends 1000 email|news|c3 900 email|news|old");
    struct store_outcomes o;
    store_outcomes_init(&o, "herald");
    const struct store_outcome sent = {.record = "s 1-1 r.1 1000 email/-", .unsend = "", .channel = "email",
                                       .outcome = "sent", .reason = "", .provider = "hook",
                                       .at = "2026-01-01T00:00:00Z", .reserved = true, .requests = 1, .locale = "sv"};
    struct store_outcome oa = sent, ob = sent;
    oa.id = "ka", oa.provider_id = "p-a", oa.history = "2|1000|c3|0s-|hook", oa.slot = "h0";
    ob.id = "kb", ob.provider_id = "p-b", ob.history = "2|1000|c3|0s-|hook", ob.slot = "h4";
    const struct store_outcome oc = {.id = "kc", .record = "x 1-1 r.1 1000 email/nc", .unsend = "", .history = "",
                                     .channel = "email", .outcome = "suppressed", .reason = "no_consent",
                                     .provider = "", .provider_id = "", .at = "2026-01-01T00:00:00Z",
                                     .requests = -1};
    /* A permanent failure gives its sends entry back: an outcome with the
     * two extra values. */
    const struct store_outcome od = {.id = "kd", .record = "f 1-1 r.1 1000 email/pr", .unsend = "email|news|c3",
                                     .history = "2|1000|c3|0fpr|hook", .channel = "email", .outcome = "failed",
                                     .reason = "provider_rejected", .provider = "hook", .provider_id = "",
                                     .at = "2026-01-01T00:00:00Z", .reserved = true, .requests = 1,
                                     .locale = "sv", .slot = "h0"};
    store_outcomes_add(&o, &oa);
    store_outcomes_add(&o, &oc);
    store_outcomes_add(&o, &ob);
    store_outcomes_add(&o, &od);
    assert_int_equal(o.n, 4);
    assert_int_equal(o.nkinds, 3); /* ka and kb share theirs */
    const struct store_outcome *want[] = {&oa, &oc, &ob, &od};
    expect_outcomes_back(&o, want, 4);
    struct done d = {0};
    store_job_finish(sj, "1-1", "c3", "1-1", &o, NULL, 0, on_done, &d, NULL);
    assert_int_equal(o.n, 0);
    assert_int_equal(o.nkinds, 0); /* taken with the outcomes */
    run_until(&d.fired);
    assert_int_equal(d.res.status, STORE_JOB_OK);
    expect_str("s 1-1 r.1 1000 email/-", "HGET herald:r:{ka} c:c3");
    expect_str("s 1-1 r.1 1000 email/-", "HGET herald:r:{kb} c:c3");
    expect_str("2|1000|c3|0s-|hook", "HGET herald:r:{kb} h4");
    expect_str("x 1-1 r.1 1000 email/nc", "HGET herald:r:{kc} c:c3");
    expect_str("2", "HGET herald:campaign:c3 sent");
    expect_str("1", "HGET herald:campaign:c3 suppressed:no_consent");
    expect_str("f 1-1 r.1 1000 email/pr", "HGET herald:r:{kd} c:c3");
    expect_str("1", "HGET herald:campaign:c3 failed:provider_rejected");
    redisReply *left = redisCommand(sync_c, "ZRANGE herald:r:{kd}:sends 0 -1");
    assert_int_equal(left->elements, 1); /* its entry given back, the older one kept */
    assert_string_equal(left->element[0]->str, "email|news|old");
    freeReplyObject(left);
    redisReply *r = redisCommand(sync_c, "XRANGE herald:audit - +");
    assert_int_equal(r->elements, 4);
    for (size_t e = 0; e < 4; e++) {
        const redisReply *f = r->element[e]->element[1];
        const char *who = NULL, *pid = NULL, *outcome = NULL, *locale = NULL;
        for (size_t i = 0; i + 1 < f->elements; i += 2) {
            const char *name = f->element[i]->str, *v = f->element[i + 1]->str;
            if (strcmp(name, "recipient") == 0) who = v;
            if (strcmp(name, "provider_id") == 0) pid = v;
            if (strcmp(name, "outcome") == 0) outcome = v;
            if (strcmp(name, "locale") == 0) locale = v;
        }
        assert_non_null(who);
        assert_string_equal(who, want[e]->id);
        assert_string_equal(pid, want[e]->provider_id);
        assert_string_equal(outcome, want[e]->outcome);
        if (want[e]->locale) assert_string_equal(locale, want[e]->locale);
        else assert_null(locale);
    }
    freeReplyObject(r);
    store_outcomes_free(&o);
}

/* The record state a lookup of id in campaign c1 reads: a reservation
 * its run handed to a provider reads as pending (its bit in the run's
 * handed log). */
static enum store_rec_state looked_up_state(const char *id)
{
    struct profile p;
    struct strbuf raw, env;
    strbuf_init(&raw);
    strbuf_init(&env);
    struct store_job_person row = {.id = id, .p = &p, .raw_rec = &raw, .envelope = &env};
    struct store_job_person *rows[] = {&row};
    struct done d = {0};
    store_job_lookup(sj, "c1", ALL_CHANNELS, rows, 1, on_done, &d, NULL);
    run_until(&d.fired);
    assert_int_equal(d.res.status, STORE_JOB_OK);
    if (row.found > 0) profile_free(&p);
    strbuf_free(&raw);
    strbuf_free(&env);
    return row.has_rec ? row.rec.state : REC_NONE;
}

/* The handoffs alone (no outcome) through store_job_finish with the run's
 * outcomes o (which keep its copy of the handed log), as the queue sends
 * them; answered OK. */
static void hand_off(struct store_outcomes *o, struct store_job_handoff *const *hs, size_t n)
{
    struct done d = {0};
    store_job_finish(sj, "1-1", "c1", "1-1", o, hs, n, on_done, &d, NULL);
    run_until(&d.fired);
    assert_int_equal(d.res.status, STORE_JOB_OK);
}

/* On one Redis the handoffs of a run go to its handed log, not to the
 * people: the records stay as the reservations wrote them, a reservation
 * of a person erased since is not handed (the run's erased set), and a
 * run that takes the job over reads the handed ones as pending. */
static void handoff_log_and_takeover(void **st)
{
    (void)st;
    own_entry();
    const char *ids[] = {"a", "b", "c", "far"};
    const char *recs[] = {"r 1-1 r.1 1000 1", "r 1-1 r.1 1000 2", "r 1-1 r.1 1000 3", "r 1-1 r.1 1000 100000"};
    for (size_t i = 0; i < 4; i++) cmd_ok("HSET herald:r:{%s} profile {} rev 1 c:c1 %s", ids[i], recs[i]);
    /* b was erased since its reservation (lua/people_erase.lua's mark). */
    cmd_ok("DEL herald:r:{b}");
    cmd_ok("SADD herald:erased:r.1 2");
    struct store_job_handoff ha = {.id = "a", .record = recs[0]}, hb = {.id = "b", .record = recs[1], .handed = true},
                             hf = {.id = "far", .record = recs[3]};
    struct store_job_handoff *hs[] = {&hf, &ha, &hb};
    struct store_outcomes run; /* the run's: one for all its writes */
    store_outcomes_init(&run, "herald");
    hand_off(&run, hs, 3);
    assert_true(ha.handed && hf.handed);
    assert_false(hb.handed);
    /* Nothing of the people's written: the bits of a and far (two
     * stretches apart), and of b (not handed, but no record of b is ever
     * looked up again), not c's (not handed). */
    expect_str(recs[0], "HGET herald:r:{a} c:c1");
    assert_int_equal(int_of("EXISTS herald:r:{b}"), 0);
    assert_int_equal(int_of("GETBIT herald:handed:r.1 1"), 1);
    assert_int_equal(int_of("GETBIT herald:handed:r.1 100000"), 1);
    assert_int_equal(int_of("GETBIT herald:handed:r.1 3"), 0);
    assert_int_equal(int_of("BITCOUNT herald:handed:r.1"), 3);
    assert_int_equal(int_of("STRLEN herald:handed:r.1"), 100000 / 8 + 1);
    /* Kept a year (a crashed run's log waits for whoever takes its job
     * over), or as long as the campaign's records when that is longer. */
    long long ttl = int_of("TTL herald:handed:r.1");
    assert_true(ttl > 365 * 86400 && ttl <= STORE_HANDED_KEEP_S);
    ha.expires_at = (int64_t)time(NULL) + 800 * 86400;
    /* Sent again (a lost connection): the same answers, the same bits. */
    ha.handed = hf.handed = false;
    hb.handed = true;
    hand_off(&run, hs, 3);
    assert_true(ha.handed && hf.handed);
    assert_false(hb.handed);
    assert_int_equal(int_of("BITCOUNT herald:handed:r.1"), 3);
    assert_true(int_of("TTL herald:handed:r.1") > 799 * 86400);
    /* A later handoff of the run in a byte the first ones wrote keeps
     * their bits (its write sends the byte whole). */
    cmd_ok("HSET herald:r:{c} c:c1 %s", "r 1-1 r.1 1000 3");
    struct store_job_handoff h3 = {.id = "c", .record = "r 1-1 r.1 1000 3"};
    struct store_job_handoff *h3s[] = {&h3};
    hand_off(&run, h3s, 1);
    assert_true(h3.handed);
    for (int bit = 1; bit <= 3; bit++) assert_int_equal(int_of("GETBIT herald:handed:r.1 %d", bit), 1);
    assert_int_equal(int_of("BITCOUNT herald:handed:r.1"), 4);
    /* A run that takes the job over: a handed reservation is pending (its
     * message unknown), one never handed is reserved (sent by the new run),
     * another run's of the same number is its own. */
    assert_int_equal(looked_up_state("a"), REC_PENDING);
    assert_int_equal(looked_up_state("far"), REC_PENDING);
    assert_int_equal(looked_up_state("c"), REC_PENDING);
    cmd_ok("HSET herald:r:{c} c:c1 %s", "r 1-1 r.1 1000 4");
    assert_int_equal(looked_up_state("c"), REC_RESERVED);
    cmd_ok("HSET herald:r:{c} c:c1 %s", "r 1-1 r.2 1000 1");
    assert_int_equal(looked_up_state("c"), REC_RESERVED);
    /* A reservation without a number (an older daemon's): its handoff is
     * written to the person, as it was. */
    cmd_ok("HSET herald:r:{c} c:c1 %s", "reserved 1-1 r.1 1000");
    struct store_job_handoff hc = {.id = "c", .record = "reserved 1-1 r.1 1000"};
    struct store_job_handoff *hcs[] = {&hc};
    hand_off(&run, hcs, 1);
    store_outcomes_free(&run);
    assert_true(hc.handed);
    expect_str("p 1-1 r.1 1000", "HGET herald:r:{c} c:c1");
    assert_int_equal(looked_up_state("c"), REC_PENDING);
}

static void handoff_finish_release(void **st)
{
    (void)st;
    own_entry();
    cmd_ok("HSET herald:r:{a} rev 1");
    cmd_ok("HSET herald:r:{a} c:c1 %s", "reserved 1-1 r.1 1000 1");
    struct store_job_handoff ha = {.id = "a", .record = "reserved 1-1 r.1 1000 1"};
    struct store_job_handoff *hs[] = {&ha};
    struct done d = {0};
    struct store_outcomes none;
    store_outcomes_init(&none, "herald");
    store_job_finish(sj, "1-1", "c1", "1-1", &none, hs, 1, on_done, &d, NULL); /* handoffs alone */
    run_until(&d.fired);
    store_outcomes_free(&none);
    assert_int_equal(d.res.status, STORE_JOB_OK);
    assert_true(ha.handed);

    struct store_outcomes o;
    store_outcomes_init(&o, "herald");
    struct store_outcome oc = {.id = "a", .record = "sent 1-1 r.1 1000", .unsend = "", .history = "{}",
                               .channel = "email", .outcome = "sent", .reason = "", .provider = "hook",
                               .provider_id = "p-1", .at = "2026-01-01T00:00:00Z",
                               .reserved = true, .requests = 2, .pid_key = true};
    store_outcomes_add(&o, &oc);
    assert_int_equal(o.n, 1);
    /* The decoder reads back what the encoder wrote (a fake store's view). */
    struct store_outcome back;
    struct strbuf scratch;
    strbuf_init(&scratch);
    store_outcomes_get(&o, 0, &back, &scratch);
    assert_string_equal(back.id, "a");
    assert_string_equal(back.record, oc.record);
    assert_string_equal(back.provider_id, "p-1");
    assert_string_equal(back.at, "2026-01-01T00:00:00Z");
    assert_true(back.reserved);
    assert_false(back.was_deferred || back.once);
    assert_int_equal(back.requests, 2);
    assert_true(back.pid_key);
    strbuf_free(&scratch);
    d.fired = false;
    store_job_finish(sj, "1-1", "c1", "1-1", &o, NULL, 0, on_done, &d, NULL);
    assert_int_equal(o.n, 0); /* taken */
    run_until(&d.fired);
    assert_int_equal(d.res.status, STORE_JOB_OK);
    expect_str("sent 1-1 r.1 1000", "HGET herald:r:{a} c:c1");
    /* `feedback = on`: the provider id finds the message (webhooks.c). */
    expect_str("c1 a email", "GET herald:pid:hook:p-1");
    expect_str("1", "HGET herald:campaign:c1 sent");
    redisReply *r = redisCommand(sync_c, "XRANGE herald:audit - +");
    assert_int_equal(r->elements, 1);
    const redisReply *f = r->element[0]->element[1];
    const char *req = NULL, *prov = NULL;
    for (size_t i = 0; i + 1 < f->elements; i += 2) {
        if (strcmp(f->element[i]->str, "requests") == 0) req = f->element[i + 1]->str;
        if (strcmp(f->element[i]->str, "provider_id") == 0) prov = f->element[i + 1]->str;
    }
    assert_non_null(req);
    assert_string_equal(req, "2");
    assert_string_equal(prov, "p-1");
    freeReplyObject(r);
    store_outcomes_free(&o);

    /* A reservation given back, in its handed form too. */
    cmd_ok("HSET herald:r:{e} c:c1 %s", "p 1-1 r.1 1000 9");
    cmd_ok("ZADD herald:r:{e}:sends 1000 email|news|c1");
    d.fired = false;
    store_job_release(sj, "1-1", "c1", "e", "reserved 1-1 r.1 1000 9", "email|news|c1", on_done, &d, NULL);
    run_until(&d.fired);
    assert_int_equal(d.res.status, STORE_JOB_OK);
    r = redisCommand(sync_c, "EXISTS herald:r:{e} herald:r:{e}:sends");
    assert_int_equal(r->integer, 0);
    freeReplyObject(r);
}

/* policy_limits (heraldctl explain and simulate) and reserve.lua (the
 * daemon) give the same verdict on the same sends, caps and limits: 300
 * people with histories drawn at random (channels, topics, ages on and
 * around the window edges), caps by channel and topic, own limits. */
static unsigned long long lcg = 42;
static unsigned next_rand(unsigned n)
{
    lcg = lcg * 6364136223846793005ULL + 1442695040888963407ULL;
    return (unsigned)(lcg >> 33) % n;
}

static void limits_match_reserve(void **st)
{
    (void)st;
    own_entry();
    static const char *const promo[] = {"promotions"};
    struct config_cap caps[] = {
        {.name = "sms_day", .channel = HERALD_CH_SMS, .limit = 1, .window_s = 86400},
        {.name = "promo_2d", .channel = -1, .limit = 2, .window_s = 2 * 86400, .topics = (char **)promo,
         .ntopics = 1},
        {.name = "any_3d", .channel = -1, .limit = 3, .window_s = 3 * 86400},
    };
    struct config cfg2 = cfg;
    cfg2.caps = caps;
    cfg2.ncaps = 3;
    struct store_job *sj2 = store_job_new(sc, &cfg2, "me");
    struct policy_cap pcaps[3];
    for (int i = 0; i < 3; i++)
        pcaps[i] = (struct policy_cap){caps[i].name, caps[i].channel, caps[i].limit, caps[i].window_s,
                                       (const char *const *)caps[i].topics, caps[i].ntopics};
    static const char *const chans[] = {"email", "sms"}, *const topics[] = {"news", "promotions"};
    const int64_t now = 10000000;
    const int64_t ages[] = {0, 60, 86399, 86400, 86401, 2 * 86400 - 1, 2 * 86400, 3 * 86400 - 1, 3 * 86400, 5 * 86400};
    int verdicts[3] = {0};
    for (int p = 0; p < 300; p++) {
        char id[16], key[64], member[64];
        snprintf(id, sizeof(id), "p%d", p);
        snprintf(key, sizeof(key), "herald:r:{%s}:sends", id);
        struct policy_send sends[6];
        size_t ns = next_rand(6);
        for (size_t i = 0; i < ns; i++) {
            int ch = (int)next_rand(2);
            const char *t = topics[next_rand(2)];
            int64_t at = now - ages[next_rand(10)];
            snprintf(member, sizeof(member), "%s|%s|old%zu", chans[ch], t, i);
            cmd_ok("ZADD %s %lld %s", key, (long long)at, member);
            sends[i] = (struct policy_send){at, ch, t};
        }
        struct store_job_reservation it;
        memset(&it, 0, sizeof(it));
        struct policy_freq freq[2];
        size_t nf = next_rand(3);
        int64_t keep = 3 * 86400;
        for (size_t i = 0; i < nf; i++) {
            int fc = (int)next_rand(3) - 1; /* -1 any */
            it.fchan[i] = fc < 0 ? "any" : chans[fc];
            it.flim[i] = 1 + next_rand(3);
            it.fwin[i] = (1 + next_rand(4)) * 86400;
            if (it.fwin[i] > keep) keep = it.fwin[i];
            freq[i] = (struct policy_freq){fc, it.flim[i], it.fwin[i]};
        }
        it.nfreq = nf;
        int ch = (int)next_rand(2);
        const char *topic = topics[next_rand(2)];
        char record[64], msg[64];
        snprintf(record, sizeof(record), "reserved 1-1 r.1 %lld %d", (long long)now, p);
        snprintf(msg, sizeof(msg), "%s|%s|c9", chans[ch], topic);
        it.id = id;
        it.rev = "";
        it.record = record;
        it.prior = "";
        it.channel = chans[ch];
        it.member = msg;
        it.keep = keep;
        struct store_job_reservation *items[] = {&it};
        struct done d = {0};
        store_job_reserve(sj2, "1-1", now, "c9", topic, items, 1, on_done, &d, NULL);
        run_until(&d.fired);
        assert_int_equal(d.res.status, STORE_JOB_OK);

        struct policy_limits_input in = {.topic = topic, .channel = ch, .now = now, .caps = pcaps, .ncaps = 3,
                                         .freq = freq, .nfreq = nf, .sends = sends, .nsends = ns};
        struct policy_decision dec;
        const char *cap_name = NULL;
        policy_limits(&in, &dec, &cap_name, NULL);
        enum store_job_verdict want = dec.reason == HERALD_REASON_CAP              ? SJV_CAP
                                      : dec.reason == HERALD_REASON_USER_FREQUENCY ? SJV_USER_FREQUENCY
                                                                                   : SJV_OK;
        if (it.verdict != want || (want == SJV_CAP && strcmp(it.detail, cap_name) != 0))
            fail_msg("person %d: reserve.lua said %d %s, policy_limits %d %s", p, it.verdict, it.detail, want,
                     cap_name ? cap_name : "");
        verdicts[want == SJV_OK ? 0 : want == SJV_CAP ? 1 : 2]++;
    }
    /* The draw reached every verdict, so the comparison means something. */
    assert_true(verdicts[0] > 10 && verdicts[1] > 10 && verdicts[2] > 10);
    store_job_free(sj2);
}

/* Another consumer owns the entry: every writing call is LOST and wrote
 * nothing; the heartbeat says so too and never takes it back. */
static void lost_entry(void **st)
{
    (void)st;
    own_entry();
    struct done d = {0};
    store_job_heartbeat(sj, "1-1", on_done, &d, NULL);
    run_until(&d.fired);
    assert_int_equal(d.res.status, STORE_JOB_OK);
    cmd_ok("XCLAIM herald:jobs herald other 0 1-1 JUSTID");
    d.fired = false;
    store_job_heartbeat(sj, "1-1", on_done, &d, NULL);
    run_until(&d.fired);
    assert_int_equal(d.res.status, STORE_JOB_LOST);
    struct store_job_reservation a;
    reserve_one(&a, "a", "", "reserved 1-1 r.1 1000 1");
    struct store_job_reservation *items[] = {&a};
    d.fired = false;
    store_job_reserve(sj, "1-1", 1000, "c1", "news", items, 1, on_done, &d, NULL);
    run_until(&d.fired);
    assert_int_equal(d.res.status, STORE_JOB_LOST);
    redisReply *r = redisCommand(sync_c, "HEXISTS herald:r:{a} c:c1");
    assert_int_equal(r->integer, 0);
    freeReplyObject(r);
}

/* A permanent error on a read the job needs reaches the caller, classified. */
static void refused_read_is_failed(void **st)
{
    (void)st;
    own_entry();
    cmd_ok("ACL SETUSER default -hmget");
    struct profile pa;
    struct strbuf ra;
    strbuf_init(&ra);
    struct strbuf env;
    strbuf_init(&env);
    struct store_job_person a = {.id = "a", .p = &pa, .raw_rec = &ra, .envelope = &env},
                            b = {.id = "b", .p = &pa, .raw_rec = &ra, .envelope = &env};
    struct store_job_person *rows[] = {&a, &b};
    struct done d = {0};
    store_job_lookup(sj, "c1", ALL_CHANNELS, rows, 2, on_done, &d, NULL); /* answered once, for both */
    run_until(&d.fired);
    cmd_ok("ACL SETUSER default +hmget");
    assert_int_equal(d.res.status, STORE_JOB_FAILED);
    assert_int_equal(d.res.err, STORE_E_NOPERM);
    strbuf_free(&ra);
    strbuf_free(&env);
}

struct got {
    bool fired;
    enum store_read_status status;
    char id[64], job[64], held_from[64];
};

static void on_read_done(const struct store_read_result *res, void *arg)
{
    struct got *g = arg;
    g->fired = true;
    g->status = res->status;
    g->id[0] = g->job[0] = g->held_from[0] = '\0';
    if (res->id) herald_copy(g->id, sizeof(g->id), res->id);
    if (res->job) herald_copy(g->job, sizeof(g->job), res->job);
    if (res->held_from) herald_copy(g->held_from, sizeof(g->held_from), res->held_from);
}

static enum store_read_status read_once(enum store_read_mode mode, struct got *g)
{
    memset(g, 0, sizeof(*g));
    assert_int_equal(store_job_read(sj, rc, mode, "0", 100, 1000, on_read_done, g), 0);
    run_until(&g->fired);
    return g->status;
}

/* The job stream through the typed reader: a missing group, its creation,
 * a new entry, our own pending one, one deleted while pending, a takeover
 * of another consumer's idle entry. */
static void reading_the_stream(void **st)
{
    (void)st;
    struct got g;
    cmd_ok("FLUSHALL");
    assert_int_equal(read_once(STORE_READ_NEW, &g), STORE_READ_NOGROUP);
    assert_int_equal(read_once(STORE_READ_GROUP, &g), STORE_READ_NONE);
    assert_int_equal(read_once(STORE_READ_GROUP, &g), STORE_READ_NONE); /* it exists: no error */
    assert_int_equal(read_once(STORE_READ_NEW, &g), STORE_READ_NONE);   /* nothing within 100 ms */
    cmd_ok("XADD herald:jobs 5-1 job {\"id\":\"x\"} held_from 4-1|d");
    assert_int_equal(read_once(STORE_READ_NEW, &g), STORE_READ_ENTRY);
    assert_string_equal(g.id, "5-1");
    assert_string_equal(g.job, "{\"id\":\"x\"}");
    assert_string_equal(g.held_from, "4-1|d");
    assert_int_equal(read_once(STORE_READ_OWN, &g), STORE_READ_ENTRY); /* still ours, unacknowledged */
    assert_string_equal(g.id, "5-1");
    cmd_ok("XDEL herald:jobs 5-1");
    assert_int_equal(read_once(STORE_READ_OWN, &g), STORE_READ_DELETED);
    assert_string_equal(g.id, "5-1");
    cmd_ok("XACK herald:jobs herald 5-1");
    assert_int_equal(read_once(STORE_READ_OWN, &g), STORE_READ_NONE);
    /* Another consumer's entry, idle past claim_idle (1 s here). */
    cmd_ok("XADD herald:jobs 6-1 other-field y");
    cmd_ok("XREADGROUP GROUP herald other COUNT 1 STREAMS herald:jobs >");
    assert_int_equal(read_once(STORE_READ_CLAIM, &g), STORE_READ_NONE); /* not idle long enough */
    cmd_ok("XCLAIM herald:jobs herald other 0 6-1 IDLE 5000 JUSTID");
    assert_int_equal(read_once(STORE_READ_CLAIM, &g), STORE_READ_ENTRY);
    assert_string_equal(g.id, "6-1");
    assert_string_equal(g.job, ""); /* no `job` field: the queue dead-letters it */
}

/* One cut step of job 1-1 by sj2 (or sj); returns its status. */
static enum store_job_status cut_step(struct store_job *by, struct store_cut *cut)
{
    struct done d = {0};
    store_job_cut(by, cut, on_done, &d);
    run_until(&d.fired);
    return d.res.status;
}

/* A recipients_key set cut into slices, a step at a time: a takeover in
 * the middle refuses the old owner's next step (nothing written) and the
 * new owner resumes where the cut stood; each id lands in exactly one
 * slice's list, the job's total counts each once, and the cut's state goes
 * with its last step. Only a slice's own list is ever dropped. */
static void cut_resumes_after_a_takeover(void **st)
{
    (void)st;
    enum { N = 3000 };
    own_entry();
    for (int i = 0; i < N; i++) cmd_ok("SADD lists:src p%04d", i);
    struct store_cut cut = {.entry = "1-1", .campaign = "c1", .source = "lists:src", .from = "1-1|s",
                            .text_head = "{\"id\":\"c1\",\"recipients_key\":\"", .text_tail = "\"}",
                            .kind = STORE_SRC_SET, .size = 1000, .step = 700};
    assert_int_equal(cut_step(sj, &cut), STORE_JOB_OK);
    assert_false(cut.done);
    long long kept = cut.kept;
    assert_true(kept > 0 && kept < N);
    cmd_ok("XCLAIM herald:jobs herald other 0 1-1 JUSTID");
    long long entries = int_of("XLEN herald:jobs");
    assert_int_equal(cut_step(sj, &cut), STORE_JOB_LOST);
    assert_int_equal(int_of("XLEN herald:jobs"), entries);
    struct store_job *other = store_job_new(sc, &cfg, "other");
    int steps = 0;
    long long before_last = 0;
    while (!cut.done && steps++ < 100) {
        before_last = int_of("XLEN herald:jobs");
        assert_int_equal(cut_step(other, &cut), STORE_JOB_OK);
    }
    assert_true(cut.done);
    /* N is a multiple of the size: the last slice still comes with the
     * last step, which sets the job done (so the last slice to finish
     * sees every state done and writes the campaign's finished event). */
    assert_true(int_of("XLEN herald:jobs") > before_last);
    assert_int_equal(cut.kept, N);
    assert_int_equal(cut.slices, 3);
    assert_int_equal(int_of("XLEN herald:jobs"), 1 + 3);
    expect_str("3000", "HGET herald:campaign:c1 total:1-1");
    expect_str("done", "HGET herald:campaign:c1 state:1-1");
    assert_int_equal(int_of("EXISTS herald:cut:{1-1} herald:cut:{1-1}:seen"), 0);
    /* Every id in one slice: the lists hold N ids, N distinct. */
    long long listed = 0;
    for (int k = 0; k < 3; k++) listed += int_of("LLEN herald:cut:{1-1}:slice:%d", k);
    assert_int_equal(listed, N);
    for (int k = 0; k < 3; k++) {
        redisReply *r = redisCommand(sync_c, "LRANGE herald:cut:{1-1}:slice:%d 0 -1", k);
        for (size_t i = 0; i < r->elements; i++) cmd_ok("SADD distinct %s", r->element[i]->str);
        freeReplyObject(r);
    }
    assert_int_equal(int_of("SCARD distinct"), N);
    redisReply *r = redisCommand(sync_c, "XRANGE herald:jobs 1-2 +");
    assert_int_equal(r->elements, 3);
    for (size_t i = 0; i < r->elements; i++) {
        redisReply *f = r->element[i]->element[1];
        char want[96];
        snprintf(want, sizeof(want), "{\"id\":\"c1\",\"recipients_key\":\"herald:cut:{1-1}:slice:%zu\"}", i);
        assert_string_equal(f->element[1]->str, want);
        assert_string_equal(f->element[3]->str, "1-1|s");
        expect_str("queued", "HGET herald:campaign:c1 state:%s", r->element[i]->element[0]->str);
    }
    freeReplyObject(r);
    /* A finished slice's list goes; an operator's key never does. */
    store_job_slice_drop(other, "herald:cut:{1-1}:slice:0");
    store_job_slice_drop(other, "lists:src");
    struct done d = {0};
    store_job_heartbeat(other, "1-1", on_done, &d, NULL); /* after both, in order */
    run_until(&d.fired);
    assert_int_equal(int_of("EXISTS herald:cut:{1-1}:slice:0"), 0);
    assert_int_equal(int_of("SCARD lists:src"), N);
    store_job_free(other);
}

/* A reservation lost while its person stays stored (on a cluster: a
 * failover that kept a replica's copy from before it): the handoff and
 * the outcome re-create the record, and the message goes on; only a
 * person erased meanwhile (no hash at all) is not sent, nor recorded.
 * The handoffs written to the person, as a cluster writes them (here for
 * reservations without a number, which take that form on one Redis). */
static void lost_reservation_of_a_stored_person(void **st)
{
    (void)st;
    own_entry();
    cmd_ok("HSET herald:r:{k} rev 1");
    struct store_job_handoff hk = {.id = "k", .record = "reserved 1-1 r.1 1000"};
    struct store_job_handoff he = {.id = "gone", .record = "reserved 1-1 r.1 1000", .handed = true};
    struct store_job_handoff *hs[] = {&hk, &he};
    struct done d = {0};
    struct store_outcomes none;
    store_outcomes_init(&none, "herald");
    store_job_finish(sj, "1-1", "c1", "1-1", &none, hs, 2, on_done, &d, NULL);
    run_until(&d.fired);
    store_outcomes_free(&none);
    assert_int_equal(d.res.status, STORE_JOB_OK);
    assert_true(hk.handed);
    assert_false(he.handed);
    expect_str("p 1-1 r.1 1000", "HGET herald:r:{k} c:c1");
    assert_int_equal(int_of("EXISTS herald:r:{gone}"), 0);
    /* Its outcome, after the record went again: written, with its audit. */
    cmd_ok("HDEL herald:r:{k} c:c1");
    struct store_outcomes o;
    store_outcomes_init(&o, "herald");
    struct store_outcome oc = {.id = "k", .record = "sent 1-1 r.1 1000", .unsend = "", .history = "",
                               .channel = "email", .outcome = "sent", .reason = "", .provider = "hook",
                               .provider_id = "", .at = "2026-01-01T00:00:00Z",
                               .reserved = true, .requests = 1};
    store_outcomes_add(&o, &oc);
    d.fired = false;
    store_job_finish(sj, "1-1", "c1", "1-1", &o, NULL, 0, on_done, &d, NULL);
    run_until(&d.fired);
    store_outcomes_free(&o);
    assert_int_equal(d.res.status, STORE_JOB_OK);
    expect_str("sent 1-1 r.1 1000", "HGET herald:r:{k} c:c1");
    assert_int_equal(int_of("XLEN herald:audit"), 1);
}

/* job_finished.lua for the entries of one run on a cluster, where the
 * daemon passes the counters it summed over the nodes and the `dones` it
 * read before them: an entry that finished after that read may have
 * outcomes the counters miss, so the event waits (2) for a second read;
 * with the counters read after every entry finished it is written once,
 * with every outcome, and a call sent again after it writes nothing. */
static long long finished_call(const char *entry, const char *dones, const char *sent)
{
    redisReply *r = redisCommand(sync_c, "EVAL %s 4 herald:campaign:c1 herald:jobs herald:events herald:retention "
                                 "herald %s c1 2026-12-06T00:00:00Z 100 1800000000 %s sent %s",
                                 store_lua_job_finished, entry, dones, sent);
    assert_int_equal(r->type, REDIS_REPLY_INTEGER);
    long long v = r->integer;
    freeReplyObject(r);
    return v;
}

static void finished_event_counts_every_entry(void **st)
{
    (void)st;
    own_entry();
    cmd_ok("HSET herald:campaign:c1 run 1 state:1-1 running state:2-1 running total:1-1 3 total:2-1 2");
    /* 2-1 finishes first: 1-1 still runs, no event. */
    assert_int_equal(finished_call("2-1", "0", "2"), 0);
    /* 1-1 read its counters before 2-1 finished (dones 0 then): it sums
     * only its own 3, so the event waits. */
    assert_int_equal(finished_call("1-1", "0", "3"), 2);
    assert_int_equal(int_of("XLEN herald:events"), 0);
    expect_str("done", "HGET herald:campaign:c1 state:1-1");
    /* Read again (dones 2): every outcome, one event. */
    assert_int_equal(finished_call("1-1", "2", "5"), 1);
    assert_int_equal(int_of("XLEN herald:events"), 1);
    redisReply *r = redisCommand(sync_c, "XRANGE herald:events - +");
    redisReply *f = r->element[0]->element[1];
    bool seen = false;
    for (size_t i = 0; i + 1 < f->elements; i += 2)
        if (strcmp(f->element[i]->str, "sent") == 0) {
            assert_string_equal(f->element[i + 1]->str, "5");
            seen = true;
        }
    assert_true(seen);
    freeReplyObject(r);
    /* Sent again (a lost connection): no second event, no second count. */
    assert_int_equal(finished_call("1-1", "2", "5"), 0);
    assert_int_equal(int_of("XLEN herald:events"), 1);
    expect_str("2", "HGET herald:campaign:c1 dones");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(lookup_rows),
        cmocka_unit_test(suppression_flags),
        cmocka_unit_test(reserve_verdicts),
        cmocka_unit_test(handoff_log_and_takeover),
        cmocka_unit_test(handoff_finish_release),
        cmocka_unit_test(outcomes_kinds_split_by_record),
        cmocka_unit_test(outcomes_share_kinds),
        cmocka_unit_test(limits_match_reserve),
        cmocka_unit_test(lost_entry),
        cmocka_unit_test(refused_read_is_failed),
        cmocka_unit_test(reading_the_stream),
        cmocka_unit_test(cut_resumes_after_a_takeover),
        cmocka_unit_test(finished_event_counts_every_entry),
        cmocka_unit_test(lost_reservation_of_a_stored_person),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
