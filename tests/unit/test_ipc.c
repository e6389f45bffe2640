/*
 * test_ipc - lib/ipc.c over socketpairs and a real listening socket: record
 * building and attribute access, strict parsing (names, values, type line,
 * lengths), blocking send/recv round trips, descriptor passing (a pipe's read
 * end, read through), extra descriptors closed, many records in one read, a
 * record split byte by byte, oversize lengths, EOF in the middle of a record,
 * timeouts, ipc_connect success, missing socket and overlong path.
 */
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "ipc.h"
#include "mem.h"
#include "strbuf.h"

/* pair - a connected UNIX stream socketpair, [0] non-blocking for the reader tests */
static void pair(int sv[2])
{
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
}

/* write_all - raw bytes onto a socket */
static void write_all(int fd, const void *data, size_t len)
{
    assert_int_equal(write(fd, data, len), (ssize_t) len);
}

/* raw_record - length prefix + body bytes, as a hostile peer might send them */
static void raw_record(struct strbuf *out, const void *body, size_t len)
{
    unsigned char h[4] = {(unsigned char) (len >> 24), (unsigned char) (len >> 16),
                          (unsigned char) (len >> 8), (unsigned char) len};

    sb_append(out, h, 4);
    sb_append(out, body, len);
}

/* open_fds - count of open descriptors, to prove nothing leaks */
static int open_fds(void)
{
    int     n = 0;

    for (int fd = 0; fd < 1024; fd++)
        if (fcntl(fd, F_GETFD) >= 0)
            n++;
    return n;
}

static void test_build_and_get(void **state)
{
    struct ipc_record r;
    struct strbuf v = STRBUF_INIT;
    struct strbuf n = STRBUF_INIT;
    long long x;
    size_t  pos = 0;
    char   *big;

    (void) state;
    ipc_init(&r, "deliver");
    assert_string_equal(ipc_type(&r), "deliver");
    assert_int_equal(ipc_put(&r, "queue_id", "0123456789ABCDEF01"), 0);
    assert_int_equal(ipc_put(&r, "sender", ""), 0);
    assert_int_equal(ipc_put_int(&r, "offset", -42), 0);
    assert_int_equal(ipc_put_int(&r, "big", 9223372036854775807LL), 0);
    assert_int_equal(ipc_put(&r, "rcpt", "a@x"), 0);
    assert_int_equal(ipc_put(&r, "rcpt", "b@x"), 0);
    assert_int_equal(ipc_put(&r, "text", "tabs\tand 8bit \xc3\xa9 = sign"), 0);
    /* Refused: CR/LF in values, bad names; the record is unchanged. */
    size_t  before = sb_len(&r.data);

    assert_int_equal(ipc_put(&r, "x", "a\nrcpt=evil"), -1);
    assert_int_equal(ipc_put(&r, "x", "a\rb"), -1);
    assert_int_equal(ipc_put(&r, "Bad", "v"), -1);
    assert_int_equal(ipc_put(&r, "a=b", "v"), -1);
    assert_int_equal(ipc_put(&r, "", "v"), -1);
    assert_int_equal(sb_len(&r.data), before);
    /* Too big for a record. */
    big = xmalloc(IPC_RECORD_MAX + 1);
    memset(big, 'a', IPC_RECORD_MAX);
    big[IPC_RECORD_MAX] = '\0';
    assert_int_equal(ipc_put(&r, "big2", big), -1);
    big[IPC_RECORD_MAX - 300] = '\0';
    assert_int_equal(ipc_put(&r, "big2", big), 0);
    assert_int_equal(ipc_put(&r, "more", big + IPC_RECORD_MAX - 600), -1);
    free(big);

    assert_true(ipc_get(&r, "rcpt", &v));
    assert_string_equal(sb_str(&v), "a@x");                 /* the first one */
    assert_true(ipc_get(&r, "sender", &v));
    assert_string_equal(sb_str(&v), "");
    assert_false(ipc_get(&r, "nothere", &v));
    assert_false(ipc_get(&r, "rcp", &v));                   /* no prefix matches */
    assert_true(ipc_get_int(&r, "offset", -100, 100, &x));
    assert_int_equal(x, -42);
    assert_false(ipc_get_int(&r, "offset", 0, 100, &x));    /* out of range */
    assert_true(ipc_get_int(&r, "big", 0, 9223372036854775807LL, &x));
    assert_false(ipc_get_int(&r, "sender", 0, 10, &x));    /* empty */
    assert_false(ipc_get_int(&r, "rcpt", 0, 10, &x));

    assert_true(ipc_next(&r, &pos, &n, &v));
    assert_string_equal(sb_str(&n), "type");
    assert_string_equal(sb_str(&v), "deliver");
    assert_true(ipc_next(&r, &pos, &n, &v));
    assert_string_equal(sb_str(&n), "queue_id");
    int     count = 2;

    while (ipc_next(&r, &pos, &n, &v))
        count++;
    assert_int_equal(count, 9);
    ipc_free(&r);
    sb_free(&n);
    sb_free(&v);
}

static void test_get_int_strict(void **state)
{
    const char *bad[] = {"", " 1", "1 ", "+1", "0x10", "1e3", "-", "--1", "99999999999999999999"};
    struct ipc_record r;
    long long x;

    (void) state;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        ipc_init(&r, "t");
        assert_int_equal(ipc_put(&r, "n", bad[i]), 0);
        if (ipc_get_int(&r, "n", -1000000, 1000000, &x))
            fail_msg("\"%s\" accepted as a number", bad[i]);
        ipc_free(&r);
    }
    ipc_init(&r, "t");
    ipc_put(&r, "n", "007");
    assert_true(ipc_get_int(&r, "n", 0, 10, &x));
    assert_int_equal(x, 7);
    ipc_free(&r);
}

static void test_parse(void **state)
{
    struct {
        const char *data;
        size_t  len;
        int     rc;
    } cases[] = {
        {"type=new\nqueue_id=X\n", 20, 0},
        {"type=new\n", 9, 0},
        {"type=a-b_c9\nx=\n", 15, 0},
        {"type=new\nx=a=b\n", 15, 0},           /* '=' inside a value is fine */
        {"", 0, -1},                            /* empty record */
        {"queue_id=X\ntype=new\n", 20, -1},     /* type not first */
        {"type=\n", 6, -1},                     /* empty type */
        {"type=New\n", 9, -1},
        {"type=a b\n", 9, -1},
        {"type=new", 8, -1},                    /* no final LF */
        {"type=new\nx\n", 11, -1},              /* no '=' */
        {"type=new\n=v\n", 12, -1},             /* empty name */
        {"type=new\nX=v\n", 13, -1},            /* upper case name */
        {"type=new\nx-y=v\n", 15, -1},
        {"type=new\nx=a\rb\n", 15, -1},         /* CR */
        {"type=new\nx=a\0b\n", 15, -1},         /* NUL */
        {"type=new\n\n", 10, -1},               /* empty line */
    };
    struct strbuf err = STRBUF_INIT;
    struct ipc_record r;

    (void) state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        sb_reset(&err);
        int     rc = ipc_parse(&r, cases[i].data, cases[i].len, &err);

        if (rc != cases[i].rc)
            fail_msg("case %zu: rc %d (%s)", i, rc, sb_str(&err));
        if (rc < 0) {
            assert_true(sb_len(&err) > 0);
            assert_int_equal(errno, EPROTO);
        }
        ipc_free(&r);                           /* valid on both outcomes */
    }
    /* A long name is refused; the limit is generous but exists. */
    {
        struct strbuf d = STRBUF_INIT;

        sb_puts(&d, "type=t\n");
        for (int i = 0; i < 100; i++)
            sb_putc(&d, 'a');
        sb_puts(&d, "=v\n");
        assert_int_equal(ipc_parse(&r, d.data, d.len, &err), -1);
        ipc_free(&r);
        sb_free(&d);
    }
    /* A type that ipc_type() cannot hold is refused at parse. */
    {
        struct strbuf d = STRBUF_INIT;

        sb_puts(&d, "type=");
        for (int i = 0; i < 65; i++)
            sb_putc(&d, 'a');
        sb_puts(&d, "\n");
        assert_int_equal(ipc_parse(&r, d.data, d.len, &err), -1);
        ipc_free(&r);
        sb_free(&d);
    }
    /* ipc_type() of a record without a type line. */
    r.data = (struct strbuf) STRBUF_INIT;
    assert_string_equal(ipc_type(&r), "");
    sb_puts(&r.data, "x=1\n");
    assert_string_equal(ipc_type(&r), "");
    ipc_free(&r);
    sb_free(&err);
}

static void test_send_recv(void **state)
{
    struct strbuf err = STRBUF_INIT;
    struct ipc_record r, back;
    struct strbuf v = STRBUF_INIT;
    int     sv[2];
    int     fd;

    (void) state;
    pair(sv);
    ipc_init(&r, "new");
    ipc_put(&r, "queue_id", "0123456789ABCDEF01");
    assert_int_equal(ipc_send(sv[0], &r, -1, 1000, &err), 0);
    assert_int_equal(ipc_send(sv[0], &r, -1, 1000, &err), 0);
    assert_int_equal(ipc_recv(sv[1], &back, &fd, 1000, &err), 0);
    assert_int_equal(fd, -1);
    assert_string_equal(ipc_type(&back), "new");
    assert_true(ipc_get(&back, "queue_id", &v));
    assert_string_equal(sb_str(&v), "0123456789ABCDEF01");
    assert_memory_equal(back.data.data, r.data.data, r.data.len);
    ipc_free(&back);
    /* The second record was not swallowed by the first read. */
    assert_int_equal(ipc_recv(sv[1], &back, NULL, 1000, &err), 0);
    assert_string_equal(ipc_type(&back), "new");
    ipc_free(&back);

    /* A large record crosses the socket buffer: partial writes and reads. */
    {
        struct ipc_record big;
        char   *val = xmalloc(IPC_RECORD_MAX - 100);
        pid_t   pid;

        memset(val, 'v', IPC_RECORD_MAX - 101);
        val[IPC_RECORD_MAX - 101] = '\0';
        ipc_init(&big, "big");
        assert_int_equal(ipc_put(&big, "value", val), 0);
        pid = fork();
        if (pid == 0) {
            _exit(ipc_send(sv[0], &big, -1, 5000, &err) == 0 ? 0 : 1);
        }
        assert_int_equal(ipc_recv(sv[1], &back, NULL, 5000, &err), 0);
        assert_true(ipc_get(&back, "value", &v));
        assert_int_equal(sb_len(&v), IPC_RECORD_MAX - 101);
        ipc_free(&back);
        ipc_free(&big);
        free(val);
        int     status;

        waitpid(pid, &status, 0);
        assert_int_equal(WEXITSTATUS(status), 0);
    }
    ipc_free(&r);
    close(sv[0]);
    close(sv[1]);
    sb_free(&v);
    sb_free(&err);
}

static void test_fd_passing(void **state)
{
    struct strbuf err = STRBUF_INIT;
    struct ipc_record r, back;
    int     sv[2];
    int     p[2];
    int     fd;
    char    buf[32];
    int     before = open_fds();

    (void) state;
    pair(sv);
    assert_int_equal(pipe(p), 0);
    write_all(p[1], "through the pipe", 16);
    close(p[1]);
    ipc_init(&r, "deliver");
    ipc_put(&r, "offset", "0");
    assert_int_equal(ipc_send(sv[0], &r, p[0], 1000, &err), 0);
    close(p[0]);                                /* the receiver has its own copy */
    assert_int_equal(ipc_recv(sv[1], &back, &fd, 1000, &err), 0);
    assert_true(fd >= 0);
    assert_true(fcntl(fd, F_GETFD) & FD_CLOEXEC);
    assert_int_equal(read(fd, buf, sizeof(buf)), 16);
    assert_memory_equal(buf, "through the pipe", 16);
    close(fd);
    ipc_free(&back);

    /* recv_fd NULL: a passed descriptor is closed, not leaked. */
    assert_int_equal(pipe(p), 0);
    assert_int_equal(ipc_send(sv[0], &r, p[0], 1000, &err), 0);
    close(p[0]);
    close(p[1]);
    assert_int_equal(ipc_recv(sv[1], &back, NULL, 1000, &err), 0);
    ipc_free(&back);

    /* A hostile peer sends three descriptors with one record: one kept, two closed. */
    {
        struct strbuf wire = STRBUF_INIT;
        int     three[3] = {0, 1, 2};
        union {
            struct cmsghdr align;
            char    buf[CMSG_SPACE(sizeof(three))];
        } control;
        struct iovec iov;
        struct msghdr msg = {0};
        struct cmsghdr *c;

        ipc_encode(&r, &wire);
        iov.iov_base = wire.data;
        iov.iov_len = wire.len;
        msg.msg_iov = &iov;
        msg.msg_iovlen = 1;
        msg.msg_control = control.buf;
        msg.msg_controllen = sizeof(control.buf);
        c = CMSG_FIRSTHDR(&msg);
        c->cmsg_level = SOL_SOCKET;
        c->cmsg_type = SCM_RIGHTS;
        c->cmsg_len = CMSG_LEN(sizeof(three));
        memcpy(CMSG_DATA(c), three, sizeof(three));
        assert_int_equal(sendmsg(sv[0], &msg, 0), (ssize_t) wire.len);
        assert_int_equal(ipc_recv(sv[1], &back, &fd, 1000, &err), 0);
        assert_true(fd >= 3);
        close(fd);
        ipc_free(&back);
        sb_free(&wire);
    }
    ipc_free(&r);
    close(sv[0]);
    close(sv[1]);
    assert_int_equal(open_fds(), before);
    sb_free(&err);
}

static void test_recv_errors(void **state)
{
    struct strbuf err = STRBUF_INIT;
    struct strbuf wire = STRBUF_INIT;
    struct ipc_record r;
    int     sv[2];

    (void) state;
    /* Timeout with nothing sent. */
    pair(sv);
    assert_int_equal(ipc_recv(sv[1], &r, NULL, 50, &err), -1);
    assert_int_equal(errno, ETIMEDOUT);
    assert_non_null(strstr(sb_str(&err), "timed out"));
    ipc_free(&r);
    /* Timeout in the middle of a record. */
    raw_record(&wire, "type=x\n", 7);
    write_all(sv[0], wire.data, 6);
    sb_reset(&err);
    assert_int_equal(ipc_recv(sv[1], &r, NULL, 50, &err), -1);
    assert_int_equal(errno, ETIMEDOUT);
    ipc_free(&r);
    close(sv[0]);
    close(sv[1]);
    /* EOF in the middle of a record. */
    pair(sv);
    write_all(sv[0], wire.data, 6);
    close(sv[0]);
    sb_reset(&err);
    assert_int_equal(ipc_recv(sv[1], &r, NULL, 1000, &err), -1);
    assert_int_equal(errno, EPROTO);
    assert_non_null(strstr(sb_str(&err), "middle"));
    ipc_free(&r);
    close(sv[1]);

    /* Orderly EOF between records: errno 0. */
    pair(sv);
    close(sv[0]);
    sb_reset(&err);
    assert_int_equal(ipc_recv(sv[1], &r, NULL, 1000, &err), -1);
    assert_int_equal(errno, 0);
    assert_non_null(strstr(sb_str(&err), "closed"));
    ipc_free(&r);
    close(sv[1]);

    /* Oversize and zero lengths are refused before any allocation. */
    {
        const unsigned char lens[][4] = {{0xff, 0xff, 0xff, 0xff}, {0, 0x10, 0, 1}, {0, 0, 0, 0}};

        for (size_t i = 0; i < 3; i++) {
            pair(sv);
            write_all(sv[0], lens[i], 4);
            sb_reset(&err);
            assert_int_equal(ipc_recv(sv[1], &r, NULL, 1000, &err), -1);
            assert_int_equal(errno, EPROTO);
            assert_non_null(strstr(sb_str(&err), "out of range"));
            ipc_free(&r);
            close(sv[0]);
            close(sv[1]);
        }
    }
    /* A malformed body. */
    pair(sv);
    sb_reset(&wire);
    raw_record(&wire, "type=x\nBAD=1\n", 13);
    write_all(sv[0], wire.data, wire.len);
    assert_int_equal(ipc_recv(sv[1], &r, NULL, 1000, &err), -1);
    assert_int_equal(errno, EPROTO);
    ipc_free(&r);
    close(sv[0]);
    close(sv[1]);

    /* Sending to a closed peer is an error, not SIGPIPE. */
    pair(sv);
    close(sv[1]);
    ipc_init(&r, "x");
    assert_int_equal(ipc_send(sv[0], &r, -1, 1000, &err), -1);
    ipc_free(&r);
    close(sv[0]);

    /* Send timeout: the peer never reads. */
    pair(sv);
    {
        char   *val = xmalloc(IPC_RECORD_MAX - 100);
        int     sent = 0;

        memset(val, 'v', IPC_RECORD_MAX - 101);
        val[IPC_RECORD_MAX - 101] = '\0';
        ipc_init(&r, "x");
        ipc_put(&r, "v", val);
        sb_reset(&err);
        for (int i = 0; i < 20 && sent == 0; i++)
            if (ipc_send(sv[0], &r, -1, 50, &err) < 0)
                sent = -1;
        assert_int_equal(sent, -1);
        assert_int_equal(errno, ETIMEDOUT);
        ipc_free(&r);
        free(val);
    }
    close(sv[0]);
    close(sv[1]);
    sb_free(&wire);
    sb_free(&err);
}

/* reader_drain - fill once and take every complete record; returns how many */
static int reader_drain(struct ipc_reader *rd, int sock, struct ipc_record *out, int max, int *fds)
{
    struct strbuf err = STRBUF_INIT;
    int     n = 0;
    int     rc;

    assert_int_equal(ipc_reader_fill(rd, sock, &err), 1);
    while (n < max && (rc = ipc_reader_next(rd, &out[n], &fds[n], &err)) == 1)
        n++;
    if (n < max) {
        struct ipc_record extra;

        assert_int_equal(ipc_reader_next(rd, &extra, NULL, &err), 0);
        ipc_free(&extra);
    }
    sb_free(&err);
    return n;
}

static void test_reader_many_in_one_read(void **state)
{
    struct strbuf wire = STRBUF_INIT;
    struct strbuf v = STRBUF_INIT;
    struct ipc_reader rd;
    struct ipc_record recs[100];
    int     fds[100];
    int     sv[2];

    (void) state;
    pair(sv);
    for (int i = 0; i < 100; i++) {
        struct ipc_record r;

        ipc_init(&r, "new");
        ipc_put_int(&r, "n", i);
        ipc_encode(&r, &wire);                  /* appends: one buffer, 100 records */
        ipc_free(&r);
    }
    write_all(sv[0], wire.data, wire.len);
    ipc_reader_init(&rd);
    assert_int_equal(reader_drain(&rd, sv[1], recs, 100, fds), 100);
    for (int i = 0; i < 100; i++) {
        long long n;

        assert_string_equal(ipc_type(&recs[i]), "new");
        assert_true(ipc_get_int(&recs[i], "n", 0, 1000, &n));
        assert_int_equal(n, i);
        assert_int_equal(fds[i], -1);
        ipc_free(&recs[i]);
    }
    /* Nothing more: fill says "nothing read" (EAGAIN) and next says "need more". */
    assert_int_equal(reader_drain(&rd, sv[1], recs, 1, fds), 0);
    /* EOF. */
    close(sv[0]);
    {
        struct strbuf err = STRBUF_INIT;

        assert_int_equal(ipc_reader_fill(&rd, sv[1], &err), 0);
        sb_free(&err);
    }
    ipc_reader_free(&rd);
    close(sv[1]);
    sb_free(&v);
    sb_free(&wire);
}

static void test_reader_byte_by_byte(void **state)
{
    struct strbuf wire = STRBUF_INIT;
    struct strbuf err = STRBUF_INIT;
    struct ipc_reader rd;
    struct ipc_record r;
    int     sv[2];
    int     got = 0;

    (void) state;
    pair(sv);
    for (int i = 0; i < 3; i++) {
        ipc_init(&r, "result");
        ipc_put(&r, "status", "ok");
        ipc_put(&r, "reason", "delivered to maildir");
        ipc_encode(&r, &wire);
        ipc_free(&r);
    }
    ipc_reader_init(&rd);
    for (size_t i = 0; i < wire.len; i++) {
        int     rc;

        write_all(sv[0], wire.data + i, 1);
        assert_int_equal(ipc_reader_fill(&rd, sv[1], &err), 1);
        while ((rc = ipc_reader_next(&rd, &r, NULL, &err)) == 1) {
            struct strbuf v = STRBUF_INIT;

            got++;
            assert_true(ipc_get(&r, "reason", &v));
            assert_string_equal(sb_str(&v), "delivered to maildir");
            sb_free(&v);
            ipc_free(&r);
        }
        assert_int_equal(rc, 0);
        ipc_free(&r);
        /* A record is handed out exactly when its last byte has arrived. */
        assert_int_equal(got, (int) ((i + 1) / (wire.len / 3)));
    }
    assert_int_equal(got, 3);
    ipc_reader_free(&rd);
    close(sv[0]);
    close(sv[1]);
    sb_free(&wire);
    sb_free(&err);
}

static void test_reader_bad_data(void **state)
{
    struct {
        const char *body;
        size_t  len;
        uint32_t fake_len;                      /* 0: the body's own length */
    } cases[] = {
        {"", 0, 0xffffffffu},
        {"", 0, IPC_RECORD_MAX + 1},
        {"", 0, 0},                             /* zero length */
        {"type=x\nNope=1\n", 14, 0},
        {"x=1\n", 4, 0},
        {"type=x\nv=a\rb\n", 13, 0},
    };
    struct strbuf err = STRBUF_INIT;

    (void) state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct strbuf wire = STRBUF_INIT;
        struct ipc_reader rd;
        struct ipc_record r;
        int     sv[2];
        uint32_t len = cases[i].fake_len ? cases[i].fake_len : (uint32_t) cases[i].len;
        unsigned char h[4] = {(unsigned char) (len >> 24), (unsigned char) (len >> 16),
                              (unsigned char) (len >> 8), (unsigned char) len};

        pair(sv);
        /* A good record first: it is handed out before the bad one is noticed. */
        raw_record(&wire, "type=ok\n", 8);
        sb_append(&wire, h, 4);
        sb_append(&wire, cases[i].body, cases[i].len);
        write_all(sv[0], wire.data, wire.len);
        ipc_reader_init(&rd);
        assert_int_equal(ipc_reader_fill(&rd, sv[1], &err), 1);
        assert_int_equal(ipc_reader_next(&rd, &r, NULL, &err), 1);
        assert_string_equal(ipc_type(&r), "ok");
        ipc_free(&r);
        sb_reset(&err);
        if (ipc_reader_next(&rd, &r, NULL, &err) != -1)
            fail_msg("case %zu accepted", i);
        assert_true(sb_len(&err) > 0);
        ipc_free(&r);
        ipc_reader_free(&rd);
        close(sv[0]);
        close(sv[1]);
        sb_free(&wire);
    }
    sb_free(&err);
}

static void test_reader_eof_mid_record(void **state)
{
    struct strbuf wire = STRBUF_INIT;
    struct strbuf err = STRBUF_INIT;
    struct ipc_reader rd;
    struct ipc_record r;
    int     sv[2];

    (void) state;
    pair(sv);
    raw_record(&wire, "type=x\nlong=value\n", 18);
    write_all(sv[0], wire.data, 10);
    close(sv[0]);
    ipc_reader_init(&rd);
    assert_int_equal(ipc_reader_fill(&rd, sv[1], &err), 1);
    assert_int_equal(ipc_reader_next(&rd, &r, NULL, &err), 0);
    ipc_free(&r);
    /* EOF with a partial record buffered: the caller sees 0 and drops the peer. */
    assert_int_equal(ipc_reader_fill(&rd, sv[1], &err), 0);
    assert_true(sb_len(&rd.buf) > 0);
    ipc_reader_free(&rd);
    close(sv[1]);
    sb_free(&wire);
    sb_free(&err);
}

/* collect - a dispatch handler: types into ctx, one comma each; "stop" asks for the drop */
static int collect(void *ctx, const struct ipc_record *r, int fd)
{
    if (fd >= 0)
        close(fd);
    sb_puts(ctx, ipc_type(r));
    sb_putc(ctx, ',');
    return strcmp(ipc_type(r), "stop") == 0;
}

/* encode_type - an empty record of type onto wire */
static void encode_type(struct strbuf *wire, const char *type)
{
    struct ipc_record r;

    ipc_init(&r, type);
    ipc_encode(&r, wire);
    ipc_free(&r);
}

static void test_reader_dispatch(void **state)
{
    struct strbuf wire = STRBUF_INIT, seen = STRBUF_INIT, err = STRBUF_INIT;
    struct ipc_reader rd;
    int     sv[2];

    (void) state;
    /* whole records handled, a partial one kept; then a clean close between records */
    pair(sv);
    assert_int_equal(fcntl(sv[1], F_SETFL, O_NONBLOCK), 0);
    encode_type(&wire, "a");
    encode_type(&wire, "b");
    encode_type(&wire, "c");
    ipc_reader_init(&rd);
    write_all(sv[0], wire.data, wire.len - 3);
    assert_int_equal(ipc_reader_dispatch(&rd, sv[1], collect, &seen, &err), 1);
    assert_string_equal(sb_str(&seen), "a,b,");
    write_all(sv[0], wire.data + wire.len - 3, 3);
    close(sv[0]);
    assert_int_equal(ipc_reader_dispatch(&rd, sv[1], collect, &seen, &err), 1);
    assert_int_equal(ipc_reader_dispatch(&rd, sv[1], collect, &seen, &err), 0);
    assert_string_equal(sb_str(&seen), "a,b,c,");
    assert_int_equal(sb_len(&err), 0);
    ipc_reader_free(&rd);
    close(sv[1]);

    /* the handler asks for the drop: -1, nothing in err, the records after it not handled */
    pair(sv);
    assert_int_equal(fcntl(sv[1], F_SETFL, O_NONBLOCK), 0);
    sb_reset(&wire), sb_reset(&seen);
    encode_type(&wire, "stop");
    encode_type(&wire, "after");
    write_all(sv[0], wire.data, wire.len);
    ipc_reader_init(&rd);
    assert_int_equal(ipc_reader_dispatch(&rd, sv[1], collect, &seen, &err), -1);
    assert_string_equal(sb_str(&seen), "stop,");
    assert_int_equal(sb_len(&err), 0);
    ipc_reader_free(&rd);

    /* a close in the middle of a record: -1 with the reason, EPROTO */
    close(sv[1]);
    pair(sv);
    assert_int_equal(fcntl(sv[1], F_SETFL, O_NONBLOCK), 0);
    write_all(sv[0], wire.data, 5);
    close(sv[0]);
    ipc_reader_init(&rd);
    assert_int_equal(ipc_reader_dispatch(&rd, sv[1], collect, &seen, &err), 1);
    errno = 0;
    assert_int_equal(ipc_reader_dispatch(&rd, sv[1], collect, &seen, &err), -1);
    assert_int_equal(errno, EPROTO);
    assert_non_null(strstr(sb_str(&err), "middle of a record"));
    ipc_reader_free(&rd);
    close(sv[1]);
    sb_free(&wire), sb_free(&seen), sb_free(&err);
}

static void test_reader_fds(void **state)
{
    struct strbuf err = STRBUF_INIT;
    struct strbuf wire = STRBUF_INIT;
    struct ipc_reader rd;
    struct ipc_record recs[8];
    int     fds[8];
    int     sv[2];
    int     p[2];
    int     before = open_fds();
    char    buf[16];

    (void) state;
    pair(sv);
    assert_int_equal(pipe(p), 0);
    write_all(p[1], "data", 4);
    close(p[1]);
    /* plain, with fd, plain, plain-with-fd: the fds go to the right records. */
    for (int i = 0; i < 4; i++) {
        struct ipc_record r;

        ipc_init(&r, i % 2 ? "deliver" : "new");
        ipc_put_int(&r, "n", i);
        assert_int_equal(ipc_send(sv[0], &r, i % 2 ? p[0] : -1, 1000, &err), 0);
        ipc_free(&r);
    }
    close(p[0]);
    ipc_reader_init(&rd);
    int     n = 0;

    for (int tries = 0; tries < 20 && n < 4; tries++) {
        int     rc;

        assert_int_equal(ipc_reader_fill(&rd, sv[1], &err), 1);
        while (n < 4 && (rc = ipc_reader_next(&rd, &recs[n], &fds[n], &err)) == 1)
            n++;
        if (n < 4)
            ipc_free(&recs[n]);
    }
    assert_int_equal(n, 4);
    for (int i = 0; i < 4; i++) {
        long long v;

        assert_true(ipc_get_int(&recs[i], "n", 0, 10, &v));
        assert_int_equal(v, i);
        if (i % 2) {
            assert_true(fds[i] >= 0);
            assert_true(fcntl(fds[i], F_GETFD) & FD_CLOEXEC);
        } else {
            assert_int_equal(fds[i], -1);
        }
        ipc_free(&recs[i]);
    }
    assert_int_equal(read(fds[1], buf, sizeof(buf)), 4);
    close(fds[1]);
    close(fds[3]);

    /* A descriptor arriving in the middle of a record is refused and closed. */
    {
        int     one[1];
        union {
            struct cmsghdr align;
            char    cbuf[CMSG_SPACE(sizeof(int))];
        } control;
        struct iovec iov;
        struct msghdr msg = {0};
        struct cmsghdr *c;
        struct ipc_record r;

        assert_int_equal(pipe(p), 0);
        one[0] = p[0];
        raw_record(&wire, "type=x\nvalue=abc\n", 17);
        write_all(sv[0], wire.data, 8);        /* start of the record, no fd */
        assert_int_equal(ipc_reader_fill(&rd, sv[1], &err), 1);
        assert_int_equal(ipc_reader_next(&rd, &r, NULL, &err), 0);
        ipc_free(&r);
        iov.iov_base = wire.data + 8;           /* the rest carries a descriptor */
        iov.iov_len = wire.len - 8;
        msg.msg_iov = &iov;
        msg.msg_iovlen = 1;
        msg.msg_control = control.cbuf;
        msg.msg_controllen = sizeof(control.cbuf);
        c = CMSG_FIRSTHDR(&msg);
        c->cmsg_level = SOL_SOCKET;
        c->cmsg_type = SCM_RIGHTS;
        c->cmsg_len = CMSG_LEN(sizeof(int));
        memcpy(CMSG_DATA(c), one, sizeof(int));
        assert_int_equal(sendmsg(sv[0], &msg, 0), (ssize_t) iov.iov_len);
        close(p[0]);
        close(p[1]);
        sb_reset(&err);
        assert_int_equal(ipc_reader_fill(&rd, sv[1], &err), -1);
        assert_non_null(strstr(sb_str(&err), "out of place"));
    }
    ipc_reader_free(&rd);
    close(sv[0]);
    close(sv[1]);
    assert_int_equal(open_fds(), before);
    sb_free(&wire);
    sb_free(&err);
}

static void test_reader_fd_unclaimed(void **state)
{
    struct strbuf err = STRBUF_INIT;
    struct ipc_reader rd;
    struct ipc_record r;
    int     sv[2];
    int     p[2];
    int     before = open_fds();

    (void) state;
    pair(sv);
    assert_int_equal(pipe(p), 0);
    ipc_init(&r, "deliver");
    assert_int_equal(ipc_send(sv[0], &r, p[0], 1000, &err), 0);
    ipc_free(&r);
    close(p[0]);
    close(p[1]);
    ipc_reader_init(&rd);
    assert_int_equal(ipc_reader_fill(&rd, sv[1], &err), 1);
    /* recv_fd NULL closes it; a reader freed with an fd pending closes it too. */
    assert_int_equal(ipc_reader_next(&rd, &r, NULL, &err), 1);
    ipc_free(&r);
    assert_int_equal(pipe(p), 0);
    ipc_init(&r, "deliver");
    assert_int_equal(ipc_send(sv[0], &r, p[0], 1000, &err), 0);
    ipc_free(&r);
    close(p[0]);
    close(p[1]);
    assert_int_equal(ipc_reader_fill(&rd, sv[1], &err), 1);
    ipc_reader_free(&rd);
    close(sv[0]);
    close(sv[1]);
    assert_int_equal(open_fds(), before);
    sb_free(&err);
}

static void test_connect(void **state)
{
    struct strbuf err = STRBUF_INIT;
    char    dir[] = "/tmp/test_ipc.XXXXXX";
    char    path[128];
    struct sockaddr_un sun = {.sun_family = AF_UNIX};
    struct ipc_record r;
    int     lsock, csock, asock;
    char    longpath[200];

    (void) state;
    assert_non_null(mkdtemp(dir));
    snprintf(path, sizeof(path), "%s/qmgr", dir);
    /* Nothing listening yet. */
    assert_int_equal(ipc_connect(path, 200, &err), -1);
    assert_non_null(strstr(sb_str(&err), path));
    lsock = socket(AF_UNIX, SOCK_STREAM, 0);
    assert_true(strlen(path) < sizeof(sun.sun_path));
    memcpy(sun.sun_path, path, strlen(path) + 1);
    assert_int_equal(bind(lsock, (struct sockaddr *) &sun, sizeof(sun)), 0);
    assert_int_equal(listen(lsock, 5), 0);
    csock = ipc_connect(path, 1000, &err);
    assert_true(csock >= 0);
    assert_false(fcntl(csock, F_GETFL) & O_NONBLOCK);      /* back to blocking */
    assert_true(fcntl(csock, F_GETFD) & FD_CLOEXEC);
    asock = accept(lsock, NULL, NULL);
    ipc_init(&r, "new");
    assert_int_equal(ipc_send(csock, &r, -1, 1000, &err), 0);
    ipc_free(&r);
    assert_int_equal(ipc_recv(asock, &r, NULL, 1000, &err), 0);
    assert_string_equal(ipc_type(&r), "new");
    ipc_free(&r);
    close(asock);
    close(csock);
    close(lsock);
    /* Overlong and empty paths are refused, not truncated. */
    memset(longpath, 'a', sizeof(longpath) - 1);
    longpath[sizeof(longpath) - 1] = '\0';
    sb_reset(&err);
    assert_int_equal(ipc_connect(longpath, 100, &err), -1);
    assert_non_null(strstr(sb_str(&err), "longer than"));
    assert_int_equal(ipc_connect("", 100, &err), -1);
    unlink(path);
    rmdir(dir);
    sb_free(&err);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_build_and_get),
        cmocka_unit_test(test_get_int_strict),
        cmocka_unit_test(test_parse),
        cmocka_unit_test(test_send_recv),
        cmocka_unit_test(test_fd_passing),
        cmocka_unit_test(test_recv_errors),
        cmocka_unit_test(test_reader_many_in_one_read),
        cmocka_unit_test(test_reader_byte_by_byte),
        cmocka_unit_test(test_reader_bad_data),
        cmocka_unit_test(test_reader_eof_mid_record),
        cmocka_unit_test(test_reader_dispatch),
        cmocka_unit_test(test_reader_fds),
        cmocka_unit_test(test_reader_fd_unclaimed),
        cmocka_unit_test(test_connect),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
