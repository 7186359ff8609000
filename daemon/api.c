/*
 * api.c - the routes of the admin listener, and the two of its own:
 *
 * GET /healthz: is this daemon able to do its job right now? 200 with
 * {"status":"ok",...} once Redis answers on both connections and every
 * plugin is loaded; 503 with the same fields (status "starting",
 * "degraded" or "stopping") otherwise, so a load balancer or an operator
 * sees at once what is missing.
 *
 * GET /metrics: Prometheus text format (metrics.h). Like /healthz it needs
 * no token: it holds counts only, never an id or an address. The stream
 * gauges are read from Redis at scrape time (through the command layer,
 * STORE_CMD_ONCE: a scrape never waits on Redis); when Redis does not
 * answer, or refuses, they are left out rather than reported as 0.
 */
#include "api.h"
#include "api_v1.h"
#include "limit.h"
#include "metrics.h"
#include "rcluster.h"
#include "store.h"
#include "page.h"
#include "webhooks.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

void api_respond_store_error(struct http_request *req, enum store_error e)
{
    char msg[64];
    snprintf(msg, sizeof(msg), "redis unavailable: %s", store_error_name(e));
    if (store_error_class(e) == STORE_TRANSIENT) http_response_header(req, "Retry-After", "1");
    http_respond_error(req, 503, msg);
}

static void healthz(struct http_request *req, void *arg)
{
    struct api_state *st = arg;
    bool connected = rconn_ready(st->jobs) && rconn_ready(st->data) && (!st->cluster || rcluster_ready(st->cluster));
    struct queue_counters qc = {0};
    if (st->queue) queue_counters(st->queue, &qc);
    /* Waiting on Redis (an error reply being retried): connected, but no
     * work moves, so not ok. */
    /* Providers whose shared limits cannot be reached: their messages wait. */
    json_t *limits = NULL;
    for (size_t i = 0; i < limit_count(st->limit); i++) {
        const char *name, *error;
        uint64_t waiting_ms;
        if (!limit_failing(st->limit, i, &name, &error, &waiting_ms)) continue;
        if (!limits) limits = json_object();
        json_object_set_new(limits, name, json_pack("{s:s, s:I}", "error", error, "waiting_s",
                                                    (json_int_t)(waiting_ms / 1000)));
    }
    bool ok = connected && !qc.redis_waiting && !qc.consumer_in_use && !qc.layout_mismatch &&
              st->plugins_loaded > 0 && !st->stopping && !limits;
    const char *status = ok ? "ok" : st->stopping ? "stopping" : connected ? "degraded" : "starting";
    const char *redis = !connected ? "disconnected" : qc.redis_waiting ? "waiting" : "connected";
    json_t *o = json_pack("{s:s, s:s, s:s, s:I, s:I, s:I, s:I, s:I, s:I, s:I}", "status", status,
                          "version", HERALD_VERSION, "redis", redis, "plugins", (json_int_t)st->plugins_loaded,
                          "uptime_s", (json_int_t)(time(NULL) - st->started_at), "jobs_done",
                          (json_int_t)qc.jobs_done, "jobs_refused", (json_int_t)qc.jobs_refused, "in_flight",
                          (json_int_t)qc.in_flight, "redis_backlog", (json_int_t)qc.backlog, "redis_reconnects",
                          (json_int_t)(rconn_reconnects(st->jobs) + rconn_reconnects(st->data)));
    json_object_set_new(o, "jobs_running", json_integer((json_int_t)qc.jobs_running));
    if (qc.redis_waiting) { /* why: the error's label, and for how long */
        json_object_set_new(o, "redis_error", json_string(qc.redis_error));
        json_object_set_new(o, "redis_waiting_s", json_integer(qc.redis_waiting_ms / 1000));
    }
    if (qc.held_error)
        json_object_set_new(o, "held", json_pack("{s:s, s:s}", "entry", qc.held_entry, "error", qc.held_error));
    json_object_set_new(o, "redis_emptied", json_boolean(qc.redis_emptied));
    if (st->cluster) { /* a master unreachable or slots unserved (a failover): herald waits for the cluster */
        struct rcluster_status cs;
        rcluster_status(st->cluster, &cs);
        json_object_set_new(o, "redis_cluster",
                            json_pack("{s:I, s:I, s:I}", "masters", (json_int_t)cs.masters, "masters_down",
                                      (json_int_t)cs.down, "unserved_slots", (json_int_t)cs.unserved));
    }
    if (qc.layout_mismatch) /* data of another key layout: heraldctl migrate */
        json_object_set_new(o, "redis_layout", json_pack("{s:s, s:s, s:s}", "found", qc.layout, "expected",
                                                         STORE_LAYOUT, "fix", "heraldctl migrate"));
    if (limits) json_object_set_new(o, "provider_limits", limits);
    if (qc.consumer_in_use) /* another live daemon runs under this [daemon] consumer name */
        json_object_set_new(o, "consumer_in_use", json_string(qc.consumer_holder));
    http_respond_json(req, ok ? 200 : 503, o);
}

struct scrape {
    struct api_state *st;
    struct http_request *req;
    struct metrics_gauges g;
    int waiting;
};

static void scrape_done(struct scrape *sc)
{
    if (--sc->waiting > 0) return;
    struct api_state *st = sc->st;
    struct queue_counters qc = {0};
    if (st->queue) queue_counters(st->queue, &qc);
    sc->g.in_flight = qc.in_flight;
    sc->g.jobs_running = qc.jobs_running;
    sc->g.provider_in_flight = st->dispatch ? dispatch_in_flight(st->dispatch) : 0;
    sc->g.redis_backlog = qc.backlog;
    sc->g.redis_reconnects = rconn_reconnects(st->jobs) + rconn_reconnects(st->data);
    sc->g.jobs_done = qc.jobs_done;
    sc->g.jobs_refused = qc.jobs_refused;
    sc->g.uptime_s = time(NULL) - st->started_at;
    memcpy(sc->g.redis_errors, qc.redis_errors, sizeof(sc->g.redis_errors));
    if (st->cmds) { /* the interactive callers' errors count too */
        struct store_cmds_status as;
        store_cmds_status(st->cmds, &as);
        for (int e = 0; e < STORE_E_COUNT; e++) sc->g.redis_errors[e] += as.errors[e];
        sc->g.redis_backlog += as.backlog;
    }
    sc->g.redis_waiting = -1;
    for (int e = 0; qc.redis_waiting && e < STORE_E_COUNT; e++)
        if (strcmp(store_error_name((enum store_error)e), qc.redis_error) == 0) sc->g.redis_waiting = e;
    sc->g.job_held = qc.held_error != NULL;
    if (st->http_admin) {
        sc->g.listeners[sc->g.nlisteners].name = "admin";
        http_server_stats(st->http_admin, &sc->g.listeners[sc->g.nlisteners++].stats);
    }
    if (st->http_public) {
        sc->g.listeners[sc->g.nlisteners].name = "public";
        http_server_stats(st->http_public, &sc->g.listeners[sc->g.nlisteners++].stats);
    }
    sc->g.redis_emptied = qc.redis_emptied;
    sc->g.redis_connected = rconn_ready(st->jobs) && rconn_ready(st->data) && (!st->cluster || rcluster_ready(st->cluster));
    sc->g.cluster = st->cluster != NULL;
    if (st->cluster) {
        struct rcluster_status cs;
        rcluster_status(st->cluster, &cs);
        sc->g.cluster_masters = (int64_t)cs.masters;
        sc->g.cluster_masters_down = (int64_t)cs.down;
        sc->g.cluster_unserved = (int64_t)cs.unserved;
        sc->g.cluster_redirects = cs.redirects;
        sc->g.cluster_refreshes = cs.refreshes;
        sc->g.cluster_master_checks = cs.suspicions;
    }
    size_t np = st->dispatch ? dispatch_nproviders(st->dispatch) : 0;
    const char **names = xcalloc(np + 1, sizeof(*names));
    bool *open = xcalloc(np + 1, sizeof(*open));
    for (size_t i = 0; i < np; i++) names[i] = dispatch_provider_circuit(st->dispatch, i, &open[i]);
    sc->g.circuit_names = names;
    sc->g.circuit_open = open;
    sc->g.ncircuits = np;
    struct strbuf out;
    strbuf_init(&out);
    metrics_render(&out, &sc->g);
    limit_metrics(st->limit, &out);
    free(names);
    free(open);
    http_respond(sc->req, 200, "text/plain; version=0.0.4; charset=utf-8", out.buf, out.len);
    strbuf_free(&out);
    free(sc);
}

/* XINFO GROUPS: per group a flat list of field, value (RESP2). */
static void on_groups(redisReply *r, enum store_error err, const char *text, void *arg)
{
    struct scrape *sc = arg;
    (void)err, (void)text;
    for (size_t i = 0; r && r->type == REDIS_REPLY_ARRAY && i < r->elements; i++) {
        const redisReply *g = r->element[i];
        if (g->type != REDIS_REPLY_ARRAY) continue;
        bool ours = false;
        long long lag = -1, pending = -1;
        for (size_t j = 0; j + 1 < g->elements; j += 2) {
            const redisReply *k = g->element[j], *v = g->element[j + 1];
            if (k->type != REDIS_REPLY_STRING) continue;
            if (strcmp(k->str, "name") == 0) ours = v->type == REDIS_REPLY_STRING && strcmp(v->str, STORE_GROUP) == 0;
            else if (strcmp(k->str, "lag") == 0 && v->type == REDIS_REPLY_INTEGER) lag = v->integer;
            else if (strcmp(k->str, "pending") == 0 && v->type == REDIS_REPLY_INTEGER) pending = v->integer;
        }
        if (ours) {
            sc->g.stream_lag = lag;
            sc->g.stream_pending = pending;
        }
    }
    scrape_done(sc);
}

static void on_scheduled(redisReply *r, enum store_error err, const char *text, void *arg)
{
    struct scrape *sc = arg;
    (void)err, (void)text;
    if (r && r->type == REDIS_REPLY_INTEGER) sc->g.scheduled = r->integer;
    scrape_done(sc);
}

static void metrics(struct http_request *req, void *arg)
{
    struct api_state *st = arg;
    struct scrape *sc = xcalloc(1, sizeof(*sc));
    sc->st = st;
    sc->req = req;
    sc->g.stream_lag = sc->g.stream_pending = sc->g.scheduled = -1;
    sc->waiting = 1; /* held until both questions are asked */
    if (st->cmds) {
        struct strbuf k;
        strbuf_init(&k);
        store_key_jobs(&k, st->cfg->prefix);
        if (STORE_SEND(st->cmds, STORE_CMD_ONCE, on_groups, sc, "XINFO", "GROUPS", k.buf) == 0) sc->waiting++;
        store_key_scheduled(&k, st->cfg->prefix);
        if (STORE_SEND(st->cmds, STORE_CMD_ONCE, on_scheduled, sc, "ZCARD", k.buf) == 0) sc->waiting++;
        strbuf_free(&k);
    }
    scrape_done(sc);
}

int api_register(struct http_server *admin, struct http_server *public, struct api_state *st)
{
    if (http_route(admin, "GET", "/metrics", metrics, st) < 0) return -HERALD_EINVAL;
    if (webhooks_register(public, st) < 0) return -HERALD_EINVAL; /* provider webhooks (webhooks.h) */
    if (api_v1_register(admin, st) < 0) return -HERALD_EINVAL;    /* preference API (api_v1.h) */
    if (page_register(public, st) < 0) return -HERALD_EINVAL;     /* link pages (page.h) */
    return http_route(admin, "GET", "/healthz", healthz, st);
}
