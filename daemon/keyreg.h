/*
 * keyreg.h - the key registry: which key ids ever sealed contact data, and
 * whether each was retired, so that a key file can drop a key only once
 * nothing uses it and a key id never silently names other bytes.
 *
 * Owns the registry's hash in Redis, <prefix>:keys ({<prefix>}:keys on a
 * cluster, on the control plane's master): one field per key id, its value
 * the key's fingerprint (KEYREG_FP_HEX hex digits: the first 8 bytes of
 * HMAC-SHA256(key, "herald key id check"); never the key) or
 * "retired <unix time>" once heraldctl retire-key found no person sealed
 * under it. A key is registered (HSETNX: a registered id keeps its first
 * value) by every daemon at start and at a reload that changes the keys,
 * and by heraldctl import and rotate-key, before they seal anything (each
 * reads the registry first and writes only the ids it lacks).
 *
 * The decision (keyreg_decide) is pure: a key file is refused when it holds
 * a registered id with other bytes, when it lacks a registered id that is
 * not retired (people may be sealed under it), or when its first (sealing)
 * key is a retired id; a retired id further down is accepted with a
 * warning (it opens nothing: nobody was sealed under it when it was
 * retired). Never writes a key, a plaintext or an address anywhere: errors
 * name the key ids only. Which running process encrypts under which key is
 * keylease.h's (retire-key's last step checks it).
 */
#ifndef HERALD_KEYREG_H
#define HERALD_KEYREG_H

#include <hiredis/hiredis.h>

#include "herald.h"
#include "seal.h"

#define KEYREG_FP_HEX 16
#define KEYREG_RETIRED "retired"

/* The registry's key: "<prefix>:keys" (reset first). */
void keyreg_key(struct strbuf *sb, const char *prefix);
/* k's fingerprint as KEYREG_FP_HEX lowercase hex digits and a NUL. */
void keyreg_fingerprint(const struct seal_key *k, char out[KEYREG_FP_HEX + 1]);

/* One field of the registry: a key id and its value. */
struct keyreg_entry {
    const char *id;
    const char *value;
};

/* Whether keys (NULL or empty: no key_file) may be used given the registry
 * reg[0..n). Returns 0 (with a line "key '<id>' ..." appended to warn, if
 * not NULL, for each retired id still in the file), or -HERALD_EINVAL with
 * err naming the first id in the way and what to do. */
int keyreg_decide(const struct seal_keys *keys, const struct keyreg_entry *reg, size_t n, struct strbuf *warn,
                  char *err, size_t errlen);
/* keyreg_decide over an HGETALL reply of the registry (an array of field,
 * value strings); a reply of another shape is refused. */
int keyreg_decide_reply(const struct seal_keys *keys, const redisReply *r, struct strbuf *warn, char *err,
                        size_t errlen);

/* Whether every key of keys is a field of the registry's HGETALL reply r
 * (an array of strings); false for a reply of another shape. The registry
 * is read first and written only for the keys it lacks: a check costs no
 * write once the keys are known (and works while Redis refuses writes). */
bool keyreg_registered(const struct seal_keys *keys, const redisReply *r);

/* Blocking (heraldctl, herald --check-config --connect): reads the
 * registry; when reg and the registry accepts keys, registers (HSETNX)
 * the keys it lacks and reads it again; decides. Returns 0,
 * -HERALD_EINVAL (refused: err says why) or -HERALD_EREDIS (err names what
 * Redis refused or that the connection failed). */
int keyreg_check_sync(redisContext *c, const char *prefix, const struct seal_keys *keys, bool reg,
                      struct strbuf *warn, char *err, size_t errlen);

#endif
