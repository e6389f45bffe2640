/*
 * smtp_session - one SMTP or LMTP conversation, and the cache of idle ones.
 *
 * Interface (smtp.h): smtp_session_start(), smtp_session_cache_flush().
 *
 * A session is a bufferevent to one server address. It goes through the
 * greeting, EHLO (LHLO for LMTP; HELO when EHLO is refused), STARTTLS per
 * smtp_tls_security_level (may: when offered; encrypt: required; verify:
 * required and the certificate must verify for the host name), EHLO again,
 * then one transaction per delivery: MAIL, one RCPT per recipient and DATA,
 * all written at once when the server offers PIPELINING (RFC 2920), else one
 * command per reply. Each stage has its own deadline (smtp_connect_timeout,
 * smtp_helo_timeout, smtp_mail_timeout, smtp_rcpt_timeout,
 * smtp_data_init_timeout, smtp_data_xfer_timeout, smtp_data_done_timeout).
 *
 * Replies are read as lines of at most SMTP_LINE_MAX bytes (a longer one ends
 * the session: we would lose track of what answers what) and at most
 * SMTP_REPLY_LINES lines. A 2xx to RCPT keeps the recipient for DATA; a 4xx
 * defers and a 5xx bounces it with the server's text. After the message, SMTP
 * has one reply for all accepted recipients, LMTP one per recipient.
 *
 * Before MAIL: a message larger than the server's SIZE bounces (5.3.4), SMTPUTF8
 * mail to a server without SMTPUTF8 bounces (5.6.7), a server that greets with
 * our own myhostname is a mail loop (5.4.6). BODY=8BITMIME, SMTPUTF8 and the DSN
 * parameters (RET, ENVID, NOTIFY, ORCPT) are passed on when the server offers
 * them. A failure before the transaction (connection refused, greeting 4xx,
 * TLS required but not offered, timeout) moves on to the next address; once
 * MAIL is sent, what is still open is deferred.
 *
 * A session whose transaction ended cleanly is kept idle for
 * smtp_connection_cache_time_limit under its destination key (at most
 * smtp_connection_reuse_count_limit transactions), so the next delivery to the
 * same nexthop skips connect, greeting, EHLO and TLS. A cached connection found
 * dead at MAIL is dropped and a fresh one made, without any result.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>

#include "log.h"
#include "mem.h"
#include "strbuf.h"
#include "tls.h"
#include "tls_event.h"
#include "xtext.h"

#include "smtp.h"

#define SMTP_LINE_MAX       2048
#define SMTP_REPLY_LINES    100
#define SMTP_REPLY_TEXT_MAX 900         /* kept for logs and reasons */
#define SMTP_CHUNK          (64 * 1024)
#define SMTP_OUT_HIGH       (256 * 1024)    /* body bytes queued before we wait */

enum sess_state {
    S_CONNECT, S_GREETING, S_EHLO, S_HELO, S_STARTTLS, S_HANDSHAKE,
    S_XACT, S_BODY, S_DOT, S_QUIT, S_IDLE,
};

static const char *state_words[] = {
    [S_CONNECT] = "connecting",
    [S_GREETING] = "receiving the initial server greeting",
    [S_EHLO] = "sending EHLO",
    [S_HELO] = "sending HELO",
    [S_STARTTLS] = "sending STARTTLS",
    [S_HANDSHAKE] = "in the TLS handshake",
    [S_XACT] = "sending MAIL FROM/RCPT TO/DATA",
    [S_BODY] = "sending message body",
    [S_DOT] = "sending end of data -- message may be sent more than once",
    [S_QUIT] = "sending QUIT",
    [S_IDLE] = "idle",
};

struct smtp_session {
    struct smtp_server *srv;
    struct smtp_session *prev, *next;   /* idle list */
    struct bufferevent *bev;
    struct event *idle_timer;
    struct smtp_delivery *d;
    char    key[1100];
    struct smtp_addr addr;
    int     port;
    char    relay[SMTP_HOST_MAX + 80];  /* "host[ip]:port" */
    enum sess_state state;
    /* the server's offer */
    bool    esmtp, pipelining, eightbit, smtputf8, dsn, starttls;
    long long size_max;
    bool    tls, tls_trusted;
    unsigned transactions;
    bool    reused;
    bool    in_read;                    /* session_read is on the stack: free later */
    bool    dead;                       /* freed while in_read */
    bool    size_offered;
    /* the reply being read */
    struct strbuf reply;
    int     code;
    unsigned lines;
    /* the transaction */
    size_t  ncmd, sent, acked;
    bool    mail_ok;
    size_t  accepted;
    bool   *rcpt_ok;
    size_t  dot_next;                   /* LMTP: the recipient the next reply after DATA is for */
    uint64_t body_pos, body_left;
    bool    bol;                        /* the body so far ends with LF */
    bool    prev_cr;                    /* ... or with CR */
};

static void session_read(struct bufferevent *bev, void *arg);
static void session_write(struct bufferevent *bev, void *arg);
static void session_event(struct bufferevent *bev, short what, void *arg);
static void connect_next(struct smtp_delivery *d);
static void xact_begin(struct smtp_session *s);

/* set_deadline - the current stage's time limit for reading and writing */
static void set_deadline(struct smtp_session *s, long ms)
{
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};

    bufferevent_set_timeouts(s->bev, &tv, &tv);
}

/* sendf - one command line */
static void sendf(struct smtp_session *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sendf(struct smtp_session *s, const char *fmt, ...)
{
    struct strbuf line = STRBUF_INIT;
    va_list ap;

    va_start(ap, fmt);
    sb_vprintf(&line, fmt, ap);
    va_end(ap);
    sb_puts(&line, "\r\n");
    bufferevent_write(s->bev, sb_str(&line), sb_len(&line));
    sb_free(&line);
}

/* idle_unlink - out of the cache list */
static void idle_unlink(struct smtp_session *s)
{
    struct smtp_server *srv = s->srv;

    if (s->state != S_IDLE)
        return;
    if (s->prev)
        s->prev->next = s->next;
    else
        srv->idle = s->next;
    if (s->next)
        s->next->prev = s->prev;
    s->prev = s->next = NULL;
    srv->nidle--;
    evtimer_del(s->idle_timer);
}

/* session_free - close the connection (the delivery, if any, is the caller's) */
static void session_free(struct smtp_session *s)
{
    idle_unlink(s);
    s->d = NULL;
    if (s->in_read) {
        /* session_read still holds s: it frees it when the handler returns. */
        s->dead = true;
        if (s->bev)
            bufferevent_disable(s->bev, EV_READ | EV_WRITE);
        return;
    }
    if (s->bev)
        bufferevent_free(s->bev);
    if (s->idle_timer)
        event_free(s->idle_timer);
    sb_free(&s->reply);
    free(s->rcpt_ok);
    free(s);
}

/* quit - a polite end: QUIT without waiting for its reply */
static void quit(struct smtp_session *s)
{
    if (s->bev && s->state != S_CONNECT && !s->tls && !s->dead) {
        sendf(s, "QUIT");
        /* Written into the socket now: the descriptor is closed right after. */
        evbuffer_write(bufferevent_get_output(s->bev), bufferevent_getfd(s->bev));
    }
    session_free(s);
}

/* reply_dsn - the enhanced status code of the reply, or the class default */
static void reply_dsn(const struct smtp_session *s, char *dsn, size_t size)
{
    const char *t = sb_str(&s->reply) + 4;
    size_t  n = 0;
    char    cls = (char) ('0' + s->code / 100);

    /* "X.Y.Z " with X the reply's class: RFC 3463 */
    if (sb_len(&s->reply) > 4 && t[0] == cls && t[1] == '.') {
        n = 2;
        while (n < 10 && ((t[n] >= '0' && t[n] <= '9') || t[n] == '.'))
            n++;
        if (n < 5 || (t[n] != ' ' && t[n] != '\0') || t[n - 1] == '.')
            n = 0;
    }
    if (n > 0 && n < size)
        snprintf(dsn, size, "%.*s", (int) n, t);
    else
        snprintf(dsn, size, "%c.0.0", cls);
}

/* settle_reply - recipient i gets the reply: 2 ok, 4 defer, 5 bounce */
static void settle_reply(struct smtp_session *s, size_t i, const char *command)
{
    char    dsn[16];

    reply_dsn(s, dsn, sizeof(dsn));
    if (s->code / 100 == 2)
        smtp_settle(s->d, i, DELIVERY_OK, dsn, s->relay, "%s", sb_str(&s->reply));
    else
        smtp_settle(s->d, i, s->code / 100 == 5 ? DELIVERY_BOUNCE : DELIVERY_DEFER,
                    s->code / 100 == 5 ? dsn : dsn[0] == '4' ? dsn : "4.0.0", s->relay,
                    "host %s said: %s (in reply to %s command)", s->relay, sb_str(&s->reply), command);
}

/* give_back - the session is done with its delivery: answer qmgr */
static void give_back(struct smtp_session *s)
{
    struct smtp_delivery *d = s->d;

    s->d = NULL;
    if (d)
        smtp_delivery_done(d);
}

/* idle_expired - a cached connection was not asked for in time */
static void idle_expired(evutil_socket_t fd, short what, void *arg)
{
    (void) fd;
    (void) what;
    quit(arg);
}

/* park - a clean end of transaction: cache the connection or close it */
static void park(struct smtp_session *s)
{
    struct smtp_server *srv = s->srv;
    struct timeval tv = {srv->cache_ms / 1000, (srv->cache_ms % 1000) * 1000};

    give_back(s);
    if (srv->cache_ms <= 0 || srv->svc->stopping
        || (srv->reuse_limit > 0 && s->transactions >= srv->reuse_limit)) {
        quit(s);
        return;
    }
    s->state = S_IDLE;
    set_deadline(s, srv->cache_ms + 60000);
    s->next = srv->idle;
    s->prev = NULL;
    if (srv->idle)
        srv->idle->prev = s;
    srv->idle = s;
    srv->nidle++;
    evtimer_add(s->idle_timer, &tv);
}

/*
 * fail - the conversation broke (why: what happened). Before the transaction
 * the next address is tried; after it, what is open is deferred (dsn).
 */
static void fail(struct smtp_session *s, const char *dsn, const char *why)
{
    struct smtp_delivery *d = s->d;
    enum sess_state st = s->state;

    if (st == S_IDLE) {
        session_free(s);                /* the server closed a cached connection */
        return;
    }
    s->d = NULL;
    session_free(s);
    if (d == NULL)
        return;
    sb_set(&d->why, why);
    snprintf(d->why_dsn, sizeof(d->why_dsn), "%s", dsn);
    if (st < S_XACT) {
        connect_next(d);
        return;
    }
    smtp_settle_rest(d, DELIVERY_DEFER, dsn, d->domain, why);
    smtp_delivery_done(d);
}

/* failf - fail with a formatted reason */
static void failf(struct smtp_session *s, const char *dsn, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void failf(struct smtp_session *s, const char *dsn, const char *fmt, ...)
{
    struct strbuf why = STRBUF_INIT;
    va_list ap;

    va_start(ap, fmt);
    sb_vprintf(&why, fmt, ap);
    va_end(ap);
    fail(s, dsn, sb_str(&why));
    sb_free(&why);
}

/* bounce_open - a verdict on the whole message before MAIL: settle all, end politely */
static void bounce_open(struct smtp_session *s, const char *dsn, const char *why)
{
    struct smtp_delivery *d = s->d;

    smtp_settle_rest(d, DELIVERY_BOUNCE, dsn, s->relay, why);
    s->d = NULL;
    quit(s);
    smtp_delivery_done(d);
}

/* ehlo_keyword - one line of the EHLO reply: note the extension */
static void ehlo_keyword(struct smtp_session *s, const char *line)
{
    const char *kw = line + 4;
    size_t  len = strcspn(kw, " ");

    if (len == 10 && strncasecmp(kw, "PIPELINING", 10) == 0)
        s->pipelining = true;
    else if (len == 8 && strncasecmp(kw, "8BITMIME", 8) == 0)
        s->eightbit = true;
    else if (len == 8 && strncasecmp(kw, "SMTPUTF8", 8) == 0)
        s->smtputf8 = true;
    else if (len == 3 && strncasecmp(kw, "DSN", 3) == 0)
        s->dsn = true;
    else if (len == 8 && strncasecmp(kw, "STARTTLS", 8) == 0)
        s->starttls = true;
    else if (len == 4 && strncasecmp(kw, "SIZE", 4) == 0) {
        long long n = 0;

        s->size_offered = true;
        for (const char *p = kw + 4 + (kw[4] == ' '); *p >= '0' && *p <= '9' && n < (1LL << 50); p++)
            n = n * 10 + (*p - '0');
        s->size_max = n;
    }
}

/* loops_back - the greeting or EHLO reply names us */
static bool loops_back(struct smtp_session *s)
{
    const char *name;
    size_t  len;

    if (sb_len(&s->reply) <= 4)
        return false;
    name = s->reply.data + 4;
    len = strcspn(name, " ");
    return len == strlen(s->srv->myhostname) && strncasecmp(name, s->srv->myhostname, len) == 0;
}

/* send_ehlo - EHLO (LHLO) with the extensions forgotten */
static void send_ehlo(struct smtp_session *s)
{
    s->pipelining = s->eightbit = s->smtputf8 = s->dsn = s->starttls = s->size_offered = false;
    s->size_max = 0;
    s->state = S_EHLO;
    set_deadline(s, s->srv->helo_ms);
    sendf(s, "%s %s", s->srv->lmtp ? "LHLO" : "EHLO", s->srv->helo_name);
}

/* start_tls - after 220 to STARTTLS: the TLS filter takes over the connection */
static void start_tls(struct smtp_session *s)
{
    SSL    *ssl = SSL_new(s->srv->tls_ctx);
    struct bufferevent *tb;

    if (ssl == NULL) {
        fail(s, "4.7.5", "cannot create a TLS session: out of memory");
        return;
    }
    bufferevent_setcb(s->bev, NULL, NULL, NULL, NULL);   /* the filter takes the callbacks */
    if (s->addr.host[0] && inet_pton(AF_INET, s->addr.host, &(struct in_addr) {0}) != 1
        && strchr(s->addr.host, ':') == NULL)
        SSL_set_tlsext_host_name(ssl, s->addr.host);
    tb = bufferevent_openssl_filter_new(s->srv->svc->base, s->bev, ssl, BUFFEREVENT_SSL_CONNECTING,
                                        BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS);
    if (tb == NULL) {
        SSL_free(ssl);
        fail(s, "4.7.5", "cannot start TLS: out of memory");
        return;
    }
    s->bev = tb;
    s->state = S_HANDSHAKE;
    bufferevent_setcb(tb, session_read, session_write, session_event, s);
    set_deadline(s, s->srv->starttls_ms);
    bufferevent_enable(tb, EV_READ | EV_WRITE);
}

/* tls_done - the handshake finished: judge, log, EHLO again */
static void tls_done(struct smtp_session *s)
{
    struct strbuf main_text = STRBUF_INIT, details = STRBUF_INIT;
    SSL    *ssl = bufferevent_openssl_get_ssl(s->bev);

    s->tls = true;
    s->tls_trusted = smtp_tls_verified(ssl, s->addr.host);
    tls_describe(ssl, &main_text, &details);
    msg_info("%s TLS connection established to %s: %s", s->tls_trusted ? "Trusted" : "Untrusted",
             s->relay, sb_str(&main_text));
    sb_free(&main_text);
    sb_free(&details);
    if (s->srv->tls_level == SMTP_TLS_VERIFY && !s->tls_trusted) {
        failf(s, "4.7.5", "Server certificate not verified (host %s)", s->relay);
        return;
    }
    send_ehlo(s);
}

/* after_ehlo - extensions known: STARTTLS if due, else the transaction */
static void after_ehlo(struct smtp_session *s)
{
    enum smtp_tls_level level = s->srv->tls_level;

    if (!s->tls && level != SMTP_TLS_NONE && s->srv->tls_ctx != NULL && s->addr.len != 0) {
        if (s->starttls) {
            s->state = S_STARTTLS;
            set_deadline(s, s->srv->starttls_ms);
            sendf(s, "STARTTLS");
            return;
        }
        if (level >= SMTP_TLS_ENCRYPT) {
            failf(s, "4.7.4", "TLS is required, but was not offered by host %s", s->relay);
            return;
        }
    }
    xact_begin(s);
}

/* orcpt_param - " ORCPT=type;xtext" from the stored "type;address" */
static void orcpt_param(const char *orcpt, struct strbuf *out)
{
    const char *semi = strchr(orcpt, ';');

    if (semi == NULL || semi == orcpt)
        return;
    sb_printf(out, " ORCPT=%.*s;", (int) (semi - orcpt), orcpt);
    xtext_encode(semi + 1, strlen(semi + 1), out);
}

/* send_cmd - transaction command k: 0 MAIL, 1..n RCPT, n+1 DATA */
static void send_cmd(struct smtp_session *s, size_t k)
{
    struct smtp_delivery *d = s->d;
    const struct queue_envelope *env = &d->qf.env;
    struct strbuf line = STRBUF_INIT;
    size_t  n = d->req.nrcpt;

    if (k == 0) {
        sb_printf(&line, "MAIL FROM:<%s>", d->req.sender ? d->req.sender : "");
        if (s->size_offered)
            sb_printf(&line, " SIZE=%llu", (unsigned long long) d->req.length);
        if (s->eightbit && env->body_type && strcasecmp(env->body_type, "8BITMIME") == 0)
            sb_puts(&line, " BODY=8BITMIME");
        if (s->smtputf8 && env->smtputf8)
            sb_puts(&line, " SMTPUTF8");
        if (s->dsn && env->ret)
            sb_printf(&line, " RET=%s", env->ret);
        if (s->dsn && env->envid) {
            sb_puts(&line, " ENVID=");
            xtext_encode(env->envid, strlen(env->envid), &line);
        }
    } else if (k <= n) {
        const struct queue_rcpt *qr = &env->rcpts[d->req.rcpts[k - 1].index];

        sb_printf(&line, "RCPT TO:<%s>", d->req.rcpts[k - 1].address);
        if (s->dsn && qr->notify)
            sb_printf(&line, " NOTIFY=%s", qr->notify);
        if (s->dsn && d->req.rcpts[k - 1].orcpt)
            orcpt_param(d->req.rcpts[k - 1].orcpt, &line);
    } else {
        sb_set(&line, "DATA");
    }
    sb_puts(&line, "\r\n");
    bufferevent_write(s->bev, sb_str(&line), sb_len(&line));
    sb_free(&line);
}

/* send_more - the commands that may go now: all when pipelining, else the next after each reply */
static void send_more(struct smtp_session *s)
{
    while (s->sent < s->ncmd && (s->pipelining || s->sent == s->acked)) {
        bool    is_data = s->sent == s->ncmd - 1;

        /* Without pipelining there is no point in DATA when nobody was accepted. */
        if (!s->pipelining && is_data && (!s->mail_ok || s->accepted == 0))
            return;
        if (!s->pipelining && s->sent > 0 && !s->mail_ok)
            return;
        send_cmd(s, s->sent++);
    }
}

/* xact_begin - checks on the whole message, then MAIL/RCPT/DATA */
static void xact_begin(struct smtp_session *s)
{
    struct smtp_delivery *d = s->d;
    char    why[SMTP_HOST_MAX + 300];

    if (s->size_max > 0 && d->req.length > (uint64_t) s->size_max) {
        snprintf(why, sizeof(why), "message size %llu exceeds size limit %lld of server %s",
                 (unsigned long long) d->req.length, s->size_max, s->relay);
        bounce_open(s, "5.3.4", why);
        return;
    }
    if (d->qf.env.smtputf8 && !s->smtputf8) {
        snprintf(why, sizeof(why), "SMTPUTF8 is required, but was not offered by host %s", s->relay);
        bounce_open(s, "5.6.7", why);
        return;
    }
    s->state = S_XACT;
    s->ncmd = d->req.nrcpt + 2;
    s->sent = s->acked = 0;
    s->mail_ok = false;
    s->accepted = 0;
    s->dot_next = 0;
    free(s->rcpt_ok);
    s->rcpt_ok = xcalloc(d->req.nrcpt, sizeof(*s->rcpt_ok));
    s->transactions++;
    set_deadline(s, s->srv->mail_ms);
    send_more(s);
}

/* push_body - message bytes into the output buffer, dot-stuffed, until it is full or the message ends */
static void push_body(struct smtp_session *s)
{
    struct evbuffer *out = bufferevent_get_output(s->bev);
    char   *buf;
    struct strbuf chunk = STRBUF_INIT;

    if (evbuffer_get_length(out) >= SMTP_OUT_HIGH)
        return;
    buf = xmalloc(SMTP_CHUNK);
    while (s->body_left > 0 && evbuffer_get_length(out) < SMTP_OUT_HIGH) {
        size_t  want = s->body_left < SMTP_CHUNK ? (size_t) s->body_left : SMTP_CHUNK;
        ssize_t n = pread(s->d->msg_fd, buf, want, (off_t) s->body_pos);

        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            free(buf);
            sb_free(&chunk);
            failf(s, "4.3.0", "cannot read the queue file: %s", n < 0 ? strerror(errno) : "short file");
            return;
        }
        sb_reset(&chunk);
        /* The queue file has the message with LF line ends: CRLF on the wire, dots doubled. */
        for (ssize_t i = 0; i < n; i++) {
            if (s->bol && buf[i] == '.')
                sb_putc(&chunk, '.');
            if (buf[i] == '\n' && !s->prev_cr)
                sb_putc(&chunk, '\r');
            sb_putc(&chunk, buf[i]);
            s->bol = buf[i] == '\n';
            s->prev_cr = buf[i] == '\r';
        }
        evbuffer_add(out, sb_str(&chunk), sb_len(&chunk));
        s->body_pos += (uint64_t) n;
        s->body_left -= (uint64_t) n;
    }
    free(buf);
    sb_free(&chunk);
    if (s->body_left == 0) {
        evbuffer_add(out, s->bol ? ".\r\n" : "\r\n.\r\n", s->bol ? 3 : 5);
        s->state = S_DOT;
        set_deadline(s, s->srv->data_done_ms);
    }
}

/* xact_reply - a reply within the transaction (command s->acked) */
static void xact_reply(struct smtp_session *s)
{
    struct smtp_delivery *d = s->d;
    size_t  k = s->acked++;
    size_t  n = d->req.nrcpt;

    if (k == 0) {
        s->mail_ok = s->code / 100 == 2;
        if (!s->mail_ok)
            for (size_t i = 0; i < n; i++)
                settle_reply(s, i, "MAIL FROM");
    } else if (k <= n) {
        if (s->mail_ok) {
            if (s->code / 100 == 2) {
                s->rcpt_ok[k - 1] = true;
                s->accepted++;
            } else {
                settle_reply(s, k - 1, "RCPT TO");
            }
        }
        set_deadline(s, s->srv->rcpt_ms);
    } else {
        /* The reply to DATA. */
        if (s->code == 354) {
            if (!s->mail_ok || s->accepted == 0) {
                sendf(s, ".");          /* nothing to send: end the empty message at once */
                s->state = S_QUIT;
                set_deadline(s, s->srv->quit_ms);
                return;
            }
            s->state = S_BODY;
            s->body_pos = d->req.offset;
            s->body_left = d->req.length;
            s->bol = true;
            s->prev_cr = false;
            set_deadline(s, s->srv->data_xfer_ms);
            push_body(s);
            return;
        }
        if (s->mail_ok)
            for (size_t i = 0; i < n; i++)
                if (s->rcpt_ok[i])
                    settle_reply(s, i, "DATA");
        give_back(s);
        quit(s);
        return;
    }
    if (s->acked == s->sent && s->sent < s->ncmd
        && (!s->mail_ok || (s->acked == s->ncmd - 1 && s->accepted == 0))) {
        /* Not pipelined, and MAIL failed or nobody was accepted: the transaction ends here. */
        give_back(s);
        quit(s);
        return;
    }
    if (s->acked == s->ncmd - 1)
        set_deadline(s, s->srv->data_init_ms);
    send_more(s);
}

/* dot_reply - a reply after the message: one for all (SMTP) or one per accepted recipient (LMTP) */
static void dot_reply(struct smtp_session *s)
{
    struct smtp_delivery *d = s->d;
    size_t  n = d->req.nrcpt;

    if (!s->srv->lmtp) {
        for (size_t i = 0; i < n; i++)
            if (s->rcpt_ok[i])
                settle_reply(s, i, "end of DATA");
        park(s);
        return;
    }
    while (s->dot_next < n && !s->rcpt_ok[s->dot_next])
        s->dot_next++;
    if (s->dot_next < n)
        settle_reply(s, s->dot_next++, "end of DATA");
    while (s->dot_next < n && !s->rcpt_ok[s->dot_next])
        s->dot_next++;
    if (s->dot_next >= n)
        park(s);
}

/*
 * looped - the server is ourselves. As the best destination that is a
 * configuration loop (bounced 5.4.6); after better ones failed we are a
 * backup MX of the domain: the mail waits (deferred with their failure), and
 * the addresses after ours (worse preference) are not tried, as Postfix
 * stops at its own MX preference.
 */
static void looped(struct smtp_session *s)
{
    struct smtp_delivery *d = s->d;
    char    why[SMTP_HOST_MAX + 80];

    if (d->next_addr <= 1 || sb_len(&d->why) == 0) {
        snprintf(why, sizeof(why), "mail for %s loops back to myself", d->domain);
        bounce_open(s, "5.4.6", why);
        return;
    }
    s->d = NULL;
    quit(s);
    smtp_settle_rest(d, DELIVERY_DEFER, d->why_dsn[0] == '4' ? d->why_dsn : "4.4.1", d->domain,
                     sb_str(&d->why));
    smtp_delivery_done(d);
}

/* reply_complete - a whole reply has arrived: act on it by state */
static void reply_complete(struct smtp_session *s)
{
    int     cls = s->code / 100;

    switch (s->state) {
    case S_GREETING:
        if (cls != 2) {
            if (cls == 5 && s->d->next_addr >= s->d->naddrs) {
                char    why[SMTP_REPLY_TEXT_MAX + 100];

                snprintf(why, sizeof(why), "host %s refused to talk to me: %s", s->relay, sb_str(&s->reply));
                bounce_open(s, "5.0.0", why);
                return;
            }
            failf(s, "4.0.0", "host %s refused to talk to me: %s", s->relay, sb_str(&s->reply));
            return;
        }
        if (loops_back(s)) {
            looped(s);
            return;
        }
        send_ehlo(s);
        return;
    case S_EHLO:
        if (cls == 2) {
            s->esmtp = true;
            if (loops_back(s)) {
                looped(s);
                return;
            }
            after_ehlo(s);
        } else if (cls == 5 && !s->srv->lmtp && !s->tls) {
            s->esmtp = false;
            s->state = S_HELO;
            sendf(s, "HELO %s", s->srv->helo_name);
        } else {
            failf(s, cls == 5 ? "5.0.0" : "4.0.0", "host %s refused to talk to me: %s", s->relay,
                  sb_str(&s->reply));
        }
        return;
    case S_HELO:
        if (cls != 2) {
            failf(s, "4.0.0", "host %s refused to talk to me: %s", s->relay, sb_str(&s->reply));
            return;
        }
        after_ehlo(s);
        return;
    case S_STARTTLS:
        if (s->code == 220) {
            start_tls(s);
        } else if (s->srv->tls_level >= SMTP_TLS_ENCRYPT) {
            failf(s, "4.7.4", "TLS is required, but host %s refused to start TLS: %s", s->relay,
                  sb_str(&s->reply));
        } else {
            xact_begin(s);
        }
        return;
    case S_XACT:
        xact_reply(s);
        return;
    case S_DOT:
        dot_reply(s);
        return;
    case S_QUIT:
        give_back(s);
        quit(s);
        return;
    case S_IDLE:
    case S_BODY:
    case S_CONNECT:
    case S_HANDSHAKE:
        break;
    }
    failf(s, "4.4.2", "unexpected reply from host %s while %s: %.200s", s->relay, state_words[s->state],
          sb_str(&s->reply));
}

/* take_line - one reply line; false when the session was ended */
static bool take_line(struct smtp_session *s, const char *line, size_t len)
{
    bool    last;

    if (len < 3 || line[0] < '2' || line[0] > '5' || line[1] < '0' || line[1] > '9'
        || line[2] < '0' || line[2] > '9' || (len > 3 && line[3] != ' ' && line[3] != '-')) {
        failf(s, "4.4.2", "malformed reply from host %s while %s: %.100s", s->relay,
              state_words[s->state], line);
        return false;
    }
    if (++s->lines > SMTP_REPLY_LINES) {
        failf(s, "4.4.2", "reply from host %s has more than %d lines", s->relay, SMTP_REPLY_LINES);
        return false;
    }
    last = len == 3 || line[3] == ' ';
    if (s->lines == 1)
        sb_reset(&s->reply);
    if (s->lines > 1 && (line[0] - '0') * 100 + (line[1] - '0') * 10 + (line[2] - '0') != s->code) {
        failf(s, "4.4.2", "inconsistent multi-line reply from host %s", s->relay);
        return false;
    }
    s->code = (line[0] - '0') * 100 + (line[1] - '0') * 10 + (line[2] - '0');
    if (s->state == S_EHLO && s->lines > 1)
        ehlo_keyword(s, line);
    if (s->lines == 1)
        sb_append(&s->reply, line, len > SMTP_REPLY_TEXT_MAX ? SMTP_REPLY_TEXT_MAX : len);
    else if (sb_len(&s->reply) + len < SMTP_REPLY_TEXT_MAX && s->state != S_EHLO) {
        sb_putc(&s->reply, ' ');
        sb_append(&s->reply, line + 4 > line + len ? line + len : line + 4, len > 4 ? len - 4 : 0);
    }
    if (!last)
        return true;
    s->lines = 0;
    reply_complete(s);
    return !s->dead;
}

/* session_read - reply lines as they come (pipelined replies arrive together) */
static void session_read(struct bufferevent *bev, void *arg)
{
    struct smtp_session *s = arg;
    struct evbuffer *in = bufferevent_get_input(bev);

    s->in_read = true;
    while (!s->dead) {
        size_t  len;
        char   *line = evbuffer_readln(in, &len, EVBUFFER_EOL_CRLF);

        if (line == NULL) {
            if (evbuffer_get_length(in) > SMTP_LINE_MAX)
                failf(s, "4.4.2", "reply line from host %s longer than %d bytes", s->relay, SMTP_LINE_MAX);
            break;
        }
        if (s->state == S_IDLE || s->state == S_BODY || s->state == S_CONNECT
            || s->state == S_HANDSHAKE) {
            free(line);
            if (s->state == S_IDLE)
                session_free(s);        /* a cached server talks out of turn: drop it */
            else
                failf(s, "4.4.2", "host %s talks out of turn while %s", s->relay, state_words[s->state]);
            break;
        }
        if (len > SMTP_LINE_MAX) {
            free(line);
            failf(s, "4.4.2", "reply line from host %s longer than %d bytes", s->relay, SMTP_LINE_MAX);
            break;
        }
        take_line(s, line, len);
        free(line);
    }
    s->in_read = false;
    if (s->dead)
        session_free(s);
}

/* session_write - the output drained: more of the body */
static void session_write(struct bufferevent *bev, void *arg)
{
    struct smtp_session *s = arg;

    (void) bev;
    if (s->state == S_BODY)
        push_body(s);
}

/* session_event - connected, TLS up, closed, failed, timed out */
static void session_event(struct bufferevent *bev, short what, void *arg)
{
    struct smtp_session *s = arg;
    struct strbuf why = STRBUF_INIT;

    if (what & BEV_EVENT_CONNECTED) {
        if (s->state == S_HANDSHAKE) {
            tls_done(s);
        } else {
            s->state = S_GREETING;
            set_deadline(s, s->srv->helo_ms);
        }
        sb_free(&why);
        return;
    }
    if (s->state == S_IDLE) {
        session_free(s);
        sb_free(&why);
        return;
    }
    if (s->reused && s->state == S_XACT && s->acked == 0) {
        /* The cached connection died while idle: a fresh one, as if nothing happened. */
        struct smtp_delivery *d = s->d;

        s->d = NULL;
        session_free(s);
        d->next_addr = 0;
        connect_next(d);
        sb_free(&why);
        return;
    }
    if (what & BEV_EVENT_TIMEOUT) {
        sb_printf(&why, "conversation with %s timed out while %s", s->relay, state_words[s->state]);
    } else if (s->state == S_CONNECT) {
        sb_printf(&why, "connect to %s: %s", s->relay,
                  EVUTIL_SOCKET_ERROR() ? strerror(EVUTIL_SOCKET_ERROR()) : "Connection refused");
    } else if (s->state == S_HANDSHAKE) {
        sb_printf(&why, "TLS handshake with %s failed: ", s->relay);
        tls_event_error(bev, &why);
    } else {
        sb_printf(&why, "lost connection with %s while %s", s->relay, state_words[s->state]);
    }
    if (s->d && s->state <= S_GREETING)
        s->d->connect_failed = true;
    fail(s, s->state <= S_GREETING ? "4.4.1" : "4.4.2", sb_str(&why));
    sb_free(&why);
}

/* connect_next - the next address of d, or the end: defer with the last reason */
static void connect_next(struct smtp_delivery *d)
{
    struct smtp_server *srv = d->srv;
    struct smtp_session *s;
    struct smtp_addr *a;
    struct sockaddr_un sun;

    if (d->next_addr >= d->naddrs) {
        if (sb_len(&d->why) == 0)
            sb_printf(&d->why, "no address to deliver to for %s", d->domain);
        smtp_settle_rest(d, DELIVERY_DEFER, d->why_dsn[0] == '4' ? d->why_dsn : "4.4.1", d->domain,
                         sb_str(&d->why));
        smtp_delivery_done(d);
        return;
    }
    a = &d->addrs[d->next_addr++];
    s = xcalloc(1, sizeof(*s));
    s->srv = srv;
    s->d = d;
    s->addr = *a;
    s->port = d->port;
    s->state = S_CONNECT;
    sb_init(&s->reply);
    snprintf(s->key, sizeof(s->key), "%s", d->key);
    smtp_addr_text(a, d->port, s->relay, sizeof(s->relay));
    s->idle_timer = evtimer_new(srv->svc->base, idle_expired, s);
    s->bev = bufferevent_socket_new(srv->svc->base, -1, BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS);
    if (s->bev == NULL || s->idle_timer == NULL)
        msg_fatal("bufferevent_socket_new: out of memory");
    bufferevent_setcb(s->bev, session_read, session_write, session_event, s);
    bufferevent_setwatermark(s->bev, EV_WRITE, SMTP_OUT_HIGH / 2, 0);
    set_deadline(s, srv->connect_ms);
    bufferevent_enable(s->bev, EV_READ | EV_WRITE);
    if (a->len == 0) {
        memset(&sun, 0, sizeof(sun));
        sun.sun_family = AF_UNIX;
        snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", a->path);
        if (bufferevent_socket_connect(s->bev, (struct sockaddr *) &sun, sizeof(sun)) != 0) {
            failf(s, "4.4.1", "connect to %s: %s", a->path, strerror(errno));
            return;
        }
    } else if (bufferevent_socket_connect(s->bev, (struct sockaddr *) &a->ss, (int) a->len) != 0) {
        failf(s, "4.4.1", "connect to %s: %s", s->relay, strerror(errno));
        return;
    }
}

/* smtp_session_start - a cached connection for d->key, else connect to d->addrs in turn */
void smtp_session_start(struct smtp_delivery *d)
{
    for (struct smtp_session *s = d->srv->idle; s; s = s->next) {
        if (strcmp(s->key, d->key) != 0)
            continue;
        idle_unlink(s);
        s->d = d;
        s->reused = true;
        s->lines = 0;
        xact_begin(s);
        return;
    }
    d->next_addr = 0;
    connect_next(d);
}

/* smtp_session_cache_flush - close every idle connection */
void smtp_session_cache_flush(struct smtp_server *srv)
{
    while (srv->idle)
        quit(srv->idle);
}
