/*
 * page.h - the pages behind the links in every message: unsubscribe
 * (/u/{token}, RFC 8058 one-click) and the preference page (/p/{token}).
 *
 * No login and no Authorization header: the signed token (links.h) is the
 * capability, and it names one person, so a page never shows or changes
 * anyone else. A forged, altered, expired or wrong-kind token gets 403 and
 * changes nothing; GET never changes anything (link scanners follow links).
 * The person's data is read and written only through people.h.
 */
#ifndef HERALD_PAGE_H
#define HERALD_PAGE_H

#include "api.h"
#include "http.h"

/* Adds GET and POST /u/{token} and /p/{token}. st must outlive srv; the
 * handlers read st->cfg and st->people at each request. Returns 0 or the
 * first http_route error. */
int page_register(struct http_server *srv, struct api_state *st);

#endif
