/*
 * postctl_pgsql - postctl's PostgreSQL backend: init --backend pgsql and
 * domain/user/alias on an instance whose directory lives in PostgreSQL.
 */
#ifndef POSTERN_POSTCTL_PGSQL_H
#define POSTERN_POSTCTL_PGSQL_H

#include "config.h"
#include "strbuf.h"

struct pgsql_conn;

/* postctl_pgsql_init - map files in CONFIG_DIR/pgsql, main.cf pointed at them, schema run; -1 with err */
int  postctl_pgsql_init(const char *config_dir, const char *dsn, struct strbuf *err);
/*
 * postctl_pgsql_open - the instance's database (from virtual_mailbox_maps'
 * pgsql: file) when it is on pgsql; NULL with err empty when it is not, NULL
 * with err when the file cannot be read
 */
struct pgsql_conn *postctl_pgsql_open(struct config *cfg, struct strbuf *err);
/* postctl_pgsql_domain/user/alias - the subcommand (argv[1] add|del|list...) on the database */
int  postctl_pgsql_domain(struct pgsql_conn *c, int argc, char **argv);
int  postctl_pgsql_user(struct pgsql_conn *c, int argc, char **argv);
int  postctl_pgsql_alias(struct pgsql_conn *c, int argc, char **argv);
/*
 * postctl_pgsql_dispatch - "postctl CMD" (domain, user, alias) on the
 * database when the instance is on pgsql, *rc its exit status; 1 when it is
 * not (the caller edits its Berkeley DB tables)
 */
int  postctl_pgsql_dispatch(struct config *cfg, const char *cmd, int argc, char **argv, int *rc);

#endif
