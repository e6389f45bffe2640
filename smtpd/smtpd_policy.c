/*
 * smtpd_policy - the client side of Postfix's policy delegation protocol,
 * for check_policy_service (lib/policy_proto.h speaks the protocol).
 *
 * Interface (smtpd.h): smtpd_policy_open(), smtpd_policy_free(),
 * smtpd_policy_ask(), smtpd_policy_cancel().
 *
 * One service is "unix:PATH" (relative to the queue directory, where smtpd
 * is chrooted, as Postfix has it: unix:private/policy) or "inet:HOST:PORT"
 * (the host is resolved once at start, before chroot). Each smtpd process
 * keeps one connection per service and reuses it for every request of every
 * session; requests wait their turn in a queue and go out one at a time, as
 * the protocol is a strict question/answer exchange. A connection the
 * service closed while idle is noticed and reopened at the next request; a
 * request whose connection failed after it was sent is tried once more on a
 * fresh connection (smtpd_policy_service_try_limit = 2 in Postfix).
 *
 * Each request has smtpd_policy_service_timeout from the moment it is sent
 * (connecting included); on a timeout, a protocol error or a failure to
 * connect the callback gets action NULL and a reason, and the connection is
 * dropped, since a late answer would be taken for the next request's. The
 * caller then applies smtpd_policy_service_default_action. A connection idle
 * for smtpd_policy_service_max_idle is closed.
 *
 * Callbacks always come from the event loop, never from smtpd_policy_ask().
 */
#include <errno.h>
#include <netdb.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

#include "log.h"
#include "mem.h"
#include "policy_proto.h"
#include "service.h"
#include "strbuf.h"

#include "smtpd.h"

#define POLICY_TRIES    2

struct smtpd_policy_req {
    struct smtpd_policy *p;
    struct smtpd_policy_req *next;
    struct strbuf wire;                 /* the request as sent */
    smtpd_policy_fn fn;
    void   *ctx;
    int     tries;
};

struct smtpd_policy {
    struct service *svc;
    char   *spec;                       /* "unix:private/policy", for logs */
    struct sockaddr_storage addr;
    socklen_t addr_len;
    long long timeout;                  /* seconds */
    long long max_idle;
    struct bufferevent *bev;            /* NULL: not connected */
    bool    connected;                  /* the connect completed */
    bool    used;                       /* an answer came on this connection */
    struct policy_reader rd;
    struct smtpd_policy_req *head, *tail;   /* head is in flight when sent is set */
    bool    sent;
    struct event *timer;                /* the request's deadline, or the idle limit */
    struct event *fail_ev;              /* fail the head from the loop (connect failed at once) */
    struct strbuf fail_why;
};

static void pump(struct smtpd_policy *p);

/* smtpd_policy_open - parse "unix:PATH" or "inet:HOST:PORT"; NULL with err */
struct smtpd_policy *smtpd_policy_open(struct service *svc, const char *spec,
                                       long long timeout, long long max_idle,
                                       struct strbuf *err)
{
    struct smtpd_policy *p;

    if (strncmp(spec, "unix:", 5) == 0) {
        struct sockaddr_un *sun;
        size_t  len = strlen(spec + 5);

        p = xcalloc(1, sizeof(*p));
        sun = (struct sockaddr_un *) &p->addr;
        if (len == 0 || len >= sizeof(sun->sun_path)) {
            sb_printf(err, "check_policy_service %s: bad socket path length", spec);
            free(p);
            return NULL;
        }
        sun->sun_family = AF_UNIX;
        memcpy(sun->sun_path, spec + 5, len + 1);
        p->addr_len = (socklen_t) (offsetof(struct sockaddr_un, sun_path) + len + 1);
    } else if (strncmp(spec, "inet:", 5) == 0) {
        char    host[256];
        const char *hp = spec + 5;
        const char *colon;
        struct addrinfo hints, *res = NULL;
        int     gai;
        size_t  hlen;

        if (*hp == '[') {
            const char *end = strchr(hp, ']');

            if (end == NULL || end[1] != ':') {
                sb_printf(err, "check_policy_service %s: expected inet:[ADDRESS]:PORT", spec);
                return NULL;
            }
            hlen = (size_t) (end - hp - 1);
            hp++;
            colon = end + 1;
        } else {
            colon = strrchr(hp, ':');
            if (colon == NULL) {
                sb_printf(err, "check_policy_service %s: expected inet:HOST:PORT", spec);
                return NULL;
            }
            hlen = (size_t) (colon - hp);
        }
        if (hlen == 0 || hlen >= sizeof(host) || colon[1] == 0) {
            sb_printf(err, "check_policy_service %s: expected inet:HOST:PORT", spec);
            return NULL;
        }
        memcpy(host, hp, hlen);
        host[hlen] = 0;
        memset(&hints, 0, sizeof(hints));
        hints.ai_socktype = SOCK_STREAM;
        /* Resolved now: after chroot there is no resolver configuration to read. */
        if ((gai = getaddrinfo(host, colon + 1, &hints, &res)) != 0) {
            sb_printf(err, "check_policy_service %s: %s", spec, gai_strerror(gai));
            return NULL;
        }
        p = xcalloc(1, sizeof(*p));
        memcpy(&p->addr, res->ai_addr, res->ai_addrlen);
        p->addr_len = res->ai_addrlen;
        freeaddrinfo(res);
    } else {
        sb_printf(err, "check_policy_service %s: expected unix:PATH or inet:HOST:PORT", spec);
        return NULL;
    }
    p->svc = svc;
    p->spec = xstrdup(spec);
    p->timeout = timeout > 0 ? timeout : 1;
    p->max_idle = max_idle > 0 ? max_idle : 1;
    policy_reader_init(&p->rd);
    sb_init(&p->fail_why);
    return p;
}

/* disconnect - drop the connection (the reader starts afresh) */
static void disconnect(struct smtpd_policy *p)
{
    if (p->bev != NULL) {
        bufferevent_free(p->bev);
        p->bev = NULL;
    }
    p->connected = false;
    p->used = false;
    p->sent = false;
    policy_reader_free(&p->rd);
    policy_reader_init(&p->rd);
    if (p->timer != NULL)
        evtimer_del(p->timer);
}

/* req_free - release a request taken off the queue */
static void req_free(struct smtpd_policy_req *r)
{
    sb_free(&r->wire);
    free(r);
}

/* pop_head - take the head request off the queue */
static struct smtpd_policy_req *pop_head(struct smtpd_policy *p)
{
    struct smtpd_policy_req *r = p->head;

    if (r != NULL) {
        p->head = r->next;
        if (p->head == NULL)
            p->tail = NULL;
        r->next = NULL;
    }
    p->sent = false;
    return r;
}

/* fail_head - the request in flight failed: try once more, or tell the caller */
static void fail_head(struct smtpd_policy *p, const char *why, bool may_retry)
{
    struct smtpd_policy_req *r = p->head;

    disconnect(p);
    if (r == NULL)
        return;
    if (may_retry && r->tries < POLICY_TRIES) {
        msg_verbose("policy service %s: %s; trying again", p->spec, why);
        pump(p);
        return;
    }
    pop_head(p);
    msg_warn("problem talking to server %s: %s", p->spec, why);
    if (r->fn != NULL)
        r->fn(r->ctx, NULL, why);
    req_free(r);
    pump(p);
}

/* on_read - the service answered (part of) a block */
static void on_read(struct bufferevent *bev, void *arg)
{
    struct smtpd_policy *p = arg;
    struct evbuffer *in = bufferevent_get_input(bev);
    struct strbuf err = STRBUF_INIT;

    while (evbuffer_get_length(in) > 0) {
        struct evbuffer_iovec v;
        bool    done;
        long    used;

        if (evbuffer_peek(in, -1, NULL, &v, 1) < 1)
            break;
        used = policy_reader_feed(&p->rd, v.iov_base, v.iov_len, &done, &err);
        if (used < 0 || !p->sent) {
            /* Junk, or words when nothing was asked: this connection cannot be trusted. */
            if (used >= 0)
                sb_set(&err, "unexpected data from the service");
            if (p->sent) {
                fail_head(p, sb_str(&err), false);
            } else {
                msg_warn("policy service %s: %s", p->spec, sb_str(&err));
                disconnect(p);
                pump(p);
            }
            sb_free(&err);
            return;
        }
        evbuffer_drain(in, (size_t) used);
        if (done) {
            struct policy_block b;
            struct smtpd_policy_req *r;
            const char *action;

            policy_reader_take(&p->rd, &b);
            action = policy_block_get(&b, "action");
            if (action == NULL) {
                policy_block_free(&b);
                fail_head(p, "the answer has no action= attribute", false);
                sb_free(&err);
                return;
            }
            r = pop_head(p);
            p->used = true;
            evtimer_del(p->timer);
            if (r->fn != NULL)
                r->fn(r->ctx, action, "");
            req_free(r);
            policy_block_free(&b);
            if (p->bev == NULL)
                break;
            pump(p);
            if (!p->sent)
                break;
        }
    }
    sb_free(&err);
}

/* on_event - connected, or the connection ended */
static void on_event(struct bufferevent *bev, short what, void *arg)
{
    struct smtpd_policy *p = arg;
    char    why[256];

    (void) bev;
    if (what & BEV_EVENT_CONNECTED) {
        p->connected = true;
        return;
    }
    if (what & BEV_EVENT_EOF)
        snprintf(why, sizeof(why), "the service closed the connection");
    else
        snprintf(why, sizeof(why), "%s", strerror(EVUTIL_SOCKET_ERROR()));
    if (!p->sent) {
        /* An idle connection the service closed: nothing lost. */
        disconnect(p);
        pump(p);
        return;
    }
    /* A reused connection may have been closed just before we wrote: retry once. */
    fail_head(p, why, true);
}

/* on_timer - the request in flight took too long, or the connection was idle too long */
static void on_timer(evutil_socket_t fd, short what, void *arg)
{
    struct smtpd_policy *p = arg;

    (void) fd;
    (void) what;
    if (p->sent) {
        fail_head(p, "timeout", false);
        return;
    }
    msg_verbose("policy service %s: closing an idle connection", p->spec);
    disconnect(p);
}

/* on_fail - a connection could not even be started: report from the loop */
static void on_fail(evutil_socket_t fd, short what, void *arg)
{
    struct smtpd_policy *p = arg;
    char    why[256];

    (void) fd;
    (void) what;
    snprintf(why, sizeof(why), "%s", sb_str(&p->fail_why));
    fail_head(p, why, false);
}

/* connect_service - start a non-blocking connection; false if it failed at once */
static bool connect_service(struct smtpd_policy *p, struct strbuf *why)
{
    struct event_base *base = p->svc->base;

    p->bev = bufferevent_socket_new(base, -1, BEV_OPT_CLOSE_ON_FREE);
    if (p->bev == NULL) {
        sb_set(why, "out of memory");
        return false;
    }
    bufferevent_setcb(p->bev, on_read, NULL, on_event, p);
    bufferevent_setwatermark(p->bev, EV_READ, 0, POLICY_MAX_LINE * 4);
    if (bufferevent_socket_connect(p->bev, (struct sockaddr *) &p->addr, (int) p->addr_len) < 0) {
        sb_printf(why, "cannot connect: %s", strerror(errno ? errno : ECONNREFUSED));
        bufferevent_free(p->bev);
        p->bev = NULL;
        return false;
    }
    bufferevent_enable(p->bev, EV_READ | EV_WRITE);
    return true;
}

/* pump - send the head request if nothing is in flight; arm the idle timer otherwise */
static void pump(struct smtpd_policy *p)
{
    struct timeval tv;
    struct smtpd_policy_req *r = p->head;

    if (p->timer == NULL) {
        p->timer = evtimer_new(p->svc->base, on_timer, p);
        p->fail_ev = evtimer_new(p->svc->base, on_fail, p);
        if (p->timer == NULL || p->fail_ev == NULL)
            msg_fatal("policy service %s: out of memory", p->spec);
    }
    if (p->sent)
        return;
    if (r == NULL) {
        if (p->bev != NULL) {
            tv.tv_sec = (time_t) p->max_idle;
            tv.tv_usec = 0;
            evtimer_add(p->timer, &tv);
        }
        return;
    }
    if (p->bev == NULL) {
        sb_reset(&p->fail_why);
        if (!connect_service(p, &p->fail_why)) {
            struct timeval zero = {0, 0};

            /* Sent, as far as the bookkeeping goes: on_fail ends it. */
            p->sent = true;
            r->tries = POLICY_TRIES;
            evtimer_add(p->fail_ev, &zero);
            return;
        }
    }
    r->tries++;
    p->sent = true;
    bufferevent_write(p->bev, sb_str(&r->wire), sb_len(&r->wire));
    tv.tv_sec = (time_t) p->timeout;
    tv.tv_usec = 0;
    evtimer_add(p->timer, &tv);
}

/* smtpd_policy_ask - queue a request; fn comes later from the event loop */
struct smtpd_policy_req *smtpd_policy_ask(struct smtpd_policy *p, const struct policy_block *b,
                                          smtpd_policy_fn fn, void *ctx)
{
    struct smtpd_policy_req *r = xcalloc(1, sizeof(*r));

    r->p = p;
    r->fn = fn;
    r->ctx = ctx;
    sb_init(&r->wire);
    policy_block_format(b, &r->wire);
    if (p->tail != NULL)
        p->tail->next = r;
    else
        p->head = r;
    p->tail = r;
    pump(p);
    return r;
}

/* smtpd_policy_cancel - the caller is gone: no callback for r */
void smtpd_policy_cancel(struct smtpd_policy_req *r)
{
    struct smtpd_policy *p = r->p;
    struct smtpd_policy_req **pp;

    if (r == p->head && p->sent) {
        /* Its answer may still come: keep the slot, just forget who asked. */
        r->fn = NULL;
        return;
    }
    for (pp = &p->head; *pp != NULL; pp = &(*pp)->next) {
        if (*pp == r) {
            *pp = r->next;
            break;
        }
    }
    p->tail = NULL;
    for (struct smtpd_policy_req *t = p->head; t != NULL; t = t->next)
        p->tail = t;
    req_free(r);
}

/* smtpd_policy_free - at exit: drop the connection and any requests */
void smtpd_policy_free(struct smtpd_policy *p)
{
    if (p == NULL)
        return;
    disconnect(p);
    while (p->head != NULL)
        req_free(pop_head(p));
    if (p->timer != NULL)
        event_free(p->timer);
    if (p->fail_ev != NULL)
        event_free(p->fail_ev);
    policy_reader_free(&p->rd);
    sb_free(&p->fail_why);
    free(p->spec);
    free(p);
}
