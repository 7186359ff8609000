/*
 * links.c - HMAC-SHA256 signed, expiring tokens for unsubscribe and
 * preference links. Verification compares in constant time and checks the
 * expiry only after the signature, so a forged token learns nothing.
 */
#include "links.h"

#include "digest.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char b64u[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

static void b64url_encode(struct strbuf *out, const unsigned char *in, size_t n)
{
    strbuf_grow_to(out, out->len + (n + 2) / 3 * 4);
    char *o = out->buf + out->len;
    size_t i = 0;
    /* Whole groups of three bytes without a test each (four encodings per
     * message), then the one or two bytes left, unpadded. */
    for (; i + 3 <= n; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 | in[i + 2];
        o[0] = b64u[v >> 18];
        o[1] = b64u[(v >> 12) & 63];
        o[2] = b64u[(v >> 6) & 63];
        o[3] = b64u[v & 63];
        o += 4;
    }
    if (i < n) {
        uint32_t v = (uint32_t)in[i] << 16;
        if (i + 1 < n) v |= (uint32_t)in[i + 1] << 8;
        *o++ = b64u[v >> 18];
        *o++ = b64u[(v >> 12) & 63];
        if (i + 1 < n) *o++ = b64u[(v >> 6) & 63];
    }
    out->len = (size_t)(o - out->buf);
    out->buf[out->len] = '\0';
}

static int b64url_decode(const char *in, size_t n, unsigned char *out, size_t outcap, size_t *outlen)
{
    uint32_t v = 0;
    int bits = 0;
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        const char *p = memchr(b64u, in[i], 64);
        if (!p || !in[i]) return -1;
        v = (v << 6) | (uint32_t)(p - b64u);
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            if (o >= outcap) return -1;
            out[o++] = (unsigned char)(v >> bits);
        }
    }
    *outlen = o;
    return 0;
}

static void mac(const char *secret, const char *data, size_t len, unsigned char *md, unsigned *mdlen)
{
    digest_hmac_sha256(secret, data, len, md); /* two per message: the cached key matters */
    *mdlen = DIGEST_SHA256_LEN;
}

static size_t put(char *dst, size_t at, const char *s)
{
    size_t n = strlen(s);
    memcpy(dst + at, s, n);
    return at + n;
}

void links_sign(struct strbuf *out, const char *secret, const struct link_claims *c)
{
    /* 1|kind|recipient|campaign|topic|channel|expires, on the stack: each
     * field is bounded by its array in struct link_claims, so it fits. */
    char pl[4 + sizeof(c->recipient) + sizeof(c->campaign) + sizeof(c->topic) + sizeof(c->channel) +
            HERALD_LL_CHARS];
    const char kind[] = {'1', '|', c->kind, '|', '\0'};
    size_t n = put(pl, 0, kind);
    const char *fields[] = {c->recipient, c->campaign, c->topic, c->channel};
    for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++) {
        n = put(pl, n, fields[i]);
        pl[n++] = '|';
    }
    n += herald_lltoa(pl + n, (long long)c->expires);
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned mdlen = 0;
    mac(secret, pl, n, md, &mdlen);
    /* One allocation for the whole link: base64 of the payload, a dot and
     * 43 characters of signature. */
    strbuf_grow_to(out, out->len + (n + 2) / 3 * 4 + 1 + (mdlen + 2) / 3 * 4);
    b64url_encode(out, (const unsigned char *)pl, n);
    strbuf_add(out, ".", 1);
    b64url_encode(out, md, mdlen);
}

static int copy_field(char *dst, size_t cap, const char *s, size_t n)
{
    if (n >= cap) return -1;
    memcpy(dst, s, n);
    dst[n] = '\0';
    return 0;
}

int links_verify(const char *token, const char *secret, int64_t now, struct link_claims *c,
                 char *err, size_t errlen)
{
    const char *dot = strchr(token, '.');
    unsigned char payload[512], sig[64];
    size_t plen, slen;
    if (!dot || b64url_decode(token, (size_t)(dot - token), payload, sizeof(payload) - 1, &plen) < 0 ||
        b64url_decode(dot + 1, strlen(dot + 1), sig, sizeof(sig), &slen) < 0) {
        herald_seterr(err, errlen, "malformed link token");
        return -HERALD_EINVAL;
    }
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned mdlen = 0;
    mac(secret, (const char *)payload, plen, md, &mdlen);
    if (slen != mdlen || CRYPTO_memcmp(md, sig, mdlen) != 0) {
        herald_seterr(err, errlen, "link signature does not match");
        return -HERALD_EINVAL;
    }
    payload[plen] = '\0';
    /* 1|kind|recipient|campaign|topic|channel|expires */
    const char *f[7];
    size_t fl[7];
    const char *p = (const char *)payload;
    for (int i = 0; i < 7; i++) {
        const char *bar = i < 6 ? strchr(p, '|') : p + strlen(p);
        if (!bar) goto bad;
        f[i] = p;
        fl[i] = (size_t)(bar - p);
        p = bar + 1;
    }
    if (fl[0] != 1 || f[0][0] != '1' || fl[1] != 1) goto bad;
    memset(c, 0, sizeof(*c));
    c->kind = f[1][0];
    char exp[24];
    if (copy_field(c->recipient, sizeof(c->recipient), f[2], fl[2]) ||
        copy_field(c->campaign, sizeof(c->campaign), f[3], fl[3]) ||
        copy_field(c->topic, sizeof(c->topic), f[4], fl[4]) ||
        copy_field(c->channel, sizeof(c->channel), f[5], fl[5]) || copy_field(exp, sizeof(exp), f[6], fl[6]))
        goto bad;
    char *end;
    c->expires = strtoll(exp, &end, 10);
    if (*end) goto bad;
    if (now >= c->expires) {
        herald_seterr(err, errlen, "link has expired");
        return -HERALD_EINVAL;
    }
    return 0;
bad:
    herald_seterr(err, errlen, "malformed link token");
    return -HERALD_EINVAL;
}

size_t links_build(struct strbuf *out, const char *public_url, const char *secret, int64_t ttl_s, int64_t now,
                   const char *recipient, const char *campaign, const char *topic, const char *channel)
{
    strbuf_reset(out);
    if (!public_url || !*public_url || !secret) return 0;
    struct link_claims c = {.expires = now + ttl_s};
    herald_copy(c.recipient, sizeof(c.recipient), recipient);
    herald_copy(c.campaign, sizeof(c.campaign), campaign);
    herald_copy(c.topic, sizeof(c.topic), topic);
    herald_copy(c.channel, sizeof(c.channel), channel);
    /* One allocation for both: each the URL, and a token no longer than
     * the base64 of all the claims plus a dot and the signature. */
    size_t ulen = strlen(public_url);
    strbuf_grow_to(out, 2 * (ulen + 3 + (sizeof(c) + HERALD_LL_CHARS + 2) / 3 * 4 + 1 + 44 + 1));
    size_t prefs_at = 0;
    static const char kinds[] = {'u', 'p'};
    for (size_t i = 0; i < sizeof(kinds); i++) {
        if (i) {
            strbuf_add(out, "", 1); /* the NUL between the two */
            prefs_at = out->len;
        }
        c.kind = kinds[i];
        strbuf_add(out, public_url, ulen);
        const char path[] = {'/', kinds[i], '/'};
        strbuf_add(out, path, sizeof(path));
        links_sign(out, secret, &c);
    }
    return prefs_at;
}

void links_form_mac(struct strbuf *out, const char *secret, const char *token, const char *action)
{
    struct strbuf data;
    strbuf_init(&data);
    strbuf_addf(&data, "form|%s|%s", action, token);
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned mdlen = 0;
    mac(secret, data.buf, data.len, md, &mdlen);
    strbuf_free(&data);
    b64url_encode(out, md, mdlen);
}

bool links_form_mac_ok(const char *mac_text, const char *secret, const char *token, const char *action)
{
    if (!mac_text) return false;
    struct strbuf want;
    strbuf_init(&want);
    links_form_mac(&want, secret, token, action);
    /* The length of a MAC is public (always 43); only the bytes are secret. */
    bool ok = strlen(mac_text) == want.len && CRYPTO_memcmp(mac_text, want.buf, want.len) == 0;
    strbuf_free(&want);
    return ok;
}
