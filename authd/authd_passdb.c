/*
 * authd_passdb - the passwd-file passdb: users, password hashes and the
 * per-service permissions, in a hash table.
 *
 * Interface (authd.h): authd_passdb_init(), authd_passdb_check(),
 * authd_passdb_lookup(), authd_passdb_relative(), authd_passdb_maps_enabled(),
 * authd_passdb_fetch(), authd_fetched_free().
 *
 * Format (Dovecot's passwd-file, written by "postctl user"):
 *   user:{SCHEME}hash:uid:gid:gecos:home:shell:extra fields
 * Only the user, the password and the extra fields (space-separated,
 * "nologin", "allow_smtp=no", "allow_imap=no", and "userdb_quota_rule=*:bytes=N",
 * which an OK for imapd carries; others ignored) matter here.
 * The file is read relative to our working directory (auth_directory, the
 * chroot) and checked with stat() before each lookup: "postctl" replaces it
 * by rename, so a new inode, size or mtime means reload. A file that cannot
 * be read keeps the previous table (logged once per change). Lines are
 * untrusted: longer than PASSDB_MAX_LINE or malformed ones are skipped with
 * "passwd:LINE: what; skipped"; a duplicate user keeps the first line, as
 * Dovecot does.
 *
 * With auth_passdb_maps set, users come from those lib/map tables instead
 * (hash:, pgsql:, ...; authd_passdb_fetch()): the value for a user name is
 * what follows "user:" on a passwd-file line, "{SCHEME}hash:uid:gid:gecos:
 * home:shell:extra fields" (everything after the hash may be left out). A
 * pgsql: map produces it from named columns (map_pgsql.c, result_fields =
 * passwd-file). Lookups run in authd's worker threads, one at a time (the
 * map handles are not thread-safe): a database that does not answer delays
 * logins, never the event loop.
 */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config.h"
#include "log.h"
#include "map.h"
#include "mem.h"
#include "strbuf.h"

#include "authd.h"

#define PASSDB_MAX_LINE         4096
#define PASSDB_MAX_USERS        2000000

struct pw_entry {
    struct pw_entry *next;
    uint32_t hash;
    struct authd_user user;
    char    data[];                     /* name NUL password NUL */
};

struct pw_table {
    struct pw_entry **buckets;
    size_t  nbuckets;
    size_t  count;
};

static struct pw_table table;
static struct maplist *passdb_maps;     /* auth_passdb_maps; NULL: the passwd-file */
static pthread_mutex_t maps_lock = PTHREAD_MUTEX_INITIALIZER;
static struct stat loaded_st;           /* what the table was loaded from */
static bool have_loaded;
static bool warned_missing;

/* name_hash - FNV-1a (the names come from the administrator's file, not from clients) */
static uint32_t name_hash(const char *s)
{
    uint32_t h = 2166136261u;

    for (; *s; s++) {
        h ^= (unsigned char) *s;
        h *= 16777619u;
    }
    return h;
}

/* table_free - drop every entry */
static void table_free(struct pw_table *t)
{
    for (size_t i = 0; i < t->nbuckets; i++) {
        struct pw_entry *e = t->buckets[i], *next;

        for (; e; e = next) {
            next = e->next;
            free(e);
        }
    }
    free(t->buckets);
    memset(t, 0, sizeof(*t));
}

/* table_find - the entry for name */
static struct pw_entry *table_find(const struct pw_table *t, const char *name)
{
    uint32_t h = name_hash(name);

    if (t->nbuckets == 0)
        return NULL;
    for (struct pw_entry *e = t->buckets[h & (t->nbuckets - 1)]; e; e = e->next)
        if (e->hash == h && strcmp(e->user.name, name) == 0)
            return e;
    return NULL;
}

/* table_grow - double the buckets when the table gets crowded */
static void table_grow(struct pw_table *t)
{
    size_t  n = t->nbuckets ? t->nbuckets * 2 : 1024;
    struct pw_entry **b = xcalloc(n, sizeof(*b));

    for (size_t i = 0; i < t->nbuckets; i++) {
        struct pw_entry *e = t->buckets[i], *next;

        for (; e; e = next) {
            next = e->next;
            e->next = b[e->hash & (n - 1)];
            b[e->hash & (n - 1)] = e;
        }
    }
    free(t->buckets);
    t->buckets = b;
    t->nbuckets = n;
}

#define QUOTA_RULE "userdb_quota_rule=*:bytes="

/* parse_extra - the extra fields we act on; -1 with err for a bad value */
static int parse_extra(char *extra, struct authd_user *u, struct strbuf *err)
{
    char   *save = NULL;

    for (char *f = strtok_r(extra, " \t", &save); f; f = strtok_r(NULL, " \t", &save)) {
        bool    value;

        if (strcmp(f, "nologin") == 0 || strcmp(f, "nologin=y") == 0
            || strcmp(f, "nologin=yes") == 0) {
            u->nologin = true;
        } else if (strncmp(f, "allow_smtp=", 11) == 0 || strncmp(f, "allow_imap=", 11) == 0) {
            if (config_parse_bool(f + 11, &value) < 0) {
                sb_printf(err, "bad value in \"%.80s\" (use yes or no); access denied", f);
                /* fail closed: a typo must not open a door */
                value = false;
            }
            if (f[6] == 's')
                u->deny_smtp = !value;
            else
                u->deny_imap = !value;
        } else if (strncmp(f, QUOTA_RULE, strlen(QUOTA_RULE)) == 0) {
            long long bytes;

            /* Dovecot's quota rule as postctl writes it; imapd enforces it (QUOTA). */
            if (config_parse_size(f + strlen(QUOTA_RULE), &bytes) < 0 || bytes < 0)
                sb_printf(err, "bad quota in \"%.80s\" (use e.g. %s1G); ignored", f, QUOTA_RULE);
            else
                u->quota_bytes = (unsigned long long) bytes;
        }
    }
    return sb_len(err) ? -1 : 0;
}

/*
 * parse_user - one passwd-file line, in place, into u (pointing into line);
 * -1 with err: unusable, 1 with err: usable with a service denied
 */
static int parse_user(char *line, struct authd_user *u, struct strbuf *err)
{
    char   *f[8] = {0};
    int     n = 0;
    char   *p = line;

    while (n < 8) {
        f[n++] = p;
        if (n == 8)
            break;                      /* the extra fields may contain ':' */
        p = strchr(p, ':');
        if (p == NULL)
            break;
        *p++ = '\0';
    }
    if (n < 2 || f[0][0] == '\0') {
        sb_set(err, "expected \"user:{SCHEME}hash:...\"");
        return -1;
    }
    for (const char *c = f[0]; *c; c++) {
        if ((unsigned char) *c <= ' ' || *c == 0x7f) {
            sb_set(err, "user name contains a space or control character");
            return -1;
        }
    }
    if (strlen(f[0]) > AUTH_PROTO_MAX_USER) {
        sb_printf(err, "user name longer than %d bytes", AUTH_PROTO_MAX_USER);
        return -1;
    }
    for (char *c = f[0]; *c; c++)
        *c = (char) tolower((unsigned char) *c);
    memset(u, 0, sizeof(*u));
    u->name = f[0];
    u->password = f[1];
    if (n == 8)
        parse_extra(f[7], u, err);      /* on error the entry is kept, with the service denied */
    return sb_len(err) ? 1 : 0;
}

/* parse_line - one passwd-file line into the table; -1 with err: skipped, 1 with err: kept */
static int parse_line(struct pw_table *t, char *line, struct strbuf *err)
{
    struct authd_user u;
    struct pw_entry *e;
    size_t  nlen, plen;

    if (parse_user(line, &u, err) < 0)
        return -1;
    if (table_find(t, u.name) != NULL) {
        sb_reset(err);
        sb_printf(err, "duplicate user \"%s\" (an earlier line defines it)", u.name);
        return -1;
    }
    nlen = strlen(u.name);
    plen = strlen(u.password);
    e = xmalloc(sizeof(*e) + nlen + plen + 2);
    memcpy(e->data, u.name, nlen + 1);
    memcpy(e->data + nlen + 1, u.password, plen + 1);
    e->user = u;
    e->user.name = e->data;
    e->user.password = e->data + nlen + 1;
    e->hash = name_hash(e->user.name);
    if (t->count >= t->nbuckets / 2)
        table_grow(t);
    e->next = t->buckets[e->hash & (t->nbuckets - 1)];
    t->buckets[e->hash & (t->nbuckets - 1)] = e;
    t->count++;
    return sb_len(err) ? 1 : 0;
}

/*
 * read_line - the next line of fp into buf (NUL-terminated, without "\n");
 * 1: a line of *len bytes, 0: end of file, -1: the line was longer than
 * PASSDB_MAX_LINE (it is consumed whole, so the next call is in step), -2: it
 * contained a NUL byte. fgets() cannot tell a NUL from the end of the line.
 */
static int read_line(FILE *fp, char *buf, size_t *len)
{
    size_t  n = 0;
    bool    overlong = false, nul = false;
    int     c;

    while ((c = getc(fp)) != EOF && c != '\n') {
        if (c == '\0')
            nul = true;
        if (n < PASSDB_MAX_LINE)
            buf[n++] = (char) c;
        else
            overlong = true;
    }
    if (c == EOF && n == 0 && !overlong && !nul)
        return 0;
    buf[n] = '\0';
    *len = n;
    return overlong ? -1 : nul ? -2 : 1;
}

/* load - read fp into a new table; bad lines are warnings */
static void load(FILE *fp, const char *path, struct pw_table *t)
{
    char    buf[PASSDB_MAX_LINE + 1];
    struct strbuf err = STRBUF_INIT;
    int     lineno = 0;
    size_t  len;
    int     rc;

    while ((rc = read_line(fp, buf, &len)) != 0) {
        lineno++;
        if (rc == -1) {
            msg_warn("%s:%d: line longer than %d bytes; skipped", path, lineno, PASSDB_MAX_LINE);
            continue;
        }
        if (rc == -2) {
            msg_warn("%s:%d: line contains a NUL byte; skipped", path, lineno);
            continue;
        }
        if (len > 0 && buf[len - 1] == '\r')
            buf[--len] = '\0';
        if (buf[strspn(buf, " \t")] == '\0' || buf[strspn(buf, " \t")] == '#')
            continue;
        if (t->count >= PASSDB_MAX_USERS) {
            msg_warn("%s:%d: more than %d users; the rest is ignored", path, lineno,
                     PASSDB_MAX_USERS);
            break;
        }
        sb_reset(&err);
        switch (parse_line(t, buf, &err)) {
        case -1:
            msg_warn("%s:%d: %s; skipped", path, lineno, sb_str(&err));
            break;
        case 1:
            msg_warn("%s:%d: %s", path, lineno, sb_str(&err));
            break;
        }
    }
    if (ferror(fp))
        msg_warn("read %s: %m; using the %zu users read so far", path, t->count);
    sb_free(&err);
}

/* same_file - st describes the file the table was loaded from, unchanged */
static bool same_file(const struct stat *st)
{
    return have_loaded && st->st_dev == loaded_st.st_dev && st->st_ino == loaded_st.st_ino
        && st->st_size == loaded_st.st_size && st->st_mtim.tv_sec == loaded_st.st_mtim.tv_sec
        && st->st_mtim.tv_nsec == loaded_st.st_mtim.tv_nsec;
}

void authd_passdb_check(void)
{
    struct stat st;
    struct pw_table fresh = {0};
    FILE   *fp;
    int     fd;

    if (passdb_maps != NULL)
        return;                         /* users come from auth_passdb_maps */
    if (stat(authd.passwd_path, &st) == 0 && same_file(&st))
        return;
    fd = open(authd.passwd_path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0 || fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
        if (!warned_missing)
            msg_warn("open %s (in the auth directory): %s; %s", authd.passwd_path,
                     fd < 0 ? strerror(errno) : "not a regular file",
                     have_loaded ? "keeping the users loaded before" : "no user can log in");
        warned_missing = true;
        if (fd >= 0)
            close(fd);
        return;
    }
    if (same_file(&st)) {
        close(fd);
        return;
    }
    warned_missing = false;
    if ((fp = fdopen(fd, "r")) == NULL)
        msg_fatal("fdopen: %m");
    table_grow(&fresh);
    load(fp, authd.passwd_path, &fresh);
    fclose(fp);
    table_free(&table);
    table = fresh;
    loaded_st = st;
    msg_info("%s %s: %zu users", have_loaded ? "reloaded" : "loaded", authd.passwd_path,
             table.count);
    have_loaded = true;
}

const struct authd_user *authd_passdb_lookup(const char *name)
{
    struct pw_entry *e = table_find(&table, name);

    return e ? &e->user : NULL;
}

char *authd_passdb_relative(const char *dir, const char *path)
{
    size_t  dlen = strlen(dir);
    const char *rest;

    while (dlen > 1 && dir[dlen - 1] == '/')
        dlen--;
    if (path[0] != '/')
        rest = path;                    /* already relative to the auth directory */
    else if (strncmp(path, dir, dlen) == 0 && path[dlen] == '/')
        rest = path + dlen;
    else
        return NULL;
    rest += strspn(rest, "/");
    if (*rest == '\0')
        return NULL;
    /* ".." would climb out of the directory in unprivileged mode (no chroot to stop it). */
    for (const char *p = rest; *p;) {
        size_t  len = strcspn(p, "/");

        if (len == 2 && p[0] == '.' && p[1] == '.')
            return NULL;
        p += len;
        p += strspn(p, "/");
    }
    return xstrdup(rest);
}

bool authd_passdb_maps_enabled(void)
{
    return passdb_maps != NULL;
}

int authd_passdb_fetch(const char *name, struct authd_fetched *out, struct strbuf *why)
{
    struct strbuf value = STRBUF_INIT;
    struct strbuf line = STRBUF_INIT;
    enum map_status st;
    int     rc = 0;

    memset(out, 0, sizeof(*out));
    /* Map handles (a Berkeley DB handle, a PostgreSQL connection) are not shared by threads. */
    pthread_mutex_lock(&maps_lock);
    st = maplist_lookup(passdb_maps, name, &value);
    pthread_mutex_unlock(&maps_lock);
    if (st == MAP_TEMPFAIL) {
        sb_printf(why, "auth_passdb_maps: %s", sb_len(&value) ? sb_str(&value) : "lookup failed");
        rc = -1;
    } else if (st == MAP_FOUND) {
        /* the value is what follows "user:" on a passwd-file line */
        sb_printf(&line, "%s:%s", name, sb_str(&value));
        out->data = sb_detach(&line);
        switch (parse_user(out->data, &out->user, why)) {
        case -1:
            free(out->data);
            memset(out, 0, sizeof(*out));
            break;                      /* unusable: as if unknown, why says so */
        default:
            rc = 1;
            break;
        }
    }
    sb_free(&value);
    sb_free(&line);
    return rc;
}

void authd_fetched_free(struct authd_fetched *f)
{
    if (f->data) {
        explicit_bzero(f->data, strlen(f->data));
        free(f->data);
    }
    memset(f, 0, sizeof(*f));
}

void authd_passdb_init(struct service *svc)
{
    const char *dir = config_str(svc->cfg, "auth_directory");
    const char *path = config_str(svc->cfg, "auth_passwd_file");
    const char *maps = config_str(svc->cfg, "auth_passdb_maps");
    struct strbuf err = STRBUF_INIT;

    if (maps[0] != '\0') {
        /* opened here, before the chroot: files and map configurations are outside it */
        if ((passdb_maps = maplist_open(maps, &err)) == NULL)
            msg_fatal("auth_passdb_maps = %s: %s", maps, sb_str(&err));
        /* a hash: file outside the chroot cannot be reopened here: a fresh authd will */
        service_watch_maps(svc, passdb_maps);
        sb_free(&err);
        msg_info("users from auth_passdb_maps = %s", maps);
        return;
    }

    authd.passwd_path = authd_passdb_relative(dir, path);
    if (authd.passwd_path == NULL)
        msg_fatal("auth_passwd_file = %s is not inside auth_directory = %s: authd runs chrooted "
                  "there and cannot reach it; move the file into %s (the default is "
                  "$auth_directory/passwd)", path, dir, dir);
}
