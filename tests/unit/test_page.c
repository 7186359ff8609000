/*
 * test_page.c - the pure half of the link pages (pagerender): HTML
 * escaping, form decoding (urlencoded and multipart as mail clients send
 * RFC 8058 one-click), the preference form -> one patch, the plain
 * sentence for every reason code, and the rendered documents (escaped,
 * no script, no external asset, the form carrying its MAC).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

#include "locales.h"
#include "pagerender.h"
#include "tzdb.h"

#ifndef LOCALES_DIR
#error "LOCALES_DIR must name config/locales"
#endif

/* The shipped catalogues; EN is the English page without a time zone. */
static struct l10n_set *locales;
static struct pagerender_lang EN;

static char *escaped(const char *s)
{
    struct strbuf sb;
    strbuf_init(&sb);
    pagerender_escape(&sb, s);
    strbuf_adds(&sb, "");
    return strbuf_detach(&sb, NULL);
}

static void test_escape(void **state)
{
    (void)state;
    char *e = escaped("<script>alert('x')</script> & \"q\"");
    assert_string_equal(e, "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; &quot;q&quot;");
    free(e);
    e = escaped("Zoë \xE2\x82\xAC \xF0\x9F\x98\x80"); /* valid UTF-8 stays */
    assert_string_equal(e, "Zoë \xE2\x82\xAC \xF0\x9F\x98\x80");
    free(e);
    /* A lone continuation byte, an overlong '/', a surrogate, a control character. */
    e = escaped("a\x80"
                "b\xC0\xAF"
                "c\xED\xA0\x80"
                "d\x01"
                "e\x7F");
    assert_string_equal(e, "a\xEF\xBF\xBD"
                           "b\xEF\xBF\xBD\xEF\xBF\xBD"
                           "c\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD"
                           "d\xEF\xBF\xBD"
                           "e\xEF\xBF\xBD");
    free(e);
    e = escaped("truncated \xE2\x82");
    assert_string_equal(e, "truncated \xEF\xBF\xBD\xEF\xBF\xBD");
    free(e);
    e = escaped(NULL);
    assert_string_equal(e, "");
    free(e);
}

static void test_form_urlencoded(void **state)
{
    (void)state;
    struct pagerender_form f;
    char err[128];
    const char *body = "List-Unsubscribe=One-Click&a=x+y%21&empty=&bare&&ch=email&ch=sms";
    assert_int_equal(
        pagerender_form_parse("application/x-www-form-urlencoded", body, strlen(body), &f, err, sizeof(err)),
        0);
    assert_int_equal(f.n, 6);
    assert_string_equal(pagerender_form_get(&f, "List-Unsubscribe"), "One-Click");
    assert_string_equal(pagerender_form_get(&f, "a"), "x y!");
    assert_string_equal(pagerender_form_get(&f, "empty"), "");
    assert_string_equal(pagerender_form_get(&f, "bare"), "");
    assert_string_equal(pagerender_form_get(&f, "ch"), "email");
    assert_true(pagerender_form_has(&f, "ch", "sms"));
    assert_false(pagerender_form_has(&f, "ch", "fax"));
    assert_null(pagerender_form_get(&f, "missing"));
    pagerender_form_free(&f);

    /* No Content-Type: urlencoded too (some clients send none). */
    assert_int_equal(pagerender_form_parse(NULL, "List-Unsubscribe=One-Click", 26, &f, err, sizeof(err)), 0);
    assert_true(pagerender_form_has(&f, "List-Unsubscribe", "One-Click"));
    pagerender_form_free(&f);

    const char *bad[] = {"a=%4", "a=%zz", "a=%00", "%", "a=b%"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_int_equal(pagerender_form_parse(NULL, bad[i], strlen(bad[i]), &f, err, sizeof(err)),
                         -HERALD_EINVAL);
        assert_int_equal(f.n, 0);
        pagerender_form_free(&f);
    }
    struct strbuf many;
    strbuf_init(&many);
    for (int i = 0; i <= PAGERENDER_FORM_MAX_FIELDS; i++)
        strbuf_addf(&many, "f%d=1&", i);
    assert_int_equal(pagerender_form_parse(NULL, many.buf, many.len, &f, err, sizeof(err)), -HERALD_EINVAL);
    pagerender_form_free(&f);
    strbuf_free(&many);
}

static void test_form_multipart(void **state)
{
    (void)state;
    struct pagerender_form f;
    char err[128];
    /* As a mail provider posts RFC 8058 one-click (quoted boundary, preamble-free). */
    const char *body = "--b0undary\r\n"
                       "Content-Disposition: form-data; name=\"List-Unsubscribe\"\r\n"
                       "\r\n"
                       "One-Click\r\n"
                       "--b0undary\r\n"
                       "Content-Disposition: form-data; name=\"upload\"; filename=\"x.txt\"\r\n"
                       "Content-Type: text/plain\r\n"
                       "\r\n"
                       "ignored\r\n"
                       "--b0undary\r\n"
                       "content-disposition: form-data; name=note\r\n"
                       "\r\n"
                       "two\r\nlines\r\n"
                       "--b0undary--\r\n";
    assert_int_equal(pagerender_form_parse("multipart/form-data; boundary=\"b0undary\"", body, strlen(body),
                                           &f, err, sizeof(err)),
                     0);
    assert_int_equal(f.n, 2);
    assert_true(pagerender_form_has(&f, "List-Unsubscribe", "One-Click"));
    assert_string_equal(pagerender_form_get(&f, "note"), "two\r\nlines");
    assert_null(pagerender_form_get(&f, "upload"));
    pagerender_form_free(&f);

    /* With a preamble and an unquoted boundary. */
    const char *b2 = "preamble\r\n--XyZ\r\nContent-Disposition: form-data; name=\"List-Unsubscribe\"\r\n\r\n"
                     "One-Click\r\n--XyZ--";
    assert_int_equal(
        pagerender_form_parse("Multipart/Form-Data;boundary=XyZ", b2, strlen(b2), &f, err, sizeof(err)), 0);
    assert_true(pagerender_form_has(&f, "List-Unsubscribe", "One-Click"));
    pagerender_form_free(&f);

    const char *ct = "multipart/form-data; boundary=q";
    static const char nul[] = "--q\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\nnul\0byte\r\n--q--";
    const char *bad[] = {
        "no delimiter at all",
        "--q\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\nunterminated",
        "--q\r\nContent-Disposition: form-data\r\n\r\nno name\r\n--q--",
        nul,
    };
    size_t lens[] = {strlen(bad[0]), strlen(bad[1]), strlen(bad[2]), sizeof(nul) - 1};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_int_equal(pagerender_form_parse(ct, bad[i], lens[i], &f, err, sizeof(err)), -HERALD_EINVAL);
        pagerender_form_free(&f);
    }
    assert_int_equal(pagerender_form_parse("multipart/form-data", "x", 1, &f, err, sizeof(err)),
                     -HERALD_EINVAL);
    assert_non_null(strstr(err, "boundary"));
}

/* err: every problem's English sentence, joined by " | ". */
static int changes(const char *body, struct pagerender_changes *c, char *err, size_t errlen)
{
    struct pagerender_form f;
    assert_int_equal(pagerender_form_parse(NULL, body, strlen(body), &f, err, errlen), 0);
    struct pagerender_errors errs;
    int rc = pagerender_changes_from_form(&f, c, &errs);
    pagerender_form_free(&f);
    struct strbuf sb;
    strbuf_init(&sb);
    strbuf_adds(&sb, "");
    for (size_t i = 0; i < errs.n; i++) {
        if (i) strbuf_adds(&sb, " | ");
        pagerender_errors_say(&sb, &EN, &errs.e[i]);
    }
    herald_copy(err, errlen, sb.buf);
    strbuf_free(&sb);
    assert_true(rc < 0 ? errs.n > 0 : errs.n == 0);
    return rc;
}

static void assert_json(const json_t *got, const char *want)
{
    json_t *w = json_loads(want, 0, NULL);
    assert_non_null(w);
    if (!json_equal(got, w)) {
        char *g = json_dumps(got, JSON_SORT_KEYS);
        fprintf(stderr, "got  %s\nwant %s\n", g, want);
        free(g);
        fail();
    }
    json_decref(w);
}

static void test_changes(void **state)
{
    (void)state;
    struct pagerender_changes c;
    char err[256];
    /* The form as a browser posts it: sms first, promotions off, news on. */
    assert_int_equal(changes("csrf=x&ch=email&pos_email=2&ch=sms&pos_sms=1&topic=promotions&topic=news"
                             "&topic_on=news&quiet_from=21%3A00&quiet_until=08%3A00&freq_email=1%2F7d"
                             "&freq_sms=&freq_any=+3/1d+&withdraw=sms",
                             &c, err, sizeof(err)),
                     0);
    assert_json(c.patch,
                "{\"channels\":[\"sms\",\"email\"],\"topics\":{\"promotions\":false,\"news\":true},"
                "\"quiet_hours\":\"21:00-08:00\",\"frequency\":{\"email\":\"1/7d\",\"any\":\"3/1d\"}}");
    assert_false(c.withdraw[HERALD_CH_EMAIL]);
    assert_true(c.withdraw[HERALD_CH_SMS]);
    pagerender_changes_free(&c);

    /* Everything off and empty: no channel, quiet hours and limits cleared. */
    assert_int_equal(changes("csrf=x&pos_email=1&pos_sms=2&quiet_from=&quiet_until=", &c, err, sizeof(err)),
                     0);
    assert_json(c.patch, "{\"channels\":[],\"quiet_hours\":null,\"frequency\":null}");
    pagerender_changes_free(&c);

    /* No order chosen before and none now: "channels" stays out of the patch. */
    assert_int_equal(
        changes("channels_default=1&ch=email&pos_email=1&ch=sms&pos_sms=2", &c, err, sizeof(err)), 0);
    assert_json(c.patch, "{\"quiet_hours\":null,\"frequency\":null}");
    pagerender_changes_free(&c);
    assert_int_equal(
        changes("channels_default=1&ch=email&pos_email=2&ch=sms&pos_sms=1", &c, err, sizeof(err)), 0);
    assert_json(c.patch, "{\"channels\":[\"sms\",\"email\"],\"quiet_hours\":null,\"frequency\":null}");
    pagerender_changes_free(&c);

    /* An unchecked channel's position does not clash. */
    assert_int_equal(changes("ch=email&pos_email=1&pos_sms=1", &c, err, sizeof(err)), 0);
    assert_json(c.patch, "{\"channels\":[\"email\"],\"quiet_hours\":null,\"frequency\":null}");
    pagerender_changes_free(&c);

    struct {
        const char *body, *says;
    } bad[] = {
        {"ch=email&pos_email=1&ch=sms&pos_sms=1", "different number"},
        {"ch=fax", "channel"},
        {"ch=email&pos_email=3", "from 1 to"},
        {"ch=email&pos_email=x", "from 1 to"},
        {"quiet_from=21:00", "both"},
        {"quiet_from=21:00&quiet_until=25:00", "21:00"},
        {"quiet_from=9pm&quiet_until=08:00", "21:00"},
        {"quiet_from=08:00&quiet_until=08:00", "differ"},
        {"freq_email=often", "1/7d"},
        {"freq_sms=1/7w", "1/7d"},
        {"topic=promotions&topic_on=news", "does not list"},
        {"topic=Bad%20Topic", "topic"},
        {"evil=1", "does not know"},
        {"freq_fax=1/1d", "does not know"},
        {"pos_fax=1", "does not know"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        err[0] = '\0';
        int rc = changes(bad[i].body, &c, err, sizeof(err));
        if (rc != -HERALD_EINVAL || !strstr(err, bad[i].says)) {
            fprintf(stderr, "form %s: rc %d err \"%s\" (want \"%s\")\n", bad[i].body, rc, err, bad[i].says);
            fail();
        }
        assert_null(c.patch);
    }

    /* Every problem of a form is named, not just the first. */
    assert_int_equal(changes("ch=email&pos_email=1&ch=sms&pos_sms=1&quiet_from=21:00&freq_email=often&evil=1",
                             &c, err, sizeof(err)),
                     -HERALD_EINVAL);
    assert_non_null(strstr(err, "different number"));
    assert_non_null(strstr(err, "both a start and an end"));
    assert_non_null(strstr(err, "How often (emails)"));
    assert_non_null(strstr(err, "does not know"));
    assert_null(c.patch);
}

/* Times in the person's zone, in their language's format, naming the zone;
 * plural forms by the catalogue's rule. */
static void test_times_and_plurals(void **state)
{
    (void)state;
    struct tzdb *db = tzdb_new(NULL);
    const struct tz *seoul = tzdb_get(db, "Asia/Seoul"), *berlin = tzdb_get(db, "Europe/Berlin");
    assert_non_null(seoul);
    assert_non_null(berlin);
    int64_t t;
    assert_int_equal(herald_time_parse("2026-11-29T14:30:00Z", &t), 0);
    struct {
        const char *locale, *zone, *want;
        const struct tz *tz;
    } cases[] = {
        {"ko", "Asia/Seoul", "2026년 11월 29일 23:30 (Asia/Seoul)", seoul},
        {"de", "Europe/Berlin", "29. November 2026, 15:30 Uhr (Europe/Berlin)", berlin},
        {"en", "Asia/Seoul", "29 November 2026, 23:30 (Asia/Seoul)", seoul},
        {"en", NULL, "29 November 2026, 14:30 (UTC)", NULL},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct pagerender_lang L = {locales, l10n_set_find(locales, cases[i].locale), cases[i].tz, cases[i].zone, NULL};
        struct strbuf sb;
        strbuf_init(&sb);
        pagerender_when(&sb, &L, t);
        assert_string_equal(sb.buf, cases[i].want);
        strbuf_free(&sb);
    }
    /* A person's own limit: "1 day" and "7 days"; Korean has one form. */
    struct {
        const char *freq, *locale, *want;
    } pl[] = {
        {"1/1d", "en", "At most 1 email every 1 day, as you asked."},
        {"3/7d", "en", "At most 3 emails every 7 days, as you asked."},
        {"1/2h", "de", "Höchstens 1 E-Mail alle 2 Stunden, wie Sie es wünschen."},
        {"2/1h", "de", "Höchstens 2 E-Mails alle 1 Stunde, wie Sie es wünschen."},
        {"5/30m", "ko", "요청하신 대로 30분마다 최대 이메일 5통."},
    };
    for (size_t i = 0; i < sizeof(pl) / sizeof(pl[0]); i++) {
        json_t *doc = json_pack("{s:s, s:{}, s:{s:{s:s}}, s:[], s:{}, s:{}, s:[]}", "id", "x", "profile",
                                "preferences", "frequency", "email", pl[i].freq, "consent", "consent_current",
                                "suppressed", "messages");
        assert_non_null(doc);
        struct pagerender_ctx ctx = {.lang = {locales, l10n_set_find(locales, pl[i].locale), NULL, NULL, NULL}};
        struct strbuf sb;
        strbuf_init(&sb);
        pagerender_prefs(&sb, doc, &ctx);
        if (!strstr(sb.buf, pl[i].want)) {
            fprintf(stderr, "%s in %s: no \"%s\"\n", pl[i].freq, pl[i].locale, pl[i].want);
            fail();
        }
        assert_non_null(strstr(sb.buf, "<html lang=\""));
        strbuf_free(&sb);
        json_decref(doc);
    }
    tzdb_free(db);
}

/* The order buttons: a move rewrites the positions, whole. */
static void test_move(void **state)
{
    (void)state;
    struct pagerender_form f;
    char err[64];
    const char *body = "ch=email&pos_email=1&pos_sms=2";
    assert_int_equal(pagerender_form_parse(NULL, body, strlen(body), &f, err, sizeof(err)), 0);
    assert_int_equal(pagerender_form_move(&f, "down:email"), 0);
    assert_string_equal(pagerender_form_get(&f, "pos_email"), "2");
    assert_string_equal(pagerender_form_get(&f, "pos_sms"), "1");
    assert_int_equal(pagerender_form_move(&f, "up:sms"), 0); /* already first: no change */
    assert_string_equal(pagerender_form_get(&f, "pos_sms"), "1");
    assert_int_equal(pagerender_form_move(&f, "up:email"), 0);
    assert_string_equal(pagerender_form_get(&f, "pos_email"), "1");
    assert_int_equal(pagerender_form_move(&f, "up:fax"), -HERALD_EINVAL);
    assert_int_equal(pagerender_form_move(&f, "sideways:sms"), -HERALD_EINVAL);
    pagerender_form_free(&f);
    /* Positions missing (a hand-made form): made whole from channel order. */
    assert_int_equal(pagerender_form_parse(NULL, "ch=sms", 6, &f, err, sizeof(err)), 0);
    assert_int_equal(pagerender_form_move(&f, "up:sms"), 0);
    assert_string_equal(pagerender_form_get(&f, "pos_sms"), "1");
    assert_string_equal(pagerender_form_get(&f, "pos_email"), "2");
    pagerender_form_free(&f);
}

static void test_origin(void **state)
{
    (void)state;
    char b[64];
    struct {
        const char *in, *out;
    } ok[] = {
        {"https://Prefs.Example.com", "https://prefs.example.com"},
        {"https://prefs.example.com:443/herald/", "https://prefs.example.com"},
        {"https://prefs.example.com:8443", "https://prefs.example.com:8443"},
        {"http://127.0.0.1:80", "http://127.0.0.1"},
        {"http://127.0.0.1:8025/x", "http://127.0.0.1:8025"},
        {"http://[::1]:80", "http://[::1]"},
        {"http://[::1]", "http://[::1]"},
        {"https://h.example:80", "https://h.example:80"},
    };
    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
        assert_true(pagerender_origin(ok[i].in, b, sizeof(b)));
        assert_string_equal(b, ok[i].out);
    }
    assert_false(pagerender_origin("null", b, sizeof(b)));
    assert_true(pagerender_origin("https://h.example/a/very/long/path/that/does/not/matter/at/all", b, 32));
    assert_string_equal(b, "https://h.example");
    assert_false(
        pagerender_origin("https://a-very-long-host-name-that-does-not-fit-the-buffer.example", b, 32));
}

static char *reason(const char *code, const char *outcome, const char *channel, const char *topic)
{
    struct strbuf sb;
    strbuf_init(&sb);
    pagerender_reason(&sb, &EN, code, outcome, channel, topic);
    return strbuf_detach(&sb, NULL);
}

static void test_reasons(void **state)
{
    (void)state;
    /* Every reason code of herald.h has a sentence of its own. */
    for (int i = 0; i < HERALD_REASON_COUNT; i++) {
        const char *code = herald_reason_name(i);
        assert_true(pagerender_reason_known(code));
        char *s = reason(code, i == HERALD_REASON_NONE ? "sent" : "suppressed", "email", "promotions");
        assert_true(strlen(s) > 20);
        assert_null(strstr(s, "Recorded as"));
        free(s);
    }
    assert_true(pagerender_reason_known("cap:daily"));
    assert_false(pagerender_reason_known("smtp_550"));

    char *s = reason("", "sent", "email", "promotions");
    assert_non_null(strstr(s, "agreed to receive emails"));
    assert_non_null(strstr(s, "promotions"));
    free(s);
    s = reason("topic_opt_out", "suppressed", "sms", "news");
    assert_non_null(strstr(s, "turned off messages about \xE2\x80\x9Cnews\xE2\x80\x9D"));
    free(s);
    s = reason("suppressed", "suppressed", "sms", "news");
    assert_non_null(strstr(s, "phone number"));
    free(s);
    s = reason("quiet_hours", "deferred", "sms", "news");
    assert_non_null(strstr(s, "Held back"));
    free(s);
    s = reason("smtp_<550>", "failed", "email", "news");
    assert_non_null(strstr(s, "Not delivered"));
    assert_non_null(strstr(s, "smtp_&lt;550&gt;"));
    free(s);
    s = reason("no_consent", "suppressed", "sms", "news");
    assert_non_null(strstr(s, "agreed to receive text messages"));
    free(s);
}

static const char *doc_json =
    "{\"id\":\"u-ann\","
    " \"profile\":{\"email\":\"ann@example.com\",\"tz\":\"Europe/Berlin\",\"locale\":\"de\","
    "              \"attributes\":{\"first_name\":\"<b>Ann</b>\",\"vip\":true}},"
    " \"preferences\":{\"channels\":[\"sms\",\"email\"],\"topics\":{\"news\":false},"
    "                  \"quiet_hours\":\"21:00-08:00\",\"frequency\":{\"email\":\"1/7d\"}},"
    " \"consent\":[{\"channel\":\"email\",\"granted\":true,\"at\":\"2026-01-02T03:04:05Z\","
    "               \"source\":\"signup-form\",\"text_version\":\"v3\"},"
    "              {\"channel\":\"sms\",\"granted\":false,\"at\":\"2026-02-02T03:04:05Z\","
    "               \"source\":\"sms_keyword\"}],"
    " \"consent_current\":{\"email\":{\"granted\":true,\"at\":\"2026-01-02T03:04:05Z\"},"
    "                      \"sms\":{\"granted\":false,\"at\":\"2026-02-02T03:04:05Z\"}},"
    " \"suppressed\":{\"email\":false,\"sms\":false},"
    " \"messages\":[{\"campaign\":\"spring-sale\",\"channel\":\"email\",\"topic\":\"promotions\","
    "                "
    "\"outcome\":\"sent\",\"reason\":\"\",\"provider\":\"outbox\",\"at\":\"2026-03-01T09:00:00Z\"},"
    "               {\"campaign\":\"weekly\",\"channel\":\"sms\",\"topic\":\"news\","
    "                \"outcome\":\"suppressed\",\"reason\":\"topic_opt_out\",\"provider\":\"\","
    "                \"at\":\"2026-02-20T09:00:00Z\"}]}";

static char *render_prefs(const struct pagerender_ctx *ctx)
{
    json_t *doc = json_loads(doc_json, 0, NULL);
    assert_non_null(doc);
    struct strbuf sb;
    strbuf_init(&sb);
    pagerender_prefs(&sb, doc, ctx);
    json_decref(doc);
    return strbuf_detach(&sb, NULL);
}

/* No script, no external asset, nothing unescaped from the data. */
static void assert_self_contained(const char *html)
{
    assert_null(strstr(html, "<script"));
    assert_null(strstr(html, " src="));
    assert_null(strstr(html, "href=\"http"));
    assert_null(strstr(html, "<link"));
    assert_null(strstr(html, "<b>"));
    assert_non_null(strstr(html, "<!DOCTYPE html>"));
}

static void test_render_prefs(void **state)
{
    (void)state;
    struct pagerender_ctx ctx = {
        .lang = EN, .campaign = "spring-sale", .topic = "promotions", .channel = "email", .csrf = "MAC\"value"};
    char *html = render_prefs(&ctx);
    assert_self_contained(html);
    /* What is stored, in plain words. */
    assert_non_null(strstr(html, "ann@example.com"));
    assert_non_null(strstr(html, "Europe/Berlin"));
    assert_non_null(strstr(html, "&lt;b&gt;Ann&lt;/b&gt;"));
    assert_non_null(strstr(html, "signup-form"));
    assert_non_null(strstr(html, "2 January 2026, 03:04 (UTC)"));
    assert_non_null(strstr(html, "<html lang=\"en\" dir=\"ltr\">"));
    assert_non_null(strstr(html, "You withdrew your agreement to receive text messages"));
    assert_non_null(strstr(html, "Topics you turned off: \xE2\x80\x9Cnews\xE2\x80\x9D"));
    /* Why this message, and the history with reasons. */
    assert_non_null(strstr(html, "Why you got this email"));
    assert_non_null(strstr(html, "Sent because you had agreed to receive emails"));
    assert_non_null(strstr(html, "you had turned off messages about \xE2\x80\x9Cnews\xE2\x80\x9D"));
    /* The form: its MAC (escaped), the channels in the person's order, topics, values. */
    assert_non_null(strstr(html, "name=\"csrf\" value=\"MAC&quot;value\""));
    /* sms was withdrawn: its box is never ticked (disabled, saying why), and
     * the person's choice of it is kept as a hidden field, first. */
    char *sms = strstr(html, "<input type=\"hidden\" name=\"ch\" value=\"sms\">");
    char *email = strstr(html, "name=\"ch\" value=\"email\" checked");
    assert_non_null(sms);
    assert_non_null(email);
    assert_true(sms < email);
    assert_null(strstr(html, "value=\"sms\" checked"));
    assert_non_null(strstr(html, "<input type=\"checkbox\" disabled aria-describedby=\"nc_sms\">"));
    assert_non_null(strstr(html, "You have not agreed to receive text messages"));
    /* The order by buttons, not numbers. */
    assert_null(strstr(html, "type=\"number\""));
    assert_non_null(strstr(html, "name=\"move\" value=\"down:sms\""));
    assert_non_null(strstr(html, "name=\"move\" value=\"up:email\""));
    assert_non_null(strstr(html, "name=\"topic_on\" value=\"promotions\" checked"));
    assert_non_null(strstr(html, "name=\"topic_on\" value=\"news\">"));
    assert_non_null(strstr(html, "name=\"quiet_from\" value=\"21:00\""));
    assert_non_null(strstr(html, "name=\"freq_email\" value=\"1/7d\""));
    assert_non_null(strstr(html, "name=\"withdraw\" value=\"email\">"));
    assert_null(strstr(html, "name=\"withdraw\" value=\"sms\""));
    assert_null(strstr(html, "role=\"alert\""));
    assert_null(strstr(html, "channels_default"));
    free(html);

    /* A refused form is shown again with what the person typed, and why. */
    struct pagerender_form f;
    char err[64];
    const char *body = "ch=email&pos_email=1&topic=promotions&quiet_from=25%3A00&quiet_until=08%3A00";
    assert_int_equal(pagerender_form_parse(NULL, body, strlen(body), &f, err, sizeof(err)), 0);
    ctx.submitted = &f;
    struct pagerender_errors errs = {.n = 2};
    errs.e[0].key = "error.quiet_format";
    errs.e[1].key = "error.freq_format";
    herald_copy(errs.e[1].arg, sizeof(errs.e[1].arg), "any");
    ctx.errors = &errs;
    html = render_prefs(&ctx);
    assert_non_null(strstr(html, "role=\"alert\""));
    assert_non_null(strstr(html, "Nothing was changed."));
    assert_non_null(strstr(html, "Quiet hours: write times like 21:00 and 08:00."));
    assert_non_null(strstr(html, "How often (All channels together)"));
    assert_non_null(strstr(html, "name=\"quiet_from\" value=\"25:00\""));
    assert_null(strstr(html, "name=\"ch\" value=\"sms\""));
    assert_non_null(strstr(html, "name=\"topic_on\" value=\"promotions\">"));
    free(html);
    pagerender_form_free(&f);

    ctx.submitted = NULL;
    ctx.errors = NULL;
    ctx.saved = true;
    html = render_prefs(&ctx);
    assert_non_null(strstr(html, "Your choices are saved"));
    free(html);
}

static void test_render_unsubscribe(void **state)
{
    (void)state;
    struct pagerender_ctx ctx = {.lang = EN,
                                 .campaign = "c1",
                                 .topic = "promotions",
                                 .channel = "email",
                                 .csrf_all = "ALL",
                                 .prefs_href = "../p/TOK"};
    struct strbuf sb;
    strbuf_init(&sb);
    pagerender_unsubscribe(&sb, &ctx);
    assert_self_contained(sb.buf);
    assert_non_null(strstr(sb.buf, "<title>Stop promotions emails</title>"));
    assert_non_null(strstr(sb.buf, "name=\"List-Unsubscribe\" value=\"One-Click\""));
    assert_non_null(strstr(sb.buf, "name=\"channel\" value=\"all\""));
    assert_non_null(strstr(sb.buf, "name=\"csrf\" value=\"ALL\""));
    assert_non_null(strstr(sb.buf, "Stop all emails"));
    assert_non_null(strstr(sb.buf, "href=\"../p/TOK\""));
    assert_null(strstr(sb.buf, "action="));
    strbuf_free(&sb);

    ctx.topic = "";
    ctx.channel = "sms";
    pagerender_unsubscribe(&sb, &ctx);
    assert_non_null(strstr(sb.buf, "<title>Stop all text messages</title>"));
    assert_null(strstr(sb.buf, "name=\"channel\""));
    strbuf_free(&sb);

    pagerender_message(&sb, &EN, "msg.unsubscribed.title", "msg.unsubscribed.topic", "sms", "<x>&");
    assert_self_contained(sb.buf);
    assert_non_null(strstr(sb.buf, "<title>You are unsubscribed</title>"));
    assert_non_null(strstr(sb.buf, "no more text messages about \xE2\x80\x9C&lt;x&gt;&amp;\xE2\x80\x9D"));
    strbuf_free(&sb);
}

int main(void)
{
    struct strbuf report;
    strbuf_init(&report);
    if (locales_load(LOCALES_DIR, "en", &locales, &report) != 0) {
        fprintf(stderr, "%s", report.buf);
        return 1;
    }
    strbuf_free(&report);
    EN = (struct pagerender_lang){locales, l10n_set_find(locales, "en"), NULL, NULL, NULL};
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_escape),
        cmocka_unit_test(test_form_urlencoded),
        cmocka_unit_test(test_form_multipart),
        cmocka_unit_test(test_changes),
        cmocka_unit_test(test_reasons),
        cmocka_unit_test(test_render_prefs),
        cmocka_unit_test(test_render_unsubscribe),
        cmocka_unit_test(test_origin),
        cmocka_unit_test(test_move),
        cmocka_unit_test(test_times_and_plurals),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    l10n_set_unref(locales);
    return rc;
}
