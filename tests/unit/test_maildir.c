/*
 * test_maildir - lib/maildir.c in a temporary mail base: path checks
 * (absolute, "..", control characters, empty), creation of missing
 * directories and tmp/ new/ cur/, refusal of symlinks at every level (a
 * link planted in the tree pointing outside must never be written through),
 * unique names and the host escaping, and delivery: content, the ",S=" size,
 * nothing left in tmp/, abort, the cur/ form with info, a short source file;
 * a mailbox path never made inside another Maildir (but for its .folders).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#include "maildir.h"
#include "strbuf.h"

static char top[64];                    /* holds base/ and outside/ */
static char base[96];
static char outside[96];
static int base_fd = -1;

/* run - a shell command that must succeed (set-up and clean-up only) */
static void run(const char *fmt, ...)
{
    struct strbuf cmd = STRBUF_INIT;
    va_list ap;

    va_start(ap, fmt);
    sb_vprintf(&cmd, fmt, ap);
    va_end(ap);
    assert_int_equal(system(sb_str(&cmd)), 0);
    sb_free(&cmd);
}

/* setup - a fresh mail base and a directory outside it */
static int setup(void **state)
{
    (void) state;
    snprintf(top, sizeof(top), "/tmp/test_maildir.XXXXXX");
    if (mkdtemp(top) == NULL)
        return -1;
    snprintf(base, sizeof(base), "%s/base", top);
    snprintf(outside, sizeof(outside), "%s/outside", top);
    if (mkdir(base, 0700) != 0 || mkdir(outside, 0700) != 0)
        return -1;
    base_fd = open(base, O_RDONLY | O_DIRECTORY);
    return base_fd < 0 ? -1 : 0;
}

/* teardown - remove everything */
static int teardown(void **state)
{
    (void) state;
    close(base_fd);
    run("rm -rf '%s'", top);
    return 0;
}

/* count_entries - files in dir, not counting . and ..; the single name into name if given */
static int count_entries(const char *dir, struct strbuf *name)
{
    DIR    *d = opendir(dir);
    struct dirent *e;
    int     n = 0;

    if (d == NULL)
        return -1;
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        if (name)
            sb_set(name, e->d_name);
        n++;
    }
    closedir(d);
    return n;
}

/* is_dir - path exists as a real directory */
static bool is_dir(const char *path)
{
    struct stat st;

    return lstat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

/* path_refused - maildir_path_check says no, mentioning want */
static void path_refused(const char *path, size_t len, const char *want)
{
    struct strbuf err = STRBUF_INIT;

    errno = 0;
    assert_int_equal(maildir_path_check(path, len, &err), -1);
    assert_int_equal(errno, EINVAL);
    if (strstr(sb_str(&err), want) == NULL)
        fail_msg("\"%s\": error \"%s\" does not mention \"%s\"", path, sb_str(&err), want);
    sb_free(&err);
}

/* test_path_check - what a table may and may not say */
static void test_path_check(void **state)
{
    struct strbuf err = STRBUF_INIT;
    const char *good[] = {"example.test/alice/", "example.test/alice", "a", "./a/./b/", "a//b",
                          "a/..b/c..", "...", "dom/user name/", "d\xc3\xa9j\xc3\xa0/u/"};

    (void) state;
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        if (maildir_path_check(good[i], strlen(good[i]), &err) != 0)
            fail_msg("\"%s\" refused: %s", good[i], sb_str(&err));
    }
    path_refused("", 0, "empty");
    path_refused("/var/mail/alice/", 16, "absolute");
    path_refused("..", 2, "\"..\"");
    path_refused("../other/", 9, "\"..\"");
    path_refused("example.test/../../etc/", 23, "\"..\"");
    path_refused("example.test/alice/..", 21, "\"..\"");
    path_refused("a/\n/b", 5, "control character");
    path_refused("a\x7f", 2, "control character");
    path_refused("a\0b", 3, "control character");
    path_refused("./", 2, "names no directory");
    path_refused("//", 2, "absolute");
    sb_free(&err);
}

/* test_open_creates - missing components and tmp/ new/ cur/ are made, 0700 */
static void test_open_creates(void **state)
{
    struct strbuf err = STRBUF_INIT;
    struct strbuf p = STRBUF_INIT;
    struct stat st;
    int     fd;

    (void) state;
    /* Without create, nothing appears. */
    assert_int_equal(maildir_open(base_fd, "example.test/alice/", false, &err), -1);
    assert_int_equal(errno, ENOENT);
    assert_int_equal(count_entries(base, NULL), 0);

    fd = maildir_open(base_fd, "example.test/alice/", true, &err);
    assert_true(fd >= 0);
    close(fd);
    for (int i = 0; i < 3; i++) {
        sb_reset(&p);
        sb_printf(&p, "%s/example.test/alice/%s", base, (const char *[]) {"tmp", "new", "cur"}[i]);
        assert_true(is_dir(sb_str(&p)));
        assert_int_equal(stat(sb_str(&p), &st), 0);
        assert_int_equal(st.st_mode & 07777, 0700);
    }
    /* Opening again (everything exists) works, and a Maildir missing cur/ gets it back. */
    sb_reset(&p);
    sb_printf(&p, "%s/example.test/alice/cur", base);
    assert_int_equal(rmdir(sb_str(&p)), 0);
    fd = maildir_open(base_fd, "example.test/alice", true, &err);
    assert_true(fd >= 0);
    close(fd);
    assert_true(is_dir(sb_str(&p)));

    /* A file where a directory should be. */
    run("touch '%s/example.test/plainfile'", base);
    sb_reset(&err);
    assert_int_equal(maildir_open(base_fd, "example.test/plainfile/", true, &err), -1);
    assert_int_equal(errno, ENOTDIR);
    run("touch '%s/example.test/alice/new2' && rmdir '%s/example.test/alice/new' && "
        "mv '%s/example.test/alice/new2' '%s/example.test/alice/new'", base, base, base, base);
    sb_reset(&err);
    assert_int_equal(maildir_open(base_fd, "example.test/alice", true, &err), -1);
    assert_int_equal(errno, ENOTDIR);
    assert_non_null(strstr(sb_str(&err), "\"new\""));
    run("rm -rf '%s/example.test'", base);
    sb_free(&err);
    sb_free(&p);
}

/* test_symlinks_refused - a link at any level fails with ELOOP and nothing is written outside */
static void test_symlinks_refused(void **state)
{
    struct strbuf err = STRBUF_INIT;
    int     fd;

    (void) state;
    /* The domain directory is a link to outside the base. */
    run("ln -s '%s' '%s/evil.test'", outside, base);
    assert_int_equal(maildir_open(base_fd, "evil.test/alice/", true, &err), -1);
    assert_int_equal(errno, ELOOP);
    assert_non_null(strstr(sb_str(&err), "symbolic link"));

    /* The user's directory is a link (to a Maildir that exists outside). */
    run("mkdir -p '%s/victim/tmp' '%s/victim/new' '%s/victim/cur' '%s/example.test' && "
        "ln -s '%s/victim' '%s/example.test/mallory'", outside, outside, outside, base, outside, base);
    sb_reset(&err);
    assert_int_equal(maildir_open(base_fd, "example.test/mallory/", true, &err), -1);
    assert_int_equal(errno, ELOOP);

    /* A relative link inside the base is refused too: no link is ever followed. */
    run("mkdir -p '%s/example.test/bob' && ln -s bob '%s/example.test/bobby'", base, base);
    sb_reset(&err);
    assert_int_equal(maildir_open(base_fd, "example.test/bobby/", true, &err), -1);
    assert_int_equal(errno, ELOOP);

    /* tmp/ or new/ inside a real Maildir is a link. */
    run("mkdir -p '%s/example.test/carol/cur' '%s/example.test/carol/new' && "
        "ln -s '%s/victim/tmp' '%s/example.test/carol/tmp'", base, base, outside, base);
    sb_reset(&err);
    assert_int_equal(maildir_open(base_fd, "example.test/carol/", true, &err), -1);
    assert_int_equal(errno, ELOOP);
    /* Even with a Maildir fd obtained before the link was planted, tmp/ is not followed. */
    run("rm '%s/example.test/carol/tmp' && mkdir '%s/example.test/carol/tmp'", base, base);
    fd = maildir_open(base_fd, "example.test/carol/", true, &err);
    assert_true(fd >= 0);
    run("rmdir '%s/example.test/carol/tmp' && ln -s '%s/victim/tmp' '%s/example.test/carol/tmp'",
        base, outside, base);
    sb_reset(&err);
    assert_null(maildir_msg_create(fd, &err));
    assert_int_equal(errno, ELOOP);
    /* ... and new/ swapped for a link between writing and committing. */
    run("rm '%s/example.test/carol/tmp' && mkdir '%s/example.test/carol/tmp'", base, base);
    struct maildir_msg *m = maildir_msg_create(fd, &err);

    assert_non_null(m);
    assert_int_equal(maildir_msg_write(m, "x\n", 2, &err), 0);
    run("rmdir '%s/example.test/carol/new' && ln -s '%s/victim/new' '%s/example.test/carol/new'",
        base, outside, base);
    sb_reset(&err);
    assert_int_equal(maildir_msg_commit(m, NULL, NULL, &err), -1);
    assert_int_equal(errno, ELOOP);
    close(fd);

    /* Nothing reached the outside directory, and the aborted tmp file is gone. */
    {
        struct strbuf p = STRBUF_INIT;

        sb_printf(&p, "%s/victim/new", outside);
        assert_int_equal(count_entries(sb_str(&p), NULL), 0);
        sb_reset(&p);
        sb_printf(&p, "%s/victim/tmp", outside);
        assert_int_equal(count_entries(sb_str(&p), NULL), 0);
        sb_reset(&p);
        sb_printf(&p, "%s/example.test/carol/tmp", base);
        assert_int_equal(count_entries(sb_str(&p), NULL), 0);
        sb_free(&p);
    }
    assert_int_equal(count_entries(outside, NULL), 1);     /* just victim/ */
    run("rm -rf '%s'/* '%s'/*", base, outside);
    sb_free(&err);
}

/* test_names - format, escaping, and uniqueness within a process */
static void test_names(void **state)
{
    struct strbuf a = STRBUF_INIT;
    struct strbuf b = STRBUF_INIT;
    char    host[256];

    (void) state;
    maildir_format_name(&a, 1700000000, 123456, 4242, 7, "mx.example.test");
    assert_string_equal(sb_str(&a), "1700000000.M123456P4242Q7.mx.example.test");
    sb_reset(&a);
    maildir_format_name(&a, 1, 0, 1, 1, "a,b/c:d\ne");
    assert_string_equal(sb_str(&a), "1.M0P1Q1.a\\054b\\057c\\072de");

    sb_reset(&a);
    maildir_unique_name(&a);
    maildir_unique_name(&b);
    assert_string_not_equal(sb_str(&a), sb_str(&b));
    assert_null(strchr(sb_str(&a), '/'));
    assert_null(strchr(sb_str(&a), ':'));
    /* The P part is our pid and the host part our (escaped) host name. */
    {
        char    pidpart[32];
        struct strbuf esc = STRBUF_INIT;

        snprintf(pidpart, sizeof(pidpart), "P%ldQ", (long) getpid());
        assert_non_null(strstr(sb_str(&a), pidpart));
        assert_int_equal(gethostname(host, sizeof(host)), 0);
        host[sizeof(host) - 1] = '\0';
        maildir_escape_host(host, &esc);
        assert_true(sb_len(&a) > sb_len(&esc));
        assert_string_equal(sb_str(&a) + sb_len(&a) - sb_len(&esc), sb_str(&esc));
        sb_free(&esc);
    }
    sb_free(&a);
    sb_free(&b);
}

/* read_all - a whole file */
static void read_all(const char *path, struct strbuf *out)
{
    char    buf[4096];
    ssize_t n;
    int     fd = open(path, O_RDONLY);

    assert_true(fd >= 0);
    sb_reset(out);
    while ((n = read(fd, buf, sizeof(buf))) > 0)
        sb_append(out, buf, (size_t) n);
    close(fd);
}

/* test_deliver - content, size in the name, new/ only, tmp/ clean; several files in one Maildir */
static void test_deliver(void **state)
{
    struct strbuf err = STRBUF_INIT;
    struct strbuf name = STRBUF_INIT;
    struct strbuf p = STRBUF_INIT;
    struct strbuf got = STRBUF_INIT;
    struct strbuf want = STRBUF_INIT;
    char    src[128];
    int     srcfd;
    int     fd;
    struct maildir_msg *m;

    (void) state;
    /* A source file bigger than the copy buffer, with the message at an offset. */
    snprintf(src, sizeof(src), "%s/source", top);
    srcfd = open(src, O_RDWR | O_CREAT | O_TRUNC, 0600);
    assert_true(srcfd >= 0);
    assert_int_equal(write(srcfd, "HEADERJUNK", 10), 10);
    for (int i = 0; i < 20000; i++)
        sb_printf(&want, "line %d of the message\n", i);
    assert_int_equal(write(srcfd, sb_str(&want), sb_len(&want)), (ssize_t) sb_len(&want));
    assert_int_equal(write(srcfd, "TRAILER", 7), 7);

    fd = maildir_open(base_fd, "example.test/alice/", true, &err);
    assert_true(fd >= 0);
    m = maildir_msg_create(fd, &err);
    assert_non_null(m);
    assert_int_equal(maildir_msg_write(m, "Return-Path: <b@c>\n", 19, &err), 0);
    assert_int_equal(maildir_msg_copy(m, srcfd, 10, sb_len(&want), &err), 0);
    assert_true(maildir_msg_size(m) == 19 + sb_len(&want));
    /* Before the commit, the message is in tmp/ only. */
    sb_printf(&p, "%s/example.test/alice/tmp", base);
    assert_int_equal(count_entries(sb_str(&p), NULL), 1);
    assert_int_equal(maildir_msg_commit(m, NULL, &name, &err), 0);
    assert_int_equal(count_entries(sb_str(&p), NULL), 0);

    sb_reset(&p);
    sb_printf(&p, "%s/example.test/alice/new", base);
    {
        struct strbuf listed = STRBUF_INIT;
        char    size_part[64];

        assert_int_equal(count_entries(sb_str(&p), &listed), 1);
        assert_string_equal(sb_str(&listed), sb_str(&name));
        size_t  lines = 0;

        for (size_t k = 0; k < sb_len(&want); k++)
            lines += sb_str(&want)[k] == '\n';
        /* S: bytes as stored; W: with CRLF line ends (no CR in this message) */
        snprintf(size_part, sizeof(size_part), ",S=%zu,W=%zu", 19 + sb_len(&want),
                 19 + sb_len(&want) + 1 + lines);
        assert_true(sb_len(&name) > strlen(size_part));
        assert_string_equal(sb_str(&name) + sb_len(&name) - strlen(size_part), size_part);
        sb_free(&listed);
    }
    sb_printf(&p, "/%s", sb_str(&name));
    read_all(sb_str(&p), &got);
    assert_int_equal(sb_len(&got), 19 + sb_len(&want));
    assert_memory_equal(sb_str(&got), "Return-Path: <b@c>\n", 19);
    assert_memory_equal(sb_str(&got) + 19, sb_str(&want), sb_len(&want));
    {
        struct stat st;

        assert_int_equal(stat(sb_str(&p), &st), 0);
        assert_int_equal(st.st_mode & 0777, 0600);
        assert_int_equal(st.st_nlink, 1);     /* the tmp/ link is gone */
    }

    /* Two more deliveries give two more distinct files. */
    for (int i = 0; i < 2; i++) {
        m = maildir_msg_create(fd, &err);
        assert_non_null(m);
        assert_int_equal(maildir_msg_write(m, "x\n", 2, &err), 0);
        assert_int_equal(maildir_msg_commit(m, NULL, NULL, &err), 0);
    }
    sb_reset(&p);
    sb_printf(&p, "%s/example.test/alice/new", base);
    assert_int_equal(count_entries(sb_str(&p), NULL), 3);

    /* The cur/ form with Maildir info, as imapd APPEND will use it. */
    m = maildir_msg_create(fd, &err);
    assert_int_equal(maildir_msg_write(m, "y\n", 2, &err), 0);
    assert_int_equal(maildir_msg_commit(m, "2,S", &name, &err), 0);
    assert_non_null(strstr(sb_str(&name), ",S=2,W=3:2,S"));
    /* A CRLF split across two writes is one line end, not a bare LF. */
    m = maildir_msg_create(fd, &err);
    assert_int_equal(maildir_msg_write(m, "a\r", 2, &err), 0);
    assert_int_equal(maildir_msg_write(m, "\nb\n\r\n\n", 6, &err), 0);
    assert_int_equal(maildir_msg_commit(m, "2,", &name, &err), 0);
    assert_non_null(strstr(sb_str(&name), ",S=8,W=10:2,"));
    sb_reset(&p);
    sb_printf(&p, "%s/example.test/alice/cur", base);
    assert_int_equal(count_entries(sb_str(&p), NULL), 2);
    m = maildir_msg_create(fd, &err);
    sb_reset(&err);
    assert_int_equal(maildir_msg_commit(m, "2,S/../x", NULL, &err), -1);
    assert_int_equal(errno, EINVAL);

    /* Abort leaves nothing; a source shorter than promised fails (and leaves nothing). */
    m = maildir_msg_create(fd, &err);
    assert_int_equal(maildir_msg_write(m, "z", 1, &err), 0);
    maildir_msg_abort(m);
    m = maildir_msg_create(fd, &err);
    sb_reset(&err);
    assert_int_equal(maildir_msg_copy(m, srcfd, 10, sb_len(&want) + 100, &err), -1);
    assert_int_equal(errno, EIO);
    assert_non_null(strstr(sb_str(&err), "ends 93 bytes early"));
    maildir_msg_abort(m);
    sb_reset(&p);
    sb_printf(&p, "%s/example.test/alice/tmp", base);
    assert_int_equal(count_entries(sb_str(&p), NULL), 0);
    sb_reset(&p);
    sb_printf(&p, "%s/example.test/alice/new", base);
    assert_int_equal(count_entries(sb_str(&p), NULL), 3);

    close(fd);
    close(srcfd);
    unlink(src);
    sb_free(&err);
    sb_free(&name);
    sb_free(&p);
    sb_free(&got);
    sb_free(&want);
}

/* test_open_dir_plain - maildir_open_dir alone (imapd's folders): no tmp/new/cur made */
static void test_open_dir_plain(void **state)
{
    struct strbuf err = STRBUF_INIT;
    struct strbuf p = STRBUF_INIT;
    int     fd;

    (void) state;
    fd = maildir_open_dir(base_fd, "d.test/u/.Sent", true, &err);
    assert_true(fd >= 0);
    close(fd);
    sb_printf(&p, "%s/d.test/u/.Sent", base);
    assert_true(is_dir(sb_str(&p)));
    assert_int_equal(count_entries(sb_str(&p), NULL), 0);
    assert_int_equal(maildir_open_dir(base_fd, "d.test/../d.test/u", false, &err), -1);
    assert_int_equal(errno, EINVAL);
    sb_free(&err);
    sb_free(&p);
}

/* test_not_inside_another_maildir - a mailbox path may enter a Maildir only through a .folder */
static void test_not_inside_another_maildir(void **state)
{
    const char *inside[] = {"x.test/bob/new/", "x.test/bob/cur/", "x.test/bob/tmp/", "x.test/bob/maildirsize/",
                            "x.test/bob/new/deeper/", "x.test/bob/.Shared/cur/"};
    struct strbuf err = STRBUF_INIT;
    struct strbuf p = STRBUF_INIT;
    int     fd;

    (void) state;
    fd = maildir_open(base_fd, "x.test/bob/", true, &err);
    assert_true(fd >= 0);
    close(fd);
    fd = maildir_open(base_fd, "x.test/bob/.Shared/", true, &err);    /* a shared folder: allowed */
    assert_true(fd >= 0);
    close(fd);
    for (size_t i = 0; i < sizeof(inside) / sizeof(inside[0]); i++) {
        sb_reset(&err);
        errno = 0;
        if (maildir_open(base_fd, inside[i], true, &err) != -1 || errno != EINVAL)
            fail_msg("\"%s\" opened (errno %d, %s)", inside[i], errno, sb_str(&err));
        assert_non_null(strstr(sb_str(&err), "inside the Maildir"));
    }
    /* nothing was made among bob's entries */
    sb_printf(&p, "%s/x.test/bob/new", base);
    assert_int_equal(count_entries(sb_str(&p), NULL), 0);
    sb_reset(&p);
    sb_printf(&p, "%s/x.test/bob/maildirsize", base);
    assert_false(is_dir(sb_str(&p)));
    /* imapd's own walk into a folder's cur/ is not a mailbox path: still fine */
    fd = maildir_open_dir(base_fd, "x.test/bob/.Shared/cur", false, &err);
    assert_true(fd >= 0);
    close(fd);
    /* a domain whose users are called tmp, new and cur is no Maildir until it has all three */
    fd = maildir_open(base_fd, "y.test/new/", true, &err);
    assert_true(fd >= 0);
    close(fd);
    fd = maildir_open(base_fd, "y.test/tmp/", true, &err);
    assert_true(fd >= 0);
    close(fd);
    run("rm -rf '%s/x.test' '%s/y.test'", base, base);
    sb_free(&err);
    sb_free(&p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_path_check),
        cmocka_unit_test(test_open_creates),
        cmocka_unit_test(test_symlinks_refused),
        cmocka_unit_test(test_names),
        cmocka_unit_test(test_deliver),
        cmocka_unit_test(test_open_dir_plain),
        cmocka_unit_test(test_not_inside_another_maildir),
    };

    return cmocka_run_group_tests(tests, setup, teardown);
}
