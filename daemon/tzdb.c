/*
 * tzdb.c - IANA time zones by name: the zoneinfo files, read once, cached.
 *
 * Owns: the file system side of time zones (tz.c parses, quiet.c computes).
 * Never: logs, follows a name it has not validated, reads more than
 * HERALD_TZDB_MAX_FILE bytes, frees a zone before tzdb_free.
 * Invariant: both caches are bounded: zones by HERALD_TZDB_MAX_ZONES (never
 * evicted, since callers hold them), unknown names by HERALD_TZDB_MAX_MISSES
 * (dropped wholesale when full; they hold nothing a caller can see).
 */
#include "tzdb.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

struct entry {
    char *name; /* NULL: free slot */
    struct tz *tz;
};

/* Open addressing with linear probing; slots is a power of two at least
 * twice the entry limit, so a probe always meets a free slot. */
struct table {
    struct entry *slots;
    size_t nslots, count, limit;
};

struct tzdb {
    char *dir;
    struct table zones, misses;
};

static void table_init(struct table *t, size_t limit)
{
    size_t n = 16;
    while (n < limit * 2) n *= 2;
    t->slots = xcalloc(n, sizeof(*t->slots));
    t->nslots = n;
    t->count = 0;
    t->limit = limit;
}

static void table_clear(struct table *t)
{
    for (size_t i = 0; i < t->nslots; i++) {
        free(t->slots[i].name);
        tz_free(t->slots[i].tz);
        t->slots[i].name = NULL;
        t->slots[i].tz = NULL;
    }
    t->count = 0;
}

static uint64_t hash(const char *s)
{
    uint64_t h = UINT64_C(14695981039346656037); /* FNV-1a */
    for (; *s; s++) h = (h ^ (unsigned char)*s) * UINT64_C(1099511628211);
    return h;
}

/* The slot holding name, or the free slot where it would go. */
static struct entry *table_find(struct table *t, const char *name, uint64_t h)
{
    size_t mask = t->nslots - 1;
    for (size_t i = (size_t)h & mask;; i = (i + 1) & mask)
        if (!t->slots[i].name || strcmp(t->slots[i].name, name) == 0) return &t->slots[i];
}

struct tzdb *tzdb_new(const char *dir)
{
    struct tzdb *db = xcalloc(1, sizeof(*db));
    db->dir = xstrdup(dir && *dir ? dir : HERALD_TZDB_DEFAULT_DIR);
    table_init(&db->zones, HERALD_TZDB_MAX_ZONES);
    table_init(&db->misses, HERALD_TZDB_MAX_MISSES);
    return db;
}

void tzdb_free(struct tzdb *db)
{
    if (!db) return;
    table_clear(&db->zones);
    table_clear(&db->misses);
    free(db->zones.slots);
    free(db->misses.slots);
    free(db->dir);
    free(db);
}

bool tzdb_name_valid(const char *name)
{
    size_t n = 0;
    for (; name[n]; n++) {
        char c = name[n];
        bool ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' ||
                  c == '+' || c == '-' || c == '/';
        if (!ok || n >= HERALD_TZDB_NAME_MAX) return false;
        if (c == '/' && (n == 0 || name[n - 1] == '/')) return false; /* leading '/' or "//" */
    }
    /* '.' is outside the charset, so ".." cannot occur; the check stays in
     * case the charset ever grows. */
    return n > 0 && name[n - 1] != '/' && !strstr(name, "..");
}

/* Reads the whole file at path if it is a regular file of at most
 * HERALD_TZDB_MAX_FILE bytes. Returns a malloc'd buffer or NULL. */
static unsigned char *read_zone_file(const char *path, size_t *len)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
    if (fd < 0) return NULL;
    struct stat st;
    unsigned char *buf = NULL;
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_size <= 0 || st.st_size > HERALD_TZDB_MAX_FILE)
        goto fail;
    size_t want = (size_t)st.st_size, got = 0;
    buf = xmalloc(want + 1);
    /* Read one byte more than fstat promised: a file that grew meanwhile
     * is refused rather than half-read. */
    while (got < want + 1) {
        ssize_t r = read(fd, buf + got, want + 1 - got);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) goto fail;
        if (r == 0) break;
        got += (size_t)r;
    }
    if (got != want) goto fail;
    close(fd);
    *len = got;
    return buf;
fail:
    free(buf);
    close(fd);
    return NULL;
}

static struct tz *load(const struct tzdb *db, const char *name)
{
    char path[PATH_MAX];
    int n = snprintf(path, sizeof(path), "%s/%s", db->dir, name);
    if (n < 0 || (size_t)n >= sizeof(path)) return NULL;
    size_t len = 0;
    unsigned char *data = read_zone_file(path, &len);
    if (!data) return NULL;
    struct tz *tz = NULL;
    char err[128];
    (void)tz_parse(data, len, &tz, err, sizeof(err)); /* NULL on failure; the reason is not kept */
    free(data);
    return tz;
}

const struct tz *tzdb_get(struct tzdb *db, const char *name)
{
    if (!db || !name || !tzdb_name_valid(name)) return NULL;
    if (strcmp(name, "UTC") == 0 || strcmp(name, "Etc/UTC") == 0) return tz_utc();

    uint64_t h = hash(name);
    struct entry *e = table_find(&db->zones, name, h);
    if (e->name) return e->tz;
    struct entry *m = table_find(&db->misses, name, h);
    if (m->name) return NULL;

    if (db->zones.count >= db->zones.limit) return NULL;
    struct tz *tz = load(db, name);
    if (tz) {
        e->name = xstrdup(name);
        e->tz = tz;
        db->zones.count++;
        return tz;
    }
    if (db->misses.count >= db->misses.limit) {
        table_clear(&db->misses);
        m = table_find(&db->misses, name, h);
    }
    m->name = xstrdup(name);
    db->misses.count++;
    return NULL;
}
