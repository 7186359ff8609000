/*
 * test_template.c - the `{{field}}` renderer: syntax (whitespace, lone
 * braces, unclosed and bad tags with their offsets), value forms (strings,
 * numbers, booleans), missing fields and how they are counted, the signed
 * link fields, HTML escaping, and the list of fields a template uses.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "template.h"

static json_t *attrs(const char *json)
{
    json_error_t jerr;
    json_t *o = json_loads(json, 0, &jerr);
    if (!o) {
        fprintf(stderr, "bad test JSON: %s\n", jerr.text);
        fail();
    }
    return o;
}

/* Compiles and renders src; checks the text and the missing count. */
static void expect_render(const char *src, const char *attr_json, const struct template_vars *vars,
                          enum template_escape esc, const char *want, unsigned want_missing)
{
    struct template *t = NULL;
    char err[128] = "";
    if (template_compile(src, &t, err, sizeof(err)) != 0) {
        fprintf(stderr, "compile \"%s\": %s\n", src, err);
        fail();
    }
    json_t *a = attr_json ? attrs(attr_json) : NULL;
    struct strbuf sb;
    strbuf_init(&sb);
    unsigned missing = template_render(t, a, vars, esc, &sb);
    if (strcmp(sb.buf, want) != 0 || missing != want_missing) {
        fprintf(stderr, "render \"%s\": got \"%s\" (%u missing), want \"%s\" (%u missing)\n", src, sb.buf, missing,
                want, want_missing);
        fail();
    }
    strbuf_free(&sb);
    json_decref(a);
    template_free(t);
}

static void expect_compile_error(const char *src, const char *want)
{
    struct template *t = (struct template *)&t; /* must come back NULL */
    char err[128] = "";
    assert_int_equal(template_compile(src, &t, err, sizeof(err)), -HERALD_EINVAL);
    assert_null(t);
    if (strcmp(err, want) != 0) {
        fprintf(stderr, "compile \"%s\": got error \"%s\", want \"%s\"\n", src, err, want);
        fail();
    }
}

static void test_literal_only(void **state)
{
    (void)state;
    expect_render("", NULL, NULL, TEMPLATE_RAW, "", 0);
    expect_render("plain text", NULL, NULL, TEMPLATE_RAW, "plain text", 0);
    /* Lone braces and a closing pair are text. */
    expect_render("a { b } c }} d {x} {", NULL, NULL, TEMPLATE_RAW, "a { b } c }} d {x} {", 0);
    expect_render("}}{{name}}}}", "{\"name\":\"N\"}", NULL, TEMPLATE_RAW, "}}N}}", 0);
    /* Literal text is the template's own markup: never escaped. */
    expect_render("<b>&amp;</b>", NULL, NULL, TEMPLATE_HTML, "<b>&amp;</b>", 0);
}

static void test_fields_and_whitespace(void **state)
{
    (void)state;
    const char *a = "{\"first_name\":\"Ann\",\"last-name\":\"Lee\",\"x.y\":\"dot\"}";
    expect_render("Hi {{first_name}}!", a, NULL, TEMPLATE_RAW, "Hi Ann!", 0);
    expect_render("Hi {{ first_name }}!", a, NULL, TEMPLATE_RAW, "Hi Ann!", 0);
    expect_render("Hi {{\tfirst_name\n}}!", a, NULL, TEMPLATE_RAW, "Hi Ann!", 0);
    expect_render("{{first_name}}{{last-name}}", a, NULL, TEMPLATE_RAW, "AnnLee", 0);
    expect_render("{{x.y}}", a, NULL, TEMPLATE_RAW, "dot", 0);
    expect_render("{{first_name}} {{first_name}}", a, NULL, TEMPLATE_RAW, "Ann Ann", 0);
    /* Names are case-sensitive, like JSON keys. */
    expect_render("{{First_Name}}", a, NULL, TEMPLATE_RAW, "", 1);
}

static void test_value_forms(void **state)
{
    (void)state;
    const char *a = "{\"n\":42,\"neg\":-7,\"big\":9007199254740993,\"r\":19.99,\"half\":0.5,\"whole\":3.0,"
                    "\"tiny\":1e-7,\"t\":true,\"f\":false,\"s\":\"\",\"u\":\"\\u00e9\"}";
    expect_render("{{n}}|{{neg}}|{{big}}", a, NULL, TEMPLATE_RAW, "42|-7|9007199254740993", 0);
    expect_render("{{r}}|{{half}}|{{whole}}|{{tiny}}", a, NULL, TEMPLATE_RAW, "19.99|0.5|3.0|1e-07", 0);
    expect_render("{{t}}/{{f}}", a, NULL, TEMPLATE_RAW, "true/false", 0);
    /* An empty string is a value the person has, not a missing one. */
    expect_render("[{{s}}]", a, NULL, TEMPLATE_RAW, "[]", 0);
    expect_render("{{u}}", a, NULL, TEMPLATE_RAW, "\xc3\xa9", 0);
}

static void test_missing_counts(void **state)
{
    (void)state;
    const char *a = "{\"nul\":null,\"obj\":{\"a\":1},\"arr\":[1,2],\"name\":\"Ann\"}";
    expect_render("[{{nul}}][{{obj}}][{{arr}}][{{nope}}]", a, NULL, TEMPLATE_RAW, "[][][][]", 4);
    expect_render("{{name}} {{nope}} {{nope}}", a, NULL, TEMPLATE_RAW, "Ann  ", 2); /* each use counts */
    expect_render("Hi {{name}}", NULL, NULL, TEMPLATE_RAW, "Hi ", 1);               /* no attributes at all */
    expect_render("Hi {{name}}", "[]", NULL, TEMPLATE_RAW, "Hi ", 1);               /* not an object */
}

/* `{{name|default text}}`: the text stands in for a field the person
 * lacks (or has empty), is escaped as a value is, and is not missing. */
static void test_defaults(void **state)
{
    (void)state;
    const char *a = "{\"name\":\"Ann\",\"blank\":\"\",\"n\":0,\"no\":false,\"nul\":null,\"obj\":{}}";
    expect_render("Hi {{name|there}}", a, NULL, TEMPLATE_RAW, "Hi Ann", 0);
    expect_render("Hi {{nope|there}}!", a, NULL, TEMPLATE_RAW, "Hi there!", 0);
    expect_render("Hi {{ nope | dear friend }}!", a, NULL, TEMPLATE_RAW, "Hi dear friend!", 0);
    expect_render("Hi {{blank|there}}", a, NULL, TEMPLATE_RAW, "Hi there", 0);
    expect_render("[{{nul|x}}][{{obj|y}}]", a, NULL, TEMPLATE_RAW, "[x][y]", 0);
    expect_render("[{{n|x}}][{{no|y}}]", a, NULL, TEMPLATE_RAW, "[0][false]", 0); /* values, not gaps */
    expect_render("[{{nope|}}][{{nope}}]", a, NULL, TEMPLATE_RAW, "[][]", 1);      /* empty default */
    expect_render("{{nope|a|b {c}}", a, NULL, TEMPLATE_RAW, "a|b {c", 0);          /* up to the first }} */
    expect_render("Hi {{name|x}}", NULL, NULL, TEMPLATE_RAW, "Hi x", 0);           /* no attributes at all */
    /* The same name with and without a default: each use its own way. */
    expect_render("{{nope|A}}{{nope}}{{nope|B}}", a, NULL, TEMPLATE_RAW, "AB", 1);
    expect_render("<b>{{nope|Tom & \"Jerry\" <3}}</b>", a, NULL, TEMPLATE_HTML,
                  "<b>Tom &amp; &quot;Jerry&quot; &lt;3</b>", 0);
    expect_render("{{nope|Tom & Jerry}}", a, NULL, TEMPLATE_RAW, "Tom & Jerry", 0);

    struct template *t = NULL;
    assert_int_equal(template_compile("{{a|x}} {{b}} {{a|y}}", &t, NULL, 0), 0);
    assert_int_equal(template_nfields(t), 2); /* the name, not the default, is the field */
    assert_string_equal(template_field(t, 0), "a");
    assert_string_equal(template_field(t, 1), "b");
    template_free(t);
}

static void test_links(void **state)
{
    (void)state;
    struct template_vars v = {.unsubscribe_url = "https://h.example/u?t=a&b=c",
                              .preferences_url = "https://h.example/p?t=x"};
    expect_render("{{unsubscribe_url}} {{ preferences_url }}", NULL, &v, TEMPLATE_RAW,
                  "https://h.example/u?t=a&b=c https://h.example/p?t=x", 0);
    expect_render("<a href=\"{{unsubscribe_url}}\">", NULL, &v, TEMPLATE_HTML,
                  "<a href=\"https://h.example/u?t=a&amp;b=c\">", 0);
    /* Unset links are missing; a profile attribute of the same name never
     * stands in for them. */
    struct template_vars none = {0};
    const char *a = "{\"unsubscribe_url\":\"https://evil.example\",\"preferences_url\":\"x\"}";
    expect_render("[{{unsubscribe_url}}][{{preferences_url}}]", a, &none, TEMPLATE_RAW, "[][]", 2);
    expect_render("[{{unsubscribe_url}}]", a, NULL, TEMPLATE_RAW, "[]", 1);
}

static void test_html_escaping(void **state)
{
    (void)state;
    const char *a = "{\"x\":\"<script>alert('a&b')</script> \\\"q\\\"\",\"n\":1}";
    expect_render("<p>{{x}}</p>", a, NULL, TEMPLATE_HTML,
                  "<p>&lt;script&gt;alert(&#39;a&amp;b&#39;)&lt;/script&gt; &quot;q&quot;</p>", 0);
    expect_render("{{x}}", a, NULL, TEMPLATE_RAW, "<script>alert('a&b')</script> \"q\"", 0);
    expect_render("{{n}}", a, NULL, TEMPLATE_HTML, "1", 0);

    struct strbuf sb;
    strbuf_init(&sb);
    template_escape_html(&sb, "a&b", 3);
    template_escape_html(&sb, "", 0);
    template_escape_html(&sb, "&&", 1); /* length-bounded */
    assert_string_equal(sb.buf, "a&amp;b&amp;");
    /* Long text, scanned sixteen bytes at a time where the CPU can: each
     * character to escape found wherever it stands, none past the end. */
    static const char *const specials[] = {"&", "<", ">", "\"", "'"};
    static const char *const escaped[] = {"&amp;", "&lt;", "&gt;", "&quot;", "&#39;"};
    for (size_t k = 0; k < 5; k++) {
        for (size_t at = 0; at < 40; at++) {
            char in[41], want[64];
            memset(in, 'x', 40);
            in[40] = '\0';
            in[at] = specials[k][0];
            snprintf(want, sizeof(want), "%.*s%s%s", (int)at, in, escaped[k], in + at + 1);
            strbuf_reset(&sb);
            template_escape_html(&sb, in, 40);
            assert_string_equal(sb.buf, want);
            strbuf_reset(&sb);
            template_escape_html(&sb, in, at); /* stops before it */
            assert_int_equal(sb.len, at);
        }
    }
    strbuf_free(&sb);
}

static void test_compile_errors(void **state)
{
    (void)state;
    expect_compile_error("Hi {{first_name", "unclosed {{ at offset 3");
    expect_compile_error("{{", "unclosed {{ at offset 0");
    expect_compile_error("ok {{a}} then {{b }", "unclosed {{ at offset 14");
    expect_compile_error("x{{}}", "empty field name at offset 1");
    expect_compile_error("x{{   }}", "empty field name at offset 1");
    expect_compile_error("{{first name}}", "bad field name at offset 0 (expected 1..64 of A-Z a-z 0-9 _ . -)");
    expect_compile_error("ab{{{x}}}", "bad field name at offset 2 (expected 1..64 of A-Z a-z 0-9 _ . -)");
    expect_compile_error("{{a b|c}}", "bad field name at offset 0 (expected 1..64 of A-Z a-z 0-9 _ . -)");
    expect_compile_error("x{{|c}}", "empty field name at offset 1");
    expect_compile_error("{{a|b", "unclosed {{ at offset 0");
    expect_compile_error("Hi {{unsubscribe_url|#}}", "unsubscribe_url takes no default at offset 3");
    expect_compile_error("{{ preferences_url | x }}", "preferences_url takes no default at offset 0");
    expect_compile_error("{{caf\xc3\xa9}}", "bad field name at offset 0 (expected 1..64 of A-Z a-z 0-9 _ . -)");

    char src[80];
    char name[66];
    memset(name, 'n', 64);
    name[64] = '\0';
    snprintf(src, sizeof(src), "{{%s}}", name);
    struct template *t = NULL;
    assert_int_equal(template_compile(src, &t, NULL, 0), 0); /* 64 is fine; err may be absent */
    template_free(t);
    name[64] = 'n';
    name[65] = '\0';
    snprintf(src, sizeof(src), "{{%s}}", name);
    expect_compile_error(src, "bad field name at offset 0 (expected 1..64 of A-Z a-z 0-9 _ . -)");
}

static void test_fields_list(void **state)
{
    (void)state;
    struct template *t = NULL;
    char err[128];
    assert_int_equal(template_compile("{{b}} {{ a }} {{b}} {{unsubscribe_url}} {{c}} {{a}}", &t, err, sizeof(err)),
                     0);
    assert_int_equal(template_nfields(t), 4);
    assert_string_equal(template_field(t, 0), "b");
    assert_string_equal(template_field(t, 1), "a");
    assert_string_equal(template_field(t, 2), "unsubscribe_url");
    assert_string_equal(template_field(t, 3), "c");
    assert_null(template_field(t, 4));
    template_free(t);

    assert_int_equal(template_compile("no fields {here}", &t, err, sizeof(err)), 0);
    assert_int_equal(template_nfields(t), 0);
    assert_null(template_field(t, 0));
    template_free(t);

    /* NULL templates (an absent html part) are harmless. */
    assert_int_equal(template_nfields(NULL), 0);
    assert_null(template_field(NULL, 0));
    struct strbuf sb;
    strbuf_init(&sb);
    assert_int_equal(template_render(NULL, NULL, NULL, TEMPLATE_RAW, &sb), 0);
    strbuf_free(&sb);
    template_free(NULL);
}

static void test_render_appends(void **state)
{
    (void)state;
    struct template *t = NULL;
    assert_int_equal(template_compile("{{a}}", &t, NULL, 0), 0);
    json_t *a = attrs("{\"a\":\"x\"}");
    struct strbuf sb;
    strbuf_init(&sb);
    strbuf_adds(&sb, "pre:");
    template_render(t, a, NULL, TEMPLATE_RAW, &sb);
    template_render(t, a, NULL, TEMPLATE_RAW, &sb);
    assert_string_equal(sb.buf, "pre:xx");
    strbuf_free(&sb);

    /* A template that renders to nothing still leaves a string. */
    strbuf_init(&sb);
    template_render(t, NULL, NULL, TEMPLATE_RAW, &sb);
    assert_non_null(sb.buf);
    assert_string_equal(sb.buf, "");
    strbuf_free(&sb);
    json_decref(a);
    template_free(t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_literal_only),
        cmocka_unit_test(test_fields_and_whitespace),
        cmocka_unit_test(test_value_forms),
        cmocka_unit_test(test_missing_counts),
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_links),
        cmocka_unit_test(test_html_escaping),
        cmocka_unit_test(test_compile_errors),
        cmocka_unit_test(test_fields_list),
        cmocka_unit_test(test_render_appends),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
