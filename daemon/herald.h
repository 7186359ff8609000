/*
 * herald.h - what every module shares: error codes, channels, outcomes,
 * reason codes, allocation wrappers and a bounded string buffer.
 *
 * Pure: no I/O headers. Each list below is an X-macro so that code, docs,
 * metrics labels and tests read the same strings and cannot drift apart.
 * Allocation failure is fatal (xmalloc and friends abort with one line),
 * which removes thousands of untestable branches (Redis, OpenSMTPD).
 */
#ifndef HERALD_H
#define HERALD_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#define HERALD_VERSION "0.1.0"

#if defined(__GNUC__)
#define HERALD_PRINTF(a, b) __attribute__((format(printf, a, b)))
#else
#define HERALD_PRINTF(a, b)
#endif

/* Error codes: functions return 0 or a negative HERALD_E* code. */
#define HERALD_ERRNO_MAP(X)                                   \
    X(INVAL, "invalid input")                                  \
    X(NOMEM, "out of memory")                                  \
    X(IO, "input/output error")                                \
    X(NOENT, "not found")                                      \
    X(TOOBIG, "too large")                                     \
    X(REDIS, "redis error")                                    \
    X(PLUGIN, "plugin error")                                  \
    X(CONFIG, "configuration error")                           \
    X(BUSY, "busy")                                            \
    X(CLOSED, "closed")                                        \
    X(PRECOND, "precondition failed")

enum herald_errno {
    HERALD_OK = 0,
#define X(name, msg) HERALD_E##name,
    HERALD_ERRNO_FIRST_ = 0,
    HERALD_ERRNO_MAP(X)
#undef X
};
/* The codes are negative at use: return -HERALD_EINVAL. */
const char *herald_strerror(int rc);

/*
 * Channels: the one place a channel is described; daemon/channel.h turns
 * each line into a struct channel_desc, and every module asks that instead
 * of naming a channel. Columns: enum suffix; name (jobs, profiles, audit,
 * metrics, plugins; its consent field is "~<name>"); the profile key
 * holding the address; the stem of its address functions in channel.c
 * (channel_<stem>_valid, channel_<stem>_normalise); what an invalid address
 * is not ("<key>: not <rule>"); heraldctl explain's word for the address
 * (the pages' words are in config/locales); whether content takes a
 * subject and html besides text.
 * The order here is only an index; preference order is data.
 */
#define HERALD_CHANNEL_MAP(X)                                                                \
    X(EMAIL, "email", "email", email, "a valid address", "email address", true)             \
    X(SMS, "sms", "phone", phone, "a valid E.164 number (+ then 8..15 digits, the first not 0)", \
      "phone number", false)

enum herald_channel {
#define X(name, ...) HERALD_CH_##name,
    HERALD_CHANNEL_MAP(X)
#undef X
    HERALD_CH_COUNT
};
const char *herald_channel_name(int ch);
/* Returns the channel index or -1 when the name is not a channel. */
int herald_channel_from_name(const char *name);

/* Outcomes of one recipient's decision (audit `outcome`). */
#define HERALD_OUTCOME_MAP(X) \
    X(SENT, "sent")           \
    X(SUPPRESSED, "suppressed") \
    X(DEFERRED, "deferred")   \
    X(FAILED, "failed")       \
    X(UNKNOWN, "unknown")

enum herald_outcome {
#define X(name, str) HERALD_OUTCOME_##name,
    HERALD_OUTCOME_MAP(X)
#undef X
    HERALD_OUTCOME_COUNT
};
const char *herald_outcome_name(int outcome);

/*
 * Reason codes (audit `reason`, metrics label). Stable strings: users build
 * reports on them. `cap:<name>` is formed from CAP plus the cap's name.
 */
#define HERALD_REASON_MAP(X)                                                        \
    X(NONE, "", "sent: no reason")                                                  \
    X(EXPIRED, "expired", "the campaign's expires_at has passed")                   \
    X(UNKNOWN_RECIPIENT, "unknown_recipient", "no profile is stored for this id")   \
    X(TOPIC_OPT_OUT, "topic_opt_out", "the person opted out of the campaign topic") \
    X(NO_CHANNEL, "no_channel", "none of the person's channels is in the campaign") \
    X(NO_CONSENT, "no_consent", "no consent is recorded for the channel")           \
    X(CONSENT_EXPIRED, "consent_expired", "the consent is older than max_age")      \
    X(NO_ADDRESS, "no_address", "the address for the channel is missing or invalid") \
    X(SUPPRESSED, "suppressed", "the address is on the suppression list")           \
    X(DUPLICATE, "duplicate", "this campaign already reached this person")          \
    X(QUIET_HOURS, "quiet_hours", "inside the person's quiet hours")                \
    X(CAP, "cap", "an ops frequency cap is reached")                                \
    X(USER_FREQUENCY, "user_frequency", "the person's own frequency limit is reached") \
    X(INVALID_JOB, "invalid_job", "the job failed validation")                      \
    X(PROVIDER_REJECTED, "provider_rejected", "the provider refused the message")   \
    X(PROVIDER_ERROR, "provider_error", "the provider kept failing")                \
    X(INTERRUPTED, "interrupted", "in flight when the daemon stopped")              \
    X(PROVIDER_UNAVAILABLE, "provider_unavailable",                                 \
      "no provider of the channel was available (circuit open or asking to slow down) before " \
      "the campaign expired or give_up_after passed")                               \
    X(CANCELLED, "cancelled", "an operator cancelled the campaign before this message was sent") \
    X(UNDECRYPTABLE, "undecryptable",                                               \
      "the person's encrypted contact data does not decrypt: its key is not in "   \
      "[privacy] key_file, or the data was altered or copied from another person")

enum herald_reason {
#define X(name, str, doc) HERALD_REASON_##name,
    HERALD_REASON_MAP(X)
#undef X
    HERALD_REASON_COUNT
};
const char *herald_reason_name(int reason);
const char *herald_reason_doc(int reason);

/* Allocation: never returns NULL (aborts with a line on stderr). */
void *xmalloc(size_t n);
void *xcalloc(size_t n, size_t size);
void *xrealloc(void *p, size_t n);
char *xstrdup(const char *s);
char *xstrndup(const char *s, size_t n);

/* Growable byte buffer, always NUL-terminated. */
struct strbuf {
    char *buf;
    size_t len;
    size_t cap;
};
void strbuf_init(struct strbuf *sb);
void strbuf_free(struct strbuf *sb);
void strbuf_reset(struct strbuf *sb);
/* Makes room for cap bytes of content in all (one allocation ahead of many adds). */
void strbuf_grow_to(struct strbuf *sb, size_t cap);
/* Appends len bytes (data may be NULL when len is 0). Inline: the
 * per-message paths call it hundreds of times per message, mostly with a
 * few bytes that fit; strbuf_add_grow does the rest. */
void strbuf_add_grow(struct strbuf *sb, const char *data, size_t len);
static inline void strbuf_add(struct strbuf *sb, const char *data, size_t len)
{
    if (sb->len + len + 1 > sb->cap) {
        strbuf_add_grow(sb, data, len);
        return;
    }
    if (len) memcpy(sb->buf + sb->len, data, len);
    sb->len += len;
    sb->buf[sb->len] = '\0';
}
static inline void strbuf_adds(struct strbuf *sb, const char *s) { strbuf_add(sb, s, strlen(s)); }
void strbuf_addf(struct strbuf *sb, const char *fmt, ...) HERALD_PRINTF(2, 3);
/* Decimal v, without printf (per-message paths). */
void strbuf_addll(struct strbuf *sb, long long v);
/* The same into dst, NUL-terminated; returns its length. */
#define HERALD_LL_CHARS 24 /* "-9223372036854775808" and the NUL, with room */
size_t herald_lltoa(char dst[HERALD_LL_CHARS], long long v);
/* snprintf(dst, cap, "%s", src) without printf: copies at most cap - 1
 * bytes, always terminates (cap > 0), returns the length copied. */
size_t herald_copy(char *dst, size_t cap, const char *src);
/* Hands the buffer to the caller (free() it); sb is left empty. */
char *strbuf_detach(struct strbuf *sb, size_t *len);

/* Bounded formatting into a caller's error buffer (errlen may be 0). */
void herald_seterr(char *err, size_t errlen, const char *fmt, ...) HERALD_PRINTF(3, 4);

/* Sets err to msg and returns -HERALD_EINVAL: `return herald_fail(err, len, "x: y");`. */
int herald_fail(char *err, size_t errlen, const char *msg);
/* Up to 32 printable ASCII characters of s into buf (n >= 8), "..." when cut:
 * for quoting a key or a token of sender text in an error. Never pass an
 * address or a body. Returns buf. */
const char *herald_printable(const char *s, char *buf, size_t n);

/* Identifiers (campaign, recipient, provider ids): 1..128 of [A-Za-z0-9._:-].
 * Restricting them keeps them safe in file names, Redis keys and log lines.
 * Ids are written to logs and audit records, so they must not be contact
 * data: '@' and '+' are refused, so an email address or an E.164 number can
 * never be an id. */
#define HERALD_ID_MAX 128
#define HERALD_ID_CHARS "A-Z a-z 0-9 . _ : -" /* for error messages */
bool herald_id_valid(const char *s);
/* A malloc'd %-decoded copy of n bytes of s (URL user names, passwords,
 * query values), or NULL for a bad escape or a NUL byte (%00). */
char *herald_pct_decode(const char *s, size_t n);

/* Days since 1970-01-01 of a proleptic Gregorian date (Hinnant's algorithm). */
int64_t herald_days_from_civil(int64_t y, unsigned m, unsigned d);

/* RFC 3339 timestamps, UTC seconds. Returns 0 or -HERALD_EINVAL. */
int herald_time_parse(const char *s, int64_t *out);
/* Writes "2026-12-01T09:00:00Z" (21 bytes incl. NUL) into buf. */
void herald_time_format(int64_t t, char *buf, size_t len);

#endif
