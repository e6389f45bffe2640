/*
 * dns - a small asynchronous DNS client for a libevent loop: MX, A and AAAA
 * questions over UDP, for checks such as reject_unknown_sender_domain.
 *
 * dns_resolver_create() takes the name servers from a list ("127.0.0.1,
 * [::1]:5353", Postern's dns_resolver_address) or, when the list is empty,
 * from /etc/resolv.conf ("nameserver" lines, "options timeout:N attempts:N");
 * create it before chroot, as the file is out of reach afterwards. Each
 * question goes out on its own connected UDP socket (a fresh random source
 * port, a random ID), so only answers from the server asked, with our ID and
 * our question in them, are taken; anything else is ignored, as is a
 * malformed packet. A server that does not answer within the per-try timeout
 * is asked again, then the next one; when all tries are used up the answer is
 * DNS_TEMPFAIL, as it is for SERVFAIL and REFUSED.
 *
 * dns_mailhost() is Postfix's "does this mail domain exist" question: MX,
 * then (without MX) A, then AAAA. DNS_OK when one of them has records,
 * DNS_NULLMX for an RFC 7505 null MX (the domain says it takes no mail),
 * DNS_NOTFOUND when the name does not exist or has none of them, and
 * DNS_TEMPFAIL when a server failed and nothing was found.
 *
 * Callbacks always come from the event loop, never from inside dns_lookup()
 * or dns_mailhost(), so a caller may start a query while holding state.
 * dns_cancel() forgets a query: its callback is never called. The handle is
 * invalid once the callback has been called.
 */
#ifndef POSTERN_DNS_H
#define POSTERN_DNS_H

#include <stddef.h>

#include "strbuf.h"

struct event_base;

#define DNS_TYPE_A      1
#define DNS_TYPE_MX     15
#define DNS_TYPE_AAAA   28

enum dns_status {
    DNS_OK,                             /* records found */
    DNS_NOTFOUND,                       /* NXDOMAIN, or no records of that type */
    DNS_NULLMX,                         /* dns_mailhost: "MX 0 ." */
    DNS_TEMPFAIL,                       /* SERVFAIL, REFUSED, timeout, truncated and empty */
};

struct dns_resolver;
struct dns_query;

/* why: a short reason for logs ("SERVFAIL from 127.0.0.1", "timeout", ...) */
typedef void (*dns_callback)(void *ctx, enum dns_status status, const char *why);

/* dns_resolver_create - servers: list or "" for /etc/resolv.conf; NULL with err */
struct dns_resolver *dns_resolver_create(struct event_base *base, const char *servers,
                                         struct strbuf *err);
/* dns_resolver_set_timeout - per-try timeout and tries per server */
void dns_resolver_set_timeout(struct dns_resolver *r, long try_ms, int attempts);
/* dns_resolver_free - pending queries are cancelled (no callbacks) */
void dns_resolver_free(struct dns_resolver *r);
/* dns_lookup - one question; DNS_OK when the answer holds records of the type */
struct dns_query *dns_lookup(struct dns_resolver *r, const char *name, int type,
                             dns_callback fn, void *ctx);
/* dns_mailhost - MX, then A, then AAAA (see above) */
struct dns_query *dns_mailhost(struct dns_resolver *r, const char *domain,
                               dns_callback fn, void *ctx);
/* One record of an answer, for dns_lookup_rr (the smtp client's MX and address lookups). */
#define DNS_MAX_RR      16              /* records kept per answer; more are ignored */
struct dns_rr {
    int     type;                       /* DNS_TYPE_MX, _A, _AAAA */
    unsigned pref;                      /* MX preference */
    char    name[256];                  /* MX exchange, without the final dot */
    unsigned char addr[16];             /* A: 4 bytes, AAAA: 16 bytes */
};
typedef void (*dns_rr_callback)(void *ctx, enum dns_status status, const struct dns_rr *rr, size_t n,
                                const char *why);
/* dns_lookup_rr - one question; the callback gets up to DNS_MAX_RR records of the type */
struct dns_query *dns_lookup_rr(struct dns_resolver *r, const char *name, int type,
                                dns_rr_callback fn, void *ctx);
/* dns_cancel - no callback will come for q */
void dns_cancel(struct dns_query *q);
/* dns_status_name - "ok", "not found", ... for logs */
const char *dns_status_name(enum dns_status status);

#endif
