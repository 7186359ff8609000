/*
 * store.h - every Redis key herald uses, and the commands on them.
 *
 * Key layout (prefix "herald"; {id} is a Redis Cluster hash tag, so every
 * key of one person lives in one slot and Lua scripts on them stay valid):
 *   herald:jobs                 stream of campaign jobs (field `job`), group `herald`
 *   herald:dead                 stream of refused jobs (fields `error`, `entry`), addresses
 *                               redacted; trimmed after [retention] dead_letters
 *   herald:scheduled            zset: jobs held until not_before (score), member
 *                               "<entry id>\n<job JSON>"; moved back to the stream when due
 *   herald:audit                stream of decisions (campaign, recipient, channel,
 *                               outcome, reason, provider, provider_id, at)
 *   herald:r:{ID}               hash: `profile` (JSON), `~<channel>` (latest
 *                               ledger record), `~1`, `~2`, ... the consent ledger,
 *                               append-only (layout 4: lua/people_consent.lua;
 *                               layout 3 kept it in the list herald:r:{ID}:consent,
 *                               which `heraldctl migrate` moves here), `rev`, and per campaign
 *                               `c:<campaign id>` -> "<state> <entry> <run> <at>",
 *                               the once-only record (state r|p|s|f|x|u|d: reserved,
 *                               pending, sent, failed, suppressed, unknown, deferred;
 *                               store_record_format): one key per
 *                               person, so that deciding, reserving and closing a
 *                               message each read or write one hash (layout 2;
 *                               layout 1 kept the records in herald:r:{ID}:campaigns,
 *                               which `heraldctl migrate` moves here)
 *   herald:r:{ID}:sends         zset: messages reserved/sent to the person, member
 *                               "<channel>|<topic>|<campaign>", score unix seconds;
 *                               trimmed to the longest cap window (caps, frequency)
 *   herald:r:{ID}:history       list: the person's last decisions, newest first
 *                               (store_history_format), at most [retention] history;
 *                               written with each audit record
 *   herald:r:{ID} field `rev`   counter bumped by every change of the person's data
 *                               (API, page, webhooks); the reservation checks it, so a
 *                               change made after the daemon read the person applies
 *   herald:r:{ID} field `act`   unix s (Redis's clock) of the last change of the person
 *                               ([retention] inactive_people, inactive.h)
 *   herald:suppress:{i<x>}      16 sets of index members (addrindex.h: 16 bytes of
 *                               HMAC-SHA256 under the index key, by the first 4 bits)
 *                               of suppressed addresses (what the send path reads:
 *                               one SMISMEMBER per shard a batch touches)
 *   herald:suppress:info:{i<x>} hash: suppress member -> "<since unix s> <by> <reason>"
 *                               (store_suppress_info_format), written when the member
 *                               joins the set, dropped when it leaves; members added
 *                               before it existed have none (since/reason unknown)
 *   herald:admin                stream of an operator's or a provider's changes to
 *                               the suppression list (action suppress|unsuppress,
 *                               channel, address_sha256 (the member's hex), by,
 *                               reason, at), and of erasures by retention (action
 *                               erase, recipient, by, reason, at); trimmed to about
 *                               [redis] audit_maxlen; never an address
 *   herald:addr:{i<x>}:<xyz>    hash: index member -> person id, so an inbound SMS or a
 *                               provider event finds its person (checked against them);
 *                               4096 buckets by the member's first 12 bits (layout 4;
 *                               addrindex.h)
 *   herald:tombstones:{i<x>}    set of the index members of erased addresses
 *   herald:tombstones           layout 2's tombstones, "<channel>:<HMAC-SHA256 hex>"
 *                               under [admin] tombstone_secret: read, never written
 *   herald:campaign:ID          hash: progress (state, entry, total, sent,
 *                               suppressed:<reason>, failed:<reason>, unknown, ...)
 *   herald:campaign:ID:norecord set of "<entry> <recipient id>" for the recipients of
 *                               campaign ID (run from stream entry <entry>) whose
 *                               outcome has no once-only record (no profile, no
 *                               valid id, erased in flight): their audit record
 *                               is written once per run, however often the run
 *                               is retried or resumed
 *   herald:webhook:twilio:SID   string "1", expires after 7 days: Twilio's inbound
 *                               MessageSid already applied (SET NX EX; webhooks.c)
 *   herald:retention            zset: finished campaigns by the time their once-only
 *                               records go (retention.h); herald:retention:lock, :cursor,
 *                               :campaigns: the sweep under way
 *   herald:layout               string: the version of this key layout ("2"), set by the
 *                               first daemon to reach an empty Redis; a daemon refuses
 *                               to run jobs on another (heraldctl migrate)
 *   herald:marker               string: set by the first daemon to reach this Redis; a
 *                               daemon that finds it gone after seeing it knows that
 *                               Redis came back empty (no persistence)
 *   herald:webhook:counts       hash: what the provider webhooks changed, counted once
 *                               per event (sendgrid:suppressed, twilio:stop|start|help)
 *   herald:limit:NAME           hash: provider NAME's limits shared by every daemon
 *                               (`shared = yes`; lua/limit.lua, limit.c): `tat` the rate
 *                               bucket's theoretical arrival time (GCRA, ms on Redis's
 *                               clock), `l:<run>` -> "<leases held> <expires ms> <wanting>"
 *                               per daemon run; a lease not renewed expires after 5 s
 *   herald:campaigns            zset: campaign id -> first enqueued (unix ms): the
 *                               campaigns index (store_campaign.h)
 *   herald:campaign:ID:runs     hash: run number -> a finished run's campaign hash (JSON)
 *   herald:campaign:ID:ids      list: the latest run's inline recipient ids
 *   herald:idempotency:SHA      string: POST /v1/campaigns's answer to one Idempotency-Key
 * The campaign hash holds the latest run: `run`, `enqueued_at`, `finished_at`
 * (once its finished event is written), `recipients_key` (when it has one).
 *
 * The daemon talks through rconn (async); heraldctl through a blocking
 * hiredis context. Both build their commands from the helpers here so the
 * two can never disagree on a key or a format. Never logs.
 */
#ifndef HERALD_STORE_H
#define HERALD_STORE_H

#include <hiredis/hiredis.h>
#include <jansson.h>

#include "addrindex.h"
#include "channel.h"
#include "herald.h"
#include "profile.h"
#include "store_cmd.h"
#include "store_person.h"

#define STORE_GROUP "herald"

/* On a cluster ([redis] cluster) every key but a person's (herald:r:{ID}
 * and its :sends, :history) and the pid keys is written
 * "{<prefix>}:...": the control plane's keys share one slot, so each
 * control script's keys are on one node. Set once at start, before any key
 * is built; false (the default) changes no key name. */
void store_keys_cluster(bool on);
bool store_keys_clustered(void);
/* Key builders: write "<prefix>:..." into sb (reset first). The common
 * form: "<prefix><head><arg><tail>", the id (if any, arg) between fixed
 * parts (head ":campaign:", tail ":runs"); NULL parts are left out. */
void store_key_build(struct strbuf *sb, const char *prefix, const char *head, const char *arg, const char *tail);
void store_key_jobs(struct strbuf *sb, const char *prefix);
void store_key_dead(struct strbuf *sb, const char *prefix);
void store_key_scheduled(struct strbuf *sb, const char *prefix);
void store_key_audit(struct strbuf *sb, const char *prefix);
/* A sent message of a `feedback = on` provider, by its provider id:
 * "<prefix>:pid:<provider>:<provider id>" -> "campaign recipient channel"
 * (lua/finish.lua writes it, the webhooks read it). */
void store_key_pid(struct strbuf *sb, const char *prefix, const char *provider, const char *provider_id);
/* Campaign events: started, paused, resumed, cancelled, finished, failed. */
void store_key_events(struct strbuf *sb, const char *prefix);
void store_key_person(struct strbuf *sb, const char *prefix, const char *id);
/* The person-hash field of a campaign's once-only record: "c:<campaign>". */
void store_record_field(struct strbuf *sb, const char *campaign);
#define STORE_RECORD_FIELD_PREFIX "c:"
/* Campaigns whose once-only records go at their score (unix s), and the
 * sweep that removes them (retention.c): its lock, SCAN cursor and the
 * campaigns it sweeps. */
void store_key_retention(struct strbuf *sb, const char *prefix);
void store_key_retention_sweep(struct strbuf *sb, const char *prefix, const char *part);
/* Appends s to out as a SCAN MATCH pattern that matches it literally. */
void store_glob_escape(struct strbuf *out, const char *s);
/* The layout version key, and the version this build reads and writes. */
void store_key_layout(struct strbuf *sb, const char *prefix);
#define STORE_LAYOUT "5"
/* A run's handoffs on one Redis (layout 5, lua/finish.lua): a bitmap
 * "<prefix>:handed:<run>" whose bit <seq> is set once the reservation of
 * that sequence number (the last word of its record) is handed to a
 * provider; and the reservations of that run whose person was erased
 * before their handoff, "<prefix>:erased:<run>", a set of sequence
 * numbers (lua/people_erase.lua). Both go when the run finishes its job
 * (lua/job_finished.lua); a log a run left behind (a crash) is kept
 * STORE_HANDED_KEEP_S, or until its campaign's records go when that is
 * later (store_job_records_end), an erased set [retention]
 * campaign_records, a week at least. */
void store_key_handed(struct strbuf *sb, const char *prefix, const char *run);
void store_key_erased(struct strbuf *sb, const char *prefix, const char *run);
#define STORE_HANDED_SEQ_MAX 4294967295ULL /* a bit offset Redis takes (2^32 - 1) */
#define STORE_HANDED_KEEP_S (366 * 86400)    /* a year: whenever its job is taken over */
void store_key_sends(struct strbuf *sb, const char *prefix, const char *id);
void store_key_history(struct strbuf *sb, const char *prefix, const char *id);
void store_key_admin(struct strbuf *sb, const char *prefix);
/* Layout 2's single keys of the address indexes, which heraldctl migrate
 * re-keys (layout 3's shards: addrindex_key), and layout 2's tombstones,
 * which the writes of a person still read. */
void store_key_suppress(struct strbuf *sb, const char *prefix);
void store_key_suppress_info(struct strbuf *sb, const char *prefix);
void store_key_addr(struct strbuf *sb, const char *prefix);
void store_key_tombstones(struct strbuf *sb, const char *prefix);
void store_key_marker(struct strbuf *sb, const char *prefix);
/* A provider's shared limits: "<prefix>:limit:<provider>" (lua/limit.lua). */
void store_key_limit(struct strbuf *sb, const char *prefix, const char *provider);
/* A counter heraldctl reload increments; every daemon polls it each second
 * and reloads its configuration when it changed (docs/operations.md). */
void store_key_reload(struct strbuf *sb, const char *prefix);
/* A consumer name's lock: "<host> <pid> <run>" of the daemon holding it (lua/consumer_lock.lua). */
void store_key_consumer(struct strbuf *sb, const char *prefix, const char *consumer);
void store_key_campaign(struct strbuf *sb, const char *prefix, const char *campaign);
/* A recipients_key job being cut into slices (lua/job_cut.lua):
 * <prefix>:cut:{<entry>}<tail>; tail "}" the cut's state, "}:seen" the ids
 * met, "}:slice:" the slices' lists (followed by their number). On a
 * cluster only "}" is used, the count of slices published; the rest carry
 * the source's slot tag (store_job_cut.c). */
void store_key_cut(struct strbuf *sb, const char *prefix, const char *entry, const char *tail);
void store_key_campaign_norecord(struct strbuf *sb, const char *prefix, const char *campaign);
/* The jobs of a paused campaign, parked until resume or cancel: stream
 * entry -> "<held_from>\n<job>" (lua/campaign_control.lua). */
void store_key_campaign_paused(struct strbuf *sb, const char *prefix, const char *campaign);

/* Per-node keys of a cluster: "<prefix>:n:{<tag>}<tail>", tag a hash tag
 * whose slot one master serves (store_cmds_node_tag), written by the
 * per-message scripts that run once per node per batch (docs/architecture.md
 * "On a cluster"): the audit stream (":audit"), a campaign run's counters
 * (":campaign:<ID>:<run>"), its norecord set (":campaign:<ID>:norecord")
 * and a slot's fence (":fence": stream entry -> the owning run's epoch).
 * Readers find them by the tags named in store_key_audit_nodes and
 * store_key_campaign_nodes. */
void store_key_node(struct strbuf *sb, const char *prefix, const char *tag, const char *head, const char *arg,
                    const char *tail);
/* The fencing epoch counter of a cluster (lua/fence_claim.lua). */
void store_key_epoch(struct strbuf *sb, const char *prefix);
/* The tags of the nodes that hold per-node keys: of every audit stream,
 * and of a campaign run's counters ("<prefix>:campaign:<ID>:nodes:<run>";
 * run NULL: without the run, which lua/fence_claim.lua appends). */
void store_key_audit_nodes(struct strbuf *sb, const char *prefix);
void store_key_campaign_nodes(struct strbuf *sb, const char *prefix, const char *campaign, const char *run);

#define STORE_HISTORY_MAX 100

/* A person's history entry, compact: "2|<at, unix s>|<campaign>|<codes>|
 * <provider>", codes the channel's number ('-' none), the outcome as its record
 * state's letter (store_rec_state_code) and the reason as store_reason_code
 * ("0xnc": email, suppressed, no_consent), so that with a campaign id of up
 * to 32 characters the entry stays within the 64 bytes of a listpack value.
 * The topic and the campaign's display name are the campaign's, kept once in
 * its hash (job_info_json) and read with the history (job_info_apply).
 * Entries written before, "1|<at>|<campaign>|<channel>|<topic>|<outcome>|
 * <reason>|<provider>[|<campaign_name>]", are read as well. An entry whose
 * values hold a '|' (a provider's name, say) is written as the JSON object
 * instead, as layout 1 wrote them all. */
void store_history_format(struct strbuf *sb, const char *campaign, const char *channel, const char *outcome,
                          const char *reason, const char *provider, int64_t at);
/* An entry of either form as the API shows it: {"campaign", "channel",
 * "topic" (not in the entries of the codes), "outcome", "reason",
 * "provider", "at" (RFC 3339), and "campaign_name" when it has one}; a new
 * reference, or NULL when it is neither. */
json_t *store_history_json(const char *s, size_t len);

/* A person's history is a ring of [retention] history fields of the person
 * hash: an entry in the field "h<k>" (STORE_HISTORY_FIELD_PREFIX), the next
 * slot k in the field "hn" (STORE_HISTORY_CURSOR); lua/reserve.lua takes a
 * reserved message's slot, lua/finish.lua any other's and writes the
 * entries. A person stored before the ring may still have the list
 * herald:r:{ID}:history, newest first: it is read after the ring, never
 * written, and dropped when the ring turns.
 * store_history_read gives both as the API shows them: a JSON array of at
 * most max entries (store_history_json), newest first. hash is an HGETALL
 * reply of the person hash (field, value, ...), list an LRANGE reply of the
 * list (either may be NULL or of another type: none). A slot taken but
 * never written (a reservation given back) is skipped. */
#define STORE_HISTORY_FIELD_PREFIX "h"
#define STORE_HISTORY_CURSOR "hn"
json_t *store_history_read(const redisReply *hash, const redisReply *list, size_t max);

/* The layout 2 member of an address: "<channel>:<sha256 hex>" of the
 * address as its channel normalises it (channel.h; emails lower-cased and
 * trimmed): what layout 3's keyed member is computed from
 * (addrindex_member, addrindex_plain). Never stored under layout 3. */
void store_suppress_member(struct strbuf *sb, int channel, const char *address);

/* The once-only record of one campaign for one person. `reserved`: checked
 * and reserved, not yet handed to a provider (a run that dies leaves it to
 * the next run, which sends it); `pending`: being handed to a provider
 * (after a crash it becomes `unknown`, never sent again). */
enum store_rec_state { REC_NONE = 0, REC_PENDING, REC_SENT, REC_FAILED, REC_SUPPRESSED, REC_UNKNOWN,
                        REC_DEFERRED, REC_RESERVED };
struct store_record {
    enum store_rec_state state;
    char entry[64]; /* stream entry id of the job that wrote it */
    char run[32];   /* daemon run that wrote it */
    int64_t at;
    /* An outcome's record also says on which channel and why:
     * "<channel>/<reason>" as its fifth word ("" when not said: a
     * reservation, a handoff, or a record written before this word). */
    char channel[16];
    char reason[72];
    /* A reservation's sequence number in its run (its last word), 0 when
     * the record has none. */
    unsigned long long seq;
};
/* "<state> <entry> <run> <at>"; with the outcome's channel or reason
 * (either may be "" or NULL), " <channel>/<reason>" after it. A
 * reservation adds " <seq>" itself (all digits, so a reader tells it from
 * the outcome word, which holds a '/'). The state is written as its
 * one-letter code (p s f x u d r, store_rec_state_code), the reason as
 * store_reason_code: with a campaign id of up to 32 characters the field
 * and its value stay within the 64 bytes of a listpack entry. */
void store_record_format(struct strbuf *sb, enum store_rec_state st, const char *entry,
                         const char *run, int64_t at);
void store_record_format_outcome(struct strbuf *sb, enum store_rec_state st, const char *entry, const char *run,
                                 int64_t at, const char *channel, const char *reason);
/* Reads every form above (and the records written before the outcome
 * word). 0, or -HERALD_EINVAL when s is no record. */
int store_record_parse(const char *s, struct store_record *rec);
const char *store_rec_state_name(enum store_rec_state st);
const char *store_rec_state_code(enum store_rec_state st);
/* A reason as records and history entries store it: two letters for each
 * reason herald names (herald_reason_name), any other ("cap:<name>") as
 * it is; store_reason_name reads a code back (NULL: not one). */
const char *store_reason_code(const char *reason);
const char *store_reason_name(const char *code, size_t len);
/* True when the record says the campaign reached the person (reserved,
 * pending, sent, unknown): once-only then suppresses it as a duplicate. */
bool store_record_reached(const struct store_record *rec);
/* True when the record is a reservation whose handoff, if its run made it,
 * is a bit of the run's handed log (store_key_handed): reserved, with a
 * number a bit offset can be. Such a record reads as pending once the bit
 * is set (the daemon's lookup, heraldctl explain). */
bool store_record_in_handed_log(const struct store_record *rec);

/*
 * Lua scripts: daemon/lua/<name>.lua, embedded at build time as
 * store_lua_<name> (cmake/embed_lua.cmake); each file's header says its
 * KEYS, ARGV and reply. The daemon sends them with EVALSHA
 * (store_script_sha) and falls back to EVAL when Redis answers NOSCRIPT,
 * so their bodies cross the wire once per server, not once per message.
 * Each one works on a whole batch of recipients: one command per batch
 * instead of several per recipient is what lets a campaign go as fast as
 * its providers (docs/architecture.md, "Throughput"). Every script that
 * writes for a job run starts with the fence (lua/fence.lua): it writes
 * nothing, and answers 'lost', once the run's consumer no longer owns the
 * job's stream entry.
 */
extern const char store_lua_reserve[];   /* once-only, caps, frequency: reserve a batch */
extern const char store_lua_feedback_status[]; /* a provider's delivery event, once: audit and counter */
extern const char store_lua_finish[];    /* records, history, audit, progress; reserved -> pending handoffs */
extern const char store_lua_release[];   /* give back a reservation no provider took */
extern const char store_lua_release_due[];
extern const char store_lua_campaign_control[];
extern const char store_lua_consumer_lock[];
extern const char store_lua_job_finished[];
extern const char store_lua_job_started[];  /* a run's state "running", and the campaign's started event */ /* a run's state, ack, and the campaign's finished event */ /* one live daemon per consumer name */ /* pause, resume, cancel (heraldctl, the API) */ /* due scheduled jobs back to the stream */
extern const char store_lua_job_cut[];    /* one step of cutting a recipients_key job into slices */
extern const char store_lua_job_cut_publish[]; /* the cut's slices made jobs of the stream */
extern const char store_lua_job_slice[];  /* a job cut into slices, any daemon claims each; acked */
extern const char store_lua_heartbeat[]; /* keep a running entry ours; 'lost' when not */
extern const char store_lua_marker[];   /* the marker key and the layout version, at each connect */
extern const char store_lua_migrate[];  /* layout 1 -> 2: one person's records into their hash */
extern const char store_lua_migrate_ledger[]; /* layout 3 -> 4: one person's ledger into their hash */
extern const char store_lua_retention_begin[]; /* retention.c: a sweep's lock and campaigns */
extern const char store_lua_retention_step[];  /* its cursor saved, its lock renewed */
extern const char store_lua_retention_end[];   /* its campaigns marked expired */
extern const char store_lua_stream_trim[]; /* a stream's entries older than an age, none a group still needs */
extern const char store_lua_limit[];  /* a provider's shared rate tokens and concurrency leases */
extern const char store_lua_dead_letter[]; /* a refused entry, every field kept, addresses redacted, to herald:dead; acked, deleted */
extern const char store_lua_fence_claim[]; /* a cluster: a run's fencing epoch while it owns its entry */
extern const char store_lua_fence_raise[]; /* a cluster: the epoch raised on (or dropped from) one node's slots */
/* A campaign's runs, index and outcomes (store_campaign.h). */
extern const char store_lua_campaign_enqueue[];  /* check and register a run; XADD the job (API, heraldctl) */
extern const char store_lua_campaign_get[];      /* the latest run and the earlier ones (reads) */
extern const char store_lua_campaign_list[];     /* a page of the campaigns index (reads) */
extern const char store_lua_campaign_outcomes[]; /* a page of a campaign's recipients and their records (reads) */
/* The campaign events POSTed to [events] url (store_events.h). */
extern const char store_lua_events_take[];  /* the next event for a consumer of herald-events */
extern const char store_lua_events_claim[]; /* still ours? then claimed again */
/* A person's data as the API, the pages and the webhooks change it (people.c). */
extern const char store_lua_people_get[];      /* the subject-access read (no writes) */
extern const char store_lua_people_write[];    /* profile CAS on rev, herald:addr in step */
extern const char store_lua_people_consent[];  /* ledger append [at most once per event] */
extern const char store_lua_people_erase[];    /* erasure CAS on rev, tombstones */
extern const char store_lua_people_suppress[]; /* suppression list on one shard (addrindex.h) */
extern const char store_lua_people_touch[];    /* a stored person's rev moves */
extern const char store_lua_index_claim[];     /* an address index entry names a person first */
extern const char store_lua_index_release[];   /* ... and goes (or is restored) last */
extern const char store_lua_inactive_check[];  /* [retention] inactive_people: erase this one? */
extern const char store_lua_rotate_person[];   /* heraldctl rotate-key: one person sealed again, CAS on rev */
extern const char store_lua_keys_lease[];      /* a sealing lease taken or renewed, unless its key is retired */
extern const char store_lua_keys_retire[];     /* a key retired, unless a live sealing lease names it */

/* The SHA1 hex of a script, as EVALSHA wants it. */
void store_script_sha(const char *script, char sha[41]);

/*
 * What the lookup (one HMGET per person, store_job_lookup) reads of each
 * person, in the order of its reply: the fields of herald:r:{ID}
 * (store_lookup_field(0 .. STORE_LOOKUP_NFIELDS - 1): "profile", each
 * channel's consent_field in descriptor order, "rev", then the sealed
 * contact data, store_sealed_field(0 ..) of store_person.h), then the
 * campaign's once-only record (the field "c:<campaign>"):
 * STORE_LOOKUP_STRIDE values per recipient; the indexes below are into them.
 */
#define STORE_LOOKUP_PROFILE 0
#define STORE_LOOKUP_CONSENT 1 /* + channel */
#define STORE_LOOKUP_REV (STORE_LOOKUP_CONSENT + HERALD_CH_COUNT)
#define STORE_LOOKUP_SEALED (STORE_LOOKUP_REV + 1) /* + store_sealed_field index */
#define STORE_LOOKUP_NFIELDS (STORE_LOOKUP_SEALED + STORE_SEALED_NFIELDS)
#define STORE_LOOKUP_RECORD STORE_LOOKUP_NFIELDS
#define STORE_LOOKUP_STRIDE (STORE_LOOKUP_RECORD + 1)
/* Field i of the person hash lookup reads (static string), NULL past the last. */
const char *store_lookup_field(size_t i);

/* Fills person id's profile and consent state from one recipient's values
 * of the lookup's reply (at least STORE_LOOKUP_NFIELDS of them) through
 * store_person_read (store_person.h): the address checks' flags and
 * members, the envelope left closed in *envelope when "#" is stored, else
 * opened with keys (NULL: none) and the members computed with index_key;
 * lazy: not even then for a person without consent on any channel (the
 * send path, where no decision needs their contact data). Returns 1
 * found, 0 no profile, <0 when the stored profile is unreadable (err set);
 * 1 with p->undecryptable and err set when sealed data does not open. */
int store_person_from_fields(const struct seal_keys *keys, const unsigned char index_key[ADDRINDEX_KEY_LEN],
                             const char *id, const redisReply *const *el, bool lazy, struct profile *p,
                             struct strbuf *envelope, char *err, size_t errlen);

/* Blocking helpers for heraldctl (and tests). Each returns 0 or <0 with err.
 * Their errors are classified as the daemon's (store_error_classify), so an
 * operator reads the same labels as /healthz shows, with what to do:
 * "redis refused the <what>: <label> (<advice>)". Never Redis's own words
 * (they may quote an argument: an address). */

/* What an operator does about an error of class e, e.g. "retry once memory
 * is freed" for oom. */
const char *store_error_advice(enum store_error e);
/* err = "redis refused the <what>: <label> (<advice>)" for r an error reply
 * (or a reply of another type than expected), or, with r NULL, "redis
 * connection failed during the <what>: <c->errstr> (<advice>)". Returns the
 * class. */
enum store_error store_sync_error(char *err, size_t errlen, const char *what, const redisContext *c,
                                  const redisReply *r);
int store_sync_import(redisContext *c, const char *prefix, const unsigned char key[ADDRINDEX_KEY_LEN],
                      const struct profile *p, const struct consent_record *recs, size_t nrecs, char *err,
                      size_t errlen);
/* Suppresses address (by "heraldctl", with reason, audited in herald:admin
 * trimmed to admin_maxlen), as people_suppress does. c: the control
 * plane's context; cs: a cluster's (NULL on one Redis), through which the
 * suppression goes to its shard's master and the owner's rev to theirs. */
struct rcluster_sync;
int store_sync_suppress(redisContext *c, struct rcluster_sync *cs, const char *prefix,
                        const unsigned char key[ADDRINDEX_KEY_LEN], int channel, const char *address,
                        const char *reason, long long admin_maxlen, char *err, size_t errlen);

/* Why an address is suppressed: the value of herald:suppress:info,
 * "<since> <by> <reason>" (since: unix seconds; by: one word, who did it:
 * api, heraldctl, webhook; reason: the rest, up to
 * HERALD_CONSENT_SOURCE_MAX bytes, may be empty). */
struct store_suppression {
    int64_t since;
    char by[16];
    char reason[HERALD_CONSENT_SOURCE_MAX + 1];
};
void store_suppress_info_format(struct strbuf *sb, int64_t since, const char *by, const char *reason);
/* Returns 0, or -HERALD_EINVAL (out zeroed) when s is not of that form. */
int store_suppress_info_parse(const char *s, size_t len, struct store_suppression *out);
/* lua/people_suppress.lua's command (a initialised here) on the shard of
 * member m (addrindex.h): add (on) or remove it, recorded as by/reason at
 * now in the info hash. */
void store_suppress_args(struct store_args *a, const char *prefix, const unsigned char m[ADDRINDEX_LEN], bool on,
                         const char *by, const char *reason, int64_t now);
/* The herald:admin record of that change (a initialised here): XADD,
 * trimmed to admin_maxlen, address_sha256 the member's hex. */
void store_suppress_audit_args(struct store_args *a, const char *prefix, int channel,
                               const unsigned char m[ADDRINDEX_LEN], bool on, const char *by, const char *reason,
                               int64_t now, long long admin_maxlen);

/* An operator's steer of a campaign (lua/campaign_control.lua). */
enum store_control_action { STORE_CONTROL_PAUSE, STORE_CONTROL_RESUME, STORE_CONTROL_CANCEL };
enum store_control_result {
    STORE_CONTROL_OK,         /* done */
    STORE_CONTROL_UNCHANGED,  /* it was so already */
    STORE_CONTROL_UNKNOWN,    /* no such campaign */
    STORE_CONTROL_FINAL,      /* the campaign is cancelled: nothing more to steer */
    STORE_CONTROL_NOT_PAUSED, /* resume of a campaign that is not paused */
};
const char *store_control_action_name(enum store_control_action a);
/* The script's answer as a result; <0 when r is not one of its answers. */
int store_control_result_of(const redisReply *r);
/* "pause"/"resume"/"cancel" -> action; <0 for anything else. */
int store_control_action_parse(const char *s);
/* Appends the script's command (EVALSHA; store_cmds falls back to EVAL)
 * for campaign and action to a. */
void store_control_args(struct store_args *a, const char *prefix, const char *campaign,
                        enum store_control_action action, long long events_maxlen);
/* heraldctl's blocking form: 0 with *result, or <0 with err. */
int store_sync_control(redisContext *c, const char *prefix, const char *campaign, enum store_control_action action,
                       long long events_maxlen, enum store_control_result *result, char *err, size_t errlen);

/* ---- person data and progress (the preference API, heraldctl) ---- */

/* The normalised form of an address that suppression, addr and tombstone
 * members hash: channel_address_normalise (the channel's descriptor says;
 * surrounding space trimmed, emails lower-cased); at most outlen - 1
 * bytes. Returns its length. */
size_t store_address_normalise(char *out, size_t outlen, int channel, const char *address);

/* A campaign's progress from the HGETALL reply of herald:campaign:<id>:
 * {"id", "state", "total", "sent", "suppressed": {reason: n}, "failed":
 * {reason: n}, "deferred", "deferred_by_reason": {reason: n}, "unknown",
 * "pending"}; an empty hash (no such campaign) gives state "unknown" and
 * zeros. NULL when r is not an array. The caller owns the result. Shared
 * by heraldctl and the API, so both print the same figures. */
json_t *store_campaign_progress(const char *id, const redisReply *r);
/* The same from the hash's fields and values (nfields of each); also
 * "run" (1 for a hash from before runs), "enqueued_at" and "finished_at"
 * when the hash has them (campaign_enqueue.lua, job_finished.lua). */
json_t *store_campaign_progress_pairs(const char *id, const char *const *fields, const char *const *values,
                                      size_t nfields);

/* What became of one person of an import batch. */
enum store_import_status {
    STORE_IMPORT_UNKNOWN,  /* sent, but the connection was lost before the answer: may be partly stored */
    STORE_IMPORT_STORED,   /* every write of the person's transaction succeeded */
    STORE_IMPORT_REFUSED,  /* not stored: Redis refused it, or it was never sent (reason says which) */
};

/* One person of an import batch. tombstones[ch] (NULL: none) is the
 * tombstone member of p's address on channel ch (people_tombstone_member). */
struct store_import {
    const struct profile *p;
    const struct consent_record *recs;
    size_t nrecs;
    const char *tombstones[HERALD_CH_COUNT];
    unsigned tombstoned; /* out: bit (1 << ch) when that address was erased before */
    enum store_import_status status; /* out */
    enum store_error error; /* out: the class of Redis's refusal (STORE_E_COUNT: none) */
    char reason[192];    /* out: why not STORED, as store_sync_error words it */
};

/* Imports a batch (heraldctl import) in two pipelined round trips. For each
 * person: when herald:tombstones holds the tombstone of an address, the
 * consent records for that channel are not stored (the person must consent
 * again) and the bit is set in tombstoned; herald:addr is kept in step
 * (old addresses out, new in); the rev is bumped; profile, records and
 * addresses go in one MULTI/EXEC per person. Every reply is checked, each
 * element of EXEC's answer included (a command of a transaction can fail
 * on its own, e.g. WRONGTYPE, while Redis applies the others), and each
 * person gets a status. Returns 0 when Redis answered for every person, or
 * -HERALD_EREDIS with err when the connection failed: the persons still
 * STORE_IMPORT_UNKNOWN may be partly stored (an import is safe to run
 * again). store_sync_import is this for one person and no tombstones; it
 * returns <0 unless the person was stored. */
int store_sync_import_batch(redisContext *c, const char *prefix, const struct seal_keys *keys,
                            const unsigned char key[ADDRINDEX_KEY_LEN], struct store_import *items, size_t n,
                            char *err, size_t errlen);
/* The same on a Redis Cluster (rcluster.h), a person at a time: the new
 * addresses claim their index entries first, then the person's transaction
 * runs on its slot, then the addresses it no longer has leave the index
 * (readers of the index check the person). A person whose reply never came
 * is UNKNOWN, those after it too. */
struct rcluster_sync;
int store_sync_import_cluster(struct rcluster_sync *cs, const char *prefix, const struct seal_keys *keys,
                              const unsigned char key[ADDRINDEX_KEY_LEN], struct store_import *items, size_t n,
                              char *err, size_t errlen);

#endif
