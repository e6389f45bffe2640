/*
 * test_address - lib/address.c: RFC 5321 paths as MAIL FROM / RCPT TO carry
 * them: normal, null, routed, unbracketed, quoted, literal, trailing-dot,
 * UTF-8 and unqualified addresses; every malformed form and length limit;
 * where the parser stops so ESMTP parameters can follow.
 */
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "address.h"
#include "strbuf.h"

struct good_case {
    const char *text;
    unsigned options;
    long used;                          /* -1: whole text */
    const char *addr;
    const char *local;
    const char *domain;
    unsigned flags;
};

static const struct good_case good_cases[] = {
    {"<user@example.com>", 0, -1, "user@example.com", "user", "example.com", 0},
    {"<User.Name+tag@Example.COM>", 0, -1, "User.Name+tag@Example.COM",
     "User.Name+tag", "Example.COM", 0},
    {"<>", ADDRESS_ALLOW_NULL, -1, "", "", "", ADDRESS_NULL},
    {"<> SIZE=100", ADDRESS_ALLOW_NULL, 2, "", "", "", ADDRESS_NULL},
    {"<a@b.example> SIZE=100 BODY=8BITMIME", 0, 13, "a@b.example", "a", "b.example", 0},
    {"user@example.com", 0, -1, "user@example.com", "user", "example.com", ADDRESS_NO_BRACKETS},
    {"user@example.com SIZE=5", 0, 16, "user@example.com", "user", "example.com",
     ADDRESS_NO_BRACKETS},
    {"<@relay.example,@[192.0.2.1]:joe@example.org>", 0, -1, "joe@example.org", "joe",
     "example.org", ADDRESS_ROUTE},
    {"<@a.example:joe@example.org>", 0, -1, "joe@example.org", "joe", "example.org",
     ADDRESS_ROUTE},
    {"<\"john doe\"@example.com>", 0, -1, "\"john doe\"@example.com", "john doe",
     "example.com", ADDRESS_QUOTED},
    {"<\"a\\\"b\\\\c\"@example.com>", 0, -1, "\"a\\\"b\\\\c\"@example.com", "a\"b\\c",
     "example.com", ADDRESS_QUOTED},
    /* Quotes that were not needed are dropped from the canonical form. */
    {"<\"plain\"@example.com>", 0, -1, "plain@example.com", "plain", "example.com", 0},
    /* A quoted ">" does not end the path. */
    {"<\"x>y\"@example.com>", 0, -1, "\"x>y\"@example.com", "x>y", "example.com",
     ADDRESS_QUOTED},
    /* Postfix accepts odd dots; the canonical form quotes them. */
    {"<a..b@example.com>", 0, -1, "\"a..b\"@example.com", "a..b", "example.com",
     ADDRESS_QUOTED},
    {"<user@[192.0.2.1]>", 0, -1, "user@[192.0.2.1]", "user", "[192.0.2.1]", ADDRESS_LITERAL},
    {"<user@[IPv6:2001:db8::1]>", 0, -1, "user@[IPv6:2001:db8::1]", "user",
     "[IPv6:2001:db8::1]", ADDRESS_LITERAL},
    {"<user@[ipv6:::1]>", 0, -1, "user@[ipv6:::1]", "user", "[ipv6:::1]", ADDRESS_LITERAL},
    {"<user@example.com.>", 0, -1, "user@example.com.", "user", "example.com.",
     ADDRESS_TRAILING_DOT},
    {"<j\xc3\xb6rg@b\xc3\xbc" "cher.example>", 0, -1, "j\xc3\xb6rg@b\xc3\xbc" "cher.example",
     "j\xc3\xb6rg", "b\xc3\xbc" "cher.example", ADDRESS_8BIT},
    {"<\xe7\x94\xa8\xe6\x88\xb7@example.com>", 0, -1, "\xe7\x94\xa8\xe6\x88\xb7@example.com",
     "\xe7\x94\xa8\xe6\x88\xb7", "example.com", ADDRESS_8BIT},
    {"<postmaster>", 0, -1, "postmaster", "postmaster", "", ADDRESS_NO_DOMAIN},
    {"<under_score@mail_host.example>", 0, -1, "under_score@mail_host.example",
     "under_score", "mail_host.example", 0},
};

struct bad_case {
    const char *text;
    unsigned options;
    const char *reason;
};

static const struct bad_case bad_cases[] = {
    {"<>", 0, "null address not allowed"},
    {"<>iiii", ADDRESS_ALLOW_NULL, "text after address"},      /* found by fuzz_address */
    {"", ADDRESS_ALLOW_NULL, "empty address"},
    {"<", ADDRESS_ALLOW_NULL, "missing closing '>'"},
    {"<a@b", 0, "missing closing '>'"},
    {"<a@b.example", 0, "missing closing '>'"},
    {"<\"john doe@example.com>", 0, "unbalanced quotes"},
    {"<\"john\\", 0, "unbalanced quotes"},
    {"<jo\"hn@example.com>", 0, "unbalanced quotes"},
    {"<\"john\"x@example.com>", 0, "text after quoted local part"},
    {"<@>", 0, "empty local part"},
    {"@", 0, "empty local part"},
    {"<@example.com>", 0, "empty local part"},
    {"<\"\"@example.com>", 0, "empty local part"},
    {"<a@>", 0, "empty domain"},
    {"a@", 0, "empty domain"},
    {"<a@.example>", 0, "empty label in domain"},
    {"<a@b..example>", 0, "empty label in domain"},
    {"<a@.>", 0, "empty label in domain"},
    {"<a@-b.example>", 0, "domain label starts with '-'"},
    {"<a@b-.example>", 0, "domain label ends with '-'"},
    {"<a@b@c>", 0, "bad character in domain"},
    {"<a@b!c>", 0, "bad character in domain"},
    {"<a b@example.com>", 0, "space in address"},
    {"<a@example.com >", 0, "space in address"},
    {"<a@exa mple.com>", 0, "space in address"},
    {"<a\tb@example.com>", 0, "control character in address"},
    {"<a@exa\rmple.com>", 0, "control character in address"},
    {"<\"a\x01\"@example.com>", 0, "control character in address"},
    {"<\"a\\\x7f\"@example.com>", 0, "control character in address"},
    {"<a(b)@example.com>", 0, "bad character in local part"},
    {"<a,b@example.com>", 0, "bad character in local part"},
    {"<a@example.com>x", 0, "text after address"},
    {"<a@[192.0.2.1]x>", 0, "bad character in domain"},
    {"<a@[192.0.2.256]>", 0, "bad IPv4 address literal"},
    {"<a@[192.0.2]>", 0, "bad IPv4 address literal"},
    {"<a@[IPv6:2001:db8::g]>", 0, "bad IPv6 address literal"},
    {"<a@[x-tag:whatever]>", 0, "unsupported address literal"},
    {"<a@[192.0.2.1>", 0, "bad address literal"},
    {"<a@[]>", 0, "bad address literal"},
    {"<@bad!route:a@example.com>", 0, "bad source route"},
    {"<@a.example,b.example:a@example.com>", 0, "bad source route"},
    {"<@:a@example.com>", 0, "bad source route"},
    {"<\xc3@example.com>", 0, "invalid UTF-8 in local part"},
    {"<a@\xc0\xaf.example>", 0, "invalid UTF-8 in domain"},
    {"<\xed\xa0\x80@example.com>", 0, "invalid UTF-8 in local part"},
    {"a@b>", 0, "bad character in domain"},
};

/* check_good - parse and compare every field */
static void check_good(const struct good_case *c)
{
    struct address a;
    const char *reason = "unset";
    long    used;

    address_init(&a);
    used = address_parse_path(c->text, strlen(c->text), c->options, &a, &reason);
    if (used < 0)
        fail_msg("\"%s\": unexpected error: %s", c->text, reason);
    assert_null(reason);
    assert_int_equal(used, c->used < 0 ? (long) strlen(c->text) : c->used);
    assert_string_equal(sb_str(&a.addr), c->addr);
    assert_string_equal(sb_str(&a.local), c->local);
    assert_string_equal(sb_str(&a.domain), c->domain);
    if (a.flags != c->flags)
        fail_msg("\"%s\": flags 0x%x, expected 0x%x", c->text, a.flags, c->flags);
    address_free(&a);
}

/* test_good - every valid form */
static void test_good(void **state)
{
    (void) state;
    for (size_t i = 0; i < sizeof(good_cases) / sizeof(good_cases[0]); i++)
        check_good(&good_cases[i]);
}

/* test_bad - every malformed form fails with its reason and leaves nothing behind */
static void test_bad(void **state)
{
    (void) state;
    for (size_t i = 0; i < sizeof(bad_cases) / sizeof(bad_cases[0]); i++) {
        const struct bad_case *c = &bad_cases[i];
        struct address a;
        const char *reason = NULL;

        address_init(&a);
        if (address_parse_path(c->text, strlen(c->text), c->options, &a, &reason) != -1)
            fail_msg("\"%s\": accepted as \"%s\"", c->text, sb_str(&a.addr));
        assert_non_null(reason);
        if (strcmp(reason, c->reason) != 0)
            fail_msg("\"%s\": reason \"%s\", expected \"%s\"", c->text, reason, c->reason);
        assert_int_equal(sb_len(&a.addr), 0);
        assert_int_equal(a.flags, 0);
        address_free(&a);
    }
}

/* test_nul_byte - a NUL inside the path is a control character, not an end */
static void test_nul_byte(void **state)
{
    static const char text[] = "<a\0b@example.com>";
    struct address a;
    const char *reason;

    (void) state;
    address_init(&a);
    assert_int_equal(address_parse_path(text, sizeof(text) - 1, 0, &a, &reason), -1);
    assert_string_equal(reason, "control character in address");
    address_free(&a);
}

/* repeat - a string of n copies of c */
static void repeat(struct strbuf *sb, char c, size_t n)
{
    for (size_t i = 0; i < n; i++)
        sb_putc(sb, c);
}

/* parse_text - parse sb; returns the reason or NULL */
static const char *parse_text(const struct strbuf *sb)
{
    struct address a;
    const char *reason;

    address_init(&a);
    address_parse_path(sb_str(sb), sb_len(sb), 0, &a, &reason);
    address_free(&a);
    return reason;
}

/* test_limits - 64/255/256 octets are the most, one more is an error */
static void test_limits(void **state)
{
    struct strbuf sb = STRBUF_INIT;
    const char *reason;

    (void) state;
    /* local part: 64 ok, 65 too long */
    sb_set(&sb, "<");
    repeat(&sb, 'l', 64);
    sb_puts(&sb, "@example.com>");
    assert_null(parse_text(&sb));
    sb_set(&sb, "<");
    repeat(&sb, 'l', 65);
    sb_puts(&sb, "@example.com>");
    assert_string_equal(parse_text(&sb), "local part too long");

    /* A quoted local part counts as written, quotes included. */
    sb_set(&sb, "<\"");
    repeat(&sb, 'q', 63);
    sb_puts(&sb, "\"@example.com>");
    assert_string_equal(parse_text(&sb), "local part too long");

    /* label: 63 ok, 64 too long */
    sb_set(&sb, "<a@");
    repeat(&sb, 'd', 63);
    sb_puts(&sb, ".example>");
    assert_null(parse_text(&sb));
    sb_set(&sb, "<a@");
    repeat(&sb, 'd', 64);
    sb_puts(&sb, ".example>");
    assert_string_equal(parse_text(&sb), "domain label too long");

    /* domain over 255 */
    sb_set(&sb, "<a@");
    for (int i = 0; i < 5; i++) {
        repeat(&sb, 'd', 60);
        sb_putc(&sb, '.');
    }
    sb_puts(&sb, "example>");
    assert_string_equal(parse_text(&sb), "domain too long");

    /* path: 256 with brackets ok, 257 too long */
    sb_set(&sb, "<");
    repeat(&sb, 'l', 60);
    sb_putc(&sb, '@');
    for (int i = 0; i < 3; i++) {
        repeat(&sb, 'd', 60);
        sb_putc(&sb, '.');
    }
    repeat(&sb, 'e', 256 - 2 - 61 - 183);
    sb_putc(&sb, '>');
    assert_int_equal(sb_len(&sb), 256);
    assert_null(parse_text(&sb));
    sb_truncate(&sb, 255);
    sb_puts(&sb, "e>");
    assert_int_equal(sb_len(&sb), 257);
    reason = parse_text(&sb);
    assert_non_null(reason);
    assert_string_equal(reason, "address too long");

    /* The same without brackets: limit is the written address + 2. */
    {
        struct strbuf bare = STRBUF_INIT;

        sb_append(&bare, sb_str(&sb) + 1, sb_len(&sb) - 2);
        assert_string_equal(parse_text(&bare), "address too long");
        sb_truncate(&bare, sb_len(&bare) - 1);
        assert_null(parse_text(&bare));     /* 254 + 2 */
        sb_free(&bare);
    }

    /* A huge input fails fast and safely. */
    sb_set(&sb, "<");
    repeat(&sb, 'x', 100000);
    assert_string_equal(parse_text(&sb), "local part too long");
    sb_free(&sb);
}

/* test_reuse - a struct parsed twice holds only the second result */
static void test_reuse(void **state)
{
    struct address a;
    const char *reason;

    (void) state;
    address_init(&a);
    assert_true(address_parse_path("<\"x y\"@[192.0.2.1]>", 19, 0, &a, &reason) > 0);
    assert_int_equal(a.flags, ADDRESS_QUOTED | ADDRESS_LITERAL);
    assert_true(address_parse_path("<b@c>", 5, 0, &a, &reason) > 0);
    assert_string_equal(sb_str(&a.addr), "b@c");
    assert_string_equal(sb_str(&a.local), "b");
    assert_int_equal(a.flags, 0);
    address_free(&a);
}

/* test_quote_local - quoting is applied exactly when needed */
static void test_quote_local(void **state)
{
    struct strbuf sb = STRBUF_INIT;

    (void) state;
    address_quote_local(&sb, "a.b-c", 5);
    assert_string_equal(sb_str(&sb), "a.b-c");
    sb_reset(&sb);
    address_quote_local(&sb, ".a", 2);
    assert_string_equal(sb_str(&sb), "\".a\"");
    sb_reset(&sb);
    address_quote_local(&sb, "a.", 2);
    assert_string_equal(sb_str(&sb), "\"a.\"");
    sb_reset(&sb);
    address_quote_local(&sb, "x\"y\\z", 5);
    assert_string_equal(sb_str(&sb), "\"x\\\"y\\\\z\"");
    sb_reset(&sb);
    address_quote_local(&sb, "", 0);
    assert_string_equal(sb_str(&sb), "\"\"");
    sb_free(&sb);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_good),
        cmocka_unit_test(test_bad),
        cmocka_unit_test(test_nul_byte),
        cmocka_unit_test(test_limits),
        cmocka_unit_test(test_reuse),
        cmocka_unit_test(test_quote_local),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
