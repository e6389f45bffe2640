/*
 * virtual - the Maildir delivery agent: what its two files share.
 *
 * virtual.c: main program and the connections from qmgr (one ipc record at
 * a time, handled synchronously: the disk I/O blocks anyway).
 * virtual_deliver.c: delivery of one request, one Maildir file per recipient.
 */
#ifndef POSTERN_VIRTUAL_H
#define POSTERN_VIRTUAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "delivery_proto.h"
#include "directory.h"
#include "service.h"

struct virtual_conn;

struct virtual_server {
    struct service *svc;
    struct directory *dir;              /* virtual_mailbox_maps and friends, opened before the drop */
    int     base_fd;                    /* virtual_mailbox_base (the cwd after the drop) */
    struct virtual_conn *conns;         /* open connections from qmgr */
    unsigned nconns;
    bool    quota_status;               /* master.cf service "quota-status": a policy service */
};

/*
 * virtual_deliver - deliver req's message (in msg_fd, already checked to lie
 * inside the file) to every recipient; res[i] gets recipient i's result
 * (reasons allocated: delivery_results_free). Logs one line per recipient.
 */
void virtual_deliver(struct virtual_server *vs, const struct delivery_request *req, int msg_fd,
                     struct delivery_result *res);
/* virtual_quota.c: virtual_mailbox_limit_maps and Maildir++ maildirsize */
struct config;
struct mstore;
void virtual_quota_init(struct service *svc, struct config *cfg);
/* virtual_quota_close - at exit: close virtual_mailbox_limit_maps */
void virtual_quota_close(void);
/* virtual_quota_check - room for size bytes in the Maildir at path? false: res is set */
bool virtual_quota_check(struct virtual_server *vs, const struct delivery_request *req, const char *rcpt,
                         const char *path, uint64_t size, struct mstore **store_out,
                         struct delivery_result *res);
void virtual_quota_delivered(struct mstore *st, uint64_t size, bool stored);
/* virtual_quota_state - limit and usage of rcpt's mailbox (MAP_FOUND: limited) */
enum map_status virtual_quota_state(struct virtual_server *vs, const char *rcpt, uint64_t *limit,
                                    uint64_t *used);

/* virtual_policy.c: the "quota-status" policy service (virtual under that service name) */
void virtual_policy_accept(struct virtual_server *vs, int fd);
void virtual_policy_stop(void);
unsigned virtual_policy_clients(void);

/* virtual_result - fill a result (reason formatted, allocated) */
void virtual_result(struct delivery_result *res, enum delivery_status status, const char *dsn,
                    const char *fmt, ...) __attribute__((format(printf, 4, 5)));
/* virtual_log_result - the per-recipient log line, with the delay since arrival */
void virtual_log_result(const struct delivery_request *req, size_t i, const struct delivery_result *res);

#endif
