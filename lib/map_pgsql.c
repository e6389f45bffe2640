/*
 * map_pgsql - pgsql: maps, Postfix's pgsql_table(5) on lib/pgsql.
 *
 * Interface: map_type_pgsql (map.h). "pgsql:/etc/postern/pgsql/x.cf" reads
 * the file (name = value lines, # comments, continuation lines start with
 * white space) when the map is opened, which daemons do before they chroot:
 *
 *   hosts            host[:port], [v6]:port, inet:host:port, unix:/socket/dir
 *                    or unix:/dir/.s.PGSQL.5432; several, tried in order
 *   user, password, dbname
 *   query            SQL with %s (key), %u (local part, or the whole key),
 *                    %d (domain part), %1..%9 (domain labels from the right),
 *                    %S %U %D (the same), %% (a literal %)
 *   result_format    each value as %s (default); %u %d %1.. of the value,
 *                    %S %U %D of the key
 *   result_fields    values (default: every field of every row) or passwd-file
 *                    (the first row's columns by name as a passwd-file entry
 *                    for authd's auth_passdb_maps; see passwd_entry())
 *   expansion_limit  more values than this is a temporary failure (0: none)
 *   domain           only user@domain keys with these domains are looked up
 *   connect_timeout, query_timeout, retry_interval, sslmode  (see pgsql.h)
 *
 * Lookups: the query runs as a prepared statement with the key's parts as
 * parameters (pgsql.h). Every non-NULL, non-empty field of every row is a
 * value; they are joined with commas, as Postfix does. A %d for a key
 * without '@' (or an empty local part for %u) suppresses the query: not
 * found. The database being unreachable is MAP_TEMPFAIL with the reason.
 *
 * One connection per process per map file: maps opened twice from the same
 * file (virtual_alias_domains = $virtual_alias_maps) share one handle.
 *
 * Diagnostics: open errors name the file and line; lookups never log.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "mem.h"
#include "pgsql.h"
#include "strbuf.h"
#include "strlist.h"
#include "map.h"

struct pg_map {
    char   *path;
    int     refs;
    struct pg_map *next;                /* the open maps of this process */
    struct pgsql_conn *conn;
    struct pgsql_stmt *stmt;
    char   *result_format;
    long    expansion_limit;
    bool    passwd_fields;              /* result_fields = passwd-file */
    struct strlist domains;             /* literal names, lower case */
    struct maplist *domain_maps;        /* type:table entries of domain */
};

/* What a file sets, before the connection exists. */
struct pg_file {
    struct pgsql_settings set;
    char   *query;
    char   *result_format;
    long    expansion_limit;
    char   *domain;
    bool    passwd_fields;
};

static struct pg_map *open_maps;

/* pg_scan - Postfix's escapes: s u d S U D 1-9 */
static size_t pg_scan(const char *p)
{
    return *p && strchr("sudSUD123456789", *p) ? 1 : 0;
}

/* What an escape expands against: the key, and for result_format the value. */
struct pg_expand {
    const char *key;
    const char *value;                  /* == key in queries */
};

/* label - the n-th label from the right of domain (1: top level); false if too few */
static bool label(const char *domain, int n, struct strbuf *out)
{
    const char *end = domain + strlen(domain), *start;

    while (end > domain) {
        start = end;
        while (start > domain && start[-1] != '.')
            start--;
        if (--n == 0) {
            if (start == end)
                return false;
            sb_append(out, start, (size_t) (end - start));
            return true;
        }
        end = start > domain ? start - 1 : domain;
    }
    return false;
}

/* pg_expand - one escape; 1 suppresses (the query, or the value in result_format) */
static int pg_expand(void *arg, const char *esc, size_t len, struct strbuf *out)
{
    const struct pg_expand *x = arg;
    const char *src = isupper((unsigned char) *esc) ? x->key : x->value;
    const char *at = strrchr(src, '@');

    (void) len;
    switch (tolower((unsigned char) *esc)) {
    case 's':
        sb_puts(out, src);
        return 0;
    case 'u':
        if (at == NULL) {
            sb_puts(out, src);
            return 0;
        }
        if (at == src)
            return 1;
        sb_append(out, src, (size_t) (at - src));
        return 0;
    case 'd':
        if (at == NULL || at[1] == '\0')
            return 1;
        sb_puts(out, at + 1);
        return 0;
    default:
        return label(at ? at + 1 : src, *esc - '0', out) ? 0 : 1;
    }
}

/* pg_store - one setting of the map file */
static int pg_store(void *arg, const char *name, const char *value, struct strbuf *err)
{
    struct pg_file *f = arg;
    int     rc;

    if ((rc = pgsql_settings_set(&f->set, name, value, err)) <= 0)
        return rc;
    if (strcmp(name, "query") == 0) {
        free(f->query);
        f->query = xstrdup(value);
    } else if (strcmp(name, "result_format") == 0) {
        free(f->result_format);
        f->result_format = xstrdup(value);
    } else if (strcmp(name, "domain") == 0) {
        free(f->domain);
        f->domain = xstrdup(value);
    } else if (strcmp(name, "result_fields") == 0) {
        if (strcmp(value, "passwd-file") != 0 && strcmp(value, "values") != 0) {
            sb_printf(err, "result_fields = %s: expected values (the default) or passwd-file",
                      value);
            return -1;
        }
        f->passwd_fields = strcmp(value, "passwd-file") == 0;
    } else if (strcmp(name, "expansion_limit") == 0) {
        char   *end;

        f->expansion_limit = strtol(value, &end, 10);
        if (end == value || *end || f->expansion_limit < 0) {
            sb_printf(err, "expansion_limit = %s: expected a number (0: no limit)", value);
            return -1;
        }
    } else if (strcmp(name, "table") == 0 || strcmp(name, "select_field") == 0
               || strcmp(name, "where_field") == 0 || strcmp(name, "additional_conditions") == 0
               || strcmp(name, "select_function") == 0) {
        sb_printf(err, "%s: the pre-2.2 Postfix settings are not supported; write one query = "
                  "SELECT ... WHERE ... = '%%s'", name);
        return -1;
    } else {
        sb_printf(err, "unknown setting \"%s\" (known: hosts user password dbname query "
                  "result_format result_fields expansion_limit domain connect_timeout query_timeout "
                  "retry_interval sslmode)", name);
        return -1;
    }
    return 0;
}

/* pg_file_free - what pg_store() collected */
static void pg_file_free(struct pg_file *f)
{
    pgsql_settings_free(&f->set);
    free(f->query);
    free(f->result_format);
    free(f->domain);
}

/* pg_free - release a map */
static void pg_free(struct pg_map *m)
{
    pgsql_stmt_free(m->stmt);
    pgsql_conn_free(m->conn);
    free(m->path);
    free(m->result_format);
    strlist_free(&m->domains);
    maplist_close(m->domain_maps);
    free(m);
}

/* pg_domains - the domain setting: literal names and tables; -1 with err */
static int pg_domains(struct pg_map *m, const char *text, struct strbuf *err)
{
    struct strlist items = STRLIST_INIT;
    struct strbuf tables = STRBUF_INIT;
    int     rc = 0;

    strlist_split(&items, text);
    for (size_t i = 0; i < items.count; i++) {
        char   *item = items.items[i];

        if (strchr(item, ':') != NULL) {
            sb_printf(&tables, "%s%s", sb_len(&tables) ? " " : "", item);
        } else {
            for (char *c = item; *c; c++)
                *c = (char) tolower((unsigned char) *c);
            strlist_add(&m->domains, item);
        }
    }
    if (sb_len(&tables) && (m->domain_maps = maplist_open(sb_str(&tables), err)) == NULL)
        rc = -1;
    strlist_free(&items);
    sb_free(&tables);
    return rc;
}

static void *pg_open(const char *path, struct strbuf *err)
{
    struct pg_file f = {0};
    struct pg_map *m;
    struct strbuf why = STRBUF_INIT;

    for (m = open_maps; m; m = m->next) {
        if (strcmp(m->path, path) == 0) {
            m->refs++;
            return m;
        }
    }
    if (path[0] != '/') {
        sb_printf(err, "expected an absolute path to a map file, e.g. pgsql:/etc/postern/pgsql/x.cf");
        return NULL;
    }
    pgsql_settings_init(&f.set);
    if (pgsql_read_config(path, pg_store, &f, err) < 0) {
        pg_file_free(&f);
        return NULL;
    }
    if (f.query == NULL) {
        sb_printf(err, "%s: no query = setting", path);
        pg_file_free(&f);
        return NULL;
    }
    if (f.set.hosts.count == 0)
        strlist_add(&f.set.hosts, "127.0.0.1");      /* a chroot has no /etc/hosts */
    m = xcalloc(1, sizeof(*m));
    m->path = xstrdup(path);
    m->refs = 1;
    m->expansion_limit = f.expansion_limit;
    m->passwd_fields = f.passwd_fields;
    m->result_format = f.result_format ? f.result_format : xstrdup("%s");
    f.result_format = NULL;
    m->conn = pgsql_conn_new(&f.set);
    if ((m->stmt = pgsql_stmt_new(m->conn, f.query, pg_scan, &why)) == NULL) {
        sb_printf(err, "%s: query: %s", path, sb_str(&why));
        goto bad;
    }
    {
        /* result_format uses the same escapes; check them now, not at the first lookup */
        struct pgsql_stmt *probe;
        struct strbuf q = STRBUF_INIT;

        sb_puts(&q, "'");
        for (const char *c = m->result_format; *c; c++) {
            if (*c == '\'')
                sb_putc(&q, '\'');
            sb_putc(&q, *c);
        }
        sb_puts(&q, "'");
        probe = pgsql_stmt_new(m->conn, sb_str(&q), pg_scan, &why);
        sb_free(&q);
        if (probe == NULL) {
            sb_printf(err, "%s: result_format: %s", path, sb_str(&why));
            goto bad;
        }
        pgsql_stmt_free(probe);
    }
    if (f.domain && pg_domains(m, f.domain, &why) < 0) {
        sb_printf(err, "%s: domain: %s", path, sb_str(&why));
        goto bad;
    }
    pg_file_free(&f);
    sb_free(&why);
    m->next = open_maps;
    open_maps = m;
    return m;
bad:
    pg_file_free(&f);
    sb_free(&why);
    pg_free(m);
    return NULL;
}

/* domain_allowed - the domain setting lets key be looked up; -1: a domain table failed */
static int domain_allowed(struct pg_map *m, const char *key, struct strbuf *value)
{
    const char *at = strrchr(key, '@');
    enum map_status st;

    if (m->domains.count == 0 && m->domain_maps == NULL)
        return 1;
    if (at == NULL || at == key || at[1] == '\0')
        return 0;
    if (strlist_contains_nocase(&m->domains, at + 1))
        return 1;
    if (m->domain_maps == NULL)
        return 0;
    st = maplist_lookup(m->domain_maps, at + 1, value);
    sb_reset(value);
    return st == MAP_FOUND ? 1 : st == MAP_TEMPFAIL ? -1 : 0;
}

/* format_value - one field through result_format into out; 1 if suppressed */
static int format_value(struct pg_map *m, const char *key, const char *field, struct strbuf *out)
{
    struct pg_expand x = { key, field };

    for (const char *p = m->result_format; *p; p++) {
        if (*p != '%') {
            sb_putc(out, *p);
        } else if (p[1] == '%') {
            sb_putc(out, '%');
            p++;
        } else if (pg_scan(p + 1)) {
            if (pg_expand(&x, p + 1, 1, out) != 0)
                return 1;
            p++;
        }
    }
    return 0;
}

/* field_ok - a column value that may go into a passwd-file entry as it is */
static bool field_ok(const char *v, const char *forbidden)
{
    for (const unsigned char *c = (const unsigned char *) v; *c; c++)
        if (*c < ' ' || *c == 0x7f || strchr(forbidden, *c))
            return false;
    return true;
}

/* pg_bool - PostgreSQL's text form of a boolean (t/f) or the administrator's yes/no */
static const char *pg_bool(const char *v)
{
    return strchr("tTyY1", v[0]) || strcasecmp(v, "on") == 0 ? "yes" : "no";
}

/*
 * passwd_entry - result_fields = passwd-file: the first row's columns, by
 * name, as the fields after "user:" of a passwd-file line, for authd:
 *   password                     the {SCHEME}hash (NULL or empty: no login)
 *   uid, gid, home               the positional fields
 *   active (false), nologin (true)   "nologin"
 *   allow_smtp, allow_imap       "allow_smtp=yes|no" ...
 *   quota (bytes, 0: none)       "userdb_quota_rule=*:bytes=N"
 *   anything else                "name=value" (userdb_quota_rule=...)
 * 1 found; -1 with the reason in value (a value that would break the line).
 */
static int passwd_entry(struct pg_map *m, PGresult *res, struct strbuf *value)
{
    const char *pos[6] = {"", "", "", "", "", ""};  /* password uid gid gecos home shell */
    struct strbuf extra = STRBUF_INIT;
    int     rc = 1;

    for (int col = 0; col < PQnfields(res) && rc > 0; col++) {
        const char *name = PQfname(res, col);
        const char *v = PQgetisnull(res, 0, col) ? "" : PQgetvalue(res, 0, col);
        int     slot = strcmp(name, "password") == 0 ? 0 : strcmp(name, "uid") == 0 ? 1
            : strcmp(name, "gid") == 0 ? 2 : strcmp(name, "home") == 0 ? 4 : -1;

        if (!field_ok(v, slot >= 0 ? ":" : " \t")) {
            sb_reset(value);
            sb_printf(value, "%s: column %s holds a control character or a separator", m->path,
                      name);
            rc = -1;
        } else if (slot >= 0) {
            pos[slot] = v;
        } else if (PQgetisnull(res, 0, col)) {
            continue;                   /* NULL: not set */
        } else if (strcmp(name, "active") == 0 || strcmp(name, "nologin") == 0) {
            if (strcmp(pg_bool(v), name[0] == 'a' ? "no" : "yes") == 0)
                sb_printf(&extra, "%snologin", sb_len(&extra) ? " " : "");
        } else if (strcmp(name, "allow_smtp") == 0 || strcmp(name, "allow_imap") == 0) {
            sb_printf(&extra, "%s%s=%s", sb_len(&extra) ? " " : "", name, pg_bool(v));
        } else if (strcmp(name, "quota") == 0) {
            if (strspn(v, "0123456789") != strlen(v) || *v == '\0') {
                sb_reset(value);
                sb_printf(value, "%s: quota = %.40s is not a number of bytes", m->path, v);
                rc = -1;
            } else if (strspn(v, "0") != strlen(v)) {
                sb_printf(&extra, "%suserdb_quota_rule=*:bytes=%s", sb_len(&extra) ? " " : "", v);
            }
        } else if (*v != '\0') {
            sb_printf(&extra, "%s%s=%s", sb_len(&extra) ? " " : "", name, v);
        }
    }
    if (rc > 0) {
        sb_reset(value);
        sb_printf(value, "%s:%s:%s:%s:%s:%s:%s", pos[0], pos[1], pos[2], pos[3], pos[4], pos[5],
                  sb_str(&extra));
        if (sb_len(value) > MAP_LINE_MAX) {
            sb_reset(value);
            sb_printf(value, "%s: passwd-file entry longer than %d bytes", m->path, MAP_LINE_MAX);
            rc = -1;
        }
    }
    sb_free(&extra);
    return rc;
}

static enum map_status pg_lookup(void *handle, const char *key, struct strbuf *value)
{
    struct pg_map *m = handle;
    struct pg_expand x = { key, key };
    struct strbuf err = STRBUF_INIT;
    struct strbuf one = STRBUF_INIT;
    enum map_status status = MAP_NOTFOUND;
    PGresult *res = NULL;
    long    count = 0;
    int     rc;

    if ((rc = domain_allowed(m, key, value)) <= 0) {
        if (rc < 0)
            sb_set(value, "domain table lookup failed");
        return rc < 0 ? MAP_TEMPFAIL : MAP_NOTFOUND;
    }
    switch (pgsql_stmt_exec(m->stmt, pg_expand, &x, &res, &err)) {
    case PGSQL_SUPPRESSED:
        goto out;
    case PGSQL_TEMPFAIL:
        sb_set(value, sb_str(&err));
        status = MAP_TEMPFAIL;
        goto out;
    case PGSQL_OK:
        break;
    }
    if (m->passwd_fields) {
        if (PQntuples(res) > 0)
            status = passwd_entry(m, res, value) > 0 ? MAP_FOUND : MAP_TEMPFAIL;
        goto out;
    }
    for (int row = 0; row < PQntuples(res); row++) {
        for (int col = 0; col < PQnfields(res); col++) {
            const char *field;

            if (PQgetisnull(res, row, col) || *(field = PQgetvalue(res, row, col)) == '\0')
                continue;
            if ((size_t) PQgetlength(res, row, col) > MAP_LINE_MAX
                || strpbrk(field, "\r\n") != NULL) {
                sb_reset(value);
                sb_printf(value, "%s: a result value is longer than %d bytes or holds a line "
                          "break", m->path, MAP_LINE_MAX);
                status = MAP_TEMPFAIL;
                goto out;
            }
            sb_reset(&one);
            if (format_value(m, key, field, &one) != 0)
                continue;
            if (m->expansion_limit > 0 && ++count > m->expansion_limit) {
                sb_reset(value);
                sb_printf(value, "%s: more than expansion_limit = %ld results", m->path,
                          m->expansion_limit);
                status = MAP_TEMPFAIL;
                goto out;
            }
            if (sb_len(value) + 1 + sb_len(&one) > MAP_LINE_MAX) {
                sb_reset(value);
                sb_printf(value, "%s: results longer than %d bytes", m->path, MAP_LINE_MAX);
                status = MAP_TEMPFAIL;
                goto out;
            }
            if (sb_len(value))
                sb_putc(value, ',');
            sb_append(value, one.data, sb_len(&one));
            status = MAP_FOUND;
        }
    }
out:
    if (status == MAP_NOTFOUND)
        sb_reset(value);
    PQclear(res);
    sb_free(&err);
    sb_free(&one);
    return status;
}

static void pg_close(void *handle)
{
    struct pg_map *m = handle, **pp;

    if (--m->refs > 0)
        return;
    for (pp = &open_maps; *pp; pp = &(*pp)->next) {
        if (*pp == m) {
            *pp = m->next;
            break;
        }
    }
    pg_free(m);
}

const struct map_type map_type_pgsql = {
    .name = "pgsql",
    .open = pg_open,
    .lookup = pg_lookup,
    .changed = NULL,
    .close = pg_close,
    .compile = NULL,
};
