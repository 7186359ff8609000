/*
 * addrindex.c - see addrindex.h. Pure but for libcrypto (digest.h): no
 * Redis, no logging, no clock.
 */
#include "addrindex.h"

#include <string.h>

#include "channel.h"
#include "digest.h"

/* "<channel>:<sha256 hex of the normalised address>" into out (a stack
 * buffer: this runs per address of every batch); its length. */
static size_t plain_into(char out[ADDRINDEX_PLAIN_MAX], int channel, const char *address)
{
    char norm[512];
    size_t n = channel_address_normalise(norm, sizeof(norm), channel, address);
    unsigned char md[DIGEST_SHA256_LEN];
    digest_sha256(norm, n, md);
    const char *name = herald_channel_name(channel);
    size_t nl = strlen(name);
    if (nl > ADDRINDEX_PLAIN_MAX - 2 * DIGEST_SHA256_LEN - 2) nl = ADDRINDEX_PLAIN_MAX - 2 * DIGEST_SHA256_LEN - 2;
    memcpy(out, name, nl);
    out[nl] = ':';
    digest_hex(out + nl + 1, md, sizeof(md));
    return nl + 1 + 2 * DIGEST_SHA256_LEN;
}

void addrindex_plain(struct strbuf *sb, int channel, const char *address)
{
    char plain[ADDRINDEX_PLAIN_MAX];
    size_t n = plain_into(plain, channel, address);
    strbuf_reset(sb);
    strbuf_add(sb, plain, n);
}

void addrindex_rekey(const unsigned char key[ADDRINDEX_KEY_LEN], const char *v2, size_t len,
                     unsigned char out[ADDRINDEX_LEN])
{
    unsigned char md[DIGEST_SHA256_LEN];
    digest_hmac_sha256_raw(key, ADDRINDEX_KEY_LEN, v2, len, md);
    memcpy(out, md, ADDRINDEX_LEN);
}

void addrindex_member(const unsigned char key[ADDRINDEX_KEY_LEN], int channel, const char *address,
                      unsigned char out[ADDRINDEX_LEN])
{
    char plain[ADDRINDEX_PLAIN_MAX];
    addrindex_rekey(key, plain, plain_into(plain, channel, address), out);
}

unsigned addrindex_shard(const unsigned char m[ADDRINDEX_LEN])
{
    return (unsigned)(m[0] >> 4);
}

void addrindex_key(struct strbuf *sb, const char *prefix, enum addrindex_kind kind, unsigned shard)
{
    static const char *const names[] = {
        [ADDRINDEX_ADDR] = ":addr:{i", [ADDRINDEX_SUPPRESS] = ":suppress:{i",
        [ADDRINDEX_SUPPRESS_INFO] = ":suppress:info:{i", [ADDRINDEX_TOMBSTONES] = ":tombstones:{i"};
    static const char hex[] = "0123456789abcdef";
    char tag[3] = {hex[shard % ADDRINDEX_SHARDS], '}', '\0'};
    strbuf_reset(sb);
    strbuf_adds(sb, prefix);
    strbuf_adds(sb, names[kind]);
    strbuf_adds(sb, tag);
}

unsigned addrindex_bucket(const unsigned char m[ADDRINDEX_LEN])
{
    return (unsigned)(m[0] << 4 | m[1] >> 4);
}

void addrindex_bucket_key(struct strbuf *sb, const char *prefix, unsigned bucket)
{
    bucket %= ADDRINDEX_BUCKETS;
    addrindex_key(sb, prefix, ADDRINDEX_ADDR, bucket >> 8);
    strbuf_addf(sb, ":%03x", bucket);
}

void addrindex_key_of(struct strbuf *sb, const char *prefix, enum addrindex_kind kind,
                      const unsigned char m[ADDRINDEX_LEN])
{
    if (kind == ADDRINDEX_ADDR) addrindex_bucket_key(sb, prefix, addrindex_bucket(m));
    else addrindex_key(sb, prefix, kind, addrindex_shard(m));
}

void addrindex_hex(char out[ADDRINDEX_HEX], const unsigned char m[ADDRINDEX_LEN])
{
    digest_hex(out, m, ADDRINDEX_LEN);
}

void addrindex_key_derive(const char *secret, unsigned char key[ADDRINDEX_KEY_LEN])
{
    static const char label[] = "herald index key";
    digest_hmac_sha256(secret, label, sizeof(label) - 1, key);
}

static int hexval(unsigned char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

int addrindex_key_parse(const unsigned char *buf, size_t n, unsigned char key[ADDRINDEX_KEY_LEN], char *err,
                        size_t errlen)
{
    if (n == ADDRINDEX_KEY_LEN) {
        memcpy(key, buf, ADDRINDEX_KEY_LEN);
        return 0;
    }
    size_t h = n;
    if (h && buf[h - 1] == '\n') h--;
    if (h == 2 * ADDRINDEX_KEY_LEN) {
        bool ok = true;
        for (size_t i = 0; ok && i < ADDRINDEX_KEY_LEN; i++) {
            int hi = hexval(buf[2 * i]), lo = hexval(buf[2 * i + 1]);
            ok = hi >= 0 && lo >= 0;
            if (ok) key[i] = (unsigned char)(hi << 4 | lo);
        }
        if (ok) return 0;
    }
    herald_seterr(err, errlen, "holds %zu bytes: it must hold the key, 32 random bytes (head -c 32 /dev/urandom) "
                  "or 64 hex digits (openssl rand -hex 32)", n);
    return -1;
}

void addrindex_key_id(const unsigned char key[ADDRINDEX_KEY_LEN], char out[17])
{
    static const char label[] = "herald index key id";
    unsigned char md[DIGEST_SHA256_LEN];
    digest_hmac_sha256_raw(key, ADDRINDEX_KEY_LEN, label, sizeof(label) - 1, md);
    digest_hex(out, md, 8);
}
