/*
 * log.h - one line per event on stderr.
 *
 * Format: "2026-11-29T03:40:00Z info queue: job accepted campaign=x n=3".
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

void log_set_level(enum log_level level);
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
