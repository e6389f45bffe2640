/*
 * virtual - the Maildir delivery agent: main program and qmgr connections.
 *
 * Runs in the service skeleton (lib/service.h) as vmail_owner in
 * virtual_mailbox_base (chrooted there when master.cf says so). The tables
 * are opened before the privilege drop (directory_open), the mail base as a
 * directory fd after it (it is then the working directory, in both the
 * chrooted and the unprivileged mode).
 *
 * Protocol (lib/delivery_proto.h): qmgr sends "type=deliver" records with
 * the queue file's fd attached; we answer each with one "type=result"
 * record. Records are read with an ipc_reader as the socket becomes
 * readable and handled synchronously once whole: the disk I/O blocks anyway,
 * and master runs several virtual processes for parallelism.
 *
 * Nothing from the socket is trusted. A record of another type, or one that
 * does not decode, is logged as a warning and the connection dropped (qmgr
 * then defers the recipients). A request that decodes but whose queue file
 * is missing, not a regular file, or shorter than offset + length is answered
 * with every recipient deferred. The passed fd is closed after every request.
 *
 * A request whose qmgr has already hung up is not delivered: nobody would
 * record the result, so the qmgr that recovers the queue file delivers it
 * again. Such requests pile up in the listen queue while our processes are
 * restarted, and delivering them would duplicate every one.
 *
 * Under the master.cf service name "quota-status" the same program is a
 * policy service instead (virtual_policy.c).
 *
 * Stop: between records no connection is busy, so ops->stop simply closes
 * them all; qmgr reconnects to another process.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <event2/event.h>

#include "delivery_proto.h"
#include "directory.h"
#include "ipc.h"
#include "log.h"
#include "mem.h"
#include "service.h"
#include "strbuf.h"

#include "virtual.h"

#define VIRTUAL_REPLY_TIMEOUT_MS    30000

struct virtual_conn {
    struct virtual_server *vs;
    struct virtual_conn *prev, *next;
    int     fd;
    struct event *ev;
    struct ipc_reader rd;
};

static struct virtual_server server;

/* conn_close - forget a connection; the skeleton may be waiting for the last one */
static void conn_close(struct virtual_conn *c)
{
    struct virtual_server *vs = c->vs;

    if (c->prev)
        c->prev->next = c->next;
    else
        vs->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    vs->nconns--;
    event_free(c->ev);
    ipc_reader_free(&c->rd);
    close(c->fd);
    free(c);
    service_check_idle(vs->svc);
}

/* defer_all - the same deferral for every recipient */
static void defer_all(const struct delivery_request *req, struct delivery_result *res, const char *reason)
{
    for (size_t i = 0; i < req->nrcpt; i++) {
        virtual_result(&res[i], DELIVERY_DEFER, "4.3.0", "%s", reason);
        virtual_log_result(req, i, &res[i]);
    }
}

/* check_message - the passed fd is a regular file holding offset + length bytes; NULL or why not */
static const char *check_message(const struct delivery_request *req, int msg_fd)
{
    struct stat st;

    if (msg_fd < 0)
        return "no queue file was passed with the request";
    if (fstat(msg_fd, &st) != 0 || !S_ISREG(st.st_mode))
        return "the passed queue file is not a regular file";
    if (req->offset > (uint64_t) st.st_size || req->length > (uint64_t) st.st_size - req->offset)
        return "the message lies outside the passed queue file";
    return NULL;
}

/* peer_gone - qmgr closed its end of the connection (its requests are orphans) */
static bool peer_gone(int fd)
{
    struct pollfd pfd = { .fd = fd, .events = POLLRDHUP };

    return poll(&pfd, 1, 0) > 0 && (pfd.revents & (POLLRDHUP | POLLHUP | POLLERR)) != 0;
}

/* deliver_record - one whole record from qmgr, delivered and answered; -1: drop the connection */
static int deliver_record(struct virtual_conn *c, const struct ipc_record *rec, int msg_fd)
{
    struct delivery_request req;
    struct delivery_result *res;
    struct ipc_record reply;
    struct strbuf err = STRBUF_INIT;
    const char *problem;
    int     ret = 0;

    if (strcmp(ipc_type(rec), "deliver") != 0) {
        msg_warn("unexpected record type \"%.40s\" from qmgr; dropping the connection", ipc_type(rec));
        return -1;
    }
    if (delivery_request_decode(rec, &req, &err) != 0) {
        msg_warn("malformed delivery request: %s; dropping the connection", sb_str(&err));
        sb_free(&err);
        return -1;
    }
    if (peer_gone(c->fd)) {
        msg_warn("%s: qmgr went away before the delivery; not delivering, it will be retried",
                 req.queue_id);
        delivery_request_free(&req);
        sb_free(&err);
        return -1;
    }
    res = xcalloc(req.nrcpt, sizeof(*res));
    if ((problem = check_message(&req, msg_fd)) != NULL) {
        msg_warn("%s: %s", req.queue_id, problem);
        defer_all(&req, res, problem);
    } else {
        virtual_deliver(c->vs, &req, msg_fd, res);
    }
    delivery_results_encode(res, req.nrcpt, &reply);
    if (ipc_send(c->fd, &reply, -1, VIRTUAL_REPLY_TIMEOUT_MS, &err) != 0) {
        msg_warn("%s: cannot send the results to qmgr: %s", req.queue_id, sb_str(&err));
        ret = -1;
    }
    ipc_free(&reply);
    delivery_results_free(res, req.nrcpt);
    free(res);
    delivery_request_free(&req);
    sb_free(&err);
    return ret;
}

/* handle_record - ipc_reader_dispatch's handler: the passed queue file is closed after the request */
static int handle_record(void *ctx, const struct ipc_record *rec, int msg_fd)
{
    int     rc = deliver_record(ctx, rec, msg_fd);

    if (msg_fd >= 0)
        close(msg_fd);
    return rc;
}

/* conn_read - take what arrived and handle each whole record */
static void conn_read(evutil_socket_t fd, short what, void *arg)
{
    struct virtual_conn *c = arg;
    struct strbuf err = STRBUF_INIT;
    int     rc = ipc_reader_dispatch(&c->rd, (int) fd, handle_record, c, &err);

    (void) what;
    if (rc < 0 && sb_len(&err) > 0)
        msg_warn("connection from qmgr: %s; dropping it", sb_str(&err));
    sb_free(&err);
    if (rc <= 0)
        conn_close(c);
}

/* virtual_accept - a connection from qmgr */
static void virtual_accept(struct service *svc, int fd, const struct sockaddr_storage *peer,
                           socklen_t peer_len, int listener_index)
{
    struct virtual_conn *c;

    (void) peer;
    (void) peer_len;
    (void) listener_index;
    if (server.quota_status) {
        virtual_policy_accept(&server, fd);
        return;
    }
    c = xcalloc(1, sizeof(*c));
    c->vs = &server;
    c->fd = fd;
    ipc_reader_init(&c->rd);
    c->ev = event_new(svc->base, fd, EV_READ | EV_PERSIST, conn_read, c);
    if (c->ev == NULL || event_add(c->ev, NULL) != 0)
        msg_fatal("event_new: out of memory");
    c->next = server.conns;
    if (server.conns)
        server.conns->prev = c;
    server.conns = c;
    server.nconns++;
}

/* virtual_init - the tables, while the files are still reachable */
static void virtual_init(struct service *svc)
{
    struct strbuf err = STRBUF_INIT;

    server.svc = svc;
    server.base_fd = -1;
    server.dir = directory_open(svc->cfg, &err);
    server.quota_status = svc->service_name && strcmp(svc->service_name, "quota-status") == 0;
    virtual_quota_init(svc, svc->cfg);
    if (server.dir == NULL)
        msg_fatal("%s", sb_str(&err));
    directory_watch(server.dir, svc);
    svc->app = &server;
    sb_free(&err);
}

/* virtual_ready - the mail base is now our working directory */
static void virtual_ready(struct service *svc)
{
    (void) svc;
    server.base_fd = open(".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (server.base_fd < 0)
        msg_fatal("open virtual_mailbox_base (working directory): %m");
}

/* virtual_active - connections still open */
static unsigned virtual_active(struct service *svc)
{
    (void) svc;
    return server.nconns + virtual_policy_clients();
}

/* virtual_stop - no request is in progress between events: let every connection go */
static void virtual_stop(struct service *svc)
{
    (void) svc;
    while (server.conns)
        conn_close(server.conns);
    virtual_policy_stop();
}

static const struct service_ops virtual_ops = {
    .program = "virtual",
    .user_param = "vmail_owner",
    .dir_param = "virtual_mailbox_base",
    .init = virtual_init,
    .ready = virtual_ready,
    .accept = virtual_accept,
    .active = virtual_active,
    .stop = virtual_stop,
};

/* main - run virtual in the service skeleton */
int main(int argc, char **argv)
{
    int     status = service_main(argc, argv, &virtual_ops);

    if (server.dir)
        directory_close(server.dir);
    virtual_quota_close();
    if (server.base_fd >= 0)
        close(server.base_fd);
    return status;
}
