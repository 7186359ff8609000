/*
 * store_person.h - the stored form of a person's own data in herald:r:{ID}:
 * which fields hold what, sealed (seal.h) or in clear.
 *
 * With [privacy] key_file, the person hash holds:
 *   profile      the profile JSON without the id (the key names it), the
 *                time zone, the addresses and the attributes (locale,
 *                channels, topics, quiet hours, frequency): what the policy
 *                reads, in clear
 *   tz           the time zone, in clear (apart, so that profile stays
 *                within 64 bytes for most people)
 *   @0, @1, @2, @3  one envelope (seal.h) of the person's contact data,
 *                cut into pieces of at most 64 bytes (the last takes the
 *                rest), so that every value stays small enough for Redis's
 *                compact hash encoding; one envelope (one nonce and tag, 30
 *                to 40 bytes) for all of it rather than one per address.
 *                Its plaintext: each channel's address in descriptor order
 *                (empty when none), then the attributes as JSON (empty when
 *                none), separated by NUL bytes. It is bound to the person id
 *                and the field name "@". No field at all when there is no
 *                address and no attribute.
 * Without key_file the profile JSON holds everything, in clear, as before
 * encryption existed, and every @ and tz field is deleted. A reader
 * accepts both forms whatever the configuration.
 *
 * Pure apart from hiredis's reply type. Never logs; errors name fields and
 * key ids, never data.
 */
#ifndef HERALD_STORE_PERSON_H
#define HERALD_STORE_PERSON_H

#include "profile.h"
#include "seal.h"

#include <hiredis/hiredis.h>

#define STORE_SEALED_PIECES 4
#define STORE_SEALED_PIECE 64               /* Redis's hash-max-listpack-value default */
#define STORE_SEALED_TZ STORE_SEALED_PIECES /* index of "tz" */
#define STORE_SEALED_NFIELDS (STORE_SEALED_TZ + 1)
#define STORE_SEALED_AD "@" /* the field name the envelope is bound to */

/* Field i (0 .. STORE_SEALED_NFIELDS - 1) beside "profile" in the sealed
 * form: "@0", "@1", "@2", "@3", then "tz" (the one in clear). NULL past
 * the last. */
const char *store_sealed_field(size_t i);

/* What a write stores: HSET profile and each sealed field whose set[i] is
 * true (value sealed[i]); HDEL each other sealed field. */
struct store_person_form {
    struct strbuf profile;
    struct strbuf sealed[STORE_SEALED_NFIELDS];
    bool set[STORE_SEALED_NFIELDS];
};
void store_person_form_init(struct store_person_form *f);
void store_person_form_free(struct store_person_form *f);
/* The stored form of p: sealed under keys->v[0], or all in clear when keys
 * is NULL or empty. */
void store_person_seal(const struct seal_keys *keys, const struct profile *p, struct store_person_form *f);

/* Reads person id from the stored profile value and the sealed values
 * (sealed[i] the value of store_sealed_field(i); NULL or a nil reply when
 * absent). Returns 1 found, 0 no profile, <0 profile unreadable (err set).
 * A sealed field that does not open leaves that data out, sets
 * p->undecryptable and says why in err (the return is still 1). */
int store_person_open(const struct seal_keys *keys, const char *id, const redisReply *profile,
                      const redisReply *const *sealed, struct profile *p, char *err, size_t errlen);

/* The key id sealing the value of a sealed field into id; 0 when it is no
 * envelope. For heraldctl stats and the rotation. */
size_t store_person_key_id(const redisReply *sealed, char id[SEAL_ID_MAX + 1]);

#endif
