/*
 * channel.h - what herald knows about each channel, in one descriptor per
 * channel: its name, the profile key of its address, address syntax and
 * normalisation, the consent field of the person hash, the pages' words.
 *
 * Pure: no I/O headers. The descriptors are generated from
 * HERALD_CHANNEL_MAP (herald.h), so adding a channel is one line there
 * plus its two address functions here; no other module names a channel
 * (tests/unit/test_channel_spelling.cmake fails when one does). The
 * descriptors are static and const: callers never free or change them.
 */
#ifndef HERALD_CHANNEL_DESC_H
#define HERALD_CHANNEL_DESC_H

#include "herald.h"

/* Longest consent field ("~" + a channel name), for fixed buffers. */
#define CHANNEL_FIELD_MAX 32

struct channel_desc {
    int id;                    /* enum herald_channel: the index everywhere */
    const char *name;          /* "email": jobs, profiles' "channels", audit, metrics, plugins */
    const char *address_field; /* profile key holding the address: "email", "phone" */
    const char *consent_field; /* field of herald:r:{ID} with the latest consent record: "~<name>" */
    /* Syntax check of an address (false for NULL): import, the API and the policy. */
    bool (*address_valid)(const char *address);
    /* The form that suppression, addr and tombstone members hash: at most
     * outlen - 1 bytes into out (outlen > 0), NUL-terminated; returns its
     * length. Changing it orphans every stored hash of the channel. */
    size_t (*address_normalise)(char *out, size_t outlen, const char *address);
    const char *address_invalid; /* the error for an invalid address, "<key>: not ..." */
    const char *address_label;   /* heraldctl explain: "email address", "phone number" (the
                                  * pages' words are in the catalogues, config/locales) */
    bool rich;                   /* content takes subject, text and html (else text only) */
};

/* The descriptor of channel ch, or NULL when ch is no channel. */
const struct channel_desc *channel_get(int ch);
/* The same by name ("email"), or NULL (name may be NULL). */
const struct channel_desc *channel_by_name(const char *name);
/* The channel whose address lives under profile key `key`, or -1. */
int channel_from_address_field(const char *key);

/* ch's syntax check of address; false for no channel or no address. */
bool channel_address_valid(int ch, const char *address);
/* ch's normalisation of address (surrounding space trimmed only when ch
 * is no channel). Returns the length written to out. */
size_t channel_address_normalise(char *out, size_t outlen, int ch, const char *address);

/* The address functions the descriptors point to. */
bool channel_email_valid(const char *s);
bool channel_phone_valid(const char *s); /* E.164: + then 8..15 digits, no leading 0 */
size_t channel_email_normalise(char *out, size_t outlen, const char *s); /* trimmed, lower-cased */
size_t channel_phone_normalise(char *out, size_t outlen, const char *s); /* trimmed */

#endif
