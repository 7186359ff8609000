/*
 * grant.c - the local accounting of shared provider limits (grant.h).
 * Pure: times are arguments.
 */
#include "grant.h"

#include <math.h>
#include <string.h>

void grant_bucket(double rate, double *interval_ms, double *tau_ms)
{
    double interval = 1000.0 / rate;
    double burst = rate < 1 ? 1 : rate;
    double tau = burst * interval - GRANT_HORIZON_MS - GRANT_SLACK_MS;
    *interval_ms = interval;
    *tau_ms = tau < interval ? interval : tau;
}

int grant_batch_size(double rate)
{
    double interval, tau;
    grant_bucket(rate, &interval, &tau);
    int most = (int)floor(tau / interval + 1e-9);
    int k = (int)ceil(rate * GRANT_BATCH_MS / 1000.0 - 1e-9);
    if (k > most) k = most;
    return k < 1 ? 1 : k;
}

/* Tokens of the latest grant that will not be spent: to give back. */
static void to_return(struct grant *g, const struct grant_batch *b)
{
    if (b->n <= 0 || !b->tat[0] || strcmp(b->tat, g->last_tat) != 0) return; /* a later grant: Redis would refuse */
    g->ret_n = b->n;
    memcpy(g->ret_tat, b->tat, GRANT_TAT_MAX);
}

/* Drops lapsed batches; the older batch is always b[0]. */
static void lapse(struct grant *g, uint64_t now)
{
    for (int i = 0; i < 2; i++) {
        if (g->b[i].n > 0 && now >= g->b[i].until) {
            to_return(g, &g->b[i]);
            g->b[i].n = 0;
        }
    }
    if (g->b[0].n == 0 && g->b[1].n > 0) {
        g->b[0] = g->b[1];
        g->b[1].n = 0;
    }
}

int grant_tokens(struct grant *g, uint64_t now)
{
    lapse(g, now);
    return g->b[0].n + g->b[1].n;
}

bool grant_take_token(struct grant *g, uint64_t now)
{
    lapse(g, now);
    if (g->b[0].n == 0) return false;
    g->b[0].n--;
    lapse(g, now);
    return true;
}

bool grant_should_ask(struct grant *g, uint64_t now, int batch)
{
    lapse(g, now);
    if (g->b[1].n > 0) return false; /* two batches in hand: a third would outlive none of them */
    if (g->next_token_at && now < g->next_token_at) return false;
    return g->b[0].n * 2 < batch || g->b[0].n == 0;
}

int grant_tokens_in(struct grant *g, int n, int64_t wait_ms, const char *tat, uint64_t asked_at, uint64_t now)
{
    lapse(g, now);
    g->next_token_at = wait_ms > 0 ? now + (uint64_t)wait_ms : 0;
    if (n <= 0) return 0;
    struct grant_batch nb = {.n = n, .until = asked_at + GRANT_HORIZON_MS};
    size_t len = tat ? strlen(tat) : 0;
    if (len < GRANT_TAT_MAX) {
        memcpy(nb.tat, tat ? tat : "", len + 1);
        memcpy(g->last_tat, nb.tat, GRANT_TAT_MAX);
    } else {
        g->last_tat[0] = '\0'; /* not one Redis sends: never given back */
    }
    if (nb.until <= now) { /* the answer came too late to use them */
        to_return(g, &nb);
        return 0;
    }
    if (g->b[0].n == 0) g->b[0] = nb;
    else if (g->b[1].n == 0) g->b[1] = nb;
    else g->b[1].n += n; /* not asked for (grant_should_ask): keep the earlier lapse time */
    return n;
}

int grant_take_return(struct grant *g, uint64_t now, char tat[GRANT_TAT_MAX])
{
    lapse(g, now);
    int n = g->ret_n;
    if (n > 0) memcpy(tat, g->ret_tat, GRANT_TAT_MAX);
    g->ret_n = 0;
    return n;
}

int grant_slots(const struct grant *g, uint64_t now)
{
    if (now >= g->held_until) return 0; /* maybe expired in Redis: not ours any more */
    int n = g->held;
    if (g->share > 0 && n > g->share) n = g->share; /* the rest goes back as it frees */
    return n < 0 ? 0 : n;
}

void grant_leases_in(struct grant *g, int held, int share, uint64_t asked_at)
{
    g->held = held < 0 ? 0 : held;
    g->share = share < 0 ? 0 : share;
    /* Redis set the expiry after the call left: a margin of a second for
     * the clocks' rates and the reply's way back. */
    g->held_until = asked_at + GRANT_LEASE_TTL_MS - 1000;
}

void grant_lease_plan(const struct grant *g, int concurrency, int active, bool waiting, bool idle, int *more,
                      int *back)
{
    *more = waiting && g->held < concurrency ? concurrency - g->held : 0;
    int unused = g->held > active ? g->held - active : 0;
    int share = g->share > 0 && g->share < concurrency ? g->share : concurrency; /* a reload may lower it */
    int over = g->held > share ? g->held - share : 0;
    int b = over < unused ? over : unused;
    if (idle && !waiting) b = unused;
    *back = b;
}
