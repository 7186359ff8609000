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

struct people;

struct api_state {
    const struct config *cfg;
    struct rconn *jobs, *data;
    struct queue *queue;
    struct dispatch *dispatch; /* for /metrics (provider in-flight) */
    struct people *people; /* the person's data (people.h); main creates it */
    size_t plugins_loaded;
    bool stopping;
    int64_t started_at; /* unix seconds */
};

int api_register(struct http_server *srv, struct api_state *st);

#endif
