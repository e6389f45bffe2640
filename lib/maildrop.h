/*
 * maildrop - the file a local submission (sendmail) leaves in maildrop/.
 *
 * The queue's maildrop/ directory is writable by every local user (mode
 * 1733, owned by mail_owner: anyone may create a file, nobody but the owner
 * may list the directory, and the sticky bit keeps users from removing each
 * other's files). sendmail writes "tmp.NAME", fsyncs it and renames it to
 * NAME (MAILDROP_NAME_LEN random upper-case hex digits, unguessable), so a
 * file with a valid name is complete. qmgr's pickup step (qmgr_pickup.c)
 * reads it as hostile input, makes a queue file of it and removes it.
 *
 * Format (LF line ends):
 *   "POSTERN-MAILDROP 1\n"
 *   envelope lines "name=value\n": sender= (once, empty for the null
 *   sender), fullname= (optional, once), rcpt= (one per recipient)
 *   "\n"                          the end of the envelope
 *   the message, LF line ends, no NUL byte
 *
 * Limits: MAILDROP_VALUE_MAX bytes per value, MAILDROP_RCPT_MAX recipients;
 * values are printable ASCII (fullname: no control characters).
 */
#ifndef POSTERN_MAILDROP_H
#define POSTERN_MAILDROP_H

#include <stdbool.h>
#include <stddef.h>
#include "strbuf.h"

#define MAILDROP_MAGIC      "POSTERN-MAILDROP 1\n"
#define MAILDROP_NAME_LEN   20
#define MAILDROP_TMP_PREFIX "tmp."
#define MAILDROP_VALUE_MAX  998
#define MAILDROP_RCPT_MAX   10000

/* A parsed maildrop file; the strings point into the caller's buffer copies. */
struct maildrop {
    char   *sender;                     /* "" for the null sender */
    char   *fullname;                   /* NULL if none */
    char  **rcpts;
    size_t  nrcpt;
    const char *body;                   /* into the parsed data */
    size_t  body_len;
    bool    body_8bit;                  /* a byte >= 0x80 in the message */
};

/* maildrop_name_valid - NAME is a complete maildrop file's name */
bool maildrop_name_valid(const char *name);
/* maildrop_name_new - a fresh random name */
void maildrop_name_new(char name[MAILDROP_NAME_LEN + 1]);
/* maildrop_value_valid - a sender/recipient (fullname: is_text) that the format can carry */
bool maildrop_value_valid(const char *value, bool is_text);
/* maildrop_format_envelope - magic and envelope lines (values must be valid) */
void maildrop_format_envelope(struct strbuf *out, const char *sender, const char *fullname,
                              char *const *rcpts, size_t nrcpt);
/* maildrop_parse - validate data[0..len); -1 with err on anything malformed */
int  maildrop_parse(const char *data, size_t len, struct maildrop *md, struct strbuf *err);
void maildrop_free(struct maildrop *md);

#endif
