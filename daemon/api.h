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
#include "l10n.h"

struct plugin_set;
#include "queue.h"
#include "rconn.h"
#include "store_cmd.h"

struct people;

struct api_state {
    const struct config *cfg;
    struct rconn *jobs, *data;
    struct rcluster *cluster; /* [redis] cluster's map and connections (rcluster.h); NULL: one Redis */
    /* The command layer of the interactive callers (the API, the pages, the
     * webhooks, /metrics) on the data connection: their commands go
     * STORE_CMD_ONCE (store_cmd.h); only the webhooks' counters wait. */
    struct store_cmds *cmds;
    struct queue *queue;
    struct dispatch *dispatch; /* for /metrics (provider in-flight) */
    struct limit *limit;       /* shared provider limits, for /healthz and /metrics (NULL: none) */
    struct people *people; /* the person's data (people.h); main creates it */
    /* The pages' catalogues (l10n.h), replaced at reload; a page takes a
     * reference for as long as it renders. */
    struct l10n_set *locales;
    size_t plugins_loaded;
    struct plugin_set *plugins; /* the providers' instances (the webhooks' feedback()); main sets it */
    bool stopping;
    int64_t started_at; /* unix seconds */
    /* The listeners, for /metrics (public NULL when the admin one serves
     * the public routes too); main sets them and clears them when closed. */
    struct http_server *http_admin, *http_public;
};

/* Registers the admin routes (/v1 API, /metrics, /healthz) on admin and the
 * public ones (the link pages /u/ and /p/, the provider webhooks under
 * /v1/webhooks/) on public, which may be admin itself (one listener serving
 * both, when [public] listen is empty). A route is on one listener only:
 * the other answers 404. */
int api_register(struct http_server *admin, struct http_server *public, struct api_state *st);

/* The answer to a request that Redis failed (class e, store_cmd.h): 503
 * {"error": "redis unavailable: <store_error_name(e)>"}, never Redis's own
 * words, with Retry-After: 1 when e is transient (it passes on its own);
 * a permanent error waits for an operator, so no retry time is promised.
 * Shared by the API, the webhooks and their tests' expectations. */
void api_respond_store_error(struct http_request *req, enum store_error e);

#endif
