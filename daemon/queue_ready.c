/*
 * queue_ready.c - the ready queue, reservation, rendering, the handoff gate.
 *
 * Owns the recipients the policy let through until dispatch has them:
 * reserved just before the providers have room (so a change of mind
 * applies to every message not yet reserved), rendered, handed to
 * dispatch, and recorded "handed" at dispatch's gate before the first
 * request leaves. Never sends a message whose reservation is not ours.
 * Runs side by side each have a ready list; which run's recipients are
 * reserved (and so offered to dispatch) next is a smooth weighted round
 * robin by priority, so each run gets its share of every provider.
 */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "digest.h"
#include "links.h"
#include "log.h"
#include "queue_int.h"
#include "template.h"


/* ---- sending --------------------------------------------------------- */

static void on_released(const struct store_job_result *res, void *arg)
{
    struct rcpt *rc = arg;
    if (res->status == STORE_JOB_LOST) queue_run_lost(rc->jr, "a reservation could not be given back (fence)");
    queue_rcpt_unfinished(rc);
}

/* No provider took r (the daemon is stopping): its reservation is given
 * back, so that the next run sends it instead of calling it unknown. */
static void release(struct rcpt *r)
{
    struct jobrun *jr = r->jr;
    struct queue *q = jr->q;
    if (jr->end == RUN_LOST) {
        queue_rcpt_unfinished(r);
        return;
    }
    q->ops->release(q->st, jr->entry, jr->job.id, r->id, r->record.buf, r->member.buf, on_released, r,
                      queue_discard_rcpt);
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
        queue_ready_kick(q);
        queue_finish(r, HERALD_OUTCOME_SUPPRESSED, HERALD_REASON_UNKNOWN_RECIPIENT, m->channel, NULL, NULL);
        return;
    }
    if (m->interrupted) {
        release(r);
        return;
    }
    r->requests = m->requests;
    queue_ready_kick(q); /* a slot is free */
    if (m->outcome == HERALD_OUTCOME_SENT)
        log_debug("queue", "sent campaign=%s recipient=%s provider=%s provider_id=%s", r->jr->job.id, r->id,
                  m->provider, m->provider_id);
    r->dispatched = true;
    queue_finish(r, m->outcome, m->reason, m->channel, m->provider, m->provider_id);
}

/* An attribute read from the text of the person's attributes (profile.h). */
static bool text_lookup(void *ctx, const char *name, const char **s, size_t *len)
{
    const struct profile *p = ctx;
    return profile_attribute_text(p->attributes_text, p->attributes_text_len, name, s, len);
}

/* Renders t at the end of r->parts, NUL-terminated: where it starts, or
 * SIZE_MAX for no template. */
static size_t render(struct jobrun *jr, const struct template *t, struct rcpt *r, const struct template_vars *vars,
                     enum template_escape esc)
{
    if (!t) return SIZE_MAX;
    size_t at = r->parts.len;
    jr->missing_fields += r->p.attributes_text
                              ? template_render_with(t, text_lookup, &r->p, vars, esc, &r->parts)
                              : template_render(t, r->p.attributes, vars, esc, &r->parts);
    strbuf_add(&r->parts, "", 1);
    return at;
}

/* The message's subject, text and html rendered into r->parts, and
 * msg's pointers to them (set once the buffer no longer moves). */
static void render_parts(struct jobrun *jr, const struct job_content *c, struct rcpt *r,
                         const struct template_vars *vars)
{
    const struct template *t[] = {c->t_subject, c->t_text, c->t_html};
    char **out[] = {&r->msg.subject, &r->msg.text, &r->msg.html};
    enum { NPARTS = sizeof(t) / sizeof(t[0]) };
    /* One allocation for a typical message: each part's source, and room
     * for the values and links that replace its fields. */
    size_t room = 0, at[NPARTS];
    for (size_t i = 0; i < NPARTS; i++)
        if (t[i]) room += template_source_len(t[i]) + 2 * QUEUE_LINK_ROOM;
    strbuf_reset(&r->parts);
    strbuf_grow_to(&r->parts, room);
    for (size_t i = 0; i < NPARTS; i++) at[i] = render(jr, t[i], r, vars, i == 2 ? TEMPLATE_HTML : TEMPLATE_RAW);
    for (size_t i = 0; i < NPARTS; i++) *out[i] = at[i] == SIZE_MAX ? NULL : r->parts.buf + at[i];
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

static void hbatch_free(struct hbatch *hb)
{
    free(hb); /* its messages and rows with it (handoff_run) */
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

void queue_hbatch_discard(void *arg)
{
    struct hbatch *hb = arg;
    for (size_t i = 0; i < hb->n; i++)
        if (hb->msgs[i]) rcpt_of(hb->msgs[i])->hb = NULL;
    hbatch_free(hb);
}

void queue_hbatch_answer(struct hbatch *hb, const struct store_job_result *res)
{
    struct jobrun *jr = hb->jr;
    bool ok = res->status == STORE_JOB_OK;
    if (res->status == STORE_JOB_LOST) queue_run_lost(jr, "the handoff was refused by the fence");
    else if (!ok) queue_run_hold(jr, res->err, res->text, "recording the handoff");
    struct dispatch_msg **go_msgs = xcalloc(hb->n ? hb->n : 1, sizeof(*go_msgs));
    bool *go = xcalloc(hb->n ? hb->n : 1, sizeof(*go));
    size_t k = 0;
    for (size_t i = 0; i < hb->n; i++) {
        if (!hb->msgs[i]) continue; /* finished meanwhile (drain timeout) */
        struct rcpt *r = rcpt_of(hb->msgs[i]);
        r->hb = NULL;
        /* Sent only when the record says handed. Not sent: lost (its new owner decides it), held (the mark's fate
         * is unknown: released, the next run decides), erased (its
         * reservation vanished). Each then finishes as interrupted. */
        if (ok && !hb->items[i].handed) r->erased = true;
        go_msgs[k] = hb->msgs[i];
        /* A run paused or cancelled meanwhile gives it back (released,
         * "handed" as it is recorded: no provider has it); one that lost
         * its entry lets nothing more leave (its new owner calls it unknown). */
        go[k++] = ok && hb->items[i].handed && jr->end != RUN_STEERED && jr->end != RUN_LOST;
    }
    struct queue *q = hb->q;
    hbatch_free(hb);
    dispatch_handoff_done(q->d, go_msgs, k, go);
    free(go_msgs);
    free(go);
}

static bool msg_of_run(const struct dispatch_msg *m, void *arg)
{
    return rcpt_of((struct dispatch_msg *)m)->jr == arg;
}

void queue_recall_run(struct jobrun *jr)
{
    dispatch_recall_if(jr->q->d, msg_of_run, jr);
}

/* The messages of one run at the gate: recorded with its outcomes. */
static void handoff_run(struct queue *q, struct jobrun *jr, struct dispatch_msg **msgs, size_t n)
{
    /* A lost run writes nothing: none leaves. A steered run gives back
     * what no provider has yet: refused here, each is released. */
    if (jr->end == RUN_LOST || jr->end == RUN_STEERED) {
        bool *go = xcalloc(n, sizeof(*go));
        dispatch_handoff_done(q->d, msgs, n, go);
        free(go);
        return;
    }
    /* One allocation for the batch, its rows and its messages. */
    _Static_assert(sizeof(struct hbatch) % _Alignof(struct store_job_handoff) == 0 &&
                       sizeof(struct store_job_handoff) % _Alignof(struct dispatch_msg *) == 0,
                   "the rows and the messages follow the batch aligned");
    struct hbatch *hb = xcalloc(1, sizeof(*hb) + n * (sizeof(*hb->items) + sizeof(*hb->msgs)));
    hb->q = q;
    hb->jr = jr;
    hb->n = n;
    hb->items = (struct store_job_handoff *)(void *)(hb + 1);
    hb->msgs = (struct dispatch_msg **)(void *)(hb->items + n);
    memcpy(hb->msgs, msgs, n * sizeof(*msgs));
    for (size_t i = 0; i < n; i++) {
        struct rcpt *r = rcpt_of(msgs[i]);
        r->hb = hb;
        r->hb_i = i;
        hb->items[i].id = r->id; /* valid while msgs[i] is (hbatch_forget) */
        hb->items[i].record = r->record.buf;
        hb->items[i].expires_at = jr->job.expires_at;
    }
    /* Recorded with this iteration's outcomes, in the same script, at the
     * end of the iteration (queue_on_flush_check): no round trip of its own. */
    hb->next = NULL;
    if (jr->hpending_tail) jr->hpending_tail->next = hb;
    else jr->hpending = hb;
    jr->hpending_tail = hb;
    uv_check_start(&q->flush_check, queue_on_flush_check);
    uv_idle_start(&q->flush_wake, queue_on_flush_wake); /* do not sleep before it */
}

/* dispatch's handoff gate: msgs are about to get their first request.
 * They may belong to several runs: each run's go in one batch of its own. */
void queue_on_handoff(struct dispatch_msg **msgs, size_t n, void *arg)
{
    struct queue *q = arg;
    /* Usually all of one run: then as they are. */
    size_t same = 1;
    while (same < n && rcpt_of(msgs[same])->jr == rcpt_of(msgs[0])->jr) same++;
    if (same >= n) {
        if (n) handoff_run(q, rcpt_of(msgs[0])->jr, msgs, n);
        return;
    }
    struct dispatch_msg **mine = xcalloc(n ? n : 1, sizeof(*mine));
    bool *taken = xcalloc(n ? n : 1, sizeof(*taken));
    for (size_t i = 0; i < n; i++) {
        if (taken[i]) continue;
        struct jobrun *jr = rcpt_of(msgs[i])->jr;
        size_t k = 0;
        for (size_t j = i; j < n; j++) {
            if (taken[j] || rcpt_of(msgs[j])->jr != jr) continue;
            taken[j] = true;
            mine[k++] = msgs[j];
        }
        handoff_run(q, jr, mine, k);
    }
    free(mine);
    free(taken);
}

static void send_message(struct rcpt *r)
{
    struct jobrun *jr = r->jr;
    struct queue *q = jr->q;
    int ch = r->dec.channel;
    const struct job_content *c = job_content_for(&jr->job, ch, r->p.locale, &r->locale);
    size_t prefs_at = links_build(&r->links, q->cfg->public_url, q->cfg->link_secret, q->cfg->link_ttl_ms / 1000,
                                  time(NULL), r->id, jr->job.id, jr->job.topic, herald_channel_name(ch));
    memset(&r->msg, 0, sizeof(r->msg));
    r->msg.channel = ch;
    r->msg.campaign = jr->job.id;
    r->msg.recipient = r->id;
    r->msg.topic = jr->job.topic;
    r->msg.to = profile_address(&r->p, ch);
    r->msg.unsubscribe_url = r->links.len ? r->links.buf : NULL;
    r->msg.preferences_url = r->links.len ? r->links.buf + prefs_at : NULL;
    const struct template_vars vars = {.unsubscribe_url = r->msg.unsubscribe_url,
                                       .preferences_url = r->msg.preferences_url};
    render_parts(jr, c, r, &vars);
    r->msg.expires_at = jr->job.expires_at;
    idempotency_key(jr, r);
    r->msg.idempotency_key = r->idem;
    dispatch_submit(q->d, &r->msg, on_sent, r);
}

/* Someone else's record met at reservation time (or at lookup). */
bool queue_own_leftover(const struct jobrun *jr, const struct store_record *rec)
{
    return strcmp(rec->entry, jr->rec_entry) == 0;
}

/* Recipients in one reservation script. */
struct rbatch {
    struct jobrun *jr;
    int ch; /* the channel of every recipient in it */
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
    for (size_t i = 0; i < rb->n; i++) queue_rcpt_free(rb->r[i]);
    rbatch_free(rb);
}

static void reserve(struct rbatch *rb, int64_t now);

/* How many ready recipients of channel ch to reserve now: 0 unless
 * dispatch has room on that channel's providers for a chunk of them (a
 * script for every freed slot would cost more than the reservations
 * themselves), or for all that wait, or they are idle. A slow or
 * rate-limited provider fills only its own channel's room. */
static size_t ready_room(const struct queue *q, int ch)
{
    if (!q->nready_ch[ch]) return 0;
    size_t target = q->ready_target[ch];
    size_t busy = dispatch_in_flight_channel(q->d, ch) + q->reserving[ch];
    size_t room = target > busy ? target - busy : 0;
    if (room > QUEUE_RESERVE_MAX) room = QUEUE_RESERVE_MAX;
    if (room >= target / 4 || q->nready_ch[ch] <= room || busy == 0) return room;
    return 0;
}

/* Starts the reservation step when it has something to do. */
void queue_ready_kick(struct queue *q)
{
    bool ended = false, room = false;
    for (const struct jobrun *jr = q->jobs; jr && !ended; jr = jr->next)
        ended = jr->recall_due || (jr->nready && queue_run_ended(jr));
    if (!ended && !q->nready) return;
    for (int ch = 0; ch < HERALD_CH_COUNT && !ended && !room; ch++) room = ready_room(q, ch) > 0;
    if (ended || room) uv_idle_start(&q->ready_idle, queue_on_ready_idle);
}

static struct rcpt *ready_pop(struct jobrun *jr, int ch)
{
    struct ready_list *l = &jr->ready[ch];
    struct rcpt *r = l->head;
    l->head = r->next_ready;
    if (!l->head) l->tail = NULL;
    l->n--;
    jr->nready--;
    jr->q->nready--;
    jr->q->nready_ch[ch]--;
    return r;
}

/* How many of the next room reservations on channel ch go to each run
 * (take[i] for v[i]): a smooth weighted round robin (nginx's) between the
 * runs with ready recipients on ch, one pick per message, weighted by
 * priority, so that over time each run gets its weight's share of every
 * free slot of the channel's providers. */
void queue_ready_share(struct jobrun *const *v, size_t n, int ch, size_t room, size_t *take)
{
    for (size_t i = 0; i < n; i++) take[i] = 0;
    for (size_t k = 0; k < room; k++) {
        int64_t total = 0;
        struct ready_list *best = NULL;
        size_t bi = 0;
        for (size_t i = 0; i < n; i++) {
            struct ready_list *l = &v[i]->ready[ch];
            if (take[i] >= l->n || queue_run_ended(v[i])) continue;
            int64_t w = job_priority_weight(v[i]->job.priority);
            l->wrr += w;
            total += w;
            if (!best || l->wrr > best->wrr) {
                best = l;
                bi = i;
            }
        }
        if (!best) break;
        best->wrr -= total;
        take[bi]++;
    }
}

/* Reserves the next recipients the policy let through, on each channel as
 * many as its providers have room for (and at most QUEUE_RESERVE_MAX in
 * one script), shared between the runs by queue_ready_share. */
void queue_on_ready_idle(uv_idle_t *h)
{
    struct queue *q = h->data;
    struct jobrun **v;
    size_t n = queue_jobs_pinned(q, &v);
    /* A run that ended gives back its messages no provider has yet, and
     * its ready recipients. */
    for (size_t i = 0; i < n; i++) {
        if (!v[i]->recall_due) continue;
        v[i]->recall_due = false;
        queue_recall_run(v[i]);
    }
    for (size_t i = 0; i < n; i++)
        for (int ch = 0; ch < HERALD_CH_COUNT; ch++)
            while (v[i]->ready[ch].head && queue_run_ended(v[i]))
                queue_rcpt_unfinished(ready_pop(v[i], ch)); /* not reserved yet: the next run decides it */
    bool any = false;
    size_t *take = xcalloc(n ? n : 1, sizeof(*take));
    int64_t now = time(NULL);
    for (int ch = 0; ch < HERALD_CH_COUNT; ch++) {
        size_t room = ready_room(q, ch);
        if (!room) continue;
        any = true;
        queue_ready_share(v, n, ch, room, take);
        for (size_t i = 0; i < n; i++) {
            if (!take[i]) continue;
            struct rbatch *rb = xcalloc(1, sizeof(*rb));
            rb->jr = v[i];
            rb->ch = ch;
            rb->r = xcalloc(take[i], sizeof(*rb->r));
            while (rb->n < take[i]) rb->r[rb->n++] = ready_pop(v[i], ch);
            q->reserving[ch] += rb->n;
            reserve(rb, now);
        }
    }
    free(take);
    for (size_t i = 0; i < n; i++) queue_run_unpin(v[i]);
    free(v);
    /* Empty, or dispatch is full: a finished message or an answered
     * reservation starts us again. Else the next tick sees the room left. */
    if (!any) uv_idle_stop(h);
}

void queue_ready_push(struct queue *q, struct rcpt *r)
{
    struct jobrun *jr = r->jr;
    int ch = r->dec.channel;
    struct ready_list *l = &jr->ready[ch];
    r->next_ready = NULL;
    if (l->tail) l->tail->next_ready = r;
    else l->head = r;
    l->tail = r;
    l->n++;
    jr->nready++;
    q->nready++;
    q->nready_ch[ch]++;
    queue_ready_kick(q);
}

/* One recipient's verdict from the reservation. Returns 1 when it is
 * reserved (the caller hands it over), 2 when the person's data changed
 * since the lookup (the caller decides them again), 0 when it left. */
static int reserved_one(struct rcpt *r, const struct store_job_reservation *res)
{
    const char *detail = res->detail;
    switch (res->verdict) {
    case SJV_STALE: return 2;
    case SJV_OK:
        r->reserved = true;
        herald_copy(r->hslot, sizeof(r->hslot), detail);
        return 1;
    case SJV_DUPLICATE: {
        /* Our own record: our write, answered after a reconnect (its
         * history slot unknown: the outcome takes another). */
        if (strcmp(detail, r->record.buf) == 0) {
            r->reserved = true;
            r->hslot[0] = '\0';
            return 1;
        }
        struct store_record rec;
        if (store_record_parse(detail, &rec) == 0 && queue_own_leftover(r->jr, &rec)) {
            queue_rcpt_drop(r); /* this entry already handled the person (duplicate id in the source) */
            return 0;
        }
        queue_finish(r, HERALD_OUTCOME_SUPPRESSED, HERALD_REASON_DUPLICATE, r->dec.channel, NULL, NULL);
        return 0;
    }
    case SJV_CAP:
        herald_copy(r->cap, sizeof(r->cap), detail);
        queue_finish(r, HERALD_OUTCOME_SUPPRESSED, HERALD_REASON_CAP, r->dec.channel, NULL, NULL);
        return 0;
    case SJV_USER_FREQUENCY:
        queue_finish(r, HERALD_OUTCOME_SUPPRESSED, HERALD_REASON_USER_FREQUENCY, r->dec.channel, NULL, NULL);
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
        if (res->status == STORE_JOB_LOST) queue_run_lost(jr, "the reservation was refused by the fence");
        else queue_run_hold(jr, res->err, res->text, "the reservation");
        q->reserving[rb->ch] -= rb->n;
        for (size_t i = 0; i < rb->n; i++) queue_rcpt_unfinished(rb->r[i]);
        rbatch_free(rb);
        queue_ready_kick(q);
        return;
    }
    /* Decided on data that changed since: look them up again. The new
     * lookup is counted before the old recipients leave, so the job cannot
     * look finished in between. */
    queue_run_pin(jr);
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
    q->reserving[rb->ch] -= rb->n;
    rb->n = nres;
    if (nstale) {
        log_debug("queue", "decided again after a change campaign=%s recipients=%zu", jr->job.id, nstale);
        if (queue_run_ended(jr)) {
            for (size_t i = 0; i < nstale; i++) free(stale[i]);
            for (size_t i = 0; i < nstale; i++) queue_rcpt_unfinished(gone[i]);
        } else {
            queue_lookup(jr, stale, nstale, true);
            for (size_t i = 0; i < nstale; i++) queue_rcpt_drop(gone[i]);
        }
    }
    free(stale);
    free(gone);
    /* Rendered and handed to dispatch; the handoff gate (queue_on_handoff)
     * records "handed" just before each one's first request. */
    for (size_t i = 0; i < rb->n; i++) {
        if (queue_run_ended(jr)) release(rb->r[i]);
        else send_message(rb->r[i]);
    }
    rbatch_free(rb);
    queue_ready_kick(q);
    queue_run_unpin(jr);
}

/* Sends one reservation for the recipients of a batch that the
 * policy let through; takes rb. */
static void reserve(struct rbatch *rb, int64_t now)
{
    struct jobrun *jr = rb->jr;
    struct queue *q = jr->q;
    struct store_job_reservation **items = xcalloc(rb->n ? rb->n : 1, sizeof(*items));
    /* Not zeroed (half a kilobyte each, most of it the answer's room):
     * every field the store reads is set here, and it sets the answer. */
    rb->res = xmalloc((rb->n ? rb->n : 1) * sizeof(*rb->res));
    for (size_t i = 0; i < rb->n; i++) {
        struct rcpt *r = rb->r[i];
        struct store_job_reservation *it = &rb->res[i];
        it->verdict = SJV_OK;
        it->detail[0] = '\0';
        const char *chan = herald_channel_name(r->dec.channel);
        it->nfreq = profile_frequency_limits(&r->p, it->fchan, it->flim, it->fwin, STORE_JOB_FREQ_MAX);
        it->keep = q->cap_keep_s;
        for (size_t j = 0; j < it->nfreq; j++)
            if (it->fwin[j] > it->keep) it->keep = it->fwin[j];
        /* The sequence number makes each reservation unique, so that a
         * second copy of an id in the same batch is a duplicate, and only
         * a retried command meets its own record; counted per run (the
         * record names the run), it is also the reservation's bit in the
         * run's handed log (store.h), which stays dense. */
        store_record_format(&r->record, REC_RESERVED, jr->rec_entry, jr->run, now);
        strbuf_add(&r->record, " ", 1);
        strbuf_addll(&r->record, (long long)++jr->reserve_seq);
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
