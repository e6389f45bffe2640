/*
 * privsep - give up privileges for good before touching untrusted input.
 *
 * privsep_drop() confines a daemon: chdir to its directory, chroot there
 * (when asked), setgroups to the user's primary group only, setgid, setuid,
 * clear the capability bounding set and the effective, permitted,
 * inheritable and ambient sets (libcap), and set PR_SET_NO_NEW_PRIVS. Every
 * step is checked, and the result verified (setuid(0) must fail afterwards).
 *
 * Unprivileged mode: when the process is not root (a developer's laptop, a
 * test), there is nothing to give up: it chdirs to the directory, sets
 * no_new_privs, clears whatever capabilities it has, and reports the mode so
 * the daemon logs a warning. Daemons always use paths relative to their
 * directory, so both modes see the same files.
 */
#ifndef POSTERN_PRIVSEP_H
#define POSTERN_PRIVSEP_H

#include <stdbool.h>
#include <sys/types.h>
#include "strbuf.h"

enum privsep_mode { PRIVSEP_DROPPED = 0, PRIVSEP_UNPRIVILEGED = 1, PRIVSEP_FAILED = -1 };

bool privsep_is_root(void);
/* privsep_lookup_user - uid/gid of a user name; -1 with err if unknown */
int  privsep_lookup_user(const char *name, uid_t *uid, gid_t *gid, struct strbuf *err);
/*
 * privsep_drop - become user (NULL: stay root, for a master.cf unpriv=n service:
 * chdir/chroot and no_new_privs only), working in dir, chrooted there if asked.
 */
enum privsep_mode privsep_drop(const char *user, const char *dir, bool chroot_there, struct strbuf *err);

#endif
