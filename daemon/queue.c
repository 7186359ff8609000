/*
 * queue.c - jobs from the stream to terminal outcomes.
 *
 * One job is processed at a time; its recipients flow in batches:
 *   source (inline ids, SSCAN/ZSCAN/LRANGE) -> lookup (HMGET profile +
 *   consent, HGET once-only record; pipelined) -> SMISMEMBER suppression ->
 *   policy_decide -> reserve (Lua) -> render -> dispatch -> finish (record,
 *   audit, progress).
 * Invariants: a recipient gets exactly one terminal outcome per job entry
 * (a restart skips those already recorded and marks a reservation left by a
 * dead run as `unknown`, never resending it); the job is acknowledged only
 * after every write about it was answered; every Redis command is retried
 * until it gets a reply, so a lost connection delays work but loses none.
 * Logs carry ids and counts only.
 */
#include "queue.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "job.h"
#include "links.h"
#include "log.h"
#include "policy.h"
#include "profile.h"
#include "store.h"
#include "template.h"
#include "tzdb.h"

#define QUEUE_BLOCK_MS "2000"
#define LINK_TTL_S (60 * 86400)
#define QUEUE_DEFER_GROUP_MAX 5000 /* ids per parked job of deferred recipients */

typedef void (*qcmd_cb)(struct queue *q, redisReply *r, void *arg);

/* A Redis command that is retried until it gets a reply. */
struct qcmd {
    struct queue *q;
    int argc;
    char **argv;
    size_t *lens;
    qcmd_cb cb;
    void *arg;
    struct qcmd *next;
};

enum src_kind { SRC_INLINE, SRC_SET, SRC_ZSET, SRC_LIST };

struct jobrun;

struct rcpt {
    struct jobrun *jr;
    char *id;
    bool valid_id;
    int found; /* 1 profile, 0 none, <0 unreadable */
    struct profile p;
    bool has_rec;
    struct store_record rec;
    bool suppressed[HERALD_CH_COUNT];
    int member_index[HERALD_CH_COUNT]; /* position in the SMISMEMBER call, -1 */
    struct policy_decision dec;
    struct strbuf record; /* our reservation string */
    struct strbuf member; /* our entry in the person's sends history */
    bool reserved;        /* the record and history entry are ours to give back */
    bool was_deferred;    /* deferred before: its deferral ends with this outcome */
    char cap[HERALD_ID_MAX + 1]; /* the cap that blocked, for reason cap:<name> */
    struct dispatch_msg msg;
    struct strbuf unsub, prefs;
};

struct batch {
    struct jobrun *jr;
    struct rcpt **r;
    size_t n;
    size_t waiting; /* replies still expected for the current step */
};

struct jobrun {
    struct queue *q;
    char entry[64];
    char *text;
    struct job job;
    enum src_kind src;
    char *src_key;
    size_t inline_pos;
    char cursor[32];
    long list_pos;
    bool src_done;
    bool loading;
    bool started;  /* total/state written */
    size_t outstanding;
    size_t writes;
    unsigned missing_fields;
    struct strbuf k_campaign;
    /* The entry the once-only records name: this one, or, for a job that was
     * held (not_before) or deferred (quiet hours), the entry it came from. */
    char rec_entry[64];
    bool resumed;  /* re-run of deferred recipients: its total is counted already */
    /* Recipients deferred by this run, grouped by when their window ends;
     * parked in Redis as one scheduled job per group before the ack. */
    struct deferral *deferrals;
    size_t ndeferrals;
    bool deferrals_parked;
};

struct deferral {
    int64_t until;
    json_t *ids;
};

struct queue {
    uv_loop_t *loop;
    const struct config *cfg;
    struct rconn *jobs, *data;
    struct dispatch *d;
    char *consumer, *run_id;
    struct strbuf k_jobs, k_dead, k_audit, k_suppress, k_scheduled;
    char audit_maxlen[24];
    struct jobrun *jr;
    bool reading;       /* a read is outstanding on the jobs connection */
    bool own_pending_done;
    uint64_t last_claim_ms;
    bool group_ready;
    bool stopping;
    void (*drained)(void *);
    void *drained_arg;
    struct qcmd *backlog, *backlog_tail;
    size_t nbacklog;
    size_t inflight_cmds;
    uv_timer_t heartbeat;
    uv_timer_t retry; /* after a refused read: wait, never spin */
    uv_timer_t release_timer; /* moves due scheduled jobs back to the stream */
    bool releasing;
    struct queue_counters counters;
    struct log_complaint read_complaint;
    char **cap_topics;  /* per cap: ",a,b," or "" (every topic) */
    struct tzdb *tzdb;
    const struct tz *default_tz;
    struct quiet_window quiet[HERALD_CH_COUNT];
    const struct quiet_window *quiet_ptr[HERALD_CH_COUNT]; /* NULL: no ops window */
    int64_t cap_keep_s; /* history the caps need: their longest window */
    int handles_open;
};

static void read_next(struct queue *q);
static void on_retry(uv_timer_t *t);
static void maybe_more(struct jobrun *jr);
static void check_drained(struct queue *q);

/* ---- commands -------------------------------------------------------- */

static void qcmd_free(struct qcmd *c)
{
    for (int i = 0; i < c->argc; i++) free(c->argv[i]);
    free(c->argv);
    free(c->lens);
    free(c);
}

static void qcmd_dispatch(struct qcmd *c);

static void backlog_push(struct queue *q, struct qcmd *c)
{
    c->next = NULL;
    if (q->backlog_tail) q->backlog_tail->next = c;
    else q->backlog = c;
    q->backlog_tail = c;
    q->nbacklog++;
}

static void on_qcmd_reply(struct rconn *rc, redisReply *r, void *priv)
{
    struct qcmd *c = priv;
    struct queue *q = c->q;
    (void)rc;
    q->inflight_cmds--;
    if (!r) { /* connection lost: try again once it is back */
        backlog_push(q, c);
        return;
    }
    c->cb(q, r, c->arg);
    qcmd_free(c);
    check_drained(q);
}

static void qcmd_dispatch(struct qcmd *c)
{
    struct queue *q = c->q;
    if (q->backlog || !rconn_ready(q->data) ||
        rconn_commandargv(q->data, on_qcmd_reply, c, c->argc, (const char **)c->argv, c->lens) < 0) {
        backlog_push(q, c);
        return;
    }
    q->inflight_cmds++;
}

static void backlog_flush(struct queue *q)
{
    while (q->backlog && rconn_ready(q->data)) {
        struct qcmd *c = q->backlog;
        if (rconn_commandargv(q->data, on_qcmd_reply, c, c->argc, (const char **)c->argv, c->lens) < 0)
            return;
        q->backlog = c->next;
        if (!q->backlog) q->backlog_tail = NULL;
        q->nbacklog--;
        q->inflight_cmds++;
    }
}

/* qsend(q, cb, arg, "HSET", key, field, value, NULL): strings are copied. */
static void qsendv(struct queue *q, qcmd_cb cb, void *arg, int argc, const char *const *argv)
{
    struct qcmd *c = xcalloc(1, sizeof(*c));
    c->q = q;
    c->cb = cb;
    c->arg = arg;
    c->argc = argc;
    c->argv = xmalloc((size_t)argc * sizeof(char *));
    c->lens = xmalloc((size_t)argc * sizeof(size_t));
    for (int i = 0; i < argc; i++) {
        c->lens[i] = strlen(argv[i]);
        c->argv[i] = xstrndup(argv[i], c->lens[i]);
    }
    qcmd_dispatch(c);
}

static void qsend(struct queue *q, qcmd_cb cb, void *arg, const char *const *argv)
{
    int argc = 0;
    while (argv[argc]) argc++;
    qsendv(q, cb, arg, argc, argv);
}

#define QSEND(q, cb, arg, ...) qsend(q, cb, arg, (const char *const[]){__VA_ARGS__, NULL})

static void ignore_reply(struct queue *q, redisReply *r, void *arg)
{
    (void)q;
    (void)arg;
    if (r->type == REDIS_REPLY_ERROR) log_warn("queue", "redis refused a write: %s", r->str);
}

/* ---- outcomes -------------------------------------------------------- */

static void rcpt_free(struct rcpt *r)
{
    free(r->id);
    if (r->found > 0) profile_free(&r->p);
    strbuf_free(&r->record);
    strbuf_free(&r->member);
    strbuf_free(&r->unsub);
    strbuf_free(&r->prefs);
    free(r->msg.subject);
    free(r->msg.text);
    free(r->msg.html);
    free(r);
}

static void on_write_done(struct queue *q, redisReply *r, void *arg)
{
    struct jobrun *jr = arg;
    ignore_reply(q, r, NULL);
    jr->writes--;
    maybe_more(jr);
}

/* A recipient leaves the job without a new outcome (already recorded, or
 * given back because the daemon is stopping). */
static void rcpt_drop(struct rcpt *r)
{
    struct jobrun *jr = r->jr;
    rcpt_free(r);
    jr->outstanding--;
    maybe_more(jr);
}

static enum store_rec_state rec_state_for(enum herald_outcome o)
{
    switch (o) {
    case HERALD_OUTCOME_SENT: return REC_SENT;
    case HERALD_OUTCOME_FAILED: return REC_FAILED;
    case HERALD_OUTCOME_UNKNOWN: return REC_UNKNOWN;
    case HERALD_OUTCOME_DEFERRED: return REC_DEFERRED;
    default: return REC_SUPPRESSED;
    }
}

static void finish(struct rcpt *r, enum herald_outcome outcome, enum herald_reason reason, int channel,
                   const char *provider, const char *provider_id)
{
    struct jobrun *jr = r->jr;
    struct queue *q = jr->q;
    int64_t now = time(NULL);
    char at[32], reason_s[HERALD_ID_MAX + 8];
    herald_time_format(now, at, sizeof(at));
    if (reason == HERALD_REASON_CAP)
        snprintf(reason_s, sizeof(reason_s), "cap:%s", r->cap);
    else
        snprintf(reason_s, sizeof(reason_s), "%s", herald_reason_name(reason));
    struct strbuf sb;
    strbuf_init(&sb);

    /* A permanent failure gives the person's budget back: it was no message. */
    if (r->reserved && outcome == HERALD_OUTCOME_FAILED) {
        struct strbuf key;
        strbuf_init(&key);
        store_key_sends(&key, q->cfg->prefix, r->id);
        jr->writes++;
        QSEND(q, on_write_done, jr, "ZREM", key.buf, r->member.buf);
        strbuf_free(&key);
    }

    /* The once-only record. Unknown ids and expired campaigns get none, so
     * that bogus ids never create keys. */
    if (r->valid_id && reason != HERALD_REASON_UNKNOWN_RECIPIENT && reason != HERALD_REASON_EXPIRED) {
        struct strbuf key, rec;
        strbuf_init(&key);
        strbuf_init(&rec);
        store_key_campaigns(&key, q->cfg->prefix, r->id);
        store_record_format(&rec, rec_state_for(outcome), jr->rec_entry, q->run_id, now);
        jr->writes++;
        QSEND(q, on_write_done, jr, "HSET", key.buf, jr->job.id, rec.buf);
        strbuf_free(&key);
        strbuf_free(&rec);
    }
    jr->writes++;
    QSEND(q, on_write_done, jr, "XADD", q->k_audit.buf, "MAXLEN", "~", q->audit_maxlen, "*",
          "campaign", jr->job.id, "recipient", r->id, "channel", herald_channel_name(channel),
          "outcome", herald_outcome_name(outcome), "reason", reason_s,
          "provider", provider ? provider : "", "provider_id", provider_id ? provider_id : "",
          "at", at);
    strbuf_adds(&sb, herald_outcome_name(outcome));
    if (outcome != HERALD_OUTCOME_SENT && outcome != HERALD_OUTCOME_UNKNOWN)
        strbuf_addf(&sb, ":%s", reason_s);
    jr->writes++;
    QSEND(q, on_write_done, jr, "HINCRBY", jr->k_campaign.buf, sb.buf, "1");
    if (r->was_deferred) { /* it leaves the deferred count now */
        jr->writes++;
        QSEND(q, on_write_done, jr, "HINCRBY", jr->k_campaign.buf, "deferred:quiet_hours", "-1");
    }
    strbuf_free(&sb);
    q->counters.outcomes[outcome]++;
    log_debug("queue", "outcome campaign=%s recipient=%s channel=%s outcome=%s reason=%s", jr->job.id,
              r->id, herald_channel_name(channel), herald_outcome_name(outcome), reason_s);
    rcpt_drop(r);
}

/* ---- sending --------------------------------------------------------- */

static void on_released(struct queue *q, redisReply *r, void *arg)
{
    ignore_reply(q, r, NULL);
    rcpt_drop(arg);
}

static void on_sent(struct dispatch_msg *m, void *arg)
{
    struct rcpt *r = arg;
    struct queue *q = r->jr->q;
    if (m->interrupted) {
        /* No provider took it: give the reservation back so that the next
         * run sends it instead of calling it unknown. */
        struct strbuf kc, ks;
        strbuf_init(&kc);
        strbuf_init(&ks);
        store_key_campaigns(&kc, q->cfg->prefix, r->id);
        store_key_sends(&ks, q->cfg->prefix, r->id);
        QSEND(q, on_released, r, "EVAL", store_lua_release, "2", kc.buf, ks.buf, r->jr->job.id, r->record.buf,
              r->member.buf);
        strbuf_free(&kc);
        strbuf_free(&ks);
        return;
    }
    if (m->outcome == HERALD_OUTCOME_SENT)
        log_debug("queue", "sent campaign=%s recipient=%s provider=%s provider_id=%s", r->jr->job.id, r->id,
                  m->provider, m->provider_id);
    finish(r, m->outcome, m->reason, m->channel, m->provider, m->provider_id);
}

static char *render(struct jobrun *jr, const struct template *t, const struct rcpt *r,
                    enum template_escape esc)
{
    if (!t) return NULL;
    struct template_vars vars = {
        .unsubscribe_url = r->unsub.len ? r->unsub.buf : NULL,
        .preferences_url = r->prefs.len ? r->prefs.buf : NULL,
    };
    struct strbuf sb;
    strbuf_init(&sb);
    jr->missing_fields += template_render(t, r->p.attributes, &vars, esc, &sb);
    return strbuf_detach(&sb, NULL);
}

static void send_message(struct rcpt *r)
{
    struct jobrun *jr = r->jr;
    struct queue *q = jr->q;
    int ch = r->dec.channel;
    const struct job_content *c = &jr->job.content[ch];
    links_build(&r->unsub, &r->prefs, q->cfg->public_url, q->cfg->link_secret, LINK_TTL_S, time(NULL),
                r->id, jr->job.id, jr->job.topic, herald_channel_name(ch));
    memset(&r->msg, 0, sizeof(r->msg));
    r->msg.channel = ch;
    r->msg.campaign = jr->job.id;
    r->msg.recipient = r->id;
    r->msg.topic = jr->job.topic;
    r->msg.to = profile_address(&r->p, ch);
    r->msg.subject = render(jr, c->t_subject, r, TEMPLATE_RAW);
    r->msg.text = render(jr, c->t_text, r, TEMPLATE_RAW);
    r->msg.html = render(jr, c->t_html, r, TEMPLATE_HTML);
    r->msg.unsubscribe_url = r->unsub.len ? r->unsub.buf : NULL;
    r->msg.preferences_url = r->prefs.len ? r->prefs.buf : NULL;
    dispatch_submit(q->d, &r->msg, on_sent, r);
}

/* Someone else's record met at reservation time (or at lookup). */
static bool is_own_leftover(const struct jobrun *jr, const struct store_record *rec)
{
    return strcmp(rec->entry, jr->rec_entry) == 0;
}

static void on_reserved(struct queue *q, redisReply *reply, void *arg)
{
    struct rcpt *r = arg;
    const redisReply *verdict = reply->type == REDIS_REPLY_ARRAY && reply->elements >= 1 &&
                                        reply->element[0]->type == REDIS_REPLY_STRING
                                    ? reply->element[0]
                                    : NULL;
    const char *v = verdict ? verdict->str : "";
    const char *detail = verdict && reply->elements >= 2 && reply->element[1]->type == REDIS_REPLY_STRING
                             ? reply->element[1]->str
                             : NULL;
    /* "duplicate" with our own record: our write, answered after a reconnect. */
    if (strcmp(v, "ok") == 0 || (strcmp(v, "duplicate") == 0 && detail && strcmp(detail, r->record.buf) == 0)) {
        r->reserved = true;
        if (q->stopping) {
            on_sent(&(struct dispatch_msg){.interrupted = true}, r);
            return;
        }
        send_message(r);
        return;
    }
    if (strcmp(v, "duplicate") == 0) {
        struct store_record rec;
        if (detail && store_record_parse(detail, &rec) == 0 && is_own_leftover(r->jr, &rec)) {
            rcpt_drop(r); /* this entry already handled the person (duplicate id in the source) */
            return;
        }
        finish(r, HERALD_OUTCOME_SUPPRESSED, HERALD_REASON_DUPLICATE, r->dec.channel, NULL, NULL);
        return;
    }
    if (strcmp(v, "cap") == 0 && detail) {
        snprintf(r->cap, sizeof(r->cap), "%s", detail);
        finish(r, HERALD_OUTCOME_SUPPRESSED, HERALD_REASON_CAP, r->dec.channel, NULL, NULL);
        return;
    }
    if (strcmp(v, "user_frequency") == 0) {
        finish(r, HERALD_OUTCOME_SUPPRESSED, HERALD_REASON_USER_FREQUENCY, r->dec.channel, NULL, NULL);
        return;
    }
    log_warn("queue", "reservation refused by redis campaign=%s recipient=%s: %s", r->jr->job.id, r->id,
             reply->type == REDIS_REPLY_ERROR ? reply->str : "unexpected reply");
    finish(r, HERALD_OUTCOME_FAILED, HERALD_REASON_PROVIDER_ERROR, r->dec.channel, NULL, NULL);
}

/* The person's own limits ("frequency": {"email": "1/7d", "any": "3/7d"}),
 * validated at import; anything unreadable here is skipped, never guessed. */
static size_t user_limits(const struct profile *p, const char *chan[], int64_t lim[], int64_t win[], size_t max)
{
    size_t n = 0;
    const char *k;
    json_t *v;
    if (!p->frequency) return 0;
    json_object_foreach(p->frequency, k, v) {
        unsigned count;
        int64_t period;
        if (n == max || !json_is_string(v) || profile_frequency_parse(json_string_value(v), &count, &period) < 0)
            continue;
        chan[n] = k;
        lim[n] = count;
        win[n] = period;
        n++;
    }
    return n;
}

/* Sends the atomic check-and-reserve (store_lua_reserve) for r. */
static void reserve(struct rcpt *r, int64_t now)
{
    struct jobrun *jr = r->jr;
    struct queue *q = jr->q;
    const struct config *cfg = q->cfg;
    enum { MAXF = HERALD_CH_COUNT + 1 };
    const char *argv[12 + 5 * HERALD_CAPS_MAX + 1 + 3 * MAXF];
    char nums[4 + 3 * HERALD_CAPS_MAX + 3 * MAXF][24];
    int argc = 0, nn = 0;
#define NUM(x) (snprintf(nums[nn], sizeof(nums[nn]), "%lld", (long long)(x)), (const char *)nums[nn++])
    const char *chan = herald_channel_name(r->dec.channel);
    const char *fchan[MAXF];
    int64_t flim[MAXF], fwin[MAXF];
    size_t nf = user_limits(&r->p, fchan, flim, fwin, MAXF);
    int64_t keep = q->cap_keep_s;
    for (size_t i = 0; i < nf; i++)
        if (fwin[i] > keep) keep = fwin[i];

    struct strbuf kc, ks;
    strbuf_init(&kc);
    strbuf_init(&ks);
    store_key_campaigns(&kc, cfg->prefix, r->id);
    store_key_sends(&ks, cfg->prefix, r->id);
    store_record_format(&r->record, REC_PENDING, jr->rec_entry, q->run_id, now);
    strbuf_reset(&r->member);
    strbuf_addf(&r->member, "%s|%s|%s", chan, jr->job.topic, jr->job.id);

    argv[argc++] = "EVAL";
    argv[argc++] = store_lua_reserve;
    argv[argc++] = "2";
    argv[argc++] = kc.buf;
    argv[argc++] = ks.buf;
    argv[argc++] = jr->job.id;
    argv[argc++] = r->record.buf;
    argv[argc++] = NUM(now);
    argv[argc++] = chan;
    argv[argc++] = jr->job.topic;
    argv[argc++] = r->member.buf;
    argv[argc++] = NUM(keep);
    argv[argc++] = NUM(cfg->ncaps);
    for (size_t i = 0; i < cfg->ncaps; i++) {
        const struct config_cap *c = &cfg->caps[i];
        argv[argc++] = c->name;
        argv[argc++] = c->channel < 0 ? "any" : herald_channel_name(c->channel);
        argv[argc++] = NUM(c->limit);
        argv[argc++] = NUM(c->window_s);
        argv[argc++] = q->cap_topics[i];
    }
    argv[argc++] = NUM(nf);
    for (size_t i = 0; i < nf; i++) {
        argv[argc++] = fchan[i];
        argv[argc++] = NUM(flim[i]);
        argv[argc++] = NUM(fwin[i]);
    }
#undef NUM
    qsendv(q, on_reserved, r, argc, argv);
    strbuf_free(&kc);
    strbuf_free(&ks);
}

static void park_one(struct jobrun *jr, struct deferral *d);

/* Remembers a deferred recipient in the group of its window's end. */
static void defer(struct jobrun *jr, const char *id, int64_t until)
{
    struct deferral *d = NULL;
    for (size_t i = 0; i < jr->ndeferrals && !d; i++)
        if (jr->deferrals[i].until == until) d = &jr->deferrals[i];
    if (!d) {
        jr->deferrals = xrealloc(jr->deferrals, (jr->ndeferrals + 1) * sizeof(*jr->deferrals));
        d = &jr->deferrals[jr->ndeferrals++];
        d->until = until;
        d->ids = json_array();
    }
    json_array_append_new(d->ids, json_string(id));
    /* Memory stays flat however many are deferred: park big groups at once. */
    if (json_array_size(d->ids) >= QUEUE_DEFER_GROUP_MAX) park_one(jr, d);
}

static void decide_one(struct rcpt *r)
{
    struct jobrun *jr = r->jr;
    struct queue *q = jr->q;
    struct policy_input in = {
        .job = &jr->job,
        .person = r->found > 0 ? &r->p : NULL,
        .now = time(NULL),
        .consent_max_age = q->cfg->consent_max_age_ms / 1000,
        .tz = q->default_tz,
    };
    /* An unknown zone falls back to the default rather than to no quiet hours. */
    if (r->found > 0 && r->p.tz) {
        const struct tz *tz = tzdb_get(q->tzdb, r->p.tz);
        if (tz) in.tz = tz;
    }
    memcpy(in.quiet, q->quiet_ptr, sizeof(in.quiet));
    if (r->has_rec && is_own_leftover(jr, &r->rec) && r->rec.state == REC_DEFERRED) {
        /* Deferred by this campaign entry: its time has come, decide again. */
        r->was_deferred = true;
        r->has_rec = false;
    }
    if (r->has_rec && is_own_leftover(jr, &r->rec)) {
        if (r->rec.state != REC_PENDING || strcmp(r->rec.run, q->run_id) == 0) {
            rcpt_drop(r); /* already has its outcome from this job entry */
            return;
        }
        /* Reserved by a run that died before recording the result: the
         * message may or may not have reached the provider. Never resend. */
        finish(r, HERALD_OUTCOME_UNKNOWN, HERALD_REASON_INTERRUPTED, -1, NULL, NULL);
        return;
    }
    if (r->has_rec)
        in.already_reached = r->rec.state == REC_PENDING || r->rec.state == REC_SENT ||
                             r->rec.state == REC_UNKNOWN;
    memcpy(in.suppressed, r->suppressed, sizeof(in.suppressed));
    policy_decide(&in, &r->dec);
    if (r->dec.outcome == HERALD_OUTCOME_DEFERRED) defer(jr, r->id, r->dec.until);
    if (r->dec.outcome != HERALD_OUTCOME_SENT) {
        finish(r, r->dec.outcome, r->dec.reason, r->dec.channel, NULL, NULL);
        return;
    }
    if (q->stopping) {
        rcpt_drop(r); /* not reserved yet: the next run decides it */
        return;
    }
    reserve(r, in.now);
}

/* ---- batches --------------------------------------------------------- */

static void batch_decide(struct batch *b)
{
    struct jobrun *jr = b->jr;
    /* decide_one may free recipients; the batch is done with them after. */
    for (size_t i = 0; i < b->n; i++) decide_one(b->r[i]);
    free(b->r);
    free(b);
    jr->loading = false;
    maybe_more(jr);
}

static void on_suppress_reply(struct queue *q, redisReply *reply, void *arg)
{
    struct batch *b = arg;
    (void)q;
    if (reply->type == REDIS_REPLY_ARRAY) {
        for (size_t i = 0; i < b->n; i++) {
            struct rcpt *r = b->r[i];
            for (int ch = 0; ch < HERALD_CH_COUNT; ch++) {
                int idx = r->member_index[ch];
                if (idx >= 0 && (size_t)idx < reply->elements)
                    r->suppressed[ch] = reply->element[idx]->integer == 1;
            }
        }
    } else {
        /* Without the list we cannot prove an address is clean: hold back. */
        log_warn("queue", "suppression lookup failed campaign=%s: %s", b->jr->job.id,
                 reply->type == REDIS_REPLY_ERROR ? reply->str : "unexpected reply");
        for (size_t i = 0; i < b->n; i++)
            for (int ch = 0; ch < HERALD_CH_COUNT; ch++) b->r[i]->suppressed[ch] = true;
    }
    batch_decide(b);
}

static void batch_check_suppression(struct batch *b)
{
    struct queue *q = b->jr->q;
    const char **argv = xmalloc((2 + b->n * HERALD_CH_COUNT) * sizeof(char *));
    struct strbuf *members = xcalloc(b->n * HERALD_CH_COUNT, sizeof(struct strbuf));
    int argc = 0;
    argv[argc++] = "SMISMEMBER";
    argv[argc++] = q->k_suppress.buf;
    for (size_t i = 0; i < b->n; i++) {
        struct rcpt *r = b->r[i];
        for (int ch = 0; ch < HERALD_CH_COUNT; ch++) {
            r->member_index[ch] = -1;
            const char *addr = r->found > 0 ? profile_address(&r->p, ch) : NULL;
            if (!addr) continue;
            struct strbuf *m = &members[i * HERALD_CH_COUNT + ch];
            store_suppress_member(m, ch, addr);
            r->member_index[ch] = argc - 2;
            argv[argc++] = m->buf;
        }
    }
    if (argc > 2) qsendv(q, on_suppress_reply, b, argc, argv);
    for (size_t i = 0; i < b->n * HERALD_CH_COUNT; i++) strbuf_free(&members[i]);
    free(members);
    free(argv);
    if (argc == 2) batch_decide(b);
}

struct lookup_arg {
    struct batch *b;
    struct rcpt *r;
};

static void lookup_step_done(struct batch *b)
{
    if (--b->waiting == 0) batch_check_suppression(b);
}

static void on_profile(struct queue *q, redisReply *reply, void *arg)
{
    struct rcpt *r = arg;
    char err[256];
    r->found = store_person_from_reply(reply, &r->p, err, sizeof(err));
    if (r->found < 0) {
        /* A stored profile we cannot read is treated as no profile; say so once per person. */
        log_warn("queue", "stored profile unreadable recipient=%s: %s", r->id,
                 reply->type == REDIS_REPLY_ERROR ? "redis error" : "invalid JSON or fields");
    }
    (void)q;
    lookup_step_done((struct batch *)r->msg.done_arg);
}

static void on_record(struct queue *q, redisReply *reply, void *arg)
{
    struct rcpt *r = arg;
    (void)q;
    if (reply->type == REDIS_REPLY_STRING && store_record_parse(reply->str, &r->rec) == 0)
        r->has_rec = true;
    lookup_step_done((struct batch *)r->msg.done_arg);
}

static void batch_lookup(struct jobrun *jr, char **ids, size_t n)
{
    struct queue *q = jr->q;
    struct batch *b = xcalloc(1, sizeof(*b));
    b->jr = jr;
    b->r = xcalloc(n ? n : 1, sizeof(*b->r));
    struct strbuf kp, kc;
    strbuf_init(&kp);
    strbuf_init(&kc);
    for (size_t i = 0; i < n; i++) {
        struct rcpt *r = xcalloc(1, sizeof(*r));
        r->jr = jr;
        r->id = ids[i];
        r->valid_id = herald_id_valid(ids[i]);
        strbuf_init(&r->record);
        strbuf_init(&r->member);
        strbuf_init(&r->unsub);
        strbuf_init(&r->prefs);
        r->msg.done_arg = b; /* the batch, until the message is submitted */
        b->r[b->n++] = r;
        jr->outstanding++;
    }
    b->waiting = 1; /* held until every lookup is sent */
    for (size_t i = 0; i < b->n; i++) {
        struct rcpt *r = b->r[i];
        if (!r->valid_id) continue; /* no such person can exist */
        store_key_person(&kp, q->cfg->prefix, r->id);
        store_key_campaigns(&kc, q->cfg->prefix, r->id);
        b->waiting += 2;
        QSEND(q, on_profile, r, "HMGET", kp.buf, "profile", "consent:email", "consent:sms");
        QSEND(q, on_record, r, "HGET", kc.buf, jr->job.id);
    }
    strbuf_free(&kp);
    strbuf_free(&kc);
    lookup_step_done(b);
}

/* ---- recipient sources ----------------------------------------------- */

static void on_source_reply(struct queue *q, redisReply *reply, void *arg)
{
    struct jobrun *jr = arg;
    redisReply *items = NULL;
    if (reply->type == REDIS_REPLY_ERROR) {
        log_warn("queue", "reading recipients failed campaign=%s: %s", jr->job.id, reply->str);
        jr->src_done = true;
        jr->loading = false;
        maybe_more(jr);
        return;
    }
    if (jr->src == SRC_LIST) {
        items = reply;
        if (reply->type != REDIS_REPLY_ARRAY || (int64_t)reply->elements < q->cfg->batch) jr->src_done = true;
        jr->list_pos += reply->type == REDIS_REPLY_ARRAY ? (long)reply->elements : 0;
    } else {
        if (reply->type != REDIS_REPLY_ARRAY || reply->elements != 2 ||
            reply->element[0]->type != REDIS_REPLY_STRING) {
            jr->src_done = true;
        } else {
            snprintf(jr->cursor, sizeof(jr->cursor), "%s", reply->element[0]->str);
            if (strcmp(jr->cursor, "0") == 0) jr->src_done = true;
            items = reply->element[1];
        }
    }
    size_t step = jr->src == SRC_ZSET ? 2 : 1; /* ZSCAN returns member, score */
    size_t n = items && items->type == REDIS_REPLY_ARRAY ? items->elements / step : 0;
    char **ids = xcalloc(n ? n : 1, sizeof(char *));
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        redisReply *e = items->element[i * step];
        if (e->type == REDIS_REPLY_STRING) ids[k++] = xstrndup(e->str, e->len);
    }
    if (k == 0) {
        free(ids);
        jr->loading = false;
        maybe_more(jr);
        return;
    }
    batch_lookup(jr, ids, k);
    free(ids);
}

static void load_batch(struct jobrun *jr)
{
    struct queue *q = jr->q;
    char count[24];
    snprintf(count, sizeof(count), "%lld", (long long)q->cfg->batch);
    jr->loading = true;
    switch (jr->src) {
    case SRC_INLINE: {
        size_t n = jr->job.nrecipients - jr->inline_pos;
        if ((int64_t)n > q->cfg->batch) n = (size_t)q->cfg->batch;
        char **ids = xcalloc(n ? n : 1, sizeof(char *));
        for (size_t i = 0; i < n; i++) ids[i] = xstrdup(jr->job.recipients[jr->inline_pos + i]);
        jr->inline_pos += n;
        if (jr->inline_pos >= jr->job.nrecipients) jr->src_done = true;
        batch_lookup(jr, ids, n);
        free(ids);
        return;
    }
    case SRC_SET:
        QSEND(q, on_source_reply, jr, "SSCAN", jr->src_key, jr->cursor, "COUNT", count);
        return;
    case SRC_ZSET:
        QSEND(q, on_source_reply, jr, "ZSCAN", jr->src_key, jr->cursor, "COUNT", count);
        return;
    case SRC_LIST: {
        char start[24], stop[24];
        snprintf(start, sizeof(start), "%ld", jr->list_pos);
        snprintf(stop, sizeof(stop), "%ld", jr->list_pos + (long)q->cfg->batch - 1);
        QSEND(q, on_source_reply, jr, "LRANGE", jr->src_key, start, stop);
        return;
    }
    }
}

/* ---- job life -------------------------------------------------------- */

static void jobrun_free(struct jobrun *jr)
{
    for (size_t i = 0; i < jr->ndeferrals; i++) json_decref(jr->deferrals[i].ids);
    free(jr->deferrals);
    job_free(&jr->job);
    free(jr->text);
    free(jr->src_key);
    strbuf_free(&jr->k_campaign);
    free(jr);
}

static void on_acked(struct queue *q, redisReply *r, void *arg)
{
    ignore_reply(q, r, NULL);
    (void)arg;
    q->counters.jobs_done++;
    read_next(q);
}

/*
 * Parks one group of deferred recipients in Redis as a job of its own: the
 * campaign with just those ids and not_before = the end of their window. It
 * survives restarts, and lets the stream entry be acknowledged once every
 * recipient is terminal or durably deferred.
 */
static void park_one(struct jobrun *jr, struct deferral *d)
{
    struct queue *q = jr->q;
    if (json_array_size(d->ids) == 0) return;
    json_t *o = json_loads(jr->text, 0, NULL);
    if (!o) return; /* it parsed once; cannot happen */
    char when[32], score[24];
    herald_time_format(d->until, when, sizeof(when));
    snprintf(score, sizeof(score), "%lld", (long long)d->until);
    json_object_del(o, "recipients_key");
    json_object_set(o, "recipients", d->ids);
    json_object_set_new(o, "not_before", json_string(when));
    char *text = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    struct strbuf member;
    strbuf_init(&member);
    strbuf_addf(&member, "%s|d\n%s", jr->rec_entry, text);
    jr->writes++;
    QSEND(q, on_write_done, jr, "ZADD", q->k_scheduled.buf, score, member.buf);
    log_info("queue", "deferred campaign=%s recipients=%zu until=%s", jr->job.id, json_array_size(d->ids), when);
    strbuf_free(&member);
    free(text);
    json_array_clear(d->ids);
}

static void park_deferrals(struct jobrun *jr)
{
    jr->deferrals_parked = true;
    for (size_t i = 0; i < jr->ndeferrals; i++) park_one(jr, &jr->deferrals[i]);
}

static void job_complete(struct jobrun *jr)
{
    struct queue *q = jr->q;
    if (jr->src_done && jr->started && !jr->deferrals_parked && jr->ndeferrals) {
        park_deferrals(jr);
        if (jr->writes) return; /* their answers bring us back here */
    }
    q->jr = NULL;
    uv_timer_stop(&q->heartbeat);
    if (jr->src_done && jr->started) {
        char field[96];
        snprintf(field, sizeof(field), "state:%s", jr->entry);
        log_info("queue", "job done campaign=%s entry=%s missing_fields=%u", jr->job.id, jr->entry,
                 jr->missing_fields);
        QSEND(q, ignore_reply, NULL, "HSET", jr->k_campaign.buf, field, "done");
        QSEND(q, on_acked, NULL, "XACK", q->k_jobs.buf, STORE_GROUP, jr->entry);
    } else {
        log_info("queue", "job paused campaign=%s entry=%s (it stays pending and resumes on restart)",
                 jr->job.id, jr->entry);
    }
    jobrun_free(jr);
    check_drained(q);
}

static void maybe_more(struct jobrun *jr)
{
    struct queue *q = jr->q;
    if (jr->loading) return;
    bool stop = q->stopping || jr->src_done;
    if (!stop && (int64_t)(jr->outstanding + (size_t)q->cfg->batch) <= q->cfg->max_in_flight) {
        load_batch(jr);
        return;
    }
    if (stop && jr->outstanding == 0 && jr->writes == 0) job_complete(jr);
}

static void on_card(struct queue *q, redisReply *r, void *arg)
{
    struct jobrun *jr = arg;
    char total[24], field[96];
    snprintf(total, sizeof(total), "%lld", r->type == REDIS_REPLY_INTEGER ? r->integer : 0LL);
    snprintf(field, sizeof(field), "total:%s", jr->entry);
    QSEND(q, ignore_reply, NULL, "HSET", jr->k_campaign.buf, field, total);
    jr->started = true;
    jr->loading = false; /* set while TYPE and the count were pending */
    maybe_more(jr);
}

static void dead_letter(struct queue *q, const char *entry, const char *text, const char *error);

static void on_type(struct queue *q, redisReply *r, void *arg)
{
    struct jobrun *jr = arg;
    const char *t = r->type == REDIS_REPLY_STATUS ? r->str : "";
    const char *card = NULL;
    if (strcmp(t, "set") == 0) {
        jr->src = SRC_SET;
        card = "SCARD";
    } else if (strcmp(t, "zset") == 0) {
        jr->src = SRC_ZSET;
        card = "ZCARD";
    } else if (strcmp(t, "list") == 0) {
        jr->src = SRC_LIST;
        card = "LLEN";
    }
    if (!card) {
        char err[256];
        if (strcmp(t, "none") == 0)
            snprintf(err, sizeof(err), "recipients_key: the key does not exist");
        else
            snprintf(err, sizeof(err), "recipients_key: the key is a %s; expected a set, zset or list", t);
        q->jr = NULL;
        uv_timer_stop(&q->heartbeat);
        dead_letter(q, jr->entry, jr->text, err);
        jobrun_free(jr);
        return;
    }
    QSEND(q, on_card, jr, card, jr->src_key);
}

static void on_heartbeat(uv_timer_t *t)
{
    struct queue *q = t->data;
    if (!q->jr || !rconn_ready(q->data)) return;
    /* Keeps the entry's idle time low so that no other consumer claims a
     * job we are still working on. */
    QSEND(q, ignore_reply, NULL, "XCLAIM", q->k_jobs.buf, STORE_GROUP, q->consumer, "0", q->jr->entry,
          "JUSTID");
}

static void on_dead_acked(struct queue *q, redisReply *r, void *arg)
{
    ignore_reply(q, r, arg);
    q->counters.jobs_refused++;
    read_next(q);
}

static void on_dead_added(struct queue *q, redisReply *r, void *arg)
{
    char *entry = arg;
    ignore_reply(q, r, NULL);
    QSEND(q, on_dead_acked, NULL, "XACK", q->k_jobs.buf, STORE_GROUP, entry);
    free(entry);
}

static void dead_letter(struct queue *q, const char *entry, const char *text, const char *error)
{
    /* The error may quote job text; the log line carries the entry id only. */
    log_warn("queue", "job refused entry=%s (reason in %s)", entry, q->k_dead.buf);
    QSEND(q, on_dead_added, xstrdup(entry), "XADD", q->k_dead.buf, "*", "error", error, "entry",
          text ? text : "", "job_entry", entry);
}

/* A job for later is parked in Redis (not in memory), so that it survives
 * restarts and does not hold up the jobs behind it. */
static void hold_job(struct queue *q, struct jobrun *jr)
{
    char score[24], field[96], when[32];
    snprintf(score, sizeof(score), "%lld", (long long)jr->job.not_before);
    snprintf(field, sizeof(field), "state:%s", jr->entry);
    herald_time_format(jr->job.not_before, when, sizeof(when));
    struct strbuf member;
    strbuf_init(&member);
    strbuf_addf(&member, "%s%s\n%s", jr->rec_entry, jr->resumed ? "|d" : "", jr->text);
    log_info("queue", "job scheduled campaign=%s entry=%s not_before=%s", jr->job.id, jr->entry, when);
    QSEND(q, ignore_reply, NULL, "ZADD", q->k_scheduled.buf, score, member.buf);
    QSEND(q, ignore_reply, NULL, "HSET", jr->k_campaign.buf, field, "scheduled");
    QSEND(q, on_acked, NULL, "XACK", q->k_jobs.buf, STORE_GROUP, jr->entry);
    strbuf_free(&member);
    jobrun_free(jr);
}

static void on_released_due(struct queue *q, redisReply *r, void *arg)
{
    (void)arg;
    q->releasing = false;
    if (r->type == REDIS_REPLY_ERROR) log_warn("queue", "releasing scheduled jobs failed: %s", r->str);
    else if (r->type == REDIS_REPLY_INTEGER && r->integer > 0)
        log_info("queue", "released %lld scheduled job(s)", r->integer);
}

static void on_release_timer(uv_timer_t *t)
{
    struct queue *q = t->data;
    if (q->releasing || q->stopping || !rconn_ready(q->data)) return;
    char now[24];
    snprintf(now, sizeof(now), "%lld", (long long)time(NULL));
    q->releasing = true;
    QSEND(q, on_released_due, NULL, "EVAL", store_lua_release_due, "2", q->k_scheduled.buf, q->k_jobs.buf,
          now, "16");
}

static void start_job(struct queue *q, const char *entry, const char *text, size_t len,
                      const char *held_from)
{
    char err[512];
    struct jobrun *jr = xcalloc(1, sizeof(*jr));
    jr->q = q;
    snprintf(jr->entry, sizeof(jr->entry), "%s", entry);
    strbuf_init(&jr->k_campaign);
    if (!text) {
        dead_letter(q, entry, "", "entry has no `job` field (expected one field `job` holding the campaign JSON)");
        jobrun_free(jr);
        return;
    }
    jr->text = xstrndup(text, len);
    if (job_parse(text, len, &jr->job, err, sizeof(err)) < 0) {
        dead_letter(q, entry, jr->text, err);
        jobrun_free(jr);
        return;
    }
    store_key_campaign(&jr->k_campaign, q->cfg->prefix, jr->job.id);
    snprintf(jr->rec_entry, sizeof(jr->rec_entry), "%s", entry);
    if (held_from) {
        /* "<entry>" for a job held until not_before, "<entry>|d" for
         * recipients deferred by that entry: records keep naming it. */
        size_t n = strcspn(held_from, "|");
        snprintf(jr->rec_entry, sizeof(jr->rec_entry), "%.*s", (int)n, held_from);
        jr->resumed = strcmp(held_from + n, "|d") == 0;
        char old[96];
        snprintf(old, sizeof(old), "state:%s", jr->rec_entry);
        if (!jr->resumed) QSEND(q, ignore_reply, NULL, "HDEL", jr->k_campaign.buf, old);
    }
    if (jr->job.not_before > time(NULL)) {
        hold_job(q, jr);
        return;
    }
    q->jr = jr;
    log_info("queue", "job started campaign=%s entry=%s", jr->job.id, entry);
    char field[96];
    snprintf(field, sizeof(field), "state:%s", entry);
    QSEND(q, ignore_reply, NULL, "HSET", jr->k_campaign.buf, field, "running");
    uint64_t hb = (uint64_t)(q->cfg->claim_idle_ms / 3 > 0 ? q->cfg->claim_idle_ms / 3 : 1000);
    uv_timer_start(&q->heartbeat, on_heartbeat, hb, hb);
    if (jr->job.recipients_key) {
        jr->src_key = xstrdup(jr->job.recipients_key);
        snprintf(jr->cursor, sizeof(jr->cursor), "0");
        jr->loading = true; /* until TYPE answers */
        QSEND(q, on_type, jr, "TYPE", jr->src_key);
        return;
    }
    jr->src = SRC_INLINE;
    char total[24];
    snprintf(total, sizeof(total), "%zu", jr->job.nrecipients);
    snprintf(field, sizeof(field), "total:%s", entry);
    if (!jr->resumed) QSEND(q, ignore_reply, NULL, "HSET", jr->k_campaign.buf, field, total);
    jr->started = true;
    maybe_more(jr);
}

/* ---- reading the stream ---------------------------------------------- */

/* entries: array of [id, [field, value, ...]]. Takes the first. Returns
 * false when there is none. */
static bool take_entry(struct queue *q, redisReply *entries)
{
    if (!entries || entries->type != REDIS_REPLY_ARRAY || entries->elements == 0) return false;
    redisReply *e = entries->element[0];
    if (e->type != REDIS_REPLY_ARRAY || e->elements < 2 || e->element[0]->type != REDIS_REPLY_STRING)
        return false;
    const char *id = e->element[0]->str;
    redisReply *fields = e->element[1];
    const char *text = NULL, *held_from = NULL;
    size_t len = 0;
    if (fields->type == REDIS_REPLY_ARRAY) {
        for (size_t i = 0; i + 1 < fields->elements; i += 2) {
            redisReply *f = fields->element[i], *v = fields->element[i + 1];
            if (f->type != REDIS_REPLY_STRING || v->type != REDIS_REPLY_STRING) continue;
            if (strcmp(f->str, "job") == 0) {
                text = v->str;
                len = v->len;
            } else if (strcmp(f->str, "held_from") == 0) {
                held_from = v->str;
            }
        }
    } else {
        /* Deleted from the stream while pending: nothing to do but ack. */
        QSEND(q, ignore_reply, NULL, "XACK", q->k_jobs.buf, STORE_GROUP, id);
        return false;
    }
    start_job(q, id, text, len, held_from);
    return true;
}

static void on_read(struct rconn *rc, redisReply *r, void *priv)
{
    struct queue *q = priv;
    (void)rc;
    q->reading = false;
    if (!r) return; /* connection lost; queue_connected() resumes */
    if (r->type == REDIS_REPLY_ERROR) {
        if (strncmp(r->str, "NOGROUP", 7) == 0) {
            q->group_ready = false; /* the stream was deleted: create it again */
            read_next(q);
        } else {
            log_complain(&q->read_complaint, "queue", "reading jobs failed: %s", r->str);
            uv_timer_start(&q->retry, on_retry, 1000, 0);
        }
        return;
    }
    log_recovered(&q->read_complaint, "queue", "reading jobs works again");
    bool took = false;
    if (r->type == REDIS_REPLY_ARRAY && r->elements == 1)
        took = take_entry(q, r->element[0]->element[1]);
    if (!took && !q->own_pending_done && r->type != REDIS_REPLY_ERROR) q->own_pending_done = true;
    if (!took) read_next(q);
}

static void on_claim(struct rconn *rc, redisReply *r, void *priv)
{
    struct queue *q = priv;
    (void)rc;
    q->reading = false;
    if (!r) return;
    bool took = false;
    if (r->type == REDIS_REPLY_ARRAY && r->elements >= 2) {
        took = take_entry(q, r->element[1]);
        if (took) log_info("queue", "took over a job left by another consumer entry=%s", q->jr ? q->jr->entry : "-");
    }
    if (!took) read_next(q);
}

static void on_group(struct rconn *rc, redisReply *r, void *priv)
{
    struct queue *q = priv;
    (void)rc;
    q->reading = false;
    if (!r) return;
    if (r->type == REDIS_REPLY_ERROR && strncmp(r->str, "BUSYGROUP", 9) != 0) {
        log_complain(&q->read_complaint, "queue", "cannot create the consumer group: %s", r->str);
        uv_timer_start(&q->retry, on_retry, 5000, 0);
        return;
    }
    q->group_ready = true;
    read_next(q);
}

static void on_retry(uv_timer_t *t)
{
    read_next(t->data);
}

static void read_next(struct queue *q)
{
    if (q->stopping || q->jr || q->reading || !rconn_ready(q->jobs)) {
        check_drained(q);
        return;
    }
    int rc;
    q->reading = true;
    if (!q->group_ready) {
        /* From the start of the stream: jobs added before the group existed count. */
        rc = rconn_command(q->jobs, on_group, q, "XGROUP CREATE %s %s 0 MKSTREAM", q->k_jobs.buf, STORE_GROUP);
    } else if (!q->own_pending_done) {
        rc = rconn_command(q->jobs, on_read, q, "XREADGROUP GROUP %s %s COUNT 1 STREAMS %s 0", STORE_GROUP,
                           q->consumer, q->k_jobs.buf);
    } else if (uv_now(q->loop) - q->last_claim_ms >= (uint64_t)q->cfg->claim_idle_ms / 2) {
        q->last_claim_ms = uv_now(q->loop);
        char idle[24];
        snprintf(idle, sizeof(idle), "%lld", (long long)q->cfg->claim_idle_ms);
        rc = rconn_command(q->jobs, on_claim, q, "XAUTOCLAIM %s %s %s %s 0-0 COUNT 1", q->k_jobs.buf,
                           STORE_GROUP, q->consumer, idle);
    } else {
        rc = rconn_command(q->jobs, on_read, q, "XREADGROUP GROUP %s %s COUNT 1 BLOCK %s STREAMS %s >",
                           STORE_GROUP, q->consumer, QUEUE_BLOCK_MS, q->k_jobs.buf);
    }
    if (rc < 0) q->reading = false;
}

/* ---- public ---------------------------------------------------------- */

struct queue *queue_new(uv_loop_t *loop, const struct config *cfg, struct rconn *jobs,
                        struct rconn *data, struct dispatch *d, const char *consumer,
                        const char *run_id)
{
    struct queue *q = xcalloc(1, sizeof(*q));
    q->loop = loop;
    q->cfg = cfg;
    q->jobs = jobs;
    q->data = data;
    q->d = d;
    q->consumer = xstrdup(consumer);
    q->run_id = xstrdup(run_id);
    strbuf_init(&q->k_jobs);
    strbuf_init(&q->k_dead);
    strbuf_init(&q->k_audit);
    strbuf_init(&q->k_suppress);
    store_key_jobs(&q->k_jobs, cfg->prefix);
    store_key_dead(&q->k_dead, cfg->prefix);
    store_key_audit(&q->k_audit, cfg->prefix);
    store_key_suppress(&q->k_suppress, cfg->prefix);
    strbuf_init(&q->k_scheduled);
    store_key_scheduled(&q->k_scheduled, cfg->prefix);
    snprintf(q->audit_maxlen, sizeof(q->audit_maxlen), "%lld", (long long)cfg->audit_maxlen);
    q->tzdb = tzdb_new(NULL);
    q->default_tz = tzdb_get(q->tzdb, cfg->default_tz);
    if (!q->default_tz) q->default_tz = tz_utc(); /* main refuses an unknown default_tz */
    for (int ch = 0; ch < HERALD_CH_COUNT; ch++) {
        if (cfg->quiet_start_min[ch] < 0) continue;
        q->quiet[ch] = (struct quiet_window){(int16_t)cfg->quiet_start_min[ch], (int16_t)cfg->quiet_end_min[ch]};
        q->quiet_ptr[ch] = &q->quiet[ch];
    }
    q->cap_topics = xcalloc(cfg->ncaps ? cfg->ncaps : 1, sizeof(char *));
    for (size_t i = 0; i < cfg->ncaps; i++) {
        struct strbuf t;
        strbuf_init(&t);
        for (size_t j = 0; j < cfg->caps[i].ntopics; j++) strbuf_addf(&t, ",%s", cfg->caps[i].topics[j]);
        if (t.len) strbuf_adds(&t, ",");
        q->cap_topics[i] = strbuf_detach(&t, NULL);
        if (cfg->caps[i].window_s > q->cap_keep_s) q->cap_keep_s = cfg->caps[i].window_s;
    }
    uv_timer_init(loop, &q->heartbeat);
    uv_timer_init(loop, &q->retry);
    q->heartbeat.data = q;
    q->retry.data = q;
    uv_timer_init(loop, &q->release_timer);
    q->release_timer.data = q;
    uv_timer_start(&q->release_timer, on_release_timer, 1000, 1000);
    q->handles_open = 3;
    q->last_claim_ms = 0;
    return q;
}

void queue_connected(struct queue *q, struct rconn *rc)
{
    if (rc == q->data) backlog_flush(q);
    if (rc == q->jobs) {
        q->reading = false;
        /* After a loss, re-read our own pending entries first. */
        if (!q->jr) q->own_pending_done = false;
    }
    read_next(q);
}

static void check_drained(struct queue *q)
{
    if (!q->stopping || !q->drained) return;
    if (q->jr || q->backlog || q->inflight_cmds || dispatch_in_flight(q->d)) return;
    void (*cb)(void *) = q->drained;
    q->drained = NULL;
    cb(q->drained_arg);
}

void queue_stop(struct queue *q, void (*drained)(void *arg), void *arg)
{
    q->stopping = true;
    q->drained = drained;
    q->drained_arg = arg;
    dispatch_interrupt(q->d);
    if (q->jr) maybe_more(q->jr);
    check_drained(q);
}

void queue_counters(const struct queue *q, struct queue_counters *out)
{
    *out = q->counters;
    out->in_flight = q->jr ? q->jr->outstanding : 0;
    out->backlog = q->nbacklog;
}

static void on_handle_closed(uv_handle_t *h)
{
    struct queue *q = h->data;
    if (--q->handles_open > 0) return;
    strbuf_free(&q->k_jobs);
    strbuf_free(&q->k_dead);
    strbuf_free(&q->k_audit);
    strbuf_free(&q->k_suppress);
    strbuf_free(&q->k_scheduled);
    for (size_t i = 0; i < q->cfg->ncaps; i++) free(q->cap_topics[i]);
    free(q->cap_topics);
    tzdb_free(q->tzdb);
    free(q->consumer);
    free(q->run_id);
    free(q);
}

void queue_free(struct queue *q)
{
    /* Whatever could not be written before the drain timeout is lost here;
     * the job stays pending in the stream and is redone from the records. */
    while (q->backlog) {
        struct qcmd *c = q->backlog;
        q->backlog = c->next;
        qcmd_free(c);
    }
    if (q->jr) {
        log_warn("queue", "stopping with campaign=%s unfinished (outstanding=%zu); it resumes on restart",
                 q->jr->job.id, q->jr->outstanding);
        /* Recipients still referenced by callbacks are freed with the loop's
         * last callbacks; the job text and keys go now. */
    }
    uv_close((uv_handle_t *)&q->heartbeat, on_handle_closed);
    uv_close((uv_handle_t *)&q->retry, on_handle_closed);
    uv_close((uv_handle_t *)&q->release_timer, on_handle_closed);
}
