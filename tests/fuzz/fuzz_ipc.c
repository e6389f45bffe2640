/*
 * fuzz_ipc - lib/ipc.c and lib/delivery_proto.c: the one record format every
 * daemon pair speaks (smtpd -> qmgr notifications, qmgr <-> delivery agents),
 * read as a stream off a socket (length prefixes, records split anywhere),
 * each record's attributes walked, and decoded as a delivery request and as
 * delivery results. DESIGN: daemons trust nothing they read from each other.
 * A request that decodes must encode and decode again to the same values.
 */
#include <sys/socket.h>
#include <unistd.h>

#include "fuzz_util.h"
#include "delivery_proto.h"
#include "ipc.h"

/* one_record - everything a daemon may do with a record it was sent */
static void one_record(const struct ipc_record *r)
{
    struct strbuf name, value, err;
    struct delivery_request req, again;
    struct delivery_result res[3];
    struct ipc_record back;
    size_t  pos = 0;
    long long n;

    sb_init(&name);
    sb_init(&value);
    sb_init(&err);
    (void) ipc_type(r);
    while (ipc_next(r, &pos, &name, &value))
        /* void */ ;
    (void) ipc_get(r, "queue_id", &value);
    (void) ipc_get_int(r, "count", 0, 1000, &n);
    memset(&req, 0, sizeof(req));
    if (delivery_request_decode(r, &req, &err) == 0) {
        delivery_request_encode(&req, &back);      /* initializes back */
        memset(&again, 0, sizeof(again));
        if (delivery_request_decode(&back, &again, &err) != 0 || again.nrcpt != req.nrcpt
            || strcmp(again.sender, req.sender) != 0 || again.offset != req.offset)
            abort();                    /* what we accept we must be able to pass on */
        delivery_request_free(&again);
        ipc_free(&back);
        delivery_request_free(&req);
    }
    for (size_t k = 1; k <= 3; k++) {
        memset(res, 0, sizeof(res));
        if (delivery_results_decode(r, res, k, &err) == 0)
            delivery_results_free(res, k);
    }
    sb_free(&name);
    sb_free(&value);
    sb_free(&err);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct ipc_reader rd;
    struct ipc_record r;
    struct strbuf err;
    int     sv[2];
    int     fd;

    if (size > 65536)
        return 0;                       /* more than one socket buffer: not what this tests */
    sb_init(&err);
    /* the raw attribute parser alone */
    memset(&r, 0, sizeof(r));
    if (ipc_parse(&r, data, size, &err) == 0)
        one_record(&r);
    ipc_free(&r);
    /* the stream reader, as daemons read their peers */
    if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) != 0)
        abort();
    if (size > 0 && write(sv[1], data, size) != (ssize_t) size)
        abort();
    close(sv[1]);
    ipc_reader_init(&rd);
    for (int rounds = 0; rounds < 1000; rounds++) {
        int     got = ipc_reader_fill(&rd, sv[0], &err);
        int     next;

        while ((next = ipc_reader_next(&rd, &r, &fd, &err)) == 1) {
            one_record(&r);
            ipc_free(&r);
            if (fd >= 0)
                close(fd);
        }
        if (next < 0 || got <= 0)
            break;
    }
    ipc_reader_free(&rd);
    close(sv[0]);
    sb_free(&err);
    return 0;
}
