/*
 * retention.h - deleting by age what herald keeps for a limited time.
 *
 * Each minute, and at once when the data connection comes up and after
 * each reload, the entries older than [retention] audit of the audit
 * stream, the events stream and the suppression-change stream
 * (herald:audit, herald:events, herald:admin), and those older than
 * [retention] dead_letters of herald:dead, are deleted (XTRIM MINID: an
 * entry's id is the Redis time it was added, in ms). A zero age keeps a
 * stream's entries (its length cap, if any, still applies). Every daemon
 * does it: the trim is idempotent, so daemons sharing a Redis need no
 * lock and delete each entry once between them. The deleted entries are
 * counted (herald_retention_trimmed_total); nothing else is ever deleted.
 */
#ifndef HERALD_RETENTION_H
#define HERALD_RETENTION_H

#include <stdint.h>
#include <uv.h>

#include "config.h"
#include "store_cmd.h"

#define RETENTION_PERIOD_MS 60000

struct retention;

/* cmds (STORE_CMD_ONCE commands on the data connection) and cfg outlive
 * the trimmer until retention_free; the timer starts at once, a round
 * every period_ms (the daemon: RETENTION_PERIOD_MS), the first after one
 * period (retention_run for one now). */
struct retention *retention_new(uv_loop_t *loop, struct store_cmds *cmds, const struct config *cfg,
                                uint64_t period_ms);
/* A round now (the connection came up), unless one is under way. */
void retention_run(struct retention *r);
/* cfg is in force from now on (a reload), and a round runs at once. */
void retention_reload(struct retention *r, const struct config *cfg);
/* Stops and closes the timer (the loop then closes it). */
void retention_close(struct retention *r);
/* After the loop closed the timer and cmds was freed: no callback is left. */
void retention_free(struct retention *r);

/* The MINID of a trim: "<now_ms - age_ms>-0" (the oldest id kept) into
 * buf; pure. */
void retention_minid(char *buf, size_t len, int64_t now_ms, int64_t age_ms);

#endif
