/*
 * smtp - the SMTP and LMTP delivery agent: what its files share.
 *
 *   smtp.c          main program, settings, the connections from qmgr, one
 *                   delivery per request, results and their log lines
 *   smtp_dest.c     nexthop -> the addresses to try (MX preference order,
 *                   A/AAAA fallback, [host] without MX, unix:/inet: for LMTP)
 *   smtp_session.c  one SMTP/LMTP conversation on a bufferevent: greeting,
 *                   EHLO/LHLO, STARTTLS, MAIL/RCPT/DATA (pipelined when the
 *                   server offers it), per-recipient replies, the cache of
 *                   idle connections per destination
 *   smtp_tls.c      the client TLS context and the verification verdict
 *
 * One process runs many deliveries at once in one libevent loop; nothing
 * blocks except the small reply record to qmgr on a local socket.
 */
#ifndef POSTERN_SMTP_H
#define POSTERN_SMTP_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

#include <openssl/ssl.h>

#include "delivery_proto.h"
#include "dns.h"
#include "queue_file.h"
#include "service.h"
#include "strbuf.h"

#define SMTP_MAX_ADDRS      16          /* addresses tried per delivery */
#define SMTP_HOST_MAX       256

enum smtp_tls_level { SMTP_TLS_NONE, SMTP_TLS_MAY, SMTP_TLS_ENCRYPT, SMTP_TLS_VERIFY };

struct smtp_session;
struct smtp_qconn;

struct smtp_server {
    struct service *svc;
    struct dns_resolver *dns;
    SSL_CTX *tls_ctx;                   /* NULL: level none */
    bool    lmtp;                       /* run as lmtp (service name or argv[0]) */
    const char *proto;                  /* "SMTP" or "LMTP", for texts */
    enum smtp_tls_level tls_level;
    const char *helo_name;
    const char *myhostname;
    long    connect_ms, helo_ms, starttls_ms, mail_ms, rcpt_ms;
    long    data_init_ms, data_xfer_ms, data_done_ms, quit_ms;
    long    cache_ms;                   /* idle connection lifetime; 0: no cache */
    unsigned reuse_limit;
    struct smtp_qconn *qconns;          /* connections from qmgr */
    unsigned nqconns;
    struct smtp_session *idle;          /* the connection cache */
    unsigned nidle;
    unsigned deliveries;                /* in progress */
};

/* One address to try. */
struct smtp_addr {
    char    host[SMTP_HOST_MAX];        /* the name (MX exchange, host) or the literal */
    struct sockaddr_storage ss;
    socklen_t len;                      /* 0 for a UNIX path */
    char    path[108];                  /* unix: */
};

/* One request from qmgr being delivered. */
struct smtp_delivery {
    struct smtp_server *srv;
    struct smtp_qconn *qc;
    struct delivery_request req;
    struct queue_file qf;               /* the envelope, read from the passed file */
    int     msg_fd;
    struct delivery_result *res;
    bool   *final;                      /* res[i] settled */
    /* the destination */
    char    key[1100];                  /* connection cache key: transport + nexthop */
    char    domain[SMTP_HOST_MAX];      /* for "loops back to myself" and logs */
    int     port;
    bool    literal_host;               /* [host] or inet:/unix:: no MX lookup */
    bool    unix_path;
    struct smtp_addr addrs[SMTP_MAX_ADDRS];
    size_t  naddrs;
    size_t  next_addr;
    struct dns_query *dq;
    /* MX resolution in progress */
    struct dns_rr mx[DNS_MAX_RR];
    size_t  nmx, mx_next;
    int     mx_family;                  /* AF_INET then AF_INET6 for the current exchange */
    bool    dns_tempfail;
    /* why the last attempt failed, for the deferral of what is left */
    struct strbuf why;
    char    why_dsn[16];
    bool    connect_failed;             /* no server answered at all (4.4.1) */
};

/* smtp.c */
/* smtp_settle - recipient i's result (logged with relay) unless settled already */
void smtp_settle(struct smtp_delivery *d, size_t i, enum delivery_status st, const char *dsn,
                 const char *relay, const char *fmt, ...) __attribute__((format(printf, 6, 7)));
/* smtp_settle_rest - every open recipient gets the same result */
void smtp_settle_rest(struct smtp_delivery *d, enum delivery_status st, const char *dsn,
                      const char *relay, const char *text);
/* smtp_delivery_done - all recipients settled (or to defer with d->why): answer qmgr */
void smtp_delivery_done(struct smtp_delivery *d);
bool smtp_open_rcpts(const struct smtp_delivery *d);

/* smtp_dest.c */
/* smtp_dest_parse - nexthop (or the recipient domain) into d; -1 with err (a bounce) */
int  smtp_dest_parse(struct smtp_delivery *d, const char *nexthop, struct strbuf *err);
/* smtp_dest_resolve - fill d->addrs; then smtp_session_start(d) or the deferral/bounce */
void smtp_dest_resolve(struct smtp_delivery *d);
void smtp_dest_cancel(struct smtp_delivery *d);
/* smtp_addr_text - "name[ip]:port" into out */
void smtp_addr_text(const struct smtp_addr *a, int port, char *out, size_t size);

/* smtp_session.c */
/* smtp_session_start - a cached connection for d->key, else connect to d->addrs in turn */
void smtp_session_start(struct smtp_delivery *d);
void smtp_session_cache_flush(struct smtp_server *srv);

/* smtp_tls.c */
/* smtp_tls_init - the client context for the level; NULL for none; fatal on error */
SSL_CTX *smtp_tls_init(enum smtp_tls_level level, const char *cafile, const char *protocols);
/* smtp_tls_verified - does the peer's certificate chain verify and match host? */
bool smtp_tls_verified(SSL *ssl, const char *host);

#endif
