/*
 * store_campaign.h - a campaign's runs, the campaigns index and the
 * outcomes of a campaign: the typed side of campaign_enqueue.lua,
 * campaign_get.lua, campaign_list.lua and campaign_outcomes.lua.
 *
 * Keys (store.h lists every key; these are the ones this module adds):
 *   herald:campaigns              zset: campaign id -> when it was first
 *                                 enqueued (unix ms); GET /v1/campaigns pages it
 *   herald:campaign:ID:runs       hash: run number -> the fields of that
 *                                 finished run's campaign hash, as a JSON object
 *   herald:campaign:ID:ids        list: the latest run's inline recipient ids
 *   herald:idempotency:SHA        string "<body sha256> <run> <entry>", 24 h: the
 *                                 answer of POST /v1/campaigns to one Idempotency-Key
 *                                 (SHA: the sha256 of the key)
 *
 * Owns: the scripts' KEYS/ARGV layouts and the shape of their replies, the
 * mapping of a once-only record to an outcome row. Never: logs, names a
 * key outside these builders, or answers from a reply of another shape
 * (every decoder says so with <0).
 */
#ifndef HERALD_STORE_CAMPAIGN_H
#define HERALD_STORE_CAMPAIGN_H

#include <hiredis/hiredis.h>
#include <jansson.h>

#include "herald.h"
#include "store_cmd.h"
#include "store_nodes.h"

/* How long POST /v1/campaigns remembers the answer to an Idempotency-Key. */
#define STORE_IDEMPOTENCY_TTL (24 * 3600)
/* Page sizes of GET /v1/campaigns and .../outcomes. */
#define STORE_PAGE_DEFAULT 50
#define STORE_PAGE_MAX 1000

void store_key_campaign_index(struct strbuf *sb, const char *prefix);
void store_key_campaign_runs(struct strbuf *sb, const char *prefix, const char *campaign);
void store_key_campaign_ids(struct strbuf *sb, const char *prefix, const char *campaign);
void store_key_idempotency(struct strbuf *sb, const char *prefix, const char *key_sha_hex);

/* ---- registering a run (campaign_enqueue.lua) ---- */

struct store_enqueue {
    const char *campaign;
    const char *entry;         /* the stream entry read (daemon), or NULL: XADD the job now (API, heraldctl) */
    const char *text;          /* the job JSON (used when entry is NULL) */
    size_t len;
    bool rerun;                /* the job's "rerun" */
    const char *recipients_key; /* NULL: inline ids */
    char *const *ids;
    size_t nids;
    const char *idem_key_sha;  /* hex sha256 of the Idempotency-Key, or NULL */
    const char *idem_digest;   /* hex sha256 of the body (with idem_key_sha) */
    int64_t now;               /* unix ms: enqueued_at and the index's score */
    const struct job *job;     /* the job: its info for the history (job_info_json), or NULL */
};

enum store_enqueue_status {
    STORE_ENQ_OK,       /* registered: run, entry */
    STORE_ENQ_SAME,     /* this entry is registered already (it came through the API, or is read again) */
    STORE_ENQ_REPLAY,   /* the same Idempotency-Key and body: the first answer's run and entry */
    STORE_ENQ_LIVE,     /* refused: run `run` of the id is live */
    STORE_ENQ_FINISHED, /* refused: run `run` finished and the job does not say "rerun": true */
    STORE_ENQ_CONFLICT, /* refused: the Idempotency-Key was used with another body */
    STORE_ENQ_EXPIRED,  /* refused for good: the id's once-only records went with [retention] */
};

struct store_enqueue_result {
    enum store_enqueue_status status;
    long long run;
    char entry[64];
};

/* Appends the script's command (EVALSHA) to a (initialised here). */
void store_enqueue_args(struct store_args *a, const char *prefix, const struct store_enqueue *e);
/* 0 with *out, or <0 when r is not the script's reply. */
int store_enqueue_result_of(const redisReply *r, struct store_enqueue_result *out);
/* The sentence of a refusal (LIVE, FINISHED, CONFLICT), the same for the
 * API's 409, heraldctl and the dead letter. */
void store_enqueue_refusal(char *err, size_t errlen, const char *campaign, const struct store_enqueue_result *res);
/* heraldctl's blocking form (EVAL): 0 with *out, or <0 with err. */
int store_sync_enqueue(redisContext *c, const char *prefix, const struct store_enqueue *e,
                       struct store_enqueue_result *out, char *err, size_t errlen);

/* ---- a campaign and its runs (campaign_get.lua) ---- */

void store_campaign_get_args(struct store_args *a, const char *prefix, const char *campaign);
/* The latest run's progress (store_campaign_progress, with run,
 * enqueued_at, finished_at) and "runs": every run's, oldest first, the
 * latest last. *out NULL when the campaign is unknown. 0, or <0 when r is
 * not the script's reply. The caller owns *out. */
int store_campaign_get_result(const char *id, const redisReply *r, json_t **out);
/* The same, with a cluster's per-node counts of the latest run (store_nodes.h) added to its hash's. */
int store_campaign_get_result_counts(const char *id, const redisReply *r, const struct store_node_counts *counts,
                                     json_t **out);
/* counts: a cluster's per-node counts of the latest run (store_node_counts_sync), or NULL. */
int store_sync_campaign_get(redisContext *c, const char *prefix, const char *campaign,
                            const struct store_node_counts *counts, json_t **out, char *err, size_t errlen);

/* ---- the campaigns index (campaign_list.lua) ---- */

/* cursor "" for the first page; limit 1..STORE_PAGE_MAX. */
void store_campaign_list_args(struct store_args *a, const char *prefix, const char *cursor, long limit);
/* 1 with *items (an array of progress objects, newest first) and next
 * ("" on the last page); 0 when the cursor is no campaign id of the
 * index; <0 when r is not the script's reply. */
int store_campaign_list_result(const redisReply *r, json_t **items, char *next, size_t nextlen);

/* ---- outcomes (campaign_outcomes.lua) ---- */

/* cursor "0" for the first page: a decimal number (an offset into a list
 * or a SCAN cursor), as the previous page's next_cursor gave it. */
void store_campaign_outcomes_args(struct store_args *a, const char *prefix, const char *campaign,
                                  const char *cursor, long limit);
/* The outcome a row shows for a once-only record's state: sent, failed,
 * suppressed, unknown, deferred, pending (reserved or being handed to a
 * provider) or none (no record). NULL when name is none of them. */
const char *store_outcome_filter_valid(const char *name);
/* 1 with *items ({recipient, outcome, reason, channel, at, entry} per
 * listed id whose outcome is filter, or every one with filter NULL) and
 * next ("" when the source is read to its end); 0 when the campaign is
 * unknown; <0 when r is not the script's reply. Ids of the source that
 * are no valid id are not listed (they have no record). */
int store_campaign_outcomes_result(const redisReply *r, const char *filter, json_t **items, char *next,
                                   size_t nextlen);

/* On a cluster (store_keys_clustered) the script reads no record (they
 * are on the people's slots) and a recipients_key is read apart: */
/* The reply says the ids are in recipients_key *key (copied, at most
 * keylen - 1 bytes): 1, else 0. */
int store_campaign_outcomes_source(const redisReply *r, char *key, size_t keylen);
/* The script again, on the source key alone: its page at cursor. Its reply
 * is the first form's (store_campaign_outcomes_result). */
void store_campaign_outcomes_source_args(struct store_args *a, const char *key, const char *cursor, long limit);
/* One row for id with its record (rec, reclen; "" none), or NULL when
 * filter (non-NULL) is another outcome or id is no valid id: what
 * store_campaign_outcomes_result lists per id. */
json_t *store_campaign_outcome_item(const char *id, const char *rec, size_t reclen, const char *filter);

#endif
