/*
 * webhook.c - generic JSON POST to the operator's own endpoint.
 *
 * Settings: url (required, http:// or https://), secret (required, at least
 * 16 characters), header_name (optional, default X-Herald-Signature).
 * prepare() builds the JSON body of the whole message (the endpoint is the
 * operator's own, so the address and content travel in the request) and
 * signs the exact body bytes: `<header_name>: sha256=<hex HMAC-SHA256>`.
 * interpret() is pure: 2xx accepted (id from the JSON body {"id": ...},
 * else X-Request-Id / X-Message-Id, else "webhook:<status>"); 429, 5xx and
 * transport errors retry (Retry-After seconds honoured); other statuses are
 * rejected as "http_<status>". Nothing here logs, and nothing outlives
 * release() except the settings.
 */
#include <ctype.h>
#include <curl/curl.h>
#include <jansson.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "herald_channel.h"
#include "plugin_util.h"

#define WEBHOOK_SECRET_MIN 16
#define WEBHOOK_DEFAULT_HEADER "X-Herald-Signature"

struct webhook {
    char *url;
    char *secret;
    char *header_name;
};

struct webhook_req {
    char *body;
    struct curl_slist *headers;
};

static void webhook_destroy(void *instance)
{
    struct webhook *w = instance;
    if (!w) return;
    free(w->url);
    free(w->secret);
    free(w->header_name);
    free(w);
}

static bool header_name_valid(const char *s)
{
    if (!*s) return false;
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
                host->setting_error(host->ctx, i, "must be a header name (A-Z a-z 0-9 - _)");
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
        w->url = strdup(url);
        w->secret = strdup(secret);
        w->header_name = strdup(header ? header : WEBHOOK_DEFAULT_HEADER);
    }
    if (!w || !w->url || !w->secret || !w->header_name) {
        webhook_destroy(w);
        host->setting_error(host->ctx, HERALD_SETTING_NONE, "out of memory");
        return -1;
    }
    *instance = w;
    return 0;
}

static void webhook_release(void *instance, void *state)
{
    (void)instance;
    struct webhook_req *r = state;
    if (!r) return;
    curl_slist_free_all(r->headers);
    free(r->body);
    free(r);
}

static int set_str(json_t *o, const char *key, const char *value)
{
    return json_object_set_new(o, key, value ? json_string(value) : json_null());
}

static int webhook_prepare(void *instance, const struct herald_message *msg, void *curl, void **state,
                           char *reason, size_t reasonlen)
{
    struct webhook *w = instance;
    *state = NULL;
    json_t *o = json_object();
    int rc = o ? 0 : -1;
    if (rc == 0) {
        rc |= set_str(o, "campaign", msg->campaign);
        rc |= set_str(o, "recipient", msg->recipient);
        rc |= set_str(o, "channel", msg->channel);
        rc |= set_str(o, "topic", msg->topic);
        rc |= set_str(o, "to", msg->to);
        rc |= set_str(o, "subject", msg->subject);
        rc |= set_str(o, "text", msg->text);
        rc |= set_str(o, "html", msg->html);
        rc |= set_str(o, "unsubscribe_url", msg->unsubscribe_url);
        rc |= set_str(o, "preferences_url", msg->preferences_url);
    }
    struct webhook_req *r = calloc(1, sizeof(*r));
    if (rc == 0 && r) r->body = json_dumps(o, JSON_COMPACT | JSON_SORT_KEYS);
    json_decref(o);
    if (rc != 0 || !r || !r->body) {
        /* json_string refuses invalid UTF-8: a content problem, not a retry. */
        snprintf(reason, reasonlen, "invalid_message");
        webhook_release(w, r);
        return -1;
    }
    size_t blen = strlen(r->body);
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int maclen = 0;
    if (!HMAC(EVP_sha256(), w->secret, (int)strlen(w->secret), (const unsigned char *)r->body, blen, mac,
              &maclen)) {
        snprintf(reason, reasonlen, "hmac_failed");
        webhook_release(w, r);
        return -1;
    }
    char sig[256];
    int off = snprintf(sig, sizeof(sig), "%s: sha256=", w->header_name);
    for (unsigned int i = 0; i < maclen && off > 0 && (size_t)off + 3 < sizeof(sig); i++)
        off += snprintf(sig + off, sizeof(sig) - (size_t)off, "%02x", mac[i]);
    struct curl_slist *h = curl_slist_append(NULL, "Content-Type: application/json");
    if (h) r->headers = h;
    h = h ? curl_slist_append(r->headers, sig) : NULL;
    /* No "Expect: 100-continue" round trip: the body is small. */
    h = h ? curl_slist_append(r->headers, "Expect:") : NULL;
    if (!h) {
        snprintf(reason, reasonlen, "out_of_memory");
        webhook_release(w, r);
        return -1;
    }
    curl_easy_setopt(curl, CURLOPT_URL, w->url);
    curl_easy_setopt(curl, CURLOPT_POST, 1L);
    curl_easy_setopt(curl, CURLOPT_POSTFIELDS, r->body);
    curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE, (long)blen);
    curl_easy_setopt(curl, CURLOPT_HTTPHEADER, r->headers);
    curl_easy_setopt(curl, CURLOPT_USERAGENT, "herald-webhook/1");
    *state = r;
    return 0;
}



static bool id_from_body(const struct herald_response *resp, char *out, size_t outlen)
{
    if (!resp->body || resp->body_len == 0) return false;
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
    memset(v, 0, sizeof(*v));
    if (resp->curl_code != 0) {
        /* Timeouts, refused or reset connections: the endpoint may be back soon. */
        v->kind = HERALD_VERDICT_RETRY;
        snprintf(v->reason, sizeof(v->reason), "transport_%d", resp->curl_code);
        return;
    }
    long st = resp->status;
    if (st >= 200 && st <= 299) {
        v->kind = HERALD_VERDICT_ACCEPTED;
        if (!id_from_body(resp, v->provider_id, sizeof(v->provider_id)) &&
            !plugin_header_value(resp, "X-Request-Id", v->provider_id, sizeof(v->provider_id)) &&
            !plugin_header_value(resp, "X-Message-Id", v->provider_id, sizeof(v->provider_id)))
            snprintf(v->provider_id, sizeof(v->provider_id), "webhook:%ld", st);
        if (!v->provider_id[0]) snprintf(v->provider_id, sizeof(v->provider_id), "webhook:%ld", st);
        return;
    }
    if (st == 429 || st >= 500 || st < 200) {
        v->kind = HERALD_VERDICT_RETRY;
        v->retry_after_ms = plugin_retry_after_ms(resp);
        snprintf(v->reason, sizeof(v->reason), "http_%ld", st);
        return;
    }
    v->kind = HERALD_VERDICT_REJECTED;
    snprintf(v->reason, sizeof(v->reason), "http_%ld", st);
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
};

__attribute__((visibility("default"))) const struct herald_channel_plugin *herald_channel_plugin(void)
{
    return &webhook_plugin;
}
