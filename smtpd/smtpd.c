/*
 * smtpd - the SMTP server: main program.
 *
 * Runs in the service skeleton (lib/service.h) as user mail_owner in
 * queue_directory; one process serves many sessions (smtpd_session.c).
 * This file reads the settings from main.cf, sets up the recipient checks
 * (smtpd_check.c: tables opened while still privileged, as they may live
 * outside the chroot), TLS (smtpd_tls.c: the private key is readable by root
 * only) and SASL (smtpd_sasl.c), and, after the privilege drop, the queue
 * store (smtpd_queue.c) that sessions hand messages to.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <time.h>

#include "config.h"
#include "log.h"
#include "mem.h"
#include "service.h"
#include "strbuf.h"

#include "smtpd.h"

static struct smtpd_server server;

/* smtpd_init - settings from main.cf (checked by the config loader) */
static void smtpd_init(struct service *svc)
{
    struct smtpd_settings *set = &server.set;
    long long line_limit = config_int(svc->cfg, "line_length_limit");
    long long limit = config_size(svc->cfg, "message_size_limit");
    long long hard_errors = config_int(svc->cfg, "smtpd_hard_error_limit");
    long long soft_errors = config_int(svc->cfg, "smtpd_soft_error_limit");

    server.svc = svc;
    server.store = &smtpd_store_queue;
    set->hostname = xstrdup(config_str(svc->cfg, "myhostname"));
    set->banner = xstrdup(config_str(svc->cfg, "smtpd_banner"));
    /* RFC 5321 4.5.3.1.4: a command line may be 512 octets; we never take less. */
    if (line_limit < 512)
        line_limit = 512;
    if (line_limit > 1024 * 1024)
        line_limit = 1024 * 1024;
    set->line_limit = (size_t) line_limit;
    set->message_size_limit = limit > 0 ? limit : 0;
    set->queue_minfree = config_size(svc->cfg, "queue_minfree");
    set->timeout = config_time(svc->cfg, "smtpd_timeout");
    if (set->timeout < 1)
        set->timeout = 1;
    set->recipient_limit = config_int(svc->cfg, "smtpd_recipient_limit");
    set->helo_required = config_bool(svc->cfg, "smtpd_helo_required");
    set->disable_vrfy = config_bool(svc->cfg, "disable_vrfy_command");
    /* The table's minimum is 1; a huge value means "no limit" in practice. */
    set->hard_error_limit = (unsigned) (hard_errors > 1000000 ? 1000000 : hard_errors);
    set->soft_error_limit = (unsigned) (soft_errors > 1000000 ? 1000000 : soft_errors);
    set->error_sleep = config_time(svc->cfg, "smtpd_error_sleep_time");
    set->smtputf8_enable = config_bool(svc->cfg, "smtputf8_enable");
    set->myorigin = xstrdup(config_str(svc->cfg, "myorigin"));
    set->mail_name = xstrdup(config_str(svc->cfg, "mail_name"));
    server.check = smtpd_check_init(svc);
    server.anvil = smtpd_anvil_init(svc);
    server.header_checks = smtpd_hc_init(svc);
    smtpd_tls_init(&server);
    smtpd_sasl_init(&server);
    /* Received: dates are local time; the zone file is out of reach after chroot. */
    tzset();
    svc->app = &server;
}

/* smtpd_ready - unprivileged now, in the queue directory: open it for the store */
static void smtpd_ready(struct service *svc)
{
    (void) svc;
    smtpd_queue_init(&server);
}

/* smtpd_accept - a new client */
static void smtpd_accept(struct service *svc, int fd, const struct sockaddr_storage *peer,
                         socklen_t peer_len, int listener_index)
{
    (void) svc;
    (void) listener_index;
    smtpd_session_start(&server, fd, peer, peer_len);
}

/* smtpd_active - sessions still open */
static unsigned smtpd_active(struct service *svc)
{
    (void) svc;
    /* A commit under way is a message a client may have been told is safe. */
    return server.session_count + smtpd_queue_pending();
}

/* smtpd_stop - the service is stopping: let idle sessions go */
static void smtpd_stop(struct service *svc)
{
    (void) svc;
    smtpd_session_stop_all(&server);
}

/* smtpd_done - the loop has ended: close the tables (Berkeley DB frees its cache only then) */
static void smtpd_done(struct service *svc)
{
    (void) svc;
    smtpd_check_free(server.check);
    server.check = NULL;
    smtpd_hc_free(server.header_checks);
    server.header_checks = NULL;
}

static const struct service_ops smtpd_ops = {
    .program = "smtpd",
    .user_param = "mail_owner",
    .dir_param = "queue_directory",
    .init = smtpd_init,
    .ready = smtpd_ready,
    .accept = smtpd_accept,
    .active = smtpd_active,
    .stop = smtpd_stop,
    .done = smtpd_done,
};

/* main - run smtpd in the service skeleton */
int main(int argc, char **argv)
{
    return service_main(argc, argv, &smtpd_ops);
}
