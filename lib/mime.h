/*
 * mime - the structure of an RFC 5322 / MIME message, for imapd's FETCH and
 * SEARCH: the part tree, ENVELOPE, BODY and BODYSTRUCTURE (RFC 3501 section
 * 7.4.2), section addressing (BODY[1.2.HEADER] ...), header lookup and
 * RFC 2047 decoding.
 *
 * Input is a message as stored in a Maildir: normally LF line ends (CRLF and
 * a mix are tolerated). IMAP counts octets with CRLF line ends, so every size
 * this module reports (BODYSTRUCTURE sizes, mime_crlf_size) is the size after
 * LF -> CRLF conversion (a lone LF counts 2, a CRLF 2), and line counts are
 * lines of that text. Offsets (struct mime_part) are into the raw buffer.
 *
 * Parsing never fails: whatever the input, the result describes it somehow
 * (RFC 3501: a malformed part is text/plain). It is bounded: at most
 * MIME_MAX_DEPTH levels of nesting and MIME_MAX_PARTS parts in all; deeper or
 * further content is treated as the body of the part that holds it.
 * Boundaries are matched as RFC 2046 says ("--boundary" at the start of a line,
 * trailing white space allowed; an inner boundary ends an outer part too).
 * Missing Content-Type: text/plain; charset=us-ascii, or message/rfc822 inside
 * multipart/digest. A malformed one (no "type/subtype") is text/plain too; a
 * text/ part without charset gets charset=us-ascii appended (as Dovecot). A
 * message (root or encapsulated) with neither MIME-Version nor Content-Type
 * is not MIME: its other Content-* fields are ignored (RFC 2045 4, Dovecot).
 * A multipart without boundary, whose boundary never occurs or that is too
 * deep has no children; BODYSTRUCTURE then shows one empty text/plain part.
 *
 * The outputs were compared with Dovecot 2.3's FETCH answers: identical on the
 * unit test corpus and on random structures, except that Dovecot sends ("" "")
 * for a malformed Content-Type and gives an encapsulated message with an empty
 * body the line break before the next boundary (here it belongs to the
 * boundary, RFC 2046 5.1.1). Implementation: mime.c (parser, sections,
 * headers), mime_imap.c (ENVELOPE, BODYSTRUCTURE), mime_decode.c (decoders).
 */
#ifndef POSTERN_MIME_H
#define POSTERN_MIME_H

#include <stdbool.h>
#include <stddef.h>
#include <time.h>

#include "strbuf.h"

#define MIME_MAX_DEPTH  32
#define MIME_MAX_PARTS  2000

/* name lower-case; value unquoted, RFC 2231 continuations joined. An extended
 * (charset'lang'...) value stays encoded under the name with its "*"
 * ("filename*" = "utf-8''%E2%82%AC.txt"), as Dovecot sends it: clients decode it. */
struct mime_param { char *name, *value; };

struct mime_part {
    /* Raw offsets: header block [hdr_off, body_off) includes the blank line that ends it. */
    size_t  hdr_off, body_off, end_off;
    char   *type, *subtype;             /* lower-case; "text", "plain" by default */
    struct mime_param *params;          /* Content-Type parameters */
    size_t  nparams;
    char   *id, *description, *encoding;/* Content-ID, -Description, -Transfer-Encoding (NULL if absent; encoding upper-cased, never NULL: default "7BIT") */
    char   *md5, *disposition, *language, *location;  /* extension data; disposition lower-case */
    struct mime_param *disp_params;
    size_t  ndisp_params;
    size_t  body_size;                  /* CRLF octets of the body */
    size_t  body_lines;                 /* lines of the body (text/ and message/rfc822) */
    struct mime_part *children;         /* multipart: the parts; message/rfc822: the one message */
    size_t  nchildren;
    bool    is_multipart, is_message;   /* multipart/x; message/rfc822 (or global) */
};

struct mime_message {
    const char *data;                   /* the raw message (not owned) */
    size_t  len;
    struct mime_part root;
};

/* mime_parse - the part tree of data[0..len); data must outlive the result */
struct mime_message *mime_parse(const char *data, size_t len);
void mime_free(struct mime_message *msg);

/* mime_envelope - append "(date subject from sender reply-to to cc bcc in-reply-to message-id)"
 * for the header of part (the root, or a message/rfc822 part's child); sender/reply-to
 * default to from; addresses parsed per RFC 5322 with groups, 8-bit kept as is */
void mime_envelope(const struct mime_message *msg, const struct mime_part *part, struct strbuf *out);
/* mime_bodystructure - append "(...)" for part: BODY (extended = false) or BODYSTRUCTURE */
void mime_bodystructure(const struct mime_message *msg, const struct mime_part *part, bool extended,
                        struct strbuf *out);

/*
 * mime_section - the text of a BODY[section] (RFC 3501 6.4.5) in CRLF form,
 * appended to out. section is what is between the brackets: "", "HEADER",
 * "TEXT", "1", "1.2", "1.2.MIME", "2.HEADER", "HEADER.FIELDS (From To)",
 * "3.HEADER.FIELDS.NOT (Received)" (names case-insensitive). 0 on success;
 * -1 with err when the section is malformed (the caller answers BAD); a
 * well-formed section naming a part that does not exist gives "" (RFC 3501).
 * As in Dovecot, part 1 of a leaf is the leaf itself ("2.1.1" = "2.1" when
 * 2.1 is not multipart), once; HEADER/TEXT after a part number need a
 * message/rfc822 part (else ""); HEADER.FIELDS gives the matching fields with
 * their continuation lines, then CRLF (just CRLF when none match).
 */
int  mime_section(const struct mime_message *msg, const char *section, struct strbuf *out,
                  struct strbuf *err);
/* mime_crlf_size - octets of data[0..len) after LF -> CRLF */
size_t mime_crlf_size(const char *data, size_t len);
/* mime_append_crlf - append data[0..len) with LF -> CRLF (existing CRLFs kept) */
void mime_append_crlf(struct strbuf *out, const char *data, size_t len);

/* mime_header_get - the value of the first header field name in the header block
 * hdr[0..len), unfolded, leading/trailing white space removed; false if absent */
bool mime_header_get(const char *hdr, size_t len, const char *name, struct strbuf *value);
/* mime_header_foreach - call fn for every field (name, unfolded value) in order; stop when it returns false */
void mime_header_foreach(const char *hdr, size_t len,
                         bool (*fn)(const char *name, const char *value, void *ctx), void *ctx);
/* mime_decode_2047 - append text with RFC 2047 encoded-words decoded to UTF-8
 * (charsets: UTF-8, US-ASCII, ISO-8859-1, Windows-1252; others kept encoded;
 * white space between two decoded words dropped) */
void mime_decode_2047(const char *text, size_t len, struct strbuf *out);
/* mime_decode_body - append the decoded content of a leaf part (base64, quoted-printable
 * or as is; tolerant of garbage; no charset conversion), for SEARCH BODY/TEXT.
 * A multipart appends nothing; a message/rfc822 part appends its raw body. */
void mime_decode_body(const struct mime_message *msg, const struct mime_part *part, struct strbuf *out);
/* mime_parse_date - an RFC 5322 Date: value (obsolete forms tolerated: no weekday, no
 * seconds, 2/3-digit years, named zones, comments; a missing or military zone is UTC);
 * -1 if unreadable or out of range */
int  mime_parse_date(const char *value, time_t *out);

#endif
