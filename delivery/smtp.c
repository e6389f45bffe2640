/*
 * smtp - the SMTP/LMTP delivery agent: main program and qmgr connections.
 *
 * Runs in the service skeleton as mail_owner (postern), chrooted in the
 * queue directory, like qmgr. It runs as "lmtp" when its master.cf service
 * is called lmtp or the program is invoked as lmtp (argv[0]), as Postfix's
 * smtp(8)/lmtp(8) are one program.
 * The resolver (smtp_dns_servers, else /etc/resolv.conf) and the TLS
 * context (smtp_tls_CAfile) are made before the chroot.
 *
 * Protocol (lib/delivery_proto.h): each qmgr connection brings one
 * "type=deliver" record with the queue file's fd and a nexthop; the answer
 * is one "type=result" record when every recipient is settled. Many
 * connections, and so many deliveries, are in progress at once. The queue
 * file is read from the passed fd (queue_file_read validates it as any
 * reader does) for what the request does not carry: BODY, SMTPUTF8, DSN
 * RET/ENVID and each recipient's NOTIFY.
 *
 * A qmgr connection that goes away during a delivery leaves it to finish
 * (the server may be in the middle of DATA); its results are then dropped,
 * and the qmgr that recovers the file delivers again (a duplicate, never a loss).
 *
 * Log lines, one per recipient, as Postfix's: "ID: to=<rcpt>, relay=HOST[IP]:PORT,
 * delay=S, dsn=X.Y.Z, status=sent|deferred|bounced (reply or reason)".
 */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include "config.h"
#include "delivery_proto.h"
#include "dns.h"
#include "ipc.h"
#include "log.h"
#include "mem.h"
#include "queue_file.h"
#include "service.h"
#include "strbuf.h"

#include "smtp.h"

#define SMTP_REPLY_TIMEOUT_MS   30000

struct smtp_qconn {
    struct smtp_server *srv;
    struct smtp_qconn *prev, *next;
    int     fd;
    struct event *ev;
    struct ipc_reader rd;
    struct smtp_delivery *d;            /* the request in progress, or NULL */
};

static struct smtp_server server;
static const char *program_name = "smtp";

/* qconn_close - forget a qmgr connection; its delivery (if any) finishes without it */
static void qconn_close(struct smtp_qconn *qc)
{
    struct smtp_server *srv = qc->srv;

    if (qc->d)
        qc->d->qc = NULL;
    if (qc->prev)
        qc->prev->next = qc->next;
    else
        srv->qconns = qc->next;
    if (qc->next)
        qc->next->prev = qc->prev;
    srv->nqconns--;
    event_free(qc->ev);
    ipc_reader_free(&qc->rd);
    close(qc->fd);
    free(qc);
    service_check_idle(srv->svc);
}

/* smtp_open_rcpts - recipients without a result yet */
bool smtp_open_rcpts(const struct smtp_delivery *d)
{
    for (size_t i = 0; i < d->req.nrcpt; i++)
        if (!d->final[i])
            return true;
    return false;
}

/* log_result - the per-recipient line, with the delay since arrival */
static void log_result(const struct smtp_delivery *d, size_t i, const char *relay)
{
    static const char *words[] = {"sent", "deferred", "bounced", "deferred"};
    const struct delivery_result *res = &d->res[i];
    struct timespec now;
    double  delay;

    clock_gettime(CLOCK_REALTIME, &now);
    delay = (double) now.tv_sec - (double) d->req.arrival + (double) now.tv_nsec / 1e9;
    if (delay < 0)
        delay = 0;
    msg_info("%s: to=<%s>, relay=%s, delay=%.2f, dsn=%s, status=%s (%s)", d->req.queue_id,
             d->req.rcpts[i].address, relay, delay, res->dsn, words[res->status],
             res->reason ? res->reason : "");
}

/* smtp_settle - recipient i's result (logged with relay) unless settled already */
void smtp_settle(struct smtp_delivery *d, size_t i, enum delivery_status st, const char *dsn,
                 const char *relay, const char *fmt, ...)
{
    struct strbuf text = STRBUF_INIT;
    va_list ap;

    if (i >= d->req.nrcpt || d->final[i])
        return;
    va_start(ap, fmt);
    sb_vprintf(&text, fmt, ap);
    va_end(ap);
    d->res[i].status = st;
    snprintf(d->res[i].dsn, sizeof(d->res[i].dsn), "%s", dsn);
    free(d->res[i].reason);
    d->res[i].reason = sb_detach(&text);
    d->final[i] = true;
    log_result(d, i, relay);
}

/* smtp_settle_rest - every open recipient gets the same result */
void smtp_settle_rest(struct smtp_delivery *d, enum delivery_status st, const char *dsn,
                      const char *relay, const char *text)
{
    for (size_t i = 0; i < d->req.nrcpt; i++)
        smtp_settle(d, i, st, dsn, relay, "%s", text);
}

/* delivery_free - release a finished delivery */
static void delivery_free(struct smtp_delivery *d)
{
    smtp_dest_cancel(d);
    if (d->msg_fd >= 0)
        close(d->msg_fd);
    delivery_results_free(d->res, d->req.nrcpt);
    free(d->res);
    free(d->final);
    queue_file_free(&d->qf);
    delivery_request_free(&d->req);
    sb_free(&d->why);
    free(d);
}

/* smtp_delivery_done - all recipients settled (or to defer with d->why): answer qmgr */
void smtp_delivery_done(struct smtp_delivery *d)
{
    struct smtp_server *srv = d->srv;
    struct smtp_qconn *qc = d->qc;
    struct strbuf err = STRBUF_INIT;
    struct ipc_record reply;

    smtp_settle_rest(d, DELIVERY_DEFER, d->why_dsn[0] == '4' ? d->why_dsn : "4.4.1",
                     d->domain[0] ? d->domain : "none",
                     sb_len(&d->why) ? sb_str(&d->why) : "delivery not completed");
    if (qc != NULL) {
        delivery_results_encode(d->res, d->req.nrcpt, &reply);
        if (ipc_send(qc->fd, &reply, -1, SMTP_REPLY_TIMEOUT_MS, &err) != 0)
            msg_warn("%s: cannot send the results to qmgr: %s", d->req.queue_id, sb_str(&err));
        ipc_free(&reply);
        qc->d = NULL;
    } else {
        msg_warn("%s: qmgr went away during the delivery; it will repeat what it did not hear of",
                 d->req.queue_id);
    }
    delivery_free(d);
    srv->deliveries--;
    sb_free(&err);
    service_check_idle(srv->svc);
}

/* check_message - the passed fd is a readable queue file holding the request's message; NULL or why not */
static const char *check_message(struct smtp_delivery *d)
{
    struct strbuf err = STRBUF_INIT;
    struct stat st;

    if (d->msg_fd < 0)
        return "no queue file was passed with the request";
    if (fstat(d->msg_fd, &st) != 0 || !S_ISREG(st.st_mode))
        return "the passed queue file is not a regular file";
    if (d->req.offset > (uint64_t) st.st_size || d->req.length > (uint64_t) st.st_size - d->req.offset)
        return "the message lies outside the passed queue file";
    if (lseek(d->msg_fd, 0, SEEK_SET) != 0 || queue_file_read(d->msg_fd, &d->qf, &err) != 0) {
        msg_warn("%s: queue file: %s", d->req.queue_id, sb_str(&err));
        sb_free(&err);
        return "the passed queue file cannot be read";
    }
    sb_free(&err);
    if (d->qf.message_offset != d->req.offset || d->qf.message_length != d->req.length)
        return "the request does not match the queue file";
    for (size_t i = 0; i < d->req.nrcpt; i++)
        if (d->req.rcpts[i].index >= d->qf.env.nrcpt)
            return "a recipient index lies outside the queue file";
    return NULL;
}

/* handle_record - one whole record from qmgr (the queue file is kept for the delivery); -1: drop the connection */
static int handle_record(void *ctx, const struct ipc_record *rec, int msg_fd)
{
    struct smtp_qconn *qc = ctx;
    struct smtp_delivery *d;
    struct strbuf err = STRBUF_INIT;
    const char *problem;

    if (strcmp(ipc_type(rec), "deliver") != 0 || qc->d != NULL) {
        msg_warn("unexpected record \"%.40s\" from qmgr%s; dropping the connection", ipc_type(rec),
                 qc->d ? " during a delivery" : "");
        if (msg_fd >= 0)
            close(msg_fd);
        return -1;
    }
    d = xcalloc(1, sizeof(*d));
    d->srv = qc->srv;
    d->msg_fd = msg_fd;
    sb_init(&d->why);
    if (delivery_request_decode(rec, &d->req, &err) != 0) {
        msg_warn("malformed delivery request: %s; dropping the connection", sb_str(&err));
        sb_free(&err);
        delivery_free(d);
        return -1;
    }
    d->res = xcalloc(d->req.nrcpt, sizeof(*d->res));
    d->final = xcalloc(d->req.nrcpt, sizeof(*d->final));
    d->qc = qc;
    qc->d = d;
    qc->srv->deliveries++;
    if ((problem = check_message(d)) != NULL) {
        msg_warn("%s: %s", d->req.queue_id, problem);
        smtp_settle_rest(d, DELIVERY_DEFER, "4.3.0", "none", problem);
        smtp_delivery_done(d);
    } else if (smtp_dest_parse(d, d->req.nexthop, &err) != 0) {
        smtp_settle_rest(d, DELIVERY_BOUNCE, "5.1.2", "none", sb_str(&err));
        smtp_delivery_done(d);
    } else {
        smtp_dest_resolve(d);
    }
    sb_free(&err);
    return 0;
}

/* qconn_read - take what arrived and handle each whole record */
static void qconn_read(evutil_socket_t fd, short what, void *arg)
{
    struct smtp_qconn *qc = arg;
    struct strbuf err = STRBUF_INIT;
    int     rc = ipc_reader_dispatch(&qc->rd, (int) fd, handle_record, qc, &err);

    (void) what;
    if (rc < 0 && sb_len(&err) > 0)
        msg_warn("connection from qmgr: %s; dropping it", sb_str(&err));
    sb_free(&err);
    if (rc <= 0)
        qconn_close(qc);
}

/* smtp_accept - a connection from qmgr */
static void smtp_accept(struct service *svc, int fd, const struct sockaddr_storage *peer,
                        socklen_t peer_len, int listener_index)
{
    struct smtp_qconn *qc = xcalloc(1, sizeof(*qc));

    (void) peer;
    (void) peer_len;
    (void) listener_index;
    qc->srv = &server;
    qc->fd = fd;
    if (fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK) < 0)
        msg_fatal("fcntl O_NONBLOCK: %m");
    ipc_reader_init(&qc->rd);
    qc->ev = event_new(svc->base, fd, EV_READ | EV_PERSIST, qconn_read, qc);
    if (qc->ev == NULL || event_add(qc->ev, NULL) != 0)
        msg_fatal("event_new: out of memory");
    qc->next = server.qconns;
    if (server.qconns)
        server.qconns->prev = qc;
    server.qconns = qc;
    server.nqconns++;
}

/* parse_level - smtp_tls_security_level */
static enum smtp_tls_level parse_level(const char *name, const char *value)
{
    if (*value == '\0' || strcasecmp(value, "none") == 0)
        return SMTP_TLS_NONE;
    if (strcasecmp(value, "may") == 0)
        return SMTP_TLS_MAY;
    if (strcasecmp(value, "encrypt") == 0)
        return SMTP_TLS_ENCRYPT;
    if (strcasecmp(value, "verify") == 0 || strcasecmp(value, "secure") == 0)
        return SMTP_TLS_VERIFY;
    msg_fatal("%s = %s: expected none, may, encrypt or verify", name, value);
}

/* ms - a time parameter in milliseconds */
static long ms(struct config *cfg, const char *name)
{
    long long s = config_time(cfg, name);

    return s > 86400 ? 86400000L : (long) s * 1000;
}

/* smtp_init - settings, resolver, TLS context: while /etc and the CA file are reachable */
static void smtp_init(struct service *svc)
{
    struct config *cfg = svc->cfg;
    struct strbuf err = STRBUF_INIT;
    const char *level_param;

    server.svc = svc;
    server.lmtp = strcmp(program_name, "lmtp") == 0
        || (svc->service_name && strcmp(svc->service_name, "lmtp") == 0);
    server.proto = server.lmtp ? "LMTP" : "SMTP";
    level_param = server.lmtp ? "lmtp_tls_security_level" : "smtp_tls_security_level";
    server.tls_level = parse_level(level_param, config_str(cfg, level_param));
    server.helo_name = config_str(cfg, "smtp_helo_name");
    server.myhostname = config_str(cfg, "myhostname");
    server.connect_ms = ms(cfg, "smtp_connect_timeout");
    server.helo_ms = ms(cfg, "smtp_helo_timeout");
    server.starttls_ms = ms(cfg, "smtp_starttls_timeout");
    server.mail_ms = ms(cfg, "smtp_mail_timeout");
    server.rcpt_ms = ms(cfg, "smtp_rcpt_timeout");
    server.data_init_ms = ms(cfg, "smtp_data_init_timeout");
    server.data_xfer_ms = ms(cfg, "smtp_data_xfer_timeout");
    server.data_done_ms = ms(cfg, "smtp_data_done_timeout");
    server.quit_ms = ms(cfg, "smtp_quit_timeout");
    server.cache_ms = ms(cfg, "smtp_connection_cache_time_limit");
    server.reuse_limit = (unsigned) config_int(cfg, "smtp_connection_reuse_count_limit");
    server.dns = dns_resolver_create(svc->base, config_str(cfg, "smtp_dns_servers"), &err);
    if (server.dns == NULL)
        msg_fatal("smtp_dns_servers = %s: %s", config_str(cfg, "smtp_dns_servers"), sb_str(&err));
    dns_resolver_set_timeout(server.dns, 2000, 2);
    if (server.tls_level != SMTP_TLS_NONE)
        server.tls_ctx = smtp_tls_init(server.tls_level, config_str(cfg, "smtp_tls_CAfile"),
                                       config_str(cfg, "smtp_tls_protocols"));
    svc->app = &server;
    sb_free(&err);
}

/* smtp_active - deliveries in progress and qmgr connections open */
static unsigned smtp_active(struct service *svc)
{
    (void) svc;
    return server.deliveries + server.nqconns;
}

/* smtp_stop - let idle qmgr connections and cached servers go; deliveries run to their end */
static void smtp_stop(struct service *svc)
{
    struct smtp_qconn *qc, *next;

    (void) svc;
    smtp_session_cache_flush(&server);
    for (qc = server.qconns; qc; qc = next) {
        next = qc->next;
        if (qc->d == NULL)
            qconn_close(qc);
    }
}

static const struct service_ops smtp_ops = {
    .program = "smtp",
    .user_param = "mail_owner",
    .dir_param = "queue_directory",
    .init = smtp_init,
    .accept = smtp_accept,
    .active = smtp_active,
    .stop = smtp_stop,
};

/* main - run smtp (or lmtp) in the service skeleton */
int main(int argc, char **argv)
{
    struct service_ops ops = smtp_ops;
    char   *copy = xstrdup(argv[0]);
    int     status;

    if (strcmp(basename(copy), "lmtp") == 0) {
        program_name = "lmtp";
        ops.program = "lmtp";
    }
    status = service_main(argc, argv, &ops);
    smtp_session_cache_flush(&server);
    dns_resolver_free(server.dns);
    if (server.tls_ctx)
        SSL_CTX_free(server.tls_ctx);
    free(copy);
    return status;
}
