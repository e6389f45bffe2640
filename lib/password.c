/*
 * password - hashing and verifying "{SCHEME}hash" passwords. See password.h.
 *
 * The scheme table says, for each Dovecot scheme name, how its hash is checked
 * (crypt_r, libargon2, an OpenSSL digest, or the password itself) and how the
 * stored text is encoded by default. A stored value is taken apart once
 * (parse_stored), its text decoded (decode_payload) and then checked by kind.
 */
#include <argon2.h>
#include <crypt.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "mem.h"
#include "base64.h"
#include "password.h"

#define SALT_BYTES 16                   /* SSHA512 and ARGON2ID salts */
#define BLF_COST 10
#define ARGON2_T 3                      /* doveadm pw -s ARGON2ID: m=65536,t=3,p=1 */
#define ARGON2_M 65536
#define ARGON2_P 1
#define ARGON2_HASH_BYTES 32
/* A stored argon2 hash names its own cost; bound it so that a hostile or mistyped
 * line cannot make one login allocate gigabytes (libsodium's "sensitive" is 1 GiB, t=4..8). */
#define ARGON2_MAX_M (1024u * 1024u)
#define ARGON2_MAX_T 32u
#define ARGON2_MAX_P 16u

enum kind { KIND_CRYPT, KIND_ARGON2, KIND_DIGEST, KIND_SALTED, KIND_PLAIN };
enum encoding { ENC_NONE, ENC_BASE64, ENC_HEX };

struct scheme {
    const char *name;
    enum kind kind;
    const EVP_MD *(*md)(void);          /* KIND_DIGEST, KIND_SALTED */
    const char *argon2_prefix;          /* KIND_ARGON2 */
    bool    weak;                       /* plaintext, unsalted, or SHA1/MD5 based */
    bool    can_hash;
};

static const struct scheme schemes[] = {
    {"SHA512-CRYPT", KIND_CRYPT, NULL, NULL, false, true},
    {"SHA256-CRYPT", KIND_CRYPT, NULL, NULL, false, true},
    {"BLF-CRYPT", KIND_CRYPT, NULL, NULL, false, true},
    {"MD5-CRYPT", KIND_CRYPT, NULL, NULL, true, false},
    {"CRYPT", KIND_CRYPT, NULL, NULL, false, false},    /* resolved by the hash's prefix */
    {"ARGON2ID", KIND_ARGON2, NULL, "$argon2id$", false, true},
    {"ARGON2I", KIND_ARGON2, NULL, "$argon2i$", false, false},
    {"SSHA512", KIND_SALTED, EVP_sha512, NULL, false, true},
    {"SSHA256", KIND_SALTED, EVP_sha256, NULL, false, false},
    {"SSHA", KIND_SALTED, EVP_sha1, NULL, true, false},
    {"SHA512", KIND_DIGEST, EVP_sha512, NULL, true, false},
    {"SHA256", KIND_DIGEST, EVP_sha256, NULL, true, false},
    {"SHA", KIND_DIGEST, EVP_sha1, NULL, true, false},
    {"SHA1", KIND_DIGEST, EVP_sha1, NULL, true, false},
    {"PLAIN", KIND_PLAIN, NULL, NULL, true, false},
    {"CLEAR", KIND_PLAIN, NULL, NULL, true, false},
    {"CLEARTEXT", KIND_PLAIN, NULL, NULL, true, false},
};

#define SCHEME_COUNT (sizeof(schemes) / sizeof(schemes[0]))

/* The crypt(3) hashes we accept, by prefix; "$2x$" (the buggy-bcrypt marker) is not among them. */
static const struct {
    const char *prefix;
    const char *scheme;
} crypt_prefixes[] = {
    {"$6$", "SHA512-CRYPT"}, {"$5$", "SHA256-CRYPT"},
    {"$2y$", "BLF-CRYPT"}, {"$2b$", "BLF-CRYPT"}, {"$2a$", "BLF-CRYPT"},
    {"$1$", "MD5-CRYPT"},
};

/* A stored value taken apart: which scheme, how its text is encoded, the text. */
struct stored {
    const struct scheme *scheme;
    enum encoding enc;
    bool    enc_explicit;               /* a ".HEX"/".B64" suffix was given */
    const char *payload;
};

/* scheme_find - the table entry named name[0..len), case-insensitively */
static const struct scheme *scheme_find(const char *name, size_t len)
{
    for (size_t i = 0; i < SCHEME_COUNT; i++)
        if (strlen(schemes[i].name) == len && strncasecmp(name, schemes[i].name, len) == 0)
            return &schemes[i];
    return NULL;
}

/* scheme_lookup - "NAME" or "NAME.ENCODING" into the scheme and its encoding; -1 if unknown */
static int scheme_lookup(const char *name, size_t len, struct stored *st)
{
    const char *dot = memchr(name, '.', len);
    size_t  base_len = dot ? (size_t) (dot - name) : len;

    if ((st->scheme = scheme_find(name, base_len)) == NULL)
        return -1;
    st->enc_explicit = dot != NULL;
    if (dot == NULL) {
        st->enc = (st->scheme->kind == KIND_DIGEST || st->scheme->kind == KIND_SALTED) ? ENC_BASE64 : ENC_NONE;
        return 0;
    }
    const char *suffix = dot + 1;
    size_t  suffix_len = len - base_len - 1;

    if (suffix_len == 3 && strncasecmp(suffix, "HEX", 3) == 0)
        st->enc = ENC_HEX;
    else if ((suffix_len == 3 && strncasecmp(suffix, "B64", 3) == 0)
             || (suffix_len == 6 && strncasecmp(suffix, "BASE64", 6) == 0))
        st->enc = ENC_BASE64;
    else
        return -1;
    return 0;
}

/* parse_stored - split "{SCHEME}text"; a bare value gets default_scheme ("CRYPT" if NULL) */
static int parse_stored(const char *stored, const char *default_scheme, struct stored *st)
{
    const char *close;

    if (stored == NULL || strlen(stored) > PASSWORD_STORED_MAX)
        return -1;
    /* Like Dovecot, a "{" without a "}" is not a scheme prefix but part of the value. */
    if (stored[0] == '{' && (close = strchr(stored, '}')) != NULL) {
        st->payload = close + 1;
        return scheme_lookup(stored + 1, (size_t) (close - stored - 1), st);
    }
    /* passwd-file's "*" (no password set), shadow's "!..." (locked) and an empty
     * field must never match, whatever the default scheme: "PLAIN" would take "*" as a password. */
    if (stored[0] == '\0' || stored[0] == '*' || stored[0] == '!')
        return -1;
    st->payload = stored;
    if (default_scheme == NULL)
        default_scheme = "CRYPT";
    return scheme_lookup(default_scheme, strlen(default_scheme), st);
}

/* hex_value - 0..15 for a hex digit, -1 otherwise */
static int hex_value(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* decode_hex - s[0..len) as hex into out; -1 on an odd length or a non-hex byte */
static int decode_hex(const char *s, size_t len, struct strbuf *out)
{
    if (len % 2 != 0)
        return -1;
    for (size_t i = 0; i < len; i += 2) {
        int     hi = hex_value((unsigned char) s[i]), lo = hex_value((unsigned char) s[i + 1]);

        if (hi < 0 || lo < 0)
            return -1;
        sb_putc(out, hi << 4 | lo);
    }
    return 0;
}

/* decode_payload - the stored text as raw bytes, by the scheme's encoding */
static int decode_payload(const struct stored *st, struct strbuf *raw)
{
    size_t  len = strlen(st->payload);

    sb_reset(raw);
    switch (st->enc) {
    case ENC_NONE:
        sb_append(raw, st->payload, len);
        return 0;
    case ENC_HEX:
        return decode_hex(st->payload, len, raw);
    case ENC_BASE64:
        /* Dovecot guesses for unsalted digests without a suffix: exactly twice the digest
         * length in hex digits is hex (the seed how-to stores SHA1 that way), anything else base64. */
        if (!st->enc_explicit && st->scheme->kind == KIND_DIGEST
            && len == 2 * (size_t) EVP_MD_get_size(st->scheme->md()) && decode_hex(st->payload, len, raw) == 0)
            return 0;
        sb_reset(raw);
        return base64_decode(st->payload, len, BASE64_PADDING_OPTIONAL, raw);
    }
    return -1;
}

/* crypt_scheme_of - the scheme name a crypt hash's prefix announces, NULL if none we accept */
static const char *crypt_scheme_of(const char *hash)
{
    for (size_t i = 0; i < sizeof(crypt_prefixes) / sizeof(crypt_prefixes[0]); i++)
        if (strncmp(hash, crypt_prefixes[i].prefix, strlen(crypt_prefixes[i].prefix)) == 0)
            return crypt_prefixes[i].scheme;
    return NULL;
}

/* wipe - forget a buffer that held a password or something derived from one */
static void wipe(struct strbuf *sb)
{
    if (sb->data != NULL)
        explicit_bzero(sb->data, sb->cap);
    sb_free(sb);
}

/* verify_crypt - crypt_r(plain, hash) reproduces hash; the prefix must fit the scheme */
static bool verify_crypt(const struct scheme *s, const struct strbuf *raw, const char *plain)
{
    const char *announced = crypt_scheme_of(raw->data);
    struct crypt_data *data;
    const char *computed;
    bool    ok;

    if (memchr(raw->data, '\0', raw->len) != NULL || announced == NULL
        || (strcmp(s->name, "CRYPT") != 0 && strcmp(s->name, announced) != 0))
        return false;
    data = xcalloc(1, sizeof(*data));   /* ~32 KiB: too big for a daemon's stack */
    computed = crypt_r(plain, raw->data, data);
    ok = computed != NULL && computed[0] != '*' && strlen(computed) == raw->len
        && CRYPTO_memcmp(computed, raw->data, raw->len) == 0;
    explicit_bzero(data, sizeof(*data));
    free(data);
    return ok;
}

/* parse_uint - a decimal number at *p up to max, advancing *p; -1 if absent or too big */
static int parse_uint(const char **p, uint32_t max, uint32_t *out)
{
    uint64_t v = 0;

    if (**p < '0' || **p > '9')
        return -1;
    while (**p >= '0' && **p <= '9') {
        v = v * 10 + (uint64_t) (**p - '0');
        if (v > max)
            return -1;
        (*p)++;
    }
    *out = (uint32_t) v;
    return 0;
}

/* argon2_cost_ok - "$argon2X$[v=N$]m=M,t=T,p=P$..." within our bounds (libargon2 checks the rest) */
static bool argon2_cost_ok(const char *hash, const char *prefix)
{
    const char *p = hash + strlen(prefix);
    uint32_t v, m, t, par;

    if (strncmp(p, "v=", 2) == 0) {
        p += 2;
        if (parse_uint(&p, 255, &v) < 0 || *p++ != '$')
            return false;
    }
    if (strncmp(p, "m=", 2) != 0)
        return false;
    p += 2;
    if (parse_uint(&p, ARGON2_MAX_M, &m) < 0 || strncmp(p, ",t=", 3) != 0)
        return false;
    p += 3;
    if (parse_uint(&p, ARGON2_MAX_T, &t) < 0 || strncmp(p, ",p=", 3) != 0)
        return false;
    p += 3;
    return parse_uint(&p, ARGON2_MAX_P, &par) == 0 && *p == '$';
}

/* verify_argon2 - libargon2's own verify (it compares in constant time) after bounding the cost */
static bool verify_argon2(const struct scheme *s, const struct strbuf *raw, const char *plain)
{
    if (memchr(raw->data, '\0', raw->len) != NULL
        || strncmp(raw->data, s->argon2_prefix, strlen(s->argon2_prefix)) != 0
        || !argon2_cost_ok(raw->data, s->argon2_prefix))
        return false;
    if (strcmp(s->name, "ARGON2ID") == 0)
        return argon2id_verify(raw->data, plain, strlen(plain)) == ARGON2_OK;
    return argon2i_verify(raw->data, plain, strlen(plain)) == ARGON2_OK;
}

/* digest - md(data1 || data2) into out; its length, or 0 on failure */
static unsigned int digest(const EVP_MD *md, const void *data1, size_t len1, const void *data2, size_t len2,
                           unsigned char out[EVP_MAX_MD_SIZE])
{
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    unsigned int out_len = 0;

    if (ctx == NULL || EVP_DigestInit_ex(ctx, md, NULL) != 1 || EVP_DigestUpdate(ctx, data1, len1) != 1
        || EVP_DigestUpdate(ctx, data2, len2) != 1 || EVP_DigestFinal_ex(ctx, out, &out_len) != 1)
        out_len = 0;
    EVP_MD_CTX_free(ctx);
    return out_len;
}

/* verify_digest - unsalted: raw is md(plain); salted: raw is md(plain || salt) || salt */
static bool verify_digest(const struct scheme *s, const struct strbuf *raw, const char *plain)
{
    const EVP_MD *md = s->md();
    size_t  md_len = (size_t) EVP_MD_get_size(md);
    unsigned char computed[EVP_MAX_MD_SIZE];
    unsigned int n;
    bool    ok;

    if (s->kind == KIND_DIGEST ? raw->len != md_len : raw->len <= md_len)
        return false;
    n = digest(md, plain, strlen(plain), raw->data + md_len, raw->len - md_len, computed);
    ok = n == md_len && CRYPTO_memcmp(computed, raw->data, md_len) == 0;
    explicit_bzero(computed, sizeof(computed));
    return ok;
}

/* verify_plain - compare SHA-256 of both, so that not even the stored length shows in the timing */
static bool verify_plain(const struct strbuf *raw, const char *plain)
{
    unsigned char a[EVP_MAX_MD_SIZE], b[EVP_MAX_MD_SIZE];
    unsigned int na, nb;
    bool    ok;

    na = digest(EVP_sha256(), raw->data, raw->len, "", 0, a);
    nb = digest(EVP_sha256(), plain, strlen(plain), "", 0, b);
    /* Equal digests of unequal lengths would be a SHA-256 collision; check anyway. */
    ok = na == 32 && nb == 32 && CRYPTO_memcmp(a, b, 32) == 0 && raw->len == strlen(plain);
    explicit_bzero(a, sizeof(a));
    explicit_bzero(b, sizeof(b));
    return ok;
}

bool password_verify_default(const char *stored, const char *plain, const char *default_scheme)
{
    struct strbuf raw = STRBUF_INIT;
    struct stored st;
    bool    ok = false;

    if (plain == NULL || strlen(plain) > PASSWORD_MAX || parse_stored(stored, default_scheme, &st) < 0)
        return false;
    if (decode_payload(&st, &raw) == 0 && raw.data != NULL) {
        switch (st.scheme->kind) {
        case KIND_CRYPT:
            ok = verify_crypt(st.scheme, &raw, plain);
            break;
        case KIND_ARGON2:
            ok = verify_argon2(st.scheme, &raw, plain);
            break;
        case KIND_DIGEST:
        case KIND_SALTED:
            ok = verify_digest(st.scheme, &raw, plain);
            break;
        case KIND_PLAIN:
            ok = verify_plain(&raw, plain);
            break;
        }
    }
    wipe(&raw);
    return ok;
}

bool password_verify(const char *stored, const char *plain)
{
    return password_verify_default(stored, plain, NULL);
}

const char *password_scheme_of(const char *stored)
{
    struct strbuf raw = STRBUF_INIT;
    struct stored st;
    const char *name = NULL;

    if (parse_stored(stored, NULL, &st) < 0)
        return NULL;
    if (strcmp(st.scheme->name, "CRYPT") != 0)
        return st.scheme->name;
    if (decode_payload(&st, &raw) == 0 && raw.data != NULL && memchr(raw.data, '\0', raw.len) == NULL)
        name = crypt_scheme_of(raw.data);
    wipe(&raw);
    return name;
}

bool password_scheme_weak(const char *stored)
{
    const char *name;
    const struct scheme *s;

    if (stored == NULL || stored[0] == '\0' || strcmp(stored, "*") == 0)
        return false;                   /* no password set: nothing to guess */
    if ((name = password_scheme_of(stored)) == NULL || (s = scheme_find(name, strlen(name))) == NULL)
        return true;                    /* nothing we can vouch for */
    return s->weak;
}

/* random_bytes - fill buf from the kernel's random source; -1 if it will not */
static int random_bytes(void *buf, size_t len)
{
    size_t  done = 0;

    while (done < len) {
        ssize_t n = getrandom((char *) buf + done, len - done, 0);

        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return -1;
        done += (size_t) n;
    }
    return 0;
}

/* hash_crypt - crypt_r with a setting from crypt_gensalt_rn over our own random bytes */
static int hash_crypt(const char *name, const char *plain, struct strbuf *out, struct strbuf *err)
{
    const char *prefix = strcmp(name, "SHA512-CRYPT") == 0 ? "$6$" : strcmp(name, "SHA256-CRYPT") == 0 ? "$5$" : "$2y$";
    unsigned long cost = strcmp(prefix, "$2y$") == 0 ? BLF_COST : 0;      /* 0: libcrypt's default rounds */
    unsigned char rnd[SALT_BYTES];
    char    setting[CRYPT_GENSALT_OUTPUT_SIZE];
    struct crypt_data *data;
    const char *hash;
    int     rc = -1;

    if (random_bytes(rnd, sizeof(rnd)) < 0) {
        sb_puts(err, "no random bytes for a salt");
        return -1;
    }
    if (crypt_gensalt_rn(prefix, cost, (const char *) rnd, sizeof(rnd), setting, sizeof(setting)) == NULL) {
        sb_printf(err, "crypt_gensalt failed for %s: %s", name, strerror(errno));
        return -1;
    }
    data = xcalloc(1, sizeof(*data));
    hash = crypt_r(plain, setting, data);
    if (hash == NULL || hash[0] == '*') {
        sb_printf(err, "crypt failed for %s", name);
    } else {
        sb_reset(out);
        sb_printf(out, "{%s}%s", name, hash);
        rc = 0;
    }
    explicit_bzero(data, sizeof(*data));
    free(data);
    return rc;
}

/* hash_argon2id - the encoded argon2id string with doveadm's parameters */
static int hash_argon2id(const char *plain, struct strbuf *out, struct strbuf *err)
{
    unsigned char salt[SALT_BYTES];
    char    encoded[256];
    int     rc;

    if (argon2_encodedlen(ARGON2_T, ARGON2_M, ARGON2_P, SALT_BYTES, ARGON2_HASH_BYTES, Argon2_id) > sizeof(encoded)) {
        sb_puts(err, "argon2 encoded hash too long");
        return -1;
    }
    if (random_bytes(salt, sizeof(salt)) < 0) {
        sb_puts(err, "no random bytes for a salt");
        return -1;
    }
    rc = argon2id_hash_encoded(ARGON2_T, ARGON2_M, ARGON2_P, plain, strlen(plain), salt, sizeof(salt),
                               ARGON2_HASH_BYTES, encoded, sizeof(encoded));
    if (rc != ARGON2_OK) {
        sb_printf(err, "argon2id failed: %s", argon2_error_message(rc));
        return -1;
    }
    sb_reset(out);
    sb_printf(out, "{ARGON2ID}%s", encoded);
    return 0;
}

/* hash_salted - base64(md(plain || salt) || salt) */
static int hash_salted(const struct scheme *s, const char *plain, struct strbuf *out, struct strbuf *err)
{
    unsigned char raw[EVP_MAX_MD_SIZE + SALT_BYTES];
    unsigned char salt[SALT_BYTES];
    unsigned int n;

    if (random_bytes(salt, sizeof(salt)) < 0) {
        sb_puts(err, "no random bytes for a salt");
        return -1;
    }
    if ((n = digest(s->md(), plain, strlen(plain), salt, sizeof(salt), raw)) == 0) {
        sb_printf(err, "digest failed for %s", s->name);
        return -1;
    }
    memcpy(raw + n, salt, sizeof(salt));
    sb_reset(out);
    sb_printf(out, "{%s}", s->name);
    base64_encode(out, raw, n + sizeof(salt));
    return 0;
}

int password_hash(const char *scheme, const char *plain, struct strbuf *out, struct strbuf *err)
{
    const struct scheme *s;

    if (strlen(plain) > PASSWORD_MAX || strchr(plain, '\n') != NULL) {
        sb_printf(err, "a password is at most %d bytes on one line", PASSWORD_MAX);
        return -1;
    }
    if ((s = scheme_find(scheme, strlen(scheme))) == NULL || !s->can_hash) {
        sb_printf(err, "%s password scheme %s (new hashes: SHA512-CRYPT, SHA256-CRYPT, BLF-CRYPT, ARGON2ID, SSHA512)",
                  s == NULL ? "unknown" : "verify-only", scheme);
        return -1;
    }
    switch (s->kind) {
    case KIND_CRYPT:
        return hash_crypt(s->name, plain, out, err);
    case KIND_ARGON2:
        return hash_argon2id(plain, out, err);
    case KIND_SALTED:
        return hash_salted(s, plain, out, err);
    default:
        sb_printf(err, "verify-only password scheme %s", s->name);
        return -1;
    }
}
