/*
 * main.c - herald's entry point: configuration, wiring, signals, shutdown.
 *
 * Wires the modules on one libuv loop: two Redis connections (blocking
 * stream reads; everything else), the plugin set, dispatch, the queue and
 * the HTTP listeners (admin; public when [public] listen is set). SIGTERM/SIGINT drain: stop reading, let in-flight
 * messages finish within [daemon] drain_timeout, close every handle, and
 * exit 0 once uv_loop_close() succeeds. SIGHUP (or heraldctl reload)
 * reloads the configuration, all of it or none ("reload" below). Redis
 * outages are logged once when they start and once when they end.
 */
#include <curl/curl.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

#include "api.h"
#include "config.h"
#include "dispatch.h"
#include "herald.h"
#include "http.h"
#include "locales.h"
#include "limit.h"
#include "log.h"
#include "metrics.h"
#include "events.h"
#include "notify.h"
#include "people.h"
#include "plugin.h"
#include "queue.h"
#include "rcluster.h"
#include "rconn.h"
#include "store.h"
#include "stream_trim.h"
#include "store_check.h"
#include "inactive.h"
#include "keylease.h"
#include "keyreg.h"
#include "retention.h"
#include "tzdb.h"

#define MAX_OVERRIDES 64

struct daemon {
    uv_loop_t loop;
    struct config *cfg;         /* in force; a reload replaces it ("reload" below) */
    struct plugin_set *plugins; /* cfg's providers */
    struct l10n_set *locales;   /* cfg's catalogues (locales_dir); the pages hold references */
    struct dispatch *dispatch;
    struct rconn *jobs, *data;
    struct rcluster *cluster; /* [redis] cluster: the slot map and a connection per master; NULL: one Redis */
    struct store_cmds *cmds; /* the job pipeline's command layer on data */
    struct store_job *store; /* its typed calls (store_job_ops) */
    struct store_cmds *limit_cmds; /* the shared provider limits' layer on data (limit.h) */
    struct limit *limit;
    struct queue *queue;
    struct http_server *http;
    struct http_server *http_public; /* NULL: the admin listener serves the public routes */
    struct api_state api;
    struct stream_trim *stream_trim; /* trims the streams by age (stream_trim.h) */
    struct store_cmds *events_cmds; /* the events' command layer on data */
    struct events *events;          /* campaign events POSTed to [events] url (events.h) */
    uv_signal_t sigterm, sigint, sighup;
    uv_timer_t drain_timer;
    bool stopping, closing;
    bool ready; /* READY=1 sent to the service manager (notify.h) */
    int rconns_open;
    bool limits_released;       /* a clean stop gave the shared limits' leases back */
    uint64_t limits_deadline;   /* loop ms: close without their answer after this */
    struct log_complaint redis_down;
    struct log_complaint cluster_down; /* a master unreachable or slots unserved (once per outage) */
    struct strbuf warnings; /* of the configuration, logged at start */
    int exit_code;
    /* Reload: what the configuration was loaded from, the Redis counter
     * heraldctl reload bumps (-1: not read yet), its poll. */
    const char *config_path;
    const char **overrides;
    size_t noverrides;
    long long reload_seen;
    bool reload_polling;
    uv_timer_t reload_timer;
    struct retention *retention; /* retention.h */
    struct inactive *inactive;   /* inactive.h: [retention] inactive_people */
    unsigned long reloads;
    /* The key registry (keyreg.h, "keys" below): its own layer on data,
     * whether the start's check was sent and passed (the queue starts only
     * then), and a reload waiting for its check. */
    struct store_cmds *keys_cmds;
    bool keys_sent, keys_checked;
    struct keylease *keylease; /* its lease on the key it seals under (keylease.h) */
    struct reload_pending {
        bool on;
        const char *trigger;
        struct config *next;
        struct plugin_set *ps;
        struct l10n_set *ls;
        struct strbuf report;
    } pending;
};

static void usage(FILE *out)
{
    fprintf(out,
            "usage: herald --config FILE [--set 'SECTION.KEY=VALUE']... [--check-config [--connect]]\n"
            "       herald --version | --help\n"
            "\n"
            "  --config FILE     the configuration (INI); see config/herald.example.conf\n"
            "  --set S.K=V       override one key, e.g. --set redis.url=redis://127.0.0.1:6380/0\n"
            "                    or --set 'provider outbox.dir=/tmp/out' (repeatable)\n"
            "  --check-config    validate the file and the plugins' settings, print\n"
            "                    'configuration OK' or every error, exit 0 or 1\n"
            "  --connect         with --check-config: also connect to Redis as configured,\n"
            "                    authenticate, and try every kind of command herald sends\n"
            "  --version         print the version\n"
            "\n"
            "herald runs in the foreground and logs to stderr. SIGTERM or SIGINT drain and exit 0;\n"
            "SIGHUP reloads the configuration (or keeps the running one and logs why).\n");
}

/* Readiness for systemd (Type=notify): the listener is bound (before the
 * first connect can be reported) and both Redis connections answer. */
static void announce_ready(struct daemon *d)
{
    if (d->stopping || !d->keys_checked || !rconn_ready(d->jobs) || !rconn_ready(d->data)) return;
    if (d->cluster && !rcluster_ready(d->cluster)) return;
    char status[128];
    snprintf(status, sizeof(status), "serving on %s:%d", d->cfg->listen_host, http_bound_port(d->http));
    if (!d->ready) notify_ready(status);
    else notify_status("%s", status);
    d->ready = true;
}

static void on_reload_timer(uv_timer_t *t);
static void keys_check_start(struct daemon *d);

/* The shared limits granted tokens or leases to provider: start what waits. */
static void on_limit_wake(const char *provider, void *arg)
{
    struct daemon *d = arg;
    dispatch_limit_wake(d->dispatch, provider);
}

static void on_rconn_state(struct rconn *rc, bool connected, const char *err, void *arg)
{
    struct daemon *d = arg;
    if (connected) {
        log_recovered(&d->redis_down, "main", "redis connected again");
        log_info("main", "redis ready connection=%s", rconn_name(rc));
        if (d->queue && d->keys_checked) queue_connected(d->queue, rc == d->jobs); /* else once checked */
        if (rc == d->data && d->keys_cmds) store_cmds_connected(d->keys_cmds);
        if (rc == d->data) keylease_connected(d->keylease); /* before the API's backlog goes */
        if (rc == d->data && !d->keys_sent) keys_check_start(d);
        if (rc == d->data && d->api.cmds) store_cmds_connected(d->api.cmds);
        if (rc == d->data && d->events_cmds) store_cmds_connected(d->events_cmds);
        if (rc == d->data && d->limit_cmds) store_cmds_connected(d->limit_cmds);
        if (rc == d->data) on_reload_timer(&d->reload_timer); /* the reload counter's value now: the baseline */
        if (rc == d->data && d->stream_trim) stream_trim_run(d->stream_trim);
        announce_ready(d);
    } else {
        char where[320];
        notify_status("waiting for redis at %s", config_redis_where(d->cfg, where, sizeof(where)));
        log_complain(&d->redis_down, "main", "redis unavailable at %s (%s); retrying with backoff", where,
                     err ? err : "connection lost");
    }
}

static void close_handle(uv_handle_t *h)
{
    if (!uv_is_closing(h)) uv_close(h, NULL);
}

static void on_rconn_closed(void *arg)
{
    struct daemon *d = arg;
    if (--d->rconns_open > 0) return;
    /* Every Redis callback has fired: the queue has no more users. */
    queue_free(d->queue);
    d->queue = NULL;
    d->api.queue = NULL;
    store_cmds_free(d->cmds, NULL, NULL); /* what never got an answer stays pending in Redis */
    d->cmds = NULL;
    store_job_free(d->store);
    d->store = NULL;
    store_cmds_free(d->api.cmds, NULL, NULL); /* what waits (a webhook counter) is dropped */
    d->api.cmds = NULL;
    store_cmds_free(d->events_cmds, NULL, NULL); /* an event not acked stays pending in Redis */
    d->events_cmds = NULL;
    store_cmds_free(d->limit_cmds, NULL, NULL);
    d->limit_cmds = NULL;
    store_cmds_free(d->keys_cmds, NULL, NULL); /* a check not answered: a reload waiting is dropped at exit */
    d->keys_cmds = NULL;
    keylease_free(d->keylease); /* after its layer: no answer can reach it now */
    d->keylease = NULL;
}

static void on_http_closed(void *arg)
{
    struct daemon *d = arg;
    d->http = NULL;
    d->api.http_admin = NULL;
}

static void on_http_public_closed(void *arg)
{
    struct daemon *d = arg;
    d->http_public = NULL;
    d->api.http_public = NULL;
}

/* A listener's [admin]/[public] limits as http.h takes them. */
static struct http_limits listener_limits(const struct config_listener *l, const char *name)
{
    return (struct http_limits){.max_header_bytes = (size_t)l->max_header_bytes,
                                .max_body_bytes = (size_t)l->max_body_bytes,
                                .idle_timeout_ms = (uint64_t)l->idle_timeout_ms,
                                .header_timeout_ms = (uint64_t)l->header_timeout_ms,
                                .body_timeout_ms = (uint64_t)l->body_timeout_ms,
                                .max_connections = (unsigned)l->max_connections,
                                .max_connections_per_client = (unsigned)l->max_connections_per_client,
                                .name = name};
}

/* The admin listener, and the public one when [public] listen is set;
 * without it the admin listener serves the public routes too (as when
 * herald had one listener), which is said once at start. */
static void start_listeners(struct daemon *d)
{
    struct http_limits al = listener_limits(&d->cfg->admin_http, "admin");
    d->http = http_server_new(&d->loop, &al);
    d->api.http_admin = d->http;
    if (d->cfg->public_listen) {
        struct http_limits pl = listener_limits(&d->cfg->public_http, "public");
        d->http_public = http_server_new(&d->loop, &pl);
        d->api.http_public = d->http_public;
    } else {
        log_warn("main", "[public] listen is not set: the link pages and provider webhooks are served on the admin "
                         "listener %s; set [public] listen to keep the admin API off the internet",
                 d->cfg->listen);
    }
    if (d->cfg->public_url_deprecated)
        log_warn("main", "[admin] public_url is deprecated: move it to [public] public_url");
    api_register(d->http, d->http_public ? d->http_public : d->http, &d->api);
    char err[256];
    if (http_listen(d->http, d->cfg->listen_host, d->cfg->listen_port, err, sizeof(err)) < 0) {
        log_error("main", "admin listener %s: %s", d->cfg->listen, err);
        d->exit_code = 1;
    }
    if (d->http_public && http_listen(d->http_public, d->cfg->public_host, d->cfg->public_port, err, sizeof(err)) < 0) {
        log_error("main", "public listener %s: %s", d->cfg->public_listen, err);
        d->exit_code = 1;
    }
}

static void on_close_retry(uv_timer_t *t);
static void reload(struct daemon *d, const char *trigger);

static void close_all(struct daemon *d)
{
    if (d->closing) return;
    if (dispatch_in_flight(d->dispatch) > 0) {
        /* A plugin call on a worker thread cannot be abandoned: its result
         * must still find the queue alive. Local plugins return quickly. */
        uv_timer_start(&d->drain_timer, on_close_retry, 100, 0);
        return;
    }
    /* The leases go back before the connection closes (the other daemons
     * need not wait for their expiry); their answer is waited for briefly.
     * The sealing lease too (retire-key need not wait for it to lapse). */
    if (!d->limits_released) {
        d->limits_released = true;
        d->limits_deadline = uv_now(&d->loop) + 500;
        limit_release_all(d->limit);
        keylease_release(d->keylease);
    }
    if ((!limit_idle(d->limit) || !keylease_idle(d->keylease)) && uv_now(&d->loop) < d->limits_deadline &&
        rconn_ready(d->data)) {
        uv_timer_start(&d->drain_timer, on_close_retry, 10, 0);
        return;
    }
    d->closing = true;
    dispatch_close(d->dispatch); /* its curl timer, polls and provider timers */
    uv_timer_stop(&d->drain_timer);
    close_handle((uv_handle_t *)&d->drain_timer);
    close_handle((uv_handle_t *)&d->sigterm);
    close_handle((uv_handle_t *)&d->sigint);
    close_handle((uv_handle_t *)&d->sighup);
    close_handle((uv_handle_t *)&d->reload_timer);
    stream_trim_close(d->stream_trim);
    retention_free(d->retention); /* freed once its calls in flight are in */
    d->retention = NULL;
    inactive_free(d->inactive);
    d->inactive = NULL;
    events_close(d->events);
    if (d->http) http_server_close(d->http, on_http_closed, d);
    if (d->http_public) http_server_close(d->http_public, on_http_public_closed, d);
    limit_close(d->limit);
    d->rconns_open = d->cluster ? 3 : 2;
    rconn_close(d->jobs, on_rconn_closed, d);
    rconn_close(d->data, on_rconn_closed, d);
    if (d->cluster) rcluster_close(d->cluster, on_rconn_closed, d);
}

static void on_drained(void *arg)
{
    struct daemon *d = arg;
    log_info("main", "drained; exiting");
    close_all(d);
}

static void on_close_retry(uv_timer_t *t)
{
    close_all(t->data);
}

static void on_drain_timeout(uv_timer_t *t)
{
    struct daemon *d = t->data;
    log_warn("main", "drain timeout reached; unfinished work stays pending in Redis and resumes on restart");
    /* Requests still at a provider end as unknown: they may have arrived. */
    dispatch_abort(d->dispatch);
    close_all(d);
}

static void on_signal(uv_signal_t *s, int signum)
{
    struct daemon *d = s->data;
    if (signum == SIGHUP) {
        reload(d, "SIGHUP");
        return;
    }
    if (d->stopping) {
        log_info("main", "second signal: stopping now");
        dispatch_abort(d->dispatch);
        close_all(d);
        return;
    }
    d->stopping = true;
    d->api.stopping = true;
    notify_stopping();
    log_info("main", "signal %d: stopping (drain_timeout=%lldms)", signum, (long long)d->cfg->drain_timeout_ms);
    uv_timer_start(&d->drain_timer, on_drain_timeout, (uint64_t)d->cfg->drain_timeout_ms, 0);
    queue_stop(d->queue, on_drained, d);
}

static void make_run_id(char *buf, size_t len)
{
    unsigned char rnd[8];
    if (uv_random(NULL, NULL, rnd, sizeof(rnd), 0, NULL) != 0) {
        uint64_t t = (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 32);
        memcpy(rnd, &t, sizeof(rnd));
    }
    size_t o = 0;
    for (size_t i = 0; i < sizeof(rnd) && o + 2 < len; i++) o += (size_t)snprintf(buf + o, len - o, "%02x", rnd[i]);
}

/* rand() drives the jitter of dispatch retries and of Redis reconnects;
 * unseeded, every daemon would draw the same delays and retry in step. */
static void seed_jitter(void)
{
    unsigned seed;
    if (getrandom(&seed, sizeof(seed), GRND_NONBLOCK) != (ssize_t)sizeof(seed))
        seed = (unsigned)time(NULL) ^ ((unsigned)getpid() << 16);
    srand(seed);
}

/* The cluster's map or a master's connection changed: one line when herald
 * starts waiting for the cluster, one when it is whole again. */
static void on_cluster_wake(void *arg)
{
    struct daemon *d = arg;
    struct rcluster_status cs;
    rcluster_status(d->cluster, &cs);
    if (!cs.known) { /* no seed answered yet, or none gave a map */
        if (cs.reachable && !cs.error[0]) return; /* the map is on its way */
        char where[320];
        notify_status("waiting for redis at %s", config_redis_where(d->cfg, where, sizeof(where)));
        log_complain(&d->redis_down, "main", "redis unavailable at %s (%s); retrying with backoff", where,
                     cs.error[0] ? cs.error : "no seed node answers");
        return;
    }
    if (cs.down || cs.unserved)
        log_complain(&d->cluster_down, "main",
                     "redis cluster: %zu of %zu masters unreachable, %zu slots served by none; waiting for the "
                     "cluster (a failover?)", cs.down, cs.masters, cs.unserved);
    else
        log_recovered(&d->cluster_down, "main", "redis cluster: every master reachable, every slot served (%zu masters)",
                      cs.masters);
    announce_ready(d);
}

/* On a cluster: the map, a connection per master, and the jobs and data
 * connections pinned to the master of the control plane's slot. */
static void start_cluster(struct daemon *d)
{
    struct rcluster_addr seeds[RCLUSTER_MAX_MASTERS];
    size_t n = 0;
    char err[160];
    rcluster_parse_seeds(d->cfg->redis_cluster, seeds, RCLUSTER_MAX_MASTERS, &n, err, sizeof(err)); /* checked at load */
    struct rcluster_options opt = {.seeds = seeds, .nseeds = n, .user = d->cfg->redis_user,
                                   .password = d->cfg->redis_password, .timeout_ms = 10000};
    d->cluster = rcluster_new(&d->loop, &opt);
    struct strbuf k;
    strbuf_init(&k);
    store_key_jobs(&k, d->cfg->prefix);
    unsigned slot = rcluster_slot(k.buf, k.len);
    strbuf_free(&k);
    rcluster_pin(d->cluster, d->jobs, slot);
    rcluster_pin(d->cluster, d->data, slot);
    rcluster_on_wake(d->cluster, on_cluster_wake, d);
}

/* --check-config --connect: Redis as the config names it, as its user. */
static int check_redis(const struct config *cfg)
{
    char err[512], where[320];
    struct rcluster_sync *cs = NULL;
    bool cluster = cfg->redis_cluster && cfg->redis_cluster[0];
    redisContext *c = cluster ? store_check_connect_cluster(cfg, &cs, err, sizeof(err))
                              : store_check_connect(cfg, err, sizeof(err));
    if (!c) {
        fprintf(stderr, "%s\n", err);
        return -1;
    }
    struct strbuf problems;
    strbuf_init(&problems);
    int n = cluster ? store_check_access_cluster(cs, cfg, &problems) : store_check_access(c, cfg, &problems);
    if (n == 0) { /* the key file against the registry, as the daemon's start would (registering nothing) */
        struct strbuf warn;
        strbuf_init(&warn);
        char kerr[512];
        int krc = keyreg_check_sync(c, cfg->prefix, cfg->keys, false, &warn, kerr, sizeof(kerr));
        for (char *line = warn.buf, *nl; line && *line; line = nl + 1) {
            if (!(nl = strchr(line, '\n'))) break;
            strbuf_addf(&problems, "warning: [privacy] key_file: %.*s\n", (int)(nl - line), line);
        }
        if (krc < 0) {
            strbuf_addf(&problems, "%s%s\n", krc == -HERALD_EINVAL ? "[privacy] key_file: " : "redis: ", kerr);
            n++;
        }
        strbuf_free(&warn);
    }
    size_t masters = cs ? rcluster_sync_nodes(cs) : 0;
    rcluster_sync_free(cs);
    redisFree(c);
    fputs(problems.buf ? problems.buf : "", stderr);
    strbuf_free(&problems);
    if (n) return -1;
    if (cluster)
        printf("redis OK: %s, %zu masters, as user %s\n", config_redis_where(cfg, where, sizeof(where)), masters,
               cfg->redis_user ? cfg->redis_user : "default");
    else
        printf("redis OK: %s as user %s, database %d\n", config_redis_where(cfg, where, sizeof(where)),
               cfg->redis_user ? cfg->redis_user : "default", cfg->redis_db);
    return 0;
}

/* Loads path and overrides into cfg and its plugin set (*ps) as
 * --check-config would: returns the number of errors (or < 0 when the file
 * cannot be read) with every error and warning in report, sorted by line. */
static int load_config(const char *path, const char **overrides, size_t n, struct config *cfg,
                       struct plugin_set **ps, struct l10n_set **ls, struct strbuf *report)
{
    int nerr = config_load(path, overrides, n, cfg, report);
    /* Plugins check their settings even when the rest has errors, so that
     * one run shows every problem; the catalogues too. */
    if (nerr >= 0) nerr += plugin_set_load(cfg, ps, report);
    if (nerr >= 0 && cfg->locales_dir && cfg->default_locale)
        nerr += locales_load(cfg->locales_dir, cfg->default_locale, ls, report);
    if (nerr >= 0 && cfg->default_tz) {
        struct tzdb *db = tzdb_new(NULL);
        if (!tzdb_get(db, cfg->default_tz)) {
            strbuf_addf(report, "%s: [daemon] default_tz: unknown time zone (no such file under /usr/share/zoneinfo)\n",
                        path);
            nerr++;
        }
        tzdb_free(db);
    }
    if (nerr >= 0) config_warnings(cfg, report); /* lines with "warning:", not counted */
    config_sort_report(report, path);
    return nerr;
}

static int load(struct daemon *d, const char *path, const char **overrides, size_t n, bool check_only)
{
    struct strbuf errors;
    strbuf_init(&errors);
    int nerr = load_config(path, overrides, n, d->cfg, &d->plugins, &d->locales, &errors);
    if (nerr != 0) {
        fputs(errors.buf ? errors.buf : "", stderr);
        if (nerr > 0) fprintf(stderr, "%d error%s in %s\n", nerr, nerr > 1 ? "s" : "", path);
        strbuf_free(&errors);
        return -1;
    }
    if (check_only && d->cfg->public_url_deprecated)
        fprintf(stderr, "%s: warning: [admin] public_url is deprecated: move it to [public] public_url\n", path);
    if (check_only) {
        fputs(errors.buf ? errors.buf : "", stderr); /* the warnings */
        strbuf_free(&errors);
    } else {
        d->warnings = errors; /* logged once the log is set up */
    }
    return 0;
}

/* ---- reload ------------------------------------------------------------
 *
 * SIGHUP, or a bump of the Redis counter <prefix>:reload that every daemon
 * polls each second (heraldctl reload): the file is loaded aside with its
 * plugins, as --check-config would; nothing changes unless all of it is
 * valid, no restart-only key changed (config_restart_changes) and every
 * moved listener could bind. Then, in this one loop callback (so between
 * two batches of any job: no other callback runs meanwhile), the new
 * configuration replaces the old everywhere that reads one: dispatch
 * (a new generation of providers; messages in flight finish on the old,
 * which dispatch frees through release_config once they are done), the
 * queue, the job store, the API, the people store, the listeners' limits,
 * the log. The old config stays alive as long as dispatch's old
 * generation, and pointers into its restart-only strings (the key prefix)
 * were handed over to the new one (config_keep_fixed). */

static void release_config(const struct config *cfg, struct plugin_set *ps, void *arg)
{
    (void)arg;
    plugin_set_free(ps);
    config_free((struct config *)cfg);
    free((struct config *)cfg);
}

static void on_retired_http_closed(void *arg)
{
    (void)arg; /* a listener a reload moved: its connections are closed */
}

/* Binds a listener for the new address of a reload, with the routes of
 * its side (the other side's land on a scratch server never bound). */
static struct http_server *bind_moved(struct daemon *d, const struct config *next, bool admin, char *err,
                                      size_t errlen)
{
    struct http_limits l = admin ? listener_limits(&next->admin_http, "admin")
                                 : listener_limits(&next->public_http, "public");
    struct http_server *srv = http_server_new(&d->loop, &l);
    if (admin && !d->http_public) {
        api_register(srv, srv, &d->api);
    } else {
        struct http_server *scratch = http_server_new(&d->loop, NULL);
        api_register(admin ? srv : scratch, admin ? scratch : srv, &d->api);
        http_server_close(scratch, NULL, NULL);
    }
    int rc = admin ? http_listen(srv, next->listen_host, next->listen_port, err, errlen)
                   : http_listen(srv, next->public_host, next->public_port, err, errlen);
    if (rc < 0) {
        http_server_close(srv, NULL, NULL);
        return NULL;
    }
    return srv;
}

/* Logs a report's lines (errors and warnings, as --check-config prints them). */
static void log_report(const struct strbuf *report, bool errors)
{
    for (char *line = report->buf, *nl; line && *line; line = nl + 1) {
        if (!(nl = strchr(line, '\n'))) break;
        if (errors && !strstr(line, ": warning: ")) log_error("config", "%.*s", (int)(nl - line), line);
        else log_warn("config", "%.*s", (int)(nl - line), line);
    }
}

static void reload_refused(const char *why, const char *detail)
{
    metrics_config_reload(false, 0);
    log_error("main", "reload refused (%s): %s; the running configuration is kept", why, detail);
}

/* READY=1 after RELOADING=1, applied or not (before the first READY=1,
 * at start while Redis is away, announce_ready sends it later). */
static void reload_done(struct daemon *d)
{
    if (!d->ready) return;
    char status[128];
    snprintf(status, sizeof(status), "serving on %s:%d", d->cfg->listen_host, http_bound_port(d->http));
    notify_ready(status);
}

/* Frees what a refused reload loaded aside, and says READY=1 again. */
static void reload_drop(struct daemon *d, struct config *next, struct plugin_set *ps, struct l10n_set *ls,
                        struct strbuf *report)
{
    plugin_set_free(ps);
    l10n_set_unref(ls);
    config_free(next);
    free(next);
    strbuf_free(report);
    reload_done(d);
}

static void reload_apply(struct daemon *d, const char *trigger, struct config *next, struct plugin_set *ps,
                         struct l10n_set *ls, struct strbuf *report);
static bool keys_changed(const struct seal_keys *a, const struct seal_keys *b);
static void keys_check_reload(struct daemon *d, const char *trigger, struct config *next, struct plugin_set *ps,
                              struct l10n_set *ls, struct strbuf *report);

static void reload(struct daemon *d, const char *trigger)
{
    if (d->stopping) {
        log_info("main", "reload (%s) ignored: stopping", trigger);
        return;
    }
    if (d->pending.on) {
        log_warn("main", "reload (%s) ignored: the reload (%s) before it waits for Redis to check its keys",
                 trigger, d->pending.trigger);
        return;
    }
    notify_reloading();
    struct config *next = xcalloc(1, sizeof(*next));
    struct plugin_set *ps = NULL;
    struct l10n_set *ls = NULL;
    struct strbuf report, names;
    strbuf_init(&report);
    strbuf_init(&names);
    int nerr = load_config(d->config_path, d->overrides, d->noverrides, next, &ps, &ls, &report);
    if (nerr != 0) {
        log_report(&report, true);
        char what[64];
        if (nerr > 0) snprintf(what, sizeof(what), "%d error%s in the file", nerr, nerr > 1 ? "s" : "");
        else snprintf(what, sizeof(what), "the file cannot be read");
        reload_refused(trigger, what);
        strbuf_free(&names);
        reload_drop(d, next, ps, ls, &report);
        return;
    }
    if (config_restart_changes(d->cfg, next, &names) > 0) {
        strbuf_adds(&names, " can change only at a restart");
        reload_refused(trigger, names.buf);
        strbuf_free(&names);
        reload_drop(d, next, ps, ls, &report);
        return;
    }
    strbuf_free(&names);
    /* Other keys than the running ones: the registry decides first. */
    if (keys_changed(d->cfg->keys, next->keys)) keys_check_reload(d, trigger, next, ps, ls, &report);
    else reload_apply(d, trigger, next, ps, ls, &report);
}

/* The rest of a reload, once all of next is valid: binds the moved
 * listeners, then swaps. Owns next, ps, ls and report. */
static void reload_apply(struct daemon *d, const char *trigger, struct config *next, struct plugin_set *ps,
                         struct l10n_set *ls, struct strbuf *report)
{
    struct http_server *admin = NULL, *public = NULL;
    char err[256];
    bool admin_moved = strcmp(d->cfg->listen_host, next->listen_host) != 0 || d->cfg->listen_port != next->listen_port;
    bool public_moved = d->http_public && (strcmp(d->cfg->public_host, next->public_host) != 0 ||
                                           d->cfg->public_port != next->public_port);
    if (admin_moved && !(admin = bind_moved(d, next, true, err, sizeof(err)))) {
        log_error("main", "reload: admin listener %s: %s", next->listen, err);
        reload_refused(trigger, "a listener cannot bind");
        goto refused;
    }
    if (public_moved && !(public = bind_moved(d, next, false, err, sizeof(err)))) {
        log_error("main", "reload: public listener %s: %s", next->public_listen, err);
        reload_refused(trigger, "a listener cannot bind");
        goto refused;
    }

    /* All of it is valid: swap, in this callback. */
    config_keep_fixed(next, d->cfg);
    limit_configure(d->limit, next); /* before dispatch moves waiting messages to the new providers */
    dispatch_reload(d->dispatch, next, ps); /* releases the old config when its last message is done */
    d->cfg = next;
    d->plugins = ps;
    queue_reload(d->queue, next);
    store_job_reload(d->store, next);
    if (d->retention) retention_reload(d->retention, next);
    if (d->inactive) inactive_reload(d->inactive, next);
    people_reload(d->api.people, next);
    stream_trim_reload(d->stream_trim, next);
    events_reload(d->events, next);
    d->api.cfg = next;
    l10n_set_unref(d->locales); /* pages in progress keep theirs */
    d->locales = d->api.locales = ls;
    d->api.plugins_loaded = plugin_set_count(ps);
    d->api.plugins = ps;
    struct http_limits al = listener_limits(&next->admin_http, "admin");
    struct http_limits pl = listener_limits(&next->public_http, "public");
    if (admin) {
        http_server_close(d->http, on_retired_http_closed, d);
        d->http = d->api.http_admin = admin;
    } else {
        http_server_set_limits(d->http, &al);
    }
    if (public) {
        http_server_close(d->http_public, on_retired_http_closed, d);
        d->http_public = d->api.http_public = public;
    } else if (d->http_public) {
        http_server_set_limits(d->http_public, &pl);
    }
    log_set_level((enum log_level)next->log_level);
    log_set_format((enum log_format)next->log_format);
    log_report(report, false); /* the warnings */
    d->reloads++;
    metrics_config_reload(true, (int64_t)time(NULL));
    log_info("main", "configuration reloaded (%s) reload=%lu providers=%zu caps=%zu listen=%s:%d public=%s:%d "
                     "in_flight=%zu",
             trigger, d->reloads, plugin_set_count(ps), next->ncaps, next->listen_host, http_bound_port(d->http),
             d->http_public ? next->public_host : next->listen_host,
             http_bound_port(d->http_public ? d->http_public : d->http), dispatch_in_flight(d->dispatch));
    strbuf_free(report);
    reload_done(d);
    return;
refused:
    if (admin) http_server_close(admin, NULL, NULL); /* bound for nothing: the public one failed */
    reload_drop(d, next, ps, ls, report);
}

static void on_reload_counter(redisReply *reply, enum store_error err, const char *text, void *arg)
{
    (void)err;
    (void)text;
    struct daemon *d = arg;
    d->reload_polling = false;
    if (!reply || d->stopping) return; /* Redis away: the next poll asks again */
    long long n = 0;
    if (reply->type == REDIS_REPLY_STRING) n = strtoll(reply->str, NULL, 10);
    else if (reply->type == REDIS_REPLY_INTEGER) n = reply->integer;
    if (d->reload_seen >= 0 && n != d->reload_seen) {
        d->reload_seen = n;
        reload(d, "heraldctl reload");
        return;
    }
    d->reload_seen = n;
}

static void on_reload_timer(uv_timer_t *t)
{
    struct daemon *d = t->data;
    if (d->reload_polling || d->stopping || !d->api.cmds || !rconn_ready(d->data)) return;
    struct strbuf k;
    strbuf_init(&k);
    store_key_reload(&k, d->cfg->prefix);
    if (STORE_SEND(d->api.cmds, STORE_CMD_ONCE, on_reload_counter, d, "GET", k.buf) == 0) d->reload_polling = true;
    strbuf_free(&k);
}

/* ---- keys ----------------------------------------------------------------
 *
 * The key registry (keyreg.h) is asked when the data connection first
 * answers, before the queue reads any job (a key file that would leave
 * people undecryptable must not send a message first), and at a reload
 * whose keys differ from the running ones, before any of it applies. Its
 * commands go on a layer of their own (keys_cmds) without STORE_CMD_ONCE:
 * a Redis error is waited out and the command sent again (store_cmd.h),
 * never taken for an answer; meanwhile the queue does not start, or the
 * reload waits (and a reload asked meanwhile is ignored, said in the log). */

static bool keys_changed(const struct seal_keys *a, const struct seal_keys *b)
{
    size_t na = a ? a->n : 0, nb = b ? b->n : 0;
    if (na != nb) return true;
    for (size_t i = 0; i < na; i++)
        if (strcmp(a->v[i].id, b->v[i].id) != 0 || memcmp(a->v[i].key, b->v[i].key, SEAL_KEY_LEN) != 0) return true;
    return false;
}

static void on_key_registered(redisReply *reply, enum store_error err, const char *text, void *arg)
{
    (void)reply; /* 1: registered now, 0: it was; the registry's read that follows decides */
    (void)err;
    (void)text;
    (void)arg;
}

/* With register: registers every key of keys (HSETNX) first. Then reads
 * the registry into cb, which calls again with register when the answer
 * lacks a key of the file (keys_unknown): known keys cost no write. */
static void keys_send(struct daemon *d, const struct seal_keys *keys, bool register_them, store_cmd_cb cb)
{
    struct strbuf k;
    strbuf_init(&k);
    keyreg_key(&k, d->cfg->prefix);
    for (size_t i = 0; register_them && keys && i < keys->n; i++) {
        char fp[KEYREG_FP_HEX + 1];
        keyreg_fingerprint(&keys->v[i], fp);
        STORE_SEND(d->keys_cmds, 0, on_key_registered, NULL, "HSETNX", k.buf, keys->v[i].id, fp);
    }
    STORE_SEND(d->keys_cmds, 0, cb, d, "HGETALL", k.buf);
    strbuf_free(&k);
}

/* The registry lacks a key of keys and accepts the file: registered now,
 * read again into cb. A file it refuses registers nothing (its new ids
 * would then refuse every other daemon's file that lacks them). */
static bool keys_unknown(struct daemon *d, const struct seal_keys *keys, const redisReply *reply, store_cmd_cb cb)
{
    char why[512];
    if (reply->type != REDIS_REPLY_ARRAY || keyreg_registered(keys, reply) ||
        keyreg_decide_reply(keys, reply, NULL, why, sizeof(why)) < 0)
        return false;
    keys_send(d, keys, true, cb);
    return true;
}

/* The registry's answer against keys: 0 (its warnings logged), or < 0 with err. */
static int keys_decide(const struct seal_keys *keys, const redisReply *reply, char *err, size_t errlen)
{
    struct strbuf warn;
    strbuf_init(&warn);
    int rc = keyreg_decide_reply(keys, reply, &warn, err, errlen);
    for (char *line = warn.buf, *nl; rc == 0 && line && *line; line = nl + 1) {
        if (!(nl = strchr(line, '\n'))) break;
        log_warn("main", "[privacy] key_file: %.*s", (int)(nl - line), line);
    }
    strbuf_free(&warn);
    return rc;
}

static void on_keys_start(redisReply *reply, enum store_error err, const char *text, void *arg)
{
    (void)err;
    (void)text;
    struct daemon *d = arg;
    if (!reply || d->stopping || keys_unknown(d, d->cfg->keys, reply, on_keys_start)) return;
    char why[512];
    if (keys_decide(d->cfg->keys, reply, why, sizeof(why)) < 0) {
        log_error("main", "[privacy] key_file %s: %s; herald stops",
                  d->cfg->privacy_key_file ? d->cfg->privacy_key_file : "(not set)", why);
        d->exit_code = 1;
        d->stopping = true;
        d->api.stopping = true;
        notify_stopping();
        close_all(d);
        return;
    }
    log_info("main", "keys checked against the key registry keys=%zu", d->cfg->keys ? d->cfg->keys->n : 0);
    /* The queue starts once the lease on the sealing key is held (on_lease_taken). */
    keylease_set(d->keylease, d->cfg->keys ? d->cfg->keys->v[0].id : NULL);
}

/* The lease on the sealing key is held: at start, the queue starts now. */
static void on_lease_taken(void *arg)
{
    struct daemon *d = arg;
    if (d->keys_checked || d->stopping) return;
    d->keys_checked = true;
    if (rconn_ready(d->data)) queue_connected(d->queue, false);
    if (rconn_ready(d->jobs)) queue_connected(d->queue, true);
    announce_ready(d);
}

/* The sealing key was retired (heraldctl retire-key) while this daemon was
 * cut off from Redis longer than a lease, or between its check and its
 * lease: it must not seal another person under it. It stops as a retired
 * first key stops it at start: a running queue drains first. */
static void on_lease_refused(const char *id, void *arg)
{
    struct daemon *d = arg;
    if (d->stopping) return;
    log_error("main",
              "[privacy] key_file %s: key '%s', the first (the one that seals), was retired (heraldctl retire-key) "
              "while this daemon used it; herald stops: put a new key with a new id first",
              d->cfg->privacy_key_file ? d->cfg->privacy_key_file : "(not set)", id);
    d->exit_code = 1;
    d->stopping = true;
    d->api.stopping = true;
    /* While it drains, the API and the pages encrypt nothing more. */
    people_refuse_sealing(d->api.people,
                          "this daemon is stopping: the key that encrypts contact data was retired; try another");
    notify_stopping();
    if (!d->keys_checked) {
        close_all(d);
        return;
    }
    uv_timer_start(&d->drain_timer, on_drain_timeout, (uint64_t)d->cfg->drain_timeout_ms, 0);
    queue_stop(d->queue, on_drained, d);
}

static void keys_check_start(struct daemon *d)
{
    d->keys_sent = true;
    keys_send(d, d->cfg->keys, false, on_keys_start);
}

static void on_keys_reload(redisReply *reply, enum store_error err, const char *text, void *arg)
{
    (void)err;
    (void)text;
    struct daemon *d = arg;
    if (reply && !d->stopping && keys_unknown(d, d->pending.next->keys, reply, on_keys_reload)) return;
    struct reload_pending p = d->pending;
    d->pending.on = false;
    char why[512];
    if (!reply || d->stopping) {
        reload_drop(d, p.next, p.ps, p.ls, &p.report);
        return;
    }
    if (keys_decide(p.next->keys, reply, why, sizeof(why)) < 0) {
        log_error("main", "reload: [privacy] key_file: %s", why);
        reload_refused(p.trigger, "[privacy] key_file is refused by the key registry (the old keys stay)");
        reload_drop(d, p.next, p.ps, p.ls, &p.report);
        return;
    }
    reload_apply(d, p.trigger, p.next, p.ps, p.ls, &p.report);
    /* The new first key's lease replaces the old one's (one field per holder). */
    keylease_set(d->keylease, d->cfg->keys ? d->cfg->keys->v[0].id : NULL);
}

static void keys_check_reload(struct daemon *d, const char *trigger, struct config *next, struct plugin_set *ps,
                              struct l10n_set *ls, struct strbuf *report)
{
    d->pending = (struct reload_pending){.on = true, .trigger = trigger, .next = next, .ps = ps, .ls = ls,
                                         .report = *report};
    log_info("main", "reload (%s): the keys changed; checking them against the key registry", trigger);
    keys_send(d, next->keys, false, on_keys_reload);
}

int main(int argc, char **argv)
{
    const char *config_path = NULL;
    const char *overrides[MAX_OVERRIDES];
    size_t noverrides = 0;
    bool check_only = false, connect = false;
    static const struct option opts[] = {
        {"config", required_argument, NULL, 'c'},
        {"set", required_argument, NULL, 's'},
        {"check-config", no_argument, NULL, 'k'},
        {"connect", no_argument, NULL, 'C'},
        {"version", no_argument, NULL, 'V'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    int o;
    while ((o = getopt_long(argc, argv, "c:s:kVh", opts, NULL)) != -1) {
        switch (o) {
        case 'c': config_path = optarg; break;
        case 's':
            if (noverrides == MAX_OVERRIDES) {
                fprintf(stderr, "herald: too many --set options\n");
                return 2;
            }
            overrides[noverrides++] = optarg;
            break;
        case 'k': check_only = true; break;
        case 'C': connect = true; break;
        case 'V':
            printf("herald %s (plugin ABI %u)\nplugin_dir default: %s\nlocales_dir default: %s\nsystemd notify: %s\n",
                   HERALD_VERSION, HERALD_CHANNEL_ABI_VERSION, HERALD_PLUGIN_DIR, HERALD_LOCALE_DIR,
                   notify_supported() ? "yes" : "no");
            return 0;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (!config_path || optind < argc || (connect && !check_only)) {
        usage(stderr);
        return 2;
    }

    seed_jitter();
    /* Once, before any thread exists (plugins and dispatch use curl). */
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        fprintf(stderr, "herald: curl_global_init failed\n");
        return 1;
    }
    static struct daemon dm;
    struct daemon *d = &dm;
    d->cfg = xcalloc(1, sizeof(*d->cfg));
    d->config_path = config_path;
    d->overrides = overrides;
    d->noverrides = noverrides;
    d->reload_seen = -1;
    if (load(d, config_path, overrides, noverrides, check_only) < 0) {
        l10n_set_unref(d->locales);
        release_config(d->cfg, d->plugins, NULL);
        return 1;
    }
    /* Every key name depends on it: before the first is built. */
    store_keys_cluster(d->cfg->redis_cluster && d->cfg->redis_cluster[0]);
    if (check_only) {
        int rc = connect && check_redis(d->cfg) < 0 ? 1 : 0;
        if (rc == 0) printf("configuration OK\n");
        l10n_set_unref(d->locales);
        release_config(d->cfg, d->plugins, NULL);
        return rc;
    }
    metrics_config_loaded((int64_t)time(NULL));
    log_set_level((enum log_level)d->cfg->log_level);
    log_set_format((enum log_format)d->cfg->log_format);
    for (char *line = d->warnings.buf, *nl; line && *line; line = nl + 1) {
        if (!(nl = strchr(line, '\n'))) break;
        log_warn("config", "%.*s", (int)(nl - line), line);
    }
    strbuf_free(&d->warnings);
    signal(SIGPIPE, SIG_IGN);

    uv_loop_init(&d->loop);
    char consumer[HERALD_ID_MAX + 1];
    if (d->cfg->consumer && *d->cfg->consumer) {
        snprintf(consumer, sizeof(consumer), "%s", d->cfg->consumer);
    } else {
        /* Stable across restarts, so a restarted daemon finds its own pending jobs. */
        if (gethostname(consumer, sizeof(consumer)) != 0 || !herald_id_valid(consumer))
            snprintf(consumer, sizeof(consumer), "herald");
    }
    char run_id[32];
    make_run_id(run_id, sizeof(run_id));

    struct rconn_options ro = {.host = d->cfg->redis_host, .port = d->cfg->redis_port, .socket = d->cfg->redis_socket,
                               .db = d->cfg->redis_db, .user = d->cfg->redis_user,
                               .password = d->cfg->redis_password, .timeout_ms = 10000};
    ro.name = "jobs";
    ro.timeout_ms = 10000; /* above the 2 s blocking read */
    d->jobs = rconn_new(&d->loop, &ro, on_rconn_state, d);
    ro.name = "data";
    d->data = rconn_new(&d->loop, &ro, on_rconn_state, d);
    if (d->cfg->redis_cluster && d->cfg->redis_cluster[0]) start_cluster(d);
    d->dispatch = dispatch_new(&d->loop, d->cfg, d->plugins);
    dispatch_set_release(d->dispatch, release_config, d); /* it owns every configuration from now on */
    d->limit_cmds = store_cmds_new(&d->loop, d->data, "limit");
    d->limit = limit_new(&d->loop, d->limit_cmds, d->cfg->prefix, run_id, on_limit_wake, d);
    limit_configure(d->limit, d->cfg);
    dispatch_set_limit(d->dispatch, d->limit);
    d->cmds = store_cmds_new(&d->loop, d->data, "data");
    d->store = store_job_new(d->cmds, d->cfg, consumer);
    store_job_set_conns(d->store, d->jobs, d->data);
    d->queue = queue_new(&d->loop, d->cfg, &store_job_ops, d->store, d->dispatch, consumer, run_id);

    d->api = (struct api_state){.cfg = d->cfg, .jobs = d->jobs, .data = d->data, .cluster = d->cluster, .queue = d->queue,
                                .dispatch = d->dispatch, .locales = d->locales, .limit = d->limit,
                                .plugins_loaded = plugin_set_count(d->plugins), .plugins = d->plugins,
                                .started_at = time(NULL)};
    d->api.cmds = store_cmds_new(&d->loop, d->data, "api");
    d->api.people = people_new(d->api.cmds, d->cfg); /* the preference API's store (people.h) */
    d->stream_trim = stream_trim_new(&d->loop, d->api.cmds, d->cfg, STREAM_TRIM_PERIOD_MS);
    {
        /* The sweep of expired once-only records: one daemon at a time. */
        char owner[192];
        snprintf(owner, sizeof(owner), "%s %ld %s", consumer, (long)getpid(), run_id);
        d->retention = retention_new(&d->loop, d->api.cmds, d->cfg, owner);
        d->inactive = inactive_new(&d->loop, d->api.cmds, d->api.people, d->cfg, owner);
        d->keys_cmds = store_cmds_new(&d->loop, d->data, "keys");
        d->keylease = keylease_new(&d->loop, d->keys_cmds, d->cfg->prefix, owner, on_lease_refused, on_lease_taken, d);
    }
    d->events_cmds = store_cmds_new(&d->loop, d->data, "events");
    if (d->cluster) {
        struct store_cmds *layers[] = {d->limit_cmds, d->cmds, d->api.cmds, d->events_cmds, d->keys_cmds};
        for (size_t i = 0; i < sizeof(layers) / sizeof(layers[0]); i++) store_cmds_set_cluster(layers[i], d->cluster);
    }
    d->events = events_new(&d->loop, d->events_cmds, d->cfg, consumer);
    start_listeners(d);

    uv_timer_init(&d->loop, &d->drain_timer);
    d->drain_timer.data = d;
    uv_signal_init(&d->loop, &d->sigterm);
    uv_signal_init(&d->loop, &d->sigint);
    uv_signal_init(&d->loop, &d->sighup);
    uv_timer_init(&d->loop, &d->reload_timer);
    d->reload_timer.data = d;
    d->sigterm.data = d->sigint.data = d->sighup.data = d;
    if (d->exit_code == 0) {
        uv_signal_start(&d->sigterm, on_signal, SIGTERM);
        uv_signal_start(&d->sigint, on_signal, SIGINT);
        uv_signal_start(&d->sighup, on_signal, SIGHUP);
        uv_timer_start(&d->reload_timer, on_reload_timer, 0, 1000);
        log_info("main", "herald %s started consumer=%s run=%s listen=%s:%d public=%s:%d providers=%zu",
                 HERALD_VERSION, consumer, run_id, d->cfg->listen_host, http_bound_port(d->http),
                 d->http_public ? d->cfg->public_host : d->cfg->listen_host,
                 http_bound_port(d->http_public ? d->http_public : d->http), plugin_set_count(d->plugins));
        if (d->cluster) { /* jobs and data start once the map says where the control plane is */
            rcluster_start(d->cluster);
        } else {
            rconn_start(d->jobs);
            rconn_start(d->data);
        }
    } else {
        close_all(d);
    }

    uv_run(&d->loop, UV_RUN_DEFAULT);
    int rc = uv_loop_close(&d->loop);
    if (rc != 0) {
        log_error("main", "event loop did not close cleanly: %s", uv_strerror(rc));
        if (d->exit_code == 0) d->exit_code = 1;
    }
    if (d->pending.on) { /* a reload that waited for its keys' check until the end */
        plugin_set_free(d->pending.ps);
        l10n_set_unref(d->pending.ls);
        config_free(d->pending.next);
        free(d->pending.next);
        strbuf_free(&d->pending.report);
    }
    people_free(d->api.people); /* every call ended when the data connection closed */
    stream_trim_free(d->stream_trim); /* its timer closed, its layer freed: no callback left */
    events_free(d->events);
    dispatch_free(d->dispatch); /* releases every configuration (release_config) */
    l10n_set_unref(d->locales); /* every page ended with its connection */
    limit_free(d->limit);
    curl_global_cleanup();
    if (d->exit_code == 0) log_info("main", "stopped");
    return d->exit_code;
}
