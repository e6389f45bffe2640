/*
 * dsn - delivery status notifications (RFC 3464) as mail: composition only.
 *
 * A notification is a multipart/report; report-type=delivery-status message
 * with three parts: a human-readable text in the style of Postfix's bounce
 * messages, the message/delivery-status part (per-message fields, then one
 * block per recipient), and the original message (message/rfc822) or its
 * headers (text/rfc822-headers). The caller streams the third part's body
 * (it lives in a queue file) between dsn_compose_head() and dsn_compose_tail().
 *
 * Every value that ends up in a header or a status field (addresses, ENVID,
 * ORCPT, reason texts from remote servers) is treated as hostile: control
 * characters become '?', and each value is cut to DSN_VALUE_MAX bytes so no
 * line of the report exceeds RFC 5322's 998.
 *
 * Interface:
 *   dsn_compose_head()   headers, part 1, part 2, part 3's MIME header
 *   dsn_compose_tail()   the closing boundary
 *   dsn_notify_wants()   does a recipient's NOTIFY ask for this kind
 *   dsn_split_reason()   "X.Y.Z text" (a queue file's reason) into its halves
 *   dsn_header_length()  the length of a message's header section
 *   dsn_format_date()    an RFC 5322 date
 */
#ifndef POSTERN_DSN_H
#define POSTERN_DSN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "strbuf.h"

#define DSN_VALUE_MAX   900             /* bytes of one value in a field */
#define DSN_STATUS_MAX  16              /* "X.YYY.ZZZ" and a NUL */

enum dsn_kind {
    DSN_FAILURE,                        /* Action: failed (a bounce) */
    DSN_DELAY,                          /* Action: delayed (a warning) */
    DSN_SUCCESS,                        /* Action: delivered or relayed (NOTIFY=SUCCESS) */
};

/* One recipient's block in the report. */
struct dsn_rcpt {
    const char *address;                /* Final-Recipient */
    const char *orcpt;                  /* "type;address" (DSN ORCPT as stored) or NULL */
    const char *action;                 /* "failed", "delayed", "delivered", "relayed" */
    const char *status;                 /* "5.1.1" */
    const char *text;                   /* why, without the status code; may be "" */
    const char *relay;                  /* "host[addr]:port", "virtual", "none" or NULL */
    int64_t last_attempt;               /* 0: unknown */
};

/* Everything a notification says. */
struct dsn_report {
    enum dsn_kind kind;
    bool    postmaster_copy;            /* to the postmaster: a copy of a sender's notice (notify_classes
                                         * bounce, delay) or, with the null sender, a double bounce */
    const char *myhostname;
    const char *queue_id;               /* the original message's */
    const char *sender;                 /* the original envelope sender ("" null) */
    const char *to;                     /* the notification's recipient (To:) */
    const char *envid;                  /* DSN ENVID or NULL */
    int64_t arrival;                    /* the original's */
    int64_t now;
    int64_t will_retry_until;           /* DSN_DELAY */
    long long delayed_for;              /* DSN_DELAY: delay_warning_time, seconds */
    long long lifetime;                 /* DSN_DELAY: maximal_queue_lifetime, seconds */
    const struct dsn_rcpt *rcpts;
    size_t  nrcpt;
    bool    full;                       /* the third part is the whole message, else its headers */
    bool    eight_bit;                  /* the original's body is 8BITMIME */
    bool    smtputf8;                   /* the original is SMTPUTF8 (RFC 6531): message/global parts */
    const char *boundary;               /* NULL: made of queue ID, time and host (see dsn.c) */
};

/* dsn_compose_head - everything before the third part's body; true when the result is 8-bit */
bool dsn_compose_head(const struct dsn_report *r, struct strbuf *out);
/* dsn_compose_tail - after the third part's body (which need not end with a newline) */
void dsn_compose_tail(const struct dsn_report *r, struct strbuf *out);
/* dsn_notify_wants - NOTIFY as stored (NULL: absent = FAILURE,DELAY) asks for kind */
bool dsn_notify_wants(const char *notify, enum dsn_kind kind);
/* dsn_split_reason - status code and text of "X.Y.Z text"; status "" when there is none */
const char *dsn_split_reason(const char *reason, char status[DSN_STATUS_MAX]);
/* dsn_header_length - bytes of data[0..len) before the empty line that ends the headers (all if none) */
size_t  dsn_header_length(const char *data, size_t len, bool *complete);
/* dsn_format_date - "Sun, 6 Dec 2026 18:34:11 +0000" (local time, C locale names) */
void    dsn_format_date(int64_t when, char buf[64]);

#endif
