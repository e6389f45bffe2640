/*
 * master_spawn - start the daemons, collect them when they end, restart them.
 *
 * Interface (master.h):
 *   master_spawn_all(ms)        every service up to maxproc processes
 *   master_spawn_reap(ms)       on SIGCHLD: waitpid loop, restart policy
 *   master_spawn_detach(ms)     children become retiring ones (reload, stop)
 *   master_spawn_signal(ms, sig), master_spawn_wait_all(ms, timeout)
 *   master_spawn_throttle_delay(failures, cap)
 *
 * A child gets the service's listening sockets at fd 3, 4, ... (count in
 * POSTERN_LISTEN_FDS), the write end of a status pipe after them (its number
 * in POSTERN_STATUS_FD: a child writes "R" there when it retires on its own,
 * e.g. because a table changed, and master starts its successor at once, so
 * the port is never left unserved while the old process finishes), master's
 * pid in POSTERN_MASTER_PID with SIGTERM as its parent-death signal,
 * /dev/null on stdin and stdout (and stderr, unless master runs in the
 * foreground), default signal handling, an empty signal mask, and nothing
 * else open. It runs
 *   $daemon_directory/COMMAND -c CONFIG_DIR -n SERVICE -t inet|unix [-u] [-r] [-v] ARGS...
 * so /proc/PID/cmdline tells which service a process belongs to.
 *
 * Restart policy: a child that ran MASTER_START_GRACE seconds or more is
 * replaced at once. One that died sooner failed at start; consecutive
 * failures wait 1, 2, 4 ... seconds, at most service_throttle_time, before
 * the next start. A child that exits with status 0 after at least a second
 * retired on purpose (a map changed) and is replaced at once, not counted.
 *
 * Diagnostics: "process PATH pid N killed by signal S", "... exit status S",
 * "service NAME: process exited N times at start; next start in S s".
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include "log.h"
#include "mem.h"

#include "master.h"

struct master_child {
    pid_t   pid;
    struct master_serv *serv;           /* NULL once retiring: its exit is expected */
    char   *path;                       /* for messages after serv is gone */
    char   *service_name;
    double  started;                    /* monotonic seconds */
    bool    sent_term;                  /* we asked it to stop */
    int     status_fd;                  /* read end of the child's status pipe */
    struct event *status_ev;
    struct master_child *next;
};

/* now_mono - monotonic seconds; wall clock jumps must not look like crashes */
static double now_mono(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double) ts.tv_sec + ts.tv_nsec / 1e9;
}

long long master_spawn_throttle_delay(unsigned failures, long long cap)
{
    long long delay;

    if (cap < 1)
        cap = 1;
    if (failures == 0)
        return 0;
    delay = failures > 31 ? cap : 1LL << (failures - 1);
    return delay > cap ? cap : delay;
}

/* close_from - close every descriptor >= lowfd */
static void close_from(int lowfd)
{
    if (close_range((unsigned) lowfd, ~0U, 0) == 0)
        return;
    long    max = sysconf(_SC_OPEN_MAX);

    if (max < 0 || max > 65536)
        max = 65536;
    for (int fd = lowfd; fd < max; fd++)
        (void) close(fd);
}

/* child_exec - in the new process: set up descriptors, environment, signals; exec */
static void __attribute__((noreturn)) child_exec(struct master_state *ms, struct master_serv *serv,
                                                  char **argv, int *high, int status_w, pid_t master_pid)
{
    size_t  n = serv->nlisteners;
    sigset_t only_hup;
    char    count[24];
    char    status_fd[24];
    char    master_pid_text[24];
    int     null;

    /*
     * Die with master, and notice if it died before the signal was armed: an
     * orphan would keep serving (and holding the service's ports) with nobody
     * to stop it. The signal survives exec; the service checks the pid again.
     */
    if (prctl(PR_SET_PDEATHSIG, SIGTERM, 0, 0, 0) != 0 || getppid() != master_pid)
        _exit(0);

    for (int sig = 1; sig < NSIG; sig++)
        (void) signal(sig, SIG_DFL);
    sigemptyset(&only_hup);
    sigaddset(&only_hup, SIGHUP);
    /* The mask (all but SIGHUP) is cleared last, when libevent's handlers can no longer run. */

    null = open("/dev/null", O_RDWR);
    if (null < 0)
        _exit(126);
    if (dup2(null, 0) < 0 || dup2(null, 1) < 0 || (!ms->foreground && dup2(null, 2) < 0))
        _exit(126);

    /*
     * Move the sockets out of the way first: a socket's own number may be one
     * of 3..3+n-1, which dup2 of an earlier one would overwrite. F_DUPFD and
     * dup2 both give copies without close-on-exec.
     */
    for (size_t i = 0; i < n; i++) {
        high[i] = fcntl(serv->listeners[i].fd, F_DUPFD, (int) (3 + n + 1));
        if (high[i] < 0)
            _exit(126);
    }
    high[n] = fcntl(status_w, F_DUPFD, (int) (3 + n + 1));
    if (high[n] < 0)
        _exit(126);
    for (size_t i = 0; i <= n; i++)
        if (dup2(high[i], (int) (3 + i)) < 0)
            _exit(126);
    close_from((int) (3 + n + 1));

    snprintf(count, sizeof(count), "%zu", n);
    snprintf(status_fd, sizeof(status_fd), "%zu", 3 + n);
    snprintf(master_pid_text, sizeof(master_pid_text), "%ld", (long) master_pid);
    if (setenv("POSTERN_LISTEN_FDS", count, 1) < 0 || setenv("POSTERN_STATUS_FD", status_fd, 1) < 0
        || setenv("POSTERN_MASTER_PID", master_pid_text, 1) < 0)
        _exit(126);
    /* A reload's SIGHUP right after the fork must not kill a daemon that cannot take it yet:
     * it stays pending (blocked across exec) until the service unblocks it (lib/service.c). */
    sigprocmask(SIG_SETMASK, &only_hup, NULL);
    execv(serv->path, argv);
    _exit(127);
}

/* status_readable - a child said something on its status pipe, or exited */
static void status_readable(evutil_socket_t fd, short what, void *arg)
{
    struct master_child *child = arg;
    char    buf[64];
    ssize_t n = read(fd, buf, sizeof(buf));

    (void) what;
    if (n < 0 && (errno == EINTR || errno == EAGAIN))
        return;
    if (n > 0 && memchr(buf, 'R', (size_t) n) && child->serv != NULL) {
        struct master_serv *serv = child->serv;

        /* retiring on its own: from now on it is not one of the service's processes */
        msg_verbose("service %s: pid %d retires; starting its successor", serv->def->name, (int) child->pid);
        if (serv->nproc > 0)
            serv->nproc--;
        child->serv = NULL;
        master_spawn_all(serv->ms);
        return;
    }
    if (n <= 0)
        event_del(child->status_ev);    /* EOF: the child is gone; reaping frees the rest */
}

/* spawn_one - start one process for serv; false if fork failed */
static bool spawn_one(struct master_state *ms, struct master_serv *serv)
{
    char  **argv = master_cf_daemon_argv(serv->def, ms->config_dir, ms->verbose ? MASTER_ARGV_VERBOSE : 0);
    int    *high = xcalloc(serv->nlisteners + 2, sizeof(int));
    int     status_pipe[2];
    sigset_t all, saved;
    pid_t   master_pid = getpid();
    pid_t   pid;

    if (pipe2(status_pipe, O_CLOEXEC) < 0) {
        msg_warn("service %s: pipe: %s", serv->def->name, strerror(errno));
        free(argv);
        free(high);
        return false;
    }

    /*
     * Block signals across fork: libevent's handler, if it ran in the child
     * before exec, would write to the signal socketpair master shares.
     */
    sigfillset(&all);
    sigprocmask(SIG_BLOCK, &all, &saved);
    pid = fork();
    if (pid == 0)
        child_exec(ms, serv, argv, high, status_pipe[1], master_pid);
    sigprocmask(SIG_SETMASK, &saved, NULL);
    free(argv);
    free(high);
    close(status_pipe[1]);
    if (pid < 0) {
        msg_warn("service %s: fork: %s", serv->def->name, strerror(errno));
        close(status_pipe[0]);
        return false;
    }

    struct master_child *child = xcalloc(1, sizeof(*child));

    child->status_fd = status_pipe[0];
    (void) fcntl(child->status_fd, F_SETFL, O_NONBLOCK);
    child->status_ev = event_new(ms->base, child->status_fd, EV_READ | EV_PERSIST, status_readable, child);
    if (child->status_ev == NULL || event_add(child->status_ev, NULL) < 0)
        msg_fatal("event_new: out of memory");
    child->pid = pid;
    child->serv = serv;
    child->path = xstrdup(serv->path);
    child->service_name = xstrdup(serv->def->name);
    child->started = now_mono();
    child->next = ms->children;
    ms->children = child;
    ms->nchildren++;
    serv->nproc++;
    msg_verbose("service %s: started %s pid %d", serv->def->name, serv->path, (int) pid);
    return true;
}

/* throttle_done - the back-off delay of a service is over */
static void throttle_done(evutil_socket_t fd, short what, void *arg)
{
    struct master_serv *serv = arg;

    (void) fd;
    (void) what;
    serv->throttled = false;
    master_spawn_all(serv->ms);
}

/* throttle - hold off new processes of serv for delay seconds */
static void throttle(struct master_serv *serv, long long delay)
{
    struct timeval tv = { (time_t) delay, 0 };

    if (serv->throttle_ev == NULL)
        serv->throttle_ev = evtimer_new(serv->ms->base, throttle_done, serv);
    serv->throttled = true;
    evtimer_add(serv->throttle_ev, &tv);
}

void master_spawn_all(struct master_state *ms)
{
    if (ms->stopping)
        return;
    for (size_t i = 0; i < ms->nservs; i++) {
        struct master_serv *serv = &ms->servs[i];
        unsigned want = serv->def->maxproc > 0 ? (unsigned) serv->def->maxproc : 1;

        /* A service whose every address failed has nothing to serve. */
        if (serv->nlisteners == 0)
            continue;
        while (!serv->throttled && serv->nproc < want) {
            if (!spawn_one(ms, serv)) {
                throttle(serv, 1);      /* out of processes: try again, not in a loop */
                break;
            }
        }
    }
}

/* report_end - log an abnormal end, as Postfix does */
static void report_end(const struct master_child *child, int status)
{
    if (WIFSIGNALED(status)) {
        if (child->sent_term && WTERMSIG(status) == SIGTERM)
            return;
        msg_warn("process %s pid %d killed by signal %d", child->path, (int) child->pid,
                 WTERMSIG(status));
    } else if (WIFEXITED(status) && WEXITSTATUS(status) != 0) {
        msg_warn("process %s pid %d exit status %d", child->path, (int) child->pid,
                 WEXITSTATUS(status));
        if (WEXITSTATUS(status) == 127 && access(child->path, X_OK) < 0)
            msg_warn("cannot execute %s: %s", child->path, strerror(errno));
    }
}

/* child_ended - apply the restart policy to one dead child of a current service */
static void child_ended(struct master_child *child, int status)
{
    struct master_serv *serv = child->serv;
    double  ran = now_mono() - child->started;
    bool    clean = WIFEXITED(status) && WEXITSTATUS(status) == 0;

    if (serv->nproc > 0)
        serv->nproc--;
    if ((clean && ran >= 1.0) || (!clean && ran >= MASTER_START_GRACE)) {
        serv->failures = 0;
        return;
    }
    serv->failures++;

    long long cap = config_time(serv->cfg, "service_throttle_time");
    long long delay = master_spawn_throttle_delay(serv->failures, cap);

    msg_warn("service %s: process exited %u time%s at start; next start in %lld s",
             serv->def->name, serv->failures, serv->failures == 1 ? "" : "s", delay);
    throttle(serv, delay);
}

/* find_child - unlink the record of pid from the list */
static struct master_child *find_child(struct master_state *ms, pid_t pid)
{
    for (struct master_child **pp = &ms->children; *pp; pp = &(*pp)->next) {
        if ((*pp)->pid == pid) {
            struct master_child *child = *pp;

            *pp = child->next;
            ms->nchildren--;
            return child;
        }
    }
    return NULL;
}

/* free_child - release a child record */
static void free_child(struct master_child *child)
{
    if (child->status_ev)
        event_free(child->status_ev);
    close(child->status_fd);
    free(child->path);
    free(child->service_name);
    free(child);
}

void master_spawn_reap(struct master_state *ms)
{
    for (;;) {
        int     status;
        pid_t   pid = waitpid(-1, &status, WNOHANG);

        if (pid < 0 && errno == EINTR)
            continue;
        if (pid <= 0)
            break;

        struct master_child *child = find_child(ms, pid);

        if (child == NULL) {
            msg_warn("reaped unknown process pid %d", (int) pid);
            continue;
        }
        report_end(child, status);
        if (child->serv && !ms->stopping)
            child_ended(child, status);
        else
            msg_verbose("service %s: retired process pid %d is gone", child->service_name, (int) pid);
        free_child(child);
    }
    if (ms->stopping) {
        if (ms->nchildren == 0)
            master_stopped(ms);
        return;
    }
    master_spawn_all(ms);
}

unsigned master_spawn_detach(struct master_state *ms)
{
    unsigned n = 0;

    for (struct master_child *c = ms->children; c; c = c->next) {
        if (c->serv)
            c->serv->nproc = 0;
        c->serv = NULL;
        n++;
    }
    return n;
}

void master_spawn_signal(struct master_state *ms, int sig)
{
    for (struct master_child *c = ms->children; c; c = c->next) {
        if (sig == SIGTERM)
            c->sent_term = true;
        if (sig == SIGKILL)
            msg_warn("process %s pid %d (service %s) did not stop in time; killing it",
                     c->path, (int) c->pid, c->service_name);
        if (kill(c->pid, sig) < 0 && errno != ESRCH)
            msg_warn("kill %d pid %d: %s", sig, (int) c->pid, strerror(errno));
    }
}

void master_spawn_wait_all(struct master_state *ms, int timeout_seconds)
{
    double  deadline = now_mono() + timeout_seconds;

    /* After SIGKILL this takes milliseconds; the bound guards against a stuck (D state) child. */
    while (ms->children && now_mono() < deadline) {
        int     status;
        pid_t   pid = waitpid(-1, &status, WNOHANG);

        if (pid > 0) {
            struct master_child *child = find_child(ms, pid);

            if (child) {
                report_end(child, status);
                free_child(child);
            }
            continue;
        }
        if (pid < 0 && errno == ECHILD)
            break;
        usleep(20000);
    }
    while (ms->children) {
        struct master_child *child = ms->children;

        msg_warn("process %s pid %d did not go away", child->path, (int) child->pid);
        ms->children = child->next;
        ms->nchildren--;
        free_child(child);
    }
}
