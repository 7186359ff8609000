/* test_grant.c - the local accounting of shared provider limits (grant.h):
 * batches, lapsing, prefetch, leases, and the over-grant bound with two
 * daemons against a model of lua/limit.lua's bucket. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "grant.h"

static void test_bucket(void **state)
{
    (void)state;
    double interval, tau;
    grant_bucket(20, &interval, &tau);
    assert_true(fabs(interval - 50) < 1e-9);
    assert_true(fabs(tau - 750) < 1e-9); /* 20 tokens of burst, less the horizon's and the slack's 5 */
    grant_bucket(0.5, &interval, &tau);  /* one token every 2 s: a burst of one, never less */
    assert_true(fabs(interval - 2000) < 1e-9);
    assert_true(fabs(tau - 2000) < 1e-9);
    assert_int_equal(grant_batch_size(20), 2);
    assert_int_equal(grant_batch_size(1000), 100);
    assert_int_equal(grant_batch_size(5), 1);
    assert_int_equal(grant_batch_size(1.0 / 3600), 1);
}

static void test_tokens_lapse(void **state)
{
    (void)state;
    struct grant g = {0};
    assert_false(grant_take_token(&g, 1000)); /* nothing granted yet */
    grant_tokens_in(&g, 3, 0, "1150.000", 1000, 1010);
    assert_int_equal(grant_tokens(&g, 1010), 3);
    assert_true(grant_take_token(&g, 1100));
    assert_true(grant_take_token(&g, 1199));
    /* The horizon counts from when the call was sent, not from the answer. */
    assert_false(grant_take_token(&g, 1000 + GRANT_HORIZON_MS));
    assert_int_equal(grant_tokens(&g, 1000 + GRANT_HORIZON_MS), 0);
    /* An answer later than the horizon brings nothing usable. */
    assert_int_equal(grant_tokens_in(&g, 5, 0, "2250.000", 2000, 2000 + GRANT_HORIZON_MS), 0);
    assert_false(grant_take_token(&g, 2000 + GRANT_HORIZON_MS));
}

/* Tokens that lapse unspent go back with the next call, only those of the
 * latest grant (Redis takes them back only if no grant came after). */
static void test_give_back(void **state)
{
    (void)state;
    struct grant g = {0};
    char tat[GRANT_TAT_MAX];
    /* A 1/h token whose answer came after its horizon (a slow loop). */
    assert_int_equal(grant_tokens_in(&g, 1, 0, "3600000.000", 0, GRANT_HORIZON_MS + 5), 0);
    assert_int_equal(grant_take_return(&g, GRANT_HORIZON_MS + 5, tat), 1);
    assert_string_equal(tat, "3600000.000");
    assert_int_equal(grant_take_return(&g, GRANT_HORIZON_MS + 5, tat), 0); /* once */
    /* Two batches: the older lapses (a later grant exists: not given back),
     * then the latest, part spent. */
    grant_tokens_in(&g, 2, 0, "100.000", 1000, 1010);
    grant_tokens_in(&g, 3, 0, "250.000", 1100, 1110);
    assert_int_equal(grant_take_return(&g, 1000 + GRANT_HORIZON_MS, tat), 0);
    assert_true(grant_take_token(&g, 1000 + GRANT_HORIZON_MS));
    assert_int_equal(grant_take_return(&g, 1100 + GRANT_HORIZON_MS, tat), 2);
    assert_string_equal(tat, "250.000");
}

static void test_two_batches(void **state)
{
    (void)state;
    struct grant g = {0};
    grant_tokens_in(&g, 1, 0, "1050.000", 1000, 1005);
    grant_tokens_in(&g, 2, 0, "1150.000", 1100, 1105);
    assert_int_equal(grant_tokens(&g, 1150), 3);
    assert_false(grant_should_ask(&g, 1150, 4)); /* two batches in hand */
    assert_true(grant_take_token(&g, 1150));     /* the older first */
    assert_int_equal(grant_tokens(&g, 1150), 2);
    /* The newer keeps its own lapse time. */
    assert_int_equal(grant_tokens(&g, 1000 + GRANT_HORIZON_MS), 2);
    assert_int_equal(grant_tokens(&g, 1100 + GRANT_HORIZON_MS), 0);
}

static void test_should_ask(void **state)
{
    (void)state;
    struct grant g = {0};
    assert_true(grant_should_ask(&g, 0, 4));
    grant_tokens_in(&g, 4, 0, "200.000", 0, 5);
    assert_false(grant_should_ask(&g, 10, 4)); /* a full batch in hand */
    grant_take_token(&g, 10);
    grant_take_token(&g, 10);
    assert_false(grant_should_ask(&g, 10, 4)); /* half of it */
    grant_take_token(&g, 10);
    assert_true(grant_should_ask(&g, 10, 4)); /* less than half: ask ahead */
    /* Redis said the next token comes in 30 ms: not before. */
    grant_tokens_in(&g, 0, 30, "", 10, 12);
    assert_false(grant_should_ask(&g, 20, 4));
    assert_true(grant_should_ask(&g, 42, 4));
}

static void test_leases(void **state)
{
    (void)state;
    struct grant g = {0};
    int more, back;
    assert_int_equal(grant_slots(&g, 0), 0);
    grant_lease_plan(&g, 4, 0, true, false, &more, &back);
    assert_int_equal(more, 4);
    assert_int_equal(back, 0);
    grant_leases_in(&g, 4, 4, 1000);
    assert_int_equal(grant_slots(&g, 1500), 4);
    /* Not renewed: no longer ours a second before Redis lets them go. */
    assert_int_equal(grant_slots(&g, 1000 + GRANT_LEASE_TTL_MS - 1000), 0);
    /* A second daemon wants some: the share is 2, and what is above it goes
     * back as it frees, never one in use. */
    grant_leases_in(&g, 4, 2, 2000);
    assert_int_equal(grant_slots(&g, 2000), 2);
    grant_lease_plan(&g, 4, 4, true, false, &more, &back);
    assert_int_equal(back, 0);
    grant_lease_plan(&g, 4, 3, true, false, &more, &back);
    assert_int_equal(back, 1);
    grant_lease_plan(&g, 4, 1, false, false, &more, &back);
    assert_int_equal(back, 2); /* above the share only, between renewals */
    grant_lease_plan(&g, 4, 1, false, true, &more, &back);
    assert_int_equal(back, 3); /* the renewal gives back all that is unused */
    assert_int_equal(more, 0);
}

/* lua/limit.lua's bucket, in C: n tokens given back (if tat is still
 * back_tat), then want asked at now (ms); *after: tat after the grant. */
struct model {
    double tat, interval, tau;
    char tat_s[GRANT_TAT_MAX];
};
static int model_take(struct model *m, double now, int back, const char *back_tat, int want, int64_t *wait,
                      char after[GRANT_TAT_MAX])
{
    if (back > 0 && m->tat_s[0] && strcmp(m->tat_s, back_tat) == 0) {
        m->tat -= back * m->interval;
        snprintf(m->tat_s, sizeof(m->tat_s), "%.3f", m->tat);
    }
    double tat = m->tat < now ? now : m->tat;
    int fit = (int)floor((now + m->tau - tat) / m->interval);
    if (fit > want) fit = want;
    if (fit < 0) fit = 0;
    tat += fit * m->interval;
    after[0] = '\0';
    if (fit > 0) {
        m->tat = tat;
        snprintf(m->tat_s, sizeof(m->tat_s), "%.3f", m->tat);
        memcpy(after, m->tat_s, GRANT_TAT_MAX);
    }
    *wait = 0;
    if (fit < want) {
        *wait = (int64_t)ceil(tat + m->interval - m->tau - now);
        if (*wait < 1) *wait = 1;
    }
    return fit;
}

/* Two daemons with more work than the rate, calls answered after 1..250 ms
 * (some too late: their tokens go back),
 * requests leaving 0..15 ms after their token is taken: over every 10 s,
 * at most burst + rate * 10 requests (what one daemon's own bucket allows),
 * and the rate is nearly all used. */
static void test_two_daemons_bound(void **state)
{
    (void)state;
    const double rate = 20;
    struct model m = {0};
    grant_bucket(rate, &m.interval, &m.tau);
    int batch = grant_batch_size(rate);
    struct {
        struct grant g;
        bool asking;
        uint64_t asked_at, answer_at, retry_at;
        int ret;
        char ret_tat[GRANT_TAT_MAX];
    } d[2] = {0};
    static uint64_t sent[4000];
    size_t nsent = 0;
    srand(7);
    const uint64_t end = 60000;
    for (uint64_t now = 1; now < end; now++) {
        for (int i = 0; i < 2; i++) {
            if (d[i].asking && now >= d[i].answer_at) {
                int64_t wait;
                /* Redis runs the call somewhere between its sending and its answer. */
                double at = (double)d[i].asked_at + (double)(rand() % (int)(now - d[i].asked_at + 1));
                char after[GRANT_TAT_MAX];
                int n = model_take(&m, at, d[i].ret, d[i].ret_tat, batch, &wait, after);
                grant_tokens_in(&d[i].g, n, wait, after, d[i].asked_at, now);
                d[i].asking = false;
            }
            /* Spend what the limits allow this millisecond (a few at most). */
            for (int k = 0; k < 3 && grant_take_token(&d[i].g, now); k++) {
                uint64_t at = now + (uint64_t)(rand() % 16);
                if (nsent < sizeof(sent) / sizeof(sent[0])) sent[nsent++] = at;
            }
            if (!d[i].asking && grant_should_ask(&d[i].g, now, batch)) {
                d[i].asking = true;
                d[i].asked_at = now;
                d[i].ret = grant_take_return(&d[i].g, now, d[i].ret_tat);
                d[i].answer_at = now + 1 + (uint64_t)(rand() % 10 ? rand() % 40 : rand() % 250);
            }
        }
    }
    /* Sort the send times (insertion: they are nearly sorted). */
    for (size_t i = 1; i < nsent; i++) {
        uint64_t v = sent[i];
        size_t j = i;
        while (j > 0 && sent[j - 1] > v) {
            sent[j] = sent[j - 1];
            j--;
        }
        sent[j] = v;
    }
    size_t most = 0;
    for (size_t i = 0, j = 0; i < nsent; i++) {
        while (j < nsent && sent[j] < sent[i] + 10000) j++;
        if (j - i > most) most = j - i;
    }
    print_message("two daemons, rate 20/s: %zu requests in 60 s, at most %zu in a 10 s window\n", nsent, most);
    assert_true(most <= (size_t)(rate * 10 + rate)); /* burst + rate * 10: 220 */
    assert_true(nsent >= (size_t)(rate * 60 * 0.85)); /* and the rate is used, not starved */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bucket),          cmocka_unit_test(test_tokens_lapse),
        cmocka_unit_test(test_two_batches),     cmocka_unit_test(test_should_ask),
        cmocka_unit_test(test_give_back),
        cmocka_unit_test(test_leases),          cmocka_unit_test(test_two_daemons_bound),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
