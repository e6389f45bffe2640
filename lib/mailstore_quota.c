/*
 * mailstore_quota - Maildir++ quota: the "maildirsize" file in the user's
 * Maildir, as Courier, Dovecot and Postfix's VDA patch keep it.
 *
 * Interface (mailstore_priv.h): ms_quota_check(), ms_quota_update(),
 * ms_quota_usage(), ms_file_size().
 *
 * Format: the first line holds the limits, "<bytes>S" and optionally
 * ",<count>C"; every further line is a delta "<bytes> <count>" (negative
 * for removals), appended with one O_APPEND write so that concurrent
 * writers never interleave. Usage is the sum of the deltas. The file is
 * recalculated (every message in INBOX and the ".Folder" directories,
 * sizes from ",S=" in the names, else stat) when it is missing, unreadable,
 * its limits differ from the configured quota, or it has grown past 5120
 * bytes and is older than 15 minutes; it is written in tmp/ and renamed into
 * place. Without a configured quota the file is neither read nor written and
 * usage is counted from the directories on request.
 *
 * A message's quota size is its size on disk (LF line ends), as virtual's
 * ",S=" records it.
 */
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "maildir.h"
#include "mailstore_priv.h"
#include "strbuf.h"

#define QUOTA_FILE          "maildirsize"
#define QUOTA_MAX_BYTES     (1024 * 1024)
#define QUOTA_RECALC_SIZE   5120
#define QUOTA_RECALC_AGE    (15 * 60)

struct usage {
    int64_t bytes, count;
    uint64_t limit_bytes, limit_count;  /* from the file's first line; 0: none */
};

/* ms_file_size - ",S=" in the name, else the size on disk */
uint64_t ms_file_size(int dirfd, const char *name)
{
    struct stat sb;
    uint64_t size;

    if (ms_name_size(name, 'S', &size))
        return size;
    if (fstatat(dirfd, name, &sb, AT_SYMLINK_NOFOLLOW) == 0 && S_ISREG(sb.st_mode))
        return (uint64_t) sb.st_size;
    return 0;
}

/* count_dir - messages in one cur/ or new/ */
static void count_dir(int maildir_fd, const char *sub, struct usage *u)
{
    struct strbuf err = STRBUF_INIT;
    int     fd = maildir_open_dir(maildir_fd, sub, false, &err);
    DIR    *d;
    struct dirent *de;

    sb_free(&err);
    if (fd < 0 || (d = fdopendir(fd)) == NULL) {
        if (fd >= 0)
            close(fd);
        return;
    }
    while ((de = readdir(d)) != NULL) {
        if (de->d_name[0] == '.' || (de->d_type != DT_REG && de->d_type != DT_UNKNOWN))
            continue;
        u->bytes += (int64_t) ms_file_size(dirfd(d), de->d_name);
        u->count++;
    }
    closedir(d);
}

/* recount - usage from every folder's files */
static void recount(struct mstore *st, struct usage *u)
{
    int     fd = openat(st->root_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    DIR    *d;
    struct dirent *de;

    u->bytes = u->count = 0;
    count_dir(st->root_fd, "cur", u);
    count_dir(st->root_fd, "new", u);
    if (fd < 0 || (d = fdopendir(fd)) == NULL) {
        if (fd >= 0)
            close(fd);
        return;
    }
    while ((de = readdir(d)) != NULL) {
        struct strbuf err = STRBUF_INIT;
        int     sub;

        /* ".Folder" directories only; "..deleted-*" are on their way out. */
        if (de->d_name[0] != '.' || de->d_name[1] == '\0' || de->d_name[1] == '.'
            || (de->d_type != DT_DIR && de->d_type != DT_UNKNOWN))
            continue;
        sub = maildir_open_dir(st->root_fd, de->d_name, false, &err);
        sb_free(&err);
        if (sub < 0)
            continue;                   /* symlinks and files are not folders */
        count_dir(sub, "cur", u);
        count_dir(sub, "new", u);
        close(sub);
    }
    closedir(d);
}

/* parse_limits - "<n>S[,<n>C]" (either part may come alone) */
static bool parse_limits(const char *p, const char *end, struct usage *u)
{
    u->limit_bytes = u->limit_count = 0;
    while (p < end) {
        uint64_t v = 0;

        if (!isdigit((unsigned char) *p))
            return false;
        for (; p < end && isdigit((unsigned char) *p); p++) {
            if (v > (UINT64_MAX - 9) / 10)
                return false;
            v = v * 10 + (uint64_t) (*p - '0');
        }
        if (p == end)
            return false;
        if (*p == 'S')
            u->limit_bytes = v;
        else if (*p == 'C')
            u->limit_count = v;
        else
            return false;
        p++;
        if (p < end && *p++ != ',')
            return false;
    }
    return true;
}

/* parse_file - limits and the sum of the deltas; false if malformed */
static bool parse_file(const char *data, size_t len, struct usage *u)
{
    const char *p = data, *end = data + len;
    const char *nl = memchr(p, '\n', len);

    if (nl == NULL || !parse_limits(p, nl, u))
        return false;
    u->bytes = u->count = 0;
    for (p = nl + 1; p < end; p = nl + 1) {
        long long b, c;
        char    line[64];
        char    extra;
        size_t  n;

        if ((nl = memchr(p, '\n', (size_t) (end - p))) == NULL)
            return false;
        n = (size_t) (nl - p);
        if (n == 0)
            continue;
        if (n >= sizeof(line))
            return false;
        memcpy(line, p, n);
        line[n] = '\0';
        if (sscanf(line, "%lld %lld%c", &b, &c, &extra) != 2 || b > INT64_MAX / 4 || b < -INT64_MAX / 4
            || c > INT32_MAX || c < -INT32_MAX)
            return false;
        u->bytes += b;
        u->count += c;
        if (u->bytes > INT64_MAX / 2 || u->bytes < -INT64_MAX / 2)
            return false;
    }
    return true;
}

/* write_file - limits line and one total, via tmp/ and rename */
static void write_file(struct mstore *st, const struct usage *u)
{
    char    tmpname[96], buf[128];
    int     len, fd;

    if (u->limit_count)
        len = snprintf(buf, sizeof(buf), "%" PRIu64 "S,%" PRIu64 "C\n%" PRId64 " %" PRId64 "\n",
                       u->limit_bytes, u->limit_count, u->bytes, u->count);
    else
        len = snprintf(buf, sizeof(buf), "%" PRIu64 "S\n%" PRId64 " %" PRId64 "\n",
                       u->limit_bytes, u->bytes, u->count);
    snprintf(tmpname, sizeof(tmpname), "tmp/%lld.%ld.maildirsize", (long long) time(NULL), (long) getpid());
    fd = openat(st->root_fd, tmpname, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0) {
        msg_warn("%s: %s: %s", st->path, tmpname, strerror(errno));
        return;
    }
    if (write(fd, buf, (size_t) len) != len || fsync(fd) != 0
        || renameat(st->root_fd, tmpname, st->root_fd, QUOTA_FILE) != 0) {
        msg_warn("%s: writing %s: %s", st->path, QUOTA_FILE, strerror(errno));
        unlinkat(st->root_fd, tmpname, 0);
    }
    close(fd);
}

/* load - usage from maildirsize, recalculated (and rewritten) when needed */
static void load(struct mstore *st, struct usage *u)
{
    struct strbuf data = STRBUF_INIT;
    struct stat sb;
    bool    ok = false;
    int     fd = openat(st->root_fd, QUOTA_FILE, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);

    if (fd >= 0 && fstat(fd, &sb) == 0 && S_ISREG(sb.st_mode) && sb.st_size <= QUOTA_MAX_BYTES) {
        char    buf[8192];
        ssize_t n;

        while ((n = read(fd, buf, sizeof(buf))) > 0 && sb_len(&data) <= QUOTA_MAX_BYTES)
            sb_append(&data, buf, (size_t) n);
        ok = n == 0 && parse_file(sb_str(&data), sb_len(&data), u) && u->limit_bytes == st->quota
            && !(sb_len(&data) > QUOTA_RECALC_SIZE && sb.st_mtime < time(NULL) - QUOTA_RECALC_AGE)
            && u->bytes >= 0 && u->count >= 0;
    }
    if (fd >= 0)
        close(fd);
    sb_free(&data);
    if (ok)
        return;
    /* The count limit is not ours to configure: keep one an admin wrote, if the file had it. */
    if (!(u->limit_bytes == st->quota))
        u->limit_count = 0;
    u->limit_bytes = st->quota;
    recount(st, u);
    write_file(st, u);
}

/* ms_quota_usage - current usage */
int ms_quota_usage(struct mstore *st, uint64_t *bytes, uint64_t *count, struct strbuf *err)
{
    struct usage u = {0, 0, 0, 0};

    (void) err;
    if (st->quota == 0)
        recount(st, &u);
    else
        load(st, &u);
    *bytes = (uint64_t) u.bytes;
    *count = (uint64_t) u.count;
    return 0;
}

/* ms_quota_check - would adding bytes/count exceed the limit? */
int ms_quota_check(struct mstore *st, uint64_t bytes, uint64_t count, struct strbuf *err)
{
    struct usage u = {0, 0, 0, 0};

    if (st->quota == 0)
        return 0;
    load(st, &u);
    if ((uint64_t) u.bytes + bytes > st->quota)
        return ms_fail(err, EDQUOT, "quota exceeded (%" PRId64 " + %" PRIu64 " bytes > %" PRIu64 ")",
                       u.bytes, bytes, st->quota);
    if (u.limit_count && (uint64_t) u.count + count > u.limit_count)
        return ms_fail(err, EDQUOT, "quota exceeded (%" PRId64 " + %" PRIu64 " messages > %" PRIu64 ")",
                       u.count, count, u.limit_count);
    return 0;
}

/* ms_quota_update - append a delta line to maildirsize */
void ms_quota_update(struct mstore *st, int64_t bytes, int64_t count)
{
    char    buf[64];
    int     len, fd;

    if (st->quota == 0 || (bytes == 0 && count == 0))
        return;
    fd = openat(st->root_fd, QUOTA_FILE, O_WRONLY | O_APPEND | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0)
        return;                         /* recalculated when next needed */
    len = snprintf(buf, sizeof(buf), "%" PRId64 " %" PRId64 "\n", bytes, count);
    if (write(fd, buf, (size_t) len) != len)
        msg_warn("%s: appending to %s: %s", st->path, QUOTA_FILE, strerror(errno));
    close(fd);
}
