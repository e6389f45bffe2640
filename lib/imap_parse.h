/*
 * imap_parse - IMAP4rev1 syntax (RFC 3501 section 9) for imapd: reading a
 * command off the wire (literals included), splitting it into arguments,
 * sequence sets, dates, and quoting strings on output.
 *
 * Reading. A command is a line, possibly interrupted by literals: a line that
 * ends in "{N}" or "{N+}" (LITERAL+, RFC 7888) is followed by exactly N bytes
 * and then more of the command. imap_reader_feed() takes bytes off the input
 * evbuffer and says what the session must do next:
 *   IMAP_READ_MORE          wait for more input
 *   IMAP_READ_CONTINUE      a synchronizing literal was announced: send
 *                           "+ Ready for literal data\r\n", then feed again
 *   IMAP_READ_COMMAND       a whole command is in rd->cmd (NUL-terminated;
 *                           literal bytes are inside it, raw, and may contain NUL)
 *   IMAP_READ_TOO_LONG      the line or a literal exceeds the limits: the reader
 *                           has discarded the command (consuming a LITERAL+
 *                           body it cannot refuse, up to max_literal*2, then
 *                           giving IMAP_READ_FATAL); answer "BAD" and go on.
 *                           rd->tag holds the command's tag when it was readable.
 *   IMAP_READ_FATAL         cannot resynchronize (literal+ far too big, line
 *                           without end beyond the limit): "* BYE" and close
 * Limits: a line (between literals) at most max_line bytes, a literal at most
 * max_literal bytes, at most IMAP_MAX_LITERALS literals per command. An
 * over-long line is skipped up to its LF (at most 16 * max_line, at least 1 MiB,
 * else FATAL). Empty lines between commands are ignored.
 * In rd->cmd a literal keeps its announcement: "... {5}\r\nHELLO rest" (a bare
 * LF after "{5}" becomes CRLF), which is what imap_parse_command() expects.
 * The session may change max_line/max_literal between commands (e.g. at login).
 *
 * Parsing. imap_parse_command() splits rd->cmd into tag, command name and an
 * argument tree. Atoms may contain "[...]" with anything but CR/LF inside
 * (so "BODY[HEADER.FIELDS (From To)]<0.100>" is ONE atom, as RFC 3501's
 * fetch-att grammar needs), quoted strings are unescaped, literals become
 * strings (IMAP_ARG_STRING with literal = true), "NIL" is IMAP_ARG_NIL,
 * parenthesized lists nest (at most IMAP_MAX_DEPTH). Strings may hold NUL
 * bytes (literals); use .len. Every pointer in the result points into the
 * command's own storage (freed with imap_command_free).
 *
 * Errors: -1 with a short reason in err, suitable after "BAD ".
 * Strict like RFC 3501: one space between arguments, none after "(" or before
 * ")", no trailing space. Atoms may hold "\", "%", "*" and "]" besides ATOM-CHAR
 * (flags, LIST patterns, sequence sets); a "[" without a "]" later on the line
 * is an ordinary atom character. "~{N}" (literal8) parses like a literal.
 */
#ifndef POSTERN_IMAP_PARSE_H
#define POSTERN_IMAP_PARSE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "strbuf.h"

struct evbuffer;

#define IMAP_MAX_LITERALS   64
#define IMAP_MAX_DEPTH      16
#define IMAP_MAX_TAG        64

/* ---- reading a command ---- */

enum imap_read_status {
    IMAP_READ_MORE, IMAP_READ_CONTINUE, IMAP_READ_COMMAND, IMAP_READ_TOO_LONG, IMAP_READ_FATAL,
};

struct imap_reader {
    size_t  max_line;                   /* bytes per line part, e.g. 65536 */
    size_t  max_literal;                /* bytes per literal, e.g. message_size_limit */
    struct strbuf cmd;                  /* IMAP_READ_COMMAND: the command, CRLF removed */
    char    tag[IMAP_MAX_TAG + 1];      /* IMAP_READ_TOO_LONG: the tag if readable, else "*" */
    /* private state */
    size_t  literal_left;               /* bytes of the current literal still to come */
    unsigned literals;                  /* literals in this command so far */
    bool    discarding;                 /* dropping an over-long command's rest */
    size_t  discard_left;               /* ... literal bytes still to drop, then the line */
    bool    discard_until_eol;
    size_t  discarded;                  /* line bytes dropped so far (bounded) */
    bool    returned;                   /* cmd was handed out: start afresh next feed */
    size_t  part_start;                 /* offset in cmd of the line part being read */
};

/* imap_reader_init - limits as above */
void imap_reader_init(struct imap_reader *rd, size_t max_line, size_t max_literal);
void imap_reader_free(struct imap_reader *rd);
/* imap_reader_feed - consume input; see the status list above. After
 * IMAP_READ_COMMAND, call again (the next pipelined command may be waiting). */
enum imap_read_status imap_reader_feed(struct imap_reader *rd, struct evbuffer *in);
/* imap_line_literal - the literal "{N}" / "{N+}" / "~{N}" (literal8) ending line[0..len):
 * 1 with *size, *nonsync, *binary; 0 when the line does not end in a literal; -1 malformed */
int  imap_line_literal(const char *line, size_t len, uint64_t *size, bool *nonsync, bool *binary);

/* ---- the argument tree ---- */

enum imap_arg_type { IMAP_ARG_ATOM, IMAP_ARG_STRING, IMAP_ARG_NIL, IMAP_ARG_LIST };

struct imap_arg {
    enum imap_arg_type type;
    const char *str;                    /* ATOM, STRING: NUL-terminated (may contain NULs: use len) */
    size_t  len;
    bool    literal;                    /* STRING came as a literal */
    struct imap_arg *list;              /* LIST: items */
    size_t  count;
};

struct imap_command {
    const char *tag;
    const char *name;                   /* command name as sent (compare with strcasecmp) */
    struct imap_arg *args;              /* arguments after the name */
    size_t  count;
    void   *storage;                    /* private */
    char    tagbuf[IMAP_MAX_TAG + 1];   /* private: tag's copy after an error */
};

/* imap_parse_command - split cmd[0..len) (from imap_reader). -1 with err; out->tag is
 * still set ("*" if unreadable; it points into *out, so do not copy the struct
 * before using it) so the BAD can be tagged. imap_command_free() may be called
 * after success and after failure alike (and twice). */
int  imap_parse_command(const char *cmd, size_t len, struct imap_command *out, struct strbuf *err);
void imap_command_free(struct imap_command *cmd);
/* imap_parse_args - split a text of arguments alone (tests, SEARCH sub-parsing) */
int  imap_parse_args(const char *text, size_t len, struct imap_command *out, struct strbuf *err);

/* imap_arg_is_atom - arg is an ATOM equal to word (case-insensitive) */
bool imap_arg_is_atom(const struct imap_arg *arg, const char *word);
/* imap_arg_astring - arg as an astring (atom or string, no NUL inside): its text or NULL */
const char *imap_arg_astring(const struct imap_arg *arg);
/* imap_arg_number - arg is an ATOM holding a number <= max: 0 with *out; -1 otherwise */
int  imap_arg_number(const struct imap_arg *arg, uint64_t max, uint64_t *out);

/* ---- sequence sets: "1:4,7,9:*" (RFC 3501 sequence-set) ---- */

#define IMAP_SEQ_STAR   UINT32_MAX      /* "*": the largest number in use */

struct imap_range { uint32_t lo, hi; }; /* lo <= hi after resolving; "*" kept as IMAP_SEQ_STAR */

struct imap_seqset {
    struct imap_range *ranges;
    size_t  count;
};

/* imap_seqset_parse - parse text (numbers 1..2^32-1, "*", ranges either way round);
 * -1 with err for 0, junk or an empty set. "$" (SEARCHRES) is not supported.
 * At most 100000 elements. The result is normalized: numeric ranges sorted and
 * merged (lo <= hi), then at most one range {lo, IMAP_SEQ_STAR} standing for
 * "lo:*" ("*" alone is {IMAP_SEQ_STAR, IMAP_SEQ_STAR}); for existing messages
 * "n:*" means min(n,*)..*. The number 4294967295 is read as 4294967294 so it
 * cannot be mistaken for "*". */
int  imap_seqset_parse(const char *text, struct imap_seqset *set, struct strbuf *err);
void imap_seqset_free(struct imap_seqset *set);
/* imap_seqset_contains - n in set, with "*" meaning star (the highest seq/UID in use; 0 if empty) */
bool imap_seqset_contains(const struct imap_seqset *set, uint32_t n, uint32_t star);
/* imap_seqset_format - append a compact set ("1:3,7") of the sorted, distinct numbers v[0..n) */
void imap_seqset_format(struct strbuf *out, const uint32_t *v, size_t n);

/* ---- dates ---- */

/* imap_parse_date - "1-Feb-1994" (SEARCH BEFORE/ON/SINCE): midnight UTC of that day; -1 if bad */
int  imap_parse_date(const char *text, time_t *out);
/* imap_parse_datetime - "17-Jul-1996 02:44:25 -0700" (APPEND, day may be " 7" or "7";
 * the surrounding quotes may be included); -1 if bad. Years 0001-9999 (negative time_t
 * before 1970); month names case-insensitive; impossible dates refused. */
int  imap_parse_datetime(const char *text, time_t *out);
/* imap_format_datetime - append "\"17-Jul-1996 02:44:25 +0000\"" (INTERNALDATE, quoted, UTC) */
void imap_format_datetime(struct strbuf *out, time_t t);

/* ---- output ---- */

/* imap_write_string - append s[0..len) as a quoted string when it can be one
 * (no CR, LF, NUL, 8-bit; at most 1024 bytes), else as a literal "{N}\r\n..." */
void imap_write_string(struct strbuf *out, const char *s, size_t len);
/* imap_write_nstring - NIL for NULL, else imap_write_string */
void imap_write_nstring(struct strbuf *out, const char *s);
/* imap_write_astring - an atom when s is a non-empty atom that is not "NIL", else a string */
void imap_write_astring(struct strbuf *out, const char *s);

#endif
