/*
 * test_auth_proto - lib/auth_proto.c: Dovecot auth protocol lines (both
 * directions), tab escaping, strict base64 (checked against `base64` from
 * coreutils where it matters), PLAIN/LOGIN payloads, line reading limits.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include <event2/buffer.h>

#include "auth_proto.h"
#include "password.h"
#include "strbuf.h"

/* decode_ok - base64 text decodes to exactly want[0..wlen) */
static void decode_ok(const char *b64, const void *want, size_t wlen)
{
    struct strbuf out = STRBUF_INIT;

    assert_int_equal(auth_base64_decode(b64, strlen(b64), &out), 0);
    assert_int_equal(sb_len(&out), wlen);
    assert_memory_equal(sb_str(&out), want, wlen);
    assert_true(auth_base64_valid(b64));
    sb_free(&out);
}

/* decode_bad - base64 text is refused and the output left as it was */
static void decode_bad(const char *b64)
{
    struct strbuf out = STRBUF_INIT;

    sb_puts(&out, "keep");
    assert_int_equal(auth_base64_decode(b64, strlen(b64), &out), -1);
    assert_string_equal(sb_str(&out), "keep");
    assert_false(auth_base64_valid(b64));
    sb_free(&out);
}

static void test_base64_vectors(void **state)
{
    (void) state;
    /* RFC 4648 section 10 */
    decode_ok("", "", 0);
    decode_ok("Zg==", "f", 1);
    decode_ok("Zm8=", "fo", 2);
    decode_ok("Zm9v", "foo", 3);
    decode_ok("Zm9vYg==", "foob", 4);
    decode_ok("Zm9vYmE=", "fooba", 5);
    decode_ok("Zm9vYmFy", "foobar", 6);
    decode_ok("AHRlc3QAdGVzdA==", "\0test\0test", 10);
    decode_ok("+/+/", "\xfb\xff\xbf", 3);
}

static void test_base64_strict(void **state)
{
    (void) state;
    decode_bad("Zg=");                  /* length not a multiple of 4 */
    decode_bad("Zg");
    decode_bad("Z===");
    decode_bad("====");
    decode_bad("Zg==Zg==");             /* padding in the middle */
    decode_bad("Zm9v Yg==");            /* whitespace (OpenSSL would skip it) */
    decode_bad(" Zm9v");
    decode_bad("Zm9v\n");
    decode_bad("Zh==");                 /* non-zero unused bits */
    decode_bad("Zm9=");
    decode_bad("Zm-_");                 /* base64url alphabet */
    decode_bad("*");                    /* SASL cancel is not base64 */
    decode_bad("Zm9\x80");
}

static void test_base64_roundtrip_large(void **state)
{
    struct strbuf enc = STRBUF_INIT, dec = STRBUF_INIT;
    unsigned char data[10000];
    FILE   *p;
    char    cmd[64];
    char    line[20000];

    (void) state;
    for (size_t i = 0; i < sizeof(data); i++)
        data[i] = (unsigned char) (i * 7 + 3);
    auth_base64_encode(&enc, data, sizeof(data));
    assert_int_equal(sb_len(&enc), (sizeof(data) + 2) / 3 * 4);
    assert_int_equal(auth_base64_decode(sb_str(&enc), sb_len(&enc), &dec), 0);
    assert_int_equal(sb_len(&dec), sizeof(data));
    assert_memory_equal(dec.data, data, sizeof(data));

    /* Against coreutils: the same text for a short input across the chunk boundary. */
    sb_reset(&enc);
    auth_base64_encode(&enc, "hello world", 11);
    snprintf(cmd, sizeof(cmd), "printf 'hello world' | base64 -w0");
    p = popen(cmd, "r");
    assert_non_null(p);
    assert_non_null(fgets(line, sizeof(line), p));
    pclose(p);
    assert_string_equal(sb_str(&enc), line);
    sb_reset(&enc);
    auth_base64_encode(&enc, "", 0);
    assert_non_null(enc.data);
    assert_string_equal(sb_str(&enc), "");
    sb_free(&enc);
    sb_free(&dec);
}

static void test_tab_escape(void **state)
{
    struct strbuf out = STRBUF_INIT;
    char    bad1[] = "a\001";
    char    bad2[] = "a\001x";
    char    bad3[] = "\0010";

    (void) state;
    auth_tab_escape(&out, "a\tb\nc\rd\001e");
    assert_string_equal(sb_str(&out), "a\001tb\001nc\001rd\0011e");
    assert_int_equal(auth_tab_unescape(out.data), 0);
    assert_string_equal(out.data, "a\tb\nc\rd\001e");
    assert_int_equal(auth_tab_unescape(bad1), -1);
    assert_int_equal(auth_tab_unescape(bad2), -1);
    assert_int_equal(auth_tab_unescape(bad3), -1);
    sb_free(&out);
}

static void test_plain_decode(void **state)
{
    struct strbuf raw = STRBUF_INIT, err = STRBUF_INIT, b64 = STRBUF_INIT;
    struct auth_plain p;

    (void) state;
    /* without authzid */
    sb_append(&raw, "\0alice@example.test\0pw", 22);
    assert_int_equal(auth_plain_decode(&raw, &p, &err), 0);
    assert_string_equal(p.authzid, "");
    assert_string_equal(p.authcid, "alice@example.test");
    assert_string_equal(p.password, "pw");

    /* with authzid, empty password */
    sb_reset(&raw);
    sb_append(&raw, "admin\0alice\0", 12);
    assert_int_equal(auth_plain_decode(&raw, &p, &err), 0);
    assert_string_equal(p.authzid, "admin");
    assert_string_equal(p.authcid, "alice");
    assert_string_equal(p.password, "");

    /* encode -> base64 -> decode round trip, compared with a known encoding */
    auth_plain_encode(&b64, "", "test", "test");
    assert_string_equal(sb_str(&b64), "AHRlc3QAdGVzdA==");

    /* errors */
    sb_reset(&raw);
    sb_append(&raw, "alice\0pw", 8);    /* one NUL */
    assert_int_equal(auth_plain_decode(&raw, &p, &err), -1);
    assert_non_null(strstr(sb_str(&err), "authcid"));
    sb_reset(&raw);
    sb_append(&raw, "\0alice\0pw\0x", 11);      /* a NUL inside the password */
    sb_reset(&err);
    assert_int_equal(auth_plain_decode(&raw, &p, &err), -1);
    assert_non_null(strstr(sb_str(&err), "more than two"));
    sb_reset(&raw);
    sb_append(&raw, "\0\0pw", 4);       /* empty authcid */
    sb_reset(&err);
    assert_int_equal(auth_plain_decode(&raw, &p, &err), -1);
    sb_reset(&raw);
    sb_reset(&err);
    assert_int_equal(auth_plain_decode(&raw, &p, &err), -1);     /* empty */

    /* overlong user and password */
    sb_reset(&raw);
    sb_putc(&raw, '\0');
    for (int i = 0; i < AUTH_PROTO_MAX_USER + 1; i++)
        sb_putc(&raw, 'u');
    sb_append(&raw, "\0pw", 3);
    assert_int_equal(auth_plain_decode(&raw, &p, &err), -1);
    sb_reset(&raw);
    sb_append(&raw, "\0u\0", 3);
    for (int i = 0; i < PASSWORD_MAX + 1; i++)
        sb_putc(&raw, 'p');
    assert_int_equal(auth_plain_decode(&raw, &p, &err), -1);
    sb_free(&raw);
    sb_free(&err);
    sb_free(&b64);
}

static void test_login_value(void **state)
{
    struct strbuf raw = STRBUF_INIT, err = STRBUF_INIT;

    (void) state;
    sb_puts(&raw, "alice");
    assert_int_equal(auth_login_value(&raw, 10, &err), 0);
    assert_int_equal(auth_login_value(&raw, 4, &err), -1);
    sb_append(&raw, "\0x", 2);
    assert_int_equal(auth_login_value(&raw, 100, &err), -1);
    assert_non_null(strstr(sb_str(&err), "NUL"));
    sb_free(&raw);
    sb_free(&err);
}

static void test_client_line_auth(void **state)
{
    struct auth_client_line l;
    struct strbuf err = STRBUF_INIT;
    char    line[] = "AUTH\t7\tPLAIN\tservice=smtp\tnologin\tlip=127.0.0.1\trip=192.0.2.1"
        "\tsecured\tlport=25\tresp=AHRlc3QAdGVzdA==";
    char    noresp[] = "AUTH\t1\tLOGIN\tservice=imap\tresp=";
    char    escaped[] = "AUTH\t2\tPLAIN\tservice=sm\001ttp\tsecured=tls";

    (void) state;
    assert_int_equal(auth_client_line_parse(line, &l, &err), 0);
    assert_int_equal(l.type, AUTH_C_AUTH);
    assert_int_equal(l.id, 7);
    assert_string_equal(l.mech, "PLAIN");
    assert_string_equal(l.service, "smtp");
    assert_true(l.nologin);
    assert_true(l.secured);
    assert_string_equal(l.lip, "127.0.0.1");
    assert_string_equal(l.rip, "192.0.2.1");
    assert_string_equal(l.resp, "AHRlc3QAdGVzdA==");

    assert_int_equal(auth_client_line_parse(noresp, &l, &err), 0);
    assert_string_equal(l.resp, "");
    assert_null(l.rip);
    assert_false(l.secured);

    assert_int_equal(auth_client_line_parse(escaped, &l, &err), 0);
    assert_string_equal(l.service, "sm\ttp");
    assert_true(l.secured);
    sb_free(&err);
}

/* client_bad - line is refused with a message containing want */
static void client_bad(const char *text, const char *want)
{
    struct auth_client_line l;
    struct strbuf err = STRBUF_INIT;
    char   *copy = strdup(text);

    assert_int_equal(auth_client_line_parse(copy, &l, &err), -1);
    if (strstr(sb_str(&err), want) == NULL)
        fail_msg("\"%s\": error \"%s\" lacks \"%s\"", text, sb_str(&err), want);
    free(copy);
    sb_free(&err);
}

static void test_client_line_errors(void **state)
{
    char    big[AUTH_PROTO_MAX_LINE + 10];
    struct strbuf many = STRBUF_INIT;

    (void) state;
    client_bad("AUTH\t0\tPLAIN\tservice=smtp", "id");
    client_bad("AUTH\t-1\tPLAIN\tservice=smtp", "id");
    client_bad("AUTH\t4294967296\tPLAIN\tservice=smtp", "id");
    client_bad("AUTH\t1x\tPLAIN\tservice=smtp", "id");
    client_bad("AUTH\t\tPLAIN\tservice=smtp", "id");
    client_bad("AUTH\t1", "malformed");
    client_bad("AUTH\t1\tPL AIN\tservice=smtp", "mechanism");
    client_bad("AUTH\t1\tPLAIN", "service");
    client_bad("AUTH\t1\tPLAIN\tservice=", "service");
    client_bad("AUTH\t1\tPLAIN\tservice=smtp\trip=\001z", "escape");
    client_bad("VERSION\t1", "malformed");
    client_bad("VERSION\tx\t2", "malformed");
    client_bad("CPID", "malformed");
    client_bad("CPID\t12a", "malformed");
    client_bad("CONT", "malformed");
    client_bad("CONT\t0\tAA==", "id");
    client_bad("BOGUS\t1", "unknown command: \"BOGUS\"");
    client_bad("", "unknown command");
    client_bad("\x01\x02", "unknown command: \"??\"");

    memset(big, 'A', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    memcpy(big, "CONT\t1\t", 7);
    client_bad(big, "too long");

    sb_puts(&many, "AUTH\t1\tPLAIN\tservice=smtp");
    for (int i = 0; i < 70; i++)
        sb_puts(&many, "\tx");
    client_bad(sb_str(&many), "too many fields");
    sb_free(&many);
}

static void test_client_line_other(void **state)
{
    struct auth_client_line l;
    struct strbuf err = STRBUF_INIT;
    char    v[] = "VERSION\t1\t2";
    char    c[] = "CPID\t4242";
    char    cont[] = "CONT\t3\tdGVzdA==";
    char    empty[] = "CONT\t3";

    (void) state;
    assert_int_equal(auth_client_line_parse(v, &l, &err), 0);
    assert_int_equal(l.type, AUTH_C_VERSION);
    assert_int_equal(l.major, 1);
    assert_int_equal(l.minor, 2);
    assert_int_equal(auth_client_line_parse(c, &l, &err), 0);
    assert_int_equal(l.type, AUTH_C_CPID);
    assert_int_equal(l.pid, 4242);
    assert_int_equal(auth_client_line_parse(cont, &l, &err), 0);
    assert_int_equal(l.type, AUTH_C_CONT);
    assert_int_equal(l.id, 3);
    assert_string_equal(l.data, "dGVzdA==");
    assert_int_equal(auth_client_line_parse(empty, &l, &err), 0);
    assert_string_equal(l.data, "");
    sb_free(&err);
}

static void test_server_formatting(void **state)
{
    struct strbuf out = STRBUF_INIT;
    static const char *const mechs[] = {"PLAIN", "LOGIN", NULL};

    (void) state;
    auth_server_handshake(&out, mechs, 123, 4, "0123456789abcdef0123456789abcdef");
    assert_string_equal(sb_str(&out), "VERSION\t1\t2\nMECH\tPLAIN\tplaintext\nMECH\tLOGIN\tplaintext\n"
                        "SPID\t123\nCUID\t4\nCOOKIE\t0123456789abcdef0123456789abcdef\nDONE\n");
    sb_reset(&out);
    auth_server_ok(&out, 5, "alice@example.test");
    assert_string_equal(sb_str(&out), "OK\t5\tuser=alice@example.test\n");
    sb_reset(&out);
    auth_server_fail(&out, 6, "ev\til", true, "go\naway");
    assert_string_equal(sb_str(&out), "FAIL\t6\tuser=ev\001til\ttemp\treason=go\001naway\n");
    sb_reset(&out);
    auth_server_fail(&out, 7, NULL, false, NULL);
    assert_string_equal(sb_str(&out), "FAIL\t7\n");
    sb_reset(&out);
    auth_server_cont(&out, 8, "Username:", 9);
    assert_string_equal(sb_str(&out), "CONT\t8\tVXNlcm5hbWU6\n");
    sb_reset(&out);
    auth_server_cont(&out, 9, "", 0);
    assert_string_equal(sb_str(&out), "CONT\t9\t\n");
    sb_free(&out);
}

static void test_client_formatting(void **state)
{
    struct strbuf out = STRBUF_INIT, err = STRBUF_INIT;
    struct auth_client_req req = {"PLAIN", "smtp", true, "127.0.0.1", "192.0.2.9",
        "AHRlc3QAdGVzdA=="};

    (void) state;
    auth_client_hello(&out, 99);
    assert_string_equal(sb_str(&out), "VERSION\t1\t2\nCPID\t99\n");
    sb_reset(&out);
    assert_int_equal(auth_client_request(&out, 1, &req, &err), 0);
    assert_string_equal(sb_str(&out), "AUTH\t1\tPLAIN\tservice=smtp\tsecured\tlip=127.0.0.1"
                        "\trip=192.0.2.9\tresp=AHRlc3QAdGVzdA==\n");
    sb_reset(&out);
    req.resp = "";
    req.secured = false;
    req.lip = req.rip = NULL;
    assert_int_equal(auth_client_request(&out, 2, &req, &err), 0);
    assert_string_equal(sb_str(&out), "AUTH\t2\tPLAIN\tservice=smtp\tresp=\n");
    sb_reset(&out);
    req.resp = "not base64!";
    assert_int_equal(auth_client_request(&out, 3, &req, &err), -1);
    req.resp = NULL;
    assert_int_equal(auth_client_request(&out, 0, &req, &err), -1);
    req.mech = "PL\tAIN";
    assert_int_equal(auth_client_request(&out, 3, &req, &err), -1);
    assert_int_equal(sb_len(&out), 0);
    assert_int_equal(auth_client_cont(&out, 3, "dGVzdA==", &err), 0);
    assert_string_equal(sb_str(&out), "CONT\t3\tdGVzdA==\n");
    assert_int_equal(auth_client_cont(&out, 3, "*", &err), -1);
    sb_free(&out);
    sb_free(&err);
}

static void test_server_line_parse(void **state)
{
    struct auth_server_line l;
    struct strbuf err = STRBUF_INIT;
    char    v[] = "VERSION\t1\t2";
    char    m[] = "MECH\tPLAIN\tplaintext";
    char    ma[] = "MECH\tANONYMOUS\tanonymous";
    char    sp[] = "SPID\t42";
    char    cu[] = "CUID\t7";
    char    co[] = "COOKIE\tabc";
    char    done[] = "DONE";
    char    ok[] = "OK\t5\tuser=alice@example.test";
    char    fail[] = "FAIL\t6\tuser=bob\ttemp\treason=try\001tlater";
    char    cont[] = "CONT\t8\tVXNlcm5hbWU6";
    char    cont_empty[] = "CONT\t9\t";
    char    unknown[] = "NEWTHING\tx";

    (void) state;
    assert_int_equal(auth_server_line_parse(v, &l, &err), 0);
    assert_int_equal(l.type, AUTH_S_VERSION);
    assert_int_equal(l.major, 1);
    assert_int_equal(auth_server_line_parse(m, &l, &err), 0);
    assert_int_equal(l.type, AUTH_S_MECH);
    assert_string_equal(l.mech, "PLAIN");
    assert_true(l.mech_plaintext);
    assert_false(l.mech_anonymous);
    assert_int_equal(auth_server_line_parse(ma, &l, &err), 0);
    assert_true(l.mech_anonymous);
    assert_int_equal(auth_server_line_parse(sp, &l, &err), 0);
    assert_int_equal(l.type, AUTH_S_SPID);
    assert_string_equal(l.arg, "42");
    assert_int_equal(auth_server_line_parse(cu, &l, &err), 0);
    assert_int_equal(l.type, AUTH_S_CUID);
    assert_int_equal(auth_server_line_parse(co, &l, &err), 0);
    assert_int_equal(l.type, AUTH_S_COOKIE);
    assert_int_equal(auth_server_line_parse(done, &l, &err), 0);
    assert_int_equal(l.type, AUTH_S_DONE);
    assert_int_equal(auth_server_line_parse(ok, &l, &err), 0);
    assert_int_equal(l.type, AUTH_S_OK);
    assert_int_equal(l.id, 5);
    assert_string_equal(l.user, "alice@example.test");
    assert_int_equal(auth_server_line_parse(fail, &l, &err), 0);
    assert_int_equal(l.type, AUTH_S_FAIL);
    assert_int_equal(l.id, 6);
    assert_true(l.temp);
    assert_string_equal(l.user, "bob");
    assert_string_equal(l.reason, "try\tlater");
    assert_int_equal(auth_server_line_parse(cont, &l, &err), 0);
    assert_int_equal(l.type, AUTH_S_CONT);
    assert_string_equal(l.data, "VXNlcm5hbWU6");
    assert_int_equal(auth_server_line_parse(cont_empty, &l, &err), 0);
    assert_string_equal(l.data, "");
    assert_int_equal(auth_server_line_parse(unknown, &l, &err), 0);
    assert_int_equal(l.type, AUTH_S_UNKNOWN);

    assert_true(auth_server_mech_offered("PLAIN LOGIN", "login"));
    assert_true(auth_server_mech_offered("PLAIN  LOGIN", "PLAIN"));
    assert_false(auth_server_mech_offered("PLAIN LOGIN", "PLAI"));
    assert_false(auth_server_mech_offered("", "PLAIN"));
    sb_free(&err);
}

/* server_bad - a server line is refused */
static void server_bad(const char *text)
{
    struct auth_server_line l;
    struct strbuf err = STRBUF_INIT;
    char   *copy = strdup(text);

    if (auth_server_line_parse(copy, &l, &err) != -1)
        fail_msg("accepted \"%s\"", text);
    assert_true(sb_len(&err) > 0);
    free(copy);
    sb_free(&err);
}

static void test_server_line_errors(void **state)
{
    (void) state;
    server_bad("OK\t5");                /* no user */
    server_bad("OK\t5\tuser=");
    server_bad("OK\tx\tuser=a");
    server_bad("FAIL");
    server_bad("FAIL\t0");
    server_bad("CONT\t1\tnot base64");
    server_bad("CONT\t1\tZg=");
    server_bad("CONT");
    server_bad("MECH");
    server_bad("MECH\tBAD MECH");
    server_bad("VERSION\t1");
    server_bad("SPID");
    server_bad("FAIL\t1\treason=\001");
}

/* A client-chosen user name cannot fake the fields after it in a log line. */
static void test_log_name(void **state)
{
    struct strbuf out = STRBUF_INIT;

    (void) state;
    auth_log_name(&out, "alice@example.test");
    assert_string_equal(sb_str(&out), "alice@example.test");
    sb_reset(&out);
    auth_log_name(&out, "x>, rip=192.0.2.9, service=smtp");
    assert_string_equal(sb_str(&out), "x\\x3e\\x2c\\x20rip=192.0.2.9\\x2c\\x20service=smtp");
    assert_null(strchr(sb_str(&out), '>'));
    assert_null(strchr(sb_str(&out), ' '));
    sb_reset(&out);
    auth_log_name(&out, "a\nb\tc\x7f<\\\xc3\xa9");
    assert_string_equal(sb_str(&out), "a\\x0ab\\x09c\\x7f\\x3c\\x5c\xc3\xa9");
    sb_free(&out);
}

static void test_read_line(void **state)
{
    struct evbuffer *in = evbuffer_new();
    struct strbuf line = STRBUF_INIT;
    char   *big = malloc(AUTH_PROTO_MAX_LINE + 10);

    (void) state;
    evbuffer_add_printf(in, "VERSION\t1\t2\r\nCPID\t1\nAUTH\t1");
    assert_int_equal(auth_proto_read_line(in, &line), 1);
    assert_string_equal(sb_str(&line), "VERSION\t1\t2");
    assert_int_equal(auth_proto_read_line(in, &line), 1);
    assert_string_equal(sb_str(&line), "CPID\t1");
    assert_int_equal(auth_proto_read_line(in, &line), 0);         /* incomplete */
    evbuffer_add_printf(in, "\tPLAIN\n");
    assert_int_equal(auth_proto_read_line(in, &line), 1);
    assert_string_equal(sb_str(&line), "AUTH\t1\tPLAIN");
    assert_int_equal(evbuffer_get_length(in), 0);

    /* exactly the limit is fine, one more byte is not, with or without its newline */
    memset(big, 'a', AUTH_PROTO_MAX_LINE);
    evbuffer_add(in, big, AUTH_PROTO_MAX_LINE);
    evbuffer_add(in, "\n", 1);
    assert_int_equal(auth_proto_read_line(in, &line), 1);
    assert_int_equal(sb_len(&line), AUTH_PROTO_MAX_LINE);
    evbuffer_add(in, big, AUTH_PROTO_MAX_LINE);
    evbuffer_add(in, "b\n", 2);
    assert_int_equal(auth_proto_read_line(in, &line), -1);
    evbuffer_drain(in, evbuffer_get_length(in));
    evbuffer_add(in, big, AUTH_PROTO_MAX_LINE);
    evbuffer_add(in, "bb", 2);          /* no newline yet, but already too long */
    assert_int_equal(auth_proto_read_line(in, &line), -1);
    evbuffer_free(in);
    sb_free(&line);
    free(big);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_base64_vectors),
        cmocka_unit_test(test_base64_strict),
        cmocka_unit_test(test_base64_roundtrip_large),
        cmocka_unit_test(test_tab_escape),
        cmocka_unit_test(test_plain_decode),
        cmocka_unit_test(test_login_value),
        cmocka_unit_test(test_client_line_auth),
        cmocka_unit_test(test_client_line_errors),
        cmocka_unit_test(test_client_line_other),
        cmocka_unit_test(test_server_formatting),
        cmocka_unit_test(test_client_formatting),
        cmocka_unit_test(test_server_line_parse),
        cmocka_unit_test(test_server_line_errors),
        cmocka_unit_test(test_read_line),
        cmocka_unit_test(test_log_name),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
