/*
 * template.c - compiles `{{field}}` templates into segments and renders them
 * per recipient.
 *
 * Owns: the template syntax and how an attribute value becomes text.
 * Never: reads anything but the attributes and vars it is handed, logs, or
 * fails at render time. A campaign with a bad template is refused once, at
 * compile time (a job error); after that every recipient renders, and a field
 * the person lacks renders empty and is counted, so a gap in one profile
 * never stops a campaign.
 * Invariant: the segments, read in order, reproduce the source exactly with
 * each `{{ name }}` replaced by its value (or `{{ name | text }}` by text
 * when the person lacks it); the link fields never fall back to the
 * person's attributes nor to a default (neither a profile nor a job may
 * supply its own unsubscribe link).
 */
#include "template.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#ifdef __SSE2__
#include <emmintrin.h>
#endif

#define FIELD_NAME_MAX 64

enum seg_kind { SEG_TEXT, SEG_ATTR, SEG_UNSUBSCRIBE, SEG_PREFERENCES };

struct segment {
    enum seg_kind kind;
    const char *s; /* SEG_TEXT: into t->src; otherwise the field name (NUL-terminated) */
    size_t len;
    const char *def; /* SEG_ATTR with `|default`: into t->src (not NUL-terminated); else NULL */
    size_t deflen;
};

struct template {
    char *src;
    size_t srclen; /* asked for each rendering: kept, not counted again */
    struct segment *segs;
    size_t nsegs;
    char **fields; /* distinct names, in order of first use */
    size_t nfields;
};

static bool is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

static bool is_name_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
           c == '.' || c == '-';
}

static void add_segment(struct template *t, size_t *cap, enum seg_kind kind, const char *s, size_t len)
{
    if (t->nsegs == *cap) {
        *cap = *cap ? *cap * 2 : 8;
        t->segs = xrealloc(t->segs, *cap * sizeof(*t->segs));
    }
    t->segs[t->nsegs++] = (struct segment){kind, s, len, NULL, 0};
}

/* Returns the stored copy of name, adding it to the distinct list on first use. */
static const char *intern_field(struct template *t, const char *name, size_t len)
{
    for (size_t i = 0; i < t->nfields; i++)
        if (strlen(t->fields[i]) == len && memcmp(t->fields[i], name, len) == 0) return t->fields[i];
    t->fields = xrealloc(t->fields, (t->nfields + 1) * sizeof(*t->fields));
    t->fields[t->nfields] = xstrndup(name, len);
    return t->fields[t->nfields++];
}

int template_compile(const char *src, struct template **out, char *err, size_t errlen)
{
    *out = NULL;
    struct template *t = xcalloc(1, sizeof(*t));
    t->src = xstrdup(src);
    t->srclen = strlen(src);
    size_t cap = 0;
    const char *s = t->src;
    size_t lit = 0; /* start of the pending literal */
    size_t i = 0;
    while (s[i]) {
        if (s[i] != '{' || s[i + 1] != '{') {
            i++;
            continue;
        }
        const char *close = strstr(s + i + 2, "}}");
        if (!close) {
            herald_seterr(err, errlen, "unclosed {{ at offset %zu", i);
            template_free(t);
            return -HERALD_EINVAL;
        }
        size_t a = i + 2, b = (size_t)(close - s);
        /* `{{ name | default text }}`: the name ends at the first '|'; the
         * default is the rest up to the "}}", trimmed (it may be empty). */
        const char *bar = memchr(s + a, '|', b - a);
        size_t da = 0, db = 0;
        if (bar) {
            da = (size_t)(bar - s) + 1;
            db = b;
            b = (size_t)(bar - s);
            while (da < db && is_space(s[da])) da++;
            while (db > da && is_space(s[db - 1])) db--;
        }
        while (a < b && is_space(s[a])) a++;
        while (b > a && is_space(s[b - 1])) b--;
        if (a == b) {
            herald_seterr(err, errlen, "empty field name at offset %zu", i);
            template_free(t);
            return -HERALD_EINVAL;
        }
        bool ok = b - a <= FIELD_NAME_MAX;
        for (size_t k = a; ok && k < b; k++) ok = is_name_char(s[k]);
        if (!ok) {
            herald_seterr(err, errlen, "bad field name at offset %zu (expected 1..%d of A-Z a-z 0-9 _ . -)", i,
                          FIELD_NAME_MAX);
            template_free(t);
            return -HERALD_EINVAL;
        }
        if (i > lit) add_segment(t, &cap, SEG_TEXT, s + lit, i - lit);
        const char *name = intern_field(t, s + a, b - a);
        enum seg_kind kind = SEG_ATTR;
        if (strcmp(name, "unsubscribe_url") == 0)
            kind = SEG_UNSUBSCRIBE;
        else if (strcmp(name, "preferences_url") == 0)
            kind = SEG_PREFERENCES;
        if (bar && kind != SEG_ATTR) {
            /* A signed link must never be replaced by text from the job. */
            herald_seterr(err, errlen, "%s takes no default at offset %zu", name, i);
            template_free(t);
            return -HERALD_EINVAL;
        }
        add_segment(t, &cap, kind, name, b - a);
        if (bar) {
            t->segs[t->nsegs - 1].def = s + da;
            t->segs[t->nsegs - 1].deflen = db - da;
        }
        i = (size_t)(close - s) + 2;
        lit = i;
    }
    if (i > lit) add_segment(t, &cap, SEG_TEXT, s + lit, i - lit);
    *out = t;
    return 0;
}

size_t template_source_len(const struct template *t)
{
    return t->srclen;
}

void template_free(struct template *t)
{
    if (!t) return;
    for (size_t i = 0; i < t->nfields; i++) free(t->fields[i]);
    free(t->fields);
    free(t->segs);
    free(t->src);
    free(t);
}

size_t template_nfields(const struct template *t)
{
    return t ? t->nfields : 0;
}

const char *template_field(const struct template *t, size_t i)
{
    return t && i < t->nfields ? t->fields[i] : NULL;
}

void template_escape_html(struct strbuf *out, const char *s, size_t len)
{
    /* A table rather than a switch per character: most of what is escaped
     * (links, names) has nothing to escape, and the scan is the cost. */
    static const char *const rep[256] = {
        ['&'] = "&amp;", ['<'] = "&lt;", ['>'] = "&gt;", ['"'] = "&quot;", ['\''] = "&#39;",
    };
    size_t run = 0; /* start of the pending span that needs no escaping */
    size_t i = 0;
#ifdef __SSE2__
    /* Sixteen at a time up to the first character to escape (a link, the
     * most of what is escaped, has none). */
    const __m128i amp = _mm_set1_epi8('&'), lt = _mm_set1_epi8('<'), gt = _mm_set1_epi8('>'),
                  quot = _mm_set1_epi8('"'), apos = _mm_set1_epi8('\'');
    for (; i + 16 <= len; i += 16) {
        __m128i x = _mm_loadu_si128((const __m128i *)(const void *)(s + i));
        __m128i hit = _mm_or_si128(_mm_or_si128(_mm_cmpeq_epi8(x, amp), _mm_cmpeq_epi8(x, lt)),
                                   _mm_or_si128(_mm_or_si128(_mm_cmpeq_epi8(x, gt), _mm_cmpeq_epi8(x, quot)),
                                                _mm_cmpeq_epi8(x, apos)));
        if (_mm_movemask_epi8(hit)) break;
    }
#endif
    for (; i < len; i++) {
        const char *r = rep[(unsigned char)s[i]];
        if (!r) continue;
        strbuf_add(out, s + run, i - run);
        strbuf_adds(out, r);
        run = i + 1;
    }
    strbuf_add(out, s + run, len - run);
}

/* The shortest "%g" text that reads back as the same double, so 19.99 is
 * "19.99" and not the 17-digit form; ".0" keeps it a JSON real as jansson
 * writes it. */
static size_t format_real(double v, char *buf, size_t n)
{
    int len = 0;
    for (int prec = 1; prec <= 17; prec++) {
        len = snprintf(buf, n, "%.*g", prec, v);
        if (strtod(buf, NULL) == v) break;
    }
    if (len < 0 || (size_t)len >= n) return 0;
    if (!strpbrk(buf, ".eEni") && (size_t)len + 2 < n) {
        memcpy(buf + len, ".0", 3);
        len += 2;
    }
    return (size_t)len;
}

/* Writes the text of a scalar value into buf or points *s at it; returns
 * false when the value does not render (null, object, array). */
static bool value_text(const json_t *v, char *buf, size_t n, const char **s, size_t *len)
{
    switch (json_typeof(v)) {
    case JSON_STRING:
        *s = json_string_value(v);
        *len = json_string_length(v);
        return true;
    case JSON_INTEGER: {
        int k = snprintf(buf, n, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
        *s = buf;
        *len = k > 0 ? (size_t)k : 0;
        return true;
    }
    case JSON_REAL:
        *len = format_real(json_real_value(v), buf, n);
        *s = buf;
        return true;
    case JSON_TRUE:
        *s = "true";
        *len = 4;
        return true;
    case JSON_FALSE:
        *s = "false";
        *len = 5;
        return true;
    default:
        return false;
    }
}

static void emit(struct strbuf *out, const char *s, size_t len, enum template_escape esc)
{
    if (esc == TEMPLATE_HTML)
        template_escape_html(out, s, len);
    else
        strbuf_add(out, s, len);
}

/* template_render's lookup in a jansson object: the number's text in buf. */
struct json_lookup {
    const json_t *attributes;
    char num[64];
};

static bool json_lookup(void *ctx, const char *name, const char **s, size_t *len)
{
    struct json_lookup *j = ctx;
    const json_t *v = j->attributes ? json_object_get(j->attributes, name) : NULL;
    return v && value_text(v, j->num, sizeof(j->num), s, len);
}

unsigned template_render(const struct template *t, const json_t *attributes,
                         const struct template_vars *vars, enum template_escape esc,
                         struct strbuf *out)
{
    struct json_lookup j = {.attributes = attributes};
    return template_render_with(t, json_lookup, &j, vars, esc, out);
}

unsigned template_render_with(const struct template *t, template_lookup_fn lookup, void *ctx,
                              const struct template_vars *vars, enum template_escape esc, struct strbuf *out)
{
    unsigned missing = 0;
    if (!t) return 0;
    strbuf_add(out, "", 0); /* an empty rendering is still a string */
    for (size_t i = 0; i < t->nsegs; i++) {
        const struct segment *g = &t->segs[i];
        const char *s = NULL;
        size_t len = 0;
        switch (g->kind) {
        case SEG_TEXT:
            strbuf_add(out, g->s, g->len); /* the template's own markup: never escaped */
            continue;
        case SEG_UNSUBSCRIBE:
            s = vars ? vars->unsubscribe_url : NULL;
            break;
        case SEG_PREFERENCES:
            s = vars ? vars->preferences_url : NULL;
            break;
        case SEG_ATTR: {
            if (!lookup(ctx, g->s, &s, &len)) s = NULL;
            /* The default stands in for a field the person lacks, and for an
             * empty string (a blank first name reads as none); escaped as a
             * value is, since it is text from the job, not markup. */
            if (g->def && (!s || len == 0)) {
                emit(out, g->def, g->deflen, esc);
                continue;
            }
            break;
        }
        }
        if (!s) {
            missing++;
            continue;
        }
        if (g->kind != SEG_ATTR) len = strlen(s);
        emit(out, s, len, esc);
    }
    return missing;
}
