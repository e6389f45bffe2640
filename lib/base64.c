/*
 * base64 - strict RFC 4648 encoding and decoding. See base64.h.
 */
#include <stdint.h>

#include "base64.h"

static const char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

int base64_digit_value(unsigned char c, unsigned char digit63)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '+')
        return 62;
    if (c == digit63)
        return 63;
    return -1;
}

void base64_encode(struct strbuf *out, const void *data, size_t len)
{
    const unsigned char *p = data;

    sb_append(out, "", 0);
    for (size_t i = 0; i < len; i += 3) {
        uint32_t chunk = (uint32_t) p[i] << 16;
        size_t  left = len - i;

        if (left > 1)
            chunk |= (uint32_t) p[i + 1] << 8;
        if (left > 2)
            chunk |= p[i + 2];
        sb_putc(out, alphabet[chunk >> 18 & 63]);
        sb_putc(out, alphabet[chunk >> 12 & 63]);
        sb_putc(out, left > 1 ? alphabet[chunk >> 6 & 63] : '=');
        sb_putc(out, left > 2 ? alphabet[chunk & 63] : '=');
    }
}

int base64_decode(const char *in, size_t len, unsigned flags, struct strbuf *out)
{
    size_t  start = sb_len(out);
    size_t  data_len = len;
    uint32_t acc = 0;
    int     bits = 0;

    while (data_len > 0 && len - data_len < 2 && in[data_len - 1] == '=')
        data_len--;
    if (data_len % 4 == 1)
        return -1;                      /* 6 bits cannot end a byte */
    if (data_len == len ? (len % 4 != 0 && !(flags & BASE64_PADDING_OPTIONAL)) : len % 4 != 0)
        return -1;                      /* missing padding, or padding where none belongs */
    sb_append(out, "", 0);
    for (size_t i = 0; i < data_len; i++) {
        int     v = base64_digit_value((unsigned char) in[i], '/');

        if (v < 0) {
            sb_truncate(out, start);
            return -1;
        }
        acc = (acc << 6 | (uint32_t) v) & 0xffffff;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            sb_putc(out, (int) (acc >> bits) & 0xff);
        }
    }
    if ((acc & ((1u << bits) - 1)) != 0) {
        sb_truncate(out, start);        /* bits a canonical encoder leaves zero */
        return -1;
    }
    return 0;
}
