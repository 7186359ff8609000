/*
 * profile.h - a recipient's profile: parse, validate, and the current consent.
 *
 * Pure. The same validation serves `heraldctl import`, the preference API and
 * the daemon reading stored profiles, so a profile that was accepted once is
 * read back the same way. Addresses are checked here with their channel's
 * syntax (channel.h): an invalid address is refused at import and, if one
 * is ever stored, counts as no address.
 */
#ifndef HERALD_PROFILE_H
#define HERALD_PROFILE_H

#include <jansson.h>
#include "channel.h"
#include "herald.h"

#define HERALD_PROFILE_MAX_BYTES (64 * 1024)
#define HERALD_PROFILE_MAX_TOPICS 64
#define HERALD_PROFILE_MAX_ATTRIBUTES 64
#define HERALD_CONSENT_SOURCE_MAX 128 /* also text_version */
#define PROFILE_MEMBER_LEN 16 /* addrindex.h's ADDRINDEX_LEN */

struct profile_topic {
    char *name;
    bool on;
};

struct consent_state {
    bool known;    /* a ledger record exists for the channel */
    bool granted;
    int64_t at;    /* unix seconds of the latest record */
};

struct profile {
    char *id;
    char *address[HERALD_CH_COUNT]; /* per channel, under its address_field; NULL when absent */
    char *tz;      /* IANA name, NULL when absent */
    char *locale;
    json_t *attributes; /* object (owned reference) or NULL */
    /* Or, on the daemon's send path only (store_person_unseal_to_render),
     * the attributes object's JSON text as profile_attributes_plain takes
     * it, read in place by profile_attribute_text instead of a tree
     * (owned, NUL-terminated; NULL when attributes is used). */
    char *attributes_text;
    size_t attributes_text_len;
    int channels[HERALD_CH_COUNT]; /* the person's order of preference */
    int nchannels;
    bool channels_set;  /* false: the person named no order; campaign order applies */
    struct profile_topic *topics;
    size_t ntopics;
    char *quiet_hours;  /* "HH:MM-HH:MM" or NULL */
    int quiet_start_min, quiet_end_min; /* the same, parsed; -1 when absent */
    json_t *frequency;  /* object (owned reference) or NULL */
    struct consent_state consent[HERALD_CH_COUNT];
    /* Its sealed contact data is stored but does not open (store_person.h):
     * nothing may be sent to it; the policy answers failed/undecryptable. */
    bool undecryptable;
    /* What the address checks read without the address (store_person.h):
     * bit ch of indexed set when channel ch has an address whose keyed
     * index member (addrindex.h) is member[ch]. A sealed person read for a
     * campaign has them while address[ch] is still NULL (its envelope is
     * opened only to render a message): such an address was valid when
     * stored. Never filled by the parsers here. */
    unsigned indexed;
    unsigned char member[HERALD_CH_COUNT][PROFILE_MEMBER_LEN];
};

/* One consent ledger record. */
struct consent_record {
    int channel;
    bool granted;
    int64_t at;
    char *source;
    char *text_version;
};

/* Parses a profile from a JSON object. Unknown top-level keys are errors,
 * except "consent" when allow_consent is true (import lines carry it; the
 * records are returned through records/nrecords, stamped with `now` when
 * they have no "at"; the caller frees each with consent_record_free and the
 * array with free; records may be NULL to validate and drop them).
 * Returns 0 or -HERALD_EINVAL with err set; on failure *p is zeroed and
 * nothing is allocated. Errors never quote an address. p->consent is left
 * zeroed: the store fills it from the ledger. Topic names are lower-cased. */
int profile_from_json(const json_t *obj, struct profile *p, bool allow_consent,
                      struct consent_record **records, size_t *nrecords, int64_t now,
                      char *err, size_t errlen);
/* Parses JSON text (HERALD_PROFILE_MAX_BYTES, else -HERALD_ETOOBIG) into a
 * profile without consent records. */
int profile_parse(const char *json, size_t len, struct profile *p, char *err, size_t errlen);
/* The same through jansson alone. profile_parse reads the form herald
 * stores without building a tree and falls back to this for anything else;
 * fuzz_profile checks that both give the same result. */
int profile_parse_full(const char *json, size_t len, struct profile *p, char *err, size_t errlen);
/* A profile's "attributes" member read on its own from its JSON text (the
 * sealed form keeps it apart from the profile): the checks and the result
 * of profile_parse for that member, into *out (a new reference). Returns 0,
 * or <0 with err set and *out NULL. */
int profile_attributes_parse(const char *json, size_t len, json_t **out, char *err, size_t errlen);
/* true when json is an attributes object in the form herald seals it
 * (compact, keys sorted and distinct) whose values are all strings of
 * printable ASCII without escapes, integers in their canonical form, true
 * or false, at most HERALD_PROFILE_MAX_ATTRIBUTES of them: such a text
 * needs no tree to be rendered from, and profile_attributes_parse accepts
 * it. false says nothing about its validity (parse it). */
bool profile_attributes_plain(const char *json, size_t len);
/* The value of attribute name in a text profile_attributes_plain took, as
 * a template renders it (a string's characters, a number's or a boolean's
 * JSON text): true with [*s, *s + *n) pointing into json, false when it
 * has no such attribute. */
bool profile_attribute_text(const char *json, size_t len, const char *name, const char **s, size_t *n);
/* Serialises the stored form (no consent; that lives in the ledger), compact
 * with sorted keys; profile_parse reads it back. Caller frees. */
char *profile_to_json(const struct profile *p);
void profile_free(struct profile *p);

/* Consent records as stored in the ledger (JSON with channel, granted, at
 * as RFC 3339, source, text_version when set). consent_record_parse reads a
 * ledger record and requires "at"; consent_record_from_json stamps `now`
 * when "at" is absent. On failure *r is zeroed and nothing is allocated. */
char *consent_record_to_json(const struct consent_record *r);
/* The form herald stores (the ledger and the person's current consent):
 * "1|<channel>|<1 granted, 0 withdrawn>|<at, unix s>|<source>|<text_version>"
 * (about 30 bytes, against 90 as JSON), or consent_record_to_json's when
 * source or text_version holds a '|' or source is empty. consent_record_parse
 * and consent_state_parse read both, and records written before. */
void consent_record_format(struct strbuf *sb, const struct consent_record *r);
int consent_record_parse(const char *json, size_t len, struct consent_record *r, char *err, size_t errlen);
/* The current state one stored record gives (known, granted, at), as
 * consent_record_parse would read it but without building a JSON tree for
 * the form herald writes: it runs for every recipient of every campaign.
 * Returns 0, or <0 when the record is unreadable (*st zeroed: no consent). */
int consent_state_parse(const char *json, size_t len, struct consent_state *st);
int consent_record_from_json(const json_t *obj, struct consent_record *r, int64_t now, char *err, size_t errlen);
void consent_record_free(struct consent_record *r);

/* Topic preference: 1 opted in, 0 opted out, -1 no preference stated. */
int profile_topic(const struct profile *p, const char *topic);

/* The address for a channel (its descriptor's address_field), or NULL. */
const char *profile_address(const struct profile *p, int ch);
/* Whether the person has an address on ch: in clear, or sealed and
 * indexed (indexed above). */
bool profile_has_address(const struct profile *p, int ch);
/* Whether that address can be sent to: the channel's syntax holds for an
 * address in clear; a sealed one was checked when it was stored. */
bool profile_address_usable(const struct profile *p, int ch);

/* "HH:MM-HH:MM" into minutes after midnight (start != end; the window may
 * wrap midnight). Returns 0 or -HERALD_EINVAL. */
int profile_quiet_hours_parse(const char *s, int *start_min, int *end_min);
/* "N/<int><s|m|h|d>" (e.g. "1/7d") into a count and a period in seconds.
 * Returns 0 or -HERALD_EINVAL. */
int profile_frequency_parse(const char *s, unsigned *count, int64_t *period_s);
/* The person's own limits ("frequency": {"email": "1/7d", "any": "3/7d"}),
 * validated at import; anything unreadable here is skipped, never guessed.
 * chan[i] is the key (a channel name or "any", pointing into p), lim[i]
 * the count, win[i] the period in seconds. Returns how many (at most max).
 * The daemon's reservation and heraldctl explain read them through this. */
size_t profile_frequency_limits(const struct profile *p, const char *chan[], int64_t lim[], int64_t win[],
                                size_t max);

#endif
