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

#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "digest.h"
#include "job.h"
#include "links.h"
#include "log.h"
#include "metrics.h"
#include "policy.h"
#include "profile.h"
#include "store.h"
#include "store_cmd.h"
#include "store_job.h"
#include "template.h"
#include "tzdb.h"

#define QUEUE_BLOCK_MS 2000
#define QUEUE_DEFER_GROUP_MAX 5000 /* ids per parked job of deferred recipients */
#define QUEUE_FINISH_MAX 256       /* outcomes per finishing write */
#define QUEUE_LINK_ROOM 256        /* a signed link, about 230 bytes, or a few values */
#define QUEUE_RESERVE_MAX 256      /* recipients per reservation script */
#define QUEUE_HOLD_MIN_MS 5000     /* a held job is tried again after this, doubling */
#define QUEUE_HOLD_MAX_MS 60000

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
    struct policy_decision dec;
    struct strbuf record; /* our reservation string */
    struct strbuf member; /* our entry in the person's sends history */
    bool reserved;        /* the record and history entry are ours to give back */
    char rev[24];         /* the person's `rev` at lookup ("" when none) */
    struct strbuf prior;  /* a dead run's reservation of this message, to take over ("" none) */
    struct rcpt *next_ready; /* reserved, waiting for its turn to be rendered and sent */
    bool was_deferred;    /* deferred before: its deferral ends with this outcome */
    bool dispatched;      /* went to dispatch: requests is its count of provider requests */
    int requests;
    bool erased;          /* its reservation vanished before the handoff: the person was erased */
    struct hbatch *hb;    /* the handoff mark it waits for (NULL: none) */
    size_t hb_i;          /* its slot there */
    char idem[HERALD_IDEMPOTENCY_KEY_MAX + 1]; /* the same for every request of this message */
    char cap[HERALD_ID_MAX + 1]; /* the cap that blocked, for reason cap:<name> */
    struct dispatch_msg msg;
    struct strbuf unsub, prefs;
};

struct batch {
    struct jobrun *jr;
    struct rcpt **r;
    struct store_job_person *look; /* the lookup's rows, one per valid id (kept out of
                                    * struct rcpt: a smaller recipient is a cheaper one) */
    size_t n;
    bool relookup; /* deciding again after a change, beside the loading batch */
};

/* How a run ends: on (finishes or is stopped), held (a command the job
 * needs was refused for good: it stays pending and is tried again later)
 * or lost (another consumer owns the entry now: nothing more is written). */
enum run_end { RUN_ON, RUN_HELD, RUN_LOST };

struct jobrun {
    struct queue *q;
    char entry[64];
    char run[32];  /* "<daemon run>.<n>": what the records it writes name */
    enum run_end end;
    size_t unfinished; /* recipients that left without an outcome: no ack */
    char *text;
    struct job job;
    enum src_kind src;
    char *src_key;
    size_t inline_pos;
    char cursor[32];
    long list_pos;
    bool src_done;
    bool loading;
    struct store_page page;        /* the page of recipients being read */
    struct store_source_info info; /* what recipients_key holds */
    bool started;  /* total/state written */
    size_t outstanding;
    size_t writes;
    unsigned missing_fields;
    /* The entry the once-only records name: this one, or, for a job that was
     * held (not_before) or deferred (quiet hours), the entry it came from. */
    char rec_entry[64];
    bool resumed;  /* re-run of deferred recipients: its total is counted already */
    /* Recipients deferred by this run, grouped by when their window ends;
     * parked in Redis as one scheduled job per group before the ack. */
    struct deferral *deferrals;
    size_t ndeferrals;
    bool deferrals_parked;
    /* Outcomes waiting for their finishing write (finish_flush). */
    struct store_outcomes fin;
};

struct deferral {
    int64_t until;
    json_t *ids;
};

struct queue {
    uv_loop_t *loop;
    const struct config *cfg;
    const struct store_ops *ops; /* the store: store_job_ops, or a test's fake */
    void *st;
    struct dispatch *d;
    char *consumer, *run_id;
    struct jobrun *jr;
    bool reading;       /* a read is outstanding on the jobs connection */
    enum store_read_mode read_mode; /* ... of this kind */
    bool own_pending_done;
    uint64_t last_claim_ms;
    bool group_ready;
    bool stopping;
    void (*drained)(void *);
    void *drained_arg;
    uint64_t run_seq;
    uv_timer_t hold_timer; /* a held job is read again when it fires */
    int64_t hold_ms;
    char held_entry[64];   /* the job held last ("" none), for /healthz */
    enum store_error held_error;
    bool marker_seen;      /* this Redis had herald's marker when we met it */
    bool emptied;          /* ... and lost it since: it came back empty */
    bool marker_absent;    /* the marker check's answer */
    uv_timer_t heartbeat;
    uv_timer_t retry; /* after a refused read: wait, never spin */
    uv_timer_t release_timer; /* moves due scheduled jobs back to the stream */
    bool releasing;
    long long released_due; /* the last release's count */
    struct queue_counters counters;
    struct log_complaint read_complaint;
    struct tzdb *tzdb;
    const struct tz *default_tz;
    struct quiet_window quiet[HERALD_CH_COUNT];
    const struct quiet_window *quiet_ptr[HERALD_CH_COUNT]; /* NULL: no ops window */
    int64_t cap_keep_s; /* history the caps need: their longest window */
    uv_check_t flush_check; /* writes the outcomes of one loop iteration */
    /* Reserved recipients are rendered and handed to dispatch just in time
     * (while dispatch holds fewer than ready_target), a slice per loop
     * iteration: rendering a whole batch in one callback would leave the
     * providers' connections idle meanwhile. */
    struct rcpt *ready_head, *ready_tail;
    size_t nready, ready_target;
    size_t reserving; /* in a reservation script now */
    uv_idle_t ready_idle;
    uint64_t reserve_seq;
    int64_t at_second; /* the second at_text shows */
    char at_text[32];
    struct strbuf scratch; /* finish()'s keys and texts, reused: no allocation per outcome */
    int handles_open;
};

static void read_next(struct queue *q);
static void on_retry(uv_timer_t *t);
static void maybe_more(struct jobrun *jr);
static void check_drained(struct queue *q);

/* ---- outcomes -------------------------------------------------------- */

static void rcpt_free(struct rcpt *r)
{
    free(r->id);
    if (r->found > 0) profile_free(&r->p);
    strbuf_free(&r->record);
    strbuf_free(&r->member);
    strbuf_free(&r->unsub);
    strbuf_free(&r->prefs);
    strbuf_free(&r->prior);
    free(r->msg.subject);
    free(r->msg.text);
    free(r->msg.html);
    free(r);
}

/* Arguments of commands that were never answered (queue_free). */
static void discard_rcpt(void *arg) { rcpt_free(arg); }

static void discard_batch(void *arg)
{
    struct batch *b = arg;
    for (size_t i = 0; i < b->n; i++) rcpt_free(b->r[i]);
    free(b->r);
    free(b->look);
    free(b);
}

/* A recipient leaves the job without a new outcome (already recorded by
 * this entry, or decided by another copy of it in this run). */
static void rcpt_drop(struct rcpt *r)
{
    struct jobrun *jr = r->jr;
    rcpt_free(r);
    jr->outstanding--;
    maybe_more(jr);
}

/* A recipient leaves the run unfinished (the daemon is stopping, or the
 * run is held or lost): the job is not acknowledged, and the next run
 * decides them. */
static void rcpt_unfinished(struct rcpt *r)
{
    r->jr->unfinished++;
    rcpt_drop(r);
}

static bool run_ended(const struct jobrun *jr) { return jr->q->stopping || jr->end != RUN_ON; }

/* Around a loop that may let the last recipients of a run leave (and so
 * end and free the run) while the loop still uses it: the run cannot end
 * in between; it ends, if it is done, at the close. */
static void run_pin(struct jobrun *jr) { jr->outstanding++; }

static void run_unpin(struct jobrun *jr)
{
    jr->outstanding--;
    maybe_more(jr);
}

static void ready_kick(struct queue *q);

/* A command this run needs was refused for good (an ACL denial, a key of
 * the wrong type, a reply of the wrong shape): nothing is decided from
 * it. The run stops taking recipients and ends once what is in flight has
 * its outcome; the job stays pending and is read again after a wait. */
static void run_hold(struct jobrun *jr, enum store_error err, const char *text, const char *what)
{
    struct queue *q = jr->q;
    if (jr->end != RUN_ON) return;
    jr->end = RUN_HELD;
    herald_copy(q->held_entry, sizeof(q->held_entry), jr->entry);
    q->held_error = err;
    log_error("queue", "job held campaign=%s entry=%s: %s refused by redis (%s: %.120s); it stays pending and is tried again",
              jr->job.id, jr->entry, what, store_error_name(err), text ? text : "");
    ready_kick(q);
}

/* Another consumer owns the entry now (this daemon was paused or cut off
 * past claim_idle), or it is gone (Redis came back empty): the run stops
 * at once and writes nothing more; its new owner finishes the job. */
static void run_lost(struct jobrun *jr, const char *why)
{
    if (jr->end == RUN_LOST) return;
    jr->end = RUN_LOST;
    log_warn("queue", "job lost campaign=%s entry=%s: %s; this run stops without writing", jr->job.id, jr->entry,
             why);
    ready_kick(jr->q);
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

/* Appends s as a JSON string (the values are ids and reason codes, but a
 * provider's message id is the provider's text: escape everything). */
static void json_str(struct strbuf *sb, const char *s)
{
    strbuf_add(sb, "\"", 1);
    const char *run = s;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p != '"' && *p != '\\' && *p >= 0x20) continue;
        strbuf_add(sb, run, (size_t)((const char *)p - run)); /* the plain run before it */
        if (*p == '"' || *p == '\\') strbuf_addf(sb, "\\%c", *p);
        else strbuf_addf(sb, "\\u%04x", *p);
        run = (const char *)p + 1;
    }
    strbuf_adds(sb, run);
    strbuf_add(sb, "\"", 1);
}

struct fin_flush {
    struct jobrun *jr;
    size_t n;
};

static void on_finish_flushed(const struct store_job_result *res, void *arg)
{
    struct fin_flush *f = arg;
    struct jobrun *jr = f->jr;
    if (res->status == STORE_JOB_LOST) {
        run_lost(jr, "outcomes refused by the fence");
    } else if (res->status != STORE_JOB_OK) {
        /* Whether they landed is unknown: the job is not acknowledged, and
         * the next run reads what the records say. */
        jr->unfinished += f->n;
        run_hold(jr, res->err, res->text, "writing outcomes");
    }
    jr->writes -= f->n;
    free(f);
    maybe_more(jr);
}

/* Sends the buffered outcomes of jr as one finishing write. A lost run
 * writes nothing: its outcomes are dropped here (the new owner decides
 * those recipients again). */
static void finish_flush(struct jobrun *jr)
{
    struct queue *q = jr->q;
    if (jr->fin.n == 0) return;
    if (jr->end == RUN_LOST) {
        jr->writes -= jr->fin.n;
        store_outcomes_free(&jr->fin);
        store_outcomes_init(&jr->fin, q->cfg->prefix);
        return;
    }
    struct fin_flush *f = xmalloc(sizeof(*f));
    f->jr = jr;
    f->n = jr->fin.n;
    q->ops->finish(q->st, jr->entry, jr->job.id, jr->rec_entry, &jr->fin, on_finish_flushed, f, free);
}

/* Outcomes are written in batches: at the end of each loop iteration (a
 * uv_check), or sooner when QUEUE_FINISH_MAX of them are waiting. They
 * count as writes of the job until Redis answered, so the job is never
 * acknowledged before its outcomes are stored. */
static void on_flush_check(uv_check_t *h)
{
    struct queue *q = h->data;
    uv_check_stop(h);
    if (q->jr) finish_flush(q->jr);
}

static void finish(struct rcpt *r, enum herald_outcome outcome, enum herald_reason reason, int channel,
                   const char *provider, const char *provider_id)
{
    struct jobrun *jr = r->jr;
    struct queue *q = jr->q;
    if (jr->end == RUN_LOST) { /* its new owner decides this recipient */
        rcpt_unfinished(r);
        return;
    }
    int64_t now = time(NULL);
    char reason_s[HERALD_ID_MAX + 8];
    /* Formatted once a second: thousands of outcomes share it. */
    if (now != q->at_second) {
        q->at_second = now;
        herald_time_format(now, q->at_text, sizeof(q->at_text));
    }
    const char *at = q->at_text;
    if (reason == HERALD_REASON_CAP)
        snprintf(reason_s, sizeof(reason_s), "cap:%s", r->cap);
    else
        herald_copy(reason_s, sizeof(reason_s), herald_reason_name(reason));
    const char *chan = herald_channel_name(channel);
    struct strbuf *sb = &q->scratch;
    /* The once-only record and the person's history. Unknown ids and
     * expired campaigns get none, so that bogus ids never create keys. */
    bool keep = r->valid_id && reason != HERALD_REASON_UNKNOWN_RECIPIENT && reason != HERALD_REASON_EXPIRED;
    char record[192];
    record[0] = '\0';
    if (keep) {
        store_record_format(sb, rec_state_for(outcome), jr->rec_entry, jr->run, now);
        herald_copy(record, sizeof(record), sb->buf);
    }
    strbuf_reset(sb);
    if (keep) {
        strbuf_adds(sb, "{\"campaign\":");
        json_str(sb, jr->job.id);
        strbuf_adds(sb, ",\"channel\":");
        json_str(sb, chan);
        strbuf_adds(sb, ",\"topic\":");
        json_str(sb, jr->job.topic);
        strbuf_adds(sb, ",\"outcome\":");
        json_str(sb, herald_outcome_name(outcome));
        strbuf_adds(sb, ",\"reason\":");
        json_str(sb, reason_s);
        strbuf_adds(sb, ",\"provider\":");
        json_str(sb, provider ? provider : "");
        strbuf_adds(sb, ",\"at\":");
        json_str(sb, at);
        strbuf_adds(sb, "}");
    }
    char progress[HERALD_ID_MAX + 32];
    herald_copy(progress, sizeof(progress), herald_outcome_name(outcome));
    if (outcome != HERALD_OUTCOME_SENT && outcome != HERALD_OUTCOME_UNKNOWN) {
        size_t pl = strlen(progress);
        if (pl + 1 < sizeof(progress)) {
            progress[pl] = ':';
            herald_copy(progress + pl + 1, sizeof(progress) - pl - 1, reason_s);
        }
    }
    struct store_outcome oc = {
        .id = r->id,
        .record = record,
        /* A permanent failure gives the person's budget back: it was no message. */
        .unsend = r->reserved && outcome == HERALD_OUTCOME_FAILED ? r->member.buf : "",
        .history = sb->buf,
        .channel = chan,
        .outcome = herald_outcome_name(outcome),
        .reason = reason_s,
        .provider = provider ? provider : "",
        .provider_id = provider_id ? provider_id : "",
        .at = at,
        .progress = progress,
        .reserved = r->reserved,        /* the campaigns hash holds our reservation */
        .was_deferred = r->was_deferred, /* it leaves the deferred count now */
        /* No record, written once per run (an expired campaign's outcomes
         * are neither: there is no person behind them to look up). */
        .once = !keep && reason != HERALD_REASON_EXPIRED,
        /* Requests herald sent to providers for it: the audit says how
         * often a person was tried. */
        .requests = r->dispatched ? r->requests : -1,
    };
    store_outcomes_add(&jr->fin, &oc);
    jr->writes++;
    if (jr->fin.n >= QUEUE_FINISH_MAX) finish_flush(jr);
    else uv_check_start(&q->flush_check, on_flush_check);
    q->counters.outcomes[outcome]++;
    metrics_message(channel, (int)outcome, reason_s);
    log_debug("queue", "outcome campaign=%s recipient=%s channel=%s outcome=%s reason=%s", jr->job.id,
              r->id, chan, herald_outcome_name(outcome), reason_s);
    rcpt_drop(r);
}

/* ---- sending --------------------------------------------------------- */

static void on_released(const struct store_job_result *res, void *arg)
{
    struct rcpt *rc = arg;
    if (res->status == STORE_JOB_LOST) run_lost(rc->jr, "a reservation could not be given back (fence)");
    rcpt_unfinished(rc);
}

static void on_ready_idle(uv_idle_t *h);

/* No provider took r (the daemon is stopping): its reservation is given
 * back, so that the next run sends it instead of calling it unknown. */
static void release(struct rcpt *r)
{
    struct jobrun *jr = r->jr;
    struct queue *q = jr->q;
    if (jr->end == RUN_LOST) {
        rcpt_unfinished(r);
        return;
    }
    q->ops->release(q->st, jr->entry, jr->job.id, r->id, r->record.buf, r->member.buf, on_released, r,
                      discard_rcpt);
}

struct hbatch;
static void hbatch_forget(struct rcpt *r);

static void on_sent(struct dispatch_msg *m, void *arg)
{
    struct rcpt *r = arg;
    struct queue *q = r->jr->q;
    hbatch_forget(r); /* finished at the gate (drain timeout): the mark's answer must not touch it */
    if (m->interrupted && r->erased) {
        /* The person was erased between the reservation and the handoff. */
        ready_kick(q);
        finish(r, HERALD_OUTCOME_SUPPRESSED, HERALD_REASON_UNKNOWN_RECIPIENT, m->channel, NULL, NULL);
        return;
    }
    if (m->interrupted) {
        release(r);
        return;
    }
    r->requests = m->requests;
    ready_kick(q); /* a slot is free */
    if (m->outcome == HERALD_OUTCOME_SENT)
        log_debug("queue", "sent campaign=%s recipient=%s provider=%s provider_id=%s", r->jr->job.id, r->id,
                  m->provider, m->provider_id);
    r->dispatched = true;
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
    /* One allocation for a typical part: the source, and room for the
     * values and links that replace its fields. */
    strbuf_grow_to(&sb, template_source_len(t) + 2 * QUEUE_LINK_ROOM);
    jr->missing_fields += template_render(t, r->p.attributes, &vars, esc, &sb);
    return strbuf_detach(&sb, NULL);
}

/* The message's idempotency key: the same for every request of it, across
 * retries, failover and restarts, so a provider that dedupes by it never
 * delivers twice: "<record entry>:<recipient id>" (the entry names the job
 * run, so the campaign is implied; both are of the key's alphabet), or,
 * when that is longer than a key may be, the entry and the first 32 hex
 * digits of the SHA-256 of the id. */
static void idempotency_key(const struct jobrun *jr, struct rcpt *r)
{
    size_t le = strlen(jr->rec_entry), li = strlen(r->id);
    if (le + 1 + li < sizeof(r->idem)) {
        memcpy(r->idem, jr->rec_entry, le);
        r->idem[le] = ':';
        memcpy(r->idem + le + 1, r->id, li + 1);
        return;
    }
    unsigned char md[DIGEST_SHA256_LEN];
    digest_sha256(r->id, li, md);
    size_t n = le < sizeof(r->idem) - 35 ? le : sizeof(r->idem) - 35;
    memcpy(r->idem, jr->rec_entry, n);
    memcpy(r->idem + n, ":h", 2);
    digest_hex(r->idem + n + 2, md, 16);
}

/* ---- the handoff gate -------------------------------------------------- */

/* Messages at dispatch's handoff gate, recorded "handed" in one script
 * before any of them leaves: after a crash only these can be `unknown`. */
struct hbatch {
    struct queue *q;
    struct jobrun *jr;
    struct dispatch_msg **msgs; /* NULL where the message finished meanwhile */
    struct store_job_handoff *items; /* the script's rows: the batch's own, they outlive any message */
    struct store_job_handoff **ptrs;
    size_t n;
};

static void hbatch_free(struct hbatch *hb)
{
    free(hb->msgs);
    free(hb->items);
    free(hb->ptrs);
    free(hb);
}

static struct rcpt *rcpt_of(struct dispatch_msg *m)
{
    return (struct rcpt *)(void *)((char *)m - offsetof(struct rcpt, msg));
}

static void hbatch_forget(struct rcpt *r)
{
    if (!r->hb) return;
    r->hb->msgs[r->hb_i] = NULL;
    r->hb = NULL;
}

static void discard_hbatch(void *arg)
{
    struct hbatch *hb = arg;
    for (size_t i = 0; i < hb->n; i++)
        if (hb->msgs[i]) rcpt_of(hb->msgs[i])->hb = NULL;
    hbatch_free(hb);
}

static void on_handed(const struct store_job_result *res, void *arg)
{
    struct hbatch *hb = arg;
    struct jobrun *jr = hb->jr;
    bool ok = res->status == STORE_JOB_OK;
    if (res->status == STORE_JOB_LOST) run_lost(jr, "the handoff was refused by the fence");
    else if (!ok) run_hold(jr, res->err, res->text, "recording the handoff");
    struct dispatch_msg **go_msgs = xcalloc(hb->n ? hb->n : 1, sizeof(*go_msgs));
    bool *go = xcalloc(hb->n ? hb->n : 1, sizeof(*go));
    size_t k = 0;
    for (size_t i = 0; i < hb->n; i++) {
        if (!hb->msgs[i]) continue; /* finished meanwhile (drain timeout) */
        struct rcpt *r = rcpt_of(hb->msgs[i]);
        r->hb = NULL;
        /* Not sent: lost (its new owner decides it), held (the mark's fate
         * is unknown: released, the next run decides), erased (its
         * reservation vanished). Each then finishes as interrupted. */
        if (ok && !hb->items[i].handed) r->erased = true;
        go_msgs[k] = hb->msgs[i];
        go[k++] = ok && hb->items[i].handed;
    }
    struct queue *q = hb->q;
    hbatch_free(hb);
    dispatch_handoff_done(q->d, go_msgs, k, go);
    free(go_msgs);
    free(go);
}

/* dispatch's handoff gate: msgs are about to get their first request.
 * They all belong to the running job (one job runs at a time). */
static void on_handoff(struct dispatch_msg **msgs, size_t n, void *arg)
{
    struct queue *q = arg;
    struct jobrun *jr = rcpt_of(msgs[0])->jr;
    if (jr->end == RUN_LOST) { /* nothing more is written: none leaves */
        bool *go = xcalloc(n, sizeof(*go));
        dispatch_handoff_done(q->d, msgs, n, go);
        free(go);
        return;
    }
    struct hbatch *hb = xcalloc(1, sizeof(*hb));
    hb->q = q;
    hb->jr = jr;
    hb->n = n;
    hb->msgs = xcalloc(n, sizeof(*hb->msgs));
    memcpy(hb->msgs, msgs, n * sizeof(*msgs));
    hb->items = xcalloc(n, sizeof(*hb->items));
    hb->ptrs = xcalloc(n, sizeof(*hb->ptrs));
    for (size_t i = 0; i < n; i++) {
        struct rcpt *r = rcpt_of(msgs[i]);
        r->hb = hb;
        r->hb_i = i;
        hb->items[i].id = r->id; /* read during the call only */
        hb->items[i].record = r->record.buf;
        hb->ptrs[i] = &hb->items[i];
    }
    q->ops->handed(q->st, jr->entry, jr->job.id, hb->ptrs, n, on_handed, hb, discard_hbatch);
}

static void send_message(struct rcpt *r)
{
    struct jobrun *jr = r->jr;
    struct queue *q = jr->q;
    int ch = r->dec.channel;
    const struct job_content *c = &jr->job.content[ch];
    links_build(&r->unsub, &r->prefs, q->cfg->public_url, q->cfg->link_secret, q->cfg->link_ttl_ms / 1000,
                time(NULL), r->id, jr->job.id, jr->job.topic, herald_channel_name(ch));
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
    r->msg.expires_at = jr->job.expires_at;
    idempotency_key(jr, r);
    r->msg.idempotency_key = r->idem;
    dispatch_submit(q->d, &r->msg, on_sent, r);
}

/* Someone else's record met at reservation time (or at lookup). */
static bool is_own_leftover(const struct jobrun *jr, const struct store_record *rec)
{
    return strcmp(rec->entry, jr->rec_entry) == 0;
}

static void batch_lookup(struct jobrun *jr, char **ids, size_t n, bool relookup);

/* Recipients in one reservation script. */
struct rbatch {
    struct jobrun *jr;
    struct rcpt **r;
    struct store_job_reservation *res; /* r[i]'s reservation */
    size_t n;
};

static void rbatch_free(struct rbatch *rb)
{
    free(rb->r);
    free(rb->res);
    free(rb);
}

static void discard_rbatch(void *arg)
{
    struct rbatch *rb = arg;
    for (size_t i = 0; i < rb->n; i++) rcpt_free(rb->r[i]);
    rbatch_free(rb);
}

static void reserve(struct rbatch *rb, int64_t now);

/* How many ready recipients to reserve now: 0 unless dispatch has room
 * for a chunk of them (a script for every freed slot would cost more than
 * the reservations themselves), or for all that wait, or is idle. */
static size_t ready_room(const struct queue *q)
{
    if (!q->ready_head) return 0;
    size_t busy = dispatch_in_flight(q->d) + q->reserving;
    size_t room = q->ready_target > busy ? q->ready_target - busy : 0;
    if (room > QUEUE_RESERVE_MAX) room = QUEUE_RESERVE_MAX;
    if (room >= q->ready_target / 4 || q->nready <= room || busy == 0) return room;
    return 0;
}

/* Starts the reservation step when it has something to do. */
static void ready_kick(struct queue *q)
{
    if (q->ready_head && (run_ended(q->ready_head->jr) || ready_room(q)))
        uv_idle_start(&q->ready_idle, on_ready_idle);
}

/* Reserves the next recipients the policy let through, as many as
 * dispatch has room for (and at most QUEUE_RESERVE_MAX in one script). */
static void on_ready_idle(uv_idle_t *h)
{
    struct queue *q = h->data;
    if (q->ready_head && run_ended(q->ready_head->jr)) {
        while (q->ready_head) {
            struct rcpt *r = q->ready_head;
            q->ready_head = r->next_ready;
            if (!q->ready_head) q->ready_tail = NULL;
            q->nready--;
            rcpt_unfinished(r); /* not reserved yet: the next run decides it */
        }
        uv_idle_stop(h);
        return;
    }
    size_t room = ready_room(q);
    if (room) {
        struct rbatch *rb = xcalloc(1, sizeof(*rb));
        rb->jr = q->ready_head->jr;
        rb->r = xcalloc(room, sizeof(*rb->r));
        while (q->ready_head && rb->n < room) {
            struct rcpt *r = q->ready_head;
            q->ready_head = r->next_ready;
            if (!q->ready_head) q->ready_tail = NULL;
            q->nready--;
            rb->r[rb->n++] = r;
        }
        q->reserving += rb->n;
        reserve(rb, time(NULL));
        return; /* the next tick sees the room that is left */
    }
    /* Empty, or dispatch is full: a finished message or an answered
     * reservation starts us again. */
    uv_idle_stop(h);
}

static void ready_push(struct queue *q, struct rcpt *r)
{
    r->next_ready = NULL;
    if (q->ready_tail) q->ready_tail->next_ready = r;
    else q->ready_head = r;
    q->ready_tail = r;
    q->nready++;
    ready_kick(q);
}

/* One recipient's verdict from the reservation. Returns 1 when it is
 * reserved (the caller hands it over), 2 when the person's data changed
 * since the lookup (the caller decides them again), 0 when it left. */
static int reserved_one(struct rcpt *r, const struct store_job_reservation *res)
{
    const char *detail = res->detail;
    switch (res->verdict) {
    case SJV_STALE: return 2;
    case SJV_OK: r->reserved = true; return 1;
    case SJV_DUPLICATE: {
        /* Our own record: our write, answered after a reconnect. */
        if (strcmp(detail, r->record.buf) == 0) {
            r->reserved = true;
            return 1;
        }
        struct store_record rec;
        if (store_record_parse(detail, &rec) == 0 && is_own_leftover(r->jr, &rec)) {
            rcpt_drop(r); /* this entry already handled the person (duplicate id in the source) */
            return 0;
        }
        finish(r, HERALD_OUTCOME_SUPPRESSED, HERALD_REASON_DUPLICATE, r->dec.channel, NULL, NULL);
        return 0;
    }
    case SJV_CAP:
        herald_copy(r->cap, sizeof(r->cap), detail);
        finish(r, HERALD_OUTCOME_SUPPRESSED, HERALD_REASON_CAP, r->dec.channel, NULL, NULL);
        return 0;
    case SJV_USER_FREQUENCY:
        finish(r, HERALD_OUTCOME_SUPPRESSED, HERALD_REASON_USER_FREQUENCY, r->dec.channel, NULL, NULL);
        return 0;
    }
    return 0;
}

static void on_reserved(const struct store_job_result *res, void *arg)
{
    struct rbatch *rb = arg;
    struct jobrun *jr = rb->jr;
    struct queue *q = jr->q;
    if (res->status != STORE_JOB_OK) {
        /* Nothing is decided from it: the recipients leave unfinished (a
         * reservation the script may have made before failing is taken
         * over by the next run, which sees it was never handed). */
        if (res->status == STORE_JOB_LOST) run_lost(jr, "the reservation was refused by the fence");
        else run_hold(jr, res->err, res->text, "the reservation");
        q->reserving -= rb->n;
        for (size_t i = 0; i < rb->n; i++) rcpt_unfinished(rb->r[i]);
        rbatch_free(rb);
        ready_kick(q);
        return;
    }
    /* Decided on data that changed since: look them up again. The new
     * lookup is counted before the old recipients leave, so the job cannot
     * look finished in between. */
    run_pin(jr);
    char **stale = xcalloc(rb->n, sizeof(char *));
    struct rcpt **gone = xcalloc(rb->n, sizeof(struct rcpt *));
    size_t nstale = 0, nres = 0;
    for (size_t i = 0; i < rb->n; i++) {
        struct rcpt *r = rb->r[i];
        int v = reserved_one(r, &rb->res[i]);
        if (v == 2) {
            stale[nstale] = xstrdup(r->id);
            gone[nstale++] = r;
        } else if (v == 1) {
            rb->r[nres++] = r; /* kept in rb, in order, for the handoff */
        }
    }
    q->reserving -= rb->n;
    rb->n = nres;
    if (nstale) {
        log_debug("queue", "decided again after a change campaign=%s recipients=%zu", jr->job.id, nstale);
        if (run_ended(jr)) {
            for (size_t i = 0; i < nstale; i++) free(stale[i]);
            for (size_t i = 0; i < nstale; i++) rcpt_unfinished(gone[i]);
        } else {
            batch_lookup(jr, stale, nstale, true);
            for (size_t i = 0; i < nstale; i++) rcpt_drop(gone[i]);
        }
    }
    free(stale);
    free(gone);
    /* Rendered and handed to dispatch; the handoff gate (on_handoff)
     * records "handed" just before each one's first request. */
    for (size_t i = 0; i < rb->n; i++) {
        if (run_ended(jr)) release(rb->r[i]);
        else send_message(rb->r[i]);
    }
    rbatch_free(rb);
    ready_kick(q);
    run_unpin(jr);
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

/* Sends one reservation for the recipients of a batch that the
 * policy let through; takes rb. */
static void reserve(struct rbatch *rb, int64_t now)
{
    struct jobrun *jr = rb->jr;
    struct queue *q = jr->q;
    struct store_job_reservation **items = xcalloc(rb->n ? rb->n : 1, sizeof(*items));
    rb->res = xcalloc(rb->n ? rb->n : 1, sizeof(*rb->res));
    for (size_t i = 0; i < rb->n; i++) {
        struct rcpt *r = rb->r[i];
        struct store_job_reservation *it = &rb->res[i];
        const char *chan = herald_channel_name(r->dec.channel);
        it->nfreq = user_limits(&r->p, it->fchan, it->flim, it->fwin, STORE_JOB_FREQ_MAX);
        it->keep = q->cap_keep_s;
        for (size_t j = 0; j < it->nfreq; j++)
            if (it->fwin[j] > it->keep) it->keep = it->fwin[j];
        /* The sequence number makes each reservation unique, so that a
         * second copy of an id in the same batch is a duplicate, and only
         * a retried command meets its own record. */
        store_record_format(&r->record, REC_RESERVED, jr->rec_entry, jr->run, now);
        strbuf_add(&r->record, " ", 1);
        strbuf_addll(&r->record, (long long)++q->reserve_seq);
        strbuf_reset(&r->member);
        const char *mparts[] = {chan, "|", jr->job.topic, "|", jr->job.id};
        for (size_t j = 0; j < sizeof(mparts) / sizeof(mparts[0]); j++) strbuf_adds(&r->member, mparts[j]);
        it->id = r->id;
        it->rev = r->rev;
        it->record = r->record.buf;
        it->prior = r->prior.len ? r->prior.buf : "";
        it->channel = chan;
        it->member = r->member.buf;
        items[i] = it;
    }
    q->ops->reserve(q->st, jr->entry, now, jr->job.id, jr->job.topic, items, rb->n, on_reserved, rb,
                      discard_rbatch);
    free(items);
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

/* Decides r. Returns true when the policy lets the message through and it
 * now needs its reservation; otherwise r got its outcome (or left). */
static bool decide_one(struct rcpt *r)
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
    bool takeover = false;
    if (r->has_rec && is_own_leftover(jr, &r->rec)) {
        /* A record this job entry wrote: another copy of the id in this
         * run holds it, an earlier run finished it, or an earlier run
         * ended (crash, stop, hold, takeover) before its outcome. */
        bool this_run = strcmp(r->rec.run, jr->run) == 0;
        switch (r->rec.state) {
        case REC_DEFERRED: /* its quiet hours are over: decide again */
            r->was_deferred = true;
            r->has_rec = false;
            break;
        case REC_RESERVED:
            if (this_run) {
                rcpt_drop(r);
                return false;
            }
            /* Reserved by a run that ended before handing it to a
             * provider: it was never sent. This run takes it over. */
            takeover = true;
            r->has_rec = false;
            break;
        case REC_PENDING:
            if (this_run) {
                rcpt_drop(r);
                return false;
            }
            /* Handed to a provider by a run that died before recording the
             * result: it may or may not have arrived. Never resend. */
            finish(r, HERALD_OUTCOME_UNKNOWN, HERALD_REASON_INTERRUPTED, -1, NULL, NULL);
            return false;
        default:
            rcpt_drop(r); /* already has its outcome from this job entry */
            return false;
        }
    }
    if (!takeover) strbuf_reset(&r->prior);
    if (r->has_rec)
        in.already_reached = r->rec.state == REC_RESERVED || r->rec.state == REC_PENDING ||
                             r->rec.state == REC_SENT || r->rec.state == REC_UNKNOWN;
    memcpy(in.suppressed, r->suppressed, sizeof(in.suppressed));
    policy_decide(&in, &r->dec);
    if (r->dec.outcome == HERALD_OUTCOME_DEFERRED) defer(jr, r->id, r->dec.until);
    if (r->dec.outcome != HERALD_OUTCOME_SENT) {
        finish(r, r->dec.outcome, r->dec.reason, r->dec.channel, NULL, NULL);
        return false;
    }
    if (run_ended(jr)) {
        rcpt_unfinished(r); /* not reserved yet: the next run decides it */
        return false;
    }
    return true;
}

/* ---- batches --------------------------------------------------------- */

/* Recipients the policy lets through wait in the ready queue and are
 * reserved just before dispatch has room for them: the reservation checks
 * that the person's data did not change since the lookup, so a change of
 * mind applies to every message not yet handed to a provider, save the few
 * (at most four times the providers' concurrency) already in their queues. */
static void batch_decide(struct batch *b)
{
    struct jobrun *jr = b->jr;
    run_pin(jr);
    /* decide_one may free recipients; the batch is done with them after. */
    for (size_t i = 0; i < b->n; i++)
        if (decide_one(b->r[i])) ready_push(jr->q, b->r[i]);
    if (!b->relookup) jr->loading = false;
    free(b->r);
    free(b->look);
    free(b);
    run_unpin(jr);
}

/* A batch whose lookup was refused: nothing is decided from it; its
 * recipients leave unfinished and the run is held. */
static void batch_refused(struct batch *b, enum store_error err, const char *text, const char *what)
{
    struct jobrun *jr = b->jr;
    run_pin(jr);
    run_hold(jr, err, text, what);
    if (!b->relookup) jr->loading = false;
    for (size_t i = 0; i < b->n; i++) rcpt_unfinished(b->r[i]);
    free(b->r);
    free(b->look);
    free(b);
    run_unpin(jr);
}

static void on_suppressed(const struct store_job_result *res, void *arg)
{
    struct batch *b = arg;
    if (res->status != STORE_JOB_OK) {
        /* Without the list no address can be shown to be clean, and none
         * is called suppressed on no evidence: decide nothing. */
        batch_refused(b, res->err, res->text, "the suppression check");
        return;
    }
    batch_decide(b);
}

static void batch_check_suppression(struct batch *b)
{
    struct queue *q = b->jr->q;
    const char **addrs = xcalloc((b->n ? b->n : 1) * HERALD_CH_COUNT, sizeof(*addrs));
    bool(**out)[HERALD_CH_COUNT] = xcalloc(b->n ? b->n : 1, sizeof(*out));
    for (size_t i = 0; i < b->n; i++) {
        struct rcpt *r = b->r[i];
        out[i] = &r->suppressed;
        for (int ch = 0; ch < HERALD_CH_COUNT; ch++)
            addrs[i * HERALD_CH_COUNT + (size_t)ch] = r->found > 0 ? profile_address(&r->p, ch) : NULL;
    }
    if (store_job_any_address(addrs, b->n))
        q->ops->suppressed(q->st, addrs, (bool(*const *)[HERALD_CH_COUNT])out, b->n, on_suppressed, b,
                             discard_batch);
    else
        batch_decide(b);
    free(addrs);
    free(out);
}

static void on_lookup(const struct store_job_result *res, void *arg)
{
    struct batch *b = arg;
    if (res->status != STORE_JOB_OK) {
        /* A failed read is no "unknown recipient": decide nothing. */
        batch_refused(b, res->err, res->text, "the profile lookup");
        return;
    }
    size_t k = 0;
    for (size_t i = 0; i < b->n; i++) {
        struct rcpt *r = b->r[i];
        if (!r->valid_id) continue;
        /* The record's text is in r->prior, in case this run takes it over. */
        const struct store_job_person *row = &b->look[k++];
        r->found = row->found;
        if (r->found < 0) /* treated as no profile; said once per person */
            log_warn("queue", "stored profile unreadable recipient=%s: invalid JSON or fields", r->id);
        herald_copy(r->rev, sizeof(r->rev), row->rev);
        r->has_rec = row->has_rec;
        r->rec = row->rec;
    }
    batch_check_suppression(b);
}

/* What logs and audit records call an entry of the recipient list that is
 * no valid id: it may be anything, an address included, so never itself.
 * "invalid-id:" and the first 16 hex digits of its SHA-256 tell entries
 * apart and let an operator find one they suspect. Takes raw. */
static char *invalid_id_standin(char *raw)
{
    unsigned char md[DIGEST_SHA256_LEN];
    char hex[2 * DIGEST_SHA256_LEN + 1];
    digest_sha256(raw, strlen(raw), md);
    digest_hex(hex, md, 8);
    free(raw);
    struct strbuf sb;
    strbuf_init(&sb);
    strbuf_adds(&sb, "invalid-id:");
    strbuf_adds(&sb, hex);
    return strbuf_detach(&sb, NULL);
}

/* Looks up a batch of ids (taking the strings; not ids itself). A
 * relookup decides again recipients whose data changed: it runs beside
 * the batch being loaded and leaves jr->loading alone. */
static void batch_lookup(struct jobrun *jr, char **ids, size_t n, bool relookup)
{
    struct queue *q = jr->q;
    struct batch *b = xcalloc(1, sizeof(*b));
    b->jr = jr;
    b->relookup = relookup;
    b->r = xcalloc(n ? n : 1, sizeof(*b->r));
    size_t nvalid = 0;
    for (size_t i = 0; i < n; i++) {
        struct rcpt *r = xcalloc(1, sizeof(*r));
        r->jr = jr;
        r->valid_id = herald_id_valid(ids[i]);
        r->id = r->valid_id ? ids[i] : invalid_id_standin(ids[i]);
        nvalid += r->valid_id; /* no person can exist under an invalid id */
        strbuf_init(&r->record);
        strbuf_init(&r->member);
        strbuf_init(&r->unsub);
        strbuf_init(&r->prefs);
        strbuf_init(&r->prior);
        b->r[b->n++] = r;
        jr->outstanding++;
    }
    if (nvalid == 0) {
        batch_check_suppression(b);
        return;
    }
    struct store_job_person **rows = xcalloc(nvalid, sizeof(*rows));
    b->look = xcalloc(nvalid, sizeof(*b->look));
    size_t k = 0;
    for (size_t i = 0; i < b->n; i++) {
        struct rcpt *r = b->r[i];
        if (!r->valid_id) continue;
        struct store_job_person *row = &b->look[k];
        row->id = r->id;
        row->p = &r->p;
        row->raw_rec = &r->prior;
        rows[k++] = row;
    }
    q->ops->lookup(q->st, jr->job.id, rows, nvalid, on_lookup, b, discard_batch);
    free(rows);
}

/* ---- recipient sources ----------------------------------------------- */

static void on_page(const struct store_job_result *res, void *arg)
{
    struct jobrun *jr = arg;
    struct store_page *pg = &jr->page;
    if (res->status != STORE_JOB_OK) {
        /* Never "no more recipients" on a failed read: the job is held. */
        run_hold(jr, res->err, res->text, "reading the recipients");
        jr->loading = false;
        maybe_more(jr);
        return;
    }
    if (pg->done) jr->src_done = true;
    if (jr->src == SRC_LIST) jr->list_pos += (long)pg->n;
    else herald_copy(jr->cursor, sizeof(jr->cursor), pg->cursor);
    char **ids = pg->ids;
    size_t n = pg->n;
    pg->ids = NULL;
    if (n == 0) {
        free(ids);
        jr->loading = false;
        maybe_more(jr);
        return;
    }
    batch_lookup(jr, ids, n, false);
    free(ids);
}

static void load_batch(struct jobrun *jr)
{
    struct queue *q = jr->q;
    jr->loading = true;
    if (jr->src == SRC_INLINE) {
        size_t n = jr->job.nrecipients - jr->inline_pos;
        if ((int64_t)n > q->cfg->batch) n = (size_t)q->cfg->batch;
        char **ids = xcalloc(n ? n : 1, sizeof(char *));
        for (size_t i = 0; i < n; i++) ids[i] = xstrdup(jr->job.recipients[jr->inline_pos + i]);
        jr->inline_pos += n;
        if (jr->inline_pos >= jr->job.nrecipients) jr->src_done = true;
        batch_lookup(jr, ids, n, false);
        free(ids);
        return;
    }
    static const enum store_source kinds[] = {[SRC_SET] = STORE_SRC_SET, [SRC_ZSET] = STORE_SRC_ZSET,
                                              [SRC_LIST] = STORE_SRC_LIST};
    q->ops->source_page(q->st, kinds[jr->src], jr->src_key, jr->cursor, jr->list_pos, (long)q->cfg->batch,
                          &jr->page, on_page, jr, NULL);
}

/* ---- job life -------------------------------------------------------- */

static void jobrun_free(struct jobrun *jr)
{
    for (size_t i = 0; i < jr->ndeferrals; i++) json_decref(jr->deferrals[i].ids);
    free(jr->deferrals);
    store_outcomes_free(&jr->fin);
    job_free(&jr->job);
    free(jr->text);
    free(jr->src_key);
    free(jr);
}

static void on_acked(const struct store_job_result *res, void *arg)
{
    struct queue *q = arg;
    (void)res;
    q->counters.jobs_done++;
    read_next(q);
}

static void on_parked(const struct store_job_result *res, void *arg)
{
    struct jobrun *jr = arg;
    (void)res;
    jr->writes--;
    maybe_more(jr);
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
    if (json_array_size(d->ids) == 0 || jr->end == RUN_LOST) return;
    json_t *o = json_loads(jr->text, 0, NULL);
    if (!o) return; /* it parsed once; cannot happen */
    char when[32];
    herald_time_format(d->until, when, sizeof(when));
    json_object_del(o, "recipients_key");
    json_object_set(o, "recipients", d->ids);
    json_object_set_new(o, "not_before", json_string(when));
    char *text = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    char from[80];
    snprintf(from, sizeof(from), "%s|d", jr->rec_entry);
    jr->writes++;
    q->ops->park(q->st, d->until, from, text, on_parked, jr);
    log_info("queue", "deferred campaign=%s recipients=%zu until=%s", jr->job.id, json_array_size(d->ids), when);
    free(text);
    json_array_clear(d->ids);
}

static void park_deferrals(struct jobrun *jr)
{
    jr->deferrals_parked = true;
    for (size_t i = 0; i < jr->ndeferrals; i++) park_one(jr, &jr->deferrals[i]);
}

static void on_hold_over(uv_timer_t *t)
{
    struct queue *q = t->data;
    q->own_pending_done = false; /* the held entry is among our own pending ones */
    read_next(q);
}

/* Every recipient that entered the run left it. Only a run that gave each
 * one its outcome (or parked it for its quiet hours) acknowledges the job:
 * one that stopped, was held or lost leaves it pending, and the next run
 * decides what is left. */
static void job_complete(struct jobrun *jr)
{
    struct queue *q = jr->q;
    bool finished = jr->src_done && jr->started && jr->end == RUN_ON && jr->unfinished == 0;
    if (finished && !jr->deferrals_parked && jr->ndeferrals) {
        park_deferrals(jr);
        if (jr->writes) return; /* their answers bring us back here */
    }
    q->jr = NULL;
    uv_timer_stop(&q->heartbeat);
    if (finished) {
        log_info("queue", "job done campaign=%s entry=%s missing_fields=%u", jr->job.id, jr->entry,
                 jr->missing_fields);
        q->held_entry[0] = '\0';
        q->hold_ms = 0;
        q->ops->finished(q->st, jr->job.id, jr->entry, "done", on_acked, q);
    } else if (jr->end == RUN_HELD) {
        q->hold_ms = q->hold_ms ? (2 * q->hold_ms > QUEUE_HOLD_MAX_MS ? QUEUE_HOLD_MAX_MS : 2 * q->hold_ms)
                                : QUEUE_HOLD_MIN_MS;
        log_info("queue", "job held campaign=%s entry=%s unfinished=%zu: tried again in %llds", jr->job.id,
                 jr->entry, jr->unfinished, (long long)(q->hold_ms / 1000));
        uv_timer_start(&q->hold_timer, on_hold_over, (uint64_t)q->hold_ms, 0);
    } else if (jr->end == RUN_LOST) {
        log_info("queue", "job left to its new owner campaign=%s entry=%s", jr->job.id, jr->entry);
        read_next(q);
    } else {
        log_info("queue", "job paused campaign=%s entry=%s unfinished=%zu (it stays pending and resumes on restart)",
                 jr->job.id, jr->entry, jr->unfinished);
    }
    jobrun_free(jr);
    check_drained(q);
}

static void maybe_more(struct jobrun *jr)
{
    struct queue *q = jr->q;
    if (jr->loading) return;
    bool stop = run_ended(jr) || jr->src_done;
    if (!stop && (int64_t)(jr->outstanding + (size_t)q->cfg->batch) <= q->cfg->max_in_flight) {
        load_batch(jr);
        return;
    }
    if (stop && jr->outstanding == 0 && jr->writes == 0) job_complete(jr);
}

static void dead_letter(struct queue *q, const char *entry, const char *text, const char *error);

/* What recipients_key holds, and how many: the job's total. */
static void on_source_open(const struct store_job_result *res, void *arg)
{
    struct jobrun *jr = arg;
    struct queue *q = jr->q;
    jr->loading = false; /* set while TYPE and the count were pending */
    if (res->status != STORE_JOB_OK || run_ended(jr)) {
        if (!run_ended(jr)) run_hold(jr, res->err, res->text, "reading recipients_key");
        maybe_more(jr);
        return;
    }
    if (!jr->info.found) {
        char msg[256];
        if (strcmp(jr->info.type, "none") == 0)
            snprintf(msg, sizeof(msg), "recipients_key: the key does not exist");
        else
            snprintf(msg, sizeof(msg), "recipients_key: the key is a %.32s; expected a set, zset or list",
                     jr->info.type);
        q->jr = NULL;
        uv_timer_stop(&q->heartbeat);
        dead_letter(q, jr->entry, jr->text, msg);
        jobrun_free(jr);
        return;
    }
    jr->src = jr->info.kind == STORE_SRC_SET ? SRC_SET : jr->info.kind == STORE_SRC_ZSET ? SRC_ZSET : SRC_LIST;
    q->ops->total(q->st, jr->job.id, jr->entry, jr->info.count);
    jr->started = true;
    maybe_more(jr);
}

/* The heartbeat's answer, for the entry it was sent for. */
struct beat {
    struct queue *q;
    char entry[64];
};

static void on_beat(const struct store_job_result *res, void *arg)
{
    struct beat *b = arg;
    struct jobrun *jr = b->q->jr;
    if (jr && strcmp(jr->entry, b->entry) == 0 && res->status == STORE_JOB_LOST)
        run_lost(jr, "another consumer owns the entry now, or it is no longer pending");
    free(b);
}

static void on_heartbeat(uv_timer_t *t)
{
    struct queue *q = t->data;
    if (!q->jr || q->jr->end == RUN_LOST || !q->ops->ready(q->st, false)) return;
    /* Keeps the entry's idle time low so that no other consumer claims a
     * job we are still working on, and learns when one did (never taking
     * it back: lua/heartbeat.lua). */
    struct beat *b = xmalloc(sizeof(*b));
    b->q = q;
    herald_copy(b->entry, sizeof(b->entry), q->jr->entry);
    q->ops->heartbeat(q->st, b->entry, on_beat, b, free);
}

static void on_dead_acked(const struct store_job_result *res, void *arg)
{
    struct queue *q = arg;
    (void)res;
    q->counters.jobs_refused++;
    read_next(q);
}

/* The job goes to herald:dead with its error, then is acknowledged: the
 * acknowledgement waits for the dead letter to be stored. */
static void dead_letter(struct queue *q, const char *entry, const char *text, const char *error)
{
    /* The error may quote job text; the log line carries the entry id only. */
    log_warn("queue", "job refused entry=%s (reason in the dead-letter stream)", entry);
    q->ops->dead_letter(q->st, entry, text, error, on_dead_acked, q);
}

/* A job for later is parked in Redis (not in memory), so that it survives
 * restarts and does not hold up the jobs behind it: parked, its state
 * "scheduled", then acknowledged, each once the one before landed. */
static void schedule_job(struct queue *q, struct jobrun *jr)
{
    char when[32], from[80];
    herald_time_format(jr->job.not_before, when, sizeof(when));
    snprintf(from, sizeof(from), "%s%s", jr->rec_entry, jr->resumed ? "|d" : "");
    log_info("queue", "job scheduled campaign=%s entry=%s not_before=%s", jr->job.id, jr->entry, when);
    q->ops->schedule(q->st, jr->job.id, jr->entry, jr->job.not_before, from, jr->text, on_acked, q);
    jobrun_free(jr);
}

static void on_released_due(const struct store_job_result *res, void *arg)
{
    struct queue *q = arg;
    q->releasing = false;
    if (res->status == STORE_JOB_OK && q->released_due > 0)
        log_info("queue", "released %lld scheduled job(s)", q->released_due);
}

static void on_release_timer(uv_timer_t *t)
{
    struct queue *q = t->data;
    if (q->releasing || q->stopping || !q->ops->ready(q->st, false)) return;
    q->releasing = true;
    q->ops->release_due(q->st, time(NULL), 16, &q->released_due, on_released_due, q);
}

static void start_job(struct queue *q, const char *entry, const char *text, size_t len,
                      const char *held_from)
{
    char err[512];
    struct jobrun *jr = xcalloc(1, sizeof(*jr));
    jr->q = q;
    store_outcomes_init(&jr->fin, q->cfg->prefix);
    herald_copy(jr->entry, sizeof(jr->entry), entry);
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
    herald_copy(jr->rec_entry, sizeof(jr->rec_entry), entry);
    /* Each run has a name of its own, so that a later run of the same job
     * in this process (after a hold) tells its records from this one's. */
    snprintf(jr->run, sizeof(jr->run), "%s.%llu", q->run_id, (unsigned long long)++q->run_seq);
    if (held_from) {
        /* "<entry>" for a job held until not_before, "<entry>|d" for
         * recipients deferred by that entry: records keep naming it. */
        size_t n = strcspn(held_from, "|");
        snprintf(jr->rec_entry, sizeof(jr->rec_entry), "%.*s", (int)n, held_from);
        jr->resumed = strcmp(held_from + n, "|d") == 0;
        if (!jr->resumed) q->ops->state_del(q->st, jr->job.id, jr->rec_entry);
    }
    if (jr->job.not_before > time(NULL)) {
        schedule_job(q, jr);
        return;
    }
    q->jr = jr;
    log_info("queue", "job started campaign=%s entry=%s run=%s", jr->job.id, entry, jr->run);
    q->ops->state(q->st, jr->job.id, entry, "running");
    uint64_t hb = (uint64_t)(q->cfg->claim_idle_ms / 3 > 0 ? q->cfg->claim_idle_ms / 3 : 1000);
    uv_timer_start(&q->heartbeat, on_heartbeat, hb, hb);
    if (jr->job.recipients_key) {
        jr->src_key = xstrdup(jr->job.recipients_key);
        snprintf(jr->cursor, sizeof(jr->cursor), "0");
        jr->loading = true; /* until TYPE and the count answer */
        q->ops->source_open(q->st, jr->src_key, &jr->info, on_source_open, jr, NULL);
        return;
    }
    jr->src = SRC_INLINE;
    if (!jr->resumed) q->ops->total(q->st, jr->job.id, entry, (long long)jr->job.nrecipients);
    jr->started = true;
    maybe_more(jr);
}

/* ---- reading the stream ---------------------------------------------- */

static void on_read(const struct store_read_result *res, void *arg)
{
    struct queue *q = arg;
    enum store_read_mode mode = q->read_mode;
    q->reading = false;
    switch (res->status) {
    case STORE_READ_CLOSED:
        return; /* queue_connected() reads again */
    case STORE_READ_NOGROUP:
        q->group_ready = false; /* the stream was deleted: create it again */
        read_next(q);
        return;
    case STORE_READ_FAILED:
        log_complain(&q->read_complaint, "queue", "reading jobs failed (%s): %.120s", store_error_name(res->err),
                     res->text ? res->text : "");
        uv_timer_start(&q->retry, on_retry, mode == STORE_READ_GROUP ? 5000 : 1000, 0);
        return;
    case STORE_READ_NONE:
        log_recovered(&q->read_complaint, "queue", "reading jobs works again");
        if (mode == STORE_READ_GROUP) q->group_ready = true;
        /* Our own pending entries are read until none is left. */
        if (mode == STORE_READ_OWN) q->own_pending_done = true;
        read_next(q);
        return;
    case STORE_READ_DELETED:
        /* Deleted from the stream while pending: nothing to do but ack
         * (and read on: more of our own may be pending). */
        q->ops->ack(q->st, res->id);
        read_next(q);
        return;
    case STORE_READ_ENTRY:
        log_recovered(&q->read_complaint, "queue", "reading jobs works again");
        start_job(q, res->id, res->job, res->job_len, res->held_from);
        if (mode == STORE_READ_CLAIM && q->jr)
            log_info("queue", "took over a job left by another consumer entry=%s", q->jr->entry);
        /* A job refused or scheduled reads the next one once its
         * acknowledgement landed (never before: read again, our own
         * pending entry would come back). */
        return;
    }
}

static void on_retry(uv_timer_t *t)
{
    read_next(t->data);
}

static void read_next(struct queue *q)
{
    if (q->stopping || q->jr || q->reading || !q->ops->ready(q->st, true) || uv_is_active((uv_handle_t *)&q->hold_timer)) {
        check_drained(q);
        return;
    }
    enum store_read_mode mode = STORE_READ_NEW;
    if (!q->group_ready) {
        mode = STORE_READ_GROUP;
    } else if (!q->own_pending_done) {
        mode = STORE_READ_OWN;
    } else if (uv_now(q->loop) - q->last_claim_ms >= (uint64_t)q->cfg->claim_idle_ms / 2) {
        q->last_claim_ms = uv_now(q->loop);
        mode = STORE_READ_CLAIM;
    }
    q->read_mode = mode;
    q->reading = true;
    if (q->ops->read(q->st, mode, QUEUE_BLOCK_MS, q->cfg->claim_idle_ms, on_read, q) < 0)
        q->reading = false;
}

/* ---- public ---------------------------------------------------------- */

struct queue *queue_new(uv_loop_t *loop, const struct config *cfg, const struct store_ops *ops, void *store,
                        struct dispatch *d, const char *consumer,
                        const char *run_id)
{
    struct queue *q = xcalloc(1, sizeof(*q));
    q->loop = loop;
    q->cfg = cfg;
    q->ops = ops;
    q->st = store;
    q->d = d;
    q->consumer = xstrdup(consumer);
    q->run_id = xstrdup(run_id);
    strbuf_init(&q->scratch);
    q->tzdb = tzdb_new(NULL);
    q->default_tz = tzdb_get(q->tzdb, cfg->default_tz);
    if (!q->default_tz) q->default_tz = tz_utc(); /* main refuses an unknown default_tz */
    for (int ch = 0; ch < HERALD_CH_COUNT; ch++) {
        if (cfg->quiet_start_min[ch] < 0) continue;
        q->quiet[ch] = (struct quiet_window){(int16_t)cfg->quiet_start_min[ch], (int16_t)cfg->quiet_end_min[ch]};
        q->quiet_ptr[ch] = &q->quiet[ch];
    }
    for (size_t i = 0; i < cfg->ncaps; i++) /* the history the caps need */
        if (cfg->caps[i].window_s > q->cap_keep_s) q->cap_keep_s = cfg->caps[i].window_s;
    uv_timer_init(loop, &q->heartbeat);
    uv_timer_init(loop, &q->retry);
    q->heartbeat.data = q;
    q->retry.data = q;
    uv_timer_init(loop, &q->release_timer);
    q->release_timer.data = q;
    uv_timer_start(&q->release_timer, on_release_timer, 1000, 1000);
    uv_check_init(loop, &q->flush_check);
    q->flush_check.data = q;
    uv_idle_init(loop, &q->ready_idle);
    q->ready_idle.data = q;
    q->ready_target = 0;
    for (size_t i = 0; i < cfg->nproviders; i++) q->ready_target += 4 * (size_t)cfg->providers[i].concurrency;
    if (q->ready_target < 32) q->ready_target = 32;
    uv_timer_init(loop, &q->hold_timer);
    q->hold_timer.data = q;
    q->handles_open = 6;
    q->last_claim_ms = 0;
    dispatch_set_handoff(d, on_handoff, q);
    q->held_error = STORE_E_COUNT;
    return q;
}

/* herald's marker key, set by the first daemon that reached this Redis.
 * Found gone after it was seen, it says that Redis came back empty (a
 * restart without persistence, a FLUSHALL): work in flight was lost with
 * it. Said once, and shown on /healthz and /metrics until the restart
 * of this daemon; the fence keeps the runs of that moment from writing. */
static void on_marker(const struct store_job_result *res, void *arg)
{
    struct queue *q = arg;
    if (res->status != STORE_JOB_OK) return;
    if (q->marker_absent && q->marker_seen && !q->emptied) {
        q->emptied = true;
        log_error("queue", "redis came back empty: herald's marker key is gone (no persistence, or a flush); "
                           "jobs, records and audit written before are lost");
    }
    q->marker_seen = true;
}

void queue_connected(struct queue *q, bool jobs)
{
    if (!jobs) {
        q->ops->marker(q->st, &q->marker_absent, on_marker, q);
        q->ops->connected(q->st);
    }
    if (jobs) {
        q->reading = false;
        /* After a loss, re-read our own pending entries first. */
        if (!q->jr) q->own_pending_done = false;
    }
    read_next(q);
}

static void check_drained(struct queue *q)
{
    if (!q->stopping || !q->drained) return;
    if (q->jr || !q->ops->idle(q->st) || dispatch_in_flight(q->d)) return;
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
    ready_kick(q); /* gives them back */
    if (q->jr) maybe_more(q->jr);
    check_drained(q);
}

void queue_counters(const struct queue *q, struct queue_counters *out)
{
    *out = q->counters;
    out->in_flight = q->jr ? q->jr->outstanding : 0;
    struct store_cmds_status st;
    q->ops->status(q->st, &st);
    out->backlog = st.backlog;
    out->redis_waiting = st.waiting && st.error != STORE_E_COUNT;
    out->redis_error = out->redis_waiting ? store_error_name(st.error) : NULL;
    out->redis_waiting_ms = out->redis_waiting ? (int64_t)uv_now(q->loop) - st.since_ms : 0;
    memcpy(out->redis_errors, st.errors, sizeof(out->redis_errors));
    out->held_error = q->held_entry[0] && q->held_error != STORE_E_COUNT ? store_error_name(q->held_error) : NULL;
    herald_copy(out->held_entry, sizeof(out->held_entry), q->held_entry);
    out->redis_emptied = q->emptied;
}

static void on_handle_closed(uv_handle_t *h)
{
    struct queue *q = h->data;
    if (--q->handles_open > 0) return;
    strbuf_free(&q->scratch);
    tzdb_free(q->tzdb);
    free(q->consumer);
    free(q->run_id);
    free(q);
}

void queue_free(struct queue *q)
{
    /* Whatever could not be written before the drain timeout is lost here;
     * the job stays pending in the stream and is redone from the records. */
    while (q->ready_head) {
        struct rcpt *r = q->ready_head;
        q->ready_head = r->next_ready;
        rcpt_free(r);
    }
    if (q->jr) {
        log_warn("queue", "stopping with campaign=%s unfinished (outstanding=%zu); it resumes on restart",
                 q->jr->job.id, q->jr->outstanding);
        /* Every Redis callback has fired and dispatch holds nothing (main
         * frees the queue only then): what references the job is gone. */
        jobrun_free(q->jr);
        q->jr = NULL;
    }
    uv_close((uv_handle_t *)&q->heartbeat, on_handle_closed);
    uv_close((uv_handle_t *)&q->retry, on_handle_closed);
    uv_close((uv_handle_t *)&q->release_timer, on_handle_closed);
    uv_close((uv_handle_t *)&q->flush_check, on_handle_closed);
    uv_close((uv_handle_t *)&q->ready_idle, on_handle_closed);
    uv_close((uv_handle_t *)&q->hold_timer, on_handle_closed);
}
