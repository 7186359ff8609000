/*
 * test_webhook.c - webhook's interpret() is pure: status, headers and body
 * in, one verdict out; prepare() builds the JSON body by hand, so its
 * escaping and UTF-8 checks are tested here. No network, no daemon.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>
#include <curl/curl.h>
#include <jansson.h>

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

/* The common reply is read without jansson: the result must be the same as
 * the full parser's, and anything else must still reach the full parser. */
static void reply_ids_fast_and_full(void **st)
{
    (void)st;
    const char *hdr = "HTTP/1.1 202 Accepted\r\nX-Request-Id: from-header\r\n\r\n";
    const struct {
        const char *body, *id;
    } cases[] = {
        {"{\"id\":\"b-1\"}", "b-1"},
        {" \r\n{ \"id\" :\t\"msg 42/x\" }\n", "msg 42/x"},
        {"{\"id\":\"a\\\"b\"}", "a\"b"},                /* an escape: the full parser */
        {"{\"id\":\"\\u00e9t\\u00e9\"}", "\xc3\xa9t\xc3\xa9"}, /* likewise */
        {"{\"id\":123}", "123"},
        {"{\"id\":\"x\",\"status\":\"queued\"}", "x"},
        {"{\"status\":\"queued\",\"id\":\"y\"}", "y"},
        {"{\"id\":\"\"}", "from-header"},                 /* empty id */
        {"{\"id\":\"x\"} trailing", "from-header"},       /* not JSON */
        {"{\"id\":\"x\"", "from-header"},                 /* cut short */
        {"{\"id\":\"x\"}}", "from-header"},
        {"[\"id\",\"x\"]", "from-header"},
        {"{\"ids\":\"x\"}", "from-header"},
        {"{\"id\":null}", "from-header"},
    };
    /* An id longer than the verdict holds is cut the same way on both paths. */
    char longid[400], body[512], body_esc[512];
    memset(longid, 'k', sizeof(longid) - 1);
    longid[sizeof(longid) - 1] = '\0';
    snprintf(body, sizeof(body), "{\"id\":\"%s\"}", longid);
    snprintf(body_esc, sizeof(body_esc), "{\"id\":\"%s\\u006b\"}", longid); /* an escape: jansson */
    struct herald_verdict fast = judge(0, 202, hdr, body), full = judge(0, 202, hdr, body_esc);
    assert_int_equal(strlen(fast.provider_id), sizeof(fast.provider_id) - 1);
    assert_string_equal(fast.provider_id, full.provider_id);
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct herald_verdict v = judge(0, 202, hdr, cases[i].body);
        assert_int_equal(v.kind, HERALD_VERDICT_ACCEPTED);
        if (strcmp(v.provider_id, cases[i].id) != 0)
            fail_msg("body %s: id \"%s\", expected \"%s\"", cases[i].body, v.provider_id, cases[i].id);
    }
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
    /* The operator's own endpoint redirecting is its configuration: no retry. */
    v = judge(0, 302, "HTTP/1.1 302 Found\r\nRetry-After: 5\r\n\r\n", "");
    assert_int_equal(v.kind, HERALD_VERDICT_REJECTED);
    assert_string_equal(v.reason, "http_302");
    assert_int_equal(v.retry_after_ms, 0);
}

static void host_log(void *ctx, enum herald_log_level level, const char *fmt, ...)
{
    (void)ctx;
    (void)level;
    (void)fmt;
}

static void host_setting(void *ctx, size_t index, const char *fmt, ...)
{
    (void)ctx;
    (void)index;
    (void)fmt;
    fail_msg("unexpected setting error");
}

static void host_missing(void *ctx, const char *key, const char *fmt, ...)
{
    (void)ctx;
    (void)fmt;
    fail_msg("missing %s", key);
}

/* A webhook instance with a valid url and secret. */
static void *instance(void)
{
    const struct herald_channel_plugin *p = herald_channel_plugin();
    struct herald_host host = {.abi_version = HERALD_CHANNEL_ABI_VERSION, .size = sizeof(host), .log = host_log,
                               .setting_error = host_setting, .setting_missing = host_missing, .base_dir = "."};
    struct herald_setting set[] = {{"url", "http://127.0.0.1:9/x"}, {"secret", "0123456789abcdef0123"}};
    void *inst = NULL;
    assert_int_equal(p->create(&host, set, 2, &inst), 0);
    return inst;
}

/* The body prepare() hands to curl for msg, or NULL when it refused (reason set). */
static char *body_of(const struct herald_message *msg, char *reason, size_t reasonlen)
{
    const struct herald_channel_plugin *p = herald_channel_plugin();
    void *inst = instance();
    CURL *curl = curl_easy_init();
    void *state = NULL;
    char *out = NULL;
    if (p->prepare(inst, msg, curl, &state, reason, reasonlen) == 0) {
        char *body = *(char **)state; /* struct webhook_req starts with the body */
        out = strdup(body);
        p->release(inst, state);
    }
    curl_easy_cleanup(curl);
    p->destroy(inst);
    return out;
}

/* Checks that the request *state carries text, and releases it. */
static void release_checked(void *inst, void **state, const char *text)
{
    json_t *o = json_loads(*(char **)*state, 0, NULL); /* struct webhook_req starts with the body */
    assert_non_null(o);
    assert_string_equal(json_string_value(json_object_get(o, "text")), text);
    json_decref(o);
    herald_channel_plugin()->release(inst, *state);
    *state = NULL;
}

/* Released requests are kept and their body buffers reused: a short body
 * after a long one, a refused message between them, and requests in flight
 * together each carry exactly their own body. */
static void requests_reused(void **st)
{
    (void)st;
    const struct herald_channel_plugin *p = herald_channel_plugin();
    void *inst = instance();
    CURL *curl = curl_easy_init();
    static char long_text[3000];
    memset(long_text, 'L', sizeof(long_text) - 1);
    const char *texts[] = {long_text, "short", "bad \xff utf-8", "s", long_text + 2000, "x"};
    enum { N = sizeof(texts) / sizeof(texts[0]) };
    void *states[N] = {0};
    char reason[64];
    for (int round = 0; round < 3; round++) {
        for (size_t i = 0; i < N; i++) {
            struct herald_message m = {.campaign = "c1", .recipient = "r1", .channel = "email", .topic = "news",
                                       .to = "a@example.org", .subject = "s", .text = texts[i]};
            reason[0] = '\0';
            int rc = p->prepare(inst, &m, curl, &states[i], reason, sizeof(reason));
            if (i == 2) {
                assert_int_equal(rc, -1);
                assert_string_equal(reason, "invalid_message");
                continue;
            }
            assert_int_equal(rc, 0);
            /* Round 0 releases each at once; later rounds keep them all in flight. */
            if (round == 0) release_checked(inst, &states[i], texts[i]);
        }
        for (size_t k = 0; round > 0 && k < N; k++) {
            size_t i = round == 1 ? k : N - 1 - k; /* released in either order */
            if (states[i]) release_checked(inst, &states[i], texts[i]);
        }
    }
    curl_easy_cleanup(curl);
    p->destroy(inst);
}

static int setting_errors;
static void count_setting(void *ctx, size_t index, const char *fmt, ...)
{
    (void)ctx;
    (void)index;
    (void)fmt;
    setting_errors++;
}

/* The signature header is "<name>: sha256=<64 hex>" in a bounded buffer:
 * a name too long for it is refused at start-up, never cut short. */
static void header_name_is_bounded(void **st)
{
    (void)st;
    const struct herald_channel_plugin *p = herald_channel_plugin();
    struct herald_host host = {.abi_version = HERALD_CHANNEL_ABI_VERSION, .size = sizeof(host), .log = host_log,
                               .setting_error = count_setting, .setting_missing = host_missing, .base_dir = "."};
    char name[80];
    memset(name, 'H', sizeof(name));
    for (size_t len = 63; len <= 65; len++) {
        name[len] = '\0';
        struct herald_setting set[] = {
            {"url", "http://127.0.0.1:9/x"}, {"secret", "0123456789abcdef0123"}, {"header_name", name}};
        void *inst = NULL;
        setting_errors = 0;
        int rc = p->create(&host, set, 3, &inst);
        if (len <= 64) {
            assert_int_equal(rc, 0);
            assert_int_equal(setting_errors, 0);
            p->destroy(inst);
        } else {
            assert_int_equal(rc, -1);
            assert_int_equal(setting_errors, 1);
        }
        name[len] = 'H';
    }
}

static void body_escapes_and_checks_utf8(void **st)
{
    (void)st;
    char reason[64] = "";
    struct herald_message m = {.campaign = "c1", .recipient = "r1", .channel = "email", .topic = "news",
                               .to = "a@example.org", .subject = "Quote \" \\ tab\t nl\n \x01 \x1f del\x7f \xc3\xa9t\xc3\xa9",
                               .text = "plain", .html = NULL};
    char *body = body_of(&m, reason, sizeof(reason));
    assert_non_null(body);
    json_error_t err;
    json_t *o = json_loads(body, 0, &err);
    assert_non_null(o);
    assert_string_equal(json_string_value(json_object_get(o, "subject")), m.subject);
    assert_true(json_is_null(json_object_get(o, "html")));
    assert_string_equal(json_string_value(json_object_get(o, "campaign")), "c1");
    json_decref(o);
    free(body);

    /* Text is scanned eight bytes at a time: every character that needs
     * escaping, and a multi-byte one, at every offset of a long text. */
    const char *specials[] = {"\"", "\\", "\n", "\t", "\x01", "\x1f", "\x7f", "\xc3\xa9", "\xe2\x82\xac",
                              "\xf0\x9f\x98\x80"};
    for (size_t k = 0; k < sizeof(specials) / sizeof(specials[0]); k++) {
        for (size_t off = 0; off < 24; off++) {
            char text[64];
            memset(text, 'a', sizeof(text));
            size_t sl = strlen(specials[k]);
            memcpy(text + off, specials[k], sl);
            text[off + sl + 9] = '\0';
            m.text = text;
            body = body_of(&m, reason, sizeof(reason));
            assert_non_null(body);
            o = json_loads(body, 0, &err);
            assert_non_null(o);
            assert_string_equal(json_string_value(json_object_get(o, "text")), text);
            json_decref(o);
            free(body);
        }
    }
    for (size_t off = 0; off < 24; off++) { /* a bad byte anywhere is found */
        char text[64];
        memset(text, 'a', sizeof(text));
        text[off] = (char)0xff;
        text[40] = '\0';
        m.text = text;
        reason[0] = '\0';
        assert_null(body_of(&m, reason, sizeof(reason)));
        assert_string_equal(reason, "invalid_message");
    }

    const char *bad[] = {"\xff", "\xc0\xaf" /* overlong */, "\xed\xa0\x80" /* surrogate */, "\xe2\x82"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        m.text = bad[i];
        reason[0] = '\0';
        assert_null(body_of(&m, reason, sizeof(reason)));
        assert_string_equal(reason, "invalid_message");
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(accepted_ids),
        cmocka_unit_test(reply_ids_fast_and_full),
        cmocka_unit_test(retries),
        cmocka_unit_test(rejected),
        cmocka_unit_test(body_escapes_and_checks_utf8),
        cmocka_unit_test(header_name_is_bounded),
        cmocka_unit_test(requests_reused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
