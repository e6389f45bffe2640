/*
 * test_utf8 - lib/utf8.c: the strict decoder (every shortest spelling taken,
 * overlongs, surrogates, values past U+10FFFF, truncated and stray bytes
 * refused) and the encoder, with a round trip over every code point.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "strbuf.h"
#include "utf8.h"

/* length_of - what utf8_char_len says of the bytes of s (as a string) */
static size_t length_of(const char *s, size_t len, uint32_t *cp)
{
    return utf8_char_len((const unsigned char *) s, len, cp);
}

static void test_decode(void **state)
{
    uint32_t cp = 0;

    (void) state;
    assert_int_equal(length_of("a", 1, &cp), 1);
    assert_int_equal(cp, 'a');
    assert_int_equal(length_of("\xc3\xb6", 2, &cp), 2);
    assert_int_equal(cp, 0xf6);
    assert_int_equal(length_of("\xe2\x82\xac", 3, &cp), 3);
    assert_int_equal(cp, 0x20ac);
    assert_int_equal(length_of("\xf0\x9f\x93\xa7", 4, &cp), 4);
    assert_int_equal(cp, 0x1f4e7);
    assert_int_equal(length_of("\xf4\x8f\xbf\xbf", 4, &cp), 4);
    assert_int_equal(cp, 0x10ffff);
    /* refused: overlong "/" in 2, 3 and 4 bytes, surrogates, past U+10FFFF, bad lead bytes */
    const char *bad[] = {"\xc0\xaf", "\xc1\xbf", "\xe0\x80\xaf", "\xf0\x80\x80\xaf", "\xed\xa0\x80",
                         "\xed\xbf\xbf", "\xf4\x90\x80\x80", "\xf5\x80\x80\x80", "\xff", "\x80",
                         "\xbf", "\xf8\x88\x80\x80\x80"};

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        if (length_of(bad[i], strlen(bad[i]), NULL) != 0)
            fail_msg("bad sequence %zu taken", i);
    /* truncated: by the length given, and by a NUL where a continuation byte should be */
    assert_int_equal(length_of("\xe2\x82\xac", 2, NULL), 0);
    assert_int_equal(length_of("\xe2\x82", 3, NULL), 0);
    assert_int_equal(length_of("", 0, NULL), 0);
}

static void test_valid(void **state)
{
    (void) state;
    assert_true(utf8_valid("", 0));
    assert_true(utf8_valid("j\xc3\xb6rg@example.test", 18));
    assert_true(utf8_valid("a\0b", 3));                 /* U+0000 is a character */
    assert_false(utf8_valid("j\xc3rg", 4));
    assert_false(utf8_valid("ok\xc3", 3));              /* cut at the end */
    assert_false(utf8_valid("\xc0\xae\xc0\xae/", 5));   /* overlong ".." */
}

/* every code point but the surrogates: encoded, then decoded to itself, in the shortest form */
static void test_round_trip(void **state)
{
    struct strbuf out = STRBUF_INIT;

    (void) state;
    for (uint32_t cp = 0; cp <= 0x10ffff; cp++) {
        uint32_t back = 0xffffffff;
        size_t  want = cp < 0x80 ? 1 : cp < 0x800 ? 2 : cp < 0x10000 ? 3 : 4;

        if (cp >= 0xd800 && cp <= 0xdfff)
            continue;
        sb_reset(&out);
        utf8_put(&out, cp);
        if (sb_len(&out) != want || length_of(sb_str(&out), sb_len(&out), &back) != want || back != cp)
            fail_msg("U+%04X: %zu bytes, decoded as U+%04X", (unsigned) cp, sb_len(&out), (unsigned) back);
    }
    sb_free(&out);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_decode),
        cmocka_unit_test(test_valid),
        cmocka_unit_test(test_round_trip),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
