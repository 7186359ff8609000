/*
 * mergepatch.h - JSON Merge Patch (RFC 7396), as PATCH /v1/recipients/{id}
 * applies it to a stored profile.
 *
 * Pure. A patch object changes only the members it names: null removes
 * one, an object is merged into the member (recursively), anything else
 * replaces it. A patch that is not an object replaces the whole target.
 * Validation of the result is the caller's (profile.c, as for PUT).
 */
#ifndef HERALD_MERGEPATCH_H
#define HERALD_MERGEPATCH_H

#include <jansson.h>

/* MergePatch(target, patch) of RFC 7396 section 2: a new reference the
 * caller owns; target and patch are not changed (target may be NULL). */
json_t *mergepatch_apply(const json_t *target, const json_t *patch);

#endif
