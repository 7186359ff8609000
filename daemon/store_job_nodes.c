/*
 * store_job_nodes.c - the job pipeline's per-message scripts on a Redis
 * Cluster (docs/architecture.md "On a cluster").
 *
 * Owns the split of a batch (reserve, the handoffs and outcomes of finish,
 * a release) into one script per master, each over the keys that master
 * serves (`#!lua flags=allow-cross-slot-keys`), sent with STORE_CMD_GROUP:
 * a part the cluster refused (a slot moved: STORE_E_REGROUP) wrote
 * nothing and is split again by the map as it is now and sent again; the
 * batch's callback fires once, when every part is in. Owns the fencing
 * epoch of each stream entry this daemon runs: claimed on the control
 * node (lua/fence_claim.lua) and raised on every slot (lua/fence_raise.lua)
 * before the run's first write, dropped when the entry is acknowledged;
 * every part checks it on its node (lua/fence.lua). Owns WAIT per part
 * when replicas are asked for. Never logs an address; on a single
 * instance none of it runs (store_job.c sends today's commands).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "log.h"
#include "metrics.h"
#include "rcluster.h"
#include "store_job_int.h"

/* A fence hash outlives a daemon that crashed before dropping its entry by
 * at most this much, counted from the last claim of any entry. */
#define SJ_FENCE_TTL_S (30 * 86400)

bool sj_cluster(const struct store_job *sj) { return store_cmds_node_tag(sj->sc, 0) != NULL; }

/* The [redis] wait_replicas of a cluster (docs/config.md). */
static long long wait_replicas(const struct store_job *sj) { return sj->cfg->wait_replicas; }

/* Tags of per-node keys remembered, at most (the oldest goes first). */
#define SJ_NODE_TAGS_MAX 256

/* The hash tag of node's per-node keys (audit stream, counters, norecord
 * set): the one it had before while that slot is still node's, so that a
 * reshard, which moves slots one by one, does not scatter them over a new
 * tag at each slot; else the tag of the highest slot node serves (a reshard
 * takes a source's slots from its lowest). NULL on a single instance. */
static const char *node_tag(struct store_job *sj, size_t node)
{
    char k[16];
    for (size_t i = 0; i < sj->nnode_tags; i++) {
        int n = snprintf(k, sizeof(k), "{%s}", sj->node_tags[i]);
        if (store_cmds_node_of(sj->sc, k, (size_t)n) == node) return sj->node_tags[i];
    }
    for (unsigned s = RCLUSTER_SLOTS; s-- > 0;) {
        const char *t = rcluster_slot_tag(s);
        int n = snprintf(k, sizeof(k), "{%s}", t);
        if (store_cmds_node_of(sj->sc, k, (size_t)n) != node) continue;
        if (sj->nnode_tags == SJ_NODE_TAGS_MAX) {
            memmove(sj->node_tags, sj->node_tags + 1, (SJ_NODE_TAGS_MAX - 1) * sizeof(*sj->node_tags));
            sj->nnode_tags--;
        }
        if (!sj->node_tags) sj->node_tags = xcalloc(SJ_NODE_TAGS_MAX, sizeof(*sj->node_tags));
        herald_copy(sj->node_tags[sj->nnode_tags], sizeof(sj->node_tags[0]), t);
        return sj->node_tags[sj->nnode_tags++];
    }
    return store_cmds_node_tag(sj->sc, node);
}

/* "<prefix>:n:{<tag of slot>}:fence": the fence hash of one slot. */
static void fence_key(struct strbuf *sb, const struct store_job *sj, unsigned slot)
{
    store_key_node(sb, sj->cfg->prefix, rcluster_slot_tag(slot), ":fence", NULL, NULL);
}

/* Sorts idx[0..n) into runs of one node each (node[idx[i]] gives it): fills
 * starts with each run's first position and returns how many runs. */
static size_t group_by_node(size_t *idx, size_t n, const size_t *node, size_t *starts)
{
    size_t runs = 0, at = 0;
    while (at < n) {
        starts[runs++] = at;
        size_t want = node[idx[at]], j = at + 1;
        for (size_t k = at + 1; k < n; k++) {
            if (node[idx[k]] != want) continue;
            size_t t = idx[j];
            idx[j++] = idx[k];
            idx[k] = t;
        }
        at = j;
    }
    return runs;
}

static void on_landed_nodes(redisReply *r, enum store_error err, const char *text, void *arg)
{
    (void)r;
    (void)err;
    (void)text;
    (void)arg;
}

/* ---- the fence: raising and dropping an entry's epoch on every slot ---- */

typedef void (*sj_epoch_cb)(void *ctx, const struct sj_epoch *e, const struct store_job_result *res, bool discarded);

struct sj_wait {
    sj_epoch_cb go;
    void *ctx;
    struct sj_wait *next;
};

struct sj_epoch {
    struct store_job *sj;
    char entry[64];
    char *campaign;
    long long epoch, run;
    bool ready;
    char (*tags)[8]; /* the node tags named in the campaign run's and the audit's nodes sets */
    size_t ntags;
    struct sj_wait *head, **tail;
    struct sj_epoch *next;
};

struct fence_op {
    struct store_job *sj;
    struct sj_epoch *e; /* raise: the entry's; drop: NULL */
    char entry[64];
    long long epoch;
    bool raise, discarded;
    size_t left;
    struct store_job_result res;
    char text[128];
};

struct fence_part {
    struct fence_op *op;
    size_t node, n;
    unsigned slot[];
};

typedef void (*sj_waited_cb)(void *arg, bool again);
static bool node_wait(struct store_job *sj, size_t node, sj_waited_cb done, void (*discard)(void *), void *arg);

static struct sj_epoch *epoch_find(struct store_job *sj, const char *entry)
{
    for (struct sj_epoch *e = sj->epochs; e; e = e->next)
        if (strcmp(e->entry, entry) == 0) return e;
    return NULL;
}

static void epoch_tag_add(struct sj_epoch *e, const char *tag)
{
    e->tags = xrealloc(e->tags, (e->ntags + 1) * sizeof(*e->tags));
    herald_copy(e->tags[e->ntags++], sizeof(e->tags[0]), tag);
}

static void epoch_free(struct sj_epoch *e)
{
    while (e->head) {
        struct sj_wait *w = e->head;
        e->head = w->next;
        free(w);
    }
    free(e->campaign);
    free(e->tags);
    free(e);
}

static void epoch_unlink(struct store_job *sj, struct sj_epoch *e)
{
    for (struct sj_epoch **p = &sj->epochs; *p; p = &(*p)->next)
        if (*p == e) {
            *p = e->next;
            return;
        }
}

/* Wakes every call waiting for e's epoch, in order; with a failure (or
 * discarded) e goes. */
static void epoch_wake(struct sj_epoch *e, const struct store_job_result *res, bool discarded)
{
    struct sj_wait *w = e->head;
    e->head = NULL;
    e->tail = &e->head;
    bool ok = res->status == STORE_JOB_OK && !discarded;
    if (ok) e->ready = true;
    else epoch_unlink(e->sj, e);
    while (w) {
        struct sj_wait *next = w->next;
        w->go(w->ctx, e, res, discarded);
        free(w);
        w = next;
    }
    if (!ok) epoch_free(e);
}

static void fence_send(struct fence_op *op, unsigned *slot, size_t n);

static void fence_op_end(struct fence_op *op)
{
    if (--op->left) return;
    if (op->e) epoch_wake(op->e, &op->res, op->discarded);
    free(op);
}

static void fence_fail(struct fence_op *op, enum store_job_status st, enum store_error err, const char *text)
{
    if (op->res.status == STORE_JOB_LOST) return;
    if (op->res.status == STORE_JOB_FAILED && st == STORE_JOB_FAILED) return;
    op->res.status = st;
    op->res.err = err;
    herald_copy(op->text, sizeof(op->text), text ? text : "");
    op->res.text = op->text;
}

static void on_fence_discard(void *arg)
{
    struct fence_part *p = arg;
    p->op->discarded = true;
    fence_op_end(p->op);
    free(p);
}

/* again: the node stopped being its slots' master before its replicas
 * acknowledged: the raise may be lost with it, so it goes again (a raise
 * is idempotent) to the slots' master now. */
static void fence_waited(void *arg, bool again)
{
    struct fence_part *p = arg;
    struct fence_op *op = p->op;
    if (again) fence_send(op, p->slot, p->n); /* the new parts count themselves */
    free(p);
    fence_op_end(op);
}

static void on_fence(redisReply *r, enum store_error err, const char *text, void *arg)
{
    struct fence_part *p = arg;
    struct fence_op *op = p->op;
    if (!r && err == STORE_E_REGROUP) {
        fence_send(op, p->slot, p->n); /* the new parts count themselves; this one ends below */
    } else if (!r) {
        fence_fail(op, STORE_JOB_FAILED, err, text);
    } else if (r->type == REDIS_REPLY_STRING || r->type == REDIS_REPLY_STATUS) {
        if (strcmp(r->str, "lost") == 0) fence_fail(op, STORE_JOB_LOST, STORE_E_COUNT, NULL);
        /* A raise a failover lost would make the run's own writes 'lost'. */
        else if (op->raise && node_wait(op->sj, p->node, fence_waited, on_fence_discard, p)) return;
    } else {
        fence_fail(op, STORE_JOB_FAILED, STORE_E_REPLY, "unexpected reply");
    }
    free(p);
    fence_op_end(op);
}

/* Sends one fence_raise part per node for the n slots (copied). */
static void fence_send(struct fence_op *op, unsigned *slot, size_t n)
{
    struct store_job *sj = op->sj;
    size_t *node = xmalloc(n * sizeof(*node)), *idx = xmalloc(n * sizeof(*idx)), *starts = xmalloc(n * sizeof(*starts));
    for (size_t i = 0; i < n; i++) {
        fence_key(&sj->key, sj, slot[i]);
        node[i] = store_cmds_node_of(sj->sc, sj->key.buf, sj->key.len);
        idx[i] = i;
    }
    size_t runs = group_by_node(idx, n, node, starts);
    char epoch[HERALD_LL_CHARS], ttl[HERALD_LL_CHARS];
    herald_lltoa(epoch, op->epoch);
    herald_lltoa(ttl, SJ_FENCE_TTL_S);
    op->left += runs;
    for (size_t r = 0; r < runs; r++) {
        size_t from = starts[r], to = r + 1 < runs ? starts[r + 1] : n;
        struct fence_part *p = xmalloc(sizeof(*p) + (to - from) * sizeof(p->slot[0]));
        p->op = op;
        p->n = to - from;
        p->node = node[idx[from]];
        struct store_args a;
        static const struct sj_fence nodes = {.key = "", .group = "", .owner = ""};
        sj_script(&a, store_lua_fence_raise, p->n, &nodes);
        for (size_t i = from; i < to; i++) {
            p->slot[i - from] = slot[idx[i]];
            fence_key(&sj->key, sj, slot[idx[i]]);
            if (i == from) store_args_route(&a, sj->key.buf, sj->key.len);
            add_buf(&a, &sj->key);
        }
        store_args_add(&a, op->entry);
        store_args_add(&a, epoch);
        store_args_add(&a, op->raise ? "raise" : "drop");
        store_args_add(&a, ttl);
        store_cmds_send(sj->sc, STORE_CMD_GROUP | (op->raise ? STORE_CMD_HOLD : 0u), on_fence, p, on_fence_discard,
                        &a, store_lua_fence_raise);
    }
    free(node);
    free(idx);
    free(starts);
}

/* Raises (e) or drops (e NULL) entry's epoch on every slot. */
static void fence_all(struct store_job *sj, struct sj_epoch *e, const char *entry, long long epoch)
{
    struct fence_op *op = xcalloc(1, sizeof(*op));
    op->sj = sj;
    op->e = e;
    op->raise = e != NULL;
    op->epoch = epoch;
    op->res.status = STORE_JOB_OK;
    op->res.err = STORE_E_COUNT;
    herald_copy(op->entry, sizeof(op->entry), entry);
    unsigned *all = xmalloc(RCLUSTER_SLOTS * sizeof(*all));
    for (unsigned s = 0; s < RCLUSTER_SLOTS; s++) all[s] = s;
    op->left = 1; /* held while the parts go out */
    fence_send(op, all, RCLUSTER_SLOTS);
    free(all);
    fence_op_end(op);
}

static void on_claim_discard(void *arg)
{
    struct store_job_result res = {.status = STORE_JOB_FAILED, .err = STORE_E_CONNECTION, .text = "discarded"};
    epoch_wake(arg, &res, true);
}

static void on_claim(redisReply *r, enum store_error err, const char *text, void *arg)
{
    struct sj_epoch *e = arg;
    struct store_job_result res = {.status = STORE_JOB_FAILED, .err = err, .text = text};
    if (!r) {
        epoch_wake(e, &res, false);
    } else if (r->type == REDIS_REPLY_ARRAY && r->elements == 2 && r->element[0]->type == REDIS_REPLY_INTEGER &&
               r->element[1]->type == REDIS_REPLY_INTEGER && r->element[0]->integer > 0) {
        e->epoch = r->element[0]->integer;
        e->run = r->element[1]->integer;
        fence_all(e->sj, e, e->entry, e->epoch);
    } else if ((r->type == REDIS_REPLY_STRING || r->type == REDIS_REPLY_STATUS) && strcmp(r->str, "lost") == 0) {
        res.status = STORE_JOB_LOST;
        res.err = STORE_E_COUNT;
        res.text = NULL;
        epoch_wake(e, &res, false);
    } else {
        res.err = STORE_E_REPLY;
        res.text = "unexpected reply";
        epoch_wake(e, &res, false);
    }
}

/* Calls go(ctx, epoch, OK) once entry's run holds its epoch on every slot
 * (at once when it does already), or go with the failure (LOST: another
 * run owns the entry; nothing was written). */
static void epoch_with(struct store_job *sj, const char *entry, const char *campaign, sj_epoch_cb go, void *ctx)
{
    struct sj_epoch *e = epoch_find(sj, entry);
    if (e && e->ready) {
        struct store_job_result ok = {.status = STORE_JOB_OK, .err = STORE_E_COUNT};
        go(ctx, e, &ok, false);
        return;
    }
    struct sj_wait *w = xcalloc(1, sizeof(*w));
    w->go = go;
    w->ctx = ctx;
    if (e) {
        *e->tail = w;
        e->tail = &w->next;
        return;
    }
    e = xcalloc(1, sizeof(*e));
    e->sj = sj;
    herald_copy(e->entry, sizeof(e->entry), entry);
    e->campaign = xstrdup(campaign);
    e->head = w;
    e->tail = &w->next;
    e->next = sj->epochs;
    sj->epochs = e;
    struct store_args a;
    store_args_script(&a, store_lua_fence_claim, 4);
    store_args_route(&a, sj->k_jobs.buf, sj->k_jobs.len);
    add_buf(&a, &sj->k_jobs);
    store_key_epoch(&sj->key, sj->cfg->prefix);
    add_buf(&a, &sj->key);
    store_key_campaign(&sj->key, sj->cfg->prefix, campaign);
    add_buf(&a, &sj->key);
    store_key_audit_nodes(&sj->key, sj->cfg->prefix);
    add_buf(&a, &sj->key);
    store_args_add(&a, STORE_GROUP);
    store_args_add(&a, entry);
    store_args_add(&a, sj->consumer);
    store_key_campaign_nodes(&sj->key, sj->cfg->prefix, campaign, NULL);
    add_buf(&a, &sj->key);
    for (size_t i = 0; i < store_cmds_nodes(sj->sc); i++) {
        const char *tag = node_tag(sj, i);
        if (!tag) continue;
        epoch_tag_add(e, tag);
        store_args_add(&a, tag);
    }
    store_cmds_send(sj->sc, STORE_CMD_HOLD, on_claim, e, on_claim_discard, &a, store_lua_fence_claim);
}

/* The run lost its entry: its epoch is of no use any more (nothing dropped:
 * the fence is the new owner's now). */
static void epoch_forget(struct store_job *sj, const char *entry)
{
    struct sj_epoch *e = epoch_find(sj, entry);
    if (!e || !e->ready) return;
    epoch_unlink(sj, e);
    epoch_free(e);
}

void sj_nodes_entry_done(struct store_job *sj, const char *entry)
{
    struct sj_epoch *e = epoch_find(sj, entry);
    if (!e || !e->ready) return;
    long long epoch = e->epoch;
    epoch_unlink(sj, e);
    epoch_free(e);
    fence_all(sj, NULL, entry, epoch);
}

void sj_nodes_free(struct store_job *sj)
{
    free(sj->node_tags);
    free(sj->replicas);
    /* Waiters were discarded with the layer (their commands' discard). */
    while (sj->epochs) {
        struct sj_epoch *e = sj->epochs;
        sj->epochs = e->next;
        epoch_free(e);
    }
}

/* ---- a batch split by node --------------------------------------------- */

enum op_kind { OP_RESERVE, OP_FINISH, OP_RELEASE };

struct nodes_op {
    struct store_job *sj;
    enum op_kind kind;
    store_job_cb cb;
    void *arg;
    void (*discard)(void *);
    char *entry, *campaign, *topic, *rec_entry;
    int64_t now;
    long long epoch, run;
    size_t n;     /* recipients: reservations; outcomes then handoffs; 1 (release) */
    void **items; /* reservations, or handoffs (finish: n - nout of them) */
    size_t nout;  /* finish: outcomes, as store_outcomes held them */
    struct store_args okeys, oargs, okinds; /* finish: as store_outcomes held them */
    size_t *off, *kind_off, nkinds;
    char batch[128];
    char *id, *record, *member; /* release */
    size_t left;
    bool discarded;
    struct store_job_result res;
    char text[128];
};

struct nodes_part {
    struct nodes_op *op;
    size_t node, n;
    size_t idx[];
};

/* Outcome i's value k (SJO_*), and the value k (SJK_*) of its kind. */
static void outcome_value(const struct nodes_op *op, size_t i, size_t k, const char **s, size_t *len)
{
    sj_args_value(&op->oargs, op->off[2 * i + 1], k, s, len);
}

static void outcome_kind_value(const struct nodes_op *op, size_t i, size_t k, const char **s, size_t *len)
{
    const char *v;
    size_t vlen;
    outcome_value(op, i, SJO_KIND, &v, &vlen);
    size_t kind = (size_t)strtoull(v, NULL, 10);
    sj_args_value(&op->okinds, kind ? op->kind_off[kind - 1] : 0, k, s, len);
}

/* Appends the arguments of b from byte from to byte to (count of them:
 * 0, counted here). */
static void args_copy(struct store_args *a, const struct store_args *b, size_t from, size_t to, size_t count)
{
    if (from < STORE_ARGS_HEAD) from = STORE_ARGS_HEAD;
    if (to <= from) return;
    strbuf_add(&a->data, b->data.buf + from, to - from);
    if (!count)
        for (const char *p = b->data.buf + from; p < b->data.buf + to; count++) { /* "$<len>\r\n<bytes>\r\n" */
            char *end;
            size_t len = (size_t)strtoull(p + 1, &end, 10);
            p = end + 2 + len + 2;
        }
    a->n += count;
}

/* The person key of recipient i. */
static void person_of(const struct nodes_op *op, size_t i, struct strbuf *out)
{
    const struct store_job *sj = op->sj;
    if (op->kind == OP_RESERVE) {
        store_key_person(out, sj->cfg->prefix, ((struct store_job_reservation *)op->items[i])->id);
    } else if (op->kind == OP_RELEASE) {
        store_key_person(out, sj->cfg->prefix, op->id);
    } else if (i < op->nout) {
        const char *s;
        size_t len;
        sj_args_value(&op->okeys, op->off[2 * i], 0, &s, &len);
        strbuf_reset(out);
        strbuf_add(out, s, len);
    } else {
        store_key_person(out, sj->cfg->prefix, ((struct store_job_handoff *)op->items[i - op->nout])->id);
    }
}

static void op_end(struct nodes_op *op)
{
    if (--op->left) return;
    if (op->res.status == STORE_JOB_LOST) epoch_forget(op->sj, op->entry);
    if (op->discarded) {
        if (op->discard) op->discard(op->arg);
    } else {
        op->cb(&op->res, op->arg);
    }
    free(op->entry);
    free(op->campaign);
    free(op->topic);
    free(op->rec_entry);
    free(op->items);
    store_args_free(&op->okeys);
    store_args_free(&op->oargs);
    store_args_free(&op->okinds);
    free(op->off);
    free(op->kind_off);
    free(op->id);
    free(op->record);
    free(op->member);
    free(op);
}

static void op_fail(struct nodes_op *op, const struct store_job_result *res)
{
    if (op->res.status == STORE_JOB_LOST) return;
    if (op->res.status == STORE_JOB_FAILED && res->status == STORE_JOB_FAILED) return;
    op->res.status = res->status;
    op->res.err = res->err;
    herald_copy(op->text, sizeof(op->text), res->text ? res->text : "");
    op->res.text = res->status == STORE_JOB_FAILED ? op->text : NULL;
}

static void part_send(struct nodes_op *op, size_t *idx, size_t n);

static void on_part_discard(void *arg)
{
    struct nodes_part *p = arg;
    p->op->discarded = true;
    op_end(p->op);
    free(p);
}

/* Whether a node's replicas acknowledge in time. A WAIT that reached too
 * few (a failover left the promoted master without a replica) stops the
 * WAITs on that node, which would each stall a batch for the timeout, until
 * INFO replication says enough replicas are back, asked at most every
 * SJ_REPLICAS_PROBE_MS. */
#define SJ_REPLICAS_PROBE_MS 5000

struct sj_replicas {
    char tag[8];
    bool short_;     /* the last WAIT got too few */
    bool probing;
    int64_t probe_at;
};

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static struct sj_replicas *replicas_of(struct store_job *sj, const char *tag)
{
    for (size_t i = 0; i < sj->nreplicas; i++)
        if (strcmp(sj->replicas[i].tag, tag) == 0) return &sj->replicas[i];
    sj->replicas = xrealloc(sj->replicas, (sj->nreplicas + 1) * sizeof(*sj->replicas));
    struct sj_replicas *rp = &sj->replicas[sj->nreplicas++];
    memset(rp, 0, sizeof(*rp));
    herald_copy(rp->tag, sizeof(rp->tag), tag);
    return rp;
}

struct probe {
    struct store_job *sj;
    char tag[8];
};

static void on_probe(redisReply *r, enum store_error err, const char *text, void *arg)
{
    struct probe *pr = arg;
    (void)err;
    (void)text;
    struct sj_replicas *rp = replicas_of(pr->sj, pr->tag);
    rp->probing = false;
    const char *at = r && r->type == REDIS_REPLY_STRING ? strstr(r->str, "connected_slaves:") : NULL;
    if (at && strtoll(at + 17, NULL, 10) >= wait_replicas(pr->sj)) {
        rp->short_ = false;
        log_recovered(&pr->sj->wait_log, "store", "replicas acknowledge batches again");
    }
    free(pr);
}

static void replicas_probe(struct store_job *sj, struct sj_replicas *rp)
{
    int64_t now = mono_ms();
    if (rp->probing || now < rp->probe_at) return;
    rp->probing = true;
    rp->probe_at = now + SJ_REPLICAS_PROBE_MS;
    struct probe *pr = xcalloc(1, sizeof(*pr));
    pr->sj = sj;
    herald_copy(pr->tag, sizeof(pr->tag), rp->tag);
    struct store_args a;
    store_args_init(&a);
    store_args_add(&a, "INFO");
    store_args_add(&a, "replication");
    store_key_node(&sj->key, sj->cfg->prefix, rp->tag, "", NULL, NULL);
    store_args_route(&a, sj->key.buf, sj->key.len);
    store_cmds_send(sj->sc, 0, on_probe, pr, free, &a, NULL);
}

struct wait_call {
    struct store_job *sj;
    sj_waited_cb done;
    void (*discard)(void *arg);
    void *arg;
    char tag[8];
};

static void on_wait_discard(void *arg)
{
    struct wait_call *w = arg;
    w->discard(w->arg);
    free(w);
}

/* node's replicas did not acknowledge (acked of them; -1: the WAIT itself
 * failed, why in text): said and counted, and no more WAITs there until
 * they do. */
static void wait_short(struct store_job *sj, const char *tag, long long acked, const char *text)
{
    struct sj_replicas *rp = replicas_of(sj, tag);
    rp->short_ = true;
    rp->probe_at = mono_ms() + SJ_REPLICAS_PROBE_MS;
    metrics_wait_short();
    if (acked >= 0)
        log_complain(&sj->wait_log, "store",
                     "a node's replicas did not acknowledge a batch in time (acked=%lld, wait_replicas=%lld): "
                     "its writes go unwaited for until they do",
                     acked, wait_replicas(sj));
    else
        log_complain(&sj->wait_log, "store",
                     "a node did not wait for its replicas (%.120s): its writes go unwaited for until they do",
                     text && *text ? text : "not sent");
}

static void on_wait(redisReply *r, enum store_error err, const char *text, void *arg)
{
    struct wait_call *w = arg;
    struct store_job *sj = w->sj;
    (void)err;
    /* A WAIT that reached too few replicas in time, or that failed (sent
     * once: a node that became a replica refuses it, and the batch's
     * writes are in whatever the failover kept), is said and counted,
     * never an error, and never holds up the commands behind it. */
    bool short_ = r && r->type == REDIS_REPLY_INTEGER && r->integer < wait_replicas(sj);
    if (!r) wait_short(sj, w->tag, -1, text);
    else if (short_) wait_short(sj, w->tag, r->integer, NULL);
    /* Failed: refused by a node that is a replica now ("WAIT cannot be
     * used with replica instances"), unblocked by its demotion ("UNBLOCKED
     * ... master -> replica"), its connection lost, or anything else. A
     * failover may have lost what it was to wait for, so the part goes
     * again (each is idempotent); the node is known short now, so that
     * sending waits for nothing and goes once.
     * Short: the node may be a master that stalled while its replica was
     * promoted, back before it learnt so; what it took, its demotion will
     * drop. It cannot tell, so another node's slot map is read first
     * (commands for its slots wait for it), and the part goes again where
     * that map says: to the new master, or to this one, where it writes
     * nothing twice. */
    if (short_) {
        store_key_node(&sj->key, sj->cfg->prefix, w->tag, "", NULL, NULL);
        store_cmds_suspect(sj->sc, sj->key.buf, sj->key.len);
    }
    bool again = !r || short_;
    w->done(w->arg, again);
    free(w);
}

/* WAIT for wait_replicas replicas of node, then done(arg) (discard(arg)
 * if the layer goes first); false (nothing sent) when none is asked for,
 * the node's replicas are known short, or its connection is down now. */
static bool node_wait(struct store_job *sj, size_t node, sj_waited_cb done, void (*discard)(void *), void *arg)
{
    long long want = wait_replicas(sj);
    const char *tag = node_tag(sj, node);
    if (want <= 0 || !tag) return false;
    struct sj_replicas *rp = replicas_of(sj, tag);
    if (rp->short_) {
        replicas_probe(sj, rp);
        return false;
    }
    struct wait_call *w = xcalloc(1, sizeof(*w));
    w->sj = sj;
    w->done = done;
    w->discard = discard;
    w->arg = arg;
    herald_copy(w->tag, sizeof(w->tag), tag);
    struct store_args a;
    store_args_init(&a);
    store_args_add(&a, "WAIT");
    store_args_addll(&a, want);
    store_args_addll(&a, sj->cfg->wait_timeout_ms); /* [redis] wait_timeout */
    store_key_node(&sj->key, sj->cfg->prefix, tag, "", NULL, NULL);
    store_args_route(&a, sj->key.buf, sj->key.len);
    /* Once: it follows writes already answered, so nothing it waits for is
     * behind it, and its failure must not stop the layer's other commands. */
    if (store_cmds_send(sj->sc, STORE_CMD_ONCE, on_wait, w, on_wait_discard, &a, NULL) < 0) {
        free(w);
        wait_short(sj, tag, -1, "its connection is down");
        return false;
    }
    return true;
}

/* again (a failover under the WAIT: see on_wait): a finish part goes
 * again, to its slots' master now; finish.lua finds a batch it already
 * holds and writes only what is missing. A reservation is not sent again
 * (its own record would read as a duplicate): docs/architecture.md "On a
 * cluster" says what such a failover may cost. */
static void part_waited(void *arg, bool again)
{
    struct nodes_part *p = arg;
    if (again && p->op->kind == OP_FINISH) part_send(p->op, p->idx, p->n);
    op_end(p->op);
    free(p);
}

/* The provider id keys of a finish part's outcomes (`feedback = on`), each
 * on its own slot: on a cluster the script leaves them out. */
static void part_pid_keys(struct nodes_part *p)
{
    struct nodes_op *op = p->op;
    for (size_t k = 0; k < p->n; k++) {
        size_t i = p->idx[k];
        if (i >= op->nout) continue;
        const char *pid, *id, *ch, *flags;
        size_t plen, ilen, clen, flen;
        outcome_kind_value(op, i, SJK_FLAGS, &flags, &flen);
        if (!memchr(flags, 'x', flen)) continue; /* no provider id key */
        outcome_value(op, i, SJO_PID_KEY, &pid, &plen);
        if (!plen) continue;
        outcome_value(op, i, SJO_ID, &id, &ilen);
        outcome_kind_value(op, i, SJK_CHANNEL, &ch, &clen);
        struct store_args a;
        store_args_init(&a);
        store_args_add(&a, "SET");
        store_args_route(&a, pid, plen);
        store_args_addn(&a, pid, plen);
        struct strbuf v;
        strbuf_init(&v);
        strbuf_addf(&v, "%s %.*s %.*s", op->campaign, (int)ilen, id, (int)clen, ch);
        store_args_addn(&a, v.buf, v.len);
        strbuf_free(&v);
        store_args_add(&a, "EX");
        store_args_addll(&a, 30LL * 86400); /* lua/finish.lua's PID_TTL */
        store_cmds_send(op->sj->sc, 0, on_landed_nodes, NULL, NULL, &a, NULL);
    }
}

static void on_part(const struct store_job_result *res, void *arg)
{
    struct nodes_part *p = arg;
    struct nodes_op *op = p->op;
    if (res->status == STORE_JOB_FAILED && res->err == STORE_E_REGROUP) {
        /* Refused as a whole (a slot moved): split again by the map now. */
        part_send(op, p->idx, p->n);
    } else if (res->status != STORE_JOB_OK) {
        op_fail(op, res);
    } else {
        if (op->kind == OP_FINISH) part_pid_keys(p);
        if (op->kind != OP_RELEASE && node_wait(op->sj, p->node, part_waited, on_part_discard, p)) return;
    }
    op_end(op);
    free(p);
}

static void part_finish_args(struct store_args *a, struct nodes_op *op, const struct nodes_part *p,
                             const struct sj_fence *f)
{
    struct store_job *sj = op->sj;
    size_t nout = 0, nhand = 0;
    for (size_t k = 0; k < p->n; k++) {
        if (p->idx[k] < op->nout) nout++;
        else nhand++;
    }
    const char *tag = node_tag(sj, p->node);
    if (!tag) tag = "";
    sj_script(a, store_lua_finish, 4 + STORE_OUTCOME_KEYS * nout + nhand, f);
    store_args_add(a, f->key);
    store_key_node(&sj->key, sj->cfg->prefix, tag, ":audit", NULL, NULL);
    add_buf(a, &sj->key);
    char run[HERALD_LL_CHARS + 1] = ":";
    herald_lltoa(run + 1, op->run);
    store_key_node(&sj->key, sj->cfg->prefix, tag, ":campaign:", op->campaign, run);
    add_buf(a, &sj->key);
    store_key_node(&sj->key, sj->cfg->prefix, tag, ":campaign:", op->campaign, ":norecord");
    add_buf(a, &sj->key);
    for (size_t k = 0; k < p->n; k++) {
        size_t i = p->idx[k];
        if (i >= op->nout) continue;
        size_t end = i + 1 < op->nout ? op->off[2 * (i + 1)] : op->okeys.data.len;
        args_copy(a, &op->okeys, op->off[2 * i], end, STORE_OUTCOME_KEYS);
    }
    for (size_t k = 0; k < p->n; k++) {
        if (p->idx[k] < op->nout) continue;
        person_of(op, p->idx[k], &sj->key);
        add_buf(a, &sj->key);
    }
    store_args_add(a, f->group);
    store_args_add(a, op->entry);
    store_args_add(a, f->owner);
    store_args_add(a, sj->audit_maxlen);
    store_args_add(a, op->campaign);
    store_args_add(a, op->rec_entry);
    store_args_add(a, op->batch);
    store_args_addll(a, (long long)sj->cfg->retention_history);
    store_args_addll(a, (long long)nout);
    /* Every kind of the op, each part's outcomes naming theirs. */
    store_args_addll(a, (long long)op->nkinds);
    store_args_append(a, &op->okinds);
    for (size_t k = 0; k < p->n; k++) {
        size_t i = p->idx[k];
        if (i >= op->nout) continue;
        size_t end = i + 1 < op->nout ? op->off[2 * (i + 1) + 1] : op->oargs.data.len;
        args_copy(a, &op->oargs, op->off[2 * i + 1], end, 0); /* 4 values, or 6 */
    }
    for (size_t k = 0; k < p->n; k++) {
        if (p->idx[k] < op->nout) continue;
        store_job_handed_record(&sj->key, ((struct store_job_handoff *)op->items[p->idx[k] - op->nout])->record);
        add_buf(a, &sj->key);
    }
}

/* Recipients waiting for their nodes' tags to be named (lua/fence_claim.lua's sets). */
struct tags_wait {
    struct nodes_op *op;
    size_t n;
    size_t idx[];
};

static void on_tags_discard(void *arg)
{
    struct tags_wait *w = arg;
    w->op->discarded = true;
    op_end(w->op);
    free(w);
}

static void on_tags(redisReply *r, enum store_error err, const char *text, void *arg)
{
    struct tags_wait *w = arg;
    (void)r;
    (void)err;
    (void)text;
    part_send(w->op, w->idx, w->n);
    op_end(w->op);
    free(w);
}

/* A node's tag not in the entry's sets yet (the map changed since the
 * claim): named first, then the parts go. True when it waits for that. */
static bool tags_first(struct nodes_op *op, const size_t *idx, size_t n)
{
    struct store_job *sj = op->sj;
    struct sj_epoch *e = epoch_find(sj, op->entry);
    if (!e) return false; /* lost: every part is refused by the fence */
    struct store_args camp, audit;
    store_args_init(&camp);
    store_args_init(&audit);
    for (size_t i = 0; i < store_cmds_nodes(sj->sc); i++) {
        const char *tag = node_tag(sj, i);
        bool known = !tag;
        for (size_t t = 0; !known && t < e->ntags; t++) known = strcmp(e->tags[t], tag) == 0;
        if (known) continue;
        epoch_tag_add(e, tag);
        if (!camp.n) {
            char run[HERALD_LL_CHARS];
            herald_lltoa(run, e->run);
            store_args_add(&camp, "SADD");
            store_key_campaign_nodes(&sj->key, sj->cfg->prefix, op->campaign, run);
            store_args_route(&camp, sj->key.buf, sj->key.len);
            add_buf(&camp, &sj->key);
            store_args_add(&audit, "SADD");
            store_key_audit_nodes(&sj->key, sj->cfg->prefix);
            store_args_route(&audit, sj->key.buf, sj->key.len);
            add_buf(&audit, &sj->key);
        }
        store_args_add(&camp, tag);
        store_args_add(&audit, tag);
    }
    if (!camp.n) return false;
    struct tags_wait *w = xmalloc(sizeof(*w) + n * sizeof(w->idx[0]));
    w->op = op;
    w->n = n;
    memcpy(w->idx, idx, n * sizeof(w->idx[0]));
    op->left++;
    /* In order on one connection: once the second landed, so did the first. */
    store_cmds_send(sj->sc, 0, on_landed_nodes, NULL, NULL, &camp, NULL);
    store_cmds_send(sj->sc, 0, on_tags, w, on_tags_discard, &audit, NULL);
    return true;
}

/* Sends idx[0..n) (recipients of op, reordered here) as one part per node. */
static void part_send(struct nodes_op *op, size_t *idx, size_t n)
{
    struct store_job *sj = op->sj;
    if (tags_first(op, idx, n)) return;
    size_t *node = xmalloc((op->n ? op->n : 1) * sizeof(*node)), *starts = xmalloc((n ? n : 1) * sizeof(*starts));
    for (size_t k = 0; k < n; k++) {
        person_of(op, idx[k], &sj->key);
        node[idx[k]] = store_cmds_node_of(sj->sc, sj->key.buf, sj->key.len);
    }
    size_t runs = group_by_node(idx, n, node, starts);
    char epoch[HERALD_LL_CHARS];
    herald_lltoa(epoch, op->epoch);
    op->left += runs;
    for (size_t r = 0; r < runs; r++) {
        size_t from = starts[r], to = r + 1 < runs ? starts[r + 1] : n;
        struct nodes_part *p = xmalloc(sizeof(*p) + (to - from) * sizeof(p->idx[0]));
        p->op = op;
        p->n = to - from;
        p->node = node[idx[from]];
        memcpy(p->idx, idx + from, p->n * sizeof(p->idx[0]));
        /* The fence of the slot of the part's first person: on its node. */
        person_of(op, p->idx[0], &sj->key);
        struct strbuf fk;
        strbuf_init(&fk);
        fence_key(&fk, sj, rcluster_slot(sj->key.buf, sj->key.len));
        struct sj_fence f = {.key = fk.buf, .group = "", .owner = epoch};
        struct store_args a;
        void **sub = xmalloc(p->n * sizeof(*sub));
        size_t nsub = 0;
        struct call *c;
        switch (op->kind) {
        case OP_RESERVE:
            for (size_t k = 0; k < p->n; k++) sub[nsub++] = op->items[p->idx[k]];
            sj_reserve_args(&a, sj, &f, op->entry, op->now, op->campaign, op->topic,
                            (struct store_job_reservation *const *)sub, NULL, nsub);
            c = call_new(sj, on_part, p, on_part_discard, sub, nsub);
            store_args_route(&a, fk.buf, fk.len);
            store_cmds_send(sj->sc, STORE_CMD_HOLD | STORE_CMD_GROUP, on_reserved, c, call_discard, &a,
                            store_lua_reserve);
            break;
        case OP_FINISH:
            for (size_t k = 0; k < p->n; k++)
                if (p->idx[k] >= op->nout) sub[nsub++] = op->items[p->idx[k] - op->nout];
            part_finish_args(&a, op, p, &f);
            c = call_new(sj, on_part, p, on_part_discard, sub, nsub);
            store_args_route(&a, fk.buf, fk.len);
            store_cmds_send(sj->sc, STORE_CMD_GROUP, on_finished, c, call_discard, &a, store_lua_finish);
            break;
        case OP_RELEASE:
            sj_release_args(&a, sj, &f, op->entry, op->campaign, op->id, op->record, op->member);
            c = call_new(sj, on_part, p, on_part_discard, NULL, 0);
            store_args_route(&a, fk.buf, fk.len);
            store_cmds_send(sj->sc, STORE_CMD_GROUP, on_released, c, call_discard, &a, store_lua_release);
            break;
        }
        free(sub);
        strbuf_free(&fk);
    }
    free(node);
    free(starts);
}

/* The epoch is there (or the run lost its entry): the parts go out. */
static void op_go(void *ctx, const struct sj_epoch *e, const struct store_job_result *res, bool discarded)
{
    struct nodes_op *op = ctx;
    if (discarded) op->discarded = true;
    else if (res->status != STORE_JOB_OK) op_fail(op, res);
    else if (op->n == 0) {
        /* Nothing to write: still answered by Redis, never from inside the call. */
        struct nodes_part *p = xcalloc(1, sizeof(*p));
        p->op = op;
        op->left++;
        struct call *c = call_new(op->sj, on_part, p, on_part_discard, NULL, 0);
        STORE_SEND(op->sj->sc, 0, on_released, c, "PING");
    } else {
        op->epoch = e->epoch;
        op->run = e->run;
        size_t *idx = xmalloc((op->n ? op->n : 1) * sizeof(*idx));
        for (size_t i = 0; i < op->n; i++) idx[i] = i;
        part_send(op, idx, op->n);
        free(idx);
    }
    op_end(op); /* the hold op_start took */
}

static struct nodes_op *op_new(struct store_job *sj, enum op_kind kind, const char *entry, const char *campaign,
                               store_job_cb cb, void *arg, void (*discard)(void *))
{
    struct nodes_op *op = xcalloc(1, sizeof(*op));
    op->sj = sj;
    op->kind = kind;
    op->cb = cb;
    op->arg = arg;
    op->discard = discard;
    op->entry = xstrdup(entry);
    op->campaign = xstrdup(campaign);
    op->res.status = STORE_JOB_OK;
    op->res.err = STORE_E_COUNT;
    store_args_init(&op->okeys);
    store_args_init(&op->oargs);
    store_args_init(&op->okinds);
    return op;
}

static void op_start(struct nodes_op *op)
{
    op->left = 1; /* held until the epoch is known and the parts are out */
    epoch_with(op->sj, op->entry, op->campaign, op_go, op);
}

void sj_nodes_reserve(struct store_job *sj, const char *entry, int64_t now, const char *campaign, const char *topic,
                      struct store_job_reservation *const *items, size_t n, store_job_cb cb, void *arg,
                      void (*discard)(void *))
{
    struct nodes_op *op = op_new(sj, OP_RESERVE, entry, campaign, cb, arg, discard);
    op->topic = xstrdup(topic);
    op->now = now;
    op->n = n;
    op->items = xmalloc((n ? n : 1) * sizeof(*op->items));
    memcpy(op->items, items, n * sizeof(*op->items));
    op_start(op);
}

void sj_nodes_finish(struct store_job *sj, const char *entry, const char *campaign, const char *rec_entry,
                     struct store_outcomes *o, struct store_job_handoff *const *hand, size_t nhand, store_job_cb cb,
                     void *arg, void (*discard)(void *))
{
    struct nodes_op *op = op_new(sj, OP_FINISH, entry, campaign, cb, arg, discard);
    op->rec_entry = xstrdup(rec_entry);
    op->nout = o->n;
    op->n = o->n + nhand;
    /* The outcomes move into op; o keeps fresh buffers for the next ones. */
    op->okeys = o->keys;
    op->oargs = o->args;
    op->off = o->off;
    op->okinds = o->kinds;
    op->kind_off = o->kind_off;
    op->nkinds = o->nkinds;
    store_args_init(&o->keys);
    store_args_init(&o->args);
    store_args_init(&o->kinds);
    o->off = NULL;
    o->cap = 0;
    o->n = 0;
    o->kind_off = NULL;
    o->kind_cap = 0;
    o->nkinds = 0;
    op->items = xmalloc((nhand ? nhand : 1) * sizeof(*op->items));
    memcpy(op->items, hand, nhand * sizeof(*op->items));
    /* One batch id for every part: a part sent again finds it on its node. */
    snprintf(op->batch, sizeof(op->batch), "%s:%llu", sj->batch, ++sj->seq);
    op_start(op);
}

void sj_nodes_release(struct store_job *sj, const char *entry, const char *campaign, const char *id,
                      const char *record, const char *member, store_job_cb cb, void *arg, void (*discard)(void *))
{
    struct nodes_op *op = op_new(sj, OP_RELEASE, entry, campaign, cb, arg, discard);
    op->n = 1;
    op->id = xstrdup(id);
    op->record = xstrdup(record);
    op->member = xstrdup(member);
    op_start(op);
}
