/*
 * queue_int.h - what the job pipeline's stages share (private to queue*.c).
 *
 * The pipeline is split by stage, each a file over the same run state:
 *   queue.c          the consumer: reading the stream, starting, refusing,
 *                    scheduling a job, the heartbeat, the public API;
 *                    up to [daemon] max_jobs runs side by side (q->jobs);
 *   queue_source.c   a run's recipient source, the lookup, the suppression
 *                    check and the decision (policy);
 *   queue_ready.c    each run's ready queue, the weighted round robin between
 *                    runs, the reservation, rendering, the handoff gate and
 *                    dispatch;
 *   queue_outcome.c  outcomes, written in batches;
 *   queue_run.c      a run's life: recipients leaving, hold, lost, the end of
 *                    a job (acknowledged only when every recipient has its
 *                    outcome), deferrals parked for their quiet hours.
 * No stage speaks Redis: every call goes through the store table
 * (store_job.h: q->ops on q->st), which a unit test fakes.
 */
#ifndef HERALD_QUEUE_INT_H
#define HERALD_QUEUE_INT_H

#include <jansson.h>

#include "dispatch.h"
#include "job.h"
#include "log.h"
#include "policy.h"
#include "profile.h"
#include "queue.h"
#include "quiet.h"
#include "store.h"
#include "store_job.h"
#include "tz.h"

#define QUEUE_BLOCK_MS 2000
#define QUEUE_BLOCK_BUSY_MS 250    /* ... while jobs run */
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
    char hslot[8];        /* the history slot the reservation took, "h<slot>" ("": finish.lua takes one) */
    char rev[24];         /* the person's `rev` at lookup ("" when none) */
    struct strbuf prior;  /* a dead run's reservation of this message, to take over ("" none) */
    struct strbuf sealed; /* its contact data from the lookup to the decision, still sealed ("" none) */
    struct rcpt *next_ready; /* reserved, waiting for its turn to be rendered and sent */
    bool was_deferred;    /* deferred before: its deferral ends with this outcome */
    bool dispatched;      /* went to dispatch: requests is its count of provider requests */
    int requests;
    const char *locale;   /* the language of the content sent (the job's), NULL: not per language */
    bool erased;          /* its reservation vanished before the handoff: the person was erased */
    struct hbatch *hb;    /* the handoff mark it waits for (NULL: none) */
    size_t hb_i;          /* its slot there */
    char idem[HERALD_IDEMPOTENCY_KEY_MAX + 1]; /* the same for every request of this message */
    char cap[HERALD_ID_MAX + 1]; /* the cap that blocked, for reason cap:<name> */
    struct dispatch_msg msg;
    /* What msg points to, in two allocations: the links
     * ("<unsubscribe URL>\0<preferences URL>", links_build; "" none), and
     * the rendered subject, text and html, each NUL-terminated. */
    struct strbuf links, parts;
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
 * or lost (another consumer owns the entry now: nothing more is written),
 * or steered (an operator paused or cancelled the campaign: what it had not
 * handed to a provider is given back; a pause parks the job until resume,
 * a cancel runs it again at once to give each unsent recipient its
 * outcome). */
enum run_end { RUN_ON, RUN_HELD, RUN_LOST, RUN_STEERED };

struct ready_list {
    struct rcpt *head, *tail;
    size_t n;
    int64_t wrr;
};

struct jobrun {
    struct queue *q;
    struct jobrun *next; /* in q->jobs, in the order they were read */
    char entry[64];
    char run[32];  /* "<daemon run>.<n>": what the records it writes name */
    uint64_t reserve_seq; /* its reservations' last sequence number (queue_ready.c) */
    struct store_enqueue_result enq; /* the campaign's run this entry registered (a new entry only) */
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
    bool resumed;  /* re-run of deferred or paused recipients: its total is counted already */
    /* The campaign's control field (an operator's pause or cancel), read
     * before the first recipient and every second after; a cancelled run
     * gives each recipient without an outcome suppressed/cancelled. */
    enum store_control control;
    bool control_known;
    bool cancelled;
    /* Recipients deferred by this run, grouped by when their window ends;
     * parked in Redis as one scheduled job per group before the ack. */
    struct deferral *deferrals;
    size_t ndeferrals;
    bool deferrals_parked;
    /* Outcomes waiting for their finishing write (finish_flush). */
    struct store_outcomes fin;
    /* The texts of its last outcome (queue_finish): the next one that
     * shares what they are made of, as thousands a second do, reuses them. */
    struct outcome_texts {
        bool valid, record_it, keep;
        int64_t now;
        enum herald_outcome outcome;
        int channel;
        char reason[HERALD_ID_MAX + 8];
        char provider[HERALD_ID_MAX + 1];
        char record[384];
        struct strbuf history;
    } texts;
    /* Its handoffs for the next write (they go with its outcomes, under its
     * fence), and its finishing writes in flight. */
    struct hbatch *hpending, *hpending_tail;
    int flushing;
    /* Its recipients the policy let through, waiting for their reservation,
     * one list per channel (each channel has providers of its own); which
     * run's go next on a channel is a smooth weighted round robin (nginx's):
     * each turn every run with some adds its weight to that list's wrr, the
     * largest goes and gives back the sum. nready: in all its lists. */
    struct ready_list ready[HERALD_CH_COUNT];
    size_t nready;
    bool control_asking; /* its control field is being read */
    bool cutting;        /* its recipients_key is being cut into slices (queue_cut) */
    bool recall_due;     /* ended (paused, cancelled, lost): its messages in dispatch are taken back
                          * at the next loop iteration (queue_on_ready_idle), where it is pinned */
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
    struct jobrun *jobs; /* the runs, at most cfg->max_jobs (a reload may leave more until they end) */
    size_t njobs;
    bool reading;       /* a read is outstanding on the jobs connection */
    enum store_read_mode read_mode; /* ... of this kind */
    bool own_pending_done;
    char own_after[64]; /* our pending entries are read after this id ("0": from the first) */
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
    char layout[8];        /* ... and the key layout it found */
    bool layout_ok;        /* the layout is this build's (STORE_LAYOUT): jobs may be read */
    bool layout_said;      /* the mismatch was logged */
    uv_timer_t heartbeat;
    uv_timer_t retry; /* after a refused read: wait, never spin */
    uv_timer_t release_timer; /* moves due scheduled jobs back to the stream */
    /* One live daemon per consumer name (lua/consumer_lock.lua): no job is
     * read before the name is ours; renewed every ttl / 3. */
    bool name_held, name_asking, name_in_use;
    bool lock_releasing;   /* a clean stop's release of the name is in flight (drained fires after) */
    char lock_value[HERALD_LOCK_VALUE_MAX];  /* "<host> <pid> <run>" */
    char lock_holder[HERALD_LOCK_VALUE_MAX]; /* another holder's value */
    char lock_dead[HERALD_LOCK_VALUE_MAX];   /* a holder known to be gone: taken over */
    int64_t lock_ttl_ms;
    uv_timer_t lock_timer;
    struct log_complaint lock_complaint;
    uv_timer_t control_timer; /* reads the running campaigns' control fields every second */
    bool releasing;
    long long released_due; /* the last release's count */
    struct queue_counters counters;
    struct log_complaint read_complaint;
    struct tzdb *tzdb;
    const struct tz *default_tz;
    struct policy_env env; /* consent max_age, default zone, ops quiet hours */
    int64_t cap_keep_s; /* history the caps need: their longest window */
    uv_check_t flush_check; /* writes the outcomes and handoffs of one loop iteration */
    uv_idle_t flush_wake;   /* a handoff waits for that write: the loop must not sleep */
    /* Reserved recipients are rendered and handed to dispatch just in time
     * (while dispatch holds fewer than the channel's ready_target: four
     * times its providers' concurrency), a slice per loop iteration:
     * rendering a whole batch in one callback would leave the providers'
     * connections idle meanwhile. Per channel, so that a slow or
     * rate-limited provider fills only its own room. nready: in every run's
     * lists, nready_ch: in every run's list of the channel. */
    size_t nready, nready_ch[HERALD_CH_COUNT], ready_target[HERALD_CH_COUNT];
    size_t reserving[HERALD_CH_COUNT]; /* in a reservation script now */
    uv_idle_t ready_idle;
    int64_t at_second; /* the second at_text shows */
    char at_text[32];
    int handles_open;
};

/* Messages at dispatch's handoff gate, recorded "handed" (with the
 * iteration's outcomes, in one script) before any of them leaves: after a
 * crash only these can be `unknown`. */
struct hbatch {
    struct queue *q;
    struct jobrun *jr;
    struct dispatch_msg **msgs;      /* NULL where the message finished meanwhile */
    struct store_job_handoff *items; /* the script's rows: the batch's own */
    size_t n;
    struct hbatch *next;             /* in jr->hpending */
};

/* ---- queue_run.c ---- */
/* A zeroed recipient, its buffers empty: one that queue_rcpt_free kept,
 * when there is one (it keeps a few, with their buffers). */
struct rcpt *queue_rcpt_new(void);
void queue_rcpt_free(struct rcpt *r);
/* Frees what queue_rcpt_free kept (queue_free). */
void queue_rcpt_spares_free(void);
void queue_discard_rcpt(void *arg);
void queue_discard_batch(void *arg);
/* A recipient leaves the job without a new outcome (already recorded by
 * this entry, or decided by another copy of it in this run). */
void queue_rcpt_drop(struct rcpt *r);
/* ... or unfinished (stopping, held, lost): the job is not acknowledged. */
void queue_rcpt_unfinished(struct rcpt *r);
bool queue_run_ended(const struct jobrun *jr);
void queue_run_pin(struct jobrun *jr);
void queue_run_unpin(struct jobrun *jr);
void queue_run_hold(struct jobrun *jr, enum store_error err, const char *text, const char *what);
void queue_run_lost(struct jobrun *jr, const char *why);
void queue_run_steer(struct jobrun *jr, enum store_control c);
void queue_run_free(struct jobrun *jr);
void queue_maybe_more(struct jobrun *jr);
/* The running jobs, each pinned (queue_run_pin) so that a loop over them
 * may let any of them end: the caller unpins each and frees the array.
 * Returns their count. */
size_t queue_jobs_pinned(struct queue *q, struct jobrun ***out);
/* Lets every running job read more (its share of max_in_flight grew). */
void queue_jobs_more(struct queue *q);
/* The run of that stream entry, or NULL. */
struct jobrun *queue_job_find(const struct queue *q, const char *entry);
/* Recipients held by every run. */
size_t queue_jobs_outstanding(const struct queue *q);
void queue_defer(struct jobrun *jr, const char *id, int64_t until);
void queue_park_deferrals(struct jobrun *jr);
void queue_on_acked(const struct store_job_result *res, void *arg);

/* ---- queue_outcome.c ---- */
void queue_finish(struct rcpt *r, enum herald_outcome outcome, enum herald_reason reason, int channel,
                  const char *provider, const char *provider_id);
void queue_on_flush_check(uv_check_t *h);
void queue_on_flush_wake(uv_idle_t *h);

/* ---- queue_ready.c ---- */
void queue_ready_kick(struct queue *q);
void queue_ready_push(struct queue *q, struct rcpt *r);
/* take[i]: how many of the next room reservations on channel ch go to run
 * v[i] (a smooth weighted round robin by priority over the runs with ready
 * recipients on ch; each run's wrr for ch carries over between calls). */
void queue_ready_share(struct jobrun *const *v, size_t n, int ch, size_t room, size_t *take);
void queue_on_ready_idle(uv_idle_t *h);
void queue_on_handoff(struct dispatch_msg **msgs, size_t n, void *arg);
/* The store's answer for hb (its items' `handed` set when OK): each message
 * is let go or not; frees hb. */
void queue_hbatch_answer(struct hbatch *hb, const struct store_job_result *res);
void queue_hbatch_discard(void *arg);
/* Takes jr's messages that no provider has yet back from dispatch (each
 * finishes interrupted: its reservation is given back); others' stay. */
void queue_recall_run(struct jobrun *jr);
bool queue_own_leftover(const struct jobrun *jr, const struct store_record *rec);

/* ---- queue_source.c ---- */
void queue_lookup(struct jobrun *jr, char **ids, size_t n, bool relookup);
void queue_load_batch(struct jobrun *jr);
void queue_on_source_open(const struct store_job_result *res, void *arg);

/* ---- queue.c ---- */
void queue_read_next(struct queue *q);
/* Whether jr, whose recipients_key was opened, is to be cut into slices;
 * and the cut (the run ends once its slices are in the stream). */
bool queue_cut_wanted(const struct jobrun *jr);
void queue_cut(struct jobrun *jr);
/* Takes jr off the running jobs (its slot is free; the heartbeat stops with the last). */
void queue_job_remove(struct queue *q, struct jobrun *jr);
void queue_check_drained(struct queue *q);
void queue_dead_letter(struct queue *q, const char *entry, const char *text, const char *error);

#endif
