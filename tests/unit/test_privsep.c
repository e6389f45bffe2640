/*
 * test_privsep - lib/privsep.c: unprivileged mode (always, as nobody when the
 * test runs as root), the full drop to a user with chroot (root only), and the
 * error paths. Each privilege change happens in a forked child, which checks
 * /proc/self/status through an fd opened before the drop (the chroot hides
 * /proc) and reports by exit status; the parent asserts on that status.
 */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>

#include "privsep.h"
#include "strbuf.h"

static char tmpdir[64];

/* setup - a temp dir the user nobody can enter */
static int setup(void **state)
{
    (void) state;
    snprintf(tmpdir, sizeof(tmpdir), "/tmp/test_privsep.XXXXXX");
    if (mkdtemp(tmpdir) == NULL)
        return -1;
    return chmod(tmpdir, 0755);
}

/* teardown - remove the temp dir */
static int teardown(void **state)
{
    (void) state;
    return rmdir(tmpdir);
}

/* Child-side checks: print what failed and exit non-zero (cmocka asserts would unwind into the runner). */
#define CHECK(cond) do { \
        if (!(cond)) { \
            fprintf(stderr, "%s:%d: child check failed: %s\n", __FILE__, __LINE__, #cond); \
            _exit(1); \
        } \
    } while (0)

/* status_field - value of "Name:" in /proc/self/status read through fd */
static bool status_field(int fd, const char *name, char *value, size_t size)
{
    char    buf[8192];
    ssize_t n = pread(fd, buf, sizeof(buf) - 1, 0);
    size_t  nlen = strlen(name);

    if (n <= 0)
        return false;
    buf[n] = '\0';
    for (char *line = buf; line && *line; line = strchr(line, '\n') ? strchr(line, '\n') + 1 : NULL) {
        if (strncmp(line, name, nlen) == 0 && line[nlen] == ':') {
            char   *v = line + nlen + 1;
            size_t  len;

            v += strspn(v, " \t");
            len = strcspn(v, "\n");
            if (len >= size)
                return false;
            memcpy(value, v, len);
            value[len] = '\0';
            return true;
        }
    }
    return false;
}

/* field_is - /proc/self/status "Name:" equals want */
static bool field_is(int fd, const char *name, const char *want)
{
    char    value[256];

    if (!status_field(fd, name, value, sizeof(value))) {
        fprintf(stderr, "no %s in /proc/self/status\n", name);
        return false;
    }
    if (strcmp(value, want) != 0) {
        fprintf(stderr, "%s is \"%s\", expected \"%s\"\n", name, value, want);
        return false;
    }
    return true;
}

/* become_nobody - plain setuid without privsep, so the test also covers non-root runs */
static void become_nobody(void)
{
    struct passwd *pw = getpwnam("nobody");

    CHECK(pw != NULL);
    CHECK(setgroups(0, NULL) == 0);
    CHECK(setresgid(pw->pw_gid, pw->pw_gid, pw->pw_gid) == 0);
    CHECK(setresuid(pw->pw_uid, pw->pw_uid, pw->pw_uid) == 0);
}

/* wait_child - exit status of pid; fails the test on a signal */
static int wait_child(pid_t pid)
{
    int     status;

    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    return WEXITSTATUS(status);
}

/* test_unprivileged_mode - not root: chdir, no_new_privs, no caps, mode reported */
static void test_unprivileged_mode(void **state)
{
    pid_t   pid;

    (void) state;
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        struct strbuf err = STRBUF_INIT;
        char    cwd[4096];
        char    root[4096];
        ssize_t n;
        int     fd;

        if (privsep_is_root())
            become_nobody();
        CHECK(!privsep_is_root());
        fd = open("/proc/self/status", O_RDONLY | O_CLOEXEC);
        CHECK(fd >= 0);
        /* chroot is asked for but impossible: the mode says so instead of failing. */
        CHECK(privsep_drop("postern-no-such-user", tmpdir, true, &err) == PRIVSEP_UNPRIVILEGED);
        CHECK(getcwd(cwd, sizeof(cwd)) != NULL);
        CHECK(strcmp(cwd, tmpdir) == 0);
        n = readlink("/proc/self/root", root, sizeof(root) - 1);
        CHECK(n == 1 && root[0] == '/');
        CHECK(field_is(fd, "NoNewPrivs", "1"));
        CHECK(field_is(fd, "CapEff", "0000000000000000"));
        CHECK(field_is(fd, "CapPrm", "0000000000000000"));
        CHECK(field_is(fd, "CapInh", "0000000000000000"));

        /* Error path: the directory does not exist. */
        CHECK(privsep_drop(NULL, "/nonexistent/postern", false, &err) == PRIVSEP_FAILED);
        CHECK(strcmp(sb_str(&err), "chdir /nonexistent/postern: No such file or directory") == 0);
        sb_free(&err);
        _exit(0);
    }
    assert_int_equal(wait_child(pid), 0);
}

/* test_drop_to_nobody_with_chroot - the full drop, checked in /proc/self/status */
static void test_drop_to_nobody_with_chroot(void **state)
{
    pid_t   pid;
    struct passwd *pw;
    char    want_uid[64];
    char    want_gid[64];

    (void) state;
    if (!privsep_is_root())
        skip();
    pw = getpwnam("nobody");
    assert_non_null(pw);
    snprintf(want_uid, sizeof(want_uid), "%u\t%u\t%u\t%u", (unsigned) pw->pw_uid, (unsigned) pw->pw_uid,
             (unsigned) pw->pw_uid, (unsigned) pw->pw_uid);
    snprintf(want_gid, sizeof(want_gid), "%u\t%u\t%u\t%u", (unsigned) pw->pw_gid, (unsigned) pw->pw_gid,
             (unsigned) pw->pw_gid, (unsigned) pw->pw_gid);

    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        struct strbuf err = STRBUF_INIT;
        char    cwd[4096];
        enum privsep_mode mode;
        int     fd = open("/proc/self/status", O_RDONLY | O_CLOEXEC);
        gid_t   groups[8];

        CHECK(fd >= 0);
        /* Supplementary groups that must not survive. */
        groups[0] = 0;
        groups[1] = 4;
        CHECK(setgroups(2, groups) == 0);
        mode = privsep_drop("nobody", tmpdir, true, &err);
        if (mode != PRIVSEP_DROPPED)
            fprintf(stderr, "privsep_drop: %s\n", sb_str(&err));
        CHECK(mode == PRIVSEP_DROPPED);
        CHECK(getcwd(cwd, sizeof(cwd)) != NULL);
        CHECK(strcmp(cwd, "/") == 0);
        CHECK(access("/proc/self/status", F_OK) != 0);       /* really inside the empty dir */
        CHECK(field_is(fd, "Uid", want_uid));
        CHECK(field_is(fd, "Gid", want_gid));
        CHECK(getgroups(8, groups) <= 1);
        CHECK(field_is(fd, "CapEff", "0000000000000000"));
        CHECK(field_is(fd, "CapPrm", "0000000000000000"));
        CHECK(field_is(fd, "CapInh", "0000000000000000"));
        CHECK(field_is(fd, "CapBnd", "0000000000000000"));
        CHECK(field_is(fd, "CapAmb", "0000000000000000"));
        CHECK(field_is(fd, "NoNewPrivs", "1"));
        CHECK(setuid(0) != 0 && errno == EPERM);
        CHECK(chroot("/") != 0);
        sb_free(&err);
        _exit(0);
    }
    assert_int_equal(wait_child(pid), 0);
}

/* test_stay_root_confined - user NULL: root, but chrooted with no_new_privs */
static void test_stay_root_confined(void **state)
{
    pid_t   pid;

    (void) state;
    if (!privsep_is_root())
        skip();
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        struct strbuf err = STRBUF_INIT;
        char    cwd[4096];
        int     fd = open("/proc/self/status", O_RDONLY | O_CLOEXEC);

        CHECK(fd >= 0);
        CHECK(privsep_drop(NULL, tmpdir, true, &err) == PRIVSEP_DROPPED);
        CHECK(geteuid() == 0);
        CHECK(getcwd(cwd, sizeof(cwd)) != NULL && strcmp(cwd, "/") == 0);
        CHECK(access("/proc/self/status", F_OK) != 0);
        CHECK(field_is(fd, "NoNewPrivs", "1"));
        sb_free(&err);
        _exit(0);
    }
    assert_int_equal(wait_child(pid), 0);
}

/* test_errors_as_root - unknown user, uid 0, missing dir: FAILED, nothing given up early */
static void test_errors_as_root(void **state)
{
    pid_t   pid;

    (void) state;
    if (!privsep_is_root())
        skip();
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        struct strbuf err = STRBUF_INIT;
        char    path[128];

        CHECK(privsep_drop("postern-no-such-user", tmpdir, true, &err) == PRIVSEP_FAILED);
        CHECK(strstr(sb_str(&err), "unknown user \"postern-no-such-user\"") != NULL);
        CHECK(geteuid() == 0);                                /* nothing was given up */

        CHECK(privsep_drop("root", tmpdir, false, &err) == PRIVSEP_FAILED);
        CHECK(strstr(sb_str(&err), "uid 0") != NULL);

        snprintf(path, sizeof(path), "%s/missing", tmpdir);
        CHECK(privsep_drop("nobody", path, true, &err) == PRIVSEP_FAILED);
        CHECK(strncmp(sb_str(&err), "chdir ", 6) == 0);
        CHECK(strstr(sb_str(&err), ": No such file or directory") != NULL);
        CHECK(geteuid() == 0);

        CHECK(privsep_drop("nobody", NULL, true, &err) == PRIVSEP_FAILED);
        CHECK(strstr(sb_str(&err), "no directory") != NULL);
        sb_free(&err);
        _exit(0);
    }
    assert_int_equal(wait_child(pid), 0);
}

/* test_lookup_user - known and unknown names */
static void test_lookup_user(void **state)
{
    struct strbuf err = STRBUF_INIT;
    uid_t   uid = 12345;
    gid_t   gid = 12345;

    (void) state;
    assert_int_equal(privsep_lookup_user("root", &uid, &gid, &err), 0);
    assert_int_equal(uid, 0);
    assert_int_equal(gid, 0);
    assert_int_equal(privsep_lookup_user("postern-no-such-user", &uid, &gid, &err), -1);
    assert_string_equal(sb_str(&err), "unknown user \"postern-no-such-user\"; create it or name an existing user");
    assert_int_equal(privsep_lookup_user("", &uid, &gid, &err), -1);
    sb_free(&err);
}

/* main - run the privsep tests */
int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_lookup_user),
        cmocka_unit_test_setup_teardown(test_unprivileged_mode, setup, teardown),
        cmocka_unit_test_setup_teardown(test_drop_to_nobody_with_chroot, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stay_root_confined, setup, teardown),
        cmocka_unit_test_setup_teardown(test_errors_as_root, setup, teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
