/*
 * webhooks.c - provider feedback: SendGrid's event webhook and Twilio's
 * inbound SMS (see webhooks.h for what each does).
 *
 * Owns only the per-request state of the two routes; the person's data is
 * changed through people.h alone. Its own keys (the Twilio dedupe key,
 * `<prefix>:webhook:twilio:<MessageSid>`, and the counters hash
 * `<prefix>:webhook:counts`) go through the daemon's command layer for
 * interactive callers (api_state.cmds): the dedupe key of a STOP or START
 * is set by people.c's consent script in the same step as the change
 * (people_consent_append_event), so it is never left set by a change that
 * failed; HELP, which changes nothing, sets it with SET NX EX. Parsing and
 * the signed text are pure (feedback.c); this file adds the crypto, the
 * clock and the Redis round trips.
 *
 * Main invariant: nothing changes unless the provider's signature over the
 * exact bytes received verified first; a request refused (403, 400) has
 * changed nothing. A provider sends an event again until it gets a 2xx, so
 * a Redis failure is answered 503 (api_respond_store_error), never 200
 * with nothing stored. Logs carry ids (recipient id, MessageSid), counts
 * and error labels, never an address, a number or a body.
 */
#include "webhooks.h"

#include <ctype.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/x509.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "feedback.h"
#include "log.h"
#include "people.h"

#define TWIML_EMPTY "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Response/>"
#define TWIML_HELP                                                                                        \
    "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Response><Message>Reply STOP to stop these messages, START " \
    "to receive them again.</Message></Response>"
#define WEBHOOKS_SENDGRID_MAX_BODY (1024u * 1024u)
#define SIG_B64_MAX 512 /* a DER ECDSA P-256 signature is at most 72 bytes */

/* ---- shared helpers ------------------------------------------------------ */

/* Standard base64 (with padding) into a new buffer; -1 when it is not. */
static int b64_decode(const char *in, unsigned char **out, size_t *outlen)
{
    size_t n = strlen(in);
    while (n && isspace((unsigned char)in[n - 1])) n--;
    while (n && isspace((unsigned char)*in)) in++, n--;
    if (n == 0 || n % 4 || n > 8192) return -1;
    unsigned char *buf = xmalloc(n / 4 * 3 + 1);
    int len = EVP_DecodeBlock(buf, (const unsigned char *)in, (int)n);
    if (len < 0) {
        free(buf);
        return -1;
    }
    /* EVP_DecodeBlock counts the bytes the padding stands for. */
    if (in[n - 1] == '=') len--;
    if (in[n - 2] == '=') len--;
    *out = buf;
    *outlen = (size_t)len;
    return 0;
}

/* The value of setting key of every provider using plugin, in file order. */
static size_t provider_settings(const struct config *cfg, const char *plugin, const char *key,
                                const char **out, size_t max)
{
    size_t n = 0;
    for (size_t i = 0; i < cfg->nproviders && n < max; i++) {
        const struct config_provider *p = &cfg->providers[i];
        if (!p->plugin || strcmp(p->plugin, plugin) != 0) continue;
        for (size_t k = 0; k < p->nsettings; k++)
            if (strcmp(p->settings[k].key, key) == 0 && p->settings[k].value[0]) {
                out[n++] = p->settings[k].value;
                break;
            }
    }
    return n;
}

static void on_counted(redisReply *r, enum store_error err, const char *text, void *arg)
{
    (void)r, (void)err, (void)text, (void)arg;
}

/* After the change was stored: a counter that must land, so it is a
 * default command of the layer (retried until it passes, never failing
 * the request whose change it counts). */
static void count(struct api_state *st, const char *field, long long by)
{
    if (by <= 0) return;
    struct strbuf k;
    strbuf_init(&k);
    strbuf_addf(&k, "%s:webhook:counts", st->cfg->prefix);
    char n[HERALD_LL_CHARS];
    herald_lltoa(n, by);
    STORE_SEND(st->cmds, 0, on_counted, NULL, "HINCRBY", k.buf, field, n);
    strbuf_free(&k);
}

/* Refused requests may come thousands a second (anyone can post): a line
 * when they start, a count a minute, a line when they stop (log.h). */
static struct log_rate sg_refused, tw_refused;

static void refused(struct log_rate *r, const char *provider, const char *why)
{
    log_rate_hit(r, "webhooks", r == &sg_refused ? "sendgrid: unauthenticated requests refused"
                                                 : "twilio: unauthenticated requests refused",
                 "%s: refused: %s; further refusals are counted", provider, why);
}

/* ---- SendGrid -------------------------------------------------------------- */

/* True when sig is pubkey_b64's ECDSA P-256/SHA-256 signature of ts + body. */
static bool sg_verify(const char *pubkey_b64, const char *ts, const char *body, size_t len,
                      const unsigned char *sig, size_t siglen)
{
    unsigned char *der = NULL;
    size_t derlen = 0;
    if (b64_decode(pubkey_b64, &der, &derlen) < 0) return false;
    const unsigned char *p = der;
    EVP_PKEY *pk = d2i_PUBKEY(NULL, &p, (long)derlen);
    free(der);
    bool ok = false;
    if (pk && EVP_PKEY_base_id(pk) == EVP_PKEY_EC && EVP_PKEY_bits(pk) == 256) {
        EVP_MD_CTX *md = EVP_MD_CTX_new();
        ok = md && EVP_DigestVerifyInit(md, NULL, EVP_sha256(), NULL, pk) == 1 &&
             EVP_DigestVerifyUpdate(md, ts, strlen(ts)) == 1 && EVP_DigestVerifyUpdate(md, body, len) == 1 &&
             EVP_DigestVerifyFinal(md, sig, siglen) == 1;
        EVP_MD_CTX_free(md);
    }
    EVP_PKEY_free(pk);
    ERR_clear_error(); /* a failed verification leaves entries behind */
    return ok;
}

/* Seconds since the epoch from 1..12 decimal digits, or -1. */
static int64_t parse_unix(const char *s)
{
    int64_t v = 0;
    size_t n = 0;
    for (; *s; s++, n++) {
        if (!isdigit((unsigned char)*s) || n == 12) return -1;
        v = v * 10 + (*s - '0');
    }
    return n ? v : -1;
}

struct sg_ctx {
    struct http_request *req;
    struct api_state *st;
    struct feedback_sendgrid fs;
    size_t pending;
    size_t changed, refused;
    bool failed;
    enum store_error error; /* when failed */
};

static void sg_finish(struct sg_ctx *c)
{
    if (c->failed) {
        log_warn("webhooks", "sendgrid: redis failed (%s); events=%zu suppressed=%zu (SendGrid retries)",
                 store_error_name(c->error), c->fs.nevents, c->changed);
        count(c->st, "sendgrid:suppressed", (long long)c->changed); /* what did change, once */
        api_respond_store_error(c->req, c->error);
    } else {
        count(c->st, "sendgrid:suppressed", (long long)c->changed);
        log_info("webhooks", "sendgrid: events=%zu suppressed=%zu already=%zu ignored=%zu refused=%zu",
                 c->fs.nevents, c->changed, c->fs.nsuppress - c->changed - c->refused, c->fs.nignored,
                 c->refused);
        http_respond_json(c->req, 200,
                          json_pack("{s:I, s:I, s:I}", "events", (json_int_t)c->fs.nevents, "suppressed",
                                    (json_int_t)c->changed, "ignored", (json_int_t)c->fs.nignored));
    }
    feedback_sendgrid_free(&c->fs);
    free(c);
}

static void sg_suppressed(int status, enum store_error store, json_t *doc, const char *err, void *arg)
{
    (void)err;
    struct sg_ctx *c = arg;
    if (status == 0) {
        if (json_is_true(json_object_get(doc, "changed"))) c->changed++;
    } else if (status == -HERALD_EINVAL) {
        c->refused++; /* not an address the store accepts: nothing to suppress */
    } else if (!c->failed) {
        c->failed = true;
        c->error = status == -HERALD_EREDIS ? store : STORE_E_ERROR;
    }
    json_decref(doc);
    if (--c->pending == 0) sg_finish(c);
}

/* At headers-complete, before a byte of the body (up to 1 MiB) is read:
 * 403 when no key is configured, 401 without the signature headers. */
static int sendgrid_precheck(const struct http_request *req, void *arg, const char **message)
{
    struct api_state *st = arg;
    const char *keys[1];
    if (provider_settings(st->cfg, "email_sendgrid", "webhook_public_key", keys, 1) == 0) {
        refused(&sg_refused, "sendgrid", "no email_sendgrid provider has a webhook_public_key");
        *message = "no webhook_public_key is configured: events are refused";
        return 403;
    }
    if (!http_request_header(req, "X-Twilio-Email-Event-Webhook-Signature") ||
        !http_request_header(req, "X-Twilio-Email-Event-Webhook-Timestamp")) {
        refused(&sg_refused, "sendgrid", "signature or timestamp header missing");
        *message = "signature required";
        return 401;
    }
    return 0;
}

static void sendgrid_post(struct http_request *req, void *arg)
{
    struct api_state *st = arg;
    const char *msg;
    int status = sendgrid_precheck(req, st, &msg); /* passed already; kept for a direct call */
    if (status) {
        http_respond_error(req, status, msg);
        return;
    }
    const char *keys[16];
    size_t nkeys = provider_settings(st->cfg, "email_sendgrid", "webhook_public_key", keys, 16);
    const char *sig_b64 = http_request_header(req, "X-Twilio-Email-Event-Webhook-Signature");
    const char *ts = http_request_header(req, "X-Twilio-Email-Event-Webhook-Timestamp");
    int64_t t = parse_unix(ts), now = (int64_t)time(NULL);
    if (t < 0 || t < now - WEBHOOKS_SG_MAX_AGE_S || t > now + WEBHOOKS_SG_MAX_AHEAD_S) {
        refused(&sg_refused, "sendgrid", "timestamp not a time or outside the accepted window");
        http_respond_error(req, 403, "timestamp outside the accepted window");
        return;
    }
    unsigned char *sig = NULL;
    size_t siglen = 0;
    size_t blen = 0;
    const char *body = http_request_body(req, &blen);
    bool ok = false;
    if (strlen(sig_b64) <= SIG_B64_MAX && b64_decode(sig_b64, &sig, &siglen) == 0)
        for (size_t i = 0; i < nkeys && !ok; i++) ok = sg_verify(keys[i], ts, body, blen, sig, siglen);
    free(sig);
    if (!ok) {
        refused(&sg_refused, "sendgrid", "signature does not verify");
        http_respond_error(req, 403, "signature does not verify");
        return;
    }
    if (!st->people) {
        http_respond_error(req, 503, "not ready");
        return;
    }
    struct sg_ctx *c = xcalloc(1, sizeof(*c));
    c->req = req;
    c->st = st;
    char err[160];
    if (feedback_sendgrid_parse(body, blen, &c->fs, err, sizeof(err)) < 0) {
        free(c);
        http_respond_error(req, 400, err);
        return;
    }
    /* One reference for this loop, so that answers arriving meanwhile cannot finish early. */
    c->pending = 1;
    for (size_t i = 0; i < c->fs.nsuppress; i++) {
        c->pending++;
        if (people_suppress(st->people, HERALD_CH_EMAIL, c->fs.suppress[i], true, sg_suppressed, c) < 0) {
            c->pending--;
            if (!c->failed) c->error = STORE_E_CONNECTION;
            c->failed = true;
            break;
        }
    }
    if (--c->pending == 0) sg_finish(c);
}

/* ---- Twilio ---------------------------------------------------------------- */

static bool tw_verify(const char *token, const char *text, size_t len, const unsigned char *sig, size_t siglen)
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    if (!HMAC(EVP_sha1(), token, (int)strlen(token), (const unsigned char *)text, len, md, &mdlen)) return false;
    return siglen == mdlen && CRYPTO_memcmp(md, sig, mdlen) == 0;
}

struct tw_ctx {
    struct http_request *req;
    struct api_state *st;
    enum feedback_keyword kw;
    char sid[HERALD_ID_MAX + 1];
    char *id;        /* the person's id once found */
    char *dedupe;    /* <prefix>:webhook:twilio:<sid> */
    char *counts;    /* <prefix>:webhook:counts */
    struct feedback_form form; /* kept until the end: people.h may read From later */
};

static void tw_free(struct tw_ctx *c)
{
    free(c->id);
    free(c->dedupe);
    free(c->counts);
    feedback_form_free(&c->form);
    free(c);
}

static void twiml(struct http_request *req, enum feedback_keyword kw)
{
    const char *x = kw == FEEDBACK_KW_HELP ? TWIML_HELP : TWIML_EMPTY;
    http_respond(req, 200, "text/xml; charset=utf-8", x, strlen(x));
}

/* Nothing was applied (and the MessageSid is not marked): Twilio sends the
 * message again, and then it is. */
static void tw_fail(struct tw_ctx *c, enum store_error e)
{
    log_warn("webhooks", "twilio: %s sid=%s not applied: redis failed (%s); twilio retries",
             feedback_keyword_name(c->kw), c->sid, store_error_name(e));
    api_respond_store_error(c->req, e);
    tw_free(c);
}

static void tw_consented(int status, enum store_error store, json_t *doc, const char *err, void *arg)
{
    (void)err;
    struct tw_ctx *c = arg;
    bool applied = doc != NULL;
    json_decref(doc);
    if (status == 0 && applied) { /* counted by the same script */
        log_info("webhooks", "twilio: %s recipient=%s sid=%s: sms consent %s", feedback_keyword_name(c->kw), c->id,
                 c->sid, c->kw == FEEDBACK_KW_STOP ? "revoked" : "granted");
    } else if (status == 0) {
        log_debug("webhooks", "twilio: sid=%s seen before: nothing changes", c->sid);
    } else if (status == -HERALD_ENOENT) {
        log_info("webhooks", "twilio: %s sid=%s: the person was erased meanwhile", feedback_keyword_name(c->kw),
                 c->sid);
    } else {
        tw_fail(c, status == -HERALD_EREDIS ? store : STORE_E_ERROR);
        return;
    }
    twiml(c->req, c->kw);
    tw_free(c);
}

/* HELP changes nothing but a counter: the MessageSid marks it counted. */
static void tw_help_deduped(redisReply *reply, enum store_error e, const char *text, void *arg)
{
    (void)text;
    struct tw_ctx *c = arg;
    if (!reply) {
        tw_fail(c, e);
        return;
    }
    if (reply->type == REDIS_REPLY_NIL) {
        log_debug("webhooks", "twilio: sid=%s seen before: nothing changes", c->sid);
    } else {
        count(c->st, "twilio:help", 1);
        log_info("webhooks", "twilio: help recipient=%s sid=%s", c->id, c->sid);
    }
    twiml(c->req, c->kw);
    tw_free(c);
}

static void tw_found(int status, enum store_error store, json_t *doc, const char *err, void *arg)
{
    (void)err;
    struct tw_ctx *c = arg;
    const char *id = status == 0 ? json_string_value(json_object_get(doc, "id")) : NULL;
    if (id) c->id = xstrdup(id);
    json_decref(doc);
    if (status == -HERALD_ENOENT || status == -HERALD_EINVAL || (status == 0 && !c->id)) {
        log_info("webhooks", "twilio: %s sid=%s from a number herald does not know: nothing stored",
                 feedback_keyword_name(c->kw), c->sid);
        twiml(c->req, c->kw);
        tw_free(c);
        return;
    }
    if (status < 0) {
        tw_fail(c, status == -HERALD_EREDIS ? store : STORE_E_ERROR);
        return;
    }
    struct strbuf k;
    strbuf_init(&k);
    strbuf_addf(&k, "%s:webhook:twilio:%s", c->st->cfg->prefix, c->sid);
    c->dedupe = strbuf_detach(&k, NULL);
    strbuf_addf(&k, "%s:webhook:counts", c->st->cfg->prefix);
    c->counts = strbuf_detach(&k, NULL);
    int rc;
    if (c->kw == FEEDBACK_KW_HELP) {
        char ttl[HERALD_LL_CHARS];
        herald_lltoa(ttl, WEBHOOKS_DEDUPE_TTL_S);
        rc = STORE_SEND(c->st->cmds, STORE_CMD_ONCE, tw_help_deduped, c, "SET", c->dedupe, "1", "NX", "EX", ttl);
    } else {
        char field[32];
        snprintf(field, sizeof(field), "twilio:%s", feedback_keyword_name(c->kw));
        struct people_event ev = {.key = c->dedupe, .ttl_s = WEBHOOKS_DEDUPE_TTL_S, .counts = c->counts,
                                  .field = field};
        rc = people_consent_append_event(c->st->people, c->id, HERALD_CH_SMS, c->kw == FEEDBACK_KW_START,
                                         "sms_keyword", NULL, (int64_t)time(NULL), &ev, tw_consented, c);
    }
    if (rc < 0) tw_fail(c, STORE_E_CONNECTION);
}

/* At headers-complete, before the body is read: 403 when Twilio's
 * signature cannot be checked (no auth_token, no public_url), 401 without
 * X-Twilio-Signature. */
static int twilio_precheck(const struct http_request *req, void *arg, const char **message)
{
    struct api_state *st = arg;
    const char *tokens[1];
    if (provider_settings(st->cfg, "sms_twilio", "auth_token", tokens, 1) == 0 || !st->cfg->public_url ||
        !st->cfg->public_url[0]) {
        refused(&tw_refused, "twilio", "needs an sms_twilio provider's auth_token and [public] public_url");
        *message = "no auth_token or public_url is configured: requests are refused";
        return 403;
    }
    if (!http_request_header(req, "X-Twilio-Signature")) {
        refused(&tw_refused, "twilio", "X-Twilio-Signature missing");
        *message = "signature required";
        return 401;
    }
    return 0;
}

static void twilio_post(struct http_request *req, void *arg)
{
    struct api_state *st = arg;
    const char *msg;
    int status = twilio_precheck(req, st, &msg); /* passed already; kept for a direct call */
    if (status) {
        http_respond_error(req, status, msg);
        return;
    }
    const char *tokens[16];
    size_t ntokens = provider_settings(st->cfg, "sms_twilio", "auth_token", tokens, 16);
    const char *sig_b64 = http_request_header(req, "X-Twilio-Signature");
    size_t blen = 0;
    const char *body = http_request_body(req, &blen);
    struct feedback_form form;
    char err[160];
    if (feedback_form_parse(body, blen, &form, err, sizeof(err)) < 0) {
        http_respond_error(req, 400, err);
        return;
    }
    struct strbuf text;
    strbuf_init(&text);
    feedback_twilio_signed_text(&text, st->cfg->public_url, http_request_path(req), http_request_query(req), &form);
    unsigned char *sig = NULL;
    size_t siglen = 0;
    bool ok = false;
    if (strlen(sig_b64) <= SIG_B64_MAX && b64_decode(sig_b64, &sig, &siglen) == 0)
        for (size_t i = 0; i < ntokens && !ok; i++) ok = tw_verify(tokens[i], text.buf, text.len, sig, siglen);
    free(sig);
    strbuf_free(&text);
    if (!ok) {
        feedback_form_free(&form);
        refused(&tw_refused, "twilio", "X-Twilio-Signature does not verify");
        http_respond_error(req, 403, "signature does not verify");
        return;
    }

    enum feedback_keyword kw =
        feedback_twilio_keyword(feedback_form_get(&form, "Body"), feedback_form_get(&form, "OptOutType"));
    const char *from = feedback_form_get(&form, "From");
    const char *sid = feedback_form_get(&form, "MessageSid");
    if (!sid) sid = feedback_form_get(&form, "SmsSid");
    if (kw == FEEDBACK_KW_NONE || !from || !from[0]) {
        feedback_form_free(&form);
        twiml(req, kw);
        return;
    }
    if (!feedback_twilio_sid_valid(sid)) {
        feedback_form_free(&form);
        http_respond_error(req, 400, "MessageSid: missing, or not a Twilio sid (two letters and 32 hex digits)");
        return;
    }
    if (!st->people) {
        feedback_form_free(&form);
        http_respond_error(req, 503, "not ready");
        return;
    }
    struct tw_ctx *c = xcalloc(1, sizeof(*c));
    c->req = req;
    c->st = st;
    c->kw = kw;
    snprintf(c->sid, sizeof(c->sid), "%s", sid);
    c->form = form;
    if (people_find_by_address(st->people, HERALD_CH_SMS, from, tw_found, c) < 0) tw_fail(c, STORE_E_CONNECTION);
}

int webhooks_register(struct http_server *srv, struct api_state *st)
{
    int rc = http_route(srv, "POST", "/v1/webhooks/sendgrid", sendgrid_post, st);
    /* SendGrid batches events into posts of up to 768 KB: take them whole. */
    if (rc == 0) rc = http_route_body_limit(srv, "POST", "/v1/webhooks/sendgrid", WEBHOOKS_SENDGRID_MAX_BODY);
    if (rc == 0) rc = http_route_precheck(srv, "POST", "/v1/webhooks/sendgrid", sendgrid_precheck);
    if (rc == 0) rc = http_route(srv, "POST", "/v1/webhooks/twilio", twilio_post, st);
    if (rc == 0) rc = http_route_precheck(srv, "POST", "/v1/webhooks/twilio", twilio_precheck);
    return rc;
}
