/*
 * feedback.c - provider feedback, the pure part (see feedback.h).
 *
 * Owns nothing beyond what its structs point to. Never does I/O, never
 * reads the clock, never logs; its errors name fields, never their values
 * (an inbound body or an address must not reach a log through an error).
 * Main invariant: a SendGrid request is refused whole or read whole, so the
 * caller never applies half of a batch it then answers 400 to.
 */
#include "feedback.h"

#include <ctype.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* ---- form ---------------------------------------------------------------- */

static int hexval(char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* Decodes s[0..n) into a new string; NULL on bad escapes or a NUL byte. */
static char *form_decode(const char *s, size_t n)
{
    char *out = xmalloc(n + 1);
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (c == '+') {
            c = ' ';
        } else if (c == '%') {
            if (i + 2 >= n) {
                free(out);
                return NULL;
            }
            int hi = hexval(s[i + 1]);
            int lo = hexval(s[i + 2]);
            if (hi < 0 || lo < 0) {
                free(out);
                return NULL;
            }
            c = (char)(hi * 16 + lo);
            i += 2;
        }
        if (c == '\0') {
            free(out);
            return NULL;
        }
        out[o++] = c;
    }
    out[o] = '\0';
    return out;
}

void feedback_form_free(struct feedback_form *f)
{
    if (!f) return;
    for (size_t i = 0; i < f->n; i++) {
        free(f->params[i].name);
        free(f->params[i].value);
    }
    free(f->params);
    f->params = NULL;
    f->n = 0;
}

int feedback_form_parse(const char *body, size_t len, struct feedback_form *f, char *err, size_t errlen)
{
    f->params = NULL;
    f->n = 0;
    size_t cap = 0;
    size_t i = 0;
    while (i < len) {
        const char *seg = body + i;
        const char *amp = memchr(seg, '&', len - i);
        size_t seglen = amp ? (size_t)(amp - seg) : len - i;
        i += seglen + 1;
        if (seglen == 0) continue;
        if (f->n == FEEDBACK_FORM_MAX_PARAMS) {
            feedback_form_free(f);
            herald_seterr(err, errlen, "form: more than %d fields", FEEDBACK_FORM_MAX_PARAMS);
            return -HERALD_EINVAL;
        }
        const char *eq = memchr(seg, '=', seglen);
        size_t nlen = eq ? (size_t)(eq - seg) : seglen;
        char *name = form_decode(seg, nlen);
        char *value = eq ? form_decode(eq + 1, seglen - nlen - 1) : xstrdup("");
        if (!name || !value) {
            free(name);
            free(value);
            feedback_form_free(f);
            return herald_fail(err, errlen, "form: bad percent-encoding or a NUL byte in a field");
        }
        if (f->n == cap) {
            cap = cap ? cap * 2 : 16;
            f->params = xrealloc(f->params, cap * sizeof(*f->params));
        }
        f->params[f->n].name = name;
        f->params[f->n].value = value;
        f->n++;
    }
    return 0;
}

const char *feedback_form_get(const struct feedback_form *f, const char *name)
{
    for (size_t i = 0; i < f->n; i++)
        if (strcmp(f->params[i].name, name) == 0) return f->params[i].value;
    return NULL;
}

static int param_cmp(const void *a, const void *b)
{
    const struct feedback_param *x = *(const struct feedback_param *const *)a;
    const struct feedback_param *y = *(const struct feedback_param *const *)b;
    int c = strcmp(x->name, y->name);
    return c ? c : strcmp(x->value, y->value);
}

void feedback_twilio_signed_text(struct strbuf *sb, const char *base_url, const char *path, const char *query,
                                 const struct feedback_form *f)
{
    strbuf_reset(sb);
    size_t bl = strlen(base_url);
    while (bl && base_url[bl - 1] == '/') bl--;
    strbuf_add(sb, base_url, bl);
    strbuf_adds(sb, path);
    if (query && *query) {
        strbuf_adds(sb, "?");
        strbuf_adds(sb, query);
    }
    /* Sort pointers, not the form: the caller's order stays as posted. */
    const struct feedback_param **sorted = xcalloc(f->n ? f->n : 1, sizeof(*sorted));
    for (size_t i = 0; i < f->n; i++) sorted[i] = &f->params[i];
    qsort(sorted, f->n, sizeof(*sorted), param_cmp);
    for (size_t i = 0; i < f->n; i++) {
        strbuf_adds(sb, sorted[i]->name);
        strbuf_adds(sb, sorted[i]->value);
    }
    free(sorted);
}

/* ---- SMS keywords -------------------------------------------------------- */

static const struct {
    const char *word;
    enum feedback_keyword kw;
} keywords[] = {
    {"STOP", FEEDBACK_KW_STOP},   {"STOPALL", FEEDBACK_KW_STOP}, {"UNSUBSCRIBE", FEEDBACK_KW_STOP},
    {"CANCEL", FEEDBACK_KW_STOP}, {"END", FEEDBACK_KW_STOP},     {"QUIT", FEEDBACK_KW_STOP},
    {"START", FEEDBACK_KW_START}, {"UNSTOP", FEEDBACK_KW_START}, {"HELP", FEEDBACK_KW_HELP},
};

enum feedback_keyword feedback_sms_keyword(const char *body)
{
    if (!body) return FEEDBACK_KW_NONE;
    while (isspace((unsigned char)*body)) body++;
    size_t n = strlen(body);
    while (n && isspace((unsigned char)body[n - 1])) n--;
    for (size_t i = 0; i < sizeof(keywords) / sizeof(keywords[0]); i++)
        if (strlen(keywords[i].word) == n && strncasecmp(body, keywords[i].word, n) == 0) return keywords[i].kw;
    return FEEDBACK_KW_NONE;
}

enum feedback_keyword feedback_twilio_keyword(const char *body, const char *opt_out_type)
{
    enum feedback_keyword kw = feedback_sms_keyword(body);
    if (kw != FEEDBACK_KW_NONE || !opt_out_type) return kw;
    if (strcmp(opt_out_type, "STOP") == 0) return FEEDBACK_KW_STOP;
    if (strcmp(opt_out_type, "START") == 0) return FEEDBACK_KW_START;
    if (strcmp(opt_out_type, "HELP") == 0) return FEEDBACK_KW_HELP;
    return FEEDBACK_KW_NONE;
}

const char *feedback_keyword_name(enum feedback_keyword kw)
{
    switch (kw) {
    case FEEDBACK_KW_STOP: return "stop";
    case FEEDBACK_KW_START: return "start";
    case FEEDBACK_KW_HELP: return "help";
    default: return "";
    }
}

/* ---- SendGrid events ----------------------------------------------------- */

bool feedback_sendgrid_suppresses(const char *event, const char *type)
{
    if (!event) return false;
    if (strcmp(event, "bounce") == 0) return !type || strcmp(type, "blocked") != 0;
    return strcmp(event, "dropped") == 0 || strcmp(event, "spamreport") == 0 || strcmp(event, "unsubscribe") == 0;
}

static bool email_usable(const char *s)
{
    size_t n = strlen(s);
    if (n < 3 || n > FEEDBACK_EMAIL_MAX || !strchr(s, '@')) return false;
    for (; *s; s++)
        if ((unsigned char)*s < 0x20 || *s == 0x7f) return false;
    return true;
}

void feedback_sendgrid_free(struct feedback_sendgrid *fs)
{
    if (!fs) return;
    for (size_t i = 0; i < fs->nsuppress; i++) free(fs->suppress[i]);
    free(fs->suppress);
    memset(fs, 0, sizeof(*fs));
}

int feedback_sendgrid_parse(const char *body, size_t len, struct feedback_sendgrid *out, char *err,
                            size_t errlen)
{
    memset(out, 0, sizeof(*out));
    json_error_t jerr;
    /* jerr.text may quote the input (an address): only its position is used. */
    json_t *root = json_loadb(body, len, 0, &jerr);
    if (!root) {
        herald_seterr(err, errlen, "body: not valid JSON (line %d, column %d)", jerr.line, jerr.column);
        return -HERALD_EINVAL;
    }
    int rc = 0;
    if (!json_is_array(root)) {
        rc = herald_fail(err, errlen, "body: must be a JSON array of events");
        goto done;
    }
    size_t n = json_array_size(root);
    if (n > FEEDBACK_SG_MAX_EVENTS) {
        herald_seterr(err, errlen, "body: more than %d events", FEEDBACK_SG_MAX_EVENTS);
        rc = -HERALD_EINVAL;
        goto done;
    }
    out->suppress = xcalloc(n ? n : 1, sizeof(char *));
    for (size_t i = 0; i < n; i++) {
        json_t *ev = json_array_get(root, i);
        if (!json_is_object(ev)) {
            herald_seterr(err, errlen, "events[%zu]: must be an object", i);
            rc = -HERALD_EINVAL;
            goto done;
        }
        const char *event = json_string_value(json_object_get(ev, "event"));
        if (!event) {
            herald_seterr(err, errlen, "events[%zu].event: must be a string", i);
            rc = -HERALD_EINVAL;
            goto done;
        }
        out->nevents++;
        const char *type = json_string_value(json_object_get(ev, "type"));
        if (!feedback_sendgrid_suppresses(event, type)) {
            out->nignored++;
            continue;
        }
        const char *email = json_string_value(json_object_get(ev, "email"));
        if (!email || !email_usable(email)) {
            herald_seterr(err, errlen, "events[%zu].email: must be an email address", i);
            rc = -HERALD_EINVAL;
            goto done;
        }
        bool seen = false;
        for (size_t k = 0; k < out->nsuppress && !seen; k++) seen = strcasecmp(out->suppress[k], email) == 0;
        if (!seen) out->suppress[out->nsuppress++] = xstrdup(email);
    }
done:
    json_decref(root);
    if (rc < 0) feedback_sendgrid_free(out);
    return rc;
}

bool feedback_twilio_sid_valid(const char *s)
{
    if (!s || strlen(s) != 34 || !isupper((unsigned char)s[0]) || !isupper((unsigned char)s[1])) return false;
    for (size_t i = 2; i < 34; i++)
        if (!isdigit((unsigned char)s[i]) && !(s[i] >= 'a' && s[i] <= 'f')) return false;
    return true;
}
