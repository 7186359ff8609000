/*
 * store_events.c - the Redis side of the campaign events POSTed to
 * [events] url (store_events.h): the KEYS/ARGV of events_take.lua and
 * events_claim.lua, the acknowledgement, and the record's JSON form.
 * Never logs; every reply's shape is checked where it arrives.
 */
#include "store_events.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "store.h"

struct ev_call {
    store_event_cb cb;
    store_event_done_cb done;
    void *arg;
};

static struct ev_call *ev_call(store_event_cb cb, store_event_done_cb done, void *arg)
{
    struct ev_call *c = xcalloc(1, sizeof(*c));
    c->cb = cb;
    c->done = done;
    c->arg = arg;
    return c;
}

char *store_event_json(const char *id, const char *const *fields, const char *const *values, size_t n, size_t *len)
{
    static const char *const counts[] = {"total", "sent", "suppressed", "failed", "unknown"};
    json_t *o = json_object();
    json_object_set_new(o, "id", json_string(id));
    for (size_t i = 0; i < n; i++) {
        if (strcmp(fields[i], "id") == 0) continue;
        bool number = false;
        for (size_t c = 0; c < sizeof(counts) / sizeof(counts[0]); c++)
            if (strcmp(fields[i], counts[c]) == 0) number = true;
        char *end;
        long long v = strtoll(values[i], &end, 10);
        json_object_set_new(o, fields[i], number && *values[i] && !*end ? json_integer(v) : json_string(values[i]));
    }
    char *s = json_dumps(o, JSON_COMPACT | JSON_SORT_KEYS);
    json_decref(o);
    *len = strlen(s);
    return s;
}

static void on_take(redisReply *r, enum store_error err, const char *text, void *arg)
{
    struct ev_call *c = arg;
    (void)text;
    static const char *const hows[] = {"none", "own", "taken", "new"};
    struct store_event ev = {.backlog = -1};
    bool ok = r && r->type == REDIS_REPLY_ARRAY && r->elements == 5 && r->element[0]->type == REDIS_REPLY_STRING &&
              r->element[1]->type == REDIS_REPLY_STRING && r->element[1]->len < sizeof(ev.id) &&
              r->element[2]->type == REDIS_REPLY_ARRAY && r->element[3]->type == REDIS_REPLY_INTEGER &&
              r->element[4]->type == REDIS_REPLY_INTEGER;
    size_t h = 0;
    while (ok && h < 4 && strcmp(r->element[0]->str, hows[h]) != 0) h++;
    ok = ok && h < 4 && (h == 0) == (r->element[1]->len == 0);
    const redisReply *f = ok ? r->element[2] : NULL;
    for (size_t i = 0; ok && i < f->elements; i++) ok = f->element[i]->type == REDIS_REPLY_STRING;
    if (ok) {
        ev.how = (enum store_event_how)h;
        memcpy(ev.id, r->element[1]->str, r->element[1]->len + 1);
        long long pending = r->element[3]->integer, lag = r->element[4]->integer;
        ev.backlog = pending >= 0 && lag >= 0 ? pending + lag : -1;
        if (h) {
            size_t n = f->elements / 2;
            const char **k = xcalloc(n + 1, sizeof(*k)), **v = xcalloc(n + 1, sizeof(*v));
            for (size_t i = 0; i < n; i++) {
                k[i] = f->element[2 * i]->str;
                v[i] = f->element[2 * i + 1]->str;
            }
            ev.json = store_event_json(ev.id, k, v, n, &ev.len);
            free(k);
            free(v);
        }
    }
    c->cb(ok, r ? STORE_E_REPLY : err, &ev, c->arg);
    free(c);
}

static void on_int(redisReply *r, enum store_error err, const char *text, void *arg)
{
    struct ev_call *c = arg;
    (void)err, (void)text;
    bool ok = r && r->type == REDIS_REPLY_INTEGER;
    c->done(ok, ok && r->integer != 0, c->arg);
    free(c);
}

static int send_call(struct store_cmds *sc, struct store_args *a, const char *script, store_cmd_cb cb, struct ev_call *c)
{
    int rc = store_cmds_send(sc, STORE_CMD_ONCE, cb, c, NULL, a, script);
    store_args_free(a);
    if (rc < 0) free(c);
    return rc;
}

static void script_args(struct store_args *a, const char *script, const char *prefix, const char *group,
                        const char *consumer)
{
    struct strbuf k;
    strbuf_init(&k);
    store_key_events(&k, prefix);
    store_args_script(a, script, 1);
    store_args_add(a, k.buf);
    store_args_add(a, group);
    store_args_add(a, consumer);
    strbuf_free(&k);
}

int store_events_take(struct store_cmds *sc, const char *prefix, const char *consumer, int64_t claim_idle_ms,
                      bool claim, store_event_cb cb, void *arg)
{
    struct store_args a;
    script_args(&a, store_lua_events_take, prefix, STORE_EVENTS_GROUP, consumer);
    store_args_addll(&a, (long long)claim_idle_ms);
    store_args_add(&a, claim ? "1" : "0");
    return send_call(sc, &a, store_lua_events_take, on_take, ev_call(cb, NULL, arg));
}

int store_events_claim(struct store_cmds *sc, const char *prefix, const char *consumer, const char *id,
                       store_event_done_cb cb, void *arg)
{
    struct store_args a;
    script_args(&a, store_lua_events_claim, prefix, STORE_EVENTS_GROUP, consumer);
    store_args_add(&a, id);
    return send_call(sc, &a, store_lua_events_claim, on_int, ev_call(NULL, cb, arg));
}

int store_events_ack(struct store_cmds *sc, const char *prefix, const char *id, store_event_done_cb cb, void *arg)
{
    struct strbuf k;
    strbuf_init(&k);
    store_key_events(&k, prefix);
    struct store_args a;
    store_args_init(&a);
    store_args_add(&a, "XACK");
    store_args_add(&a, k.buf);
    store_args_add(&a, STORE_EVENTS_GROUP);
    store_args_add(&a, id);
    strbuf_free(&k);
    return send_call(sc, &a, NULL, on_int, ev_call(NULL, cb, arg));
}
