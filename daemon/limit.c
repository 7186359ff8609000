/*
 * limit.c - provider limits shared through Redis (limit.h).
 *
 * One entry per provider name, kept across reloads (the leases and tokens
 * belong to the name, whichever configuration's messages use them). At
 * most one call per provider is out at a time, so Redis's answer (the
 * leases this run holds) is always the latest word and is taken as it is:
 * a call lost on the way (timeout, lost connection) may have been granted,
 * and the next answer corrects the count. Lost tokens are only lost.
 *
 * Must never let a request out without a token or a lease when the
 * provider's limits are shared: an error is no grant (backpressure); the
 * failure is recorded for /healthz and /metrics and the call is tried again
 * after a short backoff. Logs provider names only, once when a provider's
 * calls start failing and once when they recover.
 */
#include "limit.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "grant.h"
#include "log.h"
#include "store.h"

#define LIMIT_RETRY_MS 250     /* after a failed call */
#define LIMIT_RETRY_MAX_MS 2000
#define LIMIT_LEASE_RETRY_MS 100 /* short of leases: ask again */

struct lprov {
    struct limit *l;
    char *name;
    char *key;
    bool configured, shared;
    double rate;           /* per second, 0 unlimited */
    int concurrency;
    struct grant g;
    bool asking;           /* a call is out */
    uint64_t asked_at;
    bool wants_tokens;     /* a start found none: wake when some come */
    uint64_t wanting_since; /* loop ms, for the wait metric (0: not waiting) */
    size_t active;         /* the demand last reported */
    bool waiting;
    bool slot_starved;     /* waiting with no free slot: wake when leases come */
    bool renew_due;        /* the renewal: give back what is unused */
    bool said_wanting;     /* Redis holds us as wanting leases (it lowers the others' share) */
    uv_timer_t timer;      /* the next call (a wait, a retry) */
    int retry_ms;
    /* failures */
    bool failing;
    enum store_error error;
    uint64_t failing_since;
    struct log_complaint complaint;
    /* metrics */
    uint64_t asked, granted, calls, errors;
    double wait_s;
};

struct limit {
    uv_loop_t *loop;
    struct store_cmds *sc;
    char *prefix, *run;
    limit_wake_cb wake;
    void *wake_arg;
    struct lprov **provs;
    size_t nprovs;
    uv_timer_t renew;
    /* The last provider looked up: dispatch asks for the same one several
     * times per message. Emptied at each configure (a freed configuration's
     * address may come back). */
    const struct config_provider *cache_cp;
    struct lprov *cache_lp;
    bool releasing; /* a clean stop: every lease goes back, nothing more is asked */
    bool closed;
};

static void call(struct lprov *lp);

static void on_renew(uv_timer_t *t)
{
    struct limit *l = t->data;
    for (size_t i = 0; i < l->nprovs; i++) {
        struct lprov *lp = l->provs[i];
        if (lp->g.held > 0 || lp->waiting || (lp->configured && lp->shared && lp->concurrency > 0 && lp->active)) {
            lp->renew_due = true;
            call(lp);
        }
    }
}

struct limit *limit_new(uv_loop_t *loop, struct store_cmds *sc, const char *prefix, const char *run,
                        limit_wake_cb wake, void *arg)
{
    struct limit *l = xcalloc(1, sizeof(*l));
    l->loop = loop;
    l->sc = sc;
    l->prefix = xstrdup(prefix);
    l->run = xstrdup(run);
    l->wake = wake;
    l->wake_arg = arg;
    uv_timer_init(loop, &l->renew);
    l->renew.data = l;
    uv_timer_start(&l->renew, on_renew, GRANT_RENEW_MS, GRANT_RENEW_MS);
    return l;
}

static struct lprov *find(const struct limit *l, const char *name)
{
    for (size_t i = 0; i < l->nprovs; i++)
        if (strcmp(l->provs[i]->name, name) == 0) return l->provs[i];
    return NULL;
}

static void on_timer(uv_timer_t *t)
{
    call(t->data);
}

void limit_configure(struct limit *l, const struct config *cfg)
{
    l->cache_cp = NULL;
    for (size_t i = 0; i < l->nprovs; i++) l->provs[i]->configured = false;
    for (size_t i = 0; i < cfg->nproviders; i++) {
        const struct config_provider *cp = &cfg->providers[i];
        struct lprov *lp = find(l, cp->name);
        if (!lp) {
            lp = xcalloc(1, sizeof(*lp));
            lp->l = l;
            lp->name = xstrdup(cp->name);
            struct strbuf sb;
            strbuf_init(&sb);
            store_key_limit(&sb, l->prefix, cp->name);
            lp->key = xstrdup(sb.buf);
            strbuf_free(&sb);
            uv_timer_init(l->loop, &lp->timer);
            lp->timer.data = lp;
            l->provs = xrealloc(l->provs, (l->nprovs + 1) * sizeof(*l->provs));
            l->provs[l->nprovs++] = lp;
        }
        lp->configured = true;
        lp->shared = cp->shared;
        lp->rate = cp->rate;
        lp->concurrency = cp->concurrency;
    }
}

static struct lprov *shared_prov(struct limit *l, const struct config_provider *cp)
{
    struct lprov *lp;
    if (cp == l->cache_cp) {
        lp = l->cache_lp;
    } else {
        lp = find(l, cp->name);
        l->cache_cp = cp;
        l->cache_lp = lp;
    }
    return lp && lp->configured && lp->shared ? lp : NULL;
}

bool limit_shared(struct limit *l, const struct config_provider *cp)
{
    return l && cp->shared && shared_prov(l, cp) != NULL;
}

static uint64_t now_ms(const struct limit *l) { return uv_now(l->loop); }

static void wait_end(struct lprov *lp)
{
    if (!lp->wanting_since) return;
    lp->wait_s += (double)(now_ms(lp->l) - lp->wanting_since) / 1000.0;
    lp->wanting_since = 0;
}

static void wait_begin(struct lprov *lp)
{
    if (!lp->wanting_since) lp->wanting_since = now_ms(lp->l);
}

static void failed(struct lprov *lp, enum store_error e)
{
    lp->errors++;
    lp->error = e;
    if (!lp->failing) {
        lp->failing = true;
        lp->failing_since = now_ms(lp->l);
        log_complain(&lp->complaint, "limit",
                     "shared limits of provider=%s unavailable (redis %s): its messages wait", lp->name,
                     store_error_name(e));
    }
    /* No answer is no grant: nothing more starts on what we may no longer hold. */
    lp->retry_ms = lp->retry_ms ? lp->retry_ms * 2 : LIMIT_RETRY_MS;
    if (lp->retry_ms > LIMIT_RETRY_MAX_MS) lp->retry_ms = LIMIT_RETRY_MAX_MS;
    if (!lp->l->closed) uv_timer_start(&lp->timer, on_timer, (uint64_t)lp->retry_ms, 0);
}

static long long reply_int(const redisReply *r, bool *ok)
{
    if (r->type == REDIS_REPLY_INTEGER) return r->integer;
    *ok = false;
    return 0;
}

static void on_reply(redisReply *r, enum store_error err, const char *text, void *arg)
{
    (void)text; /* Redis's words may quote an argument: only the class is kept */
    struct lprov *lp = arg;
    struct limit *l = lp->l;
    lp->asking = false;
    if (l->closed) return;
    if (l->releasing) {
        if (r && r->type == REDIS_REPLY_ARRAY && r->elements == 5 && r->element[2]->type == REDIS_REPLY_INTEGER &&
            r->element[2]->integer > 0) {
            lp->g.held = (int)r->element[2]->integer; /* granted meanwhile: give those back too */
            call(lp);
        }
        return;
    }
    bool ok = r && r->type == REDIS_REPLY_ARRAY && r->elements == 5;
    long long tokens = 0, wait = 0, held = 0, share = 0;
    const char *tat = "";
    if (ok) {
        tokens = reply_int(r->element[0], &ok);
        wait = reply_int(r->element[1], &ok);
        held = reply_int(r->element[2], &ok);
        share = reply_int(r->element[3], &ok);
        if (r->element[4]->type == REDIS_REPLY_STRING) tat = r->element[4]->str;
        else ok = false;
    }
    if (!ok) {
        failed(lp, r ? STORE_E_REPLY : err);
        return;
    }
    if (lp->failing) {
        lp->failing = false;
        log_recovered(&lp->complaint, "limit", "shared limits of provider=%s available again", lp->name);
    }
    lp->retry_ms = 0;
    uint64_t now = now_ms(l);
    bool woke = false;
    if (lp->rate > 0) {
        lp->granted += (uint64_t)tokens;
        int usable = grant_tokens_in(&lp->g, (int)tokens, wait, tat, lp->asked_at, now);
        if (usable > 0 && lp->wants_tokens) {
            lp->wants_tokens = false;
            woke = true;
        }
    }
    if (lp->concurrency > 0) {
        int before = grant_slots(&lp->g, now);
        grant_leases_in(&lp->g, (int)held, (int)share, lp->asked_at);
        if (grant_slots(&lp->g, now) > before && lp->slot_starved) woke = true;
    }
    if (woke) {
        wait_end(lp);
        l->wake(lp->name, l->wake_arg); /* may call limit_token / limit_demand: asking is false */
    }
    if (lp->asking) return; /* the wake started the next call */
    /* Still short: ask again when Redis said a token will be there, and
     * for leases after LIMIT_LEASE_RETRY_MS (another daemon gives back
     * what is above its share as its requests finish). */
    uint64_t next = UINT64_MAX;
    if (lp->wants_tokens) next = lp->g.next_token_at > now ? lp->g.next_token_at - now : 0;
    if (lp->g.ret_n > 0 && lp->wants_tokens) next = 0; /* give back what came too late, and ask again */
    if (lp->concurrency > 0 && lp->waiting && lp->active >= (size_t)grant_slots(&lp->g, now) &&
        next > LIMIT_LEASE_RETRY_MS)
        next = LIMIT_LEASE_RETRY_MS;
    if (next == 0) call(lp);
    else if (next != UINT64_MAX) uv_timer_start(&lp->timer, on_timer, next, 0);
}

/* Sends the one call of lp (when none is out): the tokens it may want, its
 * lease plan, and so the renewal of what it holds. */
static void call(struct lprov *lp)
{
    struct limit *l = lp->l;
    if (lp->asking || l->closed) return;
    uint64_t now = now_ms(l);
    bool shared = lp->configured && lp->shared;
    int conc = shared ? lp->concurrency : 0;
    int want = 0;
    double interval = 0, tau = 0;
    if (shared && lp->rate > 0) {
        grant_bucket(lp->rate, &interval, &tau);
        int batch = grant_batch_size(lp->rate);
        if (lp->wants_tokens ? (lp->g.next_token_at <= now && lp->g.b[1].n == 0) : grant_should_ask(&lp->g, now, batch))
            want = batch;
    }
    int more = 0, back = 0;
    if (conc > 0) {
        grant_lease_plan(&lp->g, conc, (int)lp->active, lp->waiting, lp->renew_due, &more, &back);
    } else if (lp->g.held > 0) {
        back = lp->g.held; /* no longer shared (or configured): give them all back */
        conc = lp->g.held;
    }
    bool renew = (lp->renew_due && (lp->g.held > 0 || lp->waiting)) || (lp->said_wanting && !lp->waiting);
    lp->renew_due = false;
    if (want == 0 && more == 0 && back == 0 && !renew) return;
    char ret_tat[GRANT_TAT_MAX] = "";
    int ret = interval > 0 ? grant_take_return(&lp->g, now, ret_tat) : 0; /* lapsed unspent: back */
    struct store_args a;
    store_args_script(&a, store_lua_limit, 1);
    store_args_add(&a, lp->key);
    store_args_add(&a, l->run);
    char num[64];
    snprintf(num, sizeof(num), "%.6f", interval);
    store_args_add(&a, num);
    snprintf(num, sizeof(num), "%.6f", tau);
    store_args_add(&a, num);
    store_args_addll(&a, want);
    store_args_addll(&a, conc);
    store_args_addll(&a, more);
    store_args_addll(&a, back);
    store_args_addll(&a, GRANT_LEASE_TTL_MS);
    store_args_add(&a, lp->waiting && conc > 0 ? "1" : "0");
    lp->said_wanting = lp->waiting && conc > 0;
    uv_timeval64_t tv;
    store_args_addll(&a, uv_gettimeofday(&tv) == 0 ? (long long)tv.tv_sec * 1000 + tv.tv_usec / 1000 : 0);
    store_args_addll(&a, ret);
    store_args_add(&a, ret_tat);
    lp->asking = true;
    lp->asked_at = now;
    lp->asked += (uint64_t)want;
    lp->calls++;
    if (store_cmds_send(l->sc, STORE_CMD_ONCE, on_reply, lp, NULL, &a, store_lua_limit) < 0) {
        store_args_free(&a);
        lp->asking = false;
        failed(lp, STORE_E_CONNECTION);
    }
}

bool limit_token(struct limit *l, const struct config_provider *cp)
{
    struct lprov *lp = shared_prov(l, cp);
    if (!lp || lp->rate <= 0) return true;
    uint64_t now = now_ms(l);
    if (grant_take_token(&lp->g, now)) {
        if (!lp->asking && grant_should_ask(&lp->g, now, grant_batch_size(lp->rate))) call(lp); /* prefetch */
        return true;
    }
    lp->wants_tokens = true;
    wait_begin(lp);
    if (!lp->asking && !uv_is_active((uv_handle_t *)&lp->timer)) call(lp);
    return false;
}

size_t limit_slots(struct limit *l, const struct config_provider *cp)
{
    struct lprov *lp = shared_prov(l, cp);
    if (!lp) return (size_t)cp->concurrency;
    return (size_t)grant_slots(&lp->g, now_ms(l));
}

void limit_demand(struct limit *l, const struct config_provider *cp, size_t active, bool waiting)
{
    struct lprov *lp = shared_prov(l, cp);
    if (!lp) return;
    lp->active = active;
    lp->waiting = waiting;
    uint64_t now = now_ms(l);
    size_t slots = (size_t)grant_slots(&lp->g, now);
    lp->slot_starved = waiting && active >= slots;
    if (lp->slot_starved) wait_begin(lp);
    else if (!lp->wants_tokens) wait_end(lp);
    if (lp->asking || uv_is_active((uv_handle_t *)&lp->timer)) return;
    if (lp->said_wanting && !waiting) { /* no longer: the others' share goes up now, not at our entry's expiry */
        call(lp);
        return;
    }
    int more, back;
    grant_lease_plan(&lp->g, lp->concurrency, (int)active, waiting, false, &more, &back);
    /* Short of slots (and not at the share already), or above the share
     * with a slot free for another daemon: call now. */
    if ((lp->slot_starved && lp->g.held < lp->concurrency && (lp->g.share == 0 || lp->g.held < lp->g.share)) ||
        back > 0 || (lp->slot_starved && now >= lp->g.held_until))
        call(lp);
}

void limit_release_all(struct limit *l)
{
    l->releasing = true;
    uv_timer_stop(&l->renew);
    for (size_t i = 0; i < l->nprovs; i++) {
        struct lprov *lp = l->provs[i];
        lp->active = 0;
        lp->waiting = false;
        lp->configured = false; /* call() gives back everything held */
        uv_timer_stop(&lp->timer);
        if (lp->g.held > 0) call(lp);
    }
}

bool limit_idle(const struct limit *l)
{
    for (size_t i = 0; i < l->nprovs; i++)
        if (l->provs[i]->asking) return false;
    return true;
}

size_t limit_count(const struct limit *l) { return l ? l->nprovs : 0; }

bool limit_failing(const struct limit *l, size_t i, const char **name, const char **error, uint64_t *waiting_ms)
{
    const struct lprov *lp = l->provs[i];
    if (!lp->failing || !lp->configured || !lp->shared) return false;
    *name = lp->name;
    *error = store_error_name(lp->error);
    uint64_t now = now_ms(l);
    *waiting_ms = now > lp->failing_since ? now - lp->failing_since : 0;
    return true;
}

void limit_metrics(const struct limit *l, struct strbuf *out)
{
    if (!l || !l->nprovs) return;
    static const struct {
        const char *name, *type, *help;
    } fam[] = {
        {"herald_limit_tokens_asked_total", "counter", "Rate tokens asked of the shared bucket in Redis."},
        {"herald_limit_tokens_granted_total", "counter", "Rate tokens the shared bucket granted."},
        {"herald_limit_calls_total", "counter", "Calls to the shared limits in Redis (tokens, leases, renewals)."},
        {"herald_limit_errors_total", "counter", "Calls to the shared limits that failed (no grant: messages wait)."},
        {"herald_limit_leases", "gauge", "Concurrency leases this daemon holds."},
        {"herald_limit_wait_seconds_total", "counter", "Time messages waited for a shared token or lease."},
        {"herald_limit_failing", "gauge", "1 while the shared limits cannot be reached (messages wait)."},
    };
    uint64_t now = now_ms(l);
    for (size_t f = 0; f < sizeof(fam) / sizeof(fam[0]); f++) {
        strbuf_addf(out, "# HELP %s %s\n# TYPE %s %s\n", fam[f].name, fam[f].help, fam[f].name, fam[f].type);
        for (size_t i = 0; i < l->nprovs; i++) {
            const struct lprov *lp = l->provs[i];
            if (!lp->configured || !lp->shared) continue;
            double v = 0;
            switch (f) {
            case 0: v = (double)lp->asked; break;
            case 1: v = (double)lp->granted; break;
            case 2: v = (double)lp->calls; break;
            case 3: v = (double)lp->errors; break;
            case 4: v = (double)lp->g.held; break;
            case 5:
                v = lp->wait_s + (lp->wanting_since ? (double)(now - lp->wanting_since) / 1000.0 : 0);
                break;
            default: v = lp->failing; break;
            }
            strbuf_addf(out, "%s{provider=\"%s\"} %.15g\n", fam[f].name, lp->name, v);
        }
    }
}

void limit_close(struct limit *l)
{
    if (!l || l->closed) return;
    l->closed = true;
    uv_close((uv_handle_t *)&l->renew, NULL);
    for (size_t i = 0; i < l->nprovs; i++) uv_close((uv_handle_t *)&l->provs[i]->timer, NULL);
}

void limit_free(struct limit *l)
{
    if (!l) return;
    for (size_t i = 0; i < l->nprovs; i++) {
        free(l->provs[i]->name);
        free(l->provs[i]->key);
        free(l->provs[i]);
    }
    free(l->provs);
    free(l->prefix);
    free(l->run);
    free(l);
}
