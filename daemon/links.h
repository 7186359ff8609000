/*
 * links.h - the signed links every message carries.
 *
 * A token names the person, the campaign, the topic and the channel and
 * expires; it is signed with HMAC-SHA256 under [admin] link_secret, so a
 * person can act on their own preferences without an account, and nobody
 * can forge or alter a token. URL shape (under [admin] public_url):
 *   <public_url>/u/<token>   one-click unsubscribe (POST, RFC 8058; GET shows a page)
 *   <public_url>/p/<token>   preference page
 * token = base64url(payload) "." base64url(HMAC-SHA256(secret, payload)),
 * payload = "1|<kind>|<recipient>|<campaign>|<topic>|<channel>|<expires unix>"
 * where kind is "u" or "p" (a preference token cannot be used as the other).
 * Links live [admin] link_ttl (default 60d). The pages that honour them are
 * page.c; the forms on those pages carry links_form_mac (CSRF).
 */
#ifndef HERALD_LINKS_H
#define HERALD_LINKS_H

#include "herald.h"

struct link_claims {
    char kind; /* 'u' or 'p' */
    char recipient[HERALD_ID_MAX + 1];
    char campaign[HERALD_ID_MAX + 1];
    char topic[65];
    char channel[16];
    int64_t expires;
};

/* Appends the token for claims to out. */
void links_sign(struct strbuf *out, const char *secret, const struct link_claims *c);
/* Verifies signature and expiry against now. 0, or -HERALD_EINVAL with err. */
int links_verify(const char *token, const char *secret, int64_t now, struct link_claims *c,
                 char *err, size_t errlen);
/* Both URLs of one message into out (reset first), in one allocation:
 * "<unsubscribe URL>\0<preferences URL>". Returns where the second starts;
 * 0, out empty, when public_url is empty. */
size_t links_build(struct strbuf *out, const char *public_url,
                 const char *secret, int64_t ttl_s, int64_t now, const char *recipient,
                 const char *campaign, const char *topic, const char *channel);

/* The hidden field that ties a form POST to a form herald rendered for
 * this token and this action ("preferences", "unsubscribe-all"): appends
 * base64url(HMAC-SHA256(secret, "form|<action>|<token>")) to out. The
 * "form|" prefix keeps these MACs apart from token signatures ("1|..."). */
void links_form_mac(struct strbuf *out, const char *secret, const char *token, const char *action);
/* Whether mac (may be NULL) is links_form_mac(secret, token, action);
 * compared in constant time. */
bool links_form_mac_ok(const char *mac, const char *secret, const char *token, const char *action);

#endif
