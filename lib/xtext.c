/*
 * xtext - RFC 3461 xtext encoding and decoding. See xtext.h.
 */
#include <stdbool.h>
#include <stddef.h>

#include "strbuf.h"
#include "xtext.h"

/* hexval - value of an upper-case hex digit, -1 otherwise */
static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* xtext_decode - text[0..len) into out (appended); false on bad syntax or bytes */
bool xtext_decode(const char *text, size_t len, struct strbuf *out)
{
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char) text[i];

        if (c == '+') {
            int     hi, lo, v;

            if (len - i < 3)
                return false;
            hi = hexval(text[i + 1]);
            lo = hexval(text[i + 2]);
            if (hi < 0 || lo < 0)
                return false;
            v = hi * 16 + lo;
            if (v < 0x20 || v > 0x7e)
                return false;
            sb_putc(out, v);
            i += 2;
        } else if (c >= 33 && c <= 126 && c != '=') {
            sb_putc(out, c);
        } else {
            return false;
        }
    }
    return true;
}

/* xtext_encode - bytes into xtext, appended to out */
void xtext_encode(const char *text, size_t len, struct strbuf *out)
{
    static const char hex[] = "0123456789ABCDEF";

    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char) text[i];

        if (c >= 33 && c <= 126 && c != '+' && c != '=') {
            sb_putc(out, c);
        } else {
            sb_putc(out, '+');
            sb_putc(out, hex[c >> 4]);
            sb_putc(out, hex[c & 15]);
        }
    }
}
