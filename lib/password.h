/*
 * password - password hashes in Dovecot's "{SCHEME}hash" notation.
 *
 * Hashing: SHA512-CRYPT (the default for new users), SHA256-CRYPT, via
 * libcrypt with a fresh 16-character salt from getrandom(). Verification:
 * the crypt schemes (SHA512-CRYPT, SHA256-CRYPT, MD5-CRYPT, BLF-CRYPT) and
 * PLAIN/CLEAR, compared in constant time. authd extends the scheme list.
 */
#ifndef POSTERN_PASSWORD_H
#define POSTERN_PASSWORD_H

#include <stdbool.h>
#include "strbuf.h"

#define PASSWORD_DEFAULT_SCHEME "SHA512-CRYPT"
#define PASSWORD_MAX 1024               /* longer input is refused, not truncated */

/* password_hash - "{SCHEME}..." into out; -1 with err for an unknown scheme or bad input */
int  password_hash(const char *scheme, const char *plain, struct strbuf *out, struct strbuf *err);
/* password_verify - plain matches stored ("{SCHEME}..."); false for anything unknown */
bool password_verify(const char *stored, const char *plain);

#endif
