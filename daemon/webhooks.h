/*
 * webhooks.h - provider callbacks: POST /v1/webhooks/{provider}.
 *
 * {provider} names a [provider NAME] whose plugin takes callbacks (ABI 2's
 * feedback(), docs/plugin-abi.md); for callback URLs set up before, it may
 * also be a plugin's feedback_route ("sendgrid", "twilio"): each provider
 * of that plugin is tried in file order until one verifies the request.
 * The plugin verifies the provider's signature and reads the events; here
 * they are applied:
 *   delivered, bounced (hard, soft), failed, undelivered, complained:
 *     an audit record (outcome delivered, bounced or complained, with the
 *     provider id) and the campaign's counter of that outcome, for the
 *     message found by the campaign and recipient the provider echoed, or
 *     else by its provider id (the `<prefix>:pid:` key lua/finish.lua
 *     writes for `feedback = on` providers); a hard bounce, a complaint
 *     and an unsubscribe first suppress the address;
 *   STOP, START (inbound SMS keywords): revoke or grant the sender's SMS
 *     consent (source sms_keyword); HELP is answered and counted.
 *
 * These routes take no bearer token: each request is authenticated by the
 * provider's own signature. A request without the headers its plugin needs
 * is refused 401 as soon as its headers are in, before its body is read
 * (http_route_precheck); an unknown provider 404. Refusals are logged
 * rate-limited (log_rate_hit), never a line each. Each event is applied at
 * most once (its provider event id, WEBHOOKS_DEDUPE_TTL_S). When Redis
 * fails, the answer is 503 and nothing of an event not yet stored is
 * marked applied, so the provider's redelivery applies it (exactly once).
 * Never logs an address, a number or a message body.
 */
#ifndef HERALD_WEBHOOKS_H
#define HERALD_WEBHOOKS_H

#include "api.h"
#include "http.h"

/* How long a provider event id is remembered (dedupe of redeliveries). */
#define WEBHOOKS_DEDUPE_TTL_S (7 * 86400)
/* How long a sent message's provider id is (lua/finish.lua's PID_TTL). */
#define WEBHOOKS_PID_TTL_S (30 * 86400)
/* The largest callback body (SendGrid batches up to 768 KB). */
#define WEBHOOKS_MAX_BODY (1024u * 1024u)

/* Adds the route. st (and st->cfg, st->people, st->cmds) must outlive
 * the server; st->people may still be NULL (the routes then answer 503). */
int webhooks_register(struct http_server *srv, struct api_state *st);

#endif
