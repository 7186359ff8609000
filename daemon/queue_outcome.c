/*
 * queue_outcome.c - outcomes, written in batches.
 *
 * Owns the once-only record, history entry and audit fields of each outcome
 * and their batched write (at the end of a loop iteration, or at
 * QUEUE_FINISH_MAX). An outcome counts as a write of its run until the store
 * answered, so a job is never acknowledged before its outcomes are stored.
 * A run that lost its entry writes none. Each run writes its own outcomes
 * and handoffs, one write in flight per run.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "log.h"
#include "metrics.h"
#include "queue_int.h"


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

struct fin_flush {
    struct jobrun *jr;
    size_t n;               /* outcomes */
    struct hbatch *hb;      /* handoffs recorded in the same script */
    struct store_job_handoff **hand;
};

static void fin_flush_free(struct fin_flush *f)
{
    free(f->hand);
    free(f);
}

static void discard_fin_flush(void *arg)
{
    struct fin_flush *f = arg;
    while (f->hb) {
        struct hbatch *hb = f->hb;
        f->hb = hb->next;
        queue_hbatch_discard(hb);
    }
    fin_flush_free(f);
}

/* Answers every handoff of the list with res. */
static void answer_handoffs(struct hbatch *hb, const struct store_job_result *res)
{
    while (hb) {
        struct hbatch *next = hb->next;
        queue_hbatch_answer(hb, res);
        hb = next;
    }
}

static void finish_flush(struct jobrun *jr);

static void on_finish_flushed(const struct store_job_result *res, void *arg)
{
    struct fin_flush *f = arg;
    struct jobrun *jr = f->jr;
    queue_run_pin(jr);
    jr->flushing--;
    if (res->status == STORE_JOB_LOST) {
        queue_run_lost(jr, "outcomes refused by the fence");
    } else if (res->status != STORE_JOB_OK) {
        /* Whether they landed is unknown: the job is not acknowledged, and
         * the next run reads what the records say. */
        jr->unfinished += f->n;
        queue_run_hold(jr, res->err, res->text, "writing outcomes");
    }
    jr->writes -= f->n;
    struct hbatch *hb = f->hb;
    fin_flush_free(f);
    answer_handoffs(hb, res);
    /* What gathered meanwhile goes now, in one write. */
    if (jr->fin.n || jr->hpending) finish_flush(jr);
    queue_run_unpin(jr);
}

/* Sends the buffered outcomes of jr and the handoffs waiting at the gate
 * as one finishing write. A lost run writes nothing: its outcomes are
 * dropped here (the new owner decides those recipients again) and its
 * handoffs refused. */
static void finish_flush(struct jobrun *jr)
{
    struct queue *q = jr->q;
    struct hbatch *hb = jr->hpending;
    if (jr->fin.n == 0 && !hb) return;
    /* One write in flight at a time (unless QUEUE_FINISH_MAX outcomes
     * wait): what gathers meanwhile goes with the next, so the busier the
     * loop the larger each write, and Redis and the loop do per-write work
     * less often. The answer of the write in flight sends it. */
    if (jr->flushing && jr->fin.n < QUEUE_FINISH_MAX && jr->end != RUN_LOST) return;
    jr->hpending = jr->hpending_tail = NULL;
    if (jr->end == RUN_LOST) {
        jr->writes -= jr->fin.n;
        store_outcomes_free(&jr->fin);
        store_outcomes_init(&jr->fin, q->cfg->prefix);
        queue_run_pin(jr);
        answer_handoffs(hb, &(struct store_job_result){.status = STORE_JOB_LOST});
        queue_run_unpin(jr);
        return;
    }
    struct fin_flush *f = xcalloc(1, sizeof(*f));
    f->jr = jr;
    f->n = jr->fin.n;
    f->hb = hb;
    size_t nhand = 0;
    for (struct hbatch *h = hb; h; h = h->next) nhand += h->n;
    f->hand = xmalloc((nhand ? nhand : 1) * sizeof(*f->hand));
    jr->flushing++;
    nhand = 0;
    for (struct hbatch *h = hb; h; h = h->next)
        for (size_t i = 0; i < h->n; i++)
            if (h->msgs[i]) f->hand[nhand++] = &h->items[i]; /* not those finished meanwhile */
    q->ops->finish(q->st, jr->entry, jr->job.id, jr->rec_entry, &jr->fin, f->hand, nhand, on_finish_flushed, f,
                   discard_fin_flush);
}

/* Outcomes and handoffs are written in batches: at the end of each loop
 * iteration (a uv_check), or sooner when QUEUE_FINISH_MAX outcomes are
 * waiting. Outcomes count as writes of the job until Redis answered, so the
 * job is never acknowledged before they are stored; the messages at the
 * gate wait for the same answer. */
void queue_on_flush_check(uv_check_t *h)
{
    struct queue *q = h->data;
    /* This iteration's arrivals at the gate join this write (their
     * callback, queue_on_handoff, fires now). */
    dispatch_gate_now(q->d);
    uv_check_stop(h);
    uv_idle_stop(&q->flush_wake);
    /* Each run writes its own (under its own fence). */
    struct jobrun **v;
    size_t n = queue_jobs_pinned(q, &v);
    for (size_t i = 0; i < n; i++) finish_flush(v[i]);
    for (size_t i = 0; i < n; i++) queue_run_unpin(v[i]);
    free(v);
}

void queue_on_flush_wake(uv_idle_t *h) { uv_idle_stop(h); }

/* The provider's `feedback = on` (a handful of providers: a short walk). */
static bool provider_feedback(const struct config *cfg, const char *provider)
{
    for (size_t i = 0; i < cfg->nproviders; i++)
        if (cfg->providers[i].feedback && strcmp(cfg->providers[i].name, provider) == 0) return true;
    return false;
}

void queue_finish(struct rcpt *r, enum herald_outcome outcome, enum herald_reason reason, int channel,
                   const char *provider, const char *provider_id)
{
    struct jobrun *jr = r->jr;
    struct queue *q = jr->q;
    if (jr->end == RUN_LOST) { /* its new owner decides this recipient */
        queue_rcpt_unfinished(r);
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
    /* The once-only record and the person's history. Unknown ids and
     * expired campaigns get none, so that bogus ids never create keys. */
    bool keep = r->valid_id && reason != HERALD_REASON_UNKNOWN_RECIPIENT && reason != HERALD_REASON_EXPIRED;
    /* A duplicate leaves the record that reached the person as it is (an
     * earlier run's "sent" overwritten by "suppressed" would let the next
     * run send again): its history and audit are written once per run. */
    bool record_it = keep && reason != HERALD_REASON_DUPLICATE;
    /* Both texts are the run's, the second's, the decision's and the
     * provider's only (nothing of the recipient's): formatted again only
     * when one of those changed since the run's last outcome. */
    struct outcome_texts *t = &jr->texts;
    const char *prov = provider ? provider : "";
    if (!t->valid || t->now != now || t->outcome != outcome || t->channel != channel || t->keep != keep ||
        t->record_it != record_it || strcmp(t->reason, reason_s) != 0 || strcmp(t->provider, prov) != 0) {
        t->valid = true;
        herald_copy(t->provider, sizeof(t->provider), prov);
        t->now = now;
        t->outcome = outcome;
        t->channel = channel;
        t->keep = keep;
        t->record_it = record_it;
        herald_copy(t->reason, sizeof(t->reason), reason_s);
        t->record[0] = '\0';
        if (record_it) {
            store_record_format_outcome(&t->history, rec_state_for(outcome), jr->rec_entry, jr->run, now, chan,
                                        reason_s);
            herald_copy(t->record, sizeof(t->record), t->history.buf);
        }
        strbuf_reset(&t->history);
        if (keep)
            /* Its topic and name are the campaign's info (job_info_json). */
            store_history_format(&t->history, jr->job.id, chan, herald_outcome_name(outcome), reason_s, prov, now);
    }
    struct store_outcome oc = {
        .id = r->id,
        .record = t->record,
        /* A permanent failure gives the person's budget back: it was no message. */
        .unsend = r->reserved && outcome == HERALD_OUTCOME_FAILED ? r->member.buf : "",
        .history = t->history.buf ? t->history.buf : "",
        .channel = chan,
        .outcome = herald_outcome_name(outcome),
        .reason = reason_s,
        .provider = provider ? provider : "",
        .provider_id = provider_id ? provider_id : "",
        .at = at,
        .reserved = r->reserved,        /* the campaigns hash holds our reservation */
        .was_deferred = r->was_deferred, /* it leaves the deferred count now */
        /* No record, written once per run (an expired campaign's outcomes
         * are neither: there is no person behind them to look up). */
        .once = !record_it && reason != HERALD_REASON_EXPIRED,
        /* Requests herald sent to providers for it: the audit says how
         * often a person was tried. */
        .requests = r->dispatched ? r->requests : -1,
        /* Only a `feedback = on` provider pays for the provider id key. */
        .pid_key = outcome == HERALD_OUTCOME_SENT && provider_id && provider_id[0] && provider &&
                   provider_feedback(q->cfg, provider),
        /* The language of the content it went out in (content per language). */
        .locale = r->dispatched && r->locale ? r->locale : "",
        .slot = r->reserved ? r->hslot : "",
    };
    store_outcomes_add(&jr->fin, &oc);
    jr->writes++;
    if (jr->fin.n >= QUEUE_FINISH_MAX) finish_flush(jr);
    else uv_check_start(&q->flush_check, queue_on_flush_check);
    q->counters.outcomes[outcome]++;
    metrics_message(channel, (int)outcome, reason_s);
    log_debug("queue", "outcome campaign=%s recipient=%s channel=%s outcome=%s reason=%s", jr->job.id,
              r->id, chan, herald_outcome_name(outcome), reason_s);
    queue_rcpt_drop(r);
}
