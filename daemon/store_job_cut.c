/*
 * store_job_cut.c - cutting a recipients_key job into slices
 * (store_job.h, store_job_cut), and dropping a finished slice's list.
 *
 * Each step is two scripts: lua/job_cut.lua on the slot of the source key
 * reads the next ids and closes slices, then lua/job_cut_publish.lua on
 * the control plane's makes each closed slice a job of the stream. On a
 * cluster the cut's own keys (its state, the ids met, the slices' lists)
 * carry a tag of the source's slot, so the first script is one slot; on
 * one Redis they keep their names of before (<prefix>:cut:{<entry>}...),
 * so a cut begun by an older herald is resumed. Never logs.
 */
#include <stdio.h>
#include <string.h>

#include "rcluster.h"
#include "store_job_int.h"

/* The cut's keys: its state (tail ""), its seen set (":seen"), its slices'
 * prefix (":slice:"). A cluster: "<prefix>:cut:{<source slot's tag>}:<entry><tail>". */
static void cut_key(struct strbuf *sb, const struct store_job *sj, const struct store_cut *cut, const char *tail)
{
    if (!sj_cluster(sj)) {
        char t[16];
        snprintf(t, sizeof(t), "}%s", tail);
        store_key_cut(sb, sj->cfg->prefix, cut->entry, t);
        return;
    }
    strbuf_reset(sb);
    strbuf_adds(sb, sj->cfg->prefix);
    strbuf_adds(sb, ":cut:{");
    strbuf_adds(sb, rcluster_slot_tag(rcluster_slot(cut->source, strlen(cut->source))));
    strbuf_adds(sb, "}:");
    strbuf_adds(sb, cut->entry);
    strbuf_adds(sb, tail);
}

/* A step's answer: {'more' or 'done', slices, ids kept}. */
static bool cut_reply_ok(const redisReply *r)
{
    return r && r->type == REDIS_REPLY_ARRAY && r->elements == 3 && r->element[0]->type == REDIS_REPLY_STRING &&
           r->element[1]->type == REDIS_REPLY_INTEGER && r->element[2]->type == REDIS_REPLY_INTEGER;
}

static void cut_reply_read(struct store_cut *cut, const redisReply *r)
{
    cut->done = strcmp(r->element[0]->str, "done") == 0;
    cut->slices = r->element[1]->integer;
    cut->kept = r->element[2]->integer;
}

static void on_published(redisReply *r, enum store_error err, const char *text, void *arg)
{
    struct call *c = arg;
    if (call_ended(c, r, err, text, !cut_reply_ok(r))) return;
    struct store_cut *cut = c->items[0];
    cut_reply_read(cut, r);
    if (cut->done && sj_cluster(c->sj)) sj_nodes_entry_done(c->sj, cut->entry);
    call_done(c, STORE_JOB_OK, STORE_E_COUNT, NULL);
}

static void on_cut(redisReply *r, enum store_error err, const char *text, void *arg)
{
    struct call *c = arg;
    if (call_ended(c, r, err, text, !cut_reply_ok(r))) return;
    struct store_cut *cut = c->items[0];
    struct store_job *sj = c->sj;
    cut_reply_read(cut, r);
    struct store_args a;
    store_args_script(&a, store_lua_job_cut_publish, 3);
    add_buf(&a, &sj->k_jobs);
    store_key_campaign(&sj->key, sj->cfg->prefix, cut->campaign);
    add_buf(&a, &sj->key);
    if (sj_cluster(sj)) store_key_cut(&sj->key, sj->cfg->prefix, cut->entry, "}");
    else cut_key(&sj->key, sj, cut, ""); /* one Redis: the cut hash holds the count */
    add_buf(&a, &sj->key);
    store_args_add(&a, STORE_GROUP);
    store_args_add(&a, cut->entry);
    store_args_add(&a, sj->consumer);
    store_args_addll(&a, cut->slices);
    store_args_add(&a, cut->done ? "done" : "more");
    store_args_addll(&a, cut->kept);
    store_args_add(&a, cut->from);
    cut_key(&sj->key, sj, cut, ":slice:");
    add_buf(&a, &sj->key);
    store_args_add(&a, cut->text_head);
    store_args_add(&a, cut->text_tail);
    store_cmds_send(sj->sc, STORE_CMD_HOLD, on_published, c, call_discard, &a, store_lua_job_cut_publish);
}

void store_job_cut(struct store_job *sj, struct store_cut *cut, store_job_cb cb, void *arg)
{
    void *item = cut;
    struct call *c = call_new(sj, cb, arg, NULL, &item, 1);
    static const char *const kinds[] = {[STORE_SRC_INLINE] = "", [STORE_SRC_SET] = "set", [STORE_SRC_ZSET] = "zset",
                                        [STORE_SRC_LIST] = "list"};
    bool cluster = sj_cluster(sj);
    struct store_args a;
    store_args_script(&a, store_lua_job_cut, cluster ? 3 : 4);
    store_args_add(&a, cut->source);
    cut_key(&sj->key, sj, cut, "");
    add_buf(&a, &sj->key);
    cut_key(&sj->key, sj, cut, ":seen");
    add_buf(&a, &sj->key);
    if (!cluster) add_buf(&a, &sj->k_jobs); /* the fence, on one Redis */
    store_args_add(&a, cluster ? "" : STORE_GROUP);
    store_args_add(&a, cut->entry);
    store_args_add(&a, sj->consumer);
    store_args_add(&a, kinds[cut->kind]);
    store_args_addll(&a, cut->size);
    store_args_addll(&a, cut->step);
    cut_key(&sj->key, sj, cut, ":slice:");
    add_buf(&a, &sj->key);
    store_args_route(&a, cut->source, strlen(cut->source));
    store_cmds_send(sj->sc, STORE_CMD_HOLD, on_cut, c, call_discard, &a, store_lua_job_cut);
}

static void on_dropped(redisReply *r, enum store_error err, const char *text, void *arg)
{
    (void)r;
    (void)err;
    (void)text;
    (void)arg;
}

void store_job_slice_drop(struct store_job *sj, const char *key)
{
    /* Only a name job_cut.lua gives ("<prefix>:cut:{...}...:slice:<k>",
     * the prefix bare on one Redis and on a cluster): never an operator's key. */
    size_t n = strlen(sj->cfg->prefix);
    if (strncmp(key, sj->cfg->prefix, n) != 0 || strncmp(key + n, ":cut:{", 6) != 0 || !strstr(key + n, ":slice:"))
        return;
    struct store_args a;
    store_args_init(&a);
    store_args_add(&a, "DEL");
    store_args_add(&a, key);
    store_cmds_send(sj->sc, 0, on_dropped, NULL, NULL, &a, NULL);
}
