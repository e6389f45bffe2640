/*
 * test_smtpd_check - smtpd/smtpd_check.c, the restriction evaluator, with its
 * policy client (smtpd/smtpd_policy.c), compiled into this test: list order
 * and "first decisive result wins", permit ending only its own list,
 * smtpd_delay_reject moving the client/helo/sender lists to RCPT, access
 * table results, deferred verdicts (a DNS failure loses to a later reject),
 * and suspension: a DNS question (a real UDP server in the same event loop)
 * or a policy service (a real UNIX socket server) makes the evaluation
 * pending, the resume callback comes from the loop, and evaluation goes on
 * where it stopped; cancel means no callback; a policy service that is down
 * gives smtpd_policy_service_default_action. Configuration errors (unknown
 * restriction, missing argument, open relay) stop start-up: checked in a
 * child process, as msg_fatal exits.
 */
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>

#include <event2/event.h>

/* The module under test and its policy client, with their static functions. */
#include "../../smtpd/smtpd_check.c"
#include "../../smtpd/smtpd_policy.c"

static char tmpdir[64];
static struct event_base *base;
static struct service svc;
static int dns_fd = -1, dns_port;
static struct event *dns_ev;
static int policy_fd = -1;
static struct event *policy_ev;
static int policy_requests;
static int resumes;

/* write_file - tmpdir/name */
static void write_file(const char *name, const char *text)
{
    char    path[160];
    FILE   *fp;

    snprintf(path, sizeof(path), "%s/%s", tmpdir, name);
    assert_non_null(fp = fopen(path, "w"));
    fputs(text, fp);
    assert_int_equal(fclose(fp), 0);
}

/* dns_serve - exists.test: MX; fail.test: SERVFAIL; anything else NXDOMAIN */
static void dns_serve(evutil_socket_t fd, short what, void *arg)
{
    unsigned char q[512];
    struct sockaddr_storage from;
    socklen_t fromlen = sizeof(from);
    ssize_t n = recvfrom(fd, q, sizeof(q), 0, (struct sockaddr *) &from, &fromlen);
    size_t  end = 12;
    char    name[256] = "";
    size_t  nl = 0;
    static const unsigned char mx[] = {0xc0, 12, 0, 15, 0, 1, 0, 0, 0, 60, 0, 4, 0, 10, 0xc0, 12};

    (void) what;
    (void) arg;
    if (n < 17)
        return;
    while (end < (size_t) n && q[end] != 0 && nl + q[end] + 1 < sizeof(name)) {
        if (nl)
            name[nl++] = '.';
        memcpy(name + nl, q + end + 1, q[end]);
        nl += q[end];
        end += 1 + q[end];
    }
    name[nl] = 0;
    end += 5;
    q[2] = 0x81;
    q[3] = 0x80;
    if (strstr(name, "exists.test") != NULL && q[end - 3] == 15) {
        memcpy(q + end, mx, sizeof(mx));
        q[7] = 1;
        end += sizeof(mx);
    } else if (strstr(name, "fail.test") != NULL) {
        q[3] |= 2;
    } else if (strstr(name, "exists.test") == NULL) {
        q[3] |= 3;
    }
    sendto(fd, q, end, 0, (struct sockaddr *) &from, fromlen);
}

/* policy_read - answer each request block by its recipient's local part */
static void policy_read(evutil_socket_t fd, short what, void *arg)
{
    struct event **self = arg;
    char    buf[8192];
    ssize_t n = read(fd, buf, sizeof(buf) - 1);
    const char *action = "DUNNO";

    (void) what;
    if (n <= 0) {
        event_free(*self);
        free(self);
        close(fd);
        return;
    }
    buf[n] = 0;
    if (strstr(buf, "\n\n") == NULL)
        return;                         /* the tests' requests arrive in one piece */
    policy_requests++;
    if (strstr(buf, "request=smtpd_access_policy\n") == NULL
        || strstr(buf, "protocol_state=RCPT\n") == NULL)
        action = "554 5.7.0 bad request";
    else if (strstr(buf, "recipient=deny@") != NULL)
        action = "REJECT not you";
    else if (strstr(buf, "recipient=silent@") != NULL)
        return;
    else if (strstr(buf, "recipient=ok@") != NULL)
        action = "OK";
    dprintf(fd, "action=%s\n\n", action);
}

/* policy_accept - a new connection from the policy client */
static void policy_accept(evutil_socket_t fd, short what, void *arg)
{
    int     c = accept(fd, NULL, NULL);
    struct event **ev = xmalloc(sizeof(*ev));

    (void) what;
    (void) arg;
    assert_true(c >= 0);
    *ev = event_new(base, c, EV_READ | EV_PERSIST, policy_read, ev);
    event_add(*ev, NULL);
}

/* setup - temp dir, event loop, the DNS and policy servers */
static int setup(void **state)
{
    struct sockaddr_in sin;
    struct sockaddr_un sun;
    socklen_t len = sizeof(sin);

    (void) state;
    snprintf(tmpdir, sizeof(tmpdir), "/tmp/test_smtpd_check.XXXXXX");
    if (mkdtemp(tmpdir) == NULL)
        return -1;
    base = event_base_new();
    dns_fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK, 0);
    memset(&sin, 0, sizeof(sin));
    sin.sin_family = AF_INET;
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(dns_fd, (struct sockaddr *) &sin, sizeof(sin)) < 0
        || getsockname(dns_fd, (struct sockaddr *) &sin, &len) < 0)
        return -1;
    dns_port = ntohs(sin.sin_port);
    dns_ev = event_new(base, dns_fd, EV_READ | EV_PERSIST, dns_serve, NULL);
    event_add(dns_ev, NULL);
    policy_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0);
    memset(&sun, 0, sizeof(sun));
    sun.sun_family = AF_UNIX;
    snprintf(sun.sun_path, sizeof(sun.sun_path), "%s/policy", tmpdir);
    if (bind(policy_fd, (struct sockaddr *) &sun, sizeof(sun)) < 0 || listen(policy_fd, 8) < 0)
        return -1;
    policy_ev = event_new(base, policy_fd, EV_READ | EV_PERSIST, policy_accept, NULL);
    event_add(policy_ev, NULL);
    write_file("domains", "example.test x\n");
    write_file("mailboxes", "alice@example.test example.test/alice/\n"
               "ok@example.test example.test/ok/\ndeny@example.test example.test/deny/\n"
               "silent@example.test example.test/silent/\n");
    write_file("access", "bad@example.org REJECT go away\nlater@example.org DEFER_IF_PERMIT "
               "not now\nblocked.example.org 550 5.7.2 blocked domain\nfriend@example.org OK\n");
    return 0;
}

/* teardown - remove what setup made */
static int teardown(void **state)
{
    char    cmd[128];

    (void) state;
    event_free(dns_ev);
    event_free(policy_ev);
    close(dns_fd);
    close(policy_fd);
    event_base_free(base);
    snprintf(cmd, sizeof(cmd), "rm -rf %s", tmpdir);
    return system(cmd);
}

/* load_config - main.cf with the common settings plus extra, loaded into svc (NULL: refused) */
static struct config *load_config(const char *extra, struct strbuf *err)
{
    struct strbuf text = STRBUF_INIT;

    sb_printf(&text, "myhostname = mx.example.test\nmydestination = mx.example.test\n"
              "mynetworks = 127.0.0.1/32\n"
              "virtual_mailbox_domains = texthash:%s/domains\n"
              "virtual_mailbox_maps = texthash:%s/mailboxes\n"
              "virtual_alias_maps =\nrelay_domains =\n"
              "smtpd_relay_restrictions = permit_mynetworks, reject_unauth_destination\n"
              "dns_resolver_address = 127.0.0.1:%d\n"
              "smtpd_policy_service_timeout = 1\n%s\n", tmpdir, tmpdir, dns_port, extra);
    write_file("main.cf", sb_str(&text));
    sb_free(&text);
    memset(&svc, 0, sizeof(svc));
    svc.base = base;
    svc.service_name = "smtp";
    svc.cfg = config_load(tmpdir, err);
    return svc.cfg;
}

/* make_check - the evaluator for the common settings plus extra */
static struct smtpd_check *make_check(const char *extra)
{
    struct strbuf err = STRBUF_INIT;

    if (load_config(extra, &err) == NULL)
        fail_msg("main.cf: %s", sb_str(&err));
    sb_free(&err);
    return smtpd_check_init(&svc);
}

/* done_check - free the evaluator and its configuration */
static void done_check(struct smtpd_check *chk)
{
    smtpd_check_free(chk);
    config_free(svc.cfg);
}

/* on_resume - count resume callbacks */
static void on_resume(void *ctx)
{
    (void) ctx;
    resumes++;
}

/* A client and addresses to check. */
struct fixture {
    struct smtpd_client cl;
    struct address sender, rcpt;
    struct smtpd_check_input in;
};

/* fixture_init - a client from addr, EHLO helo, MAIL from sender, RCPT to rcpt */
static void fixture_init(struct fixture *f, const char *addr, const char *helo,
                         const char *sender, const char *rcpt)
{
    const char *why;
    struct sockaddr_in *sin = (struct sockaddr_in *) &f->cl.peer;

    memset(f, 0, sizeof(*f));
    sin->sin_family = AF_INET;
    inet_pton(AF_INET, addr, &sin->sin_addr);
    f->cl.peer_len = sizeof(*sin);
    snprintf(f->cl.addr, sizeof(f->cl.addr), "%s", addr);
    snprintf(f->cl.ident, sizeof(f->cl.ident), "unknown[%s]:25", addr);
    f->cl.name = "unknown";
    address_init(&f->sender);
    address_init(&f->rcpt);
    assert_true(address_parse_path(sender, strlen(sender), ADDRESS_ALLOW_NULL, &f->sender,
                                   &why) > 0);
    assert_true(address_parse_path(rcpt, strlen(rcpt), 0, &f->rcpt, &why) > 0);
    f->in.cl = &f->cl;
    f->in.helo = helo;
    f->in.protocol = "ESMTP";
    f->in.sender = &f->sender;
    f->in.rcpt = &f->rcpt;
    f->in.command = "RCPT";
    f->in.size = -1;
    f->in.instance = "1.2.3";
}

/* fixture_free - the addresses */
static void fixture_free(struct fixture *f)
{
    address_free(&f->sender);
    address_free(&f->rcpt);
}

/* eval_wait - evaluate, running the loop through every pending lookup (at most 5 s) */
static enum smtpd_verdict eval_wait(struct smtpd_check_run *run, enum smtpd_stage stage,
                                    const struct smtpd_check_input *in, struct strbuf *reply,
                                    int *pendings)
{
    enum smtpd_verdict v;

    *pendings = 0;
    while ((v = smtpd_check_eval(run, stage, in, reply)) == SMTPD_CHECK_PENDING) {
        int     before = resumes;

        (*pendings)++;
        for (int i = 0; i < 500 && resumes == before; i++) {
            struct timeval tv = {0, 10000};

            event_base_loopexit(base, &tv);
            event_base_dispatch(base);
        }
        assert_int_equal(resumes, before + 1);
    }
    return v;
}

/* expect - one RCPT-stage evaluation: verdict and reply prefix */
static void expect(struct smtpd_check_run *run, enum smtpd_stage stage, struct fixture *f,
                   enum smtpd_verdict want, const char *reply_prefix, int want_pendings)
{
    struct strbuf reply = STRBUF_INIT;
    int     pendings;
    enum smtpd_verdict v = eval_wait(run, stage, &f->in, &reply, &pendings);

    if (v != want)
        fail_msg("<%s> -> <%s>: verdict %d, expected %d (%s)", sb_str(&f->sender.addr),
                 sb_str(&f->rcpt.addr), v, want, sb_str(&reply));
    if (reply_prefix != NULL && strncmp(sb_str(&reply), reply_prefix, strlen(reply_prefix)) != 0)
        fail_msg("reply \"%s\", expected \"%s...\"", sb_str(&reply), reply_prefix);
    if (want_pendings >= 0 && pendings != want_pendings)
        fail_msg("%d pending steps, expected %d", pendings, want_pendings);
    sb_free(&reply);
}

static void test_lists_and_order(void **state)
{
    struct smtpd_check *chk;
    struct smtpd_check_run *run;
    struct fixture f;
    char    access[160];
    char    extra[512];

    (void) state;
    snprintf(access, sizeof(access), "texthash:%s/access", tmpdir);
    snprintf(extra, sizeof(extra),
             "smtpd_client_restrictions = permit_mynetworks, reject_unauth_pipelining\n"
             "smtpd_sender_restrictions = check_sender_access %s, reject_non_fqdn_sender\n"
             "smtpd_relay_restrictions = permit_mynetworks, reject_unauth_destination\n", access);
    chk = make_check(extra);
    run = smtpd_check_run_new(chk, on_resume, NULL);

    fixture_init(&f, "192.0.2.1", "client.example.org", "<a@example.org>", "<alice@example.test>");
    expect(run, SMTPD_STAGE_RCPT, &f, SMTPD_CHECK_OK, "", 0);
    /* With smtpd_delay_reject the sender verdict comes at RCPT, not at MAIL. */
    fixture_free(&f);
    fixture_init(&f, "192.0.2.1", "client.example.org", "<bad@example.org>",
                 "<alice@example.test>");
    expect(run, SMTPD_STAGE_MAIL, &f, SMTPD_CHECK_OK, "", 0);
    expect(run, SMTPD_STAGE_RCPT, &f, SMTPD_CHECK_REJECT,
           "554 5.7.1 <bad@example.org>: Sender address rejected: go away", 0);
    fixture_free(&f);
    fixture_init(&f, "192.0.2.1", "c.example.org", "<x@sub.blocked.example.org>",
                 "<alice@example.test>");
    expect(run, SMTPD_STAGE_RCPT, &f, SMTPD_CHECK_REJECT,
           "550 5.7.2 <x@sub.blocked.example.org>: Sender address rejected: blocked domain", 0);
    /* OK ends the sender list only: the relay list still refuses a foreign domain. */
    fixture_free(&f);
    fixture_init(&f, "192.0.2.1", "c.example.org", "<friend@example.org>", "<x@foreign.test>");
    expect(run, SMTPD_STAGE_RCPT, &f, SMTPD_CHECK_REJECT,
           "554 5.7.1 <x@foreign.test>: Relay access denied", 0);
    /* ... and permit_mynetworks ends the client list before reject_unauth_pipelining. */
    fixture_free(&f);
    fixture_init(&f, "127.0.0.1", "c.example.org", "<a@example.org>", "<x@foreign.test>");
    f.in.input_pending = true;
    f.in.protocol = "SMTP";
    expect(run, SMTPD_STAGE_RCPT, &f, SMTPD_CHECK_OK, "", 0);
    fixture_free(&f);
    fixture_init(&f, "192.0.2.1", "c.example.org", "<a@example.org>", "<alice@example.test>");
    f.in.input_pending = true;
    f.in.protocol = "SMTP";
    expect(run, SMTPD_STAGE_RCPT, &f, SMTPD_CHECK_REJECT,
           "503 5.5.0 <unknown[192.0.2.1]>: Client host rejected: Improper use of SMTP "
           "command pipelining", 0);
    /* Unknown users in our domains, whatever the lists said. */
    fixture_free(&f);
    fixture_init(&f, "127.0.0.1", "c.example.org", "<a@example.org>", "<bob@example.test>");
    expect(run, SMTPD_STAGE_RCPT, &f, SMTPD_CHECK_REJECT,
           "550 5.1.1 <bob@example.test>: Recipient address rejected: User unknown in "
           "virtual mailbox table", 0);
    /* A bare local part was given @myorigin by the session; non-FQDN still sees it. */
    fixture_free(&f);
    fixture_init(&f, "192.0.2.1", "c.example.org", "<joe>", "<alice@example.test>");
    smtpd_canonical_address(&f.sender, "mx.example.test");
    assert_string_equal(sb_str(&f.sender.addr), "joe@mx.example.test");
    expect(run, SMTPD_STAGE_RCPT, &f, SMTPD_CHECK_REJECT,
           "504 5.5.2 <joe>: Sender address rejected: need fully-qualified address", 0);
    fixture_free(&f);
    smtpd_check_run_free(run);
    done_check(chk);
}

static void test_no_delay(void **state)
{
    struct smtpd_check *chk;
    struct smtpd_check_run *run;
    struct fixture f;

    (void) state;
    chk = make_check("smtpd_delay_reject = no\n"
                     "smtpd_client_restrictions = reject\n"
                     "smtpd_helo_restrictions = reject_non_fqdn_helo_hostname\n");
    run = smtpd_check_run_new(chk, on_resume, NULL);
    fixture_init(&f, "192.0.2.1", "localhost", "<a@example.org>", "<alice@example.test>");
    expect(run, SMTPD_STAGE_CONNECT, &f, SMTPD_CHECK_REJECT,
           "554 5.7.1 <unknown[192.0.2.1]>: Client host rejected: Access denied", 0);
    expect(run, SMTPD_STAGE_HELO, &f, SMTPD_CHECK_REJECT,
           "504 5.5.2 <localhost>: Helo command rejected: need fully-qualified hostname", 0);
    /* Not evaluated again at RCPT. */
    expect(run, SMTPD_STAGE_RCPT, &f, SMTPD_CHECK_OK, "", 0);
    fixture_free(&f);
    smtpd_check_run_free(run);
    done_check(chk);
}

static void test_dns_suspension(void **state)
{
    struct smtpd_check *chk;
    struct smtpd_check_run *run;
    struct fixture f;
    struct strbuf reply = STRBUF_INIT;

    (void) state;
    chk = make_check("smtpd_sender_restrictions = reject_unknown_sender_domain\n");
    run = smtpd_check_run_new(chk, on_resume, NULL);
    fixture_init(&f, "192.0.2.1", "c.example.org", "<a@nx.example.org>", "<alice@example.test>");
    expect(run, SMTPD_STAGE_RCPT, &f, SMTPD_CHECK_REJECT,
           "450 4.1.8 <a@nx.example.org>: Sender address rejected: Domain not found", 1);
    /* The session's cache answers the next RCPT at once. */
    expect(run, SMTPD_STAGE_RCPT, &f, SMTPD_CHECK_REJECT, "450 4.1.8", 0);
    fixture_free(&f);
    fixture_init(&f, "192.0.2.1", "c.example.org", "<a@mail.exists.test>",
                 "<alice@example.test>");
    expect(run, SMTPD_STAGE_RCPT, &f, SMTPD_CHECK_OK, "", 1);
    /* A DNS failure defers only if nothing else rejects. */
    fixture_free(&f);
    fixture_init(&f, "192.0.2.1", "c.example.org", "<a@fail.test>", "<alice@example.test>");
    expect(run, SMTPD_STAGE_RCPT, &f, SMTPD_CHECK_REJECT,
           "450 4.1.8 <a@fail.test>: Sender address rejected: Domain not found", 1);
    fixture_free(&f);
    fixture_init(&f, "192.0.2.1", "c.example.org", "<a@fail.test>", "<x@foreign.test>");
    expect(run, SMTPD_STAGE_RCPT, &f, SMTPD_CHECK_REJECT,
           "554 5.7.1 <x@foreign.test>: Relay access denied", 0);
    /* Our own domains are not asked about. */
    fixture_free(&f);
    fixture_init(&f, "192.0.2.1", "c.example.org", "<alice@example.test>",
                 "<alice@example.test>");
    expect(run, SMTPD_STAGE_RCPT, &f, SMTPD_CHECK_OK, "", 0);
    /* Cancelled while pending: no resume, and the run can be used again. */
    fixture_free(&f);
    fixture_init(&f, "192.0.2.1", "c.example.org", "<a@other.exists.test>",
                 "<alice@example.test>");
    {
        int     before = resumes;

        assert_int_equal(smtpd_check_eval(run, SMTPD_STAGE_RCPT, &f.in, &reply),
                         SMTPD_CHECK_PENDING);
        smtpd_check_cancel(run);
        for (int i = 0; i < 20; i++) {
            struct timeval tv = {0, 10000};

            event_base_loopexit(base, &tv);
            event_base_dispatch(base);
        }
        assert_int_equal(resumes, before);
    }
    expect(run, SMTPD_STAGE_RCPT, &f, SMTPD_CHECK_OK, "", 1);
    fixture_free(&f);
    sb_free(&reply);
    smtpd_check_run_free(run);
    done_check(chk);
}

static void test_policy_suspension(void **state)
{
    struct smtpd_check *chk;
    struct smtpd_check_run *run, *run2;
    struct fixture f, g;
    char    extra[512];
    struct strbuf reply = STRBUF_INIT;

    (void) state;
    snprintf(extra, sizeof(extra), "smtpd_recipient_restrictions = check_policy_service "
             "unix:%s/policy, reject\n", tmpdir);
    chk = make_check(extra);
    run = smtpd_check_run_new(chk, on_resume, NULL);
    policy_requests = 0;
    fixture_init(&f, "192.0.2.1", "c.example.org", "<a@example.org>", "<deny@example.test>");
    expect(run, SMTPD_STAGE_RCPT, &f, SMTPD_CHECK_REJECT,
           "554 5.7.1 <deny@example.test>: Recipient address rejected: not you", 1);
    fixture_free(&f);
    /* DUNNO goes on to the next restriction... */
    fixture_init(&f, "192.0.2.1", "c.example.org", "<a@example.org>", "<alice@example.test>");
    expect(run, SMTPD_STAGE_RCPT, &f, SMTPD_CHECK_REJECT,
           "554 5.7.1 <alice@example.test>: Recipient address rejected: Access denied", 1);
    /* ...OK ends the list: the reject after it is not reached. */
    fixture_free(&f);
    fixture_init(&f, "192.0.2.1", "c.example.org", "<a@example.org>", "<ok@example.test>");
    expect(run, SMTPD_STAGE_RCPT, &f, SMTPD_CHECK_OK, "", 1);
    assert_int_equal(policy_requests, 3);
    /* Two sessions waiting at once: answers in order, on the one connection. */
    run2 = smtpd_check_run_new(chk, on_resume, NULL);
    fixture_free(&f);
    fixture_init(&f, "192.0.2.1", "c.example.org", "<a@example.org>", "<deny@example.test>");
    fixture_init(&g, "192.0.2.2", "c.example.org", "<a@example.org>", "<alice@example.test>");
    {
        int     before = resumes;

        assert_int_equal(smtpd_check_eval(run, SMTPD_STAGE_RCPT, &f.in, &reply),
                         SMTPD_CHECK_PENDING);
        assert_int_equal(smtpd_check_eval(run2, SMTPD_STAGE_RCPT, &g.in, &reply),
                         SMTPD_CHECK_PENDING);
        for (int i = 0; i < 500 && resumes < before + 2; i++) {
            struct timeval tv = {0, 10000};

            event_base_loopexit(base, &tv);
            event_base_dispatch(base);
        }
        assert_int_equal(resumes, before + 2);
    }
    expect(run2, SMTPD_STAGE_RCPT, &g, SMTPD_CHECK_REJECT, "554 5.7.1 <alice@example.test>: "
           "Recipient address rejected: Access denied", -1);
    expect(run, SMTPD_STAGE_RCPT, &f, SMTPD_CHECK_REJECT, "554 5.7.1 <deny@example.test>: "
           "Recipient address rejected: not you", -1);
    /* A silent service: the timeout gives the default action. */
    fixture_free(&f);
    fixture_init(&f, "192.0.2.1", "c.example.org", "<a@example.org>", "<silent@example.test>");
    expect(run, SMTPD_STAGE_RCPT, &f, SMTPD_CHECK_REJECT,
           "451 4.3.5 <silent@example.test>: Recipient address rejected: Server configuration "
           "problem", 1);
    /* And the connection is made afresh for the next request. */
    fixture_free(&f);
    fixture_init(&f, "192.0.2.1", "c.example.org", "<a@example.org>", "<deny@example.test>");
    expect(run, SMTPD_STAGE_RCPT, &f, SMTPD_CHECK_REJECT, "554 5.7.1", 1);
    fixture_free(&f);
    fixture_free(&g);
    smtpd_check_run_free(run2);
    smtpd_check_run_free(run);
    done_check(chk);

    /* A service that is not there. */
    snprintf(extra, sizeof(extra), "smtpd_recipient_restrictions = check_policy_service "
             "unix:%s/no-such-socket\nsmtpd_policy_service_default_action = DEFER_IF_PERMIT "
             "service down\n", tmpdir);
    chk = make_check(extra);
    run = smtpd_check_run_new(chk, on_resume, NULL);
    fixture_init(&f, "192.0.2.1", "c.example.org", "<a@example.org>", "<alice@example.test>");
    expect(run, SMTPD_STAGE_RCPT, &f, SMTPD_CHECK_REJECT,
           "450 4.7.1 <alice@example.test>: Recipient address rejected: service down", 1);
    fixture_free(&f);
    sb_free(&reply);
    smtpd_check_run_free(run);
    done_check(chk);
}

/* init_fails - smtpd_check_init with extra exits non-zero (msg_fatal), in a child */
static void init_fails(const char *extra)
{
    pid_t   pid = fork();
    int     status;

    assert_true(pid >= 0);
    if (pid == 0) {
        int     devnull = open("/dev/null", O_WRONLY);
        struct strbuf err = STRBUF_INIT;

        dup2(devnull, 2);
        if (load_config(extra, &err) == NULL)
            _exit(1);                   /* refused by the configuration loader already */
        smtpd_check_init(&svc);
        _exit(0);
    }
    assert_int_equal(waitpid(pid, &status, 0), pid);
    if (!WIFEXITED(status) || WEXITSTATUS(status) == 0)
        fail_msg("accepted: %s", extra);
}

static void test_config_errors(void **state)
{
    (void) state;
    init_fails("smtpd_recipient_restrictions = reject_everything\n");
    init_fails("smtpd_client_restrictions = check_client_access\n");
    init_fails("smtpd_client_restrictions = check_client_access nosuchtype:/x\n");
    init_fails("smtpd_recipient_restrictions = check_policy_service tcp:1.2.3.4:5\n");
    init_fails("smtpd_relay_restrictions = permit_mynetworks\n");
    init_fails("unknown_address_reject_code = 250\n");
    init_fails("smtpd_policy_service_default_action = permit_mynetworks\n");
    init_fails("smtpd_sender_restrictions = reject_sender_login_mismatch\n");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_lists_and_order),
        cmocka_unit_test(test_no_delay),
        cmocka_unit_test(test_dns_suspension),
        cmocka_unit_test(test_policy_suspension),
        cmocka_unit_test(test_config_errors),
    };

    return cmocka_run_group_tests(tests, setup, teardown);
}
