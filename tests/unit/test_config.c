/*
 * test_config.c - the config schema: values, defaults, every error with its
 * file:line, --set overrides, and herald.example.conf kept in sync with the
 * schema (every key documented, and the example itself valid).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"

static char tmpdir[256];

static const char *write_conf(const char *name, const char *text)
{
    static char path[512];
    snprintf(path, sizeof(path), "%s/%s", tmpdir, name);
    FILE *fp = fopen(path, "w");
    assert_non_null(fp);
    fputs(text, fp);
    fclose(fp);
    return path;
}

#define GOOD_ADMIN "[admin]\ntoken = 0123456789abcdef0\nlink_secret = 0123456789abcdef1\n"
#define GOOD_TAIL "[channel email]\nproviders = box\n[provider box]\nplugin = outbox\ndir = out\n"

/* Loads text; returns the error count and leaves the errors in *errs. */
static int load_text(const char *text, const char *const *ov, size_t nov, struct config *cfg, struct strbuf *errs)
{
    const char *path = write_conf("t.conf", text);
    strbuf_init(errs);
    return config_load(path, ov, nov, cfg, errs);
}

static void expect_error(const char *text, const char *needle)
{
    struct config cfg;
    struct strbuf errs;
    int n = load_text(text, NULL, 0, &cfg, &errs);
    if (n == 0 || !errs.buf || !strstr(errs.buf, needle)) {
        fprintf(stderr, "expected an error containing \"%s\", got:\n%s\n", needle, errs.buf ? errs.buf : "(none)");
        fail();
    }
    strbuf_free(&errs);
    config_free(&cfg);
}

static void test_good_file_and_defaults(void **state)
{
    (void)state;
    struct config cfg;
    struct strbuf errs;
    int n = load_text("[daemon]\ndrain_timeout = 1500ms\n[redis]\nurl = redis://:pw@10.1.2.3:6380/2\n" GOOD_ADMIN
                      "listen = [::1]:9000\n" GOOD_TAIL,
                      NULL, 0, &cfg, &errs);
    assert_int_equal(n, 0);
    assert_int_equal(cfg.drain_timeout_ms, 1500);
    assert_string_equal(cfg.redis_host, "10.1.2.3");
    assert_int_equal(cfg.redis_port, 6380);
    assert_int_equal(cfg.redis_db, 2);
    assert_string_equal(cfg.redis_password, "pw");
    assert_string_equal(cfg.listen_host, "::1");
    assert_int_equal(cfg.listen_port, 9000);
    assert_string_equal(cfg.prefix, "herald");      /* default */
    assert_int_equal(cfg.batch, 256);                /* default */
    assert_int_equal(cfg.claim_idle_ms, 60000);      /* default */
    /* the default is where `cmake --install` puts the plugins (absolute) */
    assert_string_equal(cfg.plugin_dir, HERALD_PLUGIN_DIR);
    assert_true(cfg.plugin_dir[0] == '/');
    assert_true(cfg.channels[HERALD_CH_EMAIL].present);
    assert_false(cfg.channels[HERALD_CH_SMS].present);
    assert_int_equal(cfg.nproviders, 1);
    assert_string_equal(cfg.providers[0].plugin, "outbox");
    assert_int_equal(cfg.providers[0].nsettings, 1);
    assert_string_equal(cfg.providers[0].settings[0].key, "dir");
    assert_int_equal(cfg.providers[0].setting_lines[0], 13);
    strbuf_free(&errs);
    config_free(&cfg);
}

static void test_errors_have_file_line_section_key(void **state)
{
    (void)state;
    char path[600];
    snprintf(path, sizeof(path), "%s/t.conf", tmpdir);
    char want[700];
    snprintf(want, sizeof(want), "%s:2: [daemon] colour: unknown key", path);
    expect_error("[daemon]\ncolour = blue\n" GOOD_ADMIN GOOD_TAIL, want);
    snprintf(want, sizeof(want), "%s:1: [deamon]: unknown section", path);
    expect_error("[deamon]\nx = 1\n" GOOD_ADMIN GOOD_TAIL, want);
    snprintf(want, sizeof(want), "%s:2: [redis] url: must start with redis://", path);
    expect_error("[redis]\nurl = http://x\n" GOOD_ADMIN GOOD_TAIL, want);
    expect_error("[redis]\nurl = redis://h:99999/0\n" GOOD_ADMIN GOOD_TAIL, "[redis] url: port");
    expect_error("[redis]\nurl = redis://h:1/99\n" GOOD_ADMIN GOOD_TAIL, "[redis] url: database");
    expect_error("[daemon]\ndrain_timeout = soon\n" GOOD_ADMIN GOOD_TAIL, "[daemon] drain_timeout: expected a duration");
    expect_error("[daemon]\nlog_level = loud\n" GOOD_ADMIN GOOD_TAIL, "[daemon] log_level:");
    expect_error("[daemon]\nbatch = 0\n" GOOD_ADMIN GOOD_TAIL, "[daemon] batch: expected a whole number");
    expect_error("[admin]\ntoken = short\nlink_secret = 0123456789abcdef1\n" GOOD_TAIL, "[admin] token: must be at least 16");
    expect_error("[admin]\nlink_secret = 0123456789abcdef1\n" GOOD_TAIL, "[admin] token: missing");
    expect_error(GOOD_ADMIN "listen = nowhere\n" GOOD_TAIL, "[admin] listen: expected host:port");
    expect_error(GOOD_ADMIN "[channel email]\nproviders = ghost\n", "no [provider ghost] section");
    expect_error(GOOD_ADMIN "[channel fax]\nproviders = a\n" GOOD_TAIL, "[channel fax]: unknown channel");
    expect_error(GOOD_ADMIN "[provider box]\ndir = x\n[channel email]\nproviders = box\n", "[provider box] plugin: missing");
    expect_error(GOOD_ADMIN, "nowhere to send");
    snprintf(want, sizeof(want), "%s:4: [admin] token: set twice (first at line 2)", path);
    expect_error(GOOD_ADMIN "token = 0123456789abcdef9\n" GOOD_TAIL, want);
    snprintf(want, sizeof(want), "%s:4: expected 'key = value'", path);
    expect_error(GOOD_ADMIN "just words\n" GOOD_TAIL, want);
    expect_error(GOOD_ADMIN "  indented = 1\n" GOOD_TAIL, "indented line");
}

static void test_all_errors_reported_at_once(void **state)
{
    (void)state;
    struct config cfg;
    struct strbuf errs;
    int n = load_text("[daemon]\ncolour = 1\nlog_level = loud\n[redis]\nurl = nope\n" GOOD_ADMIN GOOD_TAIL, NULL, 0,
                      &cfg, &errs);
    assert_int_equal(n, 3);
    strbuf_free(&errs);
    config_free(&cfg);
}

static void test_overrides(void **state)
{
    (void)state;
    struct config cfg;
    struct strbuf errs;
    const char *ov[] = {"redis.url=redis://127.0.0.1:7000/1", "provider box.dir=/abs/out",
                        "channel email.providers=box"};
    int n = load_text(GOOD_ADMIN GOOD_TAIL, ov, 3, &cfg, &errs);
    assert_int_equal(n, 0);
    assert_int_equal(cfg.redis_port, 7000);
    assert_int_equal(cfg.redis_db, 1);
    assert_string_equal(cfg.providers[0].settings[0].value, "/abs/out");
    strbuf_free(&errs);
    config_free(&cfg);

    const char *bad[] = {"redis.url=ftp://x"};
    n = load_text(GOOD_ADMIN GOOD_TAIL, bad, 1, &cfg, &errs);
    assert_int_equal(n, 1);
    assert_non_null(strstr(errs.buf, "--set: [redis] url:"));
    strbuf_free(&errs);
    config_free(&cfg);

    const char *junk[] = {"novalue"};
    n = load_text(GOOD_ADMIN GOOD_TAIL, junk, 1, &cfg, &errs);
    assert_int_equal(n, 1);
    strbuf_free(&errs);
    config_free(&cfg);
}

static void test_durations(void **state)
{
    (void)state;
    struct { const char *s; int64_t ms; int ok; } cases[] = {
        {"10s", 10000, 1}, {"500ms", 500, 1}, {"5m", 300000, 1}, {"2h", 7200000, 1}, {"1d", 86400000, 1},
        {"7", 7000, 1}, {"", 0, 0}, {"-1s", 0, 0}, {"1w", 0, 0}, {"s", 0, 0}, {"99999999999999999999d", 0, 0},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        int64_t ms = 0;
        int rc = config_parse_duration(cases[i].s, &ms);
        assert_int_equal(rc == 0, cases[i].ok);
        if (cases[i].ok) assert_int_equal(ms, cases[i].ms);
    }
}

/* give_up_after: 1h by default, 0 (until the campaign expires) or 1s..30d,
 * and never passed to the plugin. */
static void test_give_up_after(void **state)
{
    (void)state;
    struct config cfg;
    struct strbuf errs;
    assert_int_equal(load_text(GOOD_ADMIN GOOD_TAIL, NULL, 0, &cfg, &errs), 0);
    assert_int_equal(cfg.providers[0].give_up_after_ms, 3600000);
    strbuf_free(&errs);
    config_free(&cfg);
    assert_int_equal(load_text(GOOD_ADMIN GOOD_TAIL "give_up_after = 0\n", NULL, 0, &cfg, &errs), 0);
    assert_int_equal(cfg.providers[0].give_up_after_ms, 0);
    assert_int_equal(cfg.providers[0].nsettings, 1); /* only dir reaches the plugin */
    strbuf_free(&errs);
    config_free(&cfg);
    assert_int_equal(load_text(GOOD_ADMIN GOOD_TAIL "give_up_after = 90s\n", NULL, 0, &cfg, &errs), 0);
    assert_int_equal(cfg.providers[0].give_up_after_ms, 90000);
    strbuf_free(&errs);
    config_free(&cfg);
    expect_error(GOOD_ADMIN GOOD_TAIL "give_up_after = 500ms\n", "[provider box] give_up_after: expected 0");
    expect_error(GOOD_ADMIN GOOD_TAIL "give_up_after = 31d\n", "[provider box] give_up_after: expected 0");
    expect_error(GOOD_ADMIN GOOD_TAIL "give_up_after = never\n", "[provider box] give_up_after: expected 0");
}

/* [public] and the listeners' limits: defaults, values, errors, and the
 * deprecated [admin] public_url. */
static void test_listeners(void **state)
{
    (void)state;
    struct config cfg;
    struct strbuf errs;
    /* Defaults: no public listener (the admin one serves its routes). */
    assert_int_equal(load_text(GOOD_ADMIN GOOD_TAIL, NULL, 0, &cfg, &errs), 0);
    assert_null(cfg.public_listen);
    assert_int_equal(cfg.admin_http.max_connections, 256);
    assert_int_equal(cfg.public_http.max_connections_per_client, 32);
    assert_int_equal(cfg.public_http.header_timeout_ms, 10000);
    assert_int_equal(cfg.public_http.body_timeout_ms, 30000);
    assert_int_equal(cfg.admin_http.idle_timeout_ms, 30000);
    assert_int_equal(cfg.admin_http.max_header_bytes, 16 * 1024);
    assert_int_equal(cfg.public_http.max_body_bytes, 64 * 1024);
    assert_false(cfg.public_url_deprecated);
    strbuf_free(&errs);
    config_free(&cfg);

    assert_int_equal(load_text(GOOD_ADMIN "max_connections = 10\nidle_timeout = 2s\n"
                                          "[public]\nlisten = 0.0.0.0:8080\npublic_url = https://p.example/\n"
                                          "max_connections_per_client = 4\nmax_body_size = 1m\nmax_header_size = 8k\n"
                                          "header_timeout = 500ms\n" GOOD_TAIL,
                               NULL, 0, &cfg, &errs),
                     0);
    assert_int_equal(cfg.admin_http.max_connections, 10);
    assert_int_equal(cfg.admin_http.idle_timeout_ms, 2000);
    assert_int_equal(cfg.admin_http.max_connections_per_client, 32); /* [public]'s is its own */
    assert_string_equal(cfg.public_host, "0.0.0.0");
    assert_int_equal(cfg.public_port, 8080);
    assert_string_equal(cfg.public_url, "https://p.example");
    assert_int_equal(cfg.public_http.max_connections_per_client, 4);
    assert_int_equal(cfg.public_http.max_body_bytes, 1024 * 1024);
    assert_int_equal(cfg.public_http.max_header_bytes, 8 * 1024);
    assert_int_equal(cfg.public_http.header_timeout_ms, 500);
    strbuf_free(&errs);
    config_free(&cfg);

    /* The old name still works, and says so. */
    assert_int_equal(load_text(GOOD_ADMIN "public_url = https://old.example\n" GOOD_TAIL, NULL, 0, &cfg, &errs), 0);
    assert_string_equal(cfg.public_url, "https://old.example");
    assert_true(cfg.public_url_deprecated);
    strbuf_free(&errs);
    config_free(&cfg);
    const char *ov[] = {"admin.public_url=https://set.example"};
    assert_int_equal(load_text(GOOD_ADMIN GOOD_TAIL, ov, 1, &cfg, &errs), 0);
    assert_string_equal(cfg.public_url, "https://set.example");
    strbuf_free(&errs);
    config_free(&cfg);

    expect_error(GOOD_ADMIN "public_url = https://a.example\n[public]\npublic_url = https://b.example\n" GOOD_TAIL,
                 "t.conf:4: [admin] public_url: deprecated name of [public] public_url, which is set too");
    expect_error(GOOD_ADMIN "listen = 127.0.0.1:9000\n[public]\nlisten = 127.0.0.1:9000\n" GOOD_TAIL,
                 "[public] listen: the same address as [admin] listen");
    expect_error("[public]\nlisten = nowhere\n" GOOD_ADMIN GOOD_TAIL, "t.conf:2: [public] listen:");
    expect_error(GOOD_ADMIN "max_connections = 0\n" GOOD_TAIL, "[admin] max_connections: expected a whole number from 1");
    expect_error("[public]\nmax_connections_per_client = lots\n" GOOD_ADMIN GOOD_TAIL,
                 "t.conf:2: [public] max_connections_per_client: expected a whole number");
    expect_error(GOOD_ADMIN "header_timeout = 50ms\n" GOOD_TAIL, "[admin] header_timeout: expected a duration from 100ms to 1h");
    expect_error("[public]\nbody_timeout = 2h\n" GOOD_ADMIN GOOD_TAIL, "[public] body_timeout: expected a duration");
    expect_error(GOOD_ADMIN "max_body_size = 100m\n" GOOD_TAIL, "[admin] max_body_size: expected a size from 1k to 64m");
    expect_error(GOOD_ADMIN "max_header_size = 12q\n" GOOD_TAIL, "[admin] max_header_size: expected a size from 1k to 1m");
    expect_error("[public]\ntoken = 0123456789abcdef0\n" GOOD_ADMIN GOOD_TAIL, "t.conf:2: [public] token: unknown key");
}

/* The example file documents every key of the schema, and is itself valid. */
static void test_example_in_sync(void **state)
{
    (void)state;
    FILE *fp = fopen(EXAMPLE_CONF, "r");
    assert_non_null(fp);
    char line[1024], section[128] = "";
    bool found[128] = {0};
    size_t nkeys = 0;
    while (config_schema[nkeys].section) nkeys++;
    assert_true(nkeys < 128);
    while (fgets(line, sizeof(line), fp)) {
        char key[128];
        if (sscanf(line, "[%127[^]]]", section) == 1) continue;
        if (sscanf(line, "%127[a-z_] =", key) != 1) continue;
        for (size_t i = 0; i < nkeys; i++)
            if (strcmp(config_schema[i].section, section) == 0 && strcmp(config_schema[i].key, key) == 0)
                found[i] = true;
    }
    fclose(fp);
    for (size_t i = 0; i < nkeys; i++) {
        if (!found[i]) fprintf(stderr, "herald.example.conf lacks [%s] %s\n", config_schema[i].section, config_schema[i].key);
        assert_true(found[i]);
    }
    /* The daemon's provider keys are shown in the comment above the first
     * [provider NAME], one "#   key = value" line each. */
    fp = fopen(EXAMPLE_CONF, "r");
    assert_non_null(fp);
    bool pfound[16] = {0};
    size_t npkeys = 0;
    while (config_provider_schema[npkeys].key) npkeys++;
    assert_true(npkeys < 16);
    while (fgets(line, sizeof(line), fp)) {
        char key[128], eq[2];
        if (sscanf(line, "#   %127[a-z_] %1[=]", key, eq) != 2) continue;
        for (size_t i = 0; i < npkeys; i++)
            if (strcmp(config_provider_schema[i].key, key) == 0) pfound[i] = true;
    }
    fclose(fp);
    for (size_t i = 0; i < npkeys; i++) {
        if (!pfound[i]) fprintf(stderr, "herald.example.conf lacks [provider NAME] %s\n", config_provider_schema[i].key);
        assert_true(pfound[i]);
    }
    struct config cfg;
    struct strbuf errs;
    strbuf_init(&errs);
    int n = config_load(EXAMPLE_CONF, NULL, 0, &cfg, &errs);
    if (n) fprintf(stderr, "%s", errs.buf);
    assert_int_equal(n, 0);
    strbuf_free(&errs);
    config_free(&cfg);
}

int main(void)
{
    snprintf(tmpdir, sizeof(tmpdir), "/tmp/herald-test-config-XXXXXX");
    if (!mkdtemp(tmpdir)) return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_good_file_and_defaults),
        cmocka_unit_test(test_errors_have_file_line_section_key),
        cmocka_unit_test(test_all_errors_reported_at_once),
        cmocka_unit_test(test_overrides),
        cmocka_unit_test(test_durations),
        cmocka_unit_test(test_give_up_after),
        cmocka_unit_test(test_listeners),
        cmocka_unit_test(test_example_in_sync),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    char path[600];
    snprintf(path, sizeof(path), "%s/t.conf", tmpdir);
    unlink(path);
    rmdir(tmpdir);
    return rc;
}
