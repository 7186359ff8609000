/*
 * progress.h - the text of heraldctl's progress displays: a campaign being
 * watched (`heraldctl campaign ID --watch`) and an import of a large file.
 *
 * Pure: counts and times are arguments; the caller reads the clock, decides
 * whether its output is a terminal, and writes the text. A line for a
 * terminal has a bar and fits in the given width (the caller redraws it in
 * place); a plain line is key=value, one per interval, for logs and scripts.
 * Ids and counts only, never an address.
 */
#ifndef HERALD_PROGRESS_H
#define HERALD_PROGRESS_H

#include "herald.h"

/* A campaign's counts (store_campaign_progress's JSON, summed). */
struct progress_campaign {
    const char *id, *state;
    long long total, sent, suppressed, deferred, failed, unknown, pending;
};

/* Recipients (or lines) finished per second over the last samples
 * (a sliding window of PROGRESS_RATE_SAMPLES). */
#define PROGRESS_RATE_SAMPLES 10
struct progress_rate {
    double t[PROGRESS_RATE_SAMPLES];
    long long n[PROGRESS_RATE_SAMPLES];
    int count, next;
};
/* One sample: done so far at now_s (any monotonic seconds). */
void progress_rate_add(struct progress_rate *r, double now_s, long long done);
/* Per second over the window; 0 with fewer than two samples or no time. */
double progress_rate_get(const struct progress_rate *r);

/* Finished recipients: sent, suppressed, failed and unknown (deferred ones
 * wait for later). */
long long progress_campaign_done(const struct progress_campaign *c);
/* Whether the campaign has ended (done or cancelled): the watch stops. */
bool progress_campaign_ended(const struct progress_campaign *c);

/* Appends one line (no newline) for c at rate. width > 0: a terminal line
 * with a bar, at most width columns; width 0: the plain key=value line. */
void progress_campaign_line(struct strbuf *out, const struct progress_campaign *c, double rate, int width);

/* An import: lines read, people stored and skipped, bytes read of size
 * (size 0: unknown, e.g. stdin). Same width rule. */
void progress_import_line(struct strbuf *out, long lines, long imported, long skipped, long long bytes,
                          long long size, double rate, int width);

/* "2h05m", "3m07s", "42s"; "--" for a negative or unknown time. */
void progress_duration(struct strbuf *out, double seconds);

#endif
