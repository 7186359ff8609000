/*
 * tzdb.h - time zones by IANA name, read from the zoneinfo directory.
 *
 * Owns: the only file system access for time zones: a name is checked,
 * its TZif file read (bounded) and parsed once, and the result, found or
 * not, cached for the life of the tzdb.
 * Never: logs (an unknown name is NULL; the caller decides, usually falling
 * back to [daemon] default_tz), touches a path built from an unchecked
 * name, reads a file larger than HERALD_TZDB_MAX_FILE, or grows without
 * bound.
 * Invariant: a zone tzdb_get returned stays valid and unchanged until
 * tzdb_free; the cache never evicts a zone it has handed out.
 *
 * Not thread-safe: one tzdb per thread (herald uses it on the loop thread).
 */
#ifndef HERALD_TZDB_H
#define HERALD_TZDB_H

#include "herald.h"
#include "tz.h"

#define HERALD_TZDB_DEFAULT_DIR "/usr/share/zoneinfo"
#define HERALD_TZDB_NAME_MAX 64
#define HERALD_TZDB_MAX_FILE (256 * 1024)
/* Zones kept (tzdata has about 600 names; each zone is a few KiB), and
 * names remembered as unknown (that cache is emptied when full: it only
 * saves a failed open, and profiles can hold any string). */
#define HERALD_TZDB_MAX_ZONES 1024
#define HERALD_TZDB_MAX_MISSES 1024

struct tzdb;

/* A zone database over dir (NULL: HERALD_TZDB_DEFAULT_DIR; copied). Nothing
 * is read until tzdb_get. Never NULL. */
struct tzdb *tzdb_new(const char *dir);
void tzdb_free(struct tzdb *db);

/* True when name has the shape of an IANA name: 1..64 of [A-Za-z0-9_+/-],
 * no leading or trailing '/', no empty component, no "..". Pure. */
bool tzdb_name_valid(const char *name);

/* The zone called name, or NULL when the name is invalid, no such file
 * exists, it is not a regular file, it is too large or it does not parse
 * (all cached as unknown), or when HERALD_TZDB_MAX_ZONES other zones are
 * already held (not cached: it may fit in a new tzdb after a reload). "UTC" and "Etc/UTC" are tz_utc() even without
 * tzdata installed. The zone belongs to db and lives until tzdb_free. */
const struct tz *tzdb_get(struct tzdb *db, const char *name);

#endif
