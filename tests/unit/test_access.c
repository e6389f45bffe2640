/*
 * test_access - lib/access.c: access(5) results and policy actions (each
 * kind, codes with and without enhanced codes, texts, case, junk), lookup
 * keys for client addresses, domains and e-mail addresses as Postfix makes
 * them, reply wording with the enhanced code's class fixed up, and the host
 * name checks behind reject_invalid_helo_hostname and reject_non_fqdn_*.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "access.h"
#include "strbuf.h"
#include "strlist.h"

/* text_of - the action's text as a C string */
static const char *text_of(const struct access_action *a)
{
    static char buf[512];

    snprintf(buf, sizeof(buf), "%.*s", (int) a->text_len, a->text);
    return buf;
}

static void test_parse_kinds(void **state)
{
    struct access_action a;

    (void) state;
    access_parse("OK", &a);
    assert_int_equal(a.kind, ACCESS_OK);
    access_parse("ok", &a);
    assert_int_equal(a.kind, ACCESS_OK);
    access_parse("  12345", &a);
    assert_int_equal(a.kind, ACCESS_OK);
    access_parse("DUNNO", &a);
    assert_int_equal(a.kind, ACCESS_DUNNO);
    access_parse("REJECT", &a);
    assert_int_equal(a.kind, ACCESS_REJECT);
    assert_int_equal(a.code, 554);
    assert_string_equal(a.dsn, "5.7.1");
    assert_string_equal(text_of(&a), "");
    access_parse("reject go away  ", &a);
    assert_int_equal(a.kind, ACCESS_REJECT);
    assert_string_equal(text_of(&a), "go away");
    access_parse("DEFER busy", &a);
    assert_int_equal(a.kind, ACCESS_DEFER);
    assert_int_equal(a.code, 450);
    assert_string_equal(a.dsn, "4.7.1");
    assert_string_equal(text_of(&a), "busy");
    access_parse("DEFER_IF_PERMIT later", &a);
    assert_int_equal(a.kind, ACCESS_DEFER_IF_PERMIT);
    access_parse("defer_if_reject", &a);
    assert_int_equal(a.kind, ACCESS_DEFER_IF_REJECT);
    access_parse("WARN look at this", &a);
    assert_int_equal(a.kind, ACCESS_WARN);
    assert_string_equal(text_of(&a), "look at this");
    access_parse("PREPEND X-Greylist: delayed 60 seconds", &a);
    assert_int_equal(a.kind, ACCESS_UNSUPPORTED);
    access_parse("HOLD", &a);
    assert_int_equal(a.kind, ACCESS_UNSUPPORTED);
    /* Names that merely start like an action are restriction names. */
    access_parse("OKAY", &a);
    assert_int_equal(a.kind, ACCESS_RESTRICTIONS);
    access_parse("REJECTED", &a);
    assert_int_equal(a.kind, ACCESS_RESTRICTIONS);
    access_parse("permit_mynetworks, reject", &a);
    assert_int_equal(a.kind, ACCESS_RESTRICTIONS);
    assert_string_equal(text_of(&a), "permit_mynetworks, reject");
    access_parse("", &a);
    assert_int_equal(a.kind, ACCESS_RESTRICTIONS);
    assert_string_equal(text_of(&a), "");
}

static void test_parse_codes(void **state)
{
    struct access_action a;

    (void) state;
    access_parse("450 4.2.0 Greylisted, see http://example.test/", &a);
    assert_int_equal(a.kind, ACCESS_CODE);
    assert_int_equal(a.code, 450);
    assert_string_equal(a.dsn, "4.2.0");
    assert_string_equal(text_of(&a), "Greylisted, see http://example.test/");
    access_parse("550 no such user here", &a);
    assert_int_equal(a.code, 550);
    assert_string_equal(a.dsn, "5.7.1");
    assert_string_equal(text_of(&a), "no such user here");
    /* All digits is OK (a time stamp, as Postfix reads it); a code needs its space. */
    access_parse("521", &a);
    assert_int_equal(a.kind, ACCESS_OK);
    access_parse("521 ", &a);
    assert_int_equal(a.kind, ACCESS_CODE);
    assert_int_equal(a.code, 521);
    assert_string_equal(text_of(&a), "");
    /* Not an enhanced code: kept as text. */
    access_parse("550 5.1 short", &a);
    assert_string_equal(a.dsn, "5.7.1");
    assert_string_equal(text_of(&a), "5.1 short");
    access_parse("550 5.1234.1 long", &a);
    assert_string_equal(a.dsn, "5.7.1");
    /* Only 4xx and 5xx are replies an access table may give. */
    access_parse("250 fine", &a);
    assert_int_equal(a.kind, ACCESS_RESTRICTIONS);
    access_parse("4500 x", &a);
    assert_int_equal(a.kind, ACCESS_RESTRICTIONS);
}

/* keys_are - the list holds exactly the expected keys, in order (NULL-terminated) */
static void keys_are(const struct strlist *keys, ...)
{
    va_list ap;
    size_t  i = 0;
    const char *want;

    va_start(ap, keys);
    while ((want = va_arg(ap, const char *)) != NULL) {
        if (i >= keys->count)
            fail_msg("key %zu: missing, expected %s", i, want);
        if (strcmp(keys->items[i], want) != 0)
            fail_msg("key %zu: %s, expected %s", i, keys->items[i], want);
        i++;
    }
    va_end(ap);
    if (i != keys->count)
        fail_msg("%zu keys, expected %zu (extra: %s)", keys->count, i, keys->items[i]);
}

static void test_keys(void **state)
{
    struct strlist keys = STRLIST_INIT;

    (void) state;
    access_client_keys("192.0.2.17", &keys);
    keys_are(&keys, "192.0.2.17", "192.0.2", "192.0", "192", NULL);
    strlist_free(&keys);
    access_client_keys("2001:db8:1::5", &keys);
    keys_are(&keys, "2001:db8:1::5", "2001:db8:1:", "2001:db8:1", "2001:db8", "2001", NULL);
    strlist_free(&keys);
    access_client_keys("", &keys);
    keys_are(&keys, NULL);
    strlist_free(&keys);

    access_domain_keys("mail.sub.example.com", &keys);
    keys_are(&keys, "mail.sub.example.com", "sub.example.com", "example.com", "com", NULL);
    strlist_free(&keys);
    access_domain_keys("localhost", &keys);
    keys_are(&keys, "localhost", NULL);
    strlist_free(&keys);

    access_address_keys("joe@sub.example.com", "joe", "sub.example.com", false, &keys);
    keys_are(&keys, "joe@sub.example.com", "sub.example.com", "example.com", "com", "joe@",
             NULL);
    strlist_free(&keys);
    access_address_keys("", "", "", true, &keys);
    keys_are(&keys, "<>", NULL);
    strlist_free(&keys);
}

static void test_reply(void **state)
{
    struct strbuf out = STRBUF_INIT;

    (void) state;
    access_format_reply(&out, 554, "5.7.1", "joe@example.com", "Sender address", NULL, 0);
    assert_string_equal(sb_str(&out),
                        "554 5.7.1 <joe@example.com>: Sender address rejected: Access denied");
    /* A 4xx reply with a 5.x.x code from a table: the class follows the reply code. */
    access_format_reply(&out, 450, "5.7.1", "x", "Recipient address", "later", 5);
    assert_string_equal(sb_str(&out), "450 4.7.1 <x>: Recipient address rejected: later");
    /* Control characters from a policy service never reach the client. */
    access_format_reply(&out, 550, "5.1.1", "h", "Helo command", "a\r\nb", 4);
    assert_string_equal(sb_str(&out), "550 5.1.1 <h>: Helo command rejected: a  b");
    access_format_reply(&out, 451, "", "h", "Client host", "t", 1);
    assert_string_equal(sb_str(&out), "451 4.7.1 <h>: Client host rejected: t");
    sb_free(&out);
}

static void test_hostnames(void **state)
{
    (void) state;
    assert_true(access_valid_hostname("mail.example.com"));
    assert_true(access_valid_hostname("mail.example.com."));
    assert_true(access_valid_hostname("localhost"));
    assert_true(access_valid_hostname("a-b.c_d.example"));
    assert_true(access_valid_hostname("3com.com"));
    assert_false(access_valid_hostname(""));
    assert_false(access_valid_hostname("."));
    assert_false(access_valid_hostname("a..b"));
    assert_false(access_valid_hostname("-a.example"));
    assert_false(access_valid_hostname("a-.example"));
    assert_false(access_valid_hostname("a b.example"));
    assert_false(access_valid_hostname("a@b.example"));
    assert_false(access_valid_hostname("192.0.2.1"));
    assert_false(access_valid_hostname("[192.0.2.1]"));
    {
        char    label[80];

        memset(label, 'a', 64);
        label[64] = 0;
        assert_false(access_valid_hostname(label));
        label[63] = 0;
        assert_true(access_valid_hostname(label));
    }
    assert_true(access_valid_hostaddr("192.0.2.1"));
    assert_true(access_valid_hostaddr("[192.0.2.1]"));
    assert_true(access_valid_hostaddr("[IPv6:2001:db8::1]"));
    assert_true(access_valid_hostaddr("::1"));
    assert_false(access_valid_hostaddr("[192.0.2.256]"));
    assert_false(access_valid_hostaddr("[]"));
    assert_false(access_valid_hostaddr("[IPv6:]"));
    assert_false(access_valid_hostaddr("example.com"));

    assert_true(access_is_fqdn("mail.example.com"));
    assert_true(access_is_fqdn("example.com."));
    assert_false(access_is_fqdn("localhost"));
    assert_false(access_is_fqdn("localhost."));
    assert_false(access_is_fqdn("bad..example"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_kinds),
        cmocka_unit_test(test_parse_codes),
        cmocka_unit_test(test_keys),
        cmocka_unit_test(test_reply),
        cmocka_unit_test(test_hostnames),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
