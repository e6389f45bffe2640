/*
 * imapd - the IMAP server: shared declarations of its files.
 *
 *   imapd.c           main program, service hooks, TLS contexts, the directory
 *   imapd_session.c   a connection: reading commands (lib/imap_parse.h), the
 *                     dispatch table, output and flow control, STARTTLS,
 *                     CAPABILITY NOOP LOGOUT ID ENABLE NAMESPACE, timeouts
 *   imapd_login.c     LOGIN, AUTHENTICATE (via lib/auth_client.h to authd),
 *                     opening the user's store, special-use folders for new users
 *   imapd_mailbox.c   SELECT EXAMINE CREATE DELETE RENAME SUBSCRIBE UNSUBSCRIBE
 *                     LIST LSUB STATUS APPEND CHECK CLOSE UNSELECT IDLE
 *                     GETQUOTA GETQUOTAROOT; imapd_send_updates(); inotify
 *   imapd_fetch.c     FETCH (and UID FETCH)
 *   imapd_search.c    SEARCH (ESEARCH RETURN options)
 *   imapd_store.c     STORE COPY MOVE EXPUNGE and UID EXPUNGE
 *
 * One process serves many connections from one libevent loop; file I/O is
 * synchronous (local Maildir). Master runs $imapd maxproc processes.
 *
 * Command life cycle: the session reads a whole command, parses it, and
 * calls the handler with the arguments after the command name ("UID FETCH"
 * calls imapd_cmd_fetch with uid = true and the arguments after FETCH). The
 * handler writes untagged responses and its tagged reply with the output
 * functions below. A handler that has a lot to send (FETCH of many bodies)
 * calls imapd_suspend() when imapd_output_pending() is large; the session
 * then reads no further command and calls resume when the output has drained,
 * until the handler calls imapd_command_done() after its tagged reply.
 * The command's arguments stay valid until the command is done.
 *
 * After every command the session calls imapd_send_updates(): EXPUNGE is
 * announced except after FETCH, STORE, SEARCH (RFC 3501 7.4.1: sequence
 * numbers must not shift under them; their UID forms may).
 */
#ifndef POSTERN_IMAPD_H
#define POSTERN_IMAPD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "imap_parse.h"
#include "mailstore.h"
#include "strbuf.h"

struct bufferevent;
struct event;
struct imapd_server;

enum imapd_state { IMAPD_NOT_AUTH, IMAPD_AUTH, IMAPD_SELECTED, IMAPD_LOGOUT };

struct imapd_session {
    struct imapd_server *srv;
    struct bufferevent *bev;
    enum imapd_state state;
    char   *user;                       /* after login: the canonical name authd gave */
    struct mstore *store;               /* after login */
    struct mbox *mbox;                  /* SELECTED: the view */
    bool    readonly;                   /* EXAMINE */
    bool    condstore;                  /* CONDSTORE enabled (ENABLE, SELECT (CONDSTORE), or used) */
    bool    utf8_accept;                /* ENABLE UTF8=ACCEPT */
    bool    tls;                        /* the connection is encrypted */
    char    client_addr[64];            /* for log lines */
    void   *priv;                       /* private to imapd_session.c */
};

typedef void imapd_command_fn(struct imapd_session *s, const char *tag, const struct imap_arg *args,
                              size_t nargs, bool uid);

/* ---- output (imapd_session.c) ---- */

/* imapd_printf - append formatted text to the output (the caller writes "\r\n") */
void imapd_printf(struct imapd_session *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* imapd_write - append raw bytes (literal contents) */
void imapd_write(struct imapd_session *s, const void *data, size_t len);
/* imapd_tagged - "TAG " + formatted text + "\r\n", e.g. imapd_tagged(s, tag, "OK FETCH completed") */
void imapd_tagged(struct imapd_session *s, const char *tag, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* imapd_output_pending - bytes queued for the client and not yet sent */
size_t imapd_output_pending(struct imapd_session *s);
/* imapd_suspend - continue the current command with resume(s, ctx) once output drains */
void imapd_suspend(struct imapd_session *s, void (*resume)(struct imapd_session *s, void *ctx), void *ctx);
/* imapd_command_done - a suspended command has sent its tagged reply: read the next one */
void imapd_command_done(struct imapd_session *s);
#define IMAPD_OUTPUT_HIGH   (256 * 1024)    /* suspend above this many pending bytes */

/* ---- helpers shared by the command files ---- */

/* imapd_send_updates - sync the selected view; untagged EXISTS, RECENT, EXPUNGE (if allowed),
 * FETCH (FLAGS [MODSEQ]) for others' changes (imapd_mailbox.c) */
void imapd_send_updates(struct imapd_session *s, bool announce_expunges);
/* imapd_send_expunged - "* N EXPUNGE" for each of ch->expunged (imapd_mailbox.c) */
void imapd_send_expunged(struct imapd_session *s, const struct mbox_changes *ch);
/* imapd_write_flags - append "(\Seen \Deleted kw ...)" for a message (imapd_fetch.c) */
void imapd_write_flags(struct imapd_session *s, struct strbuf *out, const struct mbox_msg *m);
/* imapd_parse_flags - a flag list argument (list or single atom) into MBOX_* bits and keyword
 * bits, creating keywords when create; -1 with err for \Recent, unknown system flags, too many
 * keywords (imapd_store.c; also used by APPEND) */
int  imapd_parse_flags(struct imapd_session *s, const struct imap_arg *arg, bool create,
                       uint32_t *flags, uint32_t *keywords, struct strbuf *err);
/* imapd_resolve_set - the 0-based indexes into s->mbox->msgs named by a sequence set
 * (uid: UIDs) in ascending order; -1 with err for a bad set; gone messages included */
int  imapd_resolve_set(struct imapd_session *s, const char *text, bool uid, size_t **idx, size_t *n,
                       struct strbuf *err);
/* imapd_store_error - tagged NO with the right response code for a store error
 * (EDQUOT -> [OVERQUOTA], ENOENT -> [NONEXISTENT] or [TRYCREATE], ...) (imapd_mailbox.c) */
void imapd_store_error(struct imapd_session *s, const char *tag, const char *what, int err_no,
                       const struct strbuf *err, bool trycreate);

/* What a command needs of a message's file (imapd_message.c). */
enum imapd_need {
    IMAPD_NEED_ENVELOPE,                /* the envelope fields only: the header cache may do */
    IMAPD_NEED_HEADER,                  /* the whole header block */
    IMAPD_NEED_FILE,                    /* the whole message */
};
struct mime_message;
/* imapd_load_message - msgs[i] read as far as need and parsed; raw holds the bytes and must
 * outlive the result. NULL when expunged meanwhile (errno ENOENT) or unreadable (logged with
 * command, the command's name). */
struct mime_message *imapd_load_message(struct imapd_session *s, size_t i, enum imapd_need need,
                                        struct strbuf *raw, const char *command);

/* ---- command handlers ---- */
imapd_command_fn imapd_cmd_fetch;       /* imapd_fetch.c */
imapd_command_fn imapd_cmd_search;      /* imapd_search.c */
imapd_command_fn imapd_cmd_store;       /* imapd_store.c */
imapd_command_fn imapd_cmd_copy;
imapd_command_fn imapd_cmd_move;
imapd_command_fn imapd_cmd_expunge;     /* EXPUNGE (uid = false) and UID EXPUNGE */

#endif
