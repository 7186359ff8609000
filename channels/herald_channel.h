/*
 * herald_channel.h - the channel plugin ABI (version 2; version 1 plugins
 * still load).
 *
 * A plugin is a shared object (build/channels/<name>.so) that exports one
 * symbol, herald_channel_plugin(), returning a const table. It is built
 * with -fvisibility=hidden, so that HERALD_EXPORT below is all it exports,
 * and reaches the daemon only through struct herald_host: the daemon
 * exports no symbols for it to bind to. The daemon checks
 * abi_version and size before it calls anything else, and refuses a mismatch
 * with one line naming both versions. Structs only ever grow at the end; a
 * new field bumps nothing, a changed meaning bumps HERALD_CHANNEL_ABI_VERSION.
 *
 * The contract (Kannel's driver notes, in MUST/SHOULD form):
 * - create() MUST validate every setting it is given and reject unknown
 *   keys, reporting each problem through host->setting_error() with the
 *   index of the setting, and each absent required key through
 *   host->setting_missing() with its name. It
 *   returns 0 and an instance, or -1 after reporting at least one error.
 *   It MUST NOT perform network I/O.
 * - A network plugin implements prepare() and interpret(): prepare() only
 *   fills the curl easy handle it is given (URL, headers, body, auth; SMTP
 *   through curl's MIME API) and MUST NOT perform the transfer; the daemon
 *   owns the curl multi handle and all I/O. interpret() is pure: from the
 *   status, headers and body it yields exactly one verdict.
 * - A local plugin (outbox) implements deliver() instead. The daemon calls
 *   it from its worker thread pool, never on the event loop, so it MAY block
 *   on the file system; it MUST be safe to call concurrently on one instance.
 * - A plugin MUST NOT log, or store anywhere, an address, phone number or
 *   message body; host->log() is for ids and settings names only.
 * - Strings handed to a plugin are valid for the duration of the call only.
 * - A network plugin SHOULD send msg->idempotency_key (when not NULL) where
 *   its provider's API takes one, and otherwise where the provider carries
 *   it along (a header, custom arguments), so that a provider or the
 *   operator can recognise a second request for the same message. It is
 *   the same for every attempt of one message, across retries, failover
 *   and daemon restarts. NULL means no key: send none.
 *
 * Growth of this ABI (version 1), each at the end of its struct:
 * - struct herald_message.idempotency_key: an opaque ASCII string of at
 *   most HERALD_IDEMPOTENCY_KEY_MAX characters of [A-Za-z0-9._:-], or NULL.
 *   A plugin MUST NOT assume more of it (format, uniqueness scheme).
 * - struct herald_verdict.slow_down: set with a RETRY verdict when the
 *   provider answered "too many requests" (HTTP 429): it is up and asks
 *   for less traffic, so the daemon pauses the provider for Retry-After and
 *   neither counts the answer against the message's retries nor against
 *   the provider's circuit breaker. Older plugins leave it 0.
 *
 * Version 2 (provider feedback): the table grows feedback and
 * feedback_route (below), struct herald_message grows status_url. The
 * daemon loads a version 1 plugin as before (its table ends at deliver:
 * the daemon never reads past it) and a version 2 plugin with its
 * feedback; any other version is refused. A version 2 plugin MAY leave
 * feedback NULL.
 * - feedback() verifies and reads one HTTP request its provider posted to
 *   POST /v1/webhooks/<provider name>. It is pure apart from the crypto:
 *   no I/O, no logging of what the request carries. It MUST check the
 *   provider's signature over the exact bytes received before it reads the
 *   body, and MUST either report every event of the request (through
 *   req->emit, in order) and return HERALD_FEEDBACK_OK, or return an error
 *   status; events emitted before an error are discarded by the daemon,
 *   which applies nothing of a refused request. Every string it passes to
 *   emit() needs to live only until emit() returns (the daemon copies
 *   what it keeps); every string of req lives until feedback() returns.
 *
 * Growth of version 2, at the end of its table:
 * - flags (HERALD_CHANNEL_SAME_OPTIONS below). The daemon reads it only
 *   from a table whose size covers it; an older version 2 table (its size
 *   HERALD_CHANNEL_PLUGIN_V2_SIZE) and a version 1 table count as 0.
 */
#ifndef HERALD_CHANNEL_H
#define HERALD_CHANNEL_H

#include <stddef.h>
#include <stdint.h>

#define HERALD_CHANNEL_ABI_VERSION 2u
/* The oldest version the daemon still loads (its table ends at deliver). */
#define HERALD_CHANNEL_ABI_VERSION_MIN 1u
#define HERALD_CHANNEL_SYMBOL "herald_channel_plugin"
#define HERALD_SETTING_NONE ((size_t)-1)
#define HERALD_IDEMPOTENCY_KEY_MAX 64

struct herald_feedback_request; /* ABI 2, below */
struct herald_feedback_reply;

enum herald_log_level { HERALD_LOG_DEBUG, HERALD_LOG_INFO, HERALD_LOG_WARN, HERALD_LOG_ERROR };

/* One `key = value` of the plugin's [provider NAME] section. */
struct herald_setting {
    const char *key;
    const char *value;
};

/* What the daemon offers a plugin. */
struct herald_host {
    uint32_t abi_version;
    size_t size;
    void *ctx; /* opaque, pass back to the callbacks */
    void (*log)(void *ctx, enum herald_log_level level, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));
    /* Reports a problem with setting index (or HERALD_SETTING_NONE). */
    void (*setting_error)(void *ctx, size_t index, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));
    int64_t (*now_ms)(void *ctx); /* wall clock, milliseconds since the epoch */
    /* Directory of the config file: a plugin resolves relative paths in its
     * settings against it, as the daemon does for its own. */
    const char *base_dir;
    /* Reports a required setting that is absent, naming its key. */
    void (*setting_missing)(void *ctx, const char *key, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));
};

/* One personalised message. Every pointer is valid during the call only. */
struct herald_message {
    const char *campaign;
    const char *recipient;       /* the person's id */
    const char *channel;         /* "email" or "sms" */
    const char *topic;
    const char *to;              /* address or E.164 number */
    const char *subject;         /* email; NULL for sms */
    const char *text;
    const char *html;            /* email; may be NULL */
    const char *unsubscribe_url; /* signed, may be NULL when no public_url */
    const char *preferences_url;
    /* The same for every attempt of this message (retries, failover,
     * restarts); NULL: send no key. At most HERALD_IDEMPOTENCY_KEY_MAX
     * characters of [A-Za-z0-9._:-]; opaque otherwise. */
    const char *idempotency_key;
    /* ABI 2: the URL where the provider should post this message's
     * delivery status (public_url + "/v1/webhooks/<provider name>"), when
     * the provider has `feedback = on` and herald has a public_url; else
     * NULL: ask for no callback. */
    const char *status_url;
};

enum herald_verdict_kind {
    HERALD_VERDICT_ACCEPTED = 0, /* the provider took it: never send it again */
    HERALD_VERDICT_RETRY = 1,    /* temporary: try again (this or another provider) */
    HERALD_VERDICT_REJECTED = 2  /* permanent: record failed with reason */
};

struct herald_verdict {
    enum herald_verdict_kind kind;
    char provider_id[128]; /* provider's message id, when accepted */
    int64_t retry_after_ms; /* RETRY: minimum delay asked by the provider, 0 = none */
    char reason[128];       /* REJECTED/RETRY: short machine-friendly reason */
    int slow_down;          /* RETRY: the provider is up and asks to slow down (429) */
};

/* The provider's reply, as the daemon collected it (bounded in size). */
struct herald_response {
    int curl_code;          /* CURLcode of the transfer; 0 = completed */
    long status;            /* HTTP status or SMTP reply code */
    const char *headers;    /* raw header block, NUL-terminated */
    size_t headers_len;
    const char *body;       /* NUL-terminated */
    size_t body_len;
};

struct herald_channel_plugin {
    uint32_t abi_version; /* HERALD_CHANNEL_ABI_VERSION */
    size_t size;          /* sizeof(struct herald_channel_plugin) */
    const char *name;     /* "outbox", "email_smtp", ... */
    const char *channels; /* comma-separated channels it can carry: "email,sms" */

    int (*create)(const struct herald_host *host, const struct herald_setting *settings,
                  size_t nsettings, void **instance);
    void (*destroy)(void *instance);

    /* Network plugins: fill `curl` (a CURL *) for msg. *state may carry per
     * request data to interpret() and release(). 0, or -1 with a reason
     * (the message is then rejected without any I/O). */
    int (*prepare)(void *instance, const struct herald_message *msg, void *curl, void **state,
                   char *reason, size_t reasonlen);
    void (*interpret)(void *instance, void *state, const struct herald_response *resp,
                      struct herald_verdict *verdict);
    void (*release)(void *instance, void *state);

    /* Local plugins: deliver msg (may block; runs on a worker thread). */
    void (*deliver)(void *instance, const struct herald_message *msg,
                    struct herald_verdict *verdict);

    /* ---- ABI 2 (not present in a version 1 table) ---- */
    /* Verifies and reads a provider callback (see the top of this file).
     * Returns HERALD_FEEDBACK_OK with every event emitted (and reply
     * filled or left empty), or another status with err set (a short text
     * naming fields, never their values: it is answered and logged). */
    int (*feedback)(void *instance, const struct herald_feedback_request *req,
                    struct herald_feedback_reply *reply, char *err, size_t errlen);
    /* A second route segment the plugin's providers answer under, for
     * callbacks configured before routes named providers ("sendgrid" for
     * /v1/webhooks/sendgrid): each such provider is tried in file order
     * until one verifies. NULL: none. */
    const char *feedback_route;
    /* Headers without which feedback() can only answer UNSIGNED, NULL
     * terminated: the daemon refuses such a request 401 before reading
     * its body. NULL: none. */
    const char *const *feedback_headers;

    /* ---- grown within ABI 2: read only when size covers it ---- */
    uint32_t flags; /* HERALD_CHANNEL_* flags below, 0 for none */
};

/* prepare() sets the same curl options on every call, only their values
 * differ (a network plugin's promise), and sets none when it returns -1.
 * The daemon may then hand it the easy handle of the same provider's
 * previous request without curl_easy_reset: every option that request had
 * is set again, so nothing of it survives, and curl's reset of the whole
 * handle (a few microseconds each time) is spared. Without the flag each
 * handle is reset before prepare(). */
#define HERALD_CHANNEL_SAME_OPTIONS 1u

/* sizeof a version 1 table: the daemon reads no further in one. */
#define HERALD_CHANNEL_PLUGIN_V1_SIZE (offsetof(struct herald_channel_plugin, deliver) + sizeof(void (*)(void)))
/* sizeof a version 2 table before flags: the least a version 2 table has. */
#define HERALD_CHANNEL_PLUGIN_V2_SIZE \
    (offsetof(struct herald_channel_plugin, feedback_headers) + sizeof(const char *const *))

/* ---- ABI 2: provider feedback ------------------------------------------ */

/* What an event says about a message (or, for keywords, about a number). */
enum herald_feedback_kind {
    HERALD_FEEDBACK_IGNORED = 0,    /* read and valid, asks for nothing (open, click, processed, sent, ...) */
    HERALD_FEEDBACK_DELIVERED,      /* the receiving side took it */
    HERALD_FEEDBACK_BOUNCED_HARD,   /* permanent: the address does not take mail (suppressed) */
    HERALD_FEEDBACK_BOUNCED_SOFT,   /* refused for now (blocked, mailbox full); no suppression */
    HERALD_FEEDBACK_COMPLAINED,     /* marked as spam (suppressed) */
    HERALD_FEEDBACK_UNSUBSCRIBED,   /* the provider's own unsubscribe (suppressed, no audit record) */
    HERALD_FEEDBACK_FAILED,         /* the provider could not send it */
    HERALD_FEEDBACK_UNDELIVERED,    /* the carrier could not deliver it */
    HERALD_FEEDBACK_KEYWORD_STOP,   /* inbound SMS: revoke SMS consent of address */
    HERALD_FEEDBACK_KEYWORD_START,  /* inbound SMS: grant it again */
    HERALD_FEEDBACK_KEYWORD_HELP    /* inbound SMS: answered and counted */
};

/* One event. Strings live until emit() returns; NULL when absent. */
struct herald_feedback_event {
    enum herald_feedback_kind kind;
    /* The provider's id of this event, the same when the provider posts it
     * again (SendGrid's sg_event_id; Twilio: MessageSid, plus ":status" for
     * a status callback): 1..128 characters of [A-Za-z0-9._:=_-]. Required
     * for every kind but IGNORED. */
    const char *event_id;
    /* The message's provider id as the ACCEPTED verdict gave it (NULL for
     * keywords): herald finds the message through it. */
    const char *provider_id;
    /* The campaign and recipient ids when the provider echoes them back
     * (custom arguments the plugin sent): then herald needs no lookup. */
    const char *campaign, *recipient;
    const char *channel; /* "email" or "sms" */
    /* The address or number the event is about: the daemon uses it only to
     * suppress it or to find the person (keywords), never logs or stores
     * it in clear. */
    const char *address;
    int64_t at;          /* seconds since the epoch (the provider's), 0 unknown */
    /* Short, machine-friendly detail for the audit reason ("bounce",
     * "dropped", "twilio_30003"): [A-Za-z0-9._:=_-], at most 64; NULL none. */
    const char *detail;
};

/* One HTTP request a provider posted. */
struct herald_feedback_request {
    const char *method; /* "POST" */
    const char *path;   /* as sent ("/v1/webhooks/tw"), without the query */
    const char *query;  /* after '?', "" none */
    /* The URL the provider was told to call: public_url + path (+ "?" +
     * query), or NULL when herald has no public_url. */
    const char *url;
    const char *(*header)(const void *hctx, const char *name); /* first of that name, or NULL */
    const void *hctx;
    const char *body; /* body_len bytes, NUL-terminated */
    size_t body_len;
    int64_t now;      /* seconds since the epoch */
    void (*emit)(void *ectx, const struct herald_feedback_event *ev);
    void *ectx;
};

/* What to answer the provider on success, when it expects a particular
 * body (Twilio: TwiML); left empty, the daemon answers its JSON summary. */
struct herald_feedback_reply {
    char content_type[64];
    char body[512];
};

enum herald_feedback_status {
    HERALD_FEEDBACK_OK = 0,
    HERALD_FEEDBACK_UNSIGNED = 401,  /* the signature headers are missing */
    HERALD_FEEDBACK_FORBIDDEN = 403, /* no key configured, or it does not verify, or too old */
    HERALD_FEEDBACK_INVALID = 400    /* signed, but not what the provider sends */
};

typedef const struct herald_channel_plugin *(*herald_channel_entry_fn)(void);

/* The one symbol a plugin exports (the others stay inside it: plugins are
 * built with -fvisibility=hidden). Declared here so that a plugin that
 * forgets the mark on its definition still exports it. */
#define HERALD_EXPORT __attribute__((visibility("default")))
HERALD_EXPORT const struct herald_channel_plugin *herald_channel_plugin(void);

#endif
