/*
 * imapd - the IMAP server: main program.
 *
 * Runs in the service skeleton (lib/service.h) as vmail_owner in
 * virtual_mailbox_base (chrooted there when master.cf says so), like the
 * virtual delivery agent whose Maildirs it serves. One process serves many
 * connections (imapd_session.c); master runs maxproc processes.
 *
 * Before the privilege drop (init): the settings, the directory tables
 * (virtual_mailbox_maps: user -> Maildir path relative to the mail base;
 * they may live outside the chroot) and the TLS context (the private key is
 * readable by root only). After it (ready): the mail base as a directory fd
 * (the working directory) for lib/mailstore.c, and the auth client for
 * imapd_sasl_path (default ".postern/auth", relative to the mail base), which
 * connects on the first login, so imapd starts while authd is down and
 * answers logins "NO [UNAVAILABLE]" until it is back.
 *
 * Parameters: imapd_tls_cert_file / imapd_tls_key_file (default: smtpd's),
 * imapd_tls_security_level (none, may, encrypt), imapd_tls_wrappermode (993),
 * imapd_tls_protocols, imapd_tls_ciphers, imapd_sasl_path, imapd_timeout
 * (before login), imapd_max_line_length, imapd_disable_plaintext_auth,
 * message_size_limit (largest APPEND), imapd_header_cache_size (the
 * process's cache of envelope fields, lib/header_cache.h; 0: none).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "auth_client.h"
#include "config.h"
#include "directory.h"
#include "header_cache.h"
#include "log.h"
#include "mem.h"
#include "service.h"
#include "strbuf.h"
#include "tls.h"

#include "imapd.h"
#include "imapd_priv.h"

#define IMAPD_AUTOLOGOUT    (30 * 60)   /* RFC 3501 5.4: at least 30 minutes after login */
#define IMAPD_MAX_APPEND    (1024LL * 1024 * 1024)  /* APPEND cap when message_size_limit is 0 */

struct imapd_server imapd_server;

/* where_set - "main.cf:12: " or "" (default or -o value), to point at the line to fix */
static void where_set(struct config *cfg, const char *param, struct strbuf *out)
{
    int     line = config_line(cfg, param);

    sb_reset(out);
    if (line > 0)
        sb_printf(out, "%s:%d: ", config_path(cfg), line);
}

/* parse_level - imapd_tls_security_level; fatal on a value we do not know */
static enum imapd_tls_level parse_level(struct config *cfg)
{
    const char *v = config_str(cfg, "imapd_tls_security_level");
    struct strbuf where = STRBUF_INIT;

    if (*v == 0 || strcasecmp(v, "none") == 0)
        return IMAPD_TLS_NONE;
    if (strcasecmp(v, "may") == 0)
        return IMAPD_TLS_MAY;
    if (strcasecmp(v, "encrypt") == 0)
        return IMAPD_TLS_ENCRYPT;
    where_set(cfg, "imapd_tls_security_level", &where);
    msg_fatal("%simapd_tls_security_level: unknown level \"%s\"; use none, may or encrypt",
              sb_str(&where), v);
}

/* tls_init - the TLS context (privileged: reads the key); fatal when TLS is required and fails */
static void tls_init(struct imapd_server *srv)
{
    struct config *cfg = srv->svc->cfg;
    struct tls_server_config conf;
    struct strbuf err = STRBUF_INIT;
    struct strbuf sid = STRBUF_INIT;
    const char *name = srv->svc->service_name ? srv->svc->service_name : "imapd";
    bool    required;

    srv->set.tls_level = parse_level(cfg);
    srv->set.tls_wrapper = config_bool(cfg, "imapd_tls_wrappermode");
    required = srv->set.tls_wrapper || srv->set.tls_level == IMAPD_TLS_ENCRYPT;
    if (srv->set.tls_level == IMAPD_TLS_NONE && !srv->set.tls_wrapper)
        return;
    memset(&conf, 0, sizeof(conf));
    conf.cert_file = config_str(cfg, "imapd_tls_cert_file");
    conf.key_file = config_str(cfg, "imapd_tls_key_file");
    conf.protocols = config_str(cfg, "imapd_tls_protocols");
    conf.ciphers = config_str(cfg, "imapd_tls_ciphers");
    sb_printf(&sid, "imapd/%s", name);
    conf.session_id_context = sb_str(&sid);
    conf.session_timeout = 3600;
    srv->tls = tls_server_create(&conf, &err);
    if (srv->tls == NULL) {
        if (required)
            msg_fatal("%s: %s: TLS is required (%s) but cannot be set up: %s; check "
                      "imapd_tls_cert_file and imapd_tls_key_file", config_path(cfg), name,
                      srv->set.tls_wrapper ? "imapd_tls_wrappermode = yes"
                      : "imapd_tls_security_level = encrypt", sb_str(&err));
        msg_warn("%s: TLS is not available, STARTTLS will not be offered: %s",
                 config_path(cfg), sb_str(&err));
    }
    sb_free(&err);
    sb_free(&sid);
}

/* sasl_path - imapd_sasl_path, checked (fatal when unusable) */
static const char *sasl_path(struct config *cfg)
{
    const char *path = config_str(cfg, "imapd_sasl_path");
    struct strbuf where = STRBUF_INIT;

    if (strncmp(path, "unix:", 5) == 0)
        path += 5;
    if (*path == 0 || strlen(path) >= sizeof(((struct sockaddr_un *) 0)->sun_path)) {
        where_set(cfg, "imapd_sasl_path", &where);
        msg_fatal("%simapd_sasl_path: \"%s\" is %s; give the auth socket's path relative to "
                  "virtual_mailbox_base, e.g. .postern/auth", sb_str(&where), path,
                  *path ? "too long" : "empty");
    }
    return path;
}

/* imapd_init - settings, tables and TLS while still privileged */
static void imapd_init(struct service *svc)
{
    struct imapd_server *srv = &imapd_server;
    struct imapd_settings *set = &srv->set;
    struct strbuf err = STRBUF_INIT;
    long long max_line = config_int(svc->cfg, "imapd_max_line_length");
    long long limit = config_size(svc->cfg, "message_size_limit");

    srv->svc = svc;
    srv->base_fd = -1;
    /* RFC 7162 3: at least 8192 octets; more than a few MB only serves attackers. */
    if (max_line < 8192)
        max_line = 8192;
    if (max_line > 16 * 1024 * 1024)
        max_line = 16 * 1024 * 1024;
    set->max_line = (size_t) max_line;
    set->max_literal = (size_t) max_line;
    if (limit <= 0 || limit > IMAPD_MAX_APPEND)
        limit = IMAPD_MAX_APPEND;
    set->max_append = (size_t) limit;
    set->timeout = config_time(svc->cfg, "imapd_timeout");
    if (set->timeout < 1)
        set->timeout = 1;
    set->autologout = IMAPD_AUTOLOGOUT;
    set->disable_plaintext = config_bool(svc->cfg, "imapd_disable_plaintext_auth");
    header_cache_set_limit((size_t) config_size(svc->cfg, "imapd_header_cache_size"));
    set->hostname = xstrdup(config_str(svc->cfg, "myhostname"));
    (void) sasl_path(svc->cfg);
    srv->dir = directory_open(svc->cfg, &err);
    if (srv->dir == NULL)
        msg_fatal("%s", sb_str(&err));
    directory_watch(srv->dir, svc);
    tls_init(srv);
    /* INTERNALDATE and log times; the zone file is out of reach after chroot. */
    tzset();
    svc->app = srv;
    sb_free(&err);
}

/* imapd_ready - the mail base is now our working directory */
static void imapd_ready(struct service *svc)
{
    struct imapd_server *srv = &imapd_server;

    srv->base_fd = open(".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (srv->base_fd < 0)
        msg_fatal("open virtual_mailbox_base (working directory): %m");
    srv->auth = auth_client_new(svc->base, sasl_path(svc->cfg));
}

/* imapd_accept - a new client */
static void imapd_accept(struct service *svc, int fd, const struct sockaddr_storage *peer,
                         socklen_t peer_len, int listener_index)
{
    (void) svc;
    (void) listener_index;
    imapd_session_start(&imapd_server, fd, peer, peer_len);
}

/* imapd_active - sessions still open */
static unsigned imapd_active(struct service *svc)
{
    (void) svc;
    return imapd_server.session_count;
}

/* imapd_stop - the service is stopping: let idle sessions go */
static void imapd_stop(struct service *svc)
{
    (void) svc;
    imapd_session_stop_all(&imapd_server);
}

/* imapd_done - the loop has ended: the authd connection goes while its event base exists */
static void imapd_done(struct service *svc)
{
    struct imapd_server *srv = &imapd_server;

    (void) svc;
    auth_client_free(srv->auth);
    srv->auth = NULL;
    if (srv->tls)
        tls_server_free(srv->tls);
    srv->tls = NULL;
    if (srv->dir)
        directory_close(srv->dir);
    srv->dir = NULL;
    if (srv->base_fd >= 0)
        close(srv->base_fd);
    srv->base_fd = -1;
    free(srv->set.hostname);
    srv->set.hostname = NULL;
}

static const struct service_ops imapd_ops = {
    .program = "imapd",
    .user_param = "vmail_owner",
    .dir_param = "virtual_mailbox_base",
    .init = imapd_init,
    .ready = imapd_ready,
    .accept = imapd_accept,
    .active = imapd_active,
    .stop = imapd_stop,
    .done = imapd_done,
};

/* main - run imapd in the service skeleton */
int main(int argc, char **argv)
{
    return service_main(argc, argv, &imapd_ops);
}
