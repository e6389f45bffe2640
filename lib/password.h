/*
 * password - password hashes in Dovecot's "{SCHEME}hash" notation.
 *
 * Verification (scheme names are case-insensitive, as in Dovecot):
 *   SHA512-CRYPT SHA256-CRYPT BLF-CRYPT ($2a$/$2b$/$2y$) MD5-CRYPT  via crypt_r
 *   CRYPT                 any of the crypt hashes above, told apart by prefix
 *   ARGON2ID ARGON2I      libargon2, "$argon2id$v=19$m=..,t=..,p=..$salt$hash"
 *   SSHA512 SSHA256 SSHA  base64(digest(password || salt) || salt)
 *   SHA512 SHA256 SHA SHA1  unsalted digest, base64 (or hex, guessed by length)
 *   PLAIN CLEAR CLEARTEXT the password itself
 * An encoding suffix picks how the part after "}" is stored: "{SHA1.HEX}",
 * "{SSHA.B64}" (also ".BASE64"), "{PLAIN.HEX}", "{SHA512-CRYPT.HEX}"... as
 * `doveadm pw -s SCHEME.HEX` writes them. Comparisons are constant-time.
 *
 * A stored value without a "{SCHEME}" prefix is verified with the default
 * scheme given to password_verify_default(); password_verify() uses "CRYPT",
 * which accepts only the crypt hashes listed above ("$6$...", "$2y$..."): a
 * bare string is never taken as a plaintext password.
 *
 * Hashing: SHA512-CRYPT (the default for new users), SHA256-CRYPT, BLF-CRYPT
 * (cost 10), ARGON2ID (m=65536 KiB, t=3, p=1: what doveadm pw writes), SSHA512
 * (16 salt bytes). Salts come from getrandom(). Other schemes verify only.
 */
#ifndef POSTERN_PASSWORD_H
#define POSTERN_PASSWORD_H

#include <stdbool.h>
#include "strbuf.h"

#define PASSWORD_DEFAULT_SCHEME "SHA512-CRYPT"
#define PASSWORD_MAX 1024               /* longer input is refused, not truncated */
#define PASSWORD_STORED_MAX 4096        /* a longer stored hash never verifies */

/* password_hash - "{SCHEME}..." into out; -1 with err for an unknown scheme or bad input */
int  password_hash(const char *scheme, const char *plain, struct strbuf *out, struct strbuf *err);
/* password_verify - plain matches stored ("{SCHEME}..." or a bare crypt hash); false for anything unknown */
bool password_verify(const char *stored, const char *plain);
/* password_verify_default - as password_verify, default_scheme (e.g. "SHA1.HEX") for a bare stored value */
bool password_verify_default(const char *stored, const char *plain, const char *default_scheme);
/* password_scheme_of - canonical scheme name of stored ("SHA512-CRYPT"), NULL if unknown or none */
const char *password_scheme_of(const char *stored);
/* password_scheme_weak - stored is plaintext, unsalted, SHA1/MD5 based or unrecognised ("*", "" are not) */
bool password_scheme_weak(const char *stored);

#endif
