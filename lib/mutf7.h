/*
 * mutf7 - IMAP's modified UTF-7 for mailbox names (RFC 3501 section 5.1.3).
 *
 * Mailbox names travel and are stored on disk (Maildir++ ".Name" folders, as
 * Dovecot does) in modified UTF-7: printable ASCII stands for itself except
 * "&", written "&-"; other characters are UTF-16 in modified base64 (",", not
 * "/") between "&" and "-". A name is valid only in the canonical form (no
 * empty "&-" shift for nothing, no shift for plain ASCII, base64 padding bits
 * zero, surrogates paired), so two spellings never name one folder.
 */
#ifndef POSTERN_MUTF7_H
#define POSTERN_MUTF7_H

#include <stdbool.h>
#include <stddef.h>
#include "strbuf.h"

/* mutf7_valid - s is canonical modified UTF-7 without control characters */
bool mutf7_valid(const char *s);
/* mutf7_to_utf8 - append the UTF-8 of s; -1 (out unchanged) when not valid */
int  mutf7_to_utf8(const char *s, struct strbuf *out);
/* mutf7_from_utf8 - append the modified UTF-7 of UTF-8 s; -1 for invalid UTF-8 or control characters */
int  mutf7_from_utf8(const char *s, struct strbuf *out);

#endif
