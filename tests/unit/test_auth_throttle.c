/*
 * test_auth_throttle - lib/auth_throttle.c with a clock the test drives:
 * growing delays, lockout at the limit and its end, the window, reset on
 * success, bounded memory with LRU eviction, IPv6 /64 keys.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <cmocka.h>

#include "auth_throttle.h"
#include "strbuf.h"

#define SEC 1000LL

static const struct auth_throttle_config cfg = {
    .delay_ms = 2 * SEC, .delay_max_ms = 15 * SEC, .limit = 5,
    .window_ms = 600 * SEC, .lockout_ms = 600 * SEC, .max_entries = 100,
};

/* failure - one failure at now; its delay; *locked set as the module says */
static long long failure(struct auth_throttle *t, const char *key, long long now, bool *locked)
{
    bool    dummy;

    return auth_throttle_failure(t, key, now, locked ? locked : &dummy);
}

static void test_delays_grow_and_cap(void **state)
{
    struct auth_throttle_config c = cfg;
    struct auth_throttle *t;
    long long now = 1000;

    (void) state;
    c.limit = 0;                        /* never lock: look at the delays alone */
    t = auth_throttle_create(&c);
    assert_int_equal(failure(t, "ip:1.2.3.4", now, NULL), 2 * SEC);
    assert_int_equal(failure(t, "ip:1.2.3.4", now, NULL), 4 * SEC);
    assert_int_equal(failure(t, "ip:1.2.3.4", now, NULL), 8 * SEC);
    assert_int_equal(failure(t, "ip:1.2.3.4", now, NULL), 15 * SEC);
    for (int i = 0; i < 100; i++)       /* no overflow with many failures */
        assert_int_equal(failure(t, "ip:1.2.3.4", now, NULL), 15 * SEC);
    assert_int_equal(auth_throttle_locked(t, "ip:1.2.3.4", now), 0);
    /* another key is independent */
    assert_int_equal(failure(t, "ip:1.2.3.5", now, NULL), 2 * SEC);
    auth_throttle_free(t);
}

static void test_lockout(void **state)
{
    struct auth_throttle *t = auth_throttle_create(&cfg);
    long long now = 5000;
    bool    locked;

    (void) state;
    for (int i = 1; i < 5; i++) {
        failure(t, "user:alice", now + i, &locked);
        assert_false(locked);
        assert_int_equal(auth_throttle_locked(t, "user:alice", now + i), 0);
    }
    failure(t, "user:alice", now + 5, &locked);
    assert_true(locked);
    assert_int_equal(auth_throttle_locked(t, "user:alice", now + 5), 600 * SEC);
    assert_int_equal(auth_throttle_locked(t, "user:alice", now + 5 + 100 * SEC), 500 * SEC);
    /* failures during the lockout do not extend it or report a new lockout */
    failure(t, "user:alice", now + 10 * SEC, &locked);
    assert_false(locked);
    assert_int_equal(auth_throttle_locked(t, "user:alice", now + 5 + 599 * SEC), 1 * SEC);
    /* it ends, and the count starts afresh */
    assert_int_equal(auth_throttle_locked(t, "user:alice", now + 5 + 600 * SEC), 0);
    assert_int_equal(failure(t, "user:alice", now + 700 * SEC, &locked), 2 * SEC);
    assert_false(locked);
    auth_throttle_free(t);
}

static void test_window(void **state)
{
    struct auth_throttle *t = auth_throttle_create(&cfg);
    long long now = 0;
    bool    locked;

    (void) state;
    for (int i = 0; i < 4; i++)
        failure(t, "ip:10.0.0.1", now, &locked);
    /* the window closed: the fifth failure is a first one again */
    now += 601 * SEC;
    assert_int_equal(failure(t, "ip:10.0.0.1", now, &locked), 2 * SEC);
    assert_false(locked);
    for (int i = 0; i < 3; i++)
        failure(t, "ip:10.0.0.1", now + 1, &locked);
    assert_false(locked);
    failure(t, "ip:10.0.0.1", now + 2, &locked);
    assert_true(locked);
    auth_throttle_free(t);
}

static void test_success_resets(void **state)
{
    struct auth_throttle *t = auth_throttle_create(&cfg);
    bool    locked;

    (void) state;
    for (int i = 0; i < 4; i++)
        failure(t, "ip:10.0.0.2", 0, &locked);
    assert_int_equal(auth_throttle_count(t), 1);
    auth_throttle_success(t, "ip:10.0.0.2");
    assert_int_equal(auth_throttle_count(t), 0);
    assert_int_equal(failure(t, "ip:10.0.0.2", 1, &locked), 2 * SEC);
    assert_false(locked);
    auth_throttle_success(t, "ip:unknown");     /* harmless */
    assert_int_equal(auth_throttle_count(t), 1);
    auth_throttle_free(t);
}

static void test_bounded_memory(void **state)
{
    struct auth_throttle_config c = cfg;
    struct auth_throttle *t;
    char    key[32];
    bool    locked;

    (void) state;
    c.max_entries = 10;
    t = auth_throttle_create(&c);
    for (int i = 0; i < 5; i++)         /* lock key 0 */
        failure(t, "ip:victim", 0, &locked);
    assert_true(locked);
    for (int i = 0; i < 9; i++) {
        snprintf(key, sizeof(key), "ip:%d", i);
        failure(t, key, 1, NULL);
    }
    assert_int_equal(auth_throttle_count(t), 10);
    /* touching the victim keeps it; the least recently touched other key goes */
    failure(t, "ip:victim", 2, NULL);
    failure(t, "ip:new", 3, NULL);
    assert_int_equal(auth_throttle_count(t), 10);
    assert_true(auth_throttle_locked(t, "ip:victim", 4) > 0);
    assert_int_equal(failure(t, "ip:0", 5, NULL), 2 * SEC);        /* it was evicted: first again */
    assert_int_equal(auth_throttle_count(t), 10);
    for (int i = 0; i < 1000; i++) {
        snprintf(key, sizeof(key), "ip:x%d", i);
        failure(t, key, 6, NULL);
        assert_true(auth_throttle_count(t) <= 10);
    }
    auth_throttle_free(t);
}

static void test_no_delay_config(void **state)
{
    struct auth_throttle_config c = {0, 0, 0, 60 * SEC, 0, 1};
    struct auth_throttle *t = auth_throttle_create(&c);
    bool    locked;

    (void) state;
    for (int i = 0; i < 20; i++) {
        assert_int_equal(failure(t, "k", i, &locked), 0);
        assert_false(locked);
    }
    failure(t, "other", 0, NULL);
    assert_int_equal(auth_throttle_count(t), 1);        /* max_entries 1 */
    auth_throttle_free(t);
}

/* A huge configured delay saturates at delay_max instead of overflowing while doubling. */
static void test_delay_no_overflow(void **state)
{
    struct auth_throttle_config c = {LLONG_MAX / 2 + 1, LLONG_MAX, 0, 60 * SEC, 0, 10};
    struct auth_throttle *t = auth_throttle_create(&c);

    (void) state;
    assert_true(failure(t, "k", 0, NULL) == LLONG_MAX / 2 + 1);
    assert_true(failure(t, "k", 1, NULL) == LLONG_MAX);
    assert_true(failure(t, "k", 2, NULL) == LLONG_MAX);
    auth_throttle_free(t);
}

static void test_ip_key(void **state)
{
    struct strbuf k = STRBUF_INIT;

    (void) state;
    auth_throttle_ip_key(&k, "192.0.2.1");
    assert_string_equal(sb_str(&k), "ip:192.0.2.1");
    auth_throttle_ip_key(&k, "2001:db8:1:2:3:4:5:6");
    assert_string_equal(sb_str(&k), "ip:2001:db8:1:2::/64");
    auth_throttle_ip_key(&k, "2001:db8:1:2::ffff");
    assert_string_equal(sb_str(&k), "ip:2001:db8:1:2::/64");
    /* Other spellings of one host share its key: no escaping a lockout by respelling. */
    auth_throttle_ip_key(&k, "::ffff:192.0.2.7");
    assert_string_equal(sb_str(&k), "ip:192.0.2.7");
    auth_throttle_ip_key(&k, "::FFFF:c000:0207");
    assert_string_equal(sb_str(&k), "ip:192.0.2.7");
    auth_throttle_ip_key(&k, "192.0.2.07");
    assert_string_equal(sb_str(&k), "ip:192.0.2.7");
    auth_throttle_ip_key(&k, "3221225991");
    assert_string_equal(sb_str(&k), "ip:192.0.2.7");
    auth_throttle_ip_key(&k, "2001:DB8:1:2:0:0:0:9");
    assert_string_equal(sb_str(&k), "ip:2001:db8:1:2::/64");
    auth_throttle_ip_key(&k, "fe80::1%eth0");
    assert_string_equal(sb_str(&k), "ip:fe80::/64");
    auth_throttle_ip_key(&k, "fe80::1%eth1");
    assert_string_equal(sb_str(&k), "ip:fe80::/64");
    auth_throttle_ip_key(&k, "not:an:address::zz");
    assert_string_equal(sb_str(&k), "ip:not:an:address::zz");
    sb_free(&k);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_delays_grow_and_cap),
        cmocka_unit_test(test_lockout),
        cmocka_unit_test(test_window),
        cmocka_unit_test(test_success_resets),
        cmocka_unit_test(test_bounded_memory),
        cmocka_unit_test(test_no_delay_config),
        cmocka_unit_test(test_delay_no_overflow),
        cmocka_unit_test(test_ip_key),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
