/*
 * api_campaigns.c - the campaign routes of the /v1 API that read or add
 * runs: POST /v1/campaigns (enqueue), GET /v1/campaigns (the index, paged),
 * GET /v1/campaigns/{id} (the latest run and every run) and
 * GET /v1/campaigns/{id}/outcomes (paged).
 *
 * Owns the HTTP side only: token, body and query checks, the answers. The
 * job is validated by job_parse (the daemon's own check of a stream
 * entry), then checked and registered as a run and added to the jobs
 * stream by one script (store_campaign.h): the daemon's path from the
 * stream on is unchanged. Never: a write when any check failed, a job
 * body, an address or an Idempotency-Key in a log line. Every Redis call
 * is STORE_CMD_ONCE; trouble is api_respond_store_error's 503.
 */
#include "api_campaigns.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "digest.h"
#include "job.h"
#include "log.h"
#include "pagerender.h"
#include "store.h"
#include "store_campaign.h"

/* The longest Idempotency-Key accepted (printable ASCII). */
#define API_IDEMPOTENCY_KEY_MAX 255

struct campaign_call {
    struct http_request *req;
    struct api_state *st;
    char id[HERALD_ID_MAX + 1];
    char filter[16];
    char cursor[24];
    long limit;
    struct store_node_counts counts; /* a cluster: the latest run's per-node counts */
};

static struct campaign_call *call_new(struct http_request *req, const char *id)
{
    struct campaign_call *c = xcalloc(1, sizeof(*c));
    c->req = req;
    if (id) herald_copy(c->id, sizeof(c->id), id);
    return c;
}

/* Sends a; when it cannot go out (the connection is down), answers 503. */
static void send_or_503(struct api_state *st, struct http_request *req, struct campaign_call *c, struct store_args *a,
                        const char *script, store_cmd_cb cb)
{
    if (!st->cmds || store_cmds_send(st->cmds, STORE_CMD_ONCE, cb, c, NULL, a, script) < 0) {
        free(c);
        api_respond_store_error(req, STORE_E_CONNECTION);
    }
    store_args_free(a);
}

/* A reply that is no answer: 503 with its class. True when answered. */
static bool store_failed(struct http_request *req, const redisReply *r, enum store_error err)
{
    if (!r) {
        api_respond_store_error(req, err);
        return true;
    }
    if (r->type == REDIS_REPLY_ERROR) {
        api_respond_store_error(req, store_error_classify(r->str));
        return true;
    }
    return false;
}

/* ---- the query string ----------------------------------------------------- */

struct page_query {
    struct pagerender_form form;
    const char *cursor, *outcome;
    long limit;
};

/* Parses ?cursor=&limit=[&outcome=] (names allowed lists them); answers
 * 400 and returns false on anything else. */
static bool page_query(struct http_request *req, const char *const *allowed, struct page_query *q)
{
    char err[160], msg[256];
    memset(q, 0, sizeof(*q));
    q->limit = STORE_PAGE_DEFAULT;
    const char *qs = http_request_query(req);
    if (pagerender_form_parse(NULL, qs, strlen(qs), &q->form, err, sizeof(err)) < 0) {
        snprintf(msg, sizeof(msg), "query: %s", err);
        http_respond_error(req, 400, msg);
        return false;
    }
    for (size_t i = 0; i < q->form.n; i++) {
        const char *name = q->form.fields[i].name;
        size_t k = 0;
        while (allowed[k] && strcmp(allowed[k], name) != 0) k++;
        if (!allowed[k]) {
            http_respond_error(req, 400, allowed[2] ? "query: unknown parameter (expected cursor, limit, outcome)"
                                                    : "query: unknown parameter (expected cursor, limit)");
            return false;
        }
        for (size_t j = 0; j < i; j++)
            if (strcmp(q->form.fields[j].name, name) == 0) {
                http_respond_error(req, 400, "query: a parameter is given twice");
                return false;
            }
    }
    const char *lim = pagerender_form_get(&q->form, "limit");
    if (lim) {
        char *end;
        long v = strtol(lim, &end, 10);
        if (!*lim || *end || v < 1 || v > STORE_PAGE_MAX || lim[0] == '+' || lim[0] == ' ') {
            snprintf(msg, sizeof(msg), "limit: must be a whole number from 1 to %d", STORE_PAGE_MAX);
            http_respond_error(req, 400, msg);
            return false;
        }
        q->limit = v;
    }
    q->cursor = pagerender_form_get(&q->form, "cursor");
    q->outcome = pagerender_form_get(&q->form, "outcome");
    return true;
}

/* ---- POST /v1/campaigns ------------------------------------------------------ */

static void on_enqueued(redisReply *r, enum store_error err, const char *text, void *priv)
{
    struct campaign_call *c = priv;
    struct http_request *req = c->req;
    (void)text;
    struct store_enqueue_result res;
    if (store_failed(req, r, err)) {
    } else if (store_enqueue_result_of(r, &res) < 0) {
        api_respond_store_error(req, STORE_E_REPLY);
    } else if (res.status == STORE_ENQ_OK || res.status == STORE_ENQ_REPLAY) {
        char loc[HERALD_ID_MAX + 32];
        snprintf(loc, sizeof(loc), "/v1/campaigns/%s", c->id);
        http_response_header(req, "Location", loc);
        if (res.status == STORE_ENQ_OK)
            log_info("api", "campaign enqueued by the API campaign=%s run=%lld entry=%s", c->id, res.run, res.entry);
        http_respond_json(req, 202, json_pack("{s:s, s:I, s:s}", "id", c->id, "run", (json_int_t)res.run, "entry",
                                              res.entry));
    } else {
        char msg[320];
        store_enqueue_refusal(msg, sizeof(msg), c->id, &res);
        http_respond_error(req, 409, msg);
    }
    free(c);
}

/* The Idempotency-Key header: NULL when absent; false after answering 400. */
static bool idempotency_key(struct http_request *req, const char **key)
{
    *key = http_request_header(req, "Idempotency-Key");
    if (!*key) return true;
    size_t n = strlen(*key);
    bool ok = n >= 1 && n <= API_IDEMPOTENCY_KEY_MAX;
    for (size_t i = 0; ok && i < n; i++) ok = (*key)[i] > 0x20 && (*key)[i] < 0x7f;
    if (!ok) {
        char msg[128];
        snprintf(msg, sizeof(msg), "Idempotency-Key: must be 1..%d printable ASCII characters without spaces",
                 API_IDEMPOTENCY_KEY_MAX);
        http_respond_error(req, 400, msg);
    }
    return ok;
}

static void sha256_hex(const char *s, size_t len, char hex[2 * DIGEST_SHA256_LEN + 1])
{
    unsigned char md[DIGEST_SHA256_LEN];
    digest_sha256(s, len, md);
    digest_hex(hex, md, sizeof(md));
}

static void post_campaigns(struct http_request *req, void *arg)
{
    struct api_state *st = arg;
    if (!api_v1_authorised(req, st->cfg)) return;
    const char *idem;
    if (!idempotency_key(req, &idem)) return;
    size_t len;
    const char *body = http_request_body(req, &len);
    if (len == 0) {
        http_respond_error(req, 400, "body: missing (expected the campaign job, docs/schemas/job.schema.json)");
        return;
    }
    char err[512];
    struct job job;
    if (job_parse(body, len, &job, err, sizeof(err)) < 0) {
        http_respond_error(req, 400, err);
        return;
    }
    char key_sha[2 * DIGEST_SHA256_LEN + 1], body_sha[2 * DIGEST_SHA256_LEN + 1];
    if (idem) {
        sha256_hex(idem, strlen(idem), key_sha);
        sha256_hex(body, len, body_sha);
    }
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct store_enqueue e = {.campaign = job.id, .text = body, .len = len, .rerun = job.rerun,
                              .recipients_key = job.recipients_key, .ids = job.recipients,
                              .nids = job.nrecipients, .idem_key_sha = idem ? key_sha : NULL,
                              .idem_digest = idem ? body_sha : NULL,
                              .now = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000};
    struct campaign_call *c = call_new(req, job.id);
    struct store_args a;
    store_enqueue_args(&a, st->cfg->prefix, &e);
    job_free(&job);
    send_or_503(st, req, c, &a, store_lua_campaign_enqueue, on_enqueued);
}

/* ---- GET /v1/campaigns ---------------------------------------------------------- */

static void on_list(redisReply *r, enum store_error err, const char *text, void *priv)
{
    struct campaign_call *c = priv;
    (void)text;
    json_t *items;
    char next[HERALD_ID_MAX + 1];
    int rc;
    if (store_failed(c->req, r, err)) {
    } else if ((rc = store_campaign_list_result(r, &items, next, sizeof(next))) < 0) {
        api_respond_store_error(c->req, STORE_E_REPLY);
    } else if (rc == 0) {
        http_respond_error(c->req, 400, "cursor: not a cursor of this list (give the next_cursor of a page)");
    } else {
        http_respond_json(c->req, 200, json_pack("{s:o, s:o}", "items", items, "next_cursor",
                                                 next[0] ? json_string(next) : json_null()));
    }
    free(c);
}

static void get_campaigns(struct http_request *req, void *arg)
{
    struct api_state *st = arg;
    if (!api_v1_authorised(req, st->cfg)) return;
    static const char *const allowed[] = {"cursor", "limit", NULL};
    struct page_query q;
    if (!page_query(req, allowed, &q)) {
        pagerender_form_free(&q.form);
        return;
    }
    if (q.cursor && !herald_id_valid(q.cursor)) {
        pagerender_form_free(&q.form);
        http_respond_error(req, 400, "cursor: not a cursor of this list (give the next_cursor of a page)");
        return;
    }
    struct store_args a;
    store_campaign_list_args(&a, st->cfg->prefix, q.cursor ? q.cursor : "", q.limit);
    pagerender_form_free(&q.form);
    send_or_503(st, req, call_new(req, NULL), &a, store_lua_campaign_list, on_list);
}

/* ---- GET /v1/campaigns/{id} --------------------------------------------------- */

static void on_campaign(redisReply *r, enum store_error err, const char *text, void *priv)
{
    struct campaign_call *c = priv;
    (void)text;
    json_t *out;
    if (store_failed(c->req, r, err)) {
    } else if (store_campaign_get_result_counts(c->id, r, &c->counts, &out) < 0) {
        api_respond_store_error(c->req, STORE_E_REPLY);
    } else if (!out) {
        http_respond_error(c->req, 404, "campaign not found");
    } else {
        http_respond_json(c->req, 200, out);
    }
    for (size_t i = 0; i < c->counts.n; i++) free(c->counts.field[i]);
    free(c->counts.field);
    free(c->counts.value);
    free(c);
}

static void campaign_get_send(struct api_state *st, struct campaign_call *c)
{
    struct store_args a;
    store_campaign_get_args(&a, st->cfg->prefix, c->id);
    send_or_503(st, c->req, c, &a, store_lua_campaign_get, on_campaign);
}

/* A cluster: the run's counts on its nodes first, kept for on_campaign. */
static void on_counts(const struct store_node_counts *counts, enum store_error err, const char *text, void *priv)
{
    struct campaign_call *c = priv;
    (void)text;
    if (!counts) {
        api_respond_store_error(c->req, err);
        free(c);
        return;
    }
    c->counts.n = counts->n;
    c->counts.field = xcalloc(counts->n + 1, sizeof(char *));
    c->counts.value = xcalloc(counts->n + 1, sizeof(long long));
    for (size_t i = 0; i < counts->n; i++) {
        c->counts.field[i] = xstrdup(counts->field[i]);
        c->counts.value[i] = counts->value[i];
    }
    campaign_get_send(c->st, c);
}

static void get_campaign(struct http_request *req, void *arg)
{
    struct api_state *st = arg;
    if (!api_v1_authorised(req, st->cfg)) return;
    const char *id = api_v1_id_param(req);
    if (!id) return;
    struct campaign_call *c = call_new(req, id);
    c->st = st;
    if (st->cmds && store_cmds_node_tag(st->cmds, 0)) {
        if (store_node_counts_read_runs(st->cmds, st->cfg->prefix, id, STORE_CMD_ONCE, on_counts, c) < 0) {
            free(c);
            api_respond_store_error(req, STORE_E_CONNECTION);
        }
        return;
    }
    campaign_get_send(st, c);
}

/* ---- GET /v1/campaigns/{id}/outcomes ------------------------------------------ */

static void respond_outcomes(struct campaign_call *c, json_t *items, const char *next)
{
    http_respond_json(c->req, 200, json_pack("{s:s, s:o, s:o}", "id", c->id, "items", items, "next_cursor",
                                             next[0] ? json_string(next) : json_null()));
}

/* On a cluster: the page's records, one HGET per person on its slot. */
struct outcomes_gather {
    struct campaign_call *c;
    size_t n, waiting;
    char **ids, **recs;
    size_t *lens;
    enum store_error err; /* STORE_E_COUNT: none */
    char next[32];
};

static void gather_done(struct outcomes_gather *g)
{
    if (g->err != STORE_E_COUNT) {
        api_respond_store_error(g->c->req, g->err);
    } else {
        json_t *items = json_array();
        for (size_t i = 0; i < g->n; i++) {
            json_t *o = store_campaign_outcome_item(g->ids[i], g->recs[i] ? g->recs[i] : "", g->lens[i],
                                                    g->c->filter[0] ? g->c->filter : NULL);
            if (o) json_array_append_new(items, o);
        }
        respond_outcomes(g->c, items, g->next);
    }
    for (size_t i = 0; i < g->n; i++) {
        free(g->ids[i]);
        free(g->recs[i]);
    }
    free(g->ids);
    free(g->recs);
    free(g->lens);
    free(g->c);
    free(g);
}

struct gather_slot {
    struct outcomes_gather *g;
    size_t i;
};

static void on_record(redisReply *r, enum store_error err, const char *text, void *priv)
{
    struct gather_slot *s = priv;
    struct outcomes_gather *g = s->g;
    (void)text;
    if (!r) g->err = err;
    else if (r->type == REDIS_REPLY_STRING) {
        g->recs[s->i] = xstrndup(r->str, r->len);
        g->lens[s->i] = r->len;
    }
    free(s);
    if (--g->waiting == 0) gather_done(g);
}

static void gather_records(struct campaign_call *c, const redisReply *l, const char *next)
{
    struct outcomes_gather *g = xcalloc(1, sizeof(*g));
    g->c = c;
    g->err = STORE_E_COUNT;
    herald_copy(g->next, sizeof(g->next), next);
    g->n = l->elements / 2;
    g->ids = xcalloc(g->n + 1, sizeof(*g->ids));
    g->recs = xcalloc(g->n + 1, sizeof(*g->recs));
    g->lens = xcalloc(g->n + 1, sizeof(*g->lens));
    g->waiting = 1; /* this function's own, dropped at its end */
    struct strbuf kp, f;
    strbuf_init(&kp);
    strbuf_init(&f);
    store_record_field(&f, c->id);
    for (size_t i = 0; i < g->n; i++) {
        const redisReply *id = l->element[2 * i];
        bool str = id->type == REDIS_REPLY_STRING;
        g->ids[i] = xstrndup(str ? id->str : "", str ? id->len : 0);
        if (!herald_id_valid(g->ids[i])) continue;
        store_key_person(&kp, c->st->cfg->prefix, g->ids[i]);
        struct gather_slot *s = xmalloc(sizeof(*s));
        s->g = g;
        s->i = i;
        if (STORE_SEND(c->st->cmds, STORE_CMD_ONCE, on_record, s, "HGET", kp.buf, f.buf) < 0) {
            free(s);
            g->err = STORE_E_CONNECTION;
            break;
        }
        g->waiting++;
    }
    strbuf_free(&kp);
    strbuf_free(&f);
    if (--g->waiting == 0) gather_done(g);
}

static void on_outcomes(redisReply *r, enum store_error err, const char *text, void *priv)
{
    struct campaign_call *c = priv;
    (void)text;
    json_t *items;
    char next[32], source[512];
    int rc;
    if (store_failed(c->req, r, err)) {
        free(c);
        return;
    }
    if (store_campaign_outcomes_source(r, source, sizeof(source))) {
        /* On a cluster: the ids are in the recipients_key, on its own slot. */
        struct store_args a;
        store_campaign_outcomes_source_args(&a, source, c->cursor, c->limit);
        send_or_503(c->st, c->req, c, &a, store_lua_campaign_outcomes, on_outcomes);
        return;
    }
    if (store_keys_clustered() && r->type == REDIS_REPLY_ARRAY && r->elements == 3 &&
        r->element[1]->type == REDIS_REPLY_STRING && r->element[2]->type == REDIS_REPLY_ARRAY) {
        gather_records(c, r->element[2], r->element[1]->str); /* the records, on the people's slots */
        return;
    }
    if ((rc = store_campaign_outcomes_result(r, c->filter[0] ? c->filter : NULL, &items, next, sizeof(next))) < 0)
        api_respond_store_error(c->req, STORE_E_REPLY);
    else if (rc == 0)
        http_respond_error(c->req, 404, "campaign not found");
    else
        respond_outcomes(c, items, next);
    free(c);
}

static void get_outcomes(struct http_request *req, void *arg)
{
    struct api_state *st = arg;
    if (!api_v1_authorised(req, st->cfg)) return;
    const char *id = api_v1_id_param(req);
    if (!id) return;
    static const char *const allowed[] = {"cursor", "limit", "outcome", NULL};
    struct page_query q;
    if (!page_query(req, allowed, &q)) {
        pagerender_form_free(&q.form);
        return;
    }
    const char *cursor = q.cursor ? q.cursor : "0";
    size_t cl = strlen(cursor);
    bool ok = cl >= 1 && cl <= 20 && strspn(cursor, "0123456789") == cl;
    const char *filter = q.outcome ? store_outcome_filter_valid(q.outcome) : NULL;
    if (!ok) {
        http_respond_error(req, 400, "cursor: not a cursor of this list (give the next_cursor of a page)");
    } else if (q.outcome && !filter) {
        http_respond_error(req, 400,
                           "outcome: unknown (expected sent, suppressed, failed, unknown, deferred, pending or none)");
    } else {
        struct campaign_call *c = call_new(req, id);
        if (filter) herald_copy(c->filter, sizeof(c->filter), filter);
        c->st = st;
        herald_copy(c->cursor, sizeof(c->cursor), cursor);
        c->limit = q.limit;
        struct store_args a;
        store_campaign_outcomes_args(&a, st->cfg->prefix, id, cursor, q.limit);
        send_or_503(st, req, c, &a, store_lua_campaign_outcomes, on_outcomes);
    }
    pagerender_form_free(&q.form);
}

int api_campaigns_register(struct http_server *srv, struct api_state *st)
{
    int rc = http_route(srv, "POST", "/v1/campaigns", post_campaigns, st);
    if (rc == 0) rc = http_route_body_limit(srv, "POST", "/v1/campaigns", HERALD_JOB_MAX_BYTES);
    if (rc == 0) rc = http_route(srv, "GET", "/v1/campaigns", get_campaigns, st);
    if (rc == 0) rc = http_route(srv, "GET", "/v1/campaigns/{id}", get_campaign, st);
    if (rc == 0) rc = http_route(srv, "GET", "/v1/campaigns/{id}/outcomes", get_outcomes, st);
    return rc;
}
