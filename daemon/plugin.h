/*
 * plugin.h - loads channel plugins and creates one instance per provider.
 *
 * Each [provider NAME] names a plugin; the loader opens <plugin_dir>/<plugin>.so
 * with uv_dlopen once per plugin, checks the ABI version and table size
 * before calling anything, then lets the plugin validate its settings.
 * Every problem is appended to errors as "FILE:LINE: [provider NAME] key: problem".
 */
#ifndef HERALD_PLUGIN_H
#define HERALD_PLUGIN_H

#include "config.h"
#include "herald_channel.h"

struct plugin_provider {
    const char *name;                         /* provider instance name (config owns it) */
    const struct herald_channel_plugin *api;  /* table from the .so */
    void *instance;
    bool channels[HERALD_CH_COUNT];           /* channels the plugin can carry */
    /* ABI 2's feedback members, NULL for a version 1 plugin (whose table
     * ends before them): read these, never api->feedback. */
    int (*feedback)(void *instance, const struct herald_feedback_request *req, struct herald_feedback_reply *reply,
                    char *err, size_t errlen);
    const char *feedback_route;
    const char *const *feedback_headers;
    /* The table's flags (HERALD_CHANNEL_SAME_OPTIONS), 0 when it is older
     * than them: read this, never api->flags. */
    uint32_t flags;
};

struct plugin_set;

/* Loads every provider of cfg. Returns the number of errors (0 = all loaded);
 * *out is set even when errors occur (free it with plugin_set_free). */
int plugin_set_load(const struct config *cfg, struct plugin_set **out, struct strbuf *errors);
void plugin_set_free(struct plugin_set *ps);
size_t plugin_set_count(const struct plugin_set *ps);
/* The provider at config index i (same order as cfg->providers). */
struct plugin_provider *plugin_set_get(struct plugin_set *ps, size_t i);

/* The provider named name, or NULL. */
struct plugin_provider *plugin_set_find(struct plugin_set *ps, const char *name);

/* The host table plugins receive (logging with the module "plugin"). */
const struct herald_host *plugin_host(void);

#endif
