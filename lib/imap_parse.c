/*
 * imap_parse - IMAP4rev1 syntax (RFC 3501 section 9) for imapd.
 *
 * Interface (imap_parse.h):
 *   imap_reader_init/free/feed   take whole commands (literals included) off an evbuffer
 *   imap_line_literal            the "{N}", "{N+}" or "~{N}" that ends a line
 *   imap_parse_command/args      split a command into tag, name and an argument tree
 *   imap_command_free
 *   imap_arg_is_atom/astring/number
 *   imap_seqset_parse/free/contains/format
 *   imap_parse_date/datetime, imap_format_datetime
 *   imap_write_string/nstring/astring
 *
 * The reader keeps a literal's announcement in rd->cmd as "{N}\r\n" (or
 * "{N+}\r\n", "~{N}\r\n"; a bare LF is normalized to CRLF) followed by the N raw
 * bytes, exactly the RFC 3501 literal syntax, so imap_parse_command() parses
 * the grammar and needs no side channel. Only the CRLF that ends the command is
 * removed.
 *
 * Over-long input is skipped rather than buffered: a line part is dropped up to
 * its LF (at most 16 times max_line, at least 1 MiB, else FATAL), a LITERAL+
 * body we must refuse is drained (at most 2 * max_literal, else FATAL) and so
 * is the rest of that command, so the connection stays in step with the
 * client. A synchronizing literal that is too big is refused at once: the client
 * waits for "+" and sends nothing.
 *
 * The parser is strict the way RFC 3501 is: single spaces between arguments,
 * no space after "(" or before ")", no trailing space, quoted strings with only
 * \" and \\ escapes (8-bit allowed inside, as Dovecot does), atoms of ATOM-CHAR
 * plus "\", "%", "*", "]" (flags, LIST patterns, sequence sets), and "[...]"
 * inside an atom running to the first "]" (when there is no "]" on the line the
 * "[" is an ordinary atom character, as RFC 3501 says it is).
 */
#include <ctype.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <event2/buffer.h>

#include "imap_parse.h"
#include "mem.h"
#include "strbuf.h"

#define IMAP_SEQ_MAX_RANGES     100000
#define IMAP_QUOTED_MAX         1024
#define DISCARD_TAIL            32      /* enough to see "{N+}" at a line's end */

/* ------------------------------------------------------------------ reading */

/* is_tag_char - ASTRING-CHAR except "+" */
static bool is_tag_char(unsigned char c)
{
    if (c <= 0x20 || c >= 0x7f)
        return false;
    return strchr("(){%*\"\\+", c) == NULL;
}

/* set_tag - rd->tag from the start of a command, "*" when it is not a valid tag */
static void set_tag(struct imap_reader *rd, const char *data, size_t len)
{
    size_t  i;

    for (i = 0; i < len && i <= IMAP_MAX_TAG && is_tag_char((unsigned char) data[i]); i++)
        ;
    if (i == 0 || i > IMAP_MAX_TAG || i >= len || data[i] != ' ') {
        memcpy(rd->tag, "*", 2);
        return;
    }
    memcpy(rd->tag, data, i);
    rd->tag[i] = '\0';
}

/* reset_command - forget the command being read */
static void reset_command(struct imap_reader *rd)
{
    sb_reset(&rd->cmd);
    rd->literal_left = 0;
    rd->literals = 0;
    rd->discarding = false;
    rd->discard_left = 0;
    rd->discard_until_eol = false;
    rd->discarded = 0;
    rd->part_start = 0;
}

/* imap_reader_init - limits as above */
void imap_reader_init(struct imap_reader *rd, size_t max_line, size_t max_literal)
{
    memset(rd, 0, sizeof(*rd));
    rd->max_line = max_line;
    rd->max_literal = max_literal;
    sb_init(&rd->cmd);
    sb_reset(&rd->cmd);
    memcpy(rd->tag, "*", 2);
}

/* imap_reader_free - release the command buffer */
void imap_reader_free(struct imap_reader *rd)
{
    sb_free(&rd->cmd);
}

/* line_discard_limit - how much of an over-long line we drop before giving up */
static size_t line_discard_limit(const struct imap_reader *rd)
{
    size_t  lim = rd->max_line > SIZE_MAX / 16 ? SIZE_MAX : rd->max_line * 16;

    return lim < 1024 * 1024 ? 1024 * 1024 : lim;
}

/* literal_discard_limit - the largest LITERAL+ body we drain rather than disconnect */
static uint64_t literal_discard_limit(const struct imap_reader *rd)
{
    return rd->max_literal > SIZE_MAX / 2 ? SIZE_MAX : rd->max_literal * 2;
}

/* huge_nonsync - the line ends in "{digits+}" with a size too big for 64 bits
 * (imap_line_literal said -1): data is coming that we cannot even count */
static bool huge_nonsync(const char *line, size_t len)
{
    return len > 3 && line[len - 2] == '+' && line[len - 3] >= '0' && line[len - 3] <= '9';
}

/* start_discard - drop the rest of the command, then report TOO_LONG */
static void start_discard(struct imap_reader *rd, size_t literal_bytes)
{
    rd->discarding = true;
    rd->discard_left = literal_bytes;
    rd->discard_until_eol = true;
    rd->discarded = 0;
    rd->literal_left = 0;
}

/* discard - the discarding state: drop a refused literal, then lines up to the
 * command's end (following further LITERAL+ bodies). MORE, TOO_LONG or FATAL. */
static enum imap_read_status discard(struct imap_reader *rd, struct evbuffer *in)
{
    for (;;) {
        if (rd->discard_left > 0) {
            size_t  n = evbuffer_get_length(in);

            if (n > rd->discard_left)
                n = rd->discard_left;
            evbuffer_drain(in, n);
            rd->discard_left -= n;
            if (rd->discard_left > 0)
                return IMAP_READ_MORE;
        }
        size_t  eol_len = 0;
        struct evbuffer_ptr p = evbuffer_search_eol(in, NULL, &eol_len, EVBUFFER_EOL_LF);

        if (p.pos < 0) {
            /* keep a short tail: it may be the "{N+}" of this line's end */
            size_t  avail = evbuffer_get_length(in);

            if (avail > DISCARD_TAIL) {
                evbuffer_drain(in, avail - DISCARD_TAIL);
                rd->discarded += avail - DISCARD_TAIL;
            }
            if (rd->discarded > line_discard_limit(rd))
                return IMAP_READ_FATAL;
            return IMAP_READ_MORE;
        }
        size_t  linelen = (size_t) p.pos;
        size_t  tail = linelen < DISCARD_TAIL ? linelen : DISCARD_TAIL;
        char    buf[DISCARD_TAIL];
        uint64_t size;
        bool    nonsync, binary;
        int     lit;

        evbuffer_drain(in, linelen - tail);
        evbuffer_remove(in, buf, tail);
        evbuffer_drain(in, 1);          /* the LF */
        if (tail > 0 && buf[tail - 1] == '\r')
            tail--;
        lit = imap_line_literal(buf, tail, &size, &nonsync, &binary);
        if (lit < 0 && huge_nonsync(buf, tail))
            return IMAP_READ_FATAL;     /* LITERAL+ of a size we cannot even read */
        if (lit > 0 && nonsync) {
            if (size > literal_discard_limit(rd))
                return IMAP_READ_FATAL;
            rd->discard_left = (size_t) size;
            rd->discarded = 0;
            continue;
        }
        /* end of the command (or a synchronizing literal the client waits
         * for "+" to send, which it will not get) */
        reset_command(rd);
        return IMAP_READ_TOO_LONG;
    }
}

/* too_long - the current line part is over the limit: note the tag, put the
 * part's last bytes back (they may hold a "{N+}" whose body must be skipped
 * too) and drop the rest of the command */
static void too_long(struct imap_reader *rd, struct evbuffer *in)
{
    size_t  have = sb_len(&rd->cmd) - rd->part_start;
    size_t  t = have < DISCARD_TAIL ? have : DISCARD_TAIL;

    set_tag(rd, sb_str(&rd->cmd), sb_len(&rd->cmd));
    evbuffer_prepend(in, rd->cmd.data + sb_len(&rd->cmd) - t, t);
    sb_truncate(&rd->cmd, rd->part_start);
    start_discard(rd, 0);
}

/* take - move n bytes from in to the end of rd->cmd */
static void take(struct imap_reader *rd, struct evbuffer *in, size_t n)
{
    char    buf[16384];

    while (n > 0) {
        size_t  chunk = n < sizeof(buf) ? n : sizeof(buf);
        int     got = evbuffer_remove(in, buf, chunk);

        if (got <= 0)
            return;
        sb_append(&rd->cmd, buf, (size_t) got);
        n -= (size_t) got;
    }
}

/* imap_reader_feed - consume input; see imap_parse.h. Bytes examined are
 * always taken off the evbuffer (into rd->cmd), so no state refers to
 * positions inside it. */
enum imap_read_status imap_reader_feed(struct imap_reader *rd, struct evbuffer *in)
{
    if (rd->returned) {
        rd->returned = false;
        reset_command(rd);
    }
    for (;;) {
        if (rd->discarding)
            return discard(rd, in);
        if (rd->literal_left > 0) {
            size_t  n = evbuffer_get_length(in);

            take(rd, in, n < rd->literal_left ? n : rd->literal_left);
            rd->literal_left -= n < rd->literal_left ? n : rd->literal_left;
            if (rd->literal_left > 0)
                return IMAP_READ_MORE;
        }

        /* a line part: at most max_line bytes plus CRLF are ever held */
        size_t  have = sb_len(&rd->cmd) - rd->part_start;
        size_t  lim = rd->max_line > SIZE_MAX - 2 ? SIZE_MAX : rd->max_line + 2;
        size_t  room = lim > have ? lim - have : 0;
        size_t  eol_len = 0;
        struct evbuffer_ptr p = evbuffer_search_eol(in, NULL, &eol_len, EVBUFFER_EOL_LF);
        size_t  n = p.pos < 0 ? evbuffer_get_length(in) : (size_t) p.pos + 1;
        bool    eol = p.pos >= 0;

        if (n > room) {
            n = room;
            eol = false;
        }
        take(rd, in, n);
        have += n;
        if (!eol) {
            if (have < lim)             /* the last may be a CR whose LF is to come */
                return IMAP_READ_MORE;
            too_long(rd, in);
            continue;
        }
        char   *part = rd->cmd.data + rd->part_start;
        size_t  partlen = have - 1;

        if (partlen > 0 && part[partlen - 1] == '\r')
            partlen--;
        if (partlen > rd->max_line) {
            too_long(rd, in);
            continue;
        }
        sb_truncate(&rd->cmd, rd->part_start + partlen);
        if (rd->part_start == 0 && partlen == 0)
            continue;                   /* an empty line is no command */

        uint64_t size;
        bool    nonsync, binary;
        int     lit = imap_line_literal(part, partlen, &size, &nonsync, &binary);

        if (lit < 0 && huge_nonsync(part, partlen)) {
            set_tag(rd, sb_str(&rd->cmd), sb_len(&rd->cmd));
            reset_command(rd);
            return IMAP_READ_FATAL;     /* "{huge+}": its data cannot be skipped */
        }
        if (lit <= 0) {
            rd->returned = true;
            return IMAP_READ_COMMAND;
        }
        if (rd->literals >= IMAP_MAX_LITERALS || size > rd->max_literal) {
            set_tag(rd, sb_str(&rd->cmd), sb_len(&rd->cmd));
            if (!nonsync) {
                reset_command(rd);
                return IMAP_READ_TOO_LONG;
            }
            if (size > literal_discard_limit(rd)) {
                reset_command(rd);
                return IMAP_READ_FATAL;
            }
            start_discard(rd, (size_t) size);
            continue;
        }
        rd->literals++;
        sb_append(&rd->cmd, "\r\n", 2);
        rd->literal_left = (size_t) size;
        rd->part_start = sb_len(&rd->cmd) + rd->literal_left;
        if (!nonsync)
            return IMAP_READ_CONTINUE;
    }
}

/* imap_line_literal - the literal announcement ending line[0..len), see header */
int imap_line_literal(const char *line, size_t len, uint64_t *size, bool *nonsync, bool *binary)
{
    size_t  end, i;
    uint64_t n = 0;

    if (len == 0 || line[len - 1] != '}')
        return 0;
    end = len - 1;
    *nonsync = false;
    if (end > 0 && line[end - 1] == '+') {
        *nonsync = true;
        end--;
    }
    i = end;
    while (i > 0 && line[i - 1] >= '0' && line[i - 1] <= '9')
        i--;
    if (i == 0 || line[i - 1] != '{')
        return 0;                       /* "x}" is an atom ending in "}", legal */
    if (i == end)
        return -1;                      /* "{}" or "{+}" */
    if (end - i > 20)
        return -1;
    for (size_t k = i; k < end; k++) {
        unsigned d = (unsigned) (line[k] - '0');

        if (n > (UINT64_MAX - d) / 10)
            return -1;
        n = n * 10 + d;
    }
    *binary = (i >= 2 && line[i - 2] == '~');
    *size = n;
    return 1;
}

/* ------------------------------------------------------------------ parsing */

struct storage {
    char   *arena;                      /* every string of the result, NUL-terminated */
    size_t  used, cap;
    void  **blocks;                     /* argument arrays */
    size_t  nblocks, blocks_cap;
};

struct parser {
    const char *p, *end;
    struct storage *st;
    struct strbuf *err;
    unsigned depth;
};

/* storage_free - free everything a parse allocated */
static void storage_free(struct storage *st)
{
    if (st == NULL)
        return;
    for (size_t i = 0; i < st->nblocks; i++)
        free(st->blocks[i]);
    free(st->blocks);
    free(st->arena);
    free(st);
}

/* storage_keep - take ownership of an argument array */
static void storage_keep(struct storage *st, void *block)
{
    if (st->nblocks == st->blocks_cap) {
        st->blocks_cap = st->blocks_cap ? st->blocks_cap * 2 : 8;
        st->blocks = xreallocarray(st->blocks, st->blocks_cap, sizeof(*st->blocks));
    }
    st->blocks[st->nblocks++] = block;
}

/* arena_put - copy n bytes plus a NUL into the arena. The arena is sized so
 * that this cannot overflow (every string costs at most its source bytes plus
 * one delimiter); if it ever did we fail rather than write out of bounds. */
static char *arena_put(struct parser *ps, const char *s, size_t n)
{
    struct storage *st = ps->st;

    if (n + 1 > st->cap - st->used) {
        abort();
    }
    char   *d = st->arena + st->used;

    if (n)
        memcpy(d, s, n);
    d[n] = '\0';
    st->used += n + 1;
    return d;
}

/* fail - record a parse error */
static int fail(struct parser *ps, const char *msg)
{
    sb_set(ps->err, msg);
    return -1;
}

/* is_atom_char - a character an atom may hold (outside "[...]") */
static bool is_atom_char(unsigned char c)
{
    return c > 0x20 && c < 0x7f && c != '(' && c != ')' && c != '{' && c != '"';
}

/* parse_atom - an atom, with the "[...]" rule */
static int parse_atom(struct parser *ps, struct imap_arg *arg)
{
    const char *s = ps->p, *q = ps->p;

    while (q < ps->end && *q != ' ' && *q != ')') {
        unsigned char c = (unsigned char) *q;

        if (c == '[') {
            const char *r = q + 1;

            while (r < ps->end && *r != ']' && *r != '\r' && *r != '\n' && *r != '\0')
                r++;
            if (r < ps->end && *r == ']') {
                q = r + 1;
                continue;
            }
        }
        if (c >= 0x80)
            return fail(ps, "8bit data in atom");
        if (!is_atom_char(c))
            return fail(ps, "Invalid characters in atom");
        q++;
    }
    ps->p = q;
    arg->str = arena_put(ps, s, (size_t) (q - s));
    arg->len = (size_t) (q - s);
    arg->type = (arg->len == 3 && strncasecmp(s, "NIL", 3) == 0) ? IMAP_ARG_NIL : IMAP_ARG_ATOM;
    return 0;
}

/* parse_quoted - a quoted string, unescaped */
static int parse_quoted(struct parser *ps, struct imap_arg *arg)
{
    const char *q = ps->p + 1;
    struct storage *st = ps->st;
    char   *d = st->arena + st->used, *start = d;

    for (;;) {
        if (q >= ps->end || *q == '\r' || *q == '\n')
            return fail(ps, "Missing '\"'");
        if (*q == '\0')
            return fail(ps, "NUL in quoted string");
        if (*q == '"')
            break;
        if (*q == '\\') {
            q++;
            if (q >= ps->end || (*q != '"' && *q != '\\'))
                return fail(ps, "Invalid escape in quoted string");
        }
        /* the unescaped text is never longer than its source */
        *d++ = *q++;
    }
    *d = '\0';
    st->used += (size_t) (d - start) + 1;
    arg->type = IMAP_ARG_STRING;
    arg->str = start;
    arg->len = (size_t) (d - start);
    ps->p = q + 1;
    return 0;
}

/* parse_literal - "{N}" CRLF N bytes (also "{N+}" and "~{N}") */
static int parse_literal(struct parser *ps, struct imap_arg *arg)
{
    const char *q = ps->p;
    uint64_t n = 0;
    size_t  digits = 0;

    if (*q == '~')
        q++;
    q++;                                /* "{" */
    while (q < ps->end && *q >= '0' && *q <= '9') {
        unsigned d = (unsigned) (*q - '0');

        if (n > (UINT64_MAX - d) / 10)
            return fail(ps, "Literal size too large");
        n = n * 10 + d;
        q++;
        digits++;
    }
    if (digits == 0)
        return fail(ps, "Invalid literal size");
    if (q < ps->end && *q == '+')
        q++;
    if (q >= ps->end || *q != '}')
        return fail(ps, "Invalid literal size");
    q++;
    if (ps->end - q < 2 || q[0] != '\r' || q[1] != '\n')
        return fail(ps, "Missing CRLF after literal size");
    q += 2;
    if (n > (uint64_t) (ps->end - q))
        return fail(ps, "Literal data missing");
    arg->type = IMAP_ARG_STRING;
    arg->literal = true;
    arg->len = (size_t) n;
    arg->str = arena_put(ps, q, (size_t) n);
    ps->p = q + n;
    return 0;
}

static int parse_list(struct parser *ps, bool closing, struct imap_arg **items, size_t *count);

/* parse_one - one argument at ps->p */
static int parse_one(struct parser *ps, struct imap_arg *arg)
{
    memset(arg, 0, sizeof(*arg));
    switch (*ps->p) {
    case '(':
        if (ps->depth >= IMAP_MAX_DEPTH)
            return fail(ps, "Too deep parenthesis nesting");
        ps->p++;
        ps->depth++;
        arg->type = IMAP_ARG_LIST;
        if (parse_list(ps, true, &arg->list, &arg->count) < 0)
            return -1;
        ps->depth--;
        return 0;
    case ')':
        return fail(ps, "Unexpected ')'");
    case '"':
        return parse_quoted(ps, arg);
    case '{':
        return parse_literal(ps, arg);
    case '~':
        if (ps->end - ps->p > 1 && ps->p[1] == '{')
            return parse_literal(ps, arg);
        return parse_atom(ps, arg);
    case ' ':
        return fail(ps, "Extra space");
    default:
        return parse_atom(ps, arg);
    }
}

/* parse_list - arguments up to ")" (closing) or the end of the text */
static int parse_list(struct parser *ps, bool closing, struct imap_arg **items, size_t *count)
{
    struct imap_arg *v = NULL;
    size_t  n = 0, cap = 0;

    *items = NULL;
    *count = 0;
    if (ps->p < ps->end && *ps->p == ' ')
        return fail(ps, closing ? "Space after '('" : "Extra space");
    if (closing && ps->p < ps->end && *ps->p == ')') {
        ps->p++;
        return 0;
    }
    if (ps->p >= ps->end) {
        if (closing)
            return fail(ps, "Missing ')'");
        return 0;
    }
    for (;;) {
        if (n == cap) {
            cap = cap ? cap * 2 : 4;
            v = xreallocarray(v, cap, sizeof(*v));
        }
        if (parse_one(ps, &v[n]) < 0) {
            free(v);
            return -1;
        }
        n++;
        if (ps->p >= ps->end) {
            if (closing) {
                free(v);
                return fail(ps, "Missing ')'");
            }
            break;
        }
        if (*ps->p == ')') {
            if (!closing) {
                free(v);
                return fail(ps, "Unexpected ')'");
            }
            ps->p++;
            break;
        }
        if (*ps->p != ' ') {
            free(v);
            return fail(ps, "Missing space between arguments");
        }
        ps->p++;
        if (ps->p >= ps->end) {
            free(v);
            return fail(ps, closing ? "Missing ')'" : "Trailing space");
        }
        if (*ps->p == ' ') {
            free(v);
            return fail(ps, "Extra space");
        }
        if (*ps->p == ')') {
            free(v);
            return fail(ps, "Space before ')'");
        }
    }
    storage_keep(ps->st, v);
    *items = v;
    *count = n;
    return 0;
}

/* parser_start - set up storage for parsing text[0..len) */
static void parser_start(struct parser *ps, const char *text, size_t len, struct strbuf *err)
{
    ps->p = text;
    ps->end = text + len;
    ps->err = err;
    ps->depth = 0;
    ps->st = xcalloc(1, sizeof(*ps->st));
    if (len > SIZE_MAX - 4)
        abort();
    ps->st->cap = len + 4;
    ps->st->arena = xmalloc(ps->st->cap);
}

/* imap_parse_args - split a text of arguments alone */
int imap_parse_args(const char *text, size_t len, struct imap_command *out, struct strbuf *err)
{
    struct parser ps;

    memset(out, 0, sizeof(*out));
    out->tag = out->name = "";
    parser_start(&ps, text, len, err);
    if (parse_list(&ps, false, &out->args, &out->count) < 0) {
        storage_free(ps.st);
        out->args = NULL;
        out->count = 0;
        return -1;
    }
    out->storage = ps.st;
    return 0;
}

/* imap_parse_command - split a command: tag SP name [SP arguments] */
int imap_parse_command(const char *cmd, size_t len, struct imap_command *out, struct strbuf *err)
{
    struct parser ps;
    const char *q;
    size_t  n;

    memset(out, 0, sizeof(*out));
    memcpy(out->tagbuf, "*", 2);
    out->tag = out->tagbuf;
    out->name = "";
    if (len == 0) {
        sb_set(err, "Empty command");
        return -1;
    }
    for (q = cmd; q < cmd + len && is_tag_char((unsigned char) *q); q++)
        ;
    n = (size_t) (q - cmd);
    if (n == 0 || (q < cmd + len && *q != ' ')) {
        sb_set(err, "Invalid tag");
        return -1;
    }
    if (n > IMAP_MAX_TAG) {
        sb_set(err, "Tag too long");
        return -1;
    }
    memcpy(out->tagbuf, cmd, n);
    out->tagbuf[n] = '\0';
    if (q >= cmd + len || q + 1 >= cmd + len) {
        sb_set(err, "Missing command");
        return -1;
    }
    q++;
    const char *name = q;

    while (q < cmd + len && *q != ' ') {
        if (!isalnum((unsigned char) *q) && *q != '-' && *q != '_' && *q != '.') {
            sb_set(err, *q == ' ' ? "Extra space" : "Invalid characters in command name");
            return -1;
        }
        q++;
    }
    if (q == name) {
        sb_set(err, "Extra space");
        return -1;
    }
    parser_start(&ps, cmd, len, err);
    out->tag = arena_put(&ps, cmd, n);
    out->name = arena_put(&ps, name, (size_t) (q - name));
    if (q < cmd + len) {
        q++;                            /* the space */
        ps.p = q;
        if (q >= cmd + len) {
            storage_free(ps.st);
            out->tag = out->tagbuf;
            out->name = "";
            sb_set(err, "Trailing space");
            return -1;
        }
        if (parse_list(&ps, false, &out->args, &out->count) < 0) {
            storage_free(ps.st);
            out->tag = out->tagbuf;
            out->name = "";
            out->args = NULL;
            out->count = 0;
            return -1;
        }
    }
    out->storage = ps.st;
    return 0;
}

/* imap_command_free - release a parsed command (safe after an error, and twice) */
void imap_command_free(struct imap_command *cmd)
{
    storage_free(cmd->storage);
    cmd->storage = NULL;
    cmd->args = NULL;
    cmd->count = 0;
}

/* imap_arg_is_atom - arg is an ATOM equal to word (case-insensitive) */
bool imap_arg_is_atom(const struct imap_arg *arg, const char *word)
{
    if (arg == NULL)
        return false;
    if (arg->type != IMAP_ARG_ATOM && arg->type != IMAP_ARG_NIL)
        return false;
    return strcasecmp(arg->str, word) == 0;
}

/* imap_arg_astring - arg as an astring: its text or NULL */
const char *imap_arg_astring(const struct imap_arg *arg)
{
    if (arg == NULL)
        return NULL;
    switch (arg->type) {
    case IMAP_ARG_ATOM:
    case IMAP_ARG_NIL:                  /* a mailbox called NIL is the atom NIL */
        return arg->str;
    case IMAP_ARG_STRING:
        return memchr(arg->str, '\0', arg->len) ? NULL : arg->str;
    default:
        return NULL;
    }
}

/* imap_arg_number - arg is an ATOM holding a number <= max */
int imap_arg_number(const struct imap_arg *arg, uint64_t max, uint64_t *out)
{
    uint64_t n = 0;

    if (arg == NULL || arg->type != IMAP_ARG_ATOM || arg->len == 0 || arg->len > 20)
        return -1;
    for (size_t i = 0; i < arg->len; i++) {
        unsigned char c = (unsigned char) arg->str[i];

        if (c < '0' || c > '9')
            return -1;
        if (n > (UINT64_MAX - (c - '0')) / 10)
            return -1;
        n = n * 10 + (c - '0');
    }
    if (n > max)
        return -1;
    *out = n;
    return 0;
}

/* ------------------------------------------------------------ sequence sets */

/* seq_number - nz-number or "*" at *sp */
static int seq_number(const char **sp, uint32_t *out)
{
    const char *s = *sp;
    uint64_t n = 0;

    if (*s == '*') {
        *out = IMAP_SEQ_STAR;
        *sp = s + 1;
        return 0;
    }
    if (*s < '1' || *s > '9')
        return -1;
    while (*s >= '0' && *s <= '9') {
        n = n * 10 + (uint64_t) (*s - '0');
        if (n > UINT32_MAX)
            return -1;
        s++;
    }
    /* 4294967295 is a valid number but also our "*": a UID that high cannot
     * exist in practice (UIDNEXT would not fit), so it stands for the one below */
    *out = n == UINT32_MAX ? UINT32_MAX - 1 : (uint32_t) n;
    *sp = s;
    return 0;
}

/* range_cmp - qsort order by lo */
static int range_cmp(const void *a, const void *b)
{
    const struct imap_range *x = a, *y = b;

    return x->lo < y->lo ? -1 : x->lo > y->lo;
}

/* imap_seqset_parse - parse a sequence set; the result is normalized: numeric
 * ranges sorted and merged, then at most one range {lo, IMAP_SEQ_STAR} ("lo:*",
 * or "*" alone as {STAR, STAR}) */
int imap_seqset_parse(const char *text, struct imap_seqset *set, struct strbuf *err)
{
    const char *s = text;
    struct imap_range *v = NULL;
    size_t  n = 0, cap = 0, elems = 0;
    bool    have_star = false;
    uint32_t star_lo = IMAP_SEQ_STAR;

    set->ranges = NULL;
    set->count = 0;
    if (*s == '\0') {
        sb_set(err, "Empty sequence set");
        return -1;
    }
    for (;;) {
        uint32_t a, b;

        if (seq_number(&s, &a) < 0)
            goto bad;
        b = a;
        if (*s == ':') {
            s++;
            if (seq_number(&s, &b) < 0)
                goto bad;
        }
        if (++elems > IMAP_SEQ_MAX_RANGES) {
            free(v);
            sb_set(err, "Too many ranges in sequence set");
            return -1;
        }
        if (a > b) {
            uint32_t t = a;

            a = b;
            b = t;
        }
        if (b == IMAP_SEQ_STAR) {
            /* for messages that exist, "n:*" is min(n,*)..*, so all star ranges
             * together are one: the lowest n up to "*" */
            have_star = true;
            if (a < star_lo)
                star_lo = a;
        } else {
            if (n == cap) {
                cap = cap ? cap * 2 : 8;
                v = xreallocarray(v, cap, sizeof(*v));
            }
            v[n].lo = a;
            v[n].hi = b;
            n++;
        }
        if (*s == '\0')
            break;
        if (*s != ',')
            goto bad;
        s++;
    }
    if (n > 1) {
        size_t  m = 0;

        qsort(v, n, sizeof(*v), range_cmp);
        for (size_t i = 1; i < n; i++) {
            if (v[i].lo <= v[m].hi || v[i].lo - 1 == v[m].hi) {
                if (v[i].hi > v[m].hi)
                    v[m].hi = v[i].hi;
            } else {
                v[++m] = v[i];
            }
        }
        n = m + 1;
    }
    if (have_star) {
        if (n == cap)
            v = xreallocarray(v, ++cap, sizeof(*v));
        v[n].lo = star_lo;
        v[n].hi = IMAP_SEQ_STAR;
        n++;
    }
    set->ranges = v;
    set->count = n;
    return 0;

  bad:
    free(v);
    sb_set(err, "Invalid sequence set");
    return -1;
}

/* imap_seqset_free - release the ranges */
void imap_seqset_free(struct imap_seqset *set)
{
    free(set->ranges);
    set->ranges = NULL;
    set->count = 0;
}

/* imap_seqset_contains - n in set, "*" meaning star; O(log ranges) */
bool imap_seqset_contains(const struct imap_seqset *set, uint32_t n, uint32_t star)
{
    size_t  lo = 0, hi = set->count;

    if (set->count == 0)
        return false;
    const struct imap_range *last = &set->ranges[set->count - 1];

    if (last->hi == IMAP_SEQ_STAR) {
        uint32_t from = last->lo < star ? last->lo : star;

        if (star > 0 && n >= from && n <= star)
            return true;
        hi--;
    }
    while (lo < hi) {
        size_t  mid = lo + (hi - lo) / 2;

        if (n < set->ranges[mid].lo)
            hi = mid;
        else if (n > set->ranges[mid].hi)
            lo = mid + 1;
        else
            return true;
    }
    return false;
}

/* imap_seqset_format - append a compact set of the sorted, distinct v[0..n) */
void imap_seqset_format(struct strbuf *out, const uint32_t *v, size_t n)
{
    size_t  i = 0;
    bool    first = true;

    while (i < n) {
        size_t  j = i;

        while (j + 1 < n && v[j + 1] == v[j] + 1)
            j++;
        if (!first)
            sb_putc(out, ',');
        first = false;
        if (j == i)
            sb_printf(out, "%u", (unsigned) v[i]);
        else
            sb_printf(out, "%u:%u", (unsigned) v[i], (unsigned) v[j]);
        i = j + 1;
    }
}

/* -------------------------------------------------------------------- dates */

static const char *const month_names[12] = {
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
};

/* days_from_civil - days since 1970-01-01 of a proleptic Gregorian date */
static int64_t days_from_civil(int64_t y, unsigned m, unsigned d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    unsigned yoe = (unsigned) (y - era * 400);
    unsigned doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
    unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;

    return era * 146097 + (int64_t) doe - 719468;
}

/* days_in_month - 28..31 */
static unsigned days_in_month(int y, unsigned m)
{
    static const unsigned dim[12] = { 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };

    if (m == 2 && ((y % 4 == 0 && y % 100 != 0) || y % 400 == 0))
        return 29;
    return dim[m - 1];
}

/* digits - n decimal digits at s */
static int digits(const char *s, int n, int *out)
{
    int     v = 0;

    for (int i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v = v * 10 + (s[i] - '0');
    }
    *out = v;
    return 0;
}

/* parse_day_month_year - "d-Mon-yyyy" or "dd-Mon-yyyy" (and " d" when fixed)
 * at *sp: midnight UTC of that day as seconds */
static int parse_day_month_year(const char **sp, bool fixed, int64_t *days)
{
    const char *s = *sp;
    int     day, year;
    unsigned month = 0;

    if (fixed && s[0] == ' ' && s[1] >= '0' && s[1] <= '9') {
        day = s[1] - '0';
        s += 2;
    } else if (s[0] >= '0' && s[0] <= '9' && s[1] >= '0' && s[1] <= '9') {
        day = (s[0] - '0') * 10 + (s[1] - '0');
        s += 2;
    } else if (s[0] >= '0' && s[0] <= '9') {
        day = s[0] - '0';
        s += 1;
    } else {
        return -1;
    }
    if (*s++ != '-')
        return -1;
    for (unsigned i = 0; i < 12; i++) {
        if (strncasecmp(s, month_names[i], 3) == 0) {
            month = i + 1;
            break;
        }
    }
    if (month == 0)
        return -1;
    s += 3;
    if (*s++ != '-')
        return -1;
    if (digits(s, 4, &year) < 0 || year < 1)
        return -1;
    s += 4;
    if (day < 1 || (unsigned) day > days_in_month(year, month))
        return -1;
    *days = days_from_civil(year, month, (unsigned) day);
    *sp = s;
    return 0;
}

/* imap_parse_date - "1-Feb-1994": midnight UTC of that day */
int imap_parse_date(const char *text, time_t *out)
{
    const char *s = text;
    int64_t days;

    if (parse_day_month_year(&s, false, &days) < 0 || *s != '\0')
        return -1;
    *out = (time_t) (days * 86400);
    return 0;
}

/* imap_parse_datetime - "17-Jul-1996 02:44:25 -0700" (also with its quotes) */
int imap_parse_datetime(const char *text, time_t *out)
{
    const char *s = text;
    size_t  len = strlen(text);
    int64_t days;
    int     hh, mm, ss, zh, zm;
    bool    quoted = false;

    if (len >= 2 && text[0] == '"' && text[len - 1] == '"') {
        s++;
        quoted = true;
    }
    if (parse_day_month_year(&s, true, &days) < 0)
        return -1;
    if (s[0] != ' ' || digits(s + 1, 2, &hh) < 0 || s[3] != ':' || digits(s + 4, 2, &mm) < 0
        || s[6] != ':' || digits(s + 7, 2, &ss) < 0 || s[9] != ' ')
        return -1;
    s += 10;
    if ((s[0] != '+' && s[0] != '-') || digits(s + 1, 2, &zh) < 0 || digits(s + 3, 2, &zm) < 0)
        return -1;
    if (hh > 23 || mm > 59 || ss > 60 || zm > 59)
        return -1;
    int     sign = s[0] == '-' ? -1 : 1;

    s += 5;
    if (quoted ? strcmp(s, "\"") != 0 : *s != '\0')
        return -1;
    if (ss == 60)
        ss = 59;                        /* a leap second: time_t has none */
    *out = (time_t) (days * 86400 + hh * 3600 + mm * 60 + ss - sign * (zh * 3600 + zm * 60));
    return 0;
}

/* imap_format_datetime - append "\"17-Jul-1996 02:44:25 +0000\"" */
void imap_format_datetime(struct strbuf *out, time_t t)
{
    struct tm tm;

    if (gmtime_r(&t, &tm) == NULL || tm.tm_year + 1900 < 1 || tm.tm_year + 1900 > 9999) {
        t = 0;
        gmtime_r(&t, &tm);
    }
    sb_printf(out, "\"%02d-%s-%04d %02d:%02d:%02d +0000\"", tm.tm_mday, month_names[tm.tm_mon],
              tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec);
}

/* ------------------------------------------------------------------- output */

/* imap_write_string - a quoted string when possible, else a literal */
void imap_write_string(struct strbuf *out, const char *s, size_t len)
{
    bool    quotable = len <= IMAP_QUOTED_MAX;

    for (size_t i = 0; quotable && i < len; i++) {
        unsigned char c = (unsigned char) s[i];

        if (c == '\0' || c == '\r' || c == '\n' || c >= 0x80)
            quotable = false;
    }
    if (!quotable) {
        sb_printf(out, "{%zu}\r\n", len);
        sb_append(out, s, len);
        return;
    }
    sb_putc(out, '"');
    for (size_t i = 0; i < len; i++) {
        if (s[i] == '"' || s[i] == '\\')
            sb_putc(out, '\\');
        sb_putc(out, s[i]);
    }
    sb_putc(out, '"');
}

/* imap_write_nstring - NIL for NULL, else imap_write_string */
void imap_write_nstring(struct strbuf *out, const char *s)
{
    if (s == NULL)
        sb_puts(out, "NIL");
    else
        imap_write_string(out, s, strlen(s));
}

/* imap_write_astring - an atom when s is a non-empty atom that is not "NIL" */
void imap_write_astring(struct strbuf *out, const char *s)
{
    size_t  len = strlen(s);
    bool    atom = len > 0 && strcasecmp(s, "NIL") != 0;

    for (size_t i = 0; atom && i < len; i++) {
        unsigned char c = (unsigned char) s[i];

        /* ASTRING-CHAR: ATOM-CHAR or "]" */
        if (c <= 0x20 || c >= 0x7f || strchr("(){%*\"\\", c) != NULL)
            atom = false;
    }
    if (atom)
        sb_append(out, s, len);
    else
        imap_write_string(out, s, len);
}
