/*
 * sendmail_headers - "sendmail -t": recipients from the message's headers.
 *
 * Interface (sendmail.h): headers_extract_rcpts(), address_strip().
 *
 * The header section is the lines up to the first empty line (or the first
 * line that is neither a header field nor a continuation: the body started
 * without a separator). Every To:, Cc: and Bcc: field, unfolded, is split
 * into addresses at commas outside quotes, comments and angle brackets,
 * with group syntax ("undisclosed-recipients:;") understood; Bcc: fields
 * are removed from the message, as Sendmail and Postfix do, so the other
 * recipients never see them. Resent- fields are not used (as Postfix does
 * when the message has no Resent- header; a rare case left out).
 */
#include <ctype.h>
#include <stdbool.h>
#include <string.h>
#include <strings.h>

#include "strbuf.h"
#include "strlist.h"

#include "sendmail.h"

/* trim - the span without leading and trailing white space */
static void trim(const char **s, size_t *len)
{
    while (*len > 0 && isspace((unsigned char) **s)) {
        (*s)++;
        (*len)--;
    }
    while (*len > 0 && isspace((unsigned char) (*s)[*len - 1]))
        (*len)--;
}

/* address_strip - the addr-spec of one element: inside <>, else without comments and blanks */
void address_strip(const char *item, size_t len, struct strbuf *out)
{
    const char *lt = NULL, *gt = NULL;
    bool    quoted = false;
    int     comment = 0;

    sb_reset(out);
    for (size_t i = 0; i < len; i++) {
        char    c = item[i];

        if (c == '\\' && i + 1 < len) {
            i++;
            continue;
        }
        if (quoted) {
            quoted = c != '"';
        } else if (comment > 0) {
            comment += c == '(' ? 1 : c == ')' ? -1 : 0;
        } else if (c == '"') {
            quoted = true;
        } else if (c == '(') {
            comment = 1;
        } else if (c == '<' && lt == NULL) {
            lt = item + i;
        } else if (c == '>' && lt != NULL && gt == NULL) {
            gt = item + i;
        }
    }
    if (lt != NULL && gt != NULL) {
        const char *a = lt + 1, *colon;
        size_t  alen = (size_t) (gt - a);

        /* An obsolete source route "<@relay,@relay:user@domain>" names the user last. */
        if (alen > 0 && *a == '@' && (colon = memchr(a, ':', alen)) != NULL) {
            alen -= (size_t) (colon + 1 - a);
            a = colon + 1;
        }
        trim(&a, &alen);
        sb_append(out, a, alen);
        return;
    }
    /* No angle brackets: the element is the address, minus comments and white space. */
    quoted = false;
    comment = 0;
    for (size_t i = 0; i < len; i++) {
        char    c = item[i];

        if (comment > 0) {
            comment += c == '(' ? 1 : c == ')' ? -1 : 0;
            continue;
        }
        if (!quoted && c == '(') {
            comment = 1;
            continue;
        }
        if (c == '"')
            quoted = !quoted;
        if (!quoted && isspace((unsigned char) c))
            continue;
        sb_putc(out, c);
    }
}

/* split_addresses - each element of an address list value into rcpts */
static void split_addresses(const char *v, size_t len, struct strlist *rcpts)
{
    struct strbuf addr = STRBUF_INIT;
    size_t  start = 0;
    bool    quoted = false, angle = false;
    int     comment = 0;

    for (size_t i = 0; i <= len; i++) {
        char    c = i < len ? v[i] : ',';

        if (i < len && c == '\\' && i + 1 < len) {
            i++;
            continue;
        }
        if (quoted) {
            quoted = c != '"';
            continue;
        }
        if (comment > 0) {
            comment += c == '(' ? 1 : c == ')' ? -1 : 0;
            continue;
        }
        if (c == '"')
            quoted = true;
        else if (c == '(')
            comment = 1;
        else if (c == '<')
            angle = true;
        else if (c == '>')
            angle = false;
        else if (c == ':' && !angle)
            start = i + 1;              /* "group name:" - members follow */
        else if ((c == ',' || c == ';') && !angle) {
            address_strip(v + start, i - start, &addr);
            if (sb_len(&addr) > 0 && !strlist_contains_nocase(rcpts, sb_str(&addr)))
                strlist_add(rcpts, sb_str(&addr));
            start = i + 1;
        }
    }
    sb_free(&addr);
}

/* field_is - the field at line starts with NAME: (any case) */
static bool field_is(const char *line, size_t len, const char *name)
{
    size_t  n = strlen(name);

    return len > n && strncasecmp(line, name, n) == 0 && line[n] == ':';
}

/* headers_extract_rcpts - collect To/Cc/Bcc, drop the Bcc fields from msg */
void headers_extract_rcpts(struct strbuf *msg, struct strlist *rcpts)
{
    struct strbuf out = STRBUF_INIT, value = STRBUF_INIT;
    const char *p = sb_str(msg), *end = p + sb_len(msg);
    bool    in_field = false, keep = true, wanted = false;

    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t) (end - p));
        size_t  len = nl ? (size_t) (nl - p) : (size_t) (end - p);
        bool    cont = len > 0 && (*p == ' ' || *p == '\t');
        const char *colon = memchr(p, ':', len);
        bool    field = !cont && colon != NULL && colon > p;

        for (const char *q = p; field && q < colon; q++)
            field = *q > ' ' && *q < 0x7f;
        if (!cont && wanted) {
            split_addresses(sb_str(&value), sb_len(&value), rcpts);
            wanted = false;
        }
        if (len == 0 || (!cont && !field) || (cont && !in_field))
            break;                      /* the body starts here */
        if (!cont) {
            in_field = true;
            keep = !field_is(p, len, "bcc");
            wanted = field_is(p, len, "to") || field_is(p, len, "cc") || !keep;
            sb_reset(&value);
            if (wanted)
                sb_append(&value, colon + 1, len - (size_t) (colon + 1 - p));
        } else if (wanted) {
            sb_putc(&value, ' ');
            sb_append(&value, p, len);
        }
        if (keep)
            sb_append(&out, p, nl ? len + 1 : len);
        p = nl ? nl + 1 : end;
    }
    if (wanted)
        split_addresses(sb_str(&value), sb_len(&value), rcpts);
    sb_append(&out, p, (size_t) (end - p));
    sb_reset(msg);
    sb_append(msg, sb_str(&out), sb_len(&out));
    sb_free(&out);
    sb_free(&value);
}
