/*
 * test_imap_parse - lib/imap_parse.c: the command reader on a real evbuffer
 * (pipelining, byte-by-byte input, literals with CR/LF/NUL, LITERAL+, limits
 * and resynchronization), the argument parser (lists, BODY[...] atoms,
 * strictness, malformed input), sequence sets, dates and output quoting.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include <event2/buffer.h>

#include "imap_parse.h"
#include "strbuf.h"

/* ---------------------------------------------------------------- helpers */

/* add - append bytes to the input buffer */
static void add(struct evbuffer *in, const char *s, size_t len)
{
    assert_int_equal(evbuffer_add(in, s, len), 0);
}

#define ADD(in, lit) add((in), (lit), sizeof(lit) - 1)

/* expect_cmd - the next feed gives a command equal to s[0..len) */
static void expect_cmd(struct imap_reader *rd, struct evbuffer *in, const char *s, size_t len)
{
    assert_int_equal(imap_reader_feed(rd, in), IMAP_READ_COMMAND);
    assert_int_equal(sb_len(&rd->cmd), len);
    assert_memory_equal(rd->cmd.data, s, len);
    assert_int_equal(rd->cmd.data[len], '\0');
}

#define EXPECT_CMD(rd, in, lit) expect_cmd((rd), (in), (lit), sizeof(lit) - 1)

/* parse - parse text as a command, asserting success */
static void parse_ok(const char *text, struct imap_command *cmd)
{
    struct strbuf err = STRBUF_INIT;

    if (imap_parse_command(text, strlen(text), cmd, &err) < 0)
        fail_msg("parse failed for \"%s\": %s", text, sb_str(&err));
    sb_free(&err);
}

/* parse_bad - text must be refused with a reason containing why; the tag is tag */
static void parse_bad(const char *text, size_t len, const char *tag, const char *why)
{
    struct strbuf err = STRBUF_INIT;
    struct imap_command cmd;

    if (imap_parse_command(text, len, &cmd, &err) == 0)
        fail_msg("accepted: \"%s\"", text);
    assert_string_equal(cmd.tag, tag);
    if (strstr(sb_str(&err), why) == NULL)
        fail_msg("\"%s\": error \"%s\", expected \"%s\"", text, sb_str(&err), why);
    assert_null(cmd.args);
    imap_command_free(&cmd);
    imap_command_free(&cmd);            /* harmless twice */
    sb_free(&err);
}

#define PARSE_BAD(lit, tag, why) parse_bad((lit), sizeof(lit) - 1, (tag), (why))

/* ---------------------------------------------------------------- reading */

static void pipelined(void **state)
{
    struct imap_reader rd;
    struct evbuffer *in = evbuffer_new();

    (void) state;
    imap_reader_init(&rd, 1024, 4096);
    ADD(in, "a1 NOOP\r\na2 SELECT INBOX\r\n\r\na3 LOGOUT\na4 FE");
    EXPECT_CMD(&rd, in, "a1 NOOP");
    EXPECT_CMD(&rd, in, "a2 SELECT INBOX");
    EXPECT_CMD(&rd, in, "a3 LOGOUT");          /* bare LF accepted; empty line skipped */
    assert_int_equal(imap_reader_feed(&rd, in), IMAP_READ_MORE);
    ADD(in, "TCH 1 FLAGS\r\n");
    EXPECT_CMD(&rd, in, "a4 FETCH 1 FLAGS");
    assert_int_equal(imap_reader_feed(&rd, in), IMAP_READ_MORE);
    assert_int_equal(evbuffer_get_length(in), 0);
    imap_reader_free(&rd);
    evbuffer_free(in);
}

static void byte_by_byte(void **state)
{
    static const char input[] =
        "x1 LOGIN {4}\r\nfred {5+}\r\nse\r\n\0t\r\n"
        "x2 APPEND INBOX (\\Seen) {3}\r\nabc\r\n";
    static const char cmd1[] = "x1 LOGIN {4}\r\nfred {5+}\r\nse\r\n\0t";
    struct imap_reader rd;
    struct evbuffer *in = evbuffer_new();
    int     continues = 0, commands = 0;

    (void) state;
    imap_reader_init(&rd, 1024, 4096);
    for (size_t i = 0; i < sizeof(input) - 1; i++) {
        enum imap_read_status st;

        add(in, input + i, 1);
        while ((st = imap_reader_feed(&rd, in)) != IMAP_READ_MORE) {
            if (st == IMAP_READ_CONTINUE) {
                continues++;
                /* the continuation comes right after the "{N}" line */
                assert_true(input[i] == '\n' && input[i - 1] == '\r' && input[i - 2] == '}');
                continue;
            }
            assert_int_equal(st, IMAP_READ_COMMAND);
            commands++;
            if (commands == 1) {
                assert_int_equal(sb_len(&rd.cmd), sizeof(cmd1) - 1);
                assert_memory_equal(rd.cmd.data, cmd1, sizeof(cmd1) - 1);
            } else {
                assert_string_equal(sb_str(&rd.cmd), "x2 APPEND INBOX (\\Seen) {3}\r\nabc");
            }
        }
    }
    assert_int_equal(continues, 2);             /* "{4}" and "{3}", not "{5+}" */
    assert_int_equal(commands, 2);
    imap_reader_free(&rd);
    evbuffer_free(in);
}

static void literals_binary(void **state)
{
    static const char cmd[] = "a APPEND INBOX {9+}\r\nab\r\n\0c\r\n\r";
    struct imap_reader rd;
    struct evbuffer *in = evbuffer_new();
    struct imap_command pc;
    struct strbuf err = STRBUF_INIT;

    (void) state;
    imap_reader_init(&rd, 1024, 4096);
    ADD(in, "a APPEND INBOX {9+}\r\nab\r\n\0c\r\n\r\r\n\r\n");     /* then an empty line */
    expect_cmd(&rd, in, cmd, sizeof(cmd) - 1);
    assert_int_equal(imap_parse_command(rd.cmd.data, sb_len(&rd.cmd), &pc, &err), 0);
    assert_string_equal(pc.tag, "a");
    assert_string_equal(pc.name, "APPEND");
    assert_int_equal(pc.count, 2);
    assert_int_equal(pc.args[1].type, IMAP_ARG_STRING);
    assert_true(pc.args[1].literal);
    assert_int_equal(pc.args[1].len, 9);
    assert_memory_equal(pc.args[1].str, "ab\r\n\0c\r\n\r", 9);
    assert_null(imap_arg_astring(&pc.args[1]));        /* NUL inside: not an astring */
    imap_command_free(&pc);

    /* a literal with a bare LF after its size is normalized to CRLF */
    ADD(in, "b LOGIN {3}\nfoo {0}\n\n");
    assert_int_equal(imap_reader_feed(&rd, in), IMAP_READ_CONTINUE);
    assert_int_equal(imap_reader_feed(&rd, in), IMAP_READ_CONTINUE);
    EXPECT_CMD(&rd, in, "b LOGIN {3}\r\nfoo {0}\r\n");
    assert_int_equal(imap_parse_command(rd.cmd.data, sb_len(&rd.cmd), &pc, &err), 0);
    assert_int_equal(pc.count, 2);
    assert_string_equal(imap_arg_astring(&pc.args[0]), "foo");
    assert_string_equal(imap_arg_astring(&pc.args[1]), "");
    imap_command_free(&pc);

    /* literal8 is recognized */
    ADD(in, "c APPEND INBOX ~{2+}\r\n\0\1\r\n");
    EXPECT_CMD(&rd, in, "c APPEND INBOX ~{2+}\r\n\0\1");
    assert_int_equal(imap_parse_command(rd.cmd.data, sb_len(&rd.cmd), &pc, &err), 0);
    assert_int_equal(pc.args[1].type, IMAP_ARG_STRING);
    assert_int_equal(pc.args[1].len, 2);
    assert_memory_equal(pc.args[1].str, "\0\1", 2);
    imap_command_free(&pc);
    sb_free(&err);
    imap_reader_free(&rd);
    evbuffer_free(in);
}

static void too_long_line(void **state)
{
    struct imap_reader rd;
    struct evbuffer *in = evbuffer_new();
    char    big[300];

    (void) state;
    memset(big, 'x', sizeof(big));
    imap_reader_init(&rd, 64, 4096);

    /* the whole line at once */
    ADD(in, "t1 SEARCH ");
    add(in, big, 100);
    ADD(in, "\r\nt2 NOOP\r\n");
    assert_int_equal(imap_reader_feed(&rd, in), IMAP_READ_TOO_LONG);
    assert_string_equal(rd.tag, "t1");
    EXPECT_CMD(&rd, in, "t2 NOOP");

    /* a line exactly max_line long is fine, one more byte is not */
    add(in, big, 64);
    ADD(in, "\r\n");
    assert_int_equal(imap_reader_feed(&rd, in), IMAP_READ_COMMAND);
    assert_int_equal(sb_len(&rd.cmd), 64);
    add(in, big, 65);
    ADD(in, "\r\n");
    assert_int_equal(imap_reader_feed(&rd, in), IMAP_READ_TOO_LONG);
    assert_string_equal(rd.tag, "*");           /* no space: no readable tag */

    /* in pieces without an LF: dropped as it comes, TOO_LONG at its end */
    ADD(in, "t3 LOGIN ");
    for (int i = 0; i < 50; i++) {
        add(in, big, sizeof(big));
        assert_int_equal(imap_reader_feed(&rd, in), IMAP_READ_MORE);
        assert_true(evbuffer_get_length(in) <= 64);     /* nothing piles up */
    }
    ADD(in, "\r\nt4 NOOP\r\n");
    assert_int_equal(imap_reader_feed(&rd, in), IMAP_READ_TOO_LONG);
    assert_string_equal(rd.tag, "t3");
    EXPECT_CMD(&rd, in, "t4 NOOP");

    /* an over-long line after a literal: the tag comes from the first part */
    ADD(in, "t5 LOGIN {2+}\r\nab ");
    add(in, big, 100);
    ADD(in, "\r\nt6 NOOP\r\n");
    assert_int_equal(imap_reader_feed(&rd, in), IMAP_READ_TOO_LONG);
    assert_string_equal(rd.tag, "t5");
    EXPECT_CMD(&rd, in, "t6 NOOP");

    /* an over-long line ending in a LITERAL+: its body is skipped too */
    ADD(in, "t7 APPEND ");
    add(in, big, 100);
    ADD(in, " {5+}\r\n12\r\n3 rest\r\nt8 NOOP\r\n");
    assert_int_equal(imap_reader_feed(&rd, in), IMAP_READ_TOO_LONG);
    assert_string_equal(rd.tag, "t7");
    EXPECT_CMD(&rd, in, "t8 NOOP");

    /* a line without end beyond the discard limit (1 MiB here) */
    ADD(in, "t9 X ");
    enum imap_read_status st = IMAP_READ_MORE;

    for (int i = 0; i < 5000 && st == IMAP_READ_MORE; i++) {
        add(in, big, sizeof(big));
        st = imap_reader_feed(&rd, in);
    }
    assert_int_equal(st, IMAP_READ_FATAL);
    imap_reader_free(&rd);
    evbuffer_free(in);
}

static void too_long_literal(void **state)
{
    struct imap_reader rd;
    struct evbuffer *in = evbuffer_new();

    (void) state;
    imap_reader_init(&rd, 1024, 10);

    /* synchronizing: refused at once, the client sends no data */
    ADD(in, "s1 APPEND INBOX {11}\r\n");
    assert_int_equal(imap_reader_feed(&rd, in), IMAP_READ_TOO_LONG);
    assert_string_equal(rd.tag, "s1");
    ADD(in, "s2 APPEND INBOX {10}\r\n");
    assert_int_equal(imap_reader_feed(&rd, in), IMAP_READ_CONTINUE);
    ADD(in, "0123456789\r\n");
    EXPECT_CMD(&rd, in, "s2 APPEND INBOX {10}\r\n0123456789");

    /* LITERAL+: the data comes anyway and is skipped, even in pieces, with
     * the rest of the command (and its further LITERAL+ bodies) */
    ADD(in, "s3 APPEND INBOX {15+}\r\n0123456");
    assert_int_equal(imap_reader_feed(&rd, in), IMAP_READ_MORE);
    ADD(in, "789\r\n\r\n\0ab more {3+}\r\n");
    assert_int_equal(imap_reader_feed(&rd, in), IMAP_READ_MORE);
    ADD(in, "x\r\n\r\ns4 NOOP\r\n");
    assert_int_equal(imap_reader_feed(&rd, in), IMAP_READ_TOO_LONG);
    assert_string_equal(rd.tag, "s3");
    EXPECT_CMD(&rd, in, "s4 NOOP");

    /* a discarded command ending in a synchronizing literal: done at that line */
    ADD(in, "s5 X {12+}\r\n123456789012 {3}\r\ns6 NOOP\r\n");
    assert_int_equal(imap_reader_feed(&rd, in), IMAP_READ_TOO_LONG);
    assert_string_equal(rd.tag, "s5");
    EXPECT_CMD(&rd, in, "s6 NOOP");

    /* LITERAL+ far beyond the limit: cannot resynchronize */
    ADD(in, "s7 APPEND INBOX {21+}\r\n");
    assert_int_equal(imap_reader_feed(&rd, in), IMAP_READ_FATAL);
    imap_reader_free(&rd);
    evbuffer_free(in);

    /* a size that does not even fit in 64 bits */
    in = evbuffer_new();
    imap_reader_init(&rd, 1024, 10);
    ADD(in, "s8 APPEND INBOX {99999999999999999999999+}\r\n");
    assert_int_equal(imap_reader_feed(&rd, in), IMAP_READ_FATAL);
    imap_reader_free(&rd);
    evbuffer_free(in);

    /* the same without "+": an ordinary command the parser refuses */
    in = evbuffer_new();
    imap_reader_init(&rd, 1024, 10);
    ADD(in, "s9 APPEND INBOX {99999999999999999999999}\r\n");
    assert_int_equal(imap_reader_feed(&rd, in), IMAP_READ_COMMAND);
    ADD(in, "s10 X {+}\r\ns11 NOOP\r\n");   /* broken, but no data follows it */
    EXPECT_CMD(&rd, in, "s10 X {+}");
    EXPECT_CMD(&rd, in, "s11 NOOP");
    imap_reader_free(&rd);
    evbuffer_free(in);
}

static void too_many_literals(void **state)
{
    struct imap_reader rd;
    struct evbuffer *in = evbuffer_new();

    (void) state;
    imap_reader_init(&rd, 1024, 100);
    ADD(in, "m1 X");
    for (int i = 0; i < IMAP_MAX_LITERALS; i++)
        ADD(in, " {1+}\r\na");
    ADD(in, "\r\n");
    assert_int_equal(imap_reader_feed(&rd, in), IMAP_READ_COMMAND);
    assert_int_equal(sb_len(&rd.cmd), 4 + IMAP_MAX_LITERALS * 8);

    ADD(in, "m2 X");
    for (int i = 0; i < IMAP_MAX_LITERALS + 3; i++)
        ADD(in, " {1+}\r\na");
    ADD(in, "\r\nm3 NOOP\r\n");
    assert_int_equal(imap_reader_feed(&rd, in), IMAP_READ_TOO_LONG);
    assert_string_equal(rd.tag, "m2");
    EXPECT_CMD(&rd, in, "m3 NOOP");
    imap_reader_free(&rd);
    evbuffer_free(in);
}

static void line_literal(void **state)
{
    uint64_t size = 0;
    bool    nonsync, binary;

    (void) state;
    assert_int_equal(imap_line_literal("a {12}", 6, &size, &nonsync, &binary), 1);
    assert_int_equal(size, 12);
    assert_false(nonsync);
    assert_false(binary);
    assert_int_equal(imap_line_literal("{0+}", 4, &size, &nonsync, &binary), 1);
    assert_int_equal(size, 0);
    assert_true(nonsync);
    assert_int_equal(imap_line_literal("x ~{7}", 6, &size, &nonsync, &binary), 1);
    assert_int_equal(size, 7);
    assert_true(binary);
    assert_int_equal(imap_line_literal("a NOOP", 6, &size, &nonsync, &binary), 0);
    assert_int_equal(imap_line_literal("a foo}", 6, &size, &nonsync, &binary), 0);
    assert_int_equal(imap_line_literal("a {12x}", 7, &size, &nonsync, &binary), 0);
    assert_int_equal(imap_line_literal("", 0, &size, &nonsync, &binary), 0);
    assert_int_equal(imap_line_literal("a {}", 4, &size, &nonsync, &binary), -1);
    assert_int_equal(imap_line_literal("a {+}", 5, &size, &nonsync, &binary), -1);
    assert_int_equal(imap_line_literal("{18446744073709551615}", 22, &size, &nonsync, &binary), 1);
    assert_true(size == UINT64_MAX);
    assert_int_equal(imap_line_literal("{18446744073709551616}", 22, &size, &nonsync, &binary), -1);
}


/* run - feed stream in chunks of random size (seeded; 0: all at once) and
 * record every status with its command or tag */
static void run(const char *stream, size_t len, unsigned seed, struct strbuf *log)
{
    struct imap_reader rd;
    struct evbuffer *in = evbuffer_new();
    size_t  off = 0;

    srand(seed);
    imap_reader_init(&rd, 40, 20);
    while (off < len) {
        size_t  n = seed ? 1 + (size_t) rand() % 7 : len;
        enum imap_read_status st;

        if (n > len - off)
            n = len - off;
        add(in, stream + off, n);
        off += n;
        while ((st = imap_reader_feed(&rd, in)) != IMAP_READ_MORE) {
            sb_printf(log, "[%d:", (int) st);
            if (st == IMAP_READ_COMMAND)
                sb_append(log, rd.cmd.data, sb_len(&rd.cmd));
            else if (st == IMAP_READ_TOO_LONG || st == IMAP_READ_FATAL)
                sb_puts(log, rd.tag);
            sb_putc(log, ']');
            if (st == IMAP_READ_FATAL)
                goto out;
        }
    }
  out:
    imap_reader_free(&rd);
    evbuffer_free(in);
}

static void random_splits(void **state)
{
    static const char stream[] =
        "a1 NOOP\r\n"
        "a2 LOGIN {4}\r\nu\r\n\0 {3+}\r\np\nw\r\n"
        "a3 SEARCH xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\r\n"
        "\r\n"
        "a4 APPEND INBOX {25+}\r\n0123456789012345678901234 tail {2+}\r\nab\r\n"
        "a5 APPEND INBOX {21}\r\n"
        "a6 X yyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyy {3+}\r\nz\r\n\r\n"
        "a7 SELECT {0}\r\n\r\n"
        "a8 X {99+}\r\n";
    struct strbuf ref = STRBUF_INIT, got = STRBUF_INIT;

    (void) state;
    run(stream, sizeof(stream) - 1, 0, &ref);
    static const char expected[] =
        "[2:a1 NOOP][1:][2:a2 LOGIN {4}\r\nu\r\n\0 {3+}\r\np\nw][3:a3][3:a4][3:a5][3:a6]"
        "[1:][2:a7 SELECT {0}\r\n][4:a8]";

    assert_int_equal(sb_len(&ref), sizeof(expected) - 1);
    assert_memory_equal(ref.data, expected, sizeof(expected) - 1);
    for (unsigned seed = 1; seed <= 300; seed++) {
        sb_reset(&got);
        run(stream, sizeof(stream) - 1, seed, &got);
        assert_int_equal(sb_len(&got), sb_len(&ref));
        assert_memory_equal(got.data, ref.data, sb_len(&ref));
    }
    sb_free(&ref);
    sb_free(&got);
}

/* random bytes from a small alphabet of IMAP syntax: the parser never
 * crashes and every result is consistent (ASan/UBSan build) */
static void parser_fuzz(void **state)
{
    static const char alphabet[] = "a (){}[]\"\\~+*%0123456789\r\n\0\x80NIL";
    struct strbuf err = STRBUF_INIT;
    char    text[64];

    (void) state;
    srand(4242);
    for (int i = 0; i < 200000; i++) {
        size_t  len = (size_t) rand() % sizeof(text);
        struct imap_command c;

        memcpy(text, "t X ", 4);
        for (size_t k = 4; k < len; k++)
            text[k] = alphabet[(size_t) rand() % (sizeof(alphabet) - 1)];
        if (len < 4)
            len = 4;
        if (imap_parse_command(text, len, &c, &err) == 0) {
            assert_string_equal(c.tag, "t");
            assert_true(c.count > 0);
        } else {
            assert_true(sb_len(&err) > 0);
        }
        imap_command_free(&c);
    }
    sb_free(&err);
}

/* ---------------------------------------------------------------- parsing */

static void parse_lists(void **state)
{
    struct imap_command c;

    (void) state;
    parse_ok("A001 STORE 1:* +FLAGS (\\Seen \\Deleted $Junk)", &c);
    assert_string_equal(c.tag, "A001");
    assert_string_equal(c.name, "STORE");
    assert_int_equal(c.count, 3);
    assert_true(imap_arg_is_atom(&c.args[0], "1:*"));
    assert_true(imap_arg_is_atom(&c.args[1], "+flags"));
    assert_int_equal(c.args[2].type, IMAP_ARG_LIST);
    assert_int_equal(c.args[2].count, 3);
    assert_string_equal(c.args[2].list[0].str, "\\Seen");
    assert_string_equal(c.args[2].list[2].str, "$Junk");
    imap_command_free(&c);

    parse_ok("t FETCH 1 (FLAGS BODY.PEEK[HEADER.FIELDS (From To \"Subject\")]<0.100> "
             "BODY[1.2.MIME] RFC822.SIZE)", &c);
    assert_int_equal(c.count, 2);
    assert_int_equal(c.args[1].type, IMAP_ARG_LIST);
    assert_int_equal(c.args[1].count, 4);
    assert_string_equal(c.args[1].list[1].str, "BODY.PEEK[HEADER.FIELDS (From To \"Subject\")]<0.100>");
    assert_string_equal(c.args[1].list[2].str, "BODY[1.2.MIME]");
    imap_command_free(&c);

    parse_ok("t LIST \"\" *", &c);
    assert_int_equal(c.args[0].type, IMAP_ARG_STRING);
    assert_int_equal(c.args[0].len, 0);
    assert_false(c.args[0].literal);
    assert_string_equal(c.args[1].str, "*");
    imap_command_free(&c);

    parse_ok("t SELECT [Gmail]/Sent", &c);
    assert_string_equal(imap_arg_astring(&c.args[0]), "[Gmail]/Sent");
    imap_command_free(&c);

    parse_ok("t LIST foo[bar %", &c);                /* "[" without "]": an atom char */
    assert_int_equal(c.count, 2);
    assert_string_equal(c.args[0].str, "foo[bar");
    imap_command_free(&c);

    parse_ok("t X (((a) ()) NIL nil \"NIL\") \"a\\\"b\\\\c\" \"\xc3\xa4\"", &c);
    assert_int_equal(c.count, 3);
    struct imap_arg *l = &c.args[0];

    assert_int_equal(l->count, 4);
    assert_int_equal(l->list[0].type, IMAP_ARG_LIST);
    assert_int_equal(l->list[0].count, 2);
    assert_int_equal(l->list[0].list[0].list[0].type, IMAP_ARG_ATOM);
    assert_int_equal(l->list[0].list[1].type, IMAP_ARG_LIST);
    assert_int_equal(l->list[0].list[1].count, 0);
    assert_int_equal(l->list[1].type, IMAP_ARG_NIL);
    assert_int_equal(l->list[2].type, IMAP_ARG_NIL);
    assert_int_equal(l->list[3].type, IMAP_ARG_STRING);       /* "NIL" quoted is a string */
    assert_string_equal(imap_arg_astring(&l->list[1]), "NIL");
    assert_string_equal(c.args[1].str, "a\"b\\c");
    assert_int_equal(c.args[1].len, 5);
    assert_string_equal(c.args[2].str, "\xc3\xa4");          /* 8-bit in quoted, as Dovecot */
    imap_command_free(&c);

    parse_ok("t CAPABILITY", &c);
    assert_int_equal(c.count, 0);
    assert_string_equal(c.name, "CAPABILITY");
    imap_command_free(&c);

    parse_ok("]tag] NOOP", &c);                     /* "]" is an ASTRING-CHAR */
    assert_string_equal(c.tag, "]tag]");
    imap_command_free(&c);

    /* IMAP_MAX_DEPTH levels are fine */
    char    deep[128];
    size_t  n = 0;

    n += (size_t) snprintf(deep, sizeof(deep), "t X ");
    for (int i = 0; i < IMAP_MAX_DEPTH; i++)
        deep[n++] = '(';
    for (int i = 0; i < IMAP_MAX_DEPTH; i++)
        deep[n++] = ')';
    deep[n] = '\0';
    parse_ok(deep, &c);
    imap_command_free(&c);
    deep[4] = '(';
    memmove(deep + 5, deep + 4, n - 4 + 1);
    deep[n + 1] = '\0';
    deep[n] = ')';
    PARSE_BAD(deep, "t", "deep");
}

static void parse_malformed(void **state)
{
    (void) state;
    PARSE_BAD("", "*", "Empty");
    PARSE_BAD("NOOP", "NOOP", "Missing command");
    PARSE_BAD("+a NOOP", "*", "Invalid tag");
    PARSE_BAD("a+ NOOP", "*", "Invalid tag");
    PARSE_BAD("a* NOOP", "*", "Invalid tag");
    PARSE_BAD(" a NOOP", "*", "Invalid tag");
    PARSE_BAD("a ", "a", "Missing command");
    PARSE_BAD("a  NOOP", "a", "Extra space");
    PARSE_BAD("a NOOP ", "a", "Trailing space");
    PARSE_BAD("a SELECT  INBOX", "a", "Extra space");
    PARSE_BAD("a SELECT INBOX ", "a", "Trailing space");
    PARSE_BAD("a X (a b", "a", "Missing ')'");
    PARSE_BAD("a X (a (b)", "a", "Missing ')'");
    PARSE_BAD("a X a)", "a", "Unexpected ')'");
    PARSE_BAD("a X ( a)", "a", "Space after '('");
    PARSE_BAD("a X (a )", "a", "Space before ')'");
    PARSE_BAD("a X (a  b)", "a", "Extra space");
    PARSE_BAD("a X (a)(b)", "a", "Missing space");
    PARSE_BAD("a X \"abc", "a", "Missing '\"'");
    PARSE_BAD("a X \"a\\bc\"", "a", "escape");
    PARSE_BAD("a X \"abc\"def", "a", "Missing space");
    PARSE_BAD("a X \"a\0b\"", "a", "NUL");
    PARSE_BAD("a X {12x}\r\nabcdefghijkl", "a", "literal");
    PARSE_BAD("a X {3}\r\nab", "a", "Literal data missing");
    PARSE_BAD("a X {3}abc", "a", "CRLF");
    PARSE_BAD("a X {}\r\n", "a", "literal");
    PARSE_BAD("a X {3}\r\nabcd", "a", "Missing space");
    PARSE_BAD("a X ab{3}\r\nabc", "a", "Invalid characters");
    PARSE_BAD("a X ab\"c\"", "a", "Invalid characters");
    PARSE_BAD("a X \xc3\xa4", "a", "8bit");
    PARSE_BAD("a X a\tb", "a", "Invalid characters");
    PARSE_BAD("a X a\x7f", "a", "Invalid characters");
    PARSE_BAD("a X a\0b", "a", "Invalid characters");
    PARSE_BAD("a X BODY[HEADER\r\n]", "a", "Invalid characters");
    PARSE_BAD("a NO(OP", "a", "command name");
    PARSE_BAD("a0123456789012345678901234567890123456789012345678901234567890123456789 NOOP",
              "*", "Tag too long");
}

static void parse_args_alone(void **state)
{
    struct imap_command c;
    struct strbuf err = STRBUF_INIT;
    uint64_t v;

    (void) state;
    assert_int_equal(imap_parse_args("", 0, &c, &err), 0);
    assert_int_equal(c.count, 0);
    imap_command_free(&c);
    static const char nums[] = "1 4294967295 x 12a 99999999999999999999";

    assert_int_equal(imap_parse_args(nums, sizeof(nums) - 1, &c, &err), 0);
    assert_int_equal(c.count, 5);
    assert_int_equal(imap_arg_number(&c.args[0], 10, &v), 0);
    assert_int_equal(v, 1);
    assert_int_equal(imap_arg_number(&c.args[1], UINT32_MAX, &v), 0);
    assert_int_equal(v, UINT32_MAX);
    assert_int_equal(imap_arg_number(&c.args[1], UINT32_MAX - 1, &v), -1);
    assert_int_equal(imap_arg_number(&c.args[2], 10, &v), -1);
    assert_int_equal(imap_arg_number(&c.args[3], 1000, &v), -1);
    assert_int_equal(imap_arg_number(&c.args[4], UINT64_MAX, &v), -1);  /* overflows */
    imap_command_free(&c);
    assert_int_equal(imap_parse_args("a)", 2, &c, &err), -1);
    assert_null(c.args);
    imap_command_free(&c);
    sb_free(&err);
}

/* ---------------------------------------------------------- sequence sets */

static void seqsets(void **state)
{
    struct imap_seqset s;
    struct strbuf err = STRBUF_INIT;

    (void) state;
    assert_int_equal(imap_seqset_parse("1:4,7,9:*", &s, &err), 0);
    assert_int_equal(s.count, 3);
    assert_int_equal(s.ranges[2].lo, 9);
    assert_int_equal(s.ranges[2].hi, IMAP_SEQ_STAR);
    assert_true(imap_seqset_contains(&s, 1, 20));
    assert_true(imap_seqset_contains(&s, 4, 20));
    assert_false(imap_seqset_contains(&s, 5, 20));
    assert_true(imap_seqset_contains(&s, 7, 20));
    assert_false(imap_seqset_contains(&s, 8, 20));
    assert_true(imap_seqset_contains(&s, 9, 20));
    assert_true(imap_seqset_contains(&s, 20, 20));
    assert_false(imap_seqset_contains(&s, 21, 20));
    /* "9:*" with * = 6 means 6:9: message 6 is in */
    assert_true(imap_seqset_contains(&s, 6, 6));
    imap_seqset_free(&s);

    assert_int_equal(imap_seqset_parse("5:2", &s, &err), 0);
    assert_int_equal(s.count, 1);
    assert_int_equal(s.ranges[0].lo, 2);
    assert_int_equal(s.ranges[0].hi, 5);
    assert_true(imap_seqset_contains(&s, 2, 10));
    assert_false(imap_seqset_contains(&s, 6, 10));
    imap_seqset_free(&s);

    assert_int_equal(imap_seqset_parse("*", &s, &err), 0);
    assert_true(imap_seqset_contains(&s, 10, 10));
    assert_false(imap_seqset_contains(&s, 9, 10));
    assert_false(imap_seqset_contains(&s, 0, 0));               /* empty mailbox */
    assert_false(imap_seqset_contains(&s, 1, 0));
    imap_seqset_free(&s);

    assert_int_equal(imap_seqset_parse("*:3,5:*", &s, &err), 0);    /* one star range */
    assert_int_equal(s.count, 1);
    assert_int_equal(s.ranges[0].lo, 3);
    assert_false(imap_seqset_contains(&s, 2, 10));
    assert_true(imap_seqset_contains(&s, 3, 10));
    imap_seqset_free(&s);

    /* sorted and merged, adjacent ranges too */
    assert_int_equal(imap_seqset_parse("10,3:5,1,2,6:8,20:15,4", &s, &err), 0);
    assert_int_equal(s.count, 3);
    assert_int_equal(s.ranges[0].lo, 1);
    assert_int_equal(s.ranges[0].hi, 8);
    assert_int_equal(s.ranges[1].lo, 10);
    assert_int_equal(s.ranges[1].hi, 10);
    assert_int_equal(s.ranges[2].lo, 15);
    assert_int_equal(s.ranges[2].hi, 20);
    assert_false(imap_seqset_contains(&s, 9, 100));
    assert_true(imap_seqset_contains(&s, 17, 100));
    imap_seqset_free(&s);

    assert_int_equal(imap_seqset_parse("4294967295", &s, &err), 0);
    assert_int_equal(s.ranges[0].hi, 4294967294u);
    assert_false(imap_seqset_contains(&s, 5, 5));               /* not "*" */
    imap_seqset_free(&s);

    static const char *const bad[] = {
        "", "0", "1:0", "01", "1:", ":1", ",1", "1,", "1,,2", "1 2", "a", "1:2:3",
        "4294967296", "99999999999999999999", "**", "$", "-1", "1:*x",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        if (imap_seqset_parse(bad[i], &s, &err) == 0)
            fail_msg("accepted sequence set \"%s\"", bad[i]);
        assert_null(s.ranges);
        assert_true(sb_len(&err) > 0);
    }
    sb_free(&err);
}

static void seqset_large(void **state)
{
    struct imap_seqset s;
    struct strbuf err = STRBUF_INIT, text = STRBUF_INIT;
    size_t  hits = 0;

    (void) state;
    assert_int_equal(imap_seqset_parse("1:*", &s, &err), 0);
    for (uint32_t n = 1; n <= 100000; n++)
        hits += imap_seqset_contains(&s, n, 100000);
    assert_int_equal(hits, 100000);
    imap_seqset_free(&s);

    /* 50000 single odd numbers: binary search keeps 100k lookups cheap */
    for (uint32_t n = 1; n < 100000; n += 2)
        sb_printf(&text, "%s%u", n > 1 ? "," : "", (unsigned) n);
    assert_int_equal(imap_seqset_parse(sb_str(&text), &s, &err), 0);
    assert_int_equal(s.count, 50000);
    hits = 0;
    for (uint32_t n = 1; n <= 100000; n++)
        hits += imap_seqset_contains(&s, n, 100000);
    assert_int_equal(hits, 50000);
    imap_seqset_free(&s);

    /* more than 100000 elements is refused */
    sb_reset(&text);
    for (uint32_t n = 1; n <= 100001; n++)
        sb_printf(&text, "%s%u", n > 1 ? "," : "", (unsigned) n);
    assert_int_equal(imap_seqset_parse(sb_str(&text), &s, &err), -1);
    assert_non_null(strstr(sb_str(&err), "Too many"));
    sb_free(&text);
    sb_free(&err);
}

static void seqset_format(void **state)
{
    static const uint32_t v[] = { 1, 2, 3, 7, 9, 10, 4294967294u };
    struct strbuf out = STRBUF_INIT;

    (void) state;
    imap_seqset_format(&out, v, 7);
    assert_string_equal(sb_str(&out), "1:3,7,9:10,4294967294");
    sb_reset(&out);
    imap_seqset_format(&out, v, 0);
    assert_string_equal(sb_str(&out), "");
    imap_seqset_format(&out, v + 3, 1);
    assert_string_equal(sb_str(&out), "7");
    sb_free(&out);
}

/* ------------------------------------------------------------------ dates */

static void dates(void **state)
{
    time_t  t;

    (void) state;
    assert_int_equal(imap_parse_date("1-Feb-1994", &t), 0);
    assert_int_equal(t, 760060800);
    assert_int_equal(imap_parse_date("01-fEB-1994", &t), 0);
    assert_int_equal(t, 760060800);
    assert_int_equal(imap_parse_date("1-Jan-1969", &t), 0);
    assert_int_equal(t, -31536000);
    assert_int_equal(imap_parse_date("29-Feb-1996", &t), 0);
    assert_int_equal(imap_parse_date("29-Feb-2000", &t), 0);
    static const char *const bad[] = {
        "29-Feb-1995", "29-Feb-1900", "31-Apr-2000", "32-Jan-2000", "0-Jan-2000",
        "1-Foo-2000", "1-Feb-94", "1-Feb-1994x", "", "1 Feb 1994", "001-Feb-1994",
        "1-Febr-1994", " 1-Feb-1994", "1-Feb-0000",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        if (imap_parse_date(bad[i], &t) == 0)
            fail_msg("accepted date \"%s\"", bad[i]);

    assert_int_equal(imap_parse_datetime("17-Jul-1996 02:44:25 -0700", &t), 0);
    assert_int_equal(t, 837596665);
    assert_int_equal(imap_parse_datetime("\"17-Jul-1996 11:14:25 +0130\"", &t), 0);
    assert_int_equal(t, 837596665);
    assert_int_equal(imap_parse_datetime(" 7-Jul-1996 00:00:00 +0000", &t), 0);
    assert_int_equal(t, 836697600);
    assert_int_equal(imap_parse_datetime("7-jul-1996 00:00:00 +0000", &t), 0);
    assert_int_equal(t, 836697600);
    static const char *const badt[] = {
        "17-Jul-1996 24:00:00 +0000", "17-Jul-1996 02:60:00 +0000", "17-Jul-1996 02:44:25",
        "17-Jul-1996 02:44:25 0700", "17-Jul-1996 02:44:25 +07", "17-Jul-1996 02:44:25 +0760",
        "17-Jul-1996 2:44:25 +0000", "31-Jun-1996 02:44:25 +0000", "17-Jul-1996 02:44:25 +0000 ",
        "\"17-Jul-1996 02:44:25 +0000", "17-Jul-1996  02:44:25 +0000", "",
    };
    for (size_t i = 0; i < sizeof(badt) / sizeof(badt[0]); i++)
        if (imap_parse_datetime(badt[i], &t) == 0)
            fail_msg("accepted date-time \"%s\"", badt[i]);

    struct strbuf out = STRBUF_INIT;

    imap_format_datetime(&out, 837596665);
    assert_string_equal(sb_str(&out), "\"17-Jul-1996 09:44:25 +0000\"");
    sb_reset(&out);
    imap_format_datetime(&out, 836697600);
    assert_string_equal(sb_str(&out), "\"07-Jul-1996 00:00:00 +0000\"");
    /* what we write, we read back */
    assert_int_equal(imap_parse_datetime(sb_str(&out), &t), 0);
    assert_int_equal(t, 836697600);
    sb_free(&out);
}

/* ----------------------------------------------------------------- output */

static void output(void **state)
{
    struct strbuf out = STRBUF_INIT;
    char    big[1025];

    (void) state;
    imap_write_string(&out, "a\"b\\c", 5);
    assert_string_equal(sb_str(&out), "\"a\\\"b\\\\c\"");
    sb_reset(&out);
    imap_write_string(&out, "a\rb", 3);
    assert_string_equal(sb_str(&out), "{3}\r\na\rb");
    sb_reset(&out);
    imap_write_string(&out, "a\0b", 3);
    assert_int_equal(sb_len(&out), 8);
    assert_memory_equal(out.data, "{3}\r\na\0b", 8);
    sb_reset(&out);
    imap_write_string(&out, "\xc3\xa4", 2);
    assert_string_equal(sb_str(&out), "{2}\r\n\xc3\xa4");
    sb_reset(&out);
    memset(big, 'x', sizeof(big));
    imap_write_string(&out, big, 1024);
    assert_int_equal(sb_len(&out), 1026);
    sb_reset(&out);
    imap_write_string(&out, big, 1025);
    assert_memory_equal(out.data, "{1025}\r\n", 8);
    sb_reset(&out);
    imap_write_string(&out, "", 0);
    assert_string_equal(sb_str(&out), "\"\"");

    sb_reset(&out);
    imap_write_nstring(&out, NULL);
    sb_putc(&out, ' ');
    imap_write_nstring(&out, "x y");
    assert_string_equal(sb_str(&out), "NIL \"x y\"");

    static const char *const astr[][2] = {
        {"INBOX", "INBOX"}, {"[Gmail]/Sent", "[Gmail]/Sent"}, {"NIL", "\"NIL\""}, {"nil", "\"nil\""},
        {"", "\"\""}, {"a b", "\"a b\""}, {"a%", "\"a%\""}, {"a*", "\"a*\""}, {"a(b", "\"a(b\""},
        {"a\\b", "\"a\\\\b\""}, {"a{1}", "\"a{1}\""}, {"Entw&APw-rfe", "Entw&APw-rfe"},
    };
    for (size_t i = 0; i < sizeof(astr) / sizeof(astr[0]); i++) {
        sb_reset(&out);
        imap_write_astring(&out, astr[i][0]);
        assert_string_equal(sb_str(&out), astr[i][1]);
    }
    sb_free(&out);
}

/* what the output helpers write, the parser reads back to the same bytes */
static void write_then_parse(void **state)
{
    static const char *const samples[] = {
        "plain", "", "with space", "q\"uo\\te", "cr\rlf\n", "\xe2\x98\xba", "NIL", "(paren",
    };
    struct strbuf text = STRBUF_INIT, err = STRBUF_INIT;
    struct imap_command c;

    (void) state;
    for (size_t i = 0; i < sizeof(samples) / sizeof(samples[0]); i++) {
        if (i)
            sb_putc(&text, ' ');
        imap_write_astring(&text, samples[i]);
    }
    assert_int_equal(imap_parse_args(text.data, sb_len(&text), &c, &err), 0);
    assert_int_equal(c.count, sizeof(samples) / sizeof(samples[0]));
    for (size_t i = 0; i < c.count; i++)
        assert_string_equal(imap_arg_astring(&c.args[i]), samples[i]);
    imap_command_free(&c);
    sb_free(&text);
    sb_free(&err);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(pipelined),
        cmocka_unit_test(byte_by_byte),
        cmocka_unit_test(literals_binary),
        cmocka_unit_test(too_long_line),
        cmocka_unit_test(too_long_literal),
        cmocka_unit_test(too_many_literals),
        cmocka_unit_test(line_literal),
        cmocka_unit_test(random_splits),
        cmocka_unit_test(parser_fuzz),
        cmocka_unit_test(parse_lists),
        cmocka_unit_test(parse_malformed),
        cmocka_unit_test(parse_args_alone),
        cmocka_unit_test(seqsets),
        cmocka_unit_test(seqset_large),
        cmocka_unit_test(seqset_format),
        cmocka_unit_test(dates),
        cmocka_unit_test(output),
        cmocka_unit_test(write_then_parse),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
