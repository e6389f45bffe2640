/*
 * imapd_mailbox - the mailbox commands: SELECT EXAMINE CREATE DELETE RENAME
 * SUBSCRIBE UNSUBSCRIBE LIST LSUB STATUS APPEND CHECK CLOSE UNSELECT IDLE
 * GETQUOTA GETQUOTAROOT SETQUOTA, the selected folder's updates, and the
 * inotify watches that wake IDLE sessions.
 *
 * Interface: imapd.h (imapd_send_updates, imapd_send_expunged,
 * imapd_store_error) and imapd_priv.h (the command handlers,
 * imapd_mailbox_deselect, imapd_idle_stop, imapd_mailbox_name).
 *
 * Names. Mailbox names travel and are stored in modified UTF-7 with "." as
 * the separator (lib/mutf7.h, lib/mailstore.h); "INBOX" in any case is
 * INBOX. A name that is not canonical modified UTF-7, or that
 * mstore_name_valid() refuses (anything that could leave the user's
 * directory: "/", "~" first, "..", control characters...), gets
 * "NO [CANNOT]" and never reaches the store.
 *
 * LIST (RFC 3501, RFC 5258 LIST-EXTENDED, RFC 6154 SPECIAL-USE, RFC 5819
 * LIST-STATUS): the candidates are the existing folders, their missing
 * parents (\Noselect, or \NonExistent in an extended LIST) and, with the
 * SUBSCRIBED selection, the subscriptions. \HasChildren / \HasNoChildren
 * and special-use attributes are always sent (RFC 3348, RFC 6154 allow it).
 * "*" matches anything, "%" anything but the separator; patterns are
 * limited to 255 bytes so that matching stays cheap.
 *
 * IDLE (RFC 2177): one inotify descriptor per process; a selected folder's
 * new/ and cur/ are watched while at least one session idles on it (the
 * watch is shared, counted), so a delivery by virtual or a change by
 * another session reaches every idling session at once, as EXISTS /
 * EXPUNGE / FETCH FLAGS. Watches are added relative to the mail base (our
 * working directory) with IN_DONT_FOLLOW | IN_ONLYDIR. A missed event only
 * delays an update to the next command.
 *
 * Quota (RFC 9208): one root "User quota" for every folder, STORAGE in KiB,
 * from the store's Maildir++ maildirsize; SETQUOTA is refused.
 */
#include <ctype.h>
#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/inotify.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include "imap_parse.h"
#include "log.h"
#include "mailstore.h"
#include "mem.h"
#include "mutf7.h"
#include "strbuf.h"
#include "strlist.h"

#include "imapd.h"
#include "imapd_priv.h"

#define QUOTA_ROOT          "User quota"
#define LIST_PATTERN_MAX    255         /* bytes of a (reference + pattern) */
#define LIST_PATTERNS_MAX   16          /* patterns in one extended LIST */
#define NAME_MAX_BYTES      255

/* ---- per-session state and inotify ---- */

struct watch {
    struct watch *next;
    char   *path;                       /* the folder's Maildir, relative to the mail base */
    int     wd_new, wd_cur;
    unsigned refs;
    bool    dirty;
};

struct mbox_sess {
    struct imapd_session *s;
    struct mbox_sess *prev, *next;      /* idling sessions */
    struct watch *watch;                /* NULL: IDLE in the authenticated state */
};

static struct {
    int     fd;                         /* -1: not open (or failed: IDLE still works, slower) */
    bool    failed;
    struct event *ev;
    struct watch *watches;
    struct mbox_sess *idlers;
} ino = {-1, false, NULL, NULL, NULL};

/* ---- small helpers ---- */

/* sanitize - append text with control and 8-bit bytes as '?', bounded, for reply texts */
static void sanitize(struct strbuf *out, const char *text)
{
    for (size_t n = 0; *text && n < 200; text++, n++)
        sb_putc(out, (unsigned char) *text < 0x20 || (unsigned char) *text >= 0x7f ? '?' : *text);
}

/* write_name - append a mailbox name as an IMAP string */
static void write_name(struct strbuf *out, const char *name)
{
    imap_write_string(out, name, strlen(name));
}

/* is_inbox - name is INBOX in any case */
static bool is_inbox(const char *name)
{
    return strcasecmp(name, "INBOX") == 0;
}

/* imapd_mailbox_name - a mailbox argument as a stored name; NULL after a tagged NO/BAD */
const char *imapd_mailbox_name(struct imapd_session *s, const char *tag, const struct imap_arg *arg,
                               struct strbuf *buf)
{
    const char *name = imap_arg_astring(arg);
    struct strbuf err = STRBUF_INIT;
    struct strbuf text = STRBUF_INIT;

    if (name == NULL) {
        imapd_tagged(s, tag, "BAD Invalid mailbox name argument");
        return NULL;
    }
    sb_reset(buf);
    if (is_inbox(name)) {
        sb_puts(buf, "INBOX");
        return sb_str(buf);
    }
    if (strlen(name) > NAME_MAX_BYTES || !mutf7_valid(name)) {
        imapd_tagged(s, tag, "NO [CANNOT] Invalid mailbox name (not modified UTF-7, or too long)");
        return NULL;
    }
    if (!mstore_name_valid(name, &err)) {
        sanitize(&text, sb_str(&err));
        imapd_tagged(s, tag, "NO [CANNOT] Invalid mailbox name: %s", sb_str(&text));
        sb_free(&err);
        sb_free(&text);
        return NULL;
    }
    sb_free(&err);
    sb_puts(buf, name);
    return sb_str(buf);
}

/* imapd_store_error - tagged NO with the right response code for a store error */
void imapd_store_error(struct imapd_session *s, const char *tag, const char *what, int err_no,
                       const struct strbuf *err, bool trycreate)
{
    struct strbuf text = STRBUF_INIT;
    const char *code;

    sanitize(&text, err && sb_len(err) ? sb_str(err) : strerror(err_no));
    switch (err_no) {
    case EDQUOT:
        code = "OVERQUOTA";
        break;
    case ENOSPC:
        code = "OVERQUOTA";
        sb_set(&text, "Not enough disk space");
        break;
    case ENOENT:
        code = trycreate ? "TRYCREATE" : "NONEXISTENT";
        break;
    case EEXIST:
        code = "ALREADYEXISTS";
        break;
    case EINVAL:
    case EPERM:
        code = "CANNOT";
        break;
    case EFBIG:
    case E2BIG:
        code = "TOOBIG";
        break;
    case EACCES:
        code = "NOPERM";
        break;
    default:
        msg_warn("user=<%s>: %s failed: %s", s->user ? s->user : "", what, sb_str(&text));
        imapd_tagged(s, tag, "NO [SERVERBUG] Internal error occurred. Refer to server log for "
                     "more information.");
        sb_free(&text);
        return;
    }
    imapd_tagged(s, tag, "NO [%s] %s failed: %s", code, what, sb_str(&text));
    sb_free(&text);
}

/* write_flag_list - "\Answered \Flagged \Deleted \Seen \Draft kw..." of the view */
static void write_flag_list(struct strbuf *out, const struct mbox *mb)
{
    sb_puts(out, "\\Answered \\Flagged \\Deleted \\Seen \\Draft");
    for (size_t i = 0; i < mb->nkeywords; i++)
        sb_printf(out, " %s", mb->keywords[i]);
}

/* send_flags - "* FLAGS (...)" and "* OK [PERMANENTFLAGS (...)]" */
static void send_flags(struct imapd_session *s)
{
    struct strbuf out = STRBUF_INIT;

    sb_puts(&out, "* FLAGS (");
    write_flag_list(&out, s->mbox);
    sb_puts(&out, ")\r\n* OK [PERMANENTFLAGS (");
    if (!s->readonly) {
        write_flag_list(&out, s->mbox);
        if (s->mbox->nkeywords < MBOX_MAX_KEYWORDS)
            sb_puts(&out, " \\*");
    }
    sb_puts(&out, ")] Flags permitted.\r\n");
    imapd_write(s, sb_str(&out), sb_len(&out));
    sb_free(&out);
}

/* recent_count - messages \Recent in this view */
static uint32_t recent_count(const struct mbox *mb)
{
    uint32_t n = 0;

    for (size_t i = 0; i < mb->count; i++)
        if ((mb->msgs[i].flags & MBOX_RECENT) && !mb->msgs[i].gone)
            n++;
    return n;
}

/* imapd_send_expunged - "* N EXPUNGE" for each of ch->expunged */
void imapd_send_expunged(struct imapd_session *s, const struct mbox_changes *ch)
{
    for (size_t i = 0; i < ch->nexpunged; i++)
        imapd_printf(s, "* %u EXPUNGE\r\n", ch->expunged[i]);
}

/* imapd_send_updates - sync the selected view and tell the client what others changed */
void imapd_send_updates(struct imapd_session *s, bool announce_expunges)
{
    struct mbox_changes ch;
    struct strbuf err = STRBUF_INIT;
    struct strbuf out = STRBUF_INIT;

    if (s->mbox == NULL)
        return;
    memset(&ch, 0, sizeof(ch));
    if (mbox_sync(s->mbox, announce_expunges, &ch, &err) < 0) {
        msg_warn("user=<%s>: cannot sync %s: %s", s->user ? s->user : "", s->mbox->name,
                 sb_str(&err));
        mbox_changes_free(&ch);
        sb_free(&err);
        return;
    }
    imapd_send_expunged(s, &ch);
    if (ch.keywords_changed)
        send_flags(s);
    if (ch.exists_changed)
        imapd_printf(s, "* %zu EXISTS\r\n* %u RECENT\r\n", s->mbox->count, ch.recent);
    for (size_t i = 0; i < ch.nflags_changed; i++) {
        uint32_t seq = ch.flags_changed[i];
        const struct mbox_msg *m;

        if (seq == 0 || seq > s->mbox->count)
            continue;
        m = &s->mbox->msgs[seq - 1];
        sb_reset(&out);
        sb_printf(&out, "* %u FETCH (UID %u FLAGS ", seq, m->uid);
        imapd_write_flags(s, &out, m);
        if (s->condstore)
            sb_printf(&out, " MODSEQ (%llu)", (unsigned long long) m->modseq);
        sb_puts(&out, ")\r\n");
        imapd_write(s, sb_str(&out), sb_len(&out));
    }
    mbox_changes_free(&ch);
    sb_reset(&err);
    if (mbox_commit(s->mbox, &err) < 0)
        msg_warn("user=<%s>: cannot save the index of %s: %s", s->user ? s->user : "",
                 s->mbox->name, sb_str(&err));
    sb_free(&err);
    sb_free(&out);
}

/* imapd_mailbox_deselect - leave SELECTED (no expunge): commit and close the view */
void imapd_mailbox_deselect(struct imapd_session *s)
{
    struct strbuf err = STRBUF_INIT;

    if (s->mbox == NULL)
        return;
    if (mbox_commit(s->mbox, &err) < 0)
        msg_warn("user=<%s>: cannot save the index of %s: %s", s->user ? s->user : "",
                 s->mbox->name, sb_str(&err));
    mbox_close(s->mbox);
    s->mbox = NULL;
    s->readonly = false;
    if (s->state == IMAPD_SELECTED)
        s->state = IMAPD_AUTH;
    sb_free(&err);
}

/* ---- SELECT, EXAMINE, CHECK, CLOSE, UNSELECT ---- */

/* do_select - SELECT or EXAMINE */
static void do_select(struct imapd_session *s, const char *tag, const struct imap_arg *args,
                      size_t nargs, bool readonly)
{
    struct strbuf buf = STRBUF_INIT;
    struct strbuf err = STRBUF_INIT;
    const char *name;
    struct mbox *mb;
    bool    condstore = false;
    uint32_t unseen = 0;

    if (nargs < 1 || nargs > 2 || (nargs == 2 && args[1].type != IMAP_ARG_LIST)) {
        imapd_tagged(s, tag, "BAD %s needs a mailbox name", readonly ? "EXAMINE" : "SELECT");
        return;
    }
    if (nargs == 2) {
        for (size_t i = 0; i < args[1].count; i++) {
            if (!imap_arg_is_atom(&args[1].list[i], "CONDSTORE")) {
                imapd_tagged(s, tag, "BAD Unknown select parameter");
                return;
            }
            condstore = true;
        }
    }
    /* RFC 3501 6.3.1: the old mailbox is closed even if the new one cannot be opened. */
    if (s->mbox != NULL) {
        imapd_mailbox_deselect(s);
        if (s->condstore)
            imapd_printf(s, "* OK [CLOSED] Previous mailbox closed.\r\n");
    }
    if ((name = imapd_mailbox_name(s, tag, &args[0], &buf)) == NULL) {
        sb_free(&buf);
        return;
    }
    if (condstore)
        s->condstore = true;
    errno = 0;
    if ((mb = mbox_open(s->store, name, readonly, &err)) == NULL) {
        int     e = errno;

        if (e == ENOENT)
            imapd_tagged(s, tag, "NO [NONEXISTENT] Mailbox doesn't exist: %s", name);
        else
            imapd_store_error(s, tag, readonly ? "EXAMINE" : "SELECT", e, &err, false);
        sb_free(&buf);
        sb_free(&err);
        return;
    }
    s->mbox = mb;
    s->readonly = readonly;
    s->state = IMAPD_SELECTED;
    send_flags(s);
    imapd_printf(s, "* %zu EXISTS\r\n* %u RECENT\r\n", mb->count, recent_count(mb));
    for (size_t i = 0; i < mb->count; i++) {
        if (!(mb->msgs[i].flags & MBOX_SEEN) && !mb->msgs[i].gone) {
            unseen = (uint32_t) i + 1;
            break;
        }
    }
    if (unseen)
        imapd_printf(s, "* OK [UNSEEN %u] First unseen.\r\n", unseen);
    imapd_printf(s, "* OK [UIDVALIDITY %u] UIDs valid\r\n* OK [UIDNEXT %u] Predicted next UID\r\n",
                 mb->uidvalidity, mb->uidnext);
    if (s->condstore)
        imapd_printf(s, "* OK [HIGHESTMODSEQ %llu] Highest\r\n",
                     (unsigned long long) mb->highestmodseq);
    imapd_tagged(s, tag, "OK [%s] %s completed.", readonly ? "READ-ONLY" : "READ-WRITE",
                 readonly ? "Examine" : "Select");
    sb_free(&buf);
    sb_free(&err);
}

/* imapd_cmd_select - SELECT mailbox [(CONDSTORE)] */
void imapd_cmd_select(struct imapd_session *s, const char *tag, const struct imap_arg *args,
                      size_t nargs, bool uid)
{
    (void) uid;
    do_select(s, tag, args, nargs, false);
}

/* imapd_cmd_examine - EXAMINE mailbox [(CONDSTORE)] */
void imapd_cmd_examine(struct imapd_session *s, const char *tag, const struct imap_arg *args,
                       size_t nargs, bool uid)
{
    (void) uid;
    do_select(s, tag, args, nargs, true);
}

/* imapd_cmd_check - CHECK: the index is written */
void imapd_cmd_check(struct imapd_session *s, const char *tag, const struct imap_arg *args,
                     size_t nargs, bool uid)
{
    struct strbuf err = STRBUF_INIT;

    (void) args;
    (void) uid;
    if (nargs != 0) {
        imapd_tagged(s, tag, "BAD CHECK takes no arguments");
        return;
    }
    if (mbox_commit(s->mbox, &err) < 0)
        imapd_store_error(s, tag, "CHECK", errno, &err, false);
    else
        imapd_tagged(s, tag, "OK Check completed.");
    sb_free(&err);
}

/* imapd_cmd_close - CLOSE: expunge silently (read-write), back to the authenticated state */
void imapd_cmd_close(struct imapd_session *s, const char *tag, const struct imap_arg *args,
                     size_t nargs, bool uid)
{
    struct mbox_changes ch;
    struct strbuf err = STRBUF_INIT;

    (void) args;
    (void) uid;
    if (nargs != 0) {
        imapd_tagged(s, tag, "BAD CLOSE takes no arguments");
        return;
    }
    memset(&ch, 0, sizeof(ch));
    if (!s->readonly && mbox_expunge(s->mbox, NULL, 0, &ch, &err) < 0)
        msg_warn("user=<%s>: CLOSE: expunge of %s failed: %s", s->user, s->mbox->name,
                 sb_str(&err));
    mbox_changes_free(&ch);
    imapd_mailbox_deselect(s);
    imapd_tagged(s, tag, "OK Close completed.");
    sb_free(&err);
}

/* imapd_cmd_unselect - UNSELECT (RFC 3691): CLOSE without the expunge */
void imapd_cmd_unselect(struct imapd_session *s, const char *tag, const struct imap_arg *args,
                        size_t nargs, bool uid)
{
    (void) args;
    (void) uid;
    if (nargs != 0) {
        imapd_tagged(s, tag, "BAD UNSELECT takes no arguments");
        return;
    }
    imapd_mailbox_deselect(s);
    imapd_tagged(s, tag, "OK Unselect completed.");
}

/* ---- CREATE, DELETE, RENAME, SUBSCRIBE, UNSUBSCRIBE ---- */

/* imapd_cmd_create - CREATE name (a trailing separator is allowed) */
void imapd_cmd_create(struct imapd_session *s, const char *tag, const struct imap_arg *args,
                      size_t nargs, bool uid)
{
    struct strbuf buf = STRBUF_INIT;
    struct strbuf err = STRBUF_INIT;
    struct imap_arg copy;
    const char *raw;
    const char *name;

    (void) uid;
    if (nargs != 1 || (raw = imap_arg_astring(&args[0])) == NULL) {
        imapd_tagged(s, tag, "BAD CREATE needs a mailbox name");
        return;
    }
    /* RFC 3501 6.3.3: "foo." means "foo" (a hierarchy is intended below it). */
    copy = args[0];
    if (copy.len > 1 && raw[copy.len - 1] == '.') {
        sb_append(&buf, raw, copy.len - 1);
        copy.type = IMAP_ARG_STRING;
        copy.str = xstrdup(sb_str(&buf));
        copy.len = sb_len(&buf);
        copy.literal = false;
    }
    name = imapd_mailbox_name(s, tag, &copy, &buf);
    if (copy.str != args[0].str)
        free((char *) copy.str);
    if (name == NULL)
        goto out;
    if (strcmp(name, "INBOX") == 0 || mstore_exists(s->store, name)) {
        imapd_tagged(s, tag, "NO [ALREADYEXISTS] Mailbox already exists");
        goto out;
    }
    if (mstore_create(s->store, name, &err) < 0)
        imapd_store_error(s, tag, "CREATE", errno, &err, false);
    else
        imapd_tagged(s, tag, "OK Create completed.");
out:
    sb_free(&buf);
    sb_free(&err);
}

/* imapd_cmd_delete - DELETE name (not INBOX) */
void imapd_cmd_delete(struct imapd_session *s, const char *tag, const struct imap_arg *args,
                      size_t nargs, bool uid)
{
    struct strbuf buf = STRBUF_INIT;
    struct strbuf err = STRBUF_INIT;
    const char *name;

    (void) uid;
    if (nargs != 1) {
        imapd_tagged(s, tag, "BAD DELETE needs a mailbox name");
        return;
    }
    if ((name = imapd_mailbox_name(s, tag, &args[0], &buf)) == NULL)
        goto out;
    if (strcmp(name, "INBOX") == 0) {
        imapd_tagged(s, tag, "NO [CANNOT] INBOX can't be deleted.");
        goto out;
    }
    if (!mstore_exists(s->store, name)) {
        imapd_tagged(s, tag, "NO [NONEXISTENT] Mailbox doesn't exist: %s", name);
        goto out;
    }
    /* Deleting the selected folder closes it first (as Dovecot does, without BYE). */
    if (s->mbox != NULL && strcmp(s->mbox->name, name) == 0)
        imapd_mailbox_deselect(s);
    if (mstore_delete(s->store, name, &err) < 0)
        imapd_store_error(s, tag, "DELETE", errno, &err, false);
    else
        imapd_tagged(s, tag, "OK Delete completed.");
out:
    sb_free(&buf);
    sb_free(&err);
}

/* imapd_cmd_rename - RENAME from to */
void imapd_cmd_rename(struct imapd_session *s, const char *tag, const struct imap_arg *args,
                      size_t nargs, bool uid)
{
    struct strbuf b1 = STRBUF_INIT;
    struct strbuf b2 = STRBUF_INIT;
    struct strbuf err = STRBUF_INIT;
    const char *from;
    const char *to;

    (void) uid;
    if (nargs != 2) {
        imapd_tagged(s, tag, "BAD RENAME needs two mailbox names");
        return;
    }
    if ((from = imapd_mailbox_name(s, tag, &args[0], &b1)) == NULL
        || (to = imapd_mailbox_name(s, tag, &args[1], &b2)) == NULL)
        goto out;
    if (!mstore_exists(s->store, from)) {
        imapd_tagged(s, tag, "NO [NONEXISTENT] Mailbox doesn't exist: %s", from);
        goto out;
    }
    if (strcmp(to, "INBOX") == 0 || mstore_exists(s->store, to)) {
        imapd_tagged(s, tag, "NO [ALREADYEXISTS] Target mailbox already exists");
        goto out;
    }
    if (mstore_rename(s->store, from, to, &err) < 0)
        imapd_store_error(s, tag, "RENAME", errno, &err, false);
    else
        imapd_tagged(s, tag, "OK Rename completed.");
out:
    sb_free(&b1);
    sb_free(&b2);
    sb_free(&err);
}

/* do_subscribe - SUBSCRIBE / UNSUBSCRIBE */
static void do_subscribe(struct imapd_session *s, const char *tag, const struct imap_arg *args,
                         size_t nargs, bool subscribe)
{
    struct strbuf buf = STRBUF_INIT;
    struct strbuf err = STRBUF_INIT;
    const char *name;
    const char *what = subscribe ? "SUBSCRIBE" : "UNSUBSCRIBE";

    if (nargs != 1) {
        imapd_tagged(s, tag, "BAD %s needs a mailbox name", what);
        return;
    }
    if ((name = imapd_mailbox_name(s, tag, &args[0], &buf)) != NULL) {
        if (mstore_subscribe(s->store, name, subscribe, &err) < 0)
            imapd_store_error(s, tag, what, errno, &err, false);
        else
            imapd_tagged(s, tag, "OK %s completed.", subscribe ? "Subscribe" : "Unsubscribe");
    }
    sb_free(&buf);
    sb_free(&err);
}

/* imapd_cmd_subscribe - SUBSCRIBE name (a name that does not exist may be subscribed) */
void imapd_cmd_subscribe(struct imapd_session *s, const char *tag, const struct imap_arg *args,
                         size_t nargs, bool uid)
{
    (void) uid;
    do_subscribe(s, tag, args, nargs, true);
}

/* imapd_cmd_unsubscribe - UNSUBSCRIBE name */
void imapd_cmd_unsubscribe(struct imapd_session *s, const char *tag, const struct imap_arg *args,
                           size_t nargs, bool uid)
{
    (void) uid;
    do_subscribe(s, tag, args, nargs, false);
}

/* ---- STATUS ---- */

enum {
    ST_MESSAGES = 1, ST_RECENT = 2, ST_UIDNEXT = 4, ST_UIDVALIDITY = 8, ST_UNSEEN = 16,
    ST_SIZE = 32, ST_HIGHESTMODSEQ = 64,
};

/* status_items - the item list of STATUS or RETURN (STATUS (...)); -1 if bad */
static int status_items(const struct imap_arg *list, unsigned *items)
{
    static const struct { const char *name; unsigned bit; } names[] = {
        {"MESSAGES", ST_MESSAGES}, {"RECENT", ST_RECENT}, {"UIDNEXT", ST_UIDNEXT},
        {"UIDVALIDITY", ST_UIDVALIDITY}, {"UNSEEN", ST_UNSEEN}, {"SIZE", ST_SIZE},
        {"HIGHESTMODSEQ", ST_HIGHESTMODSEQ},
    };

    *items = 0;
    if (list->type != IMAP_ARG_LIST || list->count == 0)
        return -1;
    for (size_t i = 0; i < list->count; i++) {
        size_t  k;

        for (k = 0; k < sizeof(names) / sizeof(names[0]); k++)
            if (imap_arg_is_atom(&list->list[i], names[k].name))
                break;
        if (k == sizeof(names) / sizeof(names[0]))
            return -1;
        *items |= names[k].bit;
    }
    return 0;
}

/* write_status - "* STATUS name (...)\r\n" for a folder; -1 with errno and err */
static int write_status(struct imapd_session *s, const char *name, unsigned items, struct strbuf *err)
{
    struct mstore_status st;
    struct strbuf out = STRBUF_INIT;
    const char *sep = "";

    if (mstore_status(s->store, name, &st, err) < 0)
        return -1;
    sb_puts(&out, "* STATUS ");
    write_name(&out, name);
    sb_puts(&out, " (");
#define ITEM(bit, fmt, val) \
    if (items & (bit)) { sb_printf(&out, "%s" fmt, sep, val); sep = " "; }
    ITEM(ST_MESSAGES, "MESSAGES %u", st.messages);
    ITEM(ST_RECENT, "RECENT %u", st.recent);
    ITEM(ST_UIDNEXT, "UIDNEXT %u", st.uidnext);
    ITEM(ST_UIDVALIDITY, "UIDVALIDITY %u", st.uidvalidity);
    ITEM(ST_UNSEEN, "UNSEEN %u", st.unseen);
    ITEM(ST_SIZE, "SIZE %llu", (unsigned long long) st.size);
    ITEM(ST_HIGHESTMODSEQ, "HIGHESTMODSEQ %llu", (unsigned long long) st.highestmodseq);
#undef ITEM
    sb_puts(&out, ")\r\n");
    imapd_write(s, sb_str(&out), sb_len(&out));
    sb_free(&out);
    return 0;
}

/* imapd_cmd_status - STATUS name (items) */
void imapd_cmd_status(struct imapd_session *s, const char *tag, const struct imap_arg *args,
                      size_t nargs, bool uid)
{
    struct strbuf buf = STRBUF_INIT;
    struct strbuf err = STRBUF_INIT;
    const char *name;
    unsigned items;

    (void) uid;
    if (nargs != 2 || status_items(&args[1], &items) < 0) {
        imapd_tagged(s, tag, "BAD STATUS needs a mailbox name and a list of known items");
        return;
    }
    if ((name = imapd_mailbox_name(s, tag, &args[0], &buf)) == NULL)
        goto out;
    if (items & ST_HIGHESTMODSEQ)
        s->condstore = true;
    /* The selected folder's numbers come from the disk like any other's. */
    if (write_status(s, name, items, &err) < 0) {
        if (errno == ENOENT)
            imapd_tagged(s, tag, "NO [NONEXISTENT] Mailbox doesn't exist: %s", name);
        else
            imapd_store_error(s, tag, "STATUS", errno, &err, false);
    } else {
        imapd_tagged(s, tag, "OK Status completed.");
    }
out:
    sb_free(&buf);
    sb_free(&err);
}

/* ---- LIST, LSUB ---- */

/* match - does name match the LIST pattern ("*" anything, "%" anything but ".")? */
static bool match(const char *pattern, const char *name)
{
    size_t  n = strlen(name);
    bool    cur[NAME_MAX_BYTES + 2];
    bool    next[NAME_MAX_BYTES + 2];
    bool    inbox = is_inbox(name);

    if (n > NAME_MAX_BYTES)
        return false;
    /* cur[j]: the pattern so far matches name[0..j) */
    memset(cur, 0, sizeof(cur));
    cur[0] = true;
    for (const char *p = pattern; *p; p++) {
        memset(next, 0, sizeof(next));
        if (*p == '*') {
            bool    any = false;

            for (size_t j = 0; j <= n; j++) {
                any = any || cur[j];
                next[j] = any;
            }
        } else if (*p == '%') {
            for (size_t j = 0; j <= n; j++)
                next[j] = cur[j] || (j > 0 && next[j - 1] && name[j - 1] != '.');
        } else {
            for (size_t j = 1; j <= n; j++)
                next[j] = cur[j - 1] && (name[j - 1] == *p
                                         || (inbox && tolower((unsigned char) name[j - 1])
                                             == tolower((unsigned char) *p)));
        }
        memcpy(cur, next, sizeof(cur));
    }
    return cur[n];
}

struct cand {
    char   *name;
    bool    exists;                     /* a folder (selectable) */
    bool    subscribed;
    bool    has_children;               /* an existing folder below it */
    bool    sub_child;                  /* a subscribed name below it */
};

struct cands {
    struct cand *v;
    size_t  n, cap;
};

/* cand_get - the candidate for name, added when missing */
static struct cand *cand_get(struct cands *c, const char *name)
{
    for (size_t i = 0; i < c->n; i++)
        if (strcmp(c->v[i].name, name) == 0)
            return &c->v[i];
    if (c->n == c->cap) {
        c->cap = c->cap ? c->cap * 2 : 16;
        c->v = xreallocarray(c->v, c->cap, sizeof(*c->v));
    }
    memset(&c->v[c->n], 0, sizeof(c->v[c->n]));
    c->v[c->n].name = xstrdup(name);
    return &c->v[c->n++];
}

/* cands_free - all of them */
static void cands_free(struct cands *c)
{
    for (size_t i = 0; i < c->n; i++)
        free(c->v[i].name);
    free(c->v);
}

/* cand_cmp - INBOX first, then by name */
static int cand_cmp(const void *a, const void *b)
{
    const struct cand *x = a;
    const struct cand *y = b;

    if (strcmp(x->name, "INBOX") == 0)
        return -1;
    if (strcmp(y->name, "INBOX") == 0)
        return 1;
    return strcmp(x->name, y->name);
}

/* add_parents - the names above name, as candidates (flag marks what the child is) */
static void add_parents(struct cands *c, const char *name, bool existing_child, bool subscribed_child)
{
    struct strbuf prefix = STRBUF_INIT;

    for (const char *dot = strchr(name, '.'); dot != NULL; dot = strchr(dot + 1, '.')) {
        struct cand *p;

        sb_reset(&prefix);
        sb_append(&prefix, name, (size_t) (dot - name));
        p = cand_get(c, sb_str(&prefix));
        if (existing_child)
            p->has_children = true;
        if (subscribed_child)
            p->sub_child = true;
    }
    sb_free(&prefix);
}

struct list_opts {
    bool    extended;
    bool    sel_subscribed, sel_special, recursive;
    bool    ret_subscribed, ret_children, ret_special;
    unsigned ret_status;                /* ST_* items; 0: none */
    bool    lsub;
};

/* list_options - selection and return options of an extended LIST; -1 after a BAD */
static int list_return(struct imapd_session *s, const char *tag, const struct imap_arg *a,
                       struct list_opts *o)
{
    if (a->type != IMAP_ARG_LIST) {
        imapd_tagged(s, tag, "BAD RETURN needs a list");
        return -1;
    }
    for (size_t i = 0; i < a->count; i++) {
        const struct imap_arg *x = &a->list[i];

        if (imap_arg_is_atom(x, "SUBSCRIBED")) {
            o->ret_subscribed = true;
        } else if (imap_arg_is_atom(x, "CHILDREN")) {
            o->ret_children = true;
        } else if (imap_arg_is_atom(x, "SPECIAL-USE")) {
            o->ret_special = true;
        } else if (imap_arg_is_atom(x, "STATUS") && i + 1 < a->count
                   && status_items(&a->list[i + 1], &o->ret_status) == 0) {
            i++;
        } else {
            imapd_tagged(s, tag, "BAD Unknown or malformed LIST return option");
            return -1;
        }
    }
    o->extended = true;
    return 0;
}

/* list_line - one "* LIST" / "* LSUB" reply for c */
static void list_line(struct imapd_session *s, const struct list_opts *o, const struct cand *c,
                      bool childinfo)
{
    struct strbuf out = STRBUF_INIT;
    const char *sep = "";
    const char *special = c->exists ? mstore_special_use(c->name) : NULL;

#define ATTR(text) do { sb_printf(&out, "%s%s", sep, text); sep = " "; } while (0)
    sb_printf(&out, "* %s (", o->lsub ? "LSUB" : "LIST");
    if (!c->exists) {
        if (o->extended && !c->has_children)
            ATTR("\\NonExistent");
        else
            ATTR("\\Noselect");
    }
    if (!o->lsub) {
        if (c->has_children)
            ATTR("\\HasChildren");
        else if (c->exists || o->extended)
            ATTR("\\HasNoChildren");
        if ((o->sel_subscribed || o->ret_subscribed) && c->subscribed)
            ATTR("\\Subscribed");
        if (special != NULL)
            ATTR(special);
    }
#undef ATTR
    sb_puts(&out, ") \".\" ");
    write_name(&out, c->name);
    if (childinfo)
        sb_puts(&out, " (\"CHILDINFO\" (\"SUBSCRIBED\"))");
    sb_puts(&out, "\r\n");
    imapd_write(s, sb_str(&out), sb_len(&out));
    sb_free(&out);
}

/* do_list - the candidates matching any of the patterns, with their attributes */
static void do_list(struct imapd_session *s, const char *tag, const struct list_opts *o,
                    const char *const *patterns, size_t npatterns)
{
    struct strlist folders = STRLIST_INIT;
    struct strlist subs = STRLIST_INIT;
    struct strbuf err = STRBUF_INIT;
    struct cands c = {NULL, 0, 0};

    if (mstore_list(s->store, &folders, &err) < 0
        || mstore_subscriptions(s->store, &subs, &err) < 0) {
        imapd_store_error(s, tag, o->lsub ? "LSUB" : "LIST", errno, &err, false);
        goto out;
    }
    for (size_t i = 0; i < folders.count; i++) {
        cand_get(&c, folders.items[i])->exists = true;
        add_parents(&c, folders.items[i], true, false);
    }
    for (size_t i = 0; i < subs.count; i++) {
        struct cand *x;

        if (!(o->sel_subscribed || o->lsub || o->ret_subscribed) || !*subs.items[i])
            continue;
        /* Subscriptions of deleted folders show only where subscriptions are asked for. */
        if (!(o->sel_subscribed || o->lsub) && !strlist_contains(&folders, subs.items[i]))
            continue;
        x = cand_get(&c, subs.items[i]);
        x->subscribed = true;
        add_parents(&c, subs.items[i], false, true);
    }
    qsort(c.v, c.n, sizeof(*c.v), cand_cmp);
    for (size_t i = 0; i < c.n; i++) {
        const struct cand *x = &c.v[i];
        bool    matched = false;
        bool    childinfo = false;

        for (size_t k = 0; k < npatterns && !matched; k++)
            matched = match(patterns[k], x->name);
        if (!matched)
            continue;
        if (o->lsub || o->sel_subscribed) {
            if (!x->subscribed) {
                /* RFC 3501 6.3.9 ("%" and a subscribed child), RFC 5258 RECURSIVEMATCH. */
                if (!x->sub_child)
                    continue;
                if (o->lsub) {
                    bool    by_percent = false;

                    for (size_t k = 0; k < npatterns; k++) {
                        size_t  len = strlen(patterns[k]);

                        by_percent |= len > 0 && patterns[k][len - 1] == '%';
                    }
                    if (!by_percent)
                        continue;
                } else if (!o->recursive) {
                    continue;
                } else {
                    childinfo = true;
                }
            }
        } else if (!x->exists && !x->has_children) {
            continue;
        }
        if (o->sel_special && (!x->exists || mstore_special_use(x->name) == NULL))
            continue;
        if (o->lsub && !x->subscribed) {
            struct cand y = *x;

            y.exists = false;           /* \Noselect: listed for its subscribed children */
            list_line(s, o, &y, false);
        } else if (childinfo) {
            struct cand y = *x;

            y.subscribed = false;
            list_line(s, o, &y, true);
        } else {
            list_line(s, o, x, false);
        }
        if (o->ret_status && x->exists) {
            struct strbuf e2 = STRBUF_INIT;

            /* RFC 5819: a folder whose STATUS fails is listed without it. */
            (void) write_status(s, x->name, o->ret_status, &e2);
            sb_free(&e2);
        }
    }
    imapd_tagged(s, tag, "OK %s completed.", o->lsub ? "Lsub" : "List");
out:
    cands_free(&c);
    strlist_free(&folders);
    strlist_free(&subs);
    sb_free(&err);
}

/* pattern_text - reference + pattern into buf; -1 after a BAD/NO */
static int pattern_text(struct imapd_session *s, const char *tag, const char *ref,
                        const struct imap_arg *arg, struct strbuf *buf)
{
    const char *pat = imap_arg_astring(arg);

    if (pat == NULL && arg->type == IMAP_ARG_ATOM)
        pat = arg->str;                 /* "%" and "*" are list-mailbox atoms */
    if (pat == NULL) {
        imapd_tagged(s, tag, "BAD Invalid LIST pattern");
        return -1;
    }
    sb_reset(buf);
    sb_puts(buf, ref);
    sb_puts(buf, pat);
    if (sb_len(buf) > LIST_PATTERN_MAX) {
        imapd_tagged(s, tag, "BAD LIST pattern too long");
        return -1;
    }
    for (const char *p = sb_str(buf); *p; p++) {
        if ((unsigned char) *p < 0x20 || (unsigned char) *p >= 0x7f) {
            imapd_tagged(s, tag, "BAD LIST pattern must be modified UTF-7");
            return -1;
        }
    }
    return 0;
}

/* list_common - LIST and LSUB after their options */
static void list_common(struct imapd_session *s, const char *tag, struct list_opts *o,
                        const struct imap_arg *args, size_t nargs)
{
    struct strbuf bufs[LIST_PATTERNS_MAX];
    const char *patterns[LIST_PATTERNS_MAX];
    size_t  npatterns = 0;
    const char *ref;

    for (size_t i = 0; i < LIST_PATTERNS_MAX; i++)
        sb_init(&bufs[i]);
    if (nargs < 2 || (ref = imap_arg_astring(&args[0])) == NULL) {
        imapd_tagged(s, tag, "BAD %s needs a reference and a pattern", o->lsub ? "LSUB" : "LIST");
        goto out;
    }
    if (nargs > 2) {
        if (o->lsub || nargs != 4 || !imap_arg_is_atom(&args[2], "RETURN")
            || list_return(s, tag, &args[3], o) < 0) {
            if (o->lsub || nargs != 4 || !imap_arg_is_atom(&args[2], "RETURN"))
                imapd_tagged(s, tag, "BAD Unexpected LIST arguments");
            goto out;
        }
    }
    if (args[1].type == IMAP_ARG_LIST && !o->lsub) {
        if (args[1].count == 0 || args[1].count > LIST_PATTERNS_MAX) {
            imapd_tagged(s, tag, "BAD LIST needs 1 to %d patterns", LIST_PATTERNS_MAX);
            goto out;
        }
        o->extended = true;
        for (size_t i = 0; i < args[1].count; i++) {
            if (pattern_text(s, tag, ref, &args[1].list[i], &bufs[i]) < 0)
                goto out;
            patterns[npatterns++] = sb_str(&bufs[i]);
        }
    } else {
        if (pattern_text(s, tag, ref, &args[1], &bufs[0]) < 0)
            goto out;
        patterns[npatterns++] = sb_str(&bufs[0]);
        /* RFC 3501 6.3.8: an empty pattern asks for the separator and the root. */
        if (*imap_arg_astring(&args[1]) == 0 && !o->extended) {
            imapd_printf(s, "* %s (\\Noselect) \".\" \"\"\r\n", o->lsub ? "LSUB" : "LIST");
            imapd_tagged(s, tag, "OK %s completed.", o->lsub ? "Lsub" : "List");
            goto out;
        }
    }
    do_list(s, tag, o, patterns, npatterns);
out:
    for (size_t i = 0; i < LIST_PATTERNS_MAX; i++)
        sb_free(&bufs[i]);
}

/* imapd_cmd_list - LIST [(selection)] reference pattern|(patterns) [RETURN (options)] */
void imapd_cmd_list(struct imapd_session *s, const char *tag, const struct imap_arg *args,
                    size_t nargs, bool uid)
{
    struct list_opts o;

    (void) uid;
    memset(&o, 0, sizeof(o));
    if (nargs > 0 && args[0].type == IMAP_ARG_LIST) {
        o.extended = true;
        for (size_t i = 0; i < args[0].count; i++) {
            const struct imap_arg *x = &args[0].list[i];

            if (imap_arg_is_atom(x, "SUBSCRIBED"))
                o.sel_subscribed = true;
            else if (imap_arg_is_atom(x, "SPECIAL-USE"))
                o.sel_special = true;
            else if (imap_arg_is_atom(x, "RECURSIVEMATCH"))
                o.recursive = true;
            else if (imap_arg_is_atom(x, "REMOTE"))
                continue;               /* no remote mailboxes here */
            else {
                imapd_tagged(s, tag, "BAD Unknown LIST selection option");
                return;
            }
        }
        /* RFC 5258 3.1: RECURSIVEMATCH alone is meaningless. */
        if (o.recursive && !o.sel_subscribed && !o.sel_special) {
            imapd_tagged(s, tag, "BAD RECURSIVEMATCH needs another selection option");
            return;
        }
        args++;
        nargs--;
    }
    list_common(s, tag, &o, args, nargs);
}

/* imapd_cmd_lsub - LSUB reference pattern */
void imapd_cmd_lsub(struct imapd_session *s, const char *tag, const struct imap_arg *args,
                    size_t nargs, bool uid)
{
    struct list_opts o;

    (void) uid;
    memset(&o, 0, sizeof(o));
    o.lsub = true;
    list_common(s, tag, &o, args, nargs);
}

/* ---- APPEND ---- */

/* keyword_valid - an atom usable as a keyword: atom characters, no "\" first */
static bool keyword_valid(const char *k)
{
    if (*k == 0 || strlen(k) > 64)
        return false;
    for (const char *p = k; *p; p++)
        if ((unsigned char) *p <= 0x20 || (unsigned char) *p >= 0x7f
            || strchr("(){%*\"\\]", *p) != NULL)
            return false;
    return true;
}

/* append_flags - APPEND's flag list into MBOX_* bits and keyword names; -1 with err */
static int append_flags(const struct imap_arg *list, uint32_t *flags, const char **kw, size_t *nkw,
                        struct strbuf *err)
{
    static const struct { const char *name; uint32_t bit; } sys[] = {
        {"\\Seen", MBOX_SEEN}, {"\\Answered", MBOX_ANSWERED}, {"\\Flagged", MBOX_FLAGGED},
        {"\\Deleted", MBOX_DELETED}, {"\\Draft", MBOX_DRAFT},
    };

    *flags = 0;
    *nkw = 0;
    for (size_t i = 0; i < list->count; i++) {
        const struct imap_arg *a = &list->list[i];
        size_t  k;

        if (a->type != IMAP_ARG_ATOM) {
            sb_set(err, "Flags must be atoms");
            return -1;
        }
        if (a->str[0] == '\\') {
            for (k = 0; k < sizeof(sys) / sizeof(sys[0]); k++)
                if (strcasecmp(a->str, sys[k].name) == 0)
                    break;
            if (k == sizeof(sys) / sizeof(sys[0])) {
                sb_set(err, "Invalid system flag");
                return -1;
            }
            *flags |= sys[k].bit;
            continue;
        }
        if (!keyword_valid(a->str)) {
            sb_set(err, "Invalid keyword");
            return -1;
        }
        for (k = 0; k < *nkw; k++)
            if (strcasecmp(kw[k], a->str) == 0)
                break;
        if (k < *nkw)
            continue;
        if (*nkw == MBOX_MAX_KEYWORDS) {
            sb_set(err, "Too many keywords");
            return -1;
        }
        kw[(*nkw)++] = a->str;
    }
    return 0;
}

/* imapd_cmd_append - APPEND name [(flags)] [date] literal */
void imapd_cmd_append(struct imapd_session *s, const char *tag, const struct imap_arg *args,
                      size_t nargs, bool uid)
{
    struct strbuf buf = STRBUF_INIT;
    struct strbuf err = STRBUF_INIT;
    const char *kw[MBOX_MAX_KEYWORDS];
    size_t  nkw = 0;
    uint32_t flags = 0;
    time_t  date = 0;
    size_t  i = 1;
    const char *name;
    const struct imap_arg *msg;
    uint32_t uidvalidity, newuid;

    (void) uid;
    if (nargs < 2 || nargs > 4) {
        imapd_tagged(s, tag, "BAD APPEND needs a mailbox name and a message");
        return;
    }
    if (args[i].type == IMAP_ARG_LIST) {
        if (append_flags(&args[i], &flags, kw, &nkw, &err) < 0) {
            imapd_tagged(s, tag, "BAD %s", sb_str(&err));
            goto out;
        }
        i++;
    }
    if (i + 1 < nargs) {
        if (args[i].type != IMAP_ARG_STRING || args[i].literal
            || imap_parse_datetime(args[i].str, &date) < 0) {
            imapd_tagged(s, tag, "BAD Invalid date-time in APPEND");
            goto out;
        }
        i++;
    }
    if (i + 1 != nargs || args[i].type != IMAP_ARG_STRING) {
        imapd_tagged(s, tag, "BAD APPEND needs the message as a literal");
        goto out;
    }
    msg = &args[i];
    if ((name = imapd_mailbox_name(s, tag, &args[0], &buf)) == NULL)
        goto out;
    if (msg->len == 0) {
        imapd_tagged(s, tag, "NO Can't save a zero byte message.");
        goto out;
    }
    if (msg->len > s->srv->set.max_append) {
        imapd_tagged(s, tag, "NO [TOOBIG] Mail size exceeds the limit");
        goto out;
    }
    if (!mstore_exists(s->store, name)) {
        imapd_tagged(s, tag, "NO [TRYCREATE] Mailbox doesn't exist: %s", name);
        goto out;
    }
    if (mstore_append(s->store, name, msg->str, msg->len, flags, kw, nkw, date, &uidvalidity,
                      &newuid, &err) < 0) {
        imapd_store_error(s, tag, "APPEND", errno, &err, true);
        goto out;
    }
    imapd_tagged(s, tag, "OK [APPENDUID %u %u] Append completed.", uidvalidity, newuid);
out:
    sb_free(&buf);
    sb_free(&err);
}

/* ---- IDLE and inotify ---- */

/* sess_of - the session's mailbox state, made on first use */
static struct mbox_sess *sess_of(struct imapd_session *s)
{
    void  **slot = imapd_slot(s, IMAPD_SLOT_MAILBOX);

    if (*slot == NULL) {
        struct mbox_sess *m = xcalloc(1, sizeof(struct mbox_sess));

        m->s = s;
        *slot = m;
    }
    return *slot;
}

/* watch_release - one session less on w; the last one removes the inotify watches */
static void watch_release(struct watch *w)
{
    struct watch **pp;

    if (w == NULL || --w->refs > 0)
        return;
    for (pp = &ino.watches; *pp != NULL; pp = &(*pp)->next) {
        if (*pp == w) {
            *pp = w->next;
            break;
        }
    }
    /* Another watch on the same directory shares the wd: keep it then. */
    for (struct watch *o = ino.watches; o != NULL; o = o->next) {
        if (o->wd_new == w->wd_new)
            w->wd_new = -1;
        if (o->wd_cur == w->wd_cur)
            w->wd_cur = -1;
    }
    if (w->wd_new >= 0)
        inotify_rm_watch(ino.fd, w->wd_new);
    if (w->wd_cur >= 0)
        inotify_rm_watch(ino.fd, w->wd_cur);
    free(w->path);
    free(w);
}

/* wake_idlers - sync and notify every idling session whose folder changed */
static void wake_idlers(void)
{
    struct mbox_sess *next;

    for (struct mbox_sess *m = ino.idlers; m != NULL; m = next) {
        next = m->next;
        if (m->watch != NULL && m->watch->dirty)
            imapd_send_updates(m->s, true);
    }
    for (struct watch *w = ino.watches; w != NULL; w = w->next)
        w->dirty = false;
}

/* ino_read - inotify events: mark the watches they concern */
static void ino_read(evutil_socket_t fd, short what, void *arg)
{
    char    buf[4096] __attribute__((aligned(__alignof__(struct inotify_event))));
    ssize_t n;

    (void) what;
    (void) arg;
    while ((n = read((int) fd, buf, sizeof(buf))) > 0) {
        for (char *p = buf; p < buf + n;) {
            const struct inotify_event *ev = (const struct inotify_event *) p;

            for (struct watch *w = ino.watches; w != NULL; w = w->next)
                if (ev->wd == w->wd_new || ev->wd == w->wd_cur || (ev->mask & IN_Q_OVERFLOW))
                    w->dirty = true;
            p += sizeof(*ev) + ev->len;
        }
    }
    wake_idlers();
}

/* ino_open - the process's inotify descriptor; false when unavailable */
static bool ino_open(struct imapd_session *s)
{
    if (ino.fd >= 0)
        return true;
    if (ino.failed)
        return false;
    ino.fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
    if (ino.fd < 0) {
        msg_warn("inotify_init1: %m; IDLE clients see changes only at their next command");
        ino.failed = true;
        return false;
    }
    ino.ev = event_new(s->srv->svc->base, ino.fd, EV_READ | EV_PERSIST, ino_read, NULL);
    if (ino.ev == NULL || event_add(ino.ev, NULL) < 0)
        msg_fatal("event_new: out of memory");
    return true;
}

/* watch_get - the shared watch of folder name of the session's store; NULL if impossible */
static struct watch *watch_get(struct imapd_session *s, const char *name)
{
    struct strbuf path = STRBUF_INIT;
    struct strbuf sub = STRBUF_INIT;
    struct watch *w;
    const uint32_t mask = IN_CREATE | IN_MOVED_TO | IN_MOVED_FROM | IN_DELETE | IN_ATTRIB
        | IN_DONT_FOLLOW | IN_ONLYDIR;

    if (!ino_open(s))
        return NULL;
    mstore_folder_path(s->store, name, &path);
    for (w = ino.watches; w != NULL; w = w->next) {
        if (strcmp(w->path, sb_str(&path)) == 0) {
            w->refs++;
            sb_free(&path);
            return w;
        }
    }
    w = xcalloc(1, sizeof(*w));
    w->path = sb_detach(&path);
    w->refs = 1;
    sb_printf(&sub, "%s/new", w->path);
    w->wd_new = inotify_add_watch(ino.fd, sb_str(&sub), mask);
    sb_reset(&sub);
    sb_printf(&sub, "%s/cur", w->path);
    w->wd_cur = inotify_add_watch(ino.fd, sb_str(&sub), mask);
    if (w->wd_new < 0 || w->wd_cur < 0)
        msg_warn("inotify_add_watch %s: %m; IDLE sees changes there only at the next command",
                 w->path);
    sb_free(&sub);
    w->next = ino.watches;
    ino.watches = w;
    return w;
}

/* imapd_idle_stop - stop idling: off the list, watch released */
void imapd_idle_stop(struct imapd_session *s)
{
    void  **slot = imapd_slot(s, IMAPD_SLOT_MAILBOX);
    struct mbox_sess *m = *slot;

    if (m == NULL)
        return;
    if (m->prev)
        m->prev->next = m->next;
    else if (ino.idlers == m)
        ino.idlers = m->next;
    if (m->next)
        m->next->prev = m->prev;
    watch_release(m->watch);
    free(m);
    *slot = NULL;
}

/* idle_line - the line that ends IDLE */
static void idle_line(struct imapd_session *s, const char *line, size_t len)
{
    const char *tag = imapd_current_tag(s);

    imapd_idle_stop(s);
    if (line != NULL && len == 4 && strncasecmp(line, "DONE", 4) == 0)
        imapd_tagged(s, tag, "OK Idle completed.");
    else
        imapd_tagged(s, tag, "BAD Expected DONE.");
    imapd_command_done(s);
}

/* imapd_cmd_idle - IDLE (RFC 2177): updates as they happen until "DONE" */
void imapd_cmd_idle(struct imapd_session *s, const char *tag, const struct imap_arg *args,
                    size_t nargs, bool uid)
{
    struct mbox_sess *m;

    (void) args;
    (void) uid;
    if (nargs != 0) {
        imapd_tagged(s, tag, "BAD IDLE takes no arguments");
        return;
    }
    if (s->mbox != NULL)
        imapd_send_updates(s, true);
    imapd_printf(s, "+ idling\r\n");
    m = sess_of(s);
    if (s->mbox != NULL)
        m->watch = watch_get(s, s->mbox->name);
    m->prev = NULL;
    m->next = ino.idlers;
    if (m->next)
        m->next->prev = m;
    ino.idlers = m;
    imapd_read_line(s, idle_line);
}

/* ---- QUOTA ---- */

/* send_quota - "* QUOTA "User quota" (STORAGE used limit)"; -1 with errno and err */
static int send_quota(struct imapd_session *s, struct strbuf *err)
{
    uint64_t bytes, count, limit;

    if (mstore_quota(s->store, &bytes, &count, &limit, err) < 0)
        return -1;
    if (limit == 0)
        return 0;
    imapd_printf(s, "* QUOTA \"%s\" (STORAGE %llu %llu)\r\n", QUOTA_ROOT,
                 (unsigned long long) ((bytes + 1023) / 1024), (unsigned long long) (limit / 1024));
    return 0;
}

/* has_quota - the user has a limit (the root exists) */
static bool has_quota(struct imapd_session *s)
{
    uint64_t bytes, count, limit = 0;
    struct strbuf err = STRBUF_INIT;
    bool    ok = mstore_quota(s->store, &bytes, &count, &limit, &err) == 0 && limit > 0;

    sb_free(&err);
    return ok;
}

/* imapd_cmd_getquotaroot - GETQUOTAROOT name */
void imapd_cmd_getquotaroot(struct imapd_session *s, const char *tag, const struct imap_arg *args,
                            size_t nargs, bool uid)
{
    struct strbuf buf = STRBUF_INIT;
    struct strbuf err = STRBUF_INIT;
    struct strbuf out = STRBUF_INIT;
    const char *name;

    (void) uid;
    if (nargs != 1) {
        imapd_tagged(s, tag, "BAD GETQUOTAROOT needs a mailbox name");
        return;
    }
    if ((name = imapd_mailbox_name(s, tag, &args[0], &buf)) == NULL)
        goto out;
    if (!mstore_exists(s->store, name)) {
        imapd_tagged(s, tag, "NO [NONEXISTENT] Mailbox doesn't exist: %s", name);
        goto out;
    }
    sb_puts(&out, "* QUOTAROOT ");
    write_name(&out, name);
    if (has_quota(s))
        sb_printf(&out, " \"%s\"", QUOTA_ROOT);
    sb_puts(&out, "\r\n");
    imapd_write(s, sb_str(&out), sb_len(&out));
    if (send_quota(s, &err) < 0)
        imapd_store_error(s, tag, "GETQUOTAROOT", errno, &err, false);
    else
        imapd_tagged(s, tag, "OK Getquotaroot completed.");
out:
    sb_free(&buf);
    sb_free(&err);
    sb_free(&out);
}

/* imapd_cmd_getquota - GETQUOTA root */
void imapd_cmd_getquota(struct imapd_session *s, const char *tag, const struct imap_arg *args,
                        size_t nargs, bool uid)
{
    struct strbuf err = STRBUF_INIT;
    const char *root;

    (void) uid;
    if (nargs != 1 || (root = imap_arg_astring(&args[0])) == NULL) {
        imapd_tagged(s, tag, "BAD GETQUOTA needs a quota root");
        return;
    }
    if (strcmp(root, QUOTA_ROOT) != 0 || !has_quota(s)) {
        imapd_tagged(s, tag, "NO [NONEXISTENT] Quota root does not exist.");
        return;
    }
    if (send_quota(s, &err) < 0)
        imapd_store_error(s, tag, "GETQUOTA", errno, &err, false);
    else
        imapd_tagged(s, tag, "OK Getquota completed.");
    sb_free(&err);
}

/* imapd_cmd_setquota - SETQUOTA: limits come from the user database, not from clients */
void imapd_cmd_setquota(struct imapd_session *s, const char *tag, const struct imap_arg *args,
                        size_t nargs, bool uid)
{
    (void) args;
    (void) nargs;
    (void) uid;
    imapd_tagged(s, tag, "NO [NOPERM] Quota can't be changed over IMAP.");
}
