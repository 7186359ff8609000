/*
 * notify.c - see notify.h. A thin wrapper over libsystemd's sd_notify(3);
 * built without it (HERALD_HAVE_SYSTEMD undefined), every call returns at
 * once. sd_notify itself returns 0 without NOTIFY_SOCKET, so a daemon run
 * from a shell or a test pays one getenv per call.
 */
#include "notify.h"

#include <stdarg.h>
#include <stdio.h>
#include <time.h>

#ifdef HERALD_HAVE_SYSTEMD
#include <systemd/sd-daemon.h>
#endif

static void send_state(const char *state)
{
#ifdef HERALD_HAVE_SYSTEMD
    (void)sd_notify(0, state); /* a manager that is gone is not the daemon's problem */
#else
    (void)state;
#endif
}

void notify_ready(const char *status)
{
    char buf[256];
    snprintf(buf, sizeof(buf), "READY=1\nSTATUS=%s", status);
    send_state(buf);
}

void notify_reloading(void)
{
    /* systemd (Type=notify-reload) wants the monotonic clock with it. */
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    char buf[128];
    snprintf(buf, sizeof(buf), "RELOADING=1\nMONOTONIC_USEC=%llu\nSTATUS=reloading the configuration",
             (unsigned long long)ts.tv_sec * 1000000ull + (unsigned long long)ts.tv_nsec / 1000u);
    send_state(buf);
}

void notify_stopping(void) { send_state("STOPPING=1\nSTATUS=draining"); }

void notify_status(const char *fmt, ...)
{
    char buf[256];
    int n = snprintf(buf, sizeof(buf), "STATUS=");
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf + n, sizeof(buf) - (size_t)n, fmt, ap);
    va_end(ap);
    send_state(buf);
}

bool notify_supported(void)
{
#ifdef HERALD_HAVE_SYSTEMD
    return true;
#else
    return false;
#endif
}
