/*
 * notify.h - tells the service manager how the daemon is doing (systemd's
 * sd_notify: READY=1, STOPPING=1, STATUS=...).
 *
 * A no-op when the daemon was not started by systemd with Type=notify
 * (NOTIFY_SOCKET unset) or was built without libsystemd (HERALD_SYSTEMD
 * off): callers never test for either. Never blocks, never fails the
 * caller; status text carries counts and host:port, never an id of a
 * person or an address.
 */
#ifndef HERALD_NOTIFY_H
#define HERALD_NOTIFY_H

#include "herald.h"

/* READY=1 with a STATUS line: the listener is bound and Redis answers. */
void notify_ready(const char *status);
/* RELOADING=1 (with MONOTONIC_USEC): a configuration reload began; the
 * next notify_ready() says it ended, applied or not. */
void notify_reloading(void);
/* STOPPING=1: the drain began. */
void notify_stopping(void);
/* STATUS=<text> alone (e.g. "waiting for redis at 127.0.0.1:6379"). */
void notify_status(const char *fmt, ...) HERALD_PRINTF(1, 2);
/* Whether this build speaks sd_notify (herald --version says). */
bool notify_supported(void);

#endif
