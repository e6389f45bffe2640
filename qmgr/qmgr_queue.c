/*
 * qmgr_queue - the queue on disk as qmgr sees it.
 *
 * Interface (qmgr.h): qmgr_queue_start(), qmgr_queue_stop(),
 * qmgr_queue_notify(), qmgr_queue_flush(), qmgr_message_done(),
 * qmgr_message_flush(), qmgr_rcpt_result(), qmgr_backoff(), qmgr_message_copy().
 *
 * Every queue ID qmgr knows is in one hash table with where it is: waiting
 * for an active slot (the todo list, FIFO), active, or deferred with its
 * next attempt time. The table is the in-memory schedule of deferred/: it is
 * built once from the files at start (each read once), kept up to date as
 * messages are deferred, and deferred/ is re-read only for names the table
 * lacks (put there by hand or by postctl), every queue_run_delay. Due
 * messages are found in memory every few seconds, without touching the disk.
 * incoming/ is listed (readdir only) every few seconds and at notification.
 *
 * At most max_active messages are open at once; the rest wait in the todo
 * list. Activation renames the file into active/ before anything else, so a
 * crash leaves it where the next start looks (active/ is recovered first):
 * nothing is lost, at worst a delivery is repeated.
 *
 * Diagnostics: "ID: from=<s>, size=N, nrcpt=N (queue active)", "ID: removed",
 * "warning: ID: corrupt queue file moved to corrupt/: REASON", per-recipient
 * "ID: to=<a>, relay=R, delay=S, dsn=X.Y.Z, status=S (reason)" for results
 * qmgr decides itself (delivery agents log their own), file errors.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include "log.h"
#include "mem.h"
#include "queue_file.h"
#include "service.h"
#include "strbuf.h"

#include "qmgr.h"

#define TABLE_INITIAL 1024

static bool queue_stopping;

/* id_hash - FNV-1a over the ID */
static size_t id_hash(const char *id)
{
    uint32_t h = 2166136261u;

    for (; *id; id++)
        h = (h ^ (unsigned char) *id) * 16777619u;
    return h;
}

/* entry_find - the entry for id, or NULL */
static struct qmgr_entry *entry_find(const char *id)
{
    if (qmgr.table == NULL)
        return NULL;
    for (struct qmgr_entry *e = qmgr.table[id_hash(id) & (qmgr.table_size - 1)]; e; e = e->hnext)
        if (strcmp(e->id, id) == 0)
            return e;
    return NULL;
}

/* table_grow - double the bucket array */
static void table_grow(void)
{
    size_t  size = qmgr.table_size ? qmgr.table_size * 2 : TABLE_INITIAL;
    struct qmgr_entry **table = xcalloc(size, sizeof(*table));

    for (size_t i = 0; i < qmgr.table_size; i++) {
        struct qmgr_entry *e = qmgr.table[i], *next;

        for (; e; e = next) {
            size_t  b = id_hash(e->id) & (size - 1);

            next = e->hnext;
            e->hnext = table[b];
            table[b] = e;
        }
    }
    free(qmgr.table);
    qmgr.table = table;
    qmgr.table_size = size;
}

/* entry_add - a new entry (the ID is not in the table) */
static struct qmgr_entry *entry_add(const char *id, enum qmgr_where where)
{
    struct qmgr_entry *e;
    size_t  b;

    if (qmgr.table_count >= qmgr.table_size)
        table_grow();
    e = xcalloc(1, sizeof(*e));
    snprintf(e->id, sizeof(e->id), "%s", id);
    e->where = where;
    e->scan_gen = qmgr.scan_gen;
    b = id_hash(id) & (qmgr.table_size - 1);
    e->hnext = qmgr.table[b];
    qmgr.table[b] = e;
    qmgr.table_count++;
    return e;
}

/* todo_unlink - take an entry off the todo list */
static void todo_unlink(struct qmgr_entry *e)
{
    if (e->on_todo) {
        TAILQ_REMOVE(&qmgr.todo, e, todo);
        e->on_todo = false;
    }
}

/* entry_remove - forget an entry (the file is gone or will be found again by a scan) */
static void entry_remove(struct qmgr_entry *e)
{
    struct qmgr_entry **pp = &qmgr.table[id_hash(e->id) & (qmgr.table_size - 1)];

    while (*pp && *pp != e)
        pp = &(*pp)->hnext;
    if (*pp == NULL)
        msg_panic("entry_remove: %s not in the table", e->id);
    *pp = e->hnext;
    todo_unlink(e);
    qmgr.table_count--;
    free(e);
}

/* now_tv - the wall clock */
static struct timeval now_tv(void)
{
    struct timeval tv;

    gettimeofday(&tv, NULL);
    return tv;
}

/* pump_request - activate more messages at the next loop turn */
static void pump_request(void)
{
    if (!queue_stopping && qmgr.pump_ev && !TAILQ_EMPTY(&qmgr.todo)
        && qmgr.active_count < qmgr.max_active)
        event_active(qmgr.pump_ev, EV_TIMEOUT, 1);
}

/* todo_add - put an entry on the todo list */
static void todo_add(struct qmgr_entry *e, enum qmgr_where where, bool front)
{
    todo_unlink(e);
    e->where = where;
    e->on_todo = true;
    if (front)
        TAILQ_INSERT_HEAD(&qmgr.todo, e, todo);
    else
        TAILQ_INSERT_TAIL(&qmgr.todo, e, todo);
}

/* qmgr_backoff - delay before attempt number attempts+1: min doubling per attempt, capped at max */
int64_t qmgr_backoff(uint32_t attempts, long long min_backoff, long long max_backoff)
{
    long long delay = min_backoff;

    for (uint32_t k = 1; k < attempts && delay < max_backoff; k++)
        delay = delay > max_backoff / 2 ? max_backoff : delay * 2;
    return delay > max_backoff ? max_backoff : delay;
}

/* move_corrupt - a file that failed validation goes to corrupt/ for a human */
static void move_corrupt(const char *from_dir, const char *id, const char *reason)
{
    char    from[64], to[64];

    snprintf(from, sizeof(from), "%s/%.18s", from_dir, id);
    snprintf(to, sizeof(to), "corrupt/%.18s", id);
    if (rename(from, to) != 0) {
        msg_warn("%s: corrupt queue file (%s); cannot move %s to %s: %m", id, reason, from, to);
        return;
    }
    msg_warn("%s: corrupt queue file moved to corrupt/: %s", id, reason);
}

/* read_failed_corrupt - after queue_file_read failed: bad contents (true) or an I/O problem */
static bool read_failed_corrupt(int saved_errno)
{
    return saved_errno == EBADMSG;      /* queue_file.c's mark for "not a valid queue file" */
}

/* read_next_attempt - the schedule of deferred/ID, read once; -1: not usable (handled) */
static int read_next_attempt(const char *id, int64_t *next_attempt)
{
    struct strbuf err = STRBUF_INIT;
    struct queue_file qf;
    char    path[64];
    int     fd, rc, saved;

    snprintf(path, sizeof(path), "deferred/%.18s", id);
    fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) {
        if (errno != ENOENT)
            msg_warn("open %s: %m", path);
        return -1;
    }
    memset(&qf, 0, sizeof(qf));
    errno = 0;
    rc = queue_file_read(fd, &qf, &err);
    saved = errno;
    close(fd);
    if (rc != 0) {
        if (read_failed_corrupt(saved))
            move_corrupt("deferred", id, sb_str(&err));
        else
            msg_warn("%s: read %s: %s", id, path, sb_str(&err));
        sb_free(&err);
        return -1;
    }
    if (strcmp(qf.env.queue_id, id) != 0) {
        queue_file_free(&qf);
        move_corrupt("deferred", id, "queue_id in the file differs from its name");
        sb_free(&err);
        return -1;
    }
    *next_attempt = qf.next_attempt;
    queue_file_free(&qf);
    sb_free(&err);
    return 0;
}

/* stale_tmp - remove incoming/NAME.tmp when it was abandoned over an hour ago */
static void stale_tmp(int dfd, const char *name, time_t now)
{
    struct stat st;
    size_t  len = strlen(name);
    char    id[QUEUE_ID_LEN + 1];

    if (len != QUEUE_ID_LEN + 4 || strcmp(name + QUEUE_ID_LEN, ".tmp") != 0)
        return;
    memcpy(id, name, QUEUE_ID_LEN);
    id[QUEUE_ID_LEN] = '\0';
    if (!queue_id_valid(id))
        return;
    if (fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) != 0 || !S_ISREG(st.st_mode))
        return;
    if (st.st_mtime > now - QMGR_TMP_MAX_AGE)
        return;                         /* a writer may still be at work */
    if (unlinkat(dfd, name, 0) == 0)
        msg_info("removed stale temporary file incoming/%s", name);
    else if (errno != ENOENT)
        msg_warn("remove incoming/%s: %m", name);
}

/* scan_incoming - every new file in incoming/ goes on the todo list */
static void scan_incoming(void)
{
    time_t  now = time(NULL);
    bool    cleanup = now - qmgr.last_tmp_cleanup >= QMGR_TMP_MAX_AGE;
    struct dirent *de;
    DIR    *d = opendir("incoming");

    if (d == NULL) {
        msg_warn("open directory incoming: %m");
        return;
    }
    if (cleanup)
        qmgr.last_tmp_cleanup = now;
    while ((de = readdir(d)) != NULL) {
        if (queue_id_valid(de->d_name)) {
            if (entry_find(de->d_name) == NULL)
                todo_add(entry_add(de->d_name, QMGR_TODO_INCOMING), QMGR_TODO_INCOMING, false);
        } else if (cleanup) {
            stale_tmp(dirfd(d), de->d_name, now);
        }
    }
    closedir(d);
}

/* due_check - deferred messages whose time has come go on the todo list */
static void due_check(void)
{
    int64_t now = time(NULL);

    for (size_t b = 0; b < qmgr.table_size; b++)
        for (struct qmgr_entry *e = qmgr.table[b]; e; e = e->hnext)
            if (e->where == QMGR_WAITING && e->next_attempt <= now)
                todo_add(e, QMGR_TODO_DEFERRED, false);
}

/* scan_deferred - learn files in deferred/ the table lacks; forget those that are gone */
static void scan_deferred(void)
{
    struct dirent *de;
    DIR    *d = opendir("deferred");

    if (d == NULL) {
        msg_warn("open directory deferred: %m");
        return;
    }
    qmgr.scan_gen++;
    while ((de = readdir(d)) != NULL) {
        struct qmgr_entry *e;
        int64_t next;

        if (!queue_id_valid(de->d_name))
            continue;
        if ((e = entry_find(de->d_name)) != NULL) {
            e->scan_gen = qmgr.scan_gen;
            continue;
        }
        if (read_next_attempt(de->d_name, &next) != 0)
            continue;
        e = entry_add(de->d_name, QMGR_WAITING);
        e->next_attempt = next;
    }
    closedir(d);
    /* Deleted by hand or by postctl meanwhile: nothing to wait for. */
    for (size_t b = 0; b < qmgr.table_size; b++) {
        struct qmgr_entry *e = qmgr.table[b], *next;

        for (; e; e = next) {
            next = e->hnext;
            if (e->where == QMGR_WAITING && e->scan_gen != qmgr.scan_gen)
                entry_remove(e);
        }
    }
    due_check();
}

/* recover_active - files a previous qmgr left in active/ are delivered first */
static void recover_active(void)
{
    struct dirent *de;
    DIR    *d = opendir("active");
    unsigned n = 0;

    if (d == NULL) {
        msg_warn("open directory active: %m");
        return;
    }
    while ((de = readdir(d)) != NULL) {
        if (queue_id_valid(de->d_name) && entry_find(de->d_name) == NULL) {
            todo_add(entry_add(de->d_name, QMGR_TODO_ACTIVE), QMGR_TODO_ACTIVE, false);
            n++;
        }
    }
    closedir(d);
    if (n > 0)
        msg_info("recovering %u message(s) left in active/", n);
}

/* message_free - close and release an active message (the entry stays) */
static void message_free(struct qmgr_message *msg)
{
    if (msg->fd >= 0)
        close(msg->fd);
    for (size_t i = 0; msg->notes && i < msg->qf.env.nrcpt; i++) {
        free(msg->notes[i].relay);
        free(msg->notes[i].text);
    }
    queue_file_free(&msg->qf);
    free(msg->notes);
    if (msg->entry)
        msg->entry->msg = NULL;
    free(msg);
    qmgr.active_count--;
}

/* log_active - the "queue active" line */
static void log_active(const struct qmgr_message *msg)
{
    msg_info("%s: from=<%s>, size=%" PRIu64 ", nrcpt=%zu (queue active)", msg->entry->id,
             msg->qf.env.sender ? msg->qf.env.sender : "", msg->qf.message_length, msg->qf.env.nrcpt);
}

/* activate - bring one message into active/ and route it */
static void activate(struct qmgr_entry *e)
{
    struct strbuf err = STRBUF_INIT;
    struct qmgr_message *msg;
    const char *src = e->where == QMGR_TODO_INCOMING ? "incoming"
        : e->where == QMGR_TODO_DEFERRED ? "deferred" : "active";
    char    from[64], active[64], new_id[QUEUE_ID_LEN + 1];
    int     fd, rc, saved;

    todo_unlink(e);
    e->where = QMGR_ACTIVE;
    snprintf(from, sizeof(from), "%s/%s", src, e->id);
    snprintf(active, sizeof(active), "active/%s", e->id);
    if (strcmp(src, "active") != 0 && rename(from, active) != 0) {
        if (errno != ENOENT)            /* ENOENT: deleted, or a notification for a done message */
            msg_warn("%s: rename %s to %s: %m", e->id, from, active);
        entry_remove(e);                /* a later scan finds it again if it is still there */
        return;
    }
    fd = open(active, O_RDWR | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) {
        /* Out of descriptors, say: leave it for the next deferred/ scan. */
        saved = errno;
        msg_warn("%s: open %s: %m; moving it to deferred/", e->id, active);
        snprintf(from, sizeof(from), "deferred/%s", e->id);
        if (saved != ENOENT && rename(active, from) != 0)
            msg_warn("%s: rename %s to %s: %m", e->id, active, from);
        entry_remove(e);
        return;
    }
    msg = xcalloc(1, sizeof(*msg));
    msg->fd = fd;
    msg->entry = e;
    e->msg = msg;
    qmgr.active_count++;
    errno = 0;
    rc = queue_file_read(fd, &msg->qf, &err);
    saved = errno;
    if (rc != 0 || strcmp(msg->qf.env.queue_id, e->id) != 0) {
        if (rc == 0)
            sb_set(&err, "queue_id in the file differs from its name");
        if (rc == 0 || read_failed_corrupt(saved)) {
            move_corrupt("active", e->id, sb_str(&err));
        } else {
            /* Leave it for the next deferred/ scan rather than retrying in a loop. */
            msg_warn("%s: read %s: %s", e->id, active, sb_str(&err));
            snprintf(from, sizeof(from), "deferred/%s", e->id);
            if (rename(active, from) != 0)
                msg_warn("%s: rename %s to %s: %m", e->id, active, from);
        }
        message_free(msg);
        entry_remove(e);
        sb_free(&err);
        return;
    }
    msg->notes = xcalloc(msg->qf.env.nrcpt ? msg->qf.env.nrcpt : 1, sizeof(*msg->notes));
    log_active(msg);
    switch (qmgr_route_expand(msg, new_id)) {
    case QMGR_EXPAND_CONTINUE:
        qmgr_route_message(msg);
        if (msg->jobs == 0)
            qmgr_message_done(msg);
        break;
    case QMGR_EXPAND_DEFERRED:
    case QMGR_EXPAND_FAILED:
        qmgr_message_done(msg);
        break;
    case QMGR_EXPAND_REPLACED:
        message_free(msg);
        entry_remove(e);
        /* The replacement goes next, ahead of the backlog. */
        if ((e = entry_find(new_id)) == NULL)
            e = entry_add(new_id, QMGR_TODO_INCOMING);
        if (e->where != QMGR_ACTIVE)
            todo_add(e, QMGR_TODO_INCOMING, true);
        break;
    }
    sb_free(&err);
}

/* pump - activate messages while there is room, a batch per loop turn */
static void pump(evutil_socket_t fd, short what, void *arg)
{
    unsigned n = 0;

    (void) fd;
    (void) what;
    (void) arg;
    while (!queue_stopping && !TAILQ_EMPTY(&qmgr.todo) && qmgr.active_count < qmgr.max_active
           && n++ < QMGR_ACTIVATE_BATCH)
        activate(TAILQ_FIRST(&qmgr.todo));
    pump_request();
}

/* tick - the frequent timer: new files, due deferred messages */
static void tick(evutil_socket_t fd, short what, void *arg)
{
    (void) fd;
    (void) what;
    (void) arg;
    if (queue_stopping)
        return;
    scan_incoming();
    due_check();
    pump_request();
}

/* deferred_run - the queue_run_delay timer */
static void deferred_run(evutil_socket_t fd, short what, void *arg)
{
    (void) fd;
    (void) what;
    (void) arg;
    if (queue_stopping)
        return;
    scan_deferred();
    pump_request();
}

/* qmgr_queue_start - recovery and first scans (after the privilege drop) */
void qmgr_queue_start(void)
{
    struct timeval tick_tv = {QMGR_SCAN_INCOMING_SECS, 0};
    struct timeval run_tv = {(time_t) qmgr.queue_run_delay, 0};
    struct event_base *base = qmgr.svc->base;

    TAILQ_INIT(&qmgr.todo);
    table_grow();
    qmgr.last_tmp_cleanup = 0;          /* clean up at once */
    recover_active();
    scan_incoming();
    scan_deferred();
    qmgr.tick_ev = event_new(base, -1, EV_PERSIST, tick, NULL);
    qmgr.deferred_ev = event_new(base, -1, EV_PERSIST, deferred_run, NULL);
    qmgr.pump_ev = event_new(base, -1, 0, pump, NULL);
    if (qmgr.tick_ev == NULL || qmgr.deferred_ev == NULL || qmgr.pump_ev == NULL
        || event_add(qmgr.tick_ev, &tick_tv) != 0 || event_add(qmgr.deferred_ev, &run_tv) != 0)
        msg_fatal("event_new: out of memory");
    msg_info("queue: %zu message(s) known, up to %u active at once", qmgr.table_count, qmgr.max_active);
    pump_request();
}

/* qmgr_queue_stop - no more activations; what is active finishes or stays in active/ */
void qmgr_queue_stop(void)
{
    queue_stopping = true;
    if (qmgr.tick_ev)
        event_del(qmgr.tick_ev);
    if (qmgr.deferred_ev)
        event_del(qmgr.deferred_ev);
    if (qmgr.pump_ev)
        event_del(qmgr.pump_ev);
}

/*
 * qmgr_queue_notify - incoming/ID was announced. An ID we know as waiting in
 * deferred/ was moved back to incoming/ (postctl queue requeue): it goes now.
 * (Should the file still be in deferred/, the rename fails and the next
 * deferred/ scan finds it again.)
 */
void qmgr_queue_notify(const char *id)
{
    struct qmgr_entry *e;

    if (queue_stopping || !queue_id_valid(id))
        return;
    if ((e = entry_find(id)) == NULL)
        e = entry_add(id, QMGR_TODO_INCOMING);
    else if (e->where != QMGR_WAITING)
        return;
    todo_add(e, QMGR_TODO_INCOMING, false);
    pump_request();
}

/* qmgr_queue_flush - every deferred message is due now */
void qmgr_queue_flush(void)
{
    if (queue_stopping)
        return;
    qmgr_deliver_revive();              /* as Postfix's flush: dead destinations are tried again */
    scan_deferred();
    for (size_t b = 0; b < qmgr.table_size; b++)
        for (struct qmgr_entry *e = qmgr.table[b]; e; e = e->hnext)
            if (e->where == QMGR_WAITING)
                todo_add(e, QMGR_TODO_DEFERRED, false);
    pump_request();
}

/* status_word - the log's name for a recipient state */
static const char *status_word(enum queue_rcpt_state state)
{
    switch (state) {
    case QUEUE_RCPT_DELIVERED:
        return "sent";
    case QUEUE_RCPT_BOUNCED:
        return "bounced";
    case QUEUE_RCPT_DEFERRED:
        return "deferred";
    case QUEUE_RCPT_PENDING:
    default:
        return "pending";
    }
}

/* orcpt_address - the address in a DSN ORCPT ("rfc822;addr" or a bare address) */
static const char *orcpt_address(const char *orcpt)
{
    if (orcpt && strncasecmp(orcpt, "rfc822;", 7) == 0)
        return orcpt + 7;
    return orcpt;
}

/* qmgr_rcpt_result - record a recipient's result in memory; logs when log_it */
void qmgr_rcpt_result(struct qmgr_message *msg, size_t i, enum queue_rcpt_state state,
                      const char *dsn, const char *text, const char *relay, bool log_it)
{
    struct queue_rcpt *rc = &msg->qf.env.rcpts[i];
    struct timeval now = now_tv();
    const char *orig = orcpt_address(rc->orcpt);
    struct strbuf orig_to = STRBUF_INIT;
    double  delay;

    if (i >= msg->qf.env.nrcpt)
        msg_panic("qmgr_rcpt_result: recipient %zu of %zu", i, msg->qf.env.nrcpt);
    rc->state = state;
    snprintf(rc->reason, sizeof(rc->reason), "%s %s", dsn, text);
    msg->notes[i].dirty = !msg->keep_pending;
    free(msg->notes[i].relay);
    msg->notes[i].relay = xstrdup(relay);       /* for the DSN's Remote-MTA */
    free(msg->notes[i].text);
    msg->notes[i].text = xstrdup(text);         /* for its Diagnostic-Code, uncut */
    msg->notes[i].when = now.tv_sec;
    if (!log_it)
        return;
    delay = (double) now.tv_sec + now.tv_usec / 1e6 - (double) msg->qf.env.arrival;
    if (delay < 0)
        delay = 0;
    if (orig && *orig && strcasecmp(orig, rc->address) != 0)
        sb_printf(&orig_to, ", orig_to=<%s>", orig);
    msg_info("%s: to=<%s>%s, relay=%s, delay=%.2f, dsn=%s, status=%s (%s)", msg->entry->id,
             rc->address, sb_str(&orig_to), relay, delay, dsn, status_word(state), text);
    sb_free(&orig_to);
}

/* qmgr_message_flush - write dirty status records into the file */
void qmgr_message_flush(struct qmgr_message *msg)
{
    struct strbuf err = STRBUF_INIT;
    char    reason[QUEUE_REASON_MAX + 1];

    for (size_t i = 0; i < msg->qf.env.nrcpt; i++) {
        struct queue_rcpt *rc = &msg->qf.env.rcpts[i];

        if (msg->notes[i].flags_dirty && !msg->notes[i].dirty && !msg->keep_pending) {
            msg->notes[i].flags_dirty = false;
            sb_reset(&err);
            if (queue_file_update_rcpt_flags(msg->fd, &msg->qf, i, rc->flags, &err) != 0)
                msg_warn("%s: update flags of recipient %zu: %s", msg->entry->id, i, sb_str(&err));
            continue;
        }
        if (!msg->notes[i].dirty)
            continue;
        msg->notes[i].dirty = msg->notes[i].flags_dirty = false;
        /* A copy: the reader keeps its own copy of the reason in rc. */
        snprintf(reason, sizeof(reason), "%s", rc->reason);
        sb_reset(&err);
        if (queue_file_update_rcpt(msg->fd, &msg->qf, i, rc->state, reason, &err) != 0)
            msg_warn("%s: update status of recipient %zu: %s", msg->entry->id, i, sb_str(&err));
    }
    sb_free(&err);
}

/*
 * qmgr_message_done - no jobs left: expire, queue the DSNs it owes, then
 * remove the file when all recipients are final and notified, else defer it.
 * The DSNs are committed before the file goes or is marked, so a crash
 * repeats a notification rather than losing it.
 */
void qmgr_message_done(struct qmgr_message *msg)
{
    struct qmgr_entry *e = msg->entry;
    struct strbuf err = STRBUF_INIT;
    int64_t now = (int64_t) time(NULL);
    bool    final = true, notified;
    char    active[64], deferred[64];
    uint32_t attempts;
    int64_t next;

    if (msg->jobs != 0)
        msg_panic("qmgr_message_done: %s has %u job(s) left", e->id, msg->jobs);
    qmgr_bounce_expire(msg, now);
    notified = qmgr_bounce_notify(msg, now);
    for (size_t i = 0; i < msg->qf.env.nrcpt; i++)
        if (msg->qf.env.rcpts[i].state != QUEUE_RCPT_DELIVERED
            && msg->qf.env.rcpts[i].state != QUEUE_RCPT_BOUNCED)
            final = false;
    snprintf(active, sizeof(active), "active/%s", e->id);
    if (final && notified) {
        /* No status writes first: the file is going away (a crash before the unlink only repeats). */
        if (unlink(active) != 0 && errno != ENOENT)
            msg_warn("%s: remove %s: %m", e->id, active);
        else
            msg_info("%s: removed", e->id);
        message_free(msg);
        entry_remove(e);
        pump_request();
        return;
    }
    qmgr_message_flush(msg);
    attempts = msg->qf.attempts < UINT32_MAX ? msg->qf.attempts + 1 : UINT32_MAX;
    next = now + (msg->retry_now ? 0 : qmgr_backoff(attempts, qmgr.min_backoff, qmgr.max_backoff));
    if (queue_file_update_schedule(msg->fd, &msg->qf, attempts, next, &err) != 0)
        msg_warn("%s: update schedule: %s", e->id, sb_str(&err));
    snprintf(deferred, sizeof(deferred), "deferred/%s", e->id);
    if (rename(active, deferred) != 0) {
        /* It stays in active/ and is recovered at the next start. */
        msg_warn("%s: rename %s to %s: %m", e->id, active, deferred);
        message_free(msg);
        entry_remove(e);
    } else {
        message_free(msg);
        e->where = QMGR_WAITING;
        e->next_attempt = next;
        e->scan_gen = qmgr.scan_gen;
    }
    sb_free(&err);
    pump_request();
}

#define COPY_CHUNK (64 * 1024)

/* qmgr_message_copy - bytes [off, off+len) of msg's queue file into the writer */
int qmgr_message_copy(struct qmgr_message *msg, uint64_t off, uint64_t len, struct queue_writer *w,
                      struct strbuf *err)
{
    char   *buf = xmalloc(COPY_CHUNK);
    int     ret = 0;

    while (len > 0) {
        size_t  want = len < COPY_CHUNK ? (size_t) len : COPY_CHUNK;
        ssize_t n = pread(msg->fd, buf, want, (off_t) off);

        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            sb_printf(err, "read queue file: %s", n < 0 ? strerror(errno) : "unexpected end of file");
            ret = -1;
            break;
        }
        if (queue_writer_write(w, buf, (size_t) n, err) != 0) {
            ret = -1;
            break;
        }
        off += (uint64_t) n;
        len -= (uint64_t) n;
    }
    free(buf);
    return ret;
}
