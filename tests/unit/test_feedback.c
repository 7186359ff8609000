/*
 * test_feedback.c - provider callbacks as the plugins read them (ABI 2's
 * feedback()): the shared helpers of channels/plugin_feedback.h (form
 * decoding, the text Twilio signs, checked against the example of Twilio's
 * own request validation documentation, SMS keywords, sids), and the
 * email_sendgrid and sms_twilio plugins themselves, loaded as the daemon
 * loads them, given signed requests made here with real keys: which events
 * they report, that a bad signature, an old timestamp or a missing header
 * is refused, and that a malformed batch (bad JSON, a missing field, too
 * many events) is refused whole.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <dlfcn.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/x509.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "herald_channel.h"
#include "plugin_feedback.h"

/* ---- the shared helpers ---------------------------------------------------- */

static int parse(const char *body, struct pfb_form *f)
{
    char err[128];
    return pfb_form_parse(body, strlen(body), f, err, sizeof(err));
}

static void test_form_decoding(void **state)
{
    (void)state;
    struct pfb_form f;
    assert_int_equal(parse("From=%2B15551234567&Body=++stop+&Empty=&Bare&&To=a%3Db", &f), 0);
    assert_int_equal(f.n, 5);
    assert_string_equal(pfb_form_get(&f, "From"), "+15551234567");
    assert_string_equal(pfb_form_get(&f, "Body"), "  stop ");
    assert_string_equal(pfb_form_get(&f, "Empty"), "");
    assert_string_equal(pfb_form_get(&f, "Bare"), "");
    assert_string_equal(pfb_form_get(&f, "To"), "a=b");
    assert_null(pfb_form_get(&f, "Missing"));
    pfb_form_free(&f);
    assert_int_equal(parse("", &f), 0);
    assert_int_equal(f.n, 0);
    pfb_form_free(&f);

    /* Bad escapes and NUL bytes are refused, and leave nothing behind. */
    const char *bad[] = {"Body=%", "Body=%4", "Body=%zz", "Body=a%00b", "%G1=x"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_int_equal(parse(bad[i], &f), -1);
        assert_int_equal(f.n, 0);
        assert_null(f.params);
    }
    /* Too many fields. */
    char big[4096] = "";
    for (int i = 0; i <= PFB_FORM_MAX_PARAMS; i++) snprintf(big + strlen(big), sizeof(big) - strlen(big), "k%d=v&", i);
    assert_int_equal(parse(big, &f), -1);
}

/* Twilio's documented example: https://mycompany.com/myapp.php?foo=1&bar=2,
 * auth token 12345, signature 0/KCTR6DLpKmkAf8muzZqo1nDgQ=. */
static void test_twilio_signed_text(void **state)
{
    (void)state;
    struct pfb_form f;
    assert_int_equal(parse("To=%2B18005551212&From=%2B12349013030&Digits=1234&CallSid=CA1234567890ABCDE"
                           "&Caller=%2B12349013030",
                           &f),
                     0);
    size_t len = 0;
    char *text = pfb_twilio_signed_text("https://mycompany.com/myapp.php?foo=1&bar=2", &f, &len);
    assert_string_equal(text, "https://mycompany.com/myapp.php?foo=1&bar=2CallSidCA1234567890ABCDECaller"
                              "+12349013030Digits1234From+12349013030To+18005551212");
    assert_int_equal(len, strlen(text));
    /* The form keeps the posted order. */
    assert_string_equal(f.params[0].name, "To");
    assert_true(pfb_twilio_verify("12345", text, len, "0/KCTR6DLpKmkAf8muzZqo1nDgQ="));
    assert_false(pfb_twilio_verify("12346", text, len, "0/KCTR6DLpKmkAf8muzZqo1nDgQ="));
    assert_false(pfb_twilio_verify("12345", text, len - 1, "0/KCTR6DLpKmkAf8muzZqo1nDgQ="));
    assert_false(pfb_twilio_verify("12345", text, len, "not base64"));
    free(text);
    pfb_form_free(&f);

    /* Equal names sort by value; byte order (upper case first). */
    assert_int_equal(parse("b=2&a=9&b=1&B=0", &f), 0);
    text = pfb_twilio_signed_text("u/p", &f, &len);
    assert_string_equal(text, "u/pB0a9b1b2");
    free(text);
    pfb_form_free(&f);
}

static void test_keywords(void **state)
{
    (void)state;
    const char *stop[] = {"STOP", "stop", "  stop ", "\tStopAll\r\n", "unsubscribe", "Cancel", "END", "quit"};
    for (size_t i = 0; i < sizeof(stop) / sizeof(stop[0]); i++)
        assert_int_equal(pfb_sms_keyword(stop[i], NULL), PFB_KW_STOP);
    assert_int_equal(pfb_sms_keyword(" start", NULL), PFB_KW_START);
    assert_int_equal(pfb_sms_keyword("UNSTOP", NULL), PFB_KW_START);
    assert_int_equal(pfb_sms_keyword("help ", NULL), PFB_KW_HELP);
    const char *none[] = {"", "   ", "stop please", "STOPP", "st op", "please stop", "HELPME", "yes", NULL};
    for (size_t i = 0; i < sizeof(none) / sizeof(none[0]); i++)
        assert_int_equal(pfb_sms_keyword(none[i], NULL), PFB_KW_NONE);
    /* Twilio's Advanced Opt-Out names its own keywords (any language) in OptOutType. */
    assert_int_equal(pfb_sms_keyword("arret", "STOP"), PFB_KW_STOP);
    assert_int_equal(pfb_sms_keyword("ayuda", "HELP"), PFB_KW_HELP);
    assert_int_equal(pfb_sms_keyword("go", "START"), PFB_KW_START);
    assert_int_equal(pfb_sms_keyword("hello", "stop"), PFB_KW_NONE);
    assert_int_equal(pfb_sms_keyword(NULL, "OTHER"), PFB_KW_NONE);
}

static void test_ids(void **state)
{
    (void)state;
    assert_true(pfb_twilio_sid_valid("SM0123456789abcdef0123456789abcdef"));
    assert_false(pfb_twilio_sid_valid(NULL));
    assert_false(pfb_twilio_sid_valid("SM0123456789abcdef0123456789abcde"));  /* 31 hex */
    assert_false(pfb_twilio_sid_valid("SM0123456789ABCDEF0123456789abcdef")); /* upper-case hex */
    assert_false(pfb_twilio_sid_valid("ann.lindqvist@example.com"));
    assert_true(pfb_id_valid("e2e-delivered-1", 128));
    assert_true(pfb_id_valid("ZGVsaXZlcmVk_LTAt=", 128));
    assert_false(pfb_id_valid("ann@example.com", 128)); /* an address never passes: ids are logged */
    assert_false(pfb_id_valid("a b", 128));
    assert_false(pfb_id_valid("", 128));
    assert_false(pfb_id_valid("abcd", 3));
    assert_int_equal(pfb_parse_unix("1700000000"), 1700000000LL);
    assert_int_equal(pfb_parse_unix("17e9"), -1);
    assert_int_equal(pfb_parse_unix(""), -1);
    assert_int_equal(pfb_parse_unix("1234567890123"), -1);
}

/* ---- the plugins, loaded as the daemon loads them ------------------------- */

static int host_errors;
static void h_log(void *ctx, enum herald_log_level l, const char *fmt, ...) { (void)ctx, (void)l, (void)fmt; }
static void h_err(void *ctx, size_t i, const char *fmt, ...) { (void)ctx, (void)i, (void)fmt, host_errors++; }
static void h_missing(void *ctx, const char *k, const char *fmt, ...) { (void)ctx, (void)k, (void)fmt, host_errors++; }
static int64_t h_now(void *ctx) { return (void)ctx, (int64_t)time(NULL) * 1000; }
static const struct herald_host host = {.abi_version = HERALD_CHANNEL_ABI_VERSION, .size = sizeof(host),
                                        .log = h_log, .setting_error = h_err, .now_ms = h_now,
                                        .base_dir = ".", .setting_missing = h_missing};

struct plugin {
    void *so;
    const struct herald_channel_plugin *api;
    void *inst;
};

static void load(struct plugin *p, const char *path, const struct herald_setting *s, size_t n)
{
    p->so = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    assert_non_null(p->so);
    herald_channel_entry_fn entry = (herald_channel_entry_fn)dlsym(p->so, HERALD_CHANNEL_SYMBOL);
    assert_non_null(entry);
    p->api = entry();
    assert_int_equal(p->api->abi_version, 2);
    assert_true(p->api->size >= sizeof(struct herald_channel_plugin));
    assert_non_null(p->api->feedback);
    host_errors = 0;
    assert_int_equal(p->api->create(&host, s, n, &p->inst), 0);
    assert_int_equal(host_errors, 0);
}

static void unload(struct plugin *p)
{
    p->api->destroy(p->inst);
    dlclose(p->so);
}

/* What one feedback() call reported. */
#define MAX_SEEN 16
struct seen {
    size_t n, total;
    struct {
        enum herald_feedback_kind kind;
        char event_id[160], provider_id[160], campaign[80], recipient[80], address[80], detail[80], channel[8];
        int64_t at;
    } ev[MAX_SEEN];
};

static void cp(char *dst, size_t len, const char *s) { snprintf(dst, len, "%s", s ? s : ""); }

static void on_emit(void *ectx, const struct herald_feedback_event *e)
{
    struct seen *s = ectx;
    s->total++;
    if (s->n == MAX_SEEN) return;
    s->ev[s->n].kind = e->kind;
    cp(s->ev[s->n].event_id, 160, e->event_id);
    cp(s->ev[s->n].provider_id, 160, e->provider_id);
    cp(s->ev[s->n].campaign, 80, e->campaign);
    cp(s->ev[s->n].recipient, 80, e->recipient);
    cp(s->ev[s->n].address, 80, e->address);
    cp(s->ev[s->n].detail, 80, e->detail);
    cp(s->ev[s->n].channel, 8, e->channel);
    s->ev[s->n].at = e->at;
    s->n++;
}

struct hdrs {
    const char *names[4], *values[4];
};

static const char *get_header(const void *hctx, const char *name)
{
    const struct hdrs *h = hctx;
    for (size_t i = 0; i < 4 && h->names[i]; i++)
        if (strcasecmp(h->names[i], name) == 0) return h->values[i];
    return NULL;
}

static int call(struct plugin *p, const char *url, const struct hdrs *h, const char *body, size_t len, struct seen *s,
                struct herald_feedback_reply *reply, char *err)
{
    memset(s, 0, sizeof(*s));
    memset(reply, 0, sizeof(*reply));
    struct herald_feedback_request req = {.method = "POST", .path = "/v1/webhooks/x", .query = "", .url = url,
                                          .header = get_header, .hctx = h, .body = body, .body_len = len,
                                          .now = (int64_t)time(NULL), .emit = on_emit, .ectx = s};
    err[0] = '\0';
    return p->api->feedback(p->inst, &req, reply, err, 160);
}

/* SendGrid: a P-256 key made here; its public half configured as
 * webhook_public_key, the private one signs ts + body. */
static EVP_PKEY *sg_key;
static char sg_pub[256];
static struct plugin sg;

static int sg_setup(void **state)
{
    (void)state;
    sg_key = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    assert_non_null(sg_key);
    unsigned char *der = NULL;
    int n = i2d_PUBKEY(sg_key, &der);
    assert_true(n > 0);
    EVP_EncodeBlock((unsigned char *)sg_pub, der, n);
    OPENSSL_free(der);
    const struct herald_setting s[] = {{"api_key", "SG.test"}, {"from", "news@example.com"},
                                       {"webhook_public_key", sg_pub}};
    load(&sg, SENDGRID_SO, s, 3);
    return 0;
}

static int sg_teardown(void **state)
{
    (void)state;
    unload(&sg);
    EVP_PKEY_free(sg_key);
    return 0;
}

static char sig_buf[256], ts_buf[32];

static struct hdrs sg_sign(const char *body, size_t len, long long ts)
{
    snprintf(ts_buf, sizeof(ts_buf), "%lld", ts);
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    unsigned char sig[128];
    size_t siglen = sizeof(sig);
    assert_int_equal(EVP_DigestSignInit(md, NULL, EVP_sha256(), NULL, sg_key), 1);
    assert_int_equal(EVP_DigestSignUpdate(md, ts_buf, strlen(ts_buf)), 1);
    assert_int_equal(EVP_DigestSignUpdate(md, body, len), 1);
    assert_int_equal(EVP_DigestSignFinal(md, sig, &siglen), 1);
    EVP_MD_CTX_free(md);
    EVP_EncodeBlock((unsigned char *)sig_buf, sig, (int)siglen);
    return (struct hdrs){{"X-Twilio-Email-Event-Webhook-Signature", "X-Twilio-Email-Event-Webhook-Timestamp"},
                         {sig_buf, ts_buf}};
}

static int sg_call(const char *body, struct seen *s, char *err)
{
    struct hdrs h = sg_sign(body, strlen(body), (long long)time(NULL));
    struct herald_feedback_reply reply;
    int rc = call(&sg, NULL, &h, body, strlen(body), s, &reply, err);
    assert_string_equal(reply.body, ""); /* SendGrid gets the daemon's JSON */
    return rc;
}

static void test_sendgrid_events(void **state)
{
    (void)state;
    struct seen s;
    char err[160];
    const char *body =
        "[{\"event\":\"delivered\",\"email\":\"a@example.com\",\"sg_event_id\":\"ev-1\",\"timestamp\":1700000000,"
        "\"sg_message_id\":\"MSGID1.filterdrecv-1.0\",\"campaign\":\"c1\",\"recipient\":\"u1\"},"
        "{\"event\":\"bounce\",\"email\":\"b@example.com\",\"sg_event_id\":\"ev-2\",\"sg_message_id\":\"MSGID2\"},"
        "{\"event\":\"bounce\",\"type\":\"blocked\",\"email\":\"c@example.com\",\"sg_event_id\":\"ev-3\"},"
        "{\"event\":\"dropped\",\"email\":\"d@example.com\",\"sg_event_id\":\"ev-4\"},"
        "{\"event\":\"spamreport\",\"email\":\"e@example.com\",\"sg_event_id\":\"ev-5\"},"
        "{\"event\":\"unsubscribe\",\"email\":\"f@example.com\",\"sg_event_id\":\"ev-6\"},"
        "{\"event\":\"open\",\"email\":\"g@example.com\"}]";
    assert_int_equal(sg_call(body, &s, err), HERALD_FEEDBACK_OK);
    assert_int_equal(s.n, 7);
    const enum herald_feedback_kind want[] = {HERALD_FEEDBACK_DELIVERED,   HERALD_FEEDBACK_BOUNCED_HARD,
                                              HERALD_FEEDBACK_BOUNCED_SOFT, HERALD_FEEDBACK_BOUNCED_HARD,
                                              HERALD_FEEDBACK_COMPLAINED,   HERALD_FEEDBACK_UNSUBSCRIBED,
                                              HERALD_FEEDBACK_IGNORED};
    for (size_t i = 0; i < 7; i++) assert_int_equal(s.ev[i].kind, want[i]);
    assert_string_equal(s.ev[0].event_id, "ev-1");
    assert_string_equal(s.ev[0].provider_id, "MSGID1"); /* X-Message-Id: before ".filter" */
    assert_string_equal(s.ev[0].campaign, "c1");
    assert_string_equal(s.ev[0].recipient, "u1");
    assert_string_equal(s.ev[0].channel, "email");
    assert_int_equal(s.ev[0].at, 1700000000);
    assert_string_equal(s.ev[1].provider_id, "MSGID2");
    assert_string_equal(s.ev[1].address, "b@example.com");
    assert_string_equal(s.ev[2].detail, "blocked");
    assert_string_equal(s.ev[3].detail, "dropped");
    assert_string_equal(s.ev[6].event_id, "");

    /* An empty batch is a batch. */
    assert_int_equal(sg_call("[]", &s, err), HERALD_FEEDBACK_OK);
    assert_int_equal(s.total, 0);
}

static void test_sendgrid_malformed(void **state)
{
    (void)state;
    struct seen s;
    char err[160];
    const struct {
        const char *body, *err;
    } bad[] = {
        {"[{\"event\":", "body: not valid JSON"},
        {"{\"event\":\"delivered\"}", "body: must be a JSON array of events"},
        {"[1]", "events[0]: must be an object"},
        {"[{\"email\":\"a@example.com\",\"sg_event_id\":\"x\"}]", "events[0].event: must be a string"},
        {"[{\"event\":\"open\"},{\"event\":\"delivered\",\"email\":\"a@example.com\"}]",
         "events[1].sg_event_id: must be an event id"},
        {"[{\"event\":\"delivered\",\"sg_event_id\":\"a@example.com\"}]", "events[0].sg_event_id: must be an event id"},
        {"[{\"event\":\"bounce\",\"sg_event_id\":\"x\"}]", "events[0].email: must be an email address"},
        {"[{\"event\":\"spamreport\",\"sg_event_id\":\"x\",\"email\":\"no-at-sign\"}]",
         "events[0].email: must be an email address"},
        {"[{\"event\":\"delivered\",\"sg_event_id\":\"x\",\"sg_message_id\":\"a b\"}]",
         "events[0].sg_message_id: must be a message id"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_int_equal(sg_call(bad[i].body, &s, err), HERALD_FEEDBACK_INVALID);
        assert_int_equal(strncmp(err, bad[i].err, strlen(bad[i].err)), 0);
        assert_null(strstr(err, "@")); /* never quotes an address */
    }

    /* More than 10000 events, and a huge body (1 MiB of them). */
    size_t cap = 10001 * 16 + 16, len = 0;
    char *big = malloc(cap);
    big[len++] = '[';
    for (int i = 0; i < 10001; i++) len += (size_t)snprintf(big + len, cap - len, "%s{\"event\":\"x\"}", i ? "," : "");
    big[len++] = ']';
    big[len] = '\0';
    assert_int_equal(sg_call(big, &s, err), HERALD_FEEDBACK_INVALID);
    assert_string_equal(err, "body: more than 10000 events");
    free(big);
    cap = 1u << 20;
    big = malloc(cap + 1);
    memset(big, ' ', cap);
    big[0] = '[';
    memcpy(big + cap - 16, "{\"event\":\"o\"}]", 15);
    big[cap - 1] = ' ';
    big[cap] = '\0';
    assert_int_equal(sg_call(big, &s, err), HERALD_FEEDBACK_OK);
    assert_int_equal(s.total, 1);
    free(big);
}

static void test_sendgrid_signature(void **state)
{
    (void)state;
    struct seen s;
    struct herald_feedback_reply reply;
    char err[160];
    const char *body = "[{\"event\":\"bounce\",\"email\":\"a@example.com\",\"sg_event_id\":\"x\"}]";
    long long now = (long long)time(NULL);
    struct hdrs h = sg_sign(body, strlen(body), now);
    /* Altered body, other timestamp, garbage signature: nothing reported. */
    assert_int_equal(call(&sg, NULL, &h, "[]", 2, &s, &reply, err), HERALD_FEEDBACK_FORBIDDEN);
    assert_int_equal(s.total, 0);
    char other[32];
    snprintf(other, sizeof(other), "%lld", now + 1);
    h.values[1] = other;
    assert_int_equal(call(&sg, NULL, &h, body, strlen(body), &s, &reply, err), HERALD_FEEDBACK_FORBIDDEN);
    assert_string_equal(err, "signature does not verify");
    h = sg_sign(body, strlen(body), now);
    h.values[0] = "AAAA";
    assert_int_equal(call(&sg, NULL, &h, body, strlen(body), &s, &reply, err), HERALD_FEEDBACK_FORBIDDEN);
    /* Signed, but three days old (a replay). */
    h = sg_sign(body, strlen(body), now - 3 * 86400);
    assert_int_equal(call(&sg, NULL, &h, body, strlen(body), &s, &reply, err), HERALD_FEEDBACK_FORBIDDEN);
    assert_string_equal(err, "timestamp outside the accepted window");
    /* No headers. */
    struct hdrs none = {{NULL}, {NULL}};
    assert_int_equal(call(&sg, NULL, &none, body, strlen(body), &s, &reply, err), HERALD_FEEDBACK_UNSIGNED);
    assert_int_equal(s.total, 0);
    /* The valid one still passes. */
    h = sg_sign(body, strlen(body), now);
    assert_int_equal(call(&sg, NULL, &h, body, strlen(body), &s, &reply, err), HERALD_FEEDBACK_OK);
    assert_int_equal(s.n, 1);

    /* A provider without webhook_public_key refuses everything. */
    struct plugin nokey;
    const struct herald_setting st[] = {{"api_key", "SG.test"}, {"from", "news@example.com"}};
    load(&nokey, SENDGRID_SO, st, 2);
    assert_int_equal(call(&nokey, NULL, &h, body, strlen(body), &s, &reply, err), HERALD_FEEDBACK_FORBIDDEN);
    assert_int_equal(s.total, 0);
    unload(&nokey);
}

/* Twilio: status callbacks and inbound SMS, signed with the auth token. */
#define TW_TOKEN "unit-twilio-auth-token-0123456789"
#define TW_URL "https://hooks.example.test/herald/v1/webhooks/tw"
#define SID "SM0123456789abcdef0123456789abcdef"

static struct plugin tw;

static int tw_setup(void **state)
{
    (void)state;
    const struct herald_setting s[] = {{"account_sid", "AC0123456789abcdef0123456789abcdef"},
                                       {"auth_token", TW_TOKEN}, {"from", "+15005550006"}};
    load(&tw, TWILIO_SO, s, 3);
    return 0;
}

static int tw_teardown(void **state)
{
    (void)state;
    unload(&tw);
    return 0;
}

static int tw_call(const char *url, const char *body, const char *token, struct seen *s,
                   struct herald_feedback_reply *reply, char *err)
{
    struct pfb_form f;
    char sig[64] = "AAAA";
    if (pfb_form_parse(body, strlen(body), &f, err, 160) == 0) {
        size_t len = 0;
        char *text = pfb_twilio_signed_text(TW_URL, &f, &len);
        unsigned char md[EVP_MAX_MD_SIZE];
        unsigned int mdlen = 0;
        HMAC(EVP_sha1(), token, (int)strlen(token), (const unsigned char *)text, len, md, &mdlen);
        EVP_EncodeBlock((unsigned char *)sig, md, (int)mdlen);
        free(text);
        pfb_form_free(&f);
    }
    struct hdrs h = {{"X-Twilio-Signature"}, {sig}};
    return call(&tw, url, &h, body, strlen(body), s, reply, err);
}

static void test_twilio_status(void **state)
{
    (void)state;
    struct seen s;
    struct herald_feedback_reply reply;
    char err[160];
    const char *statuses[] = {"delivered", "undelivered", "failed", "sent"};
    const enum herald_feedback_kind kinds[] = {HERALD_FEEDBACK_DELIVERED, HERALD_FEEDBACK_UNDELIVERED,
                                               HERALD_FEEDBACK_FAILED, HERALD_FEEDBACK_IGNORED};
    for (size_t i = 0; i < 4; i++) {
        char body[256];
        snprintf(body, sizeof(body), "MessageSid=%s&MessageStatus=%s&To=%%2B15550100&AccountSid=AC0%s", SID,
                 statuses[i], i == 1 ? "&ErrorCode=30003" : "");
        assert_int_equal(tw_call(TW_URL, body, TW_TOKEN, &s, &reply, err), HERALD_FEEDBACK_OK);
        assert_int_equal(s.n, 1);
        assert_int_equal(s.ev[0].kind, kinds[i]);
        if (kinds[i] == HERALD_FEEDBACK_IGNORED) continue;
        char want[64];
        snprintf(want, sizeof(want), "%s:%s", SID, statuses[i]);
        assert_string_equal(s.ev[0].event_id, want); /* each status its own event */
        assert_string_equal(s.ev[0].provider_id, SID);
        assert_string_equal(s.ev[0].channel, "sms");
        assert_string_equal(s.ev[0].detail, i == 1 ? "twilio_30003" : statuses[i]);
    }
    /* Refused: a bad sid, the wrong token, no public URL, bad encoding. */
    assert_int_equal(tw_call(TW_URL, "MessageSid=SMnope&MessageStatus=delivered", TW_TOKEN, &s, &reply, err),
                     HERALD_FEEDBACK_INVALID);
    assert_int_equal(s.total, 0);
    assert_int_equal(tw_call(TW_URL, "MessageSid=" SID "&MessageStatus=delivered", "another-token", &s, &reply, err),
                     HERALD_FEEDBACK_FORBIDDEN);
    assert_int_equal(s.total, 0);
    assert_int_equal(tw_call(NULL, "MessageSid=" SID "&MessageStatus=delivered", TW_TOKEN, &s, &reply, err),
                     HERALD_FEEDBACK_FORBIDDEN);
    assert_int_equal(tw_call(TW_URL, "MessageSid=%zz", TW_TOKEN, &s, &reply, err), HERALD_FEEDBACK_INVALID);
    assert_int_equal(s.total, 0);
}

static void test_twilio_inbound(void **state)
{
    (void)state;
    struct seen s;
    struct herald_feedback_reply reply;
    char err[160];
    assert_int_equal(tw_call(TW_URL, "MessageSid=" SID "&From=%2B15550109001&Body=+Stop+", TW_TOKEN, &s, &reply, err),
                     HERALD_FEEDBACK_OK);
    assert_int_equal(s.n, 1);
    assert_int_equal(s.ev[0].kind, HERALD_FEEDBACK_KEYWORD_STOP);
    assert_string_equal(s.ev[0].event_id, SID);
    assert_string_equal(s.ev[0].address, "+15550109001");
    assert_string_equal(reply.content_type, "text/xml; charset=utf-8");
    assert_null(strstr(reply.body, "<Message>"));
    assert_int_equal(tw_call(TW_URL, "MessageSid=" SID "&From=%2B15550109001&Body=help", TW_TOKEN, &s, &reply, err),
                     HERALD_FEEDBACK_OK);
    assert_int_equal(s.ev[0].kind, HERALD_FEEDBACK_KEYWORD_HELP);
    assert_non_null(strstr(reply.body, "<Message>Reply STOP"));
    /* Other text asks for nothing, and is still answered with TwiML. */
    assert_int_equal(tw_call(TW_URL, "MessageSid=" SID "&From=%2B15550109001&Body=hello", TW_TOKEN, &s, &reply, err),
                     HERALD_FEEDBACK_OK);
    assert_int_equal(s.ev[0].kind, HERALD_FEEDBACK_IGNORED);
    assert_string_equal(reply.body, "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Response/>");
    /* A keyword without a usable sid cannot be deduplicated: refused. */
    assert_int_equal(tw_call(TW_URL, "From=%2B15550109001&Body=STOP", TW_TOKEN, &s, &reply, err),
                     HERALD_FEEDBACK_INVALID);
    assert_int_equal(s.total, 0);
}

int main(void)
{
    const struct CMUnitTest helpers[] = {
        cmocka_unit_test(test_form_decoding),
        cmocka_unit_test(test_twilio_signed_text),
        cmocka_unit_test(test_keywords),
        cmocka_unit_test(test_ids),
    };
    const struct CMUnitTest sendgrid[] = {
        cmocka_unit_test(test_sendgrid_events),
        cmocka_unit_test(test_sendgrid_malformed),
        cmocka_unit_test(test_sendgrid_signature),
    };
    const struct CMUnitTest twilio[] = {
        cmocka_unit_test(test_twilio_status),
        cmocka_unit_test(test_twilio_inbound),
    };
    int failed = cmocka_run_group_tests(helpers, NULL, NULL);
    failed += cmocka_run_group_tests(sendgrid, sg_setup, sg_teardown);
    failed += cmocka_run_group_tests(twilio, tw_setup, tw_teardown);
    return failed;
}
