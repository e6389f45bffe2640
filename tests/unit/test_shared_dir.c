/*
 * test_shared_dir - lib/shared_dir: two opens of one directory share a
 * descriptor, other directories do not, the descriptor stays open until its
 * last user releases it, and many directories at once.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <stdbool.h>
#include <string.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#include "shared_dir.h"

static char tmpdir[64];

static int open_dir(const char *name)
{
    char    path[128];

    snprintf(path, sizeof(path), "%s/%s", tmpdir, name);
    return open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
}

static bool is_open(int fd)
{
    return fcntl(fd, F_GETFD) >= 0;
}

static void test_share_and_release(void **state)
{
    int     a1, a2, b, raw;

    (void) state;
    a1 = shared_dir_adopt(open_dir("a"));
    raw = open_dir("a");
    a2 = shared_dir_adopt(raw);
    assert_true(a1 >= 0);
    assert_int_equal(a1, a2);           /* the second open was closed, the first shared */
    assert_false(is_open(raw));
    b = shared_dir_adopt(open_dir("b"));
    assert_true(b >= 0);
    assert_int_not_equal(a1, b);
    shared_dir_release(a1);
    assert_true(is_open(a2));           /* one user left */
    shared_dir_release(a2);
    assert_false(is_open(a1));
    shared_dir_release(b);
    assert_false(is_open(b));
    /* a failed open stays a failure; releasing -1 is harmless */
    assert_int_equal(shared_dir_adopt(-1), -1);
    shared_dir_release(-1);
}

static void test_many(void **state)
{
    enum { N = 300 };
    int     fds[N], again[N];
    char    name[32];

    (void) state;
    for (int i = 0; i < N; i++) {
        snprintf(name, sizeof(name), "d%d", i);
        fds[i] = shared_dir_adopt(open_dir(name));
        assert_true(fds[i] >= 0);
    }
    for (int i = 0; i < N; i++) {
        snprintf(name, sizeof(name), "d%d", i);
        again[i] = shared_dir_adopt(open_dir(name));
        assert_int_equal(again[i], fds[i]);
    }
    for (int i = 0; i < N; i++) {
        shared_dir_release(fds[i]);
        shared_dir_release(again[i]);
    }
    for (int i = 0; i < N; i++)
        assert_false(is_open(fds[i]));
    /* all closed: a fresh open gets a fresh descriptor that is not shared with a stale entry */
    int     x = shared_dir_adopt(open_dir("d0"));
    int     y = shared_dir_adopt(open_dir("d1"));

    assert_int_not_equal(x, y);
    shared_dir_release(x);
    shared_dir_release(y);
}

static int setup(void **state)
{
    char    path[128];

    (void) state;
    snprintf(tmpdir, sizeof(tmpdir), "/tmp/test_shared_dir.XXXXXX");
    assert_non_null(mkdtemp(tmpdir));
    snprintf(path, sizeof(path), "%s/a", tmpdir);
    mkdir(path, 0700);
    snprintf(path, sizeof(path), "%s/b", tmpdir);
    mkdir(path, 0700);
    for (int i = 0; i < 300; i++) {
        snprintf(path, sizeof(path), "%s/d%d", tmpdir, i);
        mkdir(path, 0700);
    }
    return 0;
}

static int teardown(void **state)
{
    char    cmd[128];

    (void) state;
    snprintf(cmd, sizeof(cmd), "rm -rf %s", tmpdir);
    return system(cmd) == 0 ? 0 : -1;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_share_and_release),
        cmocka_unit_test(test_many),
    };

    return cmocka_run_group_tests(tests, setup, teardown);
}
