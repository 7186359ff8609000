/*
 * log.c - stderr logging with levels and complain/recover rate limiting,
 * as text or JSON lines, with syslog priorities when stderr is the journal.
 * Never formats an address or body: callers pass ids (see log.h). Every
 * line is built in one buffer and written with one call, so lines of
 * concurrent writers (plugins' worker threads) never interleave.
 */
#include "log.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static enum log_level min_level = LOG_INFO;
static enum log_format format = LOG_FORMAT_TEXT;
static bool journal; /* stderr is journald's stream: lines start with <priority> */
static const char *level_names[] = {"debug", "info", "warn", "error"};
static const int level_priority[] = {7, 6, 4, 3}; /* syslog: debug, info, warning, err */
static const char *format_names[] = {"text", "json"};

void log_set_level(enum log_level level) { min_level = level; }

/* systemd sets JOURNAL_STREAM=DEV:INODE of the stream it connects to
 * stdout/stderr; it is ours only if fd 2 is still that stream. */
static bool stderr_is_journal(void)
{
    const char *js = getenv("JOURNAL_STREAM");
    unsigned long long dev, ino;
    struct stat st;
    if (!js || sscanf(js, "%llu:%llu", &dev, &ino) != 2 || fstat(STDERR_FILENO, &st) != 0) return false;
    return (unsigned long long)st.st_dev == dev && (unsigned long long)st.st_ino == ino;
}

void log_set_format(enum log_format f)
{
    format = f;
    journal = stderr_is_journal();
}

int log_format_from_name(const char *name)
{
    for (size_t i = 0; i < sizeof(format_names) / sizeof(format_names[0]); i++)
        if (strcmp(name, format_names[i]) == 0) return (int)i;
    return -1;
}

int log_level_from_name(const char *name)
{
    for (size_t i = 0; i < sizeof(level_names) / sizeof(level_names[0]); i++)
        if (strcmp(name, level_names[i]) == 0) return (int)i;
    return -1;
}

bool log_enabled(enum log_level level) { return level >= min_level; }

/* ---- JSON lines ------------------------------------------------------ */

struct jbuf {
    char *p;
    size_t len, cap; /* cap keeps room for the closing "}\n" */
};

static void jraw(struct jbuf *b, const char *s, size_t n)
{
    if (n > b->cap - b->len) n = b->cap - b->len;
    memcpy(b->p + b->len, s, n);
    b->len += n;
}

/* A JSON string of n bytes of s; cut short (never mid-escape) when full. */
static void jstr(struct jbuf *b, const char *s, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    if (b->cap - b->len < 2) return;
    b->p[b->len++] = '"';
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        char esc[6];
        size_t k = 0;
        if (ch == '"' || ch == '\\') {
            esc[k++] = '\\';
            esc[k++] = (char)ch;
        } else if (ch < 0x20 || ch == 0x7f) {
            esc[k++] = '\\';
            esc[k++] = 'u';
            esc[k++] = '0';
            esc[k++] = '0';
            esc[k++] = hex[ch >> 4];
            esc[k++] = hex[ch & 15];
        } else {
            esc[k++] = (char)ch;
        }
        if (b->cap - b->len < k + 1) break; /* keep room for the closing quote */
        memcpy(b->p + b->len, esc, k);
        b->len += k;
    }
    b->p[b->len++] = '"';
}

/* At s (a word's start): a context key "name=" ([A-Za-z_][A-Za-z0-9_.-]*)? */
static size_t kv_key(const char *s, const char *end)
{
    const char *q = s;
    if (q >= end || !(isalpha((unsigned char)*q) || *q == '_')) return 0;
    while (q < end && (isalnum((unsigned char)*q) || *q == '_' || *q == '.' || *q == '-')) q++;
    return q < end && *q == '=' ? (size_t)(q - s) : 0;
}

/* The next " key=" after from, or end. */
static const char *kv_next(const char *from, const char *end)
{
    for (const char *q = from; q < end; q++)
        if (*q == ' ' && kv_key(q + 1, end)) return q;
    return end;
}

/* msg is the text before the first key=value; each key=value becomes a
 * field whose value runs to the next " key=" (so an error text at the end
 * keeps its spaces). Fields named like the fixed ones get a "ctx_" prefix. */
static size_t json_line(char *out, size_t cap, const char *stamp, enum log_level level, const char *module,
                        const char *text)
{
    struct jbuf b = {out, 0, cap - 3};
    const char *end = text + strlen(text);
    const char *first = kv_key(text, end) ? text : kv_next(text, end);
    const char *msg_end = first;
    while (msg_end > text && msg_end[-1] == ' ') msg_end--;
    jraw(&b, "{\"ts\":", 6);
    jstr(&b, stamp, strlen(stamp));
    jraw(&b, ",\"level\":", 9);
    jstr(&b, level_names[level], strlen(level_names[level]));
    jraw(&b, ",\"module\":", 10);
    jstr(&b, module, strlen(module));
    jraw(&b, ",\"msg\":", 7);
    jstr(&b, text, (size_t)(msg_end - text));
    for (const char *k = first; k < end;) {
        if (*k == ' ') k++;
        size_t klen = kv_key(k, end);
        const char *v = k + klen + 1;
        const char *vend = kv_next(v, end);
        jraw(&b, ",", 1);
        if ((klen == 2 && memcmp(k, "ts", 2) == 0) || (klen == 3 && memcmp(k, "msg", 3) == 0) ||
            (klen == 5 && memcmp(k, "level", 5) == 0) || (klen == 6 && memcmp(k, "module", 6) == 0)) {
            char renamed[16];
            int n = snprintf(renamed, sizeof(renamed), "ctx_%.*s", (int)klen, k);
            jstr(&b, renamed, (size_t)n);
        } else {
            jstr(&b, k, klen);
        }
        jraw(&b, ":", 1);
        size_t vlen = (size_t)(vend - v);
        if (vlen >= 2 && v[0] == '"' && v[vlen - 1] == '"') jstr(&b, v + 1, vlen - 2);
        else jstr(&b, v, vlen);
        k = vend;
    }
    out[b.len++] = '}';
    return b.len;
}

void log_vwrite(enum log_level level, const char *module, const char *fmt, va_list ap)
{
    if (!log_enabled(level)) return;
    char text[2048];
    char line[16384]; /* text escaped as JSON may grow sixfold */
    char stamp[40];
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    size_t sn = strftime(stamp, sizeof(stamp), "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(stamp + sn, sizeof(stamp) - sn, ".%03ldZ", ts.tv_nsec / 1000000L);
    vsnprintf(text, sizeof(text), fmt, ap);
    size_t len = 0;
    if (journal) len = (size_t)snprintf(line, sizeof(line), "<%d>", level_priority[level]);
    if (format == LOG_FORMAT_JSON) {
        len += json_line(line + len, sizeof(line) - len - 1, stamp, level, module, text);
    } else {
        int n = snprintf(line + len, sizeof(line) - len - 1, "%s %s %s: %s", stamp, level_names[level], module, text);
        if (n > 0) len += (size_t)n < sizeof(line) - len - 1 ? (size_t)n : sizeof(line) - len - 2;
    }
    /* One write per line so concurrent writers do not interleave mid-line. */
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
