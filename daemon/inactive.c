/*
 * inactive.c - see inactive.h. A step: SCAN (the cursor), one
 * inactive_check.lua per person hash found, one erasure per person it
 * names, then the cursor saved with the lock renewed (retention_step.lua,
 * the campaign sweep's own script on this sweep's keys). On a cluster
 * the SCAN goes to each master in turn, as the campaign sweep's does
 * (retention.h).
 */
#include "inactive.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "channel.h"
#include "log.h"
#include "precond.h"
#include "retention.h"
#include "store.h"

#define INACTIVE_SCAN_COUNT "200"
#define INACTIVE_LOCK_TTL_MS 60000
#define INACTIVE_FIRST_MS 5000

struct inactive {
    uv_timer_t timer;
    struct store_cmds *sc;
    struct people *pp;
    const struct config *cfg;
    char *owner;
    struct strbuf k_lock, k_cursor, pattern;
    char cursor[32];
    size_t node;    /* on a cluster: the master being scanned */
    bool more;      /* the scan has more to read (a cursor, or masters left) */
    bool running, closing, failed;
    int inflight;   /* commands and erasures not answered yet */
    size_t left;    /* this step's checks and erasures not answered yet */
    uint64_t erased, sweep_erased, sweep_people;
};

struct erasure {
    struct inactive *in;
    char id[HERALD_ID_MAX + 1];
};

static void maybe_free(struct inactive *in)
{
    if (!in->closing || in->inflight > 0 || !uv_is_closing((uv_handle_t *)&in->timer)) return;
    strbuf_free(&in->k_lock);
    strbuf_free(&in->k_cursor);
    strbuf_free(&in->pattern);
    free(in->owner);
    free(in);
}

static void sweep_end(struct inactive *in, const char *why)
{
    if (why) log_warn("retention", "inactive people sweep stopped: %s; the next one resumes it", why);
    in->running = false;
}

/* Every callback starts here: false when in is closing or r is no answer. */
static bool answered(struct inactive *in, const redisReply *r, enum store_error err)
{
    in->inflight--;
    if (in->closing) {
        maybe_free(in);
        return false;
    }
    if (!r) {
        sweep_end(in, store_error_name(err));
        return false;
    }
    return true;
}

static void on_discard(void *arg)
{
    struct inactive *in = arg;
    in->inflight--;
    in->running = false;
    maybe_free(in);
}

static bool send_args(struct inactive *in, store_cmd_cb cb, void *arg, struct store_args *a, const char *script)
{
    if (store_cmds_send(in->sc, STORE_CMD_ONCE, cb, arg, on_discard, a, script) < 0) {
        store_args_free(a);
        return false;
    }
    in->inflight++;
    return true;
}

static void scan_next(struct inactive *in);

static void on_ended(redisReply *r, enum store_error err, const char *text, void *arg)
{
    struct inactive *in = arg;
    (void)text;
    if (!answered(in, r, err)) return;
    log_info("retention", "inactive people sweep done erased=%llu people_scanned=%llu",
             (unsigned long long)in->sweep_erased, (unsigned long long)in->sweep_people);
    sweep_end(in, NULL);
}

static void on_saved(redisReply *r, enum store_error err, const char *text, void *arg)
{
    struct inactive *in = arg;
    (void)text;
    if (!answered(in, r, err)) return;
    if ((r->type != REDIS_REPLY_STATUS && r->type != REDIS_REPLY_STRING) || strcmp(r->str, "ok") != 0) {
        sweep_end(in, "another daemon took the sweep over");
    } else if (in->more) {
        scan_next(in);
    } else { /* every person seen: the next sweep starts over */
        struct store_args a;
        store_args_init(&a);
        store_args_add(&a, "DEL");
        store_args_add(&a, in->k_lock.buf);
        store_args_add(&a, in->k_cursor.buf);
        if (!send_args(in, on_ended, in, &a, NULL)) sweep_end(in, "redis unavailable");
    }
}

/* The step's checks and erasures are in: the cursor saved, the lock renewed. */
static void step_done(struct inactive *in)
{
    if (in->failed) {
        sweep_end(in, "a check or an erasure failed");
        return;
    }
    struct store_args a;
    store_args_script(&a, store_lua_retention_step, 2);
    store_args_add(&a, in->k_lock.buf);
    store_args_add(&a, in->k_cursor.buf);
    store_args_add(&a, in->owner);
    store_args_addll(&a, INACTIVE_LOCK_TTL_MS);
    char at[48];
    retention_cursor_format(at, sizeof(at), in->node, in->cursor);
    store_args_add(&a, at);
    if (!send_args(in, on_saved, in, &a, store_lua_retention_step)) sweep_end(in, "redis unavailable");
}

static void item_done(struct inactive *in)
{
    if (--in->left == 0) step_done(in);
}

static void on_audited(redisReply *r, enum store_error err, const char *text, void *arg)
{
    struct inactive *in = arg;
    (void)text, (void)err;
    in->inflight--;
    if (in->closing) {
        maybe_free(in);
        return;
    }
    if (!r) in->failed = true;
    item_done(in);
}

static void on_erased(int status, enum store_error store, json_t *doc, const char *err, void *arg)
{
    struct erasure *e = arg;
    struct inactive *in = e->in;
    (void)store, (void)err;
    json_decref(doc);
    in->inflight--;
    if (in->closing) {
        free(e);
        maybe_free(in);
        return;
    }
    if (status == -HERALD_EPRECOND || status == -HERALD_ENOENT) { /* changed or gone meanwhile: kept */
        free(e);
        item_done(in);
        return;
    }
    if (status < 0) {
        in->failed = true;
        free(e);
        item_done(in);
        return;
    }
    in->erased++;
    in->sweep_erased++;
    log_info("retention", "recipient erased id=%s reason=retention", e->id);
    /* Recorded where the suppression changes are: who, why, when. */
    struct strbuf k;
    strbuf_init(&k);
    store_key_admin(&k, in->cfg->prefix);
    char at[32];
    herald_time_format(time(NULL), at, sizeof(at));
    struct store_args a;
    store_args_init(&a);
    const char *argv[] = {"XADD", k.buf, "MAXLEN", "~", NULL, "*", "action", "erase", "recipient", e->id,
                          "by", "retention", "reason", "retention", "at", at};
    for (size_t i = 0; i < sizeof(argv) / sizeof(argv[0]); i++) {
        if (argv[i]) store_args_add(&a, argv[i]);
        else store_args_addll(&a, (long long)in->cfg->audit_maxlen);
    }
    strbuf_free(&k);
    free(e);
    if (!send_args(in, on_audited, in, &a, NULL)) {
        in->failed = true;
        item_done(in);
    }
}

struct check {
    struct inactive *in;
    char id[HERALD_ID_MAX + 1];
};

static void on_check_discard(void *arg)
{
    struct check *c = arg;
    struct inactive *in = c->in;
    free(c);
    on_discard(in);
}

static void on_checked(redisReply *r, enum store_error err, const char *text, void *arg)
{
    struct check *c = arg;
    struct inactive *in = c->in;
    (void)text, (void)err;
    in->inflight--;
    if (in->closing) {
        free(c);
        maybe_free(in);
        return;
    }
    if (!r) in->failed = true;
    char *end = NULL;
    long long rev = r && r->type == REDIS_REPLY_STRING ? strtoll(r->str, &end, 10) : -1;
    if (rev < 0 || !end || *end) { /* kept (false), or no answer */
        free(c);
        item_done(in);
        return;
    }
    struct precond_if_match im = {.present = true, .nrevs = 1, .revs = {rev}};
    struct erasure *e = xcalloc(1, sizeof(*e));
    e->in = in;
    herald_copy(e->id, sizeof(e->id), c->id);
    free(c);
    if (people_erase_if(in->pp, e->id, &im, on_erased, e) < 0) {
        free(e);
        in->failed = true;
        item_done(in);
        return;
    }
    in->inflight++;
}

/* The id of a person hash key "<prefix>:r:{ID}", or false. */
static bool person_id(const struct inactive *in, const redisReply *k, char id[HERALD_ID_MAX + 1])
{
    size_t pl = strlen(in->cfg->prefix) + 4; /* ":r:{" */
    if (k->type != REDIS_REPLY_STRING || k->len <= pl + 1 || k->str[k->len - 1] != '}') return false;
    size_t n = k->len - pl - 1;
    if (n > HERALD_ID_MAX) return false;
    memcpy(id, k->str + pl, n);
    id[n] = '\0';
    return herald_id_valid(id);
}

static void on_scan(redisReply *r, enum store_error err, const char *text, void *arg)
{
    struct inactive *in = arg;
    (void)text;
    if (!answered(in, r, err)) return;
    if (r->type != REDIS_REPLY_ARRAY || r->elements != 2 || r->element[0]->type != REDIS_REPLY_STRING ||
        r->element[1]->type != REDIS_REPLY_ARRAY || r->element[0]->len >= sizeof(in->cursor)) {
        sweep_end(in, "unexpected reply to SCAN");
        return;
    }
    memcpy(in->cursor, r->element[0]->str, r->element[0]->len + 1);
    in->more = retention_cursor_next(in->sc, in->cursor, &in->node);
    const redisReply *keys = r->element[1];
    in->left = 1; /* this function's own hold, dropped at its end */
    in->failed = false;
    char limit[HERALD_LL_CHARS];
    herald_lltoa(limit, (long long)(in->cfg->retention_inactive_ms / 1000));
    struct strbuf kh;
    strbuf_init(&kh);
    for (size_t i = 0; i < keys->elements; i++) {
        char id[HERALD_ID_MAX + 1];
        if (!person_id(in, keys->element[i], id)) continue;
        in->sweep_people++;
        struct check *c = xcalloc(1, sizeof(*c));
        c->in = in;
        herald_copy(c->id, sizeof(c->id), id);
        struct store_args a;
        store_args_script(&a, store_lua_inactive_check, 2);
        store_args_addn(&a, keys->element[i]->str, keys->element[i]->len);
        store_key_history(&kh, in->cfg->prefix, id);
        store_args_add(&a, kh.buf);
        store_args_add(&a, limit);
        for (int ch = 0; ch < HERALD_CH_COUNT; ch++) store_args_add(&a, channel_get(ch)->consent_field);
        if (store_cmds_send(in->sc, STORE_CMD_ONCE, on_checked, c, on_check_discard, &a, store_lua_inactive_check) < 0) {
            store_args_free(&a);
            free(c);
            in->failed = true;
            break;
        }
        in->inflight++;
        in->left++;
    }
    strbuf_free(&kh);
    item_done(in);
}

static void scan_next(struct inactive *in)
{
    struct store_args a;
    store_args_init(&a);
    store_args_add(&a, "SCAN");
    store_args_add(&a, in->cursor);
    store_args_add(&a, "MATCH");
    store_args_add(&a, in->pattern.buf);
    store_args_add(&a, "COUNT");
    store_args_add(&a, INACTIVE_SCAN_COUNT);
    retention_scan_route(&a, in->sc, in->node);
    if (!send_args(in, on_scan, in, &a, NULL)) sweep_end(in, "redis unavailable");
}

/* The lock taken (or still ours) and the saved cursor read, at once. */
static void on_begin(redisReply *r, enum store_error err, const char *text, void *arg)
{
    struct inactive *in = arg;
    (void)text;
    if (!answered(in, r, err)) return;
    if (r->type != REDIS_REPLY_ARRAY || r->elements != 2) {
        sweep_end(in, "unexpected reply");
        return;
    }
    const redisReply *got = r->element[0], *cur = r->element[1];
    if (got->type != REDIS_REPLY_STRING || strcmp(got->str, in->owner) != 0) { /* another daemon sweeps */
        sweep_end(in, NULL);
        return;
    }
    herald_copy(in->cursor, sizeof(in->cursor), cur->type == REDIS_REPLY_STRING ? cur->str : "0");
    in->node = retention_cursor_parse(in->cursor);
    in->sweep_erased = in->sweep_people = 0;
    scan_next(in);
}

static void tick(uv_timer_t *t)
{
    struct inactive *in = t->data;
    if (in->running || in->closing || in->cfg->retention_inactive_ms <= 0) return;
    in->running = true;
    /* SET NX keeps another daemon's lock; GET says whose it is now. */
    struct store_args a;
    store_args_init(&a);
    store_args_add(&a, "EVAL");
    store_args_add(&a, "redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) "
                       "return {redis.call('GET', KEYS[1]), redis.call('GET', KEYS[2])}");
    store_args_add(&a, "2");
    store_args_add(&a, in->k_lock.buf);
    store_args_add(&a, in->k_cursor.buf);
    store_args_add(&a, in->owner);
    store_args_addll(&a, INACTIVE_LOCK_TTL_MS);
    if (!send_args(in, on_begin, in, &a, NULL)) in->running = false;
}

struct inactive *inactive_new(uv_loop_t *loop, struct store_cmds *sc, struct people *pp, const struct config *cfg,
                              const char *owner)
{
    struct inactive *in = xcalloc(1, sizeof(*in));
    in->sc = sc;
    in->pp = pp;
    in->cfg = cfg;
    in->owner = xstrdup(owner);
    strbuf_init(&in->k_lock);
    strbuf_init(&in->k_cursor);
    strbuf_init(&in->pattern);
    store_key_retention_sweep(&in->k_lock, cfg->prefix, "people:lock");
    store_key_retention_sweep(&in->k_cursor, cfg->prefix, "people:cursor");
    store_glob_escape(&in->pattern, cfg->prefix);
    strbuf_adds(&in->pattern, ":r:{*}");
    uv_timer_init(loop, &in->timer);
    in->timer.data = in;
    uint64_t every = (uint64_t)cfg->retention_sweep_ms;
    uv_timer_start(&in->timer, tick, every < INACTIVE_FIRST_MS ? every : INACTIVE_FIRST_MS, every);
    return in;
}

void inactive_reload(struct inactive *in, const struct config *cfg)
{
    in->cfg = cfg; /* the same prefix: a restart-only key */
    uint64_t every = (uint64_t)cfg->retention_sweep_ms;
    if (uv_timer_get_repeat(&in->timer) != every) uv_timer_start(&in->timer, tick, every, every);
}

uint64_t inactive_erased(const struct inactive *in) { return in->erased; }

static void on_closed(uv_handle_t *h) { maybe_free(h->data); }

void inactive_free(struct inactive *in)
{
    if (!in) return;
    in->closing = true;
    uv_close((uv_handle_t *)&in->timer, on_closed);
}
