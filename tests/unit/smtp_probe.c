/*
 * smtp_probe.c - a test helper (not a test): loads email_smtp.so the way the
 * daemon does, creates it from key=value settings, prepares one message and
 * performs it with curl_easy_perform (standing in for the daemon's curl
 * engine), then prints what happened, one key=value line each:
 *
 *   create=failed                     (settings refused; problems on stderr)
 *   prepare=ok message_id=<id>  |  prepare=refused reason=<why>
 *   status=<last SMTP reply code> curl=<CURLcode>
 *   verdict=<accepted|retry|rejected> provider_id=<id> reason=<r>
 *
 * tests/e2e/test_smtp.py drives it against an aiosmtpd sink on loopback.
 *
 * Owns nothing beyond one process run. It must never be linked into herald,
 * and never prints an address or a body (only codes, ids and reasons).
 * Exit status: 0 when the transfer was performed (whatever the verdict), 3
 * when prepare() refused the message (no I/O happened), 4 when create()
 * refused the settings, 2 on usage or setup errors.
 *
 * usage: smtp_probe PLUGIN.so [--to A] [--subject S] [--text T] [--html H]
 *                   [--unsubscribe URL] [--campaign C] [--recipient R]
 *                   [--now MS] [key=value ...]
 */
#include <dlfcn.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>

#include "herald_channel.h"

#define MAX_SETTINGS 32

static void host_log(void *ctx, enum herald_log_level level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void host_log(void *ctx, enum herald_log_level level, const char *fmt, ...)
{
    (void)ctx;
    (void)level;
    va_list ap;
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

static void host_setting_error(void *ctx, size_t index, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void host_setting_error(void *ctx, size_t index, const char *fmt, ...)
{
    const struct herald_setting *s = ctx;
    fprintf(stderr, "setting %s: ", index == HERALD_SETTING_NONE ? "-" : s[index].key);
    va_list ap;
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

static void host_setting_missing(void *ctx, const char *key, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void host_setting_missing(void *ctx, const char *key, const char *fmt, ...)
{
    (void)ctx;
    fprintf(stderr, "setting %s: ", key);
    va_list ap;
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

static int64_t now_value;
static int64_t host_now_ms(void *ctx)
{
    (void)ctx;
    return now_value;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: smtp_probe PLUGIN.so [--to A] [--subject S] [--text T] [--html H] "
                        "[--unsubscribe URL] [--campaign C] [--recipient R] [--now MS] [key=value ...]\n");
        return 2;
    }
    struct herald_message msg = {.campaign = "probe", .recipient = "p1", .channel = "email", .topic = "news"};
    struct herald_setting settings[MAX_SETTINGS];
    const char *now_text = NULL;
    size_t n = 0;
    for (int i = 2; i < argc; i++) {
        const char **opt = NULL;
        if (strcmp(argv[i], "--to") == 0) opt = &msg.to;
        else if (strcmp(argv[i], "--subject") == 0) opt = &msg.subject;
        else if (strcmp(argv[i], "--text") == 0) opt = &msg.text;
        else if (strcmp(argv[i], "--html") == 0) opt = &msg.html;
        else if (strcmp(argv[i], "--unsubscribe") == 0) opt = &msg.unsubscribe_url;
        else if (strcmp(argv[i], "--campaign") == 0) opt = &msg.campaign;
        else if (strcmp(argv[i], "--recipient") == 0) opt = &msg.recipient;
        else if (strcmp(argv[i], "--now") == 0) opt = &now_text;
        if (opt) {
            if (i + 1 >= argc) {
                fprintf(stderr, "smtp_probe: %s needs a value\n", argv[i]);
                return 2;
            }
            *opt = argv[++i];
            continue;
        }
        char *eq = strchr(argv[i], '=');
        if (!eq || n == MAX_SETTINGS) {
            fprintf(stderr, "smtp_probe: expected key=value, got %s\n", argv[i]);
            return 2;
        }
        *eq = '\0';
        settings[n].key = argv[i];
        settings[n].value = eq + 1;
        n++;
    }
    if (now_text) {
        char *end;
        errno = 0;
        now_value = strtoll(now_text, &end, 10);
        if (errno || *end || end == now_text) {
            fprintf(stderr, "smtp_probe: --now wants milliseconds since the epoch\n");
            return 2;
        }
    }

    void *dl = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);
    if (!dl) {
        fprintf(stderr, "smtp_probe: %s\n", dlerror());
        return 2;
    }
    herald_channel_entry_fn entry = (herald_channel_entry_fn)dlsym(dl, HERALD_CHANNEL_SYMBOL);
    const struct herald_channel_plugin *api = entry ? entry() : NULL;
    if (!api || api->abi_version != HERALD_CHANNEL_ABI_VERSION || !api->prepare || !api->interpret) {
        fprintf(stderr, "smtp_probe: %s is not a network plugin of ABI %u\n", argv[1], HERALD_CHANNEL_ABI_VERSION);
        dlclose(dl);
        return 2;
    }

    struct herald_host host = {
        .abi_version = HERALD_CHANNEL_ABI_VERSION,
        .size = sizeof(host),
        .ctx = settings,
        .log = host_log,
        .setting_error = host_setting_error,
        .now_ms = host_now_ms,
        .base_dir = ".",
        .setting_missing = host_setting_missing,
    };
    void *inst = NULL;
    if (api->create(&host, settings, n, &inst) != 0) {
        printf("create=failed\n");
        dlclose(dl);
        return 4;
    }

    curl_global_init(CURL_GLOBAL_DEFAULT);
    CURL *h = curl_easy_init();
    void *state = NULL;
    char reason[128] = "";
    int rc = 0;
    if (api->prepare(inst, &msg, h, &state, reason, sizeof(reason)) != 0) {
        printf("prepare=refused reason=%s\n", reason);
        rc = 3;
        goto out;
    }
    printf("prepare=ok\n");
    curl_easy_setopt(h, CURLOPT_TIMEOUT, 30L);
    CURLcode cc = curl_easy_perform(h);
    long status = 0;
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
    printf("status=%ld curl=%d\n", status, (int)cc);

    struct herald_response resp = {.curl_code = (int)cc, .status = status, .headers = "", .body = ""};
    struct herald_verdict v;
    api->interpret(inst, state, &resp, &v);
    static const char *const kinds[] = {"accepted", "retry", "rejected"};
    printf("verdict=%s provider_id=%s reason=%s\n", (unsigned)v.kind < 3 ? kinds[v.kind] : "invalid",
           v.provider_id[0] ? v.provider_id : "-", v.reason[0] ? v.reason : "-");
out:
    /* The handle goes first: the MIME tree and lists in state outlive it. */
    curl_easy_cleanup(h);
    if (state) api->release(inst, state);
    api->destroy(inst);
    curl_global_cleanup();
    dlclose(dl);
    return rc;
}
