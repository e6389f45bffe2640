/*
 * mailstore_priv - what the mailstore files share and nobody else sees.
 *
 *   mailstore.c        the store, folder names and layout, folder operations,
 *                      subscriptions, STATUS, APPEND, the folder cache
 *   mailstore_index.c  a folder's UID index "postern-uidlist": reading,
 *                      writing, appending, the lock, scanning cur/ and new/,
 *                      rebuilding; flags in file names; "dovecot-keywords"
 *   mailstore_view.c   the per-session views (mbox_*)
 *   mailstore_quota.c  Maildir++ "maildirsize"
 *
 * A struct ms_folder is one open folder: directory fds opened beneath the
 * user's Maildir without symlinks, the last index read from disk (with the
 * identity of the file it came from, so an unchanged index is never parsed
 * twice) and the keyword names. Views own one each; the store keeps a few
 * for STATUS, APPEND and COPY destinations.
 */
#ifndef POSTERN_MAILSTORE_PRIV_H
#define POSTERN_MAILSTORE_PRIV_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <time.h>

#include "mailstore.h"
#include "strbuf.h"

#define MS_INDEX_FILE       "postern-uidlist"
#define MS_INDEX_TMP        "postern-uidlist.tmp"
#define MS_LOCK_FILE        "postern-uidlist.lock"
#define MS_KEYWORDS_FILE    "dovecot-keywords"
#define MS_KEYWORDS_TMP     "dovecot-keywords.tmp"
#define MS_UIDVALIDITY_FILE "postern-uidvalidity"
#define MS_SUBSCRIPTIONS    "subscriptions"
#define MS_NAME_MAX         254         /* "." + name must fit NAME_MAX */
#define MS_KEYWORD_MAX      100         /* bytes in a keyword name */
#define MS_CACHE_SIZE       4

/* one message in the index */
struct ms_entry {
    uint32_t uid;
    uint64_t modseq;
    uint64_t vsize;
    int64_t mtime;                      /* INTERNALDATE */
    bool    in_new;                     /* new/ (not yet moved to cur/) */
    char   *base;                       /* file name up to the first ':' */
    char   *info;                       /* after the ':' ("2,FS"), NULL if none */
};

/* a folder's index as read from (or to be written to) postern-uidlist */
struct ms_index {
    uint32_t uidvalidity, uidnext, recent;
    uint64_t highestmodseq;
    int64_t stamp[4];                   /* cur/ mtime, ctime, new/ mtime, ctime (ns); 0: rescan */
    struct ms_entry *e;
    size_t  n, cap;
};

/* identity of a file we read, to tell cheaply whether it changed */
struct ms_fileid {
    bool    valid;
    dev_t   dev;
    ino_t   ino;
    off_t   size;
    int64_t mtime, ctime;
};

struct ms_folder {
    struct mstore *st;
    char   *name;                       /* IMAP name, "INBOX" canonical */
    int     fd, cur_fd, new_fd;
    dev_t   dev;                        /* of the folder directory: to check a cached one */
    ino_t   ino;
    bool    loaded;                     /* idx holds a valid index */
    struct ms_index idx;
    struct ms_fileid idx_id;            /* the file idx was read from or written to */
    char   *kw[MBOX_MAX_KEYWORDS];      /* dovecot-keywords by index; NULL: unused slot */
    size_t  nkw;                        /* highest used index + 1 */
    struct ms_fileid kw_id;
};

struct mstore {
    int     root_fd;                    /* the user's Maildir (INBOX) */
    char   *path;                       /* its path beneath the mail base */
    uint64_t quota;                     /* bytes; 0: none */
    struct ms_folder *cache[MS_CACHE_SIZE];
};

/* ms_fail - errno-preserving error text; returns -1 */
int  ms_fail(struct strbuf *err, int errnum, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* ms_is_inbox - name is INBOX in any case */
bool ms_is_inbox(const char *name);
/* ms_dir_name - the folder's directory below the user's Maildir: "." or ".Name" */
void ms_dir_name(const char *name, struct strbuf *out);

/* ---- folders (mailstore_index.c) ---- */

/* counters for tests: directory scans and full index writes in this process */
extern unsigned long ms_stat_scans, ms_stat_index_writes;

/* ms_folder_open - open folder name (validated by the caller) into f; ENOENT if it is not a folder */
int  ms_folder_open(struct mstore *st, const char *name, struct ms_folder *f, struct strbuf *err);
void ms_folder_close(struct ms_folder *f);
/* ms_folder_get - a cached open folder (validated against the disk) or a newly opened one */
struct ms_folder *ms_folder_get(struct mstore *st, const char *name, struct strbuf *err);
/* ms_cache_clear - forget every cached folder (after rename/delete) */
void ms_cache_clear(struct mstore *st);

#define MS_SYNC_MOVE_NEW     0x1        /* move new/ files to cur/ (read-write sessions) */
#define MS_SYNC_CLAIM_RECENT 0x2        /* take \Recent for uids >= R */
#define MS_SYNC_FORCE_SCAN   0x4        /* read the directories whatever their stamps */
/*
 * ms_folder_sync - bring f->idx up to date with the disk (the index file and,
 * when they changed, cur/ and new/), writing it when it changed. recent_from:
 * the first uid that is \Recent for the caller (claimed, or R for read-only).
 */
int  ms_folder_sync(struct ms_folder *f, unsigned flags, uint32_t *recent_from, struct strbuf *err);
/* ms_folder_add - index files just placed in cur/ (cur-relative names); uids out */
int  ms_folder_add(struct ms_folder *f, char *const *names, const uint64_t *vsizes, const int64_t *mtimes,
                   size_t n, uint32_t *uids, struct strbuf *err);
/* ms_find_file - the current name of the message with base, in cur/ or new/ (readdir); -1 ENOENT */
int  ms_find_file(struct ms_folder *f, const char *base, struct strbuf *name, bool *in_new);
/* ms_entry_file - "cur/BASE:INFO" or "new/BASE" */
void ms_entry_file(const struct ms_entry *e, struct strbuf *out);
/* ms_index_free - release entries */
void ms_index_free(struct ms_index *idx);

/* ---- flags in file names ---- */

/* ms_info_flags - MBOX_* flags and keyword bits of a Maildir info ("2,FRSab"); NULL: none */
uint32_t ms_info_flags(const char *info, uint32_t *keywords);
/* ms_info_build - "2," + letters for flags/keywords, keeping letters we do not manage from old */
void ms_info_build(const char *old, uint32_t flags, uint32_t keywords, struct strbuf *out);
/* ms_name_size - the value of ",<key>=<n>" in a file name's base; false if absent */
bool ms_name_size(const char *base, char key, uint64_t *value);

/* ---- keywords ---- */

/* ms_keyword_valid - a flag-keyword atom we can store */
bool ms_keyword_valid(const char *name);
/* ms_keywords_refresh - re-read dovecot-keywords if it changed; 1 if the list changed */
int  ms_keywords_refresh(struct ms_folder *f);
/* ms_keyword_find - index of name (case-insensitive), added to the file when create; -1 unknown/full/bad */
int  ms_keyword_find(struct ms_folder *f, const char *name, bool create, struct strbuf *err);

/* ms_write_message - data as a new message "NAME,S=,W=:info" in f's cur/ (tmp/, fsync, mtime, link) */
int  ms_write_message(struct ms_folder *f, const char *data, size_t len, uint64_t vsize, const char *info,
                      time_t mtime, struct strbuf *final, struct strbuf *err);

/* ---- quota (mailstore_quota.c) ---- */

/* ms_quota_check - would adding bytes/count exceed the limit? -1 EDQUOT */
int  ms_quota_check(struct mstore *st, uint64_t bytes, uint64_t count, struct strbuf *err);
/* ms_quota_update - append a delta line to maildirsize (no-op without a limit) */
void ms_quota_update(struct mstore *st, int64_t bytes, int64_t count);
/* ms_quota_usage - current usage from maildirsize (recalculated when needed) */
int  ms_quota_usage(struct mstore *st, uint64_t *bytes, uint64_t *count, struct strbuf *err);
/* ms_file_size - a message's size for quota: ",S=" in its name, else fstatat */
uint64_t ms_file_size(int dirfd, const char *name);

#endif
