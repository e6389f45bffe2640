/*
 * mailstore_view - a session's view of one folder (SELECT/EXAMINE): the
 * message list with sequence numbers, change detection, STORE, COPY,
 * EXPUNGE (see mailstore.h).
 *
 * Interface: mbox_open(), mbox_close(), mbox_sync(), mbox_changes_free(),
 * mbox_open_message(), mbox_keyword_index(), mbox_store(), mbox_copy(),
 * mbox_expunge(), mbox_commit(), mbox_seq_of_uid().
 *
 * The view keeps its own folder (mailstore_priv.h) and compares its message
 * list with the folder's index after each ms_folder_sync(): a message whose
 * file name differs has new flags (reported unless the view made the change
 * itself, in which case its own file name already matches), a message no
 * longer in the index was expunged, higher uids are new.
 *
 * STORE renames the file at once (other programs see the flags at once) and
 * gives the message a tentative modseq, one per command: the view's highest
 * modseq + 1. mbox_commit() then scans the folder under the index lock once
 * for all of the command's changes, which records them with the index's next
 * modseq - the same number unless another process changed the folder
 * meanwhile, in which case the message ends up with a higher one (reported
 * again to a CONDSTORE client at worst, never missed). When a rename finds
 * the file gone, the message's current name is looked up by its base name
 * (another session or mutt changed its flags) and the operation is applied
 * to the flags found there.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "header_cache.h"
#include "log.h"
#include "maildir.h"
#include "mailstore_priv.h"
#include "mem.h"
#include "strbuf.h"

#define STORABLE    (MBOX_SEEN | MBOX_ANSWERED | MBOX_FLAGGED | MBOX_DELETED | MBOX_DRAFT)
#define COPY_MAX    (1024u * 1024 * 1024)   /* a message copied by reading it, between filesystems */

struct view {
    struct ms_folder f;
    uint64_t pending_modseq;            /* tentative modseq of this command's changes; 0: none */
    bool    dirty;                      /* the index must be brought up to date (mbox_commit) */
    size_t  announced_nkw;              /* keywords the session has been told about */
};

/* kw_mask - the keyword bits the view has names for */
static uint32_t kw_mask(const struct mbox *mb)
{
    return mb->nkeywords >= 32 ? UINT32_MAX : (1u << mb->nkeywords) - 1;
}

/* file_dir - the directory fd and the name of a view file ("cur/NAME") */
static int file_dir(struct mbox *mb, const char *file, const char **name)
{
    struct view *v = mb->priv;

    *name = file + 4;
    return strncmp(file, "new/", 4) == 0 ? v->f.new_fd : v->f.cur_fd;
}

/* file_info - the info part of a view file name, NULL if none */
static const char *file_info(const char *file)
{
    const char *colon = strchr(file, ':');

    return colon ? colon + 1 : NULL;
}

/* msg_set_file - flags and keywords from a file name */
static void msg_set_file(struct mbox *mb, struct mbox_msg *m, const char *file)
{
    uint32_t kw;

    m->flags = (m->flags & MBOX_RECENT) | ms_info_flags(file_info(file), &kw);
    m->keywords = kw & kw_mask(mb);
    if (m->file != file) {
        free(m->file);
        m->file = xstrdup(file);
    }
}

/* sync_keywords - mb->keywords from the folder's keyword file; true if the list grew */
static bool sync_keywords(struct mbox *mb)
{
    struct view *v = mb->priv;
    size_t  old = mb->nkeywords;

    ms_keywords_refresh(&v->f);
    for (size_t i = 0; i < v->f.nkw; i++) {
        char    placeholder[32];
        const char *name = v->f.kw[i];

        /* An unused slot still needs a name the session can print: letters may be in file names. */
        if (name == NULL) {
            snprintf(placeholder, sizeof(placeholder), "$Keyword%zu", i);
            name = placeholder;
        }
        if (mb->keywords[i] == NULL || strcmp(mb->keywords[i], name) != 0) {
            free(mb->keywords[i]);
            mb->keywords[i] = xstrdup(name);
        }
    }
    if (v->f.nkw > mb->nkeywords)
        mb->nkeywords = v->f.nkw;
    if (mb->nkeywords == old)
        return false;
    /* Letters written before their names were known now mean something. */
    for (size_t i = 0; i < mb->count; i++)
        msg_set_file(mb, &mb->msgs[i], mb->msgs[i].file);
    return true;
}

/* add_entry - an index entry as a new message at the end of the view */
static void add_entry(struct mbox *mb, const struct ms_entry *e, bool recent, size_t *cap)
{
    struct strbuf file = STRBUF_INIT;
    struct mbox_msg *m;

    if (mb->count == *cap) {
        *cap = *cap ? *cap * 2 : 64;
        mb->msgs = xreallocarray(mb->msgs, *cap, sizeof(*mb->msgs));
    }
    m = &mb->msgs[mb->count++];
    memset(m, 0, sizeof(*m));
    ms_entry_file(e, &file);
    m->uid = e->uid;
    m->modseq = e->modseq;
    m->vsize = e->vsize;
    m->internaldate = (time_t) e->mtime;
    m->flags = recent ? MBOX_RECENT : 0;
    m->file = sb_detach(&file);
    msg_set_file(mb, m, m->file);
}

/* sync_flags - the folder sync for this view */
static unsigned sync_flags(const struct mbox *mb)
{
    return mb->readonly ? 0 : MS_SYNC_MOVE_NEW | MS_SYNC_CLAIM_RECENT;
}

/* mbox_open - a view of folder name, synced */
struct mbox *mbox_open(struct mstore *st, const char *name, bool readonly, struct strbuf *err)
{
    struct mbox *mb;
    struct view *v;
    uint32_t recent_from;
    size_t  cap = 0;

    if (!mstore_name_valid(name, err))
        return NULL;
    mb = xcalloc(1, sizeof(*mb));
    v = xcalloc(1, sizeof(*v));
    mb->priv = v;
    mb->store = st;
    mb->readonly = readonly;
    if (ms_folder_open(st, name, &v->f, err) != 0) {
        int     saved = errno;

        free(v);
        free(mb);
        errno = saved;
        return NULL;
    }
    mb->name = xstrdup(v->f.name);
    if (ms_folder_sync(&v->f, sync_flags(mb), &recent_from, err) != 0) {
        int     saved = errno;

        mbox_close(mb);
        errno = saved;
        return NULL;
    }
    sync_keywords(mb);
    v->announced_nkw = mb->nkeywords;
    mb->uidvalidity = v->f.idx.uidvalidity;
    mb->uidnext = v->f.idx.uidnext;
    mb->highestmodseq = v->f.idx.highestmodseq;
    for (size_t i = 0; i < v->f.idx.n; i++)
        add_entry(mb, &v->f.idx.e[i], v->f.idx.e[i].uid >= recent_from, &cap);
    return mb;
}

/* mbox_close - release the view (pending index changes are written first) */
void mbox_close(struct mbox *mb)
{
    struct view *v;

    if (mb == NULL)
        return;
    v = mb->priv;
    if (v->dirty) {
        struct strbuf err = STRBUF_INIT;

        if (mbox_commit(mb, &err) != 0)
            msg_warn("%s: %s", mb->name, sb_str(&err));
        sb_free(&err);
    }
    for (size_t i = 0; i < mb->count; i++)
        free(mb->msgs[i].file);
    for (size_t i = 0; i < MBOX_MAX_KEYWORDS; i++)
        free(mb->keywords[i]);
    free(mb->msgs);
    free(mb->name);
    ms_folder_close(&v->f);
    free(v);
    free(mb);
}

/* remove_gone - drop gone messages, their sequence numbers (descending) into ch */
static void remove_gone(struct mbox *mb, struct mbox_changes *ch)
{
    size_t  ngone = 0, w = 0;

    for (size_t i = 0; i < mb->count; i++)
        ngone += mb->msgs[i].gone;
    if (ngone == 0)
        return;
    ch->expunged = xreallocarray(ch->expunged, ch->nexpunged + ngone, sizeof(*ch->expunged));
    for (size_t i = mb->count; i-- > 0;)
        if (mb->msgs[i].gone)
            ch->expunged[ch->nexpunged++] = (uint32_t) i + 1;
    for (size_t i = 0; i < mb->count; i++) {
        if (mb->msgs[i].gone)
            free(mb->msgs[i].file);
        else
            mb->msgs[w++] = mb->msgs[i];
    }
    mb->count = w;
}

/* mbox_sync - look at the disk and say what changed */
int mbox_sync(struct mbox *mb, bool announce_expunges, struct mbox_changes *ch, struct strbuf *err)
{
    struct view *v = mb->priv;
    struct ms_index *idx = &v->f.idx;
    struct strbuf file = STRBUF_INIT;
    uint32_t recent_from;
    uint32_t *changed = NULL;
    size_t  nchanged = 0, j = 0, cap = mb->count;

    memset(ch, 0, sizeof(*ch));
    if (ms_folder_sync(&v->f, sync_flags(mb), &recent_from, err) != 0)
        return -1;
    if (idx->uidvalidity != mb->uidvalidity)
        return ms_fail(err, ESTALE, "%s: UIDVALIDITY changed (index rebuilt): reselect", mb->name);
    sync_keywords(mb);
    if (mb->nkeywords > v->announced_nkw) {
        ch->keywords_changed = true;
        v->announced_nkw = mb->nkeywords;
    }
    for (size_t i = 0; i < mb->count; i++) {
        struct mbox_msg *m = &mb->msgs[i];

        while (j < idx->n && idx->e[j].uid < m->uid)
            j++;
        if (j == idx->n || idx->e[j].uid != m->uid) {
            m->gone = true;
            continue;
        }
        ms_entry_file(&idx->e[j], &file);
        if (strcmp(m->file, sb_str(&file)) != 0) {
            uint32_t oflags = m->flags, okw = m->keywords;

            msg_set_file(mb, m, sb_str(&file));
            if (oflags != m->flags || okw != m->keywords) {
                changed = xreallocarray(changed, nchanged + 1, sizeof(*changed));
                changed[nchanged++] = m->uid;
            }
        }
        m->modseq = idx->e[j].modseq;
    }
    for (; j < idx->n; j++) {
        if (mb->count > 0 && idx->e[j].uid <= mb->msgs[mb->count - 1].uid)
            continue;
        add_entry(mb, &idx->e[j], idx->e[j].uid >= recent_from, &cap);
        ch->exists_changed = true;
    }
    if (announce_expunges)
        remove_gone(mb, ch);
    for (size_t i = 0; i < nchanged; i++) {
        uint32_t seq = mbox_seq_of_uid(mb, changed[i]);

        if (seq == 0 || mb->msgs[seq - 1].gone)
            continue;
        ch->flags_changed = xreallocarray(ch->flags_changed, ch->nflags_changed + 1, sizeof(uint32_t));
        ch->flags_changed[ch->nflags_changed++] = seq;
    }
    for (size_t i = 0; i < mb->count; i++)
        if ((mb->msgs[i].flags & MBOX_RECENT) && !mb->msgs[i].gone)
            ch->recent++;
    mb->uidnext = idx->uidnext;
    if (idx->highestmodseq > mb->highestmodseq)
        mb->highestmodseq = idx->highestmodseq;
    free(changed);
    sb_free(&file);
    return 0;
}

/* mbox_changes_free - release the arrays */
void mbox_changes_free(struct mbox_changes *ch)
{
    free(ch->expunged);
    free(ch->flags_changed);
    memset(ch, 0, sizeof(*ch));
}

/* msg_base - the base name of a view file, into out */
static void msg_base(const char *file, struct strbuf *out)
{
    sb_reset(out);
    sb_append(out, file + 4, strcspn(file + 4, ":"));
}

/* mbox_message_key - the folder directory's identity, the view's UIDVALIDITY, the UID */
void mbox_message_key(const struct mbox *mb, size_t i, struct header_cache_key *key)
{
    const struct view *v = mb->priv;

    key->dev = (uint64_t) v->f.dev;
    key->ino = (uint64_t) v->f.ino;
    key->uidvalidity = mb->uidvalidity;
    key->uid = i < mb->count ? mb->msgs[i].uid : 0;
}

/* mbox_open_message - the message file of msgs[i], read-only */
int mbox_open_message(struct mbox *mb, size_t i, struct strbuf *err)
{
    struct view *v = mb->priv;
    struct mbox_msg *m;
    const char *name;
    int     dirfd, fd;
    struct stat sb;

    if (i >= mb->count)
        return ms_fail(err, EINVAL, "no message %zu", i + 1);
    m = &mb->msgs[i];
    if (m->gone)
        return ms_fail(err, ENOENT, "message %" PRIu32 " was expunged", m->uid);
    dirfd = file_dir(mb, m->file, &name);
    fd = openat(dirfd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0 && errno == ENOENT) {
        /* Renamed by a flag change elsewhere: the next sync reports the flags, we just read it. */
        struct strbuf base = STRBUF_INIT, cur = STRBUF_INIT;
        bool    in_new;

        msg_base(m->file, &base);
        if (ms_find_file(&v->f, sb_str(&base), &cur, &in_new) == 0)
            fd = openat(in_new ? v->f.new_fd : v->f.cur_fd, sb_str(&cur),
                        O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
        else
            errno = ENOENT;
        sb_free(&base);
        sb_free(&cur);
    }
    if (fd < 0) {
        if (errno == ENOENT)
            return ms_fail(err, ENOENT, "message %" PRIu32 " was expunged", m->uid);
        return ms_fail(err, errno, "%s/%s: %s", mb->name, m->file, strerror(errno));
    }
    if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
        close(fd);
        return ms_fail(err, EINVAL, "%s/%s: not a regular file", mb->name, m->file);
    }
    return fd;
}

/* mbox_keyword_index - index of keyword name, created when create */
int mbox_keyword_index(struct mbox *mb, const char *name, bool create)
{
    struct view *v = mb->priv;
    int     k;

    for (size_t i = 0; i < mb->nkeywords; i++)
        if (v->f.kw[i] && strcasecmp(v->f.kw[i], name) == 0)
            return (int) i;
    k = ms_keyword_find(&v->f, name, create && !mb->readonly, NULL);
    sync_keywords(mb);
    return k < 0 || (size_t) k >= mb->nkeywords ? -1 : k;
}

/* apply_op - new flag bits by op */
static uint32_t apply_op(enum mbox_flag_op op, uint32_t cur, uint32_t bits)
{
    switch (op) {
    case MBOX_FLAGS_SET:
        return bits;
    case MBOX_FLAGS_ADD:
        return cur | bits;
    case MBOX_FLAGS_REMOVE:
    default:
        return cur & ~bits;
    }
}

/* mbox_store - change msgs[i]'s flags and keywords, renaming its file */
int mbox_store(struct mbox *mb, size_t i, enum mbox_flag_op op, uint32_t flags, uint32_t keywords,
               uint64_t unchangedsince, struct strbuf *err)
{
    struct view *v = mb->priv;
    struct mbox_msg *m;
    struct strbuf base = STRBUF_INIT, info = STRBUF_INIT, to = STRBUF_INIT, cur = STRBUF_INIT;
    const char *name, *oldinfo;
    uint32_t nf, nk, cf, ck;
    int     dirfd, ret = -1;

    if (mb->readonly)
        return ms_fail(err, EPERM, "%s is read-only", mb->name);
    if (i >= mb->count)
        return ms_fail(err, EINVAL, "no message %zu", i + 1);
    m = &mb->msgs[i];
    if (m->gone)
        return ms_fail(err, ENOENT, "message %" PRIu32 " was expunged", m->uid);
    if (unchangedsince != 0 && m->modseq > unchangedsince)
        return 1;
    flags &= STORABLE;
    keywords &= kw_mask(mb);
    cf = m->flags & STORABLE;
    ck = m->keywords;
    nf = apply_op(op, cf, flags);
    nk = apply_op(op, ck, keywords);
    if (nf == cf && nk == ck)
        return 0;
    msg_base(m->file, &base);
    dirfd = file_dir(mb, m->file, &name);
    oldinfo = file_info(m->file);
    for (int attempt = 0; attempt < 2; attempt++) {
        ms_info_build(oldinfo, nf, nk, &info);
        sb_reset(&to);
        sb_printf(&to, "%s:%s", sb_str(&base), sb_str(&info));
        if (renameat(dirfd, name, v->f.cur_fd, sb_str(&to)) == 0) {
            ret = 0;
            break;
        }
        if (errno != ENOENT || attempt > 0) {
            ms_fail(err, errno, "%s/%s: rename: %s", mb->name, m->file, strerror(errno));
            goto out;
        }
        /* Someone renamed it meanwhile: apply the operation to the flags it has now. */
        bool    in_new;

        if (ms_find_file(&v->f, sb_str(&base), &cur, &in_new) != 0) {
            ms_fail(err, ENOENT, "message %" PRIu32 " was expunged", m->uid);
            goto out;
        }
        dirfd = in_new ? v->f.new_fd : v->f.cur_fd;
        name = sb_str(&cur);
        oldinfo = file_info(name);
        cf = ms_info_flags(oldinfo, &ck);
        ck &= kw_mask(mb);
        nf = apply_op(op, cf, flags);
        nk = apply_op(op, ck, keywords);
    }
    sb_reset(&cur);
    sb_printf(&cur, "cur/%s", sb_str(&to));
    msg_set_file(mb, m, sb_str(&cur));
    if (v->pending_modseq == 0)
        v->pending_modseq = (mb->highestmodseq > v->f.idx.highestmodseq ? mb->highestmodseq
                             : v->f.idx.highestmodseq) + 1;
    m->modseq = v->pending_modseq;
    mb->highestmodseq = v->pending_modseq;
    v->dirty = true;
out:
    sb_free(&base);
    sb_free(&info);
    sb_free(&to);
    sb_free(&cur);
    return ret;
}

/* read_message - the whole file (copy between filesystems) */
static int read_message(int fd, struct strbuf *out)
{
    char    buf[65536];
    ssize_t n;

    while ((n = read(fd, buf, sizeof(buf))) != 0) {
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        if (sb_len(out) + (size_t) n > COPY_MAX) {
            errno = EFBIG;
            return -1;
        }
        sb_append(out, buf, (size_t) n);
    }
    return 0;
}

/* mbox_copy - copy msgs[i] into folder dest: a hard link with a new name, uid assigned there */
int mbox_copy(struct mbox *mb, size_t i, const char *dest, uint32_t *dest_uidvalidity,
              uint32_t *dest_uid, struct strbuf *err)
{
    struct view *v = mb->priv;
    struct ms_folder *df;
    struct mbox_msg *m;
    struct strbuf info = STRBUF_INIT, to = STRBUF_INIT, base = STRBUF_INIT, cur = STRBUF_INIT;
    const char *name;
    uint32_t kw = 0;
    uint64_t size;
    int64_t mtime;
    char   *names[1];
    int     dirfd, lr, ret = -1;

    if (i >= mb->count)
        return ms_fail(err, EINVAL, "no message %zu", i + 1);
    m = &mb->msgs[i];
    if (m->gone)
        return ms_fail(err, ENOENT, "message %" PRIu32 " was expunged", m->uid);
    if (!mstore_name_valid(dest, err))
        return -1;
    if ((df = ms_folder_get(mb->store, dest, err)) == NULL)
        return -1;
    dirfd = file_dir(mb, m->file, &name);
    size = ms_file_size(dirfd, name);
    if (ms_quota_check(mb->store, size, 1, err) != 0)
        return -1;
    /* Keyword letters are per folder: remap by name. */
    for (size_t b = 0; b < mb->nkeywords; b++) {
        if (m->keywords & (1u << b)) {
            int     k = ms_keyword_find(df, mb->keywords[b], true, NULL);

            if (k >= 0)
                kw |= 1u << k;
        }
    }
    ms_info_build(file_info(m->file), m->flags & STORABLE, kw, &info);
    maildir_unique_name(&to);
    sb_printf(&to, ",S=%" PRIu64 ",W=%" PRIu64 ":%s", size, m->vsize, sb_str(&info));
    mtime = (int64_t) m->internaldate;
    lr = linkat(dirfd, name, df->cur_fd, sb_str(&to), 0);
    if (lr != 0 && errno == ENOENT) {
        bool    in_new;

        msg_base(m->file, &base);
        if (ms_find_file(&v->f, sb_str(&base), &cur, &in_new) != 0) {
            ms_fail(err, ENOENT, "message %" PRIu32 " was expunged", m->uid);
            goto out;
        }
        dirfd = in_new ? v->f.new_fd : v->f.cur_fd;
        name = sb_str(&cur);
        lr = linkat(dirfd, name, df->cur_fd, sb_str(&to), 0);
    }
    if (lr != 0) {
        /* No hard links here (another filesystem, or not supported): copy the bytes. */
        struct strbuf data = STRBUF_INIT;
        int     fd;

        if (errno != EXDEV && errno != EPERM && errno != EMLINK && errno != EOPNOTSUPP && errno != ENOSYS) {
            ms_fail(err, errno, "%s/%s -> %s: link: %s", mb->name, m->file, dest, strerror(errno));
            goto out;
        }
        fd = openat(dirfd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
        if (fd < 0 || read_message(fd, &data) != 0) {
            ms_fail(err, errno, "%s/%s: read: %s", mb->name, m->file, strerror(errno));
            if (fd >= 0)
                close(fd);
            sb_free(&data);
            goto out;
        }
        close(fd);
        ret = ms_write_message(df, data.data ? data.data : "", sb_len(&data), m->vsize, sb_str(&info),
                               m->internaldate, &to, err);
        sb_free(&data);
        if (ret != 0)
            goto out;
        ret = -1;
    } else if (fsync(df->cur_fd) != 0) {
        int     saved = errno;

        unlinkat(df->cur_fd, sb_str(&to), 0);
        ms_fail(err, saved, "%s/cur/: fsync: %s", dest, strerror(saved));
        goto out;
    }
    names[0] = to.data;
    if (ms_folder_add(df, names, &m->vsize, &mtime, 1, dest_uid, err) != 0) {
        int     saved = errno;

        unlinkat(df->cur_fd, sb_str(&to), 0);
        errno = saved;
        goto out;
    }
    *dest_uidvalidity = df->idx.uidvalidity;
    ms_quota_update(mb->store, (int64_t) size, 1);
    ret = 0;
out:
    sb_free(&info);
    sb_free(&to);
    sb_free(&base);
    sb_free(&cur);
    return ret;
}

/* uid_listed - uid in the sorted array */
static bool uid_listed(const uint32_t *uids, size_t n, uint32_t uid)
{
    size_t  lo = 0, hi = n;

    while (lo < hi) {
        size_t  mid = lo + (hi - lo) / 2;

        if (uids[mid] == uid)
            return true;
        if (uids[mid] < uid)
            lo = mid + 1;
        else
            hi = mid;
    }
    return false;
}

/* mbox_expunge - remove \Deleted messages (limited to uids if given) from disk and the view */
int mbox_expunge(struct mbox *mb, const uint32_t *uids, size_t nuids, struct mbox_changes *ch,
                 struct strbuf *err)
{
    struct view *v = mb->priv;
    struct strbuf base = STRBUF_INIT, cur = STRBUF_INIT;
    int64_t bytes = 0, count = 0;

    memset(ch, 0, sizeof(*ch));
    if (mb->readonly)
        return ms_fail(err, EPERM, "%s is read-only", mb->name);
    for (size_t i = 0; i < mb->count; i++) {
        struct mbox_msg *m = &mb->msgs[i];
        const char *name;
        int     dirfd;
        uint64_t size;
        bool    in_new;

        if (m->gone || !(m->flags & MBOX_DELETED) || (uids != NULL && !uid_listed(uids, nuids, m->uid)))
            continue;
        dirfd = file_dir(mb, m->file, &name);
        size = ms_file_size(dirfd, name);
        if (unlinkat(dirfd, name, 0) == 0) {
            bytes += (int64_t) size;
            count++;
            m->gone = true;
            continue;
        }
        if (errno != ENOENT) {
            msg_warn("%s/%s: unlink: %s", mb->name, m->file, strerror(errno));
            continue;
        }
        /* Renamed elsewhere: still \Deleted there? Then it goes; if it vanished, it is gone anyway. */
        msg_base(m->file, &base);
        if (ms_find_file(&v->f, sb_str(&base), &cur, &in_new) != 0) {
            m->gone = true;
            continue;
        }
        if (ms_info_flags(file_info(sb_str(&cur)), NULL) & MBOX_DELETED) {
            dirfd = in_new ? v->f.new_fd : v->f.cur_fd;
            size = ms_file_size(dirfd, sb_str(&cur));
            if (unlinkat(dirfd, sb_str(&cur), 0) == 0) {
                bytes += (int64_t) size;
                count++;
            }
            m->gone = true;
        }
    }
    sb_free(&base);
    sb_free(&cur);
    remove_gone(mb, ch);
    if (count > 0) {
        ms_quota_update(mb->store, -bytes, -count);
        v->dirty = true;
        if (v->pending_modseq == 0)
            v->pending_modseq = mb->highestmodseq + 1;
        mb->highestmodseq = v->pending_modseq;
    }
    (void) err;
    return 0;
}

/* mbox_commit - bring the index up to date with this command's changes */
int mbox_commit(struct mbox *mb, struct strbuf *err)
{
    struct view *v = mb->priv;

    if (!v->dirty)
        return 0;
    if (ms_folder_sync(&v->f, MS_SYNC_FORCE_SCAN | (mb->readonly ? 0 : MS_SYNC_MOVE_NEW), NULL, err) != 0)
        return -1;
    v->dirty = false;
    v->pending_modseq = 0;
    return 0;
}

/* mbox_seq_of_uid - sequence number (1-based) of uid, 0 if not in the view */
uint32_t mbox_seq_of_uid(const struct mbox *mb, uint32_t uid)
{
    size_t  lo = 0, hi = mb->count;

    while (lo < hi) {
        size_t  mid = lo + (hi - lo) / 2;

        if (mb->msgs[mid].uid == uid)
            return (uint32_t) mid + 1;
        if (mb->msgs[mid].uid < uid)
            lo = mid + 1;
        else
            hi = mid;
    }
    return 0;
}
