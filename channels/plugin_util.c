/*
 * plugin_util.c - see plugin_util.h. Shared by the HTTP provider plugins.
 */
#include "plugin_util.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

bool plugin_header_value(const struct herald_response *resp, const char *name, char *out, size_t outlen)
{
    if (!resp->headers || !outlen) return false;
    size_t nlen = strlen(name);
    bool found = false;
    const char *p = resp->headers, *end = resp->headers + resp->headers_len;
    while (p < end) {
        const char *eol = memchr(p, '\n', (size_t)(end - p));
        const char *le = eol ? eol : end;
        if ((size_t)(le - p) > nlen && strncasecmp(p, name, nlen) == 0 && p[nlen] == ':') {
            const char *v = p + nlen + 1, *ve = le;
            while (v < ve && (*v == ' ' || *v == '\t')) v++;
            while (ve > v && isspace((unsigned char)ve[-1])) ve--;
            size_t j = 0;
            for (; v < ve && j + 1 < outlen; v++)
                if ((unsigned char)*v > 0x20 && (unsigned char)*v < 0x7f) out[j++] = *v;
            out[j] = '\0';
            found = j > 0;
        }
        p = le + 1;
    }
    return found;
}

int64_t plugin_retry_after_ms(const struct herald_response *resp)
{
    char v[32];
    if (!plugin_header_value(resp, "Retry-After", v, sizeof(v))) return 0;
    char *end;
    long long s = strtoll(v, &end, 10);
    if (end == v || *end || s < 0) return 0;
    if (s > PLUGIN_RETRY_AFTER_MAX_S) s = PLUGIN_RETRY_AFTER_MAX_S;
    return (int64_t)s * 1000;
}

int plugin_setting_key(const struct herald_host *host, const struct herald_setting *settings, size_t i,
                       const char *const *keys, size_t nkeys, const char **seen, const char *takes)
{
    size_t k = 0;
    while (k < nkeys && strcmp(settings[i].key, keys[k]) != 0) k++;
    if (k == nkeys) {
        host->setting_error(host->ctx, i, "unknown setting (%s)", takes);
        return -1;
    }
    if (seen[k]) {
        host->setting_error(host->ctx, i, "given twice");
        return -1;
    }
    seen[k] = settings[i].value;
    return (int)k;
}

struct curl_slist *plugin_add_header(struct curl_slist *list, const char *h, bool *ok)
{
    struct curl_slist *n = *ok ? curl_slist_append(list, h) : NULL;
    if (!n) {
        *ok = false;
        return list;
    }
    return n;
}

int plugin_http_verdict(const struct herald_response *resp, struct herald_verdict *v)
{
    memset(v, 0, sizeof(*v));
    if (resp->curl_code != 0) {
        /* Timeouts, refused or reset connections: the provider may be back soon. */
        v->kind = HERALD_VERDICT_RETRY;
        snprintf(v->reason, sizeof(v->reason), "transport_%d", resp->curl_code);
        return v->kind;
    }
    long st = resp->status;
    if (st >= 200 && st < 300) {
        v->kind = HERALD_VERDICT_ACCEPTED;
        return v->kind;
    }
    snprintf(v->reason, sizeof(v->reason), "http_%ld", st);
    if (st >= 400 && st < 500 && st != 429) {
        v->kind = HERALD_VERDICT_REJECTED;
        return v->kind;
    }
    /* 429, 5xx, and anything unexpected (1xx/3xx: a proxy or a wrong URL,
     * not the message's fault): temporary, let the daemon retry or fail over. */
    v->kind = HERALD_VERDICT_RETRY;
    v->retry_after_ms = plugin_retry_after_ms(resp);
    return v->kind;
}
