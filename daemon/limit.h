/*
 * limit.h - provider limits shared by every daemon on one Redis: `rate`
 * and `concurrency` of a [provider NAME] with `shared = yes` hold for all
 * of them together.
 *
 * Owns the Redis side (lua/limit.lua on <prefix>:limit:<provider>, through
 * its own STORE_CMD_ONCE command layer) and the local grants (grant.h).
 * Rate tokens come in batches (GRANT_BATCH_MS worth per call, asked again
 * before the last is spent), so a message costs no round trip; leases
 * (one per request in flight) are taken in batches too, kept while there
 * is work, renewed every GRANT_RENEW_MS and free again GRANT_LEASE_TTL_MS
 * after a daemon stopped renewing them (killed, cut off from Redis).
 *
 * Failure first: no answer from Redis is no token and no new lease; what
 * waits for them waits (backpressure), and /healthz and /metrics say why.
 * A 429's pause (Retry-After) stays the daemon's own (dispatch.c).
 *
 * Loop thread only. Never logs an address (names of providers only).
 */
#ifndef HERALD_LIMIT_H
#define HERALD_LIMIT_H

#include <uv.h>

#include "config.h"
#include "herald.h"
#include "store_cmd.h"

struct limit;
/* Tokens or leases came for provider (its name): what waits may start. */
typedef void (*limit_wake_cb)(const char *provider, void *arg);

/* sc: the command layer the calls go through (the limit's own; the caller
 * owns it and frees it after limit_close). run: this daemon run's id (its
 * leases' name). */
struct limit *limit_new(uv_loop_t *loop, struct store_cmds *sc, const char *prefix, const char *run,
                        limit_wake_cb wake, void *arg);
/* The providers of cfg (at start, and at each reload): their rates,
 * concurrency and `shared` switch. A provider no longer configured gives
 * its leases back at the next renewal. */
void limit_configure(struct limit *l, const struct config *cfg);
/* Whether cp's limits are shared (the caller then asks here, not locally). */
bool limit_shared(struct limit *l, const struct config_provider *cp);
/* Spends one of cp's rate tokens; false: none now (a call is on its way,
 * and wake fires when tokens come). */
bool limit_token(struct limit *l, const struct config_provider *cp);
/* Requests cp may have in flight in this daemon now (its leases). */
size_t limit_slots(struct limit *l, const struct config_provider *cp);
/* This daemon's demand at cp: `active` requests in flight, and whether
 * messages wait for a slot. Asks for leases, or gives back what is above
 * the fair share, when that changes. */
void limit_demand(struct limit *l, const struct config_provider *cp, size_t active, bool waiting);
/* A clean stop: gives every lease back and asks for nothing more; the
 * caller waits (briefly) for limit_idle before closing the connection. */
void limit_release_all(struct limit *l);
/* No call is out. */
bool limit_idle(const struct limit *l);

/* /healthz: provider i (i < limit_count) when its last call failed: *name,
 * the error's label and for how long it has failed (ms); false when not. */
bool limit_failing(const struct limit *l, size_t i, const char **name, const char **error, uint64_t *waiting_ms);
size_t limit_count(const struct limit *l);
/* /metrics: appends herald_limit_* (tokens asked and granted, leases held,
 * wait seconds, call errors, per provider) to out. */
void limit_metrics(const struct limit *l, struct strbuf *out);

/* Closes the timers; limit_free after the loop is done (and after the
 * command layer is freed: its callbacks point here). */
void limit_close(struct limit *l);
void limit_free(struct limit *l);

#endif
