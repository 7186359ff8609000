/*
 * quiet.h - quiet hours: when is a person next reachable?
 *
 * Owns: the "HH:MM-HH:MM" window grammar (the same one profile.c accepts for
 * a person's quiet_hours and config.c for [quiet_hours]) and the arithmetic
 * that turns windows in a person's time zone into a UTC instant.
 * Never: reads the clock (now is an argument), allocates, logs or looks up
 * zones (the caller passes a parsed struct tz, its default zone when the
 * person's tz is missing or unknown).
 * Invariant: quiet_until(now) is 0 or an instant > now at which no window
 * holds; it is cheap enough to run for every recipient.
 *
 * Semantics (all windows are in the person's local wall-clock time):
 *
 * 1. A window [start, end) holds from `start` up to, not including, `end`:
 *    now exactly at start is inside, exactly at end is outside. start > end
 *    wraps midnight (21:00-08:00 runs from 21:00 to 08:00 the next day);
 *    start == end is not a window (quiet_parse refuses it, quiet_until
 *    skips it, as it skips minutes outside 0..1439).
 *
 * 2. Each local day D gives each window one contiguous UTC interval, from
 *    the instant of `start` on D to the instant of `end` on D (or D+1 when
 *    it wraps). A wall time is turned into an instant by tz_local_to_utc:
 *    the first instant at which the wall clock reads that time or later. So
 *    on DST days:
 *      - an edge inside the spring-forward gap is the first instant after
 *        the gap (Berlin 2026-03-29: 02:30 -> 03:00 CEST = 01:00Z);
 *      - an edge in the repeated fall-back hour is its first occurrence
 *        (Berlin 2026-10-25: 02:30 -> 02:30 CEST = 00:30Z); the second pass
 *        of the clock through that hour does not open the window again;
 *      - 21:00-08:00 in Berlin ends at 08:00 CEST = 06:00Z on the night of
 *        2026-03-29 (7 hours long) and at 08:00 CET = 07:00Z on the night
 *        of 2026-10-25 (12 hours long): the window follows the wall clock.
 *    An interval can be empty (both edges in the same gap), then it is
 *    simply absent that day.
 *
 * 3. Windows are united: the ops window for the channel and the person's own
 *    window both apply, and the person's ADDS to the ops window. quiet_until
 *    returns the end of the whole stretch of overlapping or touching
 *    intervals that contains now, chained across midnight and across windows
 *    (ops 21:00-08:00 + person 07:00-09:00, at 23:00 -> 09:00 next day).
 *
 * 4. If the windows leave no gap at all (e.g. 21:00-08:00 + 08:00-21:00),
 *    the person is never reachable: QUIET_FOREVER (INT64_MAX, so it is past
 *    any expires_at). What to do then is the caller's decision.
 */
#ifndef HERALD_QUIET_H
#define HERALD_QUIET_H

#include "herald.h"
#include "tz.h"

#define QUIET_FOREVER INT64_MAX

struct quiet_window {
    int16_t start_min, end_min; /* minutes of the local day, 0..1439 */
};

/* Parses "HH:MM-HH:MM" (two digits each, 00..23 and 00..59, start != end)
 * into *w. Returns 0, or -HERALD_EINVAL with err set to
 * "quiet_hours: ..." (never quoting the input). */
int quiet_parse(const char *s, struct quiet_window *w, char *err, size_t errlen);

/* 0 when now is outside every one of the n windows; otherwise the UTC
 * instant when the person is next outside ALL of them (see above), or
 * QUIET_FOREVER. tz NULL means UTC; w may be NULL when n is 0. Pure, no
 * allocation; the windows are only read. */
int64_t quiet_until(const struct tz *tz, const struct quiet_window *w, size_t n, int64_t now);

#endif
