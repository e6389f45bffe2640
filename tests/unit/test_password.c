/*
 * test_password - lib/password.c against hashes made at test time by real tools
 * (doveadm pw, openssl passwd, openssl dgst), never by our own code, and our
 * hashes checked by `doveadm pw -t`. Tests needing doveadm are skipped without it.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <cmocka.h>

#include "password.h"
#include "strbuf.h"

/* Passwords used with the tools: no single quote, so they fit in '...' on a shell line. */
static const char *const passwords[] = {"correct horse", "p\xc3\xa4$$w\xc3\xb6rd!", "x"};

#define NPASSWORDS (sizeof(passwords) / sizeof(passwords[0]))

/* run - first line of a shell command's output into out (may be NULL); the exit status */
static int run(const char *cmd, struct strbuf *out)
{
    char    line[4096];
    FILE   *p = popen(cmd, "r");
    int     status;

    assert_non_null(p);
    if (out != NULL) {
        sb_reset(out);
        if (fgets(line, sizeof(line), p) != NULL) {
            line[strcspn(line, "\n")] = '\0';
            sb_set(out, line);
        }
    }
    while (fgets(line, sizeof(line), p) != NULL)
        ;
    status = pclose(p);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

/* have_doveadm - doveadm can be run (dovecot-core installed) */
static bool have_doveadm(void)
{
    return system("command -v doveadm >/dev/null 2>&1") == 0;
}

/* doveadm_hash - `doveadm pw -s SCHEME -p PLAIN` into out */
static void doveadm_hash(const char *scheme, const char *plain, struct strbuf *out)
{
    struct strbuf cmd = STRBUF_INIT;

    sb_printf(&cmd, "doveadm pw -s '%s' -p '%s' 2>&1", scheme, plain);
    if (run(cmd.data, out) != 0 || sb_len(out) == 0)
        fail_msg("%s: %s", cmd.data, sb_str(out));
    sb_free(&cmd);
}

/* doveadm_accepts - `doveadm pw -t STORED -p PLAIN` says they match */
static bool doveadm_accepts(const char *stored, const char *plain)
{
    struct strbuf cmd = STRBUF_INIT;
    int     rc;

    sb_printf(&cmd, "doveadm pw -t '%s' -p '%s' >/dev/null 2>&1", stored, plain);
    rc = run(cmd.data, NULL);
    sb_free(&cmd);
    return rc == 0;
}

/* check_right_and_wrong - stored verifies plain and none of its near misses */
static void check_right_and_wrong(const char *stored, const char *plain, const char *default_scheme)
{
    struct strbuf wrong = STRBUF_INIT;
    size_t  len = strlen(plain);

    if (!password_verify_default(stored, plain, default_scheme))
        fail_msg("%s does not verify '%s' (default %s)", stored, plain, default_scheme ? default_scheme : "none");
    sb_set(&wrong, plain);                              /* one character changed */
    wrong.data[len - 1] ^= 1;
    if (password_verify_default(stored, wrong.data, default_scheme))
        fail_msg("%s verifies the wrong '%s'", stored, wrong.data);
    sb_set(&wrong, plain);                              /* one character more */
    sb_putc(&wrong, 'a');
    if (password_verify_default(stored, wrong.data, default_scheme))
        fail_msg("%s verifies the longer '%s'", stored, wrong.data);
    sb_truncate(&wrong, len - 1);                       /* one character less */
    if (password_verify_default(stored, wrong.data, default_scheme))
        fail_msg("%s verifies the shorter '%s'", stored, wrong.data);
    if (password_verify_default(stored, "", default_scheme))
        fail_msg("%s verifies the empty password", stored);
    sb_free(&wrong);
}

static void doveadm_vectors(void **state)
{
    static const struct {
        const char *scheme, *canonical;
        bool    weak;
    } cases[] = {
        {"SHA512-CRYPT", "SHA512-CRYPT", false}, {"SHA256-CRYPT", "SHA256-CRYPT", false},
        {"BLF-CRYPT", "BLF-CRYPT", false}, {"ARGON2ID", "ARGON2ID", false}, {"ARGON2I", "ARGON2I", false},
        {"MD5-CRYPT", "MD5-CRYPT", true}, {"SSHA512", "SSHA512", false}, {"SSHA256", "SSHA256", false},
        {"SSHA", "SSHA", true}, {"SHA512", "SHA512", true}, {"SHA256", "SHA256", true}, {"SHA", "SHA", true},
        {"SHA1", "SHA1", true}, {"PLAIN", "PLAIN", true}, {"CLEAR", "CLEAR", true},
        {"CLEARTEXT", "CLEARTEXT", true},
    };
    struct strbuf stored = STRBUF_INIT;

    (void) state;
    if (!have_doveadm())
        skip();
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        for (size_t j = 0; j < NPASSWORDS; j++) {
            doveadm_hash(cases[i].scheme, passwords[j], &stored);
            check_right_and_wrong(stored.data, passwords[j], NULL);
            check_right_and_wrong(stored.data, passwords[j], "PLAIN");     /* the prefix wins */
            assert_string_equal(password_scheme_of(stored.data), cases[i].canonical);
            assert_int_equal(password_scheme_weak(stored.data), cases[i].weak);
        }
    }
    sb_free(&stored);
}

static void doveadm_encodings(void **state)
{
    static const char *const schemes[] = {
        "SHA1.HEX", "SHA.HEX", "SHA256.HEX", "SHA512.HEX", "SSHA.HEX", "SSHA256.HEX", "SSHA512.HEX",
        "SHA1.B64", "SSHA512.B64", "SHA512.b64", "PLAIN.HEX", "PLAIN.B64", "SHA512-CRYPT.HEX",
        "BLF-CRYPT.HEX", "ARGON2ID.B64", "MD5-CRYPT.hex",
    };
    struct strbuf stored = STRBUF_INIT, lower = STRBUF_INIT;

    (void) state;
    if (!have_doveadm())
        skip();
    for (size_t i = 0; i < sizeof(schemes) / sizeof(schemes[0]); i++) {
        for (size_t j = 0; j < NPASSWORDS; j++) {
            doveadm_hash(schemes[i], passwords[j], &stored);
            check_right_and_wrong(stored.data, passwords[j], NULL);
            /* scheme names are case-insensitive: "{sha1.hex}..." */
            sb_set(&lower, stored.data);
            for (char *p = lower.data; *p != '}'; p++)
                *p = (char) (*p >= 'A' && *p <= 'Z' ? *p + 32 : *p);
            check_right_and_wrong(lower.data, passwords[j], NULL);
        }
    }
    /* A hex payload announced as base64 (and the reverse) must not verify. */
    doveadm_hash("SHA1.HEX", "correct horse", &stored);
    sb_reset(&lower);
    sb_printf(&lower, "{SHA1.B64}%s", strchr(stored.data, '}') + 1);
    assert_false(password_verify(lower.data, "correct horse"));
    doveadm_hash("SSHA", "correct horse", &stored);
    sb_reset(&lower);
    sb_printf(&lower, "{SSHA.HEX}%s", strchr(stored.data, '}') + 1);
    assert_false(password_verify(lower.data, "correct horse"));
    /* A salted scheme needs at least one salt byte: a bare digest relabelled {SSHA} is refused. */
    doveadm_hash("SHA1", "correct horse", &stored);
    sb_reset(&lower);
    sb_printf(&lower, "{SSHA}%s", strchr(stored.data, '}') + 1);
    assert_true(password_verify(stored.data, "correct horse"));
    assert_false(password_verify(lower.data, "correct horse"));
    sb_free(&stored), sb_free(&lower);
}

static void bare_values_and_default_scheme(void **state)
{
    struct strbuf stored = STRBUF_INIT;
    const char *bare;

    (void) state;
    if (!have_doveadm())
        skip();
    /* The seed how-to's SQL rows: SHA1 in hex, no prefix. */
    doveadm_hash("SHA1.HEX", "correct horse", &stored);
    bare = strchr(stored.data, '}') + 1;
    check_right_and_wrong(bare, "correct horse", "SHA1.HEX");
    check_right_and_wrong(bare, "correct horse", "sha1");          /* 40 hex digits: hex guessed */
    assert_false(password_verify(bare, "correct horse"));          /* without a default: crypt only */
    assert_false(password_verify_default(bare, "correct horse", "SHA256.HEX"));
    assert_false(password_verify_default(bare, "correct horse", "NOSUCH"));
    assert_false(password_verify_default(bare, "correct horse", "SHA1.ROT13"));
    /* Bare crypt hashes, as Dovecot's default CRYPT scheme takes them. */
    doveadm_hash("SHA512-CRYPT", "correct horse", &stored);
    bare = strchr(stored.data, '}') + 1;
    check_right_and_wrong(bare, "correct horse", NULL);
    check_right_and_wrong(bare, "correct horse", "SHA512-CRYPT");
    check_right_and_wrong(bare, "correct horse", "CRYPT");
    assert_false(password_verify_default(bare, "correct horse", "SHA256-CRYPT"));
    assert_string_equal(password_scheme_of(bare), "SHA512-CRYPT");
    assert_false(password_scheme_weak(bare));
    doveadm_hash("BLF-CRYPT", "correct horse", &stored);
    bare = strchr(stored.data, '}') + 1;
    check_right_and_wrong(bare, "correct horse", NULL);
    assert_string_equal(password_scheme_of(bare), "BLF-CRYPT");
    sb_free(&stored);
}

/* openssl_hash - "openssl passwd -ALG -salt SALT PASSWORD" output into out */
static void openssl_hash(const char *alg, const char *salt, const char *plain, struct strbuf *out)
{
    struct strbuf cmd = STRBUF_INIT;

    sb_printf(&cmd, "openssl passwd -%s -salt '%s' '%s'", alg, salt, plain);
    assert_int_equal(run(cmd.data, out), 0);
    assert_true(sb_len(out) > 0);
    sb_free(&cmd);
}

static void openssl_vectors(void **state)
{
    static const struct {
        const char *alg, *scheme;
    } algs[] = {{"6", "SHA512-CRYPT"}, {"5", "SHA256-CRYPT"}, {"1", "MD5-CRYPT"}};
    struct strbuf hash = STRBUF_INIT, stored = STRBUF_INIT;

    (void) state;
    for (size_t i = 0; i < sizeof(algs) / sizeof(algs[0]); i++) {
        for (size_t j = 0; j < NPASSWORDS; j++) {
            openssl_hash(algs[i].alg, "saltsalt12", passwords[j], &hash);
            sb_reset(&stored);
            sb_printf(&stored, "{%s}%s", algs[i].scheme, hash.data);
            check_right_and_wrong(stored.data, passwords[j], NULL);
            check_right_and_wrong(hash.data, passwords[j], NULL);          /* bare */
            sb_reset(&stored);
            sb_printf(&stored, "{CRYPT}%s", hash.data);
            check_right_and_wrong(stored.data, passwords[j], NULL);
            assert_string_equal(password_scheme_of(stored.data), algs[i].scheme);
        }
    }
    /* SHA-256 hex from openssl dgst, as a bare SQL value. */
    assert_int_equal(run("printf %s 'correct horse' | openssl dgst -sha256 -r | cut -d' ' -f1", &hash), 0);
    assert_int_equal(sb_len(&hash), 64);
    check_right_and_wrong(hash.data, "correct horse", "SHA256.HEX");
    check_right_and_wrong(hash.data, "correct horse", "SHA256");
    sb_free(&hash);
    sb_free(&stored);
}

static void ours_verified_by_doveadm(void **state)
{
    static const struct {
        const char *scheme, *prefix;
    } cases[] = {
        {"SHA512-CRYPT", "{SHA512-CRYPT}$6$"}, {"SHA256-CRYPT", "{SHA256-CRYPT}$5$"},
        {"BLF-CRYPT", "{BLF-CRYPT}$2y$10$"}, {"ARGON2ID", "{ARGON2ID}$argon2id$v=19$m=65536,t=3,p=1$"},
        {"SSHA512", "{SSHA512}"},
    };
    struct strbuf a = STRBUF_INIT, b = STRBUF_INIT, err = STRBUF_INIT;
    bool    doveadm = have_doveadm();

    (void) state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        for (size_t j = 0; j < NPASSWORDS; j++) {
            if (password_hash(cases[i].scheme, passwords[j], &a, &err) != 0)
                fail_msg("%s: %s", cases[i].scheme, err.data);
            assert_int_equal(strncmp(a.data, cases[i].prefix, strlen(cases[i].prefix)), 0);
            check_right_and_wrong(a.data, passwords[j], NULL);
            assert_int_equal(password_hash(cases[i].scheme, passwords[j], &b, &err), 0);
            assert_string_not_equal(a.data, b.data);                    /* fresh salt each time */
            assert_false(password_scheme_weak(a.data));
            if (doveadm) {
                if (!doveadm_accepts(a.data, passwords[j]))
                    fail_msg("doveadm pw -t refuses our %s for '%s'", a.data, passwords[j]);
                assert_false(doveadm_accepts(a.data, "wrong password"));
            }
        }
    }
    /* SSHA512: 64 digest bytes + 16 salt bytes = 80 bytes, 108 base64 characters */
    assert_int_equal(password_hash("ssha512", "x", &a, &err), 0);
    assert_int_equal(strlen(a.data), strlen("{SSHA512}") + 108);
    sb_free(&a), sb_free(&b), sb_free(&err);
    if (!doveadm)
        skip();
}

static void refusals(void **state)
{
    struct strbuf out = STRBUF_INIT, err = STRBUF_INIT;
    char    longpw[PASSWORD_MAX + 2];
    static const char *const verify_only[] = {
        "MD5-CRYPT", "ARGON2I", "SSHA256", "SSHA", "SHA512", "SHA256", "SHA", "SHA1", "PLAIN", "CLEAR",
        "CLEARTEXT", "CRYPT", "SHA1.HEX",
    };

    (void) state;
    for (size_t i = 0; i < sizeof(verify_only) / sizeof(verify_only[0]); i++) {
        sb_reset(&err);
        assert_int_equal(password_hash(verify_only[i], "x", &out, &err), -1);
        assert_non_null(strstr(err.data, verify_only[i]));
    }
    sb_reset(&err);
    assert_int_equal(password_hash("NOPE", "x", &out, &err), -1);
    assert_non_null(strstr(err.data, "unknown"));
    assert_int_equal(password_hash("SHA512-CRYPT", "a\nb", &out, &err), -1);
    memset(longpw, 'a', sizeof(longpw) - 1);
    longpw[sizeof(longpw) - 1] = '\0';
    assert_int_equal(password_hash("SHA512-CRYPT", longpw, &out, &err), -1);
    assert_false(password_verify("{PLAIN}aaaa", longpw));
    sb_free(&out), sb_free(&err);
}

static void malformed_stored_values(void **state)
{
    static const char *const bad[] = {
        "", "*", "!", "{", "{}", "{}x", "{PLAIN", "{UNKNOWN}x", "{SHA1.XYZ}x", "{.HEX}x", "{SHA1.}x",
        "{SHA512-CRYPT}", "{SHA512-CRYPT}$6$", "{SHA512-CRYPT}$6$abc", "{SHA512-CRYPT}$5$abc$def",
        "{SHA512-CRYPT}x", "{BLF-CRYPT}$2y$", "{BLF-CRYPT}$2x$05$abcdefghijklmnopqrstuv",
        "{BLF-CRYPT}$2y$99$abcdefghijklmnopqrstuu", "{MD5-CRYPT}$6$abc$def",
        "{ARGON2ID}", "{ARGON2ID}garbage", "{ARGON2ID}$argon2i$v=19$m=65536,t=3,p=1$c2FsdHNhbHQ$aGFzaGhhc2g",
        "{ARGON2ID}$argon2id$v=19$m=4194304,t=3,p=1$c2FsdHNhbHRzYWx0$aGFzaGhhc2hoYXNoaGFzaA",
        "{ARGON2ID}$argon2id$v=19$m=99999999999999999999,t=3,p=1$c2FsdHNhbHQ$aGFzaA",
        "{ARGON2ID}$argon2id$v=19$m=65536,t=1000,p=1$c2FsdHNhbHQ$aGFzaA",
        "{ARGON2ID}$argon2id$v=19$m=65536,t=3,p=255$c2FsdHNhbHQ$aGFzaA",
        "{ARGON2ID}$argon2id$v=19$m=65536,t=3$c2FsdHNhbHQ$aGFzaA",
        "{ARGON2ID}$argon2id$v=19$m=8,t=1,p=1$$", "{ARGON2I}$argon2i$",
        "{SHA1}", "{SHA1}U5lVQVt3jUxILaL251beisJ5kR", "{SHA1}U5lVQVt3jUxILaL251beisJ5kRY=====",
        "{SHA1}U5lV QVt3jUxILaL251beisJ5kRY=", "{SHA1}AAAA", "{SHA1.HEX}5399554", "{SHA1.HEX}zz",
        "{SSHA}", "{SSHA}AAAA", "{SSHA}U5lVQVt3jUxILaL251beisJ5kRY=",  /* digest only, no salt */
        "{SSHA512}!!!!", "{PLAIN.HEX}abc", "{PLAIN.B64}a", "{SHA512-CRYPT.HEX}2436", "{CRYPT}plaintext",
        "{SHA512-CRYPT.HEX}24360024", "{ARGON2ID.HEX}00",
    };

    (void) state;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        if (password_verify(bad[i], "x") || password_verify(bad[i], "") || password_verify(bad[i], "garbage"))
            fail_msg("malformed %s verified", bad[i]);
        assert_false(password_verify_default(bad[i], "x", "PLAIN"));
    }
    /* the bare values that mean "no password" never match, even with PLAIN as default */
    assert_false(password_verify_default("*", "*", "PLAIN"));
    assert_false(password_verify_default("!x", "!x", "PLAIN"));
    assert_false(password_verify_default("", "", "PLAIN"));
    /* "{" without "}" is a bare value, as in Dovecot */
    assert_true(password_verify_default("{PLAIN", "{PLAIN", "PLAIN"));
    assert_false(password_verify(NULL, "x"));
    assert_false(password_verify("{PLAIN}x", NULL));
    /* a stored value beyond the limit is refused before it is looked at */
    {
        char    big[PASSWORD_STORED_MAX + 16];

        memcpy(big, "{PLAIN}", 7);
        memset(big + 7, 'a', sizeof(big) - 8);
        big[sizeof(big) - 1] = '\0';
        assert_false(password_verify(big, big + 7));
    }
}

static void scheme_of_and_weak(void **state)
{
    (void) state;
    assert_string_equal(password_scheme_of("{plain}x"), "PLAIN");
    assert_string_equal(password_scheme_of("{sha1.hex}abcd"), "SHA1");
    assert_string_equal(password_scheme_of("$1$abc$def"), "MD5-CRYPT");
    assert_string_equal(password_scheme_of("{CRYPT}$2b$10$x"), "BLF-CRYPT");
    assert_null(password_scheme_of("{CRYPT}plain"));
    assert_null(password_scheme_of("{NOPE}x"));
    assert_null(password_scheme_of("plaintext"));
    assert_null(password_scheme_of("*"));
    assert_null(password_scheme_of(""));
    assert_true(password_scheme_weak("{PLAIN}x"));
    assert_true(password_scheme_weak("{CLEARTEXT}x"));
    assert_true(password_scheme_weak("{MD5-CRYPT}$1$a$b"));
    assert_true(password_scheme_weak("$1$a$b"));
    assert_true(password_scheme_weak("{SHA256.HEX}ab"));
    assert_true(password_scheme_weak("{SSHA}x"));
    assert_true(password_scheme_weak("{NOPE}x"));          /* nothing we can vouch for */
    assert_true(password_scheme_weak("plaintext"));
    assert_false(password_scheme_weak("{SHA512-CRYPT}$6$a$b"));
    assert_false(password_scheme_weak("{ARGON2I}$argon2i$x"));
    assert_false(password_scheme_weak("{SSHA512}x"));
    assert_false(password_scheme_weak("*"));               /* no password set */
    assert_false(password_scheme_weak(""));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(doveadm_vectors),
        cmocka_unit_test(doveadm_encodings),
        cmocka_unit_test(bare_values_and_default_scheme),
        cmocka_unit_test(openssl_vectors),
        cmocka_unit_test(ours_verified_by_doveadm),
        cmocka_unit_test(refusals),
        cmocka_unit_test(malformed_stored_values),
        cmocka_unit_test(scheme_of_and_weak),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
