/*
 * events.h - campaign events POSTed to [events] url.
 *
 * Every entry of the stream herald:events (started, paused, resumed,
 * cancelled, finished, failed) is POSTed as one JSON object
 * (docs/schemas/event.schema.json) to [events] url, signed as the webhook
 * plugin signs (X-Herald-Signature: sha256=<hex HMAC-SHA256 of the body>
 * with [events] secret), and acknowledged in the consumer group
 * "herald-events" only after a 2xx. A failed attempt is retried with
 * backoff (1 s doubling to 60 s) until it is answered 2xx; entries a dead
 * daemon had read are taken over after [daemon] claim_idle. At least
 * once: a receiver dedupes on the event's "id" (its stream entry id, also
 * the X-Herald-Event-Id header).
 *
 * Loop thread, except the POST itself, which runs on libuv's worker pool
 * (blocking libcurl, one at a time). Never logs a body; a receiver's
 * failures are logged rate-limited (one line when they start, one when
 * they stop).
 */
#ifndef HERALD_EVENTS_H
#define HERALD_EVENTS_H

#include <uv.h>

#include "config.h"
#include "store_cmd.h"


struct events;

/* sc (the data connection's command layer for the events) and cfg outlive
 * it; consumer is copied. Does nothing until the timer finds [events] url set. */
struct events *events_new(uv_loop_t *loop, struct store_cmds *sc, const struct config *cfg, const char *consumer);
/* A reload: url and secret from cfg for the next attempt (one in flight
 * finishes with the old). */
void events_reload(struct events *ev, const struct config *cfg);
/* Stops: no more reads or POSTs; a POST in flight is aborted. Its handles
 * are closed; events_free once the loop has ended. */
void events_close(struct events *ev);
void events_free(struct events *ev);

#endif
