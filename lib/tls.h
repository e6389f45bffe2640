/*
 * tls - the OpenSSL server side shared by smtpd and imapd.
 *
 * tls_server_create() builds one server context per process while it is
 * still privileged (the private keys are readable only by root): one or two
 * certificate chains (RSA and/or ECDSA; OpenSSL picks the one the client can
 * verify), the protocol range, and session resumption (an in-memory session
 * cache plus RFC 5077 tickets with a per-process key, so a client that
 * reconnects to the same process skips the full handshake).
 *
 * Protocols use Postfix 3.6 syntax: ">=TLSv1.2", "<=TLSv1.3", exclusions
 * "!TLSv1, !TLSv1.1", or the names to allow ("TLSv1.2 TLSv1.3"); separators
 * are commas, colons and white space. The default everywhere is ">=TLSv1.2".
 *
 * tls_describe() words a finished handshake as Postfix logs it:
 * "TLSv1.3 with cipher TLS_AES_256_GCM_SHA384 (256/256 bits)" and the
 * details "key-exchange X25519 server-signature RSA-PSS (2048 bits)
 * server-digest SHA256".
 *
 * Errors are reported as "path: what is wrong" with OpenSSL's reason.
 */
#ifndef POSTERN_TLS_H
#define POSTERN_TLS_H

#include <stdbool.h>

#include <openssl/ssl.h>

#include "strbuf.h"

struct tls_server_config {
    const char *cert_file;              /* PEM chain: certificate, then intermediates; "" none */
    const char *key_file;               /* its private key; "" or NULL: inside cert_file */
    const char *eccert_file;            /* optional second chain (ECDSA); "" none */
    const char *eckey_file;             /* its key; "" or NULL: inside eccert_file */
    const char *protocols;              /* see above; NULL or "": ">=TLSv1.2" */
    const char *ciphers;                /* TLS 1.2 cipher list; NULL or "": OpenSSL's default */
    const char *session_id_context;     /* "smtpd/submission": sessions resume only here */
    long    session_timeout;            /* seconds a session may be resumed; <= 0: 3600 */
};

struct tls_server;

/* tls_server_create - the context; NULL with the reason in err. Call before chroot. */
struct tls_server *tls_server_create(const struct tls_server_config *conf, struct strbuf *err);
void tls_server_free(struct tls_server *ts);
/* tls_server_ssl - a new server-side SSL for one connection (NULL only when out of memory) */
SSL *tls_server_ssl(struct tls_server *ts);
/* tls_server_ctx - the OpenSSL context, for a caller with special needs (tests) */
SSL_CTX *tls_server_ctx(struct tls_server *ts);

/*
 * tls_parse_protocols - spec into the lowest and highest version to allow
 * (TLS1_VERSION ...) and SSL_OP_NO_* options for holes; -1 with err on an
 * unknown name or when nothing is left.
 */
int  tls_parse_protocols(const char *spec, int *min_version, int *max_version,
                         long *no_options, struct strbuf *err);

/* tls_describe - main: protocol, cipher, bits; details: key exchange and signature ("" if unknown) */
void tls_describe(SSL *ssl, struct strbuf *main, struct strbuf *details);

/* tls_errors - append OpenSSL's queued errors ("; "-separated) and clear the queue */
void tls_errors(struct strbuf *out);

#endif
