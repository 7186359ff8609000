/*
 * log.h - one line per event on stderr.
 *
 * Format: "2026-11-29T03:40:00Z info queue: job accepted campaign=x n=3",
 * or with [daemon] log_format = json one object per line:
 * {"ts":"2026-11-29T03:40:00.000Z","level":"info","module":"queue",
 *  "msg":"job accepted","campaign":"x","n":"3"} (docs/config.md). When
 * stderr is the journal (JOURNAL_STREAM names fd 2) each line starts with
 * its syslog priority, "<3>" error .. "<7>" debug, which journald strips.
 * The level is checked before formatting. Callers pass ids only (campaign,
 * recipient, provider message id): never an address, phone number or body.
 * log_complain()/log_recovered() rate-limit a repeated failure to one line
 * when it starts and one when it ends (collectd's c_complain).
 */
#ifndef HERALD_LOG_H
#define HERALD_LOG_H

#include <stdbool.h>
#include <stdint.h>
#include "herald.h"

enum log_level { LOG_DEBUG = 0, LOG_INFO, LOG_WARN, LOG_ERROR };

enum log_format { LOG_FORMAT_TEXT = 0, LOG_FORMAT_JSON };

void log_set_level(enum log_level level);
/* Sets the line format and looks once whether stderr is the journal. */
void log_set_format(enum log_format format);
int log_format_from_name(const char *name); /* -1 when unknown */
int log_level_from_name(const char *name); /* -1 when unknown */
bool log_enabled(enum log_level level);
void log_write(enum log_level level, const char *module, const char *fmt, ...) HERALD_PRINTF(3, 4);
void log_vwrite(enum log_level level, const char *module, const char *fmt, va_list ap)
    __attribute__((format(printf, 3, 0)));

#define log_debug(mod, ...) do { if (log_enabled(LOG_DEBUG)) log_write(LOG_DEBUG, mod, __VA_ARGS__); } while (0)
#define log_info(mod, ...)  do { if (log_enabled(LOG_INFO)) log_write(LOG_INFO, mod, __VA_ARGS__); } while (0)
#define log_warn(mod, ...)  log_write(LOG_WARN, mod, __VA_ARGS__)
#define log_error(mod, ...) log_write(LOG_ERROR, mod, __VA_ARGS__)

/* A failure that may repeat: logs once when it starts. */
struct log_complaint {
    bool active;
    unsigned count;
};
void log_complain(struct log_complaint *c, const char *module, const char *fmt, ...) HERALD_PRINTF(3, 4);
/* Logs once when a complained-about failure ends. */
void log_recovered(struct log_complaint *c, const char *module, const char *fmt, ...) HERALD_PRINTF(3, 4);

/* An event that may come thousands of times a second and is worth a
 * warning, not a line each (a refused unauthenticated request, an HTTP
 * limit hit). The first hit writes its line at once; later hits are only
 * counted. log_rate_tick() (the HTTP server calls it every second) then
 * writes one summary line per LOG_RATE_INTERVAL_MS in which more came
 * ("<what>: N more in the last 60s"), and when a whole interval passes
 * without a hit, one line with the total ("<what>: stopped after N").
 * The struct must stay where it is while it is active (it is linked into
 * a list the tick walks); log_rate_forget() unlinks one that is freed. */
#define LOG_RATE_INTERVAL_MS 60000u
struct log_rate {
    const char *module, *what; /* static strings, for the summaries */
    uint64_t since_ms;         /* start of the current interval */
    uint64_t count;            /* hits in the current interval, after the first line */
    uint64_t total;            /* hits since the first line */
    bool active;
    struct log_rate *next;
};
void log_rate_hit(struct log_rate *r, const char *module, const char *what, const char *fmt, ...)
    HERALD_PRINTF(4, 5);
void log_rate_tick(void);
void log_rate_forget(struct log_rate *r);
/* The clock the rates use (monotonic ms), and a tick at a given time: for tests. */
uint64_t log_rate_now_ms(void);
void log_rate_tick_at(uint64_t now_ms);

#endif
