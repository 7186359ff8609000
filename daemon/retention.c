/*
 * retention.c - removes the once-only records of campaigns past their
 * retention (retention.h). One sweep at a time per daemon, one daemon at a
 * time per Redis (lua/retention_begin.lua's lock); each step is a SCAN of
 * person hashes and one HDEL per hash found, then the cursor saved. On a
 * cluster the SCAN goes to each master in turn (routed by a tag of a slot
 * it serves) and the saved cursor is "<master>:<cursor>".
 */
#include "retention.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "log.h"
#include "store.h"

#define RETENTION_SCAN_COUNT "500"
#define RETENTION_MAX_CAMPAIGNS 64
#define RETENTION_LOCK_TTL_MS 60000
#define RETENTION_FIRST_MS 5000 /* the first sweep, this long after start */

struct retention {
    uv_loop_t *loop;
    uv_timer_t timer;
    struct store_cmds *sc;
    const struct config *cfg;
    char *owner;
    struct strbuf k_due, k_lock, k_cursor, k_set, pattern, key;
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
    struct retention_stats st;
};

static void maybe_free(struct retention *rt)
{
    if (!rt->closing || rt->inflight > 0 || !uv_is_closing((uv_handle_t *)&rt->timer)) return;
    strbuf_free(&rt->k_due);
    strbuf_free(&rt->k_lock);
    strbuf_free(&rt->k_cursor);
    strbuf_free(&rt->k_set);
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
    rt->ncamps = 0;
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

static void scan_next(struct retention *rt);

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
        sweep_end(rt, NULL);
    } else {
        sweep_end(rt, "another daemon took the sweep over");
    }
}

static void sweep_finish(struct retention *rt)
{
    struct store_args a;
    store_args_script(&a, store_lua_retention_end, 4 + 2 * rt->ncamps);
    store_args_add(&a, rt->k_due.buf);
    store_args_add(&a, rt->k_lock.buf);
    store_args_add(&a, rt->k_cursor.buf);
    store_args_add(&a, rt->k_set.buf);
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
    if (!send_args(rt, on_end, &a, store_lua_retention_end)) sweep_end(rt, "redis unavailable");
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
        sweep_finish(rt);
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
    if (store_keys_clustered()) {
        char at[48];
        snprintf(at, sizeof(at), "%zu:%s", rt->node, rt->cursor);
        store_args_add(&a, at);
    } else {
        store_args_add(&a, rt->cursor);
    }
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
    rt->more = strcmp(rt->cursor, "0") != 0;
    if (!rt->more && store_keys_clustered() && rt->node + 1 < store_cmds_nodes(rt->sc)) {
        rt->node++; /* this master is done: the next one's scan starts at 0 */
        rt->more = true;
    }
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
    const char *tag = store_cmds_node_tag(rt->sc, rt->node); /* NULL on one Redis */
    if (tag) store_args_route(&a, tag, strlen(tag));
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
    rt->node = 0;
    char *colon = strchr(rt->cursor, ':');
    if (colon) { /* a cluster's "<master>:<cursor>" */
        rt->node = (size_t)strtoull(rt->cursor, NULL, 10);
        memmove(rt->cursor, colon + 1, strlen(colon + 1) + 1);
    }
    rt->ncamps = r->elements - 2;
    rt->camps = xcalloc(rt->ncamps, sizeof(*rt->camps));
    for (size_t i = 0; i < rt->ncamps; i++) rt->camps[i] = xstrdup(r->element[2 + i]->str);
    rt->step_people = 0;
    log_info("retention", "sweep of once-only records campaigns=%zu from_cursor=%s", rt->ncamps, rt->cursor);
    scan_next(rt);
}

void retention_tick(struct retention *rt)
{
    if (rt->running || rt->closing) return;
    rt->running = true;
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

static void on_timer(uv_timer_t *t) { retention_tick(t->data); }

static void keys_derive(struct retention *rt)
{
    const char *prefix = rt->cfg->prefix;
    store_key_retention(&rt->k_due, prefix);
    store_key_retention_sweep(&rt->k_lock, prefix, "lock");
    store_key_retention_sweep(&rt->k_cursor, prefix, "cursor");
    store_key_retention_sweep(&rt->k_set, prefix, "campaigns");
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
    uv_close((uv_handle_t *)&rt->timer, on_timer_closed);
}
