/*
 * test_dns - lib/dns.c against a real UDP name server in the same event loop
 * (127.0.0.1, an ephemeral port): MX, A and AAAA answers, NXDOMAIN, no data,
 * null MX, SERVFAIL (and moving on to a second server), silence (timeout),
 * answers with a wrong ID or a different question (ignored), malformed
 * packets, cancel before the answer, bad server lists and names; the
 * records dns_lookup_rr() hands over (MX names through compression, a
 * looping name dropped, addresses).
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>
#include <cmocka.h>

#include <event2/event.h>

#include "dns.h"
#include "strbuf.h"

/* The test server: answers by the first label of the question name. */
struct server {
    int     fd;
    int     port;
    struct event *ev;
    int     queries;                    /* packets received */
};

struct result {
    bool    done;
    enum dns_status status;
    char    why[128];
    int     calls;
};

static struct event_base *base;

/* put16 - big-endian */
static size_t put16(unsigned char *p, size_t pos, unsigned v)
{
    p[pos] = (unsigned char) (v >> 8);
    p[pos + 1] = (unsigned char) v;
    return pos + 2;
}

/* add_rr - an answer record that points at the question name (compression) */
static size_t add_rr(unsigned char *p, size_t pos, unsigned type, const void *rdata,
                     unsigned rdlen)
{
    p[pos++] = 0xc0;
    p[pos++] = 12;
    pos = put16(p, pos, type);
    pos = put16(p, pos, 1);
    pos = put16(p, pos, 0);
    pos = put16(p, pos, 300);
    pos = put16(p, pos, rdlen);
    memcpy(p + pos, rdata, rdlen);
    return pos + rdlen;
}

/* serve - read one question and answer it as the name says */
static void serve(evutil_socket_t fd, short what, void *arg)
{
    struct server *sv = arg;
    unsigned char q[512], a[512];
    struct sockaddr_storage from;
    socklen_t fromlen = sizeof(from);
    ssize_t n = recvfrom(fd, q, sizeof(q), 0, (struct sockaddr *) &from, &fromlen);
    char    label[64];
    size_t  qend;
    unsigned qtype;
    size_t  pos;
    int     rcode = 0;
    int     count = 0;

    (void) what;
    if (n < 17)
        return;
    sv->queries++;
    memcpy(label, q + 13, q[12] < 63 ? q[12] : 63);
    label[q[12] < 63 ? q[12] : 63] = 0;
    qend = 12;
    while (qend < (size_t) n && q[qend] != 0)
        qend += 1 + q[qend];
    qend += 5;
    qtype = (unsigned) q[qend - 4] << 8 | q[qend - 3];
    memcpy(a, q, qend);
    /* Echo the question in lower case: the client must compare without case. */
    for (size_t i = 12; i < qend - 4; i++)
        if (a[i] >= 'A' && a[i] <= 'Z')
            a[i] = (unsigned char) (a[i] + 32);
    for (char *l = label; *l; l++)
        if (*l >= 'A' && *l <= 'Z')
            *l = (char) (*l + 32);
    a[2] = 0x81;                        /* QR, RD */
    a[3] = 0x80;                        /* RA */
    pos = qend;
    if (strcmp(label, "silent") == 0)
        return;
    if (strcmp(label, "nx") == 0) {
        rcode = 3;
    } else if (strcmp(label, "fail") == 0) {
        rcode = 2;
    } else if (strcmp(label, "refused") == 0) {
        rcode = 5;
    } else if (strcmp(label, "mx") == 0 && qtype == DNS_TYPE_MX) {
        static const unsigned char mx[] = {0, 10, 4, 'm', 'a', 'i', 'l', 0xc0, 12};

        pos = add_rr(a, pos, DNS_TYPE_MX, mx, sizeof(mx));
        count = 1;
    } else if (strcmp(label, "nullmx") == 0 && qtype == DNS_TYPE_MX) {
        static const unsigned char mx[] = {0, 0, 0};

        pos = add_rr(a, pos, DNS_TYPE_MX, mx, sizeof(mx));
        count = 1;
    } else if ((strcmp(label, "a") == 0 || strcmp(label, "mxfail") == 0)
               && qtype == DNS_TYPE_A) {
        static const unsigned char ip[] = {192, 0, 2, 1};

        pos = add_rr(a, pos, DNS_TYPE_A, ip, sizeof(ip));
        count = 1;
    } else if (strcmp(label, "mxfail") == 0 && qtype == DNS_TYPE_MX) {
        rcode = 2;
    } else if (strcmp(label, "aaaa") == 0 && qtype == DNS_TYPE_AAAA) {
        static const unsigned char ip6[16] = {0x20, 0x01, 0x0d, 0xb8, [15] = 1};

        pos = add_rr(a, pos, DNS_TYPE_AAAA, ip6, sizeof(ip6));
        count = 1;
    } else if (strcmp(label, "cname") == 0 && qtype == DNS_TYPE_A) {
        /* A CNAME record first, then the A record of its target. */
        static const unsigned char target[] = {1, 'x', 0xc0, 12};
        static const unsigned char ip[] = {192, 0, 2, 9};

        pos = add_rr(a, pos, 5, target, sizeof(target));
        pos = add_rr(a, pos, DNS_TYPE_A, ip, sizeof(ip));
        count = 2;
    } else if (strcmp(label, "junk") == 0) {
        unsigned char bad[512];

        /* Wrong ID, then a different question, then garbage, then the real answer. */
        memcpy(bad, a, qend);
        bad[0] ^= 0xff;
        sendto(fd, bad, qend, 0, (struct sockaddr *) &from, fromlen);
        memcpy(bad, a, qend);
        bad[14] ^= 0x01;
        sendto(fd, bad, qend, 0, (struct sockaddr *) &from, fromlen);
        sendto(fd, "\x01\x02\x03", 3, 0, (struct sockaddr *) &from, fromlen);
        if (qtype == DNS_TYPE_MX) {
            static const unsigned char mx[] = {0, 5, 0xc0, 12};

            pos = add_rr(a, pos, DNS_TYPE_MX, mx, sizeof(mx));
            count = 1;
        }
    } else if (strcmp(label, "mxloop") == 0 && qtype == DNS_TYPE_MX) {
        /* Two records: a good one (compressed), then an exchange pointing at itself. */
        static const unsigned char mx[] = {0, 20, 3, 'm', 'x', '2', 0xc0, 12};
        unsigned char loop[4] = {0, 10, 0xc0, 0};

        pos = add_rr(a, pos, DNS_TYPE_MX, mx, sizeof(mx));
        loop[3] = (unsigned char) (pos + 12 + 2);       /* the pointer's own offset */
        pos = add_rr(a, pos, DNS_TYPE_MX, loop, sizeof(loop));
        count = 2;
    } else if (strcmp(label, "overrun") == 0) {
        /* The record claims more data than the packet holds: nothing usable. */
        pos = add_rr(a, pos, qtype, "\x01\x02", 2);
        a[pos - 3] = 200;
        count = 1;
    }
    a[3] = (unsigned char) (a[3] | rcode);
    a[6] = 0;
    a[7] = (unsigned char) count;
    sendto(fd, a, pos, 0, (struct sockaddr *) &from, fromlen);
}

/* server_start - a UDP server on 127.0.0.1 */
static void server_start(struct server *sv)
{
    struct sockaddr_in sin;
    socklen_t len = sizeof(sin);

    memset(sv, 0, sizeof(*sv));
    sv->fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK, 0);
    assert_true(sv->fd >= 0);
    memset(&sin, 0, sizeof(sin));
    sin.sin_family = AF_INET;
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(sv->fd, (struct sockaddr *) &sin, sizeof(sin)), 0);
    assert_int_equal(getsockname(sv->fd, (struct sockaddr *) &sin, &len), 0);
    sv->port = ntohs(sin.sin_port);
    sv->ev = event_new(base, sv->fd, EV_READ | EV_PERSIST, serve, sv);
    event_add(sv->ev, NULL);
}

/* server_stop - close it */
static void server_stop(struct server *sv)
{
    event_free(sv->ev);
    close(sv->fd);
}

/* on_result - record the callback */
static void on_result(void *ctx, enum dns_status status, const char *why)
{
    struct result *r = ctx;

    r->done = true;
    r->calls++;
    r->status = status;
    snprintf(r->why, sizeof(r->why), "%s", why);
}

/* resolver_for - a resolver asking only sv, with short tries */
static struct dns_resolver *resolver_for(const struct server *sv)
{
    struct strbuf err = STRBUF_INIT;
    char    list[64];
    struct dns_resolver *r;

    snprintf(list, sizeof(list), "127.0.0.1:%d", sv->port);
    r = dns_resolver_create(base, list, &err);
    if (r == NULL)
        fail_msg("resolver: %s", sb_str(&err));
    dns_resolver_set_timeout(r, 200, 2);
    sb_free(&err);
    return r;
}

/* run_until - the loop until the result is in (or 5 s) */
static void run_until(struct result *res)
{
    for (int i = 0; i < 500 && !res->done; i++) {
        struct timeval tv = {0, 10000};

        event_base_loopexit(base, &tv);
        event_base_dispatch(base);
    }
}

/* mailhost - one dns_mailhost() question, waited for */
static enum dns_status mailhost(struct dns_resolver *r, const char *name, struct result *res)
{
    memset(res, 0, sizeof(*res));
    dns_mailhost(r, name, on_result, res);
    /* Never from inside the call: the caller's state may not be ready for it. */
    assert_false(res->done);
    run_until(res);
    assert_true(res->done);
    assert_int_equal(res->calls, 1);
    return res->status;
}

struct rr_result {
    bool    done;
    enum dns_status status;
    struct dns_rr rr[DNS_MAX_RR];
    size_t  n;
};

/* on_rr - record the records */
static void on_rr(void *ctx, enum dns_status status, const struct dns_rr *rr, size_t n, const char *why)
{
    struct rr_result *r = ctx;

    (void) why;
    r->done = true;
    r->status = status;
    r->n = n;
    memcpy(r->rr, rr, n * sizeof(*rr));
}

/* lookup_rr - one dns_lookup_rr question, waited for */
static void lookup_rr(struct dns_resolver *r, const char *name, int type, struct rr_result *res)
{
    memset(res, 0, sizeof(*res));
    dns_lookup_rr(r, name, type, on_rr, res);
    assert_false(res->done);
    for (int i = 0; i < 500 && !res->done; i++) {
        struct timeval tv = {0, 10000};

        event_base_loopexit(base, &tv);
        event_base_dispatch(base);
    }
    assert_true(res->done);
}

/* test_records - the data of MX and A answers; a looping exchange name is dropped */
static void test_records(void **state)
{
    struct server sv;
    struct dns_resolver *r;
    struct rr_result res;

    (void) state;
    server_start(&sv);
    r = resolver_for(&sv);
    lookup_rr(r, "mx.example.test", DNS_TYPE_MX, &res);
    assert_int_equal(res.status, DNS_OK);
    assert_int_equal(res.n, 1);
    assert_int_equal(res.rr[0].pref, 10);
    assert_string_equal(res.rr[0].name, "mail.mx.example.test");
    lookup_rr(r, "mxloop.example.test", DNS_TYPE_MX, &res);
    assert_int_equal(res.status, DNS_OK);
    assert_int_equal(res.n, 1);
    assert_int_equal(res.rr[0].pref, 20);
    assert_string_equal(res.rr[0].name, "mx2.mxloop.example.test");
    lookup_rr(r, "a.example.test", DNS_TYPE_A, &res);
    assert_int_equal(res.status, DNS_OK);
    assert_int_equal(res.n, 1);
    assert_memory_equal(res.rr[0].addr, "\xc0\x00\x02\x01", 4);
    lookup_rr(r, "nullmx.example.test", DNS_TYPE_MX, &res);
    assert_int_equal(res.status, DNS_OK);
    assert_int_equal(res.n, 1);
    assert_string_equal(res.rr[0].name, "");
    lookup_rr(r, "nx.example.test", DNS_TYPE_MX, &res);
    assert_int_equal(res.status, DNS_NOTFOUND);
    assert_int_equal(res.n, 0);
    dns_resolver_free(r);
    server_stop(&sv);
}

static void test_mailhost(void **state)
{
    struct server sv;
    struct dns_resolver *r;
    struct result res;

    (void) state;
    server_start(&sv);
    r = resolver_for(&sv);
    assert_int_equal(mailhost(r, "mx.example.test", &res), DNS_OK);
    assert_int_equal(sv.queries, 1);    /* an MX answer is enough */
    assert_int_equal(mailhost(r, "a.example.test", &res), DNS_OK);
    assert_int_equal(mailhost(r, "aaaa.example.test", &res), DNS_OK);
    assert_int_equal(mailhost(r, "cname.example.test", &res), DNS_OK);
    assert_int_equal(mailhost(r, "none.example.test", &res), DNS_NOTFOUND);
    sv.queries = 0;
    assert_int_equal(mailhost(r, "nx.example.test", &res), DNS_NOTFOUND);
    assert_int_equal(sv.queries, 1);    /* NXDOMAIN: no A/AAAA questions after it */
    assert_int_equal(mailhost(r, "nullmx.example.test", &res), DNS_NULLMX);
    assert_int_equal(mailhost(r, "fail.example.test", &res), DNS_TEMPFAIL);
    assert_int_equal(mailhost(r, "refused.example.test", &res), DNS_TEMPFAIL);
    /* The MX question failed, but the A record answers the question. */
    assert_int_equal(mailhost(r, "mxfail.example.test", &res), DNS_OK);
    assert_int_equal(mailhost(r, "junk.example.test", &res), DNS_OK);
    assert_int_equal(mailhost(r, "overrun.example.test", &res), DNS_NOTFOUND);
    /* Case does not matter in the echoed question. */
    assert_int_equal(mailhost(r, "MX.Example.TEST", &res), DNS_OK);
    dns_resolver_free(r);
    server_stop(&sv);
}

static void test_timeout(void **state)
{
    struct server sv;
    struct dns_resolver *r;
    struct result res;

    (void) state;
    server_start(&sv);
    r = resolver_for(&sv);
    assert_int_equal(mailhost(r, "silent.example.test", &res), DNS_TEMPFAIL);
    /* Two tries for each of MX, A and AAAA. */
    assert_int_equal(sv.queries, 6);
    assert_non_null(strstr(res.why, "failed"));
    memset(&res, 0, sizeof(res));
    dns_lookup(r, "silent.example.test", DNS_TYPE_A, on_result, &res);
    run_until(&res);
    assert_int_equal(res.status, DNS_TEMPFAIL);
    assert_string_equal(res.why, "timeout");
    dns_resolver_free(r);
    server_stop(&sv);
}

static void test_second_server(void **state)
{
    struct server sv;
    struct dns_resolver *r;
    struct strbuf err = STRBUF_INIT;
    struct result res;
    char    list[128];
    int     dead;
    struct sockaddr_in sin;
    socklen_t len = sizeof(sin);

    (void) state;
    server_start(&sv);
    /* A port nobody listens on: its ICMP error must not end the question. */
    dead = socket(AF_INET, SOCK_DGRAM, 0);
    memset(&sin, 0, sizeof(sin));
    sin.sin_family = AF_INET;
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(dead, (struct sockaddr *) &sin, sizeof(sin)), 0);
    getsockname(dead, (struct sockaddr *) &sin, &len);
    close(dead);
    snprintf(list, sizeof(list), "127.0.0.1:%d, 127.0.0.1:%d", ntohs(sin.sin_port), sv.port);
    r = dns_resolver_create(base, list, &err);
    assert_non_null(r);
    dns_resolver_set_timeout(r, 200, 1);
    assert_int_equal(mailhost(r, "mx.example.test", &res), DNS_OK);
    dns_resolver_free(r);
    sb_free(&err);
    server_stop(&sv);
}

static void test_cancel(void **state)
{
    struct server sv;
    struct dns_resolver *r;
    struct result res1, res2;
    struct dns_query *q;

    (void) state;
    server_start(&sv);
    r = resolver_for(&sv);
    memset(&res1, 0, sizeof(res1));
    memset(&res2, 0, sizeof(res2));
    q = dns_mailhost(r, "mx.example.test", on_result, &res1);
    dns_mailhost(r, "a.example.test", on_result, &res2);
    dns_cancel(q);
    run_until(&res2);
    assert_true(res2.done);
    assert_false(res1.done);
    /* A name that cannot be asked is answered, still from the loop. */
    memset(&res1, 0, sizeof(res1));
    dns_lookup(r, "bad..name", DNS_TYPE_A, on_result, &res1);
    assert_false(res1.done);
    run_until(&res1);
    assert_int_equal(res1.status, DNS_NOTFOUND);
    /* Queries still pending when the resolver goes are dropped without callbacks. */
    memset(&res1, 0, sizeof(res1));
    dns_mailhost(r, "silent.example.test", on_result, &res1);
    dns_resolver_free(r);
    assert_false(res1.done);
    server_stop(&sv);
}

static void test_server_list(void **state)
{
    struct strbuf err = STRBUF_INIT;
    struct dns_resolver *r;

    (void) state;
    r = dns_resolver_create(base, "192.0.2.1, [2001:db8::1]:5353 ::1", &err);
    assert_non_null(r);
    dns_resolver_free(r);
    assert_null(dns_resolver_create(base, "192.0.2.1:99999", &err));
    assert_non_null(strstr(sb_str(&err), "bad name server address"));
    sb_reset(&err);
    assert_null(dns_resolver_create(base, "a.b.c.d", &err));
    sb_reset(&err);
    assert_null(dns_resolver_create(base, "1.1.1.1 2.2.2.2 3.3.3.3 4.4.4.4", &err));
    assert_non_null(strstr(sb_str(&err), "more than"));
    /* The system's configuration (whatever it holds) always gives a resolver. */
    r = dns_resolver_create(base, "", &err);
    assert_non_null(r);
    dns_resolver_free(r);
    sb_free(&err);
}

/* setup - one event base for the file */
static int setup(void **state)
{
    (void) state;
    base = event_base_new();
    return base == NULL;
}

/* teardown - free it */
static int teardown(void **state)
{
    (void) state;
    event_base_free(base);
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_mailhost),
        cmocka_unit_test(test_records),
        cmocka_unit_test(test_timeout),
        cmocka_unit_test(test_second_server),
        cmocka_unit_test(test_cancel),
        cmocka_unit_test(test_server_list),
    };

    return cmocka_run_group_tests(tests, setup, teardown);
}
