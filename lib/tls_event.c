/*
 * tls_event - TLS on libevent bufferevents for the servers (see tls_event.h).
 */
#include <stdbool.h>
#include <string.h>

#include <event2/bufferevent_ssl.h>
#include <event2/util.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

#include "log.h"
#include "strbuf.h"
#include "tls.h"
#include "tls_event.h"

/* tls_event_accept - the server side of a handshake on fd */
struct bufferevent *tls_event_accept(struct tls_server *ts, struct event_base *base, int fd)
{
    SSL    *ssl;
    struct bufferevent *bev;

    if ((ssl = tls_server_ssl(ts)) == NULL) {
        msg_warn("cannot start TLS: out of memory");
        return NULL;
    }
    bev = bufferevent_openssl_socket_new(base, fd, ssl, BUFFEREVENT_SSL_ACCEPTING, BEV_OPT_CLOSE_ON_FREE);
    if (bev == NULL) {
        msg_warn("cannot start TLS: out of memory");
        SSL_free(ssl);
        return NULL;
    }
    /* A client that just closes the connection has not attacked us: treat it as EOF. */
    bufferevent_openssl_set_allow_dirty_shutdown(bev, 1);
    return bev;
}

/* tls_event_error - OpenSSL's queued errors of bev, or the socket error */
void tls_event_error(struct bufferevent *bev, struct strbuf *out)
{
    unsigned long e;
    char    buf[256];
    bool    any = false;

    while ((e = bufferevent_get_openssl_error(bev)) != 0) {
        /* libevent also queues SSL_get_error() codes (library 0): no text to show. */
        if (ERR_GET_LIB(e) == 0)
            continue;
        ERR_error_string_n(e, buf, sizeof(buf));
        sb_printf(out, "%s%s", any ? "; " : "", buf);
        any = true;
    }
    if (!any)
        sb_puts(out, EVUTIL_SOCKET_ERROR() ? strerror(EVUTIL_SOCKET_ERROR())
                : "connection closed during the TLS handshake");
}
