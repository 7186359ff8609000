/*
 * seal.h - contact data encrypted at rest: AES-256-GCM envelopes and the
 * key ring of [privacy] key_file.
 *
 * Owns the envelope's byte layout and the keys; knows nothing of Redis or
 * of a profile (store_person.c decides what is sealed under which field).
 * Never logs and never puts a key, a plaintext or a ciphertext in an error:
 * errors name the file, the line, the key id and the field only.
 *
 * Envelope (binary, stored as a Redis string):
 *   1 byte version (1) | 1 byte key id length L (1..8) | L bytes key id |
 *   12 bytes random nonce | ciphertext (as long as the plaintext) | 16 bytes tag
 * The associated data is "<person id>\0<field>": a ciphertext copied to
 * another person or another field does not open.
 *
 * Key file: one key a line, "<key id> <64 hex digits>" (32 random bytes);
 * blank lines and lines starting with '#' are skipped; ids are 1..8 of
 * A-Z a-z 0-9 _ - and appear once. The first key seals; every key opens.
 * The file must belong to herald's user (or root) and give group and others
 * no access.
 *
 * Invariant: seal_open returns the plaintext only when the tag verified
 * under the named key with this id and field; nothing else is ever
 * returned as data. Loop thread only (the cipher contexts are reused).
 */
#ifndef HERALD_SEAL_H
#define HERALD_SEAL_H

#include "herald.h"

#include <stddef.h>

#define SEAL_KEY_LEN 32
#define SEAL_NONCE_LEN 12
#define SEAL_TAG_LEN 16
#define SEAL_ID_MAX 8
#define SEAL_VERSION 1
/* Bytes an envelope adds to its plaintext, for a key id of id_len. */
#define SEAL_OVERHEAD(id_len) (2 + (id_len) + SEAL_NONCE_LEN + SEAL_TAG_LEN)

struct seal_key {
    char id[SEAL_ID_MAX + 1];
    unsigned char key[SEAL_KEY_LEN];
    void *enc, *dec; /* EVP_CIPHER_CTX with the key set, reused per call */
};

/* The keys of one key file; v[0] seals. */
struct seal_keys {
    struct seal_key *v;
    size_t n;
};

/* Parses a key file's text (format above). where names it in errors
 * ("<where>:<line>: ..."). Returns 0, or -HERALD_EINVAL with err set and
 * *out empty. */
int seal_keys_parse(const char *text, size_t len, const char *where, struct seal_keys *out, char *err,
                    size_t errlen);
/* Reads and parses path; refuses a file group or others may access, or
 * that belongs to another user than herald's or root. */
int seal_keys_load(const char *path, struct seal_keys *out, char *err, size_t errlen);
void seal_keys_free(struct seal_keys *k);
/* The key of that id, or NULL. */
const struct seal_key *seal_keys_find(const struct seal_keys *k, const char *id, size_t idlen);

/* Appends to out the envelope of pt[0..n) under keys->v[0], bound to
 * (person, field). */
void seal_close(const struct seal_keys *keys, const char *person, const char *field, const void *pt, size_t n,
                struct strbuf *out);
/* Opens an envelope bound to (person, field) into out (reset first; NUL
 * terminated). Returns 0, or -HERALD_EINVAL with err saying why (truncated,
 * unknown version, no key of that id, does not authenticate) without
 * quoting any of it but the key id. */
int seal_open(const struct seal_keys *keys, const char *person, const char *field, const void *env, size_t n,
              struct strbuf *out, char *err, size_t errlen);
/* The key id an envelope names into id (SEAL_ID_MAX + 1 bytes); returns
 * its length, or 0 when env is no envelope. */
size_t seal_key_id(const void *env, size_t n, char id[SEAL_ID_MAX + 1]);

#endif
