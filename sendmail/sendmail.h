/*
 * sendmail - the Sendmail-compatible local injector: internal interface.
 *
 *   sendmail.c          main program: options as Sendmail/Postfix accept them,
 *                       the instance (-C DIR, $POSTERN_CONFIG, /etc/postern),
 *                       the message from stdin, -bp/mailq via postctl
 *   sendmail_headers.c  -t: recipients from To/Cc/Bcc, Bcc lines removed
 *   sendmail_drop.c     the maildrop/ file (lib/maildrop.h) and the nudge to qmgr
 *   sendmail_smtp.c     -bs: a minimal SMTP dialogue on stdin/stdout, each
 *                       message into the same maildrop writer
 *
 * Exit codes are those of sendmail(8) (sysexits.h): EX_USAGE for bad options
 * or no recipients, EX_NOINPUT when the instance's configuration cannot be
 * read, EX_DATAERR for a message over message_size_limit or a bad address,
 * EX_TEMPFAIL when the maildrop file cannot be written, EX_SOFTWARE for
 * internal errors.
 */
#ifndef POSTERN_SENDMAIL_H
#define POSTERN_SENDMAIL_H

#include <stdbool.h>
#include <stddef.h>
#include "strbuf.h"
#include "strlist.h"

struct config;

struct sendmail {
    struct config *cfg;
    const char *config_dir;
    const char *queue_dir;              /* queue_directory */
    long long size_limit;               /* message_size_limit (0: none) */
    const char *hostname;               /* myhostname, for -bs replies */
};

/* sendmail_headers.c */
/* headers_extract_rcpts - append To/Cc/Bcc addresses of msg (LF lines) to rcpts; remove Bcc lines */
void headers_extract_rcpts(struct strbuf *msg, struct strlist *rcpts);
/* address_strip - the address inside one list element ("Name <a@b>" -> "a@b"); "" if none */
void address_strip(const char *item, size_t len, struct strbuf *out);

/* sendmail_drop.c */
/* drop_message - write one maildrop file and nudge qmgr; an EX_* code, 0 on success (name set) */
int  drop_message(const struct sendmail *sm, const char *sender, const char *fullname,
                  const struct strlist *rcpts, const struct strbuf *msg, char *name_out, size_t name_size);

/* sendmail_smtp.c */
int  smtp_session(const struct sendmail *sm);   /* -bs; an EX_* code */

#endif
