/*
 * store_job.c - typed calls on the job pipeline's Lua scripts (store_job.h).
 *
 * Owns the KEYS/ARGV layout of lookup, reserve, handed, finish, release,
 * heartbeat and dead_letter (each script's header in daemon/lua is the other half) and
 * the checks of their replies. Never logs; never decides anything from a
 * reply whose shape is not the one its script promises.
 */
#include "store_job.h"
#include "store_job_int.h"
#include "store_nodes.h"

#include "addrindex.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>


/* What the calls send of sj->cfg prepared once: the caps' topics as
 * reserve.lua reads them, the audit stream's length. */
static void caps_derive(struct store_job *sj)
{
    const struct config *cfg = sj->cfg;
    herald_lltoa(sj->audit_maxlen, (long long)cfg->audit_maxlen);
    sj->cap_topics = xcalloc(cfg->ncaps ? cfg->ncaps : 1, sizeof(char *));
    for (size_t i = 0; i < cfg->ncaps; i++) {
        struct strbuf t;
        strbuf_init(&t);
        for (size_t j = 0; j < cfg->caps[i].ntopics; j++) {
            strbuf_add(&t, ",", 1);
            strbuf_adds(&t, cfg->caps[i].topics[j]);
        }
        if (t.len) strbuf_add(&t, ",", 1);
        sj->cap_topics[i] = strbuf_detach(&t, NULL);
    }
}

struct store_job *store_job_new(struct store_cmds *sc, const struct config *cfg, const char *consumer)
{
    struct store_job *sj = xcalloc(1, sizeof(*sj));
    sj->sc = sc;
    sj->cfg = cfg;
    sj->consumer = xstrdup(consumer);
    strbuf_init(&sj->k_jobs);
    strbuf_init(&sj->k_audit);
    strbuf_init(&sj->k_events);
    strbuf_init(&sj->key);
    strbuf_init(&sj->seqs);
    store_key_jobs(&sj->k_jobs, cfg->prefix);
    store_key_audit(&sj->k_audit, cfg->prefix);
    store_key_events(&sj->k_events, cfg->prefix);
    strbuf_init(&sj->k_dead);
    strbuf_init(&sj->k_scheduled);
    strbuf_init(&sj->k_marker);
    store_key_dead(&sj->k_dead, cfg->prefix);
    store_key_scheduled(&sj->k_scheduled, cfg->prefix);
    store_key_marker(&sj->k_marker, cfg->prefix);
    strbuf_init(&sj->k_layout);
    store_key_layout(&sj->k_layout, cfg->prefix);
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    snprintf(sj->batch, sizeof(sj->batch), "%.40s:%ld:%lld", consumer, (long)getpid(),
             (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000);
    caps_derive(sj);
    return sj;
}

static void caps_free(struct store_job *sj)
{
    for (size_t i = 0; i < sj->cfg->ncaps; i++) free(sj->cap_topics[i]);
    free(sj->cap_topics);
}

void store_job_reload(struct store_job *sj, const struct config *cfg)
{
    caps_free(sj);
    sj->cfg = cfg;
    caps_derive(sj);
}

void store_job_free(struct store_job *sj)
{
    if (!sj) return;
    sj_nodes_free(sj);
    caps_free(sj);
    strbuf_free(&sj->k_jobs);
    strbuf_free(&sj->k_audit);
    strbuf_free(&sj->k_events);
    strbuf_free(&sj->key);
    strbuf_free(&sj->seqs);
    strbuf_free(&sj->k_dead);
    strbuf_free(&sj->k_scheduled);
    strbuf_free(&sj->k_marker);
    strbuf_free(&sj->k_layout);
    free(sj->consumer);
    free(sj);
}

/* ---- one call in flight ------------------------------------------------ */


struct call *call_new(struct store_job *sj, store_job_cb cb, void *arg, void (*discard)(void *),
                             void *const *items, size_t n)
{
    struct call *c = xcalloc(1, sizeof(*c));
    c->sj = sj;
    c->cb = cb;
    c->arg = arg;
    c->discard = discard;
    c->n = n;
    if (items) {
        c->items = xmalloc((n ? n : 1) * sizeof(*c->items));
        memcpy(c->items, items, n * sizeof(*c->items));
    }
    return c;
}

static void call_free(struct call *c)
{
    free(c->items);
    free(c->out);
    free(c->index);
    free(c->shard);
    free(c);
}

void call_discard(void *arg)
{
    struct call *c = arg;
    if (c->discard) c->discard(c->arg);
    call_free(c);
}

void call_done(struct call *c, enum store_job_status st, enum store_error err, const char *text)
{
    struct store_job_result res = {.status = st, .err = err, .text = text};
    store_job_cb cb = c->cb;
    void *arg = c->arg;
    call_free(c);
    cb(&res, arg);
}

/* Ends c when the reply is no answer: a permanent failure (r NULL), the
 * fence's 'lost', or (bad) a shape the script never gives. */
bool call_ended(struct call *c, const redisReply *r, enum store_error err, const char *text, bool bad)
{
    if (!r) {
        call_done(c, STORE_JOB_FAILED, err, text);
        return true;
    }
    if ((r->type == REDIS_REPLY_STRING || r->type == REDIS_REPLY_STATUS) && strcmp(r->str, "lost") == 0) {
        call_done(c, STORE_JOB_LOST, STORE_E_COUNT, NULL);
        return true;
    }
    if (bad) {
        call_done(c, STORE_JOB_FAILED, STORE_E_REPLY, "unexpected reply");
        return true;
    }
    return false;
}

bool is_array_of(const redisReply *r, size_t n, int type)
{
    if (!r || r->type != REDIS_REPLY_ARRAY || r->elements != n) return false;
    for (size_t i = 0; i < n; i++)
        if (r->element[i]->type != type) return false;
    return true;
}

/* A key built in a strbuf: its length is known. */
void add_buf(struct store_args *a, const struct strbuf *sb) { store_args_addn(a, sb->buf, sb->len); }

/* The fence every writing script starts with (struct sj_fence): on a single
 * instance KEYS[1] the jobs stream, ARGV[1..3] group, entry, consumer. */
static struct sj_fence fence_of(const struct store_job *sj)
{
    return (struct sj_fence){.key = sj->k_jobs.buf, .group = STORE_GROUP, .owner = sj->consumer};
}

void sj_script(struct store_args *a, const char *script, size_t nkeys, const struct sj_fence *f)
{
    if (f->group[0]) {
        store_args_script(a, script, nkeys);
        return;
    }
    char n[HERALD_LL_CHARS + 1] = "#";
    herald_lltoa(n + 1, (long long)nkeys);
    store_args_script(a, script, 0);
    store_args_add(a, n);
}

static void fence_keys(struct store_args *a, const struct sj_fence *f) { store_args_add(a, f->key); }

static void fence_args(struct store_args *a, const struct sj_fence *f, const char *entry)
{
    store_args_add(a, f->group);
    store_args_add(a, entry);
    store_args_add(a, f->owner);
}

/* ---- lookup ------------------------------------------------------------ */

/* One plain HMGET per person, pipelined, rather than a script: Redis then
 * neither turns the replies (the profile's JSON, the consent records) into
 * Lua strings nor serialises them again, which was a tenth of its work per
 * message; and each command goes by its own key's slot on a cluster. The
 * n answers make one call's answer, given once the last is in: the first
 * permanent error (held), else a reply of another shape, else the rows. */
struct lookup_group;
struct lookup_slot {
    struct lookup_group *g;
    size_t i;
};
struct lookup_group {
    struct call *c;
    unsigned channels;   /* the consent fields read (1u << channel) */
    size_t left;         /* commands neither answered nor discarded */
    bool discarded;      /* the layer went first: the caller's discard, not cb */
    bool failed, bad;
    enum store_error err;
    char text[128];
    struct lookup_slot slot[];
};

static void lookup_group_end(struct lookup_group *g)
{
    if (g->discarded) call_discard(g->c);
    else if (g->failed) call_done(g->c, STORE_JOB_FAILED, g->err, g->text);
    else if (g->bad) call_done(g->c, STORE_JOB_FAILED, STORE_E_REPLY, "unexpected reply");
    else call_done(g->c, STORE_JOB_OK, STORE_E_COUNT, NULL);
    free(g);
}

static void on_lookup_discard(void *arg)
{
    struct lookup_slot *sl = arg;
    struct lookup_group *g = sl->g;
    g->discarded = true;
    if (--g->left == 0) lookup_group_end(g);
}

/* The values of a lookup's reply in STORE_LOOKUP_* order, a channel whose
 * consent field was not read as none. Returns false when the reply has
 * another shape. */
static bool lookup_values(const redisReply *r, unsigned channels, const redisReply *el[STORE_LOOKUP_STRIDE])
{
    static const redisReply none = {.type = REDIS_REPLY_NIL};
    size_t want = STORE_LOOKUP_STRIDE;
    for (int ch = 0; ch < HERALD_CH_COUNT; ch++) want -= !(channels & (1u << ch));
    if (!r || r->type != REDIS_REPLY_ARRAY || r->elements != want) return false;
    for (size_t f = 0, j = 0; f < STORE_LOOKUP_STRIDE; f++) {
        int ch = (int)f - STORE_LOOKUP_CONSENT;
        if (ch >= 0 && ch < HERALD_CH_COUNT && !(channels & (1u << ch))) {
            el[f] = &none;
            continue;
        }
        el[f] = r->element[j++];
        if (el[f]->type != REDIS_REPLY_STRING && el[f]->type != REDIS_REPLY_NIL) return false;
    }
    return true;
}

/* A reservation the run that made it may have handed to a provider: its
 * bit in that run's handed log (lua/finish.lua) says so, and the record
 * then reads as pending, as the record itself said before layout 5. */
static void on_handed_bit(redisReply *r, enum store_error err, const char *text, void *arg)
{
    struct lookup_slot *sl = arg;
    struct lookup_group *g = sl->g;
    if (!r && !g->failed) {
        g->failed = true;
        g->err = err;
        herald_copy(g->text, sizeof(g->text), text ? text : "");
    } else if (r && r->type != REDIS_REPLY_INTEGER) {
        g->bad = true;
    } else if (r && r->integer == 1) {
        ((struct store_job_person *)g->c->items[sl->i])->rec.state = REC_PENDING;
    }
    if (--g->left == 0) lookup_group_end(g);
}

static void handed_ask(struct lookup_group *g, struct lookup_slot *sl, const struct store_job_person *p)
{
    struct store_job *sj = g->c->sj;
    struct store_args a;
    store_args_init(&a);
    store_args_add(&a, "GETBIT");
    store_key_handed(&sj->key, sj->cfg->prefix, p->rec.run);
    add_buf(&a, &sj->key);
    store_args_addll(&a, (long long)p->rec.seq);
    g->left++;
    store_cmds_send(sj->sc, STORE_CMD_HOLD, on_handed_bit, sl, on_lookup_discard, &a, NULL);
}

static void on_lookup(redisReply *r, enum store_error err, const char *text, void *arg)
{
    struct lookup_slot *sl = arg;
    struct lookup_group *g = sl->g;
    const redisReply *el[STORE_LOOKUP_STRIDE];
    bool ok = lookup_values(r, g->channels, el);
    if (!r && !g->failed) {
        g->failed = true;
        g->err = err;
        herald_copy(g->text, sizeof(g->text), text ? text : "");
    } else if (r && !ok) {
        g->bad = true;
    } else if (ok) {
        struct store_job_person *p = g->c->items[sl->i];
        p->unread[0] = '\0';
        p->found = store_person_from_fields(g->c->sj->cfg->keys, g->c->sj->cfg->index_key, p->id, el, true, p->p,
                                            p->envelope, p->unread, sizeof(p->unread));
        p->rev[0] = '\0';
        const redisReply *rev = el[STORE_LOOKUP_REV], *rec = el[STORE_LOOKUP_RECORD];
        if (rev->type == REDIS_REPLY_STRING) herald_copy(p->rev, sizeof(p->rev), rev->str);
        p->has_rec = false;
        strbuf_reset(p->raw_rec);
        if (rec->type == REDIS_REPLY_STRING && store_record_parse(rec->str, &p->rec) == 0) {
            p->has_rec = true;
            strbuf_add(p->raw_rec, rec->str, rec->len);
            if (store_record_in_handed_log(&p->rec)) handed_ask(g, sl, p);
        }
    }
    if (--g->left == 0) lookup_group_end(g);
}

static void on_lookup_ping(redisReply *r, enum store_error err, const char *text, void *arg)
{
    struct lookup_slot *sl = arg;
    struct lookup_group *g = sl->g;
    if (!r) {
        g->failed = true;
        g->err = err;
        herald_copy(g->text, sizeof(g->text), text ? text : "");
    }
    if (--g->left == 0) lookup_group_end(g);
}

void store_job_lookup(struct store_job *sj, const char *campaign, unsigned channels,
                      struct store_job_person *const *rows, size_t n, store_job_cb cb, void *arg,
                      void (*discard)(void *))
{
    struct call *c = call_new(sj, cb, arg, discard, (void *const *)rows, n);
    struct lookup_group *g = xcalloc(1, sizeof(*g) + (n ? n : 1) * sizeof(g->slot[0]));
    g->c = c;
    g->channels = channels;
    g->left = n ? n : 1;
    /* The fields to read (the channel descriptors name them), then the
     * campaign's record: the same for every person, so encoded once and
     * copied after each command's key. */
    struct strbuf rf;
    strbuf_init(&rf);
    store_record_field(&rf, campaign);
    struct store_args fields;
    store_args_init(&fields);
    for (size_t f = 0; f < STORE_LOOKUP_NFIELDS; f++) {
        int ch = (int)f - STORE_LOOKUP_CONSENT;
        if (ch < 0 || ch >= HERALD_CH_COUNT || (channels & (1u << ch))) store_args_add(&fields, store_lookup_field(f));
    }
    add_buf(&fields, &rf);
    for (size_t i = 0; i < n || (n == 0 && i == 0); i++) {
        g->slot[i].g = g;
        g->slot[i].i = i;
        struct store_args a;
        store_args_init(&a);
        if (n == 0) { /* nobody to read: still answered by Redis, never from inside this call */
            store_args_add(&a, "PING");
            store_cmds_send(sj->sc, STORE_CMD_HOLD, on_lookup_ping, &g->slot[0], on_lookup_discard, &a, NULL);
            break;
        }
        store_key_person(&sj->key, sj->cfg->prefix, rows[i]->id);
        /* One allocation for the command: its name, key and the fields. */
        strbuf_grow_to(&a.data, fields.data.len + sj->key.len + 2 * RCONN_RESP_HEAD_MAX + 16);
        store_args_add(&a, "HMGET");
        add_buf(&a, &sj->key);
        store_args_append(&a, &fields);
        store_cmds_send(sj->sc, STORE_CMD_HOLD, on_lookup, &g->slot[i], on_lookup_discard, &a, NULL);
    }
    store_args_free(&fields);
    strbuf_free(&rf);
}

/* ---- suppression ------------------------------------------------------- */

bool store_job_any_address(const unsigned char *const *members, size_t n)
{
    for (size_t i = 0; i < n * HERALD_CH_COUNT; i++)
        if (members[i]) return true;
    return false;
}

/* One SMISMEMBER per shard of the suppression list that the batch touches
 * (addrindex.h), pipelined as one group: each goes by its own key's slot on
 * a cluster, and the batch's answer is given once the last is in, as the
 * lookup's is. */
static void on_suppressed(redisReply *r, enum store_error err, const char *text, void *arg)
{
    struct lookup_slot *sl = arg;
    struct lookup_group *g = sl->g;
    struct call *c = g->c;
    unsigned shard = (unsigned)sl->i;
    size_t want = 0;
    for (size_t i = 0; i < c->n * HERALD_CH_COUNT; i++) want += c->index[i] >= 0 && c->shard[i] == shard;
    if (!r && !g->failed) {
        g->failed = true;
        g->err = err;
        herald_copy(g->text, sizeof(g->text), text ? text : "");
    } else if (r && !is_array_of(r, want, REDIS_REPLY_INTEGER)) {
        g->bad = true;
    } else if (r) {
        for (size_t i = 0; i < c->n * HERALD_CH_COUNT; i++)
            if (c->index[i] >= 0 && c->shard[i] == shard)
                (*c->out[i / HERALD_CH_COUNT])[i % HERALD_CH_COUNT] = r->element[c->index[i]]->integer == 1;
    }
    if (--g->left == 0) lookup_group_end(g);
}

void store_job_suppressed(struct store_job *sj, const unsigned char *const *members,
                          bool (*const *out)[HERALD_CH_COUNT], size_t n, store_job_cb cb, void *arg,
                          void (*discard)(void *))
{
    struct call *c = call_new(sj, cb, arg, discard, NULL, n);
    c->out = xmalloc((n ? n : 1) * sizeof(*c->out));
    memcpy(c->out, out, n * sizeof(*c->out));
    c->index = xmalloc((n ? n : 1) * HERALD_CH_COUNT * sizeof(*c->index));
    c->shard = xmalloc((n ? n : 1) * HERALD_CH_COUNT);
    struct store_args a[ADDRINDEX_SHARDS];
    int count[ADDRINDEX_SHARDS] = {0};
    for (size_t i = 0; i < n * HERALD_CH_COUNT; i++) {
        c->index[i] = -1;
        c->shard[i] = 0;
        const unsigned char *m = members[i];
        if (!m) continue;
        unsigned s = addrindex_shard(m);
        if (count[s] == 0) {
            store_args_init(&a[s]);
            store_args_add(&a[s], "SMISMEMBER");
            addrindex_key(&sj->key, sj->cfg->prefix, ADDRINDEX_SUPPRESS, s);
            add_buf(&a[s], &sj->key);
        }
        c->shard[i] = (unsigned char)s;
        c->index[i] = count[s]++;
        store_args_addn(&a[s], (const char *)m, ADDRINDEX_LEN);
    }
    size_t used = 0;
    for (unsigned s = 0; s < ADDRINDEX_SHARDS; s++) used += count[s] > 0;
    struct lookup_group *g = xcalloc(1, sizeof(*g) + ADDRINDEX_SHARDS * sizeof(g->slot[0]));
    g->c = c;
    g->left = used ? used : 1;
    for (unsigned s = 0; s < ADDRINDEX_SHARDS; s++) {
        g->slot[s].g = g;
        g->slot[s].i = s;
    }
    if (!used) { /* no address: still answered by Redis, never from inside this call */
        struct store_args p;
        store_args_init(&p);
        store_args_add(&p, "PING");
        store_cmds_send(sj->sc, STORE_CMD_HOLD, on_lookup_ping, &g->slot[0], on_lookup_discard, &p, NULL);
        return;
    }
    for (unsigned s = 0; s < ADDRINDEX_SHARDS; s++)
        if (count[s]) store_cmds_send(sj->sc, STORE_CMD_HOLD, on_suppressed, &g->slot[s], on_lookup_discard, &a[s], NULL);
}

/* ---- reservation ------------------------------------------------------- */

static const char *const verdicts[] = {
    [SJV_OK] = "ok", [SJV_STALE] = "stale", [SJV_DUPLICATE] = "duplicate", [SJV_CAP] = "cap",
    [SJV_USER_FREQUENCY] = "user_frequency",
};

/* One answer of reserve.lua: "h<slot>" (reserved in that slot), else the
 * verdict's word and, after a space, its detail; -1: none of these. */
static int verdict_of(const char *s, const char **detail)
{
    if (s[0] == 'h') {
        *detail = s;
        return SJV_OK;
    }
    size_t len = strcspn(s, " ");
    *detail = s[len] ? s + len + 1 : "";
    for (size_t v = 0; v < sizeof(verdicts) / sizeof(verdicts[0]); v++)
        if (v != SJV_OK && strlen(verdicts[v]) == len && strncmp(s, verdicts[v], len) == 0) return (int)v;
    return -1;
}

void on_reserved(redisReply *r, enum store_error err, const char *text, void *arg)
{
    struct call *c = arg;
    bool ok = is_array_of(r, c->n, REDIS_REPLY_STRING);
    const char *d;
    for (size_t i = 0; ok && i < c->n; i++) {
        int v = verdict_of(r->element[i]->str, &d);
        /* "cap" always names its cap; a detail too long for it is no reply of ours. */
        if (v < 0 || (v == SJV_CAP && !d[0]) || strlen(d) >= sizeof(((struct store_job_reservation *)0)->detail))
            ok = false;
    }
    if (call_ended(c, r, err, text, !ok)) return;
    for (size_t i = 0; i < c->n; i++) {
        struct store_job_reservation *it = c->items[i];
        it->verdict = (enum store_job_verdict)verdict_of(r->element[i]->str, &d);
        herald_copy(it->detail, sizeof(it->detail), d);
    }
    call_done(c, STORE_JOB_OK, STORE_E_COUNT, NULL);
}

void sj_reserve_args(struct store_args *a, struct store_job *sj, const struct sj_fence *f, const char *entry,
                     int64_t now, const char *campaign, const char *topic, struct store_job_reservation *const *items,
                     const size_t *idx, size_t n)
{
    const struct config *cfg = sj->cfg;
    /* The person's key alone: the script names the sends zset from it where it uses one. */
    sj_script(a, store_lua_reserve, 1 + n, f);
    fence_keys(a, f);
    for (size_t i = 0; i < n; i++) {
        const struct store_job_reservation *it = items[idx ? idx[i] : i];
        store_key_person(&sj->key, cfg->prefix, it->id);
        add_buf(a, &sj->key);
    }
    fence_args(a, f, entry);
    store_args_addll(a, now);
    store_args_add(a, campaign);
    store_args_add(a, topic);
    store_args_addll(a, (long long)cfg->retention_history);
    store_args_addll(a, (long long)cfg->ncaps);
    for (size_t i = 0; i < cfg->ncaps; i++) {
        const struct config_cap *cap = &cfg->caps[i];
        store_args_add(a, cap->name);
        store_args_add(a, cap->channel < 0 ? "any" : herald_channel_name(cap->channel));
        store_args_addll(a, cap->limit);
        store_args_addll(a, cap->window_s);
        store_args_add(a, sj->cap_topics[i]);
    }
    /* The call's usual channel, its first recipient's: the others on it
     * with no prior, member, history or limits (most recipients) then take
     * 3 values rather than 4 (reserve.lua's header). A record is each
     * reservation's own (queue_ready.c numbers them). */
    const char *usual = n ? items[idx ? idx[0] : 0]->channel : "";
    store_args_add(a, usual);
    for (size_t i = 0; i < n; i++) {
        const struct store_job_reservation *it = items[idx ? idx[i] : i];
        /* The sends member only where the script uses it: a history to keep, a takeover. */
        const char *member = it->keep > 0 || it->prior[0] ? it->member : "";
        store_args_add(a, it->rev);
        store_args_add(a, it->record);
        if (!it->prior[0] && !member[0] && it->keep == 0 && it->nfreq == 0 && strcmp(it->channel, usual) == 0) {
            store_args_add(a, "");
            continue;
        }
        store_args_add(a, "+");
        store_args_add(a, it->channel);
        store_args_add(a, it->prior);
        store_args_add(a, member);
        store_args_addll(a, it->keep);
        store_args_addll(a, (long long)it->nfreq);
        for (size_t j = 0; j < it->nfreq; j++) {
            store_args_add(a, it->fchan[j]);
            store_args_addll(a, it->flim[j]);
            store_args_addll(a, it->fwin[j]);
        }
    }
}

void store_job_reserve(struct store_job *sj, const char *entry, int64_t now, const char *campaign,
                       const char *topic, struct store_job_reservation *const *items, size_t n, store_job_cb cb,
                       void *arg, void (*discard)(void *))
{
    if (sj_cluster(sj)) {
        sj_nodes_reserve(sj, entry, now, campaign, topic, items, n, cb, arg, discard);
        return;
    }
    struct call *c = call_new(sj, cb, arg, discard, (void *const *)items, n);
    struct store_args a;
    struct sj_fence f = fence_of(sj);
    sj_reserve_args(&a, sj, &f, entry, now, campaign, topic, items, NULL, n);
    store_cmds_send(sj->sc, STORE_CMD_HOLD, on_reserved, c, call_discard, &a, store_lua_reserve);
}

/* ---- the handoff ------------------------------------------------------- */

/* The run (third word) and the sequence number (fifth and last, digits
 * but for a leading 0, at most STORE_HANDED_SEQ_MAX) of a reservation
 * record "r <entry> <run> <at> <seq>" (store_record_format): false when
 * it has no such words; its handoff is then written to the person hash. */
static bool reservation_words(const char *rec, const char **run, size_t *rlen, unsigned long long *seq)
{
    const char *w[5];
    size_t len[5], n = 0;
    for (const char *p = rec; *p;) {
        while (*p == ' ') p++;
        if (!*p) break;
        const char *start = p;
        while (*p && *p != ' ') p++;
        if (n == 5) return false;
        w[n] = start;
        len[n++] = (size_t)(p - start);
    }
    if (n != 5 || w[4][0] < '1' || w[4][0] > '9' || len[4] > 10) return false;
    unsigned long long v = 0;
    for (size_t i = 0; i < len[4]; i++) {
        if (w[4][i] < '0' || w[4][i] > '9') return false;
        v = v * 10 + (unsigned)(w[4][i] - '0');
    }
    if (v > STORE_HANDED_SEQ_MAX) return false;
    *run = w[2];
    *rlen = len[2];
    *seq = v;
    return true;
}

/* Sets the bits of the n sequence numbers in bits (a run's handed log as
 * its finishing writes sent it: store_outcomes) and gives in seg the byte
 * stretches they touch, [start, end) pairs, those less than 64 bytes apart
 * as one; returns how many. Sorts seqs: by insertion, as they come mostly
 * in order. */
static size_t handed_segments(struct strbuf *bits, unsigned long long *seqs, size_t n, size_t *seg)
{
    for (size_t i = 1; i < n; i++) {
        unsigned long long v = seqs[i];
        size_t j = i;
        for (; j > 0 && seqs[j - 1] > v; j--) seqs[j] = seqs[j - 1];
        seqs[j] = v;
    }
    size_t need = (size_t)(seqs[n - 1] / 8) + 1;
    if (bits->len < need) {
        strbuf_grow_to(bits, need);
        memset(bits->buf + bits->len, 0, need - bits->len + 1);
        bits->len = need;
    }
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        size_t byte = (size_t)(seqs[i] / 8);
        bits->buf[byte] = (char)((unsigned char)bits->buf[byte] | (0x80u >> (seqs[i] % 8)));
        if (k && byte < seg[2 * k - 1] + 64) {
            if (byte >= seg[2 * k - 1]) seg[2 * k - 1] = byte + 1;
        } else {
            seg[2 * k] = byte;
            seg[2 * k + 1] = byte + 1;
            k++;
        }
    }
    return k;
}

int64_t store_job_records_end(const struct store_job *sj, int64_t expires_at)
{
    /* When a campaign's once-only records may go ([retention], docs/config.md). */
    return expires_at > 0 ? expires_at + sj->cfg->retention_grace_ms / 1000
                          : (int64_t)time(NULL) + sj->cfg->retention_records_ms / 1000;
}

void store_job_handed_record(struct strbuf *out, const char *record)
{
    /* The state word of either spelling (a code, or a name as records
     * written before the codes have it) becomes the code of pending. */
    const char *reserved[] = {store_rec_state_code(REC_RESERVED), store_rec_state_name(REC_RESERVED)};
    strbuf_reset(out);
    strbuf_adds(out, store_rec_state_code(REC_PENDING));
    const char *rest = record;
    for (size_t i = 0; i < 2 && rest == record; i++) {
        size_t len = strlen(reserved[i]);
        if (strncmp(record, reserved[i], len) == 0 && record[len] == ' ') rest = record + len;
    }
    strbuf_adds(out, rest);
}

/* ---- outcomes ---------------------------------------------------------- */

void store_outcomes_init(struct store_outcomes *o, const char *prefix)
{
    store_args_init(&o->keys);
    store_args_init(&o->args);
    store_args_init(&o->kinds);
    strbuf_init(&o->key);
    strbuf_init(&o->handed);
    o->prefix = prefix;
    o->n = 0;
    o->off = NULL;
    o->cap = 0;
    o->nkinds = 0;
    o->kind_off = NULL;
    o->kind_cap = 0;
}

void store_outcomes_free(struct store_outcomes *o)
{
    store_args_free(&o->keys);
    store_args_free(&o->args);
    store_args_free(&o->kinds);
    strbuf_free(&o->key);
    strbuf_free(&o->handed);
    free(o->off);
    o->off = NULL;
    o->cap = 0;
    o->n = 0;
    free(o->kind_off);
    o->kind_off = NULL;
    o->kind_cap = 0;
    o->nkinds = 0;
}

static void outcomes_clear(struct store_outcomes *o)
{
    store_args_reset(&o->keys);
    store_args_reset(&o->args);
    store_args_reset(&o->kinds);
    o->n = 0;
    o->nkinds = 0;
}

void sj_args_value(const struct store_args *b, size_t off, size_t k, const char **s, size_t *len)
{
    const char *p = b->data.buf + (off < STORE_ARGS_HEAD ? STORE_ARGS_HEAD : off);
    for (size_t j = 0; j <= k; j++) { /* "$<len>\r\n<bytes>\r\n" */
        char *end;
        *len = (size_t)strtoull(p + 1, &end, 10);
        *s = end + 2;
        p = *s + *len + 2;
    }
}

/* The kind of oc (its values appended to o->kinds), as the number that
 * names it: an earlier kind of the same values when one of the last few is
 * (the outcomes of one loop iteration mostly share one), else this new one. */
static size_t outcome_kind(struct store_outcomes *o, const struct store_outcome *oc, bool extra)
{
    if (o->nkinds == o->kind_cap) {
        o->kind_cap = o->kind_cap ? 2 * o->kind_cap : 8;
        o->kind_off = xrealloc(o->kind_off, o->kind_cap * sizeof(*o->kind_off));
    }
    size_t start = o->kinds.data.len < STORE_ARGS_HEAD ? STORE_ARGS_HEAD : o->kinds.data.len;
    const char *vals[] = {oc->channel, oc->outcome, oc->reason, oc->provider, oc->at};
    for (size_t i = 0; i < sizeof(vals) / sizeof(vals[0]); i++) store_args_add(&o->kinds, vals[i] ? vals[i] : "");
    char flags[5];
    size_t nf = 0;
    if (oc->reserved) flags[nf++] = 'r';
    if (oc->was_deferred) flags[nf++] = 'd';
    if (oc->once) flags[nf++] = 'n';
    if (extra) flags[nf++] = 'x';
    flags[nf] = '\0';
    store_args_add(&o->kinds, flags);
    if (oc->requests >= 0) store_args_addll(&o->kinds, oc->requests);
    else store_args_add(&o->kinds, "");
    store_args_add(&o->kinds, oc->locale ? oc->locale : "");
    store_args_add(&o->kinds, oc->record ? oc->record : "");
    store_args_add(&o->kinds, oc->history ? oc->history : "");
    size_t len = o->kinds.data.len - start;
    const char *mine = o->kinds.data.buf + start;
    for (size_t back = 0; back < 4 && back < o->nkinds; back++) {
        size_t k = o->nkinds - 1 - back;
        size_t end = k + 1 < o->nkinds ? o->kind_off[k + 1] : start;
        if (end - o->kind_off[k] == len && memcmp(o->kinds.data.buf + o->kind_off[k], mine, len) == 0) {
            o->kinds.data.len = start;
            o->kinds.data.buf[start] = '\0';
            o->kinds.n -= STORE_OUTCOME_KIND_ARGS;
            return k + 1;
        }
    }
    o->kind_off[o->nkinds++] = start;
    return o->nkinds;
}

/* Per outcome: STORE_OUTCOME_KEYS keys (the person hash) and
 * STORE_OUTCOME_ARGS values (store_job_int.h), in the order of
 * lua/finish.lua's header. */

void store_outcomes_add(struct store_outcomes *o, const struct store_outcome *oc)
{
    struct strbuf *k = &o->key;
    if (o->n == o->cap) {
        o->cap = o->cap ? 2 * o->cap : 64;
        o->off = xrealloc(o->off, 2 * o->cap * sizeof(*o->off));
    }
    o->off[2 * o->n] = o->keys.data.len;
    o->off[2 * o->n + 1] = o->args.data.len;
    store_key_person(k, o->prefix, oc->id);
    add_buf(&o->keys, k);
    const char *vals[] = {oc->id, oc->provider_id, oc->slot};
    for (size_t i = 0; i < sizeof(vals) / sizeof(vals[0]); i++) store_args_add(&o->args, vals[i] ? vals[i] : "");
    /* The two values most outcomes do without (a permanent failure's
     * sends member, a `feedback = on` provider's id key) only where set. */
    bool pid = oc->provider_id && oc->provider_id[0] && oc->pid_key;
    bool extra = pid || (oc->unsend && oc->unsend[0]);
    store_args_addll(&o->args, (long long)outcome_kind(o, oc, extra));
    if (extra) {
        store_args_add(&o->args, oc->unsend ? oc->unsend : "");
        if (pid) {
            store_key_pid(k, o->prefix, oc->provider, oc->provider_id);
            add_buf(&o->args, k);
        } else {
            store_args_add(&o->args, "");
        }
    }
    o->n++;
}

void on_finished(redisReply *r, enum store_error err, const char *text, void *arg)
{
    struct call *c = arg;
    /* {outcomes written, {1|0 per handoff}} */
    bool ok = r && r->type == REDIS_REPLY_ARRAY && r->elements == 2 && r->element[0]->type == REDIS_REPLY_INTEGER &&
              is_array_of(r->element[1], c->n, REDIS_REPLY_INTEGER);
    if (call_ended(c, r, err, text, !ok)) return;
    for (size_t i = 0; i < c->n; i++)
        ((struct store_job_handoff *)c->items[i])->handed = r->element[1]->element[i]->integer == 1;
    call_done(c, STORE_JOB_OK, STORE_E_COUNT, NULL);
}

void store_job_finish(struct store_job *sj, const char *entry, const char *campaign, const char *rec_entry,
                      struct store_outcomes *o, struct store_job_handoff *const *hand, size_t nhand, store_job_cb cb,
                      void *arg, void (*discard)(void *))
{
    if (sj_cluster(sj)) {
        sj_nodes_finish(sj, entry, campaign, rec_entry, o, hand, nhand, cb, arg, discard);
        return;
    }
    struct call *c = call_new(sj, cb, arg, discard, (void *const *)hand, nhand);
    struct store_args a;
    struct sj_fence f = fence_of(sj);
    /* The handoffs go to their run's handed log (lua/finish.lua): the
     * run and each sequence number read from the reservation records (one
     * run's, all numbered: the daemon's own). The log goes when the run
     * finishes its entry (lua/job_finished.lua); one a run left behind
     * (a crash) is read by the run that takes its entry over, whenever
     * that is: kept a year, or as long as the records if longer. */
    char run[32] = "";
    int64_t till = (int64_t)time(NULL) + STORE_HANDED_KEEP_S;
    bool logged = nhand > 0;
    strbuf_reset(&sj->seqs);
    /* On the stack for a loop iteration's usual handful. */
    enum { ON_STACK = 64 };
    unsigned long long seqs_stack[ON_STACK];
    size_t seg_stack[2 * ON_STACK];
    unsigned long long *seqs = nhand <= ON_STACK ? seqs_stack : xmalloc(nhand * sizeof(*seqs));
    size_t *seg = nhand <= ON_STACK ? seg_stack : xmalloc(2 * nhand * sizeof(*seg));
    for (size_t i = 0; i < nhand && logged; i++) {
        const char *r;
        size_t rlen;
        logged = reservation_words(hand[i]->record, &r, &rlen, &seqs[i]) && rlen < sizeof(run) &&
                 (i == 0 || (strlen(run) == rlen && memcmp(run, r, rlen) == 0));
        if (!logged) break;
        memcpy(run, r, rlen);
        run[rlen] = '\0';
        if (i) strbuf_add(&sj->seqs, " ", 1);
        strbuf_addll(&sj->seqs, (long long)seqs[i]);
        /* One run's: the same job, the same expires_at (but a cheap check). */
        if (i == 0 || hand[i]->expires_at != hand[i - 1]->expires_at) {
            int64_t end = store_job_records_end(sj, hand[i]->expires_at);
            if (end > till) till = end;
        }
    }
    size_t nseg = logged ? handed_segments(&o->handed, seqs, nhand, seg) : 0;
    store_args_script(&a, store_lua_finish, 4 + STORE_OUTCOME_KEYS * o->n + (logged ? 2 : nhand));
    /* One allocation for the lot: the outcomes' own bytes and a few keys. */
    strbuf_grow_to(&a.data, a.data.len + o->keys.data.len + o->args.data.len + o->kinds.data.len + 1024);
    fence_keys(&a, &f);
    add_buf(&a, &sj->k_audit);
    store_key_campaign(&sj->key, sj->cfg->prefix, campaign);
    add_buf(&a, &sj->key);
    store_key_campaign_norecord(&sj->key, sj->cfg->prefix, campaign);
    add_buf(&a, &sj->key);
    store_args_append(&a, &o->keys);
    if (logged) {
        store_key_handed(&sj->key, sj->cfg->prefix, run);
        add_buf(&a, &sj->key);
        store_key_erased(&sj->key, sj->cfg->prefix, run);
        add_buf(&a, &sj->key);
    }
    for (size_t i = 0; i < nhand && !logged; i++) {
        store_key_person(&sj->key, sj->cfg->prefix, hand[i]->id);
        add_buf(&a, &sj->key);
    }
    fence_args(&a, &f, entry);
    store_args_add(&a, sj->audit_maxlen);
    store_args_add(&a, campaign);
    store_args_add(&a, rec_entry);
    /* The batch's id: a replay of it (a lost connection) is found by it. */
    strbuf_reset(&sj->key);
    strbuf_addf(&sj->key, "%s:%llu", sj->batch, ++sj->seq);
    add_buf(&a, &sj->key);
    store_args_addll(&a, (long long)sj->cfg->retention_history);
    store_args_addll(&a, (long long)o->n);
    store_args_addll(&a, (long long)o->nkinds);
    store_args_append(&a, &o->kinds);
    store_args_append(&a, &o->args);
    if (logged) {
        store_args_add(&a, "@");
        store_args_addll(&a, (long long)till);
        store_args_addll(&a, (long long)nhand);
        add_buf(&a, &sj->seqs);
        /* Each stretch of the log these handoffs touch, its bytes whole:
         * the bits of this run's earlier handoffs there included. */
        for (size_t k = 0; k < nseg; k++) {
            store_args_addll(&a, (long long)seg[2 * k]);
            store_args_addn(&a, o->handed.buf + seg[2 * k], seg[2 * k + 1] - seg[2 * k]);
        }
    }
    if (seqs != seqs_stack) free(seqs);
    if (seg != seg_stack) free(seg);
    for (size_t i = 0; i < nhand && !logged; i++) {
        store_job_handed_record(&sj->key, hand[i]->record);
        add_buf(&a, &sj->key);
    }
    /* Emptied, its buffers kept for the next outcomes. */
    outcomes_clear(o);
    /* Outcomes must land: no hold, retried until Redis takes them. */
    store_cmds_send(sj->sc, 0, on_finished, c, call_discard, &a, store_lua_finish);
}

/* ---- give back, heartbeat ---------------------------------------------- */

void on_released(redisReply *r, enum store_error err, const char *text, void *arg)
{
    struct call *c = arg;
    if (call_ended(c, r, err, text, false)) return;
    call_done(c, STORE_JOB_OK, STORE_E_COUNT, NULL);
}

void sj_release_args(struct store_args *a, struct store_job *sj, const struct sj_fence *f, const char *entry,
                     const char *campaign, const char *id, const char *record, const char *member)
{
    sj_script(a, store_lua_release, 3, f);
    fence_keys(a, f);
    store_key_person(&sj->key, sj->cfg->prefix, id);
    add_buf(a, &sj->key);
    store_key_sends(&sj->key, sj->cfg->prefix, id);
    add_buf(a, &sj->key);
    fence_args(a, f, entry);
    store_args_add(a, campaign);
    store_args_add(a, record);
    store_job_handed_record(&sj->key, record);
    add_buf(a, &sj->key);
    store_args_add(a, member);
}

void store_job_release(struct store_job *sj, const char *entry, const char *campaign, const char *id,
                       const char *record, const char *member, store_job_cb cb, void *arg, void (*discard)(void *))
{
    if (sj_cluster(sj)) {
        sj_nodes_release(sj, entry, campaign, id, record, member, cb, arg, discard);
        return;
    }
    struct call *c = call_new(sj, cb, arg, discard, NULL, 0);
    struct store_args a;
    struct sj_fence f = fence_of(sj);
    sj_release_args(&a, sj, &f, entry, campaign, id, record, member);
    store_cmds_send(sj->sc, 0, on_released, c, call_discard, &a, store_lua_release);
}

void store_job_slice(struct store_job *sj, const char *entry, const char *campaign, long long total,
                     const char *from, const char *const *texts, size_t n, store_job_cb cb, void *arg)
{
    if (sj_cluster(sj)) sj_nodes_entry_done(sj, entry);
    struct call *c = call_new(sj, cb, arg, NULL, NULL, 0);
    struct store_args a;
    struct sj_fence f = fence_of(sj);
    store_args_script(&a, store_lua_job_slice, 2);
    fence_keys(&a, &f);
    store_key_campaign(&sj->key, sj->cfg->prefix, campaign);
    add_buf(&a, &sj->key);
    fence_args(&a, &f, entry);
    store_args_addll(&a, total);
    store_args_add(&a, from);
    for (size_t i = 0; i < n; i++) store_args_add(&a, texts[i]);
    /* call_ended answers the fence's 'lost' (and holds on a refusal for good). */
    store_cmds_send(sj->sc, STORE_CMD_HOLD, on_released, c, call_discard, &a, store_lua_job_slice);
}

static void on_beat(redisReply *r, enum store_error err, const char *text, void *arg)
{
    struct call *c = arg;
    (void)err;
    (void)text;
    /* 'gone' (no longer pending) is as lost as 'lost' for the run. */
    bool lost = (r->type == REDIS_REPLY_STRING || r->type == REDIS_REPLY_STATUS) &&
                (strcmp(r->str, "lost") == 0 || strcmp(r->str, "gone") == 0);
    call_done(c, lost ? STORE_JOB_LOST : STORE_JOB_OK, STORE_E_COUNT, NULL);
}

void store_job_heartbeat(struct store_job *sj, const char *entry, store_job_cb cb, void *arg,
                         void (*discard)(void *))
{
    struct call *c = call_new(sj, cb, arg, discard, NULL, 0);
    struct store_args a;
    store_args_script(&a, store_lua_heartbeat, 1);
    add_buf(&a, &sj->k_jobs);
    struct sj_fence f = fence_of(sj);
    fence_args(&a, &f, entry);
    store_cmds_send(sj->sc, 0, on_beat, c, call_discard, &a, store_lua_heartbeat);
}

/* ---- recipient sources ------------------------------------------------- */

static void args_of(struct store_args *a, const char *const *argv)
{
    store_args_init(a);
    for (size_t i = 0; argv[i]; i++) store_args_add(a, argv[i]);
}


struct source_call {
    struct call *c;
    struct store_source_info *out;
    char *key;
};

static void source_free(struct source_call *sc)
{
    free(sc->key);
    free(sc);
}

static void source_discard(void *arg)
{
    struct source_call *sc = arg;
    call_discard(sc->c);
    source_free(sc);
}

static void on_card(redisReply *r, enum store_error err, const char *text, void *arg)
{
    struct source_call *sc = arg;
    struct call *c = sc->c;
    if (!call_ended(c, r, err, text, r && r->type != REDIS_REPLY_INTEGER)) {
        sc->out->count = r->integer;
        call_done(c, STORE_JOB_OK, STORE_E_COUNT, NULL);
    }
    source_free(sc);
}

static void on_type(redisReply *r, enum store_error err, const char *text, void *arg)
{
    struct source_call *sc = arg;
    struct call *c = sc->c;
    if (call_ended(c, r, err, text, r && r->type != REDIS_REPLY_STATUS)) {
        source_free(sc);
        return;
    }
    static const struct {
        const char *type, *card;
        enum store_source kind;
    } kinds[] = {{"set", "SCARD", STORE_SRC_SET}, {"zset", "ZCARD", STORE_SRC_ZSET}, {"list", "LLEN", STORE_SRC_LIST}};
    herald_copy(sc->out->type, sizeof(sc->out->type), r->str);
    for (size_t i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++) {
        if (strcmp(r->str, kinds[i].type) != 0) continue;
        sc->out->found = true;
        sc->out->kind = kinds[i].kind;
        struct store_args a;
        args_of(&a, (const char *const[]){kinds[i].card, sc->key, NULL});
        store_cmds_send(c->sj->sc, STORE_CMD_HOLD, on_card, sc, source_discard, &a, NULL);
        return;
    }
    sc->out->found = false; /* "none", or a type no recipient list has */
    call_done(c, STORE_JOB_OK, STORE_E_COUNT, NULL);
    source_free(sc);
}

void store_job_source_open(struct store_job *sj, const char *key, struct store_source_info *out, store_job_cb cb,
                           void *arg, void (*discard)(void *))
{
    struct source_call *sc = xcalloc(1, sizeof(*sc));
    sc->c = call_new(sj, cb, arg, discard, NULL, 0);
    sc->out = out;
    sc->key = xstrdup(key);
    memset(out, 0, sizeof(*out));
    struct store_args a;
    store_args_init(&a);
    store_args_add(&a, "TYPE");
    store_args_add(&a, key);
    store_cmds_send(sj->sc, STORE_CMD_HOLD, on_type, sc, source_discard, &a, NULL);
}

struct page_call {
    struct call *c;
    struct store_page *out;
    enum store_source kind;
    long count;
};

static void page_discard(void *arg)
{
    struct page_call *pc = arg;
    call_discard(pc->c);
    free(pc);
}

/* The items of a page, or NULL when the reply has not the shape of its
 * command's (SSCAN/ZSCAN: [cursor, [items]], ZSCAN's items in member,
 * score pairs; LRANGE: [items]); items are all strings. */
static const redisReply *page_items(const struct page_call *pc, const redisReply *r)
{
    const redisReply *items = r;
    if (pc->kind != STORE_SRC_LIST) {
        if (r->type != REDIS_REPLY_ARRAY || r->elements != 2 || r->element[0]->type != REDIS_REPLY_STRING ||
            r->element[0]->len >= sizeof(pc->out->cursor))
            return NULL;
        items = r->element[1];
    }
    if (items->type != REDIS_REPLY_ARRAY || (pc->kind == STORE_SRC_ZSET && items->elements % 2)) return NULL;
    for (size_t i = 0; i < items->elements; i++)
        if (items->element[i]->type != REDIS_REPLY_STRING) return NULL;
    return items;
}

static void on_page(redisReply *r, enum store_error err, const char *text, void *arg)
{
    struct page_call *pc = arg;
    const redisReply *items = r ? page_items(pc, r) : NULL;
    if (call_ended(pc->c, r, err, text, !items)) {
        free(pc);
        return;
    }
    struct store_page *out = pc->out;
    if (pc->kind == STORE_SRC_LIST) {
        out->done = (long)items->elements < pc->count;
    } else {
        herald_copy(out->cursor, sizeof(out->cursor), r->element[0]->str);
        out->done = strcmp(out->cursor, "0") == 0;
    }
    size_t step = pc->kind == STORE_SRC_ZSET ? 2 : 1; /* ZSCAN returns member, score */
    out->n = items->elements / step;
    out->ids = xcalloc(out->n ? out->n : 1, sizeof(char *));
    for (size_t i = 0; i < out->n; i++) out->ids[i] = xstrndup(items->element[i * step]->str, items->element[i * step]->len);
    call_done(pc->c, STORE_JOB_OK, STORE_E_COUNT, NULL);
    free(pc);
}

void store_job_source_page(struct store_job *sj, enum store_source kind, const char *key, const char *cursor,
                           long pos, long count, struct store_page *out, store_job_cb cb, void *arg,
                           void (*discard)(void *))
{
    struct page_call *pc = xcalloc(1, sizeof(*pc));
    pc->c = call_new(sj, cb, arg, discard, NULL, 0);
    pc->out = out;
    pc->kind = kind;
    pc->count = count;
    memset(out, 0, sizeof(*out));
    struct store_args a;
    store_args_init(&a);
    if (kind == STORE_SRC_LIST) {
        store_args_add(&a, "LRANGE");
        store_args_add(&a, key);
        store_args_addll(&a, pos);
        store_args_addll(&a, pos + count - 1);
    } else {
        store_args_add(&a, kind == STORE_SRC_ZSET ? "ZSCAN" : "SSCAN");
        store_args_add(&a, key);
        store_args_add(&a, cursor);
        store_args_add(&a, "COUNT");
        store_args_addll(&a, count);
    }
    store_cmds_send(sj->sc, STORE_CMD_HOLD, on_page, pc, page_discard, &a, NULL);
}

/* ---- a job's state, parking and acknowledgement ----------------------- */

static void on_landed(redisReply *r, enum store_error err, const char *text, void *arg)
{
    (void)r;
    (void)err;
    (void)text;
    (void)arg;
}

static void state_field(char *field, size_t len, const char *what, const char *entry)
{
    herald_copy(field, len, what);
    size_t n = strlen(field);
    herald_copy(field + n, len - n, entry);
}

void store_job_state(struct store_job *sj, const char *campaign, const char *entry, const char *state)
{
    char field[96];
    state_field(field, sizeof(field), "state:", entry);
    store_key_campaign(&sj->key, sj->cfg->prefix, campaign);
    STORE_SEND(sj->sc, 0, on_landed, NULL, "HSET", sj->key.buf, field, state);
}

void store_job_state_del(struct store_job *sj, const char *campaign, const char *entry)
{
    char field[96];
    state_field(field, sizeof(field), "state:", entry);
    store_key_campaign(&sj->key, sj->cfg->prefix, campaign);
    STORE_SEND(sj->sc, 0, on_landed, NULL, "HDEL", sj->key.buf, field);
}

void store_job_total(struct store_job *sj, const char *campaign, const char *entry, long long total)
{
    char field[96], n[HERALD_LL_CHARS];
    state_field(field, sizeof(field), "total:", entry);
    herald_lltoa(n, total);
    store_key_campaign(&sj->key, sj->cfg->prefix, campaign);
    STORE_SEND(sj->sc, 0, on_landed, NULL, "HSET", sj->key.buf, field, n);
}

/* A chain of writes, each sent once the one before it landed, then cb. */
struct chain {
    struct call *c;
    struct store_args next[2]; /* what to send after the current one */
    size_t nnext, at;
};

static void chain_discard(void *arg)
{
    struct chain *ch = arg;
    for (size_t i = ch->at; i < ch->nnext; i++) store_args_free(&ch->next[i]);
    call_discard(ch->c);
    free(ch);
}

static void on_chain(redisReply *r, enum store_error err, const char *text, void *arg)
{
    struct chain *ch = arg;
    (void)r;
    (void)err;
    (void)text;
    if (ch->at < ch->nnext) {
        struct store_args *a = &ch->next[ch->at++];
        store_cmds_send(ch->c->sj->sc, 0, on_chain, ch, chain_discard, a, NULL);
        store_args_free(a);
        return;
    }
    call_done(ch->c, STORE_JOB_OK, STORE_E_COUNT, NULL);
    free(ch);
}

/* Sends first, then each of the next ones in turn (taking them all). */
static void chain_start(struct store_job *sj, store_job_cb cb, void *arg, struct store_args *first,
                        struct store_args *next, size_t nnext)
{
    struct chain *ch = xcalloc(1, sizeof(*ch));
    ch->c = call_new(sj, cb, arg, NULL, NULL, 0);
    for (size_t i = 0; i < nnext; i++) ch->next[i] = next[i];
    ch->nnext = nnext;
    store_cmds_send(sj->sc, 0, on_chain, ch, chain_discard, first, NULL);
}

static void ack_args(struct store_args *a, const struct store_job *sj, const char *entry)
{
    args_of(a, (const char *const[]){"XACK", sj->k_jobs.buf, STORE_GROUP, entry, NULL});
}

static void state_args(struct store_args *a, struct store_job *sj, const char *campaign, const char *entry,
                       const char *state)
{
    char field[96];
    state_field(field, sizeof(field), "state:", entry);
    store_key_campaign(&sj->key, sj->cfg->prefix, campaign);
    args_of(a, (const char *const[]){"HSET", sj->key.buf, field, state, NULL});
}

static void park_args(struct store_args *a, struct store_job *sj, int64_t when, const char *from, const char *text)
{
    char score[HERALD_LL_CHARS];
    herald_lltoa(score, (long long)when);
    strbuf_reset(&sj->key);
    strbuf_adds(&sj->key, from);
    strbuf_add(&sj->key, "\n", 1);
    strbuf_adds(&sj->key, text);
    args_of(a, (const char *const[]){"ZADD", sj->k_scheduled.buf, score, sj->key.buf, NULL});
}

/* A cluster's job_finished: the run's per-node counters read first (again
 * when the script asks: another entry of the run finished meanwhile). */
struct finished_call {
    struct call *c;
    char *campaign, *entry;
    int64_t expires_at;
};

static void finished_call_free(struct finished_call *fc)
{
    if (!fc) return;
    free(fc->campaign);
    free(fc->entry);
    free(fc);
}

static void finished_counts_read(struct finished_call *fc);

static void on_job_finished(redisReply *r, enum store_error err, const char *text, void *arg)
{
    struct finished_call *fc = arg;
    struct call *c = fc->c;
    if (call_ended(c, r, err, text, r && r->type != REDIS_REPLY_INTEGER)) {
        finished_call_free(fc);
        return;
    }
    if (r->integer == 2 && fc->campaign) { /* its counters were read too early */
        finished_counts_read(fc);
        return;
    }
    finished_call_free(fc);
    call_done(c, STORE_JOB_OK, STORE_E_COUNT, NULL);
}

static void on_job_finished_discard(void *arg)
{
    struct finished_call *fc = arg;
    call_discard(fc->c);
    finished_call_free(fc);
}

/* job_finished.lua's command, counts (a cluster's per-node sums) after its
 * own arguments; run the finishing run, whose handed log and erased set go
 * with its entry (NULL on a cluster: it has neither). */
static void job_finished_send(struct store_job *sj, struct finished_call *fc, const char *campaign, const char *entry,
                              const char *run, int64_t expires_at, const struct store_node_counts *counts)
{
    struct store_args a;
    store_args_script(&a, store_lua_job_finished, run && run[0] ? 6 : 4);
    store_key_campaign(&sj->key, sj->cfg->prefix, campaign);
    store_args_route(&a, sj->key.buf, sj->key.len);
    add_buf(&a, &sj->key);
    add_buf(&a, &sj->k_jobs);
    add_buf(&a, &sj->k_events);
    store_key_retention(&sj->key, sj->cfg->prefix);
    add_buf(&a, &sj->key);
    if (run && run[0]) {
        store_key_handed(&sj->key, sj->cfg->prefix, run);
        add_buf(&a, &sj->key);
        store_key_erased(&sj->key, sj->cfg->prefix, run);
        add_buf(&a, &sj->key);
    }
    store_args_add(&a, STORE_GROUP);
    store_args_add(&a, entry);
    store_args_add(&a, campaign);
    char at[32];
    herald_time_format(time(NULL), at, sizeof(at));
    store_args_add(&a, at);
    store_args_add(&a, sj->audit_maxlen);
    store_args_addll(&a, (long long)store_job_records_end(sj, expires_at));
    if (counts) store_args_addll(&a, counts->dones);
    else store_args_add(&a, "");
    for (size_t i = 0; counts && i < counts->n; i++) {
        store_args_add(&a, counts->field[i]);
        store_args_addll(&a, counts->value[i]);
    }
    /* Must land: retried until Redis takes it. */
    store_cmds_send(sj->sc, 0, on_job_finished, fc, on_job_finished_discard, &a, store_lua_job_finished);
}

static void on_finished_counts(const struct store_node_counts *counts, enum store_error err, const char *text,
                               void *arg)
{
    struct finished_call *fc = arg;
    (void)err;
    (void)text;
    /* Read with flags 0 (retried until answered): counts is never NULL. */
    job_finished_send(fc->c->sj, fc, fc->campaign, fc->entry, NULL, fc->expires_at, counts);
}

static void finished_counts_read(struct finished_call *fc)
{
    struct store_job *sj = fc->c->sj;
    store_node_counts_read(sj->sc, sj->cfg->prefix, fc->campaign, 0, on_finished_counts, fc);
}

void store_job_finished(struct store_job *sj, const char *campaign, const char *entry, const char *run,
                        int64_t expires_at, store_job_cb cb, void *arg)
{
    struct finished_call *fc = xcalloc(1, sizeof(*fc));
    fc->c = call_new(sj, cb, arg, NULL, NULL, 0);
    if (!sj_cluster(sj)) {
        job_finished_send(sj, fc, campaign, entry, run, expires_at, NULL);
        return;
    }
    sj_nodes_entry_done(sj, entry);
    fc->campaign = xstrdup(campaign);
    fc->entry = xstrdup(entry);
    fc->expires_at = expires_at;
    finished_counts_read(fc);
}

void store_job_started(struct store_job *sj, const char *campaign, const char *entry, bool first)
{
    char at[32];
    herald_time_format(time(NULL), at, sizeof(at));
    struct store_args a;
    store_args_script(&a, store_lua_job_started, 2);
    store_key_campaign(&sj->key, sj->cfg->prefix, campaign);
    add_buf(&a, &sj->key);
    add_buf(&a, &sj->k_events);
    store_args_add(&a, campaign);
    store_args_add(&a, entry);
    store_args_add(&a, at);
    store_args_add(&a, sj->audit_maxlen);
    store_args_add(&a, first ? "1" : "0");
    store_cmds_send(sj->sc, 0, on_landed, NULL, NULL, &a, store_lua_job_started);
}

void store_job_event(struct store_job *sj, const char *campaign, const char *entry, const char *event,
                     const char *error)
{
    char at[32];
    herald_time_format(time(NULL), at, sizeof(at));
    struct store_args a;
    if (error)
        args_of(&a, (const char *const[]){"XADD", sj->k_events.buf, "MAXLEN", "~", sj->audit_maxlen, "*", "event",
                                          event, "campaign", campaign, "entry", entry, "at", at, "error", error,
                                          NULL});
    else
        args_of(&a, (const char *const[]){"XADD", sj->k_events.buf, "MAXLEN", "~", sj->audit_maxlen, "*", "event",
                                          event, "campaign", campaign, "entry", entry, "at", at, NULL});
    store_cmds_send(sj->sc, 0, on_landed, NULL, NULL, &a, NULL);
}

static void on_dead_letter(redisReply *r, enum store_error err, const char *text, void *arg)
{
    (void)r;
    (void)err;
    (void)text;
    call_done(arg, STORE_JOB_OK, STORE_E_COUNT, NULL);
}

/* One script, so that the dead letter copies every field of the entry
 * (whatever its name: dead_letter.lua) and the acknowledgement lands with it. */
void store_job_dead_letter(struct store_job *sj, const char *entry, const char *text, const char *error,
                           store_job_cb cb, void *arg)
{
    if (sj_cluster(sj)) sj_nodes_entry_done(sj, entry);
    struct call *c = call_new(sj, cb, arg, NULL, NULL, 0);
    struct store_args a;
    store_args_script(&a, store_lua_dead_letter, 2);
    add_buf(&a, &sj->k_jobs);
    add_buf(&a, &sj->k_dead);
    store_args_add(&a, STORE_GROUP);
    store_args_add(&a, entry);
    store_args_add(&a, error);
    store_args_add(&a, text ? text : "");
    store_cmds_send(sj->sc, 0, on_dead_letter, c, call_discard, &a, store_lua_dead_letter);
}

void store_job_park(struct store_job *sj, int64_t when, const char *from, const char *text, store_job_cb cb,
                    void *arg)
{
    struct store_args first;
    park_args(&first, sj, when, from, text);
    chain_start(sj, cb, arg, &first, NULL, 0);
}

void store_job_schedule(struct store_job *sj, const char *campaign, const char *entry, int64_t when,
                        const char *from, const char *text, store_job_cb cb, void *arg)
{
    if (sj_cluster(sj)) sj_nodes_entry_done(sj, entry);
    struct store_args first, next[2];
    park_args(&first, sj, when, from, text);
    state_args(&next[0], sj, campaign, entry, "scheduled");
    ack_args(&next[1], sj, entry);
    chain_start(sj, cb, arg, &first, next, 2);
}

void store_job_ack(struct store_job *sj, const char *entry)
{
    if (sj_cluster(sj)) sj_nodes_entry_done(sj, entry);
    STORE_SEND(sj->sc, 0, on_landed, NULL, "XACK", sj->k_jobs.buf, STORE_GROUP, entry);
}

struct count_call {
    struct call *c;
    long long *moved;
    bool *absent;
    char *layout; /* marker: 8 bytes */
};

static void count_discard(void *arg)
{
    struct count_call *cc = arg;
    call_discard(cc->c);
    free(cc);
}

static void on_moved(redisReply *r, enum store_error err, const char *text, void *arg)
{
    struct count_call *cc = arg;
    if (!call_ended(cc->c, r, err, text, r && r->type != REDIS_REPLY_INTEGER)) {
        *cc->moved = r->integer;
        call_done(cc->c, STORE_JOB_OK, STORE_E_COUNT, NULL);
    }
    free(cc);
}

void store_job_release_due(struct store_job *sj, int64_t now, int max, long long *moved, store_job_cb cb,
                           void *arg)
{
    struct count_call *cc = xcalloc(1, sizeof(*cc));
    cc->c = call_new(sj, cb, arg, NULL, NULL, 0);
    cc->moved = moved;
    *moved = 0;
    struct store_args a;
    store_args_script(&a, store_lua_release_due, 2);
    store_args_add(&a, sj->k_scheduled.buf);
    store_args_add(&a, sj->k_jobs.buf);
    store_args_addll(&a, now);
    store_args_addll(&a, max);
    store_cmds_send(sj->sc, 0, on_moved, cc, count_discard, &a, store_lua_release_due);
}

struct control_call {
    struct call *c;
    enum store_control *out;
};

static void control_discard(void *arg)
{
    struct control_call *cc = arg;
    call_discard(cc->c);
    free(cc);
}

static void on_control(redisReply *r, enum store_error err, const char *text, void *arg)
{
    struct control_call *cc = arg;
    /* HMGET control records */
    bool bad = r && !(r->type == REDIS_REPLY_ARRAY && r->elements == 2);
    if (!call_ended(cc->c, r, err, text, bad)) {
        const redisReply *ctl = r->element[0], *recs = r->element[1];
        *cc->out = STORE_CONTROL_NONE;
        if (ctl->type == REDIS_REPLY_STRING && strcmp(ctl->str, "paused") == 0) *cc->out = STORE_CONTROL_PAUSED;
        else if (ctl->type == REDIS_REPLY_STRING && strcmp(ctl->str, "cancelled") == 0) *cc->out = STORE_CONTROL_CANCELLED;
        if (recs->type == REDIS_REPLY_STRING && strncmp(recs->str, "expired", 7) == 0) *cc->out = STORE_CONTROL_EXPIRED;
        call_done(cc->c, STORE_JOB_OK, STORE_E_COUNT, NULL);
    }
    free(cc);
}

void store_job_control(struct store_job *sj, const char *campaign, enum store_control *out, store_job_cb cb,
                       void *arg)
{
    struct control_call *cc = xcalloc(1, sizeof(*cc));
    cc->c = call_new(sj, cb, arg, NULL, NULL, 0);
    cc->out = out;
    *out = STORE_CONTROL_NONE;
    store_key_campaign(&sj->key, sj->cfg->prefix, campaign);
    struct store_args a;
    args_of(&a, (const char *const[]){"HMGET", sj->key.buf, "control", "records", NULL});
    /* A refusal for good (an ACL denial) holds the run: nothing is decided from it. */
    store_cmds_send(sj->sc, STORE_CMD_HOLD, on_control, cc, control_discard, &a, NULL);
    store_args_free(&a);
}

struct register_call {
    struct call *c;
    struct store_enqueue_result *out;
};

static void register_discard(void *arg)
{
    struct register_call *rc = arg;
    call_discard(rc->c);
    free(rc);
}

static void on_register(redisReply *r, enum store_error err, const char *text, void *arg)
{
    struct register_call *rc = arg;
    bool bad = r && store_enqueue_result_of(r, rc->out) < 0;
    if (!call_ended(rc->c, r, err, text, bad)) call_done(rc->c, STORE_JOB_OK, STORE_E_COUNT, NULL);
    free(rc);
}

void store_job_register(struct store_job *sj, const struct store_enqueue *e, struct store_enqueue_result *out,
                        store_job_cb cb, void *arg)
{
    struct register_call *rc = xcalloc(1, sizeof(*rc));
    rc->c = call_new(sj, cb, arg, NULL, NULL, 0);
    rc->out = out;
    memset(out, 0, sizeof(*out));
    struct store_args a;
    store_enqueue_args(&a, sj->cfg->prefix, e);
    store_cmds_send(sj->sc, STORE_CMD_HOLD, on_register, rc, register_discard, &a, store_lua_campaign_enqueue);
    store_args_free(&a);
}

void store_job_pause_park(struct store_job *sj, const char *campaign, const char *entry, const char *from,
                          const char *text, store_job_cb cb, void *arg)
{
    if (sj_cluster(sj)) sj_nodes_entry_done(sj, entry);
    struct store_args first, next[2];
    strbuf_reset(&sj->key);
    strbuf_adds(&sj->key, from);
    strbuf_add(&sj->key, "\n", 1);
    strbuf_adds(&sj->key, text);
    struct strbuf kp;
    strbuf_init(&kp);
    store_key_campaign_paused(&kp, sj->cfg->prefix, campaign);
    args_of(&first, (const char *const[]){"HSET", kp.buf, entry, sj->key.buf, NULL});
    strbuf_free(&kp);
    state_args(&next[0], sj, campaign, entry, "paused");
    ack_args(&next[1], sj, entry);
    chain_start(sj, cb, arg, &first, next, 2);
}

static void on_marker(redisReply *r, enum store_error err, const char *text, void *arg)
{
    struct count_call *cc = arg;
    /* {1|0 the marker was absent, the layout found} */
    bool bad = !r || r->type != REDIS_REPLY_ARRAY || r->elements != 2 ||
               r->element[0]->type != REDIS_REPLY_INTEGER || r->element[1]->type != REDIS_REPLY_STRING ||
               r->element[1]->len >= 8;
    if (!call_ended(cc->c, r, err, text, bad)) {
        *cc->absent = r->element[0]->integer == 1;
        memcpy(cc->layout, r->element[1]->str, r->element[1]->len + 1);
        call_done(cc->c, STORE_JOB_OK, STORE_E_COUNT, NULL);
    }
    free(cc);
}

void store_job_marker(struct store_job *sj, bool *was_absent, char layout[8], store_job_cb cb, void *arg)
{
    struct count_call *cc = xcalloc(1, sizeof(*cc));
    cc->c = call_new(sj, cb, arg, NULL, NULL, 0);
    cc->absent = was_absent;
    cc->layout = layout;
    char now[HERALD_LL_CHARS];
    herald_lltoa(now, (long long)time(NULL));
    struct store_args a;
    store_args_script(&a, store_lua_marker, 3);
    add_buf(&a, &sj->k_marker);
    add_buf(&a, &sj->k_layout);
    add_buf(&a, &sj->k_audit);
    store_args_add(&a, now);
    store_args_add(&a, STORE_LAYOUT);
    store_cmds_send(sj->sc, 0, on_marker, cc, count_discard, &a, store_lua_marker);
}

struct lock_call {
    struct call *c;
    char *holder;
};

static void lock_discard(void *arg)
{
    struct lock_call *lc = arg;
    call_discard(lc->c);
    free(lc);
}

static void on_lock(redisReply *r, enum store_error err, const char *text, void *arg)
{
    struct lock_call *lc = arg;
    /* {'ok'} or {'held', value} */
    bool ok = r && r->type == REDIS_REPLY_ARRAY && r->elements >= 1 && r->element[0]->type == REDIS_REPLY_STRING &&
              (strcmp(r->element[0]->str, "ok") == 0 ||
               (strcmp(r->element[0]->str, "held") == 0 && r->elements == 2 &&
                r->element[1]->type == REDIS_REPLY_STRING));
    if (!call_ended(lc->c, r, err, text, !ok)) {
        lc->holder[0] = '\0';
        if (strcmp(r->element[0]->str, "held") == 0)
            herald_copy(lc->holder, HERALD_LOCK_VALUE_MAX, r->element[1]->str[0] ? r->element[1]->str : "?");
        call_done(lc->c, STORE_JOB_OK, STORE_E_COUNT, NULL);
    }
    free(lc);
}

void store_job_consumer_lock(struct store_job *sj, enum store_lock_action action, const char *value,
                             int64_t ttl_ms, const char *dead, char *holder, store_job_cb cb, void *arg)
{
    static const char *const actions[] = {"take", "renew", "release"};
    struct lock_call *lc = xcalloc(1, sizeof(*lc));
    lc->c = call_new(sj, cb, arg, NULL, NULL, 0);
    lc->holder = holder;
    holder[0] = '\0';
    struct store_args a;
    store_args_script(&a, store_lua_consumer_lock, 1);
    store_key_consumer(&sj->key, sj->cfg->prefix, sj->consumer);
    add_buf(&a, &sj->key);
    store_args_add(&a, actions[action]);
    store_args_add(&a, value);
    store_args_addll(&a, (long long)ttl_ms);
    store_args_add(&a, dead ? dead : "");
    /* Held: a refusal for good (an ACL denial) goes to the caller, which
     * then reads no job (never guessing that the name is free). */
    store_cmds_send(sj->sc, STORE_CMD_HOLD, on_lock, lc, lock_discard, &a, store_lua_consumer_lock);
}

/* ---- reading the job stream -------------------------------------------- */

struct read_call {
    store_read_cb cb;
    void *arg;
    enum store_read_mode mode;
};

static void read_done(struct read_call *rc, enum store_read_status st, const char *id, const char *job,
                      size_t job_len, const char *held_from, enum store_error err, const char *text)
{
    struct store_read_result res = {.status = st, .id = id, .job = job, .job_len = job_len,
                                    .held_from = held_from, .err = err, .text = text};
    store_read_cb cb = rc->cb;
    void *arg = rc->arg;
    free(rc);
    cb(&res, arg);
}

/* entries: array of [id, [field, value, ...]] (fields nil: deleted). */
static void read_entry(struct read_call *rc, const redisReply *entries)
{
    if (!entries || entries->type != REDIS_REPLY_ARRAY) {
        read_done(rc, STORE_READ_FAILED, NULL, NULL, 0, NULL, STORE_E_REPLY, "unexpected reply");
        return;
    }
    if (entries->elements == 0) {
        read_done(rc, STORE_READ_NONE, NULL, NULL, 0, NULL, STORE_E_COUNT, NULL);
        return;
    }
    const redisReply *e = entries->element[0];
    if (e->type != REDIS_REPLY_ARRAY || e->elements < 2 || e->element[0]->type != REDIS_REPLY_STRING ||
        e->element[0]->len >= 64) {
        read_done(rc, STORE_READ_FAILED, NULL, NULL, 0, NULL, STORE_E_REPLY, "unexpected reply");
        return;
    }
    const char *id = e->element[0]->str;
    const redisReply *fields = e->element[1];
    if (fields->type != REDIS_REPLY_ARRAY) {
        read_done(rc, STORE_READ_DELETED, id, NULL, 0, NULL, STORE_E_COUNT, NULL);
        return;
    }
    const char *job = NULL, *held_from = NULL;
    size_t len = 0;
    for (size_t i = 0; i + 1 < fields->elements; i += 2) {
        const redisReply *f = fields->element[i], *v = fields->element[i + 1];
        if (f->type != REDIS_REPLY_STRING || v->type != REDIS_REPLY_STRING) continue;
        if (strcmp(f->str, "job") == 0) {
            job = v->str;
            len = v->len;
        } else if (strcmp(f->str, "held_from") == 0) {
            held_from = v->str;
        }
    }
    read_done(rc, STORE_READ_ENTRY, id, job, len, held_from, STORE_E_COUNT, NULL);
}

static void on_read(struct rconn *c, redisReply *r, void *priv)
{
    struct read_call *rc = priv;
    (void)c;
    if (!r) {
        read_done(rc, STORE_READ_CLOSED, NULL, NULL, 0, NULL, STORE_E_CONNECTION, "connection lost");
        return;
    }
    if (r->type == REDIS_REPLY_ERROR) {
        if (rc->mode == STORE_READ_GROUP && strncmp(r->str, "BUSYGROUP", 9) == 0) {
            read_done(rc, STORE_READ_NONE, NULL, NULL, 0, NULL, STORE_E_COUNT, NULL);
            return;
        }
        enum store_error err = store_error_classify(r->str);
        read_done(rc, err == STORE_E_NOGROUP ? STORE_READ_NOGROUP : STORE_READ_FAILED, NULL, NULL, 0, NULL, err,
                  r->str);
        return;
    }
    switch (rc->mode) {
    case STORE_READ_GROUP:
        read_done(rc, STORE_READ_NONE, NULL, NULL, 0, NULL, STORE_E_COUNT, NULL);
        return;
    case STORE_READ_CLAIM: /* XAUTOCLAIM: [next cursor, [entries], [deleted ids]] */
        read_entry(rc, r->type == REDIS_REPLY_ARRAY && r->elements >= 2 ? r->element[1] : NULL);
        return;
    case STORE_READ_OWN:
    case STORE_READ_NEW: /* XREADGROUP: [[stream, [entries]]], or nil: nothing new */
        if (r->type == REDIS_REPLY_NIL) {
            read_done(rc, STORE_READ_NONE, NULL, NULL, 0, NULL, STORE_E_COUNT, NULL);
            return;
        }
        if (r->type != REDIS_REPLY_ARRAY || r->elements != 1 || r->element[0]->type != REDIS_REPLY_ARRAY ||
            r->element[0]->elements != 2) {
            read_entry(rc, NULL);
            return;
        }
        read_entry(rc, r->element[0]->element[1]);
        return;
    }
}

int store_job_read(struct store_job *sj, struct rconn *jobs, enum store_read_mode mode, const char *after,
                   int64_t block_ms, int64_t claim_idle_ms, store_read_cb cb, void *arg)
{
    struct read_call *rc = xcalloc(1, sizeof(*rc));
    rc->cb = cb;
    rc->arg = arg;
    rc->mode = mode;
    char num[HERALD_LL_CHARS];
    struct store_args a;
    store_args_init(&a);
    switch (mode) {
    case STORE_READ_GROUP:
        /* From the start of the stream: jobs added before the group existed count. */
        args_of(&a, (const char *const[]){"XGROUP", "CREATE", sj->k_jobs.buf, STORE_GROUP, "0", "MKSTREAM", NULL});
        break;
    case STORE_READ_OWN:
        args_of(&a, (const char *const[]){"XREADGROUP", "GROUP", STORE_GROUP, sj->consumer, "COUNT", "1",
                                          "STREAMS", sj->k_jobs.buf, after && *after ? after : "0", NULL});
        break;
    case STORE_READ_NEW:
        herald_lltoa(num, (long long)block_ms);
        args_of(&a, (const char *const[]){"XREADGROUP", "GROUP", STORE_GROUP, sj->consumer, "COUNT", "1", "BLOCK",
                                          num, "STREAMS", sj->k_jobs.buf, ">", NULL});
        break;
    case STORE_READ_CLAIM:
        herald_lltoa(num, (long long)claim_idle_ms);
        args_of(&a, (const char *const[]){"XAUTOCLAIM", sj->k_jobs.buf, STORE_GROUP, sj->consumer, num, "0-0",
                                          "COUNT", "1", NULL});
        break;
    }
    /* The array's header goes in the room store_args leaves in front. */
    char head[RCONN_RESP_HEAD_MAX];
    size_t hlen = (size_t)(rconn_resp_head(head, '*', a.n) - head);
    char *resp = a.data.buf + STORE_ARGS_HEAD - hlen;
    memcpy(resp, head, hlen);
    int r = rconn_command_resp(jobs, on_read, rc, resp, a.data.len - (STORE_ARGS_HEAD - hlen));
    store_args_free(&a);
    if (r < 0) free(rc);
    return r;
}

void store_outcomes_get(const struct store_outcomes *o, size_t i, struct store_outcome *out, struct strbuf *scratch)
{
    /* Outcome i's values, its kind's, then its 2 extra ones ("" when its
     * kind says none), copied NUL-separated. */
    enum { OWN = STORE_OUTCOME_ARGS, KIND = OWN + STORE_OUTCOME_KIND_ARGS, ALL = KIND + STORE_OUTCOME_EXTRA_ARGS };
    size_t at[ALL];
    strbuf_reset(scratch);
    for (size_t j = 0; j < ALL; j++) {
        const char *s = "";
        size_t len = 0;
        if (j < OWN) {
            sj_args_value(&o->args, o->off[2 * i + 1], j, &s, &len);
        } else if (j < KIND) {
            size_t kind = (size_t)strtoull(scratch->buf + at[SJO_KIND], NULL, 10);
            sj_args_value(&o->kinds, kind ? o->kind_off[kind - 1] : 0, j - OWN, &s, &len);
        } else if (strchr(scratch->buf + at[OWN + SJK_FLAGS], 'x')) {
            sj_args_value(&o->args, o->off[2 * i + 1], SJO_UNSEND + (j - KIND), &s, &len);
        }
        at[j] = scratch->len;
        strbuf_add(scratch, s, len);
        strbuf_add(scratch, "", 1);
    }
    const char *v[ALL];
    for (size_t j = 0; j < ALL; j++) v[j] = scratch->buf + at[j];
    const char *const *k = v + OWN, *const *x = v + KIND;
    *out = (struct store_outcome){
        .id = v[SJO_ID], .record = k[SJK_RECORD], .unsend = x[SJO_UNSEND - OWN], .history = k[SJK_HISTORY],
        .channel = k[SJK_CHANNEL], .outcome = k[SJK_OUTCOME], .reason = k[SJK_REASON], .provider = k[SJK_PROVIDER],
        .provider_id = v[SJO_PROVIDER_ID], .at = k[SJK_AT],
        .reserved = strchr(k[SJK_FLAGS], 'r') != NULL, .was_deferred = strchr(k[SJK_FLAGS], 'd') != NULL,
        .once = strchr(k[SJK_FLAGS], 'n') != NULL,
        .requests = k[SJK_REQUESTS][0] ? (int)strtol(k[SJK_REQUESTS], NULL, 10) : -1,
        .pid_key = x[SJO_PID_KEY - OWN][0] != '\0', .locale = k[SJK_LOCALE], .slot = v[SJO_SLOT],
    };
}

/* ---- the table ----------------------------------------------------------- */

void store_job_set_conns(struct store_job *sj, struct rconn *jobs, struct rconn *data)
{
    sj->jobs = jobs;
    sj->data = data;
}

static bool t_ready(void *s, bool jobs)
{
    struct store_job *sj = s;
    return rconn_ready(jobs ? sj->jobs : sj->data);
}
static void t_connected(void *s) { store_cmds_connected(((struct store_job *)s)->sc); }
static bool t_idle(void *s) { return store_cmds_idle(((struct store_job *)s)->sc); }
static void t_status(void *s, struct store_cmds_status *out) { store_cmds_status(((struct store_job *)s)->sc, out); }
static int t_read(void *s, enum store_read_mode mode, const char *after, int64_t block_ms, int64_t claim_idle_ms,
                  store_read_cb cb, void *arg)
{
    struct store_job *sj = s;
    return store_job_read(sj, sj->jobs, mode, after, block_ms, claim_idle_ms, cb, arg);
}

/* The table's entries take a void *: each passes it on to its typed call. */
static void t_lookup(void *s, const char *campaign, unsigned channels, struct store_job_person *const *rows, size_t n,
                     store_job_cb cb, void *arg, void (*discard)(void *))
{
    store_job_lookup(s, campaign, channels, rows, n, cb, arg, discard);
}
static void t_suppressed(void *s, const unsigned char *const *members, bool (*const *out)[HERALD_CH_COUNT],
                         size_t n, store_job_cb cb, void *arg, void (*discard)(void *))
{
    store_job_suppressed(s, members, out, n, cb, arg, discard);
}
static void t_reserve(void *s, const char *entry, int64_t now, const char *campaign, const char *topic,
                      struct store_job_reservation *const *items, size_t n, store_job_cb cb, void *arg,
                      void (*discard)(void *))
{
    store_job_reserve(s, entry, now, campaign, topic, items, n, cb, arg, discard);
}
static void t_finish(void *s, const char *entry, const char *campaign, const char *rec_entry,
                     struct store_outcomes *o, struct store_job_handoff *const *hand, size_t nhand, store_job_cb cb,
                     void *arg, void (*discard)(void *))
{
    store_job_finish(s, entry, campaign, rec_entry, o, hand, nhand, cb, arg, discard);
}
static void t_release(void *s, const char *entry, const char *campaign, const char *id, const char *record,
                      const char *member, store_job_cb cb, void *arg, void (*discard)(void *))
{
    store_job_release(s, entry, campaign, id, record, member, cb, arg, discard);
}
static void t_heartbeat(void *s, const char *entry, store_job_cb cb, void *arg, void (*discard)(void *))
{
    store_job_heartbeat(s, entry, cb, arg, discard);
}
static void t_source_open(void *s, const char *key, struct store_source_info *out, store_job_cb cb, void *arg,
                          void (*discard)(void *))
{
    store_job_source_open(s, key, out, cb, arg, discard);
}
static void t_source_page(void *s, enum store_source kind, const char *key, const char *cursor, long pos,
                          long count, struct store_page *out, store_job_cb cb, void *arg, void (*discard)(void *))
{
    store_job_source_page(s, kind, key, cursor, pos, count, out, cb, arg, discard);
}
static void t_state(void *s, const char *campaign, const char *entry, const char *state)
{
    store_job_state(s, campaign, entry, state);
}
static void t_state_del(void *s, const char *campaign, const char *entry) { store_job_state_del(s, campaign, entry); }
static void t_total(void *s, const char *campaign, const char *entry, long long total)
{
    store_job_total(s, campaign, entry, total);
}
static void t_finished(void *s, const char *campaign, const char *entry, const char *run, int64_t expires_at,
                       store_job_cb cb, void *arg)
{
    store_job_finished(s, campaign, entry, run, expires_at, cb, arg);
}
static void t_event(void *s, const char *campaign, const char *entry, const char *event, const char *error)
{
    store_job_event(s, campaign, entry, event, error);
}
static void t_enqueue(void *s, const struct store_enqueue *e, struct store_enqueue_result *out, store_job_cb cb,
                      void *arg)
{
    store_job_register(s, e, out, cb, arg);
}
static void t_started(void *s, const char *campaign, const char *entry, bool first)
{
    store_job_started(s, campaign, entry, first);
}
static void t_dead_letter(void *s, const char *entry, const char *text, const char *error, store_job_cb cb,
                          void *arg)
{
    store_job_dead_letter(s, entry, text, error, cb, arg);
}
static void t_park(void *s, int64_t when, const char *from, const char *text, store_job_cb cb, void *arg)
{
    store_job_park(s, when, from, text, cb, arg);
}
static void t_schedule(void *s, const char *campaign, const char *entry, int64_t when, const char *from,
                       const char *text, store_job_cb cb, void *arg)
{
    store_job_schedule(s, campaign, entry, when, from, text, cb, arg);
}
static void t_ack(void *s, const char *entry) { store_job_ack(s, entry); }
static void t_release_due(void *s, int64_t now, int max, long long *moved, store_job_cb cb, void *arg)
{
    store_job_release_due(s, now, max, moved, cb, arg);
}
static void t_marker(void *s, bool *was_absent, char layout[8], store_job_cb cb, void *arg)
{
    store_job_marker(s, was_absent, layout, cb, arg);
}
static void t_control(void *s, const char *campaign, enum store_control *out, store_job_cb cb, void *arg)
{
    store_job_control(s, campaign, out, cb, arg);
}
static void t_cut(void *s, struct store_cut *cut, store_job_cb cb, void *arg) { store_job_cut(s, cut, cb, arg); }
static void t_slice_drop(void *s, const char *key) { store_job_slice_drop(s, key); }
static void t_slice(void *s, const char *entry, const char *campaign, long long total, const char *from,
                    const char *const *texts, size_t n, store_job_cb cb, void *arg)
{
    store_job_slice(s, entry, campaign, total, from, texts, n, cb, arg);
}

static void t_pause_park(void *s, const char *campaign, const char *entry, const char *from, const char *text,
                         store_job_cb cb, void *arg)
{
    store_job_pause_park(s, campaign, entry, from, text, cb, arg);
}
static void t_consumer_lock(void *s, enum store_lock_action action, const char *value, int64_t ttl_ms,
                            const char *dead, char *holder, store_job_cb cb, void *arg)
{
    store_job_consumer_lock(s, action, value, ttl_ms, dead, holder, cb, arg);
}

const struct store_ops store_job_ops = {
    .ready = t_ready,
    .connected = t_connected,
    .idle = t_idle,
    .status = t_status,
    .lookup = t_lookup,
    .suppressed = t_suppressed,
    .reserve = t_reserve,
    .finish = t_finish,
    .release = t_release,
    .heartbeat = t_heartbeat,
    .source_open = t_source_open,
    .source_page = t_source_page,
    .state = t_state,
    .state_del = t_state_del,
    .total = t_total,
    .finished = t_finished,
    .dead_letter = t_dead_letter,
    .park = t_park,
    .schedule = t_schedule,
    .ack = t_ack,
    .release_due = t_release_due,
    .marker = t_marker,
    .control = t_control,
    .pause_park = t_pause_park,
    .slice = t_slice,
    .cut = t_cut,
    .slice_drop = t_slice_drop,
    .consumer_lock = t_consumer_lock,
    .event = t_event,
    .started = t_started,
    .enqueue = t_enqueue,
    .read = t_read,
};
