/*
 * test_profile.c - profiles and consent records: address syntax, every
 * validation error (and that none of them quotes an address), the stored
 * form round-tripping through profile_parse, consent records in import lines
 * and in the ledger, topics, quiet hours and frequency shapes.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "profile.h"

#define NOW INT64_C(1796115600) /* 2026-12-01T09:00:00Z */

/* Addresses seeded into failing profiles; no error may contain them. */
static const char *const secrets[] = {"ann@", "example.com", "4915", "5551234567", "Ann <"};

static json_t *load(const char *json)
{
    json_error_t jerr;
    json_t *o = json_loads(json, 0, &jerr);
    if (!o) {
        fprintf(stderr, "bad test JSON %s: %s\n", json, jerr.text);
        fail();
    }
    return o;
}

static bool all_zero(const void *p, size_t n)
{
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++)
        if (b[i]) return false;
    return true;
}

static void parse_good(const char *json, struct profile *p)
{
    char err[256] = "";
    if (profile_parse(json, strlen(json), p, err, sizeof(err)) != 0) {
        fprintf(stderr, "expected profile %s to parse, got: %s\n", json, err);
        fail();
    }
}

/* Checks both entry points (text and object) give the same error. */
static void expect_error(const char *json, const char *want)
{
    struct profile p;
    memset(&p, 0xa5, sizeof(p));
    char err[256] = "";
    int rc = profile_parse(json, strlen(json), &p, err, sizeof(err));
    if (rc != -HERALD_EINVAL || strcmp(err, want) != 0) {
        fprintf(stderr, "profile %s\n  got rc=%d \"%s\"\n  want \"%s\"\n", json, rc, err, want);
        fail();
    }
    assert_true(all_zero(&p, sizeof(p)));
    for (size_t i = 0; i < sizeof(secrets) / sizeof(secrets[0]); i++)
        if (strstr(err, secrets[i])) {
            fprintf(stderr, "error \"%s\" quotes \"%s\"\n", err, secrets[i]);
            fail();
        }
}

static void test_email_syntax(void **state)
{
    (void)state;
    static const char *const good[] = {
        "ann@example.com", "a@b.co", "first.last+tag@sub.example.org", "x_y-z@a-b.example",
        "o'hara@example.ie", "caf\xc3\xa9@example.fr",
    };
    static const char *const bad[] = {
        "", "ann", "ann@", "@example.com", "ann@example", "ann@@example.com", "ann@b@example.com",
        "ann @example.com", "ann@exa mple.com", "ann@example.com\n", "ann\r\n@example.com", "ann\t@example.com",
        "<ann@example.com>", "ann@example.com,bob@example.com", "\"ann\"@example.com", "ann;x@example.com",
        "ann@.example.com", "ann@example.com.", "ann@example..com", "ann@[127.0.0.1]", "ann@ex\x7f.com",
        "ann\\x@example.com", "ann:x@example.com", "ann(x)@example.com",
    };
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
        if (!channel_email_valid(good[i])) {
            fprintf(stderr, "expected valid: %s\n", good[i]);
            fail();
        }
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        if (channel_email_valid(bad[i])) {
            fprintf(stderr, "expected invalid: %s\n", bad[i]);
            fail();
        }
    assert_false(channel_email_valid(NULL));

    /* Length limits: local part 64, whole address 254. */
    char buf[300];
    memset(buf, 'a', 64);
    memcpy(buf + 64, "@example.com", 13);
    assert_true(channel_email_valid(buf));
    memset(buf, 'a', 65);
    memcpy(buf + 65, "@example.com", 13);
    assert_false(channel_email_valid(buf));
    memcpy(buf, "a@", 2);
    memset(buf + 2, 'd', 248);
    memcpy(buf + 250, ".com", 5); /* 254 */
    assert_true(channel_email_valid(buf));
    memcpy(buf + 250, ".comx", 6); /* 255 */
    assert_false(channel_email_valid(buf));
}

static void test_phone_syntax(void **state)
{
    (void)state;
    assert_true(channel_phone_valid("+15551234567"));
    assert_true(channel_phone_valid("+12345678"));        /* 8 digits */
    assert_true(channel_phone_valid("+123456789012345")); /* 15 digits */
    assert_false(channel_phone_valid("+1234567"));        /* 7 */
    assert_false(channel_phone_valid("+1234567890123456"));
    assert_false(channel_phone_valid("+05551234567"));
    assert_false(channel_phone_valid("15551234567"));
    assert_false(channel_phone_valid("+1 555 123 4567"));
    assert_false(channel_phone_valid("+1-555-123-4567"));
    assert_false(channel_phone_valid("+15551234567x"));
    assert_false(channel_phone_valid("+"));
    assert_false(channel_phone_valid(""));
    assert_false(channel_phone_valid("++15551234567"));
    assert_false(channel_phone_valid(NULL));
}

static const char *const FULL =
    "{\"id\":\"u1\",\"email\":\"ann@example.com\",\"phone\":\"+15551234567\",\"tz\":\"Europe/Berlin\","
    "\"locale\":\"de\",\"attributes\":{\"first_name\":\"Ann\",\"age\":41,\"score\":0.5,\"vip\":true},"
    "\"channels\":[\"sms\",\"email\"],\"topics\":{\"promotions\":false,\"News\":true},"
    "\"quiet_hours\":\"21:00-08:00\",\"frequency\":{\"email\":\"1/7d\",\"any\":\"3/24h\"}}";

static void test_full_profile(void **state)
{
    (void)state;
    struct profile p;
    parse_good(FULL, &p);
    assert_string_equal(p.id, "u1");
    assert_string_equal(p.address[HERALD_CH_EMAIL], "ann@example.com");
    assert_string_equal(p.address[HERALD_CH_SMS], "+15551234567");
    assert_string_equal(p.tz, "Europe/Berlin");
    assert_string_equal(p.locale, "de");
    assert_string_equal(json_string_value(json_object_get(p.attributes, "first_name")), "Ann");
    assert_int_equal(json_integer_value(json_object_get(p.attributes, "age")), 41);
    assert_true(p.channels_set);
    assert_int_equal(p.nchannels, 2);
    assert_int_equal(p.channels[0], HERALD_CH_SMS);
    assert_int_equal(p.channels[1], HERALD_CH_EMAIL);
    assert_int_equal(p.ntopics, 2);
    assert_int_equal(profile_topic(&p, "promotions"), 0);
    assert_int_equal(profile_topic(&p, "news"), 1); /* stored lower-case, compared without case */
    assert_int_equal(profile_topic(&p, "NEWS"), 1);
    assert_int_equal(profile_topic(&p, "other"), -1);
    assert_int_equal(profile_topic(NULL, "news"), -1);
    assert_string_equal(p.quiet_hours, "21:00-08:00");
    assert_string_equal(json_string_value(json_object_get(p.frequency, "any")), "3/24h");
    assert_string_equal(profile_address(&p, HERALD_CH_EMAIL), "ann@example.com");
    assert_string_equal(profile_address(&p, HERALD_CH_SMS), "+15551234567");
    assert_null(profile_address(&p, -1));
    assert_null(profile_address(&p, HERALD_CH_COUNT));
    assert_null(profile_address(NULL, HERALD_CH_EMAIL));
    /* Consent is the ledger's business, never the profile's. */
    assert_true(all_zero(p.consent, sizeof(p.consent)));
    profile_free(&p);
    assert_true(all_zero(&p, sizeof(p)));
    profile_free(&p);
}

static void test_minimal_profile(void **state)
{
    (void)state;
    struct profile p;
    parse_good("{\"id\":\"u2\"}", &p);
    assert_string_equal(p.id, "u2");
    assert_null(p.address[HERALD_CH_EMAIL]);
    assert_null(p.address[HERALD_CH_SMS]);
    assert_null(p.tz);
    assert_null(p.attributes);
    assert_false(p.channels_set);
    assert_int_equal(p.nchannels, 0);
    assert_int_equal(p.ntopics, 0);
    assert_null(profile_address(&p, HERALD_CH_EMAIL));
    char *s = profile_to_json(&p);
    assert_string_equal(s, "{\"id\":\"u2\"}");
    free(s);
    profile_free(&p);

    /* An empty channel list is a choice ("no channel"), not "no order". */
    parse_good("{\"id\":\"u3\",\"channels\":[]}", &p);
    assert_true(p.channels_set);
    assert_int_equal(p.nchannels, 0);
    s = profile_to_json(&p);
    assert_string_equal(s, "{\"channels\":[],\"id\":\"u3\"}");
    free(s);
    profile_free(&p);
}

static void test_round_trip(void **state)
{
    (void)state;
    struct profile p, q;
    parse_good(FULL, &p);
    char *s1 = profile_to_json(&p);
    assert_string_equal(s1, "{\"attributes\":{\"age\":41,\"first_name\":\"Ann\",\"score\":0.5,\"vip\":true},"
                            "\"channels\":[\"sms\",\"email\"],\"email\":\"ann@example.com\","
                            "\"frequency\":{\"any\":\"3/24h\",\"email\":\"1/7d\"},\"id\":\"u1\",\"locale\":\"de\","
                            "\"phone\":\"+15551234567\",\"quiet_hours\":\"21:00-08:00\","
                            "\"topics\":{\"news\":true,\"promotions\":false},\"tz\":\"Europe/Berlin\"}");
    parse_good(s1, &q);
    char *s2 = profile_to_json(&q);
    assert_string_equal(s1, s2);
    assert_int_equal(q.channels[0], HERALD_CH_SMS);
    assert_int_equal(profile_topic(&q, "promotions"), 0);
    free(s1);
    free(s2);
    profile_free(&p);
    profile_free(&q);
}

static void test_validation_errors(void **state)
{
    (void)state;
    expect_error("[]", "profile: must be a JSON object");
    expect_error("{}", "id: missing");
    expect_error("{\"id\":\"a b\"}", "id: not a valid id (1..128 of A-Z a-z 0-9 . _ : -)");
    expect_error("{\"id\":\"u\",\"mail\":\"x\"}", "profile: unknown key (expected id, attributes, channels, topics, quiet_hours, frequency, tz, locale, email, phone)");
    expect_error("{\"id\":\"u\",\"consent\":[]}", "consent: not accepted here (consent is recorded through the ledger)");
    /* Addresses: the message names the field, never the value. */
    expect_error("{\"id\":\"u\",\"email\":\"ann@example\"}", "email: not a valid address");
    expect_error("{\"id\":\"u\",\"email\":\"Ann <ann@example.com>\"}", "email: not a valid address");
    expect_error("{\"id\":\"u\",\"email\":7}", "email: not a valid address");
    expect_error("{\"id\":\"u\",\"phone\":\"+4915 1234567\"}",
                 "phone: not a valid E.164 number (+ then 8..15 digits, the first not 0)");
    expect_error("{\"id\":\"u\",\"phone\":\"15551234567\"}",
                 "phone: not a valid E.164 number (+ then 8..15 digits, the first not 0)");
    expect_error("{\"id\":\"u\",\"tz\":\"Europe/Berlin; rm\"}", "tz: must be a time zone name like \"Europe/Berlin\"");
    expect_error("{\"id\":\"u\",\"tz\":\"\"}", "tz: must be a time zone name like \"Europe/Berlin\"");
    expect_error("{\"id\":\"u\",\"locale\":\"de DE\"}", "locale: must be a short language tag like \"de\" or \"pt-BR\"");
    expect_error("{\"id\":\"u\",\"locale\":\"abcdefghijklmnopqrstuvwxyzabcdefghij\"}",
                 "locale: must be a short language tag like \"de\" or \"pt-BR\"");
    expect_error("{\"id\":\"u\",\"attributes\":[]}", "attributes: must be an object");
    expect_error("{\"id\":\"u\",\"attributes\":{\"a\":{\"b\":1}}}", "attributes: every value must be a string, number or boolean");
    expect_error("{\"id\":\"u\",\"attributes\":{\"a\":[1]}}", "attributes: every value must be a string, number or boolean");
    expect_error("{\"id\":\"u\",\"attributes\":{\"a\":null}}", "attributes: every value must be a string, number or boolean");
    expect_error("{\"id\":\"u\",\"channels\":\"email\"}", "channels: must be an array of channel names");
    expect_error("{\"id\":\"u\",\"channels\":[\"email\",\"fax\"]}", "channels: unknown channel (expected email or sms)");
    expect_error("{\"id\":\"u\",\"channels\":[\"sms\",\"sms\"]}", "channels: \"sms\" is listed twice");
    expect_error("{\"id\":\"u\",\"channels\":[\"email\",\"sms\",\"email\"]}", "channels: \"email\" is listed twice");
    expect_error("{\"id\":\"u\",\"topics\":[\"a\"]}", "topics: must be an object of topic -> true/false");
    expect_error("{\"id\":\"u\",\"topics\":{\"a\":\"no\"}}", "topics: every value must be true or false");
    expect_error("{\"id\":\"u\",\"topics\":{\"a b\":true}}", "topics: a key is not a topic name (1..64 of a-z 0-9 _ . -)");
    expect_error("{\"id\":\"u\",\"topics\":{\"News\":true,\"news\":false}}",
                 "topics: a topic is given twice (topic names ignore case)");
    const char *qh = "quiet_hours: must look like \"21:00-08:00\" (HH:MM-HH:MM, start and end differ)";
    expect_error("{\"id\":\"u\",\"quiet_hours\":\"21:00\"}", qh);
    expect_error("{\"id\":\"u\",\"quiet_hours\":\"24:00-08:00\"}", qh);
    expect_error("{\"id\":\"u\",\"quiet_hours\":\"21:60-08:00\"}", qh);
    expect_error("{\"id\":\"u\",\"quiet_hours\":\"9:00-08:00\"}", qh);
    expect_error("{\"id\":\"u\",\"quiet_hours\":\"08:00-08:00\"}", qh);
    expect_error("{\"id\":\"u\",\"quiet_hours\":\"21:00-08:00 \"}", qh);
    expect_error("{\"id\":\"u\",\"frequency\":\"1/7d\"}", "frequency: must be an object of channel -> \"N/<period>\"");
    expect_error("{\"id\":\"u\",\"frequency\":{\"fax\":\"1/7d\"}}",
                 "frequency: unknown channel (expected email, sms or any)");
    const char *fq = "frequency.email: must look like \"1/7d\" (count/period, period in s, m, h or d)";
    expect_error("{\"id\":\"u\",\"frequency\":{\"email\":\"1/7w\"}}", fq);
    expect_error("{\"id\":\"u\",\"frequency\":{\"email\":\"0/7d\"}}", fq);
    expect_error("{\"id\":\"u\",\"frequency\":{\"email\":\"1/0d\"}}", fq);
    expect_error("{\"id\":\"u\",\"frequency\":{\"email\":\"1/d\"}}", fq);
    expect_error("{\"id\":\"u\",\"frequency\":{\"email\":\"/7d\"}}", fq);
    expect_error("{\"id\":\"u\",\"frequency\":{\"email\":\"1/7d \"}}", fq);
    expect_error("{\"id\":\"u\",\"frequency\":{\"email\":\"-1/7d\"}}", fq);
    expect_error("{\"id\":\"u\",\"frequency\":{\"email\":\"1234567/7d\"}}", fq);
    expect_error("{\"id\":\"u\",\"frequency\":{\"email\":2}}", fq);
    /* Errors after allocations free them (ASan would report a leak). */
    expect_error("{\"id\":\"u\",\"email\":\"ann@example.com\",\"attributes\":{\"a\":1},\"topics\":{\"a\":true},"
                 "\"frequency\":{\"sms\":\"x\"}}",
                 "frequency.sms: must look like \"1/7d\" (count/period, period in s, m, h or d)");
}

static void test_limits_and_json_errors(void **state)
{
    (void)state;
    struct strbuf sb;
    strbuf_init(&sb);
    strbuf_adds(&sb, "{\"id\":\"u\",\"attributes\":{");
    for (int i = 0; i < HERALD_PROFILE_MAX_ATTRIBUTES; i++) strbuf_addf(&sb, "%s\"a%d\":%d", i ? "," : "", i, i);
    strbuf_adds(&sb, "}}");
    struct profile p;
    parse_good(sb.buf, &p);
    profile_free(&p);
    strbuf_reset(&sb);
    strbuf_adds(&sb, "{\"id\":\"u\",\"attributes\":{");
    for (int i = 0; i <= HERALD_PROFILE_MAX_ATTRIBUTES; i++) strbuf_addf(&sb, "%s\"a%d\":%d", i ? "," : "", i, i);
    strbuf_adds(&sb, "}}");
    expect_error(sb.buf, "attributes: 65 keys, over the 64 limit");

    strbuf_reset(&sb);
    strbuf_adds(&sb, "{\"id\":\"u\",\"topics\":{");
    for (int i = 0; i <= HERALD_PROFILE_MAX_TOPICS; i++) strbuf_addf(&sb, "%s\"t%d\":true", i ? "," : "", i);
    strbuf_adds(&sb, "}}");
    expect_error(sb.buf, "topics: 65 topics, over the 64 limit");
    strbuf_free(&sb);

    char err[256];
    size_t n = HERALD_PROFILE_MAX_BYTES + 1;
    char *big = malloc(n);
    memset(big, ' ', n);
    memset(&p, 0xa5, sizeof(p));
    assert_int_equal(profile_parse(big, n, &p, err, sizeof(err)), -HERALD_ETOOBIG);
    assert_string_equal(err, "profile is 65537 bytes, over the 65536 byte limit");
    assert_true(all_zero(&p, sizeof(p)));
    free(big);

    /* jansson quotes the token it choked on; the profile error must not. */
    const char *broken = "{\"id\":\"u\",\"email\":ann@example.com}";
    assert_int_equal(profile_parse(broken, strlen(broken), &p, err, sizeof(err)), -HERALD_EINVAL);
    assert_null(strstr(err, "ann@"));
    assert_non_null(strstr(err, "profile is not valid JSON: "));
    assert_non_null(strstr(err, "at line 1 column"));
    const char *dup = "{\"id\":\"u\",\"email\":\"ann@example.com\",\"email\":\"x@example.com\"}";
    assert_int_equal(profile_parse(dup, strlen(dup), &p, err, sizeof(err)), -HERALD_EINVAL);
    assert_null(strstr(err, "example"));
}

static void test_import_with_consent(void **state)
{
    (void)state;
    json_t *o = load("{\"id\":\"u1\",\"email\":\"ann@example.com\",\"consent\":["
                     "{\"channel\":\"email\",\"granted\":true,\"source\":\"signup-form\",\"text_version\":\"v3\","
                     "\"at\":\"2026-11-01T10:00:00+01:00\"},"
                     "{\"channel\":\"sms\",\"granted\":false,\"source\":\"import\"}]}");
    struct profile p;
    struct consent_record *recs = (struct consent_record *)1;
    size_t n = 99;
    char err[256] = "";
    assert_int_equal(profile_from_json(o, &p, true, &recs, &n, NOW, err, sizeof(err)), 0);
    assert_int_equal(n, 2);
    assert_int_equal(recs[0].channel, HERALD_CH_EMAIL);
    assert_true(recs[0].granted);
    assert_string_equal(recs[0].source, "signup-form");
    assert_string_equal(recs[0].text_version, "v3");
    assert_int_equal(recs[0].at, NOW - 30 * 86400); /* 2026-11-01T09:00:00Z */
    assert_int_equal(recs[1].channel, HERALD_CH_SMS);
    assert_false(recs[1].granted);
    assert_null(recs[1].text_version);
    assert_int_equal(recs[1].at, NOW); /* no "at": stamped with now */
    assert_true(all_zero(p.consent, sizeof(p.consent)));
    char *s = profile_to_json(&p);
    assert_null(strstr(s, "consent")); /* never part of the stored form */
    free(s);
    for (size_t i = 0; i < n; i++) consent_record_free(&recs[i]);
    free(recs);
    profile_free(&p);

    /* Validate-only: records may be dropped by passing NULL. */
    assert_int_equal(profile_from_json(o, &p, true, NULL, NULL, NOW, err, sizeof(err)), 0);
    profile_free(&p);
    /* Without allow_consent the same line is refused. */
    assert_int_equal(profile_from_json(o, &p, false, &recs, &n, NOW, err, sizeof(err)), -HERALD_EINVAL);
    assert_string_equal(err, "consent: not accepted here (consent is recorded through the ledger)");
    assert_null(recs);
    assert_int_equal(n, 0);
    json_decref(o);
}

static void expect_import_error(const char *json, const char *want)
{
    json_t *o = load(json);
    struct profile p;
    struct consent_record *recs = NULL;
    size_t n = 0;
    char err[256] = "";
    int rc = profile_from_json(o, &p, true, &recs, &n, NOW, err, sizeof(err));
    if (rc != -HERALD_EINVAL || strcmp(err, want) != 0) {
        fprintf(stderr, "import %s\n  got rc=%d \"%s\"\n  want \"%s\"\n", json, rc, err, want);
        fail();
    }
    assert_null(recs);
    assert_int_equal(n, 0);
    assert_true(all_zero(&p, sizeof(p)));
    json_decref(o);
}

static void test_consent_errors(void **state)
{
    (void)state;
    expect_import_error("{\"id\":\"u\",\"consent\":{}}", "consent: must be an array of consent records");
    expect_import_error("{\"id\":\"u\",\"consent\":[1]}", "consent[0]: must be an object");
    expect_import_error("{\"id\":\"u\",\"consent\":[{\"channel\":\"email\",\"granted\":true,\"source\":\"f\"},"
                        "{\"channel\":\"email\",\"granted\":true,\"source\":\"f\",\"ip\":\"1.2.3.4\"}]}",
                        "consent[1]: unknown key (expected channel, granted, source, text_version, at)");
    expect_import_error("{\"id\":\"u\",\"consent\":[{\"granted\":true,\"source\":\"f\"}]}",
                        "consent[0].channel: missing (expected email or sms)");
    expect_import_error("{\"id\":\"u\",\"consent\":[{\"channel\":\"fax\",\"granted\":true,\"source\":\"f\"}]}",
                        "consent[0].channel: unknown channel (expected email or sms)");
    expect_import_error("{\"id\":\"u\",\"consent\":[{\"channel\":\"sms\",\"granted\":\"yes\",\"source\":\"f\"}]}",
                        "consent[0].granted: must be true or false");
    expect_import_error("{\"id\":\"u\",\"consent\":[{\"channel\":\"sms\",\"granted\":true}]}",
                        "consent[0].source: must be a non-empty string of at most 128 bytes");
    expect_import_error("{\"id\":\"u\",\"consent\":[{\"channel\":\"sms\",\"granted\":true,\"source\":\"\"}]}",
                        "consent[0].source: must be a non-empty string of at most 128 bytes");
    expect_import_error("{\"id\":\"u\",\"consent\":[{\"channel\":\"sms\",\"granted\":true,\"source\":\"f\","
                        "\"text_version\":3}]}",
                        "consent[0].text_version: must be a string of at most 128 bytes");
    expect_import_error("{\"id\":\"u\",\"consent\":[{\"channel\":\"sms\",\"granted\":true,\"source\":\"f\","
                        "\"at\":\"yesterday\"}]}",
                        "consent[0].at: not an RFC 3339 timestamp (like 2026-12-01T09:00:00Z)");
    /* A bad profile field after good records frees the records. */
    expect_import_error("{\"consent\":[{\"channel\":\"sms\",\"granted\":true,\"source\":\"f\"}],\"id\":\"u\","
                        "\"phone\":\"+1555\"}",
                        "phone: not a valid E.164 number (+ then 8..15 digits, the first not 0)");

    char src[200];
    memset(src, 's', 129);
    src[129] = '\0';
    char json[400];
    snprintf(json, sizeof(json), "{\"id\":\"u\",\"consent\":[{\"channel\":\"sms\",\"granted\":true,\"source\":\"%s\"}]}", src);
    expect_import_error(json, "consent[0].source: must be a non-empty string of at most 128 bytes");
}

/* The form herald stores: "1|channel|granted|at|source|text_version", read
 * back as the JSON form is; JSON when a value holds a '|'; a compact record
 * that is not quite one is refused, never half read. */
static void test_compact_records(void **state)
{
    (void)state;
    struct strbuf sb;
    strbuf_init(&sb);
    struct consent_record r = {.channel = HERALD_CH_EMAIL, .granted = true, .at = NOW, .source = "signup form",
                               .text_version = "v2"};
    consent_record_format(&sb, &r);
    assert_string_equal(sb.buf, "1|email|1|1796115600|signup form|v2");
    struct consent_record q;
    struct consent_state st;
    char err[256];
    assert_int_equal(consent_record_parse(sb.buf, sb.len, &q, err, sizeof(err)), 0);
    char *a = consent_record_to_json(&r), *b = consent_record_to_json(&q);
    assert_string_equal(a, b);
    free(a);
    free(b);
    consent_record_free(&q);
    assert_int_equal(consent_state_parse(sb.buf, sb.len, &st), 0);
    assert_true(st.known && st.granted);
    assert_int_equal(st.at, NOW);

    struct consent_record w = {.channel = HERALD_CH_SMS, .granted = false, .at = NOW, .source = "sms-stop"};
    consent_record_format(&sb, &w);
    assert_string_equal(sb.buf, "1|sms|0|1796115600|sms-stop|");
    assert_int_equal(consent_record_parse(sb.buf, sb.len, &q, err, sizeof(err)), 0);
    assert_false(q.granted);
    assert_null(q.text_version);
    consent_record_free(&q);
    assert_int_equal(consent_state_parse(sb.buf, sb.len, &st), 0);
    assert_true(st.known && !st.granted);

    struct consent_record bar = {.channel = HERALD_CH_EMAIL, .granted = true, .at = NOW, .source = "a|b"};
    consent_record_format(&sb, &bar);
    assert_int_equal(sb.buf[0], '{');
    assert_int_equal(consent_record_parse(sb.buf, sb.len, &q, err, sizeof(err)), 0);
    assert_string_equal(q.source, "a|b");
    consent_record_free(&q);

    const char *bad[] = {"1|email|1|1796115600|api", "1|fax|1|1796115600|api|", "1|email|2|1796115600|api|",
                         "1|email|1|17961x5600|api|", "1|email|1|1796115600||", "1|email|1|1796115600|api|v|x",
                         "1|email|1||api|"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        memset(&q, 0xa5, sizeof(q));
        assert_int_equal(consent_record_parse(bad[i], strlen(bad[i]), &q, err, sizeof(err)), -HERALD_EINVAL);
        assert_true(all_zero(&q, sizeof(q)));
        assert_true(consent_state_parse(bad[i], strlen(bad[i]), &st) < 0);
        assert_false(st.known);
    }
    strbuf_free(&sb);
}

static void test_ledger_records(void **state)
{
    (void)state;
    struct consent_record r = {.channel = HERALD_CH_EMAIL, .granted = true, .at = NOW, .source = "api",
                               .text_version = "v2"};
    char *s = consent_record_to_json(&r);
    assert_string_equal(s, "{\"at\":\"2026-12-01T09:00:00Z\",\"channel\":\"email\",\"granted\":true,"
                           "\"source\":\"api\",\"text_version\":\"v2\"}");
    struct consent_record q;
    char err[256];
    assert_int_equal(consent_record_parse(s, strlen(s), &q, err, sizeof(err)), 0);
    assert_int_equal(q.channel, HERALD_CH_EMAIL);
    assert_true(q.granted);
    assert_int_equal(q.at, NOW);
    assert_string_equal(q.source, "api");
    assert_string_equal(q.text_version, "v2");
    char *s2 = consent_record_to_json(&q);
    assert_string_equal(s, s2);
    free(s);
    free(s2);
    consent_record_free(&q);
    assert_true(all_zero(&q, sizeof(q)));

    struct consent_record w = {.channel = HERALD_CH_SMS, .granted = false, .at = NOW, .source = "sms-stop"};
    s = consent_record_to_json(&w);
    assert_string_equal(s, "{\"at\":\"2026-12-01T09:00:00Z\",\"channel\":\"sms\",\"granted\":false,\"source\":\"sms-stop\"}");
    assert_int_equal(consent_record_parse(s, strlen(s), &q, err, sizeof(err)), 0);
    assert_false(q.granted);
    assert_null(q.text_version);
    consent_record_free(&q);
    free(s);

    /* A ledger record must say when; from_json stamps now instead. */
    const char *no_at = "{\"channel\":\"sms\",\"granted\":true,\"source\":\"x\"}";
    memset(&q, 0xa5, sizeof(q));
    assert_int_equal(consent_record_parse(no_at, strlen(no_at), &q, err, sizeof(err)), -HERALD_EINVAL);
    assert_string_equal(err, "consent record.at: missing");
    assert_true(all_zero(&q, sizeof(q)));
    json_t *o = load(no_at);
    assert_int_equal(consent_record_from_json(o, &q, NOW, err, sizeof(err)), 0);
    assert_int_equal(q.at, NOW);
    consent_record_free(&q);
    json_decref(o);

    const char *bad[] = {"", "[]",
                         ("{\"channel\":\"sms\",\"granted\":true,\"source\":\"x\",\"at\":\"2026-12-01T09:00:00Z\","
                          "\"extra\":1}")};
    const char *want[] = {"consent record is not valid JSON: '[' or '{' expected at line 1 column 0",
                          "consent record: must be an object", "consent record: unknown key (expected channel, granted, source, text_version, at)"};
    for (size_t i = 0; i < 3; i++) {
        memset(&q, 0xa5, sizeof(q));
        assert_int_equal(consent_record_parse(bad[i], strlen(bad[i]), &q, err, sizeof(err)), -HERALD_EINVAL);
        assert_string_equal(err, want[i]);
        assert_true(all_zero(&q, sizeof(q)));
    }
}

/* The send path's attributes read as text (profile_attributes_plain,
 * profile_attribute_text): the form herald seals is taken, each value as a
 * template renders it; anything else is left to the parser, which takes
 * every text the plain reader takes. */
static void test_attributes_plain(void **state)
{
    (void)state;
    static const char *const plain[] = {
        "{}",
        "{\"age\":41,\"city\":\"Gothenburg\",\"first_name\":\"Ann\",\"vip\":true}",
        "{\"a\":-7,\"b\":0,\"c\":false,\"d\":\"\"}",
    };
    for (size_t i = 0; i < sizeof(plain) / sizeof(plain[0]); i++) {
        json_t *o = NULL;
        char err[160];
        assert_true(profile_attributes_plain(plain[i], strlen(plain[i])));
        assert_int_equal(profile_attributes_parse(plain[i], strlen(plain[i]), &o, err, sizeof(err)), 0);
        json_decref(o);
    }
    const char *a = plain[1], *s;
    size_t n, len = strlen(a);
    assert_true(profile_attribute_text(a, len, "first_name", &s, &n));
    assert_int_equal(n, 3);
    assert_memory_equal(s, "Ann", 3);
    assert_true(profile_attribute_text(a, len, "age", &s, &n));
    assert_int_equal(n, 2);
    assert_memory_equal(s, "41", 2);
    assert_true(profile_attribute_text(a, len, "vip", &s, &n));
    assert_int_equal(n, 4);
    assert_memory_equal(s, "true", 4);
    assert_false(profile_attribute_text(a, len, "last_name", &s, &n));
    assert_false(profile_attribute_text(a, len, "cit", &s, &n));
    assert_true(profile_attribute_text(plain[2], strlen(plain[2]), "a", &s, &n));
    assert_int_equal(n, 2);
    assert_memory_equal(s, "-7", 2);
    assert_true(profile_attribute_text(plain[2], strlen(plain[2]), "d", &s, &n));
    assert_int_equal(n, 0);
    /* Valid, but not plain: escapes, bytes past ASCII, reals, "-0" (it
     * renders as 0), null, nested values, keys out of order or twice,
     * spaces, anything after the object. */
    static const char *const other[] = {
        "{\"a\":\"x\\\"y\"}", "{\"a\":\"J\xc3\xb6rg\"}", "{\"a\":1.5}",  "{\"a\":-0}",
        "{\"a\":null}",        "{\"a\":[1]}",               "{\"a\":{}}",    "{\"b\":1,\"a\":2}",
        "{\"a\":1,\"a\":2}",     "{ \"a\":1}",                "{\"a\":1} ",    "{\"a\":01}",
        "",                    "[]",
    };
    for (size_t i = 0; i < sizeof(other) / sizeof(other[0]); i++) assert_false(profile_attributes_plain(other[i], strlen(other[i])));
    /* More attributes than a profile may hold: the parser says why. */
    char many[2048];
    size_t off = 0;
    many[off++] = '{';
    for (int i = 0; i <= HERALD_PROFILE_MAX_ATTRIBUTES; i++)
        off += (size_t)snprintf(many + off, sizeof(many) - off, "%s\"k%03d\":1", i ? "," : "", i);
    many[off++] = '}';
    assert_false(profile_attributes_plain(many, off));
}

static void test_quiet_hours_and_frequency_parse(void **state)
{
    (void)state;
    int a = -1, b = -1;
    assert_int_equal(profile_quiet_hours_parse("21:00-08:00", &a, &b), 0);
    assert_int_equal(a, 21 * 60);
    assert_int_equal(b, 8 * 60);
    assert_int_equal(profile_quiet_hours_parse("00:00-23:59", &a, &b), 0);
    assert_int_equal(b, 23 * 60 + 59);
    assert_int_equal(profile_quiet_hours_parse("12:30-12:30", &a, &b), -HERALD_EINVAL);
    assert_int_equal(profile_quiet_hours_parse("", NULL, NULL), -HERALD_EINVAL);

    unsigned c = 0;
    int64_t per = 0;
    assert_int_equal(profile_frequency_parse("1/7d", &c, &per), 0);
    assert_int_equal(c, 1);
    assert_int_equal(per, 7 * 86400);
    assert_int_equal(profile_frequency_parse("3/24h", &c, &per), 0);
    assert_int_equal(c, 3);
    assert_int_equal(per, 86400);
    assert_int_equal(profile_frequency_parse("10/30m", &c, &per), 0);
    assert_int_equal(per, 1800);
    assert_int_equal(profile_frequency_parse("999999/999999s", &c, &per), 0);
    assert_int_equal(c, 999999);
    assert_int_equal(profile_frequency_parse("1/7", &c, &per), -HERALD_EINVAL);
    assert_int_equal(profile_frequency_parse("1 /7d", &c, &per), -HERALD_EINVAL);
    assert_int_equal(profile_frequency_parse("", &c, &per), -HERALD_EINVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_email_syntax),
        cmocka_unit_test(test_phone_syntax),
        cmocka_unit_test(test_full_profile),
        cmocka_unit_test(test_minimal_profile),
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_validation_errors),
        cmocka_unit_test(test_limits_and_json_errors),
        cmocka_unit_test(test_import_with_consent),
        cmocka_unit_test(test_consent_errors),
        cmocka_unit_test(test_ledger_records),
        cmocka_unit_test(test_compact_records),
        cmocka_unit_test(test_quiet_hours_and_frequency_parse),
        cmocka_unit_test(test_attributes_plain),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
