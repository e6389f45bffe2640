/*
 * qmgr_deliver - talking to delivery agents (lib/delivery_proto.h).
 *
 * Interface (qmgr.h): qmgr_deliver_init(), qmgr_transport_find(),
 * qmgr_deliver_add(), qmgr_deliver_stop().
 *
 * A transport (today only virtual_transport, "virtual") has a FIFO of jobs
 * (one message, up to QMGR_JOB_RCPT_MAX of its recipients) and a limit of
 * requests in flight: twice the agent's process count from master.cf, so an
 * agent finishing one request finds the next already waiting, or
 * virtual_destination_concurrency_limit when main.cf sets it. Many messages
 * are in flight at once; none waits for another.
 *
 * Each request gets its own connection to private/TRANSPORT: the kernel
 * hands it to whichever agent process is idle and accepting, which balances
 * the load over the agent's processes better than long-lived connections
 * pinned to one of them. connect() and the send are blocking with a short
 * deadline (a local UNIX socket; the request is small, the message travels
 * as a read-only descriptor); the reply is awaited in the event loop with
 * a QMGR_AGENT_TIMEOUT deadline.
 *
 * Who logs: the agent logs each result it produces ("to=<>, relay=virtual,
 * ... status=sent"); qmgr logs the results it makes up itself (agent
 * unreachable, timed out, protocol error), so no line appears twice.
 * Status records are written as results arrive when the message still has
 * other jobs; otherwise qmgr_message_done() decides (a message that is
 * removed needs no status writes).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include "config.h"
#include "delivery_proto.h"
#include "ipc.h"
#include "log.h"
#include "master_cf.h"
#include "mem.h"
#include "queue_file.h"
#include "service.h"
#include "strbuf.h"

#include "qmgr.h"

#define CONCURRENCY_DEFAULT 4
#define CONCURRENCY_MAX     100
#define WARN_INTERVAL       60          /* seconds between "agent unreachable" warnings */

struct qmgr_job {
    TAILQ_ENTRY(qmgr_job) link;
    struct qmgr_transport *tr;
    struct qmgr_message *msg;
    size_t *idx;
    size_t  n;
    int     sock;
    struct event *ev;
    struct ipc_reader rd;
};
TAILQ_HEAD(qmgr_job_list, qmgr_job);

struct qmgr_transport {
    struct qmgr_transport *next;
    char   *name;
    char   *socket_path;                /* relative to the queue directory */
    unsigned limit;
    unsigned inflight;
    time_t  last_warning;
    struct qmgr_job_list queue;
    struct event *dispatch_ev;
};

static bool deliver_stopping;

/* transport_name_ok - safe as a socket file name */
static bool transport_name_ok(const char *name)
{
    if (*name == '\0' || strlen(name) > 64)
        return false;
    for (const char *p = name; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9')
              || *p == '_' || *p == '-' || *p == '.'))
            return false;
    return name[0] != '.';
}

/* agent_processes - maxproc of the agent's master.cf entry; 0 if unknown */
static int agent_processes(struct service *svc, const char *name)
{
    struct strbuf path = STRBUF_INIT, err = STRBUF_INIT;
    struct master_cf mcf;
    const struct master_service *ms;
    int     n = 0;

    memset(&mcf, 0, sizeof(mcf));
    sb_printf(&path, "%s/master.cf", svc->config_dir);
    if (master_cf_load(sb_str(&path), svc->cfg, &mcf, &err) != 0) {
        msg_warn("%s; assuming %d concurrent %s deliveries", sb_str(&err), CONCURRENCY_DEFAULT, name);
    } else {
        if ((ms = master_cf_find(&mcf, name)) != NULL)
            n = ms->maxproc;
        master_cf_free(&mcf);
    }
    sb_free(&path);
    sb_free(&err);
    return n;
}

static void dispatch(evutil_socket_t fd, short what, void *arg);

/* qmgr_deliver_init - transports from main.cf/master.cf (privileged: master.cf is outside the chroot) */
void qmgr_deliver_init(struct service *svc)
{
    struct qmgr_transport *tr = xcalloc(1, sizeof(*tr));
    const char *spec = config_str(svc->cfg, "virtual_transport");
    const char *limit = config_lookup(svc->cfg, "virtual_destination_concurrency_limit");
    size_t  len = strcspn(spec, ":");
    long long n = 0;

    tr->name = xstrndup(spec, len);
    if (!transport_name_ok(tr->name))
        msg_fatal("virtual_transport = %s: \"%s\" is not a usable service name", spec, tr->name);
    tr->socket_path = xmalloc(strlen(tr->name) + sizeof("private/"));
    snprintf(tr->socket_path, strlen(tr->name) + sizeof("private/"), "private/%s", tr->name);
    if (limit != NULL && *limit != '\0') {
        char   *end;

        errno = 0;
        n = strtoll(limit, &end, 10);
        if (errno != 0 || *end != '\0' || n < 1 || n > CONCURRENCY_MAX)
            msg_fatal("virtual_destination_concurrency_limit = %s: expected a number from 1 to %d",
                      limit, CONCURRENCY_MAX);
    } else {
        n = 2LL * agent_processes(svc, tr->name);
        if (n <= 0)
            n = CONCURRENCY_DEFAULT;
        if (n > CONCURRENCY_MAX)
            n = CONCURRENCY_MAX;
    }
    tr->limit = (unsigned) n;
    TAILQ_INIT(&tr->queue);
    tr->dispatch_ev = event_new(svc->base, -1, 0, dispatch, tr);
    if (tr->dispatch_ev == NULL)
        msg_fatal("event_new: out of memory");
    tr->next = qmgr.transports;
    qmgr.transports = tr;
    msg_verbose("transport %s: %s, up to %u requests in flight", tr->name, tr->socket_path, tr->limit);
}

/* qmgr_transport_find - by name; NULL name: the virtual transport */
struct qmgr_transport *qmgr_transport_find(const char *name)
{
    for (struct qmgr_transport *tr = qmgr.transports; tr; tr = tr->next)
        if (name == NULL || strcmp(tr->name, name) == 0)
            return tr;
    return NULL;
}

/* dispatch_request - start jobs at the next loop turn (never inside the caller's loop over a message) */
static void dispatch_request(struct qmgr_transport *tr)
{
    if (!deliver_stopping && !TAILQ_EMPTY(&tr->queue) && tr->inflight < tr->limit)
        event_active(tr->dispatch_ev, EV_TIMEOUT, 1);
}

/* qmgr_deliver_add - queue a job for recipients idx[0..n) of msg */
void qmgr_deliver_add(struct qmgr_transport *tr, struct qmgr_message *msg, const size_t *idx, size_t n)
{
    struct qmgr_job *job = xcalloc(1, sizeof(*job));

    job->tr = tr;
    job->msg = msg;
    job->idx = xcalloc(n ? n : 1, sizeof(*job->idx));
    memcpy(job->idx, idx, n * sizeof(*idx));
    job->n = n;
    job->sock = -1;
    ipc_reader_init(&job->rd);
    msg->jobs++;
    TAILQ_INSERT_TAIL(&tr->queue, job, link);
    dispatch_request(tr);
}

/* job_end - the job is over (results recorded): update the message, start the next */
static void job_end(struct qmgr_job *job, bool was_inflight)
{
    struct qmgr_transport *tr = job->tr;
    struct qmgr_message *msg = job->msg;

    if (job->ev)
        event_free(job->ev);
    if (job->sock >= 0)
        close(job->sock);
    ipc_reader_free(&job->rd);
    free(job->idx);
    free(job);
    if (was_inflight) {
        tr->inflight--;
        qmgr.inflight--;
    }
    if (--msg->jobs > 0)
        qmgr_message_flush(msg);        /* other jobs may take a while: do not repeat these */
    else
        qmgr_message_done(msg);
    dispatch_request(tr);
    if (qmgr.svc->stopping && qmgr.inflight == 0)
        service_check_idle(qmgr.svc);
}

/* job_defer_all - qmgr's own verdict for every recipient of the job (logged) */
static void job_defer_all(struct qmgr_job *job, const char *dsn, const char *text)
{
    for (size_t k = 0; k < job->n; k++)
        qmgr_rcpt_result(job->msg, job->idx[k], QUEUE_RCPT_DEFERRED, dsn, text, job->tr->name, true);
}

/* unreachable - the agent cannot be reached: warn now and then, defer the job */
static void unreachable(struct qmgr_job *job, const char *why)
{
    time_t  now = time(NULL);

    if (now - job->tr->last_warning >= WARN_INTERVAL) {
        job->tr->last_warning = now;
        msg_warn("%s: delivery agent %s unreachable: %s", job->msg->entry->id, job->tr->socket_path, why);
    }
    job_defer_all(job, "4.3.0", "mail transport unavailable");
    job_end(job, false);
}

/* apply_results - the agent's verdicts into the message (the agent logged them) */
static void apply_results(struct qmgr_job *job, const struct delivery_result *res)
{
    for (size_t k = 0; k < job->n; k++) {
        enum queue_rcpt_state st = res[k].status == DELIVERY_OK ? QUEUE_RCPT_DELIVERED
            : res[k].status == DELIVERY_BOUNCE ? QUEUE_RCPT_BOUNCED : QUEUE_RCPT_DEFERRED;

        qmgr_rcpt_result(job->msg, job->idx[k], st, res[k].dsn, res[k].reason ? res[k].reason : "",
                         job->tr->name, false);
        if (res[k].status == DELIVERY_RETRY)
            job->msg->retry_now = true;         /* a fresh agent takes over: no back-off */
    }
}

/* job_read - the agent's reply, or its timeout */
static void job_read(evutil_socket_t fd, short what, void *arg)
{
    struct qmgr_job *job = arg;
    struct strbuf err = STRBUF_INIT;
    struct ipc_record r;
    struct delivery_result *res;
    int     rc, next, pfd = -1;

    (void) fd;
    if (what & EV_TIMEOUT) {
        msg_warn("%s: delivery agent %s: no reply within %d seconds", job->msg->entry->id,
                 job->tr->socket_path, QMGR_AGENT_TIMEOUT);
        job_defer_all(job, "4.4.2", "delivery agent timed out");
        job_end(job, true);
        return;
    }
    rc = ipc_reader_fill(&job->rd, job->sock, &err);
    memset(&r, 0, sizeof(r));
    next = rc < 0 ? -1 : ipc_reader_next(&job->rd, &r, &pfd, &err);
    if (pfd >= 0)
        close(pfd);
    if (next == 0 && rc > 0) {
        ipc_free(&r);
        sb_free(&err);
        return;                         /* more to come */
    }
    if (next <= 0) {
        /* The agent may have delivered some before it went: those are repeated later. */
        msg_warn("%s: delivery agent %s: %s", job->msg->entry->id, job->tr->socket_path,
                 rc == 0 ? "connection closed before the reply" : sb_str(&err));
        job_defer_all(job, "4.3.0", "delivery agent connection lost");
        ipc_free(&r);
        sb_free(&err);
        job_end(job, true);
        return;
    }
    res = xcalloc(job->n, sizeof(*res));
    if (delivery_results_decode(&r, res, job->n, &err) != 0) {
        msg_warn("%s: delivery agent %s: bad reply: %s", job->msg->entry->id, job->tr->socket_path,
                 sb_str(&err));
        job_defer_all(job, "4.3.0", "delivery agent protocol error");
    } else {
        apply_results(job, res);
    }
    delivery_results_free(res, job->n);
    free(res);
    ipc_free(&r);
    sb_free(&err);
    job_end(job, true);
}

/* job_start - connect, send the request with the file, wait for the reply in the loop */
static void job_start(struct qmgr_job *job)
{
    struct qmgr_message *msg = job->msg;
    struct queue_envelope *env = &msg->qf.env;
    struct strbuf err = STRBUF_INIT;
    struct delivery_request req;
    struct ipc_record r;
    struct timeval tv = {QMGR_AGENT_TIMEOUT, 0};
    char    path[64];
    int     rofd, flags;

    job->sock = ipc_connect(job->tr->socket_path, QMGR_CONNECT_TIMEOUT_MS, &err);
    if (job->sock < 0) {
        unreachable(job, sb_str(&err));
        sb_free(&err);
        return;
    }
    snprintf(path, sizeof(path), "active/%s", msg->entry->id);
    rofd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (rofd < 0) {
        msg_warn("%s: open %s read-only: %m", msg->entry->id, path);
        job_defer_all(job, "4.3.0", "cannot open queue file");
        job_end(job, false);
        sb_free(&err);
        return;
    }
    memset(&req, 0, sizeof(req));
    snprintf(req.queue_id, sizeof(req.queue_id), "%s", env->queue_id);
    req.sender = env->sender;
    req.arrival = env->arrival;
    req.offset = msg->qf.message_offset;
    req.length = msg->qf.message_length;
    req.nrcpt = job->n;
    req.rcpts = xcalloc(job->n, sizeof(*req.rcpts));
    for (size_t k = 0; k < job->n; k++) {
        req.rcpts[k].address = env->rcpts[job->idx[k]].address;
        req.rcpts[k].orcpt = env->rcpts[job->idx[k]].orcpt;
        req.rcpts[k].index = job->idx[k];
    }
    delivery_request_encode(&req, &r);
    free(req.rcpts);                    /* the strings belong to the queue file */
    if (ipc_send(job->sock, &r, rofd, QMGR_SEND_TIMEOUT_MS, &err) != 0) {
        close(rofd);
        ipc_free(&r);
        unreachable(job, sb_str(&err));
        sb_free(&err);
        return;
    }
    close(rofd);                        /* the agent has its own reference now */
    ipc_free(&r);
    sb_free(&err);
    flags = fcntl(job->sock, F_GETFL);
    if (flags < 0 || fcntl(job->sock, F_SETFL, flags | O_NONBLOCK) < 0)
        msg_fatal("fcntl O_NONBLOCK: %m");
    job->ev = event_new(qmgr.svc->base, job->sock, EV_READ | EV_PERSIST, job_read, job);
    if (job->ev == NULL || event_add(job->ev, &tv) != 0)
        msg_fatal("event_new: out of memory");
    job->tr->inflight++;
    qmgr.inflight++;
}

/* dispatch - start queued jobs up to the transport's limit */
static void dispatch(evutil_socket_t fd, short what, void *arg)
{
    struct qmgr_transport *tr = arg;

    (void) fd;
    (void) what;
    while (!deliver_stopping && tr->inflight < tr->limit && !TAILQ_EMPTY(&tr->queue)) {
        struct qmgr_job *job = TAILQ_FIRST(&tr->queue);

        TAILQ_REMOVE(&tr->queue, job, link);
        job_start(job);
    }
}

/* qmgr_deliver_stop - start no more requests; queued jobs stay with their files in active/ */
void qmgr_deliver_stop(void)
{
    deliver_stopping = true;
    for (struct qmgr_transport *tr = qmgr.transports; tr; tr = tr->next)
        event_del(tr->dispatch_ev);
}
