/*
 * page.c - the I/O half of the link pages (pagerender.c renders them):
 * token checks, CSRF checks, and the calls into people.h.
 *
 * Every request first verifies its token (signature, expiry, kind) and,
 * for a POST, that the browser's Origin is not another site's; only then
 * is the person's data touched, and only through people.h. A POST applies
 * the preference changes in one people_patch_preferences call (atomic in
 * Redis) and withdraws consent only after that succeeded, so a refused
 * form changes nothing. Never logs an address, a token or a form value:
 * ids and counts only.
 */
#include "page.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "l10n.h"
#include "links.h"
#include "log.h"
#include "pagerender.h"
#include "people.h"
#include "tzdb.h"

#define CSRF_PREFERENCES "preferences"
#define CSRF_UNSUBSCRIBE_ALL "unsubscribe-all"
#define CSRF_ERASE "erase"

/* One request in flight: everything it needs after a Redis round trip is
 * copied here, so a SIGHUP that swaps the config meanwhile is harmless. */
struct page_req {
    struct http_request *req;
    struct people *pp;
    struct link_claims claims;
    char *token;
    char *secret;
    int channel; /* claims.channel as an index */
    struct pagerender_form form;
    bool form_valid;
    struct pagerender_changes changes;
    int next_ch;   /* the next channel to withdraw consent on, then to agree on */
    int withdrawn; /* consent records appended */
    int granted;
    bool granting; /* withdrawals done: the agreements now */
    bool moved;    /* the order buttons: the page again, nothing saved */
    int status;    /* of the page rendered after people_get */
    bool saved;
    struct pagerender_errors errors; /* of the form, shown on the page */
    /* The person's language: the catalogues in force when the request
     * came (a reference), its Accept-Language, and once the person's data
     * was read, their profile's locale and time zone. */
    struct l10n_set *l10n;
    const struct api_state *st; /* outlives the request; its cfg is read when a page is rendered */
    char *accept;
    char *default_tz;
    char locale[36];
};

static void page_req_free(struct page_req *pr)
{
    free(pr->token);
    free(pr->secret);
    free(pr->accept);
    free(pr->default_tz);
    l10n_set_unref(pr->l10n);
    pagerender_form_free(&pr->form);
    pagerender_changes_free(&pr->changes);
    free(pr);
}

/* Every page is HTML that nobody may frame, cache, or follow a referrer out of. */
static void respond_html(struct http_request *req, int status, struct strbuf *body, const struct pagerender_lang *L)
{
    if (L && L->cat) http_response_header(req, "Content-Language", l10n_catalog_locale(L->cat));
    http_response_header(req, "Content-Security-Policy",
                         "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'");
    http_response_header(req, "X-Frame-Options", "DENY");
    http_response_header(req, "Referrer-Policy", "no-referrer");
    http_response_header(req, "Cache-Control", "no-store");
    http_response_header(req, "X-Content-Type-Options", "nosniff");
    http_respond(req, status, "text/html; charset=utf-8", body->buf, body->len);
    strbuf_free(body);
}

/* The time zones the pages show times in: read once, kept for the
 * process (the zone files do not change under a running daemon). */
static struct tzdb *page_tzdb(void)
{
    static struct tzdb *db;
    if (!db) db = tzdb_new(NULL);
    return db;
}

/* Before the person's data is read: the browser's language. */
static struct pagerender_lang req_lang(const struct api_state *st, struct http_request *req)
{
    struct pagerender_lang L = {st->locales, l10n_choose(st->locales, NULL,
                                                         http_request_header(req, "Accept-Language")),
                                NULL, NULL, st->cfg};
    return L;
}

/* The person's language and zone: their profile's when doc has them (and
 * they are known), else what the request and the configuration say. */
static struct pagerender_lang pr_lang(struct page_req *pr, const json_t *doc)
{
    const json_t *p = json_object_get(doc, "profile");
    const char *loc = json_string_value(json_object_get(p, "locale"));
    if (loc) herald_copy(pr->locale, sizeof(pr->locale), loc);
    struct pagerender_lang L = {pr->l10n, l10n_choose(pr->l10n, pr->locale[0] ? pr->locale : NULL, pr->accept),
                                NULL, NULL, pr->st->cfg};
    const char *tzn = json_string_value(json_object_get(p, "tz"));
    const struct tz *tz = tzn && tzdb_name_valid(tzn) ? tzdb_get(page_tzdb(), tzn) : NULL;
    if (!tz && pr->default_tz) {
        tzn = pr->default_tz;
        tz = tzdb_get(page_tzdb(), tzn);
    }
    if (tz) {
        L.tz = tz;
        L.tz_name = tzn;
    }
    return L;
}

static void respond_message(struct http_request *req, const struct pagerender_lang *L, int status,
                            const char *title_key, const char *text_key, const char *channel, const char *topic)
{
    struct strbuf sb;
    strbuf_init(&sb);
    pagerender_message(&sb, L, title_key, text_key, channel, topic);
    respond_html(req, status, &sb, L);
}

static void finish_message(struct page_req *pr, int status, const char *title_key, const char *text_key)
{
    struct pagerender_lang L = pr_lang(pr, NULL);
    respond_message(pr->req, &L, status, title_key, text_key, pr->claims.channel, pr->claims.topic);
    page_req_free(pr);
}

static void respond_unavailable(struct http_request *req, const struct pagerender_lang *L)
{
    respond_message(req, L, 503, "msg.unavailable.title", "msg.unavailable.text", NULL, NULL);
}

/* Whether a POST may come from where the browser says it comes from.
 * Origin, when sent, must be the origin of [admin] public_url (without
 * one: this request's Host). "null" passes here: browsers send it for our
 * own forms, because our pages set Referrer-Policy: no-referrer; but then
 * Sec-Fetch-Site (sent by current browsers whatever the referrer policy)
 * must not say another site. Mail providers' one-click POSTs send neither. */
static bool origin_ok(struct http_request *req, const char *public_url)
{
    const char *site = http_request_header(req, "Sec-Fetch-Site");
    if (site && strcmp(site, "same-origin") != 0 && strcmp(site, "none") != 0) return false;
    const char *o = http_request_header(req, "Origin");
    if (!o || strcmp(o, "null") == 0) return true;
    char got[256], want[256];
    if (!pagerender_origin(o, got, sizeof(got))) return false;
    if (public_url && *public_url)
        return pagerender_origin(public_url, want, sizeof(want)) && strcmp(got, want) == 0;
    const char *host = http_request_header(req, "Host");
    return host && strcasecmp(strstr(got, "://") + 3, host) == 0;
}

/* Verifies the token of /<kind>/{token} and the Origin of a POST. On
 * failure it has answered (403, or 503 without people) and returns NULL. */
static struct page_req *open_link(struct http_request *req, struct api_state *st, char kind, bool post)
{
    const struct config *cfg = st->cfg;
    const char *token = http_request_param(req, "token");
    struct link_claims c;
    char err[128];
    struct pagerender_lang L = req_lang(st, req);
    if (!token || !cfg->link_secret ||
        links_verify(token, cfg->link_secret, time(NULL), &c, err, sizeof(err)) < 0) {
        bool expired = token && cfg->link_secret && strstr(err, "expired") != NULL;
        log_debug("page", "link refused: %s", expired ? "expired" : "not valid");
        respond_message(req, &L, 403, expired ? "msg.expired.title" : "msg.invalid.title",
                        expired ? "msg.expired.text" : "msg.invalid.text", NULL, NULL);
        return NULL;
    }
    int ch = herald_channel_from_name(c.channel);
    if (c.kind != kind || !herald_id_valid(c.recipient) || ch < 0) {
        log_debug("page", "link refused: wrong kind or content");
        respond_message(req, &L, 403, "msg.invalid.title", "msg.wrong_kind.text", NULL, NULL);
        return NULL;
    }
    if (post && !origin_ok(req, cfg->public_url)) {
        log_info("page", "cross-site form refused recipient=%s", c.recipient);
        respond_message(req, &L, 403, "msg.cross_site.title", "msg.cross_site.text", NULL, NULL);
        return NULL;
    }
    if (!st->people) {
        respond_unavailable(req, &L);
        return NULL;
    }
    struct page_req *pr = xcalloc(1, sizeof(*pr));
    pr->req = req;
    pr->pp = st->people;
    pr->claims = c;
    pr->channel = ch;
    pr->token = xstrdup(token);
    pr->secret = xstrdup(cfg->link_secret);
    pr->l10n = l10n_set_ref(st->locales);
    pr->st = st;
    const char *al = http_request_header(req, "Accept-Language");
    pr->accept = al ? xstrndup(al, strnlen(al, 512)) : NULL;
    pr->default_tz = cfg->default_tz ? xstrdup(cfg->default_tz) : NULL;
    return pr;
}

static bool parse_body(struct page_req *pr)
{
    size_t len;
    const char *body = http_request_body(pr->req, &len);
    char err[128];
    if (pagerender_form_parse(http_request_header(pr->req, "Content-Type"), body, len, &pr->form, err,
                              sizeof(err)) < 0) {
        log_debug("page", "form refused recipient=%s: %s", pr->claims.recipient, err);
        pr->errors.e[0].key = "error.unreadable";
        pr->errors.n = 1;
        return false;
    }
    pr->form_valid = true;
    return true;
}

static void ctx_from_claims(struct pagerender_ctx *ctx, struct page_req *pr, const json_t *doc)
{
    memset(ctx, 0, sizeof(*ctx));
    ctx->lang = pr_lang(pr, doc);
    ctx->campaign = pr->claims.campaign;
    ctx->topic = pr->claims.topic;
    ctx->channel = pr->claims.channel;
    ctx->now = time(NULL);
}

/* ---- /u/{token} ----------------------------------------------------------- */

static void unsubscribe_get(struct http_request *req, void *arg)
{
    struct page_req *pr = open_link(req, arg, 'u', false);
    if (!pr) return;
    struct pagerender_ctx ctx;
    ctx_from_claims(&ctx, pr, NULL);
    struct strbuf csrf, href, body;
    strbuf_init(&csrf);
    strbuf_init(&href);
    strbuf_init(&body);
    links_form_mac(&csrf, pr->secret, pr->token, CSRF_UNSUBSCRIBE_ALL);
    /* The preference page of the same message: same claims, other kind. */
    struct link_claims p = pr->claims;
    p.kind = 'p';
    strbuf_adds(&href, "../p/");
    links_sign(&href, pr->secret, &p);
    ctx.csrf_all = csrf.buf;
    ctx.prefs_href = href.buf;
    pagerender_unsubscribe(&body, &ctx);
    respond_html(req, 200, &body, &ctx.lang);
    strbuf_free(&csrf);
    strbuf_free(&href);
    page_req_free(pr);
}

static void unsubscribed(struct page_req *pr, bool whole_channel)
{
    finish_message(pr, 200, "msg.unsubscribed.title",
                   whole_channel ? "msg.unsubscribed.channel" : "msg.unsubscribed.topic");
}

static void people_failed(struct page_req *pr, int status, const char *err, bool post_unsubscribe)
{
    if (status == -HERALD_ENOENT) {
        /* Nothing stored means nothing is sent: an unsubscribe has nothing left to do. */
        finish_message(pr, post_unsubscribe ? 200 : 404, "msg.no_data.title", "msg.no_data.text");
    } else if (status == -HERALD_EINVAL) {
        (void)err; /* people's words may quote a value: not for the log */
        log_info("page", "change refused recipient=%s", pr->claims.recipient);
        finish_message(pr, 400, "msg.refused.title", "error.refused");
    } else {
        finish_message(pr, 503, "msg.unavailable.title", "msg.unavailable.text");
    }
}

static void on_channel_withdrawn(int status, enum store_error store, json_t *doc, const char *err, void *arg)
{
    (void)store; /* people_failed: every Redis failure is the same page */
    struct page_req *pr = arg;
    json_decref(doc);
    if (status < 0) {
        people_failed(pr, status, err, true);
        return;
    }
    log_info("page", "unsubscribed recipient=%s campaign=%s channel=%s (consent withdrawn)",
             pr->claims.recipient, pr->claims.campaign, pr->claims.channel);
    unsubscribed(pr, true);
}

/* Withdraws consent on the token's channel unless it is withdrawn already
 * (mail clients retry one-click POSTs; the ledger need not grow). */
static void on_unsubscribe_lookup(int status, enum store_error store, json_t *doc, const char *err, void *arg)
{
    (void)store; /* people_failed: every Redis failure is the same page */
    struct page_req *pr = arg;
    if (status < 0) {
        people_failed(pr, status, err, true);
        return;
    }
    (void)pr_lang(pr, doc); /* remembers the person's locale for the answer */
    const json_t *cc = json_object_get(json_object_get(doc, "consent_current"), pr->claims.channel);
    bool granted = json_is_true(json_object_get(cc, "granted"));
    json_decref(doc);
    if (!granted) {
        unsubscribed(pr, true);
        return;
    }
    int rc = people_consent_append(pr->pp, pr->claims.recipient, pr->channel, false, "unsubscribe_link", NULL,
                                   time(NULL), on_channel_withdrawn, pr);
    if (rc < 0) people_failed(pr, rc, NULL, true);
}

static void on_topic_off(int status, enum store_error store, json_t *doc, const char *err, void *arg)
{
    (void)store; /* people_failed: every Redis failure is the same page */
    struct page_req *pr = arg;
    json_decref(doc);
    if (status < 0) {
        people_failed(pr, status, err, true);
        return;
    }
    log_info("page", "unsubscribed recipient=%s campaign=%s topic=%s", pr->claims.recipient,
             pr->claims.campaign, pr->claims.topic);
    unsubscribed(pr, false);
}

static void unsubscribe_post(struct http_request *req, void *arg)
{
    struct page_req *pr = open_link(req, arg, 'u', true);
    if (!pr) return;
    if (!parse_body(pr)) {
        finish_message(pr, 400, "msg.unreadable.title", "error.unreadable");
        return;
    }
    int rc;
    if (pagerender_form_has(&pr->form, "channel", "all")) {
        /* Beyond RFC 8058's one click: only from the form our GET page rendered. */
        if (!links_form_mac_ok(pagerender_form_get(&pr->form, "csrf"), pr->secret, pr->token,
                               CSRF_UNSUBSCRIBE_ALL)) {
            finish_message(pr, 403, "msg.cross_site.title", "msg.foreign_unsub.text");
            return;
        }
        rc = people_get(pr->pp, pr->claims.recipient, on_unsubscribe_lookup, pr);
    } else if (pagerender_form_has(&pr->form, "List-Unsubscribe", "One-Click")) {
        if (pr->claims.topic[0]) {
            json_t *patch = json_pack("{s:{s:b}}", "topics", pr->claims.topic, 0);
            rc = people_patch_preferences(pr->pp, pr->claims.recipient, patch, on_topic_off, pr);
            json_decref(patch);
        } else {
            rc = people_get(pr->pp, pr->claims.recipient, on_unsubscribe_lookup, pr);
        }
    } else {
        finish_message(pr, 400, "msg.nothing_to_do.title", "msg.nothing_to_do.text");
        return;
    }
    if (rc < 0) people_failed(pr, rc, NULL, true);
}

/* ---- /p/{token} ----------------------------------------------------------- */

static void on_prefs_doc(int status, enum store_error store, json_t *doc, const char *err, void *arg)
{
    (void)store; /* people_failed: every Redis failure is the same page */
    struct page_req *pr = arg;
    if (status < 0) {
        people_failed(pr, status, err, false);
        return;
    }
    struct pagerender_ctx ctx;
    ctx_from_claims(&ctx, pr, doc);
    struct strbuf csrf, body;
    strbuf_init(&csrf);
    strbuf_init(&body);
    links_form_mac(&csrf, pr->secret, pr->token, CSRF_PREFERENCES);
    ctx.csrf = csrf.buf;
    ctx.saved = pr->saved;
    ctx.moved = pr->moved;
    ctx.token = pr->token;
    ctx.errors = pr->errors.n ? &pr->errors : NULL;
    ctx.submitted = pr->form_valid ? &pr->form : NULL;
    pagerender_prefs(&body, doc, &ctx);
    json_decref(doc);
    respond_html(pr->req, pr->status ? pr->status : 200, &body, &ctx.lang);
    strbuf_free(&csrf);
    page_req_free(pr);
}

/* Shows the preference page with the stored data, as of now. */
static void show_prefs(struct page_req *pr, int status)
{
    pr->status = status;
    int rc = people_get(pr->pp, pr->claims.recipient, on_prefs_doc, pr);
    if (rc < 0) people_failed(pr, rc, NULL, false);
}

static void prefs_get(struct http_request *req, void *arg)
{
    struct page_req *pr = open_link(req, arg, 'p', false);
    if (!pr) return;
    /* The POST/redirect/GET target: "?saved=1" only adds the note. */
    const char *q = http_request_query(req);
    pr->saved = strcmp(q, "saved=1") == 0;
    show_prefs(pr, 200);
}

static void withdraw_next(struct page_req *pr);

static void on_prefs_withdrawn(int status, enum store_error store, json_t *doc, const char *err, void *arg)
{
    struct page_req *pr = arg;
    (void)err;
    json_decref(doc);
    if (status < 0) {
        log_warn("page", "consent withdrawal failed recipient=%s channel=%s: %s", pr->claims.recipient,
                 herald_channel_name(pr->next_ch),
                 status == -HERALD_EREDIS ? store_error_name(store) : herald_strerror(status));
        finish_message(pr, 503, "msg.unavailable.title", "msg.withdraw_failed.text");
        return;
    }
    if (pr->granting)
        pr->granted++;
    else
        pr->withdrawn++;
    pr->next_ch++;
    withdraw_next(pr);
}

/* The terms version the form showed for ch (checked against the
 * configuration in force before anything was written). */
static const char *form_terms(const struct page_req *pr, int ch)
{
    char name[32];
    snprintf(name, sizeof(name), "terms_%s", herald_channel_name(ch));
    return pagerender_form_get(&pr->form, name);
}

static void withdraw_next(struct page_req *pr)
{
    const bool *want = pr->granting ? pr->changes.grant : pr->changes.withdraw;
    while (pr->next_ch < HERALD_CH_COUNT && !want[pr->next_ch])
        pr->next_ch++;
    if (pr->next_ch < HERALD_CH_COUNT) {
        int rc = people_consent_append(pr->pp, pr->claims.recipient, pr->next_ch, pr->granting, "preference_page",
                                       pr->granting ? form_terms(pr, pr->next_ch) : NULL, time(NULL),
                                       on_prefs_withdrawn, pr);
        if (rc < 0) on_prefs_withdrawn(rc, STORE_E_CONNECTION, NULL, NULL, pr);
        return;
    }
    if (!pr->granting) {
        pr->granting = true;
        pr->next_ch = 0;
        withdraw_next(pr);
        return;
    }
    log_info("page", "preferences saved recipient=%s consent_withdrawn=%d consent_granted=%d", pr->claims.recipient,
             pr->withdrawn, pr->granted);
    /* POST/redirect/GET: a reload of the result does not post again. The
     * relative reference keeps the path (and any prefix a proxy adds). */
    http_response_header(pr->req, "Location", "?saved=1");
    finish_message(pr, 303, "msg.saved.title", "msg.saved.text");
}

static void on_prefs_patched(int status, enum store_error store, json_t *doc, const char *err, void *arg)
{
    (void)store; /* people_failed: every Redis failure is the same page */
    struct page_req *pr = arg;
    json_decref(doc);
    if (status == -HERALD_EINVAL) {
        (void)err; /* people's words may quote a value: not for the log */
        log_info("page", "preferences refused recipient=%s", pr->claims.recipient);
        pr->errors.e[0].key = "error.refused";
        pr->errors.n = 1;
        show_prefs(pr, 400);
        return;
    }
    if (status < 0) {
        people_failed(pr, status, err, false);
        return;
    }
    withdraw_next(pr);
}

static void prefs_post(struct http_request *req, void *arg)
{
    struct page_req *pr = open_link(req, arg, 'p', true);
    if (!pr) return;
    if (!parse_body(pr)) {
        show_prefs(pr, 400);
        return;
    }
    if (!links_form_mac_ok(pagerender_form_get(&pr->form, "csrf"), pr->secret, pr->token, CSRF_PREFERENCES)) {
        log_info("page", "preference form without a valid form MAC refused recipient=%s",
                 pr->claims.recipient);
        finish_message(pr, 403, "msg.cross_site.title", "msg.foreign_prefs.text");
        return;
    }
    const char *move = pagerender_form_get(&pr->form, "move");
    if (move) {
        /* An order button: the page again in the new order, nothing saved. */
        if (pagerender_form_move(&pr->form, move) < 0) {
            pr->errors.e[0].key = "error.move";
            pr->errors.n = 1;
            show_prefs(pr, 400);
            return;
        }
        pr->moved = true;
        show_prefs(pr, 200);
        return;
    }
    if (pagerender_changes_from_form(&pr->form, &pr->changes, &pr->errors) < 0) {
        show_prefs(pr, 400);
        return;
    }
    /* An agreement is to the exact terms the page showed: the version the
     * form carries must still be the configured one. */
    const struct config *cfg = pr->st->cfg;
    for (int ch = 0; ch < HERALD_CH_COUNT; ch++) {
        if (!pr->changes.grant[ch]) continue;
        const char *shown = form_terms(pr, ch);
        if (!cfg->terms[ch].present || !shown || strcmp(shown, cfg->terms[ch].version) != 0) {
            struct pagerender_error *e = &pr->errors.e[pr->errors.n++];
            e->key = "error.terms_changed";
            herald_copy(e->arg, sizeof(e->arg), herald_channel_name(ch));
        }
    }
    if (pr->errors.n) {
        pagerender_changes_free(&pr->changes);
        show_prefs(pr, 400);
        return;
    }
    int rc = people_patch_preferences(pr->pp, pr->claims.recipient, pr->changes.patch, on_prefs_patched, pr);
    if (rc < 0) on_prefs_patched(rc, STORE_E_CONNECTION, NULL, NULL, pr);
}

/* ---- /p/{token}/data and /p/{token}/erase --------------------------------- */

/* GET /p/{token}/data: what GET /v1/recipients/{id} answers, as a file. */
static void on_export_doc(int status, enum store_error store, json_t *doc, const char *err, void *arg)
{
    (void)store;
    struct page_req *pr = arg;
    if (status < 0) {
        json_decref(doc);
        people_failed(pr, status, err, false);
        return;
    }
    if (json_object_get(doc, PEOPLE_UNDECRYPTABLE)) {
        /* Their contact data does not decrypt: no partial copy of it. */
        json_decref(doc);
        log_warn("page", "data download refused recipient=%s: contact data undecryptable", pr->claims.recipient);
        people_failed(pr, -HERALD_EIO, NULL, false);
        return;
    }
    json_object_del(doc, "rev"); /* as GET /v1/recipients/{id}: the revision is its ETag, not its body */
    char *s = json_dumps(doc, JSON_COMPACT);
    json_decref(doc);
    char disp[HERALD_ID_MAX + 64];
    snprintf(disp, sizeof(disp), "attachment; filename=\"herald-data-%s.json\"", pr->claims.recipient);
    http_response_header(pr->req, "Content-Disposition", disp);
    http_response_header(pr->req, "Cache-Control", "no-store");
    http_response_header(pr->req, "X-Content-Type-Options", "nosniff");
    http_response_header(pr->req, "Referrer-Policy", "no-referrer");
    http_respond(pr->req, 200, "application/json", s ? s : "{}", s ? strlen(s) : 2);
    free(s);
    log_info("page", "data downloaded recipient=%s", pr->claims.recipient);
    page_req_free(pr);
}

/* A GET of a preference link's page that shows the person's document:
 * the link checked, then the document read and given to cb. */
static void link_document(struct http_request *req, void *arg, people_cb cb)
{
    struct page_req *pr = open_link(req, arg, 'p', false);
    if (!pr) return;
    int rc = people_get(pr->pp, pr->claims.recipient, cb, pr);
    if (rc < 0) people_failed(pr, rc, NULL, false);
}

static void export_get(struct http_request *req, void *arg) { link_document(req, arg, on_export_doc); }

/* GET /p/{token}/erase: asks first (GET never changes anything). */
static void on_erase_ask_doc(int status, enum store_error store, json_t *doc, const char *err, void *arg)
{
    (void)store;
    struct page_req *pr = arg;
    if (status < 0) {
        json_decref(doc);
        people_failed(pr, status, err, false);
        return;
    }
    struct pagerender_ctx ctx;
    ctx_from_claims(&ctx, pr, doc);
    json_decref(doc);
    struct strbuf csrf, body;
    strbuf_init(&csrf);
    strbuf_init(&body);
    links_form_mac(&csrf, pr->secret, pr->token, CSRF_ERASE);
    ctx.csrf = csrf.buf;
    ctx.token = pr->token;
    pagerender_erase_confirm(&body, &ctx);
    respond_html(pr->req, 200, &body, &ctx.lang);
    strbuf_free(&csrf);
    page_req_free(pr);
}

static void erase_get(struct http_request *req, void *arg) { link_document(req, arg, on_erase_ask_doc); }

static void on_erased(int status, enum store_error store, json_t *doc, const char *err, void *arg)
{
    (void)store;
    struct page_req *pr = arg;
    int tombstones = (int)json_integer_value(json_object_get(doc, "tombstones"));
    json_decref(doc);
    if (status < 0) {
        people_failed(pr, status, err, false);
        return;
    }
    log_info("page", "erased by the person recipient=%s tombstones=%d", pr->claims.recipient, tombstones);
    finish_message(pr, 200, "msg.erased.title", "msg.erased.text");
}

/* The person's answer: the same erasure as DELETE /v1/recipients/{id}. */
static void on_erase_lookup(int status, enum store_error store, json_t *doc, const char *err, void *arg)
{
    (void)store;
    struct page_req *pr = arg;
    if (status < 0) {
        json_decref(doc);
        people_failed(pr, status, err, false);
        return;
    }
    (void)pr_lang(pr, doc); /* the answer in their language, though their data is gone by then */
    json_decref(doc);
    int rc = people_erase(pr->pp, pr->claims.recipient, on_erased, pr);
    if (rc == -HERALD_ECONFIG) {
        log_error("page", "erasure refused recipient=%s: no tombstone_secret or link_secret", pr->claims.recipient);
        finish_message(pr, 503, "msg.unavailable.title", "msg.unavailable.text");
    } else if (rc < 0) {
        people_failed(pr, rc, NULL, false);
    }
}

static void erase_post(struct http_request *req, void *arg)
{
    struct page_req *pr = open_link(req, arg, 'p', true);
    if (!pr) return;
    if (!parse_body(pr)) {
        finish_message(pr, 400, "msg.unreadable.title", "error.unreadable");
        return;
    }
    if (!links_form_mac_ok(pagerender_form_get(&pr->form, "csrf"), pr->secret, pr->token, CSRF_ERASE) ||
        !pagerender_form_has(&pr->form, "erase", "1")) {
        log_info("page", "erasure form without a valid form MAC refused recipient=%s", pr->claims.recipient);
        finish_message(pr, 403, "msg.cross_site.title", "msg.foreign_prefs.text");
        return;
    }
    int rc = people_get(pr->pp, pr->claims.recipient, on_erase_lookup, pr);
    if (rc < 0) people_failed(pr, rc, NULL, false);
}

int page_register(struct http_server *srv, struct api_state *st)
{
    int rc;
    if ((rc = http_route(srv, "GET", "/p/{token}/data", export_get, st)) < 0) return rc;
    if ((rc = http_route(srv, "GET", "/p/{token}/erase", erase_get, st)) < 0) return rc;
    if ((rc = http_route(srv, "POST", "/p/{token}/erase", erase_post, st)) < 0) return rc;
    if ((rc = http_route(srv, "GET", "/u/{token}", unsubscribe_get, st)) < 0) return rc;
    if ((rc = http_route(srv, "POST", "/u/{token}", unsubscribe_post, st)) < 0) return rc;
    if ((rc = http_route(srv, "GET", "/p/{token}", prefs_get, st)) < 0) return rc;
    return http_route(srv, "POST", "/p/{token}", prefs_post, st);
}
