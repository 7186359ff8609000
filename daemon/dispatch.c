/*
 * dispatch.c - provider selection, limits, retries, failover and the curl
 * engine for network plugins.
 *
 * Invariant: a message handed to a plugin that ACCEPTED it is never handed
 * to any plugin again. Retries only follow RETRY verdicts. The loop thread
 * owns every field; worker threads touch only m->verdict inside a deliver.
 *
 * Network plugins go through ONE curl multi handle driven by the loop as in
 * curl's docs/examples/multi-uv.c: one uv_poll per curl socket
 * (CURLMOPT_SOCKETFUNCTION), kept from the socket's opening to its closing
 * (CURLOPT_CLOSESOCKETFUNCTION), one uv_timer (CURLMOPT_TIMERFUNCTION), and
 * curl_multi_info_read drained after every curl_multi_socket_action.
 * Prepared requests are handed to curl at the end of the loop iteration
 * that prepared them (on_add_check), so they leave in one burst. One
 * multi handle means one connection pool: a provider's TLS connection is
 * reused from message to message. Easy handles are kept on a small free
 * list per provider. A plugin's prepare() only fills the handle and its
 * interpret() turns the collected reply (bounded: 64 KiB of headers, 64 KiB
 * of body) into a verdict; both verdict paths share on_verdict().
 *
 * Per provider: at most `concurrency` requests at once and `rate` starts per
 * second (token bucket); the rest wait in the provider's FIFO. A circuit
 * breaker opens after `circuit_failures` consecutive RETRY verdicts: for
 * `circuit_cooldown` its messages go to the next provider of their
 * channel, then one half-open probe decides. When the open circuit is the
 * channel's last provider, messages park on the provider (no request, no
 * attempt counted) until the circuit closes; one park timer per provider
 * lets the probe go at the end of the cool-down and ends messages whose
 * wait passed give_up_after or their campaign's expiry. A 429 (verdict
 * slow_down) is the provider asking for less, not failing: it pauses the
 * provider's starts for Retry-After (1 s without one), leaves the circuit
 * alone and does not use up the message's retries; only the same give-up
 * rule bounds it. Logs carry ids and provider names only.
 *
 * Every request that leaves is one dispatch decided: curl's own re-send on
 * a fresh connection (a reused one died with no reply) is refused in the
 * CURLOPT_PREREQFUNCTION, which fires before each request curl sends on a
 * connection, its own re-sends included; the transfer then fails, and the
 * message is retried (or not) by the rules above. Each request let go
 * counts in m->requests, so the count is what the provider saw.
 *
 * The handoff gate (dispatch_set_handoff): the first messages of a
 * provider's FIFO (at most a quarter of its `concurrency`) are asked
 * ahead, before they have a slot;
 * asked messages are collected during the loop iteration and a uv_check
 * hands the lot to the owner once per iteration. dispatch_handoff_done()
 * clears (or refuses) those still waiting for a slot, and starts (or
 * drops) those that took a slot before their answer came, holding it
 * meanwhile (the rate token is taken when a request leaves). So while the providers are busy, the owner's write
 * of "handed" overlaps their requests, and a freed slot starts a cleared
 * message at once. A message is never finished while it is in one of the
 * gate's lists (finish() takes it out).
 *
 * Shared limits (dispatch_set_limit, limit.h): a provider with `shared =
 * yes` takes its rate tokens from the limit (in batches from Redis) instead
 * of its own bucket, and starts a request only while the requests in
 * flight under its name (every generation's) are fewer than the leases the
 * limit holds; pump() tells the limit its demand after each pass. The 429
 * pause stays this daemon's own.
 *
 * A reload (dispatch_reload) adds a generation of providers (struct
 * dispatch_gen) rather than changing the running one: a message belongs to
 * the generation it was submitted under, so no limit, circuit or plugin
 * instance changes under a message in flight; a replaced generation is
 * freed when its last message is done.
 */
#include "dispatch.h"

#include <curl/curl.h>
#include <stdio.h>
#include <time.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "limit.h"
#include "log.h"
#include "metrics.h"

#define DISPATCH_BACKOFF_MS 1000
#define DISPATCH_BACKOFF_MAX_MS 60000
#define DISPATCH_COLLECT_MAX (64 * 1024)
#define DISPATCH_FREE_HANDLES_MAX 64
#define DISPATCH_SPARE_REQS_MAX 256    /* requests kept for reuse, with their reply buffers ... */
#define DISPATCH_SPARE_BUF_MAX 4096    /* ... when these are no larger */
#define DISPATCH_SLOW_DOWN_MS 1000 /* a provider's pause after a 429 without Retry-After */

#if LIBCURL_VERSION_NUM < 0x075000
#error "herald needs libcurl >= 7.80 (CURLOPT_PREREQFUNCTION)"
#endif

/* Where a message is at the handoff gate. */
enum gate { GATE_NONE, GATE_COLLECTED, GATE_ASKED };

enum circuit { CIRCUIT_CLOSED, CIRCUIT_OPEN, CIRCUIT_HALF_OPEN };

/* Runtime state of one [provider NAME]. */
struct dprov {
    struct dispatch *d;
    struct dispatch_gen *g;               /* the configuration it belongs to */
    struct plugin_provider *pp;
    const struct config_provider *cp;
    size_t active;                        /* deliveries or requests in flight */
    struct dispatch_msg *fifo_head, *fifo_tail;
    /* The handoff gate's lookahead: FIFO messages asked (or cleared) ahead
     * of a slot, and the first FIFO message not yet looked at for it. */
    size_t ahead;
    size_t look;                          /* how many to ask ahead now (dispatch.h) */
    struct dispatch_msg *ask_next;
    double tokens;                        /* rate bucket; unused when rate == 0 */
    uint64_t refilled_at;                 /* loop time of the last refill */
    uv_timer_t refill;
    CURL *free_easy[DISPATCH_FREE_HANDLES_MAX];
    /* The handle kept its daemon options (HERALD_CHANNEL_SAME_OPTIONS: it
     * was not reset after a request that had them all). */
    bool free_set[DISPATCH_FREE_HANDLES_MAX];
    size_t nfree;
    int failures;                         /* consecutive RETRY verdicts */
    enum circuit circuit;
    uint64_t open_until;
    bool probing;                         /* the half-open probe is out */
    struct log_complaint complaint;
    /* Messages waiting for this provider's circuit (it is their last). */
    struct dispatch_msg *park_head, *park_tail;
    uv_timer_t park_timer;                /* the probe's time, or the next give-up */
    uint64_t paused_until;                /* a 429 asked for no starts before this */
    char *status_url;                     /* `feedback = on` with a public_url: its callback URL, else NULL */
};

/* One curl socket and its poll handle. The handle lives as long as the
 * socket (closed in on_close_socket), not as long as one transfer: a
 * keep-alive connection is reused by thousands of messages, and setting a
 * poll up and down for each cost two epoll_ctl calls and an allocation. */
struct dsock {
    uv_poll_t poll;
    curl_socket_t fd;
    struct dispatch *d;
    int events; /* UV_READABLE | UV_WRITABLE now polled for, 0 stopped */
    bool idle;  /* curl is not using it (in its connection cache) */
};

/* One curl request in flight. */
struct dispatch_req {
    struct dispatch_msg *m;
    struct dprov *p;
    CURL *easy;
    void *state; /* the plugin's, until release() */
    char *hdr, *body;
    size_t hdr_len, body_len, hdr_cap, body_cap;
    struct dispatch_req *prev, *next;
    bool queued;                    /* prepared, not yet handed to curl */
    struct dispatch_req *next_add;  /* in dispatch's add queue */
    bool sent;                      /* its one request left (prereq said OK) */
    bool resend_refused;            /* curl wanted to send it again: refused */
    bool options_set;               /* the handle has every daemon option */
};

/* One configuration's providers: its config, plugin instances and their
 * runtime state (a generation). dispatch_reload() makes a new one current;
 * a message keeps the generation it was submitted under, so a message in
 * flight finishes on the providers, limits and plugin instances it started
 * with. A replaced generation is retired: once its last message is done its
 * timers are closed, and when they are, the owner's release callback gets
 * its config and plugin set back. */
struct dispatch_gen {
    struct dispatch *d;
    const struct config *cfg;
    struct plugin_set *ps;
    struct dprov *provs;
    size_t nprovs;
    size_t in_flight;            /* its messages submitted and not yet done */
    int closing;                 /* its handles still closing (retired and drained) */
    struct dispatch_gen *next;   /* on the retired list */
};

struct dispatch {
    uv_loop_t *loop;
    struct dispatch_gen *gen;     /* current: new messages go to its providers */
    struct dispatch_gen *retired; /* replaced, finishing their messages */
    dispatch_release_cb release;
    void *release_arg;
    size_t in_flight;
    size_t in_flight_ch[HERALD_CH_COUNT]; /* ... per channel */
    struct dispatch_msg *waiting; /* messages on a retry timer */
    bool stopping;                /* interrupted: RETRY now ends a message */
    bool closed;
    CURLM *multi;
    uv_timer_t curl_timer;
    uv_check_t add_check;              /* hands prepared requests to curl */
    struct dispatch_req *add_head, *add_tail;
    struct dsock **socks; /* by file descriptor */
    size_t nsocks;
    struct dispatch_req *reqs;
    /* Released requests kept with their reply buffers: a request's struct
     * and the buffers of its reply were three allocations and three frees
     * per message. Linked through next. */
    struct dispatch_req *spare;
    size_t nspare;
    /* The handoff gate. */
    dispatch_handoff_cb handoff;
    void *handoff_arg;
    uv_check_t gate_check;
    /* Active while a check has work: a started uv_check alone does not stop
     * the poll phase from sleeping, so work queued from a timer callback
     * (a retry, the rate bucket) would wait for the next I/O event. */
    uv_idle_t wake;
    struct dispatch_msg *gate_head, *gate_tail; /* collected this iteration */
    struct dispatch_msg *asked;                 /* given to the owner, unanswered */
    struct dispatch_msg **gate_vec;
    size_t gate_cap;
    bool aborted;                               /* answers are ignored from now on */
    struct limit *limit;                        /* shared limits (NULL: every limit is local) */
    bool env_proxy; /* the environment names a proxy (or exceptions) for curl */
};

static void attempt(struct dispatch_msg *m);
static void park_arm(struct dprov *p);

extern char **environ;

/* Whether the environment holds any of the variables curl reads to pick a
 * proxy (<scheme>_proxy, all_proxy, no_proxy, in either case): read once,
 * since a process's environment does not change under it. */
static bool env_has_proxy(void)
{
    for (char **e = environ; e && *e; e++) {
        const char *eq = strchr(*e, '=');
        size_t n = eq ? (size_t)(eq - *e) : strlen(*e);
        if (n >= 6 && strncasecmp(*e + n - 6, "_proxy", 6) == 0) return true;
    }
    return false;
}

static void on_wake(uv_idle_t *h)
{
    (void)h; /* being active is its whole job */
}

/* A check has work for the end of this iteration: do not sleep before it. */
static void wake_start(struct dispatch *d)
{
    uv_idle_start(&d->wake, on_wake);
}

static void wake_done(struct dispatch *d)
{
    if (!d->add_head && !d->gate_head) uv_idle_stop(&d->wake);
}
static void on_add_check(uv_check_t *h);
static void pump(struct dprov *p);
static void check_info(struct dispatch *d);

/* ---- curl multi on the loop (multi-uv.c) ------------------------------ */

static void sock_watch(struct dsock *ds, int events);

static void on_poll(uv_poll_t *h, int status, int events)
{
    struct dsock *ds = h->data;
    struct dispatch *d = ds->d;
    if (ds->idle) {
        /* A cached connection became readable: the server closed it (or
         * sent what it should not). Stop watching, or level-triggered
         * polling would spin; curl notices when it next checks the
         * connection and closes it through on_close_socket. */
        sock_watch(ds, 0);
        return;
    }
    int flags = 0, running;
    if (status < 0) flags = CURL_CSELECT_ERR;
    if (events & UV_READABLE) flags |= CURL_CSELECT_IN;
    if (events & UV_WRITABLE) flags |= CURL_CSELECT_OUT;
    curl_multi_socket_action(d->multi, ds->fd, flags, &running);
    check_info(d);
}

/* Polls for events, touching epoll only when they change. */
static void sock_watch(struct dsock *ds, int events)
{
    if (events == ds->events) return;
    if (events) uv_poll_start(&ds->poll, events, on_poll);
    else uv_poll_stop(&ds->poll);
    ds->events = events;
}

static void on_sock_closed(uv_handle_t *h)
{
    free(h->data);
}

static struct dsock *sock_find(const struct dispatch *d, curl_socket_t s)
{
    return s >= 0 && (size_t)s < d->nsocks ? d->socks[s] : NULL;
}

static void sock_close(struct dispatch *d, struct dsock *ds)
{
    d->socks[ds->fd] = NULL;
    uv_close((uv_handle_t *)&ds->poll, on_sock_closed); /* stops polling first */
}

static int on_socket(CURL *e, curl_socket_t s, int action, void *userp, void *socketp)
{
    (void)e;
    (void)socketp;
    struct dispatch *d = userp;
    struct dsock *ds = sock_find(d, s);
    if (action == CURL_POLL_REMOVE) {
        /* The connection goes back to curl's cache (or is about to be
         * closed, which on_close_socket handles): keep watching it for
         * readability only, so that its next transfer costs no epoll_ctl. */
        if (ds) {
            ds->idle = true;
            sock_watch(ds, UV_READABLE);
        }
        return 0;
    }
    if (!ds) {
        if (s < 0) return -1;
        if ((size_t)s >= d->nsocks) {
            size_t n = d->nsocks ? d->nsocks : 64;
            while (n <= (size_t)s) n *= 2;
            d->socks = xrealloc(d->socks, n * sizeof(*d->socks));
            memset(d->socks + d->nsocks, 0, (n - d->nsocks) * sizeof(*d->socks));
            d->nsocks = n;
        }
        ds = xcalloc(1, sizeof(*ds));
        ds->fd = s;
        ds->d = d;
        if (uv_poll_init_socket(d->loop, &ds->poll, s) != 0) {
            free(ds);
            return -1; /* curl fails the transfer */
        }
        ds->poll.data = ds;
        d->socks[s] = ds;
    }
    ds->idle = false;
    int events = 0;
    if (action & CURL_POLL_IN) events |= UV_READABLE;
    if (action & CURL_POLL_OUT) events |= UV_WRITABLE;
    sock_watch(ds, events);
    return 0;
}

/* CURLOPT_CLOSESOCKETFUNCTION: every socket curl opened is closed here, so
 * that its poll handle is stopped before the descriptor is gone (and
 * before the number can be reused by the next socket). */
static int on_close_socket(void *userp, curl_socket_t s)
{
    struct dispatch *d = userp;
    struct dsock *ds = sock_find(d, s);
    if (ds) sock_close(d, ds);
    return close(s);
}

static void on_curl_timer(uv_timer_t *t)
{
    struct dispatch *d = t->data;
    int running;
    curl_multi_socket_action(d->multi, CURL_SOCKET_TIMEOUT, 0, &running);
    check_info(d);
}

static int on_curl_timeout(CURLM *multi, long timeout_ms, void *userp)
{
    (void)multi;
    struct dispatch *d = userp;
    if (timeout_ms < 0) {
        uv_timer_stop(&d->curl_timer);
    } else {
        if (timeout_ms == 0) timeout_ms = 1; /* as soon as possible, from the loop */
        uv_timer_start(&d->curl_timer, on_curl_timer, (uint64_t)timeout_ms, 0);
    }
    return 0;
}

/* ---- setup --------------------------------------------------------------- */

static struct dispatch_gen *gen_new(struct dispatch *d, const struct config *cfg, struct plugin_set *ps)
{
    struct dispatch_gen *g = xcalloc(1, sizeof(*g));
    g->d = d;
    g->cfg = cfg;
    g->ps = ps;
    g->nprovs = cfg->nproviders;
    g->provs = xcalloc(g->nprovs ? g->nprovs : 1, sizeof(*g->provs));
    for (size_t i = 0; i < g->nprovs; i++) {
        struct dprov *p = &g->provs[i];
        p->d = d;
        p->g = g;
        p->pp = i < plugin_set_count(ps) ? plugin_set_get(ps, i) : NULL;
        p->cp = &cfg->providers[i];
        p->tokens = p->cp->rate < 1 ? 1 : p->cp->rate;
        p->refilled_at = uv_now(d->loop);
        uv_timer_init(d->loop, &p->refill);
        p->refill.data = p;
        uv_timer_init(d->loop, &p->park_timer);
        p->park_timer.data = p;
        if (p->cp->feedback && cfg->public_url && cfg->public_url[0]) {
            struct strbuf u;
            strbuf_init(&u);
            size_t n = strlen(cfg->public_url);
            while (n && cfg->public_url[n - 1] == '/') n--;
            strbuf_add(&u, cfg->public_url, n);
            strbuf_addf(&u, "/v1/webhooks/%s", p->cp->name);
            p->status_url = strbuf_detach(&u, NULL);
        }
    }
    return g;
}

/* Keep every provider connection open between messages. By default the
 * cache holds 4x the handles added at that moment, so a lull (a handful in
 * flight) closed connections that the next burst had to reopen. */
static void set_max_connects(struct dispatch *d)
{
    long keep = 0;
    for (const struct dispatch_gen *g = d->gen; g; g = g == d->gen ? d->retired : g->next)
        for (size_t i = 0; i < g->nprovs; i++) keep += g->provs[i].cp->concurrency;
    curl_multi_setopt(d->multi, CURLMOPT_MAXCONNECTS, keep < 16 ? 16L : keep);
}

struct dispatch *dispatch_new(uv_loop_t *loop, const struct config *cfg, struct plugin_set *ps)
{
    struct dispatch *d = xcalloc(1, sizeof(*d));
    d->loop = loop;
    d->env_proxy = env_has_proxy();
    d->gen = gen_new(d, cfg, ps);
    d->multi = curl_multi_init();
    if (!d->multi) {
        fprintf(stderr, "herald: curl_multi_init failed\n");
        abort();
    }
    curl_multi_setopt(d->multi, CURLMOPT_SOCKETFUNCTION, on_socket);
    curl_multi_setopt(d->multi, CURLMOPT_SOCKETDATA, d);
    curl_multi_setopt(d->multi, CURLMOPT_TIMERFUNCTION, on_curl_timeout);
    curl_multi_setopt(d->multi, CURLMOPT_TIMERDATA, d);
    set_max_connects(d);
    uv_timer_init(loop, &d->curl_timer);
    d->curl_timer.data = d;
    uv_check_init(loop, &d->add_check);
    d->add_check.data = d;
    uv_check_init(loop, &d->gate_check);
    d->gate_check.data = d;
    uv_idle_init(loop, &d->wake);
    d->wake.data = d;
    return d;
}

void dispatch_set_release(struct dispatch *d, dispatch_release_cb cb, void *arg)
{
    d->release = cb;
    d->release_arg = arg;
}

static void gen_free(struct dispatch *d, struct dispatch_gen *g)
{
    if (d->release) d->release(g->cfg, g->ps, d->release_arg);
    for (size_t i = 0; i < g->nprovs; i++) free(g->provs[i].status_url);
    free(g->provs);
    free(g);
}

static void on_gen_timer_closed(uv_handle_t *h)
{
    struct dprov *p = h->data;
    struct dispatch_gen *g = p->g;
    if (--g->closing > 0) return;
    struct dispatch *d = g->d;
    for (struct dispatch_gen **pp = &d->retired; *pp; pp = &(*pp)->next) {
        if (*pp == g) {
            *pp = g->next;
            break;
        }
    }
    log_debug("dispatch", "a replaced configuration's providers are done and freed");
    gen_free(d, g);
}

/* A retired generation whose last message is done: close its handles (the
 * last close frees it). Its easy handles go now; curl's pooled connections
 * are the multi handle's, shared by every generation. */
static void gen_close(struct dispatch_gen *g)
{
    if (g->closing || g == g->d->gen || g->in_flight > 0 || g->d->closed) return;
    for (size_t i = 0; i < g->nprovs; i++) {
        struct dprov *p = &g->provs[i];
        while (p->nfree) curl_easy_cleanup(p->free_easy[--p->nfree]);
        uv_timer_stop(&p->refill);
        uv_timer_stop(&p->park_timer);
        uv_close((uv_handle_t *)&p->refill, on_gen_timer_closed);
        uv_close((uv_handle_t *)&p->park_timer, on_gen_timer_closed);
        g->closing += 2;
    }
    if (g->closing == 0) { /* no provider: nothing to wait for */
        g->closing = 1;
        for (struct dispatch_gen **pp = &g->d->retired; *pp; pp = &(*pp)->next) {
            if (*pp == g) {
                *pp = g->next;
                break;
            }
        }
        gen_free(g->d, g);
    }
}

/* A message waiting in a provider's FIFO that nothing has seen yet: not
 * asked at the gate, never handed, on its first provider's first attempt. */
static bool movable(const struct dispatch_msg *m)
{
    return !m->ahead && !m->handed && !m->cleared && !m->refused && !m->slot && !m->probe &&
           m->gate == GATE_NONE && m->provider_pos == 0 && m->attempt == 1;
}

void dispatch_reload(struct dispatch *d, const struct config *cfg, struct plugin_set *ps)
{
    struct dispatch_gen *old = d->gen;
    d->gen = gen_new(d, cfg, ps);
    old->next = d->retired;
    d->retired = old;
    set_max_connects(d);
    /* What waits in the old providers' FIFOs unseen moves to the new ones
     * (in order): a reload that fixes a provider's URL or raises its rate
     * applies to the queue behind it, not only to what comes later. */
    struct dispatch_msg *moved = NULL, **mtail = &moved;
    for (size_t i = 0; i < old->nprovs; i++) {
        struct dprov *p = &old->provs[i];
        struct dispatch_msg *m = p->fifo_head, *ask = p->ask_next;
        bool past_ask = false;
        p->fifo_head = p->fifo_tail = p->ask_next = NULL;
        while (m) {
            struct dispatch_msg *next = m->next_waiting;
            if (m == ask) past_ask = true;
            m->next_waiting = NULL;
            if (movable(m)) {
                *mtail = m;
                mtail = &m->next_waiting;
            } else {
                if (p->fifo_tail) p->fifo_tail->next_waiting = m;
                else p->fifo_head = m;
                p->fifo_tail = m;
                if (past_ask && !p->ask_next) p->ask_next = m;
            }
            m = next;
        }
    }
    while (moved) {
        struct dispatch_msg *m = moved;
        moved = m->next_waiting;
        m->next_waiting = NULL;
        old->in_flight--;
        m->gen = d->gen;
        m->gen->in_flight++;
        m->attempt = 0;
        attempt(m);
    }
    gen_close(old); /* at once when none of its messages is in flight */
}

size_t dispatch_generations(const struct dispatch *d)
{
    size_t n = 1;
    for (const struct dispatch_gen *g = d->retired; g; g = g->next) n++;
    return n;
}

size_t dispatch_in_flight(const struct dispatch *d) { return d->in_flight; }
size_t dispatch_in_flight_channel(const struct dispatch *d, int ch) { return d->in_flight_ch[ch]; }
size_t dispatch_nproviders(const struct dispatch *d) { return d->gen->nprovs; }

const char *dispatch_provider_circuit(const struct dispatch *d, size_t i, bool *open)
{
    *open = d->gen->provs[i].circuit != CIRCUIT_CLOSED;
    return d->gen->provs[i].pp->name;
}

static struct dprov *current_prov(struct dispatch_msg *m)
{
    const struct config_channel *cc = &m->gen->cfg->channels[m->channel];
    if (!cc->present || m->provider_pos >= cc->nproviders) return NULL;
    int idx = cc->provider_index[m->provider_pos];
    if (idx < 0 || (size_t)idx >= m->gen->nprovs) return NULL;
    struct dprov *p = &m->gen->provs[idx];
    return p->pp && p->pp->api ? p : NULL;
}

static bool has_next_provider(struct dispatch_msg *m)
{
    const struct config_channel *cc = &m->gen->cfg->channels[m->channel];
    return cc->present && m->provider_pos + 1 < cc->nproviders;
}

static void gate_forget(struct dispatch_msg *m);

static void finish(struct dispatch_msg *m)
{
    gate_forget(m); /* an answer that comes later finds nothing to do */
    /* Ids and counts only: what the audit record will carry. */
    log_debug("dispatch", "done campaign=%s recipient=%s provider=%s outcome=%s reason=%s requests=%d handed=%d",
              m->campaign, m->recipient, m->provider[0] ? m->provider : "-", herald_outcome_name(m->outcome),
              m->reason == HERALD_REASON_NONE ? "-" : herald_reason_name(m->reason), m->requests, (int)m->handed);
    struct dispatch_gen *g = m->gen;
    m->d->in_flight--;
    m->d->in_flight_ch[m->channel]--;
    g->in_flight--;
    m->done(m, m->done_arg);
    gen_close(g); /* a replaced generation's last message */
}

static void finish_failed(struct dispatch_msg *m, enum herald_reason reason, const char *detail)
{
    m->outcome = HERALD_OUTCOME_FAILED;
    m->reason = reason;
    if (detail != m->detail) herald_copy(m->detail, sizeof(m->detail), detail); /* may already be there */
    finish(m);
}

static void finish_interrupted(struct dispatch_msg *m)
{
    m->outcome = HERALD_OUTCOME_UNKNOWN;
    m->reason = HERALD_REASON_INTERRUPTED;
    m->interrupted = true;
    finish(m);
}

static void fill_message(struct dispatch_msg *m, struct herald_message *hm)
{
    const struct dprov *p = current_prov(m);
    *hm = (struct herald_message){
        .campaign = m->campaign,
        .recipient = m->recipient,
        .channel = herald_channel_name(m->channel),
        .topic = m->topic,
        .to = m->to,
        .subject = m->subject,
        .text = m->text,
        .html = m->html,
        .unsubscribe_url = m->unsubscribe_url,
        .preferences_url = m->preferences_url,
        .idempotency_key = m->idempotency_key,
        .status_url = p ? p->status_url : NULL,
    };
}

/* ---- retries ---------------------------------------------------------- */

static void on_timer_closed(uv_handle_t *h)
{
    free(h);
}

static void unlink_waiting(struct dispatch_msg *m)
{
    for (struct dispatch_msg **pp = &m->d->waiting; *pp; pp = &(*pp)->next_waiting) {
        if (*pp == m) {
            *pp = m->next_waiting;
            break;
        }
    }
    m->next_waiting = NULL;
    uv_close((uv_handle_t *)m->retry_timer, on_timer_closed);
    m->retry_timer = NULL;
}

static void on_retry_timer(uv_timer_t *t)
{
    struct dispatch_msg *m = t->data;
    unlink_waiting(m);
    attempt(m);
}

/* Exponential backoff with jitter (1 s, 2 s, 4 s ... capped at 60 s) for
 * the n-th retry, and never sooner than min_ms (the provider's Retry-After). */
static void retry_later(struct dispatch_msg *m, int64_t min_ms, int n)
{
    int shift = n < 1 ? 0 : (n > 7 ? 6 : n - 1);
    int64_t delay = (int64_t)DISPATCH_BACKOFF_MS << shift;
    if (delay > DISPATCH_BACKOFF_MAX_MS) delay = DISPATCH_BACKOFF_MAX_MS;
    delay = delay / 2 + rand() % (delay / 2 + 1); /* jitter */
    if (delay < min_ms) delay = min_ms;
    m->retry_timer = xmalloc(sizeof(uv_timer_t));
    uv_timer_init(m->d->loop, m->retry_timer);
    m->retry_timer->data = m;
    m->next_waiting = m->d->waiting;
    m->d->waiting = m;
    /* The loop's time is that of the iteration's start: a Retry-After is
     * counted from now, when its answer was read, never from earlier. */
    uv_update_time(m->d->loop);
    uv_timer_start(m->retry_timer, on_retry_timer, (uint64_t)delay, 0);
}

/* ---- circuit breaker -------------------------------------------------- */

/* May m go to p now? Takes the half-open probe slot when it is free. */
static bool circuit_admits(struct dprov *p, struct dispatch_msg *m)
{
    if (p->circuit == CIRCUIT_CLOSED) return true;
    if (p->circuit == CIRCUIT_OPEN && uv_now(p->d->loop) >= p->open_until) {
        p->circuit = CIRCUIT_HALF_OPEN;
        p->probing = false;
    }
    if (p->circuit == CIRCUIT_HALF_OPEN && !p->probing) {
        p->probing = true;
        m->probe = true;
        return true;
    }
    return false;
}

static void circuit_open(struct dprov *p)
{
    p->circuit = CIRCUIT_OPEN;
    p->probing = false;
    p->open_until = uv_now(p->d->loop) + (uint64_t)p->cp->circuit_cooldown_ms;
    log_complain(&p->complaint, "dispatch", "circuit open provider=%s failures=%d cooldown_ms=%lld",
                 p->pp->name, p->failures, (long long)p->cp->circuit_cooldown_ms);
    park_arm(p);
}

/* The probe slot is free again without an answer (prepare refused, the
 * gate said no): let a parked message probe. */
static void probe_abandoned(struct dprov *p, struct dispatch_msg *m)
{
    if (!m->probe) return;
    m->probe = false;
    p->probing = false;
    park_arm(p);
}

/* The provider answered (ACCEPTED or REJECTED): it works. */
static void circuit_success(struct dprov *p, struct dispatch_msg *m)
{
    p->failures = 0;
    if (m->probe) p->probing = false;
    m->probe = false;
    if (p->circuit != CIRCUIT_CLOSED) {
        p->circuit = CIRCUIT_CLOSED;
        log_recovered(&p->complaint, "dispatch", "circuit closed provider=%s", p->pp->name);
        park_arm(p); /* the parked messages go, from the loop */
    }
}

/* ---- waiting for a provider (open circuit, slow down) ------------------ */

static void finish_unavailable(struct dispatch_msg *m, struct dprov *p, const char *why)
{
    herald_copy(m->provider, sizeof(m->provider), p->pp->name);
    log_info("dispatch", "gave up waiting campaign=%s recipient=%s provider=%s waited_ms=%llu why=%s", m->campaign,
             m->recipient, p->pp->name, (unsigned long long)(uv_now(m->d->loop) - m->wait_since), why);
    finish_failed(m, HERALD_REASON_PROVIDER_UNAVAILABLE, why);
}

/* Starts m's wait for a provider (the first one counts for give_up_after). */
static void wait_begin(struct dispatch_msg *m)
{
    if (m->has_waited) return;
    m->has_waited = true;
    m->wait_since = uv_now(m->d->loop);
}

/* Loop time at which m stops waiting for p: give_up_after after its first
 * wait, or its campaign's end, whichever comes first; UINT64_MAX: never. */
static uint64_t wait_deadline(const struct dprov *p, const struct dispatch_msg *m, uint64_t now)
{
    uint64_t dl = UINT64_MAX;
    if (p->cp->give_up_after_ms > 0) dl = m->wait_since + (uint64_t)p->cp->give_up_after_ms;
    if (m->expires_at > 0) {
        int64_t left = m->expires_at - (int64_t)time(NULL);
        uint64_t e = left <= 0 ? now : now + (uint64_t)left * 1000;
        if (e < dl) dl = e;
    }
    return dl;
}

/* m waits for p's circuit, p being the last provider of its channel: no
 * request, no attempt. */
static void park(struct dprov *p, struct dispatch_msg *m)
{
    wait_begin(m);
    herald_copy(m->provider, sizeof(m->provider), p->pp->name);
    if (wait_deadline(p, m, uv_now(m->d->loop)) <= uv_now(m->d->loop)) {
        finish_unavailable(m, p, "circuit_open");
        return;
    }
    m->next_waiting = NULL;
    if (p->park_tail) p->park_tail->next_waiting = m;
    else p->park_head = m;
    p->park_tail = m;
    park_arm(p);
}

static struct dispatch_msg *park_take(struct dprov *p, struct dispatch_msg *prev, struct dispatch_msg *m)
{
    if (prev) prev->next_waiting = m->next_waiting;
    else p->park_head = m->next_waiting;
    if (p->park_tail == m) p->park_tail = prev;
    m->next_waiting = NULL;
    return m;
}

static void on_park_timer(uv_timer_t *t)
{
    struct dprov *p = t->data;
    struct dispatch *d = p->d;
    if (d->closed) return;
    uint64_t now = uv_now(d->loop);
    if (p->circuit == CIRCUIT_CLOSED) {
        /* Recovered: every parked message goes, with a fresh set of retries. */
        struct dispatch_msg *m = p->park_head;
        p->park_head = p->park_tail = NULL;
        while (m) {
            struct dispatch_msg *next = m->next_waiting;
            m->next_waiting = NULL;
            m->attempt = 0;
            attempt(m);
            m = next;
        }
        return;
    }
    for (struct dispatch_msg *prev = NULL, *m = p->park_head; m;) {
        struct dispatch_msg *next = m->next_waiting;
        if (wait_deadline(p, m, now) <= now) finish_unavailable(park_take(p, prev, m), p, "circuit_open");
        else prev = m;
        m = next;
    }
    /* The cool-down is over (or the probe slot came free): the head probes. */
    bool probe_due = (p->circuit == CIRCUIT_OPEN && now >= p->open_until) ||
                     (p->circuit == CIRCUIT_HALF_OPEN && !p->probing);
    if (probe_due && p->park_head) {
        struct dispatch_msg *m = park_take(p, NULL, p->park_head);
        m->attempt = 0;
        attempt(m); /* admitted as the probe */
    }
    park_arm(p);
}

/* Arms p's park timer for the next thing due: the circuit closing (now),
 * the probe, or the earliest give-up. */
static void park_arm(struct dprov *p)
{
    struct dispatch *d = p->d;
    if (d->closed) return;
    if (!p->park_head) {
        uv_timer_stop(&p->park_timer);
        return;
    }
    uint64_t now = uv_now(d->loop), due = UINT64_MAX;
    if (p->circuit == CIRCUIT_CLOSED || (p->circuit == CIRCUIT_HALF_OPEN && !p->probing)) due = now;
    else if (p->circuit == CIRCUIT_OPEN) due = p->open_until;
    for (struct dispatch_msg *m = p->park_head; m && due > now; m = m->next_waiting) {
        uint64_t dl = wait_deadline(p, m, now);
        if (dl < due) due = dl;
    }
    if (due == UINT64_MAX) {
        uv_timer_stop(&p->park_timer); /* half-open, probe out: its verdict re-arms */
        return;
    }
    uv_timer_start(&p->park_timer, on_park_timer, due > now ? due - now : 0, 0);
}

static void circuit_failure(struct dprov *p, struct dispatch_msg *m)
{
    p->failures++;
    if (m->probe) {
        m->probe = false;
        circuit_open(p); /* the probe failed: another cool-down */
        return;
    }
    if (p->circuit == CIRCUIT_CLOSED && p->failures >= p->cp->circuit_failures) circuit_open(p);
}

/* ---- verdicts (shared by the deliver and curl paths) ------------------ */

/* m's attempt at p ended with m->verdict. `answered` is false when the
 * provider was never reached for reasons of our own (prepare refused). */
static const char *verdict_name(int kind)
{
    return kind == HERALD_VERDICT_ACCEPTED ? "accepted" : kind == HERALD_VERDICT_REJECTED ? "rejected" : "retry";
}

static void on_verdict(struct dispatch_msg *m, struct dprov *p, bool answered)
{
    struct herald_verdict *v = &m->verdict;
    herald_copy(m->provider, sizeof(m->provider), p->pp->name);
    if (!answered) probe_abandoned(p, m); /* let another message probe */
    switch (v->kind) {
    case HERALD_VERDICT_ACCEPTED:
        if (answered) circuit_success(p, m);
        m->outcome = HERALD_OUTCOME_SENT;
        m->reason = HERALD_REASON_NONE;
        herald_copy(m->provider_id, sizeof(m->provider_id), v->provider_id);
        finish(m);
        return;
    case HERALD_VERDICT_REJECTED:
        if (answered) circuit_success(p, m);
        log_info("dispatch", "rejected campaign=%s recipient=%s provider=%s reason=%s", m->campaign,
                 m->recipient, m->provider, v->reason[0] ? v->reason : "rejected");
        finish_failed(m, HERALD_REASON_PROVIDER_REJECTED, v->reason[0] ? v->reason : "rejected");
        return;
    case HERALD_VERDICT_RETRY:
    default: {
        bool slow = answered && v->slow_down;
        if (slow) circuit_success(p, m); /* it answered: up, and asking for less */
        else if (answered) circuit_failure(p, m);
        herald_copy(m->detail, sizeof(m->detail), v->reason[0] ? v->reason : "retry");
        log_info("dispatch", "retry campaign=%s recipient=%s provider=%s attempt=%d reason=%s%s",
                 m->campaign, m->recipient, m->provider, m->attempt, m->detail, slow ? " slow_down=1" : "");
        if (m->d->stopping) {
            finish_interrupted(m); /* no provider has it; the next run sends it */
            return;
        }
        /* A provider asking for more than the backoff cap is as good as
         * down: take the next provider now, if there is one. */
        bool long_wait = v->retry_after_ms > DISPATCH_BACKOFF_MAX_MS && has_next_provider(m);
        if (slow && !long_wait) {
            /* Not a failure of the message: its retries stay, and the
             * provider starts nothing before Retry-After. Only the wait's
             * own bound ends it. */
            uv_update_time(m->d->loop); /* the pause counts from this answer, not the iteration's start */
            uint64_t now = uv_now(m->d->loop);
            /* +1: the loop's clock counts whole milliseconds, truncated, and
             * Retry-After is a lower bound the provider holds us to. */
            int64_t pause = (v->retry_after_ms > 0 ? v->retry_after_ms : DISPATCH_SLOW_DOWN_MS) + 1;
            if (p->paused_until < now + (uint64_t)pause) p->paused_until = now + (uint64_t)pause;
            m->attempt--;
            wait_begin(m);
            if (wait_deadline(p, m, now) <= now) {
                finish_unavailable(m, p, m->detail);
                return;
            }
            retry_later(m, pause, ++m->slowdowns);
            return;
        }
        if (m->attempt <= p->cp->retries && !long_wait) {
            retry_later(m, v->retry_after_ms, m->attempt);
            return;
        }
        /* This provider is exhausted: fail over to the next one. */
        if (has_next_provider(m)) {
            m->provider_pos++;
            m->attempt = 0;
            attempt(m);
            return;
        }
        /* The last provider is down as a whole (its circuit is open, this
         * message may have been the probe): wait for it, not fail. */
        if (p->circuit != CIRCUIT_CLOSED) {
            park(p, m);
            return;
        }
        finish_failed(m, HERALD_REASON_PROVIDER_ERROR, m->detail);
        return;
    }
    }
}

/* ---- local plugins: deliver() on the thread pool ---------------------- */

static void work_deliver(uv_work_t *w)
{
    struct dispatch_msg *m = w->data;
    struct dprov *p = current_prov(m);
    struct herald_message hm;
    fill_message(m, &hm);
    memset(&m->verdict, 0, sizeof(m->verdict));
    p->pp->api->deliver(p->pp->instance, &hm, &m->verdict);
}

static void after_deliver(uv_work_t *w, int status)
{
    struct dispatch_msg *m = w->data;
    struct dprov *p = current_prov(m);
    p->active--;
    if (status == UV_ECANCELED) {
        herald_copy(m->provider, sizeof(m->provider), p->pp->name);
        finish_interrupted(m);
    } else {
        m->requests++; /* deliver() ran: for a local plugin, that is the request */
        metrics_provider(p->pp->name, verdict_name(m->verdict.kind), -1.0);
        on_verdict(m, p, true);
    }
    pump(p);
}

/* ---- network plugins: prepare()/interpret() through curl --------------- */

static void collect(char **buf, size_t *len, size_t *cap, const char *data, size_t n)
{
    if (*len >= DISPATCH_COLLECT_MAX) return; /* enough to judge by: stop collecting */
    size_t take = n < DISPATCH_COLLECT_MAX - *len ? n : DISPATCH_COLLECT_MAX - *len;
    if (*len + take + 1 > *cap) { /* curl hands headers over a line at a time */
        size_t c = *cap ? *cap : 512;
        while (c < *len + take + 1) c *= 2;
        *buf = xrealloc(*buf, c);
        *cap = c;
    }
    memcpy(*buf + *len, data, take);
    *len += take;
    (*buf)[*len] = '\0';
}

static size_t on_header_data(char *data, size_t size, size_t n, void *ud)
{
    struct dispatch_req *req = ud;
    collect(&req->hdr, &req->hdr_len, &req->hdr_cap, data, size * n);
    return size * n;
}

static size_t on_body_data(char *data, size_t size, size_t n, void *ud)
{
    struct dispatch_req *req = ud;
    collect(&req->body, &req->body_len, &req->body_cap, data, size * n);
    return size * n;
}

/* CURLOPT_PREREQFUNCTION: curl is about to send req's request on a
 * connection. The first time is the request dispatch started; a second
 * time within the same transfer is curl re-sending it on its own, on a
 * fresh connection, after a reused one died without a reply (curl's
 * Curl_retry_request). That re-send is refused: the transfer fails, and
 * the verdict path decides whether and when to try again, counted. */
static int on_prereq(void *ud, char *primary_ip, char *local_ip, int primary_port, int local_port)
{
    (void)primary_ip;
    (void)local_ip;
    (void)primary_port;
    (void)local_port;
    struct dispatch_req *req = ud;
    if (req->sent) {
        req->resend_refused = true;
        return CURL_PREREQFUNC_ABORT;
    }
    req->sent = true;
    req->m->requests++;
    return CURL_PREREQFUNC_OK;
}

/* Unlinks req, lets the plugin release its state and recycles the handle. */
static void req_release(struct dispatch *d, struct dispatch_req *req)
{
    if (req->prev) req->prev->next = req->next;
    else if (d->reqs == req) d->reqs = req->next;
    if (req->next) req->next->prev = req->prev;
    struct dprov *p = req->p;
    if (req->queued) { /* released before curl had it (abort): leave the add queue */
        struct dispatch_req **pp = &d->add_head;
        while (*pp && *pp != req) pp = &(*pp)->next_add;
        if (*pp) *pp = req->next_add;
        if (d->add_tail == req) {
            d->add_tail = NULL;
            for (struct dispatch_req *q = d->add_head; q; q = q->next_add) d->add_tail = q;
        }
        req->queued = false;
    }
    if (req->state && p->pp->api->release) p->pp->api->release(p->pp->instance, req->state);
    /* A plugin that sets the same options for every request leaves
     * nothing of this one in the handle that the next would not set again
     * (the daemon's own options are the same for every request of the
     * provider): its reset would be spent in vain. */
    bool keep = p->pp->flags & HERALD_CHANNEL_SAME_OPTIONS;
    if (!keep) curl_easy_reset(req->easy);
    if (p->nfree < DISPATCH_FREE_HANDLES_MAX && p->nfree < (size_t)p->cp->concurrency) {
        p->free_set[p->nfree] = keep && req->options_set;
        p->free_easy[p->nfree++] = req->easy;
    } else
        curl_easy_cleanup(req->easy);
    req->m->req = NULL;
    if (d->nspare < DISPATCH_SPARE_REQS_MAX && req->hdr_cap <= DISPATCH_SPARE_BUF_MAX &&
        req->body_cap <= DISPATCH_SPARE_BUF_MAX) {
        req->next = d->spare;
        d->spare = req;
        d->nspare++;
        return;
    }
    free(req->hdr);
    free(req->body);
    free(req);
}

/* A zeroed request, its reply buffers empty (kept from a spare one). */
static struct dispatch_req *req_new(struct dispatch *d)
{
    struct dispatch_req *req = d->spare;
    if (!req) return xcalloc(1, sizeof(*req));
    d->spare = req->next;
    d->nspare--;
    *req = (struct dispatch_req){
        .hdr = req->hdr, .hdr_cap = req->hdr_cap, .body = req->body, .body_cap = req->body_cap};
    return req;
}

static void start_curl(struct dprov *p, struct dispatch_msg *m)
{
    struct dispatch *d = p->d;
    bool set = false; /* the daemon's own options are there already */
    CURL *e;
    if (p->nfree) {
        p->nfree--;
        e = p->free_easy[p->nfree];
        set = p->free_set[p->nfree];
    } else {
        e = curl_easy_init();
    }
    if (!e) {
        fprintf(stderr, "herald: curl_easy_init failed\n");
        abort();
    }
    struct dispatch_req *req = req_new(d);
    req->m = m;
    req->p = p;
    req->easy = e;
    m->req = req;
    if (!set && !d->env_proxy) {
        /* No proxy in the environment: say so, and curl does not look for
         * one (five getenv per request). Before prepare(), so that a
         * plugin may still choose its own. */
        curl_easy_setopt(e, CURLOPT_PROXY, "");
        curl_easy_setopt(e, CURLOPT_NOPROXY, "");
    }
    struct herald_message hm;
    fill_message(m, &hm);
    memset(&m->verdict, 0, sizeof(m->verdict));
    char reason[sizeof(m->verdict.reason)] = "";
    if (p->pp->api->prepare(p->pp->instance, &hm, e, &req->state, reason, sizeof(reason)) < 0) {
        /* Refused before any I/O; prepare() cleaned up its own state. */
        req->state = NULL;
        req_release(d, req);
        p->active--;
        m->verdict.kind = HERALD_VERDICT_REJECTED;
        herald_copy(m->verdict.reason, sizeof(m->verdict.reason), reason[0] ? reason : "prepare_failed");
        on_verdict(m, p, false);
        return;
    }
    /* The daemon's own options go last so that a plugin cannot undo them
     * (one that sets the same options every time sets none of these: on a
     * handle kept from its previous request, those that do not name the
     * request are still there). */
    curl_easy_setopt(e, CURLOPT_PRIVATE, (void *)req);
    curl_easy_setopt(e, CURLOPT_HEADERDATA, (void *)req);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, (void *)req);
    curl_easy_setopt(e, CURLOPT_PREREQDATA, (void *)req);
    if (!set) {
        curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header_data);
        curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body_data);
        curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)p->cp->timeout_ms);
        curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
        curl_easy_setopt(e, CURLOPT_CLOSESOCKETFUNCTION, on_close_socket);
        curl_easy_setopt(e, CURLOPT_CLOSESOCKETDATA, (void *)d);
        curl_easy_setopt(e, CURLOPT_PREREQFUNCTION, on_prereq);
    }
    req->options_set = true;
    req->next = d->reqs;
    if (d->reqs) d->reqs->prev = req;
    d->reqs = req;
    /* Handed to curl at the end of this loop iteration, together with the
     * others prepared in it (on_add_check). */
    req->queued = true;
    req->next_add = NULL;
    if (d->add_tail) d->add_tail->next_add = req;
    else d->add_head = req;
    d->add_tail = req;
    uv_check_start(&d->add_check, on_add_check);
    wake_start(d);
}

/* The requests prepared during one loop iteration go to curl together, at
 * its end, and curl sends them in one pass: one wake-up of the provider's
 * server for the lot, instead of one per request as replies trickle in. */
static void on_add_check(uv_check_t *h)
{
    struct dispatch *d = h->data;
    uv_check_stop(h);
    struct dispatch_req *req = d->add_head;
    d->add_head = d->add_tail = NULL;
    wake_done(d);
    bool added = false;
    while (req) {
        struct dispatch_req *next = req->next_add;
        req->queued = false;
        req->next_add = NULL;
        if (curl_multi_add_handle(d->multi, req->easy) != CURLM_OK) {
            struct dispatch_msg *m = req->m;
            struct dprov *p = req->p;
            req_release(d, req);
            p->active--;
            m->verdict.kind = HERALD_VERDICT_RETRY;
            snprintf(m->verdict.reason, sizeof(m->verdict.reason), "curl_multi_add_handle");
            on_verdict(m, p, false);
        } else {
            added = true;
        }
        req = next;
    }
    if (added) {
        int running;
        curl_multi_socket_action(d->multi, CURL_SOCKET_TIMEOUT, 0, &running);
        check_info(d);
    }
}

/* Every finished transfer: interpret, release, decide. */
static void check_info(struct dispatch *d)
{
    CURLMsg *msg;
    int left;
    while (d->multi && (msg = curl_multi_info_read(d->multi, &left))) {
        if (msg->msg != CURLMSG_DONE) continue;
        CURL *e = msg->easy_handle;
        CURLcode code = msg->data.result; /* msg dies with remove_handle */
        char *priv = NULL;
        curl_easy_getinfo(e, CURLINFO_PRIVATE, &priv);
        struct dispatch_req *req = (struct dispatch_req *)(void *)priv;
        curl_multi_remove_handle(d->multi, e);
        long status = 0;
        curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &status);
        struct dispatch_msg *m = req->m;
        struct dprov *p = req->p;
        struct herald_response resp = {
            .curl_code = (int)code,
            .status = status,
            .headers = req->hdr_len ? req->hdr : "", /* a spare buffer holds an old reply */
            .headers_len = req->hdr_len,
            .body = req->body_len ? req->body : "",
            .body_len = req->body_len,
        };
        memset(&m->verdict, 0, sizeof(m->verdict));
        p->pp->api->interpret(p->pp->instance, req->state, &resp, &m->verdict);
        if (req->resend_refused) {
            /* The connection died after the request left, and curl's own
             * re-send was refused: whatever the plugin made of the error,
             * the provider may or may not have it, and herald decides. */
            memset(&m->verdict, 0, sizeof(m->verdict));
            m->verdict.kind = HERALD_VERDICT_RETRY;
            herald_copy(m->verdict.reason, sizeof(m->verdict.reason), "connection_died");
            log_debug("dispatch", "refused curl's re-send campaign=%s recipient=%s provider=%s", m->campaign,
                      m->recipient, p->pp->name);
        }
        curl_off_t us = -1;
        if (curl_easy_getinfo(e, CURLINFO_TOTAL_TIME_T, &us) != CURLE_OK) us = -1;
        metrics_provider(p->pp->name, verdict_name(m->verdict.kind), us < 0 ? -1.0 : (double)us / 1e6);
        if (code != CURLE_OK)
            log_debug("dispatch", "transfer error campaign=%s recipient=%s provider=%s curl=%d (%s)",
                      m->campaign, m->recipient, p->pp->name, (int)code, curl_easy_strerror(code));
        req_release(d, req);
        p->active--;
        on_verdict(m, p, true);
        pump(p);
    }
}

/* ---- per-provider limits ---------------------------------------------- */

static void on_refill(uv_timer_t *t)
{
    pump(t->data);
}

/* Takes one start from the token bucket, or arms the refill timer. */
static bool take_token(struct dprov *p)
{
    double rate = p->cp->rate;
    if (rate <= 0) return true;
    if (limit_shared(p->d->limit, p->cp)) return limit_token(p->d->limit, p->cp); /* it wakes us (dispatch_limit_wake) */
    double burst = rate < 1 ? 1 : rate;
    uint64_t now = uv_now(p->d->loop);
    p->tokens += (double)(now - p->refilled_at) * rate / 1000.0;
    if (p->tokens > burst) p->tokens = burst;
    p->refilled_at = now;
    if (p->tokens >= 1) {
        p->tokens -= 1;
        return true;
    }
    uint64_t wait = (uint64_t)((1 - p->tokens) * 1000.0 / rate) + 1;
    uv_timer_start(&p->refill, on_refill, wait, 0);
    return false;
}

static void gate_collect(struct dispatch *d, struct dispatch_msg *m);

/* m holds a slot and a token at p: its request (or deliver call) starts. */
static void start_now(struct dprov *p, struct dispatch_msg *m)
{
    m->handed = true;
    if (p->pp->api->prepare && p->pp->api->interpret) {
        start_curl(p, m);
        return;
    }
    m->work.data = m;
    if (uv_queue_work(p->d->loop, &m->work, work_deliver, after_deliver) != 0) {
        p->active--;
        memset(&m->verdict, 0, sizeof(m->verdict));
        m->verdict.kind = HERALD_VERDICT_RETRY;
        snprintf(m->verdict.reason, sizeof(m->verdict.reason), "uv_queue_work");
        on_verdict(m, p, false);
    }
}

static void gate_drop(struct dispatch_msg *m);

static void start(struct dprov *p, struct dispatch_msg *m)
{
    p->active++;
    if (m->refused) { /* the owner said no while it waited for this slot */
        m->refused = false;
        gate_drop(m);
        return;
    }
    if (!p->d->handoff || m->handed || m->cleared) {
        if (m->cleared) {
            /* Cleared long before its slot came: asked too far ahead. */
            uint64_t rt = m->cleared_ns - m->asked_ns, wait = uv_hrtime() - m->cleared_ns;
            if (wait > 2 * rt + 1000000 && p->look > 0) p->look--;
            m->cleared = false;
        }
        start_now(p, m);
        return;
    }
    /* Not answered yet (or never asked): it waits with the slot taken, and
     * the next ones are asked further ahead, up to the provider's
     * `lookahead` (what a crash leaves handed and unsent beside the
     * requests in flight). */
    size_t most = p->cp->lookahead < 0 ? (size_t)p->cp->concurrency : (size_t)p->cp->lookahead;
    if (p->look < most) p->look++;
    m->slot = true;
    m->slot_ns = uv_hrtime();
    if (m->gate == GATE_NONE) gate_collect(p->d, m);
}

/* m lets go of the slot it held while waiting for the owner's answer
 * (it starts, or gives the slot back): the wait is counted
 * (herald_provider_handoff_wait_seconds_total). A message ended by abort
 * while it waits is not. */
static void slot_release(struct dprov *p, struct dispatch_msg *m)
{
    if (!m->slot) return;
    m->slot = false;
    metrics_handoff_wait(p->pp->name, (double)(uv_hrtime() - m->slot_ns) / 1e9);
}

/* Takes the head of p's FIFO out. */
static struct dispatch_msg *fifo_pop(struct dprov *p)
{
    struct dispatch_msg *m = p->fifo_head;
    p->fifo_head = m->next_waiting;
    if (!p->fifo_head) p->fifo_tail = NULL;
    if (p->ask_next == m) p->ask_next = m->next_waiting;
    m->next_waiting = NULL;
    if (m->ahead) {
        m->ahead = false;
        p->ahead--;
    }
    return m;
}

/* Requests in flight under p's name in the other generations: shared
 * leases belong to the name. */
static size_t active_elsewhere(const struct dprov *p)
{
    size_t n = 0;
    const struct dispatch *d = p->d;
    if (!d->retired) return 0; /* names are unique within one configuration */
    for (const struct dispatch_gen *g = d->gen; g; g = g == d->gen ? d->retired : g->next)
        for (size_t i = 0; i < g->nprovs; i++)
            if (&g->provs[i] != p && strcmp(g->provs[i].cp->name, p->cp->name) == 0) n += g->provs[i].active;
    return n;
}

/* Starts what the provider's limits allow, in FIFO order. */
static void pump_starts(struct dprov *p)
{
    size_t cap = (size_t)p->cp->concurrency;
    if (limit_shared(p->d->limit, p->cp)) { /* the leases this daemon holds, less the other generations' use */
        size_t slots = limit_slots(p->d->limit, p->cp), other = active_elsewhere(p);
        slots = slots > other ? slots - other : 0;
        if (slots < cap) cap = slots;
    }
    while (p->fifo_head && p->active < cap && !p->d->closed) {
        struct dispatch_msg *m = p->fifo_head;
        if (p->circuit != CIRCUIT_CLOSED && !m->probe) {
            /* The circuit opened while m waited: route it again. */
            fifo_pop(p);
            m->attempt--;
            attempt(m);
            continue;
        }
        uint64_t now = uv_now(p->d->loop);
        if (p->paused_until > now) { /* it asked to slow down (429) */
            uv_timer_start(&p->refill, on_refill, p->paused_until - now, 0);
            return;
        }
        /* A rate token is taken when a request really leaves: a message
         * still waiting for the owner's answer takes its slot without one
         * (dispatch_handoff_done takes it), so a late answer never bunches
         * requests beyond the bucket's burst. */
        if (m->cleared && p->d->gen &&
            uv_hrtime() - m->cleared_ns > (uint64_t)p->d->gen->cfg->claim_idle_ms * 500000u) {
            /* Cleared longer ago than half of claim_idle (the daemon was
             * stopped, or cut off): its run may have lost its job meanwhile,
             * so the owner answers again (and no token is taken for it yet). */
            m->cleared = false;
        }
        bool leaves = !m->refused && (!p->d->handoff || m->handed || m->cleared);
        if (leaves && !take_token(p)) return;
        start(p, fifo_pop(p));
    }
}

/* m, cleared, goes back to the head of p's FIFO to wait for its rate token. */
static void fifo_push_head(struct dprov *p, struct dispatch_msg *m)
{
    m->next_waiting = p->fifo_head;
    p->fifo_head = m;
    if (!p->fifo_tail) p->fifo_tail = m;
}

/* Asks the gate ahead for the FIFO's next messages (at most p->look asked
 * or cleared at once), while its circuit is closed: the owner's write
 * overlaps the requests in flight. */
static void ask_ahead(struct dprov *p)
{
    struct dispatch *d = p->d;
    if (!d->handoff || d->stopping || d->closed || p->circuit != CIRCUIT_CLOSED) return;
    while (p->ask_next && p->ahead < p->look) {
        struct dispatch_msg *m = p->ask_next;
        p->ask_next = m->next_waiting;
        if (m->handed || m->cleared || m->refused || m->gate != GATE_NONE) continue;
        m->ahead = true;
        p->ahead++;
        gate_collect(d, m);
    }
}

static void pump(struct dprov *p)
{
    pump_starts(p);
    ask_ahead(p);
    struct dispatch *d = p->d;
    if (!limit_shared(d->limit, p->cp)) return;
    /* The leases are the name's: a slot p freed may be another
     * generation's to use (a reload that kept the provider), and the
     * demand reported is the name's. */
    size_t active = p->active;
    bool waiting = p->fifo_head != NULL;
    for (struct dispatch_gen *g = d->retired ? d->gen : NULL; g; g = g == d->gen ? d->retired : g->next) {
        for (size_t i = 0; i < g->nprovs && !g->closing; i++) {
            struct dprov *q = &g->provs[i];
            if (q == p || strcmp(q->cp->name, p->cp->name) != 0) continue;
            if (q->fifo_head) {
                pump_starts(q);
                ask_ahead(q);
            }
            active += q->active;
            waiting = waiting || q->fifo_head != NULL;
        }
    }
    limit_demand(d->limit, p->cp, active, waiting);
}

void dispatch_set_limit(struct dispatch *d, struct limit *lim)
{
    d->limit = lim;
}

void dispatch_limit_wake(struct dispatch *d, const char *provider)
{
    for (struct dispatch_gen *g = d->gen; g; g = g == d->gen ? d->retired : g->next)
        for (size_t i = 0; i < g->nprovs && !g->closing; i++)
            if (strcmp(g->provs[i].cp->name, provider) == 0) pump(&g->provs[i]);
}

static void attempt(struct dispatch_msg *m)
{
    struct dprov *p = current_prov(m);
    while (p && !circuit_admits(p, m)) {
        if (has_next_provider(m)) {
            m->provider_pos++;
            m->attempt = 0;
            p = current_prov(m);
            continue;
        }
        /* The last provider's circuit is open: wait for it (not an attempt). */
        park(p, m);
        return;
    }
    if (!p) {
        finish_failed(m, HERALD_REASON_PROVIDER_ERROR, "no provider for the channel");
        return;
    }
    if (!p->pp->api->deliver && !(p->pp->api->prepare && p->pp->api->interpret)) {
        finish_failed(m, HERALD_REASON_PROVIDER_ERROR, "plugin has neither deliver() nor prepare()");
        return;
    }
    m->attempt++;
    m->next_waiting = NULL;
    if (p->fifo_tail) p->fifo_tail->next_waiting = m;
    else p->fifo_head = m;
    p->fifo_tail = m;
    if (!p->ask_next) p->ask_next = m;
    pump(p);
}

int dispatch_submit(struct dispatch *d, struct dispatch_msg *m, dispatch_done_cb done, void *arg)
{
    m->d = d;
    m->gen = d->gen;
    m->gen->in_flight++;
    m->done = done;
    m->done_arg = arg;
    m->provider_pos = 0;
    m->attempt = 0;
    m->interrupted = false;
    m->probe = false;
    m->provider[0] = m->provider_id[0] = m->detail[0] = '\0';
    m->retry_timer = NULL;
    m->next_waiting = NULL;
    m->req = NULL;
    m->handed = false;
    m->ahead = m->cleared = m->refused = m->slot = false;
    m->requests = 0;
    m->has_waited = false;
    m->wait_since = 0;
    m->slowdowns = 0;
    m->gate = GATE_NONE;
    m->gate_prev = m->gate_next = NULL;
    d->in_flight++;
    d->in_flight_ch[m->channel]++;
    attempt(m);
    return 0;
}

/* ---- the handoff gate ------------------------------------------------- */

void dispatch_set_handoff(struct dispatch *d, dispatch_handoff_cb cb, void *arg)
{
    d->handoff = cb;
    d->handoff_arg = arg;
}

static void on_gate_check(uv_check_t *h);

/* The two lists of the gate, both through gate_prev/gate_next: collected
 * in this iteration (gate_head..gate_tail, in order), and asked (d->asked). */
static void gate_collect(struct dispatch *d, struct dispatch_msg *m)
{
    m->gate = GATE_COLLECTED;
    m->gate_next = NULL;
    m->gate_prev = d->gate_tail;
    if (d->gate_tail) d->gate_tail->gate_next = m;
    else d->gate_head = m;
    d->gate_tail = m;
    uv_check_start(&d->gate_check, on_gate_check);
    wake_start(d);
}

static void collected_unlink(struct dispatch *d, struct dispatch_msg *m)
{
    if (m->gate_prev) m->gate_prev->gate_next = m->gate_next;
    else d->gate_head = m->gate_next;
    if (m->gate_next) m->gate_next->gate_prev = m->gate_prev;
    else d->gate_tail = m->gate_prev;
    m->gate_prev = m->gate_next = NULL;
}

static void asked_unlink(struct dispatch *d, struct dispatch_msg *m)
{
    if (m->gate_prev) m->gate_prev->gate_next = m->gate_next;
    else d->asked = m->gate_next;
    if (m->gate_next) m->gate_next->gate_prev = m->gate_prev;
    m->gate_prev = m->gate_next = NULL;
}

/* Takes m out of whichever list of the gate holds it. */
static void gate_forget(struct dispatch_msg *m)
{
    if (m->gate == GATE_COLLECTED) collected_unlink(m->d, m);
    else if (m->gate == GATE_ASKED) asked_unlink(m->d, m);
    m->gate = GATE_NONE;
}

/* Once per loop iteration: the messages collected in it go to the owner
 * in one call, so its durable mark costs one write per batch. */
static void on_gate_check(uv_check_t *h)
{
    struct dispatch *d = h->data;
    uv_check_stop(h);
    size_t n = 0;
    for (struct dispatch_msg *m = d->gate_head; m; m = m->gate_next) n++;
    if (n == 0) return;
    if (!d->handoff) { /* the owner took its callback back: no gate */
        while (d->gate_head) {
            struct dispatch_msg *m = d->gate_head;
            collected_unlink(d, m);
            m->gate = GATE_NONE;
            if (m->slot) { /* the others wait in their FIFO, and start as always */
                slot_release(current_prov(m), m);
                start_now(current_prov(m), m);
            }
        }
        wake_done(d);
        return;
    }
    if (n > d->gate_cap) {
        d->gate_cap = n < 64 ? 64 : n * 2;
        d->gate_vec = xrealloc(d->gate_vec, d->gate_cap * sizeof(*d->gate_vec));
    }
    n = 0;
    uint64_t now = uv_hrtime();
    for (struct dispatch_msg *m = d->gate_head, *next; m; m = next) {
        next = m->gate_next;
        m->asked_ns = now;
        m->gate = GATE_ASKED;
        m->gate_prev = NULL;
        m->gate_next = d->asked;
        if (d->asked) d->asked->gate_prev = m;
        d->asked = m;
        d->gate_vec[n++] = m;
    }
    d->gate_head = d->gate_tail = NULL;
    wake_done(d);
    /* The owner may answer from inside the call: that touches neither the
     * vector nor the lists walked here (new arrivals wait for the next check). */
    d->handoff(d->gate_vec, n, d->handoff_arg);
}

void dispatch_gate_now(struct dispatch *d)
{
    if (d->gate_head) on_gate_check(&d->gate_check);
}

/* m, holding a slot, leaves without being sent: its slot (and the probe)
 * come free. */
static void gate_drop(struct dispatch_msg *m)
{
    struct dprov *p = current_prov(m);
    gate_forget(m);
    slot_release(p, m);
    p->active--;
    probe_abandoned(p, m);
    herald_copy(m->provider, sizeof(m->provider), p->pp->name);
    finish_interrupted(m);
}

void dispatch_handoff_done(struct dispatch *d, struct dispatch_msg **msgs, size_t n, const bool *go)
{
    if (d->aborted) return; /* abort finished them all; msgs may be gone */
    for (size_t i = 0; i < n; i++) {
        struct dispatch_msg *m = msgs[i];
        if (m->d != d || m->gate != GATE_ASKED) continue;
        asked_unlink(d, m);
        m->gate = GATE_NONE;
        struct dprov *p = current_prov(m);
        bool yes = go[i] && !d->stopping && !d->closed;
        if (m->slot) { /* it took its slot meanwhile, and waited there */
            if (yes && take_token(p)) {
                slot_release(p, m);
                start_now(p, m);
            } else if (yes) { /* no token yet: it waits cleared, first in line, its slot free meanwhile */
                slot_release(p, m);
                p->active--;
                m->cleared = true;
                m->asked_ns = m->cleared_ns = uv_hrtime();
                fifo_push_head(p, m);
                pump(p);
            } else {
                gate_drop(m);
                pump(p);
            }
        } else if (yes) {
            m->cleared = true; /* starts when it gets a slot: maybe now */
            m->cleared_ns = uv_hrtime();
            pump(p);
        } else {
            m->refused = true; /* ends when it gets a slot (its FIFO keeps its order) */
            pump(p);
        }
    }
}

/* ---- stopping ---------------------------------------------------------- */

void dispatch_interrupt(struct dispatch *d)
{
    d->stopping = true;
    dispatch_recall(d);
}

/* Whether a recall takes m (every message without a filter). */
static bool recall_takes(const struct dispatch_msg *m, dispatch_recall_match match, void *arg)
{
    return !match || match(m, arg);
}

/* Takes m out of p's FIFO; prev is the message before it (NULL: the head). */
static void fifo_take(struct dprov *p, struct dispatch_msg *prev, struct dispatch_msg *m)
{
    if (!prev) {
        fifo_pop(p);
        return;
    }
    prev->next_waiting = m->next_waiting;
    if (p->fifo_tail == m) p->fifo_tail = prev;
    if (p->ask_next == m) p->ask_next = m->next_waiting;
    m->next_waiting = NULL;
    if (m->ahead) {
        m->ahead = false;
        p->ahead--;
    }
}

/* Finishes as interrupted what waits at g's providers (FIFOs, open
 * circuits) and the recall takes. */
static void recall_gen(struct dispatch_gen *g, dispatch_recall_match match, void *arg)
{
    for (size_t i = 0; i < g->nprovs && !g->closing; i++) { /* its last message done: closing */
        struct dprov *p = &g->provs[i];
        if (!match) uv_timer_stop(&p->refill);
        for (struct dispatch_msg *prev = NULL, *m = p->fifo_head, *next; m; m = next) {
            next = m->next_waiting;
            if (!recall_takes(m, match, arg)) {
                prev = m;
                continue;
            }
            fifo_take(p, prev, m); /* asked ahead or not: finish() takes it off the gate */
            m->cleared = m->refused = false;
            if (m->probe) p->probing = false;
            herald_copy(m->provider, sizeof(m->provider), p->pp->name);
            finish_interrupted(m);
        }
        for (struct dispatch_msg *prev = NULL, *m = p->park_head, *next; m; m = next) {
            next = m->next_waiting;
            if (!recall_takes(m, match, arg)) {
                prev = m;
                continue;
            }
            park_take(p, prev, m);
            herald_copy(m->provider, sizeof(m->provider), p->pp->name);
            finish_interrupted(m);
        }
        park_arm(p);
        if (match) pump(p); /* the others' turn, and the demand told to a shared limit */
    }
}

void dispatch_recall_if(struct dispatch *d, dispatch_recall_match match, void *arg)
{
    for (struct dispatch_msg **pp = &d->waiting; *pp;) {
        struct dispatch_msg *m = *pp;
        if (!recall_takes(m, match, arg)) {
            pp = &m->next_waiting;
            continue;
        }
        unlink_waiting(m);
        finish_interrupted(m);
    }
    recall_gen(d->gen, match, arg);
    for (struct dispatch_gen *g = d->retired; g; g = g->next) recall_gen(g, match, arg); /* freed only from a close callback */
    /* Collected for the owner but not yet shown to it: nobody knows them.
     * Only those holding a slot are left (the FIFOs' are finished above). */
    for (struct dispatch_msg *m = d->gate_head, *next; m; m = next) {
        next = m->gate_next;
        if (recall_takes(m, match, arg)) gate_drop(m);
    }
    if (!d->gate_head) {
        uv_check_stop(&d->gate_check);
        wake_done(d);
    }
}

void dispatch_recall(struct dispatch *d)
{
    dispatch_recall_if(d, NULL, NULL);
}

void dispatch_abort(struct dispatch *d)
{
    dispatch_interrupt(d);
    d->aborted = true;
    while (d->asked) gate_drop(d->asked); /* the owner's answer will not come in time; each holds a slot */
    while (d->reqs && d->multi) {
        struct dispatch_req *req = d->reqs;
        struct dispatch_msg *m = req->m;
        struct dprov *p = req->p;
        if (req->queued) { /* prepared, never handed to curl: nothing was sent */
            req_release(d, req);
            p->active--;
            herald_copy(m->provider, sizeof(m->provider), p->pp->name);
            finish_interrupted(m);
            continue;
        }
        curl_multi_remove_handle(d->multi, req->easy);
        req_release(d, req);
        p->active--;
        /* The request may have reached the provider: unknown, not interrupted. */
        herald_copy(m->provider, sizeof(m->provider), p->pp->name);
        log_warn("dispatch", "aborted at drain timeout campaign=%s recipient=%s provider=%s", m->campaign,
                 m->recipient, p->pp->name);
        m->outcome = HERALD_OUTCOME_UNKNOWN;
        m->reason = HERALD_REASON_INTERRUPTED;
        m->interrupted = false;
        snprintf(m->detail, sizeof(m->detail), "aborted");
        finish(m);
    }
}

void dispatch_close(struct dispatch *d)
{
    if (d->closed) return;
    dispatch_abort(d);
    d->closed = true;
    /* Cleanup closes the pooled connections; curl reports each socket's
     * removal through on_socket, which closes its poll handle. */
    curl_multi_cleanup(d->multi);
    d->multi = NULL;
    for (size_t i = 0; i < d->nsocks; i++)
        if (d->socks[i]) sock_close(d, d->socks[i]);
    uv_close((uv_handle_t *)&d->curl_timer, NULL);
    uv_close((uv_handle_t *)&d->add_check, NULL);
    uv_close((uv_handle_t *)&d->gate_check, NULL);
    uv_close((uv_handle_t *)&d->wake, NULL);
    for (struct dispatch_gen *g = d->gen; g; g = g == d->gen ? d->retired : g->next) {
        if (g->closing) continue; /* retired, drained, its timers already closing */
        for (size_t i = 0; i < g->nprovs; i++) {
            struct dprov *p = &g->provs[i];
            while (p->nfree) curl_easy_cleanup(p->free_easy[--p->nfree]);
            uv_close((uv_handle_t *)&p->refill, NULL);
            uv_close((uv_handle_t *)&p->park_timer, NULL);
        }
    }
}

void dispatch_free(struct dispatch *d)
{
    if (!d) return;
    if (d->multi) curl_multi_cleanup(d->multi); /* dispatch_close was not called */
    free(d->socks);
    free(d->gate_vec);
    while (d->spare) {
        struct dispatch_req *req = d->spare;
        d->spare = req->next;
        free(req->hdr);
        free(req->body);
        free(req);
    }
    while (d->retired) {
        struct dispatch_gen *g = d->retired;
        d->retired = g->next;
        gen_free(d, g);
    }
    gen_free(d, d->gen);
    free(d);
}
