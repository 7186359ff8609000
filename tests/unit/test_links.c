/*
 * test_links.c - the signed link tokens: the exact token for known claims
 * (computed independently with Python's base64 and hmac), round trips for
 * payloads of every length modulo 3 (base64 padding cases), and refusal of
 * altered, truncated, expired and foreign-key tokens.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "links.h"

#define SECRET "secret-0123456789"

static struct link_claims claims(const char *recipient)
{
    struct link_claims c = {.kind = 'u', .expires = 2000000000};
    snprintf(c.recipient, sizeof(c.recipient), "%s", recipient);
    snprintf(c.campaign, sizeof(c.campaign), "c1");
    snprintf(c.topic, sizeof(c.topic), "news");
    snprintf(c.channel, sizeof(c.channel), "email");
    return c;
}

static void known_token(void **st)
{
    (void)st;
    struct link_claims c = claims("r1");
    struct strbuf sb;
    strbuf_init(&sb);
    links_sign(&sb, SECRET, &c);
    /* python3: base64url(b"1|u|r1|c1|news|email|2000000000") "." base64url(HMAC-SHA256) */
    assert_string_equal(sb.buf, "MXx1fHIxfGMxfG5ld3N8ZW1haWx8MjAwMDAwMDAwMA."
                                "K4Im3qRDUxpEWpIjSwwVEuSXQbUWKYry7Gym2GAy9iY");
    strbuf_free(&sb);
}

static void round_trips_and_refusals(void **st)
{
    (void)st;
    const char *ids[] = {"r", "r1", "r12", "r123", "a-much-longer-recipient-id.0042"};
    for (size_t i = 0; i < sizeof(ids) / sizeof(ids[0]); i++) {
        struct link_claims c = claims(ids[i]), got;
        struct strbuf sb;
        strbuf_init(&sb);
        links_sign(&sb, SECRET, &c);
        char err[128];
        assert_int_equal(links_verify(sb.buf, SECRET, 1900000000, &got, err, sizeof(err)), 0);
        assert_string_equal(got.recipient, ids[i]);
        assert_string_equal(got.campaign, "c1");
        assert_string_equal(got.topic, "news");
        assert_string_equal(got.channel, "email");
        assert_int_equal(got.kind, 'u');
        assert_int_equal(got.expires, 2000000000);
        /* expired, another key, one character changed, truncated */
        assert_int_not_equal(links_verify(sb.buf, SECRET, 2000000000, &got, err, sizeof(err)), 0);
        assert_int_not_equal(links_verify(sb.buf, "another-secret-0123", 1900000000, &got, err, sizeof(err)), 0);
        sb.buf[1] = sb.buf[1] == 'A' ? 'B' : 'A';
        assert_int_not_equal(links_verify(sb.buf, SECRET, 1900000000, &got, err, sizeof(err)), 0);
        sb.buf[1] = 'X';
        sb.buf[sb.len - 1] = '\0';
        assert_int_not_equal(links_verify(sb.buf, SECRET, 1900000000, &got, err, sizeof(err)), 0);
        strbuf_free(&sb);
    }
}

static void build_gives_both_urls(void **st)
{
    (void)st;
    struct strbuf u;
    strbuf_init(&u);
    size_t at = links_build(&u, "https://prefs.example.com", SECRET, 3600, 1000, "r1", "c1", "news", "email");
    /* "<unsubscribe URL>\0<preferences URL>", each as links_sign signs it. */
    assert_true(at > 28 && at < u.len);
    assert_int_equal(strlen(u.buf), at - 1);
    assert_int_equal(strlen(u.buf + at), u.len - at);
    assert_memory_equal(u.buf, "https://prefs.example.com/u/", 28);
    assert_memory_equal(u.buf + at, "https://prefs.example.com/p/", 28);
    struct link_claims want = {.kind = 'u', .expires = 4600};
    herald_copy(want.recipient, sizeof(want.recipient), "r1");
    herald_copy(want.campaign, sizeof(want.campaign), "c1");
    herald_copy(want.topic, sizeof(want.topic), "news");
    herald_copy(want.channel, sizeof(want.channel), "email");
    struct strbuf signed_;
    strbuf_init(&signed_);
    links_sign(&signed_, SECRET, &want);
    assert_string_equal(u.buf + 28, signed_.buf);
    struct link_claims got;
    char err[128];
    assert_int_equal(links_verify(u.buf + at + 28, SECRET, 2000, &got, err, sizeof(err)), 0);
    assert_int_equal(got.kind, 'p');
    assert_int_equal(got.expires, 4600);
    assert_string_equal(got.recipient, "r1");
    assert_int_equal(links_build(&u, "", SECRET, 3600, 1000, "r1", "c1", "news", "email"), 0);
    assert_int_equal(u.len, 0);
    strbuf_free(&signed_);
    strbuf_free(&u);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(known_token),
        cmocka_unit_test(round_trips_and_refusals),
        cmocka_unit_test(build_gives_both_urls),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
