/*
 * rconn.h - one asynchronous Redis connection that heals itself.
 *
 * hiredis's async API has no timeouts in 0.14 and its libuv adapter ignores
 * poll errors, so rconn drives hiredis from the loop through its own event
 * hooks and adds what a daemon needs around it: AUTH/SELECT on connect, a
 * watchdog that drops a connection whose replies stall (or whose connect
 * never completes), and reconnection with capped exponential backoff and
 * jitter. It never spins and never logs an address: it reports state
 * changes to its owner, who decides what to log (once per outage).
 *
 * Callback rule (libuv's): if rconn_command() returns 0 its callback fires
 * exactly once, with the reply, or with NULL when the command could not be
 * completed (connection lost, timeout, shutdown). If it returns < 0 the
 * callback never fires.
 */
#ifndef HERALD_RCONN_H
#define HERALD_RCONN_H

#include <hiredis/async.h>
#include <hiredis/hiredis.h>
#include <uv.h>

#include "herald.h"

struct rconn;

typedef void (*rconn_reply_cb)(struct rconn *rc, redisReply *reply, void *privdata);
/* connected: true once the connection is usable, false when it is lost
 * (err says why, no address or password in it). */
typedef void (*rconn_state_cb)(struct rconn *rc, bool connected, const char *err, void *arg);

struct rconn_options {
    const char *name;      /* for the owner's logs: "jobs", "data" */
    const char *host;      /* TCP host, or NULL with socket */
    int port;
    const char *socket;    /* unix socket path; NULL: TCP to host:port */
    int db;
    const char *user;      /* NULL: AUTH password alone (the default user) */
    const char *password;  /* NULL: no AUTH */
    int64_t timeout_ms;    /* a reply may take this long (0: 10 s) */
};

struct rconn *rconn_new(uv_loop_t *loop, const struct rconn_options *opt, rconn_state_cb cb, void *arg);
/* Starts connecting (and reconnecting whenever the connection is lost). */
void rconn_start(struct rconn *rc);
bool rconn_ready(const struct rconn *rc);
const char *rconn_name(const struct rconn *rc);
/* Number of reconnections after the first connect (for metrics). */
uint64_t rconn_reconnects(const struct rconn *rc);

int rconn_command(struct rconn *rc, rconn_reply_cb cb, void *privdata, const char *fmt, ...);
int rconn_commandargv(struct rconn *rc, rconn_reply_cb cb, void *privdata, int argc,
                      const char **argv, const size_t *argvlen);
/* One command already written as RESP (an array of bulk strings, len
 * bytes; hiredis copies it): for callers that build it in one pass. */
int rconn_command_resp(struct rconn *rc, rconn_reply_cb cb, void *privdata, const char *resp, size_t len);
/* Writes "<type><n>\r\n" (at most RCONN_RESP_HEAD_MAX bytes) at o; returns its end. */
#define RCONN_RESP_HEAD_MAX 24
static inline char *rconn_resp_head(char *o, char type, size_t n)
{
    *o = type;
    if (n < 100) { /* most arguments: keys, ids, numbers */
        if (n >= 10) *++o = (char)('0' + n / 10);
        *++o = (char)('0' + n % 10);
        o[1] = '\r';
        o[2] = '\n';
        return o + 3;
    }
    char digits[20];
    size_t k = 0;
    do {
        digits[k++] = (char)('0' + n % 10);
        n /= 10;
    } while (n);
    *o++ = type;
    while (k) *o++ = digits[--k];
    *o++ = '\r';
    *o++ = '\n';
    return o;
}

/* From now on connect to host:port (TCP). A connection to another address
 * is dropped (pending callbacks get NULL) and made again to the new one:
 * the cluster layer moves a connection to the master that serves a slot
 * now (rcluster.h). */
void rconn_retarget(struct rconn *rc, const char *host, int port);

/* Drops the connection (pending callbacks get NULL) and frees rc once every
 * handle is closed; done fires then, exactly once. */
void rconn_close(struct rconn *rc, void (*done)(void *arg), void *arg);

#endif
