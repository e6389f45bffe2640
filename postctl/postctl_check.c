/*
 * postctl_check - "postctl check": is this instance sound?
 *
 * Loads main.cf and master.cf (errors with file:line), then looks at what
 * they name: the daemons in daemon_directory (each is asked, in its check
 * mode, whether it would start with its configuration and -o overrides), the system users, every
 * directory of the instance layout with its owner and mode, the tables
 * (compiled, not older than their source) and the TLS files. Each problem is
 * one line with the fix; the exit status is 1 when any error was found.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config.h"
#include "directory.h"
#include "fsutil.h"
#include "master_cf.h"
#include "password.h"
#include "privsep.h"
#include "strbuf.h"
#include "strlist.h"

#include "postctl.h"
#include "postctl_init.h"

struct check {
    int     errors;
    int     warnings;
};

static void check_error(struct check *chk, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void check_warning(struct check *chk, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* check_error / check_warning - one finding per line */
static void check_error(struct check *chk, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    fputs("postctl check: error: ", stdout);
    vprintf(fmt, ap);
    putchar('\n');
    va_end(ap);
    chk->errors++;
}

static void check_warning(struct check *chk, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    fputs("postctl check: warning: ", stdout);
    vprintf(fmt, ap);
    putchar('\n');
    va_end(ap);
    chk->warnings++;
}

/* check_config_warnings - what config_load noticed (unknown names, ...) */
static void check_config_warnings(struct check *chk, struct config *cfg)
{
    const char *w = config_warnings(cfg);

    while (w && *w) {
        const char *nl = strchr(w, '\n');
        int     len = nl ? (int) (nl - w) : (int) strlen(w);

        if (len > 0)
            check_warning(chk, "%.*s", len, w);
        w += len + (nl ? 1 : 0);
    }
}

/* check_daemons - every master.cf command can be run */
static void check_daemons(struct check *chk, struct config *cfg, const struct master_cf *mcf)
{
    struct strbuf path = STRBUF_INIT;

    for (size_t i = 0; i < mcf->count; i++) {
        sb_reset(&path);
        sb_printf(&path, "%s/%s", config_str(cfg, "daemon_directory"), mcf->services[i].command);
        if (access(path.data, X_OK) < 0)
            check_error(chk, "%s:%d: service %s: cannot run %s: %s; fix: correct daemon_directory "
                        "in main.cf or the command name", mcf->path, mcf->services[i].line,
                        mcf->services[i].name, path.data, strerror(errno));
    }
    sb_free(&path);
}

/* daemon_refusal - run the service's daemon in check mode (-C); its fatal message, or "" */
static void daemon_refusal(const char *path, char **argv, struct strbuf *why)
{
    int     out[2];
    pid_t   pid;
    int     status = 0;
    char    buf[4096];
    ssize_t n;

    sb_reset(why);
    if (pipe2(out, O_CLOEXEC) < 0)
        return;
    if ((pid = fork()) == 0) {
        dup2(out[1], STDERR_FILENO);
        dup2(out[1], STDOUT_FILENO);
        unsetenv("POSTERN_LISTEN_FDS");
        execv(path, argv);
        _exit(127);
    }
    close(out[1]);
    struct strbuf text = STRBUF_INIT;

    while ((n = read(out[0], buf, sizeof(buf))) > 0 && sb_len(&text) < 65536)
        sb_append(&text, buf, (size_t) n);
    close(out[0]);
    if (pid < 0 || waitpid(pid, &status, 0) < 0 || (WIFEXITED(status) && WEXITSTATUS(status) == 0)) {
        sb_free(&text);
        return;
    }
    /* The daemon's last "fatal:" line says why; else whatever it printed last. */
    const char *fatal = strstr(sb_str(&text), "fatal: ");
    const char *line = fatal ? fatal + 7 : sb_str(&text);

    sb_append(why, line, strcspn(line, "\n"));
    if (sb_len(why) == 0)
        sb_puts(why, WIFSIGNALED(status) ? "it crashed" : "it exited with an error");
    sb_free(&text);
}

/* check_daemon_configs - every service's daemon would accept its configuration */
static void check_daemon_configs(struct check *chk, struct config *cfg, const struct master_cf *mcf,
                                 const char *config_dir)
{
    struct strbuf path = STRBUF_INIT;
    struct strbuf why = STRBUF_INIT;

    for (size_t i = 0; i < mcf->count; i++) {
        const struct master_service *svc = &mcf->services[i];
        char  **argv;

        sb_reset(&path);
        sb_printf(&path, "%s/%s", config_str(cfg, "daemon_directory"), svc->command);
        if (access(path.data, X_OK) < 0)
            continue;                   /* reported by check_daemons */
        argv = master_cf_daemon_argv(svc, config_dir, MASTER_ARGV_CHECK);
        daemon_refusal(path.data, argv, &why);
        free(argv);
        if (sb_len(&why))
            check_error(chk, "%s:%d: service %s: %s would not start: %s", mcf->path, svc->line,
                        svc->name, svc->command, why.data);
    }
    sb_free(&path);
    sb_free(&why);
}

/* check_users - the accounts the daemons run as exist */
static void check_users(struct check *chk, struct config *cfg)
{
    static const char *const params[] = {"mail_owner", "auth_owner", "vmail_owner"};
    struct strbuf err = STRBUF_INIT;

    for (size_t i = 0; i < sizeof(params) / sizeof(params[0]); i++) {
        uid_t   uid;
        gid_t   gid;

        sb_reset(&err);
        if (privsep_lookup_user(config_str(cfg, params[i]), &uid, &gid, &err) < 0)
            check_error(chk, "%s = %s: %s; fix: create the user or run postctl init as root",
                        params[i], config_str(cfg, params[i]), sb_str(&err));
        else if (uid == 0 && privsep_is_root())
            check_error(chk, "%s = %s is root; fix: use an unprivileged system user", params[i],
                        config_str(cfg, params[i]));
    }
    sb_free(&err);
}

/* check_directories - each directory exists with its owner and mode */
static void check_directories(struct check *chk, struct config *cfg)
{
    struct strbuf path = STRBUF_INIT;
    struct strbuf err = STRBUF_INIT;

    for (size_t i = 0; i < instance_dir_count; i++) {
        const struct layout_dir *d = &instance_dirs[i];
        struct stat st;
        uid_t   uid;
        gid_t   gid;

        sb_set(&path, config_str(cfg, d->dir_param));
        if (d->subdir)
            sb_printf(&path, "/%s", d->subdir);
        if (stat(path.data, &st) < 0) {
            check_error(chk, "%s (%s): %s; fix: postctl init --force, or mkdir it", path.data,
                        d->dir_param, strerror(errno));
            continue;
        }
        if (!S_ISDIR(st.st_mode)) {
            check_error(chk, "%s (%s) is not a directory", path.data, d->dir_param);
            continue;
        }
        sb_reset(&err);
        if (layout_owner_ids(cfg, d->owner, &uid, &gid, &err) < 0)
            continue;                   /* reported by check_users */
        if (st.st_uid != uid)
            check_error(chk, "%s: owner uid %u, expected %u; fix: chown %u:%u %s", path.data,
                        (unsigned) st.st_uid, (unsigned) uid, (unsigned) uid, (unsigned) gid, path.data);
        if ((st.st_mode & 07777) != d->mode)
            check_error(chk, "%s: mode %04o, expected %04o; fix: chmod %04o %s", path.data,
                        (unsigned) (st.st_mode & 07777), (unsigned) d->mode, (unsigned) d->mode, path.data);
    }
    sb_free(&path);
    sb_free(&err);
}

/* check_tables - each file-based table is compiled and up to date */
static void check_tables(struct check *chk, struct config *cfg)
{
    struct strbuf db = STRBUF_INIT;

    for (size_t i = 0; i < instance_table_count; i++) {
        const char *spec = config_str(cfg, instance_tables[i]);
        const char *colon = strchr(spec, ':');
        struct stat src, compiled;

        if (strncmp(spec, "hash:", 5) != 0 && strncmp(spec, "btree:", 6) != 0)
            continue;
        sb_reset(&db);
        sb_printf(&db, "%s.db", colon + 1);
        if (stat(db.data, &compiled) < 0)
            check_error(chk, "%s = %s: %s: %s; fix: postctl map %s", instance_tables[i], spec,
                        db.data, strerror(errno), colon + 1);
        else if (stat(colon + 1, &src) == 0 && src.st_mtime > compiled.st_mtime)
            check_warning(chk, "%s is older than its source %s; fix: postctl map %s", db.data,
                          colon + 1, colon + 1);
    }
    sb_free(&db);
}

/* check_passwords - the password file is private; plaintext and weak hashes are worth a warning */
static void check_passwords(struct check *chk, struct config *cfg)
{
    const char *path = config_str(cfg, "auth_passwd_file");
    struct strbuf text = STRBUF_INIT, err = STRBUF_INIT, hash = STRBUF_INIT;
    struct stat st;
    size_t  weak = 0, lineno = 0;

    if (stat(path, &st) < 0) {
        check_error(chk, "auth_passwd_file = %s: %s; fix: postctl init --force", path, strerror(errno));
        return;
    }
    if (st.st_mode & 077)
        check_error(chk, "%s: password file readable by others (mode %04o); fix: chmod 600 %s",
                    path, (unsigned) (st.st_mode & 07777), path);
    if (fs_read_file(path, 256 * 1024 * 1024, &text, &err) < 0) {
        if (privsep_is_root())
            check_warning(chk, "%s", sb_str(&err));
        goto out;
    }
    for (const char *line = sb_str(&text); *line; line += strcspn(line, "\n") + (line[strcspn(line, "\n")] != 0)) {
        const char *colon = memchr(line, ':', strcspn(line, "\n"));

        lineno++;
        if (colon == NULL || *line == '#')
            continue;
        sb_reset(&hash);
        sb_append(&hash, colon + 1, strcspn(colon + 1, ":\n"));
        if (password_scheme_weak(hash.data)) {
            if (weak++ < 5)
                check_warning(chk, "%s:%zu: %.*s has a weak or plaintext password (%s); fix: postctl user "
                              "passwd %.*s", path, lineno, (int) (colon - line), line,
                              password_scheme_of(hash.data) ? password_scheme_of(hash.data) : "unknown scheme",
                              (int) (colon - line), line);
        }
    }
    if (weak > 5)
        check_warning(chk, "%s: %zu more users with weak passwords", path, weak - 5);
out:
    sb_free(&text), sb_free(&err), sb_free(&hash);
}

/* resolves_here - address (lower case) is an alias or a mailbox of ours; true for a remote one or a failed lookup */
static bool resolves_here(struct directory *dir, const char *address)
{
    const char *at = strrchr(address, '@');
    struct strbuf out = STRBUF_INIT;
    enum domain_class cls;
    enum map_status st;

    if (directory_classify(dir, at + 1, &cls) != DIRECTORY_OK
        || (cls != DOMAIN_LOCAL && cls != DOMAIN_ALIAS && cls != DOMAIN_MAILBOX))
        return true;
    st = directory_alias(dir, address, &out);
    if (st == MAP_NOTFOUND && cls == DOMAIN_MAILBOX)
        st = directory_mailbox(dir, address, &out);
    sb_free(&out);
    return st != MAP_NOTFOUND;
}

/*
 * check_postmaster - RFC 5321 wants postmaster to work, and the postmaster
 * notices go to the *_notice_recipient addresses (default "postmaster", that
 * is postmaster@$myorigin): one that is ours but neither an alias nor a
 * mailbox bounces everything sent to it. There is no local delivery to catch it.
 */
static void check_postmaster(struct check *chk, struct config *cfg)
{
    static const char *const params[] = {"2bounce_notice_recipient", "bounce_notice_recipient",
                                         "delay_notice_recipient"};
    struct strbuf err = STRBUF_INIT, address = STRBUF_INIT;
    struct strlist seen = STRLIST_INIT;
    struct directory *dir = directory_open(cfg, &err);

    for (size_t i = 0; dir != NULL && i < sizeof(params) / sizeof(params[0]); i++) {
        const char *value = config_str(cfg, params[i]);

        if (*value == '\0')
            continue;
        sb_set(&address, value);
        if (strchr(value, '@') == NULL)
            sb_printf(&address, "@%s", config_str(cfg, "myorigin"));
        sb_lowercase(&address);
        if (strlist_contains_nocase(&seen, sb_str(&address)))
            continue;
        strlist_add(&seen, sb_str(&address));
        if (!resolves_here(dir, sb_str(&address)))
            check_warning(chk, "%s = %s: %s is neither an alias nor a mailbox here, so mail to it "
                          "bounces (postmaster notices too); fix: postctl alias add %s YOU@YOUR.DOMAIN",
                          params[i], value, sb_str(&address), sb_str(&address));
    }
    if (dir != NULL)
        directory_close(dir);
    strlist_free(&seen);
    sb_free(&err), sb_free(&address);
}

/* check_tls - the certificate is there and the key is private */
static void check_tls(struct check *chk, struct config *cfg)
{
    const char *cert = config_str(cfg, "smtpd_tls_cert_file");
    const char *key = config_str(cfg, "smtpd_tls_key_file");
    struct stat st;

    if (*cert && access(cert, R_OK) < 0)
        check_error(chk, "smtpd_tls_cert_file = %s: %s", cert, strerror(errno));
    if (*key == '\0')
        return;
    if (stat(key, &st) < 0)
        check_error(chk, "smtpd_tls_key_file = %s: %s", key, strerror(errno));
    else if (st.st_mode & 077)
        check_error(chk, "%s: private key readable by others (mode %04o); fix: chmod 600 %s",
                    key, (unsigned) (st.st_mode & 07777), key);
}

int cmd_check(struct postctl *ctl, int argc, char **argv)
{
    struct check chk = {0, 0};
    struct strbuf err = STRBUF_INIT;
    struct strbuf path = STRBUF_INIT;
    struct master_cf mcf;
    struct config *cfg;

    if (postctl_wants_help(argc, argv)) {
        printf("usage: postctl check\n  validate main.cf, master.cf, users, directories, tables and TLS files\n");
        return POSTCTL_OK;
    }
    if (argc > 1) {
        fprintf(stderr, "usage: postctl check\n");
        return POSTCTL_USAGE;
    }
    if ((cfg = config_load(ctl->config_dir, &err)) == NULL) {
        check_error(&chk, "%s", sb_str(&err));
        sb_free(&err);
        return POSTCTL_FAILED;
    }
    check_config_warnings(&chk, cfg);
    sb_printf(&path, "%s/master.cf", ctl->config_dir);
    if (master_cf_load(path.data, cfg, &mcf, &err) < 0) {
        check_error(&chk, "%s", sb_str(&err));
    } else {
        check_daemons(&chk, cfg, &mcf);
        check_daemon_configs(&chk, cfg, &mcf, ctl->config_dir);
        master_cf_free(&mcf);
    }
    check_users(&chk, cfg);
    check_directories(&chk, cfg);
    check_tables(&chk, cfg);
    check_tls(&chk, cfg);
    check_passwords(&chk, cfg);
    check_postmaster(&chk, cfg);
    if (!privsep_is_root())
        check_warning(&chk, "not run as root: owners are checked against the current user (unprivileged mode)");
    if (chk.errors)
        printf("postctl check: %d error(s), %d warning(s)\n", chk.errors, chk.warnings);
    else
        printf("postctl check: configuration OK (%d warning(s))\n", chk.warnings);
    config_free(cfg);
    sb_free(&err);
    sb_free(&path);
    return chk.errors ? POSTCTL_FAILED : POSTCTL_OK;
}
