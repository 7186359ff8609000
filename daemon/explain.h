/*
 * explain.h - heraldctl explain and simulate: the policy's answer for one
 * person, or for every recipient of a job, read from Redis without writing.
 *
 * Both decide with the daemon's code (policy_explain and policy_limits,
 * policy_input_init, store_person_from_fields, the suppression members of
 * store.c), so what they say is what a run would do at that instant. They
 * send read-only commands only (HGETALL, HMGET, HGET, LRANGE, XRANGE,
 * ZRANGEBYSCORE, SMISMEMBER, TYPE, the counts and scans): nothing is
 * reserved, recorded or counted. They print ids, counts and reasons, never
 * an address or a phone number ("email address: present, valid").
 *
 * Exit codes: 0 answered, 1 refused input (an unknown campaign, a job that
 * does not parse, a bad option value), 2 usage or Redis.
 */
#ifndef HERALD_EXPLAIN_H
#define HERALD_EXPLAIN_H

#include <hiredis/hiredis.h>

#include "config.h"
#include "job.h"

/* heraldctl explain CAMPAIGN RECIPIENT [--job FILE] [--at TIME] [--json];
 * args are the words after "explain". */
struct rcluster_sync;
/* cs: on a cluster ([redis] cluster), its map (rcluster.h; c the control
 * plane's master); NULL on one Redis. */
int explain_run(const struct config *cfg, redisContext *c, struct rcluster_sync *cs, int nargs, char **args);

/* heraldctl simulate JOB.json [--at TIME] [--json]. */
int explain_simulate(const struct config *cfg, redisContext *c, struct rcluster_sync *cs, int nargs, char **args);

/* A job file ("-": stdin; at most HERALD_JOB_MAX_BYTES), parsed with the
 * daemon's rules (job.c). 0 with *job (and, when text_out, the text and its
 * length, the caller's to free), or 1 (refused) / 2 (unreadable) after
 * saying why on stderr. */
int explain_read_job(const char *path, struct job *job, char **text_out, size_t *len_out);

#endif
