/*
 * privsep - give up privileges for good before touching untrusted input.
 *
 * Interface (privsep.h): privsep_is_root(), privsep_lookup_user(),
 * privsep_drop().
 *
 * The order of the steps matters:
 *  1. look the user up while /etc/passwd is still visible;
 *  2. chdir(dir), then chroot(".") and chdir("/"): chrooting the directory we
 *     already stand in leaves no window in which a path could be swapped;
 *  3. drop the capability bounding set and clear the ambient set; dropping the
 *     bounding set needs CAP_SETPCAP, which setuid() is about to take away;
 *  4. setgroups() to the primary group only, setresgid(), setresuid();
 *  5. clear the effective, permitted and inheritable sets (the kernel already
 *     did when the uids left 0, but we do not rely on it), set no_new_privs;
 *  6. verify: all uids and gids are the target, the supplementary group list
 *     is just the primary group, no capability is left, and setuid(0) fails.
 * Any failure returns PRIVSEP_FAILED with "what path: strerror" in err; the
 * caller must then exit, as the process may be half-way confined.
 *
 * user == NULL (master.cf unpriv=n): the process stays root with its
 * capabilities, but is still confined to its directory and sets
 * no_new_privs. Without root (a developer's laptop, a test): chdir only, no
 * chroot or identity change, whatever capabilities the process has are
 * cleared, no_new_privs; PRIVSEP_UNPRIVILEGED tells the caller to warn.
 */
#include <errno.h>
#include <stdarg.h>
#include <grp.h>
#include <pwd.h>
#include <stdio.h>
#include <string.h>
#include <sys/capability.h>
#include <sys/prctl.h>
#include <unistd.h>

#include "privsep.h"

#ifndef PR_CAP_AMBIENT
#define PR_CAP_AMBIENT 47
#endif
#ifndef PR_CAP_AMBIENT_CLEAR_ALL
#define PR_CAP_AMBIENT_CLEAR_ALL 4
#endif

/* set_err - replace err with a formatted message */
static void set_err(struct strbuf *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void set_err(struct strbuf *err, const char *fmt, ...)
{
    va_list ap;

    sb_reset(err);
    va_start(ap, fmt);
    sb_vprintf(err, fmt, ap);
    va_end(ap);
}

/* privsep_is_root - whether there is anything to give up */
bool privsep_is_root(void)
{
    return geteuid() == 0;
}

/* privsep_lookup_user - uid/gid of a user name; -1 with err if unknown */
int privsep_lookup_user(const char *name, uid_t *uid, gid_t *gid, struct strbuf *err)
{
    struct passwd *pw;

    if (name == NULL || *name == '\0') {
        set_err(err, "%s", "empty user name");
        return -1;
    }
    errno = 0;
    pw = getpwnam(name);
    if (pw == NULL) {
        if (errno != 0 && errno != ENOENT && errno != ESRCH && errno != EBADF && errno != EPERM)
            set_err(err, "look up user %s: %s", name, strerror(errno));
        else
            set_err(err, "unknown user \"%s\"; create it or name an existing user", name);
        return -1;
    }
    *uid = pw->pw_uid;
    *gid = pw->pw_gid;
    return 0;
}

/* fail - set err to "what: strerror(errno)" and report failure */
static enum privsep_mode fail(struct strbuf *err, const char *what, const char *arg)
{
    int     saved_errno = errno;

    if (arg)
        set_err(err, "%s %s: %s", what, arg, strerror(saved_errno));
    else
        set_err(err, "%s: %s", what, strerror(saved_errno));
    errno = saved_errno;
    return PRIVSEP_FAILED;
}

/* confine_dir - chdir to dir and, if asked, make it the root */
static enum privsep_mode confine_dir(const char *dir, bool chroot_there, struct strbuf *err)
{
    if (dir == NULL || *dir == '\0') {
        if (chroot_there) {
            set_err(err, "%s", "chroot requested but no directory given");
            return PRIVSEP_FAILED;
        }
        return PRIVSEP_DROPPED;
    }
    if (chdir(dir) != 0)
        return fail(err, "chdir", dir);
    if (chroot_there) {
        if (chroot(".") != 0)
            return fail(err, "chroot", dir);
        if (chdir("/") != 0)
            return fail(err, "chdir / after chroot", dir);
    }
    return PRIVSEP_DROPPED;
}

/* drop_bounding_set - remove every capability the kernel knows from the bounding set */
static enum privsep_mode drop_bounding_set(struct strbuf *err)
{
    char    name[32];

    /* The kernel may know more capabilities than our headers: ask it, not CAP_LAST_CAP. */
    for (int cap = 0; prctl(PR_CAPBSET_READ, (unsigned long) cap, 0, 0, 0) >= 0; cap++) {
        if (prctl(PR_CAPBSET_DROP, (unsigned long) cap, 0, 0, 0) != 0) {
            snprintf(name, sizeof(name), "%d", cap);
            return fail(err, "prctl PR_CAPBSET_DROP capability", name);
        }
    }
    return PRIVSEP_DROPPED;
}

/* clear_ambient - empty the ambient set (kernels before 4.3 have none) */
static enum privsep_mode clear_ambient(struct strbuf *err)
{
    if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) != 0 && errno != EINVAL)
        return fail(err, "prctl PR_CAP_AMBIENT_CLEAR_ALL", NULL);
    return PRIVSEP_DROPPED;
}

/* clear_caps - empty the effective, permitted and inheritable sets */
static enum privsep_mode clear_caps(struct strbuf *err)
{
    cap_t   caps = cap_init();
    int     rc;

    if (caps == NULL)
        return fail(err, "cap_init", NULL);
    rc = cap_clear(caps);
    if (rc == 0)
        rc = cap_set_proc(caps);
    if (rc != 0) {
        fail(err, "cap_set_proc (clear all capabilities)", NULL);
        cap_free(caps);
        return PRIVSEP_FAILED;
    }
    cap_free(caps);
    return PRIVSEP_DROPPED;
}

/* caps_are_clear - the process holds no effective, permitted or inheritable capability */
static bool caps_are_clear(void)
{
    cap_t   have = cap_get_proc();
    cap_t   none = cap_init();
    bool    clear = false;

    if (have && none && cap_clear(none) == 0)
        clear = (cap_compare(have, none) == 0);
    if (have)
        cap_free(have);
    if (none)
        cap_free(none);
    return clear;
}

/* set_no_new_privs - no execve() can ever give privileges back */
static enum privsep_mode set_no_new_privs(struct strbuf *err)
{
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0)
        return fail(err, "prctl PR_SET_NO_NEW_PRIVS", NULL);
    return PRIVSEP_DROPPED;
}

/* verify_dropped - check that the change of identity really took */
static enum privsep_mode verify_dropped(const char *user, uid_t uid, gid_t gid, struct strbuf *err)
{
    uid_t   ruid, euid, suid;
    gid_t   rgid, egid, sgid;
    gid_t   groups[2];
    int     ngroups;

    if (getresuid(&ruid, &euid, &suid) != 0 || ruid != uid || euid != uid || suid != uid) {
        set_err(err, "user %s: real/effective/saved uid are not all %ld after setresuid",
                  user, (long) uid);
        return PRIVSEP_FAILED;
    }
    if (getresgid(&rgid, &egid, &sgid) != 0 || rgid != gid || egid != gid || sgid != gid) {
        set_err(err, "user %s: real/effective/saved gid are not all %ld after setresgid",
                  user, (long) gid);
        return PRIVSEP_FAILED;
    }
    ngroups = getgroups(2, groups);
    if (ngroups < 0 || ngroups > 1 || (ngroups == 1 && groups[0] != gid)) {
        set_err(err, "user %s: supplementary groups remain after setgroups", user);
        return PRIVSEP_FAILED;
    }
    if (setuid(0) == 0 || seteuid(0) == 0) {
        set_err(err, "user %s: setuid(0) still succeeds after dropping privileges", user);
        return PRIVSEP_FAILED;
    }
    if (!caps_are_clear()) {
        set_err(err, "user %s: capabilities remain after dropping privileges", user);
        return PRIVSEP_FAILED;
    }
    if (prctl(PR_CAPBSET_READ, (unsigned long) CAP_SETUID, 0, 0, 0) != 0) {
        set_err(err, "user %s: the capability bounding set is not empty", user);
        return PRIVSEP_FAILED;
    }
    return PRIVSEP_DROPPED;
}

/* drop_unprivileged - not root: confine what we can and say so */
static enum privsep_mode drop_unprivileged(const char *dir, struct strbuf *err)
{
    cap_t   have;
    cap_flag_value_t setpcap = CAP_CLEAR;

    if (confine_dir(dir, false, err) != PRIVSEP_DROPPED)
        return PRIVSEP_FAILED;
    /* File capabilities or an ambient set may have given us something: drop it. */
    have = cap_get_proc();
    if (have != NULL) {
        cap_get_flag(have, CAP_SETPCAP, CAP_EFFECTIVE, &setpcap);
        cap_free(have);
    }
    if (setpcap == CAP_SET && drop_bounding_set(err) != PRIVSEP_DROPPED)
        return PRIVSEP_FAILED;
    if (clear_ambient(err) != PRIVSEP_DROPPED || clear_caps(err) != PRIVSEP_DROPPED)
        return PRIVSEP_FAILED;
    if (set_no_new_privs(err) != PRIVSEP_DROPPED)
        return PRIVSEP_FAILED;
    return PRIVSEP_UNPRIVILEGED;
}

/* privsep_drop - become user in dir (chrooted if asked); see the top of the file */
enum privsep_mode privsep_drop(const char *user, const char *dir, bool chroot_there, struct strbuf *err)
{
    uid_t   uid = 0;
    gid_t   gid = 0;

    if (!privsep_is_root())
        return drop_unprivileged(dir, err);

    if (user != NULL) {
        if (privsep_lookup_user(user, &uid, &gid, err) != 0)
            return PRIVSEP_FAILED;
        if (uid == 0) {
            set_err(err, "user %s has uid 0; name an unprivileged user", user);
            return PRIVSEP_FAILED;
        }
    }
    if (confine_dir(dir, chroot_there, err) != PRIVSEP_DROPPED)
        return PRIVSEP_FAILED;
    if (user == NULL)
        return set_no_new_privs(err);

    if (drop_bounding_set(err) != PRIVSEP_DROPPED || clear_ambient(err) != PRIVSEP_DROPPED)
        return PRIVSEP_FAILED;
    if (setgroups(1, &gid) != 0)
        return fail(err, "setgroups for user", user);
    if (setresgid(gid, gid, gid) != 0)
        return fail(err, "setresgid for user", user);
    if (setresuid(uid, uid, uid) != 0)
        return fail(err, "setresuid for user", user);
    if (clear_caps(err) != PRIVSEP_DROPPED || set_no_new_privs(err) != PRIVSEP_DROPPED)
        return PRIVSEP_FAILED;
    return verify_dropped(user, uid, gid, err);
}
