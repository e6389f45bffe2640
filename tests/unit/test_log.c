/*
 * test_log - lib/log.c: line format, levels, escaping, length cap, errno,
 * fatal/panic exits, stderr switch, and atomic lines from concurrent writers.
 */
#include <errno.h>
#include <fcntl.h>
#include <regex.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>

#include "log.h"
#include "strbuf.h"

static char tmpdir[64];
static char logpath[128];

/* setup - fresh temp dir and log file for each test */
static int setup(void **state)
{
    (void) state;
    snprintf(tmpdir, sizeof(tmpdir), "/tmp/test_log.XXXXXX");
    if (mkdtemp(tmpdir) == NULL)
        return -1;
    snprintf(logpath, sizeof(logpath), "%s/maillog", tmpdir);
    log_to_stderr(0);
    log_set_verbose(0);
    return log_open_file(logpath);
}

/* teardown - remove the temp dir */
static int teardown(void **state)
{
    (void) state;
    unlink(logpath);
    rmdir(tmpdir);
    return 0;
}

/* slurp - the whole file */
static void slurp(const char *path, struct strbuf *out)
{
    char    buf[4096];
    ssize_t n;
    int     fd = open(path, O_RDONLY);

    sb_reset(out);
    assert_true(fd >= 0);
    while ((n = read(fd, buf, sizeof(buf))) > 0)
        sb_append(out, buf, (size_t) n);
    close(fd);
}

/* matches - extended regex match */
static bool matches(const char *text, const char *pattern)
{
    regex_t re;
    bool    ok;

    assert_int_equal(regcomp(&re, pattern, REG_EXTENDED | REG_NEWLINE), 0);
    ok = regexec(&re, text, 0, NULL, 0) == 0;
    regfree(&re);
    return ok;
}

/* test_default_name_and_format - "postern[pid]" before log_init, syslog-style line */
static void test_default_name_and_format(void **state)
{
    struct strbuf sb = STRBUF_INIT;
    char    pattern[512];
    char    host[256] = "";

    (void) state;
    /* log_init has not been called yet in this process. */
    msg_info("hello %d", 42);
    slurp(logpath, &sb);
    gethostname(host, sizeof(host) - 1);
    snprintf(pattern, sizeof(pattern),
             "^[A-Z][a-z]{2} [ 1-3][0-9] [0-2][0-9]:[0-5][0-9]:[0-6][0-9] %s postern\\[%ld\\]: hello 42\n$",
             host, (long) getpid());
    assert_true(matches(sb_str(&sb), pattern));
    sb_free(&sb);
}

/* test_levels - level labels, verbose gating, syslog_name with a slash */
static void test_levels(void **state)
{
    struct strbuf sb = STRBUF_INIT;
    char    pattern[256];

    (void) state;
    log_init("postern", "smtpd");
    msg_info("i");
    msg_warn("w");
    msg_error("e");
    msg_verbose("hidden");
    log_set_verbose(1);
    assert_int_equal(log_verbose_level(), 1);
    msg_verbose("shown");
    slurp(logpath, &sb);
    snprintf(pattern, sizeof(pattern), " postern/smtpd\\[%ld\\]: i\n", (long) getpid());
    assert_true(matches(sb_str(&sb), pattern));
    assert_non_null(strstr(sb_str(&sb), "]: warning: w\n"));
    assert_non_null(strstr(sb_str(&sb), "]: error: e\n"));
    assert_null(strstr(sb_str(&sb), "hidden"));
    assert_non_null(strstr(sb_str(&sb), "]: shown\n"));
    log_init("postern/submission", "smtpd");
    msg_info("x");
    slurp(logpath, &sb);
    assert_non_null(strstr(sb_str(&sb), " postern/submission/smtpd["));
    sb_free(&sb);
}

/* test_escaping - a client cannot start a forged line */
static void test_escaping(void **state)
{
    struct strbuf sb = STRBUF_INIT;

    (void) state;
    /* A client "HELO" that tries to start a forged line. */
    msg_info("helo=%s", "evil\r\nNov 22 10:00:00 host postern/smtpd[1]: fake\x7f\x01\tend\xc3\xa9");
    slurp(logpath, &sb);
    assert_non_null(strstr(sb_str(&sb),
                           "helo=evil\\015\\012Nov 22 10:00:00 host postern/smtpd[1]: fake\\177\\001\\011end\xc3\xa9\n"));
    /* Exactly one line: the only newline is the terminator. */
    assert_ptr_equal(strchr(sb_str(&sb), '\n'), sb_str(&sb) + sb_len(&sb) - 1);
    sb_free(&sb);
}

/* test_length_cap - 8 KiB per line, newline kept, escapes never split */
static void test_length_cap(void **state)
{
    struct strbuf sb = STRBUF_INIT;
    char   *big = malloc(20001);

    (void) state;
    assert_non_null(big);
    memset(big, 'x', 20000);
    big[20000] = '\0';
    msg_info("%s", big);
    slurp(logpath, &sb);
    assert_int_equal(sb_len(&sb), 8192);
    assert_int_equal(sb_str(&sb)[8191], '\n');
    assert_ptr_equal(strchr(sb_str(&sb), '\n'), sb_str(&sb) + 8191);

    /* An escape sequence is never cut in half at the limit. */
    memset(big, '\n', 20000);
    msg_info("%s", big);
    slurp(logpath, &sb);
    const char *second = sb_str(&sb) + 8192;
    size_t  len = sb_len(&sb) - 8192;

    assert_true(len <= 8192 && len > 8000);
    assert_int_equal(second[len - 1], '\n');
    assert_true(len >= 5 && memcmp(second + len - 5, "\\012\n", 5) == 0);
    free(big);
    sb_free(&sb);
}

/* test_errno_preserved - logging leaves errno alone; %m works */
static void test_errno_preserved(void **state)
{
    struct strbuf sb = STRBUF_INIT;

    (void) state;
    errno = EACCES;
    msg_warn("open x: %m");
    assert_int_equal(errno, EACCES);
    errno = ENOENT;
    msg_info("nothing");
    msg_verbose("nothing");
    assert_int_equal(errno, ENOENT);
    slurp(logpath, &sb);
    assert_non_null(strstr(sb_str(&sb), "warning: open x: Permission denied\n"));
    sb_free(&sb);
}

/* test_file_mode_and_open_error - 0640, and -1/errno for a bad path */
static void test_file_mode_and_open_error(void **state)
{
    struct stat st;
    char    path[256];

    (void) state;
    assert_int_equal(stat(logpath, &st), 0);
    assert_int_equal(st.st_mode & 07777, 0640);
    assert_true(fcntl(STDERR_FILENO, F_GETFD) >= 0);
    snprintf(path, sizeof(path), "%s/no/such/dir/log", tmpdir);
    errno = 0;
    assert_int_equal(log_open_file(path), -1);
    assert_int_equal(errno, ENOENT);
}

/* run_child - fork, run fn in the child, return the raw wait status */
static int run_child(void (*fn)(void))
{
    pid_t   pid = fork();
    int     status;

    assert_true(pid >= 0);
    if (pid == 0) {
        fn();
        _exit(0);
    }
    assert_int_equal(waitpid(pid, &status, 0), pid);
    return status;
}

/* do_fatal - child body for msg_fatal */
static void do_fatal(void)
{
    msg_fatal("cannot continue: %s", "reason");
}

/* do_panic - child body for msg_panic */
static void do_panic(void)
{
    signal(SIGABRT, SIG_DFL);
    msg_panic("impossible state %d", 7);
}

/* test_fatal_and_panic - exit 1 and abort, each after logging */
static void test_fatal_and_panic(void **state)
{
    struct strbuf sb = STRBUF_INIT;
    int     status;

    (void) state;
    status = run_child(do_fatal);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 1);
    status = run_child(do_panic);
    assert_true(WIFSIGNALED(status));
    assert_int_equal(WTERMSIG(status), SIGABRT);
    slurp(logpath, &sb);
    assert_non_null(strstr(sb_str(&sb), "]: fatal: cannot continue: reason\n"));
    assert_non_null(strstr(sb_str(&sb), "]: panic: impossible state 7\n"));
    sb_free(&sb);
}

static char errpath[160];

/* do_stderr - log with stderr redirected to errpath, on and off */
static void do_stderr(void)
{
    int     fd = open(errpath, O_WRONLY | O_CREAT | O_TRUNC, 0600);

    if (fd < 0 || dup2(fd, STDERR_FILENO) < 0)
        _exit(2);
    log_to_stderr(1);
    msg_warn("to stderr");
    log_to_stderr(0);
    msg_warn("not to stderr");
}

/* test_stderr - log_to_stderr on and off */
static void test_stderr(void **state)
{
    struct strbuf sb = STRBUF_INIT;
    int     status;

    (void) state;
    snprintf(errpath, sizeof(errpath), "%s/stderr", tmpdir);
    status = run_child(do_stderr);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
    slurp(errpath, &sb);
    assert_true(matches(sb_str(&sb), "^[A-Z][a-z]{2} .* postern[^ ]*\\[[0-9]+\\]: warning: to stderr\n$"));
    slurp(logpath, &sb);
    assert_non_null(strstr(sb_str(&sb), "warning: to stderr\n"));
    assert_non_null(strstr(sb_str(&sb), "warning: not to stderr\n"));
    unlink(errpath);
    sb_free(&sb);
}

#define WRITERS 4
#define LINES   500

/* do_writer - many long lines, to catch interleaving between processes */
static void do_writer(void)
{
    char    fill[3000];

    memset(fill, 'a' + getpid() % 26, sizeof(fill) - 1);
    fill[sizeof(fill) - 1] = '\0';
    for (int i = 0; i < LINES; i++)
        msg_info("n=%d %s end", i, fill);
}

/* test_concurrent_writers - lines of several processes never interleave */
static void test_concurrent_writers(void **state)
{
    struct strbuf sb = STRBUF_INIT;
    pid_t   pids[WRITERS];
    int     status;
    int     lines = 0;

    (void) state;
    for (int i = 0; i < WRITERS; i++) {
        pids[i] = fork();
        assert_true(pids[i] >= 0);
        if (pids[i] == 0) {
            do_writer();
            _exit(0);
        }
    }
    for (int i = 0; i < WRITERS; i++) {
        assert_int_equal(waitpid(pids[i], &status, 0), pids[i]);
        assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    }
    slurp(logpath, &sb);
    for (const char *cp = sb_str(&sb), *nl; *cp; cp = nl + 1) {
        nl = strchr(cp, '\n');
        assert_non_null(nl);
        /* Each line is whole: one writer's fill, ending in " end". */
        assert_true(nl - cp > 3004);
        assert_memory_equal(nl - 4, " end", 4);
        const char *fill = strstr(cp, "]: n=");

        assert_non_null(fill);
        fill = strchr(fill + 5, ' ') + 1;
        for (const char *f = fill; f < nl - 4; f++)
            assert_int_equal(*f, *fill);
        lines++;
    }
    assert_int_equal(lines, WRITERS * LINES);
    sb_free(&sb);
}

/* main - run the log tests */
int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_default_name_and_format, setup, teardown),
        cmocka_unit_test_setup_teardown(test_levels, setup, teardown),
        cmocka_unit_test_setup_teardown(test_escaping, setup, teardown),
        cmocka_unit_test_setup_teardown(test_length_cap, setup, teardown),
        cmocka_unit_test_setup_teardown(test_errno_preserved, setup, teardown),
        cmocka_unit_test_setup_teardown(test_file_mode_and_open_error, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fatal_and_panic, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stderr, setup, teardown),
        cmocka_unit_test_setup_teardown(test_concurrent_writers, setup, teardown),
    };

    umask(022);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
