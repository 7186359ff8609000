/*
 * inactive.h - [retention] inactive_people: a person with no consent on
 * any channel and no change or message for that long is erased, as
 * DELETE /v1/recipients/{id} erases (people_erase_if: tombstones
 * included), and the erasure is recorded in the admin stream (action
 * erase, reason retention).
 *
 * Every [retention] sweep_every a daemon takes the sweep's lock
 * (<prefix>:retention:people:lock, one daemon at a time) and walks the
 * person hashes with SCAN from the cursor it saved
 * (<prefix>:retention:people:cursor), so a sweep cut short (a crash, a
 * lost connection, a restart) is resumed where it stopped, by this daemon
 * or another. Each person is checked by lua/inactive_check.lua, which
 * answers their rev; the erasure is conditional on that rev, so a person
 * changed between the check and the erasure is kept. Off (nothing sent)
 * while inactive_people is empty.
 *
 * Commands go STORE_CMD_ONCE on the given layer; a failure ends the sweep
 * and the next tick resumes it. Logs ids and counts only.
 */
#ifndef HERALD_INACTIVE_H
#define HERALD_INACTIVE_H

#include <uv.h>

#include "config.h"
#include "people.h"
#include "store_cmd.h"

struct inactive;

/* owner: this daemon's lock value, copied. pp, sc and cfg outlive it (cfg
 * is replaced by inactive_reload). */
struct inactive *inactive_new(uv_loop_t *loop, struct store_cmds *sc, struct people *pp, const struct config *cfg,
                              const char *owner);
void inactive_reload(struct inactive *in, const struct config *cfg);
/* People erased since start (the log says each sweep's). */
uint64_t inactive_erased(const struct inactive *in);
/* Stops the timer; frees in once the calls in flight are in. */
void inactive_free(struct inactive *in);

#endif
