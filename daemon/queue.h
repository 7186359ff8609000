/*
 * queue.h - the stream consumer: one job at a time, its recipients in batches.
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
 * once, whatever the size of the campaign. Redis commands that meet a lost
 * connection wait in a backlog and are sent again after reconnection;
 * nothing is dropped.
 */
#ifndef HERALD_QUEUE_H
#define HERALD_QUEUE_H

#include <uv.h>

#include "config.h"
#include "dispatch.h"
#include "rconn.h"

struct queue;

struct queue_counters {
    uint64_t jobs_done, jobs_refused;
    uint64_t outcomes[HERALD_OUTCOME_COUNT];
    uint64_t in_flight;       /* recipients held now */
    uint64_t backlog;         /* Redis commands waiting for a connection */
};

/* jobs: a connection for blocking stream reads; data: everything else. */
struct queue *queue_new(uv_loop_t *loop, const struct config *cfg, struct rconn *jobs,
                        struct rconn *data, struct dispatch *d, const char *consumer,
                        const char *run_id);
/* Tells the queue a connection became usable (main's rconn state callback). */
void queue_connected(struct queue *q, struct rconn *rc);
/* Stops reading new jobs and recipients; drained fires once, when nothing
 * the queue started is still running (in-flight messages included). */
void queue_stop(struct queue *q, void (*drained)(void *arg), void *arg);
void queue_counters(const struct queue *q, struct queue_counters *out);
void queue_free(struct queue *q);

#endif
