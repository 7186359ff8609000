/*
 * api_v1.c - the preference API's routes (api_v1.h) on top of people.c.
 *
 * Owns authentication, body parsing and the mapping of people.c's
 * statuses to HTTP answers; never touches Redis keys itself except the
 * read-only campaign progress hash (through the command layer, like
 * people.c: STORE_CMD_ONCE). Invariant: a request that fails any check is
 * answered before anything is written, so nothing is half-applied. Redis
 * trouble is 503 {"error": "redis unavailable: <label>"} (the label of
 * store_error_name, never Redis's words), with Retry-After: 1 when the
 * error is transient (it passes on its own: OOM, READONLY, LOADING, a lost
 * connection...); a permanent one (NOPERM, WRONGTYPE) waits for an
 * operator, so no Retry-After promises it soon.
 * Logs ids only (erasures, at info); never a body, an address or a token.
 */
#include "api_v1.h"

#include "api_campaigns.h"

#include <jansson.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "channel.h"
#include "log.h"
#include "people.h"
#include "precond.h"
#include "profile.h"
#include "store.h"

/* ---- authentication ------------------------------------------------------ */

static void sha256(const char *s, size_t len, unsigned char md[32])
{
    unsigned int mdlen = 0;
    EVP_Digest(s, len, md, &mdlen, EVP_sha256(), NULL);
}

/* true when the request carries the configured bearer token; otherwise it
 * has been answered 401. Both sides are hashed first, so the comparison
 * takes the same time whatever the length or content of the guess. */
bool api_v1_authorised(struct http_request *req, const struct config *cfg)
{
    const char *msg;
    if (!cfg->token || !*cfg->token) {
        msg = "no [admin] token configured: every /v1 call is refused until one is set";
    } else {
        const char *h = http_request_header(req, "Authorization");
        if (!h || strncasecmp(h, "Bearer ", 7) != 0) {
            msg = "missing \"Authorization: Bearer <token>\" header";
        } else {
            const char *t = h + 7;
            while (*t == ' ') t++;
            size_t tl = strlen(t);
            while (tl && t[tl - 1] == ' ') tl--;
            unsigned char a[32], b[32];
            sha256(t, tl, a);
            sha256(cfg->token, strlen(cfg->token), b);
            if (CRYPTO_memcmp(a, b, sizeof(a)) == 0) return true;
            msg = "invalid bearer token";
        }
    }
    http_response_header(req, "WWW-Authenticate", "Bearer realm=\"herald\"");
    http_respond_error(req, 401, msg);
    return false;
}

/* ---- helpers ------------------------------------------------------------- */

/* The {id} parameter, or NULL after answering 400. */
const char *api_v1_id_param(struct http_request *req)
{
    const char *id = http_request_param(req, "id");
    if (!id || !herald_id_valid(id)) {
        char msg[128];
        snprintf(msg, sizeof(msg), "id: not a valid id (1..%d of " HERALD_ID_CHARS ")", HERALD_ID_MAX);
        http_respond_error(req, 400, msg);
        return NULL;
    }
    return id;
}

/* The body as a JSON object (a new reference), or NULL after answering 400.
 * jansson's own message is not passed on: it may quote the text. */
static json_t *body_object(struct http_request *req)
{
    size_t len;
    const char *body = http_request_body(req, &len);
    if (len == 0) {
        http_respond_error(req, 400, "body: missing (expected a JSON object)");
        return NULL;
    }
    json_error_t jerr;
    json_t *obj = json_loadb(body, len, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &jerr);
    if (!obj) {
        char msg[128];
        snprintf(msg, sizeof(msg), "body: not valid JSON (line %d, column %d)", jerr.line, jerr.column);
        http_respond_error(req, 400, msg);
        return NULL;
    }
    if (!json_is_object(obj)) {
        json_decref(obj);
        http_respond_error(req, 400, "body: must be a JSON object");
        return NULL;
    }
    return obj;
}

static bool people_ready(struct http_request *req, const struct api_state *st)
{
    if (st->people) return true;
    http_respond_error(req, 503, "the preference store is not available");
    return false;
}

/* Answers a people.c call that could not start. */
static void respond_start_error(struct http_request *req, int rc)
{
    if (rc == -HERALD_EINVAL) http_respond_error(req, 400, "invalid input");
    else if (rc == -HERALD_ECONFIG)
        http_respond_error(req, 409, "erasure needs a tombstone key: set [admin] tombstone_secret "
                                     "(or [admin] link_secret)");
    else api_respond_store_error(req, STORE_E_CONNECTION); /* the connection is down */
}

enum v1_kind { V1_PUT, V1_GET, V1_DELETE, V1_PATCH, V1_MERGE, V1_CONSENT_POST, V1_CONSENT_GET, V1_FOUND };

struct v1_call {
    struct http_request *req;
    enum v1_kind kind;
    char id[HERALD_ID_MAX + 1];
    struct people *pp; /* V1_FOUND: for the second step */
};

static struct v1_call *call_new(struct http_request *req, enum v1_kind kind, const char *id)
{
    struct v1_call *c = xcalloc(1, sizeof(*c));
    c->req = req;
    c->kind = kind;
    snprintf(c->id, sizeof(c->id), "%s", id);
    return c;
}

/* people.c's answer, as HTTP. */
static void on_people(int status, enum store_error store, json_t *doc, const char *err, void *arg)
{
    struct v1_call *c = arg;
    struct http_request *req = c->req;
    const json_t *undecryptable = status == 0 ? json_object_get(doc, PEOPLE_UNDECRYPTABLE) : NULL;
    if (undecryptable) {
        char msg[400];
        snprintf(msg, sizeof(msg), "the recipient's stored contact data cannot be read: %s",
                 json_string_value(undecryptable));
        json_decref(doc);
        http_respond_error(req, 500, msg);
    } else if (status == 0) {
        int code = 200;
        /* people.c hands over the rev with the document: it becomes the
         * ETag, never part of the body. */
        json_t *rev = json_object_get(doc, "rev");
        if (json_is_integer(rev) && c->kind != V1_CONSENT_GET && c->kind != V1_DELETE) {
            char etag[PRECOND_ETAG_MAX];
            precond_etag(etag, sizeof(etag), (int64_t)json_integer_value(rev));
            http_response_header(req, "ETag", etag);
        }
        json_object_del(doc, "rev");
        if (c->kind == V1_FOUND) {
            char loc[sizeof(c->id) + 16];
            snprintf(loc, sizeof(loc), "/v1/recipients/%s", c->id);
            http_response_header(req, "Content-Location", loc);
        }
        if (c->kind == V1_PUT && json_is_true(json_object_get(doc, "created"))) code = 201;
        if (c->kind == V1_CONSENT_POST) code = 201;
        if (c->kind == V1_CONSENT_GET) {
            json_t *o = json_pack("{s:s, s:O}", "id", c->id, "consent", json_object_get(doc, "consent"));
            json_decref(doc);
            doc = o;
        }
        if (c->kind == V1_DELETE) log_info("api", "recipient erased id=%s", c->id);
        http_respond_json(req, code, doc);
    } else if (status == -HERALD_ENOENT) {
        http_respond_error(req, 404, "recipient not found");
    } else if (status == -HERALD_EPRECOND) {
        http_respond_error(req, 412, err ? err : "If-Match: precondition failed");
    } else if (status == -HERALD_EINVAL) {
        http_respond_error(req, 400, err ? err : "invalid input");
    } else if (status == -HERALD_EIO) { /* stored contact data that does not decrypt (people.c) */
        http_respond_error(req, 500, err ? err : "the recipient's stored contact data cannot be read");
    } else if (status == -HERALD_ECONFIG) {
        respond_start_error(req, status);
    } else if (status == -HERALD_EREDIS) {
        api_respond_store_error(req, store);
    } else { /* -HERALD_EBUSY: lost every compare-and-set; nothing written */
        http_response_header(req, "Retry-After", "1");
        http_respond_error(req, 503, err ? err : "busy; try again");
    }
    free(c);
}

/* The If-Match header into *m, or false after answering 400. Without the
 * header the write is unconditional, as before ETags existed. */
static bool if_match(struct http_request *req, struct precond_if_match *m)
{
    char err[128];
    if (precond_if_match_parse(http_request_header(req, "If-Match"), m, err, sizeof(err)) == 0) return true;
    http_respond_error(req, 400, err);
    return false;
}

/* The common start of a recipient route: the token, the id, a ready
 * people context. Returns the id, or NULL once the request is answered. */
static const char *recipient_call(struct http_request *req, struct api_state *st)
{
    if (!api_v1_authorised(req, st->cfg)) return NULL;
    const char *id = api_v1_id_param(req);
    if (!id || !people_ready(req, st)) return NULL;
    return id;
}

/* After a people_* call: when it did not start, its callback never fires. */
static void started(struct http_request *req, struct v1_call *c, int rc)
{
    if (rc >= 0) return;
    free(c);
    respond_start_error(req, rc);
}

/* ---- recipients ---------------------------------------------------------- */

static void put_recipient(struct http_request *req, void *arg)
{
    struct api_state *st = arg;
    const char *id = recipient_call(req, st);
    if (!id) return;
    struct precond_if_match im;
    if (!if_match(req, &im)) return;
    json_t *body = body_object(req);
    if (!body) return;
    struct v1_call *c = call_new(req, V1_PUT, id);
    int rc = people_put_if(st->people, id, body, &im, on_people, c);
    json_decref(body);
    started(req, c, rc);
}

static void get_recipient_kind(struct http_request *req, void *arg, enum v1_kind kind)
{
    struct api_state *st = arg;
    const char *id = recipient_call(req, st);
    if (!id) return;
    struct v1_call *c = call_new(req, kind, id);
    int rc = people_get(st->people, id, on_people, c);
    started(req, c, rc);
}

static void get_recipient(struct http_request *req, void *arg)
{
    get_recipient_kind(req, arg, V1_GET);
}

static void get_consent(struct http_request *req, void *arg)
{
    get_recipient_kind(req, arg, V1_CONSENT_GET);
}

static void delete_recipient(struct http_request *req, void *arg)
{
    struct api_state *st = arg;
    const char *id = recipient_call(req, st);
    if (!id) return;
    struct precond_if_match im;
    if (!if_match(req, &im)) return;
    struct v1_call *c = call_new(req, V1_DELETE, id);
    int rc = people_erase_if(st->people, id, &im, on_people, c);
    started(req, c, rc);
}

static void patch_preferences(struct http_request *req, void *arg)
{
    struct api_state *st = arg;
    const char *id = recipient_call(req, st);
    if (!id) return;
    struct precond_if_match im;
    if (!if_match(req, &im)) return;
    json_t *body = body_object(req);
    if (!body) return;
    struct v1_call *c = call_new(req, V1_PATCH, id);
    int rc = people_patch_preferences_if(st->people, id, body, &im, on_people, c);
    json_decref(body);
    started(req, c, rc);
}

/* PATCH /v1/recipients/{id}: a JSON Merge Patch (RFC 7396) of the profile;
 * the media type says so, as RFC 5789 asks (415 for any other). */
static void patch_recipient(struct http_request *req, void *arg)
{
    struct api_state *st = arg;
    const char *id = recipient_call(req, st);
    if (!id) return;
    static const char want[] = "application/merge-patch+json";
    const char *ct = http_request_header(req, "Content-Type");
    size_t n = 0;
    if (ct) {
        while (*ct == ' ' || *ct == '\t') ct++;
        while (ct[n] && ct[n] != ';' && ct[n] != ' ' && ct[n] != '\t') n++;
    }
    if (!ct || n != sizeof(want) - 1 || strncasecmp(ct, want, n) != 0) {
        http_response_header(req, "Accept-Patch", want);
        http_respond_error(req, 415, "Content-Type: must be application/merge-patch+json (RFC 7396)");
        return;
    }
    struct precond_if_match im;
    if (!if_match(req, &im)) return;
    json_t *body = body_object(req);
    if (!body) return;
    struct v1_call *c = call_new(req, V1_MERGE, id);
    int rc = people_merge_profile(st->people, id, body, &im, on_people, c);
    json_decref(body);
    started(req, c, rc);
}

/* ---- lookup by address --------------------------------------------------- */

/* herald:addr named the person: answer with their document, as GET
 * /v1/recipients/{id} does (and Content-Location naming it). */
static void on_found(int status, enum store_error store, json_t *doc, const char *err, void *arg)
{
    struct v1_call *c = arg;
    if (status < 0) {
        if (status == -HERALD_ENOENT) {
            json_decref(doc);
            http_respond_error(c->req, 404, "no recipient has this address");
            free(c);
            return;
        }
        on_people(status, store, doc, err, c);
        return;
    }
    const char *id = json_string_value(json_object_get(doc, "id"));
    snprintf(c->id, sizeof(c->id), "%s", id ? id : "");
    json_decref(doc);
    int rc = people_get(c->pp, c->id, on_people, c);
    if (rc < 0) {
        struct http_request *req = c->req;
        free(c);
        respond_start_error(req, rc);
    }
}

/* The channel and address of a suppression or lookup, normalised as the
 * channel stores them, or -1 after answering 400. The address is never
 * quoted back. */
static int address_of(struct http_request *req, int ch, const char *raw, char *out, size_t outlen)
{
    if (ch < 0) {
        http_respond_error(req, 400, "channel: unknown channel (expected email or sms)");
        return -1;
    }
    size_t n = raw ? channel_address_normalise(out, outlen, ch, raw) : 0;
    if (!raw || n == 0 || n + 1 >= outlen || !channel_address_valid(ch, out)) {
        char msg[192];
        snprintf(msg, sizeof(msg), "%s: %s", channel_get(ch)->address_field, channel_get(ch)->address_invalid);
        http_respond_error(req, 400, msg);
        return -1;
    }
    return ch;
}

/* GET /v1/recipients?email=... or ?phone=...: one lookup in herald:addr
 * (the address hashed as the channel normalises it), never a scan. A '+'
 * in the query is a '+' (E.164), not a space. */
static void find_recipient(struct http_request *req, void *arg)
{
    struct api_state *st = arg;
    if (!api_v1_authorised(req, st->cfg) || !people_ready(req, st)) return;
    const char *q = http_request_query(req);
    int ch = -1;
    char *value = NULL;
    const char *bad = NULL;
    while (*q && !bad) {
        const char *amp = strchr(q, '&');
        size_t len = amp ? (size_t)(amp - q) : strlen(q);
        const char *eq = memchr(q, '=', len);
        if (len > 0) {
            size_t kl = eq ? (size_t)(eq - q) : len;
            int kch = -1;
            for (int k = 0; k < HERALD_CH_COUNT; k++)
                if (strlen(channel_get(k)->address_field) == kl && strncmp(q, channel_get(k)->address_field, kl) == 0)
                    kch = k;
            if (kch < 0) bad = "query: unknown parameter (expected email or phone)";
            else if (value) bad = "query: give exactly one of email or phone";
            else if (!(value = herald_pct_decode(eq ? eq + 1 : q + len, eq ? len - kl - 1 : 0)))
                bad = "query: invalid percent-encoding";
            ch = kch;
        }
        q += len + (amp ? 1 : 0);
    }
    if (!bad && !value) bad = "query: give exactly one of email or phone";
    if (bad) {
        free(value);
        http_respond_error(req, 400, bad);
        return;
    }
    char norm[512];
    int rc = address_of(req, ch, value, norm, sizeof(norm));
    free(value);
    if (rc < 0) return;
    struct v1_call *c = call_new(req, V1_FOUND, "");
    c->pp = st->people;
    rc = people_find_by_address(st->people, ch, norm, on_found, c);
    started(req, c, rc);
}

/* ---- suppressions -------------------------------------------------------- */

struct supp_call {
    struct http_request *req;
    int channel;
    bool write;
    bool on;
};

static void on_suppression(int status, enum store_error store, json_t *doc, const char *err, void *arg)
{
    struct supp_call *c = arg;
    struct http_request *req = c->req;
    if (status == 0) {
        json_object_set_new(doc, "channel", json_string(herald_channel_name(c->channel)));
        if (c->write && json_is_true(json_object_get(doc, "changed")))
            log_info("api", "suppression %s by the API channel=%s", c->on ? "added" : "removed",
                     herald_channel_name(c->channel));
        http_respond_json(req, 200, doc);
    } else if (status == -HERALD_EINVAL) {
        http_respond_error(req, 400, err ? err : "invalid input");
    } else if (status == -HERALD_EREDIS) {
        api_respond_store_error(req, store);
    } else {
        http_respond_error(req, 500, "suppression: unexpected failure");
    }
    free(c);
}

/* The common start of a suppression route: the token, the channel and the
 * address (normalised into norm). Returns the channel, or -1 once answered. */
static int suppression_call(struct http_request *req, struct api_state *st, char *norm, size_t normlen)
{
    if (!api_v1_authorised(req, st->cfg) || !people_ready(req, st)) return -1;
    const char *chn = http_request_param(req, "channel");
    int ch = chn ? herald_channel_from_name(chn) : -1;
    return address_of(req, ch, http_request_param(req, "address"), norm, normlen);
}

static void get_suppression(struct http_request *req, void *arg)
{
    struct api_state *st = arg;
    char norm[512];
    int ch = suppression_call(req, st, norm, sizeof(norm));
    if (ch < 0) return;
    struct supp_call *c = xcalloc(1, sizeof(*c));
    c->req = req;
    c->channel = ch;
    if (people_suppression_get(st->people, ch, norm, on_suppression, c) < 0) {
        free(c);
        respond_start_error(req, -HERALD_EREDIS);
    }
}

static void change_suppression(struct http_request *req, struct api_state *st, bool on)
{
    char norm[512];
    int ch = suppression_call(req, st, norm, sizeof(norm));
    if (ch < 0) return;
    json_t *body = NULL;
    const char *reason = "";
    if (on) {
        if (!(body = body_object(req))) return;
        const char *key;
        json_t *v;
        json_object_foreach(body, key, v) {
            if (strcmp(key, "reason") != 0) {
                json_decref(body);
                http_respond_error(req, 400, "suppression: unknown key (expected reason)");
                return;
            }
        }
        v = json_object_get(body, "reason");
        if (!json_is_string(v) || json_string_length(v) == 0) {
            json_decref(body);
            char msg[128];
            snprintf(msg, sizeof(msg), "reason: must be a string of 1..%d printable characters",
                     HERALD_CONSENT_SOURCE_MAX);
            http_respond_error(req, 400, msg);
            return;
        }
        reason = json_string_value(v);
    }
    struct supp_call *c = xcalloc(1, sizeof(*c));
    c->req = req;
    c->channel = ch;
    c->write = true;
    c->on = on;
    struct people_suppression why = {.by = "api", .reason = reason, .now = (int64_t)time(NULL)};
    int rc = people_suppress_why(st->people, ch, norm, on, &why, on_suppression, c);
    json_decref(body);
    if (rc < 0) {
        free(c);
        respond_start_error(req, rc);
    }
}

static void put_suppression(struct http_request *req, void *arg) { change_suppression(req, arg, true); }
static void delete_suppression(struct http_request *req, void *arg) { change_suppression(req, arg, false); }

/* Checks the body of POST .../consent; answers 400 and returns false when
 * it is not {channel, granted, source[, text_version]}. */
static bool consent_body(struct http_request *req, const json_t *body, int *channel, bool *granted,
                         const char **source, const char **text_version)
{
    char msg[256];
    const char *key;
    json_t *v;
    json_object_foreach((json_t *)body, key, v) {
        if (strcmp(key, "at") == 0) {
            http_respond_error(req, 400, "at: not accepted (the server records the time)");
            return false;
        }
        if (strcmp(key, "channel") && strcmp(key, "granted") && strcmp(key, "source") && strcmp(key, "text_version")) {
            http_respond_error(req, 400, "consent: unknown key (expected channel, granted, source, text_version)");
            return false;
        }
    }
    v = json_object_get(body, "channel");
    *channel = json_is_string(v) ? herald_channel_from_name(json_string_value(v)) : -1;
    if (*channel < 0) {
        http_respond_error(req, 400, v ? "channel: unknown channel (expected email or sms)"
                                       : "channel: missing (expected email or sms)");
        return false;
    }
    v = json_object_get(body, "granted");
    if (!json_is_boolean(v)) {
        http_respond_error(req, 400, "granted: must be true or false");
        return false;
    }
    *granted = json_is_true(v);
    v = json_object_get(body, "source");
    if (!json_is_string(v)) {
        snprintf(msg, sizeof(msg), "source: must be a string of 1..%d characters (where the consent was given)",
                 HERALD_CONSENT_SOURCE_MAX);
        http_respond_error(req, 400, msg);
        return false;
    }
    *source = json_string_value(v);
    v = json_object_get(body, "text_version");
    *text_version = NULL;
    if (v && !json_is_null(v)) {
        if (!json_is_string(v)) {
            http_respond_error(req, 400, "text_version: must be a string");
            return false;
        }
        *text_version = json_string_value(v);
    }
    return true;
}

static void post_consent(struct http_request *req, void *arg)
{
    struct api_state *st = arg;
    const char *id = recipient_call(req, st);
    if (!id) return;
    json_t *body = body_object(req);
    if (!body) return;
    int channel;
    bool granted;
    const char *source, *text_version;
    if (!consent_body(req, body, &channel, &granted, &source, &text_version)) {
        json_decref(body);
        return;
    }
    struct v1_call *c = call_new(req, V1_CONSENT_POST, id);
    int rc = people_consent_append(st->people, id, channel, granted, source, text_version, (int64_t)time(NULL),
                                   on_people, c);
    json_decref(body);
    started(req, c, rc);
}

/* ---- campaigns ----------------------------------------------------------- */

/* GET /v1/campaigns/{id} and the routes that add or list runs: api_campaigns.c. */

/* POST /v1/campaigns/{id}/pause|resume|cancel: the campaign's control
 * field (lua/campaign_control.lua), which every daemon reads within a
 * second. 200 {"id", "state", "result": "ok"|"unchanged"}; 404 no such
 * campaign; 409 when the campaign is cancelled (a cancel is final) or, for
 * resume, not paused. */
struct control_call {
    struct http_request *req;
    enum store_control_action action;
};

static void on_control(redisReply *r, enum store_error err, const char *text, void *priv)
{
    struct control_call *c = priv;
    (void)text;
    int res = store_control_result_of(r);
    if (!r) {
        api_respond_store_error(c->req, err);
    } else if (res < 0) {
        api_respond_store_error(c->req, r->type == REDIS_REPLY_ERROR ? store_error_classify(r->str) : STORE_E_REPLY);
    } else if (res == STORE_CONTROL_UNKNOWN) {
        http_respond_error(c->req, 404, "campaign not found");
    } else if (res == STORE_CONTROL_FINAL) {
        http_respond_error(c->req, 409, "the campaign is cancelled: a cancel is final");
    } else if (res == STORE_CONTROL_NOT_PAUSED) {
        http_respond_error(c->req, 409, "the campaign is not paused");
    } else {
        static const char *const states[] = {"paused", "running", "cancelled"};
        json_t *o = json_pack("{s:s, s:s, s:s}", "id", http_request_param(c->req, "id"), "state",
                              states[c->action], "result", res == STORE_CONTROL_OK ? "ok" : "unchanged");
        log_info("api", "campaign %s by the API campaign=%s", store_control_action_name(c->action),
                 http_request_param(c->req, "id"));
        http_respond_json(c->req, 200, o);
    }
    free(c);
}

static void campaign_control(struct http_request *req, struct api_state *st, enum store_control_action action)
{
    if (!api_v1_authorised(req, st->cfg)) return;
    const char *id = api_v1_id_param(req);
    if (!id) return;
    struct control_call *c = xcalloc(1, sizeof(*c));
    c->req = req;
    c->action = action;
    struct store_args a;
    store_control_args(&a, st->cfg->prefix, id, action, (long long)st->cfg->audit_maxlen);
    if (!st->cmds || store_cmds_send(st->cmds, STORE_CMD_ONCE, on_control, c, NULL, &a, store_lua_campaign_control) < 0) {
        free(c);
        api_respond_store_error(req, STORE_E_CONNECTION);
    }
    store_args_free(&a);
}

static void post_pause(struct http_request *req, void *arg) { campaign_control(req, arg, STORE_CONTROL_PAUSE); }
static void post_resume(struct http_request *req, void *arg) { campaign_control(req, arg, STORE_CONTROL_RESUME); }
static void post_cancel(struct http_request *req, void *arg) { campaign_control(req, arg, STORE_CONTROL_CANCEL); }

/* GET /v1/openapi.json: the API's contract. No token: it holds no data,
 * and a client generator or a proxy validating traffic must be able to
 * fetch it before it has one; it answers on the admin listener only. */
static void get_openapi(struct http_request *req, void *arg)
{
    (void)arg;
    http_respond(req, 200, "application/json", herald_openapi_json, herald_openapi_json_len);
}

int api_v1_register(struct http_server *srv, struct api_state *st)
{
    static const struct {
        const char *method, *pattern;
        http_handler_fn fn;
    } routes[] = {
        {"PUT", "/v1/recipients/{id}", put_recipient},
        {"GET", "/v1/recipients/{id}", get_recipient},
        {"DELETE", "/v1/recipients/{id}", delete_recipient},
        {"PATCH", "/v1/recipients/{id}", patch_recipient},
        {"GET", "/v1/recipients", find_recipient},
        {"GET", "/v1/suppressions/{channel}/{address}", get_suppression},
        {"PUT", "/v1/suppressions/{channel}/{address}", put_suppression},
        {"DELETE", "/v1/suppressions/{channel}/{address}", delete_suppression},
        {"PATCH", "/v1/recipients/{id}/preferences", patch_preferences},
        {"POST", "/v1/recipients/{id}/consent", post_consent},
        {"GET", "/v1/recipients/{id}/consent", get_consent},
        {"POST", "/v1/campaigns/{id}/pause", post_pause},
        {"POST", "/v1/campaigns/{id}/resume", post_resume},
        {"POST", "/v1/campaigns/{id}/cancel", post_cancel},
        {"GET", "/v1/openapi.json", get_openapi},
    };
    for (size_t i = 0; i < sizeof(routes) / sizeof(routes[0]); i++) {
        int rc = http_route(srv, routes[i].method, routes[i].pattern, routes[i].fn, st);
        if (rc < 0) return rc;
    }
    return api_campaigns_register(srv, st);
}
