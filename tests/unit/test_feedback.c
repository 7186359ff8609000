/*
 * test_feedback.c - provider feedback, the pure part: form decoding, the
 * text Twilio signs (checked against the example of Twilio's own request
 * validation documentation, signature included), SMS keywords, and the
 * reading of SendGrid event batches (which events suppress, and that a bad
 * batch is refused whole).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "feedback.h"

static int parse(const char *body, struct feedback_form *f)
{
    char err[128];
    return feedback_form_parse(body, strlen(body), f, err, sizeof(err));
}

static void test_form_decoding(void **state)
{
    (void)state;
    struct feedback_form f;
    assert_int_equal(parse("From=%2B15551234567&Body=++stop+&Empty=&Bare&&To=a%3Db", &f), 0);
    assert_int_equal(f.n, 5);
    assert_string_equal(feedback_form_get(&f, "From"), "+15551234567");
    assert_string_equal(feedback_form_get(&f, "Body"), "  stop ");
    assert_string_equal(feedback_form_get(&f, "Empty"), "");
    assert_string_equal(feedback_form_get(&f, "Bare"), "");
    assert_string_equal(feedback_form_get(&f, "To"), "a=b");
    assert_null(feedback_form_get(&f, "Missing"));
    feedback_form_free(&f);

    assert_int_equal(parse("", &f), 0);
    assert_int_equal(f.n, 0);
    feedback_form_free(&f);

    /* Bad escapes and NUL bytes are refused, and leave nothing behind. */
    const char *bad[] = {"Body=%", "Body=%4", "Body=%zz", "Body=a%00b", "%G1=x"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_int_equal(parse(bad[i], &f), -HERALD_EINVAL);
        assert_int_equal(f.n, 0);
        assert_null(f.params);
    }

    /* Too many fields. */
    struct strbuf sb;
    strbuf_init(&sb);
    for (int i = 0; i <= FEEDBACK_FORM_MAX_PARAMS; i++) strbuf_addf(&sb, "k%d=v&", i);
    assert_int_equal(parse(sb.buf, &f), -HERALD_EINVAL);
    strbuf_free(&sb);
}

/* Twilio's documented example: https://mycompany.com/myapp.php?foo=1&bar=2,
 * auth token 12345, signature 0/KCTR6DLpKmkAf8muzZqo1nDgQ=. */
static void test_twilio_signed_text(void **state)
{
    (void)state;
    struct feedback_form f;
    assert_int_equal(parse("To=%2B18005551212&From=%2B12349013030&Digits=1234&CallSid=CA1234567890ABCDE"
                           "&Caller=%2B12349013030",
                           &f),
                     0);
    struct strbuf sb;
    strbuf_init(&sb);
    feedback_twilio_signed_text(&sb, "https://mycompany.com/", "/myapp.php", "foo=1&bar=2", &f);
    assert_string_equal(sb.buf, "https://mycompany.com/myapp.php?foo=1&bar=2CallSidCA1234567890ABCDECaller"
                                "+12349013030Digits1234From+12349013030To+18005551212");
    /* The form keeps the posted order. */
    assert_string_equal(f.params[0].name, "To");

    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    HMAC(EVP_sha1(), "12345", 5, (const unsigned char *)sb.buf, sb.len, md, &mdlen);
    unsigned char b64[64];
    EVP_EncodeBlock(b64, md, (int)mdlen);
    assert_string_equal((char *)b64, "0/KCTR6DLpKmkAf8muzZqo1nDgQ=");

    /* No query: no '?'; the base URL's trailing slashes do not double. */
    feedback_twilio_signed_text(&sb, "https://h.example/herald//", "/v1/webhooks/twilio", "", &f);
    assert_int_equal(strncmp(sb.buf, "https://h.example/herald/v1/webhooks/twilioCallSid", 50), 0);
    feedback_form_free(&f);

    /* Equal names sort by value; byte order (upper case first). */
    assert_int_equal(parse("b=2&a=9&b=1&B=0", &f), 0);
    feedback_twilio_signed_text(&sb, "u", "/p", NULL, &f);
    assert_string_equal(sb.buf, "u/pB0a9b1b2");
    feedback_form_free(&f);
    strbuf_free(&sb);
}

static void test_keywords(void **state)
{
    (void)state;
    const char *stop[] = {"STOP", "stop", "  stop ", "\tStopAll\r\n", "unsubscribe", "Cancel", "END", "quit"};
    for (size_t i = 0; i < sizeof(stop) / sizeof(stop[0]); i++)
        assert_int_equal(feedback_sms_keyword(stop[i]), FEEDBACK_KW_STOP);
    assert_int_equal(feedback_sms_keyword(" start"), FEEDBACK_KW_START);
    assert_int_equal(feedback_sms_keyword("UNSTOP"), FEEDBACK_KW_START);
    assert_int_equal(feedback_sms_keyword("help "), FEEDBACK_KW_HELP);
    const char *none[] = {"", "   ", "stop please", "STOPP", "st op", "please stop", "HELPME", "yes", NULL};
    for (size_t i = 0; i < sizeof(none) / sizeof(none[0]); i++)
        assert_int_equal(feedback_sms_keyword(none[i]), FEEDBACK_KW_NONE);
    /* Twilio's Advanced Opt-Out names its own keywords (any language) in OptOutType. */
    assert_int_equal(feedback_twilio_keyword("arret", "STOP"), FEEDBACK_KW_STOP);
    assert_int_equal(feedback_twilio_keyword("ayuda", "HELP"), FEEDBACK_KW_HELP);
    assert_int_equal(feedback_twilio_keyword("go", "START"), FEEDBACK_KW_START);
    assert_int_equal(feedback_twilio_keyword("stop", NULL), FEEDBACK_KW_STOP);
    assert_int_equal(feedback_twilio_keyword("hello", NULL), FEEDBACK_KW_NONE);
    assert_int_equal(feedback_twilio_keyword("hello", "stop"), FEEDBACK_KW_NONE);
    assert_int_equal(feedback_twilio_keyword(NULL, "OTHER"), FEEDBACK_KW_NONE);
    assert_string_equal(feedback_keyword_name(FEEDBACK_KW_STOP), "stop");
    assert_string_equal(feedback_keyword_name(FEEDBACK_KW_START), "start");
    assert_string_equal(feedback_keyword_name(FEEDBACK_KW_HELP), "help");
}

static void test_sendgrid_suppresses(void **state)
{
    (void)state;
    assert_true(feedback_sendgrid_suppresses("bounce", NULL));
    assert_true(feedback_sendgrid_suppresses("bounce", "bounce"));
    assert_false(feedback_sendgrid_suppresses("bounce", "blocked"));
    assert_true(feedback_sendgrid_suppresses("dropped", NULL));
    assert_true(feedback_sendgrid_suppresses("spamreport", NULL));
    assert_true(feedback_sendgrid_suppresses("unsubscribe", NULL));
    const char *ignored[] = {"processed", "delivered", "deferred", "open", "click", "group_unsubscribe",
                             "group_resubscribe", "Bounce"};
    for (size_t i = 0; i < sizeof(ignored) / sizeof(ignored[0]); i++)
        assert_false(feedback_sendgrid_suppresses(ignored[i], NULL));
    assert_false(feedback_sendgrid_suppresses(NULL, NULL));
}

static int sg(const char *body, struct feedback_sendgrid *out, char *err)
{
    return feedback_sendgrid_parse(body, strlen(body), out, err, 160);
}

static void test_sendgrid_parse(void **state)
{
    (void)state;
    struct feedback_sendgrid fs;
    char err[160];
    assert_int_equal(sg("[{\"event\":\"processed\",\"email\":\"a@example.com\"},"
                        "{\"event\":\"bounce\",\"type\":\"bounce\",\"email\":\"b@example.com\",\"sg_event_id\":\"x\"},"
                        "{\"event\":\"bounce\",\"type\":\"blocked\",\"email\":\"c@example.com\"},"
                        "{\"event\":\"dropped\",\"email\":\"d@example.com\"},"
                        "{\"event\":\"spamreport\",\"email\":\"B@Example.com\"},"
                        "{\"event\":\"unsubscribe\",\"email\":\"e@example.com\"},"
                        "{\"event\":\"open\"}]",
                        &fs, err),
                     0);
    assert_int_equal(fs.nevents, 7);
    assert_int_equal(fs.nignored, 3);
    assert_int_equal(fs.nsuppress, 3); /* b (twice, in two cases), d, e */
    assert_string_equal(fs.suppress[0], "b@example.com");
    assert_string_equal(fs.suppress[1], "d@example.com");
    assert_string_equal(fs.suppress[2], "e@example.com");
    feedback_sendgrid_free(&fs);

    assert_int_equal(sg("[]", &fs, err), 0);
    assert_int_equal(fs.nevents, 0);
    feedback_sendgrid_free(&fs);

    /* Refused whole; the error never quotes the address. */
    const char *bad[] = {"", "{", "{\"event\":\"bounce\"}", "[1]", "[{\"email\":\"a@example.com\"}]",
                         "[{\"event\":\"dropped\",\"email\":\"a@example.com\"},{\"event\":\"bounce\"}]",
                         "[{\"event\":\"bounce\",\"email\":\"secret-no-at\"}]",
                         "[{\"event\":\"bounce\",\"email\":\"a\\n@example.com\"}]",
                         "[{\"event\":\"bounce\",\"email\":42}]", "[secret@example.com]"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        err[0] = 0;
        assert_int_equal(sg(bad[i], &fs, err), -HERALD_EINVAL);
        assert_int_equal(fs.nsuppress, 0);
        assert_null(fs.suppress);
        assert_true(err[0] != 0);
        assert_null(strstr(err, "example"));
        assert_null(strstr(err, "secret"));
    }
}

static void test_twilio_sid(void **state)
{
    (void)state;
    assert_true(feedback_twilio_sid_valid("SM0123456789abcdef0123456789abcdef"));
    assert_true(feedback_twilio_sid_valid("MM0123456789abcdef0123456789abcdef"));
    assert_false(feedback_twilio_sid_valid(NULL));
    assert_false(feedback_twilio_sid_valid(""));
    assert_false(feedback_twilio_sid_valid("SM0123456789abcdef0123456789abcde"));   /* 31 hex */
    assert_false(feedback_twilio_sid_valid("SM0123456789ABCDEF0123456789abcdef"));  /* upper-case hex */
    assert_false(feedback_twilio_sid_valid("sm0123456789abcdef0123456789abcdef"));
    /* herald_id_valid would take an address: a sid never may, it is logged */
    assert_false(feedback_twilio_sid_valid("ann.lindqvist@example.com"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_form_decoding),       cmocka_unit_test(test_twilio_signed_text),
        cmocka_unit_test(test_keywords),            cmocka_unit_test(test_sendgrid_suppresses),
        cmocka_unit_test(test_sendgrid_parse),      cmocka_unit_test(test_twilio_sid),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
