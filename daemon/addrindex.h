/*
 * addrindex.h - the keyed, sharded indexes by address (key layout 3).
 *
 * Owns how an address becomes an index member and which key holds it:
 * the address index (herald:addr), the suppression list (herald:suppress
 * and its :info hash) and the erasure tombstones (herald:tombstones). A
 * member is the first ADDRINDEX_LEN bytes of
 *
 *     HMAC-SHA256(index key, "<channel>:<hex SHA-256 of the normalised address>")
 *
 * in binary. The inner string is exactly a layout 2 member, so heraldctl
 * migrate re-keys every layout 2 member without knowing its address; the
 * HMAC under a key Redis never holds is what stops anyone who reads Redis
 * from testing candidate addresses. Each index is cut into ADDRINDEX_SHARDS
 * keys by the member's first 4 bits, each with its own hash tag shared by
 * the four indexes ("<prefix>:addr:{i7}", "<prefix>:suppress:{i7}",
 * "<prefix>:suppress:info:{i7}", "<prefix>:tombstones:{i7}"): every command
 * on an index names one key, the four entries of one address are in one
 * slot (one script may read and write them together), and no slot holds a
 * whole index on a Redis Cluster.
 *
 * Layout 4 cuts the address index (one entry per address of every person)
 * further, into ADDRINDEX_BUCKETS small hashes by the member's first 12
 * bits, "<prefix>:addr:{i7}:7ab": the shard's hash tag is kept (same slot
 * as the address's other entries), and a bucket stays small enough for
 * Redis's compact listpack encoding (hash-max-listpack-entries, 128 by
 * default: see docs/architecture.md for the size at which buckets convert).
 * addrindex_key_of names the bucket; addrindex_key names layout 3's shard
 * of the address index (what heraldctl migrate moves into the buckets).
 *
 * Never logs and never does I/O; the key comes from the configuration
 * ([privacy] index_key_file, config.c). Loop thread only (digest.h).
 */
#ifndef HERALD_ADDRINDEX_H
#define HERALD_ADDRINDEX_H

#include <stdbool.h>
#include <stddef.h>

#include "herald.h"

#define ADDRINDEX_KEY_LEN 32 /* bytes of the index key */
#define ADDRINDEX_LEN 16     /* bytes of a member: 128 bits, see docs/privacy.md */
#define ADDRINDEX_SHARDS 16  /* keys per index, by the member's first 4 bits */
#define ADDRINDEX_BUCKETS 4096 /* address index keys (layout 4), by the member's first 12 bits */
#define ADDRINDEX_HEX (2 * ADDRINDEX_LEN + 1)
#define ADDRINDEX_PLAIN_MAX 96 /* "<channel>:<64 hex>" and its NUL */

enum addrindex_kind { ADDRINDEX_ADDR, ADDRINDEX_SUPPRESS, ADDRINDEX_SUPPRESS_INFO, ADDRINDEX_TOMBSTONES };

/* The member of an address on channel (normalised as the channel says:
 * channel_address_normalise). */
void addrindex_member(const unsigned char key[ADDRINDEX_KEY_LEN], int channel, const char *address,
                      unsigned char out[ADDRINDEX_LEN]);
/* The member of a layout 2 member ("<channel>:<sha256 hex>", len bytes). */
void addrindex_rekey(const unsigned char key[ADDRINDEX_KEY_LEN], const char *v2, size_t len,
                     unsigned char out[ADDRINDEX_LEN]);
/* The layout 2 member of an address: "<channel>:<sha256 hex>" (what
 * addrindex_member keys, and what a layout 2 suppression list held). */
void addrindex_plain(struct strbuf *sb, int channel, const char *address);
/* Which shard holds member m: 0 .. ADDRINDEX_SHARDS - 1. */
unsigned addrindex_shard(const unsigned char m[ADDRINDEX_LEN]);
/* The key of shard `shard` of an index (sb reset first); for the address
 * index that is layout 3's shard (heraldctl migrate's source). */
void addrindex_key(struct strbuf *sb, const char *prefix, enum addrindex_kind kind, unsigned shard);
/* Which address index bucket holds member m: 0 .. ADDRINDEX_BUCKETS - 1. */
unsigned addrindex_bucket(const unsigned char m[ADDRINDEX_LEN]);
/* The key of address index bucket `bucket` (sb reset first). */
void addrindex_bucket_key(struct strbuf *sb, const char *prefix, unsigned bucket);
/* The key holding member m of an index (for the address index, its bucket). */
void addrindex_key_of(struct strbuf *sb, const char *prefix, enum addrindex_kind kind,
                      const unsigned char m[ADDRINDEX_LEN]);
/* Lower-case hex of a member (the admin stream's address_sha256). */
void addrindex_hex(char out[ADDRINDEX_HEX], const unsigned char m[ADDRINDEX_LEN]);
/* The index key of a configuration without [privacy] index_key_file:
 * HMAC-SHA256(secret, "herald index key"), secret being [admin]
 * tombstone_secret or else link_secret (docs/config.md). */
void addrindex_key_derive(const char *secret, unsigned char key[ADDRINDEX_KEY_LEN]);
/* The index key from the content of an index key file: 32 bytes, or 64
 * hex digits and an optional newline. 0, or -1 with err. */
int addrindex_key_parse(const unsigned char *buf, size_t n, unsigned char key[ADDRINDEX_KEY_LEN], char *err,
                        size_t errlen);
/* A short public name of the key: hex of HMAC(key, "herald index key id")
 * truncated to 8 bytes (what heraldctl stats and migrate print). */
void addrindex_key_id(const unsigned char key[ADDRINDEX_KEY_LEN], char out[17]);

#endif
