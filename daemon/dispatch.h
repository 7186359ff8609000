/*
 * dispatch.h - hands personalised messages to provider plugins.
 *
 * A message goes to the providers of its channel in order: each provider
 * gets up to 1 + `retries` attempts on RETRY verdicts (exponential backoff
 * with jitter, 1 s base, 60 s cap, never shorter than the provider's
 * Retry-After), then the next provider takes over (failover). ACCEPTED ends
 * it as sent, REJECTED as failed. Each provider has its own limits from its
 * [provider NAME] section: `concurrency` requests at once and `rate` per
 * second; messages above them wait in the provider's FIFO, none is dropped.
 * A circuit breaker per provider opens after consecutive RETRY verdicts and
 * sends its messages to the next provider until a probe succeeds.
 *
 * Network plugins (prepare/interpret) run through one curl multi handle on
 * the loop (curl's multi-uv.c pattern), so connections are reused across
 * messages; local plugins (outbox, deliver) run on libuv's worker threads.
 *
 * Callback rule: dispatch_submit() returning 0 means done fires exactly
 * once, on the loop thread. The caller owns the message until then.
 */
#ifndef HERALD_DISPATCH_H
#define HERALD_DISPATCH_H

#include <uv.h>

#include "config.h"
#include "herald.h"
#include "plugin.h"

struct dispatch_msg;
typedef void (*dispatch_done_cb)(struct dispatch_msg *m, void *arg);

struct dispatch_msg {
    /* Input, owned by the caller (strings stay valid until done fires). */
    int channel;
    const char *campaign, *recipient, *topic, *to;
    char *subject, *text, *html;
    char *unsubscribe_url, *preferences_url;
    /* Result, set before done fires. */
    enum herald_outcome outcome;   /* SENT, FAILED, or UNKNOWN when interrupted */
    enum herald_reason reason;
    bool interrupted;              /* never reached a provider: safe to retry later */
    char provider[HERALD_ID_MAX + 1];
    char provider_id[128];
    char detail[128];              /* the plugin's reason text */
    /* Private to dispatch. */
    dispatch_done_cb done;
    void *done_arg;
    struct dispatch *d;
    size_t provider_pos;
    int attempt;
    bool probe;                    /* the half-open probe of its provider's circuit */
    uv_work_t work;
    uv_timer_t *retry_timer;
    struct herald_verdict verdict;
    struct dispatch_msg *next_waiting; /* on a retry timer, or in a provider FIFO */
    struct dispatch_req *req;          /* the curl request in flight, if any */
};

struct dispatch;

struct dispatch *dispatch_new(uv_loop_t *loop, const struct config *cfg, struct plugin_set *ps);
int dispatch_submit(struct dispatch *d, struct dispatch_msg *m, dispatch_done_cb done, void *arg);
/* Messages submitted and not yet done. */
size_t dispatch_in_flight(const struct dispatch *d);
/* Messages waiting for a retry or for a provider slot finish now as
 * interrupted (no provider has them); messages inside a plugin call or a
 * curl request finish normally, and a later RETRY verdict finishes them as
 * interrupted instead of retrying. */
void dispatch_interrupt(struct dispatch *d);
/* Drain timeout: curl requests still in flight are removed from the multi
 * handle and finish as UNKNOWN (not interrupted: the provider may have
 * them). Worker-thread deliveries cannot be abandoned and finish normally. */
void dispatch_abort(struct dispatch *d);
/* Closes every uv handle dispatch owns (curl timer and polls, provider
 * timers) and cleans up the curl multi handle; call once nothing is in
 * flight, before the loop's last run. dispatch_free() after uv_loop_close. */
void dispatch_close(struct dispatch *d);
void dispatch_free(struct dispatch *d);

#endif
