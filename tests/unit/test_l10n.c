/*
 * test_l10n.c - the pages' languages: the .po reader (and its errors, which
 * name the file and the line), plural forms, Accept-Language, the choice
 * of a catalogue, placeholders, and the shipped catalogues themselves:
 * each has every key another has, every reason code and channel has its
 * words, and a translation uses only the placeholders its English text has.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "l10n.h"
#include "locales.h"
#include "pagerender.h"

#ifndef LOCALES_DIR
#error "LOCALES_DIR must name config/locales"
#endif

static struct l10n_catalog *parse(const char *text, char *err, size_t errlen)
{
    struct l10n_catalog *c = NULL;
    err[0] = '\0';
    int rc = l10n_catalog_parse("t.po", "t", text, strlen(text), &c, err, errlen);
    assert_true(rc == 0 ? c != NULL : c == NULL);
    return c;
}

static void test_po(void **state)
{
    (void)state;
    char err[256];
    struct l10n_catalog *c = parse("# a comment\n"
                                   "msgid \"\"\n"
                                   "msgstr \"\"\n"
                                   "\"Plural-Forms: nplurals=2; plural=(n != 1);\\n\"\n"
                                   "\"X-Direction: rtl\\n\"\n"
                                   "\n"
                                   "msgid \"a.b\"\n"
                                   "msgstr \"one \"\n"
                                   "\"line \\\"q\\\" \\\\ end\"\n"
                                   "\n"
                                   "#, fuzzy\n"
                                   "msgid \"fuzzy\"\n"
                                   "msgstr \"not yet\"\n"
                                   "\n"
                                   "msgid \"empty\"\n"
                                   "msgstr \"\"\n"
                                   "msgid \"days\"\n"
                                   "msgid_plural \"days\"\n"
                                   "msgstr[0] \"{n} day\"\n"
                                   "msgstr[1] \"{n} days\"\n",
                                   err, sizeof(err));
    assert_non_null(c);
    assert_string_equal(l10n_catalog_dir(c), "rtl");
    assert_string_equal(l10n_catalog_get(c, "a.b"), "one line \"q\" \\ end");
    assert_null(l10n_catalog_get(c, "fuzzy")); /* as gettext: a fuzzy entry is not translated */
    assert_null(l10n_catalog_get(c, "empty"));
    assert_null(l10n_catalog_get(c, "nope"));
    assert_string_equal(l10n_catalog_nget(c, "days", 1), "{n} day");
    assert_string_equal(l10n_catalog_nget(c, "days", 0), "{n} days");
    assert_string_equal(l10n_catalog_nget(c, "days", 7), "{n} days");
    assert_true(l10n_catalog_is_plural(c, "days"));
    assert_int_equal(l10n_catalog_count(c), 4);
    l10n_catalog_free(c);

    /* Each mistake is refused with the file and the line it is on. */
    struct {
        const char *text, *says;
    } bad[] = {
        {"msgid \"a\"\nmsgstr \"x\"\n\nmsgid \"a\"\nmsgstr \"y\"\n", "t.po:4: \"a\" is defined twice"},
        {"msgid \"a\"\nmsgstr \"x\n", "t.po:2: a string is not closed"},
        {"msgid \"a\"\nmsgstr \"\\q\"\n", "t.po:2: unknown escape"},
        {"msgid \"a\"\n\nmsgstr \"x\"\n", "t.po:1: this msgid needs one msgstr"},
        {"msgid \"a\"\nmsgstr[0] \"x\"\n", "t.po:2: msgstr[N] without msgid_plural"},
        {"msgid \"a\"\nmsgid_plural \"a\"\nmsgstr[0] \"x\"\n", "t.po:1: \"a\" has 1 plural forms; the header's Plural-Forms says 2"},
        {"msgid \"a\"\nmsgid_plural \"a\"\nmsgstr \"x\"\n", "t.po:3: a plural entry takes msgstr[0]"},
        {"msgctxt \"c\"\nmsgid \"a\"\nmsgstr \"x\"\n", "t.po:1: msgctxt is not used"},
        {"\n\nhello\n", "t.po:3: not a .po line"},
        {"\"x\"\n", "t.po:1: a string continues nothing"},
        {"msgid \"a\" x\nmsgstr \"x\"\n", "t.po:1: text after the closing quote"},
        {"msgid \"\"\nmsgstr \"Plural-Forms: nplurals=2; plural=n>1 ? 2 : 0;\\n\"\n", "t.po:1: Plural-Forms: the plural expression gives a form beyond nplurals"},
        {"msgid \"\"\nmsgstr \"Plural-Forms: nplurals=2; plural=(n !! 1);\\n\"\n", "t.po:1: Plural-Forms: the plural expression does not parse"},
        {"msgid \"\"\nmsgstr \"Plural-Forms: two\\n\"\n", "t.po:1: Plural-Forms: write it like"},
        {"msgid \"\"\nmsgstr \"X-Direction: up\\n\"\n", "t.po:1: X-Direction: ltr or rtl"},
        {"msgstr \"x\"\n", "t.po:1: msgstr without a msgid"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        c = parse(bad[i].text, err, sizeof(err));
        if (c || !strstr(err, bad[i].says)) {
            fprintf(stderr, "case %zu: got \"%s\", want \"%s\"\n", i, err, bad[i].says);
            fail();
        }
    }
    struct l10n_catalog *nul = NULL;
    assert_int_equal(l10n_catalog_parse("t.po", "t", "msgid \"a\"\0", 10, &nul, err, sizeof(err)), -HERALD_EINVAL);
    assert_non_null(strstr(err, "t.po:1: the file holds a NUL byte"));
}

static void test_plurals(void **state)
{
    (void)state;
    const char *en = "(n != 1);", *ko = "0;", *fr = "(n > 1)";
    /* Polish: three forms; Arabic: six. */
    const char *pl = "(n==1 ? 0 : n%10>=2 && n%10<=4 && (n%100<10 || n%100>=20) ? 1 : 2);";
    const char *ar = "(n==0 ? 0 : n==1 ? 1 : n==2 ? 2 : n%100>=3 && n%100<=10 ? 3 : n%100>=11 ? 4 : 5);";
    assert_int_equal(l10n_plural_eval(en, 0), 1);
    assert_int_equal(l10n_plural_eval(en, 1), 0);
    assert_int_equal(l10n_plural_eval(en, 2), 1);
    assert_int_equal(l10n_plural_eval(ko, 1), 0);
    assert_int_equal(l10n_plural_eval(ko, 5), 0);
    assert_int_equal(l10n_plural_eval(fr, 0), 0);
    assert_int_equal(l10n_plural_eval(fr, 1), 0);
    assert_int_equal(l10n_plural_eval(fr, 2), 1);
    unsigned long ns[] = {1, 2, 4, 5, 12, 22, 25, 112, 122};
    int want_pl[] = {0, 1, 1, 2, 2, 1, 2, 2, 1};
    for (size_t i = 0; i < sizeof(ns) / sizeof(ns[0]); i++)
        assert_int_equal(l10n_plural_eval(pl, ns[i]), want_pl[i]);
    assert_int_equal(l10n_plural_eval(ar, 0), 0);
    assert_int_equal(l10n_plural_eval(ar, 2), 2);
    assert_int_equal(l10n_plural_eval(ar, 103), 3);
    assert_int_equal(l10n_plural_eval(ar, 111), 4);
    assert_int_equal(l10n_plural_eval(ar, 100), 5);
    assert_int_equal(l10n_plural_eval("n %% 2", 3), -HERALD_EINVAL);
    assert_int_equal(l10n_plural_eval("n / 0", 3), -HERALD_EINVAL);
    assert_int_equal(l10n_plural_eval("(n", 3), -HERALD_EINVAL);
    assert_int_equal(l10n_plural_eval("n ? 1", 3), -HERALD_EINVAL);
    assert_int_equal(l10n_plural_eval("x", 3), -HERALD_EINVAL);
}

static void test_accept_language(void **state)
{
    (void)state;
    struct l10n_accept a[L10N_ACCEPT_MAX];
    size_t n = l10n_accept_parse("ko-KR,ko;q=0.9,en-US;q=0.8,en;q=0.7", a, L10N_ACCEPT_MAX);
    assert_int_equal(n, 4);
    assert_string_equal(a[0].tag, "ko-kr");
    assert_int_equal(a[0].q, 1000);
    assert_string_equal(a[1].tag, "ko");
    assert_int_equal(a[1].q, 900);
    assert_string_equal(a[3].tag, "en");
    assert_int_equal(a[3].q, 700);

    /* Order by q, stable among equals; q=0 means "not this"; junk is skipped. */
    n = l10n_accept_parse(" de ; q=0.5 , fr;q=0, en , *;q=0.1, 12;q=1, x-;q=1, it;q=2, es;q=0.5x, pt;Q=0.500", a,
                          L10N_ACCEPT_MAX);
    assert_int_equal(n, 4);
    assert_string_equal(a[0].tag, "en");
    assert_string_equal(a[1].tag, "de");
    assert_string_equal(a[2].tag, "pt");
    assert_string_equal(a[3].tag, "*");
    assert_int_equal(l10n_accept_parse(NULL, a, L10N_ACCEPT_MAX), 0);
    assert_int_equal(l10n_accept_parse("", a, L10N_ACCEPT_MAX), 0);
    assert_int_equal(l10n_accept_parse(",,,;", a, L10N_ACCEPT_MAX), 0);
    assert_int_equal(l10n_accept_parse("a,b,c,d", a, 2), 2);
}

static struct l10n_set *shipped(void)
{
    struct l10n_set *s = NULL;
    struct strbuf report;
    strbuf_init(&report);
    int n = locales_load(LOCALES_DIR, "en", &s, &report);
    if (n != 0 || report.len) fprintf(stderr, "%s", report.buf);
    assert_int_equal(n, 0);
    assert_int_equal(report.len, 0); /* not even a warning: every shipped catalogue is complete */
    strbuf_free(&report);
    return s;
}

static void test_choose(void **state)
{
    (void)state;
    struct l10n_set *s = shipped();
    const char *cases[][3] = {
        /* profile locale, Accept-Language, the catalogue */
        {"ko", "de-DE", "ko"},
        {"ko-KR", NULL, "ko"},
        {NULL, "ko-KR,ko;q=0.9,en;q=0.8", "ko"},
        {NULL, "fr-FR, de;q=0.5, en;q=0.4", "de"},
        {"fr", "de-AT;q=0.3, en;q=0.2", "de"},
        {"fr", "fr, it", "en"},
        {NULL, NULL, "en"},
        {NULL, "*", "en"},
        {"", "DE", "de"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const struct l10n_catalog *c = l10n_choose(s, cases[i][0], cases[i][1]);
        assert_non_null(c);
        if (strcmp(l10n_catalog_locale(c), cases[i][2]) != 0) {
            fprintf(stderr, "locale %s, Accept-Language %s: got %s, want %s\n", cases[i][0], cases[i][1],
                    l10n_catalog_locale(c), cases[i][2]);
            fail();
        }
    }
    l10n_set_unref(s);
}

/* The placeholders of a text, as a sorted, deduplicated "a,b," string. */
static void placeholders(const char *text, char *buf, size_t n)
{
    char names[16][32];
    size_t k = 0;
    for (const char *p = text; p && (p = strchr(p, '{')) != NULL; p++) {
        size_t len = strspn(p + 1, "abcdefghijklmnopqrstuvwxyz_0123456789");
        if (!len || p[1 + len] != '}' || len >= 32 || k >= 16) continue;
        bool dup = false;
        for (size_t i = 0; i < k; i++)
            dup = dup || (strlen(names[i]) == len && strncmp(names[i], p + 1, len) == 0);
        if (dup) continue;
        memcpy(names[k], p + 1, len);
        names[k++][len] = '\0';
    }
    qsort(names, k, sizeof(names[0]), (int (*)(const void *, const void *))strcmp);
    buf[0] = '\0';
    for (size_t i = 0; i < k; i++) {
        strncat(buf, names[i], n - strlen(buf) - 1);
        strncat(buf, ",", n - strlen(buf) - 1);
    }
}

static void test_shipped_catalogues(void **state)
{
    (void)state;
    struct l10n_set *s = shipped();
    const char *want[] = {"de", "en", "ko"};
    assert_int_equal(l10n_set_count(s), 3);
    for (size_t i = 0; i < 3; i++)
        assert_non_null(l10n_set_find(s, want[i]));

    /* Complete: no catalogue lacks a key another has. */
    struct strbuf report;
    strbuf_init(&report);
    int missing = l10n_set_missing(s, &report);
    if (missing) fprintf(stderr, "%s", report.buf);
    assert_int_equal(missing, 0);
    strbuf_free(&report);

    const struct l10n_catalog *en = l10n_set_find(s, "en");
    for (size_t i = 0; i < l10n_set_count(s); i++) {
        const struct l10n_catalog *c = l10n_set_at(s, i);
        /* Every reason code and every channel has its words. */
        for (int r = 0; r < HERALD_REASON_COUNT; r++) {
            char key[64];
            pagerender_reason_key(r, key, sizeof(key));
            if (!l10n_catalog_get(c, key)) {
                fprintf(stderr, "%s lacks %s\n", l10n_catalog_locale(c), key);
                fail();
            }
        }
        const char *words[] = {"one", "many", "many_title", "address", "address_title", "count"};
        for (int ch = 0; ch < HERALD_CH_COUNT; ch++)
            for (size_t w = 0; w < sizeof(words) / sizeof(words[0]); w++) {
                char key[64];
                snprintf(key, sizeof(key), "channel.%s.%s", herald_channel_name(ch), words[w]);
                assert_non_null(l10n_catalog_get(c, key));
            }
        /* A translation fills only the placeholders its English text has,
         * and a plural entry stays one in every language. */
        for (size_t k = 0; k < l10n_catalog_count(c); k++) {
            const char *key = l10n_catalog_key(c, k);
            char a[256], b[256];
            placeholders(l10n_catalog_get(en, key), a, sizeof(a));
            for (unsigned long n = 0; n < 3; n++) {
                placeholders(l10n_catalog_nget(c, key, n), b, sizeof(b));
                if (strcmp(a, b) != 0) {
                    fprintf(stderr, "%s %s: placeholders %s, English has %s\n", l10n_catalog_locale(c), key, b, a);
                    fail();
                }
            }
            assert_int_equal(l10n_catalog_is_plural(c, key), l10n_catalog_is_plural(en, key));
        }
    }
    l10n_set_unref(s);
}

static void test_put(void **state)
{
    (void)state;
    char err[128];
    struct l10n_set *s = l10n_set_new("en");
    struct l10n_catalog *en = parse("msgid \"hi\"\nmsgstr \"Hello <{name}> & {who} {unknown}{\"\n"
                                    "msgid \"only.en\"\nmsgstr \"English\"\n",
                                    err, sizeof(err));
    struct l10n_catalog *de = NULL;
    const char *de_text = "msgid \"hi\"\nmsgstr \"Hallo {name}\"\n";
    assert_int_equal(l10n_catalog_parse("de.po", "de", de_text, strlen(de_text), &de, err, sizeof(err)), 0);
    l10n_catalog_free(en);
    const char *en_text = "msgid \"hi\"\nmsgstr \"Hello <{name}> & {who} {unknown}{\"\n"
                          "msgid \"only.en\"\nmsgstr \"English\"\n";
    assert_int_equal(l10n_catalog_parse("en.po", "en", en_text, strlen(en_text), &en, err, sizeof(err)), 0);
    l10n_set_add(s, en);
    l10n_set_add(s, de);
    struct l10n_arg args[] = {{"name", "<b>Ann</b>"}, {"who", "you"}};
    struct strbuf sb;
    strbuf_init(&sb);
    /* The catalogue's text is escaped; the caller's fragments are HTML. */
    l10n_put(&sb, s, en, "hi", 1, args, 2);
    assert_string_equal(sb.buf, "Hello &lt;<b>Ann</b>&gt; &amp; you {unknown}{");
    strbuf_reset(&sb);
    l10n_put(&sb, s, de, "hi", 1, args, 2);
    assert_string_equal(sb.buf, "Hallo <b>Ann</b>");
    strbuf_reset(&sb);
    l10n_put(&sb, s, de, "only.en", 1, NULL, 0); /* the default's words where a catalogue has none */
    assert_string_equal(sb.buf, "English");
    strbuf_reset(&sb);
    l10n_put(&sb, s, de, "<none>", 1, NULL, 0); /* a key nobody has shows as itself, escaped */
    assert_string_equal(sb.buf, "&lt;none&gt;");
    strbuf_free(&sb);
    l10n_set_unref(s);
}

/* A directory of catalogues as an operator keeps it. */
static void write_file(const char *dir, const char *name, const char *text)
{
    char path[256];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    FILE *fp = fopen(path, "w");
    assert_non_null(fp);
    fputs(text, fp);
    fclose(fp);
}

static void test_load_dir(void **state)
{
    (void)state;
    char dir[] = "/tmp/herald-test-locales-XXXXXX";
    assert_non_null(mkdtemp(dir));
    struct l10n_set *s = NULL;
    struct strbuf report;
    strbuf_init(&report);

    /* No default catalogue. */
    write_file(dir, "README", "not a catalogue");
    write_file(dir, "de.po", "msgid \"a\"\nmsgstr \"A\"\n");
    assert_int_equal(locales_load(dir, "en", &s, &report), 1);
    assert_null(s);
    assert_non_null(strstr(report.buf, "no catalogue en.po for [public] default_locale = en"));
    strbuf_reset(&report);

    /* An operator's new language is picked up; what it lacks is a warning. */
    write_file(dir, "en.po", "msgid \"a\"\nmsgstr \"A\"\nmsgid \"b\"\nmsgstr \"B\"\n");
    write_file(dir, "pt-BR.po", "msgid \"a\"\nmsgstr \"Á\"\n");
    assert_int_equal(locales_load(dir, "en", &s, &report), 0);
    assert_non_null(s);
    assert_int_equal(l10n_set_count(s), 3);
    assert_non_null(strstr(report.buf, "/pt-BR.po: warning: 1 text untranslated (the first: \"b\")"));
    assert_string_equal(l10n_catalog_locale(l10n_choose(s, NULL, "pt-br;q=0.9")), "pt-BR");
    assert_string_equal(l10n_catalog_locale(l10n_choose(s, "pt", NULL)), "pt-BR");
    l10n_set_unref(s);
    strbuf_reset(&report);

    /* A broken file: the report names it and its line; there is no set. */
    write_file(dir, "ko.po", "msgid \"a\"\nmsgstr \"x\"\n\nmsgid \"a\"\nmsgstr \"y\"\n");
    assert_int_equal(locales_load(dir, "en", &s, &report), 1);
    assert_null(s);
    char want[128];
    snprintf(want, sizeof(want), "%s/ko.po:4: \"a\" is defined twice", dir);
    assert_non_null(strstr(report.buf, want));
    strbuf_reset(&report);

    assert_int_equal(locales_load("/nonexistent/locales", "en", &s, &report), 1);
    assert_non_null(strstr(report.buf, "/nonexistent/locales: [daemon] locales_dir: cannot be opened"));
    strbuf_free(&report);

    const char *names[] = {"README", "de.po", "en.po", "pt-BR.po", "ko.po"};
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        char path[256];
        snprintf(path, sizeof(path), "%s/%s", dir, names[i]);
        unlink(path);
    }
    rmdir(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_po),
        cmocka_unit_test(test_plurals),
        cmocka_unit_test(test_accept_language),
        cmocka_unit_test(test_choose),
        cmocka_unit_test(test_shipped_catalogues),
        cmocka_unit_test(test_put),
        cmocka_unit_test(test_load_dir),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
