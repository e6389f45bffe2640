/*
 * mime_imap - ENVELOPE, BODY and BODYSTRUCTURE (RFC 3501 section 7.4.2) of a
 * parsed message (interface: mime_envelope, mime_bodystructure in mime.h).
 *
 * Header values go out as written, unfolded (no RFC 2047 decoding: RFC 3501
 * wants the raw header). Addresses are parsed per RFC 5322 with the obsolete
 * forms (routes, CFWS anywhere, missing commas are not fatal). What Dovecot
 * does with broken addresses is followed, since clients have met it for years:
 *   "john"            -> mailbox "john", host "MISSING_DOMAIN"
 *   "@host", "<>"     -> mailbox "MISSING_MAILBOX" (host "MISSING_DOMAIN" when empty too)
 *   "x@" / "<x@>"     -> host "MISSING_DOMAIN"
 * so a host of NIL only ever marks a group (RFC 3501). A comment after a bare
 * addr-spec ("j@x (John)") becomes the name when there is no display name.
 * Junk that is no address is skipped up to the next comma.
 *
 * Strings go out with imap_write_string() (imap_parse.h): quoted when they
 * can be (no CR, LF, NUL, 8-bit, at most 1024 octets; " and \ escaped), else
 * as literals, so 8-bit header text arrives byte for byte.
 */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include "mem.h"
#include "strbuf.h"
#include "imap_parse.h"
#include "mime.h"

/* ---- addresses (RFC 5322 3.4, 4.4) ---- */

struct addr_parser {
    const char *s;                      /* NUL-terminated unfolded value */
    struct strbuf comment;              /* the last comment skipped */
    struct strbuf *out;
    size_t  count;                      /* addresses written */
};

/* ap_skip_cfws - skip white space and comments, remembering the last comment's text */
static void ap_skip_cfws(struct addr_parser *ap)
{
    const char *s = ap->s;

    for (;;) {
        while (*s == ' ' || *s == '\t')
            s++;
        if (*s != '(')
            break;
        size_t  level = 0;

        sb_reset(&ap->comment);
        do {
            if (*s == '\\' && s[1] != '\0') {
                s++;
            } else if (*s == '(') {
                if (level++ == 0) {
                    s++;
                    continue;
                }
            } else if (*s == ')' && --level == 0) {
                s++;
                break;
            }
            sb_putc(&ap->comment, *s);
            s++;
        } while (*s != '\0');
    }
    ap->s = s;
}

/* is_atom_char - anything but specials, white space and controls (8-bit allowed, RFC 6532) */
static bool is_atom_char(unsigned char c)
{
    return c > ' ' && c != 0x7f && strchr("()<>:;@,\"[", c) == NULL;
}

/*
 * ap_word - one word at ap->s: an atom (dots included), a quoted string
 * (unquoted) or a domain literal "[...]" (kept with its brackets). Appends
 * it to w, with a space before it when w is not empty and sep is set.
 * false when there is no word.
 */
static bool ap_word(struct addr_parser *ap, struct strbuf *w, bool sep)
{
    ap_skip_cfws(ap);
    const char *s = ap->s;
    if (*s == '"') {
        if (sep && sb_len(w) > 0)
            sb_putc(w, ' ');
        for (s++; *s != '\0' && *s != '"'; s++) {
            if (*s == '\\' && s[1] != '\0')
                s++;
            sb_putc(w, *s);
        }
        if (*s == '"')
            s++;
    } else if (*s == '[') {
        const char *e = strchr(s, ']');
        size_t  n = e ? (size_t) (e - s) + 1 : strlen(s);

        if (sep && sb_len(w) > 0)
            sb_putc(w, ' ');
        sb_append(w, s, n);
        s += n;
    } else if (is_atom_char((unsigned char) *s)) {
        if (sep && sb_len(w) > 0)
            sb_putc(w, ' ');
        while (is_atom_char((unsigned char) *s))
            sb_putc(w, *s++);
    } else {
        return false;
    }
    ap->s = s;
    return true;
}

/* put_addr - one address "(name adl mailbox host)" */
static void put_addr(struct addr_parser *ap, const char *name, const char *adl, const char *mailbox,
                     const char *host)
{
    if (ap->count++ == 0)
        sb_putc(ap->out, '(');
    sb_putc(ap->out, '(');
    imap_write_nstring(ap->out, name);
    sb_putc(ap->out, ' ');
    imap_write_nstring(ap->out, adl);
    sb_putc(ap->out, ' ');
    imap_write_nstring(ap->out, mailbox);
    sb_putc(ap->out, ' ');
    imap_write_nstring(ap->out, host);
    sb_putc(ap->out, ')');
}

/* ap_domain - the domain after "@": atoms and literals joined as written */
static void ap_domain(struct addr_parser *ap, struct strbuf *dom)
{
    while (ap_word(ap, dom, false))
        ;
}

/* ap_angle - "<" [route ":"] addr-spec ">" after the display name (ap->s is past "<") */
static void ap_angle(struct addr_parser *ap, const char *name)
{
    struct strbuf route = STRBUF_INIT, local = STRBUF_INIT, dom = STRBUF_INIT;

    sb_reset(&route), sb_reset(&local), sb_reset(&dom);
    ap_skip_cfws(ap);
    if (*ap->s == '@') {                /* obs-route "@a,@b:" (or "<@host>": no local part) */
        for (;;) {
            ap->s++;
            if (sb_len(&route) > 0)
                sb_puts(&route, ",@");
            else
                sb_putc(&route, '@');
            ap_domain(ap, &route);
            ap_skip_cfws(ap);
            while (*ap->s == ',') {
                ap->s++;
                ap_skip_cfws(ap);
            }
            if (*ap->s != '@')
                break;
        }
        if (*ap->s == ':') {
            ap->s++;
        } else {                        /* "<@host>": a host without mailbox */
            sb_set(&dom, sb_str(&route) + 1);
            sb_reset(&route);
        }
    }
    if (sb_len(&dom) == 0) {
        while (ap_word(ap, &local, false))
            ;
        ap_skip_cfws(ap);
        if (*ap->s == '@') {
            ap->s++;
            ap_domain(ap, &dom);
        }
    }
    ap_skip_cfws(ap);
    while (*ap->s != '\0' && *ap->s != '>' && *ap->s != ',' && *ap->s != ';')
        ap->s++;                        /* junk inside the brackets */
    if (*ap->s == '>')
        ap->s++;
    put_addr(ap, name, sb_len(&route) ? sb_str(&route) : NULL,
             sb_len(&local) ? sb_str(&local) : "MISSING_MAILBOX",
             sb_len(&dom) ? sb_str(&dom) : "MISSING_DOMAIN");
    sb_free(&route), sb_free(&local), sb_free(&dom);
}

/*
 * ap_mailbox - one mailbox, or with groups_ok a group, at ap->s. Returns
 * false when nothing was there (the caller skips a character).
 */
static bool ap_mailbox(struct addr_parser *ap, bool groups_ok)
{
    struct strbuf phrase = STRBUF_INIT, local = STRBUF_INIT;
    bool    done = true;

    sb_reset(&phrase), sb_reset(&local), sb_reset(&ap->comment);
    /* the words are a display name or a local part: collect both spellings */
    struct strbuf word = STRBUF_INIT;
    bool    after_dot = false;

    for (;;) {
        ap_skip_cfws(ap);
        if (*ap->s == '.') {            /* obs-local-part "a . b" */
            sb_putc(&local, '.');
            sb_putc(&phrase, '.');
            ap->s++;
            after_dot = true;
            continue;
        }
        sb_reset(&word);
        if (!ap_word(ap, &word, false))
            break;
        if (sb_len(&phrase) > 0 && !after_dot)
            sb_putc(&phrase, ' ');
        after_dot = false;
        sb_append(&phrase, word.data, sb_len(&word));
        sb_append(&local, word.data, sb_len(&word));
    }
    sb_free(&word);
    ap_skip_cfws(ap);
    const char *name = sb_len(&phrase) ? sb_str(&phrase) : NULL;

    switch (*ap->s) {
    case '<':
        ap->s++;
        ap_angle(ap, name);
        while (*ap->s != '\0' && *ap->s != ',' && *ap->s != ';')
            ap->s++;                    /* junk after the address ("<a@b> x") */
        break;
    case ':':
        if (!groups_ok) {
            done = name != NULL;
            if (done)
                put_addr(ap, NULL, NULL, sb_str(&local), "MISSING_DOMAIN");
            break;
        }
        ap->s++;
        put_addr(ap, NULL, NULL, name ? name : "", NULL);
        for (;;) {
            ap_skip_cfws(ap);
            if (*ap->s == '\0')
                break;
            if (*ap->s == ';') {
                ap->s++;
                break;
            }
            if (*ap->s == ',') {
                ap->s++;
                continue;
            }
            /* junk: skip one byte, unless the failed parse already moved (it may
             * have stopped on the NUL, and a blind ++ would read past the value) */
            const char *before = ap->s;

            if (!ap_mailbox(ap, false) && ap->s == before)
                ap->s++;
        }
        put_addr(ap, NULL, NULL, NULL, NULL);
        break;
    case '@': {
        struct strbuf dom = STRBUF_INIT;

        ap->s++;
        sb_reset(&dom);
        sb_reset(&ap->comment);
        ap_domain(ap, &dom);
        if (sb_len(&local) == 0 && sb_len(&dom) == 0) {
            sb_free(&dom);              /* a lone "@" is no address */
            done = false;
            break;
        }
        ap_skip_cfws(ap);               /* "j@x (John Doe)": the comment is the name */
        put_addr(ap, sb_len(&ap->comment) ? sb_str(&ap->comment) : NULL, NULL,
                 sb_len(&local) ? sb_str(&local) : "MISSING_MAILBOX",
                 sb_len(&dom) ? sb_str(&dom) : "MISSING_DOMAIN");
        sb_free(&dom);
        break;
    }
    default:                            /* "bare" (no domain), or nothing at all */
        done = sb_len(&local) > 0;
        if (done)
            put_addr(ap, NULL, NULL, sb_str(&local), "MISSING_DOMAIN");
        break;
    }
    sb_free(&phrase), sb_free(&local);
    return done;
}

/* put_address_list - the ENVELOPE form of an address header value: a list, or NIL */
static void put_address_list(struct strbuf *out, const char *value)
{
    struct addr_parser ap;

    memset(&ap, 0, sizeof(ap));
    ap.s = value;
    ap.out = out;
    while (*ap.s != '\0') {
        ap_skip_cfws(&ap);
        if (*ap.s == ',' || *ap.s == ';') {
            ap.s++;
            continue;
        }
        if (*ap.s == '\0')
            break;
        if (!ap_mailbox(&ap, true)) {   /* junk: skip to the next address */
            while (*ap.s != '\0' && *ap.s != ',')
                ap.s++;
        }
    }
    sb_puts(out, ap.count ? ")" : "NIL");
    sb_free(&ap.comment);
}

/* put_header_nstring - a field's unfolded value, NIL when absent */
static void put_header_nstring(struct strbuf *out, const char *hdr, size_t len, const char *name,
                               struct strbuf *tmp)
{
    imap_write_nstring(out, mime_header_get(hdr, len, name, tmp) ? sb_str(tmp) : NULL);
}

/* put_header_addresses - an address field as a list; false (nothing written) when absent or empty */
static bool put_header_addresses(struct strbuf *out, const char *hdr, size_t len, const char *name,
                                 struct strbuf *tmp)
{
    size_t  mark = sb_len(out);

    if (!mime_header_get(hdr, len, name, tmp))
        return false;
    put_address_list(out, sb_str(tmp));
    if (strcmp(out->data + mark, "NIL") == 0) {
        sb_truncate(out, mark);
        return false;
    }
    return true;
}

/* mime_envelope - the ENVELOPE of part's header */
void mime_envelope(const struct mime_message *msg, const struct mime_part *part, struct strbuf *out)
{
    const char *hdr = msg->data + part->hdr_off;
    size_t  len = part->body_off - part->hdr_off;
    struct strbuf tmp = STRBUF_INIT, from = STRBUF_INIT;
    static const char *const others[] = { "To", "Cc", "Bcc" };

    sb_putc(out, '(');
    put_header_nstring(out, hdr, len, "Date", &tmp);
    sb_putc(out, ' ');
    put_header_nstring(out, hdr, len, "Subject", &tmp);
    sb_putc(out, ' ');
    if (!put_header_addresses(&from, hdr, len, "From", &tmp))
        sb_set(&from, "NIL");
    sb_append(out, from.data, sb_len(&from));
    /* RFC 3501: Sender and Reply-To absent or empty are the From */
    sb_putc(out, ' ');
    if (!put_header_addresses(out, hdr, len, "Sender", &tmp))
        sb_append(out, from.data, sb_len(&from));
    sb_putc(out, ' ');
    if (!put_header_addresses(out, hdr, len, "Reply-To", &tmp))
        sb_append(out, from.data, sb_len(&from));
    for (size_t i = 0; i < 3; i++) {
        sb_putc(out, ' ');
        if (!put_header_addresses(out, hdr, len, others[i], &tmp))
            sb_puts(out, "NIL");
    }
    sb_putc(out, ' ');
    put_header_nstring(out, hdr, len, "In-Reply-To", &tmp);
    sb_putc(out, ' ');
    put_header_nstring(out, hdr, len, "Message-ID", &tmp);
    sb_putc(out, ')');
    sb_free(&tmp);
    sb_free(&from);
}

/* ---- BODY / BODYSTRUCTURE ---- */

#define EMPTY_ENVELOPE  "(NIL NIL NIL NIL NIL NIL NIL NIL NIL NIL)"
#define EMPTY_BODY      "(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 0 0)"
#define EMPTY_BODYSTRUCTURE \
    "(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 0 0 NIL NIL NIL NIL)"

/* put_params - body-fld-param: ("name" "value" ...) or NIL */
static void put_params(struct strbuf *out, const struct mime_param *pv, size_t n)
{
    if (n == 0) {
        sb_puts(out, "NIL");
        return;
    }
    sb_putc(out, '(');
    for (size_t i = 0; i < n; i++) {
        if (i > 0)
            sb_putc(out, ' ');
        imap_write_nstring(out, pv[i].name);
        sb_putc(out, ' ');
        imap_write_nstring(out, pv[i].value);
    }
    sb_putc(out, ')');
}

/* put_lower - a string lower-cased (encodings are stored upper-case; Dovecot and most
 * clients' fixtures use the lower-case spelling) */
static void put_lower(struct strbuf *out, const char *s)
{
    char   *l = xstrdup(s);

    for (char *t = l; *t; t++)
        *t = (char) tolower((unsigned char) *t);
    imap_write_nstring(out, l);
    free(l);
}

/* put_language - body-fld-lang: NIL, ("en") or ("en" "de") from "en, de" */
static void put_language(struct strbuf *out, const char *lang)
{
    size_t  mark = sb_len(out), n = 0;

    sb_putc(out, '(');
    for (const char *p = lang; p != NULL && *p != '\0';) {
        const char *e = strchr(p, ',');
        size_t  len = e ? (size_t) (e - p) : strlen(p);

        while (len && (*p == ' ' || *p == '\t'))
            p++, len--;
        while (len && (p[len - 1] == ' ' || p[len - 1] == '\t'))
            len--;
        if (len > 0) {
            if (n++ > 0)
                sb_putc(out, ' ');
            imap_write_string(out, p, len);
        }
        p = e ? e + 1 : NULL;
    }
    if (n == 0) {
        sb_truncate(out, mark);
        sb_puts(out, "NIL");
    } else {                            /* a list even for one, as Dovecot sends it */
        sb_putc(out, ')');
    }
}

/* put_extension - body-fld-dsp SP body-fld-lang SP body-fld-loc */
static void put_extension(struct strbuf *out, const struct mime_part *mp)
{
    if (mp->disposition == NULL) {
        sb_puts(out, "NIL");
    } else {
        sb_putc(out, '(');
        imap_write_nstring(out, mp->disposition);
        sb_putc(out, ' ');
        put_params(out, mp->disp_params, mp->ndisp_params);
        sb_putc(out, ')');
    }
    sb_putc(out, ' ');
    put_language(out, mp->language);
    sb_putc(out, ' ');
    imap_write_nstring(out, mp->location);
}

/* put_body - one body (recursive: the tree is at most MIME_MAX_DEPTH deep) */
static void put_body(const struct mime_message *msg, const struct mime_part *mp, bool ext,
                     struct strbuf *out)
{
    sb_putc(out, '(');
    if (mp->is_multipart) {
        if (mp->nchildren == 0)         /* RFC 3501 needs one part: Dovecot's empty one */
            sb_puts(out, ext ? EMPTY_BODYSTRUCTURE : EMPTY_BODY);
        for (size_t i = 0; i < mp->nchildren; i++)
            put_body(msg, &mp->children[i], ext, out);
        sb_putc(out, ' ');
        imap_write_nstring(out, mp->subtype);
        if (ext) {
            sb_putc(out, ' ');
            put_params(out, mp->params, mp->nparams);
            sb_putc(out, ' ');
            put_extension(out, mp);
        }
        sb_putc(out, ')');
        return;
    }
    imap_write_nstring(out, mp->type);
    sb_putc(out, ' ');
    imap_write_nstring(out, mp->subtype);
    sb_putc(out, ' ');
    put_params(out, mp->params, mp->nparams);
    sb_putc(out, ' ');
    imap_write_nstring(out, mp->id);
    sb_putc(out, ' ');
    imap_write_nstring(out, mp->description);
    sb_putc(out, ' ');
    put_lower(out, mp->encoding ? mp->encoding : "7BIT");
    sb_printf(out, " %zu", mp->body_size);
    if (mp->is_message) {
        sb_putc(out, ' ');
        if (mp->nchildren == 1) {
            mime_envelope(msg, &mp->children[0], out);
            sb_putc(out, ' ');
            put_body(msg, &mp->children[0], ext, out);
        } else {                        /* not parsed (limits): an empty message */
            sb_puts(out, EMPTY_ENVELOPE " ");
            sb_puts(out, ext ? EMPTY_BODYSTRUCTURE : EMPTY_BODY);
        }
        sb_printf(out, " %zu", mp->body_lines);
    } else if (strcmp(mp->type, "text") == 0) {
        sb_printf(out, " %zu", mp->body_lines);
    }
    if (ext) {
        sb_putc(out, ' ');
        imap_write_nstring(out, mp->md5);
        sb_putc(out, ' ');
        put_extension(out, mp);
    }
    sb_putc(out, ')');
}

/* mime_bodystructure - BODY or BODYSTRUCTURE of part */
void mime_bodystructure(const struct mime_message *msg, const struct mime_part *part, bool extended,
                        struct strbuf *out)
{
    put_body(msg, part, extended, out);
}
