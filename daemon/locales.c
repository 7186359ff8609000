/*
 * locales.c - reads the catalogues of locales_dir (see locales.h).
 *
 * Files are taken in name order, so reports and the set read the same on
 * every host. Only regular files named <tag>.po count; anything else in
 * the directory (a README, an editor's backup) is left alone.
 */
#include "locales.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define LOCALES_MAX_FILE (1024 * 1024)

static int cmp_names(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* "<tag>.po" with the tag as default_locale is checked (letters first). */
static bool po_name(const char *name, char *tag, size_t n)
{
    size_t len = strlen(name);
    if (len < 4 || strcmp(name + len - 3, ".po") != 0 || len - 3 >= n) return false;
    for (size_t i = 0; i < len - 3; i++) {
        char c = name[i];
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (i > 0 && ((c >= '0' && c <= '9') || c == '-' || c == '_'));
        if (!ok) return false;
    }
    memcpy(tag, name, len - 3);
    tag[len - 3] = '\0';
    return true;
}

static char *read_file(const char *path, size_t *len, char *err, size_t errlen)
{
    FILE *fp = fopen(path, "rb");
    if (!fp) {
        herald_seterr(err, errlen, "%s: cannot be read: %s", path, strerror(errno));
        return NULL;
    }
    char *buf = xmalloc(LOCALES_MAX_FILE + 1);
    size_t n = fread(buf, 1, LOCALES_MAX_FILE + 1, fp);
    bool bad = ferror(fp);
    fclose(fp);
    if (bad || n > LOCALES_MAX_FILE) {
        herald_seterr(err, errlen, bad ? "%s: cannot be read" : "%s: larger than 1 MiB", path);
        free(buf);
        return NULL;
    }
    buf[n] = '\0';
    *len = n;
    return buf;
}

int locales_load(const char *dir, const char *default_locale, struct l10n_set **out, struct strbuf *report)
{
    *out = NULL;
    DIR *d = opendir(dir);
    if (!d) {
        strbuf_addf(report, "%s: [daemon] locales_dir: cannot be opened: %s\n", dir, strerror(errno));
        return 1;
    }
    char **names = NULL;
    size_t n = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        char tag[64];
        if (!po_name(de->d_name, tag, sizeof(tag))) continue;
        names = xrealloc(names, (n + 1) * sizeof(*names));
        names[n++] = xstrdup(de->d_name);
    }
    closedir(d);
    qsort(names, n, sizeof(*names), cmp_names);

    int nerr = 0;
    struct l10n_set *set = l10n_set_new(default_locale);
    for (size_t i = 0; i < n; i++) {
        char tag[64], err[512];
        po_name(names[i], tag, sizeof(tag));
        struct strbuf pb;
        strbuf_init(&pb);
        strbuf_addf(&pb, "%s/%s", dir, names[i]);
        char *path = strbuf_detach(&pb, NULL);
        struct stat st;
        size_t len = 0;
        char *text = NULL;
        if (stat(path, &st) == 0 && !S_ISREG(st.st_mode)) goto next; /* a directory named x.po */
        struct l10n_catalog *c = NULL;
        if (!(text = read_file(path, &len, err, sizeof(err))) ||
            l10n_catalog_parse(path, tag, text, len, &c, err, sizeof(err)) < 0) {
            strbuf_addf(report, "%s\n", err);
            nerr++;
        } else if (l10n_set_find(set, tag)) {
            strbuf_addf(report, "%s: a second catalogue for %s (names differ only in case)\n", path, tag);
            l10n_catalog_free(c);
            nerr++;
        } else {
            l10n_set_add(set, c);
        }
    next:
        free(text);
        free(path);
    }
    for (size_t i = 0; i < n; i++)
        free(names[i]);
    free(names);
    const struct l10n_catalog *def = l10n_set_default(set);
    if (!def && nerr == 0) {
        strbuf_addf(report, "%s: no catalogue %s.po for [public] default_locale = %s\n", dir, default_locale,
                    default_locale);
        nerr++;
    }
    if (nerr == 0) {
        for (size_t i = 0; i < l10n_set_count(set); i++) {
            const struct l10n_catalog *c = l10n_set_at(set, i);
            size_t missing = 0;
            const char *first = NULL;
            for (size_t k = 0; k < l10n_catalog_count(def); k++) {
                const char *key = l10n_catalog_key(def, k);
                if (l10n_catalog_get(def, key) && !l10n_catalog_get(c, key) && !missing++) first = key;
            }
            if (missing)
                strbuf_addf(report, "%s/%s.po: warning: %zu text%s untranslated (the first: \"%s\"); the page shows "
                                    "%s words there\n",
                            dir, l10n_catalog_locale(c), missing, missing > 1 ? "s" : "", first, default_locale);
        }
    }
    if (nerr) {
        l10n_set_unref(set);
        return nerr;
    }
    *out = set;
    return 0;
}
