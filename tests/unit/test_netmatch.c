/*
 * test_netmatch - lib/netmatch.c: IPv4 and IPv6 networks and hosts, brackets,
 * mask length limits, non-null host bits (with the suggested network),
 * IPv4-mapped IPv6 on either side, socket addresses, and malformed entries.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <cmocka.h>

#include "netmatch.h"
#include "strbuf.h"

/* parse_ok - netmatch_parse() must succeed */
static struct netmatch *parse_ok(const char *list)
{
    struct strbuf err = STRBUF_INIT;
    struct netmatch *nm = netmatch_parse(list, &err);

    if (nm == NULL)
        fail_msg("'%s': unexpected error '%s'", list, sb_str(&err));
    sb_free(&err);
    return nm;
}

/* parse_fails - netmatch_parse(list) fails with an error containing what */
static void parse_fails(const char *list, const char *what)
{
    struct strbuf err = STRBUF_INIT;
    struct netmatch *nm = netmatch_parse(list, &err);

    if (nm != NULL)
        fail_msg("'%s': accepted, expected an error containing '%s'", list, what);
    if (strstr(sb_str(&err), what) == NULL)
        fail_msg("'%s': error '%s' does not contain '%s'", list, sb_str(&err), what);
    sb_free(&err);
}

static void test_ipv4(void **state)
{
    struct netmatch *nm;

    (void) state;
    nm = parse_ok("127.0.0.0/8, 192.0.2.7 198.51.100.128/25,10.0.0.0/31");
    assert_true(netmatch_text(nm, "127.0.0.1"));
    assert_true(netmatch_text(nm, "127.255.255.255"));
    assert_false(netmatch_text(nm, "128.0.0.1"));
    assert_true(netmatch_text(nm, "192.0.2.7"));        /* host */
    assert_false(netmatch_text(nm, "192.0.2.6"));
    assert_false(netmatch_text(nm, "192.0.2.8"));
    assert_true(netmatch_text(nm, "198.51.100.128"));
    assert_true(netmatch_text(nm, "198.51.100.255"));
    assert_false(netmatch_text(nm, "198.51.100.127"));
    assert_true(netmatch_text(nm, "10.0.0.1"));
    assert_false(netmatch_text(nm, "10.0.0.2"));
    /* IPv4 entries never match real IPv6 addresses. */
    assert_false(netmatch_text(nm, "::1"));
    assert_false(netmatch_text(nm, "::127.0.0.1"));     /* IPv4-compatible, not mapped */
    /* Garbage is not in any network. */
    assert_false(netmatch_text(nm, ""));
    assert_false(netmatch_text(nm, "127.0.0"));
    assert_false(netmatch_text(nm, "localhost"));
    assert_false(netmatch_text(nm, NULL));
    netmatch_free(nm);
}

static void test_ipv6(void **state)
{
    struct netmatch *nm;

    (void) state;
    nm = parse_ok("[::1]/128 [2001:db8::]/32\t2001:db8:ffff::/48\n[fe80::1] fc00::/7");
    assert_true(netmatch_text(nm, "::1"));
    assert_true(netmatch_text(nm, "[::1]"));
    assert_false(netmatch_text(nm, "::2"));
    assert_true(netmatch_text(nm, "2001:db8::25"));
    assert_true(netmatch_text(nm, "2001:DB8:1234::1"));
    assert_false(netmatch_text(nm, "2001:db9::1"));
    assert_true(netmatch_text(nm, "fe80::1"));
    assert_false(netmatch_text(nm, "fe80::2"));
    assert_true(netmatch_text(nm, "fd12:3456::1"));
    assert_true(netmatch_text(nm, "fc00::1"));          /* fc00::/7 covers fd00::/8 too */
    assert_false(netmatch_text(nm, "fe00::1"));
    assert_false(netmatch_text(nm, "127.0.0.1"));
    assert_false(netmatch_text(nm, "[::1"));
    netmatch_free(nm);
}

static void test_zero_and_full_prefix(void **state)
{
    struct netmatch *nm;

    (void) state;
    nm = parse_ok("0.0.0.0/0");
    assert_true(netmatch_text(nm, "1.2.3.4"));
    assert_true(netmatch_text(nm, "255.255.255.255"));
    assert_true(netmatch_text(nm, "::ffff:8.8.8.8"));   /* mapped counts as IPv4 */
    assert_false(netmatch_text(nm, "2001:db8::1"));
    netmatch_free(nm);

    nm = parse_ok("[::]/0");
    assert_true(netmatch_text(nm, "2001:db8::1"));
    assert_false(netmatch_text(nm, "1.2.3.4"));
    netmatch_free(nm);

    nm = parse_ok("192.0.2.1/32 [2001:db8::1]/128");
    assert_true(netmatch_text(nm, "192.0.2.1"));
    assert_false(netmatch_text(nm, "192.0.2.0"));
    assert_true(netmatch_text(nm, "2001:db8::1"));
    assert_false(netmatch_text(nm, "2001:db8::"));
    netmatch_free(nm);
}

static void test_empty(void **state)
{
    struct netmatch *nm;

    (void) state;
    nm = parse_ok("");
    assert_false(netmatch_text(nm, "127.0.0.1"));
    netmatch_free(nm);
    nm = parse_ok(" , \t ");
    assert_false(netmatch_text(nm, "::1"));
    netmatch_free(nm);
    nm = parse_ok(NULL);
    netmatch_free(nm);
    assert_false(netmatch_text(NULL, "127.0.0.1"));
}

static void test_v4mapped(void **state)
{
    struct netmatch *nm;

    (void) state;
    /* A mapped client matches IPv4 entries. */
    nm = parse_ok("192.0.2.0/24");
    assert_true(netmatch_text(nm, "::ffff:192.0.2.9"));
    assert_true(netmatch_text(nm, "[::FFFF:192.0.2.9]"));
    assert_false(netmatch_text(nm, "::ffff:192.0.3.9"));
    netmatch_free(nm);

    /* A mapped entry is the IPv4 network it names, for both spellings of the client. */
    nm = parse_ok("[::ffff:198.51.100.0]/120");
    assert_true(netmatch_text(nm, "198.51.100.77"));
    assert_true(netmatch_text(nm, "::ffff:198.51.100.77"));
    assert_false(netmatch_text(nm, "198.51.101.77"));
    netmatch_free(nm);

    /* A prefix shorter than the mapped block stays IPv6 (it covers other space too). */
    nm = parse_ok("[::]/64");
    assert_true(netmatch_text(nm, "::5"));
    netmatch_free(nm);
}

static void test_sockaddr(void **state)
{
    struct netmatch *nm;
    struct sockaddr_in sin;
    struct sockaddr_in6 sin6;
    struct sockaddr_un sun;

    (void) state;
    nm = parse_ok("127.0.0.0/8 [2001:db8::]/32");
    memset(&sin, 0, sizeof(sin));
    sin.sin_family = AF_INET;
    sin.sin_port = htons(25);
    inet_pton(AF_INET, "127.1.2.3", &sin.sin_addr);
    assert_true(netmatch_sockaddr(nm, (struct sockaddr *) &sin));
    inet_pton(AF_INET, "10.1.2.3", &sin.sin_addr);
    assert_false(netmatch_sockaddr(nm, (struct sockaddr *) &sin));

    memset(&sin6, 0, sizeof(sin6));
    sin6.sin6_family = AF_INET6;
    inet_pton(AF_INET6, "2001:db8:5::1", &sin6.sin6_addr);
    assert_true(netmatch_sockaddr(nm, (struct sockaddr *) &sin6));
    inet_pton(AF_INET6, "::ffff:127.0.0.1", &sin6.sin6_addr);
    assert_true(netmatch_sockaddr(nm, (struct sockaddr *) &sin6));
    inet_pton(AF_INET6, "::ffff:10.0.0.1", &sin6.sin6_addr);
    assert_false(netmatch_sockaddr(nm, (struct sockaddr *) &sin6));
    inet_pton(AF_INET6, "2001:db9::1", &sin6.sin6_addr);
    assert_false(netmatch_sockaddr(nm, (struct sockaddr *) &sin6));

    /* Not an internet client: never in mynetworks. */
    memset(&sun, 0, sizeof(sun));
    sun.sun_family = AF_UNIX;
    assert_false(netmatch_sockaddr(nm, (struct sockaddr *) &sun));
    assert_false(netmatch_sockaddr(nm, NULL));
    netmatch_free(nm);
}

static void test_host_bits(void **state)
{
    (void) state;
    parse_fails("127.0.0.1/8", "'127.0.0.1/8': non-null host address bits; perhaps you mean 127.0.0.0/8");
    parse_fails("192.0.2.129/25", "perhaps you mean 192.0.2.128/25");
    parse_fails("10.0.0.0/8 192.168.1.1/16", "'192.168.1.1/16': non-null host address bits; "
                "perhaps you mean 192.168.0.0/16");
    parse_fails("[2001:db8::1]/32", "'[2001:db8::1]/32': non-null host address bits; "
                "perhaps you mean [2001:db8::]/32");
    parse_fails("2001:db8:8000::/33x", "bad mask length '33x'");
    parse_fails("2001:db8:c000::/33", "perhaps you mean 2001:db8:8000::/33");
    parse_fails("1.2.3.4/0", "perhaps you mean 0.0.0.0/0");
}

static void test_malformed(void **state)
{
    (void) state;
    parse_fails("127.0.0.0/33", "'127.0.0.0/33': bad mask length '33'; expected a number from 0 to 32");
    parse_fails("[::1]/129", "bad mask length '129'; expected a number from 0 to 128");
    parse_fails("127.0.0.0/", "bad mask length ''");
    parse_fails("127.0.0.0/-1", "bad mask length '-1'");
    parse_fails("127.0.0.0/+8", "bad mask length '+8'");
    parse_fails("127.0.0.0/0008", "bad mask length '0008'");
    parse_fails("127.0.0.0/8/8", "bad mask length '8/8'");
    parse_fails("127.0.0.0/ 8", "'127.0.0.0/': bad mask length ''");
    parse_fails("256.0.0.0/8", "'256.0.0.0/8': '256.0.0.0' is not a valid IPv4 address");
    parse_fails("127.0.0/8", "'127.0.0' is not a valid IPv4 address");
    parse_fails("127.0.0.0.0", "is not a valid IPv4 address");
    parse_fails("example.com", "'example.com' is not a valid IPv4 address");
    parse_fails("[::1", "'[::1': missing ']'");
    parse_fails("[::1]x", "unexpected text after ']'");
    parse_fails("[::1/128]", "'::1/128' is not a valid IPv6 address");
    parse_fails("2001:db8::g/32", "'2001:db8::g' is not a valid IPv6 address");
    parse_fails("fe80::1%eth0", "is not a valid IPv6 address");
    parse_fails("localhost", "'localhost': not a network address");
    parse_fails("!127.0.0.1", "'!127.0.0.1': not a network address");
    parse_fails("hash:/etc/postern/networks", "'hash:/etc/postern/networks': tables are not supported");
    parse_fails("cidr:/etc/x", "tables are not supported");
    parse_fails("/etc/postern/networks", "not a network address");
    /* A good entry before the bad one does not hide it. */
    parse_fails("127.0.0.0/8, [::1]/128, 192.0.2.0/2x4", "'192.0.2.0/2x4': bad mask length");
}

static void test_brackets_ipv4(void **state)
{
    struct netmatch *nm;

    (void) state;
    /* Unambiguous, so accepted. */
    nm = parse_ok("[192.0.2.0]/24");
    assert_true(netmatch_text(nm, "192.0.2.1"));
    assert_true(netmatch_text(nm, "[192.0.2.1]"));
    netmatch_free(nm);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ipv4),
        cmocka_unit_test(test_ipv6),
        cmocka_unit_test(test_zero_and_full_prefix),
        cmocka_unit_test(test_empty),
        cmocka_unit_test(test_v4mapped),
        cmocka_unit_test(test_sockaddr),
        cmocka_unit_test(test_host_bits),
        cmocka_unit_test(test_malformed),
        cmocka_unit_test(test_brackets_ipv4),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
