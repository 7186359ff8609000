/*
 * webhooks.h - provider feedback: the routes SendGrid and Twilio call.
 *
 *   POST /v1/webhooks/sendgrid   SendGrid's signed Event Webhook: hard
 *                                bounces, drops, spam reports and
 *                                unsubscribes suppress the address
 *   POST /v1/webhooks/twilio     Twilio's inbound SMS: STOP-like keywords
 *                                revoke SMS consent, START/UNSTOP grant it
 *                                again, HELP is answered and counted
 *
 * These routes take no bearer token: each request is authenticated by the
 * provider's own signature (ECDSA P-256 for SendGrid with the provider's
 * webhook_public_key, HMAC-SHA1 for Twilio with its auth_token), checked
 * before anything is read from its body. A request without the signature
 * headers is refused 401 as soon as its headers are in, before its body is
 * read (http_route_precheck). Without a key or a token configured, every
 * request is refused (403): unsigned input is never trusted. Refusals are
 * logged rate-limited (log_rate_hit), never a line each. Each is idempotent: the same event twice changes nothing more.
 * When Redis fails, the answer is 503 and nothing of the event is marked
 * applied, so the provider's redelivery applies it (exactly once).
 * Never logs an address, a number or a message body.
 */
#ifndef HERALD_WEBHOOKS_H
#define HERALD_WEBHOOKS_H

#include "api.h"
#include "http.h"

/* SendGrid timestamps further from now than this are refused (replays).
 * SendGrid retries a failed post for up to 24 hours. */
#define WEBHOOKS_SG_MAX_AGE_S (48 * 3600)
#define WEBHOOKS_SG_MAX_AHEAD_S 600
/* How long a Twilio MessageSid is remembered (dedupe of redeliveries). */
#define WEBHOOKS_DEDUPE_TTL_S (7 * 86400)

/* Adds the two routes. st (and st->cfg, st->people, st->cmds) must outlive
 * the server; st->people may still be NULL (the routes then answer 503). */
int webhooks_register(struct http_server *srv, struct api_state *st);

#endif
