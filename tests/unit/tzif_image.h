/*
 * tzif_image.h - builds small TZif images in memory for test_tz and
 * test_quiet, so that footer rules and "slim" files can be tested with
 * hand-written data whatever tzdata the machine has. Test-only.
 */
#ifndef HERALD_TEST_TZIF_IMAGE_H
#define HERALD_TEST_TZIF_IMAGE_H

#include <stdint.h>
#include <string.h>

#include "tz.h"

struct tzif_image {
    unsigned char buf[16384];
    size_t len;
};

static void tzif_put(struct tzif_image *im, const void *p, size_t n)
{
    if (n == 0) return;
    if (im->len + n > sizeof(im->buf)) abort();
    memcpy(im->buf + im->len, p, n);
    im->len += n;
}

static void tzif_put32(struct tzif_image *im, uint32_t v)
{
    unsigned char b[4] = {(unsigned char)(v >> 24), (unsigned char)(v >> 16), (unsigned char)(v >> 8),
                          (unsigned char)v};
    tzif_put(im, b, 4);
}

static void tzif_put64(struct tzif_image *im, int64_t v)
{
    tzif_put32(im, (uint32_t)((uint64_t)v >> 32));
    tzif_put32(im, (uint32_t)(uint64_t)v);
}

static void tzif_header(struct tzif_image *im, char version, uint32_t timecnt, uint32_t typecnt, uint32_t charcnt)
{
    tzif_put(im, "TZif", 4);
    unsigned char v[16] = {(unsigned char)version};
    tzif_put(im, v, 16);
    tzif_put32(im, 0);       /* isutcnt */
    tzif_put32(im, 0);       /* isstdcnt */
    tzif_put32(im, 0);       /* leapcnt */
    tzif_put32(im, timecnt);
    tzif_put32(im, typecnt);
    tzif_put32(im, charcnt);
}

static void tzif_types(struct tzif_image *im, const int32_t *offs, size_t ntypes)
{
    for (size_t i = 0; i < ntypes; i++) {
        tzif_put32(im, (uint32_t)offs[i]);
        unsigned char rest[2] = {i > 0, 0}; /* isdst (only informative), designation 0 */
        tzif_put(im, rest, 2);
    }
    tzif_put(im, "ZZZ", 4); /* charcnt 4: "ZZZ\0" */
}

/*
 * A version 2 image (version '2'; pass 0 for a version 1 image with 32-bit
 * times) with the given transitions, types and footer. The version 1 block
 * of a version 2 image is minimal, as in a "slim" file.
 */
static void tzif_build(struct tzif_image *im, char version, const int64_t *times, const uint8_t *idx,
                       size_t ntimes, const int32_t *offs, size_t ntypes, const char *footer)
{
    im->len = 0;
    if (version == 0) {
        tzif_header(im, 0, (uint32_t)ntimes, (uint32_t)ntypes, 4);
        for (size_t i = 0; i < ntimes; i++) tzif_put32(im, (uint32_t)(int32_t)times[i]);
        tzif_put(im, idx, ntimes);
        tzif_types(im, offs, ntypes);
        return;
    }
    tzif_header(im, version, 0, 1, 4);
    tzif_types(im, offs, 1);
    tzif_header(im, version, (uint32_t)ntimes, (uint32_t)ntypes, 4);
    for (size_t i = 0; i < ntimes; i++) tzif_put64(im, times[i]);
    tzif_put(im, idx, ntimes);
    tzif_types(im, offs, ntypes);
    tzif_put(im, "\n", 1);
    tzif_put(im, footer, strlen(footer));
    tzif_put(im, "\n", 1);
}

/* A zone with no transitions whose every instant follows the POSIX TZ
 * string (its standard offset is also the one type). */
static struct tz *tzif_posix_zone(const char *posix, int32_t std_off, char *err, size_t errlen)
{
    struct tzif_image im;
    tzif_build(&im, '2', NULL, NULL, 0, &std_off, 1, posix);
    struct tz *tz = NULL;
    if (tz_parse(im.buf, im.len, &tz, err, errlen) < 0) return NULL;
    return tz;
}

#endif
