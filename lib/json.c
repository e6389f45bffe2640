/*
 * json - JSON string escaping. See json.h.
 */
#include <stdio.h>
#include <string.h>

#include "json.h"
#include "utf8.h"

void json_string(struct strbuf *out, const char *text)
{
    const unsigned char *s = (const unsigned char *) text;
    const unsigned char *end = s + strlen(text);

    sb_putc(out, '"');
    while (*s) {
        size_t  len = utf8_char_len(s, (size_t) (end - s), NULL);

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
