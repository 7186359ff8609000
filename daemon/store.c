/*
 * store.c - key names, record formats and the commands heraldctl runs.
 *
 * Pure helpers (keys, records, reply parsing) plus the blocking writes of
 * heraldctl. The daemon's asynchronous traffic is composed in queue.c with
 * these same helpers. Never logs: errors go to the caller's err buffer, and
 * never name an address.
 */
#include "store.h"

#include <ctype.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* "<prefix><head><arg><tail>": the id (if any) sits between fixed parts. */
static void key(struct strbuf *sb, const char *prefix, const char *head, const char *arg, const char *tail)
{
    strbuf_reset(sb);
    strbuf_adds(sb, prefix);
    strbuf_adds(sb, head);
    if (arg) strbuf_adds(sb, arg);
    if (tail) strbuf_adds(sb, tail);
}

void store_key_jobs(struct strbuf *sb, const char *prefix) { key(sb, prefix, ":jobs", NULL, NULL); }
void store_key_dead(struct strbuf *sb, const char *prefix) { key(sb, prefix, ":dead", NULL, NULL); }
void store_key_scheduled(struct strbuf *sb, const char *prefix) { key(sb, prefix, ":scheduled", NULL, NULL); }
void store_key_audit(struct strbuf *sb, const char *prefix) { key(sb, prefix, ":audit", NULL, NULL); }
void store_key_person(struct strbuf *sb, const char *prefix, const char *id) { key(sb, prefix, ":r:{", id, "}"); }
void store_key_ledger(struct strbuf *sb, const char *prefix, const char *id) { key(sb, prefix, ":r:{", id, "}:consent"); }
void store_key_campaigns(struct strbuf *sb, const char *prefix, const char *id) { key(sb, prefix, ":r:{", id, "}:campaigns"); }
void store_key_sends(struct strbuf *sb, const char *prefix, const char *id) { key(sb, prefix, ":r:{", id, "}:sends"); }
void store_key_suppress(struct strbuf *sb, const char *prefix) { key(sb, prefix, ":suppress", NULL, NULL); }
void store_key_campaign(struct strbuf *sb, const char *prefix, const char *campaign) { key(sb, prefix, ":campaign:", campaign, NULL); }

void store_suppress_member(struct strbuf *sb, int channel, const char *address)
{
    char norm[512];
    size_t n = 0;
    while (isspace((unsigned char)*address)) address++;
    for (const char *p = address; *p && n + 1 < sizeof(norm); p++)
        norm[n++] = channel == HERALD_CH_EMAIL ? (char)tolower((unsigned char)*p) : *p;
    while (n && isspace((unsigned char)norm[n - 1])) n--;
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    EVP_Digest(norm, n, md, &mdlen, EVP_sha256(), NULL);
    strbuf_reset(sb);
    strbuf_adds(sb, herald_channel_name(channel));
    strbuf_adds(sb, ":");
    for (unsigned int i = 0; i < mdlen; i++) strbuf_addf(sb, "%02x", md[i]);
}

static const char *rec_names[] = {"", "pending", "sent", "failed", "suppressed", "unknown", "deferred"};

const char *store_rec_state_name(enum store_rec_state st)
{
    return st <= REC_DEFERRED ? rec_names[st] : "";
}

void store_record_format(struct strbuf *sb, enum store_rec_state st, const char *entry,
                         const char *run, int64_t at)
{
    strbuf_reset(sb);
    strbuf_addf(sb, "%s %s %s %lld", store_rec_state_name(st), entry, run, (long long)at);
}

int store_record_parse(const char *s, struct store_record *rec)
{
    char st[16];
    long long at;
    memset(rec, 0, sizeof(*rec));
    if (sscanf(s, "%15s %63s %31s %lld", st, rec->entry, rec->run, &at) != 4) return -HERALD_EINVAL;
    for (int i = REC_PENDING; i <= REC_DEFERRED; i++)
        if (strcmp(st, rec_names[i]) == 0) rec->state = (enum store_rec_state)i;
    if (rec->state == REC_NONE) return -HERALD_EINVAL;
    rec->at = at;
    return 0;
}

const char store_lua_reserve[] =
    "local cur = redis.call('HGET', KEYS[1], ARGV[1])\n"
    "if cur then\n"
    "  local st = string.match(cur, '^(%a+)')\n"
    "  if st == 'pending' or st == 'sent' or st == 'unknown' then return {'duplicate', cur} end\n"
    "end\n"
    "local now = tonumber(ARGV[3])\n"
    "local ch, topic, keep = ARGV[4], ARGV[5], tonumber(ARGV[7])\n"
    "local hist = {}\n"
    "if keep > 0 then\n"
    "  local raw = redis.call('ZRANGEBYSCORE', KEYS[2], '(' .. (now - keep), '+inf', 'WITHSCORES')\n"
    "  for j = 1, #raw, 2 do\n"
    "    local hc, ht = string.match(raw[j], '^([^|]*)|([^|]*)|')\n"
    "    hist[#hist + 1] = {tonumber(raw[j + 1]), hc, ht}\n"
    "  end\n"
    "end\n"
    "local function count(cch, win, topics)\n"
    "  local n = 0\n"
    "  for _, h in ipairs(hist) do\n"
    "    if h[1] > now - win and (cch == 'any' or h[2] == cch) and\n"
    "       (topics == '' or string.find(topics, ',' .. h[3] .. ',', 1, true)) then n = n + 1 end\n"
    "  end\n"
    "  return n\n"
    "end\n"
    "local i = 9\n"
    "for _ = 1, tonumber(ARGV[8]) do\n"
    "  local name, cch, lim, win, topics = ARGV[i], ARGV[i + 1], tonumber(ARGV[i + 2]), tonumber(ARGV[i + 3]), ARGV[i + 4]\n"
    "  i = i + 5\n"
    "  if (cch == 'any' or cch == ch) and (topics == '' or string.find(topics, ',' .. topic .. ',', 1, true)) and\n"
    "     count(cch, win, topics) >= lim then return {'cap', name} end\n"
    "end\n"
    "local nf = tonumber(ARGV[i])\n"
    "i = i + 1\n"
    "for _ = 1, nf do\n"
    "  local cch, lim, win = ARGV[i], tonumber(ARGV[i + 1]), tonumber(ARGV[i + 2])\n"
    "  i = i + 3\n"
    "  if (cch == 'any' or cch == ch) and count(cch, win, '') >= lim then return {'user_frequency'} end\n"
    "end\n"
    "redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])\n"
    "if keep > 0 then\n"
    "  redis.call('ZADD', KEYS[2], now, ARGV[6])\n"
    "  redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now - keep)\n"
    "  redis.call('EXPIRE', KEYS[2], keep + 60)\n"
    "end\n"
    "return {'ok'}\n";

/* KEYS: 1 campaigns hash, 2 sends zset. ARGV: 1 campaign, 2 our record,
 * 3 sends member. Gives a reservation back if it is still ours. */
const char store_lua_release[] =
    "if redis.call('HGET', KEYS[1], ARGV[1]) == ARGV[2] then\n"
    "  redis.call('HDEL', KEYS[1], ARGV[1])\n"
    "end\n"
    "return redis.call('ZREM', KEYS[2], ARGV[3])\n";

const char store_lua_release_due[] =
    "local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[2]))\n"
    "for _, m in ipairs(due) do\n"
    "  local nl = string.find(m, '\\n', 1, true)\n"
    "  if nl then\n"
    "    redis.call('XADD', KEYS[2], '*', 'job', string.sub(m, nl + 1), 'held_from', string.sub(m, 1, nl - 1))\n"
    "  end\n"
    "  redis.call('ZREM', KEYS[1], m)\n"
    "end\n"
    "return #due\n";

int store_person_from_reply(const redisReply *r, struct profile *p, char *err, size_t errlen)
{
    if (!r || r->type != REDIS_REPLY_ARRAY || r->elements != 1 + HERALD_CH_COUNT) {
        herald_seterr(err, errlen, "unexpected reply to the profile lookup");
        return -HERALD_EREDIS;
    }
    if (r->element[0]->type != REDIS_REPLY_STRING) return 0;
    int rc = profile_parse(r->element[0]->str, r->element[0]->len, p, err, errlen);
    if (rc < 0) return rc;
    for (int ch = 0; ch < HERALD_CH_COUNT; ch++) {
        const redisReply *e = r->element[1 + ch];
        if (e->type != REDIS_REPLY_STRING) continue;
        struct consent_record rec;
        char cerr[128];
        if (consent_record_parse(e->str, e->len, &rec, cerr, sizeof(cerr)) < 0) {
            /* An unreadable consent record is no consent: never guess yes. */
            continue;
        }
        p->consent[ch].known = true;
        p->consent[ch].granted = rec.granted;
        p->consent[ch].at = rec.at;
        consent_record_free(&rec);
    }
    return 1;
}

static int expect_ok(redisContext *c, char *err, size_t errlen)
{
    redisReply *r = NULL;
    if (redisGetReply(c, (void **)&r) != REDIS_OK) {
        herald_seterr(err, errlen, "redis: %s", c->errstr);
        return -HERALD_EREDIS;
    }
    int rc = 0;
    if (r->type == REDIS_REPLY_ERROR) {
        herald_seterr(err, errlen, "redis: %s", r->str);
        rc = -HERALD_EREDIS;
    }
    freeReplyObject(r);
    return rc;
}

int store_sync_import(redisContext *c, const char *prefix, const struct profile *p,
                      const struct consent_record *recs, size_t nrecs, char *err, size_t errlen)
{
    struct strbuf kp, kl;
    strbuf_init(&kp);
    strbuf_init(&kl);
    store_key_person(&kp, prefix, p->id);
    store_key_ledger(&kl, prefix, p->id);
    char *json = profile_to_json(p);
    /* One transaction: the profile and its consent records land together. */
    int n = 0;
    redisAppendCommand(c, "MULTI");
    n++;
    redisAppendCommand(c, "HSET %s profile %s", kp.buf, json);
    n++;
    for (size_t i = 0; i < nrecs; i++) {
        char *rj = consent_record_to_json(&recs[i]);
        char field[32];
        snprintf(field, sizeof(field), "consent:%s", herald_channel_name(recs[i].channel));
        redisAppendCommand(c, "RPUSH %s %s", kl.buf, rj);
        redisAppendCommand(c, "HSET %s %s %s", kp.buf, field, rj);
        n += 2;
        free(rj);
    }
    redisAppendCommand(c, "EXEC");
    n++;
    int rc = 0;
    for (int i = 0; i < n; i++) {
        int r = expect_ok(c, err, errlen);
        if (r < 0 && rc == 0) rc = r;
    }
    free(json);
    strbuf_free(&kp);
    strbuf_free(&kl);
    return rc;
}

int store_sync_suppress(redisContext *c, const char *prefix, int channel, const char *address,
                        char *err, size_t errlen)
{
    struct strbuf k, m;
    strbuf_init(&k);
    strbuf_init(&m);
    store_key_suppress(&k, prefix);
    store_suppress_member(&m, channel, address);
    redisAppendCommand(c, "SADD %s %s", k.buf, m.buf);
    int rc = expect_ok(c, err, errlen);
    strbuf_free(&k);
    strbuf_free(&m);
    return rc;
}
