/*
 * api_v1.h - the preference API for the linked service (docs/api.md):
 *
 *   PUT    /v1/recipients/{id}              create or replace the profile (preferences kept
 *                                            unless the body names them)
 *   PATCH  /v1/recipients/{id}              JSON Merge Patch of the profile (RFC 7396)
 *   GET    /v1/recipients/{id}              everything herald holds about the person (ETag)
 *   GET    /v1/recipients?email=|phone=     the same, found through herald:addr
 *   DELETE /v1/recipients/{id}              erasure (tombstones kept of the addresses)
 *   PATCH  /v1/recipients/{id}/preferences  channels, topics, quiet_hours, frequency
 *   POST   /v1/recipients/{id}/consent      append a consent record (server time)
 *   GET    /v1/recipients/{id}/consent      the consent ledger, in order
 *   GET    /v1/campaigns/{id}               a campaign's progress
 *   POST   /v1/campaigns/{id}/pause|resume|cancel  steer a live campaign
 *   GET|PUT|DELETE /v1/suppressions/{channel}/{address}  the suppression list
 *   GET    /v1/openapi.json                 docs/openapi.yaml as JSON (no token)
 *
 * Every route but /v1/openapi.json (the contract: no data) needs "Authorization: Bearer <[admin] token>", compared in
 * constant time; 401 otherwise, and always when no token is configured.
 * Bodies must be JSON objects; anything wrong is 400 {"error": "<where>:
 * <what>"} and changes nothing. 404 unknown recipient or campaign, 409
 * erasure without a tombstone key, 412 when an If-Match (PUT, PATCH,
 * DELETE of a recipient) names another version (precond.h; without one
 * the write is unconditional), 415 a PATCH of the profile that is not
 * application/merge-patch+json, 503 {"error": "redis unavailable:
 * <label>"} when Redis refused or could not be reached (with Retry-After: 1
 * when the error is transient), nothing changed. Answers never
 * echo a request body; errors never quote an address.
 */
#ifndef HERALD_API_V1_H
#define HERALD_API_V1_H

#include "api.h"
#include "http.h"

#include <stddef.h>

/* docs/openapi.yaml as JSON, with the docs/schemas files it refers to
 * embedded (cmake/openapi_json.py writes it at build time): len bytes, then
 * a NUL. */
extern const char herald_openapi_json[];
extern const size_t herald_openapi_json_len;

/* Adds the routes. st (and st->cfg, st->cmds) must outlive the server;
 * st->people may be NULL (the recipient routes then answer 503). */
int api_v1_register(struct http_server *srv, struct api_state *st);

#endif
