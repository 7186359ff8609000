/*
 * store.h - every Redis key herald uses, and the commands on them.
 *
 * Key layout (prefix "herald"; {id} is a Redis Cluster hash tag, so every
 * key of one person lives in one slot and Lua scripts on them stay valid):
 *   herald:jobs                 stream of campaign jobs (field `job`), group `herald`
 *   herald:dead                 stream of refused jobs (fields `error`, `entry`)
 *   herald:scheduled            zset: jobs held until not_before (score), member
 *                               "<entry id>\n<job JSON>"; moved back to the stream when due
 *   herald:audit                stream of decisions (campaign, recipient, channel,
 *                               outcome, reason, provider, provider_id, at)
 *   herald:r:{ID}               hash: `profile` (JSON), `consent:<channel>` (latest
 *                               ledger record, JSON)
 *   herald:r:{ID}:consent       list: the consent ledger, append-only (RPUSH)
 *   herald:r:{ID}:campaigns     hash: campaign id -> "<state> <entry> <run> <at>",
 *                               the once-only record (state pending|sent|failed|
 *                               suppressed|unknown|deferred)
 *   herald:r:{ID}:sends         zset: messages reserved/sent to the person, member
 *                               "<channel>|<topic>|<campaign>", score unix seconds;
 *                               trimmed to the longest cap window (caps, frequency)
 *   herald:suppress             set of "<channel>:<sha256 hex of the normalised address>"
 *   herald:campaign:ID          hash: progress (state, entry, total, sent,
 *                               suppressed:<reason>, failed:<reason>, unknown, ...)
 *
 * The daemon talks through rconn (async); heraldctl through a blocking
 * hiredis context. Both build their commands from the helpers here so the
 * two can never disagree on a key or a format. Never logs.
 */
#ifndef HERALD_STORE_H
#define HERALD_STORE_H

#include <hiredis/hiredis.h>

#include "herald.h"
#include "profile.h"

#define STORE_GROUP "herald"

/* Key builders: write "<prefix>:..." into sb (reset first). */
void store_key_jobs(struct strbuf *sb, const char *prefix);
void store_key_dead(struct strbuf *sb, const char *prefix);
void store_key_scheduled(struct strbuf *sb, const char *prefix);
void store_key_audit(struct strbuf *sb, const char *prefix);
void store_key_person(struct strbuf *sb, const char *prefix, const char *id);
void store_key_ledger(struct strbuf *sb, const char *prefix, const char *id);
void store_key_campaigns(struct strbuf *sb, const char *prefix, const char *id);
void store_key_sends(struct strbuf *sb, const char *prefix, const char *id);
void store_key_suppress(struct strbuf *sb, const char *prefix);
void store_key_campaign(struct strbuf *sb, const char *prefix, const char *campaign);

/* Suppression member for an address: "<channel>:<sha256 hex>" of the
 * normalised address (emails lower-cased and trimmed). Addresses are not
 * kept in clear on the list: it outlives erasure of the profile. */
void store_suppress_member(struct strbuf *sb, int channel, const char *address);

/* The once-only record of one campaign for one person. */
enum store_rec_state { REC_NONE = 0, REC_PENDING, REC_SENT, REC_FAILED, REC_SUPPRESSED, REC_UNKNOWN,
                        REC_DEFERRED };
struct store_record {
    enum store_rec_state state;
    char entry[64]; /* stream entry id of the job that wrote it */
    char run[32];   /* daemon run that wrote it */
    int64_t at;
};
void store_record_format(struct strbuf *sb, enum store_rec_state st, const char *entry,
                         const char *run, int64_t at);
int store_record_parse(const char *s, struct store_record *rec);
const char *store_rec_state_name(enum store_rec_state st);

/*
 * Lua: the atomic check-and-reserve of one message. In one step it checks
 * once-only (no record of the campaign that says pending, sent or unknown),
 * every applicable ops cap in order, and the person's own frequency limits,
 * against the messages in the person's sends history; if all pass it writes
 * the record and adds the message to the history. Both keys carry the
 * person's hash tag, so the script is valid on Redis Cluster and N daemons
 * racing on one person can never exceed a cap, not even by one.
 * KEYS: 1 campaigns hash, 2 sends zset.
 * ARGV: 1 campaign, 2 record, 3 now (s), 4 channel, 5 topic, 6 sends member,
 *       7 history to keep (s, 0: none), 8 ncaps, then per cap: name, channel
 *       (email|sms|any), limit, window (s), topics (",a,b," or "" for all),
 *       then nfreq, then per limit: channel (email|sms|any), limit, window (s).
 * Returns {"ok"}, {"duplicate", record}, {"cap", name} or {"user_frequency"}.
 */
extern const char store_lua_reserve[];

/* Lua: give back a reservation that no provider took (see store.c). */
extern const char store_lua_release[];

/* Lua: move due scheduled jobs back to the stream. KEYS[1] scheduled zset,
 * KEYS[2] jobs stream, ARGV[1] now (unix s), ARGV[2] max jobs. Each moved
 * entry gets fields `job` and `held_from` (the entry id it was held as). */
extern const char store_lua_release_due[];

/* Fills a person's profile and consent state from the HMGET reply of
 * (profile, consent:email, consent:sms). Returns 1 found, 0 no profile,
 * <0 when the stored profile is unreadable (err set). */
int store_person_from_reply(const redisReply *r, struct profile *p, char *err, size_t errlen);

/* Blocking helpers for heraldctl (and tests). Each returns 0 or <0 with err. */
int store_sync_import(redisContext *c, const char *prefix, const struct profile *p,
                      const struct consent_record *recs, size_t nrecs, char *err, size_t errlen);
int store_sync_suppress(redisContext *c, const char *prefix, int channel, const char *address,
                        char *err, size_t errlen);

#endif
