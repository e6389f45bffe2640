/*
 * imapd_fetch - FETCH and UID FETCH (RFC 3501 6.4.5, 7.4.2; RFC 7162
 * CONDSTORE: the MODSEQ item and the CHANGEDSINCE modifier).
 *
 * Interface (imapd.h): imapd_cmd_fetch, imapd_write_flags.
 *
 * The items are parsed and checked before any message is touched (a bad item
 * or section is BAD and nothing is sent). Each item says what it needs: the
 * view only (FLAGS UID RFC822.SIZE INTERNALDATE MODSEQ), the header block
 * (ENVELOPE, BODY[HEADER...], RFC822.HEADER) or the whole file (BODY,
 * BODYSTRUCTURE, other sections); imapd_message.c reads it, and serves a
 * FETCH that wants only the ENVELOPE of the header from the header cache. A
 * message's file is read at most once per FETCH and parsed once (lib/mime.h);
 * bodies go out as literals in CRLF form.
 *
 * Flow control: responses are queued message by message; when more than
 * IMAPD_OUTPUT_HIGH bytes wait for the client, the command suspends and goes
 * on from the same message when the output has drained, so a FETCH 1:*
 * BODY[] of a big mailbox holds at most about one message in memory.
 *
 * A message whose file another session expunged meanwhile is left out when an
 * item needs the file (items from the view are still sent), and the tagged
 * reply is "OK [EXPUNGEISSUED] Some messages were already expunged." as
 * Dovecot answers (RFC 2180 4.1.3, RFC 5530).
 */
#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"
#include "mem.h"
#include "strbuf.h"
#include "imap_parse.h"
#include "mailstore.h"
#include "mime.h"
#include "imapd.h"

#define FETCH_MAX_ITEMS     64
#define FETCH_MAX_PART_NUM  100000

enum fetch_need { NEED_VIEW, NEED_HEADER, NEED_FILE };

enum fetch_kind {
    FI_FLAGS, FI_UID, FI_INTERNALDATE, FI_SIZE, FI_ENVELOPE, FI_BODY, FI_BODYSTRUCTURE, FI_MODSEQ,
    FI_SECTION,
};

struct fetch_item {
    enum fetch_kind kind;
    enum fetch_need need;
    char   *section;                    /* FI_SECTION: canonical text for mime_section() */
    char   *name;                       /* FI_SECTION: response name ("BODY[1.MIME]<0>", "RFC822") */
    bool    peek;                       /* does not set \Seen */
    bool    partial;
    uint64_t offset, count;
};

struct fetch_ctx {
    char   *tag;
    bool    uid;
    struct fetch_item *items;
    size_t  nitems;
    enum fetch_need need;
    bool    want_flags, want_uid, want_modseq, set_seen;
    bool    envelope_only;              /* of the header, only ENVELOPE is wanted */
    bool    changedsince_set;
    uint64_t changedsince;
    size_t *idx, n, pos;
    bool    suspended, expunged_skipped;
};

/* imapd_write_flags - "(\Answered \Flagged \Deleted \Seen \Draft \Recent kw...)" in Dovecot's order */
void imapd_write_flags(struct imapd_session *s, struct strbuf *out, const struct mbox_msg *m)
{
    static const struct { uint32_t bit; const char *name; } tab[] = {
        { MBOX_ANSWERED, "\\Answered" }, { MBOX_FLAGGED, "\\Flagged" }, { MBOX_DELETED, "\\Deleted" },
        { MBOX_SEEN, "\\Seen" }, { MBOX_DRAFT, "\\Draft" }, { MBOX_RECENT, "\\Recent" },
    };
    const char *sep = "";

    sb_putc(out, '(');
    for (size_t i = 0; i < sizeof(tab) / sizeof(tab[0]); i++) {
        if (m->flags & tab[i].bit) {
            sb_printf(out, "%s%s", sep, tab[i].name);
            sep = " ";
        }
    }
    if (s->mbox != NULL) {
        for (size_t k = 0; k < s->mbox->nkeywords && k < MBOX_MAX_KEYWORDS; k++) {
            if ((m->keywords & (1u << k)) && s->mbox->keywords[k] != NULL) {
                sb_printf(out, "%s%s", sep, s->mbox->keywords[k]);
                sep = " ";
            }
        }
    }
    sb_putc(out, ')');
}

/* fetch_ctx_free - release a FETCH's state */
static void fetch_ctx_free(struct fetch_ctx *ctx)
{
    for (size_t i = 0; i < ctx->nitems; i++) {
        free(ctx->items[i].section);
        free(ctx->items[i].name);
    }
    free(ctx->items);
    free(ctx->idx);
    free(ctx->tag);
    free(ctx);
}

/* parse_number - decimal digits at *p (no sign, no leading junk) up to max; advances *p */
static bool parse_number(const char **p, uint64_t max, uint64_t *out)
{
    const char *q = *p;
    uint64_t v = 0;

    if (!isdigit((unsigned char) *q))
        return false;
    while (isdigit((unsigned char) *q)) {
        unsigned d = (unsigned) (*q - '0');
        if (v > (max - d) / 10)
            return false;
        v = v * 10 + d;
        q++;
    }
    *p = q;
    *out = v;
    return true;
}

/* field_name_char - a byte allowed in a header field name given as an atom (RFC 5322 ftext minus atom-specials) */
static bool field_name_char(unsigned char c)
{
    return c > 0x20 && c < 0x7f && c != ':' && strchr("(){%*\"\\]", c) == NULL;
}

/*
 * parse_header_list - " (Name Name ...)" after HEADER.FIELDS[.NOT] at *p, appended to
 * canon upper-cased (header names are case-insensitive; Dovecot echoes them so)
 */
static bool parse_header_list(const char **p, struct strbuf *canon)
{
    const char *q = *p;
    size_t names = 0;

    if (*q++ != ' ' || *q++ != '(')
        return false;
    sb_puts(canon, " (");
    for (;;) {
        const char *start = q;
        bool quoted = *q == '"';

        if (quoted)
            q++;
        start = q;
        while (field_name_char((unsigned char) *q))
            q++;
        if (q == start || q - start > 200)
            return false;
        if (names > 0)
            sb_putc(canon, ' ');
        for (const char *c = start; c < q; c++)
            sb_putc(canon, toupper((unsigned char) *c));
        names++;
        if (quoted && *q++ != '"')
            return false;
        if (*q == ')')
            break;
        if (*q++ != ' ')
            return false;
    }
    sb_putc(canon, ')');
    *p = q + 1;
    return names <= 1000;
}

/*
 * parse_section - what is between "[" and "]" (RFC 3501 section-spec) into
 * canon; *need says whether the header block is enough
 */
static bool parse_section(const char *sec, struct strbuf *canon, enum fetch_need *need)
{
    const char *p = sec;
    bool parts = false;

    *need = NEED_FILE;
    bool dot = false;
    while (isdigit((unsigned char) *p)) {
        uint64_t v;
        if (*p == '0' || !parse_number(&p, FETCH_MAX_PART_NUM, &v))
            return false;
        sb_printf(canon, "%s%llu", parts ? "." : "", (unsigned long long) v);
        parts = true;
        if (*p != '.')
            break;
        p++;
        if (!isdigit((unsigned char) *p)) {
            sb_putc(canon, '.');
            dot = true;
            break;
        }
    }
    if (*p == '\0')
        return !dot;
    if (parts && !dot)
        return false;
    if (strncasecmp(p, "HEADER.FIELDS.NOT", 17) == 0) {
        sb_puts(canon, "HEADER.FIELDS.NOT");
        p += 17;
        if (!parse_header_list(&p, canon))
            return false;
    } else if (strncasecmp(p, "HEADER.FIELDS", 13) == 0) {
        sb_puts(canon, "HEADER.FIELDS");
        p += 13;
        if (!parse_header_list(&p, canon))
            return false;
    } else if (strncasecmp(p, "HEADER", 6) == 0) {
        sb_puts(canon, "HEADER");
        p += 6;
    } else if (strncasecmp(p, "TEXT", 4) == 0) {
        sb_puts(canon, "TEXT");
        p += 4;
    } else if (parts && strncasecmp(p, "MIME", 4) == 0) {
        sb_puts(canon, "MIME");
        p += 4;
    } else {
        return false;
    }
    if (*p != '\0')
        return false;
    if (!parts && strncmp(canon->data, "HEADER", 6) == 0)
        *need = NEED_HEADER;
    return true;
}

/* add_item - append a parsed item */
static struct fetch_item *add_item(struct fetch_ctx *ctx, enum fetch_kind kind, enum fetch_need need)
{
    struct fetch_item *it;

    ctx->items = xreallocarray(ctx->items, ctx->nitems + 1, sizeof(*ctx->items));
    it = &ctx->items[ctx->nitems++];
    memset(it, 0, sizeof(*it));
    it->kind = kind;
    it->need = need;
    if (need > ctx->need)
        ctx->need = need;
    return it;
}

/* add_section_item - a body section item with its response name */
static void add_section_item(struct fetch_ctx *ctx, const char *section, enum fetch_need need, const char *name,
                             bool peek)
{
    struct fetch_item *it = add_item(ctx, FI_SECTION, need);

    it->section = xstrdup(section);
    it->name = xstrdup(name);
    it->peek = peek;
    if (!peek)
        ctx->set_seen = true;
}

/* parse_body_item - "BODY[...]<o.n>" / "BODY.PEEK[...]<o.n>" (atom starts at '[' in rest) */
static bool parse_body_item(struct fetch_ctx *ctx, const char *rest, bool peek, struct strbuf *err)
{
    const char *close = strchr(rest, ']');
    struct strbuf sec = STRBUF_INIT, canon = STRBUF_INIT, name = STRBUF_INIT;
    enum fetch_need need;
    uint64_t off = 0, cnt = 0;
    bool partial = false, ok = false;

    if (close == NULL)
        goto bad;
    sb_append(&sec, rest + 1, (size_t) (close - rest - 1));
    if (strlen(sb_str(&sec)) != sb_len(&sec) || !parse_section(sb_str(&sec), &canon, &need))
        goto bad;
    const char *p = close + 1;
    if (*p == '<') {
        p++;
        /* RFC 3501 wants <offset.nz-count>; like Dovecot we also take <offset> (to the end)
         * and a count of 0 (nothing) */
        if (!parse_number(&p, UINT32_MAX, &off))
            goto bad;
        cnt = UINT64_MAX;
        if (*p == '.') {
            p++;
            if (!parse_number(&p, UINT32_MAX, &cnt))
                goto bad;
        }
        if (*p++ != '>')
            goto bad;
        partial = true;
    }
    if (*p != '\0')
        goto bad;
    sb_printf(&name, "BODY[%s]", sb_str(&canon));
    if (partial)
        sb_printf(&name, "<%llu>", (unsigned long long) off);
    add_section_item(ctx, sb_str(&canon), need, sb_str(&name), peek);
    ctx->items[ctx->nitems - 1].partial = partial;
    ctx->items[ctx->nitems - 1].offset = off;
    ctx->items[ctx->nitems - 1].count = cnt;
    ok = true;
    goto done;
bad:
    sb_reset(err);
    sb_printf(err, "Invalid BODY[..] parameter: %.100s", rest);
done:
    sb_free(&sec);
    sb_free(&canon);
    sb_free(&name);
    return ok;
}

/* parse_item - one fetch-att atom; false with err (BAD) */
static bool parse_item(struct fetch_ctx *ctx, const struct imap_arg *a, bool allow_macro, struct strbuf *err)
{
    static const char *const macro_all[] = { "FLAGS", "INTERNALDATE", "RFC822.SIZE", "ENVELOPE", NULL };
    static const char *const macro_fast[] = { "FLAGS", "INTERNALDATE", "RFC822.SIZE", NULL };
    static const char *const macro_full[] = { "FLAGS", "INTERNALDATE", "RFC822.SIZE", "ENVELOPE", "BODY", NULL };
    static const struct { const char *name; enum fetch_kind kind; enum fetch_need need; } simple[] = {
        { "FLAGS", FI_FLAGS, NEED_VIEW }, { "UID", FI_UID, NEED_VIEW },
        { "INTERNALDATE", FI_INTERNALDATE, NEED_VIEW }, { "RFC822.SIZE", FI_SIZE, NEED_VIEW },
        { "ENVELOPE", FI_ENVELOPE, NEED_HEADER }, { "BODY", FI_BODY, NEED_FILE },
        { "BODYSTRUCTURE", FI_BODYSTRUCTURE, NEED_FILE }, { "MODSEQ", FI_MODSEQ, NEED_VIEW },
    };
    const char *const *macro = NULL;
    const char *s;

    if (a->type != IMAP_ARG_ATOM || a->len == 0 || strlen(a->str) != a->len) {
        sb_set(err, "FETCH list contains non-atoms.");
        return false;
    }
    if (ctx->nitems >= FETCH_MAX_ITEMS) {
        sb_set(err, "Too many FETCH items.");
        return false;
    }
    s = a->str;
    if (allow_macro) {
        if (strcasecmp(s, "ALL") == 0)
            macro = macro_all;
        else if (strcasecmp(s, "FAST") == 0)
            macro = macro_fast;
        else if (strcasecmp(s, "FULL") == 0)
            macro = macro_full;
    }
    if (macro != NULL) {
        for (; *macro != NULL; macro++) {
            struct imap_arg m = { IMAP_ARG_ATOM, *macro, strlen(*macro), false, NULL, 0 };
            if (!parse_item(ctx, &m, false, err))
                return false;
        }
        return true;
    }
    for (size_t i = 0; i < sizeof(simple) / sizeof(simple[0]); i++) {
        if (strcasecmp(s, simple[i].name) == 0) {
            add_item(ctx, simple[i].kind, simple[i].need);
            if (simple[i].kind == FI_FLAGS)
                ctx->want_flags = true;
            else if (simple[i].kind == FI_UID)
                ctx->want_uid = true;
            else if (simple[i].kind == FI_MODSEQ)
                ctx->want_modseq = true;
            return true;
        }
    }
    if (strcasecmp(s, "RFC822") == 0) {
        add_section_item(ctx, "", NEED_FILE, "RFC822", false);
        return true;
    }
    if (strcasecmp(s, "RFC822.HEADER") == 0) {
        add_section_item(ctx, "HEADER", NEED_HEADER, "RFC822.HEADER", true);
        return true;
    }
    if (strcasecmp(s, "RFC822.TEXT") == 0) {
        add_section_item(ctx, "TEXT", NEED_FILE, "RFC822.TEXT", false);
        return true;
    }
    if (strncasecmp(s, "BODY[", 5) == 0)
        return parse_body_item(ctx, s + 4, false, err);
    if (strncasecmp(s, "BODY.PEEK[", 10) == 0)
        return parse_body_item(ctx, s + 9, true, err);
    sb_reset(err);
    sb_printf(err, "Unknown parameter %.100s", s);
    return false;
}

/* parse_modifiers - "(CHANGEDSINCE n)" (RFC 7162 3.1.4) */
static bool parse_modifiers(struct fetch_ctx *ctx, const struct imap_arg *list, struct strbuf *err)
{
    for (size_t i = 0; i < list->count; i += 2) {
        const struct imap_arg *m = &list->list[i];

        if (m->type != IMAP_ARG_ATOM || i + 1 >= list->count) {
            sb_set(err, "FETCH modifiers contain non-atoms.");
            return false;
        }
        if (!imap_arg_is_atom(m, "CHANGEDSINCE")) {
            sb_set(err, "Unknown FETCH modifier");
            return false;
        }
        if (imap_arg_number(&list->list[i + 1], INT64_MAX, &ctx->changedsince) < 0) {
            sb_set(err, "Invalid CHANGEDSINCE modseq.");
            return false;
        }
        ctx->changedsince_set = true;
    }
    return true;
}

/* write_literal - "name {N}\r\n" + data, or the <offset.count> slice of it */
static void write_literal(struct strbuf *out, const struct fetch_item *it, const char *data, size_t len)
{
    if (it->partial) {
        if (it->offset >= len) {
            len = 0;
        } else {
            data += it->offset;
            len -= (size_t) it->offset;
            if (len > it->count)
                len = (size_t) it->count;
        }
    }
    sb_printf(out, "%s {%zu}\r\n", it->name, len);
    sb_append(out, data, len);
}

/* fetch_one - the FETCH response of msgs[i] appended to out (nothing if skipped) */
static void fetch_one(struct imapd_session *s, struct fetch_ctx *ctx, size_t i, struct strbuf *out,
                      struct strbuf *raw)
{
    struct mbox *mb = s->mbox;
    struct mbox_msg *m = &mb->msgs[i];
    struct mime_message *msg = NULL;
    struct strbuf err = STRBUF_INIT, tmp = STRBUF_INIT;
    bool seen_changed = false, flags_sent = false, modseq_sent = false;
    const char *sep = "";

    if (ctx->changedsince_set && m->modseq <= ctx->changedsince)
        return;
    if (ctx->need > NEED_VIEW) {
        msg = imapd_load_message(s, i, ctx->need == NEED_FILE ? IMAPD_NEED_FILE
                                 : ctx->envelope_only ? IMAPD_NEED_ENVELOPE : IMAPD_NEED_HEADER,
                                 raw, "FETCH");
        if (msg == NULL) {
            ctx->expunged_skipped = true;
            goto done;
        }
    }
    if (ctx->set_seen && !s->readonly && !m->gone && !(m->flags & MBOX_SEEN)) {
        if (mbox_store(mb, i, MBOX_FLAGS_ADD, MBOX_SEEN, 0, 0, &err) == 0)
            seen_changed = true;
        else if (errno != ENOENT)
            msg_warn("%s: %s: FETCH uid %u: cannot set \\Seen: %s", s->user ? s->user : "?", mb->name,
                     m->uid, sb_str(&err));
        m = &mb->msgs[i];
    }
    sb_printf(out, "* %zu FETCH (", i + 1);
    if (ctx->uid || ctx->want_uid) {
        sb_printf(out, "UID %u", m->uid);
        sep = " ";
    }
    for (size_t k = 0; k < ctx->nitems; k++) {
        const struct fetch_item *it = &ctx->items[k];

        switch (it->kind) {
        case FI_UID:
            continue;                   /* written first */
        case FI_FLAGS:
            if (flags_sent)
                continue;
            sb_printf(out, "%sFLAGS ", sep);
            imapd_write_flags(s, out, m);
            flags_sent = true;
            break;
        case FI_MODSEQ:
            if (modseq_sent)
                continue;
            sb_printf(out, "%sMODSEQ (%llu)", sep, (unsigned long long) m->modseq);
            modseq_sent = true;
            break;
        case FI_INTERNALDATE:
            sb_printf(out, "%sINTERNALDATE ", sep);
            imap_format_datetime(out, m->internaldate);
            break;
        case FI_SIZE:
            sb_printf(out, "%sRFC822.SIZE %llu", sep, (unsigned long long) m->vsize);
            break;
        case FI_ENVELOPE:
            sb_printf(out, "%sENVELOPE ", sep);
            mime_envelope(msg, &msg->root, out);
            break;
        case FI_BODY:
        case FI_BODYSTRUCTURE:
            sb_printf(out, "%s%s ", sep, it->kind == FI_BODY ? "BODY" : "BODYSTRUCTURE");
            mime_bodystructure(msg, &msg->root, it->kind == FI_BODYSTRUCTURE, out);
            break;
        case FI_SECTION:
            sb_reset(&tmp);
            sb_reset(&err);
            if (mime_section(msg, it->section, &tmp, &err) < 0)
                sb_reset(&tmp);         /* checked at parse time; cannot happen */
            sb_puts(out, sep);
            write_literal(out, it, tmp.data != NULL ? tmp.data : "", tmp.len);
            break;
        }
        sep = " ";
    }
    /* RFC 3501 6.4.5: flags changed by the implied \Seen SHOULD be included */
    if (seen_changed && !flags_sent) {
        sb_printf(out, "%sFLAGS ", sep);
        imapd_write_flags(s, out, m);
        flags_sent = true;
        sep = " ";
    }
    /* RFC 7162 3.1.4 / 3.2: with CONDSTORE on, MODSEQ goes with FLAGS and with CHANGEDSINCE */
    if (!modseq_sent && (ctx->changedsince_set || (s->condstore && flags_sent))) {
        sb_printf(out, "%sMODSEQ (%llu)", sep, (unsigned long long) m->modseq);
        sep = " ";
    }
    sb_puts(out, ")\r\n");
done:
    mime_free(msg);
    sb_free(&err);
    sb_free(&tmp);
}

/* fetch_finish - tagged reply, commit the implied \Seen changes, free */
static void fetch_finish(struct imapd_session *s, struct fetch_ctx *ctx)
{
    struct strbuf err = STRBUF_INIT;
    bool suspended = ctx->suspended;

    if (mbox_commit(s->mbox, &err) < 0)
        msg_warn("%s: %s: cannot write the index: %s", s->user ? s->user : "?", s->mbox->name, sb_str(&err));
    sb_free(&err);
    if (ctx->expunged_skipped)
        imapd_tagged(s, ctx->tag, "OK [EXPUNGEISSUED] Some messages were already expunged.");
    else
        imapd_tagged(s, ctx->tag, "OK Fetch completed.");
    fetch_ctx_free(ctx);
    if (suspended)
        imapd_command_done(s);
}

/*
 * fetch_run - send responses until done or the output backs up. Called first
 * by imapd_cmd_fetch and then by the session as the resume function.
 */
static void fetch_run(struct imapd_session *s, void *arg)
{
    struct fetch_ctx *ctx = arg;
    struct strbuf out = STRBUF_INIT, raw = STRBUF_INIT;

    if (s->state != IMAPD_SELECTED || s->mbox == NULL) {
        /* the connection went away while we waited: nothing to finish */
        fetch_ctx_free(ctx);
        return;
    }
    while (ctx->pos < ctx->n) {
        size_t i = ctx->idx[ctx->pos++];

        if (i >= s->mbox->count)
            continue;                   /* cannot happen: the view does not shrink during FETCH */
        sb_reset(&out);
        fetch_one(s, ctx, i, &out, &raw);
        if (out.len > 0)
            imapd_write(s, out.data, out.len);
        if (ctx->pos < ctx->n && imapd_output_pending(s) > IMAPD_OUTPUT_HIGH) {
            struct strbuf err = STRBUF_INIT;

            /* make the \Seen changes so far durable: the client may never come back */
            if (mbox_commit(s->mbox, &err) < 0)
                msg_warn("%s: %s: cannot write the index: %s", s->user ? s->user : "?", s->mbox->name,
                         sb_str(&err));
            sb_free(&err);
            sb_free(&out);
            sb_free(&raw);
            ctx->suspended = true;
            imapd_suspend(s, fetch_run, ctx);
            return;
        }
    }
    sb_free(&out);
    sb_free(&raw);
    fetch_finish(s, ctx);
}

/* imapd_cmd_fetch - FETCH / UID FETCH set items [(CHANGEDSINCE n)] */
void imapd_cmd_fetch(struct imapd_session *s, const char *tag, const struct imap_arg *args, size_t nargs,
                     bool uid)
{
    struct strbuf err = STRBUF_INIT;
    struct fetch_ctx *ctx;
    bool ok = true;

    if (s->state != IMAPD_SELECTED || s->mbox == NULL) {
        imapd_tagged(s, tag, "BAD No mailbox selected.");
        return;
    }
    if (nargs < 2 || nargs > 3 || args[0].type != IMAP_ARG_ATOM ||
        (args[1].type != IMAP_ARG_ATOM && args[1].type != IMAP_ARG_LIST) ||
        (nargs == 3 && args[2].type != IMAP_ARG_LIST)) {
        imapd_tagged(s, tag, "BAD Invalid arguments.");
        return;
    }
    ctx = xcalloc(1, sizeof(*ctx));
    ctx->tag = xstrdup(tag);
    ctx->uid = uid;
    if (args[1].type == IMAP_ARG_ATOM) {
        ok = parse_item(ctx, &args[1], true, &err);
    } else if (args[1].count == 0) {
        sb_set(&err, "FETCH list is empty.");
        ok = false;
    } else {
        for (size_t i = 0; i < args[1].count && ok; i++)
            ok = parse_item(ctx, &args[1].list[i], false, &err);
    }
    if (ok && nargs == 3)
        ok = parse_modifiers(ctx, &args[2], &err);
    if (ok && imapd_resolve_set(s, args[0].str, uid, &ctx->idx, &ctx->n, &err) < 0)
        ok = false;
    if (!ok) {
        imapd_tagged(s, tag, "BAD Error in IMAP command %sFETCH: %s", uid ? "UID " : "", sb_str(&err));
        fetch_ctx_free(ctx);
        sb_free(&err);
        return;
    }
    sb_free(&err);
    ctx->envelope_only = true;
    for (size_t k = 0; k < ctx->nitems; k++)
        if (ctx->items[k].need == NEED_HEADER && ctx->items[k].kind != FI_ENVELOPE)
            ctx->envelope_only = false;
    if (ctx->want_modseq || ctx->changedsince_set)
        s->condstore = true;            /* RFC 7162 3.1: MODSEQ / CHANGEDSINCE enable CONDSTORE */
    fetch_run(s, ctx);
}
