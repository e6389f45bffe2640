/*
 * address - RFC 5321 envelope addresses: the path of MAIL FROM and RCPT TO.
 *
 * Interface (address.h): address_init(), address_free(),
 * address_parse_path(), address_quote_local().
 *
 * The parser reads the path byte by byte, once, and never looks past the end
 * of the path (a closing ">" or, without brackets, the first space), so
 * what follows is left to the caller's ESMTP parameter parser. It is as
 * lenient as Postfix where real clients differ from the RFC (no brackets,
 * source routes, dots in odd places of a local part) and strict where
 * leniency would let hostile bytes through (control characters, bad UTF-8,
 * unterminated quotes or brackets, oversized parts).
 *
 * Diagnostics: address_parse_path() returns a short static reason such as
 * "missing closing '>'" or "local part too long".
 */
#include <arpa/inet.h>
#include <stdbool.h>
#include <stddef.h>
#include <string.h>
#include <strings.h>

#include "address.h"
#include "utf8.h"

#define LABEL_MAX 63                    /* RFC 1035 2.3.4 */

/* address_init - empty address, ready for address_parse_path() */
void address_init(struct address *a)
{
    sb_init(&a->addr);
    sb_init(&a->local);
    sb_init(&a->domain);
    a->flags = 0;
}

/* address_free - release the strings */
void address_free(struct address *a)
{
    sb_free(&a->addr);
    sb_free(&a->local);
    sb_free(&a->domain);
    a->flags = 0;
}

/* is_ctrl - a control character: never valid anywhere in an address */
static bool is_ctrl(unsigned char c)
{
    return c < 0x20 || c == 0x7f;
}

/* is_atext - RFC 5322 atext, plus 8-bit bytes (RFC 6531 UTF8-non-ascii) */
static bool is_atext(unsigned char c)
{
    if (c >= 0x80)
        return true;
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))
        return true;
    return c != 0 && strchr("!#$%&'*+-/=?^_`{|}~", c) != NULL;
}

/* is_special - characters that may appear in a local part only inside quotes */
static bool is_special(unsigned char c)
{
    return c != 0 && strchr("()<>,;:\\\"[]@ ", c) != NULL;
}

/* is_dot_atom - local can be written without quotes */
static bool is_dot_atom(const char *local, size_t len)
{
    bool at_start = true;

    if (len == 0)
        return false;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char) local[i];

        if (c == '.') {
            if (at_start)
                return false;
            at_start = true;
        } else if (is_atext(c)) {
            at_start = false;
        } else {
            return false;
        }
    }
    return !at_start;
}

/* address_quote_local - append local as it must be written in an address */
void address_quote_local(struct strbuf *out, const char *local, size_t len)
{
    if (is_dot_atom(local, len)) {
        sb_append(out, local, len);
        return;
    }
    sb_putc(out, '"');
    for (size_t i = 0; i < len; i++) {
        if (local[i] == '"' || local[i] == '\\')
            sb_putc(out, '\\');
        sb_putc(out, local[i]);
    }
    sb_putc(out, '"');
}

/* check_hostname - a domain name: labels of letters, digits, "-", "_" or UTF-8 */
static const char *check_hostname(const char *d, size_t len, unsigned *flags)
{
    size_t label = 0;
    bool trailing_dot = false;

    if (len == 0)
        return "empty domain";
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char) d[i];

        if (c == '.') {
            if (label == 0)
                return "empty label in domain";
            if (d[i - 1] == '-')
                return "domain label ends with '-'";
            label = 0;
            trailing_dot = (i + 1 == len);
            continue;
        }
        if (c == '-' && label == 0)
            return "domain label starts with '-'";
        if (c >= 0x80)
            *flags |= ADDRESS_8BIT;
        else if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
                   || (c >= '0' && c <= '9') || c == '-' || c == '_'))
            return "bad character in domain";
        if (++label > LABEL_MAX)
            return "domain label too long";
    }
    if (!trailing_dot && d[len - 1] == '-')
        return "domain label ends with '-'";
    if (trailing_dot) {
        if (len == 1)
            return "empty label in domain";
        *flags |= ADDRESS_TRAILING_DOT;
    }
    if ((*flags & ADDRESS_8BIT) && !utf8_valid(d, len))
        return "invalid UTF-8 in domain";
    return NULL;
}

/* check_literal - "[1.2.3.4]" or "[IPv6:...]" (brackets included in d) */
static const char *check_literal(const char *d, size_t len)
{
    char    buf[INET6_ADDRSTRLEN + 8];
    unsigned char bin[16];
    const char *body = d + 1;
    size_t  body_len = len - 2;

    if (body_len == 0 || body_len >= sizeof(buf))
        return "bad address literal";
    if (body_len > 5 && strncasecmp(body, "IPv6:", 5) == 0) {
        memcpy(buf, body + 5, body_len - 5);
        buf[body_len - 5] = 0;
        return inet_pton(AF_INET6, buf, bin) == 1 ? NULL : "bad IPv6 address literal";
    }
    if (memchr(body, ':', body_len) != NULL)
        return "unsupported address literal";
    memcpy(buf, body, body_len);
    buf[body_len] = 0;
    return inet_pton(AF_INET, buf, bin) == 1 ? NULL : "bad IPv4 address literal";
}

/* is_end - the path ends here: ">" with brackets, a space or the end without */
static bool is_end(const char *text, size_t len, size_t p, bool bracket)
{
    if (p >= len)
        return true;
    return bracket ? text[p] == '>' : text[p] == ' ';
}

/* skip_route - "@a,@b:" before the mailbox; returns the offset after ":" */
static const char *skip_route(const char *text, size_t len, size_t *pp, bool bracket)
{
    size_t  p = *pp;
    size_t  colon;
    unsigned dummy = 0;

    /* Without a ":" this is no route but an address with nothing before "@". */
    for (colon = p; !is_end(text, len, colon, bracket) && text[colon] != ':'; colon++)
         /* void */ ;
    if (is_end(text, len, colon, bracket))
        return "empty local part";
    while (p < colon) {
        size_t  start;

        if (text[p] != '@')
            return "bad source route";
        start = ++p;
        while (p < colon && text[p] != ',')
            p++;
        if (p - start > ADDRESS_DOMAIN_MAX)
            return "bad source route";
        if (text[start] == '[' && p - start >= 2 && text[p - 1] == ']') {
            if (check_literal(text + start, p - start) != NULL)
                return "bad source route";
        } else if (p == start || check_hostname(text + start, p - start, &dummy) != NULL) {
            return "bad source route";
        }
        if (p < colon)
            p++;                        /* the "," */
    }
    *pp = colon + 1;
    return NULL;
}

/* parse - the work of address_parse_path(); returns NULL or the reason */
static const char *parse(const char *text, size_t len, unsigned options,
                         struct address *a, size_t *used)
{
    bool    bracket = (len > 0 && text[0] == '<');
    size_t  p = bracket ? 1 : 0;
    size_t  path_start = p;
    size_t  local_start;
    size_t  local_len;
    const char *why;

    if (!bracket)
        a->flags |= ADDRESS_NO_BRACKETS;
    if (bracket && p < len && text[p] == '>') {
        if (!(options & ADDRESS_ALLOW_NULL))
            return "null address not allowed";
        /* As for any other path: only a space (the parameters) may follow. */
        if (p + 1 < len && text[p + 1] != ' ')
            return "text after address";
        a->flags |= ADDRESS_NULL;
        *used = p + 1;
        return NULL;
    }
    if (is_end(text, len, p, bracket))
        return p >= len && bracket ? "missing closing '>'" : "empty address";

    if (text[p] == '@') {
        if ((why = skip_route(text, len, &p, bracket)) != NULL)
            return why;
        a->flags |= ADDRESS_ROUTE;
    }

    /* The local part. */
    local_start = p;
    if (p < len && text[p] == '"') {
        for (p++;; p++) {
            unsigned char c;

            if (p >= len)
                return "unbalanced quotes";
            c = (unsigned char) text[p];
            if (c == '"')
                break;
            if (c == '\\') {
                if (++p >= len)
                    return "unbalanced quotes";
                c = (unsigned char) text[p];
            }
            if (is_ctrl(c))
                return "control character in address";
            if (c >= 0x80)
                a->flags |= ADDRESS_8BIT;
            sb_putc(&a->local, c);
        }
        p++;                            /* the closing quote */
        if (!is_end(text, len, p, bracket) && text[p] != '@')
            return p < len && text[p] == ' ' ? "space in address"
                : "text after quoted local part";
    } else {
        for (; !is_end(text, len, p, bracket) && text[p] != '@'; p++) {
            unsigned char c = (unsigned char) text[p];

            if (is_ctrl(c))
                return "control character in address";
            if (c == ' ')
                return "space in address";
            if (c == '"')
                return "unbalanced quotes";
            if (is_special(c))
                return "bad character in local part";
            if (c >= 0x80)
                a->flags |= ADDRESS_8BIT;
            sb_putc(&a->local, c);
        }
    }
    local_len = p - local_start;
    if (sb_len(&a->local) == 0)
        return "empty local part";
    if (local_len > ADDRESS_LOCAL_MAX)
        return "local part too long";
    if ((a->flags & ADDRESS_8BIT)
        && !utf8_valid(sb_str(&a->local), sb_len(&a->local)))
        return "invalid UTF-8 in local part";

    /* The domain. */
    if (p < len && text[p] == '@') {
        size_t  dom_start = ++p;

        if (p < len && text[p] == '[') {
            while (p < len && text[p] != ']') {
                unsigned char c = (unsigned char) text[p];

                if (is_ctrl(c))
                    return "control character in address";
                if (c == ' ' || c == '>' || (c == '[' && p > dom_start) || c == '\\')
                    return "bad address literal";
                p++;
            }
            if (p >= len)
                return "bad address literal";
            p++;                        /* the "]" */
            if ((why = check_literal(text + dom_start, p - dom_start)) != NULL)
                return why;
            a->flags |= ADDRESS_LITERAL;
        } else {
            for (; !is_end(text, len, p, bracket); p++) {
                unsigned char c = (unsigned char) text[p];

                if (is_ctrl(c))
                    return "control character in address";
                if (c == ' ')
                    return "space in address";
            }
            if (p - dom_start > ADDRESS_DOMAIN_MAX)
                return "domain too long";
            if ((why = check_hostname(text + dom_start, p - dom_start, &a->flags)) != NULL)
                return why;
        }
        if (p - dom_start > ADDRESS_DOMAIN_MAX)
            return "domain too long";
        sb_append(&a->domain, text + dom_start, p - dom_start);
    } else {
        a->flags |= ADDRESS_NO_DOMAIN;
    }

    /* The end of the path. */
    if (bracket) {
        if (p >= len)
            return "missing closing '>'";
        if (text[p] != '>')
            return text[p] == ' ' ? "space in address" : "bad character in domain";
        p++;
        if (p > ADDRESS_PATH_MAX)
            return "address too long";
    } else if (p - path_start + 2 > ADDRESS_PATH_MAX) {
        return "address too long";
    }
    if (p < len && text[p] != ' ')
        return "text after address";

    address_quote_local(&a->addr, sb_str(&a->local), sb_len(&a->local));
    if (!(a->flags & ADDRESS_NO_DOMAIN)) {
        sb_putc(&a->addr, '@');
        sb_append(&a->addr, sb_str(&a->domain), sb_len(&a->domain));
    }
    if (!is_dot_atom(sb_str(&a->local), sb_len(&a->local)))
        a->flags |= ADDRESS_QUOTED;
    *used = p;
    return NULL;
}

/* address_parse_path - parse the path at text[0..len); bytes used or -1 */
long address_parse_path(const char *text, size_t len, unsigned options,
                        struct address *a, const char **reason)
{
    size_t  used = 0;
    const char *why;

    sb_reset(&a->addr);
    sb_reset(&a->local);
    sb_reset(&a->domain);
    a->flags = 0;
    if ((why = parse(text, len, options, a, &used)) != NULL) {
        sb_reset(&a->addr);
        sb_reset(&a->local);
        sb_reset(&a->domain);
        a->flags = 0;
        *reason = why;
        return -1;
    }
    *reason = NULL;
    return (long) used;
}
