/*
 * smtp_dest - from a nexthop to the list of addresses to try.
 *
 * Interface (smtp.h): smtp_dest_parse(), smtp_dest_resolve(),
 * smtp_dest_cancel(), smtp_addr_text().
 *
 * Nexthop forms, as Postfix's smtp(8) and lmtp(8) take them:
 *   domain, domain:port    MX lookup (preference order), and without MX
 *                          the domain's own A then AAAA records
 *   [host], [host]:port    no MX lookup: the host's A/AAAA (or the literal)
 *   inet:host:port         (lmtp) likewise; lmtp never looks up MX
 *   unix:PATH              (lmtp) a UNIX socket, relative to the queue
 *                          directory when not absolute
 * The default port is 25 for smtp and 24 for lmtp.
 *
 * Verdicts: a name that does not exist, or a null MX (RFC 7505), bounces
 * (5.4.4, 5.1.10); a DNS failure defers (4.4.3). Exchange names are the
 * resolver's, already limited to host name characters.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/un.h>

#include "dns.h"
#include "log.h"
#include "mem.h"
#include "strbuf.h"

#include "smtp.h"

/* copy_text - src into dst (size bytes), cut if it must be (callers check lengths first) */
static void copy_text(char *dst, size_t size, const char *src)
{
    size_t  len = strnlen(src, size - 1);

    memcpy(dst, src, len);
    dst[len] = '\0';
}

/* parse_port - 1..65535; false otherwise */
static bool parse_port(const char *s, int *port)
{
    long    n = 0;

    if (*s == '\0' || strlen(s) > 5)
        return false;
    for (; *s; s++) {
        if (*s < '0' || *s > '9')
            return false;
        n = n * 10 + (*s - '0');
    }
    if (n < 1 || n > 65535)
        return false;
    *port = (int) n;
    return true;
}

/* host_ok - a host name or address literal we can ask about */
static bool host_ok(const char *h)
{
    if (*h == '\0' || strlen(h) >= SMTP_HOST_MAX)
        return false;
    for (; *h; h++)
        if (!((*h >= 'a' && *h <= 'z') || (*h >= 'A' && *h <= 'Z') || (*h >= '0' && *h <= '9')
              || *h == '-' || *h == '.' || *h == '_' || *h == ':'))
            return false;
    return true;
}

/* recipient_domain - the domain of the request's first recipient (qmgr groups by it) */
static const char *recipient_domain(const struct smtp_delivery *d)
{
    const char *at = strrchr(d->req.rcpts[0].address, '@');

    return at ? at + 1 : "";
}

/* smtp_dest_parse - nexthop (or the recipient domain) into d; -1 with err (a bounce) */
int smtp_dest_parse(struct smtp_delivery *d, const char *nexthop, struct strbuf *err)
{
    char    buf[1024];
    char   *host = buf, *port_text = NULL;

    d->port = d->srv->lmtp ? 24 : 25;
    if (nexthop == NULL || *nexthop == '\0')
        nexthop = recipient_domain(d);
    snprintf(d->key, sizeof(d->key), "%s:%s", d->srv->proto, nexthop);
    if (strlen(nexthop) >= sizeof(buf)) {
        sb_set(err, "nexthop too long");
        return -1;
    }
    snprintf(buf, sizeof(buf), "%s", nexthop);
    if (d->srv->lmtp && strncmp(buf, "unix:", 5) == 0) {
        struct smtp_addr *a = &d->addrs[0];

        if (buf[5] == '\0' || strlen(buf + 5) >= sizeof(a->path)) {
            sb_printf(err, "bad LMTP socket path in nexthop \"%s\"", nexthop);
            return -1;
        }
        copy_text(a->path, sizeof(a->path), buf + 5);
        copy_text(a->host, sizeof(a->host), buf + 5);
        copy_text(d->domain, sizeof(d->domain), buf + 5);
        d->naddrs = 1;
        d->unix_path = true;
        d->literal_host = true;
        return 0;
    }
    if (strncmp(buf, "inet:", 5) == 0) {
        host = buf + 5;
        d->literal_host = true;
    }
    if (*host == '[') {
        char   *end = strchr(host, ']');

        if (end == NULL) {
            sb_printf(err, "bad nexthop \"%s\" (no closing ])", nexthop);
            return -1;
        }
        *end = '\0';
        host++;
        if (end[1] == ':')
            port_text = end + 2;
        else if (end[1] != '\0') {
            sb_printf(err, "bad nexthop \"%s\"", nexthop);
            return -1;
        }
        d->literal_host = true;
    } else if ((port_text = strrchr(host, ':')) != NULL) {
        if (strchr(host, ':') != port_text) {
            port_text = NULL;           /* a bare IPv6 address */
        } else {
            *port_text++ = '\0';
        }
    }
    if (port_text != NULL && !parse_port(port_text, &d->port)) {
        sb_printf(err, "bad port in nexthop \"%s\"", nexthop);
        return -1;
    }
    if (strncasecmp(host, "ipv6:", 5) == 0)
        host += 5;
    if (!host_ok(host)) {
        sb_printf(err, "bad host name in nexthop \"%s\"", nexthop);
        return -1;
    }
    if (d->srv->lmtp)
        d->literal_host = true;
    copy_text(d->domain, sizeof(d->domain), host);
    return 0;
}

/* add_address - one address of host (raw bytes of the family) to the list */
static void add_address(struct smtp_delivery *d, const char *host, int family, const unsigned char *raw)
{
    struct smtp_addr *a;

    if (d->naddrs >= SMTP_MAX_ADDRS)
        return;
    a = &d->addrs[d->naddrs++];
    memset(a, 0, sizeof(*a));
    snprintf(a->host, sizeof(a->host), "%s", host);
    if (family == AF_INET) {
        struct sockaddr_in *sin = (struct sockaddr_in *) &a->ss;

        sin->sin_family = AF_INET;
        sin->sin_port = htons((uint16_t) d->port);
        memcpy(&sin->sin_addr, raw, 4);
        a->len = sizeof(*sin);
    } else {
        struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *) &a->ss;

        sin6->sin6_family = AF_INET6;
        sin6->sin6_port = htons((uint16_t) d->port);
        memcpy(&sin6->sin6_addr, raw, 16);
        a->len = sizeof(*sin6);
    }
}

/* smtp_addr_text - "name[ip]:port" into out */
void smtp_addr_text(const struct smtp_addr *a, int port, char *out, size_t size)
{
    char    ip[INET6_ADDRSTRLEN] = "";

    if (a->len == 0) {
        snprintf(out, size, "%s", a->host);
        return;
    }
    if (a->ss.ss_family == AF_INET)
        inet_ntop(AF_INET, &((const struct sockaddr_in *) &a->ss)->sin_addr, ip, sizeof(ip));
    else
        inet_ntop(AF_INET6, &((const struct sockaddr_in6 *) &a->ss)->sin6_addr, ip, sizeof(ip));
    snprintf(out, size, "%s[%s]:%d", a->host, ip, port);
}

/* resolved - the list is complete: connect, or settle what could not be found */
static void resolved(struct smtp_delivery *d, enum dns_status last, const char *why)
{
    if (d->naddrs > 0) {
        smtp_session_start(d);
        return;
    }
    if (d->dns_tempfail || last == DNS_TEMPFAIL) {
        sb_printf(&d->why, "Host or domain name not found. Name service error for name=%s: %s",
                  d->domain, why);
        smtp_settle_rest(d, DELIVERY_DEFER, "4.4.3", "none", sb_str(&d->why));
    } else {
        smtp_settle_rest(d, DELIVERY_BOUNCE, "5.4.4", "none",
                         "Host or domain name not found. Name service error: host not found");
        msg_verbose("%s: %s: %s", d->req.queue_id, d->domain, why);
    }
    smtp_delivery_done(d);
}

static void next_exchange(struct smtp_delivery *d);

/* exchange_done - the current host's addresses are in: the next exchange, or connect */
static void exchange_done(struct smtp_delivery *d, enum dns_status st, const char *why)
{
    if (d->nmx == 0 || ++d->mx_next >= d->nmx || d->naddrs >= SMTP_MAX_ADDRS) {
        resolved(d, st, why);
        return;
    }
    next_exchange(d);
}

/* on_addr - A or AAAA records of the current host */
static void on_addr(void *ctx, enum dns_status st, const struct dns_rr *rr, size_t n, const char *why)
{
    struct smtp_delivery *d = ctx;
    const char *host = d->nmx ? d->mx[d->mx_next].name : d->domain;

    d->dq = NULL;
    if (st == DNS_TEMPFAIL)
        d->dns_tempfail = true;
    for (size_t i = 0; i < n; i++)
        add_address(d, host, d->mx_family, rr[i].addr);
    if (d->mx_family == AF_INET) {
        d->mx_family = AF_INET6;
        d->dq = dns_lookup_rr(d->srv->dns, host, DNS_TYPE_AAAA, on_addr, d);
        return;
    }
    exchange_done(d, st, why);
}

/* next_exchange - addresses of d->mx[d->mx_next] (or of the domain when there is no MX) */
static void next_exchange(struct smtp_delivery *d)
{
    const char *host = d->nmx ? d->mx[d->mx_next].name : d->domain;
    unsigned char raw[16];

    d->mx_family = AF_INET;
    if (inet_pton(AF_INET, host, raw) == 1) {
        add_address(d, host, AF_INET, raw);
        exchange_done(d, DNS_OK, "literal");
        return;
    }
    if (inet_pton(AF_INET6, host, raw) == 1) {
        add_address(d, host, AF_INET6, raw);
        exchange_done(d, DNS_OK, "literal");
        return;
    }
    d->dq = dns_lookup_rr(d->srv->dns, host, DNS_TYPE_A, on_addr, d);
}

/* mx_cmp - by preference */
static int mx_cmp(const void *a, const void *b)
{
    const struct dns_rr *x = a, *y = b;

    return x->pref < y->pref ? -1 : x->pref > y->pref;
}

/* on_mx - the MX answer */
static void on_mx(void *ctx, enum dns_status st, const struct dns_rr *rr, size_t n, const char *why)
{
    struct smtp_delivery *d = ctx;

    d->dq = NULL;
    if (st == DNS_TEMPFAIL) {
        resolved(d, st, why);
        return;
    }
    if (st == DNS_OK && n == 1 && rr[0].name[0] == '\0') {
        smtp_settle_rest(d, DELIVERY_BOUNCE, "5.1.10", "none",
                         "Host or domain name not found: domain does not accept mail (nullMX)");
        smtp_delivery_done(d);
        return;
    }
    d->nmx = 0;
    for (size_t i = 0; i < n && d->nmx < DNS_MAX_RR; i++)
        if (rr[i].name[0] != '\0')
            d->mx[d->nmx++] = rr[i];
    qsort(d->mx, d->nmx, sizeof(d->mx[0]), mx_cmp);
    d->mx_next = 0;
    next_exchange(d);
}

/* smtp_dest_resolve - fill d->addrs; then smtp_session_start(d) or the deferral/bounce */
void smtp_dest_resolve(struct smtp_delivery *d)
{
    if (d->unix_path) {
        smtp_session_start(d);
        return;
    }
    d->naddrs = 0;
    d->nmx = 0;
    if (d->literal_host)
        next_exchange(d);
    else
        d->dq = dns_lookup_rr(d->srv->dns, d->domain, DNS_TYPE_MX, on_mx, d);
}

/* smtp_dest_cancel - no more callbacks for d */
void smtp_dest_cancel(struct smtp_delivery *d)
{
    if (d->dq) {
        dns_cancel(d->dq);
        d->dq = NULL;
    }
}
