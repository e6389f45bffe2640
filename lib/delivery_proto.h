/*
 * delivery_proto - what qmgr and a delivery agent (virtual now; smtp and
 * lmtp later) say to each other, as ipc records on the agent's socket.
 *
 *   qmgr -> agent   type=deliver, with the queue file's fd (read-only) passed:
 *                   queue_id, sender ("" = null sender), arrival, offset,
 *                   length (where the message is in the file), optional
 *                   nexthop (smtp/lmtp: "domain", "[host]:port", "host:port",
 *                   "unix:/path", "inet:host:port"; absent for virtual), then per
 *                   recipient in order: rcpt=ADDRESS, rcpt_index=N (the
 *                   recipient's index in the queue file), optional orcpt=
 *   agent -> qmgr   type=result, one per request, in the request's recipient
 *                   order: status=ok|defer|bounce|retry, dsn=X.Y.Z, reason=TEXT for
 *                   each recipient (three attributes each, in that order)
 *
 * One request per connection at a time (the smtp agent answers each
 * connection's requests in order, but holds many connections at once); the agent answers every request,
 * even a malformed one it can make sense of (all recipients deferred).
 */
#ifndef POSTERN_DELIVERY_PROTO_H
#define POSTERN_DELIVERY_PROTO_H

#include <stddef.h>
#include <stdint.h>
#include "ipc.h"
#include "queue_file.h"
#include "strbuf.h"

#define DELIVERY_MAX_RCPT 10000

/* retry: temporary, and worth trying again at once (the agent is being replaced: a table changed) */
enum delivery_status { DELIVERY_OK, DELIVERY_DEFER, DELIVERY_BOUNCE, DELIVERY_RETRY };

struct delivery_rcpt {
    char   *address;
    char   *orcpt;                      /* may be NULL */
    size_t  index;                      /* in the queue file */
};

struct delivery_request {
    char    queue_id[QUEUE_ID_LEN + 1];
    char   *sender;
    int64_t arrival;
    uint64_t offset;
    uint64_t length;
    char   *nexthop;                    /* NULL: none given */
    struct delivery_rcpt *rcpts;
    size_t  nrcpt;
};

struct delivery_result {
    enum delivery_status status;
    char    dsn[16];                    /* "2.0.0", "4.2.2", "5.1.1" */
    char   *reason;
};

void delivery_request_encode(const struct delivery_request *req, struct ipc_record *r);
int  delivery_request_decode(const struct ipc_record *r, struct delivery_request *req, struct strbuf *err);
void delivery_request_free(struct delivery_request *req);

void delivery_results_encode(const struct delivery_result *res, size_t n, struct ipc_record *r);
/* delivery_results_decode - exactly n results expected; -1 with err otherwise */
int  delivery_results_decode(const struct ipc_record *r, struct delivery_result *res, size_t n, struct strbuf *err);
void delivery_results_free(struct delivery_result *res, size_t n);
const char *delivery_status_name(enum delivery_status status);

#endif
