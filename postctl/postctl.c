/*
 * postctl - the admin CLI: global options, instance selection, dispatch.
 *
 *   postctl [-c CONFIG_DIR] COMMAND [ARGS...]
 *
 * The subcommands themselves live in postctl_<command>.c.
 */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "postctl.h"

#define DEFAULT_CONFIG_DIR "/etc/postern"

struct command {
    const char *name;
    postctl_cmd_fn run;
    const char *summary;
};

static const struct command commands[] = {
    {"init", cmd_init, "create a new instance: directories, users, configuration, certificate"},
    {"start", cmd_start, "start the mail system"},
    {"stop", cmd_stop, "stop the mail system gracefully"},
    {"reload", cmd_reload, "re-read the configuration without dropping connections"},
    {"status", cmd_status, "show whether it runs, its services and processes"},
    {"check", cmd_check, "validate configuration files and file ownerships"},
    {"conf", cmd_conf, "print effective main.cf parameters (like postconf)"},
    {"map", cmd_map, "compile a text lookup table into a .db file (like postmap)"},
    {"domain", cmd_domain, "add, delete, list the domains served (mailbox, alias, relay)"},
    {"user", cmd_user, "add, delete, list mailboxes; set passwords"},
    {"alias", cmd_alias, "add, delete, list virtual aliases"},
    {"pw", cmd_pw, "hash a password (like doveadm pw)"},
    {"queue", cmd_queue, "list the mail queue (like mailq)"},
    {"migrate", cmd_migrate, "copy the Berkeley DB tables into PostgreSQL and switch to it"},
};

/* usage - the command list */
static void usage(FILE *out)
{
    fprintf(out, "usage: postctl [-c CONFIG_DIR] COMMAND [ARGS...]\n\ncommands:\n");
    for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
        fprintf(out, "  %-8s %s\n", commands[i].name, commands[i].summary);
    fprintf(out, "\nThe instance is CONFIG_DIR, else $POSTERN_CONFIG, else %s.\n"
            "Every command takes --help.\n", DEFAULT_CONFIG_DIR);
}

bool postctl_wants_help(int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--") == 0)
            break;
        if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0)
            return true;
    }
    return false;
}

int main(int argc, char **argv)
{
    static char self[PATH_MAX];
    struct postctl ctl = {NULL, NULL};
    int     i = 1;
    ssize_t n;

    log_init("postern", "postctl");
    log_to_stderr(1);
    n = readlink("/proc/self/exe", self, sizeof(self) - 1);
    if (n > 0) {
        self[n] = '\0';
        ctl.self_path = self;
    }
    while (i < argc && argv[i][0] == '-') {
        if (strcmp(argv[i], "-c") == 0 && i + 1 < argc) {
            ctl.config_dir = argv[i + 1];
            i += 2;
        } else if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
            usage(stdout);
            return POSTCTL_OK;
        } else {
            fprintf(stderr, "postctl: unknown option %s\n", argv[i]);
            usage(stderr);
            return POSTCTL_USAGE;
        }
    }
    if (ctl.config_dir == NULL)
        ctl.config_dir = getenv("POSTERN_CONFIG");
    if (ctl.config_dir == NULL || *ctl.config_dir == '\0')
        ctl.config_dir = DEFAULT_CONFIG_DIR;
    if (i >= argc) {
        usage(stderr);
        return POSTCTL_USAGE;
    }
    for (size_t c = 0; c < sizeof(commands) / sizeof(commands[0]); c++)
        if (strcmp(argv[i], commands[c].name) == 0)
            return commands[c].run(&ctl, argc - i, argv + i);
    fprintf(stderr, "postctl: unknown command '%s'\n", argv[i]);
    usage(stderr);
    return POSTCTL_USAGE;
}
