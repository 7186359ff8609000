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

static const char *const sealed_fields[STORE_SEALED_NFIELDS + 1] = {"@0", "@1", "@2", "@3", "tz", "#", NULL};

_Static_assert(PROFILE_MEMBER_LEN == ADDRINDEX_LEN, "a profile's member is an address index member");
_Static_assert(HERALD_CH_COUNT <= 8, "the channels with an address fit the first byte of \"#\"");

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
    for (size_t i = 0; i < STORE_SEALED_NFIELDS; i++)
        strbuf_free(&f->sealed[i]);
}

/* The value of "#" for p (store_person.h): the channels with an address,
 * then each one's member. */
static void index_format(const unsigned char key[ADDRINDEX_KEY_LEN], const struct profile *p, struct strbuf *sb)
{
    unsigned char mask = 0, m[HERALD_CH_COUNT][ADDRINDEX_LEN];
    for (int ch = 0; ch < HERALD_CH_COUNT; ch++) {
        if (!channel_address_valid(ch, p->address[ch])) continue;
        mask |= (unsigned char)(1u << ch);
        addrindex_member(key, ch, p->address[ch], m[ch]);
    }
    strbuf_add(sb, (const char *)&mask, 1);
    for (int ch = 0; ch < HERALD_CH_COUNT; ch++)
        if (mask >> ch & 1u) strbuf_add(sb, (const char *)m[ch], ADDRINDEX_LEN);
}

void store_person_seal(const struct seal_keys *keys, const unsigned char index_key[ADDRINDEX_KEY_LEN],
                       const struct profile *p, struct store_person_form *f)
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
            size_t take = k + 1 == STORE_SEALED_PIECES || env.len - off < STORE_SEALED_PIECE
                              ? env.len - off
                              : STORE_SEALED_PIECE;
            strbuf_add(&f->sealed[k], env.buf + off, take);
            f->set[k] = true;
            off += take;
        }
        strbuf_free(&env);
        if (index_key) {
            index_format(index_key, p, &f->sealed[STORE_SEALED_INDEX]);
            f->set[STORE_SEALED_INDEX] = true;
        }
    }
    if (pt.len) OPENSSL_cleanse(pt.buf, pt.len);
    strbuf_free(&pt);
}

static bool present(const redisReply *r) { return r && r->type == REDIS_REPLY_STRING; }

/* Reads "#" into p's indexed and member; false (p untouched) when r holds
 * none of its values. */
static bool index_parse(const redisReply *r, struct profile *p)
{
    if (!present(r) || r->len < 1) return false;
    unsigned mask = (unsigned char)r->str[0];
    size_t want = 1;
    for (int ch = 0; ch < HERALD_CH_COUNT; ch++) want += (mask >> ch & 1u) * ADDRINDEX_LEN;
    if (mask >> HERALD_CH_COUNT || r->len != want) return false;
    const char *q = r->str + 1;
    for (int ch = 0; ch < HERALD_CH_COUNT; ch++) {
        if (!(mask >> ch & 1u)) continue;
        memcpy(p->member[ch], q, ADDRINDEX_LEN);
        q += ADDRINDEX_LEN;
    }
    p->indexed = mask;
    return true;
}

static bool tz_chars_ok(const char *s, size_t n)
{
    if (n == 0 || n > 64) return false;
    for (size_t i = 0; i < n; i++)
        if (!isalnum((unsigned char)s[i]) && !strchr("_+/-", s[i])) return false;
    return true;
}

/* A decrypted address as a JSON string body: herald sealed it after its
 * channel's check, so it never needs an escape; anything else is refused. */
static bool plain_json(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] < 0x20 || s[i] == '"' || s[i] == '\\' || s[i] == 0x7f) return false;
    return true;
}

/* One top-level member of a JSON object's text: its key and its whole
 * text ("key":value). */
struct member {
    const char *key, *text;
    size_t keylen, len;
};

/* The members of a compact object's text (jansson's output: no spaces
 * between tokens), in order; at most max. Returns how many, or -1. */
static int split_members(const char *s, size_t n, struct member *out, int max)
{
    if (n < 2 || s[0] != '{' || s[n - 1] != '}') return -1;
    int count = 0;
    size_t i = 1;
    while (i < n - 1) {
        if (count == max || s[i] != '"') return -1;
        struct member *m = &out[count++];
        m->text = s + i;
        m->key = s + i + 1;
        size_t j = i + 1;
        while (j < n && s[j] != '"')
            j += s[j] == '\\' ? 2 : 1;
        if (j >= n) return -1;
        m->keylen = j - i - 1;
        int depth = 0;
        bool str = false;
        for (j++; j < n - 1; j++) {
            char c = s[j];
            if (str) {
                if (c == '\\')
                    j++;
                else if (c == '"')
                    str = false;
            } else if (c == '"') {
                str = true;
            } else if (c == '{' || c == '[') {
                depth++;
            } else if (c == '}' || c == ']') {
                depth--;
            } else if (c == ',' && depth == 0) {
                break;
            }
        }
        m->len = (size_t)(s + j - m->text);
        i = j + 1;
    }
    return count;
}

static int member_cmp(const void *a, const void *b)
{
    const struct member *x = a, *y = b;
    size_t m = x->keylen < y->keylen ? x->keylen : y->keylen;
    int c = memcmp(x->key, y->key, m);
    return c ? c : (x->keylen > y->keylen) - (x->keylen < y->keylen);
}

/* The sealed form's profile text with what lives apart put back (the id
 * and the tz field), its members in sorted order as herald writes a whole
 * profile, so that one profile_parse reads and checks it all on its fast
 * path. sealed: the addresses and attributes live in the envelope, and
 * what the stored profile may hold of them is left out (a profile in
 * clear written beside sealed data: the sealed data wins). Returns false
 * when the profile has the wrong shape. */
static bool whole_profile(struct strbuf *out, const char *id, const char *profile, size_t plen,
                          const redisReply *tz, bool sealed)
{
    enum { MAX_MEMBERS = 16 };
    struct member mem[MAX_MEMBERS + 2];
    int n = split_members(profile, plen, mem, MAX_MEMBERS);
    if (n < 0) return false;
    /* What is put back replaces what the stored profile holds of it. */
    bool with_tz = present(tz) && tz_chars_ok(tz->str, tz->len);
    int kept = 0;
    for (int i = 0; i < n; i++) {
        char k[24];
        if (mem[i].keylen >= sizeof(k)) {
            mem[kept++] = mem[i];
            continue;
        }
        memcpy(k, mem[i].key, mem[i].keylen);
        k[mem[i].keylen] = '\0';
        bool drop = strcmp(k, "id") == 0 || (with_tz && strcmp(k, "tz") == 0) ||
                    (sealed && (strcmp(k, "attributes") == 0 || channel_from_address_field(k) >= 0));
        if (!drop) mem[kept++] = mem[i];
    }
    n = kept;
    /* The members put back: "id":"<id>" and "tz":"<tz>" (neither needs an
     * escape: both were checked, and both are bounded). */
    char idm[HERALD_ID_MAX + 8], tzm[64 + 8];
    size_t idlen = strlen(id);
    if (idlen > HERALD_ID_MAX) return false;
    memcpy(idm, "\"id\":\"", 6);
    memcpy(idm + 6, id, idlen);
    idm[6 + idlen] = '"';
    mem[n++] = (struct member){.key = "id", .keylen = 2, .text = idm, .len = idlen + 7};
    if (with_tz) {
        memcpy(tzm, "\"tz\":\"", 6);
        memcpy(tzm + 6, tz->str, tz->len);
        tzm[6 + tz->len] = '"';
        mem[n++] = (struct member){.key = "tz", .keylen = 2, .text = tzm, .len = tz->len + 7};
    }
    /* Sorted as herald writes them; the stored members are already in
     * order, so an insertion sort only places the two put back. */
    size_t total = 2;
    for (int i = 1; i < n; i++) {
        struct member m = mem[i];
        int j = i;
        for (; j > 0 && member_cmp(&mem[j - 1], &m) > 0; j--) mem[j] = mem[j - 1];
        mem[j] = m;
    }
    for (int i = 0; i < n; i++) total += mem[i].len + 1;
    strbuf_grow_to(out, out->len + total);
    strbuf_add(out, "{", 1);
    for (int i = 0; i < n; i++) {
        if (i) strbuf_add(out, ",", 1);
        strbuf_add(out, mem[i].text, mem[i].len);
    }
    strbuf_add(out, "}", 1);
    return true;
}

/* An address read from opened contact data, checked as profile_parse
 * checks the member of channel ch: its channel's syntax, and, past ASCII,
 * valid UTF-8 (what jansson would have refused). */
static bool contact_address_ok(int ch, const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if ((unsigned char)s[i] < 0x80) continue;
        json_t *utf8 = json_stringn(s, n);
        if (!utf8) return false;
        json_decref(utf8);
        break;
    }
    return channel_get(ch)->address_valid(s);
}

/* Opened contact data pt ("<address>\0" for each channel, then the
 * attributes' JSON object or nothing) read into c's addresses and
 * attributes, with the checks profile_parse applies to those members,
 * without building a profile's text to parse it again. false with why
 * set when pt does not hold that (c then holds what was read so far). */
static bool contact_read(const char *pt, size_t n, bool text, struct profile *c, char *why, size_t whylen)
{
    const char *q = pt, *end = pt + n;
    for (int ch = 0; ch < HERALD_CH_COUNT; ch++) {
        const char *nul = memchr(q, '\0', (size_t)(end - q));
        if (!nul || !plain_json(q, (size_t)(nul - q))) {
            herald_copy(why, whylen, "@: the decrypted data has the wrong shape");
            return false;
        }
        size_t len = (size_t)(nul - q);
        if (len && !contact_address_ok(ch, c->address[ch] = xstrndup(q, len), len)) {
            herald_copy(why, whylen, "@: the decrypted data is not a valid address or attributes");
            return false;
        }
        q = nul + 1;
    }
    if (q == end) return true;
    if (*q != '{' || memchr(q, '\0', (size_t)(end - q))) {
        herald_copy(why, whylen, "@: the decrypted data has the wrong shape");
        return false;
    }
    if (text && profile_attributes_plain(q, (size_t)(end - q))) {
        /* Only rendered from: kept as text, read in place (no tree). */
        c->attributes_text = xstrndup(q, (size_t)(end - q));
        c->attributes_text_len = (size_t)(end - q);
        return true;
    }
    char perr[160];
    if (profile_attributes_parse(q, (size_t)(end - q), &c->attributes, perr, sizeof(perr)) < 0) {
        herald_copy(why, whylen, "@: the decrypted data is not a valid address or attributes");
        return false;
    }
    return true;
}

/* Opens the envelope (env, n) of person id and reads it into c (zeroed
 * first): false with why set, and c empty, when it does not open or does
 * not hold contact data. text: the attributes may come as their text
 * (contact_read). The plaintext is wiped. */
static bool open_contact(const struct seal_keys *keys, const char *id, const char *env, size_t n, bool text,
                         struct profile *c, char *why, size_t whylen)
{
    static const struct seal_keys none = {0};
    memset(c, 0, sizeof(*c));
    struct strbuf pt;
    strbuf_init(&pt);
    bool ok = seal_open(keys ? keys : &none, id, STORE_SEALED_AD, env, n, &pt, why, whylen) == 0 &&
              contact_read(pt.buf, pt.len, text, c, why, whylen);
    if (pt.len) OPENSSL_cleanse(pt.buf, pt.len);
    strbuf_free(&pt);
    if (!ok) {
        profile_free(c);
        memset(c, 0, sizeof(*c));
    }
    return ok;
}

/* c's addresses and attributes replace p's; c keeps none of them. */
static void contact_take(struct profile *p, struct profile *c)
{
    for (int ch = 0; ch < HERALD_CH_COUNT; ch++) {
        free(p->address[ch]);
        p->address[ch] = c->address[ch];
        c->address[ch] = NULL;
    }
    json_decref(p->attributes);
    p->attributes = c->attributes;
    c->attributes = NULL;
    free(p->attributes_text);
    p->attributes_text = c->attributes_text;
    p->attributes_text_len = c->attributes_text_len;
    c->attributes_text = NULL;
}

/* store_person_open; decrypt false: the sealed data stays closed and the
 * profile is read without it (not undecryptable). */
static int open_person(const struct seal_keys *keys, const char *id, const redisReply *profile,
                       const redisReply *const *sealed, bool decrypt, struct profile *p, char *err, size_t errlen)
{
    memset(p, 0, sizeof(*p));
    if (!present(profile)) return 0;
    /* The clear form holds its id ("id":" can be nothing else in it: no
     * other string member may hold a quote); the sealed form does not. */
    bool sealed_data = sealed && present(sealed[0]);
    if (profile->len < 2 || profile->str[0] != '{' || !herald_id_valid(id) ||
        (!sealed_data && memmem(profile->str, profile->len, "\"id\":\"", 6))) {
        int rc = profile_parse(profile->str, profile->len, p, err, errlen);
        return rc < 0 ? rc : 1;
    }
    /* The profile without its contact data, then that data opened into it
     * (or left out, and said, when it does not open). */
    struct strbuf whole;
    strbuf_init(&whole);
    int rc = whole_profile(&whole, id, profile->str, profile->len, sealed ? sealed[STORE_SEALED_TZ] : NULL,
                           sealed_data)
                 ? profile_parse(whole.buf, whole.len, p, err, errlen)
                 : herald_fail(err, errlen, "profile: unreadable");
    strbuf_free(&whole);
    if (rc < 0) return rc;
    if (!sealed_data) return 1;
    char why[192] = "";
    bool opened = false;
    if (decrypt) {
        struct strbuf env;
        strbuf_init(&env);
        for (size_t k = 0; k < STORE_SEALED_PIECES && present(sealed[k]); k++)
            strbuf_add(&env, sealed[k]->str, sealed[k]->len);
        struct profile c;
        opened = open_contact(keys, id, env.buf, env.len, false, &c, why, sizeof(why));
        if (opened) contact_take(p, &c);
        strbuf_free(&env);
    }
    if (!opened && why[0]) {
        herald_seterr(err, errlen, "undecryptable %s", why);
        p->undecryptable = true;
    }
    return 1;
}

int store_person_open(const struct seal_keys *keys, const char *id, const redisReply *profile,
                      const redisReply *const *sealed, struct profile *p, char *err, size_t errlen)
{
    return open_person(keys, id, profile, sealed, true, p, err, errlen);
}

int store_person_read(const struct seal_keys *keys, const unsigned char index_key[ADDRINDEX_KEY_LEN],
                      const char *id, const redisReply *profile, const redisReply *const *sealed, bool closed,
                      struct profile *p, struct strbuf *envelope, char *err, size_t errlen)
{
    strbuf_reset(envelope);
    bool env = sealed && present(sealed[0]);
    struct profile idx = {0};
    bool indexed = env && index_parse(sealed[STORE_SEALED_INDEX], &idx);
    int rc = open_person(keys, id, profile, sealed, env && !indexed && !closed, p, err, errlen);
    if (rc != 1) return rc;
    if (indexed) {
        p->indexed = idx.indexed;
        memcpy(p->member, idx.member, sizeof(p->member));
        for (size_t k = 0; k < STORE_SEALED_PIECES && present(sealed[k]); k++)
            strbuf_add(envelope, sealed[k]->str, sealed[k]->len);
        return 1;
    }
    /* In clear, or sealed before "#": the members of what was read. */
    for (int ch = 0; ch < HERALD_CH_COUNT; ch++) {
        if (!p->address[ch]) continue;
        addrindex_member(index_key, ch, p->address[ch], p->member[ch]);
        p->indexed |= 1u << ch;
    }
    return 1;
}

static int unseal(const struct seal_keys *keys, const char *id, const char *env, size_t n, bool text,
                  struct profile *p, char *err, size_t errlen)
{
    char why[192] = "";
    struct profile c;
    bool ok = open_contact(keys, id, env, n, text, &c, why, sizeof(why));
    for (int ch = 0; ok && ch < HERALD_CH_COUNT; ch++) {
        if (!c.address[ch] != !(p->indexed >> ch & 1u)) {
            ok = false;
            herald_copy(why, sizeof(why), "@: the decrypted data holds other addresses than # says");
        }
    }
    if (ok) {
        contact_take(p, &c);
    } else {
        herald_seterr(err, errlen, "undecryptable %s", why);
        p->undecryptable = true;
    }
    profile_free(&c);
    return ok ? 0 : -HERALD_EINVAL;
}

int store_person_unseal(const struct seal_keys *keys, const char *id, const char *env, size_t n,
                        struct profile *p, char *err, size_t errlen)
{
    return unseal(keys, id, env, n, false, p, err, errlen);
}

int store_person_unseal_to_render(const struct seal_keys *keys, const char *id, const char *env, size_t n,
                                  struct profile *p, char *err, size_t errlen)
{
    return unseal(keys, id, env, n, true, p, err, errlen);
}

size_t store_person_key_id(const redisReply *sealed, char id[SEAL_ID_MAX + 1])
{
    id[0] = '\0';
    return present(sealed) ? seal_key_id(sealed->str, sealed->len, id) : 0;
}
