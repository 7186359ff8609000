/*
 * plugin_util.c - see plugin_util.h. Shared by the HTTP provider plugins.
 */
#include "plugin_util.h"

#include <ctype.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#ifdef __SSE2__
#include <emmintrin.h>
#endif

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

bool plugin_idempotency_key_valid(const char *key)
{
    /* A table rather than ranges: every message's key is checked. */
    static const bool ok[256] = {
        ['.'] = 1, ['_'] = 1, [':'] = 1, ['-'] = 1,
#define D(c) [c] = 1
        D('0'), D('1'), D('2'), D('3'), D('4'), D('5'), D('6'), D('7'), D('8'), D('9'),
        D('A'), D('B'), D('C'), D('D'), D('E'), D('F'), D('G'), D('H'), D('I'), D('J'), D('K'), D('L'), D('M'),
        D('N'), D('O'), D('P'), D('Q'), D('R'), D('S'), D('T'), D('U'), D('V'), D('W'), D('X'), D('Y'), D('Z'),
        D('a'), D('b'), D('c'), D('d'), D('e'), D('f'), D('g'), D('h'), D('i'), D('j'), D('k'), D('l'), D('m'),
        D('n'), D('o'), D('p'), D('q'), D('r'), D('s'), D('t'), D('u'), D('v'), D('w'), D('x'), D('y'), D('z'),
#undef D
    };
    size_t n = 0;
    for (; key[n]; n++)
        if (!ok[(unsigned char)key[n]]) return false;
    return n >= 1 && n <= HERALD_IDEMPOTENCY_KEY_MAX;
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
    v->slow_down = st == 429; /* up, and asking for less: not a failure */
    return v->kind;
}

void plugin_buf_reserve(struct plugin_buf *b, size_t n)
{
    if (b->oom || n + 1 <= b->cap) return;
    char *s = realloc(b->s, n + 1);
    if (!s) {
        b->oom = true;
        return;
    }
    b->s = s;
    b->cap = n + 1;
}

void plugin_buf_add_grow(struct plugin_buf *b, const char *p, size_t n)
{
    if (b->oom) return;
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->len + n + 1) cap *= 2;
        plugin_buf_reserve(b, cap - 1);
        if (b->oom) return;
    }
    memcpy(b->s + b->len, p, n);
    b->len += n;
    b->s[b->len] = '\0';
}

void plugin_buf_adds(struct plugin_buf *b, const char *s)
{
    plugin_buf_add(b, s, strlen(s));
}

char *plugin_buf_take(struct plugin_buf *b)
{
    char *s = b->s;
    bool oom = b->oom;
    *b = (struct plugin_buf){0};
    if (oom) {
        free(s);
        return NULL;
    }
    return s ? s : strdup("");
}

size_t plugin_utf8_seq(const unsigned char *s)
{
    if (s[0] < 0x80) return 1;
    if (s[0] >= 0xc2 && s[0] <= 0xdf) return (s[1] & 0xc0) == 0x80 ? 2 : 0;
    if (s[0] >= 0xe0 && s[0] <= 0xef) {
        if ((s[1] & 0xc0) != 0x80 || (s[2] & 0xc0) != 0x80) return 0;
        if (s[0] == 0xe0 && s[1] < 0xa0) return 0; /* overlong */
        if (s[0] == 0xed && s[1] >= 0xa0) return 0; /* surrogate */
        return 3;
    }
    if (s[0] >= 0xf0 && s[0] <= 0xf4) {
        if ((s[1] & 0xc0) != 0x80 || (s[2] & 0xc0) != 0x80 || (s[3] & 0xc0) != 0x80) return 0;
        if (s[0] == 0xf0 && s[1] < 0x90) return 0;  /* overlong */
        if (s[0] == 0xf4 && s[1] >= 0x90) return 0; /* above U+10FFFF */
        return 4;
    }
    return 0;
}

/* Bytes of an 8-byte word: each test is exact for "any byte of x" (the
 * classic haszero / hasless forms, valid for n <= 128). */
#define PU_ONES 0x0101010101010101ULL
#define PU_HIGHS 0x8080808080808080ULL
static inline uint64_t pu_any_zero(uint64_t x) { return (x - PU_ONES) & ~x & PU_HIGHS; }
static inline uint64_t pu_any_below(uint64_t x, unsigned n) { return (x - PU_ONES * n) & ~x & PU_HIGHS; }

size_t plugin_json_plain(const unsigned char *s, size_t n)
{
    size_t i = 0;
#ifdef __SSE2__
    /* Sixteen at a time where the CPU has SSE2 (every x86-64): compared as
     * signed bytes, "below 0x20" also holds for 0x80..0xff. */
    const __m128i quote = _mm_set1_epi8('"'), bslash = _mm_set1_epi8('\\'), space = _mm_set1_epi8(0x20);
    for (; i + 16 <= n; i += 16) {
        __m128i x = _mm_loadu_si128((const __m128i *)(const void *)(s + i));
        __m128i stop = _mm_or_si128(_mm_cmplt_epi8(x, space),
                                    _mm_or_si128(_mm_cmpeq_epi8(x, quote), _mm_cmpeq_epi8(x, bslash)));
        unsigned m = (unsigned)_mm_movemask_epi8(stop);
        if (m) return i + (size_t)__builtin_ctz(m);
    }
#endif
    for (; i + 8 <= n; i += 8) {
        uint64_t x;
        memcpy(&x, s + i, 8);
        if ((x & PU_HIGHS) || pu_any_below(x, 0x20) || pu_any_zero(x ^ (PU_ONES * '"')) ||
            pu_any_zero(x ^ (PU_ONES * '\\')))
            break;
    }
    while (i < n && s[i] >= 0x20 && s[i] < 0x80 && s[i] != '"' && s[i] != '\\') i++;
    return i;
}

bool plugin_utf8_valid(const char *s)
{
    const unsigned char *p = (const unsigned char *)s;
    while (*p) {
        size_t n = plugin_utf8_seq(p);
        if (n == 0) return false;
        p += n;
    }
    return true;
}
