/*
 * test_mergepatch.c - JSON Merge Patch: every example of RFC 7396
 * appendix A, the section 3 example, and that the inputs are left as they
 * were.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>

#include "mergepatch.h"

static json_t *parse(const char *s)
{
    json_error_t e;
    json_t *v = json_loads(s, JSON_DECODE_ANY, &e);
    if (!v) {
        fprintf(stderr, "bad test JSON %s: %s\n", s, e.text);
        fail();
    }
    return v;
}

static void expect_patch(const char *target, const char *patch, const char *want)
{
    json_t *t = parse(target), *p = parse(patch), *w = parse(want);
    char *t0 = json_dumps(t, JSON_ENCODE_ANY | JSON_SORT_KEYS);
    char *p0 = json_dumps(p, JSON_ENCODE_ANY | JSON_SORT_KEYS);
    json_t *got = mergepatch_apply(t, p);
    if (!json_equal(got, w)) {
        char *g = json_dumps(got, JSON_ENCODE_ANY | JSON_SORT_KEYS);
        fprintf(stderr, "%s + %s: got %s, want %s\n", target, patch, g, want);
        free(g);
        fail();
    }
    /* The inputs are unchanged, and the result shares nothing with them. */
    char *t1 = json_dumps(t, JSON_ENCODE_ANY | JSON_SORT_KEYS);
    char *p1 = json_dumps(p, JSON_ENCODE_ANY | JSON_SORT_KEYS);
    assert_string_equal(t0, t1);
    assert_string_equal(p0, p1);
    json_decref(t);
    json_decref(p);
    assert_true(json_equal(got, w)); /* still whole once the inputs are gone */
    free(t0), free(t1), free(p0), free(p1);
    json_decref(got);
    json_decref(w);
}

static void test_rfc7396_appendix_a(void **state)
{
    (void)state;
    expect_patch("{\"a\":\"b\"}", "{\"a\":\"c\"}", "{\"a\":\"c\"}");
    expect_patch("{\"a\":\"b\"}", "{\"b\":\"c\"}", "{\"a\":\"b\",\"b\":\"c\"}");
    expect_patch("{\"a\":\"b\"}", "{\"a\":null}", "{}");
    expect_patch("{\"a\":\"b\",\"b\":\"c\"}", "{\"a\":null}", "{\"b\":\"c\"}");
    expect_patch("{\"a\":[\"b\"]}", "{\"a\":\"c\"}", "{\"a\":\"c\"}");
    expect_patch("{\"a\":\"c\"}", "{\"a\":[\"b\"]}", "{\"a\":[\"b\"]}");
    expect_patch("{\"a\":{\"b\":\"c\"}}", "{\"a\":{\"b\":\"d\",\"c\":null}}", "{\"a\":{\"b\":\"d\"}}");
    expect_patch("{\"a\":[{\"b\":\"c\"}]}", "{\"a\":[1]}", "{\"a\":[1]}");
    expect_patch("[\"a\",\"b\"]", "[\"c\",\"d\"]", "[\"c\",\"d\"]");
    expect_patch("{\"a\":\"b\"}", "[\"c\"]", "[\"c\"]");
    expect_patch("{\"a\":\"foo\"}", "null", "null");
    expect_patch("{\"a\":\"foo\"}", "\"bar\"", "\"bar\"");
    expect_patch("{\"e\":null}", "{\"a\":1}", "{\"e\":null,\"a\":1}");
    expect_patch("[1,2]", "{\"a\":\"b\",\"c\":null}", "{\"a\":\"b\"}");
    expect_patch("{}", "{\"a\":{\"bb\":{\"ccc\":null}}}", "{\"a\":{\"bb\":{}}}");
}

static void test_rfc7396_section_3(void **state)
{
    (void)state;
    expect_patch("{\"title\":\"Goodbye!\",\"author\":{\"givenName\":\"John\",\"familyName\":\"Doe\"},"
                 "\"tags\":[\"example\",\"sample\"],\"content\":\"This will be unchanged\"}",
                 "{\"title\":\"Hello!\",\"phoneNumber\":\"+01-123-456-7890\",\"author\":{\"familyName\":null},"
                 "\"tags\":[\"example\"]}",
                 "{\"title\":\"Hello!\",\"author\":{\"givenName\":\"John\"},\"tags\":[\"example\"],"
                 "\"content\":\"This will be unchanged\",\"phoneNumber\":\"+01-123-456-7890\"}");
}

static void test_null_target(void **state)
{
    (void)state;
    json_t *p = parse("{\"a\":{\"b\":null,\"c\":1}}");
    json_t *got = mergepatch_apply(NULL, p);
    json_t *w = parse("{\"a\":{\"c\":1}}");
    assert_true(json_equal(got, w));
    json_decref(got);
    json_decref(w);
    json_decref(p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rfc7396_appendix_a),
        cmocka_unit_test(test_rfc7396_section_3),
        cmocka_unit_test(test_null_target),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
