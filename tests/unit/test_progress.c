/*
 * test_progress.c - heraldctl's progress text (progress.c): the rate over
 * the last samples, the time left, a terminal line that never exceeds its
 * width (so it can be redrawn in place) and a plain key=value line.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

#include "progress.h"

static char *campaign_line(const struct progress_campaign *c, double rate, int width)
{
    struct strbuf sb;
    strbuf_init(&sb);
    strbuf_adds(&sb, ""); /* an empty line is "" too, not NULL */
    progress_campaign_line(&sb, c, rate, width);
    return strbuf_detach(&sb, NULL);
}

static char *duration(double s)
{
    struct strbuf sb;
    strbuf_init(&sb);
    progress_duration(&sb, s);
    return strbuf_detach(&sb, NULL);
}

static const struct progress_campaign running = {.id = "spring",
                                                 .state = "running",
                                                 .total = 1000,
                                                 .sent = 400,
                                                 .suppressed = 50,
                                                 .deferred = 10,
                                                 .failed = 2,
                                                 .unknown = 0,
                                                 .pending = 538};

static void test_rate_over_the_window(void **state)
{
    (void)state;
    struct progress_rate r = {0};
    assert_true(progress_rate_get(&r) == 0);
    progress_rate_add(&r, 100.0, 0);
    assert_true(progress_rate_get(&r) == 0); /* one sample: no rate yet */
    progress_rate_add(&r, 101.0, 50);
    assert_true(progress_rate_get(&r) == 50);
    /* Old samples fall out: a burst long ago no longer counts. */
    for (int i = 2; i < 30; i++)
        progress_rate_add(&r, 100.0 + i, 50 + (i - 1) * 10);
    assert_true(progress_rate_get(&r) == 10);
    /* Nothing moves: rate 0 (time left unknown), not a division by zero. */
    struct progress_rate s = {0};
    progress_rate_add(&s, 1, 5);
    progress_rate_add(&s, 2, 5);
    assert_true(progress_rate_get(&s) == 0);
}

static void test_duration(void **state)
{
    (void)state;
    const struct {
        double s;
        const char *want;
    } cases[] = {{0, "0s"},      {0.2, "1s"},     {42, "42s"}, {60, "1m00s"},
                 {187, "3m07s"}, {7500, "2h05m"}, {-1, "--"},  {1e12, "--"}};
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char *d = duration(cases[i].s);
        assert_string_equal(d, cases[i].want);
        free(d);
    }
}

static void test_plain_line(void **state)
{
    (void)state;
    char *l = campaign_line(&running, 20, 0);
    assert_string_equal(l, "campaign=spring state=running total=1000 sent=400 suppressed=50 deferred=10 "
                           "failed=2 unknown=0 pending=538 rate=20/s left=27s");
    free(l);
    l = campaign_line(&running, 0, 0);
    assert_non_null(strstr(l, " rate=--/s left=--"));
    free(l);
}

static void test_terminal_line(void **state)
{
    (void)state;
    char *l = campaign_line(&running, 2.5, 120);
    assert_true(strlen(l) <= 120);
    assert_true(strncmp(l, "spring running [", 16) == 0);
    /* 452 of 1000 done: 45% */
    assert_non_null(
        strstr(l, " 45% 452/1000  sent 400  suppressed 50  deferred 10  failed 2  2.5/s  3m36s left"));
    assert_null(strchr(l, '\n'));
    assert_null(strchr(l, '\r'));
    free(l);
    /* Too narrow for a bar: the counts stay, the bar goes. */
    l = campaign_line(&running, 2.5, 100);
    assert_string_equal(l, "spring running 45% 452/1000  sent 400  suppressed 50  deferred 10  failed 2  2.5/s  "
                           "3m36s left");
    free(l);
    /* Every width fits, down to a tiny terminal. */
    for (int w = 1; w <= 200; w++) {
        l = campaign_line(&running, 2.5, w);
        assert_true(strlen(l) <= (size_t)w);
        free(l);
    }
}

static void test_ended(void **state)
{
    (void)state;
    struct progress_campaign c = running;
    assert_false(progress_campaign_ended(&c));
    c.state = "done";
    c.sent = 938, c.pending = 0, c.deferred = 0;
    assert_true(progress_campaign_ended(&c));
    assert_int_equal(progress_campaign_done(&c), 990);
    char *l = campaign_line(&c, 0, 120);
    assert_null(strstr(l, "left")); /* nothing left to wait for */
    free(l);
    /* Queued: no run has counted the recipients yet, so no time left either. */
    struct progress_campaign q = {.id = "q", .state = "queued"};
    l = campaign_line(&q, 0, 0);
    assert_non_null(strstr(l, " pending=0 rate=--/s left=--"));
    free(l);
    c.state = "cancelled";
    assert_true(progress_campaign_ended(&c));
    c.state = "paused";
    assert_false(progress_campaign_ended(&c));
}

static void test_import_line(void **state)
{
    (void)state;
    struct strbuf sb;
    strbuf_init(&sb);
    progress_import_line(&sb, 1000, 990, 10, 25000, 100000, 500, 100);
    assert_true(sb.len <= 100);
    assert_true(strncmp(sb.buf, "import [", 8) == 0);
    /* A quarter of the bytes; 3000 lines left at 500/s. */
    assert_non_null(strstr(sb.buf, "] 25% line 1000  imported 990  skipped 10  500/s  6s left"));
    strbuf_free(&sb);
    strbuf_init(&sb);
    progress_import_line(&sb, 7, 7, 0, 300, 0, 0, 100); /* stdin: size unknown */
    assert_string_equal(sb.buf, "import line 7  imported 7  skipped 0  --/s");
    strbuf_free(&sb);
    for (int w = 1; w <= 120; w++) {
        strbuf_init(&sb);
        strbuf_adds(&sb, "");
        progress_import_line(&sb, 1000, 990, 10, 25000, 100000, 500, w);
        assert_true(sb.len <= (size_t)w);
        strbuf_free(&sb);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rate_over_the_window),
        cmocka_unit_test(test_duration),
        cmocka_unit_test(test_plain_line),
        cmocka_unit_test(test_terminal_line),
        cmocka_unit_test(test_ended),
        cmocka_unit_test(test_import_line),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
