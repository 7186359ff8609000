/*
 * feedback.h - provider feedback, the pure part: reading what SendGrid's
 * event webhook and Twilio's inbound SMS webhook post, and the text
 * Twilio's X-Twilio-Signature is computed over.
 *
 * Pure: no I/O, no clock, no logging, no crypto (webhooks.c verifies the
 * signatures over what is built here). Error texts never quote an address
 * or a message body, so the caller may put them in a 400 answer or a log.
 */
#ifndef HERALD_FEEDBACK_H
#define HERALD_FEEDBACK_H

#include "herald.h"

/* ---- Twilio: application/x-www-form-urlencoded ------------------------- */

struct feedback_param {
    char *name;  /* decoded ('+' is a space, %XX a byte) */
    char *value; /* decoded */
};

/* The parameters in the order they were posted; owns every string. */
struct feedback_form {
    struct feedback_param *params;
    size_t n;
};

#define FEEDBACK_FORM_MAX_PARAMS 256

/* Parses a form body (len bytes, need not be NUL-terminated). Refuses bad
 * percent-encoding, a NUL byte after decoding and more than
 * FEEDBACK_FORM_MAX_PARAMS fields. Returns 0, or -HERALD_EINVAL with err
 * set (f is then empty; feedback_form_free is still safe). */
int feedback_form_parse(const char *body, size_t len, struct feedback_form *f, char *err, size_t errlen);
/* The first value of name, or NULL. */
const char *feedback_form_get(const struct feedback_form *f, const char *name);
void feedback_form_free(struct feedback_form *f);

/* The text Twilio signs for a POST (its "request validation" scheme):
 * url, then every parameter sorted by name (bytewise; equal names by
 * value), each name immediately followed by its value. url is
 * base_url without trailing '/' + path, plus "?" query when query is not
 * empty: the URL Twilio was told to call. Written into sb (reset first). */
void feedback_twilio_signed_text(struct strbuf *sb, const char *base_url, const char *path, const char *query,
                                 const struct feedback_form *f);

/* Keywords of an inbound SMS body: the whole body, any case, surrounding
 * white space ignored. */
enum feedback_keyword {
    FEEDBACK_KW_NONE = 0, /* anything else: ignored */
    FEEDBACK_KW_STOP,     /* STOP STOPALL UNSUBSCRIBE CANCEL END QUIT: revoke SMS consent */
    FEEDBACK_KW_START,    /* START UNSTOP: grant SMS consent again */
    FEEDBACK_KW_HELP      /* HELP: answered and counted */
};
enum feedback_keyword feedback_sms_keyword(const char *body);
/* A Twilio resource sid: two upper-case letters and 32 lower-case hex
 * digits ("SM0123..."). Stricter than herald_id_valid on purpose: the sid
 * goes into log lines, so it must never be able to hold an address. */
bool feedback_twilio_sid_valid(const char *s);
/* The keyword of an inbound SMS: the body's, else Twilio's own reading of
 * it (the OptOutType parameter, "STOP", "START" or "HELP", which Twilio's
 * Advanced Opt-Out sends for the keywords configured there, in any
 * language). Either may be NULL. */
enum feedback_keyword feedback_twilio_keyword(const char *body, const char *opt_out_type);
const char *feedback_keyword_name(enum feedback_keyword kw); /* "stop", "start", "help", "" */

/* ---- SendGrid: the event webhook's JSON array -------------------------- */

#define FEEDBACK_SG_MAX_EVENTS 10000
#define FEEDBACK_EMAIL_MAX 254

/* What one request asks for: the addresses to suppress (each once,
 * in the order first seen) and how many events were read. */
struct feedback_sendgrid {
    char **suppress; /* addresses as posted (store_suppress_member normalises them) */
    size_t nsuppress;
    size_t nevents;  /* every event in the array */
    size_t nignored; /* events that ask for nothing (delivered, open, soft bounce, ...) */
};

/* Whether one event suppresses its address: "bounce" unless its "type" is
 * "blocked" (SendGrid's temporary, reputation-based kind; "bounce" or no
 * type is a hard bounce), "dropped", "spamreport" and "unsubscribe".
 * event and type may be NULL. */
bool feedback_sendgrid_suppresses(const char *event, const char *type);

/* Parses the body (len bytes). The whole request is refused (-HERALD_EINVAL,
 * err set, out empty) when it is not a JSON array of objects, an event has
 * no string "event", or an event that suppresses has no usable "email"
 * (a string of 3..254 bytes with an '@' and no control character): then
 * nothing of it may be applied. */
int feedback_sendgrid_parse(const char *body, size_t len, struct feedback_sendgrid *out, char *err,
                            size_t errlen);
void feedback_sendgrid_free(struct feedback_sendgrid *fs);

#endif
