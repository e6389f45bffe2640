/*
 * virtual_quota - per-mailbox quota for the virtual agent.
 *
 * Interface (virtual.h): virtual_quota_init(), virtual_quota_check(),
 * virtual_quota_delivered().
 *
 * The limit comes from virtual_mailbox_limit_maps (the name of Postfix's
 * VDA patch): the recipient address, else "@domain", gives a size in bytes
 * (or with a unit: "500M", "1G"); no entry or 0 is no limit. postctl user
 * add --quota writes it there as well as into the passwd-file (whose
 * userdb_quota_rule imapd gets from authd): the agent runs as vmail and must
 * not read password hashes, and a map beside virtual_mailbox_maps is read
 * the same way and on the same tables (hash:, pgsql:, ...) as the mailbox
 * path itself.
 *
 * Usage is Maildir++ "maildirsize", kept by lib/mailstore_quota.c, the very
 * code imapd uses for GETQUOTAROOT and APPEND, so both count alike. A
 * message that would take the mailbox past its limit is deferred "4.2.2
 * mailbox full", or bounced "5.2.2" with virtual_overquota_bounce = yes;
 * after a delivery its size is appended to maildirsize.
 *
 * Diagnostics: a failed map lookup defers (4.3.0) with a warning; a bad
 * value in the map is a warning and counts as no limit (mail keeps flowing).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "directory.h"
#include "log.h"
#include "maildir.h"
#include "mailstore.h"
#include "map.h"
#include "service.h"
#include "strbuf.h"

#include "virtual.h"

static struct maplist *limit_maps;
static bool overquota_bounce;
static struct service *quota_svc;

/* virtual_quota_init - the table and the setting (before the privilege drop) */
void virtual_quota_init(struct service *svc, struct config *cfg)
{
    struct strbuf err = STRBUF_INIT;

    quota_svc = svc;

    limit_maps = maplist_open(config_str(cfg, "virtual_mailbox_limit_maps"), &err);
    if (limit_maps == NULL)
        msg_fatal("virtual_mailbox_limit_maps: %s", sb_str(&err));
    overquota_bounce = config_bool(cfg, "virtual_overquota_bounce");
    if (!maplist_empty(limit_maps))
        service_watch_maps(svc, limit_maps);
    sb_free(&err);
}

/* virtual_quota_close - at exit: close the table */
void virtual_quota_close(void)
{
    if (limit_maps != NULL)
        maplist_close(limit_maps);
    limit_maps = NULL;
}

/*
 * table_replaced - a lookup found nothing: if the table was replaced beyond
 * our reach (chroot), retire so that a fresh process answers with the new one.
 */
static void table_replaced(bool changed)
{
    if (changed && quota_svc != NULL && !quota_svc->stopping)
        service_retire(quota_svc, "a lookup table changed; a fresh process will use the new one");
}

/* quota_limit - the recipient's limit in bytes (0: none); MAP_TEMPFAIL on a table failure */
static enum map_status quota_limit(const char *rcpt, uint64_t *limit)
{
    struct strbuf value = STRBUF_INIT, key = STRBUF_INIT;
    const char *at = strrchr(rcpt, '@');
    enum map_status st;
    long long bytes;

    *limit = 0;
    if (limit_maps == NULL || maplist_empty(limit_maps))
        return MAP_NOTFOUND;
    st = maplist_lookup(limit_maps, rcpt, &value);
    if (st == MAP_NOTFOUND && at != NULL) {
        sb_set(&key, at);
        st = maplist_lookup(limit_maps, sb_str(&key), &value);
    }
    if (st == MAP_NOTFOUND)
        table_replaced(maplist_refresh(limit_maps));
    if (st == MAP_FOUND) {
        if (config_parse_size(sb_str(&value), &bytes) < 0 || bytes < 0) {
            msg_warn("virtual_mailbox_limit_maps: bad size \"%.40s\" for %s; no limit applied",
                     sb_str(&value), rcpt);
            bytes = 0;
        }
        *limit = (uint64_t) bytes;
    }
    sb_free(&value);
    sb_free(&key);
    return st;
}

/*
 * virtual_quota_check - may a message of size bytes go into the Maildir at
 * path? true: yes (*store_out is the open store to account it in, or NULL
 * without a limit); false: res says why not.
 */
bool virtual_quota_check(struct virtual_server *vs, const struct delivery_request *req, const char *rcpt,
                         const char *path, uint64_t size, struct mstore **store_out,
                         struct delivery_result *res)
{
    struct strbuf err = STRBUF_INIT;
    uint64_t limit, bytes = 0, count = 0, lim;
    struct mstore *st;
    bool    ok = true;

    *store_out = NULL;
    if (quota_limit(rcpt, &limit) == MAP_TEMPFAIL) {
        msg_warn("%s: to=<%s>: virtual_mailbox_limit_maps lookup failed", req->queue_id, rcpt);
        virtual_result(res, DELIVERY_DEFER, "4.3.0", "virtual_mailbox_limit_maps lookup failed");
        return false;
    }
    if (limit == 0)
        return true;
    st = mstore_open(vs->base_fd, path, limit, &err);
    if (st == NULL || mstore_quota(st, &bytes, &count, &lim, &err) != 0) {
        /* The delivery itself will meet the same problem and report it. */
        msg_warn("%s: to=<%s>: quota usage of %s: %s", req->queue_id, rcpt, path, sb_str(&err));
        mstore_close(st);
        sb_free(&err);
        return true;
    }
    if (bytes + size > limit) {
        if (overquota_bounce)
            virtual_result(res, DELIVERY_BOUNCE, "5.2.2", "mailbox full: quota exceeded (%llu + %llu > %llu bytes)",
                           (unsigned long long) bytes, (unsigned long long) size, (unsigned long long) limit);
        else
            virtual_result(res, DELIVERY_DEFER, "4.2.2", "mailbox full: quota exceeded (%llu + %llu > %llu bytes)",
                           (unsigned long long) bytes, (unsigned long long) size, (unsigned long long) limit);
        mstore_close(st);
        ok = false;
    } else {
        *store_out = st;
    }
    sb_free(&err);
    return ok;
}

/*
 * virtual_quota_state - for the quota-status policy: the limit and usage of
 * rcpt's mailbox. MAP_FOUND: a limited mailbox (both set); MAP_NOTFOUND: no
 * mailbox, no limit, or a path we will not open; MAP_TEMPFAIL: a table failed.
 */
enum map_status virtual_quota_state(struct virtual_server *vs, const char *rcpt, uint64_t *limit,
                                    uint64_t *used)
{
    struct strbuf path = STRBUF_INIT, err = STRBUF_INIT;
    uint64_t count, lim;
    struct mstore *st = NULL;
    enum map_status rc;

    *used = 0;
    rc = quota_limit(rcpt, limit);
    if (rc != MAP_FOUND || *limit == 0)
        goto out;
    rc = directory_mailbox(vs->dir, rcpt, &path);
    if (rc == MAP_NOTFOUND)
        table_replaced(directory_refresh(vs->dir));
    if (rc != MAP_FOUND)
        goto out;
    if (maildir_path_check(sb_str(&path), sb_len(&path), &err) != 0 || strlen(sb_str(&path)) != sb_len(&path)
        || (st = mstore_open(vs->base_fd, sb_str(&path), *limit, &err)) == NULL
        || mstore_quota(st, used, &count, &lim, &err) != 0) {
        msg_warn("quota-status: %s: %s", rcpt, sb_str(&err));
        rc = MAP_NOTFOUND;
    }
out:
    if (rc != MAP_FOUND)
        *limit = 0;
    mstore_close(st);
    sb_free(&path);
    sb_free(&err);
    return rc;
}

/* virtual_quota_delivered - account the stored message and close the store */
void virtual_quota_delivered(struct mstore *st, uint64_t size, bool stored)
{
    if (st == NULL)
        return;
    if (stored)
        mstore_quota_add(st, size);
    mstore_close(st);
}
