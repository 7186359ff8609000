/*
 * store_person.c - a person's stored form, sealed or in clear (store_person.h).
 *
 * Invariant: a write in the sealed form never stores an address or an
 * attribute in clear, and a read never takes data from an envelope that
 * did not authenticate for this person and field.
 */
#include "store_person.h"

#include <stdlib.h>
#include <string.h>

static const char *const sealed_fields[STORE_SEALED_NFIELDS + 1] = {
#define X(name, chname, afield, ...) "@" afield,
    HERALD_CHANNEL_MAP(X)
#undef X
    "@a", "@a1", "@a2", "@a3", NULL,
};

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
    for (int ch = 0; ch < HERALD_CH_COUNT; ch++) {
        clear.address[ch] = NULL;
        if (!p->address[ch]) continue;
        seal_close(keys, p->id, sealed_fields[ch], p->address[ch], strlen(p->address[ch]), &f->sealed[ch]);
        f->set[ch] = true;
    }
    clear.attributes = NULL;
    char *json = profile_to_json(&clear);
    strbuf_adds(&f->profile, json);
    free(json);
    if (!p->attributes || json_object_size(p->attributes) == 0) return;
    char *attrs = json_dumps(p->attributes, JSON_COMPACT | JSON_SORT_KEYS);
    if (!attrs) abort(); /* only allocation fails here: fatal, like xmalloc */
    struct strbuf env;
    strbuf_init(&env);
    seal_close(keys, p->id, sealed_fields[STORE_SEALED_ATTRS], attrs, strlen(attrs), &env);
    free(attrs);
    size_t off = 0;
    for (size_t k = 0; k < STORE_SEALED_ATTR_PIECES && off < env.len; k++) {
        size_t take = k + 1 == STORE_SEALED_ATTR_PIECES || env.len - off < STORE_SEALED_PIECE ? env.len - off
                                                                                              : STORE_SEALED_PIECE;
        strbuf_add(&f->sealed[STORE_SEALED_ATTRS + k], env.buf + off, take);
        f->set[STORE_SEALED_ATTRS + k] = true;
        off += take;
    }
    strbuf_free(&env);
}

static bool present(const redisReply *r) { return r && r->type == REDIS_REPLY_STRING; }

/* Notes the first failure only: one reason is enough to refuse a send. */
static void unopened(struct profile *p, char *err, size_t errlen, const char *why)
{
    if (!p->undecryptable) herald_seterr(err, errlen, "undecryptable %s", why);
    p->undecryptable = true;
}

int store_person_open(const struct seal_keys *keys, const char *id, const redisReply *profile,
                      const redisReply *const *sealed, struct profile *p, char *err, size_t errlen)
{
    if (!present(profile)) return 0;
    int rc = profile_parse(profile->str, profile->len, p, err, errlen);
    if (rc < 0) return rc;
    struct strbuf pt;
    strbuf_init(&pt);
    char why[192];
    static const struct seal_keys none = {0};
    const struct seal_keys *ks = keys ? keys : &none;
    for (int ch = 0; ch < HERALD_CH_COUNT; ch++) {
        const redisReply *s = sealed ? sealed[ch] : NULL;
        if (!present(s)) continue;
        free(p->address[ch]);
        p->address[ch] = NULL;
        if (seal_open(ks, id, sealed_fields[ch], s->str, s->len, &pt, why, sizeof(why)) < 0) {
            unopened(p, err, errlen, why);
            continue;
        }
        p->address[ch] = strbuf_detach(&pt, NULL);
    }
    if (sealed && present(sealed[STORE_SEALED_ATTRS])) {
        struct strbuf env;
        strbuf_init(&env);
        for (size_t k = 0; k < STORE_SEALED_ATTR_PIECES && present(sealed[STORE_SEALED_ATTRS + k]); k++)
            strbuf_add(&env, sealed[STORE_SEALED_ATTRS + k]->str, sealed[STORE_SEALED_ATTRS + k]->len);
        json_decref(p->attributes);
        p->attributes = NULL;
        if (seal_open(ks, id, sealed_fields[STORE_SEALED_ATTRS], env.buf, env.len, &pt, why, sizeof(why)) < 0) {
            unopened(p, err, errlen, why);
        } else {
            json_t *a = json_loadb(pt.buf, pt.len, 0, NULL);
            if (json_is_object(a)) p->attributes = a;
            else {
                json_decref(a);
                unopened(p, err, errlen, "@a: not a JSON object once decrypted");
            }
        }
        strbuf_free(&env);
    }
    strbuf_free(&pt);
    return 1;
}

size_t store_person_key_id(const redisReply *sealed, char id[SEAL_ID_MAX + 1])
{
    id[0] = '\0';
    return present(sealed) ? seal_key_id(sealed->str, sealed->len, id) : 0;
}
