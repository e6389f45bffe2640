/*
 * qmgr - the queue manager: internal interface shared by its modules.
 *
 *   qmgr.c          main program: settings, the notification socket
 *                   (smtpd, sendmail, postctl say "type=new queue_id=ID")
 *   qmgr_queue.c    the queue on disk: which messages exist and where
 *                   (an ID table), scans of incoming/ deferred/ active/,
 *                   activation (incoming|deferred -> active), completion
 *                   (remove, or schedule and move to deferred/), corrupt files
 *   qmgr_route.c    alias expansion (once, rewriting the queue file) and the
 *                   domain class -> transport decision per recipient
 *   qmgr_deliver.c  delivery agents: per-transport job queues, a bounded
 *                   number of requests in flight, results back into the file
 *   qmgr_pickup.c   the pickup step: maildrop/ files that sendmail left
 *                   become queue files in incoming/
 *   qmgr_bounce.c   expiry, and the DSNs a completed attempt owes: bounces,
 *                   delay warnings, success notices (queued as new files)
 *
 * Everything runs in one libevent loop; no call blocks for long except the
 * local file operations on the queue itself and the connect()+send() of a
 * request to a delivery agent on a UNIX socket (bounded by a short deadline).
 */
#ifndef POSTERN_QMGR_H
#define POSTERN_QMGR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/queue.h>

#include "queue_file.h"
#include "strbuf.h"

struct service;
struct directory;
struct event;

#define QMGR_SCAN_INCOMING_SECS  5      /* incoming/ scan and due check interval */
#define QMGR_TMP_MAX_AGE         3600   /* an incoming/ID.tmp older than this is debris */
#define QMGR_MAX_ACTIVE          1000   /* queue files open at once */
#define QMGR_ACTIVATE_BATCH      64     /* activations per loop turn, so I/O stays served */
#define QMGR_JOB_RCPT_MAX        100    /* recipients per delivery request */
#define QMGR_CONNECT_TIMEOUT_MS  2000
#define QMGR_SEND_TIMEOUT_MS     10000
#define QMGR_MAX_CLIENTS         256    /* notification connections */

/* Where a known queue ID is. */
enum qmgr_where {
    QMGR_TODO_INCOMING,                 /* in incoming/, waiting for a free active slot */
    QMGR_TODO_DEFERRED,                 /* in deferred/, due, waiting likewise */
    QMGR_TODO_ACTIVE,                   /* in active/ at start-up: recovery */
    QMGR_ACTIVE,                        /* being delivered (has a message) */
    QMGR_WAITING,                       /* in deferred/, next_attempt in the future */
};

struct qmgr_message;

/* One queue ID that qmgr knows about. */
struct qmgr_entry {
    char    id[QUEUE_ID_LEN + 1];
    enum qmgr_where where;
    int64_t next_attempt;               /* QMGR_WAITING */
    unsigned scan_gen;                  /* last deferred/ scan that saw the file */
    struct qmgr_message *msg;           /* QMGR_ACTIVE */
    struct qmgr_entry *hnext;           /* hash chain */
    bool    on_todo;                    /* linked by todo (where is QMGR_TODO_*) */
    TAILQ_ENTRY(qmgr_entry) todo;
};
TAILQ_HEAD(qmgr_entry_list, qmgr_entry);

/* Per-recipient bookkeeping beside the file's own status records. */
struct qmgr_rcpt_note {
    bool    dirty;                      /* state/reason changed in memory, not yet in the file */
    bool    flags_dirty;                /* only the flags changed (sender notified) */
    char   *relay;                      /* who gave this run's result ("virtual", "host[addr]:port") */
    char   *text;                       /* its whole reason (the file keeps QUEUE_REASON_MAX bytes) */
    int64_t when;                       /* when, 0: not in this run */
};

/* A message in active/: its open file and delivery progress. */
struct qmgr_message {
    struct qmgr_entry *entry;
    int     fd;                         /* active/ID, O_RDWR */
    struct queue_file qf;
    struct qmgr_rcpt_note *notes;       /* qf.env.nrcpt */
    unsigned jobs;                      /* delivery jobs queued or in flight */
    bool    keep_pending;               /* expansion failed temporarily: leave status records */
    bool    retry_now;                  /* deferred only because a table changed: no back-off */
};

struct qmgr_transport;

struct qmgr {
    struct service *svc;
    struct directory *dir;
    struct maplist *transport_maps;     /* transport_maps, opened at start */
    int     queue_dirfd;
    /* settings */
    long long queue_run_delay;
    long long min_backoff;
    long long max_backoff;
    long long agent_timeout;            /* daemon_timeout: a delivery request's longest wait */
    unsigned max_active;
    /* the queue */
    struct qmgr_entry **table;          /* hash of every known ID */
    size_t  table_size;
    size_t  table_count;
    struct qmgr_entry_list todo;
    unsigned active_count;
    unsigned scan_gen;
    int64_t last_tmp_cleanup;
    struct event *tick_ev;              /* incoming scan + due check */
    struct event *deferred_ev;          /* deferred/ scan */
    struct event *pump_ev;              /* activate from the todo list */
    /* delivery */
    struct qmgr_transport *transports;
    unsigned inflight;                  /* requests at agents, all transports */
    /* notification clients */
    unsigned client_count;
};

extern struct qmgr qmgr;

/* qmgr_queue.c */
void qmgr_queue_start(void);                    /* recovery and first scans (after the privilege drop) */
void qmgr_queue_stop(void);                     /* no more activations */
void qmgr_queue_notify(const char *id);         /* incoming/ID was announced */
void qmgr_queue_flush(void);                    /* every deferred message is due now */
void qmgr_message_done(struct qmgr_message *msg);   /* no jobs left: remove or defer */
void qmgr_message_flush(struct qmgr_message *msg);  /* write dirty status records */
/* qmgr_rcpt_result - record a recipient's result in memory; logs when log_it */
void qmgr_rcpt_result(struct qmgr_message *msg, size_t i, enum queue_rcpt_state state,
                      const char *dsn, const char *text, const char *relay, bool log_it);
/* qmgr_message_copy - bytes [off, off+len) of msg's queue file into w (alias expansion, DSNs) */
int qmgr_message_copy(struct qmgr_message *msg, uint64_t off, uint64_t len, struct queue_writer *w,
                      struct strbuf *err);
int64_t qmgr_backoff(uint32_t attempts, long long min_backoff, long long max_backoff);

/* qmgr_bounce.c */
struct config;
void qmgr_bounce_init(struct config *cfg);      /* lifetimes, delay_warning_time, notice recipients */
/* qmgr_bounce_expire - deferred recipients of a message past its lifetime become bounced (5.4.7) */
bool qmgr_bounce_expire(struct qmgr_message *msg, int64_t now);
/* qmgr_bounce_notify - queue every DSN the message owes now; false: one could not be queued (retry later) */
bool qmgr_bounce_notify(struct qmgr_message *msg, int64_t now);

/* qmgr_pickup.c */
void qmgr_pickup_init(struct config *cfg);      /* myorigin, append_at_myorigin, size limit */
void qmgr_pickup_start(struct service *svc);    /* first scan and the timer (after qmgr_queue_start) */
void qmgr_pickup_scan(void);                    /* take what is in maildrop/ now (sendmail's nudge) */
void qmgr_pickup_stop(void);

/* qmgr_route.c */
enum qmgr_expand_result {
    QMGR_EXPAND_CONTINUE,               /* recipients are final: route them */
    QMGR_EXPAND_DEFERRED,               /* a table failed: every pending recipient deferred */
    QMGR_EXPAND_REPLACED,               /* a new queue file took over (new_id) */
    QMGR_EXPAND_FAILED,                 /* could not write the new file: deferred likewise */
};
enum qmgr_expand_result qmgr_route_expand(struct qmgr_message *msg, char new_id[QUEUE_ID_LEN + 1]);
void qmgr_route_message(struct qmgr_message *msg);   /* results or jobs for every open recipient */

/* qmgr_deliver.c */
void qmgr_deliver_init(struct service *svc);    /* transports from main.cf/master.cf (privileged) */
struct qmgr_transport *qmgr_transport_find(const char *name);  /* NULL: no such agent */
bool qmgr_transport_wants_nexthop(const struct qmgr_transport *tr);  /* smtp/lmtp, not virtual */
/* qmgr_deliver_add - queue a job for recipients idx[0..n) of msg (idx copied) to nexthop (NULL: none) */
void qmgr_deliver_add(struct qmgr_transport *tr, struct qmgr_message *msg, const char *nexthop,
                      const size_t *idx, size_t n);
void qmgr_deliver_stop(void);                   /* start no more requests */
void qmgr_deliver_revive(void);                 /* forget dead destinations (flush) */

#endif
