/*
 * tls_event - TLS on libevent bufferevents, for the servers (smtpd, imapd):
 * a server-side bufferevent with its handshake pending, and in words why one
 * failed.
 */
#ifndef POSTERN_TLS_EVENT_H
#define POSTERN_TLS_EVENT_H

#include <event2/bufferevent.h>

struct strbuf;
struct tls_server;

/* tls_event_accept - TLS on fd (closed with the bufferevent); NULL with a warning */
struct bufferevent *tls_event_accept(struct tls_server *ts, struct event_base *base, int fd);
/* tls_event_error - why a TLS bufferevent failed: OpenSSL's errors, or errno, into out */
void    tls_event_error(struct bufferevent *bev, struct strbuf *out);

#endif
