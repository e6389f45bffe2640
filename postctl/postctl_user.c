/*
 * postctl_user - "postctl user add|del|list|passwd": mailboxes and their passwords.
 *
 *   add ADDRESS [--quota SIZE] [--password-stdin]
 *   del ADDRESS
 *   list [DOMAIN] [--json]
 *   passwd ADDRESS [--password-stdin]
 *   disable|enable ADDRESS     Dovecot's "nologin": no login anywhere, mail still delivered
 *
 * A mailbox is an entry "ADDRESS DOMAIN/LOCAL/" in virtual_mailbox_maps (the
 * Maildir, relative to virtual_mailbox_base) and a line in auth_passwd_file,
 * Dovecot's passwd-file format: "ADDRESS:{SHA512-CRYPT}...::::::EXTRA" with
 * the quota as userdb_quota_rule=*:bytes=N. Without a password the account
 * exists but nobody can log in to it.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <termios.h>
#include <unistd.h>

#include "config.h"
#include "json.h"
#include "password.h"
#include "strbuf.h"

#include "postctl.h"
#include "postctl_pgsql.h"
#include "postctl_table.h"

#define NO_PASSWORD "*"                 /* matches no scheme: login disabled */

static void user_usage(FILE *out)
{
    fprintf(out, "usage: postctl user add ADDRESS [--quota SIZE] [--password-stdin] [--disabled]\n"
            "       postctl user del ADDRESS\n"
            "       postctl user list [DOMAIN] [--json]\n"
            "       postctl user passwd ADDRESS [--password-stdin]\n"
            "       postctl user disable|enable ADDRESS   (a disabled user cannot log in; mail still arrives)\n");
}

/* read_line - one line from fd 0 without its end, bounded */
static int read_line(struct strbuf *out)
{
    char    c;
    ssize_t n;

    sb_reset(out);
    while ((n = read(STDIN_FILENO, &c, 1)) == 1 && c != '\n') {
        if (sb_len(out) > PASSWORD_MAX)
            return -1;
        sb_putc(out, c);
    }
    if (n < 0)
        return -1;
    if (sb_len(out) > 0 && out->data[sb_len(out) - 1] == '\r')
        sb_truncate(out, sb_len(out) - 1);
    return n == 0 && sb_len(out) == 0 ? -1 : 0;
}

/* prompt_hidden - ask on the terminal with echo off */
static int prompt_hidden(const char *prompt, struct strbuf *out)
{
    struct termios saved, quiet;
    int     rc;

    fputs(prompt, stderr);
    fflush(stderr);
    if (tcgetattr(STDIN_FILENO, &saved) < 0)
        return -1;
    quiet = saved;
    quiet.c_lflag &= ~(tcflag_t) ECHO;
    tcsetattr(STDIN_FILENO, TCSAFLUSH, &quiet);
    rc = read_line(out);
    tcsetattr(STDIN_FILENO, TCSAFLUSH, &saved);
    fputc('\n', stderr);
    return rc;
}

int postctl_read_password(bool from_stdin, struct strbuf *out, struct strbuf *err)
{
    struct strbuf again = STRBUF_INIT;
    int     rc = -1;

    if (from_stdin || !isatty(STDIN_FILENO)) {
        if (read_line(out) < 0)
            sb_puts(err, "no password on standard input (one line, at most 1024 bytes)");
        else
            rc = 0;
    } else if (prompt_hidden("New password: ", out) < 0 || prompt_hidden("Retype new password: ", &again) < 0) {
        sb_puts(err, "cannot read the password from the terminal");
    } else if (strcmp(out->data, again.data) != 0) {
        sb_puts(err, "the passwords do not match");
    } else {
        rc = 0;
    }
    if (rc == 0 && sb_len(out) == 0) {
        sb_puts(err, "an empty password is not allowed");
        rc = -1;
    }
    sb_free(&again);
    return rc;
}

#define QUOTA_FIELD "userdb_quota_rule=*:bytes="

/* A change to one passwd-file entry; what is not set is kept. */
struct passwd_change {
    const char *hash;                   /* NULL: keep */
    long long quota;                    /* -1: keep; 0: none */
    int     nologin;                    /* -1: keep; 0: enabled; 1: disabled */
};

/* quota_of - the quota in a passwd-file value, 0 if none */
static long long quota_of(const char *value)
{
    const char *q = strstr(value, QUOTA_FIELD);

    return q ? atoll(q + strlen(QUOTA_FIELD)) : 0;
}

/* extra_fields - the space-separated extra fields after the 7th ':' of "hash:uid:gid:gecos:home:shell:" */
static void extra_fields(const char *value, struct strlist *extras)
{
    const char *p = value;

    for (int colons = 0; colons < 6 && p; colons++)
        if ((p = strchr(p, ':')) != NULL)
            p++;
    if (p)
        strlist_split(extras, p);
}

/* apply_change - the new value of a passwd-file entry from its old one (NULL: new user) */
static void apply_change(const char *old, const struct passwd_change *c, struct strbuf *out)
{
    struct strlist extras = STRLIST_INIT;
    struct strbuf hash = STRBUF_INIT;
    long long quota = old ? quota_of(old) : 0;
    bool    nologin = false;

    if (old) {
        sb_append(&hash, old, strcspn(old, ":"));
        extra_fields(old, &extras);
    }
    if (c->hash)
        sb_set(&hash, c->hash);
    if (c->quota >= 0)
        quota = c->quota;
    sb_reset(out);
    sb_printf(out, "%s::::::", sb_str(&hash));
    for (size_t i = 0; i < extras.count; i++) {
        if (strcmp(extras.items[i], "nologin") == 0)
            nologin = true;
        else if (strncmp(extras.items[i], QUOTA_FIELD, strlen(QUOTA_FIELD)) != 0)
            sb_printf(out, "%s ", extras.items[i]);     /* fields we do not manage stay */
    }
    if (c->nologin >= 0)
        nologin = c->nologin;
    if (nologin)
        sb_puts(out, "nologin ");
    if (quota > 0)
        sb_printf(out, QUOTA_FIELD "%lld ", quota);
    if (out->data[sb_len(out) - 1] == ' ')
        sb_truncate(out, sb_len(out) - 1);
    strlist_free(&extras);
    sb_free(&hash);
}

/* update_passwd - change (or create) ADDRESS's passwd-file entry */
static int update_passwd(struct config *cfg, const char *address, const struct passwd_change *c,
                         struct strbuf *err)
{
    struct text_table t;
    struct strbuf old = STRBUF_INIT;
    struct strbuf value = STRBUF_INIT;
    bool    exists;

    if (table_open(&t, config_str(cfg, "auth_passwd_file"), ':', err) < 0)
        return -1;
    exists = table_get(&t, address, &old);
    apply_change(exists ? old.data : NULL, c, &value);
    table_set(&t, address, value.data);
    sb_free(&old);
    sb_free(&value);
    return table_commit(&t, NULL, err);
}

/*
 * update_limit - the quota in virtual_mailbox_limit_maps too, when main.cf names
 * that table: the virtual agent reads it there (it may not read the passwd-file).
 * quota 0 removes the entry.
 */
static int update_limit(struct config *cfg, const char *address, long long quota, struct strbuf *err)
{
    struct strbuf spec = STRBUF_INIT, path = STRBUF_INIT, value = STRBUF_INIT;
    struct text_table t;
    int     rc = 0;

    if (*config_str(cfg, "virtual_mailbox_limit_maps") == 0)
        return 0;
    if (table_file_for(cfg, "virtual_mailbox_limit_maps", &spec, &path, err) < 0
        || table_open(&t, path.data, ' ', err) < 0) {
        rc = -1;
    } else {
        if (quota > 0) {
            sb_printf(&value, "%lld", quota);
            table_set(&t, address, value.data);
        } else {
            table_remove(&t, address);
        }
        rc = table_commit(&t, spec.data, err);
    }
    sb_free(&spec), sb_free(&path), sb_free(&value);
    return rc;
}

static int user_add(struct config *cfg, int argc, char **argv)
{
    struct strbuf address = STRBUF_INIT, domain = STRBUF_INIT, err = STRBUF_INIT;
    struct strbuf spec = STRBUF_INIT, path = STRBUF_INIT, maildir = STRBUF_INIT;
    struct strbuf plain = STRBUF_INIT, hash = STRBUF_INIT, existing = STRBUF_INIT;
    const char *name = NULL;
    const char *cls;
    bool    from_stdin = false;
    bool    disabled = false;
    long long quota = 0;
    struct text_table t;
    int     rc = POSTCTL_FAILED;

    for (int i = 2; i < argc; i++) {
        if (strcmp(argv[i], "--password-stdin") == 0)
            from_stdin = true;
        else if (strcmp(argv[i], "--disabled") == 0)
            disabled = true;
        else if (strcmp(argv[i], "--quota") == 0 && i + 1 < argc) {
            if (config_parse_size(argv[++i], &quota) < 0) {
                fprintf(stderr, "postctl user add: bad --quota '%s' (e.g. 500M, 2G)\n", argv[i]);
                return POSTCTL_USAGE;
            }
        } else if (argv[i][0] == '-' || name) {
            user_usage(stderr);
            return POSTCTL_USAGE;
        } else
            name = argv[i];
    }
    if (name == NULL) {
        user_usage(stderr);
        return POSTCTL_USAGE;
    }
    if (admin_address(name, &address, &domain, &err) < 0 || admin_mailbox_path(address.data, &maildir, &err) < 0)
        goto out;
    cls = admin_domain_class(cfg, domain.data, &err);
    if (cls == NULL || strcmp(cls, "mailbox") != 0) {
        sb_reset(&err);
        sb_printf(&err, "%s is not a mailbox domain of this instance; first: postctl domain add %s",
                  domain.data, domain.data);
        goto out;
    }
    sb_reset(&err);
    if (table_file_for(cfg, "virtual_mailbox_maps", &spec, &path, &err) < 0
        || table_open(&t, path.data, ' ', &err) < 0)
        goto out;
    if (table_get(&t, address.data, &existing)) {
        table_close(&t);
        sb_printf(&err, "%s exists already (mailbox %s)", address.data, existing.data);
        goto out;
    }
    if (from_stdin || isatty(STDIN_FILENO)) {
        if (postctl_read_password(from_stdin, &plain, &err) < 0
            || password_hash(PASSWORD_DEFAULT_SCHEME, plain.data, &hash, &err) < 0) {
            table_close(&t);
            goto out;
        }
    } else {
        sb_set(&hash, NO_PASSWORD);
    }
    /* the password first: a mailbox never exists without its passwd line */
    struct passwd_change change = {hash.data, quota, disabled ? 1 : 0};

    if (update_passwd(cfg, address.data, &change, &err) < 0 || update_limit(cfg, address.data, quota, &err) < 0) {
        table_close(&t);
        goto out;
    }
    table_set(&t, address.data, maildir.data);
    if (table_commit(&t, spec.data, &err) < 0)
        goto out;
    printf("postctl user: added %s (mailbox %s%s)\n", address.data, maildir.data,
           strcmp(hash.data, NO_PASSWORD) == 0 ? "; no password: set one with postctl user passwd" : "");
    rc = POSTCTL_OK;
out:
    if (rc != POSTCTL_OK)
        fprintf(stderr, "postctl user add: %s\n", sb_str(&err));
    if (plain.data)
        explicit_bzero(plain.data, plain.cap);
    sb_free(&address), sb_free(&domain), sb_free(&err), sb_free(&spec), sb_free(&path);
    sb_free(&maildir), sb_free(&plain), sb_free(&hash), sb_free(&existing);
    return rc;
}

static int user_del(struct config *cfg, int argc, char **argv)
{
    struct strbuf address = STRBUF_INIT, domain = STRBUF_INIT, err = STRBUF_INIT;
    struct strbuf spec = STRBUF_INIT, path = STRBUF_INIT, maildir = STRBUF_INIT;
    struct text_table t;
    int     rc = POSTCTL_FAILED;

    if (argc != 3) {
        user_usage(stderr);
        return POSTCTL_USAGE;
    }
    if (admin_address(argv[2], &address, &domain, &err) < 0
        || table_file_for(cfg, "virtual_mailbox_maps", &spec, &path, &err) < 0
        || table_open(&t, path.data, ' ', &err) < 0)
        goto out;
    if (!table_get(&t, address.data, &maildir)) {
        table_close(&t);
        sb_printf(&err, "%s is not a mailbox of this instance", address.data);
        goto out;
    }
    table_remove(&t, address.data);
    if (table_commit(&t, spec.data, &err) < 0)
        goto out;
    if (table_open(&t, config_str(cfg, "auth_passwd_file"), ':', &err) < 0)
        goto out;
    table_remove(&t, address.data);
    if (table_commit(&t, NULL, &err) < 0 || update_limit(cfg, address.data, 0, &err) < 0)
        goto out;
    printf("postctl user: deleted %s; its mail stays in %s/%s until you remove it\n", address.data,
           config_str(cfg, "virtual_mailbox_base"), maildir.data);
    rc = POSTCTL_OK;
out:
    if (rc != POSTCTL_OK)
        fprintf(stderr, "postctl user del: %s\n", sb_str(&err));
    sb_free(&address), sb_free(&domain), sb_free(&err), sb_free(&spec), sb_free(&path), sb_free(&maildir);
    return rc;
}

/* existing_mailbox - the checked address of an existing mailbox; -1 with err otherwise */
static int existing_mailbox(struct config *cfg, const char *name, struct strbuf *address, struct strbuf *err)
{
    struct strbuf domain = STRBUF_INIT, spec = STRBUF_INIT, path = STRBUF_INIT, maildir = STRBUF_INIT;
    struct text_table t;
    int     rc = -1;

    if (admin_address(name, address, &domain, err) == 0
        && table_file_for(cfg, "virtual_mailbox_maps", &spec, &path, err) == 0
        && table_open(&t, path.data, ' ', err) == 0) {
        if (table_get(&t, address->data, &maildir))
            rc = 0;
        else
            sb_printf(err, "%s is not a mailbox of this instance", address->data);
        table_close(&t);
    }
    sb_free(&domain), sb_free(&spec), sb_free(&path), sb_free(&maildir);
    return rc;
}

static int user_passwd(struct config *cfg, int argc, char **argv)
{
    struct strbuf address = STRBUF_INIT, err = STRBUF_INIT, plain = STRBUF_INIT, hash = STRBUF_INIT;
    bool    from_stdin = argc == 4 && strcmp(argv[3], "--password-stdin") == 0;
    int     rc = POSTCTL_FAILED;

    if (argc < 3 || argc > 4 || (argc == 4 && !from_stdin)) {
        user_usage(stderr);
        return POSTCTL_USAGE;
    }
    if (existing_mailbox(cfg, argv[2], &address, &err) < 0
        || postctl_read_password(from_stdin, &plain, &err) < 0
        || password_hash(PASSWORD_DEFAULT_SCHEME, plain.data, &hash, &err) < 0
        || update_passwd(cfg, address.data, &(struct passwd_change) {hash.data, -1, -1}, &err) < 0)
        goto out;
    printf("postctl user: password of %s changed\n", address.data);
    rc = POSTCTL_OK;
out:
    if (rc != POSTCTL_OK)
        fprintf(stderr, "postctl user passwd: %s\n", sb_str(&err));
    if (plain.data)
        explicit_bzero(plain.data, plain.cap);
    sb_free(&address), sb_free(&err), sb_free(&plain), sb_free(&hash);
    return rc;
}

/* user_set_disabled - "disable": no login anywhere (Dovecot's nologin); mail is still delivered */
static int user_set_disabled(struct config *cfg, int argc, char **argv, bool disabled)
{
    struct strbuf address = STRBUF_INIT, err = STRBUF_INIT;
    int     rc = POSTCTL_FAILED;

    if (argc != 3) {
        user_usage(stderr);
        return POSTCTL_USAGE;
    }
    if (existing_mailbox(cfg, argv[2], &address, &err) == 0
        && update_passwd(cfg, address.data, &(struct passwd_change) {NULL, -1, disabled}, &err) == 0) {
        printf("postctl user: %s %s\n", address.data, disabled ? "disabled: it cannot log in" : "enabled");
        rc = POSTCTL_OK;
    } else {
        fprintf(stderr, "postctl user %s: %s\n", argv[1], sb_str(&err));
    }
    sb_free(&address), sb_free(&err);
    return rc;
}

static int user_list(struct config *cfg, int argc, char **argv)
{
    struct strbuf spec = STRBUF_INIT, path = STRBUF_INIT, err = STRBUF_INIT;
    struct strbuf key = STRBUF_INIT, value = STRBUF_INIT, pw = STRBUF_INIT, out = STRBUF_INIT;
    struct strbuf domain = STRBUF_INIT;
    struct text_table t, passwd;
    bool    json = false;
    bool    have_passwd;
    size_t  pos = 0, n = 0;

    for (int i = 2; i < argc; i++) {
        if (strcmp(argv[i], "--json") == 0)
            json = true;
        else if (argv[i][0] != '-' && sb_len(&domain) == 0 && admin_domain(argv[i], &domain, &err) == 0)
            continue;
        else {
            user_usage(stderr);
            return POSTCTL_USAGE;
        }
    }
    if (table_file_for(cfg, "virtual_mailbox_maps", &spec, &path, &err) < 0
        || table_open(&t, path.data, ' ', &err) < 0) {
        fprintf(stderr, "postctl user list: %s\n", sb_str(&err));
        return POSTCTL_FAILED;
    }
    have_passwd = table_open(&passwd, config_str(cfg, "auth_passwd_file"), ':', &err) == 0;
    if (json)
        sb_putc(&out, '[');
    while (table_next(&t, &pos, &key, &value)) {
        const char *at = strrchr(key.data, '@');
        bool    has_pw = false;
        bool    disabled = false;
        long long quota = 0;

        if (sb_len(&domain) && (at == NULL || strcasecmp(at + 1, domain.data) != 0))
            continue;
        if (have_passwd && table_get(&passwd, key.data, &pw)) {
            has_pw = strncmp(pw.data, NO_PASSWORD ":", 2) != 0;
            quota = quota_of(pw.data);

            struct strlist extras = STRLIST_INIT;

            extra_fields(pw.data, &extras);
            disabled = strlist_contains(&extras, "nologin");
            strlist_free(&extras);
        }
        if (json) {
            sb_puts(&out, n ? ",{\"address\":" : "{\"address\":");
            json_string(&out, key.data);
            sb_puts(&out, ",\"mailbox\":");
            json_string(&out, value.data);
            sb_printf(&out, ",\"quota\":%lld,\"password\":%s,\"disabled\":%s}", quota,
                      has_pw ? "true" : "false", disabled ? "true" : "false");
        } else {
            sb_printf(&out, "%-40s %-40s quota=%lld%s%s\n", key.data, value.data, quota,
                      has_pw ? "" : " (no password)", disabled ? " (disabled)" : "");
        }
        n++;
    }
    if (json)
        sb_puts(&out, "]\n");
    fputs(sb_str(&out), stdout);
    table_close(&t);
    if (have_passwd)
        table_close(&passwd);
    sb_free(&spec), sb_free(&path), sb_free(&err), sb_free(&key), sb_free(&value);
    sb_free(&pw), sb_free(&out), sb_free(&domain);
    return POSTCTL_OK;
}

int cmd_user(struct postctl *ctl, int argc, char **argv)
{
    struct config *cfg;
    int     rc;

    if (postctl_wants_help(argc, argv)) {
        user_usage(stdout);
        return POSTCTL_OK;
    }
    if (argc < 2) {
        user_usage(stderr);
        return POSTCTL_USAGE;
    }
    if ((cfg = admin_load_config(ctl->config_dir, "user")) == NULL)
        return POSTCTL_FAILED;
    if (postctl_pgsql_dispatch(cfg, "user", argc, argv, &rc) == 0) {
        config_free(cfg);
        return rc;
    }
    if (strcmp(argv[1], "add") == 0)
        rc = user_add(cfg, argc, argv);
    else if (strcmp(argv[1], "del") == 0)
        rc = user_del(cfg, argc, argv);
    else if (strcmp(argv[1], "list") == 0)
        rc = user_list(cfg, argc, argv);
    else if (strcmp(argv[1], "passwd") == 0)
        rc = user_passwd(cfg, argc, argv);
    else if (strcmp(argv[1], "disable") == 0 || strcmp(argv[1], "enable") == 0)
        rc = user_set_disabled(cfg, argc, argv, strcmp(argv[1], "disable") == 0);
    else {
        user_usage(stderr);
        rc = POSTCTL_USAGE;
    }
    config_free(cfg);
    return rc;
}
