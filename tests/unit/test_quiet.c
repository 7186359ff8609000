/*
 * test_quiet.c - quiet hours: the window grammar, and quiet_until in UTC,
 * Europe/Berlin across both 2026 DST changes (windows that span them, edges
 * in the spring gap and in the repeated autumn hour), America/New_York,
 * Asia/Kolkata and Australia/Lord_Howe; windows wrapping midnight; the
 * union of the ops and the person's windows (overlapping, touching, one
 * inside the other, chained across midnight, covering the whole day); the
 * edges (at start: inside, at end: outside). Berlin runs twice: from tzdata
 * and from its POSIX rule alone, so a slim or fat tzdata both pass. A
 * brute-force comparison against the wall clock covers fixed-offset zones,
 * and invariants (the answer is outside, and stable until then) cover the
 * DST days minute by minute.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "quiet.h"
#include "tzdb.h"
#include "tzif_image.h"

static int64_t T(const char *rfc3339)
{
    int64_t t;
    if (herald_time_parse(rfc3339, &t) != 0) {
        fprintf(stderr, "bad test time %s\n", rfc3339);
        abort();
    }
    return t;
}

static struct tzdb *db;
static struct tz *berlin_rule; /* Europe/Berlin from its footer alone */

static int setup(void **state)
{
    (void)state;
    db = tzdb_new(NULL);
    char err[128] = "";
    berlin_rule = tzif_posix_zone("CET-1CEST,M3.5.0,M10.5.0/3", 3600, err, sizeof(err));
    return berlin_rule ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    tz_free(berlin_rule);
    tzdb_free(db);
    return 0;
}

static const struct tz *zone(const char *name)
{
    const struct tz *tz = tzdb_get(db, name);
    if (!tz) {
        fprintf(stderr, "zone %s not found: install tzdata (scripts/deps.sh)\n", name);
        fail();
    }
    return tz;
}

/* Up to four windows, "HH:MM-HH:MM" each. */
struct wset {
    struct quiet_window w[4];
    size_t n;
};

static struct wset W(const char *a, const char *b, const char *c)
{
    struct wset s = {.n = 0};
    const char *in[] = {a, b, c};
    for (int i = 0; i < 3; i++) {
        if (!in[i]) continue;
        char err[128];
        if (quiet_parse(in[i], &s.w[s.n], err, sizeof(err)) != 0) {
            fprintf(stderr, "window %s: %s\n", in[i], err);
            abort();
        }
        s.n++;
    }
    return s;
}

#define W1(a) W(a, NULL, NULL)
#define W2(a, b) W(a, b, NULL)

/* want NULL: outside (0). */
static void check(const struct tz *tz, struct wset s, const char *now, const char *want)
{
    int64_t got = quiet_until(tz, s.w, s.n, T(now));
    int64_t exp = want ? T(want) : 0;
    if (got != exp) {
        char g[32] = "0";
        if (got == QUIET_FOREVER) snprintf(g, sizeof(g), "forever");
        else if (got) herald_time_format(got, g, sizeof(g));
        fprintf(stderr, "now %s, %zu window(s) from %02d:%02d-%02d:%02d: got %s, want %s\n", now, s.n,
                s.w[0].start_min / 60, s.w[0].start_min % 60, s.w[0].end_min / 60, s.w[0].end_min % 60, g,
                want ? want : "0 (outside)");
        fail();
    }
    /* the order of the windows never matters */
    if (s.n > 1) {
        struct wset r = s;
        for (size_t i = 0; i < s.n; i++) r.w[i] = s.w[s.n - 1 - i];
        assert_true(quiet_until(tz, r.w, r.n, T(now)) == exp);
    }
}

/* ---- grammar ------------------------------------------------------------ */

static void test_parse(void **state)
{
    (void)state;
    struct quiet_window w;
    char err[128];
    assert_int_equal(quiet_parse("21:00-08:00", &w, err, sizeof(err)), 0);
    assert_int_equal(w.start_min, 21 * 60);
    assert_int_equal(w.end_min, 8 * 60);
    assert_int_equal(quiet_parse("00:00-23:59", &w, err, sizeof(err)), 0);
    assert_int_equal(w.end_min, 1439);
    assert_int_equal(quiet_parse("07:30-07:31", &w, err, sizeof(err)), 0);
    static const char *const bad[] = {"", "21:00", "21:00-21:00", "24:00-08:00", "21:60-08:00", "9:00-10:00",
                                      "21:00-08:00 ", " 21:00-08:00", "21:00 - 08:00", "21.00-08.00",
                                      "21:00-08:00-09:00", "aa:bb-cc:dd", "-1:00-08:00"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        err[0] = '\0';
        if (quiet_parse(bad[i], &w, err, sizeof(err)) != -HERALD_EINVAL) {
            fprintf(stderr, "\"%s\" accepted\n", bad[i]);
            fail();
        }
        assert_int_equal(strncmp(err, "quiet_hours: ", 13), 0);
    }
    assert_int_equal(quiet_parse(NULL, &w, NULL, 0), -HERALD_EINVAL);
}

/* ---- one window, UTC ---------------------------------------------------- */

static void test_utc_single(void **state)
{
    (void)state;
    const struct tz *u = tz_utc();
    struct wset night = W1("21:00-08:00");
    check(u, night, "2026-12-01T22:00:00Z", "2026-12-02T08:00:00Z");
    check(u, night, "2026-12-01T03:00:00Z", "2026-12-01T08:00:00Z");
    check(u, night, "2026-12-01T21:00:00Z", "2026-12-02T08:00:00Z"); /* at start: inside */
    check(u, night, "2026-12-01T08:00:00Z", NULL);                   /* at end: outside */
    check(u, night, "2026-12-01T07:59:59Z", "2026-12-01T08:00:00Z");
    check(u, night, "2026-12-01T20:59:59Z", NULL);
    check(u, night, "2026-12-01T12:00:00Z", NULL);
    check(u, night, "2026-12-31T23:30:00Z", "2027-01-01T08:00:00Z"); /* across the year */
    check(u, night, "2028-02-28T23:00:00Z", "2028-02-29T08:00:00Z");
    check(NULL, night, "2026-12-01T22:00:00Z", "2026-12-02T08:00:00Z"); /* NULL zone = UTC */

    struct wset noon = W1("12:00-13:00");
    check(u, noon, "2026-12-01T12:00:00Z", "2026-12-01T13:00:00Z");
    check(u, noon, "2026-12-01T12:59:59Z", "2026-12-01T13:00:00Z");
    check(u, noon, "2026-12-01T13:00:00Z", NULL);
    check(u, noon, "2026-12-01T11:59:59Z", NULL);

    struct wset to_midnight = W1("22:00-00:00");
    check(u, to_midnight, "2026-12-01T23:59:59Z", "2026-12-02T00:00:00Z");
    check(u, to_midnight, "2026-12-02T00:00:00Z", NULL);
    struct wset from_midnight = W1("00:00-06:00");
    check(u, from_midnight, "2026-12-02T00:00:00Z", "2026-12-02T06:00:00Z");
    check(u, from_midnight, "2026-12-01T23:59:59Z", NULL);
}

static void test_degenerate(void **state)
{
    (void)state;
    assert_int_equal(quiet_until(tz_utc(), NULL, 0, T("2026-12-01T22:00:00Z")), 0);
    /* windows quiet_parse would refuse are skipped, not trusted */
    struct quiet_window junk[] = {{600, 600}, {-5, 100}, {1440, 100}, {100, 2000}};
    assert_int_equal(quiet_until(tz_utc(), junk, 4, T("2026-12-01T01:00:00Z")), 0);
    struct quiet_window mixed[] = {{600, 600}, {21 * 60, 8 * 60}};
    assert_int_equal(quiet_until(tz_utc(), mixed, 2, T("2026-12-01T22:00:00Z")), T("2026-12-02T08:00:00Z"));
    /* instants nobody sends at are "not quiet", without overflow */
    assert_int_equal(quiet_until(tz_utc(), mixed + 1, 1, INT64_MAX), 0);
    assert_int_equal(quiet_until(tz_utc(), mixed + 1, 1, INT64_MIN), 0);
}

/* ---- the union of windows ----------------------------------------------- */

static void test_union(void **state)
{
    (void)state;
    const struct tz *u = tz_utc();
    /* ops 21:00-08:00 + person 07:00-09:00: the person's window adds */
    struct wset ov = W2("21:00-08:00", "07:00-09:00");
    check(u, ov, "2026-12-01T22:00:00Z", "2026-12-02T09:00:00Z");
    check(u, ov, "2026-12-02T07:30:00Z", "2026-12-02T09:00:00Z");
    check(u, ov, "2026-12-02T08:30:00Z", "2026-12-02T09:00:00Z");
    check(u, ov, "2026-12-02T09:00:00Z", NULL);
    check(u, ov, "2026-12-02T20:59:59Z", NULL);
    /* a person window fully inside changes nothing */
    struct wset in = W2("21:00-08:00", "23:00-01:00");
    check(u, in, "2026-12-01T22:00:00Z", "2026-12-02T08:00:00Z");
    check(u, in, "2026-12-02T00:30:00Z", "2026-12-02T08:00:00Z");
    check(u, in, "2026-12-02T08:00:00Z", NULL);
    /* a person window that starts earlier */
    struct wset early = W2("21:00-08:00", "19:00-22:00");
    check(u, early, "2026-12-01T19:30:00Z", "2026-12-02T08:00:00Z");
    check(u, early, "2026-12-01T18:59:59Z", NULL);
    /* touching windows chain: the end of one is the start of the next */
    struct wset touch = W2("21:00-08:00", "08:00-09:00");
    check(u, touch, "2026-12-01T22:00:00Z", "2026-12-02T09:00:00Z");
    check(u, touch, "2026-12-02T08:00:00Z", "2026-12-02T09:00:00Z");
    struct wset touch2 = W2("20:00-21:00", "21:00-08:00");
    check(u, touch2, "2026-12-01T20:30:00Z", "2026-12-02T08:00:00Z");
    /* chained across midnight through two windows that meet at 00:00 */
    struct wset midnight = W2("22:00-00:00", "00:00-06:00");
    check(u, midnight, "2026-12-01T23:00:00Z", "2026-12-02T06:00:00Z");
    /* three windows in a chain */
    struct wset three = W("21:00-23:00", "22:30-01:00", "01:00-03:00");
    check(u, three, "2026-12-01T21:30:00Z", "2026-12-02T03:00:00Z");
    check(u, three, "2026-12-02T00:59:59Z", "2026-12-02T03:00:00Z");
    /* a gap between windows is a moment the person can be reached */
    struct wset gap = W2("21:00-23:00", "23:30-06:00");
    check(u, gap, "2026-12-01T22:00:00Z", "2026-12-01T23:00:00Z");
    check(u, gap, "2026-12-01T23:00:00Z", NULL);
    check(u, gap, "2026-12-01T23:29:59Z", NULL);
    check(u, gap, "2026-12-01T23:30:00Z", "2026-12-02T06:00:00Z");
    /* one minute free a day: the chain runs almost a day, then ends */
    struct wset nearly = W2("21:00-08:00", "08:00-20:59");
    check(u, nearly, "2026-12-01T22:00:00Z", "2026-12-02T20:59:00Z");
    check(u, nearly, "2026-12-02T20:59:30Z", NULL);
}

static void test_whole_day(void **state)
{
    (void)state;
    struct wset all = W2("21:00-08:00", "08:00-21:00");
    assert_true(quiet_until(tz_utc(), all.w, all.n, T("2026-12-01T12:00:00Z")) == QUIET_FOREVER);
    struct wset halves = W2("00:00-12:00", "12:00-00:00");
    assert_true(quiet_until(zone("Europe/Berlin"), halves.w, halves.n, T("2026-03-28T12:00:00Z")) ==
                QUIET_FOREVER);
    assert_true(quiet_until(berlin_rule, halves.w, halves.n, T("2026-10-24T12:00:00Z")) == QUIET_FOREVER);
}

/* ---- Europe/Berlin across the 2026 DST changes --------------------------- */

static void berlin_cases(const struct tz *b)
{
    struct wset night = W1("21:00-08:00");
    /* 29 March: clocks go 02:00 CET -> 03:00 CEST; the window ends at 08:00 CEST */
    check(b, night, "2026-03-28T22:00:00Z", "2026-03-29T06:00:00Z");
    check(b, night, "2026-03-28T20:00:00Z", "2026-03-29T06:00:00Z"); /* 21:00 CET: at start */
    check(b, night, "2026-03-28T19:59:59Z", NULL);
    check(b, night, "2026-03-29T01:00:00Z", "2026-03-29T06:00:00Z"); /* 03:00 CEST */
    check(b, night, "2026-03-29T05:59:59Z", "2026-03-29T06:00:00Z");
    check(b, night, "2026-03-29T06:00:00Z", NULL);
    check(b, night, "2026-03-29T18:59:59Z", NULL);
    check(b, night, "2026-03-29T19:00:00Z", "2026-03-30T06:00:00Z"); /* 21:00 CEST */
    /* 25 October: 03:00 CEST -> 02:00 CET; the window ends at 08:00 CET */
    check(b, night, "2026-10-24T22:00:00Z", "2026-10-25T07:00:00Z");
    check(b, night, "2026-10-24T19:00:00Z", "2026-10-25T07:00:00Z"); /* 21:00 CEST: at start */
    check(b, night, "2026-10-24T18:59:59Z", NULL);
    check(b, night, "2026-10-25T06:00:00Z", "2026-10-25T07:00:00Z"); /* 07:00 CET */
    check(b, night, "2026-10-25T06:59:59Z", "2026-10-25T07:00:00Z");
    check(b, night, "2026-10-25T07:00:00Z", NULL);
    check(b, night, "2026-10-25T20:00:00Z", "2026-10-26T07:00:00Z"); /* 21:00 CET */

    /* an end inside the spring gap: the first instant after it (03:00 CEST) */
    struct wset end_gap = W1("22:00-02:30");
    check(b, end_gap, "2026-03-28T22:00:00Z", "2026-03-29T01:00:00Z");
    check(b, end_gap, "2026-03-29T00:59:59Z", "2026-03-29T01:00:00Z");
    check(b, end_gap, "2026-03-29T01:00:00Z", NULL);
    /* a start inside the gap: the window opens at 03:00 CEST */
    struct wset start_gap = W1("02:30-06:00");
    check(b, start_gap, "2026-03-29T00:59:59Z", NULL); /* 01:59:59 CET */
    check(b, start_gap, "2026-03-29T01:00:00Z", "2026-03-29T04:00:00Z");
    check(b, start_gap, "2026-03-30T00:30:00Z", "2026-03-30T04:00:00Z"); /* next day: normal */
    /* a window wholly inside the gap does not happen that night */
    struct wset in_gap = W1("02:10-02:50");
    check(b, in_gap, "2026-03-29T01:00:00Z", NULL);
    check(b, in_gap, "2026-03-29T00:59:59Z", NULL);
    check(b, in_gap, "2026-03-30T00:10:00Z", "2026-03-30T00:50:00Z");

    /* an end in the repeated hour: its first occurrence (02:30 CEST) */
    struct wset end_rep = W1("01:00-02:30");
    check(b, end_rep, "2026-10-24T23:30:00Z", "2026-10-25T00:30:00Z"); /* 01:30 CEST */
    check(b, end_rep, "2026-10-25T00:29:59Z", "2026-10-25T00:30:00Z");
    check(b, end_rep, "2026-10-25T00:30:00Z", NULL);
    check(b, end_rep, "2026-10-25T01:00:00Z", NULL); /* 02:00 CET, second pass: not again */
    check(b, end_rep, "2026-10-25T01:30:00Z", NULL);
    /* a start in the repeated hour: from its first occurrence, through the second pass */
    struct wset start_rep = W1("02:30-04:00");
    check(b, start_rep, "2026-10-25T00:29:59Z", NULL);
    check(b, start_rep, "2026-10-25T00:30:00Z", "2026-10-25T03:00:00Z"); /* to 04:00 CET */
    check(b, start_rep, "2026-10-25T01:45:00Z", "2026-10-25T03:00:00Z");

    /* the union across the change: ops 21:00-08:00 + person 07:00-09:00 */
    struct wset ov = W2("21:00-08:00", "07:00-09:00");
    check(b, ov, "2026-03-28T22:00:00Z", "2026-03-29T07:00:00Z"); /* 09:00 CEST */
    check(b, ov, "2026-10-24T22:00:00Z", "2026-10-25T08:00:00Z"); /* 09:00 CET */
    struct wset inner = W2("21:00-08:00", "02:00-03:00"); /* person window in the gap/repeat */
    check(b, inner, "2026-03-28T22:00:00Z", "2026-03-29T06:00:00Z");
    check(b, inner, "2026-10-24T22:00:00Z", "2026-10-25T07:00:00Z");
}

static void test_berlin_tzdata(void **state)
{
    (void)state;
    berlin_cases(zone("Europe/Berlin"));
}

static void test_berlin_rule(void **state)
{
    (void)state;
    berlin_cases(berlin_rule);
}

/* ---- elsewhere ----------------------------------------------------------- */

static void test_new_york(void **state)
{
    (void)state;
    const struct tz *ny = zone("America/New_York");
    struct wset night = W1("21:00-08:00");
    check(ny, night, "2026-03-08T03:00:00Z", "2026-03-08T12:00:00Z"); /* 22:00 EST -> 08:00 EDT */
    check(ny, night, "2026-03-08T11:59:59Z", "2026-03-08T12:00:00Z");
    check(ny, night, "2026-03-08T12:00:00Z", NULL);
    check(ny, night, "2026-11-01T02:00:00Z", "2026-11-01T13:00:00Z"); /* 22:00 EDT -> 08:00 EST */
    check(ny, night, "2026-11-01T12:00:00Z", "2026-11-01T13:00:00Z"); /* 07:00 EST */
    check(ny, night, "2026-11-01T13:00:00Z", NULL);
    check(ny, night, "2026-07-01T00:59:59Z", NULL);                   /* 20:59:59 EDT */
    check(ny, night, "2026-07-01T01:00:00Z", "2026-07-01T12:00:00Z"); /* 21:00 EDT */
}

static void test_kolkata(void **state)
{
    (void)state;
    const struct tz *k = zone("Asia/Kolkata");
    check(k, W1("22:00-07:00"), "2026-06-01T17:00:00Z", "2026-06-02T01:30:00Z");
    check(k, W1("21:00-08:00"), "2026-06-01T15:30:00Z", "2026-06-02T02:30:00Z"); /* at start */
    check(k, W1("21:00-08:00"), "2026-06-01T15:29:59Z", NULL);
    check(k, W1("21:00-08:00"), "2026-06-02T02:30:00Z", NULL);                    /* at end */
    check(k, W2("21:00-08:00", "07:00-09:00"), "2026-06-01T20:00:00Z", "2026-06-02T03:30:00Z");
}

static void test_lord_howe(void **state)
{
    (void)state;
    const struct tz *lh = tzdb_get(db, "Australia/Lord_Howe");
    if (!lh) skip();
    struct wset night = W1("21:00-08:00");
    /* 5 April: 02:00 (+11) -> 01:30 (+10:30); ends at 08:00 +10:30 */
    check(lh, night, "2026-04-04T11:00:00Z", "2026-04-04T21:30:00Z");
    /* 4 October: 02:00 (+10:30) -> 02:30 (+11); ends at 08:00 +11 */
    check(lh, night, "2026-10-03T11:00:00Z", "2026-10-03T21:00:00Z");
    /* a window inside the half-hour gap does not happen */
    check(lh, W1("02:00-02:30"), "2026-10-03T15:30:00Z", NULL);
    /* the repeated half hour: 01:45 first at +11 */
    check(lh, W1("01:45-03:00"), "2026-04-04T14:45:00Z", "2026-04-04T16:30:00Z");
}

/* Clocks that jump over or back across midnight. */
static void test_midnight_jumps(void **state)
{
    (void)state;
    /* back at 00:30 Monday (24:30 DST) to 23:30 Sunday. 00:00-01:00 opens
     * at the first Monday 00:00 and holds through the repeated half hour of
     * Sunday, whose local day is the day before the window's. */
    char err[128];
    struct tz *back = tzif_posix_zone("AAA0BBB-1,M3.5.0/0,M10.5.0/24:30", 0, err, sizeof(err));
    assert_non_null(back);
    check(back, W1("00:00-01:00"), "2026-10-25T22:59:59Z", NULL);                   /* Sun 23:59:59 DST */
    check(back, W1("00:00-01:00"), "2026-10-25T23:00:00Z", "2026-10-26T01:00:00Z"); /* Mon 00:00 DST */
    check(back, W1("00:00-01:00"), "2026-10-25T23:45:00Z", "2026-10-26T01:00:00Z"); /* Sun 23:45 again */
    check(back, W1("00:00-01:00"), "2026-10-26T00:30:00Z", "2026-10-26T01:00:00Z");
    check(back, W1("00:00-01:00"), "2026-10-26T01:00:00Z", NULL);
    tz_free(back);

    /* Samoa skipped 30 December 2011 (-10 -> +14): a 21:00-08:00 night from
     * the 29th ends at 08:00 on the 31st, chaining through the missing day */
    const struct tz *apia = tzdb_get(db, "Pacific/Apia");
    if (!apia) return;
    check(apia, W1("21:00-08:00"), "2011-12-30T08:00:00Z", "2011-12-30T18:00:00Z");
    check(apia, W1("21:00-08:00"), "2011-12-30T09:59:59Z", "2011-12-30T18:00:00Z");
    check(apia, W1("21:00-08:00"), "2011-12-30T18:00:00Z", NULL);
}

/* ---- brute force and invariants ----------------------------------------- */

static bool wall_inside(const struct wset *s, int64_t wall)
{
    int m = (int)(((wall % 86400) + 86400) % 86400 / 60);
    for (size_t i = 0; i < s->n; i++) {
        int a = s->w[i].start_min, b = s->w[i].end_min;
        if (a < b ? (m >= a && m < b) : (m >= a || m < b)) return true;
    }
    return false;
}

/* Fixed-offset zones: quiet_until must equal stepping the wall clock. */
static void brute_force(const struct tz *tz, int32_t off)
{
    uint32_t seed = 99;
    for (int round = 0; round < 300; round++) {
        struct wset s = {.n = 1 + round % 3};
        for (size_t i = 0; i < s.n; i++) {
            do {
                seed = seed * 1103515245u + 12345u;
                s.w[i].start_min = (int16_t)((seed >> 8) % 1440);
                seed = seed * 1103515245u + 12345u;
                s.w[i].end_min = (int16_t)((seed >> 8) % 1440);
            } while (s.w[i].start_min == s.w[i].end_min);
        }
        seed = seed * 1103515245u + 12345u;
        int64_t now = T("2026-12-01T00:00:00Z") + (int64_t)((seed >> 4) % (3 * 1440)) * 60;
        int64_t t = now, want = 0;
        while (wall_inside(&s, t + off) && t - now < 3 * 86400) t += 60;
        if (t - now >= 3 * 86400) want = QUIET_FOREVER;
        else if (t != now) want = t;
        int64_t got = quiet_until(tz, s.w, s.n, now);
        if (got != want) {
            fprintf(stderr, "round %d: got %lld want %lld\n", round, (long long)got, (long long)want);
            fail();
        }
        /* half a minute later: the same end, or still outside */
        assert_true(quiet_until(tz, s.w, s.n, now + 30) == want);
    }
}

static void test_brute_force_fixed(void **state)
{
    (void)state;
    brute_force(tz_utc(), 0);
    brute_force(zone("Asia/Kolkata"), 19800);
}

/* On DST days: the answer is outside all windows, and every instant
 * between now and it gives the same answer. */
static void invariants(const struct tz *tz, struct wset s, const char *from)
{
    int64_t start = T(from);
    for (int64_t now = start; now < start + 2 * 86400; now += 60) {
        int64_t u = quiet_until(tz, s.w, s.n, now);
        if (u == 0) continue;
        assert_true(u > now && u - now < 26 * 3600);
        assert_int_equal(quiet_until(tz, s.w, s.n, u), 0);
        assert_true(quiet_until(tz, s.w, s.n, u - 1) == u);
        assert_true(quiet_until(tz, s.w, s.n, now + (u - now) / 2) == u);
    }
}

static void test_dst_invariants(void **state)
{
    (void)state;
    const char *const sets[][2] = {{"21:00-08:00", NULL},       {"21:00-08:00", "07:00-09:00"},
                                   {"02:30-06:00", "22:00-02:15"}, {"01:00-02:30", "02:45-03:30"},
                                   {"23:00-02:00", "02:00-02:30"}};
    const char *const days[] = {"2026-03-28T00:00:00Z", "2026-10-24T00:00:00Z"};
    const char *const zones[] = {"Europe/Berlin", "America/New_York"};
    const char *const nydays[] = {"2026-03-07T12:00:00Z", "2026-10-31T12:00:00Z"};
    for (size_t z = 0; z < 2; z++)
        for (size_t d = 0; d < 2; d++)
            for (size_t i = 0; i < sizeof(sets) / sizeof(sets[0]); i++)
                invariants(zone(zones[z]), W2(sets[i][0], sets[i][1]), z ? nydays[d] : days[d]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse),
        cmocka_unit_test(test_utc_single),
        cmocka_unit_test(test_degenerate),
        cmocka_unit_test(test_union),
        cmocka_unit_test(test_whole_day),
        cmocka_unit_test(test_berlin_tzdata),
        cmocka_unit_test(test_berlin_rule),
        cmocka_unit_test(test_new_york),
        cmocka_unit_test(test_kolkata),
        cmocka_unit_test(test_lord_howe),
        cmocka_unit_test(test_midnight_jumps),
        cmocka_unit_test(test_brute_force_fixed),
        cmocka_unit_test(test_dst_invariants),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
