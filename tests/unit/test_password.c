/*
 * test_password - lib/password.c against hashes made by openssl passwd (not by our code).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "password.h"
#include "strbuf.h"

/* openssl_hash - "openssl passwd -ALG -salt SALT PASSWORD" output into out */
static void openssl_hash(const char *alg, const char *salt, const char *plain, struct strbuf *out)
{
    char    cmd[256];
    char    line[512];
    FILE   *p;

    snprintf(cmd, sizeof(cmd), "openssl passwd -%s -salt '%s' '%s'", alg, salt, plain);
    p = popen(cmd, "r");
    assert_non_null(p);
    assert_non_null(fgets(line, sizeof(line), p));
    pclose(p);
    line[strcspn(line, "\n")] = '\0';
    sb_set(out, line);
}

static void verify_openssl_vectors(void **state)
{
    static const struct {
        const char *alg, *scheme;
    } algs[] = {{"6", "SHA512-CRYPT"}, {"5", "SHA256-CRYPT"}, {"1", "MD5-CRYPT"}};
    struct strbuf hash = STRBUF_INIT, stored = STRBUF_INIT;

    (void) state;
    for (size_t i = 0; i < sizeof(algs) / sizeof(algs[0]); i++) {
        openssl_hash(algs[i].alg, "saltsalt12", "correct horse", &hash);
        sb_reset(&stored);
        sb_printf(&stored, "{%s}%s", algs[i].scheme, hash.data);
        assert_true(password_verify(stored.data, "correct horse"));
        assert_false(password_verify(stored.data, "correct hors"));
        assert_false(password_verify(stored.data, "correct horse "));
        assert_false(password_verify(stored.data, ""));
    }
    sb_free(&hash);
    sb_free(&stored);
}

static void hash_then_verify(void **state)
{
    struct strbuf a = STRBUF_INIT, b = STRBUF_INIT, err = STRBUF_INIT;

    (void) state;
    assert_int_equal(password_hash("SHA512-CRYPT", "s3cret", &a, &err), 0);
    assert_int_equal(strncmp(a.data, "{SHA512-CRYPT}$6$", 17), 0);
    assert_int_equal(password_hash("sha512-crypt", "s3cret", &b, &err), 0);
    assert_string_not_equal(a.data, b.data);            /* fresh salt each time */
    assert_true(password_verify(a.data, "s3cret"));
    assert_true(password_verify(b.data, "s3cret"));
    assert_false(password_verify(a.data, "S3cret"));
    assert_int_equal(password_hash("SHA256-CRYPT", "x", &a, &err), 0);
    assert_true(password_verify(a.data, "x"));
    sb_free(&a), sb_free(&b), sb_free(&err);
}

static void refusals(void **state)
{
    struct strbuf out = STRBUF_INIT, err = STRBUF_INIT;
    char    longpw[PASSWORD_MAX + 2];

    (void) state;
    assert_int_equal(password_hash("MD5-CRYPT", "x", &out, &err), -1);      /* verify only */
    assert_int_equal(password_hash("NOPE", "x", &out, &err), -1);
    assert_int_equal(password_hash("SHA512-CRYPT", "a\nb", &out, &err), -1);
    memset(longpw, 'a', sizeof(longpw) - 1);
    longpw[sizeof(longpw) - 1] = '\0';
    assert_int_equal(password_hash("SHA512-CRYPT", longpw, &out, &err), -1);
    assert_true(password_verify("{PLAIN}abc", "abc"));
    assert_false(password_verify("{PLAIN}abc", "abd"));
    assert_false(password_verify("*", "*"));                                /* no password set */
    assert_false(password_verify("{SHA512-CRYPT}$5$abc$def", "x"));        /* scheme/prefix mismatch */
    assert_false(password_verify("{UNKNOWN}x", "x"));
    assert_false(password_verify("{PLAIN", "x"));
    sb_free(&out), sb_free(&err);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(verify_openssl_vectors),
        cmocka_unit_test(hash_then_verify),
        cmocka_unit_test(refusals),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
