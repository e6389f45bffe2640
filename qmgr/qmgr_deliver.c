/*
 * qmgr_deliver - talking to delivery agents (lib/delivery_proto.h).
 *
 * Interface (qmgr.h): qmgr_deliver_init(), qmgr_transport_find(),
 * qmgr_transport_wants_nexthop(), qmgr_deliver_add(), qmgr_deliver_stop(),
 * qmgr_deliver_revive().
 *
 * A transport is a delivery agent's unix service in master.cf: the
 * virtual_transport one, and every service whose command is "smtp" (smtp,
 * lmtp, or any other name an administrator gives it, as in Postfix). A job
 * is one message, up to QMGR_JOB_RCPT_MAX of its recipients, and one nexthop
 * (smtp: the recipient domain, relayhost or a transport_maps destination).
 * Jobs queue per destination (transport + nexthop); the transport serves its
 * destinations round-robin, so a mailing-list blast to one domain does not
 * hold up single messages to others, and each destination has its own limit
 * of requests in flight (TRANSPORT_destination_concurrency_limit, else
 * default_destination_concurrency_limit; for virtual: twice the agent's
 * process count from master.cf, or virtual_destination_concurrency_limit).
 *
 * Dead destinations: when every recipient of a job came back deferred with
 * 4.4.1 (no server of the destination could be reached), the destination is
 * marked dead for minimal_backoff_time, and the jobs queued for it (and those
 * queued later) are deferred at once with that reason, without another
 * connection attempt per message. `postctl queue flush` revives them.
 *
 * Each request gets its own connection to private/TRANSPORT: the kernel
 * hands it to whichever agent process is idle and accepting, which balances
 * the load over the agent's processes better than long-lived connections
 * pinned to one of them. connect() and the send are blocking with a short
 * deadline (a local UNIX socket; the request is small, the message travels
 * as a read-only descriptor); the reply is awaited in the event loop with
 * a daemon_timeout deadline (hours: the agent's own timeouts come first).
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

struct qmgr_dest;

struct qmgr_job {
    TAILQ_ENTRY(qmgr_job) link;
    struct qmgr_transport *tr;
    struct qmgr_dest *dest;
    struct qmgr_message *msg;
    size_t *idx;
    size_t  n;
    int     sock;
    struct event *ev;
    struct ipc_reader rd;
};
TAILQ_HEAD(qmgr_job_list, qmgr_job);

/* One nexthop of a transport, with its own queue and limit. */
struct qmgr_dest {
    TAILQ_ENTRY(qmgr_dest) link;        /* the transport's round-robin list */
    char   *nexthop;                    /* "" for none (virtual) */
    struct qmgr_job_list queue;
    unsigned inflight;
    unsigned limit;
    time_t  dead_until;
    char   *dead_reason;
};
TAILQ_HEAD(qmgr_dest_list, qmgr_dest);

struct qmgr_transport {
    struct qmgr_transport *next;
    char   *name;
    char   *socket_path;                /* relative to the queue directory */
    bool    is_smtp;                    /* the smtp/lmtp agent: wants a nexthop */
    unsigned limit;                     /* requests in flight, all destinations */
    unsigned dest_limit;                /* per destination */
    unsigned inflight;
    unsigned queued;                    /* jobs waiting, all destinations */
    time_t  last_warning;
    struct qmgr_dest_list dests;        /* every destination with jobs, in flight or dead */
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

static void dispatch(evutil_socket_t fd, short what, void *arg);

/* parse_limit - a concurrency parameter's value, 1..CONCURRENCY_MAX */
static unsigned parse_limit(const char *name, const char *value)
{
    char   *end;
    long long n;

    errno = 0;
    n = strtoll(value, &end, 10);
    if (errno != 0 || *end != '\0' || n < 1 || n > CONCURRENCY_MAX)
        msg_fatal("%s = %s: expected a number from 1 to %d", name, value, CONCURRENCY_MAX);
    return (unsigned) n;
}

/* transport_add - one transport for a master.cf service (name) */
static void transport_add(struct service *svc, const char *name, bool is_smtp, int maxproc)
{
    struct qmgr_transport *tr;
    struct strbuf param = STRBUF_INIT;
    const char *limit;

    if (qmgr_transport_find(name) != NULL)
        return;
    tr = xcalloc(1, sizeof(*tr));
    tr->name = xstrdup(name);
    tr->is_smtp = is_smtp;
    tr->socket_path = xmalloc(strlen(name) + sizeof("private/"));
    snprintf(tr->socket_path, strlen(name) + sizeof("private/"), "private/%s", name);
    sb_printf(&param, "%s_destination_concurrency_limit", name);
    limit = config_lookup(svc->cfg, sb_str(&param));
    if (is_smtp) {
        /* An event-driven agent: its processes hold many deliveries each. */
        tr->dest_limit = limit != NULL && *limit ? parse_limit(sb_str(&param), limit)
            : (unsigned) config_int(svc->cfg, "default_destination_concurrency_limit");
        if (tr->dest_limit > CONCURRENCY_MAX)
            tr->dest_limit = CONCURRENCY_MAX;
        tr->limit = CONCURRENCY_MAX * 2;
    } else {
        if (limit != NULL && *limit != '\0') {
            tr->limit = parse_limit(sb_str(&param), limit);
        } else {
            tr->limit = maxproc > 0 ? 2 * (unsigned) maxproc : CONCURRENCY_DEFAULT;
            if (tr->limit > CONCURRENCY_MAX)
                tr->limit = CONCURRENCY_MAX;
        }
        tr->dest_limit = tr->limit;
    }
    TAILQ_INIT(&tr->dests);
    tr->dispatch_ev = event_new(svc->base, -1, 0, dispatch, tr);
    if (tr->dispatch_ev == NULL)
        msg_fatal("event_new: out of memory");
    tr->next = qmgr.transports;
    qmgr.transports = tr;
    msg_verbose("transport %s: %s, up to %u requests in flight, %u per destination", tr->name,
                tr->socket_path, tr->limit, tr->dest_limit);
    sb_free(&param);
}

/*
 * qmgr_deliver_init - transports from main.cf/master.cf (privileged: master.cf
 * is outside the chroot): virtual_transport's service, and every unix service
 * run by the smtp program.
 */
void qmgr_deliver_init(struct service *svc)
{
    const char *spec = config_str(svc->cfg, "virtual_transport");
    size_t  len = strcspn(spec, ":");
    char   *vname = xstrndup(spec, len);
    struct strbuf path = STRBUF_INIT, err = STRBUF_INIT;
    struct master_cf mcf;
    bool    loaded;

    if (!transport_name_ok(vname))
        msg_fatal("virtual_transport = %s: \"%s\" is not a usable service name", spec, vname);
    memset(&mcf, 0, sizeof(mcf));
    sb_printf(&path, "%s/master.cf", svc->config_dir);
    loaded = master_cf_load(sb_str(&path), svc->cfg, &mcf, &err) == 0;
    if (!loaded)
        msg_warn("%s; assuming %d concurrent deliveries per transport", sb_str(&err), CONCURRENCY_DEFAULT);
    for (size_t k = 0; loaded && k < mcf.count; k++) {
        const struct master_service *ms = &mcf.services[k];

        if (ms->type == MASTER_UNIX && ms->command && strcmp(ms->command, "smtp") == 0
            && transport_name_ok(ms->name))
            transport_add(svc, ms->name, true, ms->maxproc);
    }
    if (qmgr_transport_find(vname) == NULL) {
        const struct master_service *ms = loaded ? master_cf_find(&mcf, vname) : NULL;

        transport_add(svc, vname, false, ms ? ms->maxproc : 0);
    }
    if (loaded)
        master_cf_free(&mcf);
    free(vname);
    sb_free(&path);
    sb_free(&err);
}

/* qmgr_transport_find - by name; NULL if there is no such delivery agent */
struct qmgr_transport *qmgr_transport_find(const char *name)
{
    for (struct qmgr_transport *tr = qmgr.transports; tr; tr = tr->next)
        if (strcmp(tr->name, name) == 0)
            return tr;
    return NULL;
}

/* qmgr_transport_wants_nexthop - the smtp/lmtp agent (virtual takes none) */
bool qmgr_transport_wants_nexthop(const struct qmgr_transport *tr)
{
    return tr->is_smtp;
}

/* dispatch_request - start jobs at the next loop turn (never inside the caller's loop over a message) */
static void dispatch_request(struct qmgr_transport *tr)
{
    if (!deliver_stopping && tr->queued > 0 && tr->inflight < tr->limit)
        event_active(tr->dispatch_ev, EV_TIMEOUT, 1);
}

/* dest_find - the destination of tr for nexthop, made when new */
static struct qmgr_dest *dest_find(struct qmgr_transport *tr, const char *nexthop)
{
    struct qmgr_dest *d;

    TAILQ_FOREACH(d, &tr->dests, link)
        if (strcmp(d->nexthop, nexthop) == 0)
            return d;
    d = xcalloc(1, sizeof(*d));
    d->nexthop = xstrdup(nexthop);
    d->limit = tr->dest_limit;
    TAILQ_INIT(&d->queue);
    TAILQ_INSERT_TAIL(&tr->dests, d, link);
    return d;
}

/* dest_release - forget a destination with nothing queued, in flight or remembered */
static void dest_release(struct qmgr_transport *tr, struct qmgr_dest *d)
{
    if (!TAILQ_EMPTY(&d->queue) || d->inflight > 0 || d->dead_until > time(NULL))
        return;
    TAILQ_REMOVE(&tr->dests, d, link);
    free(d->nexthop);
    free(d->dead_reason);
    free(d);
}

/* qmgr_deliver_add - queue a job for recipients idx[0..n) of msg, to nexthop (NULL: none) */
void qmgr_deliver_add(struct qmgr_transport *tr, struct qmgr_message *msg, const char *nexthop,
                      const size_t *idx, size_t n)
{
    struct qmgr_job *job = xcalloc(1, sizeof(*job));

    job->tr = tr;
    job->dest = dest_find(tr, nexthop ? nexthop : "");
    job->msg = msg;
    job->idx = xcalloc(n ? n : 1, sizeof(*job->idx));
    memcpy(job->idx, idx, n * sizeof(*idx));
    job->n = n;
    job->sock = -1;
    ipc_reader_init(&job->rd);
    msg->jobs++;
    TAILQ_INSERT_TAIL(&job->dest->queue, job, link);
    tr->queued++;
    dispatch_request(tr);
}

/* job_end - the job is over (results recorded): update the message, start the next */
static void job_end(struct qmgr_job *job, bool was_inflight)
{
    struct qmgr_transport *tr = job->tr;
    struct qmgr_dest *dest = job->dest;
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
        dest->inflight--;
        qmgr.inflight--;
    }
    dest_release(tr, dest);
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

/* note_dead - every recipient deferred for want of a server (4.4.1): the destination rests */
static void note_dead(struct qmgr_job *job, const struct delivery_result *res)
{
    struct qmgr_dest *d = job->dest;

    if (!job->tr->is_smtp)
        return;
    for (size_t k = 0; k < job->n; k++)
        if (res[k].status != DELIVERY_DEFER || strcmp(res[k].dsn, "4.4.1") != 0)
            return;
    d->dead_until = time(NULL) + (time_t) qmgr.min_backoff;
    free(d->dead_reason);
    d->dead_reason = xstrdup(res[0].reason ? res[0].reason : "destination unreachable");
    msg_info("destination %s:%s is unreachable: deferring its mail for %llds", job->tr->name,
             d->nexthop, qmgr.min_backoff);
}

/* apply_results - the agent's verdicts into the message (the agent logged them) */
static void apply_results(struct qmgr_job *job, const struct delivery_result *res)
{
    note_dead(job, res);
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
        msg_warn("%s: delivery agent %s: no reply within %lld seconds", job->msg->entry->id,
                 job->tr->socket_path, qmgr.agent_timeout);
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
    struct timeval tv = {(time_t) qmgr.agent_timeout, 0};
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
    req.nexthop = job->tr->is_smtp && job->dest->nexthop[0] ? job->dest->nexthop : NULL;
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
    job->dest->inflight++;
    qmgr.inflight++;
}

/* defer_dead - a job for a dead destination: deferred at once, with the reason it died */
static void defer_dead(struct qmgr_job *job)
{
    struct strbuf text = STRBUF_INIT;

    sb_printf(&text, "delivery temporarily suspended: %s", job->dest->dead_reason);
    for (size_t k = 0; k < job->n; k++)
        qmgr_rcpt_result(job->msg, job->idx[k], QUEUE_RCPT_DEFERRED, "4.4.1", sb_str(&text),
                         job->dest->nexthop, true);
    sb_free(&text);
    job_end(job, false);
}

/* eligible - the first destination that may start a job now (dead ones only defer) */
static struct qmgr_dest *eligible(struct qmgr_transport *tr, time_t now)
{
    struct qmgr_dest *d;

    TAILQ_FOREACH(d, &tr->dests, link)
        if (!TAILQ_EMPTY(&d->queue) && (d->inflight < d->limit || d->dead_until > now))
            return d;
    return NULL;
}

/*
 * dispatch - start queued jobs up to the limits. The destination served
 * goes to the end of the list, so destinations take turns (round-robin).
 */
static void dispatch(evutil_socket_t fd, short what, void *arg)
{
    struct qmgr_transport *tr = arg;
    time_t  now = time(NULL);
    struct qmgr_dest *d;

    (void) fd;
    (void) what;
    while (!deliver_stopping && tr->inflight < tr->limit && tr->queued > 0
           && (d = eligible(tr, now)) != NULL) {
        struct qmgr_job *job = TAILQ_FIRST(&d->queue);

        TAILQ_REMOVE(&d->queue, job, link);
        tr->queued--;
        TAILQ_REMOVE(&tr->dests, d, link);
        TAILQ_INSERT_TAIL(&tr->dests, d, link);
        if (d->dead_until > now)
            defer_dead(job);            /* may free nothing: a dead destination is kept */
        else
            job_start(job);             /* d may be gone afterwards (job ended at once) */
    }
}

/* qmgr_deliver_stop - start no more requests; queued jobs stay with their files in active/ */
void qmgr_deliver_stop(void)
{
    deliver_stopping = true;
    for (struct qmgr_transport *tr = qmgr.transports; tr; tr = tr->next)
        event_del(tr->dispatch_ev);
}

/* qmgr_deliver_revive - every dead destination may be tried again (postctl queue flush) */
void qmgr_deliver_revive(void)
{
    for (struct qmgr_transport *tr = qmgr.transports; tr; tr = tr->next) {
        struct qmgr_dest *d, *next;

        for (d = TAILQ_FIRST(&tr->dests); d; d = next) {
            next = TAILQ_NEXT(d, link);
            d->dead_until = 0;
            dest_release(tr, d);
        }
        dispatch_request(tr);
    }
}
