/*
 * test_auth_client - lib/auth_client.c against a scripted auth server in the
 * same process (one libevent loop, a UNIX socket in a temp dir): OK with its
 * extra fields (tab-escaped values decoded), FAIL with reason, CONT round
 * trip, a malformed line (the exchange fails temporarily, the connection is
 * dropped and the next exchange reconnects), no server at all, a server that
 * appears later, cancel (no callback), and results never delivered from
 * inside auth_client_start().
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>
#include <cmocka.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

#include "auth_client.h"
#include "auth_proto.h"
#include "strbuf.h"

enum mode { M_OK, M_FAIL, M_CONT, M_GARBAGE, M_SILENT };

static struct event_base *base;
static char tmpdir[64];
static char sockpath[96];
static int listen_fd = -1;
static struct event *listen_ev;
static enum mode mode;
static unsigned connections;
static struct bufferevent *server_conns[16];    /* the server's ends, freed at teardown */

/* What the callback saw. */
static struct {
    int     calls;
    enum auth_client_status status;
    char    text[256];
    char    quota[64];
    char    escaped[64];
    bool    flag;
    bool    in_start;
} got;

static bool starting;

/* server_read - the scripted server's answers */
static void server_read(struct bufferevent *bev, void *arg)
{
    struct evbuffer *in = bufferevent_get_input(bev);
    char   *line;
    unsigned id;

    (void) arg;
    while ((line = evbuffer_readln(in, NULL, EVBUFFER_EOL_LF)) != NULL) {
        if (sscanf(line, "AUTH\t%u\t", &id) == 1) {
            switch (mode) {
            case M_OK:
                evbuffer_add_printf(bufferevent_get_output(bev), "OK\t%u\tuser=alice@example.test\t"
                                    "userdb_quota_rule=*:bytes=1048576\tx_esc=a\001tb\tsomeflag\n", id);
                break;
            case M_FAIL:
                evbuffer_add_printf(bufferevent_get_output(bev),
                                    "FAIL\t%u\tuser=alice\treason=bad password\n", id);
                break;
            case M_CONT:
                evbuffer_add_printf(bufferevent_get_output(bev), "CONT\t%u\t\n", id);
                break;
            case M_GARBAGE:
                evbuffer_add_printf(bufferevent_get_output(bev), "OK\tnot-a-number\n");
                break;
            case M_SILENT:
                break;
            }
        } else if (sscanf(line, "CONT\t%u\t", &id) == 1) {
            evbuffer_add_printf(bufferevent_get_output(bev), "OK\t%u\tuser=bob\n", id);
        }
        free(line);
    }
}

/* server_event - the client went away */
static void server_event(struct bufferevent *bev, short what, void *arg)
{
    (void) what;
    (void) arg;
    for (size_t i = 0; i < sizeof(server_conns) / sizeof(server_conns[0]); i++)
        if (server_conns[i] == bev)
            server_conns[i] = NULL;
    bufferevent_free(bev);
}

/* server_accept - greet a new client with the handshake */
static void server_accept(evutil_socket_t fd, short what, void *arg)
{
    static const char *const mechs[] = {"PLAIN", "LOGIN", NULL};
    struct strbuf out = STRBUF_INIT;
    struct bufferevent *bev;
    int     c = accept((int) fd, NULL, NULL);

    (void) what;
    (void) arg;
    if (c < 0)
        return;
    connections++;
    evutil_make_socket_nonblocking(c);
    bev = bufferevent_socket_new(base, c, BEV_OPT_CLOSE_ON_FREE);
    for (size_t i = 0; i < sizeof(server_conns) / sizeof(server_conns[0]); i++)
        if (server_conns[i] == NULL) {
            server_conns[i] = bev;
            break;
        }
    bufferevent_setcb(bev, server_read, NULL, server_event, NULL);
    auth_server_handshake(&out, mechs, 1, 2, "0123456789abcdef0123456789abcdef");
    bufferevent_write(bev, sb_str(&out), sb_len(&out));
    bufferevent_enable(bev, EV_READ | EV_WRITE);
    sb_free(&out);
}

/* server_start - listen at sockpath */
static void server_start(void)
{
    struct sockaddr_un sun;

    memset(&sun, 0, sizeof(sun));
    sun.sun_family = AF_UNIX;
    snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", sockpath);
    listen_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0);
    assert_true(listen_fd >= 0);
    assert_int_equal(bind(listen_fd, (struct sockaddr *) &sun, sizeof(sun)), 0);
    assert_int_equal(listen(listen_fd, 16), 0);
    listen_ev = event_new(base, listen_fd, EV_READ | EV_PERSIST, server_accept, NULL);
    event_add(listen_ev, NULL);
}

/* server_stop - no more listening */
static void server_stop(void)
{
    if (listen_fd >= 0) {
        event_free(listen_ev);
        close(listen_fd);
        unlink(sockpath);
        listen_fd = -1;
    }
}

/* result - the callback under test */
static void result(void *ctx, const struct auth_client_result *res)
{
    const char *v;

    (void) ctx;
    got.calls++;
    got.in_start = starting;
    got.status = res->status;
    snprintf(got.text, sizeof(got.text), "%s", res->text);
    v = auth_client_field(res, "userdb_quota_rule");
    snprintf(got.quota, sizeof(got.quota), "%s", v ? v : "");
    v = auth_client_field(res, "x_esc");
    snprintf(got.escaped, sizeof(got.escaped), "%s", v ? v : "");
    got.flag = auth_client_field(res, "someflag") != NULL;
    event_base_loopbreak(base);
}

/* run - one exchange to its first result (or a 5 s safety timeout) */
static struct auth_exchange *run(struct auth_client *ac, const char *resp)
{
    struct auth_client_req req;
    struct auth_exchange *x;
    struct timeval tv = {5, 0};

    memset(&got, 0, sizeof(got));
    memset(&req, 0, sizeof(req));
    req.mech = "plain";
    req.service = "imap";
    req.secured = true;
    req.rip = "192.0.2.1";
    req.lip = "192.0.2.2";
    req.resp = resp;
    starting = true;
    x = auth_client_start(ac, &req, result, NULL);
    starting = false;
    event_base_loopexit(base, &tv);
    event_base_dispatch(base);
    return x;
}

static int setup(void **state)
{
    (void) state;
    snprintf(tmpdir, sizeof(tmpdir), "/tmp/test_auth_client.XXXXXX");
    assert_non_null(mkdtemp(tmpdir));
    snprintf(sockpath, sizeof(sockpath), "%s/auth", tmpdir);
    base = event_base_new();
    connections = 0;
    return 0;
}

static int teardown(void **state)
{
    (void) state;
    server_stop();
    for (size_t i = 0; i < sizeof(server_conns) / sizeof(server_conns[0]); i++)
        if (server_conns[i] != NULL) {
            bufferevent_free(server_conns[i]);
            server_conns[i] = NULL;
        }
    event_base_free(base);
    rmdir(tmpdir);
    return 0;
}

static void test_ok_with_fields(void **state)
{
    struct auth_client *ac;

    (void) state;
    server_start();
    ac = auth_client_new(base, sockpath);
    run(ac, "AGFsaWNlAHNlY3JldA==");
    assert_int_equal(got.calls, 1);
    assert_false(got.in_start);
    assert_int_equal(got.status, AUTH_CLIENT_OK);
    assert_string_equal(got.text, "alice@example.test");
    assert_string_equal(got.quota, "*:bytes=1048576");
    assert_string_equal(got.escaped, "a\tb");
    assert_true(got.flag);
    /* A second exchange reuses the connection. */
    run(ac, "AGFsaWNlAHNlY3JldA==");
    assert_int_equal(got.status, AUTH_CLIENT_OK);
    assert_int_equal(connections, 1);
    auth_client_free(ac);
}

static void test_fail(void **state)
{
    struct auth_client *ac;

    (void) state;
    mode = M_FAIL;
    server_start();
    ac = auth_client_new(base, sockpath);
    run(ac, "AGFsaWNlAHdyb25n");
    assert_int_equal(got.status, AUTH_CLIENT_FAIL);
    assert_string_equal(got.text, "bad password");
    assert_string_equal(got.quota, "");
    auth_client_free(ac);
    mode = M_OK;
}

static void test_cont(void **state)
{
    struct auth_client *ac;
    struct auth_exchange *x;
    struct timeval tv = {5, 0};

    (void) state;
    mode = M_CONT;
    server_start();
    ac = auth_client_new(base, sockpath);
    x = run(ac, NULL);
    assert_int_equal(got.status, AUTH_CLIENT_CONT);
    assert_string_equal(got.text, "");
    memset(&got, 0, sizeof(got));
    auth_client_respond(x, "AGJvYgBzZWNyZXQ=");
    event_base_loopexit(base, &tv);
    event_base_dispatch(base);
    assert_int_equal(got.status, AUTH_CLIENT_OK);
    assert_string_equal(got.text, "bob");
    auth_client_free(ac);
    mode = M_OK;
}

static void test_garbage_drops_and_reconnects(void **state)
{
    struct auth_client *ac;

    (void) state;
    mode = M_GARBAGE;
    server_start();
    ac = auth_client_new(base, sockpath);
    run(ac, "AGFsaWNlAHNlY3JldA==");
    assert_int_equal(got.status, AUTH_CLIENT_TEMPFAIL);
    mode = M_OK;
    run(ac, "AGFsaWNlAHNlY3JldA==");
    assert_int_equal(got.status, AUTH_CLIENT_OK);
    assert_int_equal(connections, 2);
    auth_client_free(ac);
}

static void test_no_server_then_server(void **state)
{
    struct auth_client *ac;

    (void) state;
    ac = auth_client_new(base, sockpath);
    run(ac, "AGFsaWNlAHNlY3JldA==");
    assert_int_equal(got.calls, 1);
    assert_false(got.in_start);
    assert_int_equal(got.status, AUTH_CLIENT_TEMPFAIL);
    server_start();
    run(ac, "AGFsaWNlAHNlY3JldA==");
    assert_int_equal(got.status, AUTH_CLIENT_OK);
    auth_client_free(ac);
}

static void test_cancel_means_no_callback(void **state)
{
    struct auth_client *ac;
    struct auth_client_req req;
    struct auth_exchange *x;
    struct timeval tv = {0, 300000};

    (void) state;
    server_start();
    ac = auth_client_new(base, sockpath);
    memset(&got, 0, sizeof(got));
    memset(&req, 0, sizeof(req));
    req.mech = "PLAIN";
    req.service = "smtp";
    req.resp = "AGFsaWNlAHNlY3JldA==";
    x = auth_client_start(ac, &req, result, NULL);
    auth_client_cancel(x);
    event_base_loopexit(base, &tv);
    event_base_dispatch(base);
    assert_int_equal(got.calls, 0);
    auth_client_free(ac);
}

static void test_free_with_pending_exchange(void **state)
{
    struct auth_client *ac;
    struct auth_client_req req;
    struct timeval tv = {0, 200000};

    (void) state;
    mode = M_SILENT;
    server_start();
    ac = auth_client_new(base, sockpath);
    memset(&got, 0, sizeof(got));
    memset(&req, 0, sizeof(req));
    req.mech = "PLAIN";
    req.service = "imap";
    req.resp = "";
    (void) auth_client_start(ac, &req, result, NULL);
    event_base_loopexit(base, &tv);
    event_base_dispatch(base);
    auth_client_free(ac);               /* the exchange goes with it, no callback */
    event_base_loopexit(base, &tv);
    event_base_dispatch(base);
    assert_int_equal(got.calls, 0);
    mode = M_OK;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_ok_with_fields, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fail, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cont, setup, teardown),
        cmocka_unit_test_setup_teardown(test_garbage_drops_and_reconnects, setup, teardown),
        cmocka_unit_test_setup_teardown(test_no_server_then_server, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cancel_means_no_callback, setup, teardown),
        cmocka_unit_test_setup_teardown(test_free_with_pending_exchange, setup, teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
