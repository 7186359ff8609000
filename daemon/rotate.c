/*
 * rotate.c - heraldctl rotate-key: every person's contact data sealed again
 * under the first key of [privacy] key_file, while daemons run campaigns
 * (layout of its state in rotate.h).
 *
 * Each step is a SCAN of 200 person keys (of each master in turn on a
 * cluster, each person then read and written on its slot's master); each
 * person is read (HMGET),
 * opened with every key of the file and, when another key or none sealed
 * it (or it has no "#" yet: stored before it, store_person.h), sealed
 * again and written by lua/rotate_person.lua only if nobody
 * wrote the person meanwhile (rev and profile unchanged); else it is read
 * again. Then the cursor and the counts are saved with the lock renewed.
 * Invariant: a write the rotation did not read is never overwritten.
 */
#include "rotate.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "keylease.h"
#include "rcluster.h"
#include "retention.h"
#include "store.h"
#include "store_person.h"

#define ROTATE_SCAN 200
#define ROTATE_LOCK_MS 60000
#define ROTATE_TRIES 5

enum census { CENSUS_NONE, CENSUS_CLEAR, CENSUS_SEALED };

/* What holds a person's contact data: @0 names the key; a profile in the
 * clear form holds its id (store_person.c). */
static enum census classify(const redisReply *profile, const redisReply *at0, char id[SEAL_ID_MAX + 1])
{
    id[0] = '\0';
    if (at0 && at0->type == REDIS_REPLY_STRING) {
        if (!store_person_key_id(at0, id)) herald_copy(id, SEAL_ID_MAX + 1, "?");
        return CENSUS_SEALED;
    }
    if (profile && profile->type == REDIS_REPLY_STRING && memmem(profile->str, profile->len, "\"id\":\"", 6))
        return CENSUS_CLEAR;
    return CENSUS_NONE;
}

int rotate_census(redisContext *c, const redisReply *const *keys, size_t n, json_t *by_key, long long *clear,
                  char *err, size_t errlen)
{
    for (size_t i = 0; i < n; i++)
        redisAppendCommand(c, "HMGET %b profile @0", keys[i]->str, keys[i]->len);
    int rc = 0;
    for (size_t i = 0; i < n; i++) {
        redisReply *r = NULL;
        if (redisGetReply(c, (void **)&r) != REDIS_OK || !r) {
            store_sync_error(err, errlen, "census read", c, NULL);
            return -1;
        }
        if (r->type != REDIS_REPLY_ARRAY || r->elements != 2) {
            if (rc == 0)
                store_sync_error(err, errlen, "census read", c, r->type == REDIS_REPLY_ERROR ? r : NULL);
            rc = -1;
        } else {
            char id[SEAL_ID_MAX + 1];
            enum census what = classify(r->element[0], r->element[1], id);
            if (what == CENSUS_CLEAR) (*clear)++;
            if (what == CENSUS_SEALED) {
                json_t *v = json_object_get(by_key, id);
                json_object_set_new(by_key, id, json_integer(v ? json_integer_value(v) + 1 : 1));
            }
        }
        freeReplyObject(r);
    }
    return rc;
}

struct rot {
    const struct config *cfg;
    redisContext *c;           /* the control plane's: state and lock */
    struct rcluster_sync *cs;  /* a cluster's masters (NULL: c is the one Redis) */
    struct keylease_sync *lease; /* the sealing lease, renewed between pages (NULL: none) */
    size_t node;               /* on a cluster: the master being scanned */
    long long seen;            /* people visited on it in this pass */
    char cerr[256];            /* why a cluster command failed */
    struct strbuf k_state, k_lock, pattern;
    char owner[64];
    long long rewritten, current, clear_sealed, changed, undecryptable;
    int shown; /* undecryptable ids printed */
    /* heraldctl migrate (rotate_index_fields): only "#" is written, beside
     * the envelope as it is, and only where it is missing. */
    bool index_only;
    const char *what; /* "rotate-key" or "migrate", in messages */
};

static void say_error(struct rot *rt, const char *what, const redisReply *r)
{
    if (!r && rt->cerr[0]) {
        fprintf(stderr, "heraldctl: %s: %s: %s\n", rt->what, what, rt->cerr);
        return;
    }
    char err[256];
    store_sync_error(err, sizeof(err), what, rt->c, r && r->type == REDIS_REPLY_ERROR ? r : NULL);
    fprintf(stderr, "heraldctl: %s: %s\n", rt->what, err);
}

/* A command on one person's key (argv[key_arg]): on the master of its
 * slot on a cluster, following MOVED and ASK (a slot that moves during the
 * pass); the reply is the caller's, NULL with rt->cerr or c's errstr. */
static redisReply *person_command(struct rot *rt, int key_arg, int argc, const char **argv, const size_t *alen)
{
    rt->cerr[0] = '\0';
    if (!rt->cs) return redisCommandArgv(rt->c, argc, argv, alen);
    redisReply *r = rcluster_sync_command(rt->cs, key_arg, argc, argv, alen, rt->cerr, sizeof(rt->cerr));
    if (!r && !rt->cerr[0]) herald_copy(rt->cerr, sizeof(rt->cerr), "no reply");
    return r;
}

/* One person, read and (if needed) written, at most ROTATE_TRIES times.
 * Returns 0, or -1 on a Redis failure (said). */
static int one_person(struct rot *rt, const char *key, size_t keylen, const char *id)
{
    /* One read: rev, the profile and the sealed fields of the same moment. */
    const char *fields[4 + STORE_SEALED_NFIELDS] = {"HMGET", key, "rev", "profile"};
    size_t flen[4 + STORE_SEALED_NFIELDS] = {5, keylen, 3, 7};
    for (size_t f = 0; f < STORE_SEALED_NFIELDS; f++) {
        fields[4 + f] = store_sealed_field(f);
        flen[4 + f] = strlen(fields[4 + f]);
    }
    const struct seal_key *target = &rt->cfg->keys->v[0];
    for (int attempt = 0; attempt < ROTATE_TRIES; attempt++) {
        redisReply *r = person_command(rt, 1, 4 + STORE_SEALED_NFIELDS, fields, flen);
        if (!r || r->type != REDIS_REPLY_ARRAY || r->elements != 2 + STORE_SEALED_NFIELDS) {
            say_error(rt, "person read", r);
            if (r) freeReplyObject(r);
            return -1;
        }
        const redisReply *rev = r->element[0];
        const redisReply *prof = r->element[1], *const *sealed = (const redisReply *const *)r->element + 2;
        char kid[SEAL_ID_MAX + 1];
        enum census what = classify(prof, sealed[0], kid);
        bool indexed = sealed[STORE_SEALED_INDEX]->type == REDIS_REPLY_STRING;
        int rc = 0;
        bool done = true;
        if (prof->type != REDIS_REPLY_STRING || what == CENSUS_NONE) {
            /* erased, or nothing to seal */
        } else if (rt->index_only && (what != CENSUS_SEALED || indexed)) {
            rt->current++; /* in clear (no "#" there), or has it */
        } else if (what == CENSUS_SEALED && strcmp(kid, target->id) == 0 && indexed) {
            rt->current++;
        } else {
            struct profile p;
            char err[256];
            int o = store_person_open(rt->cfg->keys, id, prof, sealed, &p, err, sizeof(err));
            if (o < 0 || p.undecryptable) {
                /* Not rewritten: it stays as it is, for an operator to see to. */
                rt->undecryptable++;
                if (rt->shown++ < 20) fprintf(stderr, "heraldctl: %s: recipient %s: %s\n", rt->what, id, err);
                if (o == 1) profile_free(&p);
            } else {
                struct store_person_form form;
                store_person_form_init(&form);
                store_person_seal(rt->cfg->keys, rt->cfg->index_key, &p, &form);
                const char *argv[8 + 2 * STORE_SEALED_NFIELDS];
                size_t alen[8 + 2 * STORE_SEALED_NFIELDS];
                char n[16];
                snprintf(n, sizeof(n), "%d", rt->index_only ? 1 : (int)STORE_SEALED_NFIELDS);
                int ac = 0;
                const char *revs = rev->type == REDIS_REPLY_STRING ? rev->str : "";
                /* index_only: the profile and envelope stay as they are. */
                const struct strbuf *np = &form.profile;
                const char *nps = rt->index_only ? prof->str : np->buf;
                size_t npl = rt->index_only ? prof->len : np->len;
                const char *fixed[] = {"EVAL", store_lua_rotate_person, "1", key, revs, prof->str, nps, n};
                size_t fixed_len[] = {4,         strlen(store_lua_rotate_person),
                                      1,         keylen,
                                      strlen(revs), prof->len,
                                      npl,       strlen(n)};
                for (size_t i = 0; i < sizeof(fixed) / sizeof(fixed[0]); i++) {
                    argv[ac] = fixed[i];
                    alen[ac++] = fixed_len[i];
                }
                for (size_t f = 0; f < STORE_SEALED_NFIELDS; f++) {
                    if (rt->index_only && f != STORE_SEALED_INDEX) continue;
                    argv[ac] = store_sealed_field(f);
                    alen[ac] = strlen(argv[ac]);
                    ac++;
                    argv[ac] = form.set[f] ? form.sealed[f].buf : "";
                    alen[ac] = form.set[f] ? form.sealed[f].len : 0;
                    ac++;
                }
                redisReply *w = person_command(rt, 3, ac, argv, alen);
                if (!w || w->type != REDIS_REPLY_INTEGER) {
                    say_error(rt, "person write", w);
                    rc = -1;
                } else if (w->integer == 1) {
                    if (what == CENSUS_CLEAR)
                        rt->clear_sealed++;
                    else
                        rt->rewritten++;
                } else {
                    done = false; /* written meanwhile: read it again */
                }
                if (w) freeReplyObject(w);
                store_person_form_free(&form);
                profile_free(&p);
            }
        }
        freeReplyObject(r);
        if (rc < 0) return rc;
        if (done) return 0;
    }
    rt->changed++; /* kept changing: whoever wrote it wrote it with the first key */
    return 0;
}

/* The counts and cursor at ("<master>:<cursor>" on a cluster, as
 * retention's) saved with the lock renewed, while it is ours; on a cluster
 * also the people seen on master node. Returns 1, 0 (the lock was lost:
 * stop) or -1 (Redis failure, said). */
static int save_step(struct rot *rt, const char *at, const char *state, size_t node, long long seen)
{
    static const char script[] =
        "if redis.call('GET', KEYS[2]) ~= ARGV[1] then return 0 end\n"
        "redis.call('SET', KEYS[2], ARGV[1], 'PX', tonumber(ARGV[2]))\n"
        "for i = 3, #ARGV, 2 do redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1]) end\n"
        "return 1\n";
    char ttl[16], counts[5][HERALD_LL_CHARS], now[HERALD_LL_CHARS], people[32], seen_s[HERALD_LL_CHARS];
    snprintf(ttl, sizeof(ttl), "%d", ROTATE_LOCK_MS);
    long long v[5] = {rt->rewritten, rt->current, rt->clear_sealed, rt->changed, rt->undecryptable};
    for (int i = 0; i < 5; i++)
        herald_lltoa(counts[i], v[i]);
    herald_lltoa(now, (long long)time(NULL));
    snprintf(people, sizeof(people), "people:%zu", node);
    herald_lltoa(seen_s, seen);
    const char *argv[] = {"EVAL",
                          script,
                          "2",
                          rt->k_state.buf,
                          rt->k_lock.buf,
                          rt->owner,
                          ttl,
                          "cursor",
                          at,
                          "state",
                          state,
                          "updated",
                          now,
                          "rewritten",
                          counts[0],
                          "current",
                          counts[1],
                          "clear_sealed",
                          counts[2],
                          "changed",
                          counts[3],
                          "undecryptable",
                          counts[4],
                          strcmp(state, "done") == 0 ? "finished" : "updated",
                          now,
                          people,
                          seen_s};
    int argc = (int)(sizeof(argv) / sizeof(argv[0])) - (rt->cs ? 0 : 2);
    redisReply *r = redisCommandArgv(rt->c, argc, argv, NULL);
    int rc = r && r->type == REDIS_REPLY_INTEGER ? (int)r->integer : -1;
    rt->cerr[0] = '\0';
    if (rc < 0) say_error(rt, "progress write", r);
    if (r) freeReplyObject(r);
    return rc;
}

static long long field_ll(const redisReply *h, const char *name)
{
    for (size_t i = 0; h && h->type == REDIS_REPLY_ARRAY && i + 1 < h->elements; i += 2)
        if (h->element[i]->type == REDIS_REPLY_STRING && strcmp(h->element[i]->str, name) == 0 &&
            h->element[i + 1]->type == REDIS_REPLY_STRING)
            return strtoll(h->element[i + 1]->str, NULL, 10);
    return 0;
}

static const char *field_str(const redisReply *h, const char *name)
{
    for (size_t i = 0; h && h->type == REDIS_REPLY_ARRAY && i + 1 < h->elements; i += 2)
        if (h->element[i]->type == REDIS_REPLY_STRING && strcmp(h->element[i]->str, name) == 0 &&
            h->element[i + 1]->type == REDIS_REPLY_STRING)
            return h->element[i + 1]->str;
    return NULL;
}

static void rot_keys(struct rot *rt, const struct config *cfg)
{
    strbuf_init(&rt->k_state);
    strbuf_init(&rt->k_lock);
    strbuf_init(&rt->pattern);
    store_key_build(&rt->k_state, cfg->prefix, ":rotate", NULL, NULL);
    store_key_build(&rt->k_lock, cfg->prefix, ":rotate:lock", NULL, NULL);
    store_glob_escape(&rt->pattern, cfg->prefix);
    strbuf_adds(&rt->pattern, ":r:{*}");
}

static void rot_free(struct rot *rt)
{
    strbuf_free(&rt->k_state);
    strbuf_free(&rt->k_lock);
    strbuf_free(&rt->pattern);
}

/* A cluster's pass, per master (in the order scanned): its address, done,
 * scanning or waiting, and the people seen on it so far. */
static json_t *masters_status(const redisReply *h, long long nm, const char *state)
{
    char cursor[32] = "";
    const char *at = field_str(h, "cursor");
    herald_copy(cursor, sizeof(cursor), at ? at : "0");
    size_t node = retention_cursor_parse(cursor);
    json_t *a = json_array();
    for (long long i = 0; i < nm && i < RCLUSTER_MAX_MASTERS; i++) {
        char name[32];
        snprintf(name, sizeof(name), "master:%lld", i);
        const char *addr = field_str(h, name);
        snprintf(name, sizeof(name), "people:%lld", i);
        bool done = strcmp(state, "done") == 0 || (size_t)i < node;
        json_array_append_new(a, json_pack("{s:s, s:s, s:I}", "master", addr ? addr : "?", "state",
                                           done ? "done" : (size_t)i == node ? "scanning" : "waiting", "people",
                                           (json_int_t)field_ll(h, name)));
    }
    return a;
}

int rotate_status(const struct config *cfg, redisContext *c)
{
    struct rot rt = {.cfg = cfg, .c = c, .what = "rotate-key"};
    rot_keys(&rt, cfg);
    redisReply *h = redisCommand(c, "HGETALL %s", rt.k_state.buf);
    redisReply *l = h && h->type == REDIS_REPLY_ARRAY ? redisCommand(c, "PTTL %s", rt.k_lock.buf) : NULL;
    int rc = 0;
    if (!h || h->type != REDIS_REPLY_ARRAY || !l || l->type != REDIS_REPLY_INTEGER) {
        say_error(&rt, "progress read", h && h->type == REDIS_REPLY_ERROR ? h : l);
        rc = 2;
    } else {
        json_t *o = json_object();
        const char *state = field_str(h, "state");
        json_object_set_new(o, "state",
                            json_string(!state                       ? "never"
                                        : l->integer > 0             ? state
                                        : strcmp(state, "done") == 0 ? "done"
                                                                     : "stopped"));
        const char *key = field_str(h, "key");
        if (key) json_object_set_new(o, "key", json_string(key));
        static const char *const names[] = {"rewritten",     "current", "clear_sealed", "changed",
                                            "undecryptable", "started", "updated",      "finished"};
        for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
            if (field_str(h, names[i])) json_object_set_new(o, names[i], json_integer(field_ll(h, names[i])));
        long long nm = field_ll(h, "masters");
        if (nm > 0) /* a cluster's pass: each master's progress */
            json_object_set_new(o, "masters", masters_status(h, nm, json_string_value(json_object_get(o, "state"))));
        char *text = json_dumps(o, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
        printf("%s\n", text);
        free(text);
        json_decref(o);
    }
    if (h) freeReplyObject(h);
    if (l) freeReplyObject(l);
    rot_free(&rt);
    return rc;
}

/* Every person key from cursor on (of master rt->node on a cluster, then
 * of each master after it), a SCAN page at a time, each through
 * one_person; save: the cursor and counts saved after each page (the lock
 * renewed). Returns 0 at the end of the keyspace, -1 (said) when it
 * stopped. */
static int pass(struct rot *rt, char cursor[32], bool save)
{
    size_t plen = strlen(rt->cfg->prefix) + 4; /* "<prefix>:r:{" */
    bool more;
    do {
        redisContext *sc = rt->c;
        rt->cerr[0] = '\0';
        if (rt->cs && !(sc = rcluster_sync_node(rt->cs, rt->node, rt->cerr, sizeof(rt->cerr)))) {
            say_error(rt, "key scan", NULL);
            return -1;
        }
        redisReply *r = redisCommand(sc, "SCAN %s MATCH %s COUNT %d", cursor, rt->pattern.buf, ROTATE_SCAN);
        if (!r || r->type != REDIS_REPLY_ARRAY || r->elements != 2 || r->element[0]->type != REDIS_REPLY_STRING) {
            if (!r) snprintf(rt->cerr, sizeof(rt->cerr), "%s", sc->errstr[0] ? sc->errstr : "no reply");
            say_error(rt, "key scan", r);
            if (r) freeReplyObject(r);
            return -1;
        }
        herald_copy(cursor, 32, r->element[0]->str);
        for (size_t i = 0; i < r->element[1]->elements; i++) {
            const redisReply *k = r->element[1]->element[i];
            if (k->type != REDIS_REPLY_STRING || k->len <= plen || k->str[k->len - 1] != '}') continue;
            char id[HERALD_ID_MAX + 1];
            size_t il = k->len - plen - 1;
            if (il > HERALD_ID_MAX) continue;
            memcpy(id, k->str + plen, il);
            id[il] = '\0';
            if (!herald_id_valid(id)) continue;
            rt->seen++;
            if (one_person(rt, k->str, k->len, id) < 0) {
                freeReplyObject(r);
                return -1;
            }
        }
        freeReplyObject(r);
        /* This master's scan is over: the next one's starts at 0. */
        size_t node = rt->node;
        long long seen = rt->seen;
        more = strcmp(cursor, "0") != 0;
        if (!more && rt->cs && rt->node + 1 < rcluster_sync_nodes(rt->cs)) {
            rt->node++;
            rt->seen = 0;
            more = true;
        }
        if (!save) continue;
        char at[48];
        retention_cursor_format(at, sizeof(at), rt->node, cursor);
        int s = save_step(rt, at, more ? "running" : "done", node, seen);
        if (s == 0) fprintf(stderr, "heraldctl: rotate-key: the lock was taken over: stopping\n");
        if (s != 1) return -1;
        char lerr[256];
        if (keylease_sync_tick(rt->lease, lerr, sizeof(lerr)) < 0) {
            fprintf(stderr, "heraldctl: %s: %s: stopping (run it again to resume)\n", rt->what, lerr);
            return -1;
        }
    } while (more);
    return 0;
}

int rotate_index_fields(const struct config *cfg, redisContext *c, struct rcluster_sync *cs, long long *written)
{
    *written = 0;
    if (!cfg->keys || cfg->keys->n == 0) return 0; /* nobody can be opened: they stay as they are */
    struct rot rt = {.cfg = cfg, .c = c, .cs = cs, .index_only = true, .what = "migrate"};
    rot_keys(&rt, cfg);
    char cursor[32] = "0";
    int rc = pass(&rt, cursor, false);
    *written = rt.rewritten;
    if (rc == 0 && rt.undecryptable)
        fprintf(stderr, "heraldctl: migrate: %lld people could not be decrypted: they keep no \"#\" (their "
                        "campaigns decrypt them, as before)\n", rt.undecryptable);
    rot_free(&rt);
    return rc;
}

/* Whether a saved cursor at (as save_step wrote it) can be gone on from
 * here: on one Redis a plain cursor; on a cluster "<master>:<cursor>" whose
 * master is still at the address the pass saw (state: the saved hash).
 * Sets cursor and rt->node. */
static bool resumable(struct rot *rt, const redisReply *state, const char *at, char cursor[32])
{
    herald_copy(cursor, 32, at);
    bool tagged = strchr(cursor, ':') != NULL;
    rt->node = retention_cursor_parse(cursor);
    if (!rt->cs) return !tagged;
    const struct rcluster_addr *a = rcluster_sync_node_addr(rt->cs, rt->node);
    char name[32], addr[RCLUSTER_HOST_MAX + 16];
    snprintf(name, sizeof(name), "master:%zu", rt->node);
    const char *saved = field_str(state, name);
    if (a) snprintf(addr, sizeof(addr), "%s:%d", a->host, a->port);
    if (tagged && a && saved && strcmp(saved, addr) == 0) {
        snprintf(name, sizeof(name), "people:%zu", rt->node);
        rt->seen = field_ll(state, name);
        return true;
    }
    fprintf(stderr, "heraldctl: rotate-key: the cluster's masters are not those the stopped pass scanned: "
                    "starting over\n");
    return false;
}

/* A cluster's masters, in the order the pass scans them, into the state
 * hash ("masters", "master:<i>" = "host:port") for --status. */
static bool save_masters(struct rot *rt)
{
    size_t n = rt->cs ? rcluster_sync_nodes(rt->cs) : 0;
    char ns[HERALD_LL_CHARS];
    herald_lltoa(ns, (long long)n);
    for (size_t i = 0; i < n; i++) {
        const struct rcluster_addr *a = rcluster_sync_node_addr(rt->cs, i);
        char name[32], addr[RCLUSTER_HOST_MAX + 16];
        snprintf(name, sizeof(name), "master:%zu", i);
        snprintf(addr, sizeof(addr), "%s:%d", a->host, a->port);
        redisReply *r = redisCommand(rt->c, "HSET %s %s %s masters %s", rt->k_state.buf, name, addr, ns);
        bool ok = r && r->type == REDIS_REPLY_INTEGER;
        rt->cerr[0] = '\0';
        if (!ok) say_error(rt, "progress write", r);
        if (r) freeReplyObject(r);
        if (!ok) return false;
    }
    return true;
}

int rotate_run(const struct config *cfg, redisContext *c, struct rcluster_sync *cs, struct keylease_sync *lease)
{
    if (!cfg->keys || cfg->keys->n == 0) {
        fprintf(stderr,
                "heraldctl: rotate-key: [privacy] key_file is not set: there is no key to encrypt with\n");
        return 2;
    }
    struct rot rt = {.cfg = cfg, .c = c, .cs = cs, .lease = lease, .what = "rotate-key"};
    rot_keys(&rt, cfg);
    char host[64] = "";
    gethostname(host, sizeof(host) - 1);
    snprintf(rt.owner, sizeof(rt.owner), "%.40s:%ld:%lld", host, (long)getpid(), (long long)time(NULL));
    int rc = 2;
    char cursor[32] = "0";
    redisReply *r = redisCommand(c, "SET %s %s NX PX %d", rt.k_lock.buf, rt.owner, ROTATE_LOCK_MS);
    if (!r || r->type == REDIS_REPLY_ERROR) {
        say_error(&rt, "lock", r);
        if (r) freeReplyObject(r);
        goto out;
    }
    if (r->type == REDIS_REPLY_NIL) {
        freeReplyObject(r);
        r = redisCommand(c, "GET %s", rt.k_lock.buf);
        fprintf(stderr, "heraldctl: rotate-key: another rotation runs (%s); --status shows its progress\n",
                r && r->type == REDIS_REPLY_STRING ? r->str : "its lock is held");
        if (r) freeReplyObject(r);
        goto out;
    }
    freeReplyObject(r);
    /* Resume a pass under the same key; anything else starts over. */
    r = redisCommand(c, "HGETALL %s", rt.k_state.buf);
    if (!r || r->type != REDIS_REPLY_ARRAY) {
        say_error(&rt, "progress read", r);
        if (r) freeReplyObject(r);
        goto out;
    }
    const char *key = field_str(r, "key"), *state = field_str(r, "state"), *cur = field_str(r, "cursor");
    bool resume = key && state && cur && strcmp(key, cfg->keys->v[0].id) == 0 && strcmp(state, "running") == 0 &&
                  resumable(&rt, r, cur, cursor);
    if (resume) {
        rt.rewritten = field_ll(r, "rewritten");
        rt.current = field_ll(r, "current");
        rt.clear_sealed = field_ll(r, "clear_sealed");
        rt.changed = field_ll(r, "changed");
        rt.undecryptable = field_ll(r, "undecryptable");
        fprintf(stderr, "heraldctl: rotate-key: resuming the pass to key '%s'\n", key);
    }
    freeReplyObject(r);
    if (!resume) {
        herald_copy(cursor, sizeof(cursor), "0");
        rt.node = 0;
        rt.seen = 0;
        char now[HERALD_LL_CHARS];
        herald_lltoa(now, (long long)time(NULL));
        r = redisCommand(c, "DEL %s", rt.k_state.buf);
        if (r) freeReplyObject(r);
        r = redisCommand(c, "HSET %s key %s started %s", rt.k_state.buf, cfg->keys->v[0].id, now);
        if (!r || r->type == REDIS_REPLY_ERROR) {
            say_error(&rt, "progress write", r);
            if (r) freeReplyObject(r);
            goto out;
        }
        freeReplyObject(r);
    }
    if (!save_masters(&rt)) goto out;
    char at[48];
    retention_cursor_format(at, sizeof(at), rt.node, cursor);
    if (save_step(&rt, at, "running", rt.node, rt.seen) != 1) goto out;
    if (pass(&rt, cursor, true) < 0) goto out;
    r = redisCommand(c, "DEL %s", rt.k_lock.buf);
    if (r) freeReplyObject(r);
    printf("rotated to key '%s': %lld rewritten, %lld already under it, %lld sealed from clear, %lld written "
           "meanwhile, %lld undecryptable\n",
           cfg->keys->v[0].id, rt.rewritten, rt.current, rt.clear_sealed, rt.changed, rt.undecryptable);
    rc = rt.undecryptable ? 1 : 0;
out:
    rot_free(&rt);
    return rc;
}
