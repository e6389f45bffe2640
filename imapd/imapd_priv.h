/*
 * imapd_priv - what imapd.c, imapd_session.c, imapd_login.c and
 * imapd_mailbox.c share beyond imapd.h: the per-process server, the
 * settings, and the hooks between the session and the command files.
 * Not for imapd_fetch.c / imapd_search.c / imapd_store.c (they use imapd.h).
 */
#ifndef POSTERN_IMAPD_PRIV_H
#define POSTERN_IMAPD_PRIV_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "imapd.h"
#include "service.h"

struct auth_client;
struct directory;
struct tls_server;

/* imapd_tls_security_level */
enum imapd_tls_level { IMAPD_TLS_NONE, IMAPD_TLS_MAY, IMAPD_TLS_ENCRYPT };

struct imapd_settings {
    size_t  max_line;                   /* imapd_max_line_length */
    size_t  max_literal;                /* literals outside APPEND (imapd_max_line_length) */
    size_t  max_append;                 /* APPEND literals: message_size_limit (0: 1 GiB) */
    long long timeout;                  /* imapd_timeout: before login, seconds */
    long long autologout;               /* after login (RFC 3501 5.4: at least 30 minutes) */
    enum imapd_tls_level tls_level;
    bool    tls_wrapper;                /* imapd_tls_wrappermode (993) */
    bool    disable_plaintext;          /* imapd_disable_plaintext_auth */
    char   *hostname;
};

/* Per-process state: service->app. */
struct imapd_server {
    struct service *svc;
    struct imapd_settings set;
    struct tls_server *tls;             /* NULL: no TLS on this service */
    struct directory *dir;              /* virtual_mailbox_maps */
    struct auth_client *auth;           /* imapd_sasl_path */
    int     base_fd;                    /* virtual_mailbox_base (working directory) */
    struct imapd_session *sessions;     /* all live sessions (list through priv) */
    unsigned session_count;
};

extern struct imapd_server imapd_server;

/* ---- imapd_session.c ---- */

/* imapd_session_start - greet a new client on fd (non-blocking; closed when done) */
void imapd_session_start(struct imapd_server *srv, int fd, const struct sockaddr_storage *peer,
                         socklen_t peer_len);
/* imapd_session_stop_all - service stop: "* BYE" to every session not in the middle of a command */
void imapd_session_stop_all(struct imapd_server *srv);
/* imapd_session_wait - the current command waits for something other than output (authd) */
void imapd_session_wait(struct imapd_session *s);
/* imapd_read_line - the current command wants the client's next line (AUTHENTICATE, IDLE's DONE):
 * fn(s, line, len) gets it; NULL line: the line was too long */
void imapd_read_line(struct imapd_session *s, void (*fn)(struct imapd_session *s, const char *line,
                                                         size_t len));
/* imapd_logged_in - login done: autologout timer, state AUTH */
void imapd_logged_in(struct imapd_session *s);
/* imapd_plaintext_allowed - LOGIN / AUTHENTICATE PLAIN may be used now */
bool imapd_plaintext_allowed(struct imapd_session *s);
/* imapd_local_addr - our end of the connection ("" unknown), for authd's lip */
const char *imapd_local_addr(struct imapd_session *s);
/* imapd_client_ip - the client's address ("" unknown), for authd's rip */
const char *imapd_client_ip(struct imapd_session *s);
/* imapd_close - "* BYE" has been written: close once the output is out */
void imapd_close(struct imapd_session *s);
/* imapd_write_capabilities - the capability list for the session's state (no CRLF) */
void imapd_write_capabilities(struct imapd_session *s);
/* imapd_slot - a per-session pointer for imapd_login.c (IMAPD_SLOT_LOGIN) and imapd_mailbox.c */
void **imapd_slot(struct imapd_session *s, int which);
#define IMAPD_SLOT_LOGIN    0
#define IMAPD_SLOT_MAILBOX  1
/* imapd_current_tag - the tag of the command being run, "" between commands */
const char *imapd_current_tag(struct imapd_session *s);

/* ---- imapd_login.c ---- */
imapd_command_fn imapd_cmd_login;
imapd_command_fn imapd_cmd_authenticate;
/* imapd_login_abort - the session ends during an exchange with authd */
void imapd_login_abort(struct imapd_session *s);
/* imapd_logout - release the user's store (LOGOUT, disconnect) */
void imapd_logout(struct imapd_session *s);

/* ---- imapd_mailbox.c ---- */
imapd_command_fn imapd_cmd_select;      /* SELECT (uid false) */
imapd_command_fn imapd_cmd_examine;
imapd_command_fn imapd_cmd_create;
imapd_command_fn imapd_cmd_delete;
imapd_command_fn imapd_cmd_rename;
imapd_command_fn imapd_cmd_subscribe;
imapd_command_fn imapd_cmd_unsubscribe;
imapd_command_fn imapd_cmd_list;
imapd_command_fn imapd_cmd_lsub;
imapd_command_fn imapd_cmd_status;
imapd_command_fn imapd_cmd_append;
imapd_command_fn imapd_cmd_check;
imapd_command_fn imapd_cmd_close;
imapd_command_fn imapd_cmd_unselect;
imapd_command_fn imapd_cmd_idle;
imapd_command_fn imapd_cmd_getquota;
imapd_command_fn imapd_cmd_getquotaroot;
imapd_command_fn imapd_cmd_setquota;
/* imapd_mailbox_deselect - leave SELECTED (no expunge): commit and close the view */
void imapd_mailbox_deselect(struct imapd_session *s);
/* imapd_idle_stop - the session ends while idling: stop watching its folder */
void imapd_idle_stop(struct imapd_session *s);
/* imapd_mailbox_name - a mailbox argument as a stored name (modified UTF-7; "INBOX" folded);
 * NULL after a tagged NO/BAD has been sent */
const char *imapd_mailbox_name(struct imapd_session *s, const char *tag, const struct imap_arg *arg,
                               struct strbuf *buf);

#endif
