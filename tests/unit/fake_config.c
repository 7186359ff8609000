/*
 * fake_config.c - see fake_config.h. Owns its temporary directory.
 */
#include "fake_config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"

#ifndef FAKE_PLUGIN_DIR
#error "FAKE_PLUGIN_DIR must name build/tests/plugins"
#endif

void fake_config_load(struct fake_config *fc, const char *daemon_extra, const char *provider_extra)
{
    snprintf(fc->dir, sizeof(fc->dir), "/tmp/herald-test-fake-XXXXXX");
    assert_non_null(mkdtemp(fc->dir));
    char path[128];
    snprintf(path, sizeof(path), "%s/fake.conf", fc->dir);
    FILE *fp = fopen(path, "w");
    assert_non_null(fp);
    fprintf(fp,
            "[daemon]\nplugin_dir = %s\nlog_level = error\n%s"
            "[admin]\ntoken = 0123456789abcdef0\nlink_secret = 0123456789abcdef1\n"
            "[channel email]\nproviders = a\n"
            "[provider a]\nplugin = fake\n%s",
            FAKE_PLUGIN_DIR, daemon_extra, provider_extra);
    fclose(fp);
    chmod(path, 0600); /* it holds secrets: herald refuses it readable by others */
    struct strbuf errs;
    strbuf_init(&errs);
    int n = config_load(path, NULL, 0, &fc->cfg, &errs);
    if (n) fprintf(stderr, "%s", errs.buf);
    assert_int_equal(n, 0);
    n = plugin_set_load(&fc->cfg, &fc->ps, &errs);
    if (n) fprintf(stderr, "%s", errs.buf);
    assert_int_equal(n, 0);
    strbuf_free(&errs);
    log_set_level(LOG_ERROR);
}

void fake_config_free(struct fake_config *fc)
{
    plugin_set_free(fc->ps);
    config_free(&fc->cfg);
    char path[128];
    snprintf(path, sizeof(path), "%s/fake.conf", fc->dir);
    unlink(path);
    rmdir(fc->dir);
}
