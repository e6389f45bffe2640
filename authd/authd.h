/*
 * authd - the authentication service: shared state of its modules.
 *
 *   authd.c          main, service skeleton glue, client connections and
 *                    the protocol handshake (lib/auth_proto.h)
 *   authd_request.c  one AUTH request: the PLAIN/LOGIN exchange, the
 *                    password check, throttling and delayed FAIL replies
 *   authd_passdb.c   the passwd-file, loaded into a hash table, reloaded
 *                    when the file is replaced; or auth_passdb_maps (lib/map)
 */
#ifndef POSTERN_AUTHD_H
#define POSTERN_AUTHD_H

#include <stdbool.h>
#include <sys/queue.h>

#include "auth_proto.h"
#include "auth_throttle.h"
#include "service.h"
#include "strbuf.h"

#define AUTHD_MAX_CLIENTS       1024    /* connections (one per smtpd/imapd process) */
#define AUTHD_MAX_REQUESTS      64      /* requests being worked on, per connection */
/*
 * A FAIL that only waits out its failure delay is decided: it no longer counts
 * as in flight, or an attacker guessing from many addresses would fill the
 * in-flight slots of an smtpd's shared connection and lock everyone out. These
 * have their own, larger cap (memory); past it the FAIL goes out at once.
 */
#define AUTHD_MAX_DELAYED       4096
/*
 * Passwords waiting for or in a worker thread, per connection: a burst of
 * logins from one smtpd's many sessions queues up to this many; past it,
 * "FAIL temp" (the hashing is the bottleneck then, not the queue).
 */
#define AUTHD_MAX_VERIFYING     1024
#define AUTHD_MAX_OUTPUT        (256 * 1024)  /* unread replies before we drop a client */

struct bufferevent;
struct event;
struct authd_request;

/* One client connection (an smtpd, imapd, Postfix or doveadm). */
struct authd_client {
    struct bufferevent *bev;
    unsigned long cuid;                 /* connection number, as sent in CUID */
    unsigned long cpid;                 /* the client's pid from CPID, 0 until sent */
    bool    handshaken;                 /* VERSION received */
    unsigned nrequests;                 /* in flight: counted against AUTHD_MAX_REQUESTS */
    unsigned nverifying;                /* passwords being checked: against AUTHD_MAX_VERIFYING */
    unsigned ndelayed;                  /* decided FAILs waiting: against AUTHD_MAX_DELAYED */
    LIST_HEAD(, authd_request) requests;
    LIST_ENTRY(authd_client) link;
};

/* A user from the passdb. */
struct authd_user {
    const char *name;
    const char *password;               /* "{SCHEME}..." or "*" */
    bool    nologin;                    /* disabled everywhere */
    bool    deny_smtp;                  /* allow_smtp=no */
    bool    deny_imap;                  /* allow_imap=no */
    unsigned long long quota_bytes;     /* userdb_quota_rule=*:bytes=N; 0 = none */
};

struct authd {
    struct service *svc;
    char   *passwd_path;                /* relative to auth_directory (our cwd) */
    struct auth_throttle *throttle;
    long long request_timeout;          /* seconds */
    unsigned nclients;
    unsigned long next_cuid;
    char    cookie[33];
    unsigned requests_active;           /* requests in flight, all clients */
    LIST_HEAD(, authd_client) clients;
};

extern struct authd authd;

/* authd.c */
/* authd_client_send - queue a reply line (complete, with "\n") to the client */
void authd_client_send(struct authd_client *cl, const struct strbuf *line);
/* authd_now_ms - the monotonic clock in milliseconds */
long long authd_now_ms(void);

/* authd_request.c */
/* authd_request_init - dummy hash, throttle; after the configuration is read */
void authd_request_init(struct service *svc);
/* authd_request_auth - an AUTH line; -1 for a protocol error (drop the client) */
int  authd_request_auth(struct authd_client *cl, const struct auth_client_line *line);
/* authd_request_cont - a CONT line; -1 for a protocol error (drop the client) */
int  authd_request_cont(struct authd_client *cl, const struct auth_client_line *line);
/* authd_request_free_all - forget cl's requests (it disconnected) */
void authd_request_free_all(struct authd_client *cl);

/* authd_passdb.c */
/* authd_passdb_init - the passwd-file path relative to auth_directory; fatal when outside it */
void authd_passdb_init(struct service *svc);
/* authd_passdb_check - reload the file when it was replaced or changed */
void authd_passdb_check(void);
/* authd_passdb_lookup - the user (name already lower-cased), NULL if unknown */
const struct authd_user *authd_passdb_lookup(const char *name);
/* authd_passdb_relative - path relative to dir when it lies inside it; NULL otherwise (caller frees) */
char *authd_passdb_relative(const char *dir, const char *path);

/* A user fetched from auth_passdb_maps: owns its strings. */
struct authd_fetched {
    struct authd_user user;
    char   *data;
};

/* authd_passdb_maps_enabled - users come from auth_passdb_maps, not the passwd-file */
bool authd_passdb_maps_enabled(void);
/*
 * authd_passdb_fetch - look name (lower-cased) up in auth_passdb_maps, from
 * any thread: 1 found (why may hold a warning about the entry), 0 unknown
 * (why may say the entry was unusable), -1 temporary failure with why
 */
int  authd_passdb_fetch(const char *name, struct authd_fetched *out, struct strbuf *why);
/* authd_fetched_free - wipe and release what authd_passdb_fetch() filled in */
void authd_fetched_free(struct authd_fetched *f);

#endif
