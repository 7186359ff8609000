/*
 * store_cmd.h - Redis commands whose error replies are never "answered".
 *
 * The command layer of the store: every asynchronous command of the job
 * pipeline goes through it. It owns the backlog of commands waiting for a
 * connection, EVALSHA with the script body sent after NOSCRIPT, and the
 * classification of every reply where it arrives (STORE_ERROR_MAP):
 *
 *   ok         the callback gets the reply;
 *   transient  (connection lost, LOADING, BUSY, TRYAGAIN, MASTERDOWN,
 *              READONLY, OOM, CLUSTERDOWN, NOREPLICAS) the command is sent again after
 *              a backoff; meanwhile later commands wait behind it, so that
 *              nothing overtakes it, and store_cmds_status() says that
 *              herald waits on Redis, and why;
 *   permanent  (an ACL denial, WRONGTYPE, NOGROUP, a script error) for a
 *              command sent with STORE_CMD_HOLD the callback gets NULL and
 *              the error: the caller holds its job, deciding nothing from
 *              it. Any other command is a write that must land (an
 *              outcome, an acknowledgement): it is retried like a
 *              transient one, with a longer backoff, until an operator
 *              fixes the cause.
 *
 *   once       a command sent with STORE_CMD_ONCE is for a caller that
 *              answers someone now (the API, the link pages, the provider
 *              webhooks, the /metrics scrape) and must not wait: it is
 *              never retried, and any error reply, transient or
 *              permanent, and a lost connection, go to its callback
 *              (reply NULL, the error's class, its text). It is never
 *              queued either: while the connection is down (or cannot
 *              take it) store_cmds_send() returns -HERALD_EREDIS at once
 *              and the callback never fires, so an HTTP caller answers
 *              503 at once. It goes out as soon as it is sent, ahead of
 *              any command of the same layer waiting for its retry, so it
 *              is for commands that depend on none of them: the daemon
 *              gives the interactive callers a layer of their own
 *              ("api", on the same connection as the job pipeline's).
 *              The script of an EVALSHA still goes once after NOSCRIPT.
 *
 * Callback rule (libuv's): a command handed to store_cmds_send() gets its
 * callback exactly once (if store_cmds_send() returned 0), unless the
 * layer is freed first, in which case its discard function (if any) frees
 * the argument instead. Only a STORE_CMD_ONCE command can be refused
 * (< 0, the callback never fires); the others are always taken. Never
 * logs an address: error replies from Redis name commands and codes, not
 * values.
 */
#ifndef HERALD_STORE_CMD_H
#define HERALD_STORE_CMD_H

#include <hiredis/hiredis.h>
#include <uv.h>

#include "herald.h"
#include "rconn.h"

/* ---- one command's arguments in one allocation ------------------------ */

/* The arguments written once, as the RESP bulk strings ("$3\r\nSET\r\n")
 * Redis reads, after STORE_ARGS_HEAD bytes of room where the layer writes
 * the array's header ("*<n>\r\n") when the command is sent: its bytes go
 * to hiredis as they are, never copied argument by argument again. */
#define STORE_ARGS_HEAD RCONN_RESP_HEAD_MAX
struct store_args {
    struct strbuf data; /* empty, or STORE_ARGS_HEAD bytes of room and the arguments */
    size_t n;
    int slot;           /* store_args_route's key's cluster slot; -1: none given */
};

void store_args_init(struct store_args *a);
void store_args_addn(struct store_args *a, const char *s, size_t len);
void store_args_add(struct store_args *a, const char *s);
void store_args_addll(struct store_args *a, long long v);
/* Appends b's arguments, in order, to a (b unchanged). */
void store_args_append(struct store_args *a, const struct store_args *b);
void store_args_free(struct store_args *a);
/* Empties a, keeping its buffer for the next command's arguments. */
void store_args_reset(struct store_args *a);
/* Starts "EVALSHA <sha of script> <nkeys>" in a (initialised here). */
void store_args_script(struct store_args *a, const char *script, size_t nkeys);

/* The key whose slot decides where the command goes on a cluster (set
 * after store_args_script/add; only its slot is kept). Without it the
 * layer routes by the command's first key (a script's KEYS[1]), and a
 * command without keys goes to the control plane's master. On a single
 * instance it changes nothing. */
void store_args_route(struct store_args *a, const char *key, size_t len);

/* ---- error classes ---------------------------------------------------- */

enum store_class { STORE_TRANSIENT, STORE_PERMANENT };

/* name, label (metrics, /healthz), class, the reply's first word ("" none). */
#define STORE_ERROR_MAP(X)                                        \
    X(CONNECTION, "connection", TRANSIENT, "")                    \
    X(LOADING, "loading", TRANSIENT, "LOADING")                   \
    X(BUSY, "busy", TRANSIENT, "BUSY")                            \
    X(TRYAGAIN, "tryagain", TRANSIENT, "TRYAGAIN")                \
    X(MASTERDOWN, "masterdown", TRANSIENT, "MASTERDOWN")          \
    X(READONLY, "readonly", TRANSIENT, "READONLY")                \
    X(OOM, "oom", TRANSIENT, "OOM")                               \
    X(CLUSTERDOWN, "clusterdown", TRANSIENT, "CLUSTERDOWN")       \
    X(NOREPLICAS, "noreplicas", TRANSIENT, "NOREPLICAS")          \
    X(NOPERM, "noperm", PERMANENT, "NOPERM")                      \
    X(WRONGTYPE, "wrongtype", PERMANENT, "WRONGTYPE")             \
    X(NOGROUP, "nogroup", PERMANENT, "NOGROUP")                   \
    X(REGROUP, "regroup", TRANSIENT, "")                          \
    X(ERROR, "error", PERMANENT, "")                              \
    X(REPLY, "unexpected_reply", PERMANENT, "")

enum store_error {
#define X(name, label, cls, word) STORE_E_##name,
    STORE_ERROR_MAP(X)
#undef X
    STORE_E_COUNT
};

const char *store_error_name(enum store_error e);
enum store_class store_error_class(enum store_error e);
/* The class of an error reply's text (the whole str of the reply). ACL
 * denials inside a script, which Redis reports as a plain ERR, are NOPERM. */
enum store_error store_error_classify(const char *text);
/* Whether an error reply (its class err, its text) comes from a node that
 * is a replica now (READONLY, a refused WAIT, a WAIT unblocked by the
 * node's demotion): on a cluster, a failover
 * demoted it and the slot map is stale. */
bool store_error_from_replica(enum store_error err, const char *text);

/* ---- the layer -------------------------------------------------------- */

struct store_cmds;

/* reply: the answer (never an error reply), or NULL when a STORE_CMD_HOLD
 * command met a permanent error, or a STORE_CMD_ONCE command any error
 * (err: its class, STORE_E_CONNECTION for a lost connection; text: the
 * reply's text, which an HTTP answer never quotes: it says
 * store_error_name(err)). err is STORE_E_COUNT with a reply. */
typedef void (*store_cmd_cb)(redisReply *reply, enum store_error err, const char *text, void *arg);

#define STORE_CMD_HOLD 1u /* permanent errors go to the callback */
#define STORE_CMD_ONCE 2u /* no retry, no queue: every error goes to the callback */
/* A command sent with STORE_CMD_GROUP is a script over several slots of one
 * node (`#!lua flags=allow-cross-slot-keys`): on MOVED, ASK or a
 * CROSSSLOT/"not served" error the layer does NOT resend it; it refreshes
 * the slot map and the callback gets reply NULL with STORE_E_REGROUP
 * (transient class): the caller splits the batch again by
 * store_cmds_node_of() and sends the parts. Nothing of a refused script was
 * written (Redis checks keys first). On a single instance it changes
 * nothing. */
#define STORE_CMD_GROUP 4u

struct store_cmds *store_cmds_new(uv_loop_t *loop, struct rconn *rc, const char *name);
/* Sends the command in a (taking its buffer; a is left initialised and
 * empty). script: the body of the EVALSHA that a starts with, or NULL.
 * Returns 0, or -HERALD_EREDIS for a STORE_CMD_ONCE command that cannot
 * go out now (the callback then never fires; discard is not called). */
int store_cmds_send(struct store_cmds *sc, unsigned flags, store_cmd_cb cb, void *arg, void (*discard)(void *),
                     struct store_args *a, const char *script);
/* send(sc, flags, cb, arg, argv): argv ends with NULL; strings copied. */
int store_cmds_sendv(struct store_cmds *sc, unsigned flags, store_cmd_cb cb, void *arg, const char *const *argv);
#define STORE_SEND(sc, flags, cb, arg, ...) store_cmds_sendv(sc, flags, cb, arg, (const char *const[]){__VA_ARGS__, NULL})
/* On a cluster (rcluster.h): the layer sends each command to the master of
 * its slot (store_args_route, or its first key) over cl's connections,
 * follows MOVED (the map updated, the command sent again) and ASK (ASKING,
 * then the command, to that node, once) invisibly, sends a script's body
 * again after NOSCRIPT to the node that said it, and keeps commands whose
 * slot no master serves (a failover) in its backlog until one does. rc (of
 * store_cmds_new) is then the connection for commands without keys, pinned
 * to the control plane's master. Call before the first command. */
struct rcluster;
void store_cmds_set_cluster(struct store_cmds *sc, struct rcluster *cl);
/* How many masters the layer's Redis has now: 1 for a single instance. */
size_t store_cmds_nodes(const struct store_cmds *sc);
/* Index (0 .. nodes-1) of the master that serves key now (0 on a single instance). */
size_t store_cmds_node_of(const struct store_cmds *sc, const char *key, size_t len);
/* A hash tag (no braces, e.g. "n3a") whose slot master `node` serves now: keys that must sit
 * on that node (per-node streams, counters, fence) put it in braces. NULL on a single instance. */
const char *store_cmds_node_tag(const struct store_cmds *sc, size_t node);
/* On a cluster: the master serving key's slot may have been replaced
 * without knowing it (rcluster_suspect): commands for its slots wait until
 * another node's slot map says where they go. Nothing on one Redis. */
void store_cmds_suspect(struct store_cmds *sc, const char *key, size_t len);

/* The connection became usable: send what waits. */
void store_cmds_connected(struct store_cmds *sc);
/* Nothing waits, nothing is in flight. */
bool store_cmds_idle(const struct store_cmds *sc);

struct store_cmds_status {
    bool waiting;             /* an error reply is being retried now */
    enum store_error error;   /* the latest error (when waiting) */
    char text[128];           /* its reply text, cut */
    int64_t since_ms;         /* loop time it started */
    size_t backlog;           /* commands waiting to be sent */
    uint64_t errors[STORE_E_COUNT]; /* error replies (and connection losses) met, by class */
};
void store_cmds_status(const struct store_cmds *sc, struct store_cmds_status *out);
/* Closes the timer; commands never answered are discarded. done fires once
 * the handle is closed. */
void store_cmds_free(struct store_cmds *sc, void (*done)(void *arg), void *arg);

#endif
