/*
 * mailstore - one user's Maildir++ store as imapd sees it: folders, UIDs,
 * flags, keywords, quota.
 *
 * Layout (Maildir++, as Courier and Dovecot write it, so other tools read it):
 * the user's Maildir (the path virtual_mailbox_maps gives, where virtual
 * delivers) is INBOX; folder "A.B" is the Maildir ".A.B" inside it. Names are
 * IMAP names: modified UTF-7 (lib/mutf7.h) with "." as hierarchy separator;
 * "INBOX" in any case is INBOX. mstore_name_valid() refuses everything that
 * could leave the user's directory or confuse the layout: "/", "\\", empty
 * components ("a..b", leading/trailing "."), "~" at the start, control
 * characters, 8-bit bytes, the LIST wildcards "*" and "%", non-canonical
 * modified UTF-7, more than 254 bytes (".name" must fit a directory name),
 * children of INBOX ("INBOX.x": Maildir++ has no place for them). A ".Folder"
 * that is a symlink is no folder (not listed; opening it fails with ELOOP).
 * Every file is opened relative to the user's directory fd with
 * lib/maildir.c's beneath-only openers, never by a path from outside.
 *
 * Flags live in file names ("NAME:2,<letters>", letters sorted): D Draft,
 * F Flagged, R Answered, S Seen, T Deleted; keywords are letters a..z mapped
 * to names by the folder's "dovecot-keywords" file ("<index> <name>" lines,
 * Dovecot's format: mailboxes migrate with their keywords). At most 26
 * keywords per folder; a letter without a line in the file is named
 * "$Keyword<n>" in views.
 *
 * UIDs: each folder has our index "postern-uidlist", written by imapd only
 * (temp file + rename, under an flock on "postern-uidlist.lock" so that several
 * imapd processes agree):
 *     P1 V<uidvalidity> N<uidnext> M<highestmodseq> R<recent-from-uid> S<dir stamps>
 *     <uid> <modseq> <vsize> <mtime> <c|n>[:<info>] <basename>   (uid order)
 * basename is the file name without ":2,..." (details in mailstore_index.c).
 * The stamps (mtime/ctime of cur/ and new/) make a sync of an unchanged
 * folder two fstat()s: the directories are read only when they changed.
 * Messages that appear in new/ or cur/ get the next UIDs (new/ files are
 * moved to cur/ unless read-only) in the order of their names (delivery
 * time). A missing, unreadable or corrupt
 * index is rebuilt from the files with a NEW uidvalidity (clients resync);
 * an intact index never renumbers a message. Rebuild is logged.
 * \Recent: a message is recent for the first session that syncs it
 * (uids >= R are recent for that session, which then moves R up). A read-only
 * view (EXAMINE) and STATUS see uids >= R as recent without moving R, and
 * leave new/ as it is.
 *
 * Views: each SELECTed session has its own struct mbox (IMAP sequence numbers
 * are per session). mbox_sync() brings the view up to date with the disk
 * (others' deliveries, flag changes, expunges) and says what changed, so the
 * session can send EXISTS / EXPUNGE / FETCH FLAGS. When expunges may not be
 * announced (during FETCH, STORE, SEARCH), vanished messages stay in the view
 * with gone = true until a sync that may announce them. mbox_sync fails with
 * ESTALE when the folder's UIDVALIDITY changed (index rebuilt: the session
 * must end the selection) and with ENOENT when the folder was deleted.
 * Changes a view makes (STORE, EXPUNGE) reach the index at mbox_commit(),
 * once per command; other views see them at their next mbox_sync().
 *
 * Sizes: vsize is the message's size with CRLF line ends (RFC822.SIZE). It
 * comes from ",W=<n>" in the file name when present, else the file is read
 * once and the result kept in the index. INTERNALDATE is the file's mtime
 * (APPEND sets it from the date given).
 *
 * Quota: Maildir++ "maildirsize" in the user's Maildir (first line
 * "<bytes>S,<count>C" limits, then "<bytes> <count>" deltas; recalculated
 * when missing, older than 15 min with more than 5120 bytes, unreadable, or
 * its limit differs from quota_bytes). With quota_bytes 0 the file is left
 * alone and mstore_quota() counts the files.
 *
 * Errors: -1 with errno kept (ENOENT: no such folder, EEXIST: exists already,
 * EDQUOT: over quota, EINVAL: bad name, ENOSPC, EPERM: changing a read-only
 * view, ELOOP: a symlink where a folder should be, EAGAIN: the index stayed
 * locked by another process for 30 s) and a message in err.
 */
#ifndef POSTERN_MAILSTORE_H
#define POSTERN_MAILSTORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

#include "strbuf.h"
#include "strlist.h"

#define MBOX_SEEN       (1u << 0)
#define MBOX_ANSWERED   (1u << 1)
#define MBOX_FLAGGED    (1u << 2)
#define MBOX_DELETED    (1u << 3)
#define MBOX_DRAFT      (1u << 4)
#define MBOX_RECENT     (1u << 5)       /* session flag: never stored, cannot be set */
#define MBOX_MAX_KEYWORDS 26

struct mstore;

/* ---- the store and its folders ---- */

/* mstore_open - the user's Maildir at path (from virtual_mailbox_maps) beneath base_fd,
 * created with tmp/ new/ cur/ when missing; quota_bytes 0 = no limit */
struct mstore *mstore_open(int base_fd, const char *path, uint64_t quota_bytes, struct strbuf *err);
void mstore_close(struct mstore *st);
/* mstore_path - the Maildir path of folder name relative to the mail base (for inotify) */
void mstore_folder_path(struct mstore *st, const char *name, struct strbuf *out);

/* mstore_name_valid - see above; false with err */
bool mstore_name_valid(const char *name, struct strbuf *err);
/* mstore_list - every folder that exists, "INBOX" first, then sorted */
int  mstore_list(struct mstore *st, struct strlist *names, struct strbuf *err);
/* mstore_exists - name is a folder (a Maildir with cur/) */
bool mstore_exists(struct mstore *st, const char *name);
/* mstore_create - a new, empty folder (EEXIST if it is there) */
int  mstore_create(struct mstore *st, const char *name, struct strbuf *err);
/* mstore_delete - remove the folder and its messages (not its children; INBOX: EPERM) */
int  mstore_delete(struct mstore *st, const char *name, struct strbuf *err);
/* mstore_rename - rename the folder and its children; INBOX: its messages move to the
 * new folder and INBOX stays, empty (RFC 3501 6.3.5) */
int  mstore_rename(struct mstore *st, const char *from, const char *to, struct strbuf *err);
/* subscriptions: the "subscriptions" file, one name per line (Courier/Dovecot Maildir++) */
int  mstore_subscriptions(struct mstore *st, struct strlist *names, struct strbuf *err);
int  mstore_subscribe(struct mstore *st, const char *name, bool subscribe, struct strbuf *err);

struct mstore_status {
    uint32_t messages, recent, unseen, uidnext, uidvalidity;
    uint64_t size;                      /* sum of vsizes (STATUS SIZE) */
    uint64_t highestmodseq;
};
/* mstore_status - STATUS of a folder without disturbing open views (does not claim \Recent) */
int  mstore_status(struct mstore *st, const char *name, struct mstore_status *out, struct strbuf *err);

/* mstore_quota - usage (bytes, messages) and the limit (0 = none) */
int  mstore_quota(struct mstore *st, uint64_t *bytes, uint64_t *count, uint64_t *limit, struct strbuf *err);
/* mstore_quota_add - account a message another writer (the virtual agent) put into new/ */
void mstore_quota_add(struct mstore *st, uint64_t bytes);

/*
 * mstore_append - add a message to folder (APPEND): data in CRLF or LF form,
 * stored with LF line ends; flags (MBOX_* without RECENT) and keyword names
 * (created in the folder's keyword file as needed); internaldate (0 = now).
 * Out: the folder's uidvalidity and the new message's uid (APPENDUID).
 * EDQUOT when the quota would be exceeded.
 */
int  mstore_append(struct mstore *st, const char *folder, const char *data, size_t len,
                   uint32_t flags, const char *const *keywords, size_t nkeywords, time_t internaldate,
                   uint32_t *uidvalidity, uint32_t *uid, struct strbuf *err);

/* ---- a session's view of one folder ---- */

struct mbox_msg {
    uint32_t uid;
    uint32_t flags;                     /* MBOX_* */
    uint32_t keywords;                  /* bit i: keyword i of the view's keyword list */
    uint64_t modseq;
    uint64_t vsize;                     /* RFC822.SIZE */
    time_t  internaldate;
    char   *file;                       /* current file name relative to the folder: "cur/NAME:2,S" */
    bool    gone;                       /* expunged by someone else, not yet announced */
};

struct mbox {
    struct mstore *store;
    char   *name;
    bool    readonly;
    uint32_t uidvalidity, uidnext;
    uint64_t highestmodseq;
    struct mbox_msg *msgs;              /* in uid order: msgs[seq - 1] */
    size_t  count;
    char   *keywords[MBOX_MAX_KEYWORDS];
    size_t  nkeywords;
    void   *priv;                       /* private */
};

struct mbox_changes {
    uint32_t *expunged;                 /* sequence numbers to announce, in announcing order */
    size_t  nexpunged;
    uint32_t *flags_changed;            /* sequence numbers (after the expunges) whose flags others changed */
    size_t  nflags_changed;
    bool    exists_changed;             /* send "* N EXISTS" (and RECENT) */
    uint32_t recent;                    /* messages \Recent in this view */
    bool    keywords_changed;           /* send FLAGS / PERMANENTFLAGS again */
};

/* mbox_open - a view of folder name (SELECT: readonly false; EXAMINE: true), synced */
struct mbox *mbox_open(struct mstore *st, const char *name, bool readonly, struct strbuf *err);
void mbox_close(struct mbox *mb);
/* mbox_sync - look at the disk; fill ch (free with mbox_changes_free) */
int  mbox_sync(struct mbox *mb, bool announce_expunges, struct mbox_changes *ch, struct strbuf *err);
void mbox_changes_free(struct mbox_changes *ch);
/* mbox_open_message - the message file of msgs[i], read-only; -1 (ENOENT) if expunged meanwhile */
int  mbox_open_message(struct mbox *mb, size_t i, struct strbuf *err);
struct header_cache_key;
/* mbox_message_key - what names msgs[i]'s content for good (folder directory, UIDVALIDITY, UID) */
void mbox_message_key(const struct mbox *mb, size_t i, struct header_cache_key *key);

enum mbox_flag_op { MBOX_FLAGS_SET, MBOX_FLAGS_ADD, MBOX_FLAGS_REMOVE };
/* mbox_keyword_index - index of keyword name in the view, created when create (-1: unknown, or full) */
int  mbox_keyword_index(struct mbox *mb, const char *name, bool create);
/*
 * mbox_store - change msgs[i]'s flags and keywords (bits of mbox->keywords) by op,
 * renaming its file; unchangedsince (CONDSTORE; 0 = none): refused (returns 1) when
 * the message's modseq is higher. 0 when done (a new modseq if anything changed),
 * -1 with err (ENOENT: expunged meanwhile).
 */
int  mbox_store(struct mbox *mb, size_t i, enum mbox_flag_op op, uint32_t flags, uint32_t keywords,
                uint64_t unchangedsince, struct strbuf *err);
/* mbox_copy - copy msgs[i] with its flags and keywords into folder dest (COPY/MOVE); its new uid
 * and dest's uidvalidity (COPYUID). EDQUOT, ENOENT as mstore_append. */
int  mbox_copy(struct mbox *mb, size_t i, const char *dest, uint32_t *dest_uidvalidity,
               uint32_t *dest_uid, struct strbuf *err);
/* mbox_expunge - remove messages flagged \Deleted (and, if uids != NULL, whose uid is listed,
 * sorted) from disk and the view; their sequence numbers in ch->expunged (descending) */
int  mbox_expunge(struct mbox *mb, const uint32_t *uids, size_t nuids, struct mbox_changes *ch,
                  struct strbuf *err);
/* mbox_commit - write the index if this view changed it (after each command) */
int  mbox_commit(struct mbox *mb, struct strbuf *err);
/* mbox_seq_of_uid - sequence number (1-based) of uid, 0 if not in the view */
uint32_t mbox_seq_of_uid(const struct mbox *mb, uint32_t uid);

/* mstore_special_use - "\\Sent" for Sent, Drafts, Trash, Junk, Archive (and their usual
 * aliases "Sent Messages", "Deleted Messages", "Spam"); NULL otherwise */
const char *mstore_special_use(const char *name);

#endif
