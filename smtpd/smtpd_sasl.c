/*
 * smtpd_sasl - AUTH for smtpd: the client side of the Dovecot auth protocol.
 *
 * Interface (smtpd.h): smtpd_sasl_init(), smtpd_sasl_mech_supported(),
 * smtpd_sasl_start(), smtpd_sasl_respond(), smtpd_sasl_cancel().
 *
 * The session (smtpd_session.c) speaks SMTP: the AUTH command, the 334
 * prompts, "*" to abort, the 235/535/454 replies. This file carries the
 * SASL exchange to the auth server (our authd, or a real Dovecot) over
 * smtpd_sasl_path (default "private/auth", relative to the queue directory,
 * which is our working directory and chroot). The line format and its
 * checks live in lib/auth_proto.c.
 *
 * One connection per smtpd process, opened when the first client
 * authenticates, not at start: a server whose authd is down still accepts
 * mail, and AUTH answers 454 until authd is back. Requests from all sessions
 * share the connection, told apart by their request id; nothing blocks, and
 * a reply for an id we no longer know (the client went away, or aborted with
 * "*") is ignored. Requests made while the connection is still in its
 * handshake wait for "DONE". Every exchange has a deadline: an auth server
 * that takes longer than SASL_REPLY_TIMEOUT gets the client a 454, and the
 * late answer is dropped.
 *
 * Results always reach the session from the event loop (a zero timeout on
 * the exchange's own timer), never from inside smtpd_sasl_start() or from
 * the middle of our reading the auth socket, so a session callback may
 * start, answer or cancel an exchange freely.
 *
 * Anything malformed from the auth server drops the connection and fails
 * the exchanges on it temporarily: we cannot resynchronize with a peer that
 * broke the protocol, and a client must never be told "authenticated" on
 * the strength of a line we did not understand.
 *
 * Diagnostics: one warning per outage ("SASL: connect to private/auth:
 * ..."), a note when it works again, a warning for protocol violations.
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
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

#include "auth_proto.h"
#include "config.h"
#include "log.h"
#include "mem.h"
#include "service.h"
#include "strbuf.h"

#include "smtpd.h"

#define SASL_HANDSHAKE_TIMEOUT  10      /* seconds from connect to "DONE" */
#define SASL_REPLY_TIMEOUT      60      /* seconds authd may take per step (failure delays included) */
#define SASL_MECH_LIST_MAX      1024    /* bytes of MECH names we keep */

enum conn_state { CONN_DOWN, CONN_HANDSHAKE, CONN_READY };

/* One exchange: an AUTH command from one session. */
struct smtpd_sasl {
    struct smtpd_sasl *prev, *next;     /* on the connection's list */
    unsigned id;                        /* request id; 0 until sent */
    unsigned gen;                       /* the connection it was sent on */
    bool    waiting;                    /* sent, awaiting authd's answer */
    char   *mech;
    char   *resp;                       /* initial response until sent; NULL: none */
    bool    secured;
    char   *lip, *rip;
    smtpd_sasl_fn fn;
    void   *ctx;
    struct event *ev;                   /* deadline, and delivery of results */
    bool    has_result;
    enum smtpd_sasl_status status;
    struct strbuf text;
};

/* The process's connection to the auth server. */
static struct {
    struct smtpd_server *srv;
    const char *path;                   /* smtpd_sasl_path */
    struct bufferevent *bev;
    enum conn_state state;
    bool    version_ok;
    struct strbuf mechs;                /* MECH names, space-separated */
    struct strbuf line;
    struct strbuf out;
    unsigned next_id;
    unsigned gen;                       /* counts connections: ids are valid on one only */
    struct smtpd_sasl *head;
    bool    outage;                     /* warned about; cleared when it works again */
} conn;

static void conn_drop(const char *why);

/* smtpd_sasl_mech_supported - PLAIN or LOGIN (any case) */
bool smtpd_sasl_mech_supported(const char *mech)
{
    return strcasecmp(mech, "PLAIN") == 0 || strcasecmp(mech, "LOGIN") == 0;
}

/* smtpd_sasl_init - check the SASL settings (fatal on a bad one) */
void smtpd_sasl_init(struct smtpd_server *srv)
{
    struct config *cfg = srv->svc->cfg;
    const char *type = config_str(cfg, "smtpd_sasl_type");
    const char *path = config_str(cfg, "smtpd_sasl_path");
    int     line;

    srv->set.sasl_enable = config_bool(cfg, "smtpd_sasl_auth_enable");
    srv->set.sasl_header = config_bool(cfg, "smtpd_sasl_authenticated_header");
    srv->set.broken_sasl = config_bool(cfg, "broken_sasl_auth_clients");
    conn.srv = srv;
    conn.next_id = 1;
    sb_init(&conn.mechs);
    sb_init(&conn.line);
    sb_init(&conn.out);
    if (!srv->set.sasl_enable)
        return;
    if (strcasecmp(type, "dovecot") != 0) {
        line = config_line(cfg, "smtpd_sasl_type");
        msg_fatal("%s:%d: smtpd_sasl_type: unsupported SASL type \"%s\"; use dovecot "
                  "(Postern's authd speaks the Dovecot protocol)", config_path(cfg), line, type);
    }
    /* "unix:" prefixes are accepted as Postfix writes them for Dovecot sockets. */
    if (strncmp(path, "unix:", 5) == 0)
        path += 5;
    if (*path == 0 || strlen(path) >= sizeof(((struct sockaddr_un *) 0)->sun_path)) {
        line = config_line(cfg, "smtpd_sasl_path");
        msg_fatal("%s:%d: smtpd_sasl_path: \"%s\" is %s; give the auth socket's path "
                  "relative to the queue directory, e.g. private/auth", config_path(cfg),
                  line, path, *path ? "too long" : "empty");
    }
    conn.path = path;
}

/* deliver - hand a result to the session from the event loop */
static void deliver(struct smtpd_sasl *x, enum smtpd_sasl_status status, const char *text)
{
    struct timeval now = {0, 0};

    x->has_result = true;
    x->status = status;
    x->waiting = false;
    sb_set(&x->text, text ? text : "");
    evtimer_del(x->ev);
    evtimer_add(x->ev, &now);
}

/* arm - the deadline for the next step of x */
static void arm(struct smtpd_sasl *x)
{
    struct timeval tv = {SASL_REPLY_TIMEOUT, 0};

    evtimer_add(x->ev, &tv);
}

/* unlink_exchange - off the connection's list */
static void unlink_exchange(struct smtpd_sasl *x)
{
    if (x->prev)
        x->prev->next = x->next;
    else if (conn.head == x)
        conn.head = x->next;
    if (x->next)
        x->next->prev = x->prev;
    x->prev = x->next = NULL;
}

/* free_exchange - everything of x */
static void free_exchange(struct smtpd_sasl *x)
{
    unlink_exchange(x);
    event_free(x->ev);
    free(x->mech);
    free(x->resp);
    free(x->lip);
    free(x->rip);
    sb_free(&x->text);
    free(x);
}

/* exchange_event - a result to deliver, or the deadline passed */
static void exchange_event(evutil_socket_t fd, short what, void *arg)
{
    struct smtpd_sasl *x = arg;
    enum smtpd_sasl_status status = x->status;
    smtpd_sasl_fn fn = x->fn;
    void   *ctx = x->ctx;
    char   *text;

    (void) fd;
    (void) what;
    if (!x->has_result) {
        msg_warn("SASL: no answer from the auth server %s within %d seconds",
                 conn.path, SASL_REPLY_TIMEOUT);
        status = SMTPD_SASL_TEMPFAIL;
        sb_set(&x->text, "the auth server did not answer in time");
    }
    x->has_result = false;
    text = sb_detach(&x->text);
    /* Only a challenge keeps the exchange; after any other result it is gone. */
    if (status == SMTPD_SASL_CONT)
        arm(x);
    else
        free_exchange(x);
    fn(ctx, status, text);
    free(text);
}

/* send_request - the AUTH line for x, on a ready connection */
static void send_request(struct smtpd_sasl *x)
{
    struct auth_client_req req;
    struct strbuf err = STRBUF_INIT;

    if (!auth_server_mech_offered(sb_str(&conn.mechs), x->mech)) {
        msg_warn("SASL: the auth server %s does not offer mechanism %s", conn.path, x->mech);
        deliver(x, SMTPD_SASL_TEMPFAIL, "mechanism not offered by the auth server");
        return;
    }
    x->id = conn.next_id++;
    if (conn.next_id == 0)
        conn.next_id = 1;
    x->gen = conn.gen;
    memset(&req, 0, sizeof(req));
    req.mech = x->mech;
    req.service = "smtp";
    req.secured = x->secured;
    req.lip = x->lip;
    req.rip = x->rip;
    req.resp = x->resp;
    sb_reset(&conn.out);
    if (auth_client_request(&conn.out, x->id, &req, &err) < 0) {
        /* The session checked mech and response: this is our bug, not the client's. */
        msg_warn("SASL: cannot send the request: %s", sb_str(&err));
        deliver(x, SMTPD_SASL_TEMPFAIL, sb_str(&err));
        sb_free(&err);
        return;
    }
    sb_free(&err);
    free(x->resp);
    x->resp = NULL;
    x->waiting = true;
    bufferevent_write(conn.bev, sb_str(&conn.out), sb_len(&conn.out));
}

/* find_waiting - the exchange waiting for an answer to id, or NULL */
static struct smtpd_sasl *find_waiting(unsigned id)
{
    for (struct smtpd_sasl *x = conn.head; x != NULL; x = x->next)
        if (x->id == id && x->waiting)
            return x;
    return NULL;
}

/* printable_user - a user name we can log and put into headers: no controls, no spaces */
static bool printable_user(const char *user)
{
    for (const unsigned char *p = (const unsigned char *) user; *p; p++)
        if (*p <= 0x20 || *p == 0x7f)
            return false;
    return *user != 0;
}

/* handle_line - one line from the auth server; -1: drop the connection */
static int handle_line(char *line)
{
    struct auth_server_line l;
    struct strbuf err = STRBUF_INIT;
    struct smtpd_sasl *x;

    if (auth_server_line_parse(line, &l, &err) < 0) {
        msg_warn("SASL: auth server %s: %s", conn.path, sb_str(&err));
        sb_free(&err);
        return -1;
    }
    sb_free(&err);
    if (conn.state == CONN_HANDSHAKE) {
        switch (l.type) {
        case AUTH_S_VERSION:
            if (l.major != AUTH_PROTO_MAJOR) {
                msg_warn("SASL: auth server %s speaks protocol version %u, we speak %d",
                         conn.path, l.major, AUTH_PROTO_MAJOR);
                return -1;
            }
            conn.version_ok = true;
            break;
        case AUTH_S_MECH:
            /* Anonymous logins are never wanted; the session only asks for PLAIN/LOGIN. */
            if (!l.mech_anonymous
                && sb_len(&conn.mechs) + strlen(l.mech) + 1 < SASL_MECH_LIST_MAX)
                sb_printf(&conn.mechs, "%s%s", sb_len(&conn.mechs) ? " " : "", l.mech);
            break;
        case AUTH_S_DONE:
            if (!conn.version_ok) {
                msg_warn("SASL: auth server %s sent no VERSION", conn.path);
                return -1;
            }
            conn.state = CONN_READY;
            bufferevent_set_timeouts(conn.bev, NULL, NULL);
            if (conn.outage) {
                msg_info("SASL: auth server %s is reachable again", conn.path);
                conn.outage = false;
            }
            for (x = conn.head; x != NULL; x = x->next)
                if (x->id == 0 && !x->has_result)
                    send_request(x);
            break;
        case AUTH_S_OK:
        case AUTH_S_CONT:
        case AUTH_S_FAIL:
            msg_warn("SASL: auth server %s answered before its handshake was done", conn.path);
            return -1;
        default:
            break;                      /* SPID, CUID, COOKIE, newer commands: not needed */
        }
        return 0;
    }
    switch (l.type) {
    case AUTH_S_OK:
    case AUTH_S_CONT:
    case AUTH_S_FAIL:
        break;
    default:
        return 0;                       /* nothing else is expected now; newer servers may talk */
    }
    if ((x = find_waiting(l.id)) == NULL)
        return 0;                       /* cancelled or timed out: the answer is late */
    if (l.type == AUTH_S_CONT) {
        deliver(x, SMTPD_SASL_CONT, l.data);
    } else if (l.type == AUTH_S_OK) {
        if (!printable_user(l.user)) {
            msg_warn("SASL: auth server %s: OK with an unusable user name", conn.path);
            deliver(x, SMTPD_SASL_TEMPFAIL, "bad user name from the auth server");
            return -1;
        }
        deliver(x, SMTPD_SASL_OK, l.user);
    } else {
        deliver(x, l.temp ? SMTPD_SASL_TEMPFAIL : SMTPD_SASL_FAIL, l.reason ? l.reason : "");
    }
    return 0;
}

/* conn_read - lines from the auth server */
static void conn_read(struct bufferevent *bev, void *arg)
{
    struct evbuffer *in = bufferevent_get_input(bev);
    int     ret;

    (void) arg;
    while ((ret = auth_proto_read_line(in, &conn.line)) == 1) {
        if (handle_line(conn.line.data ? conn.line.data : (char *) "") < 0) {
            conn_drop(NULL);
            return;
        }
    }
    if (ret < 0) {
        msg_warn("SASL: auth server %s sent a line longer than %d bytes", conn.path,
                 AUTH_PROTO_MAX_LINE);
        conn_drop(NULL);
    }
}

/* conn_event - the auth server went away, failed, or did not finish its handshake */
static void conn_event(struct bufferevent *bev, short what, void *arg)
{
    (void) bev;
    (void) arg;
    if (what & BEV_EVENT_TIMEOUT)
        conn_drop("no handshake from the auth server in time");
    else if (what & BEV_EVENT_ERROR)
        conn_drop(strerror(EVUTIL_SOCKET_ERROR()));
    else
        conn_drop("the auth server closed the connection");
}

/*
 * conn_drop - close the connection; every exchange on it fails temporarily.
 * why NULL: already logged.
 */
static void conn_drop(const char *why)
{
    if (why != NULL && (conn.head != NULL || conn.state != CONN_READY))
        msg_warn("SASL: auth server %s: %s", conn.path, why);
    if (conn.bev != NULL)
        bufferevent_free(conn.bev);
    conn.bev = NULL;
    conn.state = CONN_DOWN;
    conn.version_ok = false;
    sb_reset(&conn.mechs);
    for (struct smtpd_sasl *x = conn.head; x != NULL; x = x->next)
        if (!x->has_result)
            deliver(x, SMTPD_SASL_TEMPFAIL, "authentication server unavailable");
}

/* conn_open - connect (a local socket answers at once) and send our hello; -1 on failure */
static int conn_open(void)
{
    struct sockaddr_un sun;
    int     fd;

    memset(&sun, 0, sizeof(sun));
    sun.sun_family = AF_UNIX;
    memcpy(sun.sun_path, conn.path, strlen(conn.path) + 1);    /* length checked at init */
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0 || connect(fd, (struct sockaddr *) &sun, sizeof(sun)) < 0) {
        /* EAGAIN: authd's listen queue is full; as good as down for this client. */
        if (!conn.outage)
            msg_warn("SASL: connect to %s: %s", conn.path, strerror(errno));
        conn.outage = true;
        if (fd >= 0)
            close(fd);
        return -1;
    }
    conn.bev = bufferevent_socket_new(conn.srv->svc->base, fd, BEV_OPT_CLOSE_ON_FREE);
    if (conn.bev == NULL) {
        msg_warn("SASL: out of memory");
        close(fd);
        return -1;
    }
    conn.state = CONN_HANDSHAKE;
    conn.gen++;
    conn.version_ok = false;
    sb_reset(&conn.mechs);
    sb_reset(&conn.out);
    auth_client_hello(&conn.out, (unsigned long) getpid());
    bufferevent_write(conn.bev, sb_str(&conn.out), sb_len(&conn.out));
    bufferevent_setcb(conn.bev, conn_read, NULL, conn_event, NULL);
    {
        struct timeval tv = {SASL_HANDSHAKE_TIMEOUT, 0};

        bufferevent_set_timeouts(conn.bev, &tv, NULL);
    }
    /* Bounded: a line is at most AUTH_PROTO_MAX_LINE, checked as it arrives. */
    bufferevent_setwatermark(conn.bev, EV_READ, 0, 4 * AUTH_PROTO_MAX_LINE);
    bufferevent_enable(conn.bev, EV_READ | EV_WRITE);
    return 0;
}

/* smtpd_sasl_start - ask authd; fn is called later from the event loop, never from here */
struct smtpd_sasl *smtpd_sasl_start(struct smtpd_server *srv, const struct smtpd_sasl_req *req,
                                    smtpd_sasl_fn fn, void *ctx)
{
    struct smtpd_sasl *x = xcalloc(1, sizeof(*x));

    if (conn.path == NULL)
        msg_panic("smtpd_sasl_start: SASL is not enabled");
    x->ev = evtimer_new(srv->svc->base, exchange_event, x);
    if (x->ev == NULL)
        msg_fatal("smtpd_sasl_start: out of memory");
    x->mech = xstrdup(req->mech);
    for (char *p = x->mech; *p; p++)
        if (*p >= 'a' && *p <= 'z')
            *p = (char) (*p - 'a' + 'A');
    x->resp = req->resp ? xstrdup(req->resp) : NULL;
    x->secured = req->secured;
    x->lip = req->lip ? xstrdup(req->lip) : NULL;
    x->rip = req->rip ? xstrdup(req->rip) : NULL;
    x->fn = fn;
    x->ctx = ctx;
    sb_init(&x->text);
    x->next = conn.head;
    if (x->next)
        x->next->prev = x;
    conn.head = x;
    arm(x);
    if (conn.state == CONN_DOWN && conn_open() < 0)
        deliver(x, SMTPD_SASL_TEMPFAIL, "authentication server unavailable");
    else if (conn.state == CONN_READY)
        send_request(x);
    /* CONN_HANDSHAKE: sent at "DONE". */
    return x;
}

/* smtpd_sasl_respond - the client's valid base64 answer to a CONT */
void smtpd_sasl_respond(struct smtpd_sasl *x, const char *b64)
{
    struct strbuf err = STRBUF_INIT;

    if (x->has_result)
        return;                         /* a failure is on its way to the session */
    if (conn.state != CONN_READY || x->id == 0 || x->gen != conn.gen) {
        /* The connection the challenge came on is gone: authd forgot the request. */
        deliver(x, SMTPD_SASL_TEMPFAIL, "authentication server unavailable");
        return;
    }
    sb_reset(&conn.out);
    if (auth_client_cont(&conn.out, x->id, b64, &err) < 0) {
        deliver(x, SMTPD_SASL_TEMPFAIL, sb_str(&err));
        sb_free(&err);
        return;
    }
    sb_free(&err);
    x->waiting = true;
    evtimer_del(x->ev);
    arm(x);
    bufferevent_write(conn.bev, sb_str(&conn.out), sb_len(&conn.out));
}

/* smtpd_sasl_cancel - forget the exchange (client aborted or left); no more callbacks */
void smtpd_sasl_cancel(struct smtpd_sasl *x)
{
    if (x != NULL)
        free_exchange(x);
}
