/*
 * store_job_int.h - what store_job.c and store_job_nodes.c share: the
 * store's state and one call in flight. Not for the pipeline.
 */
#ifndef HERALD_STORE_JOB_INT_H
#define HERALD_STORE_JOB_INT_H

#include "log.h"
#include "store_job.h"

struct sj_epoch;

struct store_job {
    struct store_cmds *sc;
    const struct config *cfg;
    char *consumer;
    struct strbuf k_jobs, k_audit, k_events, key;
    struct strbuf seqs; /* scratch: a finish call's handoffs (lua/finish.lua) */
    struct strbuf k_dead, k_scheduled, k_marker, k_layout;
    char batch[96];     /* this daemon run's batch id prefix: "<consumer>:<pid>:<start ms>" */
    unsigned long long seq; /* finish batches sent */
    struct rconn *jobs, *data; /* store_job_ops: read on jobs; ready for either */
    char audit_maxlen[24];
    char **cap_topics; /* per cap: ",a,b," or "" (every topic) */
    struct sj_epoch *epochs; /* a cluster: the fencing epoch of each entry this daemon runs (store_job_nodes.c) */
    char (*node_tags)[8];    /* a cluster: the hash tags of per-node keys in use (store_job_nodes.c) */
    size_t nnode_tags;
    struct sj_replicas *replicas; /* a cluster: per node tag, whether WAIT is worth it now */
    size_t nreplicas;
    struct log_complaint wait_log;
};

struct call {
    struct store_job *sj;
    store_job_cb cb;
    void *arg;
    void (*discard)(void *);
    void **items; /* the caller's rows/items (pointers), copied */
    size_t n;
    bool (**out)[HERALD_CH_COUNT]; /* suppression only */
    int *index;                    /* suppression only: reply index per (i, ch) in its shard's reply, -1 */
    unsigned char *shard;          /* suppression only: the shard per (i, ch) */
};

struct call *call_new(struct store_job *sj, store_job_cb cb, void *arg, void (*discard)(void *), void *const *items,
                      size_t n);
void call_discard(void *arg);
void call_done(struct call *c, enum store_job_status st, enum store_error err, const char *text);
/* Ends c when the reply is no answer: a permanent failure (r NULL), the
 * fence's 'lost', or (bad) a shape the script never gives. */
bool call_ended(struct call *c, const redisReply *r, enum store_error err, const char *text, bool bad);
bool is_array_of(const redisReply *r, size_t n, int type);
/* A key built in a strbuf: its length is known. */
void add_buf(struct store_args *a, const struct strbuf *sb);

/* The fence of a writing script: KEYS[1] fence_key, ARGV[1..3] group, entry,
 * owner. A single instance: the jobs stream, STORE_GROUP, the consumer. A
 * cluster: the fence hash of the part's node, "", the run's epoch. */
struct sj_fence {
    const char *key, *group, *owner;
};

/* Starts a's EVALSHA of script over nkeys keys. A per-node script of a
 * cluster (f->group "") declares none: "#<nkeys>" then its keys lead its
 * ARGV (lua/fence.lua reads them back). */
void sj_script(struct store_args *a, const char *script, size_t nkeys, const struct sj_fence *f);

/* What lua/finish.lua takes per outcome: its keys (the person hash) and
 * its values (store_outcomes_add: STORE_OUTCOME_ARGS, and 2 more, the sends
 * member to remove and the provider id key, when its kind's flags have
 * "x"), and per kind (what outcomes share). */
#define STORE_OUTCOME_KEYS 1
#define STORE_OUTCOME_ARGS 4
#define STORE_OUTCOME_EXTRA_ARGS 2
#define STORE_OUTCOME_KIND_ARGS 10
/* Indexes into an outcome's values, and into its kind's. The record and
 * the history entry are its kind's: they are made of what outcomes of one
 * kind share (its state, channel, reason, provider and second), and each
 * value a script reads costs Redis about 1,000 instructions. */
enum { SJO_ID, SJO_PROVIDER_ID, SJO_SLOT, SJO_KIND, SJO_UNSEND, SJO_PID_KEY };
enum { SJK_CHANNEL, SJK_OUTCOME, SJK_REASON, SJK_PROVIDER, SJK_AT, SJK_FLAGS, SJK_REQUESTS, SJK_LOCALE, SJK_RECORD,
       SJK_HISTORY };
/* The value k (0-based) of the values of b from byte off on (off below
 * STORE_ARGS_HEAD: from the first), in *s and *len. */
void sj_args_value(const struct store_args *b, size_t off, size_t k, const char **s, size_t *len);

/* The script arguments of reserve, finish and release for the recipients
 * idx[0..n) (NULL: every one, in order), after the fence f. */
void sj_reserve_args(struct store_args *a, struct store_job *sj, const struct sj_fence *f, const char *entry,
                     int64_t now, const char *campaign, const char *topic, struct store_job_reservation *const *items,
                     const size_t *idx, size_t n);
void sj_release_args(struct store_args *a, struct store_job *sj, const struct sj_fence *f, const char *entry,
                     const char *campaign, const char *id, const char *record, const char *member);
void on_reserved(redisReply *r, enum store_error err, const char *text, void *arg);
void on_finished(redisReply *r, enum store_error err, const char *text, void *arg);
void on_released(redisReply *r, enum store_error err, const char *text, void *arg);

/* ---- a cluster (store_job_nodes.c) ------------------------------------ */

/* Whether sj's layer is a cluster (its nodes have tags). */
bool sj_cluster(const struct store_job *sj);
void sj_nodes_reserve(struct store_job *sj, const char *entry, int64_t now, const char *campaign, const char *topic,
                      struct store_job_reservation *const *items, size_t n, store_job_cb cb, void *arg,
                      void (*discard)(void *));
void sj_nodes_finish(struct store_job *sj, const char *entry, const char *campaign, const char *rec_entry,
                     struct store_outcomes *o, struct store_job_handoff *const *hand, size_t nhand, store_job_cb cb,
                     void *arg, void (*discard)(void *));
void sj_nodes_release(struct store_job *sj, const char *entry, const char *campaign, const char *id,
                      const char *record, const char *member, store_job_cb cb, void *arg, void (*discard)(void *));
/* The entry is done (acknowledged): its fence goes from every slot. */
void sj_nodes_entry_done(struct store_job *sj, const char *entry);
void sj_nodes_free(struct store_job *sj);

#endif
