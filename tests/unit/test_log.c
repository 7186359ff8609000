/*
 * test_log.c - the log line formats: text, JSON (one object per line with
 * ts, level, module, msg and each key=value as a field), and the syslog
 * priority prefix when stderr is the journal (JOURNAL_STREAM).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"

static char path[256];

/* Points stderr at a fresh file; returns nothing, read it with captured(). */
static void capture(void)
{
    assert_non_null(freopen(path, "w", stderr));
}

static char *captured(void)
{
    fflush(stderr);
    FILE *fp = fopen(path, "r");
    assert_non_null(fp);
    static char buf[65536];
    size_t n = fread(buf, 1, sizeof(buf) - 1, fp);
    buf[n] = '\0';
    fclose(fp);
    return buf;
}

static void test_text(void **state)
{
    (void)state;
    unsetenv("JOURNAL_STREAM");
    log_set_format(LOG_FORMAT_TEXT);
    log_set_level(LOG_DEBUG);
    capture();
    log_info("queue", "job accepted campaign=%s n=%d", "c1", 3);
    char *out = captured();
    assert_non_null(strstr(out, " info queue: job accepted campaign=c1 n=3\n"));
    assert_int_equal(out[0], '2'); /* the timestamp, no <priority> */
}

static void test_json(void **state)
{
    (void)state;
    unsetenv("JOURNAL_STREAM");
    log_set_format(LOG_FORMAT_JSON);
    log_set_level(LOG_DEBUG);
    capture();
    log_warn("redis", "lost connection=%s state=%d: %s", "jobs", 1, "Connection refused");
    log_info("main", "odd \"quoted\" text\twith tab msg=clash level=x");
    log_error("api", "no context here");
    char *out = captured();
    char *lines[3];
    lines[0] = strtok(out, "\n");
    lines[1] = strtok(NULL, "\n");
    lines[2] = strtok(NULL, "\n");
    assert_null(strtok(NULL, "\n"));
    json_error_t jerr;
    json_t *o = json_loads(lines[0], 0, &jerr);
    assert_non_null(o);
    assert_string_equal(json_string_value(json_object_get(o, "level")), "warn");
    assert_string_equal(json_string_value(json_object_get(o, "module")), "redis");
    assert_string_equal(json_string_value(json_object_get(o, "msg")), "lost");
    assert_string_equal(json_string_value(json_object_get(o, "connection")), "jobs");
    /* a value runs to the next key=, so an error text at the end keeps its spaces */
    assert_string_equal(json_string_value(json_object_get(o, "state")), "1: Connection refused");
    assert_non_null(json_string_value(json_object_get(o, "ts")));
    json_decref(o);
    o = json_loads(lines[1], 0, &jerr);
    assert_non_null(o);
    assert_string_equal(json_string_value(json_object_get(o, "msg")), "odd \"quoted\" text\twith tab");
    assert_string_equal(json_string_value(json_object_get(o, "ctx_msg")), "clash");
    assert_string_equal(json_string_value(json_object_get(o, "ctx_level")), "x");
    assert_string_equal(json_string_value(json_object_get(o, "level")), "info");
    json_decref(o);
    o = json_loads(lines[2], 0, &jerr);
    assert_non_null(o);
    assert_string_equal(json_string_value(json_object_get(o, "msg")), "no context here");
    assert_int_equal(json_object_size(o), 4);
    json_decref(o);
}

static void test_journal_priority(void **state)
{
    (void)state;
    log_set_level(LOG_DEBUG);
    capture();
    struct stat st;
    assert_int_equal(fstat(STDERR_FILENO, &st), 0);
    char js[64];
    snprintf(js, sizeof(js), "%llu:%llu", (unsigned long long)st.st_dev, (unsigned long long)st.st_ino);
    setenv("JOURNAL_STREAM", js, 1);
    log_set_format(LOG_FORMAT_TEXT);
    log_debug("m", "d");
    log_info("m", "i");
    log_warn("m", "w");
    log_error("m", "e");
    log_set_format(LOG_FORMAT_JSON);
    log_info("m", "j k=v");
    char *out = captured();
    const char *want[] = {"<7>", "<6>", "<4>", "<3>", "<6>{\"ts\":"};
    char *line = strtok(out, "\n");
    for (size_t i = 0; i < 5; i++, line = strtok(NULL, "\n")) {
        assert_non_null(line);
        assert_memory_equal(line, want[i], strlen(want[i]));
    }
    /* JOURNAL_STREAM naming another file: not the journal */
    setenv("JOURNAL_STREAM", "1:1", 1);
    log_set_format(LOG_FORMAT_TEXT);
    capture();
    log_info("m", "plain");
    assert_int_not_equal(captured()[0], '<');
    unsetenv("JOURNAL_STREAM");
}

int main(void)
{
    snprintf(path, sizeof(path), "/tmp/herald-test-log-%d.txt", (int)getpid());
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_text),
        cmocka_unit_test(test_json),
        cmocka_unit_test(test_journal_priority),
    };
    /* cmocka reports on stdout; stderr is the log under test */
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    unlink(path);
    return rc;
}
