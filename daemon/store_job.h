/*
 * store_job.h - the job pipeline's typed calls on its Lua scripts.
 *
 * Owns the C side of the protocol with the scripts in daemon/lua: each call
 * takes a typed request, encodes it as the KEYS and ARGV its script's
 * header describes, and decodes the reply into typed results after
 * checking its whole shape (a reply of another shape is STORE_E_REPLY,
 * never guessed at). The protocol is written here once; the pipeline
 * (queue.c) passes structs, never positions, keys or replies.
 * tests/integration/test_store_job.c round-trips every call through a real
 * redis-server.
 *
 * Every call goes through the command layer (store_cmd.h) and follows its
 * callback rule: cb fires exactly once, unless the layer is freed first,
 * when discard(arg) (if any) runs instead. What a call is given by pointer
 * (rows, items, out arrays) must stay valid until then; strings only
 * during the call. Writing calls carry the fence (lua/fence.lua): their
 * result is STORE_JOB_LOST, and nothing was written, once this daemon's
 * consumer no longer owns the job's stream entry.
 */
#ifndef HERALD_STORE_JOB_H
#define HERALD_STORE_JOB_H

#include "config.h"
#include "profile.h"
#include "store.h"
#include "store_cmd.h"
#include "store_campaign.h"

struct store_job;

enum store_job_status {
    STORE_JOB_OK,
    STORE_JOB_LOST,   /* the fence: another consumer owns the entry, or it is gone */
    STORE_JOB_FAILED, /* a permanent error (err, text), or a reply of the wrong shape (STORE_E_REPLY) */
};

struct store_job_result {
    enum store_job_status status;
    enum store_error err; /* FAILED only */
    const char *text;     /* FAILED only: Redis's text or "unexpected reply" */
};

typedef void (*store_job_cb)(const struct store_job_result *res, void *arg);

/* cfg (prefix, caps, audit_maxlen) and sc outlive it; consumer is copied. */
struct store_job *store_job_new(struct store_cmds *sc, const struct config *cfg, const char *consumer);
/* A reload: cfg (the same prefix) replaces the configuration for every
 * call from now on (caps, audit_maxlen); calls already sent are unchanged. */
void store_job_reload(struct store_job *sj, const struct config *cfg);
void store_job_free(struct store_job *sj);

/* ---- lookup (one HMGET per person, pipelined; held on a permanent error) */

struct store_job_person {
    const char *id;           /* in: a valid id */
    struct profile *p;        /* in: where the profile is parsed */
    struct strbuf *raw_rec;   /* in: receives the once-only record's text */
    struct strbuf *envelope;  /* in: receives the sealed contact data left closed ("" none:
                               * store_person_read) */
    int found;                /* out: 1 profile in *p, 0 none, <0 unreadable (treated as none) */
    char rev[24];             /* out: the person's rev ("" none) */
    bool has_rec;             /* out: a readable once-only record of the campaign */
    struct store_record rec;
    char unread[192];         /* out: why the profile or its sealed data did not read ("" when it did) */
};

/* channels: the campaign's channels (1u << HERALD_CH_*): only their consent
 * fields are read (another channel's reads as none): a field the person
 * hash lacks costs Redis a walk of the whole hash. */
void store_job_lookup(struct store_job *sj, const char *campaign, unsigned channels,
                      struct store_job_person *const *rows, size_t n, store_job_cb cb, void *arg,
                      void (*discard)(void *));

/* ---- suppression (SMISMEMBER; held on a permanent error) -------------- */

/* members[i * HERALD_CH_COUNT + ch]: the keyed member (addrindex.h) of
 * recipient i's address on channel ch (NULL: no address), read during the
 * call; out[i][ch] is set for each member given. */
void store_job_suppressed(struct store_job *sj, const unsigned char *const *members,
                          bool (*const *out)[HERALD_CH_COUNT], size_t n, store_job_cb cb, void *arg,
                          void (*discard)(void *));
/* Whether any of the n recipients has an address to check (else skip). */
bool store_job_any_address(const unsigned char *const *members, size_t n);

/* ---- reservation (lua/reserve.lua; held on a permanent error) --------- */

enum store_job_verdict { SJV_OK, SJV_STALE, SJV_DUPLICATE, SJV_CAP, SJV_USER_FREQUENCY };

#define STORE_JOB_FREQ_MAX (HERALD_CH_COUNT + 1)

struct store_job_reservation {
    const char *id, *rev, *record, *prior, *channel, *member; /* in; prior "" none */
    int64_t keep;                                             /* history to keep (s), 0 none */
    size_t nfreq;                                             /* the person's own limits */
    const char *fchan[STORE_JOB_FREQ_MAX];
    int64_t flim[STORE_JOB_FREQ_MAX], fwin[STORE_JOB_FREQ_MAX];
    enum store_job_verdict verdict;                           /* out */
    char detail[384];  /* out: OK the history slot's field taken (lua/reserve.lua), DUPLICATE the record met,
                          CAP the cap's name */
};

void store_job_reserve(struct store_job *sj, const char *entry, int64_t now, const char *campaign,
                       const char *topic, struct store_job_reservation *const *items, size_t n, store_job_cb cb,
                       void *arg, void (*discard)(void *));

/* ---- the handoff (recorded by store_job_finish) ----------------------- */

struct store_job_handoff {
    const char *id, *record; /* in: the reservation ("reserved ...") */
    int64_t expires_at;      /* in: its job's (0: none): the handed log is kept as long as the records */
    bool handed;             /* out: recorded as handed; false: the reservation is gone (erased) */
};

/* When the once-only records of a campaign that expires at expires_at (0:
 * never) may go, counted from now ([retention], docs/config.md). */
int64_t store_job_records_end(const struct store_job *sj, int64_t expires_at);

/* A reservation's text once handed ("p ..." for "r ...", or for
 * "reserved ..." as records were written before the state codes). */
void store_job_handed_record(struct strbuf *out, const char *record);

/* ---- outcomes (lua/finish.lua; retried until they land) --------------- */

struct store_outcome {
    const char *id;
    const char *record;      /* the once-only record to write, "" none */
    const char *unsend;      /* sends member to remove (a permanent failure), "" none */
    const char *history;     /* the person's history entry (store_history_format), "" none */
    const char *channel, *outcome, *reason, *provider, *provider_id, *at;
    bool reserved;           /* it holds a reservation ("r") */
    bool was_deferred;       /* it leaves the deferred count ("d") */
    bool once;               /* no record, but written once per run ("n") */
    int requests;            /* provider requests, < 0: not dispatched */
    bool pid_key;            /* remember provider_id -> message (the provider has `feedback = on`) */
    const char *locale;      /* the content's language (audit `locale`), "" or NULL: none; only with requests */
    const char *slot;        /* its reservation's history slot's field (lua/reserve.lua), "" or NULL: none */
};

/* Outcomes waiting for one finishing write. */
struct store_outcomes {
    struct store_args keys, args;
    /* What outcomes share (their channel, outcome, reason, provider, at,
     * flags, requests and locale: a "kind"), sent once per call; each
     * outcome names its kind (lua/finish.lua's header). */
    struct store_args kinds;
    size_t nkinds;
    size_t *kind_off, kind_cap; /* where each kind starts in kinds */
    size_t n;
    const char *prefix; /* the key prefix ([redis] prefix) */
    struct strbuf key;  /* scratch */
    size_t *off, cap;   /* per outcome: where its keys and its values start (a cluster splits o by node) */
    /* The run's handed log (store.h) as its finishing writes sent it: each
     * write sends whole the bytes its handoffs touch, bits of earlier ones
     * included. They land in the order sent (store_cmd: nothing overtakes),
     * so a byte in Redis is never older than the last write that sent it. */
    struct strbuf handed;
};

void store_outcomes_init(struct store_outcomes *o, const char *prefix);
void store_outcomes_add(struct store_outcomes *o, const struct store_outcome *oc);
void store_outcomes_free(struct store_outcomes *o);

/* Writes the outcomes in o and records the handoffs in hand (as
 * each one's `handed` is set: true once its record reads "pending ...") in one script, and empties
 * o: a loop iteration's outcomes and handoffs cost one round trip.
 * Idempotent: sent again after a lost connection, nothing is written
 * twice. Retried until it lands. */
void store_job_finish(struct store_job *sj, const char *entry, const char *campaign, const char *rec_entry,
                      struct store_outcomes *o, struct store_job_handoff *const *hand, size_t nhand, store_job_cb cb,
                      void *arg, void (*discard)(void *));

/* Cuts the job of entry into slices (lua/job_slice.lua): each text becomes
 * a stream entry with held_from `from`, its campaign state "queued"; then
 * the job's total, state "done" and acknowledgement, in one script.
 * STORE_JOB_LOST when the run no longer owns entry. */
void store_job_slice(struct store_job *sj, const char *entry, const char *campaign, long long total,
                     const char *from, const char *const *texts, size_t n, store_job_cb cb, void *arg);

enum store_source { STORE_SRC_INLINE, STORE_SRC_SET, STORE_SRC_ZSET, STORE_SRC_LIST };

/* One step of cutting the recipients_key job of entry into slices of size
 * ids (store_job_cut.c): reads the next step ids of its source (kind) from
 * where the cut stands in Redis, each id kept once, on the source's slot
 * (lua/job_cut.lua), then makes a stream entry (held_from `from`) of each
 * slice closed and not yet published, on the control plane's
 * (lua/job_cut_publish.lua); the job's text is text_head, the slice's list
 * key, text_tail. The last step writes the total, state "done" and the
 * acknowledgement. Sets done, slices (published so far) and kept (ids).
 * STORE_JOB_LOST when the run no longer owns entry; held on a refusal for
 * good. */
struct store_cut {
    const char *entry, *campaign, *source, *from, *text_head, *text_tail;
    enum store_source kind;
    long long size, step;
    bool done;         /* out */
    long long slices;  /* out */
    long long kept;    /* out */
};
void store_job_cut(struct store_job *sj, struct store_cut *cut, store_job_cb cb, void *arg);
/* A finished run's recipients_key: deleted when it is a slice's own list
 * (a name store_job_cut gives), left alone otherwise. Retried until it
 * lands. */
void store_job_slice_drop(struct store_job *sj, const char *key);

/* ---- give back, heartbeat --------------------------------------------- */

/* Gives back id's reservation (record, in either form) and its history
 * entry member, so that the next run sends the message. */
void store_job_release(struct store_job *sj, const char *entry, const char *campaign, const char *id,
                       const char *record, const char *member, store_job_cb cb, void *arg, void (*discard)(void *));

/* Keeps entry ours (its idle time reset) without ever taking it back;
 * LOST when another consumer owns it or it is no longer pending. */
void store_job_heartbeat(struct store_job *sj, const char *entry, store_job_cb cb, void *arg,
                         void (*discard)(void *));

/* ---- recipient sources (held on a permanent error) --------------------- */

/* What recipients_key holds: its kind and size, or (ok, found false) a key
 * that is missing or of another type, named in type (for the dead letter). */
struct store_source_info {
    bool found;
    enum store_source kind;
    long long count;
    char type[32];
};

void store_job_source_open(struct store_job *sj, const char *key, struct store_source_info *out, store_job_cb cb,
                           void *arg, void (*discard)(void *));

/* One page of a recipient source, from cursor (sets, zsets) or pos (lists). */
struct store_page {
    char **ids;        /* out: n ids, the caller frees them and the array */
    size_t n;
    char cursor[32];   /* out: the next cursor (sets, zsets) */
    bool done;         /* out: the last page */
};

void store_job_source_page(struct store_job *sj, enum store_source kind, const char *key, const char *cursor,
                           long pos, long count, struct store_page *out, store_job_cb cb, void *arg,
                           void (*discard)(void *));

/* ---- a job's state, parking and acknowledgement (retried until they land) */

/* state:<entry> of the campaign's progress ("running", ...), total:<entry>. */
void store_job_state(struct store_job *sj, const char *campaign, const char *entry, const char *state);
void store_job_state_del(struct store_job *sj, const char *campaign, const char *entry);
void store_job_total(struct store_job *sj, const char *campaign, const char *entry, long long total);
/* A run that gave every recipient its outcome: its state "done" and the
 * acknowledgement in one script (lua/job_finished.lua; a crash never leaves
 * an acknowledged job "running"), with the campaign's `finished` event in
 * herald:events when that was its last work; cb once it landed. */
void store_job_finished(struct store_job *sj, const char *campaign, const char *entry, const char *run,
                        int64_t expires_at, store_job_cb cb, void *arg);
/* An event of the campaign in herald:events (fields event, campaign,
 * entry, at, and error when given); written, retried until it lands. */
void store_job_event(struct store_job *sj, const char *campaign, const char *entry, const char *event,
                     const char *error);
/* A run begins: its state "running" and, when first and the entry did not
 * run before, the campaign's started event (lua/job_started.lua). */
void store_job_started(struct store_job *sj, const char *campaign, const char *entry, bool first);
/* herald:dead gets {error, entry: text, job_entry, field:<name> for every
 * other field of the entry}, addresses redacted, and entry is acknowledged
 * and deleted from the jobs stream, in one script (lua/dead_letter.lua). */
void store_job_dead_letter(struct store_job *sj, const char *entry, const char *text, const char *error,
                           store_job_cb cb, void *arg);
/* Parks a job in the scheduled set until `when` (member "<from>\n<text>"). */
void store_job_park(struct store_job *sj, int64_t when, const char *from, const char *text, store_job_cb cb,
                    void *arg);
/* A job for later: parked, its state "scheduled", then acknowledged. */
void store_job_schedule(struct store_job *sj, const char *campaign, const char *entry, int64_t when,
                        const char *from, const char *text, store_job_cb cb, void *arg);
/* An entry deleted while pending: acknowledged, nothing else. */
void store_job_ack(struct store_job *sj, const char *entry);
/* Moves at most max due scheduled jobs back to the stream; *moved says how many. */
void store_job_release_due(struct store_job *sj, int64_t now, int max, long long *moved, store_job_cb cb,
                           void *arg);
/* Sets herald's marker key if absent; *was_absent says whether it was.
 * layout receives the key layout's version found (lua/marker.lua; set to
 * STORE_LAYOUT on a Redis herald never wrote to). */
void store_job_marker(struct store_job *sj, bool *was_absent, char layout[8], store_job_cb cb, void *arg);

/* The daemon's hold on its consumer name (lua/consumer_lock.lua). take:
 * ours when free, ours already, or held by `dead` (a holder known to be
 * gone; "" none); renew: the same without `dead`, with a fresh ttl;
 * release: gone if ours. *holder (size HERALD_LOCK_VALUE_MAX) is the other
 * holder's value, "" when the name is ours. */
#define HERALD_LOCK_VALUE_MAX 192
enum store_lock_action { STORE_LOCK_TAKE, STORE_LOCK_RENEW, STORE_LOCK_RELEASE };
void store_job_consumer_lock(struct store_job *sj, enum store_lock_action action, const char *value,
                             int64_t ttl_ms, const char *dead, char *holder, store_job_cb cb, void *arg);

/* What an operator said of a campaign (lua/campaign_control.lua). */
enum store_control { STORE_CONTROL_NONE, STORE_CONTROL_PAUSED, STORE_CONTROL_CANCELLED, STORE_CONTROL_EXPIRED };
/* Reads the campaign's control field into *out (any other value: NONE);
 * EXPIRED when its once-only records are gone ([retention]): a run of its
 * id could send to someone a second time, so none starts. */
/* A stream entry someone added is a run of its campaign id: registered
 * here (lua/campaign_enqueue.lua) before anything of it is read or
 * decided, or refused (out->status LIVE or FINISHED: the caller
 * dead-letters it). e->entry must be set. A permanent error holds the job. */
void store_job_register(struct store_job *sj, const struct store_enqueue *e, struct store_enqueue_result *out,
                        store_job_cb cb, void *arg);
void store_job_control(struct store_job *sj, const char *campaign, enum store_control *out, store_job_cb cb,
                       void *arg);
/* A run that met a pause parks its job in the campaign's paused hash
 * (entry -> "<from>\n<text>"), sets its state "paused", then acknowledges
 * it; resume or cancel puts it back into the stream. */
void store_job_pause_park(struct store_job *sj, const char *campaign, const char *entry, const char *from,
                          const char *text, store_job_cb cb, void *arg);

/* ---- reading the job stream (the jobs connection) ---------------------- */

/* Blocking reads go on their own connection (rconn), not through the
 * command layer: a read that waits for new jobs must not hold up writes. */
enum store_read_mode {
    STORE_READ_GROUP, /* create the consumer group (from the stream's start) */
    STORE_READ_OWN,   /* the first of this consumer's own pending entries */
    STORE_READ_NEW,   /* a new entry, waiting up to block_ms */
    STORE_READ_CLAIM, /* take over an entry idle for claim_idle_ms (another consumer died) */
};

enum store_read_status {
    STORE_READ_ENTRY,   /* an entry: id, job (NULL when it has no `job` field), held_from */
    STORE_READ_NONE,    /* nothing to read (or the group exists already, or was created) */
    STORE_READ_DELETED, /* id was deleted from the stream while pending */
    STORE_READ_NOGROUP, /* the stream or its group is gone: create it again */
    STORE_READ_FAILED,  /* an error reply (err, text) or a reply of the wrong shape */
    STORE_READ_CLOSED,  /* the connection was lost: read again once it is back */
};

struct store_read_result {
    enum store_read_status status;
    const char *id;         /* ENTRY, DELETED */
    const char *job;        /* ENTRY: the job's text, or NULL */
    size_t job_len;
    const char *held_from;  /* ENTRY: the entry it was held as, or NULL */
    enum store_error err;   /* FAILED */
    const char *text;       /* FAILED */
};

typedef void (*store_read_cb)(const struct store_read_result *res, void *arg);

/* Returns 0 (cb fires once, strings valid during it) or < 0 when the
 * connection is not usable (cb never fires). STORE_READ_OWN reads the
 * consumer's first pending entry after the id `after` ("0": from the
 * start), so that a daemon running several jobs walks past its own
 * running ones; the other modes ignore it. */
int store_job_read(struct store_job *sj, struct rconn *jobs, enum store_read_mode mode, const char *after,
                   int64_t block_ms, int64_t claim_idle_ms, store_read_cb cb, void *arg);

/* ---- the pipeline's store as a table ------------------------------------ */

/* What the job pipeline (queue.c) calls: store_job_ops below on a struct
 * store_job, or a fake in the unit tests (tests/unit/test_queue.c), which
 * can fail any call. Each entry is the store_job_* call of its name. */
struct store_ops {
    bool (*ready)(void *s, bool jobs);                 /* the jobs (or data) connection is usable */
    void (*connected)(void *s);                        /* the data connection is back: send what waits */
    bool (*idle)(void *s);                             /* nothing waits, nothing is in flight */
    void (*status)(void *s, struct store_cmds_status *out);
    void (*lookup)(void *s, const char *campaign, unsigned channels, struct store_job_person *const *rows, size_t n,
                   store_job_cb cb, void *arg, void (*discard)(void *));
    void (*suppressed)(void *s, const unsigned char *const *members, bool (*const *out)[HERALD_CH_COUNT],
                       size_t n, store_job_cb cb, void *arg, void (*discard)(void *));
    void (*reserve)(void *s, const char *entry, int64_t now, const char *campaign, const char *topic,
                    struct store_job_reservation *const *items, size_t n, store_job_cb cb, void *arg,
                    void (*discard)(void *));
    void (*finish)(void *s, const char *entry, const char *campaign, const char *rec_entry,
                   struct store_outcomes *o, struct store_job_handoff *const *hand, size_t nhand, store_job_cb cb,
                   void *arg, void (*discard)(void *));
    void (*release)(void *s, const char *entry, const char *campaign, const char *id, const char *record,
                    const char *member, store_job_cb cb, void *arg, void (*discard)(void *));
    void (*heartbeat)(void *s, const char *entry, store_job_cb cb, void *arg, void (*discard)(void *));
    void (*source_open)(void *s, const char *key, struct store_source_info *out, store_job_cb cb, void *arg,
                        void (*discard)(void *));
    void (*source_page)(void *s, enum store_source kind, const char *key, const char *cursor, long pos,
                        long count, struct store_page *out, store_job_cb cb, void *arg, void (*discard)(void *));
    void (*state)(void *s, const char *campaign, const char *entry, const char *state);
    void (*state_del)(void *s, const char *campaign, const char *entry);
    void (*total)(void *s, const char *campaign, const char *entry, long long total);
    void (*finished)(void *s, const char *campaign, const char *entry, const char *run, int64_t expires_at,
                     store_job_cb cb, void *arg);
    void (*event)(void *s, const char *campaign, const char *entry, const char *event, const char *error);
    void (*started)(void *s, const char *campaign, const char *entry, bool first);
    void (*dead_letter)(void *s, const char *entry, const char *text, const char *error, store_job_cb cb,
                        void *arg);
    void (*park)(void *s, int64_t when, const char *from, const char *text, store_job_cb cb, void *arg);
    void (*schedule)(void *s, const char *campaign, const char *entry, int64_t when, const char *from,
                     const char *text, store_job_cb cb, void *arg);
    void (*ack)(void *s, const char *entry);
    void (*release_due)(void *s, int64_t now, int max, long long *moved, store_job_cb cb, void *arg);
    void (*marker)(void *s, bool *was_absent, char layout[8], store_job_cb cb, void *arg);
    void (*control)(void *s, const char *campaign, enum store_control *out, store_job_cb cb, void *arg);
    void (*enqueue)(void *s, const struct store_enqueue *e, struct store_enqueue_result *out, store_job_cb cb,
                    void *arg);
    void (*pause_park)(void *s, const char *campaign, const char *entry, const char *from, const char *text,
                       store_job_cb cb, void *arg);
    void (*consumer_lock)(void *s, enum store_lock_action action, const char *value, int64_t ttl_ms,
                          const char *dead, char *holder, store_job_cb cb, void *arg);
    void (*slice)(void *s, const char *entry, const char *campaign, long long total, const char *from,
                  const char *const *texts, size_t n, store_job_cb cb, void *arg);
    int (*read)(void *s, enum store_read_mode mode, const char *after, int64_t block_ms, int64_t claim_idle_ms,
                store_read_cb cb, void *arg);
    void (*cut)(void *s, struct store_cut *cut, store_job_cb cb, void *arg);
    void (*slice_drop)(void *s, const char *key);
};

/* The real store: s is a struct store_job whose connections were set. */
extern const struct store_ops store_job_ops;
/* The connections store_job_ops reads the stream on (jobs) and reports
 * ready for; the command layer given to store_job_new is on data. */
void store_job_set_conns(struct store_job *sj, struct rconn *jobs, struct rconn *data);

/* Outcome i of o, decoded (a fake store reads what the pipeline wrote;
 * the strings point into scratch). Walks o from its start: for tests. */
void store_outcomes_get(const struct store_outcomes *o, size_t i, struct store_outcome *out, struct strbuf *scratch);

#endif
