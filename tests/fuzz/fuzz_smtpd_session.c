/*
 * fuzz_smtpd_session - the SMTP command parser and session state machine
 * (smtpd/smtpd_session.c with smtpd_data.c for DATA/BDAT), run exactly as in
 * smtpd: a real session on one end of a socketpair in a libevent loop, the
 * fuzzer's bytes written to the other end as a client would send them (then
 * EOF), and every reply read and dropped. Commands, pipelining, over-long
 * lines, MAIL/RCPT paths and ESMTP parameters, DATA with dot-stuffing and
 * bare CR/LF, BDAT chunks, error limits: all reachable.
 *
 * The queue store is replaced by one that keeps nothing (DESIGN's queue
 * file code has its own target); its commit answers from the event loop, as
 * the real one does. No restrictions (srv.check NULL: any recipient), no TLS,
 * no SASL: those need daemons this process does not have.
 */
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/event.h>
#include <event2/util.h>

#include "fuzz_util.h"
#include "mem.h"
#include "service.h"
#include "smtpd.h"

static struct event_base *base;
static struct service svc;
static struct smtpd_server srv;

/* ---- a store that keeps nothing ---- */

struct mem_msg { size_t size; };
struct mem_commit { smtpd_store_done_fn done; void *ctx; bool forgotten; };

static void *mem_open(const struct smtpd_envelope *env, struct strbuf *reply)
{
    (void) reply;
    if (env->rcpt_count == 0)
        abort();                        /* DATA without a recipient must not get this far */
    return xcalloc(1, sizeof(struct mem_msg));
}

static int mem_write(void *msg, const char *data, size_t len)
{
    struct mem_msg *m = msg;

    (void) data;
    if (len > SMTPD_DATA_CHUNK)
        abort();
    m->size += len;
    return 0;
}

static void mem_commit_done(evutil_socket_t fd, short what, void *arg)
{
    struct mem_commit *c = arg;

    (void) fd;
    (void) what;
    if (!c->forgotten)
        c->done(c->ctx, "250 2.0.0 Ok: queued as 0123456789ABCDEF01");
    free(c);
}

static void *mem_commit(void *msg, smtpd_store_done_fn done, void *ctx)
{
    struct mem_commit *c = xcalloc(1, sizeof(*c));
    struct timeval now = {0, 0};

    free(msg);
    c->done = done;
    c->ctx = ctx;
    if (event_base_once(base, -1, EV_TIMEOUT, mem_commit_done, c, &now) != 0)
        abort();
    return c;
}

static void mem_forget(void *commit)
{
    ((struct mem_commit *) commit)->forgotten = true;
}

static void mem_discard(void *msg)
{
    free(msg);
}

static const struct smtpd_store mem_store = {
    "memory", mem_open, mem_write, mem_commit, mem_forget, mem_discard,
};

/* ---- the client end ---- */

struct client {
    int     fd;
    const uint8_t *data;
    size_t  left;
    struct event *ev;
};

/* client_io - write what is left of the input, read and drop the replies */
static void client_io(evutil_socket_t fd, short what, void *arg)
{
    struct client *c = arg;
    char    buf[16384];

    if (what & EV_READ) {
        ssize_t n;

        while ((n = read(fd, buf, sizeof(buf))) > 0)
            /* void */ ;
        if (n == 0 && c->left == 0) {
            event_del(c->ev);           /* the server closed: an EOF event would fire forever */
            return;
        }
    }
    if ((what & EV_WRITE) && c->left > 0) {
        ssize_t n = write(fd, c->data, c->left);

        if (n > 0) {
            c->data += n;
            c->left -= (size_t) n;
        }
        if (c->left == 0) {
            shutdown(fd, SHUT_WR);      /* the client is done: EOF after its last byte */
            event_del(c->ev);
            event_assign(c->ev, base, fd, EV_READ | EV_PERSIST, client_io, c);
            event_add(c->ev, NULL);
        }
    }
}

/* setup - once per process: the server as smtpd.c sets it up from a default main.cf */
static void setup(void)
{
    struct smtpd_settings *set = &srv.set;

    fuzz_quiet_log();
    base = event_base_new();
    svc.base = base;
    svc.service_name = "smtp";
    srv.svc = &svc;
    srv.store = &mem_store;
    set->hostname = "mx.example.test";
    set->banner = "mx.example.test ESMTP Postern";
    set->message_size_limit = 100000;
    set->line_limit = 2048;
    set->timeout = 300;
    set->recipient_limit = 50;
    set->hard_error_limit = 20;
    set->soft_error_limit = 10;
    set->error_sleep = 0;               /* no real time may pass in a fuzzer */
    set->smtputf8_enable = true;
    set->myorigin = "example.test";
    set->mail_name = "Postern";
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct sockaddr_storage peer;
    struct sockaddr_in *sin = (struct sockaddr_in *) &peer;
    struct client c;
    int     sv[2];

    if (base == NULL)
        setup();
    if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) != 0)
        abort();
    evutil_make_socket_nonblocking(sv[0]);
    evutil_make_socket_nonblocking(sv[1]);
    memset(&peer, 0, sizeof(peer));
    sin->sin_family = AF_INET;
    sin->sin_port = htons(40000);
    sin->sin_addr.s_addr = htonl(0xc0000201);      /* 192.0.2.1 */
    smtpd_session_start(&srv, sv[0], &peer, sizeof(*sin));

    c.fd = sv[1];
    c.data = data;
    c.left = size;
    c.ev = event_new(base, sv[1], EV_READ | EV_WRITE | EV_PERSIST, client_io, &c);
    if (size == 0) {
        shutdown(sv[1], SHUT_WR);
        event_assign(c.ev, base, sv[1], EV_READ | EV_PERSIST, client_io, &c);
    }
    event_add(c.ev, NULL);
    /* until the session has ended (EOF, QUIT or the error limit) */
    while (srv.session_count > 0)
        if (event_base_loop(base, EVLOOP_ONCE) != 0)
            abort();
    event_free(c.ev);
    /* answers to forgotten commits still queued in the loop */
    event_base_loop(base, EVLOOP_NONBLOCK);
    close(sv[1]);
    return 0;
}
