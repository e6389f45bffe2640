/*
 * postctl_control - start, stop, reload and status of a running instance.
 *
 * master holds $queue_directory/pid/master.pid for its whole life; these
 * commands find it there (checking that the pid really is a Postern master,
 * so a stale file never gets a stranger signalled) and talk to it with
 * signals: SIGTERM stops gracefully, SIGHUP reloads. status reads /proc for
 * master's children, each of which shows "-n SERVICE" in its command line.
 */
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "config.h"
#include "fsutil.h"
#include "json.h"
#include "master_cf.h"
#include "mem.h"
#include "strbuf.h"

#include "postctl.h"

/* A configuration that loaded, with the master.cf it names. */
struct instance {
    struct config *cfg;
    struct master_cf mcf;
};

/* load_instance - main.cf and master.cf, errors (with file:line) to stderr */
static int load_instance(struct postctl *ctl, const char *cmd, struct instance *inst)
{
    struct strbuf err = STRBUF_INIT;
    struct strbuf path = STRBUF_INIT;

    memset(inst, 0, sizeof(*inst));
    inst->cfg = config_load(ctl->config_dir, &err);
    if (inst->cfg == NULL) {
        fprintf(stderr, "postctl %s: %s\n", cmd, sb_str(&err));
        sb_free(&err);
        return -1;
    }
    sb_printf(&path, "%s/master.cf", ctl->config_dir);
    if (master_cf_load(path.data, inst->cfg, &inst->mcf, &err) < 0) {
        fprintf(stderr, "postctl %s: %s\n", cmd, sb_str(&err));
        config_free(inst->cfg);
        inst->cfg = NULL;
        sb_free(&err);
        sb_free(&path);
        return -1;
    }
    sb_free(&err);
    sb_free(&path);
    return 0;
}

static void free_instance(struct instance *inst)
{
    if (inst->cfg) {
        master_cf_free(&inst->mcf);
        config_free(inst->cfg);
    }
}

/* read_proc_file - small /proc file into out; -1 if the process is gone */
static int read_proc_file(pid_t pid, const char *what, struct strbuf *out)
{
    struct strbuf path = STRBUF_INIT;
    struct strbuf err = STRBUF_INIT;
    int     rc;

    sb_printf(&path, "/proc/%d/%s", (int) pid, what);
    rc = fs_read_file(path.data, 65536, out, &err);
    sb_free(&path);
    sb_free(&err);
    return rc;
}

/* is_master_process - pid runs our master program (argv[0] ends in "master") */
static bool is_master_process(pid_t pid)
{
    struct strbuf cmdline = STRBUF_INIT;
    bool    yes = false;

    if (read_proc_file(pid, "cmdline", &cmdline) == 0 && sb_len(&cmdline) > 0) {
        const char *argv0 = cmdline.data;
        const char *base = strrchr(argv0, '/');

        yes = strcmp(base ? base + 1 : argv0, "master") == 0;
    }
    sb_free(&cmdline);
    return yes;
}

/* running_master - pid of the instance's live master, or 0 */
static pid_t running_master(struct config *cfg)
{
    struct strbuf path = STRBUF_INIT;
    struct strbuf text = STRBUF_INIT;
    struct strbuf err = STRBUF_INIT;
    pid_t   pid = 0;

    sb_printf(&path, "%s/pid/master.pid", config_str(cfg, "queue_directory"));
    if (fs_read_file(path.data, 64, &text, &err) == 0) {
        char   *end;
        long    n = strtol(sb_str(&text), &end, 10);

        if (n > 1 && n < (1L << 22) && (*end == '\n' || *end == '\0')
            && kill((pid_t) n, 0) == 0 && is_master_process((pid_t) n))
            pid = (pid_t) n;
    }
    sb_free(&path);
    sb_free(&text);
    sb_free(&err);
    return pid;
}

/* process_stat - parent pid and age in seconds from /proc/PID/stat */
static int process_stat(pid_t pid, pid_t *ppid, long *age)
{
    struct strbuf stat = STRBUF_INIT;
    struct strbuf up = STRBUF_INIT;
    int     rc = -1;

    struct strbuf err = STRBUF_INIT;

    if (read_proc_file(pid, "stat", &stat) == 0 && fs_read_file("/proc/uptime", 256, &up, &err) == 0) {
        const char *p = strrchr(stat.data, ')');
        unsigned long long start = 0;
        int     parent = 0;
        double  uptime = atof(up.data);

        /* fields after the command: state(3) ppid(4) ... starttime(22) */
        if (p && sscanf(p + 2, "%*c %d %*d %*d %*d %*d %*u %*u %*u %*u %*u %*u %*u %*d %*d %*d %*d "
                        "%*d %*d %llu", &parent, &start) == 2) {
            *ppid = parent;
            *age = (long) (uptime - (double) start / (double) sysconf(_SC_CLK_TCK));
            rc = 0;
        }
    }
    sb_free(&stat);
    sb_free(&up);
    sb_free(&err);
    return rc;
}

/* service_of_child - the "-n SERVICE" argument of a daemon's command line */
static int service_of_child(pid_t pid, struct strbuf *service)
{
    struct strbuf cmdline = STRBUF_INIT;
    int     rc = -1;

    if (read_proc_file(pid, "cmdline", &cmdline) == 0) {
        const char *end = cmdline.data + sb_len(&cmdline);

        for (const char *arg = cmdline.data; arg < end; arg += strlen(arg) + 1) {
            const char *next = arg + strlen(arg) + 1;

            if (strcmp(arg, "-n") == 0 && next < end) {
                sb_set(service, next);
                rc = 0;
                break;
            }
        }
    }
    sb_free(&cmdline);
    return rc;
}

/* format_age - "3d 2h", "5m 3s" */
static void format_age(long secs, struct strbuf *out)
{
    sb_reset(out);
    if (secs >= 86400)
        sb_printf(out, "%ldd %ldh", secs / 86400, secs % 86400 / 3600);
    else if (secs >= 3600)
        sb_printf(out, "%ldh %ldm", secs / 3600, secs % 3600 / 60);
    else if (secs >= 60)
        sb_printf(out, "%ldm %lds", secs / 60, secs % 60);
    else
        sb_printf(out, "%lds", secs);
}

/* wait_for_exit - poll until pid is gone; false after timeout_ms */
static bool wait_for_exit(pid_t pid, long timeout_ms)
{
    struct timespec tick = {0, 50 * 1000 * 1000};

    for (long waited = 0; waited < timeout_ms; waited += 50) {
        if (kill(pid, 0) < 0 && errno == ESRCH)
            return true;
        nanosleep(&tick, NULL);
    }
    return kill(pid, 0) < 0 && errno == ESRCH;
}

int cmd_start(struct postctl *ctl, int argc, char **argv)
{
    struct instance inst;
    struct strbuf path = STRBUF_INIT;
    pid_t   pid;
    int     status;

    if (postctl_wants_help(argc, argv)) {
        printf("usage: postctl start\n  start master, which starts every service of master.cf\n");
        return POSTCTL_OK;
    }
    if (argc > 1) {
        fprintf(stderr, "usage: postctl start\n");
        return POSTCTL_USAGE;
    }
    if (load_instance(ctl, "start", &inst) < 0)
        return POSTCTL_FAILED;
    if ((pid = running_master(inst.cfg)) != 0) {
        fprintf(stderr, "postctl start: the Postern mail system is already running (pid %d)\n", (int) pid);
        free_instance(&inst);
        return POSTCTL_FAILED;
    }
    sb_printf(&path, "%s/master", config_str(inst.cfg, "daemon_directory"));
    printf("postctl start: starting the Postern mail system\n");
    fflush(stdout);
    pid = fork();
    if (pid == 0) {
        execl(path.data, path.data, "-c", ctl->config_dir, (char *) NULL);
        fprintf(stderr, "postctl start: cannot run %s: %s (check daemon_directory)\n",
                path.data, strerror(errno));
        _exit(127);
    }
    sb_free(&path);
    free_instance(&inst);
    /* master forks into the background and its first process exits once it is ready */
    if (pid < 0 || waitpid(pid, &status, 0) < 0 || !WIFEXITED(status) || WEXITSTATUS(status) != 0)
        return POSTCTL_FAILED;
    return POSTCTL_OK;
}

int cmd_stop(struct postctl *ctl, int argc, char **argv)
{
    struct instance inst;
    pid_t   pid;
    long    timeout_ms;

    if (postctl_wants_help(argc, argv)) {
        printf("usage: postctl stop\n  stop gracefully: services finish their current work first\n");
        return POSTCTL_OK;
    }
    if (argc > 1) {
        fprintf(stderr, "usage: postctl stop\n");
        return POSTCTL_USAGE;
    }
    if (load_instance(ctl, "stop", &inst) < 0)
        return POSTCTL_FAILED;
    pid = running_master(inst.cfg);
    timeout_ms = (config_time(inst.cfg, "graceful_stop_timeout") + 10) * 1000;
    free_instance(&inst);
    if (pid == 0) {
        fprintf(stderr, "postctl stop: the Postern mail system is not running\n");
        return POSTCTL_FAILED;
    }
    printf("postctl stop: stopping the Postern mail system\n");
    if (kill(pid, SIGTERM) < 0) {
        fprintf(stderr, "postctl stop: signal master (pid %d): %s\n", (int) pid, strerror(errno));
        return POSTCTL_FAILED;
    }
    if (!wait_for_exit(pid, timeout_ms)) {
        fprintf(stderr, "postctl stop: master (pid %d) did not stop within %ld s\n",
                (int) pid, timeout_ms / 1000);
        return POSTCTL_FAILED;
    }
    return POSTCTL_OK;
}

int cmd_reload(struct postctl *ctl, int argc, char **argv)
{
    struct instance inst;
    pid_t   pid;

    if (postctl_wants_help(argc, argv)) {
        printf("usage: postctl reload\n  re-read main.cf and master.cf; listening sockets stay open\n");
        return POSTCTL_OK;
    }
    if (argc > 1) {
        fprintf(stderr, "usage: postctl reload\n");
        return POSTCTL_USAGE;
    }
    /* a configuration that does not load is refused here, before master sees it */
    if (load_instance(ctl, "reload", &inst) < 0)
        return POSTCTL_FAILED;
    pid = running_master(inst.cfg);
    free_instance(&inst);
    if (pid == 0) {
        fprintf(stderr, "postctl reload: the Postern mail system is not running\n");
        return POSTCTL_FAILED;
    }
    if (kill(pid, SIGHUP) < 0) {
        fprintf(stderr, "postctl reload: signal master (pid %d): %s\n", (int) pid, strerror(errno));
        return POSTCTL_FAILED;
    }
    printf("postctl reload: refreshing the Postern mail system\n");
    return POSTCTL_OK;
}

/* A daemon found under master. */
struct child {
    pid_t   pid;
    long    age;
    char   *service;
};

/* find_children - master's children with their service names */
static size_t find_children(pid_t master, struct child **out)
{
    DIR    *proc = opendir("/proc");
    struct dirent *ent;
    struct strbuf service = STRBUF_INIT;
    size_t  n = 0;

    *out = NULL;
    while (proc && (ent = readdir(proc)) != NULL) {
        pid_t   pid;
        pid_t   ppid;
        long    age;

        if (!isdigit((unsigned char) ent->d_name[0]))
            continue;
        pid = (pid_t) atoi(ent->d_name);
        if (process_stat(pid, &ppid, &age) < 0 || ppid != master || service_of_child(pid, &service) < 0)
            continue;
        *out = xreallocarray(*out, n + 1, sizeof(**out));
        (*out)[n].pid = pid;
        (*out)[n].age = age;
        (*out)[n].service = sb_detach(&service);
        n++;
    }
    if (proc)
        closedir(proc);
    sb_free(&service);
    return n;
}

/* print_status - the table or the JSON object */
static void print_status(struct instance *inst, pid_t master, long master_age,
                         struct child *children, size_t nchildren, bool json)
{
    struct strbuf out = STRBUF_INIT;
    struct strbuf age = STRBUF_INIT;
    struct strbuf pids = STRBUF_INIT;

    if (json) {
        sb_printf(&out, "{\"running\":true,\"pid\":%d,\"uptime\":%ld,\"config_directory\":",
                  (int) master, master_age);
        json_string(&out, config_path(inst->cfg));
        sb_puts(&out, ",\"services\":[");
    } else {
        format_age(master_age, &age);
        sb_printf(&out, "postern: running, master pid %d, up %s\n", (int) master, age.data);
        sb_printf(&out, "%-16s %-5s %-9s %-24s %s\n", "SERVICE", "TYPE", "PROCESSES", "PIDS", "UPTIME");
    }
    for (size_t s = 0; s < inst->mcf.count; s++) {
        const struct master_service *svc = &inst->mcf.services[s];
        size_t  count = 0;
        long    oldest = 0;

        sb_reset(&pids);
        for (size_t c = 0; c < nchildren; c++) {
            if (strcmp(children[c].service, svc->name) != 0)
                continue;
            if (json)
                sb_printf(&pids, "%s{\"pid\":%d,\"uptime\":%ld}", count ? "," : "",
                          (int) children[c].pid, children[c].age);
            else
                sb_printf(&pids, "%s%d", count ? "," : "", (int) children[c].pid);
            if (children[c].age > oldest)
                oldest = children[c].age;
            count++;
        }
        if (json) {
            sb_puts(&out, s ? ",{\"name\":" : "{\"name\":");
            json_string(&out, svc->name);
            sb_printf(&out, ",\"type\":\"%s\",\"command\":", svc->type == MASTER_INET ? "inet" : "unix");
            json_string(&out, svc->command);
            sb_printf(&out, ",\"maxproc\":%d,\"processes\":[%s]}", svc->maxproc, sb_str(&pids));
        } else {
            char    procs[32];

            format_age(oldest, &age);
            snprintf(procs, sizeof(procs), "%zu/%d", count, svc->maxproc);
            sb_printf(&out, "%-16s %-5s %-9s %-24s %s\n", svc->name,
                      svc->type == MASTER_INET ? "inet" : "unix", procs,
                      count ? pids.data : "-", count ? age.data : "-");
        }
    }
    if (json)
        sb_puts(&out, "]}\n");
    fputs(out.data, stdout);
    sb_free(&out);
    sb_free(&age);
    sb_free(&pids);
}

int cmd_status(struct postctl *ctl, int argc, char **argv)
{
    struct instance inst;
    struct child *children;
    size_t  nchildren;
    bool    json = false;
    pid_t   master;
    pid_t   ppid;
    long    age = 0;

    if (postctl_wants_help(argc, argv)) {
        printf("usage: postctl status [--json]\n  whether the mail system runs; its services, processes and uptimes\n");
        return POSTCTL_OK;
    }
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--json") == 0)
            json = true;
        else {
            fprintf(stderr, "usage: postctl status [--json]\n");
            return POSTCTL_USAGE;
        }
    }
    if (load_instance(ctl, "status", &inst) < 0)
        return POSTCTL_FAILED;
    master = running_master(inst.cfg);
    if (master == 0) {
        if (json)
            printf("{\"running\":false}\n");
        else
            printf("postern: the Postern mail system is not running\n");
        free_instance(&inst);
        return POSTCTL_FAILED;
    }
    (void) process_stat(master, &ppid, &age);
    nchildren = find_children(master, &children);
    print_status(&inst, master, age, children, nchildren, json);
    for (size_t i = 0; i < nchildren; i++)
        free(children[i].service);
    free(children);
    free_instance(&inst);
    return POSTCTL_OK;
}
