/*
 * test_service - lib/service.c: a tiny daemon run with service_main() in a
 * forked child, with a listening UNIX socket at fd 3 as master would pass it.
 * Covers accept and hand-over, graceful stop on SIGTERM (waits for the open
 * client, stops accepting), service_retire() from the daemon, unprivileged
 * mode and its warning, and the fatal start-up errors (exit 1).
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pwd.h>
#include <grp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include <event2/event.h>

#include "privsep.h"
#include "service.h"
#include "strbuf.h"

static char tmpdir[64];
static char sockpath[96];
static char logpath[128];

/* The daemon under test: greets, then echoes one line per read; "RETIRE" retires. */
static int clients[16];
static unsigned nclients;
static struct event *client_ev[16];

/* drop_client - forget client i */
static void drop_client(struct service *svc, int i)
{
    event_free(client_ev[i]);
    close(clients[i]);
    clients[i] = -1;
    nclients--;
    service_check_idle(svc);
}

/* client_read - echo, or retire on request */
static void client_read(evutil_socket_t fd, short what, void *arg)
{
    struct service *svc = arg;
    char    buf[256];
    ssize_t n = read(fd, buf, sizeof(buf));
    int     i;

    (void) what;
    for (i = 0; i < 16 && clients[i] != fd; i++)
        continue;
    if (n <= 0) {
        if (n < 0 && errno == EAGAIN)
            return;
        drop_client(svc, i);
        return;
    }
    if (n >= 6 && memcmp(buf, "RETIRE", 6) == 0)
        service_retire(svc, "asked to");
    if (write(fd, buf, (size_t) n) < 0)
        drop_client(svc, i);
}

/* t_accept - greet a client whose fd is non-blocking and close-on-exec */
static void t_accept(struct service *svc, int fd, const struct sockaddr_storage *peer,
                     socklen_t peer_len, int index)
{
    int     flags = fcntl(fd, F_GETFL);
    char    greet[64];
    int     i;

    (void) peer;
    (void) peer_len;
    for (i = 0; i < 16 && clients[i] >= 0; i++)
        continue;
    if (i == 16 || !(flags & O_NONBLOCK) || !(fcntl(fd, F_GETFD) & FD_CLOEXEC)) {
        close(fd);                      /* the test sees no greeting */
        return;
    }
    snprintf(greet, sizeof(greet), "hello %d %s\n", index, svc->unprivileged ? "unpriv" : "priv");
    if (write(fd, greet, strlen(greet)) < 0) {
        close(fd);
        return;
    }
    clients[i] = fd;
    client_ev[i] = event_new(svc->base, fd, EV_READ | EV_PERSIST, client_read, svc);
    event_add(client_ev[i], NULL);
    nclients++;
}

/* t_active - clients still connected */
static unsigned t_active(struct service *svc)
{
    (void) svc;
    return nclients;
}

static const struct service_ops t_ops = {
    .program = "testd",
    .user_param = "mail_owner",
    .dir_param = "queue_directory",
    .accept = t_accept,
    .active = t_active,
};

/* write_file - create path with text */
static void write_file(const char *path, const char *text)
{
    FILE   *fp = fopen(path, "w");

    assert_non_null(fp);
    fputs(text, fp);
    assert_int_equal(fclose(fp), 0);
}

/* setup - temp dir with main.cf */
static int setup(void **state)
{
    char    path[256];
    char    text[512];

    (void) state;
    snprintf(tmpdir, sizeof(tmpdir), "/tmp/test_service.XXXXXX");
    if (mkdtemp(tmpdir) == NULL || chmod(tmpdir, 0777) != 0)
        return -1;
    snprintf(sockpath, sizeof(sockpath), "%s/sock", tmpdir);
    snprintf(logpath, sizeof(logpath), "%s/maillog", tmpdir);
    snprintf(path, sizeof(path), "%s/main.cf", tmpdir);
    snprintf(text, sizeof(text), "queue_directory = %s\nmaillog_file = %s\ngraceful_stop_timeout = 5s\n",
             tmpdir, logpath);
    write_file(path, text);
    return 0;
}

/* teardown - remove the temp dir */
static int teardown(void **state)
{
    char    cmd[128];

    (void) state;
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
    return system(cmd) == 0 ? 0 : -1;
}

/* listen_unix - a listening socket at sockpath */
static int listen_unix(void)
{
    struct sockaddr_un sun;
    int     fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

    assert_true(fd >= 0);
    memset(&sun, 0, sizeof(sun));
    sun.sun_family = AF_UNIX;
    snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", sockpath);
    unlink(sockpath);
    assert_int_equal(bind(fd, (struct sockaddr *) &sun, sizeof(sun)), 0);
    assert_int_equal(chmod(sockpath, 0666), 0);
    assert_int_equal(listen(fd, 16), 0);
    return fd;
}

/* connect_unix - a client of sockpath */
static int connect_unix(void)
{
    struct sockaddr_un sun;
    int     fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

    assert_true(fd >= 0);
    memset(&sun, 0, sizeof(sun));
    sun.sun_family = AF_UNIX;
    snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", sockpath);
    assert_int_equal(connect(fd, (struct sockaddr *) &sun, sizeof(sun)), 0);
    return fd;
}

/* read_line - what arrives within ms milliseconds (empty on timeout or EOF) */
static void read_line(int fd, char *buf, size_t size, int ms)
{
    struct pollfd pfd = {fd, POLLIN, 0};
    ssize_t n = 0;

    buf[0] = '\0';
    if (poll(&pfd, 1, ms) == 1)
        n = read(fd, buf, size - 1);
    buf[n > 0 ? n : 0] = '\0';
}

/* start_daemon - fork and run service_main with lfd at fd 3; as nobody if asked */
static pid_t start_daemon(int lfd, const char *listen_fds, bool as_nobody, char **extra)
{
    pid_t   pid = fork();

    assert_true(pid >= 0);
    if (pid == 0) {
        char   *argv[16] = {"testd", "-c", tmpdir, "-n", "test"};
        int     argc = 5;

        for (int i = 0; i < 16; i++)
            clients[i] = -1;
        while (extra && *extra && argc < 15)
            argv[argc++] = *extra++;
        argv[argc] = NULL;
        if (lfd >= 0 && (dup2(lfd, 3) != 3))
            _exit(99);
        /* As under master: nothing but the listeners above fd 2 (ctest may leave some open). */
        close_range(4, ~0U, 0);
        if (listen_fds)
            setenv("POSTERN_LISTEN_FDS", listen_fds, 1);
        else
            unsetenv("POSTERN_LISTEN_FDS");
        if (as_nobody && geteuid() == 0) {
            struct passwd *pw = getpwnam("nobody");

            if (pw == NULL || setgroups(0, NULL) != 0 || setgid(pw->pw_gid) != 0
                || setuid(pw->pw_uid) != 0)
                _exit(98);
        }
        _exit(service_main(argc, argv, &t_ops));
    }
    return pid;
}

/* wait_exit - exit status within seconds, or -1 (and the child is killed) */
static int wait_exit(pid_t pid, int seconds)
{
    int     status;

    for (int i = 0; i < seconds * 20; i++) {
        pid_t   r = waitpid(pid, &status, WNOHANG);

        if (r == pid)
            return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
        usleep(50000);
    }
    kill(pid, SIGKILL);
    waitpid(pid, &status, 0);
    return -1;
}

/* log_text - the daemon's maillog */
static void log_text(struct strbuf *sb)
{
    char    buf[4096];
    ssize_t n;
    int     fd = open(logpath, O_RDONLY);

    sb_reset(sb);
    if (fd < 0)
        return;
    while ((n = read(fd, buf, sizeof(buf))) > 0)
        sb_append(sb, buf, (size_t) n);
    close(fd);
}

/* test_accept_and_graceful_stop - SIGTERM waits for the open client, accepts nobody new */
static void test_accept_and_graceful_stop(void **state)
{
    struct strbuf log = STRBUF_INIT;
    char    buf[128];
    int     lfd = listen_unix();
    pid_t   pid = start_daemon(lfd, "1", false, NULL);
    int     c1 = connect_unix();
    int     c2;

    (void) state;
    read_line(c1, buf, sizeof(buf), 3000);
    assert_string_equal(buf, privsep_is_root() ? "hello 0 priv\n" : "hello 0 unpriv\n");
    assert_int_equal(write(c1, "ping\n", 5), 5);
    read_line(c1, buf, sizeof(buf), 3000);
    assert_string_equal(buf, "ping\n");

    assert_int_equal(kill(pid, SIGTERM), 0);
    usleep(300000);
    assert_int_equal(waitpid(pid, NULL, WNOHANG), 0);          /* the client keeps it alive */
    assert_int_equal(write(c1, "more\n", 5), 5);
    read_line(c1, buf, sizeof(buf), 3000);
    assert_string_equal(buf, "more\n");
    /* The listener is closed in the daemon: a new client queues at our copy, unserved. */
    c2 = connect_unix();
    read_line(c2, buf, sizeof(buf), 500);
    assert_string_equal(buf, "");
    close(c1);
    assert_int_equal(wait_exit(pid, 3), 0);
    close(c2);
    close(lfd);

    log_text(&log);
    assert_non_null(strstr(sb_str(&log), "testd["));
    assert_non_null(strstr(sb_str(&log), "daemon started -- service test"));
    assert_non_null(strstr(sb_str(&log), "stopping on SIGTERM"));
    assert_non_null(strstr(sb_str(&log), "daemon stopped -- service test"));
    sb_free(&log);
}

/* test_retire_and_unprivileged - retire from the daemon; warning without root */
static void test_retire_and_unprivileged(void **state)
{
    struct strbuf log = STRBUF_INIT;
    char    buf[128];
    int     lfd = listen_unix();
    char   *extra[] = {"-o", "syslog_name=postern/test", "-u", "-r", NULL};
    pid_t   pid = start_daemon(lfd, "1", true, extra);
    int     c1 = connect_unix();

    (void) state;
    read_line(c1, buf, sizeof(buf), 3000);
    assert_string_equal(buf, "hello 0 unpriv\n");
    assert_int_equal(write(c1, "RETIRE\n", 7), 7);
    read_line(c1, buf, sizeof(buf), 3000);
    assert_string_equal(buf, "RETIRE\n");
    close(c1);
    assert_int_equal(wait_exit(pid, 3), 0);
    close(lfd);
    log_text(&log);
    assert_non_null(strstr(sb_str(&log), "postern/test/testd["));
    assert_non_null(strstr(sb_str(&log),
                           "warning: running without root privileges: no chroot, no user change"));
    assert_non_null(strstr(sb_str(&log), "retiring: asked to"));
    sb_free(&log);
}

/* test_graceful_timeout - graceful_stop_timeout bounds the wait */
static void test_graceful_timeout(void **state)
{
    char    buf[128];
    int     lfd = listen_unix();
    char   *extra[] = {"-o", "graceful_stop_timeout=1s", NULL};
    pid_t   pid = start_daemon(lfd, "1", false, extra);
    int     c1 = connect_unix();
    time_t  t0;

    (void) state;
    read_line(c1, buf, sizeof(buf), 3000);
    assert_non_null(strstr(buf, "hello 0"));
    t0 = time(NULL);
    assert_int_equal(kill(pid, SIGTERM), 0);
    assert_int_equal(wait_exit(pid, 4), 0);
    assert_true(time(NULL) - t0 >= 1);
    close(c1);
    close(lfd);
}

/* test_startup_errors - bad fds, options and main.cf exit 1 */
static void test_startup_errors(void **state)
{
    struct strbuf log = STRBUF_INIT;
    char    path[256];
    int     lfd = listen_unix();
    char   *bad_o[] = {"-o", "graceful_stop_timeout=forever", NULL};
    char   *bad_t[] = {"-t", "fifo", NULL};
    int     devnull = open("/dev/null", O_WRONLY);
    int     saved = dup(STDERR_FILENO);
    int     rc[6];

    (void) state;
    /* Keep the expected fatal messages out of the test output. */
    dup2(devnull, STDERR_FILENO);
    rc[0] = wait_exit(start_daemon(lfd, "65", false, NULL), 3);
    rc[1] = wait_exit(start_daemon(lfd, "1x", false, NULL), 3);
    rc[2] = wait_exit(start_daemon(lfd, "2", false, NULL), 3);  /* fd 4 is no listener */
    rc[3] = wait_exit(start_daemon(lfd, "1", false, bad_o), 3);
    rc[4] = wait_exit(start_daemon(lfd, "1", false, bad_t), 3);
    /* An ordinary file at fd 3 is no listening socket. */
    rc[5] = wait_exit(start_daemon(devnull, "1", false, NULL), 3);
    dup2(saved, STDERR_FILENO);
    for (int i = 0; i < 6; i++) {
        if (rc[i] != 1)
            fprintf(stderr, "case %d: exit status %d\n", i, rc[i]);
        assert_int_equal(rc[i], 1);
    }
    log_text(&log);
    assert_non_null(strstr(sb_str(&log), "fatal: bad POSTERN_LISTEN_FDS \"65\""));
    assert_non_null(strstr(sb_str(&log), "fatal: fd 3 is not a socket"));
    snprintf(path, sizeof(path), "%s/main.cf", tmpdir);
    write_file(path, "graceful_stop_timeout = soon\n");
    dup2(devnull, STDERR_FILENO);
    rc[0] = wait_exit(start_daemon(lfd, "1", false, NULL), 3);
    dup2(saved, STDERR_FILENO);
    assert_int_equal(rc[0], 1);
    close(saved);
    close(devnull);
    close(lfd);
    sb_free(&log);
}

/* main - run the service tests */
int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_accept_and_graceful_stop, setup, teardown),
        cmocka_unit_test_setup_teardown(test_retire_and_unprivileged, setup, teardown),
        cmocka_unit_test_setup_teardown(test_graceful_timeout, setup, teardown),
        cmocka_unit_test_setup_teardown(test_startup_errors, setup, teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
