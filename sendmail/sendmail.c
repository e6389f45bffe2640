/*
 * sendmail - the Sendmail-compatible injector for scripts and cron jobs.
 *
 *   sendmail [-t] [-i|-oi] [-f SENDER|-r SENDER] [-F FULLNAME] [-C CONFIG_DIR]
 *            [-bm|-bs|-bp|-q] [-oXXX...] [--] [RECIPIENT...]
 *   mailq    (this program under that name: sendmail -bp)
 *
 * The message is read from stdin (a line with a single "." ends it unless
 * -i/-oi; CR LF becomes LF), goes into the queue's maildrop/ as the
 * submitting user (sendmail_drop.c), and qmgr's pickup step turns it into a
 * queue file. Without -f the sender is the login name of the real uid; the
 * pickup step appends @$myorigin to addresses without a domain. -t adds the
 * To/Cc/Bcc recipients of the message (sendmail_headers.c). -bs speaks SMTP
 * on stdin/stdout (sendmail_smtp.c). -bp (and mailq) runs
 * "postctl queue list", -q "postctl queue flush", from the same directory
 * as this program.
 *
 * Options that Sendmail knows and that mean nothing here are accepted and
 * ignored, as Postfix does: -oXXX (-oi excepted), -B TYPE, -N DSN, -R RET,
 * -V ENVID, -X FILE, -L LABEL, -v, -m, -n, -h N, -U. Anything else is a
 * usage error (EX_USAGE).
 *
 * The instance is found as postctl finds it: -C CONFIG_DIR, else
 * $POSTERN_CONFIG, else /etc/postern; main.cf gives queue_directory,
 * message_size_limit and myhostname. The program needs no privilege (it
 * is not set-id); see lib/maildrop.h for what protects the maildrop files.
 */
#include <errno.h>
#include <limits.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>
#include <unistd.h>

#include "config.h"
#include "maildrop.h"
#include "strbuf.h"
#include "strlist.h"

#include "sendmail.h"

#define DEFAULT_CONFIG_DIR "/etc/postern"

enum sendmail_mode { MODE_DELIVER, MODE_SMTP, MODE_PRINT, MODE_FLUSH };

struct options {
    enum sendmail_mode mode;
    bool    extract;                    /* -t */
    bool    ignore_dots;                /* -i, -oi */
    const char *sender;                 /* -f/-r */
    const char *fullname;               /* -F */
    const char *config_dir;             /* -C */
    struct strlist rcpts;
};

/* usage - the synopsis; EX_USAGE */
static int usage(const char *why)
{
    if (why != NULL)
        fprintf(stderr, "sendmail: %s\n", why);
    fprintf(stderr, "usage: sendmail [-t] [-i] [-f sender] [-F fullname] [-C config_dir] "
            "[-bm|-bs|-bp|-q] [-oXXX] [--] [recipient...]\n");
    return EX_USAGE;
}

/* option_value - the value of -xVALUE or -x VALUE; NULL if missing */
static const char *option_value(int argc, char **argv, int *i)
{
    if (argv[*i][2] != 0)
        return argv[*i] + 2;
    if (*i + 1 >= argc)
        return NULL;
    return argv[++*i];
}

/* parse_options - argv into opts; 0, or an EX_* code */
static int parse_options(int argc, char **argv, struct options *opts)
{
    const char *base = strrchr(argv[0], '/');
    int     i;

    base = base ? base + 1 : argv[0];
    if (strcmp(base, "mailq") == 0)
        opts->mode = MODE_PRINT;
    for (i = 1; i < argc && argv[i][0] == '-'; i++) {
        const char *a = argv[i];
        const char *v;

        if (strcmp(a, "--") == 0) {
            i++;
            break;
        }
        switch (a[1]) {
        case 't':
            opts->extract = a[2] == 0;
            if (!opts->extract)
                return usage("bad option -t with a value");
            continue;
        case 'i':
            opts->ignore_dots = true;
            continue;
        case 'v': case 'm': case 'n': case 'U':
            continue;
        case 'q':
            if (a[2] != 0)
                return usage("-q with an interval or a site is not supported (use -q)");
            opts->mode = MODE_FLUSH;
            continue;
        case 'o':
            if (strcmp(a, "-oi") == 0)
                opts->ignore_dots = true;
            else if (a[2] == 0)
                return usage("-o without an option letter");
            continue;                   /* -oXXX: Sendmail options, ignored as Postfix does */
        case 'b':
            if (strcmp(a, "-bm") == 0)
                opts->mode = MODE_DELIVER;
            else if (strcmp(a, "-bs") == 0)
                opts->mode = MODE_SMTP;
            else if (strcmp(a, "-bp") == 0)
                opts->mode = MODE_PRINT;
            else
                return usage("unsupported -b mode (use -bm, -bs or -bp)");
            continue;
        case 'f': case 'r': case 'F': case 'C': case 'B': case 'N': case 'R': case 'V':
        case 'X': case 'L': case 'h':
            if ((v = option_value(argc, argv, &i)) == NULL)
                return usage("option requires a value");
            if (a[1] == 'f' || a[1] == 'r')
                opts->sender = v;
            else if (a[1] == 'F')
                opts->fullname = v;
            else if (a[1] == 'C')
                opts->config_dir = v;
            continue;
        default:
            fprintf(stderr, "sendmail: unknown option %s\n", a);
            return usage(NULL);
        }
    }
    for (; i < argc; i++)
        if (*argv[i])
            strlist_add(&opts->rcpts, argv[i]);
    return 0;
}

/* read_message - stdin into msg with LF line ends; a lone "." ends it unless ignore_dots */
static int read_message(const struct sendmail *sm, bool ignore_dots, struct strbuf *msg)
{
    struct strbuf line = STRBUF_INIT;
    int     c;
    bool    done = false;

    while (!done) {
        sb_reset(&line);
        while ((c = getchar()) != EOF && c != '\n')
            sb_putc(&line, c);
        if (c == EOF && sb_len(&line) == 0)
            break;
        if (sb_len(&line) > 0 && sb_str(&line)[sb_len(&line) - 1] == '\r')
            sb_truncate(&line, sb_len(&line) - 1);
        if (!ignore_dots && strcmp(sb_str(&line), ".") == 0)
            break;
        sb_append(msg, sb_str(&line), sb_len(&line));
        sb_putc(msg, '\n');
        done = c == EOF;
        if (sm->size_limit > 0 && sb_len(msg) > (size_t) sm->size_limit) {
            sb_free(&line);
            fprintf(stderr, "sendmail: fatal: message is larger than message_size_limit (%lld bytes)\n",
                    sm->size_limit);
            return EX_DATAERR;
        }
    }
    sb_free(&line);
    if (ferror(stdin)) {
        fprintf(stderr, "sendmail: fatal: reading the message: %s\n", strerror(errno));
        return EX_IOERR;
    }
    return 0;
}

/* run_postctl - -bp/mailq: "postctl [-c DIR] queue list"; -q: "... queue flush" (beside this program) */
static int run_postctl(const char *config_dir, const char *what)
{
    char    self[PATH_MAX];
    struct strbuf postctl = STRBUF_INIT;
    ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
    char   *slash;

    if (n <= 0) {
        fprintf(stderr, "sendmail: fatal: cannot find my own program: %s\n", strerror(errno));
        return EX_SOFTWARE;
    }
    self[n] = 0;
    slash = strrchr(self, '/');
    *slash = 0;
    sb_printf(&postctl, "%s/postctl", self);
    fflush(stdout);
    if (config_dir != NULL)
        execl(sb_str(&postctl), "postctl", "-c", config_dir, "queue", what, (char *) NULL);
    else
        execl(sb_str(&postctl), "postctl", "queue", what, (char *) NULL);
    fprintf(stderr, "sendmail: fatal: cannot run %s: %s\n", sb_str(&postctl), strerror(errno));
    sb_free(&postctl);
    return EX_SOFTWARE;
}

/* default_identity - the real user's login name and full name (gecos up to a comma) */
static void default_identity(struct strbuf *login, struct strbuf *fullname)
{
    struct passwd *pw = getpwuid(getuid());

    if (pw == NULL) {
        sb_printf(login, "uid%lu", (unsigned long) getuid());
        return;
    }
    sb_set(login, pw->pw_name);
    if (pw->pw_gecos != NULL)
        sb_append(fullname, pw->pw_gecos, strcspn(pw->pw_gecos, ","));
}

/* submit - one message from stdin with the command-line envelope */
static int submit(const struct sendmail *sm, struct options *opts)
{
    struct strbuf msg = STRBUF_INIT, login = STRBUF_INIT, gecos = STRBUF_INIT;
    const char *sender, *fullname;
    char    name[MAILDROP_NAME_LEN + 1];
    int     rc;

    if (!opts->extract && opts->rcpts.count == 0) {
        rc = usage("fatal: no recipients specified");
        goto out;
    }
    if ((rc = read_message(sm, opts->ignore_dots, &msg)) != 0)
        goto out;
    if (opts->extract)
        headers_extract_rcpts(&msg, &opts->rcpts);
    if (opts->rcpts.count == 0) {
        fprintf(stderr, "sendmail: fatal: no recipient addresses found in message header\n");
        rc = EX_USAGE;
        goto out;
    }
    default_identity(&login, &gecos);
    sender = opts->sender ? opts->sender : sb_str(&login);
    if (strcmp(sender, "<>") == 0)
        sender = "";
    fullname = opts->fullname ? opts->fullname : sb_len(&gecos) ? sb_str(&gecos) : NULL;
    if (!maildrop_value_valid(sender, false) || (fullname && !maildrop_value_valid(fullname, true))) {
        fprintf(stderr, "sendmail: fatal: bad sender address or full name\n");
        rc = EX_DATAERR;
        goto out;
    }
    for (size_t i = 0; i < opts->rcpts.count; i++)
        if (!maildrop_value_valid(opts->rcpts.items[i], false)) {
            fprintf(stderr, "sendmail: fatal: bad recipient address: %.100s\n", opts->rcpts.items[i]);
            rc = EX_DATAERR;
            goto out;
        }
    if (opts->rcpts.count > MAILDROP_RCPT_MAX) {
        fprintf(stderr, "sendmail: fatal: more than %d recipients\n", MAILDROP_RCPT_MAX);
        rc = EX_DATAERR;
        goto out;
    }
    rc = drop_message(sm, sender, fullname, &opts->rcpts, &msg, name, sizeof(name));
out:
    sb_free(&msg);
    sb_free(&login);
    sb_free(&gecos);
    return rc;
}

/* main - options, the instance, then deliver / SMTP / print */
int main(int argc, char **argv)
{
    struct options opts;
    struct sendmail sm;
    struct strbuf err = STRBUF_INIT;
    int     rc;

    memset(&opts, 0, sizeof(opts));
    memset(&sm, 0, sizeof(sm));
    if ((rc = parse_options(argc, argv, &opts)) != 0)
        goto out;
    if (opts.mode == MODE_PRINT || opts.mode == MODE_FLUSH) {
        rc = run_postctl(opts.config_dir, opts.mode == MODE_PRINT ? "list" : "flush");
        goto out;
    }
    sm.config_dir = opts.config_dir ? opts.config_dir : getenv("POSTERN_CONFIG");
    if (sm.config_dir == NULL || *sm.config_dir == 0)
        sm.config_dir = DEFAULT_CONFIG_DIR;
    sm.cfg = config_load(sm.config_dir, &err);
    if (sm.cfg == NULL) {
        fprintf(stderr, "sendmail: fatal: %s\n", sb_str(&err));
        rc = EX_NOINPUT;
        goto out;
    }
    sm.queue_dir = config_str(sm.cfg, "queue_directory");
    sm.size_limit = config_size(sm.cfg, "message_size_limit");
    sm.hostname = config_str(sm.cfg, "myhostname");
    rc = opts.mode == MODE_SMTP ? smtp_session(&sm) : submit(&sm, &opts);
out:
    strlist_free(&opts.rcpts);
    if (sm.cfg != NULL)
        config_free(sm.cfg);
    sb_free(&err);
    return rc;
}
