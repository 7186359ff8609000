/*
 * seal.c - AES-256-GCM envelopes of contact data and the key file
 * (layout and rules in seal.h).
 *
 * The cipher is fetched once and each key keeps one encryption and one
 * decryption context with its key schedule set, so a call only sets the
 * nonce: opening one envelope per message must cost well under 2 us.
 */
#include "seal.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define SEAL_FILE_MAX (64 * 1024)

static EVP_CIPHER *gcm(void)
{
    static EVP_CIPHER *c;
    if (!c && !(c = EVP_CIPHER_fetch(NULL, "AES-256-GCM", NULL))) {
        fputs("herald: AES-256-GCM is not available from OpenSSL\n", stderr);
        abort();
    }
    return c;
}

static EVP_CIPHER_CTX *keyed_ctx(const unsigned char *key, bool enc)
{
    EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
    if (!ctx || (enc ? EVP_EncryptInit_ex2(ctx, gcm(), key, NULL, NULL)
                     : EVP_DecryptInit_ex2(ctx, gcm(), key, NULL, NULL)) != 1) {
        fputs("herald: cannot set up AES-256-GCM\n", stderr);
        abort();
    }
    return ctx;
}

static bool id_char(int c) { return isalnum(c) || c == '_' || c == '-'; }

static int hexval(int c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

void seal_keys_free(struct seal_keys *k)
{
    for (size_t i = 0; i < k->n; i++) {
        EVP_CIPHER_CTX_free(k->v[i].enc);
        EVP_CIPHER_CTX_free(k->v[i].dec);
        OPENSSL_cleanse(k->v[i].key, sizeof(k->v[i].key));
    }
    free(k->v);
    k->v = NULL;
    k->n = 0;
}

const struct seal_key *seal_keys_find(const struct seal_keys *k, const char *id, size_t idlen)
{
    for (size_t i = 0; k && i < k->n; i++)
        if (strlen(k->v[i].id) == idlen && memcmp(k->v[i].id, id, idlen) == 0) return &k->v[i];
    return NULL;
}

/* One line "<id> <64 hex>" (already trimmed of its end of line) into key. */
static int parse_line(const char *s, size_t len, struct seal_key *key, char *why, size_t whylen)
{
    size_t i = 0;
    while (i < len && id_char((unsigned char)s[i]))
        i++;
    if (i == 0 || i > SEAL_ID_MAX || i >= len || (s[i] != ' ' && s[i] != '\t')) {
        herald_seterr(why, whylen, "expected \"<key id> <64 hex digits>\", the id 1..%d of A-Z a-z 0-9 _ -",
                      SEAL_ID_MAX);
        return -1;
    }
    memcpy(key->id, s, i);
    key->id[i] = '\0';
    while (i < len && (s[i] == ' ' || s[i] == '\t'))
        i++;
    size_t h = i;
    while (i < len && hexval((unsigned char)s[i]) >= 0)
        i++;
    size_t hl = i;
    while (i < len && (s[i] == ' ' || s[i] == '\t'))
        i++;
    if (hl - h != 2 * SEAL_KEY_LEN || i != len) {
        herald_seterr(why, whylen, "key '%s' must be %d hex digits (32 random bytes: openssl rand -hex 32)",
                      key->id, 2 * SEAL_KEY_LEN);
        return -1;
    }
    for (size_t b = 0; b < SEAL_KEY_LEN; b++)
        key->key[b] = (unsigned char)(hexval((unsigned char)s[h + 2 * b]) << 4 |
                                      hexval((unsigned char)s[h + 2 * b + 1]));
    return 0;
}

int seal_keys_parse(const char *text, size_t len, const char *where, struct seal_keys *out, char *err,
                    size_t errlen)
{
    out->v = NULL;
    out->n = 0;
    size_t cap = 0;
    int line = 0;
    const char *p = text, *end = text + len;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *e = nl ? nl : end;
        line++;
        size_t l = (size_t)(e - p);
        if (l && p[l - 1] == '\r') l--;
        size_t lead = 0;
        while (lead < l && (p[lead] == ' ' || p[lead] == '\t'))
            lead++;
        if (lead < l && p[lead] != '#') {
            struct seal_key key;
            memset(&key, 0, sizeof(key));
            char why[160];
            if (parse_line(p + lead, l - lead, &key, why, sizeof(why)) < 0) {
                herald_seterr(err, errlen, "%s:%d: %s", where, line, why);
                goto fail;
            }
            if (seal_keys_find(out, key.id, strlen(key.id))) {
                herald_seterr(err, errlen, "%s:%d: key id '%s' appears twice", where, line, key.id);
                OPENSSL_cleanse(&key, sizeof(key));
                goto fail;
            }
            if (out->n == cap) {
                cap = cap ? 2 * cap : 4;
                out->v = xrealloc(out->v, cap * sizeof(*out->v));
            }
            key.enc = keyed_ctx(key.key, true);
            key.dec = keyed_ctx(key.key, false);
            out->v[out->n++] = key;
            OPENSSL_cleanse(&key, sizeof(key));
        }
        p = nl ? nl + 1 : end;
    }
    if (out->n == 0) {
        herald_seterr(err, errlen,
                      "%s: no key in the file (one a line: \"<key id> <64 hex digits>\"; "
                      "make one with: echo \"k1 $(openssl rand -hex 32)\")",
                      where);
        return -HERALD_EINVAL;
    }
    return 0;
fail:
    seal_keys_free(out);
    return -HERALD_EINVAL;
}

int seal_keys_load(const char *path, struct seal_keys *out, char *err, size_t errlen)
{
    out->v = NULL;
    out->n = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
    if (fd < 0) {
        herald_seterr(err, errlen, "cannot read '%s': %s", path, strerror(errno));
        return -HERALD_EIO;
    }
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        herald_seterr(err, errlen, "'%s' is not a regular file", path);
        close(fd);
        return -HERALD_EIO;
    }
    unsigned mode = (unsigned)(st.st_mode & 07777);
    if (st.st_uid != geteuid() && st.st_uid != 0) {
        herald_seterr(err, errlen,
                      "'%s' holds the keys of the contact data and belongs to uid %u: it must belong "
                      "to the user herald runs as (uid %u) or to root",
                      path, (unsigned)st.st_uid, (unsigned)geteuid());
        close(fd);
        return -HERALD_EINVAL;
    }
    if (mode & 077) {
        herald_seterr(err, errlen,
                      "permissions %04o for '%s' are too open: it holds the keys of the contact "
                      "data, so group and others must have no access (chmod 600 '%s')",
                      mode, path, path);
        close(fd);
        return -HERALD_EINVAL;
    }
    char *buf = xmalloc(SEAL_FILE_MAX + 1);
    size_t n = 0;
    ssize_t r;
    while (n <= SEAL_FILE_MAX && (r = read(fd, buf + n, SEAL_FILE_MAX + 1 - n)) != 0) {
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) {
            herald_seterr(err, errlen, "cannot read '%s': %s", path, strerror(errno));
            close(fd);
            OPENSSL_cleanse(buf, n);
            free(buf);
            return -HERALD_EIO;
        }
        n += (size_t)r;
    }
    close(fd);
    int rc = n > SEAL_FILE_MAX ? -HERALD_ETOOBIG : seal_keys_parse(buf, n, path, out, err, errlen);
    if (rc == -HERALD_ETOOBIG)
        herald_seterr(err, errlen, "'%s' is larger than %d bytes", path, SEAL_FILE_MAX);
    OPENSSL_cleanse(buf, n < SEAL_FILE_MAX + 1 ? n : SEAL_FILE_MAX + 1);
    free(buf);
    return rc;
}

static bool bind_ad(EVP_CIPHER_CTX *ctx, bool enc, const char *person, const char *field)
{
    int l;
    const unsigned char zero = 0;
    int (*update)(EVP_CIPHER_CTX *, unsigned char *, int *, const unsigned char *, int) =
        enc ? EVP_EncryptUpdate : EVP_DecryptUpdate;
    return update(ctx, NULL, &l, (const unsigned char *)person, (int)strlen(person)) == 1 &&
           update(ctx, NULL, &l, &zero, 1) == 1 &&
           update(ctx, NULL, &l, (const unsigned char *)field, (int)strlen(field)) == 1;
}

void seal_close(const struct seal_keys *keys, const char *person, const char *field, const void *pt, size_t n,
                struct strbuf *out)
{
    const struct seal_key *k = &keys->v[0];
    size_t idl = strlen(k->id), at = out->len;
    strbuf_grow_to(out, at + SEAL_OVERHEAD(idl) + n);
    unsigned char *o = (unsigned char *)out->buf + at;
    o[0] = SEAL_VERSION;
    o[1] = (unsigned char)idl;
    memcpy(o + 2, k->id, idl);
    unsigned char *nonce = o + 2 + idl, *ct = nonce + SEAL_NONCE_LEN, *tag = ct + n;
    int l = 0, f = 0;
    EVP_CIPHER_CTX *ctx = k->enc;
    if (RAND_bytes(nonce, SEAL_NONCE_LEN) != 1 || EVP_EncryptInit_ex2(ctx, NULL, NULL, nonce, NULL) != 1 ||
        !bind_ad(ctx, true, person, field) || (n && EVP_EncryptUpdate(ctx, ct, &l, pt, (int)n) != 1) ||
        EVP_EncryptFinal_ex(ctx, ct + l, &f) != 1 ||
        EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, SEAL_TAG_LEN, tag) != 1) {
        /* Never store the plaintext instead: a sealing that fails is fatal. */
        fputs("herald: AES-256-GCM encryption failed\n", stderr);
        abort();
    }
    out->len = at + SEAL_OVERHEAD(idl) + n;
    out->buf[out->len] = '\0';
}

size_t seal_key_id(const void *env, size_t n, char id[SEAL_ID_MAX + 1])
{
    const unsigned char *e = env;
    id[0] = '\0';
    if (n < 2 || e[0] != SEAL_VERSION || e[1] == 0 || e[1] > SEAL_ID_MAX || n < SEAL_OVERHEAD((size_t)e[1]))
        return 0;
    memcpy(id, e + 2, e[1]);
    id[e[1]] = '\0';
    return e[1];
}

int seal_open(const struct seal_keys *keys, const char *person, const char *field, const void *env, size_t n,
              struct strbuf *out, char *err, size_t errlen)
{
    const unsigned char *e = env;
    strbuf_reset(out);
    if (n < 2 || e[0] != SEAL_VERSION) {
        herald_seterr(err, errlen, "%s: not an envelope herald wrote (version %d)", field, n ? e[0] : -1);
        return -HERALD_EINVAL;
    }
    char id[SEAL_ID_MAX + 1];
    size_t idl = seal_key_id(env, n, id);
    if (!idl) {
        herald_seterr(err, errlen, "%s: truncated envelope (%zu bytes)", field, n);
        return -HERALD_EINVAL;
    }
    const struct seal_key *k = seal_keys_find(keys, id, idl);
    if (!k) {
        herald_seterr(err, errlen, "%s: sealed under key '%s', which [privacy] key_file does not hold", field,
                      id);
        return -HERALD_EINVAL;
    }
    const unsigned char *nonce = e + 2 + idl, *ct = nonce + SEAL_NONCE_LEN;
    size_t cl = n - SEAL_OVERHEAD(idl);
    const unsigned char *tag = ct + cl;
    strbuf_grow_to(out, cl + 1);
    int l = 0, f = 0;
    EVP_CIPHER_CTX *ctx = k->dec;
    bool ok = EVP_DecryptInit_ex2(ctx, NULL, NULL, nonce, NULL) == 1 && bind_ad(ctx, false, person, field) &&
              (cl == 0 || EVP_DecryptUpdate(ctx, (unsigned char *)out->buf, &l, ct, (int)cl) == 1) &&
              EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, SEAL_TAG_LEN, (void *)tag) == 1 &&
              EVP_DecryptFinal_ex(ctx, (unsigned char *)out->buf + l, &f) == 1;
    if (!ok) {
        OPENSSL_cleanse(out->buf, cl);
        strbuf_reset(out);
        herald_seterr(err, errlen,
                      "%s: does not decrypt under key '%s' for this person and field (altered, or "
                      "copied from another person or field)",
                      field, id);
        return -HERALD_EINVAL;
    }
    out->len = cl;
    out->buf[cl] = '\0';
    return 0;
}
