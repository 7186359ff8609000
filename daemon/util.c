/*
 * util.c - the shared pieces of herald.h: names of the X-macro lists,
 * allocation wrappers, strbuf, identifiers and RFC 3339 time.
 * Pure: no I/O besides the one fatal line when memory runs out.
 */
#include "herald.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *herald_strerror(int rc)
{
    switch (-rc) {
    case HERALD_OK: return "success";
#define X(name, msg) case HERALD_E##name: return msg;
        HERALD_ERRNO_MAP(X)
#undef X
    }
    return "unknown error";
}

static const char *channel_names[] = {
#define X(name, str, ...) str,
    HERALD_CHANNEL_MAP(X)
#undef X
};

const char *herald_channel_name(int ch)
{
    return ch >= 0 && ch < HERALD_CH_COUNT ? channel_names[ch] : "";
}

int herald_channel_from_name(const char *name)
{
    for (int i = 0; i < HERALD_CH_COUNT; i++)
        if (strcmp(name, channel_names[i]) == 0) return i;
    return -1;
}

static const char *outcome_names[] = {
#define X(name, str) str,
    HERALD_OUTCOME_MAP(X)
#undef X
};

const char *herald_outcome_name(int outcome)
{
    return outcome >= 0 && outcome < HERALD_OUTCOME_COUNT ? outcome_names[outcome] : "";
}

static const char *reason_names[] = {
#define X(name, str, doc) str,
    HERALD_REASON_MAP(X)
#undef X
};
static const char *reason_docs[] = {
#define X(name, str, doc) doc,
    HERALD_REASON_MAP(X)
#undef X
};

const char *herald_reason_name(int reason)
{
    return reason >= 0 && reason < HERALD_REASON_COUNT ? reason_names[reason] : "";
}

const char *herald_reason_doc(int reason)
{
    return reason >= 0 && reason < HERALD_REASON_COUNT ? reason_docs[reason] : "";
}

static void oom(size_t n)
{
    fprintf(stderr, "herald: out of memory allocating %zu bytes\n", n);
    abort();
}

void *xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (!p) oom(n);
    return p;
}

void *xcalloc(size_t n, size_t size)
{
    void *p = calloc(n ? n : 1, size ? size : 1);
    if (!p) oom(n * size);
    return p;
}

void *xrealloc(void *p, size_t n)
{
    void *q = realloc(p, n ? n : 1);
    if (!q) oom(n);
    return q;
}

char *xstrdup(const char *s)
{
    return xstrndup(s, strlen(s));
}

char *xstrndup(const char *s, size_t n)
{
    char *p = xmalloc(n + 1);
    memcpy(p, s, n);
    p[n] = '\0';
    return p;
}

void strbuf_init(struct strbuf *sb)
{
    sb->buf = NULL;
    sb->len = 0;
    sb->cap = 0;
}

void strbuf_free(struct strbuf *sb)
{
    free(sb->buf);
    strbuf_init(sb);
}

void strbuf_reset(struct strbuf *sb)
{
    sb->len = 0;
    if (sb->buf) sb->buf[0] = '\0';
}

static void strbuf_grow(struct strbuf *sb, size_t extra)
{
    if (sb->len + extra + 1 <= sb->cap) return;
    size_t cap = sb->cap ? sb->cap : 64;
    while (cap < sb->len + extra + 1) cap *= 2;
    sb->buf = xrealloc(sb->buf, cap);
    sb->cap = cap;
    sb->buf[sb->len] = '\0';
}

void strbuf_grow_to(struct strbuf *sb, size_t cap)
{
    if (cap > sb->len) strbuf_grow(sb, cap - sb->len);
}

void strbuf_add_grow(struct strbuf *sb, const char *data, size_t len)
{
    strbuf_grow(sb, len);
    if (len) memcpy(sb->buf + sb->len, data, len);
    sb->len += len;
    sb->buf[sb->len] = '\0';
}

void strbuf_addf(struct strbuf *sb, const char *fmt, ...)
{
    /* Format into the room already there; only a result that does not fit
     * is formatted a second time, after growing. */
    strbuf_grow(sb, 0);
    size_t room = sb->cap - sb->len;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(sb->buf + sb->len, room, fmt, ap);
    va_end(ap);
    if (n <= 0) {
        sb->buf[sb->len] = '\0';
        return;
    }
    if ((size_t)n >= room) {
        strbuf_grow(sb, (size_t)n);
        va_start(ap, fmt);
        vsnprintf(sb->buf + sb->len, (size_t)n + 1, fmt, ap);
        va_end(ap);
    }
    sb->len += (size_t)n;
}

size_t herald_lltoa(char dst[HERALD_LL_CHARS], long long v)
{
    char tmp[HERALD_LL_CHARS];
    size_t i = sizeof(tmp);
    unsigned long long u = v < 0 ? 0ULL - (unsigned long long)v : (unsigned long long)v;
    do {
        tmp[--i] = (char)('0' + u % 10);
        u /= 10;
    } while (u);
    if (v < 0) tmp[--i] = '-';
    size_t n = sizeof(tmp) - i;
    memcpy(dst, tmp + i, n);
    dst[n] = '\0';
    return n;
}

void strbuf_addll(struct strbuf *sb, long long v)
{
    char tmp[HERALD_LL_CHARS];
    strbuf_add(sb, tmp, herald_lltoa(tmp, v));
}

size_t herald_copy(char *dst, size_t cap, const char *src)
{
    if (cap == 0) return 0;
    size_t n = strlen(src);
    if (n >= cap) n = cap - 1;
    memcpy(dst, src, n);
    dst[n] = '\0';
    return n;
}

char *strbuf_detach(struct strbuf *sb, size_t *len)
{
    strbuf_grow(sb, 0);
    char *p = sb->buf;
    if (len) *len = sb->len;
    strbuf_init(sb);
    return p;
}

void herald_seterr(char *err, size_t errlen, const char *fmt, ...)
{
    if (!err || errlen == 0) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

int herald_fail(char *err, size_t errlen, const char *msg)
{
    herald_seterr(err, errlen, "%s", msg);
    return -HERALD_EINVAL;
}

const char *herald_printable(const char *s, char *buf, size_t n)
{
    size_t i = 0, max = n - 4 < 32 ? n - 4 : 32;
    for (; s[i] && i < max; i++) buf[i] = s[i] >= 0x20 && s[i] < 0x7f && s[i] != '"' ? s[i] : '?';
    if (s[i]) {
        memcpy(buf + i, "...", 3);
        i += 3;
    }
    buf[i] = '\0';
    return buf;
}

bool herald_id_valid(const char *s)
{
    size_t n = 0;
    for (; s[n]; n++) {
        unsigned char c = (unsigned char)s[n];
        if (!(isalnum(c) || c == '.' || c == '_' || c == ':' || c == '-'))
            return false;
        if (n >= HERALD_ID_MAX) return false;
    }
    /* "." and ".." would be path components in the outbox. */
    return n > 0 && strcmp(s, ".") != 0 && strcmp(s, "..") != 0;
}

int64_t herald_days_from_civil(int64_t y, unsigned m, unsigned d)
{
    /* Howard Hinnant's algorithm: days since 1970-01-01, proleptic Gregorian. */
    y -= m <= 2;
    const int64_t era = (y >= 0 ? y : y - 399) / 400;
    const unsigned yoe = (unsigned)(y - era * 400);
    const unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + (int64_t)doe - 719468;
}

static int read_digits(const char **p, int n, int *out)
{
    int v = 0;
    for (int i = 0; i < n; i++) {
        if (!isdigit((unsigned char)**p)) return -1;
        v = v * 10 + (**p - '0');
        (*p)++;
    }
    *out = v;
    return 0;
}

int herald_time_parse(const char *s, int64_t *out)
{
    const char *p = s;
    int y, mo, d, h, mi, sec;
    if (read_digits(&p, 4, &y) || *p++ != '-' || read_digits(&p, 2, &mo) || *p++ != '-' ||
        read_digits(&p, 2, &d) || (*p != 'T' && *p != 't' && *p != ' '))
        return -HERALD_EINVAL;
    p++;
    if (read_digits(&p, 2, &h) || *p++ != ':' || read_digits(&p, 2, &mi) || *p++ != ':' ||
        read_digits(&p, 2, &sec))
        return -HERALD_EINVAL;
    if (*p == '.') { /* fractions are accepted and dropped */
        p++;
        if (!isdigit((unsigned char)*p)) return -HERALD_EINVAL;
        while (isdigit((unsigned char)*p)) p++;
    }
    int offset = 0;
    if (*p == 'Z' || *p == 'z') {
        p++;
    } else if (*p == '+' || *p == '-') {
        int sign = *p == '-' ? -1 : 1, oh, om;
        p++;
        if (read_digits(&p, 2, &oh) || *p++ != ':' || read_digits(&p, 2, &om) || oh > 23 || om > 59)
            return -HERALD_EINVAL;
        offset = sign * (oh * 3600 + om * 60);
    } else {
        return -HERALD_EINVAL;
    }
    if (*p != '\0') return -HERALD_EINVAL;
    static const int mdays[] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    if (y < 1970 || mo < 1 || mo > 12 || d < 1 || d > mdays[mo - 1] || h > 23 || mi > 59 || sec > 60)
        return -HERALD_EINVAL;
    bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    if (mo == 2 && d == 29 && !leap) return -HERALD_EINVAL;
    if (sec == 60) sec = 59; /* leap second: clamp */
    *out = herald_days_from_civil(y, (unsigned)mo, (unsigned)d) * 86400 + h * 3600 + mi * 60 + sec - offset;
    return 0;
}

void herald_time_format(int64_t t, char *buf, size_t len)
{
    int64_t days = t >= 0 ? t / 86400 : (t - 86399) / 86400;
    int64_t secs = t - days * 86400;
    /* civil_from_days (Hinnant) */
    int64_t z = days + 719468;
    const int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    const unsigned doe = (unsigned)(z - era * 146097);
    const unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t y = (int64_t)yoe + era * 400;
    const unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    const unsigned mp = (5 * doy + 2) / 153;
    const unsigned d = doy - (153 * mp + 2) / 5 + 1;
    const unsigned m = mp < 10 ? mp + 3 : mp - 9;
    y += m <= 2;
    snprintf(buf, len, "%04lld-%02u-%02uT%02d:%02d:%02dZ", (long long)y, m, d, (int)(secs / 3600),
             (int)(secs / 60 % 60), (int)(secs % 60));
}

static int hexval(unsigned char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

char *herald_pct_decode(const char *s, size_t n)
{
    char *out = xmalloc(n + 1);
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] != '%') {
            out[o++] = s[i];
            continue;
        }
        int h = i + 1 < n ? hexval((unsigned char)s[i + 1]) : -1;
        int l = i + 2 < n ? hexval((unsigned char)s[i + 2]) : -1;
        if (h < 0 || l < 0 || (h == 0 && l == 0)) {
            free(out);
            return NULL;
        }
        out[o++] = (char)(h * 16 + l);
        i += 2;
    }
    out[o] = '\0';
    return out;
}
