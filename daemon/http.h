/*
 * http.h - a small HTTP/1.1 server: one per listener (admin, public).
 *
 * It runs on the daemon's libuv loop and parses with llhttp. Routes are
 * "METHOD /literal/{param}/..." patterns; a handler gets a request and
 * answers it with http_respond() exactly once, at once or later (after a
 * Redis reply, say). Requests on one keep-alive connection are answered in
 * the order they came: the next one is not parsed until the previous answer
 * is written.
 *
 * Everything here runs on the loop thread only. The server answers by
 * itself, with a JSON body {"error": "..."}: 404 unknown path, 405 wrong
 * method (with Allow), 400 path parameter not valid percent-encoding; and,
 * closing the connection after the answer, 413 body too large (refused from
 * Content-Length before it is read), 431 request line and headers too large,
 * 400 malformed request, 408 a request that did not arrive within its
 * header or body timeout. "Expect: 100-continue" is answered by itself.
 * Every answer says "X-Content-Type-Options: nosniff" and, unless the
 * handler set its own, "Cache-Control: no-store" (answers may carry a
 * person's data). Chunked trailers are read and dropped: only the headers
 * before the body are headers. Each limit hit is counted (http_server_stats)
 * and logged rate-limited (log_rate_hit: a line when it starts, a count per
 * minute, and one when it stops), never once per hit.
 */
#ifndef HERALD_HTTP_H
#define HERALD_HTTP_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "http_limit.h"

#define HTTP_DEFAULT_MAX_HEADER_BYTES (16u * 1024u)
#define HTTP_DEFAULT_MAX_BODY_BYTES (64u * 1024u)
#define HTTP_DEFAULT_IDLE_TIMEOUT_MS 30000u
#define HTTP_DEFAULT_HEADER_TIMEOUT_MS 10000u
#define HTTP_DEFAULT_BODY_TIMEOUT_MS 30000u
#define HTTP_DEFAULT_MAX_CONNECTIONS 256u
#define HTTP_DEFAULT_MAX_CONNECTIONS_PER_CLIENT 32u

/* A zero field means its default (above). */
struct http_limits {
    size_t max_header_bytes;  /* request line and headers; larger: 431 */
    size_t max_body_bytes;    /* decoded body; larger ones get 413 unread */
    uint64_t idle_timeout_ms; /* a keep-alive connection waiting for its next
                               * request (or a client not reading its answer)
                               * is closed after this long */
    uint64_t header_timeout_ms; /* from a request's first byte to its last
                                 * header; then 408 and close */
    uint64_t body_timeout_ms;   /* from the last header to the body's last
                                 * byte; then 408 and close */
    unsigned max_connections; /* at the cap, an idle keep-alive connection
                               * is closed to make room; without one, the new
                               * connection is closed at once */
    unsigned max_connections_per_client; /* open connections of one peer IP;
                                          * above: closed at once */
    const char *name;         /* "admin", "public": log lines (static string) */
};

struct http_server;
struct http_request;

/* Called on the loop thread with a complete request (body included). The
 * request belongs to the server until http_respond(), which the handler, or
 * code it schedules, calls exactly once. It stays valid until then even if
 * the client went away or the server was closed meanwhile. */
typedef void (*http_handler_fn)(struct http_request *req, void *arg);

/* Fires once, when the listener and every connection are closed. */
typedef void (*http_close_cb)(void *arg);

/* limits may be NULL (all defaults); it is copied. Never returns NULL. */
struct http_server *http_server_new(uv_loop_t *loop, const struct http_limits *limits);

/* A reload: limits (copied; zero fields: defaults) apply from now on, to
 * the connections open too (each reads them at its next step: a timer it
 * arms, a header it reads, a connection accepted). */
void http_server_set_limits(struct http_server *srv, const struct http_limits *limits);

/* Adds a route. method is an upper-case HTTP method ("GET"); pattern starts
 * with '/' and may hold whole-segment parameters: "/v1/recipients/{id}".
 * Both are copied. When several patterns match a path, the one with a
 * literal segment where the other has a parameter wins (leftmost first).
 * Returns 0, or -HERALD_EINVAL for a malformed pattern or a route that
 * already exists. */
int http_route(struct http_server *srv, const char *method, const char *pattern, http_handler_fn fn,
               void *arg);

/* Sets the body limit of one route added before (0: back to the server's
 * max_body_bytes), for the rare endpoint whose callers send more, such as a
 * provider's batched events. Returns 0, or -HERALD_ENOENT when no route has
 * that method and pattern. */
int http_route_body_limit(struct http_server *srv, const char *method, const char *pattern, size_t max_body);

/* Called when a request's headers are in, before a byte of its body is
 * read (and before 100 Continue): returns 0 to go on, or a 4xx status with
 * *message set (a static string) to refuse; the server then answers
 * {"error": message} and closes the connection, the body unread. The
 * request is only for http_request_header() and friends: it must not be
 * answered or kept. For checks a handler would make anyway (a signature
 * header present), so that a refused caller costs no body buffer. */
typedef int (*http_precheck_fn)(const struct http_request *req, void *arg, const char **message);

/* Sets the precheck of one route added before (its arg is the route's).
 * Returns 0, or -HERALD_ENOENT when no route has that method and pattern. */
int http_route_precheck(struct http_server *srv, const char *method, const char *pattern, http_precheck_fn fn);

/* What the server counted since it was created (limit hits by limit, open
 * connections now). */
void http_server_stats(const struct http_server *srv, struct http_stats *out);

/* Binds host (an IP address or a name that resolves, e.g. "localhost") and
 * port (0 picks a free one) and starts accepting. Returns 0, or a negative
 * HERALD_E* code with the reason in err. Call at most once. */
int http_listen(struct http_server *srv, const char *host, int port, char *err, size_t errlen);

/* The port actually bound (useful with port 0), or -1 when not listening. */
int http_bound_port(const struct http_server *srv);

/* Stops accepting and closes every connection; requests still held by
 * handlers stay valid (http_respond then only frees them). cb (may be NULL)
 * fires once from the loop when every handle is closed; srv is freed just
 * before it. Returns 0, or -HERALD_EBUSY (and cb never fires) if the server
 * is already closing. */
int http_server_close(struct http_server *srv, http_close_cb cb, void *arg);

/* Request accessors: the strings belong to the request and stay valid
 * until http_respond(). */
const char *http_request_method(const struct http_request *req); /* "GET" */
/* The path as sent (still percent-encoded), without the query. */
const char *http_request_path(const struct http_request *req);
/* The request target as sent (path and query, still percent-encoded):
 * the one of these a precheck can read (the path, the query and the
 * parameters are split from it after the headers). */
const char *http_request_target(const struct http_request *req);
/* The raw query after '?', or "" when there is none. */
const char *http_request_query(const struct http_request *req);
/* The route pattern that matched ("/v1/recipients/{id}"), for metrics. */
const char *http_request_route(const struct http_request *req);
/* The first header of that name (case-insensitive), or NULL. */
const char *http_request_header(const struct http_request *req, const char *name);
/* The body (NUL-terminated for convenience, "" when empty); len may be NULL. */
const char *http_request_body(const struct http_request *req, size_t *len);
/* A path parameter, percent-decoded, or NULL when the route has no such
 * name. The server answered 400 already if it was not valid encoding or
 * held a NUL byte. */
const char *http_request_param(const struct http_request *req, const char *name);

/* Adds a response header (copied). Returns 0, or -HERALD_EINVAL for a
 * name that is not a token or a value holding CR, LF or NUL; the server
 * sets Content-Type, Content-Length and Connection itself. */
int http_response_header(struct http_request *req, const char *name, const char *value);

/* Answers and frees req (so: exactly once). status is 200..599 (anything
 * else answers 500). body (len bytes, may be NULL when len is 0) is copied;
 * content_type may be NULL. 204 and 304 go without a body, HEAD without
 * the body but with its Content-Length. */
void http_respond(struct http_request *req, int status, const char *content_type, const void *body,
                  size_t len);

/* Answers with obj serialised compactly as application/json; takes the
 * reference to obj (NULL answers 500). */
void http_respond_json(struct http_request *req, int status, json_t *obj);

/* Answers {"error": message} as application/json. */
void http_respond_error(struct http_request *req, int status, const char *message);

#endif
