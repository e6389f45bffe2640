/*
 * test_pgsql - lib/pgsql.c without a server: query templates turned into
 * parameterized SQL (escapes become $N, never text; escapes where a value
 * cannot stand are refused), Dovecot connect strings, map-file reading and
 * the UTF-8 check that keeps invalid keys from the server. The queries
 * themselves run against a real PostgreSQL in tests/integration/test_pgsql_*.py.
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

#include "pgsql.h"
#include "strbuf.h"

/* scan - Postfix's escapes, as map_pgsql.c has them */
static size_t scan(const char *p)
{
    return *p && strchr("sudSUD123456789", *p) ? 1 : 0;
}

static struct pgsql_conn *conn;

static int setup(void **state)
{
    struct pgsql_settings s;

    (void) state;
    pgsql_settings_init(&s);
    strlist_add(&s.hosts, "127.0.0.1:9");
    conn = pgsql_conn_new(&s);
    return 0;
}

static int teardown(void **state)
{
    (void) state;
    pgsql_conn_free(conn);
    return 0;
}

/* compiles - template gives sql with nparams parameters */
static void compiles(const char *template, const char *sql, int nparams)
{
    struct strbuf err = STRBUF_INIT;
    struct pgsql_stmt *st = pgsql_stmt_new(conn, template, scan, &err);

    if (st == NULL)
        fail_msg("%s: %s", template, sb_str(&err));
    assert_string_equal(pgsql_stmt_sql(st), sql);
    assert_int_equal(pgsql_stmt_nparams(st), nparams);
    pgsql_stmt_free(st);
    sb_free(&err);
}

/* refused - template does not compile, err mentioning what */
static void refused(const char *template, const char *what)
{
    struct strbuf err = STRBUF_INIT;
    struct pgsql_stmt *st = pgsql_stmt_new(conn, template, scan, &err);

    if (st != NULL)
        fail_msg("%s compiled to %s", template, pgsql_stmt_sql(st));
    if (strstr(sb_str(&err), what) == NULL)
        fail_msg("%s: \"%s\" does not mention \"%s\"", template, sb_str(&err), what);
    sb_free(&err);
}

static void test_escapes_become_parameters(void **state)
{
    (void) state;
    compiles("SELECT goto FROM aliases WHERE address='%s'",
             "SELECT goto FROM aliases WHERE address=$1", 1);
    compiles("SELECT m FROM t WHERE l = '%u' AND d = '%d' AND x = %s",
             "SELECT m FROM t WHERE l = $1 AND d = $2 AND x = $3", 3);
    /* a literal with several escapes is one parameter; '' inside it is a quote */
    compiles("SELECT 1 WHERE a = '%u@%d' AND b = 'it''s'", "SELECT 1 WHERE a = $1 AND b = 'it''s'", 1);
    compiles("SELECT 1 WHERE c LIKE 'rel%%'", "SELECT 1 WHERE c LIKE $1", 1);
    compiles("SELECT 100%% AS x", "SELECT 100% AS x", 0);
    /* comments, identifiers and dollar quoting pass as they are */
    compiles("SELECT \"Col\" FROM t -- '%s' not here\nWHERE k = '%s'",
             "SELECT \"Col\" FROM t -- '%s' not here\nWHERE k = $1", 1);
    compiles("SELECT /* '%s' */ $q$x$q$ WHERE k = '%s'", "SELECT /* '%s' */ $q$x$q$ WHERE k = $1", 1);
    compiles("SELECT E'a\\'b' WHERE k = '%s'", "SELECT E'a\\'b' WHERE k = $1", 1);
}

static void test_escapes_where_no_value_can_be_are_refused(void **state)
{
    (void) state;
    refused("SELECT x FROM t WHERE \"%s\" = 1", "identifier");
    refused("SELECT x FROM t_%s", "glued");
    refused("SELECT x FROM t WHERE k = %s'", "glued");
    refused("SELECT E'%s'", "E'");
    refused("SELECT $$%s$$", "dollar");
    refused("SELECT x WHERE k = $1", "$N");
    refused("SELECT x WHERE k = '%x'", "unknown escape");
    refused("SELECT x WHERE k = '%s", "unterminated");
    refused("SELECT /* x", "unterminated");
}

/* values */
static int expand(void *ctx, const char *esc, size_t len, struct strbuf *out)
{
    (void) ctx, (void) len;
    sb_puts(out, *esc == 's' ? "x'; DROP TABLE t; --" : "u");
    return 0;
}

static void test_no_server_is_a_temporary_failure(void **state)
{
    struct strbuf err = STRBUF_INIT;
    struct pgsql_stmt *st = pgsql_stmt_new(conn, "SELECT 1 WHERE k = '%s'", scan, &err);
    PGresult *res = NULL;

    (void) state;
    assert_non_null(st);
    assert_int_equal(pgsql_stmt_exec(st, expand, NULL, &res, &err), PGSQL_TEMPFAIL);
    assert_null(res);
    assert_non_null(strstr(sb_str(&err), "127.0.0.1:9"));
    /* the host is now skipped for retry_interval: the next call fails at once */
    assert_int_equal(pgsql_stmt_exec(st, expand, NULL, &res, &err), PGSQL_TEMPFAIL);
    assert_non_null(strstr(sb_str(&err), "every host failed"));
    pgsql_stmt_free(st);
    sb_free(&err);
}

static void test_conninfo(void **state)
{
    struct pgsql_settings s;
    struct strbuf err = STRBUF_INIT;

    (void) state;
    pgsql_settings_init(&s);
    assert_int_equal(pgsql_parse_conninfo(&s, "host=db1 host=/run/postgresql port=6432 dbname=mail "
                                          "user=u password=p connect_timeout=2", &err), 0);
    assert_int_equal(s.hosts.count, 2);
    assert_string_equal(s.hosts.items[0], "db1:6432");
    assert_string_equal(s.hosts.items[1], "unix:/run/postgresql/.s.PGSQL.6432");
    assert_string_equal(s.dbname, "mail");
    assert_string_equal(s.password, "p");
    assert_int_equal(s.connect_timeout, 2);
    pgsql_settings_free(&s);
    pgsql_settings_init(&s);
    assert_int_equal(pgsql_parse_conninfo(&s, "host=a bogus=1", &err), -1);
    assert_non_null(strstr(sb_str(&err), "bogus"));
    sb_reset(&err);
    assert_int_equal(pgsql_parse_conninfo(&s, "connect_timeout=0", &err), -1);
    pgsql_settings_free(&s);
    sb_free(&err);
}

struct seen {
    char    names[8][32];
    char    values[8][256];
    int     n;
};

static int store(void *arg, const char *name, const char *value, struct strbuf *err)
{
    struct seen *s = arg;

    (void) err;
    if (s->n < 8) {
        snprintf(s->names[s->n], sizeof(s->names[0]), "%s", name);
        snprintf(s->values[s->n], sizeof(s->values[0]), "%s", value);
        s->n++;
    }
    return 0;
}

static void test_read_config(void **state)
{
    char    path[] = "/tmp/test_pgsql.XXXXXX";
    int     fd = mkstemp(path);
    const char text[] = "# comment\nhosts = a b\nquery = SELECT x\n  FROM t\n   WHERE k = '%s'\n"
        "\nconnect = \"host=x dbname=y\"\n";
    struct seen s = {0};
    struct strbuf err = STRBUF_INIT;

    (void) state;
    assert_true(fd >= 0);
    assert_int_equal(write(fd, text, sizeof(text) - 1), (ssize_t) sizeof(text) - 1);
    close(fd);
    assert_int_equal(pgsql_read_config(path, store, &s, &err), 0);
    assert_int_equal(s.n, 3);
    assert_string_equal(s.values[0], "a b");
    assert_string_equal(s.values[1], "SELECT x FROM t WHERE k = '%s'");
    assert_string_equal(s.values[2], "host=x dbname=y");
    unlink(path);
    sb_free(&err);
}

static void test_utf8(void **state)
{
    (void) state;
    assert_true(pgsql_utf8_valid("alice@example.test", 18));
    assert_true(pgsql_utf8_valid("j\xc3\xb6rg", 5));
    assert_false(pgsql_utf8_valid("\xff", 1));
    assert_false(pgsql_utf8_valid("\xc0\xaf", 2));             /* overlong '/' */
    assert_false(pgsql_utf8_valid("\xed\xa0\x80", 3));         /* surrogate */
    assert_false(pgsql_utf8_valid("a\0b", 3));                 /* NUL */
    assert_false(pgsql_utf8_valid("\xe2\x82", 2));             /* truncated */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_escapes_become_parameters),
        cmocka_unit_test(test_escapes_where_no_value_can_be_are_refused),
        cmocka_unit_test(test_no_server_is_a_temporary_failure),
        cmocka_unit_test(test_conninfo),
        cmocka_unit_test(test_read_config),
        cmocka_unit_test(test_utf8),
    };

    return cmocka_run_group_tests(tests, setup, teardown);
}
