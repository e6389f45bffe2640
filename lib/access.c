/*
 * access - Postfix access(5) semantics without smtpd state. See access.h.
 *
 * Everything here reads text that came from a table an administrator wrote
 * or from a policy service over a socket: lengths are bounded by the
 * callers' buffers and nothing is assumed about the characters.
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "access.h"
#include "strbuf.h"
#include "strlist.h"

#define ACCESS_REJECT_CODE  554         /* Postfix access_map_reject_code */
#define ACCESS_DEFER_CODE   450         /* Postfix access_map_defer_code */

/* word_is - does value start with the word w (any case), followed by space or the end? */
static bool word_is(const char *value, const char *w, const char **rest)
{
    size_t  len = strlen(w);

    if (strncasecmp(value, w, len) != 0)
        return false;
    if (value[len] != 0 && value[len] != ' ' && value[len] != '\t')
        return false;
    value += len;
    while (*value == ' ' || *value == '\t')
        value++;
    *rest = value;
    return true;
}

/* dsn_valid - "X.Y.Z" with X in 2/4/5, Y up to 3 digits, Z up to 3 digits (RFC 3463) */
static size_t dsn_valid(const char *p)
{
    size_t  i = 0;
    size_t  n;

    if (p[0] != '2' && p[0] != '4' && p[0] != '5')
        return 0;
    if (p[1] != '.')
        return 0;
    i = 2;
    for (n = 0; isdigit((unsigned char) p[i]) && n < 4; n++)
        i++;
    if (n == 0 || n > 3 || p[i] != '.')
        return 0;
    i++;
    for (n = 0; isdigit((unsigned char) p[i]) && n < 4; n++)
        i++;
    if (n == 0 || n > 3)
        return 0;
    if (p[i] != 0 && p[i] != ' ' && p[i] != '\t')
        return 0;
    return i;
}

/* set_text - the action's text, trailing white space off */
static void set_text(struct access_action *out, const char *text)
{
    size_t  len = strlen(text);

    while (len > 0 && (text[len - 1] == ' ' || text[len - 1] == '\t'))
        len--;
    out->text = text;
    out->text_len = len;
}

/* access_parse - what a table value or policy action means; never fails (see above) */
void access_parse(const char *value, struct access_action *out)
{
    static const char *const unsupported[] = {
        "PREPEND", "HOLD", "DISCARD", "FILTER", "REDIRECT", "BCC",
    };
    const char *rest;
    const char *p;

    memset(out, 0, sizeof(*out));
    while (*value == ' ' || *value == '\t')
        value++;
    set_text(out, "");
    for (p = value; isdigit((unsigned char) *p); p++)
         /* void */ ;
    if (p > value && *p == 0) {
        /* An all-numerical result means OK (as DNS white lists return). */
        out->kind = ACCESS_OK;
        return;
    }
    if (word_is(value, "OK", &rest)) {
        out->kind = ACCESS_OK;
        return;
    }
    if (word_is(value, "DUNNO", &rest)) {
        out->kind = ACCESS_DUNNO;
        return;
    }
    if (word_is(value, "REJECT", &rest)) {
        out->kind = ACCESS_REJECT;
        out->code = ACCESS_REJECT_CODE;
        snprintf(out->dsn, sizeof(out->dsn), "5.7.1");
        set_text(out, rest);
        return;
    }
    if (word_is(value, "DEFER", &rest) || word_is(value, "DEFER_IF_PERMIT", &rest)
        || word_is(value, "DEFER_IF_REJECT", &rest)) {
        out->kind = strncasecmp(value, "DEFER_IF_PERMIT", 15) == 0 ? ACCESS_DEFER_IF_PERMIT
            : strncasecmp(value, "DEFER_IF_REJECT", 15) == 0 ? ACCESS_DEFER_IF_REJECT
            : ACCESS_DEFER;
        out->code = ACCESS_DEFER_CODE;
        snprintf(out->dsn, sizeof(out->dsn), "4.7.1");
        set_text(out, rest);
        return;
    }
    if (word_is(value, "WARN", &rest) || word_is(value, "INFO", &rest)) {
        out->kind = ACCESS_WARN;
        set_text(out, rest);
        return;
    }
    for (size_t i = 0; i < sizeof(unsupported) / sizeof(unsupported[0]); i++) {
        if (word_is(value, unsupported[i], &rest)) {
            out->kind = ACCESS_UNSUPPORTED;
            set_text(out, value);
            return;
        }
    }
    if ((value[0] == '4' || value[0] == '5') && isdigit((unsigned char) value[1])
        && isdigit((unsigned char) value[2])
        && (value[3] == 0 || value[3] == ' ' || value[3] == '\t')) {
        size_t  n;

        out->kind = ACCESS_CODE;
        out->code = (value[0] - '0') * 100 + (value[1] - '0') * 10 + (value[2] - '0');
        rest = value + 3;
        while (*rest == ' ' || *rest == '\t')
            rest++;
        if ((n = dsn_valid(rest)) > 0 && n < sizeof(out->dsn)) {
            memcpy(out->dsn, rest, n);
            out->dsn[n] = 0;
            rest += n;
            while (*rest == ' ' || *rest == '\t')
                rest++;
        } else {
            snprintf(out->dsn, sizeof(out->dsn), "%c.7.1", value[0]);
        }
        set_text(out, rest);
        return;
    }
    out->kind = ACCESS_RESTRICTIONS;
    set_text(out, value);
}

/* access_client_keys - lookup keys for a client address (text form) */
void access_client_keys(const char *addr, struct strlist *keys)
{
    char    buf[64];
    int     delim = strchr(addr, ':') != NULL ? ':' : '.';
    size_t  len = strlen(addr);

    if (len == 0 || len >= sizeof(buf))
        return;
    memcpy(buf, addr, len + 1);
    /* Postfix's split_at_right loop: the address, then ever shorter prefixes. */
    for (;;) {
        char   *cut;

        if (*buf)
            strlist_add(keys, buf);
        if ((cut = strrchr(buf, delim)) == NULL)
            break;
        *cut = 0;
    }
}

/* access_domain_keys - lookup keys for a domain: itself, then its parents */
void access_domain_keys(const char *domain, struct strlist *keys)
{
    const char *name = domain;

    if (*domain == 0)
        return;
    while (name != NULL && *name) {
        strlist_add(keys, name);
        name = strchr(name + 1, '.');
        if (name != NULL)
            name++;
    }
}

/* access_address_keys - "user@domain", domain keys, "user@"; "<>" for the null address */
void access_address_keys(const char *addr, const char *local, const char *domain,
                         bool null_address, struct strlist *keys)
{
    struct strbuf k = STRBUF_INIT;

    if (null_address) {
        strlist_add(keys, "<>");
        return;
    }
    strlist_add(keys, addr);
    if (domain != NULL && *domain)
        access_domain_keys(domain, keys);
    if (local != NULL && *local) {
        sb_printf(&k, "%s@", local);
        strlist_add(keys, sb_str(&k));
    }
    sb_free(&k);
}

/* access_format_reply - "CODE D.S.N <NAME>: CLASS rejected: TEXT" (DSN class fixed up) */
void access_format_reply(struct strbuf *out, int code, const char *dsn, const char *name,
                         const char *reply_class, const char *text, size_t text_len)
{
    char    fixed[16];

    snprintf(fixed, sizeof(fixed), "%s", dsn && *dsn ? dsn : "5.7.1");
    /* RFC 3463: the class digit of the enhanced code is the reply code's first digit. */
    fixed[0] = (char) ('0' + code / 100);
    if (text == NULL || text_len == 0) {
        text = "Access denied";
        text_len = strlen(text);
    }
    sb_reset(out);
    sb_printf(out, "%d %s <%s>: %s rejected: ", code, fixed, name, reply_class);
    /* A table or a policy service wrote the text: no control characters in a reply. */
    for (size_t i = 0; i < text_len && i < 400; i++) {
        unsigned char c = (unsigned char) text[i];

        sb_putc(out, c < 0x20 || c == 0x7f ? ' ' : c);
    }
}

/* access_valid_hostname - RFC 1035 labels: letters, digits, '-', not all-numeric */
bool access_valid_hostname(const char *name)
{
    size_t  len = strlen(name);
    size_t  label = 0;
    bool    non_numeric = false;

    if (len > 0 && name[len - 1] == '.')
        len--;
    if (len == 0 || len > 255)
        return false;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char) name[i];

        if (c == '.') {
            if (label == 0 || name[i - 1] == '-')
                return false;
            label = 0;
            continue;
        }
        if (isalpha(c) || c == '_') {
            non_numeric = true;
        } else if (c == '-') {
            if (label == 0)
                return false;
            non_numeric = true;
        } else if (!isdigit(c)) {
            return false;
        }
        if (++label > 63)
            return false;
    }
    if (label == 0 || name[len - 1] == '-')
        return false;
    /* "1.2.3.4" is an address, not a name. */
    return non_numeric;
}

/* access_valid_hostaddr - an IPv4 or IPv6 address, with or without [] ("[IPv6:...]" too) */
bool access_valid_hostaddr(const char *name)
{
    char    buf[INET6_ADDRSTRLEN + 8];
    unsigned char bin[16];
    size_t  len = strlen(name);

    if (len >= 2 && name[0] == '[' && name[len - 1] == ']') {
        name++;
        len -= 2;
    }
    if (len >= 5 && strncasecmp(name, "IPv6:", 5) == 0) {
        name += 5;
        len -= 5;
        if (len == 0 || len >= sizeof(buf))
            return false;
        memcpy(buf, name, len);
        buf[len] = 0;
        return inet_pton(AF_INET6, buf, bin) == 1;
    }
    if (len == 0 || len >= sizeof(buf))
        return false;
    memcpy(buf, name, len);
    buf[len] = 0;
    return inet_pton(AF_INET, buf, bin) == 1 || inet_pton(AF_INET6, buf, bin) == 1;
}

/* access_is_fqdn - a valid host name with at least one dot (a trailing dot is ignored) */
bool access_is_fqdn(const char *name)
{
    const char *dot;
    size_t  len = strlen(name);

    if (!access_valid_hostname(name))
        return false;
    dot = strchr(name, '.');
    return dot != NULL && (size_t) (dot - name) + 1 < len;
}
