/*
 * json - JSON string escaping. See json.h.
 */
#include <stdio.h>
#include <string.h>

#include "json.h"

/* utf8_sequence_length - bytes in the valid UTF-8 sequence at s, 0 if invalid */
static size_t utf8_sequence_length(const unsigned char *s)
{
    size_t  len;
    unsigned min;
    unsigned cp;

    if (s[0] < 0x80)
        return 1;
    if ((s[0] & 0xe0) == 0xc0)
        len = 2, min = 0x80, cp = s[0] & 0x1f;
    else if ((s[0] & 0xf0) == 0xe0)
        len = 3, min = 0x800, cp = s[0] & 0x0f;
    else if ((s[0] & 0xf8) == 0xf0)
        len = 4, min = 0x10000, cp = s[0] & 0x07;
    else
        return 0;
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xc0) != 0x80)
            return 0;
        cp = (cp << 6) | (s[i] & 0x3f);
    }
    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
        return 0;
    return len;
}

void json_string(struct strbuf *out, const char *text)
{
    const unsigned char *s = (const unsigned char *) text;

    sb_putc(out, '"');
    while (*s) {
        size_t  len = utf8_sequence_length(s);

        if (len == 0) {
            sb_puts(out, "\\ufffd");
            s++;
        } else if (*s == '"' || *s == '\\') {
            sb_putc(out, '\\');
            sb_putc(out, *s++);
        } else if (*s < 0x20 || *s == 0x7f) {
            sb_printf(out, "\\u%04x", *s++);
        } else {
            sb_append(out, s, len);
            s += len;
        }
    }
    sb_putc(out, '"');
}
