/*
 * test_queue.c - the job pipeline (queue.c) against a fake store that can
 * fail any call, with the real dispatch and the fake plugin on a real
 * libuv loop.
 *
 * The fake store (struct fake below, behind struct store_ops) keeps one
 * job stream entry, profiles, once-only records and the outcomes written,
 * and answers every call on a later loop iteration, as Redis would. A test
 * scripts a failure of the n-th call of one operation (a permanent error,
 * or the fence's "lost") and checks what the pipeline did about it:
 * nothing decided from a failed read, nothing acknowledged early, nothing
 * written by a run that lost its entry, nothing lost by a stop.
 *
 * Owns a temporary directory (the config file) and its loop.
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
#include "plugin.h"
#include "fake_config.h"
#include "profile.h"
#include "queue.h"
#include "queue_int.h" /* queue_ready_share, on runs of the test's own */
#include "store_job.h"

#ifndef FAKE_PLUGIN_DIR
#error "FAKE_PLUGIN_DIR must name build/tests/plugins"
#endif

#define NPEOPLE 6 /* p0..p5: the one-job tests' recipients */
#define NSLOTS 70 /* p0..p69: people in the fake store (p10..p69: a larger job's) */
#define ENTRY "1-1"
#define ENTRY2 "1-2" /* a second job, when the test gives one (job2) */

enum op { OP_LOOKUP, OP_SUPPRESSED, OP_RESERVE, OP_HANDED, OP_FINISH, OP_HEARTBEAT, OP_COUNT };

/* A store call answered on a later loop iteration. */
struct pend {
    struct pend *next;
    store_job_cb cb;
    void *arg;
    struct store_job_result res;
    store_read_cb rcb; /* a read instead */
    struct store_read_result rres;
};

struct fake {
    uv_loop_t *loop;
    uv_idle_t idle;
    struct pend *head, *tail;
    store_read_cb parked_cb; /* a blocking read of nothing new: answered NONE after its block_ms */
    void *parked_arg;
    uv_timer_t block;
    /* the stream: one entry, and a second one when job2 is set */
    char job[2048];
    bool delivered, acked;
    char job2[2048];
    bool delivered2, acked2;
    int acks;           /* entries acknowledged, in order: */
    char ack_order[2][8];
    char state[32];
    /* people and records */
    char profile[NSLOTS][256];
    char consent[NSLOTS][256];
    char record[NSLOTS][192];
    int outcomes[NSLOTS]; /* outcome writes per person */
    char last_outcome[NSLOTS][16];
    char last_reason[NSLOTS][32];
    char last_history[NSLOTS][160]; /* the history entry of the last outcome */
    int requests[NSLOTS];
    /* failure script: the n-th call (1-based) of op fails as fail_as */
    int calls[OP_COUNT];
    int fail_at[OP_COUNT];
    enum store_job_status fail_as[OP_COUNT];
    /* an operator's control of the campaign, and the job parked by a pause */
    enum store_control control;
    char control_only[16]; /* when set, control is that campaign's only */
    bool paused_parked;
    char parked_from[96];
};

static int person_index(const char *id)
{
    if (id[0] != 'p' || id[1] < '0' || id[1] > '9') return -1;
    int k = id[1] - '0';
    if (id[2] >= '0' && id[2] <= '9' && k > 0) k = 10 * k + (id[2] - '0');
    else if (id[2]) return -1;
    return k < NSLOTS && !id[k >= 10 ? 3 : 2] ? k : -1;
}

static void on_idle(uv_idle_t *h)
{
    struct fake *f = h->data;
    struct pend *p = f->head;
    f->head = f->tail = NULL;
    if (!p) uv_idle_stop(h);
    while (p) {
        struct pend *next = p->next;
        if (p->rcb) p->rcb(&p->rres, p->arg);
        else p->cb(&p->res, p->arg);
        free(p);
        p = next;
    }
}

static struct pend *later(struct fake *f)
{
    struct pend *p = calloc(1, sizeof(*p));
    assert_non_null(p);
    if (f->tail) f->tail->next = p;
    else f->head = p;
    f->tail = p;
    uv_idle_start(&f->idle, on_idle);
    return p;
}

static void answer(struct fake *f, store_job_cb cb, void *arg, enum store_job_status st)
{
    struct pend *p = later(f);
    p->cb = cb;
    p->arg = arg;
    p->res.status = st;
    p->res.err = st == STORE_JOB_FAILED ? STORE_E_NOPERM : STORE_E_COUNT;
    p->res.text = st == STORE_JOB_FAILED ? "NOPERM scripted by the test" : NULL;
}

/* The scripted failure of this call of op, or OK. */
static enum store_job_status scripted(struct fake *f, enum op op)
{
    f->calls[op]++;
    return f->calls[op] == f->fail_at[op] ? f->fail_as[op] : STORE_JOB_OK;
}

/* ---- the store_ops ----------------------------------------------------- */

static bool f_ready(void *s, bool jobs)
{
    (void)s;
    (void)jobs;
    return true;
}
static void f_connected(void *s) { (void)s; }
static bool f_idle(void *s) { return ((struct fake *)s)->head == NULL; }
static void f_status(void *s, struct store_cmds_status *out)
{
    (void)s;
    memset(out, 0, sizeof(*out));
    out->error = STORE_E_COUNT;
}

static void f_lookup(void *s, const char *campaign, unsigned channels, struct store_job_person *const *rows, size_t n,
                     store_job_cb cb, void *arg, void (*discard)(void *))
{
    struct fake *f = s;
    (void)campaign;
    (void)channels;
    (void)discard;
    enum store_job_status st = scripted(f, OP_LOOKUP);
    for (size_t i = 0; st == STORE_JOB_OK && i < n; i++) {
        struct store_job_person *r = rows[i];
        int k = person_index(r->id);
        r->found = 0;
        r->has_rec = false;
        strbuf_reset(r->raw_rec);
        snprintf(r->rev, sizeof(r->rev), "1");
        if (k < 0 || !f->profile[k][0]) continue;
        char err[128];
        assert_int_equal(profile_parse(f->profile[k], strlen(f->profile[k]), r->p, err, sizeof(err)), 0);
        assert_int_equal(consent_state_parse(f->consent[k], strlen(f->consent[k]), &r->p->consent[HERALD_CH_EMAIL]), 0);
        r->found = 1;
        if (f->record[k][0] && store_record_parse(f->record[k], &r->rec) == 0) {
            r->has_rec = true;
            strbuf_adds(r->raw_rec, f->record[k]);
        }
    }
    answer(f, cb, arg, st);
}

static void f_suppressed(void *s, const unsigned char *const *members, bool (*const *out)[HERALD_CH_COUNT],
                         size_t n, store_job_cb cb, void *arg, void (*discard)(void *))
{
    struct fake *f = s;
    (void)discard;
    for (size_t i = 0; i < n; i++)
        for (int ch = 0; ch < HERALD_CH_COUNT; ch++)
            if (members[i * HERALD_CH_COUNT + (size_t)ch]) (*out[i])[ch] = false;
    answer(f, cb, arg, scripted(f, OP_SUPPRESSED));
}

static void f_reserve(void *s, const char *entry, int64_t now, const char *campaign, const char *topic,
                      struct store_job_reservation *const *items, size_t n, store_job_cb cb, void *arg,
                      void (*discard)(void *))
{
    struct fake *f = s;
    (void)entry, (void)now, (void)campaign, (void)topic, (void)discard;
    enum store_job_status st = scripted(f, OP_RESERVE);
    for (size_t i = 0; st == STORE_JOB_OK && i < n; i++) {
        int k = person_index(items[i]->id);
        assert_true(k >= 0);
        const char *cur = f->record[k];
        bool taken = cur[0] && strcmp(cur, items[i]->prior) != 0 &&
                     (!strncmp(cur, "r ", 2) || !strncmp(cur, "p ", 2) || !strncmp(cur, "s ", 2) ||
                      !strncmp(cur, "u ", 2));
        if (taken) {
            items[i]->verdict = SJV_DUPLICATE;
            snprintf(items[i]->detail, sizeof(items[i]->detail), "%s", cur);
            continue;
        }
        snprintf(f->record[k], sizeof(f->record[k]), "%s", items[i]->record);
        items[i]->verdict = SJV_OK;
        items[i]->detail[0] = '\0';
    }
    answer(f, cb, arg, st);
}

static void f_finish(void *s, const char *entry, const char *campaign, const char *rec_entry,
                     struct store_outcomes *o, struct store_job_handoff *const *hand, size_t nhand, store_job_cb cb,
                     void *arg, void (*discard)(void *))
{
    struct fake *f = s;
    (void)entry, (void)campaign, (void)rec_entry, (void)discard;
    enum store_job_status st = scripted(f, o->n ? OP_FINISH : OP_HANDED);
    if (o->n && nhand && st == STORE_JOB_OK) st = scripted(f, OP_HANDED);
    struct strbuf scratch;
    strbuf_init(&scratch);
    for (size_t i = 0; st == STORE_JOB_OK && i < o->n; i++) {
        struct store_outcome oc;
        store_outcomes_get(o, i, &oc, &scratch);
        int k = person_index(oc.id);
        assert_true(k >= 0);
        f->outcomes[k]++;
        snprintf(f->last_outcome[k], sizeof(f->last_outcome[k]), "%s", oc.outcome);
        snprintf(f->last_reason[k], sizeof(f->last_reason[k]), "%s", oc.reason ? oc.reason : "");
        f->requests[k] = oc.requests;
        if (oc.record[0]) snprintf(f->record[k], sizeof(f->record[k]), "%s", oc.record);
        snprintf(f->last_history[k], sizeof(f->last_history[k]), "%s", oc.history ? oc.history : "");
    }
    strbuf_free(&scratch);
    struct strbuf h;
    strbuf_init(&h);
    for (size_t i = 0; st == STORE_JOB_OK && i < nhand; i++) { /* reserved -> pending */
        int k = person_index(hand[i]->id);
        store_job_handed_record(&h, hand[i]->record);
        hand[i]->handed = strcmp(f->record[k], hand[i]->record) == 0 || strcmp(f->record[k], h.buf) == 0;
        if (hand[i]->handed) snprintf(f->record[k], sizeof(f->record[k]), "%s", h.buf);
    }
    strbuf_free(&h);
    const char *prefix = o->prefix;
    store_outcomes_free(o);
    store_outcomes_init(o, prefix);
    answer(f, cb, arg, st);
}

static void f_release(void *s, const char *entry, const char *campaign, const char *id, const char *record,
                      const char *member, store_job_cb cb, void *arg, void (*discard)(void *))
{
    struct fake *f = s;
    (void)entry, (void)campaign, (void)member, (void)discard;
    int k = person_index(id);
    struct strbuf h;
    strbuf_init(&h);
    store_job_handed_record(&h, record);
    if (strcmp(f->record[k], record) == 0 || strcmp(f->record[k], h.buf) == 0) f->record[k][0] = '\0';
    strbuf_free(&h);
    answer(f, cb, arg, STORE_JOB_OK);
}

static void f_heartbeat(void *s, const char *entry, store_job_cb cb, void *arg, void (*discard)(void *))
{
    struct fake *f = s;
    (void)entry, (void)discard;
    answer(f, cb, arg, scripted(f, OP_HEARTBEAT));
}

static void f_source_open(void *s, const char *key, struct store_source_info *out, store_job_cb cb, void *arg,
                          void (*discard)(void *))
{
    (void)key, (void)out, (void)discard;
    answer(s, cb, arg, STORE_JOB_FAILED); /* the tests use inline recipients */
}

static void f_source_page(void *s, enum store_source kind, const char *key, const char *cursor, long pos,
                          long count, struct store_page *out, store_job_cb cb, void *arg, void (*discard)(void *))
{
    (void)kind, (void)key, (void)cursor, (void)pos, (void)count, (void)out, (void)discard;
    answer(s, cb, arg, STORE_JOB_FAILED);
}

static void f_state(void *s, const char *campaign, const char *entry, const char *state)
{
    (void)campaign, (void)entry;
    snprintf(((struct fake *)s)->state, sizeof(((struct fake *)s)->state), "%s", state);
}
static void f_state_del(void *s, const char *campaign, const char *entry) { (void)s, (void)campaign, (void)entry; }
static void f_total(void *s, const char *campaign, const char *entry, long long total)
{
    (void)s, (void)campaign, (void)entry, (void)total;
}
static void fake_acked(struct fake *f, const char *entry)
{
    if (strcmp(entry, ENTRY2) == 0) f->acked2 = true;
    else f->acked = true;
    if (f->acks < 2) snprintf(f->ack_order[f->acks], sizeof(f->ack_order[0]), "%s", entry);
    f->acks++;
}

static void f_finished(void *s, const char *campaign, const char *entry, const char *run, int64_t expires_at,
                       store_job_cb cb, void *arg)
{
    (void)run;
    (void)expires_at;
    struct fake *f = s;
    f_state(s, campaign, entry, "done");
    fake_acked(f, entry);
    answer(f, cb, arg, STORE_JOB_OK);
}
static void f_dead_letter(void *s, const char *entry, const char *text, const char *error, store_job_cb cb,
                          void *arg)
{
    (void)entry, (void)text, (void)error;
    fail_msg("the test's job was refused");
    answer(s, cb, arg, STORE_JOB_OK);
}
static void f_park(void *s, int64_t when, const char *from, const char *text, store_job_cb cb, void *arg)
{
    (void)when, (void)from, (void)text;
    answer(s, cb, arg, STORE_JOB_OK);
}
static void f_schedule(void *s, const char *campaign, const char *entry, int64_t when, const char *from,
                       const char *text, store_job_cb cb, void *arg)
{
    (void)campaign, (void)entry, (void)when, (void)from, (void)text;
    answer(s, cb, arg, STORE_JOB_OK);
}
static void f_ack(void *s, const char *entry) { (void)s, (void)entry; }
static void f_release_due(void *s, int64_t now, int max, long long *moved, store_job_cb cb, void *arg)
{
    (void)now, (void)max;
    *moved = 0;
    answer(s, cb, arg, STORE_JOB_OK);
}
static void f_marker(void *s, bool *was_absent, char layout[8], store_job_cb cb, void *arg)
{
    *was_absent = false;
    snprintf(layout, 8, "%s", STORE_LAYOUT);
    answer(s, cb, arg, STORE_JOB_OK);
}

static void f_control(void *s, const char *campaign, enum store_control *out, store_job_cb cb, void *arg)
{
    struct fake *f = s;
    *out = !f->control_only[0] || strcmp(f->control_only, campaign) == 0 ? f->control : STORE_CONTROL_NONE;
    answer(f, cb, arg, STORE_JOB_OK);
}
/* Every new entry is a run of its own (campaign_enqueue.lua's rules are
 * held by the e2e tests against a real Redis). */
static void f_enqueue(void *s, const struct store_enqueue *e, struct store_enqueue_result *out, store_job_cb cb,
                      void *arg)
{
    memset(out, 0, sizeof(*out));
    out->status = STORE_ENQ_OK;
    out->run = 1;
    snprintf(out->entry, sizeof(out->entry), "%s", e->entry);
    answer(s, cb, arg, STORE_JOB_OK);
}
static void f_pause_park(void *s, const char *campaign, const char *entry, const char *from, const char *text,
                         store_job_cb cb, void *arg)
{
    struct fake *f = s;
    (void)campaign, (void)entry, (void)text;
    f->paused_parked = true;
    snprintf(f->parked_from, sizeof(f->parked_from), "%s", from);
    snprintf(f->state, sizeof(f->state), "paused");
    fake_acked(f, entry);
    answer(f, cb, arg, STORE_JOB_OK);
}

static void f_consumer_lock(void *s, enum store_lock_action action, const char *value, int64_t ttl_ms,
                            const char *dead, char *holder, store_job_cb cb, void *arg)
{
    (void)action, (void)value, (void)ttl_ms, (void)dead;
    holder[0] = '\0'; /* the name is ours */
    answer(s, cb, arg, STORE_JOB_OK);
}

static void f_event(void *s, const char *campaign, const char *entry, const char *event, const char *error)
{
    (void)s, (void)campaign, (void)entry, (void)event, (void)error;
}
static void f_started(void *s, const char *campaign, const char *entry, bool first)
{
    (void)first;
    f_state(s, campaign, entry, "running");
}

static void on_block_over(uv_timer_t *t)
{
    struct fake *f = t->data;
    store_read_cb cb = f->parked_cb;
    f->parked_cb = NULL;
    struct store_read_result res = {.status = STORE_READ_NONE};
    if (cb) cb(&res, f->parked_arg);
}

/* NEW gives the entries not delivered yet, in order; OWN the delivered and
 * unacknowledged ones after the id `after`, as XREADGROUP does. */
static int f_read(void *s, enum store_read_mode mode, const char *after, int64_t block_ms, int64_t claim_idle_ms,
                  store_read_cb cb, void *arg)
{
    struct fake *f = s;
    (void)block_ms, (void)claim_idle_ms;
    int give = 0; /* 1: ENTRY, 2: ENTRY2 */
    bool first_after = !after || strcmp(after, ENTRY) < 0; /* "0" < "1-1" < "1-2" */
    bool second_after = !after || strcmp(after, ENTRY2) < 0;
    if (mode == STORE_READ_NEW) {
        if (!f->delivered && !f->acked) give = 1;
        else if (f->job2[0] && !f->delivered2 && !f->acked2) give = 2;
    } else if (mode == STORE_READ_OWN) {
        if (f->delivered && !f->acked && first_after) give = 1;
        else if (f->delivered2 && !f->acked2 && second_after) give = 2;
    }
    if (mode == STORE_READ_NEW && !give) { /* blocks: nothing new comes in these tests */
        f->parked_cb = cb;
        f->parked_arg = arg;
        uv_timer_start(&f->block, on_block_over, (uint64_t)block_ms, 0);
        return 0;
    }
    struct pend *p = later(f);
    p->rcb = cb;
    p->arg = arg;
    p->rres.status = give ? STORE_READ_ENTRY : STORE_READ_NONE;
    if (give == 1) {
        f->delivered = true;
        p->rres.id = ENTRY;
        p->rres.job = f->job;
        p->rres.job_len = strlen(f->job);
    } else if (give == 2) {
        f->delivered2 = true;
        p->rres.id = ENTRY2;
        p->rres.job = f->job2;
        p->rres.job_len = strlen(f->job2);
    }
    return 0;
}

static const struct store_ops fake_ops = {
    .ready = f_ready, .connected = f_connected, .idle = f_idle, .status = f_status, .lookup = f_lookup,
    .suppressed = f_suppressed, .reserve = f_reserve, .finish = f_finish, .release = f_release,
    .heartbeat = f_heartbeat, .source_open = f_source_open, .source_page = f_source_page, .state = f_state,
    .state_del = f_state_del, .total = f_total, .finished = f_finished, .dead_letter = f_dead_letter,
    .park = f_park, .schedule = f_schedule, .ack = f_ack, .release_due = f_release_due, .marker = f_marker,
    .control = f_control, .pause_park = f_pause_park, .consumer_lock = f_consumer_lock, .event = f_event,
    .started = f_started, .read = f_read, .enqueue = f_enqueue,
};

/* ---- the fixture --------------------------------------------------------- */

struct fx {
    struct fake_config fc;
    uv_loop_t loop;
    struct dispatch *d;
    struct queue *q;
    struct fake f;
    bool drained;
};

static struct fx *fx_new(const char *daemon_extra, const char *provider_extra)
{
    struct fx *fx = calloc(1, sizeof(*fx));
    assert_non_null(fx);
    fake_config_load(&fx->fc, daemon_extra, provider_extra);
    assert_int_equal(uv_loop_init(&fx->loop), 0);
    fx->f.loop = &fx->loop;
    uv_idle_init(&fx->loop, &fx->f.idle);
    fx->f.idle.data = &fx->f;
    uv_timer_init(&fx->loop, &fx->f.block);
    fx->f.block.data = &fx->f;
    /* the people: consent for email, no record yet */
    struct consent_record rec = {.channel = HERALD_CH_EMAIL, .granted = true, .at = 1700000000, .source = "t",
                                 .text_version = "v1"};
    char *cj = consent_record_to_json(&rec);
    for (int i = 0; i < NSLOTS; i++) {
        snprintf(fx->f.profile[i], sizeof(fx->f.profile[i]),
                 "{\"id\":\"p%d\",\"email\":\"p%d@example.org\",\"channels\":[\"email\"],\"tz\":\"UTC\"}", i, i);
        snprintf(fx->f.consent[i], sizeof(fx->f.consent[i]), "%s", cj);
    }
    free(cj);
    snprintf(fx->f.job, sizeof(fx->f.job),
             "{\"id\":\"c1\",\"topic\":\"news\",\"channels\":[\"email\"],"
             "\"recipients\":[\"p0\",\"p1\",\"p2\",\"p3\",\"p4\",\"p5\"],"
             "\"content\":{\"email\":{\"subject\":\"Hi\",\"text\":\"Hello there\"}}}");
    fx->d = dispatch_new(&fx->loop, &fx->fc.cfg, fx->fc.ps);
    return fx;
}

static void start(struct fx *fx)
{
    fx->q = queue_new(&fx->loop, &fx->fc.cfg, &fake_ops, &fx->f, fx->d, "me", "run1");
    queue_connected(fx->q, false);
    queue_connected(fx->q, true);
}

static void on_drained(void *arg) { ((struct fx *)arg)->drained = true; }

static void fx_free(struct fx *fx)
{
    fx->drained = false;
    queue_stop(fx->q, on_drained, fx);
    for (int i = 0; i < 100000 && !fx->drained; i++) uv_run(&fx->loop, UV_RUN_ONCE);
    assert_true(fx->drained);
    uv_timer_stop(&fx->f.block);
    if (fx->f.parked_cb) {
        struct store_read_result res = {.status = STORE_READ_CLOSED};
        fx->f.parked_cb(&res, fx->f.parked_arg);
    }
    uv_close((uv_handle_t *)&fx->f.block, NULL);
    queue_free(fx->q);
    dispatch_close(fx->d);
    uv_close((uv_handle_t *)&fx->f.idle, NULL);
    uv_run(&fx->loop, UV_RUN_DEFAULT);
    assert_null(fx->f.head);
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

/* Runs the loop until done(fx) or max_ms. */
static bool run_until(struct fx *fx, bool (*done)(const struct fx *), uint64_t max_ms)
{
    uint64_t t0 = now_ms();
    while (!done(fx) && now_ms() - t0 < max_ms) uv_run(&fx->loop, UV_RUN_ONCE);
    return done(fx);
}

static bool acked(const struct fx *fx) { return fx->f.acked; }

static int outcomes(const struct fx *fx)
{
    int n = 0;
    for (int i = 0; i < NPEOPLE; i++) n += fx->f.outcomes[i];
    return n;
}

static bool some_outcome(const struct fx *fx) { return outcomes(fx) > 0; }

static void each_sent_once(const struct fx *fx)
{
    for (int i = 0; i < NPEOPLE; i++) {
        assert_int_equal(fx->f.outcomes[i], 1);
        assert_string_equal(fx->f.last_outcome[i], "sent");
        assert_int_equal(fx->f.requests[i], 1);
        assert_int_equal(strncmp(fx->f.record[i], "s " ENTRY " run1.", 10), 0);
    }
}

/* ---- tests --------------------------------------------------------------- */

static void every_recipient_sent_once_then_acked(void **state)
{
    (void)state;
    struct fx *fx = fx_new("", "");
    start(fx);
    assert_true(run_until(fx, acked, 10000));
    each_sent_once(fx);
    assert_string_equal(fx->f.state, "done");
    fx_free(fx);
}

/* Each outcome's record and history entry are its own: decided in the
 * same second, on the same channel, people without consent are recorded
 * suppressed/no_consent, the one without an address suppressed/no_address
 * between them, the others sent (queue_finish reuses a run's texts only
 * for the same decision). */
static void records_and_history_follow_each_decision(void **state)
{
    (void)state;
    struct fx *fx = fx_new("", "");
    struct consent_record rec = {.channel = HERALD_CH_EMAIL, .granted = false, .at = 1700000000, .source = "t",
                                 .text_version = "v1"};
    char *cj = consent_record_to_json(&rec);
    for (int i = 1; i < NPEOPLE; i += 2) snprintf(fx->f.consent[i], sizeof(fx->f.consent[i]), "%s", cj);
    free(cj);
    /* p4 has no address: suppressed on the same channel too, for another reason */
    snprintf(fx->f.profile[4], sizeof(fx->f.profile[4]), "{\"id\":\"p4\",\"channels\":[\"email\"],\"tz\":\"UTC\"}");
    start(fx);
    assert_true(run_until(fx, acked, 10000));
    for (int i = 0; i < NPEOPLE; i++) {
        assert_int_equal(fx->f.outcomes[i], 1);
        if (i == 4) {
            assert_string_equal(fx->f.last_outcome[i], "suppressed");
            assert_string_equal(fx->f.last_reason[i], "no_address");
            assert_int_equal(strncmp(fx->f.record[i], "x ", 2), 0);
            assert_non_null(strstr(fx->f.last_history[i], "|0xna|"));
        } else if (i % 2 == 0) {
            assert_string_equal(fx->f.last_outcome[i], "sent");
            assert_int_equal(strncmp(fx->f.record[i], "s ", 2), 0);
            assert_non_null(strstr(fx->f.last_history[i], "|0s|"));
        } else {
            assert_string_equal(fx->f.last_outcome[i], "suppressed");
            assert_string_equal(fx->f.last_reason[i], "no_consent");
            assert_int_equal(strncmp(fx->f.record[i], "x ", 2), 0);
            assert_non_null(strstr(fx->f.last_history[i], "|0xnc|"));
        }
    }
    fx_free(fx);
}

/* An operator's pause, seen within a second: nothing more is sent, what
 * no provider had is given back (no record left), and the job is parked
 * (acknowledged, state "paused") as a resumed run ("|p"), not run again. */
static void pause_parks_the_job_and_sends_nothing_more(void **state)
{
    (void)state;
    struct fx *fx = fx_new("", "delay_ms = 300\nconcurrency = 1\n");
    start(fx);
    assert_true(run_until(fx, some_outcome, 5000));
    fx->f.control = STORE_CONTROL_PAUSED;
    assert_true(run_until(fx, acked, 5000));
    assert_true(fx->f.paused_parked);
    assert_string_equal(fx->f.parked_from, ENTRY "|p");
    assert_string_equal(fx->f.state, "paused");
    int sent = outcomes(fx);
    assert_true(sent >= 1 && sent < NPEOPLE);
    for (int i = 0; i < NPEOPLE; i++) {
        if (fx->f.outcomes[i]) assert_string_equal(fx->f.last_outcome[i], "sent");
        else assert_string_equal(fx->f.record[i], ""); /* given back: the resumed run sends it */
    }
    uint64_t t0 = now_ms();
    while (now_ms() - t0 < 1500) uv_run(&fx->loop, UV_RUN_NOWAIT);
    assert_int_equal(outcomes(fx), sent);
    fx_free(fx);
}

/* A pause read before the first recipient: nothing is looked up at all,
 * and the job comes back as a fresh run (its total not yet counted). */
static void paused_before_the_start_reads_nothing(void **state)
{
    (void)state;
    struct fx *fx = fx_new("", "");
    fx->f.control = STORE_CONTROL_PAUSED;
    start(fx);
    assert_true(run_until(fx, acked, 5000));
    assert_true(fx->f.paused_parked);
    assert_string_equal(fx->f.parked_from, ENTRY);
    assert_int_equal(fx->f.calls[OP_LOOKUP], 0);
    assert_int_equal(outcomes(fx), 0);
    fx_free(fx);
}

/* A cancel: the run gives back what no provider had, then runs again at
 * once and records every recipient without an outcome suppressed/cancelled;
 * the ones sent stay sent; each has exactly one outcome, then the ack.
 * Each one's record and history entry say its own outcome, also where a
 * sent and a cancelled one were decided in the same second (queue_finish
 * reuses a run's texts only for the same decision). */
static void cancel_records_the_unsent_as_cancelled(void **state)
{
    (void)state;
    struct fx *fx = fx_new("", "delay_ms = 300\nconcurrency = 1\n");
    start(fx);
    assert_true(run_until(fx, some_outcome, 5000));
    fx->f.control = STORE_CONTROL_CANCELLED;
    assert_true(run_until(fx, acked, 5000));
    assert_false(fx->f.paused_parked);
    int sent = 0, cancelled = 0;
    for (int i = 0; i < NPEOPLE; i++) {
        assert_int_equal(fx->f.outcomes[i], 1);
        if (strcmp(fx->f.last_outcome[i], "sent") == 0) {
            sent++;
            assert_int_equal(fx->f.requests[i], 1);
            assert_int_equal(strncmp(fx->f.record[i], "s ", 2), 0);
            assert_non_null(strstr(fx->f.last_history[i], "|0s|"));
        } else {
            assert_string_equal(fx->f.last_outcome[i], "suppressed");
            assert_string_equal(fx->f.last_reason[i], "cancelled");
            assert_int_equal(fx->f.requests[i], -1); /* no request: the audit record has no "requests" */
            assert_int_equal(strncmp(fx->f.record[i], "x ", 2), 0);
            assert_non_null(strstr(fx->f.last_history[i], "|-xcx|")); /* decided before a channel */
            cancelled++;
        }
    }
    assert_true(sent >= 1 && cancelled >= 1);
    assert_string_equal(fx->f.state, "done");
    fx_free(fx);
}

/* A refused lookup decides nothing (no "unknown_recipient"): the job is
 * held, not acknowledged, and its next run sends everyone. */
static void refused_lookup_holds_the_job(void **state)
{
    (void)state;
    struct fx *fx = fx_new("", "");
    fx->f.fail_at[OP_LOOKUP] = 1;
    fx->f.fail_as[OP_LOOKUP] = STORE_JOB_FAILED;
    start(fx);
    uint64_t t0 = now_ms();
    while (now_ms() - t0 < 500) uv_run(&fx->loop, UV_RUN_NOWAIT);
    assert_int_equal(outcomes(fx), 0);
    assert_false(fx->f.acked);
    struct queue_counters qc;
    queue_counters(fx->q, &qc);
    assert_non_null(qc.held_error);
    assert_string_equal(qc.held_error, "noperm");
    assert_string_equal(qc.held_entry, ENTRY);
    assert_true(run_until(fx, acked, 15000)); /* tried again after the hold */
    each_sent_once(fx);
    queue_counters(fx->q, &qc);
    assert_null(qc.held_error);
    fx_free(fx);
}

/* A refused suppression check calls nobody suppressed: held likewise. */
static void refused_suppression_check_holds_the_job(void **state)
{
    (void)state;
    struct fx *fx = fx_new("", "");
    fx->f.fail_at[OP_SUPPRESSED] = 1;
    fx->f.fail_as[OP_SUPPRESSED] = STORE_JOB_FAILED;
    start(fx);
    assert_true(run_until(fx, acked, 15000));
    each_sent_once(fx);
    fx_free(fx);
}

/* A reservation refused by the fence: the run lost its entry and writes
 * nothing more, and does not acknowledge. */
static void lost_entry_writes_nothing(void **state)
{
    (void)state;
    struct fx *fx = fx_new("", "");
    fx->f.fail_at[OP_RESERVE] = 1;
    fx->f.fail_as[OP_RESERVE] = STORE_JOB_LOST;
    start(fx);
    uint64_t t0 = now_ms();
    while (now_ms() - t0 < 500) uv_run(&fx->loop, UV_RUN_NOWAIT);
    assert_int_equal(outcomes(fx), 0);
    assert_false(fx->f.acked);
    assert_int_equal(fx->f.calls[OP_HANDED], 0);
    fx_free(fx);
}

/* The heartbeat says another daemon owns the entry: the run stops without
 * writing (the messages in flight end without an outcome of this run). */
static void heartbeat_lost_stops_the_run(void **state)
{
    (void)state;
    struct fx *fx = fx_new("claim_idle = 300ms\n", "delay_ms = 200\nconcurrency = 1\n");
    fx->f.fail_at[OP_HEARTBEAT] = 1;
    fx->f.fail_as[OP_HEARTBEAT] = STORE_JOB_LOST;
    start(fx);
    uint64_t t0 = now_ms();
    while (now_ms() - t0 < 1500) uv_run(&fx->loop, UV_RUN_NOWAIT);
    assert_true(outcomes(fx) < NPEOPLE);
    assert_false(fx->f.acked);
    int written = outcomes(fx);
    t0 = now_ms();
    while (now_ms() - t0 < 500) uv_run(&fx->loop, UV_RUN_NOWAIT);
    assert_int_equal(outcomes(fx), written); /* nothing more */
    fx_free(fx);
}

/* A finishing write refused: whether it landed is unknown, so the job is
 * not acknowledged by this run; the next run reads the records. */
static void refused_outcome_write_is_not_acked(void **state)
{
    (void)state;
    struct fx *fx = fx_new("", "");
    fx->f.fail_at[OP_FINISH] = 1;
    fx->f.fail_as[OP_FINISH] = STORE_JOB_FAILED;
    start(fx);
    uint64_t t0 = now_ms();
    while (now_ms() - t0 < 1000) uv_run(&fx->loop, UV_RUN_NOWAIT);
    assert_false(fx->f.acked);
    assert_true(run_until(fx, acked, 15000));
    /* Those whose outcome was refused had records "pending": the next run
     * calls them unknown (handed, fate unknown), never sends them again;
     * everyone has exactly one outcome written. */
    int unknown = 0;
    for (int i = 0; i < NPEOPLE; i++) {
        assert_int_equal(fx->f.outcomes[i], 1);
        unknown += strcmp(fx->f.last_outcome[i], "unknown") == 0;
    }
    assert_true(unknown >= 1);
    fx_free(fx);
}

/* A stop with messages still waiting for the provider: those already sent
 * have their outcomes, the rest are given back, and the job is not
 * acknowledged. */
static void stop_never_acks_unfinished_work(void **state)
{
    (void)state;
    struct fx *fx = fx_new("", "delay_ms = 100\nconcurrency = 1\n");
    start(fx);
    assert_true(run_until(fx, some_outcome, 5000));
    fx->drained = false;
    queue_stop(fx->q, on_drained, fx);
    for (int i = 0; i < 100000 && !fx->drained; i++) uv_run(&fx->loop, UV_RUN_ONCE);
    assert_true(fx->drained);
    assert_false(fx->f.acked);
    int sent = 0;
    for (int i = 0; i < NPEOPLE; i++) {
        if (fx->f.outcomes[i]) {
            sent++;
            assert_int_equal(strncmp(fx->f.record[i], "s ", 2), 0);
        } else {
            assert_string_equal(fx->f.record[i], ""); /* given back: the next run sends it */
        }
    }
    assert_true(sent >= 1 && sent < NPEOPLE);
    fx_free(fx);
}

/* ---- jobs side by side ------------------------------------------------------ */

#define JOB_A "{\"id\":\"c1\",\"topic\":\"news\",\"channels\":[\"email\"],\"recipients\":[\"p0\",\"p1\",\"p2\"]," \
              "\"content\":{\"email\":{\"subject\":\"Hi\",\"text\":\"Hello there\"}}}"
#define JOB_B "{\"id\":\"c2\",\"topic\":\"news\",\"channels\":[\"email\"],\"recipients\":[\"p3\",\"p4\",\"p5\"]," \
              "\"priority\":\"high\",\"content\":{\"email\":{\"subject\":\"Hi\",\"text\":\"Hello there\"}}}"

static struct fx *fx_two(const char *daemon_extra, const char *provider_extra)
{
    struct fx *fx = fx_new(daemon_extra, provider_extra);
    snprintf(fx->f.job, sizeof(fx->f.job), "%s", JOB_A);
    snprintf(fx->f.job2, sizeof(fx->f.job2), "%s", JOB_B);
    return fx;
}

static int outcomes_of(const struct fx *fx, int from, int to)
{
    int n = 0;
    for (int i = from; i < to; i++) n += fx->f.outcomes[i];
    return n;
}

/* Both acknowledged, and the answers seen by the queue. */
static bool both_acked(const struct fx *fx)
{
    struct queue_counters qc;
    queue_counters(fx->q, &qc);
    return fx->f.acked && fx->f.acked2 && qc.jobs_done == 2;
}

/* Job A as the 60 people p10..p69 (normal priority), job B as p<from>..p<to-1> (high). */
static void big_and_small(struct fx *fx, int from, int to)
{
    struct strbuf sb;
    strbuf_init(&sb);
    strbuf_adds(&sb, "{\"id\":\"c1\",\"topic\":\"news\",\"channels\":[\"email\"],\"recipients\":[");
    for (int i = 10; i < NSLOTS; i++) strbuf_addf(&sb, "%s\"p%d\"", i > 10 ? "," : "", i);
    strbuf_adds(&sb, "],\"content\":{\"email\":{\"subject\":\"Hi\",\"text\":\"Hello there\"}}}");
    snprintf(fx->f.job, sizeof(fx->f.job), "%s", sb.buf);
    strbuf_reset(&sb);
    strbuf_adds(&sb, "{\"id\":\"c2\",\"topic\":\"news\",\"channels\":[\"email\"],\"priority\":\"high\",\"recipients\":[");
    for (int i = from; i < to; i++) strbuf_addf(&sb, "%s\"p%d\"", i > from ? "," : "", i);
    strbuf_adds(&sb, "],\"content\":{\"email\":{\"subject\":\"Hi\",\"text\":\"Hello there\"}}}");
    snprintf(fx->f.job2, sizeof(fx->f.job2), "%s", sb.buf);
    strbuf_free(&sb);
}

/* Each of p0..p2 sent once by job A's entry, each of p3..p5 by job B's. */
static void each_sent_once_by_its_job(const struct fx *fx)
{
    for (int i = 0; i < NPEOPLE; i++) {
        assert_int_equal(fx->f.outcomes[i], 1);
        assert_string_equal(fx->f.last_outcome[i], "sent");
        assert_int_equal(fx->f.requests[i], 1);
        assert_int_equal(strncmp(fx->f.record[i], i < 3 ? "s " ENTRY " run1." : "s " ENTRY2 " run1.", 10), 0);
    }
}

/* Runs the loop until both jobs are acknowledged; returns the most jobs
 * seen running at once. */
static uint64_t run_two(struct fx *fx, uint64_t max_ms)
{
    uint64_t most = 0, t0 = now_ms();
    while (!both_acked(fx) && now_ms() - t0 < max_ms) {
        uv_run(&fx->loop, UV_RUN_ONCE);
        struct queue_counters qc;
        queue_counters(fx->q, &qc);
        if (qc.jobs_running > most) most = qc.jobs_running;
    }
    return most;
}

/* Two jobs in the stream: the second is read while the first runs, both
 * run at once, every recipient gets one outcome from its own job, and
 * each job is acknowledged. */
static void two_jobs_run_side_by_side(void **state)
{
    (void)state;
    struct fx *fx = fx_two("", "delay_ms = 100\nconcurrency = 1\n");
    start(fx);
    assert_int_equal(run_two(fx, 10000), 2);
    assert_true(both_acked(fx));
    each_sent_once_by_its_job(fx);
    struct queue_counters qc;
    queue_counters(fx->q, &qc);
    assert_int_equal(qc.jobs_done, 2);
    assert_int_equal(qc.jobs_running, 0);
    fx_free(fx);
}

/* max_jobs = 1: the second job is read only once the first is done, and
 * none of its recipients is decided before. */
static void max_jobs_is_respected(void **state)
{
    (void)state;
    struct fx *fx = fx_two("max_jobs = 1\n", "delay_ms = 50\nconcurrency = 1\n");
    start(fx);
    uint64_t t0 = now_ms();
    while (!both_acked(fx) && now_ms() - t0 < 10000) {
        uv_run(&fx->loop, UV_RUN_ONCE);
        struct queue_counters qc;
        queue_counters(fx->q, &qc);
        assert_true(qc.jobs_running <= 1);
        if (!fx->f.acked) assert_int_equal(outcomes_of(fx, 3, 6), 0);
    }
    assert_true(both_acked(fx));
    assert_string_equal(fx->f.ack_order[0], ENTRY);
    assert_string_equal(fx->f.ack_order[1], ENTRY2);
    each_sent_once_by_its_job(fx);
    fx_free(fx);
}

/* A small high-priority job read behind a large one (60 messages, one at a
 * time, 20 ms each) is done first, while the large one goes on: its
 * messages take their share of the provider's slot beside the large one's
 * rather than waiting behind all of them. Every recipient once. */
static void high_priority_job_behind_a_large_one_is_done_first(void **state)
{
    (void)state;
    struct fx *fx = fx_two("", "delay_ms = 20\nconcurrency = 1\n");
    big_and_small(fx, 3, 6);
    start(fx);
    uint64_t t0 = now_ms();
    while (!fx->f.acked2 && now_ms() - t0 < 20000) uv_run(&fx->loop, UV_RUN_ONCE);
    assert_true(fx->f.acked2);
    assert_false(fx->f.acked);                 /* the large one goes on */
    assert_true(outcomes_of(fx, 10, NSLOTS) < 60);
    run_two(fx, 20000);
    assert_true(both_acked(fx));
    assert_string_equal(fx->f.ack_order[0], ENTRY2);
    for (int i = 3; i < NSLOTS; i++) {
        if (i >= 6 && i < 10) continue;
        assert_int_equal(fx->f.outcomes[i], 1);
        assert_string_equal(fx->f.last_outcome[i], "sent");
        assert_int_equal(strncmp(fx->f.record[i], i < 10 ? "s " ENTRY2 : "s " ENTRY, 5), 0);
    }
    fx_free(fx);
}

/* A stop with two jobs running: neither is acknowledged, what each sent
 * has its outcome and the rest is given back (no record left). */
static void stop_with_two_jobs_leaves_both_pending(void **state)
{
    (void)state;
    struct fx *fx = fx_two("", "delay_ms = 50\nconcurrency = 1\n");
    big_and_small(fx, 0, 10);
    start(fx);
    uint64_t t0 = now_ms();
    while ((outcomes_of(fx, 0, 10) == 0 || outcomes_of(fx, 10, NSLOTS) == 0) && now_ms() - t0 < 5000)
        uv_run(&fx->loop, UV_RUN_ONCE);
    assert_true(outcomes_of(fx, 0, 10) >= 1 && outcomes_of(fx, 10, NSLOTS) >= 1);
    fx->drained = false;
    queue_stop(fx->q, on_drained, fx);
    for (int i = 0; i < 100000 && !fx->drained; i++) uv_run(&fx->loop, UV_RUN_ONCE);
    assert_true(fx->drained);
    assert_false(fx->f.acked);
    assert_false(fx->f.acked2);
    for (int i = 0; i < NSLOTS; i++) {
        if (fx->f.outcomes[i]) {
            assert_int_equal(fx->f.outcomes[i], 1);
            assert_int_equal(strncmp(fx->f.record[i], "s ", 2), 0);
        } else {
            assert_string_equal(fx->f.record[i], ""); /* given back: the next run sends it */
        }
    }
    assert_true(outcomes_of(fx, 0, 10) < 10 && outcomes_of(fx, 10, NSLOTS) < 60);
    fx_free(fx);
}

/* An operator pauses one of two running jobs: it is parked, what no
 * provider had is given back (its own messages recalled from dispatch at
 * once, and any shown to the gate later refused there; the other job's
 * stay where they are and go on), and the other job finishes, each of its
 * recipients sent once. */
static void pause_one_of_two_jobs(void **state)
{
    (void)state;
    struct fx *fx = fx_two("", "delay_ms = 100\nconcurrency = 1\n");
    big_and_small(fx, 0, 10);
    start(fx);
    uint64_t t0 = now_ms();
    while ((outcomes_of(fx, 0, 10) == 0 || outcomes_of(fx, 10, NSLOTS) == 0) && now_ms() - t0 < 5000)
        uv_run(&fx->loop, UV_RUN_ONCE);
    /* Seen within a second (10 messages at most, shared with the other
     * job); dispatch's queue holds some 30 more of this job's. */
    int at_pause = outcomes_of(fx, 10, NSLOTS);
    snprintf(fx->f.control_only, sizeof(fx->f.control_only), "c1");
    fx->f.control = STORE_CONTROL_PAUSED;
    struct queue_counters qc = {.jobs_running = 1};
    t0 = now_ms();
    while (!(fx->f.acked && fx->f.acked2 && qc.jobs_running == 0 && qc.jobs_done == 1) && now_ms() - t0 < 15000) {
        uv_run(&fx->loop, UV_RUN_ONCE);
        queue_counters(fx->q, &qc);
    }
    assert_true(fx->f.acked && fx->f.acked2);
    assert_int_equal(qc.jobs_done, 1); /* the other one; the paused one is parked */
    assert_true(fx->f.paused_parked);
    assert_string_equal(fx->f.parked_from, ENTRY "|p");
    int big_sent = outcomes_of(fx, 10, NSLOTS);
    assert_true(big_sent >= 1 && big_sent <= at_pause + 13);
    for (int i = 0; i < NSLOTS; i++) {
        if (i < 10) {
            assert_int_equal(fx->f.outcomes[i], 1);
            assert_string_equal(fx->f.last_outcome[i], "sent");
        } else if (fx->f.outcomes[i]) {
            assert_int_equal(fx->f.outcomes[i], 1);
            assert_int_equal(strncmp(fx->f.record[i], "s ", 2), 0);
        } else {
            assert_string_equal(fx->f.record[i], ""); /* given back: the resumed run sends it */
        }
    }
    t0 = now_ms();
    while (now_ms() - t0 < 500) uv_run(&fx->loop, UV_RUN_NOWAIT);
    assert_int_equal(outcomes_of(fx, 10, NSLOTS), big_sent); /* nothing more */
    fx_free(fx);
}

/* The weighted round robin: with every run having recipients ready, the
 * free slots go high 4 : normal 2 : low 1, interleaved, never all to one;
 * a run with fewer ready gets what it has and the rest goes to the others;
 * an ended run gets none. */
static void ready_share_follows_priority(void **state)
{
    (void)state;
    struct queue q;
    memset(&q, 0, sizeof(q));
    struct jobrun runs[3];
    memset(runs, 0, sizeof(runs));
    struct jobrun *v[3] = {&runs[0], &runs[1], &runs[2]};
    const enum job_priority prio[3] = {JOB_PRIORITY_HIGH, JOB_PRIORITY_NORMAL, JOB_PRIORITY_LOW};
    for (int i = 0; i < 3; i++) {
        runs[i].q = &q;
        runs[i].job.priority = prio[i];
        runs[i].ready[0].n = 1000;
    }
    size_t total[3] = {0, 0, 0}, take[3];
    for (int round = 0; round < 10; round++) {
        queue_ready_share(v, 3, 0, 7, take);
        assert_int_equal(take[0] + take[1] + take[2], 7);
        for (int i = 0; i < 3; i++) total[i] += take[i];
    }
    assert_int_equal(total[0], 40);
    assert_int_equal(total[1], 20);
    assert_int_equal(total[2], 10);
    /* Small slices interleave: 3 slots never all go to the high one. */
    queue_ready_share(v, 3, 0, 3, take);
    assert_true(take[0] <= 2);
    /* The low one has only 1 ready: it gets it, the rest is shared. */
    runs[2].ready[0].n = 1;
    memset(total, 0, sizeof(total));
    for (int round = 0; round < 3; round++) {
        queue_ready_share(v, 3, 0, 30, take);
        for (int i = 0; i < 3; i++) total[i] += take[i];
        runs[2].ready[0].n -= take[2];
    }
    assert_int_equal(total[2], 1);
    assert_int_equal(total[0] + total[1], 89);
    assert_true(total[0] >= 2 * total[1] - 2 && total[0] <= 2 * total[1] + 2);
    /* An ended run gets nothing. */
    runs[0].end = RUN_LOST;
    queue_ready_share(v, 3, 0, 10, take);
    assert_int_equal(take[0], 0);
    assert_int_equal(take[1], 10);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(every_recipient_sent_once_then_acked),
        cmocka_unit_test(pause_parks_the_job_and_sends_nothing_more),
        cmocka_unit_test(paused_before_the_start_reads_nothing),
        cmocka_unit_test(cancel_records_the_unsent_as_cancelled),
        cmocka_unit_test(refused_lookup_holds_the_job),
        cmocka_unit_test(refused_suppression_check_holds_the_job),
        cmocka_unit_test(lost_entry_writes_nothing),
        cmocka_unit_test(heartbeat_lost_stops_the_run),
        cmocka_unit_test(refused_outcome_write_is_not_acked),
        cmocka_unit_test(stop_never_acks_unfinished_work),
        cmocka_unit_test(records_and_history_follow_each_decision),
        cmocka_unit_test(two_jobs_run_side_by_side),
        cmocka_unit_test(max_jobs_is_respected),
        cmocka_unit_test(high_priority_job_behind_a_large_one_is_done_first),
        cmocka_unit_test(stop_with_two_jobs_leaves_both_pending),
        cmocka_unit_test(ready_share_follows_priority),
        cmocka_unit_test(pause_one_of_two_jobs),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
