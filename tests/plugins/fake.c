/*
 * fake.c - a channel plugin with scripted verdicts, for tests (Kannel's fake SMSC).
 *
 * Settings:
 *   verdicts = accept | reject | retry | slow [, ...]   cycled over every delivery (default accept);
 *              slow is a RETRY with slow_down set (an HTTP 429)
 *   record   = PATH    appends "campaign recipient channel verdict attempt\n" per call
 *   delay_ms = N       sleeps before answering (to keep messages in flight)
 *   retry_after_ms = N asked of the daemon on retry verdicts
 * It never writes an address or a body anywhere, like a real plugin.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "herald_channel.h"

#define FAKE_MAX_VERDICTS 32

struct fake {
    enum herald_verdict_kind verdicts[FAKE_MAX_VERDICTS];
    bool slow[FAKE_MAX_VERDICTS];
    size_t nverdicts;
    atomic_size_t next;
    char *record;
    long delay_ms;
    long retry_after_ms;
};

static int parse_long(const char *s, long *out)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || *end || v < 0 || v > 600000) return -1;
    *out = v;
    return 0;
}

static int fake_create(const struct herald_host *host, const struct herald_setting *settings, size_t n,
                       void **instance)
{
    struct fake *f = calloc(1, sizeof(*f));
    if (!f) return -1;
    f->verdicts[0] = HERALD_VERDICT_ACCEPTED;
    f->nverdicts = 1;
    int bad = 0;
    for (size_t i = 0; i < n; i++) {
        const char *k = settings[i].key, *v = settings[i].value;
        if (strcmp(k, "verdicts") == 0) {
            char copy[512], *save = NULL;
            snprintf(copy, sizeof(copy), "%s", v);
            f->nverdicts = 0;
            for (char *t = strtok_r(copy, ", ", &save); t; t = strtok_r(NULL, ", ", &save)) {
                if (f->nverdicts == FAKE_MAX_VERDICTS) break;
                if (strcmp(t, "accept") == 0) f->verdicts[f->nverdicts++] = HERALD_VERDICT_ACCEPTED;
                else if (strcmp(t, "reject") == 0) f->verdicts[f->nverdicts++] = HERALD_VERDICT_REJECTED;
                else if (strcmp(t, "retry") == 0) f->verdicts[f->nverdicts++] = HERALD_VERDICT_RETRY;
                else if (strcmp(t, "slow") == 0) {
                    f->slow[f->nverdicts] = true;
                    f->verdicts[f->nverdicts++] = HERALD_VERDICT_RETRY;
                }
                else {
                    host->setting_error(host->ctx, i, "unknown verdict \"%s\" (accept, reject, retry, slow)", t);
                    bad = 1;
                }
            }
            if (f->nverdicts == 0) {
                host->setting_error(host->ctx, i, "list at least one verdict");
                bad = 1;
            }
        } else if (strcmp(k, "record") == 0) {
            free(f->record);
            size_t len = strlen(v) + (host->base_dir ? strlen(host->base_dir) : 0) + 2;
            f->record = malloc(len);
            if (!f->record) {
                free(f);
                return -1;
            }
            /* Relative to the config file, like every path in herald's config. */
            if (v[0] != '/' && host->base_dir)
                snprintf(f->record, len, "%s/%s", host->base_dir, v);
            else
                snprintf(f->record, len, "%s", v);
        } else if (strcmp(k, "delay_ms") == 0) {
            if (parse_long(v, &f->delay_ms) < 0) {
                host->setting_error(host->ctx, i, "expected milliseconds (0..600000)");
                bad = 1;
            }
        } else if (strcmp(k, "retry_after_ms") == 0) {
            if (parse_long(v, &f->retry_after_ms) < 0) {
                host->setting_error(host->ctx, i, "expected milliseconds (0..600000)");
                bad = 1;
            }
        } else {
            host->setting_error(host->ctx, i, "unknown setting (fake takes verdicts, record, delay_ms, retry_after_ms)");
            bad = 1;
        }
    }
    if (bad) {
        free(f->record);
        free(f);
        return -1;
    }
    *instance = f;
    return 0;
}

static void fake_destroy(void *instance)
{
    struct fake *f = instance;
    free(f->record);
    free(f);
}

static void fake_deliver(void *instance, const struct herald_message *msg, struct herald_verdict *v)
{
    struct fake *f = instance;
    size_t i = atomic_fetch_add(&f->next, 1);
    enum herald_verdict_kind kind = f->verdicts[i % f->nverdicts];
    if (f->delay_ms) {
        struct timespec ts = {f->delay_ms / 1000, (f->delay_ms % 1000) * 1000000L};
        nanosleep(&ts, NULL);
    }
    static const char *names[] = {"accept", "retry", "reject"};
    if (f->record) {
        char line[512];
        int n = snprintf(line, sizeof(line), "%s %s %s %s %zu\n", msg->campaign, msg->recipient, msg->channel,
                         names[kind], i);
        int fd = open(f->record, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
        if (fd >= 0) {
            if (n > 0 && write(fd, line, (size_t)n) < 0) { /* a test will notice the missing line */ }
            close(fd);
        }
    }
    memset(v, 0, sizeof(*v));
    v->kind = kind;
    if (kind == HERALD_VERDICT_ACCEPTED) snprintf(v->provider_id, sizeof(v->provider_id), "fake-%zu", i);
    if (kind == HERALD_VERDICT_RETRY) {
        v->retry_after_ms = f->retry_after_ms;
        v->slow_down = f->slow[i % f->nverdicts];
        snprintf(v->reason, sizeof(v->reason), v->slow_down ? "fake_slow" : "fake_retry");
    }
    if (kind == HERALD_VERDICT_REJECTED) snprintf(v->reason, sizeof(v->reason), "fake_reject");
}

#ifdef FAKE_ABI_V1
/* fake_v1.so: the same plugin built as version 1 of the ABI had it, its
 * table ending at deliver (no feedback members at all): the loader must
 * still load it, and never read past its end. */
struct herald_channel_plugin_v1 {
    uint32_t abi_version;
    size_t size;
    const char *name, *channels;
    int (*create)(const struct herald_host *, const struct herald_setting *, size_t, void **);
    void (*destroy)(void *);
    int (*prepare)(void *, const struct herald_message *, void *, void **, char *, size_t);
    void (*interpret)(void *, void *, const struct herald_response *, struct herald_verdict *);
    void (*release)(void *, void *);
    void (*deliver)(void *, const struct herald_message *, struct herald_verdict *);
};

static const struct herald_channel_plugin_v1 fake_plugin = {
    .abi_version = 1,
    .size = sizeof(struct herald_channel_plugin_v1),
    .name = "fake_v1",
    .channels = "email,sms",
    .create = fake_create,
    .destroy = fake_destroy,
    .deliver = fake_deliver,
};

HERALD_EXPORT const struct herald_channel_plugin *herald_channel_plugin(void)
{
    return (const struct herald_channel_plugin *)(const void *)&fake_plugin;
}
#else
static const struct herald_channel_plugin fake_plugin = {
    .abi_version = HERALD_CHANNEL_ABI_VERSION,
    .size = sizeof(struct herald_channel_plugin),
    .name = "fake",
    .channels = "email,sms",
    .create = fake_create,
    .destroy = fake_destroy,
    .deliver = fake_deliver,
};

HERALD_EXPORT const struct herald_channel_plugin *herald_channel_plugin(void) { return &fake_plugin; }
#endif

