/*
 * test_header_cache - lib/header_cache: which lines an entry keeps (fields,
 * continuations, odd spacing, CRLF), that ENVELOPE from an entry equals the
 * one from the whole header, keys, least-recently-used eviction under the
 * byte limit, a limit of 0, and hostile header blocks.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "header_cache.h"
#include "mime.h"
#include "strbuf.h"

static const char sample[] =
    "Return-Path: <a@example.org>\n"
    "Received: from x by y;\n"
    "\tMon, 1 Dec 2026 10:00:00 +0000\n"
    "From: Alice <a@example.org>\n"
    "To: bob@example.test,\n"
    "    carol@example.test\n"
    "Subject : =?UTF-8?Q?caf=C3=A9?= news\n"
    "X-Subject: not this one\n"
    "DKIM-Signature: v=1; a=rsa-sha256;\n"
    "\tb=abc\n"
    "Message-ID: <m1@example.org>\n"
    "Date: Mon, 1 Dec 2026 10:00:00 +0100\n"
    "\n"
    "body text\n";

static size_t header_len(const char *msg)
{
    return (size_t) (strstr(msg, "\n\n") - msg) + 2;
}

static void test_extract(void **state)
{
    struct strbuf out = STRBUF_INIT;

    (void) state;
    header_cache_extract(sample, header_len(sample), &out);
    assert_string_equal(sb_str(&out),
                        "From: Alice <a@example.org>\n"
                        "To: bob@example.test,\n"
                        "    carol@example.test\n"
                        "Subject : =?UTF-8?Q?caf=C3=A9?= news\n"
                        "Message-ID: <m1@example.org>\n"
                        "Date: Mon, 1 Dec 2026 10:00:00 +0100\n"
                        "\n");
    /* CRLF line ends stay CRLF, the blank line too */
    header_cache_extract("Subject: a\r\nX: b\r\n\r\nbody", 18, &out);
    assert_string_equal(sb_str(&out), "Subject: a\r\n\r\n");
    /* nothing cached, or no header at all: just the blank line */
    header_cache_extract("X-A: 1\n\n", 8, &out);
    assert_string_equal(sb_str(&out), "\n");
    header_cache_extract("", 0, &out);
    assert_string_equal(sb_str(&out), "\n");
    /* a header without its blank line (cut off), and garbage lines */
    header_cache_extract("Subject: cut", 12, &out);
    assert_string_equal(sb_str(&out), "Subject: cut\n\n");
    header_cache_extract(": no name\n\tcontinuation of nothing\nSubject\n", 42, &out);
    assert_string_equal(sb_str(&out), "\n");
    assert_true(header_cache_has_field("message-id", 10));
    assert_false(header_cache_has_field("Message-IDs", 11));
    assert_false(header_cache_has_field("Message", 7));
    sb_free(&out);
}

/* envelope_of - ENVELOPE of a message text */
static void envelope_of(const char *text, size_t len, struct strbuf *out)
{
    struct mime_message *m = mime_parse(text, len);

    sb_reset(out);
    mime_envelope(m, &m->root, out);
    mime_free(m);
}

static void test_same_envelope(void **state)
{
    static const char *const messages[] = {
        sample,
        "From: a@b\nSender: s@b\nReply-To: r@b\nCc: c@b\nBcc: d@b\nIn-Reply-To: <x@y>\n\nhi\n",
        "Subject: only\r\nContent-Type: multipart/mixed; boundary=z\r\n\r\n--z\r\n\r\nx\r\n--z--\r\n",
        "From: \"Quoted, Name\" <q@example.org>\nFrom: second@example.org\n\n",
    };
    struct strbuf full = STRBUF_INIT, cached = STRBUF_INIT, mini = STRBUF_INIT;

    (void) state;
    for (size_t i = 0; i < sizeof(messages) / sizeof(messages[0]); i++) {
        struct mime_message *m = mime_parse(messages[i], strlen(messages[i]));

        envelope_of(messages[i], strlen(messages[i]), &full);
        header_cache_extract(m->data + m->root.hdr_off, m->root.body_off - m->root.hdr_off, &mini);
        envelope_of(mini.data, mini.len, &cached);
        assert_string_equal(sb_str(&full), sb_str(&cached));
        mime_free(m);
    }
    sb_free(&full);
    sb_free(&cached);
    sb_free(&mini);
}

static void test_keys_and_lru(void **state)
{
    struct header_cache_key k = {1, 2, 3, 0};
    char    hdr[64];
    const char *got;
    size_t  len, entries, bytes, per_entry;

    (void) state;
    header_cache_clear();
    header_cache_set_limit(1024 * 1024);
    k.uid = 1;
    header_cache_put(&k, "Subject: one\n\n", 14);
    assert_non_null(got = header_cache_get(&k, &len));
    assert_int_equal(len, 14);
    assert_memory_equal(got, "Subject: one\n\n", 14);
    /* every part of the key counts */
    struct header_cache_key other = k;

    other.dev = 9;
    assert_null(header_cache_get(&other, &len));
    other = k;
    other.ino = 9;
    assert_null(header_cache_get(&other, &len));
    other = k;
    other.uidvalidity = 9;
    assert_null(header_cache_get(&other, &len));
    other = k;
    other.uid = 2;
    assert_null(header_cache_get(&other, &len));
    /* a second put replaces */
    header_cache_put(&k, "Subject: uno\n\n", 14);
    header_cache_stats(&entries, &bytes);
    assert_int_equal(entries, 1);
    assert_memory_equal(header_cache_get(&k, &len), "Subject: uno\n\n", 14);
    per_entry = bytes;

    /* room for 20 entries: after 100 puts the 20 newest are left, and a get keeps one alive */
    header_cache_clear();
    header_cache_set_limit(per_entry * 20);
    for (uint32_t uid = 1; uid <= 100; uid++) {
        k.uid = uid;
        snprintf(hdr, sizeof(hdr), "Subject: %03u\n\n", (unsigned) (uid % 1000));
        header_cache_put(&k, hdr, strlen(hdr));
        if (uid > 1) {
            k.uid = 1;                  /* touched after every put: never the oldest */
            assert_non_null(header_cache_get(&k, &len));
        }
    }
    header_cache_stats(&entries, &bytes);
    assert_int_equal(entries, 20);
    assert_true(bytes <= per_entry * 20);
    k.uid = 1;
    assert_non_null(header_cache_get(&k, &len));
    k.uid = 81;
    assert_null(header_cache_get(&k, &len));
    k.uid = 100;
    assert_memory_equal(header_cache_get(&k, &len), "Subject: 100\n\n", 14);

    /* shrinking evicts at once; 0 turns the cache off */
    header_cache_set_limit(per_entry * 5);
    header_cache_stats(&entries, &bytes);
    assert_int_equal(entries, 5);
    header_cache_set_limit(0);
    header_cache_stats(&entries, &bytes);
    assert_int_equal(entries, 0);
    header_cache_put(&k, "Subject: x\n\n", 12);
    assert_null(header_cache_get(&k, &len));
    header_cache_clear();
}

static void test_big_and_many(void **state)
{
    struct header_cache_key k = {7, 7, 7, 0};
    struct strbuf big = STRBUF_INIT;
    size_t  len, entries, bytes;

    (void) state;
    header_cache_clear();
    header_cache_set_limit(64 * 1024);
    /* a header whose cached fields are bigger than 1/16 of the limit is not kept */
    sb_puts(&big, "Subject: ");
    for (int i = 0; i < 8000; i++)
        sb_putc(&big, 'x');
    sb_puts(&big, "\n\n");
    k.uid = 1;
    header_cache_put(&k, big.data, big.len);
    assert_null(header_cache_get(&k, &len));
    /* the table grows past its first buckets and finds every entry */
    header_cache_set_limit(64 * 1024 * 1024);
    for (uint32_t uid = 1; uid <= 5000; uid++) {
        k.uid = uid;
        header_cache_put(&k, "To: t@example.test\n\n", 20);
    }
    header_cache_stats(&entries, &bytes);
    assert_int_equal(entries, 5000);
    for (uint32_t uid = 1; uid <= 5000; uid++) {
        k.uid = uid;
        assert_non_null(header_cache_get(&k, &len));
    }
    header_cache_clear();
    sb_free(&big);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_extract),
        cmocka_unit_test(test_same_envelope),
        cmocka_unit_test(test_keys_and_lru),
        cmocka_unit_test(test_big_and_many),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
