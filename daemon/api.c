/*
 * api.c - GET /healthz: is this daemon able to do its job right now?
 *
 * 200 with {"status":"ok",...} once Redis answers on both connections and
 * every plugin is loaded; 503 with the same fields (status "starting",
 * "degraded" or "stopping") otherwise, so a load balancer or an operator
 * sees at once what is missing.
 */
#include "api.h"

#include <jansson.h>
#include <time.h>

static void healthz(struct http_request *req, void *arg)
{
    struct api_state *st = arg;
    bool redis = rconn_ready(st->jobs) && rconn_ready(st->data);
    bool ok = redis && st->plugins_loaded > 0 && !st->stopping;
    const char *status = ok ? "ok" : st->stopping ? "stopping" : redis ? "degraded" : "starting";
    struct queue_counters qc = {0};
    if (st->queue) queue_counters(st->queue, &qc);
    json_t *o = json_pack("{s:s, s:s, s:s, s:I, s:I, s:I, s:I, s:I, s:I, s:I}", "status", status,
                          "version", HERALD_VERSION, "redis", redis ? "connected" : "disconnected",
                          "plugins", (json_int_t)st->plugins_loaded, "uptime_s",
                          (json_int_t)(time(NULL) - st->started_at), "jobs_done", (json_int_t)qc.jobs_done,
                          "jobs_refused", (json_int_t)qc.jobs_refused, "in_flight", (json_int_t)qc.in_flight,
                          "redis_backlog", (json_int_t)qc.backlog, "redis_reconnects",
                          (json_int_t)(rconn_reconnects(st->jobs) + rconn_reconnects(st->data)));
    http_respond_json(req, ok ? 200 : 503, o);
}

int api_register(struct http_server *srv, struct api_state *st)
{
    return http_route(srv, "GET", "/healthz", healthz, st);
}
