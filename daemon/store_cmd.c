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
 */
#include "store_cmd.h"

#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "store.h"

#define STORE_RETRY_MIN_MS 100
#define STORE_RETRY_MAX_MS 2000
#define STORE_HOLD_MIN_MS 1000
#define STORE_HOLD_MAX_MS 30000

/* ---- arguments -------------------------------------------------------- */

void store_args_init(struct store_args *a)
{
    strbuf_init(&a->data);
    a->n = 0;
}

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
}

void store_args_reset(struct store_args *a)
{
    strbuf_reset(&a->data);
    a->n = 0;
}

void store_args_script(struct store_args *a, const char *script, size_t nkeys)
{
    /* The scripts are constants: hash each once (the loop is one thread). */
    static struct {
        const char *script;
        char sha[41];
    } shas[16];
    size_t i = 0;
    while (i < 16 && shas[i].script && shas[i].script != script) i++;
    if (i == 16) abort(); /* more scripts than slots: a programming error */
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
};

struct fifo {
    struct scmd *head, *tail;
    size_t n;
};

struct store_cmds {
    uv_loop_t *loop;
    struct rconn *rc;
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

static void on_reply(struct rconn *rc, redisReply *r, void *priv)
{
    struct scmd *c = priv;
    struct store_cmds *sc = c->sc;
    bool once = c->flags & STORE_CMD_ONCE;
    (void)rc;
    sc->inflight--;
    if (!r) { /* connection lost: sent again once it is back */
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
            if (rconn_command_resp(sc->rc, on_reply, c, c->resp, c->len) == 0) {
                sc->inflight++;
                return;
            }
            if (once) give_up(sc, c, STORE_E_CONNECTION, "connection lost");
            else retry_later(sc, c, STORE_E_CONNECTION, "connection lost");
            return;
        }
        enum store_error err = store_error_classify(r->str);
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

static bool send_one(struct store_cmds *sc, struct scmd *c)
{
    if (rconn_command_resp(sc->rc, on_reply, c, c->resp, c->len) < 0) return false;
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

/* ---- CL-M's single-node stand-in for CL-R's routing (goes at the merge) */

size_t store_cmds_nodes(const struct store_cmds *sc)
{
    (void)sc;
    return 1;
}

size_t store_cmds_node_of(const struct store_cmds *sc, const char *key, size_t len)
{
    (void)sc;
    (void)key;
    (void)len;
    return 0;
}

const char *store_cmds_node_tag(const struct store_cmds *sc, size_t node)
{
    (void)sc;
    (void)node;
    return NULL;
}

void store_args_route(struct store_args *a, const char *key, size_t len)
{
    (void)a;
    (void)key;
    (void)len;
}

static uint16_t crc16(const char *buf, size_t len)
{
    uint16_t crc = 0;
    for (size_t i = 0; i < len; i++) {
        crc ^= (uint16_t)((unsigned char)buf[i] << 8);
        for (int b = 0; b < 8; b++) crc = (crc & 0x8000) ? (uint16_t)((crc << 1) ^ 0x1021) : (uint16_t)(crc << 1);
    }
    return crc;
}

unsigned rcluster_slot(const char *key, size_t len)
{
    const char *o = memchr(key, '{', len);
    if (o) {
        const char *c = memchr(o + 1, '}', len - (size_t)(o + 1 - key));
        if (c && c > o + 1) return crc16(o + 1, (size_t)(c - o - 1)) & (RCLUSTER_SLOTS - 1);
    }
    return crc16(key, len) & (RCLUSTER_SLOTS - 1);
}

const char *rcluster_slot_tag(unsigned slot)
{
    static char (*tags)[8];
    if (!tags) {
        tags = xcalloc(RCLUSTER_SLOTS, sizeof(*tags));
        size_t left = RCLUSTER_SLOTS;
        static const char al[] = "abcdefghijklmnopqrstuvwxyz0123456789";
        for (unsigned long i = 0; left; i++) {
            char t[8];
            size_t n = 0;
            for (unsigned long v = i; n < 6; v /= 36) {
                t[n++] = al[v % 36];
                if (v < 36) break;
            }
            unsigned s = crc16(t, n) & (RCLUSTER_SLOTS - 1);
            if (!tags[s][0]) {
                memcpy(tags[s], t, n);
                left--;
            }
        }
    }
    return tags[slot & (RCLUSTER_SLOTS - 1)];
}
