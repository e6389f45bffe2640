/*
 * policyd_greylist - one policy request -> one action, Postgrey's way.
 *
 * Interface (policyd.h): policyd_greylist_init(), policyd_greylist_ready(),
 * policyd_greylist_stop(), policyd_greylist_request().
 *
 * Only RCPT-time requests are greylisted (the service belongs in
 * smtpd_recipient_restrictions); requests in other states get DUNNO. Before
 * the store is asked, whitelisted clients (greylist_whitelist_networks, then
 * greylist_whitelist_clients by address, address prefix "192.0.2", client
 * name and its parent domains) and recipients (greylist_whitelist_recipients
 * by "user@domain", "domain", "user@") pass. Replies:
 *   action=DEFER_IF_PERMIT 4.2.0 Greylisted, please try again in N seconds
 *     a new triplet, or an early retry: smtpd answers "450 4.2.0 <rcpt>:
 *     Recipient address rejected: Greylisted, ..." unless a later
 *     restriction rejects the recipient outright (then the 5xx wins)
 *   action=PREPEND X-Greylist: delayed N seconds by postern-policyd at HOST; DATE
 *     the retry that waited (greylist_prepend_header = yes)
 *   action=DUNNO
 *     everything else, including our own trouble: greylisting must never
 *     stop mail because the store or a table failed (a warning is logged)
 *
 * Timers: the store is flushed every second when something changed (a
 * crash loses at most that second), and expired records are swept in steps of
 * EXPIRE_STEP every EXPIRE_SECS seconds so that a large store never blocks
 * requests.
 *
 * Diagnostics: every decision is logged at info level, as Postgrey does
 * ("action=greylist, reason=new" and friends), with the client, sender and
 * recipient; bad requests and store trouble are warnings.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include "config.h"
#include "greylist.h"
#include "log.h"
#include "map.h"
#include "mem.h"
#include "netmatch.h"
#include "policy_proto.h"
#include "service.h"
#include "strbuf.h"

#include "policyd.h"

#define SYNC_SECS           1
#define EXPIRE_SECS         10
#define EXPIRE_STEP         1000        /* records visited per sweep step */
#define LOCK_WAIT_MS        10000       /* a retiring predecessor hands the store over */
#define LOCK_POLL_MS        100
#define MAX_PARENT_LOOKUPS  16          /* a.b.c.d...: enough labels for any real name */

static struct {
    struct service *svc;
    struct greylist_settings set;
    struct greylist *gl;
    char   *db_path;
    char   *hostname;
    bool    prepend_header;
    struct maplist *wl_clients;
    struct maplist *wl_recipients;
    struct netmatch *wl_networks;       /* NULL: none */
    struct event *sync_ev;
    struct event *expire_ev;
    unsigned swept;                     /* removed in the current sweep */
} gr;

/* int_setting - an integer parameter within [min, max], or a fatal configuration error */
static int int_setting(struct config *cfg, const char *name, long long min, long long max)
{
    long long v = config_int(cfg, name);

    if (v < min || v > max)
        msg_fatal("%s = %lld: must be between %lld and %lld", name, v, min, max);
    return (int) v;
}

void policyd_greylist_init(struct service *svc)
{
    struct config *cfg = svc->cfg;
    struct strbuf err = STRBUF_INIT;
    const char *nets, *db;

    gr.svc = svc;
    gr.set.delay = config_time(cfg, "greylist_delay");
    gr.set.max_age = config_time(cfg, "greylist_max_age");
    gr.set.retry_window = config_time(cfg, "greylist_retry_window");
    gr.set.awl_clients = config_int(cfg, "greylist_auto_whitelist_clients");
    gr.set.ipv4_prefix = int_setting(cfg, "greylist_client_netmask_ipv4", 0, 32);
    gr.set.ipv6_prefix = int_setting(cfg, "greylist_client_netmask_ipv6", 0, 128);
    gr.prepend_header = config_bool(cfg, "greylist_prepend_header");
    gr.hostname = xstrdup(config_str(cfg, "myhostname"));

    db = config_str(cfg, "greylist_database");
    if (db[0] == '\0' || db[0] == '/' || strstr(db, "..") != NULL || strchr(db, '\n'))
        msg_fatal("greylist_database = %s: must be a file name relative to data_directory "
                  "(%s), such as greylist.db", db, config_str(cfg, "data_directory"));
    gr.db_path = xstrdup(db);

    if ((gr.wl_clients = maplist_open(config_str(cfg, "greylist_whitelist_clients"), &err)) == NULL)
        msg_fatal("greylist_whitelist_clients: %s", sb_str(&err));
    if ((gr.wl_recipients = maplist_open(config_str(cfg, "greylist_whitelist_recipients"), &err)) == NULL)
        msg_fatal("greylist_whitelist_recipients: %s", sb_str(&err));
    nets = config_str(cfg, "greylist_whitelist_networks");
    if (nets[0] != '\0' && (gr.wl_networks = netmatch_parse(nets, &err)) == NULL)
        msg_fatal("greylist_whitelist_networks: %s", sb_str(&err));
    service_watch_maps(svc, gr.wl_clients);
    service_watch_maps(svc, gr.wl_recipients);
    tzset();                            /* the X-Greylist date, once chrooted away from zoneinfo */
    sb_free(&err);
}

/* sync_tick - flush what changed */
static void sync_tick(evutil_socket_t fd, short what, void *arg)
{
    struct strbuf err = STRBUF_INIT;

    (void) fd;
    (void) what;
    (void) arg;
    if (gr.gl != NULL && greylist_sync(gr.gl, &err) < 0)
        msg_warn("%s", sb_str(&err));
    sb_free(&err);
}

/* expire_tick - one bounded step of the expiry sweep */
static void expire_tick(evutil_socket_t fd, short what, void *arg)
{
    struct strbuf err = STRBUF_INIT;
    unsigned removed = 0;
    int     rc;

    (void) fd;
    (void) what;
    (void) arg;
    if (gr.gl == NULL)
        return;
    rc = greylist_expire(gr.gl, (long long) time(NULL), EXPIRE_STEP, &removed, &err);
    gr.swept += removed;
    if (rc < 0) {
        msg_warn("%s", sb_str(&err));
    } else if (rc == 1) {
        if (gr.swept > 0)
            msg_info("greylist store: %u expired record(s) removed", gr.swept);
        gr.swept = 0;
    }
    sb_free(&err);
}

void policyd_greylist_ready(struct service *svc)
{
    struct strbuf err = STRBUF_INIT;
    struct timeval sync_tv = {SYNC_SECS, 0}, expire_tv = {EXPIRE_SECS, 0};
    bool    busy = false;

    /* A predecessor retiring at a reload closes the store first; give it a moment. */
    for (int waited = 0;; waited += LOCK_POLL_MS) {
        sb_reset(&err);
        if ((gr.gl = greylist_open(gr.db_path, &gr.set, &busy, &err)) != NULL)
            break;
        if (!busy)
            msg_fatal("%s", sb_str(&err));
        if (waited >= LOCK_WAIT_MS)
            msg_fatal("%s; is the policyd service's maxproc in master.cf more than 1? "
                      "It must be 1 (or give each service its own -o greylist_database=...)",
                      sb_str(&err));
        usleep(LOCK_POLL_MS * 1000);
    }
    gr.sync_ev = event_new(svc->base, -1, EV_PERSIST, sync_tick, NULL);
    gr.expire_ev = event_new(svc->base, -1, EV_PERSIST, expire_tick, NULL);
    if (gr.sync_ev == NULL || gr.expire_ev == NULL)
        msg_fatal("event_new: out of memory");
    event_add(gr.sync_ev, &sync_tv);
    event_add(gr.expire_ev, &expire_tv);
    msg_verbose("greylist store %s: delay %llds, retry window %llds, max age %llds, "
                "auto-whitelist after %lld", gr.db_path, gr.set.delay, gr.set.retry_window,
                gr.set.max_age, gr.set.awl_clients);
    sb_free(&err);
}

void policyd_greylist_stop(void)
{
    if (gr.sync_ev) {
        event_free(gr.sync_ev);
        gr.sync_ev = NULL;
    }
    if (gr.expire_ev) {
        event_free(gr.expire_ev);
        gr.expire_ev = NULL;
    }
    if (gr.gl) {
        greylist_close(gr.gl);
        gr.gl = NULL;
    }
}

/* dunno - the reply that lets later restrictions decide */
static void dunno(struct strbuf *reply)
{
    sb_puts(reply, "action=DUNNO\n\n");
}

/* listed - key in list? A table failure counts as "no", with a warning */
static bool listed(struct maplist *list, const char *what, const char *key)
{
    struct strbuf value = STRBUF_INIT;
    enum map_status st;

    if (list == NULL || maplist_empty(list) || key[0] == '\0')
        return false;
    st = maplist_lookup(list, key, &value);
    if (st == MAP_TEMPFAIL)
        msg_warn("%s lookup of \"%s\" failed: %s; greylisting as usual", what, key, sb_str(&value));
    sb_free(&value);
    return st == MAP_FOUND;
}

/* listed_domain - name or one of its parent domains in list */
static bool listed_domain(struct maplist *list, const char *what, const char *name)
{
    const char *p = name;

    for (int i = 0; p != NULL && *p && i < MAX_PARENT_LOOKUPS; i++) {
        if (listed(list, what, p))
            return true;
        p = strchr(p, '.');
        if (p != NULL)
            p++;
    }
    return false;
}

/* client_whitelisted - by network, address, address prefix, or verified name */
static bool client_whitelisted(const char *addr, const char *name)
{
    const char *what = "greylist_whitelist_clients";

    if (gr.wl_networks != NULL && netmatch_text(gr.wl_networks, addr))
        return true;
    if (listed(gr.wl_clients, what, addr))
        return true;
    if (strchr(addr, ':') == NULL) {
        /* Postfix's access-table prefixes for IPv4: "192.0.2", "192.0", "192" */
        char    prefix[64];
        char   *dot;

        snprintf(prefix, sizeof(prefix), "%s", addr);
        while ((dot = strrchr(prefix, '.')) != NULL) {
            *dot = '\0';
            if (listed(gr.wl_clients, what, prefix))
                return true;
        }
    }
    if (name != NULL && name[0] != '\0' && strcmp(name, "unknown") != 0)
        return listed_domain(gr.wl_clients, what, name);
    return false;
}

/* recipient_whitelisted - "user@domain", "domain" (and its parents), "user@" */
static bool recipient_whitelisted(const char *rcpt)
{
    const char *what = "greylist_whitelist_recipients";
    const char *at = strrchr(rcpt, '@');
    struct strbuf user = STRBUF_INIT;
    bool    found;

    if (listed(gr.wl_recipients, what, rcpt))
        return true;
    if (at == NULL)
        return false;
    if (listed_domain(gr.wl_recipients, what, at + 1))
        return true;
    sb_append(&user, rcpt, (size_t) (at - rcpt) + 1);
    found = listed(gr.wl_recipients, what, sb_str(&user));
    sb_free(&user);
    return found;
}

/* log_decision - one line per decision, as Postgrey logs them; delay -1: none to report */
static void log_decision(const char *action, const char *reason, const struct policy_block *req,
                         long long delay)
{
    const char *name = policy_block_get(req, "client_name");
    const char *qid = policy_block_get(req, "queue_id");
    struct strbuf extra = STRBUF_INIT;

    if (delay >= 0)
        sb_printf(&extra, ", delay=%lld", delay);
    msg_info("%s%saction=%s, reason=%s%s, client_name=%s, client_address=%s, sender=%s, recipient=%s",
             qid && qid[0] ? qid : "", qid && qid[0] ? ": " : "", action, reason, sb_str(&extra),
             name ? name : "unknown", policy_block_get(req, "client_address"),
             policy_block_get(req, "sender"), policy_block_get(req, "recipient"));
    sb_free(&extra);
}

/* prepend_header - the X-Greylist: header for mail that waited */
static void prepend_header(struct strbuf *reply, long long seconds, long long now)
{
    char    date[64];
    time_t  t = (time_t) now;
    struct tm tm;

    if (localtime_r(&t, &tm) == NULL || strftime(date, sizeof(date), "%a, %d %b %Y %H:%M:%S %z", &tm) == 0)
        snprintf(date, sizeof(date), "%lld", now);
    sb_printf(reply, "action=PREPEND X-Greylist: delayed %lld seconds by postern-policyd at %s; %s\n\n",
              seconds, gr.hostname, date);
}

void policyd_greylist_request(const struct policy_block *req, struct strbuf *reply)
{
    const char *request = policy_block_get(req, "request");
    const char *state = policy_block_get(req, "protocol_state");
    const char *addr = policy_block_get(req, "client_address");
    const char *sender = policy_block_get(req, "sender");
    const char *rcpt = policy_block_get(req, "recipient");
    struct greylist_result res;
    struct strbuf err = STRBUF_INIT;
    long long now = (long long) time(NULL);

    if (request == NULL || strcmp(request, "smtpd_access_policy") != 0) {
        msg_warn("bad request: request=%s, expected smtpd_access_policy; answering DUNNO",
                 request ? request : "(missing)");
        dunno(reply);
        return;
    }
    if (state == NULL || strcasecmp(state, "RCPT") != 0) {
        msg_verbose("protocol_state=%s: only RCPT is greylisted", state ? state : "(missing)");
        dunno(reply);
        return;
    }
    if (addr == NULL || addr[0] == '\0' || rcpt == NULL || rcpt[0] == '\0') {
        msg_warn("bad request: %s missing; answering DUNNO",
                 addr == NULL || addr[0] == '\0' ? "client_address" : "recipient");
        dunno(reply);
        return;
    }
    if (sender == NULL)
        sender = "";
    if (client_whitelisted(addr, policy_block_get(req, "client_name"))) {
        log_decision("pass", "client whitelist", req, -1);
        dunno(reply);
        return;
    }
    if (recipient_whitelisted(rcpt)) {
        log_decision("pass", "recipient whitelist", req, -1);
        dunno(reply);
        return;
    }
    if (gr.gl == NULL) {
        msg_warn("greylist store is closed (stopping); answering DUNNO");
        dunno(reply);
        return;
    }
    if (greylist_check(gr.gl, addr, sender, rcpt, now, &res, &err) < 0) {
        msg_warn("%s; answering DUNNO", sb_str(&err));
        sb_free(&err);
        dunno(reply);
        return;
    }
    switch (res.verdict) {
    case GREYLIST_DEFER:
        log_decision("greylist", res.seconds == gr.set.delay ? "new" : "early-retry", req, res.seconds);
        sb_printf(reply, "action=DEFER_IF_PERMIT 4.2.0 Greylisted, please try again in %lld seconds\n\n",
                  res.seconds > 0 ? res.seconds : 1);
        break;
    case GREYLIST_PASS_DELAYED:
        log_decision("pass", "triplet found", req, res.seconds);
        if (gr.prepend_header)
            prepend_header(reply, res.seconds, now);
        else
            dunno(reply);
        break;
    case GREYLIST_PASS:
        log_decision("pass", "triplet passed before", req, -1);
        dunno(reply);
        break;
    case GREYLIST_PASS_AWL:
        log_decision("pass", "client AWL", req, -1);
        dunno(reply);
        break;
    }
    sb_free(&err);
}
