/*
 * service - the skeleton every Postern daemon runs in (like Postfix's
 * multi_server).
 *
 * Interface (service.h): service_main(), service_retire(),
 * service_watch_maps(), service_check_idle().
 *
 * Command line, as master builds it:
 *   PROGRAM -c CONFIG_DIR [-n SERVICE] [-t inet|unix] [-u] [-r] [-v] [-C] [-o name=value]...
 *   (-C: load the configuration, run the daemon's own set-up checks, exit 0 or
 *   1 with the reason on stderr: what "postctl check" asks every service)
 * -u: become the user named by ops->user_param (else stay root, confined);
 * -r: chroot to the directory named by ops->dir_param; -v: verbose, and log
 * to standard error too. The listening sockets are fds 3 .. 3+N-1 with N in
 * POSTERN_LISTEN_FDS (0..64; unset means 0).
 *
 * Order of start-up, and why:
 *  - fds 0-2 are made to exist (on /dev/null) first, so that no accepted
 *    client socket can ever become "standard error" and receive log lines;
 *  - main.cf and -o overrides, then the log (the log file is opened before
 *    the chroot hides its path), then ops->init while still privileged, then
 *    privsep_drop(), then ops->ready;
 *  - the parent-death signal is set again after the drop, because the
 *    kernel clears it when the credentials change.
 *
 * Stopping: SIGTERM, SIGINT or service_retire() close the listeners (master
 * has already started, or will start, a successor on the same sockets), call
 * ops->stop, and exit as soon as ops->active() is 0: checked at once and on
 * every service_check_idle(); graceful_stop_timeout bounds the wait. On the
 * way out ops->done releases the daemon's state while the event base it uses
 * still exists, so a long-running daemon ends with nothing leaked (what
 * tests/integration/test_valgrind.py checks). A
 * second SIGINT exits at once (a developer at a terminal). SIGHUP retires
 * the process (master reloads by replacing processes): it stops accepting and
 * exits when its clients are done, without hurrying them. SIGPIPE is ignored: a vanished
 * client is an EPIPE to handle, not a reason to die.
 *
 * The process also stops when master dies: master arms PR_SET_PDEATHSIG
 * before exec and names itself in POSTERN_MASTER_PID, and getppid() is
 * compared with that pid once the loop runs and every few seconds, for the
 * moments the signal cannot cover (master died before it was armed, or while
 * the credential change had cleared it). It also retires when a map registered with
 * service_watch_maps() was replaced beyond reach (checked every minute).
 *
 * Diagnostics: configuration and set-up errors are fatal ("fatal: ..." and
 * exit 1; master throttles restarts). accept() running out of descriptors
 * is a warning, and accepting pauses for a second instead of spinning.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <event2/event.h>

#include "config.h"
#include "log.h"
#include "map.h"
#include "mem.h"
#include "privsep.h"
#include "service.h"
#include "strbuf.h"

#define SERVICE_MAX_LISTEN_FDS  64
#define SERVICE_FIRST_FD        3
#define SERVICE_ACCEPT_BATCH    64      /* then let other events run */
#define SERVICE_PAUSE_SECS      1       /* after EMFILE and the like */
#define SERVICE_PARENT_SECS     5
#define SERVICE_MAPS_SECS       1     /* an fstat per table: cheap, and changes apply at once */

struct listener {
    int     fd;                         /* -1 once closed */
    int     index;
    struct event *ev;
};

/* One daemon per process: the skeleton's state is process-wide. */
static struct service svc;
static struct listener listeners[SERVICE_MAX_LISTEN_FDS];
static int listener_count;
static bool accept_paused;
static struct event *resume_ev;
static struct event *parent_ev;
static struct event *maps_ev;
static int status_fd = -1;              /* write end of master's status pipe */
static struct event *grace_ev;
#define SERVICE_NSIGNALS 3
static struct event *sig_events[SERVICE_NSIGNALS];
static struct maplist **watched;
static size_t watched_count;
static pid_t orig_ppid;
static bool exit_requested;

/* usage - what master should have passed */
static void usage(const char *program)
{
    msg_fatal("usage: %s -c CONFIG_DIR [-n SERVICE] [-t inet|unix] [-u] [-r] [-v] [-o name=value]...",
              program);
}

/* ensure_std_fds - fds 0-2 must be open so no client socket lands on them */
static void ensure_std_fds(void)
{
    for (int fd = 0; fd <= 2; fd++) {
        if (fcntl(fd, F_GETFD) >= 0 || errno != EBADF)
            continue;
        int     nfd = open("/dev/null", O_RDWR);

        if (nfd < 0)
            _exit(1);                   /* cannot even report: nothing is safe */
        if (nfd != fd)
            _exit(1);
    }
}

/* parse_listen_fds - count from POSTERN_LISTEN_FDS, each fd checked and prepared; -1 with err */
static int parse_listen_fds(struct strbuf *err)
{
    const char *value = getenv("POSTERN_LISTEN_FDS");
    long    count = 0;
    struct stat st;

    if (value != NULL) {
        char   *end;

        errno = 0;
        count = strtol(value, &end, 10);
        if (*value == '\0' || *end != '\0' || errno != 0 || count < 0 || count > SERVICE_MAX_LISTEN_FDS) {
            sb_printf(err, "bad POSTERN_LISTEN_FDS \"%.20s\": expected a number from 0 to %d",
                      value, SERVICE_MAX_LISTEN_FDS);
            return -1;
        }
    }
    /* Not for our own children, should a daemon ever run a command. */
    unsetenv("POSTERN_LISTEN_FDS");
    for (int i = 0; i < count; i++) {
        int     fd = SERVICE_FIRST_FD + i;
        int     flags;

        if (fstat(fd, &st) != 0) {
            sb_printf(err, "listening socket %d of %ld (fd %d): %s", i + 1, count, fd, strerror(errno));
            return -1;
        }
        if (!S_ISSOCK(st.st_mode)) {
            sb_printf(err, "fd %d is not a socket; POSTERN_LISTEN_FDS=%ld is wrong", fd, count);
            return -1;
        }
        flags = fcntl(fd, F_GETFL);
        if (flags < 0 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0
            || fcntl(fd, F_SETFD, FD_CLOEXEC) < 0) {
            sb_printf(err, "set up listening fd %d: %s", fd, strerror(errno));
            return -1;
        }
        listeners[i].fd = fd;
        listeners[i].index = i;
        listeners[i].ev = NULL;
        listener_count = i + 1;
    }
    return 0;
}

/* parse_status_fd - the write end of master's status pipe (POSTERN_STATUS_FD), if any */
static void parse_status_fd(void)
{
    const char *value = getenv("POSTERN_STATUS_FD");
    struct stat st;
    char   *end;
    long    fd;

    unsetenv("POSTERN_STATUS_FD");
    if (value == NULL)
        return;
    errno = 0;
    fd = strtol(value, &end, 10);
    if (*end != '\0' || errno != 0 || fd < SERVICE_FIRST_FD || fd >= SERVICE_FIRST_FD + 1 + SERVICE_MAX_LISTEN_FDS
        || fstat((int) fd, &st) != 0 || !S_ISFIFO(st.st_mode)) {
        msg_warn("ignoring bad POSTERN_STATUS_FD \"%.20s\"", value);
        return;
    }
    (void) fcntl((int) fd, F_SETFD, FD_CLOEXEC);
    status_fd = (int) fd;
}

/* tell_master_retiring - so master starts our successor now, not when we exit */
static void tell_master_retiring(void)
{
    if (status_fd >= 0 && write(status_fd, "R", 1) < 0)
        msg_warn("cannot tell master that this process retires: %m");
}

/* finish - leave the event loop; service_main returns */
static void finish(void)
{
    exit_requested = true;
    if (svc.base)
        event_base_loopbreak(svc.base);
}

/* active_clients - what the daemon still serves */
static unsigned active_clients(void)
{
    return svc.ops->active ? svc.ops->active(&svc) : 0;
}

/* grace_expired - the clients had their time */
static void grace_expired(evutil_socket_t fd, short what, void *arg)
{
    (void) fd;
    (void) what;
    (void) arg;
    msg_warn("graceful stop timeout: exiting with %u client(s) still active", active_clients());
    finish();
}

/* close_listeners - stop accepting; master keeps its copies of the sockets */
static void close_listeners(void)
{
    for (int i = 0; i < listener_count; i++) {
        if (listeners[i].ev)
            event_del(listeners[i].ev);
        if (listeners[i].fd >= 0) {
            close(listeners[i].fd);
            listeners[i].fd = -1;
        }
    }
    if (resume_ev)
        event_del(resume_ev);
}

/* stop_accepting - leave new clients to the other processes of the service */
static void stop_accepting(void)
{
    if (svc.stopping)
        return;
    svc.stopping = true;
    close_listeners();
}

/* service_stop - SIGTERM: let idle clients go, exit within graceful_stop_timeout */
static void service_stop(void)
{
    long long timeout;
    struct timeval tv;

    if (grace_ev != NULL)
        return;
    stop_accepting();
    if (svc.ops->stop)
        svc.ops->stop(&svc);
    if (exit_requested)
        return;
    timeout = config_time(svc.cfg, "graceful_stop_timeout");
    if (timeout < 0)
        timeout = 0;
    if (svc.base) {
        grace_ev = evtimer_new(svc.base, grace_expired, NULL);
        if (grace_ev == NULL)
            msg_fatal("evtimer_new: out of memory");
        tv.tv_sec = (time_t) timeout;
        tv.tv_usec = 0;
        evtimer_add(grace_ev, &tv);
    }
    service_check_idle(&svc);
}

/*
 * service_retire - stop accepting; exit once the current clients are done.
 * Unlike a stop, clients are not hurried: a reload or a replaced table must
 * not cut anybody's session short (the daemon's own timeouts bound them).
 */
void service_retire(struct service *s, const char *reason)
{
    (void) s;
    if (svc.stopping)
        return;
    msg_info("retiring: %s", reason);
    stop_accepting();
    if (svc.ops->retire)
        svc.ops->retire(&svc);
    tell_master_retiring();
    service_check_idle(&svc);
}

/* service_check_idle - exits (leaves the loop) if stopping and no client is left */
void service_check_idle(struct service *s)
{
    (void) s;
    if (svc.stopping && !exit_requested && active_clients() == 0)
        finish();
}

/* on_signal - SIGHUP: retire (master reloads); SIGTERM/SIGINT: stop; a second SIGINT: now */
static void on_signal(evutil_socket_t sig, short what, void *arg)
{
    (void) what;
    (void) arg;
    if (sig == SIGHUP) {
        service_retire(&svc, "master reloaded the configuration");
        return;
    }
    if (grace_ev != NULL) {
        if (sig == SIGINT) {
            msg_info("second interrupt: exiting with %u client(s) still active", active_clients());
            finish();
        }
        return;
    }
    msg_info("stopping on %s", sig == SIGTERM ? "SIGTERM" : "SIGINT");
    service_stop();
}

/* resume_accepting - the pause after a descriptor shortage is over */
static void resume_accepting(evutil_socket_t fd, short what, void *arg)
{
    (void) fd;
    (void) what;
    (void) arg;
    accept_paused = false;
    if (svc.stopping)
        return;
    for (int i = 0; i < listener_count; i++)
        if (listeners[i].ev && listeners[i].fd >= 0)
            event_add(listeners[i].ev, NULL);
}

/* pause_accepting - no more accept() for a while; the kernel queues new clients */
static void pause_accepting(void)
{
    struct timeval tv = {SERVICE_PAUSE_SECS, 0};

    if (accept_paused)
        return;
    accept_paused = true;
    for (int i = 0; i < listener_count; i++)
        if (listeners[i].ev)
            event_del(listeners[i].ev);
    evtimer_add(resume_ev, &tv);
}

/* accept_ready - accept pending clients and hand each to the daemon */
static void accept_ready(evutil_socket_t fd, short what, void *arg)
{
    struct listener *l = arg;

    (void) what;
    for (int n = 0; n < SERVICE_ACCEPT_BATCH && !svc.stopping && !accept_paused; n++) {
        struct sockaddr_storage peer;
        socklen_t peer_len = sizeof(peer);
        int     client;

        memset(&peer, 0, sizeof(peer));
        client = accept4(fd, (struct sockaddr *) &peer, &peer_len, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (client < 0) {
            switch (errno) {
            case EAGAIN:
#if EWOULDBLOCK != EAGAIN
            case EWOULDBLOCK:
#endif
                return;                 /* another process got it, or none left */
            case EINTR:
            case ECONNABORTED:
            case EPROTO:
            case EPERM:                 /* firewall rules */
            case ENETDOWN:
            case ENOPROTOOPT:
            case EHOSTDOWN:
            case ENONET:
            case EHOSTUNREACH:
            case EOPNOTSUPP:
            case ENETUNREACH:
                continue;               /* that client is gone; Linux reports its errors here */
            case EMFILE:
            case ENFILE:
            case ENOBUFS:
            case ENOMEM:
                msg_warn("accept: %m; not accepting new connections for %d second(s)",
                         SERVICE_PAUSE_SECS);
                pause_accepting();
                return;
            default:
                msg_warn("accept on listener %d (fd %d): %m; not accepting for %d second(s)",
                         l->index, (int) fd, SERVICE_PAUSE_SECS);
                pause_accepting();
                return;
            }
        }
        if (peer_len > sizeof(peer))
            peer_len = sizeof(peer);
        msg_verbose("connection on listener %d, fd %d", l->index, client);
        svc.ops->accept(&svc, client, &peer, peer_len, l->index);
    }
}

/* stop_if_orphaned - master is gone: nobody would stop or replace us, so stop as on SIGTERM */
static void stop_if_orphaned(void)
{
    if (getppid() == orig_ppid || grace_ev != NULL)
        return;
    msg_info("stopping: master process (pid %ld) went away", (long) orig_ppid);
    service_stop();
}

/* check_parent - the periodic look for a vanished master */
static void check_parent(evutil_socket_t fd, short what, void *arg)
{
    (void) fd;
    (void) what;
    (void) arg;
    stop_if_orphaned();
}

/* check_maps - retire when a watched table was replaced beyond reach */
static void check_maps(evutil_socket_t fd, short what, void *arg)
{
    (void) fd;
    (void) what;
    (void) arg;
    for (size_t i = 0; i < watched_count; i++) {
        if (maplist_changed(watched[i])) {
            service_retire(&svc, "a lookup table changed and cannot be reopened here; "
                           "a fresh process will open it");
            return;
        }
    }
}

/* service_watch_maps - have the skeleton retire the process when list's files are replaced */
void service_watch_maps(struct service *s, struct maplist *list)
{
    struct timeval tv = {SERVICE_MAPS_SECS, 0};

    (void) s;
    if (list == NULL)
        return;
    watched = xreallocarray(watched, watched_count + 1, sizeof(*watched));
    watched[watched_count++] = list;
    if (maps_ev == NULL && svc.base != NULL) {
        maps_ev = event_new(svc.base, -1, EV_PERSIST, check_maps, NULL);
        if (maps_ev == NULL)
            msg_fatal("event_new: out of memory");
        event_add(maps_ev, &tv);
    }
}

/* master_pid - who started us: master says so (it may be gone already); else our parent */
static pid_t master_pid(void)
{
    const char *value = getenv("POSTERN_MASTER_PID");
    char   *end;
    long    pid;

    if (value == NULL)
        return getppid();
    errno = 0;
    pid = strtol(value, &end, 10);
    if (*value == '\0' || *end != '\0' || errno != 0 || pid <= 1 || pid > INT32_MAX) {
        msg_warn("ignoring bad POSTERN_MASTER_PID \"%.20s\"", value);
        pid = getppid();
    }
    unsetenv("POSTERN_MASTER_PID");     /* not for our own children */
    return (pid_t) pid;
}

/* set_death_signal - SIGTERM when master dies */
static void set_death_signal(void)
{
    if (prctl(PR_SET_PDEATHSIG, SIGTERM, 0, 0, 0) != 0)
        msg_warn("prctl PR_SET_PDEATHSIG: %m");
}

/* block_hup - hold SIGHUP back (master also blocks it across exec) or let it in */
static void block_hup(bool block)
{
    sigset_t hup;

    sigemptyset(&hup);
    sigaddset(&hup, SIGHUP);
    if (sigprocmask(block ? SIG_BLOCK : SIG_UNBLOCK, &hup, NULL) != 0)
        msg_warn("sigprocmask: %m");
}

/* start_events - listeners, signals and timers; the base exists */
static void start_events(void)
{
    struct timeval parent_tv = {SERVICE_PARENT_SECS, 0};
    const int signals[SERVICE_NSIGNALS] = {SIGTERM, SIGINT, SIGHUP};

    resume_ev = evtimer_new(svc.base, resume_accepting, NULL);
    parent_ev = event_new(svc.base, -1, EV_PERSIST, check_parent, NULL);
    if (resume_ev == NULL || parent_ev == NULL)
        msg_fatal("event_new: out of memory");
    event_add(parent_ev, &parent_tv);
    for (int i = 0; i < SERVICE_NSIGNALS; i++) {
        sig_events[i] = evsignal_new(svc.base, signals[i], on_signal, NULL);
        if (sig_events[i] == NULL || evsignal_add(sig_events[i], NULL) != 0)
            msg_fatal("cannot handle signal %d", signals[i]);
    }
    block_hup(false);                   /* a SIGHUP that came early is delivered now */
    for (int i = 0; i < listener_count; i++) {
        if (listeners[i].fd < 0)
            continue;
        listeners[i].ev = event_new(svc.base, listeners[i].fd, EV_READ | EV_PERSIST,
                                    accept_ready, &listeners[i]);
        if (listeners[i].ev == NULL || event_add(listeners[i].ev, NULL) != 0)
            msg_fatal("cannot watch listening fd %d", listeners[i].fd);
    }
}

/* free_events - release everything the loop used */
static void free_events(void)
{
    struct event **evs[] = {&resume_ev, &parent_ev, &maps_ev, &grace_ev, &sig_events[0], &sig_events[1], &sig_events[2]};

    for (size_t i = 0; i < sizeof(evs) / sizeof(evs[0]); i++) {
        if (*evs[i]) {
            event_free(*evs[i]);
            *evs[i] = NULL;
        }
    }
    for (int i = 0; i < listener_count; i++) {
        if (listeners[i].ev) {
            event_free(listeners[i].ev);
            listeners[i].ev = NULL;
        }
        if (listeners[i].fd >= 0) {
            close(listeners[i].fd);
            listeners[i].fd = -1;
        }
    }
    free(watched);
    watched = NULL;
    watched_count = 0;
}

/* open_log - name the process and pick the destination from main.cf */
static void open_log(const struct service_ops *ops, int verbose)
{
    const char *file = config_str(svc.cfg, "maillog_file");

    log_init(config_str(svc.cfg, "syslog_name"), ops->program);
    if (file[0] != '\0') {
        if (log_open_file(file) != 0)
            msg_fatal("open maillog_file %s: %m", file);
    } else {
        log_open_syslog(config_str(svc.cfg, "syslog_facility"));
    }
    log_set_verbose(verbose);
    log_to_stderr(verbose > 0);
}

/* drop_privileges - become the configured user in the configured directory */
static void drop_privileges(const struct service_ops *ops, bool as_user, bool chroot_there)
{
    struct strbuf err = STRBUF_INIT;
    const char *user = NULL;
    const char *dir = NULL;

    if (as_user) {
        if (ops->user_param == NULL)
            msg_fatal("-u given, but %s has no user parameter", ops->program);
        user = config_str(svc.cfg, ops->user_param);
    }
    if (ops->dir_param != NULL)
        dir = config_str(svc.cfg, ops->dir_param);
    switch (privsep_drop(user, dir, chroot_there, &err)) {
    case PRIVSEP_DROPPED:
        msg_verbose("running as %s in %s%s", user ? user : "root", dir ? dir : "(cwd)",
                    chroot_there ? " (chroot)" : "");
        break;
    case PRIVSEP_UNPRIVILEGED:
        svc.unprivileged = true;
        msg_warn("running without root privileges: no chroot, no user change (unprivileged mode)");
        break;
    case PRIVSEP_FAILED:
    default:
        msg_fatal("%s", sb_str(&err));
    }
    sb_free(&err);
}

/* log_config_warnings - main.cf warnings; master and postctl check report them loudly */
static void log_config_warnings(void)
{
    const char *text = config_warnings(svc.cfg);

    while (text && *text) {
        size_t  len = strcspn(text, "\n");

        if (len > 0)
            msg_verbose("%.*s", (int) len, text);
        text += len + (text[len] == '\n');
    }
}

/* service_main - run the daemon; returns the process exit status */
int service_main(int argc, char **argv, const struct service_ops *ops)
{
    struct strbuf err = STRBUF_INIT;
    struct strbuf fd_err = STRBUF_INIT;
    bool    fd_problem = false;
    const char *config_dir = NULL;
    const char *service_name = NULL;
    char  **overrides = xcalloc((size_t) argc + 1, sizeof(*overrides));
    int     override_count = 0;
    bool    as_user = false;
    bool    chroot_there = false;
    bool    check_only = false;             /* -C: postctl check asks whether we would start */
    int     verbose = 0;
    int     ch;

    ensure_std_fds();
    signal(SIGPIPE, SIG_IGN);
    block_hup(true);                    /* until start_events() can act on a reload */
    log_init(NULL, ops->program);
    orig_ppid = master_pid();
    set_death_signal();
    if (ops->accept == NULL)
        msg_panic("service_main: %s has no accept handler", ops->program);

    memset(&svc, 0, sizeof(svc));
    exit_requested = false;
    accept_paused = false;
    optind = 1;
    while ((ch = getopt(argc, argv, "c:n:t:uro:vC")) != -1) {
        switch (ch) {
        case 'c':
            config_dir = optarg;
            break;
        case 'n':
            service_name = optarg;
            break;
        case 't':
            if (strcmp(optarg, "inet") != 0 && strcmp(optarg, "unix") != 0)
                msg_fatal("-t %s: expected inet or unix", optarg);
            break;
        case 'u':
            as_user = true;
            break;
        case 'r':
            chroot_there = true;
            break;
        case 'o':
            overrides[override_count++] = optarg;
            break;
        case 'v':
            verbose++;
            break;
        case 'C':
            check_only = true;
            break;
        default:
            usage(ops->program);
        }
    }
    if (optind != argc || config_dir == NULL)
        usage(ops->program);
    log_set_verbose(verbose);
    /* Before anything opens a file that could take a listener's number. */
    listener_count = 0;
    if (parse_listen_fds(&fd_err) != 0)
        fd_problem = true;
    parse_status_fd();

    svc.ops = ops;
    svc.config_dir = config_dir;
    svc.service_name = service_name ? service_name : ops->program;
    svc.cfg = config_load(config_dir, &err);
    if (svc.cfg == NULL)
        msg_fatal("%s", sb_str(&err));
    for (int i = 0; i < override_count; i++)
        if (config_override(svc.cfg, overrides[i], &err) != 0)
            msg_fatal("-o %s: %s", overrides[i], sb_str(&err));
    free(overrides);
    if (check_only)
        log_to_stderr(1);               /* the answer goes to postctl, not the mail log */
    else
        open_log(ops, verbose);
    log_config_warnings();
    if (fd_problem)
        msg_fatal("%s", sb_str(&fd_err));
    sb_free(&fd_err);
    svc.base = event_base_new();
    if (svc.base == NULL)
        msg_fatal("event_base_new failed");

    if (ops->init)
        ops->init(&svc);                /* a configuration error is fatal here, with its reason */
    if (check_only)
        return 0;
    drop_privileges(ops, as_user, chroot_there);
    /* The kernel forgets the death signal when credentials change. */
    set_death_signal();
    start_events();
    if (ops->ready)
        ops->ready(&svc);
    msg_info("daemon started -- service %s, configuration %s%s", svc.service_name, config_dir,
             svc.unprivileged ? " (unprivileged)" : "");
    stop_if_orphaned();

    if (!exit_requested)
        event_base_dispatch(svc.base);

    msg_info("daemon stopped -- service %s", svc.service_name);
    /* Connections and timers the daemon still holds live on the base: they go first. */
    if (ops->done)
        ops->done(&svc);
    free_events();
    event_base_free(svc.base);
    svc.base = NULL;
    config_free(svc.cfg);
    svc.cfg = NULL;
    sb_free(&err);
    return 0;
}
