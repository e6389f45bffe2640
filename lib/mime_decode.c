/*
 * mime_decode - decoding for SEARCH and display: RFC 2047 encoded-words,
 * Content-Transfer-Encoding (base64, quoted-printable) and RFC 5322 dates
 * (interface: mime_decode_2047, mime_decode_body, mime_parse_date in mime.h).
 *
 * Every decoder is tolerant, as mail in the wild needs: base64 skips bytes
 * outside its alphabet and stops at "=", quoted-printable keeps a "=" that
 * does not start an escape, an encoded-word in an unknown charset or with a
 * bad encoding stays as written. Charsets converted to UTF-8 are UTF-8,
 * US-ASCII, ISO-8859-1 (and its aliases Latin-1) and Windows-1252 (a
 * superset of ISO-8859-1 in practice); no iconv, since imapd runs chrooted
 * where the conversion modules cannot be loaded.
 */
#include <ctype.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "mem.h"
#include "strbuf.h"
#include "mime.h"
#include "utf8.h"
#include "base64.h"

enum charset { CS_UTF8, CS_LATIN1, CS_CP1252, CS_UNKNOWN };

/* Windows-1252 0x80..0x9f as Unicode (0 = undefined: kept as U+FFFD) */
static const uint16_t cp1252_high[32] = {
    0x20ac, 0, 0x201a, 0x0192, 0x201e, 0x2026, 0x2020, 0x2021,
    0x02c6, 0x2030, 0x0160, 0x2039, 0x0152, 0, 0x017d, 0,
    0, 0x2018, 0x2019, 0x201c, 0x201d, 0x2022, 0x2013, 0x2014,
    0x02dc, 0x2122, 0x0161, 0x203a, 0x0153, 0, 0x017e, 0x0178,
};

/* charset_of - a charset name (RFC 2231 "*language" suffix allowed) */
static enum charset charset_of(const char *name, size_t len)
{
    const char *star = memchr(name, '*', len);

    if (star != NULL)
        len = (size_t) (star - name);
    static const struct { const char *name; enum charset cs; } names[] = {
        { "utf-8", CS_UTF8 }, { "utf8", CS_UTF8 }, { "us-ascii", CS_UTF8 }, { "ascii", CS_UTF8 },
        { "iso-8859-1", CS_LATIN1 }, { "iso8859-1", CS_LATIN1 }, { "latin1", CS_LATIN1 },
        { "l1", CS_LATIN1 }, { "iso_8859-1", CS_LATIN1 },
        { "windows-1252", CS_CP1252 }, { "cp1252", CS_CP1252 },
    };
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
        if (strlen(names[i].name) == len && strncasecmp(names[i].name, name, len) == 0)
            return names[i].cs;
    return CS_UNKNOWN;
}

/* convert - append s[0..len) in charset cs as UTF-8 */
static void convert(struct strbuf *out, const char *s, size_t len, enum charset cs)
{
    if (cs == CS_UTF8 || cs == CS_UNKNOWN) {
        sb_append(out, s, len);
        return;
    }
    for (size_t i = 0; i < len; i++) {
        unsigned c = (unsigned char) s[i];

        if (cs == CS_CP1252 && c >= 0x80 && c < 0xa0)
            utf8_put(out, cp1252_high[c - 0x80] ? cp1252_high[c - 0x80] : 0xfffd);
        else
            utf8_put(out, c);
    }
}

/* b64_decode - tolerant base64: other bytes skipped, "=" ends the data */
static void b64_decode(struct strbuf *out, const char *s, size_t len)
{
    uint32_t acc = 0;
    int     bits = 0;

    for (size_t i = 0; i < len && s[i] != '='; i++) {
        int     v = base64_digit_value((unsigned char) s[i], '/');

        if (v < 0)
            continue;
        acc = (acc << 6) | (uint32_t) v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            sb_putc(out, (int) ((acc >> bits) & 0xff));
        }
    }
}

/* hex_value - the value of a hex digit, or -1 */
static int hex_value(unsigned char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    c = (unsigned char) tolower(c);
    return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* qp_decode - quoted-printable; header (RFC 2047 "Q") turns "_" into a space */
static void qp_decode(struct strbuf *out, const char *s, size_t len, bool header)
{
    for (size_t i = 0; i < len; i++) {
        char    c = s[i];

        if (c == '=') {
            int     h, l;

            if (i + 2 < len && (h = hex_value((unsigned char) s[i + 1])) >= 0
                && (l = hex_value((unsigned char) s[i + 2])) >= 0) {
                sb_putc(out, h * 16 + l);
                i += 2;
                continue;
            }
            /* soft line break: "=" then optional white space, then the line end */
            size_t  j = i + 1;

            while (j < len && (s[j] == ' ' || s[j] == '\t'))
                j++;
            if (j < len && s[j] == '\r')
                j++;
            if (j < len && s[j] == '\n') {
                i = j;
                continue;
            }
            if (j == len && !header) {
                i = j;
                continue;
            }
            sb_putc(out, '=');
        } else if (c == '_' && header) {
            sb_putc(out, ' ');
        } else if ((c == ' ' || c == '\t') && !header) {
            /* white space at the end of a line is transport padding (RFC 2045 6.7 rule 3) */
            size_t  j = i;

            while (j < len && (s[j] == ' ' || s[j] == '\t'))
                j++;
            if (j < len && (s[j] == '\n' || s[j] == '\r'))
                i = j - 1;
            else
                sb_append(out, s + i, j - i), i = j - 1;
        } else {
            sb_putc(out, c);
        }
    }
}

/*
 * encoded_word - an encoded-word "=?charset?B|Q?text?=" at s[0..len):
 * its length, the charset and the encoded text; 0 if there is none.
 */
static size_t encoded_word(const char *s, size_t len, const char **cs, size_t *cslen, char *enc,
                           const char **text, size_t *textlen)
{
    if (len < 8 || s[0] != '=' || s[1] != '?')
        return 0;
    size_t  i = 2;

    while (i < len && s[i] != '?' && s[i] > ' ' && s[i] < 0x7f)
        i++;
    if (i == 2 || i + 3 >= len || s[i] != '?' || s[i + 2] != '?')
        return 0;
    *cs = s + 2;
    *cslen = i - 2;
    *enc = (char) toupper((unsigned char) s[i + 1]);
    if (*enc != 'B' && *enc != 'Q')
        return 0;
    size_t  t = i + 3, j = t;

    while (j + 1 < len && !(s[j] == '?' && s[j + 1] == '=')) {
        if (s[j] == ' ' || s[j] == '\t' || s[j] == '\r' || s[j] == '\n')
            return 0;                   /* encoded-words contain no white space */
        j++;
    }
    if (j + 1 >= len)
        return 0;
    *text = s + t;
    *textlen = j - t;
    return j + 2;
}

/* mime_decode_2047 - encoded-words decoded, the rest as is */
void mime_decode_2047(const char *text, size_t len, struct strbuf *out)
{
    struct strbuf raw = STRBUF_INIT;
    size_t  i = 0, pending_ws = 0, ws_start = 0;
    bool    last_was_word = false;

    sb_reset(&raw);
    while (i < len) {
        const char *cs, *etext;
        size_t  cslen, elen, n;
        char    enc;

        if (text[i] == ' ' || text[i] == '\t' || text[i] == '\r' || text[i] == '\n') {
            if (pending_ws == 0)
                ws_start = i;
            pending_ws++;
            i++;
            continue;
        }
        n = text[i] == '=' ? encoded_word(text + i, len - i, &cs, &cslen, &enc, &etext, &elen) : 0;
        enum charset c = n ? charset_of(cs, cslen) : CS_UNKNOWN;

        if (n > 0 && c != CS_UNKNOWN) {
            /* white space between two encoded-words is dropped (RFC 2047 6.2) */
            if (pending_ws && !last_was_word)
                sb_append(out, text + ws_start, pending_ws);
            pending_ws = 0;
            sb_reset(&raw);
            if (enc == 'B')
                b64_decode(&raw, etext, elen);
            else
                qp_decode(&raw, etext, elen, true);
            convert(out, raw.data, sb_len(&raw), c);
            last_was_word = true;
            i += n;
            continue;
        }
        if (pending_ws)
            sb_append(out, text + ws_start, pending_ws);
        pending_ws = 0;
        size_t  j = n ? i + n : i + 1;

        while (j < len && text[j] != ' ' && text[j] != '\t' && text[j] != '\r' && text[j] != '\n'
               && !(n == 0 && text[j] == '=' && j + 1 < len && text[j + 1] == '?'))
            j++;
        sb_append(out, text + i, j - i);
        last_was_word = false;
        i = j;
    }
    if (pending_ws)
        sb_append(out, text + ws_start, pending_ws);
    sb_free(&raw);
}

/* mime_decode_body - a leaf's content without its transfer encoding */
void mime_decode_body(const struct mime_message *msg, const struct mime_part *part, struct strbuf *out)
{
    const char *s = msg->data + part->body_off;
    size_t  len = part->end_off > part->body_off ? part->end_off - part->body_off : 0;

    if (part->is_multipart || part->end_off > msg->len)
        return;
    if (part->encoding != NULL && strcasecmp(part->encoding, "BASE64") == 0)
        b64_decode(out, s, len);
    else if (part->encoding != NULL && strcasecmp(part->encoding, "QUOTED-PRINTABLE") == 0)
        qp_decode(out, s, len, false);
    else
        sb_append(out, s, len);
}

/* ---- dates (RFC 5322 3.3, 4.3) ---- */

/* date_skip - skip white space, comments and commas */
static void date_skip(const char **p)
{
    const char *s = *p;

    for (;;) {
        while (*s == ' ' || *s == '\t' || *s == '\r' || *s == '\n' || *s == ',')
            s++;
        if (*s != '(')
            break;
        for (size_t level = 0; *s != '\0';) {
            if (*s == '\\' && s[1] != '\0')
                s++;
            else if (*s == '(')
                level++;
            else if (*s == ')' && --level == 0) {
                s++;
                break;
            }
            s++;
        }
    }
    *p = s;
}

/* date_number - up to max digits at *p; -1 if none */
static long date_number(const char **p, int max)
{
    long    v = 0;
    int     n = 0;

    while (isdigit((unsigned char) **p) && n < max)
        v = v * 10 + (*(*p)++ - '0'), n++;
    if (n == 0 || isdigit((unsigned char) **p))
        return -1;
    return v;
}

/* days_from_civil - days since 1970-01-01 of y-m-d (proleptic Gregorian) */
static long days_from_civil(long y, long m, long d)
{
    y -= m <= 2;
    long    era = (y >= 0 ? y : y - 399) / 400;
    long    yoe = y - era * 400;
    long    doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    long    doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;

    return era * 146097 + doe - 719468;
}

/* zone_offset - minutes east of UTC for a zone name, 0 for the unknown (RFC 5322 4.3) */
static long zone_offset(const char *z, size_t n)
{
    static const struct { const char *name; long hours; } zones[] = {
        { "UT", 0 }, { "UTC", 0 }, { "GMT", 0 }, { "Z", 0 },
        { "EST", -5 }, { "EDT", -4 }, { "CST", -6 }, { "CDT", -5 },
        { "MST", -7 }, { "MDT", -6 }, { "PST", -8 }, { "PDT", -7 },
    };
    for (size_t i = 0; i < sizeof(zones) / sizeof(zones[0]); i++)
        if (strlen(zones[i].name) == n && strncasecmp(zones[i].name, z, n) == 0)
            return zones[i].hours * 60;
    return 0;                           /* military and unknown zones: "-0000" */
}

/* mime_parse_date - an RFC 5322 date-time as a time_t */
int mime_parse_date(const char *value, time_t *out)
{
    static const char months[] = "janfebmaraprmayjunjulaugsepoctnovdec";
    const char *p = value;
    long    day, mon = -1, year, hour, min, sec = 0, off = 0;

    date_skip(&p);
    if (isalpha((unsigned char) *p)) {  /* day-of-week, checked loosely */
        while (isalpha((unsigned char) *p))
            p++;
        date_skip(&p);
    }
    if ((day = date_number(&p, 2)) < 1 || day > 31)
        return -1;
    date_skip(&p);
    if (*p == '-')                      /* "7-Feb-1994" as some mailers write */
        p++;
    for (int i = 0; i < 12; i++)
        if (strncasecmp(p, months + 3 * i, 3) == 0)
            mon = i + 1;
    if (mon < 0)
        return -1;
    while (isalpha((unsigned char) *p))
        p++;
    if (*p == '-')
        p++;
    date_skip(&p);
    const char *ys = p;

    if ((year = date_number(&p, 4)) < 0)
        return -1;
    if (p - ys == 2)                    /* obs-year (RFC 5322 4.3) */
        year += year < 50 ? 2000 : 1900;
    else if (p - ys == 3)
        year += 1900;
    date_skip(&p);
    if ((hour = date_number(&p, 2)) < 0 || hour > 23)
        return -1;
    date_skip(&p);
    if (*p++ != ':')
        return -1;
    date_skip(&p);
    if ((min = date_number(&p, 2)) < 0 || min > 59)
        return -1;
    date_skip(&p);
    if (*p == ':') {
        p++;
        date_skip(&p);
        if ((sec = date_number(&p, 2)) < 0 || sec > 60)
            return -1;
        if (sec == 60)
            sec = 59;                   /* leap second */
    }
    date_skip(&p);
    if (*p == '+' || *p == '-') {
        int     sign = *p++ == '-' ? -1 : 1;
        const char *zs = p;
        long    z = date_number(&p, 4);

        if (z < 0 || p - zs != 4 || z % 100 > 59)
            return -1;
        off = sign * ((z / 100) * 60 + z % 100);
    } else if (isalpha((unsigned char) *p)) {
        const char *zs = p;

        while (isalpha((unsigned char) *p))
            p++;
        off = zone_offset(zs, (size_t) (p - zs));
    }
    if (year < 1900 || year > 9999)
        return -1;
    static const int mdays[] = { 31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };

    if (day > mdays[mon - 1])
        return -1;
    long long t = (long long) days_from_civil(year, mon, day) * 86400 + hour * 3600 + min * 60 + sec
        - off * 60;

    *out = (time_t) t;
    return 0;
}
