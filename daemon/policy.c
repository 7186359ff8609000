/*
 * policy.c - decides, for one recipient of one campaign, whether to send,
 * on which channel, and if not, why.
 *
 * Owns: the decision order of DESIGN.md ("first match wins") and nothing
 * else. Never: allocates, does I/O, reads the clock or logs; it runs millions
 * of times per second in the benchmark and once per recipient in the daemon,
 * and both must get the same answer from the same input.
 * Invariant: every call fills exactly one decision; SENT always comes with
 * a channel the campaign lists and the person may be reached on, and a
 * check after channel selection never moves the message to another channel
 * (a capped email does not become an SMS).
 */
#include "policy.h"

static void decide(struct policy_decision *out, enum herald_outcome outcome, enum herald_reason reason, int ch)
{
    out->outcome = outcome;
    out->reason = reason;
    out->channel = ch;
    out->until = 0;
}

/* Why channel ch cannot carry the message, or NONE when it can. The address
 * is checked again although import validated it: a profile stored before a
 * rule tightened, or written around the API, must count as no address
 * rather than reach a provider. The checks are short scans. */
static enum herald_reason channel_blocked(const struct policy_input *in, int ch)
{
    const struct consent_state *c = &in->person->consent[ch];
    if (!c->known || !c->granted) return HERALD_REASON_NO_CONSENT;
    if (in->consent_max_age > 0 && in->now - c->at > in->consent_max_age) return HERALD_REASON_CONSENT_EXPIRED;
    if (!channel_address_valid(ch, profile_address(in->person, ch))) return HERALD_REASON_NO_ADDRESS;
    if (in->suppressed[ch]) return HERALD_REASON_SUPPRESSED;
    return HERALD_REASON_NONE;
}

/*
 * Checks on the selected channel, in DESIGN.md order. Each returns true when
 * it decided (and filled *out); false lets the next one look. They may defer
 * or suppress, never pick another channel.
 */
static bool check_duplicate(const struct policy_input *in, int ch, struct policy_decision *out)
{
    if (!in->already_reached) return false;
    decide(out, HERALD_OUTCOME_SUPPRESSED, HERALD_REASON_DUPLICATE, ch);
    return true;
}

/*
 * Quiet hours: the channel's ops window and the person's own window, united,
 * in the person's time zone. Inside: deferred until the stretch ends, or
 * suppressed when that is at or past expires_at (the message would be too
 * late). Never another channel.
 */
static bool check_quiet_hours(const struct policy_input *in, int ch, struct policy_decision *out)
{
    struct quiet_window w[2];
    size_t n = 0;
    if (in->quiet[ch]) w[n++] = *in->quiet[ch];
    if (in->person->quiet_start_min >= 0)
        w[n++] = (struct quiet_window){(int16_t)in->person->quiet_start_min, (int16_t)in->person->quiet_end_min};
    if (n == 0) return false;
    int64_t until = quiet_until(in->tz, w, n, in->now);
    if (until == 0) return false;
    /* Windows that cover the whole day leave no time to send: never defer forever. */
    if (until == QUIET_FOREVER || (in->job->expires_at != 0 && until >= in->job->expires_at))
        decide(out, HERALD_OUTCOME_SUPPRESSED, HERALD_REASON_QUIET_HOURS, ch);
    else
        decide(out, HERALD_OUTCOME_DEFERRED, HERALD_REASON_QUIET_HOURS, ch);
    out->until = until;
    return true;
}

void policy_decide(const struct policy_input *in, struct policy_decision *out)
{
    const struct job *job = in->job;
    const struct profile *p = in->person;

    if (job->expires_at != 0 && in->now >= job->expires_at) {
        decide(out, HERALD_OUTCOME_SUPPRESSED, HERALD_REASON_EXPIRED, -1);
        return;
    }
    if (!p) {
        decide(out, HERALD_OUTCOME_SUPPRESSED, HERALD_REASON_UNKNOWN_RECIPIENT, -1);
        return;
    }
    if (profile_topic(p, job->topic) == 0) {
        decide(out, HERALD_OUTCOME_SUPPRESSED, HERALD_REASON_TOPIC_OPT_OUT, -1);
        return;
    }

    /* The person's order when they gave one, else the campaign's. */
    const int *order = p->channels_set ? p->channels : job->channels;
    int norder = p->channels_set ? p->nchannels : job->nchannels;
    int selected = -1, first_skipped = -1;
    enum herald_reason first_reason = HERALD_REASON_NONE;
    for (int i = 0; i < norder && selected < 0; i++) {
        int ch = order[i];
        if (!job_has_channel(job, ch)) continue;
        enum herald_reason r = channel_blocked(in, ch);
        if (r == HERALD_REASON_NONE) {
            selected = ch;
        } else if (first_skipped < 0) {
            first_skipped = ch;
            first_reason = r;
        }
    }
    if (selected < 0) {
        if (first_skipped < 0)
            decide(out, HERALD_OUTCOME_SUPPRESSED, HERALD_REASON_NO_CHANNEL, -1);
        else
            decide(out, HERALD_OUTCOME_SUPPRESSED, first_reason, first_skipped);
        return;
    }

    /* Caps and the person's own frequency follow, in the store's atomic
     * reservation (store_lua_reserve): they must hold across daemons. */
    if (check_duplicate(in, selected, out) || check_quiet_hours(in, selected, out)) return;
    decide(out, HERALD_OUTCOME_SENT, HERALD_REASON_NONE, selected);
}
