/*
 * queue.c - the consumer: jobs from the stream to runs, and the public API.
 *
 * Up to [daemon] max_jobs jobs run side by side (q->jobs), each with
 * everything a run has: its fence, heartbeat, control, progress, hold.
 * Their recipients flow through the stages
 * of queue_int.h: source -> lookup + suppression -> decision -> ready
 * queue and reservation -> render -> dispatch (handoff recorded at its
 * gate) -> outcomes. This file reads the stream (own pending entries
 * first, then new ones, taking over those another consumer left idle),
 * refuses invalid jobs to the dead-letter stream, schedules jobs for
 * later, starts runs and keeps their entries ours (the heartbeat).
 * Invariants: a recipient gets exactly one terminal outcome per job entry;
 * a job is acknowledged only after every write about it was answered and
 * only by a run that gave every recipient its outcome; an error reply is
 * never taken for an answer (store_cmd.h). Logs carry ids and counts only.
 */
#include "queue.h"
#include "queue_int.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "job.h"
#include "log.h"
#include "tzdb.h"

static void on_retry(uv_timer_t *t);
static void on_start_control(const struct store_job_result *res, void *arg);
static void on_registered(const struct store_job_result *res, void *arg);
static void on_lock_renewed(const struct store_job_result *res, void *arg);

/* The heartbeat's answer, for the entry it was sent for. */
struct beat {
    struct queue *q;
    char entry[64];
};

static void on_beat(const struct store_job_result *res, void *arg)
{
    struct beat *b = arg;
    struct jobrun *jr = queue_job_find(b->q, b->entry);
    if (jr && res->status == STORE_JOB_LOST)
        queue_run_lost(jr, "another consumer owns the entry now, or it is no longer pending");
    free(b);
}

static void on_heartbeat(uv_timer_t *t)
{
    struct queue *q = t->data;
    if (!q->ops->ready(q->st, false)) return;
    /* Keeps each entry's idle time low so that no other consumer claims a
     * job we are still working on, and learns when one did (never taking
     * it back: lua/heartbeat.lua). */
    for (struct jobrun *jr = q->jobs; jr; jr = jr->next) {
        if (jr->end == RUN_LOST) continue;
        struct beat *b = xmalloc(sizeof(*b));
        b->q = q;
        herald_copy(b->entry, sizeof(b->entry), jr->entry);
        q->ops->heartbeat(q->st, b->entry, on_beat, b, free);
    }
}

/* The running jobs, in the order they were read. */
static void job_add(struct queue *q, struct jobrun *jr)
{
    struct jobrun **p = &q->jobs;
    while (*p) p = &(*p)->next;
    jr->next = NULL;
    *p = jr;
    q->njobs++;
    if (!uv_is_active((uv_handle_t *)&q->heartbeat)) {
        uint64_t hb = (uint64_t)(q->cfg->claim_idle_ms / 3 > 0 ? q->cfg->claim_idle_ms / 3 : 1000);
        uv_timer_start(&q->heartbeat, on_heartbeat, hb, hb);
    }
}

void queue_job_remove(struct queue *q, struct jobrun *jr)
{
    for (struct jobrun **p = &q->jobs; *p; p = &(*p)->next) {
        if (*p != jr) continue;
        *p = jr->next;
        jr->next = NULL;
        q->njobs--;
        break;
    }
    if (!q->jobs) uv_timer_stop(&q->heartbeat);
}

static void on_dead_acked(const struct store_job_result *res, void *arg)
{
    struct queue *q = arg;
    (void)res;
    q->counters.jobs_refused++;
    queue_read_next(q);
}

/* The job goes to herald:dead with its error, then is acknowledged: the
 * acknowledgement waits for the dead letter to be stored. */
void queue_dead_letter(struct queue *q, const char *entry, const char *text, const char *error)
{
    /* A `failed` event names the campaign when the text has a valid id. */
    json_t *o = text ? json_loads(text, 0, NULL) : NULL;
    const char *id = o ? json_string_value(json_object_get(o, "id")) : NULL;
    q->ops->event(q->st, id && herald_id_valid(id) ? id : "", entry, "failed", error);
    json_decref(o);
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
    q->ops->schedule(q->st, jr->job.id, jr->entry, jr->job.not_before, from, jr->text, queue_on_acked, q);
    queue_run_free(jr);
}

/* ---- an operator's pause or cancel, within a second -------------------- */

/* One run's control read, answered for the entry it was sent for. */
struct control_ask {
    struct queue *q;
    char entry[64];
    enum store_control answer;
};

static void on_control_polled(const struct store_job_result *res, void *arg)
{
    struct control_ask *a = arg;
    struct jobrun *jr = queue_job_find(a->q, a->entry);
    if (jr) jr->control_asking = false;
    if (res->status == STORE_JOB_OK && jr && jr->end == RUN_ON && !jr->cancelled &&
        (a->answer == STORE_CONTROL_PAUSED || a->answer == STORE_CONTROL_CANCELLED))
        queue_run_steer(jr, a->answer);
    free(a);
}

static void on_control_timer(uv_timer_t *t)
{
    struct queue *q = t->data;
    if (q->stopping || !q->ops->ready(q->st, false)) return;
    for (struct jobrun *jr = q->jobs; jr; jr = jr->next) {
        /* A run paused, cancelled or lost has nothing of its own sent any
         * more: a message of it that was at a provider and got RETRY
         * waits for its retry in dispatch, and is taken back here. */
        if (jr->end == RUN_STEERED || jr->end == RUN_LOST) {
            jr->recall_due = true;
            queue_ready_kick(q);
        }
        /* A cut sends nothing: its slices read the control when they start. */
        if (!jr->control_known || jr->cancelled || jr->end != RUN_ON || jr->control_asking || jr->cutting) continue;
        jr->control_asking = true;
        struct control_ask *a = xcalloc(1, sizeof(*a));
        a->q = q;
        herald_copy(a->entry, sizeof(a->entry), jr->entry);
        q->ops->control(q->st, jr->job.id, &a->answer, on_control_polled, a);
    }
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
        queue_dead_letter(q, entry, "", "entry has no `job` field (expected one field `job` holding the campaign JSON)");
        queue_run_free(jr);
        return;
    }
    jr->text = xstrndup(text, len);
    if (job_parse(text, len, &jr->job, err, sizeof(err)) < 0) {
        queue_dead_letter(q, entry, jr->text, err);
        queue_run_free(jr);
        return;
    }
    herald_copy(jr->rec_entry, sizeof(jr->rec_entry), entry);
    /* Each run has a name of its own, so that a later run of the same job
     * in this process (after a hold) tells its records from this one's. */
    snprintf(jr->run, sizeof(jr->run), "%s.%llu", q->run_id, (unsigned long long)++q->run_seq);
    if (held_from) {
        /* "<entry>" for a job held until not_before (or paused before it
         * began), "<entry>|d" for recipients deferred by that entry,
         * "<entry>|p" for a run paused by an operator, and "<entry>|s" for
         * a slice of it: records keep naming it, and a resumed run's total
         * is counted already. */
        size_t n = strcspn(held_from, "|");
        snprintf(jr->rec_entry, sizeof(jr->rec_entry), "%.*s", (int)n, held_from);
        jr->resumed = strcmp(held_from + n, "|d") == 0 || strcmp(held_from + n, "|p") == 0 ||
                      strcmp(held_from + n, "|s") == 0;
        if (!jr->resumed) q->ops->state_del(q->st, jr->job.id, jr->rec_entry);
    }
    /* The entry is this run's from now on (the heartbeat keeps it ours);
     * nothing is read or decided before the campaign's control field
     * says whether an operator paused or cancelled it. */
    job_add(q, jr);
    jr->loading = true;
    if (!held_from) {
        /* A new entry is a run of its campaign id: registered, or refused
         * while another run of the id is live (campaign_enqueue.lua). */
        struct store_enqueue e = {
            .campaign = jr->job.id, .entry = jr->entry, .rerun = jr->job.rerun,
            .recipients_key = jr->job.recipients_key, .ids = jr->job.recipients, .nids = jr->job.nrecipients,
            .now = (int64_t)time(NULL) * 1000, .job = &jr->job};
        q->ops->enqueue(q->st, &e, &jr->enq, on_registered, jr);
        return;
    }
    q->ops->control(q->st, jr->job.id, &jr->control, on_start_control, jr);
}

static void on_registered(const struct store_job_result *res, void *arg)
{
    struct jobrun *jr = arg;
    struct queue *q = jr->q;
    if (res->status != STORE_JOB_OK) {
        jr->loading = false;
        queue_run_hold(jr, res->err, res->text, "registering the campaign's run");
        queue_maybe_more(jr);
        return;
    }
    if (jr->enq.status == STORE_ENQ_LIVE || jr->enq.status == STORE_ENQ_FINISHED ||
        jr->enq.status == STORE_ENQ_EXPIRED) {
        char err[320];
        store_enqueue_refusal(err, sizeof(err), jr->job.id, &jr->enq);
        queue_job_remove(q, jr);
        queue_dead_letter(q, jr->entry, jr->text, err);
        queue_run_free(jr);
        return;
    }
    q->ops->control(q->st, jr->job.id, &jr->control, on_start_control, jr);
}

/* ---- a campaign in slices --------------------------------------------- */

struct slicing {
    struct jobrun *jr;
    size_t n;
};

static void on_sliced(const struct store_job_result *res, void *arg)
{
    struct slicing *s = arg;
    struct jobrun *jr = s->jr;
    struct queue *q = jr->q;
    size_t n = s->n;
    free(s);
    jr->loading = false;
    if (res->status != STORE_JOB_OK) {
        /* Not sliced (the script writes all or nothing): the run ends with
         * nothing read; the job stays pending, or is its new owner's. */
        if (res->status == STORE_JOB_LOST) queue_run_lost(jr, "slicing was refused by the fence");
        else queue_run_hold(jr, res->err, res->text, "slicing the job");
        queue_maybe_more(jr);
        return;
    }
    log_info("queue", "job sliced campaign=%s entry=%s slices=%zu: any daemon runs them", jr->job.id, jr->entry, n);
    queue_job_remove(q, jr);
    queue_run_free(jr);
    queue_jobs_more(q);
    queue_read_next(q);
    queue_check_drained(q);
}

/* Cuts an inline job of more than [daemon] slice recipients into slices of
 * that many (each id once, in the job's order), each a job of its own in
 * the stream that any daemon claims, as it claims any job: a dead daemon's
 * slice is taken over like a dead daemon's job. The slices keep the job's
 * entry in their records (held_from "<entry>|s"), so a person is sent once
 * across slices, restarts and takeovers; the job's total is counted once,
 * here. */
static void slice_job(struct jobrun *jr)
{
    struct queue *q = jr->q;
    size_t size = (size_t)q->cfg->slice;
    json_t *o = json_loads(jr->text, 0, NULL);
    json_object_del(o, "not_before"); /* due: it runs now */
    json_t *seen = json_object(), *ids = json_array();
    for (size_t i = 0; i < jr->job.nrecipients; i++) {
        const char *id = jr->job.recipients[i];
        if (json_object_get(seen, id)) continue;
        json_object_set_new(seen, id, json_true());
        json_array_append_new(ids, json_string(id));
    }
    json_decref(seen);
    size_t total = json_array_size(ids), n = (total + size - 1) / size;
    char **texts = xcalloc(n ? n : 1, sizeof(*texts));
    for (size_t k = 0; k < n; k++) {
        json_t *part = json_array();
        for (size_t i = k * size; i < total && i < (k + 1) * size; i++) json_array_append(part, json_array_get(ids, i));
        json_object_set_new(o, "recipients", part);
        texts[k] = json_dumps(o, JSON_COMPACT);
    }
    json_decref(ids);
    json_decref(o);
    char from[80];
    snprintf(from, sizeof(from), "%s|s", jr->rec_entry);
    struct slicing *s = xcalloc(1, sizeof(*s));
    s->jr = jr;
    s->n = n;
    jr->loading = true; /* until the script answered */
    q->ops->slice(q->st, jr->entry, jr->job.id, (long long)total, from, (const char *const *)texts, n, on_sliced, s);
    for (size_t k = 0; k < n; k++) free(texts[k]);
    free(texts);
}

/* ---- a recipients_key job in slices ------------------------------------ */

#define QUEUE_CUT_STEP 1000 /* ids of the source read per step of a cut */
#define QUEUE_CUT_MARK "@herald-slice-key@"

struct cutting {
    struct jobrun *jr;
    struct store_cut cut;
    char *text; /* the slices' job text, cut at the mark into head and tail */
    char from[80];
};

static void cut_free(struct cutting *ct)
{
    free(ct->text);
    free(ct);
}

static void on_cut_step(const struct store_job_result *res, void *arg)
{
    struct cutting *ct = arg;
    struct jobrun *jr = ct->jr;
    struct queue *q = jr->q;
    if (res->status == STORE_JOB_OK && !ct->cut.done && !queue_run_ended(jr)) {
        q->ops->cut(q->st, &ct->cut, on_cut_step, ct);
        return;
    }
    bool done = res->status == STORE_JOB_OK && ct->cut.done;
    long long slices = ct->cut.slices, kept = ct->cut.kept;
    cut_free(ct);
    jr->cutting = jr->loading = false;
    if (!done) {
        /* Every step is one script: the cut stands where the last one left
         * it, and the entry's next run (here after a stop or a hold, or its
         * new owner) goes on from there. */
        if (res->status == STORE_JOB_LOST) queue_run_lost(jr, "cutting was refused by the fence");
        else if (res->status != STORE_JOB_OK) queue_run_hold(jr, res->err, res->text, "cutting the job");
        queue_maybe_more(jr);
        return;
    }
    log_info("queue", "job sliced campaign=%s entry=%s slices=%lld recipients=%lld: any daemon runs them",
             jr->job.id, jr->entry, slices, kept);
    queue_job_remove(q, jr);
    if (slices == 0) /* emptied while it was cut: no slice will finish the campaign, this does */
        q->ops->finished(q->st, jr->job.id, jr->entry, jr->run, jr->job.expires_at, queue_on_acked, q);
    queue_run_free(jr);
    queue_jobs_more(q);
    queue_read_next(q);
    queue_check_drained(q);
}

bool queue_cut_wanted(const struct jobrun *jr)
{
    const struct queue *q = jr->q;
    return q->cfg->slice > 0 && !jr->resumed && !jr->cancelled && jr->src != SRC_INLINE &&
           jr->info.count > q->cfg->slice;
}

/* Cuts a recipients_key job into slices of [daemon] slice ids, each a job
 * of its own in the stream (its recipients_key a list of its own) that any
 * daemon claims, as slice_job does for inline ids; the source is read a
 * step at a time, and where the cut stands is kept in Redis with the
 * slices it made, so a cut that stops (a crash, a stop, a hold) is resumed
 * by the entry's next run, and each id lands in one slice (job_cut.lua). */
void queue_cut(struct jobrun *jr)
{
    struct queue *q = jr->q;
    static const enum store_source kinds[] = {[SRC_SET] = STORE_SRC_SET, [SRC_ZSET] = STORE_SRC_ZSET,
                                              [SRC_LIST] = STORE_SRC_LIST};
    json_t *o = json_loads(jr->text, 0, NULL);
    json_object_del(o, "not_before"); /* due: it runs now */
    json_object_set_new(o, "recipients_key", json_string(QUEUE_CUT_MARK));
    struct cutting *ct = xcalloc(1, sizeof(*ct));
    ct->jr = jr;
    ct->text = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    /* The key's own place: inside a string value its quotes are escaped,
     * so content quoting the mark is never taken for it. */
    char *mark = strstr(ct->text, "\"recipients_key\":\"" QUEUE_CUT_MARK "\"");
    mark += strlen("\"recipients_key\":\"");
    *mark = '\0';
    snprintf(ct->from, sizeof(ct->from), "%s|s", jr->rec_entry);
    ct->cut = (struct store_cut){.entry = jr->entry, .campaign = jr->job.id, .source = jr->src_key,
                                 .from = ct->from, .text_head = ct->text, .text_tail = mark + strlen(QUEUE_CUT_MARK),
                                 .kind = kinds[jr->src], .size = q->cfg->slice, .step = QUEUE_CUT_STEP};
    jr->cutting = jr->loading = true; /* until the last step answered */
    log_info("queue", "cutting job into slices campaign=%s entry=%s recipients=%lld", jr->job.id, jr->entry,
             jr->info.count);
    q->ops->cut(q->st, &ct->cut, on_cut_step, ct);
}

/* The campaign's control field, before a run's first recipient. */
static void on_start_control(const struct store_job_result *res, void *arg)
{
    struct jobrun *jr = arg;
    struct queue *q = jr->q;
    jr->loading = false;
    jr->control_known = true;
    if (res->status != STORE_JOB_OK) {
        queue_run_hold(jr, res->err, res->text, "reading the campaign's control");
    } else if (jr->control == STORE_CONTROL_EXPIRED) {
        /* Its once-only records went with [retention]: a run now could
         * reach someone a second time. Refused, as a bad job is. */
        queue_job_remove(q, jr);
        queue_dead_letter(q, jr->entry, jr->text,
                          "the campaign id's once-only records expired ([retention]): it cannot run again "
                          "without sending twice; enqueue it under a new id");
        queue_run_free(jr);
        return;
    } else if (jr->control == STORE_CONTROL_PAUSED) {
        queue_run_steer(jr, STORE_CONTROL_PAUSED); /* parked as it is (queue_run.c) */
    } else if (jr->control == STORE_CONTROL_CANCELLED) {
        jr->cancelled = true; /* run now, not_before or not: each recipient is cancelled */
        log_info("queue", "job cancelled by an operator campaign=%s entry=%s: its unsent recipients are "
                          "recorded suppressed/cancelled", jr->job.id, jr->entry);
    } else if (jr->job.not_before > time(NULL)) {
        queue_job_remove(q, jr);
        schedule_job(q, jr);
        return;
    }
    if (queue_run_ended(jr)) {
        queue_maybe_more(jr); /* held, paused or stopping: ends with nothing read */
        return;
    }
    const char *entry = jr->entry;
    log_info("queue", "job started campaign=%s entry=%s run=%s priority=%s jobs=%zu", jr->job.id, entry, jr->run,
             job_priority_name(jr->job.priority), q->njobs);
    /* "running", and the campaign's started event for its first run (not a
     * resumed or deferred part; not this entry again after a stop). */
    q->ops->started(q->st, jr->job.id, entry, !jr->resumed);
    if (q->cfg->slice > 0 && !jr->resumed && !jr->cancelled && !jr->job.recipients_key &&
        jr->job.nrecipients > (size_t)q->cfg->slice) {
        slice_job(jr);
        return;
    }
    if (jr->job.recipients_key) {
        jr->src_key = xstrdup(jr->job.recipients_key);
        snprintf(jr->cursor, sizeof(jr->cursor), "0");
        jr->loading = true; /* until TYPE and the count answer */
        q->ops->source_open(q->st, jr->src_key, &jr->info, queue_on_source_open, jr, NULL);
        return;
    }
    jr->src = SRC_INLINE;
    if (!jr->resumed) q->ops->total(q->st, jr->job.id, entry, (long long)jr->job.nrecipients);
    jr->started = true;
    queue_maybe_more(jr);
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
        queue_read_next(q);
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
        if (mode == STORE_READ_OWN) {
            q->own_pending_done = true;
            q->own_after[0] = '\0'; /* the next walk starts from the first */
        }
        queue_read_next(q);
        return;
    case STORE_READ_DELETED:
        /* Deleted from the stream while pending: nothing to do but ack
         * (and read on: more of our own may be pending). */
        if (mode == STORE_READ_OWN) herald_copy(q->own_after, sizeof(q->own_after), res->id);
        q->ops->ack(q->st, res->id);
        queue_read_next(q);
        return;
    case STORE_READ_ENTRY:
        log_recovered(&q->read_complaint, "queue", "reading jobs works again");
        /* Our own pending entries are walked in order: the next read starts
         * after this one, past the jobs running here. */
        if (mode == STORE_READ_OWN) herald_copy(q->own_after, sizeof(q->own_after), res->id);
        if (queue_job_find(q, res->id)) { /* running here already (our own pending entry) */
            queue_read_next(q);
            return;
        }
        start_job(q, res->id, res->job, res->job_len, res->held_from);
        if (mode == STORE_READ_CLAIM && queue_job_find(q, res->id))
            log_info("queue", "took over a job left by another consumer entry=%s", res->id);
        /* The next job is read while fewer than max_jobs run. A job
         * refused or scheduled reads on once its acknowledgement landed
         * (never before: a walk of our own pending entries from the first
         * would meet it again). */
        if (queue_job_find(q, res->id)) queue_read_next(q);
        return;
    }
}

static void on_retry(uv_timer_t *t)
{
    queue_read_next(t->data);
}

void queue_read_next(struct queue *q)
{
    if (q->stopping || q->njobs >= (size_t)q->cfg->max_jobs || q->reading || !q->name_held || !q->layout_ok || !q->ops->ready(q->st, true) ||
        uv_is_active((uv_handle_t *)&q->hold_timer)) {
        queue_check_drained(q);
        return;
    }
    enum store_read_mode mode = STORE_READ_NEW;
    if (!q->group_ready) {
        mode = STORE_READ_GROUP;
    } else if (!q->own_pending_done) {
        mode = STORE_READ_OWN;
        if (!q->own_after[0]) herald_copy(q->own_after, sizeof(q->own_after), "0");
    } else if (uv_now(q->loop) - q->last_claim_ms >= (uint64_t)q->cfg->claim_idle_ms / 2) {
        q->last_claim_ms = uv_now(q->loop);
        mode = STORE_READ_CLAIM;
    }
    q->read_mode = mode;
    q->reading = true;
    /* With jobs running, a blocking read waits less: a job read again at
     * once (a cancel, a hold's end) waits for it on the jobs connection. */
    if (q->ops->read(q->st, mode, q->own_after, q->jobs ? QUEUE_BLOCK_BUSY_MS : QUEUE_BLOCK_MS, q->cfg->claim_idle_ms, on_read, q) < 0)
        q->reading = false;
}

/* ---- one live daemon per consumer name -------------------------------- */

static void lock_try(struct queue *q);

/* Whether the holder's value ("<host> <pid> <run>") names a process of
 * this host that is gone: a daemon killed before it could let go of its
 * name, or our own previous run (same pid in a container), restarted. */
static bool holder_is_dead(const char *holder)
{
    char host[128];
    long pid = 0;
    if (sscanf(holder, "%127s %ld", host, &pid) != 2 || pid <= 0) return false;
    char mine[128];
    if (gethostname(mine, sizeof(mine)) != 0) return false;
    mine[sizeof(mine) - 1] = '\0';
    for (char *c = mine; *c; c++)
        if (*c == ' ') *c = '_';
    if (strcmp(host, mine) != 0) return false;
    if ((pid_t)pid == getpid()) return true;
    return kill((pid_t)pid, 0) < 0 && errno == ESRCH;
}

static void on_lock_retry(uv_timer_t *t) { lock_try(t->data); }

static void on_lock_taken(const struct store_job_result *res, void *arg)
{
    struct queue *q = arg;
    q->name_asking = false;
    if (q->stopping) return;
    if (res->status != STORE_JOB_OK) {
        log_complain(&q->lock_complaint, "queue", "taking the consumer name failed (%s); no job is read until it "
                     "is ours", store_error_name(res->err));
        uv_timer_start(&q->lock_timer, on_lock_retry, 2000, 0);
        return;
    }
    if (q->lock_holder[0]) {
        if (holder_is_dead(q->lock_holder) && strcmp(q->lock_dead, q->lock_holder) != 0) {
            /* Its holder died on this host: take it now rather than after its TTL. */
            herald_copy(q->lock_dead, sizeof(q->lock_dead), q->lock_holder);
            lock_try(q);
            return;
        }
        q->name_in_use = true;
        log_complain(&q->lock_complaint, "queue", "consumer name %s is held by another daemon (%s): each daemon "
                     "needs its own [daemon] consumer; no job is read until the name is free", q->consumer,
                     q->lock_holder);
        uv_timer_start(&q->lock_timer, on_lock_retry, 2000, 0);
        return;
    }
    q->name_in_use = false;
    log_recovered(&q->lock_complaint, "queue", "consumer name %s is this daemon's", q->consumer);
    if (!q->name_held) {
        q->name_held = true;
        uint64_t renew = (uint64_t)(q->lock_ttl_ms / 3);
        uv_timer_start(&q->lock_timer, on_lock_retry, renew, renew);
    }
    queue_read_next(q);
}

/* Takes the name (or renews it once ours); a renewal that finds another
 * holder means this daemon lost it (it was stopped past the TTL and another
 * started under the name): its run stops writing, and no job is read. */
static void lock_try(struct queue *q)
{
    if (q->name_asking || q->stopping || !q->ops->ready(q->st, false)) return;
    q->name_asking = true;
    q->ops->consumer_lock(q->st, q->name_held ? STORE_LOCK_RENEW : STORE_LOCK_TAKE, q->lock_value, q->lock_ttl_ms,
                          q->lock_dead, q->lock_holder, q->name_held ? on_lock_renewed : on_lock_taken, q);
}

static void on_lock_renewed(const struct store_job_result *res, void *arg)
{
    struct queue *q = arg;
    q->name_asking = false;
    if (q->stopping || res->status != STORE_JOB_OK || !q->lock_holder[0]) return; /* kept (or retried next time) */
    q->name_held = false;
    q->name_in_use = true;
    log_error("queue", "consumer name %s was taken by another daemon (%s) while this one held it; this daemon "
              "stops its job and reads none until the name is free", q->consumer, q->lock_holder);
    for (struct jobrun *jr = q->jobs; jr; jr = jr->next) queue_run_lost(jr, "another daemon runs under this consumer name");
    uv_timer_start(&q->lock_timer, on_lock_retry, 2000, 0);
}

/* ---- public ---------------------------------------------------------- */

/* What the queue keeps of q->cfg rather than reading it at each use: the
 * policy's environment, the caps' history, the ready list's target, the
 * consumer name lock's TTL (its next renewal takes a new one). */
static void config_derive(struct queue *q)
{
    const struct config *cfg = q->cfg;
    q->default_tz = tzdb_get(q->tzdb, cfg->default_tz);
    if (!q->default_tz) q->default_tz = tz_utc(); /* main refuses an unknown default_tz */
    policy_env_init(&q->env, cfg->consent_max_age_ms / 1000, q->default_tz, cfg->quiet_start_min,
                    cfg->quiet_end_min);
    q->cap_keep_s = 0;
    for (size_t i = 0; i < cfg->ncaps; i++) /* the history the caps need */
        if (cfg->caps[i].window_s > q->cap_keep_s) q->cap_keep_s = cfg->caps[i].window_s;
    for (int ch = 0; ch < HERALD_CH_COUNT; ch++) {
        const struct config_channel *cc = &cfg->channels[ch];
        q->ready_target[ch] = 0;
        for (size_t i = 0; cc->present && i < cc->nproviders; i++)
            if (cc->provider_index[i] >= 0)
                q->ready_target[ch] += 4 * (size_t)cfg->providers[cc->provider_index[i]].concurrency;
        if (q->ready_target[ch] < 32) q->ready_target[ch] = 32;
    }
    q->lock_ttl_ms = cfg->claim_idle_ms > 3000 ? cfg->claim_idle_ms : 3000;
}

void queue_reload(struct queue *q, const struct config *cfg)
{
    q->cfg = cfg;
    config_derive(q);
    /* The heartbeat's period follows claim_idle (it runs while any job does). */
    if (uv_is_active((uv_handle_t *)&q->heartbeat)) {
        uint64_t hb = (uint64_t)(cfg->claim_idle_ms / 3 > 0 ? cfg->claim_idle_ms / 3 : 1000);
        uv_timer_start(&q->heartbeat, on_heartbeat, hb, hb);
    }
    /* A larger max_jobs reads more now; a larger max_in_flight lets runs read more. */
    queue_jobs_more(q);
    queue_read_next(q);
}

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
    q->tzdb = tzdb_new(NULL);
    config_derive(q);
    uv_timer_init(loop, &q->heartbeat);
    uv_timer_init(loop, &q->retry);
    q->heartbeat.data = q;
    q->retry.data = q;
    uv_timer_init(loop, &q->release_timer);
    q->release_timer.data = q;
    uv_timer_start(&q->release_timer, on_release_timer, 1000, 1000);
    uv_timer_init(loop, &q->lock_timer);
    q->lock_timer.data = q;
    char host[128];
    if (gethostname(host, sizeof(host)) != 0) snprintf(host, sizeof(host), "unknown");
    host[sizeof(host) - 1] = '\0';
    for (char *c = host; *c; c++)
        if (*c == ' ') *c = '_';
    snprintf(q->lock_value, sizeof(q->lock_value), "%s %ld %s", host, (long)getpid(), run_id);
    uv_timer_init(loop, &q->control_timer);
    q->control_timer.data = q;
    uv_timer_start(&q->control_timer, on_control_timer, 1000, 1000);
    uv_check_init(loop, &q->flush_check);
    q->flush_check.data = q;
    uv_idle_init(loop, &q->flush_wake);
    q->flush_wake.data = q;
    uv_idle_init(loop, &q->ready_idle);
    q->ready_idle.data = q;
    uv_timer_init(loop, &q->hold_timer);
    q->hold_timer.data = q;
    q->handles_open = 9;
    q->last_claim_ms = 0;
    dispatch_set_handoff(d, queue_on_handoff, q);
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
    if (strcmp(q->layout, STORE_LAYOUT) == 0) {
        q->layout_ok = true;
        queue_read_next(q);
        return;
    }
    /* Data of another layout: reading jobs would decide from records this
     * build cannot see (a second send). Nothing is read until it is
     * migrated; /healthz says so. */
    q->layout_ok = false;
    if (!q->layout_said) {
        q->layout_said = true;
        log_error("queue", "redis holds herald's data in key layout %s, this daemon reads layout %s: no job is read; "
                           "stop every daemon and run `heraldctl migrate` (docs/operations.md)", q->layout, STORE_LAYOUT);
    }
}

void queue_connected(struct queue *q, bool jobs)
{
    if (!jobs) {
        q->ops->marker(q->st, &q->marker_absent, q->layout, on_marker, q);
        lock_try(q);
        q->ops->connected(q->st);
    }
    if (jobs) {
        q->reading = false;
        /* After a loss, re-read our own pending entries first (walking
         * past those running here). */
        q->own_pending_done = false;
        q->own_after[0] = '\0';
    }
    queue_read_next(q);
}

static void drained_now(struct queue *q)
{
    void (*cb)(void *) = q->drained;
    q->drained = NULL;
    cb(q->drained_arg);
}

/* A clean stop gives the consumer name back, so that a daemon started
 * under it next (here or on another host) need not wait for its TTL, and
 * heraldctl migrate sees that none runs. Refused or not, the stop goes on:
 * the TTL frees the name otherwise. */
static void on_lock_released(const struct store_job_result *res, void *arg)
{
    struct queue *q = arg;
    (void)res;
    q->name_held = false;
    q->lock_releasing = false;
    if (q->drained) drained_now(q);
}

void queue_check_drained(struct queue *q)
{
    if (!q->stopping || !q->drained || q->lock_releasing) return;
    if (q->jobs || !q->ops->idle(q->st) || dispatch_in_flight(q->d)) return;
    if (q->name_held && q->ops->ready(q->st, false)) {
        q->lock_releasing = true;
        q->ops->consumer_lock(q->st, STORE_LOCK_RELEASE, q->lock_value, q->lock_ttl_ms, "", q->lock_holder,
                              on_lock_released, q);
        return;
    }
    drained_now(q);
}

void queue_stop(struct queue *q, void (*drained)(void *arg), void *arg)
{
    q->stopping = true;
    q->drained = drained;
    q->drained_arg = arg;
    dispatch_interrupt(q->d);
    queue_ready_kick(q); /* gives them back */
    queue_jobs_more(q);
    queue_check_drained(q);
}

void queue_counters(const struct queue *q, struct queue_counters *out)
{
    *out = q->counters;
    out->in_flight = queue_jobs_outstanding(q);
    out->jobs_running = q->njobs;
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
    out->layout_mismatch = q->layout_said && !q->layout_ok;
    herald_copy(out->layout, sizeof(out->layout), q->layout);
    out->consumer_in_use = q->name_in_use;
    herald_copy(out->consumer_holder, sizeof(out->consumer_holder), q->name_in_use ? q->lock_holder : "");
}

static void on_handle_closed(uv_handle_t *h)
{
    struct queue *q = h->data;
    if (--q->handles_open > 0) return;
    tzdb_free(q->tzdb);
    free(q->consumer);
    free(q->run_id);
    free(q);
}

void queue_free(struct queue *q)
{
    /* Whatever could not be written before the drain timeout is lost here;
     * the jobs stay pending in the stream and are redone from the records. */
    while (q->jobs) {
        struct jobrun *jr = q->jobs;
        q->jobs = jr->next;
        for (int ch = 0; ch < HERALD_CH_COUNT; ch++) {
            while (jr->ready[ch].head) {
                struct rcpt *r = jr->ready[ch].head;
                jr->ready[ch].head = r->next_ready;
                queue_rcpt_free(r);
            }
        }
        /* Handoffs never written (the drain timeout finished their messages
         * before the iteration's write): nothing references them any more. */
        while (jr->hpending) {
            struct hbatch *hb = jr->hpending;
            jr->hpending = hb->next;
            queue_hbatch_discard(hb);
        }
        log_warn("queue", "stopping with campaign=%s unfinished (outstanding=%zu); it resumes on restart",
                 jr->job.id, jr->outstanding);
        /* Every Redis callback has fired and dispatch holds nothing (main
         * frees the queue only then): what references the job is gone. */
        queue_run_free(jr);
    }
    q->njobs = 0;
    queue_rcpt_spares_free();
    uv_close((uv_handle_t *)&q->heartbeat, on_handle_closed);
    uv_close((uv_handle_t *)&q->retry, on_handle_closed);
    uv_close((uv_handle_t *)&q->release_timer, on_handle_closed);
    uv_close((uv_handle_t *)&q->control_timer, on_handle_closed);
    uv_close((uv_handle_t *)&q->lock_timer, on_handle_closed);
    uv_close((uv_handle_t *)&q->flush_check, on_handle_closed);
    uv_close((uv_handle_t *)&q->flush_wake, on_handle_closed);
    uv_close((uv_handle_t *)&q->ready_idle, on_handle_closed);
    uv_close((uv_handle_t *)&q->hold_timer, on_handle_closed);
}
