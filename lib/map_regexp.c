/*
 * map_regexp - regexp: maps, Postfix's regexp_table(5) (format: map_regexp.h).
 *
 * Interface: map_type_regexp (map.h); regexp_table_parse(),
 * regexp_table_lookup(), regexp_table_foreach_result(), regexp_table_count(),
 * regexp_table_free() (map_regexp.h).
 *
 * "regexp:/etc/x" reads the whole file at open (before a daemon chroots) and
 * compiles every rule with regcomp(). The file stays open so that a replaced
 * file is noticed through its link count even from a chroot; a changed file
 * is read again, and if that fails (bad pattern, gone) the old rules are kept
 * and map_changed() says so, as texthash: does. Keys are matched as given:
 * the type asks map.c not to fold them, since the i flag can make a pattern
 * case-sensitive.
 *
 * Diagnostics: every parse error names the file and line ("/etc/x:3: ...");
 * a failed reload is a warning that keeps the old table.
 */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <regex.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"
#include "mem.h"
#include "strbuf.h"
#include "map.h"
#include "map_regexp.h"

#define REGEXP_NMATCH 10                /* $0..$9 */

struct regexp_rule {
    regex_t re;
    bool    negate;
    int     line;
    char   *result;
};

struct regexp_table {
    struct regexp_rule *rules;
    size_t  count;
};

struct regexp_map {
    struct map_source src;
    struct regexp_table *table;
};

/* regexp_table_free - release every compiled rule */
void regexp_table_free(struct regexp_table *t)
{
    if (t == NULL)
        return;
    for (size_t i = 0; i < t->count; i++) {
        regfree(&t->rules[i].re);
        free(t->rules[i].result);
    }
    free(t->rules);
    free(t);
}

/* regexp_table_count - number of rules */
size_t regexp_table_count(const struct regexp_table *t)
{
    return t ? t->count : 0;
}

/* split_pattern - "/pat/flags rest": pattern into pat, *cp past the closing delimiter */
static int split_pattern(const char **cp, struct strbuf *pat, struct strbuf *why)
{
    const char *p = *cp;
    char    delim = *p;

    if (delim == '\0' || isspace((unsigned char) delim) || delim == '\\'
        || isalnum((unsigned char) delim)) {
        sb_puts(why, "expected /pattern/ (a pattern between two delimiters such as '/')");
        return -1;
    }
    sb_reset(pat);
    for (p++; *p && *p != delim; p++) {
        /* A backslash keeps the next character, so "\/" is a '/' in the pattern. */
        if (*p == '\\' && p[1] != '\0') {
            if (p[1] != delim)
                sb_putc(pat, '\\');
            sb_putc(pat, p[1]);
            p++;
            continue;
        }
        sb_putc(pat, *p);
    }
    if (*p != delim) {
        sb_printf(why, "missing closing '%c' of the pattern", delim);
        return -1;
    }
    *cp = p + 1;
    return 0;
}

/* parse_flags - i, x, m toggle the defaults; anything else is an error */
static int parse_flags(const char **cp, int *cflags, struct strbuf *why)
{
    const char *p = *cp;

    for (; *p && !isspace((unsigned char) *p); p++) {
        switch (*p) {
        case 'i':
            *cflags ^= REG_ICASE;
            break;
        case 'x':
            *cflags ^= REG_EXTENDED;
            break;
        case 'm':
            *cflags ^= REG_NEWLINE;
            break;
        default:
            if (isprint((unsigned char) *p))
                sb_printf(why, "unsupported flag '%c' after the pattern (known: i, m, x)", *p);
            else
                sb_printf(why, "unsupported flag 0x%02x after the pattern (known: i, m, x)",
                          (unsigned char) *p);
            return -1;
        }
    }
    *cp = p;
    return 0;
}

/* ref_number - a $ reference at p ("$1", "${1}", "$(1)"): its number, length in *len; -1 if none */
static int ref_number(const char *p, size_t *len)
{
    if (isdigit((unsigned char) p[1])) {
        *len = 2;
        return p[1] - '0';
    }
    if ((p[1] == '{' && isdigit((unsigned char) p[2]) && p[3] == '}')
        || (p[1] == '(' && isdigit((unsigned char) p[2]) && p[3] == ')')) {
        *len = 4;
        return p[2] - '0';
    }
    return -1;
}

/* check_result - every $ reference exists in a pattern with nsub subexpressions */
static int check_result(const char *result, size_t nsub, bool negate, struct strbuf *why)
{
    size_t  len;
    int     n;

    for (const char *p = result; *p; p++) {
        if (*p != '$')
            continue;
        if (p[1] == '$') {
            p++;
            continue;
        }
        if ((n = ref_number(p, &len)) < 0)
            continue;                   /* a lone '$' is kept as it is */
        if (negate) {
            sb_printf(why, "$%d in the result of a negated pattern (nothing matched)", n);
            return -1;
        }
        if (n == 0 || (size_t) n > nsub) {
            sb_printf(why, "$%d in the result, but the pattern has %zu subexpression%s",
                      n, nsub, nsub == 1 ? "" : "s");
            return -1;
        }
        p += len - 1;
    }
    return 0;
}

/*
 * Pattern size. glibc's regcomp() copies a repeated subexpression once per
 * repetition it must spell out ("x+" is "xx*", "x{3,5}" five x's), so
 * stacked or nested repetitions grow exponentially: a 30-byte typo can take
 * gigabytes when smtpd starts, and a repetition right after a repetition
 * ("a+*", undefined in POSIX) makes its epsilon closures take minutes.
 * pattern_size() estimates the expanded size (atoms, with groups and
 * repetitions multiplied out, saturating; stacked repetitions count as too
 * big) so that such a pattern is refused with its line instead.
 */
#define REGEXP_MAX_SIZE 20000           /* expanded atoms; real header patterns need hundreds */
#define REGEXP_MAX_NEST 64

/* sat_mul, sat_add - arithmetic that stops just above the limit */
static size_t sat_add(size_t a, size_t b)
{
    return a + b > REGEXP_MAX_SIZE ? REGEXP_MAX_SIZE + 1 : a + b;
}

static size_t sat_mul(size_t a, size_t b)
{
    return b != 0 && a > (REGEXP_MAX_SIZE + 1) / b ? REGEXP_MAX_SIZE + 1
        : (a * b > REGEXP_MAX_SIZE ? REGEXP_MAX_SIZE + 1 : a * b);
}

/* interval_max - the larger bound of "{n}", "{n,}", "{n,m}" at p (after the brace); *end past it */
static size_t interval_max(const char *p, const char **end, bool basic)
{
    size_t  n = 0, best = 0;

    for (; *p; p++) {
        if (isdigit((unsigned char) *p)) {
            n = n * 10 + (size_t) (*p - '0');
            if (n > 100000)
                n = 100000;
        } else if (*p == ',') {
            best = n > best ? n : best;
            n = 0;
        } else {
            break;
        }
    }
    best = n > best ? n : best;
    if (basic && *p == '\\')
        p++;
    *end = *p ? p + 1 : p;
    return best + 1;
}

/* pattern_size - estimated atoms after regcomp() spells repetitions out */
static size_t pattern_size(const char *pat, bool extended)
{
    size_t  content[REGEXP_MAX_NEST + 1] = {0};
    size_t  last[REGEXP_MAX_NEST + 1] = {0};
    int     depth = 0;
    const char *p = pat;
    bool    after_repeat = false;

    while (*p) {
        size_t  factor = 0;             /* 0: p is an atom or a group mark, not a repetition */
        size_t  atom = 1;
        bool    open = false, close = false;

        if (*p == '\\' && p[1]) {
            char    c = p[1];

            p += 2;
            if (!extended && c == '(')
                open = true;
            else if (!extended && c == ')')
                close = true;
            else if (!extended && (c == '+' || c == '?'))
                factor = c == '+' ? 2 : 1;
            else if (!extended && c == '{')
                factor = interval_max(p, &p, true);
        } else if (*p == '[') {
            /* A bracket expression is one atom: skip to its closing ']'. */
            p++;
            if (*p == '^')
                p++;
            if (*p == ']')
                p++;
            while (*p && *p != ']') {
                if (*p == '[' && (p[1] == ':' || p[1] == '.' || p[1] == '=')) {
                    const char *q = strchr(p + 2, p[1]);

                    p = q && q[1] == ']' ? q + 2 : p + 1;
                } else {
                    p++;
                }
            }
            if (*p)
                p++;
        } else if (extended && *p == '(') {
            open = true;
            p++;
        } else if (extended && *p == ')') {
            close = true;
            p++;
        } else if (*p == '*' || (extended && *p == '?')) {
            factor = 1;
            p++;
        } else if (extended && *p == '+') {
            factor = 2;
            p++;
        } else if (extended && *p == '{') {
            factor = interval_max(p + 1, &p, false);
        } else {
            p++;
        }
        if (open) {
            if (depth == REGEXP_MAX_NEST)
                return REGEXP_MAX_SIZE + 1;
            depth++;
            content[depth] = last[depth] = 0;
            continue;
        }
        if (close && depth > 0) {
            atom = sat_add(content[depth], 1);
            depth--;
        }
        if (factor && after_repeat)
            return REGEXP_MAX_SIZE + 1;
        after_repeat = factor != 0;
        if (factor) {
            /* The last atom (or group) is spelled out factor times. */
            size_t  grown = sat_mul(last[depth] ? last[depth] : 1, factor);

            content[depth] = sat_add(content[depth] - (content[depth] >= last[depth]
                                                       ? last[depth] : content[depth]), grown);
            last[depth] = grown;
        } else {
            content[depth] = sat_add(content[depth], atom);
            last[depth] = atom;
        }
    }
    while (depth > 0) {
        content[depth - 1] = sat_add(content[depth - 1], content[depth]);
        depth--;
    }
    return content[0];
}

/* parse_rule - one logical line into rule; -1 with why */
static int parse_rule(const char *text, struct regexp_rule *rule, struct strbuf *why)
{
    struct strbuf pat = STRBUF_INIT;
    const char *cp = text;
    const char *end;
    int     cflags = REG_EXTENDED | REG_ICASE;
    int     rc;
    char    msg[256];

    memset(rule, 0, sizeof(*rule));
    if (strncmp(cp, "if", 2) == 0 && (cp[2] == '/' || cp[2] == '!' || isspace((unsigned char) cp[2]))) {
        sb_puts(why, "if/endif blocks are not supported; write one rule per line");
        return -1;
    }
    if (strncmp(cp, "endif", 5) == 0 && (cp[5] == '\0' || isspace((unsigned char) cp[5]))) {
        sb_puts(why, "if/endif blocks are not supported; write one rule per line");
        return -1;
    }
    if (*cp == '!') {
        rule->negate = true;
        cp++;
    }
    if (split_pattern(&cp, &pat, why) < 0 || parse_flags(&cp, &cflags, why) < 0)
        goto fail;
    while (isspace((unsigned char) *cp))
        cp++;
    end = cp + strlen(cp);
    while (end > cp && isspace((unsigned char) end[-1]))
        end--;
    if (cp == end) {
        sb_puts(why, "missing result after the pattern");
        goto fail;
    }
    if (sb_len(&pat) == 0) {
        sb_puts(why, "empty pattern");
        goto fail;
    }
    if (pattern_size(sb_str(&pat), (cflags & REG_EXTENDED) != 0) > REGEXP_MAX_SIZE) {
        sb_puts(why, "pattern too complex: a repetition of a repetition ('a+*', '(a+)+' many "
                "times, 'x{1000}' in 'x{1000}') multiplies out in the C library's matcher; "
                "simplify it");
        goto fail;
    }
    if (rule->negate)
        cflags |= REG_NOSUB;
    if ((rc = regcomp(&rule->re, sb_str(&pat), cflags)) != 0) {
        regerror(rc, &rule->re, msg, sizeof(msg));
        sb_printf(why, "bad regular expression: %s", msg);
        goto fail;
    }
    rule->result = xstrndup(cp, (size_t) (end - cp));
    if (check_result(rule->result, rule->re.re_nsub, rule->negate, why) < 0) {
        regfree(&rule->re);
        free(rule->result);
        rule->result = NULL;
        goto fail;
    }
    sb_free(&pat);
    return 0;

  fail:
    sb_free(&pat);
    return -1;
}

/* add_rule - parse the logical line that started at line and append it */
static int add_rule(struct regexp_table *t, const struct strbuf *logical, int line,
                    const char *path, struct strbuf *err)
{
    struct strbuf why = STRBUF_INIT;
    struct regexp_rule rule;

    if (parse_rule(sb_str(logical), &rule, &why) < 0) {
        sb_printf(err, "%s:%d: %s", path, line, sb_str(&why));
        sb_free(&why);
        return -1;
    }
    sb_free(&why);
    rule.line = line;
    t->rules = xreallocarray(t->rules, t->count + 1, sizeof(*t->rules));
    t->rules[t->count++] = rule;
    return 0;
}

/* regexp_table_parse - split text into logical lines and compile each */
struct regexp_table *regexp_table_parse(const char *text, size_t len, const char *path,
                                        struct strbuf *err)
{
    struct regexp_table *t = xcalloc(1, sizeof(*t));
    struct strbuf logical = STRBUF_INIT;
    const char *p = text, *stop = text + len;
    int     lineno = 0, entry_line = 0;

    sb_reset(err);
    while (p < stop) {
        const char *nl = memchr(p, '\n', (size_t) (stop - p));
        const char *s = p, *e = nl ? nl : stop;
        bool    continues = isspace((unsigned char) *p);

        lineno++;
        p = nl ? nl + 1 : stop;
        if (memchr(s, '\0', (size_t) (e - s)) != NULL) {
            sb_printf(err, "%s:%d: NUL byte in line; is this a text file?", path, lineno);
            goto fail;
        }
        while (s < e && isspace((unsigned char) *s))
            s++;
        while (e > s && isspace((unsigned char) e[-1]))
            e--;
        /* Comments and empty lines neither start nor end a rule. */
        if (s == e || *s == '#')
            continue;
        if (sb_len(&logical) + 1 + (size_t) (e - s) > MAP_LINE_MAX) {
            sb_printf(err, "%s:%d: rule longer than %d bytes", path,
                      continues && entry_line ? entry_line : lineno, MAP_LINE_MAX);
            goto fail;
        }
        if (continues) {
            if (entry_line == 0) {
                sb_printf(err, "%s:%d: continuation line without a rule before it; "
                          "remove the leading white space", path, lineno);
                goto fail;
            }
            sb_putc(&logical, ' ');
            sb_append(&logical, s, (size_t) (e - s));
            continue;
        }
        if (entry_line && add_rule(t, &logical, entry_line, path, err) < 0)
            goto fail;
        sb_reset(&logical);
        sb_append(&logical, s, (size_t) (e - s));
        entry_line = lineno;
    }
    if (entry_line && add_rule(t, &logical, entry_line, path, err) < 0)
        goto fail;
    sb_free(&logical);
    return t;

  fail:
    sb_free(&logical);
    regexp_table_free(t);
    return NULL;
}

/* substitute - result with $n replaced by what subexpression n matched in key */
static void substitute(const char *result, const char *key, const regmatch_t *m,
                       struct strbuf *out)
{
    size_t  len;
    int     n;

    for (const char *p = result; *p; p++) {
        if (*p == '$' && p[1] == '$') {
            sb_putc(out, '$');
            p++;
        } else if (*p == '$' && (n = ref_number(p, &len)) > 0) {
            /* A subexpression that took no part in the match gives nothing. */
            if (m[n].rm_so >= 0 && m[n].rm_eo >= m[n].rm_so)
                sb_append(out, key + m[n].rm_so, (size_t) (m[n].rm_eo - m[n].rm_so));
            p += len - 1;
        } else {
            sb_putc(out, *p);
        }
    }
}

/* regexp_table_lookup - first rule that matches (or, negated, does not) wins */
enum map_status regexp_table_lookup(const struct regexp_table *t, const char *key,
                                    struct strbuf *value)
{
    regmatch_t m[REGEXP_NMATCH];

    for (size_t i = 0; i < t->count; i++) {
        const struct regexp_rule *r = &t->rules[i];
        int     rc = regexec(&r->re, key, r->negate ? 0 : REGEXP_NMATCH,
                             r->negate ? NULL : m, 0);

        if (r->negate ? rc == REG_NOMATCH : rc == 0) {
            sb_reset(value);
            if (r->negate)
                sb_puts(value, r->result);
            else
                substitute(r->result, key, m, value);
            return MAP_FOUND;
        }
    }
    return MAP_NOTFOUND;
}

/* regexp_table_foreach_result - every rule's result as written, with its line */
int regexp_table_foreach_result(const struct regexp_table *t,
                                int (*fn)(void *arg, const char *result, int line), void *arg)
{
    int     rc;

    for (size_t i = 0; i < t->count; i++)
        if ((rc = fn(arg, t->rules[i].result, t->rules[i].line)) != 0)
            return rc;
    return 0;
}

/* rx_load - read and compile path; -1 with err */
static int rx_load(const char *path, int *fdp, struct stat *stp, struct regexp_table **tp,
                   struct strbuf *err)
{
    struct strbuf text = STRBUF_INIT;
    char    buf[8192];
    ssize_t n;
    int     fd;

    if (map_source_open(path, &fd, stp, err) < 0)
        return -1;
    while ((n = read(fd, buf, sizeof(buf))) != 0) {
        if (n < 0) {
            if (errno == EINTR)
                continue;
            sb_printf(err, "%s: read: %s", path, strerror(errno));
            goto fail;
        }
        if (sb_len(&text) + (size_t) n > REGEXP_TABLE_MAX_BYTES) {
            sb_printf(err, "%s: larger than %d bytes", path, REGEXP_TABLE_MAX_BYTES);
            goto fail;
        }
        sb_append(&text, buf, (size_t) n);
    }
    if ((*tp = regexp_table_parse(sb_str(&text), sb_len(&text), path, err)) == NULL)
        goto fail;
    sb_free(&text);
    *fdp = fd;
    return 0;

  fail:
    sb_free(&text);
    close(fd);
    return -1;
}

/* rx_open - regexp:NAME reads the file NAME */
static void *rx_open(const char *name, struct strbuf *err)
{
    struct regexp_map *rm;

    if (*name == '\0') {
        sb_puts(err, "missing file name, e.g. regexp:/etc/postern/header_checks");
        return NULL;
    }
    rm = xcalloc(1, sizeof(*rm));
    rm->src.path = xstrdup(name);
    if (rx_load(name, &rm->src.fd, &rm->src.st, &rm->table, err) < 0) {
        free(rm->src.path);
        free(rm);
        return NULL;
    }
    return rm;
}

/* rx_lookup - the rules in order */
static enum map_status rx_lookup(void *handle, const char *key, struct strbuf *value)
{
    struct regexp_map *rm = handle;

    return regexp_table_lookup(rm->table, key, value);
}

/* rx_changed - read a replaced or edited file again; true if that failed */
static bool rx_changed(void *handle)
{
    struct regexp_map *rm = handle;
    struct strbuf err = STRBUF_INIT;
    struct regexp_table *t;
    struct stat st;
    int     fd;

    switch (map_source_reload_due(&rm->src)) {
    case 0:
        return false;
    case -1:
        return true;
    }
    if (rx_load(rm->src.path, &fd, &st, &t, &err) < 0) {
        map_source_reload_failed(&rm->src, "regexp", &err);
        sb_free(&err);
        return true;
    }
    sb_free(&err);
    map_source_reloaded(&rm->src, fd, &st);
    regexp_table_free(rm->table);
    rm->table = t;
    return false;
}

/* rx_foreach_value - the results as written, for checks of what a table may answer */
static int rx_foreach_value(void *handle, int (*fn)(void *arg, const char *value, int line),
                            void *arg)
{
    struct regexp_map *rm = handle;

    return regexp_table_foreach_result(rm->table, fn, arg);
}

/* rx_close - free the rules and close the file */
static void rx_close(void *handle)
{
    struct regexp_map *rm = handle;

    regexp_table_free(rm->table);
    map_source_close(&rm->src);
    free(rm);
}

const struct map_type map_type_regexp = {
    .name = "regexp",
    .open = rx_open,
    .lookup = rx_lookup,
    .changed = rx_changed,
    .close = rx_close,
    .compile = NULL,
    .keep_case = true,
    .foreach_value = rx_foreach_value,
};
