/*
 * crc32 - table-driven CRC-32. See crc32.h.
 *
 * Slicing-by-8: eight 256-entry tables let the loop consume eight bytes per
 * step, several times faster than the byte-wise table on long messages, and
 * the queue file checks the CRC of every message on every read. The tables are
 * computed once, before main() runs, so no caller has to initialize anything
 * and no lazy initialization races between threads.
 */
#include <stdint.h>
#include <string.h>

#include "crc32.h"

#define CRC32_POLY 0xEDB88320u          /* 0x04C11DB7 bit-reversed */

static uint32_t crc_table[8][256];

/* crc32_init_tables - the byte table and the seven slicing tables derived from it */
__attribute__((constructor))
static void crc32_init_tables(void)
{
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;

        for (int k = 0; k < 8; k++)
            c = (c & 1) ? (c >> 1) ^ CRC32_POLY : c >> 1;
        crc_table[0][i] = c;
    }
    for (uint32_t i = 0; i < 256; i++)
        for (int t = 1; t < 8; t++)
            crc_table[t][i] = (crc_table[t - 1][i] >> 8) ^ crc_table[0][crc_table[t - 1][i] & 0xff];
}

uint32_t crc32_update(uint32_t crc, const void *data, size_t len)
{
    const unsigned char *p = data;
    uint32_t c = ~crc;

    while (len >= 8) {
        uint32_t lo;
        uint32_t hi;

        /* Assemble little-endian words by hand: no alignment or byte-order assumptions. */
        lo = (uint32_t) p[0] | (uint32_t) p[1] << 8 | (uint32_t) p[2] << 16 | (uint32_t) p[3] << 24;
        hi = (uint32_t) p[4] | (uint32_t) p[5] << 8 | (uint32_t) p[6] << 16 | (uint32_t) p[7] << 24;
        lo ^= c;
        c = crc_table[7][lo & 0xff] ^ crc_table[6][(lo >> 8) & 0xff]
            ^ crc_table[5][(lo >> 16) & 0xff] ^ crc_table[4][lo >> 24]
            ^ crc_table[3][hi & 0xff] ^ crc_table[2][(hi >> 8) & 0xff]
            ^ crc_table[1][(hi >> 16) & 0xff] ^ crc_table[0][hi >> 24];
        p += 8;
        len -= 8;
    }
    while (len-- > 0)
        c = (c >> 8) ^ crc_table[0][(c ^ *p++) & 0xff];
    return ~c;
}
