/*
 * precond.c - ETag and If-Match for a person's data (precond.h).
 *
 * Owns the header grammar (RFC 9110: If-Match = "*" / #entity-tag,
 * entity-tag = [ "W/" ] DQUOTE *etagc DQUOTE) and herald's ETag form.
 * Never: reads a clock, logs, or quotes the header in an error (a client
 * may put anything there). Invariant: a tag matches only when it is
 * strong and byte-for-byte the ETag herald would give that rev, so "007"
 * never stands for 7.
 */
#include "precond.h"

#include <stdio.h>
#include <string.h>

static bool is_ows(char c)
{
    return c == ' ' || c == '\t';
}

/* etagc = %x21 / %x23-7E / obs-text */
static bool is_etagc(unsigned char c)
{
    return c == 0x21 || (c >= 0x23 && c != 0x7f);
}

/* The rev of an opaque tag of herald's form (canonical decimal), or -1. */
static int64_t tag_rev(const char *s, size_t len)
{
    if (len == 0 || len > 18 || (len > 1 && s[0] == '0')) return -1;
    int64_t v = 0;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9') return -1;
        v = v * 10 + (s[i] - '0');
    }
    return v;
}

int precond_if_match_parse(const char *value, struct precond_if_match *m, char *err, size_t errlen)
{
    memset(m, 0, sizeof(*m));
    if (!value) return 0;
    m->present = true;
    const char *p = value;
    while (is_ows(*p)) p++;
    if (*p == '*') {
        const char *q = p + 1;
        while (is_ows(*q)) q++;
        if (*q) return herald_fail(err, errlen, "If-Match: \"*\" must stand alone");
        m->any = true;
        return 0;
    }
    size_t ntags = 0;
    for (;;) {
        while (is_ows(*p) || *p == ',') p++; /* empty list elements are allowed */
        if (!*p) break;
        bool weak = false;
        if (p[0] == 'W' && p[1] == '/') {
            weak = true;
            p += 2;
        }
        if (*p != '"') return herald_fail(err, errlen, "If-Match: expected \"*\" or quoted entity-tags (\"<rev>\")");
        const char *open = ++p;
        while (*p && *p != '"') {
            if (!is_etagc((unsigned char)*p)) return herald_fail(err, errlen, "If-Match: invalid character in an entity-tag");
            p++;
        }
        if (*p != '"') return herald_fail(err, errlen, "If-Match: unterminated entity-tag");
        size_t len = (size_t)(p - open);
        p++;
        while (is_ows(*p)) p++;
        if (*p && *p != ',') return herald_fail(err, errlen, "If-Match: entity-tags must be separated by commas");
        if (++ntags > PRECOND_MAX_TAGS) {
            herald_seterr(err, errlen, "If-Match: more than %d entity-tags", PRECOND_MAX_TAGS);
            return -HERALD_EINVAL;
        }
        int64_t rev = weak ? -1 : tag_rev(open, len);
        if (rev >= 0) m->revs[m->nrevs++] = rev;
    }
    if (ntags == 0) return herald_fail(err, errlen, "If-Match: empty (expected \"*\" or quoted entity-tags)");
    return 0;
}

bool precond_if_match_ok(const struct precond_if_match *m, bool exists, int64_t rev)
{
    if (!m || !m->present) return true;
    if (!exists) return false;
    if (m->any) return true;
    for (size_t i = 0; i < m->nrevs; i++)
        if (m->revs[i] == rev) return true;
    return false;
}

void precond_etag(char *buf, size_t n, int64_t rev)
{
    snprintf(buf, n, "\"%lld\"", (long long)rev);
}

void precond_if_match_arg(struct strbuf *sb, const struct precond_if_match *m)
{
    strbuf_reset(sb);
    strbuf_add(sb, "", 0);
    if (!m || !m->present) return;
    if (m->any) {
        strbuf_adds(sb, "*");
        return;
    }
    strbuf_adds(sb, " ");
    for (size_t i = 0; i < m->nrevs; i++) {
        strbuf_addll(sb, (long long)m->revs[i]);
        strbuf_adds(sb, " ");
    }
}
