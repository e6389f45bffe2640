/*
 * test_map_regexp - lib/map_regexp.c: matching (first rule wins), flags
 * (case-insensitive by default, i toggles it, x, unknown flags), negated
 * rules, $1..$9 substitution, other delimiters, continuation lines, errors
 * with file:line, the map type through map_open() (keys not folded, a
 * changed file reread, a broken one keeping the old rules), pcre: refused,
 * and the parser fed junk.
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

#include "log.h"
#include "map.h"
#include "map_regexp.h"
#include "strbuf.h"

/* parse - a table from text; fails the test on a parse error */
static struct regexp_table *parse(const char *text)
{
    struct strbuf err = STRBUF_INIT;
    struct regexp_table *t = regexp_table_parse(text, strlen(text), "t", &err);

    if (t == NULL)
        fail_msg("parse: %s", sb_str(&err));
    sb_free(&err);
    return t;
}

/* lookup - the result for key, or "(none)" */
static const char *lookup(struct regexp_table *t, const char *key, struct strbuf *v)
{
    if (regexp_table_lookup(t, key, v) != MAP_FOUND)
        sb_set(v, "(none)");
    return sb_str(v);
}

/* parse_error - the error a text gives */
static void expect_error(const char *text, const char *want)
{
    struct strbuf err = STRBUF_INIT;
    struct regexp_table *t = regexp_table_parse(text, strlen(text), "/etc/hc", &err);

    assert_null(t);
    if (strstr(sb_str(&err), want) == NULL)
        fail_msg("error '%s' lacks '%s'", sb_str(&err), want);
    sb_free(&err);
}

static void test_first_match_and_case(void **state)
{
    struct strbuf v = STRBUF_INIT;
    struct regexp_table *t = parse(
        "# guide's example\n"
        "/name=[^>]*\\.(bat|com|exe|dll|vbs)$/ REJECT\n"
        "\n"
        "/^Subject:.*viagra/ REJECT spam\n"
        "/^Subject:/ DUNNO\n"
        "/^X-Case: Exact$/i WARN exact\n");

    (void) state;
    assert_int_equal(regexp_table_count(t), 4);
    assert_string_equal(lookup(t, "Content-Type: application/octet-stream; name=x.exe", &v), "REJECT");
    assert_string_equal(lookup(t, "Content-Type: application/octet-stream; name=X.EXE", &v), "REJECT");
    assert_string_equal(lookup(t, "Content-Type: application/pdf; name=x.pdf", &v), "(none)");
    /* The guide's pattern misses quoted names, as in Postfix (README gives one that does not). */
    assert_string_equal(lookup(t, "Content-Type: application/x; name=\"x.exe\"", &v), "(none)");
    assert_string_equal(lookup(t, "SUBJECT: cheap VIAGRA", &v), "REJECT spam");
    assert_string_equal(lookup(t, "Subject: hello", &v), "DUNNO");
    assert_string_equal(lookup(t, "X-Case: Exact", &v), "WARN exact");
    assert_string_equal(lookup(t, "x-case: exact", &v), "(none)");
    regexp_table_free(t);
    t = parse("/name=\"?[^>]*\\.(bat|com|exe|dll|vbs)\"?$/ REJECT\n");
    assert_string_equal(lookup(t, "Content-Type: application/x; name=\"x.exe\"", &v), "REJECT");
    assert_string_equal(lookup(t, "Content-Disposition: attachment; filename=x.EXE", &v), "REJECT");
    assert_string_equal(lookup(t, "Content-Disposition: attachment; filename=\"x.pdf\"", &v), "(none)");
    regexp_table_free(t);
    sb_free(&v);
}

static void test_negation_substitution_delimiters(void **state)
{
    struct strbuf v = STRBUF_INIT;
    struct regexp_table *t = parse(
        "/^R: [a-z]{2,4}(-[0-9]+)*[]x[:alpha:]]+$/ sized ok\n"
        "!/^(From|To|Subject):/ DUNNO other\n"
        "/^From: (.*)@(.*)$/ WARN user $1 at ${2} $(1) $$5 $\n"
        "%^To: a/b%  OK slash\n"
        "/^Subject: a\\/b$/ OK escaped\n"
        "/^Subject: (x)|(y)$/ got [$1][$2]\n");

    (void) state;
    assert_string_equal(lookup(t, "Received: x", &v), "DUNNO other");
    assert_string_equal(lookup(t, "From: bob@example.org", &v),
                        "WARN user bob at example.org bob $5 $");
    assert_string_equal(lookup(t, "To: a/b", &v), "OK slash");
    assert_string_equal(lookup(t, "Subject: a/b", &v), "OK escaped");
    assert_string_equal(lookup(t, "Subject: y", &v), "got [][y]");
    assert_string_equal(lookup(t, "R: abc-1-22]x", &v), "sized ok");
    regexp_table_free(t);
    sb_free(&v);
}

static void test_flags_and_continuation(void **state)
{
    struct strbuf v = STRBUF_INIT;
    struct regexp_table *t = parse(
        "/^a+b$/x basic\n"              /* basic RE: '+' is literal */
        "/^a$/m multi\n"
        "/^long/ REJECT a result\n"
        "   continued over\n"
        "\tlines\n");

    (void) state;
    assert_string_equal(lookup(t, "a+b", &v), "basic");
    assert_string_equal(lookup(t, "aab", &v), "(none)");
    assert_string_equal(lookup(t, "x\na\ny", &v), "multi");
    assert_string_equal(lookup(t, "longer", &v), "REJECT a result continued over lines");
    regexp_table_free(t);
    sb_free(&v);
}

static void test_bad_lines(void **state)
{
    (void) state;
    expect_error("/ok/ DUNNO\n/a(/ REJECT\n", "/etc/hc:2: bad regular expression");
    expect_error("# c\n\n/a/q REJECT\n", "/etc/hc:3: unsupported flag 'q'");
    expect_error("/a/\n", "/etc/hc:1: missing result");
    expect_error("/abc REJECT\n", "/etc/hc:1: missing closing '/'");
    expect_error("abc REJECT\n", "/etc/hc:1: expected /pattern/");
    expect_error("  /a/ REJECT\n", "/etc/hc:1: continuation line without a rule");
    expect_error("/(a)/ X $2\n", "/etc/hc:1: $2 in the result, but the pattern has 1 subexpression");
    expect_error("!/(a)/ X $1\n", "/etc/hc:1: $1 in the result of a negated pattern");
    expect_error("if /a/\n/b/ X\nendif\n", "/etc/hc:1: if/endif blocks are not supported");
    expect_error("// X\n", "/etc/hc:1: empty pattern");
    expect_error("/a/ X\n/b/\0 Y\n", "/etc/hc:2:");
    /* glibc spells repetitions out: these would take gigabytes */
    expect_error("/a/ X\n/^Subje.++++++++++++++++++++++++-)$/ X\n", "/etc/hc:2: pattern too complex");
    expect_error("/((((((((((((((((((((((a+)+)+)+)+)+)+)+)+)+)+)+)+)+)+)+)+)+)+)+)+)+)/ X\n",
                 "/etc/hc:1: pattern too complex");
    expect_error("/(a{1000}){1000}/ X\n", "/etc/hc:1: pattern too complex");
    expect_error("/a+*/ X\n", "/etc/hc:1: pattern too complex");
    expect_error("/a**/ X\n", "/etc/hc:1: pattern too complex");
    expect_error("/\\(a\\{1000\\}\\)\\{1000\\}/x X\n", "/etc/hc:1: pattern too complex");
}

/* test_junk - the parser never crashes, leaks or accepts a rule it cannot match with */
static void test_junk(void **state)
{
    static const char alphabet[] = "/!\\#$(){}[]^.*+?|ix m\t\n \001\377az019:";
    struct strbuf err = STRBUF_INIT, v = STRBUF_INIT;
    char    text[256];
    unsigned seed = 12345;

    (void) state;
    for (int round = 0; round < 20000; round++) {
        size_t  len = (size_t) (seed % sizeof(text));
        struct regexp_table *t;

        for (size_t i = 0; i < len; i++) {
            seed = seed * 1103515245u + 12345u;
            text[i] = alphabet[(seed >> 16) % (sizeof(alphabet) - 1)];
        }
        seed = seed * 1103515245u + 12345u;
        t = regexp_table_parse(text, len, "junk", &err);
        if (t == NULL) {
            assert_true(strncmp(sb_str(&err), "junk:", 5) == 0);
            continue;
        }
        (void) regexp_table_lookup(t, "Subject: $1 a+b (x)", &v);
        (void) regexp_table_lookup(t, "", &v);
        regexp_table_free(t);
    }
    sb_free(&err);
    sb_free(&v);
}

static void write_file(const char *path, const char *text)
{
    FILE   *fp = fopen(path, "w");

    assert_non_null(fp);
    fputs(text, fp);
    assert_int_equal(fclose(fp), 0);
}

/* test_map_type - through map_open: case kept, reread on change, old rules kept when broken */
static void test_map_type(void **state)
{
    char    dir[] = "/tmp/test_map_regexp.XXXXXX";
    char    path[64], tmp[64], spec[80];
    struct strbuf err = STRBUF_INIT, v = STRBUF_INIT;
    struct map *map;

    (void) state;
    assert_non_null(mkdtemp(dir));
    snprintf(path, sizeof(path), "%s/hc", dir);
    snprintf(tmp, sizeof(tmp), "%s/hc.new", dir);
    snprintf(spec, sizeof(spec), "regexp:%s", path);
    write_file(path, "/^Subject: Case$/i first\n");
    map_set_check_interval_ms(0);
    map = map_open(spec, &err);
    assert_non_null(map);
    assert_int_equal(map_lookup(map, "Subject: Case", &v), MAP_FOUND);
    assert_string_equal(sb_str(&v), "first");
    assert_int_equal(map_lookup(map, "subject: case", &v), MAP_NOTFOUND);

    write_file(tmp, "/^Subject:/ second\n");
    assert_int_equal(rename(tmp, path), 0);
    assert_int_equal(map_lookup(map, "Subject: x", &v), MAP_FOUND);
    assert_string_equal(sb_str(&v), "second");
    assert_false(map_changed(map));

    write_file(tmp, "/^Subject:(/ broken\n");
    assert_int_equal(rename(tmp, path), 0);
    assert_int_equal(map_lookup(map, "Subject: x", &v), MAP_FOUND);
    assert_string_equal(sb_str(&v), "second");
    assert_true(map_changed(map));
    map_close(map);

    assert_null(map_open(spec, &err));
    assert_non_null(strstr(sb_str(&err), "hc:1: bad regular expression"));
    snprintf(spec, sizeof(spec), "pcre:%s", path);
    assert_null(map_open(spec, &err));
    assert_non_null(strstr(sb_str(&err), "use regexp:"));
    unlink(path);
    rmdir(dir);
    sb_free(&err);
    sb_free(&v);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_first_match_and_case),
        cmocka_unit_test(test_negation_substitution_delimiters),
        cmocka_unit_test(test_flags_and_continuation),
        cmocka_unit_test(test_bad_lines),
        cmocka_unit_test(test_junk),
        cmocka_unit_test(test_map_type),
    };

    log_to_stderr(0);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
