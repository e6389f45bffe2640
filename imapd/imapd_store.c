/*
 * imapd_store - the commands that change messages: STORE, COPY, MOVE,
 * EXPUNGE and their UID forms (RFC 3501 6.4.3, 6.4.6-6.4.8, RFC 4315 UIDPLUS,
 * RFC 6851 MOVE, RFC 7162 CONDSTORE UNCHANGEDSINCE), and two helpers the
 * other command files share.
 *
 * Interface (imapd.h): imapd_cmd_store, imapd_cmd_copy, imapd_cmd_move,
 * imapd_cmd_expunge; imapd_parse_flags (STORE and APPEND), imapd_resolve_set
 * (every command that takes a sequence set).
 *
 * Responses follow Dovecot: "OK [MODIFIED set] Conditional store failed.",
 * "OK [COPYUID v src dst] Copy completed.", for MOVE an untagged
 * "* OK [COPYUID ...] Moved UIDs." before the EXPUNGEs. Messages another
 * session expunged meanwhile are skipped by STORE (as Dovecot does) and make
 * COPY/MOVE fail with NO [EXPUNGEISSUED] before anything is copied. A COPY
 * that fails half way (quota, disk) removes what it already copied, so the
 * destination never keeps half a set.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "log.h"
#include "mem.h"
#include "strbuf.h"
#include "imap_parse.h"
#include "mailstore.h"
#include "imapd.h"

#define FLAGS_TOO_MANY  (-2)            /* parse_flag_items: keyword table full (NO, not BAD) */

/* system_flag - MBOX_* bit of a "\Name" flag, 0 if unknown */
static uint32_t system_flag(const char *name)
{
    static const struct { const char *name; uint32_t bit; } tab[] = {
        { "\\Seen", MBOX_SEEN }, { "\\Answered", MBOX_ANSWERED }, { "\\Flagged", MBOX_FLAGGED },
        { "\\Deleted", MBOX_DELETED }, { "\\Draft", MBOX_DRAFT },
    };

    for (size_t i = 0; i < sizeof(tab) / sizeof(tab[0]); i++)
        if (strcasecmp(name, tab[i].name) == 0)
            return tab[i].bit;
    return 0;
}

/* keyword_valid - a flag-keyword is an atom: no atom-specials, no 8-bit, bounded */
static bool keyword_valid(const char *s, size_t len)
{
    if (len == 0 || len > 255 || strlen(s) != len)
        return false;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char) s[i];
        if (c <= 0x20 || c >= 0x7f || strchr("(){%*\"\\]", c) != NULL)
            return false;
    }
    return true;
}

/* parse_flag_items - items[0..n) into flag and keyword bits; -1 (BAD) or FLAGS_TOO_MANY with err */
static int parse_flag_items(struct imapd_session *s, const struct imap_arg *items, size_t n, bool create,
                            uint32_t *flags, uint32_t *keywords, struct strbuf *err)
{
    *flags = 0;
    *keywords = 0;
    for (size_t i = 0; i < n; i++) {
        const struct imap_arg *a = &items[i];

        if (a->type != IMAP_ARG_ATOM) {
            sb_set(err, "Flags list contains non-atoms.");
            return -1;
        }
        if (a->str[0] == '\\') {
            uint32_t bit = system_flag(a->str);

            if (bit == 0) {
                sb_reset(err);
                sb_printf(err, "Invalid system flag %.64s", a->str);
                return -1;
            }
            *flags |= bit;
            continue;
        }
        if (!keyword_valid(a->str, a->len)) {
            sb_reset(err);
            sb_printf(err, "Invalid keyword %.64s", a->str);
            return -1;
        }
        if (s->mbox == NULL)
            continue;                   /* validated only: no view to number keywords in */
        int k = mbox_keyword_index(s->mbox, a->str, create);
        if (k >= 0 && k < MBOX_MAX_KEYWORDS) {
            *keywords |= 1u << k;
        } else if (create) {
            sb_reset(err);
            sb_printf(err, "Too many keywords in mailbox (at most %d)", MBOX_MAX_KEYWORDS);
            return FLAGS_TOO_MANY;
        }
        /* not creating (-FLAGS): a keyword nobody has is on no message */
    }
    return 0;
}

/* imapd_parse_flags - a flag list argument (list or single atom) into bits; -1 with err */
int imapd_parse_flags(struct imapd_session *s, const struct imap_arg *arg, bool create, uint32_t *flags,
                      uint32_t *keywords, struct strbuf *err)
{
    int r;

    if (arg->type == IMAP_ARG_LIST)
        r = parse_flag_items(s, arg->list, arg->count, create, flags, keywords, err);
    else
        r = parse_flag_items(s, arg, 1, create, flags, keywords, err);
    return r < 0 ? -1 : 0;
}

struct span { size_t lo, hi; };         /* 0-based message indexes, inclusive */

/* span_cmp - qsort order of spans by start */
static int span_cmp(const void *a, const void *b)
{
    const struct span *x = a, *y = b;

    return x->lo < y->lo ? -1 : x->lo > y->lo;
}

/* uid_lower_bound - first index whose uid is >= uid */
static size_t uid_lower_bound(const struct mbox *mb, uint32_t uid)
{
    size_t lo = 0, hi = mb->count;

    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (mb->msgs[mid].uid < uid)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

/*
 * imapd_resolve_set - indexes named by a sequence set. The ranges become index
 * spans that are sorted and merged, so a set of thousands of overlapping
 * ranges costs no more than one pass over the view.
 */
int imapd_resolve_set(struct imapd_session *s, const char *text, bool uid, size_t **idx, size_t *n,
                      struct strbuf *err)
{
    struct mbox *mb = s->mbox;
    struct imap_seqset set = { NULL, 0 };
    size_t count = mb != NULL ? mb->count : 0;
    struct span *sp;
    size_t nsp = 0;

    *idx = NULL;
    *n = 0;
    if (imap_seqset_parse(text, &set, err) < 0)
        return -1;
    if (mb == NULL) {
        imap_seqset_free(&set);
        sb_set(err, "No mailbox selected");
        return -1;
    }
    uint32_t star = uid ? (count > 0 ? mb->msgs[count - 1].uid : 0) : (uint32_t) count;
    sp = xreallocarray(NULL, set.count ? set.count : 1, sizeof(*sp));
    for (size_t r = 0; r < set.count; r++) {
        uint32_t lo = set.ranges[r].lo == IMAP_SEQ_STAR ? star : set.ranges[r].lo;
        uint32_t hi = set.ranges[r].hi == IMAP_SEQ_STAR ? star : set.ranges[r].hi;

        if (lo > hi) {
            uint32_t t = lo;
            lo = hi;
            hi = t;
        }
        if (!uid) {
            /* RFC 3501 9: a number beyond EXISTS is invalid; Dovecot answers BAD */
            if (lo == 0 || hi > count) {
                sb_set(err, "Invalid messageset");
                free(sp);
                imap_seqset_free(&set);
                return -1;
            }
            sp[nsp].lo = lo - 1;
            sp[nsp].hi = hi - 1;
            nsp++;
        } else {
            if (hi == 0)
                continue;
            size_t a = uid_lower_bound(mb, lo);
            size_t b = uid_lower_bound(mb, hi == UINT32_MAX ? hi : hi + 1);
            if (hi == UINT32_MAX && b < count && mb->msgs[b].uid == hi)
                b++;
            if (a < b) {
                sp[nsp].lo = a;
                sp[nsp].hi = b - 1;
                nsp++;
            }
        }
    }
    imap_seqset_free(&set);
    qsort(sp, nsp, sizeof(*sp), span_cmp);
    size_t total = 0, last_end = 0;
    bool any = false;
    for (size_t i = 0; i < nsp; i++) {
        size_t lo = sp[i].lo;
        if (any && lo < last_end)
            lo = last_end;
        if (sp[i].hi + 1 > lo)
            total += sp[i].hi + 1 - lo;
        if (!any || sp[i].hi + 1 > last_end)
            last_end = sp[i].hi + 1;
        any = true;
    }
    size_t *out = xreallocarray(NULL, total ? total : 1, sizeof(*out));
    size_t k = 0;
    last_end = 0;
    any = false;
    for (size_t i = 0; i < nsp; i++) {
        size_t lo = sp[i].lo;
        if (any && lo < last_end)
            lo = last_end;
        for (size_t j = lo; j <= sp[i].hi; j++)
            out[k++] = j;
        if (!any || sp[i].hi + 1 > last_end)
            last_end = sp[i].hi + 1;
        any = true;
    }
    free(sp);
    *idx = out;
    *n = k;
    return 0;
}

/* need_selected - the session has a mailbox selected; else tagged BAD */
static bool need_selected(struct imapd_session *s, const char *tag)
{
    if (s->state == IMAPD_SELECTED && s->mbox != NULL)
        return true;
    imapd_tagged(s, tag, "BAD No mailbox selected.");
    return false;
}

/* commit_view - mbox_commit, logging a failure (the change itself is on disk already) */
static bool commit_view(struct imapd_session *s)
{
    struct strbuf err = STRBUF_INIT;
    bool ok = mbox_commit(s->mbox, &err) == 0;

    if (!ok)
        msg_warn("%s: %s: cannot write the index: %s", s->user ? s->user : "?", s->mbox->name,
                 sb_str(&err));
    sb_free(&err);
    return ok;
}

/* parse_store_item - "[+-]FLAGS[.SILENT]" */
static bool parse_store_item(const char *item, enum mbox_flag_op *op, bool *silent)
{
    *op = MBOX_FLAGS_SET;
    if (*item == '+') {
        *op = MBOX_FLAGS_ADD;
        item++;
    } else if (*item == '-') {
        *op = MBOX_FLAGS_REMOVE;
        item++;
    }
    if (strncasecmp(item, "FLAGS", 5) != 0)
        return false;
    *silent = strcasecmp(item + 5, ".SILENT") == 0;
    return *silent || item[5] == '\0';
}

/* write_store_fetch - the untagged FETCH that reports a message's new flags after STORE */
static void write_store_fetch(struct imapd_session *s, size_t i, bool with_flags, bool uid)
{
    const struct mbox_msg *m = &s->mbox->msgs[i];
    struct strbuf out = STRBUF_INIT;
    const char *sep = "";

    sb_printf(&out, "* %zu FETCH (", i + 1);
    if (uid) {
        sb_printf(&out, "UID %u", m->uid);
        sep = " ";
    }
    if (with_flags) {
        sb_printf(&out, "%sFLAGS ", sep);
        imapd_write_flags(s, &out, m);
        sep = " ";
    }
    if (s->condstore)
        sb_printf(&out, "%sMODSEQ (%llu)", sep, (unsigned long long) m->modseq);
    sb_puts(&out, ")\r\n");
    imapd_write(s, out.data, out.len);
    sb_free(&out);
}

/*
 * imapd_cmd_store - STORE set [(UNCHANGEDSINCE n)] [+-]FLAGS[.SILENT] flags.
 * The flags may be one list or bare atoms (RFC 3501 store-att-flags).
 */
void imapd_cmd_store(struct imapd_session *s, const char *tag, const struct imap_arg *args, size_t nargs,
                     bool uid)
{
    struct strbuf err = STRBUF_INIT;
    enum mbox_flag_op op;
    bool silent, have_unch = false;
    uint64_t unch = 0;
    uint32_t flags, keywords;
    size_t p = 1, *idx = NULL, n = 0;

    if (!need_selected(s, tag))
        return;
    if (nargs < 3 || args[0].type != IMAP_ARG_ATOM) {
        imapd_tagged(s, tag, "BAD Invalid arguments.");
        return;
    }
    if (args[1].type == IMAP_ARG_LIST) {
        const struct imap_arg *mods = args[1].list;

        for (size_t j = 0; j < args[1].count; j += 2) {
            if (j + 1 >= args[1].count || mods[j].type != IMAP_ARG_ATOM) {
                imapd_tagged(s, tag, "BAD Invalid STORE modifiers.");
                return;
            }
            if (!imap_arg_is_atom(&mods[j], "UNCHANGEDSINCE")) {
                imapd_tagged(s, tag, "BAD Unknown STORE modifier");
                return;
            }
            if (imap_arg_number(&mods[j + 1], INT64_MAX, &unch) < 0) {
                imapd_tagged(s, tag, "BAD Invalid modseq");
                return;
            }
            have_unch = true;
        }
        p = 2;
    }
    if (nargs < p + 2 || args[p].type != IMAP_ARG_ATOM || !parse_store_item(args[p].str, &op, &silent)) {
        imapd_tagged(s, tag, "BAD Invalid arguments.");
        return;
    }
    const struct imap_arg *fl = &args[p + 1];
    size_t nfl = nargs - p - 1;
    if (nfl == 1 && fl->type == IMAP_ARG_LIST) {
        nfl = fl->count;
        fl = fl->list;
    }
    if (s->readonly) {
        imapd_tagged(s, tag, have_unch ? "NO CONDSTORE failed: Mailbox is read-only."
                                       : "NO Mailbox is read-only.");
        return;
    }
    if (imapd_resolve_set(s, args[0].str, uid, &idx, &n, &err) < 0) {
        imapd_tagged(s, tag, "BAD Error in IMAP command STORE: %s", sb_str(&err));
        sb_free(&err);
        return;
    }
    /* validate everything before creating keywords, so a refused STORE leaves no trace */
    int r = parse_flag_items(s, fl, nfl, false, &flags, &keywords, &err);
    if (r == 0 && op != MBOX_FLAGS_REMOVE)
        r = parse_flag_items(s, fl, nfl, true, &flags, &keywords, &err);
    if (r < 0) {
        imapd_tagged(s, tag, "%s %s", r == FLAGS_TOO_MANY ? "NO" : "BAD", sb_str(&err));
        free(idx);
        sb_free(&err);
        return;
    }
    if (have_unch)
        s->condstore = true;            /* RFC 7162 3.1: using UNCHANGEDSINCE enables CONDSTORE */

    uint32_t *modified = xreallocarray(NULL, n ? n : 1, sizeof(*modified));
    size_t nmodified = 0;
    bool failed = false;
    for (size_t k = 0; k < n && !failed; k++) {
        size_t i = idx[k];
        struct mbox_msg *m = &s->mbox->msgs[i];
        uint64_t before = m->modseq;

        if (m->gone)
            continue;                   /* expunged meanwhile: nothing to change (Dovecot) */
        if (have_unch && (unch == 0 || m->modseq > unch)) {
            /* UNCHANGEDSINCE 0 always fails: every message has a modseq >= 1 (RFC 7162 3.1.3) */
            modified[nmodified++] = uid ? m->uid : (uint32_t) (i + 1);
            continue;
        }
        sb_reset(&err);
        r = mbox_store(s->mbox, i, op, flags, keywords, have_unch ? unch : 0, &err);
        if (r == 1) {
            modified[nmodified++] = uid ? m->uid : (uint32_t) (i + 1);
            continue;
        }
        if (r < 0) {
            if (errno == ENOENT)
                continue;
            msg_warn("%s: %s: STORE uid %u: %s", s->user ? s->user : "?", s->mbox->name, m->uid,
                     sb_str(&err));
            failed = true;
            break;
        }
        m = &s->mbox->msgs[i];
        if (!silent)
            write_store_fetch(s, i, true, uid);
        else if (s->condstore && m->modseq != before)
            write_store_fetch(s, i, false, uid);    /* RFC 7162 3.1.3: MODSEQ even when .SILENT */
    }
    commit_view(s);
    if (failed) {
        imapd_tagged(s, tag, "NO [SERVERBUG] Store failed: %s", sb_str(&err));
    } else if (nmodified > 0) {
        struct strbuf set = STRBUF_INIT;

        imap_seqset_format(&set, modified, nmodified);
        imapd_tagged(s, tag, "OK [MODIFIED %s] Conditional store failed.", sb_str(&set));
        sb_free(&set);
    } else {
        imapd_tagged(s, tag, "OK Store completed.");
    }
    free(modified);
    free(idx);
    sb_free(&err);
}

/* rollback_copies - remove the messages a failed COPY already put into dest */
static void rollback_copies(struct imapd_session *s, const char *dest, const uint32_t *uids, size_t n)
{
    struct strbuf err = STRBUF_INIT;
    struct mbox_changes ch;
    struct mbox *mb;

    if (n == 0)
        return;
    mb = mbox_open(s->store, dest, false, &err);
    if (mb == NULL) {
        msg_warn("%s: COPY to %s failed half way and its copies stay: %s", s->user ? s->user : "?", dest,
                 sb_str(&err));
        sb_free(&err);
        return;
    }
    for (size_t k = 0; k < n; k++) {
        uint32_t seq = mbox_seq_of_uid(mb, uids[k]);
        if (seq > 0)
            (void) mbox_store(mb, seq - 1, MBOX_FLAGS_ADD, MBOX_DELETED, 0, 0, &err);
    }
    memset(&ch, 0, sizeof(ch));
    if (mbox_expunge(mb, uids, n, &ch, &err) < 0 || mbox_commit(mb, &err) < 0)
        msg_warn("%s: COPY to %s failed half way, removing its copies failed: %s",
                 s->user ? s->user : "?", dest, sb_str(&err));
    mbox_changes_free(&ch);
    mbox_close(mb);
    sb_free(&err);
}

/*
 * copy_messages - COPY and MOVE: copy the set into the folder in args[1].
 * On success fills the source and destination UID lists (same order) and the
 * destination's uidvalidity and returns true; otherwise it has sent the tagged NO/BAD.
 */
static bool copy_messages(struct imapd_session *s, const char *tag, const struct imap_arg *args,
                          size_t nargs, bool uid, const char *cmd, size_t **idx_out, size_t *n_out,
                          uint32_t **src_out, uint32_t **dst_out, uint32_t *uidvalidity)
{
    struct strbuf err = STRBUF_INIT;
    size_t *idx = NULL, n = 0;
    const char *dest;

    *idx_out = NULL;
    *src_out = *dst_out = NULL;
    *n_out = 0;
    *uidvalidity = 0;
    if (nargs != 2 || args[0].type != IMAP_ARG_ATOM || (dest = imap_arg_astring(&args[1])) == NULL) {
        imapd_tagged(s, tag, "BAD Invalid arguments.");
        return false;
    }
    if (imapd_resolve_set(s, args[0].str, uid, &idx, &n, &err) < 0) {
        imapd_tagged(s, tag, "BAD Error in IMAP command %s: %s", cmd, sb_str(&err));
        sb_free(&err);
        return false;
    }
    if (!mstore_name_valid(dest, &err)) {
        imapd_tagged(s, tag, "NO %s", sb_str(&err));
        goto fail;
    }
    if (!mstore_exists(s->store, dest)) {
        sb_reset(&err);
        sb_printf(&err, "Mailbox doesn't exist: %s", dest);
        imapd_store_error(s, tag, cmd, ENOENT, &err, true);
        goto fail;
    }
    for (size_t k = 0; k < n; k++) {
        if (s->mbox->msgs[idx[k]].gone) {
            imapd_tagged(s, tag, "NO [EXPUNGEISSUED] Some of the requested messages no longer exist.");
            goto fail;
        }
    }
    uint32_t *src = xreallocarray(NULL, n ? n : 1, sizeof(*src));
    uint32_t *dst = xreallocarray(NULL, n ? n : 1, sizeof(*dst));
    for (size_t k = 0; k < n; k++) {
        uint32_t v = 0, du = 0;

        sb_reset(&err);
        if (mbox_copy(s->mbox, idx[k], dest, &v, &du, &err) < 0) {
            int e = errno;

            rollback_copies(s, dest, dst, k);
            if (e == ENOENT && mstore_exists(s->store, dest))
                imapd_tagged(s, tag, "NO [EXPUNGEISSUED] Some of the requested messages no longer exist.");
            else
                imapd_store_error(s, tag, cmd, e, &err, true);
            free(src);
            free(dst);
            goto fail;
        }
        src[k] = s->mbox->msgs[idx[k]].uid;
        dst[k] = du;
        *uidvalidity = v;
    }
    sb_free(&err);
    *idx_out = idx;
    *n_out = n;
    *src_out = src;
    *dst_out = dst;
    return true;

fail:
    free(idx);
    sb_free(&err);
    return false;
}

/* format_copyuid - "COPYUID v src dst"; src is ascending (set order) and so is dst (new UIDs) */
static void format_copyuid(struct strbuf *out, uint32_t uidvalidity, const uint32_t *src,
                           const uint32_t *dst, size_t n)
{
    sb_printf(out, "COPYUID %u ", uidvalidity);
    imap_seqset_format(out, src, n);
    sb_putc(out, ' ');
    imap_seqset_format(out, dst, n);
}

/* imapd_cmd_copy - COPY / UID COPY set mailbox (RFC 3501 6.4.7, UIDPLUS COPYUID) */
void imapd_cmd_copy(struct imapd_session *s, const char *tag, const struct imap_arg *args, size_t nargs,
                    bool uid)
{
    size_t *idx, n;
    uint32_t *src, *dst, v;

    if (!need_selected(s, tag))
        return;
    if (!copy_messages(s, tag, args, nargs, uid, "COPY", &idx, &n, &src, &dst, &v))
        return;
    if (n == 0) {
        imapd_tagged(s, tag, "OK No messages found.");
    } else {
        struct strbuf code = STRBUF_INIT;

        format_copyuid(&code, v, src, dst, n);
        imapd_tagged(s, tag, "OK [%s] Copy completed.", sb_str(&code));
        sb_free(&code);
    }
    free(idx);
    free(src);
    free(dst);
}

/* uid_cmp - qsort order of UIDs */
static int uid_cmp(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *) a, y = *(const uint32_t *) b;

    return x < y ? -1 : x > y;
}

/* expunge_uids - mark uids \Deleted and expunge exactly them; announces the EXPUNGEs */
static int expunge_uids(struct imapd_session *s, uint32_t *uids, size_t n, bool mark, struct strbuf *err)
{
    struct mbox_changes ch;
    int r;

    qsort(uids, n, sizeof(*uids), uid_cmp);
    if (mark) {
        for (size_t k = 0; k < n; k++) {
            uint32_t seq = mbox_seq_of_uid(s->mbox, uids[k]);
            if (seq > 0 && mbox_store(s->mbox, seq - 1, MBOX_FLAGS_ADD, MBOX_DELETED, 0, 0, err) < 0 &&
                errno != ENOENT)
                return -1;
        }
    }
    memset(&ch, 0, sizeof(ch));
    r = mbox_expunge(s->mbox, uids, n, &ch, err);
    if (r == 0)
        imapd_send_expunged(s, &ch);
    mbox_changes_free(&ch);
    return r;
}

/* imapd_cmd_move - MOVE / UID MOVE (RFC 6851): COPYUID untagged, then the EXPUNGEs */
void imapd_cmd_move(struct imapd_session *s, const char *tag, const struct imap_arg *args, size_t nargs,
                    bool uid)
{
    struct strbuf err = STRBUF_INIT;
    size_t *idx, n;
    uint32_t *src, *dst, v;

    if (!need_selected(s, tag))
        return;
    if (s->readonly) {
        imapd_tagged(s, tag, "NO Mailbox is read-only.");
        return;
    }
    if (!copy_messages(s, tag, args, nargs, uid, "MOVE", &idx, &n, &src, &dst, &v))
        return;
    if (n == 0) {
        imapd_tagged(s, tag, "OK No messages found.");
        goto done;
    }
    struct strbuf code = STRBUF_INIT;
    format_copyuid(&code, v, src, dst, n);
    imapd_printf(s, "* OK [%s] Moved UIDs.\r\n", sb_str(&code));
    sb_free(&code);
    int r = expunge_uids(s, src, n, true, &err);
    commit_view(s);
    if (r < 0) {
        /* the copies exist; the originals could not be removed */
        msg_warn("%s: %s: MOVE could not expunge the originals: %s", s->user ? s->user : "?",
                 s->mbox->name, sb_str(&err));
        imapd_tagged(s, tag, "NO [SERVERBUG] Messages copied but not removed: %s", sb_str(&err));
    } else {
        imapd_tagged(s, tag, "OK Move completed.");
    }
done:
    free(idx);
    free(src);
    free(dst);
    sb_free(&err);
}

/* imapd_cmd_expunge - EXPUNGE (uid false, no arguments) and UID EXPUNGE set (RFC 4315) */
void imapd_cmd_expunge(struct imapd_session *s, const char *tag, const struct imap_arg *args, size_t nargs,
                       bool uid)
{
    struct strbuf err = STRBUF_INIT;
    struct mbox_changes ch;
    int r;

    if (!need_selected(s, tag))
        return;
    if (uid ? (nargs != 1 || args[0].type != IMAP_ARG_ATOM) : nargs != 0) {
        imapd_tagged(s, tag, "BAD Invalid arguments.");
        return;
    }
    if (s->readonly) {
        imapd_tagged(s, tag, "NO Mailbox is read-only.");
        return;
    }
    memset(&ch, 0, sizeof(ch));
    if (uid) {
        size_t *idx, n;

        if (imapd_resolve_set(s, args[0].str, true, &idx, &n, &err) < 0) {
            imapd_tagged(s, tag, "BAD Error in IMAP command UID EXPUNGE: %s", sb_str(&err));
            sb_free(&err);
            return;
        }
        uint32_t *uids = xreallocarray(NULL, n ? n : 1, sizeof(*uids));
        for (size_t k = 0; k < n; k++)
            uids[k] = s->mbox->msgs[idx[k]].uid;
        free(idx);
        r = n == 0 ? 0 : mbox_expunge(s->mbox, uids, n, &ch, &err);
        free(uids);
    } else {
        r = mbox_expunge(s->mbox, NULL, 0, &ch, &err);
    }
    if (r == 0)
        imapd_send_expunged(s, &ch);
    mbox_changes_free(&ch);
    commit_view(s);
    if (r < 0) {
        msg_warn("%s: %s: EXPUNGE: %s", s->user ? s->user : "?", s->mbox->name, sb_str(&err));
        imapd_tagged(s, tag, "NO [SERVERBUG] Expunge failed: %s", sb_str(&err));
    } else {
        imapd_tagged(s, tag, "OK Expunge completed.");
    }
    sb_free(&err);
}
