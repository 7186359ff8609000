/*
 * store.c - key names, record formats and the commands heraldctl runs.
 *
 * Pure helpers (keys, records, reply parsing) plus the blocking writes of
 * heraldctl. The daemon's asynchronous traffic is composed in queue.c with
 * these same helpers. Never logs: errors go to the caller's err buffer, and
 * never name an address.
 */
#include "store.h"

#include "addrindex.h"
#include "digest.h"
#include "rcluster.h"

#include <ctype.h>
#include <openssl/evp.h>
#include <openssl/sha.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* On a cluster the control plane's keys carry the prefix as their hash
 * tag ("{herald}:jobs"): every control script's keys share one slot. Set
 * once, before any key is built (main, heraldctl). */
static bool keys_cluster;

void store_keys_cluster(bool on) { keys_cluster = on; }
bool store_keys_clustered(void) { return keys_cluster; }

/* "<prefix><head><arg><tail>": a key that is never hash-tagged by the
 * prefix (a person's keys carry their own tag, {ID}). */
static void key_plain(struct strbuf *sb, const char *prefix, const char *head, const char *arg, const char *tail)
{
    strbuf_reset(sb);
    strbuf_adds(sb, prefix);
    strbuf_adds(sb, head);
    if (arg) strbuf_adds(sb, arg);
    if (tail) strbuf_adds(sb, tail);
}

void store_key_build(struct strbuf *sb, const char *prefix, const char *head, const char *arg, const char *tail)
{
    if (!keys_cluster) {
        key_plain(sb, prefix, head, arg, tail);
        return;
    }
    strbuf_reset(sb);
    strbuf_add(sb, "{", 1);
    strbuf_adds(sb, prefix);
    strbuf_add(sb, "}", 1);
    strbuf_adds(sb, head);
    if (arg) strbuf_adds(sb, arg);
    if (tail) strbuf_adds(sb, tail);
}

#define key store_key_build

void store_key_jobs(struct strbuf *sb, const char *prefix) { key(sb, prefix, ":jobs", NULL, NULL); }
void store_key_dead(struct strbuf *sb, const char *prefix) { key(sb, prefix, ":dead", NULL, NULL); }
void store_key_scheduled(struct strbuf *sb, const char *prefix) { key(sb, prefix, ":scheduled", NULL, NULL); }
void store_key_audit(struct strbuf *sb, const char *prefix) { key(sb, prefix, ":audit", NULL, NULL); }
void store_key_pid(struct strbuf *sb, const char *prefix, const char *provider, const char *provider_id)
{
    key_plain(sb, prefix, ":pid:", provider, ":");
    strbuf_adds(sb, provider_id);
}
void store_key_events(struct strbuf *sb, const char *prefix) { key(sb, prefix, ":events", NULL, NULL); }
void store_key_person(struct strbuf *sb, const char *prefix, const char *id) { key_plain(sb, prefix, ":r:{", id, "}"); }
void store_record_field(struct strbuf *sb, const char *campaign)
{
    strbuf_reset(sb);
    strbuf_adds(sb, STORE_RECORD_FIELD_PREFIX);
    strbuf_adds(sb, campaign);
}
void store_key_layout(struct strbuf *sb, const char *prefix) { key(sb, prefix, ":layout", NULL, NULL); }
static const char *rec_names[] = {"", "pending", "sent", "failed", "suppressed", "unknown", "deferred", "reserved"};
/* The one-letter codes records are written with (rec_names: what records
 * written before them hold, still read): the person hash stays a listpack
 * only while every value is at most 64 bytes (docs/architecture.md "Keys"). */
static const char *rec_codes[] = {"", "p", "s", "f", "x", "u", "d", "r"};

/* Reasons as records and history entries write them: two letters for a
 * reason herald names, the name itself for any other ("cap:<name>"). Never
 * renumbered: stored records hold them. */
static const struct {
    const char *name, *code;
} reason_codes[] = {
    {"expired", "ex"},          {"unknown_recipient", "ur"}, {"topic_opt_out", "to"},
    {"no_channel", "nh"},       {"no_consent", "nc"},        {"consent_expired", "ce"},
    {"no_address", "na"},       {"suppressed", "su"},        {"duplicate", "du"},
    {"quiet_hours", "qh"},      {"cap", "ca"},               {"user_frequency", "uf"},
    {"invalid_job", "ij"},      {"provider_rejected", "pr"}, {"provider_error", "pe"},
    {"interrupted", "in"},      {"provider_unavailable", "pu"}, {"cancelled", "cx"},
    {"undecryptable", "ud"},
};

/* An outcome's one-letter code in a history entry: the record's state
 * code of the same name (sent, failed, suppressed, unknown, deferred). */
static const char *history_outcome_code(const char *outcome)
{
    for (int i = REC_PENDING; i <= REC_RESERVED; i++)
        if (strcmp(outcome, rec_names[i]) == 0) return rec_codes[i];
    return NULL;
}

void store_history_format(struct strbuf *sb, const char *campaign, const char *channel, const char *outcome,
                          const char *reason, const char *provider, int64_t at)
{
    const char *v[] = {campaign, channel, outcome, reason, provider ? provider : ""};
    int ch = channel[0] ? herald_channel_from_name(channel) : -1;
    bool plain = history_outcome_code(outcome) && (ch >= 0 || !channel[0]);
    for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) plain = plain && !strchr(v[i], '|');
    strbuf_reset(sb);
    if (!plain) {
        char ts[32];
        herald_time_format(at, ts, sizeof(ts));
        json_t *o = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s}", "campaign", v[0], "channel", v[1], "outcome", v[2],
                              "reason", v[3], "provider", v[4], "at", ts);
        char *text = o ? json_dumps(o, JSON_COMPACT | JSON_ENSURE_ASCII) : NULL;
        if (text) strbuf_adds(sb, text);
        free(text);
        json_decref(o);
        return;
    }
    /* The channel, the outcome and the reason as one word of codes: the
     * channel's number ('-' none: decided before a channel was), history_outcome_code,
     * store_reason_code ("0xnc": email, suppressed, no_consent). */
    strbuf_addf(sb, "2|%lld|", (long long)at);
    strbuf_adds(sb, campaign);
    if (ch >= 0) strbuf_addf(sb, "|%d", ch);
    else strbuf_add(sb, "|-", 2);
    strbuf_adds(sb, history_outcome_code(outcome));
    strbuf_adds(sb, store_reason_code(reason));
    strbuf_add(sb, "|", 1);
    strbuf_adds(sb, v[4]);
}

/* An entry "2|<at>|<campaign>|<codes>|<provider>" as the API shows it, its
 * topic and campaign name left to the campaign's info (job_info_apply). */
static json_t *history_codes_json(const char *const *part, const size_t *plen, const char *ts)
{
    const char *w = part[3], *outcome = NULL;
    size_t wl = plen[3];
    if (wl < 2 || ((w[0] < '0' || w[0] >= '0' + HERALD_CH_COUNT) && w[0] != '-')) return NULL;
    for (int i = REC_PENDING; i <= REC_RESERVED; i++)
        if (rec_codes[i][0] == w[1]) outcome = rec_names[i];
    if (!outcome) return NULL;
    const char *reason = store_reason_name(w + 2, wl - 2);
    json_t *o = json_object();
    json_object_set_new(o, "campaign", json_stringn(part[2], plen[2]));
    json_object_set_new(o, "channel", json_string(w[0] == '-' ? "" : herald_channel_name(w[0] - '0')));
    json_object_set_new(o, "outcome", json_string(outcome));
    json_object_set_new(o, "reason", reason ? json_string(reason) : json_stringn(w + 2, wl - 2));
    json_object_set_new(o, "provider", json_stringn(part[4], plen[4]));
    json_object_set_new(o, "at", json_string(ts));
    return o;
}

json_t *store_history_json(const char *s, size_t len)
{
    if (len > 0 && s[0] == '{') {
        json_t *o = json_loadb(s, len, 0, NULL);
        if (json_is_object(o)) return o;
        json_decref(o);
        return NULL;
    }
    /* "2|at|campaign|codes|provider": 5 parts; "1|at|campaign|channel|topic|
     * outcome|reason|provider[|campaign_name]", as entries were written
     * before the codes: 8 or 9 parts. */
    const char *part[10];
    size_t plen[10], np = 0;
    const char *p = s, *end = s + len;
    for (;;) {
        const char *bar = memchr(p, '|', (size_t)(end - p));
        part[np] = p;
        plen[np++] = bar ? (size_t)(bar - p) : (size_t)(end - p);
        if (!bar || np == 10) break;
        p = bar + 1;
    }
    if (plen[0] != 1 || (part[0][0] == '1' ? np != 8 && np != 9 : part[0][0] != '2' || np != 5)) return NULL;
    char num[24];
    if (plen[1] == 0 || plen[1] >= sizeof(num)) return NULL;
    memcpy(num, part[1], plen[1]);
    num[plen[1]] = '\0';
    char *e;
    long long at = strtoll(num, &e, 10);
    if (*e) return NULL;
    char ts[32];
    herald_time_format((int64_t)at, ts, sizeof(ts));
    if (part[0][0] == '2') return history_codes_json(part, plen, ts);
    static const char *const names[] = {"campaign", "channel", "topic", "outcome", "reason", "provider"};
    json_t *o = json_object();
    for (size_t i = 0; i < 6; i++) json_object_set_new(o, names[i], json_stringn(part[2 + i], plen[2 + i]));
    if (np == 9) json_object_set_new(o, "campaign_name", json_stringn(part[8], plen[8]));
    json_object_set_new(o, "at", json_string(ts));
    return o;
}

void store_glob_escape(struct strbuf *out, const char *s)
{
    for (; *s; s++) {
        if (strchr("*?[]\\", *s)) strbuf_add(out, "\\", 1);
        strbuf_add(out, s, 1);
    }
}
void store_key_retention(struct strbuf *sb, const char *prefix) { key(sb, prefix, ":retention", NULL, NULL); }
void store_key_retention_sweep(struct strbuf *sb, const char *prefix, const char *part)
{
    key(sb, prefix, ":retention:", part, NULL);
}
void store_key_sends(struct strbuf *sb, const char *prefix, const char *id) { key_plain(sb, prefix, ":r:{", id, "}:sends"); }
/* The slot a ring field names ("h<digits>", below max), or -1. */
static long history_slot(const redisReply *f, size_t max)
{
    size_t pl = strlen(STORE_HISTORY_FIELD_PREFIX);
    if (f->type != REDIS_REPLY_STRING || f->len <= pl || f->len > pl + 3 ||
        memcmp(f->str, STORE_HISTORY_FIELD_PREFIX, pl) != 0)
        return -1;
    long k = 0;
    for (size_t i = pl; i < f->len; i++) {
        if (!isdigit((unsigned char)f->str[i])) return -1;
        k = 10 * k + (f->str[i] - '0');
    }
    return (size_t)k < max ? k : -1;
}

static void history_append(json_t *out, const redisReply *e)
{
    json_t *o = e && e->type == REDIS_REPLY_STRING && e->len ? store_history_json(e->str, e->len) : NULL;
    if (o) json_array_append_new(out, o);
}

json_t *store_history_read(const redisReply *hash, const redisReply *list, size_t max)
{
    json_t *out = json_array();
    if (max > STORE_HISTORY_MAX) max = STORE_HISTORY_MAX;
    if (max == 0) return out;
    const redisReply *slot[STORE_HISTORY_MAX] = {NULL};
    long long cursor = 0;
    for (size_t i = 0; hash && hash->type == REDIS_REPLY_ARRAY && i + 1 < hash->elements; i += 2) {
        const redisReply *f = hash->element[i], *v = hash->element[i + 1];
        long k = history_slot(f, max);
        if (k >= 0) {
            slot[k] = v;
        } else if (f->type == REDIS_REPLY_STRING && strcmp(f->str, STORE_HISTORY_CURSOR) == 0 &&
                   v->type == REDIS_REPLY_STRING) {
            char *end;
            cursor = strtoll(v->str, &end, 10);
            if (*end || cursor < 0) cursor = 0;
        }
    }
    /* Newest first: back from the next slot, once round the ring (a slot
     * not written yet, in the ring's first turn, is no field). */
    for (size_t j = 1; j <= max; j++) history_append(out, slot[((size_t)cursor % max + max - j) % max]);
    size_t nlist = list && list->type == REDIS_REPLY_ARRAY ? list->elements : 0;
    for (size_t i = 0; i < nlist && json_array_size(out) < max; i++) history_append(out, list->element[i]);
    return out;
}

void store_key_history(struct strbuf *sb, const char *prefix, const char *id)
{
    key_plain(sb, prefix, ":r:{", id, "}:history");
}
void store_key_handed(struct strbuf *sb, const char *prefix, const char *run)
{
    key_plain(sb, prefix, ":handed:", run, NULL);
}
void store_key_erased(struct strbuf *sb, const char *prefix, const char *run)
{
    key_plain(sb, prefix, ":erased:", run, NULL);
}
void store_key_suppress(struct strbuf *sb, const char *prefix) { key(sb, prefix, ":suppress", NULL, NULL); }
void store_key_suppress_info(struct strbuf *sb, const char *prefix) { key(sb, prefix, ":suppress:info", NULL, NULL); }
void store_key_admin(struct strbuf *sb, const char *prefix) { key(sb, prefix, ":admin", NULL, NULL); }
void store_key_addr(struct strbuf *sb, const char *prefix) { key(sb, prefix, ":addr", NULL, NULL); }
void store_key_tombstones(struct strbuf *sb, const char *prefix) { key(sb, prefix, ":tombstones", NULL, NULL); }
void store_key_marker(struct strbuf *sb, const char *prefix) { key(sb, prefix, ":marker", NULL, NULL); }
void store_key_reload(struct strbuf *sb, const char *prefix) { key(sb, prefix, ":reload", NULL, NULL); }
void store_key_limit(struct strbuf *sb, const char *prefix, const char *provider)
{
    key(sb, prefix, ":limit:", provider, NULL);
}
void store_key_consumer(struct strbuf *sb, const char *prefix, const char *consumer)
{
    key(sb, prefix, ":consumer:", consumer, NULL);
}
void store_key_campaign(struct strbuf *sb, const char *prefix, const char *campaign) { key(sb, prefix, ":campaign:", campaign, NULL); }
void store_key_cut(struct strbuf *sb, const char *prefix, const char *entry, const char *tail)
{
    key(sb, prefix, ":cut:{", entry, tail);
}
void store_key_campaign_norecord(struct strbuf *sb, const char *prefix, const char *campaign)
{
    key(sb, prefix, ":campaign:", campaign, ":norecord");
}

void store_key_campaign_paused(struct strbuf *sb, const char *prefix, const char *campaign)
{
    key(sb, prefix, ":campaign:", campaign, ":paused");
}

void store_key_node(struct strbuf *sb, const char *prefix, const char *tag, const char *head, const char *arg,
                    const char *tail)
{
    strbuf_reset(sb);
    strbuf_adds(sb, prefix);
    strbuf_adds(sb, ":n:{");
    strbuf_adds(sb, tag);
    strbuf_adds(sb, "}");
    strbuf_adds(sb, head);
    if (arg) strbuf_adds(sb, arg);
    if (tail) strbuf_adds(sb, tail);
}

void store_key_epoch(struct strbuf *sb, const char *prefix) { key(sb, prefix, ":epoch", NULL, NULL); }
void store_key_audit_nodes(struct strbuf *sb, const char *prefix) { key(sb, prefix, ":audit:nodes", NULL, NULL); }
void store_key_campaign_nodes(struct strbuf *sb, const char *prefix, const char *campaign, const char *run)
{
    key(sb, prefix, ":campaign:", campaign, ":nodes:");
    if (run) strbuf_adds(sb, run);
}

void store_suppress_member(struct strbuf *sb, int channel, const char *address)
{
    addrindex_plain(sb, channel, address);
}

const char *store_reason_code(const char *reason)
{
    for (size_t i = 0; reason && i < sizeof(reason_codes) / sizeof(reason_codes[0]); i++)
        if (strcmp(reason, reason_codes[i].name) == 0) return reason_codes[i].code;
    return reason ? reason : "";
}

const char *store_reason_name(const char *code, size_t len)
{
    for (size_t i = 0; len == 2 && i < sizeof(reason_codes) / sizeof(reason_codes[0]); i++)
        if (memcmp(code, reason_codes[i].code, 2) == 0) return reason_codes[i].name;
    return NULL;
}

const char *store_rec_state_name(enum store_rec_state st)
{
    return st <= REC_RESERVED ? rec_names[st] : "";
}

const char *store_rec_state_code(enum store_rec_state st)
{
    return st <= REC_RESERVED ? rec_codes[st] : "";
}

bool store_record_in_handed_log(const struct store_record *rec)
{
    return rec->state == REC_RESERVED && rec->seq && rec->seq <= STORE_HANDED_SEQ_MAX;
}

bool store_record_reached(const struct store_record *rec)
{
    return rec->state == REC_RESERVED || rec->state == REC_PENDING || rec->state == REC_SENT ||
           rec->state == REC_UNKNOWN;
}

void store_record_format(struct strbuf *sb, enum store_rec_state st, const char *entry,
                         const char *run, int64_t at)
{
    strbuf_reset(sb);
    const char *parts[] = {store_rec_state_code(st), entry, run};
    for (size_t i = 0; i < sizeof(parts) / sizeof(parts[0]); i++) {
        strbuf_adds(sb, parts[i]);
        strbuf_add(sb, " ", 1);
    }
    strbuf_addll(sb, (long long)at);
}

void store_record_format_outcome(struct strbuf *sb, enum store_rec_state st, const char *entry, const char *run,
                                 int64_t at, const char *channel, const char *reason)
{
    store_record_format(sb, st, entry, run, at);
    strbuf_add(sb, " ", 1);
    strbuf_adds(sb, channel ? channel : "");
    strbuf_add(sb, "/", 1);
    strbuf_adds(sb, store_reason_code(reason));
}

int store_record_parse(const char *s, struct store_record *rec)
{
    char st[16], extra[96];
    long long at;
    int n = 0;
    memset(rec, 0, sizeof(*rec));
    if (sscanf(s, "%15s %63s %31s %lld%n", st, rec->entry, rec->run, &at, &n) != 4) return -HERALD_EINVAL;
    /* The words after <at>: a reservation's sequence number (digits), an
     * outcome's "<channel>/<reason>". Old records have neither. */
    for (const char *p = s + n; sscanf(p, " %95s%n", extra, &n) == 1; p += n) {
        char *slash = strchr(extra, '/');
        if (!slash) {
            char *end;
            unsigned long long seq = strtoull(extra, &end, 10);
            if (*end == '\0' && extra[0] >= '0' && extra[0] <= '9') rec->seq = seq;
            continue;
        }
        *slash = '\0';
        herald_copy(rec->channel, sizeof(rec->channel), extra);
        const char *name = store_reason_name(slash + 1, strlen(slash + 1));
        herald_copy(rec->reason, sizeof(rec->reason), name ? name : slash + 1);
    }
    for (int i = REC_PENDING; i <= REC_RESERVED; i++)
        if (strcmp(st, rec_codes[i]) == 0 || strcmp(st, rec_names[i]) == 0) rec->state = (enum store_rec_state)i;
    if (rec->state == REC_NONE) return -HERALD_EINVAL;
    rec->at = at;
    return 0;
}

/* The Lua scripts are in daemon/lua/, embedded at build time (store_lua.c). */

void store_script_sha(const char *script, char sha[41])
{
    unsigned char md[SHA_DIGEST_LENGTH];
    SHA1((const unsigned char *)script, strlen(script), md);
    for (int i = 0; i < SHA_DIGEST_LENGTH; i++) snprintf(sha + 2 * i, 3, "%02x", md[i]);
}

const char *store_lookup_field(size_t i)
{
    if (i == STORE_LOOKUP_PROFILE) return "profile";
    if (i == STORE_LOOKUP_REV) return "rev";
    if (i >= STORE_LOOKUP_SEALED) return store_sealed_field(i - STORE_LOOKUP_SEALED);
    const struct channel_desc *d = channel_get((int)i - STORE_LOOKUP_CONSENT);
    return i > STORE_LOOKUP_PROFILE && d ? d->consent_field : NULL;
}

int store_person_from_fields(const struct seal_keys *keys, const unsigned char index_key[ADDRINDEX_KEY_LEN],
                             const char *id, const redisReply *const *el, bool lazy, struct profile *p,
                             struct strbuf *envelope, char *err, size_t errlen)
{
    struct consent_state consent[HERALD_CH_COUNT];
    bool any = false;
    for (int ch = 0; ch < HERALD_CH_COUNT; ch++) {
        const redisReply *e = el[STORE_LOOKUP_CONSENT + ch];
        /* An unreadable consent record is no consent: never guess yes. */
        if (e->type != REDIS_REPLY_STRING || consent_state_parse(e->str, e->len, &consent[ch]) < 0)
            memset(&consent[ch], 0, sizeof(consent[ch]));
        any = any || (consent[ch].known && consent[ch].granted);
    }
    /* Without consent on any channel no decision reads an address (the
     * policy checks consent first): the contact data stays sealed. */
    int rc = store_person_read(keys, index_key, id, el[STORE_LOOKUP_PROFILE], el + STORE_LOOKUP_SEALED,
                               lazy && !any, p, envelope, err, errlen);
    if (rc <= 0) return rc;
    memcpy(p->consent, consent, sizeof(consent));
    return 1;
}

/* ---- errors of the blocking helpers ------------------------------------ */

/* Keyed by class; a class added to STORE_ERROR_MAP without advice here
 * gets the last resort of store_error_advice. */
static const char *const advice[STORE_E_COUNT] = {
    [STORE_E_CONNECTION] = "check that redis runs and is reachable, then run it again",
    [STORE_E_LOADING] = "redis is loading its data: retry in a moment",
    [STORE_E_BUSY] = "a script runs too long in redis: retry once it ends",
    [STORE_E_TRYAGAIN] = "retry in a moment",
    [STORE_E_MASTERDOWN] = "the replica lost its master: retry once it is back",
    [STORE_E_READONLY] = "this redis is a read-only replica: point [redis] url at the master",
    [STORE_E_OOM] = "retry once memory is freed",
    [STORE_E_CLUSTERDOWN] = "the cluster is down: retry once it is back",
    [STORE_E_NOREPLICAS] = "redis has fewer good replicas than its min-replicas-to-write: retry once they are back",
    [STORE_E_NOPERM] = "the redis user lacks a permission herald needs: check its ACL",
    [STORE_E_WRONGTYPE] = "a key under herald's prefix has the wrong type: something else writes there",
    [STORE_E_NOGROUP] = "the jobs stream has no consumer group yet: start herald once",
    [STORE_E_REGROUP] = "the cluster moved a slot under a batch: retry in a moment",
    [STORE_E_ERROR] = "see redis's log",
    [STORE_E_REPLY] = "is this a redis server?",
};

const char *store_error_advice(enum store_error e)
{
    return e < STORE_E_COUNT && advice[e] ? advice[e] : "see redis's log";
}

enum store_error store_sync_error(char *err, size_t errlen, const char *what, const redisContext *c,
                                  const redisReply *r)
{
    if (!r) {
        herald_seterr(err, errlen, "redis connection failed during the %s: %s (%s)", what,
                      c && c->errstr[0] ? c->errstr : "no reply", store_error_advice(STORE_E_CONNECTION));
        return STORE_E_CONNECTION;
    }
    enum store_error e = r->type == REDIS_REPLY_ERROR && r->str ? store_error_classify(r->str) : STORE_E_REPLY;
    herald_seterr(err, errlen, "redis refused the %s: %s (%s)", what, store_error_name(e), store_error_advice(e));
    return e;
}

int store_sync_import(redisContext *c, const char *prefix, const unsigned char key[ADDRINDEX_KEY_LEN],
                      const struct profile *p, const struct consent_record *recs, size_t nrecs, char *err,
                      size_t errlen)
{
    struct store_import it = {.p = p, .recs = recs, .nrecs = nrecs};
    int rc = store_sync_import_batch(c, prefix, NULL, key, &it, 1, err, errlen);
    if (rc < 0) return rc;
    if (it.status != STORE_IMPORT_STORED) {
        herald_seterr(err, errlen, "%s", it.reason);
        return -HERALD_EREDIS;
    }
    return 0;
}

void store_suppress_info_format(struct strbuf *sb, int64_t since, const char *by, const char *reason)
{
    strbuf_reset(sb);
    strbuf_addll(sb, (long long)since);
    strbuf_adds(sb, " ");
    strbuf_adds(sb, by);
    strbuf_adds(sb, " ");
    strbuf_adds(sb, store_reason_code(reason));
}

int store_suppress_info_parse(const char *s, size_t len, struct store_suppression *out)
{
    memset(out, 0, sizeof(*out));
    size_t i = 0;
    int64_t v = 0;
    while (i < len && s[i] >= '0' && s[i] <= '9' && i < 18) v = v * 10 + (s[i++] - '0');
    if (i == 0 || i >= len || s[i] != ' ') return -HERALD_EINVAL;
    size_t b = ++i;
    while (i < len && s[i] != ' ') i++;
    if (i == b || i - b >= sizeof(out->by) || i >= len) return -HERALD_EINVAL;
    memcpy(out->by, s + b, i - b);
    i++;
    size_t rl = len - i;
    if (rl >= sizeof(out->reason)) return -HERALD_EINVAL;
    memcpy(out->reason, s + i, rl);
    out->since = v;
    return 0;
}

void store_suppress_args(struct store_args *a, const char *prefix, const unsigned char m[ADDRINDEX_LEN], bool on,
                         const char *by, const char *reason, int64_t now)
{
    struct strbuf k;
    strbuf_init(&k);
    store_args_script(a, store_lua_people_suppress, 3);
    addrindex_key_of(&k, prefix, ADDRINDEX_SUPPRESS, m);
    store_args_add(a, k.buf);
    addrindex_key_of(&k, prefix, ADDRINDEX_SUPPRESS_INFO, m);
    store_args_add(a, k.buf);
    addrindex_key_of(&k, prefix, ADDRINDEX_ADDR, m);
    store_args_add(a, k.buf);
    store_args_add(a, on ? "1" : "0");
    store_args_addn(a, (const char *)m, ADDRINDEX_LEN);
    store_suppress_info_format(&k, now, by, reason);
    store_args_add(a, k.buf);
    strbuf_free(&k);
}

void store_suppress_audit_args(struct store_args *a, const char *prefix, int channel,
                               const unsigned char m[ADDRINDEX_LEN], bool on, const char *by, const char *reason,
                               int64_t now, long long admin_maxlen)
{
    struct strbuf k;
    strbuf_init(&k);
    store_args_init(a);
    store_key_admin(&k, prefix);
    store_args_add(a, "XADD");
    store_args_add(a, k.buf);
    store_args_add(a, "MAXLEN");
    store_args_add(a, "~");
    store_args_addll(a, admin_maxlen);
    store_args_add(a, "*");
    char hex[ADDRINDEX_HEX], at[32];
    addrindex_hex(hex, m);
    herald_time_format(now, at, sizeof(at));
    const char *kv[] = {"action", on ? "suppress" : "unsuppress", "channel", herald_channel_name(channel),
                        "address_sha256", hex, "by", by, "reason", reason ? reason : "", "at", at};
    for (size_t i = 0; i < sizeof(kv) / sizeof(kv[0]); i++) store_args_add(a, kv[i]);
    strbuf_free(&k);
}

/* argv on c, or on a cluster (cs) on the master of argv[key_arg]'s slot;
 * NULL (err set, naming what) when no answer came, or an error reply
 * (freed, err set) when bad says the reply is not the one wanted. */
static redisReply *sync_routed(redisContext *c, struct rcluster_sync *cs, int key_arg, int argc, const char **argv,
                               const size_t *lens, const char *what, char *err, size_t errlen)
{
    char why[256] = "";
    redisReply *r = cs ? rcluster_sync_command(cs, key_arg, argc, argv, lens, why, sizeof(why))
                       : redisCommandArgv(c, argc, argv, lens);
    if (!r && cs) herald_seterr(err, errlen, "redis connection failed during the %s: %s (%s)", what, why,
                                store_error_advice(STORE_E_CONNECTION));
    else if (!r) store_sync_error(err, errlen, what, c, r);
    return r;
}

int store_sync_suppress(redisContext *c, struct rcluster_sync *cs, const char *prefix,
                        const unsigned char key[ADDRINDEX_KEY_LEN], int channel, const char *address,
                        const char *reason, long long admin_maxlen, char *err, size_t errlen)
{
    unsigned char m[ADDRINDEX_LEN];
    addrindex_member(key, channel, address, m);
    int64_t now = (int64_t)time(NULL);
    struct strbuf ks, ki, ka, info;
    strbuf_init(&ks);
    strbuf_init(&ki);
    strbuf_init(&ka);
    strbuf_init(&info);
    addrindex_key_of(&ks, prefix, ADDRINDEX_SUPPRESS, m);
    addrindex_key_of(&ki, prefix, ADDRINDEX_SUPPRESS_INFO, m);
    addrindex_key_of(&ka, prefix, ADDRINDEX_ADDR, m);
    store_suppress_info_format(&info, now, "heraldctl", reason);
    /* The daemon's script (store_suppress_args), as EVAL: a fresh Redis may
     * not know it. Its keys share their shard's tag: on a cluster it runs
     * on that shard's master. */
    const char *argv[] = {"EVAL", store_lua_people_suppress, "3", ks.buf, ki.buf, ka.buf, "1", (const char *)m, info.buf};
    size_t argl[9];
    for (size_t i = 0; i < 9; i++) argl[i] = i == 7 ? ADDRINDEX_LEN : strlen(argv[i]);
    redisReply *r = sync_routed(c, cs, 3, 9, argv, argl, "suppression", err, errlen);
    strbuf_free(&ks);
    strbuf_free(&ki);
    strbuf_free(&ka);
    strbuf_free(&info);
    if (!r) return -HERALD_EREDIS;
    if (r->type != REDIS_REPLY_ARRAY || r->elements != 3 || r->element[0]->type != REDIS_REPLY_INTEGER) {
        store_sync_error(err, errlen, "suppression", c, r);
        freeReplyObject(r);
        return -HERALD_EREDIS;
    }
    bool changed = r->element[0]->integer == 1;
    char owner[HERALD_ID_MAX + 1] = "";
    if (r->element[2]->type == REDIS_REPLY_STRING) herald_copy(owner, sizeof(owner), r->element[2]->str);
    freeReplyObject(r);
    if (!changed) return 0;
    /* Audited; and whose address it is moves their rev, so that a message
     * the daemon looked up before the suppression is decided again (as
     * people_suppress does). */
    char hex[ADDRINDEX_HEX], at[32];
    addrindex_hex(hex, m);
    herald_time_format(now, at, sizeof(at));
    struct strbuf k;
    strbuf_init(&k);
    store_key_admin(&k, prefix);
    int rc = 0;
    r = redisCommand(c, "XADD %s MAXLEN ~ %lld * action suppress channel %s address_sha256 %s by heraldctl reason %s at %s",
                     k.buf, admin_maxlen, herald_channel_name(channel), hex, reason ? reason : "", at);
    if (!r || r->type == REDIS_REPLY_ERROR) {
        store_sync_error(err, errlen, "suppression audit", c, r);
        rc = -HERALD_EREDIS;
    }
    if (r) freeReplyObject(r);
    if (rc == 0 && herald_id_valid(owner)) { /* on the person's slot */
        store_key_person(&k, prefix, owner);
        const char *touch[] = {"EVAL", store_lua_people_touch, "1", k.buf};
        const size_t tl[] = {4, strlen(store_lua_people_touch), 1, k.len};
        r = sync_routed(c, cs, 3, 4, touch, tl, "suppression", err, errlen);
        if (!r || r->type == REDIS_REPLY_ERROR) {
            if (r) store_sync_error(err, errlen, "suppression", c, r);
            rc = -HERALD_EREDIS;
        }
        if (r) freeReplyObject(r);
    }
    strbuf_free(&k);
    return rc;
}

/* ---- campaign control ----------------------------------------------------- */

static const char *const control_actions[] = {"pause", "resume", "cancel"};
static const char *const control_results[] = {"ok", "unchanged", "unknown", "cancelled", "not_paused"};

const char *store_control_action_name(enum store_control_action a) { return control_actions[a]; }

int store_control_action_parse(const char *s)
{
    for (size_t i = 0; i < sizeof(control_actions) / sizeof(control_actions[0]); i++)
        if (strcmp(s, control_actions[i]) == 0) return (int)i;
    return -1;
}

int store_control_result_of(const redisReply *r)
{
    if (!r || (r->type != REDIS_REPLY_STATUS && r->type != REDIS_REPLY_STRING)) return -1;
    for (size_t i = 0; i < sizeof(control_results) / sizeof(control_results[0]); i++)
        if (strcmp(r->str, control_results[i]) == 0) return (int)i;
    return -1;
}

void store_control_args(struct store_args *a, const char *prefix, const char *campaign,
                        enum store_control_action action, long long events_maxlen)
{
    struct strbuf k;
    strbuf_init(&k);
    store_args_script(a, store_lua_campaign_control, 5);
    store_key_campaign(&k, prefix, campaign);
    store_args_add(a, k.buf);
    store_key_campaign_paused(&k, prefix, campaign);
    store_args_add(a, k.buf);
    store_key_jobs(&k, prefix);
    store_args_add(a, k.buf);
    store_key_scheduled(&k, prefix);
    store_args_add(a, k.buf);
    store_key_events(&k, prefix);
    store_args_add(a, k.buf);
    store_args_add(a, store_control_action_name(action));
    store_args_add(a, campaign);
    char at[32];
    herald_time_format(time(NULL), at, sizeof(at));
    store_args_add(a, at);
    store_args_addll(a, events_maxlen);
    strbuf_free(&k);
}

int store_sync_control(redisContext *c, const char *prefix, const char *campaign, enum store_control_action action,
                       long long events_maxlen, enum store_control_result *result, char *err, size_t errlen)
{
    struct strbuf kc, kp, kj, ks, ke;
    strbuf_init(&kc);
    strbuf_init(&kp);
    strbuf_init(&kj);
    strbuf_init(&ks);
    strbuf_init(&ke);
    store_key_campaign(&kc, prefix, campaign);
    store_key_campaign_paused(&kp, prefix, campaign);
    store_key_jobs(&kj, prefix);
    store_key_scheduled(&ks, prefix);
    store_key_events(&ke, prefix);
    char at[32], maxlen[HERALD_LL_CHARS];
    herald_time_format(time(NULL), at, sizeof(at));
    herald_lltoa(maxlen, events_maxlen);
    /* The daemon's command (store_control_args), as EVAL: a fresh Redis may not know the script. */
    const char *argv[] = {"EVAL", store_lua_campaign_control, "5", kc.buf, kp.buf, kj.buf, ks.buf, ke.buf,
                          store_control_action_name(action), campaign, at, maxlen};
    redisReply *r = redisCommandArgv(c, (int)(sizeof(argv) / sizeof(argv[0])), argv, NULL);
    strbuf_free(&kc);
    strbuf_free(&kp);
    strbuf_free(&kj);
    strbuf_free(&ks);
    strbuf_free(&ke);
    int v = store_control_result_of(r);
    int rc = 0;
    if (v < 0) {
        store_sync_error(err, errlen, "campaign control", c, r);
        rc = -HERALD_EREDIS;
    } else {
        *result = (enum store_control_result)v;
    }
    if (r) freeReplyObject(r);
    return rc;
}

/* ---- person data and progress ------------------------------------------ */

size_t store_address_normalise(char *out, size_t outlen, int channel, const char *address)
{
    return channel_address_normalise(out, outlen, channel, address);
}

json_t *store_campaign_progress(const char *id, const redisReply *r)
{
    if (!r || r->type != REDIS_REPLY_ARRAY) return NULL;
    size_t n = 0;
    const char **f = xcalloc(r->elements / 2 + 1, sizeof(*f)), **v = xcalloc(r->elements / 2 + 1, sizeof(*v));
    for (size_t i = 0; i + 1 < r->elements; i += 2) {
        if (r->element[i]->type != REDIS_REPLY_STRING || r->element[i + 1]->type != REDIS_REPLY_STRING) continue;
        f[n] = r->element[i]->str;
        v[n++] = r->element[i + 1]->str;
    }
    json_t *out = store_campaign_progress_pairs(id, f, v, n);
    free(f);
    free(v);
    return out;
}

/* A field given twice (a cluster's per-node counters after the hash's) adds up. */
static void count_add(json_t *o, const char *reason, long long n)
{
    json_object_set_new(o, reason, json_integer(json_integer_value(json_object_get(o, reason)) + n));
}

json_t *store_campaign_progress_pairs(const char *id, const char *const *fields, const char *const *values,
                                      size_t nfields)
{
    json_t *out = json_object();
    json_t *sup = json_object(), *fail = json_object(), *def = json_object();
    long long total = 0, sent = 0, unknown = 0, deferred = 0, done_count = 0, run = 0;
    long long delivered = 0, bounced = 0, complained = 0; /* the providers' feedback (webhooks.c) */
    int states = 0, running = 0, queued = 0, scheduled = 0, paused = 0;
    const char *control = "", *enqueued_at = NULL, *finished_at = NULL;
    for (size_t i = 0; i < nfields; i++) {
        const char *f = fields[i], *v = values[i];
        long long n = strtoll(v, NULL, 10);
        if (strcmp(f, "run") == 0) run = n;
        else if (strcmp(f, "enqueued_at") == 0) enqueued_at = v;
        else if (strcmp(f, "finished_at") == 0) finished_at = v;
        else if (strncmp(f, "total:", 6) == 0) total += n;
        else if (strncmp(f, "state:", 6) == 0) {
            states++;
            if (strcmp(v, "running") == 0) running++;
            else if (strcmp(v, "queued") == 0) queued++;
            else if (strcmp(v, "scheduled") == 0) scheduled++;
            else if (strcmp(v, "paused") == 0) paused++;
        } else if (strcmp(f, "control") == 0) {
            control = v;
        } else if (strcmp(f, "sent") == 0) {
            sent += n;
            done_count += n;
        } else if (strcmp(f, "unknown") == 0) {
            unknown += n;
            done_count += n;
        } else if (strcmp(f, "delivered") == 0) {
            delivered = n;
        } else if (strcmp(f, "bounced") == 0) {
            bounced = n;
        } else if (strcmp(f, "complained") == 0) {
            complained = n;
        } else if (strncmp(f, "suppressed:", 11) == 0) {
            count_add(sup, f + 11, n);
            done_count += n;
        } else if (strncmp(f, "failed:", 7) == 0) {
            count_add(fail, f + 7, n);
            done_count += n;
        } else if (strncmp(f, "deferred:", 9) == 0) {
            count_add(def, f + 9, n);
            deferred += n;
        }
    }
    /* One run may have several job entries (a scheduled or paused part that came back, deferred recipients). */
    const char *state = states == 0 ? "unknown"
                        : running   ? "running"
                        : queued    ? "queued"
                        : scheduled ? "scheduled"
                        : paused    ? "paused"
                        : deferred  ? "deferred" /* some wait in Redis for their quiet hours to end */
                                    : "done";
    /* An operator's pause or cancel (lua/campaign_control.lua) is what a
     * reader wants to see; "pausing" and "cancelling" while a run still
     * finishes what its providers have. */
    if (strcmp(control, "paused") == 0) state = running ? "pausing" : "paused";
    else if (strcmp(control, "cancelled") == 0) state = running || queued || paused ? "cancelling" : "cancelled";
    json_object_set_new(out, "id", json_string(id));
    json_object_set_new(out, "state", json_string(state));
    json_object_set_new(out, "total", json_integer(total));
    json_object_set_new(out, "sent", json_integer(sent));
    json_object_set_new(out, "suppressed", sup);
    json_object_set_new(out, "failed", fail);
    json_object_set_new(out, "deferred", json_integer(deferred));
    json_object_set_new(out, "deferred_by_reason", def);
    json_object_set_new(out, "unknown", json_integer(unknown));
    json_object_set_new(out, "pending", json_integer(total > done_count + deferred ? total - done_count - deferred : 0));
    json_object_set_new(out, "delivery", json_pack("{s:I, s:I, s:I}", "delivered", (json_int_t)delivered, "bounced",
                                                   (json_int_t)bounced, "complained", (json_int_t)complained));
    /* Runs (campaign_enqueue.lua): a hash from before them is run 1. */
    if (states) json_object_set_new(out, "run", json_integer(run > 0 ? run : 1));
    if (enqueued_at) json_object_set_new(out, "enqueued_at", json_string(enqueued_at));
    if (finished_at) json_object_set_new(out, "finished_at", json_string(finished_at));
    return out;
}

/* Reads the next reply of a pipeline; NULL with err set when there is none
 * (the connection failed: the rest of the pipeline is lost too). */
static redisReply *next_reply(redisContext *c, char *err, size_t errlen)
{
    redisReply *r = NULL;
    if (redisGetReply(c, (void **)&r) != REDIS_OK || !r) {
        store_sync_error(err, errlen, "import", c, NULL);
        return NULL;
    }
    return r;
}

/* The writes of one person, queued as one MULTI ... EXEC; returns the
 * number of replies they will produce. drop[ch]: an old address's index
 * member to take out of the address index (or NULL); none is touched
 * without with_addr (on a cluster the index is written apart:
 * store_sync_import_cluster). */
static int append_import(redisContext *c, const char *prefix, const struct seal_keys *keys,
                         const unsigned char key[ADDRINDEX_KEY_LEN], struct store_import *it,
                         unsigned char *const drop[], bool with_addr)
{
    const struct profile *p = it->p;
    struct strbuf kp, ka, cr;
    strbuf_init(&kp);
    strbuf_init(&ka);
    strbuf_init(&cr);
    store_key_person(&kp, prefix, p->id);
    struct store_person_form form;
    store_person_form_init(&form);
    store_person_seal(keys, key, p, &form);
    int n = 0;
    redisAppendCommand(c, "MULTI");
    n++;
    redisAppendCommand(c, "HSET %s profile %b act %lld", kp.buf, form.profile.buf, form.profile.len,
                       (long long)time(NULL));
    n++;
    for (size_t i = 0; i < STORE_SEALED_NFIELDS; i++) {
        if (form.set[i])
            redisAppendCommand(c, "HSET %s %s %b", kp.buf, store_sealed_field(i), form.sealed[i].buf,
                               form.sealed[i].len);
        else
            redisAppendCommand(c, "HDEL %s %s", kp.buf, store_sealed_field(i));
        n++;
    }
    for (size_t i = 0; i < it->nrecs; i++) {
        if (it->tombstoned & (1u << it->recs[i].channel)) continue;
        consent_record_format(&cr, &it->recs[i]);
        /* The daemon's ledger append (in the person hash: layout 4), as
         * EVAL: a fresh Redis may not know the script. */
        const struct channel_desc *d = channel_get(it->recs[i].channel);
        redisAppendCommand(c, "EVAL %s 1 %s %s %s %s 0", store_lua_people_consent, kp.buf, cr.buf, d->consent_field,
                           d->name);
        n++;
    }
    for (int ch = 0; with_addr && ch < HERALD_CH_COUNT; ch++) {
        if (drop[ch]) {
            addrindex_key_of(&ka, prefix, ADDRINDEX_ADDR, drop[ch]);
            redisAppendCommand(c, "HDEL %s %b", ka.buf, drop[ch], (size_t)ADDRINDEX_LEN);
            n++;
        }
        const char *addr = profile_address(p, ch);
        if (!addr) continue;
        unsigned char m[ADDRINDEX_LEN];
        addrindex_member(key, ch, addr, m);
        addrindex_key_of(&ka, prefix, ADDRINDEX_ADDR, m);
        redisAppendCommand(c, "HSET %s %b %s", ka.buf, m, (size_t)ADDRINDEX_LEN, p->id);
        n++;
    }
    /* A change the daemon may have read before: it decides again. */
    redisAppendCommand(c, "HINCRBY %s rev 1", kp.buf);
    n++;
    redisAppendCommand(c, "EXEC");
    n++;
    store_person_form_free(&form);
    strbuf_free(&kp);
    strbuf_free(&ka);
    strbuf_free(&cr);
    return n;
}

/* An error reply as a reason to print: its class, never Redis's words
 * (it quotes the arguments of a refused command, and one may be an
 * address). after: what else to say ("" none). */
static void refuse(struct store_import *it, const redisReply *r, const char *after)
{
    char why[160];
    it->status = STORE_IMPORT_REFUSED;
    it->error = store_sync_error(why, sizeof(why), "import", NULL, r);
    herald_seterr(it->reason, sizeof(it->reason), "%s%s", why, after);
}

/* The first failure among the replies to one person's MULTI ... EXEC:
 * a command refused while queued (EXEC then answers EXECABORT), or a
 * command that failed when EXEC ran it (the others were applied: Redis
 * has no rollback). NULL when every write succeeded. */
static const redisReply *transaction_error(redisReply **replies, int n, bool *applied)
{
    *applied = false;
    for (int k = 0; k < n - 1; k++)
        if (replies[k]->type == REDIS_REPLY_ERROR) return replies[k];
    const redisReply *exec = replies[n - 1];
    if (exec->type != REDIS_REPLY_ARRAY) return exec; /* an error, or nil (aborted) */
    *applied = true;
    for (size_t e = 0; e < exec->elements; e++)
        if (exec->element[e]->type == REDIS_REPLY_ERROR) return exec->element[e];
    return NULL;
}

static void import_reset(struct store_import *items, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        items[i].tombstoned = 0;
        items[i].status = STORE_IMPORT_UNKNOWN;
        items[i].error = STORE_E_COUNT;
        items[i].reason[0] = '\0';
    }
}

/* The address index entries that a person's new profile p no longer
 * names, into drop[ch] (allocated): the old addresses, read back by
 * "HMGET <person> profile <sealed fields>" (r), that differ from p's. An
 * old address that does not open keeps its entry: the next write that can
 * read it drops it (readers of the index check the person). */
static void import_drops(const struct seal_keys *keys, const unsigned char key[ADDRINDEX_KEY_LEN],
                         const struct profile *p, const redisReply *r, unsigned char *drop[])
{
    struct profile old;
    char perr[128];
    if (r->type != REDIS_REPLY_ARRAY || r->elements != 1 + STORE_SEALED_NFIELDS ||
        store_person_open(keys, p->id, r->element[0], (const redisReply *const *)r->element + 1, &old, perr,
                          sizeof(perr)) != 1)
        return;
    for (int ch = 0; ch < HERALD_CH_COUNT; ch++) {
        const char *oa = profile_address(&old, ch), *na = profile_address(p, ch);
        if (!oa) continue;
        unsigned char om[ADDRINDEX_LEN], nm[ADDRINDEX_LEN];
        addrindex_member(key, ch, oa, om);
        if (na) addrindex_member(key, ch, na, nm);
        if (!na || memcmp(nm, om, sizeof(om)) != 0) {
            drop[ch] = xmalloc(ADDRINDEX_LEN);
            memcpy(drop[ch], om, ADDRINDEX_LEN);
        }
    }
    profile_free(&old);
}

int store_sync_import_batch(redisContext *c, const char *prefix, const struct seal_keys *keys,
                            const unsigned char key[ADDRINDEX_KEY_LEN],
                            struct store_import *items, size_t n, char *err, size_t errlen)
{
    struct strbuf kp, kt, ks;
    strbuf_init(&kp);
    strbuf_init(&kt);
    strbuf_init(&ks);
    store_key_tombstones(&kt, prefix);
    unsigned char *(*drop)[HERALD_CH_COUNT] = xcalloc(n ? n : 1, sizeof(*drop));
    int *nreplies = xcalloc(n ? n : 1, sizeof(*nreplies));
    int rc = 0;

    import_reset(items, n);

    /* Round trip 1, pipelined for the whole batch, reads only: which
     * addresses were erased before (their consent records are not stored:
     * the person must consent again, through the API), and the profile
     * stored before (its addresses leave herald:addr if they changed). A
     * person whose answer is an error is not written: storing consent
     * without knowing whether the address was erased is not allowed. */
    for (size_t i = 0; i < n; i++) {
        for (int ch = 0; ch < HERALD_CH_COUNT; ch++) {
            const char *addr = profile_address(items[i].p, ch);
            if (!addr) continue;
            /* Its tombstone (addrindex.h), or one of layout 2 under the secret. */
            unsigned char m[ADDRINDEX_LEN];
            addrindex_member(key, ch, addr, m);
            addrindex_key_of(&ks, prefix, ADDRINDEX_TOMBSTONES, m);
            redisAppendCommand(c, "SISMEMBER %s %b", ks.buf, m, (size_t)ADDRINDEX_LEN);
            redisAppendCommand(c, "SISMEMBER %s %s", kt.buf, items[i].tombstones[ch] ? items[i].tombstones[ch] : "");
        }
        store_key_person(&kp, prefix, items[i].p->id);
        const char *argv[3 + STORE_SEALED_NFIELDS] = {"HMGET", kp.buf, "profile"};
        for (size_t f = 0; f < STORE_SEALED_NFIELDS; f++) argv[3 + f] = store_sealed_field(f);
        redisAppendCommandArgv(c, 3 + STORE_SEALED_NFIELDS, argv, NULL);
    }
    for (size_t i = 0; i < n && rc == 0; i++) {
        redisReply *r;
        for (int ch = 0; ch < HERALD_CH_COUNT && rc == 0; ch++) {
            if (!profile_address(items[i].p, ch)) continue;
            for (int form = 0; form < 2 && rc == 0; form++) {
                if (!(r = next_reply(c, err, errlen))) {
                    rc = -HERALD_EREDIS;
                    break;
                }
                if (r->type == REDIS_REPLY_ERROR) refuse(&items[i], r, "; while reading the erased addresses");
                else if (r->type == REDIS_REPLY_INTEGER && r->integer == 1) items[i].tombstoned |= 1u << ch;
                freeReplyObject(r);
            }
        }
        if (rc < 0 || !(r = next_reply(c, err, errlen))) {
            rc = -HERALD_EREDIS;
            break;
        }
        if (r->type == REDIS_REPLY_ERROR) refuse(&items[i], r, "; while reading the stored profile");
        else import_drops(keys, key, items[i].p, r, drop[i]);
        freeReplyObject(r);
    }
    if (rc < 0) /* nothing was written: the batch stopped at its reads */
        for (size_t i = 0; i < n; i++)
            if (items[i].status == STORE_IMPORT_UNKNOWN) {
                items[i].status = STORE_IMPORT_REFUSED;
                herald_seterr(items[i].reason, sizeof(items[i].reason), "not sent: %s", err);
            }

    /* Round trip 2: one transaction per person, so the profile, its consent
     * records and its addresses land together. The owner check of a dropped
     * address is not inside it; at worst an address another import took
     * meanwhile loses its entry, and the next write of that person puts it
     * back. */
    for (size_t i = 0; i < n && rc == 0; i++)
        if (items[i].status == STORE_IMPORT_UNKNOWN)
            nreplies[i] = append_import(c, prefix, keys, key, &items[i], drop[i], true);
    for (size_t i = 0; i < n && rc == 0; i++) {
        int m = nreplies[i];
        if (m == 0) continue; /* refused in round trip 1 */
        redisReply **replies = xcalloc((size_t)m, sizeof(*replies));
        int got = 0;
        while (got < m && (replies[got] = next_reply(c, err, errlen))) got++;
        if (got < m) {
            rc = -HERALD_EREDIS; /* this person and the ones after it: UNKNOWN */
        } else {
            bool applied;
            const redisReply *bad = transaction_error(replies, m, &applied);
            if (!bad) {
                items[i].status = STORE_IMPORT_STORED;
            } else {
                /* Redis ran the transaction's other writes: say so. */
                refuse(&items[i], bad, applied ? "; the person's other writes were applied" : "");
            }
        }
        for (int k = 0; k < got; k++) freeReplyObject(replies[k]);
        free(replies);
    }
    if (rc < 0)
        for (size_t i = 0; i < n; i++)
            if (items[i].status == STORE_IMPORT_UNKNOWN)
                herald_seterr(items[i].reason, sizeof(items[i].reason), "%s", err);
    for (size_t i = 0; i < n; i++)
        for (int ch = 0; ch < HERALD_CH_COUNT; ch++) free(drop[i][ch]);
    free(drop);
    free(nreplies);
    strbuf_free(&kp);
    strbuf_free(&kt);
    strbuf_free(&ks);
    return rc;
}

/* ---- import on a cluster ------------------------------------------------- */

/* One command routed by its key (argv[1]) over cs; lens NULL: strings.
 * NULL with err when a connection failed. */
static redisReply *cluster_cmd(struct rcluster_sync *cs, char *err, size_t errlen, int argc, const char **argv,
                               const size_t *lens)
{
    size_t len[3 + STORE_SEALED_NFIELDS]; /* the longest: HMGET of a person's profile and sealed fields */
    if (argc > (int)(sizeof(len) / sizeof(len[0]))) {
        herald_seterr(err, errlen, "internal error: an import command of %d arguments", argc);
        return NULL;
    }
    for (int i = 0; i < argc; i++) len[i] = lens ? lens[i] : strlen(argv[i]);
    char why[256];
    redisReply *r = rcluster_sync_command(cs, 1, argc, argv, len, why, sizeof(why));
    if (!r) herald_seterr(err, errlen, "redis connection failed during the import: %s (%s)", why,
                          store_error_advice(STORE_E_CONNECTION));
    return r;
}

/* One person on a cluster: the person's keys are in one slot, each index
 * shard in another, so the writes are apart and ordered as the API's
 * (addrindex.h): the tombstones read, the new addresses' entries first,
 * then the person's transaction, then the entries of the addresses it no
 * longer has (readers check the person). */
static int import_one_cluster(struct rcluster_sync *cs, const char *prefix, const struct seal_keys *keys,
                              const unsigned char key[ADDRINDEX_KEY_LEN], struct store_import *it, char *err,
                              size_t errlen)
{
    struct strbuf kp, kt, ks;
    strbuf_init(&kp);
    strbuf_init(&kt);
    strbuf_init(&ks);
    store_key_person(&kp, prefix, it->p->id);
    store_key_tombstones(&kt, prefix);
    unsigned char *drop[HERALD_CH_COUNT] = {NULL};
    redisReply *r = NULL;
    int rc = 0;
    const size_t ml = ADDRINDEX_LEN;
    for (int ch = 0; ch < HERALD_CH_COUNT && it->status == STORE_IMPORT_UNKNOWN; ch++) {
        const char *addr = profile_address(it->p, ch);
        if (!addr) continue;
        unsigned char m[ADDRINDEX_LEN];
        addrindex_member(key, ch, addr, m);
        addrindex_key_of(&ks, prefix, ADDRINDEX_TOMBSTONES, m);
        /* Its tombstone (addrindex.h), or one of layout 2 under the secret. */
        const char *keyed[] = {"SISMEMBER", ks.buf, (const char *)m};
        const char *old[] = {"SISMEMBER", kt.buf, it->tombstones[ch] ? it->tombstones[ch] : ""};
        for (int form = 0; form < 2 && it->status == STORE_IMPORT_UNKNOWN; form++) {
            if (!(r = cluster_cmd(cs, err, errlen, 3, form ? old : keyed,
                                  form ? NULL : (const size_t[]){9, ks.len, ml})))
                goto lost;
            if (r->type == REDIS_REPLY_ERROR) refuse(it, r, "; while reading the erased addresses");
            else if (r->type == REDIS_REPLY_INTEGER && r->integer == 1) it->tombstoned |= 1u << ch;
            freeReplyObject(r);
        }
    }
    if (it->status != STORE_IMPORT_UNKNOWN) goto out;
    const char *read[3 + STORE_SEALED_NFIELDS] = {"HMGET", kp.buf, "profile"};
    for (size_t f = 0; f < STORE_SEALED_NFIELDS; f++) read[3 + f] = store_sealed_field(f);
    if (!(r = cluster_cmd(cs, err, errlen, 3 + STORE_SEALED_NFIELDS, read, NULL))) goto lost;
    if (r->type == REDIS_REPLY_ERROR) refuse(it, r, "; while reading the stored profile");
    else import_drops(keys, key, it->p, r, drop);
    freeReplyObject(r);
    for (int ch = 0; ch < HERALD_CH_COUNT && it->status == STORE_IMPORT_UNKNOWN; ch++) {
        const char *addr = profile_address(it->p, ch);
        if (!addr) continue;
        unsigned char m[ADDRINDEX_LEN];
        addrindex_member(key, ch, addr, m);
        addrindex_key_of(&ks, prefix, ADDRINDEX_ADDR, m);
        const char *argv[] = {"HSET", ks.buf, (const char *)m, it->p->id};
        if (!(r = cluster_cmd(cs, err, errlen, 4, argv, (const size_t[]){4, ks.len, ml, strlen(it->p->id)})))
            goto lost;
        if (r->type == REDIS_REPLY_ERROR) refuse(it, r, "; while indexing the addresses");
        freeReplyObject(r);
    }
    if (it->status != STORE_IMPORT_UNKNOWN) goto out;
    char why[256];
    redisContext *c = rcluster_sync_ctx(cs, rcluster_slot(kp.buf, kp.len), why, sizeof(why));
    if (!c) {
        herald_seterr(err, errlen, "redis connection failed during the import: %s", why);
        goto lost;
    }
    int n = append_import(c, prefix, keys, key, it, drop, false);
    redisReply **replies = xcalloc((size_t)n, sizeof(*replies));
    int got = 0;
    while (got < n && (replies[got] = next_reply(c, err, errlen))) got++;
    if (got == n) {
        bool applied;
        const redisReply *bad = transaction_error(replies, n, &applied);
        if (!bad) it->status = STORE_IMPORT_STORED;
        else refuse(it, bad, applied ? "; the person's other writes were applied" : "");
    }
    for (int k = 0; k < got; k++) freeReplyObject(replies[k]);
    free(replies);
    if (got < n) goto lost;
    for (int ch = 0; ch < HERALD_CH_COUNT && it->status == STORE_IMPORT_STORED; ch++) {
        if (!drop[ch]) continue;
        addrindex_key_of(&ks, prefix, ADDRINDEX_ADDR, drop[ch]);
        const char *argv[] = {"HDEL", ks.buf, (const char *)drop[ch]};
        if (!(r = cluster_cmd(cs, err, errlen, 3, argv, (const size_t[]){4, ks.len, ml}))) goto lost;
        freeReplyObject(r); /* an entry left behind: readers check the person */
    }
    goto out;
lost:
    rc = -HERALD_EREDIS;
out:
    for (int ch = 0; ch < HERALD_CH_COUNT; ch++) free(drop[ch]);
    strbuf_free(&kp);
    strbuf_free(&kt);
    strbuf_free(&ks);
    return rc;
}

int store_sync_import_cluster(struct rcluster_sync *cs, const char *prefix, const struct seal_keys *keys,
                              const unsigned char key[ADDRINDEX_KEY_LEN], struct store_import *items, size_t n,
                              char *err, size_t errlen)
{
    int rc = 0;
    import_reset(items, n);
    for (size_t i = 0; i < n && rc == 0; i++) rc = import_one_cluster(cs, prefix, keys, key, &items[i], err, errlen);
    for (size_t i = 0; i < n; i++)
        if (items[i].status == STORE_IMPORT_UNKNOWN)
            herald_seterr(items[i].reason, sizeof(items[i].reason), "%s", rc < 0 ? err : "not sent");
    return rc;
}
