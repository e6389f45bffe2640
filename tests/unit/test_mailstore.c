/*
 * test_mailstore - lib/mailstore*.c on real Maildirs in a temporary mail
 * base: name checks, symlinked folders refused, UIDs kept across re-opens
 * and new deliveries (written with maildir_msg_* as virtual does), flag
 * changes, expunges and corruption made behind the store's back (as mutt or
 * a crash would), two views of one folder, \Recent with SELECT/EXAMINE and
 * STATUS, APPEND/COPY names, sizes and keywords, Maildir++ quota, RENAME of
 * folders and of INBOX, DELETE, subscriptions, and a 10,000-message folder
 * that re-opens without reading its directories and takes a STORE on every
 * message with one index write.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include "maildir.h"
#include "mailstore.h"
#include "mailstore_priv.h"
#include "strbuf.h"
#include "strlist.h"

#define USER "dom/u/Maildir"

static char top[64];
static char base[96];
static char outside[96];
static char home[160];
static int base_fd = -1;

/* run - a shell command that must succeed (set-up and clean-up only) */
static void run(const char *fmt, ...)
{
    struct strbuf cmd = STRBUF_INIT;
    va_list ap;

    va_start(ap, fmt);
    sb_vprintf(&cmd, fmt, ap);
    va_end(ap);
    assert_int_equal(system(sb_str(&cmd)), 0);
    sb_free(&cmd);
}

/* setup - a fresh mail base and a directory outside it */
static int setup(void **state)
{
    (void) state;
    snprintf(top, sizeof(top), "/tmp/test_mailstore.XXXXXX");
    if (mkdtemp(top) == NULL)
        return -1;
    snprintf(base, sizeof(base), "%s/base", top);
    snprintf(outside, sizeof(outside), "%s/outside", top);
    snprintf(home, sizeof(home), "%s/%s", base, USER);
    if (mkdir(base, 0700) != 0 || mkdir(outside, 0700) != 0)
        return -1;
    base_fd = open(base, O_RDONLY | O_DIRECTORY);
    return base_fd < 0 ? -1 : 0;
}

/* teardown - remove everything */
static int teardown(void **state)
{
    char    cmd[200];

    (void) state;
    close(base_fd);
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", top);
    return system(cmd) == 0 ? 0 : -1;
}

/* open_store - the user's store (quota in bytes, 0: none) */
static struct mstore *open_store(uint64_t quota)
{
    struct strbuf err = STRBUF_INIT;
    struct mstore *st = mstore_open(base_fd, USER, quota, &err);

    if (st == NULL)
        fail_msg("mstore_open: %s", sb_str(&err));
    sb_free(&err);
    return st;
}

/* deliver - a message into new/ of the Maildir at rel (below home) as virtual does; its name */
static void deliver(const char *rel, const char *text, struct strbuf *name)
{
    struct strbuf err = STRBUF_INIT;
    struct strbuf path = STRBUF_INIT;
    int     fd;
    struct maildir_msg *m;

    sb_printf(&path, "%s%s%s", USER, rel[0] ? "/" : "", rel);
    fd = maildir_open(base_fd, sb_str(&path), true, &err);
    assert_true(fd >= 0);
    m = maildir_msg_create(fd, &err);
    assert_non_null(m);
    assert_int_equal(maildir_msg_write(m, text, strlen(text), &err), 0);
    assert_int_equal(maildir_msg_commit(m, NULL, name, &err), 0);
    close(fd);
    sb_free(&err);
    sb_free(&path);
}

/* count_dir - entries (not . or ..) in home/rel */
static int count_dir(const char *rel)
{
    char    path[512];
    DIR    *d;
    struct dirent *de;
    int     n = 0;

    snprintf(path, sizeof(path), "%s/%s", home, rel);
    if ((d = opendir(path)) == NULL)
        return -1;
    while ((de = readdir(d)) != NULL)
        if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0)
            n++;
    closedir(d);
    return n;
}

/* first_file - the name of some file in home/rel */
static void first_file(const char *rel, struct strbuf *out)
{
    char    path[512];
    DIR    *d;
    struct dirent *de;

    sb_reset(out);
    snprintf(path, sizeof(path), "%s/%s", home, rel);
    assert_non_null(d = opendir(path));
    while ((de = readdir(d)) != NULL) {
        if (de->d_name[0] != '.') {
            sb_set(out, de->d_name);
            break;
        }
    }
    closedir(d);
    assert_true(sb_len(out) > 0);
}

/* read_home - a whole file below home */
static void read_home(const char *rel, struct strbuf *out)
{
    char    path[512], buf[4096];
    ssize_t n;
    int     fd;

    sb_reset(out);
    snprintf(path, sizeof(path), "%s/%s", home, rel);
    fd = open(path, O_RDONLY);
    assert_true(fd >= 0);
    while ((n = read(fd, buf, sizeof(buf))) > 0)
        sb_append(out, buf, (size_t) n);
    close(fd);
}

/* write_home - replace a file below home */
static void write_home(const char *rel, const char *text)
{
    char    path[512];
    FILE   *fp;

    snprintf(path, sizeof(path), "%s/%s", home, rel);
    assert_non_null(fp = fopen(path, "w"));
    fputs(text, fp);
    fclose(fp);
}

/* open_view - SELECT (readonly false) or EXAMINE */
static struct mbox *open_view(struct mstore *st, const char *name, bool readonly)
{
    struct strbuf err = STRBUF_INIT;
    struct mbox *mb = mbox_open(st, name, readonly, &err);

    if (mb == NULL)
        fail_msg("mbox_open %s: %s", name, sb_str(&err));
    sb_free(&err);
    return mb;
}

/* sync_view - mbox_sync that must work */
static void sync_view(struct mbox *mb, bool announce, struct mbox_changes *ch)
{
    struct strbuf err = STRBUF_INIT;

    if (mbox_sync(mb, announce, ch, &err) != 0)
        fail_msg("mbox_sync: %s", sb_str(&err));
    sb_free(&err);
}

/* commit - mbox_commit that must work */
static void commit(struct mbox *mb)
{
    struct strbuf err = STRBUF_INIT;

    if (mbox_commit(mb, &err) != 0)
        fail_msg("mbox_commit: %s", sb_str(&err));
    sb_free(&err);
}

/* name_ok - mstore_name_valid, with errno EINVAL on refusal */
static bool name_ok(const char *name)
{
    struct strbuf err = STRBUF_INIT;
    bool    ok = mstore_name_valid(name, &err);

    if (!ok) {
        assert_int_equal(errno, EINVAL);
        assert_true(sb_len(&err) > 0);
    }
    sb_free(&err);
    return ok;
}

/* test_names - what may become a directory name */
static void test_names(void **state)
{
    char    longname[300];

    (void) state;
    assert_true(name_ok("INBOX"));
    assert_true(name_ok("inbox"));
    assert_true(name_ok("Sent"));
    assert_true(name_ok("A.B.C"));
    assert_true(name_ok("Entw&APw-rfe"));
    assert_true(name_ok("R&-D"));
    assert_true(name_ok("with space"));
    assert_false(name_ok(""));
    assert_false(name_ok("../x"));
    assert_false(name_ok(".."));
    assert_false(name_ok("a/b"));
    assert_false(name_ok("a\\b"));
    assert_false(name_ok(".hidden"));
    assert_false(name_ok("a..b"));
    assert_false(name_ok("trailing."));
    assert_false(name_ok("~x"));
    assert_false(name_ok("INBOX.x"));
    assert_false(name_ok("Inbox.x"));
    assert_false(name_ok("a\001b"));
    assert_false(name_ok("a\nb"));
    assert_false(name_ok("a\177"));
    assert_false(name_ok("\xc3\xa4"));          /* raw UTF-8 */
    assert_false(name_ok("&AOQ"));              /* unterminated shift */
    assert_false(name_ok("&AGE-"));             /* "a" shifted: not canonical */
    assert_false(name_ok("a*"));
    assert_false(name_ok("a%"));
    memset(longname, 'x', sizeof(longname));
    longname[254] = '\0';
    assert_true(name_ok(longname));
    longname[254] = 'x';
    longname[255] = '\0';
    assert_false(name_ok(longname));
    longname[256] = '\0';
    longname[255] = 'x';
    assert_false(name_ok(longname));
    assert_false(mstore_name_valid(NULL, NULL));
}

/* test_folders - create, list, exists, delete (not children), paths, special use */
static void test_folders(void **state)
{
    struct mstore *st = open_store(0);
    struct strbuf err = STRBUF_INIT, name = STRBUF_INIT;
    struct strlist names = STRLIST_INIT;
    struct stat sb;
    char    path[512];

    (void) state;
    assert_int_equal(count_dir("cur"), 0);
    assert_int_equal(count_dir("tmp"), 0);
    assert_int_equal(mstore_create(st, "Sent", &err), 0);
    assert_int_equal(mstore_create(st, "A.B", &err), 0);
    assert_int_equal(mstore_create(st, "A", &err), 0);
    assert_int_equal(mstore_create(st, "Entw&APw-rfe", &err), 0);
    assert_int_equal(mstore_create(st, "Sent", &err), -1);
    assert_int_equal(errno, EEXIST);
    assert_int_equal(mstore_create(st, "inbox", &err), -1);
    assert_int_equal(errno, EEXIST);
    assert_int_equal(mstore_create(st, "../x", &err), -1);
    assert_int_equal(errno, EINVAL);
    snprintf(path, sizeof(path), "%s/.Sent/maildirfolder", home);
    assert_int_equal(stat(path, &sb), 0);
    snprintf(path, sizeof(path), "%s/.A.B/tmp", home);
    assert_int_equal(stat(path, &sb), 0);
    /* A stray directory without cur/ is no folder. */
    snprintf(path, sizeof(path), "%s/.Stray", home);
    assert_int_equal(mkdir(path, 0700), 0);
    assert_int_equal(mstore_list(st, &names, &err), 0);
    assert_int_equal(names.count, 5);
    assert_string_equal(names.items[0], "INBOX");
    assert_string_equal(names.items[1], "A");
    assert_string_equal(names.items[2], "A.B");
    assert_string_equal(names.items[3], "Entw&APw-rfe");
    assert_string_equal(names.items[4], "Sent");
    strlist_free(&names);
    assert_true(mstore_exists(st, "INBOX"));
    assert_true(mstore_exists(st, "A.B"));
    assert_false(mstore_exists(st, "Stray"));
    assert_false(mstore_exists(st, "Nope"));
    assert_false(mstore_exists(st, "../etc"));

    /* DELETE removes the folder's messages, not its children. */
    deliver(".A", "Subject: x\n\nbody\n", &name);
    assert_int_equal(mstore_delete(st, "A", &err), 0);
    assert_false(mstore_exists(st, "A"));
    assert_true(mstore_exists(st, "A.B"));
    snprintf(path, sizeof(path), "%s/.A", home);
    assert_int_equal(lstat(path, &sb), -1);
    assert_int_equal(mstore_delete(st, "A", &err), -1);
    assert_int_equal(errno, ENOENT);
    assert_int_equal(mstore_delete(st, "INBOX", &err), -1);
    assert_int_equal(errno, EPERM);
    assert_int_equal(mstore_list(st, &names, &err), 0);
    assert_int_equal(names.count, 4);       /* no "..deleted-" leftovers either */
    strlist_free(&names);
    assert_int_equal(mstore_delete(st, "Sent", &err), 0);
    /* Re-created after delete: a new UIDVALIDITY, never the old one. */
    {
        struct mstore_status s1, s2;

        assert_int_equal(mstore_create(st, "Box", &err), 0);
        assert_int_equal(mstore_status(st, "Box", &s1, &err), 0);
        assert_int_equal(mstore_delete(st, "Box", &err), 0);
        assert_int_equal(mstore_create(st, "Box", &err), 0);
        assert_int_equal(mstore_status(st, "Box", &s2, &err), 0);
        assert_true(s2.uidvalidity > s1.uidvalidity);
        assert_int_equal(mstore_status(st, "Gone", &s2, &err), -1);
        assert_int_equal(errno, ENOENT);
    }

    sb_reset(&name);
    mstore_folder_path(st, "A.B", &name);
    assert_string_equal(sb_str(&name), USER "/.A.B");
    mstore_folder_path(st, "inbox", &name);
    assert_string_equal(sb_str(&name), USER);
    assert_string_equal(mstore_special_use("Sent"), "\\Sent");
    assert_string_equal(mstore_special_use("Deleted Messages"), "\\Trash");
    assert_string_equal(mstore_special_use("Spam"), "\\Junk");
    assert_string_equal(mstore_special_use("Drafts"), "\\Drafts");
    assert_string_equal(mstore_special_use("Archive"), "\\Archive");
    assert_null(mstore_special_use("Work"));
    assert_null(mstore_special_use("A.Sent"));
    mstore_close(st);
    sb_free(&err);
    sb_free(&name);
}

/* test_symlinks - a folder, cur/ or message that is a symlink is never followed */
static void test_symlinks(void **state)
{
    struct mstore *st = open_store(0);
    struct strbuf err = STRBUF_INIT;
    struct strlist names = STRLIST_INIT;
    struct mstore_status s;
    struct mbox *mb;
    uint32_t uv, uid;
    char    path[512];
    struct stat sb;

    (void) state;
    run("mkdir -p %s/evil/cur %s/evil/new %s/evil/tmp && echo secret > %s/evil/cur/1.x:2,",
        outside, outside, outside, outside);
    run("ln -s %s/evil %s/.Evil", outside, home);
    assert_int_equal(mstore_list(st, &names, &err), 0);
    assert_false(strlist_contains(&names, "Evil"));
    strlist_free(&names);
    assert_false(mstore_exists(st, "Evil"));
    assert_null(mbox_open(st, "Evil", false, &err));
    assert_int_equal(errno, ELOOP);
    assert_int_equal(mstore_status(st, "Evil", &s, &err), -1);
    assert_int_equal(mstore_append(st, "Evil", "x\n", 2, 0, NULL, 0, 0, &uv, &uid, &err), -1);
    assert_int_equal(mstore_delete(st, "Evil", &err), -1);
    assert_int_equal(errno, ELOOP);
    assert_int_equal(mstore_create(st, "Evil", &err), -1);
    assert_int_equal(mstore_rename(st, "Evil", "Good", &err), -1);
    snprintf(path, sizeof(path), "%s/evil/cur/1.x:2,", outside);
    assert_int_equal(stat(path, &sb), 0);   /* untouched */
    assert_int_equal(count_dir("../../../../outside/evil/new"), 0);
    assert_int_equal(count_dir("../../../../outside/evil/tmp"), 0);

    /* A real folder whose cur/ is a symlink. */
    run("mkdir -p %s/.Half/new %s/.Half/tmp && ln -s %s/evil/cur %s/.Half/cur", home, home, outside, home);
    assert_null(mbox_open(st, "Half", false, &err));
    assert_int_equal(errno, ELOOP);
    assert_false(mstore_exists(st, "Half"));

    /* A symlink among the messages is not a message. */
    run("ln -s %s/evil/cur/1.x:2, %s/cur/2.link:2,", outside, home);
    mb = open_view(st, "INBOX", false);
    assert_int_equal(mb->count, 0);
    mbox_close(mb);
    mstore_close(st);
    sb_free(&err);
}

/* test_uids - stable across re-open, new deliveries get higher uids in delivery order */
static void test_uids(void **state)
{
    struct mstore *st = open_store(0);
    struct strbuf name = STRBUF_INIT, err = STRBUF_INIT;
    struct mbox_changes ch;
    struct mbox *mb;
    uint32_t uv;

    (void) state;
    deliver("", "Subject: 1\n\none\n", &name);
    deliver("", "Subject: 2\n\ntwo\n", &name);
    deliver("", "Subject: 3\n\nthree\n", &name);
    mb = open_view(st, "INBOX", false);
    assert_int_equal(mb->count, 3);
    uv = mb->uidvalidity;
    assert_true(uv != 0);
    for (size_t i = 0; i < 3; i++) {
        assert_int_equal(mb->msgs[i].uid, i + 1);
        assert_true(mb->msgs[i].flags & MBOX_RECENT);
        assert_int_equal(strncmp(mb->msgs[i].file, "cur/", 4), 0);
    }
    assert_int_equal(mb->uidnext, 4);
    assert_int_equal(count_dir("new"), 0);  /* SELECT moved them to cur/ */
    assert_int_equal(count_dir("cur"), 3);
    assert_int_equal(mbox_seq_of_uid(mb, 2), 2);
    assert_int_equal(mbox_seq_of_uid(mb, 9), 0);
    mbox_close(mb);

    mb = open_view(st, "INBOX", false);
    assert_int_equal(mb->uidvalidity, uv);
    assert_int_equal(mb->count, 3);
    assert_int_equal(mb->msgs[2].uid, 3);
    assert_false(mb->msgs[0].flags & MBOX_RECENT);     /* the first session had them */
    deliver("", "Subject: 4\n\nfour\n", &name);
    deliver("", "Subject: 5\n\nfive\n", &name);
    sync_view(mb, true, &ch);
    assert_true(ch.exists_changed);
    assert_int_equal(ch.nexpunged, 0);
    assert_int_equal(ch.recent, 2);
    assert_int_equal(mb->count, 5);
    assert_int_equal(mb->msgs[3].uid, 4);
    assert_int_equal(mb->msgs[4].uid, 5);
    assert_int_equal(mb->uidnext, 6);
    mbox_changes_free(&ch);
    /* Nothing new: nothing to say. */
    sync_view(mb, true, &ch);
    assert_false(ch.exists_changed);
    assert_int_equal(ch.nflags_changed + ch.nexpunged, 0);
    mbox_changes_free(&ch);
    /* A message's contents. */
    {
        char    buf[64];
        int     fd = mbox_open_message(mb, 3, &err);
        ssize_t n;

        assert_true(fd >= 0);
        n = read(fd, buf, sizeof(buf) - 1);
        close(fd);
        assert_true(n > 0);
        buf[n] = '\0';
        assert_string_equal(buf, "Subject: 4\n\nfour\n");
        assert_int_equal(mb->msgs[3].vsize, strlen(buf) + 3);     /* CRLF size, read from the file */
    }
    mbox_close(mb);
    mstore_close(st);
    sb_free(&name);
    sb_free(&err);
}

/* rename_behind - rename a file in home/dir whose name starts with base to base + suffix (mutt) */
static void rename_behind(const char *dir, const char *file, const char *newinfo)
{
    char    from[512], to[512];
    size_t  blen = strcspn(file, ":");

    snprintf(from, sizeof(from), "%s/%s/%s", home, dir, file);
    snprintf(to, sizeof(to), "%s/%s/%.*s:%s", home, dir, (int) blen, file, newinfo);
    assert_int_equal(rename(from, to), 0);
}

/* test_outside_changes - flags changed and files removed by another program */
static void test_outside_changes(void **state)
{
    struct mstore *st = open_store(0);
    struct strbuf name = STRBUF_INIT, err = STRBUF_INIT;
    struct mbox_changes ch;
    struct mbox *mb;
    uint64_t modseq;

    (void) state;
    deliver("", "Subject: 1\n\none\n", &name);
    deliver("", "Subject: 2\n\ntwo\n", &name);
    deliver("", "Subject: 3\n\nthree\n", &name);
    mb = open_view(st, "INBOX", false);
    assert_int_equal(mb->count, 3);
    /* Past the one-second window, so the index records clean directory stamps. */
    sleep(2);
    sync_view(mb, true, &ch);
    mbox_changes_free(&ch);
    modseq = mb->highestmodseq;
    {
        unsigned long scans = ms_stat_scans;

        sync_view(mb, true, &ch);
        mbox_changes_free(&ch);
        assert_int_equal(ms_stat_scans, scans);         /* unchanged: no readdir */
    }

    /* mutt marks message 2 answered and seen: cur/X:2, -> cur/X:2,RS */
    rename_behind("cur", mb->msgs[1].file + 4, "2,RS");
    sync_view(mb, true, &ch);
    assert_int_equal(ch.nflags_changed, 1);
    assert_int_equal(ch.flags_changed[0], 2);
    assert_int_equal(mb->msgs[1].flags & ~MBOX_RECENT, MBOX_ANSWERED | MBOX_SEEN);
    assert_true(mb->msgs[1].modseq > modseq);
    assert_int_equal(mb->highestmodseq, mb->msgs[1].modseq);
    assert_int_equal(mb->msgs[0].modseq <= modseq, true);
    mbox_changes_free(&ch);

    /* Message 1 deleted by another program: gone first, expunged when it may be said. */
    {
        char    path[512];

        snprintf(path, sizeof(path), "%s/%s", home, mb->msgs[0].file);
        assert_int_equal(unlink(path), 0);
    }
    sync_view(mb, false, &ch);
    assert_int_equal(ch.nexpunged, 0);
    assert_int_equal(mb->count, 3);
    assert_true(mb->msgs[0].gone);
    assert_int_equal(mbox_open_message(mb, 0, &err), -1);
    assert_int_equal(errno, ENOENT);
    mbox_changes_free(&ch);
    sync_view(mb, true, &ch);
    assert_int_equal(ch.nexpunged, 1);
    assert_int_equal(ch.expunged[0], 1);
    assert_int_equal(mb->count, 2);
    assert_int_equal(mb->msgs[0].uid, 2);
    mbox_changes_free(&ch);

    /* A flag change while the session holds an old name: the message is still readable. */
    rename_behind("cur", mb->msgs[1].file + 4, "2,F");
    {
        int     fd = mbox_open_message(mb, 1, &err);

        assert_true(fd >= 0);
        close(fd);
    }
    sync_view(mb, true, &ch);
    assert_int_equal(ch.nflags_changed, 1);
    assert_int_equal(ch.flags_changed[0], 2);
    assert_int_equal(mb->msgs[1].flags & ~MBOX_RECENT, MBOX_FLAGGED);
    mbox_changes_free(&ch);
    mbox_close(mb);
    mstore_close(st);
    sb_free(&name);
    sb_free(&err);
}

/* test_rebuild - corrupt or deleted index: rebuilt, new UIDVALIDITY; open views told ESTALE */
static void test_rebuild(void **state)
{
    struct mstore *st = open_store(0);
    struct strbuf name = STRBUF_INIT, err = STRBUF_INIT;
    struct mbox_changes ch;
    struct mbox *mb, *old;
    uint32_t uv1, uv2;

    (void) state;
    deliver("", "a\n", &name);
    deliver("", "b\n", &name);
    mb = open_view(st, "INBOX", false);
    uv1 = mb->uidvalidity;
    mbox_close(mb);
    old = open_view(st, "INBOX", false);

    write_home("postern-uidlist", "P1 V12 N3 M1 R1 S0,0,0,0\n1 1 2 0 c:2, x\nGARBAGE\n");
    mb = open_view(st, "INBOX", false);
    uv2 = mb->uidvalidity;
    assert_true(uv2 != uv1 && uv2 != 12);
    assert_int_equal(mb->count, 2);
    mbox_close(mb);

    assert_int_equal(mbox_sync(old, true, &ch, &err), -1);
    assert_int_equal(errno, ESTALE);
    mbox_changes_free(&ch);
    mbox_close(old);

    {
        char    path[512];

        snprintf(path, sizeof(path), "%s/postern-uidlist", home);
        assert_int_equal(unlink(path), 0);
    }
    mb = open_view(st, "INBOX", false);
    assert_true(mb->uidvalidity > uv2);
    assert_int_equal(mb->count, 2);
    assert_int_equal(mb->msgs[1].uid, 2);
    mbox_close(mb);

    /* A torn last line (a writer at work, or a crash) is not corruption. */
    {
        struct strbuf idx = STRBUF_INIT;
        uint32_t uv3;

        mb = open_view(st, "INBOX", false);
        uv3 = mb->uidvalidity;
        mbox_close(mb);
        read_home("postern-uidlist", &idx);
        sb_puts(&idx, "3 9 10 0 c:2, half");
        write_home("postern-uidlist", sb_str(&idx));
        mb = open_view(st, "INBOX", false);
        assert_int_equal(mb->uidvalidity, uv3);
        assert_int_equal(mb->count, 2);
        mbox_close(mb);
        sb_free(&idx);
    }
    mstore_close(st);
    sb_free(&name);
    sb_free(&err);
}

/* test_two_views - two sessions on one folder see each other's changes after commit + sync */
static void test_two_views(void **state)
{
    struct mstore *st = open_store(0);
    struct mstore *st2 = open_store(0);
    struct strbuf name = STRBUF_INIT, err = STRBUF_INIT;
    struct mbox_changes ch;
    struct mbox *a, *b;
    unsigned long writes;

    (void) state;
    deliver("", "1\n", &name);
    deliver("", "2\n", &name);
    deliver("", "3\n", &name);
    a = open_view(st, "INBOX", false);
    b = open_view(st2, "INBOX", false);
    assert_int_equal(b->count, 3);

    writes = ms_stat_index_writes;
    assert_int_equal(mbox_store(a, 0, MBOX_FLAGS_ADD, MBOX_FLAGGED | MBOX_RECENT, 0, 0, &err), 0);
    assert_int_equal(mbox_store(a, 2, MBOX_FLAGS_ADD, MBOX_DELETED, 0, 0, &err), 0);
    assert_int_equal(a->msgs[0].flags, MBOX_FLAGGED | MBOX_RECENT);
    assert_int_equal(ms_stat_index_writes, writes);     /* not yet */
    assert_true(strstr(a->msgs[0].file, ":2,F") != NULL);
    commit(a);
    assert_int_equal(ms_stat_index_writes, writes + 1);
    commit(a);                                          /* nothing pending: nothing written */
    assert_int_equal(ms_stat_index_writes, writes + 1);

    sync_view(b, true, &ch);
    assert_int_equal(ch.nflags_changed, 2);
    assert_int_equal(ch.flags_changed[0], 1);
    assert_int_equal(ch.flags_changed[1], 3);
    assert_int_equal(b->msgs[0].flags, MBOX_FLAGGED);
    assert_int_equal(b->msgs[0].modseq, a->msgs[0].modseq);
    assert_int_equal(b->highestmodseq, a->highestmodseq);
    mbox_changes_free(&ch);

    /* A's view is quiet about its own changes. */
    sync_view(a, true, &ch);
    assert_int_equal(ch.nflags_changed, 0);
    mbox_changes_free(&ch);

    /* B stores on a name A has changed meanwhile: merged, not lost. */
    assert_int_equal(mbox_store(a, 1, MBOX_FLAGS_ADD, MBOX_SEEN, 0, 0, &err), 0);
    commit(a);
    assert_int_equal(mbox_store(b, 1, MBOX_FLAGS_ADD, MBOX_ANSWERED, 0, 0, &err), 0);
    assert_int_equal(b->msgs[1].flags & (MBOX_SEEN | MBOX_ANSWERED), MBOX_SEEN | MBOX_ANSWERED);
    commit(b);
    sync_view(a, true, &ch);
    assert_int_equal(ch.nflags_changed, 1);
    assert_int_equal(a->msgs[1].flags & ~MBOX_RECENT, MBOX_SEEN | MBOX_ANSWERED);
    mbox_changes_free(&ch);

    /* CONDSTORE: refused when the message changed since. */
    assert_int_equal(mbox_store(a, 1, MBOX_FLAGS_ADD, MBOX_DRAFT, 0, a->msgs[1].modseq - 1, &err), 1);
    assert_int_equal(mbox_store(a, 1, MBOX_FLAGS_ADD, MBOX_SEEN, 0, a->msgs[1].modseq, &err), 0);

    /* A expunges \Deleted (message 3); B hears of it at its next sync. */
    assert_int_equal(mbox_expunge(a, NULL, 0, &ch, &err), 0);
    assert_int_equal(ch.nexpunged, 1);
    assert_int_equal(ch.expunged[0], 3);
    assert_int_equal(a->count, 2);
    mbox_changes_free(&ch);
    commit(a);
    sync_view(b, false, &ch);
    assert_int_equal(ch.nexpunged, 0);
    assert_true(b->msgs[2].gone);
    assert_int_equal(mbox_store(b, 2, MBOX_FLAGS_ADD, MBOX_SEEN, 0, 0, &err), -1);
    assert_int_equal(errno, ENOENT);
    mbox_changes_free(&ch);
    sync_view(b, true, &ch);
    assert_int_equal(ch.nexpunged, 1);
    assert_int_equal(ch.expunged[0], 3);
    assert_int_equal(b->count, 2);
    mbox_changes_free(&ch);
    assert_int_equal(count_dir("cur"), 2);
    mbox_close(a);
    mbox_close(b);
    mstore_close(st);
    mstore_close(st2);
    sb_free(&name);
    sb_free(&err);
}

/* test_expunge - UID EXPUNGE limits to the listed uids; read-only views cannot change anything */
static void test_expunge(void **state)
{
    struct mstore *st = open_store(0);
    struct strbuf name = STRBUF_INIT, err = STRBUF_INIT;
    struct mbox_changes ch;
    struct mbox *mb, *ro;
    uint32_t only[] = {3};

    (void) state;
    for (int i = 0; i < 4; i++)
        deliver("", "m\n", &name);
    mb = open_view(st, "INBOX", false);
    for (size_t i = 0; i < 4; i += 2)
        assert_int_equal(mbox_store(mb, i, MBOX_FLAGS_SET, MBOX_DELETED, 0, 0, &err), 0);
    assert_int_equal(mbox_expunge(mb, only, 1, &ch, &err), 0);
    assert_int_equal(ch.nexpunged, 1);
    assert_int_equal(ch.expunged[0], 3);
    mbox_changes_free(&ch);
    assert_int_equal(mbox_expunge(mb, NULL, 0, &ch, &err), 0);
    assert_int_equal(ch.nexpunged, 1);
    assert_int_equal(ch.expunged[0], 1);
    mbox_changes_free(&ch);
    assert_int_equal(mb->count, 2);
    assert_int_equal(mb->msgs[0].uid, 2);
    assert_int_equal(mb->msgs[1].uid, 4);
    commit(mb);
    assert_int_equal(count_dir("cur"), 2);

    ro = open_view(st, "INBOX", true);
    assert_int_equal(ro->count, 2);
    assert_int_equal(mbox_store(ro, 0, MBOX_FLAGS_ADD, MBOX_SEEN, 0, 0, &err), -1);
    assert_int_equal(errno, EPERM);
    assert_int_equal(mbox_expunge(ro, NULL, 0, &ch, &err), -1);
    assert_int_equal(errno, EPERM);
    mbox_close(ro);
    mbox_close(mb);
    mstore_close(st);
    sb_free(&name);
    sb_free(&err);
}

/* test_recent - first SELECT claims; EXAMINE and STATUS do not, and leave new/ alone */
static void test_recent(void **state)
{
    struct mstore *st = open_store(0);
    struct strbuf name = STRBUF_INIT, err = STRBUF_INIT;
    struct mstore_status s;
    struct mbox_changes ch;
    struct mbox *mb, *ro;

    (void) state;
    deliver("", "Subject: a\n\n1\n", &name);
    deliver("", "Subject: b\n\n2\n", &name);
    assert_int_equal(mstore_status(st, "INBOX", &s, &err), 0);
    assert_int_equal(s.messages, 2);
    assert_int_equal(s.recent, 2);
    assert_int_equal(s.unseen, 2);
    assert_int_equal(s.uidnext, 3);
    assert_int_equal(s.size, (strlen("Subject: a\n\n1\n") + 3) * 2);
    assert_int_equal(count_dir("new"), 2);

    ro = open_view(st, "INBOX", true);
    assert_int_equal(ro->count, 2);
    assert_true(ro->msgs[0].flags & MBOX_RECENT);
    assert_int_equal(strncmp(ro->msgs[0].file, "new/", 4), 0);
    assert_int_equal(count_dir("new"), 2);
    {
        int     fd = mbox_open_message(ro, 0, &err);

        assert_true(fd >= 0);
        close(fd);
    }

    mb = open_view(st, "INBOX", false);
    assert_int_equal(mb->count, 2);
    assert_true(mb->msgs[0].flags & MBOX_RECENT);
    assert_true(mb->msgs[1].flags & MBOX_RECENT);
    assert_int_equal(mstore_status(st, "INBOX", &s, &err), 0);
    assert_int_equal(s.recent, 0);
    /* A message indexed in new/ (by EXAMINE) still takes a flag change, moving to cur/. */
    assert_int_equal(mbox_store(mb, 0, MBOX_FLAGS_ADD, MBOX_SEEN, 0, 0, &err), 0);
    assert_int_equal(strncmp(mb->msgs[0].file, "cur/", 4), 0);
    commit(mb);
    assert_int_equal(mstore_status(st, "INBOX", &s, &err), 0);
    assert_int_equal(s.unseen, 1);
    mbox_close(mb);

    mb = open_view(st, "INBOX", false);
    assert_false(mb->msgs[0].flags & MBOX_RECENT);
    deliver("", "Subject: c\n\n3\n", &name);
    sync_view(ro, true, &ch);                           /* EXAMINE sees it recent, claims nothing */
    assert_true(ch.exists_changed);
    assert_true(ro->msgs[2].flags & MBOX_RECENT);
    mbox_changes_free(&ch);
    sync_view(mb, true, &ch);                           /* SELECT claims it */
    assert_int_equal(ch.recent, 1);
    assert_true(mb->msgs[2].flags & MBOX_RECENT);
    mbox_changes_free(&ch);
    mbox_close(mb);
    mb = open_view(st, "INBOX", false);
    assert_false(mb->msgs[2].flags & MBOX_RECENT);
    mbox_close(mb);
    mbox_close(ro);
    mstore_close(st);
    sb_free(&name);
    sb_free(&err);
}

/* test_append - names, sizes, flags, keywords, date; uid and uidvalidity out */
static void test_append(void **state)
{
    struct mstore *st = open_store(0);
    struct strbuf err = STRBUF_INIT, file = STRBUF_INIT, data = STRBUF_INIT;
    const char *kws[] = {"$Label1", "Work"};
    const char *msg = "Subject: hi\r\n\r\nbody\r\n";
    struct mstore_status s;
    struct mbox *mb;
    uint32_t uv, uid;
    char    path[512];
    struct stat sb;

    (void) state;
    assert_int_equal(mstore_append(st, "INBOX", msg, strlen(msg), MBOX_SEEN | MBOX_FLAGGED | MBOX_RECENT,
                                   kws, 2, 1000000000, &uv, &uid, &err), 0);
    assert_int_equal(uid, 1);
    assert_int_equal(mstore_status(st, "INBOX", &s, &err), 0);
    assert_int_equal(uv, s.uidvalidity);
    assert_int_equal(s.messages, 1);
    assert_int_equal(s.unseen, 0);
    assert_int_equal(s.size, strlen(msg));
    first_file("cur", &file);
    if (strstr(sb_str(&file), ",S=18,W=21:2,FSab") == NULL)
        fail_msg("name %s", sb_str(&file));
    assert_int_equal(count_dir("tmp"), 0);
    snprintf(path, sizeof(path), "%s/cur/%s", home, sb_str(&file));
    assert_int_equal(stat(path, &sb), 0);
    assert_int_equal(sb.st_mtime, 1000000000);
    assert_int_equal(sb.st_size, 18);
    read_home("dovecot-keywords", &data);
    assert_string_equal(sb_str(&data), "0 $Label1\n1 Work\n");

    mb = open_view(st, "INBOX", false);
    assert_int_equal(mb->count, 1);
    assert_int_equal(mb->msgs[0].flags & ~MBOX_RECENT, MBOX_SEEN | MBOX_FLAGGED);
    assert_int_equal(mb->msgs[0].keywords, 3);
    assert_int_equal(mb->nkeywords, 2);
    assert_string_equal(mb->keywords[1], "Work");
    assert_int_equal(mb->msgs[0].vsize, strlen(msg));
    assert_int_equal(mb->msgs[0].internaldate, 1000000000);
    assert_int_equal(mbox_keyword_index(mb, "work", false), 1);
    assert_int_equal(mbox_keyword_index(mb, "Nope", false), -1);
    assert_int_equal(mbox_keyword_index(mb, "bad keyword", true), -1);
    assert_int_equal(mbox_keyword_index(mb, "New", true), 2);
    {
        struct mbox *other = open_view(st, "INBOX", false);
        struct mbox_changes ch;

        /* Keywords: the other session hears of a new one; STORE a keyword and remove one. */
        assert_int_equal(mbox_keyword_index(mb, "Later", true), 3);
        sync_view(other, true, &ch);
        assert_true(ch.keywords_changed);
        assert_int_equal(other->nkeywords, 4);
        mbox_changes_free(&ch);
        assert_int_equal(mbox_store(mb, 0, MBOX_FLAGS_ADD, 0, 1u << 3, 0, &err), 0);
        assert_int_equal(mbox_store(mb, 0, MBOX_FLAGS_REMOVE, 0, 1u << 0, 0, &err), 0);
        assert_non_null(strstr(mb->msgs[0].file, ":2,FSbd"));
        commit(mb);
        sync_view(other, true, &ch);
        assert_int_equal(ch.nflags_changed, 1);
        assert_int_equal(other->msgs[0].keywords, (1u << 1) | (1u << 3));
        mbox_changes_free(&ch);
        mbox_close(other);
    }
    for (int i = 4; i < MBOX_MAX_KEYWORDS; i++) {
        char    kw[16];

        snprintf(kw, sizeof(kw), "k%d", i);
        assert_int_equal(mbox_keyword_index(mb, kw, true), i);
    }
    assert_int_equal(mbox_keyword_index(mb, "OneTooMany", true), -1);
    mbox_close(mb);

    /* A bare-LF message: RFC822.SIZE counts CRLF. */
    assert_int_equal(mstore_append(st, "INBOX", "a\nb\n", 4, 0, NULL, 0, 0, &uv, &uid, &err), 0);
    assert_int_equal(uid, 2);
    mb = open_view(st, "INBOX", false);
    assert_int_equal(mb->msgs[1].vsize, 6);
    assert_true(mb->msgs[1].internaldate >= time(NULL) - 60);
    mbox_close(mb);

    assert_int_equal(mstore_append(st, "Nope", "x\n", 2, 0, NULL, 0, 0, &uv, &uid, &err), -1);
    assert_int_equal(errno, ENOENT);
    assert_int_equal(mstore_append(st, "../x", "x\n", 2, 0, NULL, 0, 0, &uv, &uid, &err), -1);
    assert_int_equal(errno, EINVAL);

    /* ",W=" in a delivered name is believed (the file is not read). */
    write_home("cur/1234567890.M1P1Q1.host,S=3,W=999:2,", "xy\n");
    mb = open_view(st, "INBOX", false);
    assert_int_equal(mb->count, 3);
    assert_int_equal(mb->msgs[2].vsize, 999);
    mbox_close(mb);
    mstore_close(st);
    sb_free(&err);
    sb_free(&file);
    sb_free(&data);
}

/* test_copy - hard link with a new name, flags kept, keywords remapped, uid in the destination */
static void test_copy(void **state)
{
    struct mstore *st = open_store(0);
    struct strbuf err = STRBUF_INIT, file = STRBUF_INIT, data = STRBUF_INIT;
    const char *src_kw[] = {"Work"};
    const char *dst_kw[] = {"Other"};
    struct mbox *mb, *dst;
    uint32_t uv, uid, duv, duid;
    char    path[512];
    struct stat a, b;

    (void) state;
    assert_int_equal(mstore_create(st, "Dst", &err), 0);
    assert_int_equal(mstore_append(st, "Dst", "old\n", 4, 0, dst_kw, 1, 0, &uv, &uid, &err), 0);
    assert_int_equal(mstore_append(st, "INBOX", "Subject: c\n\nx\n", 14, MBOX_ANSWERED, src_kw, 1, 0,
                                   &uv, &uid, &err), 0);
    mb = open_view(st, "INBOX", false);
    assert_int_equal(mbox_copy(mb, 0, "Dst", &duv, &duid, &err), 0);
    assert_int_equal(duid, 2);
    dst = open_view(st, "Dst", false);
    assert_int_equal(dst->uidvalidity, duv);
    assert_int_equal(dst->count, 2);
    assert_int_equal(dst->msgs[1].uid, 2);
    assert_int_equal(dst->msgs[1].flags & ~MBOX_RECENT, MBOX_ANSWERED);
    assert_int_equal(dst->msgs[1].keywords, 1u << 1);
    assert_string_equal(dst->keywords[1], "Work");
    assert_int_equal(dst->msgs[1].vsize, mb->msgs[0].vsize);
    snprintf(path, sizeof(path), "%s/%s", home, mb->msgs[0].file);
    assert_int_equal(stat(path, &a), 0);
    snprintf(path, sizeof(path), "%s/.Dst/%s", home, dst->msgs[1].file);
    assert_int_equal(stat(path, &b), 0);
    assert_int_equal(a.st_ino, b.st_ino);              /* a hard link */
    assert_int_equal(a.st_nlink, 2);
    assert_true(strcmp(strchr(mb->msgs[0].file, '/'), strchr(dst->msgs[1].file, '/')) != 0);
    mbox_close(dst);

    /* Copy into the folder itself: a new message there. */
    assert_int_equal(mbox_copy(mb, 0, "INBOX", &duv, &duid, &err), 0);
    assert_int_equal(duv, mb->uidvalidity);
    assert_int_equal(duid, 2);
    {
        struct mbox_changes ch;

        sync_view(mb, true, &ch);
        assert_true(ch.exists_changed);
        assert_int_equal(mb->count, 2);
        mbox_changes_free(&ch);
    }
    assert_int_equal(mbox_copy(mb, 0, "Missing", &duv, &duid, &err), -1);
    assert_int_equal(errno, ENOENT);
    assert_int_equal(mbox_copy(mb, 0, "a..b", &duv, &duid, &err), -1);
    assert_int_equal(errno, EINVAL);
    mbox_close(mb);
    mstore_close(st);
    sb_free(&err);
    sb_free(&file);
    sb_free(&data);
}

/* test_quota - maildirsize limits, deltas, EDQUOT, recalculation */
static void test_quota(void **state)
{
    struct mstore *st = open_store(100);
    struct strbuf err = STRBUF_INIT, data = STRBUF_INIT;
    struct mbox_changes ch;
    struct mbox *mb;
    uint64_t bytes, count, limit;
    uint32_t uv, uid, duv, duid;
    char    msg[61];

    (void) state;
    memset(msg, 'x', 59);
    msg[59] = '\n';
    msg[60] = '\0';
    assert_int_equal(mstore_create(st, "Other", &err), 0);
    assert_int_equal(mstore_append(st, "INBOX", msg, 60, 0, NULL, 0, 0, &uv, &uid, &err), 0);
    read_home("maildirsize", &data);
    assert_int_equal(strncmp(sb_str(&data), "100S\n", 5), 0);
    assert_non_null(strstr(sb_str(&data), "\n60 1\n"));
    assert_int_equal(mstore_quota(st, &bytes, &count, &limit, &err), 0);
    assert_int_equal(bytes, 60);
    assert_int_equal(count, 1);
    assert_int_equal(limit, 100);
    assert_int_equal(mstore_append(st, "INBOX", msg, 60, 0, NULL, 0, 0, &uv, &uid, &err), -1);
    assert_int_equal(errno, EDQUOT);
    assert_int_equal(count_dir("tmp"), 0);
    mb = open_view(st, "INBOX", false);
    assert_int_equal(mb->count, 1);
    assert_int_equal(mbox_copy(mb, 0, "Other", &duv, &duid, &err), -1);
    assert_int_equal(errno, EDQUOT);
    assert_int_equal(mbox_store(mb, 0, MBOX_FLAGS_ADD, MBOX_DELETED, 0, 0, &err), 0);
    assert_int_equal(mbox_expunge(mb, NULL, 0, &ch, &err), 0);
    mbox_changes_free(&ch);
    commit(mb);
    mbox_close(mb);
    read_home("maildirsize", &data);
    assert_non_null(strstr(sb_str(&data), "\n-60 -1\n"));
    assert_int_equal(mstore_quota(st, &bytes, &count, &limit, &err), 0);
    assert_int_equal(bytes, 0);
    assert_int_equal(count, 0);

    /* Delivered behind our back and the file lost: recalculated from the names' ",S=". */
    {
        struct strbuf name = STRBUF_INIT;
        char    path[512];

        deliver("", "12345\n", &name);
        deliver(".Other", "123\n", &name);
        snprintf(path, sizeof(path), "%s/maildirsize", home);
        assert_int_equal(unlink(path), 0);
        assert_int_equal(mstore_quota(st, &bytes, &count, &limit, &err), 0);
        assert_int_equal(bytes, 10);
        assert_int_equal(count, 2);
        sb_free(&name);
    }
    /* An admin's count limit ("NS,MC") is honoured. */
    write_home("maildirsize", "100S,2C\n10 2\n");
    assert_int_equal(mstore_append(st, "INBOX", "x\n", 2, 0, NULL, 0, 0, &uv, &uid, &err), -1);
    assert_int_equal(errno, EDQUOT);
    /* A garbled file is recalculated, not believed. */
    write_home("maildirsize", "100S\n99999 x\n");
    assert_int_equal(mstore_append(st, "INBOX", "x\n", 2, 0, NULL, 0, 0, &uv, &uid, &err), 0);
    assert_int_equal(mstore_quota(st, &bytes, &count, &limit, &err), 0);
    assert_int_equal(bytes, 12);
    assert_int_equal(count, 3);
    mstore_close(st);

    /* A changed limit rewrites the limits line. */
    st = open_store(5000);
    assert_int_equal(mstore_quota(st, &bytes, &count, &limit, &err), 0);
    assert_int_equal(limit, 5000);
    assert_int_equal(bytes, 12);
    read_home("maildirsize", &data);
    assert_int_equal(strncmp(sb_str(&data), "5000S\n", 6), 0);
    mstore_close(st);
    sb_free(&err);
    sb_free(&data);
}

/* test_rename - folders with their children; INBOX's messages move and INBOX stays */
static void test_rename(void **state)
{
    struct mstore *st = open_store(0);
    struct strbuf err = STRBUF_INIT, name = STRBUF_INIT, data = STRBUF_INIT;
    const char *kws[] = {"Work"};
    struct mbox *mb;
    uint32_t uv, uid;

    (void) state;
    assert_int_equal(mstore_create(st, "A", &err), 0);
    assert_int_equal(mstore_create(st, "A.B", &err), 0);
    assert_int_equal(mstore_create(st, "A.B.C", &err), 0);
    assert_int_equal(mstore_create(st, "AB", &err), 0);
    assert_int_equal(mstore_create(st, "Z", &err), 0);
    deliver(".A.B", "in b\n", &name);
    assert_int_equal(mstore_rename(st, "A", "X", &err), 0);
    assert_false(mstore_exists(st, "A"));
    assert_false(mstore_exists(st, "A.B"));
    assert_true(mstore_exists(st, "X"));
    assert_true(mstore_exists(st, "X.B"));
    assert_true(mstore_exists(st, "X.B.C"));
    assert_true(mstore_exists(st, "AB"));              /* not a child of A */
    assert_int_equal(count_dir(".X.B/new"), 1);
    assert_int_equal(mstore_rename(st, "X", "Z", &err), -1);
    assert_int_equal(errno, EEXIST);
    assert_int_equal(mstore_rename(st, "X", "INBOX", &err), -1);
    assert_int_equal(errno, EEXIST);
    assert_int_equal(mstore_rename(st, "Nope", "Q", &err), -1);
    assert_int_equal(errno, ENOENT);
    assert_int_equal(mstore_rename(st, "X", "X.Y", &err), -1);
    assert_int_equal(errno, EINVAL);
    assert_int_equal(mstore_rename(st, "X", "a/b", &err), -1);
    assert_int_equal(errno, EINVAL);
    /* A child clash stops the whole rename before anything moves. */
    assert_int_equal(mstore_create(st, "Q.B", &err), 0);
    assert_int_equal(mstore_rename(st, "X", "Q", &err), -1);
    assert_int_equal(errno, EEXIST);
    assert_true(mstore_exists(st, "X"));
    assert_true(mstore_exists(st, "X.B"));

    assert_int_equal(mstore_append(st, "INBOX", "one\n", 4, MBOX_SEEN, kws, 1, 0, &uv, &uid, &err), 0);
    deliver("", "two\n", &name);
    assert_int_equal(mstore_rename(st, "inbox", "Old", &err), 0);
    assert_true(mstore_exists(st, "Old"));
    assert_int_equal(count_dir("cur"), 0);
    assert_int_equal(count_dir("new"), 0);
    assert_int_equal(count_dir(".Old/cur"), 2);
    read_home(".Old/dovecot-keywords", &data);
    assert_string_equal(sb_str(&data), "0 Work\n");
    mb = open_view(st, "Old", false);
    assert_int_equal(mb->count, 2);
    assert_int_equal(mb->msgs[0].keywords, 1);
    mbox_close(mb);
    mb = open_view(st, "INBOX", false);
    assert_int_equal(mb->count, 0);
    mbox_close(mb);
    mstore_close(st);
    sb_free(&err);
    sb_free(&name);
    sb_free(&data);
}

/* test_subscriptions - the "subscriptions" file */
static void test_subscriptions(void **state)
{
    struct mstore *st = open_store(0);
    struct strbuf err = STRBUF_INIT, data = STRBUF_INIT;
    struct strlist names = STRLIST_INIT;

    (void) state;
    assert_int_equal(mstore_subscriptions(st, &names, &err), 0);
    assert_int_equal(names.count, 0);
    assert_int_equal(mstore_subscribe(st, "Sent", true, &err), 0);
    assert_int_equal(mstore_subscribe(st, "A.B", true, &err), 0);
    assert_int_equal(mstore_subscribe(st, "inbox", true, &err), 0);
    assert_int_equal(mstore_subscribe(st, "Sent", true, &err), 0);      /* once only */
    assert_int_equal(mstore_subscribe(st, "../etc", true, &err), -1);
    assert_int_equal(errno, EINVAL);
    read_home("subscriptions", &data);
    assert_string_equal(sb_str(&data), "Sent\nA.B\nINBOX\n");
    assert_int_equal(mstore_subscribe(st, "Sent", false, &err), 0);
    assert_int_equal(mstore_subscribe(st, "Never", false, &err), 0);
    write_home("subscriptions.extra", "");
    {
        struct strbuf cur = STRBUF_INIT;

        read_home("subscriptions", &cur);
        sb_puts(&cur, "../evil\n\nBad..Name\nGood\n");
        write_home("subscriptions", sb_str(&cur));
        sb_free(&cur);
    }
    assert_int_equal(mstore_subscriptions(st, &names, &err), 0);
    assert_int_equal(names.count, 3);
    assert_string_equal(names.items[0], "A.B");
    assert_string_equal(names.items[1], "INBOX");
    assert_string_equal(names.items[2], "Good");
    strlist_free(&names);
    mstore_close(st);
    sb_free(&err);
    sb_free(&data);
}

/* test_concurrent - two processes appending to one folder at once: every uid once, none lost */
static void test_concurrent(void **state)
{
    struct mstore *st = open_store(0);
    struct strbuf err = STRBUF_INIT;
    struct mbox *mb;
    uint32_t uv, uid;
    pid_t   pid;
    int     status;

    (void) state;
    assert_int_equal(mstore_create(st, "Box", &err), 0);
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        struct mstore *c = mstore_open(base_fd, USER, 0, &err);
        int     bad = c == NULL;

        for (int i = 0; i < 100 && !bad; i++)
            bad = mstore_append(c, "Box", "child\n", 6, 0, NULL, 0, 0, &uv, &uid, &err) != 0;
        mstore_close(c);
        _exit(bad);
    }
    for (int i = 0; i < 100; i++)
        assert_int_equal(mstore_append(st, "Box", "parent\n", 7, 0, NULL, 0, 0, &uv, &uid, &err), 0);
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    mb = open_view(st, "Box", false);
    assert_int_equal(mb->count, 200);
    for (size_t i = 0; i < mb->count; i++)
        assert_int_equal(mb->msgs[i].uid, i + 1);
    assert_int_equal(mb->uidnext, 201);
    mbox_close(mb);
    mstore_close(st);
    sb_free(&err);
}

/* test_deleted_under_view - a session's folder deleted by another: its sync fails ENOENT */
static void test_deleted_under_view(void **state)
{
    struct mstore *st = open_store(0);
    struct strbuf err = STRBUF_INIT, name = STRBUF_INIT;
    struct mbox_changes ch;
    struct mbox *mb;

    (void) state;
    assert_int_equal(mstore_create(st, "Doomed", &err), 0);
    deliver(".Doomed", "x\n", &name);
    mb = open_view(st, "Doomed", false);
    assert_int_equal(mb->count, 1);
    assert_int_equal(mstore_delete(st, "Doomed", &err), 0);
    assert_int_equal(mbox_sync(mb, true, &ch, &err), -1);
    assert_int_equal(errno, ENOENT);
    mbox_changes_free(&ch);
    mbox_close(mb);
    {
        char    path[512];
        struct stat sb;
        DIR    *d;
        struct dirent *de;

        snprintf(path, sizeof(path), "%s/.Doomed", home);
        assert_int_equal(lstat(path, &sb), -1);
        assert_non_null(d = opendir(home));
        while ((de = readdir(d)) != NULL)       /* no half-deleted leftover */
            assert_true(strncmp(de->d_name, "..deleted", 9) != 0);
        closedir(d);
    }
    mstore_close(st);
    sb_free(&err);
    sb_free(&name);
}

/* now_ms - monotonic milliseconds */
static double now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000.0 + ts.tv_nsec / 1e6;
}

/* test_large - 10,000 messages: re-open without reading cur/, one index write for a STORE on all */
static void test_large(void **state)
{
    struct mstore *st;
    struct strbuf err = STRBUF_INIT;
    struct mbox_changes ch;
    struct mbox *mb;
    unsigned long scans, writes;
    double  t0, t_open, t_store, t_commit;
    char    path[512];
    struct mstore_status s;

    (void) state;
    st = open_store(0);
    for (int i = 0; i < 10000; i++) {
        int     fd;

        snprintf(path, sizeof(path), "%s/cur/%d.M%dP1Q%d.host,S=12:2,", home, 1700000000 + i, i, i);
        fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0600);
        assert_true(fd >= 0);
        assert_int_equal(write(fd, "Subject: x\n\n", 12), 12);
        close(fd);
    }
    mb = open_view(st, "INBOX", false);                 /* builds the index, reading each file once */
    assert_int_equal(mb->count, 10000);
    assert_int_equal(mb->msgs[9999].uid, 10000);
    assert_int_equal(mb->msgs[0].vsize, 14);
    /* Delivery order: by the number in the name, not as strings. */
    assert_non_null(strstr(mb->msgs[0].file, "/1700000000.M0P"));
    mbox_close(mb);
    sleep(2);                                           /* leave the one-second window */
    mb = open_view(st, "INBOX", false);                 /* records clean directory stamps */
    mbox_close(mb);

    scans = ms_stat_scans;
    writes = ms_stat_index_writes;
    t0 = now_ms();
    mb = open_view(st, "INBOX", false);
    sync_view(mb, true, &ch);
    mbox_changes_free(&ch);
    assert_int_equal(mstore_status(st, "INBOX", &s, &err), 0);
    t_open = now_ms() - t0;
    assert_int_equal(s.messages, 10000);
    assert_int_equal(mb->count, 10000);
    assert_int_equal(ms_stat_scans, scans);             /* no readdir: nothing changed */
    assert_int_equal(ms_stat_index_writes, writes);

    t0 = now_ms();
    for (size_t i = 0; i < mb->count; i++)
        assert_int_equal(mbox_store(mb, i, MBOX_FLAGS_ADD, MBOX_SEEN, 0, 0, &err), 0);
    t_store = now_ms() - t0;
    assert_int_equal(ms_stat_index_writes, writes);
    t0 = now_ms();
    commit(mb);
    t_commit = now_ms() - t0;
    assert_int_equal(ms_stat_index_writes, writes + 1); /* one write for the whole command */
    assert_int_equal(mb->msgs[0].modseq, mb->msgs[9999].modseq);
    assert_int_equal(mstore_status(st, "INBOX", &s, &err), 0);
    assert_int_equal(s.unseen, 0);
    print_message("10,000 messages: open+sync+status %.1f ms, STORE +\\Seen on all %.1f ms, commit %.1f ms\n",
                  t_open, t_store, t_commit);
    mbox_close(mb);
    mstore_close(st);
    sb_free(&err);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_names),
        cmocka_unit_test_setup_teardown(test_folders, setup, teardown),
        cmocka_unit_test_setup_teardown(test_symlinks, setup, teardown),
        cmocka_unit_test_setup_teardown(test_uids, setup, teardown),
        cmocka_unit_test_setup_teardown(test_outside_changes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rebuild, setup, teardown),
        cmocka_unit_test_setup_teardown(test_two_views, setup, teardown),
        cmocka_unit_test_setup_teardown(test_expunge, setup, teardown),
        cmocka_unit_test_setup_teardown(test_recent, setup, teardown),
        cmocka_unit_test_setup_teardown(test_append, setup, teardown),
        cmocka_unit_test_setup_teardown(test_copy, setup, teardown),
        cmocka_unit_test_setup_teardown(test_quota, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rename, setup, teardown),
        cmocka_unit_test_setup_teardown(test_subscriptions, setup, teardown),
        cmocka_unit_test_setup_teardown(test_concurrent, setup, teardown),
        cmocka_unit_test_setup_teardown(test_deleted_under_view, setup, teardown),
        cmocka_unit_test_setup_teardown(test_large, setup, teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
