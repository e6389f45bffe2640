/*
 * auth_proto - Dovecot's authentication protocol (auth-client, version 1.2),
 * both ends: the server side that authd speaks, and the client side that smtpd
 * (and later imapd) use to talk to authd or to a real Dovecot.
 *
 * The protocol is line based: each line ends in "\n" (a "\r" before it is
 * dropped), fields are separated by TABs, values inside fields are
 * "tab-escaped" (\001 -> \0011, \t -> \001t, \r -> \001r, \n -> \001n).
 * Lines are at most AUTH_PROTO_MAX_LINE bytes.
 *
 *   server -> client on connect:            client -> server on connect:
 *     VERSION 1 2                             VERSION 1 2
 *     MECH PLAIN plaintext                    CPID <pid>
 *     MECH LOGIN plaintext
 *     SPID <pid>  CUID <n>  COOKIE <32 hex>
 *     DONE
 *   client: AUTH <id> <mech> service=smtp [secured] [nologin] [lip=..] [rip=..] [resp=<base64>]
 *   server: CONT <id> <base64 challenge>    client: CONT <id> <base64 response>
 *   server: OK <id> user=<user>             or FAIL <id> [user=<user>] [temp] [reason=<text>]
 * Requests are multiplexed on one connection by the client-chosen <id>.
 *
 * Every parse function works IN PLACE on a mutable, NUL-terminated line
 * (without its "\n"): it splits and unescapes the line, and the const char *
 * fields of the result point into it, valid as long as the line is.
 * They return 0, or -1 with a message in err (never echoing more than a short,
 * sanitized piece of the input). Everything received is treated as hostile.
 *
 * Typical CLIENT use (smtpd):
 *   connect; sb_reset(&out); auth_client_hello(&out, getpid()); write it;
 *   read lines (auth_proto_read_line) and auth_server_line_parse() each until
 *   AUTH_S_DONE, remembering the MECH lines (auth_server_mech_offered);
 *   auth_client_request(&out, id, &req, &err) with req.resp = the client's
 *   base64 initial response as received ("" for SMTP's "=": an empty response);
 *   then per reply line: AUTH_S_CONT -> send "334 <line.data>" to the SMTP
 *   client, its answer goes back with auth_client_cont(); AUTH_S_OK ->
 *   authenticated as line.user; AUTH_S_FAIL -> 535 (or 454 when line.temp).
 *
 * Typical SERVER use (authd): auth_server_handshake() on connect;
 * auth_client_line_parse() on each line; auth_base64_decode() the responses;
 * auth_plain_decode() / auth_login_value() to get the credentials;
 * auth_server_ok/fail/cont() to answer.
 */
#ifndef POSTERN_AUTH_PROTO_H
#define POSTERN_AUTH_PROTO_H

#include <stdbool.h>
#include <stddef.h>

#include "strbuf.h"

struct evbuffer;

#define AUTH_PROTO_MAJOR        1
#define AUTH_PROTO_MINOR        2
#define AUTH_PROTO_MAX_LINE     16384   /* bytes, without the "\n" (Dovecot allows 16 KiB) */
#define AUTH_PROTO_MAX_USER     512     /* bytes of a user name, authzid or authcid */
#define AUTH_PROTO_MAX_MECH     32      /* bytes of a mechanism name */

/* ---- shared ---- */

/* auth_proto_read_line - take one line off in into line (no "\r\n");
 * 1: a line, 0: need more data, -1: the line exceeds AUTH_PROTO_MAX_LINE
 * (the caller must drop the connection: resynchronizing is not possible) */
int  auth_proto_read_line(struct evbuffer *in, struct strbuf *line);

/* auth_tab_escape - append value with \001, TAB, CR, LF escaped */
void auth_tab_escape(struct strbuf *out, const char *value);
/* auth_tab_unescape - undo auth_tab_escape in place; -1 for a bad escape */
int  auth_tab_unescape(char *value);

/* auth_base64_encode - append the standard (RFC 4648, padded) base64 of data */
void auth_base64_encode(struct strbuf *out, const void *data, size_t len);
/* auth_base64_decode - strict decode of in[0..len) appended to out: only the
 * standard alphabet, length a multiple of 4, "=" only as final padding, zero
 * unused bits; "" decodes to nothing. -1 on any error (out unchanged). */
int  auth_base64_decode(const char *in, size_t len, struct strbuf *out);
/* auth_base64_valid - in would decode (cheap check before forwarding it) */
bool auth_base64_valid(const char *in);

/* auth_log_name - append a client-supplied name (user, rip) for a log line:
 * space, control bytes, '<', '>', ',' and backslash become "\xHH", so that
 * "user=<NAME>, rip=ADDR" cannot be faked by a name (fail2ban reads these) */
void auth_log_name(struct strbuf *out, const char *name);

/* ---- SASL mechanism payloads (after base64 decoding) ---- */

/* PLAIN (RFC 4616): authzid NUL authcid NUL password */
struct auth_plain {
    const char *authzid;                /* "" when absent */
    const char *authcid;                /* the login name; never empty */
    const char *password;               /* may be empty */
};

/* auth_plain_decode - split a decoded PLAIN response held in raw (its three
 * parts are NUL-terminated in place); -1 with err for: not exactly two NULs,
 * empty authcid, a part longer than its limit (names AUTH_PROTO_MAX_USER,
 * password PASSWORD_MAX) */
int  auth_plain_decode(struct strbuf *raw, struct auth_plain *out, struct strbuf *err);
/* auth_plain_encode - append base64(authzid NUL authcid NUL password) (tests, clients) */
void auth_plain_encode(struct strbuf *out, const char *authzid, const char *authcid,
                       const char *password);
/* auth_login_value - a decoded LOGIN response (user name or password): -1 with
 * err if it contains a NUL or is longer than max */
int  auth_login_value(const struct strbuf *raw, size_t max, struct strbuf *err);

/* ---- client side (smtpd, imapd) ---- */

/* auth_client_hello - append "VERSION\t1\t2\nCPID\t<pid>\n" */
void auth_client_hello(struct strbuf *out, unsigned long pid);

struct auth_client_req {
    const char *mech;                   /* "PLAIN", "LOGIN": [A-Z0-9_-], at most AUTH_PROTO_MAX_MECH */
    const char *service;                /* "smtp", "imap" */
    bool    secured;                    /* the client connection is TLS-protected */
    const char *lip;                    /* local/remote IP address text; NULL to omit */
    const char *rip;
    const char *resp;                   /* base64 initial response, "" = empty response, NULL = none */
};

/* auth_client_request - append an "AUTH" line; -1 with err for a bad mech,
 * an id of 0, or a resp that is not valid base64 */
int  auth_client_request(struct strbuf *out, unsigned id, const struct auth_client_req *req,
                         struct strbuf *err);
/* auth_client_cont - append "CONT\t<id>\t<b64>\n"; -1 with err when b64 is not valid base64 */
int  auth_client_cont(struct strbuf *out, unsigned id, const char *b64, struct strbuf *err);

enum auth_server_type {
    AUTH_S_VERSION, AUTH_S_MECH, AUTH_S_SPID, AUTH_S_CUID, AUTH_S_COOKIE, AUTH_S_DONE,
    AUTH_S_OK, AUTH_S_CONT, AUTH_S_FAIL,
    AUTH_S_UNKNOWN,                     /* a command we do not know: ignore it (newer server) */
};

struct auth_server_line {
    enum auth_server_type type;
    unsigned major, minor;              /* VERSION */
    const char *mech;                   /* MECH: name */
    bool    mech_plaintext;             /* MECH: "plaintext" flag */
    bool    mech_anonymous;             /* MECH: "anonymous" flag (never use it) */
    const char *arg;                    /* SPID, CUID, COOKIE: the value */
    unsigned id;                        /* OK, CONT, FAIL: the request id */
    const char *data;                   /* CONT: the base64 challenge (validated) */
    const char *user;                   /* OK, FAIL: user=, NULL when absent */
    bool    temp;                       /* FAIL: temporary failure (reply 454, not 535) */
    const char *reason;                 /* FAIL: reason=, NULL when absent */
};

/* auth_server_line_parse - parse one line from an auth server into out */
int  auth_server_line_parse(char *line, struct auth_server_line *out, struct strbuf *err);
/* auth_server_mech_offered - name (case-insensitive) is in the list of MECH
 * names collected during the handshake (space-separated) */
bool auth_server_mech_offered(const char *mech_list, const char *name);

/* ---- server side (authd) ---- */

/* auth_server_handshake - append the greeting up to and including "DONE";
 * mechs is a NULL-terminated list of plaintext mechanism names */
void auth_server_handshake(struct strbuf *out, const char *const *mechs, unsigned long spid,
                           unsigned long cuid, const char *cookie_hex);
/* auth_server_ok - append "OK\t<id>\tuser=<user>\n" */
void auth_server_ok(struct strbuf *out, unsigned id, const char *user);
/* auth_server_fail - append "FAIL\t<id>[\tuser=..][\ttemp][\treason=..]\n"; user/reason may be NULL */
void auth_server_fail(struct strbuf *out, unsigned id, const char *user, bool temp,
                      const char *reason);
/* auth_server_cont - append "CONT\t<id>\t<base64(data)>\n" */
void auth_server_cont(struct strbuf *out, unsigned id, const void *data, size_t len);

enum auth_client_type { AUTH_C_VERSION, AUTH_C_CPID, AUTH_C_AUTH, AUTH_C_CONT };

struct auth_client_line {
    enum auth_client_type type;
    unsigned major, minor;              /* VERSION */
    unsigned long pid;                  /* CPID */
    unsigned id;                        /* AUTH, CONT (never 0) */
    const char *mech;                   /* AUTH: as sent (compare case-insensitively) */
    const char *service;                /* AUTH: service=, NULL when absent */
    bool    secured;                    /* AUTH: "secured" flag */
    bool    nologin;                    /* AUTH: "nologin" flag (informational) */
    bool    valid_client_cert;          /* AUTH: "valid-client-cert" flag */
    const char *lip, *rip;              /* AUTH: NULL when absent */
    const char *resp;                   /* AUTH: base64 initial response, NULL = none, "" = empty */
    const char *data;                   /* CONT: base64 response (not yet validated) */
};

/* auth_client_line_parse - parse one line from an auth client; unknown commands,
 * ids that are 0 or not numbers, and missing fields are errors (Dovecot drops
 * the connection for them); unknown AUTH parameters are ignored */
int  auth_client_line_parse(char *line, struct auth_client_line *out, struct strbuf *err);

#endif
