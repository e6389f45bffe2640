/*
 * virtual_deliver - Maildir delivery of one request from qmgr.
 *
 * Interface (virtual.h): virtual_deliver(), virtual_result(),
 * virtual_log_result().
 *
 * For each recipient: virtual_mailbox_maps gives the Maildir path relative
 * to virtual_mailbox_base (qmgr checked the recipient too, but the table may
 * have changed since: not found is a bounce, 5.1.1). The path is checked
 * (lib/maildir.c: no absolute path, no "..", no control characters) and
 * opened beneath the base without following any symlink, the Maildir made
 * if missing, and the message written as
 *     Return-Path: <SENDER>
 *     Delivered-To: RECIPIENT
 *     MESSAGE (as stored in the queue file)
 * to tmp/, fsynced, linked into new/, new/ fsynced. Each recipient gets its
 * own file (its own Delivered-To), even when several share a Maildir.
 *
 * Failures never lose or misdeliver mail: a bad path in the table is a
 * configuration error, so the recipient is deferred ("4.3.5") and a warning
 * logged (a path into another user's Maildir, say "example.test/bob/new/",
 * likewise); a symlink in the way is deferred with a warning (someone may be
 * trying to reach another user's files); full disk, quota and I/O errors
 * are deferred as 4.3.0, other mailbox errors as 4.2.0. Only "unknown user"
 * bounces, and a full mailbox with virtual_overquota_bounce (virtual_quota.c:
 * 4.2.2 deferred by default, else 5.2.2).
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "delivery_proto.h"
#include "directory.h"
#include "log.h"
#include "maildir.h"
#include "map.h"
#include "mem.h"
#include "strbuf.h"

#include "virtual.h"

/* virtual_result - fill a result (reason formatted, allocated) */
void virtual_result(struct delivery_result *res, enum delivery_status status, const char *dsn,
                    const char *fmt, ...)
{
    struct strbuf reason = STRBUF_INIT;
    va_list ap;

    va_start(ap, fmt);
    sb_vprintf(&reason, fmt, ap);
    va_end(ap);
    free(res->reason);
    res->status = status;
    snprintf(res->dsn, sizeof(res->dsn), "%s", dsn);
    res->reason = sb_detach(&reason);
}

/* virtual_log_result - "ID: to=<rcpt>, relay=virtual, delay=S.SS, dsn=X.Y.Z, status=... (reason)" */
void virtual_log_result(const struct delivery_request *req, size_t i, const struct delivery_result *res)
{
    static const char *words[] = {
        [DELIVERY_OK] = "sent", [DELIVERY_DEFER] = "deferred", [DELIVERY_BOUNCE] = "bounced",
        [DELIVERY_RETRY] = "deferred",
    };
    struct timespec now;
    double  delay;

    clock_gettime(CLOCK_REALTIME, &now);
    delay = (double) now.tv_sec - (double) req->arrival + (double) now.tv_nsec / 1e9;
    if (delay < 0)
        delay = 0;                      /* the clock went back, or qmgr's arrival is odd */
    msg_info("%s: to=<%s>, relay=virtual, delay=%.2f, dsn=%s, status=%s (%s)", req->queue_id,
             req->rcpts[i].address, delay, res->dsn, words[res->status], res->reason ? res->reason : "");
}

/* store_dsn - the status code for an errno from storing: resources are 4.3.0, the mailbox 4.2.0 */
static const char *store_dsn(int errnum)
{
    switch (errnum) {
    case ENOSPC:
    case EDQUOT:
    case EIO:
        return "4.3.0";
    default:
        return "4.2.0";
    }
}

/* store - the message into the open Maildir; -1 with errno and err */
static int store(int maildir_fd, const struct delivery_request *req, const char *rcpt, int msg_fd,
                 struct strbuf *err)
{
    struct strbuf head = STRBUF_INIT;
    struct maildir_msg *m = maildir_msg_create(maildir_fd, err);
    int     ret = -1;

    if (m == NULL)
        return -1;
    sb_printf(&head, "Return-Path: <%s>\nDelivered-To: %s\n", req->sender ? req->sender : "", rcpt);
    if (maildir_msg_write(m, sb_str(&head), sb_len(&head), err) != 0
        || maildir_msg_copy(m, msg_fd, req->offset, req->length, err) != 0) {
        maildir_msg_abort(m);
        goto out;
    }
    ret = maildir_msg_commit(m, NULL, NULL, err);
out:
    sb_free(&head);
    return ret;
}

/* deliver_one - recipient i of req */
static void deliver_one(struct virtual_server *vs, const struct delivery_request *req, size_t i, int msg_fd,
                        struct delivery_result *res)
{
    const char *rcpt = req->rcpts[i].address;
    struct strbuf path = STRBUF_INIT;
    struct strbuf err = STRBUF_INIT;
    struct mstore *quota_store = NULL;
    uint64_t size;
    int     maildir_fd;

    enum map_status found = directory_mailbox(vs->dir, rcpt, &path);

    /* Never bounce on a table that was just replaced: look again, or let a fresh process decide. */
    if (found == MAP_NOTFOUND) {
        if (directory_refresh(vs->dir)) {
            service_retire(vs->svc, "a lookup table changed; a fresh process will deliver with it");
            virtual_result(res, DELIVERY_RETRY, "4.3.0", "lookup table changed; retrying with the new table");
            goto out;
        }
        found = directory_mailbox(vs->dir, rcpt, &path);
    }
    switch (found) {
    case MAP_FOUND:
        break;
    case MAP_NOTFOUND:
        virtual_result(res, DELIVERY_BOUNCE, "5.1.1", "unknown user: \"%s\"", rcpt);
        goto out;
    case MAP_TEMPFAIL:
    default:
        msg_warn("%s: to=<%s>: virtual_mailbox_maps lookup failed: %s", req->queue_id, rcpt, sb_str(&path));
        virtual_result(res, DELIVERY_DEFER, "4.3.0", "virtual_mailbox_maps lookup failed");
        goto out;
    }
    if (maildir_path_check(sb_str(&path), sb_len(&path), &err) != 0
        || strlen(sb_str(&path)) != sb_len(&path)) {
        if (sb_len(&err) == 0)
            sb_set(&err, "NUL byte in the mailbox path");
        msg_warn("%s: to=<%s>: bad mailbox path in virtual_mailbox_maps: %s; fix the table entry",
                 req->queue_id, rcpt, sb_str(&err));
        virtual_result(res, DELIVERY_DEFER, "4.3.5", "bad mailbox path in virtual_mailbox_maps");
        goto out;
    }
    maildir_fd = maildir_open(vs->base_fd, sb_str(&path), true, &err);
    if (maildir_fd < 0) {
        int     saved = errno;

        if (saved == ELOOP || saved == EXDEV) {
            msg_warn("%s: to=<%s>: maildir refused: %s", req->queue_id, rcpt, sb_str(&err));
            virtual_result(res, DELIVERY_DEFER, "4.2.0", "mailbox path contains a symbolic link; refused");
        } else if (saved == EINVAL) {
            msg_warn("%s: to=<%s>: bad mailbox path in virtual_mailbox_maps: %s; fix the table entry",
                     req->queue_id, rcpt, sb_str(&err));
            virtual_result(res, DELIVERY_DEFER, "4.3.5", "bad mailbox path in virtual_mailbox_maps");
        } else {
            msg_warn("%s: to=<%s>: cannot open maildir: %s", req->queue_id, rcpt, sb_str(&err));
            virtual_result(res, DELIVERY_DEFER, store_dsn(saved), "cannot create maildir: %s", strerror(saved));
        }
        goto out;
    }
    sb_reset(&err);
    /* The quota size is the size on disk: our two header lines and the queued message. */
    size = strlen("Return-Path: <>\nDelivered-To: \n") + (req->sender ? strlen(req->sender) : 0)
        + strlen(rcpt) + req->length;
    if (!virtual_quota_check(vs, req, rcpt, sb_str(&path), size, &quota_store, res)) {
        close(maildir_fd);
        goto out;
    }
    if (store(maildir_fd, req, rcpt, msg_fd, &err) != 0) {
        int     saved = errno;

        msg_warn("%s: to=<%s>: maildir %s: %s", req->queue_id, rcpt, sb_str(&path), sb_str(&err));
        virtual_result(res, DELIVERY_DEFER, store_dsn(saved), "cannot store message: %s", strerror(saved));
        virtual_quota_delivered(quota_store, size, false);
    } else {
        virtual_result(res, DELIVERY_OK, "2.0.0", "delivered to maildir");
        virtual_quota_delivered(quota_store, size, true);
    }
    close(maildir_fd);
out:
    sb_free(&path);
    sb_free(&err);
}

/* virtual_deliver - every recipient of req, one Maildir file each */
void virtual_deliver(struct virtual_server *vs, const struct delivery_request *req, int msg_fd,
                     struct delivery_result *res)
{
    for (size_t i = 0; i < req->nrcpt; i++) {
        deliver_one(vs, req, i, msg_fd, &res[i]);
        virtual_log_result(req, i, &res[i]);
    }
}
