/*
 * store_nodes.h - reading a cluster's per-node keys (docs/architecture.md
 * "On a cluster"): a campaign run's counters are spread over one hash per
 * node that wrote them, named in the run's nodes set; the readers (the
 * API's progress, the daemon's job_finished) sum them here.
 */
#ifndef HERALD_STORE_NODES_H
#define HERALD_STORE_NODES_H

#include "store_cmd.h"

struct rcluster_sync;

/* Field -> summed value of every node's counters of the run. */
struct store_node_counts {
    long long run; /* the campaign's latest run (0: no such campaign) */
    long long dones; /* its entries finished so far, read before the counters (lua/job_finished.lua) */
    size_t n;
    char **field;
    long long *value;
};

/* c: the sums (the callee's, freed after the callback), or NULL with err
 * and text when a read failed (STORE_CMD_ONCE, or a permanent error with
 * STORE_CMD_HOLD). */
typedef void (*store_node_counts_cb)(const struct store_node_counts *c, enum store_error err, const char *text,
                                     void *arg);

/* Reads the counters of campaign's latest run on every node (its `run`
 * field, the run's nodes set, each node's hash), with flags on every
 * command. Returns 0 (cb fires once), or -HERALD_EREDIS when a
 * STORE_CMD_ONCE command cannot go out now (cb never fires). */
int store_node_counts_read(struct store_cmds *sc, const char *prefix, const char *campaign, unsigned flags,
                           store_node_counts_cb cb, void *arg);

/* The same, and each earlier run's counters too, their fields named
 * "run:<n>:<field>" (STORE_NODE_RUN_FIELD; store_campaign_get_result_counts
 * gives them to that run's progress). */
int store_node_counts_read_runs(struct store_cmds *sc, const char *prefix, const char *campaign, unsigned flags,
                                store_node_counts_cb cb, void *arg);
#define STORE_NODE_RUN_FIELD "run:"

/* heraldctl's blocking form (every run's, as store_node_counts_read_runs): c the control plane's context, cs the
 * cluster's. 0 with *out (the caller frees it: store_node_counts_free),
 * or -HERALD_EREDIS with err. */
int store_node_counts_sync(redisContext *c, struct rcluster_sync *cs, const char *prefix, const char *campaign,
                           struct store_node_counts *out, char *err, size_t errlen);
void store_node_counts_free(struct store_node_counts *c);

#endif
