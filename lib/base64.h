/*
 * base64 - RFC 4648 standard alphabet, for SASL exchanges and stored hashes.
 *
 * Decoding is strict by default: length a multiple of 4, "=" only as the
 * final one or two characters, and the unused bits of the last character
 * zero (one value, one spelling). Stored password hashes often omit the
 * padding, so BASE64_PADDING_OPTIONAL accepts that as Dovecot does.
 */
#ifndef POSTERN_BASE64_H
#define POSTERN_BASE64_H

#include <stddef.h>
#include "strbuf.h"

#define BASE64_PADDING_OPTIONAL (1u << 0)

/* base64_digit_value - 0..63 for a digit of the alphabet whose last digit is digit63
 * ('/' here, ',' in IMAP's modified base64), -1 for anything else */
int  base64_digit_value(unsigned char c, unsigned char digit63);
/* base64_encode - append the encoding of data to out */
void base64_encode(struct strbuf *out, const void *data, size_t len);
/* base64_decode - append the decoded bytes to out; -1 (out unchanged) on bad input */
int  base64_decode(const char *in, size_t len, unsigned flags, struct strbuf *out);

#endif
