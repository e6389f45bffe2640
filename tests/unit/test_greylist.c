/*
 * test_greylist - lib/greylist.c: the greylisting decisions with a clock the
 * test moves (delay, retry window, max age, auto-whitelist), client networks,
 * Postgrey's sender normalization, the expiry sweep in bounded steps, the
 * lock against a second user, and recovery from a damaged store file.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#include <db.h>

#include "greylist.h"
#include "log.h"
#include "strbuf.h"

#define T0      1700000000LL            /* an arbitrary "now" */

static char tmpdir[64];
static char dbpath[128];

static const struct greylist_settings defaults = {
    .delay = 300,
    .max_age = 35 * 86400,
    .retry_window = 2 * 86400,
    .awl_clients = 5,
    .ipv4_prefix = 24,
    .ipv6_prefix = 64,
};

/* setup - a fresh directory for the store */
static int setup(void **state)
{
    (void) state;
    snprintf(tmpdir, sizeof(tmpdir), "/tmp/test_greylist.XXXXXX");
    if (mkdtemp(tmpdir) == NULL)
        return -1;
    snprintf(dbpath, sizeof(dbpath), "%s/greylist.db", tmpdir);
    return 0;
}

/* teardown - remove the directory and what the store left in it */
static int teardown(void **state)
{
    const char *names[] = {"greylist.db", "greylist.db.lock", "greylist.db.corrupt"};
    char    path[192];

    (void) state;
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        snprintf(path, sizeof(path), "%s/%s", tmpdir, names[i]);
        unlink(path);
    }
    rmdir(tmpdir);
    return 0;
}

/* open_store - the store with settings s, which must open */
static struct greylist *open_store(const struct greylist_settings *s)
{
    struct strbuf err = STRBUF_INIT;
    bool    busy;
    struct greylist *gl = greylist_open(dbpath, s, &busy, &err);

    if (gl == NULL)
        fail_msg("greylist_open: %s", sb_str(&err));
    assert_false(busy);
    sb_free(&err);
    return gl;
}

/* check - one request; the verdict and seconds must be as expected */
static void check(struct greylist *gl, const char *ip, const char *from, const char *to,
                  long long now, enum greylist_verdict want, long long seconds)
{
    struct greylist_result res;
    struct strbuf err = STRBUF_INIT;

    if (greylist_check(gl, ip, from, to, now, &res, &err) != 0)
        fail_msg("greylist_check: %s", sb_str(&err));
    if (res.verdict != want)
        fail_msg("%s %s %s at +%lld: verdict %d, expected %d", ip, from, to, now - T0,
                 (int) res.verdict, (int) want);
    if (seconds >= 0)
        assert_int_equal(res.seconds, seconds);
    sb_free(&err);
}

static void test_delay_and_retry(void **state)
{
    struct greylist *gl = open_store(&defaults);

    (void) state;
    check(gl, "192.0.2.7", "alice@example.com", "bob@example.net", T0, GREYLIST_DEFER, 300);
    /* an early retry is still deferred, with the time left; it does not restart the clock */
    check(gl, "192.0.2.7", "alice@example.com", "bob@example.net", T0 + 100, GREYLIST_DEFER, 200);
    check(gl, "192.0.2.7", "alice@example.com", "bob@example.net", T0 + 299, GREYLIST_DEFER, 1);
    /* the same network, another host: the same triplet (IPv4 /24) */
    check(gl, "192.0.2.200", "alice@example.com", "bob@example.net", T0 + 310, GREYLIST_PASS_DELAYED, 310);
    /* passed once: no more delay, even much later */
    check(gl, "192.0.2.7", "alice@example.com", "bob@example.net", T0 + 400, GREYLIST_PASS, -1);
    check(gl, "192.0.2.7", "Alice@EXAMPLE.com", "BOB@example.net", T0 + 30 * 86400, GREYLIST_PASS, -1);
    /* another network, sender or recipient is a new triplet */
    check(gl, "192.0.3.7", "alice@example.com", "bob@example.net", T0 + 400, GREYLIST_DEFER, 300);
    check(gl, "192.0.2.7", "carol@example.com", "bob@example.net", T0 + 400, GREYLIST_DEFER, 300);
    check(gl, "192.0.2.7", "alice@example.com", "dave@example.net", T0 + 400, GREYLIST_DEFER, 300);
    /* null sender (bounces) is greylisted like any other */
    check(gl, "192.0.2.7", "", "bob@example.net", T0, GREYLIST_DEFER, 300);
    check(gl, "192.0.2.7", "", "bob@example.net", T0 + 300, GREYLIST_PASS_DELAYED, 300);
    greylist_close(gl);
}

static void test_retry_window_and_max_age(void **state)
{
    struct greylist *gl = open_store(&defaults);
    long long late = T0 + 300 + 2 * 86400 + 1;

    (void) state;
    check(gl, "198.51.100.1", "a@x.example", "b@y.example", T0, GREYLIST_DEFER, 300);
    /* a retry after delay + window: the wait starts again */
    check(gl, "198.51.100.1", "a@x.example", "b@y.example", late, GREYLIST_DEFER, 300);
    check(gl, "198.51.100.1", "a@x.example", "b@y.example", late + 299, GREYLIST_DEFER, 1);
    check(gl, "198.51.100.1", "a@x.example", "b@y.example", late + 300, GREYLIST_PASS_DELAYED, 300);
    /* just inside the window */
    check(gl, "198.51.100.1", "c@x.example", "b@y.example", T0, GREYLIST_DEFER, 300);
    check(gl, "198.51.100.1", "c@x.example", "b@y.example", T0 + 300 + 2 * 86400,
          GREYLIST_PASS_DELAYED, 300 + 2 * 86400);
    /* a passed triplet not seen for max_age is forgotten */
    check(gl, "198.51.100.1", "a@x.example", "b@y.example", late + 300 + 35 * 86400 + 1,
          GREYLIST_DEFER, 300);
    greylist_close(gl);
}

static void test_clock_back(void **state)
{
    struct greylist *gl = open_store(&defaults);

    (void) state;
    check(gl, "192.0.2.1", "a@x.example", "b@y.example", T0, GREYLIST_DEFER, 300);
    /* the clock went back an hour: the record is from the "future", start again */
    check(gl, "192.0.2.1", "a@x.example", "b@y.example", T0 - 3600, GREYLIST_DEFER, 300);
    check(gl, "192.0.2.1", "a@x.example", "b@y.example", T0 - 3600 + 300, GREYLIST_PASS_DELAYED, 300);
    greylist_close(gl);
}

static void test_auto_whitelist(void **state)
{
    struct greylist_settings s = defaults;
    struct greylist *gl;
    struct greylist_result res;
    struct strbuf err = STRBUF_INIT;
    char    rcpt[64];

    (void) state;
    s.awl_clients = 3;
    gl = open_store(&s);
    for (int i = 0; i < 3; i++) {
        snprintf(rcpt, sizeof(rcpt), "user%d@example.net", i);
        check(gl, "203.0.113.9", "news@list.example", rcpt, T0 + i, GREYLIST_DEFER, 300);
        /* a second early retry must not count */
        check(gl, "203.0.113.9", "news@list.example", rcpt, T0 + 100 + i, GREYLIST_DEFER, 200);
        assert_int_equal(greylist_check(gl, "203.0.113.9", "news@list.example", rcpt,
                                        T0 + 400 + i, &res, &err), 0);
        assert_int_equal(res.verdict, GREYLIST_PASS_DELAYED);
        assert_int_equal(res.awl_count, i + 1);
        /* passing again does not count again */
        if (i < 2)
            check(gl, "203.0.113.9", "news@list.example", rcpt, T0 + 500 + i, GREYLIST_PASS, -1);
    }
    /* the network is whitelisted now: a new triplet passes at once */
    check(gl, "203.0.113.77", "other@else.example", "new@example.net", T0 + 1000,
          GREYLIST_PASS_AWL, -1);
    /* a neighbouring network is not */
    check(gl, "203.0.114.77", "other@else.example", "new@example.net", T0 + 1000, GREYLIST_DEFER, 300);
    /* the whitelist entry ages out after max_age without mail */
    check(gl, "203.0.113.77", "x@else.example", "new@example.net", T0 + 1000 + 35 * 86400 + 10,
          GREYLIST_DEFER, 300);
    greylist_close(gl);

    /* awl_clients 0: never whitelisted */
    teardown(state);
    setup(state);
    s.awl_clients = 0;
    gl = open_store(&s);
    for (int i = 0; i < 5; i++) {
        snprintf(rcpt, sizeof(rcpt), "user%d@example.net", i);
        check(gl, "203.0.113.9", "news@list.example", rcpt, T0, GREYLIST_DEFER, 300);
        check(gl, "203.0.113.9", "news@list.example", rcpt, T0 + 300, GREYLIST_PASS_DELAYED, 300);
    }
    check(gl, "203.0.113.9", "news@list.example", "new@example.net", T0 + 400, GREYLIST_DEFER, 300);
    greylist_close(gl);
    sb_free(&err);
}

static void test_persistence(void **state)
{
    struct greylist *gl = open_store(&defaults);

    (void) state;
    check(gl, "2001:db8:1:2::5", "a@x.example", "b@y.example", T0, GREYLIST_DEFER, 300);
    greylist_close(gl);
    gl = open_store(&defaults);
    /* the same /64, after a reopen */
    check(gl, "2001:db8:1:2:ffff::1", "a@x.example", "b@y.example", T0 + 300, GREYLIST_PASS_DELAYED, 300);
    greylist_close(gl);
}

static void test_bad_address(void **state)
{
    struct greylist *gl = open_store(&defaults);
    struct greylist_result res;
    struct strbuf err = STRBUF_INIT;

    (void) state;
    assert_int_equal(greylist_check(gl, "unknown", "a@b", "c@d", T0, &res, &err), -1);
    assert_non_null(strstr(sb_str(&err), "not an IP address"));
    assert_int_equal(greylist_check(gl, "192.0.2.1/24", "a@b", "c@d", T0, &res, &err), -1);
    assert_int_equal(greylist_check(gl, "", "a@b", "c@d", T0, &res, &err), -1);
    assert_int_equal(greylist_count(gl), 0);
    greylist_close(gl);
    sb_free(&err);
}

/* net_is - greylist_client_net result */
static void net_is(const char *addr, int v4, int v6, const char *want)
{
    struct strbuf out = STRBUF_INIT;

    if (want == NULL) {
        assert_int_equal(greylist_client_net(addr, v4, v6, &out), -1);
    } else {
        assert_int_equal(greylist_client_net(addr, v4, v6, &out), 0);
        assert_string_equal(sb_str(&out), want);
    }
    sb_free(&out);
}

static void test_client_net(void **state)
{
    (void) state;
    net_is("192.0.2.77", 24, 64, "192.0.2.0/24");
    net_is("192.0.2.77", 32, 64, "192.0.2.77/32");
    net_is("192.0.2.77", 20, 64, "192.0.0.0/20");
    net_is("192.0.2.77", 0, 64, "0.0.0.0/0");
    net_is("::ffff:192.0.2.77", 24, 64, "192.0.2.0/24");
    net_is("2001:db8:1:2:3:4:5:6", 24, 64, "2001:db8:1:2::/64");
    net_is("2001:db8:1:2:3:4:5:6", 24, 48, "2001:db8:1::/48");
    net_is("2001:db8:1:2:3:4:5:6", 24, 60, "2001:db8:1::/60");
    net_is("2001:db8:1:2:3:4:5:6", 24, 128, "2001:db8:1:2:3:4:5:6/128");
    net_is("192.0.2.77", 99, 64, "192.0.2.77/32");      /* clamped */
    net_is("192.0.2", 24, 64, NULL);
    net_is("[192.0.2.1]", 24, 64, NULL);
    net_is("192.0.2.1 ", 24, 64, NULL);
    net_is("example.com", 24, 64, NULL);
    net_is("2001:db8::1%eth0", 24, 64, NULL);
    net_is("1111:2222:3333:4444:5555:6666:7777:8888:9999:aaaa:bbbb", 24, 64, NULL);
}

/* sender_is - greylist_sender_key result */
static void sender_is(const char *in, const char *want)
{
    struct strbuf out = STRBUF_INIT;

    sb_puts(&out, "junk");
    greylist_sender_key(in, &out);
    assert_string_equal(sb_str(&out), want);
    sb_free(&out);
}

static void test_sender_key(void **state)
{
    (void) state;
    sender_is("", "");
    sender_is("Alice@Example.COM", "alice@example.com");
    sender_is("alice+news@example.com", "alice@example.com");
    sender_is("alice+@example.com", "alice@example.com");
    /* VERP numbers: one key for every bounce address of a list */
    sender_is("bounce-123-4567@list.example", "bounce-#-#@list.example");
    sender_is("list-bounces.99@list.example", "list-bounces.#@list.example");
    sender_is("user123@example.com", "user123@example.com");
    sender_is("12345@example.com", "#@example.com");
    /* BATV */
    sender_is("prvs=1234abcdef=alice@example.com", "alice@example.com");
    sender_is("PRVS=1234ABCDEF=Alice@example.com", "alice@example.com");
    sender_is("msprvs1=17ab3xyz=bounces-1@example.com", "bounces-#@example.com");
    sender_is("btv1==1ab2cd3ef4==alice@example.com", "alice@example.com");
    sender_is("prvs=1234abcdef=@example.com", "prvs=1234abcdef=@example.com");
    /* SRS */
    sender_is("SRS0=HHH=TT=orig.example=alice@forwarder.example", "alice@orig.example");
    sender_is("srs0+hhh=tt=orig.example=alice+x@forwarder.example", "alice@orig.example");
    sender_is("SRS1=HHH=fwd1.example==HHH=TT=orig.example=alice@fwd2.example", "alice@orig.example");
    sender_is("SRS0=HHH=TT=orig.example=@forwarder.example", "srs0=hhh=tt=orig.example=@forwarder.example");
    sender_is("SRS0=broken@forwarder.example", "srs0=broken@forwarder.example");
    /* no domain: kept (lower-cased) */
    sender_is("MAILER-DAEMON", "mailer-daemon");
    /* the last '@' separates the domain */
    sender_is("\"a@b\"@example.com", "\"a@b\"@example.com");
}

static void test_expire(void **state)
{
    struct greylist *gl = open_store(&defaults);
    struct strbuf err = STRBUF_INIT;
    char    from[64];
    unsigned removed, total = 0;
    int     rc, calls = 0;

    (void) state;
    /* 50 triplets never retried, 30 passed ones and their 30 networks' counts */
    for (int i = 0; i < 50; i++) {
        snprintf(from, sizeof(from), "never%c%c@example.com", 'a' + i / 26, 'a' + i % 26);
        check(gl, "192.0.2.1", from, "r@example.net", T0, GREYLIST_DEFER, 300);
    }
    for (int i = 0; i < 30; i++) {
        char    ip[32];

        snprintf(ip, sizeof(ip), "10.%d.0.1", i);
        check(gl, ip, "passed@example.com", "r@example.net", T0, GREYLIST_DEFER, 300);
        check(gl, ip, "passed@example.com", "r@example.net", T0 + 300, GREYLIST_PASS_DELAYED, 300);
    }
    assert_int_equal(greylist_count(gl), 50 + 30 + 30);

    /* nothing is stale yet */
    assert_int_equal(greylist_expire(gl, T0 + 400, 1000, &removed, &err), 1);
    assert_int_equal(removed, 0);

    /* after the retry window the 50 unretried go, in steps of 7 */
    do {
        rc = greylist_expire(gl, T0 + 300 + 2 * 86400 + 1, 7, &removed, &err);
        assert_true(rc >= 0);
        assert_true(removed <= 7);
        total += removed;
        calls++;
    } while (rc == 0);
    assert_int_equal(total, 50);
    assert_true(calls >= 110 / 7);
    assert_int_equal(greylist_count(gl), 60);

    /* after max age everything goes */
    assert_int_equal(greylist_expire(gl, T0 + 300 + 35 * 86400 + 1, 1000, &removed, &err), 1);
    assert_int_equal(removed, 60);
    assert_int_equal(greylist_count(gl), 0);
    assert_int_equal(greylist_sync(gl, &err), 0);
    greylist_close(gl);
    sb_free(&err);
}

static void test_lock(void **state)
{
    struct greylist *gl = open_store(&defaults), *second;
    struct strbuf err = STRBUF_INIT;
    bool    busy = false;

    (void) state;
    second = greylist_open(dbpath, &defaults, &busy, &err);
    assert_null(second);
    assert_true(busy);
    assert_non_null(strstr(sb_str(&err), "another process"));
    greylist_close(gl);
    sb_reset(&err);
    second = greylist_open(dbpath, &defaults, &busy, &err);
    assert_non_null(second);
    greylist_close(second);
    sb_free(&err);
}

/* write_file - replace path with len bytes of data */
static void write_file(const char *path, const void *data, size_t len)
{
    int     fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);

    assert_true(fd >= 0);
    assert_int_equal(write(fd, data, len), (ssize_t) len);
    close(fd);
}

static void test_corrupt_recovery(void **state)
{
    struct greylist *gl;
    char    junk[8192], aside[192];
    struct stat st;

    (void) state;
    snprintf(aside, sizeof(aside), "%s.corrupt", dbpath);
    /* not a Berkeley DB file at all */
    memset(junk, 'x', sizeof(junk));
    write_file(dbpath, junk, sizeof(junk));
    gl = open_store(&defaults);
    assert_int_equal(stat(aside, &st), 0);
    assert_int_equal(st.st_size, sizeof(junk));
    assert_int_equal(greylist_count(gl), 0);
    check(gl, "192.0.2.1", "a@x.example", "b@y.example", T0, GREYLIST_DEFER, 300);
    greylist_close(gl);

    /* an empty file (a crash right after creating it) */
    unlink(aside);
    write_file(dbpath, "", 0);
    gl = open_store(&defaults);
    assert_int_equal(stat(aside, &st), 0);
    check(gl, "192.0.2.1", "a@x.example", "b@y.example", T0, GREYLIST_DEFER, 300);
    greylist_close(gl);

    /* a real store with a page overwritten in the middle */
    unlink(aside);
    unlink(dbpath);
    gl = open_store(&defaults);
    for (int i = 0; i < 500; i++) {
        char    from[64];

        snprintf(from, sizeof(from), "sender%c%c%c@example.com", 'a' + i % 26, 'a' + i / 26 % 26, 'a' + i / 676);
        check(gl, "192.0.2.1", from, "b@y.example", T0, GREYLIST_DEFER, 300);
    }
    greylist_close(gl);
    {
        int     fd = open(dbpath, O_WRONLY);

        assert_true(fd >= 0);
        assert_int_equal(pwrite(fd, junk, 4096, 4096), 4096);
        close(fd);
    }
    gl = open_store(&defaults);
    assert_int_equal(stat(aside, &st), 0);
    assert_int_equal(greylist_count(gl), 0);
    check(gl, "192.0.2.1", "a@x.example", "b@y.example", T0, GREYLIST_DEFER, 300);
    greylist_close(gl);
}

static void test_unusable_dir(void **state)
{
    struct strbuf err = STRBUF_INIT;
    bool    busy;
    struct greylist *gl;

    (void) state;
    gl = greylist_open("/nonexistent-dir/greylist.db", &defaults, &busy, &err);
    assert_null(gl);
    assert_false(busy);
    assert_non_null(strstr(sb_str(&err), "/nonexistent-dir/greylist.db.lock"));
    sb_free(&err);
}

/* put_raw - store key=value in the file with Berkeley DB directly */
static void put_raw(const char *key, const char *value)
{
    DB     *db;
    DBT     k, v;

    assert_int_equal(db_create(&db, NULL, 0), 0);
    assert_int_equal(db->open(db, NULL, dbpath, NULL, DB_BTREE, DB_CREATE, 0600), 0);
    memset(&k, 0, sizeof(k));
    memset(&v, 0, sizeof(v));
    k.data = (void *) key;
    k.size = (u_int32_t) strlen(key);
    v.data = (void *) value;
    v.size = (u_int32_t) strlen(value);
    assert_int_equal(db->put(db, NULL, &k, &v, 0), 0);
    assert_int_equal(db->close(db, 0), 0);
}

/* A record that does not parse is treated as absent and replaced; a clock beyond reason is refused. */
static void test_malformed_record(void **state)
{
    struct greylist *gl;
    struct greylist_result res;
    struct strbuf err = STRBUF_INIT;
    unsigned removed;

    (void) state;
    put_raw("t:192.0.2.0/24/a@x.example/b@y.example", "garbage");
    put_raw("t:192.0.2.0/24/c@x.example/b@y.example", "1 2 3");
    put_raw("t:192.0.2.0/24/d@x.example/b@y.example", "99999999999999999999 1 1");
    put_raw("c:192.0.2.0/24", "-5 0");
    put_raw("x:foreign", "1");
    gl = open_store(&defaults);
    check(gl, "192.0.2.1", "a@x.example", "b@y.example", T0, GREYLIST_DEFER, 300);
    check(gl, "192.0.2.1", "c@x.example", "b@y.example", T0, GREYLIST_DEFER, 300);
    check(gl, "192.0.2.1", "d@x.example", "b@y.example", T0, GREYLIST_DEFER, 300);
    check(gl, "192.0.2.1", "a@x.example", "b@y.example", T0 + 300, GREYLIST_PASS_DELAYED, 300);
    assert_int_equal(greylist_check(gl, "192.0.2.1", "a@x.example", "b@y.example",
                                    1LL << 50, &res, &err), -1);
    assert_non_null(strstr(sb_str(&err), "clock"));
    /* the sweep removes what is not ours or does not parse */
    assert_int_equal(greylist_expire(gl, T0 + 400, 100, &removed, &err), 1);
    assert_int_equal(removed, 1);      /* x:foreign; c: was rewritten by the pass */
    assert_int_equal(greylist_count(gl), 4);
    greylist_close(gl);
    sb_free(&err);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_delay_and_retry, setup, teardown),
        cmocka_unit_test_setup_teardown(test_retry_window_and_max_age, setup, teardown),
        cmocka_unit_test_setup_teardown(test_clock_back, setup, teardown),
        cmocka_unit_test_setup_teardown(test_auto_whitelist, setup, teardown),
        cmocka_unit_test_setup_teardown(test_persistence, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_address, setup, teardown),
        cmocka_unit_test(test_client_net),
        cmocka_unit_test(test_sender_key),
        cmocka_unit_test_setup_teardown(test_expire, setup, teardown),
        cmocka_unit_test_setup_teardown(test_lock, setup, teardown),
        cmocka_unit_test_setup_teardown(test_corrupt_recovery, setup, teardown),
        cmocka_unit_test(test_unusable_dir),
        cmocka_unit_test_setup_teardown(test_malformed_record, setup, teardown),
    };

    log_init("postern", "test_greylist");
    return cmocka_run_group_tests(tests, NULL, NULL);
}
