/*
 * authd_request - one authentication request: the SASL exchange, the
 * password check, the brute-force defence and the reply.
 *
 * Interface (authd.h): authd_request_init(), authd_request_auth(),
 * authd_request_cont(), authd_request_free_all().
 *
 * Mechanisms: PLAIN (initial response, or an empty CONT challenge first) and
 * LOGIN (CONT "Username:" then "Password:", base64 as Dovecot sends them; an
 * initial response is the user name). Anything else, ANONYMOUS included,
 * gets FAIL. An authorization identity other than the user itself is refused
 * (no master users).
 *
 * Equal treatment: an unknown user, a user without a password ("*") and a
 * wrong password all cost one password_verify() (against a dummy hash of the
 * default scheme when there is no real one) and produce the same FAIL line;
 * only the log says which it was. A user whose hash uses a slower scheme
 * (ARGON2ID) than the default is distinguishable by timing; the delay on
 * every failure dwarfs that difference. Hashing runs inline in the event
 * loop: SHA512-CRYPT costs ~1-5 ms, so one process handles hundreds of
 * logins per second; with ARGON2ID (tens of ms) a worker thread or more
 * processes would be the next step.
 *
 * Brute-force defence (lib/auth_throttle.h): failures are counted per client
 * IP (rip=, IPv6 per /64; requests without rip= count per user only) and per
 * user name, known or not. A failure's FAIL waits on a libevent timer (the
 * larger of the IP's and the user's delay), never blocking the process; a
 * success is answered at once and resets the counters of its IP and user.
 * Reaching auth_failure_limit locks the IP (and the user) out for
 * auth_lockout_time: such requests get "FAIL ... temp reason=..." at once,
 * without looking at the password (clients show a temporary error, 454 in
 * SMTP). Every failure, refusal and lockout is logged with user, rip and service.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <time.h>

#include <event2/event.h>

#include "auth_proto.h"
#include "auth_throttle.h"
#include "config.h"
#include "log.h"
#include "mem.h"
#include "password.h"
#include "strbuf.h"

#include "authd.h"

#define MAX_SERVICE     32
#define MAX_IP          64
#define SERVICE_CHARS   "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_."

#define REASON_LOCKED   "Too many failed login attempts, try again later"

enum mech { MECH_PLAIN, MECH_LOGIN };
enum state { WAIT_PLAIN, WAIT_LOGIN_USER, WAIT_LOGIN_PASS, REPLY_DELAYED };

struct authd_request {
    LIST_ENTRY(authd_request) link;
    struct authd_client *cl;
    unsigned id;
    enum mech mech;
    enum state state;
    bool    secured;
    char    service[MAX_SERVICE + 1];
    char    rip[MAX_IP + 1];            /* "" when the client did not say */
    char    log_rip[4 * MAX_IP + 1];    /* rip escaped for logs (auth_log_name), made on first use */
    struct strbuf login_user;           /* LOGIN: the name from the first round */
    struct strbuf reply;                /* REPLY_DELAYED: the FAIL line to send */
    struct event *timer;                /* waiting: request timeout; delayed: the delay */
};

static char *dummy_hash;                /* verified against when there is no real hash */

static const char *const mech_names[] = {"PLAIN", "LOGIN"};

/* log_rip - req's rip= for log lines, escaped (it came over the wire); "-" when absent */
static const char *log_rip(struct authd_request *req)
{
    if (req->rip[0] == '\0')
        return "-";
    if (req->log_rip[0] == '\0') {
        struct strbuf sb = STRBUF_INIT;

        auth_log_name(&sb, req->rip);
        snprintf(req->log_rip, sizeof(req->log_rip), "%s", sb_str(&sb));
        sb_free(&sb);
    }
    return req->log_rip;
}

/* request_free - forget req; its client stays */
static void request_free(struct authd_request *req)
{
    LIST_REMOVE(req, link);
    if (req->state == REPLY_DELAYED)
        req->cl->ndelayed--;
    else
        req->cl->nrequests--;
    authd.requests_active--;
    event_free(req->timer);
    if (req->login_user.data)
        explicit_bzero(req->login_user.data, req->login_user.cap);
    sb_free(&req->login_user);
    sb_free(&req->reply);
    free(req);
}

void authd_request_free_all(struct authd_client *cl)
{
    while (!LIST_EMPTY(&cl->requests))
        request_free(LIST_FIRST(&cl->requests));
}

/* request_find - cl's request with this id */
static struct authd_request *request_find(struct authd_client *cl, unsigned id)
{
    struct authd_request *req;

    LIST_FOREACH(req, &cl->requests, link)
        if (req->id == id)
            return req;
    return NULL;
}

/* request_done - the request is answered: free it, and let a stopping process exit */
static void request_done(struct authd_request *req)
{
    request_free(req);
    service_check_idle(authd.svc);
}

/* reply_fail - FAIL now and end the request */
static void reply_fail(struct authd_request *req, const char *user, bool temp, const char *reason)
{
    struct strbuf line = STRBUF_INIT;

    auth_server_fail(&line, req->id, user, temp, reason);
    authd_client_send(req->cl, &line);
    sb_free(&line);
    request_done(req);
}

/* timer_fired - a delayed FAIL is due, or the client never answered a challenge */
static void timer_fired(evutil_socket_t fd, short what, void *arg)
{
    struct authd_request *req = arg;

    (void) fd;
    (void) what;
    if (req->state == REPLY_DELAYED) {
        authd_client_send(req->cl, &req->reply);
        request_done(req);
        return;
    }
    msg_info("auth request timed out waiting for the client: id=%u, rip=%s, service=%s",
             req->id, log_rip(req), req->service);
    reply_fail(req, NULL, false, "Authentication request timed out");
}

/* arm_timer - (re)start req's timer */
static void arm_timer(struct authd_request *req, long long ms)
{
    struct timeval tv = {(time_t) (ms / 1000), (suseconds_t) (ms % 1000) * 1000};

    if (event_add(req->timer, &tv) != 0)
        msg_fatal("event_add: out of memory");
}

/* send_cont - a challenge, then wait for the client's CONT */
static void send_cont(struct authd_request *req, enum state next, const char *challenge)
{
    struct strbuf line = STRBUF_INIT;

    auth_server_cont(&line, req->id, challenge, strlen(challenge));
    authd_client_send(req->cl, &line);
    sb_free(&line);
    req->state = next;
    arm_timer(req, authd.request_timeout * 1000);
}

/* service_denied - the user may not use this service */
static const char *service_denied(const struct authd_user *u, const char *service)
{
    if (u->nologin)
        return "account disabled (nologin)";
    if ((strcasecmp(service, "smtp") == 0 || strcasecmp(service, "submission") == 0)
        && u->deny_smtp)
        return "smtp not allowed for this user (allow_smtp=no)";
    if ((strcasecmp(service, "imap") == 0 || strcasecmp(service, "pop3") == 0) && u->deny_imap)
        return "imap not allowed for this user (allow_imap=no)";
    return NULL;
}

/* lockout_left - ms that key is still locked out, logging when it is */
static long long lockout_left(const char *key, long long now)
{
    return key[0] ? auth_throttle_locked(authd.throttle, key, now) : 0;
}

/* count_failure - count a failure against key; its delay; logs a new lockout */
static long long count_failure(const char *key, long long now, const char *what)
{
    bool    locked = false;
    long long delay;

    if (key[0] == '\0')
        return 0;
    delay = auth_throttle_failure(authd.throttle, key, now, &locked);
    if (locked)
        msg_warn("lockout: %s locked out for %llds after %lld failed logins within %llds",
                 what, config_time(authd.svc->cfg, "auth_lockout_time"),
                 config_int(authd.svc->cfg, "auth_failure_limit"),
                 config_time(authd.svc->cfg, "auth_failure_window"));
    return delay;
}

/* authenticate - check user/password and answer (at once, or after the failure delay) */
static void authenticate(struct authd_request *req, const char *authzid, const char *login,
                         const char *password)
{
    struct strbuf user = STRBUF_INIT;
    struct strbuf ipkey = STRBUF_INIT;
    struct strbuf userkey = STRBUF_INIT;
    struct strbuf what = STRBUF_INIT;
    struct strbuf logname = STRBUF_INIT;    /* the user as logged: client bytes, escaped */
    const struct authd_user *u;
    const char *reason = NULL;
    const char *stored;
    const char *rip = log_rip(req);
    long long now = authd_now_ms();
    long long left, delay;
    bool    match;

    sb_set(&user, login);
    sb_lowercase(&user);
    sb_printf(&userkey, "user:%s", sb_str(&user));
    if (req->rip[0])
        auth_throttle_ip_key(&ipkey, req->rip);
    auth_log_name(&logname, sb_str(&user));

    /* Locked out: refuse without spending a hash on it. */
    if ((left = lockout_left(sb_str(&ipkey), now)) > 0
        || (left = lockout_left(sb_str(&userkey), now)) > 0) {
        msg_warn("login refused: user=<%s>, rip=%s, service=%s, reason=locked out "
                 "(%lld more seconds)", sb_str(&logname), rip, req->service, (left + 999) / 1000);
        reply_fail(req, sb_str(&user), true, REASON_LOCKED);
        goto out;
    }

    authd_passdb_check();
    u = authd_passdb_lookup(sb_str(&user));
    stored = u && strcmp(u->password, "*") != 0 && u->password[0] != '\0' ? u->password : dummy_hash;
    match = password_verify(stored, password) && stored != dummy_hash;
    if (u == NULL)
        reason = "unknown user";
    else if (stored == dummy_hash)
        reason = "no password set";
    else if (!match)
        reason = "wrong password";
    else if (authzid[0] != '\0' && strcasecmp(authzid, sb_str(&user)) != 0)
        reason = "authorization identity differs from the user (no master users)";
    else
        reason = service_denied(u, req->service);

    if (reason == NULL) {
        if (ipkey.len)
            auth_throttle_success(authd.throttle, sb_str(&ipkey));
        auth_throttle_success(authd.throttle, sb_str(&userkey));
        msg_info("login: user=<%s>, rip=%s, service=%s, mech=%s%s", u->name, rip, req->service,
                 mech_names[req->mech], req->secured ? ", secured" : "");
        sb_reset(&user);
        auth_server_ok(&user, req->id, u->name);
        if (u->quota_bytes > 0 && strcmp(req->service, "imap") == 0) {
            /* userdb data for imapd, on the OK line as extra fields do */
            sb_truncate(&user, sb_len(&user) - 1);      /* the "\n" */
            sb_printf(&user, "\tuserdb_quota_rule=*:bytes=%llu\n", u->quota_bytes);
        }
        authd_client_send(req->cl, &user);
        request_done(req);
        goto out;
    }

    sb_reset(&what);
    sb_puts(&what, "rip=");
    auth_log_name(&what, sb_str(&ipkey) + (ipkey.len ? 3 : 0));
    delay = count_failure(sb_str(&ipkey), now, sb_str(&what));
    sb_reset(&what);
    sb_printf(&what, "user=<%s>", sb_str(&logname));
    left = count_failure(sb_str(&userkey), now, sb_str(&what));
    if (left > delay)
        delay = left;
    msg_verbose("failure delay for request %u: %lldms", req->id, delay);
    msg_warn("login failed: user=<%s>, rip=%s, service=%s, mech=%s, reason=%s",
             sb_str(&logname), rip, req->service, mech_names[req->mech], reason);
    sb_reset(&req->reply);
    auth_server_fail(&req->reply, req->id, sb_str(&user), false, NULL);
    if (delay > 0 && req->cl->ndelayed >= AUTHD_MAX_DELAYED) {
        msg_warn("client %lu: more than %d delayed failures waiting; answering at once",
                 req->cl->cuid, AUTHD_MAX_DELAYED);
        delay = 0;
    }
    if (delay <= 0) {
        authd_client_send(req->cl, &req->reply);
        request_done(req);
        goto out;
    }
    req->state = REPLY_DELAYED;         /* from in flight to waiting: see AUTHD_MAX_DELAYED */
    req->cl->nrequests--;
    req->cl->ndelayed++;
    arm_timer(req, delay);

out:
    sb_free(&user);
    sb_free(&ipkey);
    sb_free(&userkey);
    sb_free(&what);
    sb_free(&logname);
}

/* bad_response - the client's SASL data is malformed: FAIL at once */
static void bad_response(struct authd_request *req, const char *what)
{
    msg_warn("login failed: user=<>, rip=%s, service=%s, mech=%s, reason=%s",
             log_rip(req), req->service, mech_names[req->mech], what);
    reply_fail(req, NULL, false, what);
}

/* step - feed one base64 response (initial or from CONT) into the exchange */
static void step(struct authd_request *req, const char *b64)
{
    struct strbuf raw = STRBUF_INIT;
    struct strbuf err = STRBUF_INIT;
    struct auth_plain plain;

    if (auth_base64_decode(b64, strlen(b64), &raw) < 0) {
        bad_response(req, "Invalid base64 data");
        goto out;
    }
    switch (req->state) {
    case WAIT_PLAIN:
        if (auth_plain_decode(&raw, &plain, &err) < 0)
            bad_response(req, "Invalid PLAIN response");
        else
            authenticate(req, plain.authzid, plain.authcid, plain.password);
        break;
    case WAIT_LOGIN_USER:
        if (auth_login_value(&raw, AUTH_PROTO_MAX_USER, &err) < 0 || sb_len(&raw) == 0) {
            bad_response(req, "Invalid LOGIN user name");
            break;
        }
        sb_set(&req->login_user, sb_str(&raw));
        send_cont(req, WAIT_LOGIN_PASS, "Password:");
        break;
    case WAIT_LOGIN_PASS:
        if (auth_login_value(&raw, PASSWORD_MAX, &err) < 0)
            bad_response(req, "Invalid LOGIN password");
        else
            authenticate(req, "", sb_str(&req->login_user), sb_str(&raw));
        break;
    case REPLY_DELAYED:
        msg_panic("step: request %u already answered", req->id);
    }
out:
    if (raw.data)
        explicit_bzero(raw.data, raw.cap);   /* it held a password */
    sb_free(&raw);
    sb_free(&err);
}

/* copy_bounded - src into dst[max+1], or false when it does not fit */
static bool copy_bounded(char *dst, size_t max, const char *src)
{
    size_t  len = strlen(src);

    if (len > max)
        return false;
    memcpy(dst, src, len + 1);
    return true;
}

int authd_request_auth(struct authd_client *cl, const struct auth_client_line *line)
{
    struct authd_request *req;
    struct strbuf out = STRBUF_INIT;

    if (request_find(cl, line->id) != NULL) {
        msg_warn("client %lu (pid %lu): AUTH id %u is already in use", cl->cuid, cl->cpid,
                 line->id);
        return -1;
    }
    if (line->service[strspn(line->service, SERVICE_CHARS)] != '\0') {
        /* It goes into log lines next to user=/rip=: nothing but a plain name. */
        msg_warn("client %lu (pid %lu): AUTH with a bad service name", cl->cuid, cl->cpid);
        return -1;
    }
    if (strcasecmp(line->mech, "PLAIN") != 0 && strcasecmp(line->mech, "LOGIN") != 0) {
        auth_log_name(&out, line->rip ? line->rip : "-");
        msg_info("unsupported mechanism %s from client %lu (rip=%s)", line->mech, cl->cuid,
                 sb_str(&out));
        sb_reset(&out);
        auth_server_fail(&out, line->id, NULL, false, "Unsupported authentication mechanism");
        authd_client_send(cl, &out);
        sb_free(&out);
        return 0;
    }
    if (cl->nrequests >= AUTHD_MAX_REQUESTS) {
        msg_warn("client %lu (pid %lu): more than %d requests in flight; refusing id %u",
                 cl->cuid, cl->cpid, AUTHD_MAX_REQUESTS, line->id);
        auth_server_fail(&out, line->id, NULL, true, "Too many requests in progress");
        authd_client_send(cl, &out);
        sb_free(&out);
        return 0;
    }
    req = xcalloc(1, sizeof(*req));
    req->cl = cl;
    req->id = line->id;
    req->mech = strcasecmp(line->mech, "PLAIN") == 0 ? MECH_PLAIN : MECH_LOGIN;
    req->secured = line->secured;
    if (!copy_bounded(req->service, MAX_SERVICE, line->service)
        || (line->rip && !copy_bounded(req->rip, MAX_IP, line->rip))) {
        free(req);
        msg_warn("client %lu: AUTH with an overlong service or rip", cl->cuid);
        return -1;
    }
    if ((req->timer = evtimer_new(authd.svc->base, timer_fired, req)) == NULL)
        msg_fatal("evtimer_new: out of memory");
    LIST_INSERT_HEAD(&cl->requests, req, link);
    cl->nrequests++;
    authd.requests_active++;

    if (req->mech == MECH_PLAIN) {
        req->state = WAIT_PLAIN;
        if (line->resp != NULL)
            step(req, line->resp);
        else
            send_cont(req, WAIT_PLAIN, "");
    } else {
        req->state = WAIT_LOGIN_USER;
        if (line->resp != NULL && line->resp[0] != '\0')
            step(req, line->resp);
        else
            send_cont(req, WAIT_LOGIN_USER, "Username:");
    }
    return 0;
}

int authd_request_cont(struct authd_client *cl, const struct auth_client_line *line)
{
    struct authd_request *req = request_find(cl, line->id);
    struct strbuf out = STRBUF_INIT;

    if (req == NULL) {
        /* Timed out and answered already, most likely: tell the client, as Dovecot does. */
        auth_server_fail(&out, line->id, NULL, false, "Authentication request timed out");
        authd_client_send(cl, &out);
        sb_free(&out);
        return 0;
    }
    if (req->state == REPLY_DELAYED) {
        msg_warn("client %lu (pid %lu): CONT for request %u that is being answered",
                 cl->cuid, cl->cpid, line->id);
        return -1;
    }
    event_del(req->timer);
    step(req, line->data);
    return 0;
}

void authd_request_init(struct service *svc)
{
    struct auth_throttle_config tc;
    struct strbuf hash = STRBUF_INIT;
    struct strbuf err = STRBUF_INIT;
    unsigned char rnd[18];
    struct strbuf pw = STRBUF_INIT;

    tc.delay_ms = config_time(svc->cfg, "auth_failure_delay") * 1000;
    tc.delay_max_ms = config_time(svc->cfg, "auth_failure_delay_max") * 1000;
    if (tc.delay_max_ms < tc.delay_ms)
        tc.delay_max_ms = tc.delay_ms;
    tc.limit = (unsigned) config_int(svc->cfg, "auth_failure_limit");
    tc.window_ms = config_time(svc->cfg, "auth_failure_window") * 1000;
    tc.lockout_ms = config_time(svc->cfg, "auth_lockout_time") * 1000;
    tc.max_entries = (size_t) config_int(svc->cfg, "auth_throttle_entries");
    authd.throttle = auth_throttle_create(&tc);
    authd.request_timeout = config_time(svc->cfg, "auth_request_timeout");

    /* The dummy's password is random: nobody can match it, not even by typing "*". */
    if (getrandom(rnd, sizeof(rnd), 0) != (ssize_t) sizeof(rnd))
        msg_fatal("getrandom: %m");
    auth_base64_encode(&pw, rnd, sizeof(rnd));
    if (password_hash(PASSWORD_DEFAULT_SCHEME, sb_str(&pw), &hash, &err) < 0)
        msg_fatal("cannot make the dummy password hash: %s", sb_str(&err));
    dummy_hash = sb_detach(&hash);
    sb_free(&pw);
    sb_free(&err);
}
