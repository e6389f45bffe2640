/*
 * fuzz_imap_command - lib/imap_parse.c as imapd uses it on client input: the
 * reader (lines and literals, synchronizing and LITERAL+, over-long commands)
 * fed the input in two pieces, each command split into its argument tree, and
 * every atom or string tried as a sequence set, a date, a date-time and a
 * modified UTF-7 mailbox name (lib/mutf7.c); results written back out.
 */
#include <event2/buffer.h>

#include "fuzz_util.h"
#include "imap_parse.h"
#include "mutf7.h"

/* try_value - what imapd does with an argument's text */
static void try_value(const struct imap_arg *arg)
{
    struct imap_seqset set = {0};
    struct strbuf err, out;
    time_t  t;
    uint64_t n;
    const char *s = imap_arg_astring(arg);

    sb_init(&err);
    sb_init(&out);
    (void) imap_arg_number(arg, UINT32_MAX, &n);
    (void) imap_arg_is_atom(arg, "NIL");
    if (s != NULL) {
        if (imap_seqset_parse(s, &set, &err) == 0) {
            (void) imap_seqset_contains(&set, 7, 100);
            (void) imap_seqset_contains(&set, 0, 0);
            imap_seqset_free(&set);
        }
        if (imap_parse_date(s, &t) == 0)
            imap_format_datetime(&out, t);
        if (imap_parse_datetime(s, &t) == 0)
            imap_format_datetime(&out, t);
        if (mutf7_valid(s) && mutf7_to_utf8(s, &out) == 0) {
            struct strbuf back;

            sb_init(&back);
            (void) mutf7_from_utf8(sb_str(&out), &back);
            sb_free(&back);
        }
        imap_write_astring(&out, s);
    }
    if (arg->type == IMAP_ARG_STRING || arg->type == IMAP_ARG_ATOM)
        imap_write_string(&out, arg->str, arg->len);
    sb_free(&out);
    sb_free(&err);
}

/* walk - every argument of a list, depth first */
static void walk(const struct imap_arg *args, size_t count)
{
    for (size_t i = 0; i < count; i++) {
        if (args[i].type == IMAP_ARG_LIST)
            walk(args[i].list, args[i].count);
        else
            try_value(&args[i]);
    }
}

/* drain - every complete command waiting in the reader */
static int drain(struct imap_reader *rd, struct evbuffer *in)
{
    struct imap_command cmd;
    struct strbuf err;

    for (;;) {
        enum imap_read_status st = imap_reader_feed(rd, in);

        if (st == IMAP_READ_MORE)
            return 0;
        if (st == IMAP_READ_FATAL)
            return -1;
        if (st != IMAP_READ_COMMAND)
            continue;                   /* CONTINUE, TOO_LONG: the session answers and goes on */
        sb_init(&err);
        memset(&cmd, 0, sizeof(cmd));
        if (imap_parse_command(sb_str(&rd->cmd), sb_len(&rd->cmd), &cmd, &err) == 0)
            walk(cmd.args, cmd.count);
        else if (cmd.tag == NULL)
            abort();                    /* a BAD must still be taggable */
        imap_command_free(&cmd);
        sb_free(&err);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct imap_reader rd;
    struct evbuffer *in = evbuffer_new();
    size_t  cut = size ? data[0] % (size + 1) : 0;
    struct imap_command cmd;
    struct strbuf err;

    /* small limits, so that over-long lines and literals are reachable */
    imap_reader_init(&rd, 1024, 4096);
    evbuffer_add(in, data, cut);
    if (drain(&rd, in) == 0) {
        evbuffer_add(in, data + cut, size - cut);
        (void) drain(&rd, in);
    }
    imap_reader_free(&rd);
    evbuffer_free(in);
    /* the arguments parser alone, as SEARCH uses it */
    sb_init(&err);
    memset(&cmd, 0, sizeof(cmd));
    if (imap_parse_args((const char *) data, size, &cmd, &err) == 0)
        walk(cmd.args, cmd.count);
    imap_command_free(&cmd);
    sb_free(&err);
    return 0;
}
