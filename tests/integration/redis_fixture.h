/*
 * redis_fixture.h - a redis-server for one integration test program, on a
 * free loopback port, with nothing saved to disk; stopped at the end.
 */
#ifndef HERALD_TEST_REDIS_FIXTURE_H
#define HERALD_TEST_REDIS_FIXTURE_H

#include <hiredis/hiredis.h>

/* Starts the server and connects to it: 0 with *out and *port set, or -1. */
int redis_fixture_start(redisContext **out, int *port);
/* Disconnects (c may be NULL) and stops the server. */
void redis_fixture_stop(redisContext *c);
/* Runs a command on c; the test fails, naming the command, unless Redis
 * answers with something other than an error reply. */
void redis_fixture_ok(redisContext *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
