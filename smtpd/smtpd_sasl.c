/*
 * smtpd_sasl - AUTH for smtpd: the SMTP side of lib/auth_client.
 *
 * Interface (smtpd.h): smtpd_sasl_init(), smtpd_sasl_mech_supported(),
 * smtpd_sasl_start(), smtpd_sasl_respond(), smtpd_sasl_cancel().
 *
 * The session (smtpd_session.c) speaks SMTP: the AUTH command, the 334
 * prompts, "*" to abort, the 235/535/454 replies. The SASL exchange with the
 * auth server (our authd, or a real Dovecot) over smtpd_sasl_path (default
 * "private/auth", relative to the queue directory, which is our working
 * directory and chroot) is lib/auth_client.c's: one multiplexed connection
 * per process, opened when the first client authenticates (a server whose
 * authd is down still accepts mail, and AUTH answers 454 until authd is
 * back), a deadline per step, results delivered from the event loop, and
 * every exchange failed temporarily when the auth server misbehaves.
 *
 * This file checks the settings, and maps auth_client's results onto the
 * session's callback.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/un.h>

#include "auth_client.h"
#include "auth_proto.h"
#include "config.h"
#include "log.h"
#include "mem.h"
#include "service.h"

#include "smtpd.h"

/* One AUTH command of one session. */
struct smtpd_sasl {
    struct auth_exchange *x;
    smtpd_sasl_fn fn;
    void   *ctx;
};

static struct auth_client *client;      /* NULL: SASL not enabled */

/* smtpd_sasl_mech_supported - PLAIN or LOGIN (any case) */
bool smtpd_sasl_mech_supported(const char *mech)
{
    return strcasecmp(mech, "PLAIN") == 0 || strcasecmp(mech, "LOGIN") == 0;
}

/* smtpd_sasl_init - check the SASL settings (fatal on a bad one) */
void smtpd_sasl_init(struct smtpd_server *srv)
{
    struct config *cfg = srv->svc->cfg;
    const char *type = config_str(cfg, "smtpd_sasl_type");
    const char *path = config_str(cfg, "smtpd_sasl_path");
    int     line;

    srv->set.sasl_enable = config_bool(cfg, "smtpd_sasl_auth_enable");
    srv->set.sasl_header = config_bool(cfg, "smtpd_sasl_authenticated_header");
    srv->set.broken_sasl = config_bool(cfg, "broken_sasl_auth_clients");
    if (!srv->set.sasl_enable)
        return;
    if (strcasecmp(type, "dovecot") != 0) {
        line = config_line(cfg, "smtpd_sasl_type");
        msg_fatal("%s:%d: smtpd_sasl_type: unsupported SASL type \"%s\"; use dovecot "
                  "(Postern's authd speaks the Dovecot protocol)", config_path(cfg), line, type);
    }
    /* "unix:" prefixes are accepted as Postfix writes them for Dovecot sockets. */
    if (strncmp(path, "unix:", 5) == 0)
        path += 5;
    if (*path == 0 || strlen(path) >= sizeof(((struct sockaddr_un *) 0)->sun_path)) {
        line = config_line(cfg, "smtpd_sasl_path");
        msg_fatal("%s:%d: smtpd_sasl_path: \"%s\" is %s; give the auth socket's path "
                  "relative to the queue directory, e.g. private/auth", config_path(cfg),
                  line, path, *path ? "too long" : "empty");
    }
    client = auth_client_new(srv->svc->base, path);
}

/* sasl_result - auth_client's answer, in the session's terms */
static void sasl_result(void *ctx, const struct auth_client_result *res)
{
    struct smtpd_sasl *ss = ctx;
    smtpd_sasl_fn fn = ss->fn;
    void   *fctx = ss->ctx;
    enum smtpd_sasl_status status;

    switch (res->status) {
    case AUTH_CLIENT_CONT:
        status = SMTPD_SASL_CONT;
        break;
    case AUTH_CLIENT_OK:
        status = SMTPD_SASL_OK;
        break;
    case AUTH_CLIENT_FAIL:
        status = SMTPD_SASL_FAIL;
        break;
    default:
        status = SMTPD_SASL_TEMPFAIL;
        break;
    }
    /* Only a challenge keeps the exchange; auth_client has freed it otherwise. */
    if (status != SMTPD_SASL_CONT)
        free(ss);
    fn(fctx, status, res->text);
}

/* smtpd_sasl_start - ask authd; fn is called later from the event loop, never from here */
struct smtpd_sasl *smtpd_sasl_start(struct smtpd_server *srv, const struct smtpd_sasl_req *req,
                                    smtpd_sasl_fn fn, void *ctx)
{
    struct smtpd_sasl *ss = xcalloc(1, sizeof(*ss));
    struct auth_client_req areq;

    (void) srv;
    if (client == NULL)
        msg_panic("smtpd_sasl_start: SASL is not enabled");
    memset(&areq, 0, sizeof(areq));
    areq.mech = req->mech;
    areq.service = "smtp";
    areq.secured = req->secured;
    areq.lip = req->lip;
    areq.rip = req->rip;
    areq.resp = req->resp;
    ss->fn = fn;
    ss->ctx = ctx;
    ss->x = auth_client_start(client, &areq, sasl_result, ss);
    return ss;
}

/* smtpd_sasl_respond - the client's valid base64 answer to a CONT */
void smtpd_sasl_respond(struct smtpd_sasl *ss, const char *b64)
{
    auth_client_respond(ss->x, b64);
}

/* smtpd_sasl_cancel - forget the exchange (client aborted or left); no more callbacks */
void smtpd_sasl_cancel(struct smtpd_sasl *ss)
{
    if (ss == NULL)
        return;
    auth_client_cancel(ss->x);
    free(ss);
}
