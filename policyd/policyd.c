/*
 * policyd - the built-in greylisting policy service (what Postgrey is to
 * Postfix), speaking Postfix's policy delegation protocol.
 *
 * Runs in the service skeleton (lib/service.h) as mail_owner, chrooted in
 * data_directory where its store lives. master.cf:
 *     greylist  unix  -  n  y  -  1  policyd
 * and main.cf: smtpd_recipient_restrictions = ..., reject_unauth_destination,
 * check_policy_service unix:private/greylist. Postfix may use it too, through
 * the same socket or an inet service ("127.0.0.1:10023 inet n - y - 1 policyd");
 * inet clients must be in mynetworks, as anyone who can query the service
 * can fill its store. One process (maxproc 1) serves every client: the store
 * admits one process at a time.
 *
 * A connection: any number of requests, each answered as soon as its empty
 * line arrives (requests are answered in order, so pipelining works). A request
 * that is well-formed but makes no sense (no client address, say) gets
 * "action=DUNNO" and a warning; a client that breaks the protocol (a line
 * without "=", over POLICY_MAX_LINE bytes, too many attributes) is logged and
 * dropped, as its stream can no longer be trusted to be in step.
 *
 * Stopping or retiring (reload): the clients are let go at once and the
 * store is flushed and closed, so that the successor master starts can take
 * it; Postfix's and smtpd's policy clients reconnect. Nothing a request does
 * waits on anything, so no request is ever cut in half by this.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

#include "config.h"
#include "log.h"
#include "mem.h"
#include "netmatch.h"
#include "policy_server.h"
#include "service.h"
#include "strbuf.h"

#include "policyd.h"

struct policyd_client {
    struct bufferevent *bev;
    struct policy_reader rd;
    unsigned long id;                   /* for log lines */
    unsigned long requests;
    LIST_ENTRY(policyd_client) link;
};

static struct {
    struct service *svc;
    struct netmatch *inet_clients;      /* mynetworks: who may use an inet listener */
    LIST_HEAD(, policyd_client) clients;
    unsigned nclients;
    unsigned long next_id;
} policyd;

/* client_close - forget a client */
static void client_close(struct policyd_client *cl)
{
    LIST_REMOVE(cl, link);
    policy_reader_free(&cl->rd);
    bufferevent_free(cl->bev);          /* BEV_OPT_CLOSE_ON_FREE closes the socket */
    free(cl);
    policyd.nclients--;
    service_check_idle(policyd.svc);
}

/* client_request - policy_serve_input's answer callback: one complete request */
static void client_request(void *ctx, const struct policy_block *req, struct strbuf *reply)
{
    struct policyd_client *cl = ctx;

    cl->requests++;
    policyd_greylist_request(req, reply);
}

/* client_read - every complete request that arrived; protocol errors drop the client */
static void client_read(struct bufferevent *bev, void *arg)
{
    struct policyd_client *cl = arg;
    struct strbuf err = STRBUF_INIT;

    if (policy_serve_input(&cl->rd, bev, client_request, cl, &err) < 0) {
        msg_warn("client %lu: %s; dropping it", cl->id, sb_str(&err));
        client_close(cl);
    }
    sb_free(&err);
}

/* client_event - EOF, an error or the idle timeout */
static void client_event(struct bufferevent *bev, short what, void *arg)
{
    struct policyd_client *cl = arg;

    (void) bev;
    if (what & BEV_EVENT_ERROR)
        msg_verbose("client %lu: %s", cl->id, strerror(errno));
    if (what & BEV_EVENT_TIMEOUT)
        msg_verbose("client %lu: idle for %d seconds; closing", cl->id, POLICYD_IDLE_SECS);
    if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR | BEV_EVENT_TIMEOUT))
        client_close(cl);
}

/* inet_peer - the peer is an IP client (not a UNIX-domain one) */
static bool inet_peer(const struct sockaddr_storage *peer, socklen_t peer_len)
{
    return peer_len >= (socklen_t) sizeof(sa_family_t)
        && (peer->ss_family == AF_INET || peer->ss_family == AF_INET6);
}

/* policyd_accept - a new client */
static void policyd_accept(struct service *svc, int fd, const struct sockaddr_storage *peer,
                           socklen_t peer_len, int listener_index)
{
    struct policyd_client *cl;
    struct timeval idle = {POLICYD_IDLE_SECS, 0};

    (void) listener_index;
    if (svc->stopping || policyd.nclients >= POLICYD_MAX_CLIENTS) {
        if (!svc->stopping)
            msg_warn("too many clients (%d); closing a new one", POLICYD_MAX_CLIENTS);
        close(fd);
        return;
    }
    if (inet_peer(peer, peer_len) && !netmatch_sockaddr(policyd.inet_clients,
                                                        (const struct sockaddr *) peer)) {
        msg_warn("connection from a client outside mynetworks refused");
        close(fd);
        return;
    }
    cl = xcalloc(1, sizeof(*cl));
    cl->id = ++policyd.next_id;
    policy_reader_init(&cl->rd);
    cl->bev = bufferevent_socket_new(svc->base, fd, BEV_OPT_CLOSE_ON_FREE);
    if (cl->bev == NULL)
        msg_fatal("bufferevent_socket_new: out of memory");
    bufferevent_setcb(cl->bev, client_read, NULL, client_event, cl);
    bufferevent_set_timeouts(cl->bev, &idle, NULL);
    if (bufferevent_enable(cl->bev, EV_READ) != 0)
        msg_fatal("bufferevent_enable: %m");
    LIST_INSERT_HEAD(&policyd.clients, cl, link);
    policyd.nclients++;
    msg_verbose("client %lu: connected", cl->id);
}

/* policyd_init - settings, while still privileged */
static void policyd_init(struct service *svc)
{
    struct strbuf err = STRBUF_INIT;

    policyd.svc = svc;
    LIST_INIT(&policyd.clients);
    policyd.inet_clients = netmatch_parse(config_str(svc->cfg, "mynetworks"), &err);
    if (policyd.inet_clients == NULL)
        msg_fatal("mynetworks: %s", sb_str(&err));
    policyd_greylist_init(svc);
    sb_free(&err);
}

/* policyd_ready - in data_directory now: open the store */
static void policyd_ready(struct service *svc)
{
    policyd_greylist_ready(svc);
}

/* policyd_active - clients still connected */
static unsigned policyd_active(struct service *svc)
{
    (void) svc;
    return policyd.nclients;
}

/* policyd_let_go - stop or retire: drop every client, hand the store over */
static void policyd_let_go(struct service *svc)
{
    (void) svc;
    policyd_greylist_stop();
    while (!LIST_EMPTY(&policyd.clients))
        client_close(LIST_FIRST(&policyd.clients));
}

static const struct service_ops policyd_ops = {
    .program = "policyd",
    .user_param = "mail_owner",
    .dir_param = "data_directory",
    .init = policyd_init,
    .ready = policyd_ready,
    .accept = policyd_accept,
    .active = policyd_active,
    .stop = policyd_let_go,
    .retire = policyd_let_go,
};

/* main - run policyd in the service skeleton */
int main(int argc, char **argv)
{
    int     rc = service_main(argc, argv, &policyd_ops);

    policyd_greylist_stop();
    netmatch_free(policyd.inet_clients);
    return rc;
}
