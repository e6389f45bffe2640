/*
 * test_dsn - lib/dsn.c: NOTIFY rules (absent, NEVER, lists), reason
 * splitting, the end of a header section (LF, CRLF, none), and composed
 * reports: the three parts in order, per-message and per-recipient fields,
 * Remote-MTA and "smtp;" diagnostics from an smtp agent's reason, hostile
 * values (control characters, overlong addresses) neutralised, 8-bit
 * detection, and a closing boundary equal to the opening one.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <string.h>
#include <cmocka.h>

#include "dsn.h"
#include "strbuf.h"

static void test_notify_wants(void **state)
{
    (void) state;
    assert_true(dsn_notify_wants(NULL, DSN_FAILURE));
    assert_true(dsn_notify_wants(NULL, DSN_DELAY));
    assert_false(dsn_notify_wants(NULL, DSN_SUCCESS));
    assert_false(dsn_notify_wants("NEVER", DSN_FAILURE));
    assert_false(dsn_notify_wants("NEVER", DSN_DELAY));
    assert_true(dsn_notify_wants("SUCCESS", DSN_SUCCESS));
    assert_false(dsn_notify_wants("SUCCESS", DSN_FAILURE));
    assert_true(dsn_notify_wants("SUCCESS,FAILURE", DSN_FAILURE));
    assert_false(dsn_notify_wants("SUCCESS,FAILURE", DSN_DELAY));
    assert_true(dsn_notify_wants("failure,delay", DSN_DELAY));
    assert_false(dsn_notify_wants("FAILUREX", DSN_FAILURE));
}

static void test_split_reason(void **state)
{
    char    status[DSN_STATUS_MAX];

    (void) state;
    assert_string_equal(dsn_split_reason("5.1.1 unknown user", status), "unknown user");
    assert_string_equal(status, "5.1.1");
    assert_string_equal(dsn_split_reason("4.4.1", status), "");
    assert_string_equal(status, "4.4.1");
    assert_string_equal(dsn_split_reason("no code here", status), "no code here");
    assert_string_equal(status, "");
    assert_string_equal(dsn_split_reason("9.9.9 bad class", status), "9.9.9 bad class");
    assert_string_equal(status, "");
    assert_string_equal(dsn_split_reason("5.1.1111111111111111 long", status), "5.1.1111111111111111 long");
    assert_string_equal(status, "");
}

static void test_header_length(void **state)
{
    const char *m1 = "Subject: x\nTo: y\n\nbody\n";
    const char *m2 = "Subject: x\r\n\r\nbody";
    const char *m3 = "Subject: x\nno end";
    bool    complete;

    (void) state;
    assert_int_equal(dsn_header_length(m1, strlen(m1), &complete), strlen("Subject: x\nTo: y\n"));
    assert_true(complete);
    assert_int_equal(dsn_header_length(m2, strlen(m2), &complete), strlen("Subject: x\r\n"));
    assert_true(complete);
    assert_int_equal(dsn_header_length(m3, strlen(m3), &complete), strlen(m3));
    assert_false(complete);
    assert_int_equal(dsn_header_length("\nbody", 5, &complete), 0);
    assert_true(complete);
}

/* sample - a failure report for two recipients */
static void sample(struct dsn_report *r, struct dsn_rcpt rc[2])
{
    memset(r, 0, sizeof(*r));
    memset(rc, 0, 2 * sizeof(*rc));
    rc[0].address = "u@remote.test";
    rc[0].orcpt = "rfc822;list@remote.test";
    rc[0].action = "failed";
    rc[0].status = "5.1.1";
    rc[0].text = "host mx.remote.test[192.0.2.1] said: 550 5.1.1 <u@remote.test>: no such user "
        "(in reply to RCPT TO command)";
    rc[0].relay = "mx.remote.test[192.0.2.1]:25";
    rc[0].last_attempt = 1800000000;
    rc[1].address = "v@local.test";
    rc[1].action = "failed";
    rc[1].status = "5.2.2";
    rc[1].text = "mailbox full";
    rc[1].relay = "virtual";
    r->kind = DSN_FAILURE;
    r->myhostname = "mx.example.test";
    r->queue_id = "0123456789ABCDEF01";
    r->sender = "alice@example.test";
    r->to = "alice@example.test";
    r->envid = "E-1";
    r->arrival = 1800000000;
    r->now = 1800000100;
    r->rcpts = rc;
    r->nrcpt = 2;
    r->full = true;
}

static void test_compose_failure(void **state)
{
    struct dsn_report r;
    struct dsn_rcpt rc[2];
    struct strbuf out = STRBUF_INIT, tail = STRBUF_INIT;
    const char *s, *p1, *p2, *p3;

    (void) state;
    sample(&r, rc);
    assert_false(dsn_compose_head(&r, &out));
    dsn_compose_tail(&r, &tail);
    s = sb_str(&out);
    assert_non_null(strstr(s, "Subject: Undelivered Mail Returned to Sender\n"));
    assert_non_null(strstr(s, "From: MAILER-DAEMON@mx.example.test (Mail Delivery System)\n"));
    assert_non_null(strstr(s, "To: <alice@example.test>\n"));
    assert_non_null(strstr(s, "report-type=delivery-status;\n\tboundary=\"0123456789ABCDEF01.1800000100/mx.example.test\"\n"));
    p1 = strstr(s, "Content-Type: text/plain; charset=us-ascii\n");
    p2 = strstr(s, "Content-Type: message/delivery-status\n");
    p3 = strstr(s, "Content-Type: message/rfc822\n");
    assert_non_null(p1);
    assert_non_null(p2);
    assert_non_null(p3);
    assert_true(p1 < p2 && p2 < p3);
    assert_non_null(strstr(s, "This is the mail system at host mx.example.test.\n"));
    assert_non_null(strstr(s, "<u@remote.test> (expanded from <list@remote.test>): host\n    mx.remote.test[192.0.2.1] said:"));
    assert_non_null(strstr(s, "Reporting-MTA: dns; mx.example.test\nX-Postern-Queue-ID: 0123456789ABCDEF01\n"));
    assert_non_null(strstr(s, "Original-Envelope-Id: E-1\n"));
    assert_non_null(strstr(s, "\nFinal-Recipient: rfc822; u@remote.test\nOriginal-Recipient: rfc822;list@remote.test\n"
                           "Action: failed\nStatus: 5.1.1\nRemote-MTA: dns; mx.remote.test\n"
                           "Diagnostic-Code: smtp; 550 5.1.1 <u@remote.test>: no such user\n"
                           "Last-Attempt-Date: "));
    assert_non_null(strstr(s, "\nFinal-Recipient: rfc822; v@local.test\nAction: failed\nStatus: 5.2.2\n"
                           "Diagnostic-Code: X-Postern; mailbox full\n"));
    assert_null(strstr(s, "Will-Retry-Until"));
    assert_string_equal(sb_str(&tail), "\n--0123456789ABCDEF01.1800000100/mx.example.test--\n");
    /* the header block ends where the original begins */
    assert_int_equal(s[sb_len(&out) - 1], '\n');
    assert_int_equal(s[sb_len(&out) - 2], '\n');
    sb_free(&out);
    sb_free(&tail);
}

/* test_remote_mta_from_text - an agent that names no relay still gets Remote-MTA from its reason */
static void test_remote_mta_from_text(void **state)
{
    struct dsn_report r;
    struct dsn_rcpt rc[2];
    struct strbuf out = STRBUF_INIT;

    (void) state;
    sample(&r, rc);
    rc[0].relay = "smtp";
    r.nrcpt = 1;
    dsn_compose_head(&r, &out);
    assert_non_null(strstr(sb_str(&out), "Remote-MTA: dns; mx.remote.test\n"));
    sb_free(&out);
    rc[0].text = "host without-bracket said: 550 no";
    dsn_compose_head(&r, &out);
    assert_null(strstr(sb_str(&out), "Remote-MTA:"));
    sb_free(&out);
}

static void test_compose_delay_headers(void **state)
{
    struct dsn_report r;
    struct dsn_rcpt rc[2];
    struct strbuf out = STRBUF_INIT;

    (void) state;
    sample(&r, rc);
    r.kind = DSN_DELAY;
    r.full = false;
    r.delayed_for = 4 * 3600;
    r.lifetime = 5 * 86400;
    r.will_retry_until = r.arrival + r.lifetime;
    rc[0].action = rc[1].action = "delayed";
    dsn_compose_head(&r, &out);
    assert_non_null(strstr(sb_str(&out), "Subject: Delayed Mail (still being retried)\n"));
    assert_non_null(strstr(sb_str(&out), "# THIS IS A WARNING ONLY."));
    assert_non_null(strstr(sb_str(&out), "for more than 4 hour(s).\nIt will be retried until it is 5 day(s) old.\n"));
    assert_non_null(strstr(sb_str(&out), "Will-Retry-Until: "));
    assert_non_null(strstr(sb_str(&out), "Content-Type: text/rfc822-headers\n"));
    sb_free(&out);
}

/* test_compose_postmaster_copies - notify_classes copies and the double bounce: subjects and texts */
static void test_compose_postmaster_copies(void **state)
{
    struct dsn_report r;
    struct dsn_rcpt rc[2];
    struct strbuf out = STRBUF_INIT;

    (void) state;
    sample(&r, rc);
    r.postmaster_copy = true;
    r.full = false;
    r.to = "postmaster@mx.example.test";
    dsn_compose_head(&r, &out);
    assert_non_null(strstr(sb_str(&out), "Subject: Postmaster Copy: Undelivered Mail\n"));
    assert_non_null(strstr(sb_str(&out), "To: <postmaster@mx.example.test>\n"));
    assert_non_null(strstr(sb_str(&out), "Postmaster copy: a message from <alice@example.test>\ncould not be "
                           "delivered to one or more recipients"));
    assert_null(strstr(sb_str(&out), "I'm sorry"));
    assert_non_null(strstr(sb_str(&out), "X-Postern-Sender: rfc822; alice@example.test\n"));
    assert_non_null(strstr(sb_str(&out), "Content-Type: text/rfc822-headers\n"));

    sb_reset(&out);
    r.kind = DSN_DELAY;
    r.delayed_for = 4 * 3600;
    r.lifetime = 5 * 86400;
    dsn_compose_head(&r, &out);
    assert_non_null(strstr(sb_str(&out), "Subject: Postmaster Warning: Delayed Mail\n"));
    assert_non_null(strstr(sb_str(&out), "for more than 4 hour(s); it will be retried until it is 5 day(s) old.\n"));
    assert_null(strstr(sb_str(&out), "THIS IS A WARNING ONLY"));

    /* a double bounce (the null sender) keeps its own explanation */
    sb_reset(&out);
    r.kind = DSN_FAILURE;
    r.sender = "";
    dsn_compose_head(&r, &out);
    assert_non_null(strstr(sb_str(&out), "Subject: Postmaster Copy: Undelivered Mail\n"));
    assert_non_null(strstr(sb_str(&out), "The attached message has the null sender"));
    sb_free(&out);
}

static void test_hostile_values(void **state)
{
    struct dsn_report r;
    struct dsn_rcpt rc[2];
    struct strbuf out = STRBUF_INIT;
    char    longaddr[3000];
    const char *s;

    (void) state;
    sample(&r, rc);
    memset(longaddr, 'a', sizeof(longaddr) - 1);
    longaddr[sizeof(longaddr) - 1] = '\0';
    rc[0].address = longaddr;
    rc[1].text = "evil\r\nBcc: victim@example.test";
    r.envid = "x\ty";
    dsn_compose_head(&r, &out);
    s = sb_str(&out);
    assert_null(strstr(s, "\nBcc:"));
    assert_non_null(strstr(s, "evil??Bcc: victim"));
    assert_non_null(strstr(s, "Original-Envelope-Id: x?y\n"));
    /* no line longer than RFC 5322's 998 */
    for (const char *line = s; *line;) {
        const char *nl = strchr(line, '\n');
        size_t  len = nl ? (size_t) (nl - line) : strlen(line);

        assert_true(len <= 998);
        line += len + (nl != NULL);
    }
    sb_free(&out);

    /* 8-bit values make an 8-bit report with utf-8 address types */
    sample(&r, rc);
    rc[1].address = "j\xc3\xb6rg@local.test";
    assert_true(dsn_compose_head(&r, &out));
    assert_non_null(strstr(sb_str(&out), "Final-Recipient: utf-8; j\xc3\xb6rg@local.test\n"));
    assert_non_null(strstr(sb_str(&out), "Content-Type: message/global-delivery-status\n"));
    assert_non_null(strstr(sb_str(&out), "Content-Type: message/rfc822\n"));
    sb_free(&out);

    /* an SMTPUTF8 original is returned as message/global, or message/global-headers */
    sample(&r, rc);
    r.smtputf8 = true;
    assert_true(dsn_compose_head(&r, &out));
    assert_non_null(strstr(sb_str(&out), "Content-Type: message/global\nContent-Transfer-Encoding: 8bit\n\n"));
    sb_free(&out);
    r.full = false;
    dsn_compose_head(&r, &out);
    assert_non_null(strstr(sb_str(&out), "Content-Type: message/global-headers\n\n"));
    sb_free(&out);
}

static void test_format_date(void **state)
{
    char    buf[64];

    (void) state;
    dsn_format_date(0, buf);
    /* whatever the zone: "Day, D Mon YYYY HH:MM:SS +ZZZZ" */
    assert_true(strlen(buf) >= 29 && strlen(buf) <= 31);
    assert_true(buf[3] == ',');
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_notify_wants),
        cmocka_unit_test(test_split_reason),
        cmocka_unit_test(test_header_length),
        cmocka_unit_test(test_compose_failure),
        cmocka_unit_test(test_remote_mta_from_text),
        cmocka_unit_test(test_compose_delay_headers),
        cmocka_unit_test(test_compose_postmaster_copies),
        cmocka_unit_test(test_hostile_values),
        cmocka_unit_test(test_format_date),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
