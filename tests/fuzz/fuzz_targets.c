/*
 * fuzz_targets.c - libFuzzer entry points for every parser of outside input:
 * jobs, profiles (import lines and API bodies), stored consent records,
 * templates, TZif zone files, provider webhooks and the link pages' forms. Built once per target with
 * -DFUZZ_<NAME>. With clang and -fsanitize=fuzzer they fuzz (scripts/fuzz.sh);
 * with gcc, replay.c runs the committed corpus under ctest, so every crash
 * found once stays fixed.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "plugin_feedback.h"
#include "pagerender.h"
#include "herald.h"
#include "job.h"
#include "profile.h"
#include "template.h"
#include "tz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#if defined(FUZZ_PROFILE)
static bool same_str(const char *a, const char *b)
{
    return (!a && !b) || (a && b && strcmp(a, b) == 0);
}

static bool same_json(json_t *a, json_t *b)
{
    return (!a && !b) || (a && b && json_equal(a, b));
}

static bool same_profile(const struct profile *a, const struct profile *b)
{
    for (int ch = 0; ch < HERALD_CH_COUNT; ch++)
        if (!same_str(a->address[ch], b->address[ch])) return false;
    if (!same_str(a->id, b->id) ||
        !same_str(a->tz, b->tz) || !same_str(a->locale, b->locale) || !same_str(a->quiet_hours, b->quiet_hours) ||
        a->quiet_start_min != b->quiet_start_min || a->quiet_end_min != b->quiet_end_min ||
        a->channels_set != b->channels_set || a->nchannels != b->nchannels || a->ntopics != b->ntopics ||
        !same_json(a->attributes, b->attributes) || !same_json(a->frequency, b->frequency))
        return false;
    for (int i = 0; i < a->nchannels; i++)
        if (a->channels[i] != b->channels[i]) return false;
    for (size_t i = 0; i < a->ntopics; i++)
        if (strcmp(a->topics[i].name, b->topics[i].name) != 0 || a->topics[i].on != b->topics[i].on) return false;
    return true;
}

/* profile_parse (the fast reader, falling back to jansson) and the jansson
 * path alone must agree on every input: same verdict, same error, same
 * profile. Returns profile_parse's result in *p. */
static int profile_parse_both(const char *data, size_t size, struct profile *p)
{
    char err[512], err_full[512];
    struct profile full;
    int rc = profile_parse(data, size, p, err, sizeof(err));
    int rc_full = profile_parse_full(data, size, &full, err_full, sizeof(err_full));
    if (rc != rc_full) abort();
    if (rc != 0 && strcmp(err, err_full) != 0) abort();
    if (rc == 0 && !same_profile(p, &full)) abort();
    if (rc_full == 0) profile_free(&full);
    return rc;
}
#endif

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char err[512];
#if defined(FUZZ_JOB)
    struct job job;
    if (job_parse((const char *)data, size, &job, err, sizeof(err)) == 0) job_free(&job);
#elif defined(FUZZ_PROFILE)
    struct profile p;
    (void)err;
    if (profile_parse_both((const char *)data, size, &p) == 0) {
        char *back = profile_to_json(&p);
        struct profile again;
        /* What herald stores, it must read back (through the fast reader). */
        if (profile_parse_both(back, strlen(back), &again) != 0) abort();
        profile_free(&again);
        free(back);
        profile_free(&p);
    }
    /* The same text as a sealed person's attributes, which store_person.c
     * reads apart from the profile: what profile_attributes_parse reads, a
     * profile holding it reads the same; what such a profile reads as one
     * JSON value, profile_attributes_parse reads too. */
    if (size + 32 <= HERALD_PROFILE_MAX_BYTES) {
        json_t *attrs;
        int ra = profile_attributes_parse((const char *)data, size, &attrs, err, sizeof(err));
        struct strbuf w;
        strbuf_init(&w);
        strbuf_adds(&w, "{\"attributes\":");
        strbuf_add(&w, (const char *)data, size);
        strbuf_adds(&w, ",\"id\":\"f\"}");
        struct profile wp;
        int rw = profile_parse_full(w.buf, w.len, &wp, err, sizeof(err));
        json_t *alone = json_loadb((const char *)data, size, JSON_REJECT_DUPLICATES, NULL);
        if (ra == 0 && (rw != 0 || !json_equal(attrs, wp.attributes))) abort();
        if (rw == 0 && alone && ra != 0) abort();
        /* What the send path reads as text (profile_attributes_plain) the
         * parser takes, and each attribute renders as from the tree. */
        if (profile_attributes_plain((const char *)data, size)) {
            if (ra != 0) abort();
            const char *k;
            json_t *v;
            json_object_foreach(attrs, k, v) {
                struct template *t;
                struct strbuf src, a;
                strbuf_init(&src);
                strbuf_init(&a);
                strbuf_adds(&src, "{{");
                strbuf_adds(&src, k);
                strbuf_adds(&src, "}}");
                if (template_compile(src.buf, &t, err, sizeof(err)) == 0 && template_nfields(t) == 1 &&
                    strcmp(template_field(t, 0), k) == 0) {
                    json_t *only = json_pack("{sO}", k, v);
                    template_render(t, only, NULL, TEMPLATE_RAW, &a);
                    const char *s;
                    size_t n;
                    if (!profile_attribute_text((const char *)data, size, k, &s, &n) || a.len != n ||
                        memcmp(a.buf, s, n) != 0)
                        abort();
                    json_decref(only);
                }
                template_free(t);
                strbuf_free(&src);
                strbuf_free(&a);
            }
        }
        json_decref(alone);
        json_decref(attrs);
        if (rw == 0) profile_free(&wp);
        strbuf_free(&w);
    }
#elif defined(FUZZ_CONSENT)
    /* The per-recipient reader must read every stored record exactly as
     * the full parser does: same verdict, same state. */
    struct consent_state st;
    struct consent_record rec;
    int fast = consent_state_parse((const char *)data, size, &st);
    int full = consent_record_parse((const char *)data, size, &rec, err, sizeof(err));
    if ((fast == 0) != (full == 0)) abort();
    if (full == 0) {
        if (!st.known || st.granted != rec.granted || st.at != rec.at) abort();
        char *back = consent_record_to_json(&rec);
        struct consent_state again;
        /* What herald stores, it reads back the same. */
        if (consent_state_parse(back, strlen(back), &again) != 0 || again.granted != rec.granted ||
            again.at != rec.at)
            abort();
        free(back);
        consent_record_free(&rec);
    }
#elif defined(FUZZ_TEMPLATE)
    char *src = xstrndup((const char *)data, size);
    struct template *t;
    if (template_compile(src, &t, err, sizeof(err)) == 0) {
        json_t *attrs = json_pack("{s:s, s:i}", "first_name", "Ann <&>", "n", 3);
        struct strbuf out;
        strbuf_init(&out);
        template_render(t, attrs, NULL, TEMPLATE_HTML, &out);
        template_render(t, NULL, NULL, TEMPLATE_RAW, &out);
        strbuf_free(&out);
        json_decref(attrs);
        template_free(t);
    }
    free(src);
#elif defined(FUZZ_TZ)
    struct tz *tz;
    if (tz_parse(data, size, &tz, err, sizeof(err)) == 0) {
        for (int64_t t = -2000000000LL; t < 4000000000LL; t += 86400 * 97) {
            int32_t off = tz_offset(tz, t);
            if (off < -25 * 3600 || off > 26 * 3600) abort();
            (void)tz_local_to_utc(tz, t);
        }
        tz_free(tz);
    }
#elif defined(FUZZ_FEEDBACK)
    /* What the Twilio plugin reads of a callback (channels/plugin_feedback.h):
     * the form, the text it signs, the keyword. (SendGrid's event batch is
     * jansson's JSON read by the plugin: test_feedback covers it.) */
    struct pfb_form f;
    if (pfb_form_parse((const char *)data, size, &f, err, sizeof(err)) == 0) {
        size_t len = 0;
        free(pfb_twilio_signed_text("https://h.example/v1/webhooks/twilio", &f, &len));
        (void)pfb_sms_keyword(pfb_form_get(&f, "Body"), pfb_form_get(&f, "OptOutType"));
        pfb_form_free(&f);
    }
#elif defined(FUZZ_PAGE)
    /* What the link pages read from anyone holding a link: a form body,
     * urlencoded or multipart (the first byte picks which), turned into
     * the change it asks for, and shown back escaped when it is refused. */
    const char *ctype = size && (data[0] & 1) ? "multipart/form-data; boundary=b" : "application/x-www-form-urlencoded";
    struct pagerender_form f;
    if (pagerender_form_parse(ctype, (const char *)data, size, &f, err, sizeof(err)) == 0) {
        struct pagerender_changes ch;
        struct pagerender_errors errs;
        if (pagerender_changes_from_form(&f, &ch, &errs) == 0) pagerender_changes_free(&ch);
        json_t *doc = json_pack("{s:s, s:{s:s}, s:{}, s:[], s:[]}", "id", "fz", "profile", "email", "a@b.example",
                                "preferences", "consent", "messages");
        struct pagerender_ctx ctx = {.campaign = "c", .topic = "t", .channel = "email", .csrf = "x",
                                     .errors = &errs, .submitted = &f};
        struct strbuf sb;
        strbuf_init(&sb);
        if (doc) pagerender_prefs(&sb, doc, &ctx);
        if (strstr(sb.buf ? sb.buf : "", "<script")) abort(); /* a value escaped its escaping */
        strbuf_free(&sb);
        json_decref(doc);
    }
    pagerender_form_free(&f);
#else
#error "define one FUZZ_<TARGET>"
#endif
    return 0;
}
