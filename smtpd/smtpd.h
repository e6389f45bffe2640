/*
 * smtpd.h - what the smtpd modules share. Not for other programs.
 *
 * smtpd.c          main: settings, the service skeleton's callbacks
 * smtpd_session.c  one SMTP connection: command reader, state machine, replies
 * smtpd_data.c     the DATA phase: end-of-message detection, dot-unstuffing,
 *                  bare CR/LF detection, size limit, hand-off to the store
 * smtpd_queue.c    the queue store: queue file in incoming/, Received:
 *                  header, 250 only after commit; the nudge to qmgr
 * smtpd_check.c    sender and recipient checks: domain classes, unknown
 *                  users, relay permission, sender login ownership
 *                  (smtpd_sender/relay/recipient_restrictions)
 * smtpd_tls.c      STARTTLS and implicit TLS: the server context, TLS
 *                  bufferevents, handshake wording for logs and headers
 * smtpd_sasl.c     AUTH: the client side of the Dovecot auth protocol, one
 *                  multiplexed connection per process to authd
 *
 * The store is the seam between the protocol and the queue: smtpd_data.c
 * hands it the message in chunks and then either commits or discards it. The
 * store decides what "committed" means and words the final reply; only a
 * store that has the message safely on disk may answer 250.
 */
#ifndef POSTERN_SMTPD_H
#define POSTERN_SMTPD_H

#include <stdbool.h>
#include <stddef.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <time.h>

#include "address.h"
#include "service.h"
#include "strbuf.h"

struct bufferevent;
struct evbuffer;
struct smtpd_session;
struct tls_server;

/* smtpd_tls_security_level */
enum smtpd_tls_level { SMTPD_TLS_NONE, SMTPD_TLS_MAY, SMTPD_TLS_ENCRYPT };

/* Settings from main.cf, read once at start (smtpd.c). */
struct smtpd_settings {
    char   *hostname;                   /* myhostname: 421 replies, HELO reply */
    char   *banner;                     /* smtpd_banner: after "220 " */
    long long message_size_limit;       /* bytes; 0: no limit */
    size_t  line_limit;                 /* line_length_limit: longest command line */
    long long timeout;                  /* smtpd_timeout, seconds */
    long long recipient_limit;          /* smtpd_recipient_limit */
    bool    helo_required;              /* smtpd_helo_required */
    bool    disable_vrfy;               /* disable_vrfy_command */
    unsigned hard_error_limit;          /* bad commands before 421 */
    char   *myorigin;                   /* appended to addresses without a domain */
    char   *mail_name;                  /* "Postern": the Received: header's "by ... (NAME)" */
    enum smtpd_tls_level tls_level;     /* smtpd_tls_security_level */
    bool    tls_wrapper;                /* smtpd_tls_wrappermode: TLS from the first byte (465) */
    bool    tls_auth_only;              /* smtpd_tls_auth_only */
    bool    tls_received_header;        /* smtpd_tls_received_header */
    bool    sasl_enable;                /* smtpd_sasl_auth_enable */
    bool    sasl_header;                /* smtpd_sasl_authenticated_header */
    bool    broken_sasl;                /* broken_sasl_auth_clients: also "AUTH=PLAIN LOGIN" */
};

/* Who is connected: what logs, checks and the Received: header need. */
struct smtpd_client {
    struct sockaddr_storage peer;
    socklen_t peer_len;
    char    addr[INET6_ADDRSTRLEN];     /* "192.0.2.1", "2001:db8::1"; "local" for AF_UNIX */
    unsigned port;
    const char *name;                   /* reverse name; "unknown" (we do no DNS yet) */
    char    ident[INET6_ADDRSTRLEN + 32];   /* "unknown[192.0.2.1]:1234" for logs */
    char    local_addr[INET6_ADDRSTRLEN];   /* our end ("" if unknown), for authd's lip */
    bool    tls;                        /* the connection is encrypted now */
    const char *sasl_username;          /* the logged-in user; NULL if none */
    const char *sasl_method;            /* "PLAIN", "LOGIN"; NULL if none */
};

/* The envelope of the message being received, as a store sees it. */
struct smtpd_envelope {
    const char *client;                 /* "unknown[192.0.2.1]:1234" for logs */
    const struct smtpd_client *cl;      /* the same, in parts */
    const char *helo;                   /* HELO/EHLO argument, "" if none */
    const char *protocol;               /* "SMTP", "ESMTP", "ESMTPS", "ESMTPA", "ESMTPSA" */
    struct address sender;              /* flags ADDRESS_NULL for "<>" */
    struct address *rcpt;               /* accepted recipients */
    size_t  rcpt_count;
    long long declared_size;            /* MAIL FROM SIZE=, -1 if none */
    bool    body_8bit;                  /* BODY=8BITMIME */
    const char *received_tls;           /* "TLSv1.3 with cipher ..."; NULL: no "(using ...)" */
    const char *received_tls_details;   /* "key-exchange ..." or "" */
    const char *received_auth;          /* NULL: no "(Authenticated sender: ...)" */
};

/*
 * The message store. open() is called when DATA is accepted (before 354);
 * write() gets the message content dot-unstuffed, lines ending in CRLF, in
 * chunks of at most SMTPD_DATA_CHUNK bytes; then exactly one of commit()
 * (the message arrived complete and acceptable) or discard() (rejected,
 * connection lost, shutdown).
 */
struct smtpd_store {
    const char *name;
    /* open - a handle for one message; NULL with a 4xx/5xx reply to refuse DATA */
    void   *(*open)(const struct smtpd_envelope *env, struct strbuf *reply);
    /* write - append content; -1: the store failed (the message will be discarded) */
    int     (*write)(void *msg, const char *data, size_t len);
    /* commit - store for good; reply "250 ..." only when it is safely on disk */
    void    (*commit)(void *msg, struct strbuf *reply);
    /* discard - drop the message and free the handle */
    void    (*discard)(void *msg);
};


struct smtpd_check;

/* Per-process state: service->app. */
struct smtpd_server {
    struct service *svc;
    struct smtpd_settings set;
    const struct smtpd_store *store;
    struct smtpd_check *check;          /* recipient checks; NULL: accept any recipient */
    struct tls_server *tls;             /* NULL: no TLS on this service (no certificate) */
    struct smtpd_session *sessions;     /* all live sessions, for stop */
    unsigned session_count;
};

/* smtpd_queue.c */
/* smtpd_store_queue - queue files in incoming/ (after smtpd_queue_init) */
extern const struct smtpd_store smtpd_store_queue;
/* smtpd_queue_init - after the privilege drop: the queue directory is the cwd */
void smtpd_queue_init(struct smtpd_server *srv);
/* smtpd_queue_format_received - the Received: header (LF line ends), for the store and tests */
void smtpd_queue_format_received(struct strbuf *out, const struct smtpd_envelope *env,
                                 const char *hostname, const char *mail_name,
                                 const char *queue_id, const char *rcpt, time_t when);

/* smtpd_check.c */
/* smtpd_check_init - tables, mynetworks, restriction lists; fatal on a configuration error */
struct smtpd_check *smtpd_check_init(struct service *svc);
void smtpd_check_free(struct smtpd_check *chk);
/* smtpd_check_mail - at MAIL: sender restrictions unless smtpd_delay_reject; 0 or -1 + reply */
int  smtpd_check_mail(struct smtpd_check *chk, const struct smtpd_client *cl,
                      const struct address *sender, struct strbuf *reply);
/* smtpd_check_rcpt - 0: accept; -1: refused with the reply (4xx/5xx) in reply */
int  smtpd_check_rcpt(struct smtpd_check *chk, const struct smtpd_client *cl,
                      const struct address *sender, const struct address *rcpt,
                      struct strbuf *reply);
/* smtpd_canonical_address - trailing dot off the domain; "@myorigin" for a bare local part */
void smtpd_canonical_address(struct address *a, const char *myorigin);

/* smtpd_tls.c */
/* smtpd_tls_init - TLS settings and context (privileged: reads the key); fatal on errors */
void smtpd_tls_init(struct smtpd_server *srv);
/* smtpd_tls_bufferevent - TLS on fd (server side, handshake pending); NULL with a warning */
struct bufferevent *smtpd_tls_bufferevent(struct smtpd_server *srv, int fd);
/* smtpd_tls_describe - after the handshake: "TLSv1.3 with cipher ..." and details */
void smtpd_tls_describe(struct bufferevent *bev, struct strbuf *info, struct strbuf *details);
/* smtpd_tls_error - why a TLS bufferevent failed (OpenSSL's errors, or errno) */
void smtpd_tls_error(struct bufferevent *bev, struct strbuf *out);
/* smtpd_tls_close - send close_notify before the connection is closed (best effort) */
void smtpd_tls_close(struct bufferevent *bev);

/* smtpd_sasl.c */
enum smtpd_sasl_status {
    SMTPD_SASL_CONT,                    /* text: base64 challenge; respond() or cancel() next */
    SMTPD_SASL_OK,                      /* text: the user name; the exchange is over */
    SMTPD_SASL_FAIL,                    /* text: reason ("" if none); over */
    SMTPD_SASL_TEMPFAIL,                /* authd down, slow or confused; text: reason; over */
};
struct smtpd_sasl;
typedef void (*smtpd_sasl_fn)(void *ctx, enum smtpd_sasl_status status, const char *text);
struct smtpd_sasl_req {
    const char *mech;                   /* "PLAIN", "LOGIN" */
    const char *resp;                   /* valid base64 initial response; "" empty; NULL none */
    bool    secured;                    /* TLS */
    const char *lip, *rip;              /* NULL to omit */
};
/* smtpd_sasl_init - check the SASL settings (fatal on a bad one) */
void smtpd_sasl_init(struct smtpd_server *srv);
/* smtpd_sasl_mech_supported - PLAIN or LOGIN (any case) */
bool smtpd_sasl_mech_supported(const char *mech);
/* smtpd_sasl_start - ask authd; fn is called later from the event loop, never from here */
struct smtpd_sasl *smtpd_sasl_start(struct smtpd_server *srv, const struct smtpd_sasl_req *req,
                                    smtpd_sasl_fn fn, void *ctx);
/* smtpd_sasl_respond - the client's valid base64 answer to a CONT */
void smtpd_sasl_respond(struct smtpd_sasl *x, const char *b64);
/* smtpd_sasl_cancel - forget the exchange (client aborted or left); no more callbacks */
void smtpd_sasl_cancel(struct smtpd_sasl *x);

/* smtpd_session.c */
/* smtpd_session_start - greet a new client on fd (non-blocking; closed when done) */
void smtpd_session_start(struct smtpd_server *srv, int fd,
                         const struct sockaddr_storage *peer, socklen_t peer_len);
/* smtpd_session_stop_all - service stop: let idle sessions go, DATA sessions finish first */
void smtpd_session_stop_all(struct smtpd_server *srv);

/* smtpd_data.c */
#define SMTPD_DATA_CHUNK    65536       /* most input scanned, and output buffered, at once */

struct smtpd_data {
    const struct smtpd_store *store;
    void   *msg;                        /* the store's handle; NULL when done */
    int     state;                      /* scanner state, see smtpd_data.c */
    long long size;                     /* content bytes after unstuffing */
    long long limit;                    /* message_size_limit; 0: none */
    bool    bare_cr;                    /* a CR not followed by LF */
    bool    bare_lf;                    /* an LF not preceded by CR */
    bool    too_big;
    bool    store_failed;
    struct strbuf out;                  /* unstuffed content not yet written */
};

enum smtpd_data_status { SMTPD_DATA_MORE, SMTPD_DATA_DONE };

/* smtpd_data_begin - start reading a message for the opened store handle msg */
void smtpd_data_begin(struct smtpd_data *d, const struct smtpd_store *store, void *msg,
                      long long limit);
/* smtpd_data_read - consume input up to the end of the message */
enum smtpd_data_status smtpd_data_read(struct smtpd_data *d, struct evbuffer *in);
/* smtpd_data_end - after SMTPD_DATA_DONE: commit or discard; the reply; true if stored */
bool smtpd_data_end(struct smtpd_data *d, struct strbuf *reply);
/* smtpd_data_abort - the session ends inside DATA: discard */
void smtpd_data_abort(struct smtpd_data *d);
/* smtpd_data_free - release the buffers (after end or abort) */
void smtpd_data_free(struct smtpd_data *d);

#endif
