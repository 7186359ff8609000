/*
 * api_campaigns.h - POST /v1/campaigns, GET /v1/campaigns,
 * GET /v1/campaigns/{id} and GET /v1/campaigns/{id}/outcomes
 * (docs/api.md, docs/openapi.yaml).
 */
#ifndef HERALD_API_CAMPAIGNS_H
#define HERALD_API_CAMPAIGNS_H

#include "api.h"
#include "http.h"

/* Adds the routes. st (and st->cfg, st->cmds) must outlive the server. */
int api_campaigns_register(struct http_server *srv, struct api_state *st);

/* api_v1.c's checks, shared: true when the request carries the bearer
 * token (else answered 401); the {id} parameter, or NULL after a 400. */
bool api_v1_authorised(struct http_request *req, const struct config *cfg);
const char *api_v1_id_param(struct http_request *req);

#endif
