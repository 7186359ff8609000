/*
 * stream_trim.c - see stream_trim.h. Owns one timer and the XTRIM commands it
 * sends; knows the streams it trims and their ages, nothing else. Must
 * never trim by anything but age, nor hold anything up: a trim refused
 * (an ACL without XTRIM, Redis away) is logged once while it lasts and
 * tried again at the next round. Invariant: at most one round in flight.
 */
#include "stream_trim.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "log.h"
#include "metrics.h"
#include "store.h"

struct stream_trim {
    uv_timer_t timer;
    struct store_cmds *cmds;
    const struct config *cfg;
    int in_flight; /* trims of the round under way */
    bool again;    /* a round was asked for meanwhile (a reload): run it after */
    struct log_complaint refused;
};

/* One trim in flight: its stream's name (the metric's label). */
struct trim {
    struct stream_trim *r;
    const char *name;
};

void stream_trim_minid(char *buf, size_t len, int64_t now_ms, int64_t age_ms)
{
    int64_t min = now_ms - age_ms;
    snprintf(buf, len, "%" PRId64 "-0", min > 0 ? min : 0);
}

static int64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void on_trimmed(redisReply *reply, enum store_error err, const char *text, void *arg)
{
    struct trim *t = arg;
    struct stream_trim *r = t->r;
    r->in_flight--;
    if (reply && reply->type == REDIS_REPLY_INTEGER) {
        if (reply->integer > 0) {
            metrics_retention_trimmed(t->name, (uint64_t)reply->integer);
            log_debug("stream_trim", "deleted old entries stream=%s entries=%lld", t->name, reply->integer);
        }
        log_recovered(&r->refused, "stream_trim", "trimming by age works again");
    } else if (reply || err != STORE_E_CONNECTION) {
        /* Redis's error names the command or a code, never a value. */
        log_complain(&r->refused, "stream_trim", "trimming stream=%s by age failed (%s): %.120s; tried again each minute",
                     t->name, store_error_name(err), text ? text : "unexpected reply");
    }
    free(t);
    if (r->in_flight == 0 && r->again) stream_trim_run(r);
}

static void trim_key(struct stream_trim *r, const char *name, const struct strbuf *k, int64_t age_ms, int64_t now_ms)
{
    char minid[32];
    stream_trim_minid(minid, sizeof(minid), now_ms, age_ms);
    struct trim *t = xmalloc(sizeof(*t));
    *t = (struct trim){.r = r, .name = name};
    /* lua/stream_trim.lua: XTRIM MINID, exact (not `~`: whole old nodes go
     * at once either way, and the entry one ms too old must not outlive
     * its age for want of company), held back to what every consumer
     * group of the stream has read and acknowledged. */
    struct store_args a;
    store_args_script(&a, store_lua_stream_trim, 1);
    store_args_add(&a, k->buf);
    store_args_add(&a, minid);
    if (store_cmds_send(r->cmds, STORE_CMD_ONCE, on_trimmed, t, NULL, &a, store_lua_stream_trim) == 0) r->in_flight++;
    else free(t); /* the connection is down: the next round */
    store_args_free(&a);
}

static void trim(struct stream_trim *r, const char *name, void (*key)(struct strbuf *, const char *), int64_t age_ms,
                 int64_t now_ms)
{
    if (age_ms <= 0) return;
    struct strbuf k;
    strbuf_init(&k);
    key(&k, r->cfg->prefix);
    trim_key(r, name, &k, age_ms, now_ms);
    strbuf_free(&k);
}

/* A cluster: every node's audit stream, by the tags in the audit's nodes set. */
static void on_audit_nodes(redisReply *reply, enum store_error err, const char *text, void *arg)
{
    struct stream_trim *r = arg;
    (void)err;
    (void)text;
    r->in_flight--;
    int64_t now = wall_ms();
    struct strbuf k;
    strbuf_init(&k);
    for (size_t i = 0; reply && reply->type == REDIS_REPLY_ARRAY && i < reply->elements; i++) {
        if (reply->element[i]->type != REDIS_REPLY_STRING) continue;
        store_key_node(&k, r->cfg->prefix, reply->element[i]->str, ":audit", NULL, NULL);
        trim_key(r, "audit", &k, r->cfg->retention_audit_ms, now);
    }
    strbuf_free(&k);
    if (r->in_flight == 0 && r->again) stream_trim_run(r);
}

void stream_trim_run(struct stream_trim *r)
{
    if (r->in_flight > 0) {
        r->again = true;
        return;
    }
    r->again = false;
    int64_t now = wall_ms();
    const struct config *c = r->cfg;
    trim(r, "audit", store_key_audit, c->retention_audit_ms, now);
    trim(r, "events", store_key_events, c->retention_audit_ms, now);
    trim(r, "admin", store_key_admin, c->retention_audit_ms, now);
    trim(r, "dead", store_key_dead, c->retention_dead_letters_ms, now);
    if (c->retention_audit_ms > 0 && store_cmds_node_tag(r->cmds, 0)) {
        struct strbuf k;
        strbuf_init(&k);
        store_key_audit_nodes(&k, c->prefix);
        if (STORE_SEND(r->cmds, STORE_CMD_ONCE, on_audit_nodes, r, "SMEMBERS", k.buf) == 0) r->in_flight++;
        strbuf_free(&k);
    }
}

static void on_timer(uv_timer_t *t) { stream_trim_run(t->data); }

struct stream_trim *stream_trim_new(uv_loop_t *loop, struct store_cmds *cmds, const struct config *cfg,
                                uint64_t period_ms)
{
    struct stream_trim *r = xcalloc(1, sizeof(*r));
    r->cmds = cmds;
    r->cfg = cfg;
    uv_timer_init(loop, &r->timer);
    r->timer.data = r;
    uv_timer_start(&r->timer, on_timer, period_ms, period_ms);
    return r;
}

void stream_trim_reload(struct stream_trim *r, const struct config *cfg)
{
    r->cfg = cfg;
    stream_trim_run(r);
}

void stream_trim_close(struct stream_trim *r)
{
    uv_timer_stop(&r->timer);
    if (!uv_is_closing((uv_handle_t *)&r->timer)) uv_close((uv_handle_t *)&r->timer, NULL);
}

void stream_trim_free(struct stream_trim *r) { free(r); }
