/*
 * sms_twilio.c - the "sms_twilio" channel plugin: one message becomes one
 * POST {base_url}/2010-04-01/Accounts/{AccountSid}/Messages.json (Twilio
 * Programmable Messaging, form-encoded, HTTP Basic auth), and the reply
 * becomes one verdict.
 *
 * Owns its settings (read-only after create()) and, per request, the form
 * body and header list it hands to curl (kept in *state until release(),
 * because curl reads the body during the transfer). It never performs I/O:
 * prepare() only fills the easy handle, interpret() only reads the
 * response. It never logs, and never keeps past release(), a phone number
 * or a body.
 *
 * Main invariant: a message prepare() accepts has an E.164 destination
 * (+, 8 to 15 digits, the first not 0) and a body of 1 to 1600 characters;
 * anything else is refused before any byte leaves. The published spec is
 * looser than the live API on both, so the stricter rules are ours, and
 * tested here and in tests/unit/test_providers.c.
 *
 * The message's idempotency key is not sent: the Messages resource takes
 * no idempotency parameter (twilio_api_v2010.json has IdempotencyKey only
 * on Payments and UserDefinedMessages), and an unknown form field would be
 * outside the published contract.
 */
#include <ctype.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <curl/curl.h>
#include <jansson.h>

#include "herald_channel.h"
#include "plugin_feedback.h"
#include "plugin_util.h"

#define TWILIO_DEFAULT_URL "https://api.twilio.com"
#define TWILIO_BODY_MAX 1600 /* characters (Unicode code points) */

struct twilio {
    char *url;          /* {base_url}/2010-04-01/Accounts/{sid}/Messages.json */
    char *account_sid;
    char *auth_token;
    char *from;         /* exactly one of from and service_sid is set */
    char *service_sid;
};

struct twilio_req {
    char *body;
    struct curl_slist *headers;
};

/* ---- helpers ------------------------------------------------------------- */

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

/* prefix followed by exactly 32 hex digits (^AC[0-9a-fA-F]{32}$ and kin). */
static bool sid_valid(const char *s, const char *prefix)
{
    size_t pl = strlen(prefix);
    if (strncmp(s, prefix, pl) != 0 || strlen(s) != pl + 32) return false;
    for (s += pl; *s; s++)
        if (!isxdigit((unsigned char)*s)) return false;
    return true;
}

/* E.164: '+', then 8 to 15 digits, the first not 0. */
static bool e164_valid(const char *s)
{
    if (!s || s[0] != '+' || s[1] < '1' || s[1] > '9') return false;
    size_t n = 0;
    for (s++; *s; s++, n++)
        if (*s < '0' || *s > '9') return false;
    return n >= 8 && n <= 15;
}

/* Characters as Twilio counts them: code points, i.e. non-continuation bytes. */
static size_t utf8_chars(const char *s)
{
    size_t n = 0;
    for (; *s; s++)
        if (((unsigned char)*s & 0xC0) != 0x80) n++;
    return n;
}

static bool blank(const char *s)
{
    if (!s) return true;
    for (; *s; s++)
        if (!isspace((unsigned char)*s)) return false;
    return true;
}

static void refuse(char *reason, size_t len, const char *why)
{
    if (len) snprintf(reason, len, "%s", why);
}

/* ---- create / destroy ---------------------------------------------------- */

enum { K_BASE_URL, K_ACCOUNT_SID, K_AUTH_TOKEN, K_FROM, K_SERVICE_SID, K_COUNT };
static const char *const keys[K_COUNT] = {"base_url", "account_sid", "auth_token", "from", "messaging_service_sid"};

static void twilio_destroy(void *instance)
{
    struct twilio *t = instance;
    if (!t) return;
    free(t->url);
    free(t->account_sid);
    free(t->auth_token);
    free(t->from);
    free(t->service_sid);
    free(t);
}

static int twilio_create(const struct herald_host *host, const struct herald_setting *settings, size_t n,
                         void **instance)
{
    const char *val[K_COUNT] = {0};
    size_t idx[K_COUNT] = {0};
    int bad = 0;
    for (size_t i = 0; i < n; i++) {
        int k = plugin_setting_key(host, settings, i, keys, K_COUNT, val,
                                   "sms_twilio takes base_url, account_sid, auth_token, from, messaging_service_sid");
        if (k < 0) {
            bad = 1;
            continue;
        }
        const char *v = settings[i].value;
        idx[k] = i;
        switch (k) {
        case K_BASE_URL:
            if (!url_valid(v)) {
                host->setting_error(host->ctx, i, "must be an http:// or https:// URL (default %s)",
                                    TWILIO_DEFAULT_URL);
                bad = 1;
            }
            break;
        case K_ACCOUNT_SID:
            if (!sid_valid(v, "AC")) {
                host->setting_error(host->ctx, i, "must be AC followed by 32 hexadecimal digits");
                bad = 1;
            }
            break;
        case K_AUTH_TOKEN:
            if (!v[0]) {
                host->setting_error(host->ctx, i, "must not be empty");
                bad = 1;
            }
            break;
        case K_FROM:
            if (!e164_valid(v)) {
                host->setting_error(host->ctx, i, "must be an E.164 number (+ and 8 to 15 digits)");
                bad = 1;
            }
            break;
        case K_SERVICE_SID:
            if (!sid_valid(v, "MG")) {
                host->setting_error(host->ctx, i, "must be MG followed by 32 hexadecimal digits");
                bad = 1;
            }
            break;
        }
    }
    if (!val[K_ACCOUNT_SID]) {
        host->setting_missing(host->ctx, "account_sid", "missing: the Twilio account SID (account_sid = AC...)");
        bad = 1;
    }
    if (!val[K_AUTH_TOKEN]) {
        host->setting_missing(host->ctx, "auth_token", "missing: the Twilio auth token");
        bad = 1;
    }
    if (val[K_FROM] && val[K_SERVICE_SID]) {
        size_t later = idx[K_FROM] > idx[K_SERVICE_SID] ? idx[K_FROM] : idx[K_SERVICE_SID];
        host->setting_error(host->ctx, later, "give either from or messaging_service_sid, not both");
        bad = 1;
    } else if (!val[K_FROM] && !val[K_SERVICE_SID]) {
        host->setting_missing(host->ctx, "from",
                              "missing: the sender, from = +15551234567 or messaging_service_sid = MG...");
        bad = 1;
    }
    if (bad) return -1;

    struct twilio *t = calloc(1, sizeof(*t));
    if (!t) goto oom;
    const char *base = val[K_BASE_URL] ? val[K_BASE_URL] : TWILIO_DEFAULT_URL;
    size_t blen = strlen(base);
    while (blen > 0 && base[blen - 1] == '/') blen--;
    static const char p1[] = "/2010-04-01/Accounts/", p2[] = "/Messages.json";
    size_t slen = strlen(val[K_ACCOUNT_SID]);
    t->url = malloc(blen + sizeof(p1) - 1 + slen + sizeof(p2));
    if (t->url) {
        char *w = t->url;
        memcpy(w, base, blen);
        w += blen;
        memcpy(w, p1, sizeof(p1) - 1);
        w += sizeof(p1) - 1;
        memcpy(w, val[K_ACCOUNT_SID], slen);
        w += slen;
        memcpy(w, p2, sizeof(p2));
    }
    t->account_sid = strdup(val[K_ACCOUNT_SID]);
    t->auth_token = strdup(val[K_AUTH_TOKEN]);
    if (val[K_FROM]) t->from = strdup(val[K_FROM]);
    else t->service_sid = strdup(val[K_SERVICE_SID]);
    if (!t->url || !t->account_sid || !t->auth_token || (!t->from && !t->service_sid)) goto oom;
    *instance = t;
    return 0;
oom:
    twilio_destroy(t);
    host->setting_error(host->ctx, HERALD_SETTING_NONE, "out of memory");
    return -1;
}

/* ---- prepare ------------------------------------------------------------- */

/* Appends [&]name=escaped(value) to the growing form; false on failure. */
static bool form_add(CURL *h, char **form, size_t *len, const char *name, const char *value)
{
    char *esc = curl_easy_escape(h, value, 0);
    if (!esc) return false;
    size_t nl = strlen(name), el = strlen(esc), sep = *len ? 1 : 0;
    char *f = realloc(*form, *len + sep + nl + 1 + el + 1);
    if (!f) {
        curl_free(esc);
        return false;
    }
    char *w = f + *len;
    if (sep) *w++ = '&';
    memcpy(w, name, nl);
    w += nl;
    *w++ = '=';
    memcpy(w, esc, el + 1);
    *len += sep + nl + 1 + el;
    *form = f;
    curl_free(esc);
    return true;
}

static void twilio_release(void *instance, void *state)
{
    (void)instance;
    struct twilio_req *r = state;
    if (!r) return;
    curl_slist_free_all(r->headers);
    free(r->body);
    free(r);
}


static int twilio_prepare(void *instance, const struct herald_message *msg, void *curl, void **state,
                          char *reason, size_t reasonlen)
{
    struct twilio *t = instance;
    CURL *h = curl;
    *state = NULL;
    if (!msg->to || !msg->to[0]) {
        refuse(reason, reasonlen, "no_address");
        return -1;
    }
    if (!e164_valid(msg->to)) {
        refuse(reason, reasonlen, "invalid_phone");
        return -1;
    }
    if (blank(msg->text)) {
        refuse(reason, reasonlen, "empty_body");
        return -1;
    }
    if (utf8_chars(msg->text) > TWILIO_BODY_MAX) {
        refuse(reason, reasonlen, "body_too_long");
        return -1;
    }

    struct twilio_req *r = calloc(1, sizeof(*r));
    if (!r) {
        refuse(reason, reasonlen, "out_of_memory");
        return -1;
    }
    size_t len = 0;
    bool ok = form_add(h, &r->body, &len, "To", msg->to) &&
              (t->from ? form_add(h, &r->body, &len, "From", t->from)
                       : form_add(h, &r->body, &len, "MessagingServiceSid", t->service_sid)) &&
              form_add(h, &r->body, &len, "Body", msg->text) &&
              /* ABI 2: the daemon asks for status callbacks (`feedback = on`). */
              (!msg->status_url || form_add(h, &r->body, &len, "StatusCallback", msg->status_url));
    r->headers = plugin_add_header(r->headers, "Content-Type: application/x-www-form-urlencoded", &ok);
    r->headers = plugin_add_header(r->headers, "Accept: application/json", &ok);
    r->headers = plugin_add_header(r->headers, "Expect:", &ok); /* no 100-continue round trip */
    ok = ok && curl_easy_setopt(h, CURLOPT_URL, t->url) == CURLE_OK &&
         curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https") == CURLE_OK &&
         curl_easy_setopt(h, CURLOPT_HTTPAUTH, (long)CURLAUTH_BASIC) == CURLE_OK &&
         curl_easy_setopt(h, CURLOPT_USERNAME, t->account_sid) == CURLE_OK &&
         curl_easy_setopt(h, CURLOPT_PASSWORD, t->auth_token) == CURLE_OK &&
         curl_easy_setopt(h, CURLOPT_POST, 1L) == CURLE_OK &&
         curl_easy_setopt(h, CURLOPT_POSTFIELDS, r->body) == CURLE_OK &&
         curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE, (long)len) == CURLE_OK &&
         curl_easy_setopt(h, CURLOPT_HTTPHEADER, r->headers) == CURLE_OK;
    if (!ok) {
        twilio_release(instance, r);
        refuse(reason, reasonlen, "curl_setup_failed");
        return -1;
    }
    *state = r;
    return 0;
}

/* ---- interpret ----------------------------------------------------------- */



/* Printable ASCII of s into out (ids end up in audit records and logs). */
static void copy_id(char *out, size_t outlen, const char *s)
{
    size_t j = 0;
    for (; *s && j + 1 < outlen; s++)
        if ((unsigned char)*s > 0x20 && (unsigned char)*s < 0x7f) out[j++] = *s;
    out[j] = '\0';
}

static json_t *parse_body(const struct herald_response *resp)
{
    if (!resp->body || !resp->body_len) return NULL;
    json_t *j = json_loadb(resp->body, resp->body_len, 0, NULL);
    if (j && !json_is_object(j)) {
        json_decref(j);
        return NULL;
    }
    return j;
}

static void twilio_interpret(void *instance, void *state, const struct herald_response *resp,
                             struct herald_verdict *v)
{
    (void)instance;
    (void)state;
    int kind = plugin_http_verdict(resp, v);
    if (kind == HERALD_VERDICT_ACCEPTED) {
        json_t *j = parse_body(resp);
        const char *sid = j ? json_string_value(json_object_get(j, "sid")) : NULL;
        if (sid) copy_id(v->provider_id, sizeof(v->provider_id), sid);
        if (!v->provider_id[0]) snprintf(v->provider_id, sizeof(v->provider_id), "twilio:%ld", resp->status);
        json_decref(j);
    } else if (kind == HERALD_VERDICT_REJECTED) {
        /* Twilio's own error code says more than the status. */
        json_t *j = parse_body(resp);
        json_t *code = j ? json_object_get(j, "code") : NULL;
        if (json_is_integer(code))
            snprintf(v->reason, sizeof(v->reason), "twilio_%lld", (long long)json_integer_value(code));
        json_decref(j);
    }
}

/* ---- feedback: status callbacks and inbound SMS ------------------------ */

#define TWIML_EMPTY "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Response/>"
#define TWIML_HELP                                                                                        \
    "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Response><Message>Reply STOP to stop these messages, START " \
    "to receive them again.</Message></Response>"

static const char *const tw_feedback_headers[] = {"X-Twilio-Signature", NULL};

static int tw_fail(char *err, size_t errlen, int status, const char *msg)
{
    if (errlen) snprintf(err, errlen, "%s", msg);
    return status;
}

static void twiml(struct herald_feedback_reply *reply, const char *xml)
{
    snprintf(reply->content_type, sizeof(reply->content_type), "text/xml; charset=utf-8");
    snprintf(reply->body, sizeof(reply->body), "%s", xml);
}

/* A message status callback (MessageStatus, no Body): delivered,
 * undelivered and failed are events; queued, sent and the like ask for
 * nothing. The event id is the MessageSid and the status, so that the
 * same status posted again is a duplicate and the next one is not. */
static int tw_status(const struct herald_feedback_request *req, const struct pfb_form *f, const char *status,
                     char *err, size_t errlen)
{
    const char *sid = pfb_form_get(f, "MessageSid");
    if (!sid) sid = pfb_form_get(f, "SmsSid");
    if (!pfb_twilio_sid_valid(sid))
        return tw_fail(err, errlen, HERALD_FEEDBACK_INVALID, "MessageSid: missing, or not a Twilio sid (two letters and 32 hex digits)");
    struct herald_feedback_event fe = {.channel = "sms", .provider_id = sid, .at = req->now};
    if (strcmp(status, "delivered") == 0) fe.kind = HERALD_FEEDBACK_DELIVERED;
    else if (strcmp(status, "undelivered") == 0) fe.kind = HERALD_FEEDBACK_UNDELIVERED;
    else if (strcmp(status, "failed") == 0) fe.kind = HERALD_FEEDBACK_FAILED;
    if (fe.kind == HERALD_FEEDBACK_IGNORED) {
        req->emit(req->ectx, &(struct herald_feedback_event){.kind = HERALD_FEEDBACK_IGNORED});
        return HERALD_FEEDBACK_OK;
    }
    char id[48], detail[24];
    snprintf(id, sizeof(id), "%s:%s", sid, status);
    fe.event_id = id;
    /* Twilio's error code (30003: unreachable, ...) says why. */
    const char *code = pfb_form_get(f, "ErrorCode");
    if (code && pfb_parse_unix(code) > 0 && strlen(code) <= 8) {
        snprintf(detail, sizeof(detail), "twilio_%s", code);
        fe.detail = detail;
    } else {
        fe.detail = status;
    }
    req->emit(req->ectx, &fe);
    return HERALD_FEEDBACK_OK;
}

/* An inbound SMS: STOP-like keywords, START/UNSTOP and HELP are events
 * about the sender's number; any other text asks for nothing. */
static int tw_inbound(const struct herald_feedback_request *req, const struct pfb_form *f,
                      struct herald_feedback_reply *reply, char *err, size_t errlen)
{
    enum pfb_keyword kw = pfb_sms_keyword(pfb_form_get(f, "Body"), pfb_form_get(f, "OptOutType"));
    const char *from = pfb_form_get(f, "From");
    twiml(reply, kw == PFB_KW_HELP ? TWIML_HELP : TWIML_EMPTY);
    if (kw == PFB_KW_NONE || !from || !from[0]) {
        req->emit(req->ectx, &(struct herald_feedback_event){.kind = HERALD_FEEDBACK_IGNORED});
        return HERALD_FEEDBACK_OK;
    }
    const char *sid = pfb_form_get(f, "MessageSid");
    if (!sid) sid = pfb_form_get(f, "SmsSid");
    if (!pfb_twilio_sid_valid(sid))
        return tw_fail(err, errlen, HERALD_FEEDBACK_INVALID, "MessageSid: missing, or not a Twilio sid (two letters and 32 hex digits)");
    struct herald_feedback_event fe = {
        .kind = kw == PFB_KW_STOP ? HERALD_FEEDBACK_KEYWORD_STOP
                : kw == PFB_KW_START ? HERALD_FEEDBACK_KEYWORD_START : HERALD_FEEDBACK_KEYWORD_HELP,
        .event_id = sid, .channel = "sms", .address = from, .at = req->now,
    };
    req->emit(req->ectx, &fe);
    return HERALD_FEEDBACK_OK;
}

/* X-Twilio-Signature: base64 HMAC-SHA1 with the auth token over the URL
 * Twilio called and the sorted parameters. Without a public_url herald
 * cannot know that URL: every request is refused. */
static int twilio_feedback(void *instance, const struct herald_feedback_request *req,
                           struct herald_feedback_reply *reply, char *err, size_t errlen)
{
    struct twilio *t = instance;
    if (!req->url)
        return tw_fail(err, errlen, HERALD_FEEDBACK_FORBIDDEN, "no public_url is configured: requests are refused");
    const char *sig = req->header(req->hctx, "X-Twilio-Signature");
    if (!sig) return tw_fail(err, errlen, HERALD_FEEDBACK_UNSIGNED, "signature required");
    struct pfb_form f;
    if (pfb_form_parse(req->body, req->body_len, &f, err, errlen) < 0) return HERALD_FEEDBACK_INVALID;
    size_t len = 0;
    char *text = pfb_twilio_signed_text(req->url, &f, &len);
    bool ok = text && pfb_twilio_verify(t->auth_token, text, len, sig);
    free(text);
    int rc;
    if (!ok) rc = tw_fail(err, errlen, HERALD_FEEDBACK_FORBIDDEN, "signature does not verify");
    else if (pfb_form_get(&f, "MessageStatus") && !pfb_form_get(&f, "Body"))
        rc = tw_status(req, &f, pfb_form_get(&f, "MessageStatus"), err, errlen);
    else rc = tw_inbound(req, &f, reply, err, errlen);
    pfb_form_free(&f);
    return rc;
}

static const struct herald_channel_plugin twilio_plugin = {
    .abi_version = HERALD_CHANNEL_ABI_VERSION,
    .size = sizeof(struct herald_channel_plugin),
    .name = "sms_twilio",
    .channels = "sms",
    .create = twilio_create,
    .destroy = twilio_destroy,
    .prepare = twilio_prepare,
    .interpret = twilio_interpret,
    .release = twilio_release,
    .deliver = NULL,
    .feedback = twilio_feedback,
    .feedback_route = "twilio",
    .feedback_headers = tw_feedback_headers,
};

HERALD_EXPORT const struct herald_channel_plugin *herald_channel_plugin(void) { return &twilio_plugin; }
