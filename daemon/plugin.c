/*
 * plugin.c - uv_dlopen of channel plugins, ABI checks, instance creation.
 *
 * Nothing from a plugin is called before its abi_version and size are
 * checked: a plugin built against another ABI is refused with one line. A
 * plugin may fail create(); every setting error it reports keeps its file
 * and line. Libraries stay open until plugin_set_free().
 */
#include "plugin.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <uv.h>

#include "log.h"

struct plugin_lib {
    char *name;
    uv_lib_t lib;
    bool open;
    const struct herald_channel_plugin *api;
};

struct plugin_set {
    struct plugin_lib *libs;
    size_t nlibs;
    struct plugin_provider *providers;
    size_t nproviders;
};

static void host_log(void *ctx, enum herald_log_level level, const char *fmt, ...)
{
    (void)ctx;
    static const enum log_level map[] = {LOG_DEBUG, LOG_INFO, LOG_WARN, LOG_ERROR};
    va_list ap;
    va_start(ap, fmt);
    log_vwrite(map[level <= HERALD_LOG_ERROR ? level : HERALD_LOG_ERROR], "plugin", fmt, ap);
    va_end(ap);
}

/* During create(), errors are routed to the provider being created. */
struct create_ctx {
    const struct config *cfg;
    const struct config_provider *cp;
    struct strbuf *errors;
    int nerrors;
    int unread; /* "missing" for a secret whose KEY_file config.c reported: not said twice */
};
static struct create_ctx *current_create;

/* One error line for the provider being created: "FILE:LINE: [provider NAME] key: msg". */
static void report(struct create_ctx *c, int line, const char *key, const char *fmt, va_list ap)
    __attribute__((format(printf, 4, 0)));
static void report(struct create_ctx *c, int line, const char *key, const char *fmt, va_list ap)
{
    char msg[512];
    vsnprintf(msg, sizeof(msg), fmt, ap);
    if (line > 0)
        strbuf_addf(c->errors, "%s:%d: ", c->cfg->path, line);
    else
        strbuf_adds(c->errors, "--set: ");
    strbuf_addf(c->errors, "[provider %s]%s%s: %s\n", c->cp->name, key ? " " : "", key ? key : "", msg);
    c->nerrors++;
}

static void host_setting_error(void *ctx, size_t index, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void host_setting_missing(void *ctx, const char *key, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void host_setting_error(void *ctx, size_t index, const char *fmt, ...)
{
    (void)ctx;
    struct create_ctx *c = current_create;
    if (!c) return;
    bool known = index != HERALD_SETTING_NONE && index < c->cp->nsettings;
    va_list ap;
    va_start(ap, fmt);
    report(c, known ? c->cp->setting_lines[index] : c->cp->line, known ? c->cp->settings[index].key : NULL, fmt, ap);
    va_end(ap);
}

static void host_setting_missing(void *ctx, const char *key, const char *fmt, ...)
{
    (void)ctx;
    struct create_ctx *c = current_create;
    if (!c) return;
    for (size_t i = 0; i < c->cp->nunread; i++)
        if (strcmp(c->cp->unread[i], key) == 0) {
            c->unread++;
            return;
        }
    va_list ap;
    va_start(ap, fmt);
    report(c, c->cp->line, key, fmt, ap);
    va_end(ap);
}

static int64_t host_now_ms(void *ctx)
{
    (void)ctx;
    struct timeval tv;
    gettimeofday(&tv, NULL);
    return (int64_t)tv.tv_sec * 1000 + tv.tv_usec / 1000;
}

static struct herald_host host = {
    .abi_version = HERALD_CHANNEL_ABI_VERSION,
    .size = sizeof(struct herald_host),
    .ctx = NULL,
    .log = host_log,
    .setting_error = host_setting_error,
    .now_ms = host_now_ms,
    .setting_missing = host_setting_missing,
};

const struct herald_host *plugin_host(void) { return &host; }

static struct plugin_lib *lib_open(struct plugin_set *ps, const struct config *cfg,
                                   const struct config_provider *cp, struct strbuf *errors)
{
    for (size_t i = 0; i < ps->nlibs; i++)
        if (strcmp(ps->libs[i].name, cp->plugin) == 0) return ps->libs[i].api ? &ps->libs[i] : NULL;
    ps->libs = xrealloc(ps->libs, (ps->nlibs + 1) * sizeof(*ps->libs));
    struct plugin_lib *l = &ps->libs[ps->nlibs++];
    memset(l, 0, sizeof(*l));
    l->name = xstrdup(cp->plugin);

    char path[4096];
    snprintf(path, sizeof(path), "%s/%s.so", cfg->plugin_dir, cp->plugin);
    const char *where = cfg->path;
    int line = cp->plugin_line ? cp->plugin_line : cp->line;
    if (uv_dlopen(path, &l->lib) != 0) {
        strbuf_addf(errors, "%s:%d: [provider %s] plugin: cannot load %s: %s\n", where, line,
                    cp->name, path, uv_dlerror(&l->lib));
        uv_dlclose(&l->lib);
        return NULL;
    }
    l->open = true;
    herald_channel_entry_fn entry = NULL;
    if (uv_dlsym(&l->lib, HERALD_CHANNEL_SYMBOL, (void **)&entry) != 0 || !entry) {
        strbuf_addf(errors, "%s:%d: [provider %s] plugin: %s is not a herald channel plugin (no %s symbol)\n",
                    where, line, cp->name, path, HERALD_CHANNEL_SYMBOL);
        return NULL;
    }
    const struct herald_channel_plugin *api = entry();
    /* Version 1 tables end at deliver: nothing past it is read from one.
     * Version 2 tables end at feedback_headers or later (flags). */
    size_t need = api && api->abi_version == 1u ? HERALD_CHANNEL_PLUGIN_V1_SIZE : HERALD_CHANNEL_PLUGIN_V2_SIZE;
    if (!api || api->abi_version < HERALD_CHANNEL_ABI_VERSION_MIN || api->abi_version > HERALD_CHANNEL_ABI_VERSION ||
        api->size < need) {
        strbuf_addf(errors,
                    "%s:%d: [provider %s] plugin: %s has ABI version %u (size %zu); this herald needs version %u "
                    "(size %zu) or version %u (size %zu)\n",
                    where, line, cp->name, path, api ? api->abi_version : 0u, api ? api->size : (size_t)0,
                    HERALD_CHANNEL_ABI_VERSION, (size_t)HERALD_CHANNEL_PLUGIN_V2_SIZE, HERALD_CHANNEL_ABI_VERSION_MIN,
                    (size_t)HERALD_CHANNEL_PLUGIN_V1_SIZE);
        return NULL;
    }
    if (!api->create || !api->destroy || !(api->deliver || (api->prepare && api->interpret))) {
        strbuf_addf(errors, "%s:%d: [provider %s] plugin: %s lacks create/destroy or a way to send\n",
                    where, line, cp->name, path);
        return NULL;
    }
    l->api = api;
    return l;
}

int plugin_set_load(const struct config *cfg, struct plugin_set **out, struct strbuf *errors)
{
    struct plugin_set *ps = xcalloc(1, sizeof(*ps));
    *out = ps;
    int nerrors = 0;
    ps->providers = xcalloc(cfg->nproviders ? cfg->nproviders : 1, sizeof(*ps->providers));
    ps->nproviders = cfg->nproviders;
    for (size_t i = 0; i < cfg->nproviders; i++) {
        const struct config_provider *cp = &cfg->providers[i];
        struct plugin_provider *pp = &ps->providers[i];
        pp->name = cp->name;
        if (!cp->plugin) continue; /* config already reported it */
        struct plugin_lib *l = lib_open(ps, cfg, cp, errors);
        if (!l) {
            nerrors++;
            continue;
        }
        struct create_ctx cc = {.cfg = cfg, .cp = cp, .errors = errors};
        current_create = &cc;
        host.base_dir = cfg->dir;
        void *inst = NULL;
        int rc = l->api->create(&host, cp->settings, cp->nsettings, &inst);
        current_create = NULL;
        if (rc != 0 || !inst) {
            if (cc.nerrors == 0 && cc.unread == 0)
                strbuf_addf(errors, "%s:%d: [provider %s]: the %s plugin refused its settings\n", cfg->path,
                            cp->line, cp->name, cp->plugin);
            nerrors += cc.nerrors ? cc.nerrors : cc.unread ? 0 : 1;
            if (inst) l->api->destroy(inst);
            continue;
        }
        if (cc.nerrors) { /* reported problems yet returned an instance: refuse */
            nerrors += cc.nerrors;
            l->api->destroy(inst);
            continue;
        }
        pp->api = l->api;
        pp->instance = inst;
        if (l->api->abi_version >= 2u) {
            pp->feedback = l->api->feedback;
            pp->feedback_route = l->api->feedback_route;
            pp->feedback_headers = l->api->feedback_headers;
            if (l->api->size >= offsetof(struct herald_channel_plugin, flags) + sizeof(l->api->flags))
                pp->flags = l->api->flags;
        }
        /* "email,sms" -> channel flags */
        char chans[64];
        snprintf(chans, sizeof(chans), "%s", l->api->channels ? l->api->channels : "");
        char *save = NULL;
        for (char *t = strtok_r(chans, ", ", &save); t; t = strtok_r(NULL, ", ", &save)) {
            int ch = herald_channel_from_name(t);
            if (ch >= 0) pp->channels[ch] = true;
        }
    }
    /* Every provider a channel lists must carry that channel. */
    for (int ch = 0; ch < HERALD_CH_COUNT; ch++) {
        const struct config_channel *cc = &cfg->channels[ch];
        for (size_t j = 0; cc->present && j < cc->nproviders; j++) {
            int idx = cc->provider_index ? cc->provider_index[j] : -1;
            if (idx < 0 || !ps->providers[idx].api) continue;
            if (!ps->providers[idx].channels[ch]) {
                strbuf_addf(errors, "%s:%d: [channel %s] providers: provider %s (plugin %s) cannot carry %s\n",
                            cfg->path, cc->line, herald_channel_name(ch), cc->providers[j],
                            cfg->providers[idx].plugin, herald_channel_name(ch));
                nerrors++;
            }
        }
    }
    return nerrors;
}

size_t plugin_set_count(const struct plugin_set *ps) { return ps->nproviders; }

struct plugin_provider *plugin_set_get(struct plugin_set *ps, size_t i)
{
    return i < ps->nproviders ? &ps->providers[i] : NULL;
}

struct plugin_provider *plugin_set_find(struct plugin_set *ps, const char *name)
{
    for (size_t i = 0; ps && i < ps->nproviders; i++)
        if (ps->providers[i].name && strcmp(ps->providers[i].name, name) == 0) return &ps->providers[i];
    return NULL;
}

void plugin_set_free(struct plugin_set *ps)
{
    if (!ps) return;
    for (size_t i = 0; i < ps->nproviders; i++)
        if (ps->providers[i].api && ps->providers[i].instance)
            ps->providers[i].api->destroy(ps->providers[i].instance);
    for (size_t i = 0; i < ps->nlibs; i++) {
        if (ps->libs[i].open) uv_dlclose(&ps->libs[i].lib);
        free(ps->libs[i].name);
    }
    free(ps->libs);
    free(ps->providers);
    free(ps);
}
