/*
 * plugin_feedback.c - verifying and reading provider callbacks, the parts
 * the plugins share (see plugin_feedback.h).
 *
 * Owns nothing beyond what its structs point to. Never does I/O, never
 * reads the clock, never logs; its errors name fields, never their values.
 * Plugins never abort: running out of memory is an error like another.
 */
#include "plugin_feedback.h"

#include <ctype.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/x509.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* ---- form ---------------------------------------------------------------- */

static int hexval(char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* Decodes s[0..n) into a new string; NULL on bad escapes, a NUL byte or
 * no memory. */
static char *form_decode(const char *s, size_t n)
{
    char *out = malloc(n + 1);
    if (!out) return NULL;
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (c == '+') {
            c = ' ';
        } else if (c == '%') {
            int hi = i + 2 < n ? hexval(s[i + 1]) : -1;
            int lo = i + 2 < n ? hexval(s[i + 2]) : -1;
            if (hi < 0 || lo < 0) {
                free(out);
                return NULL;
            }
            c = (char)(hi * 16 + lo);
            i += 2;
        }
        if (c == '\0') {
            free(out);
            return NULL;
        }
        out[o++] = c;
    }
    out[o] = '\0';
    return out;
}

void pfb_form_free(struct pfb_form *f)
{
    if (!f) return;
    for (size_t i = 0; i < f->n; i++) {
        free(f->params[i].name);
        free(f->params[i].value);
    }
    free(f->params);
    f->params = NULL;
    f->n = 0;
}

static int form_fail(struct pfb_form *f, char *err, size_t errlen, const char *why)
{
    pfb_form_free(f);
    if (errlen) snprintf(err, errlen, "%s", why);
    return -1;
}

int pfb_form_parse(const char *body, size_t len, struct pfb_form *f, char *err, size_t errlen)
{
    f->params = NULL;
    f->n = 0;
    size_t cap = 0;
    size_t i = 0;
    while (i < len) {
        const char *seg = body + i;
        const char *amp = memchr(seg, '&', len - i);
        size_t seglen = amp ? (size_t)(amp - seg) : len - i;
        i += seglen + 1;
        if (seglen == 0) continue;
        if (f->n == PFB_FORM_MAX_PARAMS) return form_fail(f, err, errlen, "form: more than 256 fields");
        const char *eq = memchr(seg, '=', seglen);
        size_t nlen = eq ? (size_t)(eq - seg) : seglen;
        char *name = form_decode(seg, nlen);
        char *value = eq ? form_decode(eq + 1, seglen - nlen - 1) : strdup("");
        if (f->n == cap && name && value) {
            size_t ncap = cap ? cap * 2 : 16;
            struct pfb_param *p = realloc(f->params, ncap * sizeof(*p));
            if (p) f->params = p, cap = ncap;
        }
        if (!name || !value || f->n == cap) {
            free(name);
            free(value);
            return form_fail(f, err, errlen, "form: bad percent-encoding or a NUL byte in a field");
        }
        f->params[f->n].name = name;
        f->params[f->n].value = value;
        f->n++;
    }
    return 0;
}

const char *pfb_form_get(const struct pfb_form *f, const char *name)
{
    for (size_t i = 0; i < f->n; i++)
        if (strcmp(f->params[i].name, name) == 0) return f->params[i].value;
    return NULL;
}

static int param_cmp(const void *a, const void *b)
{
    const struct pfb_param *x = *(const struct pfb_param *const *)a;
    const struct pfb_param *y = *(const struct pfb_param *const *)b;
    int c = strcmp(x->name, y->name);
    return c ? c : strcmp(x->value, y->value);
}

char *pfb_twilio_signed_text(const char *url, const struct pfb_form *f, size_t *len)
{
    size_t n = strlen(url);
    for (size_t i = 0; i < f->n; i++) n += strlen(f->params[i].name) + strlen(f->params[i].value);
    char *out = malloc(n + 1);
    /* Sort pointers, not the form: the caller's order stays as posted. */
    const struct pfb_param **sorted = calloc(f->n ? f->n : 1, sizeof(*sorted));
    if (!out || !sorted) {
        free(out);
        free(sorted);
        return NULL;
    }
    for (size_t i = 0; i < f->n; i++) sorted[i] = &f->params[i];
    qsort(sorted, f->n, sizeof(*sorted), param_cmp);
    size_t o = strlen(url);
    memcpy(out, url, o);
    for (size_t i = 0; i < f->n; i++) {
        size_t a = strlen(sorted[i]->name), b = strlen(sorted[i]->value);
        memcpy(out + o, sorted[i]->name, a);
        memcpy(out + o + a, sorted[i]->value, b);
        o += a + b;
    }
    out[o] = '\0';
    free(sorted);
    *len = o;
    return out;
}

/* ---- signatures ---------------------------------------------------------- */

int pfb_b64_decode(const char *in, unsigned char **out, size_t *outlen)
{
    size_t n = strlen(in);
    while (n && isspace((unsigned char)in[n - 1])) n--;
    while (n && isspace((unsigned char)*in)) in++, n--;
    if (n == 0 || n % 4 || n > 8192) return -1;
    unsigned char *buf = malloc(n / 4 * 3 + 1);
    if (!buf) return -1;
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

bool pfb_twilio_verify(const char *token, const char *text, size_t len, const char *sig_b64)
{
    unsigned char *sig = NULL, md[EVP_MAX_MD_SIZE];
    size_t siglen = 0;
    unsigned int mdlen = 0;
    if (strlen(sig_b64) > 512 || pfb_b64_decode(sig_b64, &sig, &siglen) < 0) return false;
    bool ok = HMAC(EVP_sha1(), token, (int)strlen(token), (const unsigned char *)text, len, md, &mdlen) &&
              siglen == mdlen && CRYPTO_memcmp(md, sig, mdlen) == 0;
    free(sig);
    return ok;
}

bool pfb_ecdsa_verify(const char *pubkey_b64, const char *ts, const char *body, size_t len, const char *sig_b64)
{
    unsigned char *der = NULL, *sig = NULL;
    size_t derlen = 0, siglen = 0;
    /* A DER ECDSA P-256 signature is at most 72 bytes. */
    if (strlen(sig_b64) > 512 || pfb_b64_decode(sig_b64, &sig, &siglen) < 0) return false;
    if (pfb_b64_decode(pubkey_b64, &der, &derlen) < 0) {
        free(sig);
        return false;
    }
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
    free(sig);
    ERR_clear_error(); /* a failed verification leaves entries behind */
    return ok;
}

/* ---- keywords and ids ---------------------------------------------------- */

static const struct {
    const char *word;
    enum pfb_keyword kw;
} keywords[] = {
    {"STOP", PFB_KW_STOP},   {"STOPALL", PFB_KW_STOP}, {"UNSUBSCRIBE", PFB_KW_STOP},
    {"CANCEL", PFB_KW_STOP}, {"END", PFB_KW_STOP},     {"QUIT", PFB_KW_STOP},
    {"START", PFB_KW_START}, {"UNSTOP", PFB_KW_START}, {"HELP", PFB_KW_HELP},
};

enum pfb_keyword pfb_sms_keyword(const char *body, const char *opt_out_type)
{
    if (body) {
        while (isspace((unsigned char)*body)) body++;
        size_t n = strlen(body);
        while (n && isspace((unsigned char)body[n - 1])) n--;
        for (size_t i = 0; i < sizeof(keywords) / sizeof(keywords[0]); i++)
            if (strlen(keywords[i].word) == n && strncasecmp(body, keywords[i].word, n) == 0) return keywords[i].kw;
    }
    if (!opt_out_type) return PFB_KW_NONE;
    if (strcmp(opt_out_type, "STOP") == 0) return PFB_KW_STOP;
    if (strcmp(opt_out_type, "START") == 0) return PFB_KW_START;
    if (strcmp(opt_out_type, "HELP") == 0) return PFB_KW_HELP;
    return PFB_KW_NONE;
}

bool pfb_twilio_sid_valid(const char *s)
{
    if (!s || strlen(s) != 34 || !isupper((unsigned char)s[0]) || !isupper((unsigned char)s[1])) return false;
    for (size_t i = 2; i < 34; i++)
        if (!isdigit((unsigned char)s[i]) && !(s[i] >= 'a' && s[i] <= 'f')) return false;
    return true;
}

bool pfb_id_valid(const char *s, size_t max)
{
    if (!s || !*s) return false;
    size_t n = 0;
    for (; *s; s++, n++)
        if (n == max || !(isalnum((unsigned char)*s) || strchr("._:=-_", *s))) return false;
    return true;
}

long long pfb_parse_unix(const char *s)
{
    long long v = 0;
    size_t n = 0;
    for (; *s; s++, n++) {
        if (!isdigit((unsigned char)*s) || n == 12) return -1;
        v = v * 10 + (*s - '0');
    }
    return n ? v : -1;
}
