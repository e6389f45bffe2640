/*
 * queue_file - the one self-describing file a queued message lives in.
 *
 * Layout (all integers little-endian, see queue_file.c for the exact offsets):
 *
 *   header      fixed 64 bytes: magic "PSTQ", format version, the offsets and
 *               lengths of the parts below, the recipient count, a CRC-32 of
 *               header+envelope, and a CRC-32 of the message
 *   schedule    fixed 32 bytes, rewritten in place: attempts, message flags
 *               (delay warning sent), next attempt time, its own CRC-32 (so
 *               a torn write is detected)
 *   envelope    "name=value\n" lines: queue_id, sender, arrival, client
 *               address/name, helo, protocol, size, body type, DSN envid and
 *               ret, "smtputf8=1" when the client declared SMTPUTF8, then one
 *               "rcpt=ADDRESS" line per recipient ("orcpt=", "notify="
 *               attributes may follow a rcpt line and belong to it)
 *   status      one fixed 160-byte record per recipient, rewritten in place:
 *               state (pending / delivered / bounced / deferred), flags
 *               (sender notified), attempts, last change, a reason text,
 *               its own CRC-32
 *   message     the message as stored: LF line ends, a Received: header
 *               already prepended by smtpd
 *
 * Writing is create-then-rename: the file is built as incoming/ID.tmp, fsynced
 * and renamed to incoming/ID, so a file with a valid queue ID for a name is
 * always complete. Everything read back is validated (magic, version, offsets
 * inside the file, CRCs, envelope syntax, recipient count): a file that fails
 * is corrupt and its reader moves it to corrupt/: queue_file_read fails with
 * errno EBADMSG for a corrupt file, any other errno is an I/O error to retry.
 * The reader cannot see the file name: callers compare env.queue_id with it.
 * Limits: 100,000 recipients, 1,000 bytes per envelope value.
 *
 * Queue IDs: 18 characters [0-9A-F]: 13 hex digits of microseconds since the
 * epoch then 5 random hex digits, so they sort by arrival and are safe file
 * names. queue_id_valid() is the test for "is this name a queue file".
 */
#ifndef POSTERN_QUEUE_FILE_H
#define POSTERN_QUEUE_FILE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "strbuf.h"

#define QUEUE_ID_LEN        18
#define QUEUE_REASON_MAX    128         /* bytes of reason text kept per recipient */
#define QUEUE_ENVELOPE_MAX  (4 * 1024 * 1024)

enum queue_rcpt_state {
    QUEUE_RCPT_PENDING = 0,
    QUEUE_RCPT_DELIVERED = 1,
    QUEUE_RCPT_BOUNCED = 2,
    QUEUE_RCPT_DEFERRED = 3,            /* tried, will be tried again */
};

/* Recipient flags (status record). */
#define QUEUE_RCPT_F_NOTIFIED   0x01    /* the sender's DSN for the final state is queued */

/* Message flags (schedule record). */
#define QUEUE_FLAG_DELAY_WARNED 0x01    /* the delay warning is queued: never another */

struct queue_rcpt {
    char   *address;                    /* the envelope recipient */
    char   *orcpt;                      /* original recipient (DSN ORCPT) or NULL */
    char   *notify;                     /* DSN NOTIFY or NULL */
    enum queue_rcpt_state state;
    unsigned flags;                     /* QUEUE_RCPT_F_* */
    uint32_t attempts;
    int64_t updated;                    /* time of the last state change */
    char    reason[QUEUE_REASON_MAX + 1];
};

struct queue_envelope {
    char    queue_id[QUEUE_ID_LEN + 1];
    char   *sender;                     /* "" for the null sender */
    int64_t arrival;                    /* seconds since the epoch */
    char   *client_addr;                /* may be NULL (local submission) */
    char   *client_name;
    char   *helo;
    char   *protocol;                   /* "SMTP", "ESMTP", "ESMTPS", ... */
    char   *body_type;                  /* "7BIT", "8BITMIME" or NULL */
    char   *envid;                      /* DSN ENVID or NULL */
    char   *ret;                        /* DSN RET (FULL/HDRS) or NULL */
    bool    smtputf8;                   /* SMTPUTF8 (RFC 6531): UTF-8 in envelope or headers */
    struct queue_rcpt *rcpts;
    size_t  nrcpt;
};

/* A queue file that was read and validated. */
struct queue_file {
    struct queue_envelope env;
    uint64_t message_offset;            /* where the message starts in the file */
    uint64_t message_length;
    uint32_t attempts;                  /* schedule record */
    uint32_t flags;                     /* schedule record: QUEUE_FLAG_* */
    int64_t next_attempt;
    uint64_t status_offset;             /* where recipient i's record starts: + i * 160 */
};

/* queue_id_new - a fresh ID (unique with high probability: create with O_EXCL) */
void queue_id_new(char id[QUEUE_ID_LEN + 1]);
bool queue_id_valid(const char *name);

/* Writing: create, stream the message, commit (or abort). Failures leave errno set
 * (ENOSPC/EDQUOT: out of space), so that callers can tell a full disk from other errors. */
struct queue_writer;
/* queue_writer_create - dirfd: the queue directory; file made as incoming/ID.tmp. env->queue_id is filled in. */
struct queue_writer *queue_writer_create(int queue_dirfd, struct queue_envelope *env, struct strbuf *err);
int  queue_writer_write(struct queue_writer *w, const void *data, size_t len, struct strbuf *err);
/* queue_writer_commit - header, fsync, rename to incoming/ID, fsync incoming/; the writer is freed */
int  queue_writer_commit(struct queue_writer *w, struct strbuf *err);
/* queue_writer_commit_to - the same into queue directory dir: "hold" parks it where qmgr never looks */
int  queue_writer_commit_to(struct queue_writer *w, const char *dir, struct strbuf *err);
/* queue_writer_abort - remove the temporary file; the writer is freed */
void queue_writer_abort(struct queue_writer *w);
uint64_t queue_writer_size(const struct queue_writer *w);   /* message bytes so far */
/*
 * queue_writer_map_message - the message written so far, mapped read-only
 * (for checks before the commit, without a copy in memory); release it with
 * queue_message_unmap(*data, *len). -1 with err.
 */
int  queue_writer_map_message(struct queue_writer *w, const char **data, size_t *len,
                              struct strbuf *err);
void queue_message_unmap(const char *data, size_t len);

/* queue_file_read - read and validate the file open at fd; -1 with err: corrupt (or I/O error, errno set) */
int  queue_file_read(int fd, struct queue_file *qf, struct strbuf *err);
void queue_file_free(struct queue_file *qf);
/* queue_envelope_free - free every string an envelope owns (all of its pointer fields) */
void queue_envelope_free(struct queue_envelope *env);
/* queue_file_update_rcpt - rewrite recipient i's status record (its flags as in qf) in place and fdatasync */
int  queue_file_update_rcpt(int fd, struct queue_file *qf, size_t i, enum queue_rcpt_state state,
                            const char *reason, struct strbuf *err);
/* queue_file_update_rcpt_flags - set recipient i's flags only (state, reason, attempts kept) */
int  queue_file_update_rcpt_flags(int fd, struct queue_file *qf, size_t i, unsigned flags, struct strbuf *err);
/* queue_file_update_schedule - rewrite the schedule record (qf->flags with it) in place and fdatasync */
int  queue_file_update_schedule(int fd, struct queue_file *qf, uint32_t attempts, int64_t next_attempt,
                                struct strbuf *err);
const char *queue_rcpt_state_name(enum queue_rcpt_state state);

#endif
