/*
 * test_util.c - the shared pieces of herald.h: RFC 3339 time both ways
 * (leap years, offsets, fractions, impossible dates), identifiers, strbuf,
 * the bounded error writer and the X-macro name tables.
 */
#include <setjmp.h>
#include <limits.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "herald.h"

static int64_t parse_ok(const char *s)
{
    int64_t t = -1;
    if (herald_time_parse(s, &t) != 0) {
        fprintf(stderr, "expected \"%s\" to parse\n", s);
        fail();
    }
    return t;
}

static void assert_formats(int64_t t, const char *want)
{
    char buf[32];
    herald_time_format(t, buf, sizeof(buf));
    assert_string_equal(buf, want);
}

static void test_time_known_values(void **state)
{
    (void)state;
    assert_int_equal(parse_ok("1970-01-01T00:00:00Z"), 0);
    assert_int_equal(parse_ok("2000-01-01T00:00:00Z"), 946684800);
    assert_int_equal(parse_ok("2026-12-01T09:00:00Z"), 1796115600);
    assert_int_equal(parse_ok("2038-01-19T03:14:08Z"), INT64_C(2147483648)); /* past 32-bit time_t */
    assert_formats(0, "1970-01-01T00:00:00Z");
    assert_formats(1796115600, "2026-12-01T09:00:00Z");
    assert_formats(INT64_C(2147483648), "2038-01-19T03:14:08Z");
}

static void test_time_round_trips(void **state)
{
    (void)state;
    static const char *const stamps[] = {
        "1970-01-01T00:00:00Z", "1999-12-31T23:59:59Z", "2000-02-29T12:00:00Z", "2024-02-29T23:59:59Z",
        "2024-03-01T00:00:00Z", "2025-12-31T23:59:59Z", "2026-01-01T00:00:00Z", "2096-02-29T06:30:00Z",
        "2400-02-29T00:00:00Z", "2026-06-15T13:45:07Z",
    };
    for (size_t i = 0; i < sizeof(stamps) / sizeof(stamps[0]); i++) assert_formats(parse_ok(stamps[i]), stamps[i]);
    /* Every day boundary over two leap cycles formats and parses back. */
    char buf[32];
    for (int64_t t = parse_ok("2023-01-01T00:00:00Z"); t < parse_ok("2029-01-01T00:00:00Z"); t += 86400 + 3601) {
        herald_time_format(t, buf, sizeof(buf));
        assert_int_equal(parse_ok(buf), t);
    }
}

static void test_time_offsets_and_forms(void **state)
{
    (void)state;
    int64_t utc = parse_ok("2026-12-01T09:00:00Z");
    assert_int_equal(parse_ok("2026-12-01T10:00:00+01:00"), utc);
    assert_int_equal(parse_ok("2026-12-01T04:30:00-04:30"), utc);
    assert_int_equal(parse_ok("2026-12-02T08:59:00+23:59"), utc);
    assert_int_equal(parse_ok("2026-12-01T09:00:00+00:00"), utc);
    assert_int_equal(parse_ok("2026-12-01T09:00:00-00:00"), utc);
    assert_int_equal(parse_ok("2026-12-01t09:00:00z"), utc);
    assert_int_equal(parse_ok("2026-12-01 09:00:00Z"), utc);
    assert_int_equal(parse_ok("2026-12-01T09:00:00.999Z"), utc); /* fractions are dropped */
    assert_int_equal(parse_ok("2026-12-01T09:00:00.5+01:00"), utc - 3600);
    /* An offset that crosses a year and a leap day. */
    assert_int_equal(parse_ok("2025-01-01T00:30:00+01:00"), parse_ok("2024-12-31T23:30:00Z"));
    assert_int_equal(parse_ok("2024-02-28T23:00:00-02:00"), parse_ok("2024-02-29T01:00:00Z"));
    /* A leap second is clamped to :59. */
    assert_int_equal(parse_ok("2016-12-31T23:59:60Z"), parse_ok("2016-12-31T23:59:59Z"));
}

static void test_time_invalid(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "", "2026", "2026-12-01", "2026-12-01T09:00:00", "2026-12-01T09:00Z", "2026-12-01T09:00:00+0100",
        "2026-12-01T09:00:00+01", "2026-12-01T09:00:00 Z", "2026-12-01T09:00:00Zjunk", "2026-13-01T09:00:00Z",
        "2026-00-01T09:00:00Z", "2026-12-00T09:00:00Z", "2026-12-32T09:00:00Z", "2026-04-31T09:00:00Z",
        "2026-02-29T09:00:00Z", "2100-02-29T09:00:00Z", "1900-02-29T00:00:00Z", "2026-02-30T00:00:00Z",
        "2026-12-01T24:00:00Z", "2026-12-01T09:60:00Z", "2026-12-01T09:00:61Z", "2026-12-01T09:00:00+24:00",
        "2026-12-01T09:00:00+01:60", "2026-12-01T09:00:00.Z", "1969-12-31T23:59:59Z", "26-12-01T09:00:00Z",
        "2026/12/01T09:00:00Z", "2026-12-01X09:00:00Z", "+2026-12-01T09:00:00Z", "2026-1-01T09:00:00Z",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        int64_t t = 12345;
        if (herald_time_parse(bad[i], &t) != -HERALD_EINVAL) {
            fprintf(stderr, "expected \"%s\" to be refused\n", bad[i]);
            fail();
        }
        assert_int_equal(t, 12345); /* untouched on failure */
    }
}

static void test_time_format_small_buffer(void **state)
{
    (void)state;
    char buf[8];
    memset(buf, 'x', sizeof(buf));
    herald_time_format(0, buf, sizeof(buf));
    assert_string_equal(buf, "1970-01"); /* truncated, still terminated */
}

static void test_id_valid(void **state)
{
    (void)state;
    assert_true(herald_id_valid("u1"));
    assert_true(herald_id_valid("spring-sale-2026"));
    assert_true(herald_id_valid("a.b_c:d-g"));
    /* Ids reach logs and audit records: contact data can never be one. */
    assert_false(herald_id_valid("ann@example.com"));
    assert_false(herald_id_valid("+15551234567"));
    assert_false(herald_id_valid("a+b"));
    assert_true(herald_id_valid("..."));
    assert_false(herald_id_valid(""));
    assert_false(herald_id_valid("."));
    assert_false(herald_id_valid(".."));
    assert_false(herald_id_valid("a b"));
    assert_false(herald_id_valid("a/b"));
    assert_false(herald_id_valid("a\\b"));
    assert_false(herald_id_valid("a\nb"));
    assert_false(herald_id_valid("a*"));
    assert_false(herald_id_valid("caf\xc3\xa9"));

    char id[HERALD_ID_MAX + 2];
    memset(id, 'a', sizeof(id));
    id[HERALD_ID_MAX] = '\0';
    assert_true(herald_id_valid(id));
    id[HERALD_ID_MAX] = 'a';
    id[HERALD_ID_MAX + 1] = '\0';
    assert_false(herald_id_valid(id));
}

static void test_strbuf(void **state)
{
    (void)state;
    struct strbuf sb;
    strbuf_init(&sb);
    assert_null(sb.buf);
    strbuf_add(&sb, "", 0);
    assert_non_null(sb.buf);
    assert_string_equal(sb.buf, "");
    strbuf_adds(&sb, "hello");
    strbuf_add(&sb, ", world!!", 7);
    assert_string_equal(sb.buf, "hello, world");
    assert_int_equal(sb.len, 12);
    strbuf_addf(&sb, " %d-%s", 42, "x");
    assert_string_equal(sb.buf, "hello, world 42-x");

    /* Growth well past the first allocation keeps every byte. */
    strbuf_reset(&sb);
    assert_int_equal(sb.len, 0);
    assert_string_equal(sb.buf, "");
    for (int i = 0; i < 1000; i++) strbuf_addf(&sb, "%03d", i);
    assert_int_equal(sb.len, 3000);
    assert_memory_equal(sb.buf + 2997, "999", 4);
    assert_true(sb.cap > sb.len);

    /* A result that fits the room exactly, one byte more, and far more. */
    for (size_t extra = 0; extra < 3; extra++) {
        strbuf_reset(&sb);
        strbuf_adds(&sb, "ab");
        size_t room = sb.cap - sb.len; /* bytes left, the NUL included */
        size_t want = room - 1 + extra;
        char *big = malloc(want + 1);
        memset(big, 'z', want);
        big[want] = '\0';
        strbuf_addf(&sb, "%s", big);
        assert_int_equal(sb.len, 2 + want);
        assert_memory_equal(sb.buf + 2, big, want + 1);
        free(big);
    }
    strbuf_reset(&sb);
    strbuf_addf(&sb, "%s", "");
    assert_int_equal(sb.len, 0);
    assert_string_equal(sb.buf, "");

    strbuf_reset(&sb);
    const long long nums[] = {0, 7, -1, 1234567890123LL, LLONG_MAX, LLONG_MIN};
    for (size_t i = 0; i < sizeof(nums) / sizeof(nums[0]); i++) {
        char want[32];
        snprintf(want, sizeof(want), "%lld", nums[i]);
        strbuf_reset(&sb);
        strbuf_addll(&sb, nums[i]);
        assert_string_equal(sb.buf, want);
    }
    char small[4];
    assert_int_equal(herald_copy(small, sizeof(small), "abcdef"), 3);
    assert_string_equal(small, "abc");
    assert_int_equal(herald_copy(small, sizeof(small), "x"), 1);
    assert_string_equal(small, "x");

    /* Embedded NULs are data, not terminators. */
    strbuf_reset(&sb);
    strbuf_add(&sb, "a\0b", 3);
    assert_int_equal(sb.len, 3);
    assert_memory_equal(sb.buf, "a\0b", 4);

    size_t len = 0;
    char *p = strbuf_detach(&sb, &len);
    assert_int_equal(len, 3);
    assert_null(sb.buf);
    assert_int_equal(sb.len, 0);
    free(p);

    strbuf_free(&sb);
    strbuf_free(&sb); /* freeing twice is harmless */
}

/* herald.h promises "always NUL-terminated": that must hold for a buffer
 * nothing was ever written to, too (detach of an empty buffer, or an addf
 * that formats to nothing). */
static void test_strbuf_empty_is_terminated(void **state)
{
    (void)state;
    struct strbuf sb;
    size_t len = 99;
    strbuf_init(&sb);
    char *p = strbuf_detach(&sb, &len);
    assert_non_null(p);
    assert_int_equal(len, 0);
    assert_int_equal(p[0], '\0');
    free(p);

    strbuf_init(&sb);
    strbuf_addf(&sb, "%s", "");
    assert_non_null(sb.buf);
    assert_int_equal(sb.len, 0);
    assert_int_equal(sb.buf[0], '\0');
    strbuf_free(&sb);
}

static void test_seterr_bounded(void **state)
{
    (void)state;
    char err[8];
    herald_seterr(err, sizeof(err), "%s: %d", "field", 12345);
    assert_string_equal(err, "field: ");
    herald_seterr(NULL, 0, "ignored %d", 1);
    herald_seterr(err, 0, "ignored %d", 1);
    assert_string_equal(err, "field: ");
}

static void test_names(void **state)
{
    (void)state;
    assert_string_equal(herald_channel_name(HERALD_CH_EMAIL), "email");
    assert_string_equal(herald_channel_name(HERALD_CH_SMS), "sms");
    assert_string_equal(herald_channel_name(-1), "");
    assert_string_equal(herald_channel_name(HERALD_CH_COUNT), "");
    assert_int_equal(herald_channel_from_name("email"), HERALD_CH_EMAIL);
    assert_int_equal(herald_channel_from_name("sms"), HERALD_CH_SMS);
    assert_int_equal(herald_channel_from_name("fax"), -1);
    assert_int_equal(herald_channel_from_name("EMAIL"), -1);
    assert_string_equal(herald_outcome_name(HERALD_OUTCOME_SENT), "sent");
    assert_string_equal(herald_outcome_name(HERALD_OUTCOME_DEFERRED), "deferred");
    assert_string_equal(herald_reason_name(HERALD_REASON_NONE), "");
    assert_string_equal(herald_reason_name(HERALD_REASON_TOPIC_OPT_OUT), "topic_opt_out");
    assert_string_equal(herald_reason_name(HERALD_REASON_COUNT), "");
    /* Every reason but NONE has a distinct, non-empty name and a doc line. */
    for (int i = 1; i < HERALD_REASON_COUNT; i++) {
        assert_true(herald_reason_name(i)[0] != '\0');
        assert_true(herald_reason_doc(i)[0] != '\0');
        for (int k = 1; k < i; k++) assert_string_not_equal(herald_reason_name(i), herald_reason_name(k));
    }
    assert_string_equal(herald_strerror(0), "success");
    assert_string_equal(herald_strerror(-HERALD_ETOOBIG), "too large");
    assert_string_equal(herald_strerror(-1000), "unknown error");
}

static void test_xalloc(void **state)
{
    (void)state;
    char *s = xstrndup("abcdef", 3);
    assert_string_equal(s, "abc");
    s = xrealloc(s, 100);
    assert_string_equal(s, "abc");
    free(s);
    int *z = xcalloc(4, sizeof(int));
    for (int i = 0; i < 4; i++) assert_int_equal(z[i], 0);
    free(z);
    free(xmalloc(0)); /* never NULL, even for zero bytes */
}

/* %-decoding of URL parts (a Redis URL's user and password, query values):
 * escapes in either case, a bad or cut escape and %00 refused. */
static void test_pct_decode(void **state)
{
    (void)state;
    char *v = herald_pct_decode("p%40ss%3a%2Fw%2f", 16);
    assert_string_equal(v, "p@ss:/w/");
    free(v);
    v = herald_pct_decode("plain", 3); /* n bytes only */
    assert_string_equal(v, "pla");
    free(v);
    v = herald_pct_decode("", 0);
    assert_string_equal(v, "");
    free(v);
    assert_null(herald_pct_decode("a%4", 3));
    assert_null(herald_pct_decode("a%", 2));
    assert_null(herald_pct_decode("%zz", 3));
    assert_null(herald_pct_decode("x%00y", 5));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_time_known_values),
        cmocka_unit_test(test_time_round_trips),
        cmocka_unit_test(test_time_offsets_and_forms),
        cmocka_unit_test(test_time_invalid),
        cmocka_unit_test(test_time_format_small_buffer),
        cmocka_unit_test(test_id_valid),
        cmocka_unit_test(test_strbuf),
        cmocka_unit_test(test_strbuf_empty_is_terminated),
        cmocka_unit_test(test_seterr_bounded),
        cmocka_unit_test(test_names),
        cmocka_unit_test(test_xalloc),
        cmocka_unit_test(test_pct_decode),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
