/*
 * queue_file - write, read, validate and update queue files. See queue_file.h.
 *
 * Exact byte layout, format version 1. Integers are little-endian; "crc" is
 * CRC-32 (crc32.h). Offsets are from the start of the file.
 *
 *   0   header, 64 bytes
 *        0  4  magic "PSTQ"
 *        4  2  version (1)
 *        6  2  flags (0; a reader of version 1 rejects anything else)
 *        8  4  envelope offset (always 96)
 *       12  4  envelope length L (at most QUEUE_ENVELOPE_MAX)
 *       16  4  recipient count N (at most QUEUE_RCPT_MAX)
 *       20  4  status record size (always 160)
 *       24  8  status offset (always 96 + L)
 *       32  8  message offset (always 96 + L + 160 * N)
 *       40  8  message length M (message offset + M == file size)
 *       48  4  crc of the message
 *       52  8  reserved, zero
 *       60  4  crc of header bytes 0..59 followed by the L envelope bytes
 *  64   schedule, 32 bytes, rewritten in place
 *        0  4  attempts
 *        4  4  flags (QUEUE_FLAG_*; was reserved zero, so old files have none)
 *        8  8  next attempt (seconds since the epoch, signed)
 *       16 12  reserved, zero
 *       28  4  crc of bytes 0..27
 *  96   envelope, L bytes of "name=value\n" lines, in this order when written:
 *       queue_id, sender, arrival, then client_addr, client_name, helo,
 *       protocol, body_type, envid, ret, smtputf8 (each only when set; smtputf8
 *       is "1", added in place without a version change: older readers skip
 *       names they do not know), size (20 digits,
 *       equal to M), then per recipient "rcpt=" optionally followed by
 *       "orcpt=" and "notify=" lines that belong to it. Names are [a-z0-9_]+;
 *       values are at most QUEUE_VALUE_MAX bytes without NUL, CR or LF. A
 *       reader ignores names it does not know (forward compatibility) but
 *       rejects a malformed line, a duplicate, an orcpt/notify without a rcpt.
 *  96+L status, N records of 160 bytes, record i for recipient i
 *        0  1  state (enum queue_rcpt_state)
 *        1  1  reason length R (at most QUEUE_REASON_MAX)
 *        2  1  flags (QUEUE_RCPT_F_*; was reserved zero)
 *        3  1  reserved, zero
 *        4  4  attempts
 *        8  8  last change (seconds since the epoch, signed)
 *       16 128 reason text (R bytes, no control characters), zero padded
 *      144  4  recipient index i (a record in the wrong slot is detected)
 *      148  8  reserved, zero
 *      156  4  crc of bytes 0..155
 *  96+L+160N  message, M bytes
 *
 * Everything before the message is assembled in memory when the writer is
 * created (its size is known then) and written once at commit, when the size
 * and the message CRC are known; the message is streamed to its final offset
 * through a 64 KiB buffer and its CRC computed on the way, so there is no
 * second pass. The reader checks every offset and length against the file size
 * before it reads, then every CRC, the message one included (pread in 64 KiB
 * chunks). A torn in-place update of a fixed record shows as a bad record CRC:
 * the file is then corrupt, as the header says.
 *
 * Errors: every function that fails returns -1 with a message in err. For
 * queue_file_read() errno tells the two failures apart: EBADMSG means the file
 * is corrupt (move it to corrupt/), anything else is an I/O error (retry later).
 *
 * All file access is relative to the queue directory fd ("incoming/ID.tmp"),
 * because smtpd and qmgr run chrooted there.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "crc32.h"
#include "mem.h"
#include "queue_file.h"

#define QF_MAGIC            "PSTQ"
#define QF_VERSION          1
#define QF_HEADER_SIZE      64
#define QF_SCHEDULE_SIZE    32
#define QF_ENVELOPE_OFFSET  (QF_HEADER_SIZE + QF_SCHEDULE_SIZE)
#define QF_STATUS_SIZE      160
#define QF_REASON_FIELD     128
#define QF_SIZE_DIGITS      20

#define QUEUE_RCPT_MAX      100000      /* recipients per file */
#define QUEUE_VALUE_MAX     1000        /* bytes per envelope value (addresses included) */
#define QUEUE_NAME_MAX      32          /* bytes per envelope name */
#define QF_IO_CHUNK         65536

#if QF_REASON_FIELD < QUEUE_REASON_MAX
#error "status record reason field is smaller than QUEUE_REASON_MAX"
#endif

struct queue_writer {
    int     dirfd;
    int     fd;
    char    id[QUEUE_ID_LEN + 1];
    struct strbuf image;                /* header, schedule, envelope, status: written at commit */
    size_t  size_pos;                   /* where the size digits are in image */
    uint32_t env_len;
    uint32_t nrcpt;
    uint64_t msg_offset;
    uint64_t msg_len;
    uint32_t msg_crc;
    unsigned char *buf;                 /* message bytes not yet written */
    size_t  buf_len;
    int     failed;                     /* errno of an earlier failed write (0: none): commit must fail too */
};

/* Little-endian integer coding. */

/* put16 - store v little-endian */
static void put16(unsigned char *p, uint16_t v)
{
    p[0] = (unsigned char) v;
    p[1] = (unsigned char) (v >> 8);
}

/* put32 - store v little-endian */
static void put32(unsigned char *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (unsigned char) (v >> (8 * i));
}

/* put64 - store v little-endian */
static void put64(unsigned char *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (unsigned char) (v >> (8 * i));
}

/* get16 - load little-endian */
static uint16_t get16(const unsigned char *p)
{
    return (uint16_t) (p[0] | p[1] << 8);
}

/* get32 - load little-endian */
static uint32_t get32(const unsigned char *p)
{
    uint32_t v = 0;

    for (int i = 3; i >= 0; i--)
        v = v << 8 | p[i];
    return v;
}

/* get64 - load little-endian */
static uint64_t get64(const unsigned char *p)
{
    uint64_t v = 0;

    for (int i = 7; i >= 0; i--)
        v = v << 8 | p[i];
    return v;
}

/* Queue IDs. */

void queue_id_new(char id[QUEUE_ID_LEN + 1])
{
    static _Atomic uint64_t last_us;
    struct timespec ts;
    uint64_t now;
    uint64_t prev;
    uint64_t use;
    unsigned char rnd[3];
    unsigned r;

    clock_gettime(CLOCK_REALTIME, &ts);
    now = (uint64_t) ts.tv_sec * 1000000u + (uint64_t) ts.tv_nsec / 1000u;

    /*
     * Never hand out the same microsecond twice in one process: IDs stay
     * unique here however fast they are made, and still sort by arrival. The
     * random part separates processes.
     */
    prev = atomic_load(&last_us);
    do {
        use = now > prev ? now : prev + 1;
    } while (!atomic_compare_exchange_weak(&last_us, &prev, use));
    use &= (UINT64_C(1) << 52) - 1;     /* 13 hex digits: good until the year 2112 */

    if (getrandom(rnd, sizeof(rnd), GRND_NONBLOCK) == (ssize_t) sizeof(rnd))
        r = (unsigned) rnd[0] << 16 | (unsigned) rnd[1] << 8 | rnd[2];
    else
        r = (unsigned) getpid() * 2654435761u ^ (unsigned) ts.tv_nsec;
    snprintf(id, QUEUE_ID_LEN + 1, "%013" PRIX64 "%05X", use, r & 0xfffffu);
}

bool queue_id_valid(const char *name)
{
    size_t  i;

    if (name == NULL)
        return false;
    for (i = 0; i < QUEUE_ID_LEN; i++)
        if (!((name[i] >= '0' && name[i] <= '9') || (name[i] >= 'A' && name[i] <= 'F')))
            return false;
    return name[i] == '\0';
}

const char *queue_rcpt_state_name(enum queue_rcpt_state state)
{
    switch (state) {
    case QUEUE_RCPT_PENDING:
        return "pending";
    case QUEUE_RCPT_DELIVERED:
        return "delivered";
    case QUEUE_RCPT_BOUNCED:
        return "bounced";
    case QUEUE_RCPT_DEFERRED:
        return "deferred";
    }
    return "unknown";
}

/* File I/O helpers. */

/* pwrite_full - write all of len at off, retrying short writes and EINTR */
static int pwrite_full(int fd, const void *data, size_t len, uint64_t off)
{
    const unsigned char *p = data;

    while (len > 0) {
        ssize_t n = pwrite(fd, p, len, (off_t) off);

        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -1;
        if (n == 0) {
            errno = EIO;
            return -1;
        }
        p += n;
        len -= (size_t) n;
        off += (uint64_t) n;
    }
    return 0;
}

/* pread_full - read exactly len at off; a short read (file shrank) is EBADMSG */
static int pread_full(int fd, void *data, size_t len, uint64_t off)
{
    unsigned char *p = data;

    while (len > 0) {
        ssize_t n = pread(fd, p, len, (off_t) off);

        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -1;
        if (n == 0) {
            errno = EBADMSG;
            return -1;
        }
        p += n;
        len -= (size_t) n;
        off += (uint64_t) n;
    }
    return 0;
}

/* Fixed records. */

/* schedule_encode - the 32-byte schedule record with its CRC */
static void schedule_encode(unsigned char rec[QF_SCHEDULE_SIZE], uint32_t attempts, uint32_t flags,
                            int64_t next)
{
    memset(rec, 0, QF_SCHEDULE_SIZE);
    put32(rec, attempts);
    put32(rec + 4, flags);
    put64(rec + 8, (uint64_t) next);
    put32(rec + 28, crc32_update(0, rec, 28));
}

/*
 * reason_clean - the reason text as stored: control characters become spaces
 * (the text often comes from a remote server), cut at QUEUE_REASON_MAX bytes
 * without splitting a UTF-8 sequence.
 */
static size_t reason_clean(const char *reason, char out[QF_REASON_FIELD])
{
    size_t  len = reason ? strlen(reason) : 0;

    if (len > QUEUE_REASON_MAX) {
        len = QUEUE_REASON_MAX;
        while (len > 0 && ((unsigned char) reason[len] & 0xc0) == 0x80)
            len--;
    }
    memset(out, 0, QF_REASON_FIELD);
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char) reason[i];

        out[i] = (char) ((c < 0x20 || c == 0x7f) ? ' ' : c);
    }
    return len;
}

/* status_encode - the 160-byte status record of recipient index with its CRC */
static void status_encode(unsigned char rec[QF_STATUS_SIZE], uint32_t index,
                          enum queue_rcpt_state state, unsigned flags, uint32_t attempts,
                          int64_t updated, const char *reason)
{
    char    text[QF_REASON_FIELD];
    size_t  len = reason_clean(reason, text);

    memset(rec, 0, QF_STATUS_SIZE);
    rec[0] = (unsigned char) state;
    rec[1] = (unsigned char) len;
    rec[2] = (unsigned char) flags;
    put32(rec + 4, attempts);
    put64(rec + 8, (uint64_t) updated);
    memcpy(rec + 16, text, QF_REASON_FIELD);
    put32(rec + 144, index);
    put32(rec + 156, crc32_update(0, rec, 156));
}

/* status_decode - validate record index into rcpt; -1 with err */
static int status_decode(const unsigned char *rec, uint32_t index, struct queue_rcpt *rcpt,
                         struct strbuf *err)
{
    unsigned len = rec[1];

    if (get32(rec + 156) != crc32_update(0, rec, 156)) {
        sb_printf(err, "status record %" PRIu32 ": CRC mismatch", index);
        return -1;
    }
    if (get32(rec + 144) != index) {
        sb_printf(err, "status record %" PRIu32 ": holds index %" PRIu32, index, get32(rec + 144));
        return -1;
    }
    if (rec[0] > QUEUE_RCPT_DEFERRED) {
        sb_printf(err, "status record %" PRIu32 ": unknown state %u", index, rec[0]);
        return -1;
    }
    if (len > QUEUE_REASON_MAX) {
        sb_printf(err, "status record %" PRIu32 ": reason length %u exceeds %d", index, len,
                  QUEUE_REASON_MAX);
        return -1;
    }
    for (unsigned i = 0; i < len; i++) {
        if (rec[16 + i] < 0x20 || rec[16 + i] == 0x7f) {
            sb_printf(err, "status record %" PRIu32 ": control character in reason", index);
            return -1;
        }
    }
    rcpt->state = (enum queue_rcpt_state) rec[0];
    rcpt->flags = rec[2];
    rcpt->attempts = get32(rec + 4);
    rcpt->updated = (int64_t) get64(rec + 8);
    memcpy(rcpt->reason, rec + 16, len);
    rcpt->reason[len] = '\0';
    return 0;
}

/* Envelope. */

/* value_ok - an envelope value: bounded, no NUL/CR/LF; err names the field */
static bool value_ok(const char *name, const char *value, size_t len, struct strbuf *err)
{
    if (len > QUEUE_VALUE_MAX) {
        sb_printf(err, "envelope %s: %zu bytes exceeds the limit of %d", name, len, QUEUE_VALUE_MAX);
        return false;
    }
    for (size_t i = 0; i < len; i++) {
        if (value[i] == '\0' || value[i] == '\r' || value[i] == '\n') {
            sb_printf(err, "envelope %s: contains a NUL, CR or LF character", name);
            return false;
        }
    }
    return true;
}

/* env_put - append "name=value\n" after checking the value; false with err */
static bool env_put(struct strbuf *out, const char *name, const char *value, struct strbuf *err)
{
    size_t  len = strlen(value);

    if (!value_ok(name, value, len, err))
        return false;
    sb_puts(out, name);
    sb_putc(out, '=');
    sb_append(out, value, len);
    sb_putc(out, '\n');
    return true;
}

/* env_put_opt - env_put when value is set */
static bool env_put_opt(struct strbuf *out, const char *name, const char *value, struct strbuf *err)
{
    return value == NULL || env_put(out, name, value, err);
}

/* envelope_encode - env as envelope lines; *size_pos gets where the size digits are */
static int envelope_encode(const struct queue_envelope *env, struct strbuf *out, size_t *size_pos,
                           struct strbuf *err)
{
    char    num[32];

    if (env->sender == NULL) {
        sb_puts(err, "envelope sender: missing (use \"\" for the null sender)");
        return -1;
    }
    if (env->nrcpt > QUEUE_RCPT_MAX) {
        sb_printf(err, "envelope: %zu recipients exceeds the limit of %d", env->nrcpt, QUEUE_RCPT_MAX);
        return -1;
    }
    if (env->nrcpt > 0 && env->rcpts == NULL) {
        sb_puts(err, "envelope: recipient array missing");
        return -1;
    }
    if (!env_put(out, "queue_id", env->queue_id, err) || !env_put(out, "sender", env->sender, err))
        return -1;
    snprintf(num, sizeof(num), "%" PRId64, env->arrival);
    if (!env_put(out, "arrival", num, err)
        || !env_put_opt(out, "client_addr", env->client_addr, err)
        || !env_put_opt(out, "client_name", env->client_name, err)
        || !env_put_opt(out, "helo", env->helo, err)
        || !env_put_opt(out, "protocol", env->protocol, err)
        || !env_put_opt(out, "body_type", env->body_type, err)
        || !env_put_opt(out, "envid", env->envid, err)
        || !env_put_opt(out, "ret", env->ret, err)
        || !env_put_opt(out, "smtputf8", env->smtputf8 ? "1" : NULL, err))
        return -1;
    sb_puts(out, "size=");
    *size_pos = sb_len(out);
    sb_puts(out, "00000000000000000000\n");
    for (size_t i = 0; i < env->nrcpt; i++) {
        const struct queue_rcpt *rc = &env->rcpts[i];

        if (rc->address == NULL || *rc->address == '\0') {
            sb_printf(err, "envelope rcpt %zu: empty address", i);
            return -1;
        }
        if (!env_put(out, "rcpt", rc->address, err)
            || !env_put_opt(out, "orcpt", rc->orcpt, err)
            || !env_put_opt(out, "notify", rc->notify, err))
            return -1;
    }
    if (sb_len(out) > QUEUE_ENVELOPE_MAX) {
        sb_printf(err, "envelope: %zu bytes exceeds the limit of %d", sb_len(out), QUEUE_ENVELOPE_MAX);
        return -1;
    }
    return 0;
}

/* parse_u64 - all-digit decimal text, no overflow; false if not */
static bool parse_u64(const char *s, uint64_t max, uint64_t *out)
{
    uint64_t v = 0;

    if (*s == '\0')
        return false;
    for (; *s; s++) {
        if (*s < '0' || *s > '9')
            return false;
        if (v > (max - (uint64_t) (*s - '0')) / 10)
            return false;
        v = v * 10 + (uint64_t) (*s - '0');
    }
    *out = v;
    return true;
}

/* set_once - store a copy of value into *field; false (duplicate) if already set */
static bool set_once(char **field, const char *value)
{
    if (*field != NULL)
        return false;
    *field = xstrdup(value);
    return true;
}

/* envelope_decode - parse and validate the envelope bytes into qf; -1 with err */
static int envelope_decode(const char *data, size_t len, uint32_t nrcpt, uint64_t msg_len,
                           struct queue_file *qf, struct strbuf *err)
{
    struct queue_envelope *env = &qf->env;
    struct strbuf value = STRBUF_INIT;
    bool    have_id = false, have_arrival = false, have_size = false;
    bool    rcpt_orcpt = false, rcpt_notify = false;
    size_t  lineno = 0;
    size_t  pos = 0;
    int     rc = -1;

    env->rcpts = xcalloc(nrcpt ? nrcpt : 1, sizeof(*env->rcpts));
    while (pos < len) {
        const char *line = data + pos;
        const char *nl = memchr(line, '\n', len - pos);
        const char *eq;
        size_t  name_len;
        char    name[QUEUE_NAME_MAX + 1];

        lineno++;
        if (nl == NULL) {
            sb_printf(err, "envelope line %zu: no newline at the end", lineno);
            goto out;
        }
        pos = (size_t) (nl - data) + 1;
        eq = memchr(line, '=', (size_t) (nl - line));
        if (eq == NULL) {
            sb_printf(err, "envelope line %zu: no '=' in the line", lineno);
            goto out;
        }
        name_len = (size_t) (eq - line);
        if (name_len == 0 || name_len > QUEUE_NAME_MAX) {
            sb_printf(err, "envelope line %zu: bad name length %zu", lineno, name_len);
            goto out;
        }
        for (size_t i = 0; i < name_len; i++) {
            char    c = line[i];

            if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_')) {
                sb_printf(err, "envelope line %zu: bad character in name", lineno);
                goto out;
            }
        }
        memcpy(name, line, name_len);
        name[name_len] = '\0';
        sb_reset(&value);
        if (!value_ok(name, eq + 1, (size_t) (nl - eq - 1), err))
            goto out;
        sb_append(&value, eq + 1, (size_t) (nl - eq - 1));

        const char *v = sb_str(&value);
        bool    ok = true;

        if (strcmp(name, "queue_id") == 0) {
            ok = !have_id && queue_id_valid(v);
            if (ok)
                memcpy(env->queue_id, v, QUEUE_ID_LEN + 1);
            have_id = true;
        } else if (strcmp(name, "sender") == 0) {
            ok = set_once(&env->sender, v);
        } else if (strcmp(name, "arrival") == 0) {
            uint64_t a = 0;

            ok = !have_arrival && parse_u64(v, INT64_MAX, &a);
            env->arrival = (int64_t) a;
            have_arrival = true;
        } else if (strcmp(name, "size") == 0) {
            uint64_t s;

            ok = !have_size && parse_u64(v, UINT64_MAX, &s);
            if (ok && s != msg_len) {
                sb_printf(err, "envelope line %zu: size %" PRIu64 " but the message has %" PRIu64
                          " bytes", lineno, s, msg_len);
                goto out;
            }
            have_size = true;
        } else if (strcmp(name, "client_addr") == 0) {
            ok = set_once(&env->client_addr, v);
        } else if (strcmp(name, "client_name") == 0) {
            ok = set_once(&env->client_name, v);
        } else if (strcmp(name, "helo") == 0) {
            ok = set_once(&env->helo, v);
        } else if (strcmp(name, "protocol") == 0) {
            ok = set_once(&env->protocol, v);
        } else if (strcmp(name, "body_type") == 0) {
            ok = set_once(&env->body_type, v);
        } else if (strcmp(name, "envid") == 0) {
            ok = set_once(&env->envid, v);
        } else if (strcmp(name, "ret") == 0) {
            ok = set_once(&env->ret, v);
        } else if (strcmp(name, "smtputf8") == 0) {
            ok = !env->smtputf8 && strcmp(v, "1") == 0;
            env->smtputf8 = true;
        } else if (strcmp(name, "rcpt") == 0) {
            if (env->nrcpt >= nrcpt) {
                sb_printf(err, "envelope line %zu: more recipients than the %" PRIu32
                          " in the header", lineno, nrcpt);
                goto out;
            }
            ok = *v != '\0';
            env->rcpts[env->nrcpt++].address = xstrdup(v);
            rcpt_orcpt = rcpt_notify = false;
        } else if (strcmp(name, "orcpt") == 0 || strcmp(name, "notify") == 0) {
            bool    is_orcpt = name[0] == 'o';
            bool   *seen = is_orcpt ? &rcpt_orcpt : &rcpt_notify;

            if (env->nrcpt == 0 || *seen) {
                sb_printf(err, "envelope line %zu: %s without a recipient before it", lineno, name);
                goto out;
            }
            *seen = true;
            if (is_orcpt)
                env->rcpts[env->nrcpt - 1].orcpt = xstrdup(v);
            else
                env->rcpts[env->nrcpt - 1].notify = xstrdup(v);
        }
        /* Other names come from a newer writer: ignored, the line was well-formed. */
        if (!ok) {
            sb_printf(err, "envelope line %zu: bad or duplicate %s", lineno, name);
            goto out;
        }
    }
    if (!have_id || env->sender == NULL || !have_arrival || !have_size) {
        sb_printf(err, "envelope: missing %s", !have_id ? "queue_id" : env->sender == NULL ? "sender"
                  : !have_arrival ? "arrival" : "size");
        goto out;
    }
    if (env->nrcpt != nrcpt) {
        sb_printf(err, "envelope: %zu recipients but the header says %" PRIu32, env->nrcpt, nrcpt);
        goto out;
    }
    rc = 0;
out:
    sb_free(&value);
    return rc;
}

/* Writing. */

struct queue_writer *queue_writer_create(int queue_dirfd, struct queue_envelope *env, struct strbuf *err)
{
    struct queue_writer *w;
    struct strbuf envelope = STRBUF_INIT;
    struct strbuf path = STRBUF_INIT;
    unsigned char *p;
    size_t  size_pos;
    int     tries;
    int     saved;

    if (env->arrival <= 0)
        env->arrival = (int64_t) time(NULL);
    w = xcalloc(1, sizeof(*w));
    w->dirfd = queue_dirfd;
    w->fd = -1;
    for (tries = 0; tries < 10; tries++) {
        queue_id_new(w->id);
        sb_reset(&path);
        sb_printf(&path, "incoming/%s.tmp", w->id);
        w->fd = openat(queue_dirfd, sb_str(&path), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
        if (w->fd >= 0 || errno != EEXIST)
            break;
    }
    if (w->fd < 0) {
        saved = errno;
        sb_printf(err, "create %s: %s", sb_str(&path), strerror(saved));
        goto fail;
    }
    memcpy(env->queue_id, w->id, sizeof(w->id));
    if (envelope_encode(env, &envelope, &size_pos, err) < 0)
        goto fail_unlink;

    /* The image of everything before the message; header and CRCs are filled in at commit. */
    w->env_len = (uint32_t) sb_len(&envelope);
    w->nrcpt = (uint32_t) env->nrcpt;
    w->msg_offset = QF_ENVELOPE_OFFSET + (uint64_t) w->env_len + (uint64_t) w->nrcpt * QF_STATUS_SIZE;
    w->size_pos = QF_ENVELOPE_OFFSET + size_pos;
    sb_init(&w->image);
    {
        unsigned char zero[QF_ENVELOPE_OFFSET] = {0};

        sb_append(&w->image, zero, sizeof(zero));
    }
    sb_append(&w->image, envelope.data, sb_len(&envelope));
    for (uint32_t i = 0; i < w->nrcpt; i++) {
        unsigned char rec[QF_STATUS_SIZE];

        status_encode(rec, i, QUEUE_RCPT_PENDING, 0, 0, env->arrival, "");
        sb_append(&w->image, rec, sizeof(rec));
    }
    p = (unsigned char *) w->image.data;
    schedule_encode(p + QF_HEADER_SIZE, 0, 0, 0);
    w->buf = xmalloc(QF_IO_CHUNK);
    w->msg_crc = 0;
    sb_free(&envelope);
    sb_free(&path);
    return w;

fail_unlink:
    saved = EINVAL;                     /* the envelope, not the file system */
    unlinkat(queue_dirfd, sb_str(&path), 0);
    close(w->fd);
fail:
    sb_free(&envelope);
    sb_free(&path);
    free(w);
    errno = saved;
    return NULL;
}

/* writer_failed - a write failed: remember it (errno), say so in err; -1 with errno kept */
static int writer_failed(struct queue_writer *w, struct strbuf *err)
{
    int     saved = errno;

    sb_printf(err, "write incoming/%s.tmp: %s", w->id, strerror(saved));
    w->failed = saved ? saved : EIO;
    errno = w->failed;
    return -1;
}

/* writer_flush - write the buffered message bytes at their place in the file */
static int writer_flush(struct queue_writer *w, struct strbuf *err)
{
    if (w->buf_len == 0)
        return 0;
    if (pwrite_full(w->fd, w->buf, w->buf_len, w->msg_offset + w->msg_len - w->buf_len) < 0)
        return writer_failed(w, err);
    w->buf_len = 0;
    return 0;
}

int queue_writer_write(struct queue_writer *w, const void *data, size_t len, struct strbuf *err)
{
    const unsigned char *p = data;

    if (w->failed) {
        sb_printf(err, "write incoming/%s.tmp: an earlier write failed", w->id);
        errno = w->failed;
        return -1;
    }
    w->msg_crc = crc32_update(w->msg_crc, data, len);
    while (len > 0) {
        size_t  n;

        if (w->buf_len == 0 && len >= QF_IO_CHUNK) {
            /* Big pieces go straight to the file, skipping a copy. */
            if (pwrite_full(w->fd, p, len, w->msg_offset + w->msg_len) < 0)
                return writer_failed(w, err);
            w->msg_len += len;
            return 0;
        }
        n = QF_IO_CHUNK - w->buf_len;
        if (n > len)
            n = len;
        memcpy(w->buf + w->buf_len, p, n);
        w->buf_len += n;
        w->msg_len += n;
        p += n;
        len -= n;
        if (w->buf_len == QF_IO_CHUNK && writer_flush(w, err) < 0)
            return -1;
    }
    return 0;
}

uint64_t queue_writer_size(const struct queue_writer *w)
{
    return w->msg_len;
}

/* queue_writer_map_message - flush the buffer, map the file, point at the message */
int queue_writer_map_message(struct queue_writer *w, const char **data, size_t *len,
                             struct strbuf *err)
{
    long    page = sysconf(_SC_PAGESIZE);
    uint64_t start, skip;
    void   *map;

    *data = NULL;
    *len = 0;
    if (w->failed) {
        sb_printf(err, "read incoming/%s.tmp: an earlier write failed", w->id);
        errno = w->failed;
        return -1;
    }
    if (writer_flush(w, err) < 0)
        return -1;
    if (w->msg_len == 0 || w->msg_len > SIZE_MAX / 2) {
        *data = "";
        return 0;
    }
    /* mmap offsets are whole pages: map from the page holding the message's start. */
    start = w->msg_offset - w->msg_offset % (uint64_t) (page > 0 ? page : 4096);
    skip = w->msg_offset - start;
    map = mmap(NULL, (size_t) (skip + w->msg_len), PROT_READ, MAP_SHARED, w->fd, (off_t) start);
    if (map == MAP_FAILED) {
        sb_printf(err, "map incoming/%s.tmp: %s", w->id, strerror(errno));
        return -1;
    }
    *data = (const char *) map + skip;
    *len = (size_t) w->msg_len;
    return 0;
}

/* queue_message_unmap - the mapping starts at the page holding data */
void queue_message_unmap(const char *data, size_t len)
{
    long    page = sysconf(_SC_PAGESIZE);
    size_t  skip;

    if (len == 0)
        return;
    skip = (size_t) ((uintptr_t) data % (uintptr_t) (page > 0 ? page : 4096));
    munmap((void *) (data - skip), len + skip);
}

/* writer_free - release memory and the descriptor, touching no file names */
static void writer_free(struct queue_writer *w)
{
    if (w->fd >= 0)
        close(w->fd);
    sb_free(&w->image);
    free(w->buf);
    free(w);
}

int queue_writer_commit(struct queue_writer *w, struct strbuf *err)
{
    return queue_writer_commit_to(w, "incoming", err);
}

/* queue_writer_commit_to - commit into queue directory dir ("incoming", or "hold" where qmgr never looks) */
int queue_writer_commit_to(struct queue_writer *w, const char *dir, struct strbuf *err)
{
    unsigned char *h = (unsigned char *) w->image.data;
    char    tmp_name[64];
    char    final_name[64];
    char    digits[QF_SIZE_DIGITS + 1];
    int     dfd;
    int     saved;

    snprintf(tmp_name, sizeof(tmp_name), "incoming/%s.tmp", w->id);
    snprintf(final_name, sizeof(final_name), "%s/%s", dir, w->id);
    if (w->failed) {
        sb_printf(err, "write %s: an earlier write failed", tmp_name);
        errno = w->failed;
        goto fail;
    }
    if (writer_flush(w, err) < 0)
        goto fail;

    snprintf(digits, sizeof(digits), "%020" PRIu64, w->msg_len);
    memcpy(h + w->size_pos, digits, QF_SIZE_DIGITS);
    memcpy(h, QF_MAGIC, 4);
    put16(h + 4, QF_VERSION);
    put16(h + 6, 0);
    put32(h + 8, QF_ENVELOPE_OFFSET);
    put32(h + 12, w->env_len);
    put32(h + 16, w->nrcpt);
    put32(h + 20, QF_STATUS_SIZE);
    put64(h + 24, QF_ENVELOPE_OFFSET + (uint64_t) w->env_len);
    put64(h + 32, w->msg_offset);
    put64(h + 40, w->msg_len);
    put32(h + 48, w->msg_crc);
    put32(h + 60, crc32_update(crc32_update(0, h, 60), h + QF_ENVELOPE_OFFSET, w->env_len));

    if (pwrite_full(w->fd, h, sb_len(&w->image), 0) < 0) {
        sb_printf(err, "write %s: %s", tmp_name, strerror(errno));
        goto fail;
    }
    if (fsync(w->fd) < 0) {
        sb_printf(err, "fsync %s: %s", tmp_name, strerror(errno));
        goto fail;
    }
    /* Never replace a file that is already queued under this name. */
    if (renameat2(w->dirfd, tmp_name, w->dirfd, final_name, RENAME_NOREPLACE) < 0
        && (errno != EINVAL || renameat(w->dirfd, tmp_name, w->dirfd, final_name) < 0)) {
        sb_printf(err, "rename %s to %s: %s", tmp_name, final_name, strerror(errno));
        goto fail;
    }
    dfd = openat(w->dirfd, dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0 || fsync(dfd) < 0) {
        /* Not durable: take it back, so that the client retries instead of trusting a 250. */
        sb_printf(err, "fsync directory %s: %s", dir, strerror(errno));
        if (dfd >= 0)
            close(dfd);
        saved = errno;
        unlinkat(w->dirfd, final_name, 0);
        writer_free(w);
        errno = saved;
        return -1;
    }
    close(dfd);
    writer_free(w);
    return 0;

fail:
    saved = errno;
    unlinkat(w->dirfd, tmp_name, 0);
    writer_free(w);
    errno = saved;
    return -1;
}

void queue_writer_abort(struct queue_writer *w)
{
    char    tmp_name[64];

    if (w == NULL)
        return;
    snprintf(tmp_name, sizeof(tmp_name), "incoming/%s.tmp", w->id);
    unlinkat(w->dirfd, tmp_name, 0);
    writer_free(w);
}

/* Reading. */

/* corrupt - fail a read as "the file is corrupt" (errno EBADMSG) */
static int corrupt(struct queue_file *qf)
{
    queue_file_free(qf);
    errno = EBADMSG;
    return -1;
}

/* read_error - fail a read after pread_full failed: corrupt if the file shrank, else I/O */
static int read_error(struct queue_file *qf, const char *what, struct strbuf *err)
{
    int     saved = errno;

    if (saved == EBADMSG)
        sb_printf(err, "%s: file shrank while being read", what);
    else
        sb_printf(err, "read %s: %s", what, strerror(saved));
    queue_file_free(qf);
    errno = saved;
    return -1;
}

int queue_file_read(int fd, struct queue_file *qf, struct strbuf *err)
{
    unsigned char head[QF_ENVELOPE_OFFSET];
    struct stat st;
    uint64_t size;
    uint32_t env_len;
    uint32_t nrcpt;
    uint64_t status_off, msg_off, msg_len;
    char   *envelope = NULL;
    unsigned char *buf = NULL;
    uint32_t crc;

    memset(qf, 0, sizeof(*qf));
    if (fstat(fd, &st) < 0) {
        sb_printf(err, "fstat: %s", strerror(errno));
        return -1;
    }
    if (!S_ISREG(st.st_mode)) {
        sb_puts(err, "not a regular file");
        return corrupt(qf);
    }
    size = (uint64_t) st.st_size;
    if (size < QF_ENVELOPE_OFFSET) {
        sb_printf(err, "truncated: %" PRIu64 " bytes, a header and schedule need %d", size,
                  QF_ENVELOPE_OFFSET);
        return corrupt(qf);
    }
    if (pread_full(fd, head, sizeof(head), 0) < 0)
        return read_error(qf, "header", err);
    if (memcmp(head, QF_MAGIC, 4) != 0) {
        sb_puts(err, "bad magic: not a queue file");
        return corrupt(qf);
    }
    if (get16(head + 4) != QF_VERSION || get16(head + 6) != 0) {
        sb_printf(err, "unsupported format version %u flags %u (this reader knows version %d)",
                  get16(head + 4), get16(head + 6), QF_VERSION);
        return corrupt(qf);
    }
    env_len = get32(head + 12);
    nrcpt = get32(head + 16);
    status_off = get64(head + 24);
    msg_off = get64(head + 32);
    msg_len = get64(head + 40);

    /* Every offset and length is checked against the layout and file size before any read. */
    if (get32(head + 8) != QF_ENVELOPE_OFFSET || get32(head + 20) != QF_STATUS_SIZE) {
        sb_puts(err, "header: bad envelope offset or status record size");
        return corrupt(qf);
    }
    if (env_len > QUEUE_ENVELOPE_MAX || nrcpt > QUEUE_RCPT_MAX) {
        sb_printf(err, "header: envelope length %" PRIu32 " or recipient count %" PRIu32
                  " out of range", env_len, nrcpt);
        return corrupt(qf);
    }
    if (status_off != QF_ENVELOPE_OFFSET + (uint64_t) env_len
        || msg_off != status_off + (uint64_t) nrcpt * QF_STATUS_SIZE) {
        sb_puts(err, "header: status or message offset does not follow the envelope");
        return corrupt(qf);
    }
    if (msg_off > size || msg_len != size - msg_off) {
        sb_printf(err, "truncated or overlong: message at %" PRIu64 " of %" PRIu64
                  " bytes, file has %" PRIu64, msg_off, msg_len, size);
        return corrupt(qf);
    }

    envelope = xmalloc((size_t) env_len + 1);
    if (pread_full(fd, envelope, env_len, QF_ENVELOPE_OFFSET) < 0) {
        free(envelope);
        return read_error(qf, "envelope", err);
    }
    envelope[env_len] = '\0';
    crc = crc32_update(crc32_update(0, head, 60), envelope, env_len);
    if (crc != get32(head + 60)) {
        sb_puts(err, "header/envelope CRC mismatch");
        free(envelope);
        return corrupt(qf);
    }
    if (get32(head + QF_HEADER_SIZE + 28) != crc32_update(0, head + QF_HEADER_SIZE, 28)) {
        sb_puts(err, "schedule record CRC mismatch");
        free(envelope);
        return corrupt(qf);
    }
    qf->attempts = get32(head + QF_HEADER_SIZE);
    qf->flags = get32(head + QF_HEADER_SIZE + 4);
    qf->next_attempt = (int64_t) get64(head + QF_HEADER_SIZE + 8);
    qf->status_offset = status_off;
    qf->message_offset = msg_off;
    qf->message_length = msg_len;
    if (envelope_decode(envelope, env_len, nrcpt, msg_len, qf, err) < 0) {
        free(envelope);
        return corrupt(qf);
    }
    free(envelope);

    buf = xmalloc(QF_IO_CHUNK);
    for (uint32_t i = 0; i < nrcpt;) {
        uint32_t n = QF_IO_CHUNK / QF_STATUS_SIZE;

        if (n > nrcpt - i)
            n = nrcpt - i;
        if (pread_full(fd, buf, (size_t) n * QF_STATUS_SIZE, status_off + (uint64_t) i * QF_STATUS_SIZE) < 0) {
            free(buf);
            return read_error(qf, "status records", err);
        }
        for (uint32_t k = 0; k < n; k++) {
            if (status_decode(buf + (size_t) k * QF_STATUS_SIZE, i + k, &qf->env.rcpts[i + k], err) < 0) {
                free(buf);
                return corrupt(qf);
            }
        }
        i += n;
    }
    crc = 0;
    for (uint64_t done = 0; done < msg_len;) {
        size_t  n = msg_len - done > QF_IO_CHUNK ? QF_IO_CHUNK : (size_t) (msg_len - done);

        if (pread_full(fd, buf, n, msg_off + done) < 0) {
            free(buf);
            return read_error(qf, "message", err);
        }
        crc = crc32_update(crc, buf, n);
        done += n;
    }
    free(buf);
    if (crc != get32(head + 48)) {
        sb_puts(err, "message CRC mismatch");
        return corrupt(qf);
    }
    return 0;
}

void queue_file_free(struct queue_file *qf)
{
    queue_envelope_free(&qf->env);
    memset(qf, 0, sizeof(*qf));
}

void queue_envelope_free(struct queue_envelope *env)
{
    if (env->rcpts) {
        for (size_t i = 0; i < env->nrcpt; i++) {
            free(env->rcpts[i].address);
            free(env->rcpts[i].orcpt);
            free(env->rcpts[i].notify);
        }
    }
    free(env->rcpts);
    free(env->sender);
    free(env->client_addr);
    free(env->client_name);
    free(env->helo);
    free(env->protocol);
    free(env->body_type);
    free(env->envid);
    free(env->ret);
    memset(env, 0, sizeof(*env));
}

/* Updating in place. */

int queue_file_update_rcpt(int fd, struct queue_file *qf, size_t i, enum queue_rcpt_state state,
                           const char *reason, struct strbuf *err)
{
    unsigned char rec[QF_STATUS_SIZE];
    struct queue_rcpt *rcpt;
    uint32_t attempts;
    int64_t now = (int64_t) time(NULL);

    if (i >= qf->env.nrcpt) {
        sb_printf(err, "update recipient %zu: only %zu recipients", i, qf->env.nrcpt);
        return -1;
    }
    if ((unsigned) state > QUEUE_RCPT_DEFERRED) {
        sb_printf(err, "update recipient %zu: bad state %d", i, (int) state);
        return -1;
    }
    rcpt = &qf->env.rcpts[i];
    /* Every state change but back to pending follows a delivery attempt. */
    attempts = rcpt->attempts + (state != QUEUE_RCPT_PENDING && rcpt->attempts < UINT32_MAX);
    status_encode(rec, (uint32_t) i, state, rcpt->flags, attempts, now, reason);
    if (pwrite_full(fd, rec, sizeof(rec), qf->status_offset + (uint64_t) i * QF_STATUS_SIZE) < 0
        || fdatasync(fd) < 0) {
        sb_printf(err, "update recipient %zu of %s: %s", i, qf->env.queue_id, strerror(errno));
        return -1;
    }
    rcpt->state = state;
    rcpt->attempts = attempts;
    rcpt->updated = now;
    memcpy(rcpt->reason, rec + 16, rec[1]);
    rcpt->reason[rec[1]] = '\0';
    return 0;
}

int queue_file_update_schedule(int fd, struct queue_file *qf, uint32_t attempts, int64_t next_attempt,
                               struct strbuf *err)
{
    unsigned char rec[QF_SCHEDULE_SIZE];

    schedule_encode(rec, attempts, qf->flags, next_attempt);
    if (pwrite_full(fd, rec, sizeof(rec), QF_HEADER_SIZE) < 0 || fdatasync(fd) < 0) {
        sb_printf(err, "update schedule of %s: %s", qf->env.queue_id, strerror(errno));
        return -1;
    }
    qf->attempts = attempts;
    qf->next_attempt = next_attempt;
    return 0;
}

int queue_file_update_rcpt_flags(int fd, struct queue_file *qf, size_t i, unsigned flags, struct strbuf *err)
{
    unsigned char rec[QF_STATUS_SIZE];
    struct queue_rcpt *rcpt;

    if (i >= qf->env.nrcpt) {
        sb_printf(err, "update recipient %zu: only %zu recipients", i, qf->env.nrcpt);
        return -1;
    }
    rcpt = &qf->env.rcpts[i];
    /* The record as last read or written, flags apart: no attempt is counted. */
    status_encode(rec, (uint32_t) i, rcpt->state, flags & 0xff, rcpt->attempts, rcpt->updated, rcpt->reason);
    if (pwrite_full(fd, rec, sizeof(rec), qf->status_offset + (uint64_t) i * QF_STATUS_SIZE) < 0
        || fdatasync(fd) < 0) {
        sb_printf(err, "update recipient %zu of %s: %s", i, qf->env.queue_id, strerror(errno));
        return -1;
    }
    rcpt->flags = flags & 0xff;
    return 0;
}
