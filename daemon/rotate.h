/*
 * rotate.h - heraldctl rotate-key and the key census of heraldctl stats.
 *
 * Owns the rotation's state in Redis: <prefix>:rotate (hash: state
 * running|done, key (the id sealing now), cursor (a SCAN cursor of
 * <prefix>:r:{*}), started, updated, finished, and the counts rewritten,
 * current, clear_sealed, changed, undecryptable) and <prefix>:rotate:lock
 * (one rotation at a time; renewed at every step, it lapses 60 s after a
 * crash). A rotation that stopped (a crash, Ctrl-C, Redis gone) is resumed
 * by running it again: it goes on from the saved cursor while the key is
 * the same. Never prints an address, only ids and counts.
 *
 * On a cluster (cs) the state and lock stay on the control plane's master
 * (c); the SCAN goes to each master in turn, in the map's order, and the
 * cursor is "<master>:<cursor>" (retention_cursor_format); the hash also
 * holds masters (how many), master:<i> ("host:port", checked on resume: a
 * pass whose current master is at another address starts over) and people:<i> (people seen on it).
 * Each person is read and written on the master of its slot, following
 * MOVED and ASK (rcluster_sync_command).
 */
#ifndef HERALD_ROTATE_H
#define HERALD_ROTATE_H

#include <hiredis/hiredis.h>
#include <jansson.h>

#include "config.h"

struct rcluster_sync;
struct keylease_sync;

/* heraldctl rotate-key: every person sealed again under cfg->keys->v[0]
 * (people stored in clear are sealed too), while daemons run campaigns;
 * cs: a cluster's masters (NULL on one Redis); lease: the sealing lease
 * held on that key (keylease.h), renewed between pages (NULL: none).
 * Returns 0 when the pass is complete (with no undecryptable person), 1
 * when some people could not be read (their ids printed), 2 on a Redis
 * failure or another rotation holding the lock. */
int rotate_run(const struct config *cfg, redisContext *c, struct rcluster_sync *cs, struct keylease_sync *lease);
/* heraldctl migrate: every person sealed before "#" existed
 * (store_person.h) gets it, written beside the envelope as it is (no key
 * moves), compare-and-set as the rotation writes. Safe to run again (who
 * has it is skipped). *written counts them. Returns 0, or -1 on a Redis
 * failure (said on stderr). */
int rotate_index_fields(const struct config *cfg, redisContext *c, struct rcluster_sync *cs, long long *written);
/* heraldctl rotate-key --status: the state hash as JSON on stdout. */
int rotate_status(const struct config *cfg, redisContext *c);

/* The census of stats: per person key of one SCAN page (keys[0..n)),
 * which key seals its contact data, or that it is in clear. Adds to
 * by_key ({"<key id>": count}) and *clear. Returns 0, or -1 with err. */
int rotate_census(redisContext *c, const redisReply *const *keys, size_t n, json_t *by_key, long long *clear,
                  char *err, size_t errlen);

#endif
