/*
 * events.c - campaign events POSTed to [events] url (events.h).
 *
 * Owns: delivering one event at a time: take it (store_events_take: our
 * own pending first, then others' left idle longer than claim_idle, then
 * new ones), POST it on the worker pool, acknowledge it after a 2xx, or
 * retry it after a backoff. Before each retry it is claimed again
 * (store_events_claim): its idle time restarts, so a live daemon retrying
 * a receiver that is down keeps it, and one whose entry another daemon
 * took over drops it. The Redis side is store_events.c.
 * Never: acknowledges an event not answered 2xx; logs a body, a URL's
 * query or the secret; speaks Redis itself.
 * Invariant: at most one command or POST in flight (ev->busy); the timer
 * is the only thing that starts one.
 */
#include "events.h"

#include <curl/curl.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "digest.h"
#include "log.h"
#include "metrics.h"
#include "store_events.h"

#define EVENTS_IDLE_MS 1000       /* nothing to read: look again after this */
#define EVENTS_BACKOFF_MIN_MS 1000
#define EVENTS_BACKOFF_MAX_MS 60000
#define EVENTS_TIMEOUT_MS 10000   /* one POST, connection included */

struct post;

struct events {
    uv_loop_t *loop;
    struct store_cmds *sc;
    const struct config *cfg;
    char consumer[HERALD_ID_MAX + 1];
    uv_timer_t timer;
    bool busy, closing;
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

static void on_acked(bool ok, bool ours, void *arg);

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
        if (store_events_ack(ev->sc, ev->cfg->prefix, ev->id, on_acked, ev) < 0) {
            drop_current(ev); /* still pending: read again as our own */
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

static void on_acked(bool ok, bool ours, void *arg)
{
    struct events *ev = arg;
    (void)ok, (void)ours;
    ev->busy = false;
    drop_current(ev); /* acked, or not: then it is read again as our own pending entry */
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

/* ---- taking the next event ------------------------------------------------- */

static void on_claim(bool ok, bool ours, void *arg)
{
    struct events *ev = arg;
    if (ev->closing) {
        ev->busy = false;
    } else if (!ok) { /* Redis trouble: try again later, the entry stays pending */
        ev->busy = false;
        arm(ev, EVENTS_IDLE_MS);
    } else if (!ours) {
        log_info("events", "event no longer ours (acknowledged, or taken over by another consumer) id=%s", ev->id);
        drop_current(ev);
        ev->busy = false;
        arm(ev, 0);
    } else {
        post_current(ev);
    }
}

static void on_take(bool ok, enum store_error err, struct store_event *se, void *arg)
{
    struct events *ev = arg;
    (void)err;
    if (ok) metrics_events_backlog(se->backlog);
    if (ev->closing || !ok || se->how == STORE_EVENT_NONE) {
        free(se->json);
        ev->busy = false;
        arm(ev, EVENTS_IDLE_MS);
        return;
    }
    if (se->how == STORE_EVENT_TAKEN) log_info("events", "took over an event left by another consumer id=%s", se->id);
    herald_copy(ev->id, sizeof(ev->id), se->id);
    ev->body = se->json;
    ev->len = se->len;
    ev->attempts = 0;
    post_current(ev);
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
    if (ev->body) {
        /* Another attempt: still ours? (store_events_claim) */
        rc = store_events_claim(ev->sc, ev->cfg->prefix, ev->consumer, ev->id, on_claim, ev);
    } else {
        uint64_t now = uv_now(ev->loop);
        bool claim = now - ev->last_claim_ms >= (uint64_t)ev->cfg->claim_idle_ms / 2;
        if (claim) ev->last_claim_ms = now;
        rc = store_events_take(ev->sc, ev->cfg->prefix, ev->consumer, ev->cfg->claim_idle_ms, claim, on_take, ev);
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
    free(ev);
}
