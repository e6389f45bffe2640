/*
 * smtpd.h - what the smtpd modules share. Not for other programs.
 *
 * smtpd.c          main: settings, the service skeleton's callbacks
 * smtpd_session.c  one SMTP connection: command reader, state machine, replies
 * smtpd_data.c     the DATA phase: end-of-message detection, dot-unstuffing,
 *                  bare CR/LF detection, size limit, hand-off to the store
 * smtpd_queue.c    the queue store: queue file in incoming/, Received:
 *                  header, 250 only after commit; the nudge to qmgr
 * smtpd_check.c    the restriction lists (client, helo, sender, relay,
 *                  recipient, data, end-of-data), evaluated as Postfix does,
 *                  able to wait for DNS and policy answers without blocking
 * smtpd_policy.c   check_policy_service: Postfix's policy delegation client
 * smtpd_anvil.c    per-client connection count and rate limits
 * smtpd_header_checks.c  header_checks, mime_header_checks, nested_header_checks
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
struct event_base;
struct smtpd_session;
struct tls_server;

/* smtpd_tls_security_level */
enum smtpd_tls_level { SMTPD_TLS_NONE, SMTPD_TLS_MAY, SMTPD_TLS_ENCRYPT };

/* Settings from main.cf, read once at start (smtpd.c). */
struct smtpd_settings {
    char   *hostname;                   /* myhostname: 421 replies, HELO reply */
    char   *banner;                     /* smtpd_banner: after "220 " */
    long long message_size_limit;       /* bytes; 0: no limit */
    long long queue_minfree;            /* queue_minfree, bytes (0: message_size_limit) */
    size_t  line_limit;                 /* line_length_limit: longest command line */
    long long timeout;                  /* smtpd_timeout, seconds */
    long long recipient_limit;          /* smtpd_recipient_limit */
    bool    helo_required;              /* smtpd_helo_required */
    bool    disable_vrfy;               /* disable_vrfy_command */
    unsigned hard_error_limit;          /* bad commands before 421 */
    unsigned soft_error_limit;          /* errors before every reply waits error_sleep */
    long long error_sleep;              /* smtpd_error_sleep_time, seconds */
    bool    smtputf8_enable;            /* offer SMTPUTF8 */
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
    char    tls_protocol[32];           /* "TLSv1.3" ("" without TLS), for policy services */
    char    tls_cipher[96];             /* "TLS_AES_256_GCM_SHA384" */
    int     tls_bits;                   /* the cipher's key size */
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
    bool    smtputf8;                   /* MAIL FROM ... SMTPUTF8 (RFC 6531) */
    const char *dsn_ret;                /* RFC 3461 RET: "FULL", "HDRS" or NULL */
    const char *dsn_envid;              /* ENVID, xtext-decoded, or NULL */
    char  **rcpt_notify;                /* per recipient: NOTIFY ("SUCCESS,DELAY", "NEVER") or NULL */
    char  **rcpt_orcpt;                 /* per recipient: ORCPT "rfc822;addr" decoded, or NULL */
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
 *
 * commit() does not wait for the disk: it returns at once, and done(ctx,
 * reply) follows from the event loop when the message is safely on disk
 * ("250 ...") or could not be stored (4xx). A session that ends meanwhile
 * calls forget(): the commit completes (the client may still see its 250
 * lost and send again: a duplicate, never a loss), but done is not called.
 */
typedef void (*smtpd_store_done_fn)(void *ctx, const char *reply);

struct smtpd_store {
    const char *name;
    /* open - a handle for one message; NULL with a 4xx/5xx reply to refuse DATA */
    void   *(*open)(const struct smtpd_envelope *env, struct strbuf *reply);
    /* write - append content; -1 with errno: the store failed (the message will be discarded) */
    int     (*write)(void *msg, const char *data, size_t len);
    /* commit - store for good (msg is taken); done later; returns a handle for forget */
    void   *(*commit)(void *msg, smtpd_store_done_fn done, void *ctx);
    /* forget - the caller of a pending commit is gone: no done call */
    void    (*forget)(void *commit);
    /* discard - drop the message and free the handle */
    void    (*discard)(void *msg);
};


struct smtpd_check;
struct smtpd_hc;

/* Per-process state: service->app. */
struct smtpd_server {
    struct service *svc;
    struct smtpd_settings set;
    const struct smtpd_store *store;
    struct smtpd_check *check;          /* recipient checks; NULL: accept any recipient */
    struct tls_server *tls;             /* NULL: no TLS on this service (no certificate) */
    struct smtpd_anvil *anvil;          /* per-client connection limits; NULL: none */
    struct smtpd_hc *header_checks;     /* header checks; NULL: none configured */
    struct smtpd_session *sessions;     /* all live sessions, for stop */
    unsigned session_count;
};

/* smtpd_queue.c */
/* smtpd_store_queue - queue files in incoming/ (after smtpd_queue_init) */
extern const struct smtpd_store smtpd_store_queue;
/* smtpd_queue_init - after the privilege drop: the queue directory is the cwd; commit threads */
void smtpd_queue_init(struct smtpd_server *srv);
/* smtpd_queue_space_ok - room in the queue file system for a message of size bytes (-1: unknown) */
bool smtpd_queue_space_ok(const struct smtpd_settings *set, long long size);
/* smtpd_queue_pending - commits still under way (the process must not exit before they end) */
unsigned smtpd_queue_pending(void);
/* smtpd_queue_format_received - the Received: header (LF line ends), for the store and tests */
void smtpd_queue_format_received(struct strbuf *out, const struct smtpd_envelope *env,
                                 const char *hostname, const char *mail_name,
                                 const char *queue_id, const char *rcpt, time_t when);

/* smtpd_check.c */
/* Where in the session a check runs (smtpd_delay_reject decides which lists run where). */
enum smtpd_stage {
    SMTPD_STAGE_CONNECT,                /* smtpd_client_restrictions (no delay) */
    SMTPD_STAGE_HELO,                   /* smtpd_helo_restrictions (no delay) */
    SMTPD_STAGE_MAIL,                   /* smtpd_sender_restrictions (no delay) */
    SMTPD_STAGE_RCPT,                   /* [client, helo, sender,] relay, recipient, user exists */
    SMTPD_STAGE_DATA,                   /* smtpd_data_restrictions (DATA, first BDAT) */
    SMTPD_STAGE_EOD,                    /* smtpd_end_of_data_restrictions */
};

enum smtpd_verdict {
    SMTPD_CHECK_OK,
    SMTPD_CHECK_REJECT,                 /* the 4xx/5xx reply is set */
    SMTPD_CHECK_PENDING,                /* waiting for DNS or a policy service: see smtpd_check_eval */
};

/* What the checks see of a session; must not change while a check is pending. */
struct smtpd_check_input {
    const struct smtpd_client *cl;
    const char *helo;                   /* NULL before HELO/EHLO */
    const char *protocol;               /* "SMTP", "ESMTP", ... */
    const struct address *sender;       /* NULL before MAIL */
    const struct address *rcpt;         /* the RCPT being checked, else NULL */
    size_t  rcpt_count;                 /* recipients accepted so far */
    long long size;                     /* SIZE= at MAIL/RCPT/DATA, the real size at EOD; -1 */
    const char *command;                /* "RCPT", "DATA", "BDAT", ... */
    bool    input_pending;              /* the client sent more before our reply (pipelining) */
    const char *instance;               /* one value per transaction, for policy services */
};

struct smtpd_check_run;
typedef void (*smtpd_check_resume_fn)(void *ctx);

/* smtpd_check_init - tables, mynetworks, restriction lists; fatal on a configuration error */
struct smtpd_check *smtpd_check_init(struct service *svc);
void smtpd_check_free(struct smtpd_check *chk);
/* smtpd_check_run_new - per-session evaluation state; fn(ctx) resumes a pending check */
struct smtpd_check_run *smtpd_check_run_new(struct smtpd_check *chk, smtpd_check_resume_fn fn,
                                            void *ctx);
/* smtpd_check_run_free - cancels anything pending */
void smtpd_check_run_free(struct smtpd_check_run *run);
/*
 * smtpd_check_eval - the restrictions of stage for in. SMTPD_CHECK_PENDING:
 * a lookup is under way; fn(ctx) is called from the event loop when it is
 * done, and the caller then calls smtpd_check_eval again with the same stage
 * and the same input, which goes on where it stopped.
 */
enum smtpd_verdict smtpd_check_eval(struct smtpd_check_run *run, enum smtpd_stage stage,
                                    const struct smtpd_check_input *in, struct strbuf *reply);
/* smtpd_check_cancel - forget a pending evaluation (no fn call will come) */
void smtpd_check_cancel(struct smtpd_check_run *run);
/* smtpd_check_delayed - with smtpd_delay_reject the client/helo/sender verdicts wait for RCPT */
bool smtpd_check_delayed(const struct smtpd_check *chk);
/* smtpd_canonical_address - trailing dot off the domain; "@myorigin" for a bare local part */
void smtpd_canonical_address(struct address *a, const char *myorigin);

/* smtpd_policy.c: check_policy_service */
struct smtpd_policy;
struct smtpd_policy_req;
struct policy_block;
/* action: the service's action= text; NULL when the service failed (why says how) */
typedef void (*smtpd_policy_fn)(void *ctx, const char *action, const char *why);
/* smtpd_policy_open - "unix:PATH" or "inet:HOST:PORT" (resolved now); NULL with err */
struct smtpd_policy *smtpd_policy_open(struct service *svc, const char *spec,
                                       long long timeout, long long max_idle,
                                       struct strbuf *err);
void smtpd_policy_free(struct smtpd_policy *p);
/* smtpd_policy_ask - queue a request; fn is called later from the event loop, exactly once */
struct smtpd_policy_req *smtpd_policy_ask(struct smtpd_policy *p, const struct policy_block *b,
                                          smtpd_policy_fn fn, void *ctx);
/* smtpd_policy_cancel - no callback for r */
void smtpd_policy_cancel(struct smtpd_policy_req *r);

/* smtpd_anvil.c: per-client connection count and rate (per process) */
struct smtpd_anvil;
/* smtpd_anvil_init - limits from main.cf; NULL when both limits are off */
struct smtpd_anvil *smtpd_anvil_init(struct service *svc);
/* smtpd_anvil_connect - count a new connection from addr; 0, or -1 with the 421 reply */
int  smtpd_anvil_connect(struct smtpd_anvil *a, const struct smtpd_client *cl,
                         const char *hostname, struct strbuf *reply);
/* smtpd_anvil_disconnect - a counted connection ended */
void smtpd_anvil_disconnect(struct smtpd_anvil *a, const struct smtpd_client *cl);

/* smtpd_header_checks.c */
enum smtpd_hc_action { SMTPD_HC_PASS, SMTPD_HC_REJECT, SMTPD_HC_DISCARD, SMTPD_HC_TEMPFAIL };
/* Who sent the message, for the log lines. */
struct smtpd_hc_context {
    const char *queue_id;
    const char *client;                 /* "name[addr]" */
    const char *sender;                 /* "" for the null sender */
    const char *rcpt;                   /* the first recipient */
};
struct smtpd_hc_result {
    enum smtpd_hc_action action;
    struct strbuf reply;                /* REJECT/TEMPFAIL: the reply after the final dot */
    struct strbuf log;                  /* lines to log, from the event loop */
    bool    hold;                       /* HOLD: commit into hold/ (when action is PASS) */
    bool    retire;                     /* a table changed beyond reach: retire after this */
};
/* smtpd_hc_init - open the tables (before chroot); NULL when none is configured; fatal on errors */
struct smtpd_hc *smtpd_hc_init(struct service *svc);
/* smtpd_hc_start - after the privilege drop: watch the tables for changes */
void smtpd_hc_start(struct smtpd_hc *hc, struct event_base *base);
/* smtpd_hc_run - any thread: check every header line of the message data[0..len) (LF line ends) */
void smtpd_hc_run(struct smtpd_hc *hc, const char *data, size_t len,
                  const struct smtpd_hc_context *ctx, struct smtpd_hc_result *res);
void smtpd_hc_result_free(struct smtpd_hc_result *res);
/* smtpd_hc_free - close the tables (at exit, no commit under way) */
void smtpd_hc_free(struct smtpd_hc *hc);

/* smtpd_tls.c */
/* smtpd_tls_init - TLS settings and context (privileged: reads the key); fatal on errors */
void smtpd_tls_init(struct smtpd_server *srv);
/* smtpd_tls_bufferevent - TLS on fd (server side, handshake pending); NULL with a warning */
struct bufferevent *smtpd_tls_bufferevent(struct smtpd_server *srv, int fd);
/* smtpd_tls_describe - after the handshake: "TLSv1.3 with cipher ..." and details */
void smtpd_tls_describe(struct bufferevent *bev, struct strbuf *info, struct strbuf *details);
/* smtpd_tls_params - after the handshake: protocol, cipher and bits into cl */
void smtpd_tls_params(struct bufferevent *bev, struct smtpd_client *cl);
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
    void   *commit;                     /* a commit under way, until its done call */
    int     state;                      /* scanner state, see smtpd_data.c */
    long long size;                     /* content bytes after unstuffing */
    long long limit;                    /* message_size_limit; 0: none */
    bool    bare_cr;                    /* a CR not followed by LF */
    bool    bare_lf;                    /* an LF not preceded by CR */
    bool    too_big;
    int     store_errno;                /* the store's write failed with this errno; 0: it did not */
    struct strbuf out;                  /* unstuffed content not yet written */
};

enum smtpd_data_status { SMTPD_DATA_MORE, SMTPD_DATA_DONE };

/* smtpd_data_begin - start reading a message for the opened store handle msg */
void smtpd_data_begin(struct smtpd_data *d, const struct smtpd_store *store, void *msg,
                      long long limit);
/* smtpd_data_read - consume input up to the end of the message */
enum smtpd_data_status smtpd_data_read(struct smtpd_data *d, struct evbuffer *in);
/* smtpd_data_chunk - BDAT content: to the store as it is, counted against the limit */
void smtpd_data_chunk(struct smtpd_data *d, const void *data, size_t len);
/* smtpd_store_error_reply - what a store failure with errno errnum tells the client: 452 when out of space */
const char *smtpd_store_error_reply(int errnum);
/* smtpd_data_problem - after the last byte: the reply if the message cannot be stored */
bool smtpd_data_problem(struct smtpd_data *d, struct strbuf *reply);
/* smtpd_data_commit - no problem and the checks passed: store it; done(ctx, reply) later */
void smtpd_data_commit(struct smtpd_data *d, smtpd_store_done_fn done, void *ctx);
/* smtpd_data_committed - the done call came: the commit is over */
void smtpd_data_committed(struct smtpd_data *d);
/* smtpd_data_abort - the session ends inside DATA: discard (or forget a pending commit) */
void smtpd_data_abort(struct smtpd_data *d);
/* smtpd_data_free - release the buffers (after end or abort) */
void smtpd_data_free(struct smtpd_data *d);

#endif
