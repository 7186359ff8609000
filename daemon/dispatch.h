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
 * sends its messages to the next provider until a probe succeeds. When the
 * open circuit is the channel's last provider, its messages wait for the
 * probe (backpressure: no request, no attempt counted); a 429 (verdict
 * slow_down) pauses the provider for its Retry-After without counting
 * against the message or the circuit. A waiting message gives up only when
 * its campaign expires (expires_at) or the provider's give_up_after has
 * passed since it first had to wait: FAILED, reason PROVIDER_UNAVAILABLE.
 *
 * libcurl may re-send a request on a fresh connection when a reused one
 * died without a reply; dispatch refuses that (CURLOPT_PREREQFUNCTION), so
 * every request that leaves is one herald decided and counted (requests).
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
struct dispatch_gen;
typedef void (*dispatch_done_cb)(struct dispatch_msg *m, void *arg);

struct dispatch_msg {
    /* Input, owned by the caller (strings stay valid until done fires). */
    int channel;
    const char *campaign, *recipient, *topic, *to;
    char *subject, *text, *html;
    char *unsubscribe_url, *preferences_url;
    int64_t expires_at;            /* the campaign's end, unix seconds; 0 = never */
    /* The same for every attempt of the message (retries, failover,
     * restarts); NULL = none. Copied as a pointer into herald_message. */
    const char *idempotency_key;
    /* Result, set before done fires. */
    enum herald_outcome outcome;   /* SENT, FAILED, or UNKNOWN when interrupted */
    enum herald_reason reason;
    bool interrupted;              /* never reached a provider: safe to retry later */
    bool handed;                   /* passed the handoff gate (its first request was let go) */
    int requests;                  /* requests that left (each deliver call), all attempts and providers */
    char provider[HERALD_ID_MAX + 1];
    char provider_id[128];
    char detail[128];              /* the plugin's reason text */
    /* Private to dispatch. */
    dispatch_done_cb done;
    void *done_arg;
    struct dispatch *d;
    struct dispatch_gen *gen;      /* the configuration it was submitted under */
    size_t provider_pos;
    int attempt;
    bool probe;                    /* the half-open probe of its provider's circuit */
    uv_work_t work;
    uv_timer_t *retry_timer;
    struct herald_verdict verdict;
    struct dispatch_msg *next_waiting; /* on a retry timer, or in a provider FIFO */
    struct dispatch_req *req;          /* the curl request in flight, if any */
    uint64_t wait_since;               /* loop time it first waited for a provider */
    bool has_waited;
    int slowdowns;                     /* slow-down answers: the backoff's exponent for them */
    int gate;                          /* where it is at the handoff gate (dispatch.c) */
    struct dispatch_msg *gate_prev, *gate_next; /* collected, or waiting for the owner's answer */
    bool ahead;    /* asked ahead of a slot: counted in its provider FIFO's `ahead` */
    bool cleared;  /* the owner said go before it had a slot: it starts as soon as it gets one */
    bool refused;  /* the owner said no before it had a slot: it ends when it gets one */
    bool slot;     /* holds its slot (and token) while the owner's answer is awaited */
    uint64_t asked_ns, cleared_ns;     /* when it was shown to the owner, and cleared (uv_hrtime) */
    uint64_t slot_ns;                  /* when it took its slot to wait for the answer (uv_hrtime) */
};

struct dispatch;

struct dispatch *dispatch_new(uv_loop_t *loop, const struct config *cfg, struct plugin_set *ps);
/*
 * Reload: the configuration cfg and its plugin set ps (providers in cfg's
 * order) replace the current ones for every message submitted from now on.
 * Messages that no provider has seen yet (waiting in a provider's FIFO on
 * their first attempt, not yet shown to the handoff gate) move to the new
 * providers, in order. The others (asked at the gate, at a provider,
 * waiting for a retry or an open circuit) finish on the providers they
 * started with (their limits, circuits, plugin instances); the replaced
 * configuration is released once the last of them is done and its timers
 * are closed.
 * dispatch_in_flight() counts every configuration's messages; the metrics
 * (dispatch_nproviders, dispatch_provider_circuit) name the current one's.
 */
void dispatch_reload(struct dispatch *d, const struct config *cfg, struct plugin_set *ps);
/* Fires with a configuration and its plugin set when dispatch no longer
 * uses them: a replaced one once its messages are done, and the current
 * one (and any replaced one still draining) in dispatch_free(). Without a
 * callback they stay the caller's, as before any reload. */
typedef void (*dispatch_release_cb)(const struct config *cfg, struct plugin_set *ps, void *arg);
void dispatch_set_release(struct dispatch *d, dispatch_release_cb cb, void *arg);
/* The configurations dispatch holds: 1 + those replaced and still draining. */
size_t dispatch_generations(const struct dispatch *d);
int dispatch_submit(struct dispatch *d, struct dispatch_msg *m, dispatch_done_cb done, void *arg);
/* Messages submitted and not yet done. */
size_t dispatch_in_flight(const struct dispatch *d);
/* ... of channel ch (0 <= ch < HERALD_CH_COUNT). */
size_t dispatch_in_flight_channel(const struct dispatch *d, int ch);
/* Providers in config order (i < dispatch_nproviders): the name of provider
 * i (owned by the config), *open set when its circuit is open or half-open
 * (not trusted again yet). For /metrics. */
size_t dispatch_nproviders(const struct dispatch *d);
const char *dispatch_provider_circuit(const struct dispatch *d, size_t i, bool *open);

/*
 * The handoff gate: the owner learns which messages are about to reach a
 * provider before any of them does, so that it can record it durably.
 *
 * Called at most once per loop iteration (from a uv_check) with the
 * messages whose FIRST request (or deliver call) is next: none of them
 * starts until dispatch_handoff_done() answers for it. The msgs array is
 * valid during the call only; the messages stay the owner's. A provider's
 * FIFO is asked AHEAD of its slots: messages at its head are asked (and,
 * answered yes, wait cleared) while the slots are busy, so that a freed
 * slot starts the next message at once instead of waiting a round trip of
 * the owner's write. How many (at most the provider's `lookahead`, by
 * default its `concurrency`: what a crash leaves handed and unsent beside
 * the requests in flight) adapts to the provider's pace: one more each
 * time a message had to wait at its slot for an answer, one fewer each
 * time a cleared message waited for its slot more than twice the answer's
 * round trip. So with a fast provider the
 * owner's write overlaps the requests, and with a slow one few messages are
 * recorded handed and not yet started (after a crash those are `unknown`). A
 * message that gets a slot before its answer holds the slot meanwhile
 * (concurrency stays exact); its rate token is taken when its request
 * leaves, so a late answer never bunches requests beyond the burst. Every one counts in
 * dispatch_in_flight(). Once let go a message never passes the gate again
 * (its retries and failover need no new answer). Without a callback set
 * (NULL), messages start at once, as they always did.
 */
typedef void (*dispatch_handoff_cb)(struct dispatch_msg **msgs, size_t n, void *arg);
void dispatch_set_handoff(struct dispatch *d, dispatch_handoff_cb cb, void *arg);
/*
 * The owner's answer for messages it was given: any subset, in any order,
 * from any later callback (or from within the handoff callback itself).
 * go[i] true: start it now. False: it is not sent and finishes with
 * outcome UNKNOWN, interrupted = true, reason INTERRUPTED (it never
 * reached a provider). A message named that is not waiting for an answer
 * (already answered) is skipped. After dispatch_interrupt() every answer
 * finishes its message as interrupted, whatever go says. After
 * dispatch_abort() the call does nothing and does not read msgs: abort has
 * finished every message at the gate, and their memory may be gone.
 */
void dispatch_handoff_done(struct dispatch *d, struct dispatch_msg **msgs, size_t n, const bool *go);
/* Hands the messages collected at the gate in this iteration to the owner
 * now (its callback fires before this returns, when there are any), rather
 * than at the end of the iteration: the owner can then record them in the
 * same write as what it is about to send (queue: outcomes and handoffs in
 * one script per iteration). */
void dispatch_gate_now(struct dispatch *d);

/* Messages waiting for a retry, for a provider slot or for an open circuit
 * finish now as interrupted (no provider has them), and so do messages
 * queued for the handoff callback that it has not been given yet; messages
 * the owner was given and has not answered stay until it answers (then
 * they finish as interrupted). Messages inside a plugin call or a curl
 * request finish normally, and a later RETRY verdict finishes them as
 * interrupted instead of retrying. */
void dispatch_interrupt(struct dispatch *d);
/* The same without stopping: every message that no provider has now (waiting
 * for a retry, a slot, a rate token, an open circuit, or the owner's answer
 * ahead of its slot) finishes as interrupted, and dispatch goes on taking
 * new ones (an operator paused or cancelled the campaign). */
void dispatch_recall(struct dispatch *d);
/* The same for the messages match says yes to (the owner's run that was
 * paused, cancelled or lost beside others), leaving every other message
 * where it is; match is called on the loop thread during the call only. */
typedef bool (*dispatch_recall_match)(const struct dispatch_msg *m, void *arg);
void dispatch_recall_if(struct dispatch *d, dispatch_recall_match match, void *arg);
/* Drain timeout: curl requests still in flight are removed from the multi
 * handle and finish as UNKNOWN (not interrupted: the provider may have
 * them). Messages still waiting for the owner's handoff answer finish as
 * interrupted; later answers are ignored. Worker-thread deliveries cannot
 * be abandoned and finish normally. */
void dispatch_abort(struct dispatch *d);
/* Closes every uv handle dispatch owns (curl timer and polls, provider
 * timers) and cleans up the curl multi handle; call once nothing is in
 * flight, before the loop's last run. dispatch_free() after uv_loop_close. */
void dispatch_close(struct dispatch *d);

/* Shared limits (limit.h): providers with `shared = yes` take their rate
 * tokens and concurrency slots from lim (NULL: every limit is this
 * daemon's alone, as without it). lim outlives dispatch's use of it. */
struct limit;
void dispatch_set_limit(struct dispatch *d, struct limit *lim);
/* lim has tokens or leases for provider (a name): what waits there starts. */
void dispatch_limit_wake(struct dispatch *d, const char *provider);
void dispatch_free(struct dispatch *d);

#endif
