/*
 * template.h - the `{{field}}` renderer for subjects and bodies.
 *
 * Pure. A template is compiled once per job and rendered once per recipient.
 * `{{name}}` takes the value of attributes[name] (strings as they are,
 * numbers and booleans in their JSON text form); `{{unsubscribe_url}}` and
 * `{{preferences_url}}` come from the links the daemon signs. A field the
 * person does not have renders empty and is counted in *missing: a gap in
 * one profile never stops a campaign. Whitespace inside braces is allowed
 * ({{ first_name }}). Field names: [A-Za-z0-9_.-], 1..64 characters.
 * `{{name|default text}}` renders the default text (trimmed, may be empty,
 * HTML-escaped in HTML like any value) when the person lacks the field or
 * has it as an empty string; such a field is not counted in *missing. The
 * text runs to the closing "}}", so it cannot contain "}}".
 * Compilation fails (a job error) on an unclosed "{{", a bad name, or a
 * default on unsubscribe_url or preferences_url.
 */
#ifndef HERALD_TEMPLATE_H
#define HERALD_TEMPLATE_H

#include <jansson.h>
#include "herald.h"

struct template;

enum template_escape { TEMPLATE_RAW = 0, TEMPLATE_HTML = 1 };

/* Values that do not come from the person's attributes. */
struct template_vars {
    const char *unsubscribe_url;
    const char *preferences_url;
};

/* Compiles src (copied: the template does not keep a pointer to it). On
 * failure *out is NULL, err reads like "unclosed {{ at offset 4" (a byte
 * offset into src) and -HERALD_EINVAL is returned. */
int template_compile(const char *src, struct template **out, char *err, size_t errlen);
void template_free(struct template *t);

/* Appends the rendering to out. attributes may be NULL (every field missing).
 * Returns the number of fields that rendered empty because the person lacks
 * them (a field with a default never does). */
unsigned template_render(const struct template *t, const json_t *attributes,
                         const struct template_vars *vars, enum template_escape esc,
                         struct strbuf *out);

/* The person's value of attribute name, as template_render writes it (a
 * string's characters, a number's or a boolean's JSON text): true with
 * [*s, *s + *len) valid until the rendering ends, false when the person
 * lacks it (or it does not render: null, object, array). */
typedef bool (*template_lookup_fn)(void *ctx, const char *name, const char **s, size_t *len);

/* template_render with the attributes read through lookup(ctx, ...), for
 * attributes held in another form than a jansson object. */
unsigned template_render_with(const struct template *t, template_lookup_fn lookup, void *ctx,
                              const struct template_vars *vars, enum template_escape esc, struct strbuf *out);

/* Length of the template's source: with some room for what the fields
 * add, a good first size for a rendering (one allocation, not several). */
size_t template_source_len(const struct template *t);

/* Number of distinct fields the template uses, and the i-th one, in order
 * of first use (data minimisation: only these attributes need to reach a
 * plugin). unsubscribe_url and preferences_url are listed too when used;
 * they are never read from the attributes. */
size_t template_nfields(const struct template *t);
const char *template_field(const struct template *t, size_t i);

/* HTML-escapes s (& < > " ') onto out. */
void template_escape_html(struct strbuf *out, const char *s, size_t len);

#endif
