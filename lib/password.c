/*
 * password - hashing and verifying "{SCHEME}hash" passwords. See password.h.
 */
#include <crypt.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>

#include "password.h"

/* The crypt(3) schemes: Dovecot's name and the prefix of the hash. */
static const struct {
    const char *name;
    const char *prefix;
    bool    can_hash;
} crypt_schemes[] = {
    {"SHA512-CRYPT", "$6$", true},
    {"SHA256-CRYPT", "$5$", true},
    {"MD5-CRYPT", "$1$", false},        /* verify only: too weak for new hashes */
    {"BLF-CRYPT", "$2", false},
};

/* make_salt - 16 characters of crypt's alphabet from the kernel's random source */
static int make_salt(char salt[17])
{
    static const char alphabet[] = "./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    unsigned char raw[16];

    if (getrandom(raw, sizeof(raw), 0) != (ssize_t) sizeof(raw))
        return -1;
    for (int i = 0; i < 16; i++)
        salt[i] = alphabet[raw[i] & 63];
    salt[16] = '\0';
    return 0;
}

/* equal_constant_time - compare without leaking where the first difference is */
static bool equal_constant_time(const char *a, const char *b)
{
    size_t  la = strlen(a);
    size_t  lb = strlen(b);
    unsigned char diff = (unsigned char) (la != lb);

    for (size_t i = 0; i < la; i++)
        diff |= (unsigned char) (a[i] ^ b[i < lb ? i : 0]);
    return diff == 0;
}

int password_hash(const char *scheme, const char *plain, struct strbuf *out, struct strbuf *err)
{
    struct crypt_data data;
    char    setting[32];
    char    salt[17];
    const char *hash;

    if (strlen(plain) > PASSWORD_MAX || strchr(plain, '\n') != NULL) {
        sb_printf(err, "a password is at most %d bytes on one line", PASSWORD_MAX);
        return -1;
    }
    for (size_t i = 0; i < sizeof(crypt_schemes) / sizeof(crypt_schemes[0]); i++) {
        if (strcasecmp(scheme, crypt_schemes[i].name) != 0)
            continue;
        if (!crypt_schemes[i].can_hash)
            break;
        if (make_salt(salt) < 0) {
            sb_puts(err, "no random bytes for a salt");
            return -1;
        }
        snprintf(setting, sizeof(setting), "%s%s$", crypt_schemes[i].prefix, salt);
        memset(&data, 0, sizeof(data));
        hash = crypt_r(plain, setting, &data);
        if (hash == NULL || hash[0] == '*') {
            sb_printf(err, "crypt failed for %s", scheme);
            return -1;
        }
        sb_reset(out);
        sb_printf(out, "{%s}%s", crypt_schemes[i].name, hash);
        return 0;
    }
    sb_printf(err, "unknown or verify-only password scheme %s (use SHA512-CRYPT or SHA256-CRYPT)", scheme);
    return -1;
}

bool password_verify(const char *stored, const char *plain)
{
    const char *close = stored[0] == '{' ? strchr(stored, '}') : NULL;
    struct crypt_data data;
    const char *hash;
    size_t  len;

    if (close == NULL || strlen(plain) > PASSWORD_MAX)
        return false;
    len = (size_t) (close - stored - 1);
    hash = close + 1;
    if ((len == 5 && strncasecmp(stored + 1, "PLAIN", 5) == 0)
        || (len == 5 && strncasecmp(stored + 1, "CLEAR", 5) == 0))
        return equal_constant_time(hash, plain);
    for (size_t i = 0; i < sizeof(crypt_schemes) / sizeof(crypt_schemes[0]); i++) {
        if (strlen(crypt_schemes[i].name) != len || strncasecmp(stored + 1, crypt_schemes[i].name, len) != 0)
            continue;
        if (strncmp(hash, crypt_schemes[i].prefix, strlen(crypt_schemes[i].prefix)) != 0)
            return false;
        memset(&data, 0, sizeof(data));
        const char *computed = crypt_r(plain, hash, &data);

        return computed != NULL && computed[0] != '*' && equal_constant_time(computed, hash);
    }
    return false;
}
