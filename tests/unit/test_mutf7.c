/*
 * test_mutf7 - lib/mutf7.c: RFC 3501 5.1.3 examples, canonical-form rules,
 * surrogate pairs, control characters and invalid UTF-8.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "mutf7.h"
#include "strbuf.h"

static const char *const pairs[][2] = {        /* modified UTF-7, UTF-8 */
    {"", ""},
    {"INBOX", "INBOX"},
    {"&Jjo-!", "\xe2\x98\xba!"},
    {"Entw&APw-rfe", "Entw\xc3\xbcrfe"},
    {"~peter/mail/&U,BTFw-/&ZeVnLIqe-", "~peter/mail/\xe5\x8f\xb0\xe5\x8c\x97/\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e"},
    {"&-", "&"},
    {"&-&-", "&&"},
    {"a&-b", "a&b"},
    {"&Jjo-&-", "\xe2\x98\xba&"},
    {"&AOQA5A-", "\xc3\xa4\xc3\xa4"},
    {"&2D3eAA-", "\xf0\x9f\x98\x80"},               /* U+1F600: a surrogate pair */
    {"x&2D3eANg93gA-y", "x\xf0\x9f\x98\x80\xf0\x9f\x98\x80y"},
    {"Sent &- Gesendet", "Sent & Gesendet"},
    {"&AKA-", "\xc2\xa0"},                          /* U+00A0, first non-control above ASCII */
    {"&,,8-", "\xef\xbf\xbf"},                      /* U+FFFF: all base64 bits used */
};

static void round_trip(void **state)
{
    struct strbuf out = STRBUF_INIT;

    (void) state;
    for (size_t i = 0; i < sizeof(pairs) / sizeof(pairs[0]); i++) {
        assert_true(mutf7_valid(pairs[i][0]));
        sb_reset(&out);
        assert_int_equal(mutf7_to_utf8(pairs[i][0], &out), 0);
        assert_string_equal(sb_str(&out), pairs[i][1]);
        sb_reset(&out);
        assert_int_equal(mutf7_from_utf8(pairs[i][1], &out), 0);
        assert_string_equal(sb_str(&out), pairs[i][0]);
    }
    sb_free(&out);
}

static void appends(void **state)
{
    struct strbuf out = STRBUF_INIT;

    (void) state;
    sb_set(&out, "pre:");
    assert_int_equal(mutf7_to_utf8("&Jjo-", &out), 0);
    assert_string_equal(sb_str(&out), "pre:\xe2\x98\xba");
    assert_int_equal(mutf7_from_utf8("\xc3\xbc", &out), 0);
    assert_string_equal(sb_str(&out), "pre:\xe2\x98\xba&APw-");
    sb_free(&out);
}

static void invalid_mutf7(void **state)
{
    static const char *const bad[] = {
        "&U,BTFw",              /* unterminated */
        "&Jjo!",                /* junk inside the run */
        "&AGE-",                /* "a" shifted: must stand for itself */
        "&ACY-",                /* "&" shifted: must be "&-" */
        "&ACA-",                /* space shifted */
        "&",                    /* lone & at the end */
        "a&",
        "&AOQ-&AOQ-",           /* two runs back to back: one run is canonical */
        "&Jjp-",                /* non-zero padding bits */
        "&JjoA-",               /* a base64 character too many */
        "&Jj-",                 /* too short for one UTF-16 unit */
        "&2D0-",                /* lone high surrogate */
        "&2D3YPQ-",             /* high surrogate followed by high */
        "&3gA-",                /* lone low surrogate */
        "&AAA-",                /* NUL */
        "&AAo-",                /* LF */
        "&AH8-",                /* DEL */
        "&AIU-",                /* C1 control U+0085 */
        "a\tb",                 /* raw control */
        "a\x7f",
        "\xc3\xbc",             /* raw 8-bit */
        "&Jjo/-",               /* "/" is not modified base64 */
        "&Jjo=-",
    };
    struct strbuf out = STRBUF_INIT;

    (void) state;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        sb_set(&out, "kept");
        if (mutf7_valid(bad[i]))
            fail_msg("accepted as valid: %s", bad[i]);
        assert_int_equal(mutf7_to_utf8(bad[i], &out), -1);
        assert_string_equal(sb_str(&out), "kept");
    }
    sb_free(&out);
}

static void invalid_utf8(void **state)
{
    static const char *const bad[] = {
        "\xc3",                 /* truncated */
        "\xc3(",                /* bad continuation */
        "\xc0\xaf",             /* overlong "/" */
        "\xe0\x80\xaf",         /* overlong */
        "\xed\xa0\x80",         /* UTF-16 surrogate in UTF-8 */
        "\xf4\x90\x80\x80",     /* above U+10FFFF */
        "\xff",
        "\x80",
        "a\nb",                 /* control */
        "\x01",
        "\xc2\x85",             /* C1 control */
        "\x7f",
    };
    struct strbuf out = STRBUF_INIT;

    (void) state;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        sb_set(&out, "kept");
        assert_int_equal(mutf7_from_utf8(bad[i], &out), -1);
        assert_string_equal(sb_str(&out), "kept");
    }
    sb_free(&out);
}

/* every BMP character and a sample of astral ones survive both ways, and the
 * encoder's output is always accepted as canonical */
static void exhaustive(void **state)
{
    struct strbuf u8 = STRBUF_INIT, m7 = STRBUF_INIT, back = STRBUF_INIT;

    (void) state;
    for (uint32_t cp = 0x20; cp <= 0x10ffff; cp += (cp < 0x10000 ? 1 : 97)) {
        char    b[8];
        size_t  n;

        if (cp >= 0xd800 && cp <= 0xdfff)
            continue;
        if (cp >= 0x7f && cp <= 0x9f)
            continue;
        if (cp < 0x80)
            b[0] = (char) cp, n = 1;
        else if (cp < 0x800)
            b[0] = (char) (0xc0 | (cp >> 6)), b[1] = (char) (0x80 | (cp & 0x3f)), n = 2;
        else if (cp < 0x10000)
            b[0] = (char) (0xe0 | (cp >> 12)), b[1] = (char) (0x80 | ((cp >> 6) & 0x3f)),
                b[2] = (char) (0x80 | (cp & 0x3f)), n = 3;
        else
            b[0] = (char) (0xf0 | (cp >> 18)), b[1] = (char) (0x80 | ((cp >> 12) & 0x3f)),
                b[2] = (char) (0x80 | ((cp >> 6) & 0x3f)), b[3] = (char) (0x80 | (cp & 0x3f)), n = 4;
        sb_set(&u8, "x");
        sb_append(&u8, b, n);
        sb_append(&u8, b, n);           /* two in a row: one run of 2 or 4 units */
        sb_reset(&m7);
        assert_int_equal(mutf7_from_utf8(sb_str(&u8), &m7), 0);
        assert_true(mutf7_valid(sb_str(&m7)));
        sb_reset(&back);
        assert_int_equal(mutf7_to_utf8(sb_str(&m7), &back), 0);
        assert_string_equal(sb_str(&back), sb_str(&u8));
    }
    sb_free(&u8), sb_free(&m7), sb_free(&back);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(round_trip),
        cmocka_unit_test(appends),
        cmocka_unit_test(invalid_mutf7),
        cmocka_unit_test(invalid_utf8),
        cmocka_unit_test(exhaustive),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
