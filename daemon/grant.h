/*
 * grant.h - a daemon's local share of a provider's limits held in Redis
 * (limit.c, lua/limit.lua): rate tokens taken in batches, and concurrency
 * leases.
 *
 * Pure: no I/O, no clock (times are the caller's milliseconds, one
 * monotonic clock), never logs. limit.c asks Redis and feeds the answers
 * in; dispatch spends them.
 *
 * Invariant (the over-grant bound): a token is spent at most
 * GRANT_HORIZON_MS after the call that got it was sent, and the shared
 * bucket holds GRANT_HORIZON_MS + GRANT_SLACK_MS worth of tokens less than
 * the local one would (grant_bucket; at least one token). Redis grants at most tau / interval + rate * L
 * tokens over any stretch L, so requests leave at most burst + rate * L
 * over any stretch L, as with one daemon and its local bucket: shared by
 * any number of daemons, the provider sees no more than one would give it.
 * Tokens not spent within the horizon lapse; those of the latest grant go
 * back with the next call (grant_take_return), which Redis accepts only
 * when no grant came after them: as if they had never been granted.
 */
#ifndef HERALD_GRANT_H
#define HERALD_GRANT_H

#include <stdbool.h>
#include <stdint.h>

#define GRANT_HORIZON_MS 200 /* a token lapses this long after its call was sent */
#define GRANT_SLACK_MS 50    /* from a token taken to its request on the wire, and rounding */
#define GRANT_BATCH_MS 100   /* a call asks for this long's worth of tokens */
#define GRANT_LEASE_TTL_MS 5000 /* a lease not renewed for this long is free again */
#define GRANT_RENEW_MS 1000     /* how often limit.c renews the leases it holds */

/* Tokens of one call, usable until `until`; tat: what Redis's bucket said
 * after granting them (echoed back to give them back). */
#define GRANT_TAT_MAX 32
struct grant_batch {
    int n;
    uint64_t until;
    char tat[GRANT_TAT_MAX];
};

struct grant {
    /* Rate: at most two batches, the older spent first. */
    struct grant_batch b[2];
    uint64_t next_token_at; /* Redis said: none before this (0: no wait) */
    /* The latest grant's tat, and tokens of it that lapsed unspent: the
     * next call gives them back (Redis takes them only when no grant came
     * after theirs, so a slow answer does not lose a 1/h provider's token). */
    char last_tat[GRANT_TAT_MAX];
    int ret_n;
    char ret_tat[GRANT_TAT_MAX];
    /* Concurrency: leases this run holds (Redis's count at its last
     * answer), its fair share, and how long they are ours without a renewal. */
    int held, share;
    uint64_t held_until;
};

/* The shared bucket for rate (per second, > 0): the emission interval and
 * the capacity tau, both in ms. The local bucket holds max(1, rate) tokens;
 * the shared one GRANT_HORIZON_MS + GRANT_SLACK_MS worth less (at least one token). */
void grant_bucket(double rate, double *interval_ms, double *tau_ms);
/* Tokens one call asks for: GRANT_BATCH_MS worth, at least 1, at most
 * what the shared bucket holds. */
int grant_batch_size(double rate);

/* Spends one token granted and not lapsed at now. */
bool grant_take_token(struct grant *g, uint64_t now);
/* Tokens in hand at now (lapsed ones dropped). */
int grant_tokens(struct grant *g, uint64_t now);
/* Whether a call for tokens should go now: fewer than half a batch in
 * hand and room for one more batch, and Redis's wait is over. */
bool grant_should_ask(struct grant *g, uint64_t now, int batch);
/* A call sent at asked_at answered n tokens (wait_ms: until the next one,
 * 0 none short; tat: the bucket's after them, "" none) at now. Returns how
 * many are usable (0 when the answer came after their horizon: they are to
 * be given back). */
int grant_tokens_in(struct grant *g, int n, int64_t wait_ms, const char *tat, uint64_t asked_at, uint64_t now);
/* Tokens to give back with the next call (lapsed unspent, of the latest
 * grant), and that grant's tat; clears them. 0: none. */
int grant_take_return(struct grant *g, uint64_t now, char tat[GRANT_TAT_MAX]);

/* Slots (requests at once) this run may have in flight at now. */
int grant_slots(const struct grant *g, uint64_t now);
/* A call sent at asked_at answered: this run holds `held` leases, its
 * share is `share`. */
void grant_leases_in(struct grant *g, int held, int share, uint64_t asked_at);
/* What the next call asks for, from this run's demand: `active` requests
 * in flight, `waiting` messages wait for a slot. *more: leases to ask for;
 * *back: leases to give back (unused, or above the share while others
 * wait). idle: give back what is unused even without others waiting (the
 * renewal does; between renewals a lull keeps its leases). */
void grant_lease_plan(const struct grant *g, int concurrency, int active, bool waiting, bool idle, int *more,
                      int *back);

#endif
