/*
 * api.h - the admin API's routes (the preference API joins them later).
 *
 * Registers its handlers on an http_server; reads the daemon's state
 * through struct api_state, which main owns and keeps current. Handlers
 * answer with JSON and never echo request bodies or addresses.
 */
#ifndef HERALD_API_H
#define HERALD_API_H

#include "config.h"
#include "http.h"
#include "queue.h"
#include "rconn.h"
#include "store_cmd.h"

struct people;

struct api_state {
    const struct config *cfg;
    struct rconn *jobs, *data;
    /* The command layer of the interactive callers (the API, the pages, the
     * webhooks, /metrics) on the data connection: their commands go
     * STORE_CMD_ONCE (store_cmd.h); only the webhooks' counters wait. */
    struct store_cmds *cmds;
    struct queue *queue;
    struct dispatch *dispatch; /* for /metrics (provider in-flight) */
    struct people *people; /* the person's data (people.h); main creates it */
    size_t plugins_loaded;
    bool stopping;
    int64_t started_at; /* unix seconds */
};

int api_register(struct http_server *srv, struct api_state *st);

/* The answer to a request that Redis failed (class e, store_cmd.h): 503
 * {"error": "redis unavailable: <store_error_name(e)>"}, never Redis's own
 * words, with Retry-After: 1 when e is transient (it passes on its own);
 * a permanent error waits for an operator, so no retry time is promised.
 * Shared by the API, the webhooks and their tests' expectations. */
void api_respond_store_error(struct http_request *req, enum store_error e);

#endif
