/*
 * test_maildrop - lib/maildrop.c: names (valid, fresh, distinct), value
 * checks, the envelope writer and the reader on a round trip, and the
 * reader's refusal of every kind of hostile file: no or wrong magic, a cut
 * envelope, unknown, repeated or over-long lines, control characters,
 * missing sender or recipients, NUL bytes, too many recipients; and every
 * prefix of a good file (none may crash, the complete one parses).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "maildrop.h"
#include "strbuf.h"

/* refused - maildrop_parse(data) fails */
static void refused(const char *data, size_t len)
{
    struct strbuf err = STRBUF_INIT;
    struct maildrop md;

    if (maildrop_parse(data, len, &md, &err) == 0) {
        maildrop_free(&md);
        fail_msg("accepted: \"%.60s\"", data);
    }
    assert_true(sb_len(&err) > 0);
    sb_free(&err);
}

#define REFUSED(s) refused(s, sizeof(s) - 1)

static void test_names(void **state)
{
    char    a[MAILDROP_NAME_LEN + 1], b[MAILDROP_NAME_LEN + 1];

    (void) state;
    maildrop_name_new(a);
    maildrop_name_new(b);
    assert_true(maildrop_name_valid(a));
    assert_string_not_equal(a, b);
    assert_true(maildrop_name_valid("0123456789ABCDEF0123"));
    assert_false(maildrop_name_valid("0123456789abcdef0123"));
    assert_false(maildrop_name_valid("0123456789ABCDEF012"));
    assert_false(maildrop_name_valid("0123456789ABCDEF01234"));
    assert_false(maildrop_name_valid("tmp.0123456789ABCDEF"));
    assert_false(maildrop_name_valid(""));
}

static void test_values(void **state)
{
    char    long_value[MAILDROP_VALUE_MAX + 2];

    (void) state;
    assert_true(maildrop_value_valid("user@example.test", false));
    assert_true(maildrop_value_valid("", false));
    assert_false(maildrop_value_valid("a b", false));
    assert_false(maildrop_value_valid("a\nb", false));
    assert_false(maildrop_value_valid("caf\xc3\xa9", false));
    assert_true(maildrop_value_valid("Caf\xc3\xa9 Owner, Jr.", true));
    assert_false(maildrop_value_valid("a\tb", true));
    memset(long_value, 'a', sizeof(long_value) - 1);
    long_value[sizeof(long_value) - 1] = 0;
    assert_false(maildrop_value_valid(long_value, false));
    long_value[MAILDROP_VALUE_MAX] = 0;
    assert_true(maildrop_value_valid(long_value, false));
}

static void test_round_trip(void **state)
{
    char   *rcpts[] = {"a@example.test", "b"};
    struct strbuf file = STRBUF_INIT, err = STRBUF_INIT;
    struct maildrop md;

    (void) state;
    maildrop_format_envelope(&file, "root", "Cron Daemon", rcpts, 2);
    sb_puts(&file, "Subject: x\n\nbody \xe2\x82\xac\n");
    assert_int_equal(maildrop_parse(sb_str(&file), sb_len(&file), &md, &err), 0);
    assert_string_equal(md.sender, "root");
    assert_string_equal(md.fullname, "Cron Daemon");
    assert_int_equal(md.nrcpt, 2);
    assert_string_equal(md.rcpts[0], "a@example.test");
    assert_string_equal(md.rcpts[1], "b");
    assert_int_equal(md.body_len, strlen("Subject: x\n\nbody \xe2\x82\xac\n"));
    assert_memory_equal(md.body, "Subject: x\n", 11);
    assert_true(md.body_8bit);
    maildrop_free(&md);

    /* The null sender and an empty message. */
    sb_reset(&file);
    maildrop_format_envelope(&file, "", NULL, rcpts, 1);
    assert_int_equal(maildrop_parse(sb_str(&file), sb_len(&file), &md, &err), 0);
    assert_string_equal(md.sender, "");
    assert_null(md.fullname);
    assert_int_equal(md.body_len, 0);
    assert_false(md.body_8bit);
    maildrop_free(&md);
    sb_free(&file);
    sb_free(&err);
}

static void test_hostile(void **state)
{
    (void) state;
    REFUSED("");
    REFUSED("POSTERN-MAILDROP 2\nsender=a\nrcpt=b\n\n");
    REFUSED("postern-maildrop 1\nsender=a\nrcpt=b\n\n");
    REFUSED("POSTERN-MAILDROP 1\n");
    REFUSED("POSTERN-MAILDROP 1\nsender=a\nrcpt=b\n");              /* no end of the envelope */
    REFUSED("POSTERN-MAILDROP 1\nsender=a\nrcpt=b");
    REFUSED("POSTERN-MAILDROP 1\nsender=a\n\nbody\n");              /* no recipient */
    REFUSED("POSTERN-MAILDROP 1\nrcpt=b\n\nbody\n");                /* no sender */
    REFUSED("POSTERN-MAILDROP 1\nsender=a\nsender=c\nrcpt=b\n\n");  /* repeated */
    REFUSED("POSTERN-MAILDROP 1\nsender=a\nfullname=x\nfullname=y\nrcpt=b\n\n");
    REFUSED("POSTERN-MAILDROP 1\nsender=a\nrcpt=b\nqueue_id=X\n\n");    /* unknown line */
    REFUSED("POSTERN-MAILDROP 1\nsender=a\nrcpt\n\n");                  /* no '=' */
    REFUSED("POSTERN-MAILDROP 1\nsender=a\nrcpt=\n\n");                 /* empty recipient */
    REFUSED("POSTERN-MAILDROP 1\nsender=a b\nrcpt=b\n\n");
    REFUSED("POSTERN-MAILDROP 1\nsender=a\nrcpt=b\r\n\n");              /* CR */
    REFUSED("POSTERN-MAILDROP 1\nsender=a\nrcpt=b\x7f\n\n");
    REFUSED("POSTERN-MAILDROP 1\nsender=a\nfullname=x\x01y\nrcpt=b\n\n");
    REFUSED("POSTERN-MAILDROP 1\nsender=a\0b\nrcpt=b\n\n");             /* NUL in the envelope */
    REFUSED("POSTERN-MAILDROP 1\nsender=a\nrcpt=b\n\nbody\0more\n");    /* NUL in the message */
}

static void test_limits(void **state)
{
    struct strbuf file = STRBUF_INIT;

    (void) state;
    sb_puts(&file, MAILDROP_MAGIC "sender=");
    for (int i = 0; i < MAILDROP_VALUE_MAX + 1; i++)
        sb_putc(&file, 'a');
    sb_puts(&file, "\nrcpt=b\n\n");
    refused(sb_str(&file), sb_len(&file));

    sb_reset(&file);
    sb_puts(&file, MAILDROP_MAGIC "sender=a\n");
    for (int i = 0; i < MAILDROP_RCPT_MAX + 1; i++)
        sb_printf(&file, "rcpt=r%d\n", i);
    sb_puts(&file, "\n");
    refused(sb_str(&file), sb_len(&file));
    sb_free(&file);
}

static void test_every_prefix(void **state)
{
    char   *rcpts[] = {"a@example.test", "b@example.test"};
    struct strbuf file = STRBUF_INIT, err = STRBUF_INIT;
    struct maildrop md;
    size_t  envelope_len;

    (void) state;
    maildrop_format_envelope(&file, "sender@example.test", "Full Name", rcpts, 2);
    envelope_len = sb_len(&file);
    sb_puts(&file, "Subject: s\n\nbody\n");
    for (size_t len = 0; len <= sb_len(&file); len++) {
        char   *copy = malloc(len + 1);    /* exact size: ASan sees any read past the end */
        int     rc;

        memcpy(copy, sb_str(&file), len);
        rc = maildrop_parse(copy, len, &md, &err);
        if (len >= envelope_len) {
            assert_int_equal(rc, 0);
            assert_int_equal(md.body_len, len - envelope_len);
            maildrop_free(&md);
        } else {
            assert_int_equal(rc, -1);
        }
        sb_reset(&err);
        free(copy);
    }
    sb_free(&file);
    sb_free(&err);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_names),
        cmocka_unit_test(test_values),
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_hostile),
        cmocka_unit_test(test_limits),
        cmocka_unit_test(test_every_prefix),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
