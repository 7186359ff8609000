/*
 * l10n.h - the words of the pages in the person's own language: message
 * catalogues (one gettext .po file per locale, docs/localisation.md), the
 * choice of a locale for a request, plural forms, and filling a
 * catalogue's text into a page.
 *
 * Pure: no uv, hiredis, curl or logging, no file access (locales.c reads
 * the directory and hands the text over); never reads the clock. A loaded
 * set never changes: a reload builds a new one, and whoever renders a page
 * holds a reference (l10n_set_ref) until it is done, so a reload in the
 * middle of a request is harmless.
 */
#ifndef HERALD_L10N_H
#define HERALD_L10N_H

#include "herald.h"

/* One locale's catalogue (a parsed .po file). */
struct l10n_catalog;

/* Parses the text of one .po file. file names it in errors ("FILE:LINE:
 * problem" in err); locale is its tag (the file name without ".po").
 * Returns 0 and *out, or -HERALD_EINVAL with err set and *out NULL. */
int l10n_catalog_parse(const char *file, const char *locale, const char *text, size_t len,
                       struct l10n_catalog **out, char *err, size_t errlen);
void l10n_catalog_free(struct l10n_catalog *c);

const char *l10n_catalog_locale(const struct l10n_catalog *c);
/* "rtl" or "ltr" (the header X-Direction, default ltr). */
const char *l10n_catalog_dir(const struct l10n_catalog *c);
/* The text of key, or NULL when the catalogue has none (or it is empty or fuzzy). */
const char *l10n_catalog_get(const struct l10n_catalog *c, const char *key);
/* The plural form of key for the count n (Plural-Forms), or NULL. */
const char *l10n_catalog_nget(const struct l10n_catalog *c, const char *key, unsigned long n);
/* The number of keys, and the i-th (in file order). */
size_t l10n_catalog_count(const struct l10n_catalog *c);
const char *l10n_catalog_key(const struct l10n_catalog *c, size_t i);
/* Whether key in c is a plural entry (msgid_plural). */
bool l10n_catalog_is_plural(const struct l10n_catalog *c, const char *key);

/* The index of the plural form for n under a Plural-Forms expression
 * (C syntax over n: ?: || && == != < <= > >= + - * / % ! and parentheses).
 * Returns the index (>= 0), or -HERALD_EINVAL when expr does not parse. */
int l10n_plural_eval(const char *expr, unsigned long n);

/* ---- a set of catalogues ------------------------------------------------ */

struct l10n_set;

/* An empty set whose fallback locale is default_locale. Reference count 1. */
struct l10n_set *l10n_set_new(const char *default_locale);
/* Takes c (it is freed with the set). */
void l10n_set_add(struct l10n_set *s, struct l10n_catalog *c);
struct l10n_set *l10n_set_ref(struct l10n_set *s);
/* Drops one reference; the last frees the set. s may be NULL. */
void l10n_set_unref(struct l10n_set *s);
size_t l10n_set_count(const struct l10n_set *s);
const struct l10n_catalog *l10n_set_at(const struct l10n_set *s, size_t i);
/* The catalogue of exactly this tag (case-insensitive), or NULL. */
const struct l10n_catalog *l10n_set_find(const struct l10n_set *s, const char *locale);
/* The default locale's catalogue (NULL when the set lacks it). */
const struct l10n_catalog *l10n_set_default(const struct l10n_set *s);
/* Appends "LOCALE lacks KEY (which DEFAULT has)" lines for every key one
 * catalogue has and another lacks; returns how many. */
int l10n_set_missing(const struct l10n_set *s, struct strbuf *report);

/* ---- choosing a locale -------------------------------------------------- */

#define L10N_ACCEPT_MAX 16
struct l10n_accept {
    char tag[36]; /* lower-case, "*" for any */
    int q;        /* 0..1000 */
};
/* Parses an Accept-Language header into at most max entries, highest q
 * first (equal q: header order); entries with q=0 and malformed ones are
 * left out. Returns the number kept. header may be NULL. */
size_t l10n_accept_parse(const char *header, struct l10n_accept *out, size_t max);

/* The catalogue for a person: their profile's locale (may be NULL), else
 * the best of Accept-Language (may be NULL), else the default. A tag
 * matches a catalogue of the same tag, else of its primary language
 * ("ko-KR" -> "ko"; "de" also finds "de-AT" when only that exists).
 * NULL only when the set lacks the default too. */
const struct l10n_catalog *l10n_choose(const struct l10n_set *s, const char *profile_locale,
                                       const char *accept_language);

/* ---- text into a page --------------------------------------------------- */

/* One named placeholder: {name} in a catalogue text becomes html, which
 * the caller has made safe (pagerender_escape or markup of its own). */
struct l10n_arg {
    const char *name;
    const char *html;
};

/* Appends key's text from c (falling back to the set's default locale,
 * then to the key itself), HTML-escaped, with its placeholders filled from
 * args (nargs of them; a placeholder without an arg stays as written).
 * n selects the plural form when the key is a plural entry. */
void l10n_put(struct strbuf *out, const struct l10n_set *s, const struct l10n_catalog *c, const char *key,
              unsigned long n, const struct l10n_arg *args, size_t nargs);

#endif
