/*
 * test_job.c - job parsing: good jobs in every shape, every validation error
 * with its exact sentence, the size limit, timestamps with offsets, and that
 * a refused job leaves the struct zeroed (ASan reports anything leaked).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "job.h"

#define GOOD_CONTENT                                                                   \
    "\"content\":{\"email\":{\"subject\":\"Hi {{first_name}}\",\"text\":\"Hello\","      \
    "\"html\":\"<p>Hello {{ first_name }}</p>\"},\"sms\":{\"text\":\"Hi {{first_name}}\"}}"

#define GOOD_JOB                                                                          \
    "{\"id\":\"spring-sale-2026\",\"topic\":\"promotions\",\"channels\":[\"email\",\"sms\"]," \
    GOOD_CONTENT ",\"recipients\":[\"u1\",\"u2\"],\"not_before\":\"2026-12-01T09:00:00Z\","   \
    "\"expires_at\":\"2026-12-03T00:00:00Z\"}"

static bool all_zero(const struct job *job)
{
    static const struct job zero;
    return memcmp(job, &zero, sizeof(zero)) == 0;
}

static void parse_good(const char *json, struct job *job)
{
    char err[512] = "";
    int rc = job_parse(json, strlen(json), job, err, sizeof(err));
    if (rc != 0) {
        fprintf(stderr, "expected the job to parse, got: %s\n", err);
        fail();
    }
}

static void expect_error_rc(const char *json, size_t len, int want_rc, const char *want)
{
    struct job job;
    memset(&job, 0xa5, sizeof(job)); /* the parser must zero it, whatever was there */
    char err[512] = "";
    int rc = job_parse(json, len, &job, err, sizeof(err));
    if (rc != want_rc || strcmp(err, want) != 0) {
        fprintf(stderr, "job %.200s\n  got rc=%d \"%s\"\n  want rc=%d \"%s\"\n", json, rc, err, want_rc, want);
        fail();
    }
    assert_true(all_zero(&job));
    job_free(&job); /* harmless on a zeroed job */
}

static void expect_error(const char *json, const char *want)
{
    expect_error_rc(json, strlen(json), -HERALD_EINVAL, want);
}

/* A good job with one top-level member replaced ("key":value) or removed (value NULL). */
static char *job_with(const char *key, const char *value)
{
    json_t *o = json_loads(GOOD_JOB, 0, NULL);
    assert_non_null(o);
    if (value) {
        json_error_t jerr;
        json_t *v = json_loads(value, JSON_DECODE_ANY, &jerr);
        if (!v) {
            fprintf(stderr, "bad test value %s: %s\n", value, jerr.text);
            fail();
        }
        json_object_set_new(o, key, v);
    } else {
        json_object_del(o, key);
    }
    char *s = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    return s;
}

static void expect_with(const char *key, const char *value, const char *want)
{
    char *s = job_with(key, value);
    expect_error(s, want);
    free(s);
}

static void test_good_job(void **state)
{
    (void)state;
    struct job job;
    parse_good(GOOD_JOB, &job);
    assert_string_equal(job.id, "spring-sale-2026");
    assert_string_equal(job.topic, "promotions");
    assert_int_equal(job.nchannels, 2);
    assert_int_equal(job.channels[0], HERALD_CH_EMAIL);
    assert_int_equal(job.channels[1], HERALD_CH_SMS);
    assert_true(job_has_channel(&job, HERALD_CH_EMAIL));
    assert_true(job_has_channel(&job, HERALD_CH_SMS));

    const struct job_content *e = &job.content[HERALD_CH_EMAIL];
    assert_true(e->present);
    assert_string_equal(e->subject, "Hi {{first_name}}");
    assert_string_equal(e->text, "Hello");
    assert_string_equal(e->html, "<p>Hello {{ first_name }}</p>");
    assert_non_null(e->t_subject);
    assert_non_null(e->t_text);
    assert_non_null(e->t_html);
    assert_int_equal(template_nfields(e->t_subject), 1);
    assert_string_equal(template_field(e->t_subject, 0), "first_name");

    const struct job_content *s = &job.content[HERALD_CH_SMS];
    assert_true(s->present);
    assert_null(s->subject);
    assert_null(s->html);
    assert_null(s->t_subject);
    assert_null(s->t_html);
    assert_string_equal(s->text, "Hi {{first_name}}");

    assert_int_equal(job.nrecipients, 2);
    assert_string_equal(job.recipients[0], "u1");
    assert_string_equal(job.recipients[1], "u2");
    assert_null(job.recipients_key);
    assert_int_equal(job.not_before, 1796115600);
    assert_int_equal(job.expires_at, 1796256000);
    job_free(&job);
    assert_true(all_zero(&job));
    job_free(&job); /* twice is harmless */
}

static void test_good_variants(void **state)
{
    (void)state;
    struct job job;
    /* sms only, recipients_key, no timestamps, upper-case topic stored lower-case. */
    parse_good("{\"id\":\"c1\",\"topic\":\"News.Letter_2-x\",\"channels\":[\"sms\"],"
               "\"content\":{\"sms\":{\"text\":\"hi\"}},\"recipients_key\":\"herald:lists:spring\"}",
               &job);
    assert_string_equal(job.topic, "news.letter_2-x");
    assert_int_equal(job.nchannels, 1);
    assert_int_equal(job.channels[0], HERALD_CH_SMS);
    assert_false(job_has_channel(&job, HERALD_CH_EMAIL));
    assert_false(job.content[HERALD_CH_EMAIL].present);
    assert_string_equal(job.recipients_key, "herald:lists:spring");
    assert_null(job.recipients);
    assert_int_equal(job.nrecipients, 0);
    assert_int_equal(job.not_before, 0);
    assert_int_equal(job.expires_at, 0);
    assert_int_equal(job.priority, JOB_PRIORITY_NORMAL); /* no priority: normal */
    job_free(&job);

    /* Each priority, and its share weight. */
    static const char *const prios[] = {"low", "normal", "high"};
    static const unsigned weights[] = {1, 2, 4};
    for (int p = 0; p < 3; p++) {
        char text[512];
        snprintf(text, sizeof(text),
                 "{\"id\":\"c1\",\"topic\":\"t\",\"channels\":[\"sms\"],\"priority\":\"%s\","
                 "\"content\":{\"sms\":{\"text\":\"hi\"}},\"recipients\":[\"u1\"]}", prios[p]);
        parse_good(text, &job);
        assert_string_equal(job_priority_name(job.priority), prios[p]);
        assert_int_equal(job_priority_weight(job.priority), weights[p]);
        job_free(&job);
    }

    /* The campaign's own order is kept; email with html only; only expires_at. */
    parse_good("{\"id\":\"c2\",\"topic\":\"t\",\"channels\":[\"sms\",\"email\"],"
               "\"content\":{\"email\":{\"subject\":\"s\",\"html\":\"<b>x</b>\"},\"sms\":{\"text\":\"x\"}},"
               "\"recipients\":[\"a.b.c\"],\"expires_at\":\"2026-12-03T00:00:00+01:00\"}",
               &job);
    assert_int_equal(job.channels[0], HERALD_CH_SMS);
    assert_int_equal(job.channels[1], HERALD_CH_EMAIL);
    assert_null(job.content[HERALD_CH_EMAIL].text);
    assert_null(job.content[HERALD_CH_EMAIL].t_text);
    assert_non_null(job.content[HERALD_CH_EMAIL].t_html);
    assert_int_equal(job.expires_at, 1796256000 - 3600);
    job_free(&job);

    /* Whitespace and a 64-character topic. */
    parse_good(" \n{ \"id\" : \"c3\", \"topic\" : \"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\","
               " \"channels\" : [ \"sms\" ], \"content\" : { \"sms\" : { \"text\" : \"x\" } },"
               " \"recipients\" : [ \"u\" ] }\n",
               &job);
    assert_int_equal(strlen(job.topic), 64);
    job_free(&job);
}

static void test_timestamps_with_offsets(void **state)
{
    (void)state;
    struct job job;
    char *s = job_with("not_before", "\"2026-12-01T10:00:00+01:00\"");
    parse_good(s, &job);
    free(s);
    assert_int_equal(job.not_before, 1796115600);
    job_free(&job);

    /* Same instant written two ways is not "after". */
    json_t *o = json_loads(GOOD_JOB, 0, NULL);
    json_object_set_new(o, "not_before", json_string("2026-12-01T10:00:00+01:00"));
    json_object_set_new(o, "expires_at", json_string("2026-12-01T04:00:00-05:00"));
    s = json_dumps(o, JSON_COMPACT);
    expect_error(s, "expires_at: must be after not_before");
    free(s);
    /* One second later is. */
    json_object_set_new(o, "expires_at", json_string("2026-12-01T04:00:01-05:00"));
    s = json_dumps(o, JSON_COMPACT);
    parse_good(s, &job);
    assert_int_equal(job.expires_at - job.not_before, 1);
    job_free(&job);
    free(s);
    json_object_set_new(o, "expires_at", json_string("2026-11-30T00:00:00Z"));
    s = json_dumps(o, JSON_COMPACT);
    expect_error(s, "expires_at: must be after not_before");
    free(s);
    json_decref(o);

    const char *ts_err = "not an RFC 3339 timestamp (like 2026-12-01T09:00:00Z)";
    char want[128];
    snprintf(want, sizeof(want), "not_before: %s", ts_err);
    expect_with("not_before", "\"2026-12-01\"", want);
    expect_with("not_before", "\"2026-02-29T00:00:00Z\"", want);
    expect_with("not_before", "1796115600", want);
    expect_with("not_before", "null", want);
    snprintf(want, sizeof(want), "expires_at: %s", ts_err);
    expect_with("expires_at", "\"tomorrow\"", want);
    expect_with("expires_at", "\"2026-12-03T00:00:00\"", want);
}

static void test_size_and_syntax(void **state)
{
    (void)state;
    size_t n = 300000;
    char *big = malloc(n);
    memset(big, ' ', n);
    expect_error_rc(big, n, -HERALD_ETOOBIG, "job is 300000 bytes, over the 262144 byte limit");
    /* The limit itself is allowed (padding is whitespace). */
    size_t len = strlen(GOOD_JOB);
    memcpy(big, GOOD_JOB, len);
    struct job job;
    char err[256];
    assert_int_equal(job_parse(big, HERALD_JOB_MAX_BYTES, &job, err, sizeof(err)), 0);
    job_free(&job);
    expect_error_rc(big, HERALD_JOB_MAX_BYTES + 1, -HERALD_ETOOBIG, "job is 262145 bytes, over the 262144 byte limit");
    free(big);

    expect_error("{\"id\":", "job is not valid JSON: unexpected token at line 1 column 6");
    expect_error_rc("", 0, -HERALD_EINVAL, "job is not valid JSON: '[' or '{' expected at line 1 column 0");
    expect_error("{\"id\":\"a\",\n\"id\":\"b\"}", "job is not valid JSON: duplicate object key at line 2 column 4");
    /* Length-bounded: the text after len is not read. */
    expect_error_rc(GOOD_JOB, 10, -HERALD_EINVAL, "job is not valid JSON: premature end of input at line 1 column 10");
    expect_error("[]", "job: must be a JSON object");
    expect_error("\"job\"", "job is not valid JSON: '[' or '{' expected at line 1 column 5");

    /* A small error buffer truncates and never overflows. */
    char small[8];
    assert_int_equal(job_parse("[]", 2, &job, small, sizeof(small)), -HERALD_EINVAL);
    assert_string_equal(small, "job: mu");
    assert_int_equal(job_parse("[]", 2, &job, NULL, 0), -HERALD_EINVAL);
}

static void test_top_level_errors(void **state)
{
    (void)state;
    expect_with("extra", "1", "job: unknown key (expected id, channels, topic, content, recipients, recipients_key, not_before, expires_at, rerun, display_name, priority)");
    expect_with("Expires_At", "\"2026-12-03T00:00:00Z\"", "job: unknown key (expected id, channels, topic, content, recipients, recipients_key, not_before, expires_at, rerun, display_name, priority)");
    expect_with("priority", "\"urgent\"", "priority: must be \"high\", \"normal\" or \"low\"");
    expect_with("priority", "\"HIGH\"", "priority: must be \"high\", \"normal\" or \"low\"");
    expect_with("priority", "4", "priority: must be \"high\", \"normal\" or \"low\"");
    expect_with("priority", "null", "priority: must be \"high\", \"normal\" or \"low\"");
    expect_with("rerun", "1", "rerun: must be true or false");
    expect_with("rerun", "\"yes\"", "rerun: must be true or false");
    expect_with("id", NULL, "id: missing");
    expect_with("id", "\"\"", "id: not a valid id (1..128 of A-Z a-z 0-9 . _ : -)");
    expect_with("id", "\"a b\"", "id: not a valid id (1..128 of A-Z a-z 0-9 . _ : -)");
    expect_with("id", "42", "id: not a valid id (1..128 of A-Z a-z 0-9 . _ : -)");
    expect_with("topic", NULL, "topic: missing");
    expect_with("topic", "\"\"", "topic: must be 1..64 characters of a-z 0-9 _ . -");
    expect_with("topic", "\"promo tions\"", "topic: must be 1..64 characters of a-z 0-9 _ . -");
    expect_with("topic", "\"a:b\"", "topic: must be 1..64 characters of a-z 0-9 _ . -");
    expect_with("topic", "\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\"",
                "topic: must be 1..64 characters of a-z 0-9 _ . -");
    expect_with("topic", "true", "topic: must be 1..64 characters of a-z 0-9 _ . -");

    /* Unknown keys are quoted printably and briefly. */
    expect_error("{\"a\\nb\\\"c\":1}", "job: unknown key (expected id, channels, topic, content, recipients, recipients_key, not_before, expires_at, rerun, display_name, priority)");
    expect_error("{\"kkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkk\":1}",
                 "job: unknown key (expected id, channels, topic, content, recipients, recipients_key, not_before, expires_at, rerun, display_name, priority)");
}

static void test_channel_errors(void **state)
{
    (void)state;
    expect_with("channels", NULL, "channels: missing");
    expect_with("channels", "[]", "channels: must be a non-empty array of channel names");
    expect_with("channels", "\"email\"", "channels: must be a non-empty array of channel names");
    expect_with("channels", "[\"email\",\"fax\"]", "channels: unknown channel (expected email or sms)");
    expect_with("channels", "[\"Email\"]", "channels: unknown channel (expected email or sms)");
    expect_with("channels", "[\"email\",\"sms\",\"email\"]", "channels: \"email\" is listed twice");
    expect_with("channels", "[\"email\",1]", "channels: entries must be strings");
}

static void test_content_errors(void **state)
{
    (void)state;
    expect_with("content", NULL, "content: missing");
    expect_with("content", "[]", "content: must be an object with one entry per channel");
    expect_with("content", "{\"email\":{\"subject\":\"s\",\"text\":\"t\"}}", "content.sms: missing (channels lists sms)");
    expect_with("content",
                "{\"email\":{\"subject\":\"s\",\"text\":\"t\"},\"sms\":{\"text\":\"t\"},\"fax\":{\"text\":\"t\"}}",
                "content: unknown channel (expected email or sms)");
    expect_with("content", "{\"email\":\"hello\",\"sms\":{\"text\":\"t\"}}", "content.email: must be an object");
    expect_with("content", "{\"email\":{\"subject\":\"s\",\"text\":\"t\",\"from\":\"x\"},\"sms\":{\"text\":\"t\"}}",
                "content.email: unknown key (email takes subject, text and html)");
    expect_with("content", "{\"email\":{\"text\":\"t\"},\"sms\":{\"text\":\"t\"}}", "content.email.subject: missing");
    expect_with("content", "{\"email\":{\"subject\":\"s\"},\"sms\":{\"text\":\"t\"}}",
                "content.email: give text, html or both");
    expect_with("content", "{\"email\":{\"subject\":\"\",\"text\":\"t\"},\"sms\":{\"text\":\"t\"}}",
                "content.email.subject: must be a non-empty string");
    expect_with("content", "{\"email\":{\"subject\":\"s\",\"html\":5},\"sms\":{\"text\":\"t\"}}",
                "content.email.html: must be a non-empty string");
    expect_with("content", "{\"email\":{\"subject\":\"s\",\"text\":\"t\"},\"sms\":{}}", "content.sms.text: missing");
    expect_with("content", "{\"email\":{\"subject\":\"s\",\"text\":\"t\"},\"sms\":{\"text\":\"t\",\"subject\":\"s\"}}",
                "content.sms: unknown key (sms takes text only)");
    expect_with("content", "{\"email\":{\"subject\":\"s\",\"text\":\"t\"},\"sms\":{\"text\":\"t\",\"html\":\"h\"}}",
                "content.sms: unknown key (sms takes text only)");
    /* Templates are compiled at parse time and their errors name the part. */
    expect_with("content", "{\"email\":{\"subject\":\"Hi {{name\",\"text\":\"t\"},\"sms\":{\"text\":\"t\"}}",
                "content.email.subject: unclosed {{ at offset 3");
    expect_with("content", "{\"email\":{\"subject\":\"s\",\"text\":\"t\",\"html\":\"<p>{{}}</p>\"},\"sms\":{\"text\":\"t\"}}",
                "content.email.html: empty field name at offset 3");
    expect_with("content", "{\"email\":{\"subject\":\"s\",\"text\":\"t\"},\"sms\":{\"text\":\"{{a b}}\"}}",
                "content.sms.text: bad field name at offset 0 (expected 1..64 of A-Z a-z 0-9 _ . -)");

    /* Content per language: every language's is checked, and the default is one of them. */
    expect_with("content", "{\"email\":{\"en\":{\"subject\":\"s\",\"text\":\"t\"},\"ko\":{\"text\":\"t\"},"
                "\"default\":\"en\"},\"sms\":{\"text\":\"t\"}}",
                "content.email.ko.subject: missing");
    expect_with("content", "{\"email\":{\"en\":{\"subject\":\"s\",\"text\":\"t\"},\"default\":\"de\"},"
                "\"sms\":{\"text\":\"t\"}}",
                "content.email.default: \"de\" is not one of the languages given");
    expect_with("content", "{\"email\":{\"subject\":\"s\",\"text\":\"t\"},\"sms\":{\"en\":{\"text\":\"t\"},"
                "\"default\":5}}",
                "content.sms.default: must be a string naming one of the languages");
    expect_with("content", "{\"email\":{\"subject\":\"s\",\"text\":\"t\"},\"sms\":{\"en\":{\"text\":\"t\"},"
                "\"en us\":{\"text\":\"t\"},\"default\":\"en\"}}",
                "content.sms: \"en us\" is not a language tag (like en, de or pt-BR)");
    expect_with("content", "{\"email\":{\"subject\":\"s\",\"text\":\"t\"},\"sms\":{\"en\":{\"text\":\"t\"},"
                "\"EN\":{\"text\":\"t\"},\"default\":\"en\"}}",
                "content.sms: the language EN is given twice");
    expect_with("content", "{\"email\":{\"subject\":\"s\",\"text\":\"t\"},\"sms\":{\"en\":{\"text\":\"t\"},"
                "\"de\":{\"text\":\"{{x\"},\"default\":\"en\"}}",
                "content.sms.de.text: unclosed {{ at offset 0");
    expect_with("content", "{\"email\":{\"subject\":\"s\",\"text\":\"t\"},\"sms\":{\"en\":\"t\",\"default\":\"en\"}}",
                "content.sms.default: \"en\" is not one of the languages given");
    expect_with("content", "{\"email\":{\"subject\":\"s\",\"text\":\"t\"},\"sms\":{\"en\":{\"text\":\"t\"},"
                "\"de\":[],\"default\":\"en\"}}",
                "content.sms.de: must be an object");

    /* Content for a channel the job does not list. */
    expect_error("{\"id\":\"c\",\"topic\":\"t\",\"channels\":[\"email\"],\"recipients\":[\"u\"],"
                 "\"content\":{\"email\":{\"subject\":\"s\",\"text\":\"t\"},\"sms\":{\"text\":\"t\"}}}",
                 "content.sms: the job's channels do not list sms");
}

static void test_content_per_language(void **state)
{
    (void)state;
    struct job job;
    parse_good("{\"id\":\"c\",\"topic\":\"t\",\"channels\":[\"email\",\"sms\"],\"recipients\":[\"u\"],"
               "\"content\":{\"email\":{\"en\":{\"subject\":\"Hello\",\"text\":\"t\"},"
               "\"ko\":{\"subject\":\"안녕하세요\",\"text\":\"t\"},\"pt-BR\":{\"subject\":\"Olá\",\"text\":\"t\"},"
               "\"default\":\"en\"},\"sms\":{\"text\":\"one for all\"}}}",
               &job);
    const char *chosen;
    const struct job_content *c = job_content_for(&job, HERALD_CH_EMAIL, "ko", &chosen);
    assert_string_equal(c->subject, "안녕하세요");
    assert_string_equal(chosen, "ko");
    c = job_content_for(&job, HERALD_CH_EMAIL, "ko-KR", &chosen); /* its primary language */
    assert_string_equal(chosen, "ko");
    c = job_content_for(&job, HERALD_CH_EMAIL, "PT-br", &chosen);
    assert_string_equal(c->subject, "Olá");
    c = job_content_for(&job, HERALD_CH_EMAIL, "pt", &chosen); /* another region of it */
    assert_string_equal(chosen, "pt-BR");
    c = job_content_for(&job, HERALD_CH_EMAIL, "en-GB", &chosen);
    assert_string_equal(c->subject, "Hello");
    assert_string_equal(chosen, "en");
    c = job_content_for(&job, HERALD_CH_EMAIL, "fr", &chosen); /* the default */
    assert_string_equal(c->subject, "Hello");
    assert_string_equal(chosen, "en");
    c = job_content_for(&job, HERALD_CH_EMAIL, NULL, &chosen);
    assert_string_equal(chosen, "en");
    c = job_content_for(&job, HERALD_CH_SMS, "ko", &chosen); /* one content for everyone: no language */
    assert_string_equal(c->text, "one for all");
    assert_null(chosen);
    job_free(&job);
    assert_true(all_zero(&job));
}

static void test_display_name(void **state)
{
    (void)state;
    struct job job;
    parse_good("{\"id\":\"c\",\"topic\":\"t\",\"channels\":[\"sms\"],\"recipients\":[\"u\"],"
               "\"content\":{\"sms\":{\"text\":\"t\"}},"
               "\"display_name\":{\"en\":\"Spring sale\",\"ko\":\"봄 세일\",\"default\":\"en\"}}",
               &job);
    assert_string_equal(job_display_name(&job, "ko-KR"), "봄 세일");
    assert_string_equal(job_display_name(&job, "fr"), "Spring sale");
    assert_string_equal(job_display_name(&job, NULL), "Spring sale");
    job_free(&job);
    assert_null(job_display_name(&job, "ko")); /* a freed job names nothing */
    parse_good("{\"id\":\"c\",\"topic\":\"t\",\"channels\":[\"sms\"],\"recipients\":[\"u\"],"
               "\"content\":{\"sms\":{\"text\":\"t\"}},\"display_name\":{\"de\":\"Frühling\"}}",
               &job);
    assert_string_equal(job_display_name(&job, "de-AT"), "Frühling");
    assert_null(job_display_name(&job, "en")); /* no default: the pages show the id */
    job_free(&job);
    parse_good(GOOD_JOB, &job);
    assert_null(job_display_name(&job, "en"));
    job_free(&job);

    expect_with("display_name", "\"Spring\"", "display_name: must be an object of language: name, e.g. {\"en\": \"Spring sale\"}");
    expect_with("display_name", "{}", "display_name: must be an object of language: name, e.g. {\"en\": \"Spring sale\"}");
    expect_with("display_name", "{\"en\":\"\"}", "display_name.en: must be a string of 1..200 bytes");
    expect_with("display_name", "{\"en\":5}", "display_name.en: must be a string of 1..200 bytes");
    expect_with("display_name", "{\"e n\":\"x\"}", "display_name: \"e n\" is not a language tag (like en, de or pt-BR)");
    expect_with("display_name", "{\"en\":\"x\",\"default\":\"de\"}", "display_name.default: must name one of the languages given");
    expect_with("display_name", "{\"default\":\"en\"}", "display_name.default: must name one of the languages given");
}

static void test_recipient_errors(void **state)
{
    (void)state;
    const char *both = "job: give exactly one of recipients or recipients_key";
    expect_with("recipients", NULL, both);
    expect_with("recipients_key", "\"k\"", both);
    expect_with("recipients", "[]", "recipients: must be a non-empty array of recipient ids");
    expect_with("recipients", "\"u1\"", "recipients: must be a non-empty array of recipient ids");
    expect_with("recipients", "[\"u1\",\"bad id\"]", "recipients[1]: not a valid id (1..128 of A-Z a-z 0-9 . _ : -)");
    /* Ids reach logs and audit records, so an address is refused as one, and
     * the message does not quote it. */
    expect_with("recipients", "[\"u1\",\"ann@example.com\"]", "recipients[1]: not a valid id (1..128 of A-Z a-z 0-9 . _ : -)");
    expect_with("recipients", "[\"u1\",7]", "recipients[1]: not a valid id (1..128 of A-Z a-z 0-9 . _ : -)");

    /* The id itself is never quoted (an id may be an address). */
    char *s = job_with("recipients", "[\"ann smith@example.com\"]");
    struct job job;
    char err[256];
    assert_int_equal(job_parse(s, strlen(s), &job, err, sizeof(err)), -HERALD_EINVAL);
    assert_null(strstr(err, "example.com"));
    free(s);

    /* recipients_key alone. */
    json_t *o = json_loads(GOOD_JOB, 0, NULL);
    json_object_del(o, "recipients");
    json_object_set_new(o, "recipients_key", json_string(""));
    s = json_dumps(o, JSON_COMPACT);
    expect_error(s, "recipients_key: must be a non-empty string of at most 512 bytes");
    free(s);
    json_object_set_new(o, "recipients_key", json_integer(1));
    s = json_dumps(o, JSON_COMPACT);
    expect_error(s, "recipients_key: must be a non-empty string of at most 512 bytes");
    free(s);
    char key[514];
    memset(key, 'k', sizeof(key));
    key[513] = '\0';
    json_object_set_new(o, "recipients_key", json_string(key));
    s = json_dumps(o, JSON_COMPACT);
    expect_error(s, "recipients_key: must be a non-empty string of at most 512 bytes");
    free(s);
    key[512] = '\0';
    json_object_set_new(o, "recipients_key", json_string(key));
    s = json_dumps(o, JSON_COMPACT);
    parse_good(s, &job);
    assert_int_equal(strlen(job.recipients_key), 512);
    job_free(&job);
    free(s);
    json_decref(o);

    /* Inline recipients: the limit is allowed, one more is not. */
    o = json_loads(GOOD_JOB, 0, NULL);
    json_t *list = json_array();
    char id[32];
    for (int i = 0; i < HERALD_JOB_MAX_RECIPIENTS; i++) {
        snprintf(id, sizeof(id), "u%d", i);
        json_array_append_new(list, json_string(id));
    }
    json_object_set_new(o, "recipients", list);
    s = json_dumps(o, JSON_COMPACT);
    parse_good(s, &job);
    assert_int_equal(job.nrecipients, HERALD_JOB_MAX_RECIPIENTS);
    assert_string_equal(job.recipients[HERALD_JOB_MAX_RECIPIENTS - 1], "u9999");
    job_free(&job);
    free(s);
    json_array_append_new(list, json_string("one-more"));
    s = json_dumps(o, JSON_COMPACT);
    expect_error(s, "recipients: 10001 ids, over the 10000 limit (use recipients_key for more)");
    free(s);
    /* An error late in a long list frees the ids read so far (ASan checks). */
    json_array_set_new(list, 10000, json_string("bad id"));
    json_array_remove(list, 0);
    s = json_dumps(o, JSON_COMPACT);
    expect_error(s, "recipients[9999]: not a valid id (1..128 of A-Z a-z 0-9 . _ : -)");
    free(s);
    json_decref(o);
}

static void test_topic_helpers(void **state)
{
    (void)state;
    assert_true(job_topic_valid("promotions"));
    assert_true(job_topic_valid("A.b_c-9"));
    assert_false(job_topic_valid(""));
    assert_false(job_topic_valid("a b"));
    assert_false(job_topic_valid("a/b"));
    char *t = job_topic_normalize("News.Letter");
    assert_string_equal(t, "news.letter");
    free(t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_good_job),
        cmocka_unit_test(test_good_variants),
        cmocka_unit_test(test_timestamps_with_offsets),
        cmocka_unit_test(test_size_and_syntax),
        cmocka_unit_test(test_top_level_errors),
        cmocka_unit_test(test_channel_errors),
        cmocka_unit_test(test_content_errors),
        cmocka_unit_test(test_content_per_language),
        cmocka_unit_test(test_display_name),
        cmocka_unit_test(test_recipient_errors),
        cmocka_unit_test(test_topic_helpers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
