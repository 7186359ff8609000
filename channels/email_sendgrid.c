/*
 * email_sendgrid.c - the "email_sendgrid" channel plugin: one message becomes
 * one POST {base_url}/v3/mail/send (Twilio SendGrid Mail Send v3, JSON body,
 * Bearer API key), and the reply becomes one verdict.
 *
 * Owns its settings (read-only after create()) and, per request, the JSON
 * body and header list it hands to curl (kept in *state until release(),
 * because curl reads the body during the transfer, long after prepare()
 * returned). It never performs I/O: prepare() only fills the easy handle,
 * interpret() only reads the response. It never logs, and never keeps past
 * release(), an address, a subject or a body.
 *
 * Main invariant: a message prepare() accepts is well-formed for the
 * published spec (tsg_mail_v3.json, checked against Prism by
 * tests/e2e/test_contracts.py), and a message it refuses (no address, empty
 * subject or body, invalid UTF-8) is refused before any byte leaves; the
 * subject never carries CR or LF, so it cannot inject a header.
 *
 * Mail Send v3 has no idempotency field (tsg_mail_v3.json): the message's
 * idempotency key travels as the personalization's custom argument
 * `idempotency_key`, which SendGrid carries into every Event Webhook event
 * of the message, so a duplicate can be recognised afterwards.
 */
#include <ctype.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <curl/curl.h>
#include <jansson.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/x509.h>

#include "herald_channel.h"
#include "plugin_feedback.h"
#include "plugin_util.h"

#define SENDGRID_DEFAULT_URL "https://api.sendgrid.com"
#define SENDGRID_PATH "/v3/mail/send"
#define EMAIL_MAX 254
/* Retry-After beyond a day is a provider bug, not advice to follow. */

struct sendgrid {
    char *url;           /* {base_url}/v3/mail/send */
    char *auth;          /* "Authorization: Bearer <api_key>" */
    char *from;
    char *from_name;     /* NULL when not configured */
    char *webhook_key;   /* webhook_public_key: kept for signed event webhooks */
};

/* Per request: what curl reads while the transfer runs. */
struct sendgrid_req {
    char *body;
    struct curl_slist *headers;
};

/* ---- helpers ------------------------------------------------------------- */

static char *concat3(const char *a, const char *b, const char *c)
{
    size_t la = strlen(a), lb = strlen(b), lc = strlen(c);
    char *s = malloc(la + lb + lc + 1);
    if (!s) return NULL;
    memcpy(s, a, la);
    memcpy(s + la, b, lb);
    memcpy(s + la + lb, c, lc + 1);
    return s;
}

static bool has_ctl(const char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s < 0x20 || *s == 0x7f) return true;
    return false;
}

/* http(s)://host...: no spaces or control characters (it becomes the URL). */
static bool url_valid(const char *s)
{
    const char *rest;
    if (strncmp(s, "https://", 8) == 0) rest = s + 8;
    else if (strncmp(s, "http://", 7) == 0) rest = s + 7;
    else return false;
    if (!*rest || *rest == '/') return false;
    for (; *s; s++)
        if ((unsigned char)*s <= 0x20 || *s == 0x7f) return false;
    return true;
}

/* A deliberately plain check: local@domain.tld, no spaces, no brackets. */
static bool email_valid(const char *s)
{
    size_t n = strlen(s);
    if (n < 3 || n > EMAIL_MAX) return false;
    const char *at = strchr(s, '@');
    if (!at || at == s || strchr(at + 1, '@')) return false;
    const char *dom = at + 1;
    if (!*dom || *dom == '.' || s[n - 1] == '.' || !strchr(dom, '.')) return false;
    for (const char *p = s; *p; p++) {
        unsigned char c = (unsigned char)*p;
        if (c <= 0x20 || c == 0x7f || strchr("<>()[]\\,;:\"", c)) return false;
    }
    return true;
}

/* The event webhook's verification key as SendGrid shows it: base64 of a
 * DER SubjectPublicKeyInfo holding an EC P-256 key (feedback() verifies
 * the signed events with it); checked here so that a wrong key is a config
 * error, not a silent 403. */
static bool webhook_key_valid(const char *v)
{
    size_t n = strlen(v);
    if (n == 0 || n % 4 || n > 4096) return false;
    unsigned char *der = malloc(n / 4 * 3 + 1);
    if (!der) return false;
    int len = EVP_DecodeBlock(der, (const unsigned char *)v, (int)n);
    bool ok = false;
    if (len > 0) {
        if (v[n - 1] == '=') len--;
        if (v[n - 2] == '=') len--;
        const unsigned char *p = der;
        EVP_PKEY *pk = d2i_PUBKEY(NULL, &p, len);
        ok = pk && p == der + len && EVP_PKEY_base_id(pk) == EVP_PKEY_EC && EVP_PKEY_bits(pk) == 256;
        EVP_PKEY_free(pk);
    }
    free(der);
    ERR_clear_error();
    return ok;
}

/* ---- create / destroy ---------------------------------------------------- */

enum { K_BASE_URL, K_API_KEY, K_FROM, K_FROM_NAME, K_WEBHOOK_KEY, K_COUNT };
static const char *const keys[K_COUNT] = {"base_url", "api_key", "from", "from_name", "webhook_public_key"};

static void sendgrid_destroy(void *instance)
{
    struct sendgrid *sg = instance;
    if (!sg) return;
    free(sg->url);
    free(sg->auth);
    free(sg->from);
    free(sg->from_name);
    free(sg->webhook_key);
    free(sg);
}

static int sendgrid_create(const struct herald_host *host, const struct herald_setting *settings, size_t n,
                           void **instance)
{
    const char *val[K_COUNT] = {0};
    int bad = 0;
    for (size_t i = 0; i < n; i++) {
        int k = plugin_setting_key(host, settings, i, keys, K_COUNT, val,
                                   "email_sendgrid takes base_url, api_key, from, from_name, webhook_public_key");
        if (k < 0) {
            bad = 1;
            continue;
        }
        const char *v = settings[i].value;
        switch (k) {
        case K_BASE_URL:
            if (!url_valid(v)) {
                host->setting_error(host->ctx, i, "must be an http:// or https:// URL (default %s)",
                                    SENDGRID_DEFAULT_URL);
                bad = 1;
            }
            break;
        case K_API_KEY:
            /* It becomes a header: nothing that could end or split it. */
            if (!v[0] || has_ctl(v) || strchr(v, ' ')) {
                host->setting_error(host->ctx, i, "must be a non-empty key without spaces or control characters");
                bad = 1;
            }
            break;
        case K_FROM:
            if (!email_valid(v)) {
                host->setting_error(host->ctx, i, "must be a valid email address (a verified sender)");
                bad = 1;
            }
            break;
        case K_FROM_NAME:
            if (has_ctl(v)) {
                host->setting_error(host->ctx, i, "must not contain control characters");
                bad = 1;
            }
            break;
        case K_WEBHOOK_KEY:
            if (!webhook_key_valid(v)) {
                host->setting_error(host->ctx, i,
                                    "must be the event webhook's verification key: base64 of an EC P-256 "
                                    "public key (DER), as SendGrid shows it");
                bad = 1;
            }
            break;
        }
    }
    if (!val[K_API_KEY]) {
        host->setting_missing(host->ctx, "api_key", "missing: the SendGrid API key (api_key = SG.xxxx)");
        bad = 1;
    }
    if (!val[K_FROM]) {
        host->setting_missing(host->ctx, "from", "missing: the verified sender address (from = news@example.com)");
        bad = 1;
    }
    if (bad) return -1;

    struct sendgrid *sg = calloc(1, sizeof(*sg));
    if (!sg) goto oom;
    /* A trailing slash would double the one of the path. */
    const char *base = val[K_BASE_URL] ? val[K_BASE_URL] : SENDGRID_DEFAULT_URL;
    size_t blen = strlen(base);
    while (blen > 0 && base[blen - 1] == '/') blen--;
    char *b = strndup(base, blen);
    sg->url = b ? concat3(b, SENDGRID_PATH, "") : NULL;
    free(b);
    sg->auth = concat3("Authorization: Bearer ", val[K_API_KEY], "");
    sg->from = strdup(val[K_FROM]);
    if (val[K_FROM_NAME] && val[K_FROM_NAME][0]) sg->from_name = strdup(val[K_FROM_NAME]);
    if (val[K_WEBHOOK_KEY]) sg->webhook_key = strdup(val[K_WEBHOOK_KEY]);
    if (!sg->url || !sg->auth || !sg->from || (val[K_FROM_NAME] && val[K_FROM_NAME][0] && !sg->from_name) ||
        (val[K_WEBHOOK_KEY] && !sg->webhook_key))
        goto oom;
    *instance = sg;
    return 0;
oom:
    sendgrid_destroy(sg);
    host->setting_error(host->ctx, HERALD_SETTING_NONE, "out of memory");
    return -1;
}

/* ---- prepare ------------------------------------------------------------- */

static void refuse(char *reason, size_t len, const char *why)
{
    if (len) snprintf(reason, len, "%s", why);
}

/* The subject with every CR/LF run turned into one space: a folded or
 * injected header line cannot survive into the message. */
static char *one_line(const char *s)
{
    size_t n = strlen(s);
    char *o = malloc(n + 1);
    if (!o) return NULL;
    size_t j = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '\r' || s[i] == '\n') {
            if (j > 0 && o[j - 1] != ' ') o[j++] = ' ';
            continue;
        }
        o[j++] = s[i];
    }
    o[j] = '\0';
    return o;
}

static bool blank(const char *s)
{
    if (!s) return true;
    for (; *s; s++)
        if (!isspace((unsigned char)*s)) return false;
    return true;
}

/* Adds key: s; false when s is not valid UTF-8 (jansson refuses it). */
static bool put(json_t *o, const char *key, const char *s)
{
    json_t *j = json_string(s);
    return j && json_object_set_new(o, key, j) == 0;
}

static json_t *part(const char *type, const char *value)
{
    json_t *p = json_object();
    if (p && put(p, "type", type) && put(p, "value", value)) return p;
    json_decref(p);
    return NULL;
}

/* The Mail Send body. NULL when a string is not valid UTF-8. */
static char *render(const struct sendgrid *sg, const struct herald_message *m, const char *subject)
{
    json_t *root = json_object();
    json_t *pers = json_object(), *to = json_object(), *from = json_object();
    json_t *content = json_array(), *args = json_object();
    char *out = NULL;
    bool ok = root && pers && to && from && content && args;

    /* custom_args go in the personalization: the spec types them as an
     * object there (the message-level custom_args is typed as a string). */
    ok = ok && put(to, "email", m->to) && put(args, "campaign", m->campaign ? m->campaign : "") &&
         put(args, "recipient", m->recipient ? m->recipient : "") &&
         (!m->idempotency_key || put(args, "idempotency_key", m->idempotency_key));
    ok = ok && json_object_set_new(pers, "to", json_pack("[O]", to)) == 0 &&
         json_object_set(pers, "custom_args", args) == 0;
    ok = ok && json_object_set_new(root, "personalizations", json_pack("[O]", pers)) == 0;
    ok = ok && put(from, "email", sg->from) && (!sg->from_name || put(from, "name", sg->from_name)) &&
         json_object_set(root, "from", from) == 0;
    ok = ok && put(root, "subject", subject);
    /* text/plain first: the spec (and RFC 2046) want the richest part last. */
    if (ok && !blank(m->text)) ok = json_array_append_new(content, part("text/plain", m->text)) == 0;
    if (ok && !blank(m->html)) ok = json_array_append_new(content, part("text/html", m->html)) == 0;
    ok = ok && json_object_set(root, "content", content) == 0;
    if (ok && m->unsubscribe_url && m->unsubscribe_url[0]) {
        /* RFC 8058 one-click unsubscribe. The URL is ours (signed); angle
         * brackets or line breaks in it would break the header. */
        if (has_ctl(m->unsubscribe_url) || strpbrk(m->unsubscribe_url, "<>")) {
            ok = false;
        } else {
            char *lu = concat3("<", m->unsubscribe_url, ">");
            json_t *h = json_object();
            ok = lu && h && put(h, "List-Unsubscribe", lu) &&
                 put(h, "List-Unsubscribe-Post", "List-Unsubscribe=One-Click") &&
                 json_object_set(root, "headers", h) == 0;
            json_decref(h);
            free(lu);
        }
    }
    if (ok) out = json_dumps(root, JSON_COMPACT);
    json_decref(root);
    json_decref(pers);
    json_decref(to);
    json_decref(from);
    json_decref(content);
    json_decref(args);
    return out;
}

static void sendgrid_release(void *instance, void *state)
{
    (void)instance;
    struct sendgrid_req *r = state;
    if (!r) return;
    curl_slist_free_all(r->headers);
    free(r->body);
    free(r);
}


static int sendgrid_prepare(void *instance, const struct herald_message *msg, void *curl, void **state,
                            char *reason, size_t reasonlen)
{
    struct sendgrid *sg = instance;
    *state = NULL;
    if (!msg->to || !msg->to[0]) {
        refuse(reason, reasonlen, "no_address");
        return -1;
    }
    if (!email_valid(msg->to)) {
        refuse(reason, reasonlen, "invalid_address");
        return -1;
    }
    if (blank(msg->text) && blank(msg->html)) {
        refuse(reason, reasonlen, "empty_body");
        return -1;
    }
    char *subject = msg->subject ? one_line(msg->subject) : NULL;
    if (blank(subject)) {
        free(subject);
        refuse(reason, reasonlen, "empty_subject");
        return -1;
    }
    char *body = render(sg, msg, subject);
    free(subject);
    if (!body) {
        refuse(reason, reasonlen, "invalid_content"); /* not UTF-8, or a malformed unsubscribe URL */
        return -1;
    }

    struct sendgrid_req *r = calloc(1, sizeof(*r));
    if (!r) {
        free(body);
        refuse(reason, reasonlen, "out_of_memory");
        return -1;
    }
    r->body = body;
    bool ok = true;
    r->headers = plugin_add_header(r->headers, sg->auth, &ok);
    r->headers = plugin_add_header(r->headers, "Content-Type: application/json", &ok);
    r->headers = plugin_add_header(r->headers, "Accept: application/json", &ok);
    r->headers = plugin_add_header(r->headers, "Expect:", &ok); /* no 100-continue round trip */
    CURL *h = curl;
    ok = ok && curl_easy_setopt(h, CURLOPT_URL, sg->url) == CURLE_OK &&
         curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https") == CURLE_OK &&
         curl_easy_setopt(h, CURLOPT_POST, 1L) == CURLE_OK &&
         curl_easy_setopt(h, CURLOPT_POSTFIELDS, r->body) == CURLE_OK &&
         curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE, (long)strlen(r->body)) == CURLE_OK &&
         curl_easy_setopt(h, CURLOPT_HTTPHEADER, r->headers) == CURLE_OK;
    if (!ok) {
        sendgrid_release(instance, r);
        refuse(reason, reasonlen, "curl_setup_failed");
        return -1;
    }
    *state = r;
    return 0;
}

/* ---- interpret ----------------------------------------------------------- */



static void sendgrid_interpret(void *instance, void *state, const struct herald_response *resp,
                               struct herald_verdict *v)
{
    (void)instance;
    (void)state;
    if (plugin_http_verdict(resp, v) == HERALD_VERDICT_ACCEPTED &&
        !plugin_header_value(resp, "X-Message-Id", v->provider_id, sizeof(v->provider_id)))
        snprintf(v->provider_id, sizeof(v->provider_id), "sendgrid:%ld", resp->status);
}

/* ---- feedback: the signed Event Webhook ----------------------------------- */

/* Timestamps further from now than this are refused (replays). SendGrid
 * retries a failed post for up to 24 hours. */
#define SG_MAX_AGE_S (48 * 3600)
#define SG_MAX_AHEAD_S 600
#define SG_MAX_EVENTS 10000
#define SG_SIG_HEADER "X-Twilio-Email-Event-Webhook-Signature"
#define SG_TS_HEADER "X-Twilio-Email-Event-Webhook-Timestamp"

static const char *const sg_feedback_headers[] = {SG_SIG_HEADER, SG_TS_HEADER, NULL};

static int fb_msg(char *err, size_t errlen, int status, const char *msg)
{
    if (errlen) snprintf(err, errlen, "%s", msg);
    return status;
}

/* A refused batch, naming the event by its index and what is wrong. */
static int fb_fail(char *err, size_t errlen, size_t i, const char *what)
{
    if (errlen) snprintf(err, errlen, "events[%zu]%s", i, what);
    return HERALD_FEEDBACK_INVALID;
}

/* What an event asks for. A bounce is hard unless its type is "blocked"
 * (SendGrid's temporary, reputation-based kind); "dropped" (SendGrid will
 * not send to the address: bounced before, invalid, unsubscribed) is
 * recorded as a hard bounce, as it always suppressed the address. */
static enum herald_feedback_kind sg_kind(const char *event, const char *type, const char **detail)
{
    *detail = event;
    if (strcmp(event, "delivered") == 0) return HERALD_FEEDBACK_DELIVERED;
    if (strcmp(event, "bounce") == 0) {
        if (type && strcmp(type, "blocked") == 0) {
            *detail = "blocked";
            return HERALD_FEEDBACK_BOUNCED_SOFT;
        }
        return HERALD_FEEDBACK_BOUNCED_HARD;
    }
    if (strcmp(event, "dropped") == 0) return HERALD_FEEDBACK_BOUNCED_HARD;
    if (strcmp(event, "spamreport") == 0) return HERALD_FEEDBACK_COMPLAINED;
    if (strcmp(event, "unsubscribe") == 0 || strcmp(event, "group_unsubscribe") == 0)
        return HERALD_FEEDBACK_UNSUBSCRIBED;
    return HERALD_FEEDBACK_IGNORED;
}

static bool email_usable(const char *s)
{
    return s && strlen(s) >= 3 && strlen(s) <= EMAIL_MAX && strchr(s, '@') && !has_ctl(s);
}

/* Reads the verified body: a JSON array of at most SG_MAX_EVENTS objects,
 * each with a string "event"; one that asks for something also has an
 * "sg_event_id", and one that suppresses an "email". */
static int sg_events(const struct herald_feedback_request *req, char *err, size_t errlen)
{
    json_error_t jerr;
    /* jerr.text may quote the input (an address): only its position is used. */
    json_t *root = json_loadb(req->body, req->body_len, 0, &jerr);
    if (!root) {
        if (errlen) snprintf(err, errlen, "body: not valid JSON (line %d, column %d)", jerr.line, jerr.column);
        return HERALD_FEEDBACK_INVALID;
    }
    int rc = HERALD_FEEDBACK_OK;
    size_t n = json_is_array(root) ? json_array_size(root) : 0;
    if (!json_is_array(root)) rc = fb_msg(err, errlen, HERALD_FEEDBACK_INVALID, "body: must be a JSON array of events");
    else if (n > SG_MAX_EVENTS) rc = fb_msg(err, errlen, HERALD_FEEDBACK_INVALID, "body: more than 10000 events");
    for (size_t i = 0; rc == HERALD_FEEDBACK_OK && i < n; i++) {
        json_t *ev = json_array_get(root, i);
        const char *event = json_string_value(json_object_get(ev, "event"));
        if (!json_is_object(ev)) {
            rc = fb_fail(err, errlen, i, ": must be an object");
            break;
        }
        if (!event) {
            rc = fb_fail(err, errlen, i, ".event: must be a string");
            break;
        }
        struct herald_feedback_event fe = {.channel = "email"};
        fe.kind = sg_kind(event, json_string_value(json_object_get(ev, "type")), &fe.detail);
        if (fe.kind == HERALD_FEEDBACK_IGNORED) {
            req->emit(req->ectx, &fe);
            continue;
        }
        fe.event_id = json_string_value(json_object_get(ev, "sg_event_id"));
        if (!pfb_id_valid(fe.event_id, 128)) {
            rc = fb_fail(err, errlen, i, ".sg_event_id: must be an event id");
            break;
        }
        const char *email = json_string_value(json_object_get(ev, "email"));
        bool suppresses = fe.kind == HERALD_FEEDBACK_BOUNCED_HARD || fe.kind == HERALD_FEEDBACK_COMPLAINED ||
                          fe.kind == HERALD_FEEDBACK_UNSUBSCRIBED;
        if (email_usable(email)) fe.address = email;
        else if (suppresses) {
            rc = fb_fail(err, errlen, i, ".email: must be an email address");
            break;
        }
        /* sg_message_id is the X-Message-Id of the send, then ".filter...". */
        char pid[128] = "";
        const char *mid = json_string_value(json_object_get(ev, "sg_message_id"));
        if (mid) {
            const char *cut = strstr(mid, ".filter");
            size_t len = cut ? (size_t)(cut - mid) : strlen(mid);
            if (len < sizeof(pid)) memcpy(pid, mid, len), pid[len] = '\0';
            if (!pfb_id_valid(pid, sizeof(pid) - 1)) {
                rc = fb_fail(err, errlen, i, ".sg_message_id: must be a message id");
                break;
            }
            fe.provider_id = pid;
        }
        /* Our custom_args come back as fields of the event. */
        fe.campaign = json_string_value(json_object_get(ev, "campaign"));
        fe.recipient = json_string_value(json_object_get(ev, "recipient"));
        json_t *ts = json_object_get(ev, "timestamp");
        if (json_is_integer(ts) && json_integer_value(ts) > 0) fe.at = (int64_t)json_integer_value(ts);
        req->emit(req->ectx, &fe);
    }
    json_decref(root);
    return rc;
}

static int sendgrid_feedback(void *instance, const struct herald_feedback_request *req,
                             struct herald_feedback_reply *reply, char *err, size_t errlen)
{
    struct sendgrid *sg = instance;
    (void)reply; /* SendGrid wants a 2xx only: the daemon's JSON summary */
    if (!sg->webhook_key)
        return fb_msg(err, errlen, HERALD_FEEDBACK_FORBIDDEN, "no webhook_public_key is configured: events are refused");
    const char *sig = req->header(req->hctx, SG_SIG_HEADER);
    const char *ts = req->header(req->hctx, SG_TS_HEADER);
    if (!sig || !ts) return fb_msg(err, errlen, HERALD_FEEDBACK_UNSIGNED, "signature required");
    long long t = pfb_parse_unix(ts);
    if (t < 0 || t < req->now - SG_MAX_AGE_S || t > req->now + SG_MAX_AHEAD_S)
        return fb_msg(err, errlen, HERALD_FEEDBACK_FORBIDDEN, "timestamp outside the accepted window");
    if (!pfb_ecdsa_verify(sg->webhook_key, ts, req->body, req->body_len, sig))
        return fb_msg(err, errlen, HERALD_FEEDBACK_FORBIDDEN, "signature does not verify");
    return sg_events(req, err, errlen);
}

static const struct herald_channel_plugin sendgrid_plugin = {
    .abi_version = HERALD_CHANNEL_ABI_VERSION,
    .size = sizeof(struct herald_channel_plugin),
    .name = "email_sendgrid",
    .channels = "email",
    .create = sendgrid_create,
    .destroy = sendgrid_destroy,
    .prepare = sendgrid_prepare,
    .interpret = sendgrid_interpret,
    .release = sendgrid_release,
    .deliver = NULL,
    .feedback = sendgrid_feedback,
    .feedback_route = "sendgrid",
    .feedback_headers = sg_feedback_headers,
};

HERALD_EXPORT const struct herald_channel_plugin *herald_channel_plugin(void) { return &sendgrid_plugin; }
