/*
 * outbox.c - the "outbox" channel plugin: each message becomes one JSON file,
 * <dir>/<campaign>/<recipient>.<channel>.json. The embedded default: it
 * needs no provider and lets anyone see what herald would have sent.
 *
 * Owns only its directory. It never logs, and never writes anywhere but
 * that file, an address or a body (the file is the delivery itself, created
 * 0600 in directories created 0700). It never touches the network.
 *
 * Main invariant: a message file is either absent or complete. It is written
 * to a temporary ".<name>.XXXXXX" in the same directory, fsync'ed and renamed
 * into place, so a reader never sees half a file and a crash leaves at worst
 * a dot-file behind. deliver() runs concurrently on worker threads: the
 * instance is read-only after create(), and each call uses only its own
 * temporary file.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* mkostemp */
#endif
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>

#include "herald_channel.h"

/* Ids are checked by the daemon (herald_id_valid: 1..128 characters); the
 * plugin checks again what matters to a path. */
#define OUTBOX_ID_MAX 128

struct outbox {
    char *dir; /* absolute, or relative to the daemon's working directory */
};

/* ---- helpers ------------------------------------------------------------- */

static char *join(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    char *s = malloc(la + lb + 2);
    if (!s) return NULL;
    memcpy(s, a, la);
    s[la] = '/';
    memcpy(s + la + 1, b, lb + 1);
    return s;
}

static char *concat(const char *a, const char *b, const char *c, const char *d)
{
    size_t la = strlen(a), lb = strlen(b), lc = strlen(c), ld = strlen(d);
    char *s = malloc(la + lb + lc + ld + 1);
    if (!s) return NULL;
    memcpy(s, a, la);
    memcpy(s + la, b, lb);
    memcpy(s + la + lb, c, lc);
    memcpy(s + la + lb + lc, d, ld + 1);
    return s;
}

/* mkdir -p: 0, or -1 with errno. */
static int mkdir_p(const char *path)
{
    char *copy = strdup(path);
    if (!copy) return -1;
    for (char *p = copy + 1; *p; p++) {
        if (*p != '/') continue;
        *p = '\0';
        if (mkdir(copy, 0700) != 0 && errno != EEXIST) {
            int e = errno;
            free(copy);
            errno = e;
            return -1;
        }
        *p = '/';
    }
    int rc = mkdir(copy, 0700);
    int e = errno;
    free(copy);
    if (rc != 0 && e != EEXIST) {
        errno = e;
        return -1;
    }
    struct stat st;
    if (stat(path, &st) != 0) return -1;
    if (!S_ISDIR(st.st_mode)) {
        errno = ENOTDIR;
        return -1;
    }
    return 0;
}

static int fsync_dir(const char *path)
{
    int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return -1;
    int rc = fsync(fd);
    int e = errno;
    close(fd);
    errno = e;
    return rc;
}

static int write_all(int fd, const char *buf, size_t len)
{
    while (len > 0) {
        ssize_t n = write(fd, buf, len);
        if (n < 0) {
            if (errno == EINTR) continue;
            return -1;
        }
        buf += n;
        len -= (size_t)n;
    }
    return 0;
}

static bool id_safe(const char *s)
{
    return s && s[0] && s[0] != '.' && !strchr(s, '/') && strlen(s) <= OUTBOX_ID_MAX;
}

/* ---- create / destroy ---------------------------------------------------- */

static int outbox_create(const struct herald_host *host, const struct herald_setting *settings, size_t n,
                         void **instance)
{
    const char *dir = NULL;
    size_t dir_index = HERALD_SETTING_NONE;
    int bad = 0;
    for (size_t i = 0; i < n; i++) {
        if (strcmp(settings[i].key, "dir") == 0) {
            if (dir) {
                host->setting_error(host->ctx, i, "given twice");
                bad = 1;
            } else if (!settings[i].value[0]) {
                host->setting_error(host->ctx, i, "must not be empty");
                bad = 1;
            }
            dir = settings[i].value;
            dir_index = i;
        } else {
            host->setting_error(host->ctx, i, "unknown setting (outbox takes only dir)");
            bad = 1;
        }
    }
    if (!dir) {
        host->setting_missing(host->ctx, "dir", "missing: name the outbox directory (dir = /var/lib/herald/outbox)");
        return -1;
    }
    if (bad) return -1;

    /* base_dir arrived after version 1 first shipped: read it only when the
     * host's table is large enough to hold it. */
    const char *base = NULL;
    if (host->size >= offsetof(struct herald_host, base_dir) + sizeof(host->base_dir)) base = host->base_dir;
    char *path = dir[0] != '/' && base && base[0] ? join(base, dir) : strdup(dir);
    if (!path) {
        host->setting_error(host->ctx, dir_index, "out of memory");
        return -1;
    }
    if (mkdir_p(path) != 0) {
        host->setting_error(host->ctx, dir_index, "cannot create %s: %s", path, strerror(errno));
        free(path);
        return -1;
    }
    /* Prove it is writable the way deliver() will write. */
    char *probe = join(path, ".probe.XXXXXX");
    int fd = probe ? mkostemp(probe, O_CLOEXEC) : -1;
    if (fd < 0) {
        host->setting_error(host->ctx, dir_index, "%s is not writable: %s", path,
                            probe ? strerror(errno) : "out of memory");
        free(probe);
        free(path);
        return -1;
    }
    close(fd);
    unlink(probe);
    free(probe);

    struct outbox *o = calloc(1, sizeof(*o));
    if (!o) {
        host->setting_error(host->ctx, dir_index, "out of memory");
        free(path);
        return -1;
    }
    o->dir = path;
    *instance = o;
    return 0;
}

static void outbox_destroy(void *instance)
{
    struct outbox *o = instance;
    if (!o) return;
    free(o->dir);
    free(o);
}

/* ---- deliver -------------------------------------------------------------- */

static void verdict(struct herald_verdict *v, enum herald_verdict_kind kind, const char *reason)
{
    v->kind = kind;
    snprintf(v->reason, sizeof(v->reason), "%s", reason);
}

/* Transient conditions an operator or time fixes: worth a retry. */
static void io_verdict(struct herald_verdict *v, int err)
{
    switch (err) {
    case ENOSPC:
    case EDQUOT:
    case EIO:
    case EAGAIN:
    case EINTR:
    case ENOMEM:
    case EMFILE:
    case ENFILE:
    case EBUSY:
        verdict(v, HERALD_VERDICT_RETRY, "io_error");
        return;
    case EACCES:
    case EPERM:
        verdict(v, HERALD_VERDICT_REJECTED, "permission_denied");
        return;
    case EROFS:
        verdict(v, HERALD_VERDICT_REJECTED, "read_only_fs");
        return;
    case ENAMETOOLONG:
        verdict(v, HERALD_VERDICT_REJECTED, "name_too_long");
        return;
    default:
        verdict(v, HERALD_VERDICT_REJECTED, "io_failed");
        return;
    }
}

/* Adds key: s when s is given; false when s is not valid UTF-8. */
static bool put(json_t *o, const char *key, const char *s)
{
    if (!s) return true;
    json_t *j = json_string(s);
    return j && json_object_set_new(o, key, j) == 0;
}

static char *render(const struct herald_message *m, bool email)
{
    json_t *o = json_object();
    if (!o) return NULL;
    bool ok = put(o, "campaign", m->campaign) && put(o, "recipient", m->recipient) &&
              put(o, "channel", m->channel) && put(o, "topic", m->topic ? m->topic : "") &&
              put(o, "to", m->to) && put(o, "text", m->text ? m->text : "") &&
              put(o, "unsubscribe_url", m->unsubscribe_url) && put(o, "preferences_url", m->preferences_url) &&
              put(o, "idempotency_key", m->idempotency_key); /* absent when the message has none */
    if (ok && email) ok = put(o, "subject", m->subject ? m->subject : "") && put(o, "html", m->html);
    char *s = ok ? json_dumps(o, JSON_INDENT(2) | JSON_SORT_KEYS) : NULL;
    json_decref(o);
    return s;
}

/* Writes data to dir/name atomically. 0, or -1 with errno. */
static int write_atomic(const char *dir, const char *name, const char *data)
{
    char *final = join(dir, name);
    char *tmp = concat(dir, "/.", name, ".XXXXXX");
    if (!final || !tmp) {
        free(final);
        free(tmp);
        errno = ENOMEM;
        return -1;
    }
    int rc = -1, e = 0;
    int fd = mkostemp(tmp, O_CLOEXEC);
    if (fd < 0) {
        e = errno;
        goto out;
    }
    if (write_all(fd, data, strlen(data)) != 0 || write_all(fd, "\n", 1) != 0 || fsync(fd) != 0) {
        e = errno;
        close(fd);
        unlink(tmp);
        goto out;
    }
    if (close(fd) != 0) {
        e = errno;
        unlink(tmp);
        goto out;
    }
    if (rename(tmp, final) != 0) {
        e = errno;
        unlink(tmp);
        goto out;
    }
    /* The rename itself is durable only once the directory is synced (some
     * file systems cannot sync a directory: EINVAL, nothing more to do). */
    if (fsync_dir(dir) != 0 && errno != EINVAL) {
        e = errno;
        goto out;
    }
    rc = 0;
out:
    free(final);
    free(tmp);
    errno = e;
    return rc;
}

static void outbox_deliver(void *instance, const struct herald_message *msg, struct herald_verdict *v)
{
    struct outbox *o = instance;
    memset(v, 0, sizeof(*v));
    if (!id_safe(msg->campaign) || !id_safe(msg->recipient)) {
        verdict(v, HERALD_VERDICT_REJECTED, "invalid_id");
        return;
    }
    bool email = msg->channel && strcmp(msg->channel, "email") == 0;
    if (!email && !(msg->channel && strcmp(msg->channel, "sms") == 0)) {
        verdict(v, HERALD_VERDICT_REJECTED, "unsupported_channel");
        return;
    }
    if (!msg->to || !msg->to[0]) {
        verdict(v, HERALD_VERDICT_REJECTED, "no_address");
        return;
    }
    char *data = render(msg, email);
    if (!data) {
        verdict(v, HERALD_VERDICT_REJECTED, "invalid_utf8");
        return;
    }
    char *cdir = join(o->dir, msg->campaign);
    char *name = concat(msg->recipient, ".", msg->channel, ".json");
    if (!cdir || !name) {
        verdict(v, HERALD_VERDICT_RETRY, "io_error");
        goto out;
    }
    if (mkdir(cdir, 0700) == 0) {
        (void)fsync_dir(o->dir); /* best effort: the new entry survives a crash */
    } else if (errno != EEXIST) {
        /* The outbox itself went away (cleaned up by hand): recreate it. */
        if (errno != ENOENT || mkdir_p(cdir) != 0) {
            io_verdict(v, errno);
            goto out;
        }
    }
    if (write_atomic(cdir, name, data) != 0) {
        io_verdict(v, errno);
        goto out;
    }
    v->kind = HERALD_VERDICT_ACCEPTED;
    /* Ids of up to 128 characters each can exceed provider_id: the prefix
     * that fits is kept (the audit record also carries both ids). */
    snprintf(v->provider_id, sizeof(v->provider_id), "outbox:%s/%s.%s", msg->campaign, msg->recipient,
             msg->channel);
out:
    free(cdir);
    free(name);
    free(data);
}

static const struct herald_channel_plugin outbox_plugin = {
    .abi_version = HERALD_CHANNEL_ABI_VERSION,
    .size = sizeof(struct herald_channel_plugin),
    .name = "outbox",
    .channels = "email,sms",
    .create = outbox_create,
    .destroy = outbox_destroy,
    .prepare = NULL,
    .interpret = NULL,
    .release = NULL,
    .deliver = outbox_deliver,
};

HERALD_EXPORT const struct herald_channel_plugin *herald_channel_plugin(void) { return &outbox_plugin; }
