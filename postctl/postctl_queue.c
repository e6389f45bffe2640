/*
 * postctl_queue - "postctl queue": look at the mail queue (like mailq).
 *
 *   postctl queue list [--json]
 *
 * Reads every queue file in $queue_directory/{incoming,active,deferred,hold}
 * directly (validating it like qmgr does: a corrupt file is reported with a
 * warning on stderr and listed as such, never trusted) and prints them sorted
 * by queue ID, i.e. by arrival, in Postfix's mailq format:
 *
 *   -Queue ID-  --Size-- ----Arrival Time---- -Sender/Recipient-------
 *   ID[*!]     SIZE DAY MON DD HH:MM:SS  sender
 *   (reason the recipients below were deferred)
 *                                        recipient
 *
 * "*" marks a message in active/, "!" one on hold. Only recipients still to
 * be delivered (pending or deferred) are shown; the last line is
 * "-- N Kbytes in M Requests." or "Mail queue is empty". --json prints an
 * array of {queue_id, queue, arrival, size, sender, recipients: [{address,
 * state, reason}]} with every recipient; an unreadable file has "error" set.
 *
 *   postctl queue show ID
 *   postctl queue delete ID...|ALL [--deferred]
 *   postctl queue hold ID...|ALL
 *   postctl queue release ID...|ALL
 *   postctl queue flush
 *   postctl queue requeue ID...|ALL
 *
 * show prints one message's envelope, schedule and every recipient with its
 * state and reason. delete, hold and release work as Postfix's postsuper -d,
 * -h and -H: delete removes files from incoming/, deferred/ and hold/
 * (--deferred: with ALL, deferred/ only), hold moves incoming/ and deferred/
 * files to hold/, where qmgr never looks, release moves them back to
 * deferred/ and has qmgr try them now. A message in active/ is being
 * delivered: it is left alone and reported. qmgr copes with a file that
 * vanishes under it (it treats the name as deleted). flush asks qmgr
 * ("type=flush" on private/qmgr) to try every deferred message now. IDs are
 * checked with queue_id_valid() before they name a file.
 *
 * requeue (Postfix's postsuper -r) sends messages from deferred/ or hold/
 * through qmgr again as if new: deferred recipients become pending (so a
 * message nothing was delivered from has its aliases expanded again with
 * today's tables, and every route is decided afresh), the schedule says
 * "now", and the file goes to incoming/ with a "type=new" to qmgr. It is
 * parked in hold/ (where qmgr never looks) while its records are rewritten,
 * so qmgr cannot activate it half-done. Delivered and bounced recipients
 * stay as they are: nothing is delivered twice, and a bounce still owed is
 * still sent. Exit status: 0 done, 1 something could not be read or done
 * (configuration, directory, permission, no such message), 2 usage.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "config.h"
#include "ipc.h"
#include "json.h"
#include "mem.h"
#include "queue_file.h"
#include "strbuf.h"

#include "postctl.h"

/* The columns of the listing: sender and recipients line up after ID, size and date. */
#define ID_COLUMN       QUEUE_ID_LEN
#define SENDER_COLUMN   (ID_COLUMN + 1 + 1 + 8 + 1 + 19 + 2)

static const char *const queue_names[] = {"incoming", "active", "deferred", "hold"};

/* One file found in the queue. */
struct queue_entry {
    char    id[QUEUE_ID_LEN + 1];
    const char *queue;                  /* one of queue_names */
    bool    ok;                         /* qf is valid */
    struct queue_file qf;
    uint64_t file_size;
    int64_t mtime;
    char   *error;                      /* why it could not be read */
};

struct queue_listing {
    struct queue_entry *items;
    size_t  count;
    size_t  cap;
    bool    incomplete;                 /* something could not be read: exit 1 */
};

/* queue_usage - the synopsis */
static void queue_usage(FILE *out)
{
    fprintf(out,
            "usage: postctl queue list [--json]\n"
            "       postctl queue show ID\n"
            "       postctl queue delete ID...|ALL [--deferred]\n"
            "       postctl queue hold ID...|ALL\n"
            "       postctl queue release ID...|ALL\n"
            "       postctl queue flush\n"
            "       postctl queue requeue ID...|ALL\n"
            "\n"
            "List the messages in the queue (like mailq): queue ID (\"*\" active, \"!\" on hold),\n"
            "size, arrival time, sender, then the recipients still to be delivered, each group\n"
            "after the reason of its last deferral.\n"
            "\n"
            "  --json   an array of {queue_id, queue, arrival, size, sender,\n"
            "           recipients: [{address, state, reason}]}\n"
            "\n"
            "\n"
            "show: one message's envelope, schedule and recipients. delete, hold, release: like\n"
            "postsuper -d, -h, -H (release moves held mail back to deferred/ and flushes).\n"
            "flush: qmgr tries every deferred message now. requeue: like postsuper -r, deferred\n"
            "and held messages start over as new (recipients still to be delivered routed again).\n");
}

/* entry_add - a fresh slot in the listing */
static struct queue_entry *entry_add(struct queue_listing *l)
{
    if (l->count == l->cap) {
        l->cap = l->cap ? l->cap * 2 : 64;
        l->items = xreallocarray(l->items, l->cap, sizeof(*l->items));
    }
    memset(&l->items[l->count], 0, sizeof(l->items[0]));
    return &l->items[l->count++];
}

/* listing_free - release every entry */
static void listing_free(struct queue_listing *l)
{
    for (size_t i = 0; i < l->count; i++) {
        if (l->items[i].ok)
            queue_file_free(&l->items[i].qf);
        free(l->items[i].error);
    }
    free(l->items);
}

/* read_entry - open and validate one queue file; a failure is recorded in the entry */
static void read_entry(struct queue_listing *l, int subfd, const char *queue, const char *name)
{
    struct strbuf err = STRBUF_INIT;
    struct queue_entry *e;
    struct stat st;
    int     fd;

    fd = openat(subfd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) {
        if (errno == ENOENT)            /* moved on by qmgr between readdir and open */
            return;
        fprintf(stderr, "postctl queue: warning: %s/%s: %s\n", queue, name, strerror(errno));
        l->incomplete = true;
        return;
    }
    e = entry_add(l);
    memcpy(e->id, name, QUEUE_ID_LEN + 1);
    e->queue = queue;
    if (fstat(fd, &st) == 0) {
        e->file_size = (uint64_t) st.st_size;
        e->mtime = (int64_t) st.st_mtime;
    }
    if (queue_file_read(fd, &e->qf, &err) == 0) {
        if (strcmp(e->qf.env.queue_id, name) == 0) {
            e->ok = true;
        } else {
            sb_reset(&err);
            sb_printf(&err, "file name does not match queue_id %s", e->qf.env.queue_id);
            queue_file_free(&e->qf);
            errno = EBADMSG;
        }
    }
    if (!e->ok) {
        bool    is_corrupt = errno == EBADMSG;

        fprintf(stderr, "postctl queue: warning: %s/%s: %s%s\n", queue, name,
                is_corrupt ? "corrupt queue file: " : "", sb_str(&err));
        if (!is_corrupt)
            l->incomplete = true;
        e->error = xstrdup(sb_str(&err));
    }
    close(fd);
    sb_free(&err);
}

/* scan_queue - every queue file in one queue directory; -1 if the directory cannot be read */
static int scan_queue(struct queue_listing *l, int qfd, const char *queue)
{
    int     subfd = openat(qfd, queue, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    DIR    *dir;
    struct dirent *d;

    if (subfd < 0 || (dir = fdopendir(subfd)) == NULL) {
        fprintf(stderr, "postctl queue: %s: %s\n", queue, strerror(errno));
        if (subfd >= 0)
            close(subfd);
        return -1;
    }
    while ((d = readdir(dir)) != NULL)
        /* Only complete files: ID.tmp in incoming/ is a message being received. */
        if (queue_id_valid(d->d_name))
            read_entry(l, dirfd(dir), queue, d->d_name);
    closedir(dir);
    return 0;
}

/* entry_cmp - order by queue ID (arrival), then queue */
static int entry_cmp(const void *a, const void *b)
{
    const struct queue_entry *x = a;
    const struct queue_entry *y = b;
    int     c = strcmp(x->id, y->id);

    return c ? c : strcmp(x->queue, y->queue);
}

/* put_text - text from a queue file for a terminal: control characters become '?' */
static void put_text(struct strbuf *out, const char *text)
{
    for (const unsigned char *p = (const unsigned char *) text; *p; p++)
        sb_putc(out, (*p < 0x20 || *p == 0x7f) ? '?' : *p);
}

/* format_time - "Mon Jan  1 12:00:00" in local time */
static void format_time(int64_t when, char buf[32])
{
    time_t  t = (time_t) when;
    struct tm tm;

    if (localtime_r(&t, &tm) == NULL || strftime(buf, 32, "%a %b %e %H:%M:%S", &tm) == 0)
        snprintf(buf, 32, "%-19s", "?");
}

/* list_text - the mailq format */
static void list_text(const struct queue_listing *l, struct strbuf *out)
{
    uint64_t total = 0;

    if (l->count == 0) {
        /* Not when part of the queue could not be read: the warnings said so already. */
        if (!l->incomplete)
            sb_puts(out, "Mail queue is empty\n");
        return;
    }
    sb_puts(out, "-Queue ID-  --Size-- ----Arrival Time---- -Sender/Recipient-------\n");
    for (size_t i = 0; i < l->count; i++) {
        const struct queue_entry *e = &l->items[i];
        char    mark = strcmp(e->queue, "active") == 0 ? '*' : strcmp(e->queue, "hold") == 0 ? '!' : ' ';
        uint64_t size = e->ok ? e->qf.message_length : e->file_size;
        char    when[32];

        format_time(e->ok ? e->qf.env.arrival : e->mtime, when);
        sb_printf(out, "%-*s%c %8llu %s  ", ID_COLUMN, e->id, mark, (unsigned long long) size, when);
        total += size;
        if (!e->ok) {
            sb_puts(out, "(unreadable queue file: ");
            put_text(out, e->error ? e->error : "?");
            sb_puts(out, ")\n\n");
            continue;
        }
        put_text(out, *e->qf.env.sender ? e->qf.env.sender : "MAILER-DAEMON");
        sb_putc(out, '\n');

        const char *last_reason = "";

        for (size_t r = 0; r < e->qf.env.nrcpt; r++) {
            const struct queue_rcpt *rc = &e->qf.env.rcpts[r];

            if (rc->state != QUEUE_RCPT_PENDING && rc->state != QUEUE_RCPT_DEFERRED)
                continue;
            /* One reason line for each run of recipients deferred for the same reason. */
            if (rc->state == QUEUE_RCPT_DEFERRED && *rc->reason && strcmp(rc->reason, last_reason) != 0) {
                sb_putc(out, '(');
                put_text(out, rc->reason);
                sb_puts(out, ")\n");
                last_reason = rc->reason;
            } else if (rc->state != QUEUE_RCPT_DEFERRED) {
                last_reason = "";
            }
            sb_printf(out, "%*s", SENDER_COLUMN, "");
            put_text(out, rc->address);
            sb_putc(out, '\n');
        }
        sb_putc(out, '\n');
    }
    sb_printf(out, "-- %llu Kbytes in %zu Request%s.\n", (unsigned long long) ((total + 1023) / 1024),
              l->count, l->count == 1 ? "" : "s");
}

/* list_json - the --json array */
static void list_json(const struct queue_listing *l, struct strbuf *out)
{
    sb_putc(out, '[');
    for (size_t i = 0; i < l->count; i++) {
        const struct queue_entry *e = &l->items[i];

        sb_puts(out, i ? ",\n{\"queue_id\":" : "\n{\"queue_id\":");
        json_string(out, e->id);
        sb_puts(out, ",\"queue\":");
        json_string(out, e->queue);
        if (!e->ok) {
            sb_printf(out, ",\"arrival\":%lld,\"size\":%llu,\"sender\":null,\"recipients\":[],\"error\":",
                      (long long) e->mtime, (unsigned long long) e->file_size);
            json_string(out, e->error ? e->error : "");
            sb_putc(out, '}');
            continue;
        }
        sb_printf(out, ",\"arrival\":%lld,\"size\":%llu,\"sender\":", (long long) e->qf.env.arrival,
                  (unsigned long long) e->qf.message_length);
        json_string(out, e->qf.env.sender);
        sb_puts(out, ",\"recipients\":[");
        for (size_t r = 0; r < e->qf.env.nrcpt; r++) {
            const struct queue_rcpt *rc = &e->qf.env.rcpts[r];

            sb_puts(out, r ? ",{\"address\":" : "{\"address\":");
            json_string(out, rc->address);
            sb_puts(out, ",\"state\":");
            json_string(out, queue_rcpt_state_name(rc->state));
            sb_puts(out, ",\"reason\":");
            json_string(out, rc->reason);
            sb_putc(out, '}');
        }
        sb_puts(out, "]}");
    }
    sb_puts(out, l->count ? "\n]\n" : "]\n");
}

/* queue_list - "postctl queue list [--json]" */
/* open_queue - the configuration and a descriptor of queue_directory; -1 after a message */
static int open_queue(struct postctl *ctl, struct config **cfg, int *qfd)
{
    struct strbuf err = STRBUF_INIT;
    const char *qdir;

    if ((*cfg = config_load(ctl->config_dir, &err)) == NULL) {
        fprintf(stderr, "postctl queue: %s\n", sb_str(&err));
        sb_free(&err);
        return -1;
    }
    sb_free(&err);
    qdir = config_str(*cfg, "queue_directory");
    *qfd = open(qdir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (*qfd < 0) {
        fprintf(stderr, "postctl queue: queue_directory %s: %s; check main.cf or run postctl init\n",
                qdir, strerror(errno));
        config_free(*cfg);
        return -1;
    }
    return 0;
}

static int queue_list(struct postctl *ctl, int argc, char **argv)
{
    struct strbuf err = STRBUF_INIT;
    struct strbuf out = STRBUF_INIT;
    struct queue_listing l = {NULL, 0, 0, false};
    struct config *cfg;
    bool    json = false;
    int     qfd;
    int     rc = POSTCTL_OK;

    for (int i = 2; i < argc; i++) {
        if (strcmp(argv[i], "--json") == 0) {
            json = true;
        } else {
            fprintf(stderr, "postctl queue list: unexpected argument '%s'\n", argv[i]);
            queue_usage(stderr);
            return POSTCTL_USAGE;
        }
    }
    if (open_queue(ctl, &cfg, &qfd) < 0)
        return POSTCTL_FAILED;
    for (size_t q = 0; q < sizeof(queue_names) / sizeof(queue_names[0]); q++)
        if (scan_queue(&l, qfd, queue_names[q]) < 0)
            l.incomplete = true;
    close(qfd);
    if (l.count > 1)
        qsort(l.items, l.count, sizeof(l.items[0]), entry_cmp);
    if (json)
        list_json(&l, &out);
    else
        list_text(&l, &out);
    fwrite(out.data, 1, out.len, stdout);
    if (fflush(stdout) != 0 || ferror(stdout)) {
        fprintf(stderr, "postctl queue: write error on standard output\n");
        rc = POSTCTL_FAILED;
    }
    if (l.incomplete)
        rc = POSTCTL_FAILED;
    listing_free(&l);
    config_free(cfg);
    sb_free(&out);
    sb_free(&err);
    return rc;
}

/* qmgr_connect - a connection to private/qmgr, or -1 with err */
static int qmgr_connect(int qfd, struct strbuf *err)
{
    int     cwd = open(".", O_RDONLY | O_DIRECTORY | O_CLOEXEC), sock = -1;

    /* ipc_connect takes a path relative to the queue directory, as the daemons see it */
    if (cwd >= 0 && fchdir(qfd) == 0) {
        sock = ipc_connect("private/qmgr", 2000, err);
        if (fchdir(cwd) != 0) {
            /* the cwd only matters for relative paths, and there are none after this */
        }
    }
    if (cwd >= 0)
        close(cwd);
    return sock;
}

/* qmgr_announce - "type=new queue_id=ID" for each ID; -1 after a message when qmgr is unreachable */
static int qmgr_announce(int qfd, char (*ids)[QUEUE_ID_LEN + 1], size_t n)
{
    struct strbuf err = STRBUF_INIT;
    int     sock = qmgr_connect(qfd, &err), rc = 0;

    for (size_t i = 0; sock >= 0 && i < n && rc == 0; i++) {
        struct ipc_record rec;

        ipc_init(&rec, "new");
        ipc_put(&rec, "queue_id", ids[i]);
        rc = ipc_send(sock, &rec, -1, 2000, &err);
        ipc_free(&rec);
    }
    if (sock < 0 || rc != 0) {
        /* Not fatal: qmgr scans incoming/ every few seconds. */
        fprintf(stderr, "postctl queue: cannot reach qmgr (is the instance running?): %s; "
                "it will find the mail when it scans incoming/\n", err.len ? sb_str(&err) : strerror(errno));
        rc = -1;
    }
    if (sock >= 0)
        close(sock);
    sb_free(&err);
    return rc;
}

/* qmgr_flush - "type=flush" to qmgr; -1 after a message when it cannot be reached */
static int qmgr_flush(int qfd)
{
    struct strbuf err = STRBUF_INIT;
    struct ipc_record rec;
    int     sock = qmgr_connect(qfd, &err), rc = -1;

    ipc_init(&rec, "flush");
    if (sock >= 0 && ipc_send(sock, &rec, -1, 2000, &err) == 0)
        rc = 0;
    else
        fprintf(stderr, "postctl queue: cannot reach qmgr (is the instance running?): %s\n",
                err.len ? sb_str(&err) : strerror(errno));
    if (sock >= 0)
        close(sock);
    ipc_free(&rec);
    sb_free(&err);
    return rc;
}

/* find_message - the queue directory holding ID, or NULL */
static const char *find_message(int qfd, const char *id)
{
    char    path[64];
    struct stat st;

    for (size_t q = 0; q < sizeof(queue_names) / sizeof(queue_names[0]); q++) {
        snprintf(path, sizeof(path), "%s/%s", queue_names[q], id);
        if (fstatat(qfd, path, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISREG(st.st_mode))
            return queue_names[q];
    }
    return NULL;
}

/* put_field - "name: value\n" with the value made printable */
static void put_field(struct strbuf *out, const char *name, const char *value)
{
    if (value == NULL || *value == '\0')
        return;
    sb_printf(out, "%s: ", name);
    put_text(out, value);
    sb_putc(out, '\n');
}

/* queue_show - one message in full */
static int queue_show(struct postctl *ctl, int argc, char **argv)
{
    struct queue_listing l = {NULL, 0, 0, false};
    struct strbuf out = STRBUF_INIT;
    struct config *cfg;
    const char *queue;
    char    when[32];
    int     qfd, subfd, rc = POSTCTL_FAILED;

    if (argc != 3) {
        queue_usage(stderr);
        return POSTCTL_USAGE;
    }
    if (!queue_id_valid(argv[2])) {
        fprintf(stderr, "postctl queue show: '%s' is not a queue ID\n", argv[2]);
        return POSTCTL_USAGE;
    }
    if (open_queue(ctl, &cfg, &qfd) < 0)
        return POSTCTL_FAILED;
    if ((queue = find_message(qfd, argv[2])) == NULL) {
        fprintf(stderr, "postctl queue show: %s: no such message in the queue\n", argv[2]);
    } else if ((subfd = openat(qfd, queue, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) >= 0) {
        read_entry(&l, subfd, queue, argv[2]);
        close(subfd);
    }
    if (l.count == 1 && l.items[0].ok) {
        const struct queue_file *qf = &l.items[0].qf;
        const struct queue_envelope *env = &qf->env;

        sb_printf(&out, "queue_id: %s\nqueue: %s\n", env->queue_id, queue);
        format_time(env->arrival, when);
        sb_printf(&out, "arrival: %s\n", when);
        sb_puts(&out, "sender: ");
        put_text(&out, *env->sender ? env->sender : "<> (MAILER-DAEMON)");
        sb_printf(&out, "\nsize: %llu\n", (unsigned long long) qf->message_length);
        put_field(&out, "client_name", env->client_name);
        put_field(&out, "client_address", env->client_addr);
        put_field(&out, "helo", env->helo);
        put_field(&out, "protocol", env->protocol);
        put_field(&out, "body_type", env->body_type);
        put_field(&out, "envid", env->envid);
        put_field(&out, "ret", env->ret);
        if (env->smtputf8)
            sb_puts(&out, "smtputf8: yes\n");
        sb_printf(&out, "attempts: %u\n", qf->attempts);
        if (qf->flags & QUEUE_FLAG_DELAY_WARNED)
            sb_puts(&out, "delay_warning: sent\n");
        if (qf->next_attempt > 0) {
            format_time(qf->next_attempt, when);
            sb_printf(&out, "next_attempt: %s\n", when);
        }
        for (size_t r = 0; r < env->nrcpt; r++) {
            const struct queue_rcpt *rc = &env->rcpts[r];

            sb_puts(&out, "recipient: ");
            put_text(&out, rc->address);
            sb_printf(&out, " (%s)", queue_rcpt_state_name(rc->state));
            if (*rc->reason) {
                sb_puts(&out, ": ");
                put_text(&out, rc->reason);
            }
            sb_putc(&out, '\n');
            put_field(&out, "  orcpt", rc->orcpt);
            put_field(&out, "  notify", rc->notify);
            if (rc->flags & QUEUE_RCPT_F_NOTIFIED)
                sb_puts(&out, "  sender_notified: yes\n");
        }
        fwrite(out.data, 1, out.len, stdout);
        rc = fflush(stdout) == 0 ? POSTCTL_OK : POSTCTL_FAILED;
    }
    close(qfd);
    listing_free(&l);
    config_free(cfg);
    sb_free(&out);
    return rc;
}

enum queue_op { OP_DELETE, OP_HOLD, OP_RELEASE };

/* op_one - do op to ID if it is in one of the queues op takes from; 1 done, 0 not there, -1 failed */
static int op_one(int qfd, enum queue_op op, bool deferred_only, const char *id, bool quiet_absent)
{
    static const char *const from_delete[] = {"incoming", "deferred", "hold", NULL};
    static const char *const from_hold[] = {"incoming", "deferred", NULL};
    static const char *const from_release[] = {"hold", NULL};
    static const char *const from_deferred[] = {"deferred", NULL};
    const char *const *from = op == OP_HOLD ? from_hold : op == OP_RELEASE ? from_release
                              : deferred_only ? from_deferred : from_delete;
    char    src[64], dst[64];
    struct stat st;

    for (; *from != NULL; from++) {
        snprintf(src, sizeof(src), "%s/%s", *from, id);
        if (op == OP_DELETE) {
            if (unlinkat(qfd, src, 0) == 0)
                return 1;
        } else {
            snprintf(dst, sizeof(dst), "%s/%s", op == OP_HOLD ? "hold" : "deferred", id);
            if (renameat2(qfd, src, qfd, dst, RENAME_NOREPLACE) == 0)
                return 1;
        }
        if (errno != ENOENT) {
            fprintf(stderr, "postctl queue: %s: %s\n", src, strerror(errno));
            return -1;
        }
    }
    snprintf(src, sizeof(src), "active/%s", id);
    if (fstatat(qfd, src, &st, AT_SYMLINK_NOFOLLOW) == 0) {
        fprintf(stderr, "postctl queue: %s is being delivered now; try again in a moment\n", id);
        return -1;
    }
    if (!quiet_absent)
        fprintf(stderr, "postctl queue: %s: no such message%s\n", id,
                op == OP_RELEASE ? " on hold" : "");
    return quiet_absent ? 0 : -1;
}

/* queue_change - delete, hold or release the named messages or ALL */
static int queue_change(struct postctl *ctl, enum queue_op op, int argc, char **argv)
{
    static const char *const verbs[] = {"Deleted", "Placed on hold", "Released from hold"};
    struct queue_listing l = {NULL, 0, 0, false};
    struct config *cfg;
    bool    all = false, deferred_only = false, failed = false;
    size_t  done = 0, nids = 0;
    int     qfd;

    for (int i = 2; i < argc; i++) {
        if (op == OP_DELETE && strcmp(argv[i], "--deferred") == 0) {
            deferred_only = true;
        } else if (strcmp(argv[i], "ALL") == 0) {
            all = true;
        } else if (queue_id_valid(argv[i])) {
            nids++;
        } else {
            fprintf(stderr, "postctl queue %s: '%s' is not a queue ID\n", argv[1], argv[i]);
            return POSTCTL_USAGE;
        }
    }
    if ((all && nids > 0) || (!all && nids == 0) || (deferred_only && !all)) {
        queue_usage(stderr);
        return POSTCTL_USAGE;
    }
    if (open_queue(ctl, &cfg, &qfd) < 0)
        return POSTCTL_FAILED;
    if (all) {
        /* The files there now; a message that moves on meanwhile is just not found. */
        for (size_t q = 0; q < sizeof(queue_names) / sizeof(queue_names[0]); q++)
            if (strcmp(queue_names[q], "active") != 0 && scan_queue(&l, qfd, queue_names[q]) < 0)
                failed = true;
        for (size_t i = 0; i < l.count; i++) {
            int     r = op_one(qfd, op, deferred_only, l.items[i].id, true);

            if (r > 0)
                done++;
            else if (r < 0)
                failed = true;
        }
    } else {
        for (int i = 2; i < argc; i++) {
            int     r = op_one(qfd, op, false, argv[i], false);

            if (r > 0)
                done++;
            else
                failed = true;
        }
    }
    printf("postctl queue: %s: %zu message%s\n", verbs[op], done, done == 1 ? "" : "s");
    if (op == OP_RELEASE && done > 0 && qmgr_flush(qfd) < 0)
        failed = true;
    close(qfd);
    listing_free(&l);
    config_free(cfg);
    return failed ? POSTCTL_FAILED : POSTCTL_OK;
}

/* requeue_reset - the parked file hold/ID: deferred recipients pending, schedule now; -1 after a message */
static int requeue_reset(int qfd, const char *id)
{
    struct strbuf err = STRBUF_INIT;
    struct queue_file qf;
    char    path[64];
    int     fd, rc = -1;

    snprintf(path, sizeof(path), "hold/%s", id);
    fd = openat(qfd, path, O_RDWR | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) {
        fprintf(stderr, "postctl queue: %s: %s\n", path, strerror(errno));
        return -1;
    }
    if (queue_file_read(fd, &qf, &err) != 0) {
        fprintf(stderr, "postctl queue: %s: %s\n", path, sb_str(&err));
    } else if (strcmp(qf.env.queue_id, id) != 0) {
        fprintf(stderr, "postctl queue: %s: queue_id in the file differs from its name\n", path);
    } else {
        rc = 0;
        for (size_t i = 0; i < qf.env.nrcpt && rc == 0; i++)
            if (qf.env.rcpts[i].state == QUEUE_RCPT_DEFERRED)
                rc = queue_file_update_rcpt(fd, &qf, i, QUEUE_RCPT_PENDING, "", &err);
        if (rc == 0)
            rc = queue_file_update_schedule(fd, &qf, qf.attempts, 0, &err);
        if (rc != 0)
            fprintf(stderr, "postctl queue: %s: %s\n", path, sb_str(&err));
    }
    queue_file_free(&qf);
    close(fd);
    sb_free(&err);
    return rc;
}

/* requeue_one - deferred/ID or hold/ID starts over from incoming/; 1 done, 0 not there, -1 failed */
static int requeue_one(int qfd, const char *id, bool quiet_absent)
{
    static const char *const from[] = {"deferred", "hold"};
    char    src[64], park[64], dst[64];
    struct stat st;

    snprintf(park, sizeof(park), "hold/%s", id);
    snprintf(dst, sizeof(dst), "incoming/%s", id);
    for (size_t q = 0; q < sizeof(from) / sizeof(from[0]); q++) {
        snprintf(src, sizeof(src), "%s/%s", from[q], id);
        if (q == 0 && renameat2(qfd, src, qfd, park, RENAME_NOREPLACE) != 0) {
            if (errno == ENOENT)
                continue;
            fprintf(stderr, "postctl queue: %s: %s\n", src, strerror(errno));
            return -1;
        }
        if (q == 1 && fstatat(qfd, park, &st, AT_SYMLINK_NOFOLLOW) != 0)
            continue;
        if (requeue_reset(qfd, id) != 0) {
            /* Back where it was, untouched or with some recipients pending: both are valid. */
            if (q == 0 && renameat2(qfd, park, qfd, src, RENAME_NOREPLACE) != 0)
                fprintf(stderr, "postctl queue: %s stays in hold/: %s\n", id, strerror(errno));
            return -1;
        }
        if (renameat2(qfd, park, qfd, dst, RENAME_NOREPLACE) != 0) {
            fprintf(stderr, "postctl queue: %s: rename to %s: %s; it is on hold now\n", id, dst,
                    strerror(errno));
            return -1;
        }
        return 1;
    }
    snprintf(src, sizeof(src), "active/%s", id);
    if (fstatat(qfd, src, &st, AT_SYMLINK_NOFOLLOW) == 0) {
        fprintf(stderr, "postctl queue: %s is being delivered now; try again in a moment\n", id);
        return -1;
    }
    snprintf(src, sizeof(src), "incoming/%s", id);
    if (fstatat(qfd, src, &st, AT_SYMLINK_NOFOLLOW) == 0)
        return quiet_absent ? 0 : 1;    /* new already */
    if (!quiet_absent)
        fprintf(stderr, "postctl queue: %s: no such message\n", id);
    return quiet_absent ? 0 : -1;
}

/* queue_requeue - postctl queue requeue ID...|ALL */
static int queue_requeue(struct postctl *ctl, int argc, char **argv)
{
    struct queue_listing l = {NULL, 0, 0, false};
    char  (*done)[QUEUE_ID_LEN + 1];
    struct config *cfg;
    bool    all = argc == 3 && strcmp(argv[2], "ALL") == 0, failed = false;
    size_t  ndone = 0;
    int     qfd;

    if (argc < 3) {
        queue_usage(stderr);
        return POSTCTL_USAGE;
    }
    for (int i = 2; i < argc && !all; i++) {
        if (!queue_id_valid(argv[i])) {
            fprintf(stderr, "postctl queue requeue: '%s' is not a queue ID\n", argv[i]);
            return POSTCTL_USAGE;
        }
    }
    if (open_queue(ctl, &cfg, &qfd) < 0)
        return POSTCTL_FAILED;
    if (all && (scan_queue(&l, qfd, "deferred") < 0 || scan_queue(&l, qfd, "hold") < 0))
        failed = true;
    done = xcalloc((all ? l.count : (size_t) argc) + 1, sizeof(*done));
    for (size_t i = 0; i < (all ? l.count : (size_t) argc - 2); i++) {
        const char *id = all ? l.items[i].id : argv[i + 2];
        int     r = requeue_one(qfd, id, all);

        if (r > 0)
            snprintf(done[ndone++], QUEUE_ID_LEN + 1, "%s", id);
        else if (r < 0)
            failed = true;
    }
    printf("postctl queue: Requeued: %zu message%s\n", ndone, ndone == 1 ? "" : "s");
    if (ndone > 0 && qmgr_announce(qfd, done, ndone) < 0)
        failed = true;
    free(done);
    close(qfd);
    listing_free(&l);
    config_free(cfg);
    return failed ? POSTCTL_FAILED : POSTCTL_OK;
}

/* queue_flush_cmd - postctl queue flush */
static int queue_flush_cmd(struct postctl *ctl, int argc)
{
    struct config *cfg;
    int     qfd, rc;

    if (argc != 2) {
        queue_usage(stderr);
        return POSTCTL_USAGE;
    }
    if (open_queue(ctl, &cfg, &qfd) < 0)
        return POSTCTL_FAILED;
    rc = qmgr_flush(qfd) == 0 ? POSTCTL_OK : POSTCTL_FAILED;
    close(qfd);
    config_free(cfg);
    return rc;
}

int cmd_queue(struct postctl *ctl, int argc, char **argv)
{
    if (postctl_wants_help(argc, argv)) {
        queue_usage(stdout);
        return POSTCTL_OK;
    }
    if (argc < 2) {
        queue_usage(stderr);
        return POSTCTL_USAGE;
    }
    if (strcmp(argv[1], "list") == 0)
        return queue_list(ctl, argc, argv);
    if (strcmp(argv[1], "show") == 0)
        return queue_show(ctl, argc, argv);
    if (strcmp(argv[1], "delete") == 0)
        return queue_change(ctl, OP_DELETE, argc, argv);
    if (strcmp(argv[1], "hold") == 0)
        return queue_change(ctl, OP_HOLD, argc, argv);
    if (strcmp(argv[1], "release") == 0)
        return queue_change(ctl, OP_RELEASE, argc, argv);
    if (strcmp(argv[1], "flush") == 0)
        return queue_flush_cmd(ctl, argc);
    if (strcmp(argv[1], "requeue") == 0)
        return queue_requeue(ctl, argc, argv);
    fprintf(stderr, "postctl queue: unknown subcommand '%s'\n", argv[1]);
    queue_usage(stderr);
    return POSTCTL_USAGE;
}
