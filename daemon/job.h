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

struct job {
    char *id;
    char *topic;
    int channels[HERALD_CH_COUNT]; /* the campaign's channels, in its order */
    int nchannels;
    struct job_content content[HERALD_CH_COUNT]; /* indexed by enum herald_channel */
    char **recipients;   /* inline ids, or NULL */
    size_t nrecipients;
    char *recipients_key; /* Redis key of a SET/ZSET/LIST of ids, or NULL */
    int64_t not_before;   /* unix seconds; 0 = none */
    int64_t expires_at;   /* unix seconds; 0 = none */
    enum job_priority priority; /* "priority"; normal when absent */
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

/* True when the campaign's job lists channel ch. */
bool job_has_channel(const struct job *job, int ch);

/* Topic names (jobs, profile "topics", preference API): 1..HERALD_TOPIC_MAX
 * of [A-Za-z0-9_.-]; stored lower-cased. normalize returns a copy (free it). */
bool job_topic_valid(const char *topic);
char *job_topic_normalize(const char *topic);

#endif
