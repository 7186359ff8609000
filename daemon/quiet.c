/*
 * quiet.c - quiet hours: the next instant a person is outside all windows.
 *
 * Owns: turning "HH:MM-HH:MM" windows in a person's zone into UTC
 * intervals, and uniting them (see quiet.h for the DST semantics).
 * Never: reads the clock, allocates, logs, or looks a zone up by name.
 * Invariant: the answer is 0 or the end of the one stretch of overlapping
 * or touching intervals that contains now, found from at most a few days of
 * intervals around now, so the cost per recipient is small and bounded.
 */
#include "quiet.h"
#include "profile.h" /* the one "HH:MM-HH:MM" grammar lives there */

/* Instants this far from the epoch are not real send times; treating them
 * as "not quiet" keeps the day arithmetic below far from overflow. */
#define QUIET_T_LIMIT (INT64_C(1) << 48)

/* A stretch longer than this cannot end: the windows cover the whole day.
 * One window spans under 25 hours, and a DST change adds at most one day's
 * irregularity, so any stretch that does end, ends well within it. */
#define QUIET_MAX_STRETCH (4 * INT64_C(86400))

int quiet_parse(const char *s, struct quiet_window *w, char *err, size_t errlen)
{
    int start, end;
    if (!s || profile_quiet_hours_parse(s, &start, &end) < 0)
        return herald_fail(err, errlen,
                           "quiet_hours: must look like \"21:00-08:00\" (HH:MM-HH:MM, start and end differ)");
    w->start_min = (int16_t)start;
    w->end_min = (int16_t)end;
    return 0;
}

static int64_t floor_div(int64_t a, int64_t b)
{
    return a / b - (a % b != 0 && (a < 0) != (b < 0));
}

static bool window_valid(const struct quiet_window *w)
{
    return w->start_min >= 0 && w->start_min < 1440 && w->end_min >= 0 && w->end_min < 1440 &&
           w->start_min != w->end_min;
}

/*
 * When the zone's offset is one constant `off` from 52 hours before an
 * instant to 27 hours after it, every interval that can contain the
 * instant has plain edges: local - off. (Such an interval opened at most
 * 25 hours before and ends at most 25 hours after; a clock before that
 * stretch read less than instant - 26h, below any edge that matters, since
 * offsets stay within 26 hours.) Nearly all instants are like this: only
 * the days around a transition take the careful path.
 */
#define PLAIN_BEFORE (52 * INT64_C(3600))
#define PLAIN_AFTER (27 * INT64_C(3600))

/* The UTC interval [*s, *e) of window w that opens on local day `day`;
 * plain: the offset is constant there (see above). */
static void occurrence(const struct tz *tz, bool plain, int32_t off, const struct quiet_window *w, int64_t day,
                       int64_t *s, int64_t *e)
{
    int64_t end_day = day + (w->start_min > w->end_min);
    int64_t ls = day * 86400 + w->start_min * 60, le = end_day * 86400 + w->end_min * 60;
    if (plain) {
        *s = ls - off;
        *e = le - off;
    } else {
        *s = tz_local_to_utc(tz, ls);
        *e = tz_local_to_utc(tz, le);
    }
}

/* Minute of the local day m is inside one of the windows, by the wall
 * clock alone. */
static bool wall_inside(const struct quiet_window *w, size_t n, int m)
{
    for (size_t i = 0; i < n; i++) {
        if (!window_valid(&w[i])) continue;
        int a = w[i].start_min, b = w[i].end_min;
        if (a < b ? m >= a && m < b : m >= a || m < b) return true;
    }
    return false;
}

/*
 * From `now`, repeatedly jump to the latest end among the intervals that
 * contain the current point; half-open intervals make touching ones chain
 * (at 08:00 the 08:00-09:00 window holds). The intervals that can contain
 * an instant open on its local day, the day after (a clock set back over
 * midnight) or the two days before (a window that wraps midnight, plus a
 * day of slack for a clock that jumps forward over midnight).
 */
int64_t quiet_until(const struct tz *tz, const struct quiet_window *w, size_t n, int64_t now)
{
    if (n == 0 || now < -QUIET_T_LIMIT || now > QUIET_T_LIMIT) return 0;
    int64_t cur = now;
    for (;;) {
        int64_t until;
        int32_t off = tz_offset_until(tz, cur - PLAIN_BEFORE, &until);
        bool plain = until > cur + PLAIN_AFTER;
        if (!plain) off = tz_offset(tz, cur);
        int64_t day = floor_div(cur + off, 86400), ext = cur;
        /* the common case: outside, far from any transition */
        if (plain && cur == now && !wall_inside(w, n, (int)((cur + off - day * 86400) / 60))) return 0;
        for (size_t i = 0; i < n; i++) {
            if (!window_valid(&w[i])) continue;
            for (int64_t d = day - 2; d <= day + 1; d++) {
                int64_t s, e;
                occurrence(tz, plain, off, &w[i], d, &s, &e);
                if (s <= cur && cur < e && e > ext) ext = e;
            }
        }
        if (ext == cur) break;
        cur = ext;
        if (cur - now > QUIET_MAX_STRETCH) return QUIET_FOREVER;
    }
    return cur == now ? 0 : cur;
}
