/*
 * mergepatch.c - RFC 7396 JSON Merge Patch (mergepatch.h).
 *
 * Owns the algorithm of RFC 7396 section 2, nothing else: no knowledge of
 * profiles. Never changes its inputs: the result shares no node with them
 * (deep copies), so the caller may free either at once. The recursion
 * depth is the patch's nesting, bounded by jansson's parser (2048).
 */
#include "mergepatch.h"

json_t *mergepatch_apply(const json_t *target, const json_t *patch)
{
    if (!json_is_object(patch)) return json_deep_copy(patch);
    json_t *out = json_is_object(target) ? json_deep_copy(target) : json_object();
    const char *key;
    json_t *v;
    json_object_foreach((json_t *)patch, key, v) {
        if (json_is_null(v)) {
            json_object_del(out, key);
        } else {
            json_t *merged = mergepatch_apply(json_object_get(out, key), v);
            json_object_set_new(out, key, merged);
        }
    }
    return out;
}
