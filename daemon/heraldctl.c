/*
 * heraldctl.c - the operator's command line: import recipients, enqueue a
 * campaign, suppress an address, show a campaign's progress; explain a
 * decision and simulate a job (explain.c, read-only).
 *
 * It validates with the same code as the daemon (job.c, profile.c), so a
 * job it refuses is refused with the daemon's words, and it writes with the
 * key helpers of store.c. It prints ids and counts, never an address.
 * Redis's refusals are named by the daemon's error classes
 * (store_sync_error: "redis refused the job: oom (retry once memory is
 * freed)"), the labels /healthz and /metrics show, never Redis's own words.
 * It stays blocking (hiredis's sync context): one operator, one command.
 * Progress (campaign --watch, import) is drawn in place only on a terminal
 * (progress.h); otherwise watch prints one plain line per second and import
 * only its summary.
 * Exit codes: 0 success, 1 refused input (some or all), 2 usage or Redis.
 */
#include <errno.h>
#include <stdarg.h>
#include <getopt.h>
#include <hiredis/hiredis.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "channel.h"
#include "config.h"
#include "explain.h"
#include "herald.h"
#include "job.h"
#include "keylease.h"
#include "keyreg.h"
#include "people.h"
#include "profile.h"
#include "progress.h"
#include "rcluster.h"
#include "rotate.h"
#include "store_nodes.h"
#include "store.h"
#include "store_campaign.h"
#include "store_check.h"

#define MAX_OVERRIDES 64

static void usage(FILE *out)
{
    fprintf(out,
            "usage: heraldctl --config FILE [--set 'SECTION.KEY=VALUE']... COMMAND [ARGS]\n"
            "\n"
            "commands:\n"
            "  import FILE.jsonl          store recipients (one JSON object per line, optional \"consent\");\n"
            "                             an address erased before is stored without its consent (said by id)\n"
            "  enqueue CAMPAIGN.json      validate a campaign job and add it to the jobs stream as a new run\n"
            "                             of its id (refused while a run of it is not finished; a finished\n"
            "                             id needs \"rerun\": true in the job)\n"
            "  suppress CHANNEL ADDRESS   put an address on the suppression list (email or sms)\n"
            "  pause CAMPAIGN             stop sending a campaign within a second, on every daemon; every\n"
            "                             unsent recipient is kept for resume (survives restarts)\n"
            "  resume CAMPAIGN            go on with a paused campaign\n"
            "  cancel CAMPAIGN            end a campaign for good: each unsent recipient is recorded\n"
            "                             suppressed/cancelled, the sent ones stay as they are\n"
            "  migrate                    move herald's data in Redis to this version's key layout (stop\n"
            "                             every daemon first; idempotent; docs/operations.md, \"Upgrade\")\n"
            "  stats                      what herald holds in Redis, as JSON: people, bytes per person (a\n"
            "                             sample), once-only records per person, campaigns awaiting retention\n"
            "  rotate-key [--status]      seal every person's contact data again under the first key of\n"
            "                             [privacy] key_file (people in clear too), while campaigns run;\n"
            "                             resumes where it stopped; --status: its progress as JSON\n"
            "  retire-key ID [--dry-run]  mark key ID retired in the key registry once no person is sealed\n"
            "                             under it (counted on every master); refused while people are, or\n"
            "                             when ID is the first key of key_file; then drop its line and reload\n"
            "  reload                     every daemon of this Redis and prefix reloads its configuration\n"
            "                             within a second (as SIGHUP; its log says what applied or why not)\n"
            "  campaign ID [--watch]      print a campaign's progress as JSON (its latest run, and \"runs\");\n"
            "                             --watch: redraw a progress\n"
            "                             line every second until it is done (plain lines when not a terminal)\n"
            "  explain CAMPAIGN RECIPIENT [--job FILE] [--at TIME] [--json]\n"
            "                             why this person gets (or got, or did not get) the campaign: every\n"
            "                             check in the policy's order with the data behind it, the recorded\n"
            "                             outcome, a deferral's end in the person's zone and in UTC (never an\n"
            "                             address); the job is read from the stream, or from --job\n"
            "  simulate JOB.json [--at TIME] [--json]\n"
            "                             forecast a job by outcome and reason (sent per channel, suppressed,\n"
            "                             deferred) from the stored people, reading only: nothing is sent,\n"
            "                             reserved or written\n"
            "\n"
            "exit status: 0 done, 1 input refused (bad lines are reported as FILE:LINE: problem), 2 usage or Redis error\n");
}

/* On a cluster ([redis] cluster): its map and masters' contexts. The
 * commands of the control plane use the context connect_redis returns (to
 * the master of its slot); those of people and per-node keys use this. */
static struct rcluster_sync *ctl_cluster;
/* import and rotate-key: the sealing lease held while they write (keylease.h). */
static struct keylease_sync ctl_lease;

static redisContext *connect_redis(const struct config *cfg)
{
    char err[512];
    bool cluster = cfg->redis_cluster && cfg->redis_cluster[0];
    redisContext *c = cluster ? store_check_connect_cluster(cfg, &ctl_cluster, err, sizeof(err))
                              : store_check_connect(cfg, err, sizeof(err));
    if (!c) fprintf(stderr, "heraldctl: %s\n", err);
    return c;
}

/* The contexts a SCAN of people's keys must cover: c alone on one Redis,
 * every master on a cluster (each holds the keys of its slots). Returns
 * how many are in out (0 with a message when a master cannot be reached). */
static size_t scan_nodes(redisContext *c, redisContext **out, size_t max)
{
    if (!ctl_cluster) {
        out[0] = c;
        return 1;
    }
    size_t n = rcluster_sync_nodes(ctl_cluster);
    for (size_t i = 0; i < n && i < max; i++) {
        char err[256];
        if (!(out[i] = rcluster_sync_node(ctl_cluster, i, err, sizeof(err)))) {
            fprintf(stderr, "heraldctl: %s\n", err);
            return 0;
        }
    }
    return n < max ? n : max;
}

/* People are written in windows of this many: two round trips each. */
#define IMPORT_WINDOW 256

struct import_line {
    long lineno;
    struct profile prof;
    struct consent_record *recs;
    size_t nrecs;
    struct strbuf tm[HERALD_CH_COUNT];
};

struct import_run {
    const char *path;
    struct import_line win[IMPORT_WINDOW];
    size_t n;
    long imported, skipped, unknown, tombstoned;
    /* Progress on stderr, drawn only when it is a terminal. */
    bool show;
    bool shown; /* a progress line is on the screen now */
    long lines;
    long long bytes, size; /* read so far; the file's size (0: unknown) */
    double drawn_at;       /* monotonic seconds of the last draw */
    struct progress_rate rate;
};

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Columns of the terminal on fd (80 when it does not say). */
static int term_width(int fd)
{
    struct winsize ws;
    if (ioctl(fd, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0) return ws.ws_col;
    return 80;
}

/* Takes the progress line off the screen before anything else is printed. */
static void import_progress_clear(struct import_run *run)
{
    if (!run->shown) return;
    fputs("\r\033[K", stderr);
    run->shown = false;
}

/* Redraws the import's progress line, at most five times a second. */
static void import_progress(struct import_run *run)
{
    if (!run->show) return;
    double now = now_s();
    if (run->drawn_at > 0 && now - run->drawn_at < 0.2) return;
    run->drawn_at = now;
    progress_rate_add(&run->rate, now, run->lines);
    struct strbuf sb;
    strbuf_init(&sb);
    progress_import_line(&sb, run->lines, run->imported, run->skipped, run->bytes, run->size,
                         progress_rate_get(&run->rate), term_width(STDERR_FILENO) - 1);
    fprintf(stderr, "\r%s\033[K", sb.buf ? sb.buf : "");
    fflush(stderr);
    run->shown = true;
    strbuf_free(&sb);
}

/* One line about the import on stderr (a refused line, a failure). */
static void import_say(struct import_run *run, const char *fmt, ...) HERALD_PRINTF(2, 3);
static void import_say(struct import_run *run, const char *fmt, ...)
{
    import_progress_clear(run);
    va_list ap;
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
}

static void import_line_free(struct import_line *l)
{
    for (int ch = 0; ch < HERALD_CH_COUNT; ch++) strbuf_free(&l->tm[ch]);
    for (size_t i = 0; i < l->nrecs; i++) consent_record_free(&l->recs[i]);
    free(l->recs);
    profile_free(&l->prof);
}

/* Writes the window and reports every person Redis did not store, by line
 * and id (never an address); 0, or 2 when the connection failed. */
static int import_flush(const struct config *cfg, redisContext *c, struct import_run *run)
{
    struct store_import items[IMPORT_WINDOW];
    memset(items, 0, sizeof(items));
    for (size_t i = 0; i < run->n; i++) {
        struct import_line *l = &run->win[i];
        items[i].p = &l->prof;
        items[i].recs = l->recs;
        items[i].nrecs = l->nrecs;
        for (int ch = 0; ch < HERALD_CH_COUNT; ch++) items[i].tombstones[ch] = l->tm[ch].len ? l->tm[ch].buf : NULL;
    }
    char err[512];
    int rc = 0;
    if (run->n && (ctl_cluster ? store_sync_import_cluster(ctl_cluster, cfg->prefix, cfg->keys, cfg->index_key, items,
                                                           run->n, err, sizeof(err))
                               : store_sync_import_batch(c, cfg->prefix, cfg->keys, cfg->index_key, items, run->n,
                                                         err, sizeof(err))) < 0) {
        import_say(run, "%s:%ld-%ld: %s\n", run->path, run->win[0].lineno, run->win[run->n - 1].lineno, err);
        rc = 2;
    }
    for (size_t i = 0; i < run->n; i++) {
        struct import_line *l = &run->win[i];
        switch (items[i].status) {
        case STORE_IMPORT_STORED:
            run->imported++;
            for (int ch = 0; ch < HERALD_CH_COUNT; ch++) {
                if (!(items[i].tombstoned & (1u << ch))) continue;
                /* The id only: never the address. */
                import_progress_clear(run);
                printf("%s:%ld: recipient %s: the %s address was erased before; stored without %s consent "
                       "(not contactable on %s until they consent again)\n",
                       run->path, l->lineno, l->prof.id, herald_channel_name(ch), herald_channel_name(ch),
                       herald_channel_name(ch));
                run->tombstoned++;
            }
            break;
        case STORE_IMPORT_REFUSED:
            import_say(run, "%s:%ld: recipient %s: not imported: %s\n", run->path, l->lineno, l->prof.id,
                       items[i].reason);
            run->skipped++;
            break;
        case STORE_IMPORT_UNKNOWN:
            import_say(run,
                       "%s:%ld: recipient %s: not confirmed (%s): it may be partly stored; import it again\n",
                       run->path, l->lineno, l->prof.id, items[i].reason);
            run->unknown++;
            break;
        }
        import_line_free(l);
    }
    run->n = 0;
    return rc;
}

/* The line without its end (\n, \r\n) and, on line 1, without a UTF-8
 * byte order mark; the length is getline's, so a NUL byte cannot hide the
 * rest of the line. */
static const char *import_trim(char *line, ssize_t *len, long lineno)
{
    while (*len > 0 && (line[*len - 1] == '\n' || line[*len - 1] == '\r')) line[--*len] = '\0';
    if (lineno == 1 && *len >= 3 && memcmp(line, "\xEF\xBB\xBF", 3) == 0) {
        *len -= 3;
        return line + 3;
    }
    return line;
}

static bool import_blank(const char *p, size_t len)
{
    for (size_t i = 0; i < len; i++)
        if (p[i] != ' ' && p[i] != '\t') return false;
    return true;
}

static int cmd_import(const struct config *cfg, redisContext *c, const char *path)
{
    FILE *fp = strcmp(path, "-") == 0 ? stdin : fopen(path, "r");
    if (!fp) {
        fprintf(stderr, "%s: cannot read: %s\n", path, strerror(errno));
        return 2;
    }
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    long lineno = 0;
    int rc = 0;
    struct import_run *run = xcalloc(1, sizeof(*run));
    run->path = path;
    struct stat st;
    run->show = isatty(STDERR_FILENO);
    if (fstat(fileno(fp), &st) == 0 && S_ISREG(st.st_mode)) run->size = st.st_size;
    /* Tombstones are keyed like the daemon keys them (people.c). */
    const char *secret = cfg->tombstone_secret && *cfg->tombstone_secret ? cfg->tombstone_secret
                         : cfg->link_secret && *cfg->link_secret         ? cfg->link_secret
                                                                          : NULL;
    char stop_why[256] = "redis connection failed";
    while (rc == 0 && (len = getline(&line, &cap, fp)) >= 0) {
        /* Renewed between lines (a write every few seconds at most): a
         * lease refused stops before anything more is sealed. */
        if (keylease_sync_tick(&ctl_lease, stop_why, sizeof(stop_why)) < 0) {
            rc = 2;
            break;
        }
        lineno++;
        run->lines = lineno;
        run->bytes += len;
        const char *text = import_trim(line, &len, lineno);
        /* Before the blank test: a line of NUL bytes is not blank. */
        if (memchr(text, '\0', (size_t)len)) {
            import_say(run, "%s:%ld: contains a NUL byte\n", path, lineno);
            run->skipped++;
            continue;
        }
        if (import_blank(text, (size_t)len)) continue;
        char err[512];
        if ((size_t)len > HERALD_PROFILE_MAX_BYTES) {
            import_say(run, "%s:%ld: line is %zd bytes, over the %d byte limit\n", path, lineno, len,
                       HERALD_PROFILE_MAX_BYTES);
            run->skipped++;
            continue;
        }
        json_error_t jerr;
        json_t *obj = json_loadb(text, (size_t)len, JSON_REJECT_DUPLICATES, &jerr);
        if (!obj) {
            import_say(run, "%s:%ld: not valid JSON (column %d)\n", path, lineno, jerr.column);
            run->skipped++;
            continue;
        }
        struct import_line *l = &run->win[run->n];
        if (profile_from_json(obj, &l->prof, true, &l->recs, &l->nrecs, time(NULL), err, sizeof(err)) < 0) {
            import_say(run, "%s:%ld: %s\n", path, lineno, err);
            json_decref(obj);
            run->skipped++;
            continue;
        }
        json_decref(obj);
        l->lineno = lineno;
        /* The same person twice in one window would read the profile from
         * before both: write what came before first. */
        for (size_t i = 0; i < run->n; i++)
            if (strcmp(run->win[i].prof.id, l->prof.id) == 0) {
                struct import_line tmp = *l;
                run->win[run->n] = (struct import_line){0};
                rc = import_flush(cfg, c, run);
                run->win[0] = tmp;
                l = &run->win[0];
                break;
            }
        /* An address erased before (DELETE /v1/recipients/{id}) left a
         * tombstone: the person is stored but not contactable on that
         * channel until they consent again. */
        for (int ch = 0; ch < HERALD_CH_COUNT; ch++) {
            strbuf_init(&l->tm[ch]);
            const char *addr = profile_address(&l->prof, ch);
            if (secret && addr) people_tombstone_member(&l->tm[ch], secret, ch, addr);
        }
        run->n++;
        if (rc == 0 && run->n == IMPORT_WINDOW) {
            rc = import_flush(cfg, c, run);
            import_progress(run);
        }
    }
    if (rc == 0) {
        rc = import_flush(cfg, c, run);
    } else {
        /* The connection failed, or the lease: what is left was never sent. */
        for (size_t i = 0; i < run->n; i++) {
            import_say(run, "%s:%ld: recipient %s: not imported: not sent (%s)\n", path, run->win[i].lineno,
                       run->win[i].prof.id, stop_why);
            run->skipped++;
            import_line_free(&run->win[i]);
        }
        run->n = 0;
    }
    if (rc && getline(&line, &cap, fp) >= 0)
        import_say(run, "%s: stopped after line %ld: the lines after it were not read\n", path, lineno);
    free(line);
    if (fp != stdin) fclose(fp);
    import_progress_clear(run);
    printf("imported %ld, skipped %ld", run->imported, run->skipped);
    if (run->unknown) printf(", not confirmed %ld", run->unknown);
    if (run->tombstoned) printf(", %ld address(es) erased before: stored without consent", run->tombstoned);
    printf("\n");
    long skipped = run->skipped;
    free(run);
    if (rc) return rc;
    return skipped ? 1 : 0;
}

static int cmd_enqueue(const struct config *cfg, redisContext *c, const char *path)
{
    size_t len;
    char *text;
    struct job job;
    int rc0 = explain_read_job(path, &job, &text, &len);
    if (rc0 != 0) return rc0;
    char err[512];
    /* Checked and registered as a run of the id in one script, which adds
     * the job to the stream (campaign_enqueue.lua), as POST /v1/campaigns. */
    struct store_enqueue e = {.campaign = job.id, .text = text, .len = len, .rerun = job.rerun,
                              .recipients_key = job.recipients_key, .ids = job.recipients,
                              .nids = job.nrecipients, .now = (int64_t)time(NULL) * 1000, .job = &job};
    struct store_enqueue_result res;
    int rc = 0;
    if (store_sync_enqueue(c, cfg->prefix, &e, &res, err, sizeof(err)) < 0) {
        fprintf(stderr, "heraldctl: %s\n", err);
        rc = 2;
    } else if (res.status != STORE_ENQ_OK) {
        store_enqueue_refusal(err, sizeof(err), job.id, &res);
        fprintf(stderr, "heraldctl: %s\n", err);
        rc = 1;
    } else {
        printf("%s\n", res.entry);
    }
    job_free(&job);
    free(text);
    return rc;
}

static int cmd_suppress(const struct config *cfg, redisContext *c, const char *channel, const char *addr)
{
    int ch = herald_channel_from_name(channel);
    if (ch < 0) {
        fprintf(stderr, "heraldctl: unknown channel \"%s\" (expected email or sms)\n", channel);
        return 2;
    }
    if (!channel_address_valid(ch, addr)) {
        fprintf(stderr, "heraldctl: %s\n", channel_get(ch)->address_invalid);
        return 1;
    }
    char err[256];
    if (store_sync_suppress(c, ctl_cluster, cfg->prefix, cfg->index_key, ch, addr, "heraldctl suppress",
                            (long long)cfg->audit_maxlen, err, sizeof(err)) < 0) {
        fprintf(stderr, "heraldctl: %s\n", err);
        return 2;
    }
    printf("suppressed (%s)\n", channel);
    return 0;
}

/* reload: bumps the counter every daemon polls each second (main.c). */
static int cmd_reload(const struct config *cfg, redisContext *c)
{
    struct strbuf k;
    strbuf_init(&k);
    store_key_reload(&k, cfg->prefix);
    redisReply *r = redisCommand(c, "INCR %s", k.buf);
    strbuf_free(&k);
    if (!r || r->type != REDIS_REPLY_INTEGER) {
        fprintf(stderr, "heraldctl: reload: %s\n", r && r->type == REDIS_REPLY_ERROR ? r->str : c->errstr);
        if (r) freeReplyObject(r);
        return 2;
    }
    printf("reload %lld requested: every daemon reloads its configuration within a second "
           "(herald_config_reloads_total and each daemon's log say how it went)\n",
           (long long)r->integer);
    freeReplyObject(r);
    return 0;
}

/* Whether a reply is an error (printed as "heraldctl: migrate: WHAT: ..."). */
static bool migrate_failed(redisContext *c, redisReply *r, const char *what)
{
    if (r && r->type != REDIS_REPLY_ERROR) return false;
    char err[256];
    store_sync_error(err, sizeof(err), what, c, r);
    fprintf(stderr, "heraldctl: migrate: %s\n", err);
    if (r) freeReplyObject(r);
    return true;
}

/* ---- layout 2 -> 3: the keyed, sharded indexes (addrindex.h) ----------- */

/* Each step walks one layout 2 key with its SCAN cursor kept in
 * <prefix>:migrate:3 (field: the step; "done" once finished), so that an
 * interrupted migrate goes on where it stopped; every write is one that may
 * be made twice. The layout 2 keys go only once every step is done. */
enum rekey_kind { REKEY_SET, REKEY_HASH };

static bool migrate_state(redisContext *c, const char *state, const char *step, char cursor[32])
{
    redisReply *r = redisCommand(c, "HGET %s %s", state, step);
    if (migrate_failed(c, r, "progress read")) return false;
    herald_copy(cursor, 32, r->type == REDIS_REPLY_STRING ? r->str : "0");
    freeReplyObject(r);
    return true;
}

/* Reads the replies of n pipelined writes: false (said) at the first error,
 * after reading them all (the connection stays in step). */
static bool migrate_replies(redisContext *c, size_t n, const char *what)
{
    bool ok = true;
    for (size_t i = 0; i < n; i++) {
        void *rp = NULL;
        if (redisGetReply(c, &rp) != REDIS_OK) return !migrate_failed(c, NULL, what);
        if (ok) ok = !migrate_failed(c, rp, what);
        else freeReplyObject(rp);
        if (ok) freeReplyObject(rp);
    }
    return ok;
}

static bool migrate_save(redisContext *c, const char *state, const char *step, const char *cursor)
{
    redisReply *r = redisCommand(c, "HSET %s %s %s", state, step, cursor);
    if (migrate_failed(c, r, "progress write")) return false;
    freeReplyObject(r);
    return true;
}

/* Re-keys every member of the layout 2 set or hash `from` into the shards
 * of `to` (a hash keeps each member's value). *n counts the members. */
static bool migrate_rekey(const struct config *cfg, redisContext *c, const char *state, const char *step,
                          enum rekey_kind kind, const char *from, enum addrindex_kind to, long long *n)
{
    char cursor[32];
    if (!migrate_state(c, state, step, cursor)) return false;
    struct strbuf k;
    strbuf_init(&k);
    bool ok = true;
    while (ok && strcmp(cursor, "done") != 0) {
        redisReply *r = redisCommand(c, "%s %s %s COUNT 1000", kind == REKEY_SET ? "SSCAN" : "HSCAN", from, cursor);
        if (migrate_failed(c, r, "index scan")) {
            ok = false;
            break;
        }
        if (r->type != REDIS_REPLY_ARRAY || r->elements != 2 || r->element[0]->type != REDIS_REPLY_STRING ||
            r->element[1]->type != REDIS_REPLY_ARRAY) {
            freeReplyObject(r);
            fprintf(stderr, "heraldctl: migrate: unexpected reply to a scan of %s\n", from);
            ok = false;
            break;
        }
        const redisReply *el = r->element[1];
        size_t step_n = kind == REKEY_SET ? 1 : 2, sent = 0;
        for (size_t i = 0; i + step_n - 1 < el->elements; i += step_n) {
            const redisReply *m = el->element[i];
            if (m->type != REDIS_REPLY_STRING) continue;
            unsigned char nm[ADDRINDEX_LEN];
            addrindex_rekey(cfg->index_key, m->str, m->len, nm);
            addrindex_key_of(&k, cfg->prefix, to, nm);
            if (kind == REKEY_SET)
                redisAppendCommand(c, "SADD %s %b", k.buf, nm, (size_t)ADDRINDEX_LEN);
            else
                redisAppendCommand(c, "HSET %s %b %b", k.buf, nm, (size_t)ADDRINDEX_LEN, el->element[i + 1]->str,
                                   el->element[i + 1]->len);
            sent++;
        }
        herald_copy(cursor, sizeof(cursor), strcmp(r->element[0]->str, "0") == 0 ? "done" : r->element[0]->str);
        freeReplyObject(r);
        /* The cursor moves only once every write of the page landed. */
        ok = migrate_replies(c, sent, "index write") && migrate_save(c, state, step, cursor);
        if (ok) *n += (long long)sent;
    }
    strbuf_free(&k);
    return ok;
}

/* The admin stream's entries, copied in order (same ids) into a new
 * stream with address_sha256 keyed as a member is, which then replaces
 * it: no plain digest of an address stays in it. The last id copied is
 * the cursor. */
static bool migrate_admin(const struct config *cfg, redisContext *c, const char *state, long long *n)
{
    char cursor[32];
    if (!migrate_state(c, state, "admin", cursor)) return false;
    if (strcmp(cursor, "done") == 0) return true;
    struct strbuf ka, kt;
    strbuf_init(&ka);
    strbuf_init(&kt);
    store_key_admin(&ka, cfg->prefix);
    strbuf_addf(&kt, "%s:migrate:admin", cfg->prefix);
    bool ok = true, more = true;
    char from[64] = "-";
    if (strcmp(cursor, "0") != 0) snprintf(from, sizeof(from), "(%s", cursor);
    redisReply *r;
    while (ok && more) {
        r = redisCommand(c, "XRANGE %s %s + COUNT 1000", ka.buf, from);
        if (migrate_failed(c, r, "admin read")) {
            ok = false;
            break;
        }
        more = r->type == REDIS_REPLY_ARRAY && r->elements == 1000;
        size_t sent = 0;
        for (size_t i = 0; r->type == REDIS_REPLY_ARRAY && i < r->elements; i++) {
            const redisReply *e = r->element[i];
            if (e->type != REDIS_REPLY_ARRAY || e->elements != 2 || e->element[1]->type != REDIS_REPLY_ARRAY) continue;
            const redisReply *f = e->element[1];
            const char *channel = "";
            for (size_t j = 0; j + 1 < f->elements; j += 2)
                if (strcmp(f->element[j]->str, "channel") == 0) channel = f->element[j + 1]->str;
            size_t argc = 3 + f->elements;
            const char **argv = xcalloc(argc, sizeof(*argv));
            size_t *argl = xcalloc(argc, sizeof(*argl));
            char hex[ADDRINDEX_HEX];
            argv[0] = "XADD", argv[1] = kt.buf, argv[2] = e->element[0]->str;
            for (size_t j = 0; j < f->elements; j++) {
                argv[3 + j] = f->element[j]->str;
                argl[3 + j] = f->element[j]->len;
                if (j % 2 == 1 && strcmp(f->element[j - 1]->str, "address_sha256") == 0 &&
                    f->element[j]->len == 2 * 32) { /* a plain SHA-256: keyed now */
                    struct strbuf v2;
                    strbuf_init(&v2);
                    strbuf_addf(&v2, "%s:%s", channel, f->element[j]->str);
                    unsigned char nm[ADDRINDEX_LEN];
                    addrindex_rekey(cfg->index_key, v2.buf, v2.len, nm);
                    addrindex_hex(hex, nm);
                    strbuf_free(&v2);
                    argv[3 + j] = hex;
                    argl[3 + j] = strlen(hex);
                }
            }
            for (size_t j = 0; j < 3; j++) argl[j] = strlen(argv[j]);
            redisAppendCommandArgv(c, (int)argc, argv, argl);
            free(argv);
            free(argl);
            sent++;
            snprintf(from, sizeof(from), "(%s", e->element[0]->str);
        }
        freeReplyObject(r);
        /* The cursor (the last id copied) moves once the page's copies landed. */
        ok = migrate_replies(c, sent, "admin copy") && (!sent || migrate_save(c, state, "admin", from + 1));
        if (ok) *n += (long long)sent;
    }
    if (ok) { /* the copy replaces the stream (none: there was no admin stream) */
        r = redisCommand(c, "EXISTS %s", kt.buf);
        if (migrate_failed(c, r, "admin copy read")) ok = false;
        else {
            bool copied = r->type == REDIS_REPLY_INTEGER && r->integer == 1;
            freeReplyObject(r);
            r = copied ? redisCommand(c, "RENAME %s %s", kt.buf, ka.buf) : redisCommand(c, "PING");
            ok = !migrate_failed(c, r, "admin replace");
            if (ok) freeReplyObject(r);
        }
    }
    if (ok) ok = migrate_save(c, state, "admin", "done");
    strbuf_free(&ka);
    strbuf_free(&kt);
    return ok;
}

/* Layout 2's indexes held a plain SHA-256 of each address; layout 3's hold
 * HMAC-SHA256 under the index key of exactly that string (addrindex.h), so
 * every member is re-keyed without its address. Layout 2's tombstones
 * (herald:tombstones, keyed with the tombstone secret) stay where they are:
 * they cannot be re-keyed without the address, and the writes still read
 * them (docs/privacy.md). */
static bool migrate_indexes(const struct config *cfg, redisContext *c)
{
    struct strbuf state, ks, ki, ka;
    strbuf_init(&state);
    strbuf_init(&ks);
    strbuf_init(&ki);
    strbuf_init(&ka);
    strbuf_addf(&state, "%s:migrate:3", cfg->prefix);
    store_key_suppress(&ks, cfg->prefix);
    store_key_suppress_info(&ki, cfg->prefix);
    store_key_addr(&ka, cfg->prefix);
    long long sup = 0, info = 0, addr = 0, admin = 0;
    bool ok = migrate_rekey(cfg, c, state.buf, "suppress", REKEY_SET, ks.buf, ADDRINDEX_SUPPRESS, &sup) &&
              migrate_rekey(cfg, c, state.buf, "suppress_info", REKEY_HASH, ki.buf, ADDRINDEX_SUPPRESS_INFO, &info) &&
              migrate_rekey(cfg, c, state.buf, "addr", REKEY_HASH, ka.buf, ADDRINDEX_ADDR, &addr) &&
              migrate_admin(cfg, c, state.buf, &admin);
    if (ok) {
        redisReply *r = redisCommand(c, "UNLINK %s %s %s", ks.buf, ki.buf, ka.buf);
        ok = !migrate_failed(c, r, "layout 2 index removal");
        if (ok) freeReplyObject(r);
    }
    if (ok) {
        char id[17];
        addrindex_key_id(cfg->index_key, id);
        printf("re-keyed under index key %s: %lld suppression%s, %lld address index entr%s, %lld suppression "
               "change%s\n", id, sup, sup == 1 ? "" : "s", addr, addr == 1 ? "y" : "ies", admin, admin == 1 ? "" : "s");
    }
    strbuf_free(&state);
    strbuf_free(&ks);
    strbuf_free(&ki);
    strbuf_free(&ka);
    return ok;
}

/* ---- layout 3 -> 4: the ledger into the person hash, the address index
 * into buckets (addrindex.h). Both steps resume as they are: what is moved
 * is gone from where it was, and every write may be made twice. ---------- */

/* Every person hash on every master through lua/migrate_ledger.lua: the
 * current consent fields renamed, the ledger list moved in. *people counts
 * the people whose ledger moved. */
static bool migrate_ledgers(const struct config *cfg, redisContext *nodes[], size_t nnodes, long long *people)
{
    struct strbuf pat, list;
    strbuf_init(&pat);
    strbuf_init(&list);
    store_glob_escape(&pat, cfg->prefix);
    strbuf_adds(&pat, ":r:{*}"); /* person hashes only: each ends in its tag */
    const char *argv[5 + HERALD_CH_COUNT] = {"EVAL", store_lua_migrate_ledger, "2"};
    for (int ch = 0; ch < HERALD_CH_COUNT; ch++) argv[5 + ch] = channel_get(ch)->name;
    bool ok = true;
    for (size_t node = 0; ok && node < nnodes; node++) {
        redisContext *c = nodes[node];
        char cursor[32] = "0";
        do {
            redisReply *r = redisCommand(c, "SCAN %s MATCH %s COUNT 1000", cursor, pat.buf);
            if (migrate_failed(c, r, "person scan")) {
                ok = false;
                break;
            }
            if (r->type != REDIS_REPLY_ARRAY || r->elements != 2 || r->element[0]->type != REDIS_REPLY_STRING) {
                freeReplyObject(r);
                fprintf(stderr, "heraldctl: migrate: unexpected reply to SCAN\n");
                ok = false;
                break;
            }
            herald_copy(cursor, sizeof(cursor), r->element[0]->str);
            for (size_t i = 0; ok && i < r->element[1]->elements; i++) {
                const redisReply *key = r->element[1]->element[i];
                if (key->type != REDIS_REPLY_STRING) continue;
                strbuf_reset(&list);
                strbuf_add(&list, key->str, key->len);
                strbuf_adds(&list, ":consent"); /* layout 3's ledger list */
                argv[3] = list.buf;
                argv[4] = key->str;
                redisReply *m = redisCommandArgv(c, 5 + HERALD_CH_COUNT, argv, NULL);
                ok = !migrate_failed(c, m, "ledger move");
                if (ok) *people += m->type == REDIS_REPLY_INTEGER && m->integer > 0;
                if (ok) freeReplyObject(m);
            }
            freeReplyObject(r);
        } while (ok && strcmp(cursor, "0") != 0);
    }
    strbuf_free(&pat);
    strbuf_free(&list);
    return ok;
}

/* Layout 3's 16 address index hashes into the buckets, each on the master
 * of its slot (a bucket shares its shard's hash tag: same master). Moved
 * entries leave the shard, which is gone once it is empty. *n counts them. */
static bool migrate_buckets(const struct config *cfg, redisContext *control, long long *n)
{
    struct strbuf k, b;
    strbuf_init(&k);
    strbuf_init(&b);
    bool ok = true;
    for (unsigned shard = 0; ok && shard < ADDRINDEX_SHARDS; shard++) {
        addrindex_key(&k, cfg->prefix, ADDRINDEX_ADDR, shard);
        char err[256], cursor[32] = "0";
        redisContext *c = ctl_cluster ? rcluster_sync_ctx(ctl_cluster, rcluster_slot(k.buf, k.len), err, sizeof(err))
                                      : control;
        if (!c) {
            fprintf(stderr, "heraldctl: migrate: %s\n", err);
            ok = false;
            break;
        }
        for (;;) {
            redisReply *r = redisCommand(c, "HSCAN %s %s COUNT 1000", k.buf, cursor);
            if (migrate_failed(c, r, "address index scan")) {
                ok = false;
                break;
            }
            if (r->type != REDIS_REPLY_ARRAY || r->elements != 2 || r->element[0]->type != REDIS_REPLY_STRING ||
                r->element[1]->type != REDIS_REPLY_ARRAY) {
                freeReplyObject(r);
                fprintf(stderr, "heraldctl: migrate: unexpected reply to a scan of %s\n", k.buf);
                ok = false;
                break;
            }
            const redisReply *el = r->element[1];
            size_t sent = 0;
            for (size_t i = 0; i + 1 < el->elements; i += 2) {
                const redisReply *m = el->element[i], *v = el->element[i + 1];
                if (m->len == ADDRINDEX_LEN) {
                    addrindex_key_of(&b, cfg->prefix, ADDRINDEX_ADDR, (const unsigned char *)m->str);
                    redisAppendCommand(c, "HSET %s %b %b", b.buf, m->str, m->len, v->str, v->len);
                    sent++;
                } /* else not a layout 3 member: dropped */
                redisAppendCommand(c, "HDEL %s %b", k.buf, m->str, m->len);
                sent++;
            }
            herald_copy(cursor, sizeof(cursor), r->element[0]->str);
            *n += (long long)(el->elements / 2);
            freeReplyObject(r);
            if (!(ok = migrate_replies(c, sent, "address index move"))) break;
            if (strcmp(cursor, "0") != 0) continue;
            /* A scan sees every entry there from start to end: one more pass
             * only if something is left (it never is without a writer). */
            r = redisCommand(c, "EXISTS %s", k.buf);
            if (migrate_failed(c, r, "address index read")) {
                ok = false;
                break;
            }
            bool left = r->type == REDIS_REPLY_INTEGER && r->integer > 0;
            freeReplyObject(r);
            if (!left) break;
        }
    }
    strbuf_free(&k);
    strbuf_free(&b);
    return ok;
}

/* migrate: layout 1 -> 2 -> 3 -> 4 -> 5 (store.h): each person's records
 * hash into their person hash (layout 1), the indexes re-keyed (layout 2,
 * migrate_indexes), each sealed person's "#" written (rotate_index_fields),
 * the ledgers and the address index moved (layout 3, migrate_ledgers,
 * migrate_buckets), then the layout key (all that 4 -> 5 writes). Refused
 * while a daemon runs (its consumer lock is there): it would read jobs
 * against half-moved data. */
static int cmd_migrate(const struct config *cfg, redisContext *c)
{
    struct strbuf pat, k, person;
    strbuf_init(&pat);
    strbuf_init(&k);
    strbuf_init(&person);
    int rc = 2;
    store_key_layout(&k, cfg->prefix);
    redisReply *r = redisCommand(c, "GET %s", k.buf);
    if (migrate_failed(c, r, "layout read")) goto out;
    if (r->type == REDIS_REPLY_STRING && strcmp(r->str, STORE_LAYOUT) == 0) {
        freeReplyObject(r);
        printf("key layout %s already: nothing to migrate\n", STORE_LAYOUT);
        rc = 0;
        goto out;
    }
    bool from3 = r->type == REDIS_REPLY_STRING && strcmp(r->str, "3") == 0;
    bool from4 = r->type == REDIS_REPLY_STRING && strcmp(r->str, "4") == 0;
    freeReplyObject(r);
    store_glob_escape(&pat, cfg->prefix);
    strbuf_adds(&pat, ":consumer:*");
    bool running = false;
    char cursor[32] = "0";
    do {
        r = redisCommand(c, "SCAN %s MATCH %s COUNT 10000", cursor, pat.buf);
        if (migrate_failed(c, r, "consumer lock scan")) goto out;
        if (r->type != REDIS_REPLY_ARRAY || r->elements != 2 || r->element[0]->type != REDIS_REPLY_STRING) {
            freeReplyObject(r);
            fprintf(stderr, "heraldctl: migrate: unexpected reply to SCAN\n");
            goto out;
        }
        herald_copy(cursor, sizeof(cursor), r->element[0]->str);
        running = r->element[1]->elements > 0;
        freeReplyObject(r);
    } while (!running && strcmp(cursor, "0") != 0);
    if (running) {
        fprintf(stderr, "heraldctl: migrate: a daemon is running on this Redis (a %s:consumer:* lock is held): "
                        "stop every daemon (a killed one's lock lapses after [daemon] claim_idle), then run it "
                        "again\n", cfg->prefix);
        rc = 1;
        goto out;
    }
    if (from4) {
        /* Layout 5 logs a run's handoffs instead of writing them to the
         * person (store.h): nothing stored moves, and a layout 4
         * record ("p ...") still reads as handed. What 4 -> 5 needs is
         * that no daemon of layout 4 runs beside one of 5 (checked above). */
        r = redisCommand(c, "SET %s %s", k.buf, STORE_LAYOUT);
        if (migrate_failed(c, r, "layout write")) goto out;
        freeReplyObject(r);
        printf("migrated to key layout %s: nothing to move from layout 4\n", STORE_LAYOUT);
        rc = 0;
        goto out;
    }
    strbuf_reset(&pat);
    store_glob_escape(&pat, cfg->prefix);
    strbuf_adds(&pat, ":r:{*}:campaigns");
    long long moved = 0, people = 0;
    redisContext *nodes[RCLUSTER_MAX_MASTERS], *control = c;
    size_t nnodes = scan_nodes(control, nodes, RCLUSTER_MAX_MASTERS);
    if (!nnodes) goto out;
    for (size_t node = 0; !from3 && node < nnodes; node++) {
        c = nodes[node];
        herald_copy(cursor, sizeof(cursor), "0");
        do {
            r = redisCommand(c, "SCAN %s MATCH %s COUNT 1000", cursor, pat.buf);
            if (migrate_failed(c, r, "key scan")) goto out;
            if (r->type != REDIS_REPLY_ARRAY || r->elements != 2 || r->element[0]->type != REDIS_REPLY_STRING) {
                freeReplyObject(r);
                fprintf(stderr, "heraldctl: migrate: unexpected reply to SCAN\n");
                goto out;
            }
            herald_copy(cursor, sizeof(cursor), r->element[0]->str);
            for (size_t i = 0; i < r->element[1]->elements; i++) {
                const redisReply *key = r->element[1]->element[i];
                const char *tail = ":campaigns";
                size_t tl = strlen(tail);
                if (key->type != REDIS_REPLY_STRING || key->len <= tl) continue;
                strbuf_reset(&person);
                strbuf_add(&person, key->str, key->len - tl);
                redisReply *m = redisCommand(c, "EVAL %s 2 %b %s", store_lua_migrate, key->str, key->len, person.buf);
                if (migrate_failed(c, m, "record move")) {
                    freeReplyObject(r);
                    goto out;
                }
                moved += m->type == REDIS_REPLY_INTEGER ? m->integer : 0;
                people++;
                freeReplyObject(m);
            }
            freeReplyObject(r);
        } while (strcmp(cursor, "0") != 0);
    }
    c = control;
    if (!from3 && !migrate_indexes(cfg, c)) goto out;
    /* Layouts 2 and 3 before it stored no "#" beside a sealed person's
     * envelope: what a campaign's checks read instead of decrypting
     * (store_person.h). */
    long long indexed = 0;
    if (rotate_index_fields(cfg, c, ctl_cluster, &indexed) < 0) goto out;
    if (indexed) printf("wrote the address checks' field (#) of %lld sealed %s\n", indexed,
                        indexed == 1 ? "person" : "people");
    long long ledgers = 0, entries = 0;
    if (!migrate_ledgers(cfg, nodes, nnodes, &ledgers) || !migrate_buckets(cfg, control, &entries)) goto out;
    printf("%lld consent ledger%s moved into the person hash, %lld address index entr%s into %d buckets\n", ledgers,
           ledgers == 1 ? "" : "s", entries, entries == 1 ? "y" : "ies", ADDRINDEX_BUCKETS);
    r = redisCommand(c, "SET %s %s", k.buf, STORE_LAYOUT);
    if (migrate_failed(c, r, "layout write")) goto out;
    freeReplyObject(r);
    strbuf_reset(&pat);
    strbuf_addf(&pat, "%s:migrate:3", cfg->prefix);
    r = from3 ? NULL : redisCommand(c, "DEL %s", pat.buf); /* layout 3 has none (not a key of a cluster's control slot) */
    if (!from3 && migrate_failed(c, r, "progress removal")) goto out;
    freeReplyObject(r);
    printf("migrated to key layout %s: %lld once-only record%s of %lld %s moved\n", STORE_LAYOUT, moved,
           moved == 1 ? "" : "s", people, people == 1 ? "person" : "people");
    rc = 0;
out:
    strbuf_free(&pat);
    strbuf_free(&k);
    strbuf_free(&person);
    return rc;
}

/* pause, resume, cancel: the campaign's control field, read by every
 * daemon within a second (lua/campaign_control.lua). */
static int cmd_control(const struct config *cfg, redisContext *c, enum store_control_action action, const char *id)
{
    if (!herald_id_valid(id)) {
        fprintf(stderr, "heraldctl: not a campaign id (1..%d of " HERALD_ID_CHARS ")\n", HERALD_ID_MAX);
        return 1;
    }
    enum store_control_result res;
    char err[256];
    if (store_sync_control(c, cfg->prefix, id, action, (long long)cfg->audit_maxlen, &res, err, sizeof(err)) < 0) {
        fprintf(stderr, "heraldctl: %s\n", err);
        return 2;
    }
    switch (res) {
    case STORE_CONTROL_OK:
        printf("%s\n", action == STORE_CONTROL_PAUSE    ? "paused: every daemon stops sending it within a second"
                       : action == STORE_CONTROL_RESUME ? "resumed"
                                                        : "cancelled: each unsent recipient is recorded "
                                                          "suppressed/cancelled");
        return 0;
    case STORE_CONTROL_UNCHANGED:
        printf("%s already\n", action == STORE_CONTROL_PAUSE ? "paused" : "cancelled");
        return 0;
    case STORE_CONTROL_UNKNOWN:
        fprintf(stderr, "heraldctl: no campaign with this id\n");
        return 1;
    case STORE_CONTROL_FINAL:
        fprintf(stderr, "heraldctl: the campaign is cancelled; a cancel is final\n");
        return 1;
    case STORE_CONTROL_NOT_PAUSED:
        fprintf(stderr, "heraldctl: the campaign is not paused\n");
        return 1;
    }
    return 2;
}

/* stats' reads: the reply of a command that answers an integer (nil, an
 * absent key, counts 0) or, with want_array, an array. NULL after saying
 * what Redis refused: stats prints nothing rather than a figure built
 * on a refusal. */
static redisReply *stats_read(redisContext *c, const char *what, bool want_array, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    redisReply *r = redisvCommand(c, fmt, ap);
    va_end(ap);
    bool ok = r && (want_array ? r->type == REDIS_REPLY_ARRAY
                               : r->type == REDIS_REPLY_INTEGER || r->type == REDIS_REPLY_NIL);
    if (ok) return r;
    char err[256];
    store_sync_error(err, sizeof(err), what, c, r && r->type == REDIS_REPLY_ERROR ? r : NULL);
    fprintf(stderr, "heraldctl: stats: %s\n", err);
    if (r) freeReplyObject(r);
    return NULL;
}

/* MEMORY USAGE of key into *sum (an absent key adds 0); false when refused. */
static bool mem_usage(redisContext *c, const char *key, long long *sum)
{
    redisReply *r = stats_read(c, "memory usage read", false, "MEMORY USAGE %s SAMPLES 0", key);
    if (!r) return false;
    if (r->type == REDIS_REPLY_INTEGER) *sum += r->integer;
    freeReplyObject(r);
    return true;
}

#define STATS_SAMPLE 1000

/* What a scan of people does with each page of keys (persons[0..n), on
 * node c) besides the census: stats samples their sizes. -1 stops it
 * (having said why on stderr). */
typedef int (*people_page_fn)(redisContext *c, const redisReply *const *persons, size_t n, void *arg);

/* Every person's key on every master (nodes[0..nnodes)), each visited
 * once: the census of each page (rotate_census: by_key, *clear), and page
 * (if any). Returns 0, or -1 after saying why on stderr (as cmd: ...). */
static int people_scan(const struct config *cfg, redisContext **nodes, size_t nnodes, json_t *by_key, long long *clear,
                       people_page_fn page, void *arg, const char *cmd)
{
    struct strbuf pat;
    strbuf_init(&pat);
    store_glob_escape(&pat, cfg->prefix);
    strbuf_adds(&pat, ":r:{*}");
    int rc = 0;
    for (size_t node = 0; node < nnodes && rc == 0; node++) { /* summed over every master of a cluster */
        redisContext *c = nodes[node];
        char cursor[32] = "0";
        do {
            redisReply *r = redisCommand(c, "SCAN %s MATCH %s COUNT 1000", cursor, pat.buf);
            if (!r || r->type != REDIS_REPLY_ARRAY || r->elements != 2 || r->element[0]->type != REDIS_REPLY_STRING) {
                char err[256];
                store_sync_error(err, sizeof(err), "key scan", c, r && r->type == REDIS_REPLY_ERROR ? r : NULL);
                fprintf(stderr, "heraldctl: %s: %s\n", cmd, err);
                if (r) freeReplyObject(r);
                rc = -1;
                break;
            }
            herald_copy(cursor, sizeof(cursor), r->element[0]->str);
            const redisReply **persons = xcalloc(r->element[1]->elements + 1, sizeof(*persons));
            size_t np = 0;
            for (size_t i = 0; i < r->element[1]->elements; i++) {
                const redisReply *key = r->element[1]->element[i];
                if (key->type == REDIS_REPLY_STRING && key->len && key->str[key->len - 1] == '}') persons[np++] = key;
            }
            char cerr[256];
            if (rotate_census(c, persons, np, by_key, clear, cerr, sizeof(cerr)) < 0) {
                fprintf(stderr, "heraldctl: %s: %s\n", cmd, cerr);
                rc = -1;
            } else if (page && page(c, persons, np, arg) < 0) {
                rc = -1;
            }
            free(persons);
            freeReplyObject(r);
        } while (rc == 0 && strcmp(cursor, "0") != 0);
    }
    strbuf_free(&pat);
    return rc;
}

/* stats' page: people counted, the first STATS_SAMPLE sampled. */
struct stats_run {
    long long people, sampled, bytes, records, record_bytes;
    struct strbuf k;
};

static int stats_page(redisContext *c, const redisReply *const *persons, size_t n, void *arg)
{
    struct stats_run *st = arg;
    for (size_t i = 0; i < n; i++) {
        const redisReply *key = persons[i];
        st->people++;
        if (st->sampled >= STATS_SAMPLE) continue;
        st->sampled++;
        bool ok = mem_usage(c, key->str, &st->bytes);
        static const char *const tails[] = {":history", ":sends"};
        for (size_t t = 0; ok && t < sizeof(tails) / sizeof(tails[0]); t++) {
            strbuf_reset(&st->k);
            strbuf_add(&st->k, key->str, key->len);
            strbuf_adds(&st->k, tails[t]);
            ok = mem_usage(c, st->k.buf, &st->bytes);
        }
        redisReply *h = ok ? stats_read(c, "person read", true, "HGETALL %s", key->str) : NULL;
        if (!h) return -1;
        for (size_t f = 0; f + 1 < h->elements; f += 2)
            if (strncmp(h->element[f]->str, STORE_RECORD_FIELD_PREFIX, strlen(STORE_RECORD_FIELD_PREFIX)) == 0) {
                st->records++;
                st->record_bytes += (long long)(h->element[f]->len + h->element[f + 1]->len);
            }
        freeReplyObject(h);
    }
    return 0;
}

/* The live sealing leases (keylease.h) naming id, as an array of their
 * holders, from the leases' HGETALL l at Redis time now. */
static json_t *stats_sealing(const redisReply *l, long long now, const char *id)
{
    json_t *a = json_array();
    size_t idl = strlen(id);
    for (size_t i = 0; i + 1 < l->elements; i += 2) {
        const redisReply *h = l->element[i], *v = l->element[i + 1];
        if (h->type != REDIS_REPLY_STRING || v->type != REDIS_REPLY_STRING) continue;
        if (v->len > idl && memcmp(v->str, id, idl) == 0 && v->str[idl] == ' ' &&
            strtoll(v->str + idl + 1, NULL, 10) > now)
            json_array_append_new(a, json_string(h->str));
    }
    return a;
}

/* The key registry (keyreg.h) beside the census: {"<id>": {"people": N,
 * "state": "in use" | "retired", "retired_at": T, "sealing": [holders of
 * a live sealing lease on it]}}, and the ids that seal people but were
 * never registered ("state": "unregistered"). NULL after saying what
 * Redis refused. */
static json_t *stats_registry(const struct config *cfg, redisContext *c, const json_t *by_key)
{
    struct strbuf k;
    strbuf_init(&k);
    keyreg_key(&k, cfg->prefix);
    redisReply *r = stats_read(c, "key registry read", true, "HGETALL %s", k.buf);
    keylease_key(&k, cfg->prefix);
    redisReply *l = r ? stats_read(c, "sealing leases read", true, "HGETALL %s", k.buf) : NULL;
    redisReply *t = l ? stats_read(c, "time read", true, "TIME") : NULL;
    strbuf_free(&k);
    if (!t || t->elements < 1 || t->element[0]->type != REDIS_REPLY_STRING) {
        if (t) fprintf(stderr, "heraldctl: stats: time read: unexpected reply\n");
        if (r) freeReplyObject(r);
        if (l) freeReplyObject(l);
        if (t) freeReplyObject(t);
        return NULL;
    }
    long long now = strtoll(t->element[0]->str, NULL, 10);
    freeReplyObject(t);
    json_t *o = json_object();
    for (size_t i = 0; i + 1 < r->elements; i += 2) {
        const char *id = r->element[i]->str, *v = r->element[i + 1]->str;
        json_t *n = json_object_get(by_key, id);
        json_t *e = json_pack("{s:I}", "people", (json_int_t)(n ? json_integer_value(n) : 0));
        if (strncmp(v, KEYREG_RETIRED " ", strlen(KEYREG_RETIRED) + 1) == 0) {
            json_object_set_new(e, "state", json_string("retired"));
            json_object_set_new(e, "retired_at", json_integer(strtoll(v + strlen(KEYREG_RETIRED) + 1, NULL, 10)));
        } else {
            json_object_set_new(e, "state", json_string("in use"));
        }
        json_object_set_new(e, "sealing", stats_sealing(l, now, id));
        json_object_set_new(o, id, e);
    }
    freeReplyObject(l);
    const char *id;
    json_t *n;
    json_object_foreach((json_t *)by_key, id, n)
        if (!json_object_get(o, id))
            json_object_set_new(o, id, json_pack("{s:I, s:s}", "people", (json_int_t)json_integer_value(n), "state",
                                                 "unregistered"));
    freeReplyObject(r);
    return o;
}

/* stats: people counted with SCAN (every key is visited once: it takes a
 * while on a large Redis, and reads only); bytes per person from the
 * first STATS_SAMPLE people met (their keys, and their share of the
 * address index); the once-only records they hold. */
static int cmd_stats(const struct config *cfg, redisContext *c)
{
    struct stats_run st = {0};
    strbuf_init(&st.k);
    struct strbuf k;
    strbuf_init(&k);
    long long clear = 0;
    json_t *by_key = json_object(); /* every person: which key seals their contact data */
    json_t *registry = NULL;
    int rc = 2;
    redisContext *nodes[RCLUSTER_MAX_MASTERS], *control = c;
    size_t nnodes = scan_nodes(control, nodes, RCLUSTER_MAX_MASTERS);
    if (!nnodes || people_scan(cfg, nodes, nnodes, by_key, &clear, stats_page, &st, "stats") < 0) goto out;
    long long people = st.people, sampled = st.sampled, bytes = st.bytes, records = st.records,
              record_bytes = st.record_bytes;
    c = control;
    long long addr = 0, audit = 0, awaiting = 0;
    for (unsigned bucket = 0; bucket < ADDRINDEX_BUCKETS; bucket++) {
        long long b = 0;
        addrindex_bucket_key(&k, cfg->prefix, bucket);
        char err[256];
        redisContext *sc = ctl_cluster ? rcluster_sync_ctx(ctl_cluster, rcluster_slot(k.buf, k.len), err, sizeof(err))
                                       : c; /* on a cluster: the shard's master */
        if (!sc) {
            fprintf(stderr, "heraldctl: stats: %s\n", err);
            goto out;
        }
        if (!mem_usage(sc, k.buf, &b)) goto out;
        addr += b;
    }
    store_key_audit(&k, cfg->prefix);
    if (!mem_usage(c, k.buf, &audit)) goto out;
    store_key_retention(&k, cfg->prefix);
    redisReply *z = stats_read(c, "retention read", false, "ZCARD %s", k.buf);
    if (!z) goto out;
    awaiting = z->type == REDIS_REPLY_INTEGER ? z->integer : 0;
    freeReplyObject(z);
    double per = sampled ? (double)bytes / (double)sampled + (people ? (double)addr / (double)people : 0) : 0;
    json_t *o = json_pack("{s:I, s:I, s:I, s:{s:f, s:f}, s:I, s:I}", "people", (json_int_t)people,
                          "bytes_per_person", (json_int_t)(per + 0.5), "sample", (json_int_t)sampled,
                          "once_only_records", "per_person", sampled ? (double)records / (double)sampled : 0.0,
                          "bytes_per_person", sampled ? (double)record_bytes / (double)sampled : 0.0,
                          "campaigns_awaiting_retention", (json_int_t)awaiting, "audit_stream_bytes",
                          (json_int_t)audit);
    /* Whether a key can leave key_file: the people each key seals, and
     * those still in clear (heraldctl rotate-key seals them). */
    json_object_set_new(o, "contact_data", json_pack("{s:O, s:I}", "sealed_by_key", by_key, "plaintext",
                                                     (json_int_t)clear));
    json_object_set_new(o, "masters_counted", json_integer((json_int_t)nnodes)); /* people and census: each one */
    if (!(registry = stats_registry(cfg, c, by_key))) {
        json_decref(o);
        goto out;
    }
    json_object_set_new(o, "keys", registry);
    char *text = json_dumps(o, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    printf("%s\n", text);
    free(text);
    json_decref(o);
    rc = 0;
out:
    json_decref(by_key);
    strbuf_free(&st.k);
    strbuf_free(&k);
    return rc;
}

/* retire-key ID [--dry-run]: marks a key id retired in the key registry
 * (keyreg.h) once no person is sealed under it, counted over every master
 * as stats counts them; only people are sealed (store_person_seal is the
 * one caller of seal_close): dead letters, the audit and the rotation's
 * state hold ids, never an envelope. */
static int cmd_retire_key(const struct config *cfg, redisContext *c, const char *id, bool dry_run)
{
    size_t idl = strlen(id);
    bool id_ok = idl >= 1 && idl <= SEAL_ID_MAX;
    for (size_t i = 0; id_ok && i < idl; i++)
        id_ok = (id[i] >= 'a' && id[i] <= 'z') || (id[i] >= 'A' && id[i] <= 'Z') || (id[i] >= '0' && id[i] <= '9') ||
                id[i] == '_' || id[i] == '-';
    if (!id_ok) {
        fprintf(stderr, "heraldctl: retire-key: a key id is 1..%d of A-Z a-z 0-9 _ -\n", SEAL_ID_MAX);
        return 2;
    }
    if (cfg->keys && strcmp(cfg->keys->v[0].id, id) == 0) {
        fprintf(stderr,
                "heraldctl: retire-key: key '%s' is the first of [privacy] key_file: it seals every person written "
                "now; put the new key first, reload every daemon (heraldctl reload), run heraldctl rotate-key, "
                "then retire '%s'\n",
                id, id);
        return 1;
    }
    struct strbuf k;
    strbuf_init(&k);
    keyreg_key(&k, cfg->prefix);
    int rc = 2;
    redisReply *r = redisCommand(c, "HGET %s %s", k.buf, id);
    if (!r || (r->type != REDIS_REPLY_STRING && r->type != REDIS_REPLY_NIL)) {
        char err[256];
        store_sync_error(err, sizeof(err), "key registry read", c, r && r->type == REDIS_REPLY_ERROR ? r : NULL);
        fprintf(stderr, "heraldctl: retire-key: %s\n", err);
        goto out;
    }
    if (r->type == REDIS_REPLY_STRING && strncmp(r->str, KEYREG_RETIRED, strlen(KEYREG_RETIRED)) == 0) {
        printf("key '%s' is retired already (%s)\n", id, r->str);
        rc = 0;
        goto out;
    }
    if (r->type == REDIS_REPLY_NIL) { /* a typo would name a retired id that could never seal */
        fprintf(stderr,
                "heraldctl: retire-key: key '%s' is not in the key registry (heraldctl stats lists it): no key "
                "file registered it, so none needs it retired\n",
                id);
        rc = 1;
        goto out;
    }
    freeReplyObject(r);
    r = NULL;
    json_t *by_key = json_object();
    long long clear = 0;
    redisContext *nodes[RCLUSTER_MAX_MASTERS];
    size_t nnodes = scan_nodes(c, nodes, RCLUSTER_MAX_MASTERS);
    if (!nnodes || people_scan(cfg, nodes, nnodes, by_key, &clear, NULL, NULL, "retire-key") < 0) {
        json_decref(by_key);
        goto out;
    }
    json_t *n = json_object_get(by_key, id);
    long long people = n ? (long long)json_integer_value(n) : 0;
    json_decref(by_key);
    if (people > 0) {
        fprintf(stderr,
                "heraldctl: retire-key: key '%s' still seals %lld %s (counted on %zu master%s): run heraldctl "
                "rotate-key with the new key first in key_file, then retire-key %s again\n",
                id, people, people == 1 ? "person" : "people", nnodes, nnodes == 1 ? "" : "s", id);
        rc = 1;
        goto out;
    }
    /* Last, in one step with the check that no running daemon or heraldctl
     * seals under it now (a live sealing lease, keylease.h); a dry run
     * checks the same and writes nothing. */
    char v[64], detail[256];
    long long left = 0;
    if (dry_run) v[0] = '\0';
    else snprintf(v, sizeof(v), "%s %lld", KEYREG_RETIRED, (long long)time(NULL));
    switch (keylease_retire_sync(c, cfg->prefix, id, v, detail, sizeof(detail), &left)) {
    case KEYLEASE_RETIRED_NOW:
        if (!dry_run) break;
        printf("key '%s' seals nobody (counted on %zu master%s) and no running process seals under it: "
               "retire-key %s would retire it\n",
               id, nnodes, nnodes == 1 ? "" : "s", id);
        rc = 0;
        goto out;
    case KEYLEASE_RETIRED_ALREADY:
        printf("key '%s' is retired already (%s)\n", id, detail);
        rc = 0;
        goto out;
    case KEYLEASE_UNKNOWN:
        fprintf(stderr, "heraldctl: retire-key: key '%s' is no longer in the key registry\n", id);
        rc = 1;
        goto out;
    case KEYLEASE_SEALING:
        fprintf(stderr,
                "heraldctl: retire-key: key '%s' is the sealing key (the first of key_file) of \"%s\", which "
                "runs now: reload it with the new key first (heraldctl reload), then retire-key %s again (a "
                "process that stopped without giving its lease back holds it %lld s more)\n",
                id, detail, id, left);
        rc = 1;
        goto out;
    case KEYLEASE_ERROR:
        fprintf(stderr, "heraldctl: retire-key: %s\n", detail);
        goto out;
    }
    printf("key '%s' retired: nobody is sealed under it (counted on %zu master%s). Next: delete its line from "
           "[privacy] key_file and reload every daemon (heraldctl reload); a key file without it is accepted now\n",
           id, nnodes, nnodes == 1 ? "" : "s");
    rc = 0;
out:
    if (r) freeReplyObject(r);
    strbuf_free(&k);
    return rc;
}

/* import and rotate-key seal people: the key file first goes through the
 * key registry, as a daemon's start does (keyreg.h). Returns 0, or 2 after
 * saying why. */
static int check_keys(const struct config *cfg, redisContext *c, const char *cmd)
{
    struct strbuf warn;
    strbuf_init(&warn);
    char err[512];
    int rc = keyreg_check_sync(c, cfg->prefix, cfg->keys, true, &warn, err, sizeof(err));
    for (char *line = warn.buf, *nl; line && *line; line = nl + 1) {
        if (!(nl = strchr(line, '\n'))) break;
        fprintf(stderr, "heraldctl: warning: [privacy] key_file: %.*s\n", (int)(nl - line), line);
    }
    strbuf_free(&warn);
    if (rc == 0) return 0;
    fprintf(stderr, "heraldctl: %s: %s%s\n", cmd, rc == -HERALD_EINVAL ? "[privacy] key_file: " : "", err);
    return 2;
}

static int cmd_campaign(const struct config *cfg, redisContext *c, const char *id)
{
    char err[256];
    json_t *out = NULL;
    struct store_node_counts counts = {0};
    if ((ctl_cluster && store_node_counts_sync(c, ctl_cluster, cfg->prefix, id, &counts, err, sizeof(err)) < 0) ||
        store_sync_campaign_get(c, cfg->prefix, id, &counts, &out, err, sizeof(err)) < 0) {
        store_node_counts_free(&counts);
        fprintf(stderr, "heraldctl: %s\n", err);
        return 2;
    }
    store_node_counts_free(&counts);
    /* No such campaign: its progress says "unknown", with zeros. */
    if (!out) out = store_campaign_progress_pairs(id, NULL, NULL, 0);
    char *s = json_dumps(out, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    printf("%s\n", s);
    free(s);
    json_decref(out);
    return 0;
}

/* Sums of a progress object's per-reason counts. */
static long long sum_counts(const json_t *obj)
{
    long long n = 0;
    const char *k;
    const json_t *v;
    json_object_foreach((json_t *)obj, k, v) n += json_integer_value(v);
    return n;
}

static long long count(const json_t *o, const char *key)
{
    return json_integer_value(json_object_get(o, key));
}

static volatile sig_atomic_t watch_interrupted;

static void on_watch_signal(int sig)
{
    (void)sig;
    watch_interrupted = 1;
}

/* On a cluster: the progress again, with the run's per-node counts. */
static int watch_cluster_counts(const struct config *cfg, redisContext *c, const char *id, json_t **o)
{
    char err[256];
    struct store_node_counts counts = {0};
    json_t *out = NULL;
    if (store_node_counts_sync(c, ctl_cluster, cfg->prefix, id, &counts, err, sizeof(err)) < 0 ||
        store_sync_campaign_get(c, cfg->prefix, id, &counts, &out, err, sizeof(err)) < 0) {
        store_node_counts_free(&counts);
        fprintf(stderr, "heraldctl: %s\n", err);
        return -1;
    }
    store_node_counts_free(&counts);
    if (out) {
        json_decref(*o);
        *o = out;
    }
    return 0;
}

/* Redraws the campaign's progress every second until it is done or
 * cancelled: in place on a terminal, one plain line per second otherwise.
 * 0 when it ended, 1 for a campaign Redis does not know, 2 for Redis,
 * 130 when interrupted (Ctrl-C: the line is ended, so the prompt does not
 * land on it). */
static int cmd_campaign_watch(const struct config *cfg, redisContext *c, const char *id)
{
    bool tty = isatty(STDOUT_FILENO);
    struct sigaction sa = {.sa_handler = on_watch_signal};
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    struct progress_rate rate = {0};
    struct strbuf kc;
    strbuf_init(&kc);
    store_key_campaign(&kc, cfg->prefix, id);
    int rc = -1;
    for (bool first = true; rc < 0; first = false) {
        redisReply *r = redisCommand(c, "HGETALL %s", kc.buf);
        if (!r || r->type != REDIS_REPLY_ARRAY) {
            char err[256];
            store_sync_error(err, sizeof(err), "progress read", c, r);
            if (tty && !first) fputs("\n", stdout);
            fprintf(stderr, "heraldctl: %s\n", err);
            if (r) freeReplyObject(r);
            rc = 2;
            break;
        }
        json_t *o = store_campaign_progress(id, r);
        freeReplyObject(r);
        if (ctl_cluster && watch_cluster_counts(cfg, c, id, &o) < 0) {
            if (tty && !first) fputs("\n", stdout);
            rc = 2;
            break;
        }
        struct progress_campaign pc = {
            .id = id, .state = json_string_value(json_object_get(o, "state")), .total = count(o, "total"),
            .sent = count(o, "sent"), .suppressed = sum_counts(json_object_get(o, "suppressed")),
            .deferred = count(o, "deferred"), .failed = sum_counts(json_object_get(o, "failed")),
            .unknown = count(o, "unknown"), .pending = count(o, "pending")};
        if (first && strcmp(pc.state, "unknown") == 0) {
            fprintf(stderr, "heraldctl: campaign %s: no such campaign (nothing enqueued under this id)\n", id);
            json_decref(o);
            rc = 1;
            break;
        }
        progress_rate_add(&rate, now_s(), progress_campaign_done(&pc));
        struct strbuf line;
        strbuf_init(&line);
        progress_campaign_line(&line, &pc, progress_rate_get(&rate), tty ? term_width(STDOUT_FILENO) - 1 : 0);
        if (tty) printf("\r%s\033[K", line.buf ? line.buf : "");
        else printf("%s\n", line.buf ? line.buf : "");
        strbuf_free(&line);
        if (progress_campaign_ended(&pc)) {
            if (tty) fputs("\n", stdout);
            rc = 0;
        }
        fflush(stdout);
        json_decref(o);
        if (rc < 0) nanosleep(&(struct timespec){1, 0}, NULL); /* a signal ends it early */
        if (rc < 0 && watch_interrupted) {
            if (tty) fputs("\n", stdout);
            rc = 130;
        }
    }
    strbuf_free(&kc);
    return rc;
}

int main(int argc, char **argv)
{
    const char *config_path = NULL;
    const char *overrides[MAX_OVERRIDES];
    size_t noverrides = 0;
    static const struct option opts[] = {
        {"config", required_argument, NULL, 'c'},
        {"set", required_argument, NULL, 's'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    int o;
    while ((o = getopt_long(argc, argv, "+c:s:h", opts, NULL)) != -1) {
        switch (o) {
        case 'c': config_path = optarg; break;
        case 's':
            if (noverrides == MAX_OVERRIDES) {
                fprintf(stderr, "heraldctl: too many --set options\n");
                return 2;
            }
            overrides[noverrides++] = optarg;
            break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (!config_path || optind >= argc) {
        usage(stderr);
        return 2;
    }
    const char *cmd = argv[optind];
    int nargs = argc - optind - 1;
    char **args = argv + optind + 1;
    /* campaign ID --watch (the flag on either side of the id) */
    bool watch = false;
    if (strcmp(cmd, "campaign") == 0 && nargs == 2 &&
        (strcmp(args[0], "--watch") == 0 || strcmp(args[1], "--watch") == 0)) {
        watch = true;
        if (strcmp(args[0], "--watch") == 0) args++;
        nargs = 1;
    }
    /* explain and simulate read their own options (explain.c). */
    bool own_args = strcmp(cmd, "explain") == 0 || strcmp(cmd, "simulate") == 0;
    /* rotate-key [--status] */
    bool rotate = strcmp(cmd, "rotate-key") == 0, rotate_st = false;
    if (rotate && nargs == 1 && strcmp(args[0], "--status") == 0) {
        rotate_st = true;
        nargs = 0;
    }
    /* retire-key ID [--dry-run] */
    bool retire = strcmp(cmd, "retire-key") == 0, retire_dry = false;
    if (retire && nargs == 2 && (strcmp(args[0], "--dry-run") == 0 || strcmp(args[1], "--dry-run") == 0)) {
        retire_dry = true;
        if (strcmp(args[0], "--dry-run") == 0) args++;
        nargs = 1;
    }
    int want = strcmp(cmd, "suppress") == 0 ? 2 : strcmp(cmd, "reload") == 0 || strcmp(cmd, "migrate") == 0 || strcmp(cmd, "stats") == 0 || rotate ? 0 : 1;
    int control = store_control_action_parse(cmd);
    if (strcmp(cmd, "import") && strcmp(cmd, "enqueue") && strcmp(cmd, "suppress") && strcmp(cmd, "campaign") &&
        strcmp(cmd, "reload") && strcmp(cmd, "migrate") && strcmp(cmd, "stats") && !rotate && !retire && control < 0 && !own_args) {
        fprintf(stderr, "heraldctl: unknown command \"%s\"\n", cmd);
        usage(stderr);
        return 2;
    }
    if (!own_args && nargs != want) {
        fprintf(stderr, "heraldctl: %s takes %d argument%s\n", cmd, want, want != 1 ? "s" : "");
        return 2;
    }
    struct config cfg;
    struct strbuf errors;
    strbuf_init(&errors);
    int n = config_load(config_path, overrides, noverrides, &cfg, &errors);
    if (n != 0) {
        fputs(errors.buf ? errors.buf : "", stderr);
        strbuf_free(&errors);
        config_free(&cfg);
        return 2;
    }
    strbuf_free(&errors);
    store_keys_cluster(cfg.redis_cluster && cfg.redis_cluster[0]); /* before any key is built */
    redisContext *c = connect_redis(&cfg);
    if (!c) {
        config_free(&cfg);
        return 2;
    }
    int rc = 0;
    if (strcmp(cmd, "import") == 0 || (rotate && !rotate_st)) rc = check_keys(&cfg, c, cmd);
    if (rc == 0 && (strcmp(cmd, "import") == 0 || (rotate && !rotate_st)) && cfg.keys && cfg.keys->n) {
        char err[512];
        int lrc = keylease_sync_take(&ctl_lease, c, cfg.prefix, cmd, cfg.keys->v[0].id, err, sizeof(err));
        if (lrc < 0) {
            fprintf(stderr, "heraldctl: %s: %s%s\n", cmd, lrc == -HERALD_EINVAL ? "[privacy] key_file: " : "", err);
            rc = 2;
        }
    }
    if (rc == 0) {
        if (strcmp(cmd, "import") == 0) rc = cmd_import(&cfg, c, args[0]);
        else if (strcmp(cmd, "enqueue") == 0) rc = cmd_enqueue(&cfg, c, args[0]);
        else if (strcmp(cmd, "suppress") == 0) rc = cmd_suppress(&cfg, c, args[0], args[1]);
        else if (strcmp(cmd, "explain") == 0) rc = explain_run(&cfg, c, ctl_cluster, nargs, args);
        else if (strcmp(cmd, "simulate") == 0) rc = explain_simulate(&cfg, c, ctl_cluster, nargs, args);
        else if (strcmp(cmd, "reload") == 0) rc = cmd_reload(&cfg, c);
        else if (strcmp(cmd, "migrate") == 0) rc = cmd_migrate(&cfg, c);
        else if (strcmp(cmd, "stats") == 0) rc = cmd_stats(&cfg, c);
        else if (rotate) rc = rotate_st ? rotate_status(&cfg, c) : rotate_run(&cfg, c, ctl_cluster, &ctl_lease);
        else if (retire) rc = cmd_retire_key(&cfg, c, args[0], retire_dry);
        else if (control >= 0) rc = cmd_control(&cfg, c, (enum store_control_action)control, args[0]);
        else if (watch) rc = cmd_campaign_watch(&cfg, c, args[0]);
        else rc = cmd_campaign(&cfg, c, args[0]);
    }
    keylease_sync_give_back(&ctl_lease);
    redisFree(c);
    rcluster_sync_free(ctl_cluster);
    config_free(&cfg);
    return rc;
}
