/*
 * imapd_message - reading a message's file for FETCH and SEARCH.
 *
 * Interface (imapd.h): imapd_load_message.
 *
 * A command asks for as little as it needs: the envelope fields (served from
 * the process's header cache, lib/header_cache.h, when the message was read
 * before), the header block (read up to the first blank line, at most
 * MESSAGE_MAX_HEADER bytes) or the whole file. Whatever reads a header block
 * puts its envelope fields in the cache, so a second FETCH ENVELOPE or a SEARCH
 * on Subject or Message-ID does not open the files again.
 */
#include <errno.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "header_cache.h"
#include "log.h"
#include "mailstore.h"
#include "mime.h"
#include "strbuf.h"
#include "imapd.h"

#define MESSAGE_MAX_HEADER  (1024 * 1024)           /* header block read for ENVELOPE & co. */
#define MESSAGE_MAX_FILE    ((size_t) 1 << 31)      /* refuse to slurp anything bigger */

/* header_complete - does buf hold the blank line that ends the header? (from: where new bytes began) */
static bool header_complete(const struct strbuf *buf, size_t from)
{
    from = from > 3 ? from - 3 : 0;             /* a "\n\n" may straddle two reads */
    if (buf->len > 0 && (buf->data[0] == '\n' || (buf->len > 1 && buf->data[0] == '\r' &&
                                                  buf->data[1] == '\n')))
        return true;
    return memmem(buf->data + from, buf->len - from, "\n\n", 2) != NULL ||
           memmem(buf->data + from, buf->len - from, "\n\r\n", 3) != NULL;
}

/* read_file - the header block (header_only) or the whole file of fd into buf; -1 with err */
static int read_file(int fd, bool header_only, struct strbuf *buf, struct strbuf *err)
{
    struct stat st;
    size_t  want;

    if (fstat(fd, &st) < 0) {
        sb_printf(err, "fstat: %s", strerror(errno));
        return -1;
    }
    if (st.st_size < 0 || (uint64_t) st.st_size > MESSAGE_MAX_FILE) {
        sb_printf(err, "message file too big (%lld bytes)", (long long) st.st_size);
        return -1;
    }
    want = header_only && st.st_size > MESSAGE_MAX_HEADER ? MESSAGE_MAX_HEADER : (size_t) st.st_size;
    sb_reset(buf);
    for (;;) {
        char    chunk[16384];
        size_t  room = header_only ? (buf->len < want ? want - buf->len : 0) : sizeof(chunk);
        ssize_t r;

        if (room == 0)
            break;
        r = read(fd, chunk, room < sizeof(chunk) ? room : sizeof(chunk));
        if (r < 0) {
            if (errno == EINTR)
                continue;
            sb_printf(err, "read: %s", strerror(errno));
            return -1;
        }
        if (r == 0)
            break;
        size_t  before = buf->len;

        sb_append(buf, chunk, (size_t) r);
        if (!header_only && buf->len > MESSAGE_MAX_FILE) {
            sb_printf(err, "message file grew beyond %zu bytes", MESSAGE_MAX_FILE);
            return -1;
        }
        if (header_only && header_complete(buf, before))
            break;
    }
    return 0;
}

/* imapd_load_message - from the header cache when it will do, else from the file */
struct mime_message *imapd_load_message(struct imapd_session *s, size_t i, enum imapd_need need,
                                        struct strbuf *raw, const char *command)
{
    struct mbox *mb = s->mbox;
    struct header_cache_key key;
    struct strbuf err = STRBUF_INIT;
    struct mime_message *msg;
    const char *cached;
    size_t  len;
    int     fd, r;

    if (i >= mb->count || mb->msgs[i].gone) {
        errno = ENOENT;
        return NULL;
    }
    mbox_message_key(mb, i, &key);
    if (need == IMAPD_NEED_ENVELOPE && (cached = header_cache_get(&key, &len)) != NULL) {
        sb_set(raw, "");
        sb_append(raw, cached, len);
        return mime_parse(raw->data, raw->len);
    }
    if ((fd = mbox_open_message(mb, i, &err)) < 0) {
        int     saved = errno;

        if (saved != ENOENT)
            msg_warn("%s: %s: %s uid %u: %s", s->user ? s->user : "?", mb->name, command,
                     mb->msgs[i].uid, sb_str(&err));
        sb_free(&err);
        errno = saved;
        return NULL;
    }
    r = read_file(fd, need != IMAPD_NEED_FILE, raw, &err);
    close(fd);
    if (r < 0) {
        msg_warn("%s: %s: %s uid %u: %s", s->user ? s->user : "?", mb->name, command,
                 mb->msgs[i].uid, sb_str(&err));
        sb_free(&err);
        errno = EIO;
        return NULL;
    }
    sb_free(&err);
    msg = mime_parse(raw->data != NULL ? raw->data : "", raw->len);
    header_cache_put(&key, msg->data + msg->root.hdr_off, msg->root.body_off - msg->root.hdr_off);
    return msg;
}
