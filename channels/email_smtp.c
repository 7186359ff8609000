/*
 * email_smtp.c - the "email_smtp" channel plugin: one email per message,
 * submitted over SMTP (smtp:// with STARTTLS, or smtps://) through libcurl.
 *
 * Owns its validated settings (the instance) and, per message, the curl MIME
 * tree and header/recipient lists the transfer reads (the state). prepare()
 * only fills the easy handle it is given; it never performs the transfer,
 * never touches the network, and neither it nor any other function here
 * logs or keeps an address, a subject or a body: state holds only the curl
 * objects and the Message-ID (campaign and recipient ids, a random part and
 * the sender's domain; or, when the message has an idempotency key, the key
 * and the sender's domain, so every attempt of the message carries the same
 * Message-ID and a relay or mailbox can recognise a second copy).
 *
 * Main invariant: nothing a recipient's profile can put in a message reaches
 * the SMTP dialogue or the header block unescaped. The envelope and To
 * address are checked character by character, the subject and sender name
 * lose CR/LF and control characters and become RFC 2047 encoded-words when
 * they are not plain ASCII, and the bodies travel quoted-printable with CRLF
 * line ends, so a message is either refused before any I/O or well formed.
 * interpret() yields exactly one verdict from the curl code and the last
 * SMTP reply code: 2xx accepted, 4xx or transport failure retry, 5xx or a
 * refused login rejected ("smtp_<code>").
 *
 * The handle must not be performed again after release(): the MIME tree and
 * lists it points to are freed there.
 */
#include <ctype.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <curl/curl.h>
#include <openssl/rand.h>

#include "herald_channel.h"
#include "plugin_util.h"

#define SMTP_ADDR_MAX 254    /* RFC 5321 path limit, less the brackets */
#define SMTP_NAME_MAX 200    /* from_name, in bytes */
#define SMTP_SUBJECT_MAX 900 /* bytes, before encoding */
#define SMTP_URL_MAX 900     /* List-Unsubscribe stays under the 998 line limit */
#define SMTP_HELO_MAX 253
#define SMTP_ID_PART_MAX 40  /* campaign/recipient characters in a Message-ID */
/* Bytes of UTF-8 per encoded-word: 36 bytes -> 48 base64 -> a 60-char word. */
#define SMTP_EW_CHUNK 36

enum smtp_tls { SMTP_TLS_DEFAULT, SMTP_TLS_NONE, SMTP_TLS_STARTTLS, SMTP_TLS_REQUIRED };

struct smtp {
    char *url;         /* smtp[s]://host:port[/helo] */
    bool implicit_tls; /* smtps:// */
    enum smtp_tls tls;
    char *username, *password; /* both or neither */
    char *mail_from;           /* "<from>" for MAIL FROM */
    char *from_header;         /* "From: ..." complete, encoded */
    char *domain;              /* the right side of from, for Message-ID */
    /* The host's clock (the host table outlives no promise, so its
     * function and context are copied). */
    int64_t (*now_ms)(void *ctx);
    void *now_ctx;
};

struct smtp_state {
    curl_mime *mime;
    struct curl_slist *headers;
    struct curl_slist *rcpt;
    char message_id[128]; /* "<...>", as in the header; also the provider id */
};

/* ---- strings -------------------------------------------------------------- */

static bool is_ascii(const char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s >= 0x80) return false;
    return true;
}

/* A copy of s with every control character (CR and LF above all: header
 * injection) turned into one space, runs collapsed, ends trimmed. */
static char *header_text(const char *s)
{
    size_t n = strlen(s);
    char *out = malloc(n + 1);
    if (!out) return NULL;
    size_t o = 0;
    bool space = true; /* drops leading blanks */
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c < 0x20 || c == 0x7f) c = ' ';
        if (c == ' ') {
            if (space) continue;
            space = true;
        } else {
            space = false;
        }
        out[o++] = (char)c;
    }
    while (o > 0 && out[o - 1] == ' ') o--;
    out[o] = '\0';
    return out;
}

static void base64(struct plugin_buf *b, const unsigned char *p, size_t n)
{
    static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    for (size_t i = 0; i < n; i += 3) {
        unsigned v = (unsigned)p[i] << 16;
        if (i + 1 < n) v |= (unsigned)p[i + 1] << 8;
        if (i + 2 < n) v |= p[i + 2];
        char q[4] = {tab[(v >> 18) & 63], tab[(v >> 12) & 63], i + 1 < n ? tab[(v >> 6) & 63] : '=',
                     i + 2 < n ? tab[v & 63] : '='};
        plugin_buf_add(b, q, 4);
    }
}

/* RFC 2047 "B" encoded-words for UTF-8 text s, cut on character boundaries
 * and folded (CRLF SP) between words, which a reader drops when decoding. */
static void encoded_words(struct plugin_buf *b, const char *s)
{
    size_t n = strlen(s);
    bool first = true;
    while (n > 0) {
        size_t take = n < SMTP_EW_CHUNK ? n : SMTP_EW_CHUNK;
        while (take < n && take > 0 && ((unsigned char)s[take] & 0xc0) == 0x80) take--;
        if (!first) plugin_buf_adds(b, "\r\n ");
        plugin_buf_adds(b, "=?UTF-8?B?");
        base64(b, (const unsigned char *)s, take);
        plugin_buf_adds(b, "?=");
        s += take;
        n -= take;
        first = false;
    }
}

/* Appends header text: as is when plain ASCII, else as encoded-words. An
 * ASCII "=?" is encoded too, or a reader would try to decode it. */
static void header_value(struct plugin_buf *b, const char *s)
{
    if (is_ascii(s) && !strstr(s, "=?")) plugin_buf_adds(b, s);
    else encoded_words(b, s);
}

/* ---- addresses ------------------------------------------------------------ */

/* An addr-spec we can put between <> in MAIL FROM / RCPT TO and in headers:
 * local@domain, no blanks, controls or specials that would end the path or
 * start another command. UTF-8 is let through (SMTPUTF8 servers take it). */
static bool address_valid(const char *a)
{
    size_t n = strlen(a);
    if (n < 3 || n > SMTP_ADDR_MAX || !plugin_utf8_valid(a)) return false;
    const char *at = strrchr(a, '@');
    if (!at || at == a || !at[1]) return false;
    for (const char *p = a; *p; p++) {
        unsigned char c = (unsigned char)*p;
        if (c <= 0x20 || c == 0x7f || strchr("<>()[]\\,;:\"", c)) return false;
        if (c == '@' && p != at) return false;
    }
    if (at - a > 64 || a[0] == '.' || at[-1] == '.') return false;
    const char *d = at + 1;
    if (d[0] == '.' || d[0] == '-' || a[n - 1] == '.' || a[n - 1] == '-' || strstr(a, "..")) return false;
    return true;
}

static bool helo_valid(const char *h)
{
    size_t n = strlen(h);
    if (n == 0 || n > SMTP_HELO_MAX) return false;
    for (; *h; h++)
        if (!isalnum((unsigned char)*h) && !strchr(".-:[]", *h)) return false;
    return true;
}

/* ---- create / destroy ----------------------------------------------------- */

static void smtp_destroy(void *instance)
{
    struct smtp *s = instance;
    if (!s) return;
    free(s->url);
    free(s->username);
    if (s->password) {
        /* Not left lying around in freed memory. */
        volatile char *p = s->password;
        while (*p) *p++ = '\0';
        free(s->password);
    }
    free(s->mail_from);
    free(s->from_header);
    free(s->domain);
    free(s);
}

/* Checks url and builds the final one (helo becomes the path: curl sends the
 * URL's path as the EHLO/HELO domain). NULL after reporting a problem. */
static char *build_url(const struct herald_host *host, size_t index, const char *url, const char *helo,
                       bool *implicit_tls)
{
    CURLU *u = curl_url();
    char *scheme = NULL, *hostname = NULL, *part = NULL, *out = NULL;
    if (!u) {
        host->setting_error(host->ctx, index, "out of memory");
        return NULL;
    }
    if (curl_url_set(u, CURLUPART_URL, url, 0) != CURLUE_OK ||
        curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
        curl_url_get(u, CURLUPART_HOST, &hostname, 0) != CURLUE_OK || !hostname[0]) {
        host->setting_error(host->ctx, index, "not a URL: expected smtp://host:port or smtps://host:port");
        goto out;
    }
    if (strcmp(scheme, "smtp") != 0 && strcmp(scheme, "smtps") != 0) {
        host->setting_error(host->ctx, index, "scheme %s: expected smtp:// or smtps://", scheme);
        goto out;
    }
    *implicit_tls = strcmp(scheme, "smtps") == 0;
    if (curl_url_get(u, CURLUPART_USER, &part, 0) == CURLUE_OK) {
        host->setting_error(host->ctx, index, "must not carry credentials: use username and password");
        goto out;
    }
    if (curl_url_get(u, CURLUPART_QUERY, &part, 0) == CURLUE_OK ||
        curl_url_get(u, CURLUPART_FRAGMENT, &part, 0) == CURLUE_OK) {
        host->setting_error(host->ctx, index, "must not have a query or fragment");
        goto out;
    }
    if (curl_url_get(u, CURLUPART_PATH, &part, 0) == CURLUE_OK && strcmp(part, "/") != 0 && part[0]) {
        host->setting_error(host->ctx, index, "must not have a path (name the EHLO domain with helo)");
        goto out;
    }
    curl_free(part);
    part = NULL;
    if (helo) {
        char path[SMTP_HELO_MAX + 2];
        snprintf(path, sizeof(path), "/%s", helo);
        if (curl_url_set(u, CURLUPART_PATH, path, 0) != CURLUE_OK) {
            host->setting_error(host->ctx, index, "cannot add the helo domain to it");
            goto out;
        }
    }
    if (curl_url_get(u, CURLUPART_URL, &part, 0) != CURLUE_OK) {
        host->setting_error(host->ctx, index, "cannot be rebuilt");
        goto out;
    }
    out = strdup(part);
    if (!out) host->setting_error(host->ctx, index, "out of memory");
out:
    curl_free(scheme);
    curl_free(hostname);
    curl_free(part);
    curl_url_cleanup(u);
    return out;
}

/* "From: name <addr>" with the name quoted or encoded as it needs. */
static char *build_from_header(const char *name, const char *addr)
{
    struct plugin_buf b = {0};
    plugin_buf_adds(&b, "From: ");
    if (name && name[0]) {
        if (is_ascii(name) && !strstr(name, "=?")) {
            plugin_buf_adds(&b, "\"");
            for (const char *p = name; *p; p++) {
                if (*p == '"' || *p == '\\') plugin_buf_adds(&b, "\\");
                plugin_buf_add(&b, p, 1);
            }
            plugin_buf_adds(&b, "\"");
        } else {
            encoded_words(&b, name);
        }
        plugin_buf_adds(&b, " <");
        plugin_buf_adds(&b, addr);
        plugin_buf_adds(&b, ">");
    } else {
        plugin_buf_adds(&b, addr);
    }
    return plugin_buf_take(&b);
}

enum { K_URL, K_USERNAME, K_PASSWORD, K_FROM, K_FROM_NAME, K_HELO, K_TLS, K_COUNT };
static const char *const keys[K_COUNT] = {"url", "username", "password", "from", "from_name", "helo", "tls"};

static int smtp_create(const struct herald_host *host, const struct herald_setting *settings, size_t n,
                       void **instance)
{
    const char *val[K_COUNT] = {0};
    size_t idx[K_COUNT];
    int bad = 0;
    for (size_t k = 0; k < K_COUNT; k++) idx[k] = HERALD_SETTING_NONE;

    for (size_t i = 0; i < n; i++) {
        int k = plugin_setting_key(host, settings, i, keys, K_COUNT, val,
                                   "email_smtp takes url, username, password, from, from_name, helo, tls");
        if (k < 0) {
            bad = 1;
            continue;
        }
        idx[k] = i;
        if (!val[k][0] && k != K_FROM_NAME) {
            host->setting_error(host->ctx, i, "must not be empty");
            bad = 1;
        }
    }
    if (!val[K_URL]) {
        host->setting_missing(host->ctx, "url", "missing: name the SMTP server (url = smtp://mail.example.com:587)");
        bad = 1;
    }
    if (!val[K_FROM]) {
        host->setting_missing(host->ctx, "from", "missing: name the sender address (from = news@example.com)");
        bad = 1;
    }
    if (val[K_USERNAME] && !val[K_PASSWORD]) {
        host->setting_missing(host->ctx, "password", "missing: username is set, so password is needed too");
        bad = 1;
    }
    if (val[K_PASSWORD] && !val[K_USERNAME]) {
        host->setting_missing(host->ctx, "username", "missing: password is set, so username is needed too");
        bad = 1;
    }
    if (val[K_FROM] && val[K_FROM][0] && !address_valid(val[K_FROM])) {
        host->setting_error(host->ctx, idx[K_FROM], "not a valid email address");
        bad = 1;
    }
    if (val[K_FROM_NAME]) {
        const char *s = val[K_FROM_NAME];
        bool ctl = false;
        for (const char *p = s; *p; p++)
            if ((unsigned char)*p < 0x20 || *p == 0x7f) ctl = true;
        if (ctl || !plugin_utf8_valid(s) || strlen(s) > SMTP_NAME_MAX) {
            host->setting_error(host->ctx, idx[K_FROM_NAME],
                                "must be UTF-8 text of at most %d bytes without control characters", SMTP_NAME_MAX);
            bad = 1;
        }
    }
    if (val[K_HELO] && val[K_HELO][0] && !helo_valid(val[K_HELO])) {
        host->setting_error(host->ctx, idx[K_HELO], "must be a host name or an address literal ([192.0.2.1])");
        bad = 1;
    }
    enum smtp_tls tls = SMTP_TLS_DEFAULT;
    if (val[K_TLS] && val[K_TLS][0]) {
        if (strcmp(val[K_TLS], "none") == 0) tls = SMTP_TLS_NONE;
        else if (strcmp(val[K_TLS], "starttls") == 0) tls = SMTP_TLS_STARTTLS;
        else if (strcmp(val[K_TLS], "required") == 0) tls = SMTP_TLS_REQUIRED;
        else {
            host->setting_error(host->ctx, idx[K_TLS], "must be none, starttls or required");
            bad = 1;
        }
    }
    if (bad) return -1;

    bool implicit_tls = false;
    char *url = build_url(host, idx[K_URL], val[K_URL], val[K_HELO], &implicit_tls);
    if (!url) return -1;
    if (implicit_tls && (tls == SMTP_TLS_NONE || tls == SMTP_TLS_STARTTLS)) {
        host->setting_error(host->ctx, idx[K_TLS],
                            "smtps:// is TLS from the first byte: leave tls unset or set it to required");
        free(url);
        return -1;
    }

    struct smtp *s = calloc(1, sizeof(*s));
    if (!s) {
        free(url);
        host->setting_error(host->ctx, HERALD_SETTING_NONE, "out of memory");
        return -1;
    }
    s->url = url;
    s->now_ms = host->now_ms;
    s->now_ctx = host->ctx;
    s->implicit_tls = implicit_tls;
    s->tls = tls;
    const char *from = val[K_FROM];
    struct plugin_buf mf = {0};
    plugin_buf_adds(&mf, "<");
    plugin_buf_adds(&mf, from);
    plugin_buf_adds(&mf, ">");
    s->mail_from = plugin_buf_take(&mf);
    s->from_header = build_from_header(val[K_FROM_NAME], from);
    s->domain = strdup(strrchr(from, '@') + 1);
    if (val[K_USERNAME]) {
        s->username = strdup(val[K_USERNAME]);
        s->password = strdup(val[K_PASSWORD]);
    }
    if (!s->mail_from || !s->from_header || !s->domain || (val[K_USERNAME] && (!s->username || !s->password))) {
        smtp_destroy(s);
        host->setting_error(host->ctx, HERALD_SETTING_NONE, "out of memory");
        return -1;
    }
    *instance = s;
    return 0;
}

/* ---- prepare -------------------------------------------------------------- */

static void smtp_release(void *instance, void *state)
{
    (void)instance;
    struct smtp_state *st = state;
    if (!st) return;
    curl_mime_free(st->mime);
    curl_slist_free_all(st->headers);
    curl_slist_free_all(st->rcpt);
    free(st);
}

static int refuse(char *reason, size_t len, const char *why)
{
    snprintf(reason, len, "%s", why);
    return -1;
}

/* RFC 5322 date in UTC: "Tue, 03 Mar 2026 09:00:00 +0000". */
static void rfc5322_date(char *out, size_t len, int64_t now_ms)
{
    static const char *const days[] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
    static const char *const months[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                         "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
    time_t t = (time_t)(now_ms / 1000);
    struct tm tm;
    if (!gmtime_r(&t, &tm)) {
        t = 0;
        gmtime_r(&t, &tm);
    }
    snprintf(out, len, "%s, %02d %s %04d %02d:%02d:%02d +0000", days[tm.tm_wday % 7], tm.tm_mday,
             months[tm.tm_mon % 12], tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec);
}

/* Up to max characters of an id, as dot-atom text (ids may hold ':' and
 * '@', which a Message-ID's left side cannot). */
static void id_part(struct plugin_buf *b, const char *id, size_t max)
{
    for (size_t i = 0; id && id[i] && i < max; i++) {
        char c = id[i];
        if (!isalnum((unsigned char)c) && c != '-' && c != '_' && c != '+') c = '_';
        plugin_buf_add(b, &c, 1);
    }
}

/* The idempotency key as a Message-ID's left side (dot-atom-text): ':'
 * is not atext and becomes '=', and a '.' that would lead, trail or
 * double becomes '~'. Neither '=' nor '~' can be in a key, so two keys
 * never give one Message-ID. */
static void key_part(struct plugin_buf *b, const char *key)
{
    size_t n = strlen(key);
    for (size_t i = 0; i < n; i++) {
        char c = key[i];
        if (c == ':') c = '=';
        else if (c == '.' && (i == 0 || i + 1 == n || key[i + 1] == '.' || key[i - 1] == '.')) c = '~';
        plugin_buf_add(b, &c, 1);
    }
}

/* "<key@domain>" when the message has an idempotency key (the same for
 * every attempt; "<key@herald>" when the sender's domain leaves no room in
 * provider_id), else "<campaign.recipient.random@domain>", shortened to fit. */
static bool message_id(char *out, size_t len, const struct smtp *s, const struct herald_message *m, int64_t now)
{
    if (m->idempotency_key) {
        struct plugin_buf b = {0};
        plugin_buf_adds(&b, "<");
        key_part(&b, m->idempotency_key);
        size_t left = b.len;
        bool fits = left + 1 + strlen(s->domain) + 1 < len;
        plugin_buf_adds(&b, "@");
        plugin_buf_adds(&b, fits ? s->domain : "herald");
        plugin_buf_adds(&b, ">");
        char *id = plugin_buf_take(&b);
        if (!id) return false;
        snprintf(out, len, "%s", id);
        free(id);
        return true;
    }
    unsigned char rnd[8];
    if (RAND_bytes(rnd, sizeof(rnd)) != 1) {
        /* Uniqueness, not secrecy, is what matters here. */
        static unsigned long counter;
        uint64_t v = (uint64_t)now ^ ((uint64_t)(uintptr_t)m << 16) ^ (uint64_t)++counter * 0x9e3779b97f4a7c15u;
        memcpy(rnd, &v, sizeof(rnd));
    }
    char hex[17];
    for (size_t i = 0; i < sizeof(rnd); i++) snprintf(hex + 2 * i, 3, "%02x", rnd[i]);

    /* Room for the ids: "<" a "." b "." hex "@" domain ">" within len-1. */
    size_t fixed = 1 + 1 + 16 + 1 + strlen(s->domain) + 1;
    size_t room = len - 1 > fixed + 2 ? len - 1 - fixed - 2 : 0;
    size_t each = room / 2 < SMTP_ID_PART_MAX ? room / 2 : SMTP_ID_PART_MAX;
    struct plugin_buf b = {0};
    plugin_buf_adds(&b, "<");
    if (each > 0) {
        id_part(&b, m->campaign, each);
        plugin_buf_adds(&b, ".");
        id_part(&b, m->recipient, each);
        plugin_buf_adds(&b, ".");
    }
    plugin_buf_adds(&b, hex);
    plugin_buf_adds(&b, "@");
    plugin_buf_adds(&b, s->domain);
    plugin_buf_adds(&b, ">");
    char *id = plugin_buf_take(&b);
    if (!id) return false;
    snprintf(out, len, "%s", id);
    free(id);
    return true;
}

/* A copy of s with every line ending made CRLF, as SMTP wants; without it
 * curl's quoted-printable encoder would turn a bare LF into "=0A". */
static char *crlf(const char *s)
{
    struct plugin_buf b = {0};
    for (const char *p = s; *p; p++) {
        if (*p == '\r') {
            plugin_buf_adds(&b, "\r\n");
            if (p[1] == '\n') p++;
        } else if (*p == '\n') {
            plugin_buf_adds(&b, "\r\n");
        } else {
            plugin_buf_add(&b, p, 1);
        }
    }
    return plugin_buf_take(&b);
}

static bool add_body_part(curl_mime *mime, const char *body, const char *type)
{
    char *data = crlf(body);
    curl_mimepart *part = data ? curl_mime_addpart(mime) : NULL;
    bool ok = part && curl_mime_data(part, data, CURL_ZERO_TERMINATED) == CURLE_OK &&
              curl_mime_type(part, type) == CURLE_OK && curl_mime_encoder(part, "quoted-printable") == CURLE_OK;
    free(data); /* curl_mime_data copied it */
    return ok;
}

static bool add_header(struct curl_slist **list, const char *line)
{
    struct curl_slist *l = curl_slist_append(*list, line);
    if (!l) return false;
    *list = l;
    return true;
}

static bool add_header_sb(struct curl_slist **list, struct plugin_buf *b)
{
    char *line = plugin_buf_take(b);
    bool ok = line && add_header(list, line);
    free(line);
    return ok;
}

static bool url_valid(const char *u)
{
    size_t n = strlen(u);
    if (n == 0 || n > SMTP_URL_MAX) return false;
    for (; *u; u++) {
        unsigned char c = (unsigned char)*u;
        if (c <= 0x20 || c >= 0x7f || c == '<' || c == '>' || c == '"') return false;
    }
    return true;
}

static int smtp_prepare(void *instance, const struct herald_message *msg, void *curl, void **state, char *reason,
                        size_t reasonlen)
{
    struct smtp *s = instance;
    CURL *h = curl;
    *state = NULL;

    /* Everything that can refuse the message does so here, before any
     * allocation the transfer would need. */
    if (!msg->channel || strcmp(msg->channel, "email") != 0) return refuse(reason, reasonlen, "unsupported_channel");
    if (!msg->to || !msg->to[0]) return refuse(reason, reasonlen, "no_address");
    if (!address_valid(msg->to)) return refuse(reason, reasonlen, "invalid_address");
    if (msg->idempotency_key && !plugin_idempotency_key_valid(msg->idempotency_key))
        return refuse(reason, reasonlen, "invalid_idempotency_key");
    bool has_text = msg->text && msg->text[0], has_html = msg->html && msg->html[0];
    if (!has_text && !has_html) return refuse(reason, reasonlen, "empty_body");
    if (!msg->subject || !plugin_utf8_valid(msg->subject) || (has_text && !plugin_utf8_valid(msg->text)) ||
        (has_html && !plugin_utf8_valid(msg->html)))
        return refuse(reason, reasonlen, msg->subject ? "invalid_utf8" : "empty_subject");
    if (msg->unsubscribe_url && msg->unsubscribe_url[0] && !url_valid(msg->unsubscribe_url))
        return refuse(reason, reasonlen, "invalid_unsubscribe_url");
    char *subject = header_text(msg->subject);
    if (!subject) return refuse(reason, reasonlen, "out_of_memory");
    if (!subject[0] || strlen(subject) > SMTP_SUBJECT_MAX) {
        const char *why = subject[0] ? "subject_too_long" : "empty_subject";
        free(subject);
        return refuse(reason, reasonlen, why);
    }

    struct smtp_state *st = calloc(1, sizeof(*st));
    if (!st) {
        free(subject);
        return refuse(reason, reasonlen, "out_of_memory");
    }
    /* The host's clock, not ours: tests and replays set it. */
    int64_t now = s->now_ms ? s->now_ms(s->now_ctx) : 0;
    char date[64];
    rfc5322_date(date, sizeof(date), now);
    bool ok = message_id(st->message_id, sizeof(st->message_id), s, msg, now);

    /* Headers: curl puts CURLOPT_HTTPHEADER at the top of the mail. */
    struct plugin_buf b = {0};
    ok = ok && add_header(&st->headers, s->from_header);
    plugin_buf_adds(&b, "To: ");
    plugin_buf_adds(&b, msg->to);
    ok = ok && add_header_sb(&st->headers, &b);
    b = (struct plugin_buf){0};
    plugin_buf_adds(&b, "Subject: ");
    header_value(&b, subject);
    ok = ok && add_header_sb(&st->headers, &b);
    free(subject);
    b = (struct plugin_buf){0};
    plugin_buf_adds(&b, "Date: ");
    plugin_buf_adds(&b, date);
    ok = ok && add_header_sb(&st->headers, &b);
    b = (struct plugin_buf){0};
    plugin_buf_adds(&b, "Message-ID: ");
    plugin_buf_adds(&b, st->message_id);
    ok = ok && add_header_sb(&st->headers, &b);
    ok = ok && add_header(&st->headers, "MIME-Version: 1.0");
    if (msg->unsubscribe_url && msg->unsubscribe_url[0]) {
        /* RFC 8058 one-click: the receiving MUA POSTs to the URL. */
        b = (struct plugin_buf){0};
        plugin_buf_adds(&b, "List-Unsubscribe: <");
        plugin_buf_adds(&b, msg->unsubscribe_url);
        plugin_buf_adds(&b, ">");
        ok = ok && add_header_sb(&st->headers, &b);
        ok = ok && add_header(&st->headers, "List-Unsubscribe-Post: List-Unsubscribe=One-Click");
    }

    /* Body, as curl's smtp-mime.c example builds it: the top level (curl's
     * multipart/mixed) holds one inline multipart/alternative part with
     * text/plain first and text/html last (the last is the preferred one).
     * A message with only one of them carries just that part. */
    st->mime = ok ? curl_mime_init(h) : NULL;
    ok = ok && st->mime;
    if (ok && has_text && has_html) {
        curl_mime *alt = curl_mime_init(h);
        ok = alt && add_body_part(alt, msg->text, "text/plain; charset=utf-8") &&
             add_body_part(alt, msg->html, "text/html; charset=utf-8");
        curl_mimepart *part = ok ? curl_mime_addpart(st->mime) : NULL;
        if (part && curl_mime_subparts(part, alt) == CURLE_OK) {
            alt = NULL; /* the part owns it now */
            struct curl_slist *ph = NULL;
            ok = curl_mime_type(part, "multipart/alternative") == CURLE_OK &&
                 add_header(&ph, "Content-Disposition: inline") && curl_mime_headers(part, ph, 1) == CURLE_OK;
            if (!ok) curl_slist_free_all(ph);
        } else {
            ok = false;
        }
        curl_mime_free(alt);
    } else if (ok) {
        ok = has_text ? add_body_part(st->mime, msg->text, "text/plain; charset=utf-8")
                      : add_body_part(st->mime, msg->html, "text/html; charset=utf-8");
    }

    /* Envelope: one recipient; curl copies the strings set here. */
    b = (struct plugin_buf){0};
    plugin_buf_adds(&b, "<");
    plugin_buf_adds(&b, msg->to);
    plugin_buf_adds(&b, ">");
    ok = ok && add_header_sb(&st->rcpt, &b);

    ok = ok && curl_easy_setopt(h, CURLOPT_URL, s->url) == CURLE_OK &&
         curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "smtp,smtps") == CURLE_OK &&
         curl_easy_setopt(h, CURLOPT_MAIL_FROM, s->mail_from) == CURLE_OK &&
         curl_easy_setopt(h, CURLOPT_MAIL_RCPT, st->rcpt) == CURLE_OK &&
         curl_easy_setopt(h, CURLOPT_HTTPHEADER, st->headers) == CURLE_OK &&
         curl_easy_setopt(h, CURLOPT_MIMEPOST, st->mime) == CURLE_OK;
    if (ok && !s->implicit_tls) {
        long use = s->tls == SMTP_TLS_NONE       ? (long)CURLUSESSL_NONE
                   : s->tls == SMTP_TLS_REQUIRED ? (long)CURLUSESSL_ALL
                                                 : (long)CURLUSESSL_TRY;
        ok = curl_easy_setopt(h, CURLOPT_USE_SSL, use) == CURLE_OK;
    }
    if (ok && s->username)
        ok = curl_easy_setopt(h, CURLOPT_USERNAME, s->username) == CURLE_OK &&
             curl_easy_setopt(h, CURLOPT_PASSWORD, s->password) == CURLE_OK;
    if (!ok) {
        smtp_release(s, st);
        return refuse(reason, reasonlen, "out_of_memory");
    }
    *state = st;
    return 0;
}

/* ---- interpret ------------------------------------------------------------ */

static void smtp_interpret(void *instance, void *state, const struct herald_response *resp,
                           struct herald_verdict *v)
{
    (void)instance;
    const struct smtp_state *st = state;
    long code = resp->status;
    int cc = resp->curl_code;
    memset(v, 0, sizeof(*v));

    if (code >= 500 && code <= 599) {
        v->kind = HERALD_VERDICT_REJECTED;
        snprintf(v->reason, sizeof(v->reason), "smtp_%ld", code);
        return;
    }
    if (cc == CURLE_LOGIN_DENIED) {
        v->kind = HERALD_VERDICT_REJECTED;
        if (code > 0) snprintf(v->reason, sizeof(v->reason), "smtp_%ld", code);
        else snprintf(v->reason, sizeof(v->reason), "smtp_login_denied");
        return;
    }
    if (code >= 400 && code <= 499) {
        v->kind = HERALD_VERDICT_RETRY;
        snprintf(v->reason, sizeof(v->reason), "smtp_%ld", code);
        return;
    }
    if (cc == CURLE_OK) {
        /* The transfer completed, so the server took the message with 250
         * at the end of DATA. */
        v->kind = HERALD_VERDICT_ACCEPTED;
        snprintf(v->provider_id, sizeof(v->provider_id), "%s", st ? st->message_id : "");
        return;
    }
    v->kind = HERALD_VERDICT_RETRY;
    const char *why;
    switch (cc) {
    case CURLE_COULDNT_CONNECT:
        why = "connect_failed";
        break;
    case CURLE_COULDNT_RESOLVE_HOST:
        why = "resolve_failed";
        break;
    case CURLE_OPERATION_TIMEDOUT:
        why = "timeout";
        break;
    case CURLE_USE_SSL_FAILED:
        why = "tls_unavailable";
        break;
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_PEER_FAILED_VERIFICATION:
        why = "tls_failed";
        break;
    case CURLE_SEND_ERROR:
    case CURLE_RECV_ERROR:
    case CURLE_GOT_NOTHING:
        why = "connection_lost";
        break;
    default:
        why = NULL;
        break;
    }
    if (why) snprintf(v->reason, sizeof(v->reason), "%s", why);
    else snprintf(v->reason, sizeof(v->reason), "curl_%d", cc);
}

static const struct herald_channel_plugin smtp_plugin = {
    .abi_version = HERALD_CHANNEL_ABI_VERSION,
    .size = sizeof(struct herald_channel_plugin),
    .name = "email_smtp",
    .channels = "email",
    .create = smtp_create,
    .destroy = smtp_destroy,
    .prepare = smtp_prepare,
    .interpret = smtp_interpret,
    .release = smtp_release,
    .deliver = NULL,
};

HERALD_EXPORT const struct herald_channel_plugin *herald_channel_plugin(void) { return &smtp_plugin; }
