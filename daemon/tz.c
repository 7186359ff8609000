/*
 * tz.c - TZif images (RFC 8536) and their POSIX TZ footer, in memory.
 *
 * Owns: the TZif reader, the footer rule (Mm.w.d, Jn and n dates, signed
 * and over-24h rule times), UTC -> offset and wall clock -> UTC.
 * Never: touches the file system, reads the clock or logs; tzdb.c reads the
 * files and the caller passes `now`.
 * Invariant: tz_parse either refuses an image with an error or returns a
 * zone whose tables are sorted, bounded and internally consistent, so that
 * the evaluation functions below need no error paths and never allocate.
 * Every count is checked against a hard limit before any size is computed
 * from it, and every read is checked against the bytes that remain.
 */
#include "tz.h"

#include <stdlib.h>
#include <string.h>

/* RFC 8536: utoff SHOULD be in [-89999, 93599], i.e. within 26 hours; the
 * footer grammar cannot say more either. tz_local_to_utc relies on it. */
#define UTOFF_MIN (-89999)
#define UTOFF_MAX 93599
#define UTOFF_SPAN 93600

/* Instants are clamped to +-2^50 s (35 million years) so that calendar
 * arithmetic on them can never overflow. */
#define T_LIMIT (INT64_C(1) << 50)

/* Rule times may run from -167 to 167 hours (RFC 8536 section 3.3.1). */
#define RULE_HOURS_MAX 167

struct rule_date {
    char kind;     /* 'J': Jn, 1..365 without Feb 29; 'D': n, 0..365; 'M': Mm.w.d */
    int16_t a;     /* n, or the month */
    int16_t w, d;  /* week 1..5 (5 = last), weekday 0..6 (Sunday 0) */
    int32_t time;  /* seconds after local midnight, may be negative or > 24h */
};

struct rule {
    bool valid;    /* the file has a non-empty footer */
    bool has_dst;
    int32_t std_off, dst_off; /* seconds east of UTC */
    struct rule_date start, end;
};

struct tz {
    size_t ntimes;
    int64_t *times;  /* strictly ascending */
    uint8_t *idx;    /* type of each transition, < ntypes */
    int ntypes;
    int32_t utoff[HERALD_TZ_MAX_TYPES];
    struct rule rule;
};

static struct tz utc_zone = {.ntypes = 1};

struct tz *tz_utc(void)
{
    return &utc_zone;
}

void tz_free(struct tz *tz)
{
    if (!tz || tz == &utc_zone) return;
    free(tz->times);
    free(tz->idx);
    free(tz);
}

/* ---- calendar ---------------------------------------------------------- */

static int64_t floor_div(int64_t a, int64_t b)
{
    return a / b - (a % b != 0 && (a < 0) != (b < 0));
}

static bool is_leap(int64_t y)
{
    return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

static int64_t year_of_days(int64_t days)
{
    int64_t z = days + 719468;
    const int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    const unsigned doe = (unsigned)(z - era * 146097);
    const unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    const unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    const unsigned mp = (5 * doy + 2) / 153;
    return (int64_t)yoe + era * 400 + (mp >= 10);
}

static int days_in_month(int64_t y, int m)
{
    static const int mdays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    return m == 2 && is_leap(y) ? 29 : mdays[m - 1];
}

static int64_t clamp_t(int64_t t)
{
    return t < -T_LIMIT ? -T_LIMIT : t > T_LIMIT ? T_LIMIT : t;
}

/* ---- the POSIX TZ footer ------------------------------------------------ */

/* Local day (days since the epoch) on which a rule date falls in year y. */
static int64_t rule_day(const struct rule_date *r, int64_t y)
{
    int64_t jan1 = herald_days_from_civil(y, 1, 1);
    switch (r->kind) {
    case 'J': return jan1 + r->a - 1 + (is_leap(y) && r->a >= 60);
    case 'D': return jan1 + r->a;
    default: {
        int64_t first = herald_days_from_civil(y, (unsigned)r->a, 1);
        int64_t wday = first + 4 - floor_div(first + 4, 7) * 7; /* 1970-01-01 was a Thursday */
        int64_t day = first + (r->d - wday + 7) % 7 + (int64_t)(r->w - 1) * 7;
        while (day >= first + days_in_month(y, r->a)) day -= 7; /* week 5 means the last */
        return day;
    }
    }
}

/* The UTC instant of a rule date in year y; `before` is the offset in
 * effect just before it (rule times are given in that local time). */
static int64_t rule_instant(const struct rule_date *r, int64_t y, int32_t before)
{
    return rule_day(r, y) * 86400 + r->time - before;
}

/*
 * The footer's offset at t and its next transition after t. The events of
 * a year lie within 8 days of that year (times reach 167 hours), so years
 * y-2..y+2 surely hold the latest event at or before t and the first one
 * after it. When a start and an end fall on the same instant the start
 * wins, which makes "DST all year" rules (RFC 8536 3.3.1, e.g.
 * "EST5EDT,0/0,J365/25") come out as daylight time throughout.
 */
static int32_t rule_eval(const struct rule *r, int64_t t, int64_t *next)
{
    if (!r->has_dst) {
        if (next) *next = INT64_MAX;
        return r->std_off;
    }
    int64_t y = year_of_days(floor_div(t, 86400));
    int64_t last = INT64_MIN, nx = INT64_MAX;
    bool dst = false;
    for (int64_t yy = y - 2; yy <= y + 2; yy++) {
        int64_t e = rule_instant(&r->end, yy, r->dst_off);
        int64_t s = rule_instant(&r->start, yy, r->std_off);
        if (e <= t && e > last) {
            last = e;
            dst = false;
        }
        if (s <= t && s >= last) {
            last = s;
            dst = true;
        }
        if (e > t && e < nx) nx = e;
        if (s > t && s < nx) nx = s;
    }
    if (next) *next = nx;
    return dst ? r->dst_off : r->std_off;
}

/* Footer parsing: a small recursive-descent reader over a NUL-terminated
 * copy of the footer (the caller bounded its length). */
static bool is_alpha(char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z');
}

static bool is_digit(char c)
{
    return c >= '0' && c <= '9';
}

/* A zone abbreviation: letters, or <...> of letters, digits, '+' and '-'. */
static int parse_abbr(const char **p)
{
    const char *s = *p;
    if (*s == '<') {
        s++;
        const char *b = s;
        while (is_alpha(*s) || is_digit(*s) || *s == '+' || *s == '-') s++;
        if (s == b || *s != '>') return -1;
        *p = s + 1;
        return 0;
    }
    const char *b = s;
    while (is_alpha(*s)) s++;
    if (s == b) return -1;
    *p = s;
    return 0;
}

/* 1..3 digits with a value in [0, max]. */
static int parse_num(const char **p, int max, int *out)
{
    const char *s = *p;
    int v = 0, n = 0;
    while (is_digit(*s) && n < 3) {
        v = v * 10 + (*s++ - '0');
        n++;
    }
    if (n == 0 || is_digit(*s) || v > max) return -1;
    *p = s;
    *out = v;
    return 0;
}

/* [+-]hh[:mm[:ss]] with hh <= max_hours, as signed seconds. */
static int parse_hms(const char **p, int max_hours, int32_t *out)
{
    const char *s = *p;
    int sign = 1, h, m = 0, sec = 0;
    if (*s == '+' || *s == '-') sign = *s++ == '-' ? -1 : 1;
    if (parse_num(&s, max_hours, &h) < 0) return -1;
    if (*s == ':') {
        s++;
        if (parse_num(&s, 59, &m) < 0) return -1;
        if (*s == ':') {
            s++;
            if (parse_num(&s, 59, &sec) < 0) return -1;
        }
    }
    *p = s;
    *out = sign * (h * 3600 + m * 60 + sec);
    return 0;
}

static int parse_date(const char **p, struct rule_date *r)
{
    const char *s = *p;
    int a, w = 0, d = 0;
    if (*s == 'J') {
        s++;
        if (parse_num(&s, 365, &a) < 0 || a < 1) return -1;
        r->kind = 'J';
    } else if (*s == 'M') {
        s++;
        if (parse_num(&s, 12, &a) < 0 || a < 1 || *s++ != '.' || parse_num(&s, 5, &w) < 0 || w < 1 ||
            *s++ != '.' || parse_num(&s, 6, &d) < 0)
            return -1;
        r->kind = 'M';
    } else {
        if (parse_num(&s, 365, &a) < 0) return -1;
        r->kind = 'D';
    }
    r->a = (int16_t)a;
    r->w = (int16_t)w;
    r->d = (int16_t)d;
    r->time = 7200; /* 02:00 unless given */
    if (*s == '/') {
        s++;
        if (parse_hms(&s, RULE_HOURS_MAX, &r->time) < 0) return -1;
    }
    *p = s;
    return 0;
}

/* POSIX offsets count hours WEST of UTC ("CET-1" is UTC+1). */
static int parse_offset(const char **p, int32_t *east)
{
    int32_t west;
    if (parse_hms(p, 24, &west) < 0) return -1;
    *east = -west;
    return 0;
}

static int parse_footer(const char *s, struct rule *r, char *err, size_t errlen)
{
    memset(r, 0, sizeof(*r));
    if (*s == '\0') return 0; /* no rule: the last transition's type stays */
    const char *p = s;
    if (parse_abbr(&p) < 0 || parse_offset(&p, &r->std_off) < 0)
        return herald_fail(err, errlen, "tzif: footer: bad standard time name or offset");
    if (*p != '\0') {
        if (parse_abbr(&p) < 0) return herald_fail(err, errlen, "tzif: footer: bad daylight time name");
        r->dst_off = r->std_off + 3600;
        if (*p != ',' && *p != '\0' && parse_offset(&p, &r->dst_off) < 0)
            return herald_fail(err, errlen, "tzif: footer: bad daylight time offset");
        /* zic always writes the rule; POSIX leaves its absence to the
         * implementation, and guessing a country's rule would be wrong. */
        if (*p != ',') return herald_fail(err, errlen, "tzif: footer: daylight time without a rule");
        p++;
        if (parse_date(&p, &r->start) < 0 || *p++ != ',' || parse_date(&p, &r->end) < 0)
            return herald_fail(err, errlen, "tzif: footer: bad daylight time rule");
        r->has_dst = true;
    }
    if (*p != '\0') return herald_fail(err, errlen, "tzif: footer: unexpected text after the rule");
    if (r->std_off < UTOFF_MIN || r->std_off > UTOFF_MAX || r->dst_off < UTOFF_MIN || r->dst_off > UTOFF_MAX)
        return herald_fail(err, errlen, "tzif: footer: offset beyond 26 hours");
    r->valid = true;
    return 0;
}

/* ---- the TZif reader ---------------------------------------------------- */

struct hdr {
    int version; /* 1, 2, 3 or 4 */
    uint32_t isutcnt, isstdcnt, leapcnt, timecnt, typecnt, charcnt;
};

static uint32_t be32(const unsigned char *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static int64_t be64(const unsigned char *p)
{
    uint64_t v = (uint64_t)be32(p) << 32 | be32(p + 4);
    return (int64_t)v; /* two's complement on every platform herald builds on */
}

#define TZIF_HDR 44

static int read_header(const unsigned char *p, size_t left, struct hdr *h, char *err, size_t errlen)
{
    if (left < TZIF_HDR) return herald_fail(err, errlen, "tzif: truncated header");
    if (memcmp(p, "TZif", 4) != 0) return herald_fail(err, errlen, "tzif: not a TZif file (bad magic)");
    switch (p[4]) {
    case 0: h->version = 1; break;
    case '2': h->version = 2; break;
    case '3': h->version = 3; break;
    case '4': h->version = 4; break;
    default: return herald_fail(err, errlen, "tzif: unsupported version");
    }
    h->isutcnt = be32(p + 20);
    h->isstdcnt = be32(p + 24);
    h->leapcnt = be32(p + 28);
    h->timecnt = be32(p + 32);
    h->typecnt = be32(p + 36);
    h->charcnt = be32(p + 40);
    if (h->timecnt > HERALD_TZ_MAX_TIMES) {
        herald_seterr(err, errlen, "tzif: too many transitions (limit %d)", HERALD_TZ_MAX_TIMES);
        return -HERALD_ETOOBIG;
    }
    if (h->typecnt > HERALD_TZ_MAX_TYPES || h->isutcnt > HERALD_TZ_MAX_TYPES || h->isstdcnt > HERALD_TZ_MAX_TYPES) {
        herald_seterr(err, errlen, "tzif: too many local time types (limit %d)", HERALD_TZ_MAX_TYPES);
        return -HERALD_ETOOBIG;
    }
    if (h->charcnt > HERALD_TZ_MAX_CHARS) {
        herald_seterr(err, errlen, "tzif: too many designation characters (limit %d)", HERALD_TZ_MAX_CHARS);
        return -HERALD_ETOOBIG;
    }
    if (h->leapcnt > 0) return herald_fail(err, errlen, "tzif: leap-second zones are not supported");
    return 0;
}

/* Bytes of the data block after a header; tsize is 4 (v1) or 8 (v2+). The
 * counts were bounded by read_header, so this cannot overflow. */
static size_t block_size(const struct hdr *h, size_t tsize)
{
    return (size_t)h->timecnt * (tsize + 1) + (size_t)h->typecnt * 6 + h->charcnt +
           (size_t)h->leapcnt * (tsize + 4) + h->isstdcnt + h->isutcnt;
}

/* Reads the data block at p (block_size bytes are known to be there). */
static int read_block(const unsigned char *p, const struct hdr *h, size_t tsize, struct tz *tz, char *err,
                      size_t errlen)
{
    if (h->typecnt == 0) return herald_fail(err, errlen, "tzif: no local time types");
    if (h->charcnt == 0) return herald_fail(err, errlen, "tzif: no designations");
    if ((h->isstdcnt && h->isstdcnt != h->typecnt) || (h->isutcnt && h->isutcnt != h->typecnt))
        return herald_fail(err, errlen, "tzif: standard/UT indicator counts differ from the type count");

    const unsigned char *times = p;
    const unsigned char *idx = times + (size_t)h->timecnt * tsize;
    const unsigned char *types = idx + h->timecnt;
    const unsigned char *chars = types + (size_t)h->typecnt * 6;
    const unsigned char *isstd = chars + h->charcnt; /* leapcnt is 0 */
    const unsigned char *isut = isstd + h->isstdcnt;

    tz->ntypes = (int)h->typecnt;
    for (uint32_t i = 0; i < h->typecnt; i++) {
        const unsigned char *t = types + (size_t)i * 6;
        int32_t off = (int32_t)be32(t);
        if (off < UTOFF_MIN || off > UTOFF_MAX)
            return herald_fail(err, errlen, "tzif: local time type offset beyond 26 hours");
        if (t[4] > 1) return herald_fail(err, errlen, "tzif: local time type isdst is not 0 or 1");
        if (t[5] >= h->charcnt) return herald_fail(err, errlen, "tzif: designation index out of range");
        tz->utoff[i] = off;
    }
    if (chars[h->charcnt - 1] != '\0') return herald_fail(err, errlen, "tzif: designations not NUL-terminated");
    for (uint32_t i = 0; i < h->isstdcnt; i++)
        if (isstd[i] > 1) return herald_fail(err, errlen, "tzif: standard/wall indicator is not 0 or 1");
    for (uint32_t i = 0; i < h->isutcnt; i++)
        if (isut[i] > 1 || (isut[i] && (!h->isstdcnt || !isstd[i])))
            return herald_fail(err, errlen, "tzif: bad UT/local indicator");

    tz->ntimes = h->timecnt;
    if (h->timecnt) {
        tz->times = xmalloc((size_t)h->timecnt * sizeof(*tz->times));
        tz->idx = xmalloc(h->timecnt);
    }
    for (uint32_t i = 0; i < h->timecnt; i++) {
        int64_t t = tsize == 8 ? be64(times + (size_t)i * 8) : (int64_t)(int32_t)be32(times + (size_t)i * 4);
        if (i > 0 && t <= tz->times[i - 1]) return herald_fail(err, errlen, "tzif: transition times not ascending");
        if (idx[i] >= h->typecnt) return herald_fail(err, errlen, "tzif: transition type index out of range");
        tz->times[i] = t;
        tz->idx[i] = idx[i];
    }
    return 0;
}

int tz_parse(const unsigned char *data, size_t len, struct tz **out, char *err, size_t errlen)
{
    *out = NULL;
    if (!data) return herald_fail(err, errlen, "tzif: no data");
    struct hdr h1, h2;
    int rc = read_header(data, len, &h1, err, errlen);
    if (rc < 0) return rc;
    size_t pos = TZIF_HDR, b1 = block_size(&h1, 4);
    if (len - pos < b1) return herald_fail(err, errlen, "tzif: truncated version 1 data");
    pos += b1;

    struct tz *tz = xcalloc(1, sizeof(*tz));
    if (h1.version == 1) {
        rc = read_block(data + TZIF_HDR, &h1, 4, tz, err, errlen);
        goto done;
    }

    /* Version 2+: a second header and the 64-bit body, then the footer. The
     * version 1 block above is only skipped (RFC 8536 lets writers leave it
     * minimal, as "slim" files do). */
    rc = read_header(data + pos, len - pos, &h2, err, errlen);
    if (rc < 0) goto done;
    if (h2.version != h1.version) {
        rc = herald_fail(err, errlen, "tzif: the two headers disagree on the version");
        goto done;
    }
    pos += TZIF_HDR;
    size_t b2 = block_size(&h2, 8);
    if (len - pos < b2) {
        rc = herald_fail(err, errlen, "tzif: truncated version 2+ data");
        goto done;
    }
    rc = read_block(data + pos, &h2, 8, tz, err, errlen);
    if (rc < 0) goto done;
    pos += b2;

    /* Footer: '\n', the TZ string (possibly empty), '\n'. */
    if (len - pos < 2 || data[pos] != '\n') {
        rc = herald_fail(err, errlen, "tzif: missing footer");
        goto done;
    }
    pos++;
    const unsigned char *nl = memchr(data + pos, '\n', len - pos);
    if (!nl) {
        rc = herald_fail(err, errlen, "tzif: unterminated footer");
        goto done;
    }
    size_t flen = (size_t)(nl - (data + pos));
    if (flen > HERALD_TZ_MAX_FOOTER) {
        herald_seterr(err, errlen, "tzif: footer longer than %d bytes", HERALD_TZ_MAX_FOOTER);
        rc = -HERALD_ETOOBIG;
        goto done;
    }
    char footer[HERALD_TZ_MAX_FOOTER + 1];
    memcpy(footer, data + pos, flen);
    footer[flen] = '\0';
    if (strlen(footer) != flen) {
        rc = herald_fail(err, errlen, "tzif: NUL byte in footer");
        goto done;
    }
    rc = parse_footer(footer, &tz->rule, err, errlen);
    /* Bytes after the footer are ignored, as tzcode does. */

done:
    if (rc < 0) {
        tz_free(tz);
        return rc;
    }
    *out = tz;
    return 0;
}

/* ---- evaluation --------------------------------------------------------- */

/* Whether the footer governs t: at and after the last transition, or
 * everywhere when the file lists no transitions. */
static bool footer_rules(const struct tz *tz, int64_t t)
{
    return tz->rule.valid && (tz->ntimes == 0 || t >= tz->times[tz->ntimes - 1]);
}

/* Index of the last transition at or before t; the caller checked
 * times[0] <= t. */
static size_t find_transition(const struct tz *tz, int64_t t)
{
    size_t lo = 0, hi = tz->ntimes; /* times[lo] <= t < times[hi] */
    while (hi - lo > 1) {
        size_t mid = lo + (hi - lo) / 2;
        if (tz->times[mid] <= t) lo = mid;
        else hi = mid;
    }
    return lo;
}

int32_t tz_offset(const struct tz *tz, int64_t utc)
{
    if (!tz) return 0;
    int64_t t = clamp_t(utc);
    if (footer_rules(tz, t)) return rule_eval(&tz->rule, t, NULL);
    if (tz->ntimes == 0 || t < tz->times[0]) return tz->utoff[0];
    return tz->utoff[tz->idx[find_transition(tz, t)]];
}

/* The offset at t and the first instant after t at which it may change
 * (INT64_MAX: never). */
static int32_t offset_and_next(const struct tz *tz, int64_t t, int64_t *next)
{
    if (footer_rules(tz, t)) return rule_eval(&tz->rule, t, next);
    if (tz->ntimes == 0) {
        *next = INT64_MAX;
        return tz->utoff[0];
    }
    if (t < tz->times[0]) {
        *next = tz->times[0];
        return tz->utoff[0];
    }
    size_t i = find_transition(tz, t);
    *next = i + 1 < tz->ntimes ? tz->times[i + 1] : INT64_MAX;
    return tz->utoff[tz->idx[i]];
}

int32_t tz_offset_until(const struct tz *tz, int64_t utc, int64_t *until)
{
    if (!tz) {
        *until = INT64_MAX;
        return 0;
    }
    return offset_and_next(tz, clamp_t(utc), until);
}

/*
 * Walks the constant-offset stretches from a point where the wall clock
 * surely still reads less than `local` (offsets stay under 26 hours) and
 * returns the first instant whose wall clock reads `local` or later. Only
 * the transitions within about two days are visited; the cap on steps only
 * matters for a pathological file with transitions seconds apart.
 */
int64_t tz_local_to_utc(const struct tz *tz, int64_t local)
{
    int64_t w = clamp_t(local);
    if (!tz) return w;
    int64_t t = w - UTOFF_SPAN;
    int32_t off = 0;
    for (int step = 0; step < 64; step++) {
        int64_t next;
        off = offset_and_next(tz, t, &next);
        int64_t cand = w - off > t ? w - off : t;
        if (cand < next) return cand;
        t = next;
    }
    return w - off;
}
