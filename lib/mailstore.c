/*
 * mailstore - one user's Maildir++ store: the store, folder names and their
 * directories, CREATE/DELETE/RENAME, subscriptions, STATUS, APPEND, quota
 * (see mailstore.h for the model; mailstore_priv.h for the other files).
 *
 * Interface: mstore_open(), mstore_close(), mstore_folder_path(),
 * mstore_name_valid(), mstore_list(), mstore_exists(), mstore_create(),
 * mstore_delete(), mstore_rename(), mstore_subscriptions(),
 * mstore_subscribe(), mstore_status(), mstore_quota(), mstore_append(),
 * mstore_special_use(); ms_is_inbox(), ms_dir_name() for the other files.
 *
 * Safety: names are checked by mstore_name_valid() before they become
 * directory names; every directory is opened beneath the user's Maildir fd
 * one component at a time without following symlinks (lib/maildir.c), and
 * files inside with O_NOFOLLOW. A ".Folder" that is a symlink is no folder:
 * LIST does not show it, SELECT/DELETE/RENAME refuse it (ELOOP) and nothing
 * is ever written or removed through it.
 *
 * DELETE first renames the folder to "..deleted-<unique>" (no valid name maps
 * there, so LIST never shows a half-deleted folder), then removes the files
 * in its cur/ new/ tmp/ and the folder's own files, then the directories.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
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
#include "mutf7.h"
#include "shared_dir.h"
#include "strbuf.h"
#include "strlist.h"

#define SUBSCRIPTIONS_MAX   (1024 * 1024)
#define SUBSCRIPTIONS_LOCK  "subscriptions.lock"
#define FOLDER_MARKER       "maildirfolder"

/* ms_is_inbox - name is INBOX in any case */
bool ms_is_inbox(const char *name)
{
    return strcasecmp(name, "INBOX") == 0;
}

/* ms_dir_name - "." for INBOX, ".Name" otherwise */
void ms_dir_name(const char *name, struct strbuf *out)
{
    sb_reset(out);
    sb_putc(out, '.');
    if (!ms_is_inbox(name))
        sb_puts(out, name);
}

/* mstore_name_valid - a name that maps to exactly one directory in the user's Maildir */
bool mstore_name_valid(const char *name, struct strbuf *err)
{
    size_t  len = name ? strlen(name) : 0;

    if (len == 0)
        return ms_fail(err, EINVAL, "empty mailbox name"), false;
    if (len > MS_NAME_MAX)
        return ms_fail(err, EINVAL, "mailbox name longer than %d bytes", MS_NAME_MAX), false;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char) name[i];

        if (c < 0x20 || c == 0x7f)
            return ms_fail(err, EINVAL, "control character in mailbox name"), false;
        if (c >= 0x80)
            return ms_fail(err, EINVAL, "8-bit character in mailbox name (must be modified UTF-7)"), false;
        if (c == '/' || c == '\\')
            return ms_fail(err, EINVAL, "character '%c' not allowed in mailbox name", c), false;
        if (c == '*' || c == '%')
            return ms_fail(err, EINVAL, "wildcard '%c' not allowed in mailbox name", c), false;
        if (c == '.' && (i == 0 || i == len - 1 || name[i + 1] == '.'))
            return ms_fail(err, EINVAL, "empty hierarchy level in mailbox name"), false;
    }
    if (name[0] == '~')
        return ms_fail(err, EINVAL, "mailbox name may not start with '~'"), false;
    if (strncasecmp(name, "INBOX.", 6) == 0)
        return ms_fail(err, EINVAL, "INBOX cannot have children in this store"), false;
    if (!mutf7_valid(name))
        return ms_fail(err, EINVAL, "mailbox name is not valid modified UTF-7"), false;
    return true;
}

/* mstore_open - the user's Maildir beneath base_fd, created when missing */
struct mstore *mstore_open(int base_fd, const char *path, uint64_t quota_bytes, struct strbuf *err)
{
    struct mstore *st;
    int     fd = shared_dir_adopt(maildir_open(base_fd, path, true, err));

    if (fd < 0) {
        if (err->len == 0)
            sb_printf(err, "%s: %s", path, strerror(errno));
        return NULL;
    }
    st = xcalloc(1, sizeof(*st));
    st->root_fd = fd;
    st->path = xstrdup(path);
    st->quota = quota_bytes;
    return st;
}

/* mstore_close - close the store (views must be closed first) */
void mstore_close(struct mstore *st)
{
    if (st == NULL)
        return;
    ms_cache_clear(st);
    shared_dir_release(st->root_fd);
    free(st->path);
    free(st);
}

/* mstore_folder_path - the Maildir path of folder name relative to the mail base */
void mstore_folder_path(struct mstore *st, const char *name, struct strbuf *out)
{
    sb_set(out, st->path);
    if (!ms_is_inbox(name)) {
        sb_puts(out, "/.");
        sb_puts(out, name);
    }
}

/* is_folder_dir - dir ".X" below root is a real directory with a real cur/ */
static bool is_folder_dir(int root_fd, const char *dir)
{
    struct strbuf cur = STRBUF_INIT;
    struct stat sb;
    bool    ok;

    if (fstatat(root_fd, dir, &sb, AT_SYMLINK_NOFOLLOW) != 0 || !S_ISDIR(sb.st_mode))
        return false;
    /* dir itself is no symlink (just checked), so only "cur" needs AT_SYMLINK_NOFOLLOW. */
    sb_printf(&cur, "%s/cur", dir);
    ok = fstatat(root_fd, sb_str(&cur), &sb, AT_SYMLINK_NOFOLLOW) == 0 && S_ISDIR(sb.st_mode);
    sb_free(&cur);
    return ok;
}

/* name_cmp - qsort order of names */
static int name_cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *) a, *(char *const *) b);
}

/* mstore_list - every folder that exists, "INBOX" first, then sorted */
int mstore_list(struct mstore *st, struct strlist *names, struct strbuf *err)
{
    int     fd = openat(st->root_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    struct strlist found = STRLIST_INIT;
    DIR    *d;
    struct dirent *de;

    if (fd < 0 || (d = fdopendir(fd)) == NULL) {
        int     saved = errno;

        if (fd >= 0)
            close(fd);
        return ms_fail(err, saved, "%s: %s", st->path, strerror(saved));
    }
    while ((de = readdir(d)) != NULL) {
        const char *name = de->d_name + 1;

        if (de->d_name[0] != '.' || (de->d_type != DT_DIR && de->d_type != DT_UNKNOWN)
            || !mstore_name_valid(name, NULL) || ms_is_inbox(name) || !is_folder_dir(st->root_fd, de->d_name))
            continue;
        strlist_add(&found, name);
    }
    closedir(d);
    if (found.count > 0)
        qsort(found.items, found.count, sizeof(found.items[0]), name_cmp);
    strlist_add(names, "INBOX");
    for (size_t i = 0; i < found.count; i++)
        strlist_add(names, found.items[i]);
    strlist_free(&found);
    return 0;
}

/* mstore_exists - name is a folder */
bool mstore_exists(struct mstore *st, const char *name)
{
    struct strbuf dir = STRBUF_INIT;
    bool    ok;

    if (!mstore_name_valid(name, NULL))
        return false;
    if (ms_is_inbox(name))
        return true;
    ms_dir_name(name, &dir);
    ok = is_folder_dir(st->root_fd, sb_str(&dir));
    sb_free(&dir);
    return ok;
}

/* mstore_create - a new, empty folder */
int mstore_create(struct mstore *st, const char *name, struct strbuf *err)
{
    struct strbuf dir = STRBUF_INIT;
    struct strbuf why = STRBUF_INIT;
    int     fd, marker;

    if (!mstore_name_valid(name, err))
        return -1;
    if (ms_is_inbox(name) || mstore_exists(st, name))
        return ms_fail(err, EEXIST, "mailbox \"%s\" already exists", name);
    ms_dir_name(name, &dir);
    /* A directory without cur/ (an interrupted CREATE) is completed, a symlink refused. */
    if (mkdirat(st->root_fd, sb_str(&dir), 0700) != 0 && errno != EEXIST) {
        int     saved = errno;

        sb_free(&dir);
        return ms_fail(err, saved, "cannot create mailbox \"%s\": %s", name, strerror(saved));
    }
    fd = maildir_open(st->root_fd, sb_str(&dir), true, &why);
    sb_free(&dir);
    if (fd < 0) {
        int     saved = errno;

        ms_fail(err, saved, "cannot create mailbox \"%s\": %s", name, sb_str(&why));
        sb_free(&why);
        return -1;
    }
    sb_free(&why);
    marker = openat(fd, FOLDER_MARKER, O_WRONLY | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (marker >= 0)
        close(marker);
    fsync(fd);
    close(fd);
    fsync(st->root_fd);
    return 0;
}

/* empty_dir - unlink every non-directory in sub (below fd); quota sizes of messages added up */
static void empty_dir(int fd, const char *sub, bool messages, int64_t *bytes, int64_t *count)
{
    struct strbuf err = STRBUF_INIT;
    int     subfd = maildir_open_dir(fd, sub, false, &err);
    DIR    *d;
    struct dirent *de;

    sb_free(&err);
    if (subfd < 0) {
        if (errno == ELOOP)
            unlinkat(fd, sub, 0);      /* a planted symlink: remove the link, never its target */
        return;
    }
    if ((d = fdopendir(subfd)) == NULL) {
        close(subfd);
        return;
    }
    while ((de = readdir(d)) != NULL) {
        struct stat sb;

        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
            continue;
        if (fstatat(dirfd(d), de->d_name, &sb, AT_SYMLINK_NOFOLLOW) != 0 || S_ISDIR(sb.st_mode))
            continue;
        if (messages && S_ISREG(sb.st_mode)) {
            *bytes += (int64_t) ms_file_size(dirfd(d), de->d_name);
            (*count)++;
        }
        unlinkat(dirfd(d), de->d_name, 0);
    }
    closedir(d);
    unlinkat(fd, sub, AT_REMOVEDIR);
}

/* mstore_delete - remove the folder and its messages (not its children) */
int mstore_delete(struct mstore *st, const char *name, struct strbuf *err)
{
    struct strbuf dir = STRBUF_INIT;
    struct strbuf trash = STRBUF_INIT;
    struct strbuf why = STRBUF_INIT;
    int64_t bytes = 0, count = 0;
    int     fd;

    if (!mstore_name_valid(name, err))
        return -1;
    if (ms_is_inbox(name))
        return ms_fail(err, EPERM, "INBOX cannot be deleted");
    ms_dir_name(name, &dir);
    fd = maildir_open_dir(st->root_fd, sb_str(&dir), false, &why);
    if (fd < 0 || !is_folder_dir(st->root_fd, sb_str(&dir))) {
        int     saved = fd < 0 ? errno : ENOENT;

        if (fd >= 0)
            close(fd);
        if (saved == ENOENT || saved == ENOTDIR)
            ms_fail(err, ENOENT, "mailbox \"%s\" does not exist", name);
        else
            ms_fail(err, saved, "mailbox \"%s\": %s", name, sb_str(&why));
        sb_free(&dir);
        sb_free(&why);
        errno = saved == ENOTDIR ? ENOENT : saved;
        return -1;
    }
    sb_free(&why);
    sb_puts(&trash, "..deleted-");
    maildir_unique_name(&trash);
    if (renameat2(st->root_fd, sb_str(&dir), st->root_fd, sb_str(&trash), RENAME_NOREPLACE) != 0) {
        int     saved = errno;

        close(fd);
        ms_fail(err, saved, "cannot delete mailbox \"%s\": %s", name, strerror(saved));
        sb_free(&dir);
        sb_free(&trash);
        return -1;
    }
    ms_cache_clear(st);
    empty_dir(fd, "cur", true, &bytes, &count);
    empty_dir(fd, "new", true, &bytes, &count);
    empty_dir(fd, "tmp", false, &bytes, &count);
    empty_dir(st->root_fd, sb_str(&trash), false, &bytes, &count);
    close(fd);
    if (fstatat(st->root_fd, sb_str(&trash), &(struct stat) {0}, AT_SYMLINK_NOFOLLOW) == 0)
        msg_warn("%s: deleted mailbox \"%s\" left as %s (it holds other directories)", st->path, name,
                 sb_str(&trash));
    ms_quota_update(st, -bytes, -count);
    sb_free(&dir);
    sb_free(&trash);
    return 0;
}

/* copy_small_file - name from one directory to another (temporary + rename); missing source is fine */
static void copy_small_file(int from, int to, const char *name)
{
    struct strbuf data = STRBUF_INIT;
    struct strbuf tmp = STRBUF_INIT;
    char    buf[8192];
    ssize_t n;
    int     in = openat(from, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC), out;

    if (in < 0)
        return;
    while ((n = read(in, buf, sizeof(buf))) > 0 && sb_len(&data) < 1024 * 1024)
        sb_append(&data, buf, (size_t) n);
    close(in);
    sb_printf(&tmp, "%s.tmp", name);
    out = openat(to, sb_str(&tmp), O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (out >= 0) {
        bool    ok = write(out, sb_str(&data), sb_len(&data)) == (ssize_t) sb_len(&data) && fsync(out) == 0;

        close(out);
        if (!ok || renameat(to, sb_str(&tmp), to, name) != 0)
            unlinkat(to, sb_str(&tmp), 0);
    }
    sb_free(&data);
    sb_free(&tmp);
}

/* move_messages - every message of INBOX into cur/ of folder fd (RENAME INBOX) */
static int move_messages(struct mstore *st, int dest_fd, struct strbuf *err)
{
    static const char *subs[] = {"cur", "new"};
    struct strbuf why = STRBUF_INIT;
    struct strbuf to = STRBUF_INIT;
    int     dcur = maildir_open_dir(dest_fd, "cur", false, &why);
    int     ret = 0;

    if (dcur < 0) {
        ms_fail(err, errno, "%s", sb_str(&why));
        sb_free(&why);
        return -1;
    }
    for (size_t i = 0; i < 2 && ret == 0; i++) {
        int     sfd = maildir_open_dir(st->root_fd, subs[i], false, &why);
        DIR    *d;
        struct dirent *de;

        if (sfd < 0 || (d = fdopendir(sfd)) == NULL) {
            ret = ms_fail(err, errno, "INBOX/%s: %s", subs[i], strerror(errno));
            if (sfd >= 0)
                close(sfd);
            break;
        }
        while ((de = readdir(d)) != NULL) {
            if (de->d_name[0] == '.' || (de->d_type != DT_REG && de->d_type != DT_UNKNOWN))
                continue;
            sb_set(&to, de->d_name);
            if (i == 1 && strchr(de->d_name, ':') == NULL)
                sb_puts(&to, ":2,");
            if (renameat2(dirfd(d), de->d_name, dcur, sb_str(&to), RENAME_NOREPLACE) != 0 && errno != ENOENT) {
                ret = ms_fail(err, errno, "moving INBOX/%s/%s: %s", subs[i], de->d_name, strerror(errno));
                break;
            }
        }
        closedir(d);
    }
    fsync(dcur);
    close(dcur);
    sb_free(&why);
    sb_free(&to);
    return ret;
}

/* rename_inbox - RFC 3501 6.3.5: messages move to a new folder, INBOX stays */
static int rename_inbox(struct mstore *st, const char *to, struct strbuf *err)
{
    struct strbuf dir = STRBUF_INIT;
    struct strbuf why = STRBUF_INIT;
    int     fd, ret;

    if (mstore_create(st, to, err) != 0)
        return -1;
    ms_dir_name(to, &dir);
    fd = maildir_open_dir(st->root_fd, sb_str(&dir), false, &why);
    sb_free(&dir);
    if (fd < 0) {
        ms_fail(err, errno, "%s", sb_str(&why));
        sb_free(&why);
        return -1;
    }
    sb_free(&why);
    /* Keyword letters in the moved names keep their meaning only with the keyword file. */
    copy_small_file(st->root_fd, fd, MS_KEYWORDS_FILE);
    ret = move_messages(st, fd, err);
    close(fd);
    ms_cache_clear(st);
    return ret;
}

/* mstore_rename - rename the folder and its children; INBOX: its messages move */
int mstore_rename(struct mstore *st, const char *from, const char *to, struct strbuf *err)
{
    struct strlist src = STRLIST_INIT, dst = STRLIST_INIT;
    size_t  flen = strlen(from), done = 0;
    int     fd, ret = 0;
    DIR    *d;
    struct dirent *de;

    if (!mstore_name_valid(from, err) || !mstore_name_valid(to, err))
        return -1;
    if (!mstore_exists(st, from))
        return ms_fail(err, ENOENT, "mailbox \"%s\" does not exist", from);
    if (ms_is_inbox(to) || mstore_exists(st, to))
        return ms_fail(err, EEXIST, "mailbox \"%s\" already exists", to);
    if (ms_is_inbox(from))
        return rename_inbox(st, to, err);
    if (strncmp(to, from, flen) == 0 && to[flen] == '.')
        return ms_fail(err, EINVAL, "cannot rename \"%s\" under itself", from);
    /* The folder and every ".from.*" child, all checked before anything moves. */
    fd = openat(st->root_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0 || (d = fdopendir(fd)) == NULL) {
        int     saved = errno;

        if (fd >= 0)
            close(fd);
        return ms_fail(err, saved, "%s: %s", st->path, strerror(saved));
    }
    while ((de = readdir(d)) != NULL) {
        const char *n = de->d_name + 1;
        struct strbuf target = STRBUF_INIT;
        struct stat sb;

        if (de->d_name[0] != '.' || strncmp(n, from, flen) != 0 || (n[flen] != '\0' && n[flen] != '.'))
            continue;
        if (fstatat(st->root_fd, de->d_name, &sb, AT_SYMLINK_NOFOLLOW) != 0 || !S_ISDIR(sb.st_mode))
            continue;
        sb_printf(&target, "%s%s", to, n + flen);
        if (!mstore_name_valid(sb_str(&target), err)) {
            sb_free(&target);
            ret = -1;
            break;
        }
        strlist_add(&src, de->d_name);
        sb_reset(&target);
        sb_printf(&target, ".%s%s", to, n + flen);
        if (fstatat(st->root_fd, sb_str(&target), &sb, AT_SYMLINK_NOFOLLOW) == 0) {
            ret = ms_fail(err, EEXIST, "mailbox \"%s\" already exists", sb_str(&target) + 1);
            sb_free(&target);
            break;
        }
        strlist_add(&dst, sb_str(&target));
        sb_free(&target);
    }
    closedir(d);
    for (; ret == 0 && done < src.count; done++) {
        if (renameat2(st->root_fd, src.items[done], st->root_fd, dst.items[done], RENAME_NOREPLACE) != 0)
            ret = ms_fail(err, errno, "cannot rename \"%s\": %s", src.items[done] + 1, strerror(errno));
    }
    /* Half a rename is worse than none: put back what moved. */
    if (ret != 0 && done > 0) {
        for (size_t i = done - 1; i-- > 0;)
            renameat2(st->root_fd, dst.items[i], st->root_fd, src.items[i], RENAME_NOREPLACE);
    }
    if (ret == 0)
        fsync(st->root_fd);
    ms_cache_clear(st);
    strlist_free(&src);
    strlist_free(&dst);
    return ret;
}

/* read_subscriptions - valid names in the file, without duplicates */
static int read_subscriptions(struct mstore *st, struct strlist *names, struct strbuf *err)
{
    struct strbuf data = STRBUF_INIT;
    char    buf[8192];
    ssize_t n = 0;
    int     fd = openat(st->root_fd, MS_SUBSCRIPTIONS, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
    struct stat sb;

    if (fd < 0) {
        if (errno == ENOENT)
            return 0;
        return ms_fail(err, errno, "%s/%s: %s", st->path, MS_SUBSCRIPTIONS, strerror(errno));
    }
    if (fstat(fd, &sb) == 0 && S_ISREG(sb.st_mode))
        while ((n = read(fd, buf, sizeof(buf))) > 0 && sb_len(&data) < SUBSCRIPTIONS_MAX)
            sb_append(&data, buf, (size_t) n);
    close(fd);
    for (char *p = data.data, *end = data.data + data.len; p && p < end;) {
        char   *nl = memchr(p, '\n', (size_t) (end - p));

        if (nl == NULL)
            nl = end;
        *nl = '\0';
        if (nl > p && nl[-1] == '\r')
            nl[-1] = '\0';
        if (mstore_name_valid(p, NULL)) {
            const char *name = ms_is_inbox(p) ? "INBOX" : p;

            if (!strlist_contains(names, name))
                strlist_add(names, name);
        }
        p = nl + 1;
    }
    sb_free(&data);
    return 0;
}

/* mstore_subscriptions - the subscribed names */
int mstore_subscriptions(struct mstore *st, struct strlist *names, struct strbuf *err)
{
    return read_subscriptions(st, names, err);
}

/* mstore_subscribe - add or remove name in the subscriptions file */
int mstore_subscribe(struct mstore *st, const char *name, bool subscribe, struct strbuf *err)
{
    struct strlist names = STRLIST_INIT;
    struct strbuf out = STRBUF_INIT;
    struct strbuf tmp = STRBUF_INIT;
    const char *canon;
    bool    have;
    int     lockfd, fd, ret = 0;

    if (!mstore_name_valid(name, err))
        return -1;
    canon = ms_is_inbox(name) ? "INBOX" : name;
    lockfd = openat(st->root_fd, SUBSCRIPTIONS_LOCK, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (lockfd < 0 || flock(lockfd, LOCK_EX) != 0) {
        int     saved = errno;

        if (lockfd >= 0)
            close(lockfd);
        return ms_fail(err, saved, "%s/%s: %s", st->path, SUBSCRIPTIONS_LOCK, strerror(saved));
    }
    if (read_subscriptions(st, &names, err) != 0) {
        close(lockfd);
        return -1;
    }
    have = strlist_contains(&names, canon);
    if (have != subscribe) {
        for (size_t i = 0; i < names.count; i++) {
            if (!subscribe && strcmp(names.items[i], canon) == 0)
                continue;
            sb_printf(&out, "%s\n", names.items[i]);
        }
        if (subscribe)
            sb_printf(&out, "%s\n", canon);
        sb_printf(&tmp, "%s.tmp", MS_SUBSCRIPTIONS);
        fd = openat(st->root_fd, sb_str(&tmp), O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0600);
        if (fd < 0 || write(fd, sb_str(&out), sb_len(&out)) != (ssize_t) sb_len(&out) || fsync(fd) != 0
            || renameat(st->root_fd, sb_str(&tmp), st->root_fd, MS_SUBSCRIPTIONS) != 0) {
            ret = ms_fail(err, errno, "%s/%s: write: %s", st->path, MS_SUBSCRIPTIONS, strerror(errno));
            unlinkat(st->root_fd, sb_str(&tmp), 0);
        }
        if (fd >= 0)
            close(fd);
    }
    close(lockfd);
    strlist_free(&names);
    sb_free(&out);
    sb_free(&tmp);
    return ret;
}

/* mstore_status - STATUS from the index (synced with the directories, claiming nothing) */
int mstore_status(struct mstore *st, const char *name, struct mstore_status *out, struct strbuf *err)
{
    struct ms_folder *f;
    uint32_t recent_from;

    if (!mstore_name_valid(name, err))
        return -1;
    if ((f = ms_folder_get(st, name, err)) == NULL)
        return -1;
    if (ms_folder_sync(f, 0, &recent_from, err) != 0)
        return -1;
    memset(out, 0, sizeof(*out));
    out->messages = (uint32_t) f->idx.n;
    out->uidnext = f->idx.uidnext;
    out->uidvalidity = f->idx.uidvalidity;
    out->highestmodseq = f->idx.highestmodseq;
    for (size_t i = 0; i < f->idx.n; i++) {
        const struct ms_entry *e = &f->idx.e[i];

        if (e->uid >= recent_from)
            out->recent++;
        if (!(ms_info_flags(e->info, NULL) & MBOX_SEEN))
            out->unseen++;
        out->size += e->vsize;
    }
    return 0;
}

/* mstore_quota - usage and limit */
int mstore_quota(struct mstore *st, uint64_t *bytes, uint64_t *count, uint64_t *limit, struct strbuf *err)
{
    *limit = st->quota;
    return ms_quota_usage(st, bytes, count, err);
}

/* mstore_quota_add - one message of bytes more in maildirsize (no-op without a limit) */
void mstore_quota_add(struct mstore *st, uint64_t bytes)
{
    ms_quota_update(st, (int64_t) bytes, 1);
}

/* place_file - link tmp/name as cur/final (never replacing), tmp/ entry removed */
static int place_file(int tmp_fd, const char *name, int cur_fd, const char *final)
{
    if (linkat(tmp_fd, name, cur_fd, final, 0) == 0) {
        unlinkat(tmp_fd, name, 0);
        return 0;
    }
    if (errno != EPERM && errno != EOPNOTSUPP && errno != EMLINK && errno != ENOSYS)
        return -1;
    return renameat2(tmp_fd, name, cur_fd, final, RENAME_NOREPLACE);
}

/*
 * ms_write_message - data as a new message in f's cur/: tmp/ file, fsync,
 * mtime, link as "NAME,S=<size>,W=<vsize>:<info>", fsync cur/. The name
 * (relative to cur/) goes to final. Exposed to mailstore_view.c for COPY
 * between filesystems.
 */
int ms_write_message(struct ms_folder *f, const char *data, size_t len, uint64_t vsize, const char *info,
                     time_t mtime, struct strbuf *final, struct strbuf *err)
{
    struct strbuf why = STRBUF_INIT;
    struct strbuf name = STRBUF_INIT;
    int     tmp_fd = maildir_open_dir(f->fd, "tmp", false, &why);
    int     fd = -1, saved;
    struct timespec times[2];

    if (tmp_fd < 0) {
        ms_fail(err, errno, "%s: %s", f->name, sb_str(&why));
        sb_free(&why);
        return -1;
    }
    sb_free(&why);
    for (int tries = 0; tries < 8 && fd < 0; tries++) {
        sb_reset(&name);
        maildir_unique_name(&name);
        fd = openat(tmp_fd, sb_str(&name), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
        if (fd < 0 && errno != EEXIST)
            break;
    }
    if (fd < 0) {
        saved = errno;
        ms_fail(err, saved, "%s/tmp/%s: create: %s", f->name, sb_str(&name), strerror(saved));
        goto bad;
    }
    times[0].tv_sec = times[1].tv_sec = mtime;
    times[0].tv_nsec = times[1].tv_nsec = 0;
    for (size_t off = 0; off < len;) {
        ssize_t n = write(fd, data + off, len - off);

        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            saved = n < 0 ? errno : EIO;
            ms_fail(err, saved, "%s/tmp/%s: write: %s", f->name, sb_str(&name), strerror(saved));
            goto bad_unlink;
        }
        off += (size_t) n;
    }
    if (futimens(fd, times) != 0 || fsync(fd) != 0 || close(fd) != 0) {
        saved = errno;
        fd = -1;
        ms_fail(err, saved, "%s/tmp/%s: %s", f->name, sb_str(&name), strerror(saved));
        goto bad_unlink;
    }
    fd = -1;
    sb_reset(final);
    sb_printf(final, "%s,S=%zu,W=%" PRIu64 ":%s", sb_str(&name), len, vsize, info);
    if (place_file(tmp_fd, sb_str(&name), f->cur_fd, sb_str(final)) != 0) {
        saved = errno;
        ms_fail(err, saved, "%s/cur/%s: %s", f->name, sb_str(final), strerror(saved));
        goto bad_unlink;
    }
    if (fsync(f->cur_fd) != 0) {
        saved = errno;
        unlinkat(f->cur_fd, sb_str(final), 0);
        ms_fail(err, saved, "%s/cur/: fsync: %s", f->name, strerror(saved));
        goto bad;
    }
    close(tmp_fd);
    sb_free(&name);
    return 0;

bad_unlink:
    unlinkat(tmp_fd, sb_str(&name), 0);
bad:
    if (fd >= 0)
        close(fd);
    close(tmp_fd);
    sb_free(&name);
    errno = saved;
    return -1;
}

/* mstore_append - APPEND: stored with LF line ends, flags in the name, uid assigned under the lock */
int mstore_append(struct mstore *st, const char *folder, const char *data, size_t len,
                  uint32_t flags, const char *const *keywords, size_t nkeywords, time_t internaldate,
                  uint32_t *uidvalidity, uint32_t *uid, struct strbuf *err)
{
    struct ms_folder *f;
    struct strbuf lf = STRBUF_INIT;
    struct strbuf info = STRBUF_INIT;
    struct strbuf final = STRBUF_INIT;
    uint32_t kwbits = 0;
    uint64_t vsize, lines = 0;
    int64_t mtime;
    char   *names[1];
    int     ret = -1;

    if (!mstore_name_valid(folder, err))
        return -1;
    if ((f = ms_folder_get(st, folder, err)) == NULL)
        return -1;
    /* Maildir holds LF line ends; RFC822.SIZE counts them as CRLF. */
    for (size_t i = 0; i < len; i++) {
        if (data[i] == '\r' && i + 1 < len && data[i + 1] == '\n')
            continue;
        sb_putc(&lf, data[i]);
        if (data[i] == '\n')
            lines++;
    }
    vsize = sb_len(&lf) + lines;
    if (ms_quota_check(st, sb_len(&lf), 1, err) != 0)
        goto out;
    for (size_t i = 0; i < nkeywords; i++) {
        int     k = ms_keyword_find(f, keywords[i], true, err);

        if (k < 0 && errno != ENOSPC)
            goto out;
        if (k >= 0)
            kwbits |= 1u << k;
        else
            sb_reset(err);              /* no room: stored without that keyword, as Dovecot does */
    }
    ms_info_build(NULL, flags & (MBOX_SEEN | MBOX_ANSWERED | MBOX_FLAGGED | MBOX_DELETED | MBOX_DRAFT), kwbits,
                  &info);
    mtime = internaldate ? (int64_t) internaldate : (int64_t) time(NULL);
    if (ms_write_message(f, sb_str(&lf), sb_len(&lf), vsize, sb_str(&info), (time_t) mtime, &final, err) != 0)
        goto out;
    names[0] = final.data;
    if (ms_folder_add(f, names, &vsize, &mtime, 1, uid, err) != 0) {
        int     saved = errno;

        /* Not indexed means not reported: remove it so a retried APPEND cannot duplicate it. */
        unlinkat(f->cur_fd, sb_str(&final), 0);
        errno = saved;
        goto out;
    }
    *uidvalidity = f->idx.uidvalidity;
    ms_quota_update(st, (int64_t) sb_len(&lf), 1);
    ret = 0;
out:
    sb_free(&lf);
    sb_free(&info);
    sb_free(&final);
    return ret;
}

/* mstore_special_use - the RFC 6154 attribute of a well-known top-level name */
const char *mstore_special_use(const char *name)
{
    static const struct {
        const char *name;
        const char *use;
    } table[] = {
        {"Sent", "\\Sent"}, {"Sent Messages", "\\Sent"}, {"Sent Items", "\\Sent"},
        {"Drafts", "\\Drafts"},
        {"Trash", "\\Trash"}, {"Deleted Messages", "\\Trash"}, {"Deleted Items", "\\Trash"},
        {"Junk", "\\Junk"}, {"Spam", "\\Junk"},
        {"Archive", "\\Archive"}, {"Archives", "\\Archive"},
    };

    if (name == NULL)
        return NULL;
    for (size_t i = 0; i < sizeof(table) / sizeof(table[0]); i++)
        if (strcasecmp(name, table[i].name) == 0)
            return table[i].use;
    return NULL;
}
