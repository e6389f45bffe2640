/*
 * smtpd_data - the DATA phase: from the 354 reply to the final ".".
 *
 * Interface (smtpd.h): smtpd_data_begin(), smtpd_data_read(),
 * smtpd_data_chunk(), smtpd_data_problem(), smtpd_data_commit(),
 * smtpd_data_committed(), smtpd_data_abort(), smtpd_data_free().
 *
 * The message ends only at <CR><LF>.<CR><LF>: a line that is exactly ".\r\n"
 * after a real CRLF line end. A bare LF (not preceded by CR) or a bare CR (not
 * followed by LF) never ends a line, so "\n.\n", "\r.\r" and "\n.\r\n" do not
 * end the message; such a message is read to its real end and rejected, so a
 * receiver behind us that reads line ends differently cannot be fed a second,
 * smuggled message (the SMTP smuggling attack).
 *
 * The scanner is a byte state machine that keeps no line in memory: a 10 MB
 * line passes through in SMTPD_DATA_CHUNK pieces, and the only state carried
 * from one piece to the next is where in a line we are. Output for the store
 * is buffered up to one chunk. A message over the size limit is read to its
 * end (so the session stays in sync) without being stored.
 *
 * BDAT (RFC 3030) chunks are not scanned: their length is given, so there is
 * no end-of-data line to smuggle a second message behind, and their bytes go
 * to the store as they are (smtpd_data_chunk), counted against the size
 * limit. A bare LF in a chunk is then a line end, as Postfix takes it.
 *
 * Diagnostics: the final reply is "550 5.5.2" for bare CR/LF, "552 5.3.4" for
 * size, "452 4.3.1" when the store ran out of space and "451 4.3.0" when it
 * failed otherwise, else whatever the store says.
 */
#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/uio.h>

#include <event2/buffer.h>

#include "log.h"
#include "strbuf.h"

#include "smtpd.h"

/* Where the scanner is in the input. */
enum {
    DS_BOL,                             /* at the start of a line (after CRLF) */
    DS_TEXT,                            /* inside a line */
    DS_CR,                              /* a CR that may start a CRLF */
    DS_DOT,                             /* "." at the start of a line */
    DS_DOT_CR,                          /* ".\r" at the start of a line */
};

/* smtpd_data_begin - start reading a message for the opened store handle msg */
void smtpd_data_begin(struct smtpd_data *d, const struct smtpd_store *store, void *msg,
                      long long limit)
{
    d->store = store;
    d->msg = msg;
    d->state = DS_BOL;
    d->size = 0;
    d->limit = limit;
    d->bare_cr = d->bare_lf = false;
    d->too_big = false;
    d->store_errno = 0;
    sb_reset(&d->out);
}

/* flush - hand the buffered content to the store */
static void flush(struct smtpd_data *d)
{
    if (sb_len(&d->out) == 0)
        return;
    if (!d->too_big && !d->store_errno && d->msg != NULL
        && d->store->write(d->msg, sb_str(&d->out), sb_len(&d->out)) < 0)
        d->store_errno = errno ? errno : EIO;
    sb_reset(&d->out);
}

/* emit - content bytes: counted always, buffered only while the message can still be stored */
static void emit(struct smtpd_data *d, const void *data, size_t len)
{
    d->size += (long long) len;
    if (d->limit > 0 && d->size > d->limit && !d->too_big) {
        d->too_big = true;
        sb_reset(&d->out);
    }
    if (d->too_big || d->store_errno)
        return;
    sb_append(&d->out, data, len);
    if (sb_len(&d->out) >= SMTPD_DATA_CHUNK)
        flush(d);
}

/* scan - run the state machine over p[0..n); returns bytes used, *done at the final "." */
static size_t scan(struct smtpd_data *d, const unsigned char *p, size_t n, bool *done)
{
    size_t  i = 0;

    *done = false;
    while (i < n) {
        unsigned char c = p[i];

        switch (d->state) {
        case DS_BOL:
            if (c == '.') {
                d->state = DS_DOT;
                i++;
            } else {
                d->state = DS_TEXT;
            }
            break;
        case DS_TEXT:
            if (c == '\r') {
                d->state = DS_CR;
                i++;
            } else if (c == '\n') {
                d->bare_lf = true;
                emit(d, "\n", 1);
                i++;
            } else {
                size_t  j = i + 1;

                while (j < n && p[j] != '\r' && p[j] != '\n')
                    j++;
                emit(d, p + i, j - i);
                i = j;
            }
            break;
        case DS_CR:
            if (c == '\n') {
                emit(d, "\r\n", 2);
                d->state = DS_BOL;
                i++;
            } else {
                /* The CR stands alone; c is looked at again as text. */
                d->bare_cr = true;
                emit(d, "\r", 1);
                d->state = DS_TEXT;
            }
            break;
        case DS_DOT:
            if (c == '\r') {
                d->state = DS_DOT_CR;
                i++;
            } else {
                /* RFC 5321 4.5.2: a leading dot with more on the line is dropped. */
                d->state = DS_TEXT;
            }
            break;
        case DS_DOT_CR:
            if (c == '\n') {
                *done = true;
                return i + 1;
            }
            d->bare_cr = true;
            emit(d, "\r", 1);
            d->state = DS_TEXT;
            break;
        default:
            msg_panic("smtpd_data: bad scanner state %d", d->state);
        }
    }
    return i;
}

/* smtpd_data_read - consume input up to the end of the message */
enum smtpd_data_status smtpd_data_read(struct smtpd_data *d, struct evbuffer *in)
{
    while (evbuffer_get_length(in) > 0) {
        struct evbuffer_iovec v;
        size_t  len;
        size_t  used;
        bool    done;

        /* Scan the first contiguous piece in place: no copy, no pull-up. */
        if (evbuffer_peek(in, -1, NULL, &v, 1) < 1 || v.iov_len == 0)
            break;
        len = v.iov_len > SMTPD_DATA_CHUNK ? SMTPD_DATA_CHUNK : v.iov_len;
        used = scan(d, v.iov_base, len, &done);
        evbuffer_drain(in, used);
        if (done) {
            flush(d);
            return SMTPD_DATA_DONE;
        }
    }
    flush(d);
    return SMTPD_DATA_MORE;
}

/* smtpd_data_chunk - BDAT content: to the store as it is, counted against the limit */
void smtpd_data_chunk(struct smtpd_data *d, const void *data, size_t len)
{
    emit(d, data, len);
}

/*
 * smtpd_store_error_reply - a full file system is the client's cue to retry
 * later ("452 4.3.1", RFC 3463's mail system full); anything else is
 * Postfix's queue file write error.
 */
const char *smtpd_store_error_reply(int errnum)
{
    if (errnum == ENOSPC || errnum == EDQUOT)
        return "452 4.3.1 Insufficient system storage";
    return "451 4.3.0 Error: queue file write error";
}

/* smtpd_data_problem - after the last byte: the reply if the message cannot be stored */
bool smtpd_data_problem(struct smtpd_data *d, struct strbuf *reply)
{
    flush(d);
    sb_reset(reply);
    if (d->bare_cr || d->bare_lf)
        sb_puts(reply, "550 5.5.2 Error: bare <CR> or <LF> received");
    else if (d->too_big)
        sb_puts(reply, "552 5.3.4 Error: message file too big");
    else if (d->store_errno)
        sb_puts(reply, smtpd_store_error_reply(d->store_errno));
    return sb_len(reply) > 0;
}

/* smtpd_data_commit - no problem and the checks passed: store it; done(ctx, reply) later */
void smtpd_data_commit(struct smtpd_data *d, smtpd_store_done_fn done, void *ctx)
{
    void   *msg = d->msg;

    if (msg == NULL || d->commit != NULL)
        msg_panic("smtpd_data_commit: no message open, or a commit under way");
    flush(d);
    d->msg = NULL;
    sb_reset(&d->out);
    d->commit = d->store->commit(msg, done, ctx);
}

/* smtpd_data_committed - the done call came: the commit is over */
void smtpd_data_committed(struct smtpd_data *d)
{
    d->commit = NULL;
}

/* smtpd_data_abort - the session ends inside DATA: discard */
void smtpd_data_abort(struct smtpd_data *d)
{
    if (d->commit != NULL) {
        d->store->forget(d->commit);
        d->commit = NULL;
    }
    if (d->msg != NULL) {
        d->store->discard(d->msg);
        d->msg = NULL;
    }
    sb_reset(&d->out);
}

/* smtpd_data_free - release the buffers (after end or abort) */
void smtpd_data_free(struct smtpd_data *d)
{
    smtpd_data_abort(d);
    sb_free(&d->out);
}
