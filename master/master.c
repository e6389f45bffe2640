/*
 * master - the Postern supervisor: binds the listening sockets of master.cf's
 * services, runs their daemons, restarts them, reloads and stops.
 *
 * Usage: master [-c CONFIG_DIR] [-f] [-v]
 *   -c  configuration directory (default $POSTERN_CONFIG, else /etc/postern)
 *   -f  stay in the foreground and log to standard error too (tests, systemd)
 *   -v  verbose logging, passed on to the daemons
 *
 * Without -f master daemonizes; the process that was started exits 0 only
 * once the daemon holds the pid file ($queue_directory/pid/master.pid, locked
 * with flock and fcntl for master's lifetime) and has bound every socket,
 * else it prints the daemon's error and exits 1, so "postctl start" can show
 * the real cause.
 *
 * Signals: SIGHUP reloads main.cf and master.cf (a bad file is logged and the
 * old configuration stays; unchanged sockets are kept, so clients queued in a
 * backlog are not lost; old processes get SIGHUP: they finish their clients and exit; new ones start at once).
 * SIGTERM or SIGINT stops: listeners close, children get SIGTERM and up to
 * graceful_stop_timeout + 2 s, then SIGKILL; the pid file is removed.
 *
 * Diagnostics: "fatal: the Postern mail system is already running (pid N)",
 * configuration errors as "path:line: message", "reload -- version X,
 * configuration DIR", "terminating on signal N".
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <event2/event.h>

#include "config.h"
#include "log.h"
#include "master_cf.h"
#include "mem.h"
#include "strbuf.h"

#include "master.h"

#ifndef POSTERN_VERSION
#define POSTERN_VERSION "0.1"
#endif

#define READY_MSG       "OK"
#define READY_MAX       8192            /* longest start-up error passed to the parent */
#define STOP_EXTRA      2               /* seconds beyond graceful_stop_timeout */

/* usage - the command line, then exit 2 */
static void __attribute__((noreturn)) usage(void)
{
    fprintf(stderr, "usage: master [-c CONFIG_DIR] [-f] [-v]\n");
    exit(2);
}

/* version - mail_version when main.cf knows it, else the built-in one */
static const char *version(struct config *cfg)
{
    const char *v = cfg ? config_lookup(cfg, "mail_version") : NULL;

    return v && *v ? v : POSTERN_VERSION;
}

/* open_log - maillog_file, else syslog; -1 with err */
static int open_log(struct master_state *ms, struct config *cfg, struct strbuf *err)
{
    const char *file = config_str(cfg, "maillog_file");

    log_init(config_str(cfg, "syslog_name"), "master");
    if (ms->log_path && strcmp(ms->log_path, file) == 0)
        return 0;
    if (*file) {
        if (log_open_file(file) < 0) {
            sb_printf(err, "cannot open maillog_file %s: %s", file, strerror(errno));
            return -1;
        }
    } else {
        log_open_syslog(config_str(cfg, "syslog_facility"));
    }
    free(ms->log_path);
    ms->log_path = xstrdup(file);
    return 0;
}

/* log_config_warnings - one warning line per problem config_load found */
static void log_config_warnings(struct config *cfg)
{
    const char *w = config_warnings(cfg);

    while (w && *w) {
        const char *nl = strchr(w, '\n');
        size_t  len = nl ? (size_t) (nl - w) : strlen(w);

        if (len)
            msg_warn("%.*s", (int) len, w);
        w += len + (nl ? 1 : 0);
    }
}

/* check_dirs - queue_directory and daemon_directory must be absolute */
static int check_dirs(struct config *cfg, struct strbuf *err)
{
    static const char *const names[] = {"queue_directory", "daemon_directory"};

    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        const char *value = config_str(cfg, names[i]);

        if (*value != '/') {
            if (config_line(cfg, names[i]) > 0)
                sb_printf(err, "%s:%d: ", config_path(cfg), config_line(cfg, names[i]));
            sb_printf(err, "%s must be an absolute path, not \"%s\"", names[i], value);
            return -1;
        }
    }
    return 0;
}

/* load_config - main.cf and master.cf of config_dir; -1 with err */
static int load_config(const char *config_dir, struct config **cfgp, struct master_cf *mcf,
                       struct strbuf *err)
{
    struct config *cfg = config_load(config_dir, err);
    struct strbuf path = STRBUF_INIT;

    if (cfg == NULL)
        return -1;
    if (check_dirs(cfg, err) < 0) {
        config_free(cfg);
        return -1;
    }
    sb_printf(&path, "%s/master.cf", config_dir);
    memset(mcf, 0, sizeof(*mcf));
    if (master_cf_load(sb_str(&path), cfg, mcf, err) < 0) {
        sb_free(&path);
        config_free(cfg);
        return -1;
    }
    sb_free(&path);
    *cfgp = cfg;
    return 0;
}

/* build_servs - one master_serv per master.cf entry */
static struct master_serv *build_servs(struct master_state *ms, struct config *cfg,
                                       const struct master_cf *mcf)
{
    struct master_serv *servs = xcalloc(mcf->count ? mcf->count : 1, sizeof(*servs));
    const char *dir = config_str(cfg, "daemon_directory");

    for (size_t i = 0; i < mcf->count; i++) {
        const struct master_service *def = &mcf->services[i];
        struct strbuf path = STRBUF_INIT;

        servs[i].ms = ms;
        servs[i].cfg = cfg;
        servs[i].mcf_path = mcf->path ? mcf->path : "master.cf";
        servs[i].def = def;
        if (def->command[0] == '/')
            sb_puts(&path, def->command);
        else
            sb_printf(&path, "%s/%s", dir, def->command);
        servs[i].path = sb_detach(&path);
        /* Not fatal: a daemon not built or installed yet must not keep the others down. */
        if (access(servs[i].path, X_OK) < 0)
            msg_warn("%s:%d: service %s: cannot execute %s: %s", servs[i].mcf_path, def->line,
                     def->name, servs[i].path, strerror(errno));
    }
    return servs;
}

/* free_servs - release a generation of services (sockets must be closed or moved) */
static void free_servs(struct master_serv *servs, size_t n)
{
    master_listen_close(servs, n);
    for (size_t i = 0; i < n; i++) {
        if (servs[i].throttle_ev)
            event_free(servs[i].throttle_ev);
        free(servs[i].path);
    }
    free(servs);
}

/* read_pid - the pid written in a pid file, 0 if none */
static long read_pid(int fd)
{
    char    buf[32];
    ssize_t n = pread(fd, buf, sizeof(buf) - 1, 0);
    char   *end;
    long    pid;

    if (n <= 0)
        return 0;
    buf[n] = '\0';
    errno = 0;
    pid = strtol(buf, &end, 10);
    if (errno || end == buf || (*end && *end != '\n') || pid <= 0)
        return 0;
    return pid;
}

/* pidfile_take - lock and write $queue_directory/pid/master.pid; -1 with err */
static int pidfile_take(struct master_state *ms, const char *queue, struct strbuf *err)
{
    struct strbuf path = STRBUF_INIT;
    struct flock fl;
    char    text[32];
    int     fd, len;

    sb_printf(&path, "%s/pid", queue);
    if (mkdir(sb_str(&path), 0755) < 0 && errno != EEXIST) {
        sb_printf(err, "create directory %s: %s", sb_str(&path), strerror(errno));
        sb_free(&path);
        return -1;
    }
    sb_puts(&path, "/master.pid");
    fd = open(sb_str(&path), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0644);
    if (fd < 0) {
        sb_printf(err, "open pid file %s: %s", sb_str(&path), strerror(errno));
        sb_free(&path);
        return -1;
    }
    /* Both lock kinds, so a checker using either one sees that master runs. */
    memset(&fl, 0, sizeof(fl));
    fl.l_type = F_WRLCK;
    fl.l_whence = SEEK_SET;
    if (flock(fd, LOCK_EX | LOCK_NB) < 0 || fcntl(fd, F_SETLK, &fl) < 0) {
        if (errno == EWOULDBLOCK || errno == EAGAIN || errno == EACCES) {
            long    pid = read_pid(fd);

            if (pid == 0) {             /* it may be between its lock and its write */
                usleep(200000);
                pid = read_pid(fd);
            }
            if (pid > 0)
                sb_printf(err, "the Postern mail system is already running (pid %ld)", pid);
            else
                sb_printf(err, "the Postern mail system is already running (%s is locked)",
                          sb_str(&path));
        } else {
            sb_printf(err, "lock pid file %s: %s", sb_str(&path), strerror(errno));
        }
        close(fd);
        sb_free(&path);
        return -1;
    }
    len = snprintf(text, sizeof(text), "%ld\n", (long) getpid());
    if (ftruncate(fd, 0) < 0 || pwrite(fd, text, (size_t) len, 0) != len) {
        sb_printf(err, "write pid file %s: %s", sb_str(&path), strerror(errno));
        close(fd);
        unlink(sb_str(&path));
        sb_free(&path);
        return -1;
    }
    ms->pid_fd = fd;
    ms->pid_path = sb_detach(&path);
    return 0;
}

/* pidfile_remove - master is going away */
static void pidfile_remove(struct master_state *ms)
{
    if (ms->pid_path) {
        unlink(ms->pid_path);
        free(ms->pid_path);
        ms->pid_path = NULL;
    }
    if (ms->pid_fd >= 0) {
        close(ms->pid_fd);
        ms->pid_fd = -1;
    }
}

/* reload - SIGHUP: new configuration, same sockets where the endpoint is unchanged */
static void reload(struct master_state *ms)
{
    struct strbuf err = STRBUF_INIT;
    struct config *cfg = NULL;
    struct master_cf mcf;
    struct master_serv *servs;

    if (load_config(ms->config_dir, &cfg, &mcf, &err) < 0) {
        msg_error("reload: %s; keeping the old configuration", sb_str(&err));
        sb_free(&err);
        return;
    }
    if (strcmp(config_str(cfg, "queue_directory"), config_str(ms->cfg, "queue_directory")) != 0) {
        msg_error("reload: queue_directory changed from %s to %s, which needs a restart; "
                  "keeping the old configuration", config_str(ms->cfg, "queue_directory"),
                  config_str(cfg, "queue_directory"));
        master_cf_free(&mcf);
        config_free(cfg);
        return;
    }
    /* servs point into mcf.services, which stays where it is when mcf moves into ms. */
    servs = build_servs(ms, cfg, &mcf);
    if (master_listen_open(servs, mcf.count, ms->servs, ms->nservs, &err) < 0) {
        msg_error("reload: %s; keeping the old configuration", sb_str(&err));
        free_servs(servs, mcf.count);
        master_cf_free(&mcf);
        config_free(cfg);
        sb_free(&err);
        return;
    }

    /* The new configuration is in force from here on, its log included. */
    if (open_log(ms, cfg, &err) < 0) {
        msg_error("reload: %s; keeping the old log", sb_str(&err));
        sb_reset(&err);
    }
    log_config_warnings(cfg);

    /* SIGHUP retires the old processes: they finish their clients, unhurried, and exit. */
    master_spawn_signal(ms, SIGHUP);
    master_spawn_detach(ms);
    master_listen_retry(servs, mcf.count);
    free_servs(ms->servs, ms->nservs);
    master_cf_free(&ms->mcf);
    config_free(ms->cfg);
    ms->cfg = cfg;
    ms->mcf = mcf;
    ms->servs = servs;
    ms->nservs = mcf.count;
    msg_info("reload -- version %s, configuration %s", version(ms->cfg), ms->config_dir);
    master_spawn_all(ms);
    sb_free(&err);
}

void master_stopped(struct master_state *ms)
{
    if (ms->finished)
        return;
    ms->finished = true;
    pidfile_remove(ms);
    msg_info("terminating on signal %d", ms->stop_signal);
    event_base_loopbreak(ms->base);
}

/* stop_timeout - children had their time: kill what is left */
static void stop_timeout(evutil_socket_t fd, short what, void *arg)
{
    struct master_state *ms = arg;

    (void) fd;
    (void) what;
    master_spawn_signal(ms, SIGKILL);
    master_spawn_wait_all(ms, 5);
    master_stopped(ms);
}

/* stop - SIGTERM/SIGINT: close the doors, ask the children to leave, wait */
static void stop(struct master_state *ms, int sig)
{
    if (ms->stopping)
        return;
    ms->stopping = true;
    ms->stop_signal = sig;
    for (size_t i = 0; i < ms->nservs; i++)
        if (ms->servs[i].throttle_ev)
            evtimer_del(ms->servs[i].throttle_ev);
    master_listen_close(ms->servs, ms->nservs);
    master_spawn_signal(ms, SIGTERM);
    master_spawn_detach(ms);
    if (ms->nchildren == 0) {
        master_stopped(ms);
        return;
    }

    long long grace = config_time(ms->cfg, "graceful_stop_timeout");
    struct timeval tv;

    if (grace < 0 || grace > 86400)
        grace = 10;
    tv.tv_sec = (time_t) (grace + STOP_EXTRA);
    tv.tv_usec = 0;
    ms->stop_ev = evtimer_new(ms->base, stop_timeout, ms);
    evtimer_add(ms->stop_ev, &tv);
}

/* on_signal - libevent delivers our signals here, outside any handler context */
static void on_signal(evutil_socket_t sig, short what, void *arg)
{
    struct master_state *ms = arg;

    (void) what;
    switch (sig) {
    case SIGCHLD:
        master_spawn_reap(ms);
        break;
    case SIGHUP:
        if (!ms->stopping)
            reload(ms);
        break;
    case SIGTERM:
    case SIGINT:
        stop(ms, (int) sig);
        break;
    default:
        msg_panic("on_signal: unexpected signal %d", (int) sig);
    }
}

/* daemon_start - fork; the parent waits for the child's readiness report and exits */
static int daemon_start(void)
{
    int     p[2];
    pid_t   pid;

    if (pipe2(p, O_CLOEXEC) < 0)
        msg_fatal("pipe: %s", strerror(errno));
    pid = fork();
    if (pid < 0)
        msg_fatal("fork: %s", strerror(errno));
    if (pid > 0) {
        struct strbuf msg = STRBUF_INIT;
        char    buf[512];
        ssize_t n;
        int     status;

        close(p[1]);
        while ((n = read(p[0], buf, sizeof(buf))) != 0) {
            if (n < 0) {
                if (errno == EINTR)
                    continue;
                break;
            }
            if (sb_len(&msg) < READY_MAX)
                sb_append(&msg, buf, (size_t) n);
        }
        if (strcmp(sb_str(&msg), READY_MSG) == 0)
            exit(0);
        if (sb_len(&msg) > 0) {
            fprintf(stderr, "postern/master: fatal: %s\n", sb_str(&msg));
            (void) waitpid(pid, &status, 0);
        } else if (waitpid(pid, &status, 0) == pid && WIFSIGNALED(status)) {
            fprintf(stderr, "postern/master: fatal: master was killed by signal %d during "
                    "start-up; see the log\n", WTERMSIG(status));
        } else {
            fprintf(stderr, "postern/master: fatal: master exited during start-up; see the log\n");
        }
        exit(1);
    }
    close(p[0]);
    if (setsid() < 0)
        msg_fatal("setsid: %s", strerror(errno));
    return p[1];
}

/* startup_failed - report the error where the starter sees it, exit 1 */
static void __attribute__((noreturn)) startup_failed(struct master_state *ms, int ready_fd,
                                                     const char *text)
{
    if (ready_fd < 0) {
        pidfile_remove(ms);
        msg_fatal("%s", text);
    }
    /* The parent prints it; logging it here too would show it twice on a terminal. */
    log_to_stderr(0);
    msg_error("%s", text);
    if (write(ready_fd, text, strlen(text)) < 0) {
        /* the parent is gone: the log has it */
    }
    pidfile_remove(ms);
    exit(1);
}

/* detach_stdio - the daemon's stdin/stdout/stderr go to /dev/null */
static void detach_stdio(void)
{
    int     fd = open("/dev/null", O_RDWR);

    if (fd < 0)
        msg_fatal("open /dev/null: %s", strerror(errno));
    if (dup2(fd, 0) < 0 || dup2(fd, 1) < 0 || dup2(fd, 2) < 0)
        msg_fatal("dup2 /dev/null: %s", strerror(errno));
    if (fd > 2)
        close(fd);
}

/*
 * raise_fd_limit - let every daemon hold as many connections as the system
 * allows. Service managers start us with a soft RLIMIT_NOFILE of 1024, too few
 * for an imapd with thousands of IDLE clients; like Postfix's master we raise
 * the soft limit to the hard one, and as root also the hard limit to what
 * systemd gives services (524288), bounded by fs.nr_open. Children inherit it.
 */
static void raise_fd_limit(void)
{
    const rlim_t wanted = 524288;
    struct rlimit lim;
    rlim_t  nr_open = wanted;
    FILE   *fp;

    if (getrlimit(RLIMIT_NOFILE, &lim) < 0)
        return;
    if (geteuid() == 0 && lim.rlim_max != RLIM_INFINITY && lim.rlim_max < wanted) {
        unsigned long long v;

        if ((fp = fopen("/proc/sys/fs/nr_open", "r")) != NULL) {
            if (fscanf(fp, "%llu", &v) == 1 && v < wanted)
                nr_open = (rlim_t) v;
            fclose(fp);
        }
        if (nr_open > lim.rlim_max) {
            struct rlimit raised = {nr_open, nr_open};

            if (setrlimit(RLIMIT_NOFILE, &raised) == 0)
                lim = raised;
        }
    }
    if (lim.rlim_cur < lim.rlim_max) {
        lim.rlim_cur = lim.rlim_max;
        if (setrlimit(RLIMIT_NOFILE, &lim) < 0)
            msg_warn("cannot raise the open file limit to %llu: %s",
                     (unsigned long long) lim.rlim_max, strerror(errno));
    }
}

/* startup - everything up to the first processes; -1 with err */
static int startup(struct master_state *ms, struct strbuf *err)
{
    static const int sigs[MASTER_NSIGNALS] = {SIGCHLD, SIGHUP, SIGTERM, SIGINT};
    const char *queue;

    if (load_config(ms->config_dir, &ms->cfg, &ms->mcf, err) < 0)
        return -1;
    if (open_log(ms, ms->cfg, err) < 0)
        return -1;
    log_config_warnings(ms->cfg);
    raise_fd_limit();
    queue = config_str(ms->cfg, "queue_directory");
    if (chdir(queue) < 0) {
        sb_printf(err, "queue_directory %s: %s", queue, strerror(errno));
        return -1;
    }
    if (pidfile_take(ms, queue, err) < 0)
        return -1;
    ms->servs = build_servs(ms, ms->cfg, &ms->mcf);
    ms->nservs = ms->mcf.count;
    if (master_listen_open(ms->servs, ms->nservs, NULL, 0, err) < 0)
        return -1;
    ms->base = event_base_new();
    if (ms->base == NULL) {
        sb_puts(err, "cannot create the event loop");
        return -1;
    }
    for (size_t i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++) {
        ms->sig_ev[i] = evsignal_new(ms->base, sigs[i], on_signal, ms);
        if (ms->sig_ev[i] == NULL || evsignal_add(ms->sig_ev[i], NULL) < 0) {
            sb_printf(err, "cannot watch signal %d", sigs[i]);
            return -1;
        }
    }
    master_spawn_all(ms);
    return 0;
}

int main(int argc, char **argv)
{
    struct master_state ms;
    struct strbuf err = STRBUF_INIT;
    const char *dir = NULL;
    char    resolved[PATH_MAX];
    int     ready_fd = -1;
    int     c;

    memset(&ms, 0, sizeof(ms));
    ms.pid_fd = -1;
    while ((c = getopt(argc, argv, "c:fv")) != -1) {
        switch (c) {
        case 'c':
            dir = optarg;
            break;
        case 'f':
            ms.foreground = true;
            break;
        case 'v':
            ms.verbose = true;
            break;
        default:
            usage();
        }
    }
    if (optind != argc)
        usage();
    if (dir == NULL)
        dir = getenv("POSTERN_CONFIG");
    if (dir == NULL || *dir == '\0')
        dir = "/etc/postern";

    umask(022);
    signal(SIGPIPE, SIG_IGN);
    log_init("postern", "master");
    if (ms.verbose)
        log_set_verbose(1);
    /* Children get the same -c; a relative path would break after chdir. */
    if (realpath(dir, resolved) == NULL) {
        fprintf(stderr, "postern/master: fatal: configuration directory %s: %s\n", dir, strerror(errno));
        return 1;
    }
    ms.config_dir = xstrdup(resolved);

    if (!ms.foreground)
        ready_fd = daemon_start();
    /* Until start-up is over, its warnings and errors go to whoever started us. */
    log_to_stderr(1);
    if (startup(&ms, &err) < 0)
        startup_failed(&ms, ready_fd, sb_str(&err));
    if (ready_fd >= 0) {
        detach_stdio();
        log_to_stderr(0);
        if (write(ready_fd, READY_MSG, strlen(READY_MSG)) < 0) {
            /* the starter went away; we run anyway */
        }
        close(ready_fd);
    }
    /* Logged only now, so that the starter's terminal gets problems, not chatter. */
    msg_info("daemon started -- version %s, configuration %s", version(ms.cfg), ms.config_dir);

    event_base_dispatch(ms.base);

    /* Stopped. Release everything so sanitizer runs show real leaks only. */
    if (ms.stop_ev)
        event_free(ms.stop_ev);
    for (size_t i = 0; i < MASTER_NSIGNALS; i++)
        if (ms.sig_ev[i])
            event_free(ms.sig_ev[i]);
    free_servs(ms.servs, ms.nservs);
    master_cf_free(&ms.mcf);
    config_free(ms.cfg);
    event_base_free(ms.base);
    free(ms.config_dir);
    free(ms.log_path);
    sb_free(&err);
    return 0;
}
