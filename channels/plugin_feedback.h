/*
 * plugin_feedback.h - what the provider plugins share to verify and read
 * their providers' callbacks (ABI 2's feedback()): form decoding, the text
 * Twilio's X-Twilio-Signature is computed over, SMS keywords, provider
 * id checks, base64 and the two signature schemes (HMAC-SHA1 for Twilio,
 * ECDSA P-256/SHA-256 for SendGrid's Event Webhook).
 *
 * Linked into each plugin (herald_plugin_util). Pure apart from libcrypto:
 * no I/O, no clock, no logging. Error texts never quote an address or a
 * message body.
 */
#ifndef HERALD_PLUGIN_FEEDBACK_H
#define HERALD_PLUGIN_FEEDBACK_H

#include <stdbool.h>
#include <stddef.h>

/* ---- application/x-www-form-urlencoded ------------------------------- */

struct pfb_param {
    char *name;  /* decoded ('+' is a space, %XX a byte) */
    char *value; /* decoded */
};

/* The parameters in the order they were posted; owns every string. */
struct pfb_form {
    struct pfb_param *params;
    size_t n;
};

#define PFB_FORM_MAX_PARAMS 256

/* Parses a form body (len bytes, need not be NUL-terminated). Refuses bad
 * percent-encoding, a NUL byte after decoding, more than
 * PFB_FORM_MAX_PARAMS fields, and running out of memory. Returns 0, or -1
 * with err set (f is then empty; pfb_form_free is still safe). */
int pfb_form_parse(const char *body, size_t len, struct pfb_form *f, char *err, size_t errlen);
/* The first value of name, or NULL. */
const char *pfb_form_get(const struct pfb_form *f, const char *name);
void pfb_form_free(struct pfb_form *f);

/* The text Twilio signs for a POST: url (exactly the URL Twilio was told
 * to call, query included), then every parameter sorted by name
 * (bytewise; equal names by value), each name followed by its value. A
 * new string (the caller frees it), *len its length; NULL out of memory. */
char *pfb_twilio_signed_text(const char *url, const struct pfb_form *f, size_t *len);

/* True when sig_b64 is base64 of HMAC-SHA1(token, text). */
bool pfb_twilio_verify(const char *token, const char *text, size_t len, const char *sig_b64);

/* True when sig_b64 is base64 of pubkey_b64's (base64 DER
 * SubjectPublicKeyInfo, EC P-256) ECDSA/SHA-256 signature of ts + body. */
bool pfb_ecdsa_verify(const char *pubkey_b64, const char *ts, const char *body, size_t len, const char *sig_b64);

/* Standard base64 (padding required, surrounding white space ignored) of at
 * most 8192 characters into a new buffer; -1 when it is not. */
int pfb_b64_decode(const char *in, unsigned char **out, size_t *outlen);

/* Keywords of an inbound SMS body: the whole body, any case, surrounding
 * white space ignored; else Twilio's own reading (OptOutType "STOP",
 * "START" or "HELP"). Either may be NULL. */
enum pfb_keyword { PFB_KW_NONE = 0, PFB_KW_STOP, PFB_KW_START, PFB_KW_HELP };
enum pfb_keyword pfb_sms_keyword(const char *body, const char *opt_out_type);

/* A Twilio resource sid: two upper-case letters and 32 lower-case hex
 * digits ("SM0123..."). */
bool pfb_twilio_sid_valid(const char *s);

/* 1..max characters of [A-Za-z0-9._:=-] and _ (an event or message id: it
 * goes into keys and log lines, so it can never hold an address). */
bool pfb_id_valid(const char *s, size_t max);

/* Seconds since the epoch from 1..12 decimal digits, or -1. */
long long pfb_parse_unix(const char *s);

#endif
