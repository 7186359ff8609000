/*
 * retention.c - removes the once-only records of campaigns past their
 * retention (retention.h). One sweep at a time per daemon, one daemon at a
 * time per Redis (lua/retention_begin.lua's lock); each step is a SCAN of
 * person hashes and one HDEL per hash found, then the cursor saved. On a
 * cluster the SCAN goes to each master in turn (routed by a tag of a slot
 * it serves) and the saved cursor is "<master>:<cursor>"; the campaigns'
 * per-node counters are read (store_nodes.h) and folded into their
 * campaign hashes by lua/retention_end.lua, which names every per-node key
 * of theirs in the drop set; each tick first deletes what the drop set
 * names, each key on its own slot (a crash part way leaves the rest there
 * for the next tick).
 */
#include "retention.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "log.h"
#include "store.h"
#include "store_nodes.h"

#define RETENTION_SCAN_COUNT "500"
#define RETENTION_MAX_CAMPAIGNS 64
#define RETENTION_LOCK_TTL_MS 60000
#define RETENTION_FIRST_MS 5000 /* the first sweep, this long after start */
#define RETENTION_DROP_BATCH "100" /* per-node keys deleted per round */

struct retention {
    uv_loop_t *loop;
    uv_timer_t timer;
    struct store_cmds *sc;
    const struct config *cfg;
    char *owner;
    struct strbuf k_due, k_lock, k_cursor, k_set, k_drop, pattern, key;
    bool running, closing;
    int inflight;         /* commands sent and not yet answered or discarded */
    char **camps;         /* the sweep's campaigns */
    size_t ncamps;
    char cursor[32];
    size_t node;          /* on a cluster: the master being scanned */
    bool more;            /* the scan has more to read (a cursor, or masters left) */
    size_t hdel_left;     /* HDELs of this step not answered yet */
    bool step_failed;
    uint64_t step_people;
    struct store_node_counts *counts; /* a cluster: each campaign's per-node counters, every run's */
    size_t ncounts;                   /* read so far */
    char **dropping;                  /* the drop set's members being deleted */
    size_t ndropping, drop_left;
    uint64_t dropped;                 /* per-node keys deleted since the drop set was last empty */
    bool drop_then_begin;             /* the drop set emptied: a sweep begins (a tick), or none (an end) */
    struct retention_stats st;
};

static void maybe_free(struct retention *rt)
{
    if (!rt->closing || rt->inflight > 0 || !uv_is_closing((uv_handle_t *)&rt->timer)) return;
    strbuf_free(&rt->k_due);
    strbuf_free(&rt->k_lock);
    strbuf_free(&rt->k_cursor);
    strbuf_free(&rt->k_set);
    strbuf_free(&rt->k_drop);
    strbuf_free(&rt->pattern);
    strbuf_free(&rt->key);
    free(rt->owner);
    free(rt);
}

static void camps_free(struct retention *rt)
{
    for (size_t i = 0; i < rt->ncamps; i++) free(rt->camps[i]);
    free(rt->camps);
    rt->camps = NULL;
    for (size_t i = 0; i < rt->ncounts; i++) store_node_counts_free(&rt->counts[i]);
    free(rt->counts);
    rt->counts = NULL;
    rt->ncamps = rt->ncounts = 0;
}

static void dropping_free(struct retention *rt)
{
    for (size_t i = 0; i < rt->ndropping; i++) free(rt->dropping[i]);
    free(rt->dropping);
    rt->dropping = NULL;
    rt->ndropping = 0;
}

/* The sweep is over (done, nothing to do, or cut short: the next tick
 * resumes it from the saved cursor). */
static void sweep_end(struct retention *rt, const char *why)
{
    if (why) {
        rt->st.errors++;
        log_warn("retention", "sweep stopped: %s; the next one resumes it", why);
    }
    camps_free(rt);
    rt->running = false;
}

/* Every callback starts here: false when rt is closing (then freed when
 * the last one is in), or when r is no answer (the sweep is ended). */
static bool answered(struct retention *rt, const redisReply *r, enum store_error err)
{
    rt->inflight--;
    if (rt->closing) {
        maybe_free(rt);
        return false;
    }
    if (!r) {
        sweep_end(rt, store_error_name(err));
        return false;
    }
    return true;
}

static void on_discard(void *arg)
{
    struct retention *rt = arg;
    rt->inflight--;
    rt->running = false;
    maybe_free(rt);
}

static bool send_args(struct retention *rt, store_cmd_cb cb, struct store_args *a, const char *script)
{
    if (store_cmds_send(rt->sc, STORE_CMD_ONCE, cb, rt, on_discard, a, script) < 0) {
        store_args_free(a);
        return false;
    }
    rt->inflight++;
    return true;
}

/* ---- a sweep's cursor over every master ------------------------------- */

void retention_cursor_format(char *out, size_t len, size_t node, const char *cursor)
{
    if (store_keys_clustered()) snprintf(out, len, "%zu:%s", node, cursor);
    else snprintf(out, len, "%s", cursor);
}

size_t retention_cursor_parse(char *cursor)
{
    char *colon = strchr(cursor, ':');
    if (!colon) return 0;
    size_t node = (size_t)strtoull(cursor, NULL, 10);
    memmove(cursor, colon + 1, strlen(colon + 1) + 1);
    return node;
}

bool retention_cursor_next(struct store_cmds *sc, char *cursor, size_t *node)
{
    if (strcmp(cursor, "0") != 0) return true;
    if (!store_keys_clustered() || *node + 1 >= store_cmds_nodes(sc)) return false;
    (*node)++; /* this master is done: the next one's scan starts at 0 */
    return true;
}

void retention_scan_route(struct store_args *a, struct store_cmds *sc, size_t node)
{
    const char *tag = store_cmds_node_tag(sc, node); /* NULL on one Redis */
    if (tag) store_args_route(a, tag, strlen(tag));
}

static void scan_next(struct retention *rt);
static void drop_next(struct retention *rt);

static void on_end(redisReply *r, enum store_error err, const char *text, void *arg)
{
    struct retention *rt = arg;
    (void)text;
    if (!answered(rt, r, err)) return;
    if (r->type == REDIS_REPLY_INTEGER) {
        rt->st.sweeps++;
        rt->st.campaigns += (uint64_t)r->integer;
        log_info("retention", "once-only records removed campaigns=%lld people_scanned=%llu", r->integer,
                 (unsigned long long)rt->step_people);
        if (store_keys_clustered()) { /* the campaigns' per-node keys, now */
            camps_free(rt);
            rt->drop_then_begin = false;
            drop_next(rt);
            return;
        }
        sweep_end(rt, NULL);
    } else {
        sweep_end(rt, "another daemon took the sweep over");
    }
}

static void sweep_finish(struct retention *rt)
{
    struct store_args a;
    store_args_script(&a, store_lua_retention_end, 5 + 2 * rt->ncamps);
    store_args_add(&a, rt->k_due.buf);
    store_args_add(&a, rt->k_lock.buf);
    store_args_add(&a, rt->k_cursor.buf);
    store_args_add(&a, rt->k_set.buf);
    store_args_add(&a, rt->k_drop.buf);
    for (size_t i = 0; i < rt->ncamps; i++) {
        store_key_campaign(&rt->key, rt->cfg->prefix, rt->camps[i]);
        store_args_add(&a, rt->key.buf);
        store_key_campaign_norecord(&rt->key, rt->cfg->prefix, rt->camps[i]);
        store_args_add(&a, rt->key.buf);
    }
    store_args_add(&a, rt->owner);
    char at[32];
    herald_time_format(time(NULL), at, sizeof(at));
    store_args_add(&a, at);
    for (size_t i = 0; i < rt->ncamps; i++) store_args_add(&a, rt->camps[i]);
    store_args_add(&a, store_keys_clustered() ? rt->cfg->prefix : "");
    for (size_t i = 0; i < rt->ncounts; i++) {
        const struct store_node_counts *c = &rt->counts[i];
        store_args_addll(&a, c->run);
        store_args_addll(&a, (long long)c->n);
        for (size_t f = 0; f < c->n; f++) {
            store_args_add(&a, c->field[f]);
            store_args_addll(&a, c->value[f]);
        }
    }
    if (!send_args(rt, on_end, &a, store_lua_retention_end)) sweep_end(rt, "redis unavailable");
}

static void counts_next(struct retention *rt);

static void on_counts(const struct store_node_counts *c, enum store_error err, const char *text, void *arg)
{
    struct retention *rt = arg;
    (void)text;
    rt->inflight--;
    if (rt->closing) {
        maybe_free(rt);
        return;
    }
    if (!c) {
        sweep_end(rt, store_error_name(err));
        return;
    }
    /* Copied: c is the reader's. */
    struct store_node_counts *out = &rt->counts[rt->ncounts++];
    out->run = c->run;
    out->n = c->n;
    out->field = xcalloc(c->n + 1, sizeof(*out->field));
    out->value = xcalloc(c->n + 1, sizeof(*out->value));
    for (size_t i = 0; i < c->n; i++) {
        out->field[i] = xstrdup(c->field[i]);
        out->value[i] = c->value[i];
    }
    counts_next(rt);
}

/* A cluster: each campaign's per-node counters, one campaign at a time,
 * then the end; one Redis: the end. */
static void counts_next(struct retention *rt)
{
    if (!store_keys_clustered() || rt->ncounts == rt->ncamps) {
        sweep_finish(rt);
        return;
    }
    if (!rt->counts) rt->counts = xcalloc(rt->ncamps, sizeof(*rt->counts));
    if (store_node_counts_read_runs(rt->sc, rt->cfg->prefix, rt->camps[rt->ncounts], STORE_CMD_ONCE, on_counts, rt) < 0) {
        sweep_end(rt, "redis unavailable");
        return;
    }
    rt->inflight++;
}

static void on_step(redisReply *r, enum store_error err, const char *text, void *arg)
{
    struct retention *rt = arg;
    (void)text;
    if (!answered(rt, r, err)) return;
    if (r->type != REDIS_REPLY_STATUS && r->type != REDIS_REPLY_STRING) {
        sweep_end(rt, "unexpected reply");
    } else if (strcmp(r->str, "ok") != 0) {
        sweep_end(rt, "another daemon took the sweep over");
    } else if (!rt->more) {
        counts_next(rt);
    } else {
        scan_next(rt);
    }
}

/* The step's HDELs are in: the cursor saved with the lock renewed. */
static void step_save(struct retention *rt)
{
    if (rt->step_failed) {
        sweep_end(rt, "a removal was refused");
        return;
    }
    struct store_args a;
    store_args_script(&a, store_lua_retention_step, 2);
    store_args_add(&a, rt->k_lock.buf);
    store_args_add(&a, rt->k_cursor.buf);
    store_args_add(&a, rt->owner);
    store_args_addll(&a, RETENTION_LOCK_TTL_MS);
    char at[48];
    retention_cursor_format(at, sizeof(at), rt->node, rt->cursor);
    store_args_add(&a, at);
    if (!send_args(rt, on_step, &a, store_lua_retention_step)) sweep_end(rt, "redis unavailable");
}

static void on_hdel(redisReply *r, enum store_error err, const char *text, void *arg)
{
    struct retention *rt = arg;
    (void)text;
    /* Its step goes on when one HDEL is refused: the cursor is not saved. */
    rt->inflight--;
    if (rt->closing) {
        maybe_free(rt);
        return;
    }
    (void)err;
    if (!r || r->type != REDIS_REPLY_INTEGER) rt->step_failed = true;
    if (--rt->hdel_left == 0) step_save(rt);
}

/* A person hash ends with "}" (its other keys have a suffix). */
static bool is_person_key(const redisReply *k)
{
    return k->type == REDIS_REPLY_STRING && k->len > 0 && k->str[k->len - 1] == '}';
}

static void on_scan(redisReply *r, enum store_error err, const char *text, void *arg)
{
    struct retention *rt = arg;
    (void)text;
    if (!answered(rt, r, err)) return;
    if (r->type != REDIS_REPLY_ARRAY || r->elements != 2 || r->element[0]->type != REDIS_REPLY_STRING ||
        r->element[1]->type != REDIS_REPLY_ARRAY || r->element[0]->len >= sizeof(rt->cursor)) {
        sweep_end(rt, "unexpected reply to SCAN");
        return;
    }
    memcpy(rt->cursor, r->element[0]->str, r->element[0]->len + 1);
    rt->more = retention_cursor_next(rt->sc, rt->cursor, &rt->node);
    const redisReply *keys = r->element[1];
    rt->hdel_left = 0;
    rt->step_failed = false;
    for (size_t i = 0; i < keys->elements; i++) {
        if (!is_person_key(keys->element[i])) continue;
        struct store_args a;
        store_args_init(&a);
        store_args_add(&a, "HDEL");
        store_args_addn(&a, keys->element[i]->str, keys->element[i]->len);
        for (size_t c = 0; c < rt->ncamps; c++) {
            store_record_field(&rt->key, rt->camps[c]);
            store_args_add(&a, rt->key.buf);
        }
        rt->hdel_left++;
        rt->step_people++;
        rt->st.people_scanned++;
        if (!send_args(rt, on_hdel, &a, NULL)) {
            rt->hdel_left--;
            rt->step_failed = true;
            break;
        }
    }
    if (rt->hdel_left == 0) step_save(rt);
}

static void scan_next(struct retention *rt)
{
    struct store_args a;
    store_args_init(&a);
    store_args_add(&a, "SCAN");
    store_args_add(&a, rt->cursor);
    store_args_add(&a, "MATCH");
    store_args_add(&a, rt->pattern.buf);
    store_args_add(&a, "COUNT");
    store_args_add(&a, RETENTION_SCAN_COUNT);
    retention_scan_route(&a, rt->sc, rt->node);
    if (!send_args(rt, on_scan, &a, NULL)) sweep_end(rt, "redis unavailable");
}

static void on_begin(redisReply *r, enum store_error err, const char *text, void *arg)
{
    struct retention *rt = arg;
    (void)text;
    if (!answered(rt, r, err)) return;
    /* {'sweep', cursor, campaign ids...}, or {'none'} / {'busy'} */
    bool ok = r->type == REDIS_REPLY_ARRAY && r->elements >= 1 && r->element[0]->type == REDIS_REPLY_STRING;
    for (size_t i = 1; ok && i < r->elements; i++)
        ok = r->element[i]->type == REDIS_REPLY_STRING && (i == 1 || herald_id_valid(r->element[i]->str));
    if (!ok || (strcmp(r->element[0]->str, "sweep") == 0 && (r->elements < 3 || r->element[1]->len >= sizeof(rt->cursor)))) {
        sweep_end(rt, "unexpected reply");
        return;
    }
    if (strcmp(r->element[0]->str, "sweep") != 0) { /* none due, or another daemon sweeps */
        sweep_end(rt, NULL);
        return;
    }
    memcpy(rt->cursor, r->element[1]->str, r->element[1]->len + 1);
    rt->node = retention_cursor_parse(rt->cursor);
    rt->ncamps = r->elements - 2;
    rt->camps = xcalloc(rt->ncamps, sizeof(*rt->camps));
    for (size_t i = 0; i < rt->ncamps; i++) rt->camps[i] = xstrdup(r->element[2 + i]->str);
    rt->step_people = 0;
    log_info("retention", "sweep of once-only records campaigns=%zu from_cursor=%s", rt->ncamps, rt->cursor);
    scan_next(rt);
}

static void sweep_begin(struct retention *rt)
{
    struct store_args a;
    store_args_script(&a, store_lua_retention_begin, 4);
    store_args_add(&a, rt->k_due.buf);
    store_args_add(&a, rt->k_lock.buf);
    store_args_add(&a, rt->k_cursor.buf);
    store_args_add(&a, rt->k_set.buf);
    store_args_addll(&a, (long long)time(NULL));
    store_args_add(&a, rt->owner);
    store_args_addll(&a, RETENTION_LOCK_TTL_MS);
    store_args_addll(&a, RETENTION_MAX_CAMPAIGNS);
    store_key_campaign(&rt->key, rt->cfg->prefix, "");
    store_args_add(&a, rt->key.buf);
    if (!send_args(rt, on_begin, &a, store_lua_retention_begin)) rt->running = false; /* not connected: next tick */
}

/* ---- a cluster's per-node keys: the drop set emptied ------------------- */

static void on_drop_removed(redisReply *r, enum store_error err, const char *text, void *arg)
{
    struct retention *rt = arg;
    (void)text;
    if (!answered(rt, r, err)) return;
    rt->dropped += rt->ndropping;
    dropping_free(rt);
    drop_next(rt);
}

/* Every key of the round deleted: their names leave the drop set. */
static void drop_forget(struct retention *rt)
{
    struct store_args a;
    store_args_init(&a);
    store_args_add(&a, "SREM");
    store_args_add(&a, rt->k_drop.buf);
    for (size_t i = 0; i < rt->ndropping; i++) store_args_add(&a, rt->dropping[i]);
    if (!send_args(rt, on_drop_removed, &a, NULL)) {
        dropping_free(rt);
        sweep_end(rt, "redis unavailable");
    }
}

/* One DEL of the round answered (or the round's hold given back). */
static void drop_settle(struct retention *rt)
{
    if (--rt->drop_left > 0) return;
    if (rt->step_failed) {
        dropping_free(rt);
        sweep_end(rt, "a per-node key's removal was refused");
    } else {
        drop_forget(rt);
    }
}

static void on_dropped(redisReply *r, enum store_error err, const char *text, void *arg)
{
    struct retention *rt = arg;
    (void)text;
    (void)err;
    rt->inflight--;
    if (rt->closing) {
        maybe_free(rt);
        return;
    }
    if (!r) rt->step_failed = true;
    drop_settle(rt);
}

static void on_drop_members(redisReply *r, enum store_error err, const char *text, void *arg)
{
    struct retention *rt = arg;
    (void)text;
    if (!answered(rt, r, err)) return;
    if (r->type != REDIS_REPLY_ARRAY) {
        sweep_end(rt, "unexpected reply");
        return;
    }
    if (r->elements == 0) {
        if (rt->dropped) log_info("retention", "per-node keys removed keys=%llu", (unsigned long long)rt->dropped);
        rt->dropped = 0;
        if (rt->drop_then_begin) sweep_begin(rt);
        else sweep_end(rt, NULL);
        return;
    }
    rt->dropping = xcalloc(r->elements, sizeof(*rt->dropping));
    rt->step_failed = false;
    rt->drop_left = 1; /* held while the DELs go out */
    for (size_t i = 0; i < r->elements; i++) {
        if (r->element[i]->type != REDIS_REPLY_STRING) continue;
        rt->dropping[rt->ndropping++] = xstrndup(r->element[i]->str, r->element[i]->len);
        struct store_args a;
        store_args_init(&a);
        store_args_add(&a, "DEL");
        store_args_addn(&a, r->element[i]->str, r->element[i]->len);
        store_args_route(&a, r->element[i]->str, r->element[i]->len);
        rt->drop_left++;
        if (!send_args(rt, on_dropped, &a, NULL)) {
            rt->drop_left--;
            rt->step_failed = true;
            break;
        }
    }
    drop_settle(rt);
}

/* Deletes a round of the keys the drop set names, then the next round. */
static void drop_next(struct retention *rt)
{
    struct store_args a;
    store_args_init(&a);
    store_args_add(&a, "SRANDMEMBER");
    store_args_add(&a, rt->k_drop.buf);
    store_args_add(&a, RETENTION_DROP_BATCH);
    if (!send_args(rt, on_drop_members, &a, NULL)) sweep_end(rt, "redis unavailable");
}

void retention_tick(struct retention *rt)
{
    if (rt->running || rt->closing) return;
    rt->running = true;
    if (!store_keys_clustered()) {
        sweep_begin(rt);
        return;
    }
    rt->drop_then_begin = true;
    drop_next(rt);
}

static void on_timer(uv_timer_t *t) { retention_tick(t->data); }

static void keys_derive(struct retention *rt)
{
    const char *prefix = rt->cfg->prefix;
    store_key_retention(&rt->k_due, prefix);
    store_key_retention_sweep(&rt->k_lock, prefix, "lock");
    store_key_retention_sweep(&rt->k_cursor, prefix, "cursor");
    store_key_retention_sweep(&rt->k_set, prefix, "campaigns");
    store_key_retention_sweep(&rt->k_drop, prefix, "drop");
    strbuf_reset(&rt->pattern);
    store_glob_escape(&rt->pattern, prefix);
    strbuf_adds(&rt->pattern, ":r:{*}");
}

struct retention *retention_new(uv_loop_t *loop, struct store_cmds *sc, const struct config *cfg, const char *owner)
{
    struct retention *rt = xcalloc(1, sizeof(*rt));
    rt->loop = loop;
    rt->sc = sc;
    rt->cfg = cfg;
    rt->owner = xstrdup(owner);
    strbuf_init(&rt->k_due);
    strbuf_init(&rt->k_lock);
    strbuf_init(&rt->k_cursor);
    strbuf_init(&rt->k_set);
    strbuf_init(&rt->k_drop);
    strbuf_init(&rt->pattern);
    strbuf_init(&rt->key);
    keys_derive(rt);
    uv_timer_init(loop, &rt->timer);
    rt->timer.data = rt;
    uint64_t every = (uint64_t)cfg->retention_sweep_ms;
    uv_timer_start(&rt->timer, on_timer, every < RETENTION_FIRST_MS ? every : RETENTION_FIRST_MS, every);
    return rt;
}

void retention_reload(struct retention *rt, const struct config *cfg)
{
    rt->cfg = cfg; /* the same prefix: a restart-only key */
    uint64_t every = (uint64_t)cfg->retention_sweep_ms;
    if (uv_timer_get_repeat(&rt->timer) != every) uv_timer_start(&rt->timer, on_timer, every, every);
}

void retention_stats(const struct retention *rt, struct retention_stats *out) { *out = rt->st; }

static void on_timer_closed(uv_handle_t *h) { maybe_free(h->data); }

void retention_free(struct retention *rt)
{
    if (!rt) return;
    rt->closing = true;
    camps_free(rt);
    dropping_free(rt);
    uv_close((uv_handle_t *)&rt->timer, on_timer_closed);
}
