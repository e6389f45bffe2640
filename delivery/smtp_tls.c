/*
 * smtp_tls - the client side of STARTTLS for the smtp/lmtp agent.
 *
 * Interface (smtp.h): smtp_tls_init(), smtp_tls_verified().
 *
 * One context per process, made before the chroot: the CA file
 * (smtp_tls_CAfile, else OpenSSL's default paths) and the protocol range
 * (smtp_tls_protocols, Postfix 3.6 syntax through lib/tls). The handshake
 * never fails on the certificate itself: OpenSSL verifies without aborting
 * (SSL_VERIFY_NONE) and the session asks smtp_tls_verified() afterwards, so
 * "may" and "encrypt" log an Untrusted connection and carry on while
 * "verify" defers the mail, as Postfix does.
 */
#include <stdbool.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "log.h"
#include "strbuf.h"
#include "tls.h"

#include "smtp.h"

/* smtp_tls_init - the client context for the level; NULL for none; fatal on error */
SSL_CTX *smtp_tls_init(enum smtp_tls_level level, const char *cafile, const char *protocols)
{
    struct strbuf err = STRBUF_INIT;
    SSL_CTX *ctx;
    int     min_v, max_v;
    long    no_opts;

    if (level == SMTP_TLS_NONE)
        return NULL;
    if (tls_parse_protocols(protocols, &min_v, &max_v, &no_opts, &err) != 0)
        msg_fatal("smtp_tls_protocols = %s: %s", protocols, sb_str(&err));
    if ((ctx = SSL_CTX_new(TLS_client_method())) == NULL)
        msg_fatal("SSL_CTX_new: out of memory");
    SSL_CTX_set_min_proto_version(ctx, min_v);
    SSL_CTX_set_max_proto_version(ctx, max_v);
    SSL_CTX_set_options(ctx, (unsigned long) no_opts);
    SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
    if (cafile != NULL && *cafile != '\0') {
        if (SSL_CTX_load_verify_locations(ctx, cafile, NULL) != 1) {
            tls_errors(&err);
            msg_fatal("smtp_tls_CAfile = %s: %s", cafile, sb_str(&err));
        }
    } else if (SSL_CTX_set_default_verify_paths(ctx) != 1) {
        msg_warn("cannot load OpenSSL's default CA paths; no server certificate will be trusted");
    }
    sb_free(&err);
    return ctx;
}

/* smtp_tls_verified - does the peer's certificate chain verify and match host? */
bool smtp_tls_verified(SSL *ssl, const char *host)
{
    X509   *cert = SSL_get1_peer_certificate(ssl);
    bool    ok;

    if (cert == NULL)
        return false;
    ok = SSL_get_verify_result(ssl) == X509_V_OK
        && (X509_check_host(cert, host, strlen(host), 0, NULL) == 1
            || X509_check_ip_asc(cert, host, 0) == 1);
    X509_free(cert);
    return ok;
}
