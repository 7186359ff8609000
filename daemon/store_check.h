/*
 * store_check.h - a blocking connection to herald's Redis as the config
 * says (TCP or unix socket, AUTH [user] password, SELECT), and the access
 * check of `herald --check-config --connect`.
 *
 * For heraldctl and the check, never for the daemon (which uses rconn).
 * Errors name the address (host:port or the socket path) and the user,
 * never the password.
 */
#ifndef HERALD_STORE_CHECK_H
#define HERALD_STORE_CHECK_H

#include <hiredis/hiredis.h>

#include "config.h"

/* Connects, authenticates and selects the database: the context (the
 * caller frees it with redisFree), or NULL with err ("cannot connect to
 * redis at 127.0.0.1:6379: Connection refused", "authentication failed for
 * user herald: WRONGPASS ..."). */
redisContext *store_check_connect(const struct config *cfg, char *err, size_t errlen);

/* Runs, as the configured user, one harmless form of every kind of command
 * herald sends (on keys under the prefix that do not exist, or read-only)
 * and appends a line "redis: ..." to problems for each one Redis refuses
 * (NOPERM: the ACL user lacks a command or the key pattern). Returns the
 * number of problems. Nothing is written that outlives the check. */
int store_check_access(redisContext *c, const struct config *cfg, struct strbuf *problems);

/* On a cluster ([redis] cluster): the map from the first seed that
 * answers (*cs, the caller's to rcluster_sync_free) and a context of its
 * own (the caller's to redisFree) to the master of the control plane's
 * slot; NULL with err. */
struct rcluster_sync;
redisContext *store_check_connect_cluster(const struct config *cfg, struct rcluster_sync **cs, char *err,
                                          size_t errlen);
/* store_check_access on every master, each with keys it serves (problems
 * name the master); also a problem: a master that cannot be reached. */
int store_check_access_cluster(struct rcluster_sync *cs, const struct config *cfg, struct strbuf *problems);

#endif
