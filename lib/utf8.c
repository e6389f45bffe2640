/*
 * utf8 - strict UTF-8 decoding and encoding. See utf8.h.
 */
#include "utf8.h"

size_t utf8_char_len(const unsigned char *s, size_t avail, uint32_t *cp)
{
    uint32_t c, min;
    size_t  n;

    if (avail == 0)
        return 0;
    c = s[0];
    if (c < 0x80)
        n = 1, min = 0;
    else if ((c & 0xe0) == 0xc0)
        n = 2, c &= 0x1f, min = 0x80;
    else if ((c & 0xf0) == 0xe0)
        n = 3, c &= 0x0f, min = 0x800;
    else if ((c & 0xf8) == 0xf0)
        n = 4, c &= 0x07, min = 0x10000;
    else
        return 0;
    if (n > avail)
        return 0;
    for (size_t i = 1; i < n; i++) {
        if ((s[i] & 0xc0) != 0x80)
            return 0;
        c = (c << 6) | (s[i] & 0x3f);
    }
    if (c < min || c > 0x10ffff || (c >= 0xd800 && c <= 0xdfff))
        return 0;
    if (cp != NULL)
        *cp = c;
    return n;
}

bool utf8_valid(const char *s, size_t len)
{
    const unsigned char *p = (const unsigned char *) s;

    while (len > 0) {
        size_t  n = utf8_char_len(p, len, NULL);

        if (n == 0)
            return false;
        p += n;
        len -= n;
    }
    return true;
}

void utf8_put(struct strbuf *out, uint32_t cp)
{
    char    b[4];
    size_t  n;

    if (cp < 0x80) {
        b[0] = (char) cp;
        n = 1;
    } else if (cp < 0x800) {
        b[0] = (char) (0xc0 | (cp >> 6));
        b[1] = (char) (0x80 | (cp & 0x3f));
        n = 2;
    } else if (cp < 0x10000) {
        b[0] = (char) (0xe0 | (cp >> 12));
        b[1] = (char) (0x80 | ((cp >> 6) & 0x3f));
        b[2] = (char) (0x80 | (cp & 0x3f));
        n = 3;
    } else {
        b[0] = (char) (0xf0 | (cp >> 18));
        b[1] = (char) (0x80 | ((cp >> 12) & 0x3f));
        b[2] = (char) (0x80 | ((cp >> 6) & 0x3f));
        b[3] = (char) (0x80 | (cp & 0x3f));
        n = 4;
    }
    sb_append(out, b, n);
}
