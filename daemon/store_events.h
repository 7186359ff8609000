/*
 * store_events.h - the Redis side of the campaign events POSTed to
 * [events] url (events.c): lua/events_take.lua, lua/events_claim.lua and
 * the acknowledgement, as typed calls on a command layer (STORE_CMD_ONCE:
 * the caller tries again on its next tick, nothing waits in a queue).
 *
 * Owns the stream record's JSON form (docs/schemas/event.schema.json):
 * every field as it is, the counts of `finished` as numbers, "id" the
 * entry id. Never logs. Each call's callback fires exactly once when the
 * call returned 0, never when it returned <0 (the connection is down).
 */
#ifndef HERALD_STORE_EVENTS_H
#define HERALD_STORE_EVENTS_H

#include "store_cmd.h"

#define STORE_EVENTS_GROUP "herald-events"

enum store_event_how { STORE_EVENT_NONE, STORE_EVENT_OWN, STORE_EVENT_TAKEN, STORE_EVENT_NEW };

struct store_event {
    enum store_event_how how;
    char id[64];   /* the entry id ("" with NONE) */
    char *json;    /* the body to POST (NULL with NONE); the callback's to keep (free) */
    size_t len;
    int64_t backlog; /* the group's pending + lag, -1 unknown */
};

/* ok false: Redis failed or answered another shape (err says which). */
typedef void (*store_event_cb)(bool ok, enum store_error err, struct store_event *ev, void *arg);
typedef void (*store_event_done_cb)(bool ok, bool ours, void *arg);

/* The next event for consumer (events_take.lua); claim: also look for
 * others' entries idle for claim_idle_ms. */
int store_events_take(struct store_cmds *sc, const char *prefix, const char *consumer, int64_t claim_idle_ms,
                      bool claim, store_event_cb cb, void *arg);
/* Still ours? Then claimed again (events_claim.lua): cb(ok, ours). */
int store_events_claim(struct store_cmds *sc, const char *prefix, const char *consumer, const char *id,
                       store_event_done_cb cb, void *arg);
/* XACK after a 2xx: cb(ok, true). */
int store_events_ack(struct store_cmds *sc, const char *prefix, const char *id, store_event_done_cb cb, void *arg);

/* The JSON of a stream record: fields[i] = values[i], n of them (tests). */
char *store_event_json(const char *id, const char *const *fields, const char *const *values, size_t n, size_t *len);

#endif
