/*
 * mailstore_index - a folder's UID index, its lock, the scan of cur/ and new/,
 * flags in file names and the keyword file (see mailstore.h, mailstore_priv.h).
 *
 * Interface (mailstore_priv.h): ms_folder_open(), ms_folder_close(),
 * ms_folder_get(), ms_cache_clear(), ms_folder_sync(), ms_folder_add(),
 * ms_find_file(), ms_entry_file(), ms_index_free(), ms_info_flags(),
 * ms_info_build(), ms_name_size(), ms_keyword_valid(), ms_keywords_refresh(),
 * ms_keyword_find().
 *
 * The file "postern-uidlist":
 *     P1 V<uidvalidity> N<uidnext> M<highestmodseq> R<recent> S<cm>,<cc>,<nm>,<nc>
 *     <uid> <modseq> <vsize> <mtime> <loc> <base>
 * S: mtime and ctime (ns) of cur/ and new/ when they were last read; while
 * they are unchanged, nothing was delivered, renamed or removed, so a sync
 * costs two fstat()s and no readdir. A stamp within a second of the scan
 * could hide a change made in the same clock tick, so it is written as 0
 * ("read again next time"). loc is "c" or "n" (cur/ or new/), followed by
 * ":<info>" when the name has one; base (the name up to the first ':') comes
 * last. Lines are in uid order.
 *
 * Writers hold an flock on "postern-uidlist.lock". A full write goes to a
 * temporary file renamed over the index; new messages (APPEND, COPY) are
 * appended as lines instead, so copying many messages into a large folder
 * does not rewrite it each time: readers take N and M as the maximum of the
 * header and the lines, and ignore a last line without its newline (a
 * writer at work, or a crash; the next locked writer rewrites the file).
 * Readers need no lock: they see the old file, the new one, or an appended
 * prefix.
 *
 * A missing or corrupt index is rebuilt from the files with a new
 * uidvalidity, never lower than the last one handed out in this Maildir
 * ("postern-uidvalidity" in the user's Maildir), and logged.
 *
 * Only regular files in cur/ and new/ are messages: a symlink or a FIFO
 * planted there is ignored, and message files are opened with O_NOFOLLOW.
 */
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "maildir.h"
#include "mailstore_priv.h"
#include "mem.h"
#include "shared_dir.h"
#include "strbuf.h"

#define INDEX_MAX_BYTES     (256u * 1024 * 1024)
#define KEYWORDS_MAX_BYTES  (64 * 1024)
#define LOCK_WAIT_MS        30000
#define STAMP_SLACK_NS      1000000000LL

unsigned long ms_stat_scans, ms_stat_index_writes;

/* a file found by a scan that the index does not know */
struct found {
    char   *name;                       /* as in the directory */
    size_t  baselen;
    bool    in_new;
};

/* ms_fail - errno-preserving error text; returns -1 */
int ms_fail(struct strbuf *err, int errnum, const char *fmt, ...)
{
    va_list ap;

    if (err) {
        va_start(ap, fmt);
        sb_vprintf(err, fmt, ap);
        va_end(ap);
    }
    errno = errnum;
    return -1;
}

/* ts_ns - a timespec in nanoseconds */
static int64_t ts_ns(const struct timespec *ts)
{
    return (int64_t) ts->tv_sec * 1000000000LL + ts->tv_nsec;
}

/* fileid_set - identity from a stat */
static void fileid_set(struct ms_fileid *id, const struct stat *sb, off_t size)
{
    id->valid = true;
    id->dev = sb->st_dev;
    id->ino = sb->st_ino;
    id->size = size;
    id->mtime = ts_ns(&sb->st_mtim);
    id->ctime = ts_ns(&sb->st_ctim);
}

/* fileid_same - sb is the file id describes, unchanged */
static bool fileid_same(const struct ms_fileid *id, const struct stat *sb)
{
    return id->valid && id->dev == sb->st_dev && id->ino == sb->st_ino && id->size == sb->st_size
        && id->mtime == ts_ns(&sb->st_mtim) && id->ctime == ts_ns(&sb->st_ctim);
}

/* ms_index_free - release entries */
void ms_index_free(struct ms_index *idx)
{
    for (size_t i = 0; i < idx->n; i++) {
        free(idx->e[i].base);
        free(idx->e[i].info);
    }
    free(idx->e);
    memset(idx, 0, sizeof(*idx));
}

/* index_push - a new entry at the end (takes base and info) */
static struct ms_entry *index_push(struct ms_index *idx)
{
    if (idx->n == idx->cap) {
        idx->cap = idx->cap ? idx->cap * 2 : 64;
        idx->e = xreallocarray(idx->e, idx->cap, sizeof(*idx->e));
    }
    memset(&idx->e[idx->n], 0, sizeof(idx->e[0]));
    return &idx->e[idx->n++];
}

/* ms_entry_file - "cur/BASE:INFO" or "new/BASE" */
void ms_entry_file(const struct ms_entry *e, struct strbuf *out)
{
    sb_reset(out);
    sb_puts(out, e->in_new ? "new/" : "cur/");
    sb_puts(out, e->base);
    if (e->info) {
        sb_putc(out, ':');
        sb_puts(out, e->info);
    }
}

/* ---- flags in file names ---- */

/* flag_letter - MBOX_* flag of a Maildir letter, 0 for others */
static uint32_t flag_letter(int c)
{
    switch (c) {
    case 'D':
        return MBOX_DRAFT;
    case 'F':
        return MBOX_FLAGGED;
    case 'R':
        return MBOX_ANSWERED;
    case 'S':
        return MBOX_SEEN;
    case 'T':
        return MBOX_DELETED;
    default:
        return 0;
    }
}

/* ms_info_flags - MBOX_* flags and keyword bits of a Maildir info ("2,FRSab") */
uint32_t ms_info_flags(const char *info, uint32_t *keywords)
{
    uint32_t flags = 0;
    uint32_t kw = 0;

    if (info && info[0] == '2' && info[1] == ',') {
        for (const char *p = info + 2; *p; p++) {
            if (*p >= 'a' && *p <= 'z')
                kw |= 1u << (*p - 'a');
            else
                flags |= flag_letter((unsigned char) *p);
        }
    }
    if (keywords)
        *keywords = kw;
    return flags;
}

/* ms_info_build - "2," + sorted letters; letters we do not manage (mutt's P) are kept */
void ms_info_build(const char *old, uint32_t flags, uint32_t keywords, struct strbuf *out)
{
    bool    have[128] = {false};

    if (old && old[0] == '2' && old[1] == ',') {
        for (const unsigned char *p = (const unsigned char *) old + 2; *p; p++)
            if (*p > 0x20 && *p < 0x7f && *p != ',' && !(*p >= 'a' && *p <= 'z') && flag_letter(*p) == 0)
                have[*p] = true;
    }
    have['D'] = flags & MBOX_DRAFT;
    have['F'] = flags & MBOX_FLAGGED;
    have['R'] = flags & MBOX_ANSWERED;
    have['S'] = flags & MBOX_SEEN;
    have['T'] = flags & MBOX_DELETED;
    for (int i = 0; i < MBOX_MAX_KEYWORDS; i++)
        if (keywords & (1u << i))
            have['a' + i] = true;
    sb_reset(out);
    sb_puts(out, "2,");
    for (int c = 0x21; c < 0x7f; c++)
        if (have[c])
            sb_putc(out, c);
}

/* ms_name_size - the value of ",<key>=<n>" in a file name's base */
bool ms_name_size(const char *base, char key, uint64_t *value)
{
    for (const char *p = base; *p && *p != ':'; p++) {
        uint64_t v = 0;
        const char *q;

        if (p[0] != ',' || p[1] != key || p[2] != '=' || !isdigit((unsigned char) p[3]))
            continue;
        for (q = p + 3; isdigit((unsigned char) *q); q++) {
            if (v > (UINT64_MAX - 9) / 10)
                return false;
            v = v * 10 + (uint64_t) (*q - '0');
        }
        if (*q != '\0' && *q != ',' && *q != ':')
            continue;
        *value = v;
        return true;
    }
    return false;
}

/* ---- the index file ---- */

/* parse_u64 - a decimal number ending at a space, advancing *p; false if malformed */
static bool parse_u64(const char **p, const char *end, uint64_t *out)
{
    uint64_t v = 0;
    const char *q = *p;

    if (q >= end || !isdigit((unsigned char) *q))
        return false;
    for (; q < end && isdigit((unsigned char) *q); q++) {
        if (v > (UINT64_MAX - 9) / 10)
            return false;
        v = v * 10 + (uint64_t) (*q - '0');
    }
    *p = q;
    *out = v;
    return true;
}

/* parse_i64 - like parse_u64, with an optional '-' */
static bool parse_i64(const char **p, const char *end, int64_t *out)
{
    bool    neg = false;
    uint64_t v;

    if (*p < end && **p == '-') {
        neg = true;
        (*p)++;
    }
    if (!parse_u64(p, end, &v) || v > (uint64_t) INT64_MAX)
        return false;
    *out = neg ? -(int64_t) v : (int64_t) v;
    return true;
}

/* expect - the literal s at *p */
static bool expect(const char **p, const char *end, const char *s)
{
    size_t  n = strlen(s);

    if ((size_t) (end - *p) < n || memcmp(*p, s, n) != 0)
        return false;
    *p += n;
    return true;
}

/* name_chars_ok - no control characters, '/' or ':' (bytes [p, end)) */
static bool name_chars_ok(const char *p, const char *end, bool colon_ok)
{
    for (; p < end; p++) {
        unsigned char c = (unsigned char) *p;

        if (c < 0x20 || c == 0x7f || c == '/' || (c == ':' && !colon_ok))
            return false;
    }
    return true;
}

/* parse_header - the first line */
static bool parse_header(const char *p, const char *end, struct ms_index *idx)
{
    uint64_t v, n, m, r;

    if (!expect(&p, end, "P1 V") || !parse_u64(&p, end, &v) || !expect(&p, end, " N")
        || !parse_u64(&p, end, &n) || !expect(&p, end, " M") || !parse_u64(&p, end, &m)
        || !expect(&p, end, " R") || !parse_u64(&p, end, &r) || !expect(&p, end, " S"))
        return false;
    for (int i = 0; i < 4; i++) {
        if ((i > 0 && !expect(&p, end, ",")) || !parse_i64(&p, end, &idx->stamp[i]))
            return false;
    }
    if (p != end || v == 0 || v > UINT32_MAX || n == 0 || n >= UINT32_MAX || r > n)
        return false;
    idx->uidvalidity = (uint32_t) v;
    idx->uidnext = (uint32_t) n;
    idx->highestmodseq = m;
    idx->recent = r == 0 ? 1 : (uint32_t) r;
    return true;
}

/* parse_entry - one message line */
static bool parse_entry(const char *p, const char *end, struct ms_index *idx)
{
    uint64_t uid, modseq, vsize;
    int64_t mtime;
    const char *loc, *sp;
    struct ms_entry *e;

    if (!parse_u64(&p, end, &uid) || !expect(&p, end, " ") || !parse_u64(&p, end, &modseq)
        || !expect(&p, end, " ") || !parse_u64(&p, end, &vsize) || !expect(&p, end, " ")
        || !parse_i64(&p, end, &mtime) || !expect(&p, end, " "))
        return false;
    if (uid == 0 || uid >= UINT32_MAX || modseq == 0 || (idx->n > 0 && uid <= idx->e[idx->n - 1].uid))
        return false;
    loc = p;
    sp = memchr(p, ' ', (size_t) (end - p));
    if (sp == NULL || (*loc != 'c' && *loc != 'n') || (sp > loc + 1 && loc[1] != ':')
        || !name_chars_ok(loc, sp, true) || sp + 1 >= end || !name_chars_ok(sp + 1, end, false))
        return false;
    e = index_push(idx);
    e->uid = (uint32_t) uid;
    e->modseq = modseq;
    e->vsize = vsize;
    e->mtime = mtime;
    e->in_new = *loc == 'n';
    e->info = sp > loc + 1 ? xstrndup(loc + 2, (size_t) (sp - loc - 2)) : NULL;
    e->base = xstrndup(sp + 1, (size_t) (end - sp - 1));
    if (e->uid >= idx->uidnext)
        idx->uidnext = e->uid + 1;
    if (e->modseq > idx->highestmodseq)
        idx->highestmodseq = e->modseq;
    return true;
}

/* index_parse - the whole file; *consumed: bytes of complete lines; false if corrupt */
static bool index_parse(const char *data, size_t len, struct ms_index *idx, size_t *consumed)
{
    const char *p = data, *end = data + len;
    const char *nl = memchr(p, '\n', len);

    memset(idx, 0, sizeof(*idx));
    if (nl == NULL || !parse_header(p, nl, idx))
        return false;
    p = nl + 1;
    while (p < end) {
        nl = memchr(p, '\n', (size_t) (end - p));
        if (nl == NULL)
            break;                      /* a line being appended: not ours yet */
        if (!parse_entry(p, nl, idx) || idx->uidnext >= UINT32_MAX) {
            ms_index_free(idx);
            return false;
        }
        p = nl + 1;
    }
    *consumed = (size_t) (p - data);
    return true;
}

/* index_format - the whole file */
static void index_format(const struct ms_index *idx, struct strbuf *out)
{
    sb_reset(out);
    sb_printf(out, "P1 V%" PRIu32 " N%" PRIu32 " M%" PRIu64 " R%" PRIu32 " S%" PRId64 ",%" PRId64 ",%" PRId64
              ",%" PRId64 "\n", idx->uidvalidity, idx->uidnext, idx->highestmodseq, idx->recent,
              idx->stamp[0], idx->stamp[1], idx->stamp[2], idx->stamp[3]);
}

/* entry_format - one message line */
static void entry_format(const struct ms_entry *e, struct strbuf *out)
{
    sb_printf(out, "%" PRIu32 " %" PRIu64 " %" PRIu64 " %" PRId64 " %c%s%s %s\n", e->uid, e->modseq,
              e->vsize, e->mtime, e->in_new ? 'n' : 'c', e->info ? ":" : "", e->info ? e->info : "", e->base);
}

/* read_fd - the whole regular file, at most max bytes; -1 with errno */
static int read_fd(int fd, size_t max, struct strbuf *out)
{
    char    buf[65536];

    sb_reset(out);
    for (;;) {
        ssize_t n = read(fd, buf, sizeof(buf));

        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        if (n == 0)
            return 0;
        if (sb_len(out) + (size_t) n > max) {
            errno = EFBIG;
            return -1;
        }
        sb_append(out, buf, (size_t) n);
    }
}

/*
 * index_refresh - f->idx from the file if it changed: 0 loaded, 1 missing,
 * 2 corrupt (logged), -1 I/O error with err. partial tells of a torn last line.
 */
static int index_refresh(struct ms_folder *f, bool *partial, struct strbuf *err)
{
    struct strbuf data = STRBUF_INIT;
    struct ms_index idx;
    struct stat sb;
    size_t  consumed = 0;
    int     fd;

    *partial = false;
    if (fstatat(f->fd, MS_INDEX_FILE, &sb, AT_SYMLINK_NOFOLLOW) != 0) {
        if (errno == ENOENT)
            return 1;
        return ms_fail(err, errno, "%s/%s: %s", f->name, MS_INDEX_FILE, strerror(errno));
    }
    if (f->loaded && fileid_same(&f->idx_id, &sb))
        return 0;
    fd = openat(f->fd, MS_INDEX_FILE, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) {
        if (errno == ENOENT)
            return 1;
        if (errno == ELOOP) {
            msg_warn("%s: %s is a symlink: index rebuilt", f->name, MS_INDEX_FILE);
            return 2;
        }
        return ms_fail(err, errno, "%s/%s: open: %s", f->name, MS_INDEX_FILE, strerror(errno));
    }
    if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode) || read_fd(fd, INDEX_MAX_BYTES, &data) != 0) {
        int     saved = errno;

        close(fd);
        sb_free(&data);
        if (saved == EFBIG || (saved == 0 && !S_ISREG(sb.st_mode))) {
            msg_warn("%s: %s is not a regular file of sane size: index rebuilt", f->name, MS_INDEX_FILE);
            return 2;
        }
        return ms_fail(err, saved, "%s/%s: read: %s", f->name, MS_INDEX_FILE, strerror(saved));
    }
    close(fd);
    if (!index_parse(sb_str(&data), sb_len(&data), &idx, &consumed)) {
        msg_warn("%s: %s is corrupt: index rebuilt with a new UIDVALIDITY", f->name, MS_INDEX_FILE);
        sb_free(&data);
        return 2;
    }
    *partial = consumed != sb_len(&data);
    ms_index_free(&f->idx);
    f->idx = idx;
    f->loaded = true;
    fileid_set(&f->idx_id, &sb, (off_t) consumed);
    sb_free(&data);
    return 0;
}

/* write_all - the whole buffer */
static int write_all(int fd, const char *p, size_t len)
{
    while (len > 0) {
        ssize_t n = write(fd, p, len);

        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        p += n;
        len -= (size_t) n;
    }
    return 0;
}

/* index_write - the whole index: temporary file, fsync, rename (lock held) */
static int index_write(struct ms_folder *f, struct strbuf *err)
{
    struct strbuf out = STRBUF_INIT;
    struct stat sb;
    int     fd;

    ms_stat_index_writes++;
    index_format(&f->idx, &out);
    for (size_t i = 0; i < f->idx.n; i++)
        entry_format(&f->idx.e[i], &out);
    fd = openat(f->fd, MS_INDEX_TMP, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0) {
        sb_free(&out);
        return ms_fail(err, errno, "%s/%s: create: %s", f->name, MS_INDEX_TMP, strerror(errno));
    }
    if (write_all(fd, sb_str(&out), sb_len(&out)) != 0 || fsync(fd) != 0
        || renameat(f->fd, MS_INDEX_TMP, f->fd, MS_INDEX_FILE) != 0 || fstat(fd, &sb) != 0) {
        int     saved = errno;

        close(fd);
        unlinkat(f->fd, MS_INDEX_TMP, 0);
        sb_free(&out);
        return ms_fail(err, saved, "%s/%s: write: %s", f->name, MS_INDEX_FILE, strerror(saved));
    }
    close(fd);
    fileid_set(&f->idx_id, &sb, sb.st_size);
    f->loaded = true;
    sb_free(&out);
    return 0;
}

/* index_append - add lines for entries [from, n) to the file (lock held, no torn last line) */
static int index_append(struct ms_folder *f, size_t from, struct strbuf *err)
{
    struct strbuf out = STRBUF_INIT;
    struct stat sb;
    int     fd = openat(f->fd, MS_INDEX_FILE, O_WRONLY | O_APPEND | O_NOFOLLOW | O_CLOEXEC);

    if (fd < 0)
        return ms_fail(err, errno, "%s/%s: open: %s", f->name, MS_INDEX_FILE, strerror(errno));
    for (size_t i = from; i < f->idx.n; i++)
        entry_format(&f->idx.e[i], &out);
    if (write_all(fd, sb_str(&out), sb_len(&out)) != 0 || fdatasync(fd) != 0 || fstat(fd, &sb) != 0) {
        int     saved = errno;

        close(fd);
        sb_free(&out);
        return ms_fail(err, saved, "%s/%s: append: %s", f->name, MS_INDEX_FILE, strerror(saved));
    }
    close(fd);
    fileid_set(&f->idx_id, &sb, sb.st_size);
    sb_free(&out);
    return 0;
}

/* index_lock - the folder's writer lock; an fd to close, -1 with err */
static int index_lock(struct ms_folder *f, struct strbuf *err)
{
    int     fd = openat(f->fd, MS_LOCK_FILE, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);

    if (fd < 0)
        return ms_fail(err, errno, "%s/%s: open: %s", f->name, MS_LOCK_FILE, strerror(errno));
    /* Never wait forever: a stuck process must not hang every session of the user. */
    for (int waited = 0; flock(fd, LOCK_EX | LOCK_NB) != 0; waited += 10) {
        struct timespec ts = {0, 10 * 1000 * 1000};

        if (errno != EWOULDBLOCK && errno != EINTR) {
            int     saved = errno;

            close(fd);
            return ms_fail(err, saved, "%s/%s: flock: %s", f->name, MS_LOCK_FILE, strerror(saved));
        }
        if (waited >= LOCK_WAIT_MS) {
            close(fd);
            return ms_fail(err, EAGAIN, "%s: index locked by another process for %d s", f->name,
                           LOCK_WAIT_MS / 1000);
        }
        nanosleep(&ts, NULL);
    }
    return fd;
}

/* new_uidvalidity - higher than any this Maildir handed out, and at least the time */
static uint32_t new_uidvalidity(struct mstore *st, uint32_t old)
{
    struct strbuf tmp = STRBUF_INIT;
    char    buf[32];
    uint64_t last = old;
    uint32_t v;
    int     fd = openat(st->root_fd, MS_UIDVALIDITY_FILE, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);

    if (fd >= 0) {
        ssize_t n = read(fd, buf, sizeof(buf) - 1);
        const char *p = buf;
        uint64_t x;

        close(fd);
        if (n > 0) {
            buf[n] = '\0';
            if (parse_u64(&p, buf + n, &x) && x > last && x < UINT32_MAX)
                last = x;
        }
    }
    v = (uint32_t) time(NULL);
    if (v <= last)
        v = (uint32_t) last + 1;
    if (v == 0)
        v = 1;
    sb_printf(&tmp, "%s.%ld", MS_UIDVALIDITY_FILE, (long) getpid());
    snprintf(buf, sizeof(buf), "%" PRIu32 "\n", v);
    fd = openat(st->root_fd, sb_str(&tmp), O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd >= 0) {
        bool    ok = write_all(fd, buf, strlen(buf)) == 0;

        close(fd);
        if (!ok || renameat(st->root_fd, sb_str(&tmp), st->root_fd, MS_UIDVALIDITY_FILE) != 0)
            unlinkat(st->root_fd, sb_str(&tmp), 0);
    }
    sb_free(&tmp);
    return v;
}

/* ---- scanning cur/ and new/ ---- */

/* entry_name_ok - a directory entry that can be a message */
static bool entry_name_ok(const char *name)
{
    const char *colon = strchr(name, ':');

    if (name[0] == '.' || name[0] == ':' || !name_chars_ok(name, name + strlen(name), true))
        return false;
    return colon == NULL || strchr(colon, ' ') == NULL;
}

/* hash_str - FNV-1a of n bytes */
static uint32_t hash_str(const char *s, size_t n)
{
    uint32_t h = 2166136261u;

    for (size_t i = 0; i < n; i++)
        h = (h ^ (unsigned char) s[i]) * 16777619u;
    return h;
}

/* numeric_cmp - names by their leading number (delivery time), then as strings */
static int found_cmp(const void *a, const void *b)
{
    const struct found *x = a, *y = b;
    size_t  dx = strspn(x->name, "0123456789"), dy = strspn(y->name, "0123456789");
    int     c;

    if (dx != dy && dx > 0 && dy > 0)
        return dx < dy ? -1 : 1;
    if ((c = strncmp(x->name, y->name, dx < dy ? dx : dy)) != 0)
        return c;
    if ((c = memcmp(x->name, y->name, x->baselen < y->baselen ? x->baselen : y->baselen)) != 0)
        return c;
    if (x->baselen != y->baselen)
        return x->baselen < y->baselen ? -1 : 1;
    return x->in_new - y->in_new;        /* cur/ before new/: duplicates keep cur/ */
}

/* message_vsize - size with CRLF line ends, reading the file once; false if unreadable */
static bool message_vsize(int dirfd, const char *name, uint64_t *vsize)
{
    char    buf[65536];
    uint64_t size = 0, lf = 0, crlf = 0;
    char    prev = 0;
    int     fd = openat(dirfd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
    struct stat sb;

    if (fd < 0)
        return false;
    if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
        close(fd);
        return false;
    }
    for (;;) {
        ssize_t n = read(fd, buf, sizeof(buf));

        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            close(fd);
            if (n < 0)
                return false;
            break;
        }
        for (ssize_t i = 0; i < n; i++) {
            if (buf[i] == '\n') {
                lf++;
                if (prev == '\r')
                    crlf++;
            }
            prev = buf[i];
        }
        size += (uint64_t) n;
    }
    *vsize = size + lf - crlf;
    return true;
}

/* list_dir - regular-looking message names in dirfd */
static int list_dir(int dirfd, bool in_new, struct found **list, size_t *n, size_t *cap)
{
    int     fd = openat(dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    DIR    *d;
    struct dirent *de;

    if (fd < 0 || (d = fdopendir(fd)) == NULL) {
        if (fd >= 0)
            close(fd);
        return -1;
    }
    while ((errno = 0, de = readdir(d)) != NULL) {
        struct found *x;

        if (de->d_type != DT_REG && de->d_type != DT_UNKNOWN)
            continue;
        if (!entry_name_ok(de->d_name))
            continue;
        if (*n == *cap) {
            *cap = *cap ? *cap * 2 : 256;
            *list = xreallocarray(*list, *cap, sizeof(**list));
        }
        x = &(*list)[(*n)++];
        x->name = xstrdup(de->d_name);
        x->baselen = strcspn(x->name, ":");
        x->in_new = in_new;
    }
    if (errno != 0) {
        int     saved = errno;

        closedir(d);
        errno = saved;
        return -1;
    }
    closedir(d);
    return 0;
}

/* move_new - new/ files to cur/ with an empty info, never replacing a file */
static void move_new(struct ms_folder *f)
{
    struct found *list = NULL;
    size_t  n = 0, cap = 0;
    struct strbuf to = STRBUF_INIT;

    if (list_dir(f->new_fd, true, &list, &n, &cap) != 0)
        msg_warn("%s: new/: readdir: %s", f->name, strerror(errno));
    for (size_t i = 0; i < n; i++) {
        sb_set(&to, list[i].name);
        if (list[i].name[list[i].baselen] == '\0')
            sb_puts(&to, ":2,");
        if (renameat2(f->new_fd, list[i].name, f->cur_fd, sb_str(&to), RENAME_NOREPLACE) != 0
            && errno != ENOENT && errno != EEXIST)
            msg_warn("%s: new/%s -> cur/: %s", f->name, list[i].name, strerror(errno));
        free(list[i].name);
    }
    free(list);
    sb_free(&to);
}

/* dir_stamps - mtime/ctime of cur/ and new/ */
static int dir_stamps(struct ms_folder *f, int64_t stamp[4])
{
    struct stat c, n;

    if (fstat(f->cur_fd, &c) != 0 || fstat(f->new_fd, &n) != 0)
        return -1;
    stamp[0] = ts_ns(&c.st_mtim);
    stamp[1] = ts_ns(&c.st_ctim);
    stamp[2] = ts_ns(&n.st_mtim);
    stamp[3] = ts_ns(&n.st_ctim);
    return 0;
}

/* stamps_match - nothing changed in cur/ or new/ since the index was written */
static bool stamps_match(struct ms_folder *f)
{
    int64_t now[4];

    if (dir_stamps(f, now) != 0)
        return false;
    for (int i = 0; i < 4; i++)
        if (f->idx.stamp[i] == 0 || f->idx.stamp[i] != now[i])
            return false;
    return true;
}

/*
 * index_scan - merge the directories into f->idx (lock held): renamed files
 * change flags, vanished ones go, unknown ones get the next uids. *changed
 * when the index must be written.
 */
static int index_scan(struct ms_folder *f, bool move, bool *changed, struct strbuf *err)
{
    struct found *list = NULL;
    size_t  n = 0, cap = 0, nnew = 0;
    struct ms_index *idx = &f->idx;
    uint32_t *table = NULL;
    size_t  tsize = 1;
    bool   *seen = NULL;
    uint64_t mod = idx->highestmodseq + 1;
    bool    any = false;
    int64_t stamp[4];
    struct timespec now;

    ms_stat_scans++;
    if (move)
        move_new(f);
    /* Stamps first: a change after them shows up as a different stamp next time. */
    if (dir_stamps(f, stamp) != 0)
        return ms_fail(err, errno, "%s: stat cur/ new/: %s", f->name, strerror(errno));
    clock_gettime(CLOCK_REALTIME, &now);
    if (list_dir(f->cur_fd, false, &list, &n, &cap) != 0 || list_dir(f->new_fd, true, &list, &n, &cap) != 0) {
        int     saved = errno;

        for (size_t i = 0; i < n; i++)
            free(list[i].name);
        free(list);
        return ms_fail(err, saved, "%s: readdir: %s", f->name, strerror(saved));
    }
    while (tsize < idx->n * 2 + 2)
        tsize <<= 1;
    table = xcalloc(tsize, sizeof(*table));
    seen = xcalloc(idx->n + 1, sizeof(*seen));
    for (size_t i = 0; i < idx->n; i++) {
        uint32_t h = hash_str(idx->e[i].base, strlen(idx->e[i].base)) & (uint32_t) (tsize - 1);

        while (table[h] != 0)
            h = (h + 1) & (uint32_t) (tsize - 1);
        table[h] = (uint32_t) i + 1;
    }
    /* cur/ was listed first, so of two names with one base, cur/ is matched. */
    for (size_t i = 0; i < n; i++) {
        struct found *x = &list[i];
        uint32_t h = hash_str(x->name, x->baselen) & (uint32_t) (tsize - 1);
        struct ms_entry *e = NULL;
        const char *info = x->name[x->baselen] == ':' ? x->name + x->baselen + 1 : NULL;

        for (; table[h] != 0; h = (h + 1) & (uint32_t) (tsize - 1)) {
            struct ms_entry *c = &idx->e[table[h] - 1];

            if (strlen(c->base) == x->baselen && memcmp(c->base, x->name, x->baselen) == 0) {
                e = c;
                break;
            }
        }
        if (e == NULL) {
            list[nnew++] = *x;
            continue;
        }
        if (!seen[e - idx->e]) {
            seen[e - idx->e] = true;
            if (e->in_new != x->in_new || (e->info == NULL) != (info == NULL)
                || (info && strcmp(e->info, info) != 0)) {
                free(e->info);
                e->info = info ? xstrdup(info) : NULL;
                e->in_new = x->in_new;
                e->modseq = mod;
                any = true;
            }
        } else {
            msg_warn("%s: %s/%s duplicates a message: ignored", f->name, x->in_new ? "new" : "cur", x->name);
        }
        free(x->name);
    }
    /* Messages whose files are gone. */
    {
        size_t  w = 0;

        for (size_t i = 0; i < idx->n; i++) {
            if (seen[i]) {
                idx->e[w++] = idx->e[i];
            } else {
                free(idx->e[i].base);
                free(idx->e[i].info);
                any = true;
            }
        }
        idx->n = w;
    }
    /* New messages, in delivery order. */
    if (nnew > 1)
        qsort(list, nnew, sizeof(*list), found_cmp);
    for (size_t i = 0; i < nnew; i++) {
        struct found *x = &list[i];
        int     dirfd = x->in_new ? f->new_fd : f->cur_fd;
        struct stat sb;
        struct ms_entry *e;
        uint64_t vsize;

        if ((i > 0 && list[i - 1].baselen == x->baselen && memcmp(list[i - 1].name, x->name, x->baselen) == 0)
            || fstatat(dirfd, x->name, &sb, AT_SYMLINK_NOFOLLOW) != 0 || !S_ISREG(sb.st_mode)
            || idx->uidnext >= UINT32_MAX - 1)
            continue;
        if (!ms_name_size(x->name, 'W', &vsize) && !message_vsize(dirfd, x->name, &vsize))
            continue;                   /* vanished meanwhile */
        e = index_push(idx);
        e->uid = idx->uidnext++;
        e->modseq = mod;
        e->vsize = vsize;
        e->mtime = (int64_t) sb.st_mtime;
        e->in_new = x->in_new;
        e->base = xstrndup(x->name, x->baselen);
        e->info = x->name[x->baselen] == ':' ? xstrdup(x->name + x->baselen + 1) : NULL;
        any = true;
    }
    for (size_t i = 0; i < nnew; i++)
        free(list[i].name);
    free(list);
    free(table);
    free(seen);
    if (any)
        idx->highestmodseq = mod;
    /* A stamp from the last second could hide a change made in the same clock tick. */
    for (int i = 0; i < 4; i++)
        if (stamp[i] >= ts_ns(&now) - STAMP_SLACK_NS)
            memset(stamp, 0, sizeof(stamp));
    if (memcmp(stamp, idx->stamp, sizeof(stamp)) != 0)
        any = true;
    memcpy(idx->stamp, stamp, sizeof(stamp));
    *changed = any;
    return 0;
}

/* index_rebuild - a new index from the files (lock held) */
static int index_rebuild(struct ms_folder *f, bool move, struct strbuf *err)
{
    uint32_t old = f->loaded ? f->idx.uidvalidity : 0;
    bool    changed;

    ms_index_free(&f->idx);
    f->loaded = false;
    f->idx.uidvalidity = new_uidvalidity(f->st, old);
    f->idx.uidnext = 1;
    f->idx.recent = 1;
    if (index_scan(f, move, &changed, err) != 0)
        return -1;
    if (f->idx.n > 0 || old != 0)
        msg_info("%s: UID index built from %zu messages, uidvalidity=%" PRIu32, f->name, f->idx.n,
                 f->idx.uidvalidity);
    return index_write(f, err);
}

/* ms_folder_sync - bring f->idx up to date with the disk, writing it when it changed */
int ms_folder_sync(struct ms_folder *f, unsigned flags, uint32_t *recent_from, struct strbuf *err)
{
    bool    partial, changed = false;
    int     r, lockfd;
    uint32_t from;

    r = index_refresh(f, &partial, err);
    if (r < 0)
        return -1;
    if (r == 0 && !partial && !(flags & MS_SYNC_FORCE_SCAN) && stamps_match(f)
        && !((flags & MS_SYNC_CLAIM_RECENT) && f->idx.recent < f->idx.uidnext)) {
        if (recent_from)
            *recent_from = (flags & MS_SYNC_CLAIM_RECENT) ? f->idx.uidnext : f->idx.recent;
        return 0;
    }
    if ((lockfd = index_lock(f, err)) < 0)
        return -1;
    r = index_refresh(f, &partial, err);
    if (r < 0)
        goto bad;
    if (r > 0) {
        if (index_rebuild(f, flags & MS_SYNC_MOVE_NEW, err) != 0)
            goto bad;
    } else if (partial || (flags & MS_SYNC_FORCE_SCAN) || !stamps_match(f)) {
        if (index_scan(f, flags & MS_SYNC_MOVE_NEW, &changed, err) != 0)
            goto bad;
        changed |= partial;
    }
    from = f->idx.recent;
    if ((flags & MS_SYNC_CLAIM_RECENT) && f->idx.recent < f->idx.uidnext) {
        f->idx.recent = f->idx.uidnext;
        changed = true;
    }
    if (changed && index_write(f, err) != 0)
        goto bad;
    close(lockfd);
    if (recent_from)
        *recent_from = from;
    return 0;

bad:
    r = errno;
    close(lockfd);
    errno = r;
    return -1;
}

/* find_base - the entry with base, searching from the newest */
static struct ms_entry *find_base(struct ms_index *idx, const char *base, size_t len)
{
    for (size_t i = idx->n; i-- > 0;)
        if (strlen(idx->e[i].base) == len && memcmp(idx->e[i].base, base, len) == 0)
            return &idx->e[i];
    return NULL;
}

/* ms_folder_add - index files just placed in cur/ */
int ms_folder_add(struct ms_folder *f, char *const *names, const uint64_t *vsizes, const int64_t *mtimes,
                  size_t n, uint32_t *uids, struct strbuf *err)
{
    bool    partial;
    int     lockfd, r;
    size_t  from;
    uint64_t mod;

    if ((lockfd = index_lock(f, err)) < 0)
        return -1;
    r = index_refresh(f, &partial, err);
    if (r < 0)
        goto bad;
    if (r > 0 && index_rebuild(f, false, err) != 0)
        goto bad;
    from = f->idx.n;
    mod = f->idx.highestmodseq + 1;
    for (size_t i = 0; i < n; i++) {
        size_t  blen = strcspn(names[i], ":");
        struct ms_entry *e = find_base(&f->idx, names[i], blen);

        if (e == NULL) {
            if (f->idx.uidnext >= UINT32_MAX - 1) {
                ms_fail(err, ENOSPC, "%s: out of UIDs", f->name);
                goto bad;
            }
            e = index_push(&f->idx);
            e->uid = f->idx.uidnext++;
            e->modseq = mod;
            e->vsize = vsizes[i];
            e->mtime = mtimes[i];
            e->base = xstrndup(names[i], blen);
            e->info = names[i][blen] == ':' ? xstrdup(names[i] + blen + 1) : NULL;
            f->idx.highestmodseq = mod;
        }
        uids[i] = e->uid;
    }
    if (f->idx.n > from) {
        r = partial ? index_write(f, err) : index_append(f, from, err);
        if (r != 0)
            goto bad;
    }
    close(lockfd);
    return 0;

bad:
    r = errno;
    close(lockfd);
    f->loaded = false;                  /* memory may be ahead of the file: read it again */
    f->idx_id.valid = false;
    errno = r;
    return -1;
}

/* search_dir - a name in dirfd with this base */
static bool search_dir(int dirfd, const char *base, struct strbuf *name)
{
    struct found *list = NULL;
    size_t  n = 0, cap = 0, blen = strlen(base);
    bool    hit = false;

    if (list_dir(dirfd, false, &list, &n, &cap) != 0)
        return false;
    for (size_t i = 0; i < n; i++) {
        if (!hit && list[i].baselen == blen && memcmp(list[i].name, base, blen) == 0) {
            sb_set(name, list[i].name);
            hit = true;
        }
        free(list[i].name);
    }
    free(list);
    return hit;
}

/* ms_find_file - the current name of the message with base, in cur/ or new/ */
int ms_find_file(struct ms_folder *f, const char *base, struct strbuf *name, bool *in_new)
{
    if (search_dir(f->cur_fd, base, name)) {
        *in_new = false;
        return 0;
    }
    if (search_dir(f->new_fd, base, name)) {
        *in_new = true;
        return 0;
    }
    errno = ENOENT;
    return -1;
}

/* ---- keywords ---- */

/* ms_keyword_valid - a flag-keyword atom we can store */
bool ms_keyword_valid(const char *name)
{
    size_t  len = strlen(name);

    if (len == 0 || len > MS_KEYWORD_MAX || name[0] == '\\')
        return false;
    for (const unsigned char *p = (const unsigned char *) name; *p; p++)
        if (*p <= 0x20 || *p >= 0x7f || strchr("(){%*\"\\]", *p) != NULL)
            return false;
    return true;
}

/* keywords_parse - "<index> <name>" lines into kw; unusable lines are skipped */
static size_t keywords_parse(const char *data, size_t len, char *kw[MBOX_MAX_KEYWORDS])
{
    const char *p = data, *end = data + len;
    size_t  nkw = 0;

    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t) (end - p));
        const char *le = nl ? nl : end;
        uint64_t i;
        char   *name;

        if (parse_u64(&p, le, &i) && expect(&p, le, " ") && i < MBOX_MAX_KEYWORDS && kw[i] == NULL) {
            name = xstrndup(p, (size_t) (le - p));
            if (ms_keyword_valid(name) && strlen(name) == (size_t) (le - p)) {
                kw[i] = name;
                if (i + 1 > nkw)
                    nkw = (size_t) i + 1;
            } else {
                free(name);
            }
        }
        p = nl ? nl + 1 : end;
    }
    return nkw;
}

/* ms_keywords_refresh - re-read dovecot-keywords if it changed; 1 if the list changed */
int ms_keywords_refresh(struct ms_folder *f)
{
    struct strbuf data = STRBUF_INIT;
    char   *kw[MBOX_MAX_KEYWORDS] = {NULL};
    size_t  nkw = 0;
    struct stat sb;
    int     fd, changed = 0;

    if (fstatat(f->fd, MS_KEYWORDS_FILE, &sb, AT_SYMLINK_NOFOLLOW) != 0) {
        if (!f->kw_id.valid && f->nkw == 0)
            return 0;
        memset(&f->kw_id, 0, sizeof(f->kw_id));
    } else {
        if (fileid_same(&f->kw_id, &sb))
            return 0;
        fd = openat(f->fd, MS_KEYWORDS_FILE, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
        if (fd < 0)
            return 0;
        if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode) || read_fd(fd, KEYWORDS_MAX_BYTES, &data) != 0) {
            msg_warn("%s: %s unreadable or too large: ignored", f->name, MS_KEYWORDS_FILE);
            sb_reset(&data);
        }
        close(fd);
        nkw = keywords_parse(sb_str(&data), sb_len(&data), kw);
        fileid_set(&f->kw_id, &sb, sb.st_size);
    }
    for (size_t i = 0; i < MBOX_MAX_KEYWORDS; i++) {
        if ((kw[i] == NULL) != (f->kw[i] == NULL) || (kw[i] && strcmp(kw[i], f->kw[i]) != 0))
            changed = 1;
        free(f->kw[i]);
        f->kw[i] = kw[i];
    }
    f->nkw = nkw;
    sb_free(&data);
    return changed;
}

/* keywords_write - the file from f->kw (index lock held) */
static int keywords_write(struct ms_folder *f, struct strbuf *err)
{
    struct strbuf out = STRBUF_INIT;
    struct stat sb;
    int     fd;

    for (size_t i = 0; i < f->nkw; i++)
        if (f->kw[i])
            sb_printf(&out, "%zu %s\n", i, f->kw[i]);
    fd = openat(f->fd, MS_KEYWORDS_TMP, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0) {
        sb_free(&out);
        return ms_fail(err, errno, "%s/%s: create: %s", f->name, MS_KEYWORDS_TMP, strerror(errno));
    }
    if (write_all(fd, sb_str(&out), sb_len(&out)) != 0 || fsync(fd) != 0
        || renameat(f->fd, MS_KEYWORDS_TMP, f->fd, MS_KEYWORDS_FILE) != 0 || fstat(fd, &sb) != 0) {
        int     saved = errno;

        close(fd);
        unlinkat(f->fd, MS_KEYWORDS_TMP, 0);
        sb_free(&out);
        return ms_fail(err, saved, "%s/%s: write: %s", f->name, MS_KEYWORDS_FILE, strerror(saved));
    }
    close(fd);
    fileid_set(&f->kw_id, &sb, sb.st_size);
    sb_free(&out);
    return 0;
}

/* keyword_lookup - index of name in f->kw, -1 */
static int keyword_lookup(struct ms_folder *f, const char *name)
{
    for (size_t i = 0; i < f->nkw; i++)
        if (f->kw[i] && strcasecmp(f->kw[i], name) == 0)
            return (int) i;
    return -1;
}

/* ms_keyword_find - index of name, added to the file when create; -1 unknown/full/bad */
int ms_keyword_find(struct ms_folder *f, const char *name, bool create, struct strbuf *err)
{
    int     i, lockfd;

    ms_keywords_refresh(f);
    if ((i = keyword_lookup(f, name)) >= 0 || !create)
        return i;
    if (!ms_keyword_valid(name))
        return ms_fail(err, EINVAL, "invalid keyword \"%.100s\"", name);
    if ((lockfd = index_lock(f, err)) < 0)
        return -1;
    ms_keywords_refresh(f);
    if ((i = keyword_lookup(f, name)) < 0) {
        for (i = 0; i < MBOX_MAX_KEYWORDS && f->kw[i] != NULL; i++)
            ;
        if (i == MBOX_MAX_KEYWORDS) {
            close(lockfd);
            return ms_fail(err, ENOSPC, "%s: no room for more keywords (%d)", f->name, MBOX_MAX_KEYWORDS);
        }
        f->kw[i] = xstrdup(name);
        if ((size_t) i + 1 > f->nkw)
            f->nkw = (size_t) i + 1;
        if (keywords_write(f, err) != 0) {
            free(f->kw[i]);
            f->kw[i] = NULL;
            f->kw_id.valid = false;
            close(lockfd);
            return -1;
        }
    }
    close(lockfd);
    return i;
}

/* ---- open folders ---- */

/* ms_folder_open - open folder name into f; ENOENT if it is not a folder */
int ms_folder_open(struct mstore *st, const char *name, struct ms_folder *f, struct strbuf *err)
{
    struct strbuf dir = STRBUF_INIT;
    struct strbuf why = STRBUF_INIT;
    struct stat sb;

    memset(f, 0, sizeof(*f));
    f->st = st;
    f->fd = f->cur_fd = f->new_fd = -1;
    f->name = xstrdup(ms_is_inbox(name) ? "INBOX" : name);
    ms_dir_name(name, &dir);
    /* shared with other sessions of this process on the same directories (lib/shared_dir.h) */
    if (strcmp(sb_str(&dir), ".") == 0)
        f->fd = shared_dir_adopt(openat(st->root_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    else
        f->fd = shared_dir_adopt(maildir_open_dir(st->root_fd, sb_str(&dir), false, &why));
    if (f->fd >= 0)
        f->cur_fd = shared_dir_adopt(maildir_open_dir(f->fd, "cur", false, &why));
    if (f->cur_fd >= 0)
        f->new_fd = shared_dir_adopt(maildir_open_dir(f->fd, "new", false, &why));
    if (f->new_fd < 0 || fstat(f->fd, &sb) != 0) {
        int     saved = errno;

        if (saved == ENOENT || saved == ENOTDIR)
            ms_fail(err, ENOENT, "folder \"%s\" does not exist", f->name);
        else
            ms_fail(err, saved, "folder \"%s\": %s", f->name, sb_str(&why));
        ms_folder_close(f);
        sb_free(&dir);
        sb_free(&why);
        errno = saved == ENOTDIR ? ENOENT : saved;
        return -1;
    }
    f->dev = sb.st_dev;
    f->ino = sb.st_ino;
    sb_free(&dir);
    sb_free(&why);
    ms_keywords_refresh(f);
    return 0;
}

/* ms_folder_close - release fds and memory */
void ms_folder_close(struct ms_folder *f)
{
    shared_dir_release(f->fd);
    shared_dir_release(f->cur_fd);
    shared_dir_release(f->new_fd);
    ms_index_free(&f->idx);
    for (size_t i = 0; i < MBOX_MAX_KEYWORDS; i++)
        free(f->kw[i]);
    free(f->name);
    memset(f, 0, sizeof(*f));
    f->fd = f->cur_fd = f->new_fd = -1;
}

/* cache_drop - close and free one cached folder */
static void cache_drop(struct ms_folder *f)
{
    ms_folder_close(f);
    free(f);
}

/* ms_cache_clear - forget every cached folder */
void ms_cache_clear(struct mstore *st)
{
    for (size_t i = 0; i < MS_CACHE_SIZE; i++) {
        if (st->cache[i])
            cache_drop(st->cache[i]);
        st->cache[i] = NULL;
    }
}

/* ms_folder_get - a cached open folder (still the one the name leads to) or a newly opened one */
struct ms_folder *ms_folder_get(struct mstore *st, const char *name, struct strbuf *err)
{
    const char *canon = ms_is_inbox(name) ? "INBOX" : name;
    struct ms_folder *f;

    for (size_t i = 0; i < MS_CACHE_SIZE; i++) {
        struct strbuf dir = STRBUF_INIT;
        struct stat sb;
        bool    ok;

        if ((f = st->cache[i]) == NULL || strcmp(f->name, canon) != 0)
            continue;
        /* Another session may have renamed or deleted it: the name must still lead here. */
        ms_dir_name(canon, &dir);
        ok = fstatat(st->root_fd, sb_str(&dir), &sb, AT_SYMLINK_NOFOLLOW) == 0 && S_ISDIR(sb.st_mode)
            && sb.st_dev == f->dev && sb.st_ino == f->ino
            && fstatat(f->fd, "cur", &sb, AT_SYMLINK_NOFOLLOW) == 0 && S_ISDIR(sb.st_mode);
        sb_free(&dir);
        memmove(&st->cache[1], &st->cache[0], i * sizeof(st->cache[0]));
        st->cache[0] = f;
        if (ok)
            return f;
        cache_drop(f);
        st->cache[0] = NULL;
        break;
    }
    f = xmalloc(sizeof(*f));
    if (ms_folder_open(st, name, f, err) != 0) {
        int     saved = errno;

        free(f);
        errno = saved;
        return NULL;
    }
    if (st->cache[0] != NULL) {
        if (st->cache[MS_CACHE_SIZE - 1])
            cache_drop(st->cache[MS_CACHE_SIZE - 1]);
        memmove(&st->cache[1], &st->cache[0], (MS_CACHE_SIZE - 1) * sizeof(st->cache[0]));
    }
    st->cache[0] = f;
    return f;
}
