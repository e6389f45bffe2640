/*
 * sendmail_drop - one message into the queue's maildrop/ directory.
 *
 * Interface (sendmail.h): drop_message().
 *
 * Runs as the submitting user, with no privilege: maildrop/ is mode 1733
 * (see lib/maildrop.h), so the file is created there as maildrop/tmp.NAME
 * (O_EXCL, mode 0644: the pickup step, running as mail_owner, must read it;
 * nobody else can, since the directory cannot be listed and NAME is 80
 * random bits), written, fsynced, and renamed to maildrop/NAME. The
 * directory itself cannot be opened for reading, so it is not fsynced: the
 * rename is as durable as the file system makes it (Postfix's postdrop
 * does the same). A failure removes the temporary file and is EX_TEMPFAIL:
 * the caller (cron, a script) keeps the message.
 *
 * Afterwards qmgr is nudged ("type=pickup" on private/qmgr); only the mail
 * owner and root can reach that socket, and a failed nudge is silent since
 * qmgr scans maildrop/ every few seconds anyway.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sysexits.h>
#include <unistd.h>

#include "ipc.h"
#include "maildrop.h"
#include "strbuf.h"
#include "strlist.h"

#include "sendmail.h"

#define QMGR_NUDGE_MS 200

/* write_all - the whole buffer, or -1 */
static int write_all(int fd, const char *data, size_t len)
{
    while (len > 0) {
        ssize_t n = write(fd, data, len);

        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return -1;
        data += n;
        len -= (size_t) n;
    }
    return 0;
}

/* nudge_qmgr - best effort: tell qmgr to look at maildrop/ now */
static void nudge_qmgr(const struct sendmail *sm)
{
    struct strbuf path = STRBUF_INIT, err = STRBUF_INIT;
    struct ipc_record rec;
    int     fd;

    sb_printf(&path, "%s/private/qmgr", sm->queue_dir);
    fd = ipc_connect(sb_str(&path), QMGR_NUDGE_MS, &err);
    if (fd >= 0) {
        ipc_init(&rec, "pickup");
        (void) ipc_send(fd, &rec, -1, QMGR_NUDGE_MS, &err);
        ipc_free(&rec);
        close(fd);
    }
    sb_free(&path);
    sb_free(&err);
}

/* drop_message - the maildrop file for one message */
int drop_message(const struct sendmail *sm, const char *sender, const char *fullname,
                 const struct strlist *rcpts, const struct strbuf *msg, char *name_out, size_t name_size)
{
    struct strbuf dir = STRBUF_INIT, env = STRBUF_INIT;
    char    name[MAILDROP_NAME_LEN + 1], tmp[sizeof(MAILDROP_TMP_PREFIX) + MAILDROP_NAME_LEN];
    int     dfd = -1, fd = -1, rc = EX_TEMPFAIL;

    sb_printf(&dir, "%s/maildrop", sm->queue_dir);
    /* O_PATH: the directory is writable and searchable for us, not readable. */
    dfd = open(sb_str(&dir), O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0) {
        fprintf(stderr, "sendmail: fatal: cannot open %s: %s\n", sb_str(&dir), strerror(errno));
        goto out;
    }
    for (int tries = 0; fd < 0 && tries < 10; tries++) {
        maildrop_name_new(name);
        snprintf(tmp, sizeof(tmp), "%s%s", MAILDROP_TMP_PREFIX, name);
        fd = openat(dfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
        if (fd < 0 && errno != EEXIST)
            break;
    }
    if (fd < 0) {
        fprintf(stderr, "sendmail: fatal: cannot create a file in %s: %s\n", sb_str(&dir), strerror(errno));
        goto out;
    }
    (void) fchmod(fd, 0644);            /* whatever our umask is: the pickup step must read it */
    maildrop_format_envelope(&env, sender, fullname, rcpts->items, rcpts->count);
    if (write_all(fd, sb_str(&env), sb_len(&env)) != 0 || write_all(fd, sb_str(msg), sb_len(msg)) != 0
        || fsync(fd) != 0) {
        fprintf(stderr, "sendmail: fatal: cannot write %s/%s: %s\n", sb_str(&dir), tmp, strerror(errno));
        (void) unlinkat(dfd, tmp, 0);
        goto out;
    }
    if (close(fd) != 0 || renameat(dfd, tmp, dfd, name) != 0) {
        fd = -1;
        fprintf(stderr, "sendmail: fatal: cannot commit %s/%s: %s\n", sb_str(&dir), tmp, strerror(errno));
        (void) unlinkat(dfd, tmp, 0);
        goto out;
    }
    fd = -1;
    snprintf(name_out, name_size, "%s", name);
    nudge_qmgr(sm);
    rc = 0;
out:
    if (fd >= 0)
        close(fd);
    if (dfd >= 0)
        close(dfd);
    sb_free(&dir);
    sb_free(&env);
    return rc;
}
