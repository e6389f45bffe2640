/*
 * address - RFC 5321 envelope addresses: the path of MAIL FROM and RCPT TO.
 *
 * address_parse_path() reads one path from the argument of MAIL FROM: or
 * RCPT TO: and stops after it, so the caller can parse the ESMTP parameters
 * that follow. Accepted, as Postfix accepts them:
 *   <local@domain>          the normal form
 *   <>                      the null sender (only with ADDRESS_ALLOW_NULL)
 *   <@a,@b:local@domain>    a source route: checked, then dropped (flagged)
 *   local@domain            no angle brackets (flagged)
 *   "john doe"@example.com  quoted local part, with backslash escapes
 *   local@[192.0.2.1], local@[IPv6:2001:db8::1]   address literals
 *   local@example.com.      trailing dot: kept as written, flagged
 *   local                   no domain (flagged: the caller decides)
 *   8-bit local parts and domains must be valid UTF-8 and are flagged.
 * Rejected: control characters, spaces outside quotes, unbalanced quotes or
 * brackets, an empty local part or domain, bad domain or literal syntax,
 * local part over 64 octets, domain over 255, path over 256.
 *
 * The result holds the canonical address (local@domain, the local part
 * quoted only when it is not a valid dot-atom), the local part unquoted, and
 * the domain as written.
 */
#ifndef POSTERN_ADDRESS_H
#define POSTERN_ADDRESS_H

#include <stddef.h>
#include "strbuf.h"

#define ADDRESS_LOCAL_MAX   64          /* RFC 5321 4.5.3.1.1 */
#define ADDRESS_DOMAIN_MAX  255         /* RFC 5321 4.5.3.1.2 */
#define ADDRESS_PATH_MAX    256         /* RFC 5321 4.5.3.1.3, brackets included */

/* Options for address_parse_path(). */
#define ADDRESS_ALLOW_NULL  (1u << 0)   /* "<>" is valid (MAIL FROM) */

/* Flags in struct address. */
#define ADDRESS_NULL        (1u << 0)   /* "<>": addr, local and domain are empty */
#define ADDRESS_ROUTE       (1u << 1)   /* a source route was dropped */
#define ADDRESS_NO_BRACKETS (1u << 2)   /* written without < > */
#define ADDRESS_QUOTED      (1u << 3)   /* the local part needs quotes in addr */
#define ADDRESS_LITERAL     (1u << 4)   /* the domain is [address literal] */
#define ADDRESS_TRAILING_DOT (1u << 5)  /* the domain ends in "." */
#define ADDRESS_8BIT        (1u << 6)   /* UTF-8 in local part or domain (SMTPUTF8) */
#define ADDRESS_NO_DOMAIN   (1u << 7)   /* no "@domain" at all */

struct address {
    struct strbuf addr;                 /* canonical: local@domain, quoted if needed */
    struct strbuf local;                /* local part without quotes and escapes */
    struct strbuf domain;               /* as written, literal brackets included */
    unsigned flags;
};

/* address_init - empty address, ready for address_parse_path() */
void address_init(struct address *a);
/* address_free - release the strings */
void address_free(struct address *a);

/*
 * address_parse_path - parse the path at text[0..len). On success returns the
 * number of bytes used; the next byte, if any, is a space (the parameters
 * follow). On failure returns -1 with *reason set to a short static text.
 */
long address_parse_path(const char *text, size_t len, unsigned options,
                        struct address *a, const char **reason);

/* address_quote_local - append local as it must be written in an address */
void address_quote_local(struct strbuf *out, const char *local, size_t len);

#endif
