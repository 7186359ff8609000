/*
 * keylease.h - sealing leases: which process seals under which key now, so
 * that a key is retired only when nothing uses it, running processes
 * included.
 *
 * The key registry (keyreg.h) says which key ids ever sealed; heraldctl
 * retire-key counts the people sealed under an id. Neither sees a daemon
 * that still runs with that id first in its key file, and would seal the
 * next person it writes under a key about to leave every key file. So each
 * process that seals holds a lease on its sealing key (the first of
 * key_file) in <prefix>:keys:sealing ({<prefix>}:keys:sealing on a
 * cluster, beside the registry): one field per holder (a daemon's
 * "<consumer> <pid> <run>", or "heraldctl <command> <host> <pid>"), its
 * value "<key id> <unix s it lapses>".
 *
 * - A daemon takes its lease once the registry accepted its keys, before
 *   its queue starts, and again when a reload changes its first key;
 *   renews it every KEYLEASE_RENEW_S while it runs (and when Redis comes
 *   back); gives it back at a clean stop. A daemon that dies keeps it until
 *   it lapses, KEYLEASE_TTL_S after its last renewal.
 * - heraldctl import and rotate-key hold one while they write.
 * - lua/keys_lease.lua takes or renews a lease only if the id is not
 *   retired; lua/keys_retire.lua retires an id only if no live lease names
 *   it, each in one step: a lease and a retirement never cross. A lease
 *   refused (the id was retired while the daemon was cut off from Redis
 *   longer than a lease) stops the daemon, as a retired first key does at
 *   start.
 *
 * Never holds a key or an address: holders and key ids only.
 */
#ifndef HERALD_KEYLEASE_H
#define HERALD_KEYLEASE_H

#include <hiredis/hiredis.h>
#include <stdbool.h>
#include <time.h>
#include <uv.h>

#include "herald.h"
#include "store_cmd.h"

#define KEYLEASE_TTL_S 60
#define KEYLEASE_RENEW_S 10

/* The leases' key: "<prefix>:keys:sealing" (reset first). */
void keylease_key(struct strbuf *sb, const char *prefix);

/* ---- a daemon's lease (asynchronous, on a command layer) ------------------ */

struct keylease;

/* on_refused: the lease on id was refused, the id is retired; the caller
 * stops. */
typedef void (*keylease_refused_cb)(const char *id, void *arg);
/* on_taken: the lease asked by keylease_set() is held (called once per
 * keylease_set, not for renewals). */
typedef void (*keylease_taken_cb)(void *arg);

struct keylease *keylease_new(uv_loop_t *loop, struct store_cmds *sc, const char *prefix, const char *holder,
                              keylease_refused_cb on_refused, keylease_taken_cb on_taken, void *arg);
/* Holds the lease on id from now on (NULL: no key file, no lease; one
 * held is given back): taken now, on_taken once held, renewed every
 * KEYLEASE_RENEW_S. A Redis error is waited out (the layer retries). */
void keylease_set(struct keylease *kl, const char *id);
/* Redis came back: renew now (a lease may have lapsed meanwhile). */
void keylease_connected(struct keylease *kl);
/* A clean stop: the lease goes (HDEL) and renewals end; keylease_idle()
 * says when Redis answered (a stop waits briefly for it: otherwise the
 * lease lapses by itself). */
void keylease_release(struct keylease *kl);
bool keylease_idle(const struct keylease *kl);
/* Closes its timer; the object goes once it is closed. */
void keylease_free(struct keylease *kl);

/* ---- heraldctl (blocking) ----------------------------------------------- */

/* Takes or renews holder's lease on id for ttl_s. Returns 0, -HERALD_EINVAL
 * (id is retired: err says so) or -HERALD_EREDIS (err names what failed). */
int keylease_take_sync(redisContext *c, const char *prefix, const char *holder, const char *id, int ttl_s,
                       char *err, size_t errlen);
/* Gives holder's lease back (errors ignored: it lapses). */
void keylease_give_back_sync(redisContext *c, const char *prefix, const char *holder);

/* A heraldctl command's lease while it seals (import, rotate-key): taken
 * once, renewed by keylease_sync_tick between its batches (a write every
 * KEYLEASE_RENEW_S at most), given back at its end. */
struct keylease_sync {
    redisContext *c;
    const char *prefix;
    char holder[160];
    char id[64];
    time_t renewed;
    bool held;
};
/* Takes the lease of "heraldctl <command> <host> <pid>" on id. 0, or < 0
 * as keylease_take_sync with err. */
int keylease_sync_take(struct keylease_sync *ls, redisContext *c, const char *prefix, const char *command,
                       const char *id, char *err, size_t errlen);
/* Renews the lease when KEYLEASE_RENEW_S passed since the last renewal
 * (nothing when none is held). 0, or < 0 with err: stop sealing. */
int keylease_sync_tick(struct keylease_sync *ls, char *err, size_t errlen);
void keylease_sync_give_back(struct keylease_sync *ls);

enum keylease_retire {
    KEYLEASE_RETIRED_NOW,
    KEYLEASE_RETIRED_ALREADY, /* detail: the registry's value */
    KEYLEASE_UNKNOWN,         /* not in the registry */
    KEYLEASE_SEALING,         /* detail: the holder; *left: seconds until its lease lapses */
    KEYLEASE_ERROR            /* detail: what failed */
};
/* Retires id (the registry's value becomes value) unless a live lease
 * names it (lua/keys_retire.lua); value "": the same checks, nothing
 * written (KEYLEASE_RETIRED_NOW then says it would be). */
enum keylease_retire keylease_retire_sync(redisContext *c, const char *prefix, const char *id, const char *value,
                                          char *detail, size_t detaillen, long long *left);

#endif
