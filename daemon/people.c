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

#include "digest.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "channel.h"
#include "mergepatch.h"
#include "profile.h"
#include "store.h"

/* Compare-and-set attempts before giving up (each one lost a race). Each
 * round of N writers racing on one person lets at least one through, so
 * this bounds the writers that may race on one person at once. */
#define PEOPLE_CAS_TRIES 32
#define PEOPLE_MAX_ARGS 32

struct people {
    struct store_cmds *sc; /* STORE_CMD_ONCE only: the caller answers someone now */
    const struct config *cfg;
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
    char *member;    /* FIND, SUPPRESS: "<channel>:<sha256 hex>" */
    char *cond;      /* PUT, PATCH, MERGE, ERASE: If-Match as the script takes it ("" none) */
    int channel;
    bool on;
    int64_t now;     /* SUPPRESS: since */
    char by[16];     /* SUPPRESS: who */
    int tries;
    int status;      /* fail_later: what the callback reports */
    char err[256];
    /* On a cluster (store_keys_clustered) the address index, the tombstones
     * and the counts are on other slots than the person, so a write's steps
     * go apart (cluster_write, cluster_erase; consent and suppress events) */
    struct store_args cl_write;      /* the person's script, once the index has the new addresses */
    struct store_args cl_index;      /* HSET addr <member> <id> ... (empty: none) */
    struct store_args cl_check;      /* SMISMEMBER tombstones ... (empty: none) */
    const char *cl_checked[HERALD_CH_COUNT]; /* the channels cl_check asks about, in order */
    json_t *cl_tomb;                 /* the channels found erased before */
    struct store_args cl_after;      /* the last step: addr_drop.lua, or a count or rev apart (empty: none) */
    long long cl_tombstones;         /* ERASE on a cluster: the tombstones cl_check added */
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

static struct pop *pop_new(struct people *pp, enum pop_kind kind, const char *id, people_cb cb, void *arg)
{
    struct pop *op = xcalloc(1, sizeof(*op));
    op->pp = pp;
    op->kind = kind;
    op->cb = cb;
    op->arg = arg;
    op->id = id ? xstrdup(id) : NULL;
    op->cond = xstrdup("");
    store_args_init(&op->cl_write);
    store_args_init(&op->cl_index);
    store_args_init(&op->cl_check);
    store_args_init(&op->cl_after);
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
    free(op->member);
    free(op->cond);
    store_args_free(&op->cl_write);
    store_args_free(&op->cl_index);
    store_args_free(&op->cl_check);
    store_args_free(&op->cl_after);
    json_decref(op->cl_tomb);
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
static int send_cmd(struct pop *op, store_cmd_cb cb, const char *script, size_t nkeys, int argc,
                    const char **argv)
{
    struct store_args a;
    if (script) store_args_script(&a, script, nkeys);
    else store_args_init(&a);
    for (int i = 0; i < argc; i++) store_args_add(&a, argv[i]);
    return store_cmds_send(op->pp->sc, STORE_CMD_ONCE, cb, op, NULL, &a, script);
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

/* reply_failed, and a reply to HMGET person profile rev that is not a pair:
 * true after answering; otherwise the two fields in *pj and *rv. */
static bool not_profile_rev(struct pop *op, const redisReply *r, enum store_error e, const redisReply **pj,
                            const redisReply **rv)
{
    if (reply_failed(op, r, e)) return true;
    if (r->type != REDIS_REPLY_ARRAY || r->elements != 2) {
        finish_store(op, STORE_E_REPLY);
        return true;
    }
    *pj = r->element[0];
    *rv = r->element[1];
    return false;
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

static void on_get_suppressed(redisReply *r, enum store_error serr, const char *text, void *priv)
{
    struct pop *op = priv;
    (void)text;
    if (reply_failed(op, r, serr)) return;
    json_t *sup = json_object_get(op->doc, "suppressed");
    /* The members went out in channel order, for the channels with an address. */
    json_t *prof = json_object_get(op->doc, "profile");
    size_t k = 0;
    for (int ch = 0; ch < HERALD_CH_COUNT; ch++) {
        if (!json_object_get(prof, channel_get(ch)->address_field)) continue;
        bool on = r->type == REDIS_REPLY_ARRAY && k < r->elements && r->element[k]->type == REDIS_REPLY_INTEGER &&
                  r->element[k]->integer == 1;
        json_object_set_new(sup, herald_channel_name(ch), json_boolean(on));
        k++;
    }
    json_t *doc = op->doc;
    op->doc = NULL;
    finish(op, 0, doc, NULL);
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
    const redisReply *pj = hash_field(h, "profile");
    struct profile p;
    char err[256];
    if (!pj || profile_parse(pj->str, pj->len, &p, err, sizeof(err)) < 0) {
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

    json_t *recs = json_array();
    for (size_t i = 0; ledger->type == REDIS_REPLY_ARRAY && i < ledger->elements; i++) {
        const redisReply *e = ledger->element[i];
        json_t *o = e->type == REDIS_REPLY_STRING ? load_object(e->str, e->len) : NULL;
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

    json_t *msgs = json_array();
    for (size_t i = 0; hist->type == REDIS_REPLY_ARRAY && i < hist->elements; i++) {
        const redisReply *e = hist->element[i];
        json_t *o = e->type == REDIS_REPLY_STRING ? store_history_json(e->str, e->len) : NULL;
        if (o) json_array_append_new(msgs, o);
    }
    json_object_set_new(doc, "messages", msgs);
    const redisReply *rev = hash_field(h, "rev");
    json_object_set_new(doc, "rev", json_integer(rev ? strtoll(rev->str, NULL, 10) : 0));

    /* Suppression is kept by address hash: ask for this person's. */
    struct strbuf key, m[HERALD_CH_COUNT];
    strbuf_init(&key);
    store_key_suppress(&key, op->pp->cfg->prefix);
    const char *argv[2 + HERALD_CH_COUNT];
    int argc = 0;
    argv[argc++] = "SMISMEMBER";
    argv[argc++] = key.buf;
    for (int ch = 0; ch < HERALD_CH_COUNT; ch++) {
        strbuf_init(&m[ch]);
        const char *addr = profile_address(&p, ch);
        if (!addr) continue;
        store_suppress_member(&m[ch], ch, addr);
        argv[argc++] = m[ch].buf;
    }
    profile_free(&p);
    op->doc = doc;
    if (argc == 2) {
        op->doc = NULL;
        finish(op, 0, doc, NULL);
    } else {
        send_or_finish(op, on_get_suppressed, NULL, 0, argc, argv);
    }
    strbuf_free(&key);
    for (int ch = 0; ch < HERALD_CH_COUNT; ch++) strbuf_free(&m[ch]);
}

int people_get(struct people *pp, const char *id, people_cb cb, void *arg)
{
    if (!herald_id_valid(id)) return -HERALD_EINVAL;
    struct pop *op = pop_new(pp, OP_GET, id, cb, arg);
    struct strbuf kp, kl, kh;
    strbuf_init(&kp);
    strbuf_init(&kl);
    strbuf_init(&kh);
    store_key_person(&kp, pp->cfg->prefix, id);
    store_key_ledger(&kl, pp->cfg->prefix, id);
    store_key_history(&kh, pp->cfg->prefix, id);
    char max[16];
    snprintf(max, sizeof(max), "%d", STORE_HISTORY_MAX);
    const char *argv[] = {kp.buf, kl.buf, kh.buf, max};
    int rc = start(op, on_get, store_lua_people_get, 3, 4, argv);
    strbuf_free(&kp);
    strbuf_free(&kl);
    strbuf_free(&kh);
    return rc;
}

/* ---- PUT and PATCH: read, merge, compare-and-set ------------------------- */

static void read_person(struct pop *op);

/* Appends the addr members (and tombstone members) of p's addresses. */
struct addr_args {
    struct strbuf m[HERALD_CH_COUNT], t[HERALD_CH_COUNT];
    bool has[HERALD_CH_COUNT];
};

static void addr_args_init(struct addr_args *a, const struct profile *p, const char *secret)
{
    for (int ch = 0; ch < HERALD_CH_COUNT; ch++) {
        strbuf_init(&a->m[ch]);
        strbuf_init(&a->t[ch]);
        const char *addr = p ? profile_address(p, ch) : NULL;
        a->has[ch] = addr != NULL;
        if (!addr) continue;
        store_suppress_member(&a->m[ch], ch, addr);
        if (secret) people_tombstone_member(&a->t[ch], secret, ch, addr);
        else strbuf_adds(&a->t[ch], "");
    }
}

static void addr_args_free(struct addr_args *a)
{
    for (int ch = 0; ch < HERALD_CH_COUNT; ch++) {
        strbuf_free(&a->m[ch]);
        strbuf_free(&a->t[ch]);
    }
}

/* ---- PUT, MERGE on a cluster ----------------------------------------------
 * The person's hash is on its own slot; the address index and the
 * tombstones are not. The write goes in steps, ordered for readers that
 * verify an index entry against the person (webhooks, inbound SMS): the
 * tombstones of the new addresses are read, the new addresses join the
 * index, the person is written (compare-and-set, as on one Redis), then the
 * addresses it no longer has leave the index. A step that fails ends the
 * call with its error: what is left is an index entry naming a person who
 * lacks the address, which readers ignore, and the next write replaces. */

static void on_cl_after(redisReply *r, enum store_error serr, const char *text, void *priv)
{
    struct pop *op = priv;
    (void)r, (void)serr, (void)text; /* a stale entry left behind is ignored by its readers */
    json_t *doc = op->doc;
    op->doc = NULL;
    finish(op, 0, doc, NULL);
}

/* On a cluster: op's last step (op->cl_after: a script's EVALSHA, or a
 * plain command with script NULL) goes once its main write is done; op
 * answers doc when it is in, whatever its answer (an index entry or a count
 * left behind changes no decision). */
static void finish_after(struct pop *op, json_t *doc, const char *script)
{
    json_decref(op->doc);
    op->doc = doc;
    if (store_cmds_send(op->pp->sc, STORE_CMD_ONCE, on_cl_after, op, NULL, &op->cl_after, script) < 0)
        on_cl_after(NULL, STORE_E_CONNECTION, NULL, op);
}

static void on_write(redisReply *r, enum store_error serr, const char *text, void *priv);

static void cl_send_write(struct pop *op)
{
    if (store_cmds_send(op->pp->sc, STORE_CMD_ONCE, on_write, op, NULL, &op->cl_write, store_lua_people_write) < 0)
        finish_store(op, STORE_E_CONNECTION);
}

static void on_cl_indexed(redisReply *r, enum store_error serr, const char *text, void *priv)
{
    struct pop *op = priv;
    (void)text;
    if (!reply_failed(op, r, serr)) cl_send_write(op);
}

static void cl_index(struct pop *op)
{
    if (!op->cl_index.n) { /* no address: nothing to index */
        cl_send_write(op);
        return;
    }
    if (store_cmds_send(op->pp->sc, STORE_CMD_ONCE, on_cl_indexed, op, NULL, &op->cl_index, NULL) < 0)
        finish_store(op, STORE_E_CONNECTION);
}

static void on_cl_checked(redisReply *r, enum store_error serr, const char *text, void *priv)
{
    struct pop *op = priv;
    (void)text;
    if (reply_failed(op, r, serr)) return;
    for (size_t i = 0; r->type == REDIS_REPLY_ARRAY && i < r->elements && i < HERALD_CH_COUNT; i++)
        if (r->element[i]->type == REDIS_REPLY_INTEGER && r->element[i]->integer == 1 && op->cl_checked[i])
            json_array_append_new(op->cl_tomb, json_string(op->cl_checked[i]));
    cl_index(op);
}

/* Builds the steps of a PUT or MERGE on a cluster (argv: people_write.lua's
 * arguments after its keys, without the address lists) and starts them. */
static void cluster_write(struct pop *op, const char *kp, const char *ka, const char *kt, const char *const *argv,
                          int argc, const struct addr_args *olda, const struct addr_args *newa)
{
    struct store_args *w = &op->cl_write, *ix = &op->cl_index, *ck = &op->cl_check, *dr = &op->cl_after;
    store_args_free(ix);
    store_args_free(ck);
    store_args_free(dr);
    store_args_free(w);
    json_decref(op->cl_tomb);
    op->cl_tomb = json_array();
    store_args_script(w, store_lua_people_write, 1);
    store_args_add(w, kp);
    for (int i = 0; i < argc; i++) store_args_add(w, argv[i]);
    store_args_add(w, "0"); /* no old address to drop here, */
    store_args_add(w, "0"); /* no new one to index: the steps do */
    size_t nc = 0;
    for (int ch = 0; ch < HERALD_CH_COUNT; ch++) {
        if (newa->has[ch]) {
            if (!ix->n) {
                store_args_add(ix, "HSET");
                store_args_add(ix, ka);
            }
            store_args_add(ix, newa->m[ch].buf);
            store_args_add(ix, op->id);
            if (newa->t[ch].len) {
                if (!ck->n) {
                    store_args_add(ck, "SMISMEMBER");
                    store_args_add(ck, kt);
                }
                store_args_add(ck, newa->t[ch].buf);
                op->cl_checked[nc++] = herald_channel_name(ch);
            }
        }
        if (!olda->has[ch] || (newa->has[ch] && strcmp(olda->m[ch].buf, newa->m[ch].buf) == 0)) continue;
        if (!dr->n) {
            store_args_script(dr, store_lua_addr_drop, 1);
            store_args_add(dr, ka);
            store_args_add(dr, op->id);
        }
        store_args_add(dr, olda->m[ch].buf);
    }
    for (size_t i = nc; i < HERALD_CH_COUNT; i++) op->cl_checked[i] = NULL;
    if (!ck->n) {
        cl_index(op);
        return;
    }
    if (store_cmds_send(op->pp->sc, STORE_CMD_ONCE, on_cl_checked, op, NULL, ck, NULL) < 0)
        finish_store(op, STORE_E_CONNECTION);
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
        finish(op, -HERALD_EPRECOND, NULL, precond_failed);
        return;
    }
    if (strcmp(st, "stale") == 0) {
        if (++op->tries >= PEOPLE_CAS_TRIES) {
            finish(op, -HERALD_EBUSY, NULL, "the recipient's data kept changing meanwhile; try again");
            return;
        }
        read_person(op);
        return;
    }
    if (strcmp(st, "gone") == 0) {
        finish(op, -HERALD_ENOENT, NULL, "no such recipient");
        return;
    }
    if (strcmp(st, "ok") != 0 || r->elements != 4 || r->element[3]->type != REDIS_REPLY_INTEGER) {
        finish_store(op, STORE_E_REPLY);
        return;
    }
    json_t *doc;
    if (op->kind == OP_PUT || op->kind == OP_MERGE) {
        json_t *tomb = op->cl_tomb ? json_incref(op->cl_tomb) : json_array();
        const redisReply *t = r->element[2];
        for (size_t i = 0; t->type == REDIS_REPLY_ARRAY && i < t->elements; i++)
            if (t->element[i]->type == REDIS_REPLY_STRING)
                json_array_append_new(tomb, json_string(t->element[i]->str));
        doc = json_pack("{s:s, s:o}", "id", op->id, "tombstoned", tomb);
        if (op->kind == OP_PUT) json_object_set_new(doc, "created", json_boolean(r->element[1]->integer == 1));
    } else {
        doc = op->doc;
        op->doc = NULL;
    }
    json_object_set_new(doc, "rev", json_integer(r->element[3]->integer));
    if (op->cl_after.n) { /* on a cluster: the addresses it no longer has leave the index now */
        finish_after(op, doc, store_lua_addr_drop);
        return;
    }
    finish(op, 0, doc, NULL);
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

/* The reply to HMGET person profile rev: build the new profile, then CAS. */
static void on_read_person(redisReply *r, enum store_error serr, const char *text, void *priv)
{
    struct pop *op = priv;
    (void)text;
    const redisReply *pj, *rv;
    if (not_profile_rev(op, r, serr, &pj, &rv)) return;
    const char *rev = rv->type == REDIS_REPLY_STRING ? rv->str : "";
    char err[256];
    struct profile oldp, newp;
    bool have_old = false;
    json_t *obj;
    if (pj->type == REDIS_REPLY_STRING && profile_parse(pj->str, pj->len, &oldp, err, sizeof(err)) == 0)
        have_old = true;
    if (op->kind == OP_PATCH || op->kind == OP_MERGE) {
        if (pj->type != REDIS_REPLY_STRING) {
            /* A condition needs a current representation (RFC 9110 13.1.1). */
            if (op->cond[0]) finish(op, -HERALD_EPRECOND, NULL, precond_failed);
            else finish(op, -HERALD_ENOENT, NULL, "no such recipient");
            return;
        }
        obj = load_object(pj->str, pj->len);
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
        json_t *stored = pj->type == REDIS_REPLY_STRING ? load_object(pj->str, pj->len) : NULL;
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

    /* Addresses: PATCH of the preferences never changes them, so it sends none. */
    struct addr_args olda, newa;
    bool addrs = op->kind == OP_PUT || op->kind == OP_MERGE;
    addr_args_init(&olda, addrs && have_old ? &oldp : NULL, NULL);
    addr_args_init(&newa, addrs ? &newp : NULL, secret_of(op->pp->cfg));
    struct strbuf kp, ka, kt;
    strbuf_init(&kp);
    strbuf_init(&ka);
    strbuf_init(&kt);
    store_key_person(&kp, op->pp->cfg->prefix, op->id);
    store_key_addr(&ka, op->pp->cfg->prefix);
    store_key_tombstones(&kt, op->pp->cfg->prefix);
    const char *argv[PEOPLE_MAX_ARGS];
    char nold[16], nnew[16];
    int argc = 0, no = 0, nn = 0;
    argv[argc++] = kp.buf;
    argv[argc++] = ka.buf;
    argv[argc++] = kt.buf;
    argv[argc++] = rev;
    argv[argc++] = json;
    argv[argc++] = op->id;
    argv[argc++] = op->kind == OP_PUT ? "0" : "1";
    argv[argc++] = op->cond;
    argv[argc++] = nold;
    for (int ch = 0; ch < HERALD_CH_COUNT; ch++) {
        /* An address kept as it was stays; only changed ones are dropped. */
        if (!olda.has[ch] || (newa.has[ch] && strcmp(olda.m[ch].buf, newa.m[ch].buf) == 0)) continue;
        argv[argc++] = olda.m[ch].buf;
        no++;
    }
    argv[argc++] = nnew;
    for (int ch = 0; ch < HERALD_CH_COUNT; ch++) {
        if (!newa.has[ch]) continue;
        argv[argc++] = newa.m[ch].buf;
        argv[argc++] = newa.t[ch].buf;
        argv[argc++] = herald_channel_name(ch);
        nn++;
    }
    snprintf(nold, sizeof(nold), "%d", no);
    snprintf(nnew, sizeof(nnew), "%d", nn);
    if (store_keys_clustered()) cluster_write(op, kp.buf, ka.buf, kt.buf, argv + 3, 5, &olda, &newa);
    else send_or_finish(op, on_write, store_lua_people_write, 3, argc, argv);
    strbuf_free(&kp);
    strbuf_free(&ka);
    strbuf_free(&kt);
    addr_args_free(&olda);
    addr_args_free(&newa);
    free(json);
    profile_free(&newp);
    if (have_old) profile_free(&oldp);
}

static void read_person(struct pop *op)
{
    struct strbuf kp;
    strbuf_init(&kp);
    store_key_person(&kp, op->pp->cfg->prefix, op->id);
    const char *argv[] = {"HMGET", kp.buf, "profile", "rev"};
    send_or_finish(op, on_read_person, NULL, 0, 4, argv);
    strbuf_free(&kp);
}

static int start_read(struct pop *op)
{
    struct strbuf kp;
    strbuf_init(&kp);
    store_key_person(&kp, op->pp->cfg->prefix, op->id);
    const char *argv[] = {"HMGET", kp.buf, "profile", "rev"};
    int rc = start(op, on_read_person, NULL, 0, 4, argv);
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
    json_t *doc = load_object(op->record, strlen(op->record));
    if (op->cl_after.n) { /* on a cluster: the event's count, apart (it is on the control plane's slot) */
        finish_after(op, doc, NULL);
        return;
    }
    finish(op, 0, doc, NULL);
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
    op->record = consent_record_to_json(&rec);
    op->channel = channel;
    struct strbuf kp, kl;
    strbuf_init(&kp);
    strbuf_init(&kl);
    store_key_person(&kp, pp->cfg->prefix, id);
    store_key_ledger(&kl, pp->cfg->prefix, id);
    char ttl[HERALD_LL_CHARS];
    const char *field = channel_get(channel)->consent_field;
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
        store_args_add(&op->cl_after, "HINCRBY");
        store_args_add(&op->cl_after, ev->counts);
        store_args_add(&op->cl_after, ev->field);
        store_args_add(&op->cl_after, "1");
        const char *argv[] = {kp.buf, kl.buf, ke.buf, op->record, field, ttl};
        rc = start(op, on_consent, store_lua_people_consent, 3, 6, argv);
        strbuf_free(&ke);
    } else if (ev) {
        herald_lltoa(ttl, (long long)ev->ttl_s);
        const char *argv[] = {kp.buf, kl.buf, ev->key, ev->counts, op->record, field, ttl, ev->field};
        rc = start(op, on_consent, store_lua_people_consent, 4, 8, argv);
    } else {
        const char *argv[] = {kp.buf, kl.buf, op->record, field};
        rc = start(op, on_consent, store_lua_people_consent, 2, 4, argv);
    }
    strbuf_free(&kp);
    strbuf_free(&kl);
    return rc;
}

int people_consent_append(struct people *pp, const char *id, int channel, bool granted, const char *source,
                          const char *text_version, int64_t now, people_cb cb, void *arg)
{
    return people_consent_append_event(pp, id, channel, granted, source, text_version, now, NULL, cb, arg);
}

/* ---- erasure ------------------------------------------------------------- */

static void erase_read(struct pop *op, bool first, int *rcp);

static void on_erase(redisReply *r, enum store_error serr, const char *text, void *priv)
{
    struct pop *op = priv;
    (void)text;
    if (not_integer(op, r, serr)) return;
    if (r->integer == -3) {
        finish(op, -HERALD_EPRECOND, NULL, precond_failed);
        return;
    }
    if (r->integer == -2) {
        finish(op, -HERALD_ENOENT, NULL, "no such recipient");
        return;
    }
    if (r->integer == -1) {
        if (++op->tries >= PEOPLE_CAS_TRIES) {
            finish(op, -HERALD_EBUSY, NULL, "the recipient's data kept changing meanwhile; try again");
            return;
        }
        erase_read(op, false, NULL);
        return;
    }
    json_t *doc = json_pack("{s:s, s:b, s:I}", "id", op->id, "erased", 1,
                            "tombstones", (json_int_t)(store_keys_clustered() ? op->cl_tombstones : r->integer));
    if (op->cl_after.n) { /* on a cluster: its addresses leave the index now */
        finish_after(op, doc, store_lua_addr_drop);
        return;
    }
    finish(op, 0, doc, NULL);
}

/* ---- DELETE on a cluster: the tombstones first (an erasure must never
 * leave an address importable with consent), then the person's keys on its
 * slot (compare-and-set, as on one Redis), then the index entries. */

static void on_cl_tombstoned(redisReply *r, enum store_error serr, const char *text, void *priv)
{
    struct pop *op = priv;
    (void)text;
    if (reply_failed(op, r, serr)) return;
    if (store_cmds_send(op->pp->sc, STORE_CMD_ONCE, on_erase, op, NULL, &op->cl_write, store_lua_people_erase) < 0)
        finish_store(op, STORE_E_CONNECTION);
}

static void cluster_erase(struct pop *op, const char *const *keys, const char *const *args, const struct strbuf *m,
                          const struct strbuf *t)
{
    store_args_free(&op->cl_write);
    store_args_free(&op->cl_check);
    store_args_free(&op->cl_after);
    op->cl_tombstones = 0;
    store_args_script(&op->cl_write, store_lua_people_erase, 4);
    for (int i = 0; i < 4; i++) store_args_add(&op->cl_write, keys[i]); /* the person's slot only */
    for (int i = 0; i < 3; i++) store_args_add(&op->cl_write, args[i]);
    store_args_add(&op->cl_write, "0"); /* no address here: the steps do them */
    for (int ch = 0; ch < HERALD_CH_COUNT; ch++) {
        if (!m[ch].len) continue;
        if (!op->cl_check.n) {
            store_args_add(&op->cl_check, "SADD");
            store_args_add(&op->cl_check, keys[5]);
            store_args_script(&op->cl_after, store_lua_addr_drop, 1);
            store_args_add(&op->cl_after, keys[4]);
            store_args_add(&op->cl_after, op->id);
        }
        store_args_add(&op->cl_check, t[ch].buf);
        store_args_add(&op->cl_after, m[ch].buf);
        op->cl_tombstones++;
    }
    struct store_args *first = op->cl_check.n ? &op->cl_check : &op->cl_write;
    store_cmd_cb cb = op->cl_check.n ? on_cl_tombstoned : on_erase;
    if (store_cmds_send(op->pp->sc, STORE_CMD_ONCE, cb, op, NULL, first, op->cl_check.n ? NULL : store_lua_people_erase) < 0)
        finish_store(op, STORE_E_CONNECTION);
}

static void on_erase_read(redisReply *r, enum store_error serr, const char *text, void *priv)
{
    struct pop *op = priv;
    (void)text;
    const redisReply *pj, *rv;
    if (not_profile_rev(op, r, serr, &pj, &rv)) return;
    if (pj->type != REDIS_REPLY_STRING) {
        if (op->cond[0]) finish(op, -HERALD_EPRECOND, NULL, precond_failed);
        else finish(op, -HERALD_ENOENT, NULL, "no such recipient");
        return;
    }
    const char *secret = secret_of(op->pp->cfg); /* people_erase checked it is there */
    /* Read the addresses from the JSON itself, so even one that no longer
     * passes validation is tombstoned. */
    json_t *obj = load_object(pj->str, pj->len);
    struct strbuf kp, kl, kh, ks, ka, kt, m[HERALD_CH_COUNT], t[HERALD_CH_COUNT];
    strbuf_init(&kp);
    strbuf_init(&kl);
    strbuf_init(&kh);
    strbuf_init(&ks);
    strbuf_init(&ka);
    strbuf_init(&kt);
    const char *prefix = op->pp->cfg->prefix;
    store_key_person(&kp, prefix, op->id);
    store_key_ledger(&kl, prefix, op->id);
    store_key_history(&kh, prefix, op->id);
    store_key_sends(&ks, prefix, op->id);
    store_key_addr(&ka, prefix);
    store_key_tombstones(&kt, prefix);
    const char *argv[PEOPLE_MAX_ARGS];
    int argc = 0, n = 0;
    char nbuf[16];
    argv[argc++] = kp.buf;
    argv[argc++] = kl.buf;
    argv[argc++] = kh.buf;
    argv[argc++] = ks.buf;
    argv[argc++] = ka.buf;
    argv[argc++] = kt.buf;
    argv[argc++] = rv->type == REDIS_REPLY_STRING ? rv->str : "";
    argv[argc++] = op->id;
    argv[argc++] = op->cond;
    argv[argc++] = nbuf;
    for (int ch = 0; ch < HERALD_CH_COUNT; ch++) {
        strbuf_init(&m[ch]);
        strbuf_init(&t[ch]);
        const json_t *a = json_object_get(obj, channel_get(ch)->address_field);
        if (!json_is_string(a) || !*json_string_value(a)) continue;
        store_suppress_member(&m[ch], ch, json_string_value(a));
        people_tombstone_member(&t[ch], secret, ch, json_string_value(a));
        n++;
    }
    for (int ch = 0; ch < HERALD_CH_COUNT; ch++)
        if (m[ch].len) argv[argc++] = m[ch].buf;
    for (int ch = 0; ch < HERALD_CH_COUNT; ch++)
        if (m[ch].len) argv[argc++] = t[ch].buf;
    snprintf(nbuf, sizeof(nbuf), "%d", n);
    if (store_keys_clustered()) cluster_erase(op, argv, argv + 6, m, t);
    else send_or_finish(op, on_erase, store_lua_people_erase, 6, argc, argv);
    json_decref(obj);
    strbuf_free(&kp);
    strbuf_free(&kl);
    strbuf_free(&kh);
    strbuf_free(&ks);
    strbuf_free(&ka);
    strbuf_free(&kt);
    for (int ch = 0; ch < HERALD_CH_COUNT; ch++) {
        strbuf_free(&m[ch]);
        strbuf_free(&t[ch]);
    }
}

/* first: the public call (failure frees op and is reported through *rcp);
 * later: a retry (failure ends op through its callback). */
static void erase_read(struct pop *op, bool first, int *rcp)
{
    struct strbuf kp;
    strbuf_init(&kp);
    store_key_person(&kp, op->pp->cfg->prefix, op->id);
    const char *argv[] = {"HMGET", kp.buf, "profile", "rev"};
    if (first) *rcp = start(op, on_erase_read, NULL, 0, 4, argv);
    else send_or_finish(op, on_erase_read, NULL, 0, 4, argv);
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

static void on_find(redisReply *r, enum store_error serr, const char *text, void *priv)
{
    struct pop *op = priv;
    (void)text;
    if (reply_failed(op, r, serr)) return;
    if (r->type == REDIS_REPLY_NIL) {
        finish(op, -HERALD_ENOENT, NULL, "no recipient has this address");
        return;
    }
    if (r->type != REDIS_REPLY_STRING) {
        finish_store(op, STORE_E_REPLY);
        return;
    }
    finish(op, 0, json_pack("{s:s}", "id", r->str), NULL);
}

int people_find_by_address(struct people *pp, int channel, const char *address, people_cb cb, void *arg)
{
    if (channel < 0 || channel >= HERALD_CH_COUNT || !address) return -HERALD_EINVAL;
    struct pop *op = pop_new(pp, OP_FIND, NULL, cb, arg);
    struct strbuf ka, m;
    strbuf_init(&ka);
    strbuf_init(&m);
    store_key_addr(&ka, pp->cfg->prefix);
    store_suppress_member(&m, channel, address);
    const char *argv[] = {"HGET", ka.buf, m.buf};
    int rc = start(op, on_find, NULL, 0, 3, argv);
    strbuf_free(&ka);
    strbuf_free(&m);
    return rc;
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

static void on_suppress(redisReply *r, enum store_error serr, const char *text, void *priv)
{
    struct pop *op = priv;
    (void)text;
    if (reply_failed(op, r, serr)) return;
    if (r->type != REDIS_REPLY_ARRAY || r->elements != 2 || r->element[0]->type != REDIS_REPLY_INTEGER) {
        finish_store(op, STORE_E_REPLY);
        return;
    }
    json_t *doc = suppression_json(op->on, r->element[1]);
    json_object_set_new(doc, "changed", json_boolean(r->element[0]->integer == 1));
    if (r->element[0]->integer == 1 && op->cl_after.n) { /* on a cluster: the owner's rev, apart */
        finish_after(op, doc, NULL);
        return;
    }
    finish(op, 0, doc, NULL);
}

/* Knows whose address it is (or that nobody's): now change the list and
 * that person's rev in one step. */
static void on_suppress_owner(redisReply *r, enum store_error serr, const char *text, void *priv)
{
    struct pop *op = priv;
    (void)text;
    if (reply_failed(op, r, serr)) return;
    const char *owner = r->type == REDIS_REPLY_STRING ? r->str : NULL;
    if (owner && store_keys_clustered() && herald_id_valid(owner)) {
        /* On a cluster the owner's hash is on another slot than the list:
         * its rev moves right after the list changed (on_suppress). */
        struct strbuf kp;
        strbuf_init(&kp);
        store_key_person(&kp, op->pp->cfg->prefix, owner);
        store_args_add(&op->cl_after, "HINCRBY");
        store_args_add(&op->cl_after, kp.buf);
        store_args_add(&op->cl_after, "rev");
        store_args_add(&op->cl_after, "1");
        strbuf_free(&kp);
        owner = NULL;
    }
    struct store_args a;
    store_suppress_args(&a, op->pp->cfg->prefix, op->channel, op->record, owner, op->on, op->by,
                        op->body ? json_string_value(op->body) : "", op->now, (long long)op->pp->cfg->audit_maxlen);
    if (store_cmds_send(op->pp->sc, STORE_CMD_ONCE, on_suppress, op, NULL, &a, store_lua_people_suppress) < 0)
        finish_store(op, STORE_E_CONNECTION);
    store_args_free(&a);
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
    op->record = xstrdup(address); /* the address, for the script's arguments; never logged */
    struct strbuf ka, m;
    strbuf_init(&ka);
    strbuf_init(&m);
    store_key_addr(&ka, pp->cfg->prefix);
    store_suppress_member(&m, channel, address);
    op->member = strbuf_detach(&m, NULL);
    const char *argv[] = {"HGET", ka.buf, op->member};
    int rc = start(op, on_suppress_owner, NULL, 0, 3, argv);
    strbuf_free(&ka);
    return rc;
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
    struct strbuf k;
    strbuf_init(&k);
    store_key_suppress_info(&k, op->pp->cfg->prefix);
    const char *argv[] = {"HGET", k.buf, op->member};
    send_or_finish(op, on_suppression_info, NULL, 0, 3, argv);
    strbuf_free(&k);
}

int people_suppression_get(struct people *pp, int channel, const char *address, people_cb cb, void *arg)
{
    if (channel < 0 || channel >= HERALD_CH_COUNT || !address) return -HERALD_EINVAL;
    struct pop *op = pop_new(pp, OP_SUPPRESS, NULL, cb, arg);
    struct strbuf k, m;
    strbuf_init(&k);
    strbuf_init(&m);
    store_key_suppress(&k, pp->cfg->prefix);
    store_suppress_member(&m, channel, address);
    op->member = strbuf_detach(&m, NULL);
    const char *argv[] = {"SISMEMBER", k.buf, op->member};
    int rc = start(op, on_suppression_member, NULL, 0, 3, argv);
    strbuf_free(&k);
    return rc;
}
