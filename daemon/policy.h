/*
 * policy.h - the decision engine: may this person get this campaign, and how?
 *
 * Pure: no I/O, no clock (now is an argument), no logging, no allocation.
 * Every call yields exactly one decision with a reason code; decisions are
 * not errors. The order of checks is the contract of DESIGN.md:
 *   expired, unknown_recipient, topic_opt_out, then channel selection over
 *   the person's order intersected with the campaign's (no_consent,
 *   no_address, suppressed: skip to the next channel; if none remains the
 *   reason of the first skipped channel is the outcome), then on the selected
 *   channel: duplicate, quiet_hours (deferred until the window ends, or
 *   suppressed when that is past expires_at). Caps and the person's own
 *   frequency come last and are checked by the store's atomic Lua
 *   reservation, since they must hold across daemons.
 */
#ifndef HERALD_POLICY_H
#define HERALD_POLICY_H

#include "herald.h"
#include "job.h"
#include "profile.h"
#include "quiet.h"
#include "tz.h"

struct policy_input {
    const struct job *job;
    const struct profile *person;     /* NULL: no profile stored */
    bool suppressed[HERALD_CH_COUNT]; /* address on the suppression list */
    bool already_reached;             /* this campaign reached the person before */
    int64_t consent_max_age;          /* seconds; consent older counts as none (0: no limit) */
    const struct tz *tz;              /* the person's zone, or the default; NULL = UTC */
    const struct quiet_window *quiet[HERALD_CH_COUNT]; /* ops window per channel, NULL = none */
    int64_t now;                      /* unix seconds */
};

struct policy_decision {
    enum herald_outcome outcome; /* SENT means "send it" */
    enum herald_reason reason;   /* NONE when outcome is SENT */
    int channel;                 /* selected (or first considered) channel, -1 if none */
    int64_t until;               /* DEFERRED: when to decide again (unix seconds) */
};

void policy_decide(const struct policy_input *in, struct policy_decision *out);

#endif
