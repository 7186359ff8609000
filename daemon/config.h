/*
 * config.h - the configuration file: one schema table drives parsing,
 * defaults, range checks, unknown-key errors and the documentation.
 *
 * Every problem is reported, not just the first, as one line
 * "FILE:LINE: [section] key: problem" appended to the caller's strbuf, so
 * `herald --check-config` can show them all. A config that loaded is fully
 * valid except for plugin settings, which plugin.c checks by creating the
 * instances. Relative paths are resolved against the config file's directory.
 */
#ifndef HERALD_CONFIG_H
#define HERALD_CONFIG_H

#include "herald.h"
#include "seal.h"
#include "herald_channel.h"

/* Where `cmake --install` puts the plugins (<libdir>/herald/channels),
 * set by CMakeLists.txt from GNUInstallDirs; relative only in a build
 * that did not say, and then resolved against the config file's directory. */
#ifndef HERALD_PLUGIN_DIR
#define HERALD_PLUGIN_DIR "channels"
#endif
/* Where `cmake --install` puts the pages' message catalogues
 * (<datadir>/herald/locales), the same way. */
#ifndef HERALD_LOCALE_DIR
#define HERALD_LOCALE_DIR "locales"
#endif
/* The limits of one HTTP listener, the same keys in [admin] and [public]
 * (http.h's struct http_limits; what a hit does: http_limit.h). */
#define CONFIG_LISTENER_KEYS(X, sec)                                                             \
    X(sec, "max_connections", INT, "256", max_connections,                                       \
      "Connections open at once (1..100000). When full, the oldest idle keep-alive connection "  \
      "is closed to make room; if none is idle, the new one is closed at once.")                 \
    X(sec, "max_connections_per_client", INT, "32", max_connections_per_client,                  \
      "Connections open at once from one IP address (1..100000); above: closed at once. "        \
      "Behind a reverse proxy every connection comes from the proxy: raise it to max_connections.") \
    X(sec, "header_timeout", DURATION, "10s", header_timeout_ms,                                 \
      "A request's line and headers must arrive within this of its first byte (100ms..1h); else 408.") \
    X(sec, "body_timeout", DURATION, "30s", body_timeout_ms,                                     \
      "A request's body must arrive within this of its last header (100ms..1h); else 408.")     \
    X(sec, "idle_timeout", DURATION, "30s", idle_timeout_ms,                                     \
      "A keep-alive connection waiting for its next request is closed after this (100ms..1h).") \
    X(sec, "max_header_size", SIZE, "16k", max_header_bytes,                                     \
      "Request line and headers, bytes (1k..1m, k and m suffixes); larger: 431.")                 \
    X(sec, "max_body_size", SIZE, "64k", max_body_bytes,                                         \
      "Request body, bytes (1k..64m); larger: 413 before it is read. SendGrid's webhook "        \
      "takes up to 1m whatever this says.")

/* Keys of the fixed sections: X(section, key, type, default, field, doc).
 * The same table prints docs/config reference and checks herald.example.conf. */
#define CONFIG_KEYS(X)                                                                          \
    X("daemon", "plugin_dir", PATH, HERALD_PLUGIN_DIR, plugin_dir,                               \
      "Directory holding the channel plugins as <plugin>.so.")                                   \
    X("daemon", "locales_dir", PATH, HERALD_LOCALE_DIR, locales_dir,                             \
      "Directory of the pages' message catalogues, one <locale>.po per language "               \
      "(docs/localisation.md); an operator adds a language by adding a file and reloading.")   \
    X("daemon", "log_level", LOGLEVEL, "info", log_level, "debug, info, warn or error.")        \
    X("daemon", "log_format", LOGFORMAT, "text", log_format,                                     \
      "text (one line per event) or json (one JSON object per line).")                           \
    X("daemon", "drain_timeout", DURATION, "10s", drain_timeout_ms,                              \
      "On SIGTERM/SIGINT, how long in-flight messages may take to finish before exit.")          \
    X("daemon", "consumer", STRING, "", consumer,                                                \
      "Consumer name in the Redis consumer group; empty means <hostname>-<pid>.")                \
    X("daemon", "batch", INT, "256", batch,                                                      \
      "Recipients looked up and decided per Redis round trip (1..10000).")                       \
    X("daemon", "max_in_flight", INT, "512", max_in_flight,                                      \
      "Recipients held at once (high watermark; reading resumes at max_in_flight - batch).")     \
    X("daemon", "max_jobs", INT, "4", max_jobs,                                                  \
      "Jobs run side by side (1..64), sharing max_in_flight and the providers by priority.")     \
    X("daemon", "slice", INT, "0", slice,                                                        \
      "A job (inline or recipients_key) of more recipients is cut into slices of this many "    \
      "that any daemon claims (0: never; else 10..10000).")                                      \
    X("daemon", "claim_idle", DURATION, "60s", claim_idle_ms,                                    \
      "A job left pending this long by a consumer that died is taken over (XAUTOCLAIM).")        \
    X("daemon", "default_tz", TZNAME, "UTC", default_tz,                                         \
      "IANA time zone for people whose tz is missing or unknown (quiet hours).")                 \
    X("consent", "max_age", DURATION, "", consent_max_age_ms,                                    \
      "Consent granted longer ago than this counts as none (consent_expired); empty: no limit.") \
    X("quiet_hours", "email", QUIET, "", quiet,                                                  \
      "HH:MM-HH:MM in the person's time zone when no email is sent (may wrap midnight).")        \
    X("quiet_hours", "sms", QUIET, "", quiet,                                                    \
      "HH:MM-HH:MM in the person's time zone when no SMS is sent (may wrap midnight).")          \
    X("redis", "url", REDIS_URL, "redis://127.0.0.1:6379/0", redis_url,                          \
      "redis://[[user]:password@]host[:port][/db] or unix:///path/to/redis.sock[?db=N].")        \
    X("redis", "password", SECRET, "", redis_password,                                           \
      "Password of the url's user (AUTH), instead of writing it in the url; empty: the url's.")  \
    X("redis", "prefix", PREFIX, "herald", prefix,                                               \
      "Prefix of every key herald uses (herald:jobs, herald:audit, ...).")                       \
    X("redis", "audit_maxlen", INT, "10000000", audit_maxlen,                                    \
      "Approximate maximum length of the audit stream (XADD MAXLEN ~).")                         \
    X("redis", "user", STRING, "", redis_user_key,                                               \
      "ACL user herald logs in as, instead of naming it in the url (needed with cluster); "    \
      "empty: the url's, or Redis's default user.")                                              \
    X("redis", "cluster", STRING, "", redis_cluster,                                             \
      "Seed nodes of a Redis Cluster: host:port, host:port, ... (instead of url; empty: none).") \
    X("redis", "wait_replicas", INT, "", wait_replicas,                                          \
      "Replicas that must have a batch's once-only writes before it goes on (WAIT; 0..8; "       \
      "empty: 1 on a cluster, 0 on a single instance).")                                         \
    X("redis", "wait_timeout", DURATION, "2s", wait_timeout_ms,                                  \
      "How long a batch waits for wait_replicas replicas to acknowledge (WAIT; 10ms..5s).")     \
    X("retention", "grace", DURATION, "1d", retention_grace_ms,                                  \
      "A campaign's once-only records are kept this long after its expires_at (0s allowed).")   \
    X("retention", "campaign_records", DURATION, "90d", retention_records_ms,                    \
      "A campaign without expires_at keeps its once-only records this long after its run ends.") \
    X("retention", "history", INT, "50", retention_history,                                      \
      "Decisions kept in each person's history, newest first (1..100).")                        \
    X("retention", "sweep_every", DURATION, "1h", retention_sweep_ms,                            \
      "How often a daemon removes the records of campaigns past their retention (1s..1d).")      \
    X("retention", "audit", DURATION, "", retention_audit_ms,                                     \
      "Audit, events and suppression-change entries older than this are deleted (1m..3650d), "   \
      "each minute; empty: kept until audit_maxlen pushes them out.")                            \
    X("retention", "dead_letters", DURATION, "30d", retention_dead_letters_ms,                   \
      "Dead letters (herald:dead) older than this are deleted (1m..3650d), each minute; empty: " \
      "kept forever.")                                                                           \
    X("retention", "inactive_people", DURATION, "", retention_inactive_ms,                       \
      "A person with no consent on any channel and no change or message for this long is "       \
      "erased as DELETE /v1/recipients/{id} erases (1s..3650d); empty: never.")                 \
    X("privacy", "index_key_file", PATH, "", index_key_file,                                     \
      "File holding the key of the address indexes, the suppression list and the tombstones "   \
      "(32 random bytes, or 64 hex digits; no access for group and others). Empty: a key "       \
      "derived from [admin] tombstone_secret, or link_secret.")                                  \
    X("admin", "listen", LISTEN, "127.0.0.1:8025", listen,                                       \
      "host:port of the admin listener: the /v1 API, /metrics and /healthz (and the public "    \
      "routes too when [public] listen is empty).")                                              \
    X("admin", "token", SECRET, "", token,                                                       \
      "Bearer token the linked service presents on /v1/ calls (at least 16 characters).")        \
    X("admin", "link_secret", SECRET, "", link_secret,                                           \
      "HMAC-SHA256 key that signs the links in every message (at least 16 characters).")         \
    X("admin", "tombstone_secret", SECRET, "", tombstone_secret,                                 \
      "HMAC-SHA256 key of the tombstones erasure keeps of addresses; empty: link_secret.")       \
    X("admin", "link_ttl", DURATION, "60d", link_ttl_ms,                                         \
      "How long the links in a message stay valid (1h..400d); older links get 403.")            \
    CONFIG_LISTENER_KEYS(X, "admin")                                                             \
    X("public", "listen", LISTEN, "", public_listen,                                             \
      "host:port of the public listener: the link pages (/u/, /p/) and the provider webhooks "   \
      "(/v1/webhooks/). Empty: served on the admin listener, with a warning at start.")           \
    X("public", "public_url", URL, "", public_url,                                               \
      "Public base URL of the public listener as people reach it (https://...); links are built " \
      "under it. [admin] public_url is its deprecated old name.")                                \
    X("public", "organisation", STRING, "", organisation,                                        \
      "Your organisation's name, shown on every page behind the links (empty: none).")           \
    X("public", "privacy_url", URL, "", privacy_url,                                              \
      "Link to your privacy policy, shown on every page (https://...; empty: none).")             \
    X("public", "contact", STRING, "", contact,                                                  \
      "How people reach you about their data (an address or a URL), shown on every page.")     \
    X("public", "default_locale", LOCALE, "en", default_locale,                                  \
      "Language of the pages for a person whose profile and browser name none of the "          \
      "catalogues in locales_dir (a catalogue of this name must exist).")                        \
    CONFIG_LISTENER_KEYS(X, "public")                                                            \
    X("events", "url", URL, "", events_url,                                                      \
      "Where every campaign event of herald:events is POSTed as JSON, signed (http:// or "        \
      "https://); empty: events stay in the stream only.")                                       \
    X("events", "secret", SECRET, "", events_secret,                                             \
      "HMAC-SHA256 key of the events' X-Herald-Signature (at least 16 characters); required "    \
      "with url.")                                                                               \
    X("privacy", "key_file", PATH, "", privacy_key_file,                                         \
      "File of the keys that encrypt each person's addresses and attributes in Redis, one a "    \
      "line \"<key id> <64 hex digits>\", the first encrypting (chmod 600). Empty: stored in "  \
      "clear.")

/* CONFIG_SECRET keys (and CONFIG_PROVIDER_SECRETS below) also take the
 * form `KEY_file = path`: the value is the file's content. */
enum config_type { CONFIG_STRING, CONFIG_PATH, CONFIG_LOGLEVEL, CONFIG_DURATION, CONFIG_INT,
                   CONFIG_REDIS_URL, CONFIG_PREFIX, CONFIG_LISTEN, CONFIG_SECRET, CONFIG_URL,
                   CONFIG_TZNAME, CONFIG_QUIET, CONFIG_SIZE, CONFIG_LOGFORMAT, CONFIG_LOCALE };

struct config_key_info {
    const char *section;
    const char *key;
    enum config_type type;
    const char *def;
    const char *doc;
};
/* The schema of the fixed sections, terminated by an entry with section NULL. */
extern const struct config_key_info config_schema[];

/* Keys of [provider NAME] that belong to the daemon (dispatch's limits and
 * waits) and are never passed to the plugin: X(key, default, doc). The
 * same table is checked against herald.example.conf's provider comment. */
#define CONFIG_PROVIDER_KEYS(X)                                                                 \
    X("concurrency", "16", "Requests in flight to this provider (1..1024).")                     \
    X("lookahead", "concurrency",                                                                \
      "Messages recorded handed ahead of a free slot, so that it starts one at once; after a "   \
      "crash these end unknown with the requests in flight (0..4096; default the concurrency).") \
    X("rate", "unlimited", "Token bucket: N/s, N/m, N/h or unlimited.")                          \
    X("timeout", "10s", "A whole request, connection included (100ms..10m).")                    \
    X("retries", "2", "Temporary failures retried here before the next provider (0..10).")      \
    X("circuit_failures", "5", "Consecutive temporary failures that open the circuit (1..1000).") \
    X("circuit_cooldown", "30s", "Open circuit: nothing goes to the provider, then one probe (1s..1h).") \
    X("give_up_after", "1h",                                                                     \
      "How long a message waits for this provider, its last, while its circuit is open or it "  \
      "asks to slow down, before it fails provider_unavailable (0: until the campaign expires; " \
      "else 1s..30d).")                                                                          \
    X("feedback", "off",                                                                         \
      "on: remember each sent message's provider id for 30 days so that the provider's delivery " \
      "callbacks (POST /v1/webhooks/NAME) find it, and ask the provider for them (off, on).")    \
    X("shared", "yes",                                                                           \
      "yes: rate and concurrency hold for every daemon on this Redis together; no: per daemon.")

/* Plugin settings of [provider NAME] that are secrets: X(key). Each also
 * takes `KEY_file = path`, and a config file holding one in clear must not
 * be readable by others (docs/config.md, "Secrets"). A plugin with a new
 * secret setting adds it here. */
#define CONFIG_PROVIDER_SECRETS(X) X("password") X("api_key") X("auth_token") X("secret") X("token")

/* Keys a reload (SIGHUP, heraldctl reload) cannot change, X(section, key):
 * the running process holds what they made (its Redis connections and
 * their login, its consumer name in the group, the key names its jobs in
 * progress use, where its plugins come from). Every other key reloads.
 * docs/config.md ("Reload") lists the same. */
#define CONFIG_RESTART_KEYS(X)                                                                  \
    X("daemon", "plugin_dir") X("daemon", "consumer") X("redis", "url") X("redis", "password") \
    X("redis", "prefix") X("redis", "cluster") X("redis", "user")

/* 1 when a reload cannot change section.key (CONFIG_RESTART_KEYS). */
bool config_key_needs_restart(const char *section, const char *key);

/* 1 when key (a fixed key of section, or a plugin setting when section is
 * "provider ...") is a secret. */
bool config_key_is_secret(const char *section, const char *key);

/* The daemon's keys of [provider NAME], terminated by an entry with key NULL. */
extern const struct config_key_info config_provider_schema[];

#define CONFIG_PROVIDER_CONCURRENCY 16
#define CONFIG_PROVIDER_TIMEOUT_MS 10000
#define CONFIG_PROVIDER_RETRIES 2
#define CONFIG_PROVIDER_CIRCUIT_FAILURES 5
#define CONFIG_PROVIDER_CIRCUIT_COOLDOWN_MS 30000
#define CONFIG_PROVIDER_GIVE_UP_AFTER_MS 3600000
#define CONFIG_PROVIDER_GIVE_UP_AFTER_MAX_MS (30LL * 86400 * 1000)

struct config_provider {
    char *name;
    char *plugin;
    int line;                   /* of the [provider NAME] header */
    int plugin_line;            /* of `plugin = ...` (0: --set or absent) */
    /* Daemon-owned keys (dispatch uses them; never passed to the plugin). */
    int concurrency;            /* requests in flight, 1..1024 (default 16) */
    int lookahead;              /* recorded handed ahead of a slot, 0..4096; -1: concurrency (dispatch.h) */
    double rate;                /* messages per second; 0 = unlimited */
    int64_t timeout_ms;         /* per request (default 10s) */
    int retries;                /* RETRY verdicts retried per message, 0..10 (default 2) */
    int circuit_failures;       /* consecutive RETRY verdicts that open the circuit, 1..1000 (default 5) */
    int64_t circuit_cooldown_ms; /* how long it stays open before a probe, 1s..1h (default 30s) */
    int64_t give_up_after_ms;   /* longest wait for this provider as the last one; 0 = campaign's expiry */
    bool feedback;              /* `feedback = on`: provider ids remembered, status callbacks asked for */
    bool shared;                /* rate and concurrency shared by every daemon (limit.h); default yes */
    struct herald_setting *settings; /* plugin settings (not `plugin` nor the keys above) */
    int *setting_lines;
    size_t nsettings;
    char **unread;              /* secret settings whose KEY_file failed (reported): the plugin's */
    size_t nunread;             /* "missing" for them would say it twice */
};

/* [cap NAME]: at most `limit` messages actually sent to one person on
 * `channel` (or any) within the rolling `window`, counting only `topics`
 * when given. Caps are checked in file order; the first that blocks names
 * the reason (cap:NAME). */
#define HERALD_CAPS_MAX 32
struct config_cap {
    char *name;
    int line;
    int channel;      /* enum herald_channel, or -1 for any */
    int64_t limit;
    int64_t window_s;
    char **topics;    /* NULL: every topic */
    size_t ntopics;
    bool has_channel, has_limit, has_window;
};

/* A text given per language: `key = ...` (untagged) and `key.<locale> = ...`. */
struct config_text {
    char *locale; /* "" for the untagged one */
    char *value;
};
struct config_texts {
    struct config_text *v;
    size_t n;
};
/* The text for locale: the same tag (any case), else its primary
 * language, else default_locale's, else the untagged one, else NULL. */
const char *config_text_for(const struct config_texts *t, const char *locale, const char *default_locale);

/* [topic NAME]: how the pages name a topic and say what it is about. */
struct config_topic {
    char *name;
    int line;
    struct config_texts title;       /* name, name.<locale> */
    struct config_texts description; /* description, description.<locale> */
};

/* [terms CHANNEL]: the exact terms a person agrees to on the preference
 * page to receive that channel, and their version (kept with the consent). */
struct config_terms {
    bool present;
    int line;
    char *version;
    struct config_texts text; /* text, text.<locale> */
};

struct config_channel {
    bool present;
    int line;
    char **providers; /* ordered names */
    int *provider_index; /* index into config.providers */
    size_t nproviders;
};

struct config {
    char *path; /* as given */
    char *dir;  /* directory of the file, for relative paths */
    /* [daemon] */
    char *plugin_dir;
    char *locales_dir;
    int log_level;
    int log_format;             /* enum log_format (log.h) */
    int64_t drain_timeout_ms;
    char *consumer;
    int64_t batch;
    int64_t max_in_flight;
    int64_t max_jobs;
    int64_t slice;
    int64_t claim_idle_ms;
    char *default_tz;
    /* [consent] */
    int64_t consent_max_age_ms; /* 0: consent does not expire */
    /* [retention] (retention.h) */
    int64_t retention_grace_ms, retention_records_ms, retention_sweep_ms;
    int64_t retention_history;
    /* [quiet_hours] ops windows per channel, minutes of the local day; -1 none */
    char *quiet[HERALD_CH_COUNT]; /* as written, per channel; NULL when not set */
    int quiet_start_min[HERALD_CH_COUNT], quiet_end_min[HERALD_CH_COUNT];
    /* [redis] */
    char *redis_url;
    char *redis_host;     /* NULL with a unix socket */
    int redis_port;
    char *redis_socket;   /* unix:// path; NULL for TCP */
    int redis_db;
    char *redis_user;     /* NULL: AUTH password (the default user) */
    char *redis_password; /* NULL when none: the url's or [redis] password */
    char *redis_password_key; /* [redis] password as given ("" when not) */
    char *redis_user_key; /* [redis] user as given ("" when not; joined with the url's in validate()) */
    char *redis_cluster;  /* [redis] cluster: seed nodes ("" for a single instance; rcluster_parse_seeds) */
    int wait_replicas;    /* [redis] wait_replicas, its default resolved */
    int64_t wait_timeout_ms; /* [redis] wait_timeout: a WAIT's timeout */
    char *prefix;
    int64_t audit_maxlen;
    /* [retention] audit, dead_letters (stream_trim.h): ages in ms; 0 = no age limit */
    int64_t retention_audit_ms;
    int64_t retention_dead_letters_ms;
    int64_t retention_inactive_ms; /* [retention] inactive_people; 0 = never */
    /* [privacy] index_key_file (addrindex.h): the key of the keyed indexes,
     * read from the file, else derived from tombstone_secret or link_secret */
    char *index_key_file; /* resolved path; NULL or "" when not given */
    unsigned char index_key[32];
    /* [admin] */
    char *listen;
    char *listen_host;
    int listen_port;
    char *token;
    char *link_secret;
    char *public_url;
    char *tombstone_secret; /* "": erasure keys its tombstones with link_secret */
    int64_t link_ttl_ms;
    struct config_channel channels[HERALD_CH_COUNT];
    struct config_provider *providers;
    size_t nproviders;
    struct config_cap *caps;
    size_t ncaps;
    /* [admin] and [public]: each listener's limits (CONFIG_LISTENER_KEYS) */
    struct config_listener {
        int64_t max_connections, max_connections_per_client;
        int64_t header_timeout_ms, body_timeout_ms, idle_timeout_ms;
        int64_t max_header_bytes, max_body_bytes;
    } admin_http, public_http;
    /* [public] listen; NULL when empty: the admin listener serves the public routes */
    char *public_listen;
    char *public_host;
    int public_port;
    bool public_url_deprecated; /* public_url came from [admin] public_url */
    char *default_locale;       /* [public] default_locale: a language tag */
    char *organisation, *privacy_url, *contact; /* [public]: shown on every page ("" when not set) */
    struct config_topic *topics; /* [topic NAME] */
    size_t ntopics;
    struct config_terms terms[HERALD_CH_COUNT]; /* [terms CHANNEL] */
    /* [events]: POST every campaign event (events.c); NULL/"" url: off */
    char *events_url;
    char *events_secret;
    /* [privacy] key_file (seal.h): NULL keys when not set (contact data in clear) */
    char *privacy_key_file;
    struct seal_keys *keys;
};

/* One --set override: "section.key=value" ("provider outbox.dir=/x"). */
struct config_override {
    const char *text;
};

/* Loads and validates path plus overrides. Returns the number of errors
 * (0 = valid) or -HERALD_EIO when the file cannot be read; each error is a
 * line appended to errors. On any error *cfg is still safe to config_free. */
int config_load(const char *path, const char *const *overrides, size_t noverrides,
                struct config *cfg, struct strbuf *errors);
void config_free(struct config *cfg);

/* Parses a provider rate "N/s", "N/m" or "N/h" (N 1..1000000) into
 * messages per second. */
int config_parse_rate(const char *s, double *per_s);
/* Parses "10s", "500ms", "5m", "2h", "1d" or plain seconds into ms. */
int config_parse_duration(const char *s, int64_t *ms);
/* A parsed Redis URL; every string is the caller's to free (config_redis_url_free). */
struct config_redis_url {
    char *host;     /* TCP; NULL with a socket */
    int port;
    char *socket;   /* unix socket path; NULL for TCP */
    int db;
    char *user;     /* NULL: none given */
    char *password; /* NULL: none given */
};
/* Parses redis://[[user]:password@]host[:port][/db] or
 * unix://[[user]:password@]/path[?db=N] (user and password may be
 * %-encoded). err never quotes the password. */
int config_parse_redis_url(const char *s, struct config_redis_url *out, char *err, size_t errlen);
void config_redis_url_free(struct config_redis_url *u);
/* "host:port" or "unix:/path" of cfg's Redis, for log lines (no credentials). */
const char *config_redis_where(const struct config *cfg, char *buf, size_t len);

/* For a reload from running to next: appends to names ("[redis] url, ...")
 * each restart-only key whose value differs, and "[public] listen" when it
 * is set in one and empty in the other (one listener or two is decided at
 * start; moving the public listener to another address reloads). Returns
 * how many. Never writes a value (some are secrets). */
int config_restart_changes(const struct config *running, const struct config *next, struct strbuf *names);
/* After config_restart_changes() found none: next takes running's strings
 * of the restart-only keys (equal values) and running gets next's, so that
 * pointers the process keeps into them (the key prefix of a job in
 * progress) stay valid when running is freed. */
void config_keep_fixed(struct config *next, struct config *running);

/* Warnings that do not stop herald (a provider no channel uses, a cap that
 * can never apply): appended to out as "FILE:LINE: warning: ..." lines.
 * Returns their number. */
int config_warnings(const struct config *cfg, struct strbuf *out);
/* Sorts the lines of a report (errors of config_load, plugin_set_load,
 * warnings) by their line in path; lines of --set and without a line come
 * first, in their order. */
void config_sort_report(struct strbuf *report, const char *path);
/* Parses a size: bytes, or with a k or m suffix (KiB, MiB). */
int config_parse_size(const char *s, int64_t *bytes);
/* Parses host:port ([v6]:port allowed). */
int config_parse_listen(const char *s, char **host, int *port, char *err, size_t errlen);
/* The [topic NAME] section of topic, or NULL. */
const struct config_topic *config_topic_find(const struct config *cfg, const char *topic);
/* Resolves a path against the config directory (absolute paths unchanged). Caller frees. */
char *config_resolve_path(const struct config *cfg, const char *path);

#endif
