/*
 * test_providers.c - the network channel plugins email_sendgrid,
 * sms_twilio and (for its idempotency header) webhook, loaded with dlopen the way the daemon loads them: settings
 * validation through a capturing host; prepare() on a real curl easy
 * handle, checked by performing the transfer against a loopback socket
 * served by a thread of this test, which captures the raw request (method,
 * path, auth, content type, body parsed as JSON or form); refusals before
 * any I/O; interpret() on hand-made responses.
 *
 * Owns only its loopback listener (127.0.0.1, a kernel-chosen port) and
 * never reaches outside the machine. Invariant: every request a test
 * performs is served and joined before the test returns.
 */
#include <arpa/inet.h>
#include <dlfcn.h>
#include <netinet/in.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>
#include <curl/curl.h>
#include <jansson.h>

#include "herald_channel.h"

#if !defined(SENDGRID_SO) || !defined(TWILIO_SO) || !defined(WEBHOOK_SO)
#error "SENDGRID_SO, TWILIO_SO and WEBHOOK_SO must name build/channels/{email_sendgrid,sms_twilio,webhook}.so"
#endif

#define SID "AC0123456789abcdef0123456789ABCDEF"
#define MGSID "MG0123456789abcdef0123456789abcdef"

/* ---- a host that records setting errors --------------------------------- */

#define MAX_ERRORS 16
static struct {
    size_t index[MAX_ERRORS];
    char text[MAX_ERRORS][256];
    int n;
} errs;

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
    if (errs.n == MAX_ERRORS) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(errs.text[errs.n], sizeof(errs.text[0]), fmt, ap);
    va_end(ap);
    errs.index[errs.n++] = index;
}

static void host_setting_missing(void *ctx, const char *key, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void host_setting_missing(void *ctx, const char *key, const char *fmt, ...)
{
    (void)ctx;
    if (errs.n == MAX_ERRORS) return;
    char msg[200];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    snprintf(errs.text[errs.n], sizeof(errs.text[0]), "%s: %s", key, msg);
    errs.index[errs.n++] = HERALD_SETTING_NONE;
}

static int64_t host_now_ms(void *ctx)
{
    (void)ctx;
    return 0;
}

static struct herald_host host = {
    .abi_version = HERALD_CHANNEL_ABI_VERSION,
    .size = sizeof(struct herald_host),
    .log = host_log,
    .setting_error = host_setting_error,
    .now_ms = host_now_ms,
    .base_dir = "/tmp",
    .setting_missing = host_setting_missing,
};

/* ---- plugins ------------------------------------------------------------------ */

static void *dl_sg, *dl_tw, *dl_wh;
static const struct herald_channel_plugin *sg, *tw, *wh;

static const struct herald_channel_plugin *load(const char *path, void **dl)
{
    *dl = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!*dl) {
        fprintf(stderr, "dlopen %s: %s\n", path, dlerror());
        return NULL;
    }
    herald_channel_entry_fn entry = (herald_channel_entry_fn)dlsym(*dl, HERALD_CHANNEL_SYMBOL);
    return entry ? entry() : NULL;
}

static int group_setup(void **state)
{
    (void)state;
    curl_global_init(CURL_GLOBAL_DEFAULT);
    sg = load(SENDGRID_SO, &dl_sg);
    tw = load(TWILIO_SO, &dl_tw);
    wh = load(WEBHOOK_SO, &dl_wh);
    return sg && tw && wh ? 0 : -1;
}

static int group_teardown(void **state)
{
    (void)state;
    dlclose(dl_sg);
    dlclose(dl_tw);
    dlclose(dl_wh);
    curl_global_cleanup();
    return 0;
}

/* create() with key/value pairs (NULL-terminated); errors land in errs. */
static int create(const struct herald_channel_plugin *api, void **inst, ...)
{
    struct herald_setting s[16];
    size_t n = 0;
    va_list ap;
    va_start(ap, inst);
    const char *k;
    while ((k = va_arg(ap, const char *)) && n < 16) {
        s[n].key = k;
        s[n].value = va_arg(ap, const char *);
        n++;
    }
    va_end(ap);
    memset(&errs, 0, sizeof(errs));
    *inst = NULL;
    return api->create(&host, s, n, inst);
}

static bool has_error(const char *needle)
{
    for (int i = 0; i < errs.n; i++)
        if (strstr(errs.text[i], needle)) return true;
    return false;
}

/* ---- a one-request loopback server ------------------------------------------ */

struct server {
    int fd;
    int port;
    pthread_t th;
    const char *reply;
    char req[65536];
    size_t len;
    const char *body; /* into req, after the blank line */
};

static size_t content_length(const char *req)
{
    for (const char *p = req; (p = strchr(p, '\n')); p++)
        if (strncasecmp(p + 1, "Content-Length:", 15) == 0) return (size_t)strtoul(p + 16, NULL, 10);
    return 0;
}

static void *serve(void *arg)
{
    struct server *s = arg;
    int c = accept(s->fd, NULL, NULL);
    if (c < 0) return NULL;
    for (;;) {
        ssize_t r = read(c, s->req + s->len, sizeof(s->req) - 1 - s->len);
        if (r <= 0) break;
        s->len += (size_t)r;
        s->req[s->len] = '\0';
        char *eoh = strstr(s->req, "\r\n\r\n");
        if (eoh && s->len - (size_t)(eoh + 4 - s->req) >= content_length(s->req)) {
            s->body = eoh + 4;
            break;
        }
    }
    size_t off = 0, n = strlen(s->reply);
    while (off < n) {
        ssize_t w = write(c, s->reply + off, n - off);
        if (w <= 0) break;
        off += (size_t)w;
    }
    close(c);
    return NULL;
}

static void server_start(struct server *s, const char *reply)
{
    memset(s, 0, sizeof(*s));
    s->reply = reply;
    s->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(s->fd >= 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    assert_int_equal(bind(s->fd, (struct sockaddr *)&a, sizeof(a)), 0);
    assert_int_equal(listen(s->fd, 1), 0);
    socklen_t al = sizeof(a);
    assert_int_equal(getsockname(s->fd, (struct sockaddr *)&a, &al), 0);
    s->port = ntohs(a.sin_port);
    assert_int_equal(pthread_create(&s->th, NULL, serve, s), 0);
}

static void server_join(struct server *s)
{
    pthread_join(s->th, NULL);
    close(s->fd);
}

/* The value of request header `name`, or NULL (static buffer). */
static const char *req_header(const struct server *s, const char *name)
{
    static char out[512];
    size_t nl = strlen(name);
    for (const char *p = strstr(s->req, "\r\n"); p && p + 2 < s->body; p = strstr(p + 2, "\r\n")) {
        if (strncasecmp(p + 2, name, nl) == 0 && p[2 + nl] == ':') {
            const char *v = p + 3 + nl, *e = strstr(v, "\r\n");
            while (*v == ' ') v++;
            size_t l = (size_t)(e - v) < sizeof(out) - 1 ? (size_t)(e - v) : sizeof(out) - 1;
            memcpy(out, v, l);
            out[l] = '\0';
            return out;
        }
    }
    return NULL;
}

static size_t sink(char *p, size_t size, size_t n, void *ud)
{
    (void)p;
    (void)ud;
    return size * n;
}

/* The raw response header block, as the daemon collects it. */
struct hbuf {
    char data[4096];
    size_t len;
};

static size_t collect(char *p, size_t size, size_t n, void *ud)
{
    struct hbuf *b = ud;
    size_t add = size * n;
    if (b->len + add >= sizeof(b->data)) return 0;
    memcpy(b->data + b->len, p, add);
    b->len += add;
    b->data[b->len] = '\0';
    return add;
}

/* prepare + perform + interpret of msg through inst against server s. */
static void send_one(const struct herald_channel_plugin *api, void *inst, const struct herald_message *msg,
                     struct server *s, struct herald_verdict *v)
{
    CURL *h = curl_easy_init();
    void *st = NULL;
    char reason[128] = "";
    assert_int_equal(api->prepare(inst, msg, h, &st, reason, sizeof(reason)), 0);
    struct hbuf hb = {.len = 0};
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, sink);
    curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, collect);
    curl_easy_setopt(h, CURLOPT_HEADERDATA, &hb);
    curl_easy_setopt(h, CURLOPT_TIMEOUT, 20L);
    CURLcode cc = curl_easy_perform(h);
    long status = 0;
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
    server_join(s);
    assert_int_equal(cc, CURLE_OK);
    struct herald_response r = {.status = status, .headers = hb.data, .headers_len = hb.len, .body = "", .body_len = 0};
    api->interpret(inst, st, &r, v);
    curl_easy_cleanup(h);
    api->release(inst, st);
}

static char *url_of(const struct server *s)
{
    static char u[64];
    snprintf(u, sizeof(u), "http://127.0.0.1:%d/", s->port);
    return u;
}

/* ---- email_sendgrid: settings ------------------------------------------------ */

/* A real P-256 verification key, in the form SendGrid's settings page shows. */
#define SG_WEBHOOK_KEY                                                                                         \
    "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEEDr2LjtURuePQzplybdC+u4CwrqDqBaWjcMMsTbhdbcwHBcepxo7yAQGhHPTnlvFYPAZFceE" \
    "u/1FwCM/QmGUhA=="

static void sg_settings(void **state)
{
    (void)state;
    void *i;
    assert_int_equal(sg->abi_version, HERALD_CHANNEL_ABI_VERSION);
    assert_string_equal(sg->channels, "email");
    assert_non_null(sg->prepare);
    assert_non_null(sg->interpret);
    assert_null(sg->deliver);

    assert_int_equal(create(sg, &i, "api_key", "SG.k", "from", "news@example.com", NULL), 0);
    sg->destroy(i);
    assert_int_equal(create(sg, &i, "base_url", "http://127.0.0.1:1/", "api_key", "SG.k", "from", "news@example.com",
                            "from_name", "News", "webhook_public_key", SG_WEBHOOK_KEY, NULL),
                     0);
    sg->destroy(i);

    assert_int_equal(create(sg, &i, "api_key", "SG.k", "from", "news@example.com", "colour", "red", NULL), -1);
    assert_int_equal(errs.n, 1);
    assert_int_equal(errs.index[0], 2);
    assert_true(has_error("unknown setting"));

    assert_int_equal(create(sg, &i, "from_name", "News", NULL), -1);
    assert_int_equal(errs.n, 2);
    assert_true(has_error("api_key: missing"));
    assert_true(has_error("from: missing"));

    assert_int_equal(create(sg, &i, "api_key", "SG.k", "from", "not-an-address", NULL), -1);
    assert_int_equal(errs.index[0], 1);
    assert_int_equal(create(sg, &i, "api_key", "SG.k", "from", "a@b.org", "base_url", "ftp://x", NULL), -1);
    assert_int_equal(errs.index[0], 2);
    assert_int_equal(create(sg, &i, "api_key", "SG.k\r\nX: y", "from", "a@b.org", NULL), -1);
    assert_int_equal(errs.index[0], 0);
    assert_int_equal(create(sg, &i, "api_key", "SG.k", "api_key", "SG.j", "from", "a@b.org", NULL), -1);
    assert_true(has_error("given twice"));
    assert_int_equal(create(sg, &i, "api_key", "SG.k", "from", "a@b.org", "webhook_public_key", "", NULL), -1);
    /* Not base64 of a DER EC P-256 public key: refused at load, not a silent 403 later. */
    assert_int_equal(create(sg, &i, "api_key", "SG.k", "from", "a@b.org", "webhook_public_key", "MFkwEwYH", NULL), -1);
    assert_true(has_error("P-256"));
}

/* ---- email_sendgrid: the request on the wire --------------------------------- */

static void sg_request(void **state)
{
    (void)state;
    struct server s;
    server_start(&s, "HTTP/1.1 202 Accepted\r\nX-Message-Id: 14c5d75ce93.dfd.64b469\r\nContent-Length: 0\r\n"
                     "Connection: close\r\n\r\n");
    void *i;
    assert_int_equal(create(sg, &i, "base_url", url_of(&s), "api_key", "SG.secret", "from", "news@example.com",
                            "from_name", "Example News", NULL),
                     0);
    struct herald_message m = {.campaign = "spring", .recipient = "p1", .channel = "email", .topic = "news",
                               .to = "ada@example.org", .subject = "Hello\r\nBcc: evil@example.net",
                               .text = "Plain ü", .html = "<p>Rich</p>",
                               .unsubscribe_url = "https://h.example/u/p1?sig=abc"};
    struct herald_verdict v;
    send_one(sg, i, &m, &s, &v);
    sg->destroy(i);

    assert_int_equal(v.kind, HERALD_VERDICT_ACCEPTED);
    assert_string_equal(v.provider_id, "14c5d75ce93.dfd.64b469");
    assert_true(strncmp(s.req, "POST /v3/mail/send HTTP/1.1\r\n", 29) == 0);
    assert_string_equal(req_header(&s, "Authorization"), "Bearer SG.secret");
    assert_string_equal(req_header(&s, "Content-Type"), "application/json");
    assert_null(req_header(&s, "Expect"));

    json_error_t je;
    json_t *b = json_loads(s.body, 0, &je);
    assert_non_null(b);
    json_t *p0 = json_array_get(json_object_get(b, "personalizations"), 0);
    assert_int_equal(json_array_size(json_object_get(b, "personalizations")), 1);
    assert_string_equal(json_string_value(json_object_get(json_array_get(json_object_get(p0, "to"), 0), "email")),
                        "ada@example.org");
    json_t *args = json_object_get(p0, "custom_args");
    assert_string_equal(json_string_value(json_object_get(args, "campaign")), "spring");
    assert_string_equal(json_string_value(json_object_get(args, "recipient")), "p1");
    assert_int_equal(json_object_size(args), 2);
    json_t *from = json_object_get(b, "from");
    assert_string_equal(json_string_value(json_object_get(from, "email")), "news@example.com");
    assert_string_equal(json_string_value(json_object_get(from, "name")), "Example News");
    const char *subj = json_string_value(json_object_get(b, "subject"));
    assert_non_null(subj);
    assert_null(strpbrk(subj, "\r\n"));
    assert_string_equal(subj, "Hello Bcc: evil@example.net");
    json_t *content = json_object_get(b, "content");
    assert_int_equal(json_array_size(content), 2);
    assert_string_equal(json_string_value(json_object_get(json_array_get(content, 0), "type")), "text/plain");
    assert_string_equal(json_string_value(json_object_get(json_array_get(content, 0), "value")), "Plain ü");
    assert_string_equal(json_string_value(json_object_get(json_array_get(content, 1), "type")), "text/html");
    assert_string_equal(json_string_value(json_object_get(json_array_get(content, 1), "value")), "<p>Rich</p>");
    json_t *hd = json_object_get(b, "headers");
    assert_string_equal(json_string_value(json_object_get(hd, "List-Unsubscribe")), "<https://h.example/u/p1?sig=abc>");
    assert_string_equal(json_string_value(json_object_get(hd, "List-Unsubscribe-Post")), "List-Unsubscribe=One-Click");
    json_decref(b);
}

/* Without an unsubscribe URL or HTML: no headers object, one text part. */
static void sg_request_minimal(void **state)
{
    (void)state;
    struct server s;
    server_start(&s, "HTTP/1.1 202 Accepted\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
    void *i;
    assert_int_equal(create(sg, &i, "base_url", url_of(&s), "api_key", "SG.k", "from", "news@example.com", NULL), 0);
    struct herald_message m = {.campaign = "c", .recipient = "r", .channel = "email", .to = "a@example.org",
                               .subject = "S", .text = "T"};
    struct herald_verdict v;
    send_one(sg, i, &m, &s, &v);
    sg->destroy(i);
    assert_int_equal(v.kind, HERALD_VERDICT_ACCEPTED);
    assert_string_equal(v.provider_id, "sendgrid:202");
    json_t *b = json_loads(s.body, 0, NULL);
    assert_non_null(b);
    assert_null(json_object_get(b, "headers"));
    assert_null(json_object_get(json_object_get(b, "from"), "name"));
    assert_int_equal(json_array_size(json_object_get(b, "content")), 1);
    json_decref(b);
}

static void refused(const struct herald_channel_plugin *api, void *inst, const struct herald_message *m,
                    const char *why)
{
    CURL *h = curl_easy_init();
    void *st = (void *)1;
    char reason[128] = "";
    assert_int_equal(api->prepare(inst, m, h, &st, reason, sizeof(reason)), -1);
    assert_null(st);
    assert_string_equal(reason, why);
    curl_easy_cleanup(h);
}

static void sg_refusals(void **state)
{
    (void)state;
    void *i;
    /* Port 9 (discard): a request that did go out would not be refused here. */
    assert_int_equal(create(sg, &i, "base_url", "http://127.0.0.1:9", "api_key", "SG.k", "from", "n@example.com", NULL),
                     0);
    struct herald_message m = {.campaign = "c", .recipient = "r", .channel = "email", .to = "a@example.org",
                               .subject = "S", .text = "T"};
    struct herald_message x = m;
    x.to = NULL;
    refused(sg, i, &x, "no_address");
    x = m;
    x.to = "";
    refused(sg, i, &x, "no_address");
    x = m;
    x.to = "nobody";
    refused(sg, i, &x, "invalid_address");
    x = m;
    x.text = "";
    refused(sg, i, &x, "empty_body");
    x = m;
    x.subject = "";
    refused(sg, i, &x, "empty_subject");
    x = m;
    x.subject = "\r\n";
    refused(sg, i, &x, "empty_subject");
    x = m;
    x.text = "bad \xff utf-8";
    refused(sg, i, &x, "invalid_content");
    sg->destroy(i);
}

/* ---- interpret ---------------------------------------------------------------- */

static void verdict_of(const struct herald_channel_plugin *api, int curl_code, long status, const char *headers,
                       const char *body, struct herald_verdict *v)
{
    struct herald_response r = {.curl_code = curl_code, .status = status, .headers = headers,
                                .headers_len = strlen(headers), .body = body, .body_len = strlen(body)};
    memset(v, 0xAA, sizeof(*v));
    api->interpret(NULL, NULL, &r, v);
}

static void sg_interpret(void **state)
{
    (void)state;
    struct herald_verdict v;
    verdict_of(sg, 0, 202, "HTTP/1.1 202 Accepted\r\nx-message-id:  abc-1 \r\n\r\n", "", &v);
    assert_int_equal(v.kind, HERALD_VERDICT_ACCEPTED);
    assert_string_equal(v.provider_id, "abc-1");
    verdict_of(sg, 0, 202, "HTTP/1.1 202 Accepted\r\n\r\n", "", &v);
    assert_int_equal(v.kind, HERALD_VERDICT_ACCEPTED);
    assert_string_equal(v.provider_id, "sendgrid:202");
    verdict_of(sg, 0, 400, "HTTP/1.1 400 Bad Request\r\n\r\n", "{\"errors\":[]}", &v);
    assert_int_equal(v.kind, HERALD_VERDICT_REJECTED);
    assert_string_equal(v.reason, "http_400");
    verdict_of(sg, 0, 401, "", "", &v);
    assert_int_equal(v.kind, HERALD_VERDICT_REJECTED);
    verdict_of(sg, 0, 429, "HTTP/1.1 429 Too Many Requests\r\nRetry-After: 7\r\n\r\n", "", &v);
    assert_int_equal(v.kind, HERALD_VERDICT_RETRY);
    assert_int_equal(v.retry_after_ms, 7000);
    verdict_of(sg, 0, 500, "HTTP/1.1 500 Internal Server Error\r\n\r\n", "", &v);
    assert_int_equal(v.kind, HERALD_VERDICT_RETRY);
    assert_int_equal(v.retry_after_ms, 0);
    assert_string_equal(v.reason, "http_500");
    verdict_of(sg, 28, 0, "", "", &v);
    assert_int_equal(v.kind, HERALD_VERDICT_RETRY);
    assert_string_equal(v.reason, "transport_28");
    /* A redirect is a proxy or a wrong base_url, not the message's fault. */
    verdict_of(sg, 0, 302, "HTTP/1.1 302 Found\r\n\r\n", "", &v);
    assert_int_equal(v.kind, HERALD_VERDICT_RETRY);
    assert_string_equal(v.reason, "http_302");
}

/* ---- sms_twilio --------------------------------------------------------------- */

static void tw_settings(void **state)
{
    (void)state;
    void *i;
    assert_string_equal(tw->channels, "sms");
    assert_null(tw->deliver);
    assert_int_equal(create(tw, &i, "account_sid", SID, "auth_token", "t", "from", "+15005550006", NULL), 0);
    tw->destroy(i);
    assert_int_equal(create(tw, &i, "account_sid", SID, "auth_token", "t", "messaging_service_sid", MGSID, NULL), 0);
    tw->destroy(i);

    assert_int_equal(create(tw, &i, "account_sid", SID, "auth_token", "t", "from", "+15005550006",
                            "messaging_service_sid", MGSID, NULL),
                     -1);
    assert_int_equal(errs.index[0], 3);
    assert_true(has_error("not both"));
    assert_int_equal(create(tw, &i, "account_sid", SID, "auth_token", "t", NULL), -1);
    assert_true(has_error("from: missing"));
    assert_int_equal(create(tw, &i, "from", "+15005550006", NULL), -1);
    assert_true(has_error("account_sid: missing"));
    assert_true(has_error("auth_token: missing"));
    assert_int_equal(create(tw, &i, "account_sid", "AC123", "auth_token", "t", "from", "+15005550006", NULL), -1);
    assert_int_equal(errs.index[0], 0);
    assert_int_equal(create(tw, &i, "account_sid", SID, "auth_token", "t", "from", "5550006", NULL), -1);
    assert_int_equal(errs.index[0], 2);
    assert_int_equal(create(tw, &i, "account_sid", SID, "auth_token", "t", "messaging_service_sid", "MGxyz", NULL),
                     -1);
    assert_int_equal(create(tw, &i, "account_sid", SID, "auth_token", "t", "from", "+15005550006", "region", "ie1",
                            NULL),
                     -1);
    assert_int_equal(errs.index[0], 3);
    assert_true(has_error("unknown setting"));
    assert_int_equal(create(tw, &i, "account_sid", SID, "auth_token", "t", "from", "+15005550006", "base_url",
                            "api.twilio.com", NULL),
                     -1);
}

/* Form value of `name` in an x-www-form-urlencoded body, decoded, or NULL. */
static char *form_get(const char *body, const char *name)
{
    size_t nl = strlen(name);
    for (const char *p = body; p && *p; p = strchr(p, '&') ? strchr(p, '&') + 1 : NULL) {
        if (strncmp(p, name, nl) == 0 && p[nl] == '=') {
            const char *v = p + nl + 1, *e = strchr(v, '&');
            int len = e ? (int)(e - v) : (int)strlen(v);
            /* curl decodes %XX but not '+': the plugin never emits '+'. */
            assert_null(memchr(v, '+', (size_t)len));
            char *d = curl_easy_unescape(NULL, v, len, NULL);
            char *out = strdup(d);
            curl_free(d);
            return out;
        }
    }
    return NULL;
}

static void tw_request(void **state)
{
    (void)state;
    static const char reply_body[] = "{\"sid\": \"SM0123456789abcdef0123456789abcdef\", \"status\": \"queued\"}";
    char reply[512];
    snprintf(reply, sizeof(reply),
             "HTTP/1.1 201 Created\r\nContent-Type: application/json\r\nContent-Length: %zu\r\n"
             "Connection: close\r\n\r\n%s",
             strlen(reply_body), reply_body);
    struct server s;
    server_start(&s, reply);
    void *i;
    assert_int_equal(create(tw, &i, "base_url", url_of(&s), "account_sid", SID, "auth_token", "tok:en",
                            "from", "+15005550006", NULL),
                     0);
    struct herald_message m = {.campaign = "spring", .recipient = "p1", .channel = "sms", .to = "+4915112345678",
                               .text = "Hi & bye=1+1 ü"};
    CURL *h = curl_easy_init();
    void *st = NULL;
    char reason[64];
    assert_int_equal(tw->prepare(i, &m, h, &st, reason, sizeof(reason)), 0);
    struct hbuf hb = {.len = 0}, bb = {.len = 0};
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, collect);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &bb);
    curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, collect);
    curl_easy_setopt(h, CURLOPT_HEADERDATA, &hb);
    assert_int_equal(curl_easy_perform(h), CURLE_OK);
    server_join(&s);
    struct herald_response r = {.status = 201, .headers = hb.data, .headers_len = hb.len, .body = bb.data,
                                .body_len = bb.len};
    struct herald_verdict v;
    tw->interpret(i, st, &r, &v);
    curl_easy_cleanup(h);
    tw->release(i, st);
    tw->destroy(i);

    assert_int_equal(v.kind, HERALD_VERDICT_ACCEPTED);
    assert_string_equal(v.provider_id, "SM0123456789abcdef0123456789abcdef");
    assert_true(strncmp(s.req, "POST /2010-04-01/Accounts/" SID "/Messages.json HTTP/1.1\r\n", 79) == 0);
    /* base64("AC0123456789abcdef0123456789ABCDEF:tok:en") */
    assert_string_equal(req_header(&s, "Authorization"),
                        "Basic QUMwMTIzNDU2Nzg5YWJjZGVmMDEyMzQ1Njc4OUFCQ0RFRjp0b2s6ZW4=");
    assert_string_equal(req_header(&s, "Content-Type"), "application/x-www-form-urlencoded");
    char *to = form_get(s.body, "To"), *from = form_get(s.body, "From"), *body = form_get(s.body, "Body");
    assert_string_equal(to, "+4915112345678");
    assert_string_equal(from, "+15005550006");
    assert_string_equal(body, "Hi & bye=1+1 ü");
    assert_null(form_get(s.body, "MessagingServiceSid"));
    free(to);
    free(from);
    free(body);
}

static void tw_request_service(void **state)
{
    (void)state;
    struct server s;
    server_start(&s, "HTTP/1.1 201 Created\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
    void *i;
    assert_int_equal(create(tw, &i, "base_url", url_of(&s), "account_sid", SID, "auth_token", "t",
                            "messaging_service_sid", MGSID, NULL),
                     0);
    struct herald_message m = {.campaign = "c", .recipient = "r", .channel = "sms", .to = "+4915112345678",
                               .text = "Hi"};
    struct herald_verdict v;
    send_one(tw, i, &m, &s, &v);
    tw->destroy(i);
    assert_int_equal(v.kind, HERALD_VERDICT_ACCEPTED);
    assert_string_equal(v.provider_id, "twilio:201"); /* no body: no sid */
    char *svc = form_get(s.body, "MessagingServiceSid");
    assert_string_equal(svc, MGSID);
    assert_null(form_get(s.body, "From"));
    free(svc);
}

static void tw_refusals(void **state)
{
    (void)state;
    void *i;
    assert_int_equal(create(tw, &i, "base_url", "http://127.0.0.1:9", "account_sid", SID, "auth_token", "t", "from",
                            "+15005550006", NULL),
                     0);
    struct herald_message m = {.campaign = "c", .recipient = "r", .channel = "sms", .to = "+4915112345678",
                               .text = "T"};
    struct herald_message x = m;
    const char *bad[] = {"4915112345678", "+0915112345678", "+1234567", "+1234567890123456", "+49 151 1234",
                         "+49151a2345678", "+"};
    for (size_t k = 0; k < sizeof(bad) / sizeof(bad[0]); k++) {
        x.to = bad[k];
        refused(tw, i, &x, "invalid_phone");
    }
    x.to = NULL;
    refused(tw, i, &x, "no_address");
    x = m;
    x.text = "";
    refused(tw, i, &x, "empty_body");
    x.text = "  \n";
    refused(tw, i, &x, "empty_body");
    x.text = NULL;
    refused(tw, i, &x, "empty_body");

    /* 1600 characters pass, 1601 do not; multi-byte characters count once. */
    char *long_text = malloc(1602 * 2 + 1);
    memset(long_text, 'a', 1600);
    long_text[1600] = '\0';
    CURL *h = curl_easy_init();
    void *st = NULL;
    char reason[64];
    x = m;
    x.text = long_text;
    assert_int_equal(tw->prepare(i, &x, h, &st, reason, sizeof(reason)), 0);
    tw->release(i, st);
    curl_easy_cleanup(h);
    long_text[1600] = 'a';
    long_text[1601] = '\0';
    refused(tw, i, &x, "body_too_long");
    for (int k = 0; k < 1600; k++) memcpy(long_text + 2 * k, "\xc3\xbc", 2);
    long_text[3200] = '\0';
    h = curl_easy_init();
    assert_int_equal(tw->prepare(i, &x, h, &st, reason, sizeof(reason)), 0);
    tw->release(i, st);
    curl_easy_cleanup(h);
    free(long_text);

    /* The shortest and longest E.164 numbers pass. */
    const char *good[] = {"+12345678", "+123456789012345"};
    for (size_t k = 0; k < 2; k++) {
        x = m;
        x.to = good[k];
        h = curl_easy_init();
        assert_int_equal(tw->prepare(i, &x, h, &st, reason, sizeof(reason)), 0);
        tw->release(i, st);
        curl_easy_cleanup(h);
    }
    tw->destroy(i);
}

static void tw_interpret(void **state)
{
    (void)state;
    struct herald_verdict v;
    verdict_of(tw, 0, 201, "HTTP/1.1 201 Created\r\n\r\n", "{\"sid\":\"SMabc\",\"status\":\"queued\"}", &v);
    assert_int_equal(v.kind, HERALD_VERDICT_ACCEPTED);
    assert_string_equal(v.provider_id, "SMabc");
    verdict_of(tw, 0, 400, "HTTP/1.1 400 Bad Request\r\n\r\n",
               "{\"code\": 21211, \"message\": \"Invalid 'To' Phone Number\", \"status\": 400}", &v);
    assert_int_equal(v.kind, HERALD_VERDICT_REJECTED);
    assert_string_equal(v.reason, "twilio_21211");
    verdict_of(tw, 0, 404, "", "not json", &v);
    assert_int_equal(v.kind, HERALD_VERDICT_REJECTED);
    assert_string_equal(v.reason, "http_404");
    verdict_of(tw, 0, 429, "HTTP/1.1 429 Too Many Requests\r\nRetry-After: 3\r\n\r\n", "{\"code\":20429}", &v);
    assert_int_equal(v.kind, HERALD_VERDICT_RETRY);
    assert_int_equal(v.retry_after_ms, 3000);
    verdict_of(tw, 0, 503, "HTTP/1.1 503 Service Unavailable\r\nRetry-After: soon\r\n\r\n", "", &v);
    assert_int_equal(v.kind, HERALD_VERDICT_RETRY);
    assert_int_equal(v.retry_after_ms, 0);
    verdict_of(tw, 28, 0, "", "", &v);
    assert_int_equal(v.kind, HERALD_VERDICT_RETRY);
    assert_string_equal(v.reason, "transport_28");
    verdict_of(tw, 0, 301, "HTTP/1.1 301 Moved\r\n\r\n", "", &v);
    assert_int_equal(v.kind, HERALD_VERDICT_RETRY);
    assert_string_equal(v.reason, "http_301");
}

/* ---- idempotency keys ------------------------------------------------------ */

#define KEY "spring-2026:1700000000000-0:p1"

/* webhook: the key in the header Idempotency-Key, the same on every
 * attempt; no header without a key; a key outside the ABI's alphabet (a
 * header injection) refused before any I/O. */
static void wh_idempotency_key(void **state)
{
    (void)state;
    const char *ok = "HTTP/1.1 202 Accepted\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
    struct herald_message m = {.campaign = "spring", .recipient = "p1", .channel = "email", .topic = "news",
                               .to = "ada@example.org", .subject = "Hi", .text = "Plain", .idempotency_key = KEY};
    for (int attempt = 0; attempt < 2; attempt++) {
        struct server s;
        server_start(&s, ok);
        char url[80];
        snprintf(url, sizeof(url), "%shook", url_of(&s));
        void *i;
        assert_int_equal(create(wh, &i, "url", url, "secret", "0123456789abcdef0123", NULL), 0);
        struct herald_verdict v;
        send_one(wh, i, &m, &s, &v);
        wh->destroy(i);
        assert_int_equal(v.kind, HERALD_VERDICT_ACCEPTED);
        assert_string_equal(req_header(&s, "Idempotency-Key"), KEY);
        assert_non_null(req_header(&s, "X-Herald-Signature"));
        assert_string_equal(req_header(&s, "User-Agent"), "herald-webhook/1");
    }
    struct server s;
    server_start(&s, ok);
    void *i;
    assert_int_equal(create(wh, &i, "url", url_of(&s), "secret", "0123456789abcdef0123", NULL), 0);
    m.idempotency_key = NULL;
    struct herald_verdict v;
    send_one(wh, i, &m, &s, &v);
    assert_null(req_header(&s, "Idempotency-Key"));
    assert_non_null(req_header(&s, "X-Herald-Signature"));
    m.idempotency_key = "k\r\nX-Evil: 1";
    CURL *h = curl_easy_init();
    void *st = NULL;
    char reason[64] = "";
    assert_int_equal(wh->prepare(i, &m, h, &st, reason, sizeof(reason)), -1);
    assert_string_equal(reason, "invalid_idempotency_key");
    curl_easy_cleanup(h);
    wh->destroy(i);
}

/* SendGrid's Mail Send has no idempotency field: the key is the
 * personalization's custom argument idempotency_key (carried into the
 * Event Webhook's events); absent without a key. */
static void sg_idempotency_key(void **state)
{
    (void)state;
    const char *ok = "HTTP/1.1 202 Accepted\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
    struct herald_message m = {.campaign = "spring", .recipient = "p1", .channel = "email", .topic = "news",
                               .to = "ada@example.org", .subject = "Hi", .text = "Plain", .idempotency_key = KEY};
    for (int with = 1; with >= 0; with--) {
        struct server s;
        server_start(&s, ok);
        void *i;
        assert_int_equal(create(sg, &i, "base_url", url_of(&s), "api_key", "SG.k", "from", "news@example.com", NULL),
                         0);
        m.idempotency_key = with ? KEY : NULL;
        struct herald_verdict v;
        send_one(sg, i, &m, &s, &v);
        sg->destroy(i);
        json_error_t je;
        json_t *b = json_loads(s.body, 0, &je);
        assert_non_null(b);
        json_t *args = json_object_get(json_array_get(json_object_get(b, "personalizations"), 0), "custom_args");
        if (with) {
            assert_string_equal(json_string_value(json_object_get(args, "idempotency_key")), KEY);
            assert_int_equal(json_object_size(args), 3);
        } else {
            assert_null(json_object_get(args, "idempotency_key"));
            assert_int_equal(json_object_size(args), 2);
        }
        assert_null(json_object_get(b, "custom_args")); /* message-level: a string in the spec, unused */
        json_decref(b);
    }
}

/* Twilio's Messages resource takes no idempotency parameter: the form is
 * the same with a key and without. */
static void tw_no_idempotency_field(void **state)
{
    (void)state;
    const char *reply = "HTTP/1.1 201 Created\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}";
    char bodies[2][1024];
    for (int with = 0; with < 2; with++) {
        struct server s;
        server_start(&s, reply);
        void *i;
        assert_int_equal(create(tw, &i, "base_url", url_of(&s), "account_sid", SID, "auth_token", "tok", "from",
                                "+15005550006", NULL),
                         0);
        struct herald_message m = {.campaign = "spring", .recipient = "p1", .channel = "sms",
                                   .to = "+4915112345678", .text = "Hi", .idempotency_key = with ? KEY : NULL};
        struct herald_verdict v;
        send_one(tw, i, &m, &s, &v);
        tw->destroy(i);
        snprintf(bodies[with], sizeof(bodies[with]), "%s", s.body);
        assert_null(strstr(s.req, KEY));
    }
    assert_string_equal(bodies[0], bodies[1]);
}

/* ABI 2: with a status_url (the provider has `feedback = on`) Twilio is
 * asked to post the message's status there (StatusCallback); without one,
 * the request is what it was. */
static void tw_status_callback(void **state)
{
    (void)state;
    const char *reply = "HTTP/1.1 201 Created\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}";
    const char *url = "https://hooks.example.test/herald/v1/webhooks/tw";
    for (int with = 0; with < 2; with++) {
        struct server s;
        server_start(&s, reply);
        void *i;
        assert_int_equal(create(tw, &i, "base_url", url_of(&s), "account_sid", SID, "auth_token", "tok", "from",
                                "+15005550006", NULL),
                         0);
        struct herald_message m = {.campaign = "spring", .recipient = "p1", .channel = "sms",
                                   .to = "+4915112345678", .text = "Hi", .status_url = with ? url : NULL};
        struct herald_verdict v;
        send_one(tw, i, &m, &s, &v);
        tw->destroy(i);
        assert_int_equal(v.kind, HERALD_VERDICT_ACCEPTED);
        char *cb = form_get(s.body, "StatusCallback");
        if (with) assert_string_equal(cb, url);
        else assert_null(cb);
        free(cb);
    }
}

/* A 429 is the provider asking for less, not failing: slow_down is set
 * (the daemon then pauses the provider, not the circuit); a 503 is not. */
static void slow_down_on_429(void **state)
{
    (void)state;
    const struct herald_channel_plugin *apis[] = {sg, tw, wh};
    for (size_t k = 0; k < 3; k++) {
        struct herald_verdict v;
        verdict_of(apis[k], 0, 429, "HTTP/1.1 429 Too Many Requests\r\nRetry-After: 2\r\n\r\n", "", &v);
        assert_int_equal(v.kind, HERALD_VERDICT_RETRY);
        assert_int_equal(v.retry_after_ms, 2000);
        assert_int_equal(v.slow_down, 1);
        verdict_of(apis[k], 0, 429, "HTTP/1.1 429 Too Many Requests\r\n\r\n", "", &v);
        assert_int_equal(v.slow_down, 1);
        verdict_of(apis[k], 0, 503, "HTTP/1.1 503 Unavailable\r\nRetry-After: 2\r\n\r\n", "", &v);
        assert_int_equal(v.kind, HERALD_VERDICT_RETRY);
        assert_int_equal(v.slow_down, 0);
        verdict_of(apis[k], 7, 0, "", "", &v);
        assert_int_equal(v.slow_down, 0);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(sg_settings),   cmocka_unit_test(sg_request),         cmocka_unit_test(sg_request_minimal),
        cmocka_unit_test(sg_refusals),   cmocka_unit_test(sg_interpret),       cmocka_unit_test(tw_settings),
        cmocka_unit_test(tw_request),    cmocka_unit_test(tw_request_service), cmocka_unit_test(tw_refusals),
        cmocka_unit_test(tw_interpret),  cmocka_unit_test(wh_idempotency_key), cmocka_unit_test(sg_idempotency_key),
        cmocka_unit_test(tw_no_idempotency_field), cmocka_unit_test(slow_down_on_429),
        cmocka_unit_test(tw_status_callback),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
