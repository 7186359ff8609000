/*
 * test_smtp.c - the email_smtp plugin without a network: create() validates
 * its settings, prepare() refuses what it must before any I/O (and fills the
 * handle otherwise), interpret() maps every curl code / SMTP reply pair to
 * one verdict.
 *
 * Owns only its own process. It must never perform a transfer (no
 * curl_easy_perform here: tests/e2e/test_smtp.py talks to a real SMTP sink).
 * Invariant: the plugin is loaded with dlopen exactly as the daemon loads it,
 * so what passes here is the table the daemon would see.
 */
#include <dlfcn.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <curl/curl.h>

#include "herald_channel.h"

static const struct herald_channel_plugin *api;
static void *dl;

/* What create() reported. */
static int nerrors, nmissing;
static char last_key[64], last_msg[512];
static size_t last_index;

static void host_log(void *ctx, enum herald_log_level level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void host_log(void *ctx, enum herald_log_level level, const char *fmt, ...)
{
    (void)ctx;
    (void)level;
    (void)fmt;
}

static void host_setting_error(void *ctx, size_t index, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void host_setting_error(void *ctx, size_t index, const char *fmt, ...)
{
    (void)ctx;
    nerrors++;
    last_index = index;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(last_msg, sizeof(last_msg), fmt, ap);
    va_end(ap);
}

static void host_setting_missing(void *ctx, const char *key, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void host_setting_missing(void *ctx, const char *key, const char *fmt, ...)
{
    (void)ctx;
    nmissing++;
    snprintf(last_key, sizeof(last_key), "%s", key);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(last_msg, sizeof(last_msg), fmt, ap);
    va_end(ap);
}

static int64_t host_now_ms(void *ctx)
{
    (void)ctx;
    return 1772528400000; /* 2026-03-03T09:00:00Z */
}

static const struct herald_host host = {
    .abi_version = HERALD_CHANNEL_ABI_VERSION,
    .size = sizeof(struct herald_host),
    .log = host_log,
    .setting_error = host_setting_error,
    .now_ms = host_now_ms,
    .base_dir = ".",
    .setting_missing = host_setting_missing,
};

static int load(void **s)
{
    (void)s;
    dl = dlopen(SMTP_SO, RTLD_NOW | RTLD_LOCAL);
    if (!dl) return -1;
    herald_channel_entry_fn entry = (herald_channel_entry_fn)dlsym(dl, HERALD_CHANNEL_SYMBOL);
    api = entry ? entry() : NULL;
    curl_global_init(CURL_GLOBAL_DEFAULT);
    return api ? 0 : -1;
}

static int unload(void **s)
{
    (void)s;
    curl_global_cleanup();
    dlclose(dl);
    return 0;
}

/* create() with settings given as "key", "value" pairs; 0 or -1. */
static int create_with(void **inst, size_t n, const char *const *kv)
{
    struct herald_setting set[16];
    nerrors = nmissing = 0;
    last_key[0] = last_msg[0] = '\0';
    last_index = HERALD_SETTING_NONE;
    for (size_t i = 0; i < n; i++) {
        set[i].key = kv[2 * i];
        set[i].value = kv[2 * i + 1];
    }
    *inst = NULL;
    int rc = api->create(&host, set, n, inst);
    if (rc == 0) assert_non_null(*inst);
    return rc;
}

#define CREATE(inst, ...)                                                                     \
    create_with(inst, sizeof((const char *[]){__VA_ARGS__}) / sizeof(const char *) / 2,     \
                (const char *const[]){__VA_ARGS__})

static void test_table(void **s)
{
    (void)s;
    assert_int_equal(api->abi_version, HERALD_CHANNEL_ABI_VERSION);
    assert_int_equal(api->size, sizeof(struct herald_channel_plugin));
    assert_string_equal(api->name, "email_smtp");
    assert_string_equal(api->channels, "email");
    assert_non_null(api->prepare);
    assert_non_null(api->interpret);
    assert_non_null(api->release);
    assert_null(api->deliver);
}

static void test_create_ok(void **s)
{
    (void)s;
    void *inst;
    assert_int_equal(CREATE(&inst, "url", "smtp://127.0.0.1:2525", "from", "news@example.com"), 0);
    assert_int_equal(nerrors + nmissing, 0);
    api->destroy(inst);
    assert_int_equal(CREATE(&inst, "url", "smtps://mail.example.com", "from", "news@example.com", "from_name",
                            "Grüße GmbH", "username", "u", "password", "p", "helo", "herald.example.com", "tls",
                            "required"),
                     0);
    api->destroy(inst);
    assert_int_equal(CREATE(&inst, "url", "smtp://mail.example.com:587/", "from", "n@example.com", "tls", "none"),
                     0);
    api->destroy(inst);
}

static void test_create_rejects(void **s)
{
    (void)s;
    void *inst;
    assert_int_equal(CREATE(&inst, "url", "smtp://h:25", "from", "a@example.com", "colour", "blue"), -1);
    assert_int_equal(nerrors, 1);
    assert_int_equal(last_index, 2);
    assert_non_null(strstr(last_msg, "unknown setting"));

    assert_int_equal(CREATE(&inst, "from", "a@example.com"), -1);
    assert_int_equal(nmissing, 1);
    assert_string_equal(last_key, "url");

    assert_int_equal(CREATE(&inst, "url", "smtp://h:25"), -1);
    assert_string_equal(last_key, "from");

    assert_int_equal(CREATE(&inst, "url", "smtp://h:25", "from", "a@example.com", "username", "u"), -1);
    assert_string_equal(last_key, "password");
    assert_int_equal(CREATE(&inst, "url", "smtp://h:25", "from", "a@example.com", "password", "p"), -1);
    assert_string_equal(last_key, "username");

    static const char *const bad_from[] = {"nobody", "a@", "@b", "a b@c", "a@b\r\nRCPT TO:<x@y>", "<a@b>", ""};
    for (size_t i = 0; i < sizeof(bad_from) / sizeof(*bad_from); i++) {
        assert_int_equal(CREATE(&inst, "url", "smtp://h:25", "from", bad_from[i]), -1);
        assert_int_equal(last_index, 1);
    }

    static const char *const bad_url[] = {"http://h/", "h:25", "smtp://user:pw@h:25", "smtp://h:25/x",
                                          "smtp://h:25?q=1", ""};
    for (size_t i = 0; i < sizeof(bad_url) / sizeof(*bad_url); i++) {
        assert_int_equal(CREATE(&inst, "url", bad_url[i], "from", "a@example.com"), -1);
        assert_int_equal(nerrors, 1);
        assert_int_equal(last_index, 0);
    }

    assert_int_equal(CREATE(&inst, "url", "smtp://h:25", "from", "a@example.com", "tls", "maybe"), -1);
    assert_int_equal(last_index, 2);
    assert_int_equal(CREATE(&inst, "url", "smtps://h", "from", "a@example.com", "tls", "none"), -1);
    assert_int_equal(last_index, 2);
    assert_int_equal(CREATE(&inst, "url", "smtp://h", "from", "a@example.com", "helo", "bad helo"), -1);
    assert_int_equal(CREATE(&inst, "url", "smtp://h", "from", "a@example.com", "from_name", "A\r\nBcc: x@y"), -1);
    assert_int_equal(CREATE(&inst, "url", "smtp://h", "url", "smtp://g", "from", "a@example.com"), -1);
    assert_non_null(strstr(last_msg, "twice"));
}

static void *instance(void)
{
    void *inst;
    assert_int_equal(CREATE(&inst, "url", "smtp://127.0.0.1:9", "from", "news@example.com"), 0);
    return inst;
}

static struct herald_message message(void)
{
    return (struct herald_message){.campaign = "spring:2026",
                                   .recipient = "u1",
                                   .channel = "email",
                                   .topic = "news",
                                   .to = "ann@example.org",
                                   .subject = "Hi Ann",
                                   .text = "Hello\nAnn",
                                   .html = "<p>Hello Ann</p>",
                                   .unsubscribe_url = "https://h.example/u/tok.sig"};
}

/* prepare() must refuse m with `why` and leave no state behind. */
static void refused(void *inst, struct herald_message m, const char *why)
{
    CURL *h = curl_easy_init();
    void *state = (void *)&state;
    char reason[128] = "";
    assert_int_equal(api->prepare(inst, &m, h, &state, reason, sizeof(reason)), -1);
    assert_string_equal(reason, why);
    assert_null(state);
    curl_easy_cleanup(h);
}

static void test_prepare_refuses(void **s)
{
    (void)s;
    void *inst = instance();
    struct herald_message m = message();
    m.to = NULL;
    refused(inst, m, "no_address");
    m.to = "";
    refused(inst, m, "no_address");
    m.to = "ann@example.org>\r\nRCPT TO:<eve@example.net";
    refused(inst, m, "invalid_address");
    m = message();
    m.subject = "";
    refused(inst, m, "empty_subject");
    m.subject = " \r\n\t ";
    refused(inst, m, "empty_subject");
    m.subject = NULL;
    refused(inst, m, "empty_subject");
    m = message();
    m.text = "";
    m.html = NULL;
    refused(inst, m, "empty_body");
    m.text = NULL;
    m.html = "";
    refused(inst, m, "empty_body");
    m = message();
    m.channel = "sms";
    refused(inst, m, "unsupported_channel");
    m = message();
    m.unsubscribe_url = "https://h/u/x>\r\nBcc: eve@example.net";
    refused(inst, m, "invalid_unsubscribe_url");
    m = message();
    m.subject = "bad \xc3\x28 utf-8";
    refused(inst, m, "invalid_utf8");
    api->destroy(inst);
}

static void test_prepare_fills(void **s)
{
    (void)s;
    void *inst = instance();
    struct herald_message m = message();
    const char *texts[][2] = {{"t", "<p>h</p>"}, {"t", NULL}, {NULL, "<p>h</p>"}, {"t", ""}};
    for (size_t i = 0; i < sizeof(texts) / sizeof(*texts); i++) {
        m.text = texts[i][0];
        m.html = texts[i][1];
        m.unsubscribe_url = i % 2 ? NULL : "https://h.example/u/tok.sig";
        m.subject = i % 2 ? "Grüße, Zoë \r\nBcc: eve@example.net" : "Hi";
        CURL *h = curl_easy_init();
        void *state = NULL;
        char reason[128] = "";
        assert_int_equal(api->prepare(inst, &m, h, &state, reason, sizeof(reason)), 0);
        assert_non_null(state);
        curl_easy_cleanup(h);
        api->release(inst, state);
    }
    api->destroy(inst);
}

struct verdict_case {
    int curl_code;
    long status;
    enum herald_verdict_kind kind;
    const char *reason;
};

static void test_interpret(void **s)
{
    (void)s;
    void *inst = instance();
    struct herald_message m = message();
    CURL *h = curl_easy_init();
    void *state = NULL;
    char reason[128] = "";
    assert_int_equal(api->prepare(inst, &m, h, &state, reason, sizeof(reason)), 0);

    static const struct verdict_case cases[] = {
        {CURLE_OK, 250, HERALD_VERDICT_ACCEPTED, ""},
        {CURLE_SEND_ERROR, 550, HERALD_VERDICT_REJECTED, "smtp_550"},
        {CURLE_SEND_ERROR, 553, HERALD_VERDICT_REJECTED, "smtp_553"},
        {CURLE_WEIRD_SERVER_REPLY, 554, HERALD_VERDICT_REJECTED, "smtp_554"},
        {CURLE_WEIRD_SERVER_REPLY, 552, HERALD_VERDICT_REJECTED, "smtp_552"},
        {CURLE_LOGIN_DENIED, 535, HERALD_VERDICT_REJECTED, "smtp_535"},
        {CURLE_LOGIN_DENIED, 0, HERALD_VERDICT_REJECTED, "smtp_login_denied"},
        {CURLE_SEND_ERROR, 450, HERALD_VERDICT_RETRY, "smtp_450"},
        {CURLE_SEND_ERROR, 451, HERALD_VERDICT_RETRY, "smtp_451"},
        {CURLE_SEND_ERROR, 452, HERALD_VERDICT_RETRY, "smtp_452"},
        {CURLE_WEIRD_SERVER_REPLY, 421, HERALD_VERDICT_RETRY, "smtp_421"},
        {CURLE_COULDNT_CONNECT, 0, HERALD_VERDICT_RETRY, "connect_failed"},
        {CURLE_OPERATION_TIMEDOUT, 0, HERALD_VERDICT_RETRY, "timeout"},
        {CURLE_OPERATION_TIMEDOUT, 354, HERALD_VERDICT_RETRY, "timeout"},
        {CURLE_COULDNT_RESOLVE_HOST, 0, HERALD_VERDICT_RETRY, "resolve_failed"},
        {CURLE_USE_SSL_FAILED, 0, HERALD_VERDICT_RETRY, "tls_unavailable"},
        {CURLE_RECV_ERROR, 250, HERALD_VERDICT_RETRY, "connection_lost"},
        {CURLE_FAILED_INIT, 0, HERALD_VERDICT_RETRY, "curl_2"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(*cases); i++) {
        struct herald_response resp = {
            .curl_code = cases[i].curl_code, .status = cases[i].status, .headers = "", .body = ""};
        struct herald_verdict v;
        memset(&v, 0x5a, sizeof(v));
        api->interpret(inst, state, &resp, &v);
        assert_int_equal(v.kind, cases[i].kind);
        assert_string_equal(v.reason, cases[i].reason);
        assert_int_equal(v.retry_after_ms, 0);
        if (cases[i].kind == HERALD_VERDICT_ACCEPTED) {
            /* <campaign.recipient.random@from-domain>, ids made dot-atom safe */
            assert_true(strncmp(v.provider_id, "<spring_2026.u1.", 16) == 0);
            assert_non_null(strstr(v.provider_id, "@example.com>"));
            assert_int_equal(strlen(v.provider_id), strlen("<spring_2026.u1.0123456789abcdef@example.com>"));
        } else {
            assert_string_equal(v.provider_id, "");
        }
    }
    curl_easy_cleanup(h);
    api->release(inst, state);
    api->destroy(inst);
}

static void test_message_id_fits(void **s)
{
    (void)s;
    void *inst = instance();
    struct herald_message m = message();
    char longid[129];
    memset(longid, 'x', 128);
    longid[128] = '\0';
    m.campaign = m.recipient = longid;
    CURL *h = curl_easy_init();
    void *state = NULL;
    char reason[128] = "";
    assert_int_equal(api->prepare(inst, &m, h, &state, reason, sizeof(reason)), 0);
    struct herald_response resp = {.curl_code = 0, .status = 250, .headers = "", .body = ""};
    struct herald_verdict v;
    api->interpret(inst, state, &resp, &v);
    assert_int_equal(v.kind, HERALD_VERDICT_ACCEPTED);
    size_t n = strlen(v.provider_id);
    assert_true(n < sizeof(v.provider_id));
    assert_int_equal(v.provider_id[0], '<');
    assert_int_equal(v.provider_id[n - 1], '>');
    curl_easy_cleanup(h);
    api->release(inst, state);
    api->destroy(inst);
}

/* The provider id (the Message-ID) prepare() + a 250 give m. */
static void accepted_id(void *inst, const struct herald_message *m, char *out, size_t len)
{
    CURL *h = curl_easy_init();
    void *state = NULL;
    char reason[128] = "";
    assert_int_equal(api->prepare(inst, m, h, &state, reason, sizeof(reason)), 0);
    struct herald_response resp = {.curl_code = 0, .status = 250, .headers = "", .body = ""};
    struct herald_verdict v;
    api->interpret(inst, state, &resp, &v);
    assert_int_equal(v.kind, HERALD_VERDICT_ACCEPTED);
    snprintf(out, len, "%s", v.provider_id);
    curl_easy_cleanup(h);
    api->release(inst, state);
}

/* With an idempotency key the Message-ID is the key (as dot-atom text) at
 * the sender's domain: the same for every attempt, different keys never
 * share one. Without a key it stays random per attempt. */
static void test_message_id_from_key(void **s)
{
    (void)s;
    void *inst = instance();
    struct herald_message m = message();
    char a[128], b[128];
    m.idempotency_key = "c:1.2..3.";
    accepted_id(inst, &m, a, sizeof(a));
    accepted_id(inst, &m, b, sizeof(b));
    assert_string_equal(a, "<c=1.2~~3~@example.com>");
    assert_string_equal(a, b);
    m.idempotency_key = "c:1.2.~3.";
    refused(inst, m, "invalid_idempotency_key"); /* '~' is not a key character */
    m.idempotency_key = ".spring-2026:1700000000000-0:u1";
    accepted_id(inst, &m, a, sizeof(a));
    assert_string_equal(a, "<~spring-2026=1700000000000-0=u1@example.com>");
    char longkey[80];
    memset(longkey, 'k', sizeof(longkey));
    longkey[65] = '\0';
    m.idempotency_key = longkey;
    refused(inst, m, "invalid_idempotency_key"); /* 65 characters */
    longkey[64] = '\0';
    accepted_id(inst, &m, a, sizeof(a));
    assert_int_equal(strlen(a), 1 + 64 + 1 + strlen("example.com") + 1);
    m.idempotency_key = NULL;
    accepted_id(inst, &m, a, sizeof(a));
    accepted_id(inst, &m, b, sizeof(b));
    assert_string_not_equal(a, b);
    api->destroy(inst);

    /* A sender domain that leaves no room in the provider id: "@herald". */
    char from[128];
    snprintf(from, sizeof(from), "news@%s%s%sexample", "ddddddddd.ddddddddd.ddddddddd.ddddddddd.",
             "ddddddddd.ddddddddd.ddddddddd.ddddddddd.", "ddddddddd.ddddddddd."); /* 100 characters of labels */
    assert_int_equal(CREATE(&inst, "url", "smtp://127.0.0.1:9", "from", from), 0);
    m.idempotency_key = "k-1";
    accepted_id(inst, &m, a, sizeof(a));
    assert_true(strncmp(a, "<k-1@ddddddddd.", 15) == 0); /* fits: the sender's domain */
    assert_non_null(strstr(a, ".example>"));
    m.idempotency_key = longkey;
    accepted_id(inst, &m, a, sizeof(a));
    assert_non_null(strstr(a, "@herald>"));
    api->destroy(inst);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_table),           cmocka_unit_test(test_create_ok),
        cmocka_unit_test(test_create_rejects),  cmocka_unit_test(test_prepare_refuses),
        cmocka_unit_test(test_prepare_fills),   cmocka_unit_test(test_interpret),
        cmocka_unit_test(test_message_id_fits), cmocka_unit_test(test_message_id_from_key),
    };
    return cmocka_run_group_tests(tests, load, unload);
}
