/*
 * plugin_util.c - see plugin_util.h. Shared by the HTTP provider plugins.
 */
#include "plugin_util.h"

#include <ctype.h>
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
