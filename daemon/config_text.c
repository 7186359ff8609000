/*
 * config_text.c - the pure half of config.h: reading the texts a
 * configuration gives per language ([topic NAME], [terms CHANNEL]), for
 * the pages (pagerender.c) without pulling the file parser into the pure
 * library. Never allocates, never fails.
 */
#include <string.h>
#include <strings.h>

#include "config.h"

const char *config_text_for(const struct config_texts *t, const char *locale, const char *default_locale)
{
    const char *tries[2] = {locale, default_locale};
    for (int k = 0; k < 2; k++) {
        const char *want = tries[k];
        if (!want || !*want) continue;
        size_t plen = strcspn(want, "-_");
        for (size_t i = 0; i < t->n; i++)
            if (t->v[i].locale[0] && strcasecmp(t->v[i].locale, want) == 0) return t->v[i].value;
        for (size_t i = 0; i < t->n; i++)
            if (t->v[i].locale[0] && strlen(t->v[i].locale) == plen && strncasecmp(t->v[i].locale, want, plen) == 0)
                return t->v[i].value;
    }
    for (size_t i = 0; i < t->n; i++)
        if (!t->v[i].locale[0]) return t->v[i].value;
    return NULL;
}

const struct config_topic *config_topic_find(const struct config *cfg, const char *topic)
{
    for (size_t i = 0; cfg && topic && i < cfg->ntopics; i++)
        if (strcmp(cfg->topics[i].name, topic) == 0) return &cfg->topics[i];
    return NULL;
}

