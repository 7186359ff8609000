/*
 * people.c - a person's data in Redis, as the API, the preference page and
 * the provider webhooks change it (people.h).
 *
 * Owns the writes that change what herald knows about one person: profile
 * and preferences, the consent ledger, erasure with its tombstones, the
 * herald:addr index and the suppression list. Every write is one Lua script
 * on keys that share the person's {ID} hash tag (plus the global addr,
 * tombstone and suppression sets), so it is atomic and never half-applied,
 * and every write bumps the person's `rev` so that a message the daemon
 * decided on older data is decided again. Read-modify-write (PUT, PATCH,
 * DELETE) reads the profile and its rev, merges and validates in C with
 * profile.c, and writes with a compare-and-set on rev, reading again when
 * someone else wrote in between.
 *
 * Every command goes through the store's command layer with
 * STORE_CMD_ONCE (store_cmd.h): no retry and no waiting for a connection,
 * since every caller answers someone now; the scripts are the files
 * daemon/lua/people_*.lua, sent by EVALSHA (their body once after
 * NOSCRIPT). An error reply or a lost connection ends the operation with
 * its class (-HERALD_EREDIS, store_error), never with Redis's own words.
 *
 * Never logs (the caller decides), and no error text quotes an address or
 * a body: addresses only ever leave this file as hashes.
 */
#include "people.h"

#include "addrindex.h"
#include "digest.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "channel.h"
#include "job.h"
#include "mergepatch.h"
#include "profile.h"
#include "store.h"

/* Compare-and-set attempts before giving up (each one lost a race). Each
 * round of N writers racing on one person lets at least one through, so
 * this bounds the writers that may race on one person at once. */
#define PEOPLE_CAS_TRIES 32
#define PEOPLE_MAX_ARGS 48

struct people {
    struct store_cmds *sc; /* STORE_CMD_ONCE only: the caller answers someone now */
    const struct config *cfg;
    char sealing_refused[160]; /* people_refuse_sealing: why ("" none) */
};

enum pop_kind { OP_GET, OP_PUT, OP_PATCH, OP_MERGE, OP_CONSENT, OP_ERASE, OP_FIND, OP_SUPPRESS };

/* One operation in flight: lives from the public call to its callback. */
struct pop {
    struct people *pp;
    enum pop_kind kind;
    people_cb cb;
    void *arg;
    char *id;
    json_t *body;    /* PUT: the new profile; PATCH, MERGE: the patch */
    json_t *doc;     /* GET: the document being built */
    char *record;    /* CONSENT: the ledger record */
    unsigned char m[ADDRINDEX_LEN]; /* FIND, SUPPRESS: the address's index member */
    /* PUT, MERGE, ERASE: the index members of the addresses written (nm)
     * and of the stored ones a write drops (om, when drop); prev: who a
     * claimed entry named before ("" nobody); tomb: channels whose address
     * was erased before (bits); added: the tombstones an erasure added. */
    unsigned char nm[HERALD_CH_COUNT][ADDRINDEX_LEN], om[HERALD_CH_COUNT][ADDRINDEX_LEN];
    bool has_new[HERALD_CH_COUNT], drop[HERALD_CH_COUNT], added[HERALD_CH_COUNT];
    char *prev[HERALD_CH_COUNT];
    unsigned tomb;
    char *json;      /* PUT, PATCH, MERGE: the profile to write */
    struct store_person_form *form; /* ... as stored: the profile field and the sealed ones */
    bool keep_sealed; /* PATCH of preferences over sealed data it could not read: left as it is */
    char *rev_read;  /* PUT, PATCH, MERGE, ERASE: the rev it was read at */
    char *cond;      /* PUT, PATCH, MERGE, ERASE: If-Match as the script takes it ("" none) */
    int channel;
    bool on;
    int64_t now;     /* SUPPRESS: since */
    char by[16];     /* SUPPRESS: who */
    int tries;
    int status;      /* fail_later: what the callback reports */
    char err[256];
    struct store_args after; /* CONSENT of an event on a cluster: its count, sent apart (empty: none) */
};

/* ---- plumbing ------------------------------------------------------------ */

void people_reload(struct people *pp, const struct config *cfg)
{
    pp->cfg = cfg;
}

struct people *people_new(struct store_cmds *sc, const struct config *cfg)
{
    struct people *pp = xcalloc(1, sizeof(*pp));
    pp->sc = sc;
    pp->cfg = cfg;
    return pp;
}

void people_free(struct people *pp)
{
    free(pp);
}

void people_refuse_sealing(struct people *pp, const char *why)
{
    if (pp) herald_copy(pp->sealing_refused, sizeof(pp->sealing_refused), why);
}

static struct pop *pop_new(struct people *pp, enum pop_kind kind, const char *id, people_cb cb, void *arg)
{
    struct pop *op = xcalloc(1, sizeof(*op));
    op->pp = pp;
    op->kind = kind;
    op->cb = cb;
    op->arg = arg;
    op->id = id ? xstrdup(id) : NULL;
    op->cond = xstrdup("");
    store_args_init(&op->after);
    return op;
}

/* Keeps the client's If-Match for the write script (precond.h). */
static void pop_set_cond(struct pop *op, const struct precond_if_match *im)
{
    struct strbuf sb;
    strbuf_init(&sb);
    precond_if_match_arg(&sb, im);
    free(op->cond);
    op->cond = strbuf_detach(&sb, NULL);
}

static const char precond_failed[] = "If-Match: the recipient's data is not at that version (or does not exist)";

static void pop_free(struct pop *op)
{
    free(op->id);
    json_decref(op->body);
    json_decref(op->doc);
    free(op->record);
    for (int ch = 0; ch < HERALD_CH_COUNT; ch++) free(op->prev[ch]);
    free(op->json);
    if (op->form) store_person_form_free(op->form);
    free(op->form);
    free(op->rev_read);
    free(op->cond);
    store_args_free(&op->after);
    free(op);
}

/* Fires the callback (once) and frees op. doc: a reference handed over. */
static void finish(struct pop *op, int status, json_t *doc, const char *err)
{
    op->cb(status, STORE_E_COUNT, doc, status < 0 ? (err ? err : herald_strerror(status)) : NULL, op->arg);
    pop_free(op);
}

/* Ends op on a Redis failure of class e: the text names the class, never
 * Redis's own words (they may quote a key or a script line). */
static void finish_store(struct pop *op, enum store_error e)
{
    char err[64];
    snprintf(err, sizeof(err), "redis unavailable: %s", store_error_name(e));
    op->cb(-HERALD_EREDIS, e, NULL, err, op->arg);
    pop_free(op);
}

/* Sends a command of op through the command layer, STORE_CMD_ONCE: never
 * retried, refused at once while the connection is down. With a script,
 * it is that script's EVALSHA and argv holds its nkeys keys, then its
 * arguments. Returns 0 or -HERALD_EREDIS (cb then never fires). */
static int send_cmd_n(struct pop *op, store_cmd_cb cb, const char *script, size_t nkeys, int argc,
                      const char **argv, const size_t *lens)
{
    struct store_args a;
    if (script) store_args_script(&a, script, nkeys);
    else store_args_init(&a);
    for (int i = 0; i < argc; i++) {
        if (lens) store_args_addn(&a, argv[i], lens[i]);
        else store_args_add(&a, argv[i]);
    }
    return store_cmds_send(op->pp->sc, STORE_CMD_ONCE, cb, op, NULL, &a, script);
}

static int send_cmd(struct pop *op, store_cmd_cb cb, const char *script, size_t nkeys, int argc,
                    const char **argv)
{
    return send_cmd_n(op, cb, script, nkeys, argc, argv, NULL);
}

/* In the middle of an operation: a send that fails ends it. */
static void send_or_finish(struct pop *op, store_cmd_cb cb, const char *script, size_t nkeys, int argc,
                           const char **argv)
{
    if (send_cmd(op, cb, script, nkeys, argc, argv) < 0) finish_store(op, STORE_E_CONNECTION);
}

/* No reply (the layer never hands over an error reply as one): ends op
 * with the error's class and returns true. */
static bool reply_failed(struct pop *op, const redisReply *r, enum store_error e)
{
    if (r) return false;
    finish_store(op, e);
    return true;
}

/* HMGET person profile rev and the sealed fields (store_person.h), into
 * argv (READ_PERSON_ARGC of them); key is the caller's. */
#define READ_PERSON_ARGC (4 + STORE_SEALED_NFIELDS)
static void read_person_argv(const char **argv, const char *key)
{
    argv[0] = "HMGET";
    argv[1] = key;
    argv[2] = "profile";
    argv[3] = "rev";
    for (size_t i = 0; i < STORE_SEALED_NFIELDS; i++) argv[4 + i] = store_sealed_field(i);
}

/* reply_failed, and a reply to read_person_argv's HMGET of another shape:
 * true after answering; otherwise the fields in *pj, *rv and *sealed. */
static bool not_profile_rev(struct pop *op, const redisReply *r, enum store_error e, const redisReply **pj,
                            const redisReply **rv, const redisReply *const **sealed)
{
    if (reply_failed(op, r, e)) return true;
    if (r->type != REDIS_REPLY_ARRAY || r->elements != 2 + STORE_SEALED_NFIELDS) {
        finish_store(op, STORE_E_REPLY);
        return true;
    }
    *pj = r->element[0];
    *rv = r->element[1];
    *sealed = (const redisReply *const *)r->element + 2;
    return false;
}

/* The answer to a read of a person whose sealed data does not open
 * (store_person_open said why: field and key id, never data). */
static void finish_undecryptable(struct pop *op, const char *why)
{
    char err[320];
    snprintf(err, sizeof(err), "the recipient's stored contact data cannot be read: %s", why);
    finish(op, -HERALD_EIO, NULL, err);
}

/* reply_failed, and a reply that is not an integer: true after answering. */
static bool not_integer(struct pop *op, const redisReply *r, enum store_error e)
{
    if (reply_failed(op, r, e)) return true;
    if (r->type == REDIS_REPLY_INTEGER) return false;
    finish_store(op, STORE_E_REPLY);
    return true;
}

static void on_fail_later(redisReply *r, enum store_error e, const char *text, void *priv)
{
    struct pop *op = priv;
    (void)r, (void)e, (void)text;
    finish(op, op->status, NULL, op->err);
}

/* Input refused before any Redis work: the callback must still come from
 * the loop (people.h), so it rides on a PING (whatever its answer). Returns
 * 0, or < 0 (and op is freed) when Redis cannot take even that. */
static int fail_later(struct pop *op, int status)
{
    op->status = status;
    const char *argv[] = {"PING"};
    if (send_cmd(op, on_fail_later, NULL, 0, 1, argv) < 0) {
        pop_free(op);
        return -HERALD_EREDIS;
    }
    return 0;
}

/* Starts op with its first command; on failure op is freed and the call
 * returns < 0 (the callback never fires). */
static int start(struct pop *op, store_cmd_cb cb, const char *script, size_t nkeys, int argc, const char **argv)
{
    if (send_cmd(op, cb, script, nkeys, argc, argv) < 0) {
        pop_free(op);
        return -HERALD_EREDIS;
    }
    return 0;
}

/* ---- several commands at once ------------------------------------------- */

/* The keyed indexes are cut into shards with a hash tag each (addrindex.h):
 * a step that touches several addresses sends one command per shard, all at
 * once, and goes on once the last reply is in, with every reply as JSON (an
 * array in the order sent). Any failure ends op (finish_store). */
typedef void (*group_then)(struct pop *op, const json_t *replies);
struct group;
struct group_slot {
    struct group *g;
    size_t i;
};
struct group {
    struct pop *op;
    group_then then;
    size_t left;
    bool failed;
    enum store_error err;
    json_t *replies;
    struct group_slot slot[];
};

static json_t *reply_json(const redisReply *r)
{
    switch (r->type) {
    case REDIS_REPLY_INTEGER: return json_integer(r->integer);
    case REDIS_REPLY_STRING:
    case REDIS_REPLY_STATUS: return json_stringn(r->str, r->len);
    case REDIS_REPLY_ARRAY: {
        json_t *a = json_array();
        for (size_t i = 0; i < r->elements; i++) json_array_append_new(a, reply_json(r->element[i]));
        return a;
    }
    default: return json_null();
    }
}

static void group_end(struct group *g)
{
    if (g->failed) finish_store(g->op, g->err);
    else g->then(g->op, g->replies);
    json_decref(g->replies);
    free(g);
}

static void on_group(redisReply *r, enum store_error e, const char *text, void *arg)
{
    struct group_slot *sl = arg;
    struct group *g = sl->g;
    (void)text;
    if (!r && !g->failed) {
        g->failed = true;
        g->err = e;
    } else if (r) {
        json_array_set_new(g->replies, sl->i, reply_json(r));
    }
    if (--g->left == 0) group_end(g);
}

/* Sends a[0..n) (script[i]: the body of a[i]'s EVALSHA, or NULL), taking
 * their buffers; then(op, replies) once all replied. n >= 1; called from a
 * reply's callback (then may run before this returns). */
static void group_send(struct pop *op, struct store_args *a, const char *const *script, size_t n, group_then then)
{
    struct group *g = xcalloc(1, sizeof(*g) + n * sizeof(g->slot[0]));
    g->op = op;
    g->then = then;
    g->left = n;
    g->replies = json_array();
    for (size_t i = 0; i < n; i++) json_array_append_new(g->replies, json_null());
    for (size_t i = 0; i < n; i++) {
        g->slot[i].g = g;
        g->slot[i].i = i;
    }
    for (size_t i = 0; i < n; i++) {
        int rc = store_cmds_send(op->pp->sc, STORE_CMD_ONCE, on_group, &g->slot[i], NULL, &a[i], script[i]);
        store_args_free(&a[i]);
        if (rc < 0) {
            g->failed = true;
            g->err = STORE_E_CONNECTION;
            if (--g->left == 0) group_end(g);
        }
    }
}

/* Appends a script's command on the shard of member m to a[*n]. */
static void index_cmd(struct pop *op, struct store_args *a, const char **script, size_t *n, const char *lua,
                      const unsigned char m[ADDRINDEX_LEN], enum addrindex_kind k1, int k2, const char *arg1,
                      const char *arg2)
{
    struct strbuf k;
    strbuf_init(&k);
    script[*n] = lua;
    store_args_script(&a[*n], lua, k2 >= 0 ? 2 : 1);
    addrindex_key_of(&k, op->pp->cfg->prefix, k1, m);
    store_args_add(&a[*n], k.buf);
    if (k2 >= 0) {
        addrindex_key_of(&k, op->pp->cfg->prefix, (enum addrindex_kind)k2, m);
        store_args_add(&a[*n], k.buf);
    }
    store_args_addn(&a[*n], (const char *)m, ADDRINDEX_LEN);
    if (arg1) store_args_add(&a[*n], arg1);
    if (arg2) store_args_add(&a[*n], arg2);
    (*n)++;
    strbuf_free(&k);
}

/* Appends a plain command "CMD <key of member m's shard> <m>" to a[*n]. */
static void index_plain(struct pop *op, struct store_args *a, const char **script, size_t *n, const char *cmd,
                        enum addrindex_kind kind, const unsigned char m[ADDRINDEX_LEN])
{
    struct strbuf k;
    strbuf_init(&k);
    script[*n] = NULL;
    store_args_init(&a[*n]);
    store_args_add(&a[*n], cmd);
    addrindex_key_of(&k, op->pp->cfg->prefix, kind, m);
    store_args_add(&a[*n], k.buf);
    store_args_addn(&a[*n], (const char *)m, ADDRINDEX_LEN);
    (*n)++;
    strbuf_free(&k);
}

static const char *secret_of(const struct config *cfg)
{
    if (cfg->tombstone_secret && *cfg->tombstone_secret) return cfg->tombstone_secret;
    if (cfg->link_secret && *cfg->link_secret) return cfg->link_secret;
    return NULL;
}

void people_tombstone_member(struct strbuf *sb, const char *secret, int channel, const char *address)
{
    char norm[512];
    size_t n = store_address_normalise(norm, sizeof(norm), channel, address);
    unsigned char md[DIGEST_SHA256_LEN];
    char hex[2 * DIGEST_SHA256_LEN + 1];
    digest_hmac_sha256(secret, norm, n, md); /* import computes one per address */
    digest_hex(hex, md, sizeof(md));
    strbuf_reset(sb);
    strbuf_adds(sb, herald_channel_name(channel));
    strbuf_adds(sb, ":");
    strbuf_adds(sb, hex);
}

/* The string value of a hash field in an HGETALL reply, or NULL. */
static const redisReply *hash_field(const redisReply *h, const char *name)
{
    if (!h || h->type != REDIS_REPLY_ARRAY) return NULL;
    for (size_t i = 0; i + 1 < h->elements; i += 2)
        if (h->element[i]->type == REDIS_REPLY_STRING && strcmp(h->element[i]->str, name) == 0 &&
            h->element[i + 1]->type == REDIS_REPLY_STRING)
            return h->element[i + 1];
    return NULL;
}

/* The preferences object of the subject-access document. */
static json_t *preferences_json(const struct profile *p)
{
    json_t *o = json_object();
    if (p->channels_set) {
        json_t *a = json_array();
        for (int i = 0; i < p->nchannels; i++) json_array_append_new(a, json_string(herald_channel_name(p->channels[i])));
        json_object_set_new(o, "channels", a);
    }
    json_t *t = json_object();
    for (size_t i = 0; i < p->ntopics; i++) json_object_set_new(t, p->topics[i].name, json_boolean(p->topics[i].on));
    json_object_set_new(o, "topics", t);
    if (p->quiet_hours) json_object_set_new(o, "quiet_hours", json_string(p->quiet_hours));
    if (p->frequency) json_object_set(o, "frequency", p->frequency);
    return o;
}

/* A JSON object from stored text, or NULL when it is not one. */
static json_t *load_object(const char *s, size_t len)
{
    json_t *v = json_loadb(s, len, 0, NULL);
    if (v && !json_is_object(v)) {
        json_decref(v);
        v = NULL;
    }
    return v;
}

/* ---- people_get ---------------------------------------------------------- */

/* The campaigns of the history entries read without their topic and name
 * (store_history_format), each once, in the order the entries name them:
 * their info is read after the person (the field `info` of each campaign's
 * hash, job_info_json). Returns how many went to out. */
static size_t history_campaigns(const json_t *msgs, const char **out, size_t max)
{
    size_t n = 0, i;
    const json_t *m;
    json_array_foreach(msgs, i, m) {
        const char *c = json_string_value(json_object_get(m, "campaign"));
        if (!c || json_object_get(m, "topic")) continue;
        size_t j = 0;
        while (j < n && strcmp(out[j], c) != 0) j++;
        if (j == n && n < max) out[n++] = c;
    }
    return n;
}

/* The history's entries given their topic and name from replies[k..]: the
 * campaigns' info, in history_campaigns' order. */
static void history_named(json_t *doc, const json_t *replies, size_t k)
{
    json_t *msgs = json_object_get(doc, "messages");
    const char *camp[STORE_HISTORY_MAX];
    size_t n = history_campaigns(msgs, camp, STORE_HISTORY_MAX);
    const char *locale = json_string_value(json_object_get(json_object_get(doc, "profile"), "locale"));
    json_t *info[STORE_HISTORY_MAX];
    for (size_t j = 0; j < n; j++) {
        const json_t *r = json_array_get(replies, k + j);
        info[j] = json_is_string(r) ? json_loads(json_string_value(r), 0, NULL) : NULL;
    }
    size_t i;
    json_t *m;
    json_array_foreach(msgs, i, m) {
        const char *c = json_string_value(json_object_get(m, "campaign"));
        for (size_t j = 0; c && j < n; j++)
            if (strcmp(camp[j], c) == 0) job_info_apply(m, info[j], locale);
        /* A campaign without info (gone, or enqueued by an older herald): no topic known. */
        if (!json_object_get(m, "topic")) json_object_set_new(m, "topic", json_string(""));
    }
    for (size_t j = 0; j < n; j++) json_decref(info[j]);
}

static void on_get_suppressed(struct pop *op, const json_t *replies)
{
    json_t *sup = json_object_get(op->doc, "suppressed");
    /* The members went out in channel order, for the channels with an address. */
    json_t *prof = json_object_get(op->doc, "profile");
    size_t k = 0;
    for (int ch = 0; ch < HERALD_CH_COUNT; ch++) {
        if (!json_object_get(prof, channel_get(ch)->address_field)) continue;
        json_object_set_new(sup, herald_channel_name(ch), json_boolean(json_integer_value(json_array_get(replies, k)) == 1));
        k++;
    }
    history_named(op->doc, replies, k);
    json_t *doc = op->doc;
    op->doc = NULL;
    finish(op, 0, doc, NULL);
}

/* A ledger record as the document shows it: JSON as written before the
 * compact form (consent_record_format), or that form read back as JSON. */
static json_t *ledger_object(const char *s, size_t len)
{
    if (len && s[0] == '{') return load_object(s, len);
    struct consent_record rec;
    char err[128];
    if (consent_record_parse(s, len, &rec, err, sizeof(err)) < 0) return NULL;
    char *json = consent_record_to_json(&rec);
    consent_record_free(&rec);
    json_t *o = load_object(json, strlen(json));
    free(json);
    return o;
}

static void on_get(redisReply *r, enum store_error serr, const char *text, void *priv)
{
    struct pop *op = priv;
    (void)text;
    if (reply_failed(op, r, serr)) return;
    if (r->type == REDIS_REPLY_NIL) {
        finish(op, -HERALD_ENOENT, NULL, "no such recipient");
        return;
    }
    if (r->type != REDIS_REPLY_ARRAY || r->elements != 3) {
        finish_store(op, STORE_E_REPLY);
        return;
    }
    const redisReply *h = r->element[0], *ledger = r->element[1], *hist = r->element[2];
    const redisReply *sealed[STORE_SEALED_NFIELDS];
    for (size_t i = 0; i < STORE_SEALED_NFIELDS; i++) sealed[i] = hash_field(h, store_sealed_field(i));
    struct profile p;
    char err[256];
    if (store_person_open(op->pp->cfg->keys, op->id, hash_field(h, "profile"), sealed, &p, err, sizeof(err)) <= 0) {
        /* Only herald writes it; an unreadable one is a broken store. */
        finish_store(op, STORE_E_REPLY); /* only herald writes it: a broken store */
        return;
    }
    json_t *doc = json_object();
    json_object_set_new(doc, "id", json_string(op->id));
    json_t *prof = json_object();
    for (int ch = 0; ch < HERALD_CH_COUNT; ch++)
        if (p.address[ch]) json_object_set_new(prof, channel_get(ch)->address_field, json_string(p.address[ch]));
    if (p.tz) json_object_set_new(prof, "tz", json_string(p.tz));
    if (p.locale) json_object_set_new(prof, "locale", json_string(p.locale));
    if (p.attributes) json_object_set(prof, "attributes", p.attributes);
    json_object_set_new(doc, "profile", prof);
    json_object_set_new(doc, "preferences", preferences_json(&p));
    /* Said beside what could be read: the API answers it as an error, the
     * pages still let the person change their preferences. */
    if (p.undecryptable) json_object_set_new(doc, PEOPLE_UNDECRYPTABLE, json_string(err));

    json_t *recs = json_array();
    for (size_t i = 0; ledger->type == REDIS_REPLY_ARRAY && i < ledger->elements; i++) {
        const redisReply *e = ledger->element[i];
        json_t *o = e->type == REDIS_REPLY_STRING ? ledger_object(e->str, e->len) : NULL;
        if (o) json_array_append_new(recs, o);
    }
    json_object_set_new(doc, "consent", recs);

    json_t *cur = json_object();
    for (int ch = 0; ch < HERALD_CH_COUNT; ch++) {
        const redisReply *e = hash_field(h, channel_get(ch)->consent_field);
        struct consent_record rec;
        if (!e || consent_record_parse(e->str, e->len, &rec, err, sizeof(err)) < 0) continue;
        char at[32];
        herald_time_format(rec.at, at, sizeof(at));
        json_object_set_new(cur, herald_channel_name(ch), json_pack("{s:b, s:s}", "granted", rec.granted, "at", at));
        consent_record_free(&rec);
    }
    json_object_set_new(doc, "consent_current", cur);

    json_t *sup = json_object();
    for (int ch = 0; ch < HERALD_CH_COUNT; ch++) json_object_set_new(sup, herald_channel_name(ch), json_false());
    json_object_set_new(doc, "suppressed", sup);

    json_object_set_new(doc, "messages", store_history_read(h, hist, (size_t)op->pp->cfg->retention_history));
    const redisReply *rev = hash_field(h, "rev");
    json_object_set_new(doc, "rev", json_integer(rev ? strtoll(rev->str, NULL, 10) : 0));

    /* Suppression is kept by keyed address member: ask for this person's,
     * one command per shard. */
    struct store_args args[HERALD_CH_COUNT + STORE_HISTORY_MAX];
    const char *script[HERALD_CH_COUNT + STORE_HISTORY_MAX];
    size_t n = 0;
    for (int ch = 0; ch < HERALD_CH_COUNT; ch++) {
        const char *addr = profile_address(&p, ch);
        if (!addr) continue;
        unsigned char m[ADDRINDEX_LEN];
        addrindex_member(op->pp->cfg->index_key, ch, addr, m);
        index_plain(op, args, script, &n, "SISMEMBER", ADDRINDEX_SUPPRESS, m);
    }
    /* Then the info of the campaigns in the history (history_named). */
    const char *camp[STORE_HISTORY_MAX];
    size_t nc = history_campaigns(json_object_get(doc, "messages"), camp, STORE_HISTORY_MAX);
    struct strbuf ck;
    strbuf_init(&ck);
    for (size_t j = 0; j < nc; j++, n++) {
        store_key_campaign(&ck, op->pp->cfg->prefix, camp[j]);
        script[n] = NULL;
        store_args_init(&args[n]);
        store_args_add(&args[n], "HGET");
        store_args_add(&args[n], ck.buf);
        store_args_add(&args[n], "info");
    }
    strbuf_free(&ck);
    profile_free(&p);
    op->doc = doc;
    if (n == 0) {
        op->doc = NULL;
        finish(op, 0, doc, NULL);
    } else {
        group_send(op, args, script, n, on_get_suppressed);
    }
}

int people_get(struct people *pp, const char *id, people_cb cb, void *arg)
{
    if (!herald_id_valid(id)) return -HERALD_EINVAL;
    struct pop *op = pop_new(pp, OP_GET, id, cb, arg);
    struct strbuf kp, kh;
    strbuf_init(&kp);
    strbuf_init(&kh);
    store_key_person(&kp, pp->cfg->prefix, id);
    store_key_history(&kh, pp->cfg->prefix, id);
    char max[16];
    snprintf(max, sizeof(max), "%d", STORE_HISTORY_MAX);
    const char *argv[] = {kp.buf, kh.buf, max};
    int rc = start(op, on_get, store_lua_people_get, 2, 3, argv);
    strbuf_free(&kp);
    strbuf_free(&kh);
    return rc;
}

/* ---- PUT and PATCH: read, merge, compare-and-set ------------------------- */

static void read_person(struct pop *op);

static void write_person(struct pop *op);

/* After a write that did not happen: each entry this write claimed names
 * again whom it named before; then the write is read again (op->status 1)
 * or ends with op->status and op->err. */
static void on_unclaimed(struct pop *op, const json_t *replies)
{
    (void)replies;
    if (op->status == 1) read_person(op);
    else finish(op, op->status, NULL, op->err);
}

static void unclaim(struct pop *op, int status, const char *err)
{
    op->status = status;
    herald_copy(op->err, sizeof(op->err), err ? err : "");
    struct store_args a[HERALD_CH_COUNT];
    const char *script[HERALD_CH_COUNT];
    size_t n = 0;
    for (int ch = 0; ch < HERALD_CH_COUNT; ch++)
        if (op->has_new[ch] && op->prev[ch] && strcmp(op->prev[ch], op->id) != 0)
            index_cmd(op, a, script, &n, store_lua_index_release, op->nm[ch], ADDRINDEX_ADDR, -1, op->id,
                      op->prev[ch]);
    if (n) group_send(op, a, script, n, on_unclaimed);
    else on_unclaimed(op, NULL);
}

static void on_released(struct pop *op, const json_t *replies)
{
    (void)replies;
    json_t *doc = op->doc;
    op->doc = NULL;
    finish(op, 0, doc, NULL);
}

static void on_write(redisReply *r, enum store_error serr, const char *text, void *priv)
{
    struct pop *op = priv;
    (void)text;
    if (reply_failed(op, r, serr)) return;
    if (r->type != REDIS_REPLY_ARRAY || r->elements < 1 || r->element[0]->type != REDIS_REPLY_STRING) {
        finish_store(op, STORE_E_REPLY);
        return;
    }
    const char *st = r->element[0]->str;
    if (strcmp(st, "precondition") == 0) {
        unclaim(op, -HERALD_EPRECOND, precond_failed);
        return;
    }
    if (strcmp(st, "stale") == 0) {
        if (++op->tries >= PEOPLE_CAS_TRIES) {
            unclaim(op, -HERALD_EBUSY, "the recipient's data kept changing meanwhile; try again");
            return;
        }
        unclaim(op, 1, NULL);
        return;
    }
    if (strcmp(st, "gone") == 0) {
        unclaim(op, -HERALD_ENOENT, "no such recipient");
        return;
    }
    if (strcmp(st, "ok") != 0 || r->elements != 3 || r->element[2]->type != REDIS_REPLY_INTEGER) {
        finish_store(op, STORE_E_REPLY);
        return;
    }
    json_t *doc;
    if (op->kind == OP_PUT || op->kind == OP_MERGE) {
        json_t *tomb = json_array();
        for (int ch = 0; ch < HERALD_CH_COUNT; ch++)
            if (op->tomb & (1u << ch)) json_array_append_new(tomb, json_string(herald_channel_name(ch)));
        doc = json_pack("{s:s, s:o}", "id", op->id, "tombstoned", tomb);
        if (op->kind == OP_PUT) json_object_set_new(doc, "created", json_boolean(r->element[1]->integer == 1));
    } else {
        doc = op->doc;
        op->doc = NULL;
    }
    json_object_set_new(doc, "rev", json_integer(r->element[2]->integer));
    /* Last: the entries of the addresses this person no longer has go, if
     * they still name them. */
    struct store_args a[HERALD_CH_COUNT];
    const char *script[HERALD_CH_COUNT];
    size_t n = 0;
    for (int ch = 0; ch < HERALD_CH_COUNT; ch++)
        if (op->drop[ch]) index_cmd(op, a, script, &n, store_lua_index_release, op->om[ch], ADDRINDEX_ADDR, -1, op->id, "");
    json_decref(op->doc);
    op->doc = doc;
    if (n) group_send(op, a, script, n, on_released);
    else on_released(op, NULL);
}

/* The new addresses' entries name this person (index_claim.lua), and say
 * whether they were erased before (a tombstone, or one of layout 2 under
 * the tombstone secret); then the person. */
static void on_claimed(struct pop *op, const json_t *replies)
{
    size_t k = 0;
    for (int ch = 0; ch < HERALD_CH_COUNT; ch++) {
        if (!op->has_new[ch]) continue;
        const json_t *c = json_array_get(replies, k++);
        const json_t *legacy = json_array_get(replies, k++);
        const char *prev = json_string_value(json_array_get(c, 0));
        free(op->prev[ch]);
        op->prev[ch] = xstrdup(prev ? prev : "");
        if (json_integer_value(json_array_get(c, 1)) == 1 || json_integer_value(legacy) == 1) op->tomb |= 1u << ch;
    }
    write_person(op);
}

static void write_person(struct pop *op)
{
    struct strbuf kp;
    strbuf_init(&kp);
    store_key_person(&kp, op->pp->cfg->prefix, op->id);
    const char *argv[6 + 2 * STORE_SEALED_NFIELDS] = {kp.buf, op->rev_read, op->form->profile.buf,
                                                      op->kind == OP_PUT ? "0" : "1", op->cond};
    size_t lens[6 + 2 * STORE_SEALED_NFIELDS];
    int argc = 5;
    char nsealed[16];
    /* The sealed fields: each with its envelope, or "" to delete it. */
    argv[argc++] = nsealed;
    snprintf(nsealed, sizeof(nsealed), "%d", op->keep_sealed ? 0 : (int)STORE_SEALED_NFIELDS);
    for (int i = 0; i < argc; i++) lens[i] = strlen(argv[i]);
    for (size_t i = 0; i < STORE_SEALED_NFIELDS && !op->keep_sealed; i++) {
        const struct strbuf *v = &op->form->sealed[i];
        argv[argc] = store_sealed_field(i);
        lens[argc] = strlen(argv[argc]);
        argc++;
        argv[argc] = op->form->set[i] ? v->buf : ""; /* binary envelopes: their own lengths */
        lens[argc] = op->form->set[i] ? v->len : 0;
        argc++;
    }
    if (send_cmd_n(op, on_write, store_lua_people_write, 1, argc, argv, lens) < 0)
        finish_store(op, STORE_E_CONNECTION);
    strbuf_free(&kp);
}

/* Lower-cases a topic name the way profile.c stores it. */
static char *topic_key(const char *k)
{
    char *s = xstrdup(k);
    for (char *c = s; *c; c++)
        if (*c >= 'A' && *c <= 'Z') *c = (char)(*c - 'A' + 'a');
    return s;
}

/* Applies the patch in op->body to obj (the stored profile, changed in
 * place). The keys were checked by people_patch_preferences. */
static int apply_patch(json_t *obj, const json_t *patch, char *err, size_t errlen)
{
    const char *key;
    json_t *v;
    json_object_foreach((json_t *)patch, key, v) {
        if (strcmp(key, "topics") == 0) {
            if (json_is_null(v)) {
                json_object_del(obj, "topics");
                continue;
            }
            if (!json_is_object(v))
                return herald_fail(err, errlen, "topics: must be an object of topic -> true, false or null");
            json_t *cur = json_object_get(obj, "topics");
            if (!json_is_object(cur)) {
                cur = json_object();
                json_object_set_new(obj, "topics", cur);
            }
            const char *tk;
            json_t *tv;
            json_object_foreach(v, tk, tv) {
                if (!json_is_null(tv) && !json_is_boolean(tv)) {
                    herald_seterr(err, errlen, "topics: every value must be true, false or null");
                    return -HERALD_EINVAL;
                }
                char *name = topic_key(tk);
                if (json_is_null(tv)) json_object_del(cur, name);
                else json_object_set(cur, name, tv);
                free(name);
            }
            if (json_object_size(cur) == 0) json_object_del(obj, "topics");
        } else if (json_is_null(v)) {
            json_object_del(obj, key);
        } else {
            json_object_set(obj, key, v);
        }
    }
    return 0;
}

/* The preferences a PUT keeps unless its body names them. */
static const char *const pref_keys[] = {"channels", "topics", "quiet_hours", "frequency"};

/* PUT: the body, with each preference it does not name taken from the
 * stored profile (stored may be NULL). A new reference. */
static json_t *put_profile(const json_t *body, const json_t *stored)
{
    json_t *obj = json_deep_copy(body);
    for (size_t k = 0; k < sizeof(pref_keys) / sizeof(pref_keys[0]); k++) {
        json_t *v = json_object_get(stored, pref_keys[k]);
        if (v && !json_object_get(obj, pref_keys[k])) json_object_set(obj, pref_keys[k], v);
    }
    return obj;
}

/* MERGE: the stored profile with the merge patch applied (RFC 7396), topic
 * names of the patch lower-cased first so that "News" patches the stored
 * "news". NULL with err set when the result cannot be a profile of id. */
static json_t *merge_profile(const json_t *stored, const json_t *patch, const char *id, char *err, size_t errlen)
{
    json_t *p = json_deep_copy(patch);
    json_t *topics = json_object_get(p, "topics");
    if (json_is_object(topics)) {
        json_t *low = json_object();
        const char *tk;
        json_t *tv;
        json_object_foreach(topics, tk, tv) {
            char *name = topic_key(tk);
            bool twice = json_object_get(low, name) != NULL;
            if (!twice) json_object_set(low, name, tv);
            free(name);
            if (twice) {
                json_decref(low);
                json_decref(p);
                herald_seterr(err, errlen, "topics: a topic is given twice (topic names ignore case)");
                return NULL;
            }
        }
        json_object_set_new(p, "topics", low);
    }
    json_t *obj = mergepatch_apply(stored, p);
    json_decref(p);
    const json_t *bid = json_object_get(obj, "id");
    if (!bid) {
        json_object_set_new(obj, "id", json_string(id));
    } else if (!json_is_string(bid) || strcmp(json_string_value(bid), id) != 0) {
        json_decref(obj);
        herald_seterr(err, errlen, "id: does not match the recipient id in the path");
        return NULL;
    }
    return obj;
}

/* The stored profile as one JSON object, sealed data opened. */
static json_t *stored_object(const struct profile *p)
{
    char *json = profile_to_json(p);
    json_t *o = load_object(json, strlen(json));
    free(json);
    return o;
}

/* The reply to read_person_argv's HMGET: build the new profile, then CAS. */
static void on_read_person(redisReply *r, enum store_error serr, const char *text, void *priv)
{
    struct pop *op = priv;
    (void)text;
    const redisReply *pj, *rv, *const *sealed;
    if (not_profile_rev(op, r, serr, &pj, &rv, &sealed)) return;
    const char *rev = rv->type == REDIS_REPLY_STRING ? rv->str : "";
    char err[256];
    struct profile oldp, newp;
    bool have_old = false;
    json_t *obj;
    if (store_person_open(op->pp->cfg->keys, op->id, pj, sealed, &oldp, err, sizeof(err)) == 1) {
        have_old = true;
        /* A merge must read the data first; a PUT replaces it all, and so
         * repairs it; a change of preferences leaves it as it is. */
        if (oldp.undecryptable && op->kind == OP_MERGE) {
            profile_free(&oldp);
            finish_undecryptable(op, err);
            return;
        }
    }
    op->keep_sealed = op->kind == OP_PATCH && have_old && oldp.undecryptable;
    if (op->kind == OP_PATCH || op->kind == OP_MERGE) {
        if (pj->type != REDIS_REPLY_STRING) {
            /* A condition needs a current representation (RFC 9110 13.1.1). */
            if (op->cond[0]) finish(op, -HERALD_EPRECOND, NULL, precond_failed);
            else finish(op, -HERALD_ENOENT, NULL, "no such recipient");
            return;
        }
        obj = have_old ? stored_object(&oldp) : NULL;
        if (!obj || !have_old) {
            if (obj) json_decref(obj);
            if (have_old) profile_free(&oldp);
            finish_store(op, STORE_E_REPLY); /* only herald writes it: a broken store */
            return;
        }
        if (op->kind == OP_MERGE) {
            json_t *merged = merge_profile(obj, op->body, op->id, op->err, sizeof(op->err));
            json_decref(obj);
            obj = merged;
        }
        if (!obj || (op->kind == OP_PATCH && apply_patch(obj, op->body, op->err, sizeof(op->err)) < 0)) {
            json_decref(obj);
            profile_free(&oldp);
            finish(op, -HERALD_EINVAL, NULL, op->err);
            return;
        }
    } else {
        json_t *stored = have_old ? stored_object(&oldp) : NULL;
        obj = put_profile(op->body, stored);
        json_decref(stored);
    }
    int vrc = profile_from_json(obj, &newp, false, NULL, NULL, 0, op->err, sizeof(op->err));
    json_decref(obj);
    if (vrc < 0) {
        if (have_old) profile_free(&oldp);
        finish(op, -HERALD_EINVAL, NULL, op->err);
        return;
    }
    char *json = profile_to_json(&newp);
    if (strlen(json) > HERALD_PROFILE_MAX_BYTES) {
        free(json);
        profile_free(&newp);
        if (have_old) profile_free(&oldp);
        herald_seterr(op->err, sizeof(op->err), "profile: over the %d byte limit", HERALD_PROFILE_MAX_BYTES);
        finish(op, -HERALD_EINVAL, NULL, op->err);
        return;
    }
    if (op->kind == OP_PATCH) {
        json_decref(op->doc);
        op->doc = preferences_json(&newp);
    }

    /* Addresses: PATCH of the preferences never changes them. The new ones
     * are claimed in the address index first, the person written next, the
     * dropped ones released last (each index shard is in its own slot). */
    free(op->json);
    op->json = json;
    if (op->pp->sealing_refused[0]) { /* its key was retired: nothing is sealed under it again */
        profile_free(&newp);
        if (have_old) profile_free(&oldp);
        finish(op, -HERALD_ECLOSED, NULL, op->pp->sealing_refused);
        return;
    }
    if (!op->form) {
        op->form = xmalloc(sizeof(*op->form));
        store_person_form_init(op->form);
    }
    store_person_seal(op->pp->cfg->keys, op->pp->cfg->index_key, &newp, op->form);
    free(op->rev_read);
    op->rev_read = xstrdup(rev);
    op->tomb = 0;
    bool addrs = op->kind == OP_PUT || op->kind == OP_MERGE;
    const unsigned char *key = op->pp->cfg->index_key;
    const char *secret = secret_of(op->pp->cfg);
    struct store_args a[2 * HERALD_CH_COUNT];
    const char *script[2 * HERALD_CH_COUNT];
    size_t n = 0;
    struct strbuf kt, lt;
    strbuf_init(&kt);
    strbuf_init(&lt);
    store_key_tombstones(&kt, op->pp->cfg->prefix);
    for (int ch = 0; ch < HERALD_CH_COUNT; ch++) {
        const char *na = addrs ? profile_address(&newp, ch) : NULL;
        const char *oa = addrs && have_old ? profile_address(&oldp, ch) : NULL;
        op->has_new[ch] = na != NULL;
        op->drop[ch] = false;
        if (na) addrindex_member(key, ch, na, op->nm[ch]);
        if (oa) {
            addrindex_member(key, ch, oa, op->om[ch]);
            op->drop[ch] = !na || memcmp(op->om[ch], op->nm[ch], ADDRINDEX_LEN) != 0;
        }
        if (!na) continue;
        index_cmd(op, a, script, &n, store_lua_index_claim, op->nm[ch], ADDRINDEX_ADDR, ADDRINDEX_TOMBSTONES, op->id,
                  NULL);
        /* A tombstone of layout 2 (herald:tombstones, keyed with the secret). */
        strbuf_reset(&lt);
        if (secret) people_tombstone_member(&lt, secret, ch, na);
        script[n] = NULL;
        store_args_init(&a[n]);
        store_args_add(&a[n], "SISMEMBER");
        store_args_add(&a[n], kt.buf);
        store_args_add(&a[n], lt.buf);
        n++;
    }
    strbuf_free(&kt);
    strbuf_free(&lt);
    profile_free(&newp);
    if (have_old) profile_free(&oldp);
    if (n) group_send(op, a, script, n, on_claimed);
    else write_person(op);
}

static void read_person(struct pop *op)
{
    struct strbuf kp;
    strbuf_init(&kp);
    store_key_person(&kp, op->pp->cfg->prefix, op->id);
    const char *argv[READ_PERSON_ARGC];
    read_person_argv(argv, kp.buf);
    send_or_finish(op, on_read_person, NULL, 0, READ_PERSON_ARGC, argv);
    strbuf_free(&kp);
}

static int start_read(struct pop *op)
{
    struct strbuf kp;
    strbuf_init(&kp);
    store_key_person(&kp, op->pp->cfg->prefix, op->id);
    const char *argv[READ_PERSON_ARGC];
    read_person_argv(argv, kp.buf);
    int rc = start(op, on_read_person, NULL, 0, READ_PERSON_ARGC, argv);
    strbuf_free(&kp);
    return rc;
}

int people_put(struct people *pp, const char *id, const json_t *body, people_cb cb, void *arg)
{
    return people_put_if(pp, id, body, NULL, cb, arg);
}

int people_put_if(struct people *pp, const char *id, const json_t *body, const struct precond_if_match *im,
                  people_cb cb, void *arg)
{
    if (!herald_id_valid(id)) return -HERALD_EINVAL;
    struct pop *op = pop_new(pp, OP_PUT, id, cb, arg);
    pop_set_cond(op, im);
    if (!json_is_object(body)) {
        herald_seterr(op->err, sizeof(op->err), "body: must be a JSON object");
        return fail_later(op, -HERALD_EINVAL);
    }
    op->body = json_deep_copy(body);
    const json_t *bid = json_object_get(op->body, "id");
    if (!bid) {
        json_object_set_new(op->body, "id", json_string(id));
    } else if (!json_is_string(bid) || strcmp(json_string_value(bid), id) != 0) {
        herald_seterr(op->err, sizeof(op->err), "id: does not match the recipient id in the path");
        return fail_later(op, -HERALD_EINVAL);
    }
    /* Refuse what is wrong before touching Redis; the write validates again
     * (with the stored preferences the body does not name). */
    struct profile p;
    if (profile_from_json(op->body, &p, false, NULL, NULL, 0, op->err, sizeof(op->err)) < 0)
        return fail_later(op, -HERALD_EINVAL);
    profile_free(&p);
    return start_read(op);
}

int people_merge_profile(struct people *pp, const char *id, const json_t *patch, const struct precond_if_match *im,
                         people_cb cb, void *arg)
{
    if (!herald_id_valid(id)) return -HERALD_EINVAL;
    struct pop *op = pop_new(pp, OP_MERGE, id, cb, arg);
    pop_set_cond(op, im);
    if (!json_is_object(patch)) {
        /* RFC 7396 would replace the whole profile with it: never a profile. */
        herald_seterr(op->err, sizeof(op->err), "body: must be a JSON object (a merge patch of the profile)");
        return fail_later(op, -HERALD_EINVAL);
    }
    op->body = json_deep_copy(patch);
    return start_read(op);
}

static const char *const patch_keys[] = {"channels", "topics", "quiet_hours", "frequency"};

int people_patch_preferences(struct people *pp, const char *id, const json_t *patch, people_cb cb, void *arg)
{
    return people_patch_preferences_if(pp, id, patch, NULL, cb, arg);
}

int people_patch_preferences_if(struct people *pp, const char *id, const json_t *patch,
                                const struct precond_if_match *im, people_cb cb, void *arg)
{
    if (!herald_id_valid(id)) return -HERALD_EINVAL;
    struct pop *op = pop_new(pp, OP_PATCH, id, cb, arg);
    pop_set_cond(op, im);
    if (!json_is_object(patch)) {
        herald_seterr(op->err, sizeof(op->err), "body: must be a JSON object");
        return fail_later(op, -HERALD_EINVAL);
    }
    const char *key;
    json_t *v;
    json_object_foreach((json_t *)patch, key, v) {
        size_t k = 0, n = sizeof(patch_keys) / sizeof(patch_keys[0]);
        while (k < n && strcmp(key, patch_keys[k]) != 0) k++;
        if (k == n) {
            herald_seterr(op->err, sizeof(op->err),
                          "preferences: unknown key (expected channels, topics, quiet_hours, frequency)");
            return fail_later(op, -HERALD_EINVAL);
        }
    }
    op->body = json_deep_copy(patch);
    return start_read(op);
}

/* ---- consent ------------------------------------------------------------- */

static bool text_ok(const char *s)
{
    if (!s || !*s || strlen(s) > HERALD_CONSENT_SOURCE_MAX) return false;
    for (const unsigned char *c = (const unsigned char *)s; *c; c++)
        if (*c < 0x20 || *c == 0x7f) return false;
    return true;
}

/* The count is informational: the change it counts is made either way. */
static void on_counted(redisReply *r, enum store_error serr, const char *text, void *priv)
{
    struct pop *op = priv;
    (void)r, (void)serr, (void)text;
    json_t *doc = op->doc;
    op->doc = NULL;
    finish(op, 0, doc, NULL);
}

static void on_consent(redisReply *r, enum store_error serr, const char *text, void *priv)
{
    struct pop *op = priv;
    (void)text;
    if (not_integer(op, r, serr)) return;
    if (r->integer == 0) {
        finish(op, -HERALD_ENOENT, NULL, "no such recipient");
        return;
    }
    if (r->integer == 2) { /* the event was applied before */
        finish(op, 0, NULL, NULL);
        return;
    }
    if (op->after.n) { /* on a cluster: the event's count, on the control plane's slot */
        json_decref(op->doc);
        op->doc = ledger_object(op->record, strlen(op->record));
        if (store_cmds_send(op->pp->sc, STORE_CMD_ONCE, on_counted, op, NULL, &op->after, NULL) < 0)
            on_counted(NULL, STORE_E_CONNECTION, NULL, op);
        return;
    }
    finish(op, 0, ledger_object(op->record, strlen(op->record)), NULL);
}

int people_consent_append_event(struct people *pp, const char *id, int channel, bool granted, const char *source,
                                const char *text_version, int64_t now, const struct people_event *ev,
                                people_cb cb, void *arg)
{
    if (!herald_id_valid(id)) return -HERALD_EINVAL;
    if (ev && (!ev->key || !ev->counts || !ev->field || ev->ttl_s <= 0)) return -HERALD_EINVAL;
    struct pop *op = pop_new(pp, OP_CONSENT, id, cb, arg);
    if (channel < 0 || channel >= HERALD_CH_COUNT) {
        herald_seterr(op->err, sizeof(op->err), "channel: unknown channel (expected email or sms)");
        return fail_later(op, -HERALD_EINVAL);
    }
    if (!text_ok(source)) {
        herald_seterr(op->err, sizeof(op->err),
                      "source: must be 1..%d printable characters", HERALD_CONSENT_SOURCE_MAX);
        return fail_later(op, -HERALD_EINVAL);
    }
    if (text_version && !text_ok(text_version)) {
        herald_seterr(op->err, sizeof(op->err),
                      "text_version: must be 1..%d printable characters", HERALD_CONSENT_SOURCE_MAX);
        return fail_later(op, -HERALD_EINVAL);
    }
    struct consent_record rec = {.channel = channel, .granted = granted, .at = now,
                                 .source = (char *)source, .text_version = (char *)text_version};
    struct strbuf rb;
    strbuf_init(&rb);
    consent_record_format(&rb, &rec);
    op->record = strbuf_detach(&rb, NULL);
    op->channel = channel;
    struct strbuf kp;
    strbuf_init(&kp);
    store_key_person(&kp, pp->cfg->prefix, id);
    char ttl[HERALD_LL_CHARS];
    const char *field = channel_get(channel)->consent_field, *name = herald_channel_name(channel);
    int rc;
    if (ev && store_keys_clustered()) {
        /* On a cluster the script's keys must share the person's slot: the
         * event's key takes the person's tag (an event names one person),
         * and the count is a command of its own once the change is made. */
        herald_lltoa(ttl, (long long)ev->ttl_s);
        struct strbuf ke;
        strbuf_init(&ke);
        strbuf_adds(&ke, kp.buf);
        strbuf_adds(&ke, ":event:");
        strbuf_adds(&ke, ev->key);
        const char *count[] = {"HINCRBY", ev->counts, ev->field, "1"};
        for (size_t i = 0; i < 4; i++) store_args_add(&op->after, count[i]);
        const char *argv[] = {kp.buf, ke.buf, op->record, field, name, "1", ttl};
        rc = start(op, on_consent, store_lua_people_consent, 2, 7, argv);
        strbuf_free(&ke);
    } else if (ev) {
        herald_lltoa(ttl, (long long)ev->ttl_s);
        const char *argv[] = {kp.buf, ev->key, ev->counts, op->record, field, name, "1", ttl, ev->field};
        rc = start(op, on_consent, store_lua_people_consent, 3, 9, argv);
    } else {
        const char *argv[] = {kp.buf, op->record, field, name, "1"};
        rc = start(op, on_consent, store_lua_people_consent, 1, 5, argv);
    }
    strbuf_free(&kp);
    return rc;
}

int people_consent_append(struct people *pp, const char *id, int channel, bool granted, const char *source,
                          const char *text_version, int64_t now, people_cb cb, void *arg)
{
    return people_consent_append_event(pp, id, channel, granted, source, text_version, now, NULL, cb, arg);
}

/* ---- erasure ------------------------------------------------------------- */

static void erase_read(struct pop *op, bool first, int *rcp);

/* After an erasure that did not happen: the tombstones it added go; then
 * it is read again (op->status 1) or ends with op->status and op->err. */
static void on_untombstoned(struct pop *op, const json_t *replies)
{
    (void)replies;
    if (op->status == 1) erase_read(op, false, NULL);
    else finish(op, op->status, NULL, op->err);
}

static void untombstone(struct pop *op, int status, const char *err)
{
    op->status = status;
    herald_copy(op->err, sizeof(op->err), err ? err : "");
    struct store_args a[HERALD_CH_COUNT];
    const char *script[HERALD_CH_COUNT];
    size_t n = 0;
    for (int ch = 0; ch < HERALD_CH_COUNT; ch++)
        if (op->added[ch]) index_plain(op, a, script, &n, "SREM", ADDRINDEX_TOMBSTONES, op->nm[ch]);
    if (n) group_send(op, a, script, n, on_untombstoned);
    else on_untombstoned(op, NULL);
}

static void on_erase_released(struct pop *op, const json_t *replies)
{
    (void)replies;
    json_int_t n = 0;
    for (int ch = 0; ch < HERALD_CH_COUNT; ch++) n += op->has_new[ch];
    finish(op, 0, json_pack("{s:s, s:b, s:I}", "id", op->id, "erased", 1, "tombstones", n), NULL);
}

static void on_erase(redisReply *r, enum store_error serr, const char *text, void *priv)
{
    struct pop *op = priv;
    (void)text;
    if (not_integer(op, r, serr)) return;
    if (r->integer == -3) {
        untombstone(op, -HERALD_EPRECOND, precond_failed);
        return;
    }
    if (r->integer == -2) {
        untombstone(op, -HERALD_ENOENT, "no such recipient");
        return;
    }
    if (r->integer == -1) {
        if (++op->tries >= PEOPLE_CAS_TRIES) {
            untombstone(op, -HERALD_EBUSY, "the recipient's data kept changing meanwhile; try again");
            return;
        }
        untombstone(op, 1, NULL);
        return;
    }
    /* Last: the address index entries go, if they still name this person. */
    struct store_args a[HERALD_CH_COUNT];
    const char *script[HERALD_CH_COUNT];
    size_t n = 0;
    for (int ch = 0; ch < HERALD_CH_COUNT; ch++)
        if (op->has_new[ch])
            index_cmd(op, a, script, &n, store_lua_index_release, op->nm[ch], ADDRINDEX_ADDR, -1, op->id, "");
    if (n) group_send(op, a, script, n, on_erase_released);
    else on_erase_released(op, NULL);
}

static void erase_person(struct pop *op)
{
    struct strbuf kp, kh, ks;
    strbuf_init(&kp);
    strbuf_init(&kh);
    strbuf_init(&ks);
    const char *prefix = op->pp->cfg->prefix;
    store_key_person(&kp, prefix, op->id);
    store_key_history(&kh, prefix, op->id);
    store_key_sends(&ks, prefix, op->id);
    /* On one Redis its reservations not handed yet join their runs'
     * erased sets (store.h), kept as long as a campaign's records, and a
     * week at least: longer than any run waits to hand a reservation. */
    struct strbuf ke;
    strbuf_init(&ke);
    if (!store_keys_clustered()) store_key_erased(&ke, prefix, "");
    int64_t keep_s = op->pp->cfg->retention_records_ms / 1000;
    char keep[HERALD_LL_CHARS];
    herald_lltoa(keep, (long long)(keep_s > 7 * 86400 ? keep_s : 7 * 86400));
    const char *argv[] = {kp.buf, kh.buf, ks.buf, op->rev_read, op->cond, ke.len ? ke.buf : "", keep};
    send_or_finish(op, on_erase, store_lua_people_erase, 3, 7, argv);
    strbuf_free(&kp);
    strbuf_free(&kh);
    strbuf_free(&ks);
    strbuf_free(&ke);
}

/* The tombstones are in: now the person goes. */
static void on_tombstoned(struct pop *op, const json_t *replies)
{
    size_t k = 0;
    for (int ch = 0; ch < HERALD_CH_COUNT; ch++)
        if (op->has_new[ch]) op->added[ch] = json_integer_value(json_array_get(replies, k++)) == 1;
    erase_person(op);
}

static void on_erase_read(redisReply *r, enum store_error serr, const char *text, void *priv)
{
    struct pop *op = priv;
    (void)text;
    const redisReply *pj, *rv, *const *sealed;
    if (not_profile_rev(op, r, serr, &pj, &rv, &sealed)) return;
    if (pj->type != REDIS_REPLY_STRING) {
        if (op->cond[0]) finish(op, -HERALD_EPRECOND, NULL, precond_failed);
        else finish(op, -HERALD_ENOENT, NULL, "no such recipient");
        return;
    }
    free(op->rev_read);
    op->rev_read = xstrdup(rv->type == REDIS_REPLY_STRING ? rv->str : "");
    /* Read the addresses from the JSON itself, so even one that no longer
     * passes validation is tombstoned. The tombstones go in first, so that
     * no crash ever leaves an erased person without them. */
    json_t *obj = load_object(pj->str, pj->len);
    /* A sealed address that opens is tombstoned too; one that does not is
     * erased with the rest, without a tombstone (it cannot be read). */
    struct profile opened;
    char perr[256];
    bool have = store_person_open(op->pp->cfg->keys, op->id, pj, sealed, &opened, perr, sizeof(perr)) == 1;
    struct store_args a[HERALD_CH_COUNT];
    const char *script[HERALD_CH_COUNT];
    size_t n = 0;
    for (int ch = 0; ch < HERALD_CH_COUNT; ch++) {
        const json_t *aj = json_object_get(obj, channel_get(ch)->address_field);
        const char *addr = json_is_string(aj) ? json_string_value(aj) : NULL;
        if (sealed[0]->type == REDIS_REPLY_STRING) addr = have ? opened.address[ch] : NULL;
        op->has_new[ch] = addr && *addr;
        op->added[ch] = false;
        if (!op->has_new[ch]) continue;
        addrindex_member(op->pp->cfg->index_key, ch, addr, op->nm[ch]);
        index_plain(op, a, script, &n, "SADD", ADDRINDEX_TOMBSTONES, op->nm[ch]);
    }
    json_decref(obj);
    if (have) profile_free(&opened);
    if (n) group_send(op, a, script, n, on_tombstoned);
    else erase_person(op);
}

/* first: the public call (failure frees op and is reported through *rcp);
 * later: a retry (failure ends op through its callback). */
static void erase_read(struct pop *op, bool first, int *rcp)
{
    struct strbuf kp;
    strbuf_init(&kp);
    store_key_person(&kp, op->pp->cfg->prefix, op->id);
    const char *argv[READ_PERSON_ARGC];
    read_person_argv(argv, kp.buf);
    if (first) *rcp = start(op, on_erase_read, NULL, 0, READ_PERSON_ARGC, argv);
    else send_or_finish(op, on_erase_read, NULL, 0, READ_PERSON_ARGC, argv);
    strbuf_free(&kp);
}

int people_erase(struct people *pp, const char *id, people_cb cb, void *arg)
{
    return people_erase_if(pp, id, NULL, cb, arg);
}

int people_erase_if(struct people *pp, const char *id, const struct precond_if_match *im, people_cb cb, void *arg)
{
    if (!herald_id_valid(id)) return -HERALD_EINVAL;
    /* Erasure without a tombstone key would let a re-import be contacted. */
    if (!secret_of(pp->cfg)) return -HERALD_ECONFIG;
    struct pop *op = pop_new(pp, OP_ERASE, id, cb, arg);
    pop_set_cond(op, im);
    int rc;
    erase_read(op, true, &rc);
    return rc;
}

/* ---- addresses ----------------------------------------------------------- */

/* What the address index said is checked against the person: an entry
 * left by a write that never reached the person's hash (a crash between
 * the two, docs/privacy.md) never finds the wrong one. */
static void on_find_person(redisReply *r, enum store_error serr, const char *text, void *priv)
{
    struct pop *op = priv;
    (void)text;
    if (reply_failed(op, r, serr)) return;
    struct profile p;
    char err[256];
    bool same = false;
    if (r->type != REDIS_REPLY_ARRAY || r->elements != 1 + STORE_SEALED_NFIELDS) {
        finish_store(op, STORE_E_REPLY);
        return;
    }
    if (store_person_open(op->pp->cfg->keys, op->id, r->element[0], (const redisReply *const *)r->element + 1, &p,
                          err, sizeof(err)) == 1) {
        if (p.undecryptable) {
            profile_free(&p);
            finish_undecryptable(op, err);
            return;
        }
        const char *addr = profile_address(&p, op->channel);
        unsigned char m[ADDRINDEX_LEN];
        if (addr) addrindex_member(op->pp->cfg->index_key, op->channel, addr, m);
        same = addr && memcmp(m, op->m, ADDRINDEX_LEN) == 0;
        profile_free(&p);
    }
    if (!same) finish(op, -HERALD_ENOENT, NULL, "no recipient has this address");
    else finish(op, 0, json_pack("{s:s}", "id", op->id), NULL);
}

static void on_find(redisReply *r, enum store_error serr, const char *text, void *priv)
{
    struct pop *op = priv;
    (void)text;
    if (reply_failed(op, r, serr)) return;
    if (r->type == REDIS_REPLY_NIL || (r->type == REDIS_REPLY_STRING && !herald_id_valid(r->str))) {
        finish(op, -HERALD_ENOENT, NULL, "no recipient has this address");
        return;
    }
    if (r->type != REDIS_REPLY_STRING) {
        finish_store(op, STORE_E_REPLY);
        return;
    }
    op->id = xstrdup(r->str);
    struct strbuf kp;
    strbuf_init(&kp);
    store_key_person(&kp, op->pp->cfg->prefix, op->id);
    const char *argv[3 + STORE_SEALED_NFIELDS] = {"HMGET", kp.buf, "profile"};
    for (size_t i = 0; i < STORE_SEALED_NFIELDS; i++) argv[3 + i] = store_sealed_field(i);
    send_or_finish(op, on_find_person, NULL, 0, 3 + STORE_SEALED_NFIELDS, argv);
    strbuf_free(&kp);
}

/* Sends "CMD <shard key of op->m> <op->m>" as op's first command. */
static int start_index(struct pop *op, store_cmd_cb cb, const char *cmd, enum addrindex_kind kind)
{
    struct store_args a;
    const char *script = NULL;
    size_t n = 0;
    index_plain(op, &a, &script, &n, cmd, kind, op->m);
    int rc = store_cmds_send(op->pp->sc, STORE_CMD_ONCE, cb, op, NULL, &a, NULL);
    store_args_free(&a);
    if (rc < 0) {
        pop_free(op);
        return -HERALD_EREDIS;
    }
    return 0;
}

int people_find_by_address(struct people *pp, int channel, const char *address, people_cb cb, void *arg)
{
    if (channel < 0 || channel >= HERALD_CH_COUNT || !address) return -HERALD_EINVAL;
    struct pop *op = pop_new(pp, OP_FIND, NULL, cb, arg);
    op->channel = channel;
    addrindex_member(pp->cfg->index_key, channel, address, op->m);
    return start_index(op, on_find, "HGET", ADDRINDEX_ADDR);
}

/* The suppression document: {"suppressed", "since", "by", "reason"},
 * the last three null when no info is stored (a member added before the
 * info hash existed). info: the HGET reply or NULL. */
static json_t *suppression_json(bool on, const redisReply *info)
{
    json_t *o = json_pack("{s:b, s:n, s:n, s:n}", "suppressed", on, "since", "by", "reason");
    struct store_suppression w;
    if (on && info && info->type == REDIS_REPLY_STRING && store_suppress_info_parse(info->str, info->len, &w) == 0) {
        char at[32];
        herald_time_format(w.since, at, sizeof(at));
        json_object_set_new(o, "since", json_string(at));
        json_object_set_new(o, "by", json_string(w.by));
        json_object_set_new(o, "reason", json_string(w.reason));
    }
    return o;
}

static void on_suppress_audited(struct pop *op, const json_t *replies)
{
    (void)replies;
    json_t *doc = op->doc;
    op->doc = NULL;
    finish(op, 0, doc, NULL);
}

/* The list changed (or not) on its shard: then the change is audited, and
 * the owner the address index names (checked by nobody: a wrong one only
 * decides again) has their rev moved. */
static void on_suppress(redisReply *r, enum store_error serr, const char *text, void *priv)
{
    struct pop *op = priv;
    (void)text;
    if (reply_failed(op, r, serr)) return;
    if (r->type != REDIS_REPLY_ARRAY || r->elements != 3 || r->element[0]->type != REDIS_REPLY_INTEGER) {
        finish_store(op, STORE_E_REPLY);
        return;
    }
    bool changed = r->element[0]->integer == 1;
    op->doc = suppression_json(op->on, r->element[1]);
    json_object_set_new(op->doc, "changed", json_boolean(changed));
    if (!changed) {
        on_suppress_audited(op, NULL);
        return;
    }
    struct store_args a[2];
    const char *script[2] = {NULL, NULL};
    size_t n = 0;
    store_suppress_audit_args(&a[n++], op->pp->cfg->prefix, op->channel, op->m, op->on, op->by,
                              op->body ? json_string_value(op->body) : "", op->now,
                              (long long)op->pp->cfg->audit_maxlen);
    const redisReply *owner = r->element[2];
    if (owner->type == REDIS_REPLY_STRING && herald_id_valid(owner->str)) {
        struct strbuf kp;
        strbuf_init(&kp);
        store_key_person(&kp, op->pp->cfg->prefix, owner->str);
        script[n] = store_lua_people_touch;
        store_args_script(&a[n], store_lua_people_touch, 1);
        store_args_add(&a[n], kp.buf);
        n++;
        strbuf_free(&kp);
    }
    group_send(op, a, script, n, on_suppress_audited);
}

static bool word_ok(const char *s)
{
    size_t n = 0;
    for (; s && s[n]; n++)
        if (!((s[n] >= 'a' && s[n] <= 'z') || s[n] == '_')) return false;
    return n > 0 && n < sizeof(((struct store_suppression *)0)->by);
}

int people_suppress_why(struct people *pp, int channel, const char *address, bool on,
                        const struct people_suppression *why, people_cb cb, void *arg)
{
    if (channel < 0 || channel >= HERALD_CH_COUNT || !address || !why || !word_ok(why->by)) return -HERALD_EINVAL;
    struct pop *op = pop_new(pp, OP_SUPPRESS, NULL, cb, arg);
    op->channel = channel;
    op->on = on;
    op->now = why->now;
    snprintf(op->by, sizeof(op->by), "%s", why->by);
    const char *reason = why->reason ? why->reason : "";
    if (strlen(reason) > HERALD_CONSENT_SOURCE_MAX || (*reason && !text_ok(reason))) {
        herald_seterr(op->err, sizeof(op->err), "reason: must be 0..%d printable characters",
                      HERALD_CONSENT_SOURCE_MAX);
        return fail_later(op, -HERALD_EINVAL);
    }
    op->body = json_string(reason);
    addrindex_member(pp->cfg->index_key, channel, address, op->m);
    struct store_args a;
    store_suppress_args(&a, pp->cfg->prefix, op->m, on, op->by, reason, op->now);
    int rc = store_cmds_send(pp->sc, STORE_CMD_ONCE, on_suppress, op, NULL, &a, store_lua_people_suppress);
    store_args_free(&a);
    if (rc < 0) {
        pop_free(op);
        return -HERALD_EREDIS;
    }
    return 0;
}

int people_suppress(struct people *pp, int channel, const char *address, bool on, people_cb cb, void *arg)
{
    struct people_suppression why = {.by = "webhook", .reason = "provider feedback", .now = (int64_t)time(NULL)};
    return people_suppress_why(pp, channel, address, on, &why, cb, arg);
}

static void on_suppression_info(redisReply *r, enum store_error serr, const char *text, void *priv)
{
    struct pop *op = priv;
    (void)text;
    if (reply_failed(op, r, serr)) return;
    finish(op, 0, suppression_json(op->on, r), NULL);
}

static void on_suppression_member(redisReply *r, enum store_error serr, const char *text, void *priv)
{
    struct pop *op = priv;
    (void)text;
    if (not_integer(op, r, serr)) return;
    op->on = r->integer == 1;
    if (!op->on) {
        finish(op, 0, suppression_json(false, NULL), NULL);
        return;
    }
    struct store_args a;
    const char *script = NULL;
    size_t n = 0;
    index_plain(op, &a, &script, &n, "HGET", ADDRINDEX_SUPPRESS_INFO, op->m);
    if (store_cmds_send(op->pp->sc, STORE_CMD_ONCE, on_suppression_info, op, NULL, &a, NULL) < 0)
        finish_store(op, STORE_E_CONNECTION);
    store_args_free(&a);
}

int people_suppression_get(struct people *pp, int channel, const char *address, people_cb cb, void *arg)
{
    if (channel < 0 || channel >= HERALD_CH_COUNT || !address) return -HERALD_EINVAL;
    struct pop *op = pop_new(pp, OP_SUPPRESS, NULL, cb, arg);
    addrindex_member(pp->cfg->index_key, channel, address, op->m);
    return start_index(op, on_suppression_member, "SISMEMBER", ADDRINDEX_SUPPRESS);
}
