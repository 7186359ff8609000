/*
 * bench_policy.c - how fast is the pure policy, next to reading a profile?
 *
 * A benchmark program, not a test: it prints figures. It builds a set of
 * realistic profiles (attributes, topic choices, channel order, consent,
 * some suppressed or opted out, four real time zones from tzdata, personal
 * quiet hours, an ops quiet window for SMS), then measures in one run:
 *   - decisions per second of policy_decide() on one core,
 *   - the time to parse one such profile with jansson (json_loadb) and the
 *     time of herald's full profile_parse() (jansson + validation),
 *   - the ratio policy / parse (the aim: under 0.1).
 * Each figure is the median of several repetitions (the machines are noisy).
 * Usage: bench_policy [decisions_per_rep (default 20000000)] [reps (default 5)]
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "job.h"
#include "policy.h"
#include "profile.h"
#include "quiet.h"
#include "tz.h"

#include "bench_util.h"

#define NPROFILES 1024




/* A profile as a marketing CRM would hold it: a dozen attributes, a few topic choices. */
static char *profile_json(int i)
{
    static const char *const tzs[] = {"Europe/Berlin", "America/New_York", "Asia/Kolkata", "UTC"};
    static const char *const orders[] = {"[\"email\",\"sms\"]", "[\"sms\",\"email\"]", "[\"email\"]"};
    char buf[2048];
    snprintf(buf, sizeof(buf),
             "{\"id\":\"user-%06d\",\"email\":\"person.%06d@mail.example.com\",\"phone\":\"+1555%07d\","
             "\"tz\":\"%s\",\"locale\":\"en-GB\",\"channels\":%s,"
             "\"topics\":{\"promotions\":%s,\"news\":true,\"product-updates\":false,\"events\":true},"
             "\"quiet_hours\":\"22:00-07:30\",\"frequency\":{\"email\":\"3/7d\",\"any\":\"5/7d\"},"
             "\"attributes\":{\"first_name\":\"Alexandra\",\"last_name\":\"Lindqvist-Moreau\",\"city\":\"Gothenburg\","
             "\"country\":\"SE\",\"tier\":\"gold\",\"points\":%d,\"last_order\":\"2026-10-14\",\"favourite\":\"outdoor\","
             "\"newsletter_since\":\"2019-03-02\",\"age_band\":\"35-44\",\"store\":\"Nordstan\",\"vip\":%s}}",
             i, i, i, tzs[i % 4], orders[i % 3], i % 7 == 0 ? "false" : "true", i * 37 % 10000,
             i % 5 == 0 ? "true" : "false");
    return strdup(buf);
}

static struct tz *load_zone(const char *name)
{
    char path[256];
    snprintf(path, sizeof(path), "/usr/share/zoneinfo/%s", name);
    static unsigned char buf[1 << 18];
    FILE *fp = fopen(path, "rb");
    if (!fp) return tz_utc();
    size_t len = fread(buf, 1, sizeof(buf), fp);
    fclose(fp);
    struct tz *tz = NULL;
    char err[128];
    return tz_parse(buf, len, &tz, err, sizeof(err)) == 0 ? tz : tz_utc();
}

static const char JOB[] =
    "{\"id\":\"bench-2026\",\"topic\":\"promotions\",\"channels\":[\"email\",\"sms\"],"
    "\"content\":{\"email\":{\"subject\":\"Hi {{first_name}}\",\"text\":\"t\",\"html\":\"<p>h</p>\"},"
    "\"sms\":{\"text\":\"Hi {{first_name}}\"}},\"recipients\":[\"x\"],\"expires_at\":\"2099-01-01T00:00:00Z\"}";

int main(int argc, char **argv)
{
    long n = argc > 1 ? strtol(argv[1], NULL, 10) : 20000000L;
    int reps = argc > 2 ? (int)strtol(argv[2], NULL, 10) : 5;
    if (n < 1000 || reps < 1 || reps > 50) {
        fprintf(stderr, "usage: bench_policy [decisions_per_rep >= 1000] [reps 1..50]\n");
        return 2;
    }
    char err[256];
    struct job job;
    if (job_parse(JOB, strlen(JOB), &job, err, sizeof(err)) < 0) {
        fprintf(stderr, "job: %s\n", err);
        return 1;
    }
    static struct profile profiles[NPROFILES];
    static struct policy_input inputs[NPROFILES];
    char *texts[NPROFILES];
    int64_t now = 1796119200; /* 2026-12-01T10:00:00Z: night in some zones, day in others */
    static const char *const zone_names[] = {"Europe/Berlin", "America/New_York", "Asia/Kolkata", "UTC"};
    struct tz *zones[4];
    for (int z = 0; z < 4; z++) zones[z] = load_zone(zone_names[z]);
    struct quiet_window sms_quiet;
    quiet_parse("21:00-08:00", &sms_quiet, err, sizeof(err));
    for (int i = 0; i < NPROFILES; i++) {
        texts[i] = profile_json(i);
        if (profile_parse(texts[i], strlen(texts[i]), &profiles[i], err, sizeof(err)) < 0) {
            fprintf(stderr, "profile %d: %s\n", i, err);
            return 1;
        }
        /* Most have consent for both; some for one; a few none. */
        for (int ch = 0; ch < HERALD_CH_COUNT; ch++) {
            profiles[i].consent[ch].known = i % 11 != 0;
            profiles[i].consent[ch].granted = !(ch == HERALD_CH_SMS && i % 3 == 0);
            profiles[i].consent[ch].at = now - 86400 * (i % 900);
        }
        inputs[i] = (struct policy_input){.job = &job, .person = &profiles[i], .now = now + 3600 * (i % 24),
                                          .consent_max_age = 730 * 86400, .tz = zones[i % 4]};
        inputs[i].quiet[HERALD_CH_SMS] = &sms_quiet;
        inputs[i].suppressed[HERALD_CH_EMAIL] = i % 13 == 0;
        inputs[i].already_reached = i % 17 == 0;
    }

    double dps[50], parse_j[50], parse_p[50];
    unsigned long sink = 0;
    for (int r = 0; r < reps; r++) {
        struct policy_decision d;
        double t0 = now_s();
        for (long k = 0; k < n; k++) {
            policy_decide(&inputs[k & (NPROFILES - 1)], &d);
            sink += (unsigned long)d.reason + (unsigned long)d.channel;
        }
        dps[r] = (double)n / (now_s() - t0);

        long m = 20000;
        t0 = now_s();
        for (long k = 0; k < m; k++) {
            const char *t = texts[k & (NPROFILES - 1)];
            json_t *o = json_loadb(t, strlen(t), 0, NULL);
            sink += json_object_size(o);
            json_decref(o);
        }
        parse_j[r] = (now_s() - t0) / (double)m;

        t0 = now_s();
        for (long k = 0; k < m; k++) {
            const char *t = texts[k & (NPROFILES - 1)];
            struct profile p;
            if (profile_parse(t, strlen(t), &p, err, sizeof(err)) == 0) {
                sink += p.ntopics;
                profile_free(&p);
            }
        }
        parse_p[r] = (now_s() - t0) / (double)m;
    }
    double d_med = median(dps, reps), j_med = median(parse_j, reps), p_med = median(parse_p, reps);
    double per_decision = 1.0 / d_med;
    printf("bench_policy: %d profiles of about %zu bytes, %ld decisions x %d runs (medians)\n", NPROFILES,
           strlen(texts[0]), n, reps);
    printf("  policy_decide        %12.0f decisions/s   %8.1f ns/decision\n", d_med, per_decision * 1e9);
    printf("  json_loadb (jansson) %12.0f profiles/s    %8.1f ns/profile\n", 1.0 / j_med, j_med * 1e9);
    printf("  profile_parse        %12.0f profiles/s    %8.1f ns/profile\n", 1.0 / p_med, p_med * 1e9);
    printf("  ratio policy / jansson parse  %.4f   (aim: < 0.1)\n", per_decision / j_med);
    printf("  ratio policy / profile_parse  %.4f\n", per_decision / p_med);
    printf("  aim >= 5,000,000 decisions/s on one core: %s\n", d_med >= 5e6 ? "met" : "NOT met");
    int mix[HERALD_OUTCOME_COUNT] = {0};
    for (int i = 0; i < NPROFILES; i++) {
        struct policy_decision d;
        policy_decide(&inputs[i], &d);
        mix[d.outcome]++;
    }
    printf("  decision mix over the profiles: sent %d, deferred %d, suppressed %d (of %d)\n",
           mix[HERALD_OUTCOME_SENT], mix[HERALD_OUTCOME_DEFERRED], mix[HERALD_OUTCOME_SUPPRESSED], NPROFILES);
    for (int i = 0; i < NPROFILES; i++) {
        profile_free(&profiles[i]);
        free(texts[i]);
    }
    for (int z = 0; z < 4; z++) tz_free(zones[z]);
    job_free(&job);
    return sink == 42 ? 3 : 0; /* keeps the loops from being optimised away */
}
