/*
 * postctl_conf - "postctl conf [-n] [NAME...]": effective main.cf parameters, like postconf.
 *
 * Interface: cmd_conf() (postctl.h), called by the dispatcher in postctl.c.
 *
 * Prints "name = value" with values expanded: every known parameter in name
 * order, or with -n only those main.cf sets, or with NAMEs just those in the
 * order given. An unknown NAME is a warning on stderr and makes the exit
 * status 1, after the others are printed (as postconf does). main.cf warnings
 * (unknown names, repeated names) go to stderr too; errors loading main.cf
 * are printed and exit 1.
 */
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "strbuf.h"
#include "config.h"
#include "postctl.h"

/* usage - the synopsis, on stdout for --help and stderr for mistakes */
static void usage(FILE *fp)
{
    fputs("usage: postctl conf [-n] [NAME...]\n"
          "Print effective main.cf parameters as \"name = value\", values expanded.\n"
          "  -n          only parameters set in main.cf\n"
          "  NAME...     only these parameters\n"
          "  -h, --help  this help\n", fp);
}

/* print_param - "name = value", or "name =" when empty, as postconf prints */
static void print_param(const char *name, const char *value)
{
    if (*value)
        printf("%s = %s\n", name, value);
    else
        printf("%s =\n", name);
}

/* visit - config_foreach callback */
static void visit(const char *name, const char *value, bool is_set, void *arg)
{
    (void) is_set;
    (void) arg;
    print_param(name, value);
}

/* print_warnings - main.cf warnings, one per line */
static void print_warnings(const char *text)
{
    while (*text) {
        const char *nl = strchr(text, '\n');
        size_t  len = nl ? (size_t) (nl - text) : strlen(text);

        fprintf(stderr, "postctl conf: warning: %.*s\n", (int) len, text);
        text += len + (nl != NULL);
    }
}

/* cmd_conf - postctl conf [-n] [NAME...] */
int cmd_conf(struct postctl *ctl, int argc, char **argv)
{
    struct strbuf err = STRBUF_INIT;
    struct config *cfg;
    bool    only_set = false;
    int     status = POSTCTL_OK;
    int     i;

    for (i = 1; i < argc && argv[i][0] == '-' && argv[i][1] != '\0'; i++) {
        if (strcmp(argv[i], "--") == 0) {
            i++;
            break;
        }
        if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
            usage(stdout);
            return POSTCTL_OK;
        }
        if (strcmp(argv[i], "-n") == 0) {
            only_set = true;
            continue;
        }
        fprintf(stderr, "postctl conf: unknown option %s\n", argv[i]);
        usage(stderr);
        return POSTCTL_USAGE;
    }
    if ((cfg = config_load(ctl->config_dir, &err)) == NULL) {
        fprintf(stderr, "postctl conf: %s\n", sb_str(&err));
        sb_free(&err);
        return POSTCTL_FAILED;
    }
    sb_free(&err);
    print_warnings(config_warnings(cfg));
    if (i == argc) {
        config_foreach(cfg, only_set, visit, NULL);
    } else {
        for (; i < argc; i++) {
            const char *value = config_lookup(cfg, argv[i]);

            if (value == NULL) {
                fprintf(stderr, "postctl conf: warning: %s: unknown parameter\n", argv[i]);
                status = POSTCTL_FAILED;
            } else if (!only_set || config_is_set(cfg, argv[i])) {
                print_param(argv[i], value);
            }
        }
    }
    config_free(cfg);
    if (fflush(stdout) != 0 || ferror(stdout)) {
        fprintf(stderr, "postctl conf: error writing the output\n");
        status = POSTCTL_FAILED;
    }
    return status;
}
