/*
 * l10n.c - message catalogues, locale choice and plural forms (see l10n.h).
 *
 * The .po reader takes the subset of gettext's format a translator's tool
 * writes: comments, msgid, msgid_plural, msgstr, msgstr[N] and continued
 * strings, with the C escapes \n \t \" \\. msgctxt is refused (keys are
 * unique without it). The msgid is a stable key ("prefs.title"), not the
 * English text, so a change of English wording never orphans a
 * translation. An entry marked "#, fuzzy" or with an empty msgstr counts
 * as untranslated, as gettext does.
 *
 * Invariant: a parsed catalogue's Plural-Forms was evaluated for n = 0..1000
 * at parse time and gave an index below nplurals every time, so nget never
 * indexes past a form.
 */
#include "l10n.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "pagerender.h"

struct l10n_entry {
    char *key;
    char **forms; /* nforms texts: 1, or nplurals for a plural entry */
    size_t nforms;
    bool plural;
};

struct l10n_catalog {
    char *locale;
    char *dir; /* "ltr" or "rtl" */
    char *plural_expr;
    int nplurals;
    struct l10n_entry *entries;
    size_t n;
};

/* ---- plural expressions ------------------------------------------------- */

/* A recursive-descent evaluator over C's operator precedence. */
struct pexpr {
    const char *p;
    unsigned long n;
    bool bad;
};

static void pskip(struct pexpr *e)
{
    while (*e->p == ' ' || *e->p == '\t')
        e->p++;
}

static bool peat(struct pexpr *e, const char *tok)
{
    pskip(e);
    size_t len = strlen(tok);
    if (strncmp(e->p, tok, len) != 0) return false;
    /* "<" must not take the first half of "<=", "=" of "==" etc. */
    if (len == 1 && strchr("<>!", tok[0]) && e->p[1] == '=') return false;
    if (len == 1 && (tok[0] == '&' || tok[0] == '|')) return false;
    e->p += len;
    return true;
}

static long p_ternary(struct pexpr *e);

static long p_primary(struct pexpr *e)
{
    pskip(e);
    if (peat(e, "(")) {
        long v = p_ternary(e);
        if (!peat(e, ")")) e->bad = true;
        return v;
    }
    if (peat(e, "!")) return !p_primary(e);
    if (*e->p == 'n') {
        e->p++;
        return (long)e->n;
    }
    if (isdigit((unsigned char)*e->p)) {
        char *end;
        long v = strtol(e->p, &end, 10);
        e->p = end;
        return v;
    }
    e->bad = true;
    return 0;
}

static long p_mul(struct pexpr *e)
{
    long v = p_primary(e);
    for (;;) {
        if (peat(e, "*")) {
            v *= p_primary(e);
        } else if (peat(e, "/") || peat(e, "%")) {
            char op = e->p[-1];
            long r = p_primary(e);
            if (r == 0) {
                e->bad = true;
                return 0;
            }
            v = op == '/' ? v / r : v % r;
        } else {
            return v;
        }
    }
}

static long p_add(struct pexpr *e)
{
    long v = p_mul(e);
    for (;;) {
        if (peat(e, "+")) v += p_mul(e);
        else if (peat(e, "-")) v -= p_mul(e);
        else return v;
    }
}

static long p_rel(struct pexpr *e)
{
    long v = p_add(e);
    for (;;) {
        if (peat(e, "<=")) v = v <= p_add(e);
        else if (peat(e, ">=")) v = v >= p_add(e);
        else if (peat(e, "<")) v = v < p_add(e);
        else if (peat(e, ">")) v = v > p_add(e);
        else return v;
    }
}

static long p_eq(struct pexpr *e)
{
    long v = p_rel(e);
    for (;;) {
        if (peat(e, "==")) v = v == p_rel(e);
        else if (peat(e, "!=")) v = v != p_rel(e);
        else return v;
    }
}

static long p_and(struct pexpr *e)
{
    long v = p_eq(e);
    while (peat(e, "&&")) {
        long r = p_eq(e); /* both sides parsed: no short circuit needed without side effects */
        v = v && r;
    }
    return v;
}

static long p_or(struct pexpr *e)
{
    long v = p_and(e);
    while (peat(e, "||")) {
        long r = p_and(e);
        v = v || r;
    }
    return v;
}

static long p_ternary(struct pexpr *e)
{
    long c = p_or(e);
    if (!peat(e, "?")) return c;
    long a = p_ternary(e);
    if (!peat(e, ":")) e->bad = true;
    long b = p_ternary(e);
    return c ? a : b;
}

int l10n_plural_eval(const char *expr, unsigned long n)
{
    struct pexpr e = {expr, n, false};
    long v = p_ternary(&e);
    pskip(&e);
    if (*e.p == ';') e.p++;
    pskip(&e);
    if (e.bad || *e.p || v < 0 || v > 1000) return -HERALD_EINVAL;
    return (int)v;
}

/* ---- the .po reader ----------------------------------------------------- */

struct po {
    const char *file;
    int line;
    char *err;
    size_t errlen;
};

static int po_fail(struct po *po, const char *what)
{
    herald_seterr(po->err, po->errlen, "%s:%d: %s", po->file, po->line, what);
    return -HERALD_EINVAL;
}

/* Appends the C-quoted string starting at s (at its opening quote) to out. */
static int po_string(struct po *po, const char *s, struct strbuf *out)
{
    while (*s == ' ' || *s == '\t')
        s++;
    if (*s != '"') return po_fail(po, "expected a string in double quotes");
    for (s++; *s && *s != '"'; s++) {
        if (*s != '\\') {
            strbuf_add(out, s, 1);
            continue;
        }
        switch (*++s) {
        case 'n':
            strbuf_adds(out, "\n");
            break;
        case 't':
            strbuf_adds(out, "\t");
            break;
        case '"':
        case '\\':
            strbuf_add(out, s, 1);
            break;
        default:
            return po_fail(po, "unknown escape in a string (use \\n \\t \\\" or \\\\)");
        }
    }
    if (*s != '"') return po_fail(po, "a string is not closed");
    for (s++; *s == ' ' || *s == '\t' || *s == '\r'; s++)
        ;
    if (*s) return po_fail(po, "text after the closing quote");
    return 0;
}

/* The entry being read. */
struct po_entry {
    struct strbuf id, id_plural, str[8];
    bool has_id, has_plural, has_str[8], fuzzy;
    int nstr;        /* highest msgstr index + 1 */
    int line;        /* of msgid */
    struct strbuf *cur; /* what a continuation line extends */
};

static void entry_reset(struct po_entry *pe)
{
    strbuf_free(&pe->id);
    strbuf_free(&pe->id_plural);
    for (int i = 0; i < 8; i++)
        strbuf_free(&pe->str[i]);
    memset(pe, 0, sizeof(*pe));
}

static const char *sb_text(const struct strbuf *sb) { return sb->buf ? sb->buf : ""; }

/* Reads the header entry's fields (msgid ""). */
static int po_header(struct po *po, struct l10n_catalog *c, const char *h)
{
    for (const char *line = h; *line;) {
        const char *nl = strchr(line, '\n');
        size_t len = nl ? (size_t)(nl - line) : strlen(line);
        if (len > 13 && strncasecmp(line, "Plural-Forms:", 13) == 0) {
            char *v = xstrndup(line + 13, len - 13);
            char *np = strstr(v, "nplurals="), *pl = strstr(v, "plural=");
            /* "plural=" also occurs inside "nplurals=": take the one after it. */
            if (pl == np + 1) pl = strstr(np + 9, "plural=");
            int nplurals = np ? (int)strtol(np + 9, NULL, 10) : 0;
            if (!np || !pl || nplurals < 1 || nplurals > 8) {
                free(v);
                return po_fail(po, "Plural-Forms: write it like \"nplurals=2; plural=(n != 1);\" (1..8 forms)");
            }
            free(c->plural_expr);
            c->plural_expr = xstrdup(pl + 7);
            c->nplurals = nplurals;
            free(v);
            for (unsigned long n = 0; n <= 1000; n++) {
                int idx = l10n_plural_eval(c->plural_expr, n);
                if (idx < 0) return po_fail(po, "Plural-Forms: the plural expression does not parse");
                if (idx >= c->nplurals) return po_fail(po, "Plural-Forms: the plural expression gives a form beyond nplurals");
            }
        } else if (len > 12 && strncasecmp(line, "X-Direction:", 12) == 0) {
            char v[8] = "";
            const char *s = line + 12;
            size_t vl = len - 12;
            while (vl && (*s == ' ' || *s == '\t'))
                s++, vl--;
            while (vl && (s[vl - 1] == ' ' || s[vl - 1] == '\t' || s[vl - 1] == '\r'))
                vl--;
            if (vl < sizeof(v)) memcpy(v, s, vl), v[vl] = '\0';
            if (strcmp(v, "ltr") != 0 && strcmp(v, "rtl") != 0) return po_fail(po, "X-Direction: ltr or rtl");
            free(c->dir);
            c->dir = xstrdup(v);
        }
        line += len + (nl ? 1 : 0);
    }
    return 0;
}

static int entry_finish(struct po *po, struct l10n_catalog *c, struct po_entry *pe)
{
    if (!pe->has_id) {
        if (pe->nstr || pe->has_plural) return po_fail(po, "msgstr without a msgid before it");
        return 0;
    }
    int saved = po->line;
    po->line = pe->line;
    int rc = 0;
    if (pe->id.len == 0) { /* the header */
        rc = po_header(po, c, sb_text(&pe->str[0]));
        goto out;
    }
    if (!pe->has_plural && (pe->nstr != 1 || !pe->has_str[0])) {
        rc = po_fail(po, "this msgid needs one msgstr \"...\" (msgstr[N] only after msgid_plural)");
        goto out;
    }
    if (pe->has_plural) {
        for (int i = 0; i < pe->nstr; i++)
            if (!pe->has_str[i]) {
                rc = po_fail(po, "msgstr[N] forms must be numbered 0, 1, ... without a gap");
                goto out;
            }
        if (pe->nstr != c->nplurals) {
            char msg[160];
            snprintf(msg, sizeof(msg), "\"%.60s\" has %d plural forms; the header's Plural-Forms says %d",
                     sb_text(&pe->id), pe->nstr, c->nplurals);
            rc = po_fail(po, msg);
            goto out;
        }
    }
    for (size_t i = 0; i < c->n; i++)
        if (strcmp(c->entries[i].key, pe->id.buf) == 0) {
            char msg[128];
            snprintf(msg, sizeof(msg), "\"%.60s\" is defined twice", pe->id.buf);
            rc = po_fail(po, msg);
            goto out;
        }
    c->entries = xrealloc(c->entries, (c->n + 1) * sizeof(*c->entries));
    struct l10n_entry *e = &c->entries[c->n++];
    e->key = xstrdup(pe->id.buf);
    e->plural = pe->has_plural;
    e->nforms = (size_t)pe->nstr;
    e->forms = xcalloc(e->nforms, sizeof(char *));
    bool empty = false;
    for (size_t i = 0; i < e->nforms; i++) {
        e->forms[i] = xstrdup(sb_text(&pe->str[i]));
        empty = empty || !e->forms[i][0];
    }
    if (pe->fuzzy || empty) { /* untranslated: known key, no text */
        for (size_t i = 0; i < e->nforms; i++)
            free(e->forms[i]);
        free(e->forms);
        e->forms = NULL;
        e->nforms = 0;
    }
out:
    po->line = saved;
    entry_reset(pe);
    return rc;
}

int l10n_catalog_parse(const char *file, const char *locale, const char *text, size_t len,
                       struct l10n_catalog **out, char *err, size_t errlen)
{
    *out = NULL;
    struct po po = {file, 0, err, errlen};
    struct l10n_catalog *c = xcalloc(1, sizeof(*c));
    c->locale = xstrdup(locale);
    c->dir = xstrdup("ltr");
    c->plural_expr = xstrdup("(n != 1)");
    c->nplurals = 2;
    struct po_entry pe;
    memset(&pe, 0, sizeof(pe));
    bool next_fuzzy = false;
    int rc = 0;
    if (memchr(text, '\0', len)) {
        po.line = 1;
        rc = po_fail(&po, "the file holds a NUL byte (not a text file)");
        goto done;
    }
    size_t i = 0;
    if (len >= 3 && memcmp(text, "\xEF\xBB\xBF", 3) == 0) i = 3; /* a BOM some editors write */
    while (i < len) {
        const char *nl = memchr(text + i, '\n', len - i);
        size_t end = nl ? (size_t)(nl - text) : len;
        char *line = xstrndup(text + i, end - i);
        i = end + 1;
        po.line++;
        size_t ll = strlen(line);
        if (ll && line[ll - 1] == '\r') line[--ll] = '\0';
        const char *s = line;
        while (*s == ' ' || *s == '\t')
            s++;
        rc = 0;
        if (!*s) {
            rc = entry_finish(&po, c, &pe);
        } else if (s[0] == '#') {
            if (s[1] == ',' && strstr(s, "fuzzy")) next_fuzzy = true;
        } else if (strncmp(s, "msgctxt", 7) == 0) {
            rc = po_fail(&po, "msgctxt is not used in herald's catalogues (every key is unique)");
        } else if (strncmp(s, "msgid_plural", 12) == 0) {
            if (!pe.has_id || pe.nstr) rc = po_fail(&po, "msgid_plural must follow its msgid");
            else {
                pe.has_plural = true;
                strbuf_reset(&pe.id_plural);
                pe.cur = &pe.id_plural;
                rc = po_string(&po, s + 12, pe.cur);
            }
        } else if (strncmp(s, "msgid", 5) == 0) {
            if (pe.has_id) rc = entry_finish(&po, c, &pe); /* no blank line between entries */
            if (rc == 0) {
                pe.has_id = true;
                pe.fuzzy = next_fuzzy;
                next_fuzzy = false;
                pe.line = po.line;
                pe.cur = &pe.id;
                rc = po_string(&po, s + 5, pe.cur);
            }
        } else if (strncmp(s, "msgstr", 6) == 0) {
            int idx = 0;
            const char *v = s + 6;
            if (*v == '[') {
                char *e;
                long k = strtol(v + 1, &e, 10);
                if (!pe.has_plural) rc = po_fail(&po, "msgstr[N] without msgid_plural");
                else if (e == v + 1 || *e != ']' || k < 0 || k >= 8) rc = po_fail(&po, "msgstr[N]: N is 0..7");
                idx = (int)k;
                v = e + 1;
            } else if (pe.has_plural) {
                rc = po_fail(&po, "a plural entry takes msgstr[0], msgstr[1], ...");
            }
            if (rc == 0 && !pe.has_id) rc = po_fail(&po, "msgstr without a msgid before it");
            if (rc == 0 && pe.has_str[idx]) rc = po_fail(&po, "the same msgstr twice");
            if (rc == 0) {
                pe.has_str[idx] = true;
                if (idx + 1 > pe.nstr) pe.nstr = idx + 1;
                pe.cur = &pe.str[idx];
                rc = po_string(&po, v, pe.cur);
            }
        } else if (s[0] == '"') {
            if (!pe.cur) rc = po_fail(&po, "a string continues nothing (it must follow msgid or msgstr)");
            else rc = po_string(&po, s, pe.cur);
        } else {
            rc = po_fail(&po, "not a .po line (expected msgid, msgid_plural, msgstr, a \"string\" or # comment)");
        }
        free(line);
        if (rc < 0) goto done;
    }
    rc = entry_finish(&po, c, &pe);
done:
    entry_reset(&pe);
    if (rc < 0) {
        l10n_catalog_free(c);
        return rc;
    }
    *out = c;
    return 0;
}

void l10n_catalog_free(struct l10n_catalog *c)
{
    if (!c) return;
    for (size_t i = 0; i < c->n; i++) {
        for (size_t k = 0; k < c->entries[i].nforms; k++)
            free(c->entries[i].forms[k]);
        free(c->entries[i].forms);
        free(c->entries[i].key);
    }
    free(c->entries);
    free(c->locale);
    free(c->dir);
    free(c->plural_expr);
    free(c);
}

const char *l10n_catalog_locale(const struct l10n_catalog *c) { return c->locale; }
const char *l10n_catalog_dir(const struct l10n_catalog *c) { return c->dir; }
size_t l10n_catalog_count(const struct l10n_catalog *c) { return c->n; }
const char *l10n_catalog_key(const struct l10n_catalog *c, size_t i) { return i < c->n ? c->entries[i].key : NULL; }

static const struct l10n_entry *entry(const struct l10n_catalog *c, const char *key)
{
    for (size_t i = 0; c && i < c->n; i++)
        if (strcmp(c->entries[i].key, key) == 0) return &c->entries[i];
    return NULL;
}

bool l10n_catalog_is_plural(const struct l10n_catalog *c, const char *key)
{
    const struct l10n_entry *e = entry(c, key);
    return e && e->plural;
}

const char *l10n_catalog_get(const struct l10n_catalog *c, const char *key)
{
    const struct l10n_entry *e = entry(c, key);
    return e && e->nforms ? e->forms[0] : NULL;
}

const char *l10n_catalog_nget(const struct l10n_catalog *c, const char *key, unsigned long n)
{
    const struct l10n_entry *e = entry(c, key);
    if (!e || !e->nforms) return NULL;
    if (!e->plural) return e->forms[0];
    int idx = l10n_plural_eval(c->plural_expr, n);
    if (idx < 0 || (size_t)idx >= e->nforms) idx = 0;
    return e->forms[idx];
}

/* ---- sets --------------------------------------------------------------- */

struct l10n_set {
    int refs;
    char *default_locale;
    struct l10n_catalog **cats;
    size_t n;
};

struct l10n_set *l10n_set_new(const char *default_locale)
{
    struct l10n_set *s = xcalloc(1, sizeof(*s));
    s->refs = 1;
    s->default_locale = xstrdup(default_locale);
    return s;
}

void l10n_set_add(struct l10n_set *s, struct l10n_catalog *c)
{
    s->cats = xrealloc(s->cats, (s->n + 1) * sizeof(*s->cats));
    s->cats[s->n++] = c;
}

struct l10n_set *l10n_set_ref(struct l10n_set *s)
{
    if (s) s->refs++;
    return s;
}

void l10n_set_unref(struct l10n_set *s)
{
    if (!s || --s->refs > 0) return;
    for (size_t i = 0; i < s->n; i++)
        l10n_catalog_free(s->cats[i]);
    free(s->cats);
    free(s->default_locale);
    free(s);
}

size_t l10n_set_count(const struct l10n_set *s) { return s ? s->n : 0; }
const struct l10n_catalog *l10n_set_at(const struct l10n_set *s, size_t i) { return i < s->n ? s->cats[i] : NULL; }

const struct l10n_catalog *l10n_set_find(const struct l10n_set *s, const char *locale)
{
    for (size_t i = 0; s && locale && i < s->n; i++)
        if (strcasecmp(s->cats[i]->locale, locale) == 0) return s->cats[i];
    return NULL;
}

const struct l10n_catalog *l10n_set_default(const struct l10n_set *s)
{
    return s ? l10n_set_find(s, s->default_locale) : NULL;
}

int l10n_set_missing(const struct l10n_set *s, struct strbuf *report)
{
    int n = 0;
    for (size_t a = 0; a < s->n; a++)
        for (size_t b = 0; b < s->n; b++) {
            if (a == b) continue;
            for (size_t k = 0; k < s->cats[a]->n; k++) {
                const char *key = s->cats[a]->entries[k].key;
                if (!s->cats[a]->entries[k].nforms || l10n_catalog_get(s->cats[b], key)) continue;
                /* Once per missing key, named by the first catalogue that has it. */
                bool first = true;
                for (size_t p = 0; p < a && first; p++)
                    first = p == b || !l10n_catalog_get(s->cats[p], key);
                if (!first) continue;
                strbuf_addf(report, "%s lacks \"%s\" (which %s has)\n", s->cats[b]->locale, key,
                            s->cats[a]->locale);
                n++;
            }
        }
    return n;
}

/* ---- Accept-Language ---------------------------------------------------- */

/* A language tag as RFC 4647 ranges have it: ALPHA{1,8} ("-" alnum{1,8})*, or "*". */
static bool tag_ok(const char *t, size_t len)
{
    if (len == 1 && t[0] == '*') return true;
    size_t run = 0;
    bool first = true;
    for (size_t i = 0; i < len; i++) {
        if (t[i] == '-') {
            if (run == 0) return false;
            run = 0;
            first = false;
            continue;
        }
        if (!(first ? isalpha((unsigned char)t[i]) : isalnum((unsigned char)t[i])) || ++run > 8) return false;
    }
    return run > 0;
}

/* q = 0, 0.x, 0.xx, 0.xxx, 1, 1.0.. as thousandths, or -1. */
static int qvalue(const char *s, size_t len)
{
    if (len == 0 || (s[0] != '0' && s[0] != '1')) return -1;
    int v = (s[0] - '0') * 1000;
    if (len == 1) return v;
    if (s[1] != '.' || len > 5) return -1;
    int scale = 100;
    for (size_t i = 2; i < len; i++, scale /= 10) {
        if (!isdigit((unsigned char)s[i])) return -1;
        v += (s[i] - '0') * scale;
    }
    return v > 1000 ? -1 : v;
}

size_t l10n_accept_parse(const char *header, struct l10n_accept *out, size_t max)
{
    size_t n = 0;
    if (!header) return 0;
    for (const char *p = header; *p && n < max;) {
        const char *comma = strchr(p, ',');
        size_t len = comma ? (size_t)(comma - p) : strlen(p);
        const char *item = p;
        p += len + (comma ? 1 : 0);
        while (len && (*item == ' ' || *item == '\t'))
            item++, len--;
        const char *semi = memchr(item, ';', len);
        size_t tlen = semi ? (size_t)(semi - item) : len;
        while (tlen && (item[tlen - 1] == ' ' || item[tlen - 1] == '\t'))
            tlen--;
        int q = 1000;
        if (semi) {
            const char *qp = semi + 1;
            size_t qlen = len - (size_t)(qp - item);
            while (qlen && (*qp == ' ' || *qp == '\t'))
                qp++, qlen--;
            while (qlen && (qp[qlen - 1] == ' ' || qp[qlen - 1] == '\t'))
                qlen--;
            if (qlen < 2 || (qp[0] != 'q' && qp[0] != 'Q') || qp[1] != '=') continue;
            q = qvalue(qp + 2, qlen - 2);
        }
        if (q <= 0 || tlen == 0 || tlen >= sizeof(out->tag) || !tag_ok(item, tlen)) continue;
        struct l10n_accept a;
        for (size_t i = 0; i < tlen; i++)
            a.tag[i] = (char)tolower((unsigned char)item[i]);
        a.tag[tlen] = '\0';
        a.q = q;
        /* Insertion keeps header order among equal q. */
        size_t at = n;
        while (at > 0 && out[at - 1].q < q)
            at--;
        memmove(out + at + 1, out + at, (n - at) * sizeof(*out));
        out[at] = a;
        n++;
    }
    return n;
}

/* The catalogue for one tag: exact, else the tag's primary language, else a
 * catalogue whose primary language is the tag's. */
static const struct l10n_catalog *match(const struct l10n_set *s, const char *tag)
{
    if (!tag || !*tag || strcmp(tag, "*") == 0) return NULL;
    const struct l10n_catalog *c = l10n_set_find(s, tag);
    if (c) return c;
    char primary[16];
    size_t plen = strcspn(tag, "-_");
    if (plen == 0 || plen >= sizeof(primary)) return NULL;
    memcpy(primary, tag, plen);
    primary[plen] = '\0';
    if ((c = l10n_set_find(s, primary)) != NULL) return c;
    for (size_t i = 0; i < s->n; i++) {
        const char *loc = s->cats[i]->locale;
        if (strncasecmp(loc, primary, plen) == 0 && (loc[plen] == '-' || loc[plen] == '_')) return s->cats[i];
    }
    return NULL;
}

const struct l10n_catalog *l10n_choose(const struct l10n_set *s, const char *profile_locale,
                                       const char *accept_language)
{
    if (!s) return NULL;
    const struct l10n_catalog *c = match(s, profile_locale);
    if (c) return c;
    struct l10n_accept acc[L10N_ACCEPT_MAX];
    size_t n = l10n_accept_parse(accept_language, acc, L10N_ACCEPT_MAX);
    for (size_t i = 0; i < n; i++)
        if ((c = match(s, acc[i].tag)) != NULL) return c;
    return l10n_set_default(s);
}

/* ---- text into a page --------------------------------------------------- */

void l10n_put(struct strbuf *out, const struct l10n_set *s, const struct l10n_catalog *c, const char *key,
              unsigned long n, const struct l10n_arg *args, size_t nargs)
{
    const char *text = c ? l10n_catalog_nget(c, key, n) : NULL;
    if (!text) {
        const struct l10n_catalog *d = l10n_set_default(s);
        text = d ? l10n_catalog_nget(d, key, n) : NULL;
    }
    if (!text) {
        pagerender_escape(out, key);
        return;
    }
    struct strbuf lit;
    strbuf_init(&lit);
    for (const char *p = text; *p;) {
        if (*p == '{') {
            size_t len = strspn(p + 1, "abcdefghijklmnopqrstuvwxyz_0123456789");
            if (len && p[1 + len] == '}') {
                const struct l10n_arg *a = NULL;
                for (size_t i = 0; i < nargs && !a; i++)
                    if (strlen(args[i].name) == len && strncmp(args[i].name, p + 1, len) == 0) a = &args[i];
                if (a) {
                    if (lit.len) pagerender_escape(out, lit.buf);
                    strbuf_reset(&lit);
                    strbuf_adds(out, a->html ? a->html : "");
                    p += len + 2;
                    continue;
                }
            }
        }
        strbuf_add(&lit, p, 1);
        p++;
    }
    if (lit.len) pagerender_escape(out, lit.buf);
    strbuf_free(&lit);
}
