/*
 * test_map - lib/map.c and the file-less types: spec parsing and errors,
 * key folding, empty keys, the brace-aware list tokenizer, static: and
 * inline: (syntax and errors), and map lists (order, first match, errors).
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

#include "map.h"
#include "strbuf.h"

/* expect - lookup result */
static void expect(struct map *map, const char *key, enum map_status want, const char *value)
{
    struct strbuf v = STRBUF_INIT;

    assert_int_equal(map_lookup(map, key, &v), want);
    assert_string_equal(sb_str(&v), value);
    sb_free(&v);
}

/* open_fails - map_open(spec) fails with an error containing what */
static void open_fails(const char *spec, const char *what)
{
    struct strbuf err = STRBUF_INIT;

    assert_null(map_open(spec, &err));
    if (strstr(sb_str(&err), what) == NULL)
        fail_msg("'%s': error '%s' does not contain '%s'", spec, sb_str(&err), what);
    sb_free(&err);
}

static void test_spec_errors(void **state)
{
    (void) state;
    open_fails("", "empty map name");
    open_fails("nocolon", "expected type:name");
    open_fails(":x", "expected type:name");
    open_fails("nosuch:/x", "unknown map type 'nosuch'; known types: hash, btree");
    open_fails("HASH:/x", "unknown map type 'HASH'");
    open_fails("hash:", "missing file name");
    open_fails("texthash:", "missing file name");
    open_fails("hash:/nonexistent/dir/table",
               "hash:/nonexistent/dir/table: open /nonexistent/dir/table.db: "
               "No such file or directory; run postctl map /nonexistent/dir/table");
}

static void test_static(void **state)
{
    struct strbuf err = STRBUF_INIT;
    struct map *map;

    (void) state;
    map = map_open("static:OK", &err);
    assert_non_null(map);
    expect(map, "anything", MAP_FOUND, "OK");
    expect(map, "Other@Example.com", MAP_FOUND, "OK");
    expect(map, "", MAP_NOTFOUND, "");
    assert_false(map_changed(map));
    assert_string_equal(map_spec(map), "static:OK");
    map_close(map);

    map = map_open("static:{ text with spaces, and a comma }", &err);
    assert_non_null(map);
    expect(map, "x", MAP_FOUND, "text with spaces, and a comma");
    map_close(map);

    /* Nested braces belong to the value. */
    map = map_open("static:{a {b} c}", &err);
    assert_non_null(map);
    expect(map, "x", MAP_FOUND, "a {b} c");
    map_close(map);

    open_fails("static:{unclosed", "missing '}'");
    open_fails("static:{a} trailing", "text after '}'");
    sb_free(&err);
}

static void test_inline(void **state)
{
    struct strbuf err = STRBUF_INIT;
    struct map *map;

    (void) state;
    map = map_open("inline:{ Key1=value1, key2=value2 k3=v3,,"
                   "{ Spaced Key = text with spaces, and commas },"
                   "{nested={x}} }", &err);
    if (map == NULL)
        fail_msg("%s", sb_str(&err));
    expect(map, "key1", MAP_FOUND, "value1");
    expect(map, "KEY1", MAP_FOUND, "value1");
    expect(map, "key2", MAP_FOUND, "value2");
    expect(map, "k3", MAP_FOUND, "v3");
    expect(map, "spaced key", MAP_FOUND, "text with spaces, and commas");
    expect(map, "nested", MAP_FOUND, "{x}");
    expect(map, "value1", MAP_NOTFOUND, "");
    expect(map, "", MAP_NOTFOUND, "");
    map_close(map);

    /* A value may contain '='; only the first one separates. */
    map = map_open("inline:{a=b=c}", &err);
    assert_non_null(map);
    expect(map, "a", MAP_FOUND, "b=c");
    map_close(map);

    open_fails("inline:a=b", "expected inline:{ key=value, ... }");
    open_fails("inline:", "expected inline:{");
    open_fails("inline:{}", "empty table");
    open_fails("inline:{  ,, }", "empty table");
    open_fails("inline:{a=1, b}", "'b' has no '='");
    open_fails("inline:{a = 1}", "'a' has no '='");
    open_fails("inline:{=1}", "missing key");
    open_fails("inline:{a=}", "missing value");
    open_fails("inline:{ { a = } }", "missing value");
    open_fails("inline:{a=1, A=2}", "duplicate key 'a'");
    open_fails("inline:{a=1", "missing '}'");
    open_fails("inline:{a=1}}", "text after '}'");
    open_fails("inline:{ {a=1 }", "missing '}'");
    open_fails("inline:{ a=1} }", "text after '}'");
    sb_free(&err);
}

static void test_long_key(void **state)
{
    struct strbuf err = STRBUF_INIT;
    struct map *map;
    char   *key = malloc(MAP_LINE_MAX + 2);

    (void) state;
    memset(key, 'a', MAP_LINE_MAX + 1);
    key[MAP_LINE_MAX + 1] = '\0';
    map = map_open("static:x", &err);
    assert_non_null(map);
    expect(map, key, MAP_NOTFOUND, "");
    key[MAP_LINE_MAX] = '\0';
    expect(map, key, MAP_FOUND, "x");
    map_close(map);
    free(key);
    sb_free(&err);
}

static void test_token(void **state)
{
    struct strbuf tok = STRBUF_INIT, err = STRBUF_INIT;
    const char *cp = " hash:/a,hash:/b  inline:{ a=b, {c = d e} } ,static:{x y},";

    (void) state;
    assert_int_equal(map_token(&cp, &tok, &err), 1);
    assert_string_equal(sb_str(&tok), "hash:/a");
    assert_int_equal(map_token(&cp, &tok, &err), 1);
    assert_string_equal(sb_str(&tok), "hash:/b");
    assert_int_equal(map_token(&cp, &tok, &err), 1);
    assert_string_equal(sb_str(&tok), "inline:{ a=b, {c = d e} }");
    assert_int_equal(map_token(&cp, &tok, &err), 1);
    assert_string_equal(sb_str(&tok), "static:{x y}");
    assert_int_equal(map_token(&cp, &tok, &err), 0);
    assert_int_equal(map_token(&cp, &tok, &err), 0);

    cp = "a}b";
    assert_int_equal(map_token(&cp, &tok, &err), -1);
    assert_non_null(strstr(sb_str(&err), "'}' without '{'"));
    sb_reset(&err);
    cp = "inline:{a=b";
    assert_int_equal(map_token(&cp, &tok, &err), -1);
    assert_non_null(strstr(sb_str(&err), "missing '}'"));

    sb_reset(&err);
    assert_int_equal(map_unbrace("  { inner text }  ", &tok, &err), 0);
    assert_string_equal(sb_str(&tok), "inner text");
    assert_int_equal(map_unbrace("{}", &tok, &err), 0);
    assert_string_equal(sb_str(&tok), "");
    assert_int_equal(map_unbrace("no braces", &tok, &err), -1);
    assert_int_equal(map_unbrace("{a}{b}", &tok, &err), -1);
    sb_free(&tok);
    sb_free(&err);
}

static void test_maplist(void **state)
{
    struct strbuf err = STRBUF_INIT, v = STRBUF_INIT;
    struct maplist *list;

    (void) state;
    list = maplist_open("", &err);
    assert_non_null(list);
    assert_true(maplist_empty(list));
    assert_int_equal(maplist_lookup(list, "x", &v), MAP_NOTFOUND);
    assert_false(maplist_changed(list));
    maplist_close(list);
    list = maplist_open(" , \t ", &err);
    assert_non_null(list);
    assert_true(maplist_empty(list));
    maplist_close(list);
    list = maplist_open(NULL, &err);
    assert_non_null(list);
    assert_true(maplist_empty(list));
    maplist_close(list);

    list = maplist_open("inline:{a=first, {b = with, comma}}, inline:{a=second c=third}"
                        " static:{fallback value}", &err);
    if (list == NULL)
        fail_msg("%s", sb_str(&err));
    assert_false(maplist_empty(list));
    assert_int_equal(maplist_lookup(list, "A", &v), MAP_FOUND);
    assert_string_equal(sb_str(&v), "first");
    assert_int_equal(maplist_lookup(list, "b", &v), MAP_FOUND);
    assert_string_equal(sb_str(&v), "with, comma");
    assert_int_equal(maplist_lookup(list, "c", &v), MAP_FOUND);
    assert_string_equal(sb_str(&v), "third");
    assert_int_equal(maplist_lookup(list, "zzz", &v), MAP_FOUND);
    assert_string_equal(sb_str(&v), "fallback value");
    assert_int_equal(maplist_lookup(list, "", &v), MAP_NOTFOUND);
    assert_false(maplist_changed(list));
    maplist_close(list);

    list = maplist_open("inline:{a=1}", &err);
    assert_non_null(list);
    assert_int_equal(maplist_lookup(list, "b", &v), MAP_NOTFOUND);
    assert_string_equal(sb_str(&v), "");
    maplist_close(list);

    /* One bad member fails the whole list, naming it. */
    assert_null(maplist_open("inline:{a=1}, hash:/nonexistent/t", &err));
    assert_non_null(strstr(sb_str(&err), "open /nonexistent/t.db"));
    assert_null(maplist_open("inline:{a=1}, bogus:x", &err));
    assert_non_null(strstr(sb_str(&err), "unknown map type 'bogus'"));
    assert_null(maplist_open("inline:{a=1, static:x", &err));
    assert_non_null(strstr(sb_str(&err), "missing '}'"));
    sb_free(&err);
    sb_free(&v);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_spec_errors),
        cmocka_unit_test(test_static),
        cmocka_unit_test(test_inline),
        cmocka_unit_test(test_long_key),
        cmocka_unit_test(test_token),
        cmocka_unit_test(test_maplist),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
