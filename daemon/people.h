/*
 * people.h - a person's data in Redis, as the API, the preference page and
 * the provider webhooks change it.
 *
 * Every operation is asynchronous, through the store's command layer
 * (store_cmd.h) with STORE_CMD_ONCE: its callers answer someone now, so a
 * command is never retried and never waits for the connection. It ends in
 * exactly one callback (libuv's rule): if the call returns 0 the callback
 * fires once, later, from the loop; if it returns < 0 it never fires.
 * Every write is one Lua script (daemon/lua/people_*.lua, declared `#!lua`,
 * so Redis refuses one under OOM before it writes anything): nothing is
 * ever half-applied. Every write bumps the person's `rev` field (store.h),
 * so a message the daemon has looked up but not yet reserved is decided
 * again with the new data. Never logs an address or a body; err never
 * quotes one, nor Redis's own words.
 *
 * Statuses passed to callbacks (store: STORE_E_COUNT but for -HERALD_EREDIS):
 *    0               done; doc holds the result (the callback owns it)
 *   -HERALD_ENOENT   no profile is stored for the id
 *   -HERALD_EINVAL   the input is not acceptable; err says why (for a 400)
 *   -HERALD_EREDIS   Redis refused a command, or the connection was lost
 *                    (store: the error's class; err: "redis unavailable:
 *                    <store_error_name>"). Nothing of the operation was
 *                    written, except that a lost connection cannot say
 *                    whether the one write it carried was applied: that
 *                    write is whole or absent, and safe to send again.
 *                    Transient classes (store_error_class) pass on their
 *                    own: try again soon; permanent ones need an operator.
 *   -HERALD_EPRECOND the client's If-Match (precond.h) does not hold: the
 *                    person is at another rev, or has no profile; nothing
 *                    was written (checked inside the write's script)
 *   -HERALD_EBUSY    the person's data kept changing under a
 *                    compare-and-set (people.c: PEOPLE_CAS_TRIES rounds): nothing was
 *                    written; try again
 * Synchronous returns (the callback then never fires): -HERALD_EREDIS when
 * the data connection is down (even for input that would be refused:
 * the refusal, too, is delivered from the loop), -HERALD_EINVAL for an id
 * that is not herald_id_valid or a channel out of range, and for
 * people_erase -HERALD_ECONFIG when no tombstone key is configured.
 *
 * The subject-access document (people_get), one JSON object:
 *   {"id": "...",
 *    "profile":     {"email", "phone", "tz", "locale", "attributes"}  (absent keys omitted),
 *    "preferences": {"channels": [...] or absent, "topics": {"name": bool},
 *                    "quiet_hours": "HH:MM-HH:MM" or absent, "frequency": {...} or absent},
 *    "consent":     [ledger records in the order they were written; each as
 *                    consent_record_to_json: channel, granted, at, source, text_version],
 *    "consent_current": {"email": {"granted": bool, "at": "RFC 3339"}, ...} (channels with a record),
 *    "suppressed":  {"email": bool, "sms": bool},
 *    "messages":    [newest first, at most STORE_HISTORY_MAX: {"campaign", "channel",
 *                    "topic", "outcome", "reason", "provider", "at"}],
 *    "rev":         the person's rev (0 when never counted), for the ETag:
 *                    the API takes it out of the body (precond.h),
 *    PEOPLE_UNDECRYPTABLE: only when the person's sealed contact data does
 *                    not decrypt (store_person.h): why (field, key id);
 *                    "profile" then lacks what did not open. The API answers
 *                    it as an error; the pages still change preferences}
 * The writes' documents (put, merge, patch_preferences) carry "rev" too:
 * the rev their write made.
 */
#ifndef HERALD_PEOPLE_H
#define HERALD_PEOPLE_H

#include <jansson.h>

#include "config.h"
#include "herald.h"
#include "precond.h"
#include "store_cmd.h"

struct people;

#define PEOPLE_UNDECRYPTABLE "undecryptable"

/* doc: a new reference the callback owns (NULL when status < 0). store:
 * the class of a Redis failure (-HERALD_EREDIS), else STORE_E_COUNT. err:
 * a message for the caller's answer when status < 0 (never an address). */
typedef void (*people_cb)(int status, enum store_error store, json_t *doc, const char *err, void *arg);

/* sc (the daemon's layer for interactive callers, on its data connection)
 * and cfg must outlive the context (prefix, [admin] tombstone_secret, ...).
 * Every command of the context is sent STORE_CMD_ONCE. */
struct people *people_new(struct store_cmds *sc, const struct config *cfg);
/* A reload: cfg (the same prefix) is read from now on, by calls in
 * progress too (their next step). */
void people_reload(struct people *pp, const struct config *cfg);
void people_free(struct people *pp);
/* From now on every write that would encrypt a person's contact data
 * (people_put, people_merge_profile, people_patch_preferences) ends
 * -HERALD_ECLOSED with why, nothing written: the key that encrypts was
 * retired under this daemon (keylease.h). Consent changes, erasure and
 * suppression go on. */
void people_refuse_sealing(struct people *pp, const char *why);

/* The subject-access document above. */
int people_get(struct people *pp, const char *id, people_cb cb, void *arg);

/* Creates or replaces the person's profile from a JSON object in the
 * import format without "consent" (profile_from_json); the consent ledger,
 * history and once-only records are kept. The preferences (channels,
 * topics, quiet_hours, frequency) belong to the person: each one the body
 * does not name is kept as stored; one it names is replaced (clearing one
 * is PATCH's). Keeps herald:addr in step (old addresses out, new ones in). doc:
 * {"id", "created": bool, "tombstoned": ["email", ...], "rev"} where
 * tombstoned lists the channels whose address was erased before (stored,
 * but not contactable until the person consents again). im: the client's
 * If-Match (NULL: unconditional). */
int people_put(struct people *pp, const char *id, const json_t *body, people_cb cb, void *arg);
int people_put_if(struct people *pp, const char *id, const json_t *body, const struct precond_if_match *im,
                  people_cb cb, void *arg);

/* Applies a JSON Merge Patch (RFC 7396, mergepatch.h) to the stored
 * profile (topic names lower-cased first), validates the result exactly as
 * people_put does (an "id" must be the path's) and writes it, addresses
 * and herald:addr included. -HERALD_ENOENT when no profile is stored.
 * doc: {"id", "tombstoned", "rev"} as people_put. */
int people_merge_profile(struct people *pp, const char *id, const json_t *patch, const struct precond_if_match *im,
                         people_cb cb, void *arg);

/* Changes only the keys present: "channels" (array, the order; null: no
 * order, the campaign's applies),
 * "topics" (object name -> bool, merged into the current topics; null
 * removes a topic's preference), "quiet_hours" (string, or null to clear),
 * "frequency" (object, or null to clear). Unknown keys and invalid values
 * are refused whole. doc: the new "preferences" object, with "rev". */
int people_patch_preferences(struct people *pp, const char *id, const json_t *patch, people_cb cb,
                             void *arg);
int people_patch_preferences_if(struct people *pp, const char *id, const json_t *patch,
                                const struct precond_if_match *im, people_cb cb, void *arg);

/* Appends a consent record stamped with the server's time now to the
 * append-only ledger and makes it the channel's current consent. source
 * and text_version are 1..HERALD_CONSENT_SOURCE_MAX printable characters
 * (text_version may be NULL). doc: the record as stored. */
int people_consent_append(struct people *pp, const char *id, int channel, bool granted,
                          const char *source, const char *text_version, int64_t now, people_cb cb,
                          void *arg);

/* A provider's event that may be delivered again (Twilio's MessageSid):
 * key is set (expiring after ttl_s) and field of the counts hash is
 * incremented in the same step as the change, so the event is applied and
 * counted at most once, and its key is never left set by a change that did
 * not happen: a redelivery after a failure applies it. */
struct people_event {
    const char *key;
    int64_t ttl_s;
    const char *counts, *field;
};
/* people_consent_append, at most once per event ev (NULL: as
 * people_consent_append). A status 0 with doc NULL: the event was applied
 * before, nothing changed. -HERALD_EINVAL (synchronous) for an incomplete ev. */
int people_consent_append_event(struct people *pp, const char *id, int channel, bool granted,
                                const char *source, const char *text_version, int64_t now,
                                const struct people_event *ev, people_cb cb, void *arg);

/* Erasure: deletes the profile, preferences, consent ledger, history,
 * sends and once-only records, and the herald:addr entries; adds a
 * tombstone (HMAC-SHA256 under [admin] tombstone_secret, or link_secret
 * when that is empty) of each address. The suppression list is kept.
 * Returns -HERALD_ECONFIG (callback never fires) when neither secret is
 * set: erasure without a tombstone would let a re-import be contacted.
 * doc: {"id", "erased": true, "tombstones": N}. */
int people_erase(struct people *pp, const char *id, people_cb cb, void *arg);
int people_erase_if(struct people *pp, const char *id, const struct precond_if_match *im, people_cb cb, void *arg);

/* The id of the person whose address (email or E.164 phone) on channel
 * this is, via herald:addr. doc: {"id": "..."}; -HERALD_ENOENT when no
 * person has it. */
int people_find_by_address(struct people *pp, int channel, const char *address, people_cb cb,
                           void *arg);

/* Who changes the suppression list and why (herald:suppress:info and the
 * herald:admin stream, store.h). by: one word of a-z and _ (api,
 * heraldctl, webhook); reason: 0..HERALD_CONSENT_SOURCE_MAX printable
 * characters (NULL: none); now: unix seconds, the "since" of a new entry. */
struct people_suppression {
    const char *by;
    const char *reason;
    int64_t now;
};

/* Adds an address to (or removes it from) the suppression list; when the
 * list changed and herald:addr names a person for the address, that
 * person's rev is bumped in the same step, and the change is recorded in
 * the admin stream. A second suppression keeps the first one's since and
 * reason. doc: {"changed": bool, "suppressed": bool, "since": RFC 3339,
 * "by", "reason"} (the last three null when unknown or not suppressed).
 * -HERALD_EINVAL (from the loop) for a reason that is not acceptable;
 * synchronous for a by that is not one word. */
int people_suppress_why(struct people *pp, int channel, const char *address, bool on,
                        const struct people_suppression *why, people_cb cb, void *arg);
/* people_suppress_why by "webhook", reason "provider feedback", now. */
int people_suppress(struct people *pp, int channel, const char *address, bool on, people_cb cb,
                    void *arg);

/* Whether an address is suppressed, since when and why. doc:
 * {"suppressed", "since", "by", "reason"} as people_suppress_why's. */
int people_suppression_get(struct people *pp, int channel, const char *address, people_cb cb, void *arg);

/* Tombstone member "<channel>:<hex HMAC-SHA256(secret, normalised address)>"
 * (normalised as store_suppress_member). Shared with heraldctl import. */
void people_tombstone_member(struct strbuf *sb, const char *secret, int channel, const char *address);

#endif
