/*
 * master - the supervisor's shared state, used by master.c (main, signals,
 * reload, stop), master_listen.c (listening sockets) and master_spawn.c
 * (child processes and their restart policy).
 *
 * One struct master_serv exists per master.cf entry of the configuration in
 * force. It owns that service's listening sockets (master_listener) and counts
 * its running processes. A reload builds a new set of master_serv from the new
 * master.cf, moves over every socket whose endpoint is unchanged, and detaches
 * the old children (they retire; their exit is no longer the service's concern).
 */
#ifndef POSTERN_MASTER_H
#define POSTERN_MASTER_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>
#include <time.h>

#include "config.h"
#include "master_cf.h"
#include "strbuf.h"

struct event;
struct event_base;
struct master_child;

/* A death within this many seconds of the start counts as a failure at start. */
#define MASTER_START_GRACE      10
#define MASTER_LISTEN_BACKLOG   1024
#define MASTER_NSIGNALS         4
#define MASTER_RETRY_SECONDS    2       /* for old processes to release an address */
#define MASTER_MAX_LISTEN_FDS   64      /* what service.c accepts in POSTERN_LISTEN_FDS */

struct listen_spec;

struct master_listener {
    int     fd;                         /* -2: to be bound by master_listen_retry() */
    char   *key;                        /* endpoint identity: "inet:[::]:25", "unix:/q/private/x" */
    struct listen_spec *retry;          /* what to bind when fd is -2 */
};

struct master_serv {
    struct master_state *ms;
    struct config *cfg;                 /* the configuration this service came from */
    const char *mcf_path;               /* its master.cf, for messages */
    const struct master_service *def;   /* entry of that master.cf */
    char   *path;                       /* daemon_directory/command */
    struct master_listener *listeners;
    size_t  nlisteners;
    unsigned nproc;                     /* running processes of this generation */
    unsigned failures;                  /* consecutive deaths at start */
    bool    throttled;                  /* waiting for throttle_ev before starting more */
    struct event *throttle_ev;
};

struct master_state {
    char   *config_dir;                 /* absolute */
    bool    foreground;                 /* -f: children keep stderr */
    bool    verbose;                    /* -v: passed on to children */
    struct config *cfg;
    struct master_cf mcf;
    struct master_serv *servs;
    size_t  nservs;
    struct event_base *base;
    struct master_child *children;      /* every live child, current and retiring */
    unsigned nchildren;
    bool    stopping;
    int     stop_signal;
    char   *pid_path;
    int     pid_fd;                     /* locked for master's lifetime */
    struct event *sig_ev[MASTER_NSIGNALS];      /* CHLD, HUP, TERM, INT */
    struct event *stop_ev;              /* graceful_stop_timeout during a stop */
    bool    finished;
    char   *log_path;                   /* maillog_file in force ("" = syslog) */
};

/* master_listen.c */
/* master_listen_open - give every serv its sockets, taking unchanged ones from old; -1 with err */
int  master_listen_open(struct master_serv *servs, size_t nservs,
                        struct master_serv *old, size_t nold, struct strbuf *err);
/* master_listen_retry - bind what was in use by the old configuration's sockets */
void master_listen_retry(struct master_serv *servs, size_t nservs);
/* master_listen_close - close and forget every socket of servs */
void master_listen_close(struct master_serv *servs, size_t nservs);

/* master_spawn.c */
/* master_spawn_all - bring every service that is not throttled up to maxproc processes */
void master_spawn_all(struct master_state *ms);
/* master_spawn_reap - collect dead children, log abnormal ends, schedule restarts */
void master_spawn_reap(struct master_state *ms);
/* master_spawn_detach - make every child a retiring one (reload/stop); returns how many */
unsigned master_spawn_detach(struct master_state *ms);
/* master_spawn_signal - send sig to every live child */
void master_spawn_signal(struct master_state *ms, int sig);
/* master_spawn_wait_all - block until every child has been reaped (after SIGKILL) */
void master_spawn_wait_all(struct master_state *ms, int timeout_seconds);
/* master_spawn_throttle_delay - seconds to wait after the n-th consecutive failure */
long long master_spawn_throttle_delay(unsigned failures, long long cap);

/* master.c */
/* master_stopped - the last child is gone during a stop: finish */
void master_stopped(struct master_state *ms);

#endif
