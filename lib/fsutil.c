/*
 * fsutil - careful file-system helpers. See fsutil.h.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fsutil.h"

void fs_dirname(const char *path, struct strbuf *out)
{
    const char *slash = strrchr(path, '/');

    sb_reset(out);
    if (slash == NULL)
        sb_puts(out, ".");
    else if (slash == path)
        sb_puts(out, "/");
    else
        sb_append(out, path, (size_t) (slash - path));
}

int fs_fsync_dir(const char *dir)
{
    int     fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    int     rc;

    if (fd < 0)
        return -1;
    rc = fsync(fd);
    close(fd);
    return rc;
}

int fs_write_atomic(const char *path, const void *data, size_t len, mode_t mode,
                    uid_t uid, gid_t gid, struct strbuf *err)
{
    struct strbuf tmp = STRBUF_INIT;
    struct strbuf dir = STRBUF_INIT;
    const char *p = data;
    int     fd;

    sb_printf(&tmp, "%s.tmpXXXXXX", path);
    fd = mkostemp(tmp.data, O_CLOEXEC);
    if (fd < 0) {
        sb_printf(err, "create %s: %s", sb_str(&tmp), strerror(errno));
        sb_free(&tmp);
        return -1;
    }
    while (len > 0) {
        ssize_t n = write(fd, p, len);

        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            sb_printf(err, "write %s: %s", sb_str(&tmp), strerror(errno));
            goto fail;
        }
        p += n;
        len -= (size_t) n;
    }
    if ((uid != (uid_t) -1 || gid != (gid_t) -1) && fchown(fd, uid, gid) < 0) {
        sb_printf(err, "chown %s: %s", sb_str(&tmp), strerror(errno));
        goto fail;
    }
    if (fchmod(fd, mode) < 0 || fsync(fd) < 0) {
        sb_printf(err, "chmod/fsync %s: %s", sb_str(&tmp), strerror(errno));
        goto fail;
    }
    if (close(fd) < 0) {
        fd = -1;
        sb_printf(err, "close %s: %s", sb_str(&tmp), strerror(errno));
        goto fail;
    }
    fd = -1;
    if (rename(tmp.data, path) < 0) {
        sb_printf(err, "rename %s to %s: %s", sb_str(&tmp), path, strerror(errno));
        goto fail;
    }
    fs_dirname(path, &dir);
    (void) fs_fsync_dir(sb_str(&dir));
    sb_free(&dir);
    sb_free(&tmp);
    return 0;

fail:
    if (fd >= 0)
        close(fd);
    unlink(tmp.data);
    sb_free(&tmp);
    return -1;
}

int fs_read_file(const char *path, size_t max, struct strbuf *out, struct strbuf *err)
{
    char    buf[8192];
    int     fd = open(path, O_RDONLY | O_CLOEXEC);
    ssize_t n;

    if (fd < 0) {
        sb_printf(err, "open %s: %s", path, strerror(errno));
        return -1;
    }
    sb_reset(out);
    while ((n = read(fd, buf, sizeof(buf))) != 0) {
        if (n < 0) {
            if (errno == EINTR)
                continue;
            sb_printf(err, "read %s: %s", path, strerror(errno));
            close(fd);
            return -1;
        }
        if (sb_len(out) + (size_t) n > max) {
            sb_printf(err, "%s: file is larger than %zu bytes", path, max);
            close(fd);
            return -1;
        }
        sb_append(out, buf, (size_t) n);
    }
    close(fd);
    return 0;
}

int fs_mkdir_owned(const char *path, mode_t mode, uid_t uid, gid_t gid, struct strbuf *err)
{
    struct strbuf partial = STRBUF_INIT;
    const char *p = path;

    /* mkdir -p: create each missing parent with a conservative default mode */
    while (*p) {
        const char *slash = strchr(p + 1, '/');
        size_t  upto = slash ? (size_t) (slash - path) : strlen(path);

        sb_reset(&partial);
        sb_append(&partial, path, upto);
        if (sb_len(&partial) > 0 && mkdir(partial.data, slash ? 0755 : mode) < 0 && errno != EEXIST) {
            sb_printf(err, "mkdir %s: %s", partial.data, strerror(errno));
            sb_free(&partial);
            return -1;
        }
        if (!slash)
            break;
        p = slash;
    }
    sb_free(&partial);
    if ((uid != (uid_t) -1 || gid != (gid_t) -1) && chown(path, uid, gid) < 0) {
        sb_printf(err, "chown %s: %s", path, strerror(errno));
        return -1;
    }
    if (chmod(path, mode) < 0) {
        sb_printf(err, "chmod %s: %s", path, strerror(errno));
        return -1;
    }
    return 0;
}
