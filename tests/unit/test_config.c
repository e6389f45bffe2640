/*
 * test_config - lib/config.c and lib/config_params.c: main.cf syntax, $name
 * expansion, typed validation with line numbers, warnings, overrides, getters.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "strbuf.h"
#include "config.h"
#include "config_params.h"

static char tmpdir[64];

/* setup - a fresh directory per test */
static int setup(void **state)
{
    (void) state;
    snprintf(tmpdir, sizeof(tmpdir), "/tmp/test_config.XXXXXX");
    return mkdtemp(tmpdir) ? 0 : -1;
}

/* teardown - remove the files tests create */
static int teardown(void **state)
{
    char    path[128];

    (void) state;
    snprintf(path, sizeof(path), "%s/main.cf", tmpdir);
    unlink(path);
    snprintf(path, sizeof(path), "%s/master.cf", tmpdir);
    unlink(path);
    return rmdir(tmpdir);
}

/* write_file - dir/name with the given bytes */
static void write_file(const char *name, const char *text, size_t len)
{
    char    path[128];
    FILE   *fp;

    snprintf(path, sizeof(path), "%s/%s", tmpdir, name);
    assert_non_null(fp = fopen(path, "w"));
    assert_int_equal(fwrite(text, 1, len, fp), len);
    assert_int_equal(fclose(fp), 0);
}

/* load - write main.cf and load it; err gets the message on failure */
static struct config *load(const char *main_cf, struct strbuf *err)
{
    write_file("main.cf", main_cf, strlen(main_cf));
    sb_reset(err);
    return config_load(tmpdir, err);
}

/* load_ok - load and insist it worked */
static struct config *load_ok(const char *main_cf)
{
    struct strbuf err = STRBUF_INIT;
    struct config *cfg = load(main_cf, &err);

    if (cfg == NULL)
        fail_msg("config_load failed: %s", sb_str(&err));
    sb_free(&err);
    return cfg;
}

/* expect_error - loading fails and the message contains each of the texts */
static void expect_error(const char *main_cf, const char *want1, const char *want2)
{
    struct strbuf err = STRBUF_INIT;
    struct config *cfg = load(main_cf, &err);

    if (cfg != NULL)
        fail_msg("config_load accepted: %s", main_cf);
    if (strstr(sb_str(&err), want1) == NULL || (want2 && strstr(sb_str(&err), want2) == NULL))
        fail_msg("error \"%s\" lacks \"%s\" / \"%s\"", sb_str(&err), want1, want2 ? want2 : "");
    sb_free(&err);
}

static void test_parse_helpers(void **state)
{
    long long v;
    bool    b;

    (void) state;
    assert_int_equal(config_parse_time("300", &v), 0);
    assert_int_equal(v, 300);
    assert_int_equal(config_parse_time("300s", &v), 0);
    assert_int_equal(v, 300);
    assert_int_equal(config_parse_time("5m", &v), 0);
    assert_int_equal(v, 300);
    assert_int_equal(config_parse_time("1h", &v), 0);
    assert_int_equal(v, 3600);
    assert_int_equal(config_parse_time("2d", &v), 0);
    assert_int_equal(v, 2 * 86400);
    assert_int_equal(config_parse_time("1w", &v), 0);
    assert_int_equal(v, 7 * 86400);
    assert_int_equal(config_parse_time("", &v), -1);
    assert_int_equal(config_parse_time("-5", &v), -1);
    assert_int_equal(config_parse_time("5x", &v), -1);
    assert_int_equal(config_parse_time("5ss", &v), -1);
    assert_int_equal(config_parse_time("s", &v), -1);
    assert_int_equal(config_parse_time(" 5", &v), -1);
    assert_int_equal(config_parse_time("99999999999999999999", &v), -1);
    assert_int_equal(config_parse_time("9223372036854775807w", &v), -1);

    assert_int_equal(config_parse_size("10240000", &v), 0);
    assert_int_equal(v, 10240000);
    assert_int_equal(config_parse_size("10k", &v), 0);
    assert_int_equal(v, 10240);
    assert_int_equal(config_parse_size("50M", &v), 0);
    assert_int_equal(v, 50LL * 1024 * 1024);
    assert_int_equal(config_parse_size("1G", &v), 0);
    assert_int_equal(v, 1024LL * 1024 * 1024);
    assert_int_equal(config_parse_size("2g", &v), 0);
    assert_int_equal(v, 2048LL * 1024 * 1024);
    assert_int_equal(config_parse_size("-1", &v), -1);
    assert_int_equal(config_parse_size("1T", &v), -1);
    assert_int_equal(config_parse_size("1kb", &v), -1);
    assert_int_equal(config_parse_size("9223372036854775807k", &v), -1);
    assert_int_equal(config_parse_size("9223372036854775807", &v), 0);

    assert_int_equal(config_parse_bool("yes", &b), 0);
    assert_true(b);
    assert_int_equal(config_parse_bool("Off", &b), 0);
    assert_false(b);
    assert_int_equal(config_parse_bool("TRUE", &b), 0);
    assert_true(b);
    assert_int_equal(config_parse_bool("0", &b), 0);
    assert_false(b);
    assert_int_equal(config_parse_bool("yess", &b), -1);
    assert_int_equal(config_parse_bool("", &b), -1);
}

static void test_defaults(void **state)
{
    struct config *cfg = load_ok("");
    char    banner[600];

    (void) state;
    assert_string_equal(config_str(cfg, "queue_directory"), "/var/spool/postern");
    assert_string_equal(config_str(cfg, "auth_directory"), "/var/lib/postern-auth");
    assert_string_equal(config_str(cfg, "auth_passwd_file"), "/var/lib/postern-auth/passwd");   /* $auth_directory expanded */
    assert_string_equal(config_str(cfg, "config_directory"), tmpdir);
    assert_string_equal(config_str(cfg, "maillog_file"), "");
    assert_int_equal(config_int(cfg, "default_process_limit"), 1);
    assert_int_equal(config_int(cfg, "line_length_limit"), 2048);
    assert_int_equal(config_time(cfg, "maximal_queue_lifetime"), 5 * 86400);
    assert_int_equal(config_time(cfg, "smtpd_timeout"), 300);
    assert_int_equal(config_size(cfg, "message_size_limit"), 10240000);
    assert_true(config_bool(cfg, "disable_vrfy_command"));
    assert_false(config_bool(cfg, "smtpd_helo_required"));
    assert_false(config_is_set(cfg, "queue_directory"));
    assert_int_equal(config_line(cfg, "queue_directory"), 0);
    assert_string_equal(config_warnings(cfg), "");

    /* Computed names: a host name with a domain, and $myhostname in other defaults. */
    const char *host = config_str(cfg, "myhostname");

    assert_non_null(strchr(host, '.'));
    assert_string_equal(config_str(cfg, "mydomain"), strchr(host, '.') + 1);
    snprintf(banner, sizeof(banner), "%s ESMTP Postern", host);
    assert_string_equal(config_str(cfg, "smtpd_banner"), banner);
    assert_string_equal(config_str(cfg, "myorigin"), host);
    config_free(cfg);

    /* mydomain follows a myhostname set in main.cf. */
    cfg = load_ok("myhostname = mail.example.com\n");
    assert_string_equal(config_str(cfg, "mydomain"), "example.com");
    assert_string_equal(config_str(cfg, "mydestination"),
                        "mail.example.com, localhost.example.com, localhost");
    config_free(cfg);

    cfg = load_ok("myhostname = single\n");
    assert_string_equal(config_str(cfg, "mydomain"), "localdomain");
    config_free(cfg);
}

static void test_expansion(void **state)
{
    struct config *cfg;

    (void) state;
    cfg = load_ok("a = x\n"
                  "b = $a-${a}-$(a)\n"
                  "c = [$b]\n"
                  "d = ${a?yes}|${nothing?no}|${nothing:empty}|${a:no}|\n"
                  "e = cost $$5 and $$a\n"
                  "f = <$undefined_name>\n"
                  "g = $later\n"
                  "later = late\n"
                  "h = ${a?${c}+$(b)}\n"
                  "i = ${a?{x}}\n"
                  "empty =\n"
                  "j = ${empty:was empty}${empty?not}\n"
                  "k = $a.$a_not\n");
    assert_string_equal(config_lookup(cfg, "b"), "x-x-x");
    assert_string_equal(config_lookup(cfg, "c"), "[x-x-x]");
    assert_string_equal(config_lookup(cfg, "d"), "yes||empty||");
    assert_string_equal(config_lookup(cfg, "e"), "cost $5 and $a");
    assert_string_equal(config_lookup(cfg, "f"), "<>");
    assert_string_equal(config_lookup(cfg, "g"), "late");
    assert_string_equal(config_lookup(cfg, "h"), "[x-x-x]+x-x-x");
    assert_string_equal(config_lookup(cfg, "i"), "{x}");
    assert_string_equal(config_lookup(cfg, "empty"), "");
    assert_string_equal(config_lookup(cfg, "j"), "was empty");
    assert_string_equal(config_lookup(cfg, "k"), "x.");
    assert_null(config_lookup(cfg, "undefined_name"));
    config_free(cfg);

    /* Typed parameters go through expansion too. */
    cfg = load_ok("limit = 20M\nmessage_size_limit = $limit\n"
                  "smtpd_banner = $myhostname says hi\nmyhostname = mx.example.net\n");
    assert_int_equal(config_size(cfg, "message_size_limit"), 20LL * 1024 * 1024);
    assert_string_equal(config_str(cfg, "smtpd_banner"), "mx.example.net says hi");
    config_free(cfg);
}

static void test_continuation_and_comments(void **state)
{
    struct config *cfg;

    (void) state;
    cfg = load_ok("# a comment\n"
                  "\n"
                  "mynetworks = 127.0.0.0/8\n"
                  "    10.0.0.0/8   \n"
                  "  # commented-out continuation\n"
                  "\t192.168.0.0/16\n"
                  "   \n"
                  "smtpd_banner = hello # not a comment\r\n"
                  "mail_name=Test\n"
                  "myorigin    =    example.org   ");   /* no final newline */
    assert_string_equal(config_str(cfg, "mynetworks"), "127.0.0.0/8 10.0.0.0/8 192.168.0.0/16");
    assert_int_equal(config_line(cfg, "mynetworks"), 3);
    assert_string_equal(config_str(cfg, "smtpd_banner"), "hello # not a comment");
    assert_int_equal(config_line(cfg, "smtpd_banner"), 8);
    assert_string_equal(config_str(cfg, "mail_name"), "Test");
    assert_string_equal(config_str(cfg, "myorigin"), "example.org");
    assert_int_equal(config_line(cfg, "myorigin"), 10);
    assert_true(config_is_set(cfg, "mynetworks"));
    config_free(cfg);
}

static void test_loops(void **state)
{
    struct strbuf main_cf = STRBUF_INIT;

    (void) state;
    expect_error("x = 1\na = $b\nb = ${a}\n", "main.cf:2: ", "a -> b -> a");
    expect_error("a = $a\n", "main.cf:1: ", "loop");
    expect_error("mail_name = ok\nsmtpd_banner = ${smtpd_banner?x}\n", "main.cf:2: ", "loop");
    /* Through a default: myorigin = $myhostname by default. */
    expect_error("myhostname = $myorigin\n", "main.cf:1: ", "loop");

    /* A long chain is an error, not a stack overflow. */
    for (int i = 0; i < 5000; i++)
        sb_printf(&main_cf, "p%d = $p%d\n", i, i + 1);
    expect_error(sb_str(&main_cf), "main.cf:", "nested more than");

    /* Deeply nested conditionals likewise. */
    sb_set(&main_cf, "a = x\nb = ");
    for (int i = 0; i < 5000; i++)
        sb_puts(&main_cf, "${a?");
    for (int i = 0; i < 5000; i++)
        sb_puts(&main_cf, "}");
    sb_puts(&main_cf, "\n");
    expect_error(sb_str(&main_cf), "main.cf:2: ", "nested more than");

    /* Exponential growth stops at the value size limit. */
    sb_set(&main_cf, "a = 0123456789012345678901234567890123456789\n");
    for (char c = 'b'; c <= 'h'; c++) {
        sb_printf(&main_cf, "%c = ", c);
        for (int i = 0; i < 20; i++)
            sb_printf(&main_cf, "$%c", c - 1);
        sb_puts(&main_cf, "\n");
    }
    expect_error(sb_str(&main_cf), "main.cf:", "longer than");
    sb_free(&main_cf);
}

static void test_bad_values(void **state)
{
    (void) state;
    expect_error("# x\nmail_name = x\nline_length_limit = abc\n", "main.cf:3: ",
                 "line_length_limit");
    expect_error("smtpd_helo_required = maybe\n", "main.cf:1: ", "yes or no");
    expect_error("\n\nsmtpd_timeout = 5x\n", "main.cf:3: ", "smtpd_timeout");
    expect_error("message_size_limit = -1\n", "main.cf:1: ", "message_size_limit");
    expect_error("smtpd_recipient_limit = 99999999999999999999999\n", "main.cf:1: ", "integer");
    expect_error("default_process_limit = 0\n", "main.cf:1: ", "smallest");
    expect_error("default_process_limit =\n", "main.cf:1: ", "default_process_limit");
    /* A bad value reached through $name is reported where the typed parameter is. */
    expect_error("limit = lots\nfoo = bar\nmessage_size_limit = $limit\n", "main.cf:3: ",
                 "\"lots\"");
    /* The first problem in file order is the one reported. */
    expect_error("smtpd_timeout = x\nline_length_limit = y\n", "main.cf:1: ", "smtpd_timeout");
    /* A list of fixed words (Postfix's name masks) names the parameter and the word. */
    expect_error("\nnotify_classes = bounce, bogus\n", "main.cf:2: notify_classes: ", "\"bogus\"");
    expect_error("classes = delay\nnotify_classes = $classes,nope\n", "main.cf:2: ", "expected a list of: bounce");
}

/* test_word_lists - a WORDS() parameter takes its own words in any case and separation */
static void test_word_lists(void **state)
{
    struct config *cfg = load_ok("notify_classes = Bounce,2bounce  delay\n\tpolicy, protocol resource,software,data\n");

    (void) state;
    assert_string_equal(config_str(cfg, "notify_classes"),
                        "Bounce,2bounce  delay policy, protocol resource,software,data");
    config_free(cfg);
    cfg = load_ok("notify_classes =\n");
    assert_string_equal(config_str(cfg, "notify_classes"), "");
    config_free(cfg);
    cfg = load_ok("");
    assert_string_equal(config_str(cfg, "notify_classes"), "resource, software");
    assert_string_equal(config_str(cfg, "bounce_notice_recipient"), "postmaster");
    assert_string_equal(config_str(cfg, "delay_notice_recipient"), "postmaster");
    config_free(cfg);
}

static void test_syntax_errors(void **state)
{
    char    big[CONFIG_LINE_MAX + 100];

    (void) state;
    expect_error("mail_name = x\njust some words\n", "main.cf:2: ", "missing '='");
    expect_error("my-name = x\n", "main.cf:1: ", "bad parameter name");
    expect_error("my name = x\n", "main.cf:1: ", "bad parameter name");
    expect_error(" = x\n", "main.cf:1: ", "line starts with whitespace");
    expect_error("= x\n", "main.cf:1: ", "missing parameter name");
    expect_error("  mail_name = x\n", "main.cf:1: ", "remove the leading whitespace");
    expect_error("a = x\nb = cost $\n", "main.cf:2: ", "$$");
    expect_error("a = x\nb = ${a\n", "main.cf:2: ", "unmatched");
    expect_error("a = x\nb = $-\n", "main.cf:2: ", "$$");
    expect_error("a = x\nb = ${}\n", "main.cf:2: ", "parameter name");
    expect_error("a = x\nb = ${a!x}\n", "main.cf:2: ", "unexpected '!'");
    /* A syntax error inside a referenced value is reported at that value's line. */
    expect_error("a = $b\nb = $\n", "main.cf:2: ", "$$");

    memset(big, 'x', sizeof(big) - 1);
    memcpy(big, "mail_name = ", 12);
    big[sizeof(big) - 1] = '\0';
    expect_error(big, "main.cf:1: ", "longer than");

    /* Many short continuation lines add up too. */
    struct strbuf sb = STRBUF_INIT;

    sb_puts(&sb, "a = x\nmynetworks = 1\n");
    for (int i = 0; i < CONFIG_LINE_MAX / 8; i++)
        sb_puts(&sb, "  1.2.3.4/32\n");
    expect_error(sb_str(&sb), "main.cf:2: ", "longer than");
    sb_free(&sb);

    write_file("main.cf", "a = x\nb = y\0z\n", 14);
    struct strbuf err = STRBUF_INIT;

    assert_null(config_load(tmpdir, &err));
    assert_non_null(strstr(sb_str(&err), "main.cf:2: "));
    assert_non_null(strstr(sb_str(&err), "NUL"));
    sb_free(&err);
}

static void test_missing_file(void **state)
{
    struct strbuf err = STRBUF_INIT;
    char    want[128];

    (void) state;
    assert_null(config_load(tmpdir, &err));
    snprintf(want, sizeof(want), "%s/main.cf: ", tmpdir);
    assert_non_null(strstr(sb_str(&err), want));
    assert_non_null(strstr(sb_str(&err), "No such file"));
    sb_free(&err);
}

static void test_warnings(void **state)
{
    struct config *cfg;
    const char *w;

    (void) state;
    cfg = load_ok("mail_name = x\n"
                  "smtpd_bannr = hello\n"
                  "my_restrictions = reject\n"
                  "smtpd_client_restrictions = $my_restrictions\n"
                  "totally_unrelated_thing = 1\n"
                  "mail_name = y\n"
                  "message_size_limt = 10\n");
    w = config_warnings(cfg);
    assert_non_null(strstr(w, "main.cf:2: unknown parameter smtpd_bannr; did you mean smtpd_banner?"));
    assert_null(strstr(w, "my_restrictions"));          /* used as $name: a user variable */
    assert_non_null(strstr(w, "main.cf:5: unknown parameter totally_unrelated_thing"));
    assert_null(strstr(w, "totally_unrelated_thing; did you mean"));
    assert_non_null(strstr(w, "main.cf:6: mail_name is set again (first at line 1)"));
    assert_non_null(strstr(w, "main.cf:7: unknown parameter message_size_limt; did you mean message_size_limit?"));
    /* In file order. */
    assert_true(strstr(w, "main.cf:2:") < strstr(w, "main.cf:5:"));
    assert_true(strstr(w, "main.cf:5:") < strstr(w, "main.cf:6:"));
    assert_string_equal(config_str(cfg, "mail_name"), "y");
    assert_int_equal(config_line(cfg, "mail_name"), 6);
    assert_string_equal(config_lookup(cfg, "smtpd_bannr"), "hello");
    assert_string_equal(config_str(cfg, "smtpd_client_restrictions"), "reject");
    config_free(cfg);

    /* A name that only master.cf uses ("-o x=$name") is not unused. */
    const char *master = "submission inet n - y - - smtpd\n"
        "  -o smtpd_client_restrictions=$mua_client_restrictions\n";

    write_file("master.cf", master, strlen(master));
    cfg = load_ok("mua_client_restrictions = permit_sasl_authenticated, reject\n"
                  "other_thing = x\n");
    w = config_warnings(cfg);
    assert_null(strstr(w, "mua_client_restrictions"));
    assert_non_null(strstr(w, "other_thing"));
    config_free(cfg);
}

static void test_config_directory(void **state)
{
    struct strbuf err = STRBUF_INIT;
    struct config *cfg;
    char    dir[128];

    (void) state;
    cfg = load_ok("config_directory = /somewhere/else\n");
    assert_string_equal(config_str(cfg, "config_directory"), tmpdir);
    assert_false(config_is_set(cfg, "config_directory"));
    assert_non_null(strstr(config_warnings(cfg), "main.cf:1: config_directory is ignored"));
    assert_int_equal(config_override(cfg, "config_directory=/x", &err), -1);
    assert_non_null(strstr(sb_str(&err), "config_directory"));
    assert_string_equal(config_str(cfg, "config_directory"), tmpdir);
    config_free(cfg);

    /* A trailing slash is dropped; the path names the file that was read. */
    snprintf(dir, sizeof(dir), "%s//", tmpdir);
    assert_non_null(cfg = config_load(dir, &err));
    assert_string_equal(config_str(cfg, "config_directory"), tmpdir);
    snprintf(dir, sizeof(dir), "%s/main.cf", tmpdir);
    assert_string_equal(config_path(cfg), dir);
    config_free(cfg);
    sb_free(&err);
}

static void test_overrides(void **state)
{
    struct strbuf err = STRBUF_INIT;
    struct config *cfg;
    const char *before;

    (void) state;
    cfg = load_ok("myhostname = a.example.com\nsmtpd_timeout = 10m\nmy_list = one\n");
    before = config_str(cfg, "smtpd_banner");
    assert_string_equal(before, "a.example.com ESMTP Postern");

    assert_int_equal(config_override(cfg, "smtpd_timeout=60", &err), 0);
    assert_int_equal(config_time(cfg, "smtpd_timeout"), 60);
    assert_int_equal(config_override(cfg, " smtpd_timeout = 2m ", &err), 0);
    assert_int_equal(config_time(cfg, "smtpd_timeout"), 120);

    /* Dependent values follow, and strings handed out earlier stay valid. */
    assert_int_equal(config_override(cfg, "myhostname=b.example.com", &err), 0);
    assert_string_equal(config_str(cfg, "smtpd_banner"), "b.example.com ESMTP Postern");
    assert_string_equal(config_str(cfg, "mydomain"), "example.com");
    assert_string_equal(before, "a.example.com ESMTP Postern");
    assert_true(config_is_set(cfg, "myhostname"));

    /* Bad ones fail and change nothing. */
    assert_int_equal(config_override(cfg, "smtpd_timeout=forever", &err), -1);
    assert_non_null(strstr(sb_str(&err), "smtpd_timeout"));
    assert_int_equal(config_time(cfg, "smtpd_timeout"), 120);
    assert_int_equal(config_override(cfg, "smtpd_timeout", &err), -1);
    assert_non_null(strstr(sb_str(&err), "name=value"));
    assert_int_equal(config_override(cfg, "bad name=1", &err), -1);
    assert_int_equal(config_override(cfg, "=1", &err), -1);
    assert_int_equal(config_override(cfg, "my_list=$smtpd_banner", &err), 0);
    assert_int_equal(config_override(cfg, "smtpd_banner=$my_list", &err), -1);
    assert_non_null(strstr(sb_str(&err), "loop"));
    assert_string_equal(config_str(cfg, "smtpd_banner"), "b.example.com ESMTP Postern");
    assert_int_equal(config_override(cfg, "smtpd_helo_required=sometimes", &err), -1);
    assert_false(config_bool(cfg, "smtpd_helo_required"));

    /* A new name; the dry run leaves no trace. */
    assert_int_equal(config_check_override(cfg, "brand_new=1", &err), 0);
    assert_null(config_lookup(cfg, "brand_new"));
    assert_int_equal(config_check_override(cfg, "line_length_limit=x", &err), -1);
    assert_int_equal(config_check_override(cfg, "line_length_limit=100", &err), 0);
    assert_int_equal(config_int(cfg, "line_length_limit"), 2048);
    assert_int_equal(config_override(cfg, "smtpd_sasl_atuh_enable=yes", &err), 0);
    assert_string_equal(config_lookup(cfg, "smtpd_sasl_atuh_enable"), "yes");
    assert_non_null(strstr(config_warnings(cfg), "did you mean smtpd_sasl_auth_enable?"));
    assert_int_equal(config_line(cfg, "smtpd_sasl_atuh_enable"), 0);
    config_free(cfg);
    sb_free(&err);
}

struct visit_state {
    int     count;
    int     set;
    char    last[CONFIG_NAME_MAX + 1];
    bool    sorted;
    bool    saw_user_var;
};

/* visit - check name order and count */
static void visit(const char *name, const char *value, bool is_set, void *arg)
{
    struct visit_state *vs = arg;

    if (strcmp(vs->last, name) >= 0)
        vs->sorted = false;
    snprintf(vs->last, sizeof(vs->last), "%s", name);
    vs->count++;
    vs->set += is_set;
    if (strcmp(name, "zz_user") == 0 && strcmp(value, "Postern!") == 0)
        vs->saw_user_var = true;
}

static void test_foreach(void **state)
{
    struct config *cfg = load_ok("zz_user = $mail_name!\nmail_name = Postern\n");
    struct visit_state vs = { 0, 0, "", true, false };

    (void) state;
    config_foreach(cfg, false, visit, &vs);
    assert_true(vs.sorted);
    assert_int_equal(vs.count, (int) config_params_count + 1);
    assert_int_equal(vs.set, 2);
    assert_true(vs.saw_user_var);

    memset(&vs, 0, sizeof(vs));
    vs.sorted = true;
    config_foreach(cfg, true, visit, &vs);
    assert_int_equal(vs.count, 2);
    assert_true(vs.saw_user_var);
    config_free(cfg);
}

/* dies_with_abort - fn(cfg) in a child must end in abort() (msg_panic) */
static void dies_with_abort(void (*fn)(struct config *))
{
    struct config *cfg = load_ok("");
    pid_t   pid;
    int     status;

    fflush(NULL);
    assert_true((pid = fork()) >= 0);
    if (pid == 0) {
        int     devnull = open("/dev/null", O_WRONLY);

        if (devnull >= 0)
            dup2(devnull, 2);                   /* keep the panic message out of test output */
        fn(cfg);
        _exit(0);
    }
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFSIGNALED(status));
    assert_int_equal(WTERMSIG(status), SIGABRT);
    config_free(cfg);
}

static void get_unknown(struct config *cfg)
{
    (void) config_str(cfg, "no_such_parameter");
}

static void get_wrong_type(struct config *cfg)
{
    (void) config_int(cfg, "smtpd_banner");
}

static void get_wrong_type2(struct config *cfg)
{
    (void) config_time(cfg, "message_size_limit");
}

static void test_programming_errors(void **state)
{
    (void) state;
    dies_with_abort(get_unknown);
    dies_with_abort(get_wrong_type);
    dies_with_abort(get_wrong_type2);
}

static void test_param_table(void **state)
{
    struct config *cfg = load_ok("");

    (void) state;
    /* Every default is valid for its type (config_load would have failed otherwise). */
    for (size_t i = 0; i < config_params_count; i++) {
        const struct config_param *p = &config_params[i];

        assert_true(config_name_valid(p->name, strlen(p->name)));
        assert_non_null(config_str(cfg, p->name));
    }
    assert_string_equal(config_str(cfg, "smtpd_relay_restrictions"),
                        "permit_mynetworks, permit_sasl_authenticated, defer_unauth_destination");
    assert_string_equal(config_str(cfg, "mynetworks"), "127.0.0.0/8 [::1]/128");
    assert_string_equal(config_str(cfg, "virtual_alias_domains"), "");
    config_free(cfg);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_helpers),
        cmocka_unit_test_setup_teardown(test_defaults, setup, teardown),
        cmocka_unit_test_setup_teardown(test_expansion, setup, teardown),
        cmocka_unit_test_setup_teardown(test_continuation_and_comments, setup, teardown),
        cmocka_unit_test_setup_teardown(test_loops, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_values, setup, teardown),
        cmocka_unit_test_setup_teardown(test_word_lists, setup, teardown),
        cmocka_unit_test_setup_teardown(test_syntax_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_missing_file, setup, teardown),
        cmocka_unit_test_setup_teardown(test_warnings, setup, teardown),
        cmocka_unit_test_setup_teardown(test_config_directory, setup, teardown),
        cmocka_unit_test_setup_teardown(test_overrides, setup, teardown),
        cmocka_unit_test_setup_teardown(test_foreach, setup, teardown),
        cmocka_unit_test_setup_teardown(test_programming_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_param_table, setup, teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
