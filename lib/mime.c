/*
 * mime - the part tree of a stored message, BODY[section] texts and header
 * field access (interface: mime.h). ENVELOPE/BODYSTRUCTURE output lives in
 * mime_imap.c, decoding (RFC 2047, base64, quoted-printable, dates) in
 * mime_decode.c.
 *
 * The parser makes ONE pass over the lines of the message with an explicit
 * stack of open parts (no recursion): each line starting with "--" is compared
 * with the boundaries of the open multiparts (at most MIME_MAX_DEPTH of them),
 * so the time is linear in the message size whatever its shape. Running
 * counts of LFs and bare LFs at each line start give every part's CRLF size
 * and line count without a second scan of its body.
 *
 * Conventions, checked against Dovecot 2.3 (tests/unit/test_mime.c):
 *  - the line break before a boundary belongs to the boundary, not the part
 *    (not even to the part's header when its body is empty), except when it
 *    ends a boundary line itself ("--inner--" right before "--outer");
 *  - a part's line count is the number of LFs in its body;
 *  - a multipart without a boundary, or whose boundary never occurs, or that
 *    is nested too deep, has no parts (BODYSTRUCTURE shows one empty
 *    text/plain part, as Dovecot does); its whole body is its content;
 *  - a part header cut short by a boundary or the end of the message ends
 *    there, with an empty body;
 *  - once MIME_MAX_PARTS parts exist, boundaries are no longer recognised:
 *    the rest of the message belongs to the multipart that met the boundary
 *    (and the parts that enclose it), not to any part of its own.
 */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "mem.h"
#include "strbuf.h"
#include "mime.h"

#define MAX_PARAMS      64              /* Content-Type parameters kept per part */
#define MAX_SECTION_NUM 1000000         /* part numbers beyond this cannot exist */

enum mode { M_HEADER, M_BODY, M_PREAMBLE, M_PARTS, M_EPILOGUE };

struct node {
    struct mime_part part;
    size_t  parent;                     /* index; the root is its own parent */
    unsigned depth;
    enum mode mode;
    const char *boundary;               /* multipart: points into params */
    size_t  blen;
    size_t  lf_body, bare_body;         /* LF / bare-LF counts before body_off */
};

struct parser {
    const char *data;
    size_t  len;
    struct node *nodes;
    size_t  count, cap;                 /* nodes grows up to MIME_MAX_PARTS */
    size_t  stack[MIME_MAX_DEPTH + 1];  /* open nodes, outermost first */
    size_t  sp;
    bool    boundaries_off;             /* MIME_MAX_PARTS reached */
    size_t  lf, bare;                   /* counts before the current line */
    size_t  last_boundary_end;          /* just past the last boundary line */
};

/* ---- header fields ---- */

/* line_end - offset just past the line starting at pos (after its LF, or len) */
static size_t line_end(const char *s, size_t len, size_t pos)
{
    const char *nl = memchr(s + pos, '\n', len - pos);

    return nl ? (size_t) (nl - s) + 1 : len;
}

/* is_blank_line - the line [pos, end) is "\n" or "\r\n" */
static bool is_blank_line(const char *s, size_t pos, size_t end)
{
    return (end - pos == 1 && s[pos] == '\n') || (end - pos == 2 && s[pos] == '\r' && s[pos + 1] == '\n');
}

/*
 * next_field - the field at pos in hdr[0..len): its name [pos, *name_end),
 * its value [*value_off, returned end) including continuation lines and the
 * final line break. Lines without a colon are skipped (with their
 * continuations). Returns 0 at the blank line or the end of the block.
 */
static size_t next_field(const char *hdr, size_t len, size_t *pos, size_t *name_end, size_t *value_off)
{
    while (*pos < len) {
        size_t  p = *pos, end = line_end(hdr, len, p);

        if (is_blank_line(hdr, p, end))
            return 0;
        while (end < len && (hdr[end] == ' ' || hdr[end] == '\t'))
            end = line_end(hdr, len, end);
        const char *colon = hdr[p] == ' ' || hdr[p] == '\t' ? NULL : memchr(hdr + p, ':', end - p);

        if (colon == NULL) {            /* a stray continuation or junk line */
            *pos = end;
            continue;
        }
        size_t  ne = (size_t) (colon - hdr);

        while (ne > p && (hdr[ne - 1] == ' ' || hdr[ne - 1] == '\t'))
            ne--;                       /* obsolete "Subject :" */
        *name_end = ne;
        *value_off = (size_t) (colon - hdr) + 1;
        return end;
    }
    return 0;
}

/* unfold - append s[0..len) without CR, LF and NUL, leading and trailing white space removed */
static void unfold(const char *s, size_t len, struct strbuf *out)
{
    size_t  start = sb_len(out);

    while (len && (*s == ' ' || *s == '\t' || *s == '\r' || *s == '\n'))
        s++, len--;
    for (size_t i = 0; i < len;) {
        size_t  j = i;

        while (j < len && s[j] != '\r' && s[j] != '\n' && s[j] != '\0')
            j++;
        sb_append(out, s + i, j - i);
        i = j < len ? j + 1 : j;
    }
    size_t  n = sb_len(out);

    while (n > start && (out->data[n - 1] == ' ' || out->data[n - 1] == '\t'))
        n--;
    sb_truncate(out, n);
}

/* mime_header_get - the first field called name, unfolded */
bool mime_header_get(const char *hdr, size_t len, const char *name, struct strbuf *value)
{
    size_t  pos = 0, name_end, value_off, end, nlen = strlen(name);

    while ((end = next_field(hdr, len, &pos, &name_end, &value_off)) != 0) {
        if (name_end - pos == nlen && strncasecmp(hdr + pos, name, nlen) == 0) {
            sb_reset(value);
            unfold(hdr + value_off, end - value_off, value);
            return true;
        }
        pos = end;
    }
    return false;
}

/* mime_header_foreach - every field in order, until fn says stop */
void mime_header_foreach(const char *hdr, size_t len,
                         bool (*fn)(const char *name, const char *value, void *ctx), void *ctx)
{
    struct strbuf name = STRBUF_INIT, value = STRBUF_INIT;
    size_t  pos = 0, name_end, value_off, end;
    bool    go = true;

    while (go && (end = next_field(hdr, len, &pos, &name_end, &value_off)) != 0) {
        sb_reset(&name);
        unfold(hdr + pos, name_end - pos, &name);
        sb_reset(&value);
        unfold(hdr + value_off, end - value_off, &value);
        go = fn(sb_str(&name), sb_str(&value), ctx);
        pos = end;
    }
    sb_free(&name);
    sb_free(&value);
}

/* ---- Content-Type and friends (RFC 2045, RFC 2231) ---- */

/* is_token_char - RFC 2045 token: not a tspecial, white space or control */
static bool is_token_char(unsigned char c)
{
    return c > ' ' && c != 0x7f && strchr("()<>@,;:\\\"/[]?=", c) == NULL;
}

/* skip_cfws - skip white space and (nested) comments from *p */
static void skip_cfws(const char **p)
{
    const char *s = *p;

    for (;;) {
        while (*s == ' ' || *s == '\t')
            s++;
        if (*s != '(')
            break;
        size_t  level = 0;

        do {
            if (*s == '\\' && s[1] != '\0')
                s++;
            else if (*s == '(')
                level++;
            else if (*s == ')')
                level--;
            s++;
        } while (*s != '\0' && level > 0);
    }
    *p = s;
}

/* get_token - a token at *p, lower-cased when asked; NULL if none */
static char *get_token(const char **p, bool lower)
{
    const char *s = *p;

    skip_cfws(&s);
    const char *start = s;

    while (is_token_char((unsigned char) *s))
        s++;
    if (s == start)
        return NULL;
    char   *tok = xstrndup(start, (size_t) (s - start));

    if (lower)
        for (char *t = tok; *t; t++)
            *t = (char) tolower((unsigned char) *t);
    *p = s;
    return tok;
}

/* get_value - a parameter value: quoted string, or anything up to ';' (lenient) */
static char *get_value(const char **p)
{
    struct strbuf v = STRBUF_INIT;
    const char *s = *p;

    skip_cfws(&s);
    if (*s == '"') {
        for (s++; *s != '\0' && *s != '"'; s++) {
            if (*s == '\\' && s[1] != '\0')
                s++;
            sb_putc(&v, *s);
        }
        if (*s == '"')
            s++;
    } else {
        const char *start = s;

        while (*s != '\0' && *s != ';')
            s++;
        const char *e = s;

        while (e > start && (e[-1] == ' ' || e[-1] == '\t'))
            e--;
        sb_append(&v, start, (size_t) (e - start));
    }
    *p = s;
    if (v.data == NULL)
        sb_reset(&v);
    return sb_detach(&v);
}

/* pct_encode - append s with the bytes RFC 2231 does not allow raw as %XX */
static void pct_encode(struct strbuf *out, const char *s)
{
    for (; *s; s++) {
        unsigned char c = (unsigned char) *s;

        if (is_token_char(c) && c != '*' && c != '\'' && c != '%' && c < 0x80)
            sb_putc(out, c);
        else
            sb_printf(out, "%%%02X", c);
    }
}

/*
 * join_2231 - apply RFC 2231 continuations: name*0, name*1... (each maybe
 * with a trailing "*" for an encoded section) become one parameter. Like
 * Dovecot, an encoded value stays encoded ("name*" = "utf-8''a%20b"): clients
 * decode RFC 2231 in BODYSTRUCTURE themselves.
 */
static void join_2231(struct mime_param *pv, size_t *np)
{
    size_t  n = *np, out = 0;
    struct mime_param *res = xcalloc(n ? n : 1, sizeof(*res));

    for (size_t i = 0; i < n; i++) {
        char   *star = pv[i].name ? strchr(pv[i].name, '*') : NULL;

        if (pv[i].name == NULL)
            continue;                   /* consumed by a group */
        if (star == NULL || !isdigit((unsigned char) star[1])) {
            res[out++] = pv[i];
            pv[i].name = pv[i].value = NULL;
            continue;
        }
        /* pv[i] belongs to a continuation group: join base*0, base*1... in order */
        size_t  blen = (size_t) (star - pv[i].name);
        char   *base = xstrndup(pv[i].name, blen);
        struct strbuf val = STRBUF_INIT;
        bool    encoded = false, any = false;

        sb_reset(&val);
        for (unsigned long want = 0;; want++) {
            size_t  k;

            for (k = i; k < n; k++) {
                const char *nm = pv[k].name;
                char   *end;

                if (nm == NULL || strncmp(nm, base, blen) != 0 || nm[blen] != '*'
                    || !isdigit((unsigned char) nm[blen + 1]))
                    continue;
                unsigned long num = strtoul(nm + blen + 1, &end, 10);

                if (num != want || (*end != '\0' && strcmp(end, "*") != 0))
                    continue;
                bool    enc = *end == '*';

                if (want == 0)
                    encoded = enc;
                if (encoded && !enc)
                    pct_encode(&val, pv[k].value);
                else
                    sb_puts(&val, pv[k].value);
                free(pv[k].name), free(pv[k].value);
                pv[k].name = pv[k].value = NULL;
                any = true;
                break;
            }
            if (k == n)
                break;
        }
        if (!any) {                     /* no base*0: keep the section as written */
            free(base);
            sb_free(&val);
            res[out++] = pv[i];
            pv[i].name = pv[i].value = NULL;
            continue;
        }
        if (encoded) {                  /* the name keeps its "*": the value is still encoded */
            char   *nm = xmalloc(blen + 2);

            memcpy(nm, base, blen);
            nm[blen] = '*', nm[blen + 1] = '\0';
            free(base);
            base = nm;
        }
        res[out].name = base;
        res[out].value = sb_detach(&val);
        out++;
    }
    /* sections left over after a gap (name*0, name*2) are dropped */
    for (size_t i = 0; i < n; i++)
        free(pv[i].name), free(pv[i].value);
    if (out > 0)
        memcpy(pv, res, out * sizeof(*res));
    free(res);
    *np = out;
}

/* parse_params - "; name=value" list at p into *pv and *np */
static void parse_params(const char *p, struct mime_param **pv, size_t *np)
{
    *pv = NULL;
    *np = 0;
    while (*np < MAX_PARAMS) {
        skip_cfws(&p);
        if (*p != ';') {                /* junk: resynchronise at the next ';' */
            p = strchr(p, ';');
            if (p == NULL)
                break;
        }
        p++;
        char   *name = get_token(&p, true);

        if (name == NULL)
            continue;
        skip_cfws(&p);
        if (*p != '=') {
            free(name);
            continue;
        }
        p++;
        *pv = xreallocarray(*pv, *np + 1, sizeof(**pv));
        (*pv)[*np].name = name;
        (*pv)[*np].value = get_value(&p);
        (*np)++;
    }
    join_2231(*pv, np);
    if (*np == 0) {
        free(*pv);
        *pv = NULL;
    }
}

/* param_get - the value of parameter name, or NULL */
static const char *param_get(const struct mime_param *pv, size_t n, const char *name)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(pv[i].name, name) == 0)
            return pv[i].value;
    return NULL;
}

/* set_default_type - text/plain; charset=us-ascii */
static void set_default_type(struct mime_part *mp)
{
    mp->type = xstrdup("text");
    mp->subtype = xstrdup("plain");
    mp->params = xmalloc(sizeof(*mp->params));
    mp->params[0].name = xstrdup("charset");
    mp->params[0].value = xstrdup("us-ascii");
    mp->nparams = 1;
}

/* header_string - an unfolded field value, NULL when absent */
static char *header_string(const char *hdr, size_t len, const char *name, struct strbuf *tmp)
{
    return mime_header_get(hdr, len, name, tmp) ? xstrdup(sb_str(tmp)) : NULL;
}

/* finish_header - read the MIME fields of node's header block [hdr_off, body_off) */
static void finish_header(struct parser *ps, struct node *nd)
{
    struct mime_part *mp = &nd->part;
    const char *hdr = ps->data + mp->hdr_off;
    size_t  hlen = mp->body_off - mp->hdr_off;
    struct strbuf v = STRBUF_INIT;
    const struct node *parent = nd == ps->nodes ? NULL : &ps->nodes[nd->parent];

    if (mime_header_get(hdr, hlen, "Content-Type", &v)) {
        const char *p = sb_str(&v);
        char   *type = get_token(&p, true), *subtype = NULL;

        skip_cfws(&p);
        if (type != NULL && *p == '/') {
            p++;
            subtype = get_token(&p, true);
        }
        if (type != NULL && subtype != NULL) {
            mp->type = type;
            mp->subtype = subtype;
            parse_params(p, &mp->params, &mp->nparams);
        } else {                        /* RFC 2045 5.2: malformed is text/plain */
            free(type);
            free(subtype);
            set_default_type(mp);
        }
    } else if (parent != NULL && parent->part.is_multipart && strcmp(parent->part.subtype, "digest") == 0) {
        mp->type = xstrdup("message");  /* RFC 2046 5.1.5 */
        mp->subtype = xstrdup("rfc822");
    } else {
        set_default_type(mp);
    }
    if (strcmp(mp->type, "text") == 0 && param_get(mp->params, mp->nparams, "charset") == NULL
        && mp->nparams < MAX_PARAMS) {  /* Dovecot adds the RFC 2045 default too */
        mp->params = xreallocarray(mp->params, mp->nparams + 1, sizeof(*mp->params));
        mp->params[mp->nparams].name = xstrdup("charset");
        mp->params[mp->nparams].value = xstrdup("us-ascii");
        mp->nparams++;
    }
    mp->is_multipart = strcmp(mp->type, "multipart") == 0;
    mp->is_message = strcmp(mp->type, "message") == 0
        && (strcmp(mp->subtype, "rfc822") == 0 || strcmp(mp->subtype, "global") == 0);
    /* A message (not a body part) with neither MIME-Version nor Content-Type is
     * not MIME (RFC 2045 4): its other Content-* fields mean nothing, as in Dovecot. */
    if ((parent == NULL || parent->part.is_message) && !mime_header_get(hdr, hlen, "MIME-Version", &v)
        && !mime_header_get(hdr, hlen, "Content-Type", &v)) {
        mp->encoding = xstrdup("7BIT");
        sb_free(&v);
        return;
    }

    if (mime_header_get(hdr, hlen, "Content-Transfer-Encoding", &v)) {
        const char *p = sb_str(&v);

        mp->encoding = get_token(&p, false);
    }
    if (mp->encoding == NULL)
        mp->encoding = xstrdup("7BIT");
    for (char *t = mp->encoding; *t; t++)
        *t = (char) toupper((unsigned char) *t);

    mp->id = header_string(hdr, hlen, "Content-ID", &v);
    mp->description = header_string(hdr, hlen, "Content-Description", &v);
    mp->md5 = header_string(hdr, hlen, "Content-MD5", &v);
    mp->language = header_string(hdr, hlen, "Content-Language", &v);
    mp->location = header_string(hdr, hlen, "Content-Location", &v);
    if (mime_header_get(hdr, hlen, "Content-Disposition", &v)) {
        const char *p = sb_str(&v);

        mp->disposition = get_token(&p, true);
        if (mp->disposition != NULL)
            parse_params(p, &mp->disp_params, &mp->ndisp_params);
    }
    sb_free(&v);
}

/* ---- the line scanner ---- */

/* new_node - a part whose header starts at off, child of parent (the root when count is 0) */
static size_t new_node(struct parser *ps, size_t parent, size_t off)
{
    size_t  i = ps->count++;
    struct node *nd;

    if (i >= ps->cap) {                 /* most messages have a part or three: start small */
        ps->cap = ps->cap ? ps->cap * 2 : 4;
        if (ps->cap > MIME_MAX_PARTS)
            ps->cap = MIME_MAX_PARTS;
        ps->nodes = xreallocarray(ps->nodes, ps->cap, sizeof(*ps->nodes));
    }
    nd = &ps->nodes[i];

    memset(nd, 0, sizeof(*nd));
    nd->parent = parent;
    nd->depth = i == 0 ? 0 : ps->nodes[parent].depth + 1;
    nd->mode = M_HEADER;
    nd->part.hdr_off = nd->part.body_off = nd->part.end_off = off;
    ps->stack[ps->sp++] = i;
    return i;
}

/* header_done - the header of the top node ends; its body starts at off */
static void header_done(struct parser *ps, size_t idx, size_t off)
{
    struct node *nd = &ps->nodes[idx];

    nd->part.body_off = off;
    nd->lf_body = ps->lf;
    nd->bare_body = ps->bare;
    finish_header(ps, nd);
    nd->mode = M_BODY;
    if (nd->part.is_multipart) {
        const char *b = param_get(nd->part.params, nd->part.nparams, "boundary");

        nd->mode = M_EPILOGUE;          /* no usable boundary: no parts */
        if (b != NULL && *b != '\0' && nd->depth < MIME_MAX_DEPTH) {
            nd->boundary = b;
            nd->blen = strlen(b);
            nd->mode = M_PREAMBLE;
        }
    } else if (nd->part.is_message && nd->depth < MIME_MAX_DEPTH && ps->count < MIME_MAX_PARTS) {
        new_node(ps, idx, off);
    }
}

/* close_node - the top node ends at end, where the LF counts are lf, bare */
static void close_node(struct parser *ps, size_t end, size_t lf, size_t bare)
{
    size_t  idx = ps->stack[--ps->sp];
    struct node *nd = &ps->nodes[idx];

    if (nd->mode == M_HEADER) {
        size_t  sp0 = ps->sp;

        header_done(ps, idx, end < nd->part.hdr_off ? nd->part.hdr_off : end);
        if (ps->sp > sp0)               /* it pushed an encapsulated message: close that too */
            close_node(ps, end, lf, bare);
        nd = &ps->nodes[idx];
    }
    if (end <= nd->part.body_off) {
        /* empty body: the line break before the boundary is not the header's either */
        if (end < nd->part.hdr_off)
            nd->part.hdr_off = end;
        nd->part.body_off = end;
        lf = nd->lf_body;
        bare = nd->bare_body;
    }
    nd->part.end_off = end;
    nd->part.body_size = end - nd->part.body_off + (bare - nd->bare_body);
    nd->part.body_lines = lf - nd->lf_body;
}

/* boundary_match - line[0..n) (no line break) is "--b" or "--b--" plus white space: 1, 2 (close); else 0 */
static int boundary_match(const char *line, size_t n, const char *b, size_t blen)
{
    if (n < blen + 2 || memcmp(line + 2, b, blen) != 0)
        return 0;
    size_t  i = blen + 2;
    int     kind = 1;

    if (n - i >= 2 && line[i] == '-' && line[i + 1] == '-')
        i += 2, kind = 2;
    for (; i < n; i++)
        if (line[i] != ' ' && line[i] != '\t' && line[i] != '\r')
            return 0;
    return kind;
}

/* find_boundary - the stack level whose boundary the line is, innermost first; -1 if none */
static int find_boundary(const struct parser *ps, const char *line, size_t n, int *kind)
{
    if (ps->boundaries_off || n < 2 || line[0] != '-' || line[1] != '-')
        return -1;
    for (size_t i = ps->sp; i-- > 0;) {
        const struct node *nd = &ps->nodes[ps->stack[i]];

        if (nd->boundary != NULL && (nd->mode == M_PREAMBLE || nd->mode == M_PARTS)
            && (*kind = boundary_match(line, n, nd->boundary, nd->blen)) != 0)
            return (int) i;
    }
    return -1;
}

/* on_boundary - a boundary line [p, q) of the multipart at stack level lvl */
static void on_boundary(struct parser *ps, size_t lvl, int kind, size_t p, size_t q)
{
    size_t  end = p, lf = ps->lf, bare = ps->bare;

    /* the line break before belongs to the boundary, unless it ends a boundary line itself
     * (a close delimiter right before the outer boundary: Dovecot does the same) */
    if (p > 0 && ps->data[p - 1] == '\n' && p != ps->last_boundary_end) {
        end--, lf--;
        if (p > 1 && ps->data[p - 2] == '\r')
            end--;
        else
            bare--;
    }
    ps->last_boundary_end = q;
    while (ps->sp > lvl + 1)
        close_node(ps, end, lf, bare);
    size_t  idx = ps->stack[lvl];

    if (kind == 2) {
        ps->nodes[idx].mode = M_EPILOGUE;
        return;
    }
    if (ps->count >= MIME_MAX_PARTS) {
        ps->boundaries_off = true;
        return;
    }
    ps->nodes[idx].mode = M_PARTS;
    new_node(ps, idx, q);
}

/* build_tree - move the flat node array into msg->root and children arrays */
static void build_tree(struct parser *ps, struct mime_message *msg)
{
    size_t *slot = xcalloc(ps->count, sizeof(*slot));

    for (size_t i = 1; i < ps->count; i++)
        slot[i] = ps->nodes[ps->nodes[i].parent].part.nchildren++;
    for (size_t i = 0; i < ps->count; i++)
        if (ps->nodes[i].part.nchildren > 0)
            ps->nodes[i].part.children = xcalloc(ps->nodes[i].part.nchildren, sizeof(struct mime_part));
    /* children come after their parent in the array: copy them first */
    for (size_t i = ps->count; i-- > 1;)
        ps->nodes[ps->nodes[i].parent].part.children[slot[i]] = ps->nodes[i].part;
    msg->root = ps->nodes[0].part;
    free(slot);
}

/* mime_parse - the part tree of data[0..len), in one pass */
struct mime_message *mime_parse(const char *data, size_t len)
{
    struct mime_message *msg = xcalloc(1, sizeof(*msg));
    struct parser ps;

    memset(&ps, 0, sizeof(ps));
    ps.data = data;
    ps.len = len;
    new_node(&ps, 0, 0);

    for (size_t p = 0; p < len;) {
        size_t  q = line_end(data, len, p), n = q - p;
        int     kind = 0, lvl;

        if (n > 0 && data[q - 1] == '\n')
            n--;
        if ((lvl = find_boundary(&ps, data + p, n, &kind)) >= 0) {
            on_boundary(&ps, (size_t) lvl, kind, p, q);
        } else {
            size_t  top = ps.stack[ps.sp - 1];

            if (ps.nodes[top].mode == M_HEADER && is_blank_line(data, p, q)) {
                ps.lf++;                /* the blank line belongs to the header */
                if (n == 0)
                    ps.bare++;
                header_done(&ps, top, q);
                p = q;
                continue;
            }
        }
        if (q > p && data[q - 1] == '\n') {
            ps.lf++;
            if (q - p < 2 || data[q - 2] != '\r')
                ps.bare++;
        }
        p = q;
    }
    while (ps.sp > 0)
        close_node(&ps, len, ps.lf, ps.bare);

    msg->data = data;
    msg->len = len;
    build_tree(&ps, msg);
    free(ps.nodes);
    return msg;
}

/* free_params - release a parameter array */
static void free_params(struct mime_param *pv, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(pv[i].name), free(pv[i].value);
    free(pv);
}

/* free_part - release what part owns (depth is bounded by MIME_MAX_DEPTH) */
static void free_part(struct mime_part *mp)
{
    for (size_t i = 0; i < mp->nchildren; i++)
        free_part(&mp->children[i]);
    free(mp->children);
    free(mp->type), free(mp->subtype);
    free_params(mp->params, mp->nparams);
    free_params(mp->disp_params, mp->ndisp_params);
    free(mp->id), free(mp->description), free(mp->encoding);
    free(mp->md5), free(mp->disposition), free(mp->language), free(mp->location);
}

/* mime_free - release msg (not the data) */
void mime_free(struct mime_message *msg)
{
    if (msg == NULL)
        return;
    free_part(&msg->root);
    free(msg);
}

/* ---- CRLF form ---- */

/* mime_crlf_size - octets after LF -> CRLF */
size_t mime_crlf_size(const char *data, size_t len)
{
    size_t  n = len;
    const char *p = data, *end = data + len, *nl;

    while (p < end && (nl = memchr(p, '\n', (size_t) (end - p))) != NULL) {
        if (nl == data || nl[-1] != '\r')
            n++;
        p = nl + 1;
    }
    return n;
}

/* mime_append_crlf - append with bare LFs made CRLF */
void mime_append_crlf(struct strbuf *out, const char *data, size_t len)
{
    const char *p = data, *end = data + len, *nl;

    while (p < end && (nl = memchr(p, '\n', (size_t) (end - p))) != NULL) {
        if (nl == data || nl[-1] != '\r') {
            sb_append(out, p, (size_t) (nl - p));
            sb_append(out, "\r\n", 2);
        } else {
            sb_append(out, p, (size_t) (nl - p) + 1);
        }
        p = nl + 1;
    }
    sb_append(out, p, (size_t) (end - p));
}

/* ---- BODY[section] ---- */

/* cmp_name - qsort/bsearch on case-insensitive names */
static int cmp_name(const void *a, const void *b)
{
    return strcasecmp(*(char *const *) a, *(char *const *) b);
}

/* parse_field_list - "(name name ...)" at *p: sorted names; -1 if malformed */
static int parse_field_list(const char **p, char ***names, size_t *count)
{
    const char *s = *p;

    *names = NULL;
    *count = 0;
    if (*s++ != '(')
        return -1;
    for (;;) {
        struct strbuf nm = STRBUF_INIT;

        while (*s == ' ')
            s++;
        if (*s == ')' && *count > 0)
            break;
        if (*s == '"') {
            for (s++; *s != '"'; s++) {
                if (*s == '\\' && (s[1] == '"' || s[1] == '\\'))
                    s++;
                if (*s == '\0' || *s == '\r' || *s == '\n') {
                    sb_free(&nm);
                    return -1;
                }
                sb_putc(&nm, *s);
            }
            s++;
        } else {
            while (*s > ' ' && *s < 0x7f && strchr("()\"{%*\\]", *s) == NULL)
                sb_putc(&nm, *s++);
        }
        if (sb_len(&nm) == 0 || strchr(sb_str(&nm), ':') != NULL || (*s != ' ' && *s != ')')) {
            sb_free(&nm);
            return -1;
        }
        *names = xreallocarray(*names, *count + 1, sizeof(**names));
        (*names)[(*count)++] = sb_detach(&nm);
    }
    *p = s + 1;
    qsort(*names, *count, sizeof(**names), cmp_name);
    return 0;
}

/* append_fields - the fields of hdr[0..len) named (or, with not, not named) in names, then CRLF */
static void append_fields(struct strbuf *out, const char *hdr, size_t len, char **names, size_t count,
                          bool not)
{
    struct strbuf nm = STRBUF_INIT;
    size_t  pos = 0, name_end, value_off, end;

    while ((end = next_field(hdr, len, &pos, &name_end, &value_off)) != 0) {
        sb_reset(&nm);
        sb_append(&nm, hdr + pos, name_end - pos);
        const char *key = sb_str(&nm);
        bool    hit = bsearch(&key, names, count, sizeof(*names), cmp_name) != NULL;

        if (hit != not) {
            mime_append_crlf(out, hdr + pos, end - pos);
            if (hdr[end - 1] != '\n')
                sb_append(out, "\r\n", 2);
        }
        pos = end;
    }
    sb_append(out, "\r\n", 2);
    sb_free(&nm);
}

/* section_word - the section text at *p starts with word (case-insensitive) followed by a
 * character in follow (or the end); advance past the word */
static bool section_word(const char **p, const char *word, const char *follow)
{
    size_t  n = strlen(word);

    if (strncasecmp(*p, word, n) != 0 || ((*p)[n] != '\0' && strchr(follow, (*p)[n]) == NULL))
        return false;
    *p += n;
    return true;
}

/* append_range - data[from, to) in CRLF form */
static void append_range(const struct mime_message *msg, struct strbuf *out, size_t from, size_t to)
{
    if (from < to && to <= msg->len)
        mime_append_crlf(out, msg->data + from, to - from);
}

/* mime_section - the text of BODY[section] */
int mime_section(const struct mime_message *msg, const char *section, struct strbuf *out,
                 struct strbuf *err)
{
    const char *p = section;
    const struct mime_part *msgpart = &msg->root, *part = NULL;
    bool    exists = true, numbered = false, self = false;

    if (*p == '\0') {                   /* BODY[]: the whole message */
        append_range(msg, out, 0, msg->len);
        return 0;
    }
    /* part numbers: each selects a part of the current message or multipart */
    while (isdigit((unsigned char) *p)) {
        unsigned long n = 0;

        if (*p == '0')
            goto bad;
        while (isdigit((unsigned char) *p)) {
            n = n * 10 + (unsigned long) (*p++ - '0');
            if (n > MAX_SECTION_NUM)
                goto bad;
        }
        if (*p != '\0' && *p != '.')
            goto bad;
        numbered = true;
        if (exists) {
            if (part != NULL) {         /* going into the part selected before */
                if (part->is_message && part->nchildren == 1)
                    msgpart = &part->children[0], self = false;
                else if (part->is_message)
                    exists = false;     /* not parsed (limits) */
                else                    /* a leaf's part 1 is itself, as in Dovecot */
                    msgpart = part;
            }
            if (exists && msgpart->is_multipart)
                part = n <= msgpart->nchildren ? &msgpart->children[n - 1] : NULL;
            else if (exists)            /* a non-multipart message's part 1 is its body (once) */
                part = n == 1 && !self ? msgpart : NULL;
            self = exists && !msgpart->is_multipart;
            exists = exists && part != NULL;
        }
        if (*p == '\0')
            break;
        p++;
        if (!isdigit((unsigned char) *p))
            break;
    }
    if (numbered && *p == '\0' && p[-1] == '.')
        goto bad;                       /* "1." */
    if (numbered && *p == '\0') {       /* BODY[1.2]: the part's content */
        if (exists)
            append_range(msg, out, part->body_off, part->end_off);
        return 0;
    }
    if (numbered && section_word(&p, "MIME", "")) {
        if (exists)
            append_range(msg, out, part->hdr_off, part->body_off);
        return 0;
    }
    /* HEADER, TEXT, HEADER.FIELDS: of the top message or of a message/rfc822 part */
    const struct mime_part *m = &msg->root;

    if (numbered) {
        if (exists && part->is_message && part->nchildren == 1)
            m = &part->children[0];
        else
            exists = false;
    }
    if (section_word(&p, "TEXT", "")) {
        if (exists)
            append_range(msg, out, m->body_off, m->end_off);
        return 0;
    }
    if (!section_word(&p, "HEADER", "."))
        goto bad;
    if (*p == '\0') {
        if (exists)
            append_range(msg, out, m->hdr_off, m->body_off);
        return 0;
    }
    bool    not = false;

    if (section_word(&p, ".FIELDS.NOT", " "))
        not = true;
    else if (!section_word(&p, ".FIELDS", " "))
        goto bad;
    if (*p++ != ' ')
        goto bad;
    char  **names;
    size_t  count;

    if (parse_field_list(&p, &names, &count) < 0 || *p != '\0') {
        for (size_t i = 0; names != NULL && i < count; i++)
            free(names[i]);
        free(names);
        goto bad;
    }
    if (exists)
        append_fields(out, msg->data + m->hdr_off, m->body_off - m->hdr_off, names, count, not);
    for (size_t i = 0; i < count; i++)
        free(names[i]);
    free(names);
    return 0;

  bad:
    sb_reset(err);
    sb_printf(err, "Invalid BODY[] section");
    return -1;
}
