/*
 * test_policy.c - the decision engine, driven by data: every .json file in
 * tests/policy_cases is one situation and becomes one named test.
 *
 * A case file holds one object:
 *   name             what the situation is (defaults to the file name)
 *   now              RFC 3339, the decision time
 *   job              job JSON as on the stream; for brevity "id", "topic"
 *                    ("promotions"), "content" (for each listed channel) and
 *                    "recipients" are filled in when absent
 *   person           profile JSON (as stored: no consent), or null = no profile
 *   stored           optional {"email": ..., "phone": ...} written over the
 *                    parsed profile, bypassing validation: a profile stored
 *                    before a rule tightened (null removes the address)
 *   sealed           optional array of channels whose address is read as a
 *                    campaign's lookup reads a sealed person: not opened
 *                    (address NULL), its "#" flag set (store_person.h)
 *   consent          {"email": true|false, ...}; a channel absent = no record
 *   consent_at       optional {"email": RFC 3339, ...}: when that record was
 *                    made (default: one day before now)
 *   consent_max_age  optional seconds: [consent] max_age (default: no limit)
 *   zone             optional IANA name, read from /usr/share/zoneinfo: the
 *                    person's time zone as the daemon resolved it (default UTC)
 *   quiet_hours      optional {"sms": "21:00-08:00", ...}: [quiet_hours]
 *   expect.until     optional RFC 3339: when a deferred message is due
 *   suppressed       optional array of channels on the suppression list
 *   already_reached  optional boolean (default false)
 *   expect           {"outcome": "sent"|"suppressed"|..., "reason": code
 *                    ("" for sent), "channel": name or null}
 *   expect.trace     optional array: policy_explain's checks, each
 *                    "<check> [<channel>] pass|skip|block [<reason>]"
 * Every case also runs through policy_explain: the same decision, and a
 * trace that ends in it (the check that decided, or a pass on the channel
 * that is sent).
 * Unknown keys are errors, so a typo cannot make a case pass silently.
 * The directory is argv[1], else POLICY_CASES_DIR; no case at all fails.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "policy.h"

#ifndef POLICY_CASES_DIR
#define POLICY_CASES_DIR "tests/policy_cases"
#endif

struct pcase {
    char *file;
    char *name;
    json_t *root;
};

static struct pcase *cases;
static size_t ncases;

/* Fails the running test with the case's file name in front. */
#define CASE_FAIL(c, ...)                           \
    do {                                            \
        fprintf(stderr, "%s: ", (c)->file);          \
        fprintf(stderr, __VA_ARGS__);               \
        fputc('\n', stderr);                        \
        fail();                                     \
    } while (0)

static bool key_in(const char *key, const char *const *keys)
{
    for (; *keys; keys++)
        if (strcmp(key, *keys) == 0) return true;
    return false;
}

static void check_keys(const struct pcase *c, const json_t *obj, const char *what, const char *const *keys)
{
    const char *key;
    json_t *v;
    json_object_foreach((json_t *)obj, key, v) {
        (void)v;
        if (!key_in(key, keys)) CASE_FAIL(c, "unknown key \"%s\" in %s", key, what);
    }
}

static int channel_of(const struct pcase *c, const json_t *v, const char *what)
{
    int ch = json_is_string(v) ? herald_channel_from_name(json_string_value(v)) : -1;
    if (ch < 0) CASE_FAIL(c, "%s: not a channel name", what);
    return ch;
}

/* The case's job with the members it left out filled in. */
static char *job_text(const struct pcase *c, const json_t *job)
{
    if (!json_is_object(job)) CASE_FAIL(c, "\"job\" must be an object");
    json_t *j = json_deep_copy(job);
    if (!json_object_get(j, "id")) json_object_set_new(j, "id", json_string("case"));
    if (!json_object_get(j, "topic")) json_object_set_new(j, "topic", json_string("promotions"));
    if (!json_object_get(j, "recipients") && !json_object_get(j, "recipients_key"))
        json_object_set_new(j, "recipients", json_pack("[s]", "u1"));
    if (!json_object_get(j, "content")) {
        json_t *content = json_object();
        size_t i;
        json_t *ch;
        json_array_foreach(json_object_get(j, "channels"), i, ch) {
            const char *name = json_string_value(ch);
            if (name && strcmp(name, "email") == 0)
                json_object_set_new(content, name, json_pack("{s:s, s:s}", "subject", "Hi", "text", "Hello"));
            else if (name)
                json_object_set_new(content, name, json_pack("{s:s}", "text", "Hello"));
        }
        json_object_set_new(j, "content", content);
    }
    char *s = json_dumps(j, JSON_COMPACT);
    json_decref(j);
    return s;
}

static void set_stored(const struct pcase *c, struct profile *p, const json_t *stored)
{
    static const char *const keys[] = {"email", "phone", NULL};
    if (!json_is_object(stored)) CASE_FAIL(c, "\"stored\" must be an object");
    check_keys(c, stored, "stored", keys);
    const char *key;
    json_t *v;
    json_object_foreach((json_t *)stored, key, v) {
        char **field = &p->address[channel_from_address_field(key)];
        free(*field);
        *field = json_is_string(v) ? xstrdup(json_string_value(v)) : NULL;
    }
}

static const char *const verdicts[] = {"pass", "skip", "block"};

/* "<check> [<channel>] <verdict> [<reason>]" */
static void trace_line(struct strbuf *sb, const struct policy_check *k)
{
    strbuf_reset(sb);
    strbuf_adds(sb, policy_check_name(k->kind));
    if (k->channel >= 0) strbuf_addf(sb, " %s", herald_channel_name(k->channel));
    strbuf_addf(sb, " %s", verdicts[k->verdict]);
    if (k->reason != HERALD_REASON_NONE) strbuf_addf(sb, " %s", herald_reason_name(k->reason));
}

/* policy_explain decides as policy_decide does, and its trace tells how:
 * it starts at the expiry, every check before the last let the message on
 * or only skipped a channel, and the last one is the decision. */
static void check_trace(const struct pcase *c, const struct policy_input *in, const struct policy_decision *d,
                        const json_t *want)
{
    struct policy_trace tr;
    struct policy_decision e;
    memset(&tr, 0x5a, sizeof(tr));
    policy_explain(in, &e, &tr);
    if (e.outcome != d->outcome || e.reason != d->reason || e.channel != d->channel || e.until != d->until)
        CASE_FAIL(c, "policy_explain decided %s/%s, policy_decide %s/%s", herald_outcome_name(e.outcome),
                  herald_reason_name(e.reason), herald_outcome_name(d->outcome), herald_reason_name(d->reason));
    if (tr.n == 0 || tr.c[0].kind != POLICY_CHECK_EXPIRY) CASE_FAIL(c, "the trace does not start at the expiry");
    for (size_t i = 0; i + 1 < tr.n; i++)
        if (tr.c[i].verdict == POLICY_BLOCK) CASE_FAIL(c, "trace entry %zu blocks but is not the last", i);
    const struct policy_check *last = &tr.c[tr.n - 1];
    if (d->outcome == HERALD_OUTCOME_SENT) {
        if (last->verdict != POLICY_PASS || last->kind != POLICY_CHECK_QUIET_HOURS || last->channel != d->channel)
            CASE_FAIL(c, "sent, but the trace does not end in a passed quiet-hours check on the channel");
    } else {
        if (last->verdict != POLICY_BLOCK || last->reason != d->reason || last->channel != d->channel)
            CASE_FAIL(c, "the trace's last check (%s) is not the decision", policy_check_name(last->kind));
        if (d->outcome == HERALD_OUTCOME_DEFERRED && last->until != d->until)
            CASE_FAIL(c, "the trace's deferral has another until");
    }
    if (!want) return;
    if (!json_is_array(want)) CASE_FAIL(c, "expect.trace must be an array of strings");
    struct strbuf got;
    strbuf_init(&got);
    for (size_t i = 0; i < tr.n || i < json_array_size(want); i++) {
        const char *w = json_string_value(json_array_get(want, i));
        if (i < tr.n) trace_line(&got, &tr.c[i]);
        if (i >= tr.n || !w || strcmp(got.buf, w) != 0)
            CASE_FAIL(c, "trace[%zu]: got \"%s\", expected \"%s\"", i, i < tr.n ? got.buf : "(end)",
                      w ? w : "(end)");
    }
    strbuf_free(&got);
}

static void run_case(void **state)
{
    const struct pcase *c = *state;
    static const char *const keys[] = {"name", "now", "job", "person", "stored", "consent", "consent_at",
                                       "consent_max_age", "zone", "quiet_hours", "suppressed", "already_reached",
                                       "sealed", "expect", NULL};
    static const char *const expect_keys[] = {"outcome", "reason", "channel", "until", "trace", NULL};
    const json_t *root = c->root;
    check_keys(c, root, "the case", keys);

    struct policy_input in;
    memset(&in, 0, sizeof(in));
    const json_t *now = json_object_get(root, "now");
    if (!json_is_string(now) || herald_time_parse(json_string_value(now), &in.now) < 0)
        CASE_FAIL(c, "\"now\" must be an RFC 3339 timestamp");

    struct job job;
    char err[512];
    char *text = job_text(c, json_object_get(root, "job"));
    if (job_parse(text, strlen(text), &job, err, sizeof(err)) < 0) CASE_FAIL(c, "job: %s", err);
    free(text);
    in.job = &job;

    struct profile person;
    memset(&person, 0, sizeof(person));
    const json_t *pj = json_object_get(root, "person");
    if (!pj) CASE_FAIL(c, "\"person\" is required (null for no profile)");
    if (!json_is_null(pj)) {
        if (profile_from_json(pj, &person, false, NULL, NULL, in.now, err, sizeof(err)) < 0)
            CASE_FAIL(c, "person: %s", err);
        in.person = &person;
    }
    const json_t *stored = json_object_get(root, "stored");
    if (stored) {
        if (!in.person) CASE_FAIL(c, "\"stored\" needs a person");
        set_stored(c, &person, stored);
    }
    const json_t *sealed = json_object_get(root, "sealed");
    if (sealed) {
        if (!in.person || !json_is_array(sealed)) CASE_FAIL(c, "\"sealed\" needs a person and an array");
        size_t i;
        json_t *v;
        json_array_foreach(sealed, i, v) {
            int ch = channel_of(c, v, "sealed[]");
            if (!person.address[ch]) CASE_FAIL(c, "sealed: the person has no address on that channel");
            free(person.address[ch]);
            person.address[ch] = NULL;
            person.indexed |= 1u << ch;
        }
    }

    const json_t *consent = json_object_get(root, "consent");
    if (consent) {
        if (!json_is_object(consent)) CASE_FAIL(c, "\"consent\" must be an object of channel -> boolean");
        if (!in.person) CASE_FAIL(c, "\"consent\" needs a person");
        const char *key;
        json_t *v;
        json_object_foreach((json_t *)consent, key, v) {
            int ch = herald_channel_from_name(key);
            if (ch < 0 || !json_is_boolean(v)) CASE_FAIL(c, "consent.%s: expected a channel and a boolean", key);
            person.consent[ch].known = true;
            person.consent[ch].granted = json_is_true(v);
            person.consent[ch].at = in.now - 86400;
        }
    }

    const json_t *cat = json_object_get(root, "consent_at");
    if (cat) {
        if (!json_is_object(cat) || !in.person) CASE_FAIL(c, "\"consent_at\" must be an object of channel -> time");
        const char *key;
        json_t *v;
        json_object_foreach((json_t *)cat, key, v) {
            int ch = herald_channel_from_name(key);
            if (ch < 0 || !json_is_string(v) || herald_time_parse(json_string_value(v), &person.consent[ch].at) < 0)
                CASE_FAIL(c, "consent_at.%s: expected a channel and an RFC 3339 time", key);
        }
    }
    const json_t *maxage = json_object_get(root, "consent_max_age");
    if (maxage && !json_is_integer(maxage)) CASE_FAIL(c, "\"consent_max_age\" must be seconds");
    in.consent_max_age = maxage ? json_integer_value(maxage) : 0;

    struct tz *zone = NULL;
    const json_t *zj = json_object_get(root, "zone");
    if (zj) {
        char path[256];
        snprintf(path, sizeof(path), "/usr/share/zoneinfo/%s", json_string_value(zj) ? json_string_value(zj) : "");
        FILE *fp = fopen(path, "rb");
        if (!fp) CASE_FAIL(c, "zone: cannot read %s (is tzdata installed?)", path);
        static unsigned char buf[1 << 18];
        size_t len = fread(buf, 1, sizeof(buf), fp);
        fclose(fp);
        if (tz_parse(buf, len, &zone, err, sizeof(err)) < 0) CASE_FAIL(c, "zone: %s", err);
        in.tz = zone;
    }
    struct quiet_window qw[HERALD_CH_COUNT];
    const json_t *qj = json_object_get(root, "quiet_hours");
    if (qj) {
        const char *key;
        json_t *v;
        json_object_foreach((json_t *)qj, key, v) {
            int ch = herald_channel_from_name(key);
            if (ch < 0 || !json_is_string(v) || quiet_parse(json_string_value(v), &qw[ch], err, sizeof(err)) < 0)
                CASE_FAIL(c, "quiet_hours.%s: expected a channel and HH:MM-HH:MM", key);
            in.quiet[ch] = &qw[ch];
        }
    }

    const json_t *sup = json_object_get(root, "suppressed");
    if (sup) {
        if (!json_is_array(sup)) CASE_FAIL(c, "\"suppressed\" must be an array of channels");
        size_t i;
        json_t *v;
        json_array_foreach(sup, i, v) in.suppressed[channel_of(c, v, "suppressed")] = true;
    }
    const json_t *ar = json_object_get(root, "already_reached");
    if (ar && !json_is_boolean(ar)) CASE_FAIL(c, "\"already_reached\" must be a boolean");
    in.already_reached = json_is_true(ar);

    const json_t *expect = json_object_get(root, "expect");
    if (!json_is_object(expect)) CASE_FAIL(c, "\"expect\" is required");
    check_keys(c, expect, "expect", expect_keys);
    const char *want_outcome = json_string_value(json_object_get(expect, "outcome"));
    const char *want_reason = json_string_value(json_object_get(expect, "reason"));
    const json_t *wc = json_object_get(expect, "channel");
    if (!want_outcome || !want_reason || !wc) CASE_FAIL(c, "\"expect\" needs outcome, reason and channel");
    int want_channel = json_is_null(wc) ? -1 : channel_of(c, wc, "expect.channel");

    struct policy_decision d;
    memset(&d, 0xa5, sizeof(d));
    policy_decide(&in, &d);
    const char *got_outcome = herald_outcome_name(d.outcome);
    const char *got_reason = herald_reason_name(d.reason);
    if (strcmp(got_outcome, want_outcome) != 0 || strcmp(got_reason, want_reason) != 0 ||
        d.channel != want_channel)
        CASE_FAIL(c, "%s\n  got    %s/%s on %s\n  expect %s/%s on %s", c->name, got_outcome, got_reason,
                  d.channel < 0 ? "(none)" : herald_channel_name(d.channel), want_outcome, want_reason,
                  want_channel < 0 ? "(none)" : herald_channel_name(want_channel));

    const json_t *wu = json_object_get(expect, "until");
    if (wu) {
        int64_t want_until;
        if (!json_is_string(wu) || herald_time_parse(json_string_value(wu), &want_until) < 0)
            CASE_FAIL(c, "expect.until must be RFC 3339");
        if (d.until != want_until) {
            char got[32];
            herald_time_format(d.until, got, sizeof(got));
            CASE_FAIL(c, "%s\n  until %s, expected %s", c->name, got, json_string_value(wu));
        }
    }

    check_trace(c, &in, &d, json_object_get(expect, "trace"));

    /* Same input, same answer: nothing in the policy keeps state. */
    struct policy_decision again;
    policy_decide(&in, &again);
    assert_int_equal(again.outcome, d.outcome);
    assert_int_equal(again.reason, d.reason);
    assert_int_equal(again.channel, d.channel);

    if (zone) tz_free(zone);
    profile_free(&person);
    job_free(&job);
}

/* The cases must exercise every reason the policy can give today. */
static void test_every_reason_covered(void **state)
{
    (void)state;
    static const char *const reasons[] = {"", "expired", "unknown_recipient", "topic_opt_out", "no_channel",
                                          "no_consent", "consent_expired", "no_address", "suppressed",
                                          "duplicate", "quiet_hours"};
    for (size_t r = 0; r < sizeof(reasons) / sizeof(reasons[0]); r++) {
        bool seen = false;
        for (size_t i = 0; i < ncases && !seen; i++) {
            const char *got = json_string_value(json_object_get(json_object_get(cases[i].root, "expect"), "reason"));
            seen = got && strcmp(got, reasons[r]) == 0;
        }
        if (!seen) {
            fprintf(stderr, "no policy case expects reason \"%s\"\n", reasons[r][0] ? reasons[r] : "(sent)");
            fail();
        }
    }
}

/* policy_limits counts as reserve.lua does: sends strictly inside the
 * window, on the cap's channel (or any), of its topics; caps in order, the
 * first that is reached names the reason; then the person's own limits. */
static void test_limits(void **state)
{
    (void)state;
    const int64_t now = 1000000, day = 86400;
    const char *const promo[] = {"promotions"};
    struct policy_send sends[] = {
        {now - 10, HERALD_CH_EMAIL, "promotions"},
        {now - day, HERALD_CH_EMAIL, "promotions"}, /* exactly a window ago: outside */
        {now - 3600, HERALD_CH_SMS, "news"},
    };
    struct policy_cap caps[] = {
        {"sms_daily", HERALD_CH_SMS, 1, day, NULL, 0},
        {"promo_daily", -1, 1, day, promo, 1},
        {"any_daily", -1, 3, day, NULL, 0},
    };
    struct policy_limits_input in = {.topic = "promotions", .channel = HERALD_CH_EMAIL, .now = now, .caps = caps,
                                     .ncaps = 3, .sends = sends, .nsends = 3};
    struct policy_decision d;
    struct policy_trace tr = {.n = 0};
    const char *name = NULL;
    policy_limits(&in, &d, &name, &tr);
    assert_int_equal(d.outcome, HERALD_OUTCOME_SUPPRESSED);
    assert_int_equal(d.reason, HERALD_REASON_CAP);
    assert_string_equal(name, "promo_daily"); /* sms_daily does not apply to email */
    assert_int_equal(tr.n, 1);
    assert_int_equal(tr.c[0].kind, POLICY_CHECK_CAP);
    assert_int_equal(tr.c[0].count, 1);
    assert_int_equal(tr.c[0].limit, 1);

    /* Another topic: promo_daily does not apply; any_daily counts 2 of 3. */
    in.topic = "news";
    tr.n = 0;
    policy_limits(&in, &d, &name, &tr);
    assert_int_equal(d.outcome, HERALD_OUTCOME_SENT);
    assert_null(name);
    assert_int_equal(tr.n, 1);
    assert_string_equal(tr.c[0].name, "any_daily");
    assert_int_equal(tr.c[0].count, 2);
    assert_int_equal(tr.c[0].verdict, POLICY_PASS);

    /* The person's own limit on sms: one within a week. */
    struct policy_freq freq[] = {{HERALD_CH_EMAIL, 5, 7 * day}, {HERALD_CH_SMS, 1, 7 * day}};
    in.channel = HERALD_CH_SMS;
    in.ncaps = 0;
    in.freq = freq;
    in.nfreq = 2;
    tr.n = 0;
    policy_limits(&in, &d, &name, &tr);
    assert_int_equal(d.reason, HERALD_REASON_USER_FREQUENCY);
    assert_int_equal(d.channel, HERALD_CH_SMS);
    assert_int_equal(tr.n, 1); /* the email limit does not apply to sms */
    assert_int_equal(tr.c[0].kind, POLICY_CHECK_FREQUENCY);
    assert_int_equal(tr.c[0].count, 1);
}

static int by_file(const void *a, const void *b)
{
    return strcmp(((const struct pcase *)a)->file, ((const struct pcase *)b)->file);
}

static int load_cases(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d) {
        fprintf(stderr, "test_policy: cannot open case directory %s\n", dir);
        return -1;
    }
    size_t cap = 0;
    struct dirent *e;
    int rc = 0;
    while ((e = readdir(d))) {
        size_t n = strlen(e->d_name);
        if (n < 6 || strcmp(e->d_name + n - 5, ".json") != 0) continue;
        struct strbuf path;
        strbuf_init(&path);
        strbuf_addf(&path, "%s/%s", dir, e->d_name);
        json_error_t jerr;
        json_t *root = json_load_file(path.buf, JSON_REJECT_DUPLICATES, &jerr);
        if (!json_is_object(root)) {
            fprintf(stderr, "test_policy: %s: %s (line %d)\n", path.buf, root ? "not a JSON object" : jerr.text,
                    jerr.line);
            json_decref(root);
            strbuf_free(&path);
            rc = -1;
            continue;
        }
        if (ncases == cap) {
            cap = cap ? cap * 2 : 32;
            cases = xrealloc(cases, cap * sizeof(*cases));
        }
        const char *name = json_string_value(json_object_get(root, "name"));
        cases[ncases].file = xstrdup(e->d_name);
        cases[ncases].name = xstrdup(name ? name : e->d_name);
        cases[ncases].root = root;
        ncases++;
        strbuf_free(&path);
    }
    closedir(d);
    if (ncases) qsort(cases, ncases, sizeof(*cases), by_file);
    return rc;
}

int main(int argc, char **argv)
{
    const char *dir = argc > 1 ? argv[1] : POLICY_CASES_DIR;
    if (load_cases(dir) < 0) return 1;
    if (ncases == 0) {
        fprintf(stderr, "test_policy: no policy cases (.json files) found in %s\n", dir);
        return 1;
    }
    struct CMUnitTest *tests = xcalloc(ncases + 2, sizeof(*tests));
    for (size_t i = 0; i < ncases; i++) {
        tests[i].name = cases[i].file;
        tests[i].test_func = run_case;
        tests[i].initial_state = &cases[i];
    }
    tests[ncases].name = "every_reason_covered";
    tests[ncases].test_func = test_every_reason_covered;
    tests[ncases + 1].name = "limits";
    tests[ncases + 1].test_func = test_limits;
    printf("test_policy: %zu cases from %s\n", ncases, dir);
    int failed = _cmocka_run_group_tests("policy_cases", tests, ncases + 2, NULL, NULL);
    for (size_t i = 0; i < ncases; i++) {
        free(cases[i].file);
        free(cases[i].name);
        json_decref(cases[i].root);
    }
    free(cases);
    free(tests);
    return failed;
}
