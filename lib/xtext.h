/*
 * xtext - RFC 3461 section 4 "xtext", the encoding of the DSN parameters
 * ENVID and ORCPT in MAIL and RCPT commands.
 *
 *   xtext = *( xchar / hexchar )
 *   xchar = any ASCII from "!" (33) to "~" (126) except "+" and "="
 *   hexchar = "+" two upper-case hex digits
 *
 * xtext_decode() is strict, as the text comes from the network: a bare "+",
 * lower-case or missing hex digits, "=", spaces, controls and 8-bit bytes are
 * refused; the decoded bytes must be printable ASCII or space (a NUL, CR or LF
 * hidden as "+00"/"+0D" must not reach a queue file or a bounce).
 * xtext_encode() is its inverse, for writing DSN parameters back out.
 */
#ifndef POSTERN_XTEXT_H
#define POSTERN_XTEXT_H

#include <stdbool.h>
#include <stddef.h>

#include "strbuf.h"

/* xtext_decode - text[0..len) into out (appended); false on bad syntax or bytes */
bool xtext_decode(const char *text, size_t len, struct strbuf *out);
/* xtext_encode - bytes into xtext, appended to out */
void xtext_encode(const char *text, size_t len, struct strbuf *out);

#endif
