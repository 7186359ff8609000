/*
 * test_outbox.c - the outbox plugin, loaded with dlopen the way the daemon
 * loads it: ABI fields, settings validation through a capturing host,
 * files written and read back with jansson, atomicity (no temporary file
 * left), refusals, and concurrent deliveries on one instance.
 */
#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <ftw.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>

#include "herald_channel.h"

#ifndef OUTBOX_SO
#error "OUTBOX_SO must name build/channels/outbox.so"
#endif

/* ---- a host that records setting errors --------------------------------- */

#define MAX_ERRORS 16
static struct {
    size_t index[MAX_ERRORS];
    char text[MAX_ERRORS][256];
    int n;
} errs;

static void host_log(void *ctx, enum herald_log_level level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void host_log(void *ctx, enum herald_log_level level, const char *fmt, ...)
{
    (void)ctx;
    (void)level;
    (void)fmt;
}

static void host_setting_error(void *ctx, size_t index, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void host_setting_error(void *ctx, size_t index, const char *fmt, ...)
{
    (void)ctx;
    if (errs.n == MAX_ERRORS) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(errs.text[errs.n], sizeof(errs.text[0]), fmt, ap);
    va_end(ap);
    errs.index[errs.n++] = index;
}

/* A missing key is recorded without an index, its name first. */
static void host_setting_missing(void *ctx, const char *key, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void host_setting_missing(void *ctx, const char *key, const char *fmt, ...)
{
    (void)ctx;
    if (errs.n == MAX_ERRORS) return;
    char msg[200];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    snprintf(errs.text[errs.n], sizeof(errs.text[0]), "%s: %s", key, msg);
    errs.index[errs.n++] = HERALD_SETTING_NONE;
}

static int64_t host_now_ms(void *ctx)
{
    (void)ctx;
    return 0;
}

static struct herald_host host = {
    .abi_version = HERALD_CHANNEL_ABI_VERSION,
    .size = sizeof(struct herald_host),
    .log = host_log,
    .setting_error = host_setting_error,
    .now_ms = host_now_ms,
    .setting_missing = host_setting_missing,
};

/* ---- fixture ------------------------------------------------------------------ */

struct fx {
    void *dl;
    const struct herald_channel_plugin *api;
    char tmp[64];
};

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static int setup(void **state)
{
    struct fx *fx = calloc(1, sizeof(*fx));
    fx->dl = dlopen(OUTBOX_SO, RTLD_NOW | RTLD_LOCAL);
    if (!fx->dl) {
        fprintf(stderr, "dlopen %s: %s\n", OUTBOX_SO, dlerror());
        free(fx);
        return -1;
    }
    herald_channel_entry_fn entry = (herald_channel_entry_fn)dlsym(fx->dl, HERALD_CHANNEL_SYMBOL);
    if (!entry) return -1;
    fx->api = entry();
    snprintf(fx->tmp, sizeof(fx->tmp), "/tmp/herald-outbox-XXXXXX");
    if (!mkdtemp(fx->tmp)) return -1;
    memset(&errs, 0, sizeof(errs));
    host.base_dir = fx->tmp;
    *state = fx;
    return 0;
}

static int teardown(void **state)
{
    struct fx *fx = *state;
    nftw(fx->tmp, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    dlclose(fx->dl);
    free(fx);
    return 0;
}

static char *path_of(const struct fx *fx, const char *rel)
{
    size_t n = strlen(fx->tmp) + strlen(rel) + 2;
    char *p = malloc(n);
    snprintf(p, n, "%s/%s", fx->tmp, rel);
    return p;
}

static int create(const struct fx *fx, const struct herald_setting *s, size_t n, void **inst)
{
    memset(&errs, 0, sizeof(errs));
    *inst = NULL;
    return fx->api->create(&host, s, n, inst);
}

/* Entries of dir whose name starts with '.' (temporary files), besides . and .. */
static int dot_files(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d) return -1;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        if (e->d_name[0] == '.' && strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0) n++;
    closedir(d);
    return n;
}

static int count_files(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d) return -1;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        if (e->d_name[0] != '.') n++;
    closedir(d);
    return n;
}

/* ---- tests ------------------------------------------------------------------------ */

static void test_abi(void **state)
{
    struct fx *fx = *state;
    const struct herald_channel_plugin *api = fx->api;
    assert_non_null(api);
    assert_int_equal(api->abi_version, HERALD_CHANNEL_ABI_VERSION);
    assert_int_equal(api->size, sizeof(struct herald_channel_plugin));
    assert_string_equal(api->name, "outbox");
    assert_string_equal(api->channels, "email,sms");
    assert_non_null(api->create);
    assert_non_null(api->destroy);
    assert_non_null(api->deliver);
    assert_null(api->prepare);
    assert_null(api->interpret);
    assert_null(api->release);
}

static void test_settings(void **state)
{
    struct fx *fx = *state;
    void *inst;
    struct stat st;

    /* An absolute path, created with its parents. */
    char *abs = path_of(fx, "a/b/c");
    struct herald_setting good[] = {{"dir", abs}};
    assert_int_equal(create(fx, good, 1, &inst), 0);
    assert_non_null(inst);
    assert_int_equal(errs.n, 0);
    assert_int_equal(stat(abs, &st), 0);
    assert_true(S_ISDIR(st.st_mode));
    assert_int_equal(dot_files(abs), 0); /* the writability probe is gone */
    fx->api->destroy(inst);
    /* Again, now that it exists. */
    assert_int_equal(create(fx, good, 1, &inst), 0);
    fx->api->destroy(inst);

    /* A relative path resolves against the config file's directory. */
    struct herald_setting rel[] = {{"dir", "rel/out"}};
    assert_int_equal(create(fx, rel, 1, &inst), 0);
    fx->api->destroy(inst);
    char *relp = path_of(fx, "rel/out");
    assert_int_equal(stat(relp, &st), 0);
    free(relp);

    /* Unknown keys are refused with their index. */
    struct herald_setting unknown[] = {{"dir", abs}, {"colour", "blue"}};
    assert_int_equal(create(fx, unknown, 2, &inst), -1);
    assert_null(inst);
    assert_int_equal(errs.n, 1);
    assert_int_equal(errs.index[0], 1);

    /* A missing dir is reported without an index (and an unknown key with one). */
    assert_int_equal(create(fx, NULL, 0, &inst), -1);
    assert_int_equal(errs.n, 1);
    assert_int_equal(errs.index[0], HERALD_SETTING_NONE);
    assert_non_null(strstr(errs.text[0], "dir"));
    struct herald_setting only_unknown[] = {{"directory", abs}};
    assert_int_equal(create(fx, only_unknown, 1, &inst), -1);
    assert_int_equal(errs.n, 2);
    assert_int_equal(errs.index[0], 0);
    assert_int_equal(errs.index[1], HERALD_SETTING_NONE);

    /* Empty, given twice, not a directory. */
    struct herald_setting empty[] = {{"dir", ""}};
    assert_int_equal(create(fx, empty, 1, &inst), -1);
    assert_int_equal(errs.n, 1);
    assert_int_equal(errs.index[0], 0);
    struct herald_setting twice[] = {{"dir", abs}, {"dir", abs}};
    assert_int_equal(create(fx, twice, 2, &inst), -1);
    assert_int_equal(errs.n, 1);
    assert_int_equal(errs.index[0], 1);
    char *file = path_of(fx, "plain-file");
    FILE *fp = fopen(file, "w");
    assert_non_null(fp);
    fclose(fp);
    struct herald_setting notdir[] = {{"dir", file}};
    assert_int_equal(create(fx, notdir, 1, &inst), -1);
    assert_int_equal(errs.n, 1);
    assert_int_equal(errs.index[0], 0);
    char *under = path_of(fx, "plain-file/sub");
    struct herald_setting under_file[] = {{"dir", under}};
    assert_int_equal(create(fx, under_file, 1, &inst), -1);
    assert_int_equal(errs.index[0], 0);

    /* A directory the daemon may not write to (meaningless as root). */
    if (geteuid() != 0) {
        char *ro = path_of(fx, "ro");
        assert_int_equal(mkdir(ro, 0500), 0);
        struct herald_setting ros[] = {{"dir", ro}};
        assert_int_equal(create(fx, ros, 1, &inst), -1);
        assert_int_equal(errs.n, 1);
        assert_non_null(strstr(errs.text[0], "not writable"));
        chmod(ro, 0700);
        free(ro);
    }
    free(under);
    free(file);
    free(abs);
}

static void *open_instance(struct fx *fx, const char *rel)
{
    char *dir = path_of(fx, rel);
    struct herald_setting s[] = {{"dir", dir}};
    void *inst = NULL;
    assert_int_equal(create(fx, s, 1, &inst), 0);
    free(dir);
    return inst;
}

static json_t *load(struct fx *fx, const char *rel)
{
    char *p = path_of(fx, rel);
    json_error_t e;
    json_t *o = json_load_file(p, 0, &e);
    if (!o) fprintf(stderr, "%s: %s\n", p, e.text);
    free(p);
    return o;
}

#define assert_field(o, k, v) assert_string_equal(json_string_value(json_object_get(o, k)), v)

static void test_deliver(void **state)
{
    struct fx *fx = *state;
    void *inst = open_instance(fx, "out");
    struct herald_verdict v;

    struct herald_message email = {
        .campaign = "spring-sale",
        .recipient = "u1",
        .channel = "email",
        .topic = "promotions",
        .to = "ann@example.com",
        .subject = "Hi Ann",
        .text = "Hello \"Ann\"\nbye",
        .html = "<p>Hello Ann</p>",
        .unsubscribe_url = "https://x.example/u/tok",
        .preferences_url = "https://x.example/p/tok",
        .idempotency_key = "spring-sale:1700000000000-0:u1",
    };
    fx->api->deliver(inst, &email, &v);
    assert_int_equal(v.kind, HERALD_VERDICT_ACCEPTED);
    assert_string_equal(v.provider_id, "outbox:spring-sale/u1.email");

    struct herald_message sms = {
        .campaign = "spring-sale",
        .recipient = "u2",
        .channel = "sms",
        .topic = "promotions",
        .to = "+15551234567",
        .text = "Hi Bo, 20% off",
    };
    fx->api->deliver(inst, &sms, &v);
    assert_int_equal(v.kind, HERALD_VERDICT_ACCEPTED);
    assert_string_equal(v.provider_id, "outbox:spring-sale/u2.sms");

    json_t *o = load(fx, "out/spring-sale/u1.email.json");
    assert_non_null(o);
    assert_field(o, "campaign", "spring-sale");
    assert_field(o, "recipient", "u1");
    assert_field(o, "channel", "email");
    assert_field(o, "topic", "promotions");
    assert_field(o, "to", "ann@example.com");
    assert_field(o, "subject", "Hi Ann");
    assert_field(o, "text", "Hello \"Ann\"\nbye");
    assert_field(o, "html", "<p>Hello Ann</p>");
    assert_field(o, "unsubscribe_url", "https://x.example/u/tok");
    assert_field(o, "preferences_url", "https://x.example/p/tok");
    assert_field(o, "idempotency_key", "spring-sale:1700000000000-0:u1");
    assert_int_equal(json_object_size(o), 11);
    json_decref(o);

    o = load(fx, "out/spring-sale/u2.sms.json");
    assert_non_null(o);
    assert_field(o, "channel", "sms");
    assert_field(o, "to", "+15551234567");
    assert_field(o, "text", "Hi Bo, 20% off");
    assert_null(json_object_get(o, "subject"));
    assert_null(json_object_get(o, "html"));
    assert_null(json_object_get(o, "unsubscribe_url"));
    assert_null(json_object_get(o, "preferences_url"));
    assert_null(json_object_get(o, "idempotency_key")); /* a message without a key: none written */
    json_decref(o);

    /* An email without html has no html field. */
    email.recipient = "u3";
    email.html = NULL;
    fx->api->deliver(inst, &email, &v);
    assert_int_equal(v.kind, HERALD_VERDICT_ACCEPTED);
    o = load(fx, "out/spring-sale/u3.email.json");
    assert_non_null(o);
    assert_null(json_object_get(o, "html"));
    assert_field(o, "subject", "Hi Ann");
    json_decref(o);

    /* Written again: replaced whole. Files are private to the daemon's user. */
    email.recipient = "u1";
    email.text = "second";
    fx->api->deliver(inst, &email, &v);
    assert_int_equal(v.kind, HERALD_VERDICT_ACCEPTED);
    o = load(fx, "out/spring-sale/u1.email.json");
    assert_field(o, "text", "second");
    json_decref(o);
    char *cdir = path_of(fx, "out/spring-sale");
    assert_int_equal(count_files(cdir), 3);
    assert_int_equal(dot_files(cdir), 0);
    char *f1 = path_of(fx, "out/spring-sale/u1.email.json");
    struct stat st;
    assert_int_equal(stat(f1, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    free(f1);

    /* Ids that could leave the directory are refused, and nothing is written. */
    const char *bad_recipients[] = {"../evil", "a/b", ".hidden", "..", "", "/abs"};
    for (size_t i = 0; i < sizeof(bad_recipients) / sizeof(bad_recipients[0]); i++) {
        struct herald_message m = sms;
        m.recipient = bad_recipients[i];
        fx->api->deliver(inst, &m, &v);
        assert_int_equal(v.kind, HERALD_VERDICT_REJECTED);
        assert_string_equal(v.reason, "invalid_id");
    }
    const char *bad_campaigns[] = {"..", ".", "x/..", ".git"};
    for (size_t i = 0; i < sizeof(bad_campaigns) / sizeof(bad_campaigns[0]); i++) {
        struct herald_message m = sms;
        m.campaign = bad_campaigns[i];
        fx->api->deliver(inst, &m, &v);
        assert_int_equal(v.kind, HERALD_VERDICT_REJECTED);
        assert_string_equal(v.reason, "invalid_id");
    }
    char *outdir = path_of(fx, "out");
    assert_int_equal(count_files(outdir), 1);
    assert_int_equal(count_files(cdir), 3);

    /* A channel it does not carry; text that is not UTF-8. */
    struct herald_message m = sms;
    m.channel = "push";
    fx->api->deliver(inst, &m, &v);
    assert_int_equal(v.kind, HERALD_VERDICT_REJECTED);
    m = sms;
    m.text = "bad \xff byte";
    fx->api->deliver(inst, &m, &v);
    assert_int_equal(v.kind, HERALD_VERDICT_REJECTED);
    assert_string_equal(v.reason, "invalid_utf8");

    /* An I/O failure: the campaign's directory is a file. */
    char *blocker = path_of(fx, "out/blocked");
    FILE *fp = fopen(blocker, "w");
    assert_non_null(fp);
    fclose(fp);
    m = sms;
    m.campaign = "blocked";
    fx->api->deliver(inst, &m, &v);
    assert_int_equal(v.kind, HERALD_VERDICT_REJECTED);
    assert_true(v.reason[0] != '\0');
    assert_string_equal(v.provider_id, "");
    free(blocker);

    /* The outbox was removed behind the daemon's back: it is recreated. */
    char *gone = path_of(fx, "gone");
    struct herald_setting gs[] = {{"dir", gone}};
    void *inst2;
    assert_int_equal(create(fx, gs, 1, &inst2), 0);
    assert_int_equal(rmdir(gone), 0);
    fx->api->deliver(inst2, &sms, &v);
    assert_int_equal(v.kind, HERALD_VERDICT_ACCEPTED);
    o = load(fx, "gone/spring-sale/u2.sms.json");
    assert_non_null(o);
    json_decref(o);
    fx->api->destroy(inst2);
    free(gone);

    free(outdir);
    free(cdir);
    fx->api->destroy(inst);
}

#define THREADS 8
#define PER_THREAD 60

struct worker {
    const struct herald_channel_plugin *api;
    void *inst;
    int id;
    int accepted;
};

static void *work(void *arg)
{
    struct worker *w = arg;
    for (int i = 0; i < PER_THREAD; i++) {
        char rcpt[64], text[64];
        snprintf(rcpt, sizeof(rcpt), "t%d-%d", w->id, i);
        snprintf(text, sizeof(text), "thread %d message %d", w->id, i);
        struct herald_message m = {.campaign = (i % 2) ? "odd" : "even",
                                   .recipient = rcpt,
                                   .channel = (i % 3) ? "email" : "sms",
                                   .topic = "t",
                                   .to = "x@example.com",
                                   .subject = "s",
                                   .text = text};
        struct herald_verdict v;
        w->api->deliver(w->inst, &m, &v);
        if (v.kind == HERALD_VERDICT_ACCEPTED) w->accepted++;
        /* Everybody also rewrites one shared file. */
        m.campaign = "shared";
        m.recipient = "same";
        m.channel = "email";
        w->api->deliver(w->inst, &m, &v);
        if (v.kind == HERALD_VERDICT_ACCEPTED) w->accepted++;
    }
    return NULL;
}

static void test_concurrent(void **state)
{
    struct fx *fx = *state;
    void *inst = open_instance(fx, "conc");
    pthread_t th[THREADS];
    struct worker w[THREADS];
    for (int i = 0; i < THREADS; i++) {
        w[i] = (struct worker){.api = fx->api, .inst = inst, .id = i};
        assert_int_equal(pthread_create(&th[i], NULL, work, &w[i]), 0);
    }
    for (int i = 0; i < THREADS; i++) {
        pthread_join(th[i], NULL);
        assert_int_equal(w[i].accepted, 2 * PER_THREAD);
    }
    const char *dirs[] = {"conc/odd", "conc/even", "conc/shared"};
    int total = 0;
    for (size_t i = 0; i < 3; i++) {
        char *d = path_of(fx, dirs[i]);
        assert_int_equal(dot_files(d), 0);
        total += count_files(d);
        free(d);
    }
    assert_int_equal(total, THREADS * PER_THREAD + 1);
    /* Every file is whole JSON, the contested one included. */
    char rel[128];
    for (int t = 0; t < THREADS; t++)
        for (int i = 0; i < PER_THREAD; i++) {
            snprintf(rel, sizeof(rel), "conc/%s/t%d-%d.%s.json", (i % 2) ? "odd" : "even", t, i,
                     (i % 3) ? "email" : "sms");
            json_t *o = load(fx, rel);
            assert_non_null(o);
            json_decref(o);
        }
    json_t *o = load(fx, "conc/shared/same.email.json");
    assert_non_null(o);
    assert_non_null(strstr(json_string_value(json_object_get(o, "text")), "message"));
    json_decref(o);
    fx->api->destroy(inst);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_abi, setup, teardown),
        cmocka_unit_test_setup_teardown(test_settings, setup, teardown),
        cmocka_unit_test_setup_teardown(test_deliver, setup, teardown),
        cmocka_unit_test_setup_teardown(test_concurrent, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
