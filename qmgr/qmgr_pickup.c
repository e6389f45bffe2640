/*
 * qmgr_pickup - the pickup step: maildrop/ files (sendmail) become queue files.
 *
 * Interface (qmgr.h): qmgr_pickup_init(), qmgr_pickup_start(),
 * qmgr_pickup_scan(), qmgr_pickup_stop().
 *
 * Any local user can write a file into maildrop/ (lib/maildrop.h), so each
 * one is hostile input: it must be a regular file with one link, at most
 * message_size_limit plus the envelope limit in size, and pass
 * maildrop_parse() (magic, bounded and printable envelope values, a sender
 * line, recipients, no NUL byte). A file that fails goes to corrupt/ as
 * "maildrop.NAME" with a warning naming its owner; it is never delivered.
 *
 * A good file becomes a queue file in incoming/ (lib/queue_file.h writer:
 * fsynced and renamed) with protocol "local" and, as Postfix's cleanup
 * does for local mail: addresses without a domain get "@$myorigin"
 * (append_at_myorigin), a Received: header names the file's owner uid
 * ("from userid N": the only identity we can trust), and Date:,
 * Message-ID: and From: are added when the message has none. Only then is
 * the maildrop file removed, so a crash in between repeats a message
 * rather than losing one. qmgr is told about the new queue file at once.
 *
 * When: every QMGR_SCAN_INCOMING_SECS, and at once when a sendmail nudges
 * ("type=pickup" on private/qmgr). At most PICKUP_BATCH files per turn, so
 * deliveries keep being served; "tmp." files older than QMGR_TMP_MAX_AGE
 * are a crashed sendmail's debris and are removed.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include "config.h"
#include "dsn.h"
#include "log.h"
#include "maildrop.h"
#include "mem.h"
#include "queue_file.h"
#include "service.h"
#include "strbuf.h"

#include "qmgr.h"

#define PICKUP_BATCH 64

static struct {
    char   *myorigin;
    char   *myhostname;
    char   *mail_name;
    bool    append_at_myorigin;
    unsigned long long size_limit;      /* 0: none */
    struct event *tick_ev;
    bool    stopping;
} pk;

/* qmgr_pickup_init - settings, read while still privileged */
void qmgr_pickup_init(struct config *cfg)
{
    pk.myorigin = xstrdup(config_str(cfg, "myorigin"));
    pk.myhostname = xstrdup(config_str(cfg, "myhostname"));
    pk.mail_name = xstrdup(config_str(cfg, "mail_name"));
    pk.append_at_myorigin = config_bool(cfg, "append_at_myorigin");
    pk.size_limit = (unsigned long long) config_size(cfg, "message_size_limit");
}

/* qualify - addr, with @myorigin when it has no domain (and is not the null sender) */
static char *qualify(const char *addr)
{
    struct strbuf out = STRBUF_INIT;

    sb_puts(&out, addr);
    if (*addr && strchr(addr, '@') == NULL && pk.append_at_myorigin && *pk.myorigin)
        sb_printf(&out, "@%s", pk.myorigin);
    return sb_detach(&out);
}

/* header_scan - which of Date/Message-ID/From exist; *body_sep: headers end with an empty line */
static void header_scan(const char *p, size_t len, bool *date, bool *msgid, bool *from, bool *need_sep)
{
    const char *end = p + len;
    bool    in_field = false;

    *date = *msgid = *from = false;
    *need_sep = len > 0;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t) (end - p));
        size_t  llen = nl ? (size_t) (nl - p) : (size_t) (end - p);
        const char *colon = memchr(p, ':', llen);
        bool    cont = llen > 0 && (*p == ' ' || *p == '\t');
        bool    field = !cont && colon != NULL && colon > p;

        for (const char *q = p; field && q < colon; q++)
            field = *q > ' ' && *q < 0x7f;
        if (llen == 0) {
            *need_sep = false;
            return;
        }
        if ((!cont && !field) || (cont && !in_field))
            return;                     /* a body without the empty line before it */
        if (field) {
            size_t  n = (size_t) (colon - p);

            in_field = true;
            *date |= n == 4 && strncasecmp(p, "date", 4) == 0;
            *msgid |= n == 10 && strncasecmp(p, "message-id", 10) == 0;
            *from |= n == 4 && strncasecmp(p, "from", 4) == 0;
        }
        p = nl ? nl + 1 : end;
    }
    *need_sep = false;                  /* headers only: nothing to separate */
}

/* phrase - fullname as an RFC 5322 phrase: quoted when it holds specials; "" if not ASCII */
static void phrase(struct strbuf *out, const char *name)
{
    bool    special = false;

    for (const char *p = name; *p; p++) {
        if ((unsigned char) *p >= 0x80)
            return;
        special |= strchr("()<>[]:;@\\,.\"", *p) != NULL;
    }
    if (!special) {
        sb_puts(out, name);
        return;
    }
    sb_putc(out, '"');
    for (const char *p = name; *p; p++) {
        if (*p == '"' || *p == '\\')
            sb_putc(out, '\\');
        sb_putc(out, *p);
    }
    sb_putc(out, '"');
}

/* added_headers - Received:, then whichever of Date/Message-ID/From the message lacks */
static void added_headers(struct strbuf *out, const struct maildrop *md, const char *sender,
                          const char *queue_id, uid_t uid, int64_t now)
{
    bool    date, msgid, from, need_sep;
    char    when[64];
    struct tm tm;
    time_t  t = (time_t) now;
    char    stamp[32];

    dsn_format_date(now, when);
    sb_printf(out, "Received: by %s (%s, from userid %lu)\n\tid %s; %s\n", pk.myhostname, pk.mail_name,
              (unsigned long) uid, queue_id, when);
    header_scan(md->body, md->body_len, &date, &msgid, &from, &need_sep);
    if (!date)
        sb_printf(out, "Date: %s\n", when);
    if (!msgid) {
        if (gmtime_r(&t, &tm) == NULL || strftime(stamp, sizeof(stamp), "%Y%m%d%H%M%S", &tm) == 0)
            snprintf(stamp, sizeof(stamp), "0");
        sb_printf(out, "Message-Id: <%s.%s@%s>\n", stamp, queue_id, pk.myhostname);
    }
    if (!from && *sender) {
        sb_puts(out, "From: ");
        if (md->fullname != NULL && *md->fullname) {
            size_t  before = sb_len(out);

            phrase(out, md->fullname);
            if (sb_len(out) > before)
                sb_printf(out, " <%s>\n", sender);
            else
                sb_printf(out, "%s\n", sender);
        } else {
            sb_printf(out, "%s\n", sender);
        }
    }
    if (need_sep)
        sb_putc(out, '\n');
}

/* make_queue_file - the queue file for a parsed maildrop file; -1 with err */
static int make_queue_file(const struct maildrop *md, uid_t uid, char id[QUEUE_ID_LEN + 1], struct strbuf *err)
{
    struct queue_envelope env;
    struct queue_writer *w;
    struct strbuf head = STRBUF_INIT;
    int64_t now = (int64_t) time(NULL);
    int     rc = -1;

    memset(&env, 0, sizeof(env));
    env.sender = qualify(md->sender);
    env.arrival = now;
    env.protocol = xstrdup("local");
    env.body_type = xstrdup(md->body_8bit ? "8BITMIME" : "7BIT");
    env.rcpts = xcalloc(md->nrcpt, sizeof(*env.rcpts));
    for (size_t i = 0; i < md->nrcpt; i++) {
        char   *a = qualify(md->rcpts[i]);
        bool    dup = false;

        for (size_t k = 0; k < env.nrcpt && !dup; k++)
            dup = strcasecmp(env.rcpts[k].address, a) == 0;
        if (dup) {
            free(a);
            continue;
        }
        env.rcpts[env.nrcpt].address = a;
        env.rcpts[env.nrcpt++].state = QUEUE_RCPT_PENDING;
    }
    w = queue_writer_create(qmgr.queue_dirfd, &env, err);
    if (w == NULL)
        goto out;
    added_headers(&head, md, env.sender, env.queue_id, uid, now);
    if (queue_writer_write(w, sb_str(&head), sb_len(&head), err) != 0
        || queue_writer_write(w, md->body, md->body_len, err) != 0) {
        queue_writer_abort(w);
        goto out;
    }
    if (queue_writer_commit(w, err) != 0)
        goto out;
    memcpy(id, env.queue_id, QUEUE_ID_LEN + 1);
    msg_info("%s: uid=%lu from=<%s> (picked up from maildrop, %zu recipient(s))", id,
             (unsigned long) uid, env.sender, env.nrcpt);
    rc = 0;
out:
    queue_envelope_free(&env);
    sb_free(&head);
    return rc;
}

/* drop_corrupt - a bad maildrop file goes to corrupt/ for a human */
static void drop_corrupt(int mdfd, const char *name, uid_t uid, const char *why)
{
    char    to[64];
    int     cfd = openat(qmgr.queue_dirfd, "corrupt", O_PATH | O_DIRECTORY | O_CLOEXEC);

    snprintf(to, sizeof(to), "maildrop.%s", name);
    if (cfd < 0 || renameat(mdfd, name, cfd, to) != 0) {
        msg_warn("maildrop/%s (uid %lu): %s; cannot move it to corrupt/ (%m): removing it",
                 name, (unsigned long) uid, why);
        (void) unlinkat(mdfd, name, 0);
    } else {
        msg_warn("maildrop/%s (uid %lu): %s; moved to corrupt/%s", name, (unsigned long) uid, why, to);
    }
    if (cfd >= 0)
        close(cfd);
}

/*
 * drop_directory - a directory with a maildrop name: removed when empty. We
 * may not move or empty another user's directory, so one that stays is
 * skipped, with a warning at most once an hour (it would otherwise fill the
 * log every scan).
 */
static void drop_directory(int mdfd, const char *name, uid_t uid)
{
    static time_t last_warning;
    time_t  now = time(NULL);

    if (unlinkat(mdfd, name, AT_REMOVEDIR) == 0) {
        msg_warn("maildrop/%s (uid %lu): a directory; removed", name, (unsigned long) uid);
        return;
    }
    if (now - last_warning >= 3600) {
        last_warning = now;
        msg_warn("maildrop/%s (uid %lu): a directory that cannot be removed (%m); skipped (remove it by hand)",
                 name, (unsigned long) uid);
    }
}

/* read_bounded - the whole file, at most max bytes; -1: read error, 1: larger than max */
static int read_bounded(int fd, size_t max, struct strbuf *out)
{
    char    buf[65536];

    for (;;) {
        ssize_t n = read(fd, buf, sizeof(buf));

        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -1;
        if (n == 0)
            return 0;
        if (sb_len(out) + (size_t) n > max)
            return 1;
        sb_append(out, buf, (size_t) n);
    }
}

/* pickup_one - one maildrop file: validate, queue, remove */
static void pickup_one(int mdfd, const char *name)
{
    struct strbuf data = STRBUF_INIT, err = STRBUF_INIT;
    struct maildrop md;
    struct stat st;
    char    id[QUEUE_ID_LEN + 1];
    size_t  max = pk.size_limit ? pk.size_limit + QUEUE_ENVELOPE_MAX : (size_t) 1 << 40;
    int     fd, rc;

    fd = openat(mdfd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
    if (fd < 0) {
        if (errno == ELOOP) {
            st.st_uid = (uid_t) -1;
            (void) fstatat(mdfd, name, &st, AT_SYMLINK_NOFOLLOW);
            drop_corrupt(mdfd, name, st.st_uid, "a symbolic link");
        }
        else if (errno != ENOENT)
            msg_warn("open maildrop/%s: %m", name);
        return;
    }
    if (fstat(fd, &st) != 0) {
        msg_warn("fstat maildrop/%s: %m", name);
        goto out;
    }
    if (S_ISDIR(st.st_mode)) {
        drop_directory(mdfd, name, st.st_uid);
        goto out;
    }
    if (!S_ISREG(st.st_mode) || st.st_nlink != 1) {
        drop_corrupt(mdfd, name, st.st_uid, "not a regular file with one link");
        goto out;
    }
    if ((unsigned long long) st.st_size > max || (rc = read_bounded(fd, max, &data)) == 1) {
        drop_corrupt(mdfd, name, st.st_uid, "larger than message_size_limit");
        goto out;
    }
    if (rc < 0) {
        msg_warn("read maildrop/%s: %m", name);
        goto out;
    }
    if (maildrop_parse(sb_str(&data), sb_len(&data), &md, &err) != 0) {
        drop_corrupt(mdfd, name, st.st_uid, sb_str(&err));
        goto out;
    }
    if (pk.size_limit && md.body_len > pk.size_limit) {
        /* Not corrupt, but sendmail would have refused it: somebody wrote the file by hand. */
        maildrop_free(&md);
        drop_corrupt(mdfd, name, st.st_uid, "message larger than message_size_limit");
        goto out;
    }
    if (make_queue_file(&md, st.st_uid, id, &err) != 0) {
        msg_warn("maildrop/%s: cannot make a queue file: %s; will try again", name, sb_str(&err));
    } else {
        if (unlinkat(mdfd, name, 0) != 0)
            msg_warn("%s: cannot remove maildrop/%s: %m (the message may be queued twice)", id, name);
        qmgr_queue_notify(id);
    }
    maildrop_free(&md);
out:
    close(fd);
    sb_free(&data);
    sb_free(&err);
}

/* qmgr_pickup_scan - take up to PICKUP_BATCH files from maildrop/ */
void qmgr_pickup_scan(void)
{
    int     mdfd, dfd;
    DIR    *dir;
    struct dirent *de;
    unsigned done = 0;
    time_t  now = time(NULL);

    if (pk.stopping || qmgr.queue_dirfd < 0)
        return;
    mdfd = openat(qmgr.queue_dirfd, "maildrop", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (mdfd < 0) {
        msg_warn("open maildrop/: %m");
        return;
    }
    dfd = dup(mdfd);
    if (dfd < 0 || (dir = fdopendir(dfd)) == NULL) {
        msg_warn("read maildrop/: %m");
        if (dfd >= 0)
            close(dfd);
        close(mdfd);
        return;
    }
    while (done < PICKUP_BATCH && (de = readdir(dir)) != NULL) {
        struct stat st;

        if (maildrop_name_valid(de->d_name)) {
            pickup_one(mdfd, de->d_name);
            done++;
        } else if (strncmp(de->d_name, MAILDROP_TMP_PREFIX, strlen(MAILDROP_TMP_PREFIX)) == 0
                   && fstatat(mdfd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0
                   && now - st.st_mtime > QMGR_TMP_MAX_AGE) {
            msg_info("removing stale maildrop/%.40s (uid %lu)", de->d_name, (unsigned long) st.st_uid);
            (void) unlinkat(mdfd, de->d_name, 0);
        }
    }
    closedir(dir);
    close(mdfd);
}

/* pickup_tick - the periodic scan */
static void pickup_tick(evutil_socket_t fd, short what, void *arg)
{
    (void) fd;
    (void) what;
    (void) arg;
    qmgr_pickup_scan();
}

/* qmgr_pickup_start - the first scan and the timer (queue directory open) */
void qmgr_pickup_start(struct service *svc)
{
    struct timeval tv = {QMGR_SCAN_INCOMING_SECS, 0};

    pk.tick_ev = event_new(svc->base, -1, EV_PERSIST, pickup_tick, NULL);
    if (pk.tick_ev == NULL || event_add(pk.tick_ev, &tv) != 0)
        msg_fatal("event_new: out of memory");
    qmgr_pickup_scan();
}

/* qmgr_pickup_stop - no more pickups */
void qmgr_pickup_stop(void)
{
    pk.stopping = true;
    if (pk.tick_ev != NULL)
        event_del(pk.tick_ev);
}
