/*
 * store_job.c - typed calls on the job pipeline's Lua scripts (store_job.h).
 *
 * Owns the KEYS/ARGV layout of lookup, reserve, handed, finish, release and
 * heartbeat (each script's header in daemon/lua is the other half) and
 * the checks of their replies. Never logs; never decides anything from a
 * reply whose shape is not the one its script promises.
 */
#include "store_job.h"

#include <stdlib.h>
#include <string.h>

struct store_job {
    struct store_cmds *sc;
    const struct config *cfg;
    char *consumer;
    struct strbuf k_jobs, k_audit, k_suppress, key;
    char audit_maxlen[24];
    char **cap_topics; /* per cap: ",a,b," or "" (every topic) */
};

struct store_job *store_job_new(struct store_cmds *sc, const struct config *cfg, const char *consumer)
{
    struct store_job *sj = xcalloc(1, sizeof(*sj));
    sj->sc = sc;
    sj->cfg = cfg;
    sj->consumer = xstrdup(consumer);
    strbuf_init(&sj->k_jobs);
    strbuf_init(&sj->k_audit);
    strbuf_init(&sj->k_suppress);
    strbuf_init(&sj->key);
    store_key_jobs(&sj->k_jobs, cfg->prefix);
    store_key_audit(&sj->k_audit, cfg->prefix);
    store_key_suppress(&sj->k_suppress, cfg->prefix);
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
    return sj;
}

void store_job_free(struct store_job *sj)
{
    if (!sj) return;
    for (size_t i = 0; i < sj->cfg->ncaps; i++) free(sj->cap_topics[i]);
    free(sj->cap_topics);
    strbuf_free(&sj->k_jobs);
    strbuf_free(&sj->k_audit);
    strbuf_free(&sj->k_suppress);
    strbuf_free(&sj->key);
    free(sj->consumer);
    free(sj);
}

/* ---- one call in flight ------------------------------------------------ */

struct call {
    struct store_job *sj;
    store_job_cb cb;
    void *arg;
    void (*discard)(void *);
    void **items; /* the caller's rows/items (pointers), copied */
    size_t n;
    bool (**out)[HERALD_CH_COUNT]; /* suppression only */
    int *index;                    /* suppression only: reply index per (i, ch), -1 */
};

static struct call *call_new(struct store_job *sj, store_job_cb cb, void *arg, void (*discard)(void *),
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
    free(c);
}

static void call_discard(void *arg)
{
    struct call *c = arg;
    if (c->discard) c->discard(c->arg);
    call_free(c);
}

static void call_done(struct call *c, enum store_job_status st, enum store_error err, const char *text)
{
    struct store_job_result res = {.status = st, .err = err, .text = text};
    store_job_cb cb = c->cb;
    void *arg = c->arg;
    call_free(c);
    cb(&res, arg);
}

/* Ends c when the reply is no answer: a permanent failure (r NULL), the
 * fence's 'lost', or (bad) a shape the script never gives. */
static bool call_ended(struct call *c, const redisReply *r, enum store_error err, const char *text, bool bad)
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

static bool is_array_of(const redisReply *r, size_t n, int type)
{
    if (!r || r->type != REDIS_REPLY_ARRAY || r->elements != n) return false;
    for (size_t i = 0; i < n; i++)
        if (r->element[i]->type != type) return false;
    return true;
}

/* A key built in a strbuf: its length is known. */
static void add_buf(struct store_args *a, const struct strbuf *sb) { store_args_addn(a, sb->buf, sb->len); }

/* The fence every writing script starts with: KEYS[1] the jobs stream,
 * ARGV[1..3] group, entry, consumer. */
static void fence_keys(struct store_args *a, const struct store_job *sj) { store_args_add(a, sj->k_jobs.buf); }

static void fence_args(struct store_args *a, const struct store_job *sj, const char *entry)
{
    store_args_add(a, STORE_GROUP);
    store_args_add(a, entry);
    store_args_add(a, sj->consumer);
}

/* ---- lookup ------------------------------------------------------------ */

static void on_lookup(redisReply *r, enum store_error err, const char *text, void *arg)
{
    struct call *c = arg;
    bool ok = r && r->type == REDIS_REPLY_ARRAY && r->elements == STORE_LOOKUP_STRIDE * c->n;
    for (size_t i = 0; ok && i < r->elements; i++)
        if (r->element[i]->type != REDIS_REPLY_STRING && r->element[i]->type != REDIS_REPLY_NIL) ok = false;
    if (call_ended(c, r, err, text, !ok)) return;
    for (size_t i = 0; i < c->n; i++) {
        struct store_job_person *p = c->items[i];
        redisReply *const *el = r->element + STORE_LOOKUP_STRIDE * i;
        char perr[256];
        p->found = store_person_from_fields((const redisReply *const *)el, p->p, perr, sizeof(perr));
        p->rev[0] = '\0';
        const redisReply *rev = el[STORE_LOOKUP_REV], *rec = el[STORE_LOOKUP_RECORD];
        if (rev->type == REDIS_REPLY_STRING) herald_copy(p->rev, sizeof(p->rev), rev->str);
        p->has_rec = false;
        strbuf_reset(p->raw_rec);
        if (rec->type == REDIS_REPLY_STRING && store_record_parse(rec->str, &p->rec) == 0) {
            p->has_rec = true;
            strbuf_add(p->raw_rec, rec->str, rec->len);
        }
    }
    call_done(c, STORE_JOB_OK, STORE_E_COUNT, NULL);
}

void store_job_lookup(struct store_job *sj, const char *campaign, struct store_job_person *const *rows, size_t n,
                      store_job_cb cb, void *arg, void (*discard)(void *))
{
    struct call *c = call_new(sj, cb, arg, discard, (void *const *)rows, n);
    struct store_args a;
    store_args_script(&a, store_lua_lookup, 2 * n);
    for (size_t i = 0; i < n; i++) {
        store_key_person(&sj->key, sj->cfg->prefix, rows[i]->id);
        add_buf(&a, &sj->key);
        store_key_campaigns(&sj->key, sj->cfg->prefix, rows[i]->id);
        add_buf(&a, &sj->key);
    }
    store_args_add(&a, campaign);
    /* The person-hash fields to read: the channel descriptors name them. */
    for (size_t i = 0; i < STORE_LOOKUP_NFIELDS; i++) store_args_add(&a, store_lookup_field(i));
    store_cmds_send(sj->sc, STORE_CMD_HOLD, on_lookup, c, call_discard, &a, store_lua_lookup);
}

/* ---- suppression ------------------------------------------------------- */

bool store_job_any_address(const char *const *addrs, size_t n)
{
    for (size_t i = 0; i < n * HERALD_CH_COUNT; i++)
        if (addrs[i]) return true;
    return false;
}

static void on_suppressed(redisReply *r, enum store_error err, const char *text, void *arg)
{
    struct call *c = arg;
    size_t want = 0;
    for (size_t i = 0; i < c->n * HERALD_CH_COUNT; i++) want += c->index[i] >= 0;
    if (call_ended(c, r, err, text, !is_array_of(r, want, REDIS_REPLY_INTEGER))) return;
    for (size_t i = 0; i < c->n; i++)
        for (int ch = 0; ch < HERALD_CH_COUNT; ch++) {
            int idx = c->index[i * HERALD_CH_COUNT + (size_t)ch];
            if (idx >= 0) (*c->out[i])[ch] = r->element[idx]->integer == 1;
        }
    call_done(c, STORE_JOB_OK, STORE_E_COUNT, NULL);
}

void store_job_suppressed(struct store_job *sj, const char *const *addrs, bool (*const *out)[HERALD_CH_COUNT],
                          size_t n, store_job_cb cb, void *arg, void (*discard)(void *))
{
    struct call *c = call_new(sj, cb, arg, discard, NULL, n);
    c->out = xmalloc((n ? n : 1) * sizeof(*c->out));
    memcpy(c->out, out, n * sizeof(*c->out));
    c->index = xmalloc((n ? n : 1) * HERALD_CH_COUNT * sizeof(*c->index));
    struct store_args a;
    store_args_init(&a);
    store_args_add(&a, "SMISMEMBER");
    add_buf(&a, &sj->k_suppress);
    for (size_t i = 0; i < n * HERALD_CH_COUNT; i++) {
        c->index[i] = -1;
        if (!addrs[i]) continue;
        store_suppress_member(&sj->key, (int)(i % HERALD_CH_COUNT), addrs[i]);
        c->index[i] = (int)a.n - 2;
        add_buf(&a, &sj->key);
    }
    store_cmds_send(sj->sc, STORE_CMD_HOLD, on_suppressed, c, call_discard, &a, NULL);
}

/* ---- reservation ------------------------------------------------------- */

static const char *const verdicts[] = {
    [SJV_OK] = "ok", [SJV_STALE] = "stale", [SJV_DUPLICATE] = "duplicate", [SJV_CAP] = "cap",
    [SJV_USER_FREQUENCY] = "user_frequency",
};

static int verdict_of(const char *s)
{
    for (size_t v = 0; v < sizeof(verdicts) / sizeof(verdicts[0]); v++)
        if (strcmp(s, verdicts[v]) == 0) return (int)v;
    return -1;
}

static void on_reserved(redisReply *r, enum store_error err, const char *text, void *arg)
{
    struct call *c = arg;
    bool ok = is_array_of(r, 2 * c->n, REDIS_REPLY_STRING);
    for (size_t i = 0; ok && i < c->n; i++) {
        int v = verdict_of(r->element[2 * i]->str);
        /* "cap" always names its cap; a detail too long for it is no reply of ours. */
        if (v < 0 || (v == SJV_CAP && !r->element[2 * i + 1]->str[0]) ||
            r->element[2 * i + 1]->len >= sizeof(((struct store_job_reservation *)0)->detail))
            ok = false;
    }
    if (call_ended(c, r, err, text, !ok)) return;
    for (size_t i = 0; i < c->n; i++) {
        struct store_job_reservation *it = c->items[i];
        it->verdict = (enum store_job_verdict)verdict_of(r->element[2 * i]->str);
        herald_copy(it->detail, sizeof(it->detail), r->element[2 * i + 1]->str);
    }
    call_done(c, STORE_JOB_OK, STORE_E_COUNT, NULL);
}

void store_job_reserve(struct store_job *sj, const char *entry, int64_t now, const char *campaign,
                       const char *topic, struct store_job_reservation *const *items, size_t n, store_job_cb cb,
                       void *arg, void (*discard)(void *))
{
    const struct config *cfg = sj->cfg;
    struct call *c = call_new(sj, cb, arg, discard, (void *const *)items, n);
    struct store_args a;
    store_args_script(&a, store_lua_reserve, 1 + 3 * n);
    fence_keys(&a, sj);
    for (size_t i = 0; i < n; i++) {
        store_key_person(&sj->key, cfg->prefix, items[i]->id);
        add_buf(&a, &sj->key);
        store_key_campaigns(&sj->key, cfg->prefix, items[i]->id);
        add_buf(&a, &sj->key);
        store_key_sends(&sj->key, cfg->prefix, items[i]->id);
        add_buf(&a, &sj->key);
    }
    fence_args(&a, sj, entry);
    store_args_addll(&a, now);
    store_args_add(&a, campaign);
    store_args_add(&a, topic);
    store_args_addll(&a, (long long)cfg->ncaps);
    for (size_t i = 0; i < cfg->ncaps; i++) {
        const struct config_cap *cap = &cfg->caps[i];
        store_args_add(&a, cap->name);
        store_args_add(&a, cap->channel < 0 ? "any" : herald_channel_name(cap->channel));
        store_args_addll(&a, cap->limit);
        store_args_addll(&a, cap->window_s);
        store_args_add(&a, sj->cap_topics[i]);
    }
    for (size_t i = 0; i < n; i++) {
        const struct store_job_reservation *it = items[i];
        const char *vals[] = {it->rev, it->record, it->prior, it->channel, it->member};
        for (size_t j = 0; j < sizeof(vals) / sizeof(vals[0]); j++) store_args_add(&a, vals[j]);
        store_args_addll(&a, it->keep);
        store_args_addll(&a, (long long)it->nfreq);
        for (size_t j = 0; j < it->nfreq; j++) {
            store_args_add(&a, it->fchan[j]);
            store_args_addll(&a, it->flim[j]);
            store_args_addll(&a, it->fwin[j]);
        }
    }
    store_cmds_send(sj->sc, STORE_CMD_HOLD, on_reserved, c, call_discard, &a, store_lua_reserve);
}

/* ---- the handoff ------------------------------------------------------- */

void store_job_handed_record(struct strbuf *out, const char *record)
{
    const char *reserved = store_rec_state_name(REC_RESERVED);
    size_t len = strlen(reserved);
    strbuf_reset(out);
    strbuf_adds(out, store_rec_state_name(REC_PENDING));
    strbuf_adds(out, strncmp(record, reserved, len) == 0 ? record + len : record);
}

static void on_handed(redisReply *r, enum store_error err, const char *text, void *arg)
{
    struct call *c = arg;
    if (call_ended(c, r, err, text, !is_array_of(r, c->n, REDIS_REPLY_INTEGER))) return;
    for (size_t i = 0; i < c->n; i++) ((struct store_job_handoff *)c->items[i])->handed = r->element[i]->integer == 1;
    call_done(c, STORE_JOB_OK, STORE_E_COUNT, NULL);
}

void store_job_handed(struct store_job *sj, const char *entry, const char *campaign,
                      struct store_job_handoff *const *items, size_t n, store_job_cb cb, void *arg,
                      void (*discard)(void *))
{
    struct call *c = call_new(sj, cb, arg, discard, (void *const *)items, n);
    struct store_args a;
    store_args_script(&a, store_lua_handed, 1 + n);
    fence_keys(&a, sj);
    for (size_t i = 0; i < n; i++) {
        store_key_campaigns(&sj->key, sj->cfg->prefix, items[i]->id);
        add_buf(&a, &sj->key);
    }
    fence_args(&a, sj, entry);
    store_args_add(&a, campaign);
    for (size_t i = 0; i < n; i++) {
        store_args_add(&a, items[i]->record);
        store_job_handed_record(&sj->key, items[i]->record);
        add_buf(&a, &sj->key);
    }
    /* Must land: the messages wait at the gate meanwhile. */
    store_cmds_send(sj->sc, 0, on_handed, c, call_discard, &a, store_lua_handed);
}

/* ---- outcomes ---------------------------------------------------------- */

void store_outcomes_init(struct store_outcomes *o)
{
    store_args_init(&o->keys);
    store_args_init(&o->args);
    o->n = 0;
}

void store_outcomes_free(struct store_outcomes *o)
{
    store_args_free(&o->keys);
    store_args_free(&o->args);
    o->n = 0;
}

void store_outcomes_add(struct store_outcomes *o, struct store_job *sj, const struct store_outcome *oc)
{
    struct strbuf *k = &sj->key;
    store_key_campaigns(k, sj->cfg->prefix, oc->id);
    add_buf(&o->keys, k);
    store_key_history(k, sj->cfg->prefix, oc->id);
    add_buf(&o->keys, k);
    store_key_sends(k, sj->cfg->prefix, oc->id);
    add_buf(&o->keys, k);
    store_key_person(k, sj->cfg->prefix, oc->id);
    add_buf(&o->keys, k);
    const char *vals[] = {oc->id, oc->record, oc->unsend, oc->history, oc->channel, oc->outcome, oc->reason,
                          oc->provider, oc->provider_id, oc->at, oc->progress};
    for (size_t i = 0; i < sizeof(vals) / sizeof(vals[0]); i++) store_args_add(&o->args, vals[i] ? vals[i] : "");
    char flags[4];
    size_t nf = 0;
    if (oc->reserved) flags[nf++] = 'r';
    if (oc->was_deferred) flags[nf++] = 'd';
    if (oc->once) flags[nf++] = 'n';
    flags[nf] = '\0';
    store_args_add(&o->args, flags);
    if (oc->requests >= 0) store_args_addll(&o->args, oc->requests);
    else store_args_add(&o->args, "");
    o->n++;
}

static void on_finished(redisReply *r, enum store_error err, const char *text, void *arg)
{
    struct call *c = arg;
    if (call_ended(c, r, err, text, r && r->type != REDIS_REPLY_INTEGER)) return;
    call_done(c, STORE_JOB_OK, STORE_E_COUNT, NULL);
}

void store_job_finish(struct store_job *sj, const char *entry, const char *campaign, const char *rec_entry,
                      struct store_outcomes *o, store_job_cb cb, void *arg, void (*discard)(void *))
{
    struct call *c = call_new(sj, cb, arg, discard, NULL, o->n);
    struct store_args a;
    store_args_script(&a, store_lua_finish, 4 + 4 * o->n);
    /* One allocation for the lot: the outcomes' own bytes and a few keys. */
    strbuf_grow_to(&a.data, a.data.len + o->keys.data.len + o->args.data.len + 1024);
    fence_keys(&a, sj);
    add_buf(&a, &sj->k_audit);
    store_key_campaign(&sj->key, sj->cfg->prefix, campaign);
    add_buf(&a, &sj->key);
    store_key_campaign_norecord(&sj->key, sj->cfg->prefix, campaign);
    add_buf(&a, &sj->key);
    store_args_append(&a, &o->keys);
    fence_args(&a, sj, entry);
    store_args_add(&a, sj->audit_maxlen);
    store_args_add(&a, campaign);
    store_args_add(&a, rec_entry);
    store_args_append(&a, &o->args);
    /* Emptied, its buffers kept for the next outcomes. */
    store_args_reset(&o->keys);
    store_args_reset(&o->args);
    o->n = 0;
    /* Outcomes must land: no hold, retried until Redis takes them. */
    store_cmds_send(sj->sc, 0, on_finished, c, call_discard, &a, store_lua_finish);
}

/* ---- give back, heartbeat ---------------------------------------------- */

static void on_released(redisReply *r, enum store_error err, const char *text, void *arg)
{
    struct call *c = arg;
    if (call_ended(c, r, err, text, false)) return;
    call_done(c, STORE_JOB_OK, STORE_E_COUNT, NULL);
}

void store_job_release(struct store_job *sj, const char *entry, const char *campaign, const char *id,
                       const char *record, const char *member, store_job_cb cb, void *arg, void (*discard)(void *))
{
    struct call *c = call_new(sj, cb, arg, discard, NULL, 0);
    struct store_args a;
    store_args_script(&a, store_lua_release, 3);
    fence_keys(&a, sj);
    store_key_campaigns(&sj->key, sj->cfg->prefix, id);
    add_buf(&a, &sj->key);
    store_key_sends(&sj->key, sj->cfg->prefix, id);
    add_buf(&a, &sj->key);
    fence_args(&a, sj, entry);
    store_args_add(&a, campaign);
    store_args_add(&a, record);
    store_job_handed_record(&sj->key, record);
    add_buf(&a, &sj->key);
    store_args_add(&a, member);
    store_cmds_send(sj->sc, 0, on_released, c, call_discard, &a, store_lua_release);
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
    fence_args(&a, sj, entry);
    store_cmds_send(sj->sc, 0, on_beat, c, call_discard, &a, store_lua_heartbeat);
}
