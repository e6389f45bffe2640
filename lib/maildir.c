/*
 * maildir - Maildir operations beneath a base directory fd (see maildir.h).
 *
 * Interface: maildir_path_check(), maildir_open_dir(), maildir_open(),
 * maildir_escape_host(), maildir_format_name(), maildir_unique_name(),
 * maildir_msg_create(), maildir_msg_write(), maildir_msg_copy(),
 * maildir_msg_size(), maildir_msg_commit(), maildir_msg_abort().
 *
 * Why one component at a time: RESOLVE_BENEATH already keeps a whole-path
 * openat2() under the base, but we must create missing directories, and
 * mkdirat() has no resolve flags. Opening each component relative to its
 * parent's fd (with the same flags) and making only single names means no
 * path is ever resolved twice, so a directory swapped for a symlink between
 * our check and our use is still refused. A name that is a symlink fails
 * with ELOOP, whatever it points to. A mailbox path (maildir_open()) may
 * not run through another Maildir but by one of its "." folders: an entry
 * "example.test/bob/new/" would otherwise make a Maildir among bob's
 * messages, or a directory where his maildirsize belongs.
 *
 * Durability (the Maildir specification and DESIGN.md): the message is
 * fsynced in tmp/, hard-linked into new/ (link() fails instead of replacing
 * an existing file; filesystems without hard links get renameat2 with
 * RENAME_NOREPLACE), tmp/ is cleaned, and new/ is fsynced so the entry
 * survives a crash. Only after that does the caller report success.
 *
 * Diagnostics: -1 with errno and "PATH: what failed: strerror" in err.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <linux/openat2.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "maildir.h"
#include "mem.h"
#include "strbuf.h"

#define MAILDIR_PATH_MAX    4096
#define MAILDIR_COPY_BUF    (64 * 1024)
#define MAILDIR_DIR_MODE    0700
#define MAILDIR_FILE_MODE   0600
#define MAILDIR_CREATE_TRIES 8

struct maildir_msg {
    int     maildir_fd;                 /* borrowed from the caller */
    int     tmp_fd;                     /* tmp/ */
    int     fd;                         /* tmp/NAME */
    struct strbuf name;                 /* NAME, without ",S=" */
    uint64_t size;
    uint64_t bare_lfs;                  /* LFs without a CR before them: vsize = size + bare_lfs */
    bool    last_cr;                    /* the last byte written was a CR */
};

static unsigned long name_counter;      /* the Q part: unique within this process */
static int have_openat2 = -1;           /* unknown until the first call */

/* fail - errno-preserving error text */
static int fail(struct strbuf *err, int errnum, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int fail(struct strbuf *err, int errnum, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    sb_vprintf(err, fmt, ap);
    va_end(ap);
    errno = errnum;
    return -1;
}

/* maildir_path_check - a table value usable as a path beneath the base; -1 with err (errno EINVAL) */
int maildir_path_check(const char *path, size_t len, struct strbuf *err)
{
    bool    has_name = false;

    if (len == 0)
        return fail(err, EINVAL, "empty mailbox path");
    if (len > MAILDIR_PATH_MAX)
        return fail(err, EINVAL, "mailbox path longer than %d bytes", MAILDIR_PATH_MAX);
    if (path[0] == '/')
        return fail(err, EINVAL, "absolute mailbox path \"%.100s\" (must be relative to the mail base)", path);
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char) path[i];

        if (c < 0x20 || c == 0x7f)
            return fail(err, EINVAL, "control character (0x%02x) at byte %zu of the mailbox path", c, i + 1);
    }
    for (size_t i = 0; i < len;) {
        size_t  n = 0;

        while (i + n < len && path[i + n] != '/')
            n++;
        if (n == 2 && path[i] == '.' && path[i + 1] == '.')
            return fail(err, EINVAL, "mailbox path \"%.100s\" has a \"..\" component", path);
        if (n > 0 && !(n == 1 && path[i] == '.'))
            has_name = true;
        i += n + 1;
    }
    if (!has_name)
        return fail(err, EINVAL, "mailbox path \"%.100s\" names no directory below the mail base", path);
    return 0;
}

/* open_beneath - one name below dirfd as a directory, refusing symlinks (ELOOP) and escapes */
static int open_beneath(int dirfd, const char *name)
{
    struct stat st;
    int     fd = -1;

    if (have_openat2 != 0) {
        struct open_how how;

        memset(&how, 0, sizeof(how));
        how.flags = O_RDONLY | O_DIRECTORY | O_CLOEXEC;
        how.resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS;
        fd = (int) syscall(SYS_openat2, dirfd, name, &how, sizeof(how));
        if (fd >= 0 || errno != ENOSYS)
            have_openat2 = 1;
        else
            have_openat2 = 0;
    }
    /* Old kernel: name is one component, never "..", so O_NOFOLLOW is the same check. */
    if (have_openat2 == 0)
        fd = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    /* O_NOFOLLOW with O_DIRECTORY reports a link as ENOTDIR; callers need to tell the two apart. */
    if (fd < 0 && errno == ENOTDIR && fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0
        && S_ISLNK(st.st_mode))
        errno = ELOOP;
    return fd;
}

/* explain - the reason a component could not be used */
static const char *explain(int errnum)
{
    switch (errnum) {
    case ELOOP:
        return "is a symbolic link (refused)";
    case EXDEV:
        return "leads outside the mail base (refused)";
    case ENOTDIR:
        return "is not a directory";
    default:
        return strerror(errnum);
    }
}

/* open_component - name below parent, made first if missing and create; -1 with err */
static int open_component(int parent, const char *name, bool create, const char *path, struct strbuf *err)
{
    int     fd = open_beneath(parent, name);

    if (fd < 0 && errno == ENOENT && create) {
        if (mkdirat(parent, name, MAILDIR_DIR_MODE) != 0 && errno != EEXIST)
            return fail(err, errno, "%s: cannot create directory \"%s\": %s", path, name, strerror(errno));
        fd = open_beneath(parent, name);
    }
    if (fd < 0)
        return fail(err, errno, "%s: \"%s\" %s", path, name, explain(errno));
    return fd;
}

/* is_maildir - dirfd has tmp/ new/ cur/ of its own */
static bool is_maildir(int dirfd)
{
    static const char *subdirs[] = {"tmp", "new", "cur"};
    struct stat st;

    for (size_t i = 0; i < sizeof(subdirs) / sizeof(subdirs[0]); i++)
        if (fstatat(dirfd, subdirs[i], &st, AT_SYMLINK_NOFOLLOW) != 0 || !S_ISDIR(st.st_mode))
            return false;
    return true;
}

/*
 * walk - open path beneath dirfd one component at a time. mailbox: path is a
 * mailbox from a table, which may end in another Maildir's "."-folder (a
 * shared folder) but never inside its own entries (new/, cur/, tmp/,
 * maildirsize, the UID list): a Maildir made or written there would change
 * another user's mailbox behind its owner's back (EINVAL).
 */
static int walk(int dirfd, const char *path, bool create, bool mailbox, struct strbuf *err)
{
    struct strbuf name = STRBUF_INIT;
    size_t  len = strlen(path);
    int     fd = -1;
    int     saved;

    if (maildir_path_check(path, len, err) != 0)
        return -1;
    for (size_t i = 0; i < len;) {
        size_t  n = strcspn(path + i, "/");
        int     next;

        if (n == 0 || (n == 1 && path[i] == '.')) {
            i += n + 1;
            continue;
        }
        sb_reset(&name);
        sb_append(&name, path + i, n);
        if (mailbox && fd >= 0 && path[i] != '.' && is_maildir(fd)) {
            close(fd);
            fail(err, EINVAL, "%s: \"%s\" is inside the Maildir above it (only a .folder may hold a mailbox)",
                 path, sb_str(&name));
            sb_free(&name);
            return -1;
        }
        next = open_component(fd >= 0 ? fd : dirfd, sb_str(&name), create, path, err);
        saved = errno;
        if (fd >= 0)
            close(fd);
        fd = next;
        if (fd < 0) {
            sb_free(&name);
            errno = saved;
            return -1;
        }
        i += n + 1;
    }
    sb_free(&name);
    return fd;
}

/* maildir_open_dir - directory path beneath dirfd, component by component, no symlinks */
int maildir_open_dir(int dirfd, const char *path, bool create, struct strbuf *err)
{
    return walk(dirfd, path, create, false, err);
}

/* maildir_open - the Maildir at path beneath base_dirfd, with tmp/ new/ cur/ made if create */
int maildir_open(int base_dirfd, const char *path, bool create, struct strbuf *err)
{
    static const char *subdirs[] = {"tmp", "new", "cur"};
    int     fd = walk(base_dirfd, path, create, true, err);
    struct stat st;

    if (fd < 0)
        return -1;
    for (size_t i = 0; i < sizeof(subdirs) / sizeof(subdirs[0]); i++) {
        if (fstatat(fd, subdirs[i], &st, AT_SYMLINK_NOFOLLOW) == 0) {
            if (S_ISDIR(st.st_mode))
                continue;
            close(fd);
            return fail(err, S_ISLNK(st.st_mode) ? ELOOP : ENOTDIR, "%s: \"%s\" %s", path, subdirs[i],
                        explain(S_ISLNK(st.st_mode) ? ELOOP : ENOTDIR));
        }
        if (errno != ENOENT || !create || (mkdirat(fd, subdirs[i], MAILDIR_DIR_MODE) != 0 && errno != EEXIST)) {
            int     saved = errno;

            close(fd);
            return fail(err, saved, "%s: %s \"%s\": %s", path,
                        saved == ENOENT ? "no" : "cannot create", subdirs[i], strerror(saved));
        }
    }
    return fd;
}

/* maildir_escape_host - ',' '/' ':' as \054 \057 \072, control characters dropped */
void maildir_escape_host(const char *host, struct strbuf *out)
{
    for (const unsigned char *p = (const unsigned char *) host; *p; p++) {
        switch (*p) {
        case ',':
            sb_puts(out, "\\054");
            break;
        case '/':
            sb_puts(out, "\\057");
            break;
        case ':':
            sb_puts(out, "\\072");
            break;
        default:
            if (*p >= 0x20 && *p != 0x7f)
                sb_putc(out, *p);
        }
    }
}

/* maildir_format_name - "SEC.M<usec>P<pid>Q<counter>.HOST" */
void maildir_format_name(struct strbuf *out, long long sec, long usec, long pid, unsigned long counter,
                         const char *host)
{
    sb_printf(out, "%lld.M%ldP%ldQ%lu.", sec, usec, pid, counter);
    maildir_escape_host(host, out);
}

/* maildir_unique_name - a fresh name from the clock, pid, a process counter and the host name */
void maildir_unique_name(struct strbuf *out)
{
    static char host[256];
    struct timespec ts;

    if (host[0] == '\0') {
        if (gethostname(host, sizeof(host) - 1) != 0 || host[0] == '\0')
            snprintf(host, sizeof(host), "localhost");
        host[sizeof(host) - 1] = '\0';
    }
    clock_gettime(CLOCK_REALTIME, &ts);
    maildir_format_name(out, (long long) ts.tv_sec, ts.tv_nsec / 1000, (long) getpid(), ++name_counter, host);
}

/* maildir_msg_create - tmp/NAME, created exclusively (0600) */
struct maildir_msg *maildir_msg_create(int maildir_fd, struct strbuf *err)
{
    struct maildir_msg *m = xcalloc(1, sizeof(*m));

    m->maildir_fd = maildir_fd;
    m->fd = -1;
    m->tmp_fd = open_component(maildir_fd, "tmp", false, "maildir", err);
    if (m->tmp_fd < 0) {
        free(m);
        return NULL;
    }
    /* A clash means another writer with our pid (a reused pid in the same microsecond): take the next name. */
    for (int tries = 0; tries < MAILDIR_CREATE_TRIES; tries++) {
        sb_reset(&m->name);
        maildir_unique_name(&m->name);
        m->fd = openat(m->tmp_fd, sb_str(&m->name), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
                       MAILDIR_FILE_MODE);
        if (m->fd >= 0 || errno != EEXIST)
            break;
    }
    if (m->fd < 0) {
        int     saved = errno;

        fail(err, saved, "tmp/%s: create: %s", sb_str(&m->name), strerror(saved));
        close(m->tmp_fd);
        sb_free(&m->name);
        free(m);
        errno = saved;
        return NULL;
    }
    return m;
}

/* count_bare_lfs - for the CRLF size IMAP reports (",W=" in the name, as Dovecot writes) */
static void count_bare_lfs(struct maildir_msg *m, const char *p, size_t len)
{
    const char *end = p + len, *lf;

    if (len == 0)
        return;
    for (const char *q = p; (lf = memchr(q, '\n', (size_t) (end - q))) != NULL; q = lf + 1)
        if (lf == p ? !m->last_cr : lf[-1] != '\r')
            m->bare_lfs++;
    m->last_cr = end[-1] == '\r';
}

/* maildir_msg_write - append data to the message */
int maildir_msg_write(struct maildir_msg *m, const void *data, size_t len, struct strbuf *err)
{
    const char *p = data;

    count_bare_lfs(m, p, len);

    while (len > 0) {
        ssize_t n = write(m->fd, p, len);

        if (n < 0) {
            if (errno == EINTR)
                continue;
            return fail(err, errno, "tmp/%s: write: %s", sb_str(&m->name), strerror(errno));
        }
        p += n;
        len -= (size_t) n;
        m->size += (uint64_t) n;
    }
    return 0;
}

/* maildir_msg_copy - length bytes of fd from offset, through a bounded buffer */
int maildir_msg_copy(struct maildir_msg *m, int fd, uint64_t offset, uint64_t length, struct strbuf *err)
{
    char   *buf = xmalloc(MAILDIR_COPY_BUF);
    int     ret = 0;

    if (offset > (uint64_t) INT64_MAX - length) {
        free(buf);
        return fail(err, EINVAL, "message offset %llu + length %llu overflow",
                    (unsigned long long) offset, (unsigned long long) length);
    }
    while (length > 0) {
        size_t  want = length < MAILDIR_COPY_BUF ? (size_t) length : MAILDIR_COPY_BUF;
        ssize_t n = pread(fd, buf, want, (off_t) offset);

        if (n < 0) {
            if (errno == EINTR)
                continue;
            ret = fail(err, errno, "read message: %s", strerror(errno));
            break;
        }
        if (n == 0) {
            ret = fail(err, EIO, "read message: file ends %llu bytes early", (unsigned long long) length);
            break;
        }
        if ((ret = maildir_msg_write(m, buf, (size_t) n, err)) != 0)
            break;
        offset += (uint64_t) n;
        length -= (uint64_t) n;
    }
    free(buf);
    return ret;
}

/* maildir_msg_size - bytes written so far */
uint64_t maildir_msg_size(const struct maildir_msg *m)
{
    return m->size;
}

/* msg_release - close and free */
static void msg_release(struct maildir_msg *m)
{
    if (m->fd >= 0)
        close(m->fd);
    if (m->tmp_fd >= 0)
        close(m->tmp_fd);
    sb_free(&m->name);
    free(m);
}

/* info_ok - Maildir info ("2,FLAGS") may not hold a path separator or control characters */
static bool info_ok(const char *info)
{
    for (const unsigned char *p = (const unsigned char *) info; *p; p++)
        if (*p == '/' || *p < 0x20 || *p == 0x7f)
            return false;
    return strlen(info) < 128;
}

/* place - tmp/NAME as dir/final, never replacing an existing file */
static int place(struct maildir_msg *m, int dir_fd, const char *final)
{
    if (linkat(m->tmp_fd, sb_str(&m->name), dir_fd, final, 0) == 0) {
        (void) unlinkat(m->tmp_fd, sb_str(&m->name), 0);   /* a leftover in tmp/ is harmless */
        return 0;
    }
    if (errno != EPERM && errno != EOPNOTSUPP && errno != EMLINK && errno != ENOSYS)
        return -1;
    /* Filesystems without hard links: rename, still refusing to replace. */
    return renameat2(m->tmp_fd, sb_str(&m->name), dir_fd, final, RENAME_NOREPLACE);
}

/* maildir_msg_commit - fsync, link into new/ (or cur/ with info), fsync the directory; m is freed */
int maildir_msg_commit(struct maildir_msg *m, const char *info, struct strbuf *name_out, struct strbuf *err)
{
    const char *subdir = info ? "cur" : "new";
    struct strbuf final = STRBUF_INIT;
    int     dir_fd = -1;
    int     saved;

    if (info && !info_ok(info)) {
        maildir_msg_abort(m);
        return fail(err, EINVAL, "bad Maildir info \"%.40s\"", info);
    }
    if (fsync(m->fd) != 0) {
        fail(err, errno, "tmp/%s: fsync: %s", sb_str(&m->name), strerror(errno));
        goto bad;
    }
    if (close(m->fd) != 0) {
        m->fd = -1;
        fail(err, errno, "tmp/%s: close: %s", sb_str(&m->name), strerror(errno));
        goto bad;
    }
    m->fd = -1;
    dir_fd = open_component(m->maildir_fd, subdir, false, "maildir", err);
    if (dir_fd < 0)
        goto bad;
    sb_printf(&final, "%s,S=%llu,W=%llu", sb_str(&m->name), (unsigned long long) m->size,
              (unsigned long long) (m->size + m->bare_lfs));
    if (info)
        sb_printf(&final, ":%s", info);
    if (place(m, dir_fd, sb_str(&final)) != 0) {
        fail(err, errno, "%s/%s: %s", subdir, sb_str(&final), strerror(errno));
        goto bad;
    }
    if (fsync(dir_fd) != 0) {
        /* The link may not be durable: remove it so a redelivery cannot duplicate it. */
        saved = errno;
        unlinkat(dir_fd, sb_str(&final), 0);
        fail(err, saved, "%s/: fsync: %s", subdir, strerror(saved));
        goto bad;
    }
    close(dir_fd);
    if (name_out)
        sb_set(name_out, sb_str(&final));
    sb_free(&final);
    msg_release(m);
    return 0;

bad:
    saved = errno;
    if (dir_fd >= 0)
        close(dir_fd);
    sb_free(&final);
    maildir_msg_abort(m);
    errno = saved;
    return -1;
}

/* maildir_msg_abort - remove tmp/NAME; m is freed */
void maildir_msg_abort(struct maildir_msg *m)
{
    int     saved = errno;

    if (m->fd >= 0) {
        close(m->fd);
        m->fd = -1;
    }
    unlinkat(m->tmp_fd, sb_str(&m->name), 0);
    msg_release(m);
    errno = saved;
}
