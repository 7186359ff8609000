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

#endif
