/*
 * http_limit.h - the names of the HTTP server's limits, one X-macro list
 * that feeds the server's counters (http.h), the metric's `limit` label
 * (metrics.c) and docs/operations.md. Pure: no libuv here, so metrics.c can
 * use it.
 */
#ifndef HERALD_HTTP_LIMIT_H
#define HERALD_HTTP_LIMIT_H

#include <stdint.h>

/* X(enum suffix, label, what a hit does) */
#define HTTP_LIMITS(X)                                                                               \
    X(MAX_CONNECTIONS, "max_connections", "a new connection closed at once: the listener is full")   \
    X(PER_CLIENT, "max_connections_per_client", "a new connection closed at once: its IP holds its share") \
    X(HEADER_TIMEOUT, "header_timeout", "408: the request line and headers did not arrive in time")  \
    X(BODY_TIMEOUT, "body_timeout", "408: the body did not arrive in time")                          \
    X(IDLE_TIMEOUT, "idle_timeout", "an idle keep-alive connection closed (routine, not logged)")     \
    X(HEADER_SIZE, "max_header_size", "431: request line and headers too large")                     \
    X(BODY_SIZE, "max_body_size", "413: body too large")

enum http_limit {
#define X(e, label, doc) HTTP_LIMIT_##e,
    HTTP_LIMITS(X)
#undef X
    HTTP_LIMIT_COUNT
};

/* The label of a limit ("max_connections"), or "?" out of range. */
static inline const char *http_limit_name(int l)
{
    static const char *const names[] = {
#define X(e, label, doc) label,
        HTTP_LIMITS(X)
#undef X
    };
    return l >= 0 && l < HTTP_LIMIT_COUNT ? names[l] : "?";
}

/* What one listener counted since it started (http_server_stats). */
struct http_stats {
    uint64_t limit_hits[HTTP_LIMIT_COUNT];
    unsigned connections; /* open now */
};

#endif
