/*
 * channel.c - the channel descriptors and the address functions they use.
 *
 * Owns: everything per channel that is not data (HERALD_CHANNEL_MAP says
 * which channels exist): address syntax, the normalised form suppression
 * and tombstones hash, the consent field name, the words of the pages.
 * Never: I/O, logging, or an address in any text it returns.
 * Invariant: descriptors[ch].id == ch for every channel, in the order of
 * enum herald_channel, so callers index arrays by the same number.
 */
#include "channel.h"

#include <ctype.h>
#include <string.h>

static const struct channel_desc descriptors[] = {
#define X(id_, name_, field_, stem_, rule_, addr_, rich_)                                                \
    {.id = HERALD_CH_##id_, .name = name_, .address_field = field_, .consent_field = "~" name_,  \
     .address_valid = channel_##stem_##_valid, .address_normalise = channel_##stem_##_normalise,        \
     .address_invalid = field_ ": not " rule_, .address_label = addr_,                                   \
     .rich = rich_},
    HERALD_CHANNEL_MAP(X)
#undef X
};

_Static_assert(sizeof(descriptors) / sizeof(descriptors[0]) == HERALD_CH_COUNT, "one descriptor per channel");

const struct channel_desc *channel_get(int ch)
{
    return ch >= 0 && ch < HERALD_CH_COUNT ? &descriptors[ch] : NULL;
}

const struct channel_desc *channel_by_name(const char *name)
{
    return name ? channel_get(herald_channel_from_name(name)) : NULL;
}

int channel_from_address_field(const char *key)
{
    for (int ch = 0; key && ch < HERALD_CH_COUNT; ch++)
        if (strcmp(key, descriptors[ch].address_field) == 0) return ch;
    return -1;
}

bool channel_address_valid(int ch, const char *address)
{
    const struct channel_desc *d = channel_get(ch);
    return d && address && d->address_valid(address);
}

/* Surrounding space trimmed, each byte through map (NULL: as is). */
static size_t trimmed(char *out, size_t outlen, const char *s, int (*map)(int))
{
    size_t n = 0;
    if (outlen == 0) return 0;
    while (isspace((unsigned char)*s)) s++;
    for (; *s && n + 1 < outlen; s++) out[n++] = map ? (char)map((unsigned char)*s) : *s;
    while (n && isspace((unsigned char)out[n - 1])) n--;
    out[n] = '\0';
    return n;
}

size_t channel_address_normalise(char *out, size_t outlen, int ch, const char *address)
{
    const struct channel_desc *d = channel_get(ch);
    return d ? d->address_normalise(out, outlen, address) : trimmed(out, outlen, address, NULL);
}

/* Emails: the domain is case-insensitive and providers treat local parts
 * so too, so one person's "Ann@X" and "ann@x" are one suppression. */
size_t channel_email_normalise(char *out, size_t outlen, const char *s) { return trimmed(out, outlen, s, tolower); }

/* E.164 is already canonical (the syntax check refuses spaces and dashes). */
size_t channel_phone_normalise(char *out, size_t outlen, const char *s) { return trimmed(out, outlen, s, NULL); }

/* RFC 5322 specials that only a quoted local part may hold; we take no
 * quoted forms, and refusing them keeps an address from smuggling a second
 * recipient or a header into a provider request. */
static bool email_char_ok(unsigned char c)
{
    if (c <= 0x20 || c == 0x7f) return false;
    switch (c) {
    case '"': case '(': case ')': case ',': case ':': case ';':
    case '<': case '>': case '[': case '\\': case ']':
        return false;
    default:
        return true;
    }
}

bool channel_email_valid(const char *s)
{
    if (!s) return false;
    size_t n = 0, at = 0;
    bool seen_at = false;
    for (; s[n]; n++) {
        if (n >= 254 || !email_char_ok((unsigned char)s[n])) return false;
        if (s[n] == '@') {
            if (seen_at) return false;
            seen_at = true;
            at = n;
        }
    }
    if (!seen_at || at == 0 || at > 64) return false;
    const char *d = s + at + 1;
    size_t dlen = n - at - 1;
    return dlen >= 3 && d[0] != '.' && d[dlen - 1] != '.' && memchr(d, '.', dlen) && !strstr(d, "..");
}

bool channel_phone_valid(const char *s)
{
    if (!s || s[0] != '+' || s[1] < '1' || s[1] > '9') return false;
    size_t n = 1;
    while (s[n] >= '0' && s[n] <= '9') n++;
    return s[n] == '\0' && n - 1 >= 8 && n - 1 <= 15;
}
