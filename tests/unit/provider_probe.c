/*
 * provider_probe.c - a test helper (not a test): loads one network channel
 * plugin the way the daemon does, creates it from key=value settings,
 * prepares one message and performs it with curl_easy_perform, then prints
 * what happened, one key=value per line:
 *
 *   prepare=ok | prepare=refused reason=<why>
 *   status=<http status> curl=<CURLcode>
 *   violations=<sl-violations header>          (only when Prism sent one)
 *   verdict=<accepted|retry|rejected> provider_id=<id> reason=<r> retry_after_ms=<n>
 *
 * tests/e2e/test_contracts.py drives it against Prism to check the requests
 * the plugins really build against the providers' published specs, without
 * needing the daemon's curl engine.
 *
 * Owns nothing beyond one process run. It must never be linked into herald,
 * and never prints an address or a body (only statuses, ids and reasons).
 * Exit status: 0 when the request was performed (whatever the verdict), 3
 * when prepare() refused it (no I/O happened), 2 on usage or setup errors.
 *
 * usage: provider_probe PLUGIN.so [--to A] [--subject S] [--text T] [--html H]
 *                       [--unsubscribe URL] [key=value ...]
 */
#include <dlfcn.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <curl/curl.h>

#include "herald_channel.h"

#define MAX_SETTINGS 32
#define MAX_CAPTURE (1u << 20)

struct buf {
    char *data;
    size_t len;
};

static size_t collect(char *p, size_t size, size_t n, void *ud)
{
    struct buf *b = ud;
    size_t add = size * n;
    if (b->len + add > MAX_CAPTURE) return 0;
    char *d = realloc(b->data, b->len + add + 1);
    if (!d) return 0;
    memcpy(d + b->len, p, add);
    b->len += add;
    d[b->len] = '\0';
    b->data = d;
    return add;
}

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

static int64_t host_now_ms(void *ctx)
{
    (void)ctx;
    return 0;
}

/* The last value of header `name` in a raw block, or NULL (static buffer). */
static const char *header(const struct buf *h, const char *name)
{
    static char out[4096];
    const char *found = NULL;
    size_t nl = strlen(name);
    for (const char *p = h->data; p && *p;) {
        const char *eol = strchr(p, '\n');
        size_t ll = eol ? (size_t)(eol - p) : strlen(p);
        if (ll > nl && strncasecmp(p, name, nl) == 0 && p[nl] == ':') {
            const char *v = p + nl + 1;
            while (*v == ' ') v++;
            size_t vl = ll - (size_t)(v - p);
            while (vl > 0 && (v[vl - 1] == '\r' || v[vl - 1] == ' ')) vl--;
            if (vl >= sizeof(out)) vl = sizeof(out) - 1;
            memcpy(out, v, vl);
            out[vl] = '\0';
            found = out;
        }
        p = eol ? eol + 1 : NULL;
    }
    return found;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: provider_probe PLUGIN.so [--to A] [--subject S] [--text T] [--html H] "
                        "[--unsubscribe URL] [key=value ...]\n");
        return 2;
    }
    struct herald_message msg = {.campaign = "contract", .recipient = "p1", .topic = "news"};
    struct herald_setting settings[MAX_SETTINGS];
    size_t n = 0;
    for (int i = 2; i < argc; i++) {
        const char **opt = NULL;
        if (strcmp(argv[i], "--to") == 0) opt = &msg.to;
        else if (strcmp(argv[i], "--subject") == 0) opt = &msg.subject;
        else if (strcmp(argv[i], "--text") == 0) opt = &msg.text;
        else if (strcmp(argv[i], "--html") == 0) opt = &msg.html;
        else if (strcmp(argv[i], "--unsubscribe") == 0) opt = &msg.unsubscribe_url;
        if (opt) {
            if (i + 1 >= argc) {
                fprintf(stderr, "provider_probe: %s needs a value\n", argv[i]);
                return 2;
            }
            *opt = argv[++i];
            continue;
        }
        char *eq = strchr(argv[i], '=');
        if (!eq || n == MAX_SETTINGS) {
            fprintf(stderr, "provider_probe: expected key=value, got %s\n", argv[i]);
            return 2;
        }
        *eq = '\0';
        settings[n].key = argv[i];
        settings[n].value = eq + 1;
        n++;
    }

    void *dl = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);
    if (!dl) {
        fprintf(stderr, "provider_probe: %s\n", dlerror());
        return 2;
    }
    herald_channel_entry_fn entry = (herald_channel_entry_fn)dlsym(dl, HERALD_CHANNEL_SYMBOL);
    const struct herald_channel_plugin *api = entry ? entry() : NULL;
    if (!api || api->abi_version != HERALD_CHANNEL_ABI_VERSION || !api->prepare || !api->interpret) {
        fprintf(stderr, "provider_probe: %s is not a network plugin of ABI %u\n", argv[1],
                HERALD_CHANNEL_ABI_VERSION);
        return 2;
    }
    msg.channel = strstr(api->channels, "email") ? "email" : "sms";

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
        fprintf(stderr, "provider_probe: create failed\n");
        return 2;
    }

    curl_global_init(CURL_GLOBAL_DEFAULT);
    CURL *h = curl_easy_init();
    void *state = NULL;
    char reason[128] = "";
    struct buf hb = {0}, bb = {0};
    int rc = 0;
    if (api->prepare(inst, &msg, h, &state, reason, sizeof(reason)) != 0) {
        printf("prepare=refused reason=%s\n", reason);
        rc = 3;
        goto out;
    }
    printf("prepare=ok\n");
    curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, collect);
    curl_easy_setopt(h, CURLOPT_HEADERDATA, &hb);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, collect);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &bb);
    curl_easy_setopt(h, CURLOPT_TIMEOUT, 30L);
    CURLcode cc = curl_easy_perform(h);
    long status = 0;
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
    printf("status=%ld curl=%d\n", status, (int)cc);
    const char *viol = header(&hb, "sl-violations");
    if (viol) printf("violations=%s\n", viol);
    if (status >= 300 && bb.data) fprintf(stderr, "provider_probe: response body: %.2000s\n", bb.data);

    struct herald_response resp = {
        .curl_code = (int)cc,
        .status = status,
        .headers = hb.data ? hb.data : "",
        .headers_len = hb.len,
        .body = bb.data ? bb.data : "",
        .body_len = bb.len,
    };
    struct herald_verdict v;
    api->interpret(inst, state, &resp, &v);
    static const char *const kinds[] = {"accepted", "retry", "rejected"};
    printf("verdict=%s provider_id=%s reason=%s retry_after_ms=%lld\n",
           (unsigned)v.kind < 3 ? kinds[v.kind] : "invalid", v.provider_id[0] ? v.provider_id : "-",
           v.reason[0] ? v.reason : "-", (long long)v.retry_after_ms);
out:
    /* The handle goes first: the body and headers in state outlive it. */
    curl_easy_cleanup(h);
    if (state) api->release(inst, state);
    free(hb.data);
    free(bb.data);
    api->destroy(inst);
    curl_global_cleanup();
    dlclose(dl);
    return rc;
}
