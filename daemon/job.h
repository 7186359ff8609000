/*
 * job.h - campaign jobs: parse and validate the JSON of a stream entry.
 *
 * Pure: no I/O, no clock, no logging. A job that fails here is refused with
 * one clear sentence in err ("field: problem"); the caller dead-letters it
 * (daemon) or prints it (heraldctl enqueue), so both say the same thing.
 * The struct owns every string it points to; job_free() releases them.
 */
#ifndef HERALD_JOB_H
#define HERALD_JOB_H

#include "herald.h"
#include "template.h"

#define HERALD_JOB_MAX_BYTES (256 * 1024)  /* whole JSON of one job */
#define HERALD_JOB_MAX_RECIPIENTS 10000    /* inline ids; use recipients_key beyond */
#define HERALD_TOPIC_MAX 64

struct job_content {
    bool present;
    char *subject;              /* email only */
    char *text;
    char *html;                 /* email only, optional */
    struct template *t_subject; /* compiled at parse time (NULL if absent) */
    struct template *t_text;
    struct template *t_html;
};

/* How much of each provider a job gets beside the others running on the
 * same daemon: a weighted round robin of high 4 : normal 2 : low 1. */
#define JOB_PRIORITIES(X) X(LOW, "low", 1) X(NORMAL, "normal", 2) X(HIGH, "high", 4)
enum job_priority {
#define JOB_PRIO_ENUM(e, name, w) JOB_PRIORITY_##e,
    JOB_PRIORITIES(JOB_PRIO_ENUM)
#undef JOB_PRIO_ENUM
    JOB_PRIORITY_COUNT
};

/* One language's content of a channel, when the job gives content per
 * language: {"en": {...}, "ko": {...}, "default": "en"}. */
struct job_content_locale {
    char *locale;
    struct job_content c;
};

#define HERALD_JOB_MAX_LOCALES 32

struct job {
    char *id;
    char *topic;
    int channels[HERALD_CH_COUNT]; /* the campaign's channels, in its order */
    int nchannels;
    struct job_content content[HERALD_CH_COUNT]; /* indexed by enum herald_channel; per language: the default's */
    /* Content per language: content[ch] is the default language's
     * (default_locale[ch]), localised[ch] the others. NULL and 0 when the
     * channel's content is one object for everyone. */
    char *default_locale[HERALD_CH_COUNT];
    struct job_content_locale *localised[HERALD_CH_COUNT];
    size_t nlocalised[HERALD_CH_COUNT];
    /* display_name: how the pages name the campaign, per language
     * ({"en": "Spring sale", "ko": "봄 세일", "default": "en"}); 0 when not given. */
    struct job_name { char *locale; char *text; } *names;
    size_t nnames;
    int names_default;   /* index into names, or -1: the campaign id where no language matches */
    char **recipients;   /* inline ids, or NULL */
    size_t nrecipients;
    char *recipients_key; /* Redis key of a SET/ZSET/LIST of ids, or NULL */
    int64_t not_before;   /* unix seconds; 0 = none */
    int64_t expires_at;   /* unix seconds; 0 = none */
    enum job_priority priority; /* "priority"; normal when absent */
    bool rerun;           /* "rerun": true: may start a new run of a finished campaign id */
};

/* Parses and validates. On success fills *job (caller calls job_free) and
 * returns 0; on failure writes the reason into err, leaves *job zeroed with
 * nothing allocated and returns -HERALD_EINVAL or -HERALD_ETOOBIG.
 * The topic is stored lower-cased (topics compare without case). */
int job_parse(const char *json, size_t len, struct job *job, char *err, size_t errlen);
/* Releases everything the job owns and zeroes it (safe on a zeroed job). */
void job_free(struct job *job);

/* "low", "normal", "high", and its share weight (1, 2, 4). */
const char *job_priority_name(enum job_priority p);
unsigned job_priority_weight(enum job_priority p);
/* The content of channel ch for a person whose profile locale is locale
 * (may be NULL): the same tag (any case), else its primary language
 * ("ko" for "ko-KR"), else the job's default. *chosen is the language
 * picked, or NULL when the channel's content is not per language. */
const struct job_content *job_content_for(const struct job *job, int ch, const char *locale, const char **chosen);

/* The campaign's display name for a person whose locale is locale (may be
 * NULL): the same tag, else its primary language, else the default's;
 * NULL when the job gives none (the pages show the id). */
const char *job_display_name(const struct job *job, const char *locale);

/* What a person's history needs of a campaign beside its entries (kept
 * once per campaign, in its hash's field `info`, so that an entry stays
 * within a listpack's 64 bytes: docs/architecture.md "Keys"):
 * {"topic": ..., "display_name": {<language>: <name>, ..., "default": <language>}}.
 * A new string for free(). */
char *job_info_json(const struct job *job);
/* Fills in a history entry read without them (store_history_json) its
 * "topic" and its "campaign_name" in the person's language (locale, may be
 * NULL) from the campaign's info; an entry that has them, or info that is
 * not such an object, is left as it is. */
void job_info_apply(json_t *entry, const json_t *info, const char *locale);

/* True when the campaign's job lists channel ch. */
bool job_has_channel(const struct job *job, int ch);

/* Topic names (jobs, profile "topics", preference API): 1..HERALD_TOPIC_MAX
 * of [A-Za-z0-9_.-]; stored lower-cased. normalize returns a copy (free it). */
bool job_topic_valid(const char *topic);
char *job_topic_normalize(const char *topic);

#endif
