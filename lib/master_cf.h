/*
 * master_cf - master.cf: the services master runs.
 *
 *   # service type  private unpriv  chroot  wakeup  maxproc command + args
 *   smtp      inet  n       -       y       -       -       smtpd
 *     -o smtpd_tls_security_level=may
 *
 * Fields as in Postfix; "-" takes the default (private y, unpriv y, chroot y,
 * wakeup 0, maxproc $default_process_limit). Continuation lines start with
 * whitespace. Postern daemons are event-driven, so maxproc is the number of
 * processes master keeps running for the service, each serving many clients.
 * An inet service is "[host:]port" (port by number or services(5) name;
 * without host, every address in inet_interfaces); a unix service is a socket
 * path relative to queue_directory (private/NAME when private, public/NAME else).
 *
 * Postern extension: a unix service may listen on more sockets, for clients
 * chrooted elsewhere, listed after its name with commas:
 *     auth,$virtual_mailbox_base/.postern/auth  unix - - y - 1 authd
 * Each extra socket is "$PARAMETER/relative/path": beneath the directory a
 * main.cf parameter names (no "..", no empty component). One process serves
 * them all, so state such as authd's brute-force counters is shared.
 */
#ifndef POSTERN_MASTER_CF_H
#define POSTERN_MASTER_CF_H

#include <stdbool.h>
#include <stddef.h>
#include "config.h"
#include "strbuf.h"

enum master_service_type { MASTER_INET, MASTER_UNIX };

struct master_service {
    char   *name;                       /* field 1 as written */
    enum master_service_type type;
    char   *host;                       /* inet: NULL for inet_interfaces, else the host part */
    char   *port;                       /* inet: numeric port as text */
    char   *socket_path;                /* unix: path relative to queue_directory */
    char  **extra_sockets;              /* unix: "$param/rel/path" entries after the name */
    size_t  nextra_sockets;
    bool    private_;
    bool    unpriv;
    bool    chroot;
    int     wakeup;                     /* seconds; 0 = none */
    int     maxproc;
    char   *command;                    /* program name, found in daemon_directory */
    char  **args;                       /* arguments after the command (with -o pairs), NULL-terminated */
    size_t  nargs;
    int     line;                       /* where the entry starts, for messages */
};

struct master_cf {
    char   *path;
    struct master_service *services;
    size_t  count;
};

/* master_cf_load - parse path; cfg supplies defaults. -1 with "path:line: message" in err */
int  master_cf_load(const char *path, struct config *cfg, struct master_cf *out, struct strbuf *err);
void master_cf_free(struct master_cf *mcf);
const struct master_service *master_cf_find(const struct master_cf *mcf, const char *name);

/* Flags for master_cf_daemon_argv(). */
#define MASTER_ARGV_VERBOSE (1u << 0)   /* -v */
#define MASTER_ARGV_CHECK   (1u << 1)   /* -C: check the configuration and exit (postctl check) */

/*
 * master_cf_daemon_argv - how a service's daemon is run:
 *   COMMAND -c CONFIG_DIR -n NAME -t inet|unix [-u] [-r] [-v] [-C] ARGS...
 * A NULL-terminated array to free; its strings belong to svc and config_dir.
 */
char **master_cf_daemon_argv(const struct master_service *svc, const char *config_dir, unsigned flags);

#endif
