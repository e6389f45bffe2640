/*
 * pgsql - the PostgreSQL client shared by pgsql: maps (map_pgsql.c), authd's
 * SQL passdb/userdb and postctl: connections, query templates turned into
 * prepared statements, bounded waits.
 *
 * A connection (struct pgsql_conn) is opened lazily at the first query, to
 * the first host of its list that answers, and re-established after the
 * server went away (restart, network): a query that fails because the
 * connection broke is retried once on a new connection. A host that could
 * not be reached is skipped for retry_interval seconds, so that while the
 * database is down a lookup fails at once instead of waiting out
 * connect_timeout on every call. Every wait is bounded: connect_timeout for
 * connecting (per host), query_timeout for a query round trip (the client
 * side: poll() on the socket; the server is also told statement_timeout).
 * These calls block the calling process for as long as that.
 *
 * Query templates are SQL text with %-escapes (which escapes exist is the
 * caller's: Postfix's %s %u %d, Dovecot's %u %n %d ...). They are never
 * spliced into SQL: each quoted literal that holds escapes ('%u@%d') and
 * each escape standing alone outside quotes becomes one parameter ($1, $2,
 * ...) of a prepared statement, of unspecified type, so the server treats it
 * exactly as it would have treated the literal. Escapes inside identifiers,
 * E'' or dollar-quoted strings, or glued to SQL words are refused when the
 * template is compiled.
 *
 * A key that is not valid UTF-8 cannot be in a UTF-8 database: the caller
 * gets PGSQL_SUPPRESSED for it rather than a server error. Errors of SQLSTATE
 * class 22 (data exception: "abc" compared with an integer column) mean
 * "no such key" as well; everything else is a temporary failure.
 */
#ifndef POSTERN_PGSQL_H
#define POSTERN_PGSQL_H

#include <stdbool.h>
#include <stddef.h>
#include <libpq-fe.h>

#include "strbuf.h"
#include "strlist.h"

#define PGSQL_MAX_PARAMS    32          /* escapes / quoted literals with escapes per query */
#define PGSQL_MAX_HOSTS     16

struct pgsql_settings {
    struct strlist hosts;               /* "host", "host:port", "[v6]:port", "inet:...", "unix:/path" */
    char   *user;
    char   *password;
    char   *dbname;
    int     connect_timeout;            /* seconds, per host */
    int     query_timeout;              /* seconds, per query round trip */
    int     retry_interval;             /* seconds a failed host is skipped */
    char   *sslmode;                    /* NULL: libpq's default ("prefer") */
};

void pgsql_settings_init(struct pgsql_settings *s);
void pgsql_settings_free(struct pgsql_settings *s);
/*
 * pgsql_settings_set - one "name = value" of a map file or connect string
 * (hosts, host, port, user, password, dbname, connect_timeout, query_timeout,
 * retry_interval, sslmode); 1 if the name is not a connection setting, -1
 * with err for a bad value.
 */
int  pgsql_settings_set(struct pgsql_settings *s, const char *name, const char *value,
                        struct strbuf *err);
/* pgsql_parse_conninfo - "host=a port=5432 dbname=x" (Dovecot's connect =) into s; -1 with err */
int  pgsql_parse_conninfo(struct pgsql_settings *s, const char *text, struct strbuf *err);

struct pgsql_conn;

/* pgsql_conn_new - takes over s (hosts must not be empty); nothing is connected yet */
struct pgsql_conn *pgsql_conn_new(struct pgsql_settings *s);
void pgsql_conn_free(struct pgsql_conn *c);
/* pgsql_conn_describe - "user@host:port/dbname" of the first host, for messages */
const char *pgsql_conn_describe(struct pgsql_conn *c);

/*
 * An escape scanner: the length of the escape whose text starts at p (just
 * after the '%'), 0 if there is none there. An expander: the value of that
 * escape into out; 0 ok, 1 suppress the query (the key lacks the part).
 */
typedef size_t (*pgsql_scan_fn)(const char *p);
typedef int (*pgsql_expand_fn)(void *ctx, const char *esc, size_t len, struct strbuf *out);

struct pgsql_stmt;

/* pgsql_stmt_new - compile template for c; NULL with err naming what is wrong */
struct pgsql_stmt *pgsql_stmt_new(struct pgsql_conn *c, const char *template,
                                  pgsql_scan_fn scan, struct strbuf *err);
void pgsql_stmt_free(struct pgsql_stmt *st);
/* pgsql_stmt_sql - the SQL sent to the server, with $N placeholders (tests, messages) */
const char *pgsql_stmt_sql(const struct pgsql_stmt *st);
/* pgsql_stmt_nparams - how many parameters it takes */
int  pgsql_stmt_nparams(const struct pgsql_stmt *st);

enum pgsql_status {
    PGSQL_OK = 0,                       /* *res holds the rows (PQclear it) */
    PGSQL_SUPPRESSED = 1,               /* no query made: the key cannot match */
    PGSQL_TEMPFAIL = -1,                /* reason in err */
};

/*
 * pgsql_stmt_exec - expand the parameters and run the statement (connect,
 * prepare as needed); on PGSQL_OK the caller owns *res.
 */
enum pgsql_status pgsql_stmt_exec(struct pgsql_stmt *st, pgsql_expand_fn expand, void *ctx,
                                  PGresult **res, struct strbuf *err);

/*
 * pgsql_exec_params - run one ad hoc parameterized statement (postctl's
 * writes): sql with $1..$n, values (NULL for SQL NULL). PGSQL_OK with *res
 * (may be NULL if res is NULL), or PGSQL_TEMPFAIL/-2 with err: -2 means the
 * server refused the statement itself (constraint, missing table).
 */
int  pgsql_exec_params(struct pgsql_conn *c, const char *sql, int n, const char *const *values,
                       PGresult **res, struct strbuf *err);

/*
 * pgsql_exec_script - run trusted SQL text that may hold several statements
 * (a schema file: the administrator's, never built from input); PGSQL_OK,
 * PGSQL_TEMPFAIL or -2 (the server refused a statement) with err.
 */
int  pgsql_exec_script(struct pgsql_conn *c, const char *sql, struct strbuf *err);

/* pgsql_utf8_valid - well-formed UTF-8 (no overlongs, no surrogates) */
bool pgsql_utf8_valid(const char *s, size_t len);

/* pgsql_read_config - a "name = value" file (Postfix map file, dovecot-sql.conf): store() each */
typedef int (*pgsql_config_fn)(void *arg, const char *name, const char *value, struct strbuf *err);
int  pgsql_read_config(const char *path, pgsql_config_fn store, void *arg, struct strbuf *err);

#endif
