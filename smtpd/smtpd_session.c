/*
 * smtpd_session - one SMTP connection: command reader, state machine, replies.
 *
 * Interface (smtpd.h): smtpd_session_start(), smtpd_session_stop_all().
 *
 * Each session is a libevent bufferevent; nothing blocks, so one process
 * serves many clients. Pipelined commands are taken from the input buffer in
 * order. Memory per session is bounded both ways: libevent stops reading when
 * the input buffer reaches a high watermark, and we stop taking commands while
 * more than SESSION_OUT_HIGH bytes of replies wait for a client that does not
 * read them. A command line longer than line_length_limit is skipped up to the
 * next LF as it arrives, never buffered whole, and answered with 500 once it
 * ends, so we do not lose synchronization with the client.
 *
 * Addresses without a domain get "@myorigin" and lose a trailing dot on the
 * domain before anything looks at them (smtpd_canonical_address); RCPT then
 * asks smtpd_check.c whether the recipient is acceptable from this client.
 *
 * Replies carry RFC 3463 enhanced status codes and Postfix's wording. Every
 * session is logged: "connect from unknown[addr]:port" (no DNS lookups yet,
 * so every client is "unknown" as in Postfix), how it ended if not by QUIT
 * ("lost connection/timeout/too many errors after CMD"), rejected recipients
 * and messages ("NOQUEUE: reject: RCPT from ..."), and "disconnect from ...
 * ehlo=1 mail=1 ... commands=N" with ok/total per command as Postfix counts
 * them.
 *
 * Stop: idle sessions get "421 4.3.2 Service shutting down"; a session inside
 * DATA finishes its message first and gets the 421 after the final reply.
 *
 * Restrictions (smtpd_check.c) run at connect, HELO, MAIL, RCPT, DATA (or the
 * first BDAT) and the end of the message; with smtpd_delay_reject (the
 * default) the connect, HELO and MAIL verdicts wait for RCPT. A check may
 * need a DNS or policy answer: the command then waits in PHASE_CHECK, reading
 * nothing more from the client, and its second half (the *_checked
 * functions) runs when the evaluator resumes it, so pipelined commands are
 * still answered in order. With smtpd_delay_reject = no, a client refused at
 * connect gets the rejection instead of the 220 greeting and "503 5.7.0
 * Error: access denied for NAME[ADDR]" for every command but QUIT.
 *
 * Errors (RFC 5321 replies to client mistakes and refusals) are counted:
 * from smtpd_soft_error_limit on, every reply waits smtpd_error_sleep_time
 * (a timer holds the reply and the session reads nothing meanwhile; nothing
 * sleeps), and at smtpd_hard_error_limit the session ends with 421. A
 * message delivered resets the count, as in Postfix. Clients over the
 * per-client connection count or rate (smtpd_anvil.c) get 421 at connect.
 *
 * ESMTP extensions are advertised in EHLO only when usable: STARTTLS and
 * AUTH as above; PIPELINING, SIZE, ENHANCEDSTATUSCODES, 8BITMIME (BODY=7BIT
 * or 8BITMIME), DSN (RFC 3461: RET and ENVID on MAIL, NOTIFY and ORCPT on
 * RCPT, validated, xtext-decoded and stored in the queue file), SMTPUTF8
 * (RFC 6531: a UTF-8 address needs the SMTPUTF8 parameter on MAIL, else
 * "553 5.6.7"), and CHUNKING (RFC 3030: "BDAT size [LAST]"; the chunk is
 * read to its end even when the command is refused, so the session stays in
 * step; BDAT and DATA do not mix in one transaction; a size that cannot be
 * parsed ends the session with 521, as nothing after it can be understood).
 *
 * TLS (RFC 3207, RFC 8314). STARTTLS is offered when a certificate is loaded
 * and smtpd_tls_security_level is may or encrypt; with encrypt, MAIL, AUTH
 * and VRFY before TLS get "530 5.7.0 Must issue a STARTTLS command first".
 * After "220 Ready to start TLS" we stop reading, and anything the client
 * pipelined behind STARTTLS is thrown away unanswered: it was sent in clear
 * text and could have been injected by a man in the middle, who would then
 * see its commands run inside the protected session (CVE-2011-0411). Once the
 * 220 is written the socket moves to a TLS bufferevent (on a duplicate
 * descriptor, so that each bufferevent owns and closes its own); after the
 * handshake everything learned in clear text is forgotten and the client
 * must send EHLO again. With smtpd_tls_wrappermode the handshake comes
 * first and the 220 greeting follows it (port 465).
 *
 * AUTH (RFC 4954) is offered when smtpd_sasl_auth_enable is set, and only
 * over TLS when smtpd_tls_auth_only is set or TLS is required. The exchange
 * runs through smtpd_sasl.c; while authd is asked, the session reads no
 * further commands, so pipelined commands are answered in order and with
 * the login in effect. "*" aborts; a second AUTH gets 503. The user name is
 * logged with each queued message and, with smtpd_sasl_authenticated_header,
 * shown in the Received: header. Failed logins are logged with the client
 * address, for tools such as fail2ban, and count toward the error limit.
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <fcntl.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

#include "address.h"
#include "auth_proto.h"
#include "log.h"
#include "mem.h"
#include "service.h"
#include "strbuf.h"
#include "tls_event.h"
#include "xtext.h"

#include "smtpd.h"

#define SESSION_OUT_HIGH    (64 * 1024)     /* stop taking commands above this */
#define SESSION_IN_HIGH     (256 * 1024)    /* libevent stops reading above this */

/* Commands, in the order Postfix lists them in the disconnect log line. */
enum cmd_id {
    CMD_HELO, CMD_EHLO, CMD_STARTTLS, CMD_AUTH, CMD_MAIL, CMD_RCPT, CMD_DATA, CMD_BDAT,
    CMD_RSET, CMD_NOOP, CMD_VRFY, CMD_HELP, CMD_QUIT, CMD_UNKNOWN, CMD_COUNT
};

struct smtpd_session;
typedef void (*cmd_fn)(struct smtpd_session *s, char *arg);

struct cmd_def {
    const char *name;
    cmd_fn  fn;
};

enum phase {
    PHASE_CMD,                          /* reading commands */
    PHASE_DATA,                         /* reading a message */
    PHASE_TLS,                          /* after STARTTLS's 220 / on 465: until the handshake ends */
    PHASE_AUTH,                         /* an AUTH exchange: waiting for authd or a 334 answer */
    PHASE_CHECK,                        /* a restriction waits for DNS or a policy service */
    PHASE_BDAT,                         /* reading (or skipping) the bytes of a BDAT chunk */
    PHASE_COMMIT,                       /* the store is putting the message on disk */
};

struct smtpd_session;
typedef void (*check_done_fn)(struct smtpd_session *s, enum smtpd_verdict v, const char *text);

struct smtpd_session {
    struct smtpd_server *srv;
    struct smtpd_session *prev, *next;
    struct bufferevent *bev;
    int     fd;                         /* the socket under bev (bev closes it) */
    struct smtpd_client cl;
    enum phase phase;
    bool    closing;                    /* last reply queued; free when written */
    bool    stop_after_data;            /* service stop arrived during DATA */
    bool    skipping;                   /* inside an overlong command line */
    bool    seen_helo;
    bool    esmtp;
    bool    in_mail;                    /* MAIL FROM accepted */
    bool    handshaking;                /* the TLS bufferevent exists, the handshake is not done */
    bool    greet_after_tls;            /* wrapper mode: the 220 greeting waits for the handshake */
    bool    broken;                     /* no orderly TLS close: the connection failed */
    bool    auth_wait_line;             /* PHASE_AUTH: a 334 was sent, the client's line is next */
    struct smtpd_sasl *sasl;            /* the AUTH exchange in progress */
    char    sasl_mech[AUTH_PROTO_MAX_MECH + 1];
    struct strbuf sasl_user;
    struct strbuf tls_info;             /* "TLSv1.3 with cipher ..." */
    struct strbuf tls_details;          /* "key-exchange ..." */
    struct strbuf helo;
    struct strbuf line;                 /* the current command line */
    struct strbuf reply;
    const char *last_cmd;               /* "CONNECT", "RCPT", ... for logs */
    struct smtpd_envelope env;
    size_t  rcpt_alloc;
    struct smtpd_data data;
    unsigned errors;
    unsigned cmd_ok[CMD_COUNT];
    unsigned cmd_total[CMD_COUNT];
    /* Restrictions. */
    struct smtpd_check_run *run;
    struct smtpd_check_input check_in;  /* what a pending check looks at */
    enum smtpd_stage check_stage;
    check_done_fn check_done;           /* the second half of the waiting command */
    enum phase phase_before_check;
    enum cmd_id cur_cmd;                /* the command a pending check belongs to */
    unsigned cur_errors;                /* errors before it */
    struct strbuf access_denied;        /* refused at connect (smtpd_delay_reject = no) */
    char    instance[48];               /* per transaction, for policy services */
    unsigned transactions;
    bool    anvil_counted;
    /* Tarpit: replies held back for smtpd_error_sleep_time. */
    struct event *tarpit_ev;
    bool    held;
    struct strbuf held_out;
    /* DSN and SMTPUTF8 of the transaction, and of the RCPT being checked. */
    struct strbuf dsn_envid;
    char    dsn_ret[8];
    char   *pending_notify;
    char   *pending_orcpt;
    /* BDAT. */
    bool    bdat_used;                  /* this transaction has had a BDAT */
    bool    bdat_failed;                /* discard its remaining chunks */
    struct strbuf bdat_error;           /* the reply for them */
    long long bdat_size;                /* the chunk being read */
    long long bdat_remaining;
    bool    bdat_last;
    bool    bdat_discard;               /* skip the chunk, then send bdat_reply */
    struct strbuf bdat_reply;
};

static void cmd_helo(struct smtpd_session *s, char *arg);
static void cmd_ehlo(struct smtpd_session *s, char *arg);
static void cmd_starttls(struct smtpd_session *s, char *arg);
static void cmd_auth(struct smtpd_session *s, char *arg);
static void cmd_mail(struct smtpd_session *s, char *arg);
static void cmd_rcpt(struct smtpd_session *s, char *arg);
static void cmd_data(struct smtpd_session *s, char *arg);
static void cmd_bdat(struct smtpd_session *s, char *arg);
static void cmd_rset(struct smtpd_session *s, char *arg);
static void cmd_noop(struct smtpd_session *s, char *arg);
static void cmd_vrfy(struct smtpd_session *s, char *arg);
static void cmd_help(struct smtpd_session *s, char *arg);
static void cmd_quit(struct smtpd_session *s, char *arg);

static const struct cmd_def commands[CMD_COUNT] = {
    [CMD_HELO] = {"HELO", cmd_helo},
    [CMD_EHLO] = {"EHLO", cmd_ehlo},
    [CMD_STARTTLS] = {"STARTTLS", cmd_starttls},
    [CMD_AUTH] = {"AUTH", cmd_auth},
    [CMD_MAIL] = {"MAIL", cmd_mail},
    [CMD_RCPT] = {"RCPT", cmd_rcpt},
    [CMD_DATA] = {"DATA", cmd_data},
    [CMD_BDAT] = {"BDAT", cmd_bdat},
    [CMD_RSET] = {"RSET", cmd_rset},
    [CMD_NOOP] = {"NOOP", cmd_noop},
    [CMD_VRFY] = {"VRFY", cmd_vrfy},
    [CMD_HELP] = {"HELP", cmd_help},
    [CMD_QUIT] = {"QUIT", cmd_quit},
    [CMD_UNKNOWN] = {"unknown", NULL},
};

static void session_process(struct smtpd_session *s);

/*
 * reply - queue one reply line; the text carries code and enhanced code.
 * From smtpd_soft_error_limit errors on, replies are held back for
 * smtpd_error_sleep_time (Postfix sleeps before every reply; we hold it on a
 * timer, and the session takes no command meanwhile).
 */
static void reply(struct smtpd_session *s, const char *fmt, ...) PRINTF_LIKE(2, 3);
static void reply(struct smtpd_session *s, const char *fmt, ...)
{
    const struct smtpd_settings *set = &s->srv->set;
    struct evbuffer *out = bufferevent_get_output(s->bev);
    va_list ap;

    sb_reset(&s->reply);
    va_start(ap, fmt);
    sb_vprintf(&s->reply, fmt, ap);
    va_end(ap);
    if (log_verbose_level() > 0)
        msg_verbose("> %s: %s", s->cl.ident, sb_str(&s->reply));
    if (!s->held && set->error_sleep > 0 && s->errors >= set->soft_error_limit
        && s->tarpit_ev != NULL) {
        struct timeval tv = {(time_t) set->error_sleep, 0};

        s->held = true;
        evtimer_add(s->tarpit_ev, &tv);
    }
    if (s->held) {
        sb_append(&s->held_out, sb_str(&s->reply), sb_len(&s->reply));
        sb_append(&s->held_out, "\r\n", 2);
    } else {
        evbuffer_add(out, sb_str(&s->reply), sb_len(&s->reply));
        evbuffer_add(out, "\r\n", 2);
    }
}

/* reply_error - a reply to a client mistake or a refusal: counts toward the error limits */
static void reply_error(struct smtpd_session *s, const char *fmt, ...) PRINTF_LIKE(2, 3);
static void reply_error(struct smtpd_session *s, const char *fmt, ...)
{
    va_list ap;
    struct strbuf text = STRBUF_INIT;

    va_start(ap, fmt);
    sb_vprintf(&text, fmt, ap);
    va_end(ap);
    /* Counted first, as Postfix does: the reply that reaches the soft limit already waits. */
    s->errors++;
    reply(s, "%s", sb_str(&text));
    sb_free(&text);
}

/* close_session - no more commands; the session is freed once its replies are written */
static void close_session(struct smtpd_session *s)
{
    if (s->phase == PHASE_DATA) {
        smtpd_data_abort(&s->data);
        s->phase = PHASE_CMD;
    }
    if (s->sasl != NULL) {
        smtpd_sasl_cancel(s->sasl);
        s->sasl = NULL;
        s->phase = PHASE_CMD;
    }
    if (s->phase == PHASE_CHECK) {
        smtpd_check_cancel(s->run);
        s->phase = PHASE_CMD;
    }
    if (s->phase == PHASE_BDAT || s->phase == PHASE_COMMIT)
        s->phase = PHASE_CMD;
    smtpd_data_abort(&s->data);
    s->closing = true;
    bufferevent_disable(s->bev, EV_READ);
    bufferevent_enable(s->bev, EV_WRITE);
}

/* reset_transaction - forget sender and recipients (RSET, HELO, after DATA) */
static void reset_transaction(struct smtpd_session *s)
{
    for (size_t i = 0; i < s->env.rcpt_count; i++) {
        address_free(&s->env.rcpt[i]);
        free(s->env.rcpt_notify[i]);
        free(s->env.rcpt_orcpt[i]);
        s->env.rcpt_notify[i] = s->env.rcpt_orcpt[i] = NULL;
    }
    s->env.rcpt_count = 0;
    sb_reset(&s->env.sender.addr);
    s->env.sender.flags = 0;
    s->env.declared_size = -1;
    s->env.body_8bit = false;
    s->env.smtputf8 = false;
    s->env.dsn_ret = NULL;
    s->env.dsn_envid = NULL;
    sb_reset(&s->dsn_envid);
    s->dsn_ret[0] = 0;
    free(s->pending_notify);
    free(s->pending_orcpt);
    s->pending_notify = s->pending_orcpt = NULL;
    s->bdat_used = false;
    s->bdat_failed = false;
    sb_reset(&s->bdat_error);
    smtpd_data_abort(&s->data);
    s->in_mail = false;
}

/* log_disconnect - Postfix's summary: "name=ok[/total]" for each command used */
static void log_disconnect(struct smtpd_session *s)
{
    struct strbuf line = STRBUF_INIT;
    unsigned ok = 0, total = 0;

    for (int i = 0; i < CMD_COUNT; i++) {
        if (s->cmd_total[i] == 0)
            continue;
        ok += s->cmd_ok[i];
        total += s->cmd_total[i];
        sb_printf(&line, " %s=%u", i == CMD_UNKNOWN ? "unknown" : commands[i].name,
                  s->cmd_ok[i]);
        if (s->cmd_ok[i] != s->cmd_total[i])
            sb_printf(&line, "/%u", s->cmd_total[i]);
    }
    sb_lowercase(&line);
    sb_printf(&line, " commands=%u", ok);
    if (ok != total)
        sb_printf(&line, "/%u", total);
    msg_info("disconnect from %s%s", s->cl.ident, sb_str(&line));
    sb_free(&line);
}

/* session_free - log, release everything, tell the skeleton */
static void session_free(struct smtpd_session *s)
{
    struct smtpd_server *srv = s->srv;

    log_disconnect(s);
    if (s->sasl != NULL)
        smtpd_sasl_cancel(s->sasl);
    smtpd_check_run_free(s->run);
    if (s->anvil_counted)
        smtpd_anvil_disconnect(srv->anvil, &s->cl);
    if (s->tarpit_ev != NULL)
        event_free(s->tarpit_ev);
    reset_transaction(s);
    smtpd_data_free(&s->data);
    /* Slots past rcpt_count may hold a refused recipient's strings. */
    for (size_t i = 0; i < s->rcpt_alloc; i++)
        address_free(&s->env.rcpt[i]);
    free(s->env.rcpt);
    free(s->env.rcpt_notify);
    free(s->env.rcpt_orcpt);
    address_free(&s->env.sender);
    sb_free(&s->access_denied);
    sb_free(&s->held_out);
    sb_free(&s->dsn_envid);
    sb_free(&s->bdat_error);
    sb_free(&s->bdat_reply);
    sb_free(&s->helo);
    sb_free(&s->line);
    sb_free(&s->reply);
    sb_free(&s->sasl_user);
    sb_free(&s->tls_info);
    sb_free(&s->tls_details);
    if (s->cl.tls && !s->broken)
        smtpd_tls_close(s->bev);
    bufferevent_free(s->bev);           /* closes the socket */
    if (s->prev)
        s->prev->next = s->next;
    else
        srv->sessions = s->next;
    if (s->next)
        s->next->prev = s->prev;
    srv->session_count--;
    free(s);
    service_check_idle(srv->svc);
}

/* maybe_free - at the end of each callback: a closing session whose replies are out goes */
static bool maybe_free(struct smtpd_session *s)
{
    if (s->closing && !s->held && evbuffer_get_length(bufferevent_get_output(s->bev)) == 0) {
        session_free(s);
        return true;
    }
    return false;
}

/* after_what - the last command for "lost connection after ..." logs */
static const char *after_what(struct smtpd_session *s, char *buf, size_t len)
{
    if (s->phase == PHASE_DATA) {
        snprintf(buf, len, "DATA (%lld bytes)", s->data.size);
        return buf;
    }
    if (s->phase == PHASE_AUTH) {
        snprintf(buf, len, "AUTH");
        return buf;
    }
    if (s->phase == PHASE_BDAT) {
        snprintf(buf, len, "BDAT (%lld bytes)", s->data.size);
        return buf;
    }
    if (s->phase == PHASE_COMMIT)
        return "END-OF-MESSAGE";
    return s->last_cmd;
}

/* read_cb - input arrived */
static void read_cb(struct bufferevent *bev, void *arg)
{
    struct smtpd_session *s = arg;

    (void) bev;
    session_process(s);
    maybe_free(s);
}

static void start_tls(struct smtpd_session *s);
static void tls_established(struct smtpd_session *s);

/* write_cb - the replies were written: resume a session that waited for its client */
static void write_cb(struct bufferevent *bev, void *arg)
{
    struct smtpd_session *s = arg;

    (void) bev;
    if (maybe_free(s))
        return;
    /* "220 Ready to start TLS" is out: the next byte from the client is TLS. */
    if (s->phase == PHASE_TLS && !s->handshaking
        && evbuffer_get_length(bufferevent_get_output(s->bev)) == 0) {
        start_tls(s);
        return;
    }
    session_process(s);
    maybe_free(s);
}

/* handshake_failed - the TLS handshake did not complete: nothing more can be said */
static void handshake_failed(struct smtpd_session *s, short what)
{
    struct strbuf why = STRBUF_INIT;

    if (what & BEV_EVENT_TIMEOUT) {
        msg_info("timeout after %s from %s", s->last_cmd, s->cl.ident);
    } else if (what & BEV_EVENT_ERROR) {
        tls_event_error(s->bev, &why);
        msg_info("SSL_accept error from %s: %s", s->cl.ident, sb_str(&why));
        msg_info("lost connection after %s from %s", s->last_cmd, s->cl.ident);
    } else {
        msg_info("lost connection after %s from %s", s->last_cmd, s->cl.ident);
    }
    sb_free(&why);
    s->broken = true;
    session_free(s);
}

/* event_cb - TLS handshake done, end of file, error, or timeout */
static void event_cb(struct bufferevent *bev, short what, void *arg)
{
    struct smtpd_session *s = arg;
    char    buf[64];

    (void) bev;
    if (what & BEV_EVENT_CONNECTED) {
        tls_established(s);
        maybe_free(s);
        return;
    }
    if (s->handshaking) {
        handshake_failed(s, what);
        return;
    }
    if (s->closing) {
        /* The client does not take our last reply; give up on it. */
        s->broken = true;
        session_free(s);
        return;
    }
    if (what & BEV_EVENT_TIMEOUT) {
        msg_info("timeout after %s from %s", after_what(s, buf, sizeof(buf)), s->cl.ident);
        if (what & BEV_EVENT_WRITING) {
            s->broken = true;
            session_free(s);
            return;
        }
        reply(s, "421 4.4.2 %s Error: timeout exceeded", s->srv->set.hostname);
        close_session(s);
        maybe_free(s);
        return;
    }
    if (what & BEV_EVENT_ERROR) {
        struct strbuf why = STRBUF_INIT;

        if (s->cl.tls)
            tls_event_error(s->bev, &why);
        else
            sb_puts(&why, strerror(EVUTIL_SOCKET_ERROR()));
        msg_info("lost connection after %s from %s: %s", after_what(s, buf, sizeof(buf)),
                 s->cl.ident, sb_str(&why));
        sb_free(&why);
        s->broken = true;
        session_free(s);
        return;
    }
    /* End of file: a client that half-closed still gets the replies already queued. */
    msg_info("lost connection after %s from %s", after_what(s, buf, sizeof(buf)), s->cl.ident);
    close_session(s);
    maybe_free(s);
}

/* format_client - address, port and "unknown[192.0.2.1]:1234" for logs */
static void format_client(struct smtpd_client *cl, const struct sockaddr_storage *peer,
                          socklen_t peer_len)
{
    memset(cl, 0, sizeof(*cl));
    if (peer_len > (socklen_t) sizeof(cl->peer))
        peer_len = sizeof(cl->peer);
    memcpy(&cl->peer, peer, (size_t) peer_len);
    cl->peer_len = peer_len;
    /* No DNS in the event loop: Postfix's name for a client without one. */
    cl->name = "unknown";
    if (peer->ss_family == AF_INET && peer_len >= (socklen_t) sizeof(struct sockaddr_in)) {
        const struct sockaddr_in *sin = (const struct sockaddr_in *) peer;

        inet_ntop(AF_INET, &sin->sin_addr, cl->addr, sizeof(cl->addr));
        cl->port = ntohs(sin->sin_port);
    } else if (peer->ss_family == AF_INET6
               && peer_len >= (socklen_t) sizeof(struct sockaddr_in6)) {
        const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *) peer;

        if (IN6_IS_ADDR_V4MAPPED(&sin6->sin6_addr)) {
            /* An IPv4 client on a dual-stack socket: show it as IPv4, as Postfix does. */
            struct sockaddr_in *sin = (struct sockaddr_in *) &cl->peer;
            struct in_addr v4;

            memcpy(&v4, &sin6->sin6_addr.s6_addr[12], sizeof(v4));
            memset(&cl->peer, 0, sizeof(cl->peer));
            sin->sin_family = AF_INET;
            sin->sin_addr = v4;
            sin->sin_port = sin6->sin6_port;
            cl->peer_len = sizeof(*sin);
            inet_ntop(AF_INET, &v4, cl->addr, sizeof(cl->addr));
        } else {
            inet_ntop(AF_INET6, &sin6->sin6_addr, cl->addr, sizeof(cl->addr));
        }
        cl->port = ntohs(sin6->sin6_port);
    } else {
        cl->peer_len = 0;
        snprintf(cl->addr, sizeof(cl->addr), "local");
        snprintf(cl->ident, sizeof(cl->ident), "%s[local]", cl->name);
        return;
    }
    snprintf(cl->ident, sizeof(cl->ident), "%s[%s]:%u", cl->name, cl->addr, cl->port);
}

/* local_address - our end of the connection, for authd ("" when unknown) */
static void local_address(struct smtpd_client *cl, int fd)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof(ss);

    cl->local_addr[0] = 0;
    if (getsockname(fd, (struct sockaddr *) &ss, &len) < 0)
        return;
    if (ss.ss_family == AF_INET) {
        inet_ntop(AF_INET, &((struct sockaddr_in *) &ss)->sin_addr, cl->local_addr,
                  sizeof(cl->local_addr));
    } else if (ss.ss_family == AF_INET6) {
        const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *) &ss;

        if (IN6_IS_ADDR_V4MAPPED(&sin6->sin6_addr))
            inet_ntop(AF_INET, &sin6->sin6_addr.s6_addr[12], cl->local_addr,
                      sizeof(cl->local_addr));
        else
            inet_ntop(AF_INET6, &sin6->sin6_addr, cl->local_addr, sizeof(cl->local_addr));
    }
}

/* setup_bev - callbacks, limits and timeouts on the session's (new) bufferevent */
static void setup_bev(struct smtpd_session *s)
{
    struct timeval tv;
    size_t  in_high;

    in_high = s->srv->set.line_limit * 2 + 4;
    if (in_high < SESSION_IN_HIGH)
        in_high = SESSION_IN_HIGH;
    bufferevent_setcb(s->bev, read_cb, write_cb, event_cb, s);
    bufferevent_setwatermark(s->bev, EV_READ, 0, in_high);
    tv.tv_sec = (time_t) s->srv->set.timeout;
    tv.tv_usec = 0;
    bufferevent_set_timeouts(s->bev, &tv, &tv);
}

static void check_resume(void *ctx);
static void tarpit_done(evutil_socket_t fd, short what, void *arg);
static void greet(struct smtpd_session *s);

/* smtpd_session_start - greet a new client on fd (non-blocking; closed when done) */
void smtpd_session_start(struct smtpd_server *srv, int fd,
                         const struct sockaddr_storage *peer, socklen_t peer_len)
{
    struct smtpd_session *s;
    bool    wrapper = srv->set.tls_wrapper;

    /* On 465 nothing can be said before the handshake, not even 421. */
    if (wrapper && srv->svc->stopping) {
        close(fd);
        return;
    }
    /*
     * Replies and TLS records go out as soon as they are written: with Nagle's
     * algorithm a second small segment waits for the client's delayed ACK
     * (40 ms on Linux), which a TLS handshake's several writes always meet.
     */
    if (peer->ss_family == AF_INET || peer->ss_family == AF_INET6) {
        int     one = 1;

        (void) setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    }
    s = xcalloc(1, sizeof(*s));
    s->bev = wrapper ? smtpd_tls_bufferevent(srv, fd)
        : bufferevent_socket_new(srv->svc->base, fd, BEV_OPT_CLOSE_ON_FREE);
    if (s->bev == NULL) {
        msg_warn("cannot set up a session: out of memory");
        close(fd);
        free(s);
        return;
    }
    s->srv = srv;
    s->fd = fd;
    format_client(&s->cl, peer, peer_len);
    local_address(&s->cl, fd);
    s->phase = PHASE_CMD;
    s->last_cmd = "CONNECT";
    s->env.client = s->cl.ident;
    s->env.cl = &s->cl;
    s->env.helo = "";
    s->env.protocol = "SMTP";
    s->env.declared_size = -1;
    address_init(&s->env.sender);
    sb_init(&s->helo);
    sb_init(&s->line);
    sb_init(&s->reply);
    sb_init(&s->data.out);
    sb_init(&s->sasl_user);
    sb_init(&s->tls_info);
    sb_init(&s->tls_details);
    sb_init(&s->access_denied);
    sb_init(&s->held_out);
    sb_init(&s->dsn_envid);
    sb_init(&s->bdat_error);
    sb_init(&s->bdat_reply);
    if (srv->check != NULL)
        s->run = smtpd_check_run_new(srv->check, check_resume, s);
    s->tarpit_ev = evtimer_new(srv->svc->base, tarpit_done, s);

    s->next = srv->sessions;
    if (s->next)
        s->next->prev = s;
    srv->sessions = s;
    srv->session_count++;

    msg_info("connect from %s", s->cl.ident);
    setup_bev(s);
    if (srv->anvil != NULL) {
        struct strbuf text = STRBUF_INIT;

        s->anvil_counted = true;
        if (smtpd_anvil_connect(srv->anvil, &s->cl, srv->set.hostname, &text) != 0) {
            /* On 465 the 421 would be read as a broken handshake: just close. */
            if (wrapper) {
                s->broken = true;
                sb_free(&text);
                session_free(s);
                return;
            }
            reply(s, "%s", sb_str(&text));
            sb_free(&text);
            close_session(s);
            return;
        }
        sb_free(&text);
    }
    if (wrapper) {
        s->phase = PHASE_TLS;
        s->handshaking = true;
        s->greet_after_tls = true;
        bufferevent_enable(s->bev, EV_READ | EV_WRITE);
        return;
    }
    bufferevent_enable(s->bev, EV_READ | EV_WRITE);
    greet(s);
}

/* smtpd_session_stop_all - service stop: let idle sessions go, DATA sessions finish first */
void smtpd_session_stop_all(struct smtpd_server *srv)
{
    struct smtpd_session *s;
    struct smtpd_session *next;

    for (s = srv->sessions; s != NULL; s = next) {
        next = s->next;
        if (s->closing)
            continue;
        if (s->phase == PHASE_DATA || s->phase == PHASE_BDAT || s->phase == PHASE_CHECK
            || s->phase == PHASE_COMMIT) {
            /* A message or a pending verdict: finish it, then say 421. */
            s->stop_after_data = true;
            continue;
        }
        if (s->phase == PHASE_TLS) {
            /* Between STARTTLS and the end of the handshake there is no way to say 421. */
            s->broken = true;
            session_free(s);
            continue;
        }
        reply(s, "421 4.3.2 Service shutting down");
        close_session(s);
        maybe_free(s);
    }
}

enum line_status { LINE_NONE, LINE_OK, LINE_TOO_LONG };

/*
 * get_line - the next complete command line into s->line, without its LF or
 * CRLF. An overlong line is drained as it arrives; LINE_TOO_LONG is reported
 * once its LF is seen, so the reply comes in order with other commands.
 */
static enum line_status get_line(struct smtpd_session *s, struct evbuffer *in)
{
    size_t  limit = s->srv->set.line_limit;
    struct evbuffer_ptr eol;
    size_t  avail = evbuffer_get_length(in);
    const char *data;
    size_t  len;
    size_t  content;

    eol = evbuffer_search(in, "\n", 1, NULL);
    if (eol.pos < 0) {
        /* Keep up to limit + CR: a line that may still end in time. */
        if (s->skipping || avail > limit + 1) {
            s->skipping = true;
            evbuffer_drain(in, avail);
        }
        return LINE_NONE;
    }
    len = (size_t) eol.pos;
    if (s->skipping || len > limit + 1) {
        s->skipping = false;
        evbuffer_drain(in, len + 1);
        return LINE_TOO_LONG;
    }
    data = (const char *) evbuffer_pullup(in, (ssize_t) len + 1);
    content = (len > 0 && data[len - 1] == '\r') ? len - 1 : len;
    if (content > limit) {
        evbuffer_drain(in, len + 1);
        return LINE_TOO_LONG;
    }
    sb_reset(&s->line);
    sb_append(&s->line, data, content);
    evbuffer_drain(in, len + 1);
    return LINE_OK;
}

/* find_command - the command named by the first word of the line */
static enum cmd_id find_command(const char *verb, size_t len)
{
    for (int i = 0; i < CMD_UNKNOWN; i++)
        if (strlen(commands[i].name) == len && strncasecmp(commands[i].name, verb, len) == 0)
            return (enum cmd_id) i;
    return CMD_UNKNOWN;
}

/* skip_space - past spaces (and tabs, which some clients send) */
static char *skip_space(char *p)
{
    while (*p == ' ' || *p == '\t')
        p++;
    return p;
}

/*
 * count_command - the current command is answered: count it as done unless
 * it failed. DATA counts when the message is stored, BDAT when its chunk is
 * taken, AUTH when authd said yes.
 */
static void count_command(struct smtpd_session *s)
{
    enum cmd_id id = s->cur_cmd;

    if (id == CMD_COUNT)
        return;
    if (s->errors == s->cur_errors && id != CMD_DATA && id != CMD_AUTH && id != CMD_BDAT
        && sb_str(&s->reply)[0] != '4' && sb_str(&s->reply)[0] != '5')
        s->cmd_ok[id]++;
}

/* do_command - one command line */
static void do_command(struct smtpd_session *s)
{
    char   *line = s->line.data ? s->line.data : (char *) "";
    size_t  len = sb_len(&s->line);
    char   *verb;
    char   *arg;
    size_t  verb_len;
    enum cmd_id id;
    unsigned errors_before = s->errors;

    /* An AUTH initial response is a password in base64: never in the log. */
    if (log_verbose_level() > 0)
        msg_verbose("< %s: %.*s%s", s->cl.ident,
                    strncasecmp(line, "AUTH ", 5) == 0 ? (int) strcspn(line + 5, " ") + 5
                    : (int) len, line, strncasecmp(line, "AUTH ", 5) == 0 ? " ..." : "");
    /* Trailing white space is noise; a NUL inside would cut the line silently. */
    while (len > 0 && (line[len - 1] == ' ' || line[len - 1] == '\t'))
        line[--len] = 0;
    verb = skip_space(line);
    for (arg = verb; *arg && *arg != ' ' && *arg != '\t'; arg++)
         /* void */ ;
    verb_len = (size_t) (arg - verb);
    arg = skip_space(arg);
    if (memchr(line, 0, len) != NULL || verb_len == 0) {
        s->cmd_total[CMD_UNKNOWN]++;
        s->last_cmd = "UNKNOWN";
        reply_error(s, "500 5.5.2 Error: bad syntax");
        return;
    }
    id = find_command(verb, verb_len);
    s->cmd_total[id]++;
    if (id == CMD_UNKNOWN) {
        s->last_cmd = "UNKNOWN";
        reply_error(s, "502 5.5.2 Error: command not recognized");
        return;
    }
    s->last_cmd = commands[id].name;
    sb_reset(&s->reply);
    s->cur_cmd = id;
    s->cur_errors = errors_before;
    if (sb_len(&s->access_denied) > 0 && id != CMD_QUIT) {
        /* Refused at connect (smtpd_delay_reject = no): nothing but QUIT. */
        reply_error(s, "503 5.7.0 Error: access denied for %s[%s]", s->cl.name, s->cl.addr);
        return;
    }
    commands[id].fn(s, arg);
    /* A command waiting for a verdict is counted when it has its reply. */
    if (s->phase != PHASE_CHECK)
        count_command(s);
}

static void check_start(struct smtpd_session *s, enum smtpd_stage stage, const char *command,
                        const struct address *sender, const struct address *rcpt,
                        check_done_fn done);

/* message_rejected - log a message refused at its end */
static void message_rejected(struct smtpd_session *s, const char *text)
{
    msg_info("NOQUEUE: reject: END-OF-MESSAGE from %s: %s; from=<%s> nrcpt=%zu "
             "size=%lld proto=%s helo=<%s>", s->cl.ident, text,
             sb_str(&s->env.sender.addr), s->env.rcpt_count, s->data.size,
             s->env.protocol, sb_str(&s->helo));
}

/* message_done - the message is stored or refused: count, reset, maybe stop */
static void message_done(struct smtpd_session *s, bool stored, const char *text)
{
    enum cmd_id id = s->bdat_used ? CMD_BDAT : CMD_DATA;

    if (stored) {
        s->cmd_ok[id]++;
        /* Postfix counts errors "without delivering mail": a message wipes the slate. */
        s->errors = 0;
    } else {
        message_rejected(s, text);
    }
    reply(s, "%s", text);
    if (!stored && text[0] != '2')
        s->errors++;
    reset_transaction(s);
}

static void check_error_limit(struct smtpd_session *s);
static void stop_if_asked(struct smtpd_session *s);

/* commit_done - the store has the message on disk (or failed): the final reply */
static void commit_done(void *ctx, const char *text)
{
    struct smtpd_session *s = ctx;

    if (s->phase != PHASE_COMMIT)
        msg_panic("%s: commit finished outside PHASE_COMMIT", s->cl.ident);
    smtpd_data_committed(&s->data);
    s->phase = PHASE_CMD;
    message_done(s, text[0] == '2', text);
    stop_if_asked(s);
    check_error_limit(s);
    session_process(s);
    maybe_free(s);
}

/* eod_checked - smtpd_end_of_data_restrictions said their word: store or refuse */
static void eod_checked(struct smtpd_session *s, enum smtpd_verdict v, const char *text)
{
    if (v == SMTPD_CHECK_REJECT) {
        smtpd_data_abort(&s->data);
        message_done(s, false, text);
        return;
    }
    /* Nothing more is read until the message is safe: the reply must come first. */
    s->phase = PHASE_COMMIT;
    smtpd_data_commit(&s->data, commit_done, s);
}

/* finish_message - all content is in (DATA's "." or BDAT LAST): checks, then the store */
static void finish_message(struct smtpd_session *s)
{
    struct strbuf text = STRBUF_INIT;

    s->phase = PHASE_CMD;
    s->last_cmd = "END-OF-MESSAGE";
    if (smtpd_data_problem(&s->data, &text)) {
        smtpd_data_abort(&s->data);
        message_done(s, false, sb_str(&text));
    } else {
        s->env.declared_size = s->data.size;
        check_start(s, SMTPD_STAGE_EOD, "END-OF-MESSAGE", &s->env.sender, NULL, eod_checked);
    }
    sb_free(&text);
}

/* finish_data - the final "." arrived */
static void finish_data(struct smtpd_session *s)
{
    s->cur_cmd = CMD_DATA;
    s->cur_errors = s->errors;
    finish_message(s);
}

/* stop_if_asked - a service stop waited for this message or verdict: 421 now */
static void stop_if_asked(struct smtpd_session *s)
{
    if (s->stop_after_data && !s->closing && s->phase == PHASE_CMD) {
        reply(s, "421 4.3.2 Service shutting down");
        close_session(s);
    }
}

/* check_error_limit - too many errors: 421 and close */
static void check_error_limit(struct smtpd_session *s)
{
    if (!s->closing && s->errors >= s->srv->set.hard_error_limit) {
        msg_info("too many errors after %s from %s", s->last_cmd, s->cl.ident);
        reply(s, "421 4.7.0 %s Error: too many errors", s->srv->set.hostname);
        close_session(s);
    }
}

static void auth_response(struct smtpd_session *s);
static void auth_end(struct smtpd_session *s);
static bool bdat_read(struct smtpd_session *s, struct evbuffer *in);

/* session_process - take commands (or message data) from the input while we may */
static void session_process(struct smtpd_session *s)
{
    struct evbuffer *in = bufferevent_get_input(s->bev);
    struct evbuffer *out = bufferevent_get_output(s->bev);

    while (!s->closing) {
        /* A held reply (tarpit) goes out before anything else happens. */
        if (s->held)
            return;
        if (s->phase == PHASE_DATA) {
            if (smtpd_data_read(&s->data, in) == SMTPD_DATA_MORE)
                return;
            finish_data(s);
            stop_if_asked(s);
            continue;
        }
        if (s->phase == PHASE_BDAT) {
            if (!bdat_read(s, in))
                return;
            stop_if_asked(s);
            check_error_limit(s);
            continue;
        }
        /* Nothing is read during a TLS switch, nor while authd or a check has the word. */
        if (s->phase == PHASE_TLS || s->phase == PHASE_CHECK || s->phase == PHASE_COMMIT
            || (s->phase == PHASE_AUTH && !s->auth_wait_line))
            return;
        /* A client that does not read its replies gets no more of them. */
        if (evbuffer_get_length(out) >= SESSION_OUT_HIGH)
            return;
        switch (get_line(s, in)) {
        case LINE_NONE:
            return;
        case LINE_TOO_LONG:
            if (s->phase == PHASE_AUTH) {
                auth_end(s);
                reply_error(s, "500 5.5.6 Authentication exchange line is too long");
                break;
            }
            s->cmd_total[CMD_UNKNOWN]++;
            s->last_cmd = "UNKNOWN";
            reply_error(s, "500 5.5.2 Error: line too long");
            break;
        case LINE_OK:
            if (s->phase == PHASE_AUTH)
                auth_response(s);
            else
                do_command(s);
            break;
        }
        check_error_limit(s);
    }
}

/*
 * check_start - evaluate stage's restrictions for the current command; done()
 * runs now, or from check_resume() when the DNS or policy answer comes.
 */
static void check_start(struct smtpd_session *s, enum smtpd_stage stage, const char *command,
                        const struct address *sender, const struct address *rcpt,
                        check_done_fn done)
{
    struct smtpd_check_input *in = &s->check_in;
    struct strbuf text = STRBUF_INIT;
    enum smtpd_verdict v = SMTPD_CHECK_OK;

    memset(in, 0, sizeof(*in));
    in->cl = &s->cl;
    in->helo = s->seen_helo ? sb_str(&s->helo) : NULL;
    in->protocol = s->env.protocol;
    in->sender = sender;
    in->rcpt = rcpt;
    in->rcpt_count = s->env.rcpt_count;
    in->size = s->env.declared_size;
    in->command = command;
    /* Only what the client sent before it saw our reply is waiting in the buffer. */
    in->input_pending = evbuffer_get_length(bufferevent_get_input(s->bev)) > 0;
    in->instance = s->instance;
    s->check_stage = stage;
    s->check_done = done;
    if (s->run != NULL)
        v = smtpd_check_eval(s->run, stage, in, &text);
    if (v == SMTPD_CHECK_PENDING) {
        s->phase_before_check = s->phase;
        s->phase = PHASE_CHECK;
    } else {
        done(s, v, sb_str(&text));
    }
    sb_free(&text);
}

/* check_resume - a pending check may go on (called from the event loop) */
static void check_resume(void *ctx)
{
    struct smtpd_session *s = ctx;
    struct strbuf text = STRBUF_INIT;
    enum smtpd_verdict v;

    if (s->phase != PHASE_CHECK)
        msg_panic("%s: check resumed outside PHASE_CHECK", s->cl.ident);
    v = smtpd_check_eval(s->run, s->check_stage, &s->check_in, &text);
    if (v == SMTPD_CHECK_PENDING) {
        sb_free(&text);
        return;
    }
    s->phase = s->phase_before_check;
    sb_reset(&s->reply);
    s->check_done(s, v, sb_str(&text));
    sb_free(&text);
    if (s->phase != PHASE_CHECK) {
        if (s->phase == PHASE_CMD)
            count_command(s);
        stop_if_asked(s);
        check_error_limit(s);
        session_process(s);
    }
    maybe_free(s);
}

/* tarpit_done - the held replies may go out now */
static void tarpit_done(evutil_socket_t fd, short what, void *arg)
{
    struct smtpd_session *s = arg;

    (void) fd;
    (void) what;
    s->held = false;
    evbuffer_add(bufferevent_get_output(s->bev), sb_str(&s->held_out), sb_len(&s->held_out));
    sb_reset(&s->held_out);
    if (!s->closing)
        session_process(s);
    maybe_free(s);
}

/* connect_checked - smtpd_client_restrictions at connect (smtpd_delay_reject = no) */
static void connect_checked(struct smtpd_session *s, enum smtpd_verdict v, const char *text)
{
    if (v == SMTPD_CHECK_REJECT) {
        /* Instead of the greeting; then only QUIT is taken (Postfix's access_denied). */
        msg_info("NOQUEUE: reject: CONNECT from %s: %s; proto=SMTP", s->cl.ident, text);
        sb_set(&s->access_denied, text);
        reply_error(s, "%s", text);
        return;
    }
    reply(s, "220 %s", s->srv->set.banner);
    if (s->srv->svc->stopping) {
        reply(s, "421 4.3.2 Service shutting down");
        close_session(s);
    }
}

/* greet - the 220 greeting, after the connect-time checks */
static void greet(struct smtpd_session *s)
{
    s->cur_cmd = CMD_COUNT;             /* no command to count */
    s->cur_errors = s->errors;
    snprintf(s->instance, sizeof(s->instance), "%lx.%lx.%x", (unsigned long) getpid(),
             (unsigned long) time(NULL), s->transactions);
    check_start(s, SMTPD_STAGE_CONNECT, "CONNECT", NULL, NULL, connect_checked);
}

/* set_protocol - the Received: "with" keyword (RFC 3848), as Postfix words it */
static void set_protocol(struct smtpd_session *s)
{
    static const char *const names[2][2][2] = {
        {{"SMTP", "SMTPA"}, {"SMTPS", "SMTPSA"}},
        {{"ESMTP", "ESMTPA"}, {"ESMTPS", "ESMTPSA"}},
    };

    s->env.protocol = names[s->esmtp][s->cl.tls][s->cl.sasl_username != NULL];
}

/* tls_offered - STARTTLS may be used on this connection now */
static bool tls_offered(struct smtpd_session *s)
{
    const struct smtpd_settings *set = &s->srv->set;

    return s->srv->tls != NULL && !s->cl.tls && !set->tls_wrapper
        && set->tls_level != SMTPD_TLS_NONE;
}

/* tls_missing - TLS is required and not there yet */
static bool tls_missing(struct smtpd_session *s)
{
    return s->srv->set.tls_level == SMTPD_TLS_ENCRYPT && !s->cl.tls;
}

/* auth_offered - AUTH may be used on this connection now */
static bool auth_offered(struct smtpd_session *s)
{
    const struct smtpd_settings *set = &s->srv->set;

    return set->sasl_enable && (s->cl.tls || (!set->tls_auth_only && !tls_missing(s)));
}

/* start_tls - the 220 for STARTTLS is written: move the socket under TLS */
static void start_tls(struct smtpd_session *s)
{
    int     fd = fcntl(s->fd, F_DUPFD_CLOEXEC, 0);
    struct bufferevent *tls = NULL;

    if (fd < 0)
        msg_warn("%s: cannot start TLS: %s", s->cl.ident, strerror(errno));
    else if ((tls = smtpd_tls_bufferevent(s->srv, fd)) == NULL)
        close(fd);
    if (tls == NULL) {
        s->broken = true;
        session_free(s);
        return;
    }
    /* Frees the plain bufferevent, its unread input, and its descriptor. */
    bufferevent_free(s->bev);
    s->bev = tls;
    s->fd = fd;
    s->handshaking = true;
    setup_bev(s);
    bufferevent_enable(s->bev, EV_READ | EV_WRITE);
}

/* tls_established - the handshake is done: log it, forget the clear-text state */
static void tls_established(struct smtpd_session *s)
{
    const char *details;

    s->handshaking = false;
    s->cl.tls = true;
    smtpd_tls_describe(s->bev, &s->tls_info, &s->tls_details);
    details = sb_str(&s->tls_details);
    msg_info("Anonymous TLS connection established from %s: %s%s%s", s->cl.ident,
             sb_str(&s->tls_info), *details ? " " : "", details);
    if (s->srv->set.tls_received_header) {
        s->env.received_tls = sb_str(&s->tls_info);
        s->env.received_tls_details = sb_str(&s->tls_details);
    }
    /* RFC 3207 4.2: nothing learned before TLS counts; the client starts with EHLO. */
    reset_transaction(s);
    sb_reset(&s->helo);
    s->env.helo = "";
    s->seen_helo = false;
    s->esmtp = false;
    s->cl.sasl_username = NULL;
    s->cl.sasl_method = NULL;
    s->env.received_auth = NULL;
    set_protocol(s);
    smtpd_tls_params(s->bev, &s->cl);
    s->phase = PHASE_CMD;
    if (s->greet_after_tls) {
        s->greet_after_tls = false;
        greet(s);
        if (s->closing || s->phase == PHASE_CHECK)
            return;
    }
    session_process(s);
}

/* do_helo - HELO and EHLO share this: the name, a fresh transaction, the HELO checks */
static void do_helo(struct smtpd_session *s, char *arg, const char *cmd, check_done_fn done)
{
    if (*arg == 0) {
        reply_error(s, "501 5.5.4 Syntax: %s hostname", cmd);
        return;
    }
    reset_transaction(s);
    sb_set(&s->helo, arg);
    s->env.helo = sb_str(&s->helo);
    s->seen_helo = true;
    check_start(s, SMTPD_STAGE_HELO, cmd, NULL, NULL, done);
}

/* helo_refused - smtpd_helo_restrictions refused the name (smtpd_delay_reject = no) */
static void helo_refused(struct smtpd_session *s, const char *text)
{
    msg_info("NOQUEUE: reject: %s from %s: %s; proto=%s helo=<%s>", s->last_cmd, s->cl.ident,
             text, s->env.protocol, sb_str(&s->helo));
    sb_reset(&s->helo);
    s->env.helo = "";
    s->seen_helo = false;
    reply_error(s, "%s", text);
}

/* helo_checked - HELO's reply */
static void helo_checked(struct smtpd_session *s, enum smtpd_verdict v, const char *text)
{
    if (v == SMTPD_CHECK_REJECT) {
        helo_refused(s, text);
        return;
    }
    s->esmtp = false;
    set_protocol(s);
    reply(s, "250 %s", s->srv->set.hostname);
}

/* ehlo_checked - EHLO's reply: the extensions usable on this connection now */
static void ehlo_checked(struct smtpd_session *s, enum smtpd_verdict v, const char *text)
{
    const struct smtpd_settings *set = &s->srv->set;

    if (v == SMTPD_CHECK_REJECT) {
        helo_refused(s, text);
        return;
    }
    s->esmtp = true;
    set_protocol(s);
    reply(s, "250-%s", set->hostname);
    reply(s, "250-PIPELINING");
    if (set->message_size_limit > 0)
        reply(s, "250-SIZE %lld", set->message_size_limit);
    else
        reply(s, "250-SIZE");
    if (!set->disable_vrfy)
        reply(s, "250-VRFY");
    if (tls_offered(s))
        reply(s, "250-STARTTLS");
    if (auth_offered(s)) {
        reply(s, "250-AUTH PLAIN LOGIN");
        if (set->broken_sasl)
            reply(s, "250-AUTH=PLAIN LOGIN");
    }
    reply(s, "250-ENHANCEDSTATUSCODES");
    reply(s, "250-8BITMIME");
    reply(s, "250-DSN");
    if (set->smtputf8_enable)
        reply(s, "250-SMTPUTF8");
    reply(s, "250 CHUNKING");
}

/* cmd_helo - HELO hostname */
static void cmd_helo(struct smtpd_session *s, char *arg)
{
    do_helo(s, arg, "HELO", helo_checked);
}

/* cmd_ehlo - EHLO hostname */
static void cmd_ehlo(struct smtpd_session *s, char *arg)
{
    do_helo(s, arg, "EHLO", ehlo_checked);
}

/* parse_size - SIZE=value: digits only, no overflow */
static bool parse_size(const char *value, long long *size)
{
    long long n = 0;

    if (*value == 0)
        return false;
    for (; *value; value++) {
        if (*value < '0' || *value > '9')
            return false;
        if (n > (LLONG_MAX - 9) / 10)
            return false;
        n = n * 10 + (*value - '0');
    }
    *size = n;
    return true;
}

/* next_param - split off the next space-separated ESMTP parameter */
static char *next_param(char **cursor)
{
    char   *p = skip_space(*cursor);
    char   *start = p;

    if (*p == 0)
        return NULL;
    while (*p && *p != ' ' && *p != '\t')
        p++;
    if (*p)
        *p++ = 0;
    *cursor = p;
    return start;
}

/* path_arg - "FROM:<path> params" after the verb: the path start, or NULL */
static char *path_arg(char *arg, const char *keyword)
{
    size_t  klen = strlen(keyword);

    if (strncasecmp(arg, keyword, klen) != 0)
        return NULL;
    /* Postfix tolerates "MAIL FROM: <addr>"; so do we. */
    arg = skip_space(arg + klen);
    return *arg ? arg : NULL;
}

/* new_instance - a fresh policy "instance" value for a new transaction */
static void new_instance(struct smtpd_session *s)
{
    s->transactions++;
    snprintf(s->instance, sizeof(s->instance), "%lx.%lx.%x", (unsigned long) getpid(),
             (unsigned long) time(NULL), s->transactions);
}

/* mail_checked - MAIL's second half: the sender restrictions answered */
static void mail_checked(struct smtpd_session *s, enum smtpd_verdict v, const char *text)
{
    if (v == SMTPD_CHECK_REJECT) {
        msg_info("NOQUEUE: reject: MAIL from %s: %s; from=<%s> proto=%s helo=<%s>",
                 s->cl.ident, text, sb_str(&s->env.sender.addr), s->env.protocol,
                 sb_str(&s->helo));
        reset_transaction(s);
        reply_error(s, "%s", text);
        return;
    }
    s->in_mail = true;
    reply(s, "250 2.1.0 Ok");
}

/* cmd_mail - MAIL FROM:<sender> [SIZE=n] [BODY=..] [SMTPUTF8] [RET=..] [ENVID=..] [AUTH=..] */
static void cmd_mail(struct smtpd_session *s, char *arg)
{
    const struct smtpd_settings *set = &s->srv->set;
    char   *path;
    char   *cursor;
    char   *param;
    long    used;
    const char *why;
    long long size = -1;
    bool    body_8bit = false;
    bool    smtputf8 = false;
    bool    have_body = false, have_size = false;
    const char *ret = NULL;
    struct strbuf envid = STRBUF_INIT;
    bool    have_envid = false;

    if (set->helo_required && !s->seen_helo) {
        reply_error(s, "503 5.5.1 Error: send HELO/EHLO first");
        return;
    }
    if (tls_missing(s)) {
        reply_error(s, "530 5.7.0 Must issue a STARTTLS command first");
        return;
    }
    if (s->in_mail) {
        reply_error(s, s->bdat_used ? "503 5.5.1 Error: MAIL after BDAT"
                    : "503 5.5.1 Error: nested MAIL command");
        return;
    }
    if ((path = path_arg(arg, "FROM:")) == NULL) {
        reply_error(s, "501 5.5.4 Syntax: MAIL FROM:<address>");
        return;
    }
    used = address_parse_path(path, strlen(path), ADDRESS_ALLOW_NULL, &s->env.sender, &why);
    if (used < 0) {
        msg_verbose("%s: bad sender address: %s", s->cl.ident, why);
        reply_error(s, "501 5.1.7 Bad sender address syntax");
        return;
    }
    cursor = path + used;
    while ((param = next_param(&cursor)) != NULL) {
        if (strncasecmp(param, "SIZE=", 5) == 0) {
            if (have_size || !parse_size(param + 5, &size)) {
                reply_error(s, "501 5.5.4 Bad message size syntax");
                goto out;
            }
            have_size = true;
        } else if (strncasecmp(param, "BODY=", 5) == 0) {
            if (!have_body && strcasecmp(param + 5, "8BITMIME") == 0) {
                body_8bit = true;
            } else if (!have_body && strcasecmp(param + 5, "7BIT") == 0) {
                body_8bit = false;
            } else {
                reply_error(s, "501 5.5.4 Bad BODY keyword syntax");
                goto out;
            }
            have_body = true;
        } else if (strcasecmp(param, "SMTPUTF8") == 0 && set->smtputf8_enable) {
            smtputf8 = true;
        } else if (strncasecmp(param, "RET=", 4) == 0) {
            if (ret != NULL || (strcasecmp(param + 4, "FULL") != 0
                                && strcasecmp(param + 4, "HDRS") != 0)) {
                reply_error(s, "501 5.5.4 Bad RET parameter syntax");
                goto out;
            }
            ret = toupper((unsigned char) param[4]) == 'F' ? "FULL" : "HDRS";
        } else if (strncasecmp(param, "ENVID=", 6) == 0) {
            /* RFC 3461 4.4: at most 100 characters of xtext. */
            if (have_envid || strlen(param + 6) == 0 || strlen(param + 6) > 100
                || !xtext_decode(param + 6, strlen(param + 6), &envid)) {
                reply_error(s, "501 5.5.4 Bad ENVID parameter syntax");
                goto out;
            }
            have_envid = true;
        } else if (strncasecmp(param, "AUTH=", 5) == 0 && set->sasl_enable) {
            /* RFC 4954 5: another server's word on who sent it; we trust only our own login. */
        } else {
            reply_error(s, "555 5.5.4 Unsupported option: %s", param);
            goto out;
        }
    }
    if (size >= 0 && set->message_size_limit > 0 && size > set->message_size_limit) {
        reply_error(s, "552 5.3.4 Message size exceeds fixed limit");
        goto out;
    }
    if ((s->env.sender.flags & ADDRESS_8BIT) && !smtputf8) {
        reply_error(s, "553 5.6.7 Must declare SMTPUTF8 to send unicode address");
        goto out;
    }
    if (!smtpd_queue_space_ok(set, size)) {
        msg_warn("%s: not enough free space in the queue file system for MAIL FROM", s->cl.ident);
        reply_error(s, "452 4.3.1 Insufficient system storage");
        goto out;
    }
    smtpd_canonical_address(&s->env.sender, set->myorigin);
    new_instance(s);
    s->env.declared_size = size;
    s->env.body_8bit = body_8bit;
    s->env.smtputf8 = smtputf8;
    if (ret != NULL) {
        snprintf(s->dsn_ret, sizeof(s->dsn_ret), "%s", ret);
        s->env.dsn_ret = s->dsn_ret;
    }
    if (have_envid) {
        sb_set(&s->dsn_envid, sb_str(&envid));
        s->env.dsn_envid = sb_str(&s->dsn_envid);
    }
    check_start(s, SMTPD_STAGE_MAIL, "MAIL", &s->env.sender, NULL, mail_checked);
  out:
    sb_free(&envid);
}

/* notify_valid - RFC 3461 NOTIFY: NEVER, or a list of SUCCESS, FAILURE, DELAY; normalized */
static bool notify_valid(const char *value, struct strbuf *out)
{
    static const char *const words[] = {"SUCCESS", "FAILURE", "DELAY"};
    bool    seen[3] = {false, false, false};
    const char *p = value;

    sb_reset(out);
    if (strcasecmp(value, "NEVER") == 0) {
        sb_puts(out, "NEVER");
        return true;
    }
    while (*p) {
        size_t  len = strcspn(p, ",");
        bool    found = false;

        for (int i = 0; i < 3; i++) {
            if (len == strlen(words[i]) && strncasecmp(p, words[i], len) == 0 && !seen[i]) {
                seen[i] = found = true;
                if (sb_len(out))
                    sb_putc(out, ',');
                sb_puts(out, words[i]);
            }
        }
        if (!found)
            return false;
        p += len;
        if (*p == ',' && *++p == 0)
            return false;
    }
    return sb_len(out) > 0;
}

/* orcpt_valid - RFC 3461 ORCPT: addr-type ";" xtext; "type;decoded" into out */
static bool orcpt_valid(const char *value, struct strbuf *out)
{
    const char *semi = strchr(value, ';');

    sb_reset(out);
    /* RFC 3461 4.2: the parameter is at most 500 characters. */
    if (semi == NULL || semi == value || strlen(value) > 500)
        return false;
    for (const char *p = value; p < semi; p++)
        if (!isalnum((unsigned char) *p) && *p != '-')
            return false;
    sb_append(out, value, (size_t) (semi - value));
    sb_lowercase(out);
    sb_putc(out, ';');
    if (semi[1] == 0)
        return false;
    return xtext_decode(semi + 1, strlen(semi + 1), out);
}

/* rcpt_checked - RCPT's second half: the recipient restrictions answered */
static void rcpt_checked(struct smtpd_session *s, enum smtpd_verdict v, const char *text)
{
    struct address *rcpt = &s->env.rcpt[s->env.rcpt_count];

    if (v == SMTPD_CHECK_REJECT) {
        msg_info("NOQUEUE: reject: RCPT from %s: %s; from=<%s> to=<%s> proto=%s helo=<%s>",
                 s->cl.ident, text, sb_str(&s->env.sender.addr), sb_str(&rcpt->addr),
                 s->env.protocol, sb_str(&s->helo));
        free(s->pending_notify);
        free(s->pending_orcpt);
        s->pending_notify = s->pending_orcpt = NULL;
        /* Counted as an error: it slows down guessing user names. */
        reply_error(s, "%s", text);
        return;
    }
    s->env.rcpt_notify[s->env.rcpt_count] = s->pending_notify;
    s->env.rcpt_orcpt[s->env.rcpt_count] = s->pending_orcpt;
    s->pending_notify = s->pending_orcpt = NULL;
    s->env.rcpt_count++;
    reply(s, "250 2.1.5 Ok");
}

/* cmd_rcpt - RCPT TO:<recipient> [NOTIFY=..] [ORCPT=..]: checked by smtpd_check.c */
static void cmd_rcpt(struct smtpd_session *s, char *arg)
{
    struct strbuf value = STRBUF_INIT;
    char   *path;
    char   *cursor;
    char   *param;
    long    used;
    const char *why;
    struct address *rcpt;

    if (!s->in_mail) {
        reply_error(s, "503 5.5.1 Error: need MAIL command");
        return;
    }
    if (s->bdat_used) {
        reply_error(s, "503 5.5.1 Error: RCPT after BDAT");
        return;
    }
    if ((path = path_arg(arg, "TO:")) == NULL) {
        reply_error(s, "501 5.5.4 Syntax: RCPT TO:<address>");
        return;
    }
    if ((long long) s->env.rcpt_count >= s->srv->set.recipient_limit) {
        /* Not an error: a big mailing is sent in several transactions. */
        reply(s, "452 4.5.3 Error: too many recipients");
        return;
    }
    if (s->env.rcpt_count == s->rcpt_alloc) {
        size_t  n = s->rcpt_alloc ? s->rcpt_alloc * 2 : 8;

        s->env.rcpt = xreallocarray(s->env.rcpt, n, sizeof(*s->env.rcpt));
        s->env.rcpt_notify = xreallocarray(s->env.rcpt_notify, n, sizeof(char *));
        s->env.rcpt_orcpt = xreallocarray(s->env.rcpt_orcpt, n, sizeof(char *));
        for (size_t i = s->rcpt_alloc; i < n; i++) {
            address_init(&s->env.rcpt[i]);
            s->env.rcpt_notify[i] = s->env.rcpt_orcpt[i] = NULL;
        }
        s->rcpt_alloc = n;
    }
    rcpt = &s->env.rcpt[s->env.rcpt_count];
    used = address_parse_path(path, strlen(path), 0, rcpt, &why);
    if (used < 0) {
        msg_verbose("%s: bad recipient address: %s", s->cl.ident, why);
        reply_error(s, "501 5.1.3 Bad recipient address syntax");
        return;
    }
    cursor = path + used;
    while ((param = next_param(&cursor)) != NULL) {
        if (strncasecmp(param, "NOTIFY=", 7) == 0) {
            if (s->pending_notify != NULL || !notify_valid(param + 7, &value)) {
                reply_error(s, "501 5.5.4 Error: Bad NOTIFY parameter syntax");
                goto fail;
            }
            s->pending_notify = xstrdup(sb_str(&value));
        } else if (strncasecmp(param, "ORCPT=", 6) == 0) {
            if (s->pending_orcpt != NULL || !orcpt_valid(param + 6, &value)) {
                reply_error(s, "501 5.5.4 Error: Bad ORCPT parameter syntax");
                goto fail;
            }
            s->pending_orcpt = xstrdup(sb_str(&value));
        } else {
            reply_error(s, "555 5.5.4 Unsupported option: %s", param);
            goto fail;
        }
    }
    if ((rcpt->flags & ADDRESS_8BIT) && !s->env.smtputf8) {
        reply_error(s, "553 5.6.7 Must declare SMTPUTF8 to send unicode address");
        goto fail;
    }
    sb_free(&value);
    smtpd_canonical_address(rcpt, s->srv->set.myorigin);
    check_start(s, SMTPD_STAGE_RCPT, "RCPT", &s->env.sender, rcpt, rcpt_checked);
    return;
  fail:
    free(s->pending_notify);
    free(s->pending_orcpt);
    s->pending_notify = s->pending_orcpt = NULL;
    sb_free(&value);
}

/* open_store - a queue file for the transaction; false with the reply sent to reply_to */
static bool open_store(struct smtpd_session *s, struct strbuf *reply_to)
{
    void   *msg;

    sb_reset(reply_to);
    if ((msg = s->srv->store->open(&s->env, reply_to)) == NULL) {
        if (sb_len(reply_to) == 0)
            sb_set(reply_to, "451 4.3.0 Error: queue file write error");
        return false;
    }
    smtpd_data_begin(&s->data, s->srv->store, msg, s->srv->set.message_size_limit);
    return true;
}

/* data_checked - DATA's second half: smtpd_data_restrictions answered */
static void data_checked(struct smtpd_session *s, enum smtpd_verdict v, const char *text)
{
    struct strbuf why = STRBUF_INIT;

    if (v == SMTPD_CHECK_REJECT) {
        msg_info("NOQUEUE: reject: DATA from %s: %s; from=<%s> proto=%s helo=<%s>",
                 s->cl.ident, text, sb_str(&s->env.sender.addr), s->env.protocol,
                 sb_str(&s->helo));
        reply_error(s, "%s", text);
        return;
    }
    if (!open_store(s, &why)) {
        reply(s, "%s", sb_str(&why));
        sb_free(&why);
        return;
    }
    sb_free(&why);
    s->phase = PHASE_DATA;
    reply(s, "354 End data with <CR><LF>.<CR><LF>");
}

/* cmd_data - DATA: the data restrictions, then the store, then the message (smtpd_data.c) */
static void cmd_data(struct smtpd_session *s, char *arg)
{
    if (*arg) {
        reply_error(s, "501 5.5.4 Syntax: DATA");
        return;
    }
    if (s->bdat_used) {
        reply_error(s, "503 5.5.1 Error: DATA after BDAT");
        return;
    }
    if (!s->in_mail) {
        reply_error(s, "503 5.5.1 Error: need RCPT command");
        return;
    }
    if (s->env.rcpt_count == 0) {
        reply_error(s, "554 5.5.1 Error: no valid recipients");
        return;
    }
    check_start(s, SMTPD_STAGE_DATA, "DATA", &s->env.sender, NULL, data_checked);
}

/* bdat_skip - read and drop the chunk, then reply with text (an error) */
static void bdat_skip(struct smtpd_session *s, const char *text)
{
    sb_set(&s->bdat_reply, text);
    s->bdat_discard = true;
    s->bdat_remaining = s->bdat_size;
    s->phase = PHASE_BDAT;
}

/* bdat_fail - the transaction's BDAT failed: this chunk and the rest are dropped */
static void bdat_fail(struct smtpd_session *s, const char *text)
{
    smtpd_data_abort(&s->data);
    s->bdat_failed = true;
    sb_set(&s->bdat_error, text);
    bdat_skip(s, text);
}

/* bdat_checked - the first BDAT of a transaction: smtpd_data_restrictions answered */
static void bdat_checked(struct smtpd_session *s, enum smtpd_verdict v, const char *text)
{
    struct strbuf why = STRBUF_INIT;

    s->bdat_used = true;
    if (v == SMTPD_CHECK_REJECT) {
        msg_info("NOQUEUE: reject: BDAT from %s: %s; from=<%s> proto=%s helo=<%s>",
                 s->cl.ident, text, sb_str(&s->env.sender.addr), s->env.protocol,
                 sb_str(&s->helo));
        bdat_fail(s, text);
    } else if (!open_store(s, &why)) {
        bdat_fail(s, sb_str(&why));
    } else {
        s->bdat_discard = false;
        s->bdat_remaining = s->bdat_size;
        s->phase = PHASE_BDAT;
    }
    sb_free(&why);
}

/* cmd_bdat - BDAT size [LAST] (RFC 3030): the chunk's bytes follow the line */
static void cmd_bdat(struct smtpd_session *s, char *arg)
{
    char   *cursor = arg;
    char   *num = next_param(&cursor);
    char   *last = next_param(&cursor);
    long long size;

    if (num == NULL || !parse_size(num, &size)
        || (last != NULL && strcasecmp(last, "LAST") != 0) || next_param(&cursor) != NULL) {
        /* We cannot know where the chunk ends: nothing after this can be understood. */
        msg_info("%s: malformed BDAT command", s->cl.ident);
        reply_error(s, "521 5.5.4 Syntax: BDAT count [LAST]");
        close_session(s);
        return;
    }
    s->bdat_size = size;
    s->bdat_last = last != NULL;
    if (size == 0 && !s->bdat_last) {
        reply_error(s, "551 5.7.1 Null BDAT request");
        return;
    }
    if (tls_missing(s)) {
        bdat_skip(s, "530 5.7.0 Must issue a STARTTLS command first");
        return;
    }
    if (!s->in_mail) {
        bdat_skip(s, "503 5.5.1 Error: need MAIL command");
        return;
    }
    if (s->env.rcpt_count == 0) {
        bdat_skip(s, "554 5.5.1 Error: no valid recipients");
        return;
    }
    if (s->bdat_failed) {
        bdat_skip(s, sb_str(&s->bdat_error));
        return;
    }
    if (!s->bdat_used) {
        check_start(s, SMTPD_STAGE_DATA, "BDAT", &s->env.sender, NULL, bdat_checked);
        return;
    }
    s->bdat_discard = false;
    s->bdat_remaining = size;
    s->phase = PHASE_BDAT;
}

/* bdat_chunk_done - the chunk is in: its reply, or the end of the message */
static void bdat_chunk_done(struct smtpd_session *s)
{
    s->phase = PHASE_CMD;
    s->cur_cmd = CMD_BDAT;
    s->cur_errors = s->errors;
    if (s->bdat_discard) {
        reply_error(s, "%s", sb_str(&s->bdat_reply));
        if (s->bdat_last && s->in_mail)
            reset_transaction(s);
        return;
    }
    if (s->data.too_big) {
        msg_info("NOQUEUE: reject: BDAT from %s: message exceeds %lld bytes; from=<%s>",
                 s->cl.ident, s->srv->set.message_size_limit, sb_str(&s->env.sender.addr));
        smtpd_data_abort(&s->data);
        s->bdat_failed = true;
        sb_set(&s->bdat_error, "552 5.3.4 Chunk exceeds message size limit");
        reply_error(s, "552 5.3.4 Chunk exceeds message size limit");
        if (s->bdat_last)
            reset_transaction(s);
        return;
    }
    if (!s->bdat_last) {
        s->cmd_ok[CMD_BDAT]++;
        reply(s, "250 2.0.0 Ok: %lld bytes", s->bdat_size);
        return;
    }
    finish_message(s);
}

/* bdat_read - take chunk bytes from the input; true when the chunk is complete */
static bool bdat_read(struct smtpd_session *s, struct evbuffer *in)
{
    while (s->bdat_remaining > 0) {
        struct evbuffer_iovec v;
        size_t  n;

        if (evbuffer_get_length(in) == 0)
            return false;
        if (evbuffer_peek(in, -1, NULL, &v, 1) < 1 || v.iov_len == 0)
            return false;
        n = v.iov_len;
        if ((long long) n > s->bdat_remaining)
            n = (size_t) s->bdat_remaining;
        if (!s->bdat_discard)
            smtpd_data_chunk(&s->data, v.iov_base, n);
        evbuffer_drain(in, n);
        s->bdat_remaining -= (long long) n;
    }
    bdat_chunk_done(s);
    return true;
}

/* cmd_rset - RSET */
static void cmd_rset(struct smtpd_session *s, char *arg)
{
    if (*arg) {
        reply_error(s, "501 5.5.4 Syntax: RSET");
        return;
    }
    reset_transaction(s);
    reply(s, "250 2.0.0 Ok");
}

/* cmd_noop - NOOP [anything] */
static void cmd_noop(struct smtpd_session *s, char *arg)
{
    (void) arg;
    reply(s, "250 2.0.0 Ok");
}

/* cmd_vrfy - VRFY: off by default, as it tells spammers which addresses exist */
static void cmd_vrfy(struct smtpd_session *s, char *arg)
{
    struct address a;
    const char *why;

    if (s->srv->set.disable_vrfy) {
        reply_error(s, "502 5.5.1 VRFY command is disabled");
        return;
    }
    if (tls_missing(s)) {
        reply_error(s, "530 5.7.0 Must issue a STARTTLS command first");
        return;
    }
    if (*arg == 0) {
        reply_error(s, "501 5.5.4 Syntax: VRFY address");
        return;
    }
    address_init(&a);
    if (address_parse_path(arg, strlen(arg), 0, &a, &why) != (long) strlen(arg))
        reply_error(s, "501 5.1.3 Bad recipient address syntax");
    else
        reply(s, "252 2.0.0 %s", sb_str(&a.addr));
    address_free(&a);
}

/* cmd_help - HELP */
static void cmd_help(struct smtpd_session *s, char *arg)
{
    (void) arg;
    reply(s, "214-2.0.0 Commands: HELO EHLO%s%s MAIL RCPT DATA RSET NOOP%s QUIT HELP",
          tls_offered(s) ? " STARTTLS" : "", auth_offered(s) ? " AUTH" : "",
          s->srv->set.disable_vrfy ? "" : " VRFY");
    reply(s, "214 2.0.0 See RFC 5321");
}

/* cmd_quit - QUIT */
static void cmd_quit(struct smtpd_session *s, char *arg)
{
    (void) arg;
    reply(s, "221 2.0.0 Bye");
    close_session(s);
}

/* cmd_starttls - STARTTLS: 220, then the handshake once the 220 is written */
static void cmd_starttls(struct smtpd_session *s, char *arg)
{
    struct evbuffer *in = bufferevent_get_input(s->bev);
    size_t  pending;

    if (*arg) {
        reply_error(s, "501 5.5.4 Syntax: STARTTLS");
        return;
    }
    if (s->cl.tls) {
        reply_error(s, "554 5.5.1 Error: TLS already active");
        return;
    }
    if (!tls_offered(s)) {
        reply_error(s, "502 5.5.1 Error: command not implemented");
        return;
    }
    reply(s, "220 2.0.0 Ready to start TLS");
    /* RFC 3207 5: clear text sent behind STARTTLS must not run inside TLS. */
    if ((pending = evbuffer_get_length(in)) > 0) {
        msg_info("%s: discarding %zu bytes pipelined after STARTTLS", s->cl.ident, pending);
        evbuffer_drain(in, pending);
    }
    s->skipping = false;
    s->phase = PHASE_TLS;
    bufferevent_disable(s->bev, EV_READ);
}

/* printable_reason - authd's reason for a reply line and the log: bounded, no controls */
static void printable_reason(struct strbuf *out, const char *text)
{
    size_t  len = strnlen(text, 200);

    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char) text[i];

        sb_putc(out, c < 0x20 || c == 0x7f ? '?' : c);
    }
    if (len == 0)
        sb_puts(out, "authentication failure");
}

/* auth_end - the exchange is over (or abandoned): back to commands */
static void auth_end(struct smtpd_session *s)
{
    if (s->sasl != NULL) {
        smtpd_sasl_cancel(s->sasl);
        s->sasl = NULL;
    }
    s->auth_wait_line = false;
    s->phase = PHASE_CMD;
}

/* auth_result - authd answered (smtpd_sasl.c calls this from the event loop) */
static void auth_result(void *ctx, enum smtpd_sasl_status status, const char *text)
{
    struct smtpd_session *s = ctx;
    struct strbuf why = STRBUF_INIT;

    switch (status) {
    case SMTPD_SASL_CONT:
        reply(s, "334 %s", text);
        s->auth_wait_line = true;
        break;
    case SMTPD_SASL_OK:
        s->sasl = NULL;
        auth_end(s);
        sb_set(&s->sasl_user, text);
        s->cl.sasl_username = sb_str(&s->sasl_user);
        s->cl.sasl_method = s->sasl_mech;
        if (s->srv->set.sasl_header)
            s->env.received_auth = s->cl.sasl_username;
        set_protocol(s);
        s->cmd_ok[CMD_AUTH]++;
        reply(s, "235 2.7.0 Authentication successful");
        break;
    case SMTPD_SASL_FAIL:
        s->sasl = NULL;
        auth_end(s);
        printable_reason(&why, text);
        /* Postfix's wording, which fail2ban filters look for. */
        msg_warn("%s: SASL %s authentication failed: %s", s->cl.ident, s->sasl_mech,
                 sb_str(&why));
        reply_error(s, "535 5.7.8 Error: authentication failed: %s", sb_str(&why));
        break;
    case SMTPD_SASL_TEMPFAIL:
        s->sasl = NULL;
        auth_end(s);
        printable_reason(&why, text);
        msg_warn("%s: SASL %s authentication failed: temporary failure: %s", s->cl.ident,
                 s->sasl_mech, sb_str(&why));
        reply(s, "454 4.7.0 Temporary authentication failure");
        break;
    }
    sb_free(&why);
    check_error_limit(s);
    session_process(s);
    maybe_free(s);
}

/* cmd_auth - AUTH mechanism [initial-response] (RFC 4954) */
static void cmd_auth(struct smtpd_session *s, char *arg)
{
    const struct smtpd_settings *set = &s->srv->set;
    struct smtpd_sasl_req req;
    char   *cursor = arg;
    char   *mech;
    char   *resp;

    if (!set->sasl_enable) {
        reply_error(s, "503 5.5.1 Error: authentication not enabled");
        return;
    }
    if (tls_missing(s)) {
        reply_error(s, "530 5.7.0 Must issue a STARTTLS command first");
        return;
    }
    if (!auth_offered(s)) {
        reply_error(s, "538 5.7.11 Encryption required for requested authentication mechanism");
        return;
    }
    if (!s->esmtp) {
        reply_error(s, "503 5.5.1 Error: send EHLO first");
        return;
    }
    if (s->in_mail) {
        reply_error(s, "503 5.5.1 Error: MAIL transaction in progress");
        return;
    }
    if (s->cl.sasl_username != NULL) {
        reply_error(s, "503 5.5.1 Error: already authenticated");
        return;
    }
    mech = next_param(&cursor);
    resp = next_param(&cursor);
    if (mech == NULL || next_param(&cursor) != NULL) {
        reply_error(s, "501 5.5.4 Syntax: AUTH mechanism");
        return;
    }
    if (strlen(mech) > AUTH_PROTO_MAX_MECH || !smtpd_sasl_mech_supported(mech)) {
        reply_error(s, "504 5.5.4 Unsupported authentication mechanism");
        return;
    }
    /* RFC 4954 4: "=" is an empty initial response. */
    if (resp != NULL && strcmp(resp, "=") == 0)
        resp = (char *) "";
    else if (resp != NULL && !auth_base64_valid(resp)) {
        reply_error(s, "501 5.5.2 Cannot decode response");
        return;
    }
    snprintf(s->sasl_mech, sizeof(s->sasl_mech), "%s", mech);
    for (char *p = s->sasl_mech; *p; p++)
        *p = (char) toupper((unsigned char) *p);
    memset(&req, 0, sizeof(req));
    req.mech = s->sasl_mech;
    req.resp = resp;
    req.secured = s->cl.tls;
    req.lip = s->cl.local_addr[0] ? s->cl.local_addr : NULL;
    req.rip = s->cl.peer_len > 0 ? s->cl.addr : NULL;
    s->phase = PHASE_AUTH;
    s->auth_wait_line = false;
    s->sasl = smtpd_sasl_start(s->srv, &req, auth_result, s);
}

/* auth_response - the client's line after a 334 */
static void auth_response(struct smtpd_session *s)
{
    char   *line = s->line.data ? s->line.data : (char *) "";
    size_t  len = sb_len(&s->line);

    while (len > 0 && (line[len - 1] == ' ' || line[len - 1] == '\t'))
        line[--len] = 0;
    s->auth_wait_line = false;
    if (strcmp(line, "*") == 0) {
        auth_end(s);
        msg_warn("%s: SASL %s authentication aborted", s->cl.ident, s->sasl_mech);
        reply_error(s, "501 5.7.0 Authentication aborted");
        return;
    }
    if (memchr(line, 0, len) != NULL || !auth_base64_valid(line)) {
        auth_end(s);
        reply_error(s, "501 5.5.2 Cannot decode response");
        return;
    }
    smtpd_sasl_respond(s->sasl, line);
}
