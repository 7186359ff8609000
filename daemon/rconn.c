/*
 * rconn.c - a self-healing async hiredis connection on the libuv loop.
 *
 * States: IDLE (waiting for the backoff timer) -> CONNECTING (TCP or a
 * unix socket + AUTH [user] password + SELECT) -> READY -> back to IDLE on any loss. It drives hiredis from
 * the loop through its own event hooks (see "event hooks" below), not
 * through hiredis's libuv adapter. The watchdog timer runs every
 * 500 ms: a connect that takes longer than the timeout, or outstanding
 * commands that see no reply for the timeout, drop the connection, which
 * makes hiredis fire every pending callback with NULL. Never spins: retries
 * wait 100 ms doubling to 2 s, with jitter so that daemons do not stampede.
 *
 * Builds against hiredis 0.14 (Debian 12) and 1.x (Debian 13): it uses
 * only hiredis's public API, and fills hiredis structs by member name.
 */
#include "rconn.h"

#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"

enum rconn_state { RC_IDLE, RC_CONNECTING, RC_READY, RC_CLOSING };

struct rconn {
    uv_loop_t *loop;
    char *name, *host, *socket, *user, *password;
    char why[160];          /* why the connect in progress failed (AUTH, SELECT), for lost() */
    int port, db;
    int64_t timeout_ms;
    rconn_state_cb state_cb;
    void *state_arg;
    redisAsyncContext *ac;
    enum rconn_state state;
    uv_timer_t retry_timer;
    uv_timer_t watchdog;
    int64_t backoff_ms;
    uint64_t started_ms;    /* of the current connect attempt */
    uint64_t progress_ms;   /* last reply seen */
    size_t outstanding;     /* commands sent, replies not yet seen */
    bool ever_connected;
    uint64_t reconnects;
    int handles_open;
    void (*done)(void *);
    void *done_arg;
    struct strbuf resp;     /* the command being formatted (reused) */
};

struct rconn_call {
    struct rconn *rc;
    rconn_reply_cb cb;
    void *privdata;
};

static void schedule_retry(struct rconn *rc);

/* ---- replies in blocks ------------------------------------------------
 * hiredis builds each reply as one allocation per element (and one more
 * per string): a batch's reply of a few thousand strings cost as many
 * malloc/free pairs. Here every object of one reply goes into a few large
 * blocks owned by its top-level object, and freeing that object (hiredis
 * frees only top-level replies, after the callback) frees the blocks. The
 * objects are ordinary redisReply structs: nothing else changes. */
struct rblock {
    struct rblock *next; /* the block before (the newest is the head) */
    size_t used, cap;
    max_align_t data[];
};

struct rroot { /* at the start of a top-level reply's first block */
    struct rblock *head;
    redisReply reply;
};

#define RBLOCK_MIN 4096
#define RBLOCK_GUESS_MAX 8192 /* elements whose strings a first block makes room for */

static size_t ralign(size_t n)
{
    return (n + sizeof(max_align_t) - 1) / sizeof(max_align_t) * sizeof(max_align_t);
}

/* A block for at least need bytes: the first of a reply just what it
 * asks for (most replies are one small object), later ones twice the
 * size of the one before, and never less than RBLOCK_MIN. */
static struct rblock *rblock_new(size_t need, struct rblock *next)
{
    size_t cap = ralign(need); /* every take is rounded so: used never passes cap */
    if (next) {
        if (cap < next->cap * 2) cap = next->cap * 2;
        if (cap < RBLOCK_MIN) cap = RBLOCK_MIN;
    }
    struct rblock *b = malloc(sizeof(*b) + cap);
    if (!b) return NULL;
    b->next = next;
    b->used = 0;
    b->cap = cap;
    return b;
}

static void *rblock_take(struct rblock *b, size_t n)
{
    void *p = (char *)b->data + b->used;
    b->used += ralign(n);
    return p;
}

/* A new object of extra trailing bytes for task: the top-level one opens
 * the reply's first block, the others go into the newest block of the
 * reply they belong to, found through their parents. NULL: out of memory
 * (hiredis then fails the reply). */
static redisReply *robj_new(const redisReadTask *task, int type, size_t extra)
{
    if (!task->parent) { /* a top-level reply: a string, an integer, or a whole array */
        /* The reply's own bytes follow it, as for any object. */
        size_t first = offsetof(struct rroot, reply) + ralign(sizeof(redisReply)) + extra;
        struct rblock *b = rblock_new(first, NULL);
        if (!b) return NULL;
        struct rroot *root = rblock_take(b, first);
        root->head = b;
        memset(&root->reply, 0, sizeof(root->reply));
        root->reply.type = type;
        return &root->reply;
    }
    const redisReadTask *t = task;
    while (t->parent) t = t->parent;
    redisReply *top = t->obj;
    struct rroot *root = (struct rroot *)((char *)top - offsetof(struct rroot, reply));
    size_t need = ralign(ralign(sizeof(redisReply)) + extra); /* the object, then its bytes */
    if (root->head->cap - root->head->used < need) {
        struct rblock *b = rblock_new(need, root->head);
        if (!b) return NULL;
        root->head = b;
    }
    redisReply *r = rblock_take(root->head, need);
    memset(r, 0, sizeof(*r));
    r->type = type;
    redisReply *parent = task->parent->obj;
    parent->element[task->idx] = r;
    return r;
}

static void *robj_string(const redisReadTask *task, char *str, size_t len)
{
    redisReply *r = robj_new(task, task->type, len + 1);
    if (!r) return NULL;
    r->str = (char *)r + ralign(sizeof(redisReply));
    memcpy(r->str, str, len);
    r->str[len] = '\0';
    r->len = len;
    return r;
}

/* hiredis 1.x counts an array's elements in a size_t, 0.14 in an int. */
#if HIREDIS_MAJOR >= 1
#define RCONN_ELEMENTS size_t
#else
#define RCONN_ELEMENTS int
#endif

static void *robj_array(const redisReadTask *task, RCONN_ELEMENTS elements)
{
    size_t n = elements > 0 ? (size_t)elements : 0;
    /* A top-level array opens its first block large enough for its element
     * vector and a typical string per element. */
    size_t guess = n < RBLOCK_GUESS_MAX ? n : RBLOCK_GUESS_MAX;
    size_t extra = n * sizeof(redisReply *) + (task->parent ? 0 : guess * 128);
    redisReply *r = robj_new(task, task->type, extra); /* ARRAY; 1.x's RESP3 aggregates come here too */
    if (!r) return NULL;
    r->elements = n;
    if (n) {
        r->element = (redisReply **)((char *)r + ralign(sizeof(redisReply)));
        memset(r->element, 0, n * sizeof(*r->element));
    }
    if (!task->parent) { /* give the strings the room reserved beyond the vector */
        struct rroot *root = (struct rroot *)((char *)r - offsetof(struct rroot, reply));
        size_t head = offsetof(struct rroot, reply) + ralign(sizeof(redisReply));
        root->head->used -= ralign(head + extra) - ralign(head + n * sizeof(redisReply *));
    }
    return r;
}

static void *robj_integer(const redisReadTask *task, long long value)
{
    redisReply *r = robj_new(task, REDIS_REPLY_INTEGER, 0);
    if (r) r->integer = value;
    return r;
}

static void *robj_nil(const redisReadTask *task) { return robj_new(task, REDIS_REPLY_NIL, 0); }

static void robj_free(void *reply)
{
    if (!reply) return;
    struct rroot *root = (struct rroot *)((char *)reply - offsetof(struct rroot, reply));
    struct rblock *b = root->head;
    while (b) {
        struct rblock *next = b->next;
        free(b);
        b = next;
    }
}

#if HIREDIS_MAJOR >= 1
/* RESP3 types, which hiredis 1.x can parse. rconn speaks RESP2 (it never
 * sends HELLO 3), so Redis does not send them; they are built as hiredis
 * builds them so that a table with holes never meets one. */
static void *robj_double(const redisReadTask *task, double value, char *str, size_t len)
{
    redisReply *r = robj_string(task, str, len);
    if (r) r->dval = value;
    return r;
}

static void *robj_bool(const redisReadTask *task, int value)
{
    redisReply *r = robj_new(task, task->type, 0);
    if (r) r->integer = value != 0;
    return r;
}
#endif

/* By member name: hiredis 1.x inserts createDouble and createBool among
 * the members of 0.14, so a positional table would call the wrong ones. */
static redisReplyObjectFunctions robj_functions = {
    .createString = robj_string,
    .createArray = robj_array,
    .createInteger = robj_integer,
    .createNil = robj_nil,
#if HIREDIS_MAJOR >= 1
    .createDouble = robj_double,
    .createBool = robj_bool,
#endif
    .freeObject = robj_free,
};

static void report(struct rconn *rc, bool connected, const char *err)
{
    if (rc->state_cb) rc->state_cb(rc, connected, err, rc->state_arg);
}

/* Forgets the context after hiredis has freed it (or is about to). */
static void lost(struct rconn *rc, const char *err)
{
    log_debug("redis", "lost connection=%s state=%d: %s", rc->name, (int)rc->state, err);
    bool was_ready = rc->state == RC_READY;
    char why[sizeof(rc->why)];
    if (rc->why[0]) { /* a refused AUTH or SELECT says more than "connection closed" */
        snprintf(why, sizeof(why), "%s", rc->why);
        rc->why[0] = '\0';
        err = why;
    }
    rc->ac = NULL;
    rc->outstanding = 0;
    if (rc->state == RC_CLOSING) return;
    rc->state = RC_IDLE;
    if (was_ready || !rc->ever_connected) report(rc, false, err);
    schedule_retry(rc);
}

static void on_disconnect(const redisAsyncContext *ac, int status)
{
    struct rconn *rc = ac->data;
    (void)status;
    if (!rc) return;
    lost(rc, ac->errstr[0] ? ac->errstr : "connection closed");
}

static void on_select(redisAsyncContext *ac, void *r, void *priv)
{
    struct rconn *rc = priv;
    redisReply *reply = r;
    (void)ac;
    if (!reply || rc->state != RC_CONNECTING) return;
    if (reply->type == REDIS_REPLY_ERROR) {
        /* Wrong password or database: keep retrying, the owner logs it once. */
        if (!rc->why[0]) snprintf(rc->why, sizeof(rc->why), "database %d refused: %.100s", rc->db, reply->str);
        redisAsyncDisconnect(rc->ac);
        return;
    }
    rc->state = RC_READY;
    rc->backoff_ms = 100;
    if (rc->ever_connected) rc->reconnects++;
    rc->ever_connected = true;
    report(rc, true, NULL);
}

/* AUTH's reply (Redis never quotes the password in it). A refused AUTH
 * drops the connection: it would otherwise go on as Redis's default user
 * (which may need no password), not as the user configured. */
static void on_auth(redisAsyncContext *ac, void *r, void *priv)
{
    struct rconn *rc = priv;
    redisReply *reply = r;
    (void)ac;
    if (!reply || reply->type != REDIS_REPLY_ERROR || rc->state != RC_CONNECTING) return;
    snprintf(rc->why, sizeof(rc->why), "authentication failed%s%s: %.100s", rc->user ? " for user " : "",
             rc->user ? rc->user : "", reply->str);
    redisAsyncDisconnect(rc->ac);
}

static void on_connect(const redisAsyncContext *ac, int status)
{
    struct rconn *rc = ac->data;
    if (!rc) return;
    if (status != REDIS_OK) {
        /* hiredis frees the context after this callback. */
        lost(rc, ac->errstr[0] ? ac->errstr : "connect failed");
        return;
    }
    rc->progress_ms = uv_now(rc->loop);
    rc->why[0] = '\0';
    if (rc->password && rc->user)
        redisAsyncCommand(rc->ac, on_auth, rc, "AUTH %s %s", rc->user, rc->password);
    else if (rc->password)
        redisAsyncCommand(rc->ac, on_auth, rc, "AUTH %s", rc->password);
    redisAsyncCommand(rc->ac, on_select, rc, "SELECT %d", rc->db);
}

/* ---- event hooks -------------------------------------------------------
 * hiredis asks an event library to watch its socket through the hooks in
 * redisAsyncContext.ev (addRead, delRead, addWrite, delWrite, cleanup and
 * their data): the public seam that every adapter under hiredis/adapters/
 * fills. rconn fills it itself rather than using the libuv adapter, whose
 * state struct is the header's own business (1.x changed it) and whose
 * 0.14 poll callback drops events with status < 0: libuv reports a refused
 * non-blocking connect exactly that way (POLLERR), so a reconnect to a
 * server that is still down would hang until the watchdog. Here errors go
 * to hiredis as readiness, and it reads the socket error and fails the
 * connect (or the connection) at once. */
struct rconn_ev {
    redisAsyncContext *ac; /* NULL once hiredis has let go (cleanup) */
    uv_poll_t poll;
    int events;  /* what hiredis wants watched */
    int watched; /* what the poll handle was last given */
};

static void ev_poll_cb(uv_poll_t *handle, int status, int events)
{
    struct rconn_ev *p = handle->data;
    if (status < 0) events = UV_READABLE | UV_WRITABLE;
    /* Handling the write can free the context: cleanup clears p->ac, and
     * p itself lives until its handle is closed. */
    if (p->ac && (events & UV_WRITABLE)) redisAsyncHandleWrite(p->ac);
    if (p->ac && (events & UV_READABLE)) redisAsyncHandleRead(p->ac);
}

/* libuv only when the events change: hiredis asks for writing with every
 * command it queues, and each uv_poll_start or uv_poll_stop costs an
 * epoll_ctl at once (libuv drops the descriptor from epoll) and another at
 * the next poll (it adds it back), for a batch's every command. */
static void ev_update(struct rconn_ev *p)
{
    if (p->events == p->watched) return;
    if (p->events) uv_poll_start(&p->poll, p->events, ev_poll_cb);
    else uv_poll_stop(&p->poll);
    p->watched = p->events;
}

static void ev_add_read(void *priv) { struct rconn_ev *p = priv; p->events |= UV_READABLE; ev_update(p); }
static void ev_del_read(void *priv) { struct rconn_ev *p = priv; p->events &= ~UV_READABLE; ev_update(p); }
static void ev_add_write(void *priv) { struct rconn_ev *p = priv; p->events |= UV_WRITABLE; ev_update(p); }
static void ev_del_write(void *priv) { struct rconn_ev *p = priv; p->events &= ~UV_WRITABLE; ev_update(p); }

static void ev_closed(uv_handle_t *h) { free(h->data); }

/* hiredis is freeing the context: the handle closes, the loop frees it. */
static void ev_cleanup(void *priv)
{
    struct rconn_ev *p = priv;
    p->ac = NULL;
    uv_close((uv_handle_t *)&p->poll, ev_closed);
}

static int ev_attach(redisAsyncContext *ac, uv_loop_t *loop)
{
    if (ac->ev.data) return -HERALD_EREDIS; /* already attached */
    struct rconn_ev *p = xcalloc(1, sizeof(*p));
    if (uv_poll_init(loop, &p->poll, ac->c.fd) != 0) {
        free(p);
        return -HERALD_EREDIS;
    }
    p->ac = ac;
    p->poll.data = p;
    ac->ev.data = p;
    ac->ev.addRead = ev_add_read;
    ac->ev.delRead = ev_del_read;
    ac->ev.addWrite = ev_add_write;
    ac->ev.delWrite = ev_del_write;
    ac->ev.cleanup = ev_cleanup;
    return 0;
}

static void try_connect(struct rconn *rc)
{
    log_debug("redis", "connecting connection=%s state=%d", rc->name, (int)rc->state);
    if (rc->state != RC_IDLE) return;
    redisAsyncContext *ac = rc->socket ? redisAsyncConnectUnix(rc->socket) : redisAsyncConnect(rc->host, rc->port);
    if (!ac || ac->err) {
        const char *e = ac && ac->errstr[0] ? ac->errstr : "cannot create a connection";
        char msg[128];
        snprintf(msg, sizeof(msg), "%s", e);
        if (ac) redisAsyncFree(ac);
        if (!rc->ever_connected || rc->state == RC_READY) report(rc, false, msg);
        schedule_retry(rc);
        return;
    }
    ac->data = rc;
    ac->c.reader->fn = &robj_functions;
    if (ev_attach(ac, rc->loop) < 0) {
        redisAsyncFree(ac);
        schedule_retry(rc);
        return;
    }
    redisAsyncSetConnectCallback(ac, on_connect);
    redisAsyncSetDisconnectCallback(ac, on_disconnect);
    rc->ac = ac;
    rc->state = RC_CONNECTING;
    rc->started_ms = uv_now(rc->loop);
}

static void on_retry(uv_timer_t *t)
{
    try_connect(t->data);
}

static void schedule_retry(struct rconn *rc)
{
    if (rc->state == RC_CLOSING) return;
    int64_t d = rc->backoff_ms;
    d = d / 2 + (int64_t)(rand() % (int)(d / 2 + 1)); /* jitter: 50..100 % */
    uv_timer_start(&rc->retry_timer, on_retry, (uint64_t)d, 0);
    rc->backoff_ms = rc->backoff_ms * 2 > 2000 ? 2000 : rc->backoff_ms * 2;
}

/* Drops the connection now, whatever hiredis waits for: pending callbacks
 * get NULL, and the owner hears why (reconnection follows). */
static void drop(struct rconn *rc, const char *why)
{
    redisAsyncContext *ac = rc->ac;
    ac->data = NULL;
    rc->ac = NULL;
    redisAsyncFree(ac);
    lost(rc, why);
}

static void on_watchdog(uv_timer_t *t)
{
    struct rconn *rc = t->data;
    uint64_t now = uv_now(rc->loop);
    if (!rc->ac) return;
    bool stuck_connect = rc->state == RC_CONNECTING && now - rc->started_ms > (uint64_t)rc->timeout_ms;
    bool stuck_reply = rc->state == RC_READY && rc->outstanding > 0 &&
                       now - rc->progress_ms > (uint64_t)rc->timeout_ms;
    if (stuck_connect || stuck_reply) {
        /* A connect that never completes cannot be disconnected gracefully. */
        redisAsyncContext *ac = rc->ac;
        if (stuck_connect) {
            drop(rc, "connect timed out");
        } else {
            redisAsyncDisconnect(ac);
            /* hiredis may wait for pending replies on a graceful
             * disconnect; a stalled server never sends them. */
            if (rc->ac == ac) drop(rc, "no reply within the timeout");
        }
    }
}

struct rconn *rconn_new(uv_loop_t *loop, const struct rconn_options *opt, rconn_state_cb cb, void *arg)
{
    struct rconn *rc = xcalloc(1, sizeof(*rc));
    rc->loop = loop;
    rc->name = xstrdup(opt->name ? opt->name : "redis");
    rc->host = opt->host ? xstrdup(opt->host) : NULL;
    rc->socket = opt->socket ? xstrdup(opt->socket) : NULL;
    rc->user = opt->user ? xstrdup(opt->user) : NULL;
    rc->password = opt->password ? xstrdup(opt->password) : NULL;
    rc->port = opt->port;
    rc->db = opt->db;
    rc->timeout_ms = opt->timeout_ms > 0 ? opt->timeout_ms : 10000;
    rc->state_cb = cb;
    rc->state_arg = arg;
    rc->backoff_ms = 100;
    uv_timer_init(loop, &rc->retry_timer);
    uv_timer_init(loop, &rc->watchdog);
    rc->retry_timer.data = rc;
    rc->watchdog.data = rc;
    rc->handles_open = 2;
    return rc;
}

void rconn_start(struct rconn *rc)
{
    uv_timer_start(&rc->watchdog, on_watchdog, 500, 500);
    try_connect(rc);
}

bool rconn_ready(const struct rconn *rc) { return rc->state == RC_READY && rc->ac; }
const char *rconn_name(const struct rconn *rc) { return rc->name; }
uint64_t rconn_reconnects(const struct rconn *rc) { return rc->reconnects; }

static void on_reply(redisAsyncContext *ac, void *r, void *priv)
{
    struct rconn_call *call = priv;
    struct rconn *rc = call->rc;
    (void)ac;
    if (rc->outstanding) rc->outstanding--;
    rc->progress_ms = uv_now(rc->loop);
    call->cb(rc, r, call->privdata);
    free(call);
}

int rconn_commandargv(struct rconn *rc, rconn_reply_cb cb, void *privdata, int argc,
                      const char **argv, const size_t *argvlen)
{
    if (!rconn_ready(rc)) return -HERALD_EREDIS;
    struct rconn_call *call = xmalloc(sizeof(*call));
    call->rc = rc;
    call->cb = cb;
    call->privdata = privdata;
    /* RESP written here in one pass: hiredis' own formatter prints every
     * length with a printf-like call, which showed at a few hundred
     * arguments per batched script. */
    size_t total = 32;
    for (int i = 0; i < argc; i++) total += argvlen[i] + 32;
    struct strbuf *sb = &rc->resp; /* kept from command to command; hiredis copies it */
    strbuf_reset(sb);
    strbuf_grow_to(sb, total);
    char *o = sb->buf;
    o = rconn_resp_head(o, '*', (size_t)argc);
    for (int i = 0; i < argc; i++) {
        o = rconn_resp_head(o, '$', argvlen[i]);
        memcpy(o, argv[i], argvlen[i]);
        o += argvlen[i];
        *o++ = '\r';
        *o++ = '\n';
    }
    sb->len = (size_t)(o - sb->buf);
    sb->buf[sb->len] = '\0';
    if (redisAsyncFormattedCommand(rc->ac, on_reply, call, sb->buf, sb->len) != REDIS_OK) {
        free(call);
        return -HERALD_EREDIS;
    }
    if (rc->outstanding++ == 0) rc->progress_ms = uv_now(rc->loop);
    return 0;
}

int rconn_command_resp(struct rconn *rc, rconn_reply_cb cb, void *privdata, const char *resp, size_t len)
{
    if (!rconn_ready(rc)) return -HERALD_EREDIS;
    struct rconn_call *call = xmalloc(sizeof(*call));
    call->rc = rc;
    call->cb = cb;
    call->privdata = privdata;
    if (redisAsyncFormattedCommand(rc->ac, on_reply, call, resp, len) != REDIS_OK) {
        free(call);
        return -HERALD_EREDIS;
    }
    if (rc->outstanding++ == 0) rc->progress_ms = uv_now(rc->loop);
    return 0;
}

int rconn_command(struct rconn *rc, rconn_reply_cb cb, void *privdata, const char *fmt, ...)
{
    if (!rconn_ready(rc)) return -HERALD_EREDIS;
    struct rconn_call *call = xmalloc(sizeof(*call));
    call->rc = rc;
    call->cb = cb;
    call->privdata = privdata;
    va_list ap;
    va_start(ap, fmt);
    int r = redisvAsyncCommand(rc->ac, on_reply, call, fmt, ap);
    va_end(ap);
    if (r != REDIS_OK) {
        free(call);
        return -HERALD_EREDIS;
    }
    if (rc->outstanding++ == 0) rc->progress_ms = uv_now(rc->loop);
    return 0;
}

void rconn_retarget(struct rconn *rc, const char *host, int port)
{
    if (!rc->socket && rc->host && strcmp(rc->host, host) == 0 && rc->port == port) return;
    free(rc->host);
    free(rc->socket);
    rc->host = xstrdup(host);
    rc->socket = NULL;
    rc->port = port;
    if (rc->state == RC_CLOSING) return;
    rc->backoff_ms = 100;
    if (rc->ac) drop(rc, "the cluster moved this connection to another master");
}

static void on_handle_closed(uv_handle_t *h)
{
    struct rconn *rc = h->data;
    if (--rc->handles_open > 0) return;
    void (*done)(void *) = rc->done;
    void *arg = rc->done_arg;
    free(rc->name);
    free(rc->host);
    free(rc->socket);
    free(rc->user);
    free(rc->password);
    strbuf_free(&rc->resp);
    free(rc);
    if (done) done(arg);
}

void rconn_close(struct rconn *rc, void (*done)(void *arg), void *arg)
{
    rc->state = RC_CLOSING;
    rc->done = done;
    rc->done_arg = arg;
    if (rc->ac) {
        redisAsyncContext *ac = rc->ac;
        rc->ac = NULL;
        /* Free (not Disconnect): pending callbacks fire now with NULL, and
         * ev_cleanup closes the poll handle before the loop can end. */
        redisAsyncFree(ac);
    }
    uv_close((uv_handle_t *)&rc->retry_timer, on_handle_closed);
    uv_close((uv_handle_t *)&rc->watchdog, on_handle_closed);
}
