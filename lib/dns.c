/*
 * dns - asynchronous MX/A/AAAA questions over UDP. See dns.h.
 *
 * The packet code is ours (RFC 1035 4.1): a question is a 12-byte header
 * and one name, and all we need from an answer is its response code, how
 * many records of the asked type it holds and, for dns_lookup_rr (the smtp
 * client), their data: addresses, MX preferences and exchange names (host
 * name characters only). Every read of an answer is bounds-checked against
 * the received length, compressed owner names are skipped, an exchange name's
 * compression pointers are followed at most 64 times, and an
 * answer must repeat our ID and our question byte for byte (names compared
 * without case) or it is ignored as if it had not come.
 *
 * Each try has its own timer; the read event has none, so a stream of junk
 * packets cannot stretch a try. SERVFAIL and REFUSED move on to the next
 * server; once every server has failed that way the answer is DNS_TEMPFAIL.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/event.h>

#include "dns.h"
#include "log.h"
#include "mem.h"
#include "strbuf.h"

#define DNS_MAX_SERVERS     3           /* as MAXNS */
#define DNS_PACKET_MAX      512         /* plain UDP: no EDNS0 */
#define DNS_NAME_MAX        255         /* encoded, RFC 1035 2.3.4 */
#define DNS_DEFAULT_TRY_MS  5000        /* resolv.conf's default timeout:5 */
#define DNS_DEFAULT_TRIES   2           /* and attempts:2 */

#define RCODE_NOERROR       0
#define RCODE_SERVFAIL      2
#define RCODE_NXDOMAIN      3

struct dns_server {
    struct sockaddr_storage ss;
    socklen_t len;
    char    text[INET6_ADDRSTRLEN + 16];    /* "[2001:db8::1]:5353" */
};

struct dns_resolver {
    struct event_base *base;
    struct dns_server servers[DNS_MAX_SERVERS];
    int     nservers;
    long    try_ms;
    int     attempts;
    struct dns_query *queries;          /* all live queries, for dns_resolver_free */
};

/* The outcome of one question. */
enum q_status { Q_OK, Q_NXDOMAIN, Q_NODATA, Q_TEMPFAIL };

struct dns_query {
    struct dns_resolver *r;
    struct dns_query *prev, *next;
    dns_callback fn;
    void   *ctx;
    char    name[DNS_NAME_MAX + 1];
    bool    mailhost;                   /* MX, A, AAAA in turn */
    bool    any_tempfail;               /* a step of dns_mailhost failed temporarily */
    int     type;                       /* the question being asked */
    int     fd;                         /* its socket, -1 between tries */
    struct event *read_ev;
    struct event *timer;                /* the try's deadline, or "report now" */
    unsigned char packet[DNS_PACKET_MAX];
    size_t  packet_len;
    int     tries;                      /* sent so far for this question */
    int     servfails;
    bool    finished;                   /* the timer reports result/why at once */
    enum dns_status result;
    char    why[128];
    dns_rr_callback rr_fn;              /* dns_lookup_rr: wants the records */
    struct dns_rr rrs[DNS_MAX_RR];
    size_t  nrr;
};

/* dns_status_name - "ok", "not found", ... for logs */
const char *dns_status_name(enum dns_status status)
{
    switch (status) {
    case DNS_OK:
        return "ok";
    case DNS_NOTFOUND:
        return "not found";
    case DNS_NULLMX:
        return "null MX";
    case DNS_TEMPFAIL:
        return "temporary failure";
    }
    return "unknown";
}

/* parse_server - "192.0.2.1", "192.0.2.1:5353", "::1", "[::1]:5353" into sv */
static bool parse_server(const char *text, struct dns_server *sv)
{
    char    host[INET6_ADDRSTRLEN + 1];
    const char *port_text = NULL;
    const char *end;
    size_t  len;
    long    port = 53;
    struct sockaddr_in *sin = (struct sockaddr_in *) &sv->ss;
    struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *) &sv->ss;

    memset(sv, 0, sizeof(*sv));
    if (text[0] == '[') {
        if ((end = strchr(text, ']')) == NULL)
            return false;
        len = (size_t) (end - text - 1);
        if (len == 0 || len >= sizeof(host))
            return false;
        memcpy(host, text + 1, len);
        host[len] = 0;
        if (end[1] == ':')
            port_text = end + 2;
        else if (end[1] != 0)
            return false;
    } else {
        const char *colon = strchr(text, ':');

        /* One colon: IPv4 with a port; more: a bare IPv6 address. */
        if (colon != NULL && strchr(colon + 1, ':') == NULL) {
            len = (size_t) (colon - text);
            port_text = colon + 1;
        } else {
            len = strlen(text);
        }
        if (len == 0 || len >= sizeof(host))
            return false;
        memcpy(host, text, len);
        host[len] = 0;
    }
    if (port_text != NULL) {
        char   *stop;

        if (*port_text < '0' || *port_text > '9')
            return false;
        port = strtol(port_text, &stop, 10);
        if (*stop != 0 || port < 1 || port > 65535)
            return false;
    }
    if (inet_pton(AF_INET, host, &sin->sin_addr) == 1) {
        sin->sin_family = AF_INET;
        sin->sin_port = htons((uint16_t) port);
        sv->len = sizeof(*sin);
    } else if (inet_pton(AF_INET6, host, &sin6->sin6_addr) == 1) {
        sin6->sin6_family = AF_INET6;
        sin6->sin6_port = htons((uint16_t) port);
        sv->len = sizeof(*sin6);
    } else {
        return false;
    }
    if (port == 53)
        snprintf(sv->text, sizeof(sv->text), "%s", host);
    else
        snprintf(sv->text, sizeof(sv->text), "%s%s%s:%ld", sv->ss.ss_family == AF_INET6 ? "[" : "",
                 host, sv->ss.ss_family == AF_INET6 ? "]" : "", port);
    return true;
}

/* read_resolv_conf - name servers and options from /etc/resolv.conf (missing file: defaults) */
static void read_resolv_conf(struct dns_resolver *r)
{
    FILE   *fp = fopen("/etc/resolv.conf", "re");
    char    line[512];

    if (fp == NULL)
        return;
    while (fgets(line, sizeof(line), fp) != NULL) {
        char   *save = NULL;
        char   *word = strtok_r(line, " \t\r\n", &save);
        char   *arg;

        if (word == NULL || word[0] == '#' || word[0] == ';')
            continue;
        if (strcmp(word, "nameserver") == 0 && (arg = strtok_r(NULL, " \t\r\n", &save)) != NULL) {
            /* A scope ("fe80::1%eth0") is not supported: such a line is skipped. */
            if (r->nservers < DNS_MAX_SERVERS && strchr(arg, '%') == NULL
                && strchr(arg, '[') == NULL && parse_server(arg, &r->servers[r->nservers]))
                r->nservers++;
        } else if (strcmp(word, "options") == 0) {
            while ((arg = strtok_r(NULL, " \t\r\n", &save)) != NULL) {
                if (strncmp(arg, "timeout:", 8) == 0 && atoi(arg + 8) > 0)
                    r->try_ms = (long) (atoi(arg + 8) > 30 ? 30 : atoi(arg + 8)) * 1000;
                else if (strncmp(arg, "attempts:", 9) == 0 && atoi(arg + 9) > 0)
                    r->attempts = atoi(arg + 9) > 5 ? 5 : atoi(arg + 9);
            }
        }
    }
    fclose(fp);
}

/* dns_resolver_create - servers: list or "" for /etc/resolv.conf; NULL with err */
struct dns_resolver *dns_resolver_create(struct event_base *base, const char *servers,
                                         struct strbuf *err)
{
    struct dns_resolver *r = xcalloc(1, sizeof(*r));

    r->base = base;
    r->try_ms = DNS_DEFAULT_TRY_MS;
    r->attempts = DNS_DEFAULT_TRIES;
    if (servers != NULL && *servers) {
        const char *p = servers;

        while (*p) {
            char    item[INET6_ADDRSTRLEN + 16];
            size_t  len;

            p += strspn(p, ", \t");
            len = strcspn(p, ", \t");
            if (len == 0)
                break;
            if (len >= sizeof(item)) {
                sb_printf(err, "name server address too long: \"%.40s...\"", p);
                free(r);
                return NULL;
            }
            memcpy(item, p, len);
            item[len] = 0;
            p += len;
            if (r->nservers >= DNS_MAX_SERVERS) {
                sb_printf(err, "more than %d name servers", DNS_MAX_SERVERS);
                free(r);
                return NULL;
            }
            if (!parse_server(item, &r->servers[r->nservers])) {
                sb_printf(err, "bad name server address \"%s\" (expected 192.0.2.1, "
                          "192.0.2.1:5353, [2001:db8::1]:5353)", item);
                free(r);
                return NULL;
            }
            r->nservers++;
        }
    } else {
        read_resolv_conf(r);
    }
    if (r->nservers == 0) {
        /* What the C library does without a name server line. */
        parse_server("127.0.0.1", &r->servers[0]);
        r->nservers = 1;
    }
    return r;
}

/* dns_resolver_set_timeout - per-try timeout and tries per server */
void dns_resolver_set_timeout(struct dns_resolver *r, long try_ms, int attempts)
{
    r->try_ms = try_ms > 0 ? try_ms : 1;
    r->attempts = attempts > 0 ? attempts : 1;
}

/* close_socket - end the current try */
static void close_socket(struct dns_query *q)
{
    if (q->read_ev != NULL) {
        event_free(q->read_ev);
        q->read_ev = NULL;
    }
    if (q->fd >= 0) {
        close(q->fd);
        q->fd = -1;
    }
    if (q->timer != NULL)
        evtimer_del(q->timer);
}

/* query_free - unlink and release; no callback */
static void query_free(struct dns_query *q)
{
    close_socket(q);
    if (q->timer != NULL)
        event_free(q->timer);
    if (q->prev)
        q->prev->next = q->next;
    else
        q->r->queries = q->next;
    if (q->next)
        q->next->prev = q->prev;
    free(q);
}

/* dns_cancel - no callback will come for q */
void dns_cancel(struct dns_query *q)
{
    if (q != NULL)
        query_free(q);
}

/* dns_resolver_free - pending queries are cancelled (no callbacks) */
void dns_resolver_free(struct dns_resolver *r)
{
    if (r == NULL)
        return;
    while (r->queries != NULL)
        query_free(r->queries);
    free(r);
}

/* report_now - the final answer is known: call back from the event loop */
static void report_now(struct dns_query *q, enum dns_status status, const char *why)
{
    struct timeval zero = {0, 0};

    close_socket(q);
    q->finished = true;
    q->result = status;
    snprintf(q->why, sizeof(q->why), "%s", why);
    evtimer_add(q->timer, &zero);
}

/* encode_question - the query packet for q->name/q->type; false if the name cannot be asked */
static bool encode_question(struct dns_query *q)
{
    unsigned char *p = q->packet;
    size_t  pos = 12;
    const char *name = q->name;
    size_t  len = strlen(name);
    uint16_t id;

    if (len > 0 && name[len - 1] == '.')
        len--;
    if (len == 0 || len > 253)
        return false;
    if (getrandom(&id, sizeof(id), GRND_NONBLOCK) != (ssize_t) sizeof(id))
        id = (uint16_t) (random() & 0xffff);
    memset(p, 0, 12);
    p[0] = (unsigned char) (id >> 8);
    p[1] = (unsigned char) id;
    p[2] = 0x01;                        /* RD: recursion desired */
    p[5] = 1;                           /* one question */
    for (size_t i = 0; i < len;) {
        size_t  l = 0;

        while (i + l < len && name[i + l] != '.')
            l++;
        if (l == 0 || l > 63 || pos + 1 + l + 5 > sizeof(q->packet))
            return false;
        p[pos++] = (unsigned char) l;
        for (size_t k = 0; k < l; k++) {
            unsigned char c = (unsigned char) name[i + k];

            if (c <= 0x20 || c == 0x7f)
                return false;
            p[pos++] = c;
        }
        i += l + 1;
    }
    p[pos++] = 0;
    p[pos++] = (unsigned char) (q->type >> 8);
    p[pos++] = (unsigned char) q->type;
    p[pos++] = 0;
    p[pos++] = 1;                       /* class IN */
    q->packet_len = pos;
    return true;
}

/* skip_name - past a (possibly compressed) name at pos; 0 if malformed */
static size_t skip_name(const unsigned char *buf, size_t len, size_t pos)
{
    for (int labels = 0; labels < 128; labels++) {
        unsigned c;

        if (pos >= len)
            return 0;
        c = buf[pos];
        if (c == 0)
            return pos + 1;
        if ((c & 0xc0) == 0xc0)
            return pos + 2 <= len ? pos + 2 : 0;
        if (c & 0xc0)
            return 0;
        pos += 1 + c;
    }
    return 0;
}

/* read_name - the (possibly compressed) name at pos as text; false if malformed (pointers are bounded) */
static bool read_name(const unsigned char *buf, size_t len, size_t pos, char *out, size_t outsize)
{
    size_t  o = 0;

    for (int hops = 0; hops < 64; hops++) {
        unsigned c;

        if (pos >= len)
            return false;
        c = buf[pos];
        if (c == 0) {
            out[o] = 0;
            return true;
        }
        if ((c & 0xc0) == 0xc0) {
            if (pos + 1 >= len)
                return false;
            pos = ((size_t) (c & 0x3f) << 8) | buf[pos + 1];
            continue;
        }
        if (c & 0xc0 || pos + 1 + c > len || o + c + 2 > outsize)
            return false;
        if (o > 0)
            out[o++] = '.';
        for (unsigned k = 0; k < c; k++) {
            unsigned char ch = buf[pos + 1 + k];

            /* Host names only: anything else in an exchange name is not usable for mail. */
            if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9')
                  || ch == '-' || ch == '_'))
                return false;
            out[o++] = (char) ch;
        }
        pos += 1 + c;
    }
    return false;
}

/* keep_rr - record one answer record of the asked type for dns_lookup_rr */
static void keep_rr(struct dns_query *q, const unsigned char *buf, size_t len, size_t pos, unsigned rdlen)
{
    struct dns_rr *rr;

    if (q->rr_fn == NULL || q->nrr >= DNS_MAX_RR)
        return;
    rr = &q->rrs[q->nrr];
    memset(rr, 0, sizeof(*rr));
    rr->type = q->type;
    if (q->type == DNS_TYPE_A && rdlen == 4) {
        memcpy(rr->addr, buf + pos, 4);
    } else if (q->type == DNS_TYPE_AAAA && rdlen == 16) {
        memcpy(rr->addr, buf + pos, 16);
    } else if (q->type == DNS_TYPE_MX && rdlen >= 3) {
        rr->pref = (unsigned) buf[pos] << 8 | buf[pos + 1];
        if (!read_name(buf, len, pos + 2, rr->name, sizeof(rr->name)))
            return;
    } else {
        return;
    }
    q->nrr++;
}

/* same_question - does the answer repeat our question (name without case)? */
static bool same_question(const struct dns_query *q, const unsigned char *buf, size_t len)
{
    size_t  qlen = q->packet_len - 12;

    if (len < 12 + qlen)
        return false;
    for (size_t i = 12; i < q->packet_len; i++) {
        unsigned char a = q->packet[i];
        unsigned char b = buf[i];

        if (a >= 'A' && a <= 'Z')
            a = (unsigned char) (a + 32);
        if (b >= 'A' && b <= 'Z')
            b = (unsigned char) (b + 32);
        if (a != b)
            return false;
    }
    return true;
}

/*
 * parse_answer - judge a packet: -1 ignore it (not ours, malformed), else the
 * question's status; *nullmx when the only MX record is "MX 0 .".
 */
static int parse_answer(struct dns_query *q, const unsigned char *buf, size_t len,
                        int *rcode, bool *nullmx)
{
    unsigned flags;
    unsigned ancount;
    size_t  pos;
    unsigned found = 0;
    unsigned null_seen = 0;

    *nullmx = false;
    *rcode = -1;
    if (len < 12 || buf[0] != q->packet[0] || buf[1] != q->packet[1])
        return -1;
    flags = (unsigned) buf[2] << 8 | buf[3];
    if (!(flags & 0x8000) || (flags & 0x7800) != 0)
        return -1;                      /* not a response, or not a standard query */
    if (buf[4] != 0 || buf[5] != 1 || !same_question(q, buf, len))
        return -1;
    *rcode = (int) (flags & 0x000f);
    if (*rcode == RCODE_NXDOMAIN)
        return Q_NXDOMAIN;
    if (*rcode != RCODE_NOERROR)
        return Q_TEMPFAIL;
    ancount = (unsigned) buf[6] << 8 | buf[7];
    pos = q->packet_len;
    q->nrr = 0;
    for (unsigned i = 0; i < ancount; i++) {
        unsigned type, class, rdlen;

        if ((pos = skip_name(buf, len, pos)) == 0 || pos + 10 > len)
            break;                      /* a cut answer (TC) or junk: count what we have */
        type = (unsigned) buf[pos] << 8 | buf[pos + 1];
        class = (unsigned) buf[pos + 2] << 8 | buf[pos + 3];
        rdlen = (unsigned) buf[pos + 8] << 8 | buf[pos + 9];
        pos += 10;
        if (pos + rdlen > len)
            break;
        if ((int) type == q->type && class == 1) {
            found++;
            /* RFC 7505: preference 0 and the root as the exchange. */
            if (type == DNS_TYPE_MX && rdlen == 3 && buf[pos] == 0 && buf[pos + 1] == 0
                && buf[pos + 2] == 0)
                null_seen++;
            keep_rr(q, buf, len, pos, rdlen);
        }
        pos += rdlen;
    }
    if (found > 0) {
        *nullmx = found == 1 && null_seen == 1;
        return Q_OK;
    }
    if (flags & 0x0200)
        return Q_TEMPFAIL;              /* truncated and nothing usable: we do not do TCP */
    return Q_NODATA;
}

static void send_try(struct dns_query *q);
static void start_question(struct dns_query *q, int type);

/* question_done - one question answered: the next step, or the final report */
static void question_done(struct dns_query *q, enum q_status st, bool nullmx, const char *why)
{
    char    text[128];

    close_socket(q);
    if (!q->mailhost) {
        report_now(q, st == Q_OK ? DNS_OK : st == Q_TEMPFAIL ? DNS_TEMPFAIL : DNS_NOTFOUND, why);
        return;
    }
    if (st == Q_OK) {
        if (q->type == DNS_TYPE_MX && nullmx)
            report_now(q, DNS_NULLMX, "null MX");
        else
            report_now(q, DNS_OK, why);
        return;
    }
    /* A name that does not exist has no records of any type. */
    if (st == Q_NXDOMAIN && !q->any_tempfail) {
        report_now(q, DNS_NOTFOUND, why);
        return;
    }
    if (st == Q_TEMPFAIL)
        q->any_tempfail = true;
    if (q->type == DNS_TYPE_MX) {
        start_question(q, DNS_TYPE_A);
    } else if (q->type == DNS_TYPE_A) {
        start_question(q, DNS_TYPE_AAAA);
    } else {
        snprintf(text, sizeof(text), "%s", q->any_tempfail ? "a name server failed" : why);
        report_now(q, q->any_tempfail ? DNS_TEMPFAIL : DNS_NOTFOUND, text);
    }
}

/* on_read - a packet on the try's socket */
static void on_read(evutil_socket_t fd, short what, void *arg)
{
    struct dns_query *q = arg;
    unsigned char buf[DNS_PACKET_MAX];
    ssize_t n;
    int     st;
    int     rcode;
    bool    nullmx;
    char    why[128];
    const char *server = q->r->servers[(q->tries - 1) % q->r->nservers].text;

    (void) what;
    n = recv(fd, buf, sizeof(buf), 0);
    if (n < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
            return;
        /* ICMP port unreachable and friends: this server is no use; the timer moves on. */
        if (q->read_ev != NULL)
            event_del(q->read_ev);
        return;
    }
    st = parse_answer(q, buf, (size_t) n, &rcode, &nullmx);
    if (st < 0)
        return;
    if (st == Q_TEMPFAIL && rcode != RCODE_NOERROR) {
        snprintf(why, sizeof(why), "%s from %s", rcode == RCODE_SERVFAIL ? "SERVFAIL"
                 : rcode == 5 ? "REFUSED" : "error", server);
        if (++q->servfails < q->r->nservers) {
            close_socket(q);
            send_try(q);
            return;
        }
        question_done(q, Q_TEMPFAIL, false, why);
        return;
    }
    snprintf(why, sizeof(why), "%s from %s", st == Q_OK ? "answer" : st == Q_NXDOMAIN
             ? "NXDOMAIN" : st == Q_NODATA ? "no records" : "truncated answer", server);
    question_done(q, (enum q_status) st, nullmx, why);
}

/* on_timer - a try timed out, or the final report is due */
static void on_timer(evutil_socket_t fd, short what, void *arg)
{
    struct dns_query *q = arg;

    (void) fd;
    (void) what;
    if (q->finished) {
        dns_callback fn = q->fn;
        void   *ctx = q->ctx;
        enum dns_status st = q->result;
        char    why[sizeof(q->why)];

        memcpy(why, q->why, sizeof(why));
        if (q->rr_fn != NULL) {
            dns_rr_callback rr_fn = q->rr_fn;
            size_t  n = st == DNS_OK ? q->nrr : 0;
            struct dns_rr *rrs = xcalloc(n ? n : 1, sizeof(*rrs));

            memcpy(rrs, q->rrs, n * sizeof(*rrs));
            query_free(q);
            rr_fn(ctx, st, rrs, n, why);
            free(rrs);
            return;
        }
        query_free(q);
        fn(ctx, st, why);
        return;
    }
    close_socket(q);
    send_try(q);
}

/* send_try - ask the next server, or give up when all tries are used */
static void send_try(struct dns_query *q)
{
    struct dns_resolver *r = q->r;
    const struct dns_server *sv;
    struct timeval tv;

    for (;;) {
        if (q->tries >= r->attempts * r->nservers) {
            question_done(q, Q_TEMPFAIL, false, "timeout");
            return;
        }
        sv = &r->servers[q->tries % r->nservers];
        q->tries++;
        q->fd = socket(sv->ss.ss_family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (q->fd < 0)
            break;
        if (connect(q->fd, (const struct sockaddr *) &sv->ss, sv->len) == 0
            && send(q->fd, q->packet, q->packet_len, 0) == (ssize_t) q->packet_len)
            break;
        msg_verbose("dns: cannot send to %s: %m", sv->text);
        close(q->fd);
        q->fd = -1;
    }
    if (q->fd < 0) {
        question_done(q, Q_TEMPFAIL, false, "cannot create a socket");
        return;
    }
    q->read_ev = event_new(r->base, q->fd, EV_READ | EV_PERSIST, on_read, q);
    if (q->read_ev == NULL || event_add(q->read_ev, NULL) != 0) {
        question_done(q, Q_TEMPFAIL, false, "out of memory");
        return;
    }
    tv.tv_sec = r->try_ms / 1000;
    tv.tv_usec = (r->try_ms % 1000) * 1000;
    evtimer_add(q->timer, &tv);
}

/* start_question - ask about q->name with type */
static void start_question(struct dns_query *q, int type)
{
    q->type = type;
    q->tries = 0;
    q->servfails = 0;
    if (!encode_question(q)) {
        question_done(q, Q_NXDOMAIN, false, "not a valid DNS name");
        return;
    }
    send_try(q);
}

/* query_new - a query object linked into the resolver */
static struct dns_query *query_new(struct dns_resolver *r, const char *name, dns_callback fn,
                                   void *ctx)
{
    struct dns_query *q = xcalloc(1, sizeof(*q));

    q->r = r;
    q->fn = fn;
    q->ctx = ctx;
    q->fd = -1;
    q->timer = evtimer_new(r->base, on_timer, q);
    if (q->timer == NULL)
        msg_fatal("dns: out of memory");
    q->next = r->queries;
    if (q->next)
        q->next->prev = q;
    r->queries = q;
    if (strlen(name) > DNS_NAME_MAX) {
        report_now(q, DNS_NOTFOUND, "name too long");
        return q;
    }
    snprintf(q->name, sizeof(q->name), "%s", name);
    return q;
}

/* dns_lookup - one question; DNS_OK when the answer holds records of the type */
struct dns_query *dns_lookup(struct dns_resolver *r, const char *name, int type,
                             dns_callback fn, void *ctx)
{
    struct dns_query *q = query_new(r, name, fn, ctx);

    if (!q->finished)
        start_question(q, type);
    return q;
}

/* dns_mailhost - MX, then A, then AAAA (see above) */
struct dns_query *dns_mailhost(struct dns_resolver *r, const char *domain,
                               dns_callback fn, void *ctx)
{
    struct dns_query *q = query_new(r, domain, fn, ctx);

    q->mailhost = true;
    if (!q->finished)
        start_question(q, DNS_TYPE_MX);
    return q;
}

/* dns_lookup_rr - one question; the callback gets up to DNS_MAX_RR records of the type */
struct dns_query *dns_lookup_rr(struct dns_resolver *r, const char *name, int type,
                                dns_rr_callback fn, void *ctx)
{
    struct dns_query *q = query_new(r, name, NULL, ctx);

    q->rr_fn = fn;
    if (!q->finished)
        start_question(q, type);
    return q;
}
