/*
 * queue_run.c - a run's life: recipients leaving it, hold and lost, the end of a job.
 *
 * Owns when a job is acknowledged: only by a run that gave every recipient
 * its outcome (or parked it for its quiet hours); a run that stopped, was
 * held or lost its entry leaves the job pending. Never frees a run that a
 * caller still uses (queue_run_pin). Several runs go side by side: each
 * holds at most its share of max_in_flight, and one run's end touches no
 * other run's recipients.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "queue_int.h"

/* A kept recipient is out of bounds for AddressSanitizer until it is
 * handed out again, so that a use after queue_rcpt_free is still caught. */
#if defined(__SANITIZE_ADDRESS__) /* gcc; clang says it with __has_feature */
#define QUEUE_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define QUEUE_ASAN 1
#endif
#endif
#ifdef QUEUE_ASAN
#include <sanitizer/asan_interface.h>
#define SPARE_HIDE(p, n) ASAN_POISON_MEMORY_REGION((p), (n))
#define SPARE_SHOW(p, n) ASAN_UNPOISON_MEMORY_REGION((p), (n))
#else
#define SPARE_HIDE(p, n) ((void)(p), (void)(n))
#define SPARE_SHOW(p, n) ((void)(p), (void)(n))
#endif


/* ---- outcomes -------------------------------------------------------- */

/* Freed recipients kept for the next ones, with their buffers: a
 * recipient is about 2 KB and its buffers as much again, sizes malloc
 * serves from its slow path (after merging its fast free lists), several
 * times per message otherwise. Used on the loop's thread only. */
#define QUEUE_RCPT_SPARE_MAX 512
#define QUEUE_RCPT_SPARE_BUF_MAX 4096 /* a larger buffer is freed */
static struct rcpt *rcpt_spare;       /* linked through next_ready */
static size_t rcpt_nspare;

/* The buffers a recipient keeps while it waits as a spare. */
#define RCPT_BUFS(r) {&(r)->record, &(r)->member, &(r)->links, &(r)->parts, &(r)->prior, &(r)->sealed}

struct rcpt *queue_rcpt_new(void)
{
    struct rcpt *r = rcpt_spare;
    if (!r) {
        r = xcalloc(1, sizeof(*r));
        struct strbuf *bufs[] = RCPT_BUFS(r);
        for (size_t i = 0; i < sizeof(bufs) / sizeof(bufs[0]); i++) strbuf_init(bufs[i]);
        return r;
    }
    SPARE_SHOW(r, sizeof(*r));
    rcpt_spare = r->next_ready;
    rcpt_nspare--;
    struct strbuf keep[] = {r->record, r->member, r->links, r->parts, r->prior, r->sealed};
    memset(r, 0, sizeof(*r));
    struct strbuf *bufs[] = RCPT_BUFS(r);
    for (size_t i = 0; i < sizeof(bufs) / sizeof(bufs[0]); i++) {
        *bufs[i] = keep[i];
        SPARE_SHOW(bufs[i]->buf, bufs[i]->cap);
    }
    return r;
}

void queue_rcpt_free(struct rcpt *r)
{
    free(r->id);
    if (r->found > 0) profile_free(&r->p);
    struct strbuf *bufs[] = RCPT_BUFS(r);
    bool spare = rcpt_nspare < QUEUE_RCPT_SPARE_MAX;
    for (size_t i = 0; i < sizeof(bufs) / sizeof(bufs[0]); i++) {
        if (spare && bufs[i]->cap <= QUEUE_RCPT_SPARE_BUF_MAX) strbuf_reset(bufs[i]);
        else strbuf_free(bufs[i]);
    }
    if (!spare) {
        free(r);
        return;
    }
    r->next_ready = rcpt_spare;
    rcpt_spare = r;
    rcpt_nspare++;
    for (size_t i = 0; i < sizeof(bufs) / sizeof(bufs[0]); i++) SPARE_HIDE(bufs[i]->buf, bufs[i]->cap);
    SPARE_HIDE(r, sizeof(*r));
}

void queue_rcpt_spares_free(void)
{
    while (rcpt_spare) {
        struct rcpt *r = rcpt_spare;
        SPARE_SHOW(r, sizeof(*r));
        rcpt_spare = r->next_ready;
        struct strbuf *bufs[] = RCPT_BUFS(r);
        for (size_t i = 0; i < sizeof(bufs) / sizeof(bufs[0]); i++) {
            SPARE_SHOW(bufs[i]->buf, bufs[i]->cap);
            strbuf_free(bufs[i]);
        }
        free(r);
    }
    rcpt_nspare = 0;
}

/* Arguments of commands that were never answered (queue_free). */
void queue_discard_rcpt(void *arg) { queue_rcpt_free(arg); }

void queue_discard_batch(void *arg)
{
    struct batch *b = arg;
    for (size_t i = 0; i < b->n; i++) queue_rcpt_free(b->r[i]);
    free(b->r);
    free(b->look);
    free(b);
}

/* A recipient leaves the job without a new outcome (already recorded by
 * this entry, or decided by another copy of it in this run). */
void queue_rcpt_drop(struct rcpt *r)
{
    struct jobrun *jr = r->jr;
    queue_rcpt_free(r);
    jr->outstanding--;
    queue_maybe_more(jr);
}

/* A recipient leaves the run unfinished (the daemon is stopping, or the
 * run is held or lost): the job is not acknowledged, and the next run
 * decides them. */
void queue_rcpt_unfinished(struct rcpt *r)
{
    r->jr->unfinished++;
    queue_rcpt_drop(r);
}

bool queue_run_ended(const struct jobrun *jr) { return jr->q->stopping || jr->end != RUN_ON; }

/* Around a loop that may let the last recipients of a run leave (and so
 * end and free the run) while the loop still uses it: the run cannot end
 * in between; it ends, if it is done, at the close. */
void queue_run_pin(struct jobrun *jr) { jr->outstanding++; }

void queue_run_unpin(struct jobrun *jr)
{
    jr->outstanding--;
    queue_maybe_more(jr);
}

/* A command this run needs was refused for good (an ACL denial, a key of
 * the wrong type, a reply of the wrong shape): nothing is decided from
 * it. The run stops taking recipients and ends once what is in flight has
 * its outcome; the job stays pending and is read again after a wait. */
void queue_run_hold(struct jobrun *jr, enum store_error err, const char *text, const char *what)
{
    struct queue *q = jr->q;
    if (jr->end != RUN_ON) return;
    jr->end = RUN_HELD;
    herald_copy(q->held_entry, sizeof(q->held_entry), jr->entry);
    q->held_error = err;
    log_error("queue", "job held campaign=%s entry=%s: %s refused by redis (%s: %.120s); it stays pending and is tried again",
              jr->job.id, jr->entry, what, store_error_name(err), text ? text : "");
    queue_ready_kick(q);
}

/* Another consumer owns the entry now (this daemon was paused or cut off
 * past claim_idle), or it is gone (Redis came back empty): the run stops
 * at once and writes nothing more; its new owner finishes the job. */
void queue_run_lost(struct jobrun *jr, const char *why)
{
    if (jr->end == RUN_LOST) return;
    jr->end = RUN_LOST;
    log_warn("queue", "job lost campaign=%s entry=%s: %s; this run stops without writing", jr->job.id, jr->entry,
             why);
    /* Nothing more leaves for a run that lost its entry: its messages no
     * provider has yet (cleared ahead at the gate, waiting for a slot, the
     * rate or a retry) end here, and their records are the new owner's;
     * the other runs' messages stay where they are (at the next loop
     * iteration: queue_on_ready_idle). */
    jr->recall_due = true;
    queue_ready_kick(jr->q);
}

/* An operator paused or cancelled the campaign: the run stops taking
 * recipients, and what it had not handed to a provider (its ready queue,
 * the messages waiting in dispatch for a slot, a rate token or a retry)
 * is given back; what the providers have finishes. Its end (job_complete)
 * parks the job for a pause, and runs it again at once for a cancel. */
void queue_run_steer(struct jobrun *jr, enum store_control c)
{
    struct queue *q = jr->q;
    if (jr->end != RUN_ON) return;
    jr->end = RUN_STEERED;
    jr->control = c;
    log_info("queue", "job %s by an operator campaign=%s entry=%s; what no provider has is given back",
             c == STORE_CONTROL_PAUSED ? "paused" : "cancelled", jr->job.id, jr->entry);
    /* Only its own messages are taken back (beside other runs, theirs go
     * on), at the next loop iteration (queue_on_ready_idle); any of its
     * messages shown to the gate later is refused there (queue_on_handoff). */
    jr->recall_due = true;
    queue_ready_kick(q);
}

static void park_one(struct jobrun *jr, struct deferral *d);

/* Remembers a deferred recipient in the group of its window's end. */
void queue_defer(struct jobrun *jr, const char *id, int64_t until)
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

/* ---- job life -------------------------------------------------------- */

void queue_run_free(struct jobrun *jr)
{
    for (size_t i = 0; i < jr->ndeferrals; i++) json_decref(jr->deferrals[i].ids);
    free(jr->deferrals);
    store_outcomes_free(&jr->fin);
    strbuf_free(&jr->texts.history);
    job_free(&jr->job);
    free(jr->text);
    free(jr->src_key);
    free(jr);
}

void queue_on_acked(const struct store_job_result *res, void *arg)
{
    struct queue *q = arg;
    (void)res;
    q->counters.jobs_done++;
    queue_read_next(q);
}

struct finishing {
    struct queue *q;
    char *key;
};

/* A finished run's recipients_key, when it is a slice's own list, is
 * dropped once the run's end landed (never before: a run that ends
 * unfinished reads it again). */
static void on_finished_slice(const struct store_job_result *res, void *arg)
{
    struct finishing *f = arg;
    if (res->status == STORE_JOB_OK) f->q->ops->slice_drop(f->q->st, f->key);
    queue_on_acked(res, f->q);
    free(f->key);
    free(f);
}

static void on_parked(const struct store_job_result *res, void *arg)
{
    struct jobrun *jr = arg;
    (void)res;
    jr->writes--;
    queue_maybe_more(jr);
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

void queue_park_deferrals(struct jobrun *jr)
{
    jr->deferrals_parked = true;
    for (size_t i = 0; i < jr->ndeferrals; i++) park_one(jr, &jr->deferrals[i]);
}

static void on_pause_parked(const struct store_job_result *res, void *arg)
{
    (void)res;
    queue_read_next(arg);
}

static void on_hold_over(uv_timer_t *t)
{
    struct queue *q = t->data;
    q->own_pending_done = false; /* the held entry is among our own pending ones */
    q->own_after[0] = '\0';
    queue_read_next(q);
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
        queue_park_deferrals(jr);
        if (jr->writes) return; /* their answers bring us back here */
    }
    queue_job_remove(q, jr);
    if (finished) {
        log_info("queue", "job done campaign=%s entry=%s missing_fields=%u", jr->job.id, jr->entry,
                 jr->missing_fields);
        q->held_entry[0] = '\0';
        q->hold_ms = 0;
        if (jr->job.recipients_key) {
            struct finishing *f = xcalloc(1, sizeof(*f));
            f->q = q;
            f->key = xstrdup(jr->job.recipients_key);
            q->ops->finished(q->st, jr->job.id, jr->entry, jr->run, jr->job.expires_at, on_finished_slice, f);
        } else {
            q->ops->finished(q->st, jr->job.id, jr->entry, jr->run, jr->job.expires_at, queue_on_acked, q);
        }
    } else if (jr->end == RUN_HELD) {
        q->hold_ms = q->hold_ms ? (2 * q->hold_ms > QUEUE_HOLD_MAX_MS ? QUEUE_HOLD_MAX_MS : 2 * q->hold_ms)
                                : QUEUE_HOLD_MIN_MS;
        log_info("queue", "job held campaign=%s entry=%s unfinished=%zu: tried again in %llds", jr->job.id,
                 jr->entry, jr->unfinished, (long long)(q->hold_ms / 1000));
        uv_timer_start(&q->hold_timer, on_hold_over, (uint64_t)q->hold_ms, 0);
    } else if (jr->end == RUN_LOST) {
        log_info("queue", "job left to its new owner campaign=%s entry=%s", jr->job.id, jr->entry);
        queue_read_next(q);
    } else if (jr->end == RUN_STEERED && jr->control == STORE_CONTROL_PAUSED && !q->stopping) {
        /* Parked until resume. A job whose total is written comes back as
         * a resumed run ("|p"): its total is not counted again. */
        char from[80];
        snprintf(from, sizeof(from), "%s%s", jr->rec_entry, jr->resumed || jr->started ? "|p" : "");
        log_info("queue", "job parked until resumed campaign=%s entry=%s unfinished=%zu", jr->job.id, jr->entry,
                 jr->unfinished);
        q->ops->pause_park(q->st, jr->job.id, jr->entry, from, jr->text, on_pause_parked, q);
    } else if (jr->end == RUN_STEERED && !q->stopping) {
        /* Cancelled: the entry is ours and pending; read again at once, it
         * runs with every unsent recipient cancelled. */
        q->own_pending_done = false;
        q->own_after[0] = '\0';
        queue_read_next(q);
    } else {
        log_info("queue", "job paused campaign=%s entry=%s unfinished=%zu (it stays pending and resumes on restart)",
                 jr->job.id, jr->entry, jr->unfinished);
    }
    queue_run_free(jr);
    /* The others' shares of max_in_flight grew, and a slot is free (read
     * by the branches above that read on, once their write landed). */
    queue_jobs_more(q);
    queue_check_drained(q);
}

/* Whether jr may read its next batch: max_in_flight is shared by the runs,
 * each up to its share (max_in_flight / runs, at least one batch), and
 * together up to max_in_flight, save that a run holding less than a batch
 * may always read one: a run that started beside a large one does not wait
 * for the large one to drain. So the daemon holds at most max_in_flight +
 * max_jobs * batch recipients. */
static bool may_load(const struct jobrun *jr)
{
    const struct queue *q = jr->q;
    size_t batch = (size_t)q->cfg->batch, max = (size_t)q->cfg->max_in_flight;
    size_t share = q->njobs > 1 ? max / q->njobs : max;
    if (share < batch) share = batch;
    if (jr->outstanding + batch > share) return false;
    return jr->outstanding < batch || queue_jobs_outstanding(q) + batch <= max;
}

void queue_maybe_more(struct jobrun *jr)
{
    if (jr->loading) return;
    bool stop = queue_run_ended(jr) || jr->src_done;
    if (!stop && may_load(jr)) {
        queue_load_batch(jr);
        return;
    }
    if (stop && jr->outstanding == 0 && jr->writes == 0) job_complete(jr);
}

/* ---- the runs side by side ---------------------------------------------- */

struct jobrun *queue_job_find(const struct queue *q, const char *entry)
{
    for (struct jobrun *jr = q->jobs; jr; jr = jr->next)
        if (strcmp(jr->entry, entry) == 0) return jr;
    return NULL;
}

size_t queue_jobs_outstanding(const struct queue *q)
{
    size_t n = 0;
    for (const struct jobrun *jr = q->jobs; jr; jr = jr->next) n += jr->outstanding;
    return n;
}

size_t queue_jobs_pinned(struct queue *q, struct jobrun ***out)
{
    struct jobrun **v = xcalloc(q->njobs ? q->njobs : 1, sizeof(*v));
    size_t n = 0;
    for (struct jobrun *jr = q->jobs; jr; jr = jr->next) {
        queue_run_pin(jr);
        v[n++] = jr;
    }
    *out = v;
    return n;
}

void queue_jobs_more(struct queue *q)
{
    struct jobrun **v;
    size_t n = queue_jobs_pinned(q, &v);
    for (size_t i = 0; i < n; i++) queue_run_unpin(v[i]);
    free(v);
}
