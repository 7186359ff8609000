/*
 * dispatch.h - hands personalised messages to provider plugins.
 *
 * A message goes to the providers of its channel in order: each provider
 * gets up to 1 + retries attempts on RETRY verdicts (exponential backoff
 * with jitter, never shorter than the provider's Retry-After), then the next
 * provider takes over (failover). ACCEPTED ends it as sent, REJECTED as
 * failed. Local plugins (outbox) run on libuv's worker threads, so a slow
 * disk never blocks the loop. (Network plugins through curl multi on the
 * same loop come with the provider plugins.)
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
    uv_work_t work;
    uv_timer_t *retry_timer;
    struct herald_verdict verdict;
    struct dispatch_msg *next_waiting;
};

struct dispatch;

struct dispatch *dispatch_new(uv_loop_t *loop, const struct config *cfg, struct plugin_set *ps);
int dispatch_submit(struct dispatch *d, struct dispatch_msg *m, dispatch_done_cb done, void *arg);
/* Messages submitted and not yet done. */
size_t dispatch_in_flight(const struct dispatch *d);
/* Messages waiting for a retry finish now as interrupted (no provider has
 * them); messages inside a plugin call finish normally. */
void dispatch_interrupt(struct dispatch *d);
void dispatch_free(struct dispatch *d);

#endif
