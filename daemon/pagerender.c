/*
 * pagerender.c - forms in, HTML out, for the pages behind the links in
 * every message (see pagerender.h; page.c does the I/O).
 *
 * Invariant: no byte reaches a page except through a literal in this file
 * or pagerender_escape(). The pages carry no script and no external asset,
 * so the Content-Security-Policy page.c sends (default-src 'none') holds
 * them whole. Forms post to the page's own URL (no action attribute), so
 * they work under any path prefix a proxy puts in front of herald.
 */
#include "pagerender.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "channel.h"
#include "job.h"
#include "profile.h"

/* ---- HTML --------------------------------------------------------------- */

/* Length of the valid UTF-8 sequence at s (1..4), or 0 when it is not one. */
static size_t utf8_len(const unsigned char *s)
{
    unsigned char c = s[0];
    if (c < 0x80) return 1;
    if (c >= 0xC2 && c <= 0xDF) return (s[1] & 0xC0) == 0x80 ? 2 : 0;
    if (c >= 0xE0 && c <= 0xEF) {
        unsigned char lo = c == 0xE0 ? 0xA0 : 0x80,
                      hi = c == 0xED ? 0x9F : 0xBF; /* no overlong, no surrogate */
        return s[1] >= lo && s[1] <= hi && (s[2] & 0xC0) == 0x80 ? 3 : 0;
    }
    if (c >= 0xF0 && c <= 0xF4) {
        unsigned char lo = c == 0xF0 ? 0x90 : 0x80, hi = c == 0xF4 ? 0x8F : 0xBF;
        return s[1] >= lo && s[1] <= hi && (s[2] & 0xC0) == 0x80 && (s[3] & 0xC0) == 0x80 ? 4 : 0;
    }
    return 0;
}

void pagerender_escape(struct strbuf *out, const char *s)
{
    if (!s) return;
    const unsigned char *p = (const unsigned char *)s;
    while (*p) {
        const char *rep = NULL;
        switch (*p) {
        case '&':
            rep = "&amp;";
            break;
        case '<':
            rep = "&lt;";
            break;
        case '>':
            rep = "&gt;";
            break;
        case '"':
            rep = "&quot;";
            break;
        case '\'':
            rep = "&#39;";
            break;
        default:
            break;
        }
        if (rep) {
            strbuf_adds(out, rep);
            p++;
            continue;
        }
        size_t n = utf8_len(p);
        if (n == 0 || (*p < 0x20 && *p != '\t' && *p != '\n') || *p == 0x7F) {
            strbuf_adds(out, "\xEF\xBF\xBD"); /* U+FFFD */
            p++;
            continue;
        }
        strbuf_add(out, (const char *)p, n);
        p += n;
    }
}

static void esc(struct strbuf *out, const char *s) { pagerender_escape(out, s); }

/* ---- forms -------------------------------------------------------------- */

static int hexval(int c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* Decodes n bytes of application/x-www-form-urlencoded text; NULL on bad
 * percent-encoding or a NUL byte. */
static char *url_decode(const char *s, size_t n)
{
    char *out = xmalloc(n + 1), *o = out;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (c == '+') {
            c = ' ';
        } else if (c == '%') {
            if (i + 2 >= n) goto bad;
            int hi = hexval((unsigned char)s[i + 1]), lo = hexval((unsigned char)s[i + 2]);
            if (hi < 0 || lo < 0) goto bad;
            c = (char)(hi * 16 + lo);
            i += 2;
        }
        if (c == '\0') goto bad;
        *o++ = c;
    }
    *o = '\0';
    return out;
bad:
    free(out);
    return NULL;
}

static int form_add(struct pagerender_form *f, char *name, char *value, char *err, size_t errlen)
{
    if (f->n >= PAGERENDER_FORM_MAX_FIELDS) {
        free(name);
        free(value);
        herald_seterr(err, errlen, "the form has more than %d fields", PAGERENDER_FORM_MAX_FIELDS);
        return -HERALD_EINVAL;
    }
    f->fields = xrealloc(f->fields, (f->n + 1) * sizeof(*f->fields));
    f->fields[f->n].name = name;
    f->fields[f->n].value = value;
    f->n++;
    return 0;
}

static int parse_urlencoded(const char *body, size_t len, struct pagerender_form *f, char *err, size_t errlen)
{
    size_t i = 0;
    while (i < len) {
        const char *amp = memchr(body + i, '&', len - i);
        size_t end = amp ? (size_t)(amp - body) : len;
        if (end > i) {
            const char *eq = memchr(body + i, '=', end - i);
            size_t nlen = eq ? (size_t)(eq - (body + i)) : end - i;
            char *name = url_decode(body + i, nlen);
            char *value = eq ? url_decode(eq + 1, end - (size_t)(eq + 1 - body)) : xstrdup("");
            if (!name || !value) {
                free(name);
                free(value);
                return herald_fail(err, errlen, "the form is not valid percent-encoding");
            }
            int rc = form_add(f, name, value, err, errlen);
            if (rc < 0) return rc;
        }
        i = end + 1;
    }
    return 0;
}

/* The value of parameter key in a header value such as
 * `form-data; name="x"` or `multipart/form-data; boundary=y`: a new string
 * with the quotes removed, or NULL. The match is on a whole parameter name
 * (so "name" does not match "filename"). */
static char *header_param(const char *v, size_t vlen, const char *key)
{
    size_t klen = strlen(key), i = 0;
    while (i < vlen) {
        const char *semi = memchr(v + i, ';', vlen - i);
        if (!semi) break;
        i = (size_t)(semi - v) + 1;
        while (i < vlen && (v[i] == ' ' || v[i] == '\t'))
            i++;
        if (vlen - i > klen && strncasecmp(v + i, key, klen) == 0 && v[i + klen] == '=') {
            i += klen + 1;
            if (i < vlen && v[i] == '"') {
                const char *q = memchr(v + i + 1, '"', vlen - i - 1);
                if (!q) return NULL;
                return xstrndup(v + i + 1, (size_t)(q - (v + i + 1)));
            }
            size_t e = i;
            while (e < vlen && v[e] != ';' && v[e] != ' ' && v[e] != '\t')
                e++;
            return xstrndup(v + i, e - i);
        }
    }
    return NULL;
}

static int parse_multipart(const char *ctype, const char *body, size_t len, struct pagerender_form *f,
                           char *err, size_t errlen)
{
    char *boundary = header_param(ctype, strlen(ctype), "boundary");
    if (!boundary || !*boundary || strlen(boundary) > 70) {
        free(boundary);
        return herald_fail(err, errlen, "multipart/form-data without a valid boundary");
    }
    struct strbuf delim;
    strbuf_init(&delim);
    strbuf_addf(&delim, "\r\n--%s", boundary);
    free(boundary);
    int rc = 0;
    /* The first delimiter may open the body (no CRLF before it). */
    const char *p;
    if (len >= delim.len - 2 && memcmp(body, delim.buf + 2, delim.len - 2) == 0)
        p = body + delim.len - 2;
    else if ((p = memmem(body, len, delim.buf, delim.len)) != NULL)
        p += delim.len;
    else
        goto bad;
    const char *end = body + len;
    for (;;) {
        if (end - p >= 2 && p[0] == '-' && p[1] == '-') break; /* closing delimiter */
        while (p < end && (*p == ' ' || *p == '\t'))
            p++; /* transport padding */
        if (end - p < 2 || p[0] != '\r' || p[1] != '\n') goto bad;
        p += 2;
        const char *hend = memmem(p, (size_t)(end - p), "\r\n\r\n", 4);
        const char *blank = (end - p >= 2 && p[0] == '\r' && p[1] == '\n') ? p : NULL;
        const char *content = blank ? p + 2 : hend ? hend + 4 : NULL;
        if (!content) goto bad;
        const char *hstop = blank ? p : hend;
        char *name = NULL;
        bool file = false;
        for (const char *h = p; h < hstop;) {
            const char *eol = memmem(h, (size_t)(hstop - h), "\r\n", 2);
            size_t hl = eol ? (size_t)(eol - h) : (size_t)(hstop - h);
            static const char cd[] = "content-disposition:";
            if (hl >= sizeof(cd) - 1 && strncasecmp(h, cd, sizeof(cd) - 1) == 0) {
                char *fn = header_param(h, hl, "filename");
                file = fn != NULL;
                free(fn);
                free(name);
                name = header_param(h, hl, "name");
            }
            h += hl + (eol ? 2 : 0);
        }
        const char *next = memmem(content, (size_t)(end - content), delim.buf, delim.len);
        if (!next || !name) {
            free(name);
            goto bad;
        }
        if (!file) {
            size_t vlen = (size_t)(next - content);
            if (memchr(content, '\0', vlen) || strlen(name) == 0) {
                free(name);
                goto bad;
            }
            rc = form_add(f, name, xstrndup(content, vlen), err, errlen);
            if (rc < 0) goto out;
        } else {
            free(name);
        }
        p = next + delim.len;
    }
out:
    strbuf_free(&delim);
    return rc;
bad:
    strbuf_free(&delim);
    return herald_fail(err, errlen, "the multipart/form-data body is malformed");
}

int pagerender_form_parse(const char *content_type, const char *body, size_t len, struct pagerender_form *f,
                          char *err, size_t errlen)
{
    memset(f, 0, sizeof(*f));
    int rc;
    static const char mp[] = "multipart/form-data";
    if (content_type && strncasecmp(content_type, mp, sizeof(mp) - 1) == 0)
        rc = parse_multipart(content_type, body, len, f, err, errlen);
    else
        rc = parse_urlencoded(body, len, f, err, errlen);
    if (rc < 0) pagerender_form_free(f);
    return rc;
}

const char *pagerender_form_get(const struct pagerender_form *f, const char *name)
{
    for (size_t i = 0; f && i < f->n; i++)
        if (strcmp(f->fields[i].name, name) == 0) return f->fields[i].value;
    return NULL;
}

bool pagerender_form_has(const struct pagerender_form *f, const char *name, const char *value)
{
    for (size_t i = 0; f && i < f->n; i++)
        if (strcmp(f->fields[i].name, name) == 0 && strcmp(f->fields[i].value, value) == 0) return true;
    return false;
}

void pagerender_form_free(struct pagerender_form *f)
{
    for (size_t i = 0; i < f->n; i++) {
        free(f->fields[i].name);
        free(f->fields[i].value);
    }
    free(f->fields);
    memset(f, 0, sizeof(*f));
}

/* ---- origins ------------------------------------------------------------ */

bool pagerender_origin(const char *url, char *buf, size_t n)
{
    size_t len = strlen(url);
    const char *sep = memmem(url, len, "://", 3);
    if (!sep) return false;
    const char *slash = memchr(sep + 3, '/', len - (size_t)(sep + 3 - url));
    size_t olen = slash ? (size_t)(slash - url) : len;
    if (olen >= n) return false;
    for (size_t i = 0; i < olen; i++)
        buf[i] = (char)tolower((unsigned char)url[i]);
    buf[olen] = '\0';
    /* The port is after the last ':' that is not inside an IPv6 [address]. */
    char *auth = buf + (sep + 3 - url), *close = strrchr(auth, ']');
    char *colon = strrchr(close ? close : auth, ':');
    if (colon && ((strncmp(buf, "https:", 6) == 0 && strcmp(colon, ":443") == 0) ||
                  (strncmp(buf, "http:", 5) == 0 && strcmp(colon, ":80") == 0)))
        *colon = '\0';
    return true;
}

/* ---- the preference form ------------------------------------------------ */

/* The person's own limits: one per channel, then "any" (all together). */
#define NFREQ ((size_t)HERALD_CH_COUNT + 1)
static const char *freq_key(size_t k)
{
    return k < HERALD_CH_COUNT ? herald_channel_name((int)k) : "any";
}

/* "HH:MM" with HH 00..23 and MM 00..59. */
static bool hhmm_valid(const char *s)
{
    return strlen(s) == 5 && isdigit((unsigned char)s[0]) && isdigit((unsigned char)s[1]) && s[2] == ':' &&
           isdigit((unsigned char)s[3]) && isdigit((unsigned char)s[4]) &&
           (s[0] - '0') * 10 + (s[1] - '0') < 24 && s[3] < '6';
}

static bool is_blank(const char *s)
{
    if (!s) return true;
    while (*s == ' ' || *s == '\t')
        s++;
    return *s == '\0';
}

/* s without surrounding spaces, into buf; false when it does not fit. */
static bool trimmed(const char *s, char *buf, size_t n)
{
    while (*s == ' ' || *s == '\t')
        s++;
    size_t len = strlen(s);
    while (len && (s[len - 1] == ' ' || s[len - 1] == '\t'))
        len--;
    if (len >= n) return false;
    memcpy(buf, s, len);
    buf[len] = '\0';
    return true;
}

static void add_error(struct pagerender_errors *errs, const char *key, const char *arg)
{
    for (size_t i = 0; i < errs->n; i++)
        if (strcmp(errs->e[i].key, key) == 0 && strcmp(errs->e[i].arg, arg ? arg : "") == 0) return;
    if (errs->n >= PAGERENDER_ERRORS_MAX) return;
    errs->e[errs->n].key = key;
    herald_copy(errs->e[errs->n].arg, sizeof(errs->e[errs->n].arg), arg ? arg : "");
    errs->n++;
}

int pagerender_changes_from_form(const struct pagerender_form *f, struct pagerender_changes *out,
                                 struct pagerender_errors *errs)
{
    memset(out, 0, sizeof(*out));
    memset(errs, 0, sizeof(*errs));
    bool on[HERALD_CH_COUNT] = {false}, withdraw[HERALD_CH_COUNT] = {false};
    bool grant[HERALD_CH_COUNT] = {false};
    int pos[HERALD_CH_COUNT];
    for (int ch = 0; ch < HERALD_CH_COUNT; ch++)
        pos[ch] = ch + 1;
    const char *topics[HERALD_PROFILE_MAX_TOPICS];
    size_t ntopics = 0;
    char pname[32], maxpos[8];
    snprintf(maxpos, sizeof(maxpos), "%d", HERALD_CH_COUNT);

    /* Pass 1: every field is known and well-formed; every problem is noted. */
    for (size_t i = 0; i < f->n; i++) {
        const char *n = f->fields[i].name, *v = f->fields[i].value;
        int ch;
        if (strcmp(n, "csrf") == 0 || strcmp(n, "channels_default") == 0 || strcmp(n, "save") == 0) continue;
        if (strncmp(n, "terms_", 6) == 0 && herald_channel_from_name(n + 6) >= 0) continue; /* the caller's */
        if (strcmp(n, "ch") == 0 || strcmp(n, "withdraw") == 0 || strcmp(n, "grant") == 0) {
            if ((ch = herald_channel_from_name(v)) < 0) {
                add_error(errs, "error.channel_unknown", NULL);
                continue;
            }
            if (n[0] == 'c')
                on[ch] = true;
            else if (n[0] == 'g')
                out->grant[ch] = true;
            else
                withdraw[ch] = true;
        } else if (strncmp(n, "pos_", 4) == 0 && (ch = herald_channel_from_name(n + 4)) >= 0) {
            char *end;
            long p = strtol(v, &end, 10);
            if (!isdigit((unsigned char)*v) || *end || p < 1 || p > HERALD_CH_COUNT) {
                add_error(errs, "error.order_number", maxpos);
                continue;
            }
            pos[ch] = (int)p;
        } else if (strcmp(n, "topic") == 0) {
            if (!job_topic_valid(v)) {
                add_error(errs, "error.topic_unknown", NULL);
                continue;
            }
            bool dup = false;
            for (size_t k = 0; k < ntopics; k++)
                dup = dup || strcmp(topics[k], v) == 0;
            if (dup) continue;
            if (ntopics >= HERALD_PROFILE_MAX_TOPICS) {
                add_error(errs, "error.topics_too_many", NULL);
                continue;
            }
            topics[ntopics++] = v;
        } else if (strcmp(n, "topic_on") == 0) {
            continue; /* checked against the topic list below */
        } else if (strcmp(n, "quiet_from") == 0 || strcmp(n, "quiet_until") == 0) {
            continue;
        } else if (strncmp(n, "freq_", 5) == 0) {
            bool known = false;
            for (size_t k = 0; k < NFREQ; k++)
                known = known || strcmp(n + 5, freq_key(k)) == 0;
            if (!known) add_error(errs, "error.unknown_field", NULL);
        } else {
            add_error(errs, "error.unknown_field", NULL);
        }
    }
    for (size_t i = 0; i < f->n; i++) {
        if (strcmp(f->fields[i].name, "topic_on") != 0) continue;
        bool listed = false;
        for (size_t k = 0; k < ntopics; k++)
            listed = listed || strcmp(topics[k], f->fields[i].value) == 0;
        if (!listed) add_error(errs, "error.topic_unlisted", NULL);
    }
    for (int a = 0; a < HERALD_CH_COUNT; a++)
        for (int b = a + 1; b < HERALD_CH_COUNT; b++)
            if (on[a] && on[b] && pos[a] == pos[b]) add_error(errs, "error.order_same", NULL);

    char qf[8] = "", qu[8] = "", quiet[16] = "";
    const char *from = pagerender_form_get(f, "quiet_from"), *until = pagerender_form_get(f, "quiet_until");
    if (is_blank(from) != is_blank(until)) {
        add_error(errs, "error.quiet_both", NULL);
    } else if (!is_blank(from)) {
        int s, e;
        if (!trimmed(from, qf, sizeof(qf)) || !trimmed(until, qu, sizeof(qu)) || !hhmm_valid(qf) ||
            !hhmm_valid(qu)) {
            add_error(errs, "error.quiet_format", NULL);
        } else {
            snprintf(quiet, sizeof(quiet), "%s-%s", qf, qu);
            if (profile_quiet_hours_parse(quiet, &s, &e) < 0) add_error(errs, "error.quiet_same", NULL);
        }
    }
    json_t *freq = json_object();
    for (size_t k = 0; k < NFREQ; k++) {
        snprintf(pname, sizeof(pname), "freq_%s", freq_key(k));
        const char *v = pagerender_form_get(f, pname);
        char t[32];
        if (is_blank(v)) continue;
        if (!trimmed(v, t, sizeof(t)) || profile_frequency_parse(t, NULL, NULL) < 0) {
            add_error(errs, "error.freq_format", freq_key(k));
            continue;
        }
        json_object_set_new(freq, freq_key(k), json_string(t));
    }
    for (int ch = 0; ch < HERALD_CH_COUNT; ch++)
        if (out->grant[ch] && withdraw[ch]) add_error(errs, "error.grant_withdraw", herald_channel_name(ch));
    if (errs->n) {
        json_decref(freq);
        memset(out, 0, sizeof(*out));
        return -HERALD_EINVAL;
    }
    memcpy(grant, out->grant, sizeof(grant));

    /* Pass 2: build the one patch. */
    json_t *patch = json_object();
    /* A person who never chose an order (campaigns' order applies) keeps
     * that unless the form changes something about channels. */
    bool unchanged = pagerender_form_has(f, "channels_default", "1");
    for (int ch = 0; ch < HERALD_CH_COUNT; ch++)
        unchanged = unchanged && on[ch] && pos[ch] == ch + 1;
    if (!unchanged) {
        json_t *chans = json_array();
        for (int p = 1; p <= HERALD_CH_COUNT; p++)
            for (int ch = 0; ch < HERALD_CH_COUNT; ch++)
                if (on[ch] && pos[ch] == p)
                    json_array_append_new(chans, json_string(herald_channel_name(ch)));
        json_object_set_new(patch, "channels", chans);
    }
    if (ntopics) {
        json_t *t = json_object();
        for (size_t k = 0; k < ntopics; k++)
            json_object_set_new(t, topics[k], json_boolean(pagerender_form_has(f, "topic_on", topics[k])));
        json_object_set_new(patch, "topics", t);
    }
    json_object_set_new(patch, "quiet_hours", quiet[0] ? json_string(quiet) : json_null());
    if (json_object_size(freq))
        json_object_set_new(patch, "frequency", freq);
    else {
        json_decref(freq);
        json_object_set_new(patch, "frequency", json_null());
    }
    out->patch = patch;
    memcpy(out->withdraw, withdraw, sizeof(withdraw));
    memcpy(out->grant, grant, sizeof(grant));
    return 0;
}

/* The channels in the order the form's pos_<channel> fields give (ties and
 * gaps in channel order); n is HERALD_CH_COUNT. */
static void form_order(const struct pagerender_form *f, int order[HERALD_CH_COUNT])
{
    long pos[HERALD_CH_COUNT];
    for (int ch = 0; ch < HERALD_CH_COUNT; ch++) {
        char name[32];
        snprintf(name, sizeof(name), "pos_%s", herald_channel_name(ch));
        const char *v = pagerender_form_get(f, name);
        pos[ch] = v && isdigit((unsigned char)*v) ? strtol(v, NULL, 10) : HERALD_CH_COUNT + 1 + ch;
        order[ch] = ch;
    }
    for (int i = 1; i < HERALD_CH_COUNT; i++) /* insertion sort: stable */
        for (int k = i; k > 0 && pos[order[k - 1]] > pos[order[k]]; k--) {
            int t = order[k];
            order[k] = order[k - 1];
            order[k - 1] = t;
        }
}

static void form_set(struct pagerender_form *f, const char *name, const char *value)
{
    for (size_t i = 0; i < f->n; i++)
        if (strcmp(f->fields[i].name, name) == 0) {
            free(f->fields[i].value);
            f->fields[i].value = xstrdup(value);
            return;
        }
    f->fields = xrealloc(f->fields, (f->n + 1) * sizeof(*f->fields));
    f->fields[f->n].name = xstrdup(name);
    f->fields[f->n].value = xstrdup(value);
    f->n++;
}

int pagerender_form_move(struct pagerender_form *f, const char *move)
{
    bool up = strncmp(move, "up:", 3) == 0;
    if (!up && strncmp(move, "down:", 5) != 0) return -HERALD_EINVAL;
    int ch = herald_channel_from_name(move + (up ? 3 : 5));
    if (ch < 0) return -HERALD_EINVAL;
    int order[HERALD_CH_COUNT], at = 0;
    form_order(f, order);
    while (order[at] != ch)
        at++;
    int to = up ? at - 1 : at + 1;
    if (to >= 0 && to < HERALD_CH_COUNT) {
        order[at] = order[to];
        order[to] = ch;
    }
    for (int i = 0; i < HERALD_CH_COUNT; i++) {
        char name[32], num[16];
        snprintf(name, sizeof(name), "pos_%s", herald_channel_name(order[i]));
        snprintf(num, sizeof(num), "%d", i + 1);
        form_set(f, name, num);
    }
    return 0;
}

void pagerender_changes_free(struct pagerender_changes *c)
{
    json_decref(c->patch);
    memset(c, 0, sizeof(*c));
}

/* ---- words -------------------------------------------------------------- */

/* Every word of a page comes from the person's catalogue (l10n.h): say()
 * appends one text with its placeholders (NULL-terminated name, html
 * pairs), sayn() the plural form for n. */
static void vsay(struct strbuf *out, const struct pagerender_lang *L, const char *key, unsigned long n, va_list ap)
{
    struct l10n_arg args[16];
    size_t nargs = 0;
    const char *name;
    while (nargs < 16 && (name = va_arg(ap, const char *)) != NULL) {
        args[nargs].name = name;
        args[nargs].html = va_arg(ap, const char *);
        nargs++;
    }
    l10n_put(out, L->set, L->cat, key, n, args, nargs);
}

static void say(struct strbuf *out, const struct pagerender_lang *L, const char *key, ...)
{
    va_list ap;
    va_start(ap, key);
    vsay(out, L, key, 1, ap);
    va_end(ap);
}

static void sayn(struct strbuf *out, const struct pagerender_lang *L, const char *key, unsigned long n, ...)
{
    va_list ap;
    va_start(ap, n);
    vsay(out, L, key, n, ap);
    va_end(ap);
}

/* Fragments of HTML that fill placeholders, freed together. */
struct frags {
    struct strbuf b[8];
    int n;
};

static struct strbuf *frag_new(struct frags *fr)
{
    if (fr->n >= 8) abort(); /* a programming error: one sentence never needs more */
    struct strbuf *sb = &fr->b[fr->n++];
    strbuf_init(sb);
    strbuf_adds(sb, ""); /* never NULL */
    return sb;
}

static void frags_free(struct frags *fr)
{
    for (int i = 0; i < fr->n; i++)
        strbuf_free(&fr->b[i]);
    fr->n = 0;
}

/* Text the person or the store gave, escaped. */
static const char *frag_text(struct frags *fr, const char *s)
{
    struct strbuf *sb = frag_new(fr);
    esc(sb, s);
    return sb->buf;
}

static const char *frag_num(struct frags *fr, long long v)
{
    struct strbuf *sb = frag_new(fr);
    strbuf_addll(sb, v);
    return sb->buf;
}

/* A channel's word: which is "one", "many", "many_title", "address" or
 * "address_title"; a name that is no channel (an old history entry) gets
 * the words of "other". */
static void chword(struct strbuf *out, const struct pagerender_lang *L, const char *channel, const char *which)
{
    char key[64];
    int ch = channel ? herald_channel_from_name(channel) : -1;
    if (ch < 0 && strncmp(which, "address", 7) == 0) which = "address";
    if (ch < 0 && strcmp(which, "many_title") == 0) which = "many";
    snprintf(key, sizeof(key), "channel.%s.%s", ch >= 0 ? herald_channel_name(ch) : "other", which);
    say(out, L, key, NULL);
}

static const char *locale_of(const struct pagerender_lang *L)
{
    return L->cat ? l10n_catalog_locale(L->cat) : NULL;
}

/* A topic as the page names it: its [topic NAME] name in the person's
 * language, else the id. */
static const char *topic_title(const struct pagerender_lang *L, const char *topic)
{
    const struct config_topic *t = config_topic_find(L->cfg, topic);
    const char *name = t ? config_text_for(&t->title, locale_of(L), L->cfg->default_locale) : NULL;
    return name ? name : topic;
}

static const char *frag_topic(struct frags *fr, const struct pagerender_lang *L, const char *topic)
{
    return frag_text(fr, topic_title(L, topic));
}

static const char *frag_ch(struct frags *fr, const struct pagerender_lang *L, const char *channel, const char *which)
{
    struct strbuf *sb = frag_new(fr);
    chword(sb, L, channel, which);
    return sb->buf;
}

static int reason_code(const char *reason)
{
    if (!reason) return HERALD_REASON_NONE;
    if (strncmp(reason, "cap:", 4) == 0) return HERALD_REASON_CAP;
    for (int i = 0; i < HERALD_REASON_COUNT; i++)
        if (strcmp(reason, herald_reason_name(i)) == 0) return i;
    return -1;
}

bool pagerender_reason_known(const char *reason) { return reason_code(reason) >= 0; }

void pagerender_reason_key(int reason, char *buf, size_t n)
{
    snprintf(buf, n, "reason.%s", reason == HERALD_REASON_NONE ? "sent" : herald_reason_name(reason));
}

void pagerender_reason(struct strbuf *out, const struct pagerender_lang *L, const char *reason,
                       const char *outcome, const char *channel, const char *topic)
{
    struct frags fr = {.n = 0};
    const char *pl = frag_ch(&fr, L, channel, "many"), *addr = frag_ch(&fr, L, channel, "address");
    bool has_topic = topic && *topic;
    const char *tp = frag_topic(&fr, L, topic);
    int code = reason_code(reason);
    char key[64];
    if (code < 0) {
        /* Provider failure reasons beyond the list: name the code as it is. */
        say(out, L, outcome && strcmp(outcome, "failed") == 0 ? "reason.other_failed" : "reason.other", "code",
            frag_text(&fr, reason), NULL);
    } else if (code == HERALD_REASON_NONE && outcome && *outcome && strcmp(outcome, "sent") != 0) {
        say(out, L, "reason.recorded", "outcome", frag_text(&fr, outcome), NULL);
    } else if (code == HERALD_REASON_QUIET_HOURS && outcome && strcmp(outcome, "deferred") == 0) {
        say(out, L, "reason.quiet_hours_deferred", NULL);
    } else {
        pagerender_reason_key(code, key, sizeof(key));
        if (has_topic && (code == HERALD_REASON_NONE || code == HERALD_REASON_TOPIC_OPT_OUT))
            herald_copy(key + strlen(key), sizeof(key) - strlen(key), "_topic");
        say(out, L, key, "channels", pl, "address", addr, "topic", tp, NULL);
    }
    frags_free(&fr);
}

static const char *outcome_key(const char *outcome)
{
    if (!outcome) return NULL;
    if (strcmp(outcome, "sent") == 0) return "outcome.sent";
    if (strcmp(outcome, "suppressed") == 0) return "outcome.suppressed";
    if (strcmp(outcome, "deferred") == 0) return "outcome.deferred";
    if (strcmp(outcome, "failed") == 0) return "outcome.failed";
    if (strcmp(outcome, "unknown") == 0) return "outcome.unknown";
    return NULL;
}

static void outcome_words(struct strbuf *out, const struct pagerender_lang *L, const char *outcome)
{
    const char *key = outcome_key(outcome);
    if (key)
        say(out, L, key, NULL);
    else
        esc(out, outcome);
}

void pagerender_when(struct strbuf *out, const struct pagerender_lang *L, int64_t t)
{
    int32_t off = tz_offset(L->tz, t);
    time_t local = (time_t)(t + off);
    struct tm tm;
    if (!gmtime_r(&local, &tm)) return;
    char year[16], month[16], day[16], day2[16], hour[16], hour12[16], minute[16], mkey[24];
    snprintf(year, sizeof(year), "%04d", tm.tm_year + 1900);
    snprintf(month, sizeof(month), "%02d", tm.tm_mon + 1);
    snprintf(day, sizeof(day), "%d", tm.tm_mday);
    snprintf(day2, sizeof(day2), "%02d", tm.tm_mday);
    snprintf(hour, sizeof(hour), "%02d", tm.tm_hour);
    snprintf(hour12, sizeof(hour12), "%d", tm.tm_hour % 12 ? tm.tm_hour % 12 : 12);
    snprintf(minute, sizeof(minute), "%02d", tm.tm_min);
    snprintf(mkey, sizeof(mkey), "time.month.%d", tm.tm_mon + 1);
    struct frags fr = {.n = 0};
    struct strbuf *mname = frag_new(&fr), *ampm = frag_new(&fr);
    say(mname, L, mkey, NULL);
    say(ampm, L, tm.tm_hour < 12 ? "time.am" : "time.pm", NULL);
    say(out, L, "time.datetime", "year", year, "month", month, "month_name", mname->buf, "day", day, "day2", day2,
        "hour", hour, "hour12", hour12, "ampm", ampm->buf, "minute", minute, "zone",
        frag_text(&fr, L->tz_name ? L->tz_name : "UTC"), NULL);
    frags_free(&fr);
}

/* An RFC 3339 time in the person's zone and the locale's format (or the
 * text as it is). */
static void when(struct strbuf *out, const struct pagerender_lang *L, const char *rfc3339)
{
    int64_t t;
    if (!rfc3339 || herald_time_parse(rfc3339, &t) < 0) {
        esc(out, rfc3339);
        return;
    }
    pagerender_when(out, L, t);
}

static const char *frag_when(struct frags *fr, const struct pagerender_lang *L, const char *rfc3339)
{
    struct strbuf *sb = frag_new(fr);
    when(sb, L, rfc3339);
    return sb->buf;
}

static const char *jstr(const json_t *o, const char *key)
{
    return json_string_value(json_object_get(o, key));
}

/* ---- documents ---------------------------------------------------------- */

static const char style[] =
    "*{box-sizing:border-box}"
    "body{font:16px/1.5 system-ui,sans-serif;margin:0;background:#f6f6f4;color:#1d1d1b;"
    "overflow-wrap:anywhere}"
    "main{max-width:44rem;margin:0 auto;padding:1.5rem}"
    "h1{font-size:1.6rem;margin:.5rem 0 1rem}h2{font-size:1.2rem;margin:2rem 0 .5rem}"
    "section{background:#fff;border:1px solid #ddd;border-radius:6px;padding:1rem 1.25rem;margin:1rem 0}"
    "table{border-collapse:collapse;width:100%}th,td{text-align:start;vertical-align:top;padding:.35rem .5rem;"
    "border-bottom:1px solid #eee}th{font-weight:600}"
    ".note{padding:.75rem 1rem;border-radius:6px;margin:1rem 0}"
    ".ok{background:#e3f4e1;border:1px solid #9ccf95}.err{background:#fbe4e2;border:1px solid #e39a93}"
    "fieldset{border:1px solid #ddd;border-radius:6px;margin:1rem 0;padding:.75rem 1rem;min-width:0}"
    "legend{font-weight:600;padding:0 .25rem}label{display:block;margin:.3rem 0}"
    "input[type=number]{width:3.5rem}input[type=text]{width:7rem}"
    "button,a.button{font:inherit;display:inline-block;min-height:44px;min-width:44px;padding:.55rem 1.1rem;"
    "border-radius:6px;border:1px solid #333;background:#1d1d1b;color:#fff;cursor:pointer;margin:.25rem .25rem .25rem 0;"
    "text-decoration:none;text-align:center}"
    "button.secondary,a.button.secondary{background:#fff;color:#1d1d1b}"
    "a{color:#1a4f8b}a:not(.button){display:inline-block;min-height:44px;padding:.6rem 0}"
    "label{min-height:44px;padding:.6rem 0;margin:0}input[type=checkbox]{width:1.4rem;height:1.4rem;"
    "vertical-align:middle;margin:0 .5rem 0 0}"
    "input[type=text],input[type=time]{font:inherit;min-height:44px;padding:.3rem .5rem;max-width:100%}"
    ":focus-visible{outline:3px solid #1a4f8b;outline-offset:2px}"
    "ol.chans{list-style:none;padding:0;margin:0}ol.chans li{border-bottom:1px solid #eee;padding:.25rem 0}"
    ".off{color:#555}blockquote.terms{margin:.5rem 0;padding:.5rem 1rem;border-inline-start:4px solid #ccc;"
    "background:#fafafa}"
    ".note ul{margin:.25rem 0 0;padding-inline-start:1.25rem}footer{margin:1.5rem 0}"
    ".muted{color:#555;font-size:.92rem}"
    /* Narrow screens: tables become cards (each cell names its column), no
     * sideways scrolling. */
    "@media (max-width:40rem){main{padding:.75rem}section{padding:.75rem}"
    "table.cards thead{position:absolute;width:1px;height:1px;overflow:hidden;clip:rect(0 0 0 0)}"
    "table.cards tr{display:block;border-bottom:1px solid #ddd;padding:.4rem 0}"
    "table.cards td{display:block;border:0;padding:.1rem 0}"
    "table.cards td::before{content:attr(data-label);display:block;font-weight:600;font-size:.85rem;color:#555}}";

/* title_html is already HTML (said or escaped). */
static void doc_open(struct strbuf *out, const struct pagerender_lang *L, const char *title_html)
{
    strbuf_adds(out, "<!DOCTYPE html>\n<html lang=\"");
    esc(out, L->cat ? l10n_catalog_locale(L->cat) : "en");
    strbuf_adds(out, "\" dir=\"");
    esc(out, L->cat ? l10n_catalog_dir(L->cat) : "ltr");
    strbuf_adds(out, "\"><head><meta charset=\"utf-8\">"
                     "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
                     "<meta name=\"robots\" content=\"noindex, nofollow\"><title>");
    strbuf_adds(out, title_html);
    strbuf_addf(out, "</title><style>%s</style></head>\n<body><main>\n<h1>", style);
    strbuf_adds(out, title_html);
    strbuf_adds(out, "</h1>\n");
}

/* Who sends these messages, their privacy policy and how to reach them,
 * on every page ([public] organisation, privacy_url, contact). */
static void doc_close(struct strbuf *out, const struct pagerender_lang *L)
{
    const struct config *cfg = L->cfg;
    bool org = cfg && cfg->organisation && *cfg->organisation, priv = cfg && cfg->privacy_url && *cfg->privacy_url,
         contact = cfg && cfg->contact && *cfg->contact;
    if (org || priv || contact) {
        struct frags fr = {.n = 0};
        strbuf_adds(out, "<footer class=\"muted\">");
        if (org) {
            strbuf_adds(out, "<p>");
            say(out, L, "site.organisation", "organisation", frag_text(&fr, cfg->organisation), NULL);
            strbuf_adds(out, "</p>");
        }
        if (priv) {
            strbuf_adds(out, "<p><a href=\"");
            esc(out, cfg->privacy_url);
            strbuf_adds(out, "\" rel=\"noopener\">");
            say(out, L, "site.privacy", NULL);
            strbuf_adds(out, "</a></p>");
        }
        if (contact) {
            strbuf_adds(out, "<p>");
            say(out, L, "site.contact", "contact", frag_text(&fr, cfg->contact), NULL);
            strbuf_adds(out, "</p>");
        }
        strbuf_adds(out, "</footer>\n");
        frags_free(&fr);
    }
    strbuf_adds(out, "</main></body></html>\n");
}

void pagerender_message(struct strbuf *out, const struct pagerender_lang *L, const char *title_key,
                        const char *text_key, const char *channel, const char *topic)
{
    struct frags fr = {.n = 0};
    struct strbuf *title = frag_new(&fr);
    say(title, L, title_key, NULL);
    doc_open(out, L, title->buf);
    strbuf_adds(out, "<p>");
    say(out, L, text_key, "channels", frag_ch(&fr, L, channel, "many"), "topic", frag_topic(&fr, L, topic), NULL);
    strbuf_adds(out, "</p>\n");
    doc_close(out, L);
    frags_free(&fr);
}

static void hidden(struct strbuf *out, const char *name, const char *value)
{
    strbuf_adds(out, "<input type=\"hidden\" name=\"");
    esc(out, name);
    strbuf_adds(out, "\" value=\"");
    esc(out, value);
    strbuf_adds(out, "\">");
}

void pagerender_unsubscribe(struct strbuf *out, const struct pagerender_ctx *ctx)
{
    const struct pagerender_lang *L = &ctx->lang;
    struct frags fr = {.n = 0};
    const char *pl = frag_ch(&fr, L, ctx->channel, "many"), *tp = frag_topic(&fr, L, ctx->topic);
    bool topic = ctx->topic && *ctx->topic;
    struct strbuf *title = frag_new(&fr);
    say(title, L, topic ? "unsub.title_topic" : "unsub.title", "channels", pl, "topic", tp, NULL);
    doc_open(out, L, title->buf);
    strbuf_adds(out, "<section><p>");
    say(out, L, topic ? "unsub.text_topic" : "unsub.text", "channels", pl, "topic", tp, NULL);
    strbuf_adds(out, "</p>\n<form method=\"post\">");
    hidden(out, "List-Unsubscribe", "One-Click");
    strbuf_adds(out, "<button type=\"submit\">");
    strbuf_adds(out, title->buf);
    strbuf_adds(out, "</button></form>\n");
    if (topic && ctx->csrf_all) {
        strbuf_adds(out, "<p>");
        say(out, L, "unsub.all_text", "channel", frag_ch(&fr, L, ctx->channel, "one"), "channels", pl, NULL);
        strbuf_adds(out, "</p>\n<form method=\"post\">");
        hidden(out, "channel", "all");
        hidden(out, "csrf", ctx->csrf_all);
        strbuf_adds(out, "<button type=\"submit\" class=\"secondary\">");
        say(out, L, "unsub.all_button", "channels", pl, NULL);
        strbuf_adds(out, "</button></form>\n");
    }
    strbuf_adds(out, "<p class=\"muted\">");
    say(out, L, "unsub.nothing_until", NULL);
    strbuf_adds(out, "</p></section>\n");
    if (ctx->prefs_href) {
        strbuf_adds(out, "<p><a href=\"");
        esc(out, ctx->prefs_href);
        strbuf_adds(out, "\">");
        say(out, L, "unsub.prefs_link", NULL);
        strbuf_adds(out, "</a>.</p>\n");
    }
    frags_free(&fr);
    doc_close(out, L);
}

/* The channels the page shows, in the person's order first, then the rest. */
static int channel_order(const json_t *prefs, int order[HERALD_CH_COUNT], bool listed[HERALD_CH_COUNT])
{
    int n = 0;
    const json_t *chans = json_object_get(prefs, "channels");
    size_t i;
    json_t *v;
    for (int ch = 0; ch < HERALD_CH_COUNT; ch++)
        listed[ch] = !json_is_array(chans);
    json_array_foreach(chans, i, v)
    {
        int ch = herald_channel_from_name(json_string_value(v));
        if (ch < 0 || listed[ch]) continue;
        listed[ch] = true;
        order[n++] = ch;
    }
    for (int ch = 0; ch < HERALD_CH_COUNT; ch++) {
        bool seen = false;
        for (int k = 0; k < n; k++)
            seen = seen || order[k] == ch;
        if (!seen) order[n++] = ch;
    }
    return n;
}

/* label_html is already HTML. */
static void profile_row(struct strbuf *out, const struct pagerender_lang *L, const char *label_html,
                        const char *value)
{
    strbuf_adds(out, "<tr><th scope=\"row\">");
    strbuf_adds(out, label_html);
    strbuf_adds(out, "</th><td>");
    if (value) {
        esc(out, value);
    } else {
        strbuf_adds(out, "<span class=\"muted\">");
        say(out, L, "profile.not_stored", NULL);
        strbuf_adds(out, "</span>");
    }
    strbuf_adds(out, "</td></tr>\n");
}

static void section_profile(struct strbuf *out, const struct pagerender_lang *L, const json_t *doc)
{
    const json_t *p = json_object_get(doc, "profile");
    struct frags fr = {.n = 0};
    strbuf_adds(out, "<section><h2>");
    say(out, L, "profile.title", NULL);
    strbuf_adds(out, "</h2>\n<table class=\"pairs\">\n");
    struct strbuf *label = frag_new(&fr);
    say(label, L, "profile.id", NULL);
    profile_row(out, L, label->buf, jstr(doc, "id"));
    for (int ch = 0; ch < HERALD_CH_COUNT; ch++) {
        const struct channel_desc *d = channel_get(ch);
        strbuf_reset(label);
        chword(label, L, herald_channel_name(ch), "address_title");
        profile_row(out, L, label->buf, jstr(p, d->address_field));
    }
    strbuf_reset(label);
    say(label, L, "profile.tz", NULL);
    profile_row(out, L, label->buf, jstr(p, "tz"));
    strbuf_reset(label);
    say(label, L, "profile.locale", NULL);
    profile_row(out, L, label->buf, jstr(p, "locale"));
    const json_t *attrs = json_object_get(p, "attributes");
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)attrs, k, v)
    {
        char *text = json_is_string(v) ? NULL : json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT);
        strbuf_reset(label);
        esc(label, k);
        profile_row(out, L, label->buf, text ? text : json_string_value(v));
        free(text);
    }
    strbuf_adds(out, "</table>\n<p class=\"muted\">");
    say(out, L, "profile.footer", NULL);
    strbuf_adds(out, "</p></section>\n");
    frags_free(&fr);
}

static const json_t *current_consent(const json_t *doc, int ch)
{
    return json_object_get(json_object_get(doc, "consent_current"), herald_channel_name(ch));
}

/* The person's own control over their data: a copy to keep, or erasure
 * (its own page asks again). Links relative to /p/{token}. */
static void section_data(struct strbuf *out, const struct pagerender_ctx *ctx)
{
    const struct pagerender_lang *L = &ctx->lang;
    if (!ctx->token) return;
    strbuf_adds(out, "<section><h2>");
    say(out, L, "data.title", NULL);
    strbuf_adds(out, "</h2>\n<p>");
    say(out, L, "data.text", NULL);
    strbuf_adds(out, "</p>\n<p><a class=\"button\" download href=\"");
    esc(out, ctx->token);
    strbuf_adds(out, "/data\">");
    say(out, L, "data.download", NULL);
    strbuf_adds(out, "</a> <a class=\"button secondary\" href=\"");
    esc(out, ctx->token);
    strbuf_adds(out, "/erase\">");
    say(out, L, "data.erase", NULL);
    strbuf_adds(out, "</a></p></section>\n");
}

static void section_receive(struct strbuf *out, const struct pagerender_lang *L, const json_t *doc)
{
    const json_t *prefs = json_object_get(doc, "preferences"), *p = json_object_get(doc, "profile");
    int order[HERALD_CH_COUNT];
    bool listed[HERALD_CH_COUNT];
    int n = channel_order(prefs, order, listed);
    bool any_order = json_is_array(json_object_get(prefs, "channels"));
    strbuf_adds(out, "<section><h2>");
    say(out, L, "receive.title", NULL);
    strbuf_adds(out, "</h2>\n<ul>\n");
    for (int i = 0; i < n; i++) {
        int ch = order[i];
        const char *name = herald_channel_name(ch);
        struct frags fr = {.n = 0};
        const char *pl = frag_ch(&fr, L, name, "many"), *aw = frag_ch(&fr, L, name, "address");
        const json_t *cc = current_consent(doc, ch);
        bool suppressed = json_is_true(json_object_get(json_object_get(doc, "suppressed"), name));
        const char *addr = jstr(p, channel_get(ch)->address_field);
        const char *key;
        if (!listed[ch]) key = "receive.off";
        else if (!cc) key = "receive.no_consent";
        else if (!json_is_true(json_object_get(cc, "granted"))) key = "receive.withdrawn";
        else if (suppressed) key = "receive.suppressed";
        else if (!addr) key = "receive.no_address";
        else key = any_order ? "receive.yes_order" : "receive.yes";
        strbuf_adds(out, "<li>");
        say(out, L, key, "channels", pl, "address", aw, "when", frag_when(&fr, L, jstr(cc, "at")), "n",
            frag_num(&fr, i + 1), NULL);
        strbuf_adds(out, "</li>\n");
        frags_free(&fr);
    }
    const json_t *topics = json_object_get(prefs, "topics");
    const char *k;
    json_t *v;
    for (int want = 0; want < 2; want++) {
        struct strbuf list;
        strbuf_init(&list);
        json_object_foreach((json_t *)topics, k, v)
        {
            if (json_is_true(v) != (want == 1)) continue;
            if (list.len) say(&list, L, "receive.list_sep", NULL);
            struct frags fr = {.n = 0};
            say(&list, L, "receive.topic_item", "topic", frag_topic(&fr, L, k), NULL);
            frags_free(&fr);
        }
        if (list.len) {
            strbuf_adds(out, "<li>");
            say(out, L, want ? "receive.topics_on" : "receive.topics_off", "topics", list.buf, NULL);
            strbuf_adds(out, "</li>\n");
        }
        strbuf_free(&list);
    }
    strbuf_adds(out, "<li>");
    say(out, L, "receive.topics_other", NULL);
    strbuf_adds(out, "</li>\n");
    const char *qh = jstr(prefs, "quiet_hours");
    struct frags fr = {.n = 0};
    if (qh) {
        strbuf_adds(out, "<li>");
        say(out, L, "receive.quiet", "hours", frag_text(&fr, qh), NULL);
        strbuf_adds(out, "</li>\n");
    }
    const json_t *freq = json_object_get(prefs, "frequency");
    json_object_foreach((json_t *)freq, k, v)
    {
        unsigned count;
        int64_t period;
        if (!json_is_string(v) || profile_frequency_parse(json_string_value(v), &count, &period) < 0)
            continue;
        frags_free(&fr);
        struct strbuf *cnt = frag_new(&fr), *per = frag_new(&fr);
        const char *num = frag_num(&fr, count);
        char ckey[48];
        int ch = herald_channel_from_name(k);
        snprintf(ckey, sizeof(ckey), "channel.%s.count", ch >= 0 ? herald_channel_name(ch) : "");
        sayn(cnt, L, ch >= 0 ? ckey : "count.messages", count, "n", num, NULL);
        const char *pkey = period % 86400 == 0 ? "period.days" : period % 3600 == 0 ? "period.hours" : "period.minutes";
        int64_t unit = period % 86400 == 0 ? 86400 : period % 3600 == 0 ? 3600 : 60;
        sayn(per, L, pkey, (unsigned long)(period / unit), "n", frag_num(&fr, period / unit), NULL);
        strbuf_adds(out, "<li>");
        say(out, L, "receive.freq", "count", cnt->buf, "period", per->buf, NULL);
        strbuf_adds(out, "</li>\n");
    }
    frags_free(&fr);
    strbuf_adds(out, "</ul></section>\n");
}

/* A table whose rows become cards on a narrow screen: each cell carries
 * its column's name (data-label) for the stacked layout. */
static void th(struct strbuf *out, const struct pagerender_lang *L, const char *key)
{
    strbuf_adds(out, "<th scope=\"col\">");
    say(out, L, key, NULL);
    strbuf_adds(out, "</th>");
}

static void td_open(struct strbuf *out, const struct pagerender_lang *L, const char *key)
{
    strbuf_adds(out, "<td data-label=\"");
    say(out, L, key, NULL);
    strbuf_adds(out, "\">");
}

static void section_consent(struct strbuf *out, const struct pagerender_lang *L, const json_t *doc)
{
    const json_t *ledger = json_object_get(doc, "consent");
    strbuf_adds(out, "<section><h2>");
    say(out, L, "consent.title", NULL);
    strbuf_adds(out, "</h2>\n<p>");
    if (!json_array_size(ledger)) {
        say(out, L, "consent.none", NULL);
        strbuf_adds(out, "</p></section>\n");
        return;
    }
    say(out, L, "consent.intro", NULL);
    strbuf_adds(out, "</p>\n<table class=\"cards\"><thead><tr>");
    th(out, L, "consent.col.when");
    th(out, L, "consent.col.channel");
    th(out, L, "consent.col.what");
    th(out, L, "consent.col.how");
    th(out, L, "consent.col.version");
    strbuf_adds(out, "</tr></thead><tbody>\n");
    size_t i;
    json_t *r;
    json_array_foreach(ledger, i, r)
    {
        strbuf_adds(out, "<tr>");
        td_open(out, L, "consent.col.when");
        when(out, L, jstr(r, "at"));
        strbuf_adds(out, "</td>");
        td_open(out, L, "consent.col.channel");
        chword(out, L, jstr(r, "channel"), "many");
        strbuf_adds(out, "</td>");
        td_open(out, L, "consent.col.what");
        say(out, L, json_is_true(json_object_get(r, "granted")) ? "consent.granted" : "consent.withdrawn", NULL);
        strbuf_adds(out, "</td>");
        td_open(out, L, "consent.col.how");
        esc(out, jstr(r, "source"));
        strbuf_adds(out, "</td>");
        td_open(out, L, "consent.col.version");
        esc(out, jstr(r, "text_version"));
        strbuf_adds(out, "</td></tr>\n");
    }
    strbuf_adds(out, "</tbody></table></section>\n");
}

/* The message this link came with, when the history still has it. */
static const json_t *this_message(const json_t *doc, const struct pagerender_ctx *ctx)
{
    size_t i;
    json_t *m;
    if (!ctx->campaign) return NULL;
    json_array_foreach(json_object_get(doc, "messages"), i, m)
    {
        const char *c = jstr(m, "campaign"), *ch = jstr(m, "channel");
        if (c && strcmp(c, ctx->campaign) == 0 && (!ctx->channel || (ch && strcmp(ch, ctx->channel) == 0)))
            return m;
    }
    return NULL;
}

static void section_this_message(struct strbuf *out, const json_t *doc, const struct pagerender_ctx *ctx)
{
    const struct pagerender_lang *L = &ctx->lang;
    if (!ctx->campaign || !*ctx->campaign) return;
    const json_t *m = this_message(doc, ctx);
    struct frags fr = {.n = 0};
    bool topic = ctx->topic && *ctx->topic;
    strbuf_adds(out, "<section><h2>");
    say(out, L, "this.title", "channel", frag_ch(&fr, L, ctx->channel, "one"), NULL);
    strbuf_adds(out, "</h2>\n<p>");
    const char *key = m ? (topic ? "this.from_topic_at" : "this.from_at") : (topic ? "this.from_topic" : "this.from");
    const char *cname = m && jstr(m, "campaign_name") ? jstr(m, "campaign_name") : ctx->campaign;
    say(out, L, key, "campaign", frag_text(&fr, cname), "topic", frag_topic(&fr, L, ctx->topic), "when",
        frag_when(&fr, L, jstr(m, "at")), NULL);
    if (m) {
        strbuf_adds(out, " ");
        pagerender_reason(out, L, jstr(m, "reason"), jstr(m, "outcome"), jstr(m, "channel"), jstr(m, "topic"));
    }
    strbuf_adds(out, "</p></section>\n");
    frags_free(&fr);
}

static void section_messages(struct strbuf *out, const struct pagerender_lang *L, const json_t *doc)
{
    const json_t *msgs = json_object_get(doc, "messages");
    strbuf_adds(out, "<section><h2>");
    say(out, L, "messages.title", NULL);
    strbuf_adds(out, "</h2>\n");
    if (!json_array_size(msgs)) {
        strbuf_adds(out, "<p>");
        say(out, L, "messages.none", NULL);
        strbuf_adds(out, "</p></section>\n");
        return;
    }
    char num[16];
    snprintf(num, sizeof(num), "%d", PAGERENDER_MESSAGES_SHOWN);
    strbuf_adds(out, "<p class=\"muted\">");
    sayn(out, L, "messages.intro", PAGERENDER_MESSAGES_SHOWN, "n", num, NULL);
    strbuf_adds(out, "</p>\n<table class=\"cards\"><thead><tr>");
    th(out, L, "messages.col.when");
    th(out, L, "messages.col.campaign");
    th(out, L, "messages.col.topic");
    th(out, L, "messages.col.channel");
    th(out, L, "messages.col.what");
    th(out, L, "messages.col.why");
    strbuf_adds(out, "</tr></thead><tbody>\n");
    size_t i;
    json_t *m;
    json_array_foreach(msgs, i, m)
    {
        if (i >= PAGERENDER_MESSAGES_SHOWN) break;
        strbuf_adds(out, "<tr>");
        td_open(out, L, "messages.col.when");
        when(out, L, jstr(m, "at"));
        strbuf_adds(out, "</td>");
        td_open(out, L, "messages.col.campaign");
        esc(out, jstr(m, "campaign_name") ? jstr(m, "campaign_name") : jstr(m, "campaign"));
        strbuf_adds(out, "</td>");
        td_open(out, L, "messages.col.topic");
        esc(out, jstr(m, "topic") ? topic_title(L, jstr(m, "topic")) : NULL);
        strbuf_adds(out, "</td>");
        td_open(out, L, "messages.col.channel");
        chword(out, L, jstr(m, "channel"), "one");
        strbuf_adds(out, "</td>");
        td_open(out, L, "messages.col.what");
        outcome_words(out, L, jstr(m, "outcome"));
        strbuf_adds(out, "</td>");
        td_open(out, L, "messages.col.why");
        pagerender_reason(out, L, jstr(m, "reason"), jstr(m, "outcome"), jstr(m, "channel"), jstr(m, "topic"));
        strbuf_adds(out, "</td></tr>\n");
    }
    strbuf_adds(out, "</tbody></table></section>\n");
}

/* Topics the form offers: the person's, this link's, and those of their messages. */
static size_t form_topics(const json_t *doc, const struct pagerender_ctx *ctx, const char **out, size_t max)
{
    size_t n = 0;
    if (ctx->submitted) {
        for (size_t i = 0; i < ctx->submitted->n && n < max; i++) {
            const struct pagerender_field *fl = &ctx->submitted->fields[i];
            if (strcmp(fl->name, "topic") != 0 || !job_topic_valid(fl->value)) continue;
            bool dup = false;
            for (size_t k = 0; k < n; k++)
                dup = dup || strcmp(out[k], fl->value) == 0;
            if (!dup) out[n++] = fl->value;
        }
        return n;
    }
    const char *k;
    json_t *v;
    size_t i;
    json_object_foreach(json_object_get(json_object_get(doc, "preferences"), "topics"), k, v)
    {
        if (n < max) out[n++] = k;
    }
    const char *extra[1 + PAGERENDER_MESSAGES_SHOWN];
    size_t nextra = 0;
    extra[nextra++] = ctx->topic;
    json_array_foreach(json_object_get(doc, "messages"), i, v)
    {
        if (nextra >= sizeof(extra) / sizeof(extra[0])) break;
        extra[nextra++] = jstr(v, "topic");
    }
    for (size_t e = 0; e < nextra; e++) {
        if (!extra[e] || !job_topic_valid(extra[e]) || n >= max) continue;
        bool dup = false;
        for (size_t j = 0; j < n; j++)
            dup = dup || strcmp(out[j], extra[e]) == 0;
        if (!dup) out[n++] = extra[e];
    }
    return n;
}

static void checkbox(struct strbuf *out, const char *name, const char *value, bool checked,
                     const char *label_html)
{
    strbuf_adds(out, "<label><input type=\"checkbox\" name=\"");
    esc(out, name);
    strbuf_adds(out, "\" value=\"");
    esc(out, value);
    strbuf_addf(out, "\"%s> %s</label>\n", checked ? " checked" : "", label_html);
}

static void text_input(struct strbuf *out, const char *type, const char *name, const char *value,
                       const char *label_html, const char *extra)
{
    strbuf_adds(out, "<label>");
    strbuf_adds(out, label_html);
    strbuf_addf(out, " <input type=\"%s\" name=\"", type);
    esc(out, name);
    strbuf_adds(out, "\" value=\"");
    esc(out, value);
    strbuf_addf(out, "\"%s></label>\n", extra ? extra : "");
}

static void section_form(struct strbuf *out, const json_t *doc, const struct pagerender_ctx *ctx)
{
    const struct pagerender_lang *L = &ctx->lang;
    const json_t *prefs = json_object_get(doc, "preferences");
    const struct pagerender_form *sub = ctx->submitted;
    int order[HERALD_CH_COUNT];
    bool listed[HERALD_CH_COUNT];
    int n = channel_order(prefs, order, listed);
    char fname[32], num[16];
    struct strbuf lab;
    strbuf_init(&lab);
    struct frags fr = {.n = 0};

    strbuf_adds(out, "<section><h2>");
    say(out, L, "form.title", NULL);
    strbuf_adds(out, "</h2>\n<form method=\"post\">\n");
    hidden(out, "csrf", ctx->csrf);
    if (sub ? pagerender_form_has(sub, "channels_default", "1")
            : !json_is_array(json_object_get(prefs, "channels")))
        hidden(out, "channels_default", "1");

    strbuf_adds(out, "<fieldset><legend>");
    say(out, L, "form.channels.legend", NULL);
    strbuf_adds(out, "</legend>\n<p class=\"muted\">");
    say(out, L, "form.channels.help", NULL);
    strbuf_adds(out, "</p>\n");
    /* The order is set by buttons that post the form back (no script):
     * the page comes back in the new order, nothing saved yet. */
    if (sub) form_order(sub, order);
    strbuf_adds(out, "<ol class=\"chans\">\n");
    for (int i = 0; i < n; i++) {
        const char *name = herald_channel_name(order[i]);
        snprintf(fname, sizeof(fname), "pos_%s", name);
        snprintf(num, sizeof(num), "%d", i + 1);
        bool on = sub ? pagerender_form_has(sub, "ch", name) : listed[order[i]];
        bool agreed = json_is_true(json_object_get(current_consent(doc, order[i]), "granted"));
        const char *pl = frag_ch(&fr, L, name, "many");
        strbuf_adds(out, "<li>");
        hidden(out, fname, num);
        strbuf_reset(&lab);
        say(&lab, L, "form.channel.on", "channels", pl, NULL);
        if (agreed) {
            checkbox(out, "ch", name, on, lab.buf);
        } else {
            /* Never ticked without an agreement: the choice is kept as it
             * is (hidden), and the box says why it cannot be ticked. */
            if (on) hidden(out, "ch", name);
            strbuf_addf(out, "<label class=\"off\"><input type=\"checkbox\" disabled aria-describedby=\"nc_%s\"> %s</label>\n",
                        name, lab.buf);
            strbuf_addf(out, "<p class=\"muted\" id=\"nc_%s\">", name);
            say(out, L, "form.channel.no_consent", "channels", pl, NULL);
            strbuf_adds(out, "</p>\n");
        }
        strbuf_adds(out, "<span class=\"moves\">");
        if (i > 0) {
            strbuf_addf(out, "<button type=\"submit\" class=\"secondary\" name=\"move\" value=\"up:%s\">", name);
            say(out, L, "form.channel.up", "channels", pl, NULL);
            strbuf_adds(out, "</button>");
        }
        if (i + 1 < n) {
            strbuf_addf(out, "<button type=\"submit\" class=\"secondary\" name=\"move\" value=\"down:%s\">", name);
            say(out, L, "form.channel.down", "channels", pl, NULL);
            strbuf_adds(out, "</button>");
        }
        strbuf_adds(out, "</span></li>\n");
        frags_free(&fr);
    }
    strbuf_adds(out, "</ol>\n");
    if (ctx->moved) {
        strbuf_adds(out, "<p class=\"note ok\" role=\"status\">");
        say(out, L, "form.channel.moved", NULL);
        strbuf_adds(out, "</p>\n");
    }
    strbuf_adds(out, "</fieldset>\n");

    const char *topics[HERALD_PROFILE_MAX_TOPICS];
    size_t nt = form_topics(doc, ctx, topics, HERALD_PROFILE_MAX_TOPICS);
    if (nt) {
        strbuf_adds(out, "<fieldset><legend>");
        say(out, L, "form.topics.legend", NULL);
        strbuf_adds(out, "</legend>\n");
        const json_t *stored = json_object_get(prefs, "topics");
        for (size_t i = 0; i < nt; i++) {
            hidden(out, "topic", topics[i]);
            bool on = sub ? pagerender_form_has(sub, "topic_on", topics[i])
                          : !json_is_false(json_object_get(stored, topics[i]));
            strbuf_reset(&lab);
            say(&lab, L, "form.topic", "topic", frag_topic(&fr, L, topics[i]), NULL);
            const struct config_topic *ct = config_topic_find(L->cfg, topics[i]);
            const char *desc = ct ? config_text_for(&ct->description, locale_of(L), L->cfg->default_locale) : NULL;
            if (desc) {
                strbuf_adds(&lab, "<br><span class=\"muted\">");
                esc(&lab, desc);
                strbuf_adds(&lab, "</span>");
            }
            checkbox(out, "topic_on", topics[i], on, lab.buf);
            frags_free(&fr);
        }
        strbuf_adds(out, "</fieldset>\n");
    }

    char qf[8] = "", qu[8] = "";
    const char *qh = jstr(prefs, "quiet_hours");
    if (qh && strlen(qh) == 11 && qh[5] == '-') {
        memcpy(qf, qh, 5);
        memcpy(qu, qh + 6, 5);
    }
    const char *vf = sub ? pagerender_form_get(sub, "quiet_from") : qf;
    const char *vu = sub ? pagerender_form_get(sub, "quiet_until") : qu;
    strbuf_adds(out, "<fieldset><legend>");
    say(out, L, "form.quiet.legend", NULL);
    strbuf_adds(out, "</legend>\n<p class=\"muted\">");
    say(out, L, "form.quiet.help", NULL);
    strbuf_adds(out, "</p>\n");
    strbuf_reset(&lab);
    say(&lab, L, "form.quiet.from", NULL);
    text_input(out, "time", "quiet_from", vf ? vf : "", lab.buf, NULL);
    strbuf_reset(&lab);
    say(&lab, L, "form.quiet.until", NULL);
    text_input(out, "time", "quiet_until", vu ? vu : "", lab.buf, NULL);
    strbuf_adds(out, "</fieldset>\n");

    strbuf_adds(out, "<fieldset><legend>");
    say(out, L, "form.freq.legend", NULL);
    strbuf_adds(out, "</legend>\n<p class=\"muted\">");
    say(out, L, "form.freq.help", NULL);
    strbuf_adds(out, "</p>\n");
    const json_t *freq = json_object_get(prefs, "frequency");
    for (size_t k = 0; k < NFREQ; k++) {
        snprintf(fname, sizeof(fname), "freq_%s", freq_key(k));
        const char *v = sub ? pagerender_form_get(sub, fname) : jstr(freq, freq_key(k));
        strbuf_reset(&lab);
        if (strcmp(freq_key(k), "any") == 0)
            say(&lab, L, "form.freq.any", NULL);
        else
            chword(&lab, L, freq_key(k), "many_title");
        text_input(out, "text", fname, v ? v : "", lab.buf, " placeholder=\"1/7d\" maxlength=\"20\"");
    }
    strbuf_adds(out, "</fieldset>\n");

    strbuf_adds(out, "<fieldset><legend>");
    say(out, L, "form.withdraw.legend", NULL);
    strbuf_adds(out, "</legend>\n");
    bool any = false;
    for (int ch = 0; ch < HERALD_CH_COUNT; ch++) {
        const json_t *cc = current_consent(doc, ch);
        if (!json_is_true(json_object_get(cc, "granted"))) continue;
        const char *name = herald_channel_name(ch);
        strbuf_reset(&lab);
        say(&lab, L, "form.withdraw.channel", "channels", frag_ch(&fr, L, name, "many"), NULL);
        checkbox(out, "withdraw", name, sub && pagerender_form_has(sub, "withdraw", name), lab.buf);
        frags_free(&fr);
        any = true;
    }
    if (!any) {
        strbuf_adds(out, "<p>");
        say(out, L, "form.withdraw.none", NULL);
        strbuf_adds(out, "</p>\n");
    }
    strbuf_adds(out, "<p class=\"muted\">");
    say(out, L, "form.withdraw.help", NULL);
    strbuf_adds(out, "</p>\n</fieldset>\n");
    /* Agreeing here: the exact terms in the person's language and their
     * version, which is kept with the agreement. */
    for (int ch = 0; ch < HERALD_CH_COUNT; ch++) {
        const struct config_terms *t = L->cfg ? &L->cfg->terms[ch] : NULL;
        if (!t || !t->present || !t->version) continue;
        if (json_is_true(json_object_get(current_consent(doc, ch), "granted"))) continue;
        const char *name = herald_channel_name(ch);
        const char *text = config_text_for(&t->text, locale_of(L), L->cfg->default_locale);
        const char *pl = frag_ch(&fr, L, name, "many");
        strbuf_adds(out, "<fieldset><legend>");
        say(out, L, "form.grant.legend", "channels", pl, NULL);
        strbuf_addf(out, "</legend>\n<blockquote class=\"terms\" id=\"terms_%s\">", name);
        esc(out, text);
        strbuf_adds(out, "</blockquote>\n<p class=\"muted\">");
        say(out, L, "form.grant.version", "version", frag_text(&fr, t->version), NULL);
        strbuf_adds(out, "</p>\n");
        char tname[32];
        snprintf(tname, sizeof(tname), "terms_%s", name);
        hidden(out, tname, t->version);
        strbuf_reset(&lab);
        say(&lab, L, "form.grant.channel", "channels", pl, "version", frag_text(&fr, t->version), NULL);
        checkbox(out, "grant", name, sub && pagerender_form_has(sub, "grant", name), lab.buf);
        strbuf_adds(out, "</fieldset>\n");
        frags_free(&fr);
    }
    strbuf_adds(out, "<button type=\"submit\" name=\"save\" value=\"1\">");
    say(out, L, "form.save", NULL);
    strbuf_adds(out, "</button>\n</form></section>\n");
    strbuf_free(&lab);
}

void pagerender_errors_say(struct strbuf *out, const struct pagerender_lang *L, const struct pagerender_error *e)
{
    struct frags fr = {.n = 0};
    const char *what = "";
    if (strcmp(e->arg, "any") == 0 || herald_channel_from_name(e->arg) >= 0) {
        struct strbuf *w = frag_new(&fr);
        if (strcmp(e->arg, "any") == 0)
            say(w, L, "form.freq.any", NULL);
        else
            chword(w, L, e->arg, "many");
        what = w->buf;
    }
    say(out, L, e->key, "max", frag_text(&fr, e->arg), "what", what, NULL);
    frags_free(&fr);
}

void pagerender_prefs(struct strbuf *out, const json_t *doc, const struct pagerender_ctx *ctx)
{
    const struct pagerender_lang *L = &ctx->lang;
    struct strbuf title;
    strbuf_init(&title);
    say(&title, L, "prefs.title", NULL);
    doc_open(out, L, title.buf);
    strbuf_free(&title);
    if (ctx->errors && ctx->errors->n) {
        strbuf_adds(out, "<div class=\"note err\" role=\"alert\"><strong>");
        say(out, L, "prefs.nothing_changed", NULL);
        strbuf_adds(out, "</strong>\n<ul>\n");
        for (size_t i = 0; i < ctx->errors->n; i++) {
            strbuf_adds(out, "<li>");
            pagerender_errors_say(out, L, &ctx->errors->e[i]);
            strbuf_adds(out, "</li>\n");
        }
        strbuf_adds(out, "</ul></div>\n");
    } else if (ctx->saved) {
        strbuf_adds(out, "<div class=\"note ok\" role=\"status\">");
        say(out, L, "prefs.saved", NULL);
        strbuf_adds(out, "</div>\n");
    }
    section_this_message(out, doc, ctx);
    section_receive(out, L, doc);
    section_form(out, doc, ctx);
    section_profile(out, L, doc);
    section_data(out, ctx);
    section_consent(out, L, doc);
    section_messages(out, L, doc);
    doc_close(out, L);
}

void pagerender_erase_confirm(struct strbuf *out, const struct pagerender_ctx *ctx)
{
    const struct pagerender_lang *L = &ctx->lang;
    struct strbuf title;
    strbuf_init(&title);
    say(&title, L, "erase.title", NULL);
    doc_open(out, L, title.buf);
    strbuf_free(&title);
    strbuf_adds(out, "<section><p>");
    say(out, L, "erase.text", NULL);
    strbuf_adds(out, "</p>\n<p>");
    say(out, L, "erase.kept", NULL);
    strbuf_adds(out, "</p>\n<form method=\"post\">");
    hidden(out, "csrf", ctx->csrf);
    strbuf_adds(out, "<button type=\"submit\" name=\"erase\" value=\"1\">");
    say(out, L, "erase.button", NULL);
    strbuf_adds(out, "</button></form>\n");
    if (ctx->token) {
        strbuf_adds(out, "<p><a class=\"button secondary\" href=\"../");
        esc(out, ctx->token);
        strbuf_adds(out, "\">");
        say(out, L, "erase.cancel", NULL);
        strbuf_adds(out, "</a></p>\n");
    }
    strbuf_adds(out, "</section>\n");
    doc_close(out, L);
}
