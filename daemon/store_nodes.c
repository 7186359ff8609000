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
static bool counts_send(struct counts_read *cr, store_cmd_cb cb, const char *const *argv)
{
    struct store_args a;
    store_args_init(&a);
    for (size_t i = 0; argv[i]; i++) store_args_add(&a, argv[i]);
    store_args_route(&a, argv[1], strlen(argv[1]));
    if (store_cmds_send(cr->sc, cr->flags, cb, cr, NULL, &a, NULL) < 0) {
        store_args_free(&a);
        counts_fail(cr, STORE_E_CONNECTION, "connection lost");
        return false;
    }
    return true;
}

static void counts_add_hash(struct store_node_counts *out, const redisReply *r);

static void on_hash(redisReply *r, enum store_error err, const char *text, void *arg)
{
    struct counts_read *cr = arg;
    if (!r) {
        counts_fail(cr, err, text);
    } else if (r->type != REDIS_REPLY_ARRAY) {
        counts_fail(cr, STORE_E_REPLY, "unexpected reply");
    } else {
        counts_add_hash(&cr->c, r);
    }
    if (--cr->left == 0) counts_end(cr);
}

static void on_nodes(redisReply *r, enum store_error err, const char *text, void *arg)
{
    struct counts_read *cr = arg;
    if (!r) counts_fail(cr, err, text);
    else if (r->type != REDIS_REPLY_ARRAY) counts_fail(cr, STORE_E_REPLY, "unexpected reply");
    if (cr->failed || r->elements == 0) {
        counts_end(cr);
        return;
    }
    struct strbuf k;
    strbuf_init(&k);
    char run[40] = ":";
    herald_copy(run + 1, sizeof(run) - 1, cr->run);
    cr->left = 1; /* held while the reads go out */
    for (size_t i = 0; i < r->elements; i++) {
        if (r->element[i]->type != REDIS_REPLY_STRING) continue;
        store_key_node(&k, cr->prefix, r->element[i]->str, ":campaign:", cr->campaign, run);
        cr->left++;
        if (!counts_send(cr, on_hash, (const char *const[]){"HGETALL", k.buf, NULL})) {
            cr->left--;
            break;
        }
    }
    strbuf_free(&k);
    if (--cr->left == 0) counts_end(cr);
}

static void on_run(redisReply *r, enum store_error err, const char *text, void *arg)
{
    struct counts_read *cr = arg;
    if (!r) counts_fail(cr, err, text);
    else if (r->type != REDIS_REPLY_STRING && r->type != REDIS_REPLY_NIL) counts_fail(cr, STORE_E_REPLY, "unexpected reply");
    if (cr->failed || r->type == REDIS_REPLY_NIL) { /* no such campaign: no counts */
        counts_end(cr);
        return;
    }
    herald_copy(cr->run, sizeof(cr->run), r->str);
    struct strbuf k;
    strbuf_init(&k);
    store_key_campaign_nodes(&k, cr->prefix, cr->campaign, cr->run);
    if (!counts_send(cr, on_nodes, (const char *const[]){"SMEMBERS", k.buf, NULL})) counts_end(cr);
    strbuf_free(&k);
}

int store_node_counts_read(struct store_cmds *sc, const char *prefix, const char *campaign, unsigned flags,
                           store_node_counts_cb cb, void *arg)
{
    struct counts_read *cr = xcalloc(1, sizeof(*cr));
    cr->sc = sc;
    cr->prefix = xstrdup(prefix);
    cr->campaign = xstrdup(campaign);
    cr->flags = flags;
    cr->cb = cb;
    cr->arg = arg;
    struct strbuf k;
    strbuf_init(&k);
    store_key_campaign(&k, prefix, campaign);
    bool sent = counts_send(cr, on_run, (const char *const[]){"HGET", k.buf, "run", NULL});
    strbuf_free(&k);
    if (!sent) {
        free(cr->prefix);
        free(cr->campaign);
        free(cr);
        return -HERALD_EREDIS;
    }
    return 0;
}

/* ---- heraldctl's blocking form ------------------------------------------ */

/* The fields of an HGETALL reply r, added to out. */
static void counts_add_hash(struct store_node_counts *out, const redisReply *r)
{
    for (size_t i = 0; i + 1 < r->elements; i += 2)
        if (r->element[i]->type == REDIS_REPLY_STRING && r->element[i + 1]->type == REDIS_REPLY_STRING)
            counts_add(out, r->element[i]->str, strtoll(r->element[i + 1]->str, NULL, 10));
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
    char run[40] = ":";
    herald_copy(run + 1, sizeof(run) - 1, r->str);
    store_key_campaign_nodes(&k, prefix, campaign, run + 1);
    nodes = redisCommand(c, "SMEMBERS %s", k.buf);
    if (!nodes || nodes->type != REDIS_REPLY_ARRAY) {
        store_sync_error(err, errlen, "progress read", c, nodes);
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
        counts_add_hash(out, h);
        freeReplyObject(h);
    }
    rc = 0;
out:
    if (r) freeReplyObject(r);
    if (nodes) freeReplyObject(nodes);
    strbuf_free(&k);
    return rc;
}
