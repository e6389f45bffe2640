/*
 * access - the pieces of Postfix's access(5) semantics that do not depend on
 * smtpd's state: what a table result or policy action means, which keys a
 * client address, a domain or an e-mail address is looked up under, how a
 * restriction's reply is worded, and the host name syntax checks behind
 * reject_invalid_helo_hostname and reject_non_fqdn_*.
 *
 * access_parse() reads a table value or a policy service's action= text:
 *   OK, all-numerical         accept (ends the restriction list: permit)
 *   REJECT [text]             554 5.7.1 (access_map_reject_code)
 *   DEFER [text]              450 4.7.1 (access_map_defer_code)
 *   DEFER_IF_PERMIT [text]    450 4.7.1 unless a later restriction rejects
 *   DEFER_IF_REJECT [text]    turn a later 5xx into 450 4.7.1
 *   4NN [d.d.d] text, 5NN [d.d.d] text   that reply
 *   DUNNO                     no decision, next restriction
 *   WARN text, INFO text      log, no decision
 *   PREPEND, HOLD, DISCARD, FILTER, REDIRECT, BCC
 *                             not supported here: reported as such (the caller
 *                             logs it and goes on, as with DUNNO)
 *   anything else             a list of restriction names (restriction classes)
 * The text of an action is kept as a pointer into the value.
 *
 * Keys, as Postfix's smtpd_check.c looks them up (first match wins):
 *   client address  "192.0.2.1", "192.0.2", "192.0", "192"; IPv6 likewise, cut
 *                   at ':' from the right ("2001:db8::1", "2001:db8:", ...)
 *   domain          "sub.example.com", "example.com", "com" (parent domains
 *                   match, Postfix's default parent_domain_matches_subdomains)
 *   address         "user@sub.example.com", then the domain keys, then "user@";
 *                   the null sender is looked up as "<>"
 *
 * access_format_reply() words a rejection as Postfix does:
 *   "CODE D.S.N <NAME>: CLASS rejected: TEXT"
 * and makes the enhanced status code's class agree with the reply code
 * (a "5.7.1" under a 450 becomes "4.7.1").
 */
#ifndef POSTERN_ACCESS_H
#define POSTERN_ACCESS_H

#include <stdbool.h>
#include <stddef.h>

#include "strbuf.h"
#include "strlist.h"

enum access_kind {
    ACCESS_DUNNO,                       /* no decision */
    ACCESS_OK,                          /* permit */
    ACCESS_REJECT,                      /* code and dsn filled in: 554 5.7.1 */
    ACCESS_DEFER,                       /* 450 4.7.1 */
    ACCESS_DEFER_IF_PERMIT,
    ACCESS_DEFER_IF_REJECT,
    ACCESS_CODE,                        /* an explicit 4NN/5NN reply */
    ACCESS_WARN,                        /* WARN/INFO: log the text, no decision */
    ACCESS_UNSUPPORTED,                 /* an action this server does not carry out */
    ACCESS_RESTRICTIONS,                /* text holds restriction names */
};

struct access_action {
    enum access_kind kind;
    int     code;                       /* REJECT, DEFER*, CODE: the reply code */
    char    dsn[16];                    /* "5.7.1"; the default when none was given */
    const char *text;                   /* the rest of the value ("" if none); never NULL */
    size_t  text_len;
};

/* access_parse - what a table value or policy action means; never fails (see above) */
void access_parse(const char *value, struct access_action *out);

/* access_client_keys - lookup keys for a client address (text form) */
void access_client_keys(const char *addr, struct strlist *keys);
/* access_domain_keys - lookup keys for a domain: itself, then its parents */
void access_domain_keys(const char *domain, struct strlist *keys);
/* access_address_keys - "user@domain", domain keys, "user@"; "<>" for the null address */
void access_address_keys(const char *addr, const char *local, const char *domain,
                         bool null_address, struct strlist *keys);

/* access_format_reply - "CODE D.S.N <NAME>: CLASS rejected: TEXT" (DSN class fixed up) */
void access_format_reply(struct strbuf *out, int code, const char *dsn, const char *name,
                         const char *reply_class, const char *text, size_t text_len);

/* access_valid_hostname - RFC 1035 labels: letters, digits, '-', not all-numeric */
bool access_valid_hostname(const char *name);
/* access_valid_hostaddr - an IPv4 or IPv6 address, with or without [] ("[IPv6:...]" too) */
bool access_valid_hostaddr(const char *name);
/* access_is_fqdn - a valid host name with at least one dot (a trailing dot is ignored) */
bool access_is_fqdn(const char *name);

#endif
