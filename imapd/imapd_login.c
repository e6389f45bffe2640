/*
 * imapd_login - LOGIN and AUTHENTICATE PLAIN (RFC 3501 6.2, RFC 4959
 * SASL-IR) through authd, and opening the user's store after a success.
 *
 * Interface (imapd_priv.h): imapd_cmd_login(), imapd_cmd_authenticate(),
 * imapd_login_abort(), imapd_logout().
 *
 * Both commands become one PLAIN exchange with the auth server
 * (lib/auth_client.h, service=imap, "secured" over TLS or from our own
 * address, rip/lip). Plaintext mechanisms are refused on a connection that
 * is not secured, unless imapd_disable_plaintext_auth = no:
 * "NO [PRIVACYREQUIRED]" (Dovecot's wording and semantics). Answers:
 * "NO [AUTHENTICATIONFAILED]" when the server says no (users disabled for
 * IMAP included: authd refuses them), "NO [UNAVAILABLE]" when it is down,
 * slow, or the user's mailbox cannot be opened.
 *
 * After the server's OK: the user's Maildir from virtual_mailbox_maps (the
 * name authd returned is the key), the quota from the OK's
 * "userdb_quota_rule=*:bytes=N" (or Dovecot's "*:storage=N[kMGT]", KiB
 * without a unit), mstore_open() beneath the mail base, and the special-use
 * folders Sent, Drafts, Trash and Junk created and subscribed when missing
 * (Dovecot's auto = subscribe). The tagged OK carries the capabilities of
 * the authenticated state. Log: "login: user=<..>, method=PLAIN,
 * rip=.., lip=.., TLS".
 */
#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "auth_client.h"
#include "auth_proto.h"
#include "directory.h"
#include "log.h"
#include "mailstore.h"
#include "mem.h"
#include "password.h"
#include "strbuf.h"

#include "imapd.h"
#include "imapd_priv.h"

#define LOGIN_MAX_FAILURES  5           /* failed logins on one connection before BYE */

static const char *const special_folders[] = {"Sent", "Drafts", "Trash", "Junk"};

/* A session's login in progress. */
struct login {
    struct auth_exchange *x;
    const char *method;                 /* "PLAIN" (AUTHENTICATE) or "LOGIN" */
    unsigned failures;
};

/* login_of - the session's login state, made on first use */
static struct login *login_of(struct imapd_session *s)
{
    void  **slot = imapd_slot(s, IMAPD_SLOT_LOGIN);

    if (*slot == NULL)
        *slot = xcalloc(1, sizeof(struct login));
    return *slot;
}

/* login_free - drop the login state (logged in, or the session ends) */
static void login_free(struct imapd_session *s)
{
    void  **slot = imapd_slot(s, IMAPD_SLOT_LOGIN);
    struct login *l = *slot;

    if (l == NULL)
        return;
    if (l->x != NULL)
        auth_client_cancel(l->x);
    free(l);
    *slot = NULL;
}

/* imapd_login_abort - the session ends during an exchange with authd */
void imapd_login_abort(struct imapd_session *s)
{
    login_free(s);
}

/* imapd_logout - release the user's store (LOGOUT, disconnect) */
void imapd_logout(struct imapd_session *s)
{
    if (s->store != NULL)
        mstore_close(s->store);
    s->store = NULL;
}

/* secured - what authd is told: TLS, or a client on our own address */
static bool secured(struct imapd_session *s)
{
    const char *ip = imapd_client_ip(s);

    return s->tls || (*ip && strcmp(ip, imapd_local_addr(s)) == 0);
}

/*
 * parse_quota - bytes from a Dovecot quota rule "*:bytes=N" or "*:storage=N[bkMGT]"
 * (storage without a unit is KiB); 0 for none, -1 when malformed
 */
static int parse_quota(const char *rule, uint64_t *bytes)
{
    const char *p;
    uint64_t v = 0;
    uint64_t mult;

    *bytes = 0;
    if (rule == NULL || *rule == 0)
        return 0;
    if (strncmp(rule, "*:", 2) != 0)
        return -1;
    p = rule + 2;
    if (strncmp(p, "bytes=", 6) == 0) {
        p += 6;
        mult = 1;
    } else if (strncmp(p, "storage=", 8) == 0) {
        p += 8;
        mult = 1024;
    } else {
        return -1;
    }
    if (*p < '0' || *p > '9')
        return -1;
    for (; *p >= '0' && *p <= '9'; p++) {
        if (v > (UINT64_MAX - 9) / 10)
            return -1;
        v = v * 10 + (uint64_t) (*p - '0');
    }
    switch (*p) {
    case 0:
        break;
    case 'b': case 'B':
        mult = 1;
        p++;
        break;
    case 'k': case 'K':
        mult = 1024;
        p++;
        break;
    case 'M':
        mult = 1024ULL * 1024;
        p++;
        break;
    case 'G':
        mult = 1024ULL * 1024 * 1024;
        p++;
        break;
    case 'T':
        mult = 1024ULL * 1024 * 1024 * 1024;
        p++;
        break;
    default:
        return -1;
    }
    if (*p != 0 || (v != 0 && mult > UINT64_MAX / v))
        return -1;
    *bytes = v * mult;
    return 0;
}

/* special_folders_ensure - Sent, Drafts, Trash, Junk: created and subscribed when missing */
static void special_folders_ensure(struct imapd_session *s)
{
    struct strbuf err = STRBUF_INIT;

    for (size_t i = 0; i < sizeof(special_folders) / sizeof(special_folders[0]); i++) {
        if (mstore_exists(s->store, special_folders[i]))
            continue;
        sb_reset(&err);
        if (mstore_create(s->store, special_folders[i], &err) < 0 && errno != EEXIST) {
            msg_warn("user=<%s>: cannot create folder %s: %s", s->user, special_folders[i],
                     sb_str(&err));
            continue;
        }
        sb_reset(&err);
        if (mstore_subscribe(s->store, special_folders[i], true, &err) < 0)
            msg_warn("user=<%s>: cannot subscribe folder %s: %s", s->user, special_folders[i],
                     sb_str(&err));
    }
    sb_free(&err);
}

/* finish - the tagged reply; the command is over */
static void finish(struct imapd_session *s, const char *text)
{
    imapd_tagged(s, imapd_current_tag(s), "%s", text);
    imapd_command_done(s);
}

/* failed - a refused login; too many on one connection end it */
static void failed(struct imapd_session *s, struct login *l, const char *text)
{
    finish(s, text);
    if (++l->failures >= LOGIN_MAX_FAILURES) {
        imapd_printf(s, "* BYE Too many failed logins.\r\n");
        imapd_close(s);
    }
}

/* open_store - authd said yes to user: find and open the Maildir; -1 after a tagged NO */
static int open_store(struct imapd_session *s, const struct auth_client_result *res)
{
    struct imapd_server *srv = s->srv;
    struct strbuf path = STRBUF_INIT;
    struct strbuf err = STRBUF_INIT;
    struct strbuf name = STRBUF_INIT;
    const char *user = res->text;
    const char *rule = auth_client_field(res, "userdb_quota_rule");
    uint64_t quota;
    enum map_status st;
    int     ret = -1;

    auth_log_name(&name, user);
    if (parse_quota(rule, &quota) < 0) {
        msg_warn("user=<%s>: unusable quota rule from the auth server; no quota applied",
                 sb_str(&name));
        quota = 0;
    }
    st = directory_mailbox(srv->dir, user, &path);
    if (st == MAP_NOTFOUND) {
        msg_warn("user=<%s>: authenticated but has no mailbox in virtual_mailbox_maps",
                 sb_str(&name));
        finish(s, "NO [UNAVAILABLE] No mailbox for this user.");
    } else if (st != MAP_FOUND) {
        msg_warn("user=<%s>: virtual_mailbox_maps lookup failed", sb_str(&name));
        finish(s, "NO [UNAVAILABLE] Temporary failure, try again later.");
    } else if ((s->store = mstore_open(srv->base_fd, sb_str(&path), quota, &err)) == NULL) {
        msg_warn("user=<%s>: cannot open the mailbox %s: %s", sb_str(&name), sb_str(&path),
                 sb_str(&err));
        finish(s, "NO [UNAVAILABLE] Cannot open the mailbox, try again later.");
    } else {
        ret = 0;
    }
    sb_free(&path);
    sb_free(&err);
    sb_free(&name);
    return ret;
}

static void cont_line(struct imapd_session *s, const char *line, size_t len);

/* auth_done - the auth server's answer to this session's exchange */
static void auth_done(void *ctx, const struct auth_client_result *res)
{
    struct imapd_session *s = ctx;
    struct login *l = login_of(s);
    struct strbuf name = STRBUF_INIT;

    if (res->status == AUTH_CLIENT_CONT) {
        /* PLAIN always comes with its response; a server may still ask (empty challenge). */
        imapd_printf(s, "+ %s\r\n", res->text);
        imapd_read_line(s, cont_line);
        return;
    }
    l->x = NULL;
    if (res->status == AUTH_CLIENT_FAIL) {
        msg_info("%s: authentication failed: method=%s", s->client_addr, l->method);
        failed(s, l, "NO [AUTHENTICATIONFAILED] Authentication failed.");
        return;
    }
    if (res->status == AUTH_CLIENT_TEMPFAIL) {
        msg_warn("%s: authentication unavailable: method=%s: %s", s->client_addr, l->method,
                 res->text);
        finish(s, "NO [UNAVAILABLE] Temporary authentication failure.");
        return;
    }
    if (open_store(s, res) < 0)
        return;
    s->user = xstrdup(res->text);
    imapd_logged_in(s);
    special_folders_ensure(s);
    auth_log_name(&name, s->user);
    msg_info("login: user=<%s>, method=%s, rip=%s, lip=%s%s", sb_str(&name), l->method,
             *imapd_client_ip(s) ? imapd_client_ip(s) : "local", imapd_local_addr(s),
             s->tls ? ", TLS" : "");
    sb_free(&name);
    login_free(s);
    imapd_printf(s, "%s OK [CAPABILITY ", imapd_current_tag(s));
    imapd_write_capabilities(s);
    imapd_printf(s, "] Logged in\r\n");
    imapd_command_done(s);
}

/* start - one PLAIN exchange with initial response b64 */
static void start(struct imapd_session *s, const char *method, const char *b64)
{
    struct login *l = login_of(s);
    struct auth_client_req req;

    memset(&req, 0, sizeof(req));
    req.mech = "PLAIN";
    req.service = "imap";
    req.secured = secured(s);
    req.lip = *imapd_local_addr(s) ? imapd_local_addr(s) : NULL;
    req.rip = *imapd_client_ip(s) ? imapd_client_ip(s) : NULL;
    req.resp = b64;
    l->method = method;
    imapd_session_wait(s);
    l->x = auth_client_start(s->srv->auth, &req, auth_done, s);
}

/* cont_line - the client's answer to a challenge the auth server sent */
static void cont_line(struct imapd_session *s, const char *line, size_t len)
{
    struct login *l = login_of(s);

    if (l->x == NULL)
        msg_panic("imapd cont_line: no exchange");
    if (line == NULL || (len == 1 && line[0] == '*') || memchr(line, 0, len) != NULL
        || !auth_base64_valid(line)) {
        auth_client_cancel(l->x);
        l->x = NULL;
        finish(s, line != NULL && len == 1 && line[0] == '*'
               ? "BAD Authentication aborted by client."
               : "BAD Invalid base64 data in continued response");
        return;
    }
    imapd_session_wait(s);
    auth_client_respond(l->x, line);
}

/* plaintext_refused - the NO for plaintext logins on an insecure connection; true if sent */
static bool plaintext_refused(struct imapd_session *s, const char *tag)
{
    if (imapd_plaintext_allowed(s))
        return false;
    imapd_tagged(s, tag, "NO [PRIVACYREQUIRED] Plaintext authentication disallowed on "
                 "non-secure (SSL/TLS) connections.");
    return true;
}

/* imapd_cmd_login - LOGIN user password */
void imapd_cmd_login(struct imapd_session *s, const char *tag, const struct imap_arg *args,
                     size_t nargs, bool uid)
{
    struct strbuf b64 = STRBUF_INIT;
    const char *user;
    const char *pass;

    (void) uid;
    if (nargs != 2 || (user = imap_arg_astring(&args[0])) == NULL
        || (pass = imap_arg_astring(&args[1])) == NULL) {
        imapd_tagged(s, tag, "BAD LOGIN needs a user name and a password");
        return;
    }
    if (plaintext_refused(s, tag))
        return;
    if (*user == 0 || strlen(user) > AUTH_PROTO_MAX_USER || strlen(pass) > PASSWORD_MAX) {
        failed(s, login_of(s), "NO [AUTHENTICATIONFAILED] Authentication failed.");
        return;
    }
    auth_plain_encode(&b64, "", user, pass);
    start(s, "LOGIN", sb_str(&b64));
    sb_free(&b64);
}

/* auth_line - AUTHENTICATE's response after "+ ": "*" cancels */
static void auth_line(struct imapd_session *s, const char *line, size_t len)
{
    if (line == NULL) {
        finish(s, "BAD Authentication response too long");
        return;
    }
    if (len == 1 && line[0] == '*') {
        finish(s, "BAD Authentication aborted by client.");
        return;
    }
    if (memchr(line, 0, len) != NULL || !auth_base64_valid(line) || len == 0) {
        finish(s, "BAD Invalid base64 data in response");
        return;
    }
    start(s, "PLAIN", line);
}

/* imapd_cmd_authenticate - AUTHENTICATE PLAIN [initial-response] */
void imapd_cmd_authenticate(struct imapd_session *s, const char *tag, const struct imap_arg *args,
                            size_t nargs, bool uid)
{
    const char *ir = NULL;

    (void) uid;
    if (nargs < 1 || nargs > 2 || args[0].type != IMAP_ARG_ATOM
        || (nargs == 2 && args[1].type != IMAP_ARG_ATOM)) {
        imapd_tagged(s, tag, "BAD AUTHENTICATE needs a mechanism name");
        return;
    }
    if (strcasecmp(args[0].str, "PLAIN") != 0) {
        imapd_tagged(s, tag, "NO Unsupported authentication mechanism.");
        return;
    }
    if (plaintext_refused(s, tag))
        return;
    if (nargs == 2) {
        ir = args[1].str;
        if (strcmp(ir, "=") == 0)
            ir = "";                    /* RFC 4959: "=" is an empty initial response */
        else if (!auth_base64_valid(ir)) {
            imapd_tagged(s, tag, "BAD Invalid base64 data in initial response");
            return;
        }
        start(s, "PLAIN", ir);
        return;
    }
    imapd_printf(s, "+ \r\n");
    imapd_read_line(s, auth_line);
}
