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

int pagerender_changes_from_form(const struct pagerender_form *f, struct pagerender_changes *out, char *err,
                                 size_t errlen)
{
    memset(out, 0, sizeof(*out));
    bool on[HERALD_CH_COUNT] = {false}, withdraw[HERALD_CH_COUNT] = {false};
    int pos[HERALD_CH_COUNT];
    for (int ch = 0; ch < HERALD_CH_COUNT; ch++)
        pos[ch] = ch + 1;
    const char *topics[HERALD_PROFILE_MAX_TOPICS];
    size_t ntopics = 0;
    char pname[32];

    /* Pass 1: every field is known and well-formed. */
    for (size_t i = 0; i < f->n; i++) {
        const char *n = f->fields[i].name, *v = f->fields[i].value;
        int ch;
        if (strcmp(n, "csrf") == 0 || strcmp(n, "channels_default") == 0) continue;
        if (strcmp(n, "ch") == 0 || strcmp(n, "withdraw") == 0) {
            if ((ch = herald_channel_from_name(v)) < 0)
                return herald_fail(err, errlen, "The form names a channel this service does not have.");
            if (n[0] == 'c')
                on[ch] = true;
            else
                withdraw[ch] = true;
        } else if (strncmp(n, "pos_", 4) == 0 && (ch = herald_channel_from_name(n + 4)) >= 0) {
            char *end;
            long p = strtol(v, &end, 10);
            if (!isdigit((unsigned char)*v) || *end || p < 1 || p > HERALD_CH_COUNT) {
                herald_seterr(err, errlen, "Order of channels: use a number from 1 to %d.", HERALD_CH_COUNT);
                goto fail;
            }
            pos[ch] = (int)p;
        } else if (strcmp(n, "topic") == 0) {
            if (!job_topic_valid(v))
                return herald_fail(err, errlen, "The form names a topic this service does not have.");
            bool dup = false;
            for (size_t k = 0; k < ntopics; k++)
                dup = dup || strcmp(topics[k], v) == 0;
            if (dup) continue;
            if (ntopics >= HERALD_PROFILE_MAX_TOPICS)
                return herald_fail(err, errlen, "The form lists too many topics.");
            topics[ntopics++] = v;
        } else if (strcmp(n, "topic_on") == 0) {
            continue; /* checked against the topic list below */
        } else if (strcmp(n, "quiet_from") == 0 || strcmp(n, "quiet_until") == 0) {
            continue;
        } else if (strncmp(n, "freq_", 5) == 0) {
            bool known = false;
            for (size_t k = 0; k < NFREQ; k++)
                known = known || strcmp(n + 5, freq_key(k)) == 0;
            if (!known) goto unknown;
        } else {
            goto unknown;
        }
    }
    for (size_t i = 0; i < f->n; i++) {
        if (strcmp(f->fields[i].name, "topic_on") != 0) continue;
        bool listed = false;
        for (size_t k = 0; k < ntopics; k++)
            listed = listed || strcmp(topics[k], f->fields[i].value) == 0;
        if (!listed) return herald_fail(err, errlen, "The form turns on a topic it does not list.");
    }
    for (int a = 0; a < HERALD_CH_COUNT; a++)
        for (int b = a + 1; b < HERALD_CH_COUNT; b++)
            if (on[a] && on[b] && pos[a] == pos[b])
                return herald_fail(err, errlen,
                                   "Order of channels: give each channel you keep a different number.");

    char qf[8] = "", qu[8] = "", quiet[16] = "";
    const char *from = pagerender_form_get(f, "quiet_from"), *until = pagerender_form_get(f, "quiet_until");
    if (is_blank(from) != is_blank(until))
        return herald_fail(err, errlen,
                           "Quiet hours: give both a start and an end time, or leave both empty.");
    if (!is_blank(from)) {
        int s, e;
        if (!trimmed(from, qf, sizeof(qf)) || !trimmed(until, qu, sizeof(qu)) || !hhmm_valid(qf) ||
            !hhmm_valid(qu))
            return herald_fail(err, errlen, "Quiet hours: write times like 21:00 and 08:00.");
        snprintf(quiet, sizeof(quiet), "%s-%s", qf, qu);
        if (profile_quiet_hours_parse(quiet, &s, &e) < 0)
            return herald_fail(err, errlen, "Quiet hours: the start and the end must differ.");
    }
    json_t *freq = json_object();
    for (size_t k = 0; k < NFREQ; k++) {
        snprintf(pname, sizeof(pname), "freq_%s", freq_key(k));
        const char *v = pagerender_form_get(f, pname);
        char t[32];
        if (is_blank(v)) continue;
        if (!trimmed(v, t, sizeof(t)) || profile_frequency_parse(t, NULL, NULL) < 0) {
            json_decref(freq);
            herald_seterr(err, errlen,
                          "How often (%s): write it like 1/7d, meaning at most 1 message in 7 days "
                          "(the period in m, h or d).",
                          strcmp(freq_key(k), "any") == 0 ? "all channels together"
                                                           : pagerender_channel_plural(freq_key(k)));
            goto fail;
        }
        json_object_set_new(freq, freq_key(k), json_string(t));
    }

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
    return 0;
unknown:
    herald_seterr(err, errlen, "The form has a field this page does not know.");
fail:
    memset(out, 0, sizeof(*out));
    return -HERALD_EINVAL;
}

void pagerender_changes_free(struct pagerender_changes *c)
{
    json_decref(c->patch);
    memset(c, 0, sizeof(*c));
}

/* ---- words -------------------------------------------------------------- */

/* The channel's words (its descriptor), or plain ones for a name that is
 * no channel (an old history entry, a forged token never gets this far). */
const char *pagerender_channel_plural(const char *channel)
{
    const struct channel_desc *d = channel_by_name(channel);
    return d ? d->plural : "messages";
}

static const char *channel_singular(const char *channel)
{
    const struct channel_desc *d = channel_by_name(channel);
    return d ? d->singular : "message";
}

static const char *address_word(const char *channel)
{
    const struct channel_desc *d = channel_by_name(channel);
    return d ? d->address_label : "address";
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

/* "about <topic>", or nothing when the topic is unknown. */
static void about(struct strbuf *out, const char *topic)
{
    if (topic && *topic) {
        strbuf_adds(out, " about \xE2\x80\x9C");
        esc(out, topic);
        strbuf_adds(out, "\xE2\x80\x9D");
    }
}

void pagerender_reason(struct strbuf *out, const char *reason, const char *outcome, const char *channel,
                       const char *topic)
{
    const char *pl = pagerender_channel_plural(channel), *addr = address_word(channel);
    bool deferred = outcome && strcmp(outcome, "deferred") == 0;
    switch (reason_code(reason)) {
    case HERALD_REASON_NONE:
        if (outcome && strcmp(outcome, "sent") != 0 && *outcome) {
            strbuf_adds(out, "Recorded as \xE2\x80\x9C");
            esc(out, outcome);
            strbuf_adds(out, "\xE2\x80\x9D with no further reason.");
            return;
        }
        strbuf_addf(out, "Sent because you had agreed to receive %s from us and had not turned off messages",
                    pl);
        about(out, topic);
        strbuf_adds(out, ".");
        return;
    case HERALD_REASON_EXPIRED:
        strbuf_adds(out, "Not sent: the campaign had already ended when it came to you.");
        return;
    case HERALD_REASON_UNKNOWN_RECIPIENT:
        strbuf_adds(out, "Not sent: we had no details stored for you at the time.");
        return;
    case HERALD_REASON_TOPIC_OPT_OUT:
        strbuf_adds(out, "Not sent: you had turned off messages");
        about(out, topic);
        strbuf_adds(out, ".");
        return;
    case HERALD_REASON_NO_CHANNEL:
        strbuf_adds(out, "Not sent: this campaign did not use any of the ways you chose to hear from us.");
        return;
    case HERALD_REASON_NO_CONSENT:
        strbuf_addf(out, "Not sent: you had not agreed to receive %s from us.", pl);
        return;
    case HERALD_REASON_CONSENT_EXPIRED:
        strbuf_addf(out, "Not sent: you agreed to receive %s so long ago that we no longer rely on it.", pl);
        return;
    case HERALD_REASON_NO_ADDRESS:
        strbuf_addf(out, "Not sent: we had no valid %s for you.", addr);
        return;
    case HERALD_REASON_SUPPRESSED:
        strbuf_addf(out,
                    "Not sent: your %s is on our do-not-send list (for example after a message bounced, "
                    "a complaint, or a STOP reply).",
                    addr);
        return;
    case HERALD_REASON_DUPLICATE:
        strbuf_adds(out, "Not sent again: this campaign had already reached you once.");
        return;
    case HERALD_REASON_QUIET_HOURS:
        if (deferred)
            strbuf_adds(out, "Held back: it came during your quiet hours, so it waited until they ended.");
        else
            strbuf_adds(out,
                        "Not sent: it came during your quiet hours and the campaign ended before they did.");
        return;
    case HERALD_REASON_CAP:
        strbuf_adds(out, "Not sent: we limit how many messages anyone gets from us in a period, and that "
                         "limit was reached.");
        return;
    case HERALD_REASON_USER_FREQUENCY:
        strbuf_adds(out, "Not sent: you asked for no more than a certain number of messages in a period, "
                         "and that number was reached.");
        return;
    case HERALD_REASON_INVALID_JOB:
        strbuf_adds(out, "Not sent: the campaign itself had an error.");
        return;
    case HERALD_REASON_PROVIDER_REJECTED:
        strbuf_addf(out, "Not delivered: the service that carries our %s refused it.", pl);
        return;
    case HERALD_REASON_PROVIDER_ERROR:
        strbuf_addf(out, "Not delivered: the service that carries our %s kept failing.", pl);
        return;
    case HERALD_REASON_PROVIDER_UNAVAILABLE:
        strbuf_addf(out, "Not delivered: the service that carries our %s was unavailable until the campaign "
                         "ended.", pl);
        return;
    case HERALD_REASON_INTERRUPTED:
        strbuf_adds(out, "We cannot tell whether it arrived: our system stopped while sending it, and we "
                         "never send a message twice.");
        return;
    case HERALD_REASON_CANCELLED:
        strbuf_adds(out, "Not sent: we cancelled this campaign before it reached you.");
        return;
    default:
        break;
    }
    /* Provider failure reasons beyond the list: name the code as it is. */
    if (outcome && strcmp(outcome, "failed") == 0)
        strbuf_adds(out, "Not delivered: the delivery service reported a problem, recorded as \xE2\x80\x9C");
    else
        strbuf_adds(out, "Recorded as \xE2\x80\x9C");
    esc(out, reason);
    strbuf_adds(out, "\xE2\x80\x9D.");
}

static const char *outcome_words(const char *outcome)
{
    if (!outcome) return "";
    if (strcmp(outcome, "sent") == 0) return "Sent";
    if (strcmp(outcome, "suppressed") == 0) return "Not sent";
    if (strcmp(outcome, "deferred") == 0) return "Held back";
    if (strcmp(outcome, "failed") == 0) return "Not delivered";
    if (strcmp(outcome, "unknown") == 0) return "Unknown";
    return outcome;
}

/* An RFC 3339 time as "2026-11-29 06:40 UTC" (or the text as it is). */
static void when(struct strbuf *out, const char *rfc3339)
{
    int64_t t;
    struct tm tm;
    char buf[32];
    if (!rfc3339 || herald_time_parse(rfc3339, &t) < 0) {
        esc(out, rfc3339);
        return;
    }
    time_t tt = (time_t)t;
    if (!gmtime_r(&tt, &tm) || !strftime(buf, sizeof(buf), "%Y-%m-%d %H:%M UTC", &tm)) {
        esc(out, rfc3339);
        return;
    }
    strbuf_adds(out, buf);
}

static const char *jstr(const json_t *o, const char *key)
{
    return json_string_value(json_object_get(o, key));
}

/* ---- documents ---------------------------------------------------------- */

static const char style[] =
    "body{font:16px/1.5 system-ui,sans-serif;margin:0;background:#f6f6f4;color:#1d1d1b}"
    "main{max-width:44rem;margin:0 auto;padding:1.5rem}"
    "h1{font-size:1.6rem;margin:.5rem 0 1rem}h2{font-size:1.2rem;margin:2rem 0 .5rem}"
    "section{background:#fff;border:1px solid #ddd;border-radius:6px;padding:1rem 1.25rem;margin:1rem 0}"
    "table{border-collapse:collapse;width:100%}th,td{text-align:left;vertical-align:top;padding:.35rem .5rem;"
    "border-bottom:1px solid #eee}th{font-weight:600}"
    ".note{padding:.75rem 1rem;border-radius:6px;margin:1rem 0}"
    ".ok{background:#e3f4e1;border:1px solid #9ccf95}.err{background:#fbe4e2;border:1px solid #e39a93}"
    "fieldset{border:1px solid #ddd;border-radius:6px;margin:1rem 0;padding:.75rem 1rem}"
    "legend{font-weight:600;padding:0 .25rem}label{display:block;margin:.3rem 0}"
    "input[type=number]{width:3.5rem}input[type=text]{width:7rem}"
    "button{font:inherit;padding:.5rem 1.1rem;border-radius:6px;border:1px solid #333;background:#1d1d1b;"
    "color:#fff;cursor:pointer;margin:.25rem 0}button.secondary{background:#fff;color:#1d1d1b}"
    ".muted{color:#555;font-size:.92rem}";

static void doc_open(struct strbuf *out, const char *title)
{
    strbuf_adds(out, "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
                     "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
                     "<meta name=\"robots\" content=\"noindex, nofollow\"><title>");
    esc(out, title);
    strbuf_addf(out, "</title><style>%s</style></head>\n<body><main>\n<h1>", style);
    esc(out, title);
    strbuf_adds(out, "</h1>\n");
}

static void doc_close(struct strbuf *out) { strbuf_adds(out, "</main></body></html>\n"); }

void pagerender_message(struct strbuf *out, const char *title, const char *text)
{
    doc_open(out, title);
    strbuf_adds(out, "<p>");
    esc(out, text);
    strbuf_adds(out, "</p>\n");
    doc_close(out);
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
    const char *pl = pagerender_channel_plural(ctx->channel);
    bool topic = ctx->topic && *ctx->topic;
    struct strbuf title;
    strbuf_init(&title);
    if (topic)
        strbuf_addf(&title, "Stop %s %s", ctx->topic, pl);
    else
        strbuf_addf(&title, "Stop all %s", pl);
    doc_open(out, title.buf);
    strbuf_adds(out, "<section><p>");
    if (topic) {
        strbuf_addf(out, "This link came with one of our %s", pl);
        about(out, ctx->topic);
        strbuf_addf(out, ". Press the button to stop %s", pl);
        about(out, ctx->topic);
        strbuf_adds(out, " at once. Other topics are not affected.</p>\n");
    } else {
        strbuf_addf(out, "Press the button to stop all %s from us at once.</p>\n", pl);
    }
    strbuf_adds(out, "<form method=\"post\">");
    hidden(out, "List-Unsubscribe", "One-Click");
    strbuf_adds(out, "<button type=\"submit\">");
    esc(out, title.buf);
    strbuf_adds(out, "</button></form>\n");
    if (topic && ctx->csrf_all) {
        strbuf_addf(out,
                    "<p>Or stop every %s from us, whatever the topic: this withdraws your agreement to "
                    "receive %s.</p>\n<form method=\"post\">",
                    channel_singular(ctx->channel), pl);
        hidden(out, "channel", "all");
        hidden(out, "csrf", ctx->csrf_all);
        strbuf_addf(out, "<button type=\"submit\" class=\"secondary\">Stop all %s</button></form>\n", pl);
    }
    strbuf_adds(out, "<p class=\"muted\">Nothing changes until you press a button.</p></section>\n");
    if (ctx->prefs_href) {
        strbuf_adds(out, "<p><a href=\"");
        esc(out, ctx->prefs_href);
        strbuf_adds(out, "\">See everything we store about you and choose what you receive</a>.</p>\n");
    }
    strbuf_free(&title);
    doc_close(out);
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

static void profile_row(struct strbuf *out, const char *label, const char *value)
{
    strbuf_adds(out, "<tr><th scope=\"row\">");
    esc(out, label);
    strbuf_adds(out, "</th><td>");
    if (value)
        esc(out, value);
    else
        strbuf_adds(out, "<span class=\"muted\">not stored</span>");
    strbuf_adds(out, "</td></tr>\n");
}

static void section_profile(struct strbuf *out, const json_t *doc)
{
    const json_t *p = json_object_get(doc, "profile");
    strbuf_adds(out, "<section><h2>What we store about you</h2>\n<table>\n");
    profile_row(out, "Your id with us", jstr(doc, "id"));
    for (int ch = 0; ch < HERALD_CH_COUNT; ch++) {
        const struct channel_desc *d = channel_get(ch);
        char label[64];
        herald_copy(label, sizeof(label), d->address_label);
        label[0] = (char)toupper((unsigned char)label[0]);
        profile_row(out, label, jstr(p, d->address_field));
    }
    profile_row(out, "Time zone", jstr(p, "tz"));
    profile_row(out, "Language", jstr(p, "locale"));
    const json_t *attrs = json_object_get(p, "attributes");
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)attrs, k, v)
    {
        char *text = json_is_string(v) ? NULL : json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT);
        profile_row(out, k, text ? text : json_string_value(v));
        free(text);
    }
    strbuf_adds(out,
                "</table>\n<p class=\"muted\">Besides this, we keep your choices, the history of your "
                "agreement to hear from us, and a record of each message we decided to send you or not "
                "(the last ones are shown here). We do not keep the text of the messages.</p></section>\n");
}

static const json_t *current_consent(const json_t *doc, int ch)
{
    return json_object_get(json_object_get(doc, "consent_current"), herald_channel_name(ch));
}

static void section_receive(struct strbuf *out, const json_t *doc)
{
    const json_t *prefs = json_object_get(doc, "preferences"), *p = json_object_get(doc, "profile");
    int order[HERALD_CH_COUNT];
    bool listed[HERALD_CH_COUNT];
    int n = channel_order(prefs, order, listed);
    bool any_order = json_is_array(json_object_get(prefs, "channels"));
    strbuf_adds(out, "<section><h2>What you receive</h2>\n<ul>\n");
    for (int i = 0; i < n; i++) {
        int ch = order[i];
        const char *name = herald_channel_name(ch), *pl = pagerender_channel_plural(name);
        const json_t *cc = current_consent(doc, ch);
        bool suppressed = json_is_true(json_object_get(json_object_get(doc, "suppressed"), name));
        const char *addr = jstr(p, channel_get(ch)->address_field);
        strbuf_adds(out, "<li>");
        if (!listed[ch]) {
            strbuf_addf(out, "You turned off %s.", pl);
        } else if (!cc) {
            strbuf_addf(out, "We have no agreement from you to send %s, so we send none.", pl);
        } else if (!json_is_true(json_object_get(cc, "granted"))) {
            strbuf_addf(out, "You withdrew your agreement to receive %s on ", pl);
            when(out, jstr(cc, "at"));
            strbuf_addf(out, "; we send none.");
        } else if (suppressed) {
            strbuf_addf(out, "Your %s is on our do-not-send list, so we send no %s.", address_word(name), pl);
        } else if (!addr) {
            strbuf_addf(out, "You agreed to receive %s, but we have no %s for you.", pl, address_word(name));
        } else {
            strbuf_addf(out, "You receive %s (you agreed on ", pl);
            when(out, jstr(cc, "at"));
            strbuf_adds(out, ")");
            if (any_order) strbuf_addf(out, ", choice number %d", i + 1);
            strbuf_adds(out, ".");
        }
        strbuf_adds(out, "</li>\n");
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
            if (list.len) strbuf_adds(&list, ", ");
            strbuf_adds(&list, "\xE2\x80\x9C");
            esc(&list, k);
            strbuf_adds(&list, "\xE2\x80\x9D");
        }
        if (list.len) strbuf_addf(out, "<li>Topics you turned %s: %s.</li>\n", want ? "on" : "off", list.buf);
        strbuf_free(&list);
    }
    strbuf_adds(out, "<li>Any other topic reaches you unless you turn it off.</li>\n");
    const char *qh = jstr(prefs, "quiet_hours");
    if (qh) {
        strbuf_adds(out, "<li>Your quiet hours: ");
        esc(out, qh);
        strbuf_adds(out, ", in your time zone; nothing arrives then.</li>\n");
    }
    const json_t *freq = json_object_get(prefs, "frequency");
    json_object_foreach((json_t *)freq, k, v)
    {
        unsigned count;
        int64_t period;
        if (!json_is_string(v) || profile_frequency_parse(json_string_value(v), &count, &period) < 0)
            continue;
        strbuf_addf(out, "<li>At most %u %s every ", count,
                    strcmp(k, "any") == 0
                        ? (count == 1 ? "message" : "messages")
                        : (count == 1 ? channel_singular(k) : pagerender_channel_plural(k)));
        if (period % 86400 == 0)
            strbuf_addf(out, "%lld day%s", (long long)(period / 86400), period == 86400 ? "" : "s");
        else if (period % 3600 == 0)
            strbuf_addf(out, "%lld hour%s", (long long)(period / 3600), period == 3600 ? "" : "s");
        else
            strbuf_addf(out, "%lld minute%s", (long long)(period / 60), period == 60 ? "" : "s");
        strbuf_adds(out, ", as you asked.</li>\n");
    }
    strbuf_adds(out, "</ul></section>\n");
}

static void section_consent(struct strbuf *out, const json_t *doc)
{
    const json_t *ledger = json_object_get(doc, "consent");
    strbuf_adds(out, "<section><h2>Your agreement to hear from us</h2>\n");
    if (!json_array_size(ledger)) {
        strbuf_adds(out, "<p>We have no record of you agreeing to anything, so we send you nothing.</p>"
                         "</section>\n");
        return;
    }
    strbuf_adds(out, "<p>Every change is kept, oldest first: this is our proof of what you agreed to.</p>\n"
                     "<table><thead><tr><th>When</th><th>Channel</th><th>What</th><th>How</th>"
                     "<th>Terms version</th></tr></thead><tbody>\n");
    size_t i;
    json_t *r;
    json_array_foreach(ledger, i, r)
    {
        strbuf_adds(out, "<tr><td>");
        when(out, jstr(r, "at"));
        strbuf_addf(out, "</td><td>%s</td><td>%s</td><td>", pagerender_channel_plural(jstr(r, "channel")),
                    json_is_true(json_object_get(r, "granted")) ? "You agreed" : "Withdrawn");
        esc(out, jstr(r, "source"));
        strbuf_adds(out, "</td><td>");
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
    if (!ctx->campaign || !*ctx->campaign) return;
    const json_t *m = this_message(doc, ctx);
    strbuf_addf(out, "<section><h2>Why you got this %s</h2>\n<p>", channel_singular(ctx->channel));
    strbuf_adds(out, "It came from our campaign \xE2\x80\x9C");
    esc(out, ctx->campaign);
    strbuf_adds(out, "\xE2\x80\x9D");
    about(out, ctx->topic);
    if (m) {
        strbuf_adds(out, " on ");
        when(out, jstr(m, "at"));
        strbuf_adds(out, ". ");
        pagerender_reason(out, jstr(m, "reason"), jstr(m, "outcome"), jstr(m, "channel"), jstr(m, "topic"));
    } else {
        strbuf_adds(out, ".");
    }
    strbuf_adds(out, "</p></section>\n");
}

static void section_messages(struct strbuf *out, const json_t *doc)
{
    const json_t *msgs = json_object_get(doc, "messages");
    strbuf_adds(out, "<section><h2>Your last messages, and why</h2>\n");
    if (!json_array_size(msgs)) {
        strbuf_adds(out, "<p>We have no record of any message to you.</p></section>\n");
        return;
    }
    strbuf_addf(out,
                "<p class=\"muted\">Newest first (at most %d). Every decision is listed, also when we "
                "decided not to send.</p>\n<table><thead><tr><th>When</th><th>Campaign</th><th>Topic</th>"
                "<th>Channel</th><th>What happened</th><th>Why</th></tr></thead><tbody>\n",
                PAGERENDER_MESSAGES_SHOWN);
    size_t i;
    json_t *m;
    json_array_foreach(msgs, i, m)
    {
        if (i >= PAGERENDER_MESSAGES_SHOWN) break;
        strbuf_adds(out, "<tr><td>");
        when(out, jstr(m, "at"));
        strbuf_adds(out, "</td><td>");
        esc(out, jstr(m, "campaign"));
        strbuf_adds(out, "</td><td>");
        esc(out, jstr(m, "topic"));
        strbuf_addf(out, "</td><td>%s</td><td>", channel_singular(jstr(m, "channel")));
        esc(out, outcome_words(jstr(m, "outcome")));
        strbuf_adds(out, "</td><td>");
        pagerender_reason(out, jstr(m, "reason"), jstr(m, "outcome"), jstr(m, "channel"), jstr(m, "topic"));
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
                       const char *label, const char *extra)
{
    strbuf_adds(out, "<label>");
    esc(out, label);
    strbuf_addf(out, " <input type=\"%s\" name=\"", type);
    esc(out, name);
    strbuf_adds(out, "\" value=\"");
    esc(out, value);
    strbuf_addf(out, "\"%s></label>\n", extra ? extra : "");
}

static void section_form(struct strbuf *out, const json_t *doc, const struct pagerender_ctx *ctx)
{
    const json_t *prefs = json_object_get(doc, "preferences");
    const struct pagerender_form *sub = ctx->submitted;
    int order[HERALD_CH_COUNT];
    bool listed[HERALD_CH_COUNT];
    int n = channel_order(prefs, order, listed);
    char fname[32], num[16];
    struct strbuf lab;
    strbuf_init(&lab);

    strbuf_adds(out, "<section><h2>Change what you receive</h2>\n<form method=\"post\">\n");
    hidden(out, "csrf", ctx->csrf);
    if (sub ? pagerender_form_has(sub, "channels_default", "1")
            : !json_is_array(json_object_get(prefs, "channels")))
        hidden(out, "channels_default", "1");

    strbuf_adds(out, "<fieldset><legend>Channels, in the order you prefer</legend>\n"
                     "<p class=\"muted\">We use the first channel that a campaign has and that you agreed "
                     "to; we never send the same campaign twice.</p>\n");
    for (int i = 0; i < n; i++) {
        const char *name = herald_channel_name(order[i]);
        snprintf(fname, sizeof(fname), "pos_%s", name);
        snprintf(num, sizeof(num), "%d", i + 1);
        bool on = sub ? pagerender_form_has(sub, "ch", name) : listed[order[i]];
        const char *pos = sub ? pagerender_form_get(sub, fname) : num;
        strbuf_reset(&lab);
        strbuf_addf(&lab, "Send me %s", pagerender_channel_plural(name));
        checkbox(out, "ch", name, on, lab.buf);
        strbuf_reset(&lab);
        strbuf_addf(&lab, "Place of %s in my order", pagerender_channel_plural(name));
        text_input(out, "number", fname, pos ? pos : num, lab.buf, " min=\"1\" max=\"9\"");
    }
    strbuf_adds(out, "</fieldset>\n");

    const char *topics[HERALD_PROFILE_MAX_TOPICS];
    size_t nt = form_topics(doc, ctx, topics, HERALD_PROFILE_MAX_TOPICS);
    if (nt) {
        strbuf_adds(out, "<fieldset><legend>Topics</legend>\n");
        const json_t *stored = json_object_get(prefs, "topics");
        for (size_t i = 0; i < nt; i++) {
            hidden(out, "topic", topics[i]);
            bool on = sub ? pagerender_form_has(sub, "topic_on", topics[i])
                          : !json_is_false(json_object_get(stored, topics[i]));
            strbuf_reset(&lab);
            strbuf_adds(&lab, "Messages");
            about(&lab, topics[i]);
            checkbox(out, "topic_on", topics[i], on, lab.buf);
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
    strbuf_adds(out, "<fieldset><legend>Quiet hours</legend>\n<p class=\"muted\">Nothing is sent between "
                     "these times, in your time zone. Leave both empty for none.</p>\n");
    text_input(out, "time", "quiet_from", vf ? vf : "", "From", NULL);
    text_input(out, "time", "quiet_until", vu ? vu : "", "Until", NULL);
    strbuf_adds(out, "</fieldset>\n");

    strbuf_adds(out,
                "<fieldset><legend>How often at most</legend>\n<p class=\"muted\">Write 1/7d for at most "
                "one message every 7 days (periods in m, h or d). Leave empty for no limit of your "
                "own.</p>\n");
    const json_t *freq = json_object_get(prefs, "frequency");
    for (size_t k = 0; k < NFREQ; k++) {
        snprintf(fname, sizeof(fname), "freq_%s", freq_key(k));
        const char *v = sub ? pagerender_form_get(sub, fname) : jstr(freq, freq_key(k));
        strbuf_reset(&lab);
        if (strcmp(freq_key(k), "any") == 0)
            strbuf_adds(&lab, "All channels together");
        else
            strbuf_addf(&lab, "%c%s", toupper((unsigned char)pagerender_channel_plural(freq_key(k))[0]),
                        pagerender_channel_plural(freq_key(k)) + 1);
        text_input(out, "text", fname, v ? v : "", lab.buf, " placeholder=\"1/7d\" maxlength=\"20\"");
    }
    strbuf_adds(out, "</fieldset>\n");

    strbuf_adds(out, "<fieldset><legend>Withdraw your agreement</legend>\n");
    bool any = false;
    for (int ch = 0; ch < HERALD_CH_COUNT; ch++) {
        const json_t *cc = current_consent(doc, ch);
        if (!json_is_true(json_object_get(cc, "granted"))) continue;
        const char *name = herald_channel_name(ch);
        strbuf_reset(&lab);
        strbuf_addf(&lab, "Withdraw my agreement to receive %s", pagerender_channel_plural(name));
        checkbox(out, "withdraw", name, sub && pagerender_form_has(sub, "withdraw", name), lab.buf);
        any = true;
    }
    if (!any)
        strbuf_adds(out, "<p>You have not agreed to any channel, so there is nothing to withdraw.</p>\n");
    strbuf_adds(out, "<p class=\"muted\">To give your agreement again, use the place where you first signed "
                     "up: it shows you the exact terms you agree to, and we keep which version you saw.</p>\n"
                     "</fieldset>\n<button type=\"submit\">Save my choices</button>\n</form></section>\n");
    strbuf_free(&lab);
}

void pagerender_prefs(struct strbuf *out, const json_t *doc, const struct pagerender_ctx *ctx)
{
    doc_open(out, "Your messages from us");
    if (ctx->error) {
        strbuf_adds(out, "<div class=\"note err\" role=\"alert\"><strong>Nothing was changed.</strong> ");
        esc(out, ctx->error);
        strbuf_adds(out, "</div>\n");
    } else if (ctx->saved) {
        strbuf_adds(out, "<div class=\"note ok\" role=\"status\">Your choices are saved. They apply to every "
                         "message not yet sent.</div>\n");
    }
    section_this_message(out, doc, ctx);
    section_receive(out, doc);
    section_form(out, doc, ctx);
    section_profile(out, doc);
    section_consent(out, doc);
    section_messages(out, doc);
    doc_close(out);
}
