/*
 * test_tz.c - TZif images and their POSIX footer: real zones from tzdata
 * (Europe/Berlin's 2026 transitions, America/New_York, Asia/Kolkata,
 * Australia/Lord_Howe's 30-minute DST), the footer rules on hand-written
 * strings (Mm.w.d, Jn, n, negative and over-24h times, DST all year, no
 * DST), a "slim" image whose transitions stop early, wall clock -> UTC in
 * the gap and the repeated hour, and refusal of truncated, corrupt and
 * absurd images (never a crash: run under ASan/UBSan). Also tzdb: names
 * are checked before any file is touched, unknown zones are NULL.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tz.h"
#include "tzdb.h"
#include "tzif_image.h"

/* RFC 3339 to UTC seconds; herald_time_parse stops at 1970, so earlier
 * years are shifted by 400 years (146097 days: the calendar repeats). */
static int64_t T(const char *rfc3339)
{
    int64_t t;
    char shifted[32];
    if (strlen(rfc3339) < sizeof(shifted) && strncmp(rfc3339, "1970", 4) < 0) {
        int y = (rfc3339[0] - '0') * 1000 + (rfc3339[1] - '0') * 100 + (rfc3339[2] - '0') * 10 + (rfc3339[3] - '0');
        snprintf(shifted, sizeof(shifted), "%04d%s", y + 400, rfc3339 + 4);
        if (herald_time_parse(shifted, &t) == 0) return t - INT64_C(146097) * 86400;
    }
    if (herald_time_parse(rfc3339, &t) != 0) {
        fprintf(stderr, "bad test time %s\n", rfc3339);
        abort();
    }
    return t;
}

#define assert_offset(tz, when, want)                                                             \
    do {                                                                                          \
        int32_t got_ = tz_offset((tz), T(when));                                                  \
        if (got_ != (want)) {                                                                     \
            fprintf(stderr, "%s: offset at %s is %d, want %d\n", #tz, (when), (int)got_, (int)(want)); \
            fail();                                                                               \
        }                                                                                         \
    } while (0)

/* Offset one second before `when` is `before`, at `when` it is `after`. */
static void assert_transition(const struct tz *tz, const char *when, int32_t before, int32_t after)
{
    int64_t t = T(when);
    if (tz_offset(tz, t - 1) != before || tz_offset(tz, t) != after) {
        fprintf(stderr, "transition at %s: got %d -> %d, want %d -> %d\n", when, (int)tz_offset(tz, t - 1),
                (int)tz_offset(tz, t), (int)before, (int)after);
        fail();
    }
}

static struct tzdb *db;

static const struct tz *zone(const char *name)
{
    const struct tz *tz = tzdb_get(db, name);
    if (!tz) {
        fprintf(stderr, "zone %s not found under %s: install tzdata (scripts/deps.sh)\n", name,
                HERALD_TZDB_DEFAULT_DIR);
        fail();
    }
    return tz;
}

static struct tz *posix(const char *s, int32_t std_off)
{
    char err[128] = "";
    struct tz *tz = tzif_posix_zone(s, std_off, err, sizeof(err));
    if (!tz) {
        fprintf(stderr, "footer \"%s\" refused: %s\n", s, err);
        fail();
    }
    return tz;
}

static int setup(void **state)
{
    (void)state;
    db = tzdb_new(NULL);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    tzdb_free(db);
    return 0;
}

/* ---- UTC ---------------------------------------------------------------- */

static void test_utc(void **state)
{
    (void)state;
    struct tz *u = tz_utc();
    assert_non_null(u);
    assert_ptr_equal(u, tz_utc());
    assert_int_equal(tz_offset(u, T("2026-03-29T01:00:00Z")), 0);
    assert_int_equal(tz_offset(NULL, 12345), 0);
    assert_int_equal(tz_local_to_utc(u, 1000), 1000);
    assert_int_equal(tz_local_to_utc(NULL, -1000), -1000);
    tz_free(u); /* ignored */
    tz_free(NULL);
    assert_int_equal(tz_offset(tz_utc(), 0), 0);
    /* tzdb answers UTC without a file, and the real file agrees */
    assert_ptr_equal(tzdb_get(db, "UTC"), tz_utc());
    assert_ptr_equal(tzdb_get(db, "Etc/UTC"), tz_utc());
    const struct tz *gmt = zone("Etc/GMT");
    assert_int_equal(tz_offset(gmt, T("2026-07-01T00:00:00Z")), 0);
    assert_int_equal(tz_offset(gmt, T("2199-07-01T00:00:00Z")), 0);
}

/* ---- real zones --------------------------------------------------------- */

static void test_berlin(void **state)
{
    (void)state;
    const struct tz *b = zone("Europe/Berlin");
    assert_transition(b, "2026-03-29T01:00:00Z", 3600, 7200);
    assert_transition(b, "2026-10-25T01:00:00Z", 7200, 3600);
    assert_offset(b, "2026-01-15T12:00:00Z", 3600);
    assert_offset(b, "2026-07-15T12:00:00Z", 7200);
    /* beyond any fat file's table (2037): the footer decides */
    assert_transition(b, "2050-03-27T01:00:00Z", 3600, 7200);
    assert_transition(b, "2050-10-30T01:00:00Z", 7200, 3600);
    assert_offset(b, "2199-07-01T00:00:00Z", 7200);
    /* history: local mean time (+0:53:28) before 1893, double summer time in 1945 */
    assert_offset(b, "1880-01-01T00:00:00Z", 3208);
    assert_offset(b, "1945-06-01T00:00:00Z", 10800);
    assert_offset(b, "1970-01-01T00:00:00Z", 3600);
}

static void test_new_york(void **state)
{
    (void)state;
    const struct tz *ny = zone("America/New_York");
    assert_transition(ny, "2026-03-08T07:00:00Z", -18000, -14400);
    assert_transition(ny, "2026-11-01T06:00:00Z", -14400, -18000);
    assert_transition(ny, "2040-03-11T07:00:00Z", -18000, -14400);
    assert_offset(ny, "2200-12-25T12:00:00Z", -18000);
}

static void test_kolkata(void **state)
{
    (void)state;
    const struct tz *k = zone("Asia/Kolkata");
    assert_offset(k, "2026-01-01T00:00:00Z", 19800);
    assert_offset(k, "2026-03-29T01:00:00Z", 19800);
    assert_offset(k, "2026-07-01T00:00:00Z", 19800);
    assert_offset(k, "2150-07-01T00:00:00Z", 19800);
    /* an alias resolves to the same rules */
    const struct tz *c = tzdb_get(db, "Asia/Calcutta");
    if (c) assert_int_equal(tz_offset(c, T("2026-07-01T00:00:00Z")), 19800);
}

static void test_lord_howe(void **state)
{
    (void)state;
    const struct tz *lh = tzdb_get(db, "Australia/Lord_Howe");
    if (!lh) skip();
    /* +11 in the southern summer, +10:30 in winter: a 30-minute DST */
    assert_transition(lh, "2026-04-04T15:00:00Z", 39600, 37800);
    assert_transition(lh, "2026-10-03T15:30:00Z", 37800, 39600);
    assert_offset(lh, "2026-01-01T00:00:00Z", 39600);
    assert_offset(lh, "2060-07-01T00:00:00Z", 37800);
}

/* ---- wall clock -> UTC -------------------------------------------------- */

/* Local wall time written as if it were UTC. */
static int64_t L(const char *wall)
{
    return T(wall);
}

static void check_local(const struct tz *tz, const char *wall, const char *want)
{
    int64_t got = tz_local_to_utc(tz, L(wall));
    if (got != T(want)) {
        char buf[32];
        herald_time_format(got, buf, sizeof(buf));
        fprintf(stderr, "local %s: got %s, want %s\n", wall, buf, want);
        fail();
    }
}

static void berlin_local(const struct tz *b)
{
    check_local(b, "2026-03-29T01:59:59Z", "2026-03-29T00:59:59Z");
    /* the gap 02:00-03:00 does not exist: the first instant after it */
    check_local(b, "2026-03-29T02:00:00Z", "2026-03-29T01:00:00Z");
    check_local(b, "2026-03-29T02:30:00Z", "2026-03-29T01:00:00Z");
    check_local(b, "2026-03-29T03:00:00Z", "2026-03-29T01:00:00Z");
    check_local(b, "2026-03-29T08:00:00Z", "2026-03-29T06:00:00Z");
    /* 02:00-03:00 on 25 October happens twice: the first occurrence */
    check_local(b, "2026-10-25T01:59:59Z", "2026-10-24T23:59:59Z");
    check_local(b, "2026-10-25T02:00:00Z", "2026-10-25T00:00:00Z");
    check_local(b, "2026-10-25T02:30:00Z", "2026-10-25T00:30:00Z");
    check_local(b, "2026-10-25T02:59:59Z", "2026-10-25T00:59:59Z");
    check_local(b, "2026-10-25T03:00:00Z", "2026-10-25T02:00:00Z");
    check_local(b, "2026-10-25T08:00:00Z", "2026-10-25T07:00:00Z");
    check_local(b, "2026-07-01T12:00:00Z", "2026-07-01T10:00:00Z");
}

static void test_local_to_utc(void **state)
{
    (void)state;
    berlin_local(zone("Europe/Berlin"));
    struct tz *p = posix("CET-1CEST,M3.5.0,M10.5.0/3", 3600);
    berlin_local(p);
    tz_free(p);

    const struct tz *ny = zone("America/New_York");
    check_local(ny, "2026-03-08T02:30:00Z", "2026-03-08T07:00:00Z"); /* gap */
    check_local(ny, "2026-11-01T01:30:00Z", "2026-11-01T05:30:00Z"); /* first 01:30 (EDT) */
    check_local(ny, "2026-11-01T02:00:00Z", "2026-11-01T07:00:00Z");
    check_local(zone("Asia/Kolkata"), "2026-06-01T07:00:00Z", "2026-06-01T01:30:00Z");

    /* monotonic across both Berlin transitions, minute by minute */
    const struct tz *b = zone("Europe/Berlin");
    static const char *const days[] = {"2026-03-28T12:00:00Z", "2026-10-24T12:00:00Z"};
    for (size_t d = 0; d < 2; d++) {
        int64_t prev = INT64_MIN;
        for (int64_t m = 0; m < 36 * 60; m++) {
            int64_t u = tz_local_to_utc(b, L(days[d]) + m * 60);
            assert_true(u >= prev);
            prev = u;
        }
    }
}

/* ---- the POSIX footer on hand-written strings --------------------------- */

static void test_footer_eu_us(void **state)
{
    (void)state;
    struct tz *eu = posix("CET-1CEST,M3.5.0,M10.5.0/3", 3600);
    assert_transition(eu, "2026-03-29T01:00:00Z", 3600, 7200);
    assert_transition(eu, "2026-10-25T01:00:00Z", 7200, 3600);
    assert_transition(eu, "2030-03-31T01:00:00Z", 3600, 7200); /* week 5 = last, 31st */
    assert_transition(eu, "2027-03-28T01:00:00Z", 3600, 7200);
    assert_offset(eu, "1999-12-31T23:59:59Z", 3600);
    tz_free(eu);

    struct tz *us = posix("EST5EDT,M3.2.0,M11.1.0", -18000);
    assert_transition(us, "2026-03-08T07:00:00Z", -18000, -14400);
    assert_transition(us, "2026-11-01T06:00:00Z", -14400, -18000);
    tz_free(us);
}

static void test_footer_southern(void **state)
{
    (void)state;
    /* Sydney: DST across the year boundary */
    struct tz *syd = posix("AEST-10AEDT,M10.1.0,M4.1.0/3", 36000);
    assert_transition(syd, "2026-04-04T16:00:00Z", 39600, 36000);
    assert_transition(syd, "2026-10-03T16:00:00Z", 36000, 39600);
    assert_offset(syd, "2026-12-31T13:00:00Z", 39600);
    assert_offset(syd, "2027-01-01T00:00:00Z", 39600);
    tz_free(syd);
    /* Lord Howe's own footer, half-hour DST */
    struct tz *lh = posix("<+1030>-10:30<+11>-11,M10.1.0,M4.1.0", 37800);
    assert_transition(lh, "2026-04-04T15:00:00Z", 39600, 37800);
    assert_transition(lh, "2026-10-03T15:30:00Z", 37800, 39600);
    tz_free(lh);
}

static void test_footer_no_dst(void **state)
{
    (void)state;
    struct tz *in = posix("IST-5:30", 19800);
    assert_offset(in, "2026-03-29T01:00:00Z", 19800);
    tz_free(in);
    struct tz *q = posix("<+0530>-5:30", 19800);
    assert_offset(q, "2100-01-01T00:00:00Z", 19800);
    tz_free(q);
    struct tz *u = posix("UTC0", 0);
    assert_offset(u, "2026-06-01T00:00:00Z", 0);
    tz_free(u);
    struct tz *w = posix("<-0330>3:30", -12600); /* west: positive POSIX offset */
    assert_offset(w, "2026-06-01T00:00:00Z", -12600);
    tz_free(w);
    struct tz *s = posix("<+1245>-12:45:00", 45900);
    assert_offset(s, "2026-06-01T00:00:00Z", 45900);
    tz_free(s);
}

static void test_footer_rule_times(void **state)
{
    (void)state;
    /* Israel: Friday before the last Sunday, written as Thursday 26:00 */
    struct tz *il = posix("IST-2IDT,M3.4.4/26,M10.5.0", 7200);
    assert_transition(il, "2026-03-27T00:00:00Z", 7200, 10800);
    assert_transition(il, "2026-10-24T23:00:00Z", 10800, 7200);
    tz_free(il);
    /* Greenland (Nuuk): negative times, -1:00 on Sunday is Saturday 23:00 */
    struct tz *gl = posix("<-02>2<-01>,M3.5.0/-1,M10.5.0/0", -7200);
    assert_transition(gl, "2026-03-29T01:00:00Z", -7200, -3600);
    assert_transition(gl, "2026-10-25T01:00:00Z", -3600, -7200);
    tz_free(gl);
    /* the extremes of the extension parse and stay within the two offsets */
    struct tz *x = posix("AAA0BBB,M3.5.0/167,M10.5.0/-167", 0);
    for (int64_t t = T("2025-01-01T00:00:00Z"); t < T("2028-01-01T00:00:00Z"); t += 3 * 3600) {
        int32_t o = tz_offset(x, t);
        assert_true(o == 0 || o == 3600);
    }
    assert_transition(x, "2026-04-04T23:00:00Z", 0, 3600); /* Sun 29 March + 167h */
    tz_free(x);
}

static void test_footer_julian(void **state)
{
    (void)state;
    /* Jn never counts Feb 29: J60 is 1 March, J305 is 1 November, every year */
    struct tz *j = posix("AAA0BBB-1,J60/0,J305/0", 0);
    assert_transition(j, "2026-03-01T00:00:00Z", 0, 3600);
    assert_transition(j, "2028-03-01T00:00:00Z", 0, 3600);
    assert_transition(j, "2026-10-31T23:00:00Z", 3600, 0);
    assert_transition(j, "2028-10-31T23:00:00Z", 3600, 0);
    tz_free(j);
    /* n counts from 0 and does count Feb 29 */
    struct tz *n = posix("AAA0BBB,59/0,304/0", 0);
    assert_transition(n, "2026-03-01T00:00:00Z", 0, 3600);
    assert_transition(n, "2028-02-29T00:00:00Z", 0, 3600);
    assert_transition(n, "2026-10-31T23:00:00Z", 3600, 0);
    assert_transition(n, "2028-10-30T23:00:00Z", 3600, 0);
    tz_free(n);
}

static void test_footer_dst_all_year(void **state)
{
    (void)state;
    /* RFC 8536 3.3.1: starts Jan 1 00:00, ends Dec 31 24:00 + 1h: always DST */
    struct tz *d = posix("EST5EDT,0/0,J365/25", -18000);
    for (int64_t t = T("2025-12-30T00:00:00Z"); t < T("2029-01-03T00:00:00Z"); t += 1800)
        if (tz_offset(d, t) != -14400) {
            fprintf(stderr, "not DST at %lld\n", (long long)t);
            fail();
        }
    /* and local -> UTC is a plain shift there */
    check_local(d, "2027-01-01T00:00:00Z", "2027-01-01T04:00:00Z");
    tz_free(d);
}

/* A "slim" image: transitions stop in 1980 and the footer carries on. */
static void test_slim_image(void **state)
{
    (void)state;
    const int64_t times[] = {T("1893-04-01T00:00:00Z") - 3208, T("1980-04-06T01:00:00Z"),
                             T("1980-09-28T01:00:00Z")};
    const uint8_t idx[] = {1, 2, 1};
    const int32_t offs[] = {3208, 3600, 7200};
    struct tzif_image im;
    tzif_build(&im, '2', times, idx, 3, offs, 3, "CET-1CEST,M3.5.0,M10.5.0/3");
    struct tz *tz = NULL;
    char err[128] = "";
    assert_int_equal(tz_parse(im.buf, im.len, &tz, err, sizeof(err)), 0);
    assert_offset(tz, "1880-01-01T00:00:00Z", 3208);
    assert_offset(tz, "1950-01-01T00:00:00Z", 3600);
    assert_offset(tz, "1980-06-01T00:00:00Z", 7200);
    assert_offset(tz, "1980-12-01T00:00:00Z", 3600);
    assert_transition(tz, "1985-03-31T01:00:00Z", 3600, 7200);
    assert_transition(tz, "2026-03-29T01:00:00Z", 3600, 7200);
    assert_transition(tz, "2026-10-25T01:00:00Z", 7200, 3600);
    berlin_local(tz);
    tz_free(tz);

    /* the same without a footer (empty string): the last type stays */
    tzif_build(&im, '3', times, idx, 3, offs, 3, "");
    assert_int_equal(tz_parse(im.buf, im.len, &tz, err, sizeof(err)), 0);
    assert_offset(tz, "2026-07-01T00:00:00Z", 3600);
    tz_free(tz);

    /* version 1: 32-bit times, no footer */
    tzif_build(&im, 0, times + 1, idx + 1, 2, offs, 3, "");
    assert_int_equal(tz_parse(im.buf, im.len, &tz, err, sizeof(err)), 0);
    assert_offset(tz, "1970-01-01T00:00:00Z", 3208); /* type 0 before the first transition */
    assert_offset(tz, "1980-06-01T00:00:00Z", 7200);
    assert_offset(tz, "2026-07-01T00:00:00Z", 3600);
    tz_free(tz);
}

/* ---- refusals ----------------------------------------------------------- */

static void expect_refused(const unsigned char *data, size_t len, const char *want_substr)
{
    struct tz *tz = (struct tz *)&tz; /* must be reset to NULL */
    char err[128] = "";
    int rc = tz_parse(data, len, &tz, err, sizeof(err));
    if (rc >= 0 || tz != NULL || strncmp(err, "tzif: ", 6) != 0 ||
        (want_substr && !strstr(err, want_substr))) {
        fprintf(stderr, "expected refusal (%s), got rc=%d err=\"%s\"\n", want_substr ? want_substr : "any", rc,
                err);
        fail();
    }
}

static void expect_footer_refused(const char *footer)
{
    struct tzif_image im;
    int32_t off = 3600;
    tzif_build(&im, '2', NULL, NULL, 0, &off, 1, footer);
    struct tz *tz = NULL;
    char err[128] = "";
    if (tz_parse(im.buf, im.len, &tz, err, sizeof(err)) >= 0) {
        fprintf(stderr, "footer \"%s\" was accepted\n", footer);
        tz_free(tz);
        fail();
    }
    assert_null(tz);
    assert_non_null(strstr(err, "footer"));
}

static unsigned char *read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    static unsigned char buf[HERALD_TZDB_MAX_FILE];
    *len = fread(buf, 1, sizeof(buf), f);
    fclose(f);
    return buf;
}

static uint32_t be32(const unsigned char *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static void test_truncated(void **state)
{
    (void)state;
    size_t len = 0;
    unsigned char *data = read_file(HERALD_TZDB_DEFAULT_DIR "/Europe/Berlin", &len);
    if (!data) {
        fprintf(stderr, "Europe/Berlin missing: install tzdata\n");
        fail();
    }
    unsigned char *copy = malloc(len); /* exact-size copies so ASan sees any overread */
    for (size_t n = 0; n < len; n++) {
        unsigned char *p = malloc(n ? n : 1);
        memcpy(p, data, n);
        expect_refused(p, n, NULL);
        free(p);
    }
    memcpy(copy, data, len);
    struct tz *tz = NULL;
    char err[128];
    assert_int_equal(tz_parse(copy, len, &tz, err, sizeof(err)), 0);
    tz_free(tz);
    free(copy);
    expect_refused(NULL, 0, "no data");
}

static void test_corrupt(void **state)
{
    (void)state;
    size_t len = 0;
    unsigned char *data = read_file(HERALD_TZDB_DEFAULT_DIR "/America/New_York", &len);
    assert_non_null(data);
    unsigned char *p = malloc(len);

    /* random single and multiple byte changes: refused or sane, never a
     * crash. Half the rounds aim at the two headers, where the counts are. */
    size_t v2 = 44 + (size_t)be32(data + 32) * 5 + (size_t)be32(data + 36) * 6 + be32(data + 40) +
                (size_t)be32(data + 28) * 8 + be32(data + 24) + be32(data + 20);
    assert_true(v2 + 44 < len);
    uint32_t seed = 12345;
    int accepted = 0, refused = 0;
    for (int round = 0; round < 4000; round++) {
        memcpy(p, data, len);
        int flips = 1 + round % 4;
        for (int k = 0; k < flips; k++) {
            seed = seed * 1103515245u + 12345u;
            size_t at = (seed >> 8) % len;
            if (round & 1) at = (seed >> 8) % 44 + ((seed >> 4) & 1 ? v2 : 0);
            seed = seed * 1103515245u + 12345u;
            p[at] ^= (unsigned char)(1u << ((seed >> 16) % 8));
        }
        struct tz *tz = NULL;
        char err[128] = "";
        if (tz_parse(p, len, &tz, err, sizeof(err)) == 0) {
            accepted++;
            for (int64_t t = -INT64_C(4000000000); t < INT64_C(8000000000); t += 86400 * 97) {
                int32_t o = tz_offset(tz, t);
                assert_true(o >= -89999 && o <= 93599);
                int64_t u = tz_local_to_utc(tz, t);
                assert_true(u > t - 93600 && u < t + 93600 * 2);
            }
            tz_free(tz);
        } else {
            refused++;
            assert_int_equal(strncmp(err, "tzif: ", 6), 0);
        }
    }
    assert_true(refused > 0 && accepted > 0);
    free(p);
}

static void test_absurd(void **state)
{
    (void)state;
    struct tzif_image im;
    const int32_t off = 3600;

    /* counts beyond the limits, in the v1 and in the v2 header */
    tzif_build(&im, '2', NULL, NULL, 0, &off, 1, "CET-1");
    struct tzif_image bad = im;
    memcpy(bad.buf + 32, "\x7f\xff\xff\xff", 4); /* v1 timecnt */
    expect_refused(bad.buf, bad.len, "too many transitions");
    bad = im;
    memcpy(bad.buf + 36, "\x00\x01\x00\x00", 4); /* v1 typecnt */
    expect_refused(bad.buf, bad.len, "too many local time types");
    size_t v2 = 44 + 6 + 4;
    bad = im;
    memcpy(bad.buf + v2 + 32, "\xff\xff\xff\xff", 4); /* v2 timecnt */
    expect_refused(bad.buf, bad.len, "too many transitions");
    bad = im;
    memcpy(bad.buf + v2 + 40, "\x00\x10\x00\x00", 4); /* v2 charcnt */
    expect_refused(bad.buf, bad.len, "too many designation");
    bad = im;
    memcpy(bad.buf + v2 + 28, "\x00\x00\x00\x01", 4); /* leap seconds */
    expect_refused(bad.buf, bad.len, "leap-second");
    bad = im;
    memcpy(bad.buf + v2 + 36, "\x00\x00\x00\x02", 4); /* typecnt 2 > data */
    expect_refused(bad.buf, bad.len, NULL);
    bad = im;
    memcpy(bad.buf + v2 + 36, "\x00\x00\x00\x00", 4); /* no types */
    expect_refused(bad.buf, bad.len, NULL);
    bad = im;
    bad.buf[0] = 'X';
    expect_refused(bad.buf, bad.len, "bad magic");
    bad = im;
    bad.buf[4] = '9';
    expect_refused(bad.buf, bad.len, "unsupported version");
    bad = im;
    bad.buf[v2 + 4] = '3';
    expect_refused(bad.buf, bad.len, "disagree");

    /* tables that lie */
    const int64_t up[] = {100, 200}, down[] = {200, 100}, same[] = {100, 100};
    const uint8_t idx_ok[] = {0, 1}, idx_bad[] = {0, 2};
    const int32_t offs[] = {0, 3600}, huge[] = {0, 100000};
    struct tz *tz = NULL;
    char err[128];
    tzif_build(&im, '2', up, idx_ok, 2, offs, 2, "");
    assert_int_equal(tz_parse(im.buf, im.len, &tz, err, sizeof(err)), 0);
    tz_free(tz);
    tzif_build(&im, '2', down, idx_ok, 2, offs, 2, "");
    expect_refused(im.buf, im.len, "not ascending");
    tzif_build(&im, '2', same, idx_ok, 2, offs, 2, "");
    expect_refused(im.buf, im.len, "not ascending");
    tzif_build(&im, '2', up, idx_bad, 2, offs, 2, "");
    expect_refused(im.buf, im.len, "type index out of range");
    tzif_build(&im, '2', up, idx_ok, 2, huge, 2, "");
    expect_refused(im.buf, im.len, "beyond 26 hours");
    tzif_build(&im, 0, up, idx_bad, 2, offs, 2, "");
    expect_refused(im.buf, im.len, "type index out of range");

    /* footer framing */
    tzif_build(&im, '2', up, idx_ok, 2, offs, 2, "CET-1");
    expect_refused(im.buf, im.len - 1, "unterminated footer");
    bad = im;
    bad.buf[im.len - 4] = '\0';
    expect_refused(bad.buf, bad.len, "NUL byte");
    char longf[200];
    memset(longf, 'A', sizeof(longf) - 3);
    memcpy(longf + sizeof(longf) - 3, "0", 2);
    tzif_build(&im, '2', up, idx_ok, 2, offs, 2, longf);
    expect_refused(im.buf, im.len, "footer longer");
}

static void test_footer_refused(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "CET",                          /* no offset */
        "-1",                           /* no name */
        "CET-1CEST",                    /* DST without a rule */
        "CET-1CEST,M3.5.0",             /* one date */
        "CET-1CEST,M13.5.0,M10.5.0",    /* month 13 */
        "CET-1CEST,M0.5.0,M10.5.0",     /* month 0 */
        "CET-1CEST,M3.6.0,M10.5.0",     /* week 6 */
        "CET-1CEST,M3.0.0,M10.5.0",     /* week 0 */
        "CET-1CEST,M3.5.7,M10.5.0",     /* weekday 7 */
        "CET-1CEST,J0,J365",            /* J counts from 1 */
        "CET-1CEST,J366,J100",
        "CET-1CEST,366,100",
        "CET-1CEST,M3.5.0/168,M10.5.0", /* beyond 167 hours */
        "CET-1CEST,M3.5.0/2:60,M10.5.0",
        "CET-25",                       /* offsets stop at 24 hours */
        "CET-1:60",
        "<>0",
        "<CET-1",
        "CET-1 ",
        "UTC0x",
        "CET-1CEST,M3.5.0,M10.5.0,",
        "CET-1CEST-25,M3.5.0,M10.5.0",
        "CET-1CEST,M3.5,M10.5.0",
        "CET-1CEST,M3..0,M10.5.0",
        "CET-0001",                     /* at most three digits */
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) expect_footer_refused(bad[i]);
    /* and a few that are fine */
    static const char *const good[] = {"CET-1CEST,M3.5.0,M10.5.0/3", "<-03>3", "XXX+3:30:15",
                                       "AAA0BBB1,M3.5.0/-167,M10.5.0/+167", "AAA-24BBB-24,M3.5.0,M10.5.0"};
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) tz_free(posix(good[i], 0));
}

/* ---- tzdb --------------------------------------------------------------- */

static void test_tzdb_names(void **state)
{
    (void)state;
    static const char *const good[] = {"Europe/Berlin", "UTC", "Etc/GMT+5", "America/Port-au-Prince",
                                       "America/Argentina/Buenos_Aires", "EST5EDT"};
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) assert_true(tzdb_name_valid(good[i]));
    static const char *const bad[] = {
        "", "/etc/passwd", "../../etc/passwd", "Europe/../../../etc/passwd", "Europe/..", "..", ".",
        "Europe//Berlin", "Europe/Berlin/", "/Europe/Berlin", "Europe/Berlin\n", "Europe/Ber lin",
        "Europe\\Berlin", "zone.tab", "Europe/Berlin%00", "Europe/Berlin\x01",
        "Aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa/X", /* 66 */
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        if (tzdb_name_valid(bad[i])) {
            fprintf(stderr, "name \"%s\" accepted\n", bad[i]);
            fail();
        }
        assert_null(tzdb_get(db, bad[i]));
    }
    char n64[65];
    memset(n64, 'A', 64);
    n64[64] = '\0';
    assert_true(tzdb_name_valid(n64));
    assert_null(tzdb_get(db, NULL));
}

static void test_tzdb_lookup(void **state)
{
    (void)state;
    assert_null(tzdb_get(db, "Mars/Olympus_Mons"));
    assert_null(tzdb_get(db, "Mars/Olympus_Mons")); /* from the cache */
    assert_null(tzdb_get(db, "Europe"));            /* a directory */
    assert_null(tzdb_get(db, "leapseconds"));       /* a file, not TZif (if present) */
    const struct tz *b1 = zone("Europe/Berlin");
    assert_ptr_equal(zone("Europe/Berlin"), b1);    /* cached: the same zone */

    /* many unknown names: the miss cache empties itself and keeps working */
    char name[32];
    for (int i = 0; i < 3 * HERALD_TZDB_MAX_MISSES; i++) {
        snprintf(name, sizeof(name), "Nowhere/Z%d", i);
        assert_null(tzdb_get(db, name));
    }
    assert_ptr_equal(zone("Europe/Berlin"), b1);

    /* another directory: nothing there */
    struct tzdb *empty = tzdb_new("/nonexistent-zoneinfo");
    assert_null(tzdb_get(empty, "Europe/Berlin"));
    assert_ptr_equal(tzdb_get(empty, "UTC"), tz_utc());
    tzdb_free(empty);
    tzdb_free(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_utc),
        cmocka_unit_test(test_berlin),
        cmocka_unit_test(test_new_york),
        cmocka_unit_test(test_kolkata),
        cmocka_unit_test(test_lord_howe),
        cmocka_unit_test(test_local_to_utc),
        cmocka_unit_test(test_footer_eu_us),
        cmocka_unit_test(test_footer_southern),
        cmocka_unit_test(test_footer_no_dst),
        cmocka_unit_test(test_footer_rule_times),
        cmocka_unit_test(test_footer_julian),
        cmocka_unit_test(test_footer_dst_all_year),
        cmocka_unit_test(test_slim_image),
        cmocka_unit_test(test_truncated),
        cmocka_unit_test(test_corrupt),
        cmocka_unit_test(test_absurd),
        cmocka_unit_test(test_footer_refused),
        cmocka_unit_test(test_tzdb_names),
        cmocka_unit_test(test_tzdb_lookup),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
