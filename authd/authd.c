/*
 * authd - the authentication service (Dovecot's auth-client protocol).
 *
 * Runs in the service skeleton (lib/service.h) as auth_owner, chrooted in
 * auth_directory, one process (master.cf maxproc 1) serving every client:
 * smtpd processes, later imapd, and any Dovecot client such as Postfix's
 * smtpd_sasl_type=dovecot or "doveadm auth test -a SOCKET". The modules are
 * listed in authd.h; the protocol is lib/auth_proto.h.
 *
 * A connection: we send the handshake at once (VERSION, MECH PLAIN, MECH
 * LOGIN, SPID, CUID, COOKIE, DONE); the client must start with "VERSION 1 x"
 * and may send CPID, then any number of AUTH/CONT lines, requests
 * multiplexed by id. A protocol error (bad line, unknown command, wrong
 * major version, a line over 16 KiB, replies piling up unread) is logged and
 * the connection dropped, as Dovecot does.
 *
 * Stopping: the process exits once no request is in flight (delayed FAILs
 * included); idle client connections are simply closed with it, and clients
 * reconnect to the successor master has started.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
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

#include "authd.h"

struct authd authd;

static const char *const mechs[] = {"PLAIN", "LOGIN", NULL};

long long authd_now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void client_event(struct bufferevent *bev, short what, void *arg);

/* client_close - drop a client and its requests */
static void client_close(struct authd_client *cl)
{
    authd_request_free_all(cl);
    LIST_REMOVE(cl, link);
    bufferevent_free(cl->bev);          /* BEV_OPT_CLOSE_ON_FREE closes the socket */
    free(cl);
    authd.nclients--;
    service_check_idle(authd.svc);
}

/* client_drained - the last replies of a dropped client are out */
static void client_drained(struct bufferevent *bev, void *arg)
{
    (void) bev;
    client_close(arg);
}

/*
 * client_drop - end a client after a protocol error: its requests go now, but
 * the replies already queued (they may answer earlier, valid requests) are
 * still written, within a few seconds.
 */
static void client_drop(struct authd_client *cl)
{
    struct timeval tv = {5, 0};

    authd_request_free_all(cl);
    bufferevent_disable(cl->bev, EV_READ);
    if (evbuffer_get_length(bufferevent_get_output(cl->bev)) == 0) {
        client_close(cl);
        return;
    }
    bufferevent_setcb(cl->bev, NULL, client_drained, client_event, cl);
    bufferevent_set_timeouts(cl->bev, NULL, &tv);
}

void authd_client_send(struct authd_client *cl, const struct strbuf *line)
{
    if (bufferevent_write(cl->bev, sb_str(line), sb_len(line)) != 0)
        msg_fatal("bufferevent_write: out of memory");
}

/* client_line - one line from the client; -1 to drop it */
static int client_line(struct authd_client *cl, char *text)
{
    struct auth_client_line line;
    struct strbuf err = STRBUF_INIT;
    int     rc = 0;

    if (auth_client_line_parse(text, &line, &err) < 0) {
        msg_warn("client %lu (pid %lu): protocol error: %s", cl->cuid, cl->cpid, sb_str(&err));
        sb_free(&err);
        return -1;
    }
    if (!cl->handshaken && line.type != AUTH_C_VERSION) {
        msg_warn("client %lu: protocol error: the first line must be VERSION", cl->cuid);
        return -1;
    }
    switch (line.type) {
    case AUTH_C_VERSION:
        if (line.major != AUTH_PROTO_MAJOR) {
            msg_warn("client %lu: protocol version %u.%u, we speak %d.x", cl->cuid, line.major,
                     line.minor, AUTH_PROTO_MAJOR);
            rc = -1;
        }
        cl->handshaken = true;
        break;
    case AUTH_C_CPID:
        cl->cpid = line.pid;
        break;
    case AUTH_C_AUTH:
        rc = authd_request_auth(cl, &line);
        break;
    case AUTH_C_CONT:
        rc = authd_request_cont(cl, &line);
        break;
    }
    return rc;
}

/* client_read - every complete line that arrived */
static void client_read(struct bufferevent *bev, void *arg)
{
    struct authd_client *cl = arg;
    struct evbuffer *in = bufferevent_get_input(bev);
    struct strbuf line = STRBUF_INIT;
    int     rc;

    while ((rc = auth_proto_read_line(in, &line)) == 1) {
        if (client_line(cl, line.data) < 0) {
            rc = -2;
            break;
        }
        /* A client that never reads would make us buffer replies without end. */
        if (evbuffer_get_length(bufferevent_get_output(bev)) > AUTHD_MAX_OUTPUT) {
            msg_warn("client %lu (pid %lu): not reading its replies; dropping it", cl->cuid,
                     cl->cpid);
            rc = -2;
            break;
        }
    }
    if (rc == -1)
        msg_warn("client %lu (pid %lu): protocol error: line longer than %d bytes", cl->cuid,
                 cl->cpid, AUTH_PROTO_MAX_LINE);
    if (rc < 0)
        client_drop(cl);
    if (line.data)
        explicit_bzero(line.data, line.cap);    /* lines carry passwords */
    sb_free(&line);
}

/* client_event - EOF or an error on the connection */
static void client_event(struct bufferevent *bev, short what, void *arg)
{
    struct authd_client *cl = arg;

    (void) bev;
    if (what & BEV_EVENT_ERROR)
        msg_verbose("client %lu: %s", cl->cuid, strerror(errno));
    if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR | BEV_EVENT_TIMEOUT))
        client_close(cl);
}

/* authd_accept - a new client: greet it */
static void authd_accept(struct service *svc, int fd, const struct sockaddr_storage *peer,
                         socklen_t peer_len, int listener_index)
{
    struct authd_client *cl;
    struct strbuf hello = STRBUF_INIT;

    (void) peer;
    (void) peer_len;
    (void) listener_index;
    if (svc->stopping || authd.nclients >= AUTHD_MAX_CLIENTS) {
        if (!svc->stopping)
            msg_warn("too many clients (%d); closing a new one", AUTHD_MAX_CLIENTS);
        close(fd);
        return;
    }
    cl = xcalloc(1, sizeof(*cl));
    cl->cuid = ++authd.next_cuid;
    LIST_INIT(&cl->requests);
    cl->bev = bufferevent_socket_new(svc->base, fd, BEV_OPT_CLOSE_ON_FREE);
    if (cl->bev == NULL)
        msg_fatal("bufferevent_socket_new: out of memory");
    bufferevent_setcb(cl->bev, client_read, NULL, client_event, cl);
    if (bufferevent_enable(cl->bev, EV_READ) != 0)
        msg_fatal("bufferevent_enable: %m");
    LIST_INSERT_HEAD(&authd.clients, cl, link);
    authd.nclients++;
    auth_server_handshake(&hello, mechs, (unsigned long) getpid(), cl->cuid, authd.cookie);
    authd_client_send(cl, &hello);
    sb_free(&hello);
}

/* authd_init - settings, while still privileged */
static void authd_init(struct service *svc)
{
    unsigned char rnd[16];

    authd.svc = svc;
    LIST_INIT(&authd.clients);
    authd_passdb_init(svc);
    authd_request_init(svc);
    if (getrandom(rnd, sizeof(rnd), 0) != (ssize_t) sizeof(rnd))
        msg_fatal("getrandom: %m");
    for (int i = 0; i < 16; i++)
        snprintf(authd.cookie + 2 * i, 3, "%02x", rnd[i]);
    svc->app = &authd;
}

/* authd_ready - in the auth directory now: load the users */
static void authd_ready(struct service *svc)
{
    (void) svc;
    authd_passdb_check();
}

/* authd_active - requests in flight (what a stop waits for) */
static unsigned authd_active(struct service *svc)
{
    (void) svc;
    return authd.requests_active;
}

static const struct service_ops authd_ops = {
    .program = "authd",
    .user_param = "auth_owner",
    .dir_param = "auth_directory",
    .init = authd_init,
    .ready = authd_ready,
    .accept = authd_accept,
    .active = authd_active,
};

/* main - run authd in the service skeleton */
int main(int argc, char **argv)
{
    return service_main(argc, argv, &authd_ops);
}
