/*
 * store_person.c - a person's stored form, sealed or in clear (store_person.h).
 *
 * Invariant: a write in the sealed form never stores an address or an
 * attribute in clear, and a read never takes data from an envelope that
 * did not authenticate for this person and field.
 */
#include "store_person.h"

#include <ctype.h>
#include <openssl/crypto.h>
#include <stdlib.h>
#include <string.h>

static const char *const sealed_fields[STORE_SEALED_NFIELDS + 1] = {"@0", "@1", "@2", "@3", "tz", NULL};

const char *store_sealed_field(size_t i) { return i < STORE_SEALED_NFIELDS ? sealed_fields[i] : NULL; }

void store_person_form_init(struct store_person_form *f)
{
    strbuf_init(&f->profile);
    for (size_t i = 0; i < STORE_SEALED_NFIELDS; i++) {
        strbuf_init(&f->sealed[i]);
        f->set[i] = false;
    }
}

void store_person_form_free(struct store_person_form *f)
{
    strbuf_free(&f->profile);
    for (size_t i = 0; i < STORE_SEALED_NFIELDS; i++) strbuf_free(&f->sealed[i]);
}

void store_person_seal(const struct seal_keys *keys, const struct profile *p, struct store_person_form *f)
{
    for (size_t i = 0; i < STORE_SEALED_NFIELDS; i++) {
        strbuf_reset(&f->sealed[i]);
        f->set[i] = false;
    }
    strbuf_reset(&f->profile);
    if (!keys || keys->n == 0) {
        char *json = profile_to_json(p);
        strbuf_adds(&f->profile, json);
        free(json);
        return;
    }
    /* The clear part: the same profile without what is sealed. */
    struct profile clear = *p;
    struct strbuf pt;
    strbuf_init(&pt);
    bool any = false;
    for (int ch = 0; ch < HERALD_CH_COUNT; ch++) {
        clear.address[ch] = NULL;
        if (p->address[ch]) {
            strbuf_adds(&pt, p->address[ch]);
            any = true;
        }
        strbuf_add(&pt, "", 1); /* the NUL after each address */
    }
    clear.attributes = NULL;
    if (p->attributes && json_object_size(p->attributes) > 0) {
        char *attrs = json_dumps(p->attributes, JSON_COMPACT | JSON_SORT_KEYS);
        if (!attrs) abort(); /* only allocation fails here: fatal, like xmalloc */
        strbuf_adds(&pt, attrs);
        free(attrs);
        any = true;
    }
    clear.tz = NULL;
    if (p->tz) {
        strbuf_adds(&f->sealed[STORE_SEALED_TZ], p->tz);
        f->set[STORE_SEALED_TZ] = true;
    }
    /* Without the id: the key names it, and every byte counts here. */
    char *json = profile_to_json(&clear);
    json_t *o = json_loads(json, 0, NULL);
    free(json);
    if (!o) abort(); /* profile_to_json's own output: only allocation fails */
    json_object_del(o, "id");
    json = json_dumps(o, JSON_COMPACT | JSON_SORT_KEYS);
    json_decref(o);
    if (!json) abort();
    strbuf_adds(&f->profile, json);
    free(json);
    if (any) {
        struct strbuf env;
        strbuf_init(&env);
        seal_close(keys, p->id, STORE_SEALED_AD, pt.buf, pt.len, &env);
        size_t off = 0;
        for (size_t k = 0; k < STORE_SEALED_PIECES && off < env.len; k++) {
            size_t take = k + 1 == STORE_SEALED_PIECES || env.len - off < STORE_SEALED_PIECE ? env.len - off
                                                                                              : STORE_SEALED_PIECE;
            strbuf_add(&f->sealed[k], env.buf + off, take);
            f->set[k] = true;
            off += take;
        }
        strbuf_free(&env);
    }
    if (pt.len) OPENSSL_cleanse(pt.buf, pt.len);
    strbuf_free(&pt);
}

static bool present(const redisReply *r) { return r && r->type == REDIS_REPLY_STRING; }

/* Notes the first failure only: one reason is enough to refuse a send. */
static void unopened(struct profile *p, char *err, size_t errlen, const char *why)
{
    if (!p->undecryptable) herald_seterr(err, errlen, "undecryptable %s", why);
    p->undecryptable = true;
}

static bool tz_chars_ok(const char *s, size_t n)
{
    if (n == 0 || n > 64) return false;
    for (size_t i = 0; i < n; i++)
        if (!isalnum((unsigned char)s[i]) && !strchr("_+/-", s[i])) return false;
    return true;
}

/* The sealed form's profile text with the id and the tz field put back,
 * as profile_parse reads a whole profile. */
static void whole_profile(struct strbuf *out, const char *id, const redisReply *profile, const redisReply *tz)
{
    strbuf_adds(out, "{\"id\":\"");
    strbuf_adds(out, id);
    strbuf_add(out, "\"", 1);
    if (present(tz) && tz_chars_ok(tz->str, tz->len)) {
        strbuf_adds(out, ",\"tz\":\"");
        strbuf_add(out, tz->str, tz->len);
        strbuf_add(out, "\"", 1);
    }
    const char *rest = profile->str + 1; /* after '{' */
    size_t rl = profile->len - 1;
    while (rl && isspace((unsigned char)*rest)) rest++, rl--;
    if (rl && *rest != '}') strbuf_add(out, ",", 1);
    strbuf_add(out, rest, rl);
}

int store_person_open(const struct seal_keys *keys, const char *id, const redisReply *profile,
                      const redisReply *const *sealed, struct profile *p, char *err, size_t errlen)
{
    if (!present(profile)) return 0;
    int rc;
    /* The clear form holds its id ("id":" can be nothing else in it: no
     * other string member may hold a quote); the sealed form does not. */
    if (profile->len >= 2 && profile->str[0] == '{' && !memmem(profile->str, profile->len, "\"id\":\"", 6) &&
        herald_id_valid(id)) {
        struct strbuf whole;
        strbuf_init(&whole);
        whole_profile(&whole, id, profile, sealed ? sealed[STORE_SEALED_TZ] : NULL);
        rc = profile_parse(whole.buf, whole.len, p, err, errlen);
        strbuf_free(&whole);
    } else {
        rc = profile_parse(profile->str, profile->len, p, err, errlen);
    }
    if (rc < 0) return rc;
    if (!sealed || !present(sealed[0])) return 1;
    /* Whatever the clear profile says, the sealed data is the truth. */
    for (int ch = 0; ch < HERALD_CH_COUNT; ch++) {
        free(p->address[ch]);
        p->address[ch] = NULL;
    }
    json_decref(p->attributes);
    p->attributes = NULL;
    struct strbuf env, pt;
    strbuf_init(&env);
    strbuf_init(&pt);
    for (size_t k = 0; k < STORE_SEALED_PIECES && present(sealed[k]); k++)
        strbuf_add(&env, sealed[k]->str, sealed[k]->len);
    static const struct seal_keys none = {0};
    char why[192];
    if (seal_open(keys ? keys : &none, id, STORE_SEALED_AD, env.buf, env.len, &pt, why, sizeof(why)) < 0) {
        unopened(p, err, errlen, why);
    } else {
        const char *q = pt.buf, *end = pt.buf + pt.len;
        for (int ch = 0; ch < HERALD_CH_COUNT && !p->undecryptable; ch++) {
            const char *nul = memchr(q, '\0', (size_t)(end - q));
            if (!nul) {
                unopened(p, err, errlen, "@: the decrypted data has the wrong shape");
                break;
            }
            if (nul > q) p->address[ch] = xstrndup(q, (size_t)(nul - q));
            q = nul + 1;
        }
        if (!p->undecryptable && q < end) {
            json_t *a = json_loadb(q, (size_t)(end - q), 0, NULL);
            if (json_is_object(a)) {
                p->attributes = a;
            } else {
                json_decref(a);
                unopened(p, err, errlen, "@: the decrypted attributes are not a JSON object");
            }
        }
        if (p->undecryptable)
            for (int ch = 0; ch < HERALD_CH_COUNT; ch++) {
                free(p->address[ch]);
                p->address[ch] = NULL;
            }
        if (pt.len) OPENSSL_cleanse(pt.buf, pt.len);
    }
    strbuf_free(&env);
    strbuf_free(&pt);
    return 1;
}

size_t store_person_key_id(const redisReply *sealed, char id[SEAL_ID_MAX + 1])
{
    id[0] = '\0';
    return present(sealed) ? seal_key_id(sealed->str, sealed->len, id) : 0;
}
