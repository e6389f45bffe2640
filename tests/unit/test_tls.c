/*
 * test_tls - lib/tls.c: the protocol setting (Postfix 3.6 syntax, exclusions,
 * holes, errors), loading RSA and ECDSA chains (missing files, a key that
 * does not match, two chains of one type), a real handshake in memory with
 * the negotiated protocol limits, resumption with a ticket, and the wording
 * of tls_describe().
 */
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "strbuf.h"
#include "tls.h"

static char dir[] = "/tmp/test_tls.XXXXXX";
static char rsa_cert[256], rsa_key[256], ec_cert[256], ec_key[256], rsa2_key[256], junk[256];

/* write_pair - a self-signed certificate and its key as PEM files */
static void write_pair(EVP_PKEY *pk, const char *cert_path, const char *key_path)
{
    X509   *x = X509_new();
    FILE   *f;

    assert_non_null(x);
    ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
    X509_gmtime_adj(X509_getm_notBefore(x), 0);
    X509_gmtime_adj(X509_getm_notAfter(x), 86400);
    X509_set_pubkey(x, pk);
    X509_NAME_add_entry_by_txt(X509_get_subject_name(x), "CN", MBSTRING_ASC,
                               (const unsigned char *) "mx.example.test", -1, -1, 0);
    X509_set_issuer_name(x, X509_get_subject_name(x));
    assert_true(X509_sign(x, pk, EVP_sha256()) > 0);
    if (cert_path) {
        assert_non_null(f = fopen(cert_path, "w"));
        PEM_write_X509(f, x);
        fclose(f);
    }
    assert_non_null(f = fopen(key_path, "w"));
    PEM_write_PrivateKey(f, pk, NULL, NULL, 0, NULL, NULL);
    fclose(f);
    X509_free(x);
}

/* setup - RSA and ECDSA pairs, a second RSA key, and a file that is no PEM */
static int setup(void **state)
{
    EVP_PKEY *rsa, *rsa2, *ec;
    FILE   *f;

    (void) state;
    if (mkdtemp(dir) == NULL)
        return -1;
    snprintf(rsa_cert, sizeof(rsa_cert), "%s/rsa.crt", dir);
    snprintf(rsa_key, sizeof(rsa_key), "%s/rsa.key", dir);
    snprintf(rsa2_key, sizeof(rsa2_key), "%s/rsa2.key", dir);
    snprintf(ec_cert, sizeof(ec_cert), "%s/ec.crt", dir);
    snprintf(ec_key, sizeof(ec_key), "%s/ec.key", dir);
    snprintf(junk, sizeof(junk), "%s/junk.pem", dir);
    rsa = EVP_RSA_gen(2048);
    rsa2 = EVP_RSA_gen(2048);
    ec = EVP_EC_gen("P-256");
    if (rsa == NULL || rsa2 == NULL || ec == NULL)
        return -1;
    write_pair(rsa, rsa_cert, rsa_key);
    write_pair(rsa2, NULL, rsa2_key);
    write_pair(ec, ec_cert, ec_key);
    EVP_PKEY_free(rsa);
    EVP_PKEY_free(rsa2);
    EVP_PKEY_free(ec);
    if ((f = fopen(junk, "w")) == NULL)
        return -1;
    fputs("not a certificate\n", f);
    fclose(f);
    return 0;
}

/* teardown - remove the files */
static int teardown(void **state)
{
    const char *files[] = {rsa_cert, rsa_key, rsa2_key, ec_cert, ec_key, junk};

    (void) state;
    for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++)
        unlink(files[i]);
    rmdir(dir);
    return 0;
}

/* protocols_ok - parse spec and compare the outcome */
static void protocols_ok(const char *spec, int want_min, int want_max, long want_no)
{
    struct strbuf err = STRBUF_INIT;
    int     min = 0, max = 0;
    long    no = -1;

    if (tls_parse_protocols(spec, &min, &max, &no, &err) != 0)
        fail_msg("'%s': unexpected error '%s'", spec ? spec : "(null)", sb_str(&err));
    assert_int_equal(min, want_min);
    assert_int_equal(max, want_max);
    assert_int_equal(no, want_no);
    sb_free(&err);
}

/* protocols_bad - parse spec must fail with what in the message */
static void protocols_bad(const char *spec, const char *what)
{
    struct strbuf err = STRBUF_INIT;
    int     min, max;
    long    no;

    assert_int_equal(tls_parse_protocols(spec, &min, &max, &no, &err), -1);
    if (strstr(sb_str(&err), what) == NULL)
        fail_msg("'%s': error '%s' lacks '%s'", spec, sb_str(&err), what);
    sb_free(&err);
}

static void test_protocols(void **state)
{
    (void) state;
    protocols_ok(NULL, TLS1_2_VERSION, TLS1_3_VERSION, 0);
    protocols_ok("", TLS1_2_VERSION, TLS1_3_VERSION, 0);
    protocols_ok(">=TLSv1.2", TLS1_2_VERSION, TLS1_3_VERSION, 0);
    protocols_ok(">=TLSv1.3", TLS1_3_VERSION, TLS1_3_VERSION, 0);
    protocols_ok(">=TLSv1, <=TLSv1.2", TLS1_VERSION, TLS1_2_VERSION, 0);
    protocols_ok("!SSLv2, !SSLv3, !TLSv1, !TLSv1.1", TLS1_2_VERSION, TLS1_3_VERSION, 0);
    protocols_ok("TLSv1.2:TLSv1.3", TLS1_2_VERSION, TLS1_3_VERSION, 0);
    /* a hole in the middle becomes an SSL_OP_NO_ option */
    protocols_ok("!SSLv3 !TLSv1.1", TLS1_VERSION, TLS1_3_VERSION, SSL_OP_NO_TLSv1_1);
    protocols_ok("tlsv1.3", TLS1_3_VERSION, TLS1_3_VERSION, 0);
    protocols_bad("TLSv1.4", "unknown TLS protocol \"TLSv1.4\"");
    protocols_bad(">=TLSv9", "unknown TLS protocol");
    protocols_bad(">=TLSv1.3, <=TLSv1.2", "leaves no TLS protocol");
    protocols_bad("!SSLv3 !TLSv1 !TLSv1.1 !TLSv1.2 !TLSv1.3", "leaves no TLS protocol");
    protocols_bad("TLSv1.2222222222222222222222222222222222", "too long");
}

/* create - tls_server_create with the given files */
static struct tls_server *create(const char *cert, const char *key, const char *eccert,
                                 const char *eckey, const char *protocols, struct strbuf *err)
{
    struct tls_server_config c;

    memset(&c, 0, sizeof(c));
    c.cert_file = cert;
    c.key_file = key;
    c.eccert_file = eccert;
    c.eckey_file = eckey;
    c.protocols = protocols;
    c.session_id_context = "test";
    sb_reset(err);
    return tls_server_create(&c, err);
}

static void test_load_errors(void **state)
{
    struct strbuf err = STRBUF_INIT;
    struct tls_server *ts;
    char    missing[300];

    (void) state;
    snprintf(missing, sizeof(missing), "%s/missing.pem", dir);
    assert_null(create("", "", "", "", NULL, &err));
    assert_non_null(strstr(sb_str(&err), "no certificate file"));
    assert_null(create(missing, rsa_key, NULL, NULL, NULL, &err));
    assert_non_null(strstr(sb_str(&err), missing));
    assert_non_null(strstr(sb_str(&err), "cannot load the certificate chain"));
    assert_null(create(junk, rsa_key, NULL, NULL, NULL, &err));
    assert_non_null(strstr(sb_str(&err), junk));
    assert_null(create(rsa_cert, junk, NULL, NULL, NULL, &err));
    assert_non_null(strstr(sb_str(&err), "cannot load the private key"));
    assert_null(create(rsa_cert, rsa2_key, NULL, NULL, NULL, &err));
    assert_non_null(strstr(sb_str(&err), "does not match"));
    assert_null(create(rsa_cert, rsa_key, rsa_cert, rsa_key, NULL, &err));
    assert_non_null(strstr(sb_str(&err), "same key type"));
    assert_null(create(rsa_cert, rsa_key, NULL, NULL, "TLSv2", &err));
    assert_non_null(strstr(sb_str(&err), "unknown TLS protocol"));
    /* good ones: RSA alone, ECDSA alone, both */
    ts = create(rsa_cert, rsa_key, NULL, NULL, NULL, &err);
    assert_non_null(ts);
    tls_server_free(ts);
    ts = create("", "", ec_cert, ec_key, NULL, &err);
    assert_non_null(ts);
    tls_server_free(ts);
    ts = create(rsa_cert, rsa_key, ec_cert, ec_key, NULL, &err);
    assert_non_null(ts);
    tls_server_free(ts);
    sb_free(&err);
}

/* pump - run client and server handshakes over a BIO pair until both are done or fail */
static int handshake(SSL *client, SSL *server)
{
    bool    cdone = false, sdone = false;

    for (int i = 0; i < 100 && !(cdone && sdone); i++) {
        int     rc, rs;

        if (!cdone) {
            rc = SSL_do_handshake(client);
            if (rc == 1)
                cdone = true;
            else if (SSL_get_error(client, rc) != SSL_ERROR_WANT_READ)
                return -1;
        }
        if (!sdone) {
            rs = SSL_do_handshake(server);
            if (rs == 1)
                sdone = true;
            else if (SSL_get_error(server, rs) != SSL_ERROR_WANT_READ)
                return -1;
        }
    }
    return cdone && sdone ? 0 : -1;
}

/* connect_pair - a client SSL from cctx and a server SSL from ts joined in memory */
static int connect_pair(SSL_CTX *cctx, struct tls_server *ts, SSL_SESSION *sess,
                        SSL **cp, SSL **sp)
{
    SSL    *c = SSL_new(cctx);
    SSL    *s = tls_server_ssl(ts);
    BIO    *cb, *sb;

    assert_non_null(c);
    assert_non_null(s);
    assert_true(BIO_new_bio_pair(&cb, 0, &sb, 0) == 1);
    SSL_set_bio(c, cb, cb);
    SSL_set_bio(s, sb, sb);
    SSL_set_connect_state(c);
    if (sess)
        SSL_set_session(c, sess);
    *cp = c;
    *sp = s;
    return handshake(c, s);
}

/* exchange_data - after TLS 1.3 the tickets arrive with the first data */
static void exchange_data(SSL *c, SSL *s)
{
    char    buf[16];

    assert_int_equal(SSL_write(s, "220 hi\r\n", 8), 8);
    assert_int_equal(SSL_read(c, buf, sizeof(buf)), 8);
    assert_memory_equal(buf, "220 hi\r\n", 8);
}

static void test_handshake_and_describe(void **state)
{
    struct strbuf err = STRBUF_INIT;
    struct strbuf main_ = STRBUF_INIT;
    struct strbuf details = STRBUF_INIT;
    struct tls_server *ts = create(rsa_cert, rsa_key, ec_cert, ec_key, NULL, &err);
    SSL_CTX *cctx = SSL_CTX_new(TLS_client_method());
    SSL    *c, *s;
    SSL_SESSION *sess;

    (void) state;
    assert_non_null(ts);
    assert_non_null(cctx);
    SSL_CTX_set_session_cache_mode(cctx, SSL_SESS_CACHE_CLIENT);

    /* TLS 1.3 with the default groups: X25519, and RSA-PSS or ECDSA as signature */
    assert_int_equal(connect_pair(cctx, ts, NULL, &c, &s), 0);
    exchange_data(c, s);
    tls_describe(s, &main_, &details);
    assert_non_null(strstr(sb_str(&main_), "TLSv1.3 with cipher TLS_"));
    assert_non_null(strstr(sb_str(&main_), "bits)"));
    assert_non_null(strstr(sb_str(&details), "key-exchange X25519 server-signature "));
    assert_non_null(strstr(sb_str(&details), "server-digest SHA"));
    sess = SSL_get1_session(c);
    assert_non_null(sess);
    /* Freed without close_notify, OpenSSL would mark the session not resumable. */
    SSL_shutdown(c);
    SSL_shutdown(s);
    SSL_free(c);
    SSL_free(s);

    /* resumption with the ticket: no signature to describe */
    assert_int_equal(connect_pair(cctx, ts, sess, &c, &s), 0);
    assert_true(SSL_session_reused(s));
    sb_reset(&main_);
    sb_reset(&details);
    tls_describe(s, &main_, &details);
    assert_null(strstr(sb_str(&details), "server-signature"));
    SSL_free(c);
    SSL_free(s);
    SSL_SESSION_free(sess);

    /* TLS 1.2 with ECDSA only and P-256: the group still shows */
    assert_true(SSL_CTX_set_max_proto_version(cctx, TLS1_2_VERSION) == 1);
    assert_true(SSL_CTX_set1_groups_list(cctx, "P-256") == 1);
    assert_true(SSL_CTX_set_cipher_list(cctx, "ECDHE-ECDSA-AES128-GCM-SHA256") == 1);
    assert_int_equal(connect_pair(cctx, ts, NULL, &c, &s), 0);
    sb_reset(&main_);
    sb_reset(&details);
    tls_describe(s, &main_, &details);
    assert_string_equal(sb_str(&main_),
                        "TLSv1.2 with cipher ECDHE-ECDSA-AES128-GCM-SHA256 (128/128 bits)");
    assert_string_equal(sb_str(&details), "key-exchange ECDHE (prime256v1) "
                        "server-signature ECDSA (prime256v1) server-digest SHA256");
    SSL_free(c);
    SSL_free(s);

    /* a client limited to TLS 1.1 is refused by the default ">=TLSv1.2" */
    assert_true(SSL_CTX_set_min_proto_version(cctx, TLS1_VERSION) == 1);
    assert_true(SSL_CTX_set_max_proto_version(cctx, TLS1_1_VERSION) == 1);
    SSL_CTX_set_security_level(cctx, 0);
    assert_int_equal(connect_pair(cctx, ts, NULL, &c, &s), -1);
    SSL_free(c);
    SSL_free(s);
    ERR_clear_error();

    SSL_CTX_free(cctx);
    tls_server_free(ts);
    sb_free(&err);
    sb_free(&main_);
    sb_free(&details);
}

static void test_only_tls13(void **state)
{
    struct strbuf err = STRBUF_INIT;
    struct tls_server *ts = create(rsa_cert, rsa_key, NULL, NULL, ">=TLSv1.3", &err);
    SSL_CTX *cctx = SSL_CTX_new(TLS_client_method());
    SSL    *c, *s;

    (void) state;
    assert_non_null(ts);
    assert_true(SSL_CTX_set_max_proto_version(cctx, TLS1_2_VERSION) == 1);
    assert_int_equal(connect_pair(cctx, ts, NULL, &c, &s), -1);
    SSL_free(c);
    SSL_free(s);
    ERR_clear_error();
    /* tls_errors says something and empties the queue */
    ERR_put_error(ERR_LIB_SSL, 0, SSL_R_UNSUPPORTED_PROTOCOL, __FILE__, __LINE__);
    tls_errors(&err);
    assert_non_null(strstr(sb_str(&err), "unsupported protocol"));
    assert_int_equal(ERR_peek_error(), 0);
    sb_reset(&err);
    tls_errors(&err);
    assert_string_equal(sb_str(&err), "no reason given by the TLS library");
    SSL_CTX_free(cctx);
    tls_server_free(ts);
    sb_free(&err);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_protocols),
        cmocka_unit_test(test_load_errors),
        cmocka_unit_test(test_handshake_and_describe),
        cmocka_unit_test(test_only_tls13),
    };

    return cmocka_run_group_tests(tests, setup, teardown);
}
