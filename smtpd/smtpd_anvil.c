/*
 * smtpd_anvil - per-client connection count and rate limits.
 *
 * Interface (smtpd.h): smtpd_anvil_init(), smtpd_anvil_connect(),
 * smtpd_anvil_disconnect().
 *
 * Postfix keeps these counters in its anvil server, shared by every smtpd
 * process. Here they are kept per smtpd process: a service runs one process
 * by default (default_process_limit = 1), where that is the same thing;
 * with maxproc N in master.cf a client can have up to N times the limit.
 *
 * smtpd_client_connection_count_limit: connections one client address may
 * have open at once (0: no limit). smtpd_client_connection_rate_limit:
 * connections one client may open per anvil_rate_time_unit (0: no limit).
 * Clients in smtpd_client_event_limit_exceptions ($mynetworks by default)
 * are not limited. A client over a limit gets Postfix's "421 4.7.0 HOST
 * Error: too many connections from ADDR" and the warning "Connection
 * concurrency limit exceeded" or "Connection rate limit exceeded".
 *
 * Memory is bounded: an entry lives while its client has a connection open
 * or its rate window is running; when the table holds ANVIL_MAX entries the
 * idle ones are dropped, and if none is idle new clients are not counted
 * (an attacker with that many open connections meets the process limits
 * first).
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include "config.h"
#include "log.h"
#include "mem.h"
#include "netmatch.h"
#include "service.h"
#include "strbuf.h"

#include "smtpd.h"

#define ANVIL_BUCKETS   1024
#define ANVIL_MAX       50000

struct anvil_entry {
    struct anvil_entry *next;
    char    addr[INET6_ADDRSTRLEN];
    unsigned count;                     /* open connections */
    unsigned rate;                      /* connections in the current window */
    time_t  window;                     /* when the window started */
};

struct smtpd_anvil {
    struct service *svc;
    long long count_limit;
    long long rate_limit;
    long long unit;                     /* anvil_rate_time_unit, seconds */
    struct netmatch *exceptions;
    struct anvil_entry *buckets[ANVIL_BUCKETS];
    size_t  entries;
};

/* smtpd_anvil_init - limits from main.cf; NULL when both limits are off */
struct smtpd_anvil *smtpd_anvil_init(struct service *svc)
{
    struct smtpd_anvil *a;
    struct strbuf err = STRBUF_INIT;
    long long count = config_int(svc->cfg, "smtpd_client_connection_count_limit");
    long long rate = config_int(svc->cfg, "smtpd_client_connection_rate_limit");

    if (count <= 0 && rate <= 0)
        return NULL;
    a = xcalloc(1, sizeof(*a));
    a->svc = svc;
    a->count_limit = count;
    a->rate_limit = rate;
    a->unit = config_time(svc->cfg, "anvil_rate_time_unit");
    if (a->unit < 1)
        a->unit = 1;
    a->exceptions = netmatch_parse(config_str(svc->cfg, "smtpd_client_event_limit_exceptions"),
                                   &err);
    if (a->exceptions == NULL)
        msg_fatal("%s: smtpd_client_event_limit_exceptions: %s", config_path(svc->cfg),
                  sb_str(&err));
    sb_free(&err);
    return a;
}

/* bucket_of - FNV-1a of the address text */
static unsigned bucket_of(const char *addr)
{
    uint32_t h = 2166136261u;

    for (; *addr; addr++)
        h = (h ^ (unsigned char) *addr) * 16777619u;
    return h % ANVIL_BUCKETS;
}

/* idle - an entry nobody needs: no connection open, rate window over */
static bool idle(const struct smtpd_anvil *a, const struct anvil_entry *e, time_t now)
{
    return e->count == 0 && now - e->window >= a->unit;
}

/* purge - drop idle entries (when the table is full) */
static void purge(struct smtpd_anvil *a, time_t now)
{
    for (unsigned b = 0; b < ANVIL_BUCKETS; b++) {
        struct anvil_entry **pp = &a->buckets[b];

        while (*pp != NULL) {
            struct anvil_entry *e = *pp;

            if (idle(a, e, now)) {
                *pp = e->next;
                free(e);
                a->entries--;
            } else {
                pp = &e->next;
            }
        }
    }
}

/* lookup - the client's entry; created if create (NULL when the table is full) */
static struct anvil_entry *lookup(struct smtpd_anvil *a, const char *addr, bool create,
                                  time_t now)
{
    unsigned b = bucket_of(addr);
    struct anvil_entry *e;

    for (e = a->buckets[b]; e != NULL; e = e->next)
        if (strcmp(e->addr, addr) == 0)
            return e;
    if (!create)
        return NULL;
    if (a->entries >= ANVIL_MAX) {
        purge(a, now);
        if (a->entries >= ANVIL_MAX)
            return NULL;
    }
    e = xcalloc(1, sizeof(*e));
    snprintf(e->addr, sizeof(e->addr), "%s", addr);
    e->window = now;
    e->next = a->buckets[b];
    a->buckets[b] = e;
    a->entries++;
    return e;
}

/* limited - is this client subject to the limits? */
static bool limited(const struct smtpd_anvil *a, const struct smtpd_client *cl)
{
    if (a == NULL || cl->peer_len == 0)
        return false;
    return !netmatch_sockaddr(a->exceptions, (const struct sockaddr *) &cl->peer);
}

/* smtpd_anvil_connect - count a new connection from addr; 0, or -1 with the 421 reply */
int smtpd_anvil_connect(struct smtpd_anvil *a, const struct smtpd_client *cl,
                        const char *hostname, struct strbuf *reply)
{
    time_t  now = time(NULL);
    struct anvil_entry *e;

    if (!limited(a, cl) || (e = lookup(a, cl->addr, true, now)) == NULL)
        return 0;
    if (now - e->window >= a->unit) {
        e->window = now;
        e->rate = 0;
    }
    e->count++;
    e->rate++;
    if (a->count_limit > 0 && e->count > a->count_limit) {
        msg_warn("Connection concurrency limit exceeded: %u from %s[%s] for service %s",
                 e->count, cl->name, cl->addr, a->svc->service_name);
    } else if (a->rate_limit > 0 && e->rate > a->rate_limit) {
        msg_warn("Connection rate limit exceeded: %u from %s[%s] for service %s",
                 e->rate, cl->name, cl->addr, a->svc->service_name);
    } else {
        return 0;
    }
    sb_reset(reply);
    sb_printf(reply, "421 4.7.0 %s Error: too many connections from %s", hostname, cl->addr);
    return -1;
}

/* smtpd_anvil_disconnect - a counted connection ended */
void smtpd_anvil_disconnect(struct smtpd_anvil *a, const struct smtpd_client *cl)
{
    struct anvil_entry *e;

    if (!limited(a, cl) || (e = lookup(a, cl->addr, false, 0)) == NULL)
        return;
    if (e->count > 0)
        e->count--;
}
