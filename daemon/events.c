/*
 * events.c - campaign events POSTed to [events] url (events.h).
 *
 * Owns: the consumer group "herald-events" on herald:events (created at
 * "$": events written before it existed are not POSTed), one event at a
 * time: read it (our own pending first, then others' left idle longer
 * than claim_idle, then new ones), POST it on the worker pool, XACK it
 * after a 2xx, or retry it after a backoff. Before each attempt the entry
 * is claimed again (XCLAIM, min-idle 0): its idle time restarts, so a
 * live daemon retrying a receiver that is down keeps it, and one whose
 * entry another daemon took over drops it.
 * Never: acknowledges an event not answered 2xx; logs a body, a URL's
 * query or the secret; touches a key other than herald:events.
 * Invariant: at most one command or POST in flight (ev->busy); the timer
 * is the only thing that starts one.
 */
#include "events.h"

#include <curl/curl.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "digest.h"
#include "log.h"
#include "metrics.h"
#include "store.h"

#define EVENTS_IDLE_MS 1000       /* nothing to read: look again after this */
#define EVENTS_BACKOFF_MIN_MS 1000
#define EVENTS_BACKOFF_MAX_MS 60000
#define EVENTS_TIMEOUT_MS 10000   /* one POST, connection included */

enum read_mode { READ_OWN, READ_CLAIM, READ_NEW };

struct post;

struct events {
    uv_loop_t *loop;
    struct store_cmds *sc;
    const struct config *cfg;
    char consumer[HERALD_ID_MAX + 1];
    struct strbuf key;
    uv_timer_t timer;
    bool group_ready, own_done, busy, closing;
    enum read_mode mode;
    uint64_t last_claim_ms;
    /* The event being delivered: its id and body, the attempts so far. */
    char id[64];
    char *body;
    size_t len;
    unsigned attempts;
    struct post *post; /* in flight on the worker pool */
    struct log_complaint down;
};

static void on_timer(uv_timer_t *t);

static void arm(struct events *ev, uint64_t ms)
{
    if (!ev->closing) uv_timer_start(&ev->timer, on_timer, ms, 0);
}

static void drop_current(struct events *ev)
{
    free(ev->body);
    ev->body = NULL;
    ev->id[0] = '\0';
    ev->attempts = 0;
}

/* ---- the POST, on the worker pool ---------------------------------------- */

struct post {
    uv_work_t work;
    struct events *ev;
    char *url, *body;
    size_t len;
    char sig[112], id[96];
    volatile int abort; /* set by events_close: the transfer stops at its next progress call */
    long status;        /* HTTP status, 0 when none */
    char error[CURL_ERROR_SIZE];
};

static size_t discard_body(char *p, size_t size, size_t n, void *arg)
{
    (void)p, (void)arg;
    return size * n;
}

static int progress(void *arg, curl_off_t a, curl_off_t b, curl_off_t c, curl_off_t d)
{
    (void)a, (void)b, (void)c, (void)d;
    return ((struct post *)arg)->abort ? 1 : 0;
}

static void do_post(uv_work_t *w)
{
    struct post *p = w->data;
    CURL *h = curl_easy_init();
    if (!h) {
        herald_copy(p->error, sizeof(p->error), "curl_easy_init failed");
        return;
    }
    struct curl_slist *hdr = NULL;
    hdr = curl_slist_append(hdr, "Content-Type: application/json");
    hdr = curl_slist_append(hdr, p->sig);
    hdr = curl_slist_append(hdr, p->id);
    hdr = curl_slist_append(hdr, "User-Agent: herald/" HERALD_VERSION);
    hdr = curl_slist_append(hdr, "Expect:");
    curl_easy_setopt(h, CURLOPT_URL, p->url);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdr);
    curl_easy_setopt(h, CURLOPT_POSTFIELDS, p->body);
    curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)p->len);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, (long)EVENTS_TIMEOUT_MS);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, discard_body);
    curl_easy_setopt(h, CURLOPT_NOPROGRESS, 0L);
    curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, progress);
    curl_easy_setopt(h, CURLOPT_XFERINFODATA, p);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, p->error);
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
    if (curl_easy_perform(h) == CURLE_OK) curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &p->status);
    curl_slist_free_all(hdr);
    curl_easy_cleanup(h);
}

static void on_acked(redisReply *r, enum store_error err, const char *text, void *arg);

static void after_post(uv_work_t *w, int status)
{
    struct post *p = w->data;
    struct events *ev = p->ev;
    ev->post = NULL;
    bool ok = status == 0 && p->status >= 200 && p->status < 300;
    if (ev->closing) {
        ev->busy = false;
    } else if (ok) {
        log_recovered(&ev->down, "events", "the events receiver answers again");
        metrics_event_delivered();
        log_debug("events", "event delivered id=%s attempts=%u", ev->id, ev->attempts);
        /* Acknowledged only now; a lost XACK sends it again (at least once). */
        if (STORE_SEND(ev->sc, STORE_CMD_ONCE, on_acked, ev, "XACK", ev->key.buf, EVENTS_GROUP, ev->id) < 0) {
            ev->busy = false;
            arm(ev, EVENTS_IDLE_MS);
        }
    } else {
        metrics_event_failed();
        uint64_t wait = EVENTS_BACKOFF_MIN_MS;
        for (unsigned i = 1; i < ev->attempts && wait < EVENTS_BACKOFF_MAX_MS; i++) wait *= 2;
        if (wait > EVENTS_BACKOFF_MAX_MS) wait = EVENTS_BACKOFF_MAX_MS;
        if (p->status)
            log_complain(&ev->down, "events", "the events receiver answered %ld; retrying with backoff", p->status);
        else
            log_complain(&ev->down, "events", "the events receiver did not answer (%.120s); retrying with backoff",
                         p->error[0] ? p->error : "no answer");
        ev->busy = false;
        arm(ev, wait);
    }
    free(p->url);
    free(p->body);
    free(p);
}

static void on_acked(redisReply *r, enum store_error err, const char *text, void *arg)
{
    struct events *ev = arg;
    (void)r, (void)err, (void)text;
    ev->busy = false;
    drop_current(ev); /* acked, or not: then it is read again as our own pending entry */
    if (!r) ev->own_done = false;
    arm(ev, 0);
}

static void post_current(struct events *ev)
{
    const char *url = ev->cfg->events_url, *secret = ev->cfg->events_secret;
    if (!url || !*url || !secret || !*secret) {
        ev->busy = false;
        arm(ev, EVENTS_IDLE_MS);
        return;
    }
    struct post *p = xcalloc(1, sizeof(*p));
    p->ev = ev;
    p->work.data = p;
    p->url = xstrdup(url);
    p->body = xstrndup(ev->body, ev->len);
    p->len = ev->len;
    unsigned char mac[DIGEST_SHA256_LEN];
    char hex[2 * DIGEST_SHA256_LEN + 1];
    digest_hmac_sha256(secret, ev->body, ev->len, mac);
    digest_hex(hex, mac, sizeof(mac));
    snprintf(p->sig, sizeof(p->sig), "X-Herald-Signature: sha256=%s", hex);
    snprintf(p->id, sizeof(p->id), "X-Herald-Event-Id: %s", ev->id);
    ev->attempts++;
    ev->post = p;
    if (uv_queue_work(ev->loop, &p->work, do_post, after_post) != 0) {
        ev->post = NULL;
        free(p->url);
        free(p->body);
        free(p);
        ev->busy = false;
        arm(ev, EVENTS_IDLE_MS);
    }
}

/* ---- reading the stream ---------------------------------------------------- */

/* The event's JSON from a stream entry [id, [field, value, ...]]: every
 * field as it is, the counts of `finished` as numbers, and "id". */
static char *event_json(const redisReply *entry, size_t *len)
{
    const redisReply *f = entry->element[1];
    json_t *o = json_object();
    json_object_set_new(o, "id", json_string(entry->element[0]->str));
    static const char *const counts[] = {"total", "sent", "suppressed", "failed", "unknown"};
    for (size_t i = 0; f->type == REDIS_REPLY_ARRAY && i + 1 < f->elements; i += 2) {
        const redisReply *k = f->element[i], *v = f->element[i + 1];
        if (k->type != REDIS_REPLY_STRING || v->type != REDIS_REPLY_STRING || strcmp(k->str, "id") == 0) continue;
        bool number = false;
        for (size_t c = 0; c < sizeof(counts) / sizeof(counts[0]); c++)
            if (strcmp(k->str, counts[c]) == 0) number = true;
        char *end;
        long long n = strtoll(v->str, &end, 10);
        json_object_set_new(o, k->str, number && *v->str && !*end ? json_integer(n) : json_stringn(v->str, v->len));
    }
    char *s = json_dumps(o, JSON_COMPACT | JSON_SORT_KEYS);
    json_decref(o);
    *len = strlen(s);
    return s;
}

static bool entry_ok(const redisReply *e)
{
    return e && e->type == REDIS_REPLY_ARRAY && e->elements == 2 && e->element[0]->type == REDIS_REPLY_STRING &&
           e->element[0]->len < 64 && e->element[1]->type == REDIS_REPLY_ARRAY;
}

static void on_claimed(redisReply *r, enum store_error err, const char *text, void *arg)
{
    struct events *ev = arg;
    (void)err, (void)text;
    if (ev->closing) {
        ev->busy = false;
        return;
    }
    if (!r) { /* Redis trouble: try again later, the entry stays pending */
        ev->busy = false;
        arm(ev, EVENTS_IDLE_MS);
        return;
    }
    if (r->type != REDIS_REPLY_ARRAY || r->elements == 0) {
        /* No longer ours (acked, or another daemon took it over). */
        drop_current(ev);
        ev->busy = false;
        arm(ev, 0);
        return;
    }
    post_current(ev);
}

/* XPENDING of the current entry for our consumer: still ours? Then its
 * idle time restarts (XCLAIM) and it is sent again. */
static void on_pending(redisReply *r, enum store_error err, const char *text, void *arg)
{
    struct events *ev = arg;
    (void)err, (void)text;
    if (ev->closing) {
        ev->busy = false;
        return;
    }
    if (!r) {
        ev->busy = false;
        arm(ev, EVENTS_IDLE_MS);
        return;
    }
    if (r->type != REDIS_REPLY_ARRAY || r->elements == 0) {
        log_info("events", "event no longer ours (acknowledged, or taken over by another consumer) id=%s", ev->id);
        drop_current(ev);
        ev->busy = false;
        arm(ev, 0);
        return;
    }
    if (STORE_SEND(ev->sc, STORE_CMD_ONCE, on_claimed, ev, "XCLAIM", ev->key.buf, EVENTS_GROUP, ev->consumer, "0",
                   ev->id, "JUSTID") < 0) {
        ev->busy = false;
        arm(ev, EVENTS_IDLE_MS);
    }
}

/* The current event's next attempt: claimed again first (events.c header). */
static void attempt(struct events *ev)
{
    if (STORE_SEND(ev->sc, STORE_CMD_ONCE, on_pending, ev, "XPENDING", ev->key.buf, EVENTS_GROUP, ev->id, ev->id, "1",
                   ev->consumer) < 0) {
        ev->busy = false;
        arm(ev, EVENTS_IDLE_MS);
    }
}

static void take(struct events *ev, const redisReply *entry)
{
    herald_copy(ev->id, sizeof(ev->id), entry->element[0]->str);
    ev->body = event_json(entry, &ev->len);
    ev->attempts = 0;
    post_current(ev);
}

static void on_backlog(redisReply *r, enum store_error err, const char *text, void *arg)
{
    struct events *ev = arg;
    (void)err, (void)text;
    ev->busy = false;
    for (size_t i = 0; r && r->type == REDIS_REPLY_ARRAY && i < r->elements; i++) {
        const redisReply *g = r->element[i];
        long long pending = -1, lag = -1;
        bool ours = false;
        for (size_t j = 0; g->type == REDIS_REPLY_ARRAY && j + 1 < g->elements; j += 2) {
            const redisReply *k = g->element[j], *v = g->element[j + 1];
            if (k->type != REDIS_REPLY_STRING) continue;
            if (strcmp(k->str, "name") == 0) ours = v->type == REDIS_REPLY_STRING && strcmp(v->str, EVENTS_GROUP) == 0;
            else if (strcmp(k->str, "pending") == 0 && v->type == REDIS_REPLY_INTEGER) pending = v->integer;
            else if (strcmp(k->str, "lag") == 0 && v->type == REDIS_REPLY_INTEGER) lag = v->integer;
        }
        if (ours) metrics_events_backlog(pending >= 0 && lag >= 0 ? pending + lag : -1);
    }
    arm(ev, EVENTS_IDLE_MS);
}

static void on_read(redisReply *r, enum store_error err, const char *text, void *arg)
{
    struct events *ev = arg;
    (void)text;
    if (ev->closing) {
        ev->busy = false;
        return;
    }
    if (!r) {
        ev->busy = false;
        if (err == STORE_E_NOGROUP) ev->group_ready = false; /* the stream was deleted */
        arm(ev, EVENTS_IDLE_MS);
        return;
    }
    const redisReply *entries = NULL;
    if (ev->mode == READ_CLAIM) { /* XAUTOCLAIM: [next, [entries], [deleted]] */
        if (r->type == REDIS_REPLY_ARRAY && r->elements >= 2) entries = r->element[1];
    } else if (r->type == REDIS_REPLY_ARRAY && r->elements == 1 && r->element[0]->type == REDIS_REPLY_ARRAY &&
               r->element[0]->elements == 2) { /* [[stream, [entries]]] */
        entries = r->element[0]->element[1];
    }
    const redisReply *e = entries && entries->type == REDIS_REPLY_ARRAY && entries->elements ? entries->element[0]
                                                                                              : NULL;
    if (entry_ok(e)) {
        if (ev->mode == READ_CLAIM) log_info("events", "took over an event left by another consumer id=%s",
                                             e->element[0]->str);
        take(ev, e);
        return;
    }
    if (e && e->type == REDIS_REPLY_ARRAY && e->elements == 2 && e->element[0]->type == REDIS_REPLY_STRING) {
        /* Our pending entry was trimmed from the stream: nothing to send, ack it. */
        if (STORE_SEND(ev->sc, STORE_CMD_ONCE, on_acked, ev, "XACK", ev->key.buf, EVENTS_GROUP, e->element[0]->str) <
            0) {
            ev->busy = false;
            arm(ev, EVENTS_IDLE_MS);
        }
        return;
    }
    if (ev->mode == READ_OWN || ev->mode == READ_CLAIM) {
        /* None of our own left, or none to take over: new ones next (the
         * claim was just made, so the timer's next choice is READ_NEW). */
        ev->own_done = true;
        ev->busy = false;
        arm(ev, 0);
        return;
    }
    /* Nothing to send: the backlog for /metrics, then wait. */
    if (STORE_SEND(ev->sc, STORE_CMD_ONCE, on_backlog, ev, "XINFO", "GROUPS", ev->key.buf) < 0) {
        ev->busy = false;
        arm(ev, EVENTS_IDLE_MS);
    }
}

static void on_group(redisReply *r, enum store_error err, const char *text, void *arg)
{
    struct events *ev = arg;
    ev->busy = false;
    /* OK, or BUSYGROUP: it exists. */
    if (r || (err == STORE_E_ERROR && text && strncmp(text, "BUSYGROUP", 9) == 0)) {
        ev->group_ready = true;
        arm(ev, 0);
    } else {
        arm(ev, EVENTS_IDLE_MS);
    }
}

static void on_timer(uv_timer_t *t)
{
    struct events *ev = t->data;
    if (ev->busy || ev->closing) return;
    if (!ev->cfg->events_url || !*ev->cfg->events_url) {
        metrics_events_backlog(-1);
        arm(ev, EVENTS_IDLE_MS);
        return;
    }
    ev->busy = true;
    int rc;
    if (!ev->group_ready) {
        rc = STORE_SEND(ev->sc, STORE_CMD_ONCE, on_group, ev, "XGROUP", "CREATE", ev->key.buf, EVENTS_GROUP, "$",
                        "MKSTREAM");
    } else if (ev->body) {
        attempt(ev);
        return;
    } else {
        uint64_t now = uv_now(ev->loop);
        ev->mode = !ev->own_done ? READ_OWN
                   : now - ev->last_claim_ms >= (uint64_t)ev->cfg->claim_idle_ms / 2 ? READ_CLAIM
                                                                                     : READ_NEW;
        if (ev->mode == READ_OWN) {
            rc = STORE_SEND(ev->sc, STORE_CMD_ONCE, on_read, ev, "XREADGROUP", "GROUP", EVENTS_GROUP, ev->consumer,
                            "COUNT", "1", "STREAMS", ev->key.buf, "0");
        } else if (ev->mode == READ_CLAIM) {
            ev->last_claim_ms = now;
            char idle[HERALD_LL_CHARS];
            herald_lltoa(idle, (long long)ev->cfg->claim_idle_ms);
            rc = STORE_SEND(ev->sc, STORE_CMD_ONCE, on_read, ev, "XAUTOCLAIM", ev->key.buf, EVENTS_GROUP, ev->consumer,
                            idle, "0-0", "COUNT", "1");
        } else {
            rc = STORE_SEND(ev->sc, STORE_CMD_ONCE, on_read, ev, "XREADGROUP", "GROUP", EVENTS_GROUP, ev->consumer,
                            "COUNT", "1", "STREAMS", ev->key.buf, ">");
        }
    }
    if (rc < 0) { /* the connection is down: later */
        ev->busy = false;
        arm(ev, EVENTS_IDLE_MS);
    }
}

/* ---- lifecycle -------------------------------------------------------------- */

struct events *events_new(uv_loop_t *loop, struct store_cmds *sc, const struct config *cfg, const char *consumer)
{
    struct events *ev = xcalloc(1, sizeof(*ev));
    ev->loop = loop;
    ev->sc = sc;
    ev->cfg = cfg;
    herald_copy(ev->consumer, sizeof(ev->consumer), consumer);
    strbuf_init(&ev->key);
    store_key_events(&ev->key, cfg->prefix);
    uv_timer_init(loop, &ev->timer);
    ev->timer.data = ev;
    arm(ev, 0);
    return ev;
}

void events_reload(struct events *ev, const struct config *cfg)
{
    ev->cfg = cfg;
}

void events_close(struct events *ev)
{
    if (!ev || ev->closing) return;
    ev->closing = true;
    if (ev->post) ev->post->abort = 1;
    uv_timer_stop(&ev->timer);
    uv_close((uv_handle_t *)&ev->timer, NULL);
}

void events_free(struct events *ev)
{
    if (!ev) return;
    drop_current(ev);
    strbuf_free(&ev->key);
    free(ev);
}
