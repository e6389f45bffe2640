/*
 * test_master_cf - lib/master_cf.c: fields, defaults, inet/unix names, ports,
 * continuation lines with -o, and every error with its line number.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "strbuf.h"
#include "config.h"
#include "master_cf.h"

static char tmpdir[64];
static char mcf_path[128];
static struct config *cfg;

/* setup - a directory with a main.cf that changes one default */
static int setup(void **state)
{
    char    path[128];
    FILE   *fp;
    struct strbuf err = STRBUF_INIT;

    (void) state;
    snprintf(tmpdir, sizeof(tmpdir), "/tmp/test_master_cf.XXXXXX");
    if (mkdtemp(tmpdir) == NULL)
        return -1;
    snprintf(path, sizeof(path), "%s/main.cf", tmpdir);
    snprintf(mcf_path, sizeof(mcf_path), "%s/master.cf", tmpdir);
    if ((fp = fopen(path, "w")) == NULL)
        return -1;
    fputs("default_process_limit = 4\nmua_restrictions = permit_sasl_authenticated, reject\n", fp);
    fclose(fp);
    cfg = config_load(tmpdir, &err);
    sb_free(&err);
    return cfg ? 0 : -1;
}

/* teardown - remove the files */
static int teardown(void **state)
{
    char    path[128];

    (void) state;
    config_free(cfg);
    snprintf(path, sizeof(path), "%s/main.cf", tmpdir);
    unlink(path);
    unlink(mcf_path);
    return rmdir(tmpdir);
}

/* load - write master.cf and parse it */
static int load(const char *text, struct master_cf *mcf, struct strbuf *err)
{
    FILE   *fp = fopen(mcf_path, "w");

    assert_non_null(fp);
    fputs(text, fp);
    assert_int_equal(fclose(fp), 0);
    sb_reset(err);
    return master_cf_load(mcf_path, cfg, mcf, err);
}

/* expect_error - parsing fails with "master.cf:LINE: " and the text */
static void expect_error(const char *text, int line, const char *want)
{
    struct master_cf mcf;
    struct strbuf err = STRBUF_INIT;
    char    where[32];

    if (load(text, &mcf, &err) == 0)
        fail_msg("accepted: %s", text);
    snprintf(where, sizeof(where), "master.cf:%d: ", line);
    if (strstr(sb_str(&err), where) == NULL || strstr(sb_str(&err), want) == NULL)
        fail_msg("error \"%s\" lacks \"%s\" / \"%s\"", sb_str(&err), where, want);
    assert_int_equal(mcf.count, 0);
    assert_null(mcf.services);
    sb_free(&err);
}

static const char good[] =
    "# service type  private unpriv  chroot  wakeup  maxproc command + args\n"
    "smtp      inet  n       -       y       -       -       smtpd\n"
    "\n"
    "submission inet n       -       y       -       2       smtpd\n"
    "  -o syslog_name=postern/submission\n"
    "  # a comment between continuation lines\n"
    "  -o smtpd_tls_security_level=encrypt -o smtpd_client_restrictions=$mua_restrictions\n"
    "127.0.0.1:2525 inet n   n       n       -       1       smtpd -v\n"
    "[::1]:submissions inet n -      -       -       -       smtpd\n"
    "qmgr      unix  n       -       n       300     1       qmgr\n"
    "pickup    unix  n       -       y       60?     1       pickup\n"
    "cleanup   unix  -       -       -       -       0       cleanup\n"
    "lmtp      inet  -       -       -       -       -       lmtpd\n";

static void test_good_file(void **state)
{
    struct master_cf mcf;
    struct strbuf err = STRBUF_INIT;
    const struct master_service *s;

    (void) state;
    if (load(good, &mcf, &err) != 0)
        fail_msg("%s", sb_str(&err));
    assert_int_equal(mcf.count, 8);
    assert_string_equal(mcf.path, mcf_path);

    assert_non_null(s = master_cf_find(&mcf, "smtp"));
    assert_int_equal(s->type, MASTER_INET);
    assert_null(s->host);
    assert_string_equal(s->port, "25");
    assert_null(s->socket_path);
    assert_false(s->private_);
    assert_true(s->unpriv);
    assert_true(s->chroot);
    assert_int_equal(s->wakeup, 0);
    assert_int_equal(s->maxproc, 4);            /* $default_process_limit */
    assert_string_equal(s->command, "smtpd");
    assert_int_equal(s->nargs, 0);
    assert_null(s->args[0]);
    assert_int_equal(s->line, 2);

    assert_non_null(s = master_cf_find(&mcf, "submission"));
    assert_string_equal(s->port, "587");
    assert_int_equal(s->maxproc, 2);
    assert_int_equal(s->line, 4);
    assert_int_equal(s->nargs, 6);
    assert_string_equal(s->args[0], "-o");
    assert_string_equal(s->args[1], "syslog_name=postern/submission");
    assert_string_equal(s->args[2], "-o");
    assert_string_equal(s->args[3], "smtpd_tls_security_level=encrypt");
    assert_string_equal(s->args[5], "smtpd_client_restrictions=$mua_restrictions");
    assert_null(s->args[6]);

    assert_non_null(s = master_cf_find(&mcf, "127.0.0.1:2525"));
    assert_string_equal(s->host, "127.0.0.1");
    assert_string_equal(s->port, "2525");
    assert_false(s->unpriv);
    assert_false(s->chroot);
    assert_int_equal(s->nargs, 1);
    assert_string_equal(s->args[0], "-v");

    assert_non_null(s = master_cf_find(&mcf, "[::1]:submissions"));
    assert_string_equal(s->host, "::1");
    assert_string_equal(s->port, "465");

    assert_non_null(s = master_cf_find(&mcf, "qmgr"));
    assert_int_equal(s->type, MASTER_UNIX);
    assert_string_equal(s->socket_path, "public/qmgr");    /* private n */
    assert_null(s->port);
    assert_int_equal(s->wakeup, 300);
    assert_false(s->private_);
    assert_int_equal(s->line, 10);

    assert_non_null(s = master_cf_find(&mcf, "pickup"));
    assert_int_equal(s->wakeup, 60);            /* Postfix's '?' is accepted */
    assert_string_equal(s->socket_path, "public/pickup");

    assert_non_null(s = master_cf_find(&mcf, "cleanup"));
    assert_true(s->private_);
    assert_string_equal(s->socket_path, "private/cleanup");
    assert_int_equal(s->maxproc, 0);

    assert_non_null(s = master_cf_find(&mcf, "lmtp"));
    assert_string_equal(s->port, "24");

    assert_null(master_cf_find(&mcf, "nonesuch"));
    master_cf_free(&mcf);
    assert_int_equal(mcf.count, 0);
    sb_free(&err);
}

static void test_ports(void **state)
{
    struct master_cf mcf;
    struct strbuf err = STRBUF_INIT;

    (void) state;
    assert_int_equal(load("smtps inet n - - - - smtpd\n"
                          "imaps inet n - - - - imapd\n"
                          "localhost:imap inet n - - - - imapd\n"
                          "1 inet n - - - - x\n"
                          "65535 inet n - - - - x\n", &mcf, &err), 0);
    assert_string_equal(master_cf_find(&mcf, "smtps")->port, "465");
    assert_string_equal(master_cf_find(&mcf, "imaps")->port, "993");
    assert_string_equal(master_cf_find(&mcf, "localhost:imap")->port, "143");
    assert_string_equal(master_cf_find(&mcf, "localhost:imap")->host, "localhost");
    assert_string_equal(master_cf_find(&mcf, "65535")->port, "65535");
    master_cf_free(&mcf);
    sb_free(&err);
}

static void test_extra_sockets(void **state)
{
    struct master_cf mcf;
    struct strbuf err = STRBUF_INIT;
    const struct master_service *s;

    (void) state;
    assert_int_equal(load("auth,$virtual_mailbox_base/.postern/auth,$data_directory/a/b unix - - y - 1 authd\n"
                          "qmgr unix - - y - 1 qmgr\n", &mcf, &err), 0);
    assert_non_null(s = master_cf_find(&mcf, "auth"));
    assert_string_equal(s->socket_path, "private/auth");
    assert_int_equal(s->nextra_sockets, 2);
    assert_string_equal(s->extra_sockets[0], "$virtual_mailbox_base/.postern/auth");
    assert_string_equal(s->extra_sockets[1], "$data_directory/a/b");
    assert_int_equal(master_cf_find(&mcf, "qmgr")->nextra_sockets, 0);
    master_cf_free(&mcf);
    sb_free(&err);

    /* Nothing may climb out of its directory or name no directory. */
    expect_error("auth,$virtual_mailbox_base/../x unix - - y - 1 authd\n", 1, "bad extra socket");
    expect_error("auth,$virtual_mailbox_base/a/./b unix - - y - 1 authd\n", 1, "bad extra socket");
    expect_error("auth,/tmp/sock unix - - y - 1 authd\n", 1, "bad extra socket");
    expect_error("auth,$/x unix - - y - 1 authd\n", 1, "bad extra socket");
    expect_error("auth,$base unix - - y - 1 authd\n", 1, "bad extra socket");
    expect_error("auth,$base//x unix - - y - 1 authd\n", 1, "bad extra socket");
    expect_error("auth,$base/x/ unix - - y - 1 authd\n", 1, "bad extra socket");
    expect_error("auth,$ba-se/x unix - - y - 1 authd\n", 1, "bad extra socket");
    expect_error("auth, unix - - y - 1 authd\n", 1, "bad extra socket");
}

static void test_errors(void **state)
{
    (void) state;
    expect_error("smtp inet n - y - - smtpd\nx fifo n - - - - pickup\n", 2,
                 "unsupported service type \"fifo\"");
    expect_error("smtp inet n - y - - smtpd\n\nx unix-dgram n - - - - pickup\n", 3,
                 "unsupported service type");
    expect_error("smtp inet x - y - - smtpd\n", 1, "bad private field \"x\"");
    expect_error("smtp inet n yes y - - smtpd\n", 1, "bad unpriv field");
    expect_error("smtp inet n - Y - - smtpd\n", 1, "bad chroot field");
    expect_error("smtp inet n - - abc - smtpd\n", 1, "bad wakeup field");
    expect_error("smtp inet n - - ? - smtpd\n", 1, "bad wakeup field");
    expect_error("smtp inet n - - - -1 smtpd\n", 1, "bad maxproc field");
    expect_error("smtp inet n - - - 99999999999999999999 smtpd\n", 1, "bad maxproc field");
    expect_error("70000 inet n - - - - smtpd\n", 1, "bad port \"70000\"");
    expect_error("0 inet n - - - - smtpd\n", 1, "bad port");
    expect_error("no-such-service-name inet n - - - - smtpd\n", 1, "bad port");
    expect_error("127.0.0.1: inet n - - - - smtpd\n", 1, "bad port");
    expect_error(":25 inet n - - - - smtpd\n", 1, "bad host");
    expect_error("::1:25 inet n - - - - smtpd\n", 1, "must be in brackets");
    expect_error("[::1 inet n - - - - smtpd\n", 1, "missing ']'");
    expect_error("[::1]25 inet n - - - - smtpd\n", 1, "expected ':port'");
    expect_error("# c\nsmtp inet n - - - -\n", 2, "expected at least 8 fields");
    expect_error("smtp inet\n", 1, "found 2");
    expect_error("../evil unix n - - - - qmgr\n", 1, "bad unix service name");
    expect_error("a/b unix n - - - - qmgr\n", 1, "bad unix service name");
    expect_error("qmgr unix n - - - - /bin/sh\n", 1, "bad command");
    expect_error("  smtp inet n - - - - smtpd\n", 1, "remove the leading whitespace");
    expect_error("smtp inet n - y - - smtpd\n"
                 "qmgr unix n - n 300 1 qmgr\n"
                 "smtp inet n - y - - smtpd\n", 3, "duplicate service smtp inet; it is already "
                 "defined at line 1");
    expect_error("smtp inet n - y - - smtpd\n"
                 "25 inet n - y - - smtpd\n", 2, "same address as service smtp at line 1");
}

static void test_option_errors(void **state)
{
    struct master_cf mcf;
    struct strbuf err = STRBUF_INIT;

    (void) state;
    expect_error("smtp inet n - y - - smtpd\n"
                 "submission inet n - y - - smtpd\n"
                 "  -o syslog_name=x\n"
                 "  -o smtpd_timeout=forever\n", 2, "smtpd_timeout");
    expect_error("smtp inet n - y - - smtpd -o\n", 1, "-o must be followed by name=value");
    expect_error("smtp inet n - y - - smtpd -o -v\n", 1, "-o must be followed");
    expect_error("smtp inet n - y - - smtpd -o novalue\n", 1, "expected name=value");
    expect_error("smtp inet n - y - - smtpd -o bad-name=1\n", 1, "bad parameter name");
    expect_error("smtp inet n - y - - smtpd -osyslog_name=x\n", 1, "two words");
    expect_error("smtp inet n - y - - smtpd -o smtpd_banner=$\n", 1, "$$");
    expect_error("smtp inet n - y - - smtpd -o mail_name=$smtpd_banner\n", 1, "loop");

    /* Checking -o leaves the configuration as it was. */
    assert_int_equal(load("smtp inet n - y - - smtpd -o smtpd_timeout=1s -o new_name=1\n",
                          &mcf, &err), 0);
    assert_int_equal(config_time(cfg, "smtpd_timeout"), 300);
    assert_null(config_lookup(cfg, "new_name"));
    master_cf_free(&mcf);

    /* A missing file names its path. */
    unlink(mcf_path);
    assert_int_equal(master_cf_load(mcf_path, cfg, &mcf, &err), -1);
    assert_non_null(strstr(sb_str(&err), mcf_path));
    assert_int_equal(mcf.count, 0);
    sb_free(&err);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_good_file, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ports, setup, teardown),
        cmocka_unit_test_setup_teardown(test_extra_sockets, setup, teardown),
        cmocka_unit_test_setup_teardown(test_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_option_errors, setup, teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
