/*
 * log.c - stderr logging with levels and complain/recover rate limiting.
 * Never formats an address or body: callers pass ids (see log.h).
 */
#include "log.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

static enum log_level min_level = LOG_INFO;
static const char *level_names[] = {"debug", "info", "warn", "error"};

void log_set_level(enum log_level level) { min_level = level; }

int log_level_from_name(const char *name)
{
    for (size_t i = 0; i < sizeof(level_names) / sizeof(level_names[0]); i++)
        if (strcmp(name, level_names[i]) == 0) return (int)i;
    return -1;
}

bool log_enabled(enum log_level level) { return level >= min_level; }

void log_vwrite(enum log_level level, const char *module, const char *fmt, va_list ap)
{
    if (!log_enabled(level)) return;
    char line[2048];
    char stamp[32];
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    strftime(stamp, sizeof(stamp), "%Y-%m-%dT%H:%M:%S", &tm);
    int n = snprintf(line, sizeof(line), "%s.%03ldZ %s %s: ", stamp, ts.tv_nsec / 1000000L,
                     level_names[level], module);
    if (n < 0) return;
    if ((size_t)n < sizeof(line)) vsnprintf(line + n, sizeof(line) - (size_t)n, fmt, ap);
    /* One write per line so concurrent writers do not interleave mid-line. */
    size_t len = strnlen(line, sizeof(line) - 2);
    line[len++] = '\n';
    fwrite(line, 1, len, stderr);
    fflush(stderr);
}

void log_write(enum log_level level, const char *module, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    log_vwrite(level, module, fmt, ap);
    va_end(ap);
}

void log_complain(struct log_complaint *c, const char *module, const char *fmt, ...)
{
    c->count++;
    if (c->active) return;
    c->active = true;
    va_list ap;
    va_start(ap, fmt);
    log_vwrite(LOG_WARN, module, fmt, ap);
    va_end(ap);
}

void log_recovered(struct log_complaint *c, const char *module, const char *fmt, ...)
{
    if (!c->active) return;
    c->active = false;
    c->count = 0;
    va_list ap;
    va_start(ap, fmt);
    log_vwrite(LOG_INFO, module, fmt, ap);
    va_end(ap);
}

/* ---- rate-limited events (log.h) ------------------------------------------ */

static struct log_rate *active_rates;

uint64_t log_rate_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

void log_rate_hit(struct log_rate *r, const char *module, const char *what, const char *fmt, ...)
{
    if (r->active) {
        r->count++;
        r->total++;
        return;
    }
    r->module = module;
    r->what = what;
    r->active = true;
    r->since_ms = log_rate_now_ms();
    r->count = 0;
    r->total = 1;
    r->next = active_rates;
    active_rates = r;
    va_list ap;
    va_start(ap, fmt);
    log_vwrite(LOG_WARN, module, fmt, ap);
    va_end(ap);
}

void log_rate_forget(struct log_rate *r)
{
    for (struct log_rate **p = &active_rates; *p; p = &(*p)->next)
        if (*p == r) {
            *p = r->next;
            break;
        }
    r->active = false;
    r->next = NULL;
}

void log_rate_tick(void) { log_rate_tick_at(log_rate_now_ms()); }

void log_rate_tick_at(uint64_t now)
{
    struct log_rate **p = &active_rates;
    while (*p) {
        struct log_rate *r = *p;
        if (now - r->since_ms < LOG_RATE_INTERVAL_MS) {
            p = &r->next;
            continue;
        }
        if (r->count > 0) {
            log_write(LOG_WARN, r->module, "%s: %llu more in the last %us", r->what, (unsigned long long)r->count,
                      LOG_RATE_INTERVAL_MS / 1000u);
            r->count = 0;
            r->since_ms = now;
            p = &r->next;
            continue;
        }
        log_write(LOG_INFO, r->module, "%s: stopped after %llu", r->what, (unsigned long long)r->total);
        r->active = false;
        *p = r->next;
        r->next = NULL;
    }
}
