/*
 * progress.c - see progress.h. A terminal line is built in full, then cut
 * to the width by dropping the bar's length first (never below a few
 * cells) and the tail last, so a narrow terminal never wraps: a wrapped
 * line could not be redrawn in place with a carriage return.
 */
#include "progress.h"

#include <stdio.h>
#include <string.h>

#define BAR_MIN 10
#define BAR_MAX 40

void progress_rate_add(struct progress_rate *r, double now_s, long long done)
{
    r->t[r->next] = now_s;
    r->n[r->next] = done;
    r->next = (r->next + 1) % PROGRESS_RATE_SAMPLES;
    if (r->count < PROGRESS_RATE_SAMPLES) r->count++;
}

double progress_rate_get(const struct progress_rate *r)
{
    if (r->count < 2) return 0;
    int newest = (r->next + PROGRESS_RATE_SAMPLES - 1) % PROGRESS_RATE_SAMPLES;
    int oldest = r->count < PROGRESS_RATE_SAMPLES ? 0 : r->next;
    double dt = r->t[newest] - r->t[oldest];
    long long dn = r->n[newest] - r->n[oldest];
    if (dt <= 0 || dn <= 0) return 0;
    return (double)dn / dt;
}

long long progress_campaign_done(const struct progress_campaign *c)
{
    return c->sent + c->suppressed + c->failed + c->unknown;
}

bool progress_campaign_ended(const struct progress_campaign *c)
{
    return strcmp(c->state, "done") == 0 || strcmp(c->state, "cancelled") == 0;
}

void progress_duration(struct strbuf *out, double s)
{
    if (!(s >= 0) || s > 366.0 * 86400) {
        strbuf_adds(out, "--");
        return;
    }
    long long n = (long long)s;
    if ((double)n < s) n++; /* rounded up: "0s left" only at the end */
    if (n >= 3600)
        strbuf_addf(out, "%lldh%02lldm", n / 3600, n / 60 % 60);
    else if (n >= 60)
        strbuf_addf(out, "%lldm%02llds", n / 60, n % 60);
    else
        strbuf_addf(out, "%llds", n);
}

/* Whole percent, rounded down (100 only when all is done). */
static int percent(double f)
{
    if (!(f > 0)) return 0;
    if (f >= 1) return 100;
    return (int)(f * 100);
}

/* "12.5/s" or "1234/s". */
static void add_rate(struct strbuf *out, double rate)
{
    if (rate <= 0)
        strbuf_adds(out, "--/s");
    else if (rate < 10)
        strbuf_addf(out, "%.1f/s", rate);
    else
        strbuf_addf(out, "%.0f/s", rate);
}

/* remaining < 0: not known yet ("--"). */
static void add_left(struct strbuf *out, long long remaining, double rate)
{
    progress_duration(out, remaining < 0 ? -1 : remaining == 0 ? 0 : rate > 0 ? (double)remaining / rate : -1);
}

/* What is left of c; -1 while no run has counted its recipients (queued,
 * scheduled: the total is 0 until a daemon starts it). */
static long long campaign_left(const struct progress_campaign *c)
{
    return c->total == 0 && !progress_campaign_ended(c) ? -1 : c->pending;
}

/* [#####.....] for fraction f of cells cells. */
static void add_bar(struct strbuf *out, double f, int cells)
{
    if (f < 0) f = 0;
    if (f > 1) f = 1;
    int full = (int)(f * cells);
    strbuf_adds(out, "[");
    for (int i = 0; i < cells; i++)
        strbuf_adds(out, i < full ? "#" : ".");
    strbuf_adds(out, "]");
}

/* head + bar + tail, the bar as long as width allows (BAR_MIN..BAR_MAX);
 * where even BAR_MIN does not fit, head + tail without a bar (the counts
 * matter more), cut to width. */
static void fit(struct strbuf *out, const char *head, double f, const char *tail, int width)
{
    int fixed = (int)strlen(head) + 1 + 2 + 1 + (int)strlen(tail);
    int cells = width - fixed;
    if (cells > BAR_MAX) cells = BAR_MAX;
    struct strbuf line;
    strbuf_init(&line);
    strbuf_addf(&line, "%s ", head);
    if (cells >= BAR_MIN) {
        add_bar(&line, f, cells);
        strbuf_adds(&line, " ");
    }
    strbuf_adds(&line, tail);
    size_t n = line.len < (size_t)width ? line.len : (size_t)width;
    strbuf_add(out, line.buf, n);
    strbuf_free(&line);
}

void progress_campaign_line(struct strbuf *out, const struct progress_campaign *c, double rate, int width)
{
    long long done = progress_campaign_done(c);
    if (width <= 0) {
        strbuf_addf(out,
                    "campaign=%s state=%s total=%lld sent=%lld suppressed=%lld deferred=%lld failed=%lld "
                    "unknown=%lld pending=%lld rate=",
                    c->id, c->state, c->total, c->sent, c->suppressed, c->deferred, c->failed, c->unknown,
                    c->pending);
        add_rate(out, rate);
        strbuf_adds(out, " left=");
        add_left(out, campaign_left(c), rate);
        return;
    }
    struct strbuf head, tail;
    strbuf_init(&head);
    strbuf_init(&tail);
    double f = c->total > 0 ? (double)done / (double)c->total : progress_campaign_ended(c) ? 1 : 0;
    strbuf_addf(&head, "%s %s", c->id, c->state);
    strbuf_addf(&tail, "%d%% %lld/%lld  sent %lld  suppressed %lld  deferred %lld  failed %lld", percent(f),
                done, c->total, c->sent, c->suppressed, c->deferred, c->failed);
    if (c->unknown) strbuf_addf(&tail, "  unknown %lld", c->unknown);
    strbuf_adds(&tail, "  ");
    add_rate(&tail, rate);
    if (!progress_campaign_ended(c)) {
        strbuf_adds(&tail, "  ");
        add_left(&tail, campaign_left(c), rate);
        strbuf_adds(&tail, " left");
    }
    fit(out, head.buf, f, tail.buf, width);
    strbuf_free(&head);
    strbuf_free(&tail);
}

void progress_import_line(struct strbuf *out, long lines, long imported, long skipped, long long bytes,
                          long long size, double rate, int width)
{
    struct strbuf tail;
    strbuf_init(&tail);
    if (size > 0) strbuf_addf(&tail, "%d%% ", percent((double)bytes / (double)size));
    strbuf_addf(&tail, "line %ld  imported %ld  skipped %ld  ", lines, imported, skipped);
    add_rate(&tail, rate);
    if (size > 0 && bytes < size && rate > 0 && lines > 0) {
        /* Lines left, estimated from the bytes per line so far. */
        double left_lines = (double)(size - bytes) * (double)lines / (double)bytes;
        strbuf_adds(&tail, "  ");
        progress_duration(&tail, left_lines / rate);
        strbuf_adds(&tail, " left");
    }
    if (width > 0 && size > 0) {
        fit(out, "import", (double)bytes / (double)size, tail.buf, width);
    } else {
        size_t n = strlen("import ") + tail.len;
        if (width > 0 && n > (size_t)width) n = (size_t)width;
        struct strbuf line;
        strbuf_init(&line);
        strbuf_addf(&line, "import %s", tail.buf);
        strbuf_add(out, line.buf, n);
        strbuf_free(&line);
    }
    strbuf_free(&tail);
}
