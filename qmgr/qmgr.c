/*
 * qmgr - the queue manager: main program and notification socket.
 *
 * Runs in the service skeleton (lib/service.h) as mail_owner in
 * queue_directory (chrooted there), one process for the whole queue
 * (master.cf maxproc 1). The modules are listed in qmgr.h.
 *
 * Notification clients (smtpd after each committed message; later sendmail's
 * pickup and postctl) connect to private/qmgr and send ipc records:
 *   type=new     queue_id=ID    incoming/ID is ready: look at it soon
 *   type=flush                  try every deferred message now
 *   type=pickup                 maildrop/ has a new file (sendmail)
 * No reply is sent. Any other type, a bad queue ID or a malformed record is
 * logged and the connection dropped. A client may stay connected and send
 * many records. Notifications only speed things up: incoming/ is also
 * scanned every few seconds, so a lost one delays a message, never loses it.
 */
#include <errno.h>
#include <fcntl.h>
#include <sys/file.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/event.h>

#include "config.h"
#include "directory.h"
#include "ipc.h"
#include "log.h"
#include "map.h"
#include "mem.h"
#include "queue_file.h"
#include "service.h"
#include "strbuf.h"

#include "qmgr.h"

struct qmgr qmgr;

/* A notification connection. */
struct qmgr_client {
    int     fd;
    struct event *ev;
    struct ipc_reader rd;
    LIST_ENTRY(qmgr_client) link;
};
static LIST_HEAD(, qmgr_client) clients = LIST_HEAD_INITIALIZER(clients);

/* client_close - forget a notification client */
static void client_close(struct qmgr_client *cl)
{
    LIST_REMOVE(cl, link);
    event_free(cl->ev);
    close(cl->fd);
    ipc_reader_free(&cl->rd);
    free(cl);
    qmgr.client_count--;
}

/* client_record - act on one record; false: drop the client */
static bool client_record(struct qmgr_client *cl, const struct ipc_record *r)
{
    struct strbuf id = STRBUF_INIT;
    const char *type = ipc_type(r);
    bool    ok = true;

    if (strcmp(type, "new") == 0) {
        if (!ipc_get(r, "queue_id", &id) || !queue_id_valid(sb_str(&id))) {
            msg_warn("notification on fd %d: missing or malformed queue_id; dropping the connection",
                     cl->fd);
            ok = false;
        } else {
            qmgr_queue_notify(sb_str(&id));
        }
    } else if (strcmp(type, "flush") == 0) {
        msg_info("flush requested");
        qmgr_queue_flush();
    } else if (strcmp(type, "pickup") == 0) {
        qmgr_pickup_scan();
    } else {
        msg_warn("notification on fd %d: unexpected record type \"%.40s\"; dropping the connection",
                 cl->fd, type);
        ok = false;
    }
    sb_free(&id);
    return ok;
}

/* handle_record - ipc_reader_dispatch's handler; nobody has a reason to pass us a file */
static int handle_record(void *ctx, const struct ipc_record *r, int fd)
{
    if (fd >= 0)
        close(fd);
    return client_record(ctx, r) ? 0 : -1;
}

/* client_read - take whole records as they arrive */
static void client_read(evutil_socket_t fd, short what, void *arg)
{
    struct qmgr_client *cl = arg;
    struct strbuf err = STRBUF_INIT;
    int     rc;

    (void) fd;
    (void) what;
    rc = ipc_reader_dispatch(&cl->rd, cl->fd, handle_record, cl, &err);
    if (rc < 0 && sb_len(&err) > 0) {
        /* a client that died mid-way is routine (a killed smtpd); bad data is not */
        if (errno == EPROTO)
            msg_warn("notification on fd %d: %s; dropping the connection", cl->fd, sb_str(&err));
        else
            msg_verbose("notification client fd %d: %s", cl->fd, sb_str(&err));
    }
    sb_free(&err);
    if (rc <= 0)
        client_close(cl);
}

/* qmgr_accept - a notification client connected */
static void qmgr_accept(struct service *svc, int fd, const struct sockaddr_storage *peer,
                        socklen_t peer_len, int listener_index)
{
    struct qmgr_client *cl;

    (void) peer;
    (void) peer_len;
    (void) listener_index;
    if (svc->stopping || qmgr.client_count >= QMGR_MAX_CLIENTS) {
        if (!svc->stopping)
            msg_warn("too many notification clients (%d); closing a new one", QMGR_MAX_CLIENTS);
        close(fd);
        return;
    }
    cl = xcalloc(1, sizeof(*cl));
    cl->fd = fd;
    ipc_reader_init(&cl->rd);
    cl->ev = event_new(svc->base, fd, EV_READ | EV_PERSIST, client_read, cl);
    if (cl->ev == NULL || event_add(cl->ev, NULL) != 0)
        msg_fatal("event_new: out of memory");
    LIST_INSERT_HEAD(&clients, cl, link);
    qmgr.client_count++;
}

/* raise_fd_limit - room for max_active queue files, agents and clients */
static void raise_fd_limit(void)
{
    struct rlimit rl;
    rlim_t  want = QMGR_MAX_ACTIVE + QMGR_MAX_CLIENTS + 512;
    long long usable;

    if (getrlimit(RLIMIT_NOFILE, &rl) != 0) {
        msg_warn("getrlimit RLIMIT_NOFILE: %m");
        rl.rlim_cur = 1024;
    } else if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < want) {
        rl.rlim_cur = (rl.rlim_max == RLIM_INFINITY || rl.rlim_max > want) ? want : rl.rlim_max;
        if (setrlimit(RLIMIT_NOFILE, &rl) != 0)
            msg_warn("setrlimit RLIMIT_NOFILE %llu: %m", (unsigned long long) rl.rlim_cur);
        if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
            rl.rlim_cur = 1024;
    }
    /* One descriptor per active message, plus agents, clients and the rest. */
    usable = rl.rlim_cur == RLIM_INFINITY ? QMGR_MAX_ACTIVE : (long long) rl.rlim_cur - QMGR_MAX_CLIENTS - 256;
    if (usable > QMGR_MAX_ACTIVE)
        usable = QMGR_MAX_ACTIVE;
    if (usable < 16)
        usable = 16;
    qmgr.max_active = (unsigned) usable;
}

/* qmgr_init - settings and tables, while still privileged */
static void qmgr_init(struct service *svc)
{
    struct strbuf err = STRBUF_INIT;

    qmgr.svc = svc;
    qmgr.queue_dirfd = -1;
    qmgr.queue_run_delay = config_time(svc->cfg, "queue_run_delay");
    qmgr.min_backoff = config_time(svc->cfg, "minimal_backoff_time");
    qmgr.max_backoff = config_time(svc->cfg, "maximal_backoff_time");
    qmgr.agent_timeout = config_time(svc->cfg, "daemon_timeout");
    if (qmgr.queue_run_delay < 1)
        qmgr.queue_run_delay = 1;
    if (qmgr.min_backoff < 1)
        qmgr.min_backoff = 1;
    if (qmgr.max_backoff < qmgr.min_backoff)
        qmgr.max_backoff = qmgr.min_backoff;
    qmgr.dir = directory_open(svc->cfg, &err);
    if (qmgr.dir == NULL)
        msg_fatal("%s", sb_str(&err));
    directory_watch(qmgr.dir, svc);
    qmgr.transport_maps = maplist_open(config_str(svc->cfg, "transport_maps"), &err);
    if (qmgr.transport_maps == NULL)
        msg_fatal("transport_maps: %s", sb_str(&err));
    raise_fd_limit();
    qmgr_bounce_init(svc->cfg);
    qmgr_pickup_init(svc->cfg);
    qmgr_deliver_init(svc);
    svc->app = &qmgr;
    sb_free(&err);
}

/*
 * lock_queue - one qmgr at a time. A retiring qmgr (reload, replaced table)
 * gets its successor at once, but two managers would both recover active/
 * and deliver the same mail twice: the successor waits here until the old
 * one has finished its deliveries and exited.
 */
static void lock_queue(void)
{
    int     fd = open("private/qmgr.lock", O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);

    if (fd < 0)
        msg_fatal("open private/qmgr.lock: %m");
    if (flock(fd, LOCK_EX | LOCK_NB) == 0)
        return;
    if (errno != EWOULDBLOCK)
        msg_fatal("lock private/qmgr.lock: %m");
    msg_info("waiting for the previous queue manager to finish");
    while (flock(fd, LOCK_EX) < 0)
        if (errno != EINTR)
            msg_fatal("lock private/qmgr.lock: %m");
}

/* qmgr_ready - in the queue directory now: recover and start scanning */
static void qmgr_ready(struct service *svc)
{
    (void) svc;
    lock_queue();
    qmgr.queue_dirfd = open(".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (qmgr.queue_dirfd < 0)
        msg_fatal("open queue directory: %m");
    qmgr_queue_start();
    qmgr_pickup_start(svc);
}

/* qmgr_active - requests still at delivery agents (what a stop waits for) */
static unsigned qmgr_active(struct service *svc)
{
    (void) svc;
    return qmgr.inflight;
}

/* qmgr_stop - let clients go, start nothing new; requests in flight finish */
static void qmgr_stop(struct service *svc)
{
    (void) svc;
    while (!LIST_EMPTY(&clients))
        client_close(LIST_FIRST(&clients));
    qmgr_pickup_stop();
    qmgr_queue_stop();
    qmgr_deliver_stop();
}

/* qmgr_done - the loop has ended: close the tables (Berkeley DB frees its cache only then) */
static void qmgr_done(struct service *svc)
{
    (void) svc;
    maplist_close(qmgr.transport_maps);
    qmgr.transport_maps = NULL;
    directory_close(qmgr.dir);
    qmgr.dir = NULL;
}

static const struct service_ops qmgr_ops = {
    .program = "qmgr",
    .user_param = "mail_owner",
    .dir_param = "queue_directory",
    .init = qmgr_init,
    .ready = qmgr_ready,
    .retire = qmgr_stop,
    .accept = qmgr_accept,
    .active = qmgr_active,
    .stop = qmgr_stop,
    .done = qmgr_done,
};

/* main - run qmgr in the service skeleton */
int main(int argc, char **argv)
{
    return service_main(argc, argv, &qmgr_ops);
}
