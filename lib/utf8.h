/*
 * utf8 - strict UTF-8 (RFC 3629): one decoder and one encoder for every
 * module that checks, converts or folds text (addresses, JSON, IMAP names
 * and searches, MIME words, SQL parameters).
 *
 * Strict means the one shortest spelling of U+0000..U+10FFFF, surrogates
 * excluded: an overlong or truncated sequence, a stray continuation byte,
 * 0xF5..0xFF, or a surrogate is invalid, so that two spellings of "/" or
 * "." can never compare differently from what they decode to.
 */
#ifndef POSTERN_UTF8_H
#define POSTERN_UTF8_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "strbuf.h"

/* utf8_char_len - bytes of the valid character at s[0..avail) (*cp, if not NULL, its value); 0 if invalid */
size_t utf8_char_len(const unsigned char *s, size_t avail, uint32_t *cp);
/* utf8_valid - s[0..len) is valid UTF-8 (NUL bytes included: they are U+0000) */
bool utf8_valid(const char *s, size_t len);
/* utf8_put - append code point cp (at most U+10FFFF) as UTF-8 */
void utf8_put(struct strbuf *out, uint32_t cp);

#endif
