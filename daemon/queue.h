/*
 * queue.h - the stream consumer: up to [daemon] max_jobs jobs side by side,
 * their recipients in batches.
 *
 * Reads herald:jobs through the consumer group (XREADGROUP; first its own
 * pending entries, which a restart left unfinished; XAUTOCLAIM takes over
 * the entries of a consumer that died), validates each job (refused jobs go
 * to herald:dead and are acknowledged), then streams the recipients through
 * lookup -> policy -> once-only reservation -> personalisation -> dispatch ->
 * record + audit. A job is acknowledged only when every recipient has a
 * terminal outcome and every write about them has been answered by Redis.
 *
 * Memory stays flat: at most [daemon] max_in_flight recipients are held at
 * once (shared by the running jobs, each up to its share; plus at most a
 * batch per job), whatever the size of the campaigns. Which job's next
 * message goes to dispatch is a weighted round robin by the jobs'
 * priority (high 4 : normal 2 : low 1). Every Redis command goes through
 * the store's command layer (store_cmd.h): an error reply is never taken
 * for an answer. A transient one (OOM, READONLY, LOADING, a lost
 * connection, ...) is retried and the work waits; a permanent one on a
 * read the job needs (an ACL denial, a key of the wrong type) holds the
 * job: it stays pending and is tried again later. A stop, a hold, or a
 * run that lost its entry to another consumer never acknowledges a job
 * with recipients still undecided.
 */
#ifndef HERALD_QUEUE_H
#define HERALD_QUEUE_H

#include <uv.h>

#include "config.h"
#include "dispatch.h"
#include "rconn.h"
#include "store_cmd.h"
#include "store_job.h"

struct queue;

struct queue_counters {
    uint64_t jobs_done, jobs_refused;
    uint64_t outcomes[HERALD_OUTCOME_COUNT];
    uint64_t in_flight;       /* recipients held now, by every job */
    uint64_t jobs_running;    /* jobs running side by side now */
    uint64_t backlog;         /* Redis commands waiting for a connection or a retry */
    /* Waiting on Redis: an error reply is being retried (store_cmd.h). */
    bool redis_waiting;
    const char *redis_error;  /* its label ("oom", "readonly", ...) while waiting */
    int64_t redis_waiting_ms; /* for how long */
    uint64_t redis_errors[STORE_E_COUNT]; /* error replies met, by label */
    /* The job held last (a command it needs was refused for good): its
     * entry and error label; NULL/"" when none is held. */
    const char *held_error;
    char held_entry[64];
    bool redis_emptied;       /* Redis came back empty since this daemon started */
    /* Redis holds herald's data in another key layout (layout): no job is
     * read until `heraldctl migrate` (lua/marker.lua). */
    bool layout_mismatch;
    char layout[8];
    /* Another live daemon holds this daemon's consumer name: no job is read
     * until it is free (lua/consumer_lock.lua); its value "<host> <pid> <run>". */
    bool consumer_in_use;
    char consumer_holder[192];
};

/* The store is ops on store: store_job_ops on a struct store_job (its
 * connections set), or a test's fake. Both outlive the queue. */
struct queue *queue_new(uv_loop_t *loop, const struct config *cfg, const struct store_ops *ops, void *store,
                        struct dispatch *d, const char *consumer, const char *run_id);
/* A reload (main.c): cfg replaces the configuration from now on; both stay
 * valid until this returns, then only cfg is read. Each recipient's
 * decision reads the policy's settings (quiet hours, consent age, default
 * zone) once, and each reservation the caps once, so a batch in progress
 * ends with the settings it started with only in parts: a recipient
 * decided before the call and reserved after it is reserved under the new
 * caps. The ready list's size follows the new providers' concurrency. */
void queue_reload(struct queue *q, const struct config *cfg);
/* Tells the queue a connection became usable (main's rconn state callback):
 * the jobs connection (blocking stream reads), or the data connection. */
void queue_connected(struct queue *q, bool jobs);
/* Stops reading new jobs and recipients; drained fires once, when nothing
 * the queue started is still running (in-flight messages included). */
void queue_stop(struct queue *q, void (*drained)(void *arg), void *arg);
void queue_counters(const struct queue *q, struct queue_counters *out);
void queue_free(struct queue *q);

#endif
