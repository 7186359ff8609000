/*
 * retention.h - a campaign's per-person state lives only as long as it must.
 *
 * Once a campaign finished, its once-only records (the field
 * c:<campaign> of every person it reached) are kept until its expires_at
 * plus [retention] grace, or for [retention] campaign_records after its
 * run when it has no expires_at (lua/job_finished.lua scores it in
 * <prefix>:retention). Every [retention] sweep_every a daemon takes the
 * sweep lock and walks the person hashes (SCAN) removing the fields of the
 * campaigns due, saving its cursor as it goes, so another daemon (or this
 * one after a restart) resumes a sweep cut short. Then each campaign is
 * marked `records` "expired <at>": a later run of its id is refused
 * (dead-lettered), since it could no longer tell who was reached.
 *
 * Every command is sent STORE_CMD_ONCE on the given layer: an error, a
 * lost connection or a refused send ends this sweep, and the next tick
 * resumes it. Never logs an address (it sees none); counts go to the log
 * and to retention_stats().
 */
#ifndef HERALD_RETENTION_H
#define HERALD_RETENTION_H

#include <uv.h>

#include "config.h"
#include "store_cmd.h"

struct retention;

struct retention_stats {
    uint64_t sweeps;          /* sweeps completed */
    uint64_t campaigns;       /* campaigns whose records went */
    uint64_t people_scanned;  /* person hashes visited */
    uint64_t errors;          /* sweeps cut short by Redis */
};

/* owner: this daemon's lock value ("<host> <pid> <run>"), copied. cfg is
 * read at each tick (retention_reload replaces it). */
struct retention *retention_new(uv_loop_t *loop, struct store_cmds *sc, const struct config *cfg, const char *owner);
void retention_reload(struct retention *rt, const struct config *cfg);
/* Runs a sweep now if none is under way (tests, heraldctl's operators use
 * the tick; this is the tick's body). */
void retention_tick(struct retention *rt);
void retention_stats(const struct retention *rt, struct retention_stats *out);

/* A sweep's SCAN over every master of a cluster (one Redis: one scan).
 * The saved cursor is "<master>:<cursor>" on a cluster (format; parse
 * takes the master off cursor and returns it); next: whether the scan goes
 * on after cursor was answered (the next master's from 0 when cursor is
 * "0"); route: a's SCAN to master node. inactive.c's sweep uses them too. */
void retention_cursor_format(char *out, size_t len, size_t node, const char *cursor);
size_t retention_cursor_parse(char *cursor);
bool retention_cursor_next(struct store_cmds *sc, char *cursor, size_t *node);
void retention_scan_route(struct store_args *a, struct store_cmds *sc, size_t node);
/* Stops the timer; calls in flight end with the layer (their callbacks
 * or discards free nothing of rt). Frees rt once its handle is closed. */
void retention_free(struct retention *rt);

#endif
