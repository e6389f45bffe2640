/*
 * test_xtext - lib/xtext.c: RFC 3461 xtext decoding (plain characters, hex
 * escapes, every kind of bad input: a cut "+", lower-case or non-hex digits,
 * "=", spaces, controls, 8-bit bytes, escaped controls) and encoding, with a
 * round trip over every printable character.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <string.h>
#include <cmocka.h>

#include "strbuf.h"
#include "xtext.h"

/* decodes_to - xtext_decode(in) succeeds with want */
static void decodes_to(const char *in, const char *want)
{
    struct strbuf out = STRBUF_INIT;

    if (!xtext_decode(in, strlen(in), &out))
        fail_msg("\"%s\": refused", in);
    assert_string_equal(sb_str(&out), want);
    sb_free(&out);
}

/* refused - xtext_decode(in) fails */
static void refused(const char *in)
{
    struct strbuf out = STRBUF_INIT;

    if (xtext_decode(in, strlen(in), &out))
        fail_msg("\"%s\": accepted as \"%s\"", in, sb_str(&out));
    sb_free(&out);
}

static void test_decode(void **state)
{
    (void) state;
    decodes_to("", "");
    decodes_to("abc.123@example.com", "abc.123@example.com");
    decodes_to("rfc822;a+2Bb@example.com", "rfc822;a+b@example.com");
    decodes_to("+3D+2B+20x", "=+ x");
    decodes_to("QQ+7E", "QQ~");
    refused("a+");
    refused("a+2");
    refused("a+2b");                    /* lower-case hex */
    refused("a+G0");
    refused("a=b");
    refused("a b");
    refused("a\tb");
    refused("caf\xc3\xa9");
    refused("+00");                     /* NUL */
    refused("+0D+0A");                  /* CR LF */
    refused("+7F");
    refused("+80");
}

static void test_encode(void **state)
{
    struct strbuf out = STRBUF_INIT;
    struct strbuf back = STRBUF_INIT;
    char    all[96];

    (void) state;
    xtext_encode("a+b=c d", 7, &out);
    assert_string_equal(sb_str(&out), "a+2Bb+3Dc+20d");
    sb_reset(&out);
    for (int i = 0; i < 95; i++)
        all[i] = (char) (32 + i);
    all[95] = 0;
    xtext_encode(all, 95, &out);
    assert_true(xtext_decode(sb_str(&out), sb_len(&out), &back));
    assert_string_equal(sb_str(&back), all);
    sb_free(&out);
    sb_free(&back);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_decode),
        cmocka_unit_test(test_encode),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
