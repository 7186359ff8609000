/*
 * test_webhook.c - webhook's interpret() is pure: status, headers and body
 * in, one verdict out. No network, no daemon.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "herald_channel.h"

const struct herald_channel_plugin *herald_channel_plugin(void);

static struct herald_verdict judge(int curl_code, long status, const char *headers, const char *body)
{
    const struct herald_channel_plugin *p = herald_channel_plugin();
    struct herald_response r = {.curl_code = curl_code, .status = status, .headers = headers,
                                .headers_len = strlen(headers), .body = body, .body_len = strlen(body)};
    struct herald_verdict v;
    memset(&v, 0x55, sizeof(v));
    p->interpret(NULL, NULL, &r, &v);
    return v;
}

static void accepted_ids(void **st)
{
    (void)st;
    struct herald_verdict v = judge(0, 202, "HTTP/1.1 202 Accepted\r\nX-Request-Id: req-1\r\n\r\n", "{\"id\":\"b-1\"}");
    assert_int_equal(v.kind, HERALD_VERDICT_ACCEPTED);
    assert_string_equal(v.provider_id, "b-1");
    v = judge(0, 200, "HTTP/1.1 200 OK\r\nx-request-id:  req-2 \r\n\r\n", "not json");
    assert_string_equal(v.provider_id, "req-2");
    v = judge(0, 201, "HTTP/1.1 201 Created\r\nX-Message-Id: m-3\r\n\r\n", "");
    assert_string_equal(v.provider_id, "m-3");
    v = judge(0, 204, "HTTP/1.1 204 No Content\r\n\r\n", "");
    assert_string_equal(v.provider_id, "webhook:204");
}

static void retries(void **st)
{
    (void)st;
    struct herald_verdict v = judge(0, 429, "HTTP/1.1 429 Too Many\r\nRetry-After: 7\r\n\r\n", "");
    assert_int_equal(v.kind, HERALD_VERDICT_RETRY);
    assert_int_equal(v.retry_after_ms, 7000);
    assert_string_equal(v.reason, "http_429");
    v = judge(0, 503, "HTTP/1.1 503 Unavailable\r\nRetry-After: Wed, 21 Oct 2015 07:28:00 GMT\r\n\r\n", "");
    assert_int_equal(v.kind, HERALD_VERDICT_RETRY);
    assert_int_equal(v.retry_after_ms, 0);
    v = judge(28, 0, "", "");
    assert_int_equal(v.kind, HERALD_VERDICT_RETRY);
    assert_string_equal(v.reason, "transport_28");
}

static void rejected(void **st)
{
    (void)st;
    struct herald_verdict v = judge(0, 400, "HTTP/1.1 400 Bad Request\r\n\r\n", "{\"error\":\"x\"}");
    assert_int_equal(v.kind, HERALD_VERDICT_REJECTED);
    assert_string_equal(v.reason, "http_400");
    v = judge(0, 404, "HTTP/1.1 404 Not Found\r\n\r\n", "");
    assert_string_equal(v.reason, "http_404");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(accepted_ids),
        cmocka_unit_test(retries),
        cmocka_unit_test(rejected),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
