/*
 * store_campaign.c - a campaign's runs, the campaigns index and a
 * campaign's outcomes (store_campaign.h).
 *
 * Owns the KEYS/ARGV layout of campaign_enqueue.lua, campaign_get.lua,
 * campaign_list.lua and campaign_outcomes.lua, and the decoding of their
 * replies. Each command is written once (one list of keys and arguments)
 * and sent either as EVALSHA through the command layer (daemon) or as EVAL
 * on a blocking context (heraldctl), so the two never disagree. Never
 * logs; never quotes Redis's words.
 */
#include "store_campaign.h"

#include <stdlib.h>
#include <string.h>

#include "store.h"

#define key store_key_build

void store_key_campaign_index(struct strbuf *sb, const char *prefix) { key(sb, prefix, ":campaigns", NULL, NULL); }
void store_key_campaign_runs(struct strbuf *sb, const char *prefix, const char *campaign)
{
    key(sb, prefix, ":campaign:", campaign, ":runs");
}
void store_key_campaign_ids(struct strbuf *sb, const char *prefix, const char *campaign)
{
    key(sb, prefix, ":campaign:", campaign, ":ids");
}
void store_key_idempotency(struct strbuf *sb, const char *prefix, const char *key_sha_hex)
{
    key(sb, prefix, ":idempotency:", key_sha_hex, NULL);
}

/* ---- one command, two ways to send it --------------------------------- */

/* A script's keys and arguments, copied. */
struct cmd {
    const char *script;
    size_t nkeys, n, cap;
    char **v;
    size_t *len;
};

static void cmd_add(struct cmd *c, const char *s, size_t len)
{
    if (c->n == c->cap) {
        c->cap = c->cap ? 2 * c->cap : 16;
        c->v = xrealloc(c->v, c->cap * sizeof(*c->v));
        c->len = xrealloc(c->len, c->cap * sizeof(*c->len));
    }
    c->v[c->n] = xstrndup(s, len);
    c->len[c->n++] = len;
}

static void cmd_adds(struct cmd *c, const char *s) { cmd_add(c, s, strlen(s)); }

static void cmd_addll(struct cmd *c, long long v)
{
    char b[HERALD_LL_CHARS];
    cmd_add(c, b, herald_lltoa(b, v));
}

static void cmd_free(struct cmd *c)
{
    for (size_t i = 0; i < c->n; i++) free(c->v[i]);
    free(c->v);
    free(c->len);
}

/* EVALSHA into a (initialised here); c is freed. */
static void cmd_to_args(struct cmd *c, struct store_args *a)
{
    store_args_script(a, c->script, c->nkeys);
    for (size_t i = 0; i < c->n; i++) store_args_addn(a, c->v[i], c->len[i]);
    cmd_free(c);
}

/* EVAL on a blocking context (a fresh Redis may not know the script); c is freed. */
static redisReply *cmd_sync(struct cmd *c, redisContext *rc)
{
    size_t n = c->n + 3;
    const char **argv = xcalloc(n, sizeof(*argv));
    size_t *lens = xcalloc(n, sizeof(*lens));
    char nk[HERALD_LL_CHARS];
    herald_lltoa(nk, (long long)c->nkeys);
    argv[0] = "EVAL";
    argv[1] = c->script;
    argv[2] = nk;
    for (size_t i = 0; i < 3; i++) lens[i] = strlen(argv[i]);
    for (size_t i = 0; i < c->n; i++) {
        argv[i + 3] = c->v[i];
        lens[i + 3] = c->len[i];
    }
    redisReply *r = redisCommandArgv(rc, (int)n, argv, lens);
    free(argv);
    free(lens);
    cmd_free(c);
    return r;
}

/* ---- registering a run -------------------------------------------------- */

static void enqueue_cmd(struct cmd *c, const char *prefix, const struct store_enqueue *e)
{
    struct strbuf k;
    strbuf_init(&k);
    memset(c, 0, sizeof(*c));
    c->script = store_lua_campaign_enqueue;
    c->nkeys = 6;
    store_key_campaign(&k, prefix, e->campaign);
    cmd_adds(c, k.buf);
    store_key_campaign_runs(&k, prefix, e->campaign);
    cmd_adds(c, k.buf);
    store_key_campaign_index(&k, prefix);
    cmd_adds(c, k.buf);
    store_key_jobs(&k, prefix);
    cmd_adds(c, k.buf);
    store_key_campaign_ids(&k, prefix, e->campaign);
    cmd_adds(c, k.buf);
    store_key_idempotency(&k, prefix, e->idem_key_sha ? e->idem_key_sha : "-");
    cmd_adds(c, k.buf);
    strbuf_free(&k);
    cmd_adds(c, e->campaign);
    cmd_adds(c, e->entry ? e->entry : "");
    cmd_adds(c, e->rerun ? "1" : "0");
    char at[32];
    herald_time_format(e->now / 1000, at, sizeof(at));
    cmd_adds(c, at);
    cmd_addll(c, e->now);
    if (e->entry) cmd_adds(c, "");
    else cmd_add(c, e->text, e->len);
    cmd_adds(c, e->recipients_key ? e->recipients_key : "");
    cmd_adds(c, e->idem_key_sha && e->idem_digest ? e->idem_digest : "");
    cmd_addll(c, STORE_IDEMPOTENCY_TTL);
    cmd_adds(c, STORE_GROUP);
    for (size_t i = 0; i < e->nids; i++) cmd_adds(c, e->ids[i]);
}

void store_enqueue_args(struct store_args *a, const char *prefix, const struct store_enqueue *e)
{
    struct cmd c;
    enqueue_cmd(&c, prefix, e);
    cmd_to_args(&c, a);
}

int store_enqueue_result_of(const redisReply *r, struct store_enqueue_result *out)
{
    static const char *const names[] = {"ok", "same", "replay", "live", "finished", "conflict", "expired"};
    memset(out, 0, sizeof(*out));
    if (!r || r->type != REDIS_REPLY_ARRAY || r->elements != 3 || r->element[0]->type != REDIS_REPLY_STRING ||
        r->element[1]->type != REDIS_REPLY_INTEGER || r->element[2]->type != REDIS_REPLY_STRING ||
        r->element[2]->len >= sizeof(out->entry))
        return -HERALD_EREDIS;
    size_t i = 0;
    while (i < sizeof(names) / sizeof(names[0]) && strcmp(r->element[0]->str, names[i]) != 0) i++;
    if (i == sizeof(names) / sizeof(names[0])) return -HERALD_EREDIS;
    out->status = (enum store_enqueue_status)i;
    out->run = r->element[1]->integer;
    memcpy(out->entry, r->element[2]->str, r->element[2]->len + 1);
    return 0;
}

void store_enqueue_refusal(char *err, size_t errlen, const char *campaign, const struct store_enqueue_result *res)
{
    switch (res->status) {
    case STORE_ENQ_LIVE:
        herald_seterr(err, errlen,
                      "campaign %s: run %lld is not finished (queued, scheduled, running, paused or waiting for "
                      "quiet hours): wait for its end, or cancel it",
                      campaign, res->run);
        break;
    case STORE_ENQ_FINISHED:
        herald_seterr(err, errlen,
                      "campaign %s: run %lld has finished; to run it again, say \"rerun\": true in the job "
                      "(people it reached are not sent to again)",
                      campaign, res->run);
        break;
    case STORE_ENQ_CONFLICT:
        herald_seterr(err, errlen, "Idempotency-Key: already used with another body");
        break;
    case STORE_ENQ_EXPIRED:
        herald_seterr(err, errlen,
                      "campaign %s: the id's once-only records expired ([retention]): it cannot run again "
                      "without sending twice; enqueue it under a new id",
                      campaign);
        break;
    default: herald_seterr(err, errlen, "campaign %s: enqueued", campaign); break;
    }
}

int store_sync_enqueue(redisContext *c, const char *prefix, const struct store_enqueue *e,
                       struct store_enqueue_result *out, char *err, size_t errlen)
{
    struct cmd cmd;
    enqueue_cmd(&cmd, prefix, e);
    redisReply *r = cmd_sync(&cmd, c);
    int rc = store_enqueue_result_of(r, out);
    if (rc < 0) store_sync_error(err, errlen, "job", c, r);
    if (r) freeReplyObject(r);
    return rc < 0 ? -HERALD_EREDIS : 0;
}

/* ---- a campaign and its runs ------------------------------------------- */

static void get_cmd(struct cmd *c, const char *prefix, const char *campaign)
{
    struct strbuf k;
    strbuf_init(&k);
    memset(c, 0, sizeof(*c));
    c->script = store_lua_campaign_get;
    c->nkeys = 2;
    store_key_campaign(&k, prefix, campaign);
    cmd_adds(c, k.buf);
    store_key_campaign_runs(&k, prefix, campaign);
    cmd_adds(c, k.buf);
    strbuf_free(&k);
}

void store_campaign_get_args(struct store_args *a, const char *prefix, const char *campaign)
{
    struct cmd c;
    get_cmd(&c, prefix, campaign);
    cmd_to_args(&c, a);
}

/* Field i of a cluster's counts, when it is run's ("run:<n>:<field>" an
 * earlier run's, the bare field the latest's): the field's own name, else NULL. */
static const char *count_of_run(const struct store_node_counts *counts, size_t i, long long run)
{
    const char *f = counts->field[i];
    size_t n = strlen(STORE_NODE_RUN_FIELD);
    if (strncmp(f, STORE_NODE_RUN_FIELD, n) != 0) return run ? NULL : f;
    char *end;
    long long r = strtoll(f + n, &end, 10);
    return run && r == run && *end == ':' ? end + 1 : NULL;
}

/* An archived run (a JSON object of the hash's fields) as progress, with
 * its per-node counts on a cluster. */
static json_t *archived_progress(const char *id, const char *text, size_t len, long long run,
                                 const struct store_node_counts *counts)
{
    json_t *o = json_loadb(text, len, 0, NULL);
    if (!json_is_object(o)) {
        json_decref(o);
        return NULL;
    }
    size_t n = json_object_size(o), i = 0, nc = counts ? counts->n : 0;
    const char **f = xcalloc(n + nc + 1, sizeof(*f)), **v = xcalloc(n + nc + 1, sizeof(*v));
    char(*num)[HERALD_LL_CHARS] = xcalloc(nc + 1, sizeof(*num));
    const char *k;
    json_t *val;
    json_object_foreach(o, k, val) {
        if (!json_is_string(val)) continue;
        f[i] = k;
        v[i++] = json_string_value(val);
    }
    for (size_t c = 0; c < nc; c++) {
        const char *name = count_of_run(counts, c, run);
        if (!name) continue;
        herald_lltoa(num[c], counts->value[c]);
        f[i] = name;
        v[i++] = num[c];
    }
    json_t *p = store_campaign_progress_pairs(id, f, v, i);
    free(f);
    free(v);
    free(num);
    json_decref(o);
    return p;
}

static int run_cmp(const void *a, const void *b)
{
    json_int_t x = json_integer_value(json_object_get(*(json_t *const *)a, "run"));
    json_int_t y = json_integer_value(json_object_get(*(json_t *const *)b, "run"));
    return (x > y) - (x < y);
}

/* The latest run's progress: the hash's fields, then a cluster's per-node counts. */
static json_t *progress_with(const char *id, const redisReply *cur, const struct store_node_counts *counts)
{
    if (!counts || !counts->n) return store_campaign_progress(id, cur);
    size_t n = 0, max = cur->elements / 2 + counts->n + 1;
    const char **f = xcalloc(max, sizeof(*f)), **v = xcalloc(max, sizeof(*v));
    char(*num)[HERALD_LL_CHARS] = xcalloc(counts->n, sizeof(*num));
    for (size_t i = 0; i + 1 < cur->elements; i += 2) {
        if (cur->element[i]->type != REDIS_REPLY_STRING || cur->element[i + 1]->type != REDIS_REPLY_STRING) continue;
        f[n] = cur->element[i]->str;
        v[n++] = cur->element[i + 1]->str;
    }
    for (size_t i = 0; i < counts->n; i++) {
        const char *name = count_of_run(counts, i, 0);
        if (!name) continue; /* an earlier run's */
        herald_lltoa(num[i], counts->value[i]);
        f[n] = name;
        v[n++] = num[i];
    }
    json_t *out = store_campaign_progress_pairs(id, f, v, n);
    free(f);
    free(v);
    free(num);
    return out;
}

int store_campaign_get_result(const char *id, const redisReply *r, json_t **out)
{
    return store_campaign_get_result_counts(id, r, NULL, out);
}

int store_campaign_get_result_counts(const char *id, const redisReply *r, const struct store_node_counts *counts,
                                     json_t **out)
{
    *out = NULL;
    if (!r || r->type != REDIS_REPLY_ARRAY || r->elements != 2 || r->element[0]->type != REDIS_REPLY_ARRAY ||
        r->element[1]->type != REDIS_REPLY_ARRAY)
        return -HERALD_EREDIS;
    const redisReply *cur = r->element[0], *runs = r->element[1];
    if (cur->elements == 0 && runs->elements == 0) return 0;
    size_t n = 0;
    json_t **list = xcalloc(runs->elements / 2 + 1, sizeof(*list));
    for (size_t i = 0; i + 1 < runs->elements; i += 2) {
        const redisReply *num = runs->element[i], *v = runs->element[i + 1];
        if (num->type != REDIS_REPLY_STRING || v->type != REDIS_REPLY_STRING) continue;
        long long run = strtoll(num->str, NULL, 10);
        json_t *p = archived_progress(id, v->str, v->len, run, counts);
        if (!p) continue;
        /* The run's number is the field's (a hash from before runs has no `run`). */
        json_object_set_new(p, "run", json_integer(run));
        list[n++] = p;
    }
    qsort(list, n, sizeof(*list), run_cmp);
    json_t *latest = cur->elements ? progress_with(id, cur, counts) : NULL;
    if (!latest) { /* only archived runs (the hash was deleted): the last is the latest */
        latest = n ? json_deep_copy(list[n - 1]) : json_pack("{s:s, s:s}", "id", id, "state", "unknown");
    }
    json_t *arr = json_array();
    for (size_t i = 0; i < n; i++) json_array_append_new(arr, list[i]);
    if (cur->elements) {
        json_t *copy = json_deep_copy(latest);
        json_object_del(copy, "runs");
        json_array_append_new(arr, copy);
    }
    free(list);
    json_object_set_new(latest, "runs", arr);
    *out = latest;
    return 0;
}

int store_sync_campaign_get(redisContext *c, const char *prefix, const char *campaign,
                            const struct store_node_counts *counts, json_t **out, char *err, size_t errlen)
{
    struct cmd cmd;
    get_cmd(&cmd, prefix, campaign);
    redisReply *r = cmd_sync(&cmd, c);
    int rc = store_campaign_get_result_counts(campaign, r, counts, out);
    if (rc < 0) store_sync_error(err, errlen, "progress read", c, r);
    if (r) freeReplyObject(r);
    return rc;
}

/* ---- the campaigns index ------------------------------------------------ */

void store_campaign_list_args(struct store_args *a, const char *prefix, const char *cursor, long limit)
{
    struct strbuf k;
    strbuf_init(&k);
    store_args_script(a, store_lua_campaign_list, 1);
    store_key_campaign_index(&k, prefix);
    store_args_add(a, k.buf);
    store_key_campaign(&k, prefix, "");
    store_args_add(a, k.buf);
    store_args_add(a, cursor);
    store_args_addll(a, limit);
    strbuf_free(&k);
}

int store_campaign_list_result(const redisReply *r, json_t **items, char *next, size_t nextlen)
{
    *items = NULL;
    if (!r || r->type != REDIS_REPLY_ARRAY || r->elements < 1 || r->element[0]->type != REDIS_REPLY_INTEGER)
        return -HERALD_EREDIS;
    if (r->element[0]->integer == 0) return 0;
    if (r->elements != 3 || r->element[1]->type != REDIS_REPLY_STRING || r->element[2]->type != REDIS_REPLY_ARRAY)
        return -HERALD_EREDIS;
    const redisReply *l = r->element[2];
    json_t *arr = json_array();
    for (size_t i = 0; i + 1 < l->elements; i += 2) {
        if (l->element[i]->type != REDIS_REPLY_STRING || l->element[i + 1]->type != REDIS_REPLY_ARRAY) {
            json_decref(arr);
            return -HERALD_EREDIS;
        }
        json_array_append_new(arr, store_campaign_progress(l->element[i]->str, l->element[i + 1]));
    }
    herald_copy(next, nextlen, r->element[1]->str);
    *items = arr;
    return 1;
}

/* ---- outcomes ------------------------------------------------------------ */

void store_campaign_outcomes_args(struct store_args *a, const char *prefix, const char *campaign,
                                  const char *cursor, long limit)
{
    struct strbuf k;
    strbuf_init(&k);
    store_args_script(a, store_lua_campaign_outcomes, 2);
    store_key_campaign(&k, prefix, campaign);
    store_args_add(a, k.buf);
    store_key_campaign_ids(&k, prefix, campaign);
    store_args_add(a, k.buf);
    /* "<prefix>:r:" : the script adds "{<id>}", as store_key_person does;
     * the record is that hash's field store_record_field names. On a
     * cluster "": the caller reads the records on their slots. */
    strbuf_reset(&k);
    if (!store_keys_clustered()) {
        strbuf_adds(&k, prefix);
        strbuf_adds(&k, ":r:");
    }
    store_args_add(a, k.buf);
    store_record_field(&k, campaign);
    store_args_add(a, k.buf);
    store_args_add(a, cursor);
    store_args_addll(a, limit);
    strbuf_free(&k);
}

static const char *const outcome_names[] = {"sent", "failed", "suppressed", "unknown", "deferred", "pending",
                                            "none"};

const char *store_outcome_filter_valid(const char *name)
{
    for (size_t i = 0; i < sizeof(outcome_names) / sizeof(outcome_names[0]); i++)
        if (strcmp(name, outcome_names[i]) == 0) return outcome_names[i];
    return NULL;
}

static const char *outcome_of(const struct store_record *rec)
{
    switch (rec->state) {
    case REC_SENT: return "sent";
    case REC_FAILED: return "failed";
    case REC_SUPPRESSED: return "suppressed";
    case REC_UNKNOWN: return "unknown";
    case REC_DEFERRED: return "deferred";
    case REC_RESERVED:
    case REC_PENDING: return "pending";
    default: return "none";
    }
}

int store_campaign_outcomes_result(const redisReply *r, const char *filter, json_t **items, char *next,
                                   size_t nextlen)
{
    *items = NULL;
    if (!r || r->type != REDIS_REPLY_ARRAY || r->elements < 1 || r->element[0]->type != REDIS_REPLY_INTEGER)
        return -HERALD_EREDIS;
    if (r->element[0]->integer == 0) return 0;
    if (r->elements != 3 || r->element[1]->type != REDIS_REPLY_STRING || r->element[2]->type != REDIS_REPLY_ARRAY)
        return -HERALD_EREDIS;
    const redisReply *l = r->element[2];
    json_t *arr = json_array();
    for (size_t i = 0; i + 1 < l->elements; i += 2) {
        const redisReply *id = l->element[i], *rec = l->element[i + 1];
        if (id->type != REDIS_REPLY_STRING || rec->type != REDIS_REPLY_STRING) {
            json_decref(arr);
            return -HERALD_EREDIS;
        }
        json_t *o = store_campaign_outcome_item(id->str, rec->str, rec->len, filter);
        if (o) json_array_append_new(arr, o);
    }
    herald_copy(next, nextlen, r->element[1]->str);
    *items = arr;
    return 1;
}

int store_campaign_outcomes_source(const redisReply *r, char *key, size_t keylen)
{
    if (!r || r->type != REDIS_REPLY_ARRAY || r->elements != 2 || r->element[0]->type != REDIS_REPLY_INTEGER ||
        r->element[0]->integer != 2 || r->element[1]->type != REDIS_REPLY_STRING)
        return 0;
    herald_copy(key, keylen, r->element[1]->str);
    return 1;
}

void store_campaign_outcomes_source_args(struct store_args *a, const char *key, const char *cursor, long limit)
{
    store_args_script(a, store_lua_campaign_outcomes, 1);
    store_args_add(a, key);
    store_args_add(a, "");
    store_args_add(a, "");
    store_args_add(a, cursor);
    store_args_addll(a, limit);
    store_args_add(a, "source");
}

json_t *store_campaign_outcome_item(const char *id, const char *rec, size_t reclen, const char *filter)
{
    if (!herald_id_valid(id)) return NULL;
    struct store_record sr;
    bool has = reclen > 0 && store_record_parse(rec, &sr) == 0;
    if (!has) memset(&sr, 0, sizeof(sr));
    const char *outcome = outcome_of(&sr);
    if (filter && strcmp(filter, outcome) != 0) return NULL;
    json_t *o = json_pack("{s:s, s:s}", "recipient", id, "outcome", outcome);
    if (has) {
        char at[32];
        herald_time_format(sr.at, at, sizeof(at));
        json_object_set_new(o, "reason", sr.reason[0] ? json_string(sr.reason) : json_null());
        json_object_set_new(o, "channel", sr.channel[0] ? json_string(sr.channel) : json_null());
        json_object_set_new(o, "at", json_string(at));
        json_object_set_new(o, "entry", json_string(sr.entry));
    } else {
        json_object_set_new(o, "reason", json_null());
        json_object_set_new(o, "channel", json_null());
        json_object_set_new(o, "at", json_null());
        json_object_set_new(o, "entry", json_null());
    }
    return o;
}
