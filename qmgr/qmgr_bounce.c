/*
 * qmgr_bounce - telling senders: expiry, bounces, delay warnings and success
 * notices as RFC 3464 DSNs (composed by lib/dsn).
 *
 * Interface (qmgr.h): qmgr_bounce_init(), qmgr_bounce_expire(),
 * qmgr_bounce_notify(). Both run from qmgr_message_done(), after every
 * delivery attempt of a message, before it is removed or deferred.
 *
 * Expiry: a message older than maximal_queue_lifetime (bounce_queue_lifetime
 * for the null sender) turns its deferred recipients into bounced ones with
 * status 5.4.7 (RFC 3463: delivery time expired) and the last deferral
 * reason. 0 means one attempt: the first deferral expires.
 *
 * What is owed, per recipient (NOTIFY as RFC 3461 says, absent NOTIFY being
 * FAILURE,DELAY):
 *   bounced, NOTIFY has FAILURE            a failure DSN (Action: failed)
 *   delivered, NOTIFY has SUCCESS          a success DSN (delivered/relayed)
 *   deferred, NOTIFY has DELAY, the message queued delay_warning_time
 *   and not warned before                  one delay warning per message
 * Recipients reported together go in one DSN per kind. A DSN is a new queue
 * file in incoming/ (the writer smtpd uses: fsynced and renamed before it
 * counts), with the null sender, to the original sender. Only after its
 * commit are the recipients marked notified (QUEUE_RCPT_F_NOTIFIED, or the
 * message's QUEUE_FLAG_DELAY_WARNED, written by the caller), so a crash in
 * between repeats a DSN and never loses one. A DSN that cannot be written
 * leaves its recipients unmarked and the message in the queue: the next
 * attempt tries again.
 *
 * The postmaster, as Postfix's notify_classes says (default "resource,
 * software": none of the classes below):
 *   bounce    a copy of each non-delivery notice, the original's headers
 *             only, to bounce_notice_recipient; it names every bounced
 *             recipient, whatever NOTIFY says (so even NOTIFY=NEVER), as
 *             Postfix's copies do. Implies 2bounce, as in Postfix.
 *   delay     likewise for each delay warning, to delay_notice_recipient
 *   2bounce   a failed null-sender message (a bounce that bounced: a double
 *             bounce), to 2bounce_notice_recipient; without 2bounce (or
 *             bounce) it is dropped with a log line, so backscatter never
 *             floods the postmaster's mailbox
 * (resource, software, policy, protocol, data are smtpd's session
 * transcripts, which Postern does not send: accepted and ignored.) Every
 * notice to the postmaster has the sender double_bounce_sender@myhostname,
 * and mail from that address is never reported on (a failure is dropped
 * with a log line, no delay warning), so no notice ever causes another.
 * A copy is committed (fsynced) after the sender's notice and before the
 * recipients are marked, so a crash repeats both and loses neither. A copy
 * that cannot be queued is a warning and is not tried again (Postfix's
 * rule: trying again would repeat the sender's notice). No delay warnings
 * or success notices for the null sender.
 *
 * The returned message: RET=HDRS gives its headers, RET=FULL or no RET the
 * whole message (Postfix's default) unless it is larger than
 * bounce_size_limit, then the headers too. Delay warnings, success notices
 * and the postmaster's copies carry the headers only, as Postfix's do.
 *
 * Diagnostics: "ID: sender non-delivery notification: NEWID", "ID: sender
 * delay notification: NEWID", "ID: sender delivery status notification:
 * NEWID", "ID: postmaster non-delivery notification: NEWID" (a double bounce
 * or a bounce's copy), "ID: postmaster delay notification: NEWID", "ID:
 * undeliverable postmaster notification discarded", "ID: double bounce
 * dropped: notify_classes has no 2bounce", "ID: from=<S>, status=expired,
 * returned to sender", warnings when a DSN cannot be queued ("ID: postmaster
 * notice failed while bouncing to <S>" for a copy).
 */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <unistd.h>

#include "config.h"
#include "dsn.h"
#include "log.h"
#include "mem.h"
#include "queue_file.h"
#include "strbuf.h"
#include "strlist.h"

#include "qmgr.h"


static struct {
    char   *myhostname;
    char   *myorigin;
    long long max_lifetime;             /* maximal_queue_lifetime */
    long long bounce_lifetime;          /* bounce_queue_lifetime */
    long long delay_warning;            /* delay_warning_time, 0: off */
    long long size_limit;               /* bounce_size_limit */
    unsigned notify;                    /* notify_classes: NOTIFY_* */
    char   *bounce_rcpt;                /* bounce_notice_recipient, qualified; "" none */
    char   *delay_rcpt;                 /* delay_notice_recipient, likewise */
    char   *twobounce_rcpt;             /* 2bounce_notice_recipient, likewise */
    char   *double_bounce;              /* double_bounce_sender@myhostname */
} bs;

/* The notify_classes this module acts on. */
#define NOTIFY_BOUNCE   0x01
#define NOTIFY_2BOUNCE  0x02
#define NOTIFY_DELAY    0x04

/* Who a notice is for, which decides its sender, subject and third part. */
enum audience {
    TO_SENDER,                          /* from <>, the original as RET says */
    DOUBLE_BOUNCE,                      /* a null-sender failure to the postmaster, as RET says */
    POSTMASTER_COPY,                    /* a copy of the sender's notice, headers only */
};

/* qualify - an address with a domain: bare names get @myorigin, as Postfix appends it */
static char *qualify(const char *address)
{
    struct strbuf sb = STRBUF_INIT;

    sb_puts(&sb, address);
    if (*address && strchr(address, '@') == NULL)
        sb_printf(&sb, "@%s", bs.myorigin);
    return sb_detach(&sb);
}

/* notify_mask - the classes of notify_classes we act on (config.c has checked every name) */
static unsigned notify_mask(const char *value)
{
    struct strlist words = STRLIST_INIT;
    unsigned mask = 0;

    strlist_split(&words, value);
    for (size_t i = 0; i < words.count; i++) {
        if (strcasecmp(words.items[i], "bounce") == 0)
            mask |= NOTIFY_BOUNCE;
        else if (strcasecmp(words.items[i], "2bounce") == 0)
            mask |= NOTIFY_2BOUNCE;
        else if (strcasecmp(words.items[i], "delay") == 0)
            mask |= NOTIFY_DELAY;
    }
    strlist_free(&words);
    return mask;
}

/* qmgr_bounce_init - the settings (main.cf) */
void qmgr_bounce_init(struct config *cfg)
{
    struct strbuf sb = STRBUF_INIT;

    bs.myhostname = xstrdup(config_str(cfg, "myhostname"));
    bs.myorigin = xstrdup(config_str(cfg, "myorigin"));
    bs.max_lifetime = config_time(cfg, "maximal_queue_lifetime");
    bs.bounce_lifetime = config_time(cfg, "bounce_queue_lifetime");
    bs.delay_warning = config_time(cfg, "delay_warning_time");
    bs.size_limit = config_size(cfg, "bounce_size_limit");
    bs.notify = notify_mask(config_str(cfg, "notify_classes"));
    bs.bounce_rcpt = qualify(config_str(cfg, "bounce_notice_recipient"));
    bs.delay_rcpt = qualify(config_str(cfg, "delay_notice_recipient"));
    bs.twobounce_rcpt = qualify(config_str(cfg, "2bounce_notice_recipient"));
    sb_printf(&sb, "%s@%s", config_str(cfg, "double_bounce_sender"), bs.myhostname);
    bs.double_bounce = sb_detach(&sb);
    /* Postfix caps the bounce lifetime at the queue lifetime. */
    if (bs.bounce_lifetime > bs.max_lifetime)
        bs.bounce_lifetime = bs.max_lifetime;
}

/* lifetime - how long msg may stay in the queue */
static long long lifetime(const struct qmgr_message *msg)
{
    return *msg->qf.env.sender == '\0' ? bs.bounce_lifetime : bs.max_lifetime;
}

/* qmgr_bounce_expire - deferred recipients of an expired message become bounced */
bool qmgr_bounce_expire(struct qmgr_message *msg, int64_t now)
{
    struct strbuf text = STRBUF_INIT;
    bool    any = false;

    if (now - msg->qf.env.arrival < lifetime(msg))
        return false;
    for (size_t i = 0; i < msg->qf.env.nrcpt; i++) {
        struct queue_rcpt *rc = &msg->qf.env.rcpts[i];
        char    status[DSN_STATUS_MAX];
        const char *last;
        char   *relay;

        if (rc->state != QUEUE_RCPT_DEFERRED)
            continue;
        last = dsn_split_reason(rc->reason, status);
        sb_reset(&text);
        sb_printf(&text, "message expired; last error: %s%s%s", status, *status ? " " : "",
                  msg->notes[i].text ? msg->notes[i].text : last);
        /* Keep the last attempt's relay for Remote-MTA. */
        relay = xstrdup(msg->notes[i].relay ? msg->notes[i].relay : "none");
        qmgr_rcpt_result(msg, i, QUEUE_RCPT_BOUNCED, "5.4.7", sb_str(&text), relay, true);
        free(relay);
        any = true;
    }
    if (any)
        msg_info("%s: from=<%s>, status=expired, returned to sender", msg->entry->id, msg->qf.env.sender);
    sb_free(&text);
    return any;
}

/* One notification being put together. */
struct notice {
    enum dsn_kind kind;
    size_t *idx;                        /* the recipients it reports */
    size_t  n;
    struct dsn_rcpt *rcpts;
    char  (*status)[DSN_STATUS_MAX];
};

/* notice_init - room for every recipient of msg */
static void notice_init(struct notice *nt, enum dsn_kind kind, const struct qmgr_message *msg)
{
    size_t  cap = msg->qf.env.nrcpt ? msg->qf.env.nrcpt : 1;

    nt->kind = kind;
    nt->n = 0;
    nt->idx = xcalloc(cap, sizeof(*nt->idx));
    nt->rcpts = xcalloc(cap, sizeof(*nt->rcpts));
    nt->status = xcalloc(cap, sizeof(*nt->status));
}

/* notice_free - release what notice_init made */
static void notice_free(struct notice *nt)
{
    free(nt->idx);
    free(nt->rcpts);
    free(nt->status);
}

/* action_of - the Action field for recipient i in a notice of kind */
static const char *action_of(const struct qmgr_message *msg, size_t i, enum dsn_kind kind)
{
    const char *relay = msg->notes[i].relay;

    switch (kind) {
    case DSN_DELAY:
        return "delayed";
    case DSN_SUCCESS:
        /* Handed to another MTA ("host[addr]:port"): it is that MTA's to deliver. */
        return relay && strchr(relay, '[') ? "relayed" : "delivered";
    case DSN_FAILURE:
    default:
        return "failed";
    }
}

/* notice_add - recipient i of msg into the notice */
static void notice_add(struct notice *nt, const struct qmgr_message *msg, size_t i)
{
    const struct queue_rcpt *rc = &msg->qf.env.rcpts[i];
    struct dsn_rcpt *d = &nt->rcpts[nt->n];
    const char *text = dsn_split_reason(rc->reason, nt->status[nt->n]);

    if (nt->status[nt->n][0] == '\0')
        snprintf(nt->status[nt->n], DSN_STATUS_MAX, "%s",
                 nt->kind == DSN_FAILURE ? "5.0.0" : nt->kind == DSN_DELAY ? "4.0.0" : "2.0.0");
    d->address = rc->address;
    d->orcpt = rc->orcpt;
    d->action = action_of(msg, i, nt->kind);
    d->status = nt->status[nt->n];
    /* This run's whole text when we have it; after a restart, the file's. */
    d->text = msg->notes[i].text ? msg->notes[i].text : text;
    d->relay = msg->notes[i].relay;
    d->last_attempt = msg->notes[i].when ? msg->notes[i].when : rc->updated;
    nt->idx[nt->n++] = i;
}

/* header_bytes - the length of the original's header section (within bounce_size_limit) */
static int header_bytes(struct qmgr_message *msg, uint64_t *len, struct strbuf *err)
{
    uint64_t max = msg->qf.message_length;
    char   *buf;
    size_t  got = 0;
    bool    complete;

    if (bs.size_limit > 0 && max > (uint64_t) bs.size_limit)
        max = (uint64_t) bs.size_limit;
    buf = xmalloc(max ? (size_t) max : 1);
    while (got < max) {
        ssize_t n = pread(msg->fd, buf + got, (size_t) max - got, (off_t) (msg->qf.message_offset + got));

        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            sb_printf(err, "read queue file: %s", n < 0 ? strerror(errno) : "unexpected end of file");
            free(buf);
            return -1;
        }
        got += (size_t) n;
    }
    *len = dsn_header_length(buf, got, &complete);
    free(buf);
    return 0;
}

/*
 * make_boundary - "ID.TIME.RANDOM/myhostname": the original's sender knows
 * the queue ID and can guess the time, not 64 random bits.
 */
static void make_boundary(const struct qmgr_message *msg, int64_t now, char *buf, size_t size)
{
    uint64_t rnd = 0;

    if (getrandom(&rnd, sizeof(rnd), GRND_NONBLOCK) != (ssize_t) sizeof(rnd))
        rnd = (uint64_t) now * 6364136223846793005ULL ^ (uint64_t) (uintptr_t) msg;
    snprintf(buf, size, "%s.%lld.%016llx/%.60s", msg->entry->id, (long long) now,
             (unsigned long long) rnd, bs.myhostname);
}

/*
 * queue_notice - compose the notice for its audience and commit it as a new
 * queue file to rcpt; 0 with new_id.
 */
static int queue_notice(struct qmgr_message *msg, const struct notice *nt, enum audience who,
                        const char *rcpt, int64_t now, char new_id[QUEUE_ID_LEN + 1], struct strbuf *err)
{
    const struct queue_envelope *orig = &msg->qf.env;
    struct dsn_report r;
    struct queue_envelope env;
    struct queue_rcpt to;
    struct queue_writer *w;
    struct strbuf head = STRBUF_INIT, tail = STRBUF_INIT;
    bool    want_full = nt->kind == DSN_FAILURE && who != POSTMASTER_COPY
        && !(orig->ret && strcasecmp(orig->ret, "HDRS") == 0);
    uint64_t part_len = msg->qf.message_length;
    char    boundary[128];
    int     ret = -1;

    memset(&r, 0, sizeof(r));
    r.kind = nt->kind;
    r.postmaster_copy = who != TO_SENDER;
    r.myhostname = bs.myhostname;
    r.queue_id = msg->entry->id;
    r.sender = orig->sender;
    r.to = rcpt;
    r.envid = orig->envid;
    r.arrival = orig->arrival;
    r.now = now;
    r.will_retry_until = orig->arrival + lifetime(msg);
    r.delayed_for = bs.delay_warning;
    r.lifetime = lifetime(msg);
    r.rcpts = nt->rcpts;
    r.nrcpt = nt->n;
    r.full = want_full && (bs.size_limit <= 0 || msg->qf.message_length <= (uint64_t) bs.size_limit);
    r.eight_bit = orig->body_type && strcasecmp(orig->body_type, "8BITMIME") == 0;
    r.smtputf8 = orig->smtputf8;
    if (!r.full && header_bytes(msg, &part_len, err) != 0)
        return -1;
    make_boundary(msg, now, boundary, sizeof(boundary));
    r.boundary = boundary;

    memset(&env, 0, sizeof(env));
    memset(&to, 0, sizeof(to));
    to.address = (char *) rcpt;
    /* The postmaster's notices come from the double-bounce address: their failures are dropped. */
    env.sender = who == TO_SENDER ? "" : bs.double_bounce;
    env.arrival = now;
    env.protocol = "local";
    env.rcpts = &to;
    env.nrcpt = 1;
    env.body_type = dsn_compose_head(&r, &head) ? "8BITMIME" : "7BIT";
    env.smtputf8 = orig->smtputf8;
    dsn_compose_tail(&r, &tail);
    w = queue_writer_create(qmgr.queue_dirfd, &env, err);
    if (w == NULL)
        goto out;
    if (queue_writer_write(w, head.data, sb_len(&head), err) != 0
        || qmgr_message_copy(msg, msg->qf.message_offset, part_len, w, err) != 0
        || queue_writer_write(w, tail.data, sb_len(&tail), err) != 0) {
        queue_writer_abort(w);
        goto out;
    }
    if (queue_writer_commit(w, err) != 0)
        goto out;
    snprintf(new_id, QUEUE_ID_LEN + 1, "%s", env.queue_id);
    ret = 0;
out:
    sb_free(&head);
    sb_free(&tail);
    return ret;
}

/* mark_notified - after the commit: these recipients need no further notice */
static void mark_notified(struct qmgr_message *msg, const struct notice *nt)
{
    for (size_t k = 0; k < nt->n; k++) {
        msg->qf.env.rcpts[nt->idx[k]].flags |= QUEUE_RCPT_F_NOTIFIED;
        msg->notes[nt->idx[k]].flags_dirty = true;
    }
}

/* commit_notice - queue one notice to rcpt and log it as what; false: not queued */
static bool commit_notice(struct qmgr_message *msg, const struct notice *nt, enum audience who,
                          const char *rcpt, const char *what, int64_t now)
{
    struct strbuf err = STRBUF_INIT;
    char    new_id[QUEUE_ID_LEN + 1];

    if (queue_notice(msg, nt, who, rcpt, now, new_id, &err) != 0) {
        /* A postmaster's copy is not tried again (see notify_sender). */
        msg_warn("%s: cannot queue a delivery status notification: %s%s", msg->entry->id, sb_str(&err),
                 who == POSTMASTER_COPY ? "" : "; will try again");
        sb_free(&err);
        return false;
    }
    msg_info("%s: %s notification: %s", msg->entry->id, what, new_id);
    qmgr_queue_notify(new_id);
    sb_free(&err);
    return true;
}

/* copy_recipient - who gets the postmaster's copy of a sender's notice of kind; NULL: nobody */
static const char *copy_recipient(enum dsn_kind kind)
{
    const char *rcpt = NULL;

    if (kind == DSN_FAILURE && (bs.notify & NOTIFY_BOUNCE))
        rcpt = bs.bounce_rcpt;
    else if (kind == DSN_DELAY && (bs.notify & NOTIFY_DELAY))
        rcpt = bs.delay_rcpt;
    return rcpt && *rcpt ? rcpt : NULL;
}

/*
 * notify_sender - the sender's notice (the recipients whose NOTIFY asks for
 * it), then the postmaster's copy (every recipient, whatever NOTIFY says, as
 * Postfix's do). A copy that cannot be queued is only a warning, as in
 * Postfix: failing here would send the sender's notice again. The reported
 * recipients are marked after both commits, so a crash repeats both.
 */
static bool notify_sender(struct qmgr_message *msg, const struct notice *to_sender, const struct notice *all,
                          int64_t now)
{
    const char *copy_rcpt = all->n ? copy_recipient(all->kind) : NULL;
    enum dsn_kind kind = all->kind;
    const char *what = kind == DSN_FAILURE ? "sender non-delivery"
        : kind == DSN_DELAY ? "sender delay" : "sender delivery status";

    if (to_sender->n && !commit_notice(msg, to_sender, TO_SENDER, msg->qf.env.sender, what, now))
        return false;
    if (copy_rcpt != NULL
        && !commit_notice(msg, all, POSTMASTER_COPY, copy_rcpt,
                          kind == DSN_DELAY ? "postmaster delay" : "postmaster non-delivery", now))
        msg_warn("%s: postmaster notice failed while %s <%s>", msg->entry->id,
                 kind == DSN_DELAY ? "warning" : "bouncing to", msg->qf.env.sender);
    if (kind != DSN_DELAY)
        mark_notified(msg, copy_rcpt ? all : to_sender);
    return true;
}

/*
 * notify_double_bounce - a failed null-sender message: every such recipient
 * to the postmaster when notify_classes has 2bounce (or bounce, which implies
 * it, as postconf(5) says), else dropped.
 */
static bool notify_double_bounce(struct qmgr_message *msg, const struct notice *all, int64_t now)
{
    if (all->kind != DSN_FAILURE || all->n == 0)
        return true;                    /* nobody wants delay or success news of a bounce */
    if (!(bs.notify & (NOTIFY_2BOUNCE | NOTIFY_BOUNCE)) || *bs.twobounce_rcpt == '\0') {
        msg_info("%s: double bounce dropped: %s", msg->entry->id,
                 *bs.twobounce_rcpt ? "notify_classes has no 2bounce" : "2bounce_notice_recipient is empty");
    } else if (!commit_notice(msg, all, DOUBLE_BOUNCE, bs.twobounce_rcpt, "postmaster non-delivery", now)) {
        return false;
    }
    mark_notified(msg, all);
    return true;
}

/* send_notices - the notices of one kind, to whoever should get them; false: not queued */
static bool send_notices(struct qmgr_message *msg, const struct notice *to_sender, const struct notice *all,
                         int64_t now)
{
    const char *sender = msg->qf.env.sender;

    if (strcasecmp(sender, bs.double_bounce) == 0) {
        /* Our own postmaster notices are never reported on: that could loop. */
        if (all->kind == DSN_FAILURE && all->n)
            msg_info("%s: undeliverable postmaster notification discarded", msg->entry->id);
        if (all->kind != DSN_DELAY)
            mark_notified(msg, all);
        return true;
    }
    if (*sender == '\0')
        return notify_double_bounce(msg, all, now);
    return notify_sender(msg, to_sender, all, now);
}

/* due - has recipient i reached the state that a notice of kind reports, and not been reported */
static bool due(const struct qmgr_message *msg, size_t i, enum dsn_kind kind)
{
    const struct queue_rcpt *rc = &msg->qf.env.rcpts[i];
    enum queue_rcpt_state want = kind == DSN_FAILURE ? QUEUE_RCPT_BOUNCED
        : kind == DSN_SUCCESS ? QUEUE_RCPT_DELIVERED : QUEUE_RCPT_DEFERRED;

    return rc->state == want && !(rc->flags & QUEUE_RCPT_F_NOTIFIED);
}

/* notify_kind - collect and send the notices of one kind; false: not queued */
static bool notify_kind(struct qmgr_message *msg, enum dsn_kind kind, int64_t now)
{
    struct notice to_sender, all;
    bool    ok;

    notice_init(&to_sender, kind, msg);
    notice_init(&all, kind, msg);
    for (size_t i = 0; i < msg->qf.env.nrcpt; i++) {
        if (!due(msg, i, kind))
            continue;
        /* Success is only ever reported on request: no copies, no override. */
        if (kind != DSN_SUCCESS || dsn_notify_wants(msg->qf.env.rcpts[i].notify, kind))
            notice_add(&all, msg, i);
        if (dsn_notify_wants(msg->qf.env.rcpts[i].notify, kind))
            notice_add(&to_sender, msg, i);
    }
    ok = send_notices(msg, &to_sender, &all, now);
    notice_free(&to_sender);
    notice_free(&all);
    return ok;
}

/* delay_due - is the message's one delay warning due */
static bool delay_due(const struct qmgr_message *msg, int64_t now)
{
    return bs.delay_warning > 0 && !(msg->qf.flags & QUEUE_FLAG_DELAY_WARNED)
        && now - msg->qf.env.arrival >= bs.delay_warning;
}

/* qmgr_bounce_notify - every DSN the message owes now */
bool qmgr_bounce_notify(struct qmgr_message *msg, int64_t now)
{
    bool    ok = true;

    if (!notify_kind(msg, DSN_FAILURE, now))
        ok = false;
    if (!notify_kind(msg, DSN_SUCCESS, now))
        ok = false;
    if (delay_due(msg, now)) {
        /* Sent once or found needless: recorded with the schedule by the caller. */
        if (notify_kind(msg, DSN_DELAY, now))
            msg->qf.flags |= QUEUE_FLAG_DELAY_WARNED;
    }
    return ok;
}
