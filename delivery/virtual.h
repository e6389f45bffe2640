/*
 * virtual - the Maildir delivery agent: what its two files share.
 *
 * virtual.c: main program and the connections from qmgr (one ipc record at
 * a time, handled synchronously: the disk I/O blocks anyway).
 * virtual_deliver.c: delivery of one request, one Maildir file per recipient.
 */
#ifndef POSTERN_VIRTUAL_H
#define POSTERN_VIRTUAL_H

#include <stddef.h>

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
};

/*
 * virtual_deliver - deliver req's message (in msg_fd, already checked to lie
 * inside the file) to every recipient; res[i] gets recipient i's result
 * (reasons allocated: delivery_results_free). Logs one line per recipient.
 */
void virtual_deliver(struct virtual_server *vs, const struct delivery_request *req, int msg_fd,
                     struct delivery_result *res);
/* virtual_result - fill a result (reason formatted, allocated) */
void virtual_result(struct delivery_result *res, enum delivery_status status, const char *dsn,
                    const char *fmt, ...) __attribute__((format(printf, 4, 5)));
/* virtual_log_result - the per-recipient log line, with the delay since arrival */
void virtual_log_result(const struct delivery_request *req, size_t i, const struct delivery_result *res);

#endif
