/*
 * postctl_pgsql - the PostgreSQL backend of postctl: "init --backend pgsql"
 * and "domain/user/alias" on an instance whose directory is in PostgreSQL.
 *
 * Interface (postctl_pgsql.h): postctl_pgsql_init(), postctl_pgsql_open(),
 * postctl_pgsql_domain(), postctl_pgsql_user(), postctl_pgsql_alias().
 *
 * An instance is on pgsql when main.cf's virtual_mailbox_maps is a pgsql:
 * map; its connection settings (hosts, user, password, dbname) are that map
 * file's, so there is one place for them and it is not the world-readable
 * main.cf. init writes conf/pgsql's map files (built in) with the DSN's
 * settings into $config_directory/pgsql/ (mode 0600: they hold the
 * password; daemons read them before they drop privileges), points main.cf
 * at them and runs conf/pgsql/schema.sql, which only creates what is missing.
 *
 * Every write is one parameterized statement (pgsql_exec_params): names
 * and passwords are values, never SQL. Names are checked and lower-cased as
 * for the Berkeley DB tables (admin_domain, admin_address). Running daemons
 * see a change at their next lookup: there is no cache to flush.
 *
 * Diagnostics: "postctl CMD: ..." on stderr; the server's refusals
 * (constraint violations, missing tables) are shown with their SQLSTATE.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "config.h"
#include "fsutil.h"
#include "password.h"
#include "pgsql.h"
#include "strbuf.h"

#include "postctl.h"
#include "postctl_pgsql.h"
#include "postctl_table.h"

extern const char conf_pgsql_schema_sql[];
extern const char conf_pgsql_domains_cf[];
extern const char conf_pgsql_alias_domains_cf[];
extern const char conf_pgsql_relay_domains_cf[];
extern const char conf_pgsql_mailboxes_cf[];
extern const char conf_pgsql_aliases_cf[];
extern const char conf_pgsql_transport_cf[];
extern const char conf_pgsql_passdb_cf[];
extern const char conf_pgsql_mailbox_limits_cf[];

/* The map files init writes, and the main.cf parameter each one serves. */
static const struct {
    const char *param;
    const char *file;
    const char *text;
} pg_maps[] = {
    {"virtual_mailbox_domains", "domains.cf", conf_pgsql_domains_cf},
    {"virtual_alias_domains", "alias_domains.cf", conf_pgsql_alias_domains_cf},
    {"relay_domains", "relay_domains.cf", conf_pgsql_relay_domains_cf},
    {"virtual_mailbox_maps", "mailboxes.cf", conf_pgsql_mailboxes_cf},
    {"virtual_alias_maps", "aliases.cf", conf_pgsql_aliases_cf},
    {"transport_maps", "transport.cf", conf_pgsql_transport_cf},
    {"auth_passdb_maps", "passdb.cf", conf_pgsql_passdb_cf},
    {"virtual_mailbox_limit_maps", "mailbox_limits.cf", conf_pgsql_mailbox_limits_cf},
};
#define PG_MAP_COUNT (sizeof(pg_maps) / sizeof(pg_maps[0]))

/* replace_all - text with every marker of pairs (marker, value, ..., NULL) replaced */
static void replace_all(const char *text, const char *const *pairs, struct strbuf *out)
{
    sb_reset(out);
    while (*text) {
        bool    hit = false;

        for (size_t i = 0; pairs[i]; i += 2) {
            size_t  n = strlen(pairs[i]);

            if (strncmp(text, pairs[i], n) == 0) {
                sb_puts(out, pairs[i + 1]);
                text += n;
                hit = true;
                break;
            }
        }
        if (!hit)
            sb_putc(out, *text++);
    }
}

/* set_main_cf - replace (or append) "name = value" lines of main.cf */
static int set_main_cf(const char *config_dir, const char *const *pairs, struct strbuf *err)
{
    struct strbuf path = STRBUF_INIT, text = STRBUF_INIT, out = STRBUF_INIT;
    int     rc = -1;

    sb_printf(&path, "%s/main.cf", config_dir);
    if (fs_read_file(path.data, 1024 * 1024, &text, err) < 0)
        goto done;
    for (const char *p = text.data; p && *p;) {
        const char *nl = strchr(p, '\n');
        size_t  len = nl ? (size_t) (nl - p) : strlen(p);
        bool    ours = false;

        for (size_t i = 0; pairs[i]; i += 2) {
            size_t  n = strlen(pairs[i]);

            if (len > n && strncmp(p, pairs[i], n) == 0 && (p[n] == ' ' || p[n] == '='))
                ours = true;
        }
        if (!ours) {
            sb_append(&out, p, len);
            sb_putc(&out, '\n');
        }
        p = nl ? nl + 1 : NULL;
    }
    for (size_t i = 0; pairs[i]; i += 2)
        sb_printf(&out, "%s = %s\n", pairs[i], pairs[i + 1]);
    rc = fs_write_atomic(path.data, out.data, sb_len(&out), 0644, (uid_t) -1, (gid_t) -1, err);
done:
    sb_free(&path), sb_free(&text), sb_free(&out);
    return rc;
}

int postctl_pgsql_init(const char *config_dir, const char *dsn, struct strbuf *err)
{
    struct pgsql_settings set;
    struct strbuf hosts = STRBUF_INIT, dir = STRBUF_INIT, path = STRBUF_INIT;
    struct strbuf text = STRBUF_INIT, spec[PG_MAP_COUNT];
    const char *params[2 * PG_MAP_COUNT + 1];
    struct pgsql_conn *conn = NULL;
    int     rc = -1;

    for (size_t i = 0; i < PG_MAP_COUNT; i++)
        sb_init(&spec[i]);
    pgsql_settings_init(&set);
    if (pgsql_parse_conninfo(&set, dsn, err) < 0)
        goto done;
    if (set.dbname == NULL || set.user == NULL) {
        sb_set(err, "--pg-dsn needs at least dbname= and user= (and password= for TCP)");
        goto done;
    }
    for (size_t i = 0; i < set.hosts.count; i++)
        sb_printf(&hosts, "%s%s", i ? " " : "", set.hosts.items[i]);
    {
        const char *pairs[] = {"@PG_HOSTS@", hosts.data, "@PG_USER@", set.user,
            "@PG_PASSWORD@", set.password ? set.password : "", "@PG_DBNAME@", set.dbname, NULL};

        sb_printf(&dir, "%s/pgsql", config_dir);
        if (fs_mkdir_owned(dir.data, 0755, (uid_t) -1, (gid_t) -1, err) < 0)
            goto done;
        for (size_t i = 0; i < PG_MAP_COUNT; i++) {
            sb_reset(&path);
            sb_printf(&path, "%s/%s", dir.data, pg_maps[i].file);
            replace_all(pg_maps[i].text, pairs, &text);
            if (fs_write_atomic(path.data, text.data, sb_len(&text), 0600, (uid_t) -1,
                                (gid_t) -1, err) < 0)
                goto done;
            sb_printf(&spec[i], "pgsql:$config_directory/pgsql/%s", pg_maps[i].file);
            params[2 * i] = pg_maps[i].param;
            params[2 * i + 1] = spec[i].data;
        }
        params[2 * PG_MAP_COUNT] = NULL;
    }
    if (set_main_cf(config_dir, params, err) < 0)
        goto done;
    conn = pgsql_conn_new(&set);
    if (pgsql_exec_script(conn, conf_pgsql_schema_sql, err) != PGSQL_OK) {
        struct strbuf why = STRBUF_INIT;

        sb_printf(&why, "schema.sql on %s: %s", pgsql_conn_describe(conn), sb_str(err));
        sb_set(err, why.data);
        sb_free(&why);
        goto done;
    }
    rc = 0;
done:
    pgsql_conn_free(conn);
    pgsql_settings_free(&set);
    for (size_t i = 0; i < PG_MAP_COUNT; i++)
        sb_free(&spec[i]);
    sb_free(&hosts), sb_free(&dir), sb_free(&path), sb_free(&text);
    return rc;
}

/* conn_setting - the connection settings of a map file; the rest is not ours here */
static int conn_setting(void *arg, const char *name, const char *value, struct strbuf *err)
{
    int     rc = pgsql_settings_set(arg, name, value, err);

    return rc < 0 ? -1 : 0;
}

struct pgsql_conn *postctl_pgsql_open(struct config *cfg, struct strbuf *err)
{
    const char *spec = config_str(cfg, "virtual_mailbox_maps");
    struct pgsql_settings set;

    if (strncmp(spec, "pgsql:", 6) != 0)
        return NULL;
    pgsql_settings_init(&set);
    if (pgsql_read_config(spec + 6, conn_setting, &set, err) < 0) {
        pgsql_settings_free(&set);
        return NULL;
    }
    if (set.hosts.count == 0)
        strlist_add(&set.hosts, "127.0.0.1");
    return pgsql_conn_new(&set);
}

/* exec - one statement; 0, or -1 with the reason printed for cmd */
static int exec(struct pgsql_conn *c, const char *cmd, const char *sql, int n,
                const char *const *values, PGresult **res)
{
    struct strbuf err = STRBUF_INIT;
    int     rc = pgsql_exec_params(c, sql, n, values, res, &err);

    if (rc != PGSQL_OK)
        fprintf(stderr, "postctl %s: %s%s\n", cmd, sb_str(&err),
                rc == PGSQL_TEMPFAIL ? " (database unreachable; nothing changed)" : "");
    sb_free(&err);
    return rc == PGSQL_OK ? 0 : -1;
}

/* affected - rows a write changed */
static long affected(PGresult *res)
{
    return res ? atol(PQcmdTuples(res)) : 0;
}

int postctl_pgsql_domain(struct pgsql_conn *c, int argc, char **argv)
{
    struct strbuf domain = STRBUF_INIT, err = STRBUF_INIT;
    PGresult *res = NULL;
    int     rc = POSTCTL_FAILED;

    if (strcmp(argv[1], "list") == 0) {
        if (exec(c, "domain", "SELECT domain, class, active FROM domains ORDER BY domain", 0,
                 NULL, &res) == 0) {
            for (int r = 0; r < PQntuples(res); r++)
                printf("%s %s%s\n", PQgetvalue(res, r, 0), PQgetvalue(res, r, 1),
                       PQgetvalue(res, r, 2)[0] == 't' ? "" : " (inactive)");
            rc = POSTCTL_OK;
        }
    } else if ((strcmp(argv[1], "add") == 0 || strcmp(argv[1], "del") == 0) && argc >= 3) {
        const char *class = "mailbox";

        for (int i = 3; i < argc; i++) {
            if (strcmp(argv[i], "--relay") == 0)
                class = "relay";
            else if (strcmp(argv[i], "--alias-domain") == 0)
                class = "alias";
            else if (strcmp(argv[i], "--force") != 0) {
                fprintf(stderr, "postctl domain: unknown option %s\n", argv[i]);
                rc = POSTCTL_USAGE;
                goto done;
            }
        }
        if (admin_domain(argv[2], &domain, &err) < 0) {
            fprintf(stderr, "postctl domain: %s\n", sb_str(&err));
            goto done;
        }
        if (argv[1][0] == 'a') {
            const char *v[] = {domain.data, class};

            if (exec(c, "domain", "INSERT INTO domains (domain, class) VALUES ($1, $2) "
                     "ON CONFLICT (domain) DO UPDATE SET class = $2, active = true", 2, v,
                     &res) == 0) {
                printf("postctl domain: added %s (%s, PostgreSQL)\n", domain.data, class);
                rc = POSTCTL_OK;
            }
        } else {
            const char *v[] = {domain.data};

            if (exec(c, "domain", "DELETE FROM domains WHERE domain = $1", 1, v, &res) == 0) {
                if (affected(res) == 0)
                    fprintf(stderr, "postctl domain: %s is not a domain of this instance\n",
                            domain.data);
                else {
                    printf("postctl domain: deleted %s (its mailboxes with it; mail stays on "
                           "disk)\n", domain.data);
                    rc = POSTCTL_OK;
                }
            }
        }
    } else {
        rc = POSTCTL_USAGE;
    }
done:
    PQclear(res);
    sb_free(&domain), sb_free(&err);
    return rc;
}

/* user_add - INSERT a mailbox; its domain must be a mailbox domain already */
static int user_add(struct pgsql_conn *c, int argc, char **argv)
{
    struct strbuf address = STRBUF_INIT, domain = STRBUF_INIT, maildir = STRBUF_INIT;
    struct strbuf plain = STRBUF_INIT, hash = STRBUF_INIT, err = STRBUF_INIT, q = STRBUF_INIT;
    bool    from_stdin = false, disabled = false;
    long long quota = 0;
    PGresult *res = NULL;
    int     rc = POSTCTL_FAILED;

    for (int i = 3; i < argc; i++) {
        if (strcmp(argv[i], "--password-stdin") == 0)
            from_stdin = true;
        else if (strcmp(argv[i], "--disabled") == 0)
            disabled = true;
        else if (strcmp(argv[i], "--quota") == 0 && i + 1 < argc) {
            if (config_parse_size(argv[++i], &quota) < 0 || quota < 0) {
                fprintf(stderr, "postctl user add: bad --quota '%s' (e.g. 500M, 2G)\n", argv[i]);
                return POSTCTL_USAGE;
            }
        } else {
            fprintf(stderr, "postctl user add: unknown option %s\n", argv[i]);
            return POSTCTL_USAGE;
        }
    }
    if (admin_address(argv[2], &address, &domain, &err) < 0
        || admin_mailbox_path(address.data, &maildir, &err) < 0
        || postctl_read_password(from_stdin, &plain, &err) < 0
        || password_hash(PASSWORD_DEFAULT_SCHEME, plain.data, &hash, &err) < 0) {
        fprintf(stderr, "postctl user add: %s\n", sb_str(&err));
        goto done;
    }
    sb_printf(&q, "%lld", quota);
    {
        const char *v[] = {address.data, domain.data, hash.data, maildir.data, q.data,
            disabled ? "false" : "true"};

        /* the domain must exist as a mailbox domain: no row is inserted otherwise */
        if (exec(c, "user add", "INSERT INTO mailboxes (address, domain, password, maildir, "
                 "quota, active) SELECT $1, domain, $3, $4, $5::bigint, $6::boolean FROM domains "
                 "WHERE domain = $2 AND class = 'mailbox'", 6, v, &res) < 0)
            goto done;
    }
    if (affected(res) == 0) {
        fprintf(stderr, "postctl user add: %s is not a mailbox domain (postctl domain add %s)\n",
                domain.data, domain.data);
        goto done;
    }
    printf("postctl user: added %s (mailbox %s, PostgreSQL)\n", address.data, maildir.data);
    rc = POSTCTL_OK;
done:
    PQclear(res);
    explicit_bzero(plain.data ? plain.data : (char *) "", sb_len(&plain));
    sb_free(&address), sb_free(&domain), sb_free(&maildir), sb_free(&plain), sb_free(&hash);
    sb_free(&err), sb_free(&q);
    return rc;
}

int postctl_pgsql_user(struct pgsql_conn *c, int argc, char **argv)
{
    struct strbuf address = STRBUF_INIT, domain = STRBUF_INIT, err = STRBUF_INIT;
    struct strbuf plain = STRBUF_INIT, hash = STRBUF_INIT;
    PGresult *res = NULL;
    const char *sql = NULL, *what = NULL;
    int     rc = POSTCTL_FAILED;

    if (strcmp(argv[1], "list") == 0) {
        const char *v[] = {argc >= 3 ? argv[2] : ""};

        if (exec(c, "user", "SELECT address, maildir, active FROM mailboxes WHERE $1 = '' OR "
                 "domain = lower($1) ORDER BY address", 1, v, &res) == 0) {
            for (int r = 0; r < PQntuples(res); r++)
                printf("%s %s%s\n", PQgetvalue(res, r, 0), PQgetvalue(res, r, 1),
                       PQgetvalue(res, r, 2)[0] == 't' ? "" : " (disabled)");
            rc = POSTCTL_OK;
        }
        goto done;
    }
    if (argc < 3)
        return POSTCTL_USAGE;
    if (strcmp(argv[1], "add") == 0)
        return user_add(c, argc, argv);
    if (admin_address(argv[2], &address, &domain, &err) < 0) {
        fprintf(stderr, "postctl user: %s\n", sb_str(&err));
        goto done;
    }
    if (strcmp(argv[1], "del") == 0) {
        sql = "DELETE FROM mailboxes WHERE address = $1", what = "deleted (mail stays on disk)";
    } else if (strcmp(argv[1], "disable") == 0) {
        /* as with the Berkeley DB backend: no login, mail still arrives (active stays) */
        sql = "UPDATE mailboxes SET allow_imap = false, allow_smtp = false WHERE address = $1";
        what = "disabled (no login; mail still arrives)";
    } else if (strcmp(argv[1], "enable") == 0) {
        sql = "UPDATE mailboxes SET allow_imap = true, allow_smtp = true WHERE address = $1";
        what = "enabled";
    } else if (strcmp(argv[1], "passwd") == 0) {
        if (postctl_read_password(argc > 3 && strcmp(argv[3], "--password-stdin") == 0,
                                  &plain, &err) < 0
            || password_hash(PASSWORD_DEFAULT_SCHEME, plain.data, &hash, &err) < 0) {
            fprintf(stderr, "postctl user passwd: %s\n", sb_str(&err));
            goto done;
        }
        sql = "UPDATE mailboxes SET password = $2 WHERE address = $1", what = "password changed";
    } else {
        rc = POSTCTL_USAGE;
        goto done;
    }
    {
        const char *v[] = {address.data, hash.data ? hash.data : ""};

        if (exec(c, "user", sql, hash.data ? 2 : 1, v, &res) < 0)
            goto done;
    }
    if (affected(res) == 0) {
        fprintf(stderr, "postctl user: no mailbox %s\n", address.data);
        goto done;
    }
    printf("postctl user: %s %s\n", address.data, what);
    rc = POSTCTL_OK;
done:
    PQclear(res);
    explicit_bzero(plain.data ? plain.data : (char *) "", sb_len(&plain));
    sb_free(&address), sb_free(&domain), sb_free(&err), sb_free(&plain), sb_free(&hash);
    return rc;
}

int postctl_pgsql_alias(struct pgsql_conn *c, int argc, char **argv)
{
    struct strbuf address = STRBUF_INIT, domain = STRBUF_INIT, err = STRBUF_INIT;
    struct strbuf dest = STRBUF_INIT, dest_domain = STRBUF_INIT;
    PGresult *res = NULL;
    int     rc = POSTCTL_FAILED;

    if (strcmp(argv[1], "list") == 0) {
        if (exec(c, "alias", "SELECT address, string_agg(goto, ',' ORDER BY goto) FROM aliases "
                 "WHERE active GROUP BY address ORDER BY address", 0, NULL, &res) == 0) {
            for (int r = 0; r < PQntuples(res); r++)
                printf("%s %s\n", PQgetvalue(res, r, 0), PQgetvalue(res, r, 1));
            rc = POSTCTL_OK;
        }
        goto done;
    }
    if (argc < 3 || (strcmp(argv[1], "add") == 0 && argc < 4)
        || (strcmp(argv[1], "add") != 0 && strcmp(argv[1], "del") != 0)) {
        rc = POSTCTL_USAGE;
        goto done;
    }
    if (argv[2][0] == '@' ? admin_domain(argv[2] + 1, &domain, &err) < 0
        : admin_address(argv[2], &address, &domain, &err) < 0) {
        fprintf(stderr, "postctl alias: %s\n", sb_str(&err));
        goto done;
    }
    if (argv[2][0] == '@')
        sb_printf(&address, "@%s", domain.data);
    if (strcmp(argv[1], "del") == 0 && argc == 3) {
        const char *v[] = {address.data};

        if (exec(c, "alias", "DELETE FROM aliases WHERE address = $1", 1, v, &res) == 0)
            rc = affected(res) ? POSTCTL_OK : POSTCTL_FAILED;
        if (rc != POSTCTL_OK)
            fprintf(stderr, "postctl alias: no alias %s\n", address.data);
        goto done;
    }
    rc = POSTCTL_OK;
    for (int i = 3; i < argc && rc == POSTCTL_OK; i++) {
        const char *v[] = {address.data, dest.data};

        sb_reset(&dest), sb_reset(&dest_domain);
        if (admin_address(argv[i], &dest, &dest_domain, &err) < 0) {
            fprintf(stderr, "postctl alias: %s\n", sb_str(&err));
            rc = POSTCTL_FAILED;
            break;
        }
        v[1] = dest.data;
        PQclear(res);
        res = NULL;
        if (exec(c, "alias", argv[1][0] == 'a'
                 ? "INSERT INTO aliases (address, goto) VALUES ($1, $2) ON CONFLICT DO NOTHING"
                 : "DELETE FROM aliases WHERE address = $1 AND goto = $2", 2, v, &res) < 0)
            rc = POSTCTL_FAILED;
    }
    if (rc == POSTCTL_OK)
        printf("postctl alias: %s %s\n", address.data, argv[1][0] == 'a' ? "added" : "deleted");
done:
    PQclear(res);
    sb_free(&address), sb_free(&domain), sb_free(&err), sb_free(&dest), sb_free(&dest_domain);
    return rc;
}

int postctl_pgsql_dispatch(struct config *cfg, const char *cmd, int argc, char **argv, int *rc)
{
    struct strbuf err = STRBUF_INIT;
    struct pgsql_conn *c = postctl_pgsql_open(cfg, &err);

    if (c == NULL && sb_len(&err) == 0)
        return 1;
    if (c == NULL) {
        fprintf(stderr, "postctl %s: %s\n", cmd, sb_str(&err));
        *rc = POSTCTL_FAILED;
    } else if (strcmp(cmd, "domain") == 0) {
        *rc = postctl_pgsql_domain(c, argc, argv);
    } else if (strcmp(cmd, "user") == 0) {
        *rc = postctl_pgsql_user(c, argc, argv);
    } else {
        *rc = postctl_pgsql_alias(c, argc, argv);
    }
    if (*rc == POSTCTL_USAGE)
        fprintf(stderr, "postctl %s: see postctl %s --help\n", cmd, cmd);
    pgsql_conn_free(c);
    sb_free(&err);
    return 0;
}

/*
 * "postctl migrate --pg-dsn DSN": the Berkeley DB instance's tables and
 * passwd-file copied into PostgreSQL in one transaction (all or nothing),
 * then the instance switched to it as init --backend pgsql would. The text
 * sources of the tables are read (postctl keeps them beside the .db files;
 * a texthash: table is its text); rows that exist already are left as they
 * are, so a second run is harmless. A table set in main.cf that cannot be
 * read this way (another map type) stops the migration before anything is
 * copied: switching would silently drop its entries.
 */

/* migrate_source - the text file behind param's table: 1 found, 0 none set, -1 one we cannot copy */
static int migrate_source(struct config *cfg, const char *param, struct strbuf *path, struct strbuf *err)
{
    struct strbuf spec = STRBUF_INIT;
    struct strlist items = STRLIST_INIT;
    int     rc;

    if (table_file_for(cfg, param, &spec, path, err) == 0) {
        sb_free(&spec);
        return 1;
    }
    sb_free(&spec);
    sb_reset(err);
    strlist_split(&items, config_str(cfg, param));
    rc = items.count == 0 ? 0 : -1;
    for (size_t i = 0; i < items.count && rc < 0; i++) {
        if (strncmp(items.items[i], "texthash:", 9) == 0) {
            sb_set(path, items.items[i] + 9);
            rc = 1;
        }
    }
    if (rc < 0)
        sb_printf(err, "%s = %s: no hash:, btree: or texthash: table to copy", param,
                  config_str(cfg, param));
    strlist_free(&items);
    return rc;
}

/* migrate_check_sources - every table that will be switched can be copied; -1 with err */
static int migrate_check_sources(struct config *cfg, struct strbuf *err)
{
    struct strbuf path = STRBUF_INIT;
    int     rc = 0;

    for (size_t i = 0; i < PG_MAP_COUNT && rc == 0; i++)
        if (strcmp(pg_maps[i].param, "auth_passdb_maps") != 0     /* the passwd-file is read instead */
            && migrate_source(cfg, pg_maps[i].param, &path, err) < 0)
            rc = -1;
    sb_free(&path);
    return rc;
}

/* migrate_table - every entry of the text table behind param through sql, with its first nparams of v[] */
static int migrate_table(struct config *cfg, struct pgsql_conn *c, const char *param,
                         const char *sql, int nparams, const char *extra, long *count)
{
    struct strbuf path = STRBUF_INIT, err = STRBUF_INIT;
    struct strbuf key = STRBUF_INIT, value = STRBUF_INIT;
    struct text_table t;
    size_t  pos = 0;
    int     rc = 0;

    if (migrate_source(cfg, param, &path, &err) <= 0 || table_open(&t, path.data, ' ', &err) < 0) {
        /* an instance without this table (e.g. no relay_domains) has nothing to copy */
        sb_free(&path), sb_free(&err);
        return 0;
    }
    while (rc == 0 && table_next(&t, &pos, &key, &value)) {
        const char *at = strrchr(key.data, '@');
        /* domains: $1 name, $2 class; mailboxes: $1 address, $2 maildir, $3 domain; others: key, value */
        const char *v[] = {key.data, extra ? extra : value.data, at ? at + 1 : key.data};

        sb_lowercase(&key);
        if (strcmp(param, "virtual_alias_maps") == 0) {
            /* one row per destination */
            struct strlist dests = STRLIST_INIT;

            for (char *p = value.data; *p; p++)
                if (*p == ',')
                    *p = ' ';
            strlist_split(&dests, value.data);
            for (size_t i = 0; i < dests.count && rc == 0; i++) {
                v[1] = dests.items[i];
                rc = exec(c, "migrate", sql, 2, v, NULL);
                (*count)++;
            }
            strlist_free(&dests);
        } else {
            rc = exec(c, "migrate", sql, nparams, v, NULL);
            (*count)++;
        }
    }
    table_close(&t);
    sb_free(&path), sb_free(&err), sb_free(&key), sb_free(&value);
    return rc;
}

/* migrate_passwords - the passwd-file's hashes, quotas and service permissions onto the mailboxes */
static int migrate_passwords(struct config *cfg, struct pgsql_conn *c, long *count)
{
    struct strbuf err = STRBUF_INIT, key = STRBUF_INIT, value = STRBUF_INIT;
    struct text_table t;
    size_t  pos = 0;
    int     rc = 0;

    if (table_open(&t, config_str(cfg, "auth_passwd_file"), ':', &err) < 0) {
        sb_free(&err);
        return 0;
    }
    while (rc == 0 && table_next(&t, &pos, &key, &value)) {
        /* {SCHEME}hash:uid:gid:gecos:home:shell:extra fields */
        char   *fields = value.data, *extra = fields;
        const char *quota = "0", *imap = "true", *smtp = "true";
        char    qbuf[32];

        for (int n = 0; n < 6 && extra; n++)
            if ((extra = strchr(extra, ':')) != NULL)
                *extra++ = '\0';
        for (char *f = extra ? strtok(extra, " \t") : NULL; f; f = strtok(NULL, " \t")) {
            if (strcmp(f, "nologin") == 0)
                imap = smtp = "false";
            else if (strcmp(f, "allow_imap=no") == 0)
                imap = "false";
            else if (strcmp(f, "allow_smtp=no") == 0)
                smtp = "false";
            else if (strncmp(f, "userdb_quota_rule=*:bytes=", 26) == 0) {
                long long bytes;

                if (config_parse_size(f + 26, &bytes) == 0 && bytes >= 0) {
                    snprintf(qbuf, sizeof(qbuf), "%lld", bytes);
                    quota = qbuf;
                }
            }
        }
        sb_lowercase(&key);
        {
            const char *v[] = {key.data, strcmp(fields, "*") == 0 ? "" : fields, quota, imap, smtp};

            rc = exec(c, "migrate", "UPDATE mailboxes SET password = $2, quota = $3::bigint, "
                      "allow_imap = $4::boolean, allow_smtp = $5::boolean WHERE address = $1",
                      5, v, NULL);
            (*count)++;
        }
    }
    table_close(&t);
    sb_free(&err), sb_free(&key), sb_free(&value);
    return rc;
}

int cmd_migrate(struct postctl *ctl, int argc, char **argv)
{
    struct pgsql_settings set;
    struct strbuf err = STRBUF_INIT;
    struct pgsql_conn *c = NULL;
    struct config *cfg;
    const char *dsn = NULL;
    long    domains = 0, mailboxes = 0, aliases = 0, transports = 0, passwords = 0;
    int     rc = POSTCTL_FAILED;

    if (postctl_wants_help(argc, argv) || argc != 3 || strcmp(argv[1], "--pg-dsn") != 0) {
        fprintf(postctl_wants_help(argc, argv) ? stdout : stderr,
                "usage: postctl migrate --pg-dsn \"host=H port=P dbname=D user=U password=W\"\n"
                "  copy this instance's domains, mailboxes, aliases, transports and passwords from its\n"
                "  Berkeley DB tables and passwd-file into PostgreSQL (one transaction), then\n"
                "  switch main.cf to the pgsql: maps, as init --backend pgsql writes them\n");
        return postctl_wants_help(argc, argv) ? POSTCTL_OK : POSTCTL_USAGE;
    }
    dsn = argv[2];
    if ((cfg = admin_load_config(ctl->config_dir, "migrate")) == NULL)
        return POSTCTL_FAILED;
    if (strncmp(config_str(cfg, "virtual_mailbox_maps"), "pgsql:", 6) == 0) {
        fprintf(stderr, "postctl migrate: this instance is on PostgreSQL already\n");
        config_free(cfg);
        return POSTCTL_FAILED;
    }
    if (migrate_check_sources(cfg, &err) < 0) {
        fprintf(stderr, "postctl migrate: %s; nothing copied, main.cf unchanged\n", sb_str(&err));
        goto done;
    }
    pgsql_settings_init(&set);
    if (pgsql_parse_conninfo(&set, dsn, &err) < 0) {
        fprintf(stderr, "postctl migrate: %s\n", sb_str(&err));
        pgsql_settings_free(&set);
        goto done;
    }
    c = pgsql_conn_new(&set);
    if (pgsql_exec_script(c, conf_pgsql_schema_sql, &err) != PGSQL_OK) {
        fprintf(stderr, "postctl migrate: schema.sql: %s\n", sb_str(&err));
        goto done;
    }
    if (exec(c, "migrate", "BEGIN", 0, NULL, NULL) < 0
        || migrate_table(cfg, c, "virtual_mailbox_domains", "INSERT INTO domains (domain, class) "
                         "VALUES ($1, $2) ON CONFLICT DO NOTHING", 2, "mailbox", &domains) < 0
        || migrate_table(cfg, c, "virtual_alias_domains", "INSERT INTO domains (domain, class) "
                         "VALUES ($1, $2) ON CONFLICT DO NOTHING", 2, "alias", &domains) < 0
        || migrate_table(cfg, c, "relay_domains", "INSERT INTO domains (domain, class) "
                         "VALUES ($1, $2) ON CONFLICT DO NOTHING", 2, "relay", &domains) < 0
        || migrate_table(cfg, c, "virtual_mailbox_maps", "INSERT INTO mailboxes (address, domain, "
                         "maildir) VALUES ($1, $3, $2) ON CONFLICT DO NOTHING", 3, NULL, &mailboxes) < 0
        || migrate_table(cfg, c, "virtual_alias_maps", "INSERT INTO aliases (address, goto) "
                         "VALUES ($1, $2) ON CONFLICT DO NOTHING", 2, NULL, &aliases) < 0
        || migrate_table(cfg, c, "transport_maps", "INSERT INTO transports (destination, transport) "
                         "VALUES ($1, $2) ON CONFLICT DO NOTHING", 2, NULL, &transports) < 0
        || migrate_passwords(cfg, c, &passwords) < 0
        || exec(c, "migrate", "COMMIT", 0, NULL, NULL) < 0) {
        fprintf(stderr, "postctl migrate: nothing was copied (rolled back); main.cf unchanged\n");
        goto done;
    }
    if (postctl_pgsql_init(ctl->config_dir, dsn, &err) < 0) {
        fprintf(stderr, "postctl migrate: copied, but switching main.cf failed: %s\n",
                sb_str(&err));
        goto done;
    }
    printf("postctl migrate: %ld domains, %ld mailboxes, %ld alias destinations, %ld transports, "
           "%ld passwords copied; main.cf now uses PostgreSQL (postctl reload to apply)\n", domains,
           mailboxes, aliases, transports, passwords);
    rc = POSTCTL_OK;
done:
    pgsql_conn_free(c);
    config_free(cfg);
    sb_free(&err);
    return rc;
}
