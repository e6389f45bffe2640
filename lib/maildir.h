/*
 * maildir - Maildir operations shared by the delivery agent (virtual) and
 * imapd: find a user's Maildir beneath the mail base without ever leaving it,
 * create it, and add messages the way the Maildir specification asks
 * (write tmp/NAME, fsync, link into new/ or cur/, fsync the directory).
 *
 * Paths come from tables (virtual_mailbox_maps) and are relative to an open
 * directory fd (the mail base): maildir_path_check() refuses absolute paths,
 * ".." components, control characters and empty paths; the directories are
 * then opened one component at a time with openat2(RESOLVE_BENEATH |
 * RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS) (O_NOFOLLOW per component
 * where the kernel lacks openat2), so a symlink anywhere, planted by a user
 * or an admin, is refused with ELOOP. Missing directories are made 0700.
 *
 * File names are unique per the Maildir specification,
 * "SECONDS.M<usec>P<pid>Q<counter>.HOST,S=<size>,W=<vsize>" (Maildir++ size for
 * quota; W, as Dovecot writes it, the size with CRLF line ends that IMAP reports;
 * ',' '/' ':' in HOST written as \054 \057 \072), and a message is never
 * renamed over an existing file (link(2), or rename with RENAME_NOREPLACE).
 *
 * Errors: -1 with errno set (so callers can tell ENOSPC from ELOOP) and a
 * message in err naming the path.
 */
#ifndef POSTERN_MAILDIR_H
#define POSTERN_MAILDIR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include "strbuf.h"

/* maildir_path_check - a table value usable as a path beneath the base; -1 with err (errno EINVAL) */
int  maildir_path_check(const char *path, size_t len, struct strbuf *err);
/* maildir_open_dir - directory path beneath dirfd, component by component, no symlinks; creates missing ones (0700) if create */
int  maildir_open_dir(int dirfd, const char *path, bool create, struct strbuf *err);
/*
 * maildir_open - the Maildir at path beneath base_dirfd (checked), with tmp/ new/ cur/ made if create;
 * an O_RDONLY dir fd. EINVAL: path leads into another Maildir other than through a ".folder".
 */
int  maildir_open(int base_dirfd, const char *path, bool create, struct strbuf *err);

/* maildir_escape_host - HOST part of a file name: ',' '/' ':' as \054 \057 \072, control characters dropped */
void maildir_escape_host(const char *host, struct strbuf *out);
/* maildir_format_name - "SEC.M<usec>P<pid>Q<counter>.HOST" (host escaped here) */
void maildir_format_name(struct strbuf *out, long long sec, long usec, long pid, unsigned long counter,
                         const char *host);
/* maildir_unique_name - a fresh name from the clock, pid, a process counter and the host name */
void maildir_unique_name(struct strbuf *out);

/* Adding a message: create, write/copy, commit (or abort). The Maildir fd must stay open meanwhile. */
struct maildir_msg;
/* maildir_msg_create - tmp/NAME, created exclusively (0600) */
struct maildir_msg *maildir_msg_create(int maildir_fd, struct strbuf *err);
int  maildir_msg_write(struct maildir_msg *m, const void *data, size_t len, struct strbuf *err);
/* maildir_msg_copy - length bytes of fd from offset (pread: fd's position is untouched) */
int  maildir_msg_copy(struct maildir_msg *m, int fd, uint64_t offset, uint64_t length, struct strbuf *err);
uint64_t maildir_msg_size(const struct maildir_msg *m);
/*
 * maildir_msg_commit - fsync, link as "new/NAME,S=SIZE,W=VSIZE" (or "cur/NAME,S=SIZE,W=VSIZE:INFO" when
 * info is given, e.g. "2,S"), remove tmp/NAME, fsync the directory. The final
 * file name (without directory) goes to name_out if not NULL. m is freed either way.
 */
int  maildir_msg_commit(struct maildir_msg *m, const char *info, struct strbuf *name_out, struct strbuf *err);
/* maildir_msg_abort - remove tmp/NAME; m is freed */
void maildir_msg_abort(struct maildir_msg *m);

#endif
