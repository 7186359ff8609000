/*
 * policy.h - the decision engine: may this person get this campaign, and how?
 *
 * Pure: no I/O, no clock (now is an argument), no logging, no allocation.
 * Every call yields exactly one decision with a reason code; decisions are
 * not errors. The order of checks is a contract (docs/architecture.md, "The decision"):
 *   expired, unknown_recipient, topic_opt_out, then channel selection over
 *   the person's order intersected with the campaign's (no_consent,
 *   no_address, suppressed: skip to the next channel; if none remains the
 *   reason of the first skipped channel is the outcome), then on the selected
 *   channel: duplicate, quiet_hours (deferred until the window ends, or
 *   suppressed when that is past expires_at). Caps and the person's own
 *   frequency come last and are checked by the store's atomic Lua
 *   reservation, since they must hold across daemons; policy_limits is the
 *   same arithmetic in C over a person's sends read beforehand, for what
 *   only reads (heraldctl explain and simulate).
 *
 * policy_explain is policy_decide with a trace: every check in the order it
 * ran, with its verdict. Both are one function inside, so the explanation
 * cannot tell another story than the decision.
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

/* What the configuration gives every decision. The daemon's queue and
 * heraldctl build their inputs through these two, so explain and simulate
 * decide on what the daemon decides on. */
struct policy_env {
    int64_t consent_max_age;     /* seconds, 0: no limit */
    const struct tz *default_tz; /* [daemon] default_tz (NULL: UTC) */
    struct quiet_window quiet[HERALD_CH_COUNT];
    bool has_quiet[HERALD_CH_COUNT];
};
/* quiet_start_min[ch] < 0: no ops window on ch. */
void policy_env_init(struct policy_env *env, int64_t consent_max_age_s, const struct tz *default_tz,
                     const int quiet_start_min[HERALD_CH_COUNT], const int quiet_end_min[HERALD_CH_COUNT]);
/* Fills *in for one recipient (suppressed cleared: the caller sets it).
 * person_tz is the person's zone when it is known, NULL otherwise: an
 * unknown zone falls back to the default rather than to no quiet hours.
 * in points into env, which must outlive it. */
void policy_input_init(struct policy_input *in, const struct policy_env *env, const struct job *job,
                       const struct profile *person, const struct tz *person_tz, bool already_reached,
                       int64_t now);

/* The checks a trace names, in policy order: X(name, label, doc). */
#define POLICY_CHECK_MAP(X)                                                              \
    X(EXPIRY, "expiry", "the campaign's expires_at against now")                         \
    X(PROFILE, "profile", "a profile is stored under the recipient id")                  \
    X(TOPIC, "topic", "the person's preference for the campaign topic")                  \
    X(CHANNEL, "channel", "the channel is in the campaign (person's order, else the campaign's)") \
    X(CONSENT, "consent", "a consent record grants the channel")                         \
    X(CONSENT_AGE, "consent_age", "the consent is younger than [consent] max_age")       \
    X(ADDRESS, "address", "the address for the channel is present and valid")            \
    X(SUPPRESSION, "suppression", "the address is not on the suppression list")          \
    X(SELECTED, "selected", "no channel of the campaign remains")                        \
    X(ONCE_ONLY, "once_only", "this campaign has not reached the person before")         \
    X(QUIET_HOURS, "quiet_hours", "now is outside the ops and the person's quiet hours")  \
    X(CAP, "cap", "an ops cap ([cap NAME]) is not reached")                              \
    X(FREQUENCY, "frequency", "the person's own frequency limit is not reached")

enum policy_check_kind {
#define X(name, label, doc) POLICY_CHECK_##name,
    POLICY_CHECK_MAP(X)
#undef X
    POLICY_CHECK_COUNT
};
const char *policy_check_name(int kind);
const char *policy_check_doc(int kind);

enum policy_verdict {
    POLICY_PASS,  /* the check let the message on */
    POLICY_SKIP,  /* the channel cannot carry it: the next channel is tried */
    POLICY_BLOCK, /* the check decided the outcome (suppressed or deferred) */
};

/* One check as it ran. The data that drove it is in the input (the
 * profile, the job, the windows); what the check computed is here. */
struct policy_check {
    enum policy_check_kind kind;
    enum policy_verdict verdict;
    enum herald_reason reason; /* SKIP, BLOCK: the reason it gives */
    int channel;               /* -1 when the check is not about a channel */
    int64_t until;             /* QUIET_HOURS: the end of the stretch (0: outside) */
    int64_t count, limit, window; /* CAP, FREQUENCY: sends counted, the limit, seconds */
    const char *name;          /* CAP: the cap's name (the caller's string) */
};

/* Enough for every check: expiry, profile, topic, five per channel of the
 * order, the selection, once-only, quiet hours, then every cap (config.h's
 * HERALD_CAPS_MAX, 32) and limit (one per channel and "any"). A trace that
 * would be longer keeps its first entries; the decision is unaffected. */
#define POLICY_TRACE_MAX (6 + 5 * HERALD_CH_COUNT + 32 + HERALD_CH_COUNT + 1)

struct policy_trace {
    struct policy_check c[POLICY_TRACE_MAX];
    size_t n;
};

/* policy_decide, recording each check in *tr (emptied first). */
void policy_explain(const struct policy_input *in, struct policy_decision *out, struct policy_trace *tr);
/* The decision when the person's contact data, left sealed for the
 * checks, does not open once they let the message through (the daemon
 * opens it just before rendering, heraldctl explain where the daemon
 * would): failed/undecryptable, as when it does not open at the lookup;
 * with tr (may be NULL), the profile check that says so is appended. */
void policy_undecryptable(struct policy_decision *out, struct policy_trace *tr);

/*
 * Caps and the person's own frequency, as lua/reserve.lua counts them, over
 * sends read beforehand (herald:r:{ID}:sends). Only what reads uses it
 * (heraldctl explain and simulate); the daemon keeps the atomic script.
 * tests/integration/test_store_job.c holds the two to the same answers.
 */
struct policy_send {
    int64_t at;        /* unix seconds (the zset score) */
    int channel;       /* channel index, -1 when the member names none */
    const char *topic;
};
struct policy_cap {
    const char *name;
    int channel;       /* -1: any */
    int64_t limit, window_s;
    const char *const *topics; /* NULL or ntopics 0: every topic */
    size_t ntopics;
};
struct policy_freq {
    int channel;       /* -1: any */
    int64_t limit, window_s;
};
struct policy_limits_input {
    const char *topic; /* the campaign's */
    int channel;       /* the selected channel */
    int64_t now;
    const struct policy_cap *caps; /* in [cap] order: the first that blocks names the reason */
    size_t ncaps;
    const struct policy_freq *freq;
    size_t nfreq;
    const struct policy_send *sends;
    size_t nsends;
};

/* SENT when no cap or limit is reached, else SUPPRESSED with CAP (*cap_name
 * set to the cap's name) or USER_FREQUENCY. Appends its checks to tr (may
 * be NULL) without emptying it. */
void policy_limits(const struct policy_limits_input *in, struct policy_decision *out, const char **cap_name,
                   struct policy_trace *tr);

#endif
