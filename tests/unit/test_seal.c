/*
 * test_seal.c - the envelope of contact data at rest (seal.c) and a
 * person's stored form (store_person.c): what seals opens, under any key of
 * the ring, for the same person and field only; every altered, truncated,
 * moved or foreign envelope is refused with a reason that names the field
 * and the key id and never the data; the "#" field beside the envelope
 * gives the address checks what they need without opening it.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "seal.h"
#include "store_person.h"

#define K1 "k1 000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f\n"
#define K2 "k2 ffeeddccbbaa99887766554433221100ffeeddccbbaa99887766554433221100\n"
/* An index key ([privacy] index_key_file) for the "#" field's members. */
static const unsigned char IKEY[ADDRINDEX_KEY_LEN] = {9, 8, 7, 6, 5, 4, 3, 2, 1};

static void ring(struct seal_keys *k, const char *text)
{
    char err[256];
    assert_int_equal(seal_keys_parse(text, strlen(text), "keys", k, err, sizeof(err)), 0);
}

static void expect_refused(const struct seal_keys *k, const char *person, const char *field, const char *env,
                           size_t n, const char *why)
{
    struct strbuf out;
    strbuf_init(&out);
    char err[256] = "";
    assert_int_equal(seal_open(k, person, field, env, n, &out, err, sizeof(err)), -HERALD_EINVAL);
    assert_int_equal(out.len, 0);
    if (!strstr(err, why)) {
        fprintf(stderr, "expected \"%s\" in \"%s\"\n", why, err);
        fail();
    }
    assert_null(strstr(err, "ada@example.com"));
    strbuf_free(&out);
}

static void test_round_trip(void **state)
{
    (void)state;
    struct seal_keys k;
    ring(&k, K1);
    struct strbuf env, out;
    strbuf_init(&env);
    strbuf_init(&out);
    const char *addr = "ada@example.com";
    seal_close(&k, "p1", "@email", addr, strlen(addr), &env);
    assert_int_equal(env.len, SEAL_OVERHEAD(2) + strlen(addr));
    assert_null(memmem(env.buf, env.len, addr, strlen(addr)));
    char id[SEAL_ID_MAX + 1];
    assert_int_equal(seal_key_id(env.buf, env.len, id), 2);
    assert_string_equal(id, "k1");
    char err[256];
    assert_int_equal(seal_open(&k, "p1", "@email", env.buf, env.len, &out, err, sizeof(err)), 0);
    assert_string_equal(out.buf, addr);
    /* A fresh nonce each time: the same address never seals the same. */
    struct strbuf again;
    strbuf_init(&again);
    seal_close(&k, "p1", "@email", addr, strlen(addr), &again);
    assert_int_equal(again.len, env.len);
    assert_memory_not_equal(again.buf, env.buf, env.len);
    /* Empty plaintext seals and opens too. */
    strbuf_reset(&again);
    seal_close(&k, "p1", "@a", "", 0, &again);
    assert_int_equal(seal_open(&k, "p1", "@a", again.buf, again.len, &out, err, sizeof(err)), 0);
    assert_int_equal(out.len, 0);
    strbuf_free(&again);
    strbuf_free(&env);
    strbuf_free(&out);
    seal_keys_free(&k);
}

static void test_tamper(void **state)
{
    (void)state;
    struct seal_keys k;
    ring(&k, K1);
    struct strbuf env;
    strbuf_init(&env);
    seal_close(&k, "p1", "@email", "ada@example.com", 15, &env);
    /* Every byte after the key id, flipped alone: nonce, ciphertext, tag. */
    for (size_t i = 4; i < env.len; i++) {
        env.buf[i] ^= 0x01;
        expect_refused(&k, "p1", "@email", env.buf, env.len, "does not decrypt under key 'k1'");
        env.buf[i] ^= 0x01;
    }
    env.buf[0] = 2;
    expect_refused(&k, "p1", "@email", env.buf, env.len, "not an envelope herald wrote");
    strbuf_free(&env);
    seal_keys_free(&k);
}

static void test_wrong_key(void **state)
{
    (void)state;
    struct seal_keys k1, k2, both;
    ring(&k1, K1);
    ring(&k2, K2);
    ring(&both, K2 K1); /* k2 seals, k1 still opens */
    struct strbuf env, out;
    strbuf_init(&env);
    strbuf_init(&out);
    seal_close(&k1, "p1", "@phone", "+46701234567", 12, &env);
    expect_refused(&k2, "p1", "@phone", env.buf, env.len,
                   "sealed under key 'k1', which [privacy] key_file does not hold");
    char err[256];
    assert_int_equal(seal_open(&both, "p1", "@phone", env.buf, env.len, &out, err, sizeof(err)), 0);
    assert_string_equal(out.buf, "+46701234567");
    /* The id names a key k2 holds under another name: the tag fails. */
    env.buf[3] = '2';
    expect_refused(&both, "p1", "@phone", env.buf, env.len, "does not decrypt under key 'k2'");
    strbuf_reset(&env);
    seal_close(&both, "p1", "@phone", "+46701234567", 12, &env);
    char id[SEAL_ID_MAX + 1];
    seal_key_id(env.buf, env.len, id);
    assert_string_equal(id, "k2");
    strbuf_free(&env);
    strbuf_free(&out);
    seal_keys_free(&k1);
    seal_keys_free(&k2);
    seal_keys_free(&both);
}

static void test_wrong_binding(void **state)
{
    (void)state;
    struct seal_keys k;
    ring(&k, K1);
    struct strbuf env;
    strbuf_init(&env);
    seal_close(&k, "p1", "@email", "ada@example.com", 15, &env);
    expect_refused(&k, "p2", "@email", env.buf, env.len, "copied from another person or field");
    expect_refused(&k, "p1", "@phone", env.buf, env.len, "copied from another person or field");
    /* "p1" + "\0" + "2@email" is not "p12" + "\0" + "@email". */
    expect_refused(&k, "p12", "@email", env.buf, env.len, "does not decrypt");
    strbuf_free(&env);
    seal_keys_free(&k);
}

static void test_truncated(void **state)
{
    (void)state;
    struct seal_keys k;
    ring(&k, K1);
    struct strbuf env;
    strbuf_init(&env);
    seal_close(&k, "p1", "@email", "ada@example.com", 15, &env);
    for (size_t n = 0; n < env.len; n++)
        expect_refused(&k, "p1", "@email", env.buf, n, n < SEAL_OVERHEAD(2) && n >= 2 ? "truncated" : "");
    strbuf_free(&env);
    seal_keys_free(&k);
}

static void test_key_file_text(void **state)
{
    (void)state;
    struct seal_keys k;
    char err[256];
    const char *bad[] = {"k1 00\n",
                         "toolongid9 "
                         "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f\n",
                         "k1\n",
                         "k/1 000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f\n",
                         "",
                         "# only\n",
                         K1 K1};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_int_equal(seal_keys_parse(bad[i], strlen(bad[i]), "keys", &k, err, sizeof(err)),
                         -HERALD_EINVAL);
        assert_int_equal(k.n, 0);
        assert_non_null(strstr(err, "keys"));
        assert_null(strstr(err, "0001020304")); /* never the key */
    }
    const char *ok = "  # comment\r\n\r\n" K2 "\t" K1;
    assert_int_equal(seal_keys_parse(ok, strlen(ok), "keys", &k, err, sizeof(err)), 0);
    assert_int_equal(k.n, 2);
    assert_string_equal(k.v[0].id, "k2");
    assert_non_null(seal_keys_find(&k, "k1", 2));
    assert_null(seal_keys_find(&k, "k3", 2));
    seal_keys_free(&k);
}

/* ---- store_person: the stored form ---------------------------------- */

static redisReply *str_reply(const char *s, size_t n)
{
    redisReply *r = calloc(1, sizeof(*r));
    r->type = REDIS_REPLY_STRING;
    r->str = malloc(n + 1);
    memcpy(r->str, s, n);
    r->str[n] = '\0';
    r->len = n;
    return r;
}

static void free_reply(redisReply *r)
{
    if (!r) return;
    free(r->str);
    free(r);
}

static void person(struct profile *p)
{
    const char *text =
        "{\"id\":\"p1\",\"email\":\"ada@example.com\",\"phone\":\"+46701234567\",\"tz\":\"Europe/Stockholm\","
        "\"attributes\":{\"first_name\":\"Ada\",\"last_name\":\"Lovelace\",\"city\":\"Gothenburg\","
        "\"plan\":\"gold\",\"age\":41,\"note\":\"a long value that makes the attributes run over two "
        "pieces of sixty-four bytes\"}}";
    char err[256];
    assert_int_equal(profile_parse(text, strlen(text), p, err, sizeof(err)), 0);
}

/* The stored form as HMGET would answer it: profile, then the sealed fields. */
static void stored(const struct store_person_form *f, redisReply **prof,
                   redisReply *sealed[STORE_SEALED_NFIELDS])
{
    *prof = str_reply(f->profile.buf, f->profile.len);
    for (size_t i = 0; i < STORE_SEALED_NFIELDS; i++)
        sealed[i] = f->set[i] ? str_reply(f->sealed[i].buf, f->sealed[i].len) : NULL;
}

/* The key ring K1, the person above, and its stored form. */
static void sealed_person(struct seal_keys *k, struct profile *p, struct store_person_form *f)
{
    ring(k, K1);
    person(p);
    store_person_form_init(f);
    store_person_seal(k, IKEY, p, f);
}

static void test_person_form(void **state)
{
    (void)state;
    struct seal_keys k;
    struct profile p, back;
    struct store_person_form f;
    sealed_person(&k, &p, &f);
    /* Nothing of the contact data in clear; every value a compact size. */
    assert_null(strstr(f.profile.buf, "ada@"));
    assert_null(strstr(f.profile.buf, "Lovelace"));
    /* In clear beside it: the time zone; the id is the key's. */
    assert_null(strstr(f.profile.buf, "\"id\""));
    assert_true(f.set[STORE_SEALED_TZ]);
    assert_string_equal(f.sealed[STORE_SEALED_TZ].buf, "Europe/Stockholm");
    assert_true(f.profile.len <= STORE_SEALED_PIECE);
    /* One envelope, in pieces of at most 64 bytes. */
    assert_true(f.set[0] && f.set[1] && f.set[2] && f.set[3]);
    for (size_t i = 0; i < STORE_SEALED_NFIELDS; i++) {
        assert_true(f.sealed[i].len <= STORE_SEALED_PIECE);
        assert_null(memmem(f.sealed[i].buf, f.sealed[i].len, "Ada", 3));
    }
    redisReply *prof, *sealed[STORE_SEALED_NFIELDS];
    stored(&f, &prof, sealed);
    char err[256] = "";
    assert_int_equal(
        store_person_open(&k, "p1", prof, (const redisReply *const *)sealed, &back, err, sizeof(err)), 1);
    assert_false(back.undecryptable);
    assert_string_equal(back.address[HERALD_CH_EMAIL], "ada@example.com");
    assert_string_equal(back.address[HERALD_CH_SMS], "+46701234567");
    assert_true(json_equal(back.attributes, p.attributes));
    assert_string_equal(back.id, "p1");
    assert_string_equal(back.tz, "Europe/Stockholm");
    profile_free(&back);

    /* Another person's envelope in this person's fields: refused, no
     * contact data at all, and the reason says so. */
    assert_int_equal(
        store_person_open(&k, "p2", prof, (const redisReply *const *)sealed, &back, err, sizeof(err)), 1);
    assert_true(back.undecryptable);
    assert_null(back.address[HERALD_CH_EMAIL]);
    assert_null(back.address[HERALD_CH_SMS]);
    assert_null(back.attributes);
    assert_non_null(strstr(err, "undecryptable @: does not decrypt"));
    assert_null(strstr(err, "ada@"));
    profile_free(&back);

    /* No keys at all: the sealed data does not open either. */
    assert_int_equal(
        store_person_open(NULL, "p1", prof, (const redisReply *const *)sealed, &back, err, sizeof(err)), 1);
    assert_true(back.undecryptable);
    assert_non_null(strstr(err, "key_file does not hold"));
    profile_free(&back);
    /* A missing piece: refused, never half read. */
    free_reply(sealed[1]);
    sealed[1] = NULL;
    assert_int_equal(
        store_person_open(&k, "p1", prof, (const redisReply *const *)sealed, &back, err, sizeof(err)), 1);
    assert_true(back.undecryptable);
    assert_null(back.address[HERALD_CH_EMAIL]);
    profile_free(&back);
    free_reply(prof);
    for (size_t i = 0; i < STORE_SEALED_NFIELDS; i++)
        free_reply(sealed[i]);

    /* A profile in clear written beside sealed data (a preference change
     * while the key was missing): the sealed data wins, or, when it does
     * not open, no contact data at all, never the clear copy. */
    store_person_seal(&k, IKEY, &p, &f);
    stored(&f, &prof, sealed);
    free_reply(prof);
    const char *stale = "{\"email\":\"stale@example.com\",\"id\":\"p1\",\"locale\":\"sv\",\"tz\":\"UTC\"}";
    prof = str_reply(stale, strlen(stale));
    assert_int_equal(
        store_person_open(&k, "p1", prof, (const redisReply *const *)sealed, &back, err, sizeof(err)), 1);
    assert_false(back.undecryptable);
    assert_string_equal(back.address[HERALD_CH_EMAIL], "ada@example.com");
    assert_string_equal(back.locale, "sv");
    assert_string_equal(back.tz, "Europe/Stockholm");
    profile_free(&back);
    assert_int_equal(
        store_person_open(NULL, "p1", prof, (const redisReply *const *)sealed, &back, err, sizeof(err)), 1);
    assert_true(back.undecryptable);
    assert_null(back.address[HERALD_CH_EMAIL]);
    profile_free(&back);
    free_reply(prof);
    for (size_t i = 0; i < STORE_SEALED_NFIELDS; i++)
        free_reply(sealed[i]);

    /* A person with no address and no attribute: nothing sealed. */
    struct profile bare;
    const char *bt = "{\"id\":\"p3\",\"locale\":\"de\"}";
    assert_int_equal(profile_parse(bt, strlen(bt), &bare, err, sizeof(err)), 0);
    store_person_seal(&k, IKEY, &bare, &f);
    for (size_t i = 0; i < STORE_SEALED_NFIELDS; i++)
        assert_false(f.set[i]);
    assert_string_equal(f.profile.buf, "{\"locale\":\"de\"}");
    stored(&f, &prof, sealed);
    assert_int_equal(
        store_person_open(&k, "p3", prof, (const redisReply *const *)sealed, &back, err, sizeof(err)), 1);
    assert_string_equal(back.locale, "de");
    assert_string_equal(back.id, "p3");
    profile_free(&back);
    profile_free(&bare);
    free_reply(prof);

    /* Without keys: today's clear form, every sealed field deleted. */
    store_person_seal(NULL, IKEY, &p, &f);
    assert_non_null(strstr(f.profile.buf, "ada@example.com"));
    for (size_t i = 0; i < STORE_SEALED_NFIELDS; i++)
        assert_false(f.set[i]);
    stored(&f, &prof, sealed);
    assert_int_equal(
        store_person_open(&k, "p1", prof, (const redisReply *const *)sealed, &back, err, sizeof(err)), 1);
    assert_false(back.undecryptable);
    assert_string_equal(back.address[HERALD_CH_EMAIL], "ada@example.com");
    profile_free(&back);
    free_reply(prof);
    assert_int_equal(store_person_open(&k, "p1", NULL, NULL, &back, err, sizeof(err)), 0);

    store_person_form_free(&f);
    profile_free(&p);
    seal_keys_free(&k);
}

/* The "#" field: what the address checks read without the envelope. */
static void assert_member(const struct profile *p, int ch, const char *address)
{
    unsigned char m[ADDRINDEX_LEN];
    addrindex_member(IKEY, ch, address, m);
    assert_true(p->indexed >> ch & 1u);
    assert_memory_equal(p->member[ch], m, ADDRINDEX_LEN);
}

static void test_person_index(void **state)
{
    (void)state;
    struct seal_keys k;
    struct profile p, back;
    struct store_person_form f;
    sealed_person(&k, &p, &f);
    /* One byte of flags, a member per address: 33 bytes, compact. */
    const struct strbuf *ix = &f.sealed[STORE_SEALED_INDEX];
    assert_true(f.set[STORE_SEALED_INDEX]);
    assert_string_equal(store_sealed_field(STORE_SEALED_INDEX), "#");
    assert_int_equal(ix->len, 1 + 2 * ADDRINDEX_LEN);
    assert_int_equal((unsigned char)ix->buf[0], 1u << HERALD_CH_EMAIL | 1u << HERALD_CH_SMS);
    assert_null(memmem(ix->buf, ix->len, "ada", 3));
    redisReply *prof, *sealed[STORE_SEALED_NFIELDS];
    stored(&f, &prof, sealed);
    struct strbuf env;
    strbuf_init(&env);
    char err[256] = "";

    /* The checks' read: nothing decrypted, the flags and members there. */
    assert_int_equal(store_person_read(&k, IKEY, "p1", prof, (const redisReply *const *)sealed, false, &back, &env,
                                       err, sizeof(err)),
                     1);
    assert_false(back.undecryptable);
    assert_null(back.address[HERALD_CH_EMAIL]);
    assert_null(back.address[HERALD_CH_SMS]);
    assert_null(back.attributes);
    assert_string_equal(back.tz, "Europe/Stockholm");
    assert_member(&back, HERALD_CH_EMAIL, "ada@example.com");
    assert_member(&back, HERALD_CH_SMS, "+46701234567");
    assert_true(profile_address_usable(&back, HERALD_CH_EMAIL));
    assert_true(profile_has_address(&back, HERALD_CH_SMS));
    assert_true(env.len > 0);
    /* Opened to render: the addresses and attributes come in. */
    assert_int_equal(store_person_unseal(&k, "p1", env.buf, env.len, &back, err, sizeof(err)), 0);
    assert_string_equal(back.address[HERALD_CH_EMAIL], "ada@example.com");
    assert_string_equal(back.address[HERALD_CH_SMS], "+46701234567");
    assert_true(json_equal(back.attributes, p.attributes));
    profile_free(&back);

    /* A corrupted envelope: the checks still read (no decryption there),
     * the opening refuses it, never half read. */
    free_reply(sealed[1]);
    sealed[1] = str_reply("xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx", 64);
    assert_int_equal(store_person_read(&k, IKEY, "p1", prof, (const redisReply *const *)sealed, false, &back, &env,
                                       err, sizeof(err)),
                     1);
    assert_false(back.undecryptable);
    assert_member(&back, HERALD_CH_EMAIL, "ada@example.com");
    assert_int_equal(store_person_unseal(&k, "p1", env.buf, env.len, &back, err, sizeof(err)), -HERALD_EINVAL);
    assert_true(back.undecryptable);
    assert_null(back.address[HERALD_CH_EMAIL]);
    assert_null(back.attributes);
    assert_non_null(strstr(err, "undecryptable @"));
    profile_free(&back);
    free_reply(prof);
    for (size_t i = 0; i < STORE_SEALED_NFIELDS; i++) free_reply(sealed[i]);

    /* Another person's envelope, or flags that disagree with it: refused. */
    stored(&f, &prof, sealed);
    assert_int_equal(store_person_read(&k, IKEY, "p1", prof, (const redisReply *const *)sealed, false, &back, &env,
                                       err, sizeof(err)),
                     1);
    assert_int_equal(store_person_unseal(&k, "p2", env.buf, env.len, &back, err, sizeof(err)), -HERALD_EINVAL);
    assert_non_null(strstr(err, "does not decrypt"));
    profile_free(&back);
    assert_int_equal(store_person_read(&k, IKEY, "p1", prof, (const redisReply *const *)sealed, false, &back, &env,
                                       err, sizeof(err)),
                     1);
    back.indexed = 1u << HERALD_CH_EMAIL;
    assert_int_equal(store_person_unseal(&k, "p1", env.buf, env.len, &back, err, sizeof(err)), -HERALD_EINVAL);
    assert_non_null(strstr(err, "other addresses than #"));
    assert_null(back.address[HERALD_CH_EMAIL]);
    profile_free(&back);

    /* Without "#" (a person stored before it), or with a value that is
     * none of its forms: opened as before, the members computed. */
    for (int form = 0; form < 2; form++) {
        free_reply(sealed[STORE_SEALED_INDEX]);
        sealed[STORE_SEALED_INDEX] = form ? str_reply("\x03short", 6) : NULL;
        assert_int_equal(store_person_read(&k, IKEY, "p1", prof, (const redisReply *const *)sealed, false, &back,
                                           &env, err, sizeof(err)),
                         1);
        assert_int_equal(env.len, 0);
        assert_string_equal(back.address[HERALD_CH_EMAIL], "ada@example.com");
        assert_member(&back, HERALD_CH_EMAIL, "ada@example.com");
        assert_member(&back, HERALD_CH_SMS, "+46701234567");
        profile_free(&back);
    }
    /* ... unless nobody needs it (closed): then nothing is opened. */
    assert_int_equal(store_person_read(&k, IKEY, "p1", prof, (const redisReply *const *)sealed, true, &back, &env,
                                       err, sizeof(err)),
                     1);
    assert_null(back.address[HERALD_CH_EMAIL]);
    assert_int_equal(back.indexed, 0);
    assert_false(back.undecryptable);
    profile_free(&back);
    free_reply(prof);
    for (size_t i = 0; i < STORE_SEALED_NFIELDS; i++) free_reply(sealed[i]);

    /* An address on one channel and attributes: one member; attributes
     * only: the flags alone, and the envelope still left for the render. */
    const char *texts[] = {"{\"id\":\"p4\",\"email\":\"bo@example.com\"}",
                           "{\"id\":\"p4\",\"attributes\":{\"plan\":\"gold\"}}"};
    for (int t = 0; t < 2; t++) {
        struct profile q;
        assert_int_equal(profile_parse(texts[t], strlen(texts[t]), &q, err, sizeof(err)), 0);
        store_person_seal(&k, IKEY, &q, &f);
        assert_int_equal(f.sealed[STORE_SEALED_INDEX].len, t ? 1 : 1 + ADDRINDEX_LEN);
        stored(&f, &prof, sealed);
        assert_int_equal(store_person_read(&k, IKEY, "p4", prof, (const redisReply *const *)sealed, false, &back,
                                           &env, err, sizeof(err)),
                         1);
        assert_int_equal(back.indexed, t ? 0 : 1u << HERALD_CH_EMAIL);
        assert_false(profile_has_address(&back, HERALD_CH_SMS));
        assert_int_equal(store_person_unseal(&k, "p4", env.buf, env.len, &back, err, sizeof(err)), 0);
        if (t) assert_true(json_equal(back.attributes, q.attributes));
        else assert_string_equal(back.address[HERALD_CH_EMAIL], "bo@example.com");
        profile_free(&back);
        profile_free(&q);
        free_reply(prof);
        for (size_t i = 0; i < STORE_SEALED_NFIELDS; i++) free_reply(sealed[i]);
    }

    /* In clear: no "#" stored; the members come from the clear addresses. */
    store_person_seal(NULL, IKEY, &p, &f);
    assert_false(f.set[STORE_SEALED_INDEX]);
    stored(&f, &prof, sealed);
    assert_int_equal(store_person_read(&k, IKEY, "p1", prof, (const redisReply *const *)sealed, false, &back, &env,
                                       err, sizeof(err)),
                     1);
    assert_int_equal(env.len, 0);
    assert_string_equal(back.address[HERALD_CH_EMAIL], "ada@example.com");
    assert_member(&back, HERALD_CH_EMAIL, "ada@example.com");
    profile_free(&back);
    free_reply(prof);

    strbuf_free(&env);
    store_person_form_free(&f);
    profile_free(&p);
    seal_keys_free(&k);
}

/* The contact data read straight from the opened envelope (no profile
 * text built to be parsed again): every plaintext the whole profile's
 * parse refused is refused, every one it read is read the same. */
static void test_person_contact(void **state)
{
    (void)state;
    struct seal_keys k;
    ring(&k, K1);
    struct strbuf env;
    strbuf_init(&env);
    char err[256];
#define PT(s) s, sizeof(s) - 1
    static const struct {
        const char *pt;
        size_t n;
        const char *why; /* NULL: opens */
        unsigned indexed;
    } cases[] = {
        {PT("ada@example.com\0+46701234567\0{\"plan\":\"gold\",\"n\":3}"), NULL, 3},
        /* Unsorted, escaped or non-ASCII keys: read through jansson. */
        {PT("ada@example.com\0\0{\"z\":1,\"a\":\"\\u00e9\",\"\xc3\xa9\":true}"), NULL, 1},
        {PT("j\xc3\xb6@example.com\0\0"), NULL, 1},
        {PT("\0+46701234567\0"), NULL, 2},
        {PT("ada@example.com"), "wrong shape", 1},
        {PT("ada@example.com\0+46701234567\0[1]"), "wrong shape", 3},
        {PT("ada@exa\"mple.com\0\0"), "wrong shape", 1},
        {PT("ada@example.com\0\0{\"a\":1}\0"), "wrong shape", 1},
        {PT("not-an-address\0\0"), "not a valid address", 1},
        {PT("ada@example.com\0+0701234567\0"), "not a valid address", 3},
        {PT("j\xc3@example.com\0\0"), "not a valid address", 1},
        {PT("ada@example.com\0\0{\"a\":{\"b\":1}}"), "not a valid address", 1},
        {PT("ada@example.com\0\0{\"a\":1,\"a\":2}"), "not a valid address", 1},
        {PT("ada@example.com\0\0{\"a\":1"), "not a valid address", 1},
        {PT("ada@example.com\0+46701234567\0"), "other addresses than #", 1},
    };
#undef PT
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        strbuf_reset(&env);
        seal_close(&k, "p1", STORE_SEALED_AD, cases[i].pt, cases[i].n, &env);
        struct profile p = {.indexed = cases[i].indexed};
        err[0] = '\0';
        int rc = store_person_unseal(&k, "p1", env.buf, env.len, &p, err, sizeof(err));
        if (cases[i].why) {
            assert_int_equal(rc, -HERALD_EINVAL);
            assert_true(p.undecryptable);
            assert_null(p.address[HERALD_CH_EMAIL]);
            assert_null(p.address[HERALD_CH_SMS]);
            assert_null(p.attributes);
            if (!strstr(err, cases[i].why)) {
                fprintf(stderr, "case %zu: expected \"%s\" in \"%s\"\n", i, cases[i].why, err);
                fail();
            }
            assert_null(strstr(err, "example"));
        } else {
            assert_int_equal(rc, 0);
            assert_false(p.undecryptable);
            const char *nul = memchr(cases[i].pt, '\0', cases[i].n);
            if (nul > cases[i].pt) assert_string_equal(p.address[HERALD_CH_EMAIL], cases[i].pt);
            else assert_null(p.address[HERALD_CH_EMAIL]);
            if (cases[i].indexed & 2) assert_string_equal(p.address[HERALD_CH_SMS], "+46701234567");
        }
        if (i == 0) {
            assert_int_equal(json_object_size(p.attributes), 2);
            assert_int_equal(json_integer_value(json_object_get(p.attributes, "n")), 3);
        }
        if (i == 1) {
            assert_string_equal(json_string_value(json_object_get(p.attributes, "a")), "\xc3\xa9");
            assert_true(json_is_true(json_object_get(p.attributes, "\xc3\xa9")));
        }
        /* store_person_open reads the same envelope the same way. */
        redisReply *prof = str_reply("{}", 2), *sealed[STORE_SEALED_NFIELDS] = {0};
        sealed[0] = str_reply(env.buf, env.len);
        struct profile o;
        assert_int_equal(
            store_person_open(&k, "p1", prof, (const redisReply *const *)sealed, &o, err, sizeof(err)), 1);
        assert_string_equal(o.id, "p1");
        if (cases[i].why && !strstr(cases[i].why, "other")) {
            assert_true(o.undecryptable);
            assert_non_null(strstr(err, cases[i].why));
        } else if (!cases[i].why) {
            assert_false(o.undecryptable);
            assert_true((p.address[HERALD_CH_EMAIL] == NULL) == (o.address[HERALD_CH_EMAIL] == NULL));
            assert_true(json_equal(p.attributes, o.attributes) || (!p.attributes && !o.attributes));
        }
        profile_free(&o);
        profile_free(&p);
        free_reply(prof);
        free_reply(sealed[0]);
    }
    strbuf_free(&env);
    seal_keys_free(&k);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip),  cmocka_unit_test(test_tamper),
        cmocka_unit_test(test_wrong_key),   cmocka_unit_test(test_wrong_binding),
        cmocka_unit_test(test_truncated),   cmocka_unit_test(test_key_file_text),
        cmocka_unit_test(test_person_form), cmocka_unit_test(test_person_index),
        cmocka_unit_test(test_person_contact),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
