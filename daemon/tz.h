/*
 * tz.h - time zones from TZif images (RFC 8536), evaluated in memory.
 *
 * Owns: reading a TZif file image (versions 1 to 4; the 64-bit body of
 * version 2+ files is used when present), the POSIX TZ rule in its footer
 * (RFC 8536 section 3.3, with the extensions of section 3.3.1), and the two
 * conversions quiet hours need: UTC -> offset, local wall clock -> UTC.
 * Never: opens files, reads the clock, logs (tzdb.c does the file system).
 * Invariant: a struct tz that tz_parse returned answers every instant
 * (int64 seconds) without failing, allocating or reading past its tables;
 * anything tz_parse could not prove sane was refused with an error.
 *
 * Threads: a parsed struct tz is immutable and may be shared freely.
 */
#ifndef HERALD_TZ_H
#define HERALD_TZ_H

#include "herald.h"

/* Hard limits; a file beyond them is refused ("too many transitions", ...).
 * tzcode's own limits are 2000 transitions and 256 types; the biggest zone
 * in tzdata 2025 has about 240 transitions in a "fat" file. */
#define HERALD_TZ_MAX_TIMES 2000
#define HERALD_TZ_MAX_TYPES 256
#define HERALD_TZ_MAX_CHARS 256
#define HERALD_TZ_MAX_FOOTER 128

struct tz;

/* Parses a TZif image of len bytes. On success returns 0 and *out is a new
 * zone the caller frees with tz_free; data may be freed right away. On
 * failure returns -HERALD_EINVAL (malformed) or -HERALD_ETOOBIG (beyond the
 * limits above), writes "tzif: <what>" into err and leaves *out NULL.
 * Leap-second ("right/") zones are refused: their instants are not POSIX
 * time. */
int tz_parse(const unsigned char *data, size_t len, struct tz **out, char *err, size_t errlen);

/* Frees a zone from tz_parse. NULL and tz_utc() are accepted and ignored. */
void tz_free(struct tz *tz);

/* A static UTC zone: never NULL, never freed (tz_free ignores it). */
struct tz *tz_utc(void);

/* Seconds east of UTC in effect at the UTC instant utc (Berlin in summer:
 * 7200). Before the first transition the zone's first type applies (local
 * mean time for most zones); at and after the last transition the footer's
 * POSIX rule applies when the file has one, else the last type stays.
 * tz NULL means UTC. */
int32_t tz_offset(const struct tz *tz, int64_t utc);

/* Like tz_offset, and *until is the first instant after utc at which the
 * offset may change (INT64_MAX: never): the offset holds on [utc, *until).
 * Lets callers skip DST care when no transition is near. */
int32_t tz_offset_until(const struct tz *tz, int64_t utc, int64_t *until);

/*
 * The UTC instant of a local wall-clock time `local` (seconds since
 * 1970-01-01T00:00 on the zone's wall clock, as if it were UTC):
 * precisely, the FIRST instant at which the zone's wall clock reads `local`
 * or later. That one definition settles both DST cases:
 *   - a wall time that does not exist (the spring-forward gap, Berlin
 *     2026-03-29 02:30) gives the first instant after the gap
 *     (03:00 CEST = 01:00Z);
 *   - a wall time that occurs twice (the fall-back hour, Berlin 2026-10-25
 *     02:30) gives its first occurrence (02:30 CEST = 00:30Z).
 * It is non-decreasing in `local`. tz NULL means UTC.
 */
int64_t tz_local_to_utc(const struct tz *tz, int64_t local);

#endif
