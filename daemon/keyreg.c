/*
 * keyreg.c - the key registry (rules and layout in keyreg.h).
 */
#include "keyreg.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdlib.h>
#include <string.h>

#include "store.h"

#define KEYREG_LABEL "herald key id check"

void keyreg_key(struct strbuf *sb, const char *prefix) { store_key_build(sb, prefix, ":keys", NULL, NULL); }

void keyreg_fingerprint(const struct seal_key *k, char out[KEYREG_FP_HEX + 1])
{
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    if (!HMAC(EVP_sha256(), k->key, SEAL_KEY_LEN, (const unsigned char *)KEYREG_LABEL, strlen(KEYREG_LABEL),
              mac, &len) ||
        len < KEYREG_FP_HEX / 2) {
        fputs("herald: HMAC-SHA256 failed\n", stderr);
        abort();
    }
    static const char hex[] = "0123456789abcdef";
    for (size_t i = 0; i < KEYREG_FP_HEX / 2; i++) {
        out[2 * i] = hex[mac[i] >> 4];
        out[2 * i + 1] = hex[mac[i] & 15];
    }
    out[KEYREG_FP_HEX] = '\0';
    OPENSSL_cleanse(mac, sizeof(mac));
}

static bool retired(const char *v) { return strncmp(v, KEYREG_RETIRED, strlen(KEYREG_RETIRED)) == 0; }

static bool fingerprint_like(const char *v)
{
    if (strlen(v) != KEYREG_FP_HEX) return false;
    for (size_t i = 0; i < KEYREG_FP_HEX; i++)
        if (!((v[i] >= '0' && v[i] <= '9') || (v[i] >= 'a' && v[i] <= 'f'))) return false;
    return true;
}

int keyreg_decide(const struct seal_keys *keys, const struct keyreg_entry *reg, size_t n, struct strbuf *warn,
                  char *err, size_t errlen)
{
    for (size_t i = 0; i < n; i++) {
        const char *id = reg[i].id, *v = reg[i].value;
        const struct seal_key *k = seal_keys_find(keys, id, strlen(id));
        if (retired(v)) {
            if (k && k == &keys->v[0]) {
                herald_seterr(
                    err, errlen,
                    "key '%s', the first of key_file (the one that seals), was retired (heraldctl "
                    "retire-key): a retired id never seals again; put a new key with a new id first",
                    id);
                return -HERALD_EINVAL;
            }
            if (k && warn)
                strbuf_addf(
                    warn,
                    "key '%s' in key_file was retired (%s): nothing is sealed under it; delete its line\n",
                    id, v);
            continue;
        }
        if (!fingerprint_like(v)) {
            herald_seterr(
                err, errlen,
                "the key registry's entry for key '%s' is neither a fingerprint nor \"retired <time>\"", id);
            return -HERALD_EINVAL;
        }
        if (!k) {
            herald_seterr(
                err, errlen,
                "key '%s' is no longer in key_file but is not retired: people may still be sealed under "
                "it; put it back, run heraldctl rotate-key, then heraldctl retire-key %s",
                id, id);
            return -HERALD_EINVAL;
        }
        char fp[KEYREG_FP_HEX + 1];
        keyreg_fingerprint(k, fp);
        if (strcmp(fp, v) != 0) {
            herald_seterr(
                err, errlen,
                "key '%s' in key_file is not the key '%s' that sealed data before (other bytes under the "
                "same id): put the old bytes back, and give a new key a new id",
                id, id);
            return -HERALD_EINVAL;
        }
    }
    return 0;
}

int keyreg_decide_reply(const struct seal_keys *keys, const redisReply *r, struct strbuf *warn, char *err,
                        size_t errlen)
{
    if (!r || r->type != REDIS_REPLY_ARRAY || r->elements % 2)
        return herald_fail(err, errlen, "the key registry is not a hash of key ids");
    size_t n = r->elements / 2;
    struct keyreg_entry *reg = xcalloc(n + 1, sizeof(*reg));
    for (size_t i = 0; i < n; i++) {
        const redisReply *f = r->element[2 * i], *v = r->element[2 * i + 1];
        if (f->type != REDIS_REPLY_STRING || v->type != REDIS_REPLY_STRING) {
            free(reg);
            return herald_fail(err, errlen, "the key registry is not a hash of key ids");
        }
        reg[i] = (struct keyreg_entry){.id = f->str, .value = v->str};
    }
    int rc = keyreg_decide(keys, reg, n, warn, err, errlen);
    free(reg);
    return rc;
}

bool keyreg_registered(const struct seal_keys *keys, const redisReply *r)
{
    if (!r || r->type != REDIS_REPLY_ARRAY) return false;
    for (size_t k = 0; keys && k < keys->n; k++) {
        bool found = false;
        for (size_t i = 0; !found && i + 1 < r->elements; i += 2)
            found =
                r->element[i]->type == REDIS_REPLY_STRING && strcmp(r->element[i]->str, keys->v[k].id) == 0;
        if (!found) return false;
    }
    return true;
}

/* HGETALL of the registry into *out; 0, or -HERALD_EREDIS with err. */
static int read_registry(redisContext *c, const char *key, redisReply **out, char *err, size_t errlen)
{
    redisReply *r = redisCommand(c, "HGETALL %s", key);
    if (r && r->type == REDIS_REPLY_ARRAY) {
        *out = r;
        return 0;
    }
    store_sync_error(err, errlen, "key registry check", c, r && r->type == REDIS_REPLY_ERROR ? r : NULL);
    if (r) freeReplyObject(r);
    return -HERALD_EREDIS;
}

int keyreg_check_sync(redisContext *c, const char *prefix, const struct seal_keys *keys, bool reg,
                      struct strbuf *warn, char *err, size_t errlen)
{
    struct strbuf k;
    strbuf_init(&k);
    keyreg_key(&k, prefix);
    redisReply *r = NULL;
    int rc = read_registry(c, k.buf, &r, err, errlen);
    char why[8]; /* a file the registry refuses registers nothing: decided again below */
    if (rc == 0 && reg && !keyreg_registered(keys, r) && keyreg_decide_reply(keys, r, NULL, why, sizeof(why)) == 0) {
        for (size_t i = 0; rc == 0 && i < keys->n; i++) {
            char fp[KEYREG_FP_HEX + 1];
            keyreg_fingerprint(&keys->v[i], fp);
            redisReply *w = redisCommand(c, "HSETNX %s %s %s", k.buf, keys->v[i].id, fp);
            if (!w || w->type != REDIS_REPLY_INTEGER) {
                store_sync_error(err, errlen, "key registry check", c,
                                 w && w->type == REDIS_REPLY_ERROR ? w : NULL);
                rc = -HERALD_EREDIS;
            }
            if (w) freeReplyObject(w);
        }
        freeReplyObject(r);
        r = NULL;
        if (rc == 0) rc = read_registry(c, k.buf, &r, err, errlen);
    }
    if (rc == 0) rc = keyreg_decide_reply(keys, r, warn, err, errlen);
    if (r) freeReplyObject(r);
    strbuf_free(&k);
    return rc;
}
