/*
 * locales.h - reads the pages' message catalogues from [daemon]
 * locales_dir (every <locale>.po file in it) into an l10n set.
 *
 * The I/O half of l10n.h: it reads files and nothing else, never logs
 * (its problems are report lines, as config_load's are), so the daemon
 * refuses to start on them and a reload keeps the running catalogues.
 */
#ifndef HERALD_LOCALES_H
#define HERALD_LOCALES_H

#include "l10n.h"

/* Loads every *.po under dir (a file larger than 1 MiB, one that does not
 * parse, or a directory without default_locale.po is an error). Appends
 * one line per problem to report ("FILE:LINE: problem" or "DIR: problem");
 * returns their number, with *out the set when it is 0 (NULL otherwise).
 * Catalogues that lack keys the default has are not errors (the page
 * shows the default's words there): one warning line each names how many
 * ("FILE: warning: ..."), not counted. */
int locales_load(const char *dir, const char *default_locale, struct l10n_set **out, struct strbuf *report);

#endif
