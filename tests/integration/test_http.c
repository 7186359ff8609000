/*
 * test_http.c - the HTTP server on a real libuv loop, driven by a client
 * thread over plain POSIX sockets.
 *
 * Each test starts a server on 127.0.0.1 port 0, runs one client scenario
 * in a thread while the loop runs, then closes the server and requires
 * uv_loop_close() to succeed (every handle closed, the close callback fired
 * exactly once). The client thread never calls cmocka (its longjmp must stay
 * on the main thread): it records failed checks, which the main thread then
 * asserts. The server's log is captured and searched for what it must never
 * contain (addresses, tokens, bodies, queries).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>
#include <uv.h>

#include "herald.h"
#include "http.h"
#include "log.h"

/* ---- the server side (loop thread) --------------------------------------- */

struct fixture;
typedef void (*scenario_fn)(struct fixture *f);

struct fixture {
    uv_loop_t loop;
    struct http_server *srv;
    int port;
    uv_async_t done;
    pthread_t thread;
    scenario_fn scenario;
    int closed_calls;
    atomic_bool signalled; /* the client asked for the close */
    int async_answered;    /* delayed answers given (loop thread) */
    struct strbuf failures; /* written by the client thread, read after join */
    char *log;              /* what the server logged during the run */
};

struct delayed {
    uv_timer_t timer;
    struct http_request *req;
    const char *body;
    struct fixture *f;
};

static void on_delayed_closed(uv_handle_t *h) { free(h); }

static void on_delay(uv_timer_t *t)
{
    struct delayed *d = t->data;
    d->f->async_answered++;
    http_respond(d->req, 200, "text/plain", d->body, strlen(d->body));
    uv_close((uv_handle_t *)&d->timer, on_delayed_closed);
}

static void answer_later(struct fixture *f, struct http_request *req, const char *body, uint64_t ms)
{
    struct delayed *d = calloc(1, sizeof(*d));
    d->req = req;
    d->body = body;
    d->f = f;
    uv_timer_init(&f->loop, &d->timer);
    d->timer.data = d;
    uv_timer_start(&d->timer, on_delay, ms, 0);
}

static void h_recipient(struct http_request *req, void *arg)
{
    (void)arg;
    const char *x = http_request_header(req, "x-test");
    json_t *o = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s}", "empty",
                          http_request_header(req, "x-empty") ? "present" : "absent", "id", http_request_param(req, "id"), "route",
                          http_request_route(req), "query", http_request_query(req), "path",
                          http_request_path(req), "method", http_request_method(req), "x", x ? x : "");
    http_respond_json(req, 200, o);
}

static void h_export(struct http_request *req, void *arg)
{
    (void)arg;
    http_respond_json(req, 200, json_pack("{s:b}", "export", 1));
}

static void h_delete(struct http_request *req, void *arg)
{
    (void)arg;
    http_respond(req, 204, NULL, NULL, 0);
}

static void h_consent(struct http_request *req, void *arg)
{
    (void)arg;
    size_t len;
    const char *body = http_request_body(req, &len);
    json_t *o = json_pack("{s:s, s:I, s:s%}", "id", http_request_param(req, "id"), "len", (json_int_t)len,
                          "body", body, len);
    http_response_header(req, "X-Echo", "1");
    http_respond_json(req, 201, o);
}

static void h_fast(struct http_request *req, void *arg)
{
    (void)arg;
    http_respond(req, 200, "text/plain", "fast", 4);
}

static void h_slow(struct http_request *req, void *arg) { answer_later(arg, req, "slow", 150); }
static void h_gone(struct http_request *req, void *arg) { answer_later(arg, req, "late", 300); }

static void h_error(struct http_request *req, void *arg)
{
    (void)arg;
    http_respond_error(req, 503, "try \"later\"");
}

/* A precheck: refuses a request without X-Sig before its body is read. */
static int pc_signed(const struct http_request *req, void *arg, const char **message)
{
    (void)arg;
    if (http_request_header(req, "X-Sig")) return 0;
    *message = "signature required";
    return 401;
}

static void h_signed(struct http_request *req, void *arg)
{
    (void)arg;
    size_t len;
    http_request_body(req, &len);
    json_t *o = json_pack("{s:I}", "len", (json_int_t)len);
    http_respond_json(req, 200, o);
}

static void on_server_closed(void *arg)
{
    struct fixture *f = arg;
    f->closed_calls++;
    f->srv = NULL;
}

static void on_async_closed(uv_handle_t *h) { (void)h; }

static void on_done(uv_async_t *a)
{
    struct fixture *f = a->data;
    assert_int_equal(http_server_close(f->srv, on_server_closed, f), 0);
    uv_close((uv_handle_t *)&f->done, on_async_closed);
}

/* From the client thread: close the server now (once). */
static void signal_done(struct fixture *f)
{
    if (!atomic_exchange(&f->signalled, true)) uv_async_send(&f->done);
}

static void *client_main(void *arg)
{
    struct fixture *f = arg;
    f->scenario(f);
    signal_done(f);
    return NULL;
}

static char *slurp(FILE *fp)
{
    struct strbuf sb;
    strbuf_init(&sb);
    char buf[4096];
    size_t n;
    rewind(fp);
    while ((n = fread(buf, 1, sizeof(buf), fp)) > 0) strbuf_add(&sb, buf, n);
    strbuf_add(&sb, "", 0);
    return strbuf_detach(&sb, NULL);
}

static void fixture_free(struct fixture *f)
{
    strbuf_free(&f->failures);
    free(f->log);
    f->log = NULL;
}

/* Runs scenario against a fresh server; returns after a clean close. */
static void run(struct fixture *f, const struct http_limits *limits, scenario_fn scenario)
{
    memset(f, 0, sizeof(*f));
    atomic_init(&f->signalled, false);
    strbuf_init(&f->failures);
    f->scenario = scenario;
    assert_int_equal(uv_loop_init(&f->loop), 0);
    f->srv = http_server_new(&f->loop, limits);
    assert_int_equal(http_route(f->srv, "GET", "/v1/recipients/{id}", h_recipient, f), 0);
    assert_int_equal(http_route(f->srv, "DELETE", "/v1/recipients/{id}", h_delete, f), 0);
    assert_int_equal(http_route(f->srv, "GET", "/v1/recipients/export", h_export, f), 0);
    assert_int_equal(http_route(f->srv, "POST", "/v1/recipients/{id}/consent", h_consent, f), 0);
    assert_int_equal(http_route(f->srv, "GET", "/fast", h_fast, f), 0);
    assert_int_equal(http_route(f->srv, "GET", "/slow", h_slow, f), 0);
    assert_int_equal(http_route(f->srv, "GET", "/gone", h_gone, f), 0);
    assert_int_equal(http_route(f->srv, "GET", "/error", h_error, f), 0);
    assert_int_equal(http_route(f->srv, "POST", "/signed", h_signed, f), 0);
    assert_int_equal(http_route_body_limit(f->srv, "POST", "/signed", 4u << 20), 0);
    assert_int_equal(http_route_precheck(f->srv, "POST", "/signed", pc_signed), 0);
    assert_int_equal(http_route_precheck(f->srv, "POST", "/nowhere", pc_signed), -HERALD_ENOENT);
    char err[256] = "";
    assert_int_equal(http_listen(f->srv, "127.0.0.1", 0, err, sizeof(err)), 0);
    f->port = http_bound_port(f->srv);
    assert_true(f->port > 0);

    /* Capture the log of this run. */
    FILE *logf = tmpfile();
    assert_non_null(logf);
    fflush(stderr);
    int saved = dup(STDERR_FILENO);
    dup2(fileno(logf), STDERR_FILENO);

    assert_int_equal(uv_async_init(&f->loop, &f->done, on_done), 0);
    f->done.data = f;
    assert_int_equal(pthread_create(&f->thread, NULL, client_main, f), 0);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    pthread_join(f->thread, NULL);

    fflush(stderr);
    dup2(saved, STDERR_FILENO);
    close(saved);
    f->log = slurp(logf);
    fclose(logf);
    fputs(f->log, stderr);

    assert_int_equal(f->closed_calls, 1);
    assert_null(f->srv);
    assert_int_equal(uv_loop_close(&f->loop), 0);
    if (f->failures.len) {
        static char msg[8192];
        snprintf(msg, sizeof(msg), "%s", f->failures.buf);
        fixture_free(f);
        fail_msg("client checks failed:\n%s", msg);
    }
}


/* ---- the client side (its own thread) ------------------------------------ */

static pthread_mutex_t failures_lock = PTHREAD_MUTEX_INITIALIZER;

static void note_failure(struct fixture *f, int line, const char *what)
{
    pthread_mutex_lock(&failures_lock);
    strbuf_addf(&f->failures, "  test_http.c:%d: %s\n", line, what);
    pthread_mutex_unlock(&failures_lock);
}

#define CHECK(cond)                                     \
    do {                                                \
        if (!(cond)) note_failure(f, __LINE__, #cond); \
    } while (0)

struct client {
    int fd;
    int head; /* the next response answers HEAD: no body despite Content-Length */
    char buf[128 * 1024];
    size_t len;
};

struct resp {
    int status;
    char head[8192]; /* status line and headers */
    char body[65536];
    size_t body_len;
};

static void msleep(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

static int cx_open_from(struct client *c, int port, const char *source);

static int cx_open(struct client *c, int port) { return cx_open_from(c, port, NULL); }

/* Connects to 127.0.0.1:port from source (another loopback address such as
 * 127.0.0.2: another client as the server counts them), or any when NULL. */
static int cx_open_from(struct client *c, int port, const char *source)
{
    c->len = 0;
    c->head = 0;
    c->fd = socket(AF_INET, SOCK_STREAM, 0);
    if (c->fd < 0) return -1;
    struct timeval tv = {5, 0};
    setsockopt(c->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    struct sockaddr_in sa;
    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    if (source) {
        inet_pton(AF_INET, source, &sa.sin_addr);
        if (bind(c->fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) return -1;
    }
    sa.sin_port = htons((uint16_t)port);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    return connect(c->fd, (struct sockaddr *)&sa, sizeof(sa));
}

static void cx_close(struct client *c)
{
    if (c->fd >= 0) close(c->fd);
    c->fd = -1;
}

static int cx_send(struct client *c, const char *data, size_t len)
{
    while (len) {
        ssize_t n = send(c->fd, data, len, MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EINTR) continue;
            return -1;
        }
        data += n;
        len -= (size_t)n;
    }
    return 0;
}

static int cx_sends(struct client *c, const char *s) { return cx_send(c, s, strlen(s)); }

/* Reads more into c->buf: >0 bytes, 0 on EOF, -1 on error or timeout. */
static ssize_t cx_fill(struct client *c)
{
    if (c->len == sizeof(c->buf)) return -1;
    ssize_t n;
    do {
        n = recv(c->fd, c->buf + c->len, sizeof(c->buf) - c->len, 0);
    } while (n < 0 && errno == EINTR);
    if (n < 0 && errno == ECONNRESET) return 0;
    if (n > 0) c->len += (size_t)n;
    return n;
}

static const char *find_header(const char *head, const char *name)
{
    size_t nl = strlen(name);
    for (const char *p = strstr(head, "\r\n"); p && p[2]; p = strstr(p + 2, "\r\n")) {
        const char *line = p + 2;
        if (strncasecmp(line, name, nl) == 0 && line[nl] == ':') {
            line += nl + 1;
            while (*line == ' ') line++;
            return line;
        }
    }
    return NULL;
}

/* Copies header name's value into out ("" when absent). */
static const char *header_value(const struct resp *r, const char *name, char *out, size_t outlen)
{
    const char *v = find_header(r->head, name);
    size_t n = v ? strcspn(v, "\r\n") : 0;
    if (n >= outlen) n = outlen - 1;
    memcpy(out, v ? v : "", n);
    out[n] = '\0';
    return out;
}

/* Reads one response: 0, or -1 when the connection ended first. */
static int cx_response(struct client *c, struct resp *r)
{
    memset(r, 0, sizeof(*r));
    char *end;
    for (;;) {
        c->buf[c->len < sizeof(c->buf) ? c->len : sizeof(c->buf) - 1] = '\0';
        end = c->len ? memmem(c->buf, c->len, "\r\n\r\n", 4) : NULL;
        if (end) break;
        if (cx_fill(c) <= 0) return -1;
    }
    size_t hlen = (size_t)(end - c->buf) + 2; /* keep the last CRLF for find_header */
    if (hlen >= sizeof(r->head)) return -1;
    memcpy(r->head, c->buf, hlen);
    r->head[hlen] = '\0';
    if (sscanf(r->head, "HTTP/1.1 %d", &r->status) != 1) return -1;
    const char *cl = find_header(r->head, "content-length");
    size_t blen = cl ? strtoul(cl, NULL, 10) : 0;
    if (r->status == 100 || r->status == 204 || c->head) blen = 0;
    c->head = 0;
    size_t need = hlen + 2 + blen;
    if (blen >= sizeof(r->body)) return -1;
    while (c->len < need)
        if (cx_fill(c) <= 0) return -1;
    memcpy(r->body, c->buf + hlen + 2, blen);
    r->body[blen] = '\0';
    r->body_len = blen;
    memmove(c->buf, c->buf + need, c->len - need);
    c->len -= need;
    return 0;
}

/* True when the server closes the connection (and sends nothing more). */
static int cx_eof(struct client *c)
{
    if (c->len) return 0;
    return cx_fill(c) == 0;
}

static int exchange(struct client *c, const char *request, struct resp *r)
{
    if (cx_sends(c, request) < 0) return -1;
    return cx_response(c, r);
}

/* The JSON string field key of r's body ("" when absent). */
static const char *json_field(const struct resp *r, const char *key, char *out, size_t outlen)
{
    json_t *o = json_loads(r->body, 0, NULL);
    const char *v = json_string_value(json_object_get(o, key));
    snprintf(out, outlen, "%s", v ? v : "");
    json_decref(o);
    return out;
}

/* ---- scenarios ------------------------------------------------------------ */

static void sc_routing(struct fixture *f)
{
    struct client c;
    struct resp r;
    char v[512];
    CHECK(cx_open(&c, f->port) == 0);

    /* A parameter, percent-decoded; the raw path and query; headers by any case. */
    CHECK(exchange(&c,
                   "GET /v1/recipients/ann%40example.com%2Bx?token=SECRET-QUERY HTTP/1.1\r\n"
                   "Host: t\r\nX-Empty:\r\nX-TEST: hello\r\nAuthorization: Bearer SECRET-TOKEN\r\n\r\n",
                   &r) == 0);
    CHECK(r.status == 200);
    CHECK(strcmp(header_value(&r, "content-type", v, sizeof(v)), "application/json") == 0);
    CHECK(strcmp(json_field(&r, "id", v, sizeof(v)), "ann@example.com+x") == 0);
    CHECK(strcmp(json_field(&r, "route", v, sizeof(v)), "/v1/recipients/{id}") == 0);
    CHECK(strcmp(json_field(&r, "path", v, sizeof(v)), "/v1/recipients/ann%40example.com%2Bx") == 0);
    CHECK(strcmp(json_field(&r, "query", v, sizeof(v)), "token=SECRET-QUERY") == 0);
    CHECK(strcmp(json_field(&r, "method", v, sizeof(v)), "GET") == 0);
    CHECK(strcmp(json_field(&r, "x", v, sizeof(v)), "hello") == 0);
    CHECK(strcmp(json_field(&r, "empty", v, sizeof(v)), "present") == 0);

    /* A literal segment beats a parameter. */
    CHECK(exchange(&c, "GET /v1/recipients/export HTTP/1.1\r\nHost: t\r\n\r\n", &r) == 0);
    CHECK(r.status == 200 && strstr(r.body, "\"export\":true"));

    /* Bad percent-encoding and an encoded NUL are 400, and the connection lives on. */
    CHECK(exchange(&c, "GET /v1/recipients/a%zz HTTP/1.1\r\nHost: t\r\n\r\n", &r) == 0);
    CHECK(r.status == 400 && strstr(r.body, "\"error\""));
    CHECK(exchange(&c, "GET /v1/recipients/a%00b HTTP/1.1\r\nHost: t\r\n\r\n", &r) == 0);
    CHECK(r.status == 400);

    /* Unknown paths (an empty parameter is no match). */
    CHECK(exchange(&c, "GET /nope HTTP/1.1\r\nHost: t\r\n\r\n", &r) == 0);
    CHECK(r.status == 404);
    CHECK(strcmp(json_field(&r, "error", v, sizeof(v)), "not found") == 0);
    CHECK(exchange(&c, "GET /v1/recipients/ HTTP/1.1\r\nHost: t\r\n\r\n", &r) == 0);
    CHECK(r.status == 404);
    CHECK(exchange(&c, "GET /fast/ HTTP/1.1\r\nHost: t\r\n\r\n", &r) == 0);
    CHECK(r.status == 404);

    /* Known path, wrong method: 405 with Allow. */
    CHECK(exchange(&c, "PUT /v1/recipients/u1 HTTP/1.1\r\nHost: t\r\nContent-Length: 2\r\n\r\n{}", &r) == 0);
    CHECK(r.status == 405);
    CHECK(strcmp(header_value(&r, "allow", v, sizeof(v)), "GET, DELETE") == 0);
    CHECK(strcmp(json_field(&r, "error", v, sizeof(v)), "method not allowed") == 0);

    /* A body, a handler's own header, a status without a body. */
    CHECK(exchange(&c,
                   "POST /v1/recipients/u%201/consent HTTP/1.1\r\nHost: t\r\n"
                   "Content-Type: application/json\r\nContent-Length: 22\r\n\r\n"
                   "{\"secret\":\"BODY-TEXT\"}",
                   &r) == 0);
    CHECK(r.status == 201);
    CHECK(strcmp(header_value(&r, "x-echo", v, sizeof(v)), "1") == 0);
    CHECK(strcmp(json_field(&r, "id", v, sizeof(v)), "u 1") == 0);
    CHECK(strcmp(json_field(&r, "body", v, sizeof(v)), "{\"secret\":\"BODY-TEXT\"}") == 0);
    CHECK(exchange(&c, "DELETE /v1/recipients/u1 HTTP/1.1\r\nHost: t\r\n\r\n", &r) == 0);
    CHECK(r.status == 204 && !find_header(r.head, "content-length"));

    /* A chunked body is decoded. */
    CHECK(exchange(&c,
                   "POST /v1/recipients/u1/consent HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
                   "3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n",
                   &r) == 0);
    CHECK(r.status == 201);
    CHECK(strcmp(json_field(&r, "body", v, sizeof(v)), "abcde") == 0);

    /* HEAD gets the headers only; JSON error helper escapes. */
    c.head = 1;
    CHECK(exchange(&c, "HEAD /nope HTTP/1.1\r\nHost: t\r\n\r\n", &r) == 0);
    CHECK(r.status == 404 && find_header(r.head, "content-length"));
    CHECK(exchange(&c, "GET /fast HTTP/1.1\r\nHost: t\r\n\r\n", &r) == 0);
    CHECK(r.status == 200 && strcmp(r.body, "fast") == 0); /* nothing was left over */
    CHECK(exchange(&c, "GET /error HTTP/1.1\r\nHost: t\r\n\r\n", &r) == 0);
    CHECK(r.status == 503);
    CHECK(strcmp(json_field(&r, "error", v, sizeof(v)), "try \"later\"") == 0);

    /* Still the same connection: Connection: close ends it after the answer. */
    CHECK(exchange(&c, "GET /fast HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n", &r) == 0);
    CHECK(r.status == 200 && strcmp(r.body, "fast") == 0);
    CHECK(strcasecmp(header_value(&r, "connection", v, sizeof(v)), "close") == 0);
    CHECK(cx_eof(&c));
    cx_close(&c);

    /* HTTP/1.0 closes unless asked otherwise. */
    CHECK(cx_open(&c, f->port) == 0);
    CHECK(exchange(&c, "GET /fast HTTP/1.0\r\n\r\n", &r) == 0);
    CHECK(r.status == 200);
    CHECK(cx_eof(&c));
    cx_close(&c);
    CHECK(cx_open(&c, f->port) == 0);
    CHECK(exchange(&c, "GET /fast HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", &r) == 0);
    CHECK(r.status == 200);
    CHECK(strcasecmp(header_value(&r, "connection", v, sizeof(v)), "keep-alive") == 0);
    CHECK(exchange(&c, "GET /fast HTTP/1.0\r\n\r\n", &r) == 0);
    CHECK(r.status == 200);
    CHECK(cx_eof(&c));
    cx_close(&c);
}

static void test_routing(void **state)
{
    (void)state;
    struct fixture f;
    log_set_level(LOG_DEBUG);
    run(&f, NULL, sc_routing);
    /* The log names methods, routes and statuses, and nothing the client sent. */
    assert_non_null(strstr(f.log, "GET /v1/recipients/{id} status=200"));
    assert_non_null(strstr(f.log, "status=503"));
    const char *never[] = {"SECRET-TOKEN", "SECRET-QUERY", "BODY-TEXT", "example.com", "hello", "u 1"};
    for (size_t i = 0; i < sizeof(never) / sizeof(never[0]); i++)
        if (strstr(f.log, never[i])) fail_msg("the log contains %s", never[i]);
    fixture_free(&f);
}

static void sc_limits(struct fixture *f)
{
    struct client c;
    struct resp r;
    char big[4096];

    /* Content-Length over the limit: refused before the body, then closed. */
    CHECK(cx_open(&c, f->port) == 0);
    CHECK(exchange(&c, "POST /v1/recipients/u1/consent HTTP/1.1\r\nHost: t\r\nContent-Length: 1000\r\n\r\n",
                   &r) == 0);
    CHECK(r.status == 413 && strstr(r.body, "\"error\""));
    CHECK(cx_eof(&c));
    cx_close(&c);

    /* The same while the client keeps sending its body. */
    CHECK(cx_open(&c, f->port) == 0);
    memset(big, 'x', sizeof(big));
    CHECK(cx_sends(&c, "POST /v1/recipients/u1/consent HTTP/1.1\r\nHost: t\r\nContent-Length: 4096\r\n\r\n") == 0);
    cx_send(&c, big, sizeof(big)); /* may fail once the server closed */
    CHECK(cx_response(&c, &r) == 0);
    CHECK(r.status == 413);
    cx_close(&c);

    /* A chunked body crossing the limit. */
    CHECK(cx_open(&c, f->port) == 0);
    CHECK(cx_sends(&c, "POST /v1/recipients/u1/consent HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n") == 0);
    for (int i = 0; i < 3; i++) {
        cx_sends(&c, "64\r\n");
        cx_send(&c, big, 100);
        cx_sends(&c, "\r\n");
    }
    CHECK(cx_response(&c, &r) == 0);
    CHECK(r.status == 413);
    CHECK(cx_eof(&c));
    cx_close(&c);

    /* Exactly the limit is fine. */
    CHECK(cx_open(&c, f->port) == 0);
    CHECK(cx_sends(&c, "POST /v1/recipients/u1/consent HTTP/1.1\r\nHost: t\r\nContent-Length: 256\r\n\r\n") == 0);
    CHECK(cx_send(&c, big, 256) == 0);
    CHECK(cx_response(&c, &r) == 0);
    CHECK(r.status == 201);

    /* Expect: 100-continue gets its interim answer, then the real one. */
    CHECK(cx_sends(&c, "POST /v1/recipients/u1/consent HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\n"
                       "Content-Length: 5\r\n\r\n") == 0);
    CHECK(cx_response(&c, &r) == 0);
    CHECK(r.status == 100);
    CHECK(cx_sends(&c, "hello") == 0);
    CHECK(cx_response(&c, &r) == 0);
    CHECK(r.status == 201);
    cx_close(&c);

    /* A header block over the limit: 431, then closed. */
    CHECK(cx_open(&c, f->port) == 0);
    memset(big, 'a', sizeof(big));
    big[2000] = '\0';
    struct strbuf req;
    strbuf_init(&req);
    strbuf_addf(&req, "GET /fast HTTP/1.1\r\nHost: t\r\nX-Big: %s\r\n\r\n", big);
    CHECK(exchange(&c, req.buf, &r) == 0);
    CHECK(r.status == 431);
    CHECK(cx_eof(&c));
    cx_close(&c);
    /* Many small headers count too. */
    strbuf_reset(&req);
    strbuf_adds(&req, "GET /fast HTTP/1.1\r\n");
    for (int i = 0; i < 300; i++) strbuf_adds(&req, "A: b\r\n");
    strbuf_adds(&req, "\r\n");
    CHECK(cx_open(&c, f->port) == 0);
    CHECK(exchange(&c, req.buf, &r) == 0);
    CHECK(r.status == 431);
    cx_close(&c);
    /* A long URL too. */
    strbuf_reset(&req);
    strbuf_addf(&req, "GET /v1/recipients/%s HTTP/1.1\r\n\r\n", big);
    CHECK(cx_open(&c, f->port) == 0);
    CHECK(exchange(&c, req.buf, &r) == 0);
    CHECK(r.status == 431);
    cx_close(&c);
    strbuf_free(&req);
}

static void test_limits(void **state)
{
    (void)state;
    struct fixture f;
    struct http_limits lim = {.max_header_bytes = 1024, .max_body_bytes = 256};
    run(&f, &lim, sc_limits);
    fixture_free(&f);
}

static void sc_garbage(struct fixture *f)
{
    struct client c;
    struct resp r;
    char v[256];
    static const char *bad[] = {
        "HELLO WORLD\r\n\r\n",
        "GET /fast HTTP/1.1\r\nBad Header\r\n\r\n",
        "GET /fast HTTP/9.9\r\n\r\n",
        "GET /fast HTTP/1.1\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        "GET /fast HTTP/1.1\r\nContent-Length: abc\r\n\r\n",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        CHECK(cx_open(&c, f->port) == 0);
        CHECK(exchange(&c, bad[i], &r) == 0);
        CHECK(r.status == 400);
        CHECK(strncmp(json_field(&r, "error", v, sizeof(v)), "malformed request", 17) == 0);
        CHECK(cx_eof(&c));
        cx_close(&c);
    }
    /* No protocol upgrades: answered, then closed. */
    CHECK(cx_open(&c, f->port) == 0);
    CHECK(exchange(&c, "GET /fast HTTP/1.1\r\nHost: t\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n"
                       "GET /fast HTTP/1.1\r\n\r\n", &r) == 0);
    CHECK(r.status == 200);
    CHECK(strcasecmp(header_value(&r, "connection", v, sizeof(v)), "close") == 0);
    CHECK(cx_eof(&c));
    cx_close(&c);
    CHECK(cx_open(&c, f->port) == 0);
    CHECK(exchange(&c, "CONNECT example.org:443 HTTP/1.1\r\nHost: example.org\r\n\r\n", &r) == 0);
    CHECK(r.status == 400);
    CHECK(cx_eof(&c));
    cx_close(&c);

    /* A request target that is not a path. */
    CHECK(cx_open(&c, f->port) == 0);
    CHECK(exchange(&c, "GET http://example.org/fast HTTP/1.1\r\nHost: t\r\n\r\n", &r) == 0);
    CHECK(r.status == 400);
    /* Garbage after a good request on the same connection: the good one is answered. */
    CHECK(cx_sends(&c, "GET /fast HTTP/1.1\r\nHost: t\r\n\r\n\x01\x02garbage\r\n\r\n") == 0);
    CHECK(cx_response(&c, &r) == 0);
    CHECK(r.status == 200);
    CHECK(cx_response(&c, &r) == 0);
    CHECK(r.status == 400);
    CHECK(cx_eof(&c));
    cx_close(&c);
}

static void test_garbage(void **state)
{
    (void)state;
    struct fixture f;
    run(&f, NULL, sc_garbage);
    fixture_free(&f);
}

static void sc_pipelining(struct fixture *f)
{
    struct client c;
    struct resp r;
    CHECK(cx_open(&c, f->port) == 0);
    /* One write, three requests: the slow (async) one is answered first. */
    CHECK(cx_sends(&c, "GET /slow HTTP/1.1\r\nHost: t\r\n\r\n"
                       "GET /fast HTTP/1.1\r\nHost: t\r\n\r\n"
                       "GET /v1/recipients/u2 HTTP/1.1\r\nHost: t\r\n\r\n") == 0);
    CHECK(cx_response(&c, &r) == 0);
    CHECK(r.status == 200 && strcmp(r.body, "slow") == 0);
    CHECK(cx_response(&c, &r) == 0);
    CHECK(r.status == 200 && strcmp(r.body, "fast") == 0);
    CHECK(cx_response(&c, &r) == 0);
    CHECK(r.status == 200 && strstr(r.body, "\"u2\""));
    /* Byte by byte works as well. */
    const char *req = "GET /slow HTTP/1.1\r\nHost: t\r\n\r\n";
    for (const char *p = req; *p; p++) CHECK(cx_send(&c, p, 1) == 0);
    CHECK(cx_response(&c, &r) == 0);
    CHECK(r.status == 200 && strcmp(r.body, "slow") == 0);
    cx_close(&c);
}

static void test_pipelining(void **state)
{
    (void)state;
    struct fixture f;
    run(&f, NULL, sc_pipelining);
    assert_int_equal(f.async_answered, 2);
    fixture_free(&f);
}

static void sc_disconnect(struct fixture *f)
{
    struct client c;
    /* The client leaves before the async answer; the server must survive it. */
    CHECK(cx_open(&c, f->port) == 0);
    CHECK(cx_sends(&c, "GET /gone HTTP/1.1\r\nHost: t\r\n\r\n") == 0);
    cx_close(&c);
    /* The same with a reset instead of a FIN. */
    CHECK(cx_open(&c, f->port) == 0);
    CHECK(cx_sends(&c, "GET /gone HTTP/1.1\r\nHost: t\r\n\r\nGET /fast HTTP/1.1\r\n\r\n") == 0);
    struct linger lg = {1, 0};
    setsockopt(c.fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
    cx_close(&c);
    msleep(600); /* both answers come and go while the server runs */

    /* The server closes while a handler still holds a request: it stays valid. */
    CHECK(cx_open(&c, f->port) == 0);
    CHECK(cx_sends(&c, "GET /gone HTTP/1.1\r\nHost: t\r\n\r\n") == 0);
    CHECK(cx_sends(&c, "GET /fast HTTP/1.1\r\nHost: t\r\n\r\nGET /fa") == 0); /* waits behind it */
    msleep(50);
    signal_done(f); /* close now; the answer comes 250 ms later */
    CHECK(cx_eof(&c));
    cx_close(&c);
}

static void test_disconnect(void **state)
{
    (void)state;
    struct fixture f;
    run(&f, NULL, sc_disconnect);
    assert_int_equal(f.async_answered, 3);
    fixture_free(&f);
}

static void sc_idle(struct fixture *f)
{
    struct client c;
    struct resp r;
    struct timespec t0, t1;
    /* Nothing sent: closed after the idle timeout. */
    clock_gettime(CLOCK_MONOTONIC, &t0);
    CHECK(cx_open(&c, f->port) == 0);
    CHECK(cx_eof(&c));
    clock_gettime(CLOCK_MONOTONIC, &t1);
    long ms = (t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000;
    CHECK(ms >= 150 && ms < 3000);
    cx_close(&c);
    /* Half a request, then silence: 408 after the header timeout, then closed. */
    CHECK(cx_open(&c, f->port) == 0);
    CHECK(cx_sends(&c, "GET /fast HTTP/1.1\r\nHo") == 0);
    CHECK(cx_response(&c, &r) == 0 && r.status == 408);
    CHECK(cx_eof(&c));
    cx_close(&c);
    /* The headers in time, the body late: 408 after the body timeout. */
    CHECK(cx_open(&c, f->port) == 0);
    CHECK(cx_sends(&c, "POST /signed HTTP/1.1\r\nHost: t\r\nX-Sig: 1\r\nContent-Length: 10\r\n\r\nabc") == 0);
    CHECK(cx_response(&c, &r) == 0 && r.status == 408);
    CHECK(strstr(r.body, "body") != NULL);
    cx_close(&c);
    /* A request trickling in slower than the timeout allows is cut off. */
    CHECK(cx_open(&c, f->port) == 0);
    const char *slow = "GET /fast HTTP/1.1\r\nHost: t\r\n\r\n";
    int sent = 0;
    for (const char *p = slow; *p; p++) {
        if (cx_send(&c, p, 1) != 0) break;
        sent++;
        msleep(30);
    }
    CHECK(sent < (int)strlen(slow)); /* the server hung up before the end */
    CHECK(cx_response(&c, &r) == 0 && r.status == 408);
    cx_close(&c);
    /* Kept alive between requests, closed when idle after them. */
    CHECK(cx_open(&c, f->port) == 0);
    CHECK(exchange(&c, "GET /fast HTTP/1.1\r\nHost: t\r\n\r\n", &r) == 0);
    msleep(100);
    CHECK(exchange(&c, "GET /fast HTTP/1.1\r\nHost: t\r\n\r\n", &r) == 0);
    CHECK(r.status == 200);
    CHECK(cx_eof(&c));
    cx_close(&c);
    /* A slow handler is not idleness. */
    CHECK(cx_open(&c, f->port) == 0);
    CHECK(exchange(&c, "GET /gone HTTP/1.1\r\nHost: t\r\n\r\n", &r) == 0);
    CHECK(r.status == 200 && strcmp(r.body, "late") == 0);
    cx_close(&c);
}

static void test_idle(void **state)
{
    (void)state;
    struct fixture f;
    struct http_limits lim = {.idle_timeout_ms = 200, .header_timeout_ms = 200, .body_timeout_ms = 200};
    run(&f, &lim, sc_idle);
    /* Timeouts are logged once each however often they hit; idle closes not at all. */
    const char *hit = strstr(f.log, "header_timeout limit hit");
    assert_non_null(hit);
    assert_null(strstr(hit + 1, "header_timeout limit hit")); /* two hits above */
    assert_non_null(strstr(f.log, "body_timeout limit hit"));
    assert_null(strstr(f.log, "idle_timeout limit hit"));
    fixture_free(&f);
}

static void sc_max_connections(struct fixture *f)
{
    struct client a, b, c, d;
    struct resp r;
    /* Two connections in the middle of a request: not idle. */
    CHECK(cx_open(&a, f->port) == 0);
    CHECK(cx_sends(&a, "GET /fast HTTP/1.1\r\n") == 0);
    CHECK(cx_open(&b, f->port) == 0);
    CHECK(exchange(&b, "GET /fast HTTP/1.1\r\nHost: t\r\n\r\n", &r) == 0);
    CHECK(cx_sends(&b, "GET /fast HTTP/1.1\r\n") == 0);
    msleep(50);
    /* A third one is accepted and closed at once. */
    CHECK(cx_open_from(&c, f->port, "127.0.0.2") == 0);
    CHECK(cx_eof(&c));
    cx_close(&c);
    /* Room again once one leaves. */
    cx_close(&a);
    msleep(100);
    CHECK(cx_open(&d, f->port) == 0);
    CHECK(exchange(&d, "GET /fast HTTP/1.1\r\nHost: t\r\n\r\n", &r) == 0);
    CHECK(r.status == 200);
    CHECK(exchange(&b, "Host: t\r\n\r\n", &r) == 0 && r.status == 200); /* b still served */
    /* Full of idle keep-alive connections (b and d, now): a newcomer takes
     * the oldest one's place instead of being refused. */
    CHECK(cx_open_from(&c, f->port, "127.0.0.3") == 0);
    CHECK(exchange(&c, "GET /fast HTTP/1.1\r\nHost: t\r\n\r\n", &r) == 0 && r.status == 200);
    CHECK(cx_eof(&b)); /* the oldest idle one made room */
    cx_close(&c);
    /* Open connections at close time are closed by the server. */
    signal_done(f);
    CHECK(cx_eof(&b));
    CHECK(cx_eof(&d));
    cx_close(&b);
    cx_close(&d);
}

static void test_max_connections(void **state)
{
    (void)state;
    struct fixture f;
    struct http_limits lim = {.max_connections = 2};
    run(&f, &lim, sc_max_connections);
    fixture_free(&f);
}

/* One client (127.0.0.1) holds more connections than its share, in the
 * middle of requests (so none is idle): past its cap its connections are
 * closed at once, and other clients are still answered. */
static void sc_per_client(struct fixture *f)
{
    struct client hog[10], other;
    struct resp r;
    int refused = 0;
    for (int i = 0; i < 10; i++) {
        CHECK(cx_open(&hog[i], f->port) == 0);
        cx_sends(&hog[i], "GET /fast HTTP/1.1\r\nHost: t\r\n");
    }
    msleep(100);
    for (int i = 0; i < 10; i++) {
        struct timeval tv = {0, 200000};
        setsockopt(hog[i].fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
        if (cx_eof(&hog[i])) refused++;
    }
    CHECK(refused == 7); /* 3 kept */
    for (int i = 0; i < 5; i++) {
        char src[16];
        snprintf(src, sizeof(src), "127.0.0.%d", 2 + i);
        CHECK(cx_open_from(&other, f->port, src) == 0);
        CHECK(exchange(&other, "GET /fast HTTP/1.1\r\nHost: t\r\n\r\n", &r) == 0 && r.status == 200);
        cx_close(&other);
    }
    /* The hog's own connections still work up to its share. */
    CHECK(exchange(&hog[0], "\r\n", &r) == 0 && r.status == 200);
    CHECK(cx_sends(&hog[0], "GET /fast HTTP/1.1\r\n") == 0); /* busy again */
    /* Five others keep idle connections: 3 + 5 = 8, the listener is full. */
    struct client idle[5], late;
    for (int i = 0; i < 5; i++) {
        char src[16];
        snprintf(src, sizeof(src), "127.0.0.%d", 2 + i);
        CHECK(cx_open_from(&idle[i], f->port, src) == 0);
        CHECK(exchange(&idle[i], "GET /fast HTTP/1.1\r\nHost: t\r\n\r\n", &r) == 0 && r.status == 200);
    }
    /* The hog's next connection is over its share: it takes no one's place. */
    CHECK(cx_open(&late, f->port) == 0);
    CHECK(cx_eof(&late));
    cx_close(&late);
    for (int i = 0; i < 5; i++)
        CHECK(exchange(&idle[i], "GET /fast HTTP/1.1\r\nHost: t\r\n\r\n", &r) == 0 && r.status == 200);
    /* A newcomer within its share takes the oldest idle one's place. */
    CHECK(cx_open_from(&late, f->port, "127.0.0.9") == 0);
    CHECK(exchange(&late, "GET /fast HTTP/1.1\r\nHost: t\r\n\r\n", &r) == 0 && r.status == 200);
    cx_close(&late);
    int evicted = 0;
    for (int i = 0; i < 5; i++) {
        struct timeval tv = {0, 200000};
        setsockopt(idle[i].fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
        if (cx_eof(&idle[i])) evicted++;
        cx_close(&idle[i]);
    }
    CHECK(evicted == 1);
    for (int i = 0; i < 10; i++) cx_close(&hog[i]);
}

static void test_per_client(void **state)
{
    (void)state;
    struct fixture f;
    struct http_limits lim = {.max_connections = 8, .max_connections_per_client = 3, .name = "public"};
    run(&f, &lim, sc_per_client);
    /* Eight hits, one line (with the listener's name). */
    const char *hit = strstr(f.log, "listener=public: max_connections_per_client limit hit");
    assert_non_null(hit);
    assert_null(strstr(hit + 20, "max_connections_per_client limit hit"));
    fixture_free(&f);
}

/* Trailers are read and dropped; a precheck refuses before the body. */
static void sc_trailers_precheck(struct fixture *f)
{
    struct client c;
    struct resp r;
    char v[64];
    CHECK(cx_open(&c, f->port) == 0);
    /* X-Test as a chunked trailer is not a header. */
    CHECK(exchange(&c,
                   "GET /v1/recipients/abc HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
                   "3\r\nabc\r\n0\r\nX-Test: from-trailer\r\nX-Empty: 1\r\n\r\n",
                   &r) == 0);
    CHECK(r.status == 200);
    CHECK(strcmp(json_field(&r, "x", v, sizeof(v)), "") == 0);
    CHECK(strcmp(json_field(&r, "empty", v, sizeof(v)), "absent") == 0);
    /* The same as a header is one. */
    CHECK(exchange(&c, "GET /v1/recipients/abc HTTP/1.1\r\nHost: t\r\nX-Test: from-header\r\n\r\n", &r) == 0);
    CHECK(strcmp(json_field(&r, "x", v, sizeof(v)), "from-header") == 0);
    /* Every answer: no-store, nosniff. */
    CHECK(strcmp(header_value(&r, "Cache-Control", v, sizeof(v)), "no-store") == 0);
    CHECK(strcmp(header_value(&r, "X-Content-Type-Options", v, sizeof(v)), "nosniff") == 0);
    cx_close(&c);

    /* No signature header: 401 at once, though the announced body never comes. */
    CHECK(cx_open(&c, f->port) == 0);
    CHECK(exchange(&c, "POST /signed HTTP/1.1\r\nHost: t\r\nContent-Length: 3000000\r\n\r\n", &r) == 0);
    CHECK(r.status == 401);
    CHECK(strstr(r.body, "signature required") != NULL);
    CHECK(strcmp(header_value(&r, "X-Content-Type-Options", v, sizeof(v)), "nosniff") == 0);
    cx_close(&c);
    /* Nor a 100 Continue for it. */
    CHECK(cx_open(&c, f->port) == 0);
    CHECK(exchange(&c, "POST /signed HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n",
                   &r) == 0);
    CHECK(r.status == 401);
    cx_close(&c);
    /* A signature header sent as a trailer does not count either. */
    CHECK(cx_open(&c, f->port) == 0);
    CHECK(exchange(&c,
                   "POST /signed HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n"
                   "X-Sig: 1\r\n\r\n",
                   &r) == 0);
    CHECK(r.status == 401);
    cx_close(&c);
    /* With it, the body is read. */
    CHECK(cx_open(&c, f->port) == 0);
    CHECK(exchange(&c, "POST /signed HTTP/1.1\r\nHost: t\r\nX-Sig: 1\r\nContent-Length: 3\r\n\r\nabc", &r) == 0);
    CHECK(r.status == 200);
    CHECK(strstr(r.body, "\"len\":3") != NULL);
    cx_close(&c);
}

static void test_trailers_precheck(void **state)
{
    (void)state;
    struct fixture f;
    run(&f, NULL, sc_trailers_precheck);
    fixture_free(&f);
}

/* log_rate: a line when hits start, a count per interval while they go on,
 * a line with the total when an interval passes without one. */
static void test_log_rate(void **state)
{
    (void)state;
    FILE *logf = tmpfile();
    assert_non_null(logf);
    fflush(stderr);
    int saved = dup(STDERR_FILENO);
    dup2(fileno(logf), STDERR_FILENO);

    static struct log_rate r;
    uint64_t t0 = log_rate_now_ms();
    for (int i = 0; i < 1000; i++) log_rate_hit(&r, "test", "test refusals", "refused: missing header");
    log_rate_tick_at(t0 + 10);                          /* within the interval: nothing */
    log_rate_tick_at(t0 + LOG_RATE_INTERVAL_MS + 1);    /* 999 more */
    log_rate_hit(&r, "test", "test refusals", "refused: missing header");
    log_rate_tick_at(t0 + 2 * LOG_RATE_INTERVAL_MS + 2); /* 1 more */
    log_rate_tick_at(t0 + 3 * LOG_RATE_INTERVAL_MS + 3); /* none: stopped */
    log_rate_tick_at(t0 + 9 * LOG_RATE_INTERVAL_MS);     /* nothing more */
    log_rate_hit(&r, "test", "test refusals", "refused: again");

    fflush(stderr);
    dup2(saved, STDERR_FILENO);
    close(saved);
    char *log = slurp(logf);
    fclose(logf);
    fputs(log, stderr);
    int lines = 0;
    for (const char *p = log; *p; p++) lines += *p == '\n';
    assert_int_equal(lines, 5);
    const char *a = strstr(log, "warn test: refused: missing header");
    const char *b = strstr(log, "warn test: test refusals: 999 more in the last 60s");
    const char *c = strstr(log, "warn test: test refusals: 1 more in the last 60s");
    const char *d = strstr(log, "info test: test refusals: stopped after 1001");
    const char *e = strstr(log, "warn test: refused: again");
    assert_true(a && b && c && d && e && a < b && b < c && c < d && d < e);
    log_rate_forget(&r);
    free(log);
}

static void noop(struct http_request *req, void *arg)
{
    (void)arg;
    http_respond(req, 200, NULL, NULL, 0);
}

static void on_closed_count(void *arg) { (*(int *)arg)++; }

static void test_api_misuse(void **state)
{
    (void)state;
    uv_loop_t loop;
    assert_int_equal(uv_loop_init(&loop), 0);
    struct http_server *a = http_server_new(&loop, NULL);
    assert_int_equal(http_route(a, "GET", "/a/{id}/b", noop, NULL), 0);
    assert_int_equal(http_route(a, "GET", "/a/{other}/b", noop, NULL), -HERALD_EINVAL); /* same shape */
    assert_int_equal(http_route(a, "POST", "/a/{id}/b", noop, NULL), 0);
    assert_int_equal(http_route(a, "GET", "no-slash", noop, NULL), -HERALD_EINVAL);
    assert_int_equal(http_route(a, "GET", "/a/{", noop, NULL), -HERALD_EINVAL);
    assert_int_equal(http_route(a, "GET", "/a/{}", noop, NULL), -HERALD_EINVAL);
    assert_int_equal(http_route(a, "GET", "/a/x{id}", noop, NULL), -HERALD_EINVAL);
    assert_int_equal(http_route(a, "GET", "/{id}/{id}", noop, NULL), -HERALD_EINVAL);
    assert_int_equal(http_route(a, "GET", "/q?x", noop, NULL), -HERALD_EINVAL);
    assert_int_equal(http_route(a, "get", "/x", noop, NULL), -HERALD_EINVAL);
    assert_int_equal(http_bound_port(a), -1);

    char err[256] = "";
    assert_int_equal(http_listen(a, "127.0.0.1", 0, err, sizeof(err)), 0);
    int port = http_bound_port(a);
    assert_true(port > 0);
    assert_int_equal(http_listen(a, "127.0.0.1", 0, err, sizeof(err)), -HERALD_EBUSY);

    /* The port is taken: a clear error, and the server still closes cleanly. */
    struct http_server *b = http_server_new(&loop, NULL);
    assert_int_equal(http_listen(b, "127.0.0.1", port, err, sizeof(err)), -HERALD_EIO);
    assert_non_null(strstr(err, "address already in use"));
    assert_int_equal(http_listen(b, "127.0.0.1", 70000, err, sizeof(err)), -HERALD_EINVAL);
    /* A name is resolved. */
    struct http_server *c = http_server_new(&loop, NULL);
    assert_int_equal(http_listen(c, "localhost", 0, err, sizeof(err)), 0);
    assert_true(http_bound_port(c) > 0);

    int closed = 0;
    assert_int_equal(http_server_close(a, on_closed_count, &closed), 0);
    assert_int_equal(http_server_close(b, on_closed_count, &closed), 0);
    assert_int_equal(http_server_close(c, on_closed_count, &closed), 0);
    assert_int_equal(http_server_close(c, on_closed_count, &closed), -HERALD_EBUSY);
    assert_int_equal(closed, 0); /* never synchronously */
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(closed, 3);
    assert_int_equal(uv_loop_close(&loop), 0);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_api_misuse),
        cmocka_unit_test(test_routing),
        cmocka_unit_test(test_limits),
        cmocka_unit_test(test_garbage),
        cmocka_unit_test(test_pipelining),
        cmocka_unit_test(test_disconnect),
        cmocka_unit_test(test_idle),
        cmocka_unit_test(test_max_connections),
        cmocka_unit_test(test_per_client),
        cmocka_unit_test(test_trailers_precheck),
        cmocka_unit_test(test_log_rate),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
