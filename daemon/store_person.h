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
 *   #            what the address checks read instead of the envelope,
 *                written with it (and only with it): one byte whose bit ch
 *                says channel ch has an address (valid when written: an
 *                invalid one is never stored), then the keyed index member
 *                (addrindex_member, 16 bytes) of each such address in
 *                channel order: 33 bytes with two addresses. The same
 *                members as the address index and the suppression list
 *                hold, under [privacy] index_key_file: without that key
 *                they tell nothing. Not bound to the envelope (the index
 *                key does not change with the content key: rotate-key
 *                writes the same value again).
 * Without key_file the profile JSON holds everything, in clear, as before
 * encryption existed, and every @, tz and # field is deleted (the checks
 * compute the members from the clear addresses). A reader accepts both
 * forms whatever the configuration, and a sealed person without "#" (one
 * written before it) by opening the envelope.
 *
 * Pure apart from hiredis's reply type. Never logs; errors name fields and
 * key ids, never data.
 */
#ifndef HERALD_STORE_PERSON_H
#define HERALD_STORE_PERSON_H

#include "addrindex.h"
#include "profile.h"
#include "seal.h"

#include <hiredis/hiredis.h>

#define STORE_SEALED_PIECES 4
#define STORE_SEALED_PIECE 64               /* Redis's hash-max-listpack-value default */
#define STORE_SEALED_TZ STORE_SEALED_PIECES /* index of "tz" */
#define STORE_SEALED_INDEX (STORE_SEALED_TZ + 1) /* index of "#" */
#define STORE_SEALED_NFIELDS (STORE_SEALED_INDEX + 1)
#define STORE_SEALED_AD "@" /* the field name the envelope is bound to */

/* Field i (0 .. STORE_SEALED_NFIELDS - 1) beside "profile" in the sealed
 * form: "@0", "@1", "@2", "@3", then "tz" (the one in clear), then "#".
 * NULL past the last. */
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
/* The stored form of p: sealed under keys->v[0], with "#" keyed with
 * index_key, or all in clear when keys is NULL or empty. */
void store_person_seal(const struct seal_keys *keys, const unsigned char index_key[ADDRINDEX_KEY_LEN],
                       const struct profile *p, struct store_person_form *f);

/* Reads person id from the stored profile value and the sealed values
 * (sealed[i] the value of store_sealed_field(i); NULL or a nil reply when
 * absent). Returns 1 found, 0 no profile, <0 profile unreadable (err set).
 * A sealed field that does not open leaves that data out, sets
 * p->undecryptable and says why in err (the return is still 1). */
int store_person_open(const struct seal_keys *keys, const char *id, const redisReply *profile,
                      const redisReply *const *sealed, struct profile *p, char *err, size_t errlen);

/* What the lookup of a campaign reads (store_person_from_fields): with
 * "#" beside the envelope, the envelope stays closed: p is the profile
 * without addresses and attributes, p->indexed and p->member come from
 * "#", and the envelope is put in *envelope (reset first) for
 * store_person_unseal, once a message is about to be rendered. Otherwise
 * (a person in clear, or sealed before "#" existed) it is
 * store_person_open, unless closed is true and there is an envelope
 * (then the contact data is left out: nobody needs it), and each address
 * read gets its member computed with index_key. Returns as
 * store_person_open. */
int store_person_read(const struct seal_keys *keys, const unsigned char index_key[ADDRINDEX_KEY_LEN],
                      const char *id, const redisReply *profile, const redisReply *const *sealed, bool closed,
                      struct profile *p, struct strbuf *envelope, char *err, size_t errlen);
/* Opens the envelope store_person_read kept (env, n) into p's addresses
 * and attributes. Returns 0, or -HERALD_EINVAL with p->undecryptable set
 * and err saying why (as store_person_open says it) when it does not open,
 * holds no valid data, or holds other addresses than "#" said. */
int store_person_unseal(const struct seal_keys *keys, const char *id, const char *env, size_t n,
                        struct profile *p, char *err, size_t errlen);
/* The same for a message about to be rendered, and nothing else: the
 * attributes may come as p->attributes_text (profile.h) instead of
 * p->attributes when that text is plain, which spares building a tree per
 * message; the same data and the same refusals either way. */
int store_person_unseal_to_render(const struct seal_keys *keys, const char *id, const char *env, size_t n,
                                  struct profile *p, char *err, size_t errlen);

/* The key id sealing the value of a sealed field into id; 0 when it is no
 * envelope. For heraldctl stats and the rotation. */
size_t store_person_key_id(const redisReply *sealed, char id[SEAL_ID_MAX + 1]);

#endif
