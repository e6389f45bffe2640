/*
 * postctl_init - "postctl init": a complete new instance.
 *
 *   postctl init [--dir DIR] [--hostname H] [--port-base N]
 *                [--inet-interfaces LIST] [--backend bdb|pgsql --pg-dsn DSN] [--force]
 *
 * Writes main.cf and master.cf from the defaults in conf/ (built into this
 * binary), creates the system users when run as root (postern, postern-auth,
 * vmail; in unprivileged mode every role is the invoking user), the queue,
 * data, mail and auth directories with their owners and modes, a self-signed
 * certificate, and empty Berkeley DB tables. With --dir everything lives
 * under DIR (configuration in DIR/etc); otherwise the system locations.
 * An existing instance is left alone unless --force, and even then no mail,
 * queue file or table is removed: only configuration is rewritten.
 */
#include <errno.h>
#include <limits.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "config.h"
#include "fsutil.h"
#include "map.h"
#include "privsep.h"
#include "strbuf.h"

#include "postctl.h"
#include "postctl_init.h"
#include "postctl_pgsql.h"

extern const char conf_main_cf[];
extern const char conf_master_cf[];

const struct layout_dir instance_dirs[] = {
    {"config_directory", NULL, OWNER_ROOT, 0755},
    {"config_directory", "tls", OWNER_ROOT, 0755},
    {"queue_directory", NULL, OWNER_ROOT, 0755},
    {"queue_directory", "incoming", OWNER_MAIL, 0700},
    {"queue_directory", "active", OWNER_MAIL, 0700},
    {"queue_directory", "deferred", OWNER_MAIL, 0700},
    {"queue_directory", "hold", OWNER_MAIL, 0700},
    {"queue_directory", "corrupt", OWNER_MAIL, 0700},
    {"queue_directory", "maildrop", OWNER_MAIL, 01733},   /* sendmail: anyone drops, nobody lists (lib/maildrop.h) */
    {"queue_directory", "private", OWNER_MAIL, 0700},
    {"queue_directory", "public", OWNER_MAIL, 0710},
    {"queue_directory", "pid", OWNER_ROOT, 0755},
    {"data_directory", NULL, OWNER_MAIL, 0700},
    {"virtual_mailbox_base", NULL, OWNER_VMAIL, 0700},
    {"auth_directory", NULL, OWNER_AUTH, 0700},
};
const size_t instance_dir_count = sizeof(instance_dirs) / sizeof(instance_dirs[0]);

const char *const instance_tables[] = {
    "virtual_mailbox_domains", "virtual_mailbox_maps", "virtual_alias_maps",
    "virtual_alias_domains", "relay_domains", "virtual_mailbox_limit_maps",
};
const size_t instance_table_count = sizeof(instance_tables) / sizeof(instance_tables[0]);

/* Standard ports, moved by --port-base. */
static const struct {
    const char *marker;
    const char *service;
    int     port;
} port_markers[] = {
    {"@SMTP_PORT@", "smtp", 25},
    {"@SUBMISSION_PORT@", "submission", 587},
    {"@SUBMISSIONS_PORT@", "submissions", 465},
    {"@IMAP_PORT@", "imap", 143},
    {"@IMAPS_PORT@", "imaps", 993},
};

static const char *const system_users[] = {"postern", "postern-auth", "vmail"};

struct init_options {
    const char *dir;
    const char *hostname;
    const char *inet_interfaces;
    long    port_base;
    bool    force;
    bool    pgsql;                      /* --backend pgsql */
    const char *pg_dsn;
};

/* init_usage - the synopsis */
static void init_usage(FILE *out)
{
    fprintf(out,
            "usage: postctl init [--dir DIR] [--hostname HOST] [--port-base N]\n"
            "                    [--inet-interfaces LIST] [--backend bdb|pgsql --pg-dsn DSN] [--force]\n"
            "  --dir DIR        self-contained instance: configuration in DIR/etc, all else under DIR\n"
            "  --hostname HOST  myhostname (default: this machine's name)\n"
            "  --port-base N    add N to every standard port (10000: SMTP on 10025)\n"
            "  --inet-interfaces LIST  addresses to listen on (default: all)\n"
            "  --backend bdb    where domains, users and aliases live (Berkeley DB, the default)\n"
            "  --backend pgsql --pg-dsn \"host=H port=P dbname=D user=U password=W\"\n"
            "                   in PostgreSQL: map files in CONFIG/pgsql, tables from schema.sql\n"
            "  --force          rewrite the configuration of an existing instance (keeps all data)\n");
}

/* parse_init_options - argv into opts; -1 on a usage error */
static int parse_init_options(int argc, char **argv, struct init_options *opts)
{
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];
        const char *val = i + 1 < argc ? argv[i + 1] : NULL;

        if (strcmp(arg, "--force") == 0) {
            opts->force = true;
            continue;
        }
        if (val == NULL) {
            fprintf(stderr, "postctl init: unknown option or missing value: %s\n", arg);
            return -1;
        }
        if (strcmp(arg, "--dir") == 0)
            opts->dir = val;
        else if (strcmp(arg, "--hostname") == 0)
            opts->hostname = val;
        else if (strcmp(arg, "--inet-interfaces") == 0)
            opts->inet_interfaces = val;
        else if (strcmp(arg, "--port-base") == 0) {
            char   *end;

            errno = 0;
            opts->port_base = strtol(val, &end, 10);
            if (errno || *end || opts->port_base < 0 || opts->port_base + 993 > 65535) {
                fprintf(stderr, "postctl init: --port-base must be a number from 0 to %d\n", 65535 - 993);
                return -1;
            }
        } else if (strcmp(arg, "--backend") == 0) {
            if (strcmp(val, "bdb") != 0 && strcmp(val, "pgsql") != 0) {
                fprintf(stderr, "postctl init: unknown backend '%s'; use bdb or pgsql\n", val);
                return -1;
            }
            opts->pgsql = strcmp(val, "pgsql") == 0;
        } else if (strcmp(arg, "--pg-dsn") == 0) {
            opts->pg_dsn = val;
        } else {
            fprintf(stderr, "postctl init: unknown option %s\n", arg);
            return -1;
        }
        i++;
    }
    if (opts->pgsql != (opts->pg_dsn != NULL)) {
        fprintf(stderr, "postctl init: --backend pgsql and --pg-dsn DSN go together\n");
        return -1;
    }
    return 0;
}

/* expand_markers - replace each @MARKER@ of pairs (marker, value, ..., NULL) in text */
static void expand_markers(const char *text, const char *const *pairs, struct strbuf *out)
{
    sb_reset(out);
    while (*text) {
        bool    replaced = false;

        if (*text == '@') {
            for (size_t i = 0; pairs[i]; i += 2) {
                size_t  len = strlen(pairs[i]);

                if (strncmp(text, pairs[i], len) == 0) {
                    sb_puts(out, pairs[i + 1]);
                    text += len;
                    replaced = true;
                    break;
                }
            }
        }
        if (!replaced)
            sb_putc(out, *text++);
    }
}

/* ensure_system_user - create a locked system account unless it exists */
static int ensure_system_user(const char *name)
{
    pid_t   pid;
    int     status;

    if (getpwnam(name) != NULL)
        return 0;
    pid = fork();
    if (pid < 0)
        return -1;
    if (pid == 0) {
        execlp("useradd", "useradd", "--system", "--user-group", "--no-create-home",
               "--home-dir", "/nonexistent", "--shell", "/usr/sbin/nologin",
               "--comment", "Postern mail system", name, (char *) NULL);
        _exit(127);
    }
    if (waitpid(pid, &status, 0) < 0 || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        fprintf(stderr, "postctl init: useradd %s failed\n", name);
        return -1;
    }
    printf("postctl init: created system user %s\n", name);
    return 0;
}

int layout_owner_ids(struct config *cfg, enum layout_owner owner, uid_t *uid, gid_t *gid,
                     struct strbuf *err)
{
    static const char *const params[] = {NULL, "mail_owner", "auth_owner", "vmail_owner"};

    if (owner == OWNER_ROOT) {
        *uid = geteuid();
        *gid = getegid();
        return 0;
    }
    return privsep_lookup_user(config_str(cfg, params[owner]), uid, gid, err);
}

/* absolute_dir - mkdir -p dir and give its absolute path */
static int absolute_dir(const char *dir, struct strbuf *out, struct strbuf *err)
{
    char    real[PATH_MAX];

    if (fs_mkdir_owned(dir, 0755, (uid_t) -1, (gid_t) -1, err) < 0)
        return -1;
    if (realpath(dir, real) == NULL) {
        sb_printf(err, "%s: %s", dir, strerror(errno));
        return -1;
    }
    sb_set(out, real);
    return 0;
}

/* write_configuration - main.cf and master.cf from the built-in templates */
static int write_configuration(const struct init_options *opts, const char *config_dir,
                               const char *base, const char *daemon_dir, struct strbuf *err)
{
    char    host[256] = "localhost";
    char    ports[sizeof(port_markers) / sizeof(port_markers[0])][16];
    const char *pairs[64];
    size_t  n = 0;
    struct strbuf dirs[6];
    struct strbuf text = STRBUF_INIT;
    struct strbuf path = STRBUF_INIT;
    const char *user = NULL;
    int     rc = -1;

    for (size_t i = 0; i < 6; i++)
        sb_init(&dirs[i]);
    if (opts->hostname)
        snprintf(host, sizeof(host), "%s", opts->hostname);
    else if (gethostname(host, sizeof(host) - 1) < 0)
        snprintf(host, sizeof(host), "localhost");
    if (!privsep_is_root()) {
        struct passwd *pw = getpwuid(geteuid());

        if (pw == NULL) {
            sb_puts(err, "the current user has no name in the password database");
            goto out;
        }
        user = pw->pw_name;
    }
    if (base) {
        sb_printf(&dirs[0], "%s/queue", base);
        sb_printf(&dirs[1], "%s/data", base);
        sb_printf(&dirs[2], "%s/mail", base);
        sb_printf(&dirs[3], "%s/auth", base);
        sb_printf(&dirs[4], "%s/log/postern.log", base);
    } else {
        sb_puts(&dirs[0], "/var/spool/postern");
        sb_puts(&dirs[1], "/var/lib/postern");
        sb_puts(&dirs[2], "/var/mail/vhosts");
        sb_puts(&dirs[3], "/var/lib/postern-auth");
        sb_puts(&dirs[4], "");
    }
    const char *fixed[] = {
        "@CONFIG_DIR@", config_dir, "@QUEUE_DIR@", sb_str(&dirs[0]), "@DATA_DIR@", sb_str(&dirs[1]),
        "@MAIL_DIR@", sb_str(&dirs[2]), "@AUTH_DIR@", sb_str(&dirs[3]),
        "@MAILLOG_FILE@", sb_str(&dirs[4]), "@DAEMON_DIR@", daemon_dir, "@HOSTNAME@", host,
        "@INET_INTERFACES@", opts->inet_interfaces ? opts->inet_interfaces : "all",
        "@MAIL_OWNER@", user ? user : "postern", "@AUTH_OWNER@", user ? user : "postern-auth",
        "@VMAIL_OWNER@", user ? user : "vmail",
    };

    for (size_t i = 0; i < sizeof(fixed) / sizeof(fixed[0]); i++)
        pairs[n++] = fixed[i];
    for (size_t i = 0; i < sizeof(port_markers) / sizeof(port_markers[0]); i++) {
        if (opts->port_base)
            snprintf(ports[i], sizeof(ports[i]), "%ld", opts->port_base + port_markers[i].port);
        else
            snprintf(ports[i], sizeof(ports[i]), "%s", port_markers[i].service);
        pairs[n++] = port_markers[i].marker;
        pairs[n++] = ports[i];
    }
    pairs[n] = NULL;

    expand_markers(conf_main_cf, pairs, &text);
    sb_printf(&path, "%s/main.cf", config_dir);
    if (fs_write_atomic(path.data, text.data, sb_len(&text), 0644, (uid_t) -1, (gid_t) -1, err) < 0)
        goto out;
    expand_markers(conf_master_cf, pairs, &text);
    sb_reset(&path);
    sb_printf(&path, "%s/master.cf", config_dir);
    if (fs_write_atomic(path.data, text.data, sb_len(&text), 0644, (uid_t) -1, (gid_t) -1, err) < 0)
        goto out;
    rc = 0;
out:
    for (size_t i = 0; i < 6; i++)
        sb_free(&dirs[i]);
    sb_free(&text);
    sb_free(&path);
    return rc;
}

/* make_directories - every directory of the layout with its owner and mode */
static int make_directories(struct config *cfg, struct strbuf *err)
{
    struct strbuf path = STRBUF_INIT;
    const char *log_file = config_str(cfg, "maillog_file");

    for (size_t i = 0; i < instance_dir_count; i++) {
        const struct layout_dir *d = &instance_dirs[i];
        uid_t   uid;
        gid_t   gid;

        sb_set(&path, config_str(cfg, d->dir_param));
        if (d->subdir)
            sb_printf(&path, "/%s", d->subdir);
        if (layout_owner_ids(cfg, d->owner, &uid, &gid, err) < 0
            || fs_mkdir_owned(path.data, d->mode, uid, gid, err) < 0) {
            sb_free(&path);
            return -1;
        }
    }
    if (*log_file) {
        fs_dirname(log_file, &path);
        if (fs_mkdir_owned(path.data, 0755, (uid_t) -1, (gid_t) -1, err) < 0) {
            sb_free(&path);
            return -1;
        }
    }
    sb_free(&path);
    return 0;
}

/* make_tables - empty source files and their .db for each table of the instance */
static int make_tables(struct config *cfg, struct strbuf *err)
{
    struct strbuf warnings = STRBUF_INIT;

    for (size_t i = 0; i < instance_table_count; i++) {
        const char *spec = config_str(cfg, instance_tables[i]);
        const char *colon = strchr(spec, ':');
        struct stat st;

        if (strncmp(spec, "hash:", 5) != 0 && strncmp(spec, "btree:", 6) != 0)
            continue;                   /* not ours to create (pgsql:, inline:, ...) */
        if (stat(colon + 1, &st) < 0
            && fs_write_atomic(colon + 1, "", 0, 0644, (uid_t) -1, (gid_t) -1, err) < 0)
            return -1;
        if (map_compile(spec, &warnings, err) < 0) {
            sb_free(&warnings);
            return -1;
        }
    }
    sb_free(&warnings);
    return 0;
}

/* make_passwd_file - the password table, readable by authd's user alone */
static int make_passwd_file(struct config *cfg, struct strbuf *err)
{
    const char *path = config_str(cfg, "auth_passwd_file");
    uid_t   uid;
    gid_t   gid;

    if (access(path, F_OK) == 0)
        return 0;
    if (layout_owner_ids(cfg, OWNER_AUTH, &uid, &gid, err) < 0)
        return -1;
    return fs_write_atomic(path, "", 0, 0600, uid, gid, err);
}

/* make_certificate - a self-signed certificate unless one is there already */
static int make_certificate(struct config *cfg, struct strbuf *err)
{
    const char *cert = config_str(cfg, "smtpd_tls_cert_file");
    const char *key = config_str(cfg, "smtpd_tls_key_file");

    if (*cert == '\0' || *key == '\0' || (access(cert, F_OK) == 0 && access(key, F_OK) == 0))
        return 0;
    return init_make_certificate(config_str(cfg, "myhostname"), cert, key,
                                 (uid_t) -1, (gid_t) -1, err);
}

int cmd_init(struct postctl *ctl, int argc, char **argv)
{
    struct init_options opts = {NULL, NULL, NULL, 0, false, false, NULL};
    struct strbuf base = STRBUF_INIT;
    struct strbuf config_dir = STRBUF_INIT;
    struct strbuf daemon_dir = STRBUF_INIT;
    struct strbuf path = STRBUF_INIT;
    struct strbuf err = STRBUF_INIT;
    struct config *cfg = NULL;
    int     rc = POSTCTL_FAILED;

    if (postctl_wants_help(argc, argv)) {
        init_usage(stdout);
        return POSTCTL_OK;
    }
    if (parse_init_options(argc, argv, &opts) < 0) {
        init_usage(stderr);
        return POSTCTL_USAGE;
    }
    umask(022);
    if (opts.dir) {
        if (absolute_dir(opts.dir, &base, &err) < 0)
            goto out;
        sb_printf(&config_dir, "%s/etc", base.data);
    } else {
        sb_set(&config_dir, ctl->config_dir);
    }
    sb_printf(&path, "%s/main.cf", config_dir.data);
    if (access(path.data, F_OK) == 0 && !opts.force) {
        sb_printf(&err, "an instance exists already (%s); use --force to rewrite its "
                  "configuration (mail, queue and tables are kept)", path.data);
        goto out;
    }
    if (privsep_is_root()) {
        for (size_t i = 0; i < sizeof(system_users) / sizeof(system_users[0]); i++)
            if (ensure_system_user(system_users[i]) < 0)
                goto out;
    } else {
        printf("postctl init: not running as root: every service will run as the current user "
               "(unprivileged mode, for development and tests)\n");
    }
    if (ctl->self_path)
        fs_dirname(ctl->self_path, &daemon_dir);
    else
        sb_set(&daemon_dir, "/usr/lib/postern");
    if (fs_mkdir_owned(config_dir.data, 0755, (uid_t) -1, (gid_t) -1, &err) < 0
        || write_configuration(&opts, config_dir.data, opts.dir ? base.data : NULL,
                               daemon_dir.data, &err) < 0
        || (opts.pgsql && postctl_pgsql_init(config_dir.data, opts.pg_dsn, &err) < 0))
        goto out;
    if ((cfg = config_load(config_dir.data, &err)) == NULL
        || make_directories(cfg, &err) < 0
        || make_tables(cfg, &err) < 0
        || make_passwd_file(cfg, &err) < 0
        || make_certificate(cfg, &err) < 0)
        goto out;
    printf("postctl init: instance ready in %s\n", opts.dir ? base.data : config_dir.data);
    printf("postctl init: start it with: postctl -c %s start\n", config_dir.data);
    rc = POSTCTL_OK;

out:
    if (rc != POSTCTL_OK)
        fprintf(stderr, "postctl init: %s\n", sb_str(&err));
    if (cfg)
        config_free(cfg);
    sb_free(&base);
    sb_free(&config_dir);
    sb_free(&daemon_dir);
    sb_free(&path);
    sb_free(&err);
    return rc;
}
