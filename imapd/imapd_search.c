/*
 * imapd_search - SEARCH and UID SEARCH (RFC 3501 6.4.4), with the ESEARCH
 * return options MIN MAX ALL COUNT (RFC 4731) and the CONDSTORE MODSEQ
 * criterion (RFC 7162 3.1.5).
 *
 * Interface (imapd.h): imapd_cmd_search.
 *
 * The criteria become a tree. Each node costs what it needs to be decided:
 * the view (flags, size, dates, UIDs, sequence numbers, modseq), the header
 * block (HEADER FROM TO CC BCC SUBJECT SENT*) or the whole message (BODY
 * TEXT). Every message is first judged with the view alone (three-valued:
 * a node that needs more says "unknown"); only when that leaves the answer
 * open is the message read, once, as far as the costliest criterion needs
 * (imapd_message.c: keys on envelope fields are served by the header cache).
 * AND and OR children are tried cheapest first.
 *
 * Strings match as case-insensitive substrings (ASCII and the common Latin,
 * Greek and Cyrillic letters folded) of header values decoded from RFC 2047
 * and of the decoded text parts of the body (base64 / quoted-printable,
 * ISO-8859-1 and Windows-1252 converted to UTF-8). CHARSET may be UTF-8 or
 * US-ASCII; anything else is NO [BADCHARSET (UTF-8 US-ASCII)].
 * Dates: BEFORE/ON/SINCE use the internal date's UTC day, SENT* the day of
 * the Date: header in its own time zone; a message without a readable Date:
 * matches no SENT* key.
 */
#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "header_cache.h"
#include "log.h"
#include "mem.h"
#include "strbuf.h"
#include "imap_parse.h"
#include "mailstore.h"
#include "mime.h"
#include "imapd.h"
#include "utf8.h"

#define SEARCH_MAX_NODES    1000

enum cost { COST_VIEW, COST_HEADER, COST_FILE };
enum tri { T_FALSE, T_TRUE, T_UNKNOWN };

enum skind {
    S_ALL, S_NONE, S_FLAG, S_KEYWORD, S_LARGER, S_SMALLER, S_BEFORE, S_ON, S_SINCE,
    S_SENTBEFORE, S_SENTON, S_SENTSINCE, S_HEADER, S_BODY, S_TEXT, S_UIDSET, S_SEQSET, S_MODSEQ,
    S_NOT, S_OR, S_AND,
};

struct snode {
    enum skind kind;
    enum cost cost;
    uint32_t flag;                      /* S_FLAG: MBOX_* bit; S_KEYWORD: keyword bit */
    bool    want;                       /* S_FLAG, S_KEYWORD: set (true) or clear */
    uint64_t num;                       /* LARGER SMALLER MODSEQ */
    time_t  date;                       /* date keys: midnight UTC of the day */
    char   *field;                      /* S_HEADER */
    struct strbuf value;                /* string keys, folded */
    struct imap_seqset set;             /* S_UIDSET, S_SEQSET */
    struct snode **kids;
    size_t  nkids;
};

struct sparse {
    struct imapd_session *s;
    size_t  nodes;
    bool    modseq_used;
    struct strbuf *err;
};

struct smsg {                           /* one message while it is judged */
    const struct mbox_msg *m;
    uint32_t seq;
    struct mime_message *mime;          /* NULL until the file is read */
    bool    have_hdr, have_body;
    struct strbuf hdr;                  /* folded, decoded header text (TEXT) */
    struct strbuf body;                 /* folded, decoded body text */
    bool    sent_done, sent_ok;
    time_t  sent_day;
};

/* ---- case folding ---- */

/* fold_cp - lower case of a code point for the scripts mail is mostly written in */
static uint32_t fold_cp(uint32_t c)
{
    if (c >= 'A' && c <= 'Z')
        return c + 32;
    if (c < 0x80)
        return c;
    if ((c >= 0xC0 && c <= 0xDE && c != 0xD7) || (c >= 0x391 && c <= 0x3AB && c != 0x3A2) ||
        (c >= 0x410 && c <= 0x42F))
        return c + 0x20;
    if (c >= 0x400 && c <= 0x40F)
        return c + 0x50;
    if (((c >= 0x100 && c <= 0x12F) || (c >= 0x132 && c <= 0x137) || (c >= 0x14A && c <= 0x177)) && !(c & 1))
        return c + 1;
    if (((c >= 0x139 && c <= 0x148) || (c >= 0x179 && c <= 0x17E)) && (c & 1))
        return c + 1;
    if (c == 0x178)
        return 0xFF;
    return c;
}

/* fold_append - append text[0..len) case-folded; bytes that are not UTF-8 pass unchanged, NUL becomes space */
static void fold_append(struct strbuf *out, const char *text, size_t len)
{
    const unsigned char *p = (const unsigned char *) text, *end = p + len;

    while (p < end) {
        unsigned char c = *p;
        uint32_t cp;
        size_t n;

        if (c < 0x80) {                 /* a run of ASCII goes in one append */
            char    run[256];
            size_t  k = 0;

            while (p < end && *p < 0x80 && k < sizeof(run)) {
                unsigned char a = *p++;

                run[k++] = (char) (a == 0 ? ' ' : a >= 'A' && a <= 'Z' ? a + 32 : a);
            }
            sb_append(out, run, k);
            continue;
        }
        n = utf8_char_len(p, (size_t) (end - p), &cp);
        if (n == 0) {
            sb_putc(out, c);
            p++;
            continue;
        }
        utf8_put(out, fold_cp(cp));
        p += n;
    }
}

/* latin1_to_utf8 - append ISO-8859-1 / Windows-1252 text as UTF-8 (0x80-0x9F as Latin-1) */
static void latin1_to_utf8(struct strbuf *out, const char *text, size_t len)
{
    for (size_t i = 0; i < len; i++)
        utf8_put(out, (unsigned char) text[i]);
}

/* ---- parsing the criteria ---- */

/* node_new - a node of kind and cost */
static struct snode *node_new(struct sparse *p, enum skind kind, enum cost cost)
{
    struct snode *n = xcalloc(1, sizeof(*n));

    n->kind = kind;
    n->cost = cost;
    p->nodes++;
    return n;
}

/* node_free - a node and its subtree */
static void node_free(struct snode *n)
{
    if (n == NULL)
        return;
    for (size_t i = 0; i < n->nkids; i++)
        node_free(n->kids[i]);
    free(n->kids);
    free(n->field);
    sb_free(&n->value);
    imap_seqset_free(&n->set);
    free(n);
}

/* node_add - append child kid to n (AND, OR, NOT) */
static void node_add(struct snode *n, struct snode *kid)
{
    n->kids = xreallocarray(n->kids, n->nkids + 1, sizeof(*n->kids));
    n->kids[n->nkids++] = kid;
    if (kid->cost > n->cost)
        n->cost = kid->cost;
}

struct cursor { const struct imap_arg *args; size_t n, pos; };

/* next_arg - the next argument, or NULL with err */
static const struct imap_arg *next_arg(struct sparse *p, struct cursor *c, const char *what)
{
    if (c->pos >= c->n) {
        sb_reset(p->err);
        sb_printf(p->err, "Missing argument for %s", what);
        return NULL;
    }
    return &c->args[c->pos++];
}

/* string_arg - the next argument as a search string, folded into out */
static bool string_arg(struct sparse *p, struct cursor *c, const char *what, struct strbuf *out)
{
    const struct imap_arg *a = next_arg(p, c, what);

    if (a == NULL)
        return false;
    if (a->type != IMAP_ARG_ATOM && a->type != IMAP_ARG_STRING) {
        sb_reset(p->err);
        sb_printf(p->err, "Invalid string for %s", what);
        return false;
    }
    fold_append(out, a->str, a->len);
    return true;
}

/* date_arg - the next argument as a date ("1-Feb-1994", maybe quoted) */
static bool date_arg(struct sparse *p, struct cursor *c, const char *what, time_t *out)
{
    const struct imap_arg *a = next_arg(p, c, what);
    const char *t = a != NULL ? imap_arg_astring(a) : NULL;

    if (a == NULL)
        return false;
    if (t == NULL || imap_parse_date(t, out) < 0) {
        sb_reset(p->err);
        sb_printf(p->err, "Invalid search date parameter: %.40s", t != NULL ? t : "");
        return false;
    }
    return true;
}

/* number_arg - the next argument as a number <= max */
static bool number_arg(struct sparse *p, struct cursor *c, const char *what, uint64_t max, uint64_t *out)
{
    const struct imap_arg *a = next_arg(p, c, what);

    if (a == NULL)
        return false;
    if (imap_arg_number(a, max, out) < 0) {
        sb_reset(p->err);
        sb_printf(p->err, "Invalid number for %s", what);
        return false;
    }
    return true;
}

/* is_seqset - the atom looks like a sequence set (digits, ':', ',', '*') */
static bool is_seqset(const char *s)
{
    if (*s == '\0')
        return false;
    for (; *s != '\0'; s++)
        if (!isdigit((unsigned char) *s) && *s != ':' && *s != ',' && *s != '*')
            return false;
    return true;
}

static struct snode *parse_key(struct sparse *p, struct cursor *c);

/* parse_and - keys until the end of c, as one AND node (at least one key) */
static struct snode *parse_and(struct sparse *p, struct cursor *c)
{
    struct snode *n = node_new(p, S_AND, COST_VIEW);

    if (c->pos >= c->n) {
        sb_set(p->err, "Missing search parameters");
        node_free(n);
        return NULL;
    }
    while (c->pos < c->n) {
        struct snode *k = parse_key(p, c);
        if (k == NULL) {
            node_free(n);
            return NULL;
        }
        node_add(n, k);
    }
    return n;
}

/* parse_key - one search-key at the cursor */
static struct snode *parse_key(struct sparse *p, struct cursor *c)
{
    static const struct { const char *name; uint32_t flag; bool want; } flagkeys[] = {
        { "ANSWERED", MBOX_ANSWERED, true }, { "UNANSWERED", MBOX_ANSWERED, false },
        { "DELETED", MBOX_DELETED, true }, { "UNDELETED", MBOX_DELETED, false },
        { "DRAFT", MBOX_DRAFT, true }, { "UNDRAFT", MBOX_DRAFT, false },
        { "FLAGGED", MBOX_FLAGGED, true }, { "UNFLAGGED", MBOX_FLAGGED, false },
        { "SEEN", MBOX_SEEN, true }, { "UNSEEN", MBOX_SEEN, false },
        { "RECENT", MBOX_RECENT, true }, { "OLD", MBOX_RECENT, false },
    };
    static const struct { const char *name; enum skind kind; } datekeys[] = {
        { "BEFORE", S_BEFORE }, { "ON", S_ON }, { "SINCE", S_SINCE },
        { "SENTBEFORE", S_SENTBEFORE }, { "SENTON", S_SENTON }, { "SENTSINCE", S_SENTSINCE },
    };
    static const char *const addrkeys[] = { "FROM", "TO", "CC", "BCC", "SUBJECT" };
    const struct imap_arg *a;
    struct snode *n = NULL;
    const char *w;

    if (p->nodes >= SEARCH_MAX_NODES) {
        sb_set(p->err, "Too many search keys");
        return NULL;
    }
    if ((a = next_arg(p, c, "SEARCH")) == NULL)
        return NULL;
    if (a->type == IMAP_ARG_LIST) {
        struct cursor sub = { a->list, a->count, 0 };
        return parse_and(p, &sub);
    }
    if (a->type != IMAP_ARG_ATOM) {
        sb_set(p->err, "Invalid search key");
        return NULL;
    }
    w = a->str;
    if (is_seqset(w)) {
        n = node_new(p, S_SEQSET, COST_VIEW);
        if (imap_seqset_parse(w, &n->set, p->err) < 0)
            goto fail;
        return n;
    }
    for (size_t i = 0; i < sizeof(flagkeys) / sizeof(flagkeys[0]); i++) {
        if (strcasecmp(w, flagkeys[i].name) == 0) {
            n = node_new(p, S_FLAG, COST_VIEW);
            n->flag = flagkeys[i].flag;
            n->want = flagkeys[i].want;
            return n;
        }
    }
    for (size_t i = 0; i < sizeof(datekeys) / sizeof(datekeys[0]); i++) {
        if (strcasecmp(w, datekeys[i].name) == 0) {
            n = node_new(p, datekeys[i].kind, datekeys[i].kind >= S_SENTBEFORE ? COST_HEADER : COST_VIEW);
            if (!date_arg(p, c, datekeys[i].name, &n->date))
                goto fail;
            return n;
        }
    }
    for (size_t i = 0; i < sizeof(addrkeys) / sizeof(addrkeys[0]); i++) {
        if (strcasecmp(w, addrkeys[i]) == 0) {
            n = node_new(p, S_HEADER, COST_HEADER);
            n->field = xstrdup(addrkeys[i]);
            if (!string_arg(p, c, addrkeys[i], &n->value))
                goto fail;
            return n;
        }
    }
    if (strcasecmp(w, "ALL") == 0)
        return node_new(p, S_ALL, COST_VIEW);
    if (strcasecmp(w, "NEW") == 0) {
        /* RECENT UNSEEN */
        n = node_new(p, S_AND, COST_VIEW);
        struct snode *r = node_new(p, S_FLAG, COST_VIEW), *u = node_new(p, S_FLAG, COST_VIEW);
        r->flag = MBOX_RECENT;
        r->want = true;
        u->flag = MBOX_SEEN;
        u->want = false;
        node_add(n, r);
        node_add(n, u);
        return n;
    }
    if (strcasecmp(w, "KEYWORD") == 0 || strcasecmp(w, "UNKEYWORD") == 0) {
        bool want = toupper((unsigned char) w[0]) == 'K';
        const struct imap_arg *k = next_arg(p, c, w);
        if (k == NULL)
            return NULL;
        if (k->type != IMAP_ARG_ATOM) {
            sb_set(p->err, "Invalid keyword");
            return NULL;
        }
        int idx = p->s->mbox != NULL ? mbox_keyword_index(p->s->mbox, k->str, false) : -1;
        if (idx < 0 || idx >= MBOX_MAX_KEYWORDS)
            return node_new(p, want ? S_NONE : S_ALL, COST_VIEW);   /* a keyword nobody has */
        n = node_new(p, S_KEYWORD, COST_VIEW);
        n->flag = 1u << idx;
        n->want = want;
        return n;
    }
    if (strcasecmp(w, "LARGER") == 0 || strcasecmp(w, "SMALLER") == 0) {
        n = node_new(p, toupper((unsigned char) w[0]) == 'L' ? S_LARGER : S_SMALLER, COST_VIEW);
        if (!number_arg(p, c, w, UINT64_MAX, &n->num))
            goto fail;
        return n;
    }
    if (strcasecmp(w, "HEADER") == 0) {
        const struct imap_arg *f = next_arg(p, c, "HEADER");
        const char *name = f != NULL ? imap_arg_astring(f) : NULL;
        if (f == NULL)
            return NULL;
        if (name == NULL || *name == '\0' || strlen(name) > 200 || strchr(name, ':') != NULL) {
            sb_set(p->err, "Invalid header name");
            return NULL;
        }
        n = node_new(p, S_HEADER, COST_HEADER);
        n->field = xstrdup(name);
        if (!string_arg(p, c, "HEADER", &n->value))
            goto fail;
        return n;
    }
    if (strcasecmp(w, "BODY") == 0 || strcasecmp(w, "TEXT") == 0) {
        n = node_new(p, toupper((unsigned char) w[0]) == 'B' ? S_BODY : S_TEXT, COST_FILE);
        if (!string_arg(p, c, w, &n->value))
            goto fail;
        return n;
    }
    if (strcasecmp(w, "UID") == 0) {
        const struct imap_arg *u = next_arg(p, c, "UID");
        if (u == NULL)
            return NULL;
        n = node_new(p, S_UIDSET, COST_VIEW);
        if (u->type != IMAP_ARG_ATOM || imap_seqset_parse(u->str, &n->set, p->err) < 0) {
            if (u->type != IMAP_ARG_ATOM)
                sb_set(p->err, "Invalid UID set");
            goto fail;
        }
        return n;
    }
    if (strcasecmp(w, "NOT") == 0) {
        struct snode *k = parse_key(p, c);
        if (k == NULL)
            return NULL;
        n = node_new(p, S_NOT, COST_VIEW);
        node_add(n, k);
        return n;
    }
    if (strcasecmp(w, "OR") == 0) {
        struct snode *k1 = parse_key(p, c), *k2;
        if (k1 == NULL)
            return NULL;
        if ((k2 = parse_key(p, c)) == NULL) {
            node_free(k1);
            return NULL;
        }
        n = node_new(p, S_OR, COST_VIEW);
        node_add(n, k1);
        node_add(n, k2);
        return n;
    }
    if (strcasecmp(w, "MODSEQ") == 0) {
        /* MODSEQ [entry-name entry-type-req] mod-sequence-valzer (RFC 7162 3.1.5):
         * we keep no per-flag modseqs, so the entry is checked and the message's modseq used */
        if (c->pos + 2 < c->n && c->args[c->pos].type == IMAP_ARG_STRING) {
            const struct imap_arg *t = &c->args[c->pos + 1];
            if (!imap_arg_is_atom(t, "all") && !imap_arg_is_atom(t, "priv") && !imap_arg_is_atom(t, "shared")) {
                sb_set(p->err, "Invalid MODSEQ entry type");
                return NULL;
            }
            c->pos += 2;
        }
        n = node_new(p, S_MODSEQ, COST_VIEW);
        if (!number_arg(p, c, "MODSEQ", INT64_MAX, &n->num))
            goto fail;
        p->modseq_used = true;
        return n;
    }
    sb_reset(p->err);
    sb_printf(p->err, "Unknown argument %.60s", w);
    return NULL;
fail:
    node_free(n);
    return NULL;
}

/* node_cmp - qsort order: cheapest first */
static int node_cmp(const void *a, const void *b)
{
    const struct snode *x = *(struct snode *const *) a, *y = *(struct snode *const *) b;

    return (int) x->cost - (int) y->cost;
}

/* node_order - sort AND/OR children by cost, all the way down */
static void node_order(struct snode *n)
{
    for (size_t i = 0; i < n->nkids; i++)
        node_order(n->kids[i]);
    if (n->kind == S_AND || n->kind == S_OR)
        qsort(n->kids, n->nkids, sizeof(*n->kids), node_cmp);
}

/* ---- judging a message ---- */

struct hdr_match { const char *field; const struct strbuf *value; bool found; struct strbuf tmp; };

/* hdr_match_fn - mime_header_foreach callback: does this field hold the value? */
static bool hdr_match_fn(const char *name, const char *value, void *arg)
{
    struct hdr_match *h = arg;
    struct strbuf dec = STRBUF_INIT;

    if (strcasecmp(name, h->field) != 0)
        return true;
    mime_decode_2047(value, strlen(value), &dec);
    sb_reset(&h->tmp);
    fold_append(&h->tmp, dec.data != NULL ? dec.data : "", dec.len);
    sb_free(&dec);
    if (h->value->len == 0 || memmem(sb_str(&h->tmp), h->tmp.len, h->value->data, h->value->len) != NULL)
        h->found = true;
    return !h->found;
}

/* root_header - the message's header block */
static void root_header(const struct smsg *sm, const char **hdr, size_t *len)
{
    const struct mime_part *r = &sm->mime->root;

    *hdr = sm->mime->data + r->hdr_off;
    *len = r->body_off - r->hdr_off;
}

/* header_text_fn - collect "name: decoded value" lines for TEXT */
static bool header_text_fn(const char *name, const char *value, void *arg)
{
    struct strbuf *out = arg, dec = STRBUF_INIT;

    mime_decode_2047(value, strlen(value), &dec);
    fold_append(out, name, strlen(name));
    sb_puts(out, ": ");
    fold_append(out, sb_str(&dec), dec.len);
    sb_putc(out, '\n');
    sb_free(&dec);
    return true;
}

/* part_charset_latin1 - the part's charset is ISO-8859-1 or Windows-1252 (converted for matching) */
static bool part_charset_latin1(const struct mime_part *part)
{
    for (size_t i = 0; i < part->nparams; i++) {
        if (strcmp(part->params[i].name, "charset") == 0) {
            const char *v = part->params[i].value;
            return strcasecmp(v, "iso-8859-1") == 0 || strcasecmp(v, "latin1") == 0 ||
                   strcasecmp(v, "windows-1252") == 0 || strcasecmp(v, "iso-8859-15") == 0 ||
                   strcasecmp(v, "us-ascii") == 0;
        }
    }
    return false;
}

/* body_text - the folded text of every text part under part (nested messages' headers too) */
static void body_text(const struct mime_message *msg, const struct mime_part *part, struct strbuf *out,
                      unsigned depth)
{
    if (depth > MIME_MAX_DEPTH)
        return;
    if (part->is_multipart || part->is_message) {
        for (size_t i = 0; i < part->nchildren; i++) {
            const struct mime_part *ch = &part->children[i];
            if (part->is_message && ch->body_off >= ch->hdr_off)
                mime_header_foreach(msg->data + ch->hdr_off, ch->body_off - ch->hdr_off, header_text_fn, out);
            body_text(msg, ch, out, depth + 1);
        }
        return;
    }
    if (part->type != NULL && strcmp(part->type, "text") != 0)
        return;                         /* attachments: images, archives... are not text */
    struct strbuf dec = STRBUF_INIT;
    mime_decode_body(msg, part, &dec);
    if (part_charset_latin1(part)) {
        struct strbuf u = STRBUF_INIT;
        latin1_to_utf8(&u, sb_str(&dec), dec.len);
        fold_append(out, sb_str(&u), u.len);
        sb_free(&u);
    } else {
        fold_append(out, sb_str(&dec), dec.len);
    }
    sb_putc(out, '\n');
    sb_free(&dec);
}

/* zone_offset - seconds east of UTC of the "+hhmm" / "-hhmm" zone at the end of a Date: value */
static long zone_offset(const char *v)
{
    const char *z = NULL;

    for (const char *q = v; *q != '\0'; q++)
        if ((*q == '+' || *q == '-') && isdigit((unsigned char) q[1]) && isdigit((unsigned char) q[2]) &&
            isdigit((unsigned char) q[3]) && isdigit((unsigned char) q[4]) && !isdigit((unsigned char) q[5]))
            z = q;
    if (z == NULL)
        return 0;
    long h = (z[1] - '0') * 10 + (z[2] - '0'), m = (z[3] - '0') * 10 + (z[4] - '0');
    if (h > 23 || m > 59)
        return 0;
    return (z[0] == '-' ? -1 : 1) * (h * 3600 + m * 60);
}

/* sent_day - midnight (as UTC) of the day in the message's Date: header, in its own zone */
static bool sent_day(struct smsg *sm, time_t *day)
{
    if (!sm->sent_done) {
        struct strbuf v = STRBUF_INIT;
        const char *hdr;
        size_t len;
        time_t t;

        sm->sent_done = true;
        root_header(sm, &hdr, &len);
        if (mime_header_get(hdr, len, "Date", &v) && mime_parse_date(sb_str(&v), &t) == 0) {
            long long local = (long long) t + zone_offset(sb_str(&v));
            long long d = local / 86400;
            if (local < 0 && local % 86400 != 0)
                d--;
            sm->sent_day = (time_t) (d * 86400);
            sm->sent_ok = true;
        }
        sb_free(&v);
    }
    *day = sm->sent_day;
    return sm->sent_ok;
}

/* day_of - midnight UTC of the day t falls in */
static time_t day_of(time_t t)
{
    long long d = (long long) t / 86400;

    if (t < 0 && (long long) t % 86400 != 0)
        d--;
    return (time_t) (d * 86400);
}

/* eval - judge sm by n; with no file read yet, nodes needing it say T_UNKNOWN */
static enum tri eval(const struct snode *n, struct smsg *sm, const struct mbox *mb, size_t count)
{
    const struct mbox_msg *m = sm->m;

    if (n->cost > COST_VIEW && sm->mime == NULL)
        if (n->kind != S_AND && n->kind != S_OR && n->kind != S_NOT)
            return T_UNKNOWN;
    switch (n->kind) {
    case S_ALL:
        return T_TRUE;
    case S_NONE:
        return T_FALSE;
    case S_FLAG:
        return ((m->flags & n->flag) != 0) == n->want ? T_TRUE : T_FALSE;
    case S_KEYWORD:
        return ((m->keywords & n->flag) != 0) == n->want ? T_TRUE : T_FALSE;
    case S_LARGER:
        return m->vsize > n->num ? T_TRUE : T_FALSE;
    case S_SMALLER:
        return m->vsize < n->num ? T_TRUE : T_FALSE;
    case S_BEFORE:
        return day_of(m->internaldate) < n->date ? T_TRUE : T_FALSE;
    case S_ON:
        return day_of(m->internaldate) == n->date ? T_TRUE : T_FALSE;
    case S_SINCE:
        return day_of(m->internaldate) >= n->date ? T_TRUE : T_FALSE;
    case S_MODSEQ:
        return m->modseq >= n->num ? T_TRUE : T_FALSE;
    case S_SEQSET:
        return imap_seqset_contains(&n->set, sm->seq, (uint32_t) count) ? T_TRUE : T_FALSE;
    case S_UIDSET:
        return imap_seqset_contains(&n->set, m->uid, count > 0 ? mb->msgs[count - 1].uid : 0) ? T_TRUE
                                                                                            : T_FALSE;
    case S_SENTBEFORE:
    case S_SENTON:
    case S_SENTSINCE: {
        time_t d;
        if (!sent_day(sm, &d))
            return T_FALSE;
        if (n->kind == S_SENTBEFORE)
            return d < n->date ? T_TRUE : T_FALSE;
        if (n->kind == S_SENTON)
            return d == n->date ? T_TRUE : T_FALSE;
        return d >= n->date ? T_TRUE : T_FALSE;
    }
    case S_HEADER: {
        struct hdr_match h = { n->field, &n->value, false, STRBUF_INIT };
        const char *hdr;
        size_t len;
        root_header(sm, &hdr, &len);
        mime_header_foreach(hdr, len, hdr_match_fn, &h);
        sb_free(&h.tmp);
        return h.found ? T_TRUE : T_FALSE;
    }
    case S_BODY:
    case S_TEXT:
        if (!sm->have_body) {
            body_text(sm->mime, &sm->mime->root, &sm->body, 0);
            sm->have_body = true;
        }
        if (n->value.len == 0 || memmem(sb_str(&sm->body), sm->body.len, n->value.data, n->value.len) != NULL)
            return T_TRUE;
        if (n->kind == S_BODY)
            return T_FALSE;
        if (!sm->have_hdr) {
            const char *hdr;
            size_t len;
            root_header(sm, &hdr, &len);
            mime_header_foreach(hdr, len, header_text_fn, &sm->hdr);
            sm->have_hdr = true;
        }
        return memmem(sb_str(&sm->hdr), sm->hdr.len, n->value.data, n->value.len) != NULL ? T_TRUE : T_FALSE;
    case S_NOT: {
        enum tri t = eval(n->kids[0], sm, mb, count);
        return t == T_UNKNOWN ? T_UNKNOWN : t == T_TRUE ? T_FALSE : T_TRUE;
    }
    case S_AND:
    case S_OR: {
        bool unknown = false;
        enum tri decisive = n->kind == S_AND ? T_FALSE : T_TRUE;
        for (size_t i = 0; i < n->nkids; i++) {
            enum tri t = eval(n->kids[i], sm, mb, count);
            if (t == decisive)
                return t;
            if (t == T_UNKNOWN)
                unknown = true;
        }
        return unknown ? T_UNKNOWN : (n->kind == S_AND ? T_TRUE : T_FALSE);
    }
    }
    return T_FALSE;
}

/* envelope_will_do - can n be judged from the envelope fields alone (the header cache)? */
static bool envelope_will_do(const struct snode *n)
{
    switch (n->kind) {
    case S_HEADER:
        return header_cache_has_field(n->field, strlen(n->field));
    case S_BODY:
    case S_TEXT:
        return false;
    case S_NOT:
    case S_AND:
    case S_OR:
        for (size_t i = 0; i < n->nkids; i++)
            if (!envelope_will_do(n->kids[i]))
                return false;
        return true;
    default:
        return true;                    /* the view, or Date: for SENT* */
    }
}

/* ---- the command ---- */

enum { RET_MIN = 1, RET_MAX = 2, RET_ALL = 4, RET_COUNT = 8 };

/* parse_return - "RETURN (MIN MAX ALL COUNT)"; an empty list means ALL (RFC 4731 3.1) */
static bool parse_return(const struct imap_arg *list, unsigned *opts, struct strbuf *err)
{
    *opts = 0;
    for (size_t i = 0; i < list->count; i++) {
        const struct imap_arg *a = &list->list[i];
        if (imap_arg_is_atom(a, "MIN"))
            *opts |= RET_MIN;
        else if (imap_arg_is_atom(a, "MAX"))
            *opts |= RET_MAX;
        else if (imap_arg_is_atom(a, "ALL"))
            *opts |= RET_ALL;
        else if (imap_arg_is_atom(a, "COUNT"))
            *opts |= RET_COUNT;
        else {
            sb_set(err, "Unknown RETURN option");
            return false;
        }
    }
    if (*opts == 0)
        *opts = RET_ALL;
    return true;
}

/* imapd_cmd_search - SEARCH / UID SEARCH [RETURN (...)] [CHARSET x] keys */
void imapd_cmd_search(struct imapd_session *s, const char *tag, const struct imap_arg *args, size_t nargs,
                      bool uid)
{
    struct strbuf err = STRBUF_INIT, raw = STRBUF_INIT, out = STRBUF_INIT;
    struct sparse p = { s, 0, false, &err };
    struct cursor c = { args, nargs, 0 };
    bool esearch = false;
    unsigned opts = 0;
    struct snode *root;

    if (s->state != IMAPD_SELECTED || s->mbox == NULL) {
        imapd_tagged(s, tag, "BAD No mailbox selected.");
        return;
    }
    if (c.pos + 1 < c.n && imap_arg_is_atom(&args[c.pos], "RETURN")) {
        if (args[c.pos + 1].type != IMAP_ARG_LIST || !parse_return(&args[c.pos + 1], &opts, &err)) {
            imapd_tagged(s, tag, "BAD Error in IMAP command SEARCH: %s",
                         err.len ? sb_str(&err) : "Invalid RETURN");
            sb_free(&err);
            return;
        }
        esearch = true;
        c.pos += 2;
    }
    if (c.pos < c.n && imap_arg_is_atom(&args[c.pos], "CHARSET")) {
        const char *cs = c.pos + 1 < c.n ? imap_arg_astring(&args[c.pos + 1]) : NULL;
        if (cs == NULL) {
            imapd_tagged(s, tag, "BAD Error in IMAP command SEARCH: Missing CHARSET");
            return;
        }
        if (strcasecmp(cs, "UTF-8") != 0 && strcasecmp(cs, "US-ASCII") != 0) {
            imapd_tagged(s, tag, "NO [BADCHARSET (UTF-8 US-ASCII)] Unsupported charset");
            return;
        }
        c.pos += 2;
    }
    root = parse_and(&p, &c);
    if (root == NULL) {
        imapd_tagged(s, tag, "BAD Error in IMAP command %sSEARCH: %s", uid ? "UID " : "", sb_str(&err));
        sb_free(&err);
        return;
    }
    if (p.modseq_used)
        s->condstore = true;            /* RFC 7162 3.1: the MODSEQ criterion enables CONDSTORE */
    node_order(root);

    struct mbox *mb = s->mbox;
    size_t count = mb->count, nres = 0;
    enum imapd_need need = root->cost == COST_FILE ? IMAPD_NEED_FILE
                           : envelope_will_do(root) ? IMAPD_NEED_ENVELOPE : IMAPD_NEED_HEADER;
    uint32_t *res = xreallocarray(NULL, count ? count : 1, sizeof(*res));
    uint64_t maxmodseq = 0;
    for (size_t i = 0; i < count; i++) {
        struct smsg sm;

        memset(&sm, 0, sizeof(sm));
        sm.m = &mb->msgs[i];
        sm.seq = (uint32_t) (i + 1);
        enum tri t = eval(root, &sm, mb, count);
        if (t == T_UNKNOWN) {
            /* the view did not decide: read the file once, as far as the costliest key needs */
            if ((sm.mime = imapd_load_message(s, i, need, &raw, "SEARCH")) != NULL)
                t = eval(root, &sm, mb, count);
            else
                t = T_FALSE;            /* expunged meanwhile: its text cannot match */
        }
        if (t == T_TRUE) {
            res[nres++] = uid ? sm.m->uid : sm.seq;
            if (sm.m->modseq > maxmodseq)
                maxmodseq = sm.m->modseq;
        }
        mime_free(sm.mime);
        sb_free(&sm.hdr);
        sb_free(&sm.body);
    }
    node_free(root);
    sb_free(&raw);

    if (esearch) {
        sb_puts(&out, "* ESEARCH (TAG ");
        imap_write_string(&out, tag, strlen(tag));
        sb_putc(&out, ')');
        if (uid)
            sb_puts(&out, " UID");
        if ((opts & RET_MIN) && nres > 0)
            sb_printf(&out, " MIN %u", res[0]);
        if ((opts & RET_MAX) && nres > 0)
            sb_printf(&out, " MAX %u", res[nres - 1]);
        if ((opts & RET_ALL) && nres > 0) {
            sb_puts(&out, " ALL ");
            imap_seqset_format(&out, res, nres);
        }
        if (opts & RET_COUNT)
            sb_printf(&out, " COUNT %zu", nres);
        if (p.modseq_used && nres > 0)
            sb_printf(&out, " MODSEQ %llu", (unsigned long long) maxmodseq);
    } else {
        sb_puts(&out, "* SEARCH");
        for (size_t k = 0; k < nres; k++)
            sb_printf(&out, " %u", res[k]);
        if (p.modseq_used && nres > 0)
            sb_printf(&out, " (MODSEQ %llu)", (unsigned long long) maxmodseq);
    }
    sb_puts(&out, "\r\n");
    imapd_write(s, out.data, out.len);
    imapd_tagged(s, tag, "OK Search completed.");
    free(res);
    sb_free(&out);
    sb_free(&err);
}
