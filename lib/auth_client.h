/*
 * auth_client - the client side of the Dovecot auth protocol as an event
 * driven module, shared by smtpd (AUTH) and imapd (LOGIN, AUTHENTICATE).
 *
 * One struct auth_client is one connection to an auth server (our authd, or
 * a real Dovecot) at a UNIX socket path, relative to the process's working
 * directory (its chroot). It is opened when the first exchange starts, not
 * at creation: a daemon whose authd is down still starts, and its exchanges
 * fail temporarily until authd is back; the next exchange reconnects.
 * Exchanges from all sessions share the connection, told apart by request
 * id; requests made during the handshake wait for "DONE". Each exchange has a
 * deadline per step (AUTH_CLIENT_REPLY_TIMEOUT); a late answer is dropped.
 *
 *   ac = auth_client_new(base, "private/auth");
 *   x = auth_client_start(ac, &req, fn, ctx);      req: lib/auth_proto.h
 *   fn(ctx, res): AUTH_CLIENT_CONT -> ask the user, then auth_client_respond(x, b64)
 *                 (or auth_client_cancel(x)); any other status ends the exchange
 *                 (x is freed before fn runs: do not cancel it then).
 *
 * Results always reach the caller from the event loop, never from inside
 * auth_client_start()/auth_client_respond() or from the middle of reading
 * the auth socket, so fn may start, answer or cancel exchanges freely.
 *
 * Anything malformed from the auth server drops the connection and fails
 * the exchanges on it temporarily: a client must never be told
 * "authenticated" on the strength of a line we did not understand.
 *
 * An OK's parameters besides "user=" (Dovecot's extra fields, e.g. authd's
 * "userdb_quota_rule=*:bytes=N" for service=imap) reach fn unescaped, as
 * "name=value" (or "name" for a flag) strings: auth_client_field() finds one.
 *
 * Diagnostics: one warning per outage ("SASL: connect to PATH: ..."), a note
 * when it works again, a warning for protocol violations.
 */
#ifndef POSTERN_AUTH_CLIENT_H
#define POSTERN_AUTH_CLIENT_H

#include <stdbool.h>
#include <stddef.h>

#include "auth_proto.h"

struct event_base;
struct auth_client;
struct auth_exchange;

#define AUTH_CLIENT_HANDSHAKE_TIMEOUT 10    /* seconds from connect to "DONE" */
#define AUTH_CLIENT_REPLY_TIMEOUT     60    /* seconds the server may take per step */
#define AUTH_CLIENT_MAX_FIELDS        32    /* OK parameters kept besides user= */

enum auth_client_status {
    AUTH_CLIENT_CONT,                   /* text: base64 challenge; respond or cancel next */
    AUTH_CLIENT_OK,                     /* text: the user name (printable, no spaces); over */
    AUTH_CLIENT_FAIL,                   /* text: reason ("" if none); over */
    AUTH_CLIENT_TEMPFAIL,               /* server down, slow or confused; text: reason; over */
};

struct auth_client_result {
    enum auth_client_status status;
    const char *text;
    const char *const *fields;          /* OK: the other parameters, "name=value" */
    size_t  nfields;
};

typedef void (*auth_client_fn)(void *ctx, const struct auth_client_result *res);

/* auth_client_new - a connection-to-be to the auth server at path (opened on first use) */
struct auth_client *auth_client_new(struct event_base *base, const char *path);
/* auth_client_free - close; exchanges still running are freed without a callback */
void auth_client_free(struct auth_client *ac);
/* auth_client_path - the socket path, for messages */
const char *auth_client_path(const struct auth_client *ac);

/* auth_client_start - ask the server (req->mech is upper-cased); fn is called later from the loop */
struct auth_exchange *auth_client_start(struct auth_client *ac, const struct auth_client_req *req,
                                        auth_client_fn fn, void *ctx);
/* auth_client_respond - the client's valid base64 answer to a CONT */
void auth_client_respond(struct auth_exchange *x, const char *b64);
/* auth_client_cancel - forget the exchange (client aborted or left); no more callbacks */
void auth_client_cancel(struct auth_exchange *x);

/* auth_client_field - the value of parameter name in an OK's fields ("" for a flag), or NULL */
const char *auth_client_field(const struct auth_client_result *res, const char *name);

#endif
