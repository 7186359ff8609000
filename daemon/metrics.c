/*
 * metrics.c - see metrics.h. Pure bookkeeping (no I/O): small arrays
 * searched linearly, since the label sets are a few dozen entries at most.
 */
#include "metrics.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define METRICS_LABEL_MAX (HERALD_ID_MAX + 8)

/* Provider answer time buckets, seconds (upper bounds; +Inf implied). */
static const double buckets[] = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30};
#define NBUCKETS (sizeof(buckets) / sizeof(buckets[0]))

struct msg_counter {
    int channel, outcome;
    char reason[METRICS_LABEL_MAX];
    uint64_t n;
};

struct prov_counter {
    char provider[METRICS_LABEL_MAX];
    char verdict[16];
    uint64_t n;
};

struct prov_hist {
    char provider[METRICS_LABEL_MAX];
    uint64_t bucket[NBUCKETS + 1]; /* last: +Inf */
    double sum;
    uint64_t count;
    double handoff_wait; /* seconds its slots waited for handoff records */
};

static struct {
    struct msg_counter *msg;
    size_t nmsg;
    struct prov_counter *prov;
    size_t nprov;
    struct prov_hist *hist;
    size_t nhist;
} m;

static struct {
    uint64_t delivered, failed;
    int64_t backlog;
} evm = {0, 0, -1};

void metrics_event_delivered(void) { evm.delivered++; }
void metrics_event_failed(void) { evm.failed++; }
void metrics_events_backlog(int64_t n) { evm.backlog = n; }

void metrics_message(int channel, int outcome, const char *reason)
{
    for (size_t i = 0; i < m.nmsg; i++)
        if (m.msg[i].channel == channel && m.msg[i].outcome == outcome && strcmp(m.msg[i].reason, reason) == 0) {
            m.msg[i].n++;
            return;
        }
    m.msg = xrealloc(m.msg, (m.nmsg + 1) * sizeof(*m.msg));
    struct msg_counter *c = &m.msg[m.nmsg++];
    c->channel = channel;
    c->outcome = outcome;
    snprintf(c->reason, sizeof(c->reason), "%s", reason);
    c->n = 1;
}

/* provider's latency histogram and handoff wait, made on first use. */
static struct prov_hist *hist_of(const char *provider)
{
    for (size_t i = 0; i < m.nhist; i++)
        if (strcmp(m.hist[i].provider, provider) == 0) return &m.hist[i];
    m.hist = xrealloc(m.hist, (m.nhist + 1) * sizeof(*m.hist));
    struct prov_hist *h = &m.hist[m.nhist++];
    memset(h, 0, sizeof(*h));
    snprintf(h->provider, sizeof(h->provider), "%s", provider);
    return h;
}

void metrics_handoff_wait(const char *provider, double seconds)
{
    if (seconds > 0) hist_of(provider)->handoff_wait += seconds;
}

void metrics_provider(const char *provider, const char *verdict, double seconds)
{
    struct prov_counter *c = NULL;
    for (size_t i = 0; i < m.nprov && !c; i++)
        if (strcmp(m.prov[i].provider, provider) == 0 && strcmp(m.prov[i].verdict, verdict) == 0) c = &m.prov[i];
    if (!c) {
        m.prov = xrealloc(m.prov, (m.nprov + 1) * sizeof(*m.prov));
        c = &m.prov[m.nprov++];
        snprintf(c->provider, sizeof(c->provider), "%s", provider);
        snprintf(c->verdict, sizeof(c->verdict), "%s", verdict);
        c->n = 0;
    }
    c->n++;
    if (seconds < 0) return;
    struct prov_hist *h = hist_of(provider);
    size_t b = 0;
    while (b < NBUCKETS && seconds > buckets[b]) b++;
    h->bucket[b]++;
    h->sum += seconds;
    h->count++;
}

/* The configuration's loads: reloads by result, the last one in force. */
static struct {
    uint64_t ok, error;
    int64_t loaded_at;
} cfgload;

void metrics_config_loaded(int64_t at) { cfgload.loaded_at = at; }

void metrics_config_reload(bool ok, int64_t at)
{
    if (!ok) {
        cfgload.error++;
        return;
    }
    cfgload.ok++;
    cfgload.loaded_at = at;
}

/* Retention's trims by stream: a fixed list, so a fixed array. */
static const char *const trim_streams[] = {"audit", "events", "admin", "dead"};
#define NTRIM (sizeof(trim_streams) / sizeof(trim_streams[0]))
static uint64_t trimmed[NTRIM];

void metrics_retention_trimmed(const char *stream, uint64_t n)
{
    for (size_t i = 0; i < NTRIM; i++)
        if (strcmp(trim_streams[i], stream) == 0) trimmed[i] += n;
}

static uint64_t wait_short;

void metrics_wait_short(void) { wait_short++; }

void metrics_reset(void)
{
    memset(&cfgload, 0, sizeof(cfgload));
    memset(trimmed, 0, sizeof(trimmed));
    wait_short = 0;
    evm.delivered = evm.failed = 0;
    evm.backlog = -1;
    free(m.msg);
    free(m.prov);
    free(m.hist);
    memset(&m, 0, sizeof(m));
}

/* Label values are ids, reason codes and config names ([A-Za-z0-9._:-]),
 * but escape as the format requires anyway. */
static void label(struct strbuf *out, const char *name, const char *value)
{
    strbuf_addf(out, "%s=\"", name);
    for (const char *p = value; *p; p++) {
        if (*p == '\\' || *p == '"') strbuf_addf(out, "\\%c", *p);
        else if (*p == '\n') strbuf_adds(out, "\\n");
        else strbuf_add(out, p, 1);
    }
    strbuf_adds(out, "\"");
}

static void head(struct strbuf *out, const char *name, const char *type, const char *help)
{
    strbuf_addf(out, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void gauge(struct strbuf *out, const char *name, const char *help, long long v)
{
    if (v < 0) return; /* unknown right now (Redis unreachable): absent, not 0 */
    head(out, name, "gauge", help);
    strbuf_addf(out, "%s %lld\n", name, v);
}

static void counter(struct strbuf *out, const char *name, const char *help, unsigned long long v)
{
    head(out, name, "counter", help);
    strbuf_addf(out, "%s %llu\n", name, v);
}

void metrics_render(struct strbuf *out, const struct metrics_gauges *g)
{
    head(out, "herald_messages_total", "counter",
         "Decisions by channel, outcome and reason (one per recipient and campaign; reason \"\" for sent).");
    for (size_t i = 0; i < m.nmsg; i++) {
        strbuf_adds(out, "herald_messages_total{");
        label(out, "channel", herald_channel_name(m.msg[i].channel));
        strbuf_adds(out, ",");
        label(out, "outcome", herald_outcome_name(m.msg[i].outcome));
        strbuf_adds(out, ",");
        label(out, "reason", m.msg[i].reason);
        strbuf_addf(out, "} %llu\n", (unsigned long long)m.msg[i].n);
    }
    head(out, "herald_provider_requests_total", "counter",
         "Provider answers by provider and verdict (accepted, retry, rejected).");
    for (size_t i = 0; i < m.nprov; i++) {
        strbuf_adds(out, "herald_provider_requests_total{");
        label(out, "provider", m.prov[i].provider);
        strbuf_adds(out, ",");
        label(out, "verdict", m.prov[i].verdict);
        strbuf_addf(out, "} %llu\n", (unsigned long long)m.prov[i].n);
    }
    head(out, "herald_provider_latency_seconds", "histogram",
         "Time from starting a provider request to its answer.");
    for (size_t i = 0; i < m.nhist; i++) {
        const struct prov_hist *h = &m.hist[i];
        uint64_t cum = 0;
        for (size_t b = 0; b <= NBUCKETS; b++) {
            cum += h->bucket[b];
            strbuf_adds(out, "herald_provider_latency_seconds_bucket{");
            label(out, "provider", h->provider);
            if (b < NBUCKETS) strbuf_addf(out, ",le=\"%g\"} %llu\n", buckets[b], (unsigned long long)cum);
            else strbuf_addf(out, ",le=\"+Inf\"} %llu\n", (unsigned long long)cum);
        }
        strbuf_adds(out, "herald_provider_latency_seconds_sum{");
        label(out, "provider", h->provider);
        strbuf_addf(out, "} %.6f\n", h->sum);
        strbuf_adds(out, "herald_provider_latency_seconds_count{");
        label(out, "provider", h->provider);
        strbuf_addf(out, "} %llu\n", (unsigned long long)h->count);
    }
    head(out, "herald_provider_handoff_wait_seconds_total", "counter",
         "Seconds the provider's slots were held by messages waiting for their handoff record to be written; "
         "its rate is how many slots waited, on average.");
    for (size_t i = 0; i < m.nhist; i++) {
        strbuf_adds(out, "herald_provider_handoff_wait_seconds_total{");
        label(out, "provider", m.hist[i].provider);
        strbuf_addf(out, "} %.6f\n", m.hist[i].handoff_wait);
    }
    gauge(out, "herald_queue_lag", "Jobs in the stream not yet read by the consumer group.", g->stream_lag);
    gauge(out, "herald_queue_pending", "Jobs read but not yet acknowledged.", g->stream_pending);
    gauge(out, "herald_scheduled_jobs", "Jobs held until not_before or parked by quiet hours.", g->scheduled);
    gauge(out, "herald_in_flight", "Recipients held by the running jobs.", (long long)g->in_flight);
    gauge(out, "herald_jobs_running", "Jobs running side by side on this daemon (at most [daemon] max_jobs).",
          (long long)g->jobs_running);
    gauge(out, "herald_provider_in_flight", "Messages handed to providers and not yet answered.",
          (long long)g->provider_in_flight);
    gauge(out, "herald_redis_backlog", "Redis commands waiting for a connection or a retry.",
          (long long)g->redis_backlog);
    head(out, "herald_redis_waiting", "gauge",
         "1 while herald waits on Redis: a command refused with this error is being retried, work stays pending.");
    for (int e = 0; e < STORE_E_COUNT; e++) {
        strbuf_adds(out, "herald_redis_waiting{");
        label(out, "error", store_error_name((enum store_error)e));
        strbuf_addf(out, "} %d\n", g->redis_waiting == e);
    }
    head(out, "herald_redis_errors_total", "counter",
         "Error replies from Redis (and lost connections) met by commands, by error.");
    for (int e = 0; e < STORE_E_COUNT; e++) {
        strbuf_adds(out, "herald_redis_errors_total{");
        label(out, "error", store_error_name((enum store_error)e));
        strbuf_addf(out, "} %llu\n", (unsigned long long)g->redis_errors[e]);
    }
    gauge(out, "herald_redis_connected", "1 while both Redis connections (jobs, data) answer, 0 while one is lost.",
          g->redis_connected);
    if (g->cluster) { /* [redis] cluster only */
        gauge(out, "herald_redis_cluster_masters", "Masters of the Redis Cluster in herald's slot map.",
              g->cluster_masters);
        gauge(out, "herald_redis_cluster_masters_down", "Masters herald cannot reach now (a failover?).",
              g->cluster_masters_down);
        gauge(out, "herald_redis_cluster_unserved_slots", "Slots no reachable master serves now; their commands wait.",
              g->cluster_unserved);
        counter(out, "herald_redis_cluster_redirects_total", "MOVED redirects followed (slots that moved).",
                (unsigned long long)g->cluster_redirects);
        counter(out, "herald_redis_cluster_map_refreshes_total", "Slot maps read (CLUSTER SHARDS or SLOTS).",
                (unsigned long long)g->cluster_refreshes);
        counter(out, "herald_redis_cluster_master_checks_total",
                "Masters whose replicas fell short of a WAIT, checked against another node's slot map before "
                "their writes were sent again.",
                (unsigned long long)g->cluster_master_checks);
    }
    head(out, "herald_provider_circuit_open", "gauge",
         "1 while a provider's circuit is open or half-open (its failures stopped the traffic), else 0.");
    for (size_t i = 0; i < g->ncircuits; i++) {
        strbuf_adds(out, "herald_provider_circuit_open{");
        label(out, "provider", g->circuit_names[i]);
        strbuf_addf(out, "} %d\n", g->circuit_open[i] ? 1 : 0);
    }
    gauge(out, "herald_job_held", "1 while a job is held: a command it needs was refused for good (see the log).",
          g->job_held);
    gauge(out, "herald_redis_emptied", "1 once Redis came back empty (herald's marker key vanished) since start.",
          g->redis_emptied);
    counter(out, "herald_redis_reconnects_total", "Redis reconnections after the first connect.",
            (unsigned long long)g->redis_reconnects);
    counter(out, "herald_redis_wait_short_total",
            "Batches whose writes no replica acknowledged in time on a cluster ([redis] wait_replicas).",
            (unsigned long long)wait_short);
    counter(out, "herald_jobs_done_total", "Jobs finished and acknowledged.", (unsigned long long)g->jobs_done);
    counter(out, "herald_jobs_refused_total", "Jobs refused to the dead-letter stream.",
            (unsigned long long)g->jobs_refused);
    gauge(out, "herald_uptime_seconds", "Seconds since the daemon started.", g->uptime_s);
    head(out, "herald_retention_trimmed_total", "counter",
         "Stream entries deleted for their age ([retention] audit, dead_letters), by stream: audit, events, "
         "admin (suppression changes), dead (dead letters).");
    for (size_t i = 0; i < NTRIM; i++)
        strbuf_addf(out, "herald_retention_trimmed_total{stream=\"%s\"} %llu\n", trim_streams[i],
                    (unsigned long long)trimmed[i]);
    counter(out, "herald_events_delivered_total", "Campaign events POSTed to [events] url and answered 2xx.",
            (unsigned long long)evm.delivered);
    counter(out, "herald_events_failed_attempts_total",
            "Attempts to POST a campaign event that failed (no answer, or not 2xx); each is retried.",
            (unsigned long long)evm.failed);
    gauge(out, "herald_events_backlog",
              "Campaign events not yet delivered to [events] url: read and not acknowledged, or not read yet.",
              (long long)evm.backlog);
    if (g->nlisteners == 0) return;
    head(out, "herald_http_limit_hits_total", "counter",
         "Connections or requests refused or closed by a listener's limit ([admin]/[public] keys), by listener and limit.");
    for (size_t i = 0; i < g->nlisteners; i++)
        for (int l = 0; l < HTTP_LIMIT_COUNT; l++) {
            strbuf_adds(out, "herald_http_limit_hits_total{");
            label(out, "listener", g->listeners[i].name);
            strbuf_adds(out, ",");
            label(out, "limit", http_limit_name(l));
            strbuf_addf(out, "} %llu\n", (unsigned long long)g->listeners[i].stats.limit_hits[l]);
        }
    head(out, "herald_http_connections", "gauge", "Connections open now, by listener.");
    for (size_t i = 0; i < g->nlisteners; i++) {
        strbuf_adds(out, "herald_http_connections{");
        label(out, "listener", g->listeners[i].name);
        strbuf_addf(out, "} %u\n", g->listeners[i].stats.connections);
    }
    head(out, "herald_config_reloads_total", "counter",
         "Configuration reloads (SIGHUP, heraldctl reload) by result: ok (applied) or error (refused, the "
         "running configuration kept).");
    strbuf_addf(out, "herald_config_reloads_total{result=\"ok\"} %llu\n", (unsigned long long)cfgload.ok);
    strbuf_addf(out, "herald_config_reloads_total{result=\"error\"} %llu\n", (unsigned long long)cfgload.error);
    if (cfgload.loaded_at > 0)
        gauge(out, "herald_config_loaded_timestamp_seconds",
              "When the configuration in force was loaded (start or last successful reload), unix seconds.",
              (long long)cfgload.loaded_at);
}
