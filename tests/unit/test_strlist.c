/*
 * test_strlist - lib/strlist.c: adding copies, growth past the first
 * allocation, exact and case-insensitive membership, splitting lists on
 * commas and white space (empty items, only separators), freeing and reuse.
 */
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "strlist.h"

static void test_add_copies(void **state)
{
    struct strlist l = STRLIST_INIT;
    char    buf[16] = "first";

    (void) state;
    strlist_add(&l, buf);
    memcpy(buf, "changed", 8);
    assert_int_equal(l.count, 1);
    assert_string_equal(l.items[0], "first");   /* a copy, not the caller's buffer */
    assert_true(l.items[0] != buf);
    strlist_add(&l, "");
    assert_int_equal(l.count, 2);
    assert_string_equal(l.items[1], "");
    strlist_free(&l);
}

static void test_growth(void **state)
{
    struct strlist l = STRLIST_INIT;
    char    buf[32];

    (void) state;
    for (int i = 0; i < 1000; i++) {
        snprintf(buf, sizeof(buf), "item%d", i);
        strlist_add(&l, buf);
    }
    assert_int_equal(l.count, 1000);
    assert_true(l.cap >= l.count);
    for (int i = 0; i < 1000; i++) {
        snprintf(buf, sizeof(buf), "item%d", i);
        assert_string_equal(l.items[i], buf);  /* order kept across reallocations */
    }
    assert_true(strlist_contains(&l, "item999"));
    assert_false(strlist_contains(&l, "item1000"));
    strlist_free(&l);
}

static void test_contains(void **state)
{
    struct strlist l = STRLIST_INIT;

    (void) state;
    assert_false(strlist_contains(&l, "x"));    /* empty list */
    assert_false(strlist_contains_nocase(&l, "x"));
    strlist_add(&l, "Example.COM");
    strlist_add(&l, "other.test");
    assert_true(strlist_contains(&l, "Example.COM"));
    assert_false(strlist_contains(&l, "example.com"));
    assert_false(strlist_contains(&l, "Example.CO"));   /* no prefix match */
    assert_false(strlist_contains(&l, "Example.COMX"));
    assert_true(strlist_contains_nocase(&l, "example.com"));
    assert_true(strlist_contains_nocase(&l, "OTHER.TEST"));
    assert_false(strlist_contains_nocase(&l, "other.tes"));
    assert_false(strlist_contains(&l, ""));
    strlist_free(&l);
}

static void test_split(void **state)
{
    struct strlist l = STRLIST_INIT;

    (void) state;
    strlist_split(&l, "a, b c,d\te\r\nf");
    assert_int_equal(l.count, 6);
    assert_string_equal(l.items[0], "a");
    assert_string_equal(l.items[1], "b");
    assert_string_equal(l.items[2], "c");
    assert_string_equal(l.items[3], "d");
    assert_string_equal(l.items[4], "e");
    assert_string_equal(l.items[5], "f");
    strlist_free(&l);

    /* Empty items between separators and leading/trailing separators vanish. */
    strlist_split(&l, " ,,, x ,, y ,, ");
    assert_int_equal(l.count, 2);
    assert_string_equal(l.items[0], "x");
    assert_string_equal(l.items[1], "y");
    strlist_free(&l);

    strlist_split(&l, "");
    assert_int_equal(l.count, 0);
    strlist_split(&l, " , \t\n");
    assert_int_equal(l.count, 0);

    /* Splitting appends to what the list holds; map specs keep their colons. */
    strlist_add(&l, "first");
    strlist_split(&l, "hash:/etc/postern/aliases, texthash:/x");
    assert_int_equal(l.count, 3);
    assert_string_equal(l.items[0], "first");
    assert_string_equal(l.items[1], "hash:/etc/postern/aliases");
    assert_string_equal(l.items[2], "texthash:/x");
    strlist_free(&l);
}

static void test_free_and_reuse(void **state)
{
    struct strlist l = STRLIST_INIT;

    (void) state;
    strlist_free(&l);                           /* freeing an empty list is fine */
    strlist_add(&l, "a");
    strlist_free(&l);
    assert_null(l.items);
    assert_int_equal(l.count, 0);
    assert_int_equal(l.cap, 0);
    strlist_add(&l, "b");                       /* usable again after free */
    assert_int_equal(l.count, 1);
    assert_string_equal(l.items[0], "b");
    strlist_free(&l);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_add_copies),
        cmocka_unit_test(test_growth),
        cmocka_unit_test(test_contains),
        cmocka_unit_test(test_split),
        cmocka_unit_test(test_free_and_reuse),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
