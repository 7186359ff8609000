/*
 * pagerender.h - the pure half of the pages behind the links in every
 * message (page.c is the I/O half): decoding the forms browsers and mail
 * clients post, turning the preference form into one preference patch,
 * and rendering each page to a complete HTML document.
 *
 * Pure: no uv, hiredis, curl, crypto or logging; never reads the clock
 * (now is an argument). Everything that comes from the person, the store
 * or the token is HTML-escaped on the way out (pagerender_escape is the
 * only way text reaches a page); the documents use no script, no external
 * asset, and inline CSS only. Every word comes from the person's message
 * catalogue (l10n.h): no sentence of a page is written in this C code.
 * Form problems are catalogue keys, shown all at once.
 */
#ifndef HERALD_PAGERENDER_H
#define HERALD_PAGERENDER_H

#include <jansson.h>

#include "config.h"
#include "herald.h"
#include "l10n.h"
#include "tz.h"

/* ---- HTML --------------------------------------------------------------- */

/* Appends s with & < > " ' escaped (safe in text and in quoted attributes).
 * Bytes that are not valid UTF-8 and control characters other than tab and
 * newline become U+FFFD, so a page is always valid UTF-8. s may be NULL. */
void pagerender_escape(struct strbuf *out, const char *s);

/* ---- forms -------------------------------------------------------------- */

struct pagerender_field {
    char *name;  /* decoded */
    char *value; /* decoded */
};

/* The fields in the order they were posted; owns every string. */
struct pagerender_form {
    struct pagerender_field *fields;
    size_t n;
};

#define PAGERENDER_FORM_MAX_FIELDS 256

/* Parses a body by its Content-Type (may be NULL): multipart/form-data (its
 * boundary parameter required; parts without a filename only) or, for
 * anything else, application/x-www-form-urlencoded ('+' is a space, %XX a
 * byte). Refuses bad encoding, NUL bytes and more than
 * PAGERENDER_FORM_MAX_FIELDS fields. Returns 0, or -HERALD_EINVAL with err
 * set (f is then empty; pagerender_form_free is always safe). */
int pagerender_form_parse(const char *content_type, const char *body, size_t len, struct pagerender_form *f,
                          char *err, size_t errlen);
/* The first value of name, or NULL. */
const char *pagerender_form_get(const struct pagerender_form *f, const char *name);
/* Whether some field name carries exactly value. */
bool pagerender_form_has(const struct pagerender_form *f, const char *name, const char *value);
void pagerender_form_free(struct pagerender_form *f);

/* What the preference form asks for. patch is the one object for
 * people_patch_preferences ("channels", "quiet_hours", "frequency" always;
 * "topics" when the form listed any); withdraw[ch] asks to withdraw
 * consent on that channel, which the caller does only after the patch
 * succeeded. */
struct pagerender_changes {
    json_t *patch;
    bool withdraw[HERALD_CH_COUNT];
    bool grant[HERALD_CH_COUNT]; /* agree, to the terms version in the form's terms_<channel> */
};

/* What is wrong with a form: catalogue keys ("error.quiet_both"), each
 * once, with the one value its sentence names (a channel, "any", a number). */
#define PAGERENDER_ERRORS_MAX 12
struct pagerender_error {
    const char *key; /* static */
    char arg[24];
};
struct pagerender_errors {
    struct pagerender_error e[PAGERENDER_ERRORS_MAX];
    size_t n;
};

/* Reads the preference form (field names in docs/api.md; "csrf" is the
 * caller's to check and skipped here). Every field is validated before
 * anything is built: on problems returns -HERALD_EINVAL with every one of
 * them in errs and out->patch NULL. */
int pagerender_changes_from_form(const struct pagerender_form *f, struct pagerender_changes *out,
                                 struct pagerender_errors *errs);
void pagerender_changes_free(struct pagerender_changes *c);

/* The order buttons (no script needed): move is "up:<channel>" or
 * "down:<channel>"; rewrites f's pos_<channel> fields (every channel's,
 * 1..n, made whole from the order shown when some are missing) so that
 * the page shows the new order. Returns 0, or -HERALD_EINVAL when move
 * names no channel. */
int pagerender_form_move(struct pagerender_form *f, const char *move);

/* The origin "scheme://host[:port]" of url (an Origin header, or
 * [admin] public_url), lower-cased and without the scheme's default port
 * (443, 80), into buf. false when url has no "://" or does not fit. */
bool pagerender_origin(const char *url, char *buf, size_t n);

/* ---- pages -------------------------------------------------------------- */

/* The person's language and time zone: every word and time of a page. */
struct pagerender_lang {
    const struct l10n_set *set;     /* for the default locale's words where cat lacks one */
    const struct l10n_catalog *cat; /* l10n_choose's */
    const struct tz *tz;            /* the person's zone; NULL: UTC */
    const char *tz_name;            /* its name as the page shows it; NULL: "UTC" */
    /* The configuration in force (topics' names, terms, organisation);
     * NULL: ids as they are, no footer. */
    const struct config *cfg;
};

/* What a page knows besides the person's data. Strings may be NULL. */
struct pagerender_ctx {
    struct pagerender_lang lang;
    const char *campaign, *topic, *channel;  /* from the verified token */
    const char *csrf;                        /* hidden field of the main form */
    const char *csrf_all;                    /* GET /u: hidden field of the "all of this channel" form */
    const char *prefs_href;                  /* GET /u: relative link to the preference page, or NULL */
    const struct pagerender_errors *errors;  /* shown at the top (validation failure), or NULL */
    bool saved;                              /* the "your changes are saved" note */
    bool moved;                              /* the order changed on the page, not saved yet */
    const char *token;                       /* the link's token: the page's own links (download, erase) */
    const struct pagerender_form *submitted; /* re-show these values instead of the stored ones */
    int64_t now;
};

#define PAGERENDER_MESSAGES_SHOWN 20

/* The preference page from a people_get document (people.h). */
void pagerender_prefs(struct strbuf *out, const json_t *doc, const struct pagerender_ctx *ctx);
/* GET /p/{token}/erase: what erasing does, and the button (ctx->csrf). */
void pagerender_erase_confirm(struct strbuf *out, const struct pagerender_ctx *ctx);
/* GET /u: what the button does, the button, and the "all" button. */
void pagerender_unsubscribe(struct strbuf *out, const struct pagerender_ctx *ctx);
/* A short page: a heading and one paragraph (refusals, confirmations),
 * both catalogue keys; the text's {channels} and {topic} are filled from
 * channel and topic (may be NULL). */
void pagerender_message(struct strbuf *out, const struct pagerender_lang *L, const char *title_key,
                        const char *text_key, const char *channel, const char *topic);

/* "Why did I get this": one plain sentence for an audit reason code
 * (including "" for sent and "cap:<name>") in the context of one message. */
void pagerender_reason(struct strbuf *out, const struct pagerender_lang *L, const char *reason,
                       const char *outcome, const char *channel, const char *topic);
/* Whether reason has a sentence of its own (tests: every reason code has). */
bool pagerender_reason_known(const char *reason);
/* The catalogue key of a reason code's sentence ("reason.sent" for none). */
void pagerender_reason_key(int reason, char *buf, size_t n);
/* One form problem as its sentence. */
void pagerender_errors_say(struct strbuf *out, const struct pagerender_lang *L, const struct pagerender_error *e);
/* The instant t (unix seconds) in L's zone and format, naming the zone. */
void pagerender_when(struct strbuf *out, const struct pagerender_lang *L, int64_t t);

#endif
