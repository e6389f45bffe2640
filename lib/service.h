/*
 * service - the skeleton every Postern daemon runs in (like Postfix's
 * multi_server): master starts "PROGRAM -c CONFIG_DIR -n SERVICE [-u] [-r]
 * [-o name=value]..." with its listening sockets at fd 3, 4, ... and their count
 * in the environment variable POSTERN_LISTEN_FDS.
 *
 * service_main() reads main.cf and the -o overrides, opens the log, calls
 * ops->init (still privileged: open maps, keys), drops privileges
 * (privsep_drop: user from ops->user_param when -u, directory from
 * ops->dir_param, chroot when -r), then runs a libevent loop that accepts
 * connections and hands each to ops->accept. One process serves many clients.
 *
 * Stopping is graceful: SIGTERM (or service_retire()) closes the listening
 * sockets, calls ops->stop so idle clients can be let go, and exits once
 * ops->active() reaches 0 or graceful_stop_timeout has passed. Master starts a
 * replacement at once, so a retiring process never leaves the port unserved.
 * Every minute the skeleton checks the maps registered with
 * service_watch_maps(); when one was replaced and cannot be reopened inside
 * the chroot, the process retires so its successor opens the new file.
 */
#ifndef POSTERN_SERVICE_H
#define POSTERN_SERVICE_H

#include <stdbool.h>
#include <sys/socket.h>

#include "config.h"
#include "map.h"

struct event_base;
struct service;

struct service_ops {
    const char *program;                /* "smtpd": log name and usage */
    const char *user_param;             /* main.cf parameter naming the user, e.g. "mail_owner" */
    const char *dir_param;              /* main.cf parameter naming the working/chroot dir */
    void    (*init)(struct service *svc);           /* privileged set-up; may be NULL */
    void    (*ready)(struct service *svc);          /* after the privilege drop; may be NULL */
    void    (*accept)(struct service *svc, int fd, const struct sockaddr_storage *peer,
                      socklen_t peer_len, int listener_index);
    unsigned (*active)(struct service *svc);        /* clients still being served */
    void    (*stop)(struct service *svc);           /* stop requested: let idle clients go; may be NULL */
    void    (*retire)(struct service *svc);         /* retiring: start no new work; may be NULL */
    void    (*done)(struct service *svc);           /* the loop has ended: release what uses the
                                                     * event base (freed next); may be NULL */
};

struct service {
    const struct service_ops *ops;
    struct event_base *base;
    struct config *cfg;
    const char *service_name;           /* master.cf field 1, e.g. "submission" */
    const char *config_dir;
    bool    unprivileged;               /* not root: no chroot, no user change */
    bool    stopping;
    void   *app;                        /* the daemon's own state */
};

/* service_main - run the daemon; returns the process exit status */
int  service_main(int argc, char **argv, const struct service_ops *ops);
/* service_retire - stop accepting and exit once idle (map changed, fatal client-independent error) */
void service_retire(struct service *svc, const char *reason);
/* service_watch_maps - have the skeleton retire the process when list's files are replaced */
void service_watch_maps(struct service *svc, struct maplist *list);
/* service_check_idle - call when a client finishes: exits if stopping and none are left */
void service_check_idle(struct service *svc);

#endif
