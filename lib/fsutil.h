/*
 * fsutil - small file-system operations done carefully: atomic replace,
 * bounded reads, directories with an exact owner and mode.
 */
#ifndef POSTERN_FSUTIL_H
#define POSTERN_FSUTIL_H

#include <stddef.h>
#include <sys/types.h>
#include "strbuf.h"

/* fs_write_atomic - temp file, fsync, fchown/fchmod, rename, fsync dir; uid/gid -1 keep ours */
int fs_write_atomic(const char *path, const void *data, size_t len, mode_t mode,
                    uid_t uid, gid_t gid, struct strbuf *err);
/* fs_read_file - whole file into out, refusing files over max bytes */
int fs_read_file(const char *path, size_t max, struct strbuf *out, struct strbuf *err);
/* fs_mkdir_owned - mkdir -p path, then set its owner and mode exactly */
int fs_mkdir_owned(const char *path, mode_t mode, uid_t uid, gid_t gid, struct strbuf *err);
/* fs_fsync_dir - make a rename or create in dir durable */
int fs_fsync_dir(const char *dir);
/* fs_dirname - the directory part of path ("." if none) into out */
void fs_dirname(const char *path, struct strbuf *out);

#endif
