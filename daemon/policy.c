/*
 * policy.c - decides, for one recipient of one campaign, whether to send,
 * on which channel, and if not, why.
 *
 * Owns: the decision order of docs/architecture.md, "The decision" ("first match wins") and nothing
 * else. Never: allocates, does I/O, reads the clock or logs; it runs millions
 * of times per second in the benchmark and once per recipient in the daemon,
 * and both must get the same answer from the same input.
 * Invariant: every call fills exactly one decision; SENT always comes with
 * a channel the campaign lists and the person may be reached on, and a
 * check after channel selection never moves the message to another channel
 * (a capped email does not become an SMS).
 */
#include "policy.h"

static const char *const check_names[] = {
#define X(name, label, doc) label,
    POLICY_CHECK_MAP(X)
#undef X
};
static const char *const check_docs[] = {
#define X(name, label, doc) doc,
    POLICY_CHECK_MAP(X)
#undef X
};

const char *policy_check_name(int kind)
{
    return kind >= 0 && kind < POLICY_CHECK_COUNT ? check_names[kind] : "?";
}

const char *policy_check_doc(int kind)
{
    return kind >= 0 && kind < POLICY_CHECK_COUNT ? check_docs[kind] : "?";
}

void policy_env_init(struct policy_env *env, int64_t consent_max_age_s, const struct tz *default_tz,
                     const int quiet_start_min[HERALD_CH_COUNT], const int quiet_end_min[HERALD_CH_COUNT])
{
    memset(env, 0, sizeof(*env));
    env->consent_max_age = consent_max_age_s;
    env->default_tz = default_tz;
    for (int ch = 0; ch < HERALD_CH_COUNT; ch++) {
        if (quiet_start_min[ch] < 0) continue;
        env->quiet[ch] = (struct quiet_window){(int16_t)quiet_start_min[ch], (int16_t)quiet_end_min[ch]};
        env->has_quiet[ch] = true;
    }
}

void policy_input_init(struct policy_input *in, const struct policy_env *env, const struct job *job,
                       const struct profile *person, const struct tz *person_tz, bool already_reached,
                       int64_t now)
{
    memset(in, 0, sizeof(*in));
    in->job = job;
    in->person = person;
    in->already_reached = already_reached;
    in->consent_max_age = env->consent_max_age;
    in->tz = person_tz ? person_tz : env->default_tz;
    in->now = now;
    for (int ch = 0; ch < HERALD_CH_COUNT; ch++) in->quiet[ch] = env->has_quiet[ch] ? &env->quiet[ch] : NULL;
}

/* A trace entry; tr NULL (policy_decide) records nothing. Inline so that
 * the decision without a trace pays one test per check. */
static inline struct policy_check *note(struct policy_trace *tr, enum policy_check_kind kind, int ch,
                                        enum policy_verdict v, enum herald_reason reason)
{
    if (!tr || tr->n == POLICY_TRACE_MAX) return NULL;
    struct policy_check *c = &tr->c[tr->n++];
    memset(c, 0, sizeof(*c));
    c->kind = kind;
    c->channel = ch;
    c->verdict = v;
    c->reason = reason;
    return c;
}

static void decide(struct policy_decision *out, enum herald_outcome outcome, enum herald_reason reason, int ch)
{
    out->outcome = outcome;
    out->reason = reason;
    out->channel = ch;
    out->until = 0;
}

/* Why channel ch cannot carry the message, or NONE when it can. An address
 * in clear is checked again although import validated it: a profile stored
 * before a rule tightened, or written around the API, must count as no
 * address rather than reach a provider. A sealed one is not opened here:
 * its flag says it was valid when stored, and the envelope, opened to
 * render the message, must hold it (store_person_unseal). The checks are
 * short scans. */
static inline enum herald_reason channel_blocked(const struct policy_input *in, int ch, struct policy_trace *tr)
{
    const struct consent_state *c = &in->person->consent[ch];
    if (!c->known || !c->granted) {
        note(tr, POLICY_CHECK_CONSENT, ch, POLICY_SKIP, HERALD_REASON_NO_CONSENT);
        return HERALD_REASON_NO_CONSENT;
    }
    note(tr, POLICY_CHECK_CONSENT, ch, POLICY_PASS, HERALD_REASON_NONE);
    if (in->consent_max_age > 0 && in->now - c->at > in->consent_max_age) {
        note(tr, POLICY_CHECK_CONSENT_AGE, ch, POLICY_SKIP, HERALD_REASON_CONSENT_EXPIRED);
        return HERALD_REASON_CONSENT_EXPIRED;
    }
    if (in->consent_max_age > 0) note(tr, POLICY_CHECK_CONSENT_AGE, ch, POLICY_PASS, HERALD_REASON_NONE);
    if (!profile_address_usable(in->person, ch)) {
        note(tr, POLICY_CHECK_ADDRESS, ch, POLICY_SKIP, HERALD_REASON_NO_ADDRESS);
        return HERALD_REASON_NO_ADDRESS;
    }
    note(tr, POLICY_CHECK_ADDRESS, ch, POLICY_PASS, HERALD_REASON_NONE);
    if (in->suppressed[ch]) {
        note(tr, POLICY_CHECK_SUPPRESSION, ch, POLICY_SKIP, HERALD_REASON_SUPPRESSED);
        return HERALD_REASON_SUPPRESSED;
    }
    note(tr, POLICY_CHECK_SUPPRESSION, ch, POLICY_PASS, HERALD_REASON_NONE);
    return HERALD_REASON_NONE;
}

/*
 * Checks on the selected channel, in the documented order. Each returns true when
 * it decided (and filled *out); false lets the next one look. They may defer
 * or suppress, never pick another channel.
 */
static inline bool check_duplicate(const struct policy_input *in, int ch, struct policy_decision *out,
                                   struct policy_trace *tr)
{
    if (!in->already_reached) {
        note(tr, POLICY_CHECK_ONCE_ONLY, ch, POLICY_PASS, HERALD_REASON_NONE);
        return false;
    }
    note(tr, POLICY_CHECK_ONCE_ONLY, ch, POLICY_BLOCK, HERALD_REASON_DUPLICATE);
    decide(out, HERALD_OUTCOME_SUPPRESSED, HERALD_REASON_DUPLICATE, ch);
    return true;
}

/*
 * Quiet hours: the channel's ops window and the person's own window, united,
 * in the person's time zone. Inside: deferred until the stretch ends, or
 * suppressed when that is at or past expires_at (the message would be too
 * late). Never another channel.
 */
static inline bool check_quiet_hours(const struct policy_input *in, int ch, struct policy_decision *out,
                                     struct policy_trace *tr)
{
    struct quiet_window w[2];
    size_t n = 0;
    if (in->quiet[ch]) w[n++] = *in->quiet[ch];
    if (in->person->quiet_start_min >= 0)
        w[n++] = (struct quiet_window){(int16_t)in->person->quiet_start_min, (int16_t)in->person->quiet_end_min};
    int64_t until = n ? quiet_until(in->tz, w, n, in->now) : 0;
    if (until == 0) {
        note(tr, POLICY_CHECK_QUIET_HOURS, ch, POLICY_PASS, HERALD_REASON_NONE);
        return false;
    }
    /* Windows that cover the whole day leave no time to send: never defer forever. */
    if (until == QUIET_FOREVER || (in->job->expires_at != 0 && until >= in->job->expires_at))
        decide(out, HERALD_OUTCOME_SUPPRESSED, HERALD_REASON_QUIET_HOURS, ch);
    else
        decide(out, HERALD_OUTCOME_DEFERRED, HERALD_REASON_QUIET_HOURS, ch);
    out->until = until;
    struct policy_check *c = note(tr, POLICY_CHECK_QUIET_HOURS, ch, POLICY_BLOCK, HERALD_REASON_QUIET_HOURS);
    if (c) c->until = until;
    return true;
}

/* The one decision procedure behind policy_decide and policy_explain. */
static inline void run(const struct policy_input *in, struct policy_decision *out, struct policy_trace *tr)
{
    const struct job *job = in->job;
    const struct profile *p = in->person;

    if (job->expires_at != 0 && in->now >= job->expires_at) {
        note(tr, POLICY_CHECK_EXPIRY, -1, POLICY_BLOCK, HERALD_REASON_EXPIRED);
        decide(out, HERALD_OUTCOME_SUPPRESSED, HERALD_REASON_EXPIRED, -1);
        return;
    }
    note(tr, POLICY_CHECK_EXPIRY, -1, POLICY_PASS, HERALD_REASON_NONE);
    if (!p) {
        note(tr, POLICY_CHECK_PROFILE, -1, POLICY_BLOCK, HERALD_REASON_UNKNOWN_RECIPIENT);
        decide(out, HERALD_OUTCOME_SUPPRESSED, HERALD_REASON_UNKNOWN_RECIPIENT, -1);
        return;
    }
    if (p->undecryptable) {
        /* Its address or attributes may be another person's or missing:
         * nothing is sent, and it is a failure for an operator to fix. */
        policy_undecryptable(out, tr);
        return;
    }
    note(tr, POLICY_CHECK_PROFILE, -1, POLICY_PASS, HERALD_REASON_NONE);
    if (profile_topic(p, job->topic) == 0) {
        note(tr, POLICY_CHECK_TOPIC, -1, POLICY_BLOCK, HERALD_REASON_TOPIC_OPT_OUT);
        decide(out, HERALD_OUTCOME_SUPPRESSED, HERALD_REASON_TOPIC_OPT_OUT, -1);
        return;
    }
    note(tr, POLICY_CHECK_TOPIC, -1, POLICY_PASS, HERALD_REASON_NONE);

    /* The person's order when they gave one, else the campaign's. */
    const int *order = p->channels_set ? p->channels : job->channels;
    int norder = p->channels_set ? p->nchannels : job->nchannels;
    int selected = -1, first_skipped = -1;
    enum herald_reason first_reason = HERALD_REASON_NONE;
    for (int i = 0; i < norder && selected < 0; i++) {
        int ch = order[i];
        if (!job_has_channel(job, ch)) {
            note(tr, POLICY_CHECK_CHANNEL, ch, POLICY_SKIP, HERALD_REASON_NONE);
            continue;
        }
        note(tr, POLICY_CHECK_CHANNEL, ch, POLICY_PASS, HERALD_REASON_NONE);
        enum herald_reason r = channel_blocked(in, ch, tr);
        if (r == HERALD_REASON_NONE) {
            selected = ch;
        } else if (first_skipped < 0) {
            first_skipped = ch;
            first_reason = r;
        }
    }
    if (selected < 0) {
        if (first_skipped < 0) {
            note(tr, POLICY_CHECK_SELECTED, -1, POLICY_BLOCK, HERALD_REASON_NO_CHANNEL);
            decide(out, HERALD_OUTCOME_SUPPRESSED, HERALD_REASON_NO_CHANNEL, -1);
        } else {
            note(tr, POLICY_CHECK_SELECTED, first_skipped, POLICY_BLOCK, first_reason);
            decide(out, HERALD_OUTCOME_SUPPRESSED, first_reason, first_skipped);
        }
        return;
    }
    note(tr, POLICY_CHECK_SELECTED, selected, POLICY_PASS, HERALD_REASON_NONE);

    /* Caps and the person's own frequency follow, in the store's atomic
     * reservation (store_lua_reserve): they must hold across daemons. */
    if (check_duplicate(in, selected, out, tr) || check_quiet_hours(in, selected, out, tr)) return;
    decide(out, HERALD_OUTCOME_SENT, HERALD_REASON_NONE, selected);
}

void policy_decide(const struct policy_input *in, struct policy_decision *out) { run(in, out, NULL); }

void policy_undecryptable(struct policy_decision *out, struct policy_trace *tr)
{
    note(tr, POLICY_CHECK_PROFILE, -1, POLICY_BLOCK, HERALD_REASON_UNDECRYPTABLE);
    decide(out, HERALD_OUTCOME_FAILED, HERALD_REASON_UNDECRYPTABLE, -1);
}

void policy_explain(const struct policy_input *in, struct policy_decision *out, struct policy_trace *tr)
{
    tr->n = 0;
    run(in, out, tr);
}

/* ---- caps and frequency (lua/reserve.lua's count, in C) ---------------- */

static bool topic_listed(const char *const *topics, size_t n, const char *topic)
{
    if (!topics || n == 0) return true;
    for (size_t i = 0; i < n; i++)
        if (topic && strcmp(topics[i], topic) == 0) return true;
    return false;
}

/* Sends within the window on the channel (-1 any) and, for a cap, its topics. */
static int64_t count_sends(const struct policy_limits_input *in, int ch, int64_t window, const char *const *topics,
                           size_t ntopics)
{
    int64_t n = 0;
    for (size_t i = 0; i < in->nsends; i++) {
        const struct policy_send *s = &in->sends[i];
        if (s->at > in->now - window && (ch < 0 || s->channel == ch) && topic_listed(topics, ntopics, s->topic))
            n++;
    }
    return n;
}

void policy_limits(const struct policy_limits_input *in, struct policy_decision *out, const char **cap_name,
                   struct policy_trace *tr)
{
    decide(out, HERALD_OUTCOME_SENT, HERALD_REASON_NONE, in->channel);
    if (cap_name) *cap_name = NULL;
    for (size_t i = 0; i < in->ncaps; i++) {
        const struct policy_cap *cap = &in->caps[i];
        if ((cap->channel >= 0 && cap->channel != in->channel) ||
            !topic_listed(cap->topics, cap->ntopics, in->topic))
            continue; /* the cap does not apply to this message */
        int64_t n = count_sends(in, cap->channel, cap->window_s, cap->topics, cap->ntopics);
        bool hit = n >= cap->limit;
        struct policy_check *c = note(tr, POLICY_CHECK_CAP, in->channel, hit ? POLICY_BLOCK : POLICY_PASS,
                                      hit ? HERALD_REASON_CAP : HERALD_REASON_NONE);
        if (c) {
            c->count = n;
            c->limit = cap->limit;
            c->window = cap->window_s;
            c->name = cap->name;
        }
        if (hit) {
            decide(out, HERALD_OUTCOME_SUPPRESSED, HERALD_REASON_CAP, in->channel);
            if (cap_name) *cap_name = cap->name;
            return;
        }
    }
    for (size_t i = 0; i < in->nfreq; i++) {
        const struct policy_freq *f = &in->freq[i];
        if (f->channel >= 0 && f->channel != in->channel) continue;
        int64_t n = count_sends(in, f->channel, f->window_s, NULL, 0);
        bool hit = n >= f->limit;
        struct policy_check *c = note(tr, POLICY_CHECK_FREQUENCY, f->channel, hit ? POLICY_BLOCK : POLICY_PASS,
                                      hit ? HERALD_REASON_USER_FREQUENCY : HERALD_REASON_NONE);
        if (c) {
            c->count = n;
            c->limit = f->limit;
            c->window = f->window_s;
        }
        if (hit) {
            decide(out, HERALD_OUTCOME_SUPPRESSED, HERALD_REASON_USER_FREQUENCY, in->channel);
            return;
        }
    }
}
