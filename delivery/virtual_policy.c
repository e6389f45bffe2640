/*
 * virtual_policy - "quota-status": a Postfix policy service that rejects
 * mail for a mailbox that is full, as Dovecot's quota-status does for the
 * usual how-tos, so that the sender's server keeps the message (552 at RCPT)
 * instead of our queue holding it and bouncing later.
 *
 * Interface (virtual.h): virtual_policy_accept(), virtual_policy_stop(),
 * virtual_policy_clients().
 *
 * It is the virtual program under the master.cf service name quota-status
 * (as smtp is lmtp under that name): it needs what the agent has, vmail's
 * view of the Maildirs and the same tables. master.cf:
 *     quota-status  unix  -  -  y  -  -  virtual
 * main.cf:
 *     smtpd_recipient_restrictions = ..., reject_unauth_destination,
 *         check_policy_service unix:private/quota-status
 *
 * Per request (lib/policy_proto.h): recipient= is looked up as the agent
 * would deliver it (virtual_quota_state: virtual_mailbox_maps,
 * virtual_mailbox_limit_maps, maildirsize). A mailbox whose usage has
 * reached its limit, or that a message of the request's size= would take
 * past it, gets "action=552 5.2.2 Mailbox full"; everything else "DUNNO"
 * (a table failure: "DUNNO" too, and the delivery decides later). Protocol
 * errors drop the client, as policyd does.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <unistd.h>

#include <event2/bufferevent.h>
#include <event2/event.h>

#include "log.h"
#include "map.h"
#include "mem.h"
#include "policy_server.h"
#include "service.h"
#include "strbuf.h"

#include "virtual.h"

#define POLICY_MAX_CLIENTS  1024
#define POLICY_IDLE_SECS    1800

struct policy_client {
    struct virtual_server *vs;
    struct bufferevent *bev;
    struct policy_reader rd;
    LIST_ENTRY(policy_client) link;
};
static LIST_HEAD(, policy_client) clients = LIST_HEAD_INITIALIZER(clients);
static unsigned nclients;

/* client_close - forget a client */
static void client_close(struct policy_client *cl)
{
    struct service *svc = cl->vs->svc;

    LIST_REMOVE(cl, link);
    policy_reader_free(&cl->rd);
    bufferevent_free(cl->bev);
    free(cl);
    nclients--;
    service_check_idle(svc);
}

/* answer - the action for one request */
static const char *answer(struct virtual_server *vs, const struct policy_block *req)
{
    const char *rcpt = policy_block_get(req, "recipient");
    const char *size_text = policy_block_get(req, "size");
    unsigned long long size = 0;
    uint64_t limit, used;
    char   *end;

    if (rcpt == NULL || *rcpt == 0)
        return "DUNNO";
    if (size_text != NULL && *size_text) {
        errno = 0;
        size = strtoull(size_text, &end, 10);
        if (errno || *end)
            size = 0;
    }
    if (virtual_quota_state(vs, rcpt, &limit, &used) != MAP_FOUND)
        return "DUNNO";
    if (used >= limit || (size > 0 && used + size > limit)) {
        msg_info("quota-status: %s: mailbox full (%llu of %llu bytes, message %llu)", rcpt,
                 (unsigned long long) used, (unsigned long long) limit, size);
        return "552 5.2.2 Mailbox full";
    }
    return "DUNNO";
}

/* reply_to - policy_serve_input's answer callback */
static void reply_to(void *ctx, const struct policy_block *req, struct strbuf *reply)
{
    struct policy_client *cl = ctx;

    sb_printf(reply, "action=%s\n\n", answer(cl->vs, req));
}

/* client_read - answer each complete request */
static void client_read(struct bufferevent *bev, void *arg)
{
    struct policy_client *cl = arg;
    struct strbuf err = STRBUF_INIT;

    if (policy_serve_input(&cl->rd, bev, reply_to, cl, &err) < 0) {
        msg_warn("quota-status client: %s; dropping it", sb_str(&err));
        client_close(cl);
    }
    sb_free(&err);
}

/* client_event - EOF, error or idle timeout */
static void client_event(struct bufferevent *bev, short what, void *arg)
{
    (void) bev;
    if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR | BEV_EVENT_TIMEOUT))
        client_close(arg);
}

/* virtual_policy_accept - a policy client (smtpd) connected */
void virtual_policy_accept(struct virtual_server *vs, int fd)
{
    struct policy_client *cl;
    struct timeval idle = {POLICY_IDLE_SECS, 0};

    if (vs->svc->stopping || nclients >= POLICY_MAX_CLIENTS) {
        if (!vs->svc->stopping)
            msg_warn("quota-status: too many clients (%d); closing a new one", POLICY_MAX_CLIENTS);
        close(fd);
        return;
    }
    cl = xcalloc(1, sizeof(*cl));
    cl->vs = vs;
    policy_reader_init(&cl->rd);
    cl->bev = bufferevent_socket_new(vs->svc->base, fd, BEV_OPT_CLOSE_ON_FREE);
    if (cl->bev == NULL)
        msg_fatal("bufferevent_socket_new: out of memory");
    bufferevent_setcb(cl->bev, client_read, NULL, client_event, cl);
    bufferevent_set_timeouts(cl->bev, &idle, NULL);
    if (bufferevent_enable(cl->bev, EV_READ) != 0)
        msg_fatal("bufferevent_enable: %m");
    LIST_INSERT_HEAD(&clients, cl, link);
    nclients++;
}

/* virtual_policy_clients - connections still open */
unsigned virtual_policy_clients(void)
{
    return nclients;
}

/* virtual_policy_stop - let every client go (smtpd reconnects) */
void virtual_policy_stop(void)
{
    while (!LIST_EMPTY(&clients))
        client_close(LIST_FIRST(&clients));
}
