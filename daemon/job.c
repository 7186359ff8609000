/*
 * job.c - parses and validates one campaign job (the JSON of a stream entry).
 *
 * Owns: the job schema (README, "Enqueueing a campaign"; docs/api.md) and its error sentences. The daemon
 * dead-letters with them and heraldctl prints them, so both say the same.
 * Never: logs, reads the clock, or accepts a job it only half understood:
 * an unknown key is an error, not something to ignore, because a misspelt
 * "expires_at" silently ignored would send a campaign after its end.
 * Invariant: job_parse() either fills the whole struct (every template
 * compiled) or leaves it zeroed with nothing allocated.
 */
#include "job.h"

#include "channel.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define RECIPIENTS_KEY_MAX 512

bool job_topic_valid(const char *s)
{
    size_t n = 0;
    for (; s[n]; n++) {
        char c = s[n];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
              c == '.' || c == '-'))
            return false;
        if (n >= HERALD_TOPIC_MAX) return false;
    }
    return n > 0;
}

char *job_topic_normalize(const char *s)
{
    char *t = xstrdup(s);
    for (char *p = t; *p; p++)
        if (*p >= 'A' && *p <= 'Z') *p = (char)(*p - 'A' + 'a');
    return t;
}

bool job_has_channel(const struct job *job, int ch)
{
    for (int i = 0; i < job->nchannels; i++)
        if (job->channels[i] == ch) return true;
    return false;
}

static int parse_channels(const json_t *v, struct job *job, char *err, size_t errlen)
{
    if (!json_is_array(v) || json_array_size(v) == 0)
        return herald_fail(err, errlen, "channels: must be a non-empty array of channel names");
    size_t i;
    const json_t *e;
    json_array_foreach(v, i, e) {
        if (!json_is_string(e)) return herald_fail(err, errlen, "channels: entries must be strings");
        int ch = herald_channel_from_name(json_string_value(e));
        if (ch < 0) return herald_fail(err, errlen, "channels: unknown channel (expected email or sms)");
        if (job_has_channel(job, ch)) {
            herald_seterr(err, errlen, "channels: \"%s\" is listed twice", herald_channel_name(ch));
            return -HERALD_EINVAL;
        }
        job->channels[job->nchannels++] = ch;
    }
    return 0;
}

/* One template of a channel's content: a non-empty string, compiled now so
 * that a bad template refuses the job instead of failing per recipient. */
static int parse_part(const json_t *c, const char *chname, const char *key, char **text,
                      struct template **t, char *err, size_t errlen)
{
    const json_t *v = json_object_get(c, key);
    if (!v) return 0;
    if (!json_is_string(v) || json_string_length(v) == 0) {
        herald_seterr(err, errlen, "content.%s.%s: must be a non-empty string", chname, key);
        return -HERALD_EINVAL;
    }
    char terr[160];
    if (template_compile(json_string_value(v), t, terr, sizeof(terr)) < 0) {
        herald_seterr(err, errlen, "content.%s.%s: %s", chname, key, terr);
        return -HERALD_EINVAL;
    }
    *text = xstrdup(json_string_value(v));
    return 0;
}

static int parse_one_content(int ch, const char *name, const json_t *c, struct job_content *jc, char *err,
                             size_t errlen);

static void content_free(struct job_content *c)
{
    free(c->subject);
    free(c->text);
    free(c->html);
    template_free(c->t_subject);
    template_free(c->t_text);
    template_free(c->t_html);
    memset(c, 0, sizeof(*c));
}

/* A language tag as profiles have it: a letter, then letters, digits, - or _ (1..35). */
static bool locale_valid(const char *s)
{
    size_t len = strlen(s);
    if (len == 0 || len > 35 || !isalpha((unsigned char)s[0])) return false;
    for (const char *q = s; *q; q++)
        if (!isalnum((unsigned char)*q) && *q != '-' && *q != '_') return false;
    return true;
}

/* {"en": {...}, "ko": {...}, "default": "en"}: content per language. */
static int parse_localised(int ch, const json_t *c, struct job *job, char *err, size_t errlen)
{
    const char *chname = herald_channel_name(ch);
    const json_t *def = json_object_get(c, "default");
    if (!json_is_string(def)) {
        herald_seterr(err, errlen, "content.%s.default: %s", chname,
                      def ? "must be a string naming one of the languages" : "missing (content per language names its default language)");
        return -HERALD_EINVAL;
    }
    const char *dl = json_string_value(def);
    if (!json_is_object(json_object_get(c, dl))) {
        herald_seterr(err, errlen, "content.%s.default: \"%.40s\" is not one of the languages given", chname, dl);
        return -HERALD_EINVAL;
    }
    if (json_object_size(c) - 1 > HERALD_JOB_MAX_LOCALES) {
        herald_seterr(err, errlen, "content.%s: at most %d languages", chname, HERALD_JOB_MAX_LOCALES);
        return -HERALD_EINVAL;
    }
    const char *key;
    const json_t *v;
    json_object_foreach((json_t *)c, key, v) {
        if (strcmp(key, "default") == 0) continue;
        char where[96];
        snprintf(where, sizeof(where), "%s.%.40s", chname, key);
        if (!locale_valid(key)) {
            herald_seterr(err, errlen, "content.%s: \"%.40s\" is not a language tag (like en, de or pt-BR)", chname, key);
            return -HERALD_EINVAL;
        }
        bool twice = job->default_locale[ch] && strcasecmp(job->default_locale[ch], key) == 0;
        for (size_t i = 0; i < job->nlocalised[ch]; i++)
            twice = twice || strcasecmp(job->localised[ch][i].locale, key) == 0;
        if (twice) {
            herald_seterr(err, errlen, "content.%s: the language %.40s is given twice", chname, key);
            return -HERALD_EINVAL;
        }
        struct job_content jc;
        memset(&jc, 0, sizeof(jc));
        int rc = parse_one_content(ch, where, v, &jc, err, errlen);
        if (rc < 0) {
            content_free(&jc);
            return rc;
        }
        if (strcmp(key, dl) == 0) {
            job->content[ch] = jc;
            job->default_locale[ch] = xstrdup(key);
        } else {
            job->localised[ch] = xrealloc(job->localised[ch], (job->nlocalised[ch] + 1) * sizeof(*job->localised[ch]));
            job->localised[ch][job->nlocalised[ch]].locale = xstrdup(key);
            job->localised[ch][job->nlocalised[ch]].c = jc;
            job->nlocalised[ch]++;
        }
    }
    return 0;
}

static int parse_channel_content(int ch, const json_t *c, struct job *job, char *err, size_t errlen)
{
    if (json_is_object(c) && json_object_get(c, "default")) return parse_localised(ch, c, job, err, errlen);
    return parse_one_content(ch, herald_channel_name(ch), c, &job->content[ch], err, errlen);
}

/* name is where errors point: "email", or "email.ko" for one language's. */
static int parse_one_content(int ch, const char *name, const json_t *c, struct job_content *jc, char *err,
                             size_t errlen)
{
    bool rich = channel_get(ch)->rich; /* subject, text and html; else text only */
    if (!json_is_object(c)) {
        herald_seterr(err, errlen, "content.%s: must be an object", name);
        return -HERALD_EINVAL;
    }
    const char *key;
    const json_t *v;
    json_object_foreach((json_t *)c, key, v) {
        bool known = strcmp(key, "text") == 0 ||
                     (rich && (strcmp(key, "subject") == 0 || strcmp(key, "html") == 0));
        if (!known) {
            herald_seterr(err, errlen, "content.%s: unknown key (%s %s)", name, herald_channel_name(ch),
                          rich ? "takes subject, text and html" : "takes text only");
            return -HERALD_EINVAL;
        }
    }
    jc->present = true;
    int rc;
    if ((rc = parse_part(c, name, "subject", &jc->subject, &jc->t_subject, err, errlen)) < 0 ||
        (rc = parse_part(c, name, "text", &jc->text, &jc->t_text, err, errlen)) < 0 ||
        (rc = parse_part(c, name, "html", &jc->html, &jc->t_html, err, errlen)) < 0)
        return rc;
    if (rich && !jc->subject) {
        herald_seterr(err, errlen, "content.%s.subject: missing", name);
        return -HERALD_EINVAL;
    }
    if (rich && !jc->text && !jc->html) {
        herald_seterr(err, errlen, "content.%s: give text, html or both", name);
        return -HERALD_EINVAL;
    }
    if (!rich && !jc->text) {
        herald_seterr(err, errlen, "content.%s.text: missing", name);
        return -HERALD_EINVAL;
    }
    return 0;
}

static int parse_content(const json_t *v, struct job *job, char *err, size_t errlen)
{
    if (!v) return herald_fail(err, errlen, "content: missing");
    if (!json_is_object(v)) return herald_fail(err, errlen, "content: must be an object with one entry per channel");
    const char *key;
    const json_t *c;
    json_object_foreach((json_t *)v, key, c) {
        int ch = herald_channel_from_name(key);
        if (ch < 0) return herald_fail(err, errlen, "content: unknown channel (expected email or sms)");
        if (!job_has_channel(job, ch)) {
            herald_seterr(err, errlen, "content.%s: the job's channels do not list %s", key, key);
            return -HERALD_EINVAL;
        }
        int rc = parse_channel_content(ch, c, job, err, errlen);
        if (rc < 0) return rc;
    }
    for (int i = 0; i < job->nchannels; i++) {
        const char *name = herald_channel_name(job->channels[i]);
        if (!job->content[job->channels[i]].present) {
            herald_seterr(err, errlen, "content.%s: missing (channels lists %s)", name, name);
            return -HERALD_EINVAL;
        }
    }
    return 0;
}

static int parse_recipients(const json_t *list, const json_t *key, struct job *job, char *err, size_t errlen)
{
    if ((list != NULL) == (key != NULL)) return herald_fail(err, errlen, "job: give exactly one of recipients or recipients_key");
    if (key) {
        if (!json_is_string(key) || json_string_length(key) == 0 || json_string_length(key) > RECIPIENTS_KEY_MAX) {
            herald_seterr(err, errlen, "recipients_key: must be a non-empty string of at most %d bytes",
                          RECIPIENTS_KEY_MAX);
            return -HERALD_EINVAL;
        }
        job->recipients_key = xstrdup(json_string_value(key));
        return 0;
    }
    if (!json_is_array(list) || json_array_size(list) == 0)
        return herald_fail(err, errlen, "recipients: must be a non-empty array of recipient ids");
    size_t n = json_array_size(list);
    if (n > HERALD_JOB_MAX_RECIPIENTS) {
        herald_seterr(err, errlen, "recipients: %zu ids, over the %d limit (use recipients_key for more)", n,
                      HERALD_JOB_MAX_RECIPIENTS);
        return -HERALD_EINVAL;
    }
    job->recipients = xcalloc(n, sizeof(*job->recipients));
    for (size_t i = 0; i < n; i++) {
        const json_t *e = json_array_get(list, i);
        /* The id itself stays out of the message: an invalid id may be an address. */
        if (!json_is_string(e) || !herald_id_valid(json_string_value(e))) {
            herald_seterr(err, errlen, "recipients[%zu]: not a valid id (1..%d of " HERALD_ID_CHARS ")", i,
                          HERALD_ID_MAX);
            return -HERALD_EINVAL;
        }
        job->recipients[i] = xstrdup(json_string_value(e));
        job->nrecipients = i + 1;
    }
    return 0;
}

static int parse_time(const json_t *v, const char *name, int64_t *out, char *err, size_t errlen)
{
    if (!v) return 0;
    if (!json_is_string(v) || herald_time_parse(json_string_value(v), out) < 0) {
        herald_seterr(err, errlen, "%s: not an RFC 3339 timestamp (like 2026-12-01T09:00:00Z)", name);
        return -HERALD_EINVAL;
    }
    return 0;
}

static const char *const job_keys[] = {
    "id", "topic", "channels", "content", "recipients", "recipients_key", "not_before", "expires_at", "rerun", "display_name",
    "priority",
};

#define JOB_NAME_MAX 200

/* {"en": "Spring sale", "ko": "봄 세일", "default": "en"} */
static int parse_names(const json_t *v, struct job *job, char *err, size_t errlen)
{
    job->names_default = -1;
    if (!v) return 0;
    if (!json_is_object(v) || json_object_size(v) == 0)
        return herald_fail(err, errlen, "display_name: must be an object of language: name, e.g. {\"en\": \"Spring sale\"}");
    if (json_object_size(v) > HERALD_JOB_MAX_LOCALES + 1) {
        herald_seterr(err, errlen, "display_name: at most %d languages", HERALD_JOB_MAX_LOCALES);
        return -HERALD_EINVAL;
    }
    const char *key;
    const json_t *t;
    json_object_foreach((json_t *)v, key, t) {
        if (strcmp(key, "default") == 0) continue;
        if (!locale_valid(key)) {
            herald_seterr(err, errlen, "display_name: \"%.40s\" is not a language tag (like en, de or pt-BR)", key);
            return -HERALD_EINVAL;
        }
        for (size_t i = 0; i < job->nnames; i++)
            if (strcasecmp(job->names[i].locale, key) == 0) {
                herald_seterr(err, errlen, "display_name: the language %.40s is given twice", key);
                return -HERALD_EINVAL;
            }
        if (!json_is_string(t) || json_string_length(t) == 0 || json_string_length(t) > JOB_NAME_MAX) {
            herald_seterr(err, errlen, "display_name.%.40s: must be a string of 1..%d bytes", key, JOB_NAME_MAX);
            return -HERALD_EINVAL;
        }
        job->names = xrealloc(job->names, (job->nnames + 1) * sizeof(*job->names));
        job->names[job->nnames].locale = xstrdup(key);
        job->names[job->nnames].text = xstrdup(json_string_value(t));
        job->nnames++;
    }
    const json_t *def = json_object_get(v, "default");
    if (def) {
        for (size_t i = 0; json_is_string(def) && i < job->nnames; i++)
            if (strcmp(job->names[i].locale, json_string_value(def)) == 0) job->names_default = (int)i;
        if (job->names_default < 0)
            return herald_fail(err, errlen, "display_name.default: must name one of the languages given");
    }
    if (job->nnames == 0) return herald_fail(err, errlen, "display_name: give at least one language");
    return 0;
}

static int parse_object(const json_t *root, struct job *job, char *err, size_t errlen)
{
    if (!json_is_object(root)) return herald_fail(err, errlen, "job: must be a JSON object");
    const char *key;
    const json_t *v;
    json_object_foreach((json_t *)root, key, v) {
        size_t k = 0;
        while (k < sizeof(job_keys) / sizeof(job_keys[0]) && strcmp(key, job_keys[k]) != 0) k++;
        if (k == sizeof(job_keys) / sizeof(job_keys[0])) {
            return herald_fail(err, errlen, "job: unknown key (expected id, channels, topic, content, recipients, "
                                            "recipients_key, not_before, expires_at, rerun, display_name, priority)");
        }
    }

    v = json_object_get(root, "id");
    if (!v) return herald_fail(err, errlen, "id: missing");
    if (!json_is_string(v) || !herald_id_valid(json_string_value(v))) {
        herald_seterr(err, errlen, "id: not a valid id (1..%d of " HERALD_ID_CHARS ")", HERALD_ID_MAX);
        return -HERALD_EINVAL;
    }
    job->id = xstrdup(json_string_value(v));

    v = json_object_get(root, "topic");
    if (!v) return herald_fail(err, errlen, "topic: missing");
    if (!json_is_string(v) || !job_topic_valid(json_string_value(v))) {
        herald_seterr(err, errlen, "topic: must be 1..%d characters of a-z 0-9 _ . -", HERALD_TOPIC_MAX);
        return -HERALD_EINVAL;
    }
    job->topic = job_topic_normalize(json_string_value(v));

    v = json_object_get(root, "channels");
    if (!v) return herald_fail(err, errlen, "channels: missing");
    int rc;
    if ((rc = parse_channels(v, job, err, errlen)) < 0) return rc;
    if ((rc = parse_content(json_object_get(root, "content"), job, err, errlen)) < 0) return rc;
    if ((rc = parse_names(json_object_get(root, "display_name"), job, err, errlen)) < 0) return rc;
    if ((rc = parse_recipients(json_object_get(root, "recipients"), json_object_get(root, "recipients_key"), job,
                               err, errlen)) < 0)
        return rc;
    if ((rc = parse_time(json_object_get(root, "not_before"), "not_before", &job->not_before, err, errlen)) < 0 ||
        (rc = parse_time(json_object_get(root, "expires_at"), "expires_at", &job->expires_at, err, errlen)) < 0)
        return rc;
    job->priority = JOB_PRIORITY_NORMAL;
    v = json_object_get(root, "priority");
    if (v) {
        int p = 0;
        while (p < JOB_PRIORITY_COUNT && !(json_is_string(v) && strcmp(json_string_value(v),
                                                                       job_priority_name((enum job_priority)p)) == 0))
            p++;
        if (p == JOB_PRIORITY_COUNT) return herald_fail(err, errlen, "priority: must be \"high\", \"normal\" or \"low\"");
        job->priority = (enum job_priority)p;
    }
    if (json_object_get(root, "not_before") && json_object_get(root, "expires_at") &&
        job->expires_at <= job->not_before)
        return herald_fail(err, errlen, "expires_at: must be after not_before");
    v = json_object_get(root, "rerun");
    if (v && !json_is_boolean(v)) return herald_fail(err, errlen, "rerun: must be true or false");
    job->rerun = json_is_true(v);
    return 0;
}

int job_parse(const char *json, size_t len, struct job *job, char *err, size_t errlen)
{
    memset(job, 0, sizeof(*job));
    if (len > HERALD_JOB_MAX_BYTES) {
        herald_seterr(err, errlen, "job is %zu bytes, over the %d byte limit", len, HERALD_JOB_MAX_BYTES);
        return -HERALD_ETOOBIG;
    }
    json_error_t jerr;
    json_t *root = json_loadb(json, len, JSON_REJECT_DUPLICATES, &jerr);
    if (!root) {
        /* jansson quotes the offending token ("... near '<input>'"): keep
         * only its description, as profile.c does. */
        char *near = strstr(jerr.text, " near ");
        if (near) *near = '\0';
        herald_seterr(err, errlen, "job is not valid JSON: %s at line %d column %d", jerr.text, jerr.line,
                      jerr.column);
        return -HERALD_EINVAL;
    }
    int rc = parse_object(root, job, err, errlen);
    json_decref(root);
    if (rc < 0) job_free(job);
    return rc;
}

const char *job_priority_name(enum job_priority p)
{
    static const char *const names[] = {
#define JOB_PRIO_NAME(e, name, w) name,
        JOB_PRIORITIES(JOB_PRIO_NAME)
#undef JOB_PRIO_NAME
    };
    return (unsigned)p < JOB_PRIORITY_COUNT ? names[p] : "normal";
}

unsigned job_priority_weight(enum job_priority p)
{
    static const unsigned weights[] = {
#define JOB_PRIO_WEIGHT(e, name, w) w,
        JOB_PRIORITIES(JOB_PRIO_WEIGHT)
#undef JOB_PRIO_WEIGHT
    };
    return (unsigned)p < JOB_PRIORITY_COUNT ? weights[p] : 2;
}

/* 2: the same tag; 1: the same primary language ("ko" and "ko-KR", "pt" and "pt-BR"); 0: neither. */
static int locale_match(const char *have, const char *want)
{
    if (strcasecmp(have, want) == 0) return 2;
    size_t hp = strcspn(have, "-_"), wp = strcspn(want, "-_");
    return hp == wp && strncasecmp(have, want, hp) == 0 ? 1 : 0;
}

const struct job_content *job_content_for(const struct job *job, int ch, const char *locale, const char **chosen)
{
    *chosen = job->default_locale[ch];
    if (!job->default_locale[ch] || !locale || !*locale) return &job->content[ch];
    const struct job_content *best = &job->content[ch];
    int score = locale_match(job->default_locale[ch], locale);
    for (size_t i = 0; i < job->nlocalised[ch] && score < 2; i++) {
        const struct job_content_locale *l = &job->localised[ch][i];
        int m = locale_match(l->locale, locale);
        if (m > score) {
            score = m;
            best = &l->c;
            *chosen = l->locale;
        }
    }
    return best;
}

const char *job_display_name(const struct job *job, const char *locale)
{
    int best = -1, score = 0;
    for (size_t i = 0; locale && *locale && i < job->nnames && score < 2; i++) {
        int m = locale_match(job->names[i].locale, locale);
        if (m > score) {
            score = m;
            best = (int)i;
        }
    }
    if (best < 0 && job->names_default >= 0 && (size_t)job->names_default < job->nnames) best = job->names_default;
    return best >= 0 ? job->names[best].text : NULL;
}

char *job_info_json(const struct job *job)
{
    json_t *o = json_pack("{s:s}", "topic", job->topic ? job->topic : "");
    if (job->nnames) {
        json_t *names = json_object();
        for (size_t i = 0; i < job->nnames; i++)
            json_object_set_new(names, job->names[i].locale, json_string(job->names[i].text));
        if (job->names_default >= 0 && (size_t)job->names_default < job->nnames)
            json_object_set_new(names, "default", json_string(job->names[job->names_default].locale));
        json_object_set_new(o, "display_name", names);
    }
    char *text = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    return text;
}

void job_info_apply(json_t *entry, const json_t *info, const char *locale)
{
    const json_t *topic = json_object_get(info, "topic");
    if (!json_is_object(entry) || json_object_get(entry, "topic") || !json_is_string(topic)) return;
    json_object_set(entry, "topic", (json_t *)topic);
    struct job names = {0};
    char err[128];
    if (parse_names(json_object_get(info, "display_name"), &names, err, sizeof(err)) == 0) {
        const char *name = job_display_name(&names, locale);
        if (name) json_object_set_new(entry, "campaign_name", json_string(name));
    }
    job_free(&names);
}

void job_free(struct job *job)
{
    for (int ch = 0; ch < HERALD_CH_COUNT; ch++) {
        content_free(&job->content[ch]);
        for (size_t i = 0; i < job->nlocalised[ch]; i++) {
            free(job->localised[ch][i].locale);
            content_free(&job->localised[ch][i].c);
        }
        free(job->localised[ch]);
        free(job->default_locale[ch]);
    }
    for (size_t i = 0; i < job->nnames; i++) {
        free(job->names[i].locale);
        free(job->names[i].text);
    }
    free(job->names);
    for (size_t i = 0; i < job->nrecipients; i++) free(job->recipients[i]);
    free(job->recipients);
    free(job->recipients_key);
    free(job->id);
    free(job->topic);
    memset(job, 0, sizeof(*job));
}
