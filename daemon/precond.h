/*
 * precond.h - conditional requests on a person (RFC 9110 section 13):
 * the ETag herald gives a person's data and the If-Match header a writer
 * sends back.
 *
 * Pure. The ETag is strong and derived from the person's `rev` counter
 * (store.h), which every change of the person's data bumps: `"<rev>"`, the
 * decimal number in double quotes. A person never written since the
 * counter existed has rev 0. The comparison of If-Match is the strong one:
 * a weak tag (W/"...") never matches, nor does a tag not of herald's form.
 * The check itself runs inside the Lua script that writes
 * (lua/people_write.lua, people_erase.lua), atomic with the write; this
 * module parses the header and encodes it for the script.
 */
#ifndef HERALD_PRECOND_H
#define HERALD_PRECOND_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "herald.h"

/* More entity-tags than this in one If-Match is refused (400). */
#define PRECOND_MAX_TAGS 16
/* Room for the ETag text with its quotes and NUL. */
#define PRECOND_ETAG_MAX 24

struct precond_if_match {
    bool present;  /* the header was sent; false: the write is unconditional */
    bool any;      /* "*": any current data (the person must exist) */
    size_t nrevs;  /* the revs of the strong tags of herald's form */
    int64_t revs[PRECOND_MAX_TAGS];
};

/* Parses an If-Match header value (NULL: no header: m->present false).
 * Returns 0, or -HERALD_EINVAL with err like "If-Match: ..." (for a 400)
 * when the value is not "*" nor a comma-separated list of entity-tags. */
int precond_if_match_parse(const char *value, struct precond_if_match *m, char *err, size_t errlen);

/* Would the write go ahead? exists: the person has a profile now; rev:
 * its counter now. No header: always; any other condition needs exists. */
bool precond_if_match_ok(const struct precond_if_match *m, bool exists, int64_t rev);

/* The ETag of rev, quoted, into buf (at least PRECOND_ETAG_MAX bytes). */
void precond_etag(char *buf, size_t n, int64_t rev);

/* The condition as the write scripts take it (one ARGV): "" none, "*" any,
 * else " <rev> <rev> ... " (a space on each side of every rev, so the
 * script finds " <current> " by plain search; " " matches nothing). The
 * scripts decide as precond_if_match_ok does (tests/e2e/test_recipient_writes.py
 * drives both through the API). sb is reset first. */
void precond_if_match_arg(struct strbuf *sb, const struct precond_if_match *m);

#endif
