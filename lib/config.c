/*
 * config - main.cf reader with Postfix semantics. Syntax: see config.h.
 *
 * Interface: config.h (config_load, config_override, the getters, the
 * config_parse_* helpers in config_params.c) and, for master_cf.c only,
 * config_params.h (config_reader_*, config_check_override).
 *
 * Every known parameter and every name set in main.cf is an entry in one
 * array sorted by name. After loading, and again after every override, each
 * entry is expanded and typed values are parsed (validate_all), so that:
 *   - a bad value, a "$" syntax error or a $name loop is reported once, at
 *     load, as "path:line: ...", and a running daemon never sees one;
 *   - getters are a binary search and a cached string, and can only fail on a
 *     programming error (unknown name, wrong type), which is msg_panic.
 * Strings handed out by getters stay valid until config_free(), even across
 * later overrides (replaced values are kept on a "retired" list).
 *
 * Diagnostics: load errors "path:line: what; suggestion" in err; warnings
 * (unknown names with a "did you mean", repeated names, config_directory in
 * main.cf) collected for config_warnings(). Override errors carry no location:
 * the caller (master.cf, a command line) knows where the text came from.
 */
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "mem.h"
#include "strbuf.h"
#include "log.h"
#include "strlist.h"
#include "config.h"
#include "config_params.h"

#define EXPAND_DEPTH_MAX    64          /* nested $name and ${x?...} levels */
#define MASTER_CF_SCAN_MAX  (1024 * 1024)
#define QUOTE_MAX           80          /* bytes of a bad value quoted in messages */

struct entry {
    char   *name;
    const struct config_param *param;   /* NULL: not a parameter Postern knows */
    char   *value;                      /* as written; NULL: the default applies */
    int     line;                       /* main.cf line; 0: default or override */
    bool    set;                        /* given in main.cf or by an override */
    bool    by_override;
    bool    literal;                    /* value is not expanded (config_directory) */
    bool    referenced;                 /* some value uses $name */
    bool    expanding;                  /* on the expansion stack: loop detection */
    char   *cache;                      /* expanded value */
    char   *prev_cache;                 /* during revalidation: reused if unchanged */
    long long num;                      /* typed value; bool as 0/1 */
};

struct warning {
    int     line;
    char   *text;
};

struct config {
    char   *dir;
    char   *path;
    struct entry *ent;
    size_t  count;
    size_t  cap;
    char   *hostname;                   /* gethostname(), sanitized */
    size_t  stack[EXPAND_DEPTH_MAX + 2];/* entries being expanded, for loop messages */
    size_t  depth;
    struct warning *warn;               /* while loading */
    size_t  nwarn;
    struct strbuf warnings;
    char  **retired;
    size_t  nretired;
};

 /*
  * Logical lines, shared with master_cf.c.
  */

/* config_reader_init - read logical lines from fp; path is for messages */
void config_reader_init(struct config_reader *r, FILE *fp, const char *path)
{
    r->fp = fp;
    r->path = path;
    r->lineno = 0;
    sb_init(&r->peek);
    r->peek_line = 0;
    r->peek_valid = false;
}

/* config_reader_free - release the read-ahead buffer */
void config_reader_free(struct config_reader *r)
{
    sb_free(&r->peek);
}

/* read_physical - one line without its newline; 1 ok, 0 at end, -1 with err */
static int read_physical(struct config_reader *r, struct strbuf *line, struct strbuf *err)
{
    int     c;
    bool    any = false;

    sb_reset(line);
    while ((c = getc(r->fp)) != EOF) {
        any = true;
        if (c == '\n')
            break;
        if (c == '\0') {
            sb_reset(err);
            sb_printf(err, "%s:%d: line contains a NUL byte; is this a text file?",
                      r->path, r->lineno + 1);
            return -1;
        }
        if (line->len >= CONFIG_LINE_MAX) {
            sb_reset(err);
            sb_printf(err, "%s:%d: line is longer than %d bytes",
                      r->path, r->lineno + 1, CONFIG_LINE_MAX);
            return -1;
        }
        sb_putc(line, c);
    }
    if (ferror(r->fp)) {
        sb_reset(err);
        sb_printf(err, "%s:%d: read error: %s", r->path, r->lineno + 1, strerror(errno));
        return -1;
    }
    if (!any)
        return 0;
    r->lineno++;
    return 1;
}

/* config_reader_next - 1 with a line and its first line number, 0 at end, -1 with err */
int config_reader_next(struct config_reader *r, struct strbuf *out, int *lineno,
                       struct strbuf *err)
{
    bool    have = false;

    sb_reset(out);
    for (;;) {
        if (!r->peek_valid) {
            int     rc = read_physical(r, &r->peek, err);

            if (rc < 0)
                return -1;
            if (rc == 0)
                break;
            r->peek_valid = true;
            r->peek_line = r->lineno;
        }
        const char *s = sb_str(&r->peek);
        size_t  len = sb_len(&r->peek);
        size_t  i = 0;

        while (len > 0 && isspace((unsigned char) s[len - 1]))
            len--;
        while (i < len && isspace((unsigned char) s[i]))
            i++;
        if (i == len || s[i] == '#') {          /* blank or comment, even indented */
            r->peek_valid = false;
            continue;
        }
        if (i > 0) {                            /* continuation */
            if (!have) {
                sb_reset(err);
                sb_printf(err, "%s:%d: line starts with whitespace but there is no line "
                          "before it to continue; remove the leading whitespace",
                          r->path, r->peek_line);
                return -1;
            }
            if (sb_len(out) + 1 + (len - i) > CONFIG_LINE_MAX) {
                sb_reset(err);
                sb_printf(err, "%s:%d: logical line (with its continuation lines) is "
                          "longer than %d bytes", r->path, *lineno, CONFIG_LINE_MAX);
                return -1;
            }
            sb_putc(out, ' ');
            sb_append(out, s + i, len - i);
            r->peek_valid = false;
            continue;
        }
        if (have)
            break;                              /* keep it for the next call */
        sb_append(out, s, len);
        *lineno = r->peek_line;
        have = true;
        r->peek_valid = false;
    }
    return have ? 1 : 0;
}

 /*
  * The entry table.
  */

/* name_cmp - compare a NUL-terminated name with a counted key */
static int name_cmp(const char *name, const char *key, size_t klen)
{
    int     c = strncmp(name, key, klen);

    if (c != 0)
        return c;
    return name[klen] != '\0' ? 1 : 0;
}

/* entry_find - index of key, or -1 with *pos where it would go */
static long entry_find(const struct config *cfg, const char *key, size_t klen, size_t *pos)
{
    size_t  lo = 0;
    size_t  hi = cfg->count;

    while (lo < hi) {
        size_t  mid = lo + (hi - lo) / 2;
        int     c = name_cmp(cfg->ent[mid].name, key, klen);

        if (c == 0) {
            if (pos)
                *pos = mid;
            return (long) mid;
        }
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (pos)
        *pos = lo;
    return -1;
}

/* entry_lookup - index of a NUL-terminated name or -1 */
static long entry_lookup(const struct config *cfg, const char *name)
{
    return entry_find(cfg, name, strlen(name), NULL);
}

/* entry_insert - new empty entry at pos */
static size_t entry_insert(struct config *cfg, size_t pos, const char *name, size_t len)
{
    if (cfg->count == cfg->cap) {
        cfg->cap = cfg->cap ? cfg->cap * 2 : 128;
        cfg->ent = xreallocarray(cfg->ent, cfg->cap, sizeof(*cfg->ent));
    }
    memmove(cfg->ent + pos + 1, cfg->ent + pos, (cfg->count - pos) * sizeof(*cfg->ent));
    memset(cfg->ent + pos, 0, sizeof(*cfg->ent));
    cfg->ent[pos].name = xstrndup(name, len);
    cfg->count++;
    return pos;
}

/* retire - keep a string a getter may have returned until config_free */
static void retire(struct config *cfg, char *s)
{
    if (s == NULL)
        return;
    cfg->retired = xreallocarray(cfg->retired, cfg->nretired + 1, sizeof(char *));
    cfg->retired[cfg->nretired++] = s;
}

/* entry_remove - drop an entry that an override dry run added */
static void entry_remove(struct config *cfg, size_t idx)
{
    struct entry *e = &cfg->ent[idx];

    free(e->name);
    free(e->value);
    retire(cfg, e->cache);
    retire(cfg, e->prev_cache);
    memmove(cfg->ent + idx, cfg->ent + idx + 1, (cfg->count - idx - 1) * sizeof(*cfg->ent));
    cfg->count--;
}

 /*
  * Expansion.
  */

/* where - location prefix for a problem in entry idx's own text */
static void where(const struct config *cfg, size_t idx, struct strbuf *err)
{
    const struct entry *e = &cfg->ent[idx];

    if (e->line > 0)
        sb_printf(err, "%s:%d: ", cfg->path, e->line);
    else if (!e->by_override)
        sb_printf(err, "%s: default value of %s: ", cfg->path, e->name);
}

/* fail - set err to "LOCATION: message" for entry idx; returns -1 */
static int PRINTF_LIKE(4, 5) fail(const struct config *cfg, size_t idx, struct strbuf *err,
                                  const char *fmt, ...)
{
    va_list ap;

    sb_reset(err);
    where(cfg, idx, err);
    va_start(ap, fmt);
    sb_vprintf(err, fmt, ap);
    va_end(ap);
    return -1;
}

static const char *entry_expanded(struct config *cfg, size_t idx, int depth, struct strbuf *err);

/* is_name_char - what $name may contain, as in Postfix */
static bool is_name_char(int c)
{
    return isalnum((unsigned char) c) || c == '_';
}

/* lookup - expanded value of $name (empty if undefined); -1 with err */
static int lookup(struct config *cfg, const char *name, size_t len, int depth,
                  const char **value, struct strbuf *err)
{
    long    idx = len <= CONFIG_NAME_MAX ? entry_find(cfg, name, len, NULL) : -1;

    *value = "";
    if (idx < 0)
        return 0;
    cfg->ent[idx].referenced = true;
    if ((*value = entry_expanded(cfg, (size_t) idx, depth + 1, err)) == NULL)
        return -1;
    return 0;
}

/* put - append expanded text, bounded */
static int put(struct config *cfg, size_t owner, struct strbuf *out, const char *s,
               size_t len, struct strbuf *err)
{
    if (len > CONFIG_VALUE_MAX || sb_len(out) > CONFIG_VALUE_MAX - len)
        return fail(cfg, owner, err, "%s is longer than %d bytes after $name expansion",
                    cfg->ent[owner].name, CONFIG_VALUE_MAX);
    sb_append(out, s, len);
    return 0;
}

/* expand_text - text with $name, ${name}, $(name), ${name?x}, ${name:x}, $$ into out */
static int expand_text(struct config *cfg, const char *text, size_t len, size_t owner,
                       int depth, struct strbuf *out, struct strbuf *err)
{
    const char *value;
    size_t  i = 0;

    if (depth > EXPAND_DEPTH_MAX)
        return fail(cfg, owner, err, "expansion of %s is nested more than %d levels deep",
                    cfg->ent[owner].name, EXPAND_DEPTH_MAX);
    while (i < len) {
        if (text[i] != '$') {
            const char *dollar = memchr(text + i, '$', len - i);
            size_t  run = dollar ? (size_t) (dollar - (text + i)) : len - i;

            if (put(cfg, owner, out, text + i, run, err) < 0)
                return -1;
            i += run;
            continue;
        }
        if (i + 1 >= len)
            return fail(cfg, owner, err, "'$' at the end of the value of %s; "
                        "write $$ for a literal '$'", cfg->ent[owner].name);
        char    c = text[i + 1];

        if (c == '$') {
            if (put(cfg, owner, out, "$", 1, err) < 0)
                return -1;
            i += 2;
        } else if (c == '{' || c == '(') {
            char    close = c == '{' ? '}' : ')';
            size_t  j;
            int     level = 1;

            /* Only the same kind of bracket nests, as in Postfix. */
            for (j = i + 2; j < len; j++) {
                if (text[j] == c)
                    level++;
                else if (text[j] == close && --level == 0)
                    break;
            }
            if (j >= len)
                return fail(cfg, owner, err, "unmatched '$%c' in the value of %s; add '%c'",
                            c, cfg->ent[owner].name, close);
            const char *body = text + i + 2;
            size_t  blen = j - (i + 2);
            size_t  nlen = 0;

            while (nlen < blen && is_name_char(body[nlen]))
                nlen++;
            if (nlen == 0)
                return fail(cfg, owner, err, "'$%c' in the value of %s must be followed by "
                            "a parameter name", c, cfg->ent[owner].name);
            if (lookup(cfg, body, nlen, depth, &value, err) < 0)
                return -1;
            if (nlen == blen) {
                if (put(cfg, owner, out, value, strlen(value), err) < 0)
                    return -1;
            } else if (body[nlen] == '?' || body[nlen] == ':') {
                /* ${name?text}: text if name is non-empty; ${name:text}: if empty. */
                if ((body[nlen] == '?') == (*value != '\0')
                    && expand_text(cfg, body + nlen + 1, blen - nlen - 1, owner, depth + 1,
                                   out, err) < 0)
                    return -1;
            } else {
                return fail(cfg, owner, err, "unexpected '%c' after \"$%c%.*s\" in the value "
                            "of %s; expected '%c', '?' or ':'", body[nlen], c, (int) nlen,
                            body, cfg->ent[owner].name, close);
            }
            i = j + 1;
        } else if (is_name_char(c)) {
            size_t  nlen = 1;

            while (i + 1 + nlen < len && is_name_char(text[i + 1 + nlen]))
                nlen++;
            if (lookup(cfg, text + i + 1, nlen, depth, &value, err) < 0
                || put(cfg, owner, out, value, strlen(value), err) < 0)
                return -1;
            i += 1 + nlen;
        } else {
            return fail(cfg, owner, err, "'$' followed by '%c' in the value of %s; write $$ "
                        "for a literal '$', or $name, ${name} or $(name)",
                        c, cfg->ent[owner].name);
        }
    }
    return 0;
}

/* loop_error - "a -> b -> a" for entry idx found on the expansion stack */
static void loop_error(struct config *cfg, size_t idx, struct strbuf *err)
{
    size_t  k = 0;
    size_t  at = idx;

    while (k < cfg->depth && cfg->stack[k] != idx)
        k++;
    /* Report at the first entry of the loop that main.cf sets. */
    for (size_t m = k; m < cfg->depth; m++) {
        if (cfg->ent[cfg->stack[m]].line > 0) {
            at = cfg->stack[m];
            break;
        }
    }
    sb_reset(err);
    where(cfg, at, err);
    sb_puts(err, "parameter expansion loop: ");
    for (size_t m = k; m < cfg->depth; m++)
        sb_printf(err, "%s -> ", cfg->ent[cfg->stack[m]].name);
    sb_printf(err, "%s; one of these values must not refer back", cfg->ent[idx].name);
}

/* domain_of - hostname minus its first label, or "localdomain" */
static void domain_of(const char *host, struct strbuf *out)
{
    const char *dot = strchr(host, '.');

    sb_puts(out, dot && dot[1] ? dot + 1 : "localdomain");
}

/* entry_expanded - expanded value of entry idx, cached; NULL with err */
static const char *entry_expanded(struct config *cfg, size_t idx, int depth, struct strbuf *err)
{
    struct entry *e = &cfg->ent[idx];
    struct strbuf out = STRBUF_INIT;
    const char *v;
    int     rc = 0;

    if (e->cache)
        return e->cache;
    if (e->expanding) {
        loop_error(cfg, idx, err);
        return NULL;
    }
    if (depth > EXPAND_DEPTH_MAX || cfg->depth >= EXPAND_DEPTH_MAX) {
        fail(cfg, idx, err, "expansion of %s is nested more than %d levels deep",
             e->name, EXPAND_DEPTH_MAX);
        return NULL;
    }
    e->expanding = true;
    cfg->stack[cfg->depth++] = idx;
    if (e->literal) {
        sb_puts(&out, e->value);
    } else if (e->value) {
        rc = expand_text(cfg, e->value, strlen(e->value), idx, depth + 1, &out, err);
    } else if (e->param == NULL) {
        msg_panic("config: entry %s has neither a value nor a default", e->name);
    } else if (e->param->computed == CONFIG_DEF_HOSTNAME) {
        /* A short host name gets $mydomain, if main.cf sets one, as in Postfix. */
        sb_puts(&out, cfg->hostname);
        if (strchr(cfg->hostname, '.') == NULL) {
            long    d = entry_lookup(cfg, "mydomain");

            if (d >= 0 && cfg->ent[d].set) {
                if ((v = entry_expanded(cfg, (size_t) d, depth + 1, err)) == NULL)
                    rc = -1;
                else if (*v)
                    sb_printf(&out, ".%s", v);
            } else {
                sb_puts(&out, ".localdomain");
            }
        }
    } else if (e->param->computed == CONFIG_DEF_DOMAIN) {
        long    h = entry_lookup(cfg, "myhostname");

        if (h < 0)
            msg_panic("config: myhostname is missing from the parameter table");
        if ((v = entry_expanded(cfg, (size_t) h, depth + 1, err)) == NULL)
            rc = -1;
        else
            domain_of(v, &out);
    } else {
        rc = expand_text(cfg, e->param->def, strlen(e->param->def), idx, depth + 1, &out, err);
    }
    cfg->depth--;
    e = &cfg->ent[idx];
    e->expanding = false;
    if (rc < 0) {
        sb_free(&out);
        return NULL;
    }
    char   *s;

    sb_truncate(&out, sb_len(&out));    /* sb_detach() of an empty strbuf lacks the NUL */
    s = sb_detach(&out);
    if (e->prev_cache && strcmp(e->prev_cache, s) == 0) {
        free(s);                        /* unchanged: keep the pointer getters returned */
        s = e->prev_cache;
        e->prev_cache = NULL;
    }
    e->cache = s;
    return s;
}

/* parse_int - non-negative decimal integer, whole text */
static int parse_int(const char *text, long long *value)
{
    long long v = 0;

    if (!isdigit((unsigned char) *text))
        return -1;
    for (; *text; text++) {
        if (!isdigit((unsigned char) *text))
            return -1;
        int     d = *text - '0';

        if (v > (LLONG_MAX - d) / 10)
            return -1;
        v = v * 10 + d;
    }
    *value = v;
    return 0;
}

/* word_known - is word one of a NULL-ended list (case-insensitive, as Postfix's name masks) */
static bool word_known(const char *const *words, const char *word)
{
    for (; *words; words++)
        if (strcasecmp(*words, word) == 0)
            return true;
    return false;
}

/* words_validate - a list parameter holds only the words its table entry allows */
static int words_validate(struct config *cfg, size_t idx, const char *value, struct strbuf *err)
{
    const struct entry *e = &cfg->ent[idx];
    struct strlist items = STRLIST_INIT;
    struct strbuf known = STRBUF_INIT;
    int     rc = 0;

    strlist_split(&items, value);
    for (size_t i = 0; i < items.count && rc == 0; i++) {
        if (word_known(e->param->words, items.items[i]))
            continue;
        for (const char *const *w = e->param->words; *w; w++)
            sb_printf(&known, "%s%s", w == e->param->words ? "" : ", ", *w);
        rc = fail(cfg, idx, err, "%s: unknown name \"%.*s%s\"; expected a list of: %s", e->name, QUOTE_MAX,
                  items.items[i], strlen(items.items[i]) > QUOTE_MAX ? "..." : "", sb_str(&known));
    }
    strlist_free(&items);
    sb_free(&known);
    return rc;
}

/* entry_validate - expand entry idx and parse it by its type */
static int entry_validate(struct config *cfg, size_t idx, struct strbuf *err)
{
    const char *v = entry_expanded(cfg, idx, 0, err);
    struct entry *e = &cfg->ent[idx];
    long long n = 0;
    bool    b;
    int     rc = 0;

    if (v == NULL)
        return -1;
    if (e->param == NULL)
        return 0;
    switch (e->param->type) {
    case CONFIG_STR:
        return e->param->words ? words_validate(cfg, idx, v, err) : 0;
    case CONFIG_INT:
        rc = parse_int(v, &n);
        break;
    case CONFIG_BOOL:
        if ((rc = config_parse_bool(v, &b)) == 0)
            n = b;
        break;
    case CONFIG_TIME:
        rc = config_parse_time(v, &n);
        break;
    case CONFIG_SIZE:
        rc = config_parse_size(v, &n);
        break;
    }
    if (rc < 0) {
        size_t  vlen = strlen(v);

        return fail(cfg, idx, err, "bad %s value for %s: \"%.*s%s\"; expected %s",
                    config_type_name(e->param->type), e->name, QUOTE_MAX, v,
                    vlen > QUOTE_MAX ? "..." : "", config_type_hint(e->param->type));
    }
    if (e->param->type != CONFIG_BOOL && n < e->param->min)
        return fail(cfg, idx, err, "%s = %s is too small; the smallest allowed value is %lld",
                    e->name, v, e->param->min);
    e->num = n;
    return 0;
}

struct order {
    int     line;
    size_t  idx;
};

/* order_cmp - main.cf lines first, in file order, so the first error is the first in the file */
static int order_cmp(const void *a, const void *b)
{
    const struct order *x = a;
    const struct order *y = b;
    unsigned lx = x->line > 0 ? (unsigned) x->line : UINT_MAX;
    unsigned ly = y->line > 0 ? (unsigned) y->line : UINT_MAX;

    if (lx != ly)
        return lx < ly ? -1 : 1;
    return x->idx < y->idx ? -1 : x->idx > y->idx;
}

/* validate_all - expand and check every entry; -1 with err at the first problem */
static int validate_all(struct config *cfg, struct strbuf *err)
{
    struct order *order = xcalloc(cfg->count, sizeof(*order));
    int     rc = 0;

    for (size_t i = 0; i < cfg->count; i++) {
        struct entry *e = &cfg->ent[i];

        retire(cfg, e->prev_cache);
        e->prev_cache = e->cache;
        e->cache = NULL;
        e->referenced = false;
        order[i].line = e->line;
        order[i].idx = i;
    }
    qsort(order, cfg->count, sizeof(*order), order_cmp);
    for (size_t i = 0; i < cfg->count && rc == 0; i++)
        rc = entry_validate(cfg, order[i].idx, err);
    for (size_t i = 0; i < cfg->count; i++) {
        retire(cfg, cfg->ent[i].prev_cache);
        cfg->ent[i].prev_cache = NULL;
    }
    free(order);
    return rc;
}

 /*
  * Warnings.
  */

/* edit_distance - Levenshtein distance, case-insensitive; names are short */
static size_t edit_distance(const char *a, const char *b)
{
    size_t  la = strlen(a);
    size_t  lb = strlen(b);
    size_t *prev;
    size_t *cur;
    size_t  d;

    prev = xcalloc(lb + 1, sizeof(size_t));
    cur = xcalloc(lb + 1, sizeof(size_t));
    for (size_t j = 0; j <= lb; j++)
        prev[j] = j;
    for (size_t i = 1; i <= la; i++) {
        cur[0] = i;
        for (size_t j = 1; j <= lb; j++) {
            size_t  cost = tolower((unsigned char) a[i - 1]) != tolower((unsigned char) b[j - 1]);
            size_t  best = prev[j - 1] + cost;

            if (prev[j] + 1 < best)
                best = prev[j] + 1;
            if (cur[j - 1] + 1 < best)
                best = cur[j - 1] + 1;
            cur[j] = best;
        }
        size_t *t = prev;

        prev = cur;
        cur = t;
    }
    d = prev[lb];
    free(prev);
    free(cur);
    return d;
}

/* suggest - the known parameter name closest to name, if close enough */
static const char *suggest(const char *name)
{
    const char *best = NULL;
    size_t  best_d = (size_t) -1;
    size_t  limit = strlen(name) / 3;

    if (limit < 2)
        limit = 2;
    for (size_t i = 0; i < config_params_count; i++) {
        size_t  d = edit_distance(name, config_params[i].name);

        if (d < best_d) {
            best_d = d;
            best = config_params[i].name;
        }
    }
    return best_d <= limit ? best : NULL;
}

/* unknown_text - "unknown parameter NAME; did you mean X?" */
static void unknown_text(struct strbuf *sb, const char *name)
{
    const char *s = suggest(name);

    sb_printf(sb, "unknown parameter %s", name);
    if (s)
        sb_printf(sb, "; did you mean %s?", s);
    else
        sb_puts(sb, "; Postern does not use it (refer to it as $name, or remove it)");
}

/* add_warning - remember a load-time warning for line */
static void add_warning(struct config *cfg, int line, struct strbuf *text)
{
    cfg->warn = xreallocarray(cfg->warn, cfg->nwarn + 1, sizeof(*cfg->warn));
    cfg->warn[cfg->nwarn].line = line;
    cfg->warn[cfg->nwarn].text = sb_detach(text);
    cfg->nwarn++;
}

/* warning_cmp - file order */
static int warning_cmp(const void *a, const void *b)
{
    const struct warning *x = a;
    const struct warning *y = b;

    return (x->line > y->line) - (x->line < y->line);
}

/* mark_master_cf_references - $names used by master.cf "-o" are not unused */
static void mark_master_cf_references(struct config *cfg)
{
    struct strbuf path = STRBUF_INIT;
    char   *buf = xmalloc(MASTER_CF_SCAN_MAX);
    size_t  n = 0;
    FILE   *fp;

    sb_printf(&path, "%s/master.cf", cfg->dir);
    if ((fp = fopen(sb_str(&path), "re")) != NULL) {
        n = fread(buf, 1, MASTER_CF_SCAN_MAX, fp);
        fclose(fp);
    }
    for (size_t i = 0; i + 1 < n; i++) {
        if (buf[i] != '$')
            continue;
        size_t  s = i + 1;

        if (buf[s] == '$') {
            i = s;
            continue;
        }
        if (buf[s] == '{' || buf[s] == '(')
            s++;
        size_t  e = s;

        while (e < n && is_name_char(buf[e]))
            e++;
        long    idx = e > s && e - s <= CONFIG_NAME_MAX ? entry_find(cfg, buf + s, e - s, NULL) : -1;

        if (idx >= 0)
            cfg->ent[idx].referenced = true;
    }
    free(buf);
    sb_free(&path);
}

/* finish_warnings - unknown names, then all warnings in line order */
static void finish_warnings(struct config *cfg)
{
    struct strbuf sb = STRBUF_INIT;

    mark_master_cf_references(cfg);
    for (size_t i = 0; i < cfg->count; i++) {
        struct entry *e = &cfg->ent[i];

        if (e->param == NULL && e->set && !e->referenced) {
            sb_printf(&sb, "%s:%d: ", cfg->path, e->line);
            unknown_text(&sb, e->name);
            add_warning(cfg, e->line, &sb);
        }
    }
    if (cfg->nwarn > 0)
        qsort(cfg->warn, cfg->nwarn, sizeof(*cfg->warn), warning_cmp);
    for (size_t i = 0; i < cfg->nwarn; i++) {
        sb_printf(&cfg->warnings, "%s\n", cfg->warn[i].text);
        free(cfg->warn[i].text);
    }
    free(cfg->warn);
    cfg->warn = NULL;
    cfg->nwarn = 0;
}

 /*
  * Loading.
  */

/* set_from_file - record "name = value" from main.cf line */
static void set_from_file(struct config *cfg, const char *name, size_t nlen,
                          const char *value, int line)
{
    struct strbuf w = STRBUF_INIT;
    size_t  pos;
    long    idx = entry_find(cfg, name, nlen, &pos);
    struct entry *e;

    if (idx < 0)
        idx = (long) entry_insert(cfg, pos, name, nlen);
    e = &cfg->ent[idx];
    if (e->literal) {
        sb_printf(&w, "%s:%d: %s is ignored in main.cf; the instance directory is chosen "
                  "with -c CONFIG_DIR or $POSTERN_CONFIG", cfg->path, line, e->name);
        add_warning(cfg, line, &w);
        return;
    }
    if (e->set) {
        sb_printf(&w, "%s:%d: %s is set again (first at line %d); this later value is used",
                  cfg->path, line, e->name, e->line);
        add_warning(cfg, line, &w);
    }
    free(e->value);
    e->value = xstrdup(value);
    e->line = line;
    e->set = true;
}

/* parse_line - one logical "name = value" line */
static int parse_line(struct config *cfg, const char *s, int line, struct strbuf *err)
{
    const char *eq = strchr(s, '=');
    size_t  nlen;

    if (eq == NULL) {
        sb_reset(err);
        sb_printf(err, "%s:%d: missing '=' in \"%.*s%s\"; a parameter line is \"name = value\" "
                  "and a continuation line starts with whitespace", cfg->path, line,
                  QUOTE_MAX, s, strlen(s) > QUOTE_MAX ? "..." : "");
        return -1;
    }
    nlen = (size_t) (eq - s);
    while (nlen > 0 && isspace((unsigned char) s[nlen - 1]))
        nlen--;
    if (nlen == 0) {
        sb_reset(err);
        sb_printf(err, "%s:%d: missing parameter name before '='", cfg->path, line);
        return -1;
    }
    if (!config_name_valid(s, nlen)) {
        sb_reset(err);
        sb_printf(err, "%s:%d: bad parameter name \"%.*s%s\"; a name has only letters, digits "
                  "and '_' (at most %d)", cfg->path, line, (int) (nlen > QUOTE_MAX ? QUOTE_MAX : nlen),
                  s, nlen > QUOTE_MAX ? "..." : "", CONFIG_NAME_MAX);
        return -1;
    }
    eq++;
    while (isspace((unsigned char) *eq))
        eq++;
    set_from_file(cfg, s, nlen, eq, line);
    return 0;
}

/* compute_hostname - gethostname(), or a safe stand-in if it is odd */
static char *compute_hostname(void)
{
    char    buf[256];
    size_t  len;

    if (gethostname(buf, sizeof(buf)) != 0)
        return xstrdup("localhost");
    buf[sizeof(buf) - 1] = '\0';
    len = strlen(buf);
    while (len > 0 && buf[len - 1] == '.')
        len--;
    if (len == 0)
        return xstrdup("localhost");
    for (size_t i = 0; i < len; i++)
        if (!isalnum((unsigned char) buf[i]) && buf[i] != '-' && buf[i] != '.')
            return xstrdup("localhost");
    return xstrndup(buf, len);
}

/* config_new - entries for every known parameter */
static struct config *config_new(const char *config_dir)
{
    struct config *cfg = xcalloc(1, sizeof(*cfg));
    struct strbuf path = STRBUF_INIT;
    size_t  dlen = strlen(config_dir);

    while (dlen > 1 && config_dir[dlen - 1] == '/')
        dlen--;
    cfg->dir = xstrndup(config_dir, dlen);
    sb_printf(&path, "%s/main.cf", strcmp(cfg->dir, "/") == 0 ? "" : cfg->dir);
    cfg->path = sb_detach(&path);
    cfg->hostname = compute_hostname();
    sb_init(&cfg->warnings);
    for (size_t i = 0; i < config_params_count; i++) {
        const struct config_param *p = &config_params[i];
        size_t  pos;

        if (entry_find(cfg, p->name, strlen(p->name), &pos) >= 0)
            msg_panic("config: parameter %s is listed twice in config_params.c", p->name);
        size_t  idx = entry_insert(cfg, pos, p->name, strlen(p->name));

        cfg->ent[idx].param = p;
    }
    long    d = entry_lookup(cfg, "config_directory");

    if (d < 0)
        msg_panic("config: config_directory is missing from config_params.c");
    cfg->ent[d].value = xstrdup(cfg->dir);
    cfg->ent[d].literal = true;
    return cfg;
}

/* config_load - read CONFIG_DIR/main.cf; NULL with "path:line: message" in err */
struct config *config_load(const char *config_dir, struct strbuf *err)
{
    struct config *cfg = config_new(config_dir);
    struct config_reader r;
    struct strbuf line = STRBUF_INIT;
    int     lineno = 0;
    int     rc;
    FILE   *fp;

    if ((fp = fopen(cfg->path, "re")) == NULL) {
        sb_reset(err);
        sb_printf(err, "%s: cannot open: %s%s", cfg->path, strerror(errno),
                  errno == ENOENT ? "; create it (postctl init) or choose another "
                  "configuration directory with -c" : "");
        config_free(cfg);
        return NULL;
    }
    config_reader_init(&r, fp, cfg->path);
    while ((rc = config_reader_next(&r, &line, &lineno, err)) > 0)
        if ((rc = parse_line(cfg, sb_str(&line), lineno, err)) < 0)
            break;
    config_reader_free(&r);
    sb_free(&line);
    fclose(fp);
    if (rc < 0 || validate_all(cfg, err) < 0) {
        config_free(cfg);
        return NULL;
    }
    finish_warnings(cfg);
    return cfg;
}

/* apply_override - set "name=value" and revalidate; dry_run restores the old state */
static int apply_override(struct config *cfg, const char *assignment, bool dry_run,
                          struct strbuf *err)
{
    const char *eq = strchr(assignment, '=');
    const char *name = assignment;
    size_t  nlen;
    size_t  pos;
    bool    inserted = false;
    int     rc;

    if (eq == NULL) {
        sb_reset(err);
        sb_printf(err, "bad parameter setting \"%.*s\"; expected name=value", QUOTE_MAX, assignment);
        return -1;
    }
    while (isspace((unsigned char) *name))
        name++;
    nlen = eq > name ? (size_t) (eq - name) : 0;
    while (nlen > 0 && isspace((unsigned char) name[nlen - 1]))
        nlen--;
    if (!config_name_valid(name, nlen)) {
        sb_reset(err);
        sb_printf(err, "bad parameter name in \"%.*s\"; a name has only letters, digits and '_'",
                  QUOTE_MAX, assignment);
        return -1;
    }
    const char *v = eq + 1;
    size_t  vlen;

    while (isspace((unsigned char) *v))
        v++;
    vlen = strlen(v);
    while (vlen > 0 && isspace((unsigned char) v[vlen - 1]))
        vlen--;
    if (vlen > CONFIG_LINE_MAX) {
        sb_reset(err);
        sb_printf(err, "value of %.*s is longer than %d bytes", (int) nlen, name, CONFIG_LINE_MAX);
        return -1;
    }
    long    idx = entry_find(cfg, name, nlen, &pos);

    if (idx >= 0 && cfg->ent[idx].literal) {
        sb_reset(err);
        sb_printf(err, "%s cannot be overridden; choose the instance with -c CONFIG_DIR",
                  cfg->ent[idx].name);
        return -1;
    }
    if (idx < 0) {
        idx = (long) entry_insert(cfg, pos, name, nlen);
        inserted = true;
    }
    struct entry saved = cfg->ent[idx];
    struct entry *e = &cfg->ent[idx];

    e->value = xstrndup(v, vlen);
    e->line = 0;
    e->set = true;
    e->by_override = true;
    rc = validate_all(cfg, err);
    if (rc < 0 || dry_run) {
        struct strbuf again = STRBUF_INIT;

        e = &cfg->ent[idx];
        free(e->value);
        e->value = saved.value;
        e->line = saved.line;
        e->set = saved.set;
        e->by_override = saved.by_override;
        if (inserted)
            entry_remove(cfg, (size_t) idx);
        if (validate_all(cfg, &again) < 0)
            msg_panic("config: cannot restore the configuration after an override: %s",
                      sb_str(&again));
        sb_free(&again);
        return rc;
    }
    free(saved.value);
    if (cfg->ent[idx].param == NULL && inserted) {
        struct strbuf w = STRBUF_INIT;

        sb_printf(&w, "override %s: ", cfg->ent[idx].name);
        unknown_text(&w, cfg->ent[idx].name);
        sb_printf(&cfg->warnings, "%s\n", sb_str(&w));
        sb_free(&w);
    }
    return 0;
}

/* config_override - apply "name=value" (master.cf -o, command line); -1 with err */
int config_override(struct config *cfg, const char *assignment, struct strbuf *err)
{
    return apply_override(cfg, assignment, false, err);
}

/* config_check_override - would config_override() accept this? cfg is left unchanged */
int config_check_override(struct config *cfg, const char *assignment, struct strbuf *err)
{
    return apply_override(cfg, assignment, true, err);
}

/* config_free - release everything, including strings getters returned */
void config_free(struct config *cfg)
{
    if (cfg == NULL)
        return;
    for (size_t i = 0; i < cfg->count; i++) {
        free(cfg->ent[i].name);
        free(cfg->ent[i].value);
        free(cfg->ent[i].cache);
        free(cfg->ent[i].prev_cache);
    }
    for (size_t i = 0; i < cfg->nretired; i++)
        free(cfg->retired[i]);
    for (size_t i = 0; i < cfg->nwarn; i++)
        free(cfg->warn[i].text);
    free(cfg->warn);
    free(cfg->retired);
    free(cfg->ent);
    free(cfg->dir);
    free(cfg->path);
    free(cfg->hostname);
    sb_free(&cfg->warnings);
    free(cfg);
}

 /*
  * Getters.
  */

/* known - entry for a parameter in the table, of the wanted type (-1: any) */
static const struct entry *known(struct config *cfg, const char *name, int type, const char *fn)
{
    long    idx = entry_lookup(cfg, name);
    const struct entry *e;

    if (idx < 0 || cfg->ent[idx].param == NULL)
        msg_panic("%s: unknown parameter \"%s\"; add it to config_params.c", fn, name);
    e = &cfg->ent[idx];
    if (type >= 0 && e->param->type != (enum config_type) type)
        msg_panic("%s: %s is a %s parameter", fn, name, config_type_name(e->param->type));
    if (e->cache == NULL)
        msg_panic("%s: %s was not expanded", fn, name);
    return e;
}

/* config_str - expanded value of any known parameter, whatever its type */
const char *config_str(struct config *cfg, const char *name)
{
    return known(cfg, name, -1, "config_str")->cache;
}

/* config_int - integer parameter, validated at load */
long long config_int(struct config *cfg, const char *name)
{
    return known(cfg, name, CONFIG_INT, "config_int")->num;
}

/* config_bool - boolean parameter */
bool config_bool(struct config *cfg, const char *name)
{
    return known(cfg, name, CONFIG_BOOL, "config_bool")->num != 0;
}

/* config_time - time parameter in seconds */
long long config_time(struct config *cfg, const char *name)
{
    return known(cfg, name, CONFIG_TIME, "config_time")->num;
}

/* config_size - size parameter in bytes */
long long config_size(struct config *cfg, const char *name)
{
    return known(cfg, name, CONFIG_SIZE, "config_size")->num;
}

/* config_lookup - expanded value of any name, known or set in main.cf; NULL if neither */
const char *config_lookup(struct config *cfg, const char *name)
{
    long    idx = entry_lookup(cfg, name);

    return idx < 0 ? NULL : cfg->ent[idx].cache;
}

/* config_is_set - the name was given in main.cf or by an override */
bool config_is_set(struct config *cfg, const char *name)
{
    long    idx = entry_lookup(cfg, name);

    return idx >= 0 && cfg->ent[idx].set;
}

/* config_line - main.cf line where name was set; 0 if it was not */
int config_line(struct config *cfg, const char *name)
{
    long    idx = entry_lookup(cfg, name);

    return idx < 0 ? 0 : cfg->ent[idx].line;
}

/* config_path - the main.cf that was read */
const char *config_path(struct config *cfg)
{
    return cfg->path;
}

/* config_warnings - newline-separated load warnings, "" if none */
const char *config_warnings(struct config *cfg)
{
    return sb_str(&cfg->warnings);
}

/* config_foreach - every parameter in name order */
void config_foreach(struct config *cfg, bool only_set, config_visit_fn visit, void *arg)
{
    for (size_t i = 0; i < cfg->count; i++) {
        const struct entry *e = &cfg->ent[i];

        if (only_set && !e->set)
            continue;
        visit(e->name, e->cache ? e->cache : "", e->set, arg);
    }
}
