/*
 * test_channel.c - the channel descriptors are the one place a channel is
 * described, and the modules use them: every descriptor's names, the
 * profile reading and writing each address under its field with its
 * syntax (both parsers), suppression members hashing the descriptor's
 * normalised form, lookup's field list, and the pages' words.
 *
 * The table below gives each channel an example address; a channel added
 * without one fails here, so its syntax and normalisation get tested.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "channel.h"
#include "digest.h"
#include "pagerender.h"
#include "profile.h"
#include "store.h"

struct example {
    const char *channel;
    const char *valid;      /* passes the channel's syntax */
    const char *invalid;    /* does not */
    const char *messy;      /* valid once normalised ... */
    const char *normalised; /* ... to this */
};

static const struct example examples[] = {
    {"email", "ann@example.com", "ann@@example.com", "  Ann@Example.COM ", "ann@example.com"},
    {"sms", "+15551234567", "+1 555 123 4567", " +15551234567  ", "+15551234567"},
};

static const struct example *example_of(const struct channel_desc *d)
{
    for (size_t i = 0; i < sizeof(examples) / sizeof(examples[0]); i++)
        if (strcmp(examples[i].channel, d->name) == 0) return &examples[i];
    fail_msg("channel %s has no example in test_channel.c", d->name);
    return NULL;
}

static void test_descriptors(void **state)
{
    (void)state;
    assert_null(channel_get(-1));
    assert_null(channel_get(HERALD_CH_COUNT));
    assert_null(channel_by_name(NULL));
    assert_null(channel_by_name("fax"));
    assert_int_equal(channel_from_address_field("tz"), -1);
    assert_int_equal(channel_from_address_field(NULL), -1);
    for (int ch = 0; ch < HERALD_CH_COUNT; ch++) {
        const struct channel_desc *d = channel_get(ch);
        assert_non_null(d);
        assert_int_equal(d->id, ch);
        assert_string_equal(d->name, herald_channel_name(ch));
        assert_ptr_equal(channel_by_name(d->name), d);
        char field[CHANNEL_FIELD_MAX];
        snprintf(field, sizeof(field), "~%s", d->name);
        assert_string_equal(d->consent_field, field);
        assert_int_equal(channel_from_address_field(d->address_field), ch);
        assert_non_null(strstr(d->address_invalid, d->address_field));
        assert_true(d->address_label[0]);
        /* An address field must not shadow another profile key. */
        static const char *const others[] = {"id", "tz", "locale", "attributes", "channels", "topics",
                                             "quiet_hours", "frequency", "consent"};
        for (size_t k = 0; k < sizeof(others) / sizeof(others[0]); k++)
            assert_string_not_equal(d->address_field, others[k]);
        for (int o = 0; o < ch; o++) {
            assert_string_not_equal(d->name, channel_get(o)->name);
            assert_string_not_equal(d->address_field, channel_get(o)->address_field);
        }
    }
}

static void test_address_functions(void **state)
{
    (void)state;
    for (int ch = 0; ch < HERALD_CH_COUNT; ch++) {
        const struct channel_desc *d = channel_get(ch);
        const struct example *e = example_of(d);
        assert_true(d->address_valid(e->valid));
        assert_false(d->address_valid(e->invalid));
        assert_true(channel_address_valid(ch, e->valid));
        assert_false(channel_address_valid(ch, e->invalid));
        assert_false(channel_address_valid(ch, NULL));
        char out[64];
        assert_int_equal(channel_address_normalise(out, sizeof(out), ch, e->messy), strlen(e->normalised));
        assert_string_equal(out, e->normalised);
        assert_true(d->address_valid(out));
        /* The store hashes exactly the channel's normalised form. */
        unsigned char md[DIGEST_SHA256_LEN];
        char hex[2 * DIGEST_SHA256_LEN + 1], want[128];
        digest_sha256(e->normalised, strlen(e->normalised), md);
        digest_hex(hex, md, sizeof(md));
        snprintf(want, sizeof(want), "%s:%s", d->name, hex);
        struct strbuf m;
        strbuf_init(&m);
        store_suppress_member(&m, ch, e->messy);
        assert_string_equal(m.buf, want);
        store_suppress_member(&m, ch, e->normalised);
        assert_string_equal(m.buf, want);
        strbuf_free(&m);
        assert_int_equal(store_address_normalise(out, sizeof(out), ch, e->messy), strlen(e->normalised));
    }
    char out[8];
    assert_int_equal(channel_address_normalise(out, sizeof(out), -1, "  AbC  "), 3);
    assert_string_equal(out, "AbC"); /* no channel: trimmed only */
}

/* Each channel's address is read from its field with its syntax, by both
 * parsers, and written back under the same field. */
static void test_profile_uses_descriptors(void **state)
{
    (void)state;
    for (int ch = 0; ch < HERALD_CH_COUNT; ch++) {
        const struct channel_desc *d = channel_get(ch);
        const struct example *e = example_of(d);
        char json[256], err[256];
        struct profile p;
        /* Keys sorted, as profile_to_json writes them (and the fast parser reads). */
        bool first = strcmp(d->address_field, "id") < 0;
        snprintf(json, sizeof(json), first ? "{\"%s\":\"%s\",\"id\":\"u1\"}" : "{\"id\":\"u1\",\"%s\":\"%s\"}",
                 d->address_field, e->valid);
        for (int full = 0; full < 2; full++) {
            int rc = full ? profile_parse_full(json, strlen(json), &p, err, sizeof(err))
                          : profile_parse(json, strlen(json), &p, err, sizeof(err));
            assert_int_equal(rc, 0);
            assert_string_equal(profile_address(&p, ch), e->valid);
            for (int o = 0; o < HERALD_CH_COUNT; o++)
                if (o != ch) assert_null(profile_address(&p, o));
            char *back = profile_to_json(&p);
            assert_string_equal(back, json);
            free(back);
            profile_free(&p);
        }
        snprintf(json, sizeof(json), "{\"%s\":\"%s\",\"id\":\"u1\"}", d->address_field, e->invalid);
        for (int full = 0; full < 2; full++) {
            err[0] = '\0';
            int rc = full ? profile_parse_full(json, strlen(json), &p, err, sizeof(err))
                          : profile_parse(json, strlen(json), &p, err, sizeof(err));
            assert_int_equal(rc, -HERALD_EINVAL);
            assert_string_equal(err, d->address_invalid);
        }
    }
}

static void test_lookup_fields(void **state)
{
    (void)state;
    assert_int_equal(STORE_LOOKUP_STRIDE, 3 + HERALD_CH_COUNT + STORE_SEALED_NFIELDS);
    assert_string_equal(store_lookup_field(STORE_LOOKUP_PROFILE), "profile");
    for (int ch = 0; ch < HERALD_CH_COUNT; ch++)
        assert_string_equal(store_lookup_field(STORE_LOOKUP_CONSENT + (size_t)ch), channel_get(ch)->consent_field);
    assert_string_equal(store_lookup_field(STORE_LOOKUP_REV), "rev");
    assert_int_equal(STORE_LOOKUP_SEALED, STORE_LOOKUP_REV + 1);
    assert_string_equal(store_lookup_field(STORE_LOOKUP_SEALED), "@0");
    assert_string_equal(store_lookup_field(STORE_LOOKUP_SEALED + STORE_SEALED_TZ), "tz");
    assert_int_equal(STORE_LOOKUP_NFIELDS, STORE_LOOKUP_SEALED + STORE_SEALED_NFIELDS);
    assert_null(store_lookup_field(STORE_LOOKUP_NFIELDS));
    assert_null(store_lookup_field((size_t)-1));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_descriptors),
        cmocka_unit_test(test_address_functions),
        cmocka_unit_test(test_profile_uses_descriptors),
        cmocka_unit_test(test_lookup_fields),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
