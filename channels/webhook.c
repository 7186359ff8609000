/*
 * webhook.c - generic JSON POST to the operator's own endpoint.
 *
 * Settings: url (required, http:// or https://), secret (required, at least
 * 16 characters), header_name (optional, default X-Herald-Signature).
 * prepare() builds the JSON body of the whole message (the endpoint is the
 * operator's own, so the address and content travel in the request) and
 * signs the exact body bytes: `<header_name>: sha256=<hex HMAC-SHA256>`.
 * The message's idempotency key, when it has one, goes in the header
 * `Idempotency-Key` (the same for every attempt of the message).
 * interpret() is pure: 2xx accepted (id from the JSON body {"id": ...},
 * else X-Request-Id / X-Message-Id, else "webhook:<status>"); 429, 5xx and
 * transport errors retry (Retry-After seconds honoured); other statuses are
 * rejected as "http_<status>". Nothing here logs, and nothing outlives
 * release() except the settings and a few released requests' buffers kept
 * for the next ones (prepare and release both run on the loop thread).
 */
#include "hmac_sha256.h" /* first: it allows the low-level SHA-256 calls */

#include <ctype.h>
#include <curl/curl.h>
#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "herald_channel.h"
#include "plugin_util.h"

#define WEBHOOK_SECRET_MIN 16
#define WEBHOOK_DEFAULT_HEADER "X-Herald-Signature"
#define WEBHOOK_HEADER_MAX 64 /* so that "<name>: sha256=<64 hex>" always fits */
#define WEBHOOK_SPARE_MAX 256        /* released requests kept for reuse ... */
#define WEBHOOK_SPARE_BODY_MAX 16384 /* ... when their body buffer is no larger */

struct webhook_req;

struct webhook {
    char *url; /* as curl normalises it, when uh parsed it */
    /* The url parsed once (NULL if curl refused it: then each request
     * parses it, and fails, as before). Given with CURLOPT_CURLU next to
     * CURLOPT_URL, curl copies it instead of parsing the url and printing
     * it back for every request; it only reads it. */
    CURLU *uh;
    char *secret;
    char *header_name;
    struct hmac_sha256_key mac; /* the secret, prepared once */
    /* Content-Type, no Expect, User-Agent: the same for every request (a
     * User-Agent given as a header also spares curl formatting its own). */
    struct curl_slist *fixed;
    /* Released requests and their body buffers: a body is about a kilobyte,
     * which malloc serves from its slow large-chunk path (and its free list
     * merging) when it is allocated afresh for every message. */
    struct webhook_req *spare;
    size_t nspare;
};

struct webhook_req {
    char *body; /* first: the unit test reads it */
    size_t body_cap;
    struct webhook_req *next_spare;
    /* The request's headers: its signature, then the instance's fixed list
     * (curl reads the list and never changes it). */
    struct curl_slist sig_node;
    char sig[WEBHOOK_HEADER_MAX + 96]; /* "<name>: sha256=" and 64 hex digits */
    struct curl_slist key_node;        /* Idempotency-Key, before sig_node */
    char key[24 + HERALD_IDEMPOTENCY_KEY_MAX];
};

static void req_free(struct webhook_req *r)
{
    free(r->body);
    free(r);
}

static void webhook_destroy(void *instance)
{
    struct webhook *w = instance;
    if (!w) return;
    while (w->spare) {
        struct webhook_req *r = w->spare;
        w->spare = r->next_spare;
        req_free(r);
    }
    free(w->url);
    curl_url_cleanup(w->uh);
    free(w->secret);
    free(w->header_name);
    hmac_sha256_key_wipe(&w->mac);
    curl_slist_free_all(w->fixed);
    free(w);
}

static bool header_name_valid(const char *s)
{
    if (!*s || strlen(s) > WEBHOOK_HEADER_MAX) return false;
    for (; *s; s++)
        if (!(isalnum((unsigned char)*s) || *s == '-' || *s == '_')) return false;
    return true;
}

static int webhook_create(const struct herald_host *host, const struct herald_setting *settings, size_t n,
                          void **instance)
{
    const char *url = NULL, *secret = NULL, *header = NULL;
    int bad = 0;
    for (size_t i = 0; i < n; i++) {
        const char *k = settings[i].key, *v = settings[i].value;
        if (strcmp(k, "url") == 0) {
            if (strncmp(v, "http://", 7) != 0 && strncmp(v, "https://", 8) != 0) {
                host->setting_error(host->ctx, i, "must start with http:// or https://");
                bad = 1;
            }
            url = v;
        } else if (strcmp(k, "secret") == 0) {
            if (strlen(v) < WEBHOOK_SECRET_MIN) {
                host->setting_error(host->ctx, i, "must be at least %d characters", WEBHOOK_SECRET_MIN);
                bad = 1;
            }
            secret = v;
        } else if (strcmp(k, "header_name") == 0) {
            if (!header_name_valid(v)) {
                host->setting_error(host->ctx, i, "must be a header name (A-Z a-z 0-9 - _, at most %d characters)",
                                    WEBHOOK_HEADER_MAX);
                bad = 1;
            }
            header = v;
        } else {
            host->setting_error(host->ctx, i, "unknown key (expected url, secret, header_name)");
            bad = 1;
        }
    }
    if (!url) {
        host->setting_missing(host->ctx, "url", "missing: the endpoint, url = https://...");
        bad = 1;
    }
    if (!secret) {
        host->setting_missing(host->ctx, "secret", "missing: the HMAC key (at least %d characters)",
                              WEBHOOK_SECRET_MIN);
        bad = 1;
    }
    if (bad) return -1;
    struct webhook *w = calloc(1, sizeof(*w));
    if (w) {
        /* The flags are curl's own for CURLOPT_URL (url.c), so the parse
         * and the normalised text are what each request made of it. */
        char *norm = NULL;
        w->uh = curl_url();
        if (w->uh && (curl_url_set(w->uh, CURLUPART_URL, url, CURLU_GUESS_SCHEME | CURLU_NON_SUPPORT_SCHEME) !=
                          CURLUE_OK ||
                      curl_url_get(w->uh, CURLUPART_URL, &norm, 0) != CURLUE_OK)) {
            curl_url_cleanup(w->uh);
            w->uh = NULL;
        }
        w->url = strdup(norm ? norm : url);
        curl_free(norm);
        w->secret = strdup(secret);
        w->header_name = strdup(header ? header : WEBHOOK_DEFAULT_HEADER);
        bool ok = true;
        w->fixed = plugin_add_header(NULL, "Content-Type: application/json", &ok);
        /* No "Expect: 100-continue" round trip: the body is small. */
        w->fixed = plugin_add_header(w->fixed, "Expect:", &ok);
        w->fixed = plugin_add_header(w->fixed, "User-Agent: herald-webhook/1", &ok);
        if (!ok) {
            curl_slist_free_all(w->fixed);
            w->fixed = NULL;
        }
        hmac_sha256_key_init(&w->mac, secret, strlen(secret));
    }
    if (!w || !w->url || !w->secret || !w->header_name || !w->fixed) {
        webhook_destroy(w);
        host->setting_error(host->ctx, HERALD_SETTING_NONE, "out of memory");
        return -1;
    }
    *instance = w;
    return 0;
}

static void webhook_release(void *instance, void *state)
{
    struct webhook *w = instance;
    struct webhook_req *r = state;
    if (!r) return;
    if (w->nspare < WEBHOOK_SPARE_MAX && r->body_cap <= WEBHOOK_SPARE_BODY_MAX) {
        r->next_spare = w->spare;
        w->spare = r;
        w->nspare++;
        return;
    }
    req_free(r);
}

/* `"key":"value"` (or null), with a leading comma unless first; key is
 * given quoted, with its colon. Invalid UTF-8 in value clears *valid (a
 * content problem: the message is rejected, not retried). */
static void jb_field(struct plugin_buf *b, bool *valid, const char *key, size_t keylen, const char *value,
                     size_t len, bool first)
{
    if (!first) plugin_buf_add(b, ",", 1);
    plugin_buf_add(b, key, keylen);
    if (!value) {
        plugin_buf_add(b, "null", 4);
        return;
    }
    plugin_buf_add(b, "\"", 1);
    const unsigned char *p = (const unsigned char *)value, *end = p + len;
    for (;;) {
        size_t plain = plugin_json_plain(p, (size_t)(end - p)); /* most of any text */
        plugin_buf_add(b, (const char *)p, plain);
        p += plain;
        if (p == end) break;
        size_t n = plugin_utf8_seq(p);
        if (n == 0) {
            *valid = false;
            return;
        }
        if (n > 1) { /* valid UTF-8 goes as it is */
            plugin_buf_add(b, (const char *)p, n);
            p += n;
            continue;
        }
        static const char hex[] = "0123456789abcdef";
        char esc[6] = {'\\', (char)*p};
        size_t elen = 2;
        if (*p == '\n') esc[1] = 'n';
        else if (*p < 0x20) {
            memcpy(esc + 1, "u00", 3);
            esc[4] = hex[*p >> 4];
            esc[5] = hex[*p & 15];
            elen = 6;
        }
        plugin_buf_add(b, esc, elen);
        p++;
    }
    plugin_buf_add(b, "\"", 1);
}

static int webhook_prepare(void *instance, const struct herald_message *msg, void *curl, void **state,
                           char *reason, size_t reasonlen)
{
    struct webhook *w = instance;
    *state = NULL;
    if (msg->idempotency_key && !plugin_idempotency_key_valid(msg->idempotency_key)) {
        snprintf(reason, reasonlen, "invalid_idempotency_key");
        return -1;
    }
    /* Not zeroed: every field is set below before curl can see it. */
    struct webhook_req *r = w->spare;
    if (r) {
        w->spare = r->next_spare;
        w->nspare--;
    } else if (!(r = malloc(sizeof(*r)))) {
        snprintf(reason, reasonlen, "out_of_memory");
        return -1;
    } else {
        r->body = NULL;
        r->body_cap = 0;
    }
    /* Written by hand rather than with jansson: this runs per message, and
     * building then serialising a tree cost more than the request itself.
     * Into the request's own buffer (a spare one's, when it is large enough). */
    struct plugin_buf b = {.s = r->body, .cap = r->body_cap};
    bool valid = true;
    /* The keys quoted, with their colons, and their lengths: constants. */
#define KEY(k) {"\"" k "\":", sizeof(k) + 2}
    static const struct {
        const char *json;
        size_t len;
    } keys[] = {KEY("campaign"), KEY("recipient"), KEY("channel"), KEY("topic"), KEY("to"),
                KEY("subject"),  KEY("text"),      KEY("html"),    KEY("unsubscribe_url"),
                KEY("preferences_url")};
#undef KEY
    const char *values[] = {msg->campaign, msg->recipient, msg->channel, msg->topic,
                            msg->to,       msg->subject,   msg->text,    msg->html,
                            msg->unsubscribe_url, msg->preferences_url};
    enum { NFIELDS = sizeof(keys) / sizeof(keys[0]) };
    _Static_assert(sizeof(values) / sizeof(values[0]) == NFIELDS, "a value for each key");
    /* One allocation for a body with a few escapes: keys, values, quotes,
     * and room for the quotes of an html part's attributes. */
    size_t lens[NFIELDS], size = 2;
    for (size_t i = 0; i < NFIELDS; i++) {
        lens[i] = values[i] ? strlen(values[i]) : 0;
        size += keys[i].len + 1 + (values[i] ? lens[i] + 2 : 4);
    }
    plugin_buf_reserve(&b, size + size / 16 + 16);
    plugin_buf_add(&b, "{", 1);
    for (size_t i = 0; i < NFIELDS; i++)
        jb_field(&b, &valid, keys[i].json, keys[i].len, values[i], lens[i], i == 0);
    plugin_buf_add(&b, "}", 1);
    size_t blen = b.len;
    r->body = b.s; /* kept when a reservation failed: realloc left it as it was */
    r->body_cap = b.cap;
    if (!valid || b.oom) {
        webhook_release(w, r);
        snprintf(reason, reasonlen, valid ? "out_of_memory" : "invalid_message");
        return -1;
    }
    unsigned char mac[HMAC_SHA256_LEN];
    hmac_sha256(&w->mac, r->body, blen, mac);
    static const char hex[] = "0123456789abcdef";
    /* "<name>: sha256=<hex>": the name is at most WEBHOOK_HEADER_MAX, so it fits. */
    char *sig = r->sig;
    size_t off = strlen(w->header_name);
    memcpy(sig, w->header_name, off);
    memcpy(sig + off, ": sha256=", 9);
    off += 9;
    for (size_t i = 0; i < sizeof(mac) && off + 3 < sizeof(r->sig); i++) {
        sig[off++] = hex[mac[i] >> 4];
        sig[off++] = hex[mac[i] & 15];
    }
    sig[off] = '\0';
    r->sig_node.data = r->sig;
    r->sig_node.next = w->fixed;
    struct curl_slist *headers = &r->sig_node;
    if (msg->idempotency_key) {
        size_t klen = strlen(msg->idempotency_key); /* at most 64: checked above */
        memcpy(r->key, "Idempotency-Key: ", 17);
        memcpy(r->key + 17, msg->idempotency_key, klen + 1);
        r->key_node.data = r->key;
        r->key_node.next = &r->sig_node;
        headers = &r->key_node;
    }
    curl_easy_setopt(curl, CURLOPT_URL, w->url);
    if (w->uh) curl_easy_setopt(curl, CURLOPT_CURLU, w->uh);
    curl_easy_setopt(curl, CURLOPT_POST, 1L);
    curl_easy_setopt(curl, CURLOPT_POSTFIELDS, r->body);
    curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE, (long)blen);
    curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
    *state = r;
    return 0;
}

/* The common reply, {"id":"<printable ASCII, no escapes>"} with optional
 * whitespace, read without building a tree: 1 when it is that (out set),
 * 0 when the body is anything else and the full parser decides. */
static int id_fast(const char *b, size_t n, char *out, size_t outlen)
{
    const char *p = b, *end = b + n;
#define WS() while (p < end && (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n')) p++
    WS();
    if (p == end || *p++ != '{') return 0;
    WS();
    if (end - p < 4 || memcmp(p, "\"id\"", 4) != 0) return 0;
    p += 4;
    WS();
    if (p == end || *p++ != ':') return 0;
    WS();
    if (p == end || *p++ != '"') return 0;
    const char *v = p;
    while (p < end && *p != '"' && *p != '\\' && (unsigned char)*p >= 0x20 && (unsigned char)*p < 0x7f) p++;
    if (p == end || *p != '"' || p == v) return 0;
    size_t vlen = (size_t)(p - v);
    p++;
    WS();
    if (p == end || *p++ != '}') return 0;
    WS();
#undef WS
    if (p != end) return 0;
    if (outlen == 0) return 1;
    if (vlen >= outlen) vlen = outlen - 1; /* cut as snprintf would */
    memcpy(out, v, vlen);
    out[vlen] = '\0';
    return 1;
}

static bool id_from_body(const struct herald_response *resp, char *out, size_t outlen)
{
    if (!resp->body || resp->body_len == 0) return false;
    if (id_fast(resp->body, resp->body_len, out, outlen)) return true;
    json_t *root = json_loadb(resp->body, resp->body_len, 0, NULL);
    bool ok = false;
    json_t *id = root && json_is_object(root) ? json_object_get(root, "id") : NULL;
    if (json_is_string(id) && json_string_length(id) > 0) {
        snprintf(out, outlen, "%s", json_string_value(id));
        ok = true;
    } else if (json_is_integer(id)) {
        snprintf(out, outlen, "%lld", (long long)json_integer_value(id));
        ok = true;
    }
    json_decref(root);
    return ok;
}

static void webhook_interpret(void *instance, void *state, const struct herald_response *resp,
                              struct herald_verdict *v)
{
    (void)instance;
    (void)state;
    int kind = plugin_http_verdict(resp, v);
    if (kind == HERALD_VERDICT_ACCEPTED) {
        if (!id_from_body(resp, v->provider_id, sizeof(v->provider_id)) &&
            !plugin_header_value(resp, "X-Request-Id", v->provider_id, sizeof(v->provider_id)) &&
            !plugin_header_value(resp, "X-Message-Id", v->provider_id, sizeof(v->provider_id)))
            snprintf(v->provider_id, sizeof(v->provider_id), "webhook:%ld", resp->status);
    } else if (kind == HERALD_VERDICT_RETRY && resp->curl_code == 0 && resp->status >= 300 && resp->status < 400) {
        /* The operator's own endpoint redirecting is its configuration,
         * which a retry will not change (docs/plugin-abi.md). */
        v->kind = HERALD_VERDICT_REJECTED;
        v->retry_after_ms = 0;
    }
}

static const struct herald_channel_plugin webhook_plugin = {
    .abi_version = HERALD_CHANNEL_ABI_VERSION,
    .size = sizeof(struct herald_channel_plugin),
    .name = "webhook",
    .channels = "email,sms",
    .create = webhook_create,
    .destroy = webhook_destroy,
    .prepare = webhook_prepare,
    .interpret = webhook_interpret,
    .release = webhook_release,
    /* prepare() sets URL (and CURLU), POST, POSTFIELDS, POSTFIELDSIZE and
     * HTTPHEADER every time, after its last refusal. */
    .flags = HERALD_CHANNEL_SAME_OPTIONS,
};

HERALD_EXPORT const struct herald_channel_plugin *herald_channel_plugin(void)
{
    return &webhook_plugin;
}
