/*
 * postctl_table - edit the text tables behind hash:/btree: maps (and the
 * Dovecot-style passwd file), as "postctl domain/user/alias" do.
 *
 * An edit takes an exclusive lock (FILE.lock beside the table, so that two
 * admins never lose each other's changes), reads the file, changes entries
 * by key (case-insensitive, as lookups are), keeps comments and the order of
 * everything else, writes the file atomically with its owner and mode, and
 * compiles it (map_compile). Running daemons pick the new .db up by
 * themselves (see map.h and service.h).
 */
#ifndef POSTERN_POSTCTL_TABLE_H
#define POSTERN_POSTCTL_TABLE_H

#include <stdbool.h>
#include "config.h"
#include "strbuf.h"
#include "strlist.h"

struct text_table {
    char   *path;
    char    separator;                  /* ' ': "key value"; ':': "key:fields" (passwd) */
    struct strlist lines;               /* one entry per logical line (continuations joined) */
    int     lock_fd;
};

/* table_file_for - the file of the first hash:/btree: table named by a main.cf parameter */
int  table_file_for(struct config *cfg, const char *param, struct strbuf *spec, struct strbuf *path,
                    struct strbuf *err);
int  table_open(struct text_table *t, const char *path, char separator, struct strbuf *err);
bool table_get(const struct text_table *t, const char *key, struct strbuf *value);
void table_set(struct text_table *t, const char *key, const char *value);
bool table_remove(struct text_table *t, const char *key);
/* table_next - iterate entries: *pos starts at 0 */
bool table_next(const struct text_table *t, size_t *pos, struct strbuf *key, struct strbuf *value);
/* table_commit - write and (spec non-NULL) compile; then close */
int  table_commit(struct text_table *t, const char *spec, struct strbuf *err);
void table_close(struct text_table *t);

/* Shared by the subcommands: a domain or address given by the admin, checked and lower-cased. */
int  admin_domain(const char *text, struct strbuf *out, struct strbuf *err);
int  admin_address(const char *text, struct strbuf *address, struct strbuf *domain, struct strbuf *err);
/* admin_domain_class - which of our domain tables lists domain: "mailbox", "alias", "relay" or NULL */
const char *admin_domain_class(struct config *cfg, const char *domain, struct strbuf *err);
/* admin_mailbox_path - "domain/local/" (set in path) for a new mailbox, either backend; -1 if the local part is unsafe as a name */
int  admin_mailbox_path(const char *address, struct strbuf *path, struct strbuf *err);
/* admin_domain_is_local - domain is in mydestination (names and tables, as the daemons see it) */
bool admin_domain_is_local(struct config *cfg, const char *domain);
/* admin_load_config - main.cf of the instance, errors to stderr as "postctl CMD: ..." */
struct config *admin_load_config(const char *config_dir, const char *cmd);

#endif
