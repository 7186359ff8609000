/*
 * plugin_util.h - small helpers the provider plugins share: reading a
 * header from the raw block the daemon collected, Retry-After, building
 * curl header lists, a growable string and UTF-8 checks. Linked into each plugin (a static library), so a
 * plugin stays one self-contained .so. Pure: no I/O, no logging.
 */
#ifndef HERALD_PLUGIN_UTIL_H
#define HERALD_PLUGIN_UTIL_H

#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include <curl/curl.h>

#include "herald_channel.h"

#define PLUGIN_RETRY_AFTER_MAX_S 86400

/* The value of the last `name:` header in the raw block (the final response
 * follows any 1xx ones), trimmed and reduced to printable ASCII (it ends up
 * in audit records), into out; false when absent or empty. */
bool plugin_header_value(const struct herald_response *resp, const char *name, char *out, size_t outlen);

/* Retry-After in delta-seconds as milliseconds (capped at a day); 0 when
 * absent or an HTTP date (that form would need the clock). */
int64_t plugin_retry_after_ms(const struct herald_response *resp);

/* The verdict that transport and HTTP status alone decide, the same for
 * every HTTP provider: a transport error ("transport_<curl code>") and 429,
 * 5xx or an unexpected 1xx/3xx ("http_<status>", Retry-After honoured)
 * retry (429 with slow_down set: the provider is up and asks for less); any other 4xx is rejected "http_<status>"; a 2xx is accepted with
 * an empty provider_id for the caller to fill. Zeroes v first; returns
 * v->kind. */
int plugin_http_verdict(const struct herald_response *resp, struct herald_verdict *v);

/* The index in keys[0..nkeys) of settings[i].key, or -1 after reporting it
 * through the host as unknown ("unknown setting (<takes>)") or as given
 * twice (seen[k] already set). On success seen[k] = the value. */
int plugin_setting_key(const struct herald_host *host, const struct herald_setting *settings, size_t i,
                       const char *const *keys, size_t nkeys, const char **seen, const char *takes);

/* key is an idempotency key as the ABI promises it (1..64 characters of
 * [A-Za-z0-9._:-]), so it can go into a header or an id as it is. A
 * plugin refuses a message whose key is not (a daemon bug, never sent). */
bool plugin_idempotency_key_valid(const char *key);

/* Appends h to list; on failure sets *ok to false and returns list unchanged.
 * Once *ok is false it appends nothing, so a chain needs one check at the end. */
struct curl_slist *plugin_add_header(struct curl_slist *list, const char *h, bool *ok);

/* A growable string for building requests. Plugins never abort: running
 * out of memory is remembered (oom) and later adds do nothing, so a chain
 * of adds needs one check at the end. Start from {0}. */
struct plugin_buf {
    char *s;
    size_t len, cap;
    bool oom;
};
/* The adds that fit are inline (a JSON body takes dozens of a few bytes
 * each); plugin_buf_add_grow does the rest. */
void plugin_buf_add_grow(struct plugin_buf *b, const char *p, size_t n);
static inline void plugin_buf_add(struct plugin_buf *b, const char *p, size_t n)
{
    if (b->oom || b->len + n + 1 > b->cap) {
        plugin_buf_add_grow(b, p, n);
        return;
    }
    memcpy(b->s + b->len, p, n);
    b->len += n;
    b->s[b->len] = '\0';
}
/* Room for n bytes of content in all, in one allocation ahead of the adds. */
void plugin_buf_reserve(struct plugin_buf *b, size_t n);
void plugin_buf_adds(struct plugin_buf *b, const char *s);
/* The finished string (the caller frees it; "" when nothing was added), or
 * NULL when memory ran out (the buffer is freed then). */
char *plugin_buf_take(struct plugin_buf *b);

/* Length of the UTF-8 sequence at s (1..4), or 0 when it is not valid:
 * overlong forms, surrogates and code points above U+10FFFF included. */
size_t plugin_utf8_seq(const unsigned char *s);
/* s (NUL-terminated) is valid UTF-8. */
bool plugin_utf8_valid(const char *s);

/* How many of the n bytes at s, from the start, can go into a JSON string
 * as they are: printable ASCII other than '"' and '\\'. Sixteen (SSE2) or
 * eight bytes at a time; it never reads past s + n. */
size_t plugin_json_plain(const unsigned char *s, size_t n);

#endif
