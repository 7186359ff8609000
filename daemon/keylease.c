/*
 * keylease.c - sealing leases (rules and layout in keylease.h).
 */
#include "keylease.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "keyreg.h"
#include "log.h"
#include "store.h"

void keylease_key(struct strbuf *sb, const char *prefix) { store_key_build(sb, prefix, ":keys:sealing", NULL, NULL); }

/* ---- a daemon's lease ---------------------------------------------------- */

struct keylease {
    uv_timer_t timer;
    struct store_cmds *sc;
    char *prefix, *holder;
    char *id;        /* the key it holds a lease on; NULL: none */
    unsigned long gen; /* bumped by keylease_set: an answer to an older ask is not "taken" */
    bool asked;      /* on_taken is owed for gen */
    bool released;
    bool giving_back; /* the release's HDEL is not answered yet */
    unsigned pending; /* lease commands not answered yet (a renewal waits for them: no pile-up while Redis is away) */
    keylease_refused_cb on_refused;
    keylease_taken_cb on_taken;
    void *arg;
};

/* One answer's context: which keylease_set it answers. */
struct lease_call {
    struct keylease *kl;
    unsigned long gen;
};

static void on_lease(redisReply *reply, enum store_error err, const char *text, void *arg)
{
    (void)err;
    (void)text;
    struct lease_call *lc = arg;
    struct keylease *kl = lc->kl;
    unsigned long gen = lc->gen;
    free(lc);
    kl->pending--;
    if (!reply || kl->released) return; /* freed, or stopping: nothing to decide */
    if (reply->type == REDIS_REPLY_STATUS || reply->type == REDIS_REPLY_STRING) {
        if (strcmp(reply->str, "retired") == 0) {
            if (gen == kl->gen && kl->id) kl->on_refused(kl->id, kl->arg);
            return;
        }
        if (strcmp(reply->str, "ok") == 0) {
            if (gen == kl->gen && kl->asked) {
                kl->asked = false;
                kl->on_taken(kl->arg);
            }
            return;
        }
    }
    /* Another shape: the script is not ours. Said; renewed at the next tick. */
    log_error("keys", "sealing lease: unexpected reply from lua/keys_lease.lua (type %d)", reply->type);
}

static void discard_lease(void *arg)
{
    struct lease_call *lc = arg;
    lc->kl->pending--; /* the layer goes first (keylease_free comes after it) */
    free(lc);
}

static void lease_send(struct keylease *kl)
{
    if (!kl->id || kl->released) return;
    struct store_args a;
    struct strbuf k;
    strbuf_init(&k);
    store_args_script(&a, store_lua_keys_lease, 2);
    keyreg_key(&k, kl->prefix);
    store_args_add(&a, k.buf);
    keylease_key(&k, kl->prefix);
    store_args_add(&a, k.buf);
    store_args_add(&a, kl->holder);
    store_args_add(&a, kl->id);
    store_args_addll(&a, KEYLEASE_TTL_S);
    strbuf_free(&k);
    struct lease_call *lc = xmalloc(sizeof(*lc));
    *lc = (struct lease_call){.kl = kl, .gen = kl->gen};
    /* No STORE_CMD_HOLD: an error reply is waited out and the command
     * sent again (store_cmd.h), never read as a lease held or refused. */
    kl->pending++;
    store_cmds_send(kl->sc, 0, on_lease, lc, discard_lease, &a, store_lua_keys_lease);
}

/* A renewal; none while one is still unanswered (Redis away: the layer
 * retries it, and it renews when it lands). */
static void renew(struct keylease *kl)
{
    if (!kl->pending) lease_send(kl);
}

static void on_renew(uv_timer_t *t) { renew(t->data); }

struct keylease *keylease_new(uv_loop_t *loop, struct store_cmds *sc, const char *prefix, const char *holder,
                              keylease_refused_cb on_refused, keylease_taken_cb on_taken, void *arg)
{
    struct keylease *kl = xcalloc(1, sizeof(*kl));
    uv_timer_init(loop, &kl->timer);
    kl->timer.data = kl;
    kl->sc = sc;
    kl->prefix = xstrdup(prefix);
    kl->holder = xstrdup(holder);
    kl->on_refused = on_refused;
    kl->on_taken = on_taken;
    kl->arg = arg;
    return kl;
}

static void on_given_back(redisReply *reply, enum store_error err, const char *text, void *arg)
{
    (void)reply;
    (void)err;
    (void)text;
    struct keylease *kl = arg;
    if (kl) kl->giving_back = false;
}

static void give_back(struct keylease *kl)
{
    struct strbuf k;
    strbuf_init(&k);
    keylease_key(&k, kl->prefix);
    /* A stop waits for the answer briefly (keylease_idle); a lease not
     * given back lapses by itself. */
    STORE_SEND(kl->sc, 0, on_given_back, kl->released ? kl : NULL, "HDEL", k.buf, kl->holder);
    strbuf_free(&k);
}

void keylease_set(struct keylease *kl, const char *id)
{
    if (kl->released) return;
    kl->gen++;
    if (!id) {
        uv_timer_stop(&kl->timer);
        if (kl->id) give_back(kl);
        free(kl->id);
        kl->id = NULL;
        kl->asked = false;
        kl->on_taken(kl->arg);
        return;
    }
    free(kl->id);
    kl->id = xstrdup(id);
    kl->asked = true;
    lease_send(kl);
    uv_timer_start(&kl->timer, on_renew, KEYLEASE_RENEW_S * 1000, KEYLEASE_RENEW_S * 1000);
}

void keylease_connected(struct keylease *kl)
{
    if (kl && kl->id && !kl->released) renew(kl);
}

void keylease_release(struct keylease *kl)
{
    if (!kl || kl->released) return;
    uv_timer_stop(&kl->timer);
    kl->released = true;
    if (kl->id) {
        kl->giving_back = true;
        give_back(kl);
    }
}

bool keylease_idle(const struct keylease *kl) { return !kl || !kl->giving_back; }

static void on_timer_closed(uv_handle_t *h)
{
    struct keylease *kl = h->data;
    free(kl->prefix);
    free(kl->holder);
    free(kl->id);
    free(kl);
}

void keylease_free(struct keylease *kl)
{
    if (!kl) return;
    kl->released = true;
    uv_close((uv_handle_t *)&kl->timer, on_timer_closed);
}

/* ---- heraldctl ------------------------------------------------------------ */

int keylease_take_sync(redisContext *c, const char *prefix, const char *holder, const char *id, int ttl_s,
                       char *err, size_t errlen)
{
    struct strbuf reg, k;
    strbuf_init(&reg);
    strbuf_init(&k);
    keyreg_key(&reg, prefix);
    keylease_key(&k, prefix);
    redisReply *r = redisCommand(c, "EVAL %s 2 %s %s %s %s %d", store_lua_keys_lease, reg.buf, k.buf, holder, id,
                                 ttl_s);
    int rc;
    if (r && (r->type == REDIS_REPLY_STATUS || r->type == REDIS_REPLY_STRING) && strcmp(r->str, "ok") == 0) {
        rc = 0;
    } else if (r && (r->type == REDIS_REPLY_STATUS || r->type == REDIS_REPLY_STRING) &&
               strcmp(r->str, "retired") == 0) {
        herald_seterr(err, errlen,
                      "key '%s', the first of key_file (the one that seals), was retired (heraldctl "
                      "retire-key): put a new key with a new id first",
                      id);
        rc = -HERALD_EINVAL;
    } else {
        store_sync_error(err, errlen, "sealing lease", c, r && r->type == REDIS_REPLY_ERROR ? r : NULL);
        rc = -HERALD_EREDIS;
    }
    if (r) freeReplyObject(r);
    strbuf_free(&reg);
    strbuf_free(&k);
    return rc;
}

void keylease_give_back_sync(redisContext *c, const char *prefix, const char *holder)
{
    struct strbuf k;
    strbuf_init(&k);
    keylease_key(&k, prefix);
    redisReply *r = redisCommand(c, "HDEL %s %s", k.buf, holder);
    if (r) freeReplyObject(r);
    strbuf_free(&k);
}

enum keylease_retire keylease_retire_sync(redisContext *c, const char *prefix, const char *id, const char *value,
                                          char *detail, size_t detaillen, long long *left)
{
    struct strbuf reg, k;
    strbuf_init(&reg);
    strbuf_init(&k);
    keyreg_key(&reg, prefix);
    keylease_key(&k, prefix);
    redisReply *r = redisCommand(c, "EVAL %s 2 %s %s %s %s", store_lua_keys_retire, reg.buf, k.buf, id, value);
    strbuf_free(&reg);
    strbuf_free(&k);
    enum keylease_retire out = KEYLEASE_ERROR;
    detail[0] = '\0';
    *left = 0;
    const redisReply *w0 = r && r->type == REDIS_REPLY_ARRAY && r->elements >= 1 ? r->element[0] : NULL;
    if (!w0 || w0->type != REDIS_REPLY_STRING) {
        store_sync_error(detail, detaillen, "key registry write", c, r && r->type == REDIS_REPLY_ERROR ? r : NULL);
    } else if (strcmp(w0->str, "ok") == 0) {
        out = KEYLEASE_RETIRED_NOW;
    } else if (strcmp(w0->str, "unknown") == 0) {
        out = KEYLEASE_UNKNOWN;
    } else if (strcmp(w0->str, "retired") == 0 && r->elements == 2 && r->element[1]->type == REDIS_REPLY_STRING) {
        out = KEYLEASE_RETIRED_ALREADY;
        herald_copy(detail, detaillen, r->element[1]->str);
    } else if (strcmp(w0->str, "sealing") == 0 && r->elements == 3 && r->element[1]->type == REDIS_REPLY_STRING &&
               r->element[2]->type == REDIS_REPLY_INTEGER) {
        out = KEYLEASE_SEALING;
        herald_copy(detail, detaillen, r->element[1]->str);
        *left = r->element[2]->integer;
    } else {
        herald_copy(detail, detaillen, "key registry write: unexpected reply from lua/keys_retire.lua");
    }
    if (r) freeReplyObject(r);
    return out;
}

int keylease_sync_take(struct keylease_sync *ls, redisContext *c, const char *prefix, const char *command,
                       const char *id, char *err, size_t errlen)
{
    memset(ls, 0, sizeof(*ls));
    char host[64];
    if (gethostname(host, sizeof(host)) != 0) herald_copy(host, sizeof(host), "localhost");
    host[sizeof(host) - 1] = '\0';
    snprintf(ls->holder, sizeof(ls->holder), "heraldctl %s %s %ld", command, host, (long)getpid());
    herald_copy(ls->id, sizeof(ls->id), id);
    ls->c = c;
    ls->prefix = prefix;
    int rc = keylease_take_sync(c, prefix, ls->holder, ls->id, KEYLEASE_TTL_S, err, errlen);
    if (rc == 0) {
        ls->held = true;
        ls->renewed = time(NULL);
    }
    return rc;
}

int keylease_sync_tick(struct keylease_sync *ls, char *err, size_t errlen)
{
    if (!ls || !ls->held) return 0;
    time_t now = time(NULL);
    if (now - ls->renewed < KEYLEASE_RENEW_S) return 0;
    int rc = keylease_take_sync(ls->c, ls->prefix, ls->holder, ls->id, KEYLEASE_TTL_S, err, errlen);
    if (rc == 0) ls->renewed = now;
    return rc;
}

void keylease_sync_give_back(struct keylease_sync *ls)
{
    if (!ls || !ls->held) return;
    keylease_give_back_sync(ls->c, ls->prefix, ls->holder);
    ls->held = false;
}
