/*
 * fuzz_queue_file - lib/queue_file.c's reader (queue_file_read), which qmgr,
 * virtual, smtp and postctl run on every queue file: a file in incoming/ may
 * have been crafted, torn or truncated, and must come back as "corrupt",
 * never as a crash or a read outside the file.
 *
 * Random bytes seldom get past the CRCs, so the first byte picks the mode:
 * odd: the input is the file, as it is; even: the input is
 *   [1 byte recipient count (mod 8)][2 bytes envelope length][envelope]
 *   [status records, 160 bytes each][message]
 * and this target writes a header whose offsets and CRCs are right (and
 * fixes each status record's CRC), so the envelope and status decoders see
 * hostile content behind valid framing. The file is a memfd.
 */
#include <stdio.h>
#include <sys/mman.h>
#include <unistd.h>

#include "fuzz_util.h"
#include "crc32.h"
#include "queue_file.h"

#define HEADER 64
#define SCHEDULE 32
#define STATUS 160

static void put16(uint8_t *p, uint32_t v) { p[0] = (uint8_t) v; p[1] = (uint8_t) (v >> 8); }
static void put32(uint8_t *p, uint32_t v) { put16(p, v); put16(p + 2, v >> 16); }
static void put64(uint8_t *p, uint64_t v) { put32(p, (uint32_t) v); put32(p + 4, (uint32_t) (v >> 32)); }

/* frame - a file with valid framing around the input's envelope, records and message */
static uint8_t *frame(const uint8_t *data, size_t size, size_t *out_len)
{
    uint32_t nrcpt, env_len;
    size_t  status_len, msg_len, total;
    uint8_t *f;

    if (size < 3)
        return NULL;
    nrcpt = data[0] % 8;
    env_len = (uint32_t) data[1] | ((uint32_t) data[2] << 8);
    data += 3;
    size -= 3;
    if (env_len > size)
        env_len = (uint32_t) size;
    status_len = (size_t) nrcpt * STATUS;
    msg_len = size - env_len > status_len ? size - env_len - status_len : 0;
    total = HEADER + SCHEDULE + env_len + status_len + msg_len;
    f = calloc(1, total);
    if (f == NULL)
        abort();
    memcpy(f + HEADER + SCHEDULE, data, env_len);
    memcpy(f + HEADER + SCHEDULE + env_len, data + env_len,
           size - env_len < status_len ? size - env_len : status_len);
    memcpy(f + HEADER + SCHEDULE + env_len + status_len, data + env_len + status_len, msg_len);
    memcpy(f, "PSTQ", 4);
    put16(f + 4, 1);
    put32(f + 8, HEADER + SCHEDULE);
    put32(f + 12, env_len);
    put32(f + 16, nrcpt);
    put32(f + 20, STATUS);
    put64(f + 24, HEADER + SCHEDULE + env_len);
    put64(f + 32, HEADER + SCHEDULE + env_len + status_len);
    put64(f + 40, msg_len);
    put32(f + 48, crc32_update(0, f + HEADER + SCHEDULE + env_len + status_len, msg_len));
    put32(f + 60, crc32_update(crc32_update(0, f, 60), f + HEADER + SCHEDULE, env_len));
    put32(f + HEADER + 28, crc32_update(0, f + HEADER, 28));
    for (uint32_t i = 0; i < nrcpt; i++) {
        uint8_t *rec = f + HEADER + SCHEDULE + env_len + (size_t) i * STATUS;

        put32(rec + 156, crc32_update(0, rec, 156));
    }
    *out_len = total;
    return f;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint8_t *framed = NULL;
    const uint8_t *file = data + 1;
    size_t  len = size ? size - 1 : 0;
    struct queue_file qf;
    struct strbuf err;
    int     fd;

    if (size == 0)
        return 0;
    if ((data[0] & 1) == 0) {
        if ((framed = frame(data + 1, size - 1, &len)) == NULL)
            return 0;
        file = framed;
    }
    if ((fd = memfd_create("queue", 0)) < 0)
        abort();
    if (len > 0 && write(fd, file, len) != (ssize_t) len)
        abort();
    sb_init(&err);
    memset(&qf, 0, sizeof(qf));
    if (queue_file_read(fd, &qf, &err) == 0) {
        /* what a reader then trusts: the recipients and the message's place */
        if (qf.message_offset + qf.message_length != len || qf.env.nrcpt > 100000)
            abort();
        if (qf.env.nrcpt > 0)
            (void) queue_file_update_rcpt(fd, &qf, 0, QUEUE_RCPT_DEFERRED, "4.0.0 fuzz", &err);
        queue_file_free(&qf);
        memset(&qf, 0, sizeof(qf));
        if (queue_file_read(fd, &qf, &err) != 0)
            abort();                    /* our own update must leave a valid file */
    }
    queue_file_free(&qf);
    sb_free(&err);
    close(fd);
    free(framed);
    return 0;
}
