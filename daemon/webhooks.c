/*
 * webhooks.c - provider callbacks: POST /v1/webhooks/<provider name> hands
 * the request to that provider's plugin (ABI 2's feedback(), which
 * verifies the provider's signature and reads the events), then applies
 * the events (see webhooks.h). It names no plugin: any plugin with a
 * feedback() takes callbacks.
 *
 * Owns only the per-request state. The person's data is changed through
 * people.h alone; its own keys go through the daemon's command layer for
 * interactive callers (api_state.cmds): the dedupe key of an event
 * (`<prefix>:webhook:<label>:<event id>`, label the plugin's
 * feedback_route or name) is set in the same script as the change it
 * guards (people.c's consent script for STOP and START,
 * lua/feedback_status.lua for a delivery event), so it is never left set
 * by a change that failed; HELP, which changes nothing, sets it with SET
 * NX EX. The counters hash `<prefix>:webhook:counts` takes a count per
 * label and kind.
 *
 * Main invariant: nothing changes unless the plugin verified the
 * provider's signature over the exact bytes received and read the whole
 * request; a request refused (401, 403, 400) has changed nothing. A
 * provider sends an event again until it gets a 2xx, so a Redis failure
 * is answered 503 (api_respond_store_error), never 200 with nothing
 * stored. Logs carry ids (provider, recipient and event ids), counts and
 * error labels, never an address, a number or a body.
 */
#include "webhooks.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "herald_channel.h"
#include "log.h"
#include "people.h"
#include "plugin.h"
#include "store.h"

#define FB_ID_MAX 128

/* Refused requests may come thousands a second (anyone can post): a line
 * when they start, a count a minute, a line when they stop (log.h). */
static struct log_rate refusals;

static void refused(const char *provider, const char *why)
{
    log_rate_hit(&refusals, "webhooks", "unauthenticated callbacks refused",
                 "%s: refused: %s; further refusals are counted", provider, why);
}

static void on_counted(redisReply *r, enum store_error err, const char *text, void *arg)
{
    (void)r, (void)err, (void)text, (void)arg;
}

/* After the change was stored: a counter that must land, so it is a
 * default command of the layer (retried until it passes, never failing
 * the request whose change it counts). */
static void count(struct api_state *st, const char *label, const char *what, long long by)
{
    if (by <= 0) return;
    struct strbuf k, f;
    strbuf_init(&k);
    strbuf_init(&f);
    store_key_build(&k, st->cfg->prefix, ":webhook:counts", NULL, NULL);
    strbuf_addf(&f, "%s:%s", label, what);
    char n[HERALD_LL_CHARS];
    herald_lltoa(n, by);
    STORE_SEND(st->cmds, 0, on_counted, NULL, "HINCRBY", k.buf, f.buf, n);
    strbuf_free(&k);
    strbuf_free(&f);
}

/* [A-Za-z0-9._:=_-], 1..max: an id from the provider, safe in keys and logs. */
static bool fb_id_valid(const char *s, size_t max)
{
    if (!s || !*s || strlen(s) > max) return false;
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') || strchr("._:=-_", *s)))
            return false;
    return true;
}

/* ---- one request -------------------------------------------------------- */

struct fb_event {
    enum herald_feedback_kind kind;
    int channel;
    int64_t at;
    char *event_id, *provider_id, *campaign, *recipient, *address, *detail;
    char *person;         /* keywords: the person's id once found */
    struct fb_ctx *c;
};

struct fb_ctx {
    struct http_request *req;
    struct api_state *st;
    const char *provider; /* the provider instance that verified (config owns it) */
    const char *label;    /* counters and dedupe keys: the plugin's route or name */
    struct fb_event *ev;
    size_t n, cap;
    size_t nevents, ignored;
    size_t recorded, suppressed, duplicates, unmatched, keywords;
    size_t pending;
    bool failed;
    enum store_error error; /* when failed */
    struct herald_feedback_reply reply;
};

static void ev_free(struct fb_event *e)
{
    free(e->event_id);
    free(e->provider_id);
    free(e->campaign);
    free(e->recipient);
    free(e->address);
    free(e->detail);
    free(e->person);
}

static void ctx_reset(struct fb_ctx *c)
{
    for (size_t i = 0; i < c->n; i++) ev_free(&c->ev[i]);
    c->n = 0;
    c->nevents = c->ignored = 0;
    memset(&c->reply, 0, sizeof(c->reply));
}

static void ctx_free(struct fb_ctx *c)
{
    ctx_reset(c);
    free(c->ev);
    free(c);
}

static char *dup_or_null(const char *s) { return s ? xstrdup(s) : NULL; }

/* feedback()'s emit: the daemon's own copy of each event that asks for
 * something. An id that is not one is dropped (the event then cannot be
 * deduplicated or matched: it is counted ignored). */
static void on_emit(void *ectx, const struct herald_feedback_event *fe)
{
    struct fb_ctx *c = ectx;
    c->nevents++;
    int channel = fe->channel ? herald_channel_from_name(fe->channel) : -1;
    if (fe->kind == HERALD_FEEDBACK_IGNORED || fe->kind > HERALD_FEEDBACK_KEYWORD_HELP ||
        !fb_id_valid(fe->event_id, FB_ID_MAX) || channel < 0) {
        c->ignored++;
        return;
    }
    if (c->n == c->cap) {
        c->cap = c->cap ? c->cap * 2 : 8;
        c->ev = xrealloc(c->ev, c->cap * sizeof(*c->ev));
    }
    struct fb_event *e = &c->ev[c->n++];
    memset(e, 0, sizeof(*e));
    e->c = c;
    e->kind = fe->kind;
    e->channel = channel;
    e->at = fe->at;
    e->event_id = xstrdup(fe->event_id);
    if (fb_id_valid(fe->provider_id, HERALD_ID_MAX)) e->provider_id = xstrdup(fe->provider_id);
    /* Echoed ids are used only in pairs, and only when they are ids. */
    if (fe->campaign && fe->recipient && herald_id_valid(fe->campaign) && herald_id_valid(fe->recipient)) {
        e->campaign = xstrdup(fe->campaign);
        e->recipient = xstrdup(fe->recipient);
    }
    e->address = dup_or_null(fe->address);
    e->detail = fb_id_valid(fe->detail, 64) ? xstrdup(fe->detail) : NULL;
}

static void fb_done(struct fb_ctx *c)
{
    if (c->failed) {
        log_warn("webhooks", "%s: redis failed (%s); events=%zu recorded=%zu suppressed=%zu (the provider retries)",
                 c->provider, store_error_name(c->error), c->nevents, c->recorded, c->suppressed);
        count(c->st, c->label, "suppressed", (long long)c->suppressed); /* what did change, once */
        count(c->st, c->label, "recorded", (long long)c->recorded);
        api_respond_store_error(c->req, c->error);
    } else {
        count(c->st, c->label, "suppressed", (long long)c->suppressed);
        count(c->st, c->label, "recorded", (long long)c->recorded);
        log_info("webhooks", "%s: events=%zu recorded=%zu suppressed=%zu keywords=%zu duplicates=%zu unmatched=%zu "
                             "ignored=%zu",
                 c->provider, c->nevents, c->recorded, c->suppressed, c->keywords, c->duplicates, c->unmatched,
                 c->ignored);
        if (c->reply.body[0]) {
            const char *type = c->reply.content_type[0] ? c->reply.content_type : "text/plain; charset=utf-8";
            http_respond(c->req, 200, type, c->reply.body, strlen(c->reply.body));
        } else {
            http_respond_json(c->req, 200,
                              json_pack("{s:I, s:I, s:I, s:I, s:I, s:I}", "events", (json_int_t)c->nevents,
                                        "recorded", (json_int_t)c->recorded, "suppressed",
                                        (json_int_t)c->suppressed, "duplicates", (json_int_t)c->duplicates,
                                        "unmatched", (json_int_t)c->unmatched, "ignored", (json_int_t)c->ignored));
        }
    }
    ctx_free(c);
}

static void ev_fail(struct fb_event *e, enum store_error err)
{
    if (!e->c->failed) e->c->error = err;
    e->c->failed = true;
}

static void ev_done(struct fb_event *e)
{
    if (--e->c->pending == 0) fb_done(e->c);
}

static void dedupe_key(struct strbuf *k, const struct fb_event *e)
{
    store_key_build(k, e->c->st->cfg->prefix, ":webhook:", e->c->label, ":");
    strbuf_adds(k, e->event_id);
}

/* ---- delivery events: delivered, bounced, complained ------------------ */

static const char *status_outcome(enum herald_feedback_kind k)
{
    switch (k) {
    case HERALD_FEEDBACK_DELIVERED: return "delivered";
    case HERALD_FEEDBACK_COMPLAINED: return "complained";
    case HERALD_FEEDBACK_UNSUBSCRIBED: return NULL; /* suppression only */
    default: return "bounced";
    }
}

/* The audit reason: hard, soft, failed, undelivered or complaint, then
 * ":" and the provider's detail; none for delivered. */
static void status_reason(struct strbuf *sb, const struct fb_event *e)
{
    strbuf_reset(sb);
    const char *head = e->kind == HERALD_FEEDBACK_BOUNCED_HARD   ? "hard"
                       : e->kind == HERALD_FEEDBACK_BOUNCED_SOFT ? "soft"
                       : e->kind == HERALD_FEEDBACK_FAILED       ? "failed"
                       : e->kind == HERALD_FEEDBACK_UNDELIVERED  ? "undelivered"
                       : e->kind == HERALD_FEEDBACK_COMPLAINED   ? "complaint"
                                                                  : NULL;
    if (!head) return; /* delivered: no reason */
    strbuf_adds(sb, head);
    if (e->detail) strbuf_addf(sb, ":%s", e->detail);
}

static void on_recorded(redisReply *r, enum store_error err, const char *text, void *arg)
{
    (void)text;
    struct fb_event *e = arg;
    if (!r || r->type != REDIS_REPLY_INTEGER) {
        ev_fail(e, r ? STORE_E_ERROR : err);
    } else if (r->integer == 1) {
        e->c->recorded++;
        log_debug("webhooks", "%s: %s campaign=%s recipient=%s event=%s", e->c->provider, status_outcome(e->kind),
                  e->campaign, e->recipient, e->event_id);
    } else {
        e->c->duplicates++;
    }
    ev_done(e);
}

static void record(struct fb_event *e)
{
    struct api_state *st = e->c->st;
    struct store_args a;
    struct strbuf k;
    strbuf_init(&k);
    store_args_script(&a, store_lua_feedback_status, 3);
    dedupe_key(&k, e);
    store_args_add(&a, k.buf);
    store_key_audit(&k, st->cfg->prefix);
    store_args_add(&a, k.buf);
    store_key_campaign(&k, st->cfg->prefix, e->campaign);
    store_args_add(&a, k.buf);
    char ttl[HERALD_LL_CHARS], maxlen[HERALD_LL_CHARS], at[40];
    herald_lltoa(ttl, WEBHOOKS_DEDUPE_TTL_S);
    herald_lltoa(maxlen, (long long)st->cfg->audit_maxlen);
    herald_time_format(e->at > 0 ? e->at : (int64_t)time(NULL), at, sizeof(at));
    store_args_add(&a, ttl);
    store_args_add(&a, maxlen);
    store_args_add(&a, e->campaign);
    store_args_add(&a, e->recipient);
    store_args_add(&a, herald_channel_name(e->channel));
    store_args_add(&a, status_outcome(e->kind));
    status_reason(&k, e);
    store_args_add(&a, k.buf);
    store_args_add(&a, e->c->provider);
    store_args_add(&a, e->provider_id ? e->provider_id : "");
    store_args_add(&a, at);
    strbuf_free(&k);
    if (store_cmds_send(st->cmds, STORE_CMD_ONCE, on_recorded, e, NULL, &a, store_lua_feedback_status) < 0) {
        ev_fail(e, STORE_E_CONNECTION);
        ev_done(e);
    }
}

/* "campaign recipient channel" from the provider id key (lua/finish.lua). */
static void on_pid(redisReply *r, enum store_error err, const char *text, void *arg)
{
    (void)text;
    struct fb_event *e = arg;
    if (!r || (r->type != REDIS_REPLY_STRING && r->type != REDIS_REPLY_NIL)) {
        ev_fail(e, r ? STORE_E_ERROR : err);
        ev_done(e);
        return;
    }
    char camp[HERALD_ID_MAX + 1], rcpt[HERALD_ID_MAX + 1], chan[16];
    if (r->type == REDIS_REPLY_NIL || r->len > 3 * HERALD_ID_MAX ||
        sscanf(r->str, "%128s %128s %15s", camp, rcpt, chan) != 3 || !herald_id_valid(camp) ||
        !herald_id_valid(rcpt)) {
        e->c->unmatched++;
        log_debug("webhooks", "%s: event=%s provider_id=%s matches no message herald remembers", e->c->provider,
                  e->event_id, e->provider_id);
        ev_done(e);
        return;
    }
    e->campaign = xstrdup(camp);
    e->recipient = xstrdup(rcpt);
    record(e);
}

static void find_message(struct fb_event *e)
{
    if (!status_outcome(e->kind)) { /* unsubscribed: suppressed, nothing to record */
        ev_done(e);
        return;
    }
    if (e->campaign) {
        record(e);
        return;
    }
    if (!e->provider_id) {
        e->c->unmatched++;
        ev_done(e);
        return;
    }
    struct strbuf k;
    strbuf_init(&k);
    store_key_pid(&k, e->c->st->cfg->prefix, e->c->provider, e->provider_id);
    int rc = STORE_SEND(e->c->st->cmds, STORE_CMD_ONCE, on_pid, e, "GET", k.buf);
    strbuf_free(&k);
    if (rc < 0) {
        ev_fail(e, STORE_E_CONNECTION);
        ev_done(e);
    }
}

static void on_suppressed(int status, enum store_error store, json_t *doc, const char *err, void *arg)
{
    (void)err;
    struct fb_event *e = arg;
    if (status == 0 && json_is_true(json_object_get(doc, "changed"))) e->c->suppressed++;
    json_decref(doc);
    if (status != 0 && status != -HERALD_EINVAL) { /* EINVAL: not an address the store takes */
        ev_fail(e, status == -HERALD_EREDIS ? store : STORE_E_ERROR);
        ev_done(e); /* not recorded: the provider's redelivery does both */
        return;
    }
    find_message(e);
}

/* A hard bounce, a complaint or an unsubscribe suppresses the address
 * first; the record (with its dedupe key) follows once that stored. */
static void apply_status(struct fb_event *e)
{
    bool suppress = e->kind == HERALD_FEEDBACK_BOUNCED_HARD || e->kind == HERALD_FEEDBACK_COMPLAINED ||
                    e->kind == HERALD_FEEDBACK_UNSUBSCRIBED;
    if (!suppress || !e->address) {
        find_message(e);
        return;
    }
    if (people_suppress(e->c->st->people, e->channel, e->address, true, on_suppressed, e) < 0) {
        ev_fail(e, STORE_E_CONNECTION);
        ev_done(e);
    }
}

/* ---- keywords: STOP, START, HELP of an inbound SMS -------------------- */

static const char *keyword_name(enum herald_feedback_kind k)
{
    return k == HERALD_FEEDBACK_KEYWORD_STOP ? "stop" : k == HERALD_FEEDBACK_KEYWORD_START ? "start" : "help";
}

static void on_consented(int status, enum store_error store, json_t *doc, const char *err, void *arg)
{
    (void)err;
    struct fb_event *e = arg;
    bool applied = doc != NULL;
    json_decref(doc);
    if (status == 0 && applied) { /* counted by the same script */
        e->c->keywords++;
        log_info("webhooks", "%s: %s recipient=%s event=%s: %s consent %s", e->c->provider, keyword_name(e->kind),
                 e->person, e->event_id, herald_channel_name(e->channel),
                 e->kind == HERALD_FEEDBACK_KEYWORD_STOP ? "revoked" : "granted");
    } else if (status == 0) {
        e->c->duplicates++;
    } else if (status == -HERALD_ENOENT) {
        log_info("webhooks", "%s: %s event=%s: the person was erased meanwhile", e->c->provider,
                 keyword_name(e->kind), e->event_id);
    } else {
        log_warn("webhooks", "%s: %s event=%s not applied: redis failed; the provider retries", e->c->provider,
                 keyword_name(e->kind), e->event_id);
        ev_fail(e, status == -HERALD_EREDIS ? store : STORE_E_ERROR);
    }
    ev_done(e);
}

/* HELP changes nothing but a counter: the event id marks it counted. */
static void on_help_deduped(redisReply *reply, enum store_error err, const char *text, void *arg)
{
    (void)text;
    struct fb_event *e = arg;
    if (!reply) {
        ev_fail(e, err);
    } else if (reply->type == REDIS_REPLY_NIL) {
        e->c->duplicates++;
    } else {
        e->c->keywords++;
        count(e->c->st, e->c->label, "help", 1);
        log_info("webhooks", "%s: help recipient=%s event=%s", e->c->provider, e->person, e->event_id);
    }
    ev_done(e);
}

static void on_found(int status, enum store_error store, json_t *doc, const char *err, void *arg)
{
    (void)err;
    struct fb_event *e = arg;
    const char *id = status == 0 ? json_string_value(json_object_get(doc, "id")) : NULL;
    if (id) e->person = xstrdup(id);
    json_decref(doc);
    if (status == -HERALD_ENOENT || status == -HERALD_EINVAL || (status == 0 && !e->person)) {
        log_info("webhooks", "%s: %s event=%s from an address herald does not know: nothing stored", e->c->provider,
                 keyword_name(e->kind), e->event_id);
        e->c->unmatched++;
        ev_done(e);
        return;
    }
    if (status < 0) {
        ev_fail(e, status == -HERALD_EREDIS ? store : STORE_E_ERROR);
        ev_done(e);
        return;
    }
    struct strbuf k, counts;
    strbuf_init(&k);
    strbuf_init(&counts);
    dedupe_key(&k, e);
    store_key_build(&counts, e->c->st->cfg->prefix, ":webhook:counts", NULL, NULL);
    int rc;
    if (e->kind == HERALD_FEEDBACK_KEYWORD_HELP) {
        char ttl[HERALD_LL_CHARS];
        herald_lltoa(ttl, WEBHOOKS_DEDUPE_TTL_S);
        rc = STORE_SEND(e->c->st->cmds, STORE_CMD_ONCE, on_help_deduped, e, "SET", k.buf, "1", "NX", "EX", ttl);
    } else {
        char field[96];
        snprintf(field, sizeof(field), "%s:%s", e->c->label, keyword_name(e->kind));
        struct people_event pe = {.key = k.buf, .ttl_s = WEBHOOKS_DEDUPE_TTL_S, .counts = counts.buf, .field = field};
        rc = people_consent_append_event(e->c->st->people, e->person, e->channel,
                                         e->kind == HERALD_FEEDBACK_KEYWORD_START, "sms_keyword", NULL,
                                         (int64_t)time(NULL), &pe, on_consented, e);
    }
    strbuf_free(&k);
    strbuf_free(&counts);
    if (rc < 0) {
        ev_fail(e, STORE_E_CONNECTION);
        ev_done(e);
    }
}

static void apply_keyword(struct fb_event *e)
{
    if (!e->address || !e->address[0]) {
        e->c->ignored++;
        ev_done(e);
        return;
    }
    if (people_find_by_address(e->c->st->people, e->channel, e->address, on_found, e) < 0) {
        ev_fail(e, STORE_E_CONNECTION);
        ev_done(e);
    }
}

/* ---- the route ------------------------------------------------------------ */

/* The providers a route segment names: the provider of that name when its
 * plugin takes callbacks, else (older callback URLs) every provider whose
 * plugin's feedback_route it is, in file order. */
static size_t candidates(struct api_state *st, const char *name, struct plugin_provider **out, size_t max)
{
    if (!st->plugins || !name) return 0;
    struct plugin_provider *p = plugin_set_find(st->plugins, name);
    if (p && p->feedback) {
        out[0] = p;
        return 1;
    }
    size_t n = 0;
    for (size_t i = 0; i < plugin_set_count(st->plugins) && n < max; i++) {
        p = plugin_set_get(st->plugins, i);
        if (p->feedback && p->feedback_route && strcmp(p->feedback_route, name) == 0) out[n++] = p;
    }
    return n;
}

/* The {provider} segment, read from the request target (the route's
 * parameters are not there yet at headers-complete) into buf. Provider
 * names are plain (config.c), so an escaped one names none. */
static const char *route_name(const struct http_request *req, char *buf, size_t len)
{
    const char *t = http_request_target(req);
    const char *head = "/v1/webhooks/";
    if (strncmp(t, head, strlen(head)) != 0) return NULL;
    t += strlen(head);
    size_t n = strcspn(t, "?#");
    if (n == 0 || n >= len || memchr(t, '/', n) || memchr(t, '%', n)) return NULL;
    memcpy(buf, t, n);
    buf[n] = '\0';
    return buf;
}

/* At headers-complete, before a byte of the body is read: 404 for a
 * provider that takes no callbacks, 401 without the headers its plugin
 * needs to verify anything. */
static int feedback_precheck(const struct http_request *req, void *arg, const char **message)
{
    struct api_state *st = arg;
    struct plugin_provider *p[1];
    char buf[HERALD_ID_MAX + 1];
    const char *name = route_name(req, buf, sizeof(buf));
    if (candidates(st, name, p, 1) == 0) {
        *message = "no provider of that name takes callbacks";
        return 404;
    }
    for (const char *const *h = p[0]->feedback_headers; h && *h; h++)
        if (!http_request_header(req, *h)) {
            refused(name, "signature headers missing");
            *message = "signature required";
            return 401;
        }
    return 0;
}

static const char *req_header(const void *hctx, const char *name) { return http_request_header(hctx, name); }

static void feedback_post(struct http_request *req, void *arg)
{
    struct api_state *st = arg;
    const char *msg;
    int status = feedback_precheck(req, st, &msg); /* passed already; kept for a direct call */
    if (status) {
        http_respond_error(req, status, msg);
        return;
    }
    struct plugin_provider *cand[16];
    char name[HERALD_ID_MAX + 1];
    size_t ncand = candidates(st, route_name(req, name, sizeof(name)), cand, 16);
    size_t blen = 0;
    const char *body = http_request_body(req, &blen);
    struct strbuf url;
    strbuf_init(&url);
    if (st->cfg->public_url && st->cfg->public_url[0]) {
        size_t n = strlen(st->cfg->public_url);
        while (n && st->cfg->public_url[n - 1] == '/') n--;
        strbuf_add(&url, st->cfg->public_url, n);
        strbuf_adds(&url, http_request_path(req));
        if (http_request_query(req)[0]) strbuf_addf(&url, "?%s", http_request_query(req));
    }
    struct fb_ctx *c = xcalloc(1, sizeof(*c));
    c->req = req;
    c->st = st;
    struct herald_feedback_request fr = {
        .method = http_request_method(req),
        .path = http_request_path(req),
        .query = http_request_query(req),
        .url = url.len ? url.buf : NULL,
        .header = req_header,
        .hctx = req,
        .body = body,
        .body_len = blen,
        .now = (int64_t)time(NULL),
        .emit = on_emit,
        .ectx = c,
    };
    char err[160] = "";
    status = HERALD_FEEDBACK_FORBIDDEN;
    /* Several providers of one plugin under its old route: the first
     * whose key verifies the request reads it. */
    for (size_t i = 0; i < ncand && status == HERALD_FEEDBACK_FORBIDDEN; i++) {
        ctx_reset(c);
        err[0] = '\0';
        status = cand[i]->feedback(cand[i]->instance, &fr, &c->reply, err, sizeof(err));
        c->provider = cand[i]->name;
        c->label = cand[i]->feedback_route ? cand[i]->feedback_route : cand[i]->api->name;
    }
    strbuf_free(&url);
    if (status != HERALD_FEEDBACK_OK) {
        int code = status == HERALD_FEEDBACK_UNSIGNED ? 401 : status == HERALD_FEEDBACK_INVALID ? 400 : 403;
        if (code != 400) refused(c->provider ? c->provider : "webhooks", err[0] ? err : "refused");
        http_respond_error(req, code, err[0] ? err : "refused");
        ctx_free(c);
        return;
    }
    if (!st->people) {
        http_respond_error(req, 503, "not ready");
        ctx_free(c);
        return;
    }
    /* One reference for this loop, so that answers arriving meanwhile
     * cannot finish early. The events are not added to meanwhile. */
    c->pending = 1;
    for (size_t i = 0; i < c->n && !c->failed; i++) {
        struct fb_event *e = &c->ev[i];
        c->pending++;
        if (e->kind >= HERALD_FEEDBACK_KEYWORD_STOP) apply_keyword(e);
        else apply_status(e);
    }
    if (--c->pending == 0) fb_done(c);
}

int webhooks_register(struct http_server *srv, struct api_state *st)
{
    int rc = http_route(srv, "POST", "/v1/webhooks/{provider}", feedback_post, st);
    /* SendGrid batches events into posts of up to 768 KB: take them whole. */
    if (rc == 0) rc = http_route_body_limit(srv, "POST", "/v1/webhooks/{provider}", WEBHOOKS_MAX_BODY);
    if (rc == 0) rc = http_route_precheck(srv, "POST", "/v1/webhooks/{provider}", feedback_precheck);
    return rc;
}
