/*
 * metrics.h - counters and histograms for GET /metrics (Prometheus text
 * format 0.0.4).
 *
 * One process-wide registry, like Redis's server.stat_* fields: the loop
 * thread counts, the API renders. Labels are bounded by design: channels,
 * outcomes and reason codes come from the fixed lists in herald.h (plus
 * one `cap:<name>` per configured cap), providers from the config file.
 * Never an id, an address or a body: a metric label must not identify a
 * person. Loop thread only (no locks).
 */
#ifndef HERALD_METRICS_H
#define HERALD_METRICS_H

#include <stdint.h>

#include "herald.h"
#include "http_limit.h"
#include "store_cmd.h"

/* One decision (the audit record's channel, outcome and reason). */
void metrics_message(int channel, int outcome, const char *reason);
/* One answered provider request: verdict "accepted", "retry" or
 * "rejected", seconds from start to answer (< 0: not measured). */
void metrics_provider(const char *provider, const char *verdict, double seconds);

/* A message held one of provider's slots for seconds while its handoff
 * record was being written (dispatch.c's gate: it took the slot before
 * the owner's answer came), counted when it let the slot go or started. */
void metrics_handoff_wait(const char *provider, double seconds);

/* The configuration in force was loaded at `at` (unix seconds): at start. */
void metrics_config_loaded(int64_t at);
/* One reload: applied (ok; the configuration in force is then from at) or refused. */
void metrics_config_reload(bool ok, int64_t at);

/* Entries the retention trim deleted from one stream (stream_trim.h:
 * "audit", "events", "admin" or "dead"). */
void metrics_retention_trimmed(const char *stream, uint64_t n);
/* A WAIT after a batch's writes on a cluster node that no replica
 * acknowledged in time ([redis] wait_replicas; store_job_nodes.c). */
void metrics_wait_short(void);
/* Campaign events POSTed to [events] url (events.c): one delivered (2xx),
 * one failed attempt, the group's backlog (read and not acknowledged plus
 * not yet read; -1 unknown, events off). */
void metrics_event_delivered(void);
void metrics_event_failed(void);
void metrics_events_backlog(int64_t n);

/* Gauges and counters kept elsewhere, read at scrape time. */
struct metrics_gauges {
    int64_t stream_lag;        /* entries not yet read by the group (-1: unknown) */
    int64_t stream_pending;    /* read, not yet acknowledged (-1: unknown) */
    int64_t scheduled;         /* jobs held or deferred in the scheduled set (-1: unknown) */
    uint64_t in_flight;        /* recipients held by the queue */
    uint64_t jobs_running;     /* jobs running side by side ([daemon] max_jobs) */
    uint64_t provider_in_flight; /* messages handed to dispatch, not yet answered */
    uint64_t redis_backlog;
    uint64_t redis_reconnects;
    uint64_t jobs_done, jobs_refused;
    int64_t uptime_s;
    /* The store's command layer (store_cmd.h): error replies met by label,
     * the one being retried now (-1 none), a job held, Redis emptied. */
    uint64_t redis_errors[STORE_E_COUNT];
    int redis_waiting;
    bool job_held;
    bool redis_emptied;
    /* 1 while both Redis connections answer (-1: unknown). */
    int redis_connected;
    /* On a cluster ([redis] cluster; cluster false on one Redis): its
     * masters, those unreachable now, slots no master serves, redirects
     * followed and slot maps read since start. */
    bool cluster;
    int64_t cluster_masters, cluster_masters_down, cluster_unserved;
    uint64_t cluster_redirects, cluster_refreshes, cluster_master_checks;
    /* Each provider's circuit (dispatch_provider_circuit), ncircuits of
     * them; the arrays belong to the caller. */
    const char *const *circuit_names;
    const bool *circuit_open;
    size_t ncircuits;
    /* The HTTP listeners ("admin", "public"): limit hits, open connections. */
    struct metrics_listener {
        const char *name;
        struct http_stats stats;
    } listeners[2];
    size_t nlisteners;
};

/* Appends the whole exposition to out. */
void metrics_render(struct strbuf *out, const struct metrics_gauges *g);
/* Forgets every counter (tests). */
void metrics_reset(void);

#endif
