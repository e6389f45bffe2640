/*
 * test_policy_proto - lib/policy_proto.c: Postfix policy delegation protocol
 * blocks read incrementally (whole, byte by byte, several per buffer), the
 * limits (line length, attribute count), bad lines, and formatting.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "policy_proto.h"
#include "strbuf.h"

static const char request[] =
    "request=smtpd_access_policy\n"
    "protocol_state=RCPT\n"
    "protocol_name=ESMTP\n"
    "client_address=192.0.2.7\n"
    "client_name=mail.example.com\n"
    "helo_name=mail.example.com\n"
    "sender=Alice+tag@Example.COM\n"
    "recipient=bob@example.net\n"
    "recipient_count=0\n"
    "queue_id=\n"
    "instance=abc.123\n"
    "size=0\n"
    "\n";

/* check_request - the attributes of the sample request are all there */
static void check_request(const struct policy_block *b)
{
    assert_int_equal(b->count, 12);
    assert_string_equal(policy_block_get(b, "request"), "smtpd_access_policy");
    assert_string_equal(policy_block_get(b, "client_address"), "192.0.2.7");
    assert_string_equal(policy_block_get(b, "sender"), "Alice+tag@Example.COM");
    assert_string_equal(policy_block_get(b, "queue_id"), "");
    assert_string_equal(policy_block_get(b, "size"), "0");
    assert_null(policy_block_get(b, "Sender"));
    assert_null(policy_block_get(b, "nonexistent"));
}

static void test_whole_block(void **state)
{
    struct policy_reader rd;
    struct policy_block b = { 0 };
    struct strbuf err = STRBUF_INIT;
    bool    done;
    long    n;

    (void) state;
    policy_reader_init(&rd);
    n = policy_reader_feed(&rd, request, strlen(request), &done, &err);
    assert_int_equal(n, (long) strlen(request));
    assert_true(done);
    policy_reader_take(&rd, &b);
    check_request(&b);
    assert_int_equal(rd.block.count, 0);
    policy_block_free(&b);
    assert_int_equal(b.count, 0);
    policy_reader_free(&rd);
    sb_free(&err);
}

static void test_byte_by_byte(void **state)
{
    struct policy_reader rd;
    struct policy_block b = { 0 };
    bool    done = false;
    size_t  len = strlen(request);

    (void) state;
    policy_reader_init(&rd);
    for (size_t i = 0; i < len; i++) {
        long    n = policy_reader_feed(&rd, request + i, 1, &done, NULL);

        assert_int_equal(n, 1);
        assert_int_equal(done, i == len - 1);   /* complete exactly at the empty line */
    }
    policy_reader_take(&rd, &b);
    check_request(&b);
    policy_block_free(&b);
    policy_reader_free(&rd);
}

/* Two pipelined blocks in one buffer: the reader stops after the first. */
static void test_two_blocks(void **state)
{
    struct policy_reader rd;
    struct policy_block b = { 0 };
    struct strbuf in = STRBUF_INIT;
    bool    done;
    long    n;

    (void) state;
    sb_puts(&in, request);
    sb_puts(&in, "action=DUNNO\n\nrest=1");
    policy_reader_init(&rd);
    n = policy_reader_feed(&rd, sb_str(&in), sb_len(&in), &done, NULL);
    assert_int_equal(n, (long) strlen(request));
    assert_true(done);
    policy_reader_take(&rd, &b);
    check_request(&b);
    policy_block_free(&b);

    n = policy_reader_feed(&rd, sb_str(&in) + strlen(request), sb_len(&in) - strlen(request),
                           &done, NULL);
    assert_int_equal(n, (long) strlen("action=DUNNO\n\n"));
    assert_true(done);
    policy_reader_take(&rd, &b);
    assert_int_equal(b.count, 1);
    assert_string_equal(policy_block_get(&b, "action"), "DUNNO");
    policy_block_free(&b);

    /* a partial third block: everything consumed, not done */
    n = policy_reader_feed(&rd, "rest=1", 6, &done, NULL);
    assert_int_equal(n, 6);
    assert_false(done);
    n = policy_reader_feed(&rd, "\n\n", 2, &done, NULL);
    assert_int_equal(n, 2);
    assert_true(done);
    policy_reader_take(&rd, &b);
    assert_string_equal(policy_block_get(&b, "rest"), "1");
    policy_block_free(&b);
    policy_reader_free(&rd);
    sb_free(&in);
}

static void test_values(void **state)
{
    struct policy_reader rd;
    struct policy_block b = { 0 };
    bool    done;
    const char *in = "action=DEFER_IF_PERMIT 4.2.0 try = later\r\n"
        "empty=\n"
        "dup=first\n"
        "dup=second\n"
        "x_1=a=b\n"
        "\r\n";

    (void) state;
    policy_reader_init(&rd);
    assert_int_equal(policy_reader_feed(&rd, in, strlen(in), &done, NULL), (long) strlen(in));
    assert_true(done);
    policy_reader_take(&rd, &b);
    assert_int_equal(b.count, 5);
    assert_string_equal(policy_block_get(&b, "action"), "DEFER_IF_PERMIT 4.2.0 try = later");
    assert_string_equal(policy_block_get(&b, "empty"), "");
    assert_string_equal(policy_block_get(&b, "dup"), "first");
    assert_string_equal(policy_block_get(&b, "x_1"), "a=b");
    policy_block_free(&b);

    /* a lone empty line: a complete, empty block */
    assert_int_equal(policy_reader_feed(&rd, "\n", 1, &done, NULL), 1);
    assert_true(done);
    policy_reader_take(&rd, &b);
    assert_int_equal(b.count, 0);
    policy_reader_free(&rd);
}

/* bad_input - in is refused with an error mentioning why; the reader is empty after */
static void bad_input(const char *in, size_t len, const char *why)
{
    struct policy_reader rd;
    struct strbuf err = STRBUF_INIT;
    struct policy_block b = { 0 };
    bool    done = true;

    policy_reader_init(&rd);
    assert_int_equal(policy_reader_feed(&rd, in, len, &done, &err), -1);
    assert_false(done);
    assert_non_null(strstr(sb_str(&err), why));
    assert_int_equal(rd.block.count, 0);
    assert_int_equal(sb_len(&rd.line), 0);
    /* the reader still works after an error (though callers drop the peer) */
    assert_int_equal(policy_reader_feed(&rd, "a=1\n\n", 5, &done, &err), 5);
    assert_true(done);
    policy_reader_take(&rd, &b);
    assert_int_equal(b.count, 1);
    policy_block_free(&b);
    policy_reader_free(&rd);
    sb_free(&err);
}

static void test_bad_lines(void **state)
{
    (void) state;
    bad_input("request=x\nno equals sign\n\n", 27, "without \"=\"");
    bad_input("=value\n", 7, "name");
    bad_input("Request=x\n", 10, "name");
    bad_input("re quest=x\n", 11, "name");
    bad_input("re-quest=x\n", 11, "name");
    bad_input("a=b\rc\n", 6, "CR");
    bad_input("a=b\r\r\n", 6, "CR");
    bad_input("a=b\0c\n", 6, "NUL");
    bad_input("a\xc3\xa9=b\n", 6, "name");
}

static void test_line_limit(void **state)
{
    struct policy_reader rd;
    struct policy_block b = { 0 };
    struct strbuf line = STRBUF_INIT, err = STRBUF_INIT;
    bool    done;
    long    n;

    (void) state;
    /* exactly POLICY_MAX_LINE bytes is fine, with or without CR */
    sb_puts(&line, "v=");
    while (sb_len(&line) < POLICY_MAX_LINE)
        sb_putc(&line, 'x');
    sb_puts(&line, "\r\n\n");
    policy_reader_init(&rd);
    n = policy_reader_feed(&rd, sb_str(&line), sb_len(&line), &done, &err);
    assert_int_equal(n, (long) sb_len(&line));
    assert_true(done);
    policy_reader_take(&rd, &b);
    assert_int_equal(strlen(policy_block_get(&b, "v")), POLICY_MAX_LINE - 2);
    policy_block_free(&b);

    /* one more byte is refused */
    sb_reset(&line);
    sb_puts(&line, "v=");
    while (sb_len(&line) < POLICY_MAX_LINE + 1)
        sb_putc(&line, 'x');
    sb_puts(&line, "\n\n");
    assert_int_equal(policy_reader_feed(&rd, sb_str(&line), sb_len(&line), &done, &err), -1);
    assert_non_null(strstr(sb_str(&err), "too long"));

    /*
     * A line without LF is refused as soon as it is too long, fed in small
     * pieces, so that an endless line cannot fill memory.
     */
    sb_reset(&err);
    {
        char    chunk[100];
        long    total = 0;

        memset(chunk, 'y', sizeof(chunk));
        chunk[0] = 'z';
        chunk[1] = '=';
        for (int i = 0; i < 1000; i++) {
            n = policy_reader_feed(&rd, chunk, sizeof(chunk), &done, &err);
            if (n < 0)
                break;
            assert_int_equal(n, (long) sizeof(chunk));
            total += n;
            chunk[0] = chunk[1] = 'y';
        }
        assert_int_equal(n, -1);
        assert_true(total <= POLICY_MAX_LINE + 1);
        assert_true(total > POLICY_MAX_LINE - (long) sizeof(chunk));
        assert_non_null(strstr(sb_str(&err), "too long"));
        assert_true(sb_len(&rd.line) == 0);
    }
    policy_reader_free(&rd);
    sb_free(&line);
    sb_free(&err);
}

static void test_attr_limit(void **state)
{
    struct policy_reader rd;
    struct policy_block b = { 0 };
    struct strbuf in = STRBUF_INIT, err = STRBUF_INIT;
    bool    done;

    (void) state;
    for (int i = 0; i < POLICY_MAX_ATTRS; i++)
        sb_printf(&in, "a%d=%d\n", i, i);
    sb_putc(&in, '\n');
    policy_reader_init(&rd);
    assert_int_equal(policy_reader_feed(&rd, sb_str(&in), sb_len(&in), &done, &err),
                     (long) sb_len(&in));
    assert_true(done);
    policy_reader_take(&rd, &b);
    assert_int_equal(b.count, POLICY_MAX_ATTRS);
    assert_string_equal(policy_block_get(&b, "a63"), "63");
    policy_block_free(&b);

    sb_truncate(&in, sb_len(&in) - 1);
    sb_puts(&in, "one_more=1\n\n");
    assert_int_equal(policy_reader_feed(&rd, sb_str(&in), sb_len(&in), &done, &err), -1);
    assert_non_null(strstr(sb_str(&err), "too many"));
    assert_int_equal(rd.block.count, 0);
    policy_reader_free(&rd);
    sb_free(&in);
    sb_free(&err);
}

static void test_add_format_roundtrip(void **state)
{
    struct policy_block b = { 0 }, back = { 0 };
    struct policy_reader rd;
    struct strbuf out = STRBUF_INIT, big = STRBUF_INIT;
    bool    done;

    (void) state;
    assert_int_equal(policy_block_add(&b, "request", "smtpd_access_policy"), 0);
    assert_int_equal(policy_block_add(&b, "sender", ""), 0);
    assert_int_equal(policy_block_add(&b, "helo_name", "a=b c"), 0);
    /* values that would break the framing, and bad names, are dropped */
    assert_int_equal(policy_block_add(&b, "evil", "x\naction=OK"), -1);
    assert_int_equal(policy_block_add(&b, "evil", "x\r"), -1);
    assert_int_equal(policy_block_add(&b, "Evil", "x"), -1);
    assert_int_equal(policy_block_add(&b, "ev=il", "x"), -1);
    assert_int_equal(policy_block_add(&b, "", "x"), -1);
    while (sb_len(&big) < POLICY_MAX_LINE)
        sb_putc(&big, 'q');
    assert_int_equal(policy_block_add(&b, "big", sb_str(&big)), -1);
    assert_int_equal(b.count, 3);

    policy_block_format(&b, &out);
    assert_string_equal(sb_str(&out),
                        "request=smtpd_access_policy\nsender=\nhelo_name=a=b c\n\n");

    policy_reader_init(&rd);
    assert_int_equal(policy_reader_feed(&rd, sb_str(&out), sb_len(&out), &done, NULL),
                     (long) sb_len(&out));
    assert_true(done);
    policy_reader_take(&rd, &back);
    assert_int_equal(back.count, 3);
    assert_string_equal(policy_block_get(&back, "helo_name"), "a=b c");
    assert_string_equal(policy_block_get(&back, "sender"), "");

    /* full block */
    policy_block_free(&b);
    for (int i = 0; i < POLICY_MAX_ATTRS; i++)
        assert_int_equal(policy_block_add(&b, "n", "v"), 0);
    assert_int_equal(policy_block_add(&b, "n", "v"), -1);
    assert_int_equal(b.count, POLICY_MAX_ATTRS);

    /* an empty block formats as the lone empty line */
    sb_reset(&out);
    policy_block_free(&b);
    policy_block_format(&b, &out);
    assert_string_equal(sb_str(&out), "\n");

    policy_block_free(&back);
    policy_reader_free(&rd);
    sb_free(&out);
    sb_free(&big);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_whole_block),
        cmocka_unit_test(test_byte_by_byte),
        cmocka_unit_test(test_two_blocks),
        cmocka_unit_test(test_values),
        cmocka_unit_test(test_bad_lines),
        cmocka_unit_test(test_line_limit),
        cmocka_unit_test(test_attr_limit),
        cmocka_unit_test(test_add_format_roundtrip),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
