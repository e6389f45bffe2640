/*
 * smtpd_tls - STARTTLS (RFC 3207) and implicit TLS (RFC 8314) for smtpd.
 *
 * Interface (smtpd.h): smtpd_tls_init(), smtpd_tls_bufferevent(),
 * smtpd_tls_describe(), smtpd_tls_params(), smtpd_tls_close().
 *
 * smtpd_tls_init() reads smtpd_tls_security_level (none, may, encrypt; empty
 * means none as in Postfix), the wrapper mode, and loads the certificate
 * chains with lib/tls.c while the process is still root (the key is readable
 * by root only). A level of "may" without a usable certificate is a warning
 * and the service runs without STARTTLS, as Postfix does; "encrypt" or the
 * wrapper mode without one is fatal, since every client would be refused.
 *
 * The session (smtpd_session.c) owns the protocol side: when to switch, the
 * discarding of pipelined plaintext, and the reset after the handshake. This
 * file only makes the TLS bufferevent and words what was negotiated.
 * Sessions of the same service resume with the session cache or a ticket;
 * the session id context is the service name, so a session from port 25
 * does not resume on 465.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

#include "config.h"
#include "log.h"
#include "service.h"
#include "strbuf.h"
#include "tls.h"
#include "tls_event.h"

#include "smtpd.h"

/* where_set - "main.cf:12: " or "" (default or -o value), to point at the line to fix */
static void where_set(struct config *cfg, const char *param, struct strbuf *out)
{
    int     line = config_line(cfg, param);

    sb_reset(out);
    if (line > 0)
        sb_printf(out, "%s:%d: ", config_path(cfg), line);
}

/* parse_level - smtpd_tls_security_level; fatal on a value we do not know */
static enum smtpd_tls_level parse_level(struct config *cfg)
{
    const char *v = config_str(cfg, "smtpd_tls_security_level");
    struct strbuf where = STRBUF_INIT;

    if (*v == 0 || strcasecmp(v, "none") == 0)
        return SMTPD_TLS_NONE;
    if (strcasecmp(v, "may") == 0)
        return SMTPD_TLS_MAY;
    if (strcasecmp(v, "encrypt") == 0)
        return SMTPD_TLS_ENCRYPT;
    where_set(cfg, "smtpd_tls_security_level", &where);
    msg_fatal("%ssmtpd_tls_security_level: unknown level \"%s\"; use none, may or encrypt",
              sb_str(&where), v);
}

/* smtpd_tls_init - TLS settings and context (privileged: reads the key); fatal on errors */
void smtpd_tls_init(struct smtpd_server *srv)
{
    struct config *cfg = srv->svc->cfg;
    struct smtpd_settings *set = &srv->set;
    struct tls_server_config conf;
    struct strbuf err = STRBUF_INIT;
    struct strbuf sid = STRBUF_INIT;
    bool    required;

    set->tls_level = parse_level(cfg);
    set->tls_wrapper = config_bool(cfg, "smtpd_tls_wrappermode");
    set->tls_auth_only = config_bool(cfg, "smtpd_tls_auth_only");
    set->tls_received_header = config_bool(cfg, "smtpd_tls_received_header");
    srv->tls = NULL;
    required = set->tls_wrapper || set->tls_level == SMTPD_TLS_ENCRYPT;
    if (set->tls_level == SMTPD_TLS_NONE && !set->tls_wrapper)
        return;

    memset(&conf, 0, sizeof(conf));
    conf.cert_file = config_str(cfg, "smtpd_tls_cert_file");
    conf.key_file = config_str(cfg, "smtpd_tls_key_file");
    conf.eccert_file = config_str(cfg, "smtpd_tls_eccert_file");
    conf.eckey_file = config_str(cfg, "smtpd_tls_eckey_file");
    conf.protocols = config_str(cfg, "smtpd_tls_protocols");
    conf.ciphers = config_str(cfg, "smtpd_tls_ciphers");
    sb_printf(&sid, "%s/%s", "smtpd", srv->svc->service_name ? srv->svc->service_name : "smtpd");
    conf.session_id_context = sb_str(&sid);
    conf.session_timeout = (long) config_time(cfg, "smtpd_tls_session_cache_timeout");
    srv->tls = tls_server_create(&conf, &err);
    if (srv->tls == NULL) {
        if (required)
            msg_fatal("%s: %s TLS is required (%s) but cannot be set up: %s; check "
                      "smtpd_tls_cert_file and smtpd_tls_key_file", config_path(cfg),
                      srv->svc->service_name ? srv->svc->service_name : "smtpd",
                      set->tls_wrapper ? "smtpd_tls_wrappermode = yes"
                      : "smtpd_tls_security_level = encrypt", sb_str(&err));
        msg_warn("%s: TLS is not available, STARTTLS will not be offered: %s",
                 config_path(cfg), sb_str(&err));
    }
    sb_free(&err);
    sb_free(&sid);
}

/* smtpd_tls_bufferevent - TLS on fd (server side, handshake pending); NULL with a warning */
struct bufferevent *smtpd_tls_bufferevent(struct smtpd_server *srv, int fd)
{
    if (srv->tls == NULL)
        msg_panic("smtpd_tls_bufferevent: TLS is not set up");
    return tls_event_accept(srv->tls, srv->svc->base, fd);
}

/* smtpd_tls_params - after the handshake: protocol, cipher and bits into cl */
void smtpd_tls_params(struct bufferevent *bev, struct smtpd_client *cl)
{
    SSL    *ssl = bufferevent_openssl_get_ssl(bev);

    cl->tls_protocol[0] = 0;
    cl->tls_cipher[0] = 0;
    cl->tls_bits = 0;
    if (ssl == NULL)
        return;
    snprintf(cl->tls_protocol, sizeof(cl->tls_protocol), "%s", SSL_get_version(ssl));
    snprintf(cl->tls_cipher, sizeof(cl->tls_cipher), "%s", SSL_get_cipher_name(ssl));
    cl->tls_bits = SSL_get_cipher_bits(ssl, NULL);
}

/* smtpd_tls_describe - after the handshake: "TLSv1.3 with cipher ..." and details */
void smtpd_tls_describe(struct bufferevent *bev, struct strbuf *info, struct strbuf *details)
{
    SSL    *ssl = bufferevent_openssl_get_ssl(bev);

    sb_reset(info);
    sb_reset(details);
    if (ssl == NULL) {
        sb_puts(info, "unknown");
        return;
    }
    tls_describe(ssl, info, details);
}

/* smtpd_tls_close - send close_notify before the connection is closed (best effort) */
void smtpd_tls_close(struct bufferevent *bev)
{
    SSL    *ssl = bufferevent_openssl_get_ssl(bev);

    /* One small non-blocking write; if the socket is full the client does without it. */
    if (ssl != NULL && SSL_is_init_finished(ssl)) {
        SSL_shutdown(ssl);
        ERR_clear_error();
    }
}
