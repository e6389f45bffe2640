/*
 * test_queue_file - lib/queue_file.c: round trips (every field, 0 and many
 * recipients, empty, large and binary messages), in-place status and schedule
 * updates, truncation at every interesting offset, flipped bytes, lying
 * offsets and lengths, refused envelope values (CR/LF injection, oversize),
 * forward-compatible unknown envelope names, queue ID generation and
 * validation, abort and failed commits leaving nothing behind. Also lib/crc32.c.
 */
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "crc32.h"
#include "mem.h"
#include "queue_file.h"
#include "strbuf.h"

/* Layout constants from the comment at the top of queue_file.c. */
#define HDR_ENV_LEN     12
#define HDR_NRCPT       16
#define HDR_STATUS_OFF  24
#define HDR_MSG_OFF     32
#define HDR_MSG_LEN     40
#define HDR_MSG_CRC     48
#define HDR_CRC         60
#define ENV_OFF         96
#define STATUS_SIZE     160

struct fixture {
    char    dir[64];
    int     dirfd;
};

/* setup - a temporary queue directory with incoming/ */
static int setup(void **state)
{
    struct fixture *f = xcalloc(1, sizeof(*f));

    snprintf(f->dir, sizeof(f->dir), "/tmp/test_queue_file.XXXXXX");
    if (mkdtemp(f->dir) == NULL)
        return -1;
    f->dirfd = open(f->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (f->dirfd < 0 || mkdirat(f->dirfd, "incoming", 0700) < 0)
        return -1;
    *state = f;
    return 0;
}

/* teardown - remove the queue directory and what is in incoming/ */
static int teardown(void **state)
{
    struct fixture *f = *state;
    int     fd = openat(f->dirfd, "incoming", O_RDONLY | O_DIRECTORY);
    DIR    *d = fdopendir(fd);
    struct dirent *e;

    while ((e = readdir(d)) != NULL)
        if (e->d_name[0] != '.')
            unlinkat(fd, e->d_name, 0);
    closedir(d);
    unlinkat(f->dirfd, "incoming", AT_REMOVEDIR);
    close(f->dirfd);
    rmdir(f->dir);
    free(f);
    return 0;
}

/* incoming_count - entries in incoming/ (the test of "nothing left behind") */
static int incoming_count(struct fixture *f)
{
    int     fd = openat(f->dirfd, "incoming", O_RDONLY | O_DIRECTORY);
    DIR    *d = fdopendir(fd);
    struct dirent *e;
    int     n = 0;

    while ((e = readdir(d)) != NULL)
        if (e->d_name[0] != '.')
            n++;
    closedir(d);
    return n;
}

/* sample_env - an envelope with every field set and n recipients (caller frees with free_env) */
static void sample_env(struct queue_envelope *env, size_t n)
{
    memset(env, 0, sizeof(*env));
    env->sender = xstrdup("sender@example.org");
    env->arrival = 1700000000;
    env->client_addr = xstrdup("192.0.2.1");
    env->client_name = xstrdup("mail.example.org");
    env->helo = xstrdup("mail.example.org");
    env->protocol = xstrdup("ESMTP");
    env->body_type = xstrdup("8BITMIME");
    env->envid = xstrdup("ENV123");
    env->ret = xstrdup("HDRS");
    env->smtputf8 = n % 2 == 1;
    env->nrcpt = n;
    env->rcpts = xcalloc(n ? n : 1, sizeof(*env->rcpts));
    for (size_t i = 0; i < n; i++) {
        struct strbuf a = STRBUF_INIT;

        sb_printf(&a, "user%zu@example.test", i);
        env->rcpts[i].address = sb_detach(&a);
        if (i % 2 == 0)
            env->rcpts[i].orcpt = xstrdup("rfc822;orig@example.test");
        if (i % 3 == 0)
            env->rcpts[i].notify = xstrdup("SUCCESS,FAILURE");
    }
}

/* write_queue_file - write env + message (in pieces of chunk bytes); the queue ID into env */
static void write_queue_file(struct fixture *f, struct queue_envelope *env, const void *msg,
                             size_t len, size_t chunk)
{
    struct strbuf err = STRBUF_INIT;
    struct queue_writer *w = queue_writer_create(f->dirfd, env, &err);
    const char *p = msg;

    assert_non_null(w);
    assert_true(queue_id_valid(env->queue_id));
    for (size_t done = 0; done < len;) {
        size_t  n = len - done < chunk ? len - done : chunk;

        assert_int_equal(queue_writer_write(w, p + done, n, &err), 0);
        done += n;
    }
    assert_int_equal(queue_writer_size(w), len);
    assert_int_equal(queue_writer_commit(w, &err), 0);
    sb_free(&err);
}

/* open_queued - open incoming/ID read-write */
static int open_queued(struct fixture *f, const char *id)
{
    char    path[64];
    int     fd;

    snprintf(path, sizeof(path), "incoming/%s", id);
    fd = openat(f->dirfd, path, O_RDWR | O_CLOEXEC);
    assert_true(fd >= 0);
    return fd;
}

/* read_message - the message bytes the file holds, through the offsets the reader reported */
static char *read_message(int fd, const struct queue_file *qf)
{
    char   *buf = xmalloc(qf->message_length + 1);

    assert_int_equal(pread(fd, buf, qf->message_length, (off_t) qf->message_offset),
                     (ssize_t) qf->message_length);
    return buf;
}

/* check_same_env - what was read equals what was written */
static void check_same_env(const struct queue_envelope *a, const struct queue_envelope *b)
{
    assert_string_equal(a->queue_id, b->queue_id);
    assert_string_equal(a->sender, b->sender);
    assert_int_equal(a->arrival, b->arrival);
#define SAME_OPT(x) do { if (a->x) assert_string_equal(a->x, b->x); else assert_null(b->x); } while (0)
    SAME_OPT(client_addr);
    SAME_OPT(client_name);
    SAME_OPT(helo);
    SAME_OPT(protocol);
    SAME_OPT(body_type);
    SAME_OPT(envid);
    SAME_OPT(ret);
    assert_int_equal(a->smtputf8, b->smtputf8);
    assert_int_equal(a->nrcpt, b->nrcpt);
    for (size_t i = 0; i < a->nrcpt; i++) {
        SAME_OPT(rcpts[i].orcpt);
        SAME_OPT(rcpts[i].notify);
        assert_string_equal(a->rcpts[i].address, b->rcpts[i].address);
        assert_int_equal(b->rcpts[i].state, QUEUE_RCPT_PENDING);
        assert_int_equal(b->rcpts[i].attempts, 0);
        assert_string_equal(b->rcpts[i].reason, "");
    }
#undef SAME_OPT
}

/* round_trip - write, read back, compare everything */
static void round_trip(struct fixture *f, struct queue_envelope *env, const char *msg, size_t len,
                       size_t chunk)
{
    struct strbuf err = STRBUF_INIT;
    struct queue_file qf;
    char   *back;
    int     fd;

    write_queue_file(f, env, msg, len, chunk);
    fd = open_queued(f, env->queue_id);
    if (queue_file_read(fd, &qf, &err) != 0)
        fail_msg("read: %s", sb_str(&err));
    check_same_env(env, &qf.env);
    assert_int_equal(qf.message_length, len);
    assert_int_equal(qf.attempts, 0);
    assert_int_equal(qf.next_attempt, 0);
    back = read_message(fd, &qf);
    assert_memory_equal(back, msg, len);
    free(back);
    queue_file_free(&qf);
    close(fd);
    sb_free(&err);
}

static void test_crc32(void **state)
{
    (void) state;
    assert_int_equal(crc32_update(0, "123456789", 9), 0xCBF43926u);
    assert_int_equal(crc32_update(0, "", 0), 0);
    /* Incremental equals one pass, across the 8-byte slicing boundary. */
    const char *text = "The quick brown fox jumps over the lazy dog";

    assert_int_equal(crc32_update(0, text, strlen(text)), 0x414FA339u);
    for (size_t cut = 0; cut <= strlen(text); cut++)
        assert_int_equal(crc32_update(crc32_update(0, text, cut), text + cut, strlen(text) - cut),
                         0x414FA339u);
}

static void test_round_trip_all_fields(void **state)
{
    struct fixture *f = *state;
    struct queue_envelope env;
    const char *msg = "Received: from x\n\tby y\nSubject: hi\n\nbody\n";

    sample_env(&env, 3);
    round_trip(f, &env, msg, strlen(msg), 7);
    assert_int_equal(incoming_count(f), 1);
    queue_envelope_free(&env);
}

static void test_round_trip_minimal(void **state)
{
    struct fixture *f = *state;
    struct queue_envelope env;
    struct queue_rcpt rc = {.address = (char *) "a@b.test"};

    /* Null sender, no optional fields, one recipient, empty message. */
    memset(&env, 0, sizeof(env));
    env.sender = (char *) "";
    env.rcpts = &rc;
    env.nrcpt = 1;
    round_trip(f, &env, "", 0, 1);
    assert_true(env.arrival > 1600000000);     /* filled in by the writer */
}

static void test_round_trip_no_recipients(void **state)
{
    struct fixture *f = *state;
    struct queue_envelope env;

    sample_env(&env, 0);
    round_trip(f, &env, "x\n", 2, 100);
    queue_envelope_free(&env);
}

static void test_round_trip_many_recipients(void **state)
{
    struct fixture *f = *state;
    struct queue_envelope env;

    sample_env(&env, 2000);
    round_trip(f, &env, "hello\n", 6, 3);
    queue_envelope_free(&env);
}

static void test_round_trip_large_binary(void **state)
{
    struct fixture *f = *state;
    struct queue_envelope env;
    size_t  len = 3 * 1024 * 1024 + 17;
    char   *msg = xmalloc(len);
    uint32_t x = 12345;

    for (size_t i = 0; i < len; i++) {
        x = x * 1103515245u + 12345u;
        msg[i] = (char) (x >> 16);              /* every byte value: NUL, CR, LF, 0xff... */
    }
    sample_env(&env, 2);
    /* Odd-sized pieces, then pieces bigger than the writer's buffer. */
    round_trip(f, &env, msg, len, 4093);
    round_trip(f, &env, msg, len, 200000);
    round_trip(f, &env, msg, len, len);
    queue_envelope_free(&env);
    free(msg);
}

static void test_update_rcpt(void **state)
{
    struct fixture *f = *state;
    struct strbuf err = STRBUF_INIT;
    struct queue_envelope env;
    struct queue_file qf, qf2;
    char    long_reason[400];
    int     fd;

    sample_env(&env, 3);
    write_queue_file(f, &env, "m\n", 2, 2);
    fd = open_queued(f, env.queue_id);
    assert_int_equal(queue_file_read(fd, &qf, &err), 0);
    assert_int_equal(queue_file_update_rcpt(fd, &qf, 1, QUEUE_RCPT_DEFERRED,
                                            "4.4.1 connect\r\nto host: refused", &err), 0);
    assert_int_equal(queue_file_update_rcpt(fd, &qf, 2, QUEUE_RCPT_DELIVERED, NULL, &err), 0);
    /* Longer than QUEUE_REASON_MAX, with a UTF-8 sequence straddling the cut. */
    memset(long_reason, 'x', sizeof(long_reason));
    memcpy(long_reason + QUEUE_REASON_MAX - 1, "\xc3\xa9", 2);
    long_reason[sizeof(long_reason) - 1] = '\0';
    assert_int_equal(queue_file_update_rcpt(fd, &qf, 0, QUEUE_RCPT_DEFERRED, long_reason, &err), 0);
    assert_int_equal(queue_file_update_rcpt(fd, &qf, 0, QUEUE_RCPT_BOUNCED, "5.1.1 unknown", &err), 0);
    /* Out of range index and bad state are refused. */
    assert_int_equal(queue_file_update_rcpt(fd, &qf, 3, QUEUE_RCPT_DELIVERED, NULL, &err), -1);
    assert_int_equal(queue_file_update_rcpt(fd, &qf, 0, (enum queue_rcpt_state) 9, NULL, &err), -1);
    assert_string_equal(qf.env.rcpts[1].reason, "4.4.1 connect  to host: refused");

    assert_int_equal(queue_file_read(fd, &qf2, &err), 0);
    assert_int_equal(qf2.env.rcpts[0].state, QUEUE_RCPT_BOUNCED);
    assert_int_equal(qf2.env.rcpts[0].attempts, 2);
    assert_string_equal(qf2.env.rcpts[0].reason, "5.1.1 unknown");
    assert_int_equal(qf2.env.rcpts[1].state, QUEUE_RCPT_DEFERRED);
    assert_int_equal(qf2.env.rcpts[1].attempts, 1);
    assert_string_equal(qf2.env.rcpts[1].reason, "4.4.1 connect  to host: refused");
    assert_true(qf2.env.rcpts[1].updated >= env.arrival);
    assert_int_equal(qf2.env.rcpts[2].state, QUEUE_RCPT_DELIVERED);
    assert_string_equal(qf2.env.rcpts[2].reason, "");
    queue_file_free(&qf2);

    /* The long reason was cut before the split UTF-8 sequence. */
    assert_int_equal(queue_file_update_rcpt(fd, &qf, 0, QUEUE_RCPT_DEFERRED, long_reason, &err), 0);
    assert_int_equal(queue_file_read(fd, &qf2, &err), 0);
    assert_int_equal(strlen(qf2.env.rcpts[0].reason), QUEUE_REASON_MAX - 1);
    assert_memory_equal(qf.env.rcpts[0].reason, qf2.env.rcpts[0].reason, QUEUE_REASON_MAX - 1);
    queue_file_free(&qf2);
    queue_file_free(&qf);
    close(fd);
    queue_envelope_free(&env);
    sb_free(&err);
}

static void test_update_schedule(void **state)
{
    struct fixture *f = *state;
    struct strbuf err = STRBUF_INIT;
    struct queue_envelope env;
    struct queue_file qf, qf2;
    int     fd;

    sample_env(&env, 1);
    write_queue_file(f, &env, "m\n", 2, 2);
    fd = open_queued(f, env.queue_id);
    assert_int_equal(queue_file_read(fd, &qf, &err), 0);
    assert_int_equal(queue_file_update_schedule(fd, &qf, 3, 1800000000, &err), 0);
    assert_int_equal(qf.attempts, 3);
    assert_int_equal(queue_file_read(fd, &qf2, &err), 0);
    assert_int_equal(qf2.attempts, 3);
    assert_int_equal(qf2.next_attempt, 1800000000);
    queue_file_free(&qf2);
    queue_file_free(&qf);
    close(fd);

    /* A read-only descriptor cannot be updated: an error, not a crash. */
    fd = open_queued(f, env.queue_id);
    assert_int_equal(queue_file_read(fd, &qf, &err), 0);
    close(fd);
    {
        char    path[64];

        snprintf(path, sizeof(path), "incoming/%s", env.queue_id);
        fd = openat(f->dirfd, path, O_RDONLY);
    }
    sb_reset(&err);
    assert_int_equal(queue_file_update_schedule(fd, &qf, 1, 1, &err), -1);
    assert_non_null(strstr(sb_str(&err), "schedule"));
    assert_int_equal(queue_file_update_rcpt(fd, &qf, 0, QUEUE_RCPT_DELIVERED, NULL, &err), -1);
    queue_file_free(&qf);
    close(fd);
    queue_envelope_free(&env);
    sb_free(&err);
}

/* test_flags - recipient and message flags survive in place, leave state and attempts alone */
static void test_flags(void **state)
{
    struct fixture *f = *state;
    struct strbuf err = STRBUF_INIT;
    struct queue_envelope env;
    struct queue_file qf, qf2;
    int     fd;

    sample_env(&env, 2);
    write_queue_file(f, &env, "m\n", 2, 2);
    fd = open_queued(f, env.queue_id);
    assert_int_equal(queue_file_read(fd, &qf, &err), 0);
    assert_int_equal(qf.flags, 0);
    assert_int_equal(qf.env.rcpts[1].flags, 0);
    assert_int_equal(queue_file_update_rcpt(fd, &qf, 1, QUEUE_RCPT_BOUNCED, "5.1.1 unknown", &err), 0);
    assert_int_equal(queue_file_update_rcpt_flags(fd, &qf, 1, QUEUE_RCPT_F_NOTIFIED, &err), 0);
    assert_int_equal(queue_file_update_rcpt_flags(fd, &qf, 2, QUEUE_RCPT_F_NOTIFIED, &err), -1);
    qf.flags = QUEUE_FLAG_DELAY_WARNED;
    assert_int_equal(queue_file_update_schedule(fd, &qf, 1, 1800000000, &err), 0);
    /* A later state change keeps the flag. */
    assert_int_equal(queue_file_update_rcpt(fd, &qf, 1, QUEUE_RCPT_BOUNCED, "5.1.1 still unknown", &err), 0);
    assert_int_equal(queue_file_read(fd, &qf2, &err), 0);
    assert_int_equal(qf2.flags, QUEUE_FLAG_DELAY_WARNED);
    assert_int_equal(qf2.next_attempt, 1800000000);
    assert_int_equal(qf2.env.rcpts[0].flags, 0);
    assert_int_equal(qf2.env.rcpts[1].flags, QUEUE_RCPT_F_NOTIFIED);
    assert_int_equal(qf2.env.rcpts[1].state, QUEUE_RCPT_BOUNCED);
    assert_int_equal(qf2.env.rcpts[1].attempts, 2);
    assert_string_equal(qf2.env.rcpts[1].reason, "5.1.1 still unknown");
    queue_file_free(&qf2);
    queue_file_free(&qf);
    close(fd);
    queue_envelope_free(&env);
    sb_free(&err);
}

/* file_bytes - the whole file incoming/ID */
static void file_bytes(struct fixture *f, const char *id, struct strbuf *out)
{
    int     fd = open_queued(f, id);
    struct stat st;

    assert_int_equal(fstat(fd, &st), 0);
    sb_reset(out);
    sb_append(out, "", 0);
    out->data = xrealloc(out->data, (size_t) st.st_size + 1);
    out->cap = (size_t) st.st_size + 1;
    assert_int_equal(pread(fd, out->data, (size_t) st.st_size, 0), st.st_size);
    out->len = (size_t) st.st_size;
    out->data[out->len] = '\0';
    close(fd);
}

/* read_bytes - queue_file_read() over a file holding exactly data; its result, errno in *err_no */
static int read_bytes(const void *data, size_t len, int *err_no, struct strbuf *err)
{
    char    path[] = "/tmp/test_queue_file_bytes.XXXXXX";
    int     fd = mkstemp(path);
    struct queue_file qf;
    int     rc;

    assert_true(fd >= 0);
    unlink(path);
    assert_int_equal(write(fd, data, len), (ssize_t) len);
    sb_reset(err);
    rc = queue_file_read(fd, &qf, err);
    *err_no = errno;
    if (rc == 0)
        queue_file_free(&qf);
    else
        assert_true(sb_len(err) > 0);
    close(fd);
    return rc;
}

/* put64le / put32le - patch the file image */
static void put32le(struct strbuf *sb, size_t off, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        sb->data[off + i] = (char) (v >> (8 * i));
}

static void put64le(struct strbuf *sb, size_t off, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        sb->data[off + i] = (char) (v >> (8 * i));
}

static uint32_t get32le(const struct strbuf *sb, size_t off)
{
    const unsigned char *p = (const unsigned char *) sb->data + off;

    return (uint32_t) p[0] | (uint32_t) p[1] << 8 | (uint32_t) p[2] << 16 | (uint32_t) p[3] << 24;
}

/* fix_header_crc - recompute the header CRC so that only the lie under test is seen */
static void fix_header_crc(struct strbuf *sb)
{
    uint32_t env_len = get32le(sb, HDR_ENV_LEN);
    uint32_t crc = crc32_update(0, sb->data, 60);

    if (ENV_OFF + (size_t) env_len <= sb_len(sb))
        crc = crc32_update(crc, sb->data + ENV_OFF, env_len);
    put32le(sb, HDR_CRC, crc);
}

static void test_truncation(void **state)
{
    struct fixture *f = *state;
    struct strbuf err = STRBUF_INIT;
    struct strbuf img = STRBUF_INIT;
    struct queue_envelope env;
    int     err_no;
    const char *msg = "Subject: t\n\nsome body text\n";

    sample_env(&env, 4);
    write_queue_file(f, &env, msg, strlen(msg), 5);
    file_bytes(f, env.queue_id, &img);
    assert_int_equal(read_bytes(img.data, img.len, &err_no, &err), 0);
    /* Every prefix of the file is refused: header, schedule, envelope, status, message. */
    for (size_t len = 0; len < img.len; len++) {
        if (read_bytes(img.data, len, &err_no, &err) != -1)
            fail_msg("truncated to %zu of %zu bytes was accepted", len, img.len);
        assert_int_equal(err_no, EBADMSG);
    }
    /* Trailing garbage is refused too. */
    sb_putc(&img, 'x');
    assert_int_equal(read_bytes(img.data, img.len, &err_no, &err), -1);
    assert_non_null(strstr(sb_str(&err), "truncated or overlong"));
    queue_envelope_free(&env);
    sb_free(&img);
    sb_free(&err);
}

static void test_flipped_bytes(void **state)
{
    struct fixture *f = *state;
    struct strbuf err = STRBUF_INIT;
    struct strbuf img = STRBUF_INIT;
    struct queue_envelope env;
    int     err_no;
    const char *msg = "Subject: t\n\nbody\n";

    sample_env(&env, 2);
    write_queue_file(f, &env, msg, strlen(msg), 100);
    file_bytes(f, env.queue_id, &img);
    /* Any single flipped bit anywhere (reserved bytes included) is detected. */
    for (size_t off = 0; off < img.len; off++) {
        for (int bit = 0; bit < 8; bit += 3) {
            img.data[off] ^= (char) (1 << bit);
            if (read_bytes(img.data, img.len, &err_no, &err) != -1)
                fail_msg("flipped bit %d at offset %zu was accepted", bit, off);
            assert_int_equal(err_no, EBADMSG);
            img.data[off] ^= (char) (1 << bit);
        }
    }
    /* Named failures for each part. */
    size_t  msg_off = img.len - strlen(msg);

    img.data[msg_off] ^= 1;
    read_bytes(img.data, img.len, &err_no, &err);
    assert_string_equal(sb_str(&err), "message CRC mismatch");
    img.data[msg_off] ^= 1;
    img.data[msg_off - 1] ^= 1;                 /* last status record */
    read_bytes(img.data, img.len, &err_no, &err);
    assert_non_null(strstr(sb_str(&err), "status record 1: CRC mismatch"));
    img.data[msg_off - 1] ^= 1;
    img.data[70] ^= 1;                          /* schedule */
    read_bytes(img.data, img.len, &err_no, &err);
    assert_string_equal(sb_str(&err), "schedule record CRC mismatch");
    img.data[70] ^= 1;
    img.data[ENV_OFF + 3] ^= 1;                 /* envelope */
    read_bytes(img.data, img.len, &err_no, &err);
    assert_string_equal(sb_str(&err), "header/envelope CRC mismatch");
    img.data[ENV_OFF + 3] ^= 1;
    assert_int_equal(read_bytes(img.data, img.len, &err_no, &err), 0);
    queue_envelope_free(&env);
    sb_free(&img);
    sb_free(&err);
}

static void test_lying_header(void **state)
{
    struct fixture *f = *state;
    struct strbuf err = STRBUF_INIT;
    struct strbuf img = STRBUF_INIT;
    struct strbuf bad = STRBUF_INIT;
    struct queue_envelope env;
    int     err_no;
    struct lie {
        size_t  off;
        int     width;
        uint64_t value;
    };
    const struct lie lies[] = {
        {HDR_ENV_LEN, 4, 0xffffffffu},
        {HDR_ENV_LEN, 4, 5 * 1024 * 1024},
        {HDR_ENV_LEN, 4, 0},
        {HDR_NRCPT, 4, 0xffffffffu},
        {HDR_NRCPT, 4, 3},
        {HDR_NRCPT, 4, 1},
        {HDR_STATUS_OFF, 8, UINT64_MAX},
        {HDR_STATUS_OFF, 8, 0},
        {HDR_MSG_OFF, 8, UINT64_MAX - 3},
        {HDR_MSG_OFF, 8, 1u << 30},
        {HDR_MSG_LEN, 8, UINT64_MAX},
        {HDR_MSG_LEN, 8, UINT64_MAX - 100},
        {HDR_MSG_LEN, 8, 0},
        {HDR_MSG_LEN, 8, 1u << 31},
        {8, 4, 64},                             /* envelope offset */
        {20, 4, 16},                            /* status record size */
        {4, 2, 2},                              /* version */
        {6, 2, 1},                              /* flags */
    };

    sample_env(&env, 2);
    write_queue_file(f, &env, "hello\n", 6, 6);
    file_bytes(f, env.queue_id, &img);
    for (size_t i = 0; i < sizeof(lies) / sizeof(lies[0]); i++) {
        sb_reset(&bad);
        sb_append(&bad, img.data, img.len);
        if (lies[i].width == 8)
            put64le(&bad, lies[i].off, lies[i].value);
        else if (lies[i].width == 4)
            put32le(&bad, lies[i].off, (uint32_t) lies[i].value);
        else
            bad.data[lies[i].off] = (char) lies[i].value;
        fix_header_crc(&bad);
        if (read_bytes(bad.data, bad.len, &err_no, &err) != -1)
            fail_msg("lie %zu accepted", i);
        assert_int_equal(err_no, EBADMSG);
    }
    /* A consistent but false message length: the file must also end where the header says. */
    sb_reset(&bad);
    sb_append(&bad, img.data, img.len);
    put64le(&bad, HDR_MSG_LEN, 5);
    fix_header_crc(&bad);
    assert_int_equal(read_bytes(bad.data, bad.len, &err_no, &err), -1);
    /* ... and the size= line must agree with a length that does fit. */
    sb_truncate(&bad, bad.len - 1);
    assert_int_equal(read_bytes(bad.data, bad.len, &err_no, &err), -1);
    assert_non_null(strstr(sb_str(&err), "size 6 but the message has 5"));
    /* Not a queue file at all. */
    sb_reset(&bad);
    sb_append(&bad, img.data, img.len);
    memcpy(bad.data, "XXXX", 4);
    assert_int_equal(read_bytes(bad.data, bad.len, &err_no, &err), -1);
    assert_non_null(strstr(sb_str(&err), "magic"));
    queue_envelope_free(&env);
    sb_free(&bad);
    sb_free(&img);
    sb_free(&err);
}

/* envelope_image - a file image with this envelope text and no recipients or message */
static void envelope_image(struct strbuf *out, const char *envtext, size_t len, uint32_t nrcpt,
                           uint64_t msglen)
{
    uint32_t env_len = (uint32_t) len;
    uint64_t msg_off = ENV_OFF + env_len + (uint64_t) nrcpt * STATUS_SIZE;
    unsigned char sched[32] = {0};

    sb_reset(out);
    for (int i = 0; i < ENV_OFF; i++)
        sb_putc(out, 0);
    memcpy(out->data, "PSTQ\1\0\0\0", 8);
    put32le(out, 8, ENV_OFF);
    put32le(out, HDR_ENV_LEN, env_len);
    put32le(out, HDR_NRCPT, nrcpt);
    put32le(out, 20, STATUS_SIZE);
    put64le(out, HDR_STATUS_OFF, ENV_OFF + env_len);
    put64le(out, HDR_MSG_OFF, msg_off);
    put64le(out, HDR_MSG_LEN, msglen);
    put32le(out, HDR_MSG_CRC, crc32_update(0, "m", msglen ? 1 : 0));
    {
        uint32_t c = crc32_update(0, sched, 28);

        for (int i = 0; i < 4; i++)
            out->data[64 + 28 + i] = (char) (c >> (8 * i));
    }
    sb_append(out, envtext, len);
    for (uint32_t i = 0; i < nrcpt; i++) {
        unsigned char rec[STATUS_SIZE] = {0};
        uint32_t c;

        rec[144] = (unsigned char) i;
        c = crc32_update(0, rec, 156);
        for (int k = 0; k < 4; k++)
            rec[156 + k] = (unsigned char) (c >> (8 * k));
        sb_append(out, rec, sizeof(rec));
    }
    if (msglen)
        sb_putc(out, 'm');
    fix_header_crc(out);
}

static void test_envelope_syntax(void **state)
{
    struct strbuf err = STRBUF_INIT;
    struct strbuf img = STRBUF_INIT;
    int     err_no;
    const char *base = "queue_id=0123456789ABCDEF01\nsender=a@b\narrival=5\nsize=00000000000000000001\n";
    struct {
        const char *extra;
        uint32_t nrcpt;
        int     rc;
    } cases[] = {
        {"rcpt=x@y\n", 1, 0},
        {"rcpt=x@y\norcpt=rfc822;x@y\nnotify=NEVER\n", 1, 0},
        {"smtputf8=1\nrcpt=x@y\n", 1, 0},
        {"smtputf8=yes\nrcpt=x@y\n", 1, -1},     /* only "1" */
        {"smtputf8=1\nsmtputf8=1\nrcpt=x@y\n", 1, -1},
        {"future_thing=whatever it is\nrcpt=x@y\nx_2=\n", 1, 0},  /* unknown names ignored */
        {"rcpt=x@y\n", 0, -1},                  /* more recipients than the header */
        {"", 1, -1},                            /* fewer */
        {"orcpt=x@y\nrcpt=x@y\n", 1, -1},       /* orcpt before any rcpt */
        {"rcpt=x@y\norcpt=a\norcpt=b\n", 1, -1},
        {"rcpt=\n", 1, -1},                     /* empty recipient */
        {"sender=c@d\n", 0, -1},                /* duplicate */
        {"Bad=1\n", 0, -1},                     /* bad name */
        {"=1\n", 0, -1},
        {"noequals\n", 0, -1},
        {"x=a\rb\n", 0, -1},                    /* CR in a value */
        {"rcpt=x@y", 1, -1},                    /* no final newline */
    };

    (void) state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct strbuf text = STRBUF_INIT;

        sb_puts(&text, base);
        sb_puts(&text, cases[i].extra);
        envelope_image(&img, text.data, text.len, cases[i].nrcpt, 1);
        if (read_bytes(img.data, img.len, &err_no, &err) != cases[i].rc)
            fail_msg("case %zu (%s): %s", i, cases[i].extra, sb_str(&err));
        sb_free(&text);
    }
    /* Missing required fields, bad numbers, bad ID. */
    const char *bad[] = {
        "sender=a@b\narrival=5\nsize=1\n",
        "queue_id=0123456789ABCDEF01\narrival=5\nsize=1\n",
        "queue_id=0123456789ABCDEF01\nsender=a@b\nsize=1\n",
        "queue_id=0123456789ABCDEF01\nsender=a@b\narrival=5\n",
        "queue_id=0123456789abcdef01\nsender=a@b\narrival=5\nsize=1\n",
        "queue_id=0123456789ABCDEF01\nsender=a@b\narrival=-5\nsize=1\n",
        "queue_id=0123456789ABCDEF01\nsender=a@b\narrival=99999999999999999999\nsize=1\n",
        "queue_id=0123456789ABCDEF01\nsender=a@b\narrival=5\nsize=1x\n",
    };

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        envelope_image(&img, bad[i], strlen(bad[i]), 0, 1);
        if (read_bytes(img.data, img.len, &err_no, &err) != -1)
            fail_msg("bad envelope %zu accepted", i);
    }
    /* An address over the bound. */
    {
        struct strbuf text = STRBUF_INIT;

        sb_puts(&text, base);
        sb_puts(&text, "rcpt=");
        for (int i = 0; i < 1001; i++)
            sb_putc(&text, 'a');
        sb_puts(&text, "\n");
        envelope_image(&img, text.data, text.len, 1, 1);
        assert_int_equal(read_bytes(img.data, img.len, &err_no, &err), -1);
        assert_non_null(strstr(sb_str(&err), "exceeds the limit"));
        sb_free(&text);
    }
    /* A NUL inside a value. */
    {
        struct strbuf text = STRBUF_INIT;

        sb_puts(&text, base);
        sb_append(&text, "rcpt=x\0y\n", 9);
        envelope_image(&img, text.data, text.len, 1, 1);
        assert_int_equal(read_bytes(img.data, img.len, &err_no, &err), -1);
        assert_non_null(strstr(sb_str(&err), "NUL, CR or LF"));
        /* The same image without the NUL is fine: the test image itself is sound. */
        text.data[text.len - 3] = 'z';
        envelope_image(&img, text.data, text.len, 1, 1);
        assert_int_equal(read_bytes(img.data, img.len, &err_no, &err), 0);
        sb_free(&text);
    }
    sb_free(&img);
    sb_free(&err);
}

static void test_writer_refuses_injection(void **state)
{
    struct fixture *f = *state;
    struct strbuf err = STRBUF_INIT;
    struct queue_envelope env;
    char    big[1100];

    memset(big, 'a', sizeof(big));
    big[sizeof(big) - 1] = '\0';
    const char *bad_values[] = {
        "a@b\nrcpt=evil@x", "a@b\r\nrcpt=evil@x", "a\rb", big,
    };
    for (size_t v = 0; v < sizeof(bad_values) / sizeof(bad_values[0]); v++) {
        for (int field = 0; field < 6; field++) {
            char  **slot;

            sample_env(&env, 2);
            slot = field == 0 ? &env.sender : field == 1 ? &env.helo : field == 2 ? &env.client_name
                : field == 3 ? &env.rcpts[1].address : field == 4 ? &env.rcpts[0].orcpt : &env.envid;
            free(*slot);
            *slot = xstrdup(bad_values[v]);
            sb_reset(&err);
            assert_null(queue_writer_create(f->dirfd, &env, &err));
            assert_true(sb_len(&err) > 0);
            queue_envelope_free(&env);
        }
    }
    /* Missing sender, empty recipient, too many recipients. */
    sample_env(&env, 1);
    free(env.sender);
    env.sender = NULL;
    assert_null(queue_writer_create(f->dirfd, &env, &err));
    queue_envelope_free(&env);
    sample_env(&env, 1);
    free(env.rcpts[0].address);
    env.rcpts[0].address = xstrdup("");
    assert_null(queue_writer_create(f->dirfd, &env, &err));
    queue_envelope_free(&env);
    sample_env(&env, 0);
    env.nrcpt = 100001;
    assert_null(queue_writer_create(f->dirfd, &env, &err));
    env.nrcpt = 0;
    queue_envelope_free(&env);
    assert_int_equal(incoming_count(f), 0);
    sb_free(&err);
}

static void test_abort_and_failures(void **state)
{
    struct fixture *f = *state;
    struct strbuf err = STRBUF_INIT;
    struct queue_envelope env;
    struct queue_writer *w;

    sample_env(&env, 1);
    w = queue_writer_create(f->dirfd, &env, &err);
    assert_non_null(w);
    assert_int_equal(queue_writer_write(w, "abc", 3, &err), 0);
    assert_int_equal(incoming_count(f), 1);     /* ID.tmp */
    queue_writer_abort(w);
    assert_int_equal(incoming_count(f), 0);
    queue_writer_abort(NULL);

    /* No incoming/ directory: create fails with the path in the message. */
    {
        char    dir[] = "/tmp/test_queue_file_empty.XXXXXX";
        int     dfd;

        assert_non_null(mkdtemp(dir));
        dfd = open(dir, O_RDONLY | O_DIRECTORY);
        sb_reset(&err);
        assert_null(queue_writer_create(dfd, &env, &err));
        assert_non_null(strstr(sb_str(&err), "incoming/"));
        close(dfd);
        rmdir(dir);
    }

    /* Commit after the file vanished under us: -1 and nothing left. */
    w = queue_writer_create(f->dirfd, &env, &err);
    assert_non_null(w);
    {
        char    path[64];

        snprintf(path, sizeof(path), "incoming/%s.tmp", env.queue_id);
        assert_int_equal(unlinkat(f->dirfd, path, 0), 0);
    }
    sb_reset(&err);
    assert_int_equal(queue_writer_commit(w, &err), -1);
    assert_non_null(strstr(sb_str(&err), "rename"));
    assert_int_equal(incoming_count(f), 0);
    queue_envelope_free(&env);
    sb_free(&err);
}

static void test_read_errors(void **state)
{
    struct strbuf err = STRBUF_INIT;
    struct queue_file qf;

    (void) state;
    /* A bad descriptor is an I/O error, not corruption. */
    assert_int_equal(queue_file_read(-1, &qf, &err), -1);
    assert_int_equal(errno, EBADF);
    queue_file_free(&qf);
    /* A directory is not a queue file. */
    {
        int     fd = open("/tmp", O_RDONLY | O_DIRECTORY);

        assert_int_equal(queue_file_read(fd, &qf, &err), -1);
        assert_int_equal(errno, EBADMSG);
        close(fd);
    }
    assert_string_equal(queue_rcpt_state_name(QUEUE_RCPT_PENDING), "pending");
    assert_string_equal(queue_rcpt_state_name(QUEUE_RCPT_DELIVERED), "delivered");
    assert_string_equal(queue_rcpt_state_name(QUEUE_RCPT_BOUNCED), "bounced");
    assert_string_equal(queue_rcpt_state_name(QUEUE_RCPT_DEFERRED), "deferred");
    assert_string_equal(queue_rcpt_state_name((enum queue_rcpt_state) 42), "unknown");
    sb_free(&err);
}

/* cmp_id - qsort comparison of queue IDs */
static int cmp_id(const void *a, const void *b)
{
    return memcmp(a, b, QUEUE_ID_LEN + 1);
}

static void test_queue_id_new(void **state)
{
    enum { N = 100000 };
    char  (*ids)[QUEUE_ID_LEN + 1] = xcalloc(N, sizeof(*ids));
    struct timespec ts;

    (void) state;
    clock_gettime(CLOCK_REALTIME, &ts);
    for (size_t i = 0; i < N; i++) {
        queue_id_new(ids[i]);
        assert_true(queue_id_valid(ids[i]));
        /* IDs made one after another sort in order of making (the time part). */
        if (i > 0)
            assert_true(memcmp(ids[i - 1], ids[i], 13) < 0);
    }
    /* The time part is now in microseconds. */
    {
        char    head[14];
        unsigned long long us;

        memcpy(head, ids[0], 13);
        head[13] = '\0';
        us = strtoull(head, NULL, 16);
        assert_true(us / 1000000 >= (unsigned long long) ts.tv_sec - 1);
        assert_true(us / 1000000 <= (unsigned long long) ts.tv_sec + 60);
    }
    qsort(ids, N, sizeof(*ids), cmp_id);
    for (size_t i = 1; i < N; i++)
        assert_true(memcmp(ids[i - 1], ids[i], QUEUE_ID_LEN + 1) != 0);
    free(ids);
}

static void test_queue_id_valid(void **state)
{
    (void) state;
    assert_true(queue_id_valid("0123456789ABCDEF01"));
    assert_true(queue_id_valid("000000000000000000"));
    assert_false(queue_id_valid(NULL));
    assert_false(queue_id_valid(""));
    assert_false(queue_id_valid("0123456789ABCDEF0"));          /* 17 */
    assert_false(queue_id_valid("0123456789ABCDEF012"));        /* 19 */
    assert_false(queue_id_valid("0123456789abcdef01"));         /* lower case */
    assert_false(queue_id_valid("0123456789ABCDEF0G"));
    assert_false(queue_id_valid("0123456789ABCDEF01.tmp"));
    assert_false(queue_id_valid("../3456789ABCDEF01"));
    assert_false(queue_id_valid("0123456789ABCDEF/1"));
    assert_false(queue_id_valid(".123456789ABCDEF01"));
    assert_false(queue_id_valid("0123456789ABCDEF 1"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_crc32),
        cmocka_unit_test_setup_teardown(test_round_trip_all_fields, setup, teardown),
        cmocka_unit_test_setup_teardown(test_round_trip_minimal, setup, teardown),
        cmocka_unit_test_setup_teardown(test_round_trip_no_recipients, setup, teardown),
        cmocka_unit_test_setup_teardown(test_round_trip_many_recipients, setup, teardown),
        cmocka_unit_test_setup_teardown(test_round_trip_large_binary, setup, teardown),
        cmocka_unit_test_setup_teardown(test_update_rcpt, setup, teardown),
        cmocka_unit_test_setup_teardown(test_update_schedule, setup, teardown),
        cmocka_unit_test_setup_teardown(test_truncation, setup, teardown),
        cmocka_unit_test_setup_teardown(test_flipped_bytes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_lying_header, setup, teardown),
        cmocka_unit_test(test_envelope_syntax),
        cmocka_unit_test_setup_teardown(test_writer_refuses_injection, setup, teardown),
        cmocka_unit_test_setup_teardown(test_abort_and_failures, setup, teardown),
        cmocka_unit_test(test_read_errors),
        cmocka_unit_test(test_queue_id_new),
        cmocka_unit_test(test_queue_id_valid),
        cmocka_unit_test_setup_teardown(test_flags, setup, teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
