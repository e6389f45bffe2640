/*
 * auth_client - the client side of the Dovecot auth protocol, event driven
 * (see auth_client.h for the interface and its guarantees).
 *
 * The line format and its checks live in lib/auth_proto.c; this file keeps
 * the connection's state (down, handshake, ready), the exchanges waiting on
 * it, and their deadlines. Each exchange owns one timer that serves both as
 * its deadline and, armed with a zero timeout, as the way its result is
 * delivered from the event loop.
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

#include "auth_client.h"
#include "auth_proto.h"
#include "log.h"
#include "mem.h"
#include "strbuf.h"

#define MECH_LIST_MAX   1024            /* bytes of MECH names we keep */

enum conn_state { CONN_DOWN, CONN_HANDSHAKE, CONN_READY };

/* One exchange: one authentication attempt of one client. */
struct auth_exchange {
    struct auth_client *ac;
    struct auth_exchange *prev, *next;  /* on the connection's list */
    unsigned id;                        /* request id; 0 until sent */
    unsigned gen;                       /* the connection it was sent on */
    bool    waiting;                    /* sent, awaiting the server's answer */
    char   *mech;
    char   *service;
    char   *resp;                       /* initial response until sent; NULL: none */
    bool    secured;
    char   *lip, *rip;
    auth_client_fn fn;
    void   *ctx;
    struct event *ev;                   /* deadline, and delivery of results */
    bool    has_result;
    enum auth_client_status status;
    struct strbuf text;
    struct strbuf fieldbuf;             /* OK: the extra fields, NUL-separated */
    size_t  nfields;
};

/* The process's connection to one auth server. */
struct auth_client {
    struct event_base *base;
    char   *path;
    struct bufferevent *bev;
    enum conn_state state;
    bool    version_ok;
    struct strbuf mechs;                /* MECH names, space-separated */
    struct strbuf line;
    struct strbuf copy;                 /* an OK line before it is parsed in place */
    struct strbuf out;
    unsigned next_id;
    unsigned gen;                       /* counts connections: ids are valid on one only */
    struct auth_exchange *head;
    bool    outage;                     /* warned about; cleared when it works again */
};

static void conn_drop(struct auth_client *ac, const char *why);

/* auth_client_new - a connection-to-be to the auth server at path (opened on first use) */
struct auth_client *auth_client_new(struct event_base *base, const char *path)
{
    struct auth_client *ac = xcalloc(1, sizeof(*ac));

    ac->base = base;
    ac->path = xstrdup(path);
    ac->next_id = 1;
    sb_init(&ac->mechs);
    sb_init(&ac->line);
    sb_init(&ac->copy);
    sb_init(&ac->out);
    return ac;
}

/* auth_client_path - the socket path, for messages */
const char *auth_client_path(const struct auth_client *ac)
{
    return ac->path;
}

/* deliver - hand a result to the caller from the event loop */
static void deliver(struct auth_exchange *x, enum auth_client_status status, const char *text)
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
static void arm(struct auth_exchange *x)
{
    struct timeval tv = {AUTH_CLIENT_REPLY_TIMEOUT, 0};

    evtimer_add(x->ev, &tv);
}

/* unlink_exchange - off the connection's list */
static void unlink_exchange(struct auth_exchange *x)
{
    struct auth_client *ac = x->ac;

    if (x->prev)
        x->prev->next = x->next;
    else if (ac->head == x)
        ac->head = x->next;
    if (x->next)
        x->next->prev = x->prev;
    x->prev = x->next = NULL;
}

/* free_exchange - everything of x */
static void free_exchange(struct auth_exchange *x)
{
    unlink_exchange(x);
    event_free(x->ev);
    free(x->mech);
    free(x->service);
    free(x->resp);
    free(x->lip);
    free(x->rip);
    sb_free(&x->text);
    sb_free(&x->fieldbuf);
    free(x);
}

/* exchange_event - a result to deliver, or the deadline passed */
static void exchange_event(evutil_socket_t fd, short what, void *arg)
{
    struct auth_exchange *x = arg;
    struct auth_client_result res;
    const char *fields[AUTH_CLIENT_MAX_FIELDS];
    struct strbuf fieldbuf;
    auth_client_fn fn = x->fn;
    void   *ctx = x->ctx;
    char   *text;
    const char *p;

    (void) fd;
    (void) what;
    memset(&res, 0, sizeof(res));
    res.status = x->status;
    if (!x->has_result) {
        msg_warn("SASL: no answer from the auth server %s within %d seconds",
                 x->ac->path, AUTH_CLIENT_REPLY_TIMEOUT);
        res.status = AUTH_CLIENT_TEMPFAIL;
        sb_set(&x->text, "the auth server did not answer in time");
        sb_reset(&x->fieldbuf);
        x->nfields = 0;
    }
    x->has_result = false;
    text = sb_detach(&x->text);
    fieldbuf = x->fieldbuf;
    sb_init(&x->fieldbuf);
    res.nfields = res.status == AUTH_CLIENT_OK ? x->nfields : 0;
    x->nfields = 0;
    p = sb_str(&fieldbuf);
    for (size_t i = 0; i < res.nfields; i++) {
        fields[i] = p;
        p += strlen(p) + 1;
    }
    res.fields = fields;
    res.text = text;
    /* Only a challenge keeps the exchange; after any other result it is gone. */
    if (res.status == AUTH_CLIENT_CONT)
        arm(x);
    else
        free_exchange(x);
    fn(ctx, &res);
    free(text);
    sb_free(&fieldbuf);
}

/* send_request - the AUTH line for x, on a ready connection */
static void send_request(struct auth_exchange *x)
{
    struct auth_client *ac = x->ac;
    struct auth_client_req req;
    struct strbuf err = STRBUF_INIT;

    if (!auth_server_mech_offered(sb_str(&ac->mechs), x->mech)) {
        msg_warn("SASL: the auth server %s does not offer mechanism %s", ac->path, x->mech);
        deliver(x, AUTH_CLIENT_TEMPFAIL, "mechanism not offered by the auth server");
        return;
    }
    x->id = ac->next_id++;
    if (ac->next_id == 0)
        ac->next_id = 1;
    x->gen = ac->gen;
    memset(&req, 0, sizeof(req));
    req.mech = x->mech;
    req.service = x->service;
    req.secured = x->secured;
    req.lip = x->lip;
    req.rip = x->rip;
    req.resp = x->resp;
    sb_reset(&ac->out);
    if (auth_client_request(&ac->out, x->id, &req, &err) < 0) {
        /* The caller checked mech and response: this is our bug, not the client's. */
        msg_warn("SASL: cannot send the request: %s", sb_str(&err));
        deliver(x, AUTH_CLIENT_TEMPFAIL, sb_str(&err));
        sb_free(&err);
        return;
    }
    sb_free(&err);
    free(x->resp);
    x->resp = NULL;
    x->waiting = true;
    bufferevent_write(ac->bev, sb_str(&ac->out), sb_len(&ac->out));
}

/* find_waiting - the exchange waiting for an answer to id, or NULL */
static struct auth_exchange *find_waiting(struct auth_client *ac, unsigned id)
{
    for (struct auth_exchange *x = ac->head; x != NULL; x = x->next)
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

/*
 * collect_fields - the OK line's parameters other than user= (from the copy
 * taken before parsing, since the parser keeps only what it knows) into x;
 * -1 for a bad escape
 */
static int collect_fields(struct auth_client *ac, struct auth_exchange *x)
{
    char   *p = ac->copy.data;
    char   *f;
    unsigned n = 0;

    sb_reset(&x->fieldbuf);
    x->nfields = 0;
    if (p == NULL)
        return 0;
    while ((f = strsep(&p, "\t")) != NULL) {
        if (n++ < 2 || *f == 0 || strncmp(f, "user=", 5) == 0)
            continue;                   /* "OK", the id */
        if (auth_tab_unescape(f) < 0)
            return -1;
        if (x->nfields == AUTH_CLIENT_MAX_FIELDS)
            continue;                   /* more than any real server sends: the rest is noise */
        sb_append(&x->fieldbuf, f, strlen(f) + 1);
        x->nfields++;
    }
    return 0;
}

/* handshake_line - one line before "DONE"; -1: drop the connection */
static int handshake_line(struct auth_client *ac, const struct auth_server_line *l)
{
    switch (l->type) {
    case AUTH_S_VERSION:
        if (l->major != AUTH_PROTO_MAJOR) {
            msg_warn("SASL: auth server %s speaks protocol version %u, we speak %d",
                     ac->path, l->major, AUTH_PROTO_MAJOR);
            return -1;
        }
        ac->version_ok = true;
        break;
    case AUTH_S_MECH:
        /* Anonymous logins are never wanted. */
        if (!l->mech_anonymous && sb_len(&ac->mechs) + strlen(l->mech) + 1 < MECH_LIST_MAX)
            sb_printf(&ac->mechs, "%s%s", sb_len(&ac->mechs) ? " " : "", l->mech);
        break;
    case AUTH_S_DONE:
        if (!ac->version_ok) {
            msg_warn("SASL: auth server %s sent no VERSION", ac->path);
            return -1;
        }
        ac->state = CONN_READY;
        bufferevent_set_timeouts(ac->bev, NULL, NULL);
        if (ac->outage) {
            msg_info("SASL: auth server %s is reachable again", ac->path);
            ac->outage = false;
        }
        for (struct auth_exchange *x = ac->head; x != NULL; x = x->next)
            if (x->id == 0 && !x->has_result)
                send_request(x);
        break;
    case AUTH_S_OK:
    case AUTH_S_CONT:
    case AUTH_S_FAIL:
        msg_warn("SASL: auth server %s answered before its handshake was done", ac->path);
        return -1;
    default:
        break;                          /* SPID, CUID, COOKIE, newer commands: not needed */
    }
    return 0;
}

/* handle_line - one line from the auth server; -1: drop the connection */
static int handle_line(struct auth_client *ac, char *line)
{
    struct auth_server_line l;
    struct strbuf err = STRBUF_INIT;
    struct auth_exchange *x;

    sb_reset(&ac->copy);
    if (strncmp(line, "OK\t", 3) == 0)
        sb_puts(&ac->copy, line);
    if (auth_server_line_parse(line, &l, &err) < 0) {
        msg_warn("SASL: auth server %s: %s", ac->path, sb_str(&err));
        sb_free(&err);
        return -1;
    }
    sb_free(&err);
    if (ac->state == CONN_HANDSHAKE)
        return handshake_line(ac, &l);
    switch (l.type) {
    case AUTH_S_OK:
    case AUTH_S_CONT:
    case AUTH_S_FAIL:
        break;
    default:
        return 0;                       /* nothing else is expected now; newer servers may talk */
    }
    if ((x = find_waiting(ac, l.id)) == NULL)
        return 0;                       /* cancelled or timed out: the answer is late */
    if (l.type == AUTH_S_CONT) {
        deliver(x, AUTH_CLIENT_CONT, l.data);
    } else if (l.type == AUTH_S_OK) {
        if (!printable_user(l.user)) {
            msg_warn("SASL: auth server %s: OK with an unusable user name", ac->path);
            deliver(x, AUTH_CLIENT_TEMPFAIL, "bad user name from the auth server");
            return -1;
        }
        if (collect_fields(ac, x) < 0) {
            msg_warn("SASL: auth server %s: OK with a badly escaped parameter", ac->path);
            sb_reset(&x->fieldbuf);
            x->nfields = 0;
            deliver(x, AUTH_CLIENT_TEMPFAIL, "malformed answer from the auth server");
            return -1;
        }
        deliver(x, AUTH_CLIENT_OK, l.user);
    } else {
        deliver(x, l.temp ? AUTH_CLIENT_TEMPFAIL : AUTH_CLIENT_FAIL, l.reason ? l.reason : "");
    }
    return 0;
}

/* conn_read - lines from the auth server */
static void conn_read(struct bufferevent *bev, void *arg)
{
    struct auth_client *ac = arg;
    struct evbuffer *in = bufferevent_get_input(bev);
    int     ret;

    while ((ret = auth_proto_read_line(in, &ac->line)) == 1) {
        if (handle_line(ac, ac->line.data ? ac->line.data : (char *) "") < 0) {
            conn_drop(ac, NULL);
            return;
        }
    }
    if (ret < 0) {
        msg_warn("SASL: auth server %s sent a line longer than %d bytes", ac->path,
                 AUTH_PROTO_MAX_LINE);
        conn_drop(ac, NULL);
    }
}

/* conn_event - the auth server went away, failed, or did not finish its handshake */
static void conn_event(struct bufferevent *bev, short what, void *arg)
{
    struct auth_client *ac = arg;

    (void) bev;
    if (what & BEV_EVENT_TIMEOUT)
        conn_drop(ac, "no handshake from the auth server in time");
    else if (what & BEV_EVENT_ERROR)
        conn_drop(ac, strerror(EVUTIL_SOCKET_ERROR()));
    else
        conn_drop(ac, "the auth server closed the connection");
}

/*
 * conn_drop - close the connection; every exchange on it fails temporarily.
 * why NULL: already logged.
 */
static void conn_drop(struct auth_client *ac, const char *why)
{
    if (why != NULL && (ac->head != NULL || ac->state != CONN_READY))
        msg_warn("SASL: auth server %s: %s", ac->path, why);
    if (ac->bev != NULL)
        bufferevent_free(ac->bev);
    ac->bev = NULL;
    ac->state = CONN_DOWN;
    ac->version_ok = false;
    sb_reset(&ac->mechs);
    for (struct auth_exchange *x = ac->head; x != NULL; x = x->next)
        if (!x->has_result)
            deliver(x, AUTH_CLIENT_TEMPFAIL, "authentication server unavailable");
}

/* conn_open - connect (a local socket answers at once) and send our hello; -1 on failure */
static int conn_open(struct auth_client *ac)
{
    struct sockaddr_un sun;
    size_t  len = strlen(ac->path);
    int     fd = -1;
    struct timeval tv = {AUTH_CLIENT_HANDSHAKE_TIMEOUT, 0};

    memset(&sun, 0, sizeof(sun));
    sun.sun_family = AF_UNIX;
    if (len == 0 || len >= sizeof(sun.sun_path)) {
        errno = ENAMETOOLONG;
    } else {
        memcpy(sun.sun_path, ac->path, len + 1);
        fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    }
    if (fd < 0 || connect(fd, (struct sockaddr *) &sun, sizeof(sun)) < 0) {
        /* EAGAIN: the server's listen queue is full; as good as down for this client. */
        if (!ac->outage)
            msg_warn("SASL: connect to %s: %s", ac->path, strerror(errno));
        ac->outage = true;
        if (fd >= 0)
            close(fd);
        return -1;
    }
    ac->bev = bufferevent_socket_new(ac->base, fd, BEV_OPT_CLOSE_ON_FREE);
    if (ac->bev == NULL) {
        msg_warn("SASL: out of memory");
        close(fd);
        return -1;
    }
    ac->state = CONN_HANDSHAKE;
    ac->gen++;
    ac->version_ok = false;
    sb_reset(&ac->mechs);
    sb_reset(&ac->out);
    auth_client_hello(&ac->out, (unsigned long) getpid());
    bufferevent_write(ac->bev, sb_str(&ac->out), sb_len(&ac->out));
    bufferevent_setcb(ac->bev, conn_read, NULL, conn_event, ac);
    bufferevent_set_timeouts(ac->bev, &tv, NULL);
    /* Bounded: a line is at most AUTH_PROTO_MAX_LINE, checked as it arrives. */
    bufferevent_setwatermark(ac->bev, EV_READ, 0, 4 * AUTH_PROTO_MAX_LINE);
    bufferevent_enable(ac->bev, EV_READ | EV_WRITE);
    return 0;
}

/* auth_client_start - ask the server (req->mech is upper-cased); fn is called later from the loop */
struct auth_exchange *auth_client_start(struct auth_client *ac, const struct auth_client_req *req,
                                        auth_client_fn fn, void *ctx)
{
    struct auth_exchange *x = xcalloc(1, sizeof(*x));

    x->ac = ac;
    x->ev = evtimer_new(ac->base, exchange_event, x);
    if (x->ev == NULL)
        msg_fatal("auth_client_start: out of memory");
    x->mech = xstrdup(req->mech);
    for (char *p = x->mech; *p; p++)
        if (*p >= 'a' && *p <= 'z')
            *p = (char) (*p - 'a' + 'A');
    x->service = xstrdup(req->service ? req->service : "smtp");
    x->resp = req->resp ? xstrdup(req->resp) : NULL;
    x->secured = req->secured;
    x->lip = req->lip ? xstrdup(req->lip) : NULL;
    x->rip = req->rip ? xstrdup(req->rip) : NULL;
    x->fn = fn;
    x->ctx = ctx;
    sb_init(&x->text);
    sb_init(&x->fieldbuf);
    x->next = ac->head;
    if (x->next)
        x->next->prev = x;
    ac->head = x;
    arm(x);
    if (ac->state == CONN_DOWN && conn_open(ac) < 0)
        deliver(x, AUTH_CLIENT_TEMPFAIL, "authentication server unavailable");
    else if (ac->state == CONN_READY)
        send_request(x);
    /* CONN_HANDSHAKE: sent at "DONE". */
    return x;
}

/* auth_client_respond - the client's valid base64 answer to a CONT */
void auth_client_respond(struct auth_exchange *x, const char *b64)
{
    struct auth_client *ac = x->ac;
    struct strbuf err = STRBUF_INIT;

    if (x->has_result)
        return;                         /* a failure is on its way to the caller */
    if (ac->state != CONN_READY || x->id == 0 || x->gen != ac->gen) {
        /* The connection the challenge came on is gone: the server forgot the request. */
        deliver(x, AUTH_CLIENT_TEMPFAIL, "authentication server unavailable");
        return;
    }
    sb_reset(&ac->out);
    if (auth_client_cont(&ac->out, x->id, b64, &err) < 0) {
        deliver(x, AUTH_CLIENT_TEMPFAIL, sb_str(&err));
        sb_free(&err);
        return;
    }
    sb_free(&err);
    x->waiting = true;
    evtimer_del(x->ev);
    arm(x);
    bufferevent_write(ac->bev, sb_str(&ac->out), sb_len(&ac->out));
}

/* auth_client_cancel - forget the exchange (client aborted or left); no more callbacks */
void auth_client_cancel(struct auth_exchange *x)
{
    if (x != NULL)
        free_exchange(x);
}

/* auth_client_free - close; exchanges still running are freed without a callback */
void auth_client_free(struct auth_client *ac)
{
    if (ac == NULL)
        return;
    while (ac->head != NULL)
        free_exchange(ac->head);
    if (ac->bev != NULL)
        bufferevent_free(ac->bev);
    sb_free(&ac->mechs);
    sb_free(&ac->line);
    sb_free(&ac->copy);
    sb_free(&ac->out);
    free(ac->path);
    free(ac);
}

/* auth_client_field - the value of parameter name in an OK's fields ("" for a flag), or NULL */
const char *auth_client_field(const struct auth_client_result *res, const char *name)
{
    size_t  n = strlen(name);

    for (size_t i = 0; i < res->nfields; i++) {
        const char *f = res->fields[i];

        if (strncmp(f, name, n) == 0 && (f[n] == '=' || f[n] == 0))
            return f[n] == '=' ? f + n + 1 : f + n;
    }
    return NULL;
}
