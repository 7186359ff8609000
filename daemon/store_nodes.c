/*
 * store_nodes.c - see store_nodes.h. Three steps, each waiting for the one
 * before: the campaign's run, the run's nodes set, then one HGETALL per
 * node (each routed by its key, so that a key a reshard moved is still
 * found). Never logs; decides nothing from a failed read.
 */
#include "store_nodes.h"

#include <stdlib.h>
#include <string.h>

#include "rcluster.h"
#include "store.h"

struct counts_read {
    struct store_cmds *sc;
    char *prefix, *campaign;
    unsigned flags;
    store_node_counts_cb cb;
    void *arg;
    char run[32];
    bool all;    /* every run's counters: an earlier run's fields named "run:<n>:<field>" */
    size_t left;
    bool failed;
    enum store_error err;
    char text[128];
    struct store_node_counts c;
};

void store_node_counts_free(struct store_node_counts *c)
{
    for (size_t i = 0; i < c->n; i++) free(c->field[i]);
    free(c->field);
    free(c->value);
    memset(c, 0, sizeof(*c));
}

static void counts_end(struct counts_read *cr)
{
    if (cr->failed) cr->cb(NULL, cr->err, cr->text, cr->arg);
    else cr->cb(&cr->c, STORE_E_COUNT, NULL, cr->arg);
    store_node_counts_free(&cr->c);
    free(cr->prefix);
    free(cr->campaign);
    free(cr);
}

static void counts_fail(struct counts_read *cr, enum store_error err, const char *text)
{
    if (cr->failed) return;
    cr->failed = true;
    cr->err = err;
    herald_copy(cr->text, sizeof(cr->text), text ? text : "");
}

static void counts_add(struct store_node_counts *c, const char *f, long long v)
{
    for (size_t i = 0; i < c->n; i++)
        if (strcmp(c->field[i], f) == 0) {
            c->value[i] += v;
            return;
        }
    c->field = xrealloc(c->field, (c->n + 1) * sizeof(*c->field));
    c->value = xrealloc(c->value, (c->n + 1) * sizeof(*c->value));
    c->field[c->n] = xstrdup(f);
    c->value[c->n++] = v;
}

/* Sends argv routed by its key (argv[1]); false (the read failed) when a
 * STORE_CMD_ONCE command cannot go out. */
static bool counts_send(struct counts_read *cr, store_cmd_cb cb, void *arg, const char *const *argv)
{
    struct store_args a;
    store_args_init(&a);
    for (size_t i = 0; argv[i]; i++) store_args_add(&a, argv[i]);
    store_args_route(&a, argv[1], strlen(argv[1]));
    if (store_cmds_send(cr->sc, cr->flags, cb, arg, NULL, &a, NULL) < 0) {
        store_args_free(&a);
        counts_fail(cr, STORE_E_CONNECTION, "connection lost");
        return false;
    }
    return true;
}

static void counts_add_hash(struct store_node_counts *out, const redisReply *r, const char *field_prefix);

/* One run's read: its number, and the prefix of its fields ("" the latest). */
struct run_read {
    struct counts_read *cr;
    char run[32];
    char field_prefix[48];
};

static void run_read_done(struct run_read *rr)
{
    struct counts_read *cr = rr->cr;
    free(rr);
    if (--cr->left == 0) counts_end(cr);
}

static void on_hash(redisReply *r, enum store_error err, const char *text, void *arg)
{
    struct run_read *rr = arg;
    struct counts_read *cr = rr->cr;
    if (!r) {
        counts_fail(cr, err, text);
    } else if (r->type != REDIS_REPLY_ARRAY) {
        counts_fail(cr, STORE_E_REPLY, "unexpected reply");
    } else {
        counts_add_hash(&cr->c, r, rr->field_prefix);
    }
    run_read_done(rr);
}

static void on_nodes(redisReply *r, enum store_error err, const char *text, void *arg)
{
    struct run_read *rr = arg;
    struct counts_read *cr = rr->cr;
    if (!r) counts_fail(cr, err, text);
    else if (r->type != REDIS_REPLY_ARRAY) counts_fail(cr, STORE_E_REPLY, "unexpected reply");
    if (cr->failed || r->elements == 0) {
        run_read_done(rr);
        return;
    }
    struct strbuf k;
    strbuf_init(&k);
    char run[40] = ":";
    herald_copy(run + 1, sizeof(run) - 1, rr->run);
    for (size_t i = 0; i < r->elements; i++) {
        if (r->element[i]->type != REDIS_REPLY_STRING) continue;
        store_key_node(&k, cr->prefix, r->element[i]->str, ":campaign:", cr->campaign, run);
        struct run_read *hr = xmalloc(sizeof(*hr));
        *hr = *rr;
        cr->left++;
        if (!counts_send(cr, on_hash, hr, (const char *const[]){"HGETALL", k.buf, NULL})) {
            cr->left--;
            free(hr);
            break;
        }
    }
    strbuf_free(&k);
    run_read_done(rr);
}

static void on_run(redisReply *r, enum store_error err, const char *text, void *arg)
{
    struct counts_read *cr = arg;
    /* HMGET run dones: the run, and how many of its entries had finished
     * before any counter below was read. */
    const redisReply *run = r && r->type == REDIS_REPLY_ARRAY && r->elements == 2 ? r->element[0] : NULL;
    const redisReply *dones = run ? r->element[1] : NULL;
    if (!r) counts_fail(cr, err, text);
    else if (!run || (run->type != REDIS_REPLY_STRING && run->type != REDIS_REPLY_NIL) ||
             (dones->type != REDIS_REPLY_STRING && dones->type != REDIS_REPLY_NIL))
        counts_fail(cr, STORE_E_REPLY, "unexpected reply");
    if (cr->failed || run->type == REDIS_REPLY_NIL) { /* no such campaign: no counts */
        counts_end(cr);
        return;
    }
    cr->c.dones = dones->type == REDIS_REPLY_STRING ? strtoll(dones->str, NULL, 10) : 0;
    herald_copy(cr->run, sizeof(cr->run), run->str);
    long long latest = strtoll(cr->run, NULL, 10);
    cr->c.run = latest;
    struct strbuf k;
    strbuf_init(&k);
    cr->left = 1; /* held while the reads go out */
    for (long long n = cr->all ? 1 : latest; n <= latest; n++) {
        struct run_read *rr = xcalloc(1, sizeof(*rr));
        rr->cr = cr;
        if (n == latest) {
            herald_copy(rr->run, sizeof(rr->run), cr->run);
        } else {
            snprintf(rr->run, sizeof(rr->run), "%lld", n);
            snprintf(rr->field_prefix, sizeof(rr->field_prefix), "%s%lld:", STORE_NODE_RUN_FIELD, n);
        }
        store_key_campaign_nodes(&k, cr->prefix, cr->campaign, rr->run);
        cr->left++;
        if (!counts_send(cr, on_nodes, rr, (const char *const[]){"SMEMBERS", k.buf, NULL})) {
            cr->left--;
            free(rr);
            break;
        }
    }
    strbuf_free(&k);
    if (--cr->left == 0) counts_end(cr);
}

static int counts_read(struct store_cmds *sc, const char *prefix, const char *campaign, unsigned flags, bool all,
                       store_node_counts_cb cb, void *arg)
{
    struct counts_read *cr = xcalloc(1, sizeof(*cr));
    cr->all = all;
    cr->sc = sc;
    cr->prefix = xstrdup(prefix);
    cr->campaign = xstrdup(campaign);
    cr->flags = flags;
    cr->cb = cb;
    cr->arg = arg;
    struct strbuf k;
    strbuf_init(&k);
    store_key_campaign(&k, prefix, campaign);
    bool sent = counts_send(cr, on_run, cr, (const char *const[]){"HMGET", k.buf, "run", "dones", NULL});
    strbuf_free(&k);
    if (!sent) {
        free(cr->prefix);
        free(cr->campaign);
        free(cr);
        return -HERALD_EREDIS;
    }
    return 0;
}

int store_node_counts_read(struct store_cmds *sc, const char *prefix, const char *campaign, unsigned flags,
                           store_node_counts_cb cb, void *arg)
{
    return counts_read(sc, prefix, campaign, flags, false, cb, arg);
}

int store_node_counts_read_runs(struct store_cmds *sc, const char *prefix, const char *campaign, unsigned flags,
                                store_node_counts_cb cb, void *arg)
{
    return counts_read(sc, prefix, campaign, flags, true, cb, arg);
}

/* ---- heraldctl's blocking form ------------------------------------------ */

/* The fields of an HGETALL reply r, added to out, each name after field_prefix. */
static void counts_add_hash(struct store_node_counts *out, const redisReply *r, const char *field_prefix)
{
    char f[160];
    for (size_t i = 0; i + 1 < r->elements; i += 2)
        if (r->element[i]->type == REDIS_REPLY_STRING && r->element[i + 1]->type == REDIS_REPLY_STRING) {
            snprintf(f, sizeof(f), "%s%s", field_prefix, r->element[i]->str);
            counts_add(out, f, strtoll(r->element[i + 1]->str, NULL, 10));
        }
}

int store_node_counts_sync(redisContext *c, struct rcluster_sync *cs, const char *prefix, const char *campaign,
                           struct store_node_counts *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof(*out));
    struct strbuf k;
    strbuf_init(&k);
    int rc = -HERALD_EREDIS;
    redisReply *nodes = NULL;
    store_key_campaign(&k, prefix, campaign);
    redisReply *r = redisCommand(c, "HGET %s run", k.buf);
    if (!r || (r->type != REDIS_REPLY_STRING && r->type != REDIS_REPLY_NIL)) {
        store_sync_error(err, errlen, "progress read", c, r);
        goto out;
    }
    if (r->type == REDIS_REPLY_NIL) { /* no such campaign: no counts */
        rc = 0;
        goto out;
    }
    long long latest = strtoll(r->str, NULL, 10);
    out->run = latest;
    for (long long n = 1; n <= latest; n++) { /* every run's: heraldctl shows each */
        char run[40], field_prefix[48] = "";
        snprintf(run, sizeof(run), ":%lld", n);
        if (n < latest) snprintf(field_prefix, sizeof(field_prefix), "%s%lld:", STORE_NODE_RUN_FIELD, n);
        store_key_campaign_nodes(&k, prefix, campaign, run + 1);
        if (nodes) freeReplyObject(nodes);
        nodes = redisCommand(c, "SMEMBERS %s", k.buf);
        if (!nodes || nodes->type != REDIS_REPLY_ARRAY) {
            store_sync_error(err, errlen, "progress read", c, nodes);
            store_node_counts_free(out);
            goto out;
        }
        for (size_t i = 0; i < nodes->elements; i++) {
            if (nodes->element[i]->type != REDIS_REPLY_STRING) continue;
            store_key_node(&k, prefix, nodes->element[i]->str, ":campaign:", campaign, run);
            const char *argv[] = {"HGETALL", k.buf};
            const size_t lens[] = {7, k.len};
            redisReply *h = rcluster_sync_command(cs, 1, 2, argv, lens, err, errlen);
            if (!h || h->type != REDIS_REPLY_ARRAY) {
                if (h) herald_seterr(err, errlen, "progress read: %s", h->type == REDIS_REPLY_ERROR ? h->str : "unexpected reply");
                if (h) freeReplyObject(h);
                store_node_counts_free(out);
                goto out;
            }
            counts_add_hash(out, h, field_prefix);
            freeReplyObject(h);
        }
    }
    rc = 0;
out:
    if (r) freeReplyObject(r);
    if (nodes) freeReplyObject(nodes);
    strbuf_free(&k);
    return rc;
}
