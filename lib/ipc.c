/*
 * ipc - records between Postern daemons. See ipc.h.
 *
 * Wire format: a 4-byte big-endian length N (0 < N <= IPC_RECORD_MAX), then N
 * bytes of "name=value\n" lines. The first line is "type=T" with T made of
 * [a-z0-9_-], at most IPC_TYPE_MAX bytes; names are [a-z0-9_]+, at most
 * IPC_NAME_MAX bytes; values hold no NUL, CR or LF. Every line, the last one
 * included, ends with LF.
 *
 * Descriptors: ipc_send() attaches the descriptor (SCM_RIGHTS) to the sendmsg
 * that carries the first byte of the record, so it travels with the record's
 * start. Receivers use MSG_CMSG_CLOEXEC, keep at most one descriptor per
 * record and close every other one they are handed (a peer cannot make us
 * leak descriptors). ipc_recv() reads exactly one record (length, then body),
 * so a descriptor that arrives with the length belongs to that record.
 *
 * The non-blocking reader reads up to 64 KiB at a time, so one read may hold
 * many records. Linux ends a stream read right after the data that came with
 * descriptors, so descriptors received in a read belong to the last record
 * that starts in that read; while such a descriptor waits to be handed out,
 * the reader reads no further than the end of its record, which keeps the
 * rule exact. Callers call ipc_reader_next() until it returns 0 after every
 * ipc_reader_fill().
 *
 * Records out: ipc_recv(), ipc_parse() and ipc_reader_next() treat their
 * record argument as output only: it is initialized on entry (anything in it
 * is not freed) and is always valid for ipc_free() on return, success or not.
 *
 * Errors: -1 with a message in err and errno set (ETIMEDOUT for a deadline,
 * EPROTO for bad data, 0 for an orderly close by the peer between records).
 * A timeout_ms below 0 means no deadline.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "ipc.h"
#include "log.h"
#include "mem.h"

#define IPC_NAME_MAX    64
#define IPC_TYPE_MAX    64
#define IPC_READ_CHUNK  65536
#define IPC_MAX_FDS     8               /* control buffer room: more than one is already a protocol error */

/* Names, values and records. */

/* name_ok - [a-z0-9_]{1,IPC_NAME_MAX} */
static bool name_ok(const char *name, size_t len)
{
    if (len == 0 || len > IPC_NAME_MAX)
        return false;
    for (size_t i = 0; i < len; i++) {
        char    c = name[i];

        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_'))
            return false;
    }
    return true;
}

/* type_ok - [a-z0-9_-]{1,IPC_TYPE_MAX} */
static bool type_ok(const char *type, size_t len)
{
    if (len == 0 || len > IPC_TYPE_MAX)
        return false;
    for (size_t i = 0; i < len; i++) {
        char    c = type[i];

        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '-'))
            return false;
    }
    return true;
}

void ipc_init(struct ipc_record *r, const char *type)
{
    sb_init(&r->data);
    if (!type_ok(type, strlen(type)))
        msg_panic("ipc_init: bad record type \"%s\"", type);
    sb_puts(&r->data, "type=");
    sb_puts(&r->data, type);
    sb_putc(&r->data, '\n');
}

void ipc_free(struct ipc_record *r)
{
    sb_free(&r->data);
}

int ipc_put(struct ipc_record *r, const char *name, const char *value)
{
    size_t  nlen = strlen(name);
    size_t  vlen = strlen(value);

    if (!name_ok(name, nlen) || strpbrk(value, "\r\n") != NULL)
        return -1;
    if (vlen > IPC_RECORD_MAX || sb_len(&r->data) + nlen + vlen + 2 > IPC_RECORD_MAX)
        return -1;
    sb_append(&r->data, name, nlen);
    sb_putc(&r->data, '=');
    sb_append(&r->data, value, vlen);
    sb_putc(&r->data, '\n');
    return 0;
}

int ipc_put_int(struct ipc_record *r, const char *name, long long value)
{
    char    buf[32];

    snprintf(buf, sizeof(buf), "%lld", value);
    return ipc_put(r, name, buf);
}

/* line_at - split the line at *pos into name and value spans; false at the end or on bad data */
static bool line_at(const struct ipc_record *r, size_t *pos, const char **name, size_t *nlen,
                    const char **value, size_t *vlen)
{
    const char *data = r->data.data;
    size_t  len = sb_len(&r->data);
    const char *nl;
    const char *eq;

    if (data == NULL || *pos >= len)
        return false;
    nl = memchr(data + *pos, '\n', len - *pos);
    if (nl == NULL)
        return false;
    eq = memchr(data + *pos, '=', (size_t) (nl - (data + *pos)));
    if (eq == NULL)
        return false;
    *name = data + *pos;
    *nlen = (size_t) (eq - *name);
    *value = eq + 1;
    *vlen = (size_t) (nl - *value);
    *pos = (size_t) (nl - data) + 1;
    return true;
}

const char *ipc_type(const struct ipc_record *r)
{
    /*
     * The record holds its lines as they go on the wire, so the type is not
     * NUL-terminated there: hand out a copy from a small ring, which stays
     * valid across the next few calls (enough for comparing two types).
     */
    static __thread char ring[8][IPC_TYPE_MAX + 1];
    static __thread unsigned next;
    const char *name;
    const char *value;
    size_t  nlen, vlen;
    size_t  pos = 0;
    char   *out;

    if (!line_at(r, &pos, &name, &nlen, &value, &vlen)
        || nlen != 4 || memcmp(name, "type", 4) != 0 || !type_ok(value, vlen))
        return "";
    out = ring[next++ % 8];
    memcpy(out, value, vlen);
    out[vlen] = '\0';
    return out;
}

bool ipc_next(const struct ipc_record *r, size_t *pos, struct strbuf *name, struct strbuf *value)
{
    const char *n;
    const char *v;
    size_t  nlen, vlen;

    if (!line_at(r, pos, &n, &nlen, &v, &vlen))
        return false;
    sb_reset(name);
    sb_append(name, n, nlen);
    sb_reset(value);
    sb_append(value, v, vlen);
    return true;
}

bool ipc_get(const struct ipc_record *r, const char *name, struct strbuf *out)
{
    size_t  want = strlen(name);
    size_t  pos = 0;
    const char *n;
    const char *v;
    size_t  nlen, vlen;

    while (line_at(r, &pos, &n, &nlen, &v, &vlen)) {
        if (nlen == want && memcmp(n, name, want) == 0) {
            sb_reset(out);
            sb_append(out, v, vlen);
            return true;
        }
    }
    return false;
}

bool ipc_get_int(const struct ipc_record *r, const char *name, long long min, long long max, long long *out)
{
    struct strbuf text = STRBUF_INIT;
    const char *s;
    char   *end;
    long long v;
    bool    ok = false;

    if (ipc_get(r, name, &text)) {
        s = sb_str(&text);
        /* Strict: optional '-', then digits only; no blanks, '+', or hex. */
        if ((s[0] >= '0' && s[0] <= '9') || (s[0] == '-' && s[1] >= '0' && s[1] <= '9')) {
            errno = 0;
            v = strtoll(s, &end, 10);
            if (errno == 0 && *end == '\0' && v >= min && v <= max) {
                *out = v;
                ok = true;
            }
        }
    }
    sb_free(&text);
    return ok;
}

int ipc_parse(struct ipc_record *r, const void *data, size_t len, struct strbuf *err)
{
    const char *p = data;
    size_t  pos = 0;
    size_t  lineno = 0;

    sb_init(&r->data);
    if (len == 0 || len > IPC_RECORD_MAX) {
        sb_printf(err, "ipc: record length %zu out of range", len);
        errno = EPROTO;
        return -1;
    }
    while (pos < len) {
        const char *line = p + pos;
        const char *nl = memchr(line, '\n', len - pos);
        const char *eq;
        size_t  nlen;

        lineno++;
        if (nl == NULL) {
            sb_printf(err, "ipc: attribute %zu: no newline at the end", lineno);
            goto bad;
        }
        eq = memchr(line, '=', (size_t) (nl - line));
        if (eq == NULL) {
            sb_printf(err, "ipc: attribute %zu: no '='", lineno);
            goto bad;
        }
        nlen = (size_t) (eq - line);
        if (!name_ok(line, nlen)) {
            sb_printf(err, "ipc: attribute %zu: bad name", lineno);
            goto bad;
        }
        if (memchr(eq + 1, '\0', (size_t) (nl - eq - 1)) || memchr(eq + 1, '\r', (size_t) (nl - eq - 1))) {
            sb_printf(err, "ipc: attribute %zu: NUL or CR in the value", lineno);
            goto bad;
        }
        if (lineno == 1 && (nlen != 4 || memcmp(line, "type", 4) != 0
                            || !type_ok(eq + 1, (size_t) (nl - eq - 1)))) {
            sb_puts(err, "ipc: record does not start with a valid type= attribute");
            goto bad;
        }
        pos = (size_t) (nl - p) + 1;
    }
    sb_append(&r->data, data, len);
    return 0;

bad:
    errno = EPROTO;
    return -1;
}

void ipc_encode(const struct ipc_record *r, struct strbuf *out)
{
    uint32_t n = (uint32_t) sb_len(&r->data);
    unsigned char len[4] = {(unsigned char) (n >> 24), (unsigned char) (n >> 16),
                            (unsigned char) (n >> 8), (unsigned char) n};

    sb_append(out, len, sizeof(len));
    sb_append(out, r->data.data ? r->data.data : "", n);
}

/* Descriptors. */

/* take_fds - the descriptors in msg's control data, into fds (up to max); the rest are closed */
static int take_fds(struct msghdr *msg, int *fds, int max)
{
    int     n = 0;

    for (struct cmsghdr *c = CMSG_FIRSTHDR(msg); c != NULL; c = CMSG_NXTHDR(msg, c)) {
        if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
            continue;
        size_t  count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
        unsigned char *p = CMSG_DATA(c);

        for (size_t i = 0; i < count; i++) {
            int     fd;

            memcpy(&fd, p + i * sizeof(int), sizeof(int));
            if (n < max)
                fds[n++] = fd;
            else
                close(fd);
        }
    }
    return n;
}

/* close_fds - close n descriptors */
static void close_fds(const int *fds, int n)
{
    for (int i = 0; i < n; i++)
        close(fds[i]);
}

/* Deadlines. */

/* now_ms - monotonic milliseconds */
static long long now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* deadline_of - the absolute deadline for timeout_ms, -1 for none */
static long long deadline_of(int timeout_ms)
{
    return timeout_ms < 0 ? -1 : now_ms() + timeout_ms;
}

/* wait_for - poll sock for events until the deadline; -1 with err on timeout or error */
static int wait_for(int sock, short events, long long deadline, const char *what, struct strbuf *err)
{
    struct pollfd pfd = {.fd = sock, .events = events};

    for (;;) {
        int     left = -1;
        int     n;

        if (deadline >= 0) {
            long long l = deadline - now_ms();

            left = l < 0 ? 0 : l > 1000000000 ? 1000000000 : (int) l;
        }
        n = poll(&pfd, 1, left);
        if (n > 0)
            return 0;
        if (n == 0) {
            sb_printf(err, "ipc: timed out while %s", what);
            errno = ETIMEDOUT;
            return -1;
        }
        if (errno != EINTR) {
            sb_printf(err, "ipc: poll while %s: %s", what, strerror(errno));
            return -1;
        }
    }
}

/* Blocking I/O with deadline. */

int ipc_send(int sock, const struct ipc_record *r, int pass_fd, int timeout_ms, struct strbuf *err)
{
    struct strbuf wire = STRBUF_INIT;
    long long deadline = deadline_of(timeout_ms);
    size_t  done = 0;
    int     rc = -1;

    if (sb_len(&r->data) == 0 || sb_len(&r->data) > IPC_RECORD_MAX) {
        sb_printf(err, "ipc: refusing to send a record of %zu bytes", sb_len(&r->data));
        errno = EMSGSIZE;
        return -1;
    }
    ipc_encode(r, &wire);
    while (done < sb_len(&wire)) {
        struct iovec iov = {.iov_base = wire.data + done, .iov_len = sb_len(&wire) - done};
        union {
            struct cmsghdr align;
            char    buf[CMSG_SPACE(sizeof(int))];
        } control;
        struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1};
        ssize_t n;

        /* The descriptor rides with the first byte of the record. */
        if (done == 0 && pass_fd >= 0) {
            struct cmsghdr *c;

            memset(&control, 0, sizeof(control));
            msg.msg_control = control.buf;
            msg.msg_controllen = sizeof(control.buf);
            c = CMSG_FIRSTHDR(&msg);
            c->cmsg_level = SOL_SOCKET;
            c->cmsg_type = SCM_RIGHTS;
            c->cmsg_len = CMSG_LEN(sizeof(int));
            memcpy(CMSG_DATA(c), &pass_fd, sizeof(int));
        }
        n = sendmsg(sock, &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK) {
                if (wait_for(sock, POLLOUT, deadline, "sending", err) < 0)
                    goto out;
                continue;
            }
            sb_printf(err, "ipc: send: %s", strerror(errno));
            goto out;
        }
        done += (size_t) n;
    }
    rc = 0;
out:
    sb_free(&wire);
    return rc;
}

/*
 * recv_exact - read exactly len bytes into buf before the deadline. Descriptors
 * that come with the first read go to *fd when want_fd (at most one); any
 * other is closed. *got counts bytes read, so the caller can tell an orderly
 * close before the record from one in the middle of it.
 */
static int recv_exact(int sock, void *buf, size_t len, int *fd, bool want_fd, long long deadline,
                      size_t *got, struct strbuf *err)
{
    unsigned char *p = buf;

    *got = 0;
    while (*got < len) {
        struct iovec iov = {.iov_base = p + *got, .iov_len = len - *got};
        union {
            struct cmsghdr align;
            char    buf[CMSG_SPACE(sizeof(int) * IPC_MAX_FDS)];
        } control;
        struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1,
                             .msg_control = control.buf, .msg_controllen = sizeof(control.buf)};
        int     fds[IPC_MAX_FDS];
        int     nfds;
        ssize_t n;

        n = recvmsg(sock, &msg, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK) {
                if (wait_for(sock, POLLIN, deadline, "receiving", err) < 0)
                    return -1;
                continue;
            }
            sb_printf(err, "ipc: receive: %s", strerror(errno));
            return -1;
        }
        nfds = take_fds(&msg, fds, IPC_MAX_FDS);
        if (nfds > 0) {
            int     first = 0;

            if (want_fd && *got == 0 && *fd < 0) {
                *fd = fds[0];
                first = 1;
            }
            close_fds(fds + first, nfds - first);
        }
        if (n == 0) {
            if (*got == 0)
                return 0;
            sb_puts(err, "ipc: connection closed in the middle of a record");
            errno = EPROTO;
            return -1;
        }
        *got += (size_t) n;
    }
    return 0;
}

int ipc_recv(int sock, struct ipc_record *r, int *recv_fd, int timeout_ms, struct strbuf *err)
{
    long long deadline = deadline_of(timeout_ms);
    unsigned char head[4];
    unsigned char *body = NULL;
    uint32_t len;
    size_t  got;
    int     fd = -1;

    sb_init(&r->data);
    if (recv_fd)
        *recv_fd = -1;
    if (recv_exact(sock, head, sizeof(head), &fd, true, deadline, &got, err) < 0)
        goto fail;
    if (got == 0) {
        sb_puts(err, "ipc: connection closed by the peer");
        errno = 0;
        goto fail;
    }
    len = (uint32_t) head[0] << 24 | (uint32_t) head[1] << 16 | (uint32_t) head[2] << 8 | head[3];
    if (len == 0 || len > IPC_RECORD_MAX) {
        sb_printf(err, "ipc: record length %lu out of range (1..%d)", (unsigned long) len, IPC_RECORD_MAX);
        errno = EPROTO;
        goto fail;
    }
    body = xmalloc(len);
    if (recv_exact(sock, body, len, &fd, false, deadline, &got, err) < 0)
        goto fail;
    if (got < len) {
        sb_puts(err, "ipc: connection closed in the middle of a record");
        errno = EPROTO;
        goto fail;
    }
    if (ipc_parse(r, body, len, err) < 0)
        goto fail;
    free(body);
    if (recv_fd)
        *recv_fd = fd;
    else if (fd >= 0)
        close(fd);
    return 0;

fail:
    {
        int     saved = errno;

        free(body);
        if (fd >= 0)
            close(fd);
        errno = saved;
    }
    return -1;
}

int ipc_connect(const char *path, int timeout_ms, struct strbuf *err)
{
    struct sockaddr_un sun;
    long long deadline = deadline_of(timeout_ms);
    size_t  len = strlen(path);
    int     sock;
    int     flags;

    if (len == 0 || len >= sizeof(sun.sun_path)) {
        sb_printf(err, "ipc: socket path \"%s\" is empty or longer than %zu bytes", path,
                  sizeof(sun.sun_path) - 1);
        errno = ENAMETOOLONG;
        return -1;
    }
    memset(&sun, 0, sizeof(sun));
    sun.sun_family = AF_UNIX;
    memcpy(sun.sun_path, path, len + 1);
    sock = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (sock < 0) {
        sb_printf(err, "ipc: socket: %s", strerror(errno));
        return -1;
    }
    for (;;) {
        if (connect(sock, (struct sockaddr *) &sun, sizeof(sun)) == 0)
            break;
        if (errno == EINTR || errno == EINPROGRESS) {
            int     soerr = 0;
            socklen_t sl = sizeof(soerr);

            if (wait_for(sock, POLLOUT, deadline, "connecting", err) < 0)
                goto fail;
            if (getsockopt(sock, SOL_SOCKET, SO_ERROR, &soerr, &sl) < 0)
                soerr = errno;
            if (soerr == 0)
                break;
            errno = soerr;
        }
        if (errno == EAGAIN) {
            /* A UNIX socket with a full backlog: Linux says EAGAIN and there is nothing to poll. */
            long long left = deadline < 0 ? 10 : deadline - now_ms();

            if (left <= 0) {
                sb_printf(err, "ipc: connect %s: timed out (listener backlog full)", path);
                errno = ETIMEDOUT;
                goto fail;
            }
            poll(NULL, 0, left < 10 ? (int) left : 10);
            continue;
        }
        sb_printf(err, "ipc: connect %s: %s", path, strerror(errno));
        goto fail;
    }
    flags = fcntl(sock, F_GETFL);
    if (flags < 0 || fcntl(sock, F_SETFL, flags & ~O_NONBLOCK) < 0) {
        sb_printf(err, "ipc: fcntl: %s", strerror(errno));
        goto fail;
    }
    return sock;

fail:
    {
        int     saved = errno;

        close(sock);
        errno = saved;
    }
    return -1;
}

/* Non-blocking reader. */

void ipc_reader_init(struct ipc_reader *rd)
{
    sb_init(&rd->buf);
    rd->nfds = 0;
    for (int i = 0; i < (int) (sizeof(rd->fds) / sizeof(rd->fds[0])); i++)
        rd->fds[i] = -1;
}

void ipc_reader_free(struct ipc_reader *rd)
{
    close_fds(rd->fds, rd->nfds);
    rd->nfds = 0;
    sb_free(&rd->buf);
}

/* record_len_at - the record length whose prefix starts at off (which must have 4 bytes) */
static uint32_t record_len_at(const struct ipc_reader *rd, size_t off)
{
    const unsigned char *p = (const unsigned char *) rd->buf.data + off;

    return (uint32_t) p[0] << 24 | (uint32_t) p[1] << 16 | (uint32_t) p[2] << 8 | p[3];
}

/*
 * last_start - where the last record that starts in the buffer starts, and in
 * *end where it ends (its length prefix counted; 4 past the start while the
 * prefix is incomplete). -1 if a length is out of range.
 */
static int last_start(const struct ipc_reader *rd, size_t *start, size_t *end)
{
    size_t  off = 0;

    for (;;) {
        size_t  rec_end;

        if (sb_len(&rd->buf) - off < 4) {
            *start = off;
            *end = off + 4;
            return 0;
        }
        uint32_t n = record_len_at(rd, off);

        if (n == 0 || n > IPC_RECORD_MAX)
            return -1;
        rec_end = off + 4 + n;
        if (rec_end >= sb_len(&rd->buf)) {
            *start = off;
            *end = rec_end;
            return 0;
        }
        off = rec_end;
    }
}

int ipc_reader_fill(struct ipc_reader *rd, int sock, struct strbuf *err)
{
    size_t  old_len = sb_len(&rd->buf);
    size_t  want = IPC_READ_CHUNK;
    size_t  start, end;
    union {
        struct cmsghdr align;
        char    buf[CMSG_SPACE(sizeof(int) * IPC_MAX_FDS)];
    } control;
    int     fds[IPC_MAX_FDS];
    int     nfds;
    ssize_t n;

    if (rd->nfds > 0) {
        /* A descriptor waits for its record, the last one begun: read no further than its end. */
        if (last_start(rd, &start, &end) < 0) {
            sb_puts(err, "ipc: record length out of range");
            errno = EPROTO;
            return -1;
        }
        if (end <= old_len)
            return 1;
        if (end - old_len < want)
            want = end - old_len;
    } else if (old_len >= IPC_RECORD_MAX + 4 + IPC_READ_CHUNK) {
        /* The caller has not taken the records out: do not grow without bound. */
        return 1;
    }
    /* Make room for want more bytes (doubling, as strbuf does) without changing the contents. */
    if (rd->buf.data == NULL || rd->buf.cap < old_len + want + 1) {
        size_t  cap = rd->buf.cap ? rd->buf.cap : IPC_READ_CHUNK;

        while (cap < old_len + want + 1)
            cap *= 2;
        rd->buf.data = xrealloc(rd->buf.data, cap);
        rd->buf.cap = cap;
    }
    for (;;) {
        struct iovec iov = {.iov_base = rd->buf.data + old_len, .iov_len = want};
        struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1,
                             .msg_control = control.buf, .msg_controllen = sizeof(control.buf)};

        n = recvmsg(sock, &msg, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return 1;
        if (n < 0) {
            sb_printf(err, "ipc: receive: %s", strerror(errno));
            return -1;
        }
        nfds = take_fds(&msg, fds, IPC_MAX_FDS);
        break;
    }
    rd->buf.len = old_len + (size_t) n;
    rd->buf.data[rd->buf.len] = '\0';
    if (nfds > 0) {
        if (rd->nfds > 0 || last_start(rd, &start, &end) < 0 || start < old_len || n == 0) {
            /* Not at the start of a record (or a second one for the same record): a broken peer. */
            close_fds(fds, nfds);
            sb_puts(err, "ipc: descriptor received out of place");
            errno = EPROTO;
            return -1;
        }
        rd->fds[0] = fds[0];
        rd->nfds = 1;
        close_fds(fds + 1, nfds - 1);
    }
    return n == 0 ? 0 : 1;
}

int ipc_reader_next(struct ipc_reader *rd, struct ipc_record *r, int *recv_fd, struct strbuf *err)
{
    size_t  have = sb_len(&rd->buf);
    size_t  total;
    uint32_t n;
    int     fd = -1;

    sb_init(&r->data);
    if (recv_fd)
        *recv_fd = -1;
    if (have < 4)
        return 0;
    n = record_len_at(rd, 0);
    if (n == 0 || n > IPC_RECORD_MAX) {
        sb_printf(err, "ipc: record length %lu out of range (1..%d)", (unsigned long) n, IPC_RECORD_MAX);
        errno = EPROTO;
        return -1;
    }
    total = 4 + (size_t) n;
    if (have < total)
        return 0;
    if (ipc_parse(r, rd->buf.data + 4, n, err) < 0)
        return -1;
    /* A waiting descriptor belongs to the last record begun: this one if nothing follows it. */
    if (rd->nfds > 0 && total == have) {
        fd = rd->fds[0];
        rd->nfds = 0;
        rd->fds[0] = -1;
    }
    memmove(rd->buf.data, rd->buf.data + total, have - total);
    rd->buf.len = have - total;
    rd->buf.data[rd->buf.len] = '\0';
    if (recv_fd)
        *recv_fd = fd;
    else if (fd >= 0)
        close(fd);
    return 1;
}

int ipc_reader_dispatch(struct ipc_reader *rd, int sock, ipc_record_fn handle, void *ctx, struct strbuf *err)
{
    int     filled = ipc_reader_fill(rd, sock, err);
    struct ipc_record r;
    int     fd;

    if (filled < 0)
        return -1;
    for (;;) {
        int     got = ipc_reader_next(rd, &r, &fd, err);

        if (got <= 0) {
            ipc_free(&r);
            if (got < 0)
                return -1;
            break;
        }
        got = handle(ctx, &r, fd);
        ipc_free(&r);
        if (got != 0)
            return -1;
    }
    if (filled > 0)
        return 1;
    if (sb_len(&rd->buf) > 0) {
        sb_puts(err, "connection closed in the middle of a record");
        errno = EPROTO;
        return -1;
    }
    return 0;
}
