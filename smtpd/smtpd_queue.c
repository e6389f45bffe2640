/*
 * smtpd_queue - the queue store: each accepted message becomes a queue file.
 *
 * Interface (smtpd.h): smtpd_store_queue, smtpd_queue_init(),
 * smtpd_queue_space_ok(), smtpd_queue_format_received().
 *
 * open() creates incoming/ID.tmp with the envelope (lib/queue_file.h),
 * relative to a descriptor of the queue directory taken once after the
 * privilege drop (our cwd, chrooted or not), and writes the Received:
 * header. write() turns the CRLF line ends of the DATA stream into the LF
 * that queue files hold. commit() has the writer fsync the file and rename
 * it to incoming/ID; only when that succeeded is the reply "250 2.0.0 Ok:
 * queued as ID". Every failure gives "451 4.3.0 Error: queue file write
 * error" ("452 4.3.1 Insufficient system storage" when the file system is
 * full: smtpd_store_error_reply) and aborts the writer, which removes the
 * temporary file: nothing is left behind and the client keeps the message.
 *
 * Header checks (smtpd_header_checks.c), when configured, run in the same
 * commit thread just before the fsync, on the temporary file mapped
 * read-only: a REJECT (5xx reply) or DISCARD (250, dropped) removes the
 * file as a failed write does, so nothing is queued; HOLD commits it into
 * hold/ instead of incoming/ (qmgr is not nudged). With no checks
 * configured the path is unchanged.
 *
 * The commit's fsyncs and renames run in a few worker threads
 * (SMTPD_COMMIT_THREADS, lib/worker_pool.h), not in the event loop: one
 * process serves many sessions, and one session's fsync must not stall every
 * other session's handshake or command, nor keep the disk from committing
 * several messages at once. A thread owns only its job's writer (its own
 * file descriptor and names relative to the queue directory descriptor);
 * everything else (the reply, the qmgr nudge, the callback) happens in the
 * loop once the job is handed back. A job whose
 * session went away (forget) still completes; its reply is just dropped.
 * The service does not exit while commits are under way (smtpd_active
 * counts them), so a 250 already sent is never undone.
 *
 * Free space (smtpd_queue_space_ok): MAIL, and DATA before its 354, are
 * refused with "452 4.3.1 Insufficient system storage" when the queue file
 * system has less than 1.5 * (queue_minfree + SIZE) free, queue_minfree
 * being $message_size_limit when 0, as Postfix does: the client retries
 * later instead of sending a message that could not be stored. Space that
 * runs out in the middle of a message gives the same 452 after its end.
 *
 * Duplicate recipients (compared without case, as the tables compare) are
 * stored once, as Postfix's cleanup does.
 *
 * After a commit, qmgr is nudged with the ipc record "type=new
 * queue_id=ID" over one non-blocking connection to private/qmgr. The nudge is
 * best effort and never waits: when qmgr is down, slow or its socket buffer
 * is full, the nudge is dropped, since qmgr scans incoming/ on its own. A
 * failed connection is retried at most once a second.
 *
 * Diagnostics: "ID: client=NAME[ADDR]:PORT" when a queue file is created;
 * warnings with the writer's error text when it fails.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include "ipc.h"
#include "log.h"
#include "mem.h"
#include "queue_file.h"
#include "service.h"
#include "strbuf.h"
#include "worker_pool.h"

#include "smtpd.h"

#define QMGR_SOCKET         "private/qmgr"
#define QMGR_CONNECT_MS     20          /* a local socket answers at once or not at all */
#define QMGR_RETRY_SECS     1
#define HELO_TEXT_MAX       255         /* HELO text kept in the envelope and Received: */
#define SMTPD_COMMIT_THREADS 8          /* fsyncs under way at once */

/* A commit handed to a worker thread. */
struct commit_job {
    struct queue_msg *m;
    smtpd_store_done_fn done;           /* NULL once forgotten */
    void   *ctx;
    int     rc;                         /* set by the thread */
    int     errnum;                     /* and why it failed */
    struct strbuf err;
    bool    checked;                    /* header checks ran: hc holds their verdict */
    struct smtpd_hc_result hc;
};

/* One message being received. */
struct queue_msg {
    struct queue_writer *w;
    struct queue_envelope env;          /* our own copies; freed with the handle */
    struct strbuf buf;                  /* content with LF line ends, for the writer */
    bool    pending_cr;                 /* the last chunk ended in CR: maybe half a CRLF */
};

/* Per-process state. */
static struct {
    struct smtpd_server *srv;
    int     dirfd;                      /* the queue directory */
    int     qmgr_fd;                    /* nudge connection, -1 if none */
    struct event *qmgr_ev;              /* notices qmgr closing the connection */
    struct timespec qmgr_last_try;
    bool    qmgr_tried;
    bool    qmgr_warned;                /* one warning per outage, not one per message */
    struct worker_pool *committers;
} q = {NULL, -1, -1, NULL, {0, 0}, false, false, NULL};

/* printable_copy - untrusted text for a header or envelope line: bounded, no controls */
static char *printable_copy(const char *text, size_t max)
{
    size_t  len = strnlen(text, max);
    char   *copy = xstrndup(text, len);

    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char) copy[i];

        if (c < 0x20 || c == 0x7f)
            copy[i] = '?';
    }
    return copy;
}

/* smtpd_queue_format_received - the Received: header (LF line ends), for the store and tests */
void smtpd_queue_format_received(struct strbuf *out, const struct smtpd_envelope *env,
                                 const char *hostname, const char *mail_name,
                                 const char *queue_id, const char *rcpt, time_t when)
{
    const struct smtpd_client *cl = env->cl;
    const char *name = cl && cl->name ? cl->name : "unknown";
    const char *addr = cl ? cl->addr : "unknown";
    char   *helo = printable_copy(env->helo && *env->helo ? env->helo : name, HELO_TEXT_MAX);
    char    date[64];
    struct tm tm;

    /* RFC 5322 3.3 date-time; daemons never call setlocale, so names are English. */
    if (localtime_r(&when, &tm) == NULL
        || strftime(date, sizeof(date), "%a, %d %b %Y %H:%M:%S %z (%Z)", &tm) == 0)
        snprintf(date, sizeof(date), "Thu, 01 Jan 1970 00:00:00 +0000 (UTC)");
    sb_printf(out, "Received: from %s (%s [%s%s])\n", helo, name,
              cl && cl->peer.ss_family == AF_INET6 ? "IPv6:" : "", addr);
    /* Postfix's layout, so that tools that parse these lines keep working. */
    if (env->received_tls != NULL) {
        sb_printf(out, "\t(using %s", env->received_tls);
        if (env->received_tls_details != NULL && *env->received_tls_details)
            sb_printf(out, "\n\t %s", env->received_tls_details);
        sb_puts(out, ")\n\t(No client certificate requested)\n");
    }
    if (env->received_auth != NULL) {
        char   *who = printable_copy(env->received_auth, HELO_TEXT_MAX);

        sb_printf(out, "\t(Authenticated sender: %s)\n", who);
        free(who);
    }
    sb_printf(out, "\tby %s (%s) with %s id %s", hostname, mail_name, env->protocol, queue_id);
    if (rcpt != NULL)
        sb_printf(out, "\n\tfor <%s>; %s\n", rcpt, date);
    else
        sb_printf(out, ";\n\t%s\n", date);
    free(helo);
}

/* envelope_fill - the queue envelope from the session's, duplicates dropped */
static void envelope_fill(struct queue_envelope *qe, const struct smtpd_envelope *env)
{
    const struct smtpd_client *cl = env->cl;

    memset(qe, 0, sizeof(*qe));
    qe->sender = xstrdup((env->sender.flags & ADDRESS_NULL) ? "" : sb_str(&env->sender.addr));
    qe->arrival = (int64_t) time(NULL);
    qe->client_addr = xstrdup(cl ? cl->addr : "unknown");
    qe->client_name = xstrdup(cl && cl->name ? cl->name : "unknown");
    qe->helo = printable_copy(env->helo ? env->helo : "", HELO_TEXT_MAX);
    qe->protocol = xstrdup(env->protocol);
    qe->body_type = env->body_8bit ? xstrdup("8BITMIME") : NULL;
    qe->smtputf8 = env->smtputf8;
    /* DSN (RFC 3461): validated by the session; kept for bounces and delay notices. */
    qe->ret = env->dsn_ret ? xstrdup(env->dsn_ret) : NULL;
    qe->envid = env->dsn_envid ? xstrdup(env->dsn_envid) : NULL;
    qe->rcpts = xcalloc(env->rcpt_count ? env->rcpt_count : 1, sizeof(*qe->rcpts));
    for (size_t i = 0; i < env->rcpt_count; i++) {
        const char *addr = sb_str(&env->rcpt[i].addr);
        bool    dup = false;

        /* Quadratic, but bounded by smtpd_recipient_limit and cheap next to fsync. */
        for (size_t k = 0; k < qe->nrcpt && !dup; k++)
            dup = strcasecmp(qe->rcpts[k].address, addr) == 0;
        if (dup)
            continue;
        qe->rcpts[qe->nrcpt].address = xstrdup(addr);
        if (env->rcpt_notify != NULL && env->rcpt_notify[i] != NULL)
            qe->rcpts[qe->nrcpt].notify = xstrdup(env->rcpt_notify[i]);
        if (env->rcpt_orcpt != NULL && env->rcpt_orcpt[i] != NULL)
            qe->rcpts[qe->nrcpt].orcpt = xstrdup(env->rcpt_orcpt[i]);
        qe->rcpts[qe->nrcpt].state = QUEUE_RCPT_PENDING;
        qe->nrcpt++;
    }
}

/* msg_free - the handle and everything in it (the writer is already gone) */
static void msg_free(struct queue_msg *m)
{
    queue_envelope_free(&m->env);
    sb_free(&m->buf);
    free(m);
}

/* smtpd_queue_space_ok - the queue file system can take a message of size bytes (-1: unknown) */
bool smtpd_queue_space_ok(const struct smtpd_settings *set, long long size)
{
    struct statvfs vfs;
    long double free_bytes;
    long double minfree = (long double) (set->queue_minfree > 0 ? set->queue_minfree
                                         : set->message_size_limit);

    /* The queue directory is our cwd (chrooted or not); unknown space is no reason to refuse. */
    if (statvfs(".", &vfs) != 0)
        return true;
    free_bytes = (long double) vfs.f_bavail * (long double) vfs.f_frsize;
    return free_bytes / 1.5L >= minfree + (long double) (size > 0 ? size : 0);
}

/* queue_open - create the queue file and write the Received: header */
static void *queue_open(const struct smtpd_envelope *env, struct strbuf *reply)
{
    struct queue_msg *m;
    struct strbuf err = STRBUF_INIT;
    struct strbuf hdr = STRBUF_INIT;
    const struct smtpd_settings *set;
    int     errnum = EIO;

    if (q.srv == NULL || q.dirfd < 0)
        msg_panic("smtpd_queue: store used before smtpd_queue_init");
    set = &q.srv->set;
    /* Space may have gone since MAIL: better a 452 now than a write error after the upload. */
    if (!smtpd_queue_space_ok(set, env->declared_size)) {
        msg_warn("%s: not enough free space in the queue file system for DATA", env->client);
        sb_set(reply, "452 4.3.1 Insufficient system storage");
        return NULL;
    }
    m = xcalloc(1, sizeof(*m));
    sb_init(&m->buf);
    envelope_fill(&m->env, env);
    m->w = queue_writer_create(q.dirfd, &m->env, &err);
    if (m->w == NULL) {
        errnum = errno;
        msg_warn("%s: cannot create a queue file: %s", env->client, sb_str(&err));
        goto fail;
    }
    if (env->cl != NULL && env->cl->sasl_username != NULL)
        msg_info("%s: client=%s, sasl_method=%s, sasl_username=%s", m->env.queue_id,
                 env->client, env->cl->sasl_method ? env->cl->sasl_method : "unknown",
                 env->cl->sasl_username);
    else
        msg_info("%s: client=%s", m->env.queue_id, env->client);
    smtpd_queue_format_received(&hdr, env, set->hostname, set->mail_name, m->env.queue_id,
                                m->env.nrcpt == 1 ? m->env.rcpts[0].address : NULL,
                                (time_t) m->env.arrival);
    if (queue_writer_write(m->w, sb_str(&hdr), sb_len(&hdr), &err) != 0) {
        errnum = errno;
        msg_warn("%s: queue file write error: %s", m->env.queue_id, sb_str(&err));
        queue_writer_abort(m->w);
        goto fail;
    }
    sb_free(&hdr);
    sb_free(&err);
    return m;

  fail:
    sb_set(reply, smtpd_store_error_reply(errnum));
    msg_free(m);
    sb_free(&hdr);
    sb_free(&err);
    return NULL;
}

/*
 * queue_write - content with CRLF line ends in, LF line ends out. The DATA
 * reader rejects messages with a bare CR or LF at the end, so what we do with
 * those here only has to be safe, not right.
 */
static int queue_write(void *msg, const char *data, size_t len)
{
    struct queue_msg *m = msg;
    struct strbuf err = STRBUF_INIT;
    size_t  i = 0;
    int     ret = 0;

    sb_reset(&m->buf);
    if (m->pending_cr && len > 0 && data[0] != '\n')
        sb_putc(&m->buf, '\r');
    m->pending_cr = false;
    while (i < len) {
        const char *cr = memchr(data + i, '\r', len - i);
        size_t  end = cr ? (size_t) (cr - data) : len;

        sb_append(&m->buf, data + i, end - i);
        if (cr == NULL)
            break;
        if (end + 1 == len)
            m->pending_cr = true;       /* the LF may come in the next chunk */
        else if (data[end + 1] != '\n')
            sb_putc(&m->buf, '\r');
        i = end + 1;
    }
    if (sb_len(&m->buf) > 0
        && queue_writer_write(m->w, sb_str(&m->buf), sb_len(&m->buf), &err) != 0) {
        ret = -errno;
        msg_warn("%s: queue file write error: %s", m->env.queue_id, sb_str(&err));
    }
    sb_free(&err);
    if (ret < 0) {
        errno = -ret;                   /* for the DATA reader's reply */
        return -1;
    }
    return 0;
}

/* monotonic_secs - seconds on a clock that does not jump */
static double monotonic_secs(const struct timespec *ts)
{
    return (double) ts->tv_sec + (double) ts->tv_nsec / 1e9;
}

/* qmgr_close - drop the nudge connection */
static void qmgr_close(void)
{
    if (q.qmgr_ev != NULL) {
        event_free(q.qmgr_ev);
        q.qmgr_ev = NULL;
    }
    if (q.qmgr_fd >= 0) {
        close(q.qmgr_fd);
        q.qmgr_fd = -1;
    }
}

/* qmgr_readable - qmgr says nothing on this connection, so anything readable is its end */
static void qmgr_readable(evutil_socket_t fd, short what, void *arg)
{
    char    junk[512];
    ssize_t n;

    (void) what;
    (void) arg;
    n = recv(fd, junk, sizeof(junk), MSG_DONTWAIT);
    if (n > 0 || (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)))
        return;
    msg_verbose("qmgr closed the notification connection");
    qmgr_close();
}

/* qmgr_connect - (re)connect, at most once a second; false if there is no connection */
static bool qmgr_connect(void)
{
    struct strbuf err = STRBUF_INIT;
    struct timespec now;
    int     fd;
    int     flags;

    if (q.qmgr_fd >= 0)
        return true;
    clock_gettime(CLOCK_MONOTONIC, &now);
    if (q.qmgr_tried && monotonic_secs(&now) - monotonic_secs(&q.qmgr_last_try) < QMGR_RETRY_SECS)
        return false;
    q.qmgr_tried = true;
    q.qmgr_last_try = now;
    fd = ipc_connect(QMGR_SOCKET, QMGR_CONNECT_MS, &err);
    if (fd < 0) {
        if (!q.qmgr_warned)
            msg_warn("cannot notify qmgr: %s; it will find new mail by scanning incoming/",
                     sb_str(&err));
        q.qmgr_warned = true;
        sb_free(&err);
        return false;
    }
    sb_free(&err);
    flags = fcntl(fd, F_GETFL);
    if (flags < 0 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0
        || fcntl(fd, F_SETFD, FD_CLOEXEC) < 0) {
        msg_warn("cannot make the qmgr connection non-blocking: %m");
        close(fd);
        return false;
    }
    q.qmgr_ev = event_new(q.srv->svc->base, fd, EV_READ | EV_PERSIST, qmgr_readable, NULL);
    if (q.qmgr_ev == NULL || event_add(q.qmgr_ev, NULL) != 0) {
        msg_warn("cannot watch the qmgr connection: out of memory");
        if (q.qmgr_ev != NULL)
            event_free(q.qmgr_ev);
        q.qmgr_ev = NULL;
        close(fd);
        return false;
    }
    q.qmgr_fd = fd;
    q.qmgr_warned = false;
    return true;
}

/* qmgr_notify - best effort "type=new" for queue_id; never waits */
static void qmgr_notify(const char *queue_id)
{
    struct ipc_record rec;
    struct strbuf wire = STRBUF_INIT;

    ipc_init(&rec, "new");
    if (ipc_put(&rec, "queue_id", queue_id) != 0)
        msg_panic("smtpd_queue: queue ID %s does not fit an ipc record", queue_id);
    ipc_encode(&rec, &wire);
    /* Two tries: a connection qmgr closed (restart) is noticed only when we write. */
    for (int attempt = 0; attempt < 2; attempt++) {
        ssize_t n;

        if (!qmgr_connect())
            break;
        n = send(q.qmgr_fd, sb_str(&wire), sb_len(&wire), MSG_DONTWAIT | MSG_NOSIGNAL);
        if (n == (ssize_t) sb_len(&wire))
            break;
        if (n >= 0) {
            /* Half a record would desynchronize the stream: qmgr sees a cut record and EOF. */
            msg_verbose("%s: qmgr notification cut short; reconnecting later", queue_id);
            qmgr_close();
            break;
        }
        if (errno == EAGAIN || errno == EWOULDBLOCK) {
            msg_verbose("%s: qmgr is busy; notification dropped", queue_id);
            break;
        }
        msg_verbose("%s: qmgr notification failed: %m", queue_id);
        qmgr_close();
    }
    sb_free(&wire);
    ipc_free(&rec);
}

/* header_check - in a worker thread: header checks on the file written so far */
static void header_check(struct commit_job *job)
{
    struct queue_msg *m = job->m;
    struct smtpd_hc_context ctx;
    struct strbuf client = STRBUF_INIT;
    const char *data;
    size_t  len;

    if (queue_writer_map_message(m->w, &data, &len, &job->err) != 0) {
        job->errnum = errno;
        queue_writer_abort(m->w);
        job->rc = -1;
        return;
    }
    sb_printf(&client, "%s[%s]", m->env.client_name, m->env.client_addr);
    ctx.queue_id = m->env.queue_id;
    ctx.client = sb_str(&client);
    ctx.sender = m->env.sender;
    ctx.rcpt = m->env.nrcpt > 0 ? m->env.rcpts[0].address : "";
    smtpd_hc_run(q.srv->header_checks, data, len, &ctx, &job->hc);
    queue_message_unmap(data, len);
    sb_free(&client);
    job->checked = true;
    /* Refused or discarded: the temporary file goes, nothing is queued. */
    if (job->hc.action != SMTPD_HC_PASS) {
        queue_writer_abort(m->w);
        job->rc = 1;
    }
}

/* commit_work - in a worker thread: header checks, fsync, rename, fsync the directory */
static void commit_work(void *arg)
{
    struct commit_job *job = arg;
    struct queue_msg *m = job->m;

    job->rc = 0;
    if (m->pending_cr) {
        /* Cannot happen after the DATA reader's checks; keep the byte anyway. */
        m->pending_cr = false;
        if (queue_writer_write(m->w, "\r", 1, &job->err) != 0) {
            job->errnum = errno;
            queue_writer_abort(m->w);
            job->rc = -1;
        }
    }
    if (job->rc == 0 && q.srv->header_checks != NULL)
        header_check(job);
    if (job->rc == 0 && queue_writer_commit_to(m->w, job->checked && job->hc.hold ? "hold"
                                                : "incoming", &job->err) != 0) {
        job->errnum = errno;
        job->rc = -1;
    }
    m->w = NULL;
}

/* header_check_report - in the event loop: the log lines the checks collected */
static void header_check_report(struct smtpd_hc_result *hc)
{
    char   *line = hc->log.data, *next;

    for (; line && *line; line = next) {
        if ((next = strchr(line, '\n')) != NULL)
            *next++ = '\0';
        else
            next = line + strlen(line);
        msg_info("%s", line);
    }
}

/* commit_finished - in the event loop: reply, nudge qmgr, call back */
static void commit_finished(void *arg)
{
    struct commit_job *job = arg;
    char    id[QUEUE_ID_LEN + 1];
    struct strbuf reply = STRBUF_INIT;

    memcpy(id, job->m->env.queue_id, sizeof(id));
    id[QUEUE_ID_LEN] = 0;
    if (job->checked)
        header_check_report(&job->hc);
    if (job->rc == 0) {
        sb_printf(&reply, "250 2.0.0 Ok: queued as %s", id);
        if (!(job->checked && job->hc.hold))
            qmgr_notify(id);
    } else if (job->rc == 1 && job->hc.action == SMTPD_HC_DISCARD) {
        /* Postfix's discard: the client is told the message was taken. */
        sb_printf(&reply, "250 2.0.0 Ok: queued as %s", id);
    } else if (job->rc == 1) {
        sb_puts(&reply, sb_str(&job->hc.reply));
    } else {
        msg_warn("%s: queue file write error: %s", id, sb_str(&job->err));
        sb_puts(&reply, smtpd_store_error_reply(job->errnum));
    }
    if (job->done != NULL)
        job->done(job->ctx, sb_str(&reply));
    sb_free(&reply);
    sb_free(&job->err);
    if (job->checked && job->hc.retire)
        service_retire(q.srv->svc, "a header_checks table changed and cannot be reopened "
                       "here; a fresh process will open it");
    smtpd_hc_result_free(&job->hc);
    msg_free(job->m);
    free(job);
    if (worker_pool_pending(q.committers) == 0)
        service_check_idle(q.srv->svc);
}

/* queue_commit - hand the message to a commit thread; done follows from the loop */
static void *queue_commit(void *msg, smtpd_store_done_fn done, void *ctx)
{
    struct commit_job *job = xcalloc(1, sizeof(*job));

    job->m = msg;
    job->done = done;
    job->ctx = ctx;
    sb_init(&job->err);
    sb_init(&job->hc.reply);
    sb_init(&job->hc.log);
    worker_pool_submit(q.committers, commit_work, commit_finished, job);
    return job;
}

/* queue_forget - the session is gone: the commit completes without a reply */
static void queue_forget(void *commit)
{
    struct commit_job *job = commit;

    job->done = NULL;
}

/* smtpd_queue_pending - commits still under way (the process must not exit before they end) */
unsigned smtpd_queue_pending(void)
{
    return q.committers ? worker_pool_pending(q.committers) : 0;
}

/* queue_discard - rejected or cut off: remove the temporary file */
static void queue_discard(void *msg)
{
    struct queue_msg *m = msg;

    if (m->w != NULL)
        queue_writer_abort(m->w);
    m->w = NULL;
    msg_free(m);
}

const struct smtpd_store smtpd_store_queue = {
    "queue", queue_open, queue_write, queue_commit, queue_forget, queue_discard,
};

/* smtpd_queue_init - after the privilege drop: the queue directory is the cwd */
void smtpd_queue_init(struct smtpd_server *srv)
{
    q.srv = srv;
    q.dirfd = open(".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (q.dirfd < 0)
        msg_fatal("open the queue directory (the working directory): %m");
    q.committers = worker_pool_new(srv->svc->base, SMTPD_COMMIT_THREADS, "smtpd commit");
    smtpd_hc_start(srv->header_checks, srv->svc->base);
}
