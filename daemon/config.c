/*
 * config.c - reads the INI file with inih and validates it against the schema.
 *
 * Two phases: inih collects every `key = value` with its line (the Debian
 * build of inih has no line numbers in the handler, so our line reader
 * counts them and also rejects lines inih would silently mangle); then the
 * --set overrides replace or add entries, and validation runs over the whole
 * set, reporting every problem. Never logs: errors go to the caller's strbuf.
 */
#include "config.h"

#include "rcluster.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <ini.h>
#include <limits.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "addrindex.h"
#include "job.h"
#include "log.h"
#include "profile.h"

/* X-macro arguments may hold commas only inside parentheses: none here. */
const struct config_key_info config_schema[] = {
#define X(sec, key, type, def, field, doc) {sec, key, CONFIG_##type, def, doc},
    CONFIG_KEYS(X)
#undef X
    {NULL, NULL, 0, NULL, NULL},
};

const struct config_key_info config_provider_schema[] = {
#define X(key, def, doc) {"provider", key, CONFIG_STRING, def, doc},
    CONFIG_PROVIDER_KEYS(X)
#undef X
    {NULL, NULL, 0, NULL, NULL},
};

#define CONFIG_MAX_LINE 1024
#define CONFIG_SECRET_MAX 65536 /* bytes of a KEY_file */

struct raw_entry {
    char *section;
    char *key;
    char *value;
    int line;       /* 0 for --set */
    bool from_set;
    bool from_file; /* KEY_file: value is the file's content, key is KEY */
    bool skip;      /* already reported (a KEY_file that failed): counts as given */
    bool dropped;   /* replaced by a --set of its other form (KEY vs KEY_file) */
};

struct raw_section {
    char *name;
    int line;
};

struct parse_ctx {
    const char *path;
    FILE *fp;
    struct stat st; /* of the file, for its permissions */
    int lineno;
    struct strbuf *errors;
    int nerrors;
    struct raw_entry *entries;
    size_t nentries, cap;
    struct raw_section *sections;
    size_t nsections, scap;
};

static void add_error(struct parse_ctx *c, int line, bool from_set, const char *section,
                      const char *key, const char *fmt, ...) HERALD_PRINTF(6, 7);

static void add_error(struct parse_ctx *c, int line, bool from_set, const char *section,
                      const char *key, const char *fmt, ...)
{
    if (from_set)
        strbuf_adds(c->errors, "--set: ");
    else
        strbuf_addf(c->errors, "%s:%d: ", c->path, line);
    if (section && key)
        strbuf_addf(c->errors, "[%s] %s: ", section, key);
    else if (section)
        strbuf_addf(c->errors, "[%s]: ", section);
    va_list ap;
    va_start(ap, fmt);
    char msg[512];
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    strbuf_adds(c->errors, msg);
    strbuf_adds(c->errors, "\n");
    c->nerrors++;
}

static char *trim(char *s)
{
    while (isspace((unsigned char)*s)) s++;
    size_t n = strlen(s);
    while (n && isspace((unsigned char)s[n - 1])) s[--n] = '\0';
    return s;
}

/* Folds the inner whitespace of a section name: "[provider   x]" == "[provider x]". */
static void fold_section(const char *in, char *out, size_t outlen)
{
    size_t o = 0;
    bool space = false;
    for (const char *p = in; *p && o + 1 < outlen; p++) {
        if (isspace((unsigned char)*p)) {
            space = o > 0;
            continue;
        }
        if (space && o + 2 < outlen) out[o++] = ' ';
        space = false;
        out[o++] = *p;
    }
    out[o] = '\0';
}

/*
 * inih's line reader. Counting here gives the handler its line number. Lines
 * inih would misread are reported and handed on blank: over-long lines (inih
 * splits them), indented continuation lines, and lines that are neither a
 * section, a comment nor key = value.
 */
static char *config_reader(char *str, int num, void *stream)
{
    struct parse_ctx *c = stream;
    if (!fgets(str, num, c->fp)) return NULL;
    c->lineno++;
    size_t len = strlen(str);
    if (len == (size_t)num - 1 && str[len - 1] != '\n' && !feof(c->fp)) {
        int ch;
        while ((ch = fgetc(c->fp)) != EOF && ch != '\n') {}
        add_error(c, c->lineno, false, NULL, NULL, "line longer than %d characters", num - 2);
        str[0] = '\n';
        str[1] = '\0';
        return str;
    }
    char copy[CONFIG_MAX_LINE];
    snprintf(copy, sizeof(copy), "%s", str);
    bool indented = isspace((unsigned char)copy[0]) && copy[0] != '\n' && copy[0] != '\r';
    char *t = trim(copy);
    if (*t == '\0' || *t == '#' || *t == ';') return str;
    if (indented) {
        add_error(c, c->lineno, false, NULL, NULL,
                  "indented line: continuation lines are not supported, put the value on one line");
        str[0] = '\n';
        str[1] = '\0';
        return str;
    }
    if (*t == '[') {
        char *end = strchr(t, ']');
        if (!end) {
            add_error(c, c->lineno, false, NULL, NULL, "section header without a closing ']'");
            str[0] = '\n';
            str[1] = '\0';
            return str;
        }
        *end = '\0';
        char name[256];
        fold_section(t + 1, name, sizeof(name));
        if (c->nsections == c->scap) {
            c->scap = c->scap ? c->scap * 2 : 8;
            c->sections = xrealloc(c->sections, c->scap * sizeof(*c->sections));
        }
        c->sections[c->nsections].name = xstrdup(name);
        c->sections[c->nsections].line = c->lineno;
        c->nsections++;
        return str;
    }
    if (!strchr(t, '=')) {
        add_error(c, c->lineno, false, NULL, NULL, "expected 'key = value', a [section] or a comment");
        str[0] = '\n';
        str[1] = '\0';
        return str;
    }
    return str;
}

static void add_entry(struct parse_ctx *c, const char *section, const char *key, const char *value,
                      int line, bool from_set)
{
    if (c->nentries == c->cap) {
        c->cap = c->cap ? c->cap * 2 : 32;
        c->entries = xrealloc(c->entries, c->cap * sizeof(*c->entries));
    }
    char folded[256];
    fold_section(section, folded, sizeof(folded));
    struct raw_entry *e = &c->entries[c->nentries++];
    memset(e, 0, sizeof(*e));
    e->section = xstrdup(folded);
    e->key = xstrdup(key);
    e->value = xstrdup(value);
    e->line = line;
    e->from_set = from_set;
}

static int config_handler(void *user, const char *section, const char *name, const char *value)
{
    struct parse_ctx *c = user;
    if (section[0] == '\0') {
        add_error(c, c->lineno, false, NULL, name, "key outside of any [section]");
        return 1;
    }
    add_entry(c, section, name, value, c->lineno, false);
    return 1;
}

int config_parse_duration(const char *s, int64_t *ms)
{
    char *end;
    errno = 0;
    if (!isdigit((unsigned char)*s)) return -HERALD_EINVAL;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno) return -HERALD_EINVAL;
    int64_t mult;
    if (*end == '\0' || strcmp(end, "s") == 0) mult = 1000;
    else if (strcmp(end, "ms") == 0) mult = 1;
    else if (strcmp(end, "m") == 0) mult = 60 * 1000;
    else if (strcmp(end, "h") == 0) mult = 3600 * 1000;
    else if (strcmp(end, "d") == 0) mult = 86400 * 1000;
    else return -HERALD_EINVAL;
    if (v > (unsigned long long)(INT64_MAX / mult)) return -HERALD_EINVAL;
    *ms = (int64_t)v * mult;
    return 0;
}

int config_parse_size(const char *s, int64_t *bytes)
{
    char *end;
    if (!isdigit((unsigned char)*s)) return -HERALD_EINVAL;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno) return -HERALD_EINVAL;
    unsigned long long mult = 1;
    if (strcmp(end, "k") == 0 || strcmp(end, "K") == 0) mult = 1024;
    else if (strcmp(end, "m") == 0 || strcmp(end, "M") == 0) mult = 1024 * 1024;
    else if (*end) return -HERALD_EINVAL;
    if (v > (unsigned long long)INT64_MAX / mult) return -HERALD_EINVAL;
    *bytes = (int64_t)(v * mult);
    return 0;
}

/* One of CONFIG_LISTENER_KEYS in [admin] or [public]: 1 when key is one
 * (0 set, or -1 with err), 0 when it is not. */
static int set_listener_key(struct config_listener *l, const char *key, const char *value, int *rc, char *err,
                            size_t errlen)
{
    int64_t n;
    *rc = 0;
    if (strcmp(key, "max_connections") == 0 || strcmp(key, "max_connections_per_client") == 0) {
        char *end;
        errno = 0;
        long long v = strtoll(value, &end, 10);
        if (!isdigit((unsigned char)*value) || errno || *end || v < 1 || v > 100000) {
            herald_seterr(err, errlen, "expected a whole number from 1 to 100000");
            *rc = -1;
        } else if (strcmp(key, "max_connections") == 0) {
            l->max_connections = v;
        } else {
            l->max_connections_per_client = v;
        }
        return 1;
    }
    if (strcmp(key, "header_timeout") == 0 || strcmp(key, "body_timeout") == 0 || strcmp(key, "idle_timeout") == 0) {
        if (config_parse_duration(value, &n) < 0 || n < 100 || n > 3600 * 1000) {
            herald_seterr(err, errlen, "expected a duration from 100ms to 1h, e.g. 30s");
            *rc = -1;
        } else {
            *(key[0] == 'h' ? &l->header_timeout_ms : key[0] == 'b' ? &l->body_timeout_ms : &l->idle_timeout_ms) = n;
        }
        return 1;
    }
    if (strcmp(key, "max_header_size") == 0 || strcmp(key, "max_body_size") == 0) {
        bool body = strcmp(key, "max_body_size") == 0;
        int64_t hi = body ? 64 * 1024 * 1024 : 1024 * 1024;
        if (config_parse_size(value, &n) < 0 || n < 1024 || n > hi) {
            herald_seterr(err, errlen, "expected a size from 1k to %s, e.g. %s", body ? "64m" : "1m", body ? "64k" : "16k");
            *rc = -1;
        } else {
            *(body ? &l->max_body_bytes : &l->max_header_bytes) = n;
        }
        return 1;
    }
    return 0;
}

static int parse_port(const char *s, int *port)
{
    char *end;
    if (!isdigit((unsigned char)*s)) return -1;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || *end || v < 0 || v > 65535) return -1;
    *port = (int)v;
    return 0;
}

int config_parse_listen(const char *s, char **host, int *port, char *err, size_t errlen)
{
    const char *colon;
    char h[256];
    if (s[0] == '[') {
        const char *close = strchr(s, ']');
        if (!close || close[1] != ':') {
            herald_seterr(err, errlen, "expected [ipv6]:port");
            return -HERALD_EINVAL;
        }
        snprintf(h, sizeof(h), "%.*s", (int)(close - s - 1), s + 1);
        colon = close + 1;
    } else {
        colon = strrchr(s, ':');
        if (!colon || colon == s) {
            herald_seterr(err, errlen, "expected host:port, e.g. 127.0.0.1:8025");
            return -HERALD_EINVAL;
        }
        snprintf(h, sizeof(h), "%.*s", (int)(colon - s), s);
    }
    if (parse_port(colon + 1, port) < 0) {
        herald_seterr(err, errlen, "port must be a number from 0 to 65535");
        return -HERALD_EINVAL;
    }
    *host = xstrdup(h);
    return 0;
}


static int parse_db(const char *s, int *db)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (!isdigit((unsigned char)*s) || errno || *end || v < 0 || v > 15) return -1;
    *db = (int)v;
    return 0;
}

void config_redis_url_free(struct config_redis_url *u)
{
    free(u->host);
    free(u->socket);
    free(u->user);
    free(u->password);
    memset(u, 0, sizeof(*u));
}

int config_parse_redis_url(const char *s, struct config_redis_url *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof(*out));
    out->port = 6379;
    const char *p;
    bool unix_sock = false;
    if (strncmp(s, "redis://", 8) == 0) {
        p = s + 8;
    } else if (strncmp(s, "unix://", 7) == 0) {
        p = s + 7;
        unix_sock = true;
    } else if (strncmp(s, "rediss://", 9) == 0) {
        herald_seterr(err, errlen, "rediss:// (TLS) is not supported: use redis:// or unix://");
        return -HERALD_EINVAL;
    } else {
        herald_seterr(err, errlen,
                      "must start with redis:// or unix:// (redis://[[user]:password@]host[:port][/db], "
                      "unix:///path/to/redis.sock[?db=N])");
        return -HERALD_EINVAL;
    }
    /* The credentials end at the last '@': neither a host nor a path has one. */
    const char *at = strrchr(p, '@');
    if (at) {
        /* user@ alone: the password comes from [redis] password(_file). */
        const char *colon = memchr(p, ':', (size_t)(at - p));
        const char *uend = colon ? colon : at;
        if (uend > p && !(out->user = herald_pct_decode(p, (size_t)(uend - p)))) {
            herald_seterr(err, errlen, "the user name has a bad %%-escape");
            goto fail;
        }
        if (!colon && !out->user) {
            herald_seterr(err, errlen, "nothing before '@': write user@, user:password@ or :password@");
            goto fail;
        }
        if (colon && !(out->password = herald_pct_decode(colon + 1, (size_t)(at - colon - 1)))) {
            herald_seterr(err, errlen, "the password has a bad %%-escape");
            goto fail;
        }
        if (colon && !out->password[0]) {
            herald_seterr(err, errlen, "the password after ':' is empty");
            goto fail;
        }
        p = at + 1;
    }
    if (unix_sock) {
        if (*p != '/') {
            herald_seterr(err, errlen, "expected an absolute socket path: unix:///path/to/redis.sock");
            goto fail;
        }
        const char *q = strchr(p, '?');
        size_t n = q ? (size_t)(q - p) : strlen(p);
        if (n >= 108) { /* sizeof(sun_path) */
            herald_seterr(err, errlen, "the socket path is longer than 107 bytes");
            goto fail;
        }
        out->socket = xstrndup(p, n);
        if (q && (strncmp(q, "?db=", 4) != 0 || parse_db(q + 4, &out->db) < 0)) {
            herald_seterr(err, errlen, "after the socket path only ?db=N (0 to 15) is allowed");
            goto fail;
        }
        out->port = 0;
        return 0;
    }
    const char *slash = strchr(p, '/');
    size_t hostport_len = slash ? (size_t)(slash - p) : strlen(p);
    char hp[256];
    if (hostport_len == 0 || hostport_len >= sizeof(hp)) {
        herald_seterr(err, errlen, "missing host");
        goto fail;
    }
    memcpy(hp, p, hostport_len);
    hp[hostport_len] = '\0';
    char *h = hp, *colon;
    if (hp[0] == '[') { /* [v6]:port */
        char *close = strchr(hp, ']');
        if (!close || (close[1] && close[1] != ':')) {
            herald_seterr(err, errlen, "expected [ipv6] or [ipv6]:port");
            goto fail;
        }
        *close = '\0';
        h = hp + 1;
        colon = close[1] == ':' ? close + 1 : NULL;
    } else {
        colon = strrchr(hp, ':');
        if (colon) *colon = '\0';
    }
    if (colon && (parse_port(colon + 1, &out->port) < 0 || out->port == 0)) {
        herald_seterr(err, errlen, "port must be a number from 1 to 65535");
        goto fail;
    }
    if (h[0] == '\0') {
        herald_seterr(err, errlen, "missing host");
        goto fail;
    }
    if (slash && slash[1] && parse_db(slash + 1, &out->db) < 0) {
        herald_seterr(err, errlen, "database must be a number from 0 to 15");
        goto fail;
    }
    out->host = xstrdup(h);
    return 0;
fail:
    config_redis_url_free(out);
    return -HERALD_EINVAL;
}

const char *config_redis_where(const struct config *cfg, char *buf, size_t len)
{
    if (cfg->redis_cluster && cfg->redis_cluster[0]) snprintf(buf, len, "cluster %s", cfg->redis_cluster);
    else if (cfg->redis_socket) snprintf(buf, len, "unix:%s", cfg->redis_socket);
    else snprintf(buf, len, "%s:%d", cfg->redis_host ? cfg->redis_host : "?", cfg->redis_port);
    return buf;
}

char *config_resolve_path(const struct config *cfg, const char *path)
{
    if (path[0] == '/' || !cfg->dir) return xstrdup(path);
    struct strbuf sb;
    strbuf_init(&sb);
    strbuf_addf(&sb, "%s/%s", cfg->dir, path);
    return strbuf_detach(&sb, NULL);
}

static bool prefix_valid(const char *s)
{
    size_t n = 0;
    for (; s[n]; n++)
        if (!(isalnum((unsigned char)s[n]) || s[n] == '_' || s[n] == '-' || s[n] == '.')) return false;
    return n > 0 && n <= 64;
}

/* Sets one fixed-section field from its text. Returns 0 or writes err. */
/* A catalogue's name: a letter, then letters, digits, '-' or '_' (1..35). */
static bool locale_tag_valid(const char *s)
{
    size_t len = strlen(s);
    if (len == 0 || len > 35 || !isalpha((unsigned char)s[0])) return false;
    for (const char *q = s; *q; q++)
        if (!isalnum((unsigned char)*q) && *q != '-' && *q != '_') return false;
    return true;
}

static int set_fixed(struct config *cfg, const char *section, const char *key, const char *value,
                     char *err, size_t errlen)
{
    int64_t n;
    char *end;
    int lrc;
#define MATCH(s, k) (strcmp(section, s) == 0 && strcmp(key, k) == 0)
    if ((strcmp(section, "admin") == 0 || strcmp(section, "public") == 0) &&
        set_listener_key(section[0] == 'a' ? &cfg->admin_http : &cfg->public_http, key, value, &lrc, err, errlen))
        return lrc;
    if (MATCH("public", "listen")) {
        free(cfg->public_listen);
        free(cfg->public_host);
        cfg->public_listen = cfg->public_host = NULL;
        if (!*value) return 0; /* the admin listener serves the public routes */
        char *h = NULL;
        int port;
        if (config_parse_listen(value, &h, &port, err, errlen) < 0) return -1;
        cfg->public_listen = xstrdup(value);
        cfg->public_host = h;
        cfg->public_port = port;
        return 0;
    }
    if (MATCH("daemon", "plugin_dir")) {
        if (!*value) goto empty;
        free(cfg->plugin_dir);
        cfg->plugin_dir = config_resolve_path(cfg, value);
    } else if (MATCH("daemon", "locales_dir")) {
        if (!*value) goto empty;
        free(cfg->locales_dir);
        cfg->locales_dir = config_resolve_path(cfg, value);
    } else if (MATCH("public", "organisation") || MATCH("public", "contact")) {
        if (strlen(value) > 200) {
            herald_seterr(err, errlen, "at most 200 characters");
            return -1;
        }
        char **dst = key[0] == 'o' ? &cfg->organisation : &cfg->contact;
        free(*dst);
        *dst = xstrdup(value);
    } else if (MATCH("public", "privacy_url")) {
        if (*value && strncmp(value, "https://", 8) != 0 && strncmp(value, "http://", 7) != 0) {
            herald_seterr(err, errlen, "must start with https:// (or http://), or be empty");
            return -1;
        }
        free(cfg->privacy_url);
        cfg->privacy_url = xstrdup(value);
    } else if (MATCH("public", "default_locale")) {
        if (!locale_tag_valid(value)) {
            herald_seterr(err, errlen, "expected a language tag such as en, de or pt-BR (the name of a catalogue "
                                       "in locales_dir without .po)");
            return -1;
        }
        free(cfg->default_locale);
        cfg->default_locale = xstrdup(value);
    } else if (MATCH("daemon", "log_level")) {
        int l = log_level_from_name(value);
        if (l < 0) {
            herald_seterr(err, errlen, "must be debug, info, warn or error");
            return -1;
        }
        cfg->log_level = l;
    } else if (MATCH("admin", "link_ttl")) {
        if (config_parse_duration(value, &n) < 0 || n < 3600 * 1000LL || n > 400 * 86400 * 1000LL) {
            herald_seterr(err, errlen, "expected a duration from 1h to 400d, e.g. 60d");
            return -1;
        }
        cfg->link_ttl_ms = n;
    } else if (MATCH("retention", "grace") || MATCH("retention", "campaign_records") ||
               MATCH("retention", "sweep_every")) {
        bool grace = strcmp(key, "grace") == 0, sweep = strcmp(key, "sweep_every") == 0;
        int64_t lo = grace ? 0 : 1000, hi = sweep ? 86400 * 1000LL : 3660 * 86400 * 1000LL;
        if (config_parse_duration(value, &n) < 0 || n < lo || n > hi) {
            herald_seterr(err, errlen, sweep ? "expected a duration from 1s to 1d, e.g. 1h"
                                      : grace ? "expected a duration up to 3660d, e.g. 1d (0s: none)"
                                              : "expected a duration from 1s to 3660d, e.g. 90d");
            return -1;
        }
        if (grace) cfg->retention_grace_ms = n;
        else if (sweep) cfg->retention_sweep_ms = n;
        else cfg->retention_records_ms = n;
    } else if (MATCH("retention", "history")) {
        errno = 0;
        long long v = strtoll(value, &end, 10);
        if (!isdigit((unsigned char)*value) || errno || *end || v < 1 || v > 100) {
            herald_seterr(err, errlen, "expected a whole number from 1 to 100"); /* STORE_HISTORY_MAX, what the API reads */
            return -1;
        }
        cfg->retention_history = v;
    } else if (MATCH("daemon", "drain_timeout") || MATCH("daemon", "claim_idle") ||
               MATCH("consent", "max_age")) {
        if (MATCH("consent", "max_age") && !*value) {
            cfg->consent_max_age_ms = 0;
            return 0;
        }
        if (config_parse_duration(value, &n) < 0) {
            herald_seterr(err, errlen, "expected a duration such as 500ms, 10s, 5m, 2h or 1d");
            return -1;
        }
        if (strcmp(key, "drain_timeout") == 0) cfg->drain_timeout_ms = n;
        else if (strcmp(key, "claim_idle") == 0) cfg->claim_idle_ms = n;
        else cfg->consent_max_age_ms = n;
    } else if (MATCH("retention", "inactive_people")) {
        if (!*value) {
            cfg->retention_inactive_ms = 0; /* never */
            return 0;
        }
        if (config_parse_duration(value, &n) < 0 || n < 1000 || n > 3650 * 86400 * 1000LL) {
            herald_seterr(err, errlen, "expected a duration from 1s to 3650d, e.g. 730d, or nothing (never)");
            return -1;
        }
        cfg->retention_inactive_ms = n;
    } else if (MATCH("privacy", "index_key_file")) {
        free(cfg->index_key_file);
        cfg->index_key_file = *value ? config_resolve_path(cfg, value) : NULL;
    } else if (MATCH("retention", "audit") || MATCH("retention", "dead_letters")) {
        int64_t *to = strcmp(key, "audit") == 0 ? &cfg->retention_audit_ms : &cfg->retention_dead_letters_ms;
        if (!*value) {
            *to = 0; /* no age limit */
            return 0;
        }
        if (config_parse_duration(value, &n) < 0 || n < 60 * 1000LL || n > 3650 * 86400 * 1000LL) {
            herald_seterr(err, errlen, "expected a duration from 1m to 3650d, e.g. 30d, or nothing (no age limit)");
            return -1;
        }
        *to = n;
    } else if (MATCH("daemon", "default_tz")) {
        /* Only the name's shape here; plugin-like loading checks it exists. */
        bool ok = *value && strlen(value) <= 64 && value[0] != '/' && !strstr(value, "..");
        for (const char *q = value; ok && *q; q++)
            if (!(isalnum((unsigned char)*q) || strchr("_+-/", *q))) ok = false;
        if (!ok) {
            herald_seterr(err, errlen, "expected an IANA time zone name such as Europe/Berlin or UTC");
            return -1;
        }
        free(cfg->default_tz);
        cfg->default_tz = xstrdup(value);
    } else if (strcmp(section, "quiet_hours") == 0 && herald_channel_from_name(key) >= 0) {
        int ch = herald_channel_from_name(key), s = -1, e = -1;
        if (*value && profile_quiet_hours_parse(value, &s, &e) < 0) {
            herald_seterr(err, errlen, "expected HH:MM-HH:MM, e.g. 21:00-08:00 (start and end differ)");
            return -1;
        }
        cfg->quiet_start_min[ch] = s;
        cfg->quiet_end_min[ch] = e;
        free(cfg->quiet[ch]);
        cfg->quiet[ch] = xstrdup(value);
    } else if (MATCH("daemon", "consumer")) {
        if (*value && !herald_id_valid(value)) {
            herald_seterr(err, errlen, "use 1..128 of " HERALD_ID_CHARS);
            return -1;
        }
        free(cfg->consumer);
        cfg->consumer = xstrdup(value);
    } else if (MATCH("daemon", "slice")) {
        errno = 0;
        long long v = strtoll(value, &end, 10);
        if (!isdigit((unsigned char)*value) || errno || *end || (v != 0 && (v < 10 || v > 10000))) {
            herald_seterr(err, errlen, "expected 0 (never) or a whole number from 10 to 10000");
            return -1;
        }
        cfg->slice = v;
    } else if (MATCH("daemon", "batch") || MATCH("daemon", "max_in_flight") || MATCH("daemon", "max_jobs") ||
               MATCH("redis", "audit_maxlen")) {
        int64_t lo = 1, hi = strcmp(key, "batch") == 0           ? 10000
                             : strcmp(key, "max_in_flight") == 0 ? 100000
                             : strcmp(key, "max_jobs") == 0      ? 64
                                                                 : INT64_MAX / 2;
        if (strcmp(key, "audit_maxlen") == 0) lo = 1000;
        errno = 0;
        long long v = strtoll(value, &end, 10);
        if (!isdigit((unsigned char)*value) || errno || *end || v < lo || v > hi) {
            herald_seterr(err, errlen, "expected a whole number from %lld to %lld", (long long)lo,
                          (long long)hi);
            return -1;
        }
        if (strcmp(key, "batch") == 0) cfg->batch = v;
        else if (strcmp(key, "max_in_flight") == 0) cfg->max_in_flight = v;
        else if (strcmp(key, "max_jobs") == 0) cfg->max_jobs = v;
        else cfg->audit_maxlen = v;
    } else if (MATCH("redis", "url")) {
        struct config_redis_url u;
        if (config_parse_redis_url(value, &u, err, errlen) < 0) return -1;
        free(cfg->redis_url);
        free(cfg->redis_host);
        free(cfg->redis_socket);
        free(cfg->redis_user);
        free(cfg->redis_password);
        cfg->redis_url = xstrdup(value);
        cfg->redis_host = u.host;
        cfg->redis_port = u.port;
        cfg->redis_socket = u.socket;
        cfg->redis_db = u.db;
        cfg->redis_user = u.user;
        cfg->redis_password = u.password;
    } else if (MATCH("redis", "user")) {
        for (const char *q = value; *q; q++)
            if ((unsigned char)*q <= ' ' || *q == 0x7f) {
                herald_seterr(err, errlen, "a user name has no spaces or control characters");
                return -1;
            }
        free(cfg->redis_user_key);
        cfg->redis_user_key = xstrdup(value);
    } else if (MATCH("redis", "cluster")) {
        struct rcluster_addr seeds[RCLUSTER_MAX_MASTERS];
        size_t nseeds;
        if (*value && rcluster_parse_seeds(value, seeds, RCLUSTER_MAX_MASTERS, &nseeds, err, errlen) < 0) return -1;
        free(cfg->redis_cluster);
        cfg->redis_cluster = xstrdup(value);
    } else if (MATCH("redis", "wait_replicas")) {
        errno = 0;
        long long v = strtoll(value, &end, 10);
        if (*value && (!isdigit((unsigned char)*value) || errno || *end || v > 8)) {
            herald_seterr(err, errlen, "expected a whole number from 0 to 8, or nothing (1 on a cluster, 0 else)");
            return -1;
        }
        cfg->wait_replicas = *value ? (int)v : -1;
    } else if (MATCH("redis", "wait_timeout")) {
        /* WAIT's 0 is "forever"; past 5s rconn's 10 s watchdog could drop a
         * connection whose WAIT is still under way. */
        if (config_parse_duration(value, &n) < 0 || n < 10 || n > 5000) {
            herald_seterr(err, errlen, "expected a duration from 10ms to 5s, e.g. 2s");
            return -1;
        }
        cfg->wait_timeout_ms = n;
    } else if (MATCH("redis", "password")) {
        free(cfg->redis_password_key);
        cfg->redis_password_key = xstrdup(value); /* joined with the url's in validate() */
    } else if (MATCH("daemon", "log_format")) {
        int f = log_format_from_name(value);
        if (f < 0) {
            herald_seterr(err, errlen, "must be text or json");
            return -1;
        }
        cfg->log_format = f;
    } else if (MATCH("redis", "prefix")) {
        if (!prefix_valid(value)) {
            herald_seterr(err, errlen, "use 1..64 of A-Z a-z 0-9 _ - .");
            return -1;
        }
        free(cfg->prefix);
        cfg->prefix = xstrdup(value);
    } else if (MATCH("admin", "listen")) {
        char *h = NULL;
        int port;
        if (config_parse_listen(value, &h, &port, err, errlen) < 0) return -1;
        free(cfg->listen);
        free(cfg->listen_host);
        cfg->listen = xstrdup(value);
        cfg->listen_host = h;
        cfg->listen_port = port;
    } else if (MATCH("admin", "token") || MATCH("admin", "link_secret")) {
        if (strlen(value) < 16) {
            herald_seterr(err, errlen, "must be at least 16 characters (use a long random string)");
            return -1;
        }
        char **dst = strcmp(key, "token") == 0 ? &cfg->token : &cfg->link_secret;
        free(*dst);
        *dst = xstrdup(value);
    } else if (MATCH("privacy", "key_file")) {
        /* Read at every load, so a reload re-reads it; a file that cannot
         * be read fails the load, and a reload then keeps the old keys. */
        free(cfg->privacy_key_file);
        cfg->privacy_key_file = NULL;
        if (cfg->keys) seal_keys_free(cfg->keys);
        free(cfg->keys);
        cfg->keys = NULL;
        if (!*value) return 0;
        cfg->privacy_key_file = config_resolve_path(cfg, value);
        struct seal_keys *k = xcalloc(1, sizeof(*k));
        if (seal_keys_load(cfg->privacy_key_file, k, err, errlen) < 0) {
            free(k);
            return -1;
        }
        cfg->keys = k;
    } else if (MATCH("admin", "tombstone_secret")) {
        /* Empty is allowed: tombstones are then keyed with link_secret. */
        if (*value && strlen(value) < 16) {
            herald_seterr(err, errlen, "must be at least 16 characters (use a long random string), or empty");
            return -1;
        }
        free(cfg->tombstone_secret);
        cfg->tombstone_secret = xstrdup(value);
    } else if (MATCH("events", "url")) {
        if (*value && strncmp(value, "https://", 8) != 0 && strncmp(value, "http://", 7) != 0) {
            herald_seterr(err, errlen, "must start with https:// or http://, or be empty");
            return -1;
        }
        free(cfg->events_url);
        cfg->events_url = xstrdup(value);
    } else if (MATCH("events", "secret")) {
        if (*value && strlen(value) < 16) {
            herald_seterr(err, errlen, "must be at least 16 characters (use a long random string)");
            return -1;
        }
        free(cfg->events_secret);
        cfg->events_secret = xstrdup(value);
    } else if (MATCH("public", "public_url")) {
        if (*value && strncmp(value, "https://", 8) != 0 && strncmp(value, "http://", 7) != 0) {
            herald_seterr(err, errlen, "must start with https:// (or http:// for local tests)");
            return -1;
        }
        free(cfg->public_url);
        size_t len = strlen(value);
        while (len && value[len - 1] == '/') len--; /* links append "/u/..." */
        cfg->public_url = xstrndup(value, len);
    } else {
        herald_seterr(err, errlen, "unknown key");
        return -1;
    }
    return 0;
#undef MATCH
empty:
    herald_seterr(err, errlen, "must not be empty");
    return -1;
}

static const struct config_key_info *schema_find(const char *section, const char *key)
{
    for (const struct config_key_info *k = config_schema; k->section; k++)
        if (strcmp(k->section, section) == 0 && strcmp(k->key, key) == 0) return k;
    return NULL;
}

bool config_key_is_secret(const char *section, const char *key)
{
    if (strncmp(section, "provider ", 9) == 0) {
#define X(k) if (strcmp(key, k) == 0) return true;
        CONFIG_PROVIDER_SECRETS(X)
#undef X
        return false;
    }
    const struct config_key_info *k = schema_find(section, key);
    return k && k->type == CONFIG_SECRET;
}

bool config_key_needs_restart(const char *section, const char *key)
{
#define X(sec, k) if (strcmp(section, sec) == 0 && strcmp(key, k) == 0) return true;
    CONFIG_RESTART_KEYS(X)
#undef X
    return false;
}

static bool str_differs(const char *a, const char *b)
{
    return strcmp(a ? a : "", b ? b : "") != 0;
}

/* The value of a restart-only key, as config_load() left it. */
static const char *restart_value(const struct config *c, const char *section, const char *key)
{
    if (strcmp(key, "plugin_dir") == 0) return c->plugin_dir;
    if (strcmp(key, "consumer") == 0) return c->consumer;
    if (strcmp(key, "url") == 0) return c->redis_url;
    if (strcmp(key, "password") == 0) return c->redis_password; /* the url's or [redis] password */
    if (strcmp(key, "prefix") == 0) return c->prefix;
    if (strcmp(key, "cluster") == 0) return c->redis_cluster;
    if (strcmp(key, "user") == 0) return c->redis_user; /* the url's or [redis] user */
    (void)section;
    return NULL;
}

int config_restart_changes(const struct config *running, const struct config *next, struct strbuf *names)
{
    int n = 0;
#define X(sec, k)                                                                                  \
    if (str_differs(restart_value(running, sec, k), restart_value(next, sec, k)))                 \
        strbuf_addf(names, "%s[%s] %s", n++ ? ", " : "", sec, k);
    CONFIG_RESTART_KEYS(X)
#undef X
    if (!running->public_listen != !next->public_listen)
        strbuf_addf(names, "%s[public] listen (set or emptied)", n++ ? ", " : "");
    /* Every index member in Redis is keyed with it: heraldctl migrate only. */
    if (memcmp(running->index_key, next->index_key, sizeof(next->index_key)) != 0)
        strbuf_addf(names, "%sthe index key ([privacy] index_key_file)", n++ ? ", " : "");
    return n;
}

void config_keep_fixed(struct config *next, struct config *running)
{
#define SWAP(f)                                                                                    \
    do {                                                                                           \
        char *t = next->f;                                                                         \
        next->f = running->f;                                                                      \
        running->f = t;                                                                            \
    } while (0)
    SWAP(plugin_dir);
    SWAP(consumer);
    SWAP(redis_url);
    SWAP(redis_host);
    SWAP(redis_socket);
    SWAP(redis_user);
    SWAP(redis_password);
    SWAP(redis_password_key);
    SWAP(redis_cluster);
    SWAP(redis_user_key);
    SWAP(prefix);
#undef SWAP
}

static bool is_fixed_section(const char *s)
{
    return strcmp(s, "daemon") == 0 || strcmp(s, "redis") == 0 || strcmp(s, "admin") == 0 || strcmp(s, "public") == 0 ||
           strcmp(s, "consent") == 0 || strcmp(s, "quiet_hours") == 0 || strcmp(s, "retention") == 0 ||
           strcmp(s, "events") == 0 || strcmp(s, "privacy") == 0;
}

/* "channel email" -> channel index, "provider x" -> 'p'; otherwise -1. */
enum section_kind { SEC_UNKNOWN, SEC_FIXED, SEC_CHANNEL, SEC_PROVIDER, SEC_CAP, SEC_TOPIC, SEC_TERMS };

static enum section_kind classify(const char *s, const char **arg)
{
    if (is_fixed_section(s)) return SEC_FIXED;
    if (strncmp(s, "channel ", 8) == 0) {
        *arg = s + 8;
        return SEC_CHANNEL;
    }
    if (strncmp(s, "provider ", 9) == 0) {
        *arg = s + 9;
        return SEC_PROVIDER;
    }
    if (strncmp(s, "cap ", 4) == 0) {
        *arg = s + 4;
        return SEC_CAP;
    }
    if (strncmp(s, "topic ", 6) == 0) {
        *arg = s + 6;
        return SEC_TOPIC;
    }
    if (strncmp(s, "terms ", 6) == 0) {
        *arg = s + 6;
        return SEC_TERMS;
    }
    return SEC_UNKNOWN;
}

static struct config_provider *provider_get(struct config *cfg, const char *name, int line)
{
    for (size_t i = 0; i < cfg->nproviders; i++)
        if (strcmp(cfg->providers[i].name, name) == 0) return &cfg->providers[i];
    cfg->providers = xrealloc(cfg->providers, (cfg->nproviders + 1) * sizeof(*cfg->providers));
    struct config_provider *p = &cfg->providers[cfg->nproviders++];
    memset(p, 0, sizeof(*p));
    p->name = xstrdup(name);
    p->line = line;
    p->concurrency = CONFIG_PROVIDER_CONCURRENCY;
    p->lookahead = -1; /* the concurrency, whatever it is set to */
    p->rate = 0;
    p->timeout_ms = CONFIG_PROVIDER_TIMEOUT_MS;
    p->retries = CONFIG_PROVIDER_RETRIES;
    p->circuit_failures = CONFIG_PROVIDER_CIRCUIT_FAILURES;
    p->circuit_cooldown_ms = CONFIG_PROVIDER_CIRCUIT_COOLDOWN_MS;
    p->give_up_after_ms = CONFIG_PROVIDER_GIVE_UP_AFTER_MS;
    p->shared = true;
    return p;
}

int config_parse_rate(const char *s, double *per_s)
{
    char *end;
    if (!isdigit((unsigned char)*s)) return -HERALD_EINVAL;
    errno = 0;
    unsigned long long n = strtoull(s, &end, 10);
    if (errno || n < 1 || n > 1000000) return -HERALD_EINVAL;
    double period;
    if (strcmp(end, "/s") == 0) period = 1;
    else if (strcmp(end, "/m") == 0) period = 60;
    else if (strcmp(end, "/h") == 0) period = 3600;
    else return -HERALD_EINVAL;
    *per_s = (double)n / period;
    return 0;
}

/* The keys of [provider NAME] that the daemon keeps for itself (dispatch
 * limits). 1 when key is one of them (err set on a bad value), 0 when the
 * key belongs to the plugin. */
static int provider_daemon_key(struct config_provider *p, const char *key, const char *value, bool *bad,
                               char *err, size_t errlen)
{
    *bad = false;
    /* The whole-number keys and their ranges. */
    static const struct {
        const char *key;
        size_t off;
        long long lo, hi;
    } ints[] = {
        {"concurrency", offsetof(struct config_provider, concurrency), 1, 1024},
        {"lookahead", offsetof(struct config_provider, lookahead), 0, 4096},
        {"retries", offsetof(struct config_provider, retries), 0, 10},
        {"circuit_failures", offsetof(struct config_provider, circuit_failures), 1, 1000},
    };
    for (size_t i = 0; i < sizeof(ints) / sizeof(ints[0]); i++) {
        if (strcmp(key, ints[i].key) != 0) continue;
        char *end;
        errno = 0;
        long long v = strtoll(value, &end, 10);
        if (!isdigit((unsigned char)*value) || errno || *end || v < ints[i].lo || v > ints[i].hi) {
            herald_seterr(err, errlen, "expected a whole number from %lld to %lld", ints[i].lo, ints[i].hi);
            *bad = true;
        } else {
            *(int *)(void *)((char *)p + ints[i].off) = (int)v;
        }
        return 1;
    }
    if (strcmp(key, "circuit_cooldown") == 0) {
        int64_t ms;
        if (config_parse_duration(value, &ms) < 0 || ms < 1000 || ms > 3600000) {
            herald_seterr(err, errlen, "expected a duration from 1s to 1h, e.g. 30s");
            *bad = true;
        } else {
            p->circuit_cooldown_ms = ms;
        }
        return 1;
    }
    if (strcmp(key, "give_up_after") == 0) {
        int64_t ms;
        if (config_parse_duration(value, &ms) < 0 || (ms != 0 && (ms < 1000 || ms > CONFIG_PROVIDER_GIVE_UP_AFTER_MAX_MS))) {
            herald_seterr(err, errlen, "expected 0 (until the campaign expires) or a duration from 1s to 30d, e.g. 1h");
            *bad = true;
        } else {
            p->give_up_after_ms = ms;
        }
        return 1;
    }
    if (strcmp(key, "feedback") == 0) {
        if (strcmp(value, "on") == 0 || strcmp(value, "off") == 0) {
            p->feedback = value[1] == 'n';
        } else {
            herald_seterr(err, errlen, "expected on or off");
            *bad = true;
        }
        return 1;
    }
    if (strcmp(key, "rate") == 0) {
        if (strcmp(value, "unlimited") == 0) {
            p->rate = 0;
        } else if (config_parse_rate(value, &p->rate) < 0) {
            herald_seterr(err, errlen, "expected N/s, N/m or N/h (N from 1 to 1000000) or unlimited");
            *bad = true;
        }
        return 1;
    }
    if (strcmp(key, "shared") == 0) {
        if (strcmp(value, "yes") == 0) {
            p->shared = true;
        } else if (strcmp(value, "no") == 0) {
            p->shared = false;
        } else {
            herald_seterr(err, errlen, "expected yes or no");
            *bad = true;
        }
        return 1;
    }
    if (strcmp(key, "timeout") == 0) {
        int64_t ms;
        if (config_parse_duration(value, &ms) < 0 || ms < 100 || ms > 600000) {
            herald_seterr(err, errlen, "expected a duration from 100ms to 10m, e.g. 10s");
            *bad = true;
        } else {
            p->timeout_ms = ms;
        }
        return 1;
    }
    return 0;
}

static struct config_cap *cap_get(struct config *cfg, const char *name, int line)
{
    for (size_t i = 0; i < cfg->ncaps; i++)
        if (strcmp(cfg->caps[i].name, name) == 0) return &cfg->caps[i];
    cfg->caps = xrealloc(cfg->caps, (cfg->ncaps + 1) * sizeof(*cfg->caps));
    struct config_cap *c = &cfg->caps[cfg->ncaps++];
    memset(c, 0, sizeof(*c));
    c->name = xstrdup(name);
    c->line = line;
    c->channel = -1;
    return c;
}

static void free_list(char **items, size_t n);
static int split_list(const char *value, char ***items, size_t *n);

/* ---- texts per language ([topic NAME], [terms CHANNEL]) ---------------- */

/* key is base ("name") or base.<locale> ("name.ko"): sets that text. 1
 * when key is one of base's, 0 when not, -1 with err on a bad one. */
static int texts_set(struct config_texts *t, const char *base, const char *key, const char *value, char *err,
                     size_t errlen)
{
    size_t bl = strlen(base);
    if (strncmp(key, base, bl) != 0 || (key[bl] && key[bl] != '.')) return 0;
    const char *loc = key[bl] ? key + bl + 1 : "";
    if (key[bl] && !locale_tag_valid(loc)) {
        herald_seterr(err, errlen, "expected %s or %s.<locale> (a language tag such as ko or pt-BR)", base, base);
        return -1;
    }
    if (!*value) {
        herald_seterr(err, errlen, "must not be empty");
        return -1;
    }
    for (size_t i = 0; i < t->n; i++)
        if (strcasecmp(t->v[i].locale, loc) == 0) {
            free(t->v[i].value);
            t->v[i].value = xstrdup(value);
            return 1;
        }
    t->v = xrealloc(t->v, (t->n + 1) * sizeof(*t->v));
    t->v[t->n].locale = xstrdup(loc);
    t->v[t->n].value = xstrdup(value);
    t->n++;
    return 1;
}

static void texts_free(struct config_texts *t)
{
    for (size_t i = 0; i < t->n; i++) {
        free(t->v[i].locale);
        free(t->v[i].value);
    }
    free(t->v);
    memset(t, 0, sizeof(*t));
}

static struct config_topic *topic_get(struct config *cfg, const char *name, int line)
{
    for (size_t i = 0; i < cfg->ntopics; i++)
        if (strcmp(cfg->topics[i].name, name) == 0) return &cfg->topics[i];
    cfg->topics = xrealloc(cfg->topics, (cfg->ntopics + 1) * sizeof(*cfg->topics));
    struct config_topic *t = &cfg->topics[cfg->ntopics++];
    memset(t, 0, sizeof(*t));
    t->name = xstrdup(name);
    t->line = line;
    return t;
}

static int topic_set(struct config_topic *t, const char *key, const char *value, char *err, size_t errlen)
{
    int rc = texts_set(&t->title, "name", key, value, err, errlen);
    if (rc == 0) rc = texts_set(&t->description, "description", key, value, err, errlen);
    if (rc == 0) {
        herald_seterr(err, errlen, "unknown key (expected name, name.<locale>, description, description.<locale>)");
        return -1;
    }
    return rc < 0 ? -1 : 0;
}

static int terms_set(struct config_terms *t, const char *key, const char *value, char *err, size_t errlen)
{
    if (strcmp(key, "version") == 0) {
        bool ok = *value && strlen(value) <= 128;
        for (const char *q = value; ok && *q; q++)
            ok = (unsigned char)*q >= 0x20 && *q != 0x7f;
        if (!ok) {
            herald_seterr(err, errlen, "expected the version of these terms (1..128 printable characters, e.g. 2026-03)");
            return -1;
        }
        free(t->version);
        t->version = xstrdup(value);
        return 0;
    }
    int rc = texts_set(&t->text, "text", key, value, err, errlen);
    if (rc == 0) {
        herald_seterr(err, errlen, "unknown key (expected version, text, text.<locale>)");
        return -1;
    }
    return rc < 0 ? -1 : 0;
}

/* One key of a [cap NAME] section. 0, or -1 with err. */
static int cap_set(struct config_cap *cap, const char *key, const char *value, char *err, size_t errlen)
{
    if (strcmp(key, "channel") == 0) {
        int ch = strcmp(value, "any") == 0 ? -1 : herald_channel_from_name(value);
        if (ch < 0 && strcmp(value, "any") != 0) {
            herald_seterr(err, errlen, "expected email, sms or any");
            return -1;
        }
        cap->channel = ch;
        cap->has_channel = true;
    } else if (strcmp(key, "limit") == 0) {
        char *end;
        errno = 0;
        long long v = strtoll(value, &end, 10);
        if (!isdigit((unsigned char)*value) || errno || *end || v < 1 || v > 1000000) {
            herald_seterr(err, errlen, "expected a whole number from 1 to 1000000");
            return -1;
        }
        cap->limit = v;
        cap->has_limit = true;
    } else if (strcmp(key, "window") == 0) {
        int64_t ms;
        if (config_parse_duration(value, &ms) < 0 || ms < 1000 || ms > 366LL * 86400 * 1000) {
            herald_seterr(err, errlen, "expected a duration from 1s to 366d, e.g. 24h or 7d");
            return -1;
        }
        cap->window_s = ms / 1000;
        cap->has_window = true;
    } else if (strcmp(key, "topics") == 0) {
        free_list(cap->topics, cap->ntopics);
        cap->topics = NULL;
        cap->ntopics = 0;
        if (split_list(value, &cap->topics, &cap->ntopics) < 0) {
            herald_seterr(err, errlen, "expected a comma-separated list of topics");
            return -1;
        }
        for (size_t i = 0; i < cap->ntopics; i++)
            for (char *q = cap->topics[i]; *q; q++) *q = (char)tolower((unsigned char)*q);
    } else {
        herald_seterr(err, errlen, "unknown key (expected channel, limit, window, topics)");
        return -1;
    }
    return 0;
}

static void provider_set(struct config_provider *p, const char *key, const char *value, int line)
{
    for (size_t i = 0; i < p->nsettings; i++) {
        if (strcmp(p->settings[i].key, key) == 0) {
            free((char *)p->settings[i].value);
            p->settings[i].value = xstrdup(value);
            p->setting_lines[i] = line;
            return;
        }
    }
    p->settings = xrealloc(p->settings, (p->nsettings + 1) * sizeof(*p->settings));
    p->setting_lines = xrealloc(p->setting_lines, (p->nsettings + 1) * sizeof(int));
    p->settings[p->nsettings].key = xstrdup(key);
    p->settings[p->nsettings].value = xstrdup(value);
    p->setting_lines[p->nsettings] = line;
    p->nsettings++;
}

/* Splits "a, b ,c" into trimmed items. Empty items are an error. */
static int split_list(const char *value, char ***items, size_t *n)
{
    char *copy = xstrdup(value);
    char *save = NULL;
    *items = NULL;
    *n = 0;
    int rc = 0;
    if (!*trim(copy)) rc = -1;
    for (char *tok = strtok_r(copy, ",", &save); tok && rc == 0; tok = strtok_r(NULL, ",", &save)) {
        char *t = trim(tok);
        if (!*t) {
            rc = -1;
            break;
        }
        *items = xrealloc(*items, (*n + 1) * sizeof(char *));
        (*items)[(*n)++] = xstrdup(t);
    }
    if (value[0] && value[strlen(value) - 1] == ',') rc = -1;
    free(copy);
    return rc;
}

static void free_list(char **items, size_t n)
{
    for (size_t i = 0; i < n; i++) free(items[i]);
    free(items);
}

/* Applies the nth --set override: "section.key=value". Its errors never
 * quote the argument: it may be a secret (--set admin.token...). */
static void apply_override(struct parse_ctx *c, const char *text, size_t nth)
{
    const char *eq = strchr(text, '=');
    char lhs[256];
    char *dot = NULL;
    if (eq && (size_t)(eq - text) < sizeof(lhs)) {
        snprintf(lhs, sizeof(lhs), "%.*s", (int)(eq - text), text);
        dot = strrchr(lhs, '.');
    }
    if (!dot || dot == lhs || !dot[1]) {
        add_error(c, 0, true, NULL, NULL,
                  "argument %zu is not SECTION.KEY=VALUE (e.g. --set redis.url=redis://127.0.0.1:6379/0)", nth);
        return;
    }
    *dot = '\0';
    char section[256];
    fold_section(trim(lhs), section, sizeof(section));
    char *key = trim(dot + 1);
    /* KEY and KEY_file are one setting: an override of either replaces the file's other form. */
    char other[160] = "";
    size_t klen = strlen(key);
    if (klen > 5 && strcmp(key + klen - 5, "_file") == 0) {
        snprintf(other, sizeof(other), "%.*s", (int)(klen - 5), key);
        if (!config_key_is_secret(section, other)) other[0] = '\0';
    } else if (config_key_is_secret(section, key)) {
        snprintf(other, sizeof(other), "%s_file", key);
    }
    for (size_t i = 0; other[0] && i < c->nentries; i++) {
        struct raw_entry *e = &c->entries[i];
        if (!e->from_set && strcmp(e->section, section) == 0 && strcmp(e->key, other) == 0) e->dropped = true;
    }
    /* An override replaces the file's entry, whichever line it was on. */
    for (size_t i = 0; i < c->nentries; i++) {
        struct raw_entry *e = &c->entries[i];
        if (strcmp(e->section, section) == 0 && strcmp(e->key, key) == 0) {
            free(e->value);
            e->value = xstrdup(eq + 1);
            e->from_set = true;
            e->line = 0;
            return;
        }
    }
    add_entry(c, section, key, eq + 1, 0, true);
}

static void set_defaults(struct config *cfg)
{
    char err[256];
    for (int ch = 0; ch < HERALD_CH_COUNT; ch++) cfg->quiet_start_min[ch] = cfg->quiet_end_min[ch] = -1;
    cfg->wait_replicas = -1;
    for (const struct config_key_info *k = config_schema; k->section; k++)
        if (k->def[0] || k->type == CONFIG_STRING || k->type == CONFIG_URL)
            set_fixed(cfg, k->section, k->key, k->def, err, sizeof(err));
}

static int section_line(const struct parse_ctx *c, const char *name)
{
    for (size_t i = 0; i < c->nsections; i++)
        if (strcmp(c->sections[i].name, name) == 0) return c->sections[i].line;
    return 0;
}

/* Edit distance (Levenshtein) of two short names, capped at 99. */
static int edit_distance(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    if (la > 64 || lb > 64) return 99;
    int row[65];
    for (size_t j = 0; j <= lb; j++) row[j] = (int)j;
    for (size_t i = 1; i <= la; i++) {
        int diag = row[0];
        row[0] = (int)i;
        for (size_t j = 1; j <= lb; j++) {
            int up = row[j];
            int best = diag + (a[i - 1] != b[j - 1]);
            if (up + 1 < best) best = up + 1;
            if (row[j - 1] + 1 < best) best = row[j - 1] + 1;
            row[j] = best;
            diag = up;
        }
    }
    return row[lb];
}

/* Keeps cand in best when it is closer to word than what best holds and
 * close enough to be a slip: at most a third of the word's letters (and at least 1). */
static void suggest(const char *word, const char *cand, char *best, size_t bestlen, int *bestd)
{
    int d = edit_distance(word, cand);
    int limit = (int)strlen(word) / 3;
    if (limit < 1) limit = 1;
    if (d > 0 && d <= limit && d < *bestd) {
        *bestd = d;
        snprintf(best, bestlen, "%s", cand);
    }
}

/* " (did you mean [x]?)" for a section name nobody knows, or "". */
static void suggest_section(const char *name, char *out, size_t outlen)
{
    static const char *const fixed[] = {"daemon", "redis",     "admin",    "public",
                                        "consent", "quiet_hours", "retention", "events", "privacy"};
    char best[300] = "", cand[300];
    int d = 99;
    for (size_t i = 0; i < sizeof(fixed) / sizeof(fixed[0]); i++) suggest(name, fixed[i], best, sizeof(best), &d);
    for (int ch = 0; ch < HERALD_CH_COUNT; ch++) {
        snprintf(cand, sizeof(cand), "channel %s", herald_channel_name(ch));
        suggest(name, cand, best, sizeof(best), &d);
    }
    const char *sp = strchr(name, ' '); /* "provder x" -> "provider x", "cpa daily" -> "cap daily" */
    if (sp && strlen(sp + 1) < 200) {
        static const char *const kinds[] = {"provider", "cap", "channel", "topic", "terms"};
        for (size_t i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++) {
            snprintf(cand, sizeof(cand), "%s%s", kinds[i], sp);
            suggest(name, cand, best, sizeof(best), &d);
        }
    }
    if (best[0]) snprintf(out, outlen, " (did you mean [%s]?)", best);
    else out[0] = '\0';
}

/* " (did you mean log_level?)", " (it belongs in [redis])" or "" for an
 * unknown key of a fixed section. */
static void suggest_key(const char *section, const char *key, char *out, size_t outlen)
{
    char best[160] = "", cand[160];
    int d = 99;
    out[0] = '\0';
    for (const struct config_key_info *k = config_schema; k->section; k++) {
        if (strcmp(k->section, section) == 0) {
            suggest(key, k->key, best, sizeof(best), &d);
            if (k->type == CONFIG_SECRET) {
                snprintf(cand, sizeof(cand), "%s_file", k->key);
                suggest(key, cand, best, sizeof(best), &d);
            }
        } else if (strcmp(k->key, key) == 0 && !best[0] && !out[0]) { /* the first section that has it */
            snprintf(out, outlen, " (it belongs in [%s])", k->section);
        }
    }
    if (best[0]) snprintf(out, outlen, " (did you mean %s?)", best);
}

/*
 * A file holding a secret must be no one else's to read, as ssh wants of
 * a private key: owned by root and readable by its group at most (0640),
 * as PostgreSQL accepts for its key (the package's root:herald 0640); or
 * owned by the user herald runs as, nothing for group and others (0600,
 * 0400). 0, or -1 with err.
 */
static int secret_mode_ok(const char *path, const struct stat *st, char *err, size_t errlen)
{
    unsigned mode = (unsigned)(st->st_mode & 07777);
    if (st->st_uid == 0) {
        if (!(mode & 037)) return 0;
        herald_seterr(err, errlen, "permissions %04o for '%s' are too open: it holds a secret, so others must have "
                      "no access and its group (it belongs to root) at most read (chmod 640 '%s')", mode, path, path);
        return -1;
    }
    if (st->st_uid == geteuid()) {
        if (!(mode & 077)) return 0;
        herald_seterr(err, errlen, "permissions %04o for '%s' are too open: it holds a secret, so group and others "
                      "must have no access (chmod 600 '%s')", mode, path, path);
        return -1;
    }
    herald_seterr(err, errlen, "'%s' holds a secret and belongs to uid %u: it must belong to the user herald runs "
                  "as (uid %u) or to root", path, (unsigned)st->st_uid, (unsigned)geteuid());
    return -1;
}

/* Reads a KEY_file: its content without one trailing newline. */
static int read_secret(const char *path, char **out, char *err, size_t errlen)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
    if (fd < 0) {
        herald_seterr(err, errlen, "cannot read '%s': %s", path, strerror(errno));
        return -1;
    }
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        herald_seterr(err, errlen, "'%s' is not a regular file", path);
        close(fd);
        return -1;
    }
    if (secret_mode_ok(path, &st, err, errlen) < 0) {
        close(fd);
        return -1;
    }
    char *buf = xmalloc(CONFIG_SECRET_MAX + 1);
    size_t n = 0;
    ssize_t r;
    while (n <= CONFIG_SECRET_MAX && (r = read(fd, buf + n, CONFIG_SECRET_MAX + 1 - n)) != 0) {
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) {
            herald_seterr(err, errlen, "cannot read '%s': %s", path, strerror(errno));
            goto fail;
        }
        n += (size_t)r;
    }
    close(fd);
    fd = -1;
    if (n > CONFIG_SECRET_MAX) {
        herald_seterr(err, errlen, "'%s' is larger than %d bytes", path, CONFIG_SECRET_MAX);
        goto fail;
    }
    if (n && buf[n - 1] == '\n') n--;
    if (n && buf[n - 1] == '\r') n--;
    buf[n] = '\0';
    if (strlen(buf) != n) {
        herald_seterr(err, errlen, "'%s' holds a NUL byte", path);
        goto fail;
    }
    if (memchr(buf, '\n', n)) {
        herald_seterr(err, errlen, "'%s' holds more than one line", path);
        goto fail;
    }
    *out = buf;
    return 0;
fail:
    if (fd >= 0) close(fd);
    free(buf);
    return -1;
}

/* [privacy] index_key_file: the index key (addrindex_key_parse), from a
 * file no one else may read (secret_mode_ok). */
static int read_index_key(const char *path, unsigned char key[ADDRINDEX_KEY_LEN], char *err, size_t errlen)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
    if (fd < 0) {
        herald_seterr(err, errlen, "cannot read '%s': %s", path, strerror(errno));
        return -1;
    }
    struct stat st;
    unsigned char buf[4 * ADDRINDEX_KEY_LEN];
    size_t n = 0;
    ssize_t r = 0;
    int rc = -1;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        herald_seterr(err, errlen, "'%s' is not a regular file", path);
    } else if (secret_mode_ok(path, &st, err, errlen) == 0) {
        while (n < sizeof(buf) && (r = read(fd, buf + n, sizeof(buf) - n)) != 0) {
            if (r < 0 && errno == EINTR) continue;
            if (r < 0) break;
            n += (size_t)r;
        }
        if (r < 0) {
            herald_seterr(err, errlen, "cannot read '%s': %s", path, strerror(errno));
        } else if (addrindex_key_parse(buf, n, key, err, errlen) == 0) {
            rc = 0;
        } else {
            char why[200];
            herald_copy(why, sizeof(why), err);
            herald_seterr(err, errlen, "'%s' %s", path, why);
        }
    }
    explicit_bzero(buf, sizeof(buf));
    close(fd);
    return rc;
}

/* KEY_file entries become KEY with the file's content, so that everything
 * after sees one form. Runs at every config_load: a reload re-reads them. */
static void read_secret_files(struct parse_ctx *c, struct config *cfg)
{
    char err[512];
    for (size_t i = 0; i < c->nentries; i++) {
        struct raw_entry *e = &c->entries[i];
        size_t klen = strlen(e->key);
        if (e->dropped || klen <= 5 || klen > 128 || strcmp(e->key + klen - 5, "_file") != 0) continue;
        char base[128];
        snprintf(base, sizeof(base), "%.*s", (int)(klen - 5), e->key);
        if (!config_key_is_secret(e->section, base)) continue; /* an unknown key, reported as such */
        bool both = false;
        for (size_t j = 0; j < c->nentries; j++) {
            struct raw_entry *f = &c->entries[j];
            if (!f->dropped && strcmp(f->section, e->section) == 0 && strcmp(f->key, base) == 0) {
                if (f->line)
                    add_error(c, e->line, e->from_set, e->section, e->key,
                              "give %s or %s, not both (%s is at line %d)", base, e->key, base, f->line);
                else
                    add_error(c, e->line, e->from_set, e->section, e->key,
                              "give %s or %s, not both (%s is given with --set)", base, e->key, base);
                both = true;
                break;
            }
        }
        if (both) {
            e->skip = true;
            continue;
        }
        char *path = config_resolve_path(cfg, e->value);
        char *content = NULL;
        if (!*e->value) {
            add_error(c, e->line, e->from_set, e->section, e->key, "must name a file");
            e->skip = true;
        } else if (read_secret(path, &content, err, sizeof(err)) < 0) {
            add_error(c, e->line, e->from_set, e->section, e->key, "%s", err);
            e->skip = true;
        } else {
            free(e->value);
            e->value = content;
            e->from_file = true;
        }
        free(path);
        free(e->key);
        e->key = xstrdup(base);
    }
}

/* A secret written in the file itself (not KEY_file, not --set): its line, or 0. */
static int clear_secret_line(const struct parse_ctx *c, const char **section, const char **key)
{
    for (size_t i = 0; i < c->nentries; i++) {
        const struct raw_entry *e = &c->entries[i];
        if (e->from_set || e->from_file || e->skip || e->dropped || !*e->value) continue;
        bool secret = config_key_is_secret(e->section, e->key);
        if (!secret && strcmp(e->section, "redis") == 0 && strcmp(e->key, "url") == 0) {
            struct config_redis_url u;
            char err[256];
            if (config_parse_redis_url(e->value, &u, err, sizeof(err)) == 0) {
                secret = u.password != NULL;
                config_redis_url_free(&u);
            }
        }
        if (secret) {
            *section = e->section;
            *key = e->key;
            return e->line;
        }
    }
    return 0;
}

/* The config file: never writable by others; holding a secret in clear,
 * no one else's to read (secret_mode_ok). Without secrets in clear (they
 * are all KEY_file) it may be world-readable, like any /etc file. */
static void check_file_mode(struct parse_ctx *c)
{
    char err[512];
    if (c->st.st_mode & S_IWOTH)
        add_error(c, 0, false, NULL, NULL, "permissions %04o for '%s': others may write it, so anyone could "
                  "change herald's configuration (chmod o-w '%s')", (unsigned)(c->st.st_mode & 07777), c->path,
                  c->path);
    const char *section = NULL, *key = NULL;
    int line = clear_secret_line(c, &section, &key);
    if (line && secret_mode_ok(c->path, &c->st, err, sizeof(err)) < 0)
        add_error(c, line, false, section, key, "%s; or give it as %s_file = PATH", err,
                  strcmp(key, "url") == 0 ? "password" : key);
}

/* The line of the last entry section.key (0 with from_set for --set, or none). */
static int entry_line(const struct parse_ctx *c, const char *section, const char *key, bool *from_set)
{
    int line = 0;
    *from_set = false;
    for (size_t i = 0; i < c->nentries; i++)
        if (!c->entries[i].dropped && strcmp(c->entries[i].section, section) == 0 &&
            strcmp(c->entries[i].key, key) == 0) {
            line = c->entries[i].line;
            *from_set = c->entries[i].from_set;
        }
    return line;
}

static void validate(struct parse_ctx *c, struct config *cfg)
{
    char err[512];
    bool seen_schema[sizeof(config_schema) / sizeof(config_schema[0])] = {0};
    const struct raw_entry *admin_public_url = NULL;

    /* Unknown sections are reported once, at their header. */
    for (size_t i = 0; i < c->nsections; i++) {
        const char *arg = NULL;
        const char *name = c->sections[i].name;
        enum section_kind kind = classify(name, &arg);
        bool dup = false;
        for (size_t j = 0; j < i; j++)
            if (strcmp(c->sections[j].name, name) == 0) dup = true;
        if (dup) {
            add_error(c, c->sections[i].line, false, name, NULL,
                      "section appears twice (first at line %d)", section_line(c, name));
        } else if (kind == SEC_UNKNOWN) {
            char hint[400];
            suggest_section(name, hint, sizeof(hint));
            if (hint[0])
                add_error(c, c->sections[i].line, false, name, NULL, "unknown section%s", hint);
            else
                add_error(c, c->sections[i].line, false, name, NULL,
                          "unknown section (expected daemon, redis, admin, public, consent, quiet_hours, events, channel <email|sms>, provider <name>, cap <name>, topic <name>, terms <email|sms>)");
        } else if (kind == SEC_CHANNEL && herald_channel_from_name(arg) < 0) {
            char hint[400];
            suggest_section(name, hint, sizeof(hint));
            add_error(c, c->sections[i].line, false, name, NULL, "unknown channel \"%s\" (expected email or sms)%s",
                      arg, hint);
        } else if (kind == SEC_PROVIDER && !herald_id_valid(arg)) {
            add_error(c, c->sections[i].line, false, name, NULL, "provider names use " HERALD_ID_CHARS);
        } else if (kind == SEC_PROVIDER) {
            provider_get(cfg, arg, c->sections[i].line);
        } else if (kind == SEC_CAP && !herald_id_valid(arg)) {
            add_error(c, c->sections[i].line, false, name, NULL, "cap names use " HERALD_ID_CHARS);
        } else if (kind == SEC_CAP) {
            cap_get(cfg, arg, c->sections[i].line);
        } else if (kind == SEC_TOPIC && !job_topic_valid(arg)) {
            add_error(c, c->sections[i].line, false, name, NULL, "not a topic name (a job's topic: lower-case letters, digits, _ and -)");
        } else if (kind == SEC_TOPIC) {
            topic_get(cfg, arg, c->sections[i].line);
        } else if (kind == SEC_TERMS && herald_channel_from_name(arg) < 0) {
            add_error(c, c->sections[i].line, false, name, NULL, "unknown channel \"%s\" (expected email or sms)", arg);
        } else if (kind == SEC_TERMS) {
            cfg->terms[herald_channel_from_name(arg)].present = true;
            cfg->terms[herald_channel_from_name(arg)].line = c->sections[i].line;
        }
    }

    for (size_t i = 0; i < c->nentries; i++) {
        struct raw_entry *e = &c->entries[i];
        const char *arg = NULL;
        enum section_kind kind = classify(e->section, &arg);
        if (e->dropped) continue;
        if (e->skip && kind != SEC_PROVIDER) { /* a KEY_file already reported: the key is given, not missing */
            const struct config_key_info *k = kind == SEC_FIXED ? schema_find(e->section, e->key) : NULL;
            if (k) seen_schema[k - config_schema] = true;
            continue;
        }
        /* Duplicates within the file: inih hands both to us. A section
         * written twice was reported at its header, once. */
        for (size_t j = 0; j < i; j++) {
            struct raw_entry *f = &c->entries[j];
            if (!e->from_set && !f->from_set && !f->dropped && strcmp(e->section, f->section) == 0 &&
                strcmp(e->key, f->key) == 0) {
                bool dup_section = false;
                for (size_t k = 0, seen = 0; k < c->nsections; k++)
                    if (strcmp(c->sections[k].name, e->section) == 0 && ++seen > 1) dup_section = true;
                if (!dup_section)
                    add_error(c, e->line, false, e->section, e->key, "set twice (first at line %d)", f->line);
                goto next;
            }
        }
        switch (kind) {
        case SEC_UNKNOWN:
            if (e->from_set)
                add_error(c, e->line, true, e->section, NULL, "unknown section");
            break; /* file sections already reported at their header */
        case SEC_FIXED: {
            if (strcmp(e->section, "admin") == 0 && strcmp(e->key, "public_url") == 0) {
                admin_public_url = e; /* the deprecated name: applied below */
                break;
            }
            const struct config_key_info *k = schema_find(e->section, e->key);
            if (!k) {
                char hint[300];
                suggest_key(e->section, e->key, hint, sizeof(hint));
                add_error(c, e->line, e->from_set, e->section, e->key, "unknown key%s", hint);
                break;
            }
            seen_schema[k - config_schema] = true;
            if (set_fixed(cfg, e->section, e->key, e->value, err, sizeof(err)) < 0)
                add_error(c, e->line, e->from_set, e->section, e->key, "%s", err);
            break;
        }
        case SEC_CHANNEL: {
            int ch = herald_channel_from_name(arg);
            if (ch < 0) {
                if (e->from_set) add_error(c, 0, true, e->section, NULL, "unknown channel");
                break;
            }
            if (strcmp(e->key, "providers") != 0) {
                add_error(c, e->line, e->from_set, e->section, e->key, "unknown key (expected providers)");
                break;
            }
            struct config_channel *cc = &cfg->channels[ch];
            free_list(cc->providers, cc->nproviders);
            cc->providers = NULL;
            cc->nproviders = 0;
            cc->present = true;
            cc->line = e->line;
            if (split_list(e->value, &cc->providers, &cc->nproviders) < 0) {
                add_error(c, e->line, e->from_set, e->section, e->key,
                          "expected a comma-separated list of provider names");
                break;
            }
            break;
        }
        case SEC_TOPIC: {
            if (!job_topic_valid(arg)) break;
            if (topic_set(topic_get(cfg, arg, e->line), e->key, e->value, err, sizeof(err)) < 0)
                add_error(c, e->line, e->from_set, e->section, e->key, "%s", err);
            break;
        }
        case SEC_TERMS: {
            int ch = herald_channel_from_name(arg);
            if (ch < 0) break;
            if (terms_set(&cfg->terms[ch], e->key, e->value, err, sizeof(err)) < 0)
                add_error(c, e->line, e->from_set, e->section, e->key, "%s", err);
            break;
        }
        case SEC_CAP: {
            if (!herald_id_valid(arg)) break;
            struct config_cap *cap = cap_get(cfg, arg, e->line);
            if (cap_set(cap, e->key, e->value, err, sizeof(err)) < 0)
                add_error(c, e->line, e->from_set, e->section, e->key, "%s", err);
            break;
        }
        case SEC_PROVIDER: {
            if (!herald_id_valid(arg)) break;
            struct config_provider *p = provider_get(cfg, arg, e->line);
            if (e->skip) {
                p->unread = xrealloc(p->unread, (p->nunread + 1) * sizeof(char *));
                p->unread[p->nunread++] = xstrdup(e->key);
                break;
            }
            if (strcmp(e->key, "plugin") == 0) {
                bool ok = *e->value != '\0';
                for (const char *q = e->value; *q; q++)
                    if (!(isalnum((unsigned char)*q) || *q == '_' || *q == '-')) ok = false;
                if (!ok) {
                    add_error(c, e->line, e->from_set, e->section, e->key,
                              "plugin names use A-Z a-z 0-9 _ - (e.g. outbox, email_smtp)");
                    break;
                }
                free(p->plugin);
                p->plugin = xstrdup(e->value);
                p->plugin_line = e->line;
            } else {
                bool bad;
                if (provider_daemon_key(p, e->key, e->value, &bad, err, sizeof(err))) {
                    if (bad) add_error(c, e->line, e->from_set, e->section, e->key, "%s", err);
                    break;
                }
                provider_set(p, e->key, e->value, e->line);
            }
            break;
        }
        }
    next:;
    }

    if (cfg->redis_password_key && cfg->redis_password_key[0]) {
        bool from_set;
        int line = entry_line(c, "redis", "password", &from_set);
        if (cfg->redis_password)
            add_error(c, line, from_set, "redis", "password",
                      "the url has a password too: give it in one place (password or password_file)");
        else
            cfg->redis_password = xstrdup(cfg->redis_password_key);
    }
    if (cfg->redis_cluster && cfg->redis_cluster[0]) {
        bool from_set;
        int line = entry_line(c, "redis", "url", &from_set);
        if (line || from_set) {
            int cline = entry_line(c, "redis", "cluster", &from_set);
            add_error(c, cline ? cline : section_line(c, "redis"), from_set, "redis", "cluster",
                      "[redis] url is set too: give url (a single instance) or cluster (seed nodes), not both");
        }
    }
    if (cfg->redis_user_key && cfg->redis_user_key[0]) {
        bool from_set;
        int line = entry_line(c, "redis", "user", &from_set);
        if (cfg->redis_user)
            add_error(c, line, from_set, "redis", "user", "the url names a user too: give it in one place");
        else
            cfg->redis_user = xstrdup(cfg->redis_user_key);
    }
    if (cfg->wait_replicas < 0) cfg->wait_replicas = cfg->redis_cluster && cfg->redis_cluster[0] ? 1 : 0;
    if (cfg->redis_user && !cfg->redis_password) {
        bool from_set;
        int line = entry_line(c, "redis", "url", &from_set);
        add_error(c, line ? line : section_line(c, "redis"), from_set, "redis", "url",
                  "the user needs a password (in the url, or [redis] password or password_file)");
    }
    if (admin_public_url) {
        const struct config_key_info *k = schema_find("public", "public_url");
        const struct raw_entry *e = admin_public_url;
        if (seen_schema[k - config_schema]) {
            add_error(c, e->line, e->from_set, "admin", "public_url",
                      "deprecated name of [public] public_url, which is set too: keep only [public] public_url");
        } else if (set_fixed(cfg, "public", "public_url", e->value, err, sizeof(err)) < 0) {
            add_error(c, e->line, e->from_set, "admin", "public_url", "%s", err);
        } else {
            cfg->public_url_deprecated = true;
        }
    }
    if (cfg->public_listen && cfg->public_port != 0 && cfg->public_port == cfg->listen_port &&
        strcmp(cfg->public_host, cfg->listen_host) == 0)
        add_error(c, section_line(c, "public"), false, "public", "listen",
                  "the same address as [admin] listen: leave it empty to serve the public routes on the admin listener");

    /* Required keys and cross-references. */
    const char *required[][2] = {{"admin", "token"}, {"admin", "link_secret"}};
    for (size_t i = 0; i < sizeof(required) / sizeof(required[0]); i++) {
        const struct config_key_info *k = schema_find(required[i][0], required[i][1]);
        if (!seen_schema[k - config_schema])
            add_error(c, section_line(c, k->section), false, k->section, k->key,
                      "missing: this key is required");
    }
    char kerr[512];
    if (cfg->index_key_file) {
        if (read_index_key(cfg->index_key_file, cfg->index_key, kerr, sizeof(kerr)) < 0)
            add_error(c, section_line(c, "privacy"), false, "privacy", "index_key_file", "%s", kerr);
    } else if (cfg->tombstone_secret && *cfg->tombstone_secret) {
        addrindex_key_derive(cfg->tombstone_secret, cfg->index_key);
    } else if (cfg->link_secret) {
        addrindex_key_derive(cfg->link_secret, cfg->index_key);
    }
    for (size_t i = 0; i < cfg->nproviders; i++) {
        struct config_provider *p = &cfg->providers[i];
        char sec[256];
        snprintf(sec, sizeof(sec), "provider %s", p->name);
        if (!p->plugin)
            add_error(c, p->line, false, sec, "plugin", "missing: name the plugin (e.g. plugin = outbox)");
    }
    for (size_t i = 0; i < cfg->ncaps; i++) {
        struct config_cap *cap = &cfg->caps[i];
        char sec[256];
        snprintf(sec, sizeof(sec), "cap %s", cap->name);
        if (!cap->has_channel) add_error(c, cap->line, false, sec, "channel", "missing: email, sms or any");
        if (!cap->has_limit) add_error(c, cap->line, false, sec, "limit", "missing: how many messages");
        if (!cap->has_window) add_error(c, cap->line, false, sec, "window", "missing: over what time, e.g. 24h");
    }
    if (cfg->events_url && *cfg->events_url && !(cfg->events_secret && *cfg->events_secret))
        add_error(c, section_line(c, "events"), false, "events", "secret",
                  "missing: the events POSTed to url are signed with it (at least 16 characters)");
    if (cfg->batch > cfg->max_in_flight) {
        const struct config_key_info *k = schema_find("daemon", "batch");
        add_error(c, section_line(c, k->section), false, "daemon", "batch",
                  "%lld is more than max_in_flight (%lld): herald could never read a batch", (long long)cfg->batch,
                  (long long)cfg->max_in_flight);
    }
    for (int ch = 0; ch < HERALD_CH_COUNT; ch++) {
        struct config_terms *t = &cfg->terms[ch];
        char sec[64];
        snprintf(sec, sizeof(sec), "terms %s", herald_channel_name(ch));
        if (!t->present) continue;
        if (!t->version)
            add_error(c, t->line, false, sec, "version", "missing: the version of these terms (kept with each agreement)");
        if (!config_text_for(&t->text, cfg->default_locale, cfg->default_locale))
            add_error(c, t->line, false, sec, "text", "missing: the terms (text, or text.%s for [public] default_locale)",
                      cfg->default_locale ? cfg->default_locale : "en");
    }
    if (cfg->ncaps > HERALD_CAPS_MAX)
        add_error(c, cfg->caps[HERALD_CAPS_MAX].line, false, NULL, NULL, "at most %d [cap] sections",
                  HERALD_CAPS_MAX);
    bool any = false;
    for (int ch = 0; ch < HERALD_CH_COUNT; ch++) {
        struct config_channel *cc = &cfg->channels[ch];
        if (!cc->present) continue;
        any = true;
        char sec[64];
        snprintf(sec, sizeof(sec), "channel %s", herald_channel_name(ch));
        cc->provider_index = xcalloc(cc->nproviders ? cc->nproviders : 1, sizeof(int));
        for (size_t j = 0; j < cc->nproviders; j++) {
            cc->provider_index[j] = -1;
            for (size_t k = 0; k < cfg->nproviders; k++)
                if (strcmp(cfg->providers[k].name, cc->providers[j]) == 0) cc->provider_index[j] = (int)k;
            if (cc->provider_index[j] < 0)
                add_error(c, cc->line, cc->line == 0, sec, "providers",
                          "no [provider %s] section defines \"%s\"", cc->providers[j], cc->providers[j]);
            for (size_t k = 0; k < j; k++)
                if (strcmp(cc->providers[k], cc->providers[j]) == 0)
                    add_error(c, cc->line, cc->line == 0, sec, "providers", "\"%s\" is listed twice",
                              cc->providers[j]);
        }
    }
    for (size_t i = 0; i < c->nsections; i++) {
        const char *arg = NULL;
        if (classify(c->sections[i].name, &arg) == SEC_CHANNEL && herald_channel_from_name(arg) >= 0 &&
            !cfg->channels[herald_channel_from_name(arg)].present)
            add_error(c, c->sections[i].line, false, c->sections[i].name, "providers",
                      "missing: list the providers of this channel");
    }
    if (!any)
        add_error(c, c->lineno, false, NULL, NULL,
                  "no [channel email] or [channel sms] section: herald would have nowhere to send");
}

int config_load(const char *path, const char *const *overrides, size_t noverrides,
                struct config *cfg, struct strbuf *errors)
{
    memset(cfg, 0, sizeof(*cfg));
    cfg->path = xstrdup(path);
    const char *slash = strrchr(path, '/');
    cfg->dir = slash ? xstrndup(path, (size_t)(slash - path + (slash == path))) : xstrdup(".");
    set_defaults(cfg);

    struct parse_ctx c = {.path = path, .errors = errors};
    c.fp = fopen(path, "r");
    if (!c.fp || fstat(fileno(c.fp), &c.st) != 0) {
        strbuf_addf(errors, "%s: cannot read: %s\n", path, strerror(errno));
        if (c.fp) fclose(c.fp);
        return -HERALD_EIO;
    }
    /* ini_parse_stream reads lines of at most INI_MAX_LINE through our reader. */
    int rc = ini_parse_stream(config_reader, &c, config_handler, &c);
    fclose(c.fp);
    if (rc > 0 && c.nerrors == 0)
        add_error(&c, rc, false, NULL, NULL, "cannot parse this line");
    else if (rc < 0)
        add_error(&c, 0, false, NULL, NULL, "cannot parse the file");

    for (size_t i = 0; i < noverrides; i++) apply_override(&c, overrides[i], i + 1);
    read_secret_files(&c, cfg);
    validate(&c, cfg);
    check_file_mode(&c);

    for (size_t i = 0; i < c.nentries; i++) {
        free(c.entries[i].section);
        free(c.entries[i].key);
        free(c.entries[i].value);
    }
    free(c.entries);
    for (size_t i = 0; i < c.nsections; i++) free(c.sections[i].name);
    free(c.sections);
    return c.nerrors;
}

void config_free(struct config *cfg)
{
    free(cfg->path);
    free(cfg->dir);
    free(cfg->plugin_dir);
    free(cfg->locales_dir);
    free(cfg->default_locale);
    free(cfg->organisation);
    free(cfg->privacy_url);
    free(cfg->contact);
    for (size_t i = 0; i < cfg->ntopics; i++) {
        free(cfg->topics[i].name);
        texts_free(&cfg->topics[i].title);
        texts_free(&cfg->topics[i].description);
    }
    free(cfg->topics);
    for (int ch = 0; ch < HERALD_CH_COUNT; ch++) {
        free(cfg->terms[ch].version);
        texts_free(&cfg->terms[ch].text);
    }
    free(cfg->consumer);
    free(cfg->redis_url);
    free(cfg->redis_host);
    free(cfg->redis_password);
    free(cfg->redis_socket);
    free(cfg->redis_user);
    free(cfg->redis_password_key);
    free(cfg->redis_cluster);
    free(cfg->redis_user_key);
    free(cfg->prefix);
    free(cfg->listen);
    free(cfg->listen_host);
    free(cfg->token);
    free(cfg->link_secret);
    free(cfg->public_url);
    free(cfg->public_listen);
    free(cfg->public_host);
    free(cfg->tombstone_secret);
    free(cfg->privacy_key_file);
    if (cfg->keys) seal_keys_free(cfg->keys);
    free(cfg->keys);
    free(cfg->index_key_file);
    explicit_bzero(cfg->index_key, sizeof(cfg->index_key));
    free(cfg->events_url);
    free(cfg->events_secret);
    for (int ch = 0; ch < HERALD_CH_COUNT; ch++) {
        free_list(cfg->channels[ch].providers, cfg->channels[ch].nproviders);
        free(cfg->channels[ch].provider_index);
    }
    for (size_t i = 0; i < cfg->nproviders; i++) {
        struct config_provider *p = &cfg->providers[i];
        free(p->name);
        free(p->plugin);
        for (size_t j = 0; j < p->nsettings; j++) {
            free((char *)p->settings[j].key);
            free((char *)p->settings[j].value);
        }
        free(p->settings);
        free(p->setting_lines);
        free_list(p->unread, p->nunread);
    }
    free(cfg->providers);
    for (size_t i = 0; i < cfg->ncaps; i++) {
        free(cfg->caps[i].name);
        free_list(cfg->caps[i].topics, cfg->caps[i].ntopics);
    }
    free(cfg->caps);
    free(cfg->default_tz);
    for (int ch = 0; ch < HERALD_CH_COUNT; ch++) free(cfg->quiet[ch]);
    memset(cfg, 0, sizeof(*cfg));
}

/* A cap that another, earlier one always reaches first: it counts at least
 * what this one counts (any channel or the same, every topic or more), over
 * at least as long a window, and blocks at no more messages. */
static bool cap_shadowed(const struct config_cap *early, const struct config_cap *late)
{
    if (early->channel != -1 && early->channel != late->channel) return false;
    if (early->window_s < late->window_s || early->limit > late->limit) return false;
    if (!early->topics) return true;
    if (!late->topics) return false;
    for (size_t i = 0; i < late->ntopics; i++) {
        bool found = false;
        for (size_t j = 0; j < early->ntopics; j++)
            if (strcmp(late->topics[i], early->topics[j]) == 0) found = true;
        if (!found) return false;
    }
    return true;
}

int config_warnings(const struct config *cfg, struct strbuf *out)
{
    int n = 0;
    if (!cfg->keys) {
        strbuf_addf(out, "%s: warning: [privacy] key_file is not set: people's addresses, phone numbers and "
                    "attributes are stored in clear in Redis (docs/operations.md, \"Encryption keys\")\n",
                    cfg->path);
        n++;
    }
    for (size_t i = 0; i < cfg->nproviders; i++) {
        bool used = false;
        for (int ch = 0; ch < HERALD_CH_COUNT; ch++)
            for (size_t j = 0; cfg->channels[ch].present && j < cfg->channels[ch].nproviders; j++)
                if (strcmp(cfg->channels[ch].providers[j], cfg->providers[i].name) == 0) used = true;
        if (!used) {
            strbuf_addf(out, "%s:%d: warning: [provider %s]: no [channel] lists it, so it is loaded but never used\n",
                        cfg->path, cfg->providers[i].line, cfg->providers[i].name);
            n++;
        }
    }
    for (size_t i = 0; i < cfg->ncaps; i++) {
        const struct config_cap *cap = &cfg->caps[i];
        if (cap->channel >= 0 && !cfg->channels[cap->channel].present) {
            strbuf_addf(out, "%s:%d: warning: [cap %s]: it counts %s, which no [channel %s] section sends: it never applies\n",
                        cfg->path, cap->line, cap->name, herald_channel_name(cap->channel),
                        herald_channel_name(cap->channel));
            n++;
            continue;
        }
        for (size_t j = 0; j < i; j++) {
            if (cap_shadowed(&cfg->caps[j], cap)) {
                strbuf_addf(out, "%s:%d: warning: [cap %s]: [cap %s] (line %d) always blocks first, so this cap never applies\n",
                            cfg->path, cap->line, cap->name, cfg->caps[j].name, cfg->caps[j].line);
                n++;
                break;
            }
        }
    }
    return n;
}

struct report_line {
    long line;  /* -1: --set or no line (kept first, in order) */
    size_t seq;
    const char *text;
    size_t len;
};

static int report_line_cmp(const void *a, const void *b)
{
    const struct report_line *x = a, *y = b;
    if (x->line != y->line) return x->line < y->line ? -1 : 1;
    return x->seq < y->seq ? -1 : x->seq > y->seq;
}

void config_sort_report(struct strbuf *report, const char *path)
{
    if (!report->buf || !report->len) return;
    size_t plen = strlen(path), n = 0, cap = 16;
    struct report_line *lines = xmalloc(cap * sizeof(*lines));
    for (const char *p = report->buf; p < report->buf + report->len;) {
        const char *nl = memchr(p, '\n', (size_t)(report->buf + report->len - p));
        size_t len = nl ? (size_t)(nl - p + 1) : (size_t)(report->buf + report->len - p);
        long line = -1;
        if (len > plen + 1 && memcmp(p, path, plen) == 0 && p[plen] == ':' && isdigit((unsigned char)p[plen + 1]))
            line = strtol(p + plen + 1, NULL, 10);
        if (n == cap) lines = xrealloc(lines, (cap *= 2) * sizeof(*lines));
        lines[n] = (struct report_line){line, n, p, len};
        n++;
        p += len;
    }
    qsort(lines, n, sizeof(*lines), report_line_cmp);
    struct strbuf sorted;
    strbuf_init(&sorted);
    for (size_t i = 0; i < n; i++) {
        strbuf_add(&sorted, lines[i].text, lines[i].len);
        if (lines[i].text[lines[i].len - 1] != '\n') strbuf_adds(&sorted, "\n");
    }
    free(lines);
    strbuf_free(report);
    *report = sorted;
}
