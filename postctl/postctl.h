/*
 * postctl - the admin CLI: one binary, git-style subcommands.
 *
 * Each subcommand lives in its own file (postctl_conf.c, postctl_map.c, ...)
 * and is listed in the table in postctl.c. Exit codes: 0 ok, 1 failed, 2 usage.
 * The instance is chosen with -c CONFIG_DIR, else $POSTERN_CONFIG, else
 * /etc/postern, as Postfix does with -c and MAIL_CONFIG.
 */
#ifndef POSTERN_POSTCTL_H
#define POSTERN_POSTCTL_H

#include <stdbool.h>

#define POSTCTL_OK     0
#define POSTCTL_FAILED 1
#define POSTCTL_USAGE  2

struct postctl {
    const char *config_dir;             /* resolved instance configuration directory */
    const char *self_path;              /* absolute path of this binary */
};

/* A subcommand gets argv[0] = its own name; it prints its errors to stderr. */
typedef int (*postctl_cmd_fn)(struct postctl *ctl, int argc, char **argv);

int cmd_init(struct postctl *ctl, int argc, char **argv);
int cmd_start(struct postctl *ctl, int argc, char **argv);
int cmd_stop(struct postctl *ctl, int argc, char **argv);
int cmd_reload(struct postctl *ctl, int argc, char **argv);
int cmd_status(struct postctl *ctl, int argc, char **argv);
int cmd_check(struct postctl *ctl, int argc, char **argv);
int cmd_conf(struct postctl *ctl, int argc, char **argv);
int cmd_map(struct postctl *ctl, int argc, char **argv);
int cmd_domain(struct postctl *ctl, int argc, char **argv);
int cmd_user(struct postctl *ctl, int argc, char **argv);
int cmd_alias(struct postctl *ctl, int argc, char **argv);
int cmd_pw(struct postctl *ctl, int argc, char **argv);
int cmd_migrate(struct postctl *ctl, int argc, char **argv);     /* postctl_pgsql.c */
int cmd_queue(struct postctl *ctl, int argc, char **argv);

struct strbuf;
/* postctl_read_password - from one line of stdin, or asked twice on the terminal */
int postctl_read_password(bool from_stdin, struct strbuf *out, struct strbuf *err);

/* postctl_wants_help - argv has -h or --help */
bool postctl_wants_help(int argc, char **argv);

#endif
