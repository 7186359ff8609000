/*
 * test_precond.c - If-Match parsing (RFC 9110 grammar: "*", lists, weak
 * tags, empty elements, malformed values), the strong comparison against
 * herald's ETag form, and the argument the write scripts take.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <string.h>

#include "precond.h"

static void test_etag(void **state)
{
    (void)state;
    char b[PRECOND_ETAG_MAX];
    precond_etag(b, sizeof(b), 0);
    assert_string_equal(b, "\"0\"");
    precond_etag(b, sizeof(b), 42);
    assert_string_equal(b, "\"42\"");
    precond_etag(b, sizeof(b), INT64_MAX);
    assert_string_equal(b, "\"9223372036854775807\"");
}

static void test_absent_and_any(void **state)
{
    (void)state;
    struct precond_if_match m;
    assert_int_equal(precond_if_match_parse(NULL, &m, NULL, 0), 0);
    assert_false(m.present);
    assert_true(precond_if_match_ok(&m, false, 0)); /* unconditional: as before */
    assert_true(precond_if_match_ok(&m, true, 7));

    assert_int_equal(precond_if_match_parse(" * ", &m, NULL, 0), 0);
    assert_true(m.present && m.any);
    assert_true(precond_if_match_ok(&m, true, 7));
    assert_false(precond_if_match_ok(&m, false, 0)); /* "*" needs a current representation */
}

static void test_lists(void **state)
{
    (void)state;
    struct precond_if_match m;
    char err[128];
    assert_int_equal(precond_if_match_parse("\"3\"", &m, err, sizeof(err)), 0);
    assert_true(m.present && !m.any);
    assert_int_equal(m.nrevs, 1);
    assert_true(precond_if_match_ok(&m, true, 3));
    assert_false(precond_if_match_ok(&m, true, 4));
    assert_false(precond_if_match_ok(&m, false, 3)); /* nothing to match */

    assert_int_equal(precond_if_match_parse("\"1\", \"5\" ,\t\"9\"", &m, err, sizeof(err)), 0);
    assert_int_equal(m.nrevs, 3);
    assert_true(precond_if_match_ok(&m, true, 5));
    assert_true(precond_if_match_ok(&m, true, 9));
    assert_false(precond_if_match_ok(&m, true, 2));

    /* Empty list elements are ignored (RFC 9110 5.6.1). */
    assert_int_equal(precond_if_match_parse(", \"2\",,", &m, err, sizeof(err)), 0);
    assert_int_equal(m.nrevs, 1);
    assert_true(precond_if_match_ok(&m, true, 2));

    /* Strong comparison: a weak tag never matches; nor does a tag that is
     * not exactly herald's form (leading zeros, signs, other text). */
    const char *never[] = {"W/\"3\"", "\"03\"", "\"+3\"", "\"abc\"", "\"\"", "\"3a\"",
                           "\"99999999999999999999\""};
    for (size_t i = 0; i < sizeof(never) / sizeof(never[0]); i++) {
        assert_int_equal(precond_if_match_parse(never[i], &m, err, sizeof(err)), 0);
        assert_true(m.present);
        assert_int_equal(m.nrevs, 0);
        assert_false(precond_if_match_ok(&m, true, 3));
    }
    assert_int_equal(precond_if_match_parse("W/\"3\", \"4\"", &m, err, sizeof(err)), 0);
    assert_int_equal(m.nrevs, 1);
    assert_true(precond_if_match_ok(&m, true, 4));
    assert_false(precond_if_match_ok(&m, true, 3));
}

static void expect_invalid(const char *value, const char *want)
{
    struct precond_if_match m;
    char err[128] = "";
    assert_int_equal(precond_if_match_parse(value, &m, err, sizeof(err)), -HERALD_EINVAL);
    assert_string_equal(err, want);
}

static void test_invalid(void **state)
{
    (void)state;
    expect_invalid("", "If-Match: empty (expected \"*\" or quoted entity-tags)");
    expect_invalid(" , ", "If-Match: empty (expected \"*\" or quoted entity-tags)");
    expect_invalid("3", "If-Match: expected \"*\" or quoted entity-tags (\"<rev>\")");
    expect_invalid("w/\"3\"", "If-Match: expected \"*\" or quoted entity-tags (\"<rev>\")");
    expect_invalid("\"3", "If-Match: unterminated entity-tag");
    expect_invalid("\"3\" \"4\"", "If-Match: entity-tags must be separated by commas");
    expect_invalid("*, \"3\"", "If-Match: \"*\" must stand alone");
    expect_invalid("\"a b\"", "If-Match: invalid character in an entity-tag");
    expect_invalid("\"a\x7f\"", "If-Match: invalid character in an entity-tag");
    char many[256];
    size_t len = 0;
    for (int i = 0; i <= PRECOND_MAX_TAGS; i++) len += (size_t)snprintf(many + len, sizeof(many) - len, "\"1\",");
    expect_invalid(many, "If-Match: more than 16 entity-tags");
}

static void test_script_arg(void **state)
{
    (void)state;
    struct precond_if_match m;
    struct strbuf sb;
    strbuf_init(&sb);
    precond_if_match_arg(&sb, NULL);
    assert_string_equal(sb.buf, "");
    assert_int_equal(precond_if_match_parse(NULL, &m, NULL, 0), 0);
    precond_if_match_arg(&sb, &m);
    assert_string_equal(sb.buf, "");
    assert_int_equal(precond_if_match_parse("*", &m, NULL, 0), 0);
    precond_if_match_arg(&sb, &m);
    assert_string_equal(sb.buf, "*");
    assert_int_equal(precond_if_match_parse("\"12\", W/\"13\", \"0\"", &m, NULL, 0), 0);
    precond_if_match_arg(&sb, &m);
    assert_string_equal(sb.buf, " 12 0 ");
    /* " 1 " must not be found inside " 12 ": the spaces delimit. */
    assert_null(strstr(sb.buf, " 1 "));
    assert_int_equal(precond_if_match_parse("\"x\"", &m, NULL, 0), 0);
    precond_if_match_arg(&sb, &m);
    assert_string_equal(sb.buf, " "); /* matches nothing, yet is a condition */
    strbuf_free(&sb);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_etag),
        cmocka_unit_test(test_absent_and_any),
        cmocka_unit_test(test_lists),
        cmocka_unit_test(test_invalid),
        cmocka_unit_test(test_script_arg),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
