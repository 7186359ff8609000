/*
 * stream_trim.h - deleting by age what herald keeps for a limited time.
 *
 * Each minute, and at once when the data connection comes up and after
 * each reload, the entries older than [retention] audit of the audit
 * stream, the events stream and the suppression-change stream
 * (herald:audit, herald:events, herald:admin), and those older than
 * [retention] dead_letters of herald:dead, are deleted (XTRIM MINID: an
 * entry's id is the Redis time it was added, in ms), except those a
 * consumer group of the stream has not read or not acknowledged yet (the
 * events not yet POSTed to [events] url). A zero age keeps a
 * stream's entries (its length cap, if any, still applies). Every daemon
 * does it: the trim is idempotent, so daemons sharing a Redis need no
 * lock and delete each entry once between them. The deleted entries are
 * counted (herald_retention_trimmed_total); nothing else is ever deleted.
 */
#ifndef HERALD_STREAM_TRIM_H
#define HERALD_STREAM_TRIM_H

#include <stdint.h>
#include <uv.h>

#include "config.h"
#include "store_cmd.h"

#define STREAM_TRIM_PERIOD_MS 60000

struct stream_trim;

/* cmds (STORE_CMD_ONCE commands on the data connection) and cfg outlive
 * the trimmer until stream_trim_free; the timer starts at once, a round
 * every period_ms (the daemon: STREAM_TRIM_PERIOD_MS), the first after one
 * period (stream_trim_run for one now). */
struct stream_trim *stream_trim_new(uv_loop_t *loop, struct store_cmds *cmds, const struct config *cfg,
                                uint64_t period_ms);
/* A round now (the connection came up), unless one is under way. */
void stream_trim_run(struct stream_trim *r);
/* cfg is in force from now on (a reload), and a round runs at once. */
void stream_trim_reload(struct stream_trim *r, const struct config *cfg);
/* Stops and closes the timer (the loop then closes it). */
void stream_trim_close(struct stream_trim *r);
/* After the loop closed the timer and cmds was freed: no callback is left. */
void stream_trim_free(struct stream_trim *r);

/* The MINID of a trim: "<now_ms - age_ms>-0" (the oldest id kept) into
 * buf; pure. */
void stream_trim_minid(char *buf, size_t len, int64_t now_ms, int64_t age_ms);

#endif
