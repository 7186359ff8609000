/*
 * queue_source.c - a run's recipients: their source, lookup and decision.
 *
 * Owns reading the recipient source in batches (inline ids or
 * recipients_key), looking each batch up with the suppression check, and
 * the policy's decision for each recipient. Never decides from a failed
 * read: a refused lookup or suppression check holds the job.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "digest.h"
#include "log.h"
#include "queue_int.h"
#include "tzdb.h"


/* The contact data of r, which the policy let through: the lookup left it
 * sealed (the checks read the flags and members beside it), and the
 * message about to be rendered needs it now. When it does not open, the
 * message fails as undecryptable, as a person whose data did not open at
 * the lookup does: never sent. */
static void open_contact(struct rcpt *r)
{
    char err[256];
    if (store_person_unseal_to_render(r->jr->q->cfg->keys, r->id, r->sealed.buf, r->sealed.len, &r->p, err,
                                      sizeof(err)) < 0) {
        log_warn("queue", "contact data not decrypted campaign=%s recipient=%s: %s", r->jr->job.id, r->id, err);
        policy_undecryptable(&r->dec, NULL);
    }
}

/* Decides r. Returns true when the policy lets the message through and it
 * now needs its reservation; otherwise r got its outcome (or left). */
static bool decide_one(struct rcpt *r)
{
    struct jobrun *jr = r->jr;
    struct queue *q = jr->q;
    bool takeover = false;
    if (r->has_rec && queue_own_leftover(jr, &r->rec)) {
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
                queue_rcpt_drop(r);
                return false;
            }
            /* Reserved by a run that ended before handing it to a
             * provider: it was never sent. This run takes it over. */
            takeover = true;
            r->has_rec = false;
            break;
        case REC_PENDING:
            if (this_run) {
                queue_rcpt_drop(r);
                return false;
            }
            /* Handed to a provider by a run that died before recording the
             * result: it may or may not have arrived. Never resend. */
            queue_finish(r, HERALD_OUTCOME_UNKNOWN, HERALD_REASON_INTERRUPTED, -1, NULL, NULL);
            return false;
        default:
            queue_rcpt_drop(r); /* already has its outcome from this job entry */
            return false;
        }
    }
    if (jr->cancelled) {
        /* An operator cancelled the campaign: no decision, no send. */
        queue_finish(r, HERALD_OUTCOME_SUPPRESSED, HERALD_REASON_CANCELLED, -1, NULL, NULL);
        return false;
    }
    if (!takeover) strbuf_reset(&r->prior);
    struct policy_input in;
    const struct profile *person = r->found > 0 ? &r->p : NULL;
    policy_input_init(&in, &q->env, &jr->job, person, person && r->p.tz ? tzdb_get(q->tzdb, r->p.tz) : NULL,
                      r->has_rec && store_record_reached(&r->rec), time(NULL));
    memcpy(in.suppressed, r->suppressed, sizeof(in.suppressed));
    policy_decide(&in, &r->dec);
    if (r->dec.outcome == HERALD_OUTCOME_SENT && r->sealed.len) open_contact(r);
    strbuf_free(&r->sealed); /* decided: what is sent, if anything, is open now */
    if (r->dec.outcome == HERALD_OUTCOME_DEFERRED) queue_defer(jr, r->id, r->dec.until);
    if (r->dec.outcome != HERALD_OUTCOME_SENT) {
        queue_finish(r, r->dec.outcome, r->dec.reason, r->dec.channel, NULL, NULL);
        return false;
    }
    if (queue_run_ended(jr)) {
        queue_rcpt_unfinished(r); /* not reserved yet: the next run decides it */
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
    queue_run_pin(jr);
    /* decide_one may free recipients; the batch is done with them after. */
    for (size_t i = 0; i < b->n; i++)
        if (decide_one(b->r[i])) queue_ready_push(jr->q, b->r[i]);
    if (!b->relookup) jr->loading = false;
    free(b->r);
    free(b->look);
    free(b);
    queue_run_unpin(jr);
}

/* A batch whose lookup was refused: nothing is decided from it; its
 * recipients leave unfinished and the run is held. */
static void batch_refused(struct batch *b, enum store_error err, const char *text, const char *what)
{
    struct jobrun *jr = b->jr;
    queue_run_pin(jr);
    queue_run_hold(jr, err, text, what);
    if (!b->relookup) jr->loading = false;
    for (size_t i = 0; i < b->n; i++) queue_rcpt_unfinished(b->r[i]);
    free(b->r);
    free(b->look);
    free(b);
    queue_run_unpin(jr);
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
    /* The members the lookup read beside the envelope (or computed from
     * the addresses it read): no address is needed here. */
    const unsigned char **members = xcalloc((b->n ? b->n : 1) * HERALD_CH_COUNT, sizeof(*members));
    bool(**out)[HERALD_CH_COUNT] = xcalloc(b->n ? b->n : 1, sizeof(*out));
    for (size_t i = 0; i < b->n; i++) {
        struct rcpt *r = b->r[i];
        out[i] = &r->suppressed;
        for (int ch = 0; ch < HERALD_CH_COUNT; ch++)
            if (r->found > 0 && (r->p.indexed >> ch & 1u)) members[i * HERALD_CH_COUNT + (size_t)ch] = r->p.member[ch];
    }
    if (store_job_any_address(members, b->n))
        q->ops->suppressed(q->st, members, (bool(*const *)[HERALD_CH_COUNT])out, b->n, on_suppressed, b,
                             queue_discard_batch);
    else
        batch_decide(b);
    free(members);
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
        else if (r->found > 0 && r->p.undecryptable) /* failed by the policy, never sent */
            log_warn("queue", "contact data not decrypted campaign=%s recipient=%s: %s", b->jr->job.id, r->id,
                     row->unread);
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
void queue_lookup(struct jobrun *jr, char **ids, size_t n, bool relookup)
{
    struct queue *q = jr->q;
    struct batch *b = xcalloc(1, sizeof(*b));
    b->jr = jr;
    b->relookup = relookup;
    b->r = xcalloc(n ? n : 1, sizeof(*b->r));
    size_t nvalid = 0;
    for (size_t i = 0; i < n; i++) {
        struct rcpt *r = queue_rcpt_new();
        r->jr = jr;
        r->valid_id = herald_id_valid(ids[i]);
        r->id = r->valid_id ? ids[i] : invalid_id_standin(ids[i]);
        nvalid += r->valid_id; /* no person can exist under an invalid id */
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
        row->envelope = &r->sealed;
        rows[k++] = row;
    }
    unsigned channels = 0;
    for (int i = 0; i < jr->job.nchannels; i++) channels |= 1u << jr->job.channels[i];
    q->ops->lookup(q->st, jr->job.id, channels, rows, nvalid, on_lookup, b, queue_discard_batch);
    free(rows);
}

/* ---- recipient sources ----------------------------------------------- */

static void on_page(const struct store_job_result *res, void *arg)
{
    struct jobrun *jr = arg;
    struct store_page *pg = &jr->page;
    if (res->status != STORE_JOB_OK) {
        /* Never "no more recipients" on a failed read: the job is held. */
        queue_run_hold(jr, res->err, res->text, "reading the recipients");
        jr->loading = false;
        queue_maybe_more(jr);
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
        queue_maybe_more(jr);
        return;
    }
    queue_lookup(jr, ids, n, false);
    free(ids);
}

void queue_load_batch(struct jobrun *jr)
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
        queue_lookup(jr, ids, n, false);
        free(ids);
        return;
    }
    static const enum store_source kinds[] = {[SRC_SET] = STORE_SRC_SET, [SRC_ZSET] = STORE_SRC_ZSET,
                                              [SRC_LIST] = STORE_SRC_LIST};
    q->ops->source_page(q->st, kinds[jr->src], jr->src_key, jr->cursor, jr->list_pos, (long)q->cfg->batch,
                          &jr->page, on_page, jr, NULL);
}

/* What recipients_key holds, and how many: the job's total. */
void queue_on_source_open(const struct store_job_result *res, void *arg)
{
    struct jobrun *jr = arg;
    struct queue *q = jr->q;
    jr->loading = false; /* set while TYPE and the count were pending */
    if (res->status != STORE_JOB_OK || queue_run_ended(jr)) {
        if (!queue_run_ended(jr)) queue_run_hold(jr, res->err, res->text, "reading recipients_key");
        queue_maybe_more(jr);
        return;
    }
    if (!jr->info.found) {
        char msg[256];
        if (strcmp(jr->info.type, "none") == 0)
            snprintf(msg, sizeof(msg), "recipients_key: the key does not exist");
        else
            snprintf(msg, sizeof(msg), "recipients_key: the key is a %.32s; expected a set, zset or list",
                     jr->info.type);
        queue_job_remove(q, jr);
        queue_dead_letter(q, jr->entry, jr->text, msg);
        queue_run_free(jr);
        return;
    }
    jr->src = jr->info.kind == STORE_SRC_SET ? SRC_SET : jr->info.kind == STORE_SRC_ZSET ? SRC_ZSET : SRC_LIST;
    if (!jr->resumed) q->ops->total(q->st, jr->job.id, jr->entry, jr->info.count);
    if (queue_cut_wanted(jr)) {
        queue_cut(jr);
        return;
    }
    jr->started = true;
    queue_maybe_more(jr);
}
