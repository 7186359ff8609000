/*
 * rcluster.c - slots, the slot map and per-master connections (rcluster.h).
 *
 * The async part owns one rconn per node address it has met (seeds,
 * masters of the map, redirect targets; at most RCLUSTER_MAX_CONNS) and
 * never closes one before rcluster_close: a node that was a replica and is
 * promoted keeps its connection. Its invariant: whenever some master's
 * connection is not usable or some slot is unserved, a refresh is due
 * within a second (a failover ends by the map changing, which only a
 * refresh sees); refreshes never overlap. Never logs.
 */
#include "rcluster.h"

#include "log.h"

#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* ---- slots -------------------------------------------------------------- */

uint16_t rcluster_crc16(const char *buf, size_t len)
{
    uint16_t crc = 0;
    for (size_t i = 0; i < len; i++) {
        crc ^= (uint16_t)((unsigned char)buf[i] << 8);
        for (int b = 0; b < 8; b++) crc = crc & 0x8000 ? (uint16_t)((crc << 1) ^ 0x1021) : (uint16_t)(crc << 1);
    }
    return crc;
}

unsigned rcluster_slot(const char *key, size_t len)
{
    const char *open = memchr(key, '{', len);
    if (open) {
        const char *tag = open + 1;
        const char *close = memchr(tag, '}', len - (size_t)(tag - key));
        if (close && close > tag) key = tag, len = (size_t)(close - tag);
    }
    return rcluster_crc16(key, len) & (RCLUSTER_SLOTS - 1);
}

#define TAG_MAX 5
static char slot_tags[RCLUSTER_SLOTS][TAG_MAX];
static bool slot_tags_done;

static void slot_tags_fill(void)
{
    static const char alphabet[] = "abcdefghijklmnopqrstuvwxyz0123456789";
    const size_t na = sizeof(alphabet) - 1;
    size_t missing = RCLUSTER_SLOTS;
    for (size_t len = 1; len < TAG_MAX && missing; len++) {
        size_t digit[TAG_MAX] = {0};
        char s[TAG_MAX];
        for (;;) {
            for (size_t i = 0; i < len; i++) s[i] = alphabet[digit[i]];
            unsigned slot = rcluster_crc16(s, len) & (RCLUSTER_SLOTS - 1);
            if (!slot_tags[slot][0]) {
                memcpy(slot_tags[slot], s, len);
                missing--;
            }
            size_t i = len;
            while (i > 0 && ++digit[i - 1] == na) digit[--i] = 0;
            if (i == 0) break;
        }
    }
    slot_tags_done = true;
}

const char *rcluster_slot_tag(unsigned slot)
{
    if (!slot_tags_done) slot_tags_fill();
    return slot_tags[slot & (RCLUSTER_SLOTS - 1)];
}

/* ---- the map ------------------------------------------------------------- */

static void map_reset(struct rcluster_map *m)
{
    m->nmasters = 0;
    memset(m->owner, RCLUSTER_NONE, sizeof(m->owner));
    m->unserved = RCLUSTER_SLOTS;
}

size_t rcluster_map_master(struct rcluster_map *m, const char *host, int port)
{
    for (size_t i = 0; i < m->nmasters; i++)
        if (m->masters[i].port == port && strcmp(m->masters[i].host, host) == 0) return i;
    if (m->nmasters == RCLUSTER_MAX_MASTERS) return RCLUSTER_NONE;
    herald_copy(m->masters[m->nmasters].host, RCLUSTER_HOST_MAX, host);
    m->masters[m->nmasters].port = port;
    return m->nmasters++;
}

static int map_assign(struct rcluster_map *m, long long lo, long long hi, const char *host, int port)
{
    if (lo < 0 || hi >= RCLUSTER_SLOTS || lo > hi || port <= 0 || port > 65535) return -HERALD_EINVAL;
    size_t i = rcluster_map_master(m, host, port);
    if (i == RCLUSTER_NONE) return -HERALD_EINVAL;
    for (long long s = lo; s <= hi; s++) {
        if (m->owner[s] == RCLUSTER_NONE) m->unserved--;
        m->owner[s] = (uint8_t)i;
    }
    return 0;
}

/* Renumbers the masters by the first slot each serves (a stable order:
 * node indexes and tags do not change with the order Redis lists them in). */
static void map_sort(struct rcluster_map *m)
{
    uint8_t order[RCLUSTER_MAX_MASTERS], rank[RCLUSTER_MAX_MASTERS];
    size_t n = 0;
    bool seen[RCLUSTER_MAX_MASTERS] = {false};
    for (size_t s = 0; s < RCLUSTER_SLOTS; s++) {
        uint8_t o = m->owner[s];
        if (o != RCLUSTER_NONE && !seen[o]) {
            seen[o] = true;
            order[n++] = o;
        }
    }
    for (size_t i = 0; i < m->nmasters; i++) /* masters serving nothing go last */
        if (!seen[i]) order[n++] = (uint8_t)i;
    struct rcluster_addr sorted[RCLUSTER_MAX_MASTERS];
    for (size_t i = 0; i < n; i++) {
        sorted[i] = m->masters[order[i]];
        rank[order[i]] = (uint8_t)i;
    }
    memcpy(m->masters, sorted, n * sizeof(sorted[0]));
    for (size_t s = 0; s < RCLUSTER_SLOTS; s++)
        if (m->owner[s] != RCLUSTER_NONE) m->owner[s] = rank[m->owner[s]];
}

static const char *endpoint(const redisReply *r, const char *fallback)
{
    if (!r || r->type != REDIS_REPLY_STRING || r->len == 0 || strcmp(r->str, "?") == 0) return fallback;
    return r->str;
}

static const redisReply *field(const redisReply *map, const char *name)
{
    if (!map || map->type != REDIS_REPLY_ARRAY) return NULL;
    for (size_t i = 0; i + 1 < map->elements; i += 2)
        if (map->element[i]->type == REDIS_REPLY_STRING && strcmp(map->element[i]->str, name) == 0)
            return map->element[i + 1];
    return NULL;
}

static long long integer(const redisReply *r)
{
    if (!r) return -1;
    if (r->type == REDIS_REPLY_INTEGER) return r->integer;
    if (r->type != REDIS_REPLY_STRING) return -1;
    char *end;
    errno = 0;
    long long v = strtoll(r->str, &end, 10);
    return errno || *end || end == r->str ? -1 : v;
}

int rcluster_map_from_shards(const redisReply *r, const char *fallback_host, struct rcluster_map *m, char *err,
                             size_t errlen)
{
    map_reset(m);
    if (!r || r->type != REDIS_REPLY_ARRAY) goto bad;
    for (size_t i = 0; i < r->elements; i++) {
        const redisReply *slots = field(r->element[i], "slots"), *nodes = field(r->element[i], "nodes");
        if (!slots || slots->type != REDIS_REPLY_ARRAY || !nodes || nodes->type != REDIS_REPLY_ARRAY ||
            slots->elements % 2)
            goto bad;
        const redisReply *master = NULL;
        for (size_t j = 0; j < nodes->elements; j++) {
            const redisReply *role = field(nodes->element[j], "role"), *health = field(nodes->element[j], "health");
            if (role && role->type == REDIS_REPLY_STRING && strcmp(role->str, "master") == 0 &&
                (!health || health->type != REDIS_REPLY_STRING || strcmp(health->str, "failed") != 0))
                master = nodes->element[j];
        }
        if (!master || !slots->elements) continue; /* a shard whose master failed serves nothing now */
        const char *host = endpoint(field(master, "endpoint"), endpoint(field(master, "ip"), fallback_host));
        long long port = integer(field(master, "port"));
        if (!host || port <= 0) goto bad;
        for (size_t j = 0; j < slots->elements; j += 2)
            if (map_assign(m, integer(slots->element[j]), integer(slots->element[j + 1]), host, (int)port) < 0)
                goto bad;
    }
    map_sort(m);
    return 0;
bad:
    herald_seterr(err, errlen, "CLUSTER SHARDS answered something else than a list of shards");
    map_reset(m);
    return -HERALD_EINVAL;
}

int rcluster_map_from_slots(const redisReply *r, const char *fallback_host, struct rcluster_map *m, char *err,
                            size_t errlen)
{
    map_reset(m);
    if (!r || r->type != REDIS_REPLY_ARRAY) goto bad;
    for (size_t i = 0; i < r->elements; i++) {
        const redisReply *e = r->element[i];
        if (e->type != REDIS_REPLY_ARRAY || e->elements < 3 || e->element[2]->type != REDIS_REPLY_ARRAY ||
            e->element[2]->elements < 2)
            goto bad;
        const redisReply *master = e->element[2];
        const char *host = endpoint(master->element[0], fallback_host);
        if (!host || map_assign(m, integer(e->element[0]), integer(e->element[1]), host,
                                (int)integer(master->element[1])) < 0)
            goto bad;
    }
    map_sort(m);
    return 0;
bad:
    herald_seterr(err, errlen, "CLUSTER SLOTS answered something else than a list of slot ranges");
    map_reset(m);
    return -HERALD_EINVAL;
}

static int parse_addr(const char *s, size_t len, struct rcluster_addr *out)
{
    const char *colon = NULL;
    for (size_t i = 0; i < len; i++)
        if (s[i] == ':') colon = s + i; /* the last: an IPv6 address has more */
    if (!colon) return -HERALD_EINVAL;
    size_t hlen = (size_t)(colon - s);
    if (hlen >= RCLUSTER_HOST_MAX) return -HERALD_EINVAL;
    long port = 0;
    const char *p = colon + 1, *end = s + len;
    if (p == end || end - p > 5) return -HERALD_EINVAL;
    for (; p < end; p++) {
        if (!isdigit((unsigned char)*p)) return -HERALD_EINVAL;
        port = port * 10 + (*p - '0');
    }
    if (port < 1 || port > 65535) return -HERALD_EINVAL;
    memcpy(out->host, s, hlen);
    out->host[hlen] = '\0';
    out->port = (int)port;
    return 0;
}

enum rcluster_redirect rcluster_redirect_parse(const char *text, unsigned *slot, struct rcluster_addr *to)
{
    enum rcluster_redirect kind;
    const char *p;
    if (strncmp(text, "MOVED ", 6) == 0) kind = RCLUSTER_MOVED, p = text + 6;
    else if (strncmp(text, "ASK ", 4) == 0) kind = RCLUSTER_ASK, p = text + 4;
    else return RCLUSTER_NO_REDIRECT;
    char *end;
    errno = 0;
    long s = strtol(p, &end, 10);
    if (errno || end == p || *end != ' ' || s < 0 || s >= RCLUSTER_SLOTS) return RCLUSTER_NO_REDIRECT;
    p = end + 1;
    if (parse_addr(p, strcspn(p, " \r\n"), to) < 0) return RCLUSTER_NO_REDIRECT;
    *slot = (unsigned)s;
    return kind;
}

int rcluster_parse_seeds(const char *s, struct rcluster_addr *out, size_t max, size_t *n, char *err, size_t errlen)
{
    *n = 0;
    while (*s) {
        s += strspn(s, " \t,");
        size_t len = strcspn(s, " \t,");
        if (!len) break;
        if (*n == max) {
            herald_seterr(err, errlen, "at most %zu seed nodes", max);
            return -HERALD_EINVAL;
        }
        if (parse_addr(s, len, &out[*n]) < 0 || !out[*n].host[0]) {
            herald_seterr(err, errlen, "expected host:port, host:port, ... (a port from 1 to 65535 each)");
            return -HERALD_EINVAL;
        }
        (*n)++;
        s += len;
    }
    if (!*n) {
        herald_seterr(err, errlen, "expected host:port, host:port, ... (at least one seed node)");
        return -HERALD_EINVAL;
    }
    return 0;
}

/* ---- async ----------------------------------------------------------------- */

#define RCLUSTER_MAX_CONNS (2 * RCLUSTER_MAX_MASTERS)
#define RCLUSTER_REFRESH_SOON_MS 50
#define RCLUSTER_REFRESH_AGAIN_MS 500
#define RCLUSTER_MAX_WAKE 8
#define RCLUSTER_MAX_PINS 4

struct cnode {
    struct rcluster_addr addr;
    struct rconn *rc;
};

struct rcluster {
    uv_loop_t *loop;
    struct rcluster_options opt;
    struct rcluster_addr *seeds;
    char *user, *password;
    struct cnode conns[RCLUSTER_MAX_CONNS];
    size_t nconns;
    struct rcluster_map map;
    bool known;
    /* per master of the map: its connection */
    struct rconn *master_rc[RCLUSTER_MAX_MASTERS];
    int tag_slot[RCLUSTER_MAX_MASTERS]; /* per master: the first slot it serves (its tag's), -1 none */
    struct {
        rcluster_wake_cb cb;
        void *arg;
    } wake[RCLUSTER_MAX_WAKE];
    size_t nwake;
    struct {
        struct rconn *rc;
        unsigned slot;
        bool started;
    } pins[RCLUSTER_MAX_PINS];
    size_t npins;
    uv_timer_t timer;
    uint64_t due_ms;  /* loop time the timer fires, while it is active */
    bool refreshing;  /* a CLUSTER SHARDS/SLOTS is in flight */
    bool closing;
    /* Masters that may have been replaced without knowing it yet
     * (rcluster_suspect): commands for their slots wait until a map read
     * from a node that is none of them is applied. asked_suspect: none
     * other could be asked, so a suspect's own map ends the wait. */
    struct rconn *suspects[RCLUSTER_MAX_MASTERS];
    size_t nsuspects;
    bool asked_suspect;
    uint64_t refreshes, redirects, suspicions;
    char error[128];  /* why the latest map read failed ("" none) */
    size_t open;      /* handles and connections not closed yet */
    void (*done)(void *);
    void *done_arg;
};

static void wake_all(struct rcluster *cl)
{
    for (size_t i = 0; i < cl->nwake; i++) cl->wake[i].cb(cl->wake[i].arg);
}

static void on_timer(uv_timer_t *t);

/* A refresh in ms at the latest (an earlier one already due stands). */
static void schedule(struct rcluster *cl, uint64_t ms)
{
    if (cl->closing) return;
    uint64_t due = uv_now(cl->loop) + ms;
    if (uv_is_active((uv_handle_t *)&cl->timer) && cl->due_ms <= due) return;
    cl->due_ms = due;
    uv_timer_start(&cl->timer, on_timer, ms, 0);
}

static void on_node_state(struct rconn *rc, bool connected, const char *err, void *arg)
{
    struct rcluster *cl = arg;
    (void)rc;
    (void)err;
    if (cl->closing) return;
    if (connected) {
        if (!cl->known) rcluster_refresh(cl);
        wake_all(cl);
    } else {
        rcluster_refresh(cl); /* a master gone: a failover may follow */
        wake_all(cl);         /* its owners see the status change */
    }
}

static struct cnode *conn_find(struct rcluster *cl, const struct rcluster_addr *a)
{
    for (size_t i = 0; i < cl->nconns; i++)
        if (cl->conns[i].addr.port == a->port && strcmp(cl->conns[i].addr.host, a->host) == 0) return &cl->conns[i];
    return NULL;
}

struct rconn *rcluster_conn_at(struct rcluster *cl, const struct rcluster_addr *to)
{
    struct cnode *n = conn_find(cl, to);
    if (n) return n->rc;
    if (cl->nconns == RCLUSTER_MAX_CONNS || cl->closing) return NULL;
    n = &cl->conns[cl->nconns++];
    n->addr = *to;
    struct rconn_options ro = {.name = "cluster", .host = to->host, .port = to->port, .user = cl->user,
                               .password = cl->password, .timeout_ms = cl->opt.timeout_ms};
    n->rc = rconn_new(cl->loop, &ro, on_node_state, cl);
    cl->open++;
    rconn_start(n->rc);
    return n->rc;
}

/* Each master's tag slot, in one pass over the map (a tag is asked for per
 * batch; the map changes rarely). */
static void tags_compute(struct rcluster *cl)
{
    for (size_t i = 0; i < RCLUSTER_MAX_MASTERS; i++) cl->tag_slot[i] = -1;
    for (size_t s = RCLUSTER_SLOTS; s-- > 0;) /* downwards: the first slot wins */
        if (cl->map.owner[s] != RCLUSTER_NONE) cl->tag_slot[cl->map.owner[s]] = (int)s;
}

/* The map changed: every master has its connection, pinned ones follow. */
static void map_applied(struct rcluster *cl)
{
    tags_compute(cl);
    memset(cl->master_rc, 0, sizeof(cl->master_rc));
    for (size_t i = 0; i < cl->map.nmasters; i++) cl->master_rc[i] = rcluster_conn_at(cl, &cl->map.masters[i]);
    for (size_t i = 0; i < cl->npins; i++) {
        uint8_t o = cl->map.owner[cl->pins[i].slot];
        if (o == RCLUSTER_NONE) continue; /* keep its old target until one serves the slot */
        rconn_retarget(cl->pins[i].rc, cl->map.masters[o].host, cl->map.masters[o].port);
        if (!cl->pins[i].started) {
            cl->pins[i].started = true;
            rconn_start(cl->pins[i].rc);
        }
    }
}

static const struct rcluster_addr *addr_of(const struct rcluster *cl, const struct rconn *rc)
{
    for (size_t i = 0; i < cl->nconns; i++)
        if (cl->conns[i].rc == rc) return &cl->conns[i].addr;
    return NULL;
}

static bool suspected(const struct rcluster *cl, const struct rconn *rc)
{
    for (size_t i = 0; i < cl->nsuspects; i++)
        if (cl->suspects[i] == rc) return true;
    return false;
}

/* The suspects' check is over: the map m, read from the node on rc, is the
 * cluster's word on them. Said, since either answer is worth an operator's
 * knowing (a master that lost its replicas, or one replaced unawares). */
static void suspects_cleared(struct rcluster *cl, const struct rcluster_map *m, const struct rconn *rc)
{
    const struct rcluster_addr *by = addr_of(cl, rc);
    for (size_t j = 0; j < cl->nsuspects; j++) {
        const struct rcluster_addr *s = addr_of(cl, cl->suspects[j]);
        size_t i = 0;
        while (s && i < m->nmasters && (m->masters[i].port != s->port || strcmp(m->masters[i].host, s->host) != 0))
            i++;
        bool serves = s && i < m->nmasters && memchr(m->owner, (int)i, sizeof(m->owner)) != NULL;
        log_write(serves ? LOG_INFO : LOG_WARN, "store",
                  "master %s:%d, whose replicas fell short of a WAIT, %s (so says %s:%d%s)%s", s ? s->host : "?",
                  s ? s->port : 0, serves ? "still serves its slots" : "was replaced", by ? by->host : "?",
                  by ? by->port : 0, cl->asked_suspect ? ", a suspect too: no other node answered" : "",
                  serves ? "" : ": its last outcomes, lost with it, go again to the new master");
    }
    cl->nsuspects = 0;
}

static bool all_well(const struct rcluster *cl)
{
    if (!cl->known || cl->map.unserved) return false;
    for (size_t i = 0; i < cl->map.nmasters; i++)
        if (!cl->master_rc[i] || !rconn_ready(cl->master_rc[i])) return false;
    return true;
}

static void ask_map(struct rcluster *cl);

static void on_map(struct rconn *rc, redisReply *r, void *priv)
{
    struct rcluster *cl = priv;
    cl->refreshing = false;
    bool unsuspected = !suspected(cl, rc) || cl->asked_suspect;
    if (cl->closing) return;
    struct rcluster_map *m = xmalloc(sizeof(*m));
    char err[128];
    int ok = -1;
    const char *host = NULL;
    for (size_t i = 0; i < cl->nconns; i++)
        if (cl->conns[i].rc == rc) host = cl->conns[i].addr.host;
    if (r && r->type == REDIS_REPLY_ERROR && strstr(r->str, "unknown subcommand")) {
        /* before Redis 7: CLUSTER SLOTS */
        if (rconn_command(rc, on_map, cl, "CLUSTER SLOTS") == 0) {
            cl->refreshing = true;
            free(m);
            return;
        }
    } else if (r && r->type == REDIS_REPLY_ERROR) {
        /* A node's error names a command or a state, never a value of ours. */
        snprintf(cl->error, sizeof(cl->error), "the slot map was refused: %.90s", r->str);
    } else if (r && r->type == REDIS_REPLY_ARRAY) {
        bool shards = r->elements && r->element[0]->type == REDIS_REPLY_ARRAY && r->element[0]->elements &&
                      r->element[0]->element[0]->type == REDIS_REPLY_STRING;
        ok = shards ? rcluster_map_from_shards(r, host, m, err, sizeof(err))
                    : rcluster_map_from_slots(r, host, m, err, sizeof(err));
        if (ok < 0) {
            snprintf(cl->error, sizeof(cl->error), "%s", err);
        } else if (m->nmasters == 0) { /* a node that knows no cluster yet */
            snprintf(cl->error, sizeof(cl->error), "a node knows no master yet (is it in a cluster?)");
            ok = -1;
        }
    }
    if (ok == 0) {
        cl->error[0] = '\0';
        cl->map = *m;
        cl->known = true;
        cl->refreshes++;
        if (cl->nsuspects && unsuspected) suspects_cleared(cl, m, rc); /* their slots go where it says */
        map_applied(cl);
        wake_all(cl);
    }
    free(m);
    if (ok < 0 && cl->error[0]) wake_all(cl); /* its owners may say why */
    if (cl->nsuspects) schedule(cl, ok == 0 ? RCLUSTER_REFRESH_SOON_MS : RCLUSTER_REFRESH_AGAIN_MS);
    else if (!all_well(cl)) schedule(cl, RCLUSTER_REFRESH_AGAIN_MS);
}

/* Asks any usable connection for the map: a master of the map first, then
 * any node met, then the seeds (connected now if they were not). */
static void ask_map(struct rcluster *cl)
{
    if (cl->refreshing || cl->closing) return;
    struct rconn *pick = NULL;
    for (size_t i = 0; i < cl->map.nmasters && !pick; i++)
        if (cl->master_rc[i] && !suspected(cl, cl->master_rc[i]) && rconn_ready(cl->master_rc[i]))
            pick = cl->master_rc[i];
    for (size_t i = 0; i < cl->nconns && !pick; i++)
        if (!suspected(cl, cl->conns[i].rc) && rconn_ready(cl->conns[i].rc)) pick = cl->conns[i].rc;
    cl->asked_suspect = false;
    for (size_t i = 0; i < cl->nsuspects && !pick; i++) /* nobody else to ask */
        if (rconn_ready(cl->suspects[i])) {
            pick = cl->suspects[i];
            cl->asked_suspect = true;
        }
    if (pick && rconn_command(pick, on_map, cl, "CLUSTER SHARDS") == 0) {
        cl->refreshing = true;
        return;
    }
    for (size_t i = 0; i < cl->opt.nseeds; i++) rcluster_conn_at(cl, &cl->seeds[i]);
    schedule(cl, RCLUSTER_REFRESH_AGAIN_MS); /* the state callback of a seed asks sooner */
}

static void on_timer(uv_timer_t *t) { ask_map(t->data); }

struct rcluster *rcluster_new(uv_loop_t *loop, const struct rcluster_options *opt)
{
    struct rcluster *cl = xcalloc(1, sizeof(*cl));
    cl->loop = loop;
    cl->opt = *opt;
    cl->seeds = xmalloc(opt->nseeds * sizeof(*cl->seeds));
    memcpy(cl->seeds, opt->seeds, opt->nseeds * sizeof(*cl->seeds));
    cl->opt.seeds = cl->seeds;
    cl->user = opt->user ? xstrdup(opt->user) : NULL;
    cl->password = opt->password ? xstrdup(opt->password) : NULL;
    map_reset(&cl->map);
    uv_timer_init(loop, &cl->timer);
    cl->timer.data = cl;
    cl->open = 1;
    return cl;
}

void rcluster_on_wake(struct rcluster *cl, rcluster_wake_cb cb, void *arg)
{
    if (cl->nwake == RCLUSTER_MAX_WAKE) abort(); /* more layers than room: a programming error */
    cl->wake[cl->nwake].cb = cb;
    cl->wake[cl->nwake++].arg = arg;
}

void rcluster_pin(struct rcluster *cl, struct rconn *rc, unsigned slot)
{
    if (cl->npins == RCLUSTER_MAX_PINS) abort();
    cl->pins[cl->npins].rc = rc;
    cl->pins[cl->npins].slot = slot & (RCLUSTER_SLOTS - 1);
    cl->pins[cl->npins++].started = false;
}

void rcluster_start(struct rcluster *cl)
{
    (void)rcluster_slot_tag(0); /* the tag table, once, before any traffic */
    for (size_t i = 0; i < cl->opt.nseeds; i++) rcluster_conn_at(cl, &cl->seeds[i]);
}

void rcluster_refresh(struct rcluster *cl)
{
    if (!cl->refreshing) schedule(cl, RCLUSTER_REFRESH_SOON_MS);
}

struct rconn *rcluster_conn(struct rcluster *cl, unsigned slot)
{
    uint8_t o = cl->map.owner[slot & (RCLUSTER_SLOTS - 1)];
    if (o == RCLUSTER_NONE || suspected(cl, cl->master_rc[o])) return NULL;
    return cl->master_rc[o];
}

void rcluster_suspect(struct rcluster *cl, unsigned slot)
{
    uint8_t o = cl->map.owner[slot & (RCLUSTER_SLOTS - 1)];
    if (cl->closing || o == RCLUSTER_NONE || !cl->master_rc[o]) return;
    cl->suspicions++;
    if (!suspected(cl, cl->master_rc[o]) && cl->nsuspects < RCLUSTER_MAX_MASTERS)
        cl->suspects[cl->nsuspects++] = cl->master_rc[o];
    schedule(cl, 0);
}

struct rconn *rcluster_moved(struct rcluster *cl, unsigned slot, const struct rcluster_addr *to)
{
    cl->redirects++;
    rcluster_refresh(cl);
    struct rconn *rc = rcluster_conn_at(cl, to);
    size_t i = rcluster_map_master(&cl->map, to->host, to->port);
    if (i != RCLUSTER_NONE) {
        slot &= RCLUSTER_SLOTS - 1;
        if (cl->map.owner[slot] == RCLUSTER_NONE) cl->map.unserved--;
        cl->map.owner[slot] = (uint8_t)i;
        cl->master_rc[i] = rc;
        tags_compute(cl);
    }
    return rc;
}

size_t rcluster_nodes(const struct rcluster *cl) { return cl->map.nmasters ? cl->map.nmasters : 1; }

size_t rcluster_node_of(const struct rcluster *cl, unsigned slot)
{
    uint8_t o = cl->map.owner[slot & (RCLUSTER_SLOTS - 1)];
    return o == RCLUSTER_NONE ? 0 : o;
}

const char *rcluster_node_tag(const struct rcluster *cl, size_t node)
{
    if (!cl->known || node >= cl->map.nmasters || cl->tag_slot[node] < 0) return NULL;
    return rcluster_slot_tag((unsigned)cl->tag_slot[node]);
}

void rcluster_status(const struct rcluster *cl, struct rcluster_status *out)
{
    memset(out, 0, sizeof(*out));
    out->known = cl->known;
    for (size_t i = 0; i < cl->nconns && !out->reachable; i++) out->reachable = rconn_ready(cl->conns[i].rc);
    out->masters = cl->map.nmasters;
    out->unserved = cl->known ? cl->map.unserved : RCLUSTER_SLOTS;
    for (size_t i = 0; i < cl->map.nmasters; i++)
        if (!cl->master_rc[i] || !rconn_ready(cl->master_rc[i])) out->down++;
    out->refreshes = cl->refreshes;
    out->redirects = cl->redirects;
    out->suspicions = cl->suspicions;
    snprintf(out->error, sizeof(out->error), "%s", cl->error);
}

bool rcluster_ready(const struct rcluster *cl) { return all_well(cl); }

static void closed_one(struct rcluster *cl)
{
    if (--cl->open > 0) return;
    void (*done)(void *) = cl->done;
    void *arg = cl->done_arg;
    free(cl->seeds);
    free(cl->user);
    free(cl->password);
    free(cl);
    if (done) done(arg);
}

static void on_conn_closed(void *arg) { closed_one(arg); }
static void on_timer_closed(uv_handle_t *h) { closed_one(h->data); }

void rcluster_close(struct rcluster *cl, void (*done)(void *arg), void *arg)
{
    cl->closing = true;
    cl->done = done;
    cl->done_arg = arg;
    for (size_t i = 0; i < cl->nconns; i++) rconn_close(cl->conns[i].rc, on_conn_closed, cl);
    uv_close((uv_handle_t *)&cl->timer, on_timer_closed);
}

/* ---- sync ------------------------------------------------------------------ */

struct rcluster_sync {
    struct rcluster_options opt;
    struct rcluster_addr *seeds;
    struct rcluster_map map;
    struct {
        struct rcluster_addr addr;
        redisContext *c;
    } conns[RCLUSTER_MAX_CONNS];
    size_t nconns;
};

static redisContext *sync_open(const struct rcluster_options *opt, const struct rcluster_addr *a, char *err,
                               size_t errlen)
{
    int64_t ms = opt->timeout_ms > 0 ? opt->timeout_ms : 10000;
    struct timeval tv = {.tv_sec = ms / 1000, .tv_usec = (ms % 1000) * 1000};
    redisContext *c = redisConnectWithTimeout(a->host, a->port, tv);
    if (!c || c->err) {
        herald_seterr(err, errlen, "cannot connect to cluster node %s:%d: %s", a->host, a->port,
                      c ? c->errstr : "out of memory");
        if (c) redisFree(c);
        return NULL;
    }
    redisSetTimeout(c, tv);
    if (opt->password) {
        redisReply *r = opt->user ? redisCommand(c, "AUTH %s %s", opt->user, opt->password)
                                  : redisCommand(c, "AUTH %s", opt->password);
        bool ok = r && r->type != REDIS_REPLY_ERROR;
        if (!ok)
            herald_seterr(err, errlen, "cluster node %s:%d refused the login%s%s", a->host, a->port,
                          opt->user ? " of user " : "", opt->user ? opt->user : "");
        if (r) freeReplyObject(r);
        if (!ok) {
            redisFree(c);
            return NULL;
        }
    }
    return c;
}

static redisContext *sync_at(struct rcluster_sync *cs, const struct rcluster_addr *a, char *err, size_t errlen)
{
    for (size_t i = 0; i < cs->nconns; i++)
        if (cs->conns[i].addr.port == a->port && strcmp(cs->conns[i].addr.host, a->host) == 0) {
            if (cs->conns[i].c && !cs->conns[i].c->err) return cs->conns[i].c;
            if (cs->conns[i].c) redisFree(cs->conns[i].c);
            cs->conns[i].c = sync_open(&cs->opt, a, err, errlen);
            return cs->conns[i].c;
        }
    if (cs->nconns == RCLUSTER_MAX_CONNS) {
        herald_seterr(err, errlen, "too many cluster nodes");
        return NULL;
    }
    redisContext *c = sync_open(&cs->opt, a, err, errlen);
    if (!c) return NULL;
    cs->conns[cs->nconns].addr = *a;
    cs->conns[cs->nconns++].c = c;
    return c;
}

/* The map from the node at a. */
static int sync_map(struct rcluster_sync *cs, const struct rcluster_addr *a, char *err, size_t errlen)
{
    redisContext *c = sync_at(cs, a, err, errlen);
    if (!c) return -HERALD_EREDIS;
    redisReply *r = redisCommand(c, "CLUSTER SHARDS");
    int rc;
    if (r && r->type == REDIS_REPLY_ERROR && strstr(r->str, "unknown subcommand")) {
        freeReplyObject(r);
        r = redisCommand(c, "CLUSTER SLOTS");
        rc = r ? rcluster_map_from_slots(r, a->host, &cs->map, err, errlen) : -HERALD_EREDIS;
    } else if (r && r->type == REDIS_REPLY_ERROR) {
        herald_seterr(err, errlen, "cluster node %s:%d refused CLUSTER SHARDS: is it in cluster mode, and may the "
                                   "user run it?", a->host, a->port);
        rc = -HERALD_EREDIS;
    } else {
        rc = r ? rcluster_map_from_shards(r, a->host, &cs->map, err, errlen) : -HERALD_EREDIS;
    }
    if (!r) herald_seterr(err, errlen, "cluster node %s:%d: %s", a->host, a->port, c->errstr);
    if (r) freeReplyObject(r);
    if (rc == 0 && cs->map.nmasters == 0) {
        herald_seterr(err, errlen, "cluster node %s:%d knows no master yet", a->host, a->port);
        rc = -HERALD_EREDIS;
    }
    return rc;
}

struct rcluster_sync *rcluster_sync_connect(const struct rcluster_options *opt, char *err, size_t errlen)
{
    struct rcluster_sync *cs = xcalloc(1, sizeof(*cs));
    cs->opt = *opt;
    cs->seeds = xmalloc(opt->nseeds * sizeof(*cs->seeds));
    memcpy(cs->seeds, opt->seeds, opt->nseeds * sizeof(*cs->seeds));
    cs->opt.seeds = cs->seeds;
    cs->opt.user = opt->user ? xstrdup(opt->user) : NULL;
    cs->opt.password = opt->password ? xstrdup(opt->password) : NULL;
    for (size_t i = 0; i < opt->nseeds; i++)
        if (sync_map(cs, &cs->seeds[i], err, errlen) == 0) return cs;
    rcluster_sync_free(cs);
    return NULL;
}

size_t rcluster_sync_nodes(const struct rcluster_sync *cs) { return cs->map.nmasters; }

static const char *map_tag(const struct rcluster_map *m, size_t node)
{
    for (size_t s = 0; s < RCLUSTER_SLOTS; s++)
        if (m->owner[s] == node) return rcluster_slot_tag((unsigned)s);
    return NULL;
}

const char *rcluster_sync_node_tag(const struct rcluster_sync *cs, size_t i) { return map_tag(&cs->map, i); }

const struct rcluster_addr *rcluster_sync_node_addr(const struct rcluster_sync *cs, size_t i)
{
    return i < cs->map.nmasters ? &cs->map.masters[i] : NULL;
}

redisContext *rcluster_sync_node(struct rcluster_sync *cs, size_t i, char *err, size_t errlen)
{
    if (i >= cs->map.nmasters) {
        herald_seterr(err, errlen, "no cluster master %zu", i);
        return NULL;
    }
    return sync_at(cs, &cs->map.masters[i], err, errlen);
}

redisContext *rcluster_sync_ctx(struct rcluster_sync *cs, unsigned slot, char *err, size_t errlen)
{
    uint8_t o = cs->map.owner[slot & (RCLUSTER_SLOTS - 1)];
    if (o == RCLUSTER_NONE) {
        herald_seterr(err, errlen, "no cluster master serves slot %u now (a failover?): run it again", slot);
        return NULL;
    }
    return sync_at(cs, &cs->map.masters[o], err, errlen);
}

redisContext *rcluster_sync_open(struct rcluster_sync *cs, unsigned slot, char *err, size_t errlen)
{
    uint8_t o = cs->map.owner[slot & (RCLUSTER_SLOTS - 1)];
    if (o == RCLUSTER_NONE) {
        herald_seterr(err, errlen, "no cluster master serves slot %u now (a failover?): run it again", slot);
        return NULL;
    }
    return sync_open(&cs->opt, &cs->map.masters[o], err, errlen);
}

redisReply *rcluster_sync_command(struct rcluster_sync *cs, int key_arg, int argc, const char **argv,
                                  const size_t *argvlen, char *err, size_t errlen)
{
    unsigned slot = key_arg >= 0 && key_arg < argc ? rcluster_slot(argv[key_arg], argvlen[key_arg]) : 0;
    redisContext *c = rcluster_sync_ctx(cs, slot, err, errlen);
    bool asking = false;
    for (int hop = 0; c && hop < 5; hop++) {
        if (asking) {
            redisReply *a = redisCommand(c, "ASKING");
            if (a) freeReplyObject(a);
        }
        redisReply *r = redisCommandArgv(c, argc, argv, argvlen);
        if (!r) {
            herald_seterr(err, errlen, "%s", c->errstr);
            return NULL;
        }
        struct rcluster_addr to;
        unsigned s;
        enum rcluster_redirect k = r->type == REDIS_REPLY_ERROR ? rcluster_redirect_parse(r->str, &s, &to)
                                                                : RCLUSTER_NO_REDIRECT;
        if (k == RCLUSTER_NO_REDIRECT) return r;
        freeReplyObject(r);
        if (k == RCLUSTER_MOVED) {
            size_t i = rcluster_map_master(&cs->map, to.host, to.port);
            if (i != RCLUSTER_NONE) cs->map.owner[s] = (uint8_t)i;
        }
        asking = k == RCLUSTER_ASK;
        c = sync_at(cs, &to, err, errlen);
    }
    if (c) herald_seterr(err, errlen, "the cluster redirected a command more than 5 times (resharding?): run it again");
    return NULL;
}

void rcluster_sync_free(struct rcluster_sync *cs)
{
    if (!cs) return;
    for (size_t i = 0; i < cs->nconns; i++)
        if (cs->conns[i].c) redisFree(cs->conns[i].c);
    free(cs->seeds);
    free((char *)cs->opt.user);
    free((char *)cs->opt.password);
    free(cs);
}
