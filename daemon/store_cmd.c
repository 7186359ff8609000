/*
 * store_cmd.c - the command layer: backlog, EVALSHA/NOSCRIPT, error classes.
 *
 * Owns every command it is given until its callback fired. Must never hand
 * an error reply to a callback as if it were an answer, never send a
 * command while one that failed before it waits for its retry (order is
 * kept: a retried write is never overtaken by what was queued after it),
 * and never spin: retries wait 100 ms doubling to 2 s for transient
 * errors, 1 s doubling to 30 s for permanent ones that must still land.
 * A STORE_CMD_ONCE command is the exception that keeps no order: it is
 * sent at once or refused, and its errors end it (store_cmd.h).
 * Logs one line when waiting on Redis starts and one when it ends.
 *
 * On a cluster (store_cmds_set_cluster) each command goes to the master of
 * its slot; everything else above holds per layer, across nodes: a command
 * whose node is not reachable (or whose slot no master serves) stops the
 * backlog behind it, so order is kept even through a failover. Without a
 * cluster none of it costs anything: sc->cl is NULL and the paths are the
 * single instance's.
 */
#include "store_cmd.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "log.h"
#include "rcluster.h"
#include "store.h"

#define STORE_RETRY_MIN_MS 100
#define STORE_RETRY_MAX_MS 2000
#define STORE_HOLD_MIN_MS 1000
#define STORE_HOLD_MAX_MS 30000
#define STORE_SCRIPTS_MAX 48 /* distinct scripts one process sends (daemon/lua/) */

/* ---- arguments -------------------------------------------------------- */

void store_args_init(struct store_args *a)
{
    strbuf_init(&a->data);
    a->n = 0;
    a->slot = -1;
}

void store_args_route(struct store_args *a, const char *key, size_t len) { a->slot = (int)rcluster_slot(key, len); }

void store_args_addn(struct store_args *a, const char *s, size_t len)
{
    struct strbuf *d = &a->data;
    /* Room for the room, "$<len>\r\n", the bytes and "\r\n". */
    size_t need = (d->len ? d->len : STORE_ARGS_HEAD) + RCONN_RESP_HEAD_MAX + len + 2;
    if (need + 1 > d->cap) strbuf_grow_to(d, need);
    if (!d->len) d->len = STORE_ARGS_HEAD;
    char *o = rconn_resp_head(d->buf + d->len, '$', len);
    if (len) memcpy(o, s, len);
    o += len;
    *o++ = '\r';
    *o++ = '\n';
    *o = '\0';
    d->len = (size_t)(o - d->buf);
    a->n++;
}

void store_args_add(struct store_args *a, const char *s) { store_args_addn(a, s, strlen(s)); }

void store_args_addll(struct store_args *a, long long v)
{
    char num[HERALD_LL_CHARS];
    store_args_addn(a, num, herald_lltoa(num, v));
}

void store_args_append(struct store_args *a, const struct store_args *b)
{
    if (!b->n) return;
    if (!a->data.len) {
        strbuf_grow_to(&a->data, b->data.len);
        a->data.len = STORE_ARGS_HEAD;
    }
    strbuf_add(&a->data, b->data.buf + STORE_ARGS_HEAD, b->data.len - STORE_ARGS_HEAD);
    a->n += b->n;
}

void store_args_free(struct store_args *a)
{
    strbuf_free(&a->data);
    a->n = 0;
    a->slot = -1;
}

void store_args_reset(struct store_args *a)
{
    strbuf_reset(&a->data);
    a->n = 0;
    a->slot = -1;
}

void store_args_script(struct store_args *a, const char *script, size_t nkeys)
{
    /* The scripts are constants: hash each once (the loop is one thread). */
    static struct {
        const char *script;
        char sha[41];
    } shas[STORE_SCRIPTS_MAX];
    size_t i = 0;
    while (i < STORE_SCRIPTS_MAX && shas[i].script && shas[i].script != script) i++;
    if (i == STORE_SCRIPTS_MAX) abort(); /* more scripts than slots: a programming error */
    if (!shas[i].script) {
        store_script_sha(script, shas[i].sha);
        shas[i].script = script;
    }
    store_args_init(a);
    store_args_add(a, "EVALSHA");
    store_args_add(a, shas[i].sha);
    store_args_addll(a, (long long)nkeys);
}

/* ---- error classes ---------------------------------------------------- */

static const struct {
    const char *label;
    enum store_class cls;
    const char *word;
} errors[] = {
#define X(name, label, cls, word) {label, STORE_##cls, word},
    STORE_ERROR_MAP(X)
#undef X
};

const char *store_error_name(enum store_error e) { return e < STORE_E_COUNT ? errors[e].label : "error"; }

enum store_class store_error_class(enum store_error e)
{
    return e < STORE_E_COUNT ? errors[e].cls : STORE_PERMANENT;
}

enum store_error store_error_classify(const char *text)
{
    size_t w = strcspn(text, " ");
    for (int e = 0; e < STORE_E_COUNT; e++)
        if (errors[e].word[0] && strlen(errors[e].word) == w && strncmp(text, errors[e].word, w) == 0)
            return (enum store_error)e;
    /* Redis 7 reports an ACL denial inside a script as a plain ERR. */
    if (strstr(text, "can't run this command") || strstr(text, "no permissions")) return STORE_E_NOPERM;
    return STORE_E_ERROR;
}

bool store_error_from_replica(enum store_error err, const char *text)
{
    return err == STORE_E_READONLY ||
           (text && (strstr(text, "replica instances") || strstr(text, "master -> replica")));
}

/* ---- the layer -------------------------------------------------------- */

struct scmd {
    struct store_cmds *sc;
    unsigned flags;
    char *buf;          /* the command's one allocation */
    const char *resp;   /* the command in RESP, inside buf */
    size_t len;
    size_t argc;
    const char *script; /* EVALSHA of this body: EVAL it after NOSCRIPT */
    store_cmd_cb cb;
    void *arg;
    void (*discard)(void *arg);
    struct scmd *next;
    /* on a cluster */
    int slot;            /* -1: no key (the control plane's connection) */
    struct rconn *to;    /* the next send goes here (a redirect), not by slot */
    struct rconn *on;    /* where it went (NOSCRIPT sends the body there) */
    bool asking;         /* an ASK: ASKING first, once */
    unsigned redirects;
};

struct fifo {
    struct scmd *head, *tail;
    size_t n;
};

struct store_cmds {
    uv_loop_t *loop;
    struct rconn *rc;
    struct rcluster *cl; /* NULL: a single instance */
    char *name;
    struct fifo backlog; /* waiting for the connection or behind a retry */
    struct fifo retry;   /* refused, sent again when the timer fires */
    size_t inflight;
    uv_timer_t timer;
    bool timer_armed;
    int64_t delay_ms;
    struct store_cmds_status st;
    struct log_complaint complaint;
    void (*done)(void *);
    void *done_arg;
};

static void fifo_push(struct fifo *f, struct scmd *c)
{
    c->next = NULL;
    if (f->tail) f->tail->next = c;
    else f->head = c;
    f->tail = c;
    f->n++;
}

static struct scmd *fifo_pop(struct fifo *f)
{
    struct scmd *c = f->head;
    if (!c) return NULL;
    f->head = c->next;
    if (!f->head) f->tail = NULL;
    f->n--;
    return c;
}

static void scmd_free(struct scmd *c)
{
    free(c->buf);
    free(c);
}

/* The end of the bulk string that starts at p ("$<len>\r\n<bytes>\r\n"). */
static const char *bulk_end(const char *p)
{
    size_t len = 0;
    for (p++; *p != '\r'; p++) len = len * 10 + (size_t)(*p - '0');
    return p + 2 + len + 2;
}

/* c's "EVALSHA <sha> ..." becomes "EVAL <script> ...", the rest unchanged. */
static void scmd_eval(struct scmd *c)
{
    const char *end = c->resp + c->len, *rest = c->resp;
    while (*rest != '\r') rest++; /* past the array's header */
    rest = bulk_end(bulk_end(rest + 2));
    size_t slen = strlen(c->script), rlen = (size_t)(end - rest);
    char *buf = xmalloc(3 * RCONN_RESP_HEAD_MAX + 6 + slen + rlen), *o = buf;
    o = rconn_resp_head(o, '*', c->argc);
    memcpy(o, "$4\r\nEVAL\r\n", 10);
    o = rconn_resp_head(o + 10, '$', slen);
    memcpy(o, c->script, slen);
    o += slen;
    *o++ = '\r';
    *o++ = '\n';
    memcpy(o, rest, rlen);
    o += rlen;
    free(c->buf);
    c->buf = buf;
    c->resp = buf;
    c->len = (size_t)(o - buf);
}

static void flush(struct store_cmds *sc);

static void on_timer(uv_timer_t *t)
{
    struct store_cmds *sc = t->data;
    sc->timer_armed = false;
    flush(sc);
}

/* c met error err: it goes to the retry list, and nothing new is sent
 * before it has been answered. */
static void retry_later(struct store_cmds *sc, struct scmd *c, enum store_error err, const char *text)
{
    fifo_push(&sc->retry, c);
    sc->st.errors[err]++;
    bool hold = store_error_class(err) == STORE_PERMANENT;
    if (!sc->st.waiting || sc->st.error != err) {
        sc->st.error = err;
        herald_copy(sc->st.text, sizeof(sc->st.text), text);
        if (!sc->st.waiting) sc->st.since_ms = (int64_t)uv_now(sc->loop);
    }
    sc->st.waiting = true;
    if (err != STORE_E_CONNECTION)
        log_complain(&sc->complaint, "store", "redis refused a command on %s (%s, retried until it passes): %.120s",
                     sc->name, store_error_name(err), text);
    if (err == STORE_E_CONNECTION || sc->timer_armed) return; /* reconnection sends it */
    int64_t min = hold ? STORE_HOLD_MIN_MS : STORE_RETRY_MIN_MS, max = hold ? STORE_HOLD_MAX_MS : STORE_RETRY_MAX_MS;
    sc->delay_ms = sc->delay_ms < min ? min : (2 * sc->delay_ms > max ? max : 2 * sc->delay_ms);
    int64_t d = sc->delay_ms * 3 / 4 + rand() % (sc->delay_ms / 2 + 1); /* jitter: daemons do not stampede */
    sc->timer_armed = true;
    uv_timer_start(&sc->timer, on_timer, (uint64_t)d, 0);
}

/* c ends with error err: its callback gets it (HOLD, ONCE). */
static void give_up(struct store_cmds *sc, struct scmd *c, enum store_error err, const char *text)
{
    sc->st.errors[err]++;
    c->cb(NULL, err, text, c->arg);
    scmd_free(c);
}

static bool send_one(struct store_cmds *sc, struct scmd *c);

/* A cluster's error reply that is not c's answer: MOVED, ASK, or (for a
 * STORE_CMD_GROUP script) a slot that left its node. Handled here (true)
 * or not one of them (false). */
static bool cluster_redirected(struct store_cmds *sc, struct scmd *c, const char *text)
{
    struct rcluster_addr to;
    unsigned slot;
    enum rcluster_redirect k = rcluster_redirect_parse(text, &slot, &to);
    bool group = c->flags & STORE_CMD_GROUP;
    if (k == RCLUSTER_NO_REDIRECT) {
        if (!group || (strncmp(text, "CROSSSLOT", 9) != 0 && !strstr(text, "not served"))) return false;
        rcluster_refresh(sc->cl);
    } else if (k == RCLUSTER_MOVED) {
        struct rconn *rc = rcluster_moved(sc->cl, slot, &to);
        c->to = group ? NULL : rc;
    } else {
        c->to = group ? NULL : rcluster_conn_at(sc->cl, &to);
        c->asking = true;
        rcluster_refresh(sc->cl);
    }
    if (group) { /* the caller splits its batch again */
        give_up(sc, c, STORE_E_REGROUP, text);
        return true;
    }
    bool once = c->flags & STORE_CMD_ONCE;
    if (++c->redirects <= 5 && send_one(sc, c)) { /* in place: nothing overtakes it */
        c->to = NULL;
        c->asking = false;
        return true;
    }
    c->to = NULL;
    c->asking = false;
    /* Redirected in circles (a reshard under way) or its node is not
     * reachable now: waits like any command whose node is down. */
    if (once) give_up(sc, c, STORE_E_CONNECTION, "cluster redirect not followed");
    else retry_later(sc, c, STORE_E_TRYAGAIN, "cluster redirect not followed yet");
    return true;
}

static void on_reply(struct rconn *rc, redisReply *r, void *priv)
{
    struct scmd *c = priv;
    struct store_cmds *sc = c->sc;
    bool once = c->flags & STORE_CMD_ONCE;
    (void)rc;
    sc->inflight--;
    if (!r) { /* connection lost: sent again once it is back */
        if (sc->cl) rcluster_refresh(sc->cl);
        if (once) give_up(sc, c, STORE_E_CONNECTION, "connection lost");
        else retry_later(sc, c, STORE_E_CONNECTION, "connection lost");
        return;
    }
    if (r->type == REDIS_REPLY_ERROR) {
        if (c->script && strncmp(r->str, "NOSCRIPT", 8) == 0) {
            /* A new or restarted server (or SCRIPT FLUSH): send the body
             * once, it is cached then. In place: nothing overtakes it. */
            scmd_eval(c);
            c->script = NULL;
            if (rconn_command_resp(sc->cl ? c->on : sc->rc, on_reply, c, c->resp, c->len) == 0) {
                sc->inflight++;
                return;
            }
            if (once) give_up(sc, c, STORE_E_CONNECTION, "connection lost");
            else retry_later(sc, c, STORE_E_CONNECTION, "connection lost");
            return;
        }
        if (sc->cl && cluster_redirected(sc, c, r->str)) return;
        enum store_error err = store_error_classify(r->str);
        /* A node that answers as a replica (a failover demoted it): the
         * map is stale, and the command goes to the slot's master as the
         * refreshed map says when it is tried again. */
        if (sc->cl && store_error_from_replica(err, r->str)) rcluster_refresh(sc->cl);
        if (once || (store_error_class(err) == STORE_PERMANENT && (c->flags & STORE_CMD_HOLD))) {
            give_up(sc, c, err, r->str);
            return;
        }
        retry_later(sc, c, err, r->str);
        return;
    }
    /* A ONCE command that passes says nothing of the retried ones. */
    if (!once && sc->st.waiting && !sc->retry.head && !sc->timer_armed) {
        sc->st.waiting = false;
        sc->delay_ms = 0;
        log_recovered(&sc->complaint, "store", "redis accepts commands on %s again", sc->name);
    }
    c->cb(r, STORE_E_COUNT, NULL, c->arg);
    scmd_free(c);
}

static void on_asking(struct rconn *rc, redisReply *r, void *priv)
{
    (void)rc;
    (void)r;
    (void)priv;
}

/* Where c goes now on a cluster: a redirect's node, its slot's master, or
 * (no key) the control plane's connection; NULL while no master serves it. */
static struct rconn *cluster_target(struct store_cmds *sc, struct scmd *c)
{
    if (c->to) return c->to;
    if (c->slot < 0) return sc->rc;
    struct rconn *rc = rcluster_conn(sc->cl, (unsigned)c->slot);
    if (!rc) rcluster_refresh(sc->cl);
    return rc;
}

static bool send_one(struct store_cmds *sc, struct scmd *c)
{
    struct rconn *rc = sc->rc;
    if (sc->cl) {
        rc = cluster_target(sc, c);
        if (!rc || !rconn_ready(rc)) return false;
        if (c->asking && rconn_command(rc, on_asking, NULL, "ASKING") < 0) return false;
        c->on = rc;
    }
    if (rconn_command_resp(rc, on_reply, c, c->resp, c->len) < 0) return false;
    sc->inflight++;
    return true;
}

/* Sends what waits: the retried commands first, in the order they failed,
 * then the backlog. Stops at the first that cannot go. */
static void flush(struct store_cmds *sc)
{
    if (sc->timer_armed || !rconn_ready(sc->rc)) return;
    struct fifo *lists[] = {&sc->retry, &sc->backlog};
    for (size_t i = 0; i < 2; i++) {
        while (lists[i]->head) {
            if (!send_one(sc, lists[i]->head)) return;
            fifo_pop(lists[i]);
        }
    }
}

/* The slot of a command's first key, or -1 for a command without keys. A
 * script's KEYS[1]; the stream commands' key after STREAMS; the key after
 * the subcommand for XINFO, XGROUP, MEMORY, OBJECT; else the first
 * argument. */
static int first_key_slot(const char *resp, size_t len)
{
    const char *end = resp + len, *p = resp;
    const char *arg[64];
    size_t alen[64], n = 0;
    while (p < end && *p != '\r') p++;
    p += 2;
    while (p < end && n < 64) {
        size_t l = 0;
        for (p++; *p != '\r'; p++) l = l * 10 + (size_t)(*p - '0');
        arg[n] = p + 2;
        alen[n++] = l;
        p += 2 + l + 2;
    }
    if (!n) return -1;
#define IS(i, w) (alen[i] == sizeof(w) - 1 && strncasecmp(arg[i], w, alen[i]) == 0)
    int k = 1;
    if (IS(0, "EVALSHA") || IS(0, "EVAL") || IS(0, "EVALSHA_RO") || IS(0, "EVAL_RO")) {
        if (n < 4 || (alen[2] == 1 && arg[2][0] == '0')) return -1;
        k = 3;
    } else if (IS(0, "XREADGROUP") || IS(0, "XREAD")) {
        k = -1;
        for (size_t i = 1; i + 1 < n; i++)
            if (IS(i, "STREAMS")) {
                k = (int)i + 1;
                break;
            }
    } else if (IS(0, "XINFO") || IS(0, "XGROUP") || IS(0, "MEMORY") || IS(0, "OBJECT")) {
        k = 2;
    } else if (IS(0, "PING") || IS(0, "INFO") || IS(0, "SCAN") || IS(0, "TIME") || IS(0, "CLUSTER") ||
               IS(0, "SCRIPT") || IS(0, "WAIT") || IS(0, "DBSIZE") || IS(0, "CLIENT") || IS(0, "ACL") ||
               IS(0, "MULTI") || IS(0, "EXEC") || IS(0, "SELECT") || IS(0, "AUTH") || IS(0, "ECHO")) {
        k = -1;
    }
#undef IS
    if (k < 0 || (size_t)k >= n) return -1;
    return (int)rcluster_slot(arg[k], alen[k]);
}

static void on_cluster_wake(void *arg) { flush(arg); }

void store_cmds_set_cluster(struct store_cmds *sc, struct rcluster *cl)
{
    sc->cl = cl;
    rcluster_on_wake(cl, on_cluster_wake, sc);
}

size_t store_cmds_nodes(const struct store_cmds *sc) { return sc->cl ? rcluster_nodes(sc->cl) : 1; }

size_t store_cmds_node_of(const struct store_cmds *sc, const char *key, size_t len)
{
    return sc->cl ? rcluster_node_of(sc->cl, rcluster_slot(key, len)) : 0;
}

void store_cmds_suspect(struct store_cmds *sc, const char *key, size_t len)
{
    if (sc->cl) rcluster_suspect(sc->cl, rcluster_slot(key, len));
}

const char *store_cmds_node_tag(const struct store_cmds *sc, size_t node)
{
    return sc->cl ? rcluster_node_tag(sc->cl, node) : NULL;
}

struct store_cmds *store_cmds_new(uv_loop_t *loop, struct rconn *rc, const char *name)
{
    struct store_cmds *sc = xcalloc(1, sizeof(*sc));
    sc->loop = loop;
    sc->rc = rc;
    sc->name = xstrdup(name);
    sc->st.error = STORE_E_COUNT;
    uv_timer_init(loop, &sc->timer);
    sc->timer.data = sc;
    return sc;
}

int store_cmds_send(struct store_cmds *sc, unsigned flags, store_cmd_cb cb, void *arg, void (*discard)(void *),
                    struct store_args *a, const char *script)
{
    struct scmd *c = xcalloc(1, sizeof(*c));
    c->sc = sc;
    c->flags = flags;
    c->cb = cb;
    c->arg = arg;
    c->discard = discard;
    c->script = script;
    /* The array's header goes in the room left in front of the arguments. */
    if (!a->data.len) strbuf_grow_to(&a->data, STORE_ARGS_HEAD);
    size_t len;
    c->buf = strbuf_detach(&a->data, &len);
    if (!len) len = STORE_ARGS_HEAD; /* no arguments at all */
    char head[RCONN_RESP_HEAD_MAX];
    size_t hlen = (size_t)(rconn_resp_head(head, '*', a->n) - head);
    memcpy(c->buf + STORE_ARGS_HEAD - hlen, head, hlen);
    c->resp = c->buf + STORE_ARGS_HEAD - hlen;
    c->len = len - (STORE_ARGS_HEAD - hlen);
    c->argc = a->n;
    c->slot = sc->cl ? (a->slot >= 0 ? a->slot : first_key_slot(c->resp, c->len)) : -1;
    store_args_init(a);
    if (flags & STORE_CMD_ONCE) {
        /* Now or never: its caller answers someone who must not wait. */
        if (send_one(sc, c)) return 0;
        scmd_free(c);
        return -HERALD_EREDIS;
    }
    /* Behind anything that waits: order is kept. */
    if (sc->backlog.head || sc->retry.head || sc->timer_armed || !send_one(sc, c)) fifo_push(&sc->backlog, c);
    return 0;
}

int store_cmds_sendv(struct store_cmds *sc, unsigned flags, store_cmd_cb cb, void *arg, const char *const *argv)
{
    struct store_args a;
    store_args_init(&a);
    for (int i = 0; argv[i]; i++) store_args_add(&a, argv[i]);
    return store_cmds_send(sc, flags, cb, arg, NULL, &a, NULL);
}

void store_cmds_connected(struct store_cmds *sc) { flush(sc); }

bool store_cmds_idle(const struct store_cmds *sc)
{
    return !sc->backlog.head && !sc->retry.head && sc->inflight == 0;
}

void store_cmds_status(const struct store_cmds *sc, struct store_cmds_status *out)
{
    *out = sc->st;
    out->backlog = sc->backlog.n + sc->retry.n;
}

static void on_closed(uv_handle_t *h)
{
    struct store_cmds *sc = h->data;
    void (*done)(void *) = sc->done;
    void *arg = sc->done_arg;
    free(sc->name);
    free(sc);
    if (done) done(arg);
}

void store_cmds_free(struct store_cmds *sc, void (*done)(void *arg), void *arg)
{
    struct fifo *lists[] = {&sc->retry, &sc->backlog};
    for (size_t i = 0; i < 2; i++) {
        struct scmd *c;
        while ((c = fifo_pop(lists[i]))) {
            if (c->discard) c->discard(c->arg);
            scmd_free(c);
        }
    }
    sc->done = done;
    sc->done_arg = arg;
    uv_close((uv_handle_t *)&sc->timer, on_closed);
}
