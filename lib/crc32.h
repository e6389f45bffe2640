/*
 * crc32 - CRC-32 (the IEEE 802.3 / zlib / PNG polynomial, reflected, initial
 * and final value 0xFFFFFFFF), for checksums in the queue file.
 *
 * Incremental: crc = crc32_update(0, a, alen); crc = crc32_update(crc, b, blen)
 * gives the same value as one call over a followed by b, and crc32_update(0,
 * "123456789", 9) == 0xCBF43926 (the standard check value). Named
 * crc32_update rather than crc32 so it never clashes with zlib's symbol.
 */
#ifndef POSTERN_CRC32_H
#define POSTERN_CRC32_H

#include <stddef.h>
#include <stdint.h>

/* crc32_update - extend crc (0 to start) over len bytes of data */
uint32_t crc32_update(uint32_t crc, const void *data, size_t len);

#endif
