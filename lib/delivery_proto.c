/*
 * delivery_proto - the records qmgr and a delivery agent exchange (see
 * delivery_proto.h for the attributes and their order).
 *
 * Interface: delivery_request_encode(), delivery_request_decode(),
 * delivery_request_free(), delivery_results_encode(),
 * delivery_results_decode(), delivery_results_free(), delivery_status_name().
 *
 * Both sides decode strictly, as network input: the record type, every
 * attribute name, each header attribute exactly once and before the first
 * recipient, "rcpt_index" right after its "rcpt", numbers in range, the
 * recipient count (1..DELIVERY_MAX_RCPT, and for results exactly what was
 * asked), status names, and DSN codes of the form C.S.D (C one digit that
 * agrees with the status: 2 ok, 4 defer, 5 bounce; S and D one to three
 * digits). Addresses and reasons are bounded and may not hold control
 * characters. Several recipients may share a queue file index (qmgr expands
 * aliases: each destination reports on the original recipient's record).
 *
 * Encoding never fails: a reason is cleaned (control characters become
 * spaces) and cut to DELIVERY_REASON_MAX; an address the ipc layer refuses
 * (it came from a validated queue file, so that is a bug upstream) is logged
 * and left out, which the receiver then rejects as a malformed record.
 *
 * Diagnostics: decode errors go into err as "what is wrong" texts suitable
 * for a warning log line.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "delivery_proto.h"
#include "ipc.h"
#include "log.h"
#include "mem.h"
#include "queue_file.h"
#include "strbuf.h"

#define DELIVERY_ADDRESS_MAX    4096    /* generous: aliases may be long, SMTP paths are 256 */
#define DELIVERY_REASON_MAX     1024
#define DELIVERY_ARRIVAL_MAX    ((long long) 1 << 40)   /* seconds: far beyond any real clock */

static const char *status_names[] = {
    [DELIVERY_OK] = "ok",
    [DELIVERY_DEFER] = "defer",
    [DELIVERY_BOUNCE] = "bounce",
    [DELIVERY_RETRY] = "retry",
};

/* delivery_status_name - "ok", "defer", "bounce", "retry" */
const char *delivery_status_name(enum delivery_status status)
{
    if ((unsigned) status >= sizeof(status_names) / sizeof(status_names[0]))
        return "unknown";
    return status_names[status];
}

/* put_checked - append one attribute; a refusal is a bug upstream, logged */
static void put_checked(struct ipc_record *r, const char *name, const char *value)
{
    if (ipc_put(r, name, value) != 0)
        msg_warn("delivery_proto: attribute %s refused by the record format (length %zu); left out",
                 name, strlen(value));
}

/* delivery_request_encode - a "deliver" record for req; r is initialized here (free it with ipc_free) */
void delivery_request_encode(const struct delivery_request *req, struct ipc_record *r)
{
    ipc_init(r, "deliver");
    put_checked(r, "queue_id", req->queue_id);
    put_checked(r, "sender", req->sender ? req->sender : "");
    ipc_put_int(r, "arrival", req->arrival);
    ipc_put_int(r, "offset", (long long) req->offset);
    ipc_put_int(r, "length", (long long) req->length);
    if (req->nexthop)
        put_checked(r, "nexthop", req->nexthop);
    for (size_t i = 0; i < req->nrcpt; i++) {
        put_checked(r, "rcpt", req->rcpts[i].address);
        ipc_put_int(r, "rcpt_index", (long long) req->rcpts[i].index);
        if (req->rcpts[i].orcpt)
            put_checked(r, "orcpt", req->rcpts[i].orcpt);
    }
}

/* text_ok - bounded, no control characters (8-bit is allowed: SMTPUTF8) */
static bool text_ok(const struct strbuf *value, size_t max)
{
    const unsigned char *p = (const unsigned char *) sb_str(value);

    if (sb_len(value) > max)
        return false;
    for (size_t i = 0; i < sb_len(value); i++)
        if (p[i] < 0x20 || p[i] == 0x7f)
            return false;
    return true;
}

/* parse_number - all digits, in [0, max] */
static bool parse_number(const struct strbuf *value, long long max, long long *out)
{
    const char *s = sb_str(value);
    long long n = 0;

    if (sb_len(value) == 0 || sb_len(value) > 19)
        return false;
    for (size_t i = 0; i < sb_len(value); i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
        if (n > (max - (s[i] - '0')) / 10)
            return false;
        n = n * 10 + (s[i] - '0');
    }
    *out = n;
    return true;
}

/* Header attributes of a request, each expected exactly once. */
enum req_attr { REQ_QUEUE_ID, REQ_SENDER, REQ_ARRIVAL, REQ_OFFSET, REQ_LENGTH, REQ_NEXTHOP, REQ_NATTR };
static const char *req_attr_names[REQ_NATTR] = {"queue_id", "sender", "arrival", "offset", "length",
                                                 "nexthop"};
#define REQ_FIRST_OPTIONAL REQ_NEXTHOP
#define DELIVERY_NEXTHOP_MAX 1024

/* req_header - one header attribute into req; -1 with err */
static int req_header(enum req_attr a, const struct strbuf *value, struct delivery_request *req,
                      struct strbuf *err)
{
    long long n;

    switch (a) {
    case REQ_QUEUE_ID:
        if (sb_len(value) != QUEUE_ID_LEN || !queue_id_valid(sb_str(value))) {
            sb_printf(err, "bad queue_id \"%.40s\"", sb_str(value));
            return -1;
        }
        memcpy(req->queue_id, sb_str(value), QUEUE_ID_LEN + 1);
        return 0;
    case REQ_SENDER:
        if (!text_ok(value, DELIVERY_ADDRESS_MAX)) {
            sb_printf(err, "bad sender (control characters or longer than %d bytes)", DELIVERY_ADDRESS_MAX);
            return -1;
        }
        req->sender = xstrdup(sb_str(value));
        return 0;
    case REQ_ARRIVAL:
        if (!parse_number(value, DELIVERY_ARRIVAL_MAX, &n)) {
            sb_printf(err, "bad arrival \"%.40s\"", sb_str(value));
            return -1;
        }
        req->arrival = n;
        return 0;
    case REQ_OFFSET:
    case REQ_LENGTH:
        if (!parse_number(value, INT64_MAX, &n)) {
            sb_printf(err, "bad %s \"%.40s\"", req_attr_names[a], sb_str(value));
            return -1;
        }
        if (a == REQ_OFFSET)
            req->offset = (uint64_t) n;
        else
            req->length = (uint64_t) n;
        return 0;
    case REQ_NEXTHOP:
        if (sb_len(value) == 0 || !text_ok(value, DELIVERY_NEXTHOP_MAX)) {
            sb_printf(err, "bad nexthop (empty, control characters or longer than %d bytes)",
                      DELIVERY_NEXTHOP_MAX);
            return -1;
        }
        req->nexthop = xstrdup(sb_str(value));
        return 0;
    case REQ_NATTR:
        break;
    }
    msg_panic("req_header: attribute %d", (int) a);
}

/* add_rcpt - a new recipient slot at the end of req */
static struct delivery_rcpt *add_rcpt(struct delivery_request *req, size_t *alloc)
{
    if (req->nrcpt == *alloc) {
        *alloc = *alloc ? *alloc * 2 : 8;
        req->rcpts = xreallocarray(req->rcpts, *alloc, sizeof(*req->rcpts));
    }
    memset(&req->rcpts[req->nrcpt], 0, sizeof(req->rcpts[0]));
    return &req->rcpts[req->nrcpt++];
}

/* decode_rcpts - the recipient part, from pos on; -1 with err */
static int decode_rcpts(const struct ipc_record *r, size_t pos, struct delivery_request *req,
                        struct strbuf *name, struct strbuf *value, struct strbuf *err)
{
    size_t  alloc = 0;
    enum { WANT_RCPT, WANT_INDEX, AFTER_INDEX, AFTER_ORCPT } state = WANT_RCPT;
    struct delivery_rcpt *cur = NULL;
    long long n;

    while (ipc_next(r, &pos, name, value)) {
        const char *nm = sb_str(name);

        if (strcmp(nm, "rcpt") == 0 && state != WANT_INDEX) {
            if (req->nrcpt >= DELIVERY_MAX_RCPT) {
                sb_printf(err, "more than %d recipients", DELIVERY_MAX_RCPT);
                return -1;
            }
            if (sb_len(value) == 0 || !text_ok(value, DELIVERY_ADDRESS_MAX)) {
                sb_printf(err, "recipient %zu: bad address (empty, control characters or too long)",
                          req->nrcpt + 1);
                return -1;
            }
            cur = add_rcpt(req, &alloc);
            cur->address = xstrdup(sb_str(value));
            state = WANT_INDEX;
        } else if (strcmp(nm, "rcpt_index") == 0 && state == WANT_INDEX) {
            /* A queue file cannot list more recipients than its envelope has bytes. */
            if (!parse_number(value, QUEUE_ENVELOPE_MAX - 1, &n)) {
                sb_printf(err, "recipient %zu: bad rcpt_index \"%.40s\"", req->nrcpt, sb_str(value));
                return -1;
            }
            cur->index = (size_t) n;
            state = AFTER_INDEX;
        } else if (strcmp(nm, "orcpt") == 0 && state == AFTER_INDEX) {
            if (!text_ok(value, DELIVERY_ADDRESS_MAX)) {
                sb_printf(err, "recipient %zu: bad orcpt", req->nrcpt);
                return -1;
            }
            cur->orcpt = xstrdup(sb_str(value));
            state = AFTER_ORCPT;
        } else {
            sb_printf(err, "unexpected attribute \"%.40s\"%s", nm,
                      state == WANT_INDEX ? " (rcpt_index must follow rcpt)" : "");
            return -1;
        }
    }
    if (state == WANT_INDEX) {
        sb_printf(err, "recipient %zu: rcpt_index missing", req->nrcpt);
        return -1;
    }
    if (req->nrcpt == 0) {
        sb_set(err, "no recipients");
        return -1;
    }
    return 0;
}

/* delivery_request_decode - validate a "deliver" record into req; -1 with err (req then holds nothing) */
int delivery_request_decode(const struct ipc_record *r, struct delivery_request *req, struct strbuf *err)
{
    struct strbuf name = STRBUF_INIT;
    struct strbuf value = STRBUF_INIT;
    bool    seen[REQ_NATTR] = {false};
    size_t  pos = 0;
    size_t  rcpt_pos;
    int     a;
    int     ret = -1;

    memset(req, 0, sizeof(*req));
    if (!ipc_next(r, &pos, &name, &value) || strcmp(sb_str(&name), "type") != 0
        || strcmp(sb_str(&value), "deliver") != 0) {
        sb_printf(err, "not a deliver request (type \"%.40s\")", ipc_type(r));
        goto out;
    }
    for (;;) {
        rcpt_pos = pos;
        if (!ipc_next(r, &pos, &name, &value))
            break;
        if (strcmp(sb_str(&name), "rcpt") == 0)
            break;
        for (a = 0; a < REQ_NATTR && strcmp(sb_str(&name), req_attr_names[a]) != 0; a++)
            continue;
        if (a == REQ_NATTR) {
            sb_printf(err, "unexpected attribute \"%.40s\" before the recipients", sb_str(&name));
            goto out;
        }
        if (seen[a]) {
            sb_printf(err, "attribute %s given twice", req_attr_names[a]);
            goto out;
        }
        seen[a] = true;
        if (req_header((enum req_attr) a, &value, req, err) != 0)
            goto out;
    }
    for (a = 0; a < REQ_FIRST_OPTIONAL; a++) {
        if (!seen[a]) {
            sb_printf(err, "attribute %s missing", req_attr_names[a]);
            goto out;
        }
    }
    if (req->length > (uint64_t) INT64_MAX - req->offset) {
        sb_set(err, "offset + length overflows");
        goto out;
    }
    if (decode_rcpts(r, rcpt_pos, req, &name, &value, err) != 0)
        goto out;
    ret = 0;
out:
    if (ret != 0)
        delivery_request_free(req);
    sb_free(&name);
    sb_free(&value);
    return ret;
}

/* delivery_request_free - release what decode allocated; req is emptied */
void delivery_request_free(struct delivery_request *req)
{
    for (size_t i = 0; i < req->nrcpt; i++) {
        free(req->rcpts[i].address);
        free(req->rcpts[i].orcpt);
    }
    free(req->rcpts);
    free(req->sender);
    free(req->nexthop);
    memset(req, 0, sizeof(*req));
}

/* dsn_valid - C.S.D: one digit, one to three, one to three */
static bool dsn_valid(const char *dsn, size_t len)
{
    size_t  i = 0;

    if (len < 5 || dsn[0] < '0' || dsn[0] > '9' || dsn[1] != '.')
        return false;
    i = 2;
    for (int part = 0; part < 2; part++) {
        size_t  start = i;

        while (i < len && dsn[i] >= '0' && dsn[i] <= '9' && i - start < 3)
            i++;
        if (i == start)
            return false;
        if (part == 0) {
            if (i >= len || dsn[i] != '.')
                return false;
            i++;
        }
    }
    return i == len;
}

/* dsn_class - the class digit that goes with a status */
static char dsn_class(enum delivery_status status)
{
    switch (status) {
    case DELIVERY_OK:
        return '2';
    case DELIVERY_DEFER:
    case DELIVERY_RETRY:
        return '4';
    case DELIVERY_BOUNCE:
        return '5';
    }
    return '?';
}

/* delivery_results_encode - a "result" record for n results; r is initialized here */
void delivery_results_encode(const struct delivery_result *res, size_t n, struct ipc_record *r)
{
    struct strbuf reason = STRBUF_INIT;

    ipc_init(r, "result");
    for (size_t i = 0; i < n; i++) {
        const char *dsn = res[i].dsn;
        const char *text = res[i].reason ? res[i].reason : "";
        size_t  len = strlen(text);

        /* A result we cannot encode faithfully still has to keep the record valid. */
        if (!dsn_valid(dsn, strnlen(dsn, sizeof(res[i].dsn))) || dsn[0] != dsn_class(res[i].status)) {
            msg_warn("delivery_proto: result %zu: DSN \"%.15s\" does not fit status %s; sending %c.0.0",
                     i, dsn, delivery_status_name(res[i].status), dsn_class(res[i].status));
            dsn = res[i].status == DELIVERY_OK ? "2.0.0" : res[i].status == DELIVERY_BOUNCE ? "5.0.0" : "4.0.0";
        }
        sb_reset(&reason);
        if (len > DELIVERY_REASON_MAX)
            len = DELIVERY_REASON_MAX;
        for (size_t j = 0; j < len; j++) {
            unsigned char c = (unsigned char) text[j];

            sb_putc(&reason, c < 0x20 || c == 0x7f ? ' ' : c);
        }
        put_checked(r, "status", delivery_status_name(res[i].status));
        put_checked(r, "dsn", dsn);
        put_checked(r, "reason", sb_str(&reason));
    }
    sb_free(&reason);
}

/* parse_status - a status name; false if unknown */
static bool parse_status(const char *name, enum delivery_status *status)
{
    for (size_t i = 0; i < sizeof(status_names) / sizeof(status_names[0]); i++) {
        if (strcmp(name, status_names[i]) == 0) {
            *status = (enum delivery_status) i;
            return true;
        }
    }
    return false;
}

/* delivery_results_decode - exactly n results expected; -1 with err otherwise (res then holds nothing) */
int delivery_results_decode(const struct ipc_record *r, struct delivery_result *res, size_t n, struct strbuf *err)
{
    static const char *order[3] = {"status", "dsn", "reason"};
    struct strbuf name = STRBUF_INIT;
    struct strbuf value = STRBUF_INIT;
    size_t  pos = 0;
    size_t  count = 0;                  /* attributes after the type */
    int     ret = -1;

    memset(res, 0, n * sizeof(*res));
    if (!ipc_next(r, &pos, &name, &value) || strcmp(sb_str(&name), "type") != 0
        || strcmp(sb_str(&value), "result") != 0) {
        sb_printf(err, "not a result record (type \"%.40s\")", ipc_type(r));
        goto out;
    }
    while (ipc_next(r, &pos, &name, &value)) {
        size_t  i = count / 3;
        int     k = (int) (count % 3);

        if (i >= n) {
            sb_printf(err, "more than the %zu result(s) expected", n);
            goto out;
        }
        if (strcmp(sb_str(&name), order[k]) != 0) {
            sb_printf(err, "result %zu: expected %s, got \"%.40s\"", i + 1, order[k], sb_str(&name));
            goto out;
        }
        if (k == 0 && !parse_status(sb_str(&value), &res[i].status)) {
            sb_printf(err, "result %zu: unknown status \"%.40s\"", i + 1, sb_str(&value));
            goto out;
        }
        if (k == 1) {
            if (sb_len(&value) >= sizeof(res[i].dsn) || !dsn_valid(sb_str(&value), sb_len(&value))) {
                sb_printf(err, "result %zu: bad dsn \"%.40s\"", i + 1, sb_str(&value));
                goto out;
            }
            if (sb_str(&value)[0] != dsn_class(res[i].status)) {
                sb_printf(err, "result %zu: dsn %s does not go with status %s", i + 1, sb_str(&value),
                          delivery_status_name(res[i].status));
                goto out;
            }
            memcpy(res[i].dsn, sb_str(&value), sb_len(&value) + 1);
        }
        if (k == 2) {
            if (!text_ok(&value, DELIVERY_REASON_MAX)) {
                sb_printf(err, "result %zu: bad reason (control characters or longer than %d bytes)",
                          i + 1, DELIVERY_REASON_MAX);
                goto out;
            }
            res[i].reason = xstrdup(sb_str(&value));
        }
        count++;
    }
    if (count != n * 3) {
        sb_printf(err, "%zu complete result(s) for %zu recipient(s)", count / 3, n);
        goto out;
    }
    ret = 0;
out:
    if (ret != 0)
        delivery_results_free(res, n);
    sb_free(&name);
    sb_free(&value);
    return ret;
}

/* delivery_results_free - release the reasons; the array itself is the caller's */
void delivery_results_free(struct delivery_result *res, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(res[i].reason);
        res[i].reason = NULL;
    }
}
