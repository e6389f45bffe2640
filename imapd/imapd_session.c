/*
 * imapd_session - one IMAP connection: reading commands, dispatching them by
 * state, output and flow control, STARTTLS and implicit TLS, timeouts, and
 * the small commands CAPABILITY NOOP LOGOUT ID ENABLE NAMESPACE STARTTLS.
 *
 * Interface: imapd.h (output functions, imapd_suspend, imapd_command_done)
 * and imapd_priv.h (imapd_session_start, imapd_session_stop_all, ...).
 *
 * Reading. lib/imap_parse.c's reader takes whole commands off the input,
 * literals included; "+ Ready for literal data" is sent for synchronizing
 * literals, LITERAL+ ones just arrive. Limits: imapd_max_line_length per line
 * part; literals the same before login, message_size_limit after it (APPEND
 * is the only command that needs large ones). An over-long command is
 * answered BAD (NO [TOOBIG] after login, where it is an APPEND in practice)
 * and the connection stays usable; input that cannot be resynchronized gets
 * "* BYE" and the connection closes. Syntax errors are BAD, never fatal;
 * too many of them in a row end the connection.
 *
 * One command at a time: while a command runs (its handler waits for authd,
 * or suspended itself because the client reads its output slowly, or IDLE /
 * AUTHENTICATE wants a raw line), no further command is read; pipelined
 * input waits in the socket buffer, bounded by the read watermark. Before a
 * command's tagged reply, imapd_tagged() sends the selected folder's updates
 * (EXISTS, EXPUNGE when allowed, FETCH FLAGS), so a NOOP shows them.
 *
 * STARTTLS (RFC 3501 6.2.1, RFC 2595): after the tagged OK nothing more is
 * read in clear text; input the client pipelined behind STARTTLS is thrown
 * away (the plaintext injection attack), and the session forgets nothing
 * because nothing of value exists before login.
 *
 * Timeouts: imapd_timeout before login, 30 minutes after (RFC 3501 5.4),
 * IDLE included. Memory: an idle session holds its struct, its bufferevent
 * (and TLS state) and no buffers: the command buffer is freed between
 * commands when it grew, the evbuffers free their chains when drained.
 *
 * Diagnostics: "connect from", "disconnect from ... user=<..>", timeouts,
 * TLS failures; commands are logged only in verbose mode, never passwords.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

#include "imap_parse.h"
#include "log.h"
#include "mem.h"
#include "service.h"
#include "strbuf.h"
#include "tls.h"
#include "tls_event.h"

#include "imapd.h"
#include "imapd_priv.h"

#define SESSION_IN_HIGH     (64 * 1024)     /* stop reading the socket above this (plus a line) */
#define SESSION_OUT_LOW     (64 * 1024)     /* resume a suspended command below this */
#define SESSION_MAX_ERRORS  20              /* BAD commands in a row before "* BYE" */
#define SESSION_CMD_KEEP    4096            /* command buffer kept between commands */

/* Where a session is with respect to commands. */
enum run_state {
    RUN_READ,                           /* reading the next command */
    RUN_BUSY,                           /* a handler is running */
    RUN_WAIT,                           /* the command waits (authd, output, a line) */
};

/* What the session is doing with TLS. */
enum tls_phase { TLS_OFF, TLS_SWITCH, TLS_HANDSHAKE, TLS_ON };

#define ST_NOTAUTH  (1u << IMAPD_NOT_AUTH)
#define ST_AUTH     (1u << IMAPD_AUTH)
#define ST_SEL      (1u << IMAPD_SELECTED)
#define ST_ANY      (ST_NOTAUTH | ST_AUTH | ST_SEL)
#define ST_LOGGED   (ST_AUTH | ST_SEL)

struct command {
    const char *name;
    imapd_command_fn *fn;
    unsigned states;                    /* ST_* where it is allowed */
    bool    uid_ok;                     /* may follow "UID" */
    bool    no_expunge;                 /* sequence numbers must not shift (non-UID form) */
};

struct session_priv {
    struct imapd_session *prev, *next;  /* srv->sessions */
    int     fd;
    struct imap_reader rd;
    struct imap_command cmd;
    bool    have_cmd;
    char    tag[IMAP_MAX_TAG + 1];      /* the running command's tag; "" between commands */
    const struct command *cur;
    bool    cur_uid;
    bool    synced;                     /* updates sent for the running command */
    enum run_state run;
    void    (*resume)(struct imapd_session *s, void *ctx);
    void   *resume_ctx;
    void    (*line_fn)(struct imapd_session *s, const char *line, size_t len);
    bool    line_skipping;              /* an over-long raw line is being dropped */
    enum tls_phase tls;
    bool    greet_after_tls;            /* 993: the greeting waits for the handshake */
    bool    closing;                    /* BYE sent: close when the output is out */
    bool    broken;                     /* no orderly TLS close */
    unsigned errors;                    /* BAD replies in a row */
    char    ip[INET6_ADDRSTRLEN];       /* client address alone ("" unknown) */
    char    lip[INET6_ADDRSTRLEN];      /* our address */
    struct event *kick;                 /* process input from the loop (after a wait ends) */
    struct strbuf line;                 /* raw line for line_fn */
    void   *slot[2];                    /* imapd_login.c's and imapd_mailbox.c's state */
};

static void cmd_capability(struct imapd_session *s, const char *tag, const struct imap_arg *args,
                           size_t nargs, bool uid);
static void cmd_noop(struct imapd_session *s, const char *tag, const struct imap_arg *args,
                     size_t nargs, bool uid);
static void cmd_logout(struct imapd_session *s, const char *tag, const struct imap_arg *args,
                       size_t nargs, bool uid);
static void cmd_id(struct imapd_session *s, const char *tag, const struct imap_arg *args,
                   size_t nargs, bool uid);
static void cmd_enable(struct imapd_session *s, const char *tag, const struct imap_arg *args,
                       size_t nargs, bool uid);
static void cmd_namespace(struct imapd_session *s, const char *tag, const struct imap_arg *args,
                          size_t nargs, bool uid);
static void cmd_starttls(struct imapd_session *s, const char *tag, const struct imap_arg *args,
                         size_t nargs, bool uid);

static const struct command commands[] = {
    {"CAPABILITY", cmd_capability, ST_ANY, false, false},
    {"NOOP", cmd_noop, ST_ANY, false, false},
    {"LOGOUT", cmd_logout, ST_ANY, false, false},
    {"ID", cmd_id, ST_ANY, false, false},
    {"STARTTLS", cmd_starttls, ST_NOTAUTH, false, false},
    {"LOGIN", imapd_cmd_login, ST_NOTAUTH, false, false},
    {"AUTHENTICATE", imapd_cmd_authenticate, ST_NOTAUTH, false, false},
    {"ENABLE", cmd_enable, ST_LOGGED, false, false},
    {"NAMESPACE", cmd_namespace, ST_LOGGED, false, false},
    {"SELECT", imapd_cmd_select, ST_LOGGED, false, false},
    {"EXAMINE", imapd_cmd_examine, ST_LOGGED, false, false},
    {"CREATE", imapd_cmd_create, ST_LOGGED, false, false},
    {"DELETE", imapd_cmd_delete, ST_LOGGED, false, false},
    {"RENAME", imapd_cmd_rename, ST_LOGGED, false, false},
    {"SUBSCRIBE", imapd_cmd_subscribe, ST_LOGGED, false, false},
    {"UNSUBSCRIBE", imapd_cmd_unsubscribe, ST_LOGGED, false, false},
    {"LIST", imapd_cmd_list, ST_LOGGED, false, false},
    {"LSUB", imapd_cmd_lsub, ST_LOGGED, false, false},
    {"STATUS", imapd_cmd_status, ST_LOGGED, false, false},
    {"APPEND", imapd_cmd_append, ST_LOGGED, false, false},
    {"IDLE", imapd_cmd_idle, ST_LOGGED, false, false},
    {"GETQUOTA", imapd_cmd_getquota, ST_LOGGED, false, false},
    {"GETQUOTAROOT", imapd_cmd_getquotaroot, ST_LOGGED, false, false},
    {"SETQUOTA", imapd_cmd_setquota, ST_LOGGED, false, false},
    {"CHECK", imapd_cmd_check, ST_SEL, false, false},
    {"CLOSE", imapd_cmd_close, ST_SEL, false, false},
    {"UNSELECT", imapd_cmd_unselect, ST_SEL, false, false},
    {"EXPUNGE", imapd_cmd_expunge, ST_SEL, true, false},
    {"SEARCH", imapd_cmd_search, ST_SEL, true, true},
    {"FETCH", imapd_cmd_fetch, ST_SEL, true, true},
    {"STORE", imapd_cmd_store, ST_SEL, true, true},
    {"COPY", imapd_cmd_copy, ST_SEL, true, false},
    {"MOVE", imapd_cmd_move, ST_SEL, true, false},
};

static void session_process(struct imapd_session *s);

/* P - the session's private part */
static inline struct session_priv *P(struct imapd_session *s)
{
    return s->priv;
}

/* ---- output ---- */

/* imapd_printf - append formatted text to the output (the caller writes "\r\n") */
void imapd_printf(struct imapd_session *s, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    evbuffer_add_vprintf(bufferevent_get_output(s->bev), fmt, ap);
    va_end(ap);
}

/* imapd_write - append raw bytes (literal contents) */
void imapd_write(struct imapd_session *s, const void *data, size_t len)
{
    evbuffer_add(bufferevent_get_output(s->bev), data, len);
}

/* imapd_tagged - the selected folder's updates, then "TAG " + text + "\r\n" */
void imapd_tagged(struct imapd_session *s, const char *tag, const char *fmt, ...)
{
    struct session_priv *p = P(s);
    struct evbuffer *out = bufferevent_get_output(s->bev);
    va_list ap;

    if (s->state == IMAPD_SELECTED && s->mbox != NULL && !p->synced && p->tag[0]
        && strcmp(tag, p->tag) == 0) {
        p->synced = true;
        imapd_send_updates(s, !(p->cur && p->cur->no_expunge && !p->cur_uid));
    }
    evbuffer_add_printf(out, "%s ", tag);
    va_start(ap, fmt);
    evbuffer_add_vprintf(out, fmt, ap);
    va_end(ap);
    evbuffer_add(out, "\r\n", 2);
}

/* imapd_output_pending - bytes queued for the client and not yet sent */
size_t imapd_output_pending(struct imapd_session *s)
{
    return evbuffer_get_length(bufferevent_get_output(s->bev));
}

/* imapd_suspend - continue the current command with resume(s, ctx) once output drains */
void imapd_suspend(struct imapd_session *s, void (*resume)(struct imapd_session *s, void *ctx), void *ctx)
{
    struct session_priv *p = P(s);

    p->run = RUN_WAIT;
    p->resume = resume;
    p->resume_ctx = ctx;
}

/* imapd_session_wait - the current command waits for something other than output (authd) */
void imapd_session_wait(struct imapd_session *s)
{
    struct session_priv *p = P(s);

    p->run = RUN_WAIT;
    p->resume = NULL;
    p->line_fn = NULL;
}

/* imapd_read_line - the current command wants the client's next line (AUTHENTICATE, IDLE's DONE) */
void imapd_read_line(struct imapd_session *s, void (*fn)(struct imapd_session *s, const char *line,
                                                         size_t len))
{
    struct session_priv *p = P(s);

    p->run = RUN_WAIT;
    p->resume = NULL;
    p->line_fn = fn;
    p->line_skipping = false;
    /* The line may be in the input already (pipelined "DONE"). */
    if (!event_pending(p->kick, EV_TIMEOUT, NULL)) {
        struct timeval now = {0, 0};

        evtimer_add(p->kick, &now);
    }
}

/* command_finish - the running command is over: release it */
static void command_finish(struct imapd_session *s)
{
    struct session_priv *p = P(s);

    if (p->have_cmd)
        imap_command_free(&p->cmd);
    p->have_cmd = false;
    p->tag[0] = 0;
    p->cur = NULL;
    p->run = RUN_READ;
    p->resume = NULL;
    p->line_fn = NULL;
    /* An idle session keeps no command buffer worth speaking of. */
    if (p->rd.cmd.cap > SESSION_CMD_KEEP
        || evbuffer_get_length(bufferevent_get_input(s->bev)) == 0)
        sb_free(&p->rd.cmd);
    sb_free(&p->line);
}

/* imapd_command_done - a waiting command has sent its tagged reply: read the next one */
void imapd_command_done(struct imapd_session *s)
{
    struct session_priv *p = P(s);
    struct timeval now = {0, 0};

    if (p->run == RUN_READ)
        return;
    if (p->run == RUN_BUSY) {
        /* Called from inside the handler: run_command finishes it. */
        p->run = RUN_READ;
        return;
    }
    command_finish(s);
    /* Not from here: the caller may be deep inside a callback of its own. */
    evtimer_add(p->kick, &now);
}

/* imapd_current_tag - the tag of the command being run, "" between commands */
const char *imapd_current_tag(struct imapd_session *s)
{
    return P(s)->tag;
}

/* ---- life cycle ---- */

/* session_free - log, release everything, tell the skeleton */
static void session_free(struct imapd_session *s)
{
    struct session_priv *p = P(s);
    struct imapd_server *srv = s->srv;
    SSL    *ssl;

    msg_info("disconnect from %s%s%s%s", s->client_addr, s->user ? " user=<" : "",
             s->user ? s->user : "", s->user ? ">" : "");
    imapd_login_abort(s);
    imapd_idle_stop(s);
    if (s->mbox != NULL)
        imapd_mailbox_deselect(s);
    imapd_logout(s);
    if (p->have_cmd)
        imap_command_free(&p->cmd);
    imap_reader_free(&p->rd);
    sb_free(&p->line);
    if (p->tls == TLS_ON && !p->broken && (ssl = bufferevent_openssl_get_ssl(s->bev)) != NULL
        && SSL_is_init_finished(ssl)) {
        /* One small non-blocking write; if the socket is full the client does without it. */
        SSL_shutdown(ssl);
        ERR_clear_error();
    }
    bufferevent_free(s->bev);           /* closes the socket */
    event_free(p->kick);
    if (p->prev)
        P(p->prev)->next = p->next;
    else
        srv->sessions = p->next;
    if (p->next)
        P(p->next)->prev = p->prev;
    srv->session_count--;
    free(s->user);
    free(p);
    free(s);
    service_check_idle(srv->svc);
}

/* imapd_close - "* BYE" has been written: close once the output is out */
void imapd_close(struct imapd_session *s)
{
    struct session_priv *p = P(s);

    p->closing = true;
    s->state = IMAPD_LOGOUT;
    bufferevent_disable(s->bev, EV_READ);
}

/* maybe_free - at the end of each callback: a closing session whose output is out goes */
static bool maybe_free(struct imapd_session *s)
{
    if (P(s)->closing && imapd_output_pending(s) == 0) {
        session_free(s);
        return true;
    }
    return false;
}

/* set_timeouts - imapd_timeout before login, the autologout time after */
static void set_timeouts(struct imapd_session *s)
{
    const struct imapd_settings *set = &s->srv->set;
    struct timeval tv;

    tv.tv_sec = (time_t) (s->state == IMAPD_NOT_AUTH ? set->timeout : set->autologout);
    tv.tv_usec = 0;
    bufferevent_set_timeouts(s->bev, &tv, &tv);
}

/* setup_bev - callbacks, limits and timeouts on the session's (new) bufferevent */
static void read_cb(struct bufferevent *bev, void *arg);
static void write_cb(struct bufferevent *bev, void *arg);
static void event_cb(struct bufferevent *bev, short what, void *arg);

static void setup_bev(struct imapd_session *s)
{
    size_t  in_high = s->srv->set.max_line + SESSION_IN_HIGH;

    bufferevent_setcb(s->bev, read_cb, write_cb, event_cb, s);
    bufferevent_setwatermark(s->bev, EV_READ, 0, in_high);
    bufferevent_setwatermark(s->bev, EV_WRITE, SESSION_OUT_LOW, 0);
    set_timeouts(s);
}

/* write_capabilities - the capability list for the session's state (no CRLF) */
static void write_capabilities(struct imapd_session *s)
{
    struct session_priv *p = P(s);
    struct imapd_server *srv = s->srv;

    imapd_printf(s, "IMAP4rev1 SASL-IR LITERAL+ ID ENABLE IDLE");
    if (s->state == IMAPD_NOT_AUTH) {
        if (srv->tls != NULL && p->tls == TLS_OFF && srv->set.tls_level != IMAPD_TLS_NONE)
            imapd_printf(s, " STARTTLS");
        if (imapd_plaintext_allowed(s))
            imapd_printf(s, " AUTH=PLAIN");
        else
            imapd_printf(s, " LOGINDISABLED");
        return;
    }
    imapd_printf(s, " NAMESPACE UIDPLUS MOVE UNSELECT CHILDREN SPECIAL-USE LIST-EXTENDED "
                 "LIST-STATUS STATUS=SIZE QUOTA QUOTA=RES-STORAGE ESEARCH CONDSTORE");
}

/* imapd_write_capabilities - the capability list for the session's state (no CRLF) */
void imapd_write_capabilities(struct imapd_session *s)
{
    write_capabilities(s);
}

/* imapd_slot - a per-session pointer for login (0) and mailbox (1) state */
void **imapd_slot(struct imapd_session *s, int which)
{
    return &P(s)->slot[which ? 1 : 0];
}

/* greet - "* OK [CAPABILITY ...] Postern ready." */
static void greet(struct imapd_session *s)
{
    imapd_printf(s, "* OK [CAPABILITY ");
    write_capabilities(s);
    imapd_printf(s, "] Postern ready.\r\n");
    if (s->srv->svc->stopping) {
        imapd_printf(s, "* BYE Server shutting down.\r\n");
        imapd_close(s);
    }
}

/* start_tls - the tagged OK for STARTTLS is written: move the socket under TLS */
static void start_tls(struct imapd_session *s)
{
    struct session_priv *p = P(s);
    int     fd = fcntl(p->fd, F_DUPFD_CLOEXEC, 0);
    struct bufferevent *tls = NULL;

    if (fd < 0)
        msg_warn("%s: cannot start TLS: %s", s->client_addr, strerror(errno));
    else if ((tls = tls_event_accept(s->srv->tls, s->srv->svc->base, fd)) == NULL)
        close(fd);
    if (tls == NULL) {
        p->broken = true;
        session_free(s);
        return;
    }
    /* Frees the plain bufferevent, its unread (injected) input, and its descriptor. */
    bufferevent_free(s->bev);
    s->bev = tls;
    p->fd = fd;
    p->tls = TLS_HANDSHAKE;
    /* Whatever the reader held came in clear text: forget it. */
    imap_reader_free(&p->rd);
    imap_reader_init(&p->rd, s->srv->set.max_line, s->srv->set.max_literal);
    setup_bev(s);
    bufferevent_enable(s->bev, EV_READ | EV_WRITE);
}

/* tls_established - the handshake is done: log it, greet on 993, read commands */
static void tls_established(struct imapd_session *s)
{
    struct session_priv *p = P(s);
    struct strbuf info = STRBUF_INIT;
    struct strbuf details = STRBUF_INIT;
    SSL    *ssl = bufferevent_openssl_get_ssl(s->bev);

    p->tls = TLS_ON;
    s->tls = true;
    if (ssl != NULL)
        tls_describe(ssl, &info, &details);
    msg_info("Anonymous TLS connection established from %s: %s%s%s", s->client_addr,
             sb_str(&info), sb_len(&details) ? " " : "", sb_str(&details));
    sb_free(&info);
    sb_free(&details);
    if (p->greet_after_tls) {
        p->greet_after_tls = false;
        greet(s);
    } else {
        command_finish(s);              /* STARTTLS itself */
    }
    session_process(s);
}

/* ---- reading ---- */

/* find_command - the table entry for name, or NULL */
static const struct command *find_command(const char *name)
{
    for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
        if (strcasecmp(commands[i].name, name) == 0)
            return &commands[i];
    return NULL;
}

/* bad - a tagged BAD; too many in a row end the session */
static void bad(struct imapd_session *s, const char *tag, const char *text)
{
    struct session_priv *p = P(s);

    imapd_tagged(s, tag, "BAD %s", text);
    if (++p->errors >= SESSION_MAX_ERRORS) {
        msg_info("too many errors from %s", s->client_addr);
        imapd_printf(s, "* BYE Too many invalid IMAP commands.\r\n");
        imapd_close(s);
    }
}

/* safe_name - a command name fit for a reply: printable atom characters, bounded */
static void safe_name(const char *name, char *buf, size_t size)
{
    size_t  n = 0;

    for (; *name && n + 1 < size && n < 32; name++)
        buf[n++] = (*name > 0x20 && *name < 0x7f && *name != '"' && *name != '\\') ? *name : '?';
    buf[n] = 0;
}

/* run_command - rd.cmd holds a whole command: parse, check the state, run the handler */
static void run_command(struct imapd_session *s)
{
    struct session_priv *p = P(s);
    struct strbuf err = STRBUF_INIT;
    const struct command *c;
    const struct imap_arg *args;
    size_t  nargs;
    bool    uid = false;
    char    name[40];

    if (imap_parse_command(sb_str(&p->rd.cmd), sb_len(&p->rd.cmd), &p->cmd, &err) < 0) {
        const char *tag = p->cmd.tag && *p->cmd.tag ? p->cmd.tag : "*";

        bad(s, tag, sb_len(&err) ? sb_str(&err) : "Error in IMAP command");
        imap_command_free(&p->cmd);
        sb_free(&err);
        return;
    }
    sb_free(&err);
    p->have_cmd = true;
    snprintf(p->tag, sizeof(p->tag), "%s", p->cmd.tag);
    safe_name(p->cmd.name ? p->cmd.name : "", name, sizeof(name));
    if (log_verbose_level() > 0)
        msg_verbose("%s: < %s %s%s", s->client_addr, p->tag, name,
                    strcasecmp(name, "LOGIN") == 0 || strcasecmp(name, "AUTHENTICATE") == 0
                    ? " ..." : "");
    args = p->cmd.args;
    nargs = p->cmd.count;
    if (strcasecmp(name, "UID") == 0) {
        if (nargs == 0 || args[0].type != IMAP_ARG_ATOM) {
            bad(s, p->tag, "Missing UID command");
            command_finish(s);
            return;
        }
        uid = true;
        safe_name(args[0].str, name, sizeof(name));
        args++;
        nargs--;
    }
    c = find_command(name);
    if (c == NULL || (uid && !c->uid_ok)) {
        char    text[80];

        snprintf(text, sizeof(text), "Unknown command %s%s", uid ? "UID " : "", name);
        bad(s, p->tag, text);
        command_finish(s);
        return;
    }
    if (!(c->states & (1u << s->state))) {
        bad(s, p->tag, s->state == IMAPD_NOT_AUTH ? "Command not permitted before login"
            : s->state == IMAPD_AUTH && (c->states & ST_SEL) ? "No mailbox selected"
            : "Command not permitted now");
        command_finish(s);
        return;
    }
    p->errors = 0;
    p->cur = c;
    p->cur_uid = uid;
    p->synced = false;
    p->run = RUN_BUSY;
    c->fn(s, p->tag, args, nargs, uid);
    if (p->run == RUN_BUSY || p->run == RUN_READ) {
        if (!p->synced && s->state == IMAPD_SELECTED && s->mbox != NULL) {
            p->synced = true;
            imapd_send_updates(s, !(c->no_expunge && !uid));
        }
        command_finish(s);
    }
}

/* read_raw_line - the next raw line for line_fn; 1 with it in p->line, 0 need more, -1 too long */
static int read_raw_line(struct imapd_session *s, struct evbuffer *in)
{
    struct session_priv *p = P(s);
    struct evbuffer_ptr eol = evbuffer_search(in, "\n", 1, NULL);
    size_t  avail = evbuffer_get_length(in);
    size_t  len;
    const char *data;

    if (eol.pos < 0) {
        if (p->line_skipping || avail > s->srv->set.max_line + 1) {
            p->line_skipping = true;
            evbuffer_drain(in, avail);
        }
        return 0;
    }
    len = (size_t) eol.pos;
    if (p->line_skipping || len > s->srv->set.max_line + 1) {
        p->line_skipping = false;
        evbuffer_drain(in, len + 1);
        return -1;
    }
    data = (const char *) evbuffer_pullup(in, (ssize_t) len + 1);
    sb_reset(&p->line);
    sb_append(&p->line, data, len > 0 && data[len - 1] == '\r' ? len - 1 : len);
    evbuffer_drain(in, len + 1);
    return 1;
}

/* session_process - take commands from the input while we may */
static void session_process(struct imapd_session *s)
{
    struct session_priv *p = P(s);
    struct evbuffer *in;
    int     got;

    while (!p->closing && p->tls != TLS_SWITCH && p->tls != TLS_HANDSHAKE) {
        in = bufferevent_get_input(s->bev);
        if (p->run == RUN_WAIT && p->line_fn != NULL) {
            void    (*fn)(struct imapd_session *, const char *, size_t) = p->line_fn;

            if ((got = read_raw_line(s, in)) == 0)
                return;
            p->line_fn = NULL;
            if (got < 0)
                fn(s, NULL, 0);
            else
                fn(s, sb_str(&p->line), sb_len(&p->line));
            continue;
        }
        if (p->run != RUN_READ)
            return;
        /* A client that does not read its replies gets no more of them. */
        if (imapd_output_pending(s) >= IMAPD_OUTPUT_HIGH)
            return;
        switch (imap_reader_feed(&p->rd, in)) {
        case IMAP_READ_MORE:
            return;
        case IMAP_READ_CONTINUE:
            imapd_printf(s, "+ Ready for literal data\r\n");
            break;
        case IMAP_READ_TOO_LONG:
            if (s->state == IMAPD_NOT_AUTH)
                bad(s, p->rd.tag, "Command line or literal too long");
            else
                imapd_tagged(s, p->rd.tag, "NO [TOOBIG] Command line or literal too long");
            sb_free(&p->rd.cmd);
            break;
        case IMAP_READ_FATAL:
            msg_info("%s: input cannot be resynchronized (line or literal too long)", s->client_addr);
            imapd_printf(s, "* BYE Command line too long.\r\n");
            imapd_close(s);
            return;
        case IMAP_READ_COMMAND:
            run_command(s);
            break;
        }
    }
}

/* kick_cb - a wait ended (or a raw line is wanted): look at the input again */
static void kick_cb(evutil_socket_t fd, short what, void *arg)
{
    struct imapd_session *s = arg;

    (void) fd;
    (void) what;
    session_process(s);
    maybe_free(s);
}

/* read_cb - input arrived */
static void read_cb(struct bufferevent *bev, void *arg)
{
    struct imapd_session *s = arg;

    (void) bev;
    session_process(s);
    maybe_free(s);
}

/* write_cb - output drained below the low mark: resume, switch to TLS, or close */
static void write_cb(struct bufferevent *bev, void *arg)
{
    struct imapd_session *s = arg;
    struct session_priv *p = P(s);

    (void) bev;
    if (maybe_free(s))
        return;
    /* STARTTLS's OK is out: the next byte from the client is TLS. */
    if (p->tls == TLS_SWITCH) {
        if (imapd_output_pending(s) == 0)
            start_tls(s);
        return;
    }
    if (p->run == RUN_WAIT && p->resume != NULL) {
        void    (*resume)(struct imapd_session *, void *) = p->resume;

        p->resume = NULL;
        resume(s, p->resume_ctx);
        if (maybe_free(s))
            return;
    }
    session_process(s);
    maybe_free(s);
}

/* event_cb - TLS handshake done, end of file, error, or timeout */
static void event_cb(struct bufferevent *bev, short what, void *arg)
{
    struct imapd_session *s = arg;
    struct session_priv *p = P(s);
    struct strbuf why = STRBUF_INIT;

    (void) bev;
    if (what & BEV_EVENT_CONNECTED) {
        tls_established(s);
        maybe_free(s);
        return;
    }
    if (p->tls == TLS_HANDSHAKE) {
        if (what & BEV_EVENT_TIMEOUT) {
            msg_info("%s: timeout in the TLS handshake", s->client_addr);
        } else {
            tls_event_error(s->bev, &why);
            msg_info("%s: TLS handshake failed: %s", s->client_addr, sb_str(&why));
        }
        sb_free(&why);
        p->broken = true;
        session_free(s);
        return;
    }
    if (p->closing) {
        p->broken = true;
        session_free(s);
        return;
    }
    if (what & BEV_EVENT_TIMEOUT) {
        msg_info("%s: timeout%s%s%s", s->client_addr, s->user ? " user=<" : "",
                 s->user ? s->user : "", s->user ? ">" : "");
        if (what & BEV_EVENT_WRITING) {
            p->broken = true;
            session_free(s);
            return;
        }
        imapd_printf(s, "* BYE Disconnected for inactivity.\r\n");
        imapd_close(s);
        bufferevent_enable(s->bev, EV_WRITE);
        maybe_free(s);
        return;
    }
    if (what & BEV_EVENT_ERROR) {
        if (p->tls == TLS_ON)
            tls_event_error(s->bev, &why);
        else
            sb_puts(&why, strerror(EVUTIL_SOCKET_ERROR()));
        msg_info("%s: connection error: %s", s->client_addr, sb_str(&why));
        sb_free(&why);
    }
    p->broken = (what & BEV_EVENT_ERROR) != 0;
    session_free(s);
}

/* format_addr - text of an address, IPv4-mapped IPv6 shown as IPv4 */
static void format_addr(const struct sockaddr_storage *ss, socklen_t len, char *buf, size_t size,
                        unsigned *port)
{
    buf[0] = 0;
    *port = 0;
    if (ss->ss_family == AF_INET && len >= (socklen_t) sizeof(struct sockaddr_in)) {
        const struct sockaddr_in *sin = (const struct sockaddr_in *) ss;

        inet_ntop(AF_INET, &sin->sin_addr, buf, (socklen_t) size);
        *port = ntohs(sin->sin_port);
    } else if (ss->ss_family == AF_INET6 && len >= (socklen_t) sizeof(struct sockaddr_in6)) {
        const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *) ss;

        if (IN6_IS_ADDR_V4MAPPED(&sin6->sin6_addr))
            inet_ntop(AF_INET, &sin6->sin6_addr.s6_addr[12], buf, (socklen_t) size);
        else
            inet_ntop(AF_INET6, &sin6->sin6_addr, buf, (socklen_t) size);
        *port = ntohs(sin6->sin6_port);
    }
}

/* imapd_session_start - greet a new client on fd (non-blocking; closed when done) */
void imapd_session_start(struct imapd_server *srv, int fd, const struct sockaddr_storage *peer,
                         socklen_t peer_len)
{
    struct imapd_session *s;
    struct session_priv *p;
    struct sockaddr_storage local;
    socklen_t local_len = sizeof(local);
    bool    wrapper = srv->set.tls_wrapper;
    unsigned port;

    /* On 993 nothing can be said before the handshake, not even BYE. */
    if ((wrapper && (srv->svc->stopping || srv->tls == NULL))) {
        close(fd);
        return;
    }
    s = xcalloc(1, sizeof(*s));
    p = xcalloc(1, sizeof(*p));
    s->priv = p;
    s->srv = srv;
    s->state = IMAPD_NOT_AUTH;
    s->bev = wrapper ? tls_event_accept(srv->tls, srv->svc->base, fd)
        : bufferevent_socket_new(srv->svc->base, fd, BEV_OPT_CLOSE_ON_FREE);
    p->kick = evtimer_new(srv->svc->base, kick_cb, s);
    if (s->bev == NULL || p->kick == NULL) {
        msg_warn("cannot set up a session: out of memory");
        if (s->bev)
            bufferevent_free(s->bev);
        else
            close(fd);
        if (p->kick)
            event_free(p->kick);
        free(p);
        free(s);
        return;
    }
    p->fd = fd;
    format_addr(peer, peer_len, p->ip, sizeof(p->ip), &port);
    if (p->ip[0])
        snprintf(s->client_addr, sizeof(s->client_addr), "[%s]:%u", p->ip, port);
    else
        snprintf(s->client_addr, sizeof(s->client_addr), "[local]");
    if (getsockname(fd, (struct sockaddr *) &local, &local_len) == 0)
        format_addr(&local, local_len, p->lip, sizeof(p->lip), &port);
    imap_reader_init(&p->rd, srv->set.max_line, srv->set.max_literal);
    sb_init(&p->line);
    p->next = srv->sessions;
    if (p->next)
        P(p->next)->prev = s;
    srv->sessions = s;
    srv->session_count++;
    msg_info("connect from %s", s->client_addr);
    setup_bev(s);
    if (wrapper) {
        p->tls = TLS_HANDSHAKE;
        p->greet_after_tls = true;
    } else {
        greet(s);
    }
    bufferevent_enable(s->bev, EV_READ | EV_WRITE);
}

/* imapd_session_stop_all - service stop: "* BYE" to every session not in the middle of a command */
void imapd_session_stop_all(struct imapd_server *srv)
{
    struct imapd_session *s;
    struct imapd_session *next;

    for (s = srv->sessions; s != NULL; s = next) {
        struct session_priv *p = P(s);

        next = p->next;
        if (p->closing)
            continue;
        if (p->tls == TLS_HANDSHAKE || p->tls == TLS_SWITCH) {
            p->broken = true;
            session_free(s);
            continue;
        }
        /* An IDLE client is between commands as far as we are concerned. */
        if (p->run != RUN_READ && p->line_fn == NULL)
            continue;
        imapd_printf(s, "* BYE Server shutting down.\r\n");
        imapd_close(s);
        maybe_free(s);
    }
}

/* ---- state helpers for the command files ---- */

/* imapd_logged_in - login done: autologout timer, state AUTH, APPEND-sized literals */
void imapd_logged_in(struct imapd_session *s)
{
    s->state = IMAPD_AUTH;
    P(s)->rd.max_literal = s->srv->set.max_append;
    set_timeouts(s);
}

/*
 * imapd_plaintext_allowed - LOGIN / AUTHENTICATE PLAIN may be used now:
 * over TLS, with imapd_disable_plaintext_auth = no, or (as Dovecot) when the
 * client's address is our own (the same machine)
 */
bool imapd_plaintext_allowed(struct imapd_session *s)
{
    struct session_priv *p = P(s);

    if (s->tls || !s->srv->set.disable_plaintext)
        return true;
    if (s->srv->set.tls_level == IMAPD_TLS_ENCRYPT)
        return false;
    return p->ip[0] != 0 && strcmp(p->ip, p->lip) == 0;
}

/* imapd_local_addr - our end of the connection ("" unknown), for authd's lip */
const char *imapd_local_addr(struct imapd_session *s)
{
    return P(s)->lip;
}

/* imapd_client_ip - the client's address ("" unknown), for authd's rip */
const char *imapd_client_ip(struct imapd_session *s)
{
    return P(s)->ip;
}

/* ---- the small commands ---- */

/* no_args - BAD when a command that takes none got some; true if fine */
static bool no_args(struct imapd_session *s, const char *tag, size_t nargs)
{
    if (nargs == 0)
        return true;
    bad(s, tag, "Unexpected arguments");
    return false;
}

/* cmd_capability - CAPABILITY */
static void cmd_capability(struct imapd_session *s, const char *tag, const struct imap_arg *args,
                           size_t nargs, bool uid)
{
    (void) args;
    (void) uid;
    if (!no_args(s, tag, nargs))
        return;
    imapd_printf(s, "* CAPABILITY ");
    write_capabilities(s);
    imapd_printf(s, "\r\n");
    imapd_tagged(s, tag, "OK Capability completed.");
}

/* cmd_noop - NOOP: the updates go out with the tagged reply */
static void cmd_noop(struct imapd_session *s, const char *tag, const struct imap_arg *args,
                     size_t nargs, bool uid)
{
    (void) args;
    (void) nargs;
    (void) uid;
    imapd_tagged(s, tag, "OK NOOP completed.");
}

/* cmd_logout - LOGOUT */
static void cmd_logout(struct imapd_session *s, const char *tag, const struct imap_arg *args,
                       size_t nargs, bool uid)
{
    (void) args;
    (void) uid;
    if (!no_args(s, tag, nargs))
        return;
    imapd_printf(s, "* BYE Logging out\r\n");
    /* No updates now: the client is leaving. */
    P(s)->synced = true;
    imapd_tagged(s, tag, "OK Logout completed.");
    imapd_close(s);
}

/* cmd_id - ID (RFC 2971): say who we are; the client's list is checked, not kept */
static void cmd_id(struct imapd_session *s, const char *tag, const struct imap_arg *args,
                   size_t nargs, bool uid)
{
    (void) uid;
    if (nargs != 1 || (args[0].type != IMAP_ARG_NIL && args[0].type != IMAP_ARG_LIST)) {
        bad(s, tag, "ID needs one argument: a list or NIL");
        return;
    }
    if (args[0].type == IMAP_ARG_LIST) {
        if (args[0].count % 2 != 0 || args[0].count > 60) {
            bad(s, tag, "ID list must hold at most 30 field-value pairs");
            return;
        }
        for (size_t i = 0; i < args[0].count; i++) {
            const struct imap_arg *a = &args[0].list[i];

            if (a->type == IMAP_ARG_LIST || (i % 2 == 0 && a->type != IMAP_ARG_STRING)) {
                bad(s, tag, "ID list must hold string pairs");
                return;
            }
        }
    }
    imapd_printf(s, "* ID (\"name\" \"Postern\")\r\n");
    imapd_tagged(s, tag, "OK ID completed.");
}

/* cmd_enable - ENABLE (RFC 5161): CONDSTORE; unknown extensions are ignored */
static void cmd_enable(struct imapd_session *s, const char *tag, const struct imap_arg *args,
                       size_t nargs, bool uid)
{
    bool    condstore = false;

    (void) uid;
    if (nargs == 0) {
        bad(s, tag, "ENABLE needs at least one capability");
        return;
    }
    for (size_t i = 0; i < nargs; i++) {
        if (args[i].type != IMAP_ARG_ATOM) {
            bad(s, tag, "ENABLE takes capability names");
            return;
        }
        if (strcasecmp(args[i].str, "CONDSTORE") == 0)
            condstore = true;
    }
    imapd_printf(s, "* ENABLED");
    if (condstore && !s->condstore)
        imapd_printf(s, " CONDSTORE");
    imapd_printf(s, "\r\n");
    if (condstore)
        s->condstore = true;
    imapd_tagged(s, tag, "OK Enabled.");
}

/* cmd_namespace - NAMESPACE (RFC 2342): one personal namespace, "." separated */
static void cmd_namespace(struct imapd_session *s, const char *tag, const struct imap_arg *args,
                          size_t nargs, bool uid)
{
    (void) args;
    (void) uid;
    if (!no_args(s, tag, nargs))
        return;
    imapd_printf(s, "* NAMESPACE ((\"\" \".\")) NIL NIL\r\n");
    imapd_tagged(s, tag, "OK Namespace completed.");
}

/* cmd_starttls - STARTTLS: OK, then the handshake once the OK is written */
static void cmd_starttls(struct imapd_session *s, const char *tag, const struct imap_arg *args,
                         size_t nargs, bool uid)
{
    struct session_priv *p = P(s);

    (void) args;
    (void) uid;
    if (!no_args(s, tag, nargs))
        return;
    if (p->tls != TLS_OFF) {
        bad(s, tag, "TLS is already active.");
        return;
    }
    if (s->srv->tls == NULL || s->srv->set.tls_level == IMAPD_TLS_NONE) {
        bad(s, tag, "TLS support isn't enabled.");
        return;
    }
    imapd_tagged(s, tag, "OK Begin TLS negotiation now.");
    /* Nothing more is read in clear text; the command ends when TLS is up. */
    p->tls = TLS_SWITCH;
    p->run = RUN_WAIT;
    p->resume = NULL;
    bufferevent_disable(s->bev, EV_READ);
}
