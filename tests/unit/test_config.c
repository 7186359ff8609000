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
#include <sys/stat.h>
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
    chmod(path, 0600); /* it holds secrets: herald refuses it readable by others */
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
    assert_int_equal(cfg.max_jobs, 4);               /* default */
    assert_int_equal(cfg.slice, 0);                  /* default: never */
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
    expect_error("[daemon]\nmax_jobs = 0\n" GOOD_ADMIN GOOD_TAIL, "[daemon] max_jobs: expected a whole number from 1 to 64");
    expect_error("[daemon]\nmax_jobs = 65\n" GOOD_ADMIN GOOD_TAIL, "[daemon] max_jobs: expected a whole number from 1 to 64");
    expect_error("[daemon]\nmax_jobs = two\n" GOOD_ADMIN GOOD_TAIL, "[daemon] max_jobs: expected a whole number from 1 to 64");
    expect_error("[daemon]\nslice = 5\n" GOOD_ADMIN GOOD_TAIL, "[daemon] slice: expected 0 (never) or a whole number from 10 to 10000");
    expect_error("[daemon]\nslice = 10001\n" GOOD_ADMIN GOOD_TAIL, "[daemon] slice: expected 0 (never)");
    expect_error("[daemon]\nslice = -1\n" GOOD_ADMIN GOOD_TAIL, "[daemon] slice: expected 0 (never)");
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

/* [topic NAME], [terms CHANNEL] and [public]'s page keys: texts per language. */
static void test_page_texts(void **state)
{
    (void)state;
    struct config cfg;
    struct strbuf errs;
    int n = load_text(GOOD_ADMIN "[public]\norganisation = Shop\nprivacy_url = https://s.example/p\ncontact = a@s.example\n"
                      "default_locale = de\n"
                      "[topic news]\nname = News\nname.ko = 소식\nname.pt-BR = Notícias\ndescription.de = Neues\n"
                      "[terms sms]\nversion = v7\ntext.de = Ich stimme zu.\ntext.en = I agree.\n" GOOD_TAIL,
                      NULL, 0, &cfg, &errs);
    if (n) fprintf(stderr, "%s", errs.buf);
    assert_int_equal(n, 0);
    assert_string_equal(cfg.organisation, "Shop");
    assert_string_equal(cfg.privacy_url, "https://s.example/p");
    const struct config_topic *t = config_topic_find(&cfg, "news");
    assert_non_null(t);
    assert_null(config_topic_find(&cfg, "other"));
    assert_string_equal(config_text_for(&t->title, "ko-KR", "de"), "소식");
    assert_string_equal(config_text_for(&t->title, "pt-br", "de"), "Notícias");
    assert_string_equal(config_text_for(&t->title, "fr", "de"), "News"); /* untagged */
    assert_string_equal(config_text_for(&t->description, "fr", "de"), "Neues"); /* the default locale's */
    assert_null(config_text_for(&t->description, "fr", "en"));
    assert_true(cfg.terms[HERALD_CH_SMS].present);
    assert_false(cfg.terms[HERALD_CH_EMAIL].present);
    assert_string_equal(cfg.terms[HERALD_CH_SMS].version, "v7");
    assert_string_equal(config_text_for(&cfg.terms[HERALD_CH_SMS].text, "en-GB", "de"), "I agree.");
    strbuf_free(&errs);
    config_free(&cfg);

    expect_error(GOOD_ADMIN "[topic Bad Topic]\nname = x\n" GOOD_TAIL, "[topic Bad Topic]: not a topic name");
    expect_error(GOOD_ADMIN "[topic news]\ntitle = x\n" GOOD_TAIL, "[topic news] title: unknown key (expected name");
    expect_error(GOOD_ADMIN "[topic news]\nname.k o = x\n" GOOD_TAIL, "expected name or name.<locale>");
    expect_error(GOOD_ADMIN "[topic news]\nname =\n" GOOD_TAIL, "[topic news] name: must not be empty");
    expect_error(GOOD_ADMIN "[terms fax]\nversion = 1\n" GOOD_TAIL, "[terms fax]: unknown channel");
    expect_error(GOOD_ADMIN "[terms email]\ntext = I agree.\n" GOOD_TAIL, "[terms email] version: missing");
    expect_error(GOOD_ADMIN "[terms email]\nversion = 1\ntext.ko = 동의\n" GOOD_TAIL,
                 "[terms email] text: missing: the terms (text, or text.en");
    expect_error(GOOD_ADMIN "[public]\nprivacy_url = www.example.com\n" GOOD_TAIL, "[public] privacy_url: must start with https://");
    expect_error(GOOD_ADMIN "[public]\ndefault_locale = ../x\n" GOOD_TAIL, "[public] default_locale: expected a language tag");
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

/* shared: yes by default, yes or no, anything else an error. */
static void test_shared(void **state)
{
    (void)state;
    struct config cfg;
    struct strbuf errs;
    assert_int_equal(load_text(GOOD_ADMIN GOOD_TAIL, NULL, 0, &cfg, &errs), 0);
    assert_true(cfg.providers[0].shared);
    config_free(&cfg);
    strbuf_free(&errs);
    assert_int_equal(load_text(GOOD_ADMIN GOOD_TAIL "shared = no\n", NULL, 0, &cfg, &errs), 0);
    assert_false(cfg.providers[0].shared);
    config_free(&cfg);
    strbuf_free(&errs);
    expect_error(GOOD_ADMIN GOOD_TAIL "shared = maybe\n", "[provider box] shared: expected yes or no");
}

/* A good file whose [provider box] gets the extra lines, loaded without an
 * error; its provider (config_free(cfg) after). */
static const struct config_provider *load_box(const char *extra, struct config *cfg)
{
    char text[1024];
    snprintf(text, sizeof(text), "%s%s%s", GOOD_ADMIN, GOOD_TAIL, extra);
    struct strbuf errs;
    assert_int_equal(load_text(text, NULL, 0, cfg, &errs), 0);
    strbuf_free(&errs);
    return &cfg->providers[0];
}

/* give_up_after: 1h by default, 0 (until the campaign expires) or 1s..30d,
 * and never passed to the plugin. */
static void test_give_up_after(void **state)
{
    (void)state;
    struct config cfg;
    assert_int_equal(load_box("", &cfg)->give_up_after_ms, 3600000);
    config_free(&cfg);
    const struct config_provider *p = load_box("give_up_after = 0\n", &cfg);
    assert_int_equal(p->give_up_after_ms, 0);
    assert_int_equal(p->nsettings, 1); /* only dir reaches the plugin */
    config_free(&cfg);
    assert_int_equal(load_box("give_up_after = 90s\n", &cfg)->give_up_after_ms, 90000);
    config_free(&cfg);
    expect_error(GOOD_ADMIN GOOD_TAIL "give_up_after = 500ms\n", "[provider box] give_up_after: expected 0");
    expect_error(GOOD_ADMIN GOOD_TAIL "give_up_after = 31d\n", "[provider box] give_up_after: expected 0");
    expect_error(GOOD_ADMIN GOOD_TAIL "give_up_after = never\n", "[provider box] give_up_after: expected 0");
}

/* lookahead: the concurrency by default (-1, whatever the concurrency is
 * set to), else 0..4096, and never passed to the plugin. */
static void test_lookahead(void **state)
{
    (void)state;
    struct config cfg;
    assert_int_equal(load_box("", &cfg)->lookahead, -1);
    config_free(&cfg);
    const struct config_provider *p = load_box("lookahead = 0\n", &cfg);
    assert_int_equal(p->lookahead, 0);
    assert_int_equal(p->nsettings, 1); /* only dir reaches the plugin */
    config_free(&cfg);
    assert_int_equal(load_box("lookahead = 4096\n", &cfg)->lookahead, 4096);
    config_free(&cfg);
    const char *want = "[provider box] lookahead: expected a whole number from 0 to 4096";
    expect_error(GOOD_ADMIN GOOD_TAIL "lookahead = 4097\n", want);
    expect_error(GOOD_ADMIN GOOD_TAIL "lookahead = -1\n", want);
    expect_error(GOOD_ADMIN GOOD_TAIL "lookahead = some\n", want);
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
    /* [events]: a url needs its signing secret; both are checked. */
    expect_error("[events]\nurl = http://127.0.0.1:9/e\n" GOOD_ADMIN GOOD_TAIL,
                 "t.conf:1: [events] secret: missing: the events POSTed to url are signed with it");
    expect_error("[events]\nurl = ftp://x/\nsecret = 0123456789abcdef\n" GOOD_ADMIN GOOD_TAIL,
                 "t.conf:2: [events] url: must start with https:// or http://, or be empty");
    expect_error("[events]\nurl = http://x/\nsecret = short\n" GOOD_ADMIN GOOD_TAIL,
                 "t.conf:3: [events] secret: must be at least 16 characters");
    expect_error(GOOD_ADMIN "max_connections = 0\n" GOOD_TAIL, "[admin] max_connections: expected a whole number from 1");
    expect_error("[public]\nmax_connections_per_client = lots\n" GOOD_ADMIN GOOD_TAIL,
                 "t.conf:2: [public] max_connections_per_client: expected a whole number");
    expect_error(GOOD_ADMIN "header_timeout = 50ms\n" GOOD_TAIL, "[admin] header_timeout: expected a duration from 100ms to 1h");
    expect_error("[public]\nbody_timeout = 2h\n" GOOD_ADMIN GOOD_TAIL, "[public] body_timeout: expected a duration");
    expect_error(GOOD_ADMIN "max_body_size = 100m\n" GOOD_TAIL, "[admin] max_body_size: expected a size from 1k to 64m");
    expect_error(GOOD_ADMIN "max_header_size = 12q\n" GOOD_TAIL, "[admin] max_header_size: expected a size from 1k to 1m");
    expect_error("[public]\ntoken = 0123456789abcdef0\n" GOOD_ADMIN GOOD_TAIL, "t.conf:2: [public] token: unknown key");
}

/* Writes a file of mode `mode` in tmpdir; returns its path (static per slot). */
static const char *write_file(int slot, const char *name, const char *text, mode_t mode)
{
    static char paths[4][512];
    snprintf(paths[slot], sizeof(paths[slot]), "%s/%s", tmpdir, name);
    FILE *fp = fopen(paths[slot], "w");
    assert_non_null(fp);
    fputs(text, fp);
    fclose(fp);
    assert_int_equal(chmod(paths[slot], mode), 0);
    return paths[slot];
}

static void expect_no_secret(const struct strbuf *errs, const char *secret)
{
    if (errs->buf && strstr(errs->buf, secret)) {
        fprintf(stderr, "an error quotes the secret %s:\n%s\n", secret, errs->buf);
        fail();
    }
}

/* KEY_file: the file's content (one trailing newline dropped) is the value,
 * for the fixed secrets and the plugins' ones; relative to the config. */
static void test_secret_files(void **state)
{
    (void)state;
    write_file(0, "token", "file-token-0123456789\n", 0600);
    write_file(1, "hook", "hook-secret-0123456789\r\n", 0400);
    write_file(2, "redispw", "redis-pw\n", 0600);
    struct config cfg;
    struct strbuf errs;
    int n = load_text("[redis]\nurl = redis://herald@127.0.0.1:6380/0\npassword_file = redispw\n"
                      "[admin]\ntoken_file = token\nlink_secret = 0123456789abcdef1\n"
                      "[channel email]\nproviders = box\n[provider box]\nplugin = webhook\nsecret_file = hook\n",
                      NULL, 0, &cfg, &errs);
    if (n) fprintf(stderr, "%s", errs.buf);
    assert_int_equal(n, 0);
    assert_string_equal(cfg.token, "file-token-0123456789");
    assert_string_equal(cfg.redis_user, "herald");
    assert_string_equal(cfg.redis_password, "redis-pw");
    assert_int_equal(cfg.providers[0].nsettings, 1);
    assert_string_equal(cfg.providers[0].settings[0].key, "secret");
    assert_string_equal(cfg.providers[0].settings[0].value, "hook-secret-0123456789");
    assert_int_equal(cfg.providers[0].setting_lines[0], 11);
    strbuf_free(&errs);
    config_free(&cfg);

    /* --set of one form replaces the file's other form */
    const char *ov[] = {"admin.token=set-token-0123456789"};
    n = load_text("[admin]\ntoken_file = token\nlink_secret = 0123456789abcdef1\n" GOOD_TAIL, ov, 1, &cfg, &errs);
    assert_int_equal(n, 0);
    assert_string_equal(cfg.token, "set-token-0123456789");
    strbuf_free(&errs);
    config_free(&cfg);
    const char *ov2[] = {"admin.token_file=token"};
    n = load_text(GOOD_ADMIN GOOD_TAIL, ov2, 1, &cfg, &errs);
    assert_int_equal(n, 0);
    assert_string_equal(cfg.token, "file-token-0123456789");
    strbuf_free(&errs);
    config_free(&cfg);

    char want[700];
    snprintf(want, sizeof(want), "%s/t.conf:4: [admin] token_file: give token or token_file, not both (token is at line 2)",
             tmpdir);
    expect_error(GOOD_ADMIN "token_file = token\n" GOOD_TAIL, want);
    expect_error("[admin]\ntoken_file = nosuchfile\nlink_secret = 0123456789abcdef1\n" GOOD_TAIL,
                 "[admin] token_file: cannot read");
    expect_error("[admin]\ntoken_file =\nlink_secret = 0123456789abcdef1\n" GOOD_TAIL, "[admin] token_file: must name a file");
    write_file(3, "short", "short\n", 0600);
    expect_error("[admin]\ntoken_file = short\nlink_secret = 0123456789abcdef1\n" GOOD_TAIL,
                 "[admin] token: must be at least 16");
    write_file(3, "twolines", "0123456789abcdef0\nmore\n", 0600);
    expect_error("[admin]\ntoken_file = twolines\nlink_secret = 0123456789abcdef1\n" GOOD_TAIL, "holds more than one line");
    /* a secret file others may read is refused, as ssh refuses such a key */
    write_file(3, "open", "0123456789abcdef0\n", 0644);
    snprintf(want, sizeof(want), "[admin] token_file: permissions 0644 for '%s/open' are too open", tmpdir);
    expect_error("[admin]\ntoken_file = open\nlink_secret = 0123456789abcdef1\n" GOOD_TAIL, want);
    /* group may read only a file of root's (root:herald 0640); nobody may write */
    write_file(3, "open", "0123456789abcdef0\n", 0620);
    expect_error("[admin]\ntoken_file = open\nlink_secret = 0123456789abcdef1\n" GOOD_TAIL, "permissions 0620");
    write_file(3, "open", "0123456789abcdef0\n", 0640);
    n = load_text("[admin]\ntoken_file = open\nlink_secret = 0123456789abcdef1\n" GOOD_TAIL, NULL, 0, &cfg, &errs);
    assert_int_equal(n, geteuid() == 0 ? 0 : 1);
    if (geteuid() != 0) assert_non_null(strstr(errs.buf, "permissions 0640"));
    strbuf_free(&errs);
    config_free(&cfg);
    write_file(3, "open", "0123456789abcdef0\n", 0644);
    /* a failed KEY_file is one error, not also "missing" */
    n = load_text("[admin]\ntoken_file = open\nlink_secret = 0123456789abcdef1\n" GOOD_TAIL, NULL, 0, &cfg, &errs);
    assert_int_equal(n, 1);
    strbuf_free(&errs);
    config_free(&cfg);
    /* _file exists only for secrets */
    expect_error(GOOD_ADMIN "listen_file = x\n" GOOD_TAIL, "[admin] listen_file: unknown key");
    /* the url's password and [redis] password: one place only */
    expect_error("[redis]\nurl = redis://:pw@h:1/0\npassword = other\n" GOOD_ADMIN GOOD_TAIL,
                 "[redis] password: the url has a password too");
    expect_error("[redis]\nurl = redis://herald@h:1/0\n" GOOD_ADMIN GOOD_TAIL, "[redis] url: the user needs a password");
}

/* The config file itself: with a secret in clear, no one else may read it;
 * with every secret in a KEY_file it may be world-readable; never
 * world-writable. */
static void test_config_file_mode(void **state)
{
    (void)state;
    struct config cfg;
    struct strbuf errs;
    const char *path = write_file(0, "open.conf", GOOD_ADMIN GOOD_TAIL, 0644);
    strbuf_init(&errs);
    int n = config_load(path, NULL, 0, &cfg, &errs);
    assert_int_equal(n, 1);
    char want[1200];
    snprintf(want, sizeof(want), "%s:2: [admin] token: permissions 0644 for '%s' are too open", path, path);
    if (!strstr(errs.buf, want)) fprintf(stderr, "got: %s\n", errs.buf);
    assert_non_null(strstr(errs.buf, want));
    strbuf_free(&errs);
    config_free(&cfg);

    /* a password in the url is a secret in clear too */
    path = write_file(0, "open.conf", "[redis]\nurl = redis://:pw@h:1/0\n[admin]\ntoken = 0123456789abcdef0\n", 0600);
    write_file(1, "token", "file-token-0123456789\n", 0600);
    write_file(2, "link", "file-link-0123456789\n", 0600);
    path = write_file(0, "open.conf", "[redis]\nurl = redis://:pw@h:1/0\n[admin]\ntoken_file = token\nlink_secret_file = link\n" GOOD_TAIL, 0644);
    strbuf_init(&errs);
    n = config_load(path, NULL, 0, &cfg, &errs);
    assert_int_equal(n, 1);
    assert_non_null(strstr(errs.buf, ":2: [redis] url: permissions 0644"));
    strbuf_free(&errs);
    config_free(&cfg);

    /* every secret in a file: a world-readable config is fine */
    path = write_file(0, "open.conf", "[admin]\ntoken_file = token\nlink_secret_file = link\n" GOOD_TAIL, 0644);
    strbuf_init(&errs);
    n = config_load(path, NULL, 0, &cfg, &errs);
    if (n) fprintf(stderr, "%s", errs.buf);
    assert_int_equal(n, 0);
    strbuf_free(&errs);
    config_free(&cfg);

    path = write_file(0, "open.conf", "[admin]\ntoken_file = token\nlink_secret_file = link\n" GOOD_TAIL, 0646);
    strbuf_init(&errs);
    n = config_load(path, NULL, 0, &cfg, &errs);
    assert_int_equal(n, 1);
    assert_non_null(strstr(errs.buf, "others may write it"));
    strbuf_free(&errs);
    config_free(&cfg);
    unlink(path);
}

/* No error quotes what --set gave: the argument may be a secret. */
static void test_set_never_echoes(void **state)
{
    (void)state;
    struct config cfg;
    struct strbuf errs;
    const char *ov[] = {"admin.tokenSECRET-1", "SECRET-2", "admin.token=SECRET-3",
                        "redis.url=redis://u:SECRET-4@h:99999/0", "redis.url=redis://u:SECRET-5@/0",
                        "redis.url=redis://u:SECRET-6%zz@h/0", "redis.url=rediss://u:SECRET-7@h/0",
                        "redis.password=SECRET-8"};
    for (size_t i = 0; i < sizeof(ov) / sizeof(ov[0]); i++) {
        const char *one[2] = {ov[i], "redis.url=redis://:pw@h:1/0"}; /* the last: password given twice */
        int n = load_text(GOOD_ADMIN GOOD_TAIL, one, strstr(ov[i], "password") ? 2 : 1, &cfg, &errs);
        assert_int_equal(n, 1);
        char secret[16];
        snprintf(secret, sizeof(secret), "SECRET-%zu", i + 1);
        expect_no_secret(&errs, secret);
        if (i < 2) assert_non_null(strstr(errs.buf, "--set: argument 1 is not SECTION.KEY=VALUE"));
        strbuf_free(&errs);
        config_free(&cfg);
    }
}

static void test_redis_urls(void **state)
{
    (void)state;
    struct config_redis_url u;
    char err[256];
    assert_int_equal(config_parse_redis_url("redis://herald:p%40ss%3Aw@10.0.0.5:6380/3", &u, err, sizeof(err)), 0);
    assert_string_equal(u.user, "herald");
    assert_string_equal(u.password, "p@ss:w");
    assert_string_equal(u.host, "10.0.0.5");
    assert_int_equal(u.port, 6380);
    assert_int_equal(u.db, 3);
    assert_null(u.socket);
    config_redis_url_free(&u);
    assert_int_equal(config_parse_redis_url("redis://:pw@h", &u, err, sizeof(err)), 0);
    assert_null(u.user);
    assert_string_equal(u.password, "pw");
    assert_int_equal(u.port, 6379);
    config_redis_url_free(&u);
    assert_int_equal(config_parse_redis_url("redis://[::1]:6390/1", &u, err, sizeof(err)), 0);
    assert_string_equal(u.host, "::1");
    assert_int_equal(u.port, 6390);
    config_redis_url_free(&u);
    assert_int_equal(config_parse_redis_url("unix:///run/redis/redis.sock", &u, err, sizeof(err)), 0);
    assert_string_equal(u.socket, "/run/redis/redis.sock");
    assert_null(u.host);
    assert_int_equal(u.db, 0);
    config_redis_url_free(&u);
    assert_int_equal(config_parse_redis_url("unix://herald:pw@/run/r.sock?db=4", &u, err, sizeof(err)), 0);
    assert_string_equal(u.socket, "/run/r.sock");
    assert_string_equal(u.user, "herald");
    assert_string_equal(u.password, "pw");
    assert_int_equal(u.db, 4);
    config_redis_url_free(&u);
    const char *bad[][2] = {
        {"unix://run/r.sock", "absolute socket path"},
        {"unix:///r.sock?db=99", "?db=N"},
        {"unix:///r.sock?timeout=1", "?db=N"},
        {"rediss://h:1/0", "TLS"},
        {"redis://u:PW-SECRET@h:0/0", "port"},
        {"redis://u:PW-SECRET@h:1/16", "database"},
        {"redis://u:PW-SECRET%4@h:1/1", "bad %-escape"},
        {"redis://u:@h:1/1", "empty"},
        {"redis://@h:1/1", "nothing before"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        err[0] = '\0';
        assert_int_equal(config_parse_redis_url(bad[i][0], &u, err, sizeof(err)), -HERALD_EINVAL);
        if (!strstr(err, bad[i][1]) || strstr(err, "PW-SECRET")) {
            fprintf(stderr, "%s: %s\n", bad[i][0], err);
            fail();
        }
    }
}

/* --check-config's report: one error per problem, in line order, with a
 * suggestion for a slip of the pen; warnings for what can never apply. */
static void test_report(void **state)
{
    (void)state;
    struct config cfg;
    struct strbuf errs;
    int n = load_text("[daemon]\nlgo_level = info\nurl = x\n" GOOD_ADMIN "[channel email]\nproviders = box\n"
                      "[channel email]\nproviders = box\n[provder x]\n[chanel sms]\n[channel emial]\n"
                      "[provider box]\nplugin = outbox\ndir = out\n",
                      NULL, 0, &cfg, &errs);
    assert_int_equal(n, 6);
    config_sort_report(&errs, cfg.path);
    char want[2000];
    snprintf(want, sizeof(want),
             "%1$s:2: [daemon] lgo_level: unknown key (did you mean log_level?)\n"
             "%1$s:3: [daemon] url: unknown key (it belongs in [redis])\n"
             "%1$s:9: [channel email]: section appears twice (first at line 7)\n"
             "%1$s:11: [provder x]: unknown section (did you mean [provider x]?)\n"
             "%1$s:12: [chanel sms]: unknown section (did you mean [channel sms]?)\n"
             "%1$s:13: [channel emial]: unknown channel \"emial\" (expected email or sms) (did you mean [channel email]?)\n",
             cfg.path);
    assert_string_equal(errs.buf, want);
    strbuf_free(&errs);
    config_free(&cfg);

    n = load_text(GOOD_ADMIN GOOD_TAIL "[provider spare]\nplugin = outbox\ndir = x\n"
                  "[cap day]\nchannel = any\nlimit = 2\nwindow = 24h\n"
                  "[cap hour]\nchannel = email\nlimit = 3\nwindow = 1h\n"
                  "[cap sms]\nchannel = sms\nlimit = 1\nwindow = 1d\n"
                  "[cap week]\nchannel = email\nlimit = 5\nwindow = 7d\ntopics = news\n",
                  NULL, 0, &cfg, &errs);
    assert_int_equal(n, 0);
    assert_int_equal(config_warnings(&cfg, &errs), 4);
    snprintf(want, sizeof(want),
             "%1$s: warning: [privacy] key_file is not set: people's addresses, phone numbers and attributes are "
             "stored in clear in Redis (docs/operations.md, \"Encryption keys\")\n"
             "%1$s:9: warning: [provider spare]: no [channel] lists it, so it is loaded but never used\n"
             "%1$s:16: warning: [cap hour]: [cap day] (line 12) always blocks first, so this cap never applies\n"
             "%1$s:20: warning: [cap sms]: it counts sms, which no [channel sms] section sends: it never applies\n",
             cfg.path);
    config_sort_report(&errs, cfg.path);
    assert_string_equal(errs.buf, want);
    strbuf_free(&errs);
    config_free(&cfg);
}

/* [privacy] key_file: the keys are read at every load, the first seals;
 * a file others may read, a bad line or no key is a clear error that
 * names the file (never a key); with keys there is no warning. */
static void test_key_file(void **state)
{
    (void)state;
    struct config cfg;
    struct strbuf errs;
    char keys[512]; /* write_conf's buffer is reused by the next call */
    snprintf(keys, sizeof(keys), "%s", write_conf("keys", "# rotated 2026-12\n"
                                          "k2 000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f\n\n"
                                          "k1 ffeeddccbbaa99887766554433221100ffeeddccbbaa99887766554433221100\n"));
    char text[1024];
    snprintf(text, sizeof(text), GOOD_ADMIN GOOD_TAIL "[privacy]\nkey_file = %s\n", keys);
    assert_int_equal(load_text(text, NULL, 0, &cfg, &errs), 0);
    assert_non_null(cfg.keys);
    assert_int_equal(cfg.keys->n, 2);
    assert_string_equal(cfg.keys->v[0].id, "k2");
    assert_int_equal(cfg.keys->v[0].key[31], 0x1f);
    struct strbuf w;
    strbuf_init(&w);
    config_warnings(&cfg, &w);
    assert_null(w.buf ? strstr(w.buf, "key_file") : NULL);
    strbuf_free(&w);
    strbuf_free(&errs);
    config_free(&cfg);

    chmod(keys, 0640);
    expect_error(text, "chmod 600");
    chmod(keys, 0600);
    write_conf("keys", "k1 0011\n");
    expect_error(text, "keys:1: key 'k1' must be 64 hex digits");
    write_conf("keys", "k1 000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f\n"
                       "k1 000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f\n");
    expect_error(text, "keys:2: key id 'k1' appears twice");
    write_conf("keys", "# none\n");
    expect_error(text, "no key in the file");
    snprintf(text, sizeof(text), GOOD_ADMIN GOOD_TAIL "[privacy]\nkey_file = %s/absent\n", tmpdir);
    expect_error(text, "cannot read");
}

/* [retention]: dead letters kept 30 days and the audit without an age limit
 * by default; durations from 1m to 3650d or empty; anything else a clear error. */
static void test_retention(void **state)
{
    (void)state;
    struct config cfg;
    struct strbuf errs;
    assert_int_equal(load_text(GOOD_ADMIN GOOD_TAIL, NULL, 0, &cfg, &errs), 0);
    assert_int_equal(cfg.retention_audit_ms, 0);
    assert_int_equal(cfg.retention_dead_letters_ms, 30LL * 86400 * 1000);
    strbuf_free(&errs);
    config_free(&cfg);
    assert_int_equal(load_text("[retention]\naudit = 400d\ndead_letters =\n" GOOD_ADMIN GOOD_TAIL, NULL, 0, &cfg, &errs),
                     0);
    assert_int_equal(cfg.retention_audit_ms, 400LL * 86400 * 1000);
    assert_int_equal(cfg.retention_dead_letters_ms, 0);
    strbuf_free(&errs);
    config_free(&cfg);
    const char *ov[] = {"retention.dead_letters=2h"};
    assert_int_equal(load_text(GOOD_ADMIN GOOD_TAIL, ov, 1, &cfg, &errs), 0);
    assert_int_equal(cfg.retention_dead_letters_ms, 2LL * 3600 * 1000);
    strbuf_free(&errs);
    config_free(&cfg);
    expect_error("[retention]\naudit = 30s\n" GOOD_ADMIN GOOD_TAIL, ":2: [retention] audit: expected a duration from 1m");
    expect_error("[retention]\ndead_letters = 3651d\n" GOOD_ADMIN GOOD_TAIL, "[retention] dead_letters: expected a duration");
    expect_error("[retention]\ndead_letters = forever\n" GOOD_ADMIN GOOD_TAIL, "[retention] dead_letters: expected");
    expect_error("[retention]\ninactive_people = 0s\n" GOOD_ADMIN GOOD_TAIL,
                 "[retention] inactive_people: expected a duration from 1s to 3650d");
    expect_error("[privacy]\nindex_key_file = no-such.key\n" GOOD_ADMIN GOOD_TAIL,
                 "[privacy] index_key_file: cannot read");
    expect_error("[privacy]\nindex_key = x\n" GOOD_ADMIN GOOD_TAIL, "[privacy] index_key");
    expect_error("[retention]\naudit_age = 1d\n" GOOD_ADMIN GOOD_TAIL, "[retention] audit_age");
    expect_error("[retension]\naudit = 1d\n" GOOD_ADMIN GOOD_TAIL, "did you mean [retention]?");
}

/* [redis] cluster: seeds parsed, url and cluster exclusive, wait_replicas's default per mode. */
static void test_redis_cluster(void **state)
{
    (void)state;
    struct config cfg;
    struct strbuf errs;
    assert_int_equal(load_text("[redis]\ncluster = 127.0.0.1:7000, 127.0.0.1:7001\n" GOOD_ADMIN GOOD_TAIL, NULL, 0,
                               &cfg, &errs), 0);
    assert_string_equal(cfg.redis_cluster, "127.0.0.1:7000, 127.0.0.1:7001");
    assert_int_equal(cfg.wait_replicas, 1);
    assert_int_equal(cfg.wait_timeout_ms, 2000);
    config_free(&cfg);
    strbuf_free(&errs);
    assert_int_equal(load_text("[redis]\nurl = redis://127.0.0.1:6379/0\n" GOOD_ADMIN GOOD_TAIL, NULL, 0, &cfg, &errs), 0);
    assert_int_equal(cfg.wait_replicas, 0);
    config_free(&cfg);
    strbuf_free(&errs);
    expect_error("[redis]\nurl = redis://127.0.0.1:6379/0\ncluster = h:1\n" GOOD_ADMIN GOOD_TAIL,
                 "[redis] cluster: [redis] url is set too");
    expect_error("[redis]\ncluster = h1:7000, h2\n" GOOD_ADMIN GOOD_TAIL, "[redis] cluster: expected host:port");
    expect_error("[redis]\ncluster = h1:70000\n" GOOD_ADMIN GOOD_TAIL, "[redis] cluster: expected host:port");
    expect_error("[redis]\ncluster = h:1\nwait_replicas = 9\n" GOOD_ADMIN GOOD_TAIL,
                 "[redis] wait_replicas: expected a whole number from 0 to 8");
    expect_error("[redis]\nwait_replicas = -1\n" GOOD_ADMIN GOOD_TAIL, "[redis] wait_replicas");
    /* [redis] wait_timeout: 2s unless given, never 0 (WAIT's "forever") nor past rconn's watchdog. */
    assert_int_equal(load_text("[redis]\ncluster = h:1\nwait_timeout = 250ms\n" GOOD_ADMIN GOOD_TAIL, NULL, 0, &cfg,
                               &errs), 0);
    assert_int_equal(cfg.wait_timeout_ms, 250);
    config_free(&cfg);
    strbuf_free(&errs);
    expect_error("[redis]\nwait_timeout = 0s\n" GOOD_ADMIN GOOD_TAIL,
                 "[redis] wait_timeout: expected a duration from 10ms to 5s");
    expect_error("[redis]\nwait_timeout = 6s\n" GOOD_ADMIN GOOD_TAIL, "[redis] wait_timeout");
    expect_error("[redis]\nwait_timeout = soon\n" GOOD_ADMIN GOOD_TAIL, "[redis] wait_timeout");
    /* The user of every node, without a url. */
    assert_int_equal(load_text("[redis]\ncluster = h:1\nuser = herald\npassword = pw\n" GOOD_ADMIN GOOD_TAIL, NULL, 0,
                               &cfg, &errs), 0);
    assert_string_equal(cfg.redis_user, "herald");
    assert_string_equal(cfg.redis_password, "pw");
    config_free(&cfg);
    strbuf_free(&errs);
    expect_error("[redis]\nurl = redis://ann:pw@h:1/0\nuser = herald\n" GOOD_ADMIN GOOD_TAIL,
                 "[redis] user: the url names a user too");
    expect_error("[redis]\ncluster = h:1\nuser = herald\n" GOOD_ADMIN GOOD_TAIL, "the user needs a password");
    expect_error("[redis]\nuser = her ald\n" GOOD_ADMIN GOOD_TAIL, "[redis] user: a user name has no spaces");
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
    /* A copy only its owner may read: the example holds (placeholder) secrets. */
    fp = fopen(EXAMPLE_CONF, "r");
    assert_non_null(fp);
    struct strbuf text;
    strbuf_init(&text);
    while (fgets(line, sizeof(line), fp)) strbuf_adds(&text, line);
    fclose(fp);
    const char *copy = write_conf("t.conf", text.buf);
    strbuf_free(&text);
    struct config cfg;
    struct strbuf errs;
    strbuf_init(&errs);
    int n = config_load(copy, NULL, 0, &cfg, &errs);
    if (n) fprintf(stderr, "%s", errs.buf);
    assert_int_equal(n, 0);
    strbuf_free(&errs);
    config_free(&cfg);
}

/* What a reload may change: the restart-only keys are named (never their
 * values), the rest is not; kept strings stay where they were. */
static void test_restart_keys(void **state)
{
    (void)state;
    assert_true(config_key_needs_restart("redis", "url"));
    assert_true(config_key_needs_restart("redis", "prefix"));
    assert_true(config_key_needs_restart("daemon", "consumer"));
    assert_false(config_key_needs_restart("daemon", "log_level"));
    assert_false(config_key_needs_restart("admin", "listen"));
    assert_false(config_key_needs_restart("admin", "token"));
    struct config a, b, c;
    struct strbuf errs, names;
    const char *base = "[redis]\nurl = redis://:pw-one@127.0.0.1:6379/0\n" GOOD_ADMIN
                       "[public]\nlisten = 127.0.0.1:9001\n" GOOD_TAIL;
    assert_int_equal(load_text(base, NULL, 0, &a, &errs), 0);
    strbuf_free(&errs);
    const char *ov[] = {"daemon.log_level=debug", "admin.listen=127.0.0.1:9100", "public.listen=127.0.0.1:9101"};
    assert_int_equal(load_text(base, ov, 3, &b, &errs), 0);
    strbuf_free(&errs);
    strbuf_init(&names);
    assert_int_equal(config_restart_changes(&a, &b, &names), 0);
    assert_null(names.buf);
    char *prefix = a.prefix;
    config_keep_fixed(&b, &a);
    assert_ptr_equal(b.prefix, prefix);
    assert_string_equal(a.prefix, "herald");
    const char *ov2[] = {"redis.url=redis://:pw-two@127.0.0.1:6379/0", "redis.prefix=other", "daemon.consumer=x",
                         "public.listen="};
    assert_int_equal(load_text(base, ov2, 4, &c, &errs), 0);
    strbuf_free(&errs);
    assert_int_equal(config_restart_changes(&b, &c, &names), 5);
    assert_string_equal(names.buf, "[daemon] consumer, [redis] url, [redis] password, [redis] prefix, "
                                   "[public] listen (set or emptied)");
    assert_null(strstr(names.buf, "pw-"));
    strbuf_free(&names);
    config_free(&a);
    config_free(&b);
    config_free(&c);
}

/* docs/config.md's "Reload" table says "no: restart" for exactly the
 * CONFIG_RESTART_KEYS (and the [public] listen special case). */
static void test_restart_keys_documented(void **state)
{
    (void)state;
    FILE *fp = fopen(CONFIG_MD, "r");
    assert_non_null(fp);
    char line[1024], documented[16][64];
    size_t n = 0;
    while (fgets(line, sizeof(line), fp)) {
        if (strncmp(line, "| `[", 4) != 0 || !strstr(line, "| no: restart")) continue;
        char *end = strchr(line + 3, '`');
        assert_non_null(end);
        assert_true(n < 16);
        snprintf(documented[n++], sizeof(documented[0]), "%.*s", (int)(end - line - 3), line + 3);
    }
    fclose(fp);
    size_t want = 1;
    bool seen_public = false;
    for (size_t i = 0; i < n; i++) seen_public |= strcmp(documented[i], "[public] listen") == 0;
    assert_true(seen_public);
#define X(sec, k)                                                                                  \
    do {                                                                                           \
        char name[64];                                                                             \
        snprintf(name, sizeof(name), "[%s] %s", sec, k);                                           \
        bool found = false;                                                                        \
        for (size_t i = 0; i < n; i++) found |= strcmp(documented[i], name) == 0;                  \
        if (!found) fprintf(stderr, "docs/config.md, Reload: %s is not listed as restart-only\n", name); \
        assert_true(found);                                                                        \
        want++;                                                                                    \
    } while (0);
    CONFIG_RESTART_KEYS(X)
#undef X
    assert_int_equal(n, want); /* and nothing else */
    for (size_t i = 0; i < n; i++) {
        char sec[32], key[32];
        assert_int_equal(sscanf(documented[i], "[%31[^]]] %31s", sec, key), 2);
        assert_true(config_key_needs_restart(sec, key) || strcmp(documented[i], "[public] listen") == 0);
    }
}

int main(void)
{
    snprintf(tmpdir, sizeof(tmpdir), "/tmp/herald-test-config-XXXXXX");
    if (!mkdtemp(tmpdir)) return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_good_file_and_defaults),
        cmocka_unit_test(test_redis_cluster),
        cmocka_unit_test(test_errors_have_file_line_section_key),
        cmocka_unit_test(test_all_errors_reported_at_once),
        cmocka_unit_test(test_overrides),
        cmocka_unit_test(test_page_texts),
        cmocka_unit_test(test_durations),
        cmocka_unit_test(test_give_up_after),
        cmocka_unit_test(test_lookahead),
        cmocka_unit_test(test_shared),
        cmocka_unit_test(test_listeners),
        cmocka_unit_test(test_example_in_sync),
        cmocka_unit_test(test_retention),
        cmocka_unit_test(test_key_file),
        cmocka_unit_test(test_secret_files),
        cmocka_unit_test(test_config_file_mode),
        cmocka_unit_test(test_set_never_echoes),
        cmocka_unit_test(test_redis_urls),
        cmocka_unit_test(test_report),
        cmocka_unit_test(test_restart_keys),
        cmocka_unit_test(test_restart_keys_documented),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    char path[600];
    const char *files[] = {"t.conf", "token", "hook", "redispw", "short", "twolines", "open", "link", "open.conf"};
    for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
        snprintf(path, sizeof(path), "%s/%s", tmpdir, files[i]);
        unlink(path);
    }
    rmdir(tmpdir);
    return rc;
}
