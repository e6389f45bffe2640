/*
 * mutf7 - IMAP's modified UTF-7 for mailbox names (RFC 3501 section 5.1.3).
 *
 * Interface (mutf7.h):
 *   mutf7_valid(s)            canonical modified UTF-7, no control characters
 *   mutf7_to_utf8(s, out)     decode; -1 and out untouched when not valid
 *   mutf7_from_utf8(s, out)   encode strict UTF-8; -1 for invalid UTF-8/controls
 *
 * Only the canonical spelling is accepted, because the encoded name is the
 * folder's name on disk: "&AGE-" (a shifted "a"), "&-" spelled any other way,
 * two shifted runs back to back ("&AOQ-&AOQ-" instead of "&AOQA5A-"), non-zero
 * padding bits, a base64 character too many, unpaired surrogates and an empty
 * run are all refused, so one folder has exactly one name.
 *
 * Control characters (C0, DEL, C1) are refused in both directions: they have
 * no business in a folder name and would make log lines and listings lie.
 */
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "mutf7.h"
#include "strbuf.h"
#include "utf8.h"
#include "base64.h"

static const char mb64_alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+,";

/* is_control - C0, DEL or C1 code point */
static bool is_control(uint32_t cp)
{
    return cp < 0x20 || (cp >= 0x7f && cp <= 0x9f);
}

/* decode_run - decode the base64 run at *sp (just after "&") up to its "-";
 * appends UTF-8 to out when out is not NULL; advances *sp past the "-" */
static int decode_run(const char **sp, struct strbuf *out)
{
    const char *s = *sp;
    uint32_t bits = 0;
    unsigned nbits = 0;
    uint32_t high = 0;                  /* pending high surrogate */
    size_t  units = 0;

    for (;; s++) {
        int     v;

        if (*s == '-')
            break;
        if ((v = base64_digit_value((unsigned char) *s, ',')) < 0)
            return -1;                  /* junk, or the run is unterminated */
        bits = (bits << 6) | (uint32_t) v;
        nbits += 6;
        if (nbits < 16)
            continue;
        nbits -= 16;
        uint32_t u = (bits >> nbits) & 0xffff;

        bits &= (1u << nbits) - 1;
        units++;
        if (high) {
            if (u < 0xdc00 || u > 0xdfff)
                return -1;              /* high surrogate not followed by a low one */
            uint32_t cp = 0x10000 + ((high - 0xd800) << 10) + (u - 0xdc00);

            high = 0;
            if (out)
                utf8_put(out, cp);
        } else if (u >= 0xd800 && u <= 0xdbff) {
            high = u;
        } else if (u >= 0xdc00 && u <= 0xdfff) {
            return -1;                  /* lone low surrogate */
        } else if (u >= 0x20 && u <= 0x7e) {
            return -1;                  /* printable ASCII must stand for itself */
        } else if (is_control(u)) {
            return -1;
        } else if (out) {
            utf8_put(out, u);
        }
    }
    /* leftover bits: fewer than 6 and all zero, else a character too many
     * or non-zero padding, both non-canonical */
    if (units == 0 || high || nbits >= 6 || bits != 0)
        return -1;
    s++;                                /* the "-" */
    /* a run right after a run should have been one run */
    if (s[0] == '&' && s[1] != '-')
        return -1;
    *sp = s;
    return 0;
}

/* convert - validate s, appending its UTF-8 to out when out is not NULL */
static int convert(const char *s, struct strbuf *out)
{
    while (*s) {
        unsigned char c = (unsigned char) *s;

        if (c < 0x20 || c > 0x7e)
            return -1;
        if (c != '&') {
            if (out)
                sb_putc(out, c);
            s++;
            continue;
        }
        s++;
        if (*s == '-') {
            if (out)
                sb_putc(out, '&');
            s++;
            continue;
        }
        if (decode_run(&s, out) < 0)
            return -1;
    }
    return 0;
}

/* mutf7_valid - s is canonical modified UTF-7 without control characters */
bool mutf7_valid(const char *s)
{
    return convert(s, NULL) == 0;
}

/* mutf7_to_utf8 - append the UTF-8 of s; -1 (out unchanged) when not valid */
int mutf7_to_utf8(const char *s, struct strbuf *out)
{
    size_t  start = sb_len(out);

    if (convert(s, NULL) < 0)
        return -1;
    if (convert(s, out) < 0) {          /* cannot happen: validated above */
        sb_truncate(out, start);
        return -1;
    }
    return 0;
}

/* flush_run - close a shifted run: the leftover bits, zero-padded, then "-" */
static void flush_run(struct strbuf *out, uint32_t *bits, unsigned *nbits)
{
    if (*nbits > 0)
        sb_putc(out, mb64_alphabet[(*bits << (6 - *nbits)) & 0x3f]);
    sb_putc(out, '-');
    *bits = 0;
    *nbits = 0;
}

/* put_unit - add one UTF-16 unit to the run */
static void put_unit(struct strbuf *out, uint32_t u, uint32_t *bits, unsigned *nbits)
{
    *bits = (*bits << 16) | u;
    *nbits += 16;
    while (*nbits >= 6) {
        *nbits -= 6;
        sb_putc(out, mb64_alphabet[(*bits >> *nbits) & 0x3f]);
    }
    *bits &= (1u << *nbits) - 1;
}

/* mutf7_from_utf8 - append the modified UTF-7 of UTF-8 s; -1 for invalid
 * UTF-8 or control characters (out unchanged then) */
int mutf7_from_utf8(const char *s, struct strbuf *out)
{
    const unsigned char *p = (const unsigned char *) s;
    const unsigned char *end = p + strlen(s);
    size_t  start = sb_len(out);
    bool    shifted = false;
    uint32_t bits = 0;
    unsigned nbits = 0;

    while (*p) {
        uint32_t cp = 0;
        size_t  n = utf8_char_len(p, (size_t) (end - p), &cp);

        if (n == 0 || is_control(cp)) {
            sb_truncate(out, start);
            return -1;
        }
        p += n;
        if (cp >= 0x20 && cp <= 0x7e) {
            if (shifted) {
                flush_run(out, &bits, &nbits);
                shifted = false;
            }
            if (cp == '&')
                sb_puts(out, "&-");
            else
                sb_putc(out, (int) cp);
            continue;
        }
        if (!shifted) {
            sb_putc(out, '&');
            shifted = true;
        }
        if (cp >= 0x10000) {
            cp -= 0x10000;
            put_unit(out, 0xd800 + (cp >> 10), &bits, &nbits);
            put_unit(out, 0xdc00 + (cp & 0x3ff), &bits, &nbits);
        } else {
            put_unit(out, cp, &bits, &nbits);
        }
    }
    if (shifted)
        flush_run(out, &bits, &nbits);
    return 0;
}
