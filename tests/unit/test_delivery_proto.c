/*
 * test_delivery_proto - lib/delivery_proto.c: request and result records
 * both ways (round trips, including the null sender, orcpt and recipients
 * that share a queue file index), and every kind of malformed record the
 * decoders must refuse: wrong type, missing/duplicate/unknown attributes,
 * recipient attributes out of order, bad numbers, overflow, control
 * characters, too many recipients, wrong result counts, status names and
 * DSN syntax or class.
 */
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "delivery_proto.h"
#include "ipc.h"
#include "queue_file.h"
#include "strbuf.h"

#define QID "00061A2B3C4D5E6F7A"

/* header - the attributes before the recipients, in the usual order */
static void header(struct ipc_record *r)
{
    ipc_init(r, "deliver");
    assert_int_equal(ipc_put(r, "queue_id", QID), 0);
    assert_int_equal(ipc_put(r, "sender", "bob@example.org"), 0);
    assert_int_equal(ipc_put(r, "arrival", "1700000000"), 0);
    assert_int_equal(ipc_put(r, "offset", "512"), 0);
    assert_int_equal(ipc_put(r, "length", "100"), 0);
}

/* decode_fails - the record is refused, err says something containing want, req is empty */
static void decode_fails(struct ipc_record *r, const char *want)
{
    struct delivery_request req;
    struct strbuf err = STRBUF_INIT;

    assert_int_equal(delivery_request_decode(r, &req, &err), -1);
    if (strstr(sb_str(&err), want) == NULL)
        fail_msg("error \"%s\" does not mention \"%s\"", sb_str(&err), want);
    assert_null(req.rcpts);
    assert_null(req.sender);
    assert_int_equal(req.nrcpt, 0);
    sb_free(&err);
    ipc_free(r);
}

/* test_request_round_trip - what qmgr encodes, the agent decodes unchanged */
static void test_request_round_trip(void **state)
{
    struct delivery_rcpt rcpts[3] = {
        {"alice@example.test", NULL, 0},
        {"bob@example.test", "rfc822;postmaster@example.test", 2},
        {"carol@example.test", "rfc822;postmaster@example.test", 2},    /* same index: alias expansion */
    };
    struct delivery_request in = {.sender = "", .arrival = 1700000123, .offset = 4096,
                                  .length = 123456789012ULL, .rcpts = rcpts, .nrcpt = 3};
    struct delivery_request out;
    struct ipc_record r;
    struct strbuf err = STRBUF_INIT;

    (void) state;
    queue_id_new(in.queue_id);
    delivery_request_encode(&in, &r);
    assert_string_equal(ipc_type(&r), "deliver");
    assert_int_equal(delivery_request_decode(&r, &out, &err), 0);
    assert_string_equal(out.queue_id, in.queue_id);
    assert_string_equal(out.sender, "");
    assert_int_equal(out.arrival, 1700000123);
    assert_int_equal(out.offset, 4096);
    assert_true(out.length == 123456789012ULL);
    assert_int_equal(out.nrcpt, 3);
    for (size_t i = 0; i < 3; i++) {
        assert_string_equal(out.rcpts[i].address, rcpts[i].address);
        assert_int_equal(out.rcpts[i].index, rcpts[i].index);
        if (rcpts[i].orcpt)
            assert_string_equal(out.rcpts[i].orcpt, rcpts[i].orcpt);
        else
            assert_null(out.rcpts[i].orcpt);
    }
    delivery_request_free(&out);
    assert_null(out.rcpts);
    ipc_free(&r);
    sb_free(&err);
}

/* test_request_nexthop - optional, once, before the recipients, bounded and clean */
static void test_request_nexthop(void **state)
{
    struct delivery_rcpt rcpt = {"alice@example.test", NULL, 0};
    struct delivery_request in = {.sender = "", .arrival = 1, .rcpts = &rcpt, .nrcpt = 1,
                                  .nexthop = "[192.0.2.1]:2525"};
    struct delivery_request out;
    struct ipc_record r;
    struct strbuf err = STRBUF_INIT;
    char    big[1100];

    (void) state;
    queue_id_new(in.queue_id);
    delivery_request_encode(&in, &r);
    assert_int_equal(delivery_request_decode(&r, &out, &err), 0);
    assert_string_equal(out.nexthop, "[192.0.2.1]:2525");
    delivery_request_free(&out);
    assert_null(out.nexthop);
    ipc_free(&r);
    in.nexthop = NULL;                  /* virtual: none, and none decoded */
    delivery_request_encode(&in, &r);
    assert_int_equal(delivery_request_decode(&r, &out, &err), 0);
    assert_null(out.nexthop);
    delivery_request_free(&out);
    ipc_free(&r);

    header(&r);
    ipc_put(&r, "nexthop", "a.example");
    ipc_put(&r, "nexthop", "b.example");
    ipc_put(&r, "rcpt", "a@b");
    ipc_put(&r, "rcpt_index", "0");
    decode_fails(&r, "nexthop given twice");
    header(&r);
    ipc_put(&r, "nexthop", "");
    ipc_put(&r, "rcpt", "a@b");
    ipc_put(&r, "rcpt_index", "0");
    decode_fails(&r, "bad nexthop");
    header(&r);
    memset(big, 'x', sizeof(big) - 1);
    big[sizeof(big) - 1] = 0;
    ipc_put(&r, "nexthop", big);
    ipc_put(&r, "rcpt", "a@b");
    ipc_put(&r, "rcpt_index", "0");
    decode_fails(&r, "bad nexthop");
    header(&r);
    ipc_put(&r, "rcpt", "a@b");
    ipc_put(&r, "rcpt_index", "0");
    ipc_put(&r, "nexthop", "late.example");
    decode_fails(&r, "unexpected attribute \"nexthop\"");
    sb_free(&err);
}

/* test_request_header_order_free - header attributes may come in any order before the recipients */
static void test_request_header_order_free(void **state)
{
    struct delivery_request req;
    struct ipc_record r;
    struct strbuf err = STRBUF_INIT;

    (void) state;
    ipc_init(&r, "deliver");
    ipc_put(&r, "length", "0");
    ipc_put(&r, "sender", "x@y");
    ipc_put(&r, "offset", "0");
    ipc_put(&r, "arrival", "0");
    ipc_put(&r, "queue_id", QID);
    ipc_put(&r, "rcpt", "a@b");
    ipc_put(&r, "rcpt_index", "7");
    assert_int_equal(delivery_request_decode(&r, &req, &err), 0);
    assert_int_equal(req.nrcpt, 1);
    assert_int_equal(req.rcpts[0].index, 7);
    assert_int_equal(req.length, 0);
    delivery_request_free(&req);
    ipc_free(&r);
    sb_free(&err);
}

/* test_request_malformed - each defect is refused with a useful message */
static void test_request_malformed(void **state)
{
    struct ipc_record r;

    (void) state;
    ipc_init(&r, "result");
    ipc_put(&r, "queue_id", QID);
    decode_fails(&r, "not a deliver request");

    header(&r);
    decode_fails(&r, "no recipients");

    ipc_init(&r, "deliver");
    ipc_put(&r, "sender", "");
    ipc_put(&r, "arrival", "1");
    ipc_put(&r, "offset", "1");
    ipc_put(&r, "length", "1");
    ipc_put(&r, "rcpt", "a@b");
    ipc_put(&r, "rcpt_index", "0");
    decode_fails(&r, "queue_id missing");

    header(&r);
    ipc_put(&r, "sender", "again@example.org");
    ipc_put(&r, "rcpt", "a@b");
    ipc_put(&r, "rcpt_index", "0");
    decode_fails(&r, "sender given twice");

    header(&r);
    ipc_put(&r, "color", "blue");
    decode_fails(&r, "unexpected attribute \"color\"");

    ipc_init(&r, "deliver");
    ipc_put(&r, "queue_id", "../../etc/passwd");
    decode_fails(&r, "bad queue_id");

    ipc_init(&r, "deliver");
    ipc_put(&r, "queue_id", "00061a2b3c4d5e6f7a");      /* lower case is not a queue ID */
    decode_fails(&r, "bad queue_id");

    const char *bad_numbers[] = {"-1", "+5", "", "12a", " 1", "99999999999999999999", "0x10"};

    for (size_t i = 0; i < sizeof(bad_numbers) / sizeof(bad_numbers[0]); i++) {
        ipc_init(&r, "deliver");
        ipc_put(&r, "queue_id", QID);
        ipc_put(&r, "offset", bad_numbers[i]);
        decode_fails(&r, "bad offset");
    }
    ipc_init(&r, "deliver");
    ipc_put(&r, "arrival", "99999999999999");           /* beyond DELIVERY_ARRIVAL_MAX */
    decode_fails(&r, "bad arrival");

    ipc_init(&r, "deliver");
    ipc_put(&r, "queue_id", QID);
    ipc_put(&r, "sender", "");
    ipc_put(&r, "arrival", "1");
    ipc_put(&r, "offset", "9223372036854775807");
    ipc_put(&r, "length", "1");
    ipc_put(&r, "rcpt", "a@b");
    ipc_put(&r, "rcpt_index", "0");
    decode_fails(&r, "overflow");

    header(&r);
    ipc_put(&r, "rcpt", "a@b");
    decode_fails(&r, "rcpt_index missing");

    header(&r);
    ipc_put(&r, "rcpt", "a@b");
    ipc_put(&r, "rcpt", "c@d");
    decode_fails(&r, "rcpt_index must follow rcpt");

    header(&r);
    ipc_put(&r, "rcpt_index", "0");
    decode_fails(&r, "unexpected attribute \"rcpt_index\"");

    header(&r);
    ipc_put(&r, "rcpt", "a@b");
    ipc_put(&r, "rcpt_index", "0");
    ipc_put(&r, "orcpt", "x");
    ipc_put(&r, "orcpt", "y");
    decode_fails(&r, "unexpected attribute \"orcpt\"");

    header(&r);
    ipc_put(&r, "rcpt", "a@b");
    ipc_put(&r, "rcpt_index", "0");
    ipc_put(&r, "queue_id", QID);                       /* header attribute after the recipients */
    decode_fails(&r, "unexpected attribute \"queue_id\"");

    header(&r);
    ipc_put(&r, "rcpt", "");
    ipc_put(&r, "rcpt_index", "0");
    decode_fails(&r, "bad address");

    header(&r);
    ipc_put(&r, "rcpt", "a\tb@example.test");
    ipc_put(&r, "rcpt_index", "0");
    decode_fails(&r, "bad address");

    header(&r);
    ipc_put(&r, "rcpt", "a@b");
    ipc_put(&r, "rcpt_index", "4194304");               /* no queue file has that many recipients */
    decode_fails(&r, "bad rcpt_index");

    ipc_init(&r, "deliver");
    ipc_put(&r, "queue_id", QID);
    ipc_put(&r, "sender", "a\x1b[31m@example.org");
    decode_fails(&r, "bad sender");
}

/* test_request_too_many - DELIVERY_MAX_RCPT recipients pass, one more does not */
static void test_request_too_many(void **state)
{
    struct delivery_request req;
    struct strbuf err = STRBUF_INIT;
    struct ipc_record r;

    (void) state;
    header(&r);
    for (int i = 0; i < DELIVERY_MAX_RCPT; i++) {
        ipc_put(&r, "rcpt", "someone@example.test");
        ipc_put_int(&r, "rcpt_index", i);
    }
    assert_int_equal(delivery_request_decode(&r, &req, &err), 0);
    assert_int_equal(req.nrcpt, DELIVERY_MAX_RCPT);
    assert_int_equal(req.rcpts[DELIVERY_MAX_RCPT - 1].index, DELIVERY_MAX_RCPT - 1);
    delivery_request_free(&req);
    ipc_put(&r, "rcpt", "one-more@example.test");
    ipc_put_int(&r, "rcpt_index", 0);
    decode_fails(&r, "more than 10000 recipients");
    sb_free(&err);
}

/* test_results_round_trip - statuses, codes and reasons survive; reasons are cleaned and bounded */
static void test_results_round_trip(void **state)
{
    char    longtext[3000];
    struct delivery_result in[5] = {
        {DELIVERY_OK, "2.0.0", "delivered to maildir"},
        {DELIVERY_DEFER, "4.3.0", "cannot store\r\nmessage: disk full"},
        {DELIVERY_BOUNCE, "5.1.1", "unknown user: \"x@example.test\""},
        {DELIVERY_DEFER, "4.123.456", longtext},
        {DELIVERY_RETRY, "4.3.0", "lookup table changed"},
    };
    struct delivery_result out[5];
    struct delivery_result wrong_class = {DELIVERY_RETRY, "5.1.1", "x"};
    struct ipc_record r;
    struct strbuf err = STRBUF_INIT;

    (void) state;
    memset(longtext, 'x', sizeof(longtext) - 1);
    longtext[sizeof(longtext) - 1] = '\0';
    delivery_results_encode(in, 5, &r);
    assert_string_equal(ipc_type(&r), "result");
    assert_int_equal(delivery_results_decode(&r, out, 5, &err), 0);
    assert_int_equal(out[4].status, DELIVERY_RETRY);
    assert_string_equal(out[4].dsn, "4.3.0");
    assert_int_equal(out[0].status, DELIVERY_OK);
    assert_string_equal(out[0].dsn, "2.0.0");
    assert_string_equal(out[0].reason, "delivered to maildir");
    assert_int_equal(out[1].status, DELIVERY_DEFER);
    assert_string_equal(out[1].reason, "cannot store  message: disk full");
    assert_int_equal(out[2].status, DELIVERY_BOUNCE);
    assert_string_equal(out[2].dsn, "5.1.1");
    assert_string_equal(out[2].reason, in[2].reason);
    assert_string_equal(out[3].dsn, "4.123.456");
    assert_int_equal(strlen(out[3].reason), 1024);
    delivery_results_free(out, 5);
    assert_null(out[0].reason);
    ipc_free(&r);

    /* "retry" is temporary: a 5.x.x code with it is corrected on encoding, like any mismatch */
    delivery_results_encode(&wrong_class, 1, &r);
    assert_int_equal(delivery_results_decode(&r, out, 1, &err), 0);
    assert_int_equal(out[0].status, DELIVERY_RETRY);
    assert_int_equal(out[0].dsn[0], '4');
    delivery_results_free(out, 1);
    ipc_free(&r);

    /* Asking for another count than was sent is an error both ways. */
    delivery_results_encode(in, 3, &r);
    assert_int_equal(delivery_results_decode(&r, out, 4, &err), -1);
    assert_non_null(strstr(sb_str(&err), "3 complete result(s) for 4"));
    sb_reset(&err);
    assert_int_equal(delivery_results_decode(&r, out, 2, &err), -1);
    assert_non_null(strstr(sb_str(&err), "more than the 2 result(s)"));
    assert_null(out[0].reason);
    ipc_free(&r);

    /* A DSN that does not fit its status is replaced when encoding, never sent as is. */
    struct delivery_result odd = {DELIVERY_BOUNCE, "2.0.0", "x"};

    delivery_results_encode(&odd, 1, &r);
    assert_int_equal(delivery_results_decode(&r, out, 1, &err), 0);
    assert_int_equal(out[0].status, DELIVERY_BOUNCE);
    assert_string_equal(out[0].dsn, "5.0.0");
    delivery_results_free(out, 1);
    ipc_free(&r);
    sb_free(&err);
    assert_string_equal(delivery_status_name(DELIVERY_DEFER), "defer");
}

/* result_fails - a one-result record with these values is refused; err mentions want */
static void result_fails(const char *status, const char *dsn, const char *reason, const char *want)
{
    struct delivery_result out[1];
    struct strbuf err = STRBUF_INIT;
    struct ipc_record r;

    ipc_init(&r, "result");
    ipc_put(&r, "status", status);
    ipc_put(&r, "dsn", dsn);
    if (reason)
        ipc_put(&r, "reason", reason);
    assert_int_equal(delivery_results_decode(&r, out, 1, &err), -1);
    if (strstr(sb_str(&err), want) == NULL)
        fail_msg("%s/%s: error \"%s\" does not mention \"%s\"", status, dsn, sb_str(&err), want);
    assert_null(out[0].reason);
    ipc_free(&r);
    sb_free(&err);
}

/* test_results_malformed - status names, DSN syntax and class, order, lengths */
static void test_results_malformed(void **state)
{
    const char *bad_dsn[] = {"2.0", "2.0.0.0", "2.1234.0", "2.0.1234", "x.0.0", "2..0", "25.0.0",
                             "2.0.", ".0.0", "2.0.0 ", "2,0,0", ""};
    char    longtext[1100];
    struct delivery_result out[2];
    struct strbuf err = STRBUF_INIT;
    struct ipc_record r;

    (void) state;
    for (size_t i = 0; i < sizeof(bad_dsn) / sizeof(bad_dsn[0]); i++)
        result_fails("ok", bad_dsn[i], "r", "bad dsn");
    result_fails("ok", "5.1.1", "r", "does not go with status ok");
    result_fails("defer", "2.0.0", "r", "does not go with status defer");
    result_fails("bounce", "4.0.0", "r", "does not go with status bounce");
    result_fails("OK", "2.0.0", "r", "unknown status");
    result_fails("sent", "2.0.0", "r", "unknown status");
    result_fails("ok", "2.0.0", NULL, "0 complete result(s) for 1");
    memset(longtext, 'y', sizeof(longtext) - 1);
    longtext[sizeof(longtext) - 1] = '\0';
    result_fails("ok", "2.0.0", longtext, "bad reason");
    result_fails("ok", "2.0.0", "a\tb", "bad reason");

    ipc_init(&r, "result");
    ipc_put(&r, "dsn", "2.0.0");
    ipc_put(&r, "status", "ok");
    ipc_put(&r, "reason", "");
    assert_int_equal(delivery_results_decode(&r, out, 1, &err), -1);
    assert_non_null(strstr(sb_str(&err), "expected status, got \"dsn\""));
    ipc_free(&r);

    ipc_init(&r, "deliver");
    assert_int_equal(delivery_results_decode(&r, out, 1, &err), -1);
    assert_non_null(strstr(sb_str(&err), "not a result record"));
    ipc_free(&r);

    /* A first good result is released when the second is bad. */
    ipc_init(&r, "result");
    ipc_put(&r, "status", "ok");
    ipc_put(&r, "dsn", "2.0.0");
    ipc_put(&r, "reason", "fine");
    ipc_put(&r, "status", "maybe");
    assert_int_equal(delivery_results_decode(&r, out, 2, &err), -1);
    assert_non_null(strstr(sb_str(&err), "result 2: unknown status"));
    assert_null(out[0].reason);
    ipc_free(&r);

    /* The longest valid forms pass. */
    ipc_init(&r, "result");
    ipc_put(&r, "status", "defer");
    ipc_put(&r, "dsn", "4.999.999");
    ipc_put(&r, "reason", "");
    assert_int_equal(delivery_results_decode(&r, out, 1, &err), 0);
    assert_string_equal(out[0].dsn, "4.999.999");
    assert_string_equal(out[0].reason, "");
    delivery_results_free(out, 1);
    ipc_free(&r);
    sb_free(&err);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_request_round_trip),
        cmocka_unit_test(test_request_header_order_free),
        cmocka_unit_test(test_request_nexthop),
        cmocka_unit_test(test_request_malformed),
        cmocka_unit_test(test_request_too_many),
        cmocka_unit_test(test_results_round_trip),
        cmocka_unit_test(test_results_malformed),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
