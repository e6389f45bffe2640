/*
 * greylist - the greylisting store and its decisions (what Postgrey does),
 * kept apart from policyd's sockets so that it can be tested with a clock
 * that the test moves: every function that decides takes "now" as an argument.
 *
 * A triplet is (client network, normalized sender, lower-cased recipient).
 * The first time a triplet is seen it is deferred; a retry at least "delay"
 * seconds later, but no more than "retry_window" seconds after the delay, is
 * let through and the triplet remembered as passed, so later mail with it is
 * not delayed again while it keeps being seen within "max_age". A retry that
 * comes too late starts the wait again. Each first successful retry of a
 * triplet counts for its client network; once a network has "awl_clients"
 * of them (0: never) its mail is no longer greylisted at all (auto-whitelist).
 *
 * Storage: one Berkeley DB btree file, no environment and no transactions.
 * Updates are written at once into the file's cache and flushed by
 * greylist_sync() (policyd calls it every second when something changed), so a
 * crash loses at most the last second of greylisting state: harmless, those
 * senders are just greylisted again. A file that Berkeley DB cannot verify at
 * open time (a crash in the middle of a flush, a disk error, not a DB file at
 * all), or that fails while in use, is renamed to PATH.corrupt and replaced by
 * an empty store, with a warning in the log: greylisting starts afresh rather
 * than stopping mail. Berkeley DB without an environment has no locking, so
 * one process at a time may use a store: PATH.lock is flock()ed for as long as
 * the store is open.
 *
 * Records (keys and values are text):
 *   "t:NET/SENDER/RECIPIENT" -> "FIRST LAST PASSED"   times in seconds, PASSED 0/1
 *   "c:NET"                  -> "COUNT LAST"          auto-whitelist count
 * A value that does not parse is treated as absent and overwritten.
 *
 * greylist_expire() removes triplets not seen for max_age (and never-passed
 * ones whose retry window is over) and client counts not updated for max_age,
 * visiting at most a given number of records per call and resuming where the
 * previous call stopped, so that a large store never blocks the daemon.
 */
#ifndef POSTERN_GREYLIST_H
#define POSTERN_GREYLIST_H

#include <stdbool.h>
#include "strbuf.h"

struct greylist_settings {
    long long delay;                    /* seconds a new triplet waits */
    long long max_age;                  /* forget records not seen for this long */
    long long retry_window;             /* after the delay, how long a retry counts */
    long long awl_clients;              /* passed triplets that whitelist a network; 0 off */
    int     ipv4_prefix;                /* client network: 0..32 */
    int     ipv6_prefix;                /* 0..128 */
};

enum greylist_verdict {
    GREYLIST_DEFER,                     /* seconds: how long the client must still wait */
    GREYLIST_PASS_DELAYED,              /* the retry after the wait; seconds: how long it was */
    GREYLIST_PASS,                      /* a triplet that passed before */
    GREYLIST_PASS_AWL,                  /* the client network is auto-whitelisted */
};

struct greylist_result {
    enum greylist_verdict verdict;
    long long seconds;
    long long awl_count;                /* the network's count after this request */
};

struct greylist;

/*
 * greylist_open - open (or create) the store at path (e.g. "greylist.db");
 * NULL with err when the file cannot be used (permissions, disk); *busy set
 * when another process holds the store (try again shortly). A corrupt file is
 * set aside and replaced (a warning is logged), which is not an error.
 */
struct greylist *greylist_open(const char *path, const struct greylist_settings *settings,
                               bool *busy, struct strbuf *err);
/* greylist_close - flush and close; the lock goes with it */
void greylist_close(struct greylist *gl);

/*
 * greylist_check - the decision for one request, and the store updated;
 * client_address is the text form Postfix sends ("192.0.2.7", "2001:db8::1").
 * -1 with err for a bad address or a store error (the caller lets the mail
 * pass: greylisting must never stop mail because of its own trouble).
 */
int  greylist_check(struct greylist *gl, const char *client_address, const char *sender,
                    const char *recipient, long long now, struct greylist_result *res,
                    struct strbuf *err);
/*
 * greylist_expire - visit up to max_visit records from where the last call
 * stopped, removing the stale ones; *removed counts them. 1 when the sweep
 * reached the end of the store (the next call starts again at the beginning),
 * 0 when there is more, -1 with err on a store error.
 */
int  greylist_expire(struct greylist *gl, long long now, unsigned max_visit, unsigned *removed,
                     struct strbuf *err);
/* greylist_sync - write cached changes to disk if there are any; -1 with err */
int  greylist_sync(struct greylist *gl, struct strbuf *err);
/* greylist_count - records in the store (walks it: tests and diagnostics only) */
long greylist_count(struct greylist *gl);

/* greylist_client_net - "192.0.2.0/24" for 192.0.2.7 with prefix 24; -1 if not an address */
int  greylist_client_net(const char *address, int ipv4_prefix, int ipv6_prefix,
                         struct strbuf *out);
/*
 * greylist_sender_key - the sender as Postgrey compares it: lower case, BATV
 * (prvs=...=) and SRS (SRS0=/SRS1=) wrappers undone, "+extension" removed,
 * numbers standing alone in the local part (VERP ids) replaced by "#".
 */
void greylist_sender_key(const char *sender, struct strbuf *out);

#endif
