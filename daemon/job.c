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

#include <stdlib.h>
#include <string.h>

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

static int parse_channel_content(int ch, const json_t *c, struct job_content *jc, char *err, size_t errlen)
{
    const char *name = herald_channel_name(ch);
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
            herald_seterr(err, errlen, "content.%s: unknown key (%s %s)", name, name,
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
        int rc = parse_channel_content(ch, c, &job->content[ch], err, errlen);
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
    "id", "topic", "channels", "content", "recipients", "recipients_key", "not_before", "expires_at",
    "priority",
};

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
                                            "recipients_key, not_before, expires_at, priority)");
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

void job_free(struct job *job)
{
    for (int ch = 0; ch < HERALD_CH_COUNT; ch++) {
        struct job_content *c = &job->content[ch];
        free(c->subject);
        free(c->text);
        free(c->html);
        template_free(c->t_subject);
        template_free(c->t_text);
        template_free(c->t_html);
    }
    for (size_t i = 0; i < job->nrecipients; i++) free(job->recipients[i]);
    free(job->recipients);
    free(job->recipients_key);
    free(job->id);
    free(job->topic);
    memset(job, 0, sizeof(*job));
}
