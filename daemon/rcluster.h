/*
 * rcluster.h - Redis Cluster routing: slots, the slot map, one connection
 * per master, redirects.
 *
 * hiredis 0.14 has no cluster client, so herald routes itself: the slot of
 * a key (CRC16 of its hash tag, as Redis computes it), the map of which
 * master serves which slot (CLUSTER SHARDS, or CLUSTER SLOTS on a server
 * that lacks it), and MOVED/ASK replies parsed into where to go instead.
 *
 * Three parts:
 *   pure       slot arithmetic, the map parsers, the redirect parser and a
 *              table of one short hash tag per slot (no I/O);
 *   async      struct rcluster: the daemon's map and one rconn per master
 *              (rconn.c as it is), refreshed after a redirect and whenever
 *              a master's connection is lost; it re-points "pinned"
 *              connections (the jobs and data connections of main.c) at
 *              the master of one slot (the control plane's);
 *   sync       struct rcluster_sync: heraldctl's and --check-config's map and
 *              one blocking redisContext per master, following MOVED/ASK.
 *
 * Never logs an address or a value: the owner logs (once per outage).
 */
#ifndef HERALD_RCLUSTER_H
#define HERALD_RCLUSTER_H

#include <hiredis/hiredis.h>
#include <stdint.h>
#include <uv.h>

#include "herald.h"
#include "rconn.h"

#define RCLUSTER_SLOTS 16384
#define RCLUSTER_MAX_MASTERS 64
#define RCLUSTER_HOST_MAX 64

/* ---- pure -------------------------------------------------------------- */

/* CRC16-CCITT (XModem) as Redis Cluster uses it: "123456789" -> 0x31C3. */
uint16_t rcluster_crc16(const char *buf, size_t len);
/* The slot of a key: of its hash tag (the bytes between the first '{' and
 * the first '}' after it, when there are any), else of the whole key. */
unsigned rcluster_slot(const char *key, size_t len);
/* A short hash tag (no braces, 1..4 characters of [a-z0-9]) whose slot is
 * slot: the first such string in order of length then alphabet. Computed
 * once, at the first call (about 2 M CRCs). */
const char *rcluster_slot_tag(unsigned slot);

struct rcluster_addr {
    char host[RCLUSTER_HOST_MAX];
    int port;
};

/* Which master serves each slot. masters[] are ordered by the first slot
 * each serves (so index 0 serves slot 0 in a settled cluster); owner[s] is
 * an index into it, or RCLUSTER_NONE while no master serves s. */
#define RCLUSTER_NONE 0xFF
struct rcluster_map {
    size_t nmasters;
    struct rcluster_addr masters[RCLUSTER_MAX_MASTERS];
    uint8_t owner[RCLUSTER_SLOTS];
    size_t unserved; /* slots no master serves */
};

/* The map from CLUSTER SHARDS's reply (Redis 7) or CLUSTER SLOTS's. A
 * master without an address (an empty endpoint or "?") uses fallback_host,
 * the node asked. Returns 0, or -HERALD_EINVAL with err when r is not such a
 * reply. */
int rcluster_map_from_shards(const redisReply *r, const char *fallback_host, struct rcluster_map *m, char *err,
                             size_t errlen);
int rcluster_map_from_slots(const redisReply *r, const char *fallback_host, struct rcluster_map *m, char *err,
                            size_t errlen);
/* The index of the master at addr in m (added when new, if room);
 * RCLUSTER_NONE when m is full. */
size_t rcluster_map_master(struct rcluster_map *m, const char *host, int port);

enum rcluster_redirect { RCLUSTER_NO_REDIRECT, RCLUSTER_MOVED, RCLUSTER_ASK };
/* "MOVED <slot> <host>:<port>" or "ASK <slot> <host>:<port>" (an error
 * reply's text; an empty host means the node that answered, which the
 * caller fills in): the kind, with *slot and *to; RCLUSTER_NO_REDIRECT for
 * anything else. */
enum rcluster_redirect rcluster_redirect_parse(const char *text, unsigned *slot, struct rcluster_addr *to);
/* The "host:port, host:port" of [redis] cluster: 0 with up to max seeds in
 * out (*n of them), or -HERALD_EINVAL with err. */
int rcluster_parse_seeds(const char *s, struct rcluster_addr *out, size_t max, size_t *n, char *err, size_t errlen);

/* ---- async (the daemon) ------------------------------------------------ */

struct rcluster;

struct rcluster_options {
    const struct rcluster_addr *seeds;
    size_t nseeds;
    const char *user, *password; /* for every node, as rconn_options */
    int64_t timeout_ms;
};

/* The map changed, or a master's connection became usable: send what waits. */
typedef void (*rcluster_wake_cb)(void *arg);

struct rcluster *rcluster_new(uv_loop_t *loop, const struct rcluster_options *opt);
/* Registers a callback for every change that may let commands go out
 * (several: one per command layer). */
void rcluster_on_wake(struct rcluster *cl, rcluster_wake_cb cb, void *arg);
/* rc (not started yet) is to be connected to the master of slot: rcluster
 * starts it once the map is known and re-points it whenever the map moves
 * that slot (rconn_retarget). */
void rcluster_pin(struct rcluster *cl, struct rconn *rc, unsigned slot);
/* Connects to the seeds and fetches the map. */
void rcluster_start(struct rcluster *cl);
/* The connection to the master that serves slot now (NULL: none does, or
 * the map is not known yet); it may not be ready. */
struct rconn *rcluster_conn(struct rcluster *cl, unsigned slot);
/* A redirect said slot is served at to: the map says so from now on (until
 * the next refresh, which is asked for) and the connection to it is
 * returned (NULL only when the table of nodes is full). */
struct rconn *rcluster_moved(struct rcluster *cl, unsigned slot, const struct rcluster_addr *to);
/* The connection to addr (for an ASK): created on first use. */
struct rconn *rcluster_conn_at(struct rcluster *cl, const struct rcluster_addr *to);
/* Fetches the map again soon (calls coalesce). */
void rcluster_refresh(struct rcluster *cl);
/* The master serving slot may have been replaced without knowing it yet
 * (its replicas did not acknowledge a WAIT in time: it may have stalled
 * while a replica was promoted, and what it takes now its demotion will
 * drop). Commands for its slots wait (rcluster_conn says NULL) until a map
 * read from another node is applied; a suspect is asked only when no other
 * node can be. */
void rcluster_suspect(struct rcluster *cl, unsigned slot);
size_t rcluster_nodes(const struct rcluster *cl);
size_t rcluster_node_of(const struct rcluster *cl, unsigned slot);
/* A tag whose slot node serves now (its first slot's); NULL when out of range. */
const char *rcluster_node_tag(const struct rcluster *cl, size_t node);

struct rcluster_status {
    bool known;        /* a map was fetched */
    bool reachable;    /* some node's connection is usable now */
    size_t masters;
    size_t down;       /* masters whose connection is not usable */
    size_t unserved;   /* slots no master serves */
    uint64_t refreshes, redirects;
    uint64_t suspicions; /* rcluster_suspect calls: masters checked against another node's map */
    char error[128];   /* why the latest map could not be read ("" when it was) */
};
void rcluster_status(const struct rcluster *cl, struct rcluster_status *out);
/* Every slot served and every master's connection usable. */
bool rcluster_ready(const struct rcluster *cl);
/* Closes every connection rcluster made (not the pinned ones); done fires
 * once they are all closed. */
void rcluster_close(struct rcluster *cl, void (*done)(void *arg), void *arg);

/* ---- sync (heraldctl, --check-config) ---------------------------------- */

struct rcluster_sync;

/* Connects to the first seed that answers and fetches the map; opens the
 * masters' connections lazily. NULL with err when no seed answers. */
struct rcluster_sync *rcluster_sync_connect(const struct rcluster_options *opt, char *err, size_t errlen);
/* The context of the master serving slot (connected and authenticated on
 * first use); NULL with err. */
redisContext *rcluster_sync_ctx(struct rcluster_sync *cs, unsigned slot, char *err, size_t errlen);
/* A new context (the caller's to redisFree) to the master serving slot. */
redisContext *rcluster_sync_open(struct rcluster_sync *cs, unsigned slot, char *err, size_t errlen);
/* The context of master i (0 .. rcluster_sync_nodes - 1). */
redisContext *rcluster_sync_node(struct rcluster_sync *cs, size_t i, char *err, size_t errlen);
size_t rcluster_sync_nodes(const struct rcluster_sync *cs);
/* A tag whose slot master i serves (as rcluster_node_tag); NULL out of range. */
const char *rcluster_sync_node_tag(const struct rcluster_sync *cs, size_t i);
/* "host:port" of master i, for messages. */
const struct rcluster_addr *rcluster_sync_node_addr(const struct rcluster_sync *cs, size_t i);
/* Runs argv on the master of the slot of key (its first key: argv[key_arg]),
 * following MOVED (map updated) and ASK (ASKING first) up to 5 times. The
 * reply is the caller's (freeReplyObject); NULL when a connection failed
 * (err says which). */
redisReply *rcluster_sync_command(struct rcluster_sync *cs, int key_arg, int argc, const char **argv,
                                  const size_t *argvlen, char *err, size_t errlen);
void rcluster_sync_free(struct rcluster_sync *cs);

#endif
