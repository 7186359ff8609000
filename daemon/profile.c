/*
 * profile.c - a recipient's profile and consent records: validation,
 * the stored JSON form, and the address checks the policy relies on.
 *
 * Owns: the profile schema (README, "Recipients"; docs/api.md), consent record JSON. Addresses are
 * read under each channel's address_field and checked with its syntax
 * (channel.c): no channel is named here.
 * Never: logs, reads the clock (now is an argument), or puts an address,
 * phone number or attribute value into an error message: errors end up in
 * logs and HTTP replies, and the addresses are exactly what must not.
 * Invariant: whatever profile_from_json accepts, profile_to_json writes in a
 * form profile_parse accepts again, so a profile stored once reads back the
 * same. Consent is never part of that form: it lives in the ledger.
 */
#include "profile.h"
#include "job.h" /* topic names are shared with jobs */

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define TZ_MAX 64
#define LOCALE_MAX 35

const char *profile_address(const struct profile *p, int ch)
{
    return p && channel_get(ch) ? p->address[ch] : NULL;
}

bool profile_has_address(const struct profile *p, int ch)
{
    return profile_address(p, ch) || (p && channel_get(ch) && (p->indexed >> ch & 1u));
}

bool profile_address_usable(const struct profile *p, int ch)
{
    const char *a = profile_address(p, ch);
    return a ? channel_address_valid(ch, a) : profile_has_address(p, ch);
}

int profile_topic(const struct profile *p, const char *topic)
{
    if (!p || !topic) return -1;
    for (size_t i = 0; i < p->ntopics; i++)
        if (strcasecmp(p->topics[i].name, topic) == 0) return p->topics[i].on ? 1 : 0;
    return -1;
}

/* Reads exactly n digits; returns -1 when they are not there. */
static int digits(const char **p, int n)
{
    int v = 0;
    for (int i = 0; i < n; i++, (*p)++) {
        if (**p < '0' || **p > '9') return -1;
        v = v * 10 + (**p - '0');
    }
    return v;
}

int profile_quiet_hours_parse(const char *s, int *start_min, int *end_min)
{
    const char *p = s;
    int h1 = digits(&p, 2);
    if (h1 < 0 || *p++ != ':') return -HERALD_EINVAL;
    int m1 = digits(&p, 2);
    if (m1 < 0 || *p++ != '-') return -HERALD_EINVAL;
    int h2 = digits(&p, 2);
    if (h2 < 0 || *p++ != ':') return -HERALD_EINVAL;
    int m2 = digits(&p, 2);
    if (m2 < 0 || *p != '\0' || h1 > 23 || h2 > 23 || m1 > 59 || m2 > 59) return -HERALD_EINVAL;
    if (h1 == h2 && m1 == m2) return -HERALD_EINVAL; /* empty or whole-day window: say what you mean */
    if (start_min) *start_min = h1 * 60 + m1;
    if (end_min) *end_min = h2 * 60 + m2;
    return 0;
}

/* 1..6 digits, value >= 1: large enough for any sane limit, small enough
 * that the period in seconds cannot overflow. */
static long small_count(const char **p)
{
    long v = 0;
    int n = 0;
    while (**p >= '0' && **p <= '9') {
        if (++n > 6) return -1;
        v = v * 10 + (**p - '0');
        (*p)++;
    }
    return n > 0 && v > 0 ? v : -1;
}

size_t profile_frequency_limits(const struct profile *p, const char *chan[], int64_t lim[], int64_t win[],
                                size_t max)
{
    size_t n = 0;
    const char *k;
    json_t *v;
    if (!p->frequency) return 0;
    json_object_foreach(p->frequency, k, v) {
        unsigned count;
        int64_t period;
        if (n == max || !json_is_string(v) || profile_frequency_parse(json_string_value(v), &count, &period) < 0)
            continue;
        chan[n] = k;
        lim[n] = count;
        win[n] = period;
        n++;
    }
    return n;
}

int profile_frequency_parse(const char *s, unsigned *count, int64_t *period_s)
{
    const char *p = s;
    long n = small_count(&p);
    if (n < 0 || *p++ != '/') return -HERALD_EINVAL;
    long k = small_count(&p);
    if (k < 0) return -HERALD_EINVAL;
    int64_t unit;
    switch (*p++) {
    case 's': unit = 1; break;
    case 'm': unit = 60; break;
    case 'h': unit = 3600; break;
    case 'd': unit = 86400; break;
    default: return -HERALD_EINVAL;
    }
    if (*p != '\0') return -HERALD_EINVAL;
    if (count) *count = (unsigned)n;
    if (period_s) *period_s = k * unit;
    return 0;
}

static bool charset_ok(const char *s, size_t max, const char *extra)
{
    size_t n = 0;
    for (; s[n]; n++) {
        char c = s[n];
        if (n >= max) return false;
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || strchr(extra, c)))
            return false;
    }
    return n > 0;
}

static int parse_channels(const json_t *v, struct profile *p, char *err, size_t errlen)
{
    if (!json_is_array(v)) return herald_fail(err, errlen, "channels: must be an array of channel names");
    size_t i;
    const json_t *e;
    json_array_foreach(v, i, e) {
        if (!json_is_string(e)) return herald_fail(err, errlen, "channels: entries must be strings");
        int ch = herald_channel_from_name(json_string_value(e));
        if (ch < 0) return herald_fail(err, errlen, "channels: unknown channel (expected email or sms)");
        /* Known and distinct, so nchannels never exceeds HERALD_CH_COUNT. */
        for (int k = 0; k < p->nchannels; k++)
            if (p->channels[k] == ch) {
                herald_seterr(err, errlen, "channels: \"%s\" is listed twice", herald_channel_name(ch));
                return -HERALD_EINVAL;
            }
        p->channels[p->nchannels++] = ch;
    }
    p->channels_set = true;
    return 0;
}

static int parse_topics(const json_t *v, struct profile *p, char *err, size_t errlen)
{
    if (!json_is_object(v)) return herald_fail(err, errlen, "topics: must be an object of topic -> true/false");
    if (json_object_size(v) > HERALD_PROFILE_MAX_TOPICS) {
        herald_seterr(err, errlen, "topics: %zu topics, over the %d limit", json_object_size(v),
                      HERALD_PROFILE_MAX_TOPICS);
        return -HERALD_EINVAL;
    }
    p->topics = xcalloc(json_object_size(v), sizeof(*p->topics));
    const char *key;
    const json_t *e;
    json_object_foreach((json_t *)v, key, e) {
        if (!job_topic_valid(key)) {
            herald_seterr(err, errlen, "topics: a key is not a topic name (1..%d of a-z 0-9 _ . -)", HERALD_TOPIC_MAX);
            return -HERALD_EINVAL;
        }
        if (!json_is_boolean(e)) return herald_fail(err, errlen, "topics: every value must be true or false");
        if (profile_topic(p, key) >= 0)
            return herald_fail(err, errlen, "topics: a topic is given twice (topic names ignore case)");
        p->topics[p->ntopics].name = job_topic_normalize(key);
        p->topics[p->ntopics].on = json_is_true(e);
        p->ntopics++;
    }
    return 0;
}

/* share: v belongs to a tree the caller is about to drop, so keep a
 * reference to it instead of a copy (profile_parse, once per recipient). */
static int parse_attributes(const json_t *v, struct profile *p, bool share, char *err, size_t errlen)
{
    if (!json_is_object(v)) return herald_fail(err, errlen, "attributes: must be an object");
    if (json_object_size(v) > HERALD_PROFILE_MAX_ATTRIBUTES) {
        herald_seterr(err, errlen, "attributes: %zu keys, over the %d limit", json_object_size(v),
                      HERALD_PROFILE_MAX_ATTRIBUTES);
        return -HERALD_EINVAL;
    }
    const char *key;
    const json_t *e;
    json_object_foreach((json_t *)v, key, e) {
        /* Flat values only: templates render scalars, and nesting would let
         * a profile carry data no template can ever use. */
        if (!json_is_string(e) && !json_is_number(e) && !json_is_boolean(e))
            return herald_fail(err, errlen, "attributes: every value must be a string, number or boolean");
    }
    p->attributes = share ? json_incref((json_t *)v) : json_deep_copy(v);
    return 0;
}

static int parse_frequency(const json_t *v, struct profile *p, bool share, char *err, size_t errlen)
{
    if (!json_is_object(v)) return herald_fail(err, errlen, "frequency: must be an object of channel -> \"N/<period>\"");
    const char *key;
    const json_t *e;
    json_object_foreach((json_t *)v, key, e) {
        if (herald_channel_from_name(key) < 0 && strcmp(key, "any") != 0)
            return herald_fail(err, errlen, "frequency: unknown channel (expected email, sms or any)");
        if (!json_is_string(e) || profile_frequency_parse(json_string_value(e), NULL, NULL) < 0) {
            herald_seterr(err, errlen,
                          "frequency.%s: must look like \"1/7d\" (count/period, period in s, m, h or d)", key);
            return -HERALD_EINVAL;
        }
    }
    p->frequency = share ? json_incref((json_t *)v) : json_deep_copy(v);
    return 0;
}

/* An optional string member checked by ok(); msg is the whole error. */
static int parse_string(const json_t *obj, const char *key, bool (*ok)(const char *), char **out,
                        const char *msg, char *err, size_t errlen)
{
    const json_t *v = json_object_get(obj, key);
    if (!v) return 0;
    if (!json_is_string(v) || !ok(json_string_value(v))) return herald_fail(err, errlen, msg);
    *out = xstrdup(json_string_value(v));
    return 0;
}

static bool tz_ok(const char *s)
{
    return charset_ok(s, TZ_MAX, "_+/-");
}

static bool locale_ok(const char *s)
{
    return charset_ok(s, LOCALE_MAX, "_-");
}

static bool quiet_ok(const char *s)
{
    return profile_quiet_hours_parse(s, NULL, NULL) == 0;
}

void consent_record_free(struct consent_record *r)
{
    free(r->source);
    free(r->text_version);
    memset(r, 0, sizeof(*r));
}

static void free_records(struct consent_record *recs, size_t n)
{
    for (size_t i = 0; i < n; i++) consent_record_free(&recs[i]);
    free(recs);
}

/* `where` names the record in errors ("consent[2]", "consent record").
 * need_at: ledger records always carry their time; import lines may not. */
static int record_parse(const json_t *obj, struct consent_record *r, bool need_at, int64_t now,
                        const char *where, char *err, size_t errlen)
{
    memset(r, 0, sizeof(*r));
    if (!json_is_object(obj)) {
        herald_seterr(err, errlen, "%s: must be an object", where);
        return -HERALD_EINVAL;
    }
    const char *key;
    const json_t *v;
    json_object_foreach((json_t *)obj, key, v) {
        if (strcmp(key, "channel") != 0 && strcmp(key, "granted") != 0 && strcmp(key, "source") != 0 &&
            strcmp(key, "text_version") != 0 && strcmp(key, "at") != 0) {
            herald_seterr(err, errlen, "%s: unknown key (expected channel, granted, source, text_version, at)", where);
            return -HERALD_EINVAL;
        }
    }
    v = json_object_get(obj, "channel");
    if (!v || !json_is_string(v)) {
        herald_seterr(err, errlen, "%s.channel: missing (expected email or sms)", where);
        return -HERALD_EINVAL;
    }
    r->channel = herald_channel_from_name(json_string_value(v));
    if (r->channel < 0) {
        herald_seterr(err, errlen, "%s.channel: unknown channel (expected email or sms)", where);
        return -HERALD_EINVAL;
    }
    v = json_object_get(obj, "granted");
    if (!json_is_boolean(v)) {
        herald_seterr(err, errlen, "%s.granted: must be true or false", where);
        return -HERALD_EINVAL;
    }
    r->granted = json_is_true(v);
    v = json_object_get(obj, "source");
    if (!json_is_string(v) || json_string_length(v) == 0 || json_string_length(v) > HERALD_CONSENT_SOURCE_MAX) {
        herald_seterr(err, errlen, "%s.source: must be a non-empty string of at most %d bytes", where,
                      HERALD_CONSENT_SOURCE_MAX);
        return -HERALD_EINVAL;
    }
    r->source = xstrdup(json_string_value(v));
    v = json_object_get(obj, "text_version");
    if (v) {
        if (!json_is_string(v) || json_string_length(v) > HERALD_CONSENT_SOURCE_MAX) {
            herald_seterr(err, errlen, "%s.text_version: must be a string of at most %d bytes", where,
                          HERALD_CONSENT_SOURCE_MAX);
            consent_record_free(r);
            return -HERALD_EINVAL;
        }
        r->text_version = xstrdup(json_string_value(v));
    }
    v = json_object_get(obj, "at");
    if (!v && need_at) {
        herald_seterr(err, errlen, "%s.at: missing", where);
        consent_record_free(r);
        return -HERALD_EINVAL;
    }
    r->at = now;
    if (v && (!json_is_string(v) || herald_time_parse(json_string_value(v), &r->at) < 0)) {
        herald_seterr(err, errlen, "%s.at: not an RFC 3339 timestamp (like 2026-12-01T09:00:00Z)", where);
        consent_record_free(r);
        return -HERALD_EINVAL;
    }
    return 0;
}

int consent_record_from_json(const json_t *obj, struct consent_record *r, int64_t now, char *err, size_t errlen)
{
    return record_parse(obj, r, false, now, "consent record", err, errlen);
}

/* jansson quotes the offending token ("... near 'ann@example.com'"), which
 * may be the very address we must not log: keep only the description. */
static void strip_near(char *text)
{
    char *near = strstr(text, " near ");
    if (near) *near = '\0';
}

/* The compact stored form's parts: "1|channel|granted|at|source|text_version"
 * into part/plen (6 of them); false when it is not that form. */
static bool compact_parts(const char *s, size_t len, const char *part[6], size_t plen[6])
{
    if (len < 2 || s[0] != '1' || s[1] != '|') return false;
    const char *p = s, *end = s + len;
    size_t n = 0;
    for (;;) {
        const char *bar = memchr(p, '|', (size_t)(end - p));
        part[n] = p;
        plen[n++] = bar ? (size_t)(bar - p) : (size_t)(end - p);
        if (!bar) break;
        if (n == 6) return false;
        p = bar + 1;
    }
    return n == 6;
}

static bool compact_int(const char *s, size_t n, int64_t *out)
{
    int64_t v = 0;
    if (n == 0 || n > 18) return false;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9') return false;
        v = v * 10 + (s[i] - '0');
    }
    *out = v;
    return true;
}

/* The head of the compact form: channel, granted, at. */
static bool compact_head(const char *const part[6], const size_t plen[6], int *channel, bool *granted, int64_t *at)
{
    char ch[16];
    if (plen[1] == 0 || plen[1] >= sizeof(ch) || plen[2] != 1 || (part[2][0] != '0' && part[2][0] != '1') ||
        !compact_int(part[3], plen[3], at))
        return false;
    memcpy(ch, part[1], plen[1]);
    ch[plen[1]] = '\0';
    *channel = herald_channel_from_name(ch);
    *granted = part[2][0] == '1';
    return *channel >= 0;
}

static bool compact_text_ok(const char *s, size_t n, size_t min)
{
    if (n < min || n > HERALD_CONSENT_SOURCE_MAX) return false;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f) return false;
    return true;
}

void consent_record_format(struct strbuf *sb, const struct consent_record *r)
{
    strbuf_reset(sb);
    const char *src = r->source ? r->source : "", *tv = r->text_version ? r->text_version : "";
    if (!*src || strchr(src, '|') || strchr(tv, '|')) {
        char *json = consent_record_to_json(r);
        strbuf_adds(sb, json);
        free(json);
        return;
    }
    strbuf_adds(sb, "1|");
    strbuf_adds(sb, herald_channel_name(r->channel));
    strbuf_adds(sb, r->granted ? "|1|" : "|0|");
    strbuf_addll(sb, (long long)r->at);
    strbuf_add(sb, "|", 1);
    strbuf_adds(sb, src);
    strbuf_add(sb, "|", 1);
    strbuf_adds(sb, tv);
}

int consent_record_parse(const char *json, size_t len, struct consent_record *r, char *err, size_t errlen)
{
    memset(r, 0, sizeof(*r));
    const char *part[6];
    size_t plen[6];
    if (compact_parts(json, len, part, plen)) {
        if (!compact_head(part, plen, &r->channel, &r->granted, &r->at) || !compact_text_ok(part[4], plen[4], 1) ||
            !compact_text_ok(part[5], plen[5], 0)) {
            memset(r, 0, sizeof(*r));
            return herald_fail(err, errlen, "consent record: unreadable (\"1|channel|granted|at|source|version\")");
        }
        r->source = xstrndup(part[4], plen[4]);
        r->text_version = plen[5] ? xstrndup(part[5], plen[5]) : NULL;
        return 0;
    }
    if (len > HERALD_PROFILE_MAX_BYTES) {
        herald_seterr(err, errlen, "consent record is %zu bytes, over the %d byte limit", len,
                      HERALD_PROFILE_MAX_BYTES);
        return -HERALD_ETOOBIG;
    }
    json_error_t jerr;
    json_t *obj = json_loadb(json, len, JSON_REJECT_DUPLICATES, &jerr);
    if (!obj) {
        strip_near(jerr.text);
        herald_seterr(err, errlen, "consent record is not valid JSON: %s at line %d column %d", jerr.text,
                      jerr.line, jerr.column);
        return -HERALD_EINVAL;
    }
    int rc = record_parse(obj, r, true, 0, "consent record", err, errlen);
    json_decref(obj);
    return rc;
}

/* ---- the current consent, read per recipient ------------------------ */

static bool take_lit(const char **p, const char *end, const char *lit)
{
    size_t n = strlen(lit);
    if ((size_t)(end - *p) < n || memcmp(*p, lit, n) != 0) return false;
    *p += n;
    return true;
}

/* A JSON string body of printable ASCII without escapes, then its closing
 * quote; copied to out (NUL-terminated, which must hold max + 1 bytes). */
static bool take_plain(const char **p, const char *end, size_t min, size_t max, char *out)
{
    size_t n = 0;
    for (const char *q = *p; q < end; q++) {
        unsigned char c = (unsigned char)*q;
        if (c == '"') {
            if (n < min) return false;
            if (out) out[n] = '\0';
            *p = q + 1;
            return true;
        }
        if (c < 0x20 || c > 0x7e || c == '\\' || n == max) return false;
        if (out) out[n] = (char)c;
        n++;
    }
    return false;
}

/* The exact form consent_record_to_json writes (compact, sorted keys) when
 * every string is plain ASCII: {"at":..,"channel":..,"granted":..,"source":..
 * [,"text_version":..]}. Anything else returns false and goes through the
 * full parser, so both read every record the same way (fuzz_consent checks
 * that they agree). */
static bool consent_state_fast(const char *json, size_t len, struct consent_state *st)
{
    const char *p = json, *end = json + len;
    char at[40], ch[16];
    int64_t t;
    bool granted;
    if (!take_lit(&p, end, "{\"at\":\"") || !take_plain(&p, end, 1, sizeof(at) - 1, at) ||
        herald_time_parse(at, &t) < 0)
        return false;
    if (!take_lit(&p, end, ",\"channel\":\"") || !take_plain(&p, end, 1, sizeof(ch) - 1, ch) ||
        herald_channel_from_name(ch) < 0)
        return false;
    if (!take_lit(&p, end, ",\"granted\":")) return false;
    if (take_lit(&p, end, "true")) granted = true;
    else if (take_lit(&p, end, "false")) granted = false;
    else return false;
    if (!take_lit(&p, end, ",\"source\":\"") || !take_plain(&p, end, 1, HERALD_CONSENT_SOURCE_MAX, NULL))
        return false;
    if (take_lit(&p, end, ",\"text_version\":\"") && !take_plain(&p, end, 0, HERALD_CONSENT_SOURCE_MAX, NULL))
        return false;
    if (!take_lit(&p, end, "}") || p != end) return false;
    st->known = true;
    st->granted = granted;
    st->at = t;
    return true;
}

int consent_state_parse(const char *json, size_t len, struct consent_state *st)
{
    memset(st, 0, sizeof(*st));
    const char *part[6];
    size_t plen[6];
    int ch;
    if (compact_parts(json, len, part, plen) && compact_head(part, plen, &ch, &st->granted, &st->at) &&
        compact_text_ok(part[4], plen[4], 1) && compact_text_ok(part[5], plen[5], 0)) {
        st->known = true;
        return 0;
    }
    memset(st, 0, sizeof(*st));
    if (consent_state_fast(json, len, st)) return 0;
    struct consent_record rec;
    char err[160];
    int rc = consent_record_parse(json, len, &rec, err, sizeof(err));
    if (rc < 0) return rc;
    st->known = true;
    st->granted = rec.granted;
    st->at = rec.at;
    consent_record_free(&rec);
    return 0;
}

char *consent_record_to_json(const struct consent_record *r)
{
    char at[32];
    herald_time_format(r->at, at, sizeof(at));
    json_t *o = json_object();
    json_object_set_new(o, "channel", json_string(herald_channel_name(r->channel)));
    json_object_set_new(o, "granted", json_boolean(r->granted));
    json_object_set_new(o, "at", json_string(at));
    if (r->source) json_object_set_new(o, "source", json_string(r->source));
    if (r->text_version) json_object_set_new(o, "text_version", json_string(r->text_version));
    char *s = json_dumps(o, JSON_COMPACT | JSON_SORT_KEYS);
    json_decref(o);
    if (!s) abort(); /* only allocation can fail here: fatal, like xmalloc */
    return s;
}

static const char *const profile_keys[] = {
    "id", "tz", "locale", "attributes", "channels", "topics", "quiet_hours", "frequency",
};

static int parse_consent(const json_t *v, struct consent_record **recs, size_t *nrecs, int64_t now, char *err,
                         size_t errlen)
{
    if (!json_is_array(v)) return herald_fail(err, errlen, "consent: must be an array of consent records");
    *recs = xcalloc(json_array_size(v), sizeof(**recs));
    size_t i;
    const json_t *e;
    json_array_foreach(v, i, e) {
        char where[32];
        herald_seterr(where, sizeof(where), "consent[%zu]", i);
        int rc = record_parse(e, &(*recs)[i], false, now, where, err, errlen);
        if (rc < 0) return rc;
        *nrecs = i + 1;
    }
    return 0;
}

static int parse_profile(const json_t *obj, struct profile *p, bool allow_consent, bool share,
                         struct consent_record **recs, size_t *nrecs, int64_t now, char *err, size_t errlen)
{
    if (!json_is_object(obj)) return herald_fail(err, errlen, "profile: must be a JSON object");
    const char *key;
    const json_t *v;
    json_object_foreach((json_t *)obj, key, v) {
        size_t k = 0, n = sizeof(profile_keys) / sizeof(profile_keys[0]);
        while (k < n && strcmp(key, profile_keys[k]) != 0) k++;
        if (k < n || channel_from_address_field(key) >= 0 || (allow_consent && strcmp(key, "consent") == 0))
            continue;
        if (strcmp(key, "consent") == 0)
            return herald_fail(err, errlen, "consent: not accepted here (consent is recorded through the ledger)");
        return herald_fail(err, errlen, "profile: unknown key (expected id, attributes, channels, topics, "
                                        "quiet_hours, frequency, tz, locale, email, phone)");
    }

    v = json_object_get(obj, "id");
    if (!v) return herald_fail(err, errlen, "id: missing");
    if (!json_is_string(v) || !herald_id_valid(json_string_value(v))) {
        herald_seterr(err, errlen, "id: not a valid id (1..%d of " HERALD_ID_CHARS ")", HERALD_ID_MAX);
        return -HERALD_EINVAL;
    }
    p->id = xstrdup(json_string_value(v));

    int rc;
    for (int ch = 0; ch < HERALD_CH_COUNT; ch++) {
        const struct channel_desc *d = channel_get(ch);
        if ((rc = parse_string(obj, d->address_field, d->address_valid, &p->address[ch], d->address_invalid, err,
                               errlen)) < 0)
            return rc;
    }
    if ((rc = parse_string(obj, "tz", tz_ok, &p->tz, "tz: must be a time zone name like \"Europe/Berlin\"", err,
                           errlen)) < 0 ||
        (rc = parse_string(obj, "locale", locale_ok, &p->locale,
                           "locale: must be a short language tag like \"de\" or \"pt-BR\"", err, errlen)) < 0 ||
        (rc = parse_string(obj, "quiet_hours", quiet_ok, &p->quiet_hours,
                           "quiet_hours: must look like \"21:00-08:00\" (HH:MM-HH:MM, start and end differ)", err,
                           errlen)) < 0)
        return rc;
    p->quiet_start_min = p->quiet_end_min = -1;
    if (p->quiet_hours) profile_quiet_hours_parse(p->quiet_hours, &p->quiet_start_min, &p->quiet_end_min);
    if ((v = json_object_get(obj, "attributes")) && (rc = parse_attributes(v, p, share, err, errlen)) < 0) return rc;
    if ((v = json_object_get(obj, "channels")) && (rc = parse_channels(v, p, err, errlen)) < 0) return rc;
    if ((v = json_object_get(obj, "topics")) && (rc = parse_topics(v, p, err, errlen)) < 0) return rc;
    if ((v = json_object_get(obj, "frequency")) && (rc = parse_frequency(v, p, share, err, errlen)) < 0) return rc;
    if (allow_consent && (v = json_object_get(obj, "consent")) &&
        (rc = parse_consent(v, recs, nrecs, now, err, errlen)) < 0)
        return rc;
    return 0;
}

static int from_json(const json_t *obj, struct profile *p, bool allow_consent, bool share,
                     struct consent_record **records, size_t *nrecords, int64_t now, char *err, size_t errlen)
{
    memset(p, 0, sizeof(*p));
    if (records) *records = NULL;
    if (nrecords) *nrecords = 0;
    struct consent_record *recs = NULL;
    size_t nrecs = 0;
    int rc = parse_profile(obj, p, allow_consent, share, &recs, &nrecs, now, err, errlen);
    if (rc < 0) {
        profile_free(p);
        free_records(recs, nrecs);
        return rc;
    }
    if (records) {
        *records = recs;
        if (nrecords) *nrecords = nrecs;
    } else {
        free_records(recs, nrecs);
    }
    return 0;
}

int profile_from_json(const json_t *obj, struct profile *p, bool allow_consent,
                      struct consent_record **records, size_t *nrecords, int64_t now,
                      char *err, size_t errlen)
{
    return from_json(obj, p, allow_consent, false, records, nrecords, now, err, errlen);
}

/* ---- the stored form, read without a JSON tree ------------------------
 *
 * Every stored profile was written by profile_to_json: compact, keys sorted
 * at every level. profile_fast reads exactly that form when its keys and
 * plain strings hold no escapes (and, outside attribute values, no bytes
 * above ASCII), applying the same checks as parse_profile. Anything else,
 * valid or not, returns false and goes through jansson and parse_profile,
 * so both paths give the same profile or the same refusal (fuzz_profile
 * compares them on every input and on its canonical form). */

#define FAST_KEY_MAX 128

/* A string without escapes or control characters: [*s, *s + *n). */
static bool take_str(const char **p, const char *end, bool ascii, const char **s, size_t *n)
{
    const char *q = *p;
    if (q >= end || *q != '"') return false;
    const char *start = ++q;
    for (; q < end; q++) {
        unsigned char c = (unsigned char)*q;
        if (c == '"') {
            *s = start;
            *n = (size_t)(q - start);
            *p = q + 1;
            return true;
        }
        if (c < 0x20 || c == '\\' || (ascii && c > 0x7e)) return false;
    }
    return false;
}

/* A string as a fresh C string (no NUL can be inside: escapes are refused). */
static char *take_cstr(const char **p, const char *end)
{
    const char *s;
    size_t n;
    return take_str(p, end, true, &s, &n) ? xstrndup(s, n) : NULL;
}

/* The next key of an object, strictly after the previous one (sorted and
 * distinct, as profile_to_json writes them), as a C string in key. */
static bool take_key(const char **p, const char *end, char key[FAST_KEY_MAX + 1], size_t *prevlen)
{
    const char *s;
    size_t n;
    if (!take_str(p, end, true, &s, &n) || n > FAST_KEY_MAX || !take_lit(p, end, ":")) return false;
    if (*prevlen != SIZE_MAX) {
        size_t m = n < *prevlen ? n : *prevlen;
        int c = memcmp(key, s, m);
        if (c > 0 || (c == 0 && n <= *prevlen)) return false;
    }
    memcpy(key, s, n);
    key[n] = '\0';
    *prevlen = n;
    return true;
}

/* Walks the members of one object: members_begin takes its "{", each
 * members_next its next key (false at its "}", with done set, or at
 * anything unexpected, with done clear). */
struct members {
    const char **p, *end;
    bool first, done;
    size_t prevlen;
};

static bool members_begin(struct members *m, const char **p, const char *end)
{
    *m = (struct members){.p = p, .end = end, .first = true, .prevlen = SIZE_MAX};
    return take_lit(p, end, "{");
}

static bool members_next(struct members *m, char key[FAST_KEY_MAX + 1])
{
    if (take_lit(m->p, m->end, "}")) {
        m->done = true;
        return false;
    }
    if (!m->first && !take_lit(m->p, m->end, ",")) return false;
    m->first = false;
    return take_key(m->p, m->end, key, &m->prevlen);
}

static json_t *fast_scalar(const char **p, const char *end)
{
    const char *s;
    size_t n;
    if (take_lit(p, end, "true")) return json_true();
    if (take_lit(p, end, "false")) return json_false();
    if (*p < end && **p == '"') return take_str(p, end, false, &s, &n) ? json_stringn(s, n) : NULL;
    /* Integers as jansson reads them, up to 18 digits; reals take the full parser. */
    const char *q = *p;
    if (q < end && *q == '-') q++;
    const char *digits = q;
    while (q < end && *q >= '0' && *q <= '9') q++;
    size_t nd = (size_t)(q - digits);
    if (nd == 0 || nd > 18 || (nd > 1 && *digits == '0') || (q < end && (*q == '.' || *q == 'e' || *q == 'E')))
        return NULL;
    long long v = 0;
    for (const char *d = digits; d < q; d++) v = v * 10 + (*d - '0');
    if (**p == '-') v = -v;
    *p = q;
    return json_integer(v);
}

static bool fast_attributes(const char **p, const char *end, struct profile *pr)
{
    char key[FAST_KEY_MAX + 1];
    struct members m;
    if (!members_begin(&m, p, end)) return false;
    json_t *o = json_object();
    while (members_next(&m, key)) {
        json_t *v = fast_scalar(p, end);
        if (!v || json_object_size(o) == HERALD_PROFILE_MAX_ATTRIBUTES) {
            json_decref(v);
            break;
        }
        json_object_set_new_nocheck(o, key, v);
    }
    if (!m.done) {
        json_decref(o);
        return false;
    }
    pr->attributes = o;
    return true;
}

static bool fast_channels(const char **p, const char *end, struct profile *pr)
{
    if (!take_lit(p, end, "[")) return false;
    pr->channels_set = true;
    if (take_lit(p, end, "]")) return true;
    do {
        const char *s;
        size_t n;
        char name[16];
        if (!take_str(p, end, true, &s, &n) || n >= sizeof(name)) return false;
        memcpy(name, s, n);
        name[n] = '\0';
        int ch = herald_channel_from_name(name);
        if (ch < 0) return false;
        for (int k = 0; k < pr->nchannels; k++)
            if (pr->channels[k] == ch) return false;
        pr->channels[pr->nchannels++] = ch;
    } while (take_lit(p, end, ","));
    return take_lit(p, end, "]");
}

static bool fast_topics(const char **p, const char *end, struct profile *pr)
{
    char key[FAST_KEY_MAX + 1];
    struct members m;
    if (!members_begin(&m, p, end)) return false;
    size_t cap = 0;
    while (members_next(&m, key)) {
        bool on;
        if (take_lit(p, end, "true")) on = true;
        else if (take_lit(p, end, "false")) on = false;
        else break;
        if (pr->ntopics == HERALD_PROFILE_MAX_TOPICS || !job_topic_valid(key) || profile_topic(pr, key) >= 0) break;
        if (pr->ntopics == cap) {
            cap = cap ? 2 * cap : 4;
            pr->topics = xrealloc(pr->topics, cap * sizeof(*pr->topics));
        }
        pr->topics[pr->ntopics].name = job_topic_normalize(key);
        pr->topics[pr->ntopics].on = on;
        pr->ntopics++;
    }
    return m.done;
}

static bool fast_frequency(const char **p, const char *end, struct profile *pr)
{
    char key[FAST_KEY_MAX + 1];
    struct members m;
    if (!members_begin(&m, p, end)) return false;
    json_t *o = json_object();
    while (members_next(&m, key)) {
        char *v = take_cstr(p, end);
        bool ok = v && (herald_channel_from_name(key) >= 0 || strcmp(key, "any") == 0) &&
                  profile_frequency_parse(v, NULL, NULL) == 0;
        if (ok) json_object_set_new_nocheck(o, key, json_string(v));
        free(v);
        if (!ok) break;
    }
    if (!m.done) {
        json_decref(o);
        return false;
    }
    pr->frequency = o;
    return true;
}

/* A string member checked by ok() into *out. */
static bool fast_string(const char **p, const char *end, bool (*ok)(const char *), char **out)
{
    *out = take_cstr(p, end);
    return *out && ok(*out);
}

static bool id_ok(const char *s)
{
    return herald_id_valid(s);
}

static bool profile_fast(const char *json, size_t len, struct profile *pr)
{
    memset(pr, 0, sizeof(*pr));
    pr->quiet_start_min = pr->quiet_end_min = -1;
    const char *p = json, *end = json + len;
    char key[FAST_KEY_MAX + 1];
    struct members m;
    bool in = members_begin(&m, &p, end);
    while (in && members_next(&m, key)) {
        bool ok;
        int ch;
        if (strcmp(key, "attributes") == 0) ok = fast_attributes(&p, end, pr);
        else if (strcmp(key, "channels") == 0) ok = fast_channels(&p, end, pr);
        else if (strcmp(key, "frequency") == 0) ok = fast_frequency(&p, end, pr);
        else if (strcmp(key, "id") == 0) ok = fast_string(&p, end, id_ok, &pr->id);
        else if (strcmp(key, "locale") == 0) ok = fast_string(&p, end, locale_ok, &pr->locale);
        else if (strcmp(key, "quiet_hours") == 0) ok = fast_string(&p, end, quiet_ok, &pr->quiet_hours);
        else if (strcmp(key, "topics") == 0) ok = fast_topics(&p, end, pr);
        else if (strcmp(key, "tz") == 0) ok = fast_string(&p, end, tz_ok, &pr->tz);
        else if ((ch = channel_from_address_field(key)) >= 0)
            ok = fast_string(&p, end, channel_get(ch)->address_valid, &pr->address[ch]);
        else ok = false;
        if (!ok) break;
    }
    if (!m.done || p != end || !pr->id) {
        profile_free(pr);
        return false;
    }
    if (pr->quiet_hours) profile_quiet_hours_parse(pr->quiet_hours, &pr->quiet_start_min, &pr->quiet_end_min);
    return true;
}

int profile_parse_full(const char *json, size_t len, struct profile *p, char *err, size_t errlen)
{
    memset(p, 0, sizeof(*p));
    if (len > HERALD_PROFILE_MAX_BYTES) {
        herald_seterr(err, errlen, "profile is %zu bytes, over the %d byte limit", len, HERALD_PROFILE_MAX_BYTES);
        return -HERALD_ETOOBIG;
    }
    json_error_t jerr;
    json_t *obj = json_loadb(json, len, JSON_REJECT_DUPLICATES, &jerr);
    if (!obj) {
        strip_near(jerr.text);
        herald_seterr(err, errlen, "profile is not valid JSON: %s at line %d column %d", jerr.text, jerr.line,
                      jerr.column);
        return -HERALD_EINVAL;
    }
    int rc = from_json(obj, p, false, true, NULL, NULL, 0, err, errlen);
    json_decref(obj);
    return rc;
}

int profile_parse(const char *json, size_t len, struct profile *p, char *err, size_t errlen)
{
    if (len <= HERALD_PROFILE_MAX_BYTES && profile_fast(json, len, p)) return 0;
    return profile_parse_full(json, len, p, err, errlen);
}

int profile_attributes_parse(const char *json, size_t len, json_t **out, char *err, size_t errlen)
{
    *out = NULL;
    if (len > HERALD_PROFILE_MAX_BYTES) {
        herald_seterr(err, errlen, "attributes: %zu bytes, over the %d byte limit", len, HERALD_PROFILE_MAX_BYTES);
        return -HERALD_ETOOBIG;
    }
    struct profile pr = {0};
    const char *p = json;
    if (fast_attributes(&p, json + len, &pr) && p == json + len) {
        *out = pr.attributes;
        return 0;
    }
    json_decref(pr.attributes);
    pr.attributes = NULL;
    json_error_t jerr;
    json_t *v = json_loadb(json, len, JSON_REJECT_DUPLICATES, &jerr);
    if (!v) {
        strip_near(jerr.text);
        herald_seterr(err, errlen, "attributes: not valid JSON: %s at column %d", jerr.text, jerr.column);
        return -HERALD_EINVAL;
    }
    int rc = parse_attributes(v, &pr, true, err, errlen);
    json_decref(v);
    *out = pr.attributes;
    return rc;
}

/* One value of a plain attributes text (profile_attributes_plain): its
 * rendering [*s, *s + *n), *p past it; false at anything else. */
static bool plain_value(const char **p, const char *end, const char **s, size_t *n)
{
    const char *v = *p;
    if (take_lit(p, end, "true") || take_lit(p, end, "false")) {
        *s = v;
        *n = (size_t)(*p - v);
        return true;
    }
    if (v < end && *v == '"') return take_str(p, end, true, s, n);
    /* An integer as fast_scalar takes it, and as its rendering prints it
     * back: no "-0" (that prints as 0). */
    const char *q = v;
    if (q < end && *q == '-') q++;
    const char *digits = q;
    while (q < end && *q >= '0' && *q <= '9') q++;
    size_t nd = (size_t)(q - digits);
    if (nd == 0 || nd > 18 || (*digits == '0' && (nd > 1 || digits > v)) ||
        (q < end && (*q == '.' || *q == 'e' || *q == 'E')))
        return false;
    *s = v;
    *n = (size_t)(q - v);
    *p = q;
    return true;
}

bool profile_attributes_plain(const char *json, size_t len)
{
    const char *p = json, *end = json + len, *s;
    char key[FAST_KEY_MAX + 1];
    size_t n, count = 0;
    struct members m;
    if (len > HERALD_PROFILE_MAX_BYTES || !members_begin(&m, &p, end)) return false;
    while (members_next(&m, key))
        if (++count > HERALD_PROFILE_MAX_ATTRIBUTES || !plain_value(&p, end, &s, &n)) return false;
    return m.done && p == end;
}

bool profile_attribute_text(const char *json, size_t len, const char *name, const char **s, size_t *n)
{
    /* The text is plain (profile_attributes_plain took it): keys and
     * strings end at their next quote, other values at "," or "}". */
    size_t nlen = strlen(name);
    const char *p = json + 1, *end = json + len;
    while (p < end && *p == '"') {
        const char *k = p + 1, *q = memchr(k, '"', (size_t)(end - k));
        if (!q || q + 1 >= end) return false;
        bool hit = (size_t)(q - k) == nlen && memcmp(k, name, nlen) == 0;
        const char *v = q + 2, *ve; /* past the quote and the colon */
        if (v < end && *v == '"') {
            ve = memchr(v + 1, '"', (size_t)(end - v - 1));
            if (!ve) return false;
            if (hit) {
                *s = v + 1;
                *n = (size_t)(ve - v - 1);
                return true;
            }
            ve++;
        } else {
            for (ve = v; ve < end && *ve != ',' && *ve != '}'; ve++) {}
            if (hit) {
                *s = v;
                *n = (size_t)(ve - v);
                return true;
            }
        }
        p = ve + 1; /* past the comma (or the closing brace: then the loop ends) */
    }
    return false;
}

char *profile_to_json(const struct profile *p)
{
    json_t *o = json_object();
    json_object_set_new(o, "id", json_string(p->id));
    for (int ch = 0; ch < HERALD_CH_COUNT; ch++)
        if (p->address[ch]) json_object_set_new(o, channel_get(ch)->address_field, json_string(p->address[ch]));
    if (p->tz) json_object_set_new(o, "tz", json_string(p->tz));
    if (p->locale) json_object_set_new(o, "locale", json_string(p->locale));
    if (p->attributes) json_object_set(o, "attributes", p->attributes);
    if (p->channels_set) {
        json_t *a = json_array();
        for (int i = 0; i < p->nchannels; i++) json_array_append_new(a, json_string(herald_channel_name(p->channels[i])));
        json_object_set_new(o, "channels", a);
    }
    if (p->ntopics) {
        json_t *t = json_object();
        for (size_t i = 0; i < p->ntopics; i++) json_object_set_new(t, p->topics[i].name, json_boolean(p->topics[i].on));
        json_object_set_new(o, "topics", t);
    }
    if (p->quiet_hours) json_object_set_new(o, "quiet_hours", json_string(p->quiet_hours));
    if (p->frequency) json_object_set(o, "frequency", p->frequency);
    char *s = json_dumps(o, JSON_COMPACT | JSON_SORT_KEYS);
    json_decref(o);
    if (!s) abort(); /* only allocation can fail here: fatal, like xmalloc */
    return s;
}

void profile_free(struct profile *p)
{
    free(p->id);
    for (int ch = 0; ch < HERALD_CH_COUNT; ch++) free(p->address[ch]);
    free(p->tz);
    free(p->locale);
    json_decref(p->attributes);
    free(p->attributes_text);
    for (size_t i = 0; i < p->ntopics; i++) free(p->topics[i].name);
    free(p->topics);
    free(p->quiet_hours);
    json_decref(p->frequency);
    memset(p, 0, sizeof(*p));
}
