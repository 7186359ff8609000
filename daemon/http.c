/*
 * http.c - the HTTP/1.1 server behind the admin and preference API.
 *
 * Owns the listening socket, its connections, the llhttp parsers and the
 * request objects handed to route handlers. It never logs a request body,
 * query string, path or header value (they may carry addresses or tokens):
 * only method, route pattern, status and errors.
 *
 * Main invariant: a connection has at most one request outside the parser
 * (with its handler, or its answer being written). While it does, the parser
 * stays paused and the socket is not read, so pipelined requests are answered
 * in order and no buffer grows beyond the limits: the URL and headers are
 * bounded by max_header_bytes, the body by max_body_bytes, the read buffer
 * is fixed. A request is detached (conn = NULL) when its connection closes
 * and stays valid until http_respond(), which then only frees it.
 */
#include "http.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <llhttp.h>

#include "herald.h"
#include "log.h"

#define HTTP_READ_BUF_SIZE (16u * 1024u)
#define HTTP_BACKLOG 128
/* After an answer that closes, the rest of what the client sends is read and
 * dropped for this long, so that its unread bytes do not turn our FIN into an
 * RST that would destroy the answer before the client reads it (nginx's
 * lingering close). */
#define HTTP_LINGER_MS 2000u
/* Counted per header for ": " and CRLF, so that many tiny headers cost. */
#define HTTP_HEADER_OVERHEAD 4u

struct http_header {
    char *name;
    char *value;
};

struct http_param {
    const char *name; /* points into the request's route copy */
    char *value;      /* percent-decoded */
};

struct route_seg {
    char *text; /* literal text, or the parameter name */
    size_t len;
    bool param;
};

struct route {
    char *method;
    char *pattern;
    struct route_seg *segs;
    size_t nsegs;
    http_handler_fn fn;
    void *arg;
    size_t max_body; /* 0: the server's max_body_bytes */
    http_precheck_fn precheck; /* NULL: none */
};

struct http_request {
    struct http_conn *conn; /* NULL once the connection is gone */
    const char *method;     /* llhttp's static name */
    struct strbuf url;      /* the request target as sent */
    char *path;
    char *query;
    struct strbuf field, value; /* the header being read */
    struct http_header *headers;
    size_t nheaders;
    struct strbuf body;
    char *route; /* copy of the matched pattern (outlives the server) */
    char *param_names; /* backing store of params[].name */
    struct http_param *params;
    size_t nparams;
    struct strbuf resp_headers;
    bool keep_alive;
    bool headers_done; /* what llhttp reports after this are trailers: dropped */
    bool head;
    bool http10;
    size_t max_body; /* of the route it will go to, known once the headers are in */
    uint64_t started_ns;
};

struct http_conn {
    struct http_server *srv;
    struct http_conn *prev, *next;
    uv_tcp_t tcp;
    uv_timer_t timer;
    uv_shutdown_t shutdown;
    llhttp_t parser;
    char *rbuf;               /* HTTP_READ_BUF_SIZE, allocated on first read */
    const char *unparsed;     /* inside rbuf: bytes after a paused request */
    size_t unparsed_len;
    struct http_request *cur;     /* being parsed */
    struct http_request *pending; /* with its handler */
    size_t header_bytes;
    struct sockaddr_storage peer; /* port zeroed: compared per client IP */
    int error_status; /* set by a parser callback that refuses the request */
    const char *error_msg;
    int handles; /* tcp and timer until both are closed */
    bool reading;
    bool paused;
    bool writing;
    bool lingering;
    bool closing;
};

struct http_write {
    uv_write_t req;
    char *data;
    enum { WRITE_INTERIM, WRITE_KEEP, WRITE_CLOSE } then;
};

struct http_server {
    uv_loop_t *loop;
    struct http_limits limits;
    llhttp_settings_t settings;
    uv_tcp_t listener;
    bool listening;
    bool closing;
    struct route *routes;
    size_t nroutes;
    struct http_conn *conns;
    unsigned nconns;
    size_t live; /* the listener, connections and refused sockets not yet closed */
    http_close_cb close_cb;
    void *close_arg;
    struct log_complaint accept_failing;
    uv_timer_t tick; /* every second: log_rate_tick() for the summaries */
    struct http_stats stats;
    struct log_rate rates[HTTP_LIMIT_COUNT];
    char rate_what[HTTP_LIMIT_COUNT][64]; /* "http listener=admin max_connections" */
};

/* One limit hit: counted, and logged rate-limited (never a line per hit:
 * the hits may be an attack). An idle keep-alive connection closed is
 * routine: counted only. */
static void limit_hit(struct http_server *srv, enum http_limit l)
{
    srv->stats.limit_hits[l]++;
    if (l == HTTP_LIMIT_IDLE_TIMEOUT) return;
    log_rate_hit(&srv->rates[l], "http", srv->rate_what[l], "listener=%s: %s limit hit (%s); further hits are counted",
                 srv->limits.name, http_limit_name((int)l),
                 l == HTTP_LIMIT_MAX_CONNECTIONS   ? "new connections are closed at once"
                 : l == HTTP_LIMIT_PER_CLIENT      ? "one client's extra connections are closed at once"
                 : l == HTTP_LIMIT_HEADER_TIMEOUT  ? "requests whose headers are late get 408"
                 : l == HTTP_LIMIT_BODY_TIMEOUT    ? "requests whose body is late get 408"
                 : l == HTTP_LIMIT_HEADER_SIZE     ? "requests with large headers get 431"
                                                   : "requests with large bodies get 413");
}

static const char *status_text(int status)
{
    switch (status) {
    case 100: return "Continue";
    case 200: return "OK";
    case 201: return "Created";
    case 202: return "Accepted";
    case 204: return "No Content";
    case 301: return "Moved Permanently";
    case 302: return "Found";
    case 303: return "See Other";
    case 304: return "Not Modified";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 409: return "Conflict";
    case 410: return "Gone";
    case 412: return "Precondition Failed";
    case 413: return "Content Too Large";
    case 415: return "Unsupported Media Type";
    case 422: return "Unprocessable Content";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    }
    return "Status";
}

/* ---- requests ---------------------------------------------------------- */

static struct http_request *request_new(struct http_conn *conn)
{
    struct http_request *req = xcalloc(1, sizeof(*req));
    req->conn = conn;
    req->method = "";
    strbuf_init(&req->url);
    strbuf_init(&req->field);
    strbuf_init(&req->value);
    strbuf_init(&req->body);
    strbuf_init(&req->resp_headers);
    req->started_ns = uv_hrtime();
    return req;
}

static void request_free(struct http_request *req)
{
    if (!req) return;
    strbuf_free(&req->url);
    strbuf_free(&req->field);
    strbuf_free(&req->value);
    strbuf_free(&req->body);
    strbuf_free(&req->resp_headers);
    for (size_t i = 0; i < req->nheaders; i++) {
        free(req->headers[i].name);
        free(req->headers[i].value);
    }
    free(req->headers);
    for (size_t i = 0; i < req->nparams; i++) free(req->params[i].value);
    free(req->params);
    free(req->param_names);
    free(req->path);
    free(req->query);
    free(req->route);
    free(req);
}

const char *http_request_method(const struct http_request *req) { return req->method; }
const char *http_request_path(const struct http_request *req) { return req->path ? req->path : ""; }
const char *http_request_query(const struct http_request *req) { return req->query ? req->query : ""; }
const char *http_request_target(const struct http_request *req) { return req->url.buf ? req->url.buf : ""; }
const char *http_request_route(const struct http_request *req) { return req->route ? req->route : ""; }

const char *http_request_header(const struct http_request *req, const char *name)
{
    for (size_t i = 0; i < req->nheaders; i++)
        if (strcasecmp(req->headers[i].name, name) == 0) return req->headers[i].value;
    return NULL;
}

const char *http_request_body(const struct http_request *req, size_t *len)
{
    if (len) *len = req->body.len;
    return req->body.buf ? req->body.buf : "";
}

const char *http_request_param(const struct http_request *req, const char *name)
{
    for (size_t i = 0; i < req->nparams; i++)
        if (strcmp(req->params[i].name, name) == 0) return req->params[i].value;
    return NULL;
}

static bool is_tchar(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           (c && strchr("!#$%&'*+-.^_`|~", c));
}

int http_response_header(struct http_request *req, const char *name, const char *value)
{
    if (!*name) return -HERALD_EINVAL;
    for (const char *p = name; *p; p++)
        if (!is_tchar((unsigned char)*p)) return -HERALD_EINVAL;
    if (strpbrk(value, "\r\n")) return -HERALD_EINVAL;
    strbuf_addf(&req->resp_headers, "%s: %s\r\n", name, value);
    return 0;
}

/* ---- connections ------------------------------------------------------- */

static void conn_close(struct http_conn *conn);
static void conn_feed(struct http_conn *conn, const char *data, size_t len);

static void server_maybe_finish(struct http_server *srv)
{
    if (!srv->closing || srv->live > 0) return;
    http_close_cb cb = srv->close_cb;
    void *arg = srv->close_arg;
    for (size_t i = 0; i < srv->nroutes; i++) {
        struct route *r = &srv->routes[i];
        for (size_t j = 0; j < r->nsegs; j++) free(r->segs[j].text);
        free(r->segs);
        free(r->method);
        free(r->pattern);
    }
    free(srv->routes);
    for (int l = 0; l < HTTP_LIMIT_COUNT; l++) log_rate_forget(&srv->rates[l]);
    free(srv);
    if (cb) cb(arg);
}

static void conn_refuse(struct http_conn *conn, int status, const char *message);
static void conn_read_stop(struct http_conn *conn);

/* The connection's one timer: the idle timeout between requests (and while
 * an answer is written), the header timeout from a request's first byte,
 * the body timeout from its last header, or the lingering close. */
static void on_timer(uv_timer_t *t)
{
    struct http_conn *conn = t->data;
    if (conn->lingering) {
        conn_close(conn);
        return;
    }
    if (!conn->cur || conn->writing) {
        limit_hit(conn->srv, HTTP_LIMIT_IDLE_TIMEOUT);
        log_debug("http", "listener=%s idle connection closed", conn->srv->limits.name);
        conn_close(conn);
        return;
    }
    bool body = conn->cur->headers_done;
    limit_hit(conn->srv, body ? HTTP_LIMIT_BODY_TIMEOUT : HTTP_LIMIT_HEADER_TIMEOUT);
    conn_read_stop(conn);
    request_free(conn->cur);
    conn->cur = NULL;
    conn_refuse(conn, 408, body ? "request body timeout" : "request header timeout");
}

static void conn_arm_timer(struct http_conn *conn, uint64_t ms)
{
    uv_timer_start(&conn->timer, on_timer, ms, 0);
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    (void)suggested;
    struct http_conn *conn = h->data;
    /* Reading is stopped while unparsed bytes wait in rbuf, so reuse is safe. */
    if (!conn->rbuf) conn->rbuf = xmalloc(HTTP_READ_BUF_SIZE);
    *buf = uv_buf_init(conn->rbuf, HTTP_READ_BUF_SIZE);
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    struct http_conn *conn = s->data;
    if (nread == 0 || conn->closing) return;
    if (nread < 0) { /* EOF or reset: a partial request is dropped */
        conn_close(conn);
        return;
    }
    if (conn->lingering) return; /* dropped unread, see HTTP_LINGER_MS */
    /* The clock is not restarted by a read: the headers must arrive whole
     * within header_timeout of the request's first byte, the body within
     * body_timeout of the last header, however slowly they trickle in. */
    conn_feed(conn, buf->base, (size_t)nread);
}

static void conn_read_start(struct http_conn *conn)
{
    if (conn->closing || conn->reading) return;
    if (uv_read_start((uv_stream_t *)&conn->tcp, on_alloc, on_read) < 0) {
        conn_close(conn);
        return;
    }
    conn->reading = true;
    /* A request already begun (its first bytes followed the last answer)
     * keeps its header timer. */
    if (!conn->cur) conn_arm_timer(conn, conn->srv->limits.idle_timeout_ms);
}

static void conn_read_stop(struct http_conn *conn)
{
    if (conn->reading) uv_read_stop((uv_stream_t *)&conn->tcp);
    conn->reading = false;
    uv_timer_stop(&conn->timer);
}

static void on_conn_handle_closed(uv_handle_t *h)
{
    struct http_conn *conn = h->data;
    if (--conn->handles > 0) return;
    struct http_server *srv = conn->srv;
    free(conn->rbuf);
    free(conn);
    srv->live--;
    server_maybe_finish(srv);
}

static void conn_close(struct http_conn *conn)
{
    if (conn->closing) return;
    conn->closing = true;
    struct http_server *srv = conn->srv;
    if (conn->prev) conn->prev->next = conn->next;
    else srv->conns = conn->next;
    if (conn->next) conn->next->prev = conn->prev;
    srv->nconns--;
    if (conn->pending) { /* the handler still holds it: detach, respond frees */
        conn->pending->conn = NULL;
        conn->pending = NULL;
    }
    request_free(conn->cur);
    conn->cur = NULL;
    conn->handles = 2;
    uv_close((uv_handle_t *)&conn->tcp, on_conn_handle_closed);
    uv_close((uv_handle_t *)&conn->timer, on_conn_handle_closed);
}

static void on_shutdown(uv_shutdown_t *sr, int status)
{
    struct http_conn *conn = sr->data;
    if (status < 0 && !conn->closing) conn_close(conn);
}

/* The answer that ends the connection is written: send FIN, then drop what
 * the client still sends until it closes or HTTP_LINGER_MS passes. */
static void conn_linger(struct http_conn *conn)
{
    conn->lingering = true;
    conn->shutdown.data = conn;
    if (uv_shutdown(&conn->shutdown, (uv_stream_t *)&conn->tcp, on_shutdown) < 0) {
        conn_close(conn);
        return;
    }
    conn_read_start(conn);
    uint64_t ms = conn->srv->limits.idle_timeout_ms;
    conn_arm_timer(conn, ms < HTTP_LINGER_MS ? ms : HTTP_LINGER_MS);
}

/* The previous answer is written: parse what followed it, then read more. */
static void conn_resume(struct http_conn *conn)
{
    if (conn->paused) {
        llhttp_resume(&conn->parser);
        conn->paused = false;
    }
    if (conn->unparsed_len) {
        const char *data = conn->unparsed;
        size_t len = conn->unparsed_len;
        conn->unparsed = NULL;
        conn->unparsed_len = 0;
        conn_feed(conn, data, len);
    }
    if (!conn->closing && !conn->pending && !conn->writing && !conn->lingering) conn_read_start(conn);
}

static void on_write(uv_write_t *wr, int status)
{
    struct http_write *w = (struct http_write *)wr;
    struct http_conn *conn = wr->handle->data;
    int then = w->then;
    free(w->data);
    free(w);
    /* The connection's memory lives until its close callbacks, which libuv
     * runs after every write callback (ECANCELED included). */
    if (conn->closing || then == WRITE_INTERIM) return;
    conn->writing = false;
    if (status < 0) {
        conn_close(conn);
        return;
    }
    if (then == WRITE_CLOSE) conn_linger(conn);
    else conn_resume(conn);
}

/* Takes data (malloc'd). */
static void conn_write(struct http_conn *conn, char *data, size_t len, int then)
{
    struct http_write *w = xmalloc(sizeof(*w));
    w->data = data;
    w->then = then;
    uv_buf_t b = uv_buf_init(data, (unsigned)len);
    if (uv_write(&w->req, (uv_stream_t *)&conn->tcp, &b, 1, on_write) < 0) {
        free(data);
        free(w);
        /* An interim answer is written from inside the parser, which must not
         * lose its connection under it; the final write will fail too. */
        if (then != WRITE_INTERIM) conn_close(conn);
        return;
    }
    if (then == WRITE_INTERIM) return;
    conn->writing = true;
    /* A client that does not read its answer is idle too. */
    conn_arm_timer(conn, conn->srv->limits.idle_timeout_ms);
}

static char *error_body(const char *message, size_t *len)
{
    json_t *o = json_pack("{s:s}", "error", message);
    char *s = o ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    if (!s) s = xstrdup("{\"error\":\"internal error\"}");
    *len = strlen(s);
    return s;
}

/* true when the header block extra ("Name: value\r\n"...) has name. */
static bool has_header(const char *extra, const char *name)
{
    size_t n = strlen(name);
    for (const char *l = extra; l && *l; l = strstr(l, "\r\n") ? strstr(l, "\r\n") + 2 : NULL)
        if (strncasecmp(l, name, n) == 0 && l[n] == ':') return true;
    return false;
}

static void build_response(struct strbuf *sb, int status, const char *content_type, const char *extra,
                           const void *body, size_t len, bool keep_alive, bool http10, bool head)
{
    /* RFC 9110: these never carry a body, nor a Content-Length. */
    if (status < 200 || status == 204 || status == 304) {
        len = 0;
        content_type = NULL;
    }
    strbuf_addf(sb, "HTTP/1.1 %d %s\r\n", status, status_text(status));
    if (content_type) strbuf_addf(sb, "Content-Type: %s\r\n", content_type);
    if (status >= 200 && status != 204 && status != 304) strbuf_addf(sb, "Content-Length: %zu\r\n", len);
    if (extra) strbuf_adds(sb, extra);
    /* Answers may carry a person's data: never cached, never sniffed. */
    if (!has_header(extra, "Cache-Control")) strbuf_adds(sb, "Cache-Control: no-store\r\n");
    if (!has_header(extra, "X-Content-Type-Options")) strbuf_adds(sb, "X-Content-Type-Options: nosniff\r\n");
    if (!keep_alive) strbuf_adds(sb, "Connection: close\r\n");
    else if (http10) strbuf_adds(sb, "Connection: keep-alive\r\n");
    strbuf_adds(sb, "\r\n");
    if (!head && len) strbuf_add(sb, body, len);
}

/* A request the parser refused (400, 413, 431): answer, then close. */
static void conn_refuse(struct http_conn *conn, int status, const char *message)
{
    size_t blen, len;
    char *body = error_body(message, &blen);
    struct strbuf sb;
    strbuf_init(&sb);
    build_response(&sb, status, "application/json", NULL, body, blen, false, false, false);
    free(body);
    char *data = strbuf_detach(&sb, &len);
    conn_write(conn, data, len, WRITE_CLOSE);
}

/* ---- routing ------------------------------------------------------------ */

static bool route_matches(const struct route *r, const char *path, size_t pathlen)
{
    const char *p = path + 1, *end = path + pathlen;
    for (size_t i = 0; i < r->nsegs; i++) {
        const char *slash = memchr(p, '/', (size_t)(end - p));
        const char *se = slash ? slash : end;
        size_t sl = (size_t)(se - p);
        if (r->segs[i].param) {
            if (sl == 0) return false;
        } else if (sl != r->segs[i].len || memcmp(p, r->segs[i].text, sl) != 0) {
            return false;
        }
        if (i + 1 < r->nsegs) {
            if (!slash) return false;
            p = slash + 1;
        } else if (slash) {
            return false;
        }
    }
    return true;
}

/* > 0 when a is more specific than b: a literal where b has a parameter,
 * leftmost difference first. */
static int route_cmp(const struct route *a, const struct route *b)
{
    for (size_t i = 0; i < a->nsegs && i < b->nsegs; i++)
        if (a->segs[i].param != b->segs[i].param) return a->segs[i].param ? -1 : 1;
    return 0;
}

static bool same_shape(const struct route *a, const struct route *b)
{
    if (a->nsegs != b->nsegs) return false;
    for (size_t i = 0; i < a->nsegs; i++) {
        if (a->segs[i].param != b->segs[i].param) return false;
        if (!a->segs[i].param && strcmp(a->segs[i].text, b->segs[i].text) != 0) return false;
    }
    return true;
}


/* Fills req->params from the path; -1 when one is not valid encoding. */
static int extract_params(struct http_request *req, const struct route *r)
{
    size_t nparams = 0, names_len = 0;
    for (size_t i = 0; i < r->nsegs; i++)
        if (r->segs[i].param) {
            nparams++;
            names_len += r->segs[i].len + 1;
        }
    if (nparams == 0) return 0;
    req->params = xcalloc(nparams, sizeof(*req->params));
    req->param_names = xmalloc(names_len);
    char *names = req->param_names;
    const char *p = req->path + 1, *end = req->path + strlen(req->path);
    for (size_t i = 0; i < r->nsegs; i++) {
        const char *slash = memchr(p, '/', (size_t)(end - p));
        const char *se = slash ? slash : end;
        if (r->segs[i].param) {
            char *v = herald_pct_decode(p, (size_t)(se - p));
            if (!v) return -1;
            memcpy(names, r->segs[i].text, r->segs[i].len + 1);
            req->params[req->nparams].name = names;
            req->params[req->nparams].value = v;
            req->nparams++;
            names += r->segs[i].len + 1;
        }
        p = slash ? slash + 1 : end;
    }
    return 0;
}

/* A complete request is out of the parser: route it to its handler. */
static void conn_dispatch(struct http_conn *conn)
{
    struct http_server *srv = conn->srv;
    struct http_request *req = conn->pending;
    const char *url = req->url.buf ? req->url.buf : "";
    if (url[0] != '/') {
        http_respond_error(req, 400, "the request target must be a path");
        return;
    }
    size_t pathlen = strcspn(url, "?#");
    req->path = xstrndup(url, pathlen);
    if (url[pathlen] == '?') {
        size_t qlen = strcspn(url + pathlen + 1, "#");
        req->query = xstrndup(url + pathlen + 1, qlen);
    }

    const struct route *best = NULL;
    bool path_known = false;
    for (size_t i = 0; i < srv->nroutes; i++) {
        const struct route *r = &srv->routes[i];
        if (!route_matches(r, req->path, pathlen)) continue;
        path_known = true;
        if (strcmp(r->method, req->method) != 0) continue;
        if (!best || route_cmp(r, best) > 0) best = r;
    }
    if (!best) {
        if (!path_known) {
            http_respond_error(req, 404, "not found");
            return;
        }
        struct strbuf allow;
        strbuf_init(&allow);
        for (size_t i = 0; i < srv->nroutes; i++) {
            const struct route *r = &srv->routes[i];
            if (!route_matches(r, req->path, pathlen)) continue;
            bool seen = false;
            for (size_t j = 0; j < i && !seen; j++)
                seen = strcmp(srv->routes[j].method, r->method) == 0 &&
                       route_matches(&srv->routes[j], req->path, pathlen);
            if (seen) continue;
            if (allow.len) strbuf_adds(&allow, ", ");
            strbuf_adds(&allow, r->method);
        }
        http_response_header(req, "Allow", allow.buf);
        strbuf_free(&allow);
        http_respond_error(req, 405, "method not allowed");
        return;
    }
    req->route = xstrdup(best->pattern);
    if (extract_params(req, best) < 0) {
        http_respond_error(req, 400, "invalid percent-encoding in the path");
        return;
    }
    best->fn(req, best->arg);
}

static void conn_feed(struct http_conn *conn, const char *data, size_t len)
{
    llhttp_errno_t e = llhttp_execute(&conn->parser, data, len);
    if (e == HPE_OK) return;
    if ((e == HPE_PAUSED || e == HPE_PAUSED_UPGRADE) && conn->pending) {
        /* on_message_complete handed over a request; keep what follows it. */
        const char *pos = llhttp_get_error_pos(&conn->parser);
        if (!pos || pos < data || pos > data + len) pos = data + len;
        conn->unparsed = pos;
        conn->unparsed_len = (size_t)(data + len - pos);
        conn->paused = true;
        if (e == HPE_PAUSED_UPGRADE) { /* no upgrades here: answer, then close */
            conn->pending->keep_alive = false;
            conn->unparsed_len = 0;
        }
        conn_read_stop(conn);
        conn_dispatch(conn);
        return;
    }
    int status = conn->error_status ? conn->error_status : 400;
    const char *msg = conn->error_status ? conn->error_msg : "malformed request";
    log_debug("http", "request refused status=%d error=%s", status, llhttp_errno_name(e));
    conn_read_stop(conn);
    request_free(conn->cur);
    conn->cur = NULL;
    conn_refuse(conn, status, msg);
}

/* ---- parser callbacks --------------------------------------------------- */

static int refuse(struct http_conn *conn, int status, const char *msg)
{
    conn->error_status = status;
    conn->error_msg = msg;
    return HPE_USER;
}

static int count_header_bytes(struct http_conn *conn, size_t n)
{
    conn->header_bytes += n;
    if (conn->header_bytes > conn->srv->limits.max_header_bytes) {
        limit_hit(conn->srv, HTTP_LIMIT_HEADER_SIZE);
        return refuse(conn, 431, "request header fields too large");
    }
    return 0;
}

static int on_message_begin(llhttp_t *p)
{
    struct http_conn *conn = p->data;
    request_free(conn->cur);
    conn->cur = request_new(conn);
    conn->header_bytes = 0;
    conn_arm_timer(conn, conn->srv->limits.header_timeout_ms);
    return 0;
}

static int on_url(llhttp_t *p, const char *at, size_t len)
{
    struct http_conn *conn = p->data;
    if (count_header_bytes(conn, len)) return HPE_USER;
    strbuf_add(&conn->cur->url, at, len);
    return 0;
}

static int on_header_field(llhttp_t *p, const char *at, size_t len)
{
    struct http_conn *conn = p->data;
    if (count_header_bytes(conn, len)) return HPE_USER;
    if (conn->cur->headers_done) return 0; /* a trailer: never a header */
    strbuf_add(&conn->cur->field, at, len);
    return 0;
}

static int on_header_value(llhttp_t *p, const char *at, size_t len)
{
    struct http_conn *conn = p->data;
    if (count_header_bytes(conn, len)) return HPE_USER;
    if (conn->cur->headers_done) return 0;
    strbuf_add(&conn->cur->value, at, len);
    return 0;
}

static int on_header_value_complete(llhttp_t *p)
{
    struct http_conn *conn = p->data;
    struct http_request *req = conn->cur;
    if (count_header_bytes(conn, HTTP_HEADER_OVERHEAD)) return HPE_USER;
    if (req->headers_done) return 0;
    req->headers = xrealloc(req->headers, (req->nheaders + 1) * sizeof(*req->headers));
    struct http_header *h = &req->headers[req->nheaders++];
    h->name = strbuf_detach(&req->field, NULL);
    h->value = strbuf_detach(&req->value, NULL);
    return 0;
}

/* The route a request will go to, from its headers; NULL when it gets
 * 404/405 anyway. */
static const struct route *route_for(const struct http_server *srv, const struct http_request *req)
{
    const char *url = req->url.buf ? req->url.buf : "";
    size_t pathlen = strcspn(url, "?#");
    const struct route *best = NULL;
    for (size_t i = 0; i < srv->nroutes; i++) {
        const struct route *r = &srv->routes[i];
        if (strcmp(r->method, req->method) != 0 || !route_matches(r, url, pathlen)) continue;
        if (!best || route_cmp(r, best) > 0) best = r;
    }
    return best;
}

static int on_headers_complete(llhttp_t *p)
{
    struct http_conn *conn = p->data;
    struct http_request *req = conn->cur;
    req->method = llhttp_method_name((llhttp_method_t)llhttp_get_method(p));
    req->head = llhttp_get_method(p) == HTTP_HEAD;
    req->http10 = llhttp_get_http_major(p) == 1 && llhttp_get_http_minor(p) == 0;
    req->headers_done = true;
    const struct route *route = route_for(conn->srv, req);
    /* The body limit of its route (the server's when the route sets none). */
    req->max_body = route && route->max_body ? route->max_body : conn->srv->limits.max_body_bytes;
    /* Refused before a byte of it is read (and before 100 Continue): a
     * caller the route refuses anyway first, then a body too large. */
    if (route && route->precheck) {
        const char *msg = "refused";
        int status = route->precheck(req, route->arg, &msg);
        if (status != 0) {
            refuse(conn, status >= 400 && status <= 499 ? status : 400, msg);
            return -1;
        }
    }
    if ((p->flags & F_CONTENT_LENGTH) && p->content_length > req->max_body) {
        limit_hit(conn->srv, HTTP_LIMIT_BODY_SIZE);
        refuse(conn, 413, "request body too large");
        return -1;
    }
    conn_arm_timer(conn, conn->srv->limits.body_timeout_ms);
    const char *expect = http_request_header(req, "expect");
    if (expect && strcasecmp(expect, "100-continue") == 0 && !req->http10) {
        static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
        conn_write(conn, xstrndup(cont, sizeof(cont) - 1), sizeof(cont) - 1, WRITE_INTERIM);
    }
    return 0;
}

static int on_body(llhttp_t *p, const char *at, size_t len)
{
    struct http_conn *conn = p->data;
    struct http_request *req = conn->cur;
    if (req->body.len + len > req->max_body) {
        limit_hit(conn->srv, HTTP_LIMIT_BODY_SIZE);
        return refuse(conn, 413, "request body too large");
    }
    strbuf_add(&req->body, at, len);
    return 0;
}

static int on_message_complete(llhttp_t *p)
{
    struct http_conn *conn = p->data;
    struct http_request *req = conn->cur;
    req->keep_alive = llhttp_should_keep_alive(p) && !llhttp_get_upgrade(p);
    conn->cur = NULL;
    conn->pending = req;
    /* One request at a time: the next one waits in rbuf until this is answered. */
    return HPE_PAUSED;
}

/* ---- responses ---------------------------------------------------------- */

void http_respond(struct http_request *req, int status, const char *content_type, const void *body,
                  size_t len)
{
    if (status < 200 || status > 599) status = 500; /* 1xx are not final answers */
    double ms = (double)(uv_hrtime() - req->started_ns) / 1e6;
    const char *route = req->route ? req->route : "-";
    /* Modules log their own failures once (complain/recovered); a 503 per
     * health probe during a Redis outage would only repeat them. A 500 is a
     * bug in a handler, worth a line each time. */
    if (status == 500) log_warn("http", "%s %s status=%d ms=%.1f", req->method, route, status, ms);
    else log_debug("http", "%s %s status=%d ms=%.1f", req->method, route, status, ms);

    struct http_conn *conn = req->conn;
    if (!conn) { /* the client or the server went away meanwhile */
        request_free(req);
        return;
    }
    conn->pending = NULL;
    bool keep = req->keep_alive && !conn->srv->closing;
    struct strbuf sb;
    strbuf_init(&sb);
    build_response(&sb, status, content_type, req->resp_headers.buf, body, len, keep, req->http10,
                   req->head);
    request_free(req);
    size_t n;
    char *data = strbuf_detach(&sb, &n);
    conn_write(conn, data, n, keep ? WRITE_KEEP : WRITE_CLOSE);
}

void http_respond_json(struct http_request *req, int status, json_t *obj)
{
    char *s = obj ? json_dumps(obj, JSON_COMPACT) : NULL;
    json_decref(obj);
    if (!s) {
        http_respond_error(req, 500, "internal error");
        return;
    }
    http_respond(req, status, "application/json", s, strlen(s));
    free(s);
}

void http_respond_error(struct http_request *req, int status, const char *message)
{
    size_t len;
    char *body = error_body(message, &len);
    http_respond(req, status, "application/json", body, len);
    free(body);
}

/* ---- the server ---------------------------------------------------------- */

static void on_refused_closed(uv_handle_t *h)
{
    struct http_server *srv = h->data;
    free(h);
    srv->live--;
    server_maybe_finish(srv);
}

/* Accepts the pending connection only to close it at once. */
static void refuse_connection(struct http_server *srv, uv_stream_t *listener)
{
    uv_tcp_t *t = xmalloc(sizeof(*t));
    uv_tcp_init(srv->loop, t);
    t->data = srv;
    srv->live++;
    (void)uv_accept(listener, (uv_stream_t *)t);
    uv_close((uv_handle_t *)t, on_refused_closed);
}

/* The peer's address with the port zeroed, so that one client's connections
 * compare equal. Zeroed entirely when it cannot be read. */
static void peer_of(uv_tcp_t *tcp, struct sockaddr_storage *ss)
{
    memset(ss, 0, sizeof(*ss));
    int len = sizeof(*ss);
    if (uv_tcp_getpeername(tcp, (struct sockaddr *)ss, &len) != 0) {
        memset(ss, 0, sizeof(*ss));
        return;
    }
    if (ss->ss_family == AF_INET) ((struct sockaddr_in *)ss)->sin_port = 0;
    else if (ss->ss_family == AF_INET6) ((struct sockaddr_in6 *)ss)->sin6_port = 0;
}

static bool same_peer(const struct sockaddr_storage *a, const struct sockaddr_storage *b)
{
    if (a->ss_family != b->ss_family) return false;
    if (a->ss_family == AF_INET)
        return ((const struct sockaddr_in *)a)->sin_addr.s_addr == ((const struct sockaddr_in *)b)->sin_addr.s_addr;
    if (a->ss_family == AF_INET6)
        return memcmp(&((const struct sockaddr_in6 *)a)->sin6_addr, &((const struct sockaddr_in6 *)b)->sin6_addr,
                      sizeof(struct in6_addr)) == 0;
    return false;
}

/* Waiting for its next request, nothing in flight: what a full listener
 * closes to make room, the oldest first (nginx reuses keep-alive
 * connections the same way), so that idle holders cannot starve others. */
static bool conn_idle(const struct http_conn *c)
{
    return !c->cur && !c->pending && !c->writing && !c->lingering && !c->closing;
}

static void on_connection(uv_stream_t *listener, int status)
{
    struct http_server *srv = listener->data;
    if (status < 0) {
        log_complain(&srv->accept_failing, "http", "listener=%s accept failed: %s", srv->limits.name,
                     uv_strerror(status));
        return;
    }
    /* Full: the oldest idle connection makes room, once the newcomer is
     * known to be within its own share; with none idle, it is refused. */
    struct http_conn *oldest = NULL;
    if (srv->nconns >= srv->limits.max_connections) {
        for (struct http_conn *c = srv->conns; c; c = c->next)
            if (conn_idle(c)) oldest = c; /* the list is newest first */
        if (!oldest) {
            limit_hit(srv, HTTP_LIMIT_MAX_CONNECTIONS);
            refuse_connection(srv, listener);
            return;
        }
    }
    struct http_conn *conn = xcalloc(1, sizeof(*conn));
    conn->srv = srv;
    uv_tcp_init(srv->loop, &conn->tcp);
    uv_timer_init(srv->loop, &conn->timer);
    conn->tcp.data = conn;
    conn->timer.data = conn;
    conn->next = srv->conns;
    if (srv->conns) srv->conns->prev = conn;
    srv->conns = conn;
    srv->nconns++;
    srv->live++;
    int rc = uv_accept(listener, (uv_stream_t *)&conn->tcp);
    if (rc < 0) {
        log_complain(&srv->accept_failing, "http", "listener=%s accept failed: %s", srv->limits.name,
                     uv_strerror(rc));
        conn_close(conn);
        return;
    }
    log_recovered(&srv->accept_failing, "http", "listener=%s accepting connections again", srv->limits.name);
    peer_of(&conn->tcp, &conn->peer);
    unsigned same = 0;
    for (struct http_conn *c = srv->conns; c; c = c->next)
        if (c != conn && same_peer(&c->peer, &conn->peer)) same++;
    if (same >= srv->limits.max_connections_per_client) {
        limit_hit(srv, HTTP_LIMIT_PER_CLIENT);
        conn_close(conn);
        return;
    }
    if (oldest) {
        log_debug("http", "listener=%s full: the oldest idle connection closed to make room", srv->limits.name);
        conn_close(oldest);
    }
    uv_tcp_nodelay(&conn->tcp, 1);
    llhttp_init(&conn->parser, HTTP_REQUEST, &srv->settings);
    conn->parser.data = conn;
    conn_read_start(conn);
}

static void on_tick(uv_timer_t *t)
{
    (void)t;
    log_rate_tick();
}

static void limits_set(struct http_server *srv, const struct http_limits *limits)
{
    srv->limits = limits ? *limits : (struct http_limits){0};
    if (!srv->limits.max_header_bytes) srv->limits.max_header_bytes = HTTP_DEFAULT_MAX_HEADER_BYTES;
    if (!srv->limits.max_body_bytes) srv->limits.max_body_bytes = HTTP_DEFAULT_MAX_BODY_BYTES;
    if (!srv->limits.idle_timeout_ms) srv->limits.idle_timeout_ms = HTTP_DEFAULT_IDLE_TIMEOUT_MS;
    if (!srv->limits.max_connections) srv->limits.max_connections = HTTP_DEFAULT_MAX_CONNECTIONS;
    if (!srv->limits.header_timeout_ms) srv->limits.header_timeout_ms = HTTP_DEFAULT_HEADER_TIMEOUT_MS;
    if (!srv->limits.body_timeout_ms) srv->limits.body_timeout_ms = HTTP_DEFAULT_BODY_TIMEOUT_MS;
    if (!srv->limits.max_connections_per_client)
        srv->limits.max_connections_per_client = HTTP_DEFAULT_MAX_CONNECTIONS_PER_CLIENT;
    if (!srv->limits.name) srv->limits.name = "http";
}

void http_server_set_limits(struct http_server *srv, const struct http_limits *limits)
{
    const char *name = srv->limits.name;
    limits_set(srv, limits);
    srv->limits.name = name; /* the log lines and metrics keep naming it */
}

struct http_server *http_server_new(uv_loop_t *loop, const struct http_limits *limits)
{
    struct http_server *srv = xcalloc(1, sizeof(*srv));
    srv->loop = loop;
    limits_set(srv, limits);
    for (int l = 0; l < HTTP_LIMIT_COUNT; l++)
        snprintf(srv->rate_what[l], sizeof(srv->rate_what[l]), "listener=%s %s hits", srv->limits.name,
                 http_limit_name(l));
    llhttp_settings_init(&srv->settings);
    srv->settings.on_message_begin = on_message_begin;
    srv->settings.on_url = on_url;
    srv->settings.on_header_field = on_header_field;
    srv->settings.on_header_value = on_header_value;
    srv->settings.on_header_value_complete = on_header_value_complete;
    srv->settings.on_headers_complete = on_headers_complete;
    srv->settings.on_body = on_body;
    srv->settings.on_message_complete = on_message_complete;
    /* Created now so that http_server_close() always has a handle to close. */
    uv_tcp_init(loop, &srv->listener);
    srv->listener.data = srv;
    uv_timer_init(loop, &srv->tick);
    srv->tick.data = srv;
    uv_timer_start(&srv->tick, on_tick, 1000, 1000);
    uv_unref((uv_handle_t *)&srv->tick); /* never what keeps the loop running */
    srv->live = 2;
    return srv;
}

static bool method_valid(const char *m)
{
    if (!*m) return false;
    for (; *m; m++)
        if (!((*m >= 'A' && *m <= 'Z') || *m == '-' || *m == '_')) return false;
    return true;
}

int http_route_body_limit(struct http_server *srv, const char *method, const char *pattern, size_t max_body)
{
    for (size_t i = 0; i < srv->nroutes; i++)
        if (strcmp(srv->routes[i].method, method) == 0 && strcmp(srv->routes[i].pattern, pattern) == 0) {
            srv->routes[i].max_body = max_body;
            return 0;
        }
    return -HERALD_ENOENT;
}

int http_route_precheck(struct http_server *srv, const char *method, const char *pattern, http_precheck_fn fn)
{
    for (size_t i = 0; i < srv->nroutes; i++)
        if (strcmp(srv->routes[i].method, method) == 0 && strcmp(srv->routes[i].pattern, pattern) == 0) {
            srv->routes[i].precheck = fn;
            return 0;
        }
    return -HERALD_ENOENT;
}

void http_server_stats(const struct http_server *srv, struct http_stats *out)
{
    *out = srv->stats;
    out->connections = srv->nconns;
}

int http_route(struct http_server *srv, const char *method, const char *pattern, http_handler_fn fn,
               void *arg)
{
    if (!fn || !method_valid(method) || pattern[0] != '/' || strpbrk(pattern, "?#%"))
        return -HERALD_EINVAL;
    struct route r = {.method = xstrdup(method), .pattern = xstrdup(pattern), .fn = fn, .arg = arg};
    const char *p = pattern + 1;
    for (;;) {
        size_t n = strcspn(p, "/");
        r.segs = xrealloc(r.segs, (r.nsegs + 1) * sizeof(*r.segs));
        struct route_seg *s = &r.segs[r.nsegs++];
        s->param = n >= 2 && p[0] == '{' && p[n - 1] == '}';
        s->text = s->param ? xstrndup(p + 1, n - 2) : xstrndup(p, n);
        s->len = strlen(s->text);
        bool ok = true;
        if (s->param) {
            ok = s->len > 0;
            for (const char *c = s->text; *c && ok; c++)
                ok = (*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || (*c >= '0' && *c <= '9') ||
                     *c == '_';
            for (size_t i = 0; i + 1 < r.nsegs && ok; i++)
                ok = !(r.segs[i].param && strcmp(r.segs[i].text, s->text) == 0);
        } else {
            ok = !strpbrk(s->text, "{}");
        }
        if (!ok) goto invalid;
        if (!p[n]) break;
        p += n + 1;
    }
    for (size_t i = 0; i < srv->nroutes; i++)
        if (strcmp(srv->routes[i].method, method) == 0 && same_shape(&srv->routes[i], &r)) goto invalid;
    srv->routes = xrealloc(srv->routes, (srv->nroutes + 1) * sizeof(*srv->routes));
    srv->routes[srv->nroutes++] = r;
    return 0;
invalid:
    for (size_t i = 0; i < r.nsegs; i++) free(r.segs[i].text);
    free(r.segs);
    free(r.method);
    free(r.pattern);
    return -HERALD_EINVAL;
}

int http_listen(struct http_server *srv, const char *host, int port, char *err, size_t errlen)
{
    if (srv->listening || srv->closing) {
        herald_seterr(err, errlen, "listen: already listening");
        return -HERALD_EBUSY;
    }
    if (port < 0 || port > 65535) {
        herald_seterr(err, errlen, "listen %s:%d: port out of range", host, port);
        return -HERALD_EINVAL;
    }
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof(ss));
    if (uv_ip4_addr(host, port, (struct sockaddr_in *)&ss) != 0 &&
        uv_ip6_addr(host, port, (struct sockaddr_in6 *)&ss) != 0) {
        /* A name such as "localhost": resolved once, synchronously, at start. */
        uv_getaddrinfo_t gr;
        struct addrinfo hints;
        memset(&hints, 0, sizeof(hints));
        hints.ai_family = AF_UNSPEC;
        hints.ai_socktype = SOCK_STREAM;
        int rc = uv_getaddrinfo(srv->loop, &gr, NULL, host, NULL, &hints);
        if (rc != 0) {
            herald_seterr(err, errlen, "listen %s:%d: cannot resolve: %s", host, port, uv_strerror(rc));
            return -HERALD_EINVAL;
        }
        size_t alen = gr.addrinfo->ai_addrlen;
        memcpy(&ss, gr.addrinfo->ai_addr, alen < sizeof(ss) ? alen : sizeof(ss));
        uv_freeaddrinfo(gr.addrinfo);
        if (ss.ss_family == AF_INET) ((struct sockaddr_in *)&ss)->sin_port = htons((uint16_t)port);
        else if (ss.ss_family == AF_INET6) ((struct sockaddr_in6 *)&ss)->sin6_port = htons((uint16_t)port);
        else {
            herald_seterr(err, errlen, "listen %s:%d: not an IP address", host, port);
            return -HERALD_EINVAL;
        }
    }
    int rc = uv_tcp_bind(&srv->listener, (const struct sockaddr *)&ss, 0);
    if (rc == 0) rc = uv_listen((uv_stream_t *)&srv->listener, HTTP_BACKLOG, on_connection);
    if (rc != 0) {
        herald_seterr(err, errlen, "listen %s:%d: %s", host, port, uv_strerror(rc));
        return -HERALD_EIO;
    }
    srv->listening = true;
    return 0;
}

int http_bound_port(const struct http_server *srv)
{
    if (!srv->listening) return -1;
    struct sockaddr_storage ss;
    int len = sizeof(ss);
    if (uv_tcp_getsockname(&srv->listener, (struct sockaddr *)&ss, &len) != 0) return -1;
    if (ss.ss_family == AF_INET) return ntohs(((struct sockaddr_in *)&ss)->sin_port);
    if (ss.ss_family == AF_INET6) return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
    return -1;
}

/* The listener's or the tick timer's close. */
static void on_listener_closed(uv_handle_t *h)
{
    struct http_server *srv = h->data;
    srv->live--;
    server_maybe_finish(srv);
}

int http_server_close(struct http_server *srv, http_close_cb cb, void *arg)
{
    if (srv->closing) return -HERALD_EBUSY;
    srv->closing = true;
    srv->close_cb = cb;
    srv->close_arg = arg;
    uv_close((uv_handle_t *)&srv->listener, on_listener_closed);
    uv_close((uv_handle_t *)&srv->tick, on_listener_closed);
    while (srv->conns) conn_close(srv->conns);
    return 0;
}
