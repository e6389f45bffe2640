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
 * every failure dwarfs that difference.
 *
 * The password check runs in auth_worker_threads threads (lib/worker_pool.h),
 * not in the event loop: an ARGON2ID or BLF-CRYPT hash costs tens of
 * milliseconds, and meanwhile every other client's handshake, lockout answer
 * and delayed FAIL must go on. The passdb is looked up in the loop (a hash
 * table); the job gets its own copies of the stored hash and the password,
 * and the request waits in VERIFYING. With auth_passdb_maps (a database) the
 * lookup is part of the worker's job instead, so that a slow or unreachable
 * server never stalls the loop; a lookup that fails temporarily answers
 * "FAIL ... temp" (454 in SMTP, NO [UNAVAILABLE] in IMAP) and counts as no
 * failure of the client's. A request whose client went away while
 * its hash was checked is forgotten when the job comes back.
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
#include "worker_pool.h"

#include "authd.h"

#define MAX_SERVICE     32
#define MAX_IP          64
#define SERVICE_CHARS   "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_."

#define REASON_LOCKED   "Too many failed login attempts, try again later"

enum mech { MECH_PLAIN, MECH_LOGIN };
enum state { WAIT_PLAIN, WAIT_LOGIN_USER, WAIT_LOGIN_PASS, VERIFYING, REPLY_DELAYED };

struct verify_job;

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
    struct verify_job *job;             /* VERIFYING: the password check under way */
};

/* A password check handed to a worker thread: everything it needs, copied. */
struct verify_job {
    struct authd_request *req;          /* NULL once the request is gone */
    char   *user;                       /* lower-cased login name */
    char   *authzid;
    char   *password;                   /* the client's; wiped when done */
    char   *stored;                     /* the hash to check against (maybe the dummy's) */
    bool    known;                      /* the user is in the passdb */
    bool    has_password;               /* ... with a real hash */
    bool    match;                      /* set by the thread */
    bool    from_maps;                  /* the thread looks the user up first (auth_passdb_maps) */
    bool    tempfail;                   /* ... and the lookup failed temporarily */
    struct authd_fetched fetched;       /* ... what it found */
    struct strbuf why;                  /* ... the lookup's failure or warning */
};

static struct worker_pool *verifiers;

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

/*
 * state_counter - the client's count of requests in this state: waiting for
 * the client (against AUTHD_MAX_REQUESTS), being verified (AUTHD_MAX_VERIFYING)
 * or a decided FAIL waiting out its delay (AUTHD_MAX_DELAYED)
 */
static unsigned *state_counter(struct authd_client *cl, enum state state)
{
    switch (state) {
    case VERIFYING:
        return &cl->nverifying;
    case REPLY_DELAYED:
        return &cl->ndelayed;
    default:
        return &cl->nrequests;
    }
}

/* set_state - move req to another state, keeping the counts right */
static void set_state(struct authd_request *req, enum state state)
{
    *state_counter(req->cl, req->state) -= 1;
    req->state = state;
    *state_counter(req->cl, req->state) += 1;
}

/* request_free - forget req; its client stays */
static void request_free(struct authd_request *req)
{
    if (req->job != NULL)
        req->job->req = NULL;
    LIST_REMOVE(req, link);
    *state_counter(req->cl, req->state) -= 1;
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

/* verify_work - in a worker thread: the one password hash of the request */
static void verify_work(void *arg)
{
    struct verify_job *job = arg;

    if (job->from_maps) {
        /* the lookup may wait on a database: here, not in the event loop */
        int     found = authd_passdb_fetch(job->user, &job->fetched, &job->why);
        const struct authd_user *u = &job->fetched.user;

        if (found < 0) {
            job->tempfail = true;
            return;
        }
        job->known = found > 0;
        job->has_password = job->known && strcmp(u->password, "*") != 0 && u->password[0] != '\0';
        job->stored = xstrdup(job->has_password ? u->password : dummy_hash);
    }
    job->match = password_verify(job->stored, job->password) && job->has_password;
}

/* verify_job_free - wipe the password and drop the copies */
static void verify_job_free(struct verify_job *job)
{
    explicit_bzero(job->password, strlen(job->password));
    free(job->password);
    free(job->user);
    free(job->authzid);
    free(job->stored);
    authd_fetched_free(&job->fetched);
    sb_free(&job->why);
    free(job);
}

/* reply_ok - the login is good: OK with what imapd needs of the userdb */
static void reply_ok(struct authd_request *req, const struct authd_user *u)
{
    struct strbuf line = STRBUF_INIT;

    msg_info("login: user=<%s>, rip=%s, service=%s, mech=%s%s", u->name, log_rip(req),
             req->service, mech_names[req->mech], req->secured ? ", secured" : "");
    auth_server_ok(&line, req->id, u->name);
    if (u->quota_bytes > 0 && strcmp(req->service, "imap") == 0) {
        /* userdb data for imapd, on the OK line as extra fields do */
        sb_truncate(&line, sb_len(&line) - 1);      /* the "\n" */
        sb_printf(&line, "\tuserdb_quota_rule=*:bytes=%llu\n", u->quota_bytes);
    }
    authd_client_send(req->cl, &line);
    sb_free(&line);
    request_done(req);
}

/* reply_failed - count the failure against the IP and the user; FAIL after the delay */
static void reply_failed(struct authd_request *req, const char *user, const char *logname,
                         const char *ipkey, const char *userkey, const char *reason)
{
    struct strbuf what = STRBUF_INIT;
    long long now = authd_now_ms();
    long long delay, left;

    sb_puts(&what, "rip=");
    auth_log_name(&what, ipkey + (ipkey[0] ? 3 : 0));
    delay = count_failure(ipkey, now, sb_str(&what));
    sb_reset(&what);
    sb_printf(&what, "user=<%s>", logname);
    left = count_failure(userkey, now, sb_str(&what));
    if (left > delay)
        delay = left;
    sb_free(&what);
    msg_verbose("failure delay for request %u: %lldms", req->id, delay);
    msg_warn("login failed: user=<%s>, rip=%s, service=%s, mech=%s, reason=%s",
             logname, log_rip(req), req->service, mech_names[req->mech], reason);
    sb_reset(&req->reply);
    auth_server_fail(&req->reply, req->id, user, false, NULL);
    if (delay > 0 && req->cl->ndelayed >= AUTHD_MAX_DELAYED) {
        msg_warn("client %lu: more than %d delayed failures waiting; answering at once",
                 req->cl->cuid, AUTHD_MAX_DELAYED);
        delay = 0;
    }
    if (delay <= 0) {
        authd_client_send(req->cl, &req->reply);
        request_done(req);
        return;
    }
    set_state(req, REPLY_DELAYED);      /* decided, only waiting: see AUTHD_MAX_DELAYED */
    arm_timer(req, delay);
}

/* throttle_keys - the throttle's keys and the logged name for a login name */
static void throttle_keys(struct authd_request *req, const char *user, struct strbuf *ipkey,
                          struct strbuf *userkey, struct strbuf *logname)
{
    sb_printf(userkey, "user:%s", user);
    if (req->rip[0])
        auth_throttle_ip_key(ipkey, req->rip);
    auth_log_name(logname, user);
}

/* verify_done - in the loop: the hash is checked; decide and answer */
static void verify_done(void *arg)
{
    struct verify_job *job = arg;
    struct authd_request *req = job->req;
    struct strbuf ipkey = STRBUF_INIT;
    struct strbuf userkey = STRBUF_INIT;
    struct strbuf logname = STRBUF_INIT;
    const struct authd_user *u;
    const char *reason;

    if (req == NULL) {                  /* the client went away meanwhile */
        verify_job_free(job);
        service_check_idle(authd.svc);
        return;
    }
    req->job = NULL;
    throttle_keys(req, job->user, &ipkey, &userkey, &logname);
    if (job->tempfail) {
        /* the directory is unreachable: not the client's fault, nothing counted */
        msg_warn("login failed: user=<%s>, rip=%s, service=%s, mech=%s, reason=temporary "
                 "failure: %s", sb_str(&logname), log_rip(req), req->service,
                 mech_names[req->mech], sb_str(&job->why));
        reply_fail(req, job->user, true, "Temporary authentication failure");
        goto out;
    }
    if (sb_len(&job->why))
        msg_warn("auth_passdb_maps: user %s: %s", sb_str(&logname), sb_str(&job->why));
    /* The passdb may have been reloaded meanwhile: the user as it is now decides. */
    u = job->from_maps ? &job->fetched.user : authd_passdb_lookup(job->user);
    if (!job->known || u == NULL)
        reason = "unknown user";
    else if (!job->has_password)
        reason = "no password set";
    else if (!job->match)
        reason = "wrong password";
    else if (job->authzid[0] != '\0' && strcasecmp(job->authzid, job->user) != 0)
        reason = "authorization identity differs from the user (no master users)";
    else
        reason = service_denied(u, req->service);

    if (reason == NULL) {
        if (ipkey.len)
            auth_throttle_success(authd.throttle, sb_str(&ipkey));
        auth_throttle_success(authd.throttle, sb_str(&userkey));
        reply_ok(req, u);
    } else {
        reply_failed(req, job->user, sb_str(&logname), sb_str(&ipkey), sb_str(&userkey), reason);
    }
out:
    verify_job_free(job);
    sb_free(&ipkey);
    sb_free(&userkey);
    sb_free(&logname);
}

/* authenticate - refuse a locked-out login at once, else check the password in a worker */
static void authenticate(struct authd_request *req, const char *authzid, const char *login,
                         const char *password)
{
    struct strbuf user = STRBUF_INIT;
    struct strbuf ipkey = STRBUF_INIT;
    struct strbuf userkey = STRBUF_INIT;
    struct strbuf logname = STRBUF_INIT;    /* the user as logged: client bytes, escaped */
    const struct authd_user *u;
    struct verify_job *job;
    long long now = authd_now_ms();
    long long left;

    sb_set(&user, login);
    sb_lowercase(&user);
    throttle_keys(req, sb_str(&user), &ipkey, &userkey, &logname);

    /* Locked out: refuse without spending a hash on it. */
    if ((left = lockout_left(sb_str(&ipkey), now)) > 0
        || (left = lockout_left(sb_str(&userkey), now)) > 0) {
        msg_warn("login refused: user=<%s>, rip=%s, service=%s, reason=locked out "
                 "(%lld more seconds)", sb_str(&logname), log_rip(req), req->service,
                 (left + 999) / 1000);
        reply_fail(req, sb_str(&user), true, REASON_LOCKED);
        goto out;
    }

    job = xcalloc(1, sizeof(*job));
    job->req = req;
    job->user = sb_detach(&user);
    job->authzid = xstrdup(authzid);
    job->password = xstrdup(password);
    sb_init(&job->why);
    if (authd_passdb_maps_enabled()) {
        job->from_maps = true;          /* verify_work() looks the user up */
    } else {
        authd_passdb_check();
        u = authd_passdb_lookup(job->user);
        job->known = u != NULL;
        job->has_password = u && strcmp(u->password, "*") != 0 && u->password[0] != '\0';
        job->stored = xstrdup(job->has_password ? u->password : dummy_hash);
    }
    req->job = job;
    set_state(req, VERIFYING);
    worker_pool_submit(verifiers, verify_work, verify_done, job);

out:
    sb_free(&user);
    sb_free(&ipkey);
    sb_free(&userkey);
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
    case VERIFYING:
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
    if (cl->nrequests >= AUTHD_MAX_REQUESTS || cl->nverifying >= AUTHD_MAX_VERIFYING) {
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
    if (req->state == REPLY_DELAYED || req->state == VERIFYING) {
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
    long long threads;

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
    threads = config_int(svc->cfg, "auth_worker_threads");
    verifiers = worker_pool_new(svc->base, (unsigned) (threads > 64 ? 64 : threads),
                                "authd password check");
    sb_free(&pw);
    sb_free(&err);
}
