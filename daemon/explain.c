/*
 * explain.c - heraldctl explain (why did this person (not) get this
 * campaign?) and simulate (what would a run of this job do?).
 *
 * Owns: reading, without writing, what the daemon's decision reads for a
 * recipient (profile, consent, once-only record, suppression, the sends
 * the caps count), deciding with the daemon's pure code, and printing the
 * answer with the data that drove each check. Never: writes to Redis,
 * prints an address or a phone number, or holds a whole recipient list in
 * memory (simulate reads it in pages of [daemon] batch).
 * Invariant: a recipient is decided here exactly as queue_source.c and the
 * reservation would at the same instant (policy_input_init, policy_explain,
 * then policy_limits for reserve.lua's caps and frequency), so simulate's
 * forecast is the run's outcome while nothing changes in between.
 *
 * What explain needs of the campaign (topic, channels, expires_at) is in
 * the job: the campaign hash names the stream entries it ran from
 * (state:<entry>), and the stream keeps acknowledged entries, so the job
 * is read back with XRANGE; --job FILE gives it when the entry is gone.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "explain.h"
#include "addrindex.h"
#include "herald.h"
#include "job.h"
#include "policy.h"
#include "profile.h"
#include "rcluster.h"
#include "store.h"
#include "tzdb.h"

/* ---- context ------------------------------------------------------------ */

#define EXPLAIN_FREQ_MAX (HERALD_CH_COUNT + 1) /* a limit per channel and "any" */

struct ctx {
    const struct config *cfg;
    redisContext *c;
    /* On a cluster ([redis] cluster): each key is read on its master's
     * context (on_key); a pipeline's replies come back from the contexts
     * its commands went to, in order (sent). */
    struct rcluster_sync *cs;
    redisContext *last;   /* the context of the latest command (for its error) */
    redisContext **sent;
    size_t nsent, capsent;
    struct tzdb *tzdb;
    struct policy_env env;
    struct policy_cap caps[HERALD_CAPS_MAX];
    size_t ncaps;
    int64_t cap_keep; /* the longest cap window: the sends the caps look at */
    bool json;
    int64_t at;       /* the instant decided for */
    bool at_given;
};

static void ctx_init(struct ctx *x, const struct config *cfg, redisContext *c, struct rcluster_sync *cs)
{
    memset(x, 0, sizeof(*x));
    x->cfg = cfg;
    x->c = c;
    x->last = c;
    x->cs = cs;
    x->tzdb = tzdb_new(NULL);
    const struct tz *def = tzdb_get(x->tzdb, cfg->default_tz);
    policy_env_init(&x->env, cfg->consent_max_age_ms / 1000, def ? def : tz_utc(), cfg->quiet_start_min,
                    cfg->quiet_end_min);
    for (size_t i = 0; i < cfg->ncaps && i < HERALD_CAPS_MAX; i++) {
        const struct config_cap *k = &cfg->caps[i];
        x->caps[x->ncaps++] = (struct policy_cap){k->name, k->channel, k->limit, k->window_s,
                                                  (const char *const *)k->topics, k->ntopics};
        if (k->window_s > x->cap_keep) x->cap_keep = k->window_s;
    }
    x->at = time(NULL);
}

static void ctx_free(struct ctx *x)
{
    tzdb_free(x->tzdb);
    free(x->sent);
}

/* The context a command on key goes to: the one Redis's, or the master's of
 * the key's slot on a cluster (a slot no master serves: the control
 * plane's, whose refusal then says so). */
static redisContext *on_key(struct ctx *x, const char *key)
{
    char err[256];
    redisContext *c = x->cs ? rcluster_sync_ctx(x->cs, rcluster_slot(key, strlen(key)), err, sizeof(err)) : NULL;
    x->last = c ? c : x->c;
    return x->last;
}

/* Appends a command on argv[1] to the pipeline (lens: each argument's
 * length, or NULL for strings). */
static void append_argv(struct ctx *x, int argc, const char **argv, const size_t *lens)
{
    redisContext *c = on_key(x, argv[1]);
    if (x->nsent == x->capsent) {
        x->capsent = x->capsent ? 2 * x->capsent : 64;
        x->sent = xrealloc(x->sent, x->capsent * sizeof(*x->sent));
    }
    x->sent[x->nsent++] = c;
    redisAppendCommandArgv(c, argc, argv, lens);
}

/* ---- formatting ---------------------------------------------------------- */

/* "2026-12-01T09:00:00+01:00": t on the zone's wall clock. */
static void fmt_local(char *buf, size_t len, const struct tz *tz, int64_t t)
{
    int32_t off = tz_offset(tz, t);
    char tmp[32];
    herald_time_format(t + off, tmp, sizeof(tmp));
    size_t n = strlen(tmp);
    if (n && tmp[n - 1] == 'Z') tmp[n - 1] = '\0';
    int32_t a = off < 0 ? -off : off;
    snprintf(buf, len, "%s%c%02d:%02d", tmp, off < 0 ? '-' : '+', (int)(a / 3600), (int)(a / 60 % 60));
}

static void fmt_utc(char *buf, size_t len, int64_t t) { herald_time_format(t, buf, len); }

/* "7d", "12h", "30m", "45s". */
static void fmt_dur(char *buf, size_t len, int64_t s)
{
    if (s > 0 && s % 86400 == 0) snprintf(buf, len, "%lldd", (long long)(s / 86400));
    else if (s > 0 && s % 3600 == 0) snprintf(buf, len, "%lldh", (long long)(s / 3600));
    else if (s > 0 && s % 60 == 0) snprintf(buf, len, "%lldm", (long long)(s / 60));
    else snprintf(buf, len, "%llds", (long long)s);
}

static const char *chan_or_any(int ch) { return ch < 0 ? "any" : herald_channel_name(ch); }

/* Redis's refusal, in the daemon's words; always 2 (exit status). */
static int redis_failed(const struct ctx *x, const char *what, const redisReply *r)
{
    char err[256];
    store_sync_error(err, sizeof(err), what, x->last, r);
    fprintf(stderr, "heraldctl: %s\n", err);
    return 2;
}

/* Reads the replies of the n commands appended (append_argv) into out; 0,
 * or 2 after saying why (every reply is read, so the connections stay in
 * step). */
static int replies(struct ctx *x, redisReply **out, size_t n, const char *what)
{
    int rc = 0;
    x->nsent = 0;
    for (size_t i = 0; i < n; i++) {
        void *r = NULL;
        x->last = x->sent[i];
        if (redisGetReply(x->sent[i], &r) != REDIS_OK) {
            for (size_t j = i; j < n; j++) out[j] = NULL;
            return redis_failed(x, what, NULL);
        }
        out[i] = r;
        if (out[i]->type == REDIS_REPLY_ERROR && rc == 0) rc = redis_failed(x, what, out[i]);
    }
    return rc;
}

/* Frees the n replies of out (NULL ones too) and out. */
static void replies_free(redisReply **out, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (out[i]) freeReplyObject(out[i]);
    free(out);
}

/* ---- one recipient ------------------------------------------------------ */

struct person {
    const char *id;
    bool valid_id;
    int found;                /* 1 profile, 0 none, <0 unreadable (counts as none) */
    struct profile p;
    redisReply *fields;       /* HMGET: profile, consent fields, rev */
    redisReply *record;       /* HGET of the campaign's once-only record (c:<campaign>) */
    struct strbuf sealed;     /* contact data left sealed by the read, as the daemon leaves it ("" none) */
    bool has_rec;
    struct store_record rec;
    bool suppressed[HERALD_CH_COUNT];
    const struct tz *tz;      /* the person's zone when known, else NULL (the default applies) */
    struct policy_send *sends;
    size_t nsends;
    char **send_topics;
    /* the outcome */
    struct policy_input in;
    struct policy_decision d;
    const char *cap;          /* CAP: its name */
    struct policy_freq freq[EXPLAIN_FREQ_MAX];
    size_t nfreq;
};

static void person_free(struct person *pp)
{
    profile_free(&pp->p);
    strbuf_free(&pp->sealed);
    if (pp->fields) freeReplyObject(pp->fields);
    if (pp->record) freeReplyObject(pp->record);
    for (size_t i = 0; i < pp->nsends; i++) free(pp->send_topics[i]);
    free(pp->send_topics);
    free(pp->sends);
    memset(pp, 0, sizeof(*pp));
}

/* How far back the person's sends matter: the longest cap or own limit. */
static int64_t person_keep(const struct ctx *x, struct person *pp)
{
    const char *chan[EXPLAIN_FREQ_MAX];
    int64_t lim[EXPLAIN_FREQ_MAX], win[EXPLAIN_FREQ_MAX];
    pp->nfreq = pp->found > 0 ? profile_frequency_limits(&pp->p, chan, lim, win, EXPLAIN_FREQ_MAX) : 0;
    int64_t keep = x->cap_keep;
    for (size_t i = 0; i < pp->nfreq; i++) {
        pp->freq[i] = (struct policy_freq){herald_channel_from_name(chan[i]), lim[i], win[i]};
        if (win[i] > keep) keep = win[i];
    }
    return keep;
}

/* Sends from ZRANGEBYSCORE ... WITHSCORES: "<channel>|<topic>|<campaign>", score. */
static void person_sends(struct person *pp, const redisReply *r)
{
    if (!r || r->type != REDIS_REPLY_ARRAY) return;
    size_t n = r->elements / 2;
    pp->sends = xcalloc(n ? n : 1, sizeof(*pp->sends));
    pp->send_topics = xcalloc(n ? n : 1, sizeof(char *));
    for (size_t i = 0; i < n; i++) {
        const redisReply *m = r->element[2 * i], *s = r->element[2 * i + 1];
        if (m->type != REDIS_REPLY_STRING || s->type != REDIS_REPLY_STRING) continue;
        const char *bar = memchr(m->str, '|', m->len);
        const char *bar2 = bar ? memchr(bar + 1, '|', m->len - (size_t)(bar + 1 - m->str)) : NULL;
        if (!bar2) continue;
        char chan[32];
        herald_copy(chan, (size_t)(bar - m->str) + 1 < sizeof(chan) ? (size_t)(bar - m->str) + 1 : sizeof(chan),
                    m->str);
        struct policy_send *ps = &pp->sends[pp->nsends];
        ps->at = (int64_t)strtoll(s->str, NULL, 10);
        ps->channel = herald_channel_from_name(chan);
        pp->send_topics[pp->nsends] = xstrndup(bar + 1, (size_t)(bar2 - bar - 1));
        ps->topic = pp->send_topics[pp->nsends];
        pp->nsends++;
    }
}

/*
 * Reads what deciding n recipients needs, in two pipelined round trips:
 * each valid id's person fields (the daemon's lookup fields) and once-only
 * record; then, for each person found, the suppression members of their
 * addresses and the sends the caps and their own limits count. 0, or 2
 * when Redis refused a read (nothing is decided from it).
 */
static int lookup(struct ctx *x, const char *campaign, struct person *ps, size_t n)
{
    struct strbuf k;
    strbuf_init(&k);
    const char *argv[4 + STORE_LOOKUP_NFIELDS];
    size_t sent = 0;
    for (size_t i = 0; i < n; i++) {
        if (!ps[i].valid_id) continue;
        store_key_person(&k, x->cfg->prefix, ps[i].id);
        size_t ac = 0;
        argv[ac++] = "HMGET";
        argv[ac++] = k.buf;
        for (size_t f = 0; f < STORE_LOOKUP_NFIELDS; f++) argv[ac++] = store_lookup_field(f);
        append_argv(x, (int)ac, argv, NULL);
        struct strbuf rf;
        strbuf_init(&rf);
        store_record_field(&rf, campaign);
        append_argv(x, 3, (const char *[]){"HGET", k.buf, rf.buf}, NULL);
        strbuf_free(&rf);
        sent += 2;
    }
    redisReply **r = xcalloc(sent ? sent : 1, sizeof(*r));
    int rc = replies(x, r, sent, "profile lookup");
    size_t j = 0;
    for (size_t i = 0; i < n && rc == 0; i++) {
        struct person *pp = &ps[i];
        if (!pp->valid_id) continue;
        pp->fields = r[j];
        pp->record = r[j + 1];
        r[j] = r[j + 1] = NULL;
        j += 2;
        if (pp->fields->type != REDIS_REPLY_ARRAY || pp->fields->elements != STORE_LOOKUP_NFIELDS) {
            rc = redis_failed(x, "profile lookup", pp->fields);
            break;
        }
        char err[256];
        /* Read as the daemon's lookup reads (lazy too): the same person
         * whose data does not decrypt is no_consent there, not failed. */
        pp->found = store_person_from_fields(x->cfg->keys, x->cfg->index_key, pp->id,
                                             (const redisReply *const *)pp->fields->element, true, &pp->p,
                                             &pp->sealed, err, sizeof(err));
        if (pp->found < 0) profile_free(&pp->p); /* unreadable: no profile, as the daemon treats it */
        if (pp->record->type == REDIS_REPLY_STRING && store_record_parse(pp->record->str, &pp->rec) == 0)
            pp->has_rec = true;
        if (pp->found > 0 && pp->p.tz) pp->tz = tzdb_get(x->tzdb, pp->p.tz);
    }
    replies_free(r, sent);
    if (rc) {
        strbuf_free(&k);
        return rc;
    }

    /* A reservation its run handed to a provider reads as pending, as the
     * daemon's lookup reads it: its bit in the run's handed log (store.h). */
    sent = 0;
    for (size_t i = 0; i < n; i++) {
        const struct store_record *rec = &ps[i].rec;
        if (!ps[i].has_rec || !store_record_in_handed_log(rec)) continue;
        char bit[HERALD_LL_CHARS];
        herald_lltoa(bit, (long long)rec->seq);
        store_key_handed(&k, x->cfg->prefix, rec->run);
        append_argv(x, 3, (const char *[]){"GETBIT", k.buf, bit}, NULL);
        sent++;
    }
    if (sent) {
        r = xcalloc(sent, sizeof(*r));
        rc = replies(x, r, sent, "handed log read");
        j = 0;
        for (size_t i = 0; i < n && rc == 0; i++) {
            struct store_record *rec = &ps[i].rec;
            if (!ps[i].has_rec || !store_record_in_handed_log(rec)) continue;
            const redisReply *b = r[j++];
            if (b->type != REDIS_REPLY_INTEGER) rc = redis_failed(x, "handed log read", b);
            else if (b->integer == 1) rec->state = REC_PENDING;
        }
        replies_free(r, sent);
        if (rc) {
            strbuf_free(&k);
            return rc;
        }
    }

    /* Suppression and sends of the people found. */
    struct strbuf ks;
    strbuf_init(&ks);
    sent = 0;
    for (size_t i = 0; i < n; i++) {
        struct person *pp = &ps[i];
        if (pp->found <= 0) continue;
        /* One SISMEMBER per address, on its shard (addrindex.h), with the
         * member the read gave, as the daemon's check. */
        for (int ch = 0; ch < HERALD_CH_COUNT; ch++) {
            if (!(pp->p.indexed >> ch & 1u)) continue;
            const unsigned char *m = pp->p.member[ch];
            addrindex_key_of(&ks, x->cfg->prefix, ADDRINDEX_SUPPRESS, m);
            const char *sv[] = {"SISMEMBER", ks.buf, (const char *)m};
            const size_t sl[] = {9, ks.len, ADDRINDEX_LEN};
            append_argv(x, 3, sv, sl);
            sent++;
        }
        int64_t keep = person_keep(x, pp);
        if (keep > 0) {
            store_key_sends(&k, x->cfg->prefix, pp->id);
            char lo[HERALD_LL_CHARS + 1];
            lo[0] = '(';
            herald_lltoa(lo + 1, (long long)(x->at - keep));
            append_argv(x, 5, (const char *[]){"ZRANGEBYSCORE", k.buf, lo, "+inf", "WITHSCORES"}, NULL);
            sent++;
        }
    }
    r = xcalloc(sent ? sent : 1, sizeof(*r));
    rc = replies(x, r, sent, "suppression check");
    j = 0;
    for (size_t i = 0; i < n && rc == 0; i++) {
        struct person *pp = &ps[i];
        if (pp->found <= 0) continue;
        for (int ch = 0; ch < HERALD_CH_COUNT && rc == 0; ch++) {
            if (!(pp->p.indexed >> ch & 1u)) continue;
            const redisReply *s = r[j++];
            if (s->type != REDIS_REPLY_INTEGER) rc = redis_failed(x, "suppression check", s);
            else pp->suppressed[ch] = s->integer == 1;
        }
        if (rc) break;
        if (person_keep(x, pp) > 0) person_sends(pp, r[j++]);
    }
    replies_free(r, sent);
    strbuf_free(&ks);
    strbuf_free(&k);
    return rc;
}

/* The decision a run would make at x->at: the policy as queue_source.c
 * asks it, then, when it lets the message on, the caps and the person's
 * own limits as reserve.lua counts them. tr may be NULL. */
static void decide(const struct ctx *x, const struct job *job, struct person *pp, struct policy_trace *tr)
{
    const struct profile *person = pp->found > 0 ? &pp->p : NULL;
    policy_input_init(&pp->in, &x->env, job, person, pp->tz, pp->has_rec && store_record_reached(&pp->rec),
                      x->at);
    memcpy(pp->in.suppressed, pp->suppressed, sizeof(pp->in.suppressed));
    if (tr) policy_explain(&pp->in, &pp->d, tr);
    else policy_decide(&pp->in, &pp->d);
    pp->cap = NULL;
    if (pp->d.outcome == HERALD_OUTCOME_SENT && pp->sealed.len) {
        /* Where the daemon opens the contact data (queue_source.c). */
        char err[256];
        if (store_person_unseal(x->cfg->keys, pp->id, pp->sealed.buf, pp->sealed.len, &pp->p, err, sizeof(err)) < 0)
            policy_undecryptable(&pp->d, tr);
        strbuf_free(&pp->sealed);
    }
    if (pp->d.outcome != HERALD_OUTCOME_SENT) return;
    struct policy_limits_input li = {
        .topic = job->topic, .channel = pp->d.channel, .now = x->at, .caps = x->caps, .ncaps = x->ncaps,
        .freq = pp->freq, .nfreq = pp->nfreq, .sends = pp->sends, .nsends = pp->nsends};
    policy_limits(&li, &pp->d, &pp->cap, tr);
}

/* "cap:<name>" for a cap, else the reason's code. */
static void reason_text(char *buf, size_t len, const struct person *pp)
{
    if (pp->d.reason == HERALD_REASON_CAP && pp->cap) snprintf(buf, len, "cap:%s", pp->cap);
    else herald_copy(buf, len, herald_reason_name(pp->d.reason));
}

/* ---- options ------------------------------------------------------------ */

struct opts {
    const char *pos[2];
    int npos;
    const char *job;
};

/* Splits args into positional words and --json, --at TIME, --job FILE
 * (when job_ok). 0, or 1/2 after saying what is wrong. */
static int parse_opts(struct ctx *x, int nargs, char **args, bool job_ok, int want, struct opts *o)
{
    memset(o, 0, sizeof(*o));
    for (int i = 0; i < nargs; i++) {
        const char *a = args[i];
        if (strcmp(a, "--json") == 0) {
            x->json = true;
        } else if (strcmp(a, "--at") == 0 || (job_ok && strcmp(a, "--job") == 0)) {
            if (i + 1 == nargs) {
                fprintf(stderr, "heraldctl: %s needs a value\n", a);
                return 2;
            }
            const char *v = args[++i];
            if (strcmp(a, "--job") == 0) {
                o->job = v;
            } else if (herald_time_parse(v, &x->at) < 0) {
                fprintf(stderr, "heraldctl: --at: expected an RFC 3339 time (2026-12-01T09:00:00Z)\n");
                return 1;
            } else {
                x->at_given = true;
            }
        } else if (a[0] == '-' && a[1] == '-') {
            char q[40];
            fprintf(stderr, "heraldctl: unknown option \"%s\"\n", herald_printable(a, q, sizeof(q)));
            return 2;
        } else if (o->npos == want) {
            fprintf(stderr, "heraldctl: too many arguments\n");
            return 2;
        } else {
            o->pos[o->npos++] = a;
        }
    }
    if (o->npos != want) {
        fprintf(stderr, "heraldctl: missing arguments (see heraldctl --help)\n");
        return 2;
    }
    return 0;
}

int explain_read_job(const char *path, struct job *job, char **text_out, size_t *len_out)
{
    FILE *fp = strcmp(path, "-") == 0 ? stdin : fopen(path, "r");
    if (!fp) {
        fprintf(stderr, "%s: cannot read: %s\n", path, strerror(errno));
        return 2;
    }
    struct strbuf sb;
    strbuf_init(&sb);
    char buf[65536];
    size_t n;
    while ((n = fread(buf, 1, sizeof(buf), fp)) > 0) {
        strbuf_add(&sb, buf, n);
        if (sb.len > HERALD_JOB_MAX_BYTES) break;
    }
    if (fp != stdin) fclose(fp);
    char err[512];
    if (job_parse(sb.buf ? sb.buf : "", sb.len, job, err, sizeof(err)) < 0) {
        fprintf(stderr, "%s: %s\n", path, err);
        strbuf_free(&sb);
        return 1;
    }
    if (text_out) *text_out = strbuf_detach(&sb, len_out);
    else strbuf_free(&sb);
    return 0;
}

/* ---- explain ------------------------------------------------------------ */

/* Newest stream entry first ("<ms>-<seq>"). */
static int entry_cmp(const void *a, const void *b)
{
    const char *x = *(const char *const *)a, *y = *(const char *const *)b;
    unsigned long long xm = strtoull(x, NULL, 10), ym = strtoull(y, NULL, 10);
    if (xm != ym) return xm < ym ? 1 : -1;
    const char *xs = strchr(x, '-'), *ys = strchr(y, '-');
    unsigned long long xq = xs ? strtoull(xs + 1, NULL, 10) : 0, yq = ys ? strtoull(ys + 1, NULL, 10) : 0;
    return xq < yq ? 1 : xq > yq ? -1 : 0;
}

/* The campaign's job, read back from the stream entries its hash names.
 * 0 found (entry set), 1 unknown campaign or no entry left, 2 Redis. */
static int campaign_job(struct ctx *x, const char *campaign, struct job *job, char *entry, size_t elen)
{
    struct strbuf k;
    strbuf_init(&k);
    store_key_campaign(&k, x->cfg->prefix, campaign);
    redisReply *h = redisCommand(on_key(x, k.buf), "HGETALL %s", k.buf);
    if (!h || h->type != REDIS_REPLY_ARRAY) {
        strbuf_free(&k);
        int rc = redis_failed(x, "campaign read", h);
        if (h) freeReplyObject(h);
        return rc;
    }
    const char **entries = xcalloc(h->elements ? h->elements : 1, sizeof(char *));
    size_t ne = 0;
    for (size_t i = 0; i + 1 < h->elements; i += 2)
        if (h->element[i]->type == REDIS_REPLY_STRING && strncmp(h->element[i]->str, "state:", 6) == 0)
            entries[ne++] = h->element[i]->str + 6;
    if (ne == 0) {
        fprintf(stderr, "heraldctl: campaign %s: no such campaign (nothing enqueued under this id)\n", campaign);
        free(entries);
        freeReplyObject(h);
        strbuf_free(&k);
        return 1;
    }
    qsort(entries, ne, sizeof(char *), entry_cmp);
    store_key_jobs(&k, x->cfg->prefix);
    int rc = 1;
    for (size_t i = 0; i < ne && rc == 1; i++) {
        redisReply *r = redisCommand(on_key(x, k.buf), "XRANGE %s %s %s", k.buf, entries[i], entries[i]);
        if (!r || r->type != REDIS_REPLY_ARRAY) {
            rc = redis_failed(x, "job read", r);
            if (r) freeReplyObject(r);
            break;
        }
        /* [[id, [field, value, ...]]] */
        if (r->elements == 1 && r->element[0]->type == REDIS_REPLY_ARRAY && r->element[0]->elements == 2) {
            const redisReply *f = r->element[0]->element[1];
            for (size_t j = 0; f->type == REDIS_REPLY_ARRAY && j + 1 < f->elements; j += 2) {
                if (f->element[j]->type != REDIS_REPLY_STRING || strcmp(f->element[j]->str, "job") != 0 ||
                    f->element[j + 1]->type != REDIS_REPLY_STRING)
                    continue;
                char err[256];
                if (job_parse(f->element[j + 1]->str, f->element[j + 1]->len, job, err, sizeof(err)) == 0) {
                    if (strcmp(job->id, campaign) == 0) {
                        herald_copy(entry, elen, entries[i]);
                        rc = 0;
                    } else {
                        job_free(job);
                    }
                }
                break;
            }
        }
        freeReplyObject(r);
    }
    if (rc == 1)
        fprintf(stderr,
                "heraldctl: campaign %s: its job is no longer in the stream (trimmed or deleted); "
                "give it with --job FILE\n",
                campaign);
    free(entries);
    freeReplyObject(h);
    strbuf_free(&k);
    return rc;
}

/* The person's history entries of this campaign (newest first): the ring
 * in the person hash, then a list written before it (store_history_read). */
static json_t *campaign_history(struct ctx *x, const char *id, const char *campaign, int *rc)
{
    struct strbuf k, kl;
    strbuf_init(&k);
    strbuf_init(&kl);
    store_key_person(&k, x->cfg->prefix, id);
    store_key_history(&kl, x->cfg->prefix, id);
    redisReply *h = redisCommand(on_key(x, k.buf), "HGETALL %s", k.buf);
    redisReply *l = NULL;
    if (h && h->type == REDIS_REPLY_ARRAY) l = redisCommand(on_key(x, kl.buf), "LRANGE %s 0 -1", kl.buf);
    strbuf_free(&k);
    strbuf_free(&kl);
    json_t *out = json_array();
    if (!h || h->type != REDIS_REPLY_ARRAY || !l || l->type != REDIS_REPLY_ARRAY) {
        *rc = redis_failed(x, "history read", !h || h->type != REDIS_REPLY_ARRAY ? h : l);
        if (h) freeReplyObject(h);
        if (l) freeReplyObject(l);
        return out;
    }
    json_t *all = store_history_read(h, l, (size_t)x->cfg->retention_history);
    freeReplyObject(h);
    freeReplyObject(l);
    size_t i;
    json_t *e;
    json_array_foreach(all, i, e)
    {
        const char *c = json_string_value(json_object_get(e, "campaign"));
        if (c && strcmp(c, campaign) == 0) json_array_append(out, e);
    }
    json_decref(all);
    return out;
}

/* The audit record of the recorded outcome, without a scan of the audit
 * stream: entry ids are milliseconds, and finish.lua adds the record in
 * the same write as the once-only record stamped `at`, so only the few
 * seconds from `at` are read, at most EXPLAIN_AUDIT_MAX entries. NULL when
 * it is not there (trimmed, or written later than that). */
#define EXPLAIN_AUDIT_SECONDS 5
#define EXPLAIN_AUDIT_MAX 50000
/* The record in one audit stream (key), the latest found, into *found. */
static void audit_scan(struct ctx *x, const struct strbuf *kb, const char *campaign, const char *id, int64_t at,
                       json_t **found, int *rc)
{
    char start[48], end[48];
    snprintf(start, sizeof(start), "%lld", (long long)at * 1000);
    snprintf(end, sizeof(end), "%lld", (long long)(at + EXPLAIN_AUDIT_SECONDS) * 1000);
    for (long read = 0; read < EXPLAIN_AUDIT_MAX;) {
        redisReply *r = redisCommand(on_key(x, kb->buf), "XRANGE %s %s %s COUNT 1000", kb->buf, start, end);
        if (!r || r->type != REDIS_REPLY_ARRAY) {
            *rc = redis_failed(x, "audit read", r);
            if (r) freeReplyObject(r);
            break;
        }
        for (size_t i = 0; i < r->elements; i++) {
            const redisReply *e = r->element[i];
            if (e->type != REDIS_REPLY_ARRAY || e->elements != 2 || e->element[0]->type != REDIS_REPLY_STRING ||
                e->element[1]->type != REDIS_REPLY_ARRAY)
                continue;
            const redisReply *f = e->element[1];
            const char *c = NULL, *rid = NULL;
            for (size_t j = 0; j + 1 < f->elements; j += 2) {
                if (f->element[j]->type != REDIS_REPLY_STRING || f->element[j + 1]->type != REDIS_REPLY_STRING)
                    continue;
                if (strcmp(f->element[j]->str, "campaign") == 0) c = f->element[j + 1]->str;
                else if (strcmp(f->element[j]->str, "recipient") == 0) rid = f->element[j + 1]->str;
            }
            if (!c || !rid || strcmp(c, campaign) != 0 || strcmp(rid, id) != 0) continue;
            json_decref(*found); /* the latest of them */
            *found = json_object();
            json_object_set_new(*found, "entry", json_string(e->element[0]->str));
            for (size_t j = 0; j + 1 < f->elements; j += 2)
                if (f->element[j]->type == REDIS_REPLY_STRING && f->element[j + 1]->type == REDIS_REPLY_STRING)
                    json_object_set_new(*found, f->element[j]->str, json_string(f->element[j + 1]->str));
        }
        size_t n = r->elements;
        if (n) snprintf(start, sizeof(start), "(%s", r->element[n - 1]->element[0]->str);
        freeReplyObject(r);
        read += (long)n;
        if (n < 1000) break;
    }
}

/* On a cluster the outcome's record is in the audit stream of the node the
 * person was on (docs/architecture.md, "On a cluster"): every node's, by
 * the tags in the audit's nodes set, after the control plane's. */
static json_t *audit_record(struct ctx *x, const char *campaign, const char *id, int64_t at, int *rc)
{
    struct strbuf k;
    strbuf_init(&k);
    store_key_audit(&k, x->cfg->prefix);
    json_t *found = NULL;
    audit_scan(x, &k, campaign, id, at, &found, rc);
    if (x->cs && *rc == 0) {
        store_key_audit_nodes(&k, x->cfg->prefix);
        redisReply *tags = redisCommand(on_key(x, k.buf), "SMEMBERS %s", k.buf);
        if (!tags || tags->type != REDIS_REPLY_ARRAY) *rc = redis_failed(x, "audit read", tags);
        for (size_t i = 0; *rc == 0 && tags && tags->type == REDIS_REPLY_ARRAY && i < tags->elements; i++) {
            if (tags->element[i]->type != REDIS_REPLY_STRING) continue;
            store_key_node(&k, x->cfg->prefix, tags->element[i]->str, ":audit", NULL, NULL);
            audit_scan(x, &k, campaign, id, at, &found, rc);
        }
        if (tags) freeReplyObject(tags);
    }
    strbuf_free(&k);
    return found;
}

/* The stored consent record of ch (source, text version), or NULL. */
static bool consent_detail(const struct person *pp, int ch, struct consent_record *rec)
{
    const redisReply *e = pp->fields ? pp->fields->element[STORE_LOOKUP_CONSENT + ch] : NULL;
    char err[128];
    return e && e->type == REDIS_REPLY_STRING && consent_record_parse(e->str, e->len, rec, err, sizeof(err)) == 0;
}

/* The zone the quiet hours are read in, by name. */
static const char *zone_name(const struct ctx *x, const struct person *pp)
{
    if (pp->tz) return pp->p.tz;
    return x->cfg->default_tz ? x->cfg->default_tz : "UTC";
}

/* One check: its detail line (text) and data (JSON), never an address. */
static json_t *check_json(const struct ctx *x, const struct job *job, const struct person *pp,
                          const struct policy_check *k, struct strbuf *d)
{
    json_t *o = json_object();
    json_object_set_new(o, "check", json_string(policy_check_name(k->kind)));
    json_object_set_new(o, "channel", k->channel >= 0 ? json_string(herald_channel_name(k->channel)) : json_null());
    static const char *const verdicts[] = {"pass", "skip", "block"};
    json_object_set_new(o, "verdict", json_string(verdicts[k->verdict]));
    char reason[HERALD_ID_MAX + 8] = "";
    if (k->reason == HERALD_REASON_CAP && k->name) snprintf(reason, sizeof(reason), "cap:%s", k->name);
    else herald_copy(reason, sizeof(reason), herald_reason_name(k->reason));
    json_object_set_new(o, "reason", json_string(reason));
    char t1[40], t2[40], t3[40];
    const char *cn = k->channel >= 0 ? herald_channel_name(k->channel) : "";
    strbuf_reset(d);
    switch (k->kind) {
    case POLICY_CHECK_EXPIRY:
        if (job->expires_at) {
            fmt_utc(t1, sizeof(t1), job->expires_at);
            json_object_set_new(o, "expires_at", json_string(t1));
            strbuf_addf(d, "expires_at %s %s", t1, k->verdict == POLICY_PASS ? "is still ahead" : "has passed");
        } else {
            json_object_set_new(o, "expires_at", json_null());
            strbuf_adds(d, "the campaign has no expires_at");
        }
        break;
    case POLICY_CHECK_PROFILE:
        if (k->verdict == POLICY_PASS) strbuf_adds(d, "a profile is stored");
        else if (!pp->valid_id) strbuf_adds(d, "not a valid recipient id: no profile can exist under it");
        else if (pp->found < 0) strbuf_adds(d, "the stored profile is unreadable (counts as no profile)");
        else if (k->reason == HERALD_REASON_UNDECRYPTABLE)
            strbuf_adds(d, "the stored contact data does not decrypt: nothing is sent to it");
        else strbuf_adds(d, "no profile is stored under this id");
        break;
    case POLICY_CHECK_TOPIC: {
        int t = profile_topic(&pp->p, job->topic);
        json_object_set_new(o, "topic", json_string(job->topic));
        json_object_set_new(o, "preference", t > 0 ? json_string("opted_in") : t == 0 ? json_string("opted_out")
                                                                                   : json_string("none"));
        strbuf_addf(d, "topic \"%s\": %s", job->topic,
                    t > 0 ? "opted in" : t == 0 ? "opted out" : "no preference stated (counts as in)");
        break;
    }
    case POLICY_CHECK_CHANNEL:
        json_object_set_new(o, "order", json_string(pp->p.channels_set ? "person" : "campaign"));
        if (k->verdict == POLICY_PASS)
            strbuf_addf(d, "%s is in the campaign (order: the %s's)", cn,
                        pp->p.channels_set ? "person" : "campaign");
        else strbuf_addf(d, "the person lists %s, the campaign does not: not considered", cn);
        break;
    case POLICY_CHECK_CONSENT:
    case POLICY_CHECK_CONSENT_AGE: {
        const struct consent_state *cs = &pp->p.consent[k->channel];
        struct consent_record rec;
        bool have = consent_detail(pp, k->channel, &rec);
        json_object_set_new(o, "granted", cs->known ? json_boolean(cs->granted) : json_null());
        if (cs->known) {
            fmt_utc(t1, sizeof(t1), cs->at);
            json_object_set_new(o, "at", json_string(t1));
            strbuf_addf(d, "%s consent %s at %s", cn, cs->granted ? "granted" : "withdrawn", t1);
            if (have && rec.source) {
                json_object_set_new(o, "source", json_string(rec.source));
                strbuf_addf(d, ", source \"%s\"", rec.source);
            }
            if (have && rec.text_version) {
                json_object_set_new(o, "text_version", json_string(rec.text_version));
                strbuf_addf(d, ", text %s", rec.text_version);
            }
        } else {
            strbuf_addf(d, "no %s consent record", cn);
        }
        if (k->kind == POLICY_CHECK_CONSENT_AGE) {
            fmt_dur(t2, sizeof(t2), x->env.consent_max_age);
            fmt_dur(t3, sizeof(t3), x->at - cs->at);
            json_object_set_new(o, "max_age", json_string(t2));
            json_object_set_new(o, "age", json_string(t3));
            strbuf_addf(d, "; age %s, max_age %s", t3, t2);
        }
        if (have) consent_record_free(&rec);
        break;
    }
    case POLICY_CHECK_ADDRESS: {
        bool a = profile_has_address(&pp->p, k->channel);
        const char *state = !a ? "missing" : k->verdict == POLICY_PASS ? "present, valid" : "present, not valid";
        json_object_set_new(o, "address", json_string(state));
        strbuf_addf(d, "%s: %s", channel_get(k->channel)->address_label, state);
        break;
    }
    case POLICY_CHECK_SUPPRESSION:
        json_object_set_new(o, "suppressed", json_boolean(k->verdict != POLICY_PASS));
        strbuf_addf(d, "the %s is %s the suppression list", channel_get(k->channel)->address_label,
                    k->verdict == POLICY_PASS ? "not on" : "on");
        break;
    case POLICY_CHECK_SELECTED:
        if (k->verdict == POLICY_PASS) strbuf_addf(d, "%s selected", cn);
        else if (k->channel >= 0)
            strbuf_addf(d, "no channel remains; the first skipped (%s) gives the reason", cn);
        else strbuf_adds(d, "none of the person's channels is in the campaign");
        break;
    case POLICY_CHECK_ONCE_ONLY:
        if (pp->has_rec) {
            fmt_utc(t1, sizeof(t1), pp->rec.at);
            json_object_set_new(o, "record", json_pack("{s:s, s:s, s:s}", "state", store_rec_state_name(pp->rec.state),
                                                       "entry", pp->rec.entry, "at", t1));
            strbuf_addf(d, "record of this campaign: %s (entry %s, at %s)%s", store_rec_state_name(pp->rec.state),
                        pp->rec.entry, t1, k->verdict == POLICY_PASS ? ", which does not count as reached" : "");
        } else {
            json_object_set_new(o, "record", json_null());
            strbuf_adds(d, "no record of this campaign");
        }
        break;
    case POLICY_CHECK_QUIET_HOURS: {
        const char *ops = x->cfg->quiet[k->channel];
        const char *own = pp->p.quiet_hours;
        const struct tz *tz = pp->in.tz;
        json_object_set_new(o, "ops_window", ops ? json_string(ops) : json_null());
        json_object_set_new(o, "person_window", own ? json_string(own) : json_null());
        json_object_set_new(o, "zone", json_string(zone_name(x, pp)));
        fmt_local(t1, sizeof(t1), tz, x->at);
        json_object_set_new(o, "local_now", json_string(t1));
        strbuf_addf(d, "ops window %s, the person's %s, zone %s%s (now %s there): ", ops ? ops : "none",
                    own ? own : "none", zone_name(x, pp),
                    pp->p.tz && !pp->tz ? " (the person's tz is unknown: [daemon] default_tz)" : "", t1);
        if (k->verdict == POLICY_PASS) {
            strbuf_adds(d, "outside");
        } else if (k->until == QUIET_FOREVER) {
            strbuf_adds(d, "the windows cover the whole day: never reachable");
        } else {
            fmt_local(t2, sizeof(t2), tz, k->until);
            fmt_utc(t3, sizeof(t3), k->until);
            json_object_set_new(o, "until_local", json_string(t2));
            json_object_set_new(o, "until", json_string(t3));
            strbuf_addf(d, "inside until %s (%s) = %s", t2, zone_name(x, pp), t3);
            if (pp->d.outcome == HERALD_OUTCOME_SUPPRESSED) strbuf_adds(d, ", at or past expires_at");
        }
        break;
    }
    case POLICY_CHECK_CAP: {
        const struct policy_cap *cap = NULL;
        for (size_t i = 0; i < x->ncaps; i++)
            if (x->caps[i].name == k->name) cap = &x->caps[i];
        fmt_dur(t1, sizeof(t1), k->window);
        json_object_set_new(o, "cap", json_string(k->name ? k->name : ""));
        json_object_set_new(o, "count", json_integer(k->count));
        json_object_set_new(o, "limit", json_integer(k->limit));
        json_object_set_new(o, "window", json_string(t1));
        strbuf_addf(d, "cap %s (%s", k->name ? k->name : "?", cap ? chan_or_any(cap->channel) : "?");
        if (cap && cap->ntopics) {
            strbuf_adds(d, ", topics");
            for (size_t i = 0; i < cap->ntopics; i++) strbuf_addf(d, "%s%s", i ? "," : " ", cap->topics[i]);
        }
        strbuf_addf(d, "): %lld sent within %s, limit %lld", (long long)k->count, t1, (long long)k->limit);
        break;
    }
    case POLICY_CHECK_FREQUENCY:
        fmt_dur(t1, sizeof(t1), k->window);
        json_object_set_new(o, "count", json_integer(k->count));
        json_object_set_new(o, "limit", json_integer(k->limit));
        json_object_set_new(o, "window", json_string(t1));
        strbuf_addf(d, "the person's own limit on %s: %lld sent within %s, limit %lld", chan_or_any(k->channel),
                    (long long)k->count, t1, (long long)k->limit);
        break;
    default: break;
    }
    json_object_set_new(o, "detail", json_string(d->buf ? d->buf : ""));
    return o;
}

int explain_run(const struct config *cfg, redisContext *c, struct rcluster_sync *cs, int nargs, char **args)
{
    struct ctx x;
    ctx_init(&x, cfg, c, cs);
    struct opts o;
    int rc = parse_opts(&x, nargs, args, true, 2, &o);
    if (rc) {
        ctx_free(&x);
        return rc;
    }
    const char *campaign = o.pos[0], *id = o.pos[1];
    if (!herald_id_valid(campaign)) {
        fprintf(stderr, "heraldctl: not a campaign id (1..%d of %s)\n", HERALD_ID_MAX, HERALD_ID_CHARS);
        ctx_free(&x);
        return 1;
    }
    if (!herald_id_valid(id)) {
        /* Never echoed: it may be an address typed by mistake. */
        fprintf(stderr, "heraldctl: not a recipient id (1..%d of %s; never an address)\n", HERALD_ID_MAX,
                HERALD_ID_CHARS);
        ctx_free(&x);
        return 1;
    }
    struct job job;
    memset(&job, 0, sizeof(job));
    char entry[64] = "";
    if (o.job) {
        rc = explain_read_job(o.job, &job, NULL, NULL);
        if (rc == 0 && strcmp(job.id, campaign) != 0) {
            fprintf(stderr, "%s: the job is campaign %s, not %s\n", o.job, job.id, campaign);
            job_free(&job);
            rc = 1;
        }
    } else {
        rc = campaign_job(&x, campaign, &job, entry, sizeof(entry));
    }
    if (rc) {
        ctx_free(&x);
        return rc;
    }

    struct person pp = {.id = id, .valid_id = true};
    rc = lookup(&x, campaign, &pp, 1);
    json_t *hist = rc ? NULL : campaign_history(&x, id, campaign, &rc);
    json_t *audit = rc == 0 && pp.has_rec ? audit_record(&x, campaign, id, pp.rec.at, &rc) : NULL;
    if (rc) {
        json_decref(audit);
        json_decref(hist);
        person_free(&pp);
        job_free(&job);
        ctx_free(&x);
        return rc;
    }
    /* Its history entries leave the topic and the campaign's name to the
     * campaign's info (job_info_apply): this job's. */
    char *info_text = job_info_json(&job);
    json_t *info = info_text ? json_loads(info_text, 0, NULL) : NULL;
    size_t hi;
    json_t *he;
    json_array_foreach(hist, hi, he) job_info_apply(he, info, pp.p.locale);
    json_decref(info);
    free(info_text);
    struct policy_trace tr;
    decide(&x, &job, &pp, &tr);

    char at[40], reason[HERALD_ID_MAX + 8], t1[40], t2[40];
    fmt_utc(at, sizeof(at), x.at);
    reason_text(reason, sizeof(reason), &pp);
    json_t *out = json_object();
    json_object_set_new(out, "campaign", json_string(campaign));
    json_object_set_new(out, "recipient", json_string(id));
    json_object_set_new(out, "at", json_string(at));
    json_t *jj = json_object();
    json_object_set_new(jj, "entry", entry[0] ? json_string(entry) : json_null());
    json_object_set_new(jj, "topic", json_string(job.topic));
    json_t *chs = json_array();
    for (int i = 0; i < job.nchannels; i++) json_array_append_new(chs, json_string(herald_channel_name(job.channels[i])));
    json_object_set_new(jj, "channels", chs);
    if (job.expires_at) fmt_utc(t1, sizeof(t1), job.expires_at);
    json_object_set_new(jj, "expires_at", job.expires_at ? json_string(t1) : json_null());
    json_object_set_new(out, "job", jj);
    json_t *dec = json_object();
    json_object_set_new(dec, "outcome", json_string(herald_outcome_name(pp.d.outcome)));
    json_object_set_new(dec, "reason", json_string(reason));
    json_object_set_new(dec, "channel", pp.d.channel >= 0 ? json_string(herald_channel_name(pp.d.channel)) : json_null());
    bool until = pp.d.reason == HERALD_REASON_QUIET_HOURS && pp.d.until && pp.d.until != QUIET_FOREVER;
    if (until) {
        fmt_local(t1, sizeof(t1), pp.in.tz, pp.d.until);
        fmt_utc(t2, sizeof(t2), pp.d.until);
        json_object_set_new(dec, "until", json_string(t2));
        json_object_set_new(dec, "until_local", json_string(t1));
        json_object_set_new(dec, "zone", json_string(zone_name(&x, &pp)));
    }
    json_object_set_new(out, "decision", dec);
    json_t *checks = json_array();
    struct strbuf d;
    strbuf_init(&d);
    struct strbuf text;
    strbuf_init(&text);
    for (size_t i = 0; i < tr.n; i++) {
        json_t *cj = check_json(&x, &job, &pp, &tr.c[i], &d);
        static const char *const verdicts[] = {"pass", "skip", "BLOCK"};
        strbuf_addf(&text, "  %2zu. %-12s %-6s %-6s %s\n", i + 1, policy_check_name(tr.c[i].kind),
                    tr.c[i].channel >= 0 ? herald_channel_name(tr.c[i].channel) : "", verdicts[tr.c[i].verdict],
                    d.buf ? d.buf : "");
        json_array_append_new(checks, cj);
    }
    json_object_set_new(out, "checks", checks);
    json_t *recj = json_null();
    if (pp.has_rec) {
        fmt_utc(t1, sizeof(t1), pp.rec.at);
        recj = json_pack("{s:s, s:s, s:s, s:s}", "state", store_rec_state_name(pp.rec.state), "entry", pp.rec.entry,
                         "run", pp.rec.run, "at", t1);
    }
    json_object_set_new(out, "recorded", json_pack("{s:o, s:o, s:o}", "record", recj, "history", hist, "audit",
                                                   audit ? audit : json_null()));

    if (x.json) {
        char *s = json_dumps(out, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
        printf("%s\n", s);
        free(s);
    } else {
        printf("campaign %s, recipient %s\n", campaign, id);
        printf("job: topic %s, channels", job.topic);
        for (int i = 0; i < job.nchannels; i++) printf("%s%s", i ? ", " : " ", herald_channel_name(job.channels[i]));
        if (job.expires_at) {
            fmt_utc(t1, sizeof(t1), job.expires_at);
            printf(", expires_at %s", t1);
        }
        if (entry[0]) printf(" (stream entry %s)", entry);
        else printf(" (from %s)", o.job);
        printf("\n");
        if (pp.has_rec) {
            fmt_utc(t1, sizeof(t1), pp.rec.at);
            printf("recorded: %s at %s (once-only record, entry %s)\n", store_rec_state_name(pp.rec.state), t1,
                   pp.rec.entry);
        } else {
            printf("recorded: no once-only record of this campaign\n");
        }
        size_t i;
        json_t *h;
        json_array_foreach(hist, i, h) {
            const char *r = json_string_value(json_object_get(h, "reason"));
            const char *prov = json_string_value(json_object_get(h, "provider"));
            const char *ch = json_string_value(json_object_get(h, "channel"));
            printf("history: %s %s%s%s%s%s%s%s\n", json_string_value(json_object_get(h, "at")),
                   json_string_value(json_object_get(h, "outcome")), r && *r ? "/" : "", r ? r : "",
                   ch && *ch ? " on " : "", ch ? ch : "", prov && *prov ? " via " : "", prov ? prov : "");
        }
        if (audit) {
            const char *r = json_string_value(json_object_get(audit, "reason"));
            const char *ch = json_string_value(json_object_get(audit, "channel"));
            const char *prov = json_string_value(json_object_get(audit, "provider"));
            const char *pid = json_string_value(json_object_get(audit, "provider_id"));
            printf("audit: entry %s, %s%s%s%s%s%s%s%s%s\n", json_string_value(json_object_get(audit, "entry")),
                   json_string_value(json_object_get(audit, "outcome")), r && *r ? "/" : "", r ? r : "",
                   ch && *ch ? " on " : "", ch ? ch : "", prov && *prov ? " via " : "", prov ? prov : "",
                   pid && *pid ? ", provider_id " : "", pid ? pid : "");
        }
        printf("decision at %s: %s", at, herald_outcome_name(pp.d.outcome));
        if (pp.d.outcome != HERALD_OUTCOME_SENT) printf(" (%s)", reason);
        if (pp.d.channel >= 0) printf(" on %s", herald_channel_name(pp.d.channel));
        if (until) {
            fmt_local(t1, sizeof(t1), pp.in.tz, pp.d.until);
            fmt_utc(t2, sizeof(t2), pp.d.until);
            printf(" until %s (%s) = %s", t1, zone_name(&x, &pp), t2);
        }
        printf("\nchecks, in the policy's order:\n%s", text.buf ? text.buf : "");
        if (pp.d.outcome == HERALD_OUTCOME_SENT && x.ncaps == 0 && pp.nfreq == 0)
            printf("  (no [cap] applies and the person set no frequency limit)\n");
    }
    strbuf_free(&d);
    strbuf_free(&text);
    json_decref(out);
    person_free(&pp);
    job_free(&job);
    ctx_free(&x);
    return 0;
}

/* ---- simulate ----------------------------------------------------------- */

struct tally {
    long long total;    /* recipients in the source */
    long long decided;
    long long repeated; /* a second copy of an inline id: the run decides it once */
    long long sent[HERALD_CH_COUNT];
    json_t *suppressed; /* reason -> n */
    json_t *deferred;   /* reason -> n */
    int64_t first_until, last_until;
    /* progress on stderr (a terminal only) */
    bool show;
    bool shown;      /* a progress line is on the screen */
    double shown_at; /* monotonic seconds of the last draw */
};

static void count_reason(json_t *obj, const char *reason)
{
    json_t *v = json_object_get(obj, reason);
    json_object_set_new(obj, reason, json_integer((v ? json_integer_value(v) : 0) + 1));
}

/* Redraws "simulate: N of TOTAL recipients decided" on stderr after the
 * first page and then at most five times a second; final takes it off the
 * screen before the forecast is printed. */
static void tally_progress(struct tally *t, bool final)
{
    if (!t->show) return;
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    double now = (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
    if (final) {
        if (t->shown) fputs("\r\033[K", stderr);
    } else if (!t->shown || now - t->shown_at >= 0.2) {
        fprintf(stderr, "\rsimulate: %lld of %lld recipients decided\033[K", t->decided, t->total);
        t->shown = true;
        t->shown_at = now;
    }
    fflush(stderr);
}

/* Decides a page of ids (taken: the caller's array, freed here). */
static int simulate_page(struct ctx *x, const struct job *job, struct tally *t, char **ids, size_t n)
{
    struct person *ps = xcalloc(n ? n : 1, sizeof(*ps));
    for (size_t i = 0; i < n; i++) {
        ps[i].id = ids[i];
        ps[i].valid_id = herald_id_valid(ids[i]);
    }
    int rc = lookup(x, job->id, ps, n);
    for (size_t i = 0; i < n && rc == 0; i++) {
        struct person *pp = &ps[i];
        decide(x, job, pp, NULL);
        char reason[HERALD_ID_MAX + 8];
        reason_text(reason, sizeof(reason), pp);
        switch (pp->d.outcome) {
        case HERALD_OUTCOME_SENT: t->sent[pp->d.channel]++; break;
        case HERALD_OUTCOME_DEFERRED:
            count_reason(t->deferred, reason);
            if (!t->first_until || pp->d.until < t->first_until) t->first_until = pp->d.until;
            if (pp->d.until > t->last_until) t->last_until = pp->d.until;
            break;
        default: count_reason(t->suppressed, reason); break;
        }
        t->decided++;
    }
    for (size_t i = 0; i < n; i++) {
        person_free(&ps[i]);
        free(ids[i]);
    }
    free(ps);
    free(ids);
    tally_progress(t, false);
    return rc;
}

/* By id, then by place in the list. */
static int id_cmp(const void *a, const void *b)
{
    char *const *x = *(char *const *const *)a, *const *y = *(char *const *const *)b;
    int c = strcmp(*x, *y);
    return c ? c : x < y ? -1 : x > y;
}

/* Inline recipients: each id once (a copy later in the list is dropped by
 * the run without an outcome), in pages of [daemon] batch. */
static int simulate_inline(struct ctx *x, const struct job *job, struct tally *t)
{
    size_t n = job->nrecipients;
    t->total = (long long)n;
    char *const **sorted = xcalloc(n ? n : 1, sizeof(*sorted));
    for (size_t i = 0; i < n; i++) sorted[i] = &job->recipients[i];
    qsort(sorted, n, sizeof(*sorted), id_cmp);
    bool *repeat = xcalloc(n ? n : 1, sizeof(bool));
    /* Of equal ids all but the first in the list are repeats. */
    for (size_t i = 1; i < n; i++)
        if (strcmp(*sorted[i], *sorted[i - 1]) == 0) repeat[sorted[i] - job->recipients] = true;
    free(sorted);
    size_t batch = (size_t)x->cfg->batch;
    int rc = 0;
    for (size_t pos = 0; pos < n && rc == 0;) {
        char **ids = xcalloc(batch, sizeof(char *));
        size_t k = 0;
        for (; pos < n && k < batch; pos++) {
            if (repeat[pos]) {
                t->repeated++;
                continue;
            }
            ids[k++] = xstrdup(job->recipients[pos]);
        }
        rc = simulate_page(x, job, t, ids, k);
    }
    free(repeat);
    return rc;
}

enum src { SRC_NONE, SRC_SET, SRC_ZSET, SRC_LIST };

/* recipients_key: read as the daemon reads it (SSCAN, ZSCAN, LRANGE) in
 * pages of [daemon] batch; never the whole list at once. */
static int simulate_key(struct ctx *x, const struct job *job, struct tally *t)
{
    const char *key = job->recipients_key;
    redisReply *r = redisCommand(on_key(x, key), "TYPE %s", key);
    if (!r || r->type != REDIS_REPLY_STATUS) {
        int rc = redis_failed(x, "recipients_key read", r);
        if (r) freeReplyObject(r);
        return rc;
    }
    enum src kind = strcmp(r->str, "set") == 0    ? SRC_SET
                             : strcmp(r->str, "zset") == 0 ? SRC_ZSET
                             : strcmp(r->str, "list") == 0 ? SRC_LIST
                                                           : SRC_NONE;
    if (kind == SRC_NONE) {
        if (strcmp(r->str, "none") == 0) fprintf(stderr, "heraldctl: recipients_key: the key does not exist\n");
        else fprintf(stderr, "heraldctl: recipients_key: the key is a %.32s; expected a set, zset or list\n", r->str);
        freeReplyObject(r);
        return 1;
    }
    freeReplyObject(r);
    static const char *const counts[] = {[SRC_SET] = "SCARD", [SRC_ZSET] = "ZCARD",
                                         [SRC_LIST] = "LLEN"};
    r = redisCommand(on_key(x, key), "%s %s", counts[kind], key);
    if (!r || r->type != REDIS_REPLY_INTEGER) {
        int rc = redis_failed(x, "recipients_key read", r);
        if (r) freeReplyObject(r);
        return rc;
    }
    t->total = r->integer;
    freeReplyObject(r);
    char cursor[32] = "0";
    long long pos = 0, batch = x->cfg->batch;
    int rc = 0;
    for (bool done = false; !done && rc == 0;) {
        if (kind == SRC_LIST) r = redisCommand(on_key(x, key), "LRANGE %s %lld %lld", key, pos, pos + batch - 1);
        else
            r = redisCommand(on_key(x, key), "%s %s %s COUNT %lld", kind == SRC_SET ? "SSCAN" : "ZSCAN", key, cursor,
                             batch);
        const redisReply *items = NULL;
        if (r && kind == SRC_LIST && r->type == REDIS_REPLY_ARRAY) items = r;
        else if (r && r->type == REDIS_REPLY_ARRAY && r->elements == 2 && r->element[0]->type == REDIS_REPLY_STRING &&
                 r->element[1]->type == REDIS_REPLY_ARRAY)
            items = r->element[1];
        if (!items) {
            rc = redis_failed(x, "recipients_key read", r);
            if (r) freeReplyObject(r);
            break;
        }
        size_t step = kind == SRC_ZSET ? 2 : 1;
        char **ids = xcalloc(items->elements ? items->elements : 1, sizeof(char *));
        size_t k = 0;
        for (size_t i = 0; i < items->elements; i += step)
            if (items->element[i]->type == REDIS_REPLY_STRING) ids[k++] = xstrdup(items->element[i]->str);
        if (kind == SRC_LIST) {
            pos += (long long)items->elements;
            done = (long long)items->elements < batch;
        } else {
            herald_copy(cursor, sizeof(cursor), r->element[0]->str);
            done = strcmp(cursor, "0") == 0;
        }
        freeReplyObject(r);
        rc = simulate_page(x, job, t, ids, k);
    }
    return rc;
}

int explain_simulate(const struct config *cfg, redisContext *c, struct rcluster_sync *cs, int nargs, char **args)
{
    struct ctx x;
    ctx_init(&x, cfg, c, cs);
    struct opts o;
    int rc = parse_opts(&x, nargs, args, false, 1, &o);
    struct job job;
    memset(&job, 0, sizeof(job));
    if (rc == 0) rc = explain_read_job(o.pos[0], &job, NULL, NULL);
    if (rc) {
        ctx_free(&x);
        return rc;
    }
    /* A job for later is decided when it is due. */
    if (!x.at_given && job.not_before > x.at) x.at = job.not_before;
    struct tally t = {.suppressed = json_object(), .deferred = json_object(), .show = isatty(STDERR_FILENO)};
    rc = job.recipients_key ? simulate_key(&x, &job, &t) : simulate_inline(&x, &job, &t);
    tally_progress(&t, true);
    if (rc == 0) {
        char at[40], t1[40], t2[40];
        fmt_utc(at, sizeof(at), x.at);
        long long sent = 0, sup = 0, def = 0;
        json_t *bych = json_object();
        for (int ch = 0; ch < HERALD_CH_COUNT; ch++) {
            sent += t.sent[ch];
            if (t.sent[ch]) json_object_set_new(bych, herald_channel_name(ch), json_integer(t.sent[ch]));
        }
        const char *k;
        json_t *v;
        json_object_foreach(t.suppressed, k, v) sup += json_integer_value(v);
        json_object_foreach(t.deferred, k, v) def += json_integer_value(v);
        if (x.json) {
            json_t *out = json_pack("{s:s, s:s, s:I, s:I, s:I, s:I, s:O, s:O, s:I, s:O}", "campaign", job.id, "at",
                                    at, "total", (json_int_t)t.total, "decided", (json_int_t)t.decided, "repeated",
                                    (json_int_t)t.repeated, "sent", (json_int_t)sent, "sent_by_channel", bych,
                                    "suppressed", t.suppressed, "deferred", (json_int_t)def, "deferred_by_reason",
                                    t.deferred);
            if (t.first_until) {
                fmt_utc(t1, sizeof(t1), t.first_until);
                fmt_utc(t2, sizeof(t2), t.last_until);
                json_object_set_new(out, "deferred_until", json_pack("{s:s, s:s}", "first", t1, "last", t2));
            }
            char *s = json_dumps(out, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
            printf("%s\n", s);
            free(s);
            json_decref(out);
        } else {
            printf("campaign %s: forecast at %s (nothing sent, reserved or written)\n", job.id, at);
            printf("recipients: %lld", t.total);
            if (t.repeated) printf(" (%lld repeated ids, decided once)", t.repeated);
            printf("\nsent: %lld", sent);
            for (int ch = 0; ch < HERALD_CH_COUNT; ch++)
                if (t.sent[ch]) printf(" (%s %lld)", herald_channel_name(ch), t.sent[ch]);
            printf("\nsuppressed: %lld\n", sup);
            json_object_foreach(t.suppressed, k, v) printf("  %-24s %lld\n", k, (long long)json_integer_value(v));
            printf("deferred: %lld\n", def);
            json_object_foreach(t.deferred, k, v) printf("  %-24s %lld\n", k, (long long)json_integer_value(v));
            if (t.first_until) {
                fmt_utc(t1, sizeof(t1), t.first_until);
                fmt_utc(t2, sizeof(t2), t.last_until);
                printf("  until %s .. %s\n", t1, t2);
            }
        }
        json_decref(bych);
    }
    json_decref(t.suppressed);
    json_decref(t.deferred);
    job_free(&job);
    ctx_free(&x);
    return rc;
}
