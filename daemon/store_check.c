/*
 * store_check.c - see store_check.h.
 *
 * The access check asks Redis nothing about its ACL (ACL DRYRUN needs
 * rights herald's user should not have): it runs the commands themselves.
 * Redis checks a command and its keys against the user's ACL before it
 * runs it, so a command on a key that does not exist (or a conditional
 * write that cannot apply, SET ... XX) is refused with NOPERM exactly when
 * the real one would be, and otherwise changes nothing. Other errors of
 * these probes (NOGROUP, "requires the key to exist") are the expected
 * answers. Lua scripts run their redis.call()s as the same user, so the
 * probes cover the commands the scripts use too.
 */
#include "store_check.h"

#include <stdio.h>
#include <string.h>

#include "rcluster.h"
#include "store.h"

/* X(what herald does with it, arguments...): $K a key under the prefix
 * that never exists, $J the jobs stream, $S the sha of a loaded script.
 * Every command herald sends (the daemon, heraldctl and the Lua scripts)
 * is here or in STORE_CHECK_QUEUED, once: docs/operations.md's ACL rule
 * for herald's user lists the same commands (a test compares them). */
#define STORE_CHECK_PROBES(X)                                                                     \
    X("ping", "PING")                                                                              \
    X("read Redis's clock (shared provider limits)", "TIME")                                      \
    X("read the jobs stream's consumer groups", "XINFO", "GROUPS", "$J")                           \
    X("create the consumer group", "XGROUP", "CREATE", "$K", "herald-check", "$")                  \
    X("read jobs as a consumer", "XREADGROUP", "GROUP", "herald-check", "check", "COUNT", "1",     \
      "STREAMS", "$K", ">")                                                                        \
    X("take over a dead consumer's jobs", "XAUTOCLAIM", "$K", "herald-check", "check", "60000",   \
      "0-0", "COUNT", "1")                                                                         \
    X("keep a running job (heartbeat)", "XCLAIM", "$K", "herald-check", "check", "0", "0-1",       \
      "JUSTID")                                                                                    \
    X("check a job's owner", "XPENDING", "$K", "herald-check", "0-1", "0-1", "1")                  \
    X("acknowledge jobs", "XACK", "$K", "herald-check", "0-1")                                     \
    X("read a refused job's fields (dead letters)", "XRANGE", "$K", "0-1", "0-1")                  \
    X("delete a refused job once dead-lettered", "XDEL", "$K", "0-1")                              \
    X("append to streams (audit)", "XADD", "$K", "NOMKSTREAM", "MAXLEN", "~", "1000", "*",        \
      "check", "1")                                                                                \
    X("delete old stream entries ([retention])", "XTRIM", "$K", "MINID", "0-1")                    \
    X("read keys", "GET", "$K")                                                                    \
    X("write keys", "SET", "$K", "1", "XX")                                                        \
    X("check keys", "EXISTS", "$K")                                                                \
    X("read key types", "TYPE", "$K")                                                              \
    X("measure keys (heraldctl stats)", "MEMORY", "USAGE", "$K")                                   \
    X("delete keys", "DEL", "$K")                                                                  \
    X("replace a stream by its re-keyed copy (heraldctl migrate)", "RENAME", "$K", "$K")           \
    X("expire keys", "EXPIRE", "$K", "60")                                                         \
    X("expire keys in ms (shared provider limits)", "PEXPIRE", "$K", "60000")                      \
    X("expire keys at a time (a run's handed log)", "EXPIREAT", "$K", "1")                        \
    X("read a bit (a run's handed log)", "GETBIT", "$K", "0")                                      \
    X("write part of a string (a run's handed log)", "SETRANGE", "$K", "0", "")                    \
    X("list keys (the retention sweep, heraldctl)", "SCAN", "0", "MATCH", "$K", "COUNT", "1")      \
    X("read hashes", "HGETALL", "$K")                                                              \
    X("read hash fields", "HMGET", "$K", "check")                                                  \
    X("count hash fields", "HLEN", "$K")                                                           \
    X("read a hash field", "HGET", "$K", "check")                                                  \
    X("check hash fields", "HEXISTS", "$K", "check")                                               \
    X("write hashes", "HDEL", "$K", "check")                                                       \
    X("read sets", "SSCAN", "$K", "0")                                                             \
    X("read hashes by parts (heraldctl migrate)", "HSCAN", "$K", "0")                              \
    X("count sets", "SCARD", "$K")                                                                 \
    X("read small sets", "SMEMBERS", "$K")                                                         \
    X("check a set member", "SISMEMBER", "$K", "check")                                            \
    X("check set members", "SMISMEMBER", "$K", "check")                                            \
    X("write sets", "SREM", "$K", "check")                                                         \
    X("read sorted sets", "ZSCAN", "$K", "0")                                                      \
    X("count sorted sets", "ZCARD", "$K")                                                          \
    X("read sorted set ranges", "ZRANGE", "$K", "0", "0")                                          \
    X("read sorted sets by score", "ZRANGEBYSCORE", "$K", "0", "1")                                \
    X("read sorted sets newest first", "ZREVRANGE", "$K", "0", "0")                                \
    X("rank in sorted sets", "ZREVRANK", "$K", "check")                                            \
    X("write sorted sets", "ZADD", "$K", "XX", "1", "check")                                       \
    X("remove sorted set members", "ZREM", "$K", "check")                                          \
    X("trim sorted sets by score", "ZREMRANGEBYSCORE", "$K", "0", "1")                             \
    X("read lists", "LRANGE", "$K", "0", "0")                                                      \
    X("count lists", "LLEN", "$K")                                                                 \
    X("trim lists", "LTRIM", "$K", "0", "0")                                                       \
    X("load scripts", "SCRIPT", "LOAD", "return 1")                                                \
    X("run loaded scripts", "EVALSHA", "$S", "0")                                                  \
    X("run scripts", "EVAL", "return 1", "0")                                                      \
    X("run transactions", "MULTI")                                                                 \
    X("run transactions", "EXEC")

/* Writes that would create their key: only queued between MULTI and
 * DISCARD (Redis checks the ACL when it queues a command), never run. */
#define STORE_CHECK_QUEUED(X)                                                                     \
    X("write hash fields", "HSET", "$K", "check", "1")                                             \
    X("write a hash field once", "HSETNX", "$K", "check", "1")                                     \
    X("count in hashes", "HINCRBY", "$K", "check", "1")                                            \
    X("add set members", "SADD", "$K", "check")                                                    \
    X("prepend to lists", "LPUSH", "$K", "check")                                                  \
    X("append to lists", "RPUSH", "$K", "check")                                                   \
    X("count (heraldctl reload)", "INCR", "$K")

#define STORE_CHECK_MAX_ARGS 12

struct probe {
    const char *what;
    const char *argv[STORE_CHECK_MAX_ARGS];
};

static const struct probe probes[] = {
#define X(what, ...) {what, {__VA_ARGS__, NULL}},
    STORE_CHECK_PROBES(X)
#undef X
};

static const struct probe queued[] = {
#define X(what, ...) {what, {__VA_ARGS__, NULL}},
    STORE_CHECK_QUEUED(X)
#undef X
};

redisContext *store_check_connect(const struct config *cfg, char *err, size_t errlen)
{
    char addr[320];
    config_redis_where(cfg, addr, sizeof(addr));
    struct timeval tv = {2, 0};
    redisContext *c = cfg->redis_socket ? redisConnectUnixWithTimeout(cfg->redis_socket, tv)
                                        : redisConnectWithTimeout(cfg->redis_host, cfg->redis_port, tv);
    if (!c || c->err) {
        herald_seterr(err, errlen, "cannot connect to redis at %s: %s", addr, c ? c->errstr : "out of memory");
        if (c) redisFree(c);
        return NULL;
    }
    redisSetTimeout(c, (struct timeval){10, 0});
    redisReply *r;
    if (cfg->redis_password) {
        r = cfg->redis_user ? redisCommand(c, "AUTH %s %s", cfg->redis_user, cfg->redis_password)
                            : redisCommand(c, "AUTH %s", cfg->redis_password);
        if (!r || r->type == REDIS_REPLY_ERROR) {
            /* AUTH's errors (WRONGPASS, "no password is set") never quote the password. */
            herald_seterr(err, errlen, "redis at %s: authentication failed%s%s: %.120s", addr,
                          cfg->redis_user ? " for user " : "", cfg->redis_user ? cfg->redis_user : "",
                          r ? r->str : c->errstr);
            if (r) freeReplyObject(r);
            redisFree(c);
            return NULL;
        }
        freeReplyObject(r);
    }
    r = redisCommand(c, "SELECT %d", cfg->redis_db);
    if (!r || r->type == REDIS_REPLY_ERROR) {
        bool noauth = r && strncmp(r->str, "NOAUTH", 6) == 0;
        herald_seterr(err, errlen, "redis at %s: database %d: %.120s%s", addr, cfg->redis_db, r ? r->str : c->errstr,
                      noauth ? " (give the password in [redis] url, password or password_file)" : "");
        if (r) freeReplyObject(r);
        redisFree(c);
        return NULL;
    }
    freeReplyObject(r);
    return c;
}

/* Sends one probe; NULL when the connection failed (problem added). */
static redisReply *probe_send(redisContext *c, const struct probe *p, const char *absent, const char *jobs,
                              const char *sha, const char *user, struct strbuf *problems, int *n)
{
    const char *argv[STORE_CHECK_MAX_ARGS];
    int argc = 0;
    for (; p->argv[argc]; argc++) {
        const char *a = p->argv[argc];
        argv[argc] = strcmp(a, "$K") == 0 ? absent : strcmp(a, "$J") == 0 ? jobs : strcmp(a, "$S") == 0 ? sha : a;
    }
    redisReply *r = redisCommandArgv(c, argc, argv, NULL);
    if (!r) {
        strbuf_addf(problems, "redis: connection failed while checking whether user %s may %s (%s): %s\n", user,
                    p->what, argv[0], c->errstr);
        (*n)++;
        return NULL;
    }
    if (r->type == REDIS_REPLY_ERROR && strncmp(r->str, "NOPERM", 6) == 0) {
        /* Redis's NOPERM text names the command or says "keys": no argument of ours. */
        strbuf_addf(problems, "redis: user %s may not %s (%s): %.160s\n", user, p->what, argv[0], r->str);
        (*n)++;
    }
    return r;
}

static bool is_noperm(const redisReply *r)
{
    return r->type == REDIS_REPLY_ERROR && strncmp(r->str, "NOPERM", 6) == 0;
}

static int check_access(redisContext *c, const struct config *cfg, const char *absent, const char *jobs,
                        struct strbuf *problems);

int store_check_access(redisContext *c, const struct config *cfg, struct strbuf *problems)
{
    char absent[200], jobs[200];
    snprintf(absent, sizeof(absent), "%s:check:absent", cfg->prefix);
    snprintf(jobs, sizeof(jobs), "%s:jobs", cfg->prefix);
    return check_access(c, cfg, absent, jobs, problems);
}

static int check_access(redisContext *c, const struct config *cfg, const char *absent, const char *jobs,
                        struct strbuf *problems)
{
    char sha[64] = "0000000000000000000000000000000000000000";
    const char *user = cfg->redis_user ? cfg->redis_user : "default";
    int n = 0;
    bool in_multi = false;
    redisReply *r;
    for (size_t i = 0; i < sizeof(probes) / sizeof(probes[0]); i++) {
        if (!(r = probe_send(c, &probes[i], absent, jobs, sha, user, problems, &n))) return n;
        const char *cmd = probes[i].argv[0];
        if (strcmp(cmd, "MULTI") == 0) in_multi = r->type != REDIS_REPLY_ERROR;
        if (strcmp(cmd, "EXEC") == 0) in_multi = is_noperm(r); /* a refused EXEC leaves the MULTI open */
        if (r->type == REDIS_REPLY_STRING && strcmp(cmd, "SCRIPT") == 0 && r->len < sizeof(sha))
            snprintf(sha, sizeof(sha), "%s", r->str);
        freeReplyObject(r);
    }
    if (in_multi && (r = redisCommand(c, "DISCARD"))) freeReplyObject(r);
    /* The writes that would create a key: queued, then discarded. Without
     * MULTI (reported above) they are not sent at all. */
    r = redisCommand(c, "MULTI");
    bool queuing = r && r->type == REDIS_REPLY_STATUS;
    if (r) freeReplyObject(r);
    for (size_t i = 0; queuing && i < sizeof(queued) / sizeof(queued[0]); i++) {
        if (!(r = probe_send(c, &queued[i], absent, jobs, sha, user, problems, &n))) return n;
        freeReplyObject(r);
    }
    if (queuing) {
        static const struct probe discard = {"abandon transactions", {"DISCARD", NULL}};
        if (!(r = probe_send(c, &discard, absent, jobs, sha, user, problems, &n))) return n;
        freeReplyObject(r);
    }
    bool cl = store_keys_clustered(); /* the control plane's keys are {<prefix>}:* there */
    if (n)
        strbuf_addf(problems, "redis: herald needs these commands on the keys %s:*%s%s%s (docs/operations.md, "
                              "\"Redis\")\n", cfg->prefix, cl ? " and {" : "", cl ? cfg->prefix : "", cl ? "}:*" : "");
    return n;
}

static struct rcluster_options cluster_options(const struct config *cfg, struct rcluster_addr *seeds, size_t *n)
{
    char err[160];
    rcluster_parse_seeds(cfg->redis_cluster, seeds, RCLUSTER_MAX_MASTERS, n, err, sizeof(err)); /* checked at load */
    return (struct rcluster_options){.seeds = seeds, .nseeds = *n, .user = cfg->redis_user,
                                     .password = cfg->redis_password, .timeout_ms = 10000};
}

redisContext *store_check_connect_cluster(const struct config *cfg, struct rcluster_sync **cs, char *err,
                                          size_t errlen)
{
    struct rcluster_addr seeds[RCLUSTER_MAX_MASTERS];
    size_t n;
    struct rcluster_options opt = cluster_options(cfg, seeds, &n);
    char why[256];
    *cs = rcluster_sync_connect(&opt, why, sizeof(why));
    if (!*cs) {
        herald_seterr(err, errlen, "cannot reach the redis cluster (no seed of [redis] cluster answered): %s", why);
        return NULL;
    }
    struct strbuf k;
    strbuf_init(&k);
    store_key_jobs(&k, cfg->prefix);
    redisContext *c = rcluster_sync_open(*cs, rcluster_slot(k.buf, k.len), why, sizeof(why));
    strbuf_free(&k);
    if (!c) {
        herald_seterr(err, errlen, "redis cluster: the control plane's master: %s", why);
        rcluster_sync_free(*cs);
        *cs = NULL;
    }
    return c;
}

int store_check_access_cluster(struct rcluster_sync *cs, const struct config *cfg, struct strbuf *problems)
{
    int n = 0;
    struct strbuf jobs;
    strbuf_init(&jobs);
    store_key_jobs(&jobs, cfg->prefix);
    size_t control = rcluster_slot(jobs.buf, jobs.len);
    for (size_t i = 0; i < rcluster_sync_nodes(cs); i++) {
        const struct rcluster_addr *a = rcluster_sync_node_addr(cs, i);
        char err[256], absent[240];
        redisContext *c = rcluster_sync_node(cs, i, err, sizeof(err));
        if (!c) {
            strbuf_addf(problems, "redis: cluster master %s:%d: %s\n", a->host, a->port, err);
            n++;
            continue;
        }
        /* Keys this master serves: a person's ({tag}) and, where it is, the jobs stream. */
        snprintf(absent, sizeof(absent), "%s:check:{%s}:absent", cfg->prefix, rcluster_sync_node_tag(cs, i));
        redisContext *cc = rcluster_sync_ctx(cs, (unsigned)control, err, sizeof(err));
        struct strbuf p;
        strbuf_init(&p);
        int m = check_access(c, cfg, absent, cc == c ? jobs.buf : absent, &p);
        for (char *line = p.buf, *nl; m && line && *line; line = nl + 1) {
            if (!(nl = strchr(line, '\n'))) break;
            strbuf_addf(problems, "redis: cluster master %s:%d: %.*s\n", a->host, a->port, (int)(nl - line - 7), line + 7);
        }
        strbuf_free(&p);
        n += m;
    }
    strbuf_free(&jobs);
    return n;
}
