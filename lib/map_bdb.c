/*
 * map_bdb - hash: and btree: maps, Berkeley DB files compiled from text.
 *
 * Interface: map_type_hash and map_type_btree (map.h). "hash:/etc/x" reads
 * /etc/x.db; map_compile("hash:/etc/x") writes it from the text file /etc/x.
 *
 * Files are written as Postfix's postmap writes them: key and value each with
 * a trailing NUL. Lookups try the key with the NUL, then without, so files
 * from either convention read. A file is never changed in place: compile
 * writes NAME.db.tmpXXXXXX, syncs it, gives it the source file's owner and
 * mode, renames it over NAME.db and syncs the directory. Readers therefore
 * open read-only, without a DB environment or locks, and find out about a new
 * file through map_file_check() (the old file's link count drops to zero).
 *
 * Diagnostics: open and compile errors name the file and suggest the fix;
 * lookup errors come back as MAP_TEMPFAIL with the Berkeley DB reason.
 */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <db.h>

#include "mem.h"
#include "strbuf.h"
#include "map.h"

struct bdb_map {
    DB     *db;
    DBTYPE  dbtype;
    const char *typename;
    char   *name;                       /* the source name, for messages */
    char   *path;                       /* NAME.db */
    int     fd;                         /* Berkeley DB's descriptor, for fstat() */
    struct stat st;                     /* identity of the opened file */
};

/* Berkeley DB reports details through a callback; keep the last one for our messages. */
static char bdb_last_error[256];

/* bdb_errcall - remember Berkeley DB's own message instead of printing it */
static void bdb_errcall(const DB_ENV *env, const char *prefix, const char *msg)
{
    (void) env;
    (void) prefix;
    snprintf(bdb_last_error, sizeof(bdb_last_error), "%s", msg ? msg : "");
}

/* bdb_reason - db_strerror(ret) plus Berkeley DB's detail, if any */
static void bdb_reason(struct strbuf *out, int ret)
{
    sb_puts(out, db_strerror(ret));
    if (bdb_last_error[0])
        sb_printf(out, " (%s)", bdb_last_error);
}

/* db_path - NAME + ".db" */
static char *db_path(const char *name)
{
    struct strbuf sb = STRBUF_INIT;

    sb_printf(&sb, "%s.db", name);
    return sb_detach(&sb);
}

/* bdb_open_file - open path read-only; fills db, fd and st; -1 with err */
static int bdb_open_file(struct bdb_map *bm, DB **dbp, int *fdp, struct stat *stp,
                         struct strbuf *err)
{
    DB     *db;
    int     ret, fd, flags;

    bdb_last_error[0] = '\0';
    if ((ret = db_create(&db, NULL, 0)) != 0) {
        sb_printf(err, "open %s: db_create: %s", bm->path, db_strerror(ret));
        return -1;
    }
    db->set_errcall(db, bdb_errcall);
    if ((ret = db->open(db, NULL, bm->path, NULL, bm->dbtype, DB_RDONLY, 0)) != 0) {
        if (ret == ENOENT) {
            sb_printf(err, "open %s: %s; run postctl map %s%s%s", bm->path, strerror(ret),
                      bm->dbtype == DB_HASH ? "" : bm->typename,
                      bm->dbtype == DB_HASH ? "" : ":", bm->name);
        } else {
            sb_printf(err, "open %s: ", bm->path);
            bdb_reason(err, ret);
            if (ret == EINVAL)
                sb_printf(err, "; is it a %s file? run postctl map %s:%s",
                          bm->typename, bm->typename, bm->name);
        }
        db->close(db, 0);
        return -1;
    }
    if ((ret = db->fd(db, &fd)) != 0 || fstat(fd, stp) < 0) {
        sb_printf(err, "open %s: cannot get its file status: %s", bm->path,
                  ret ? db_strerror(ret) : strerror(errno));
        db->close(db, 0);
        return -1;
    }
    /* Daemons exec helpers; the table must not leak into them. */
    if ((flags = fcntl(fd, F_GETFD)) >= 0)
        (void) fcntl(fd, F_SETFD, flags | FD_CLOEXEC);
    *dbp = db;
    *fdp = fd;
    return 0;
}

/* bdb_open - shared by hash and btree */
static void *bdb_open(const char *name, DBTYPE dbtype, const char *typename, struct strbuf *err)
{
    struct bdb_map *bm;

    if (*name == '\0') {
        sb_printf(err, "missing file name, e.g. %s:/etc/postern/virtual", typename);
        return NULL;
    }
    bm = xcalloc(1, sizeof(*bm));
    bm->dbtype = dbtype;
    bm->typename = typename;
    bm->name = xstrdup(name);
    bm->path = db_path(name);
    if (bdb_open_file(bm, &bm->db, &bm->fd, &bm->st, err) < 0) {
        free(bm->name);
        free(bm->path);
        free(bm);
        return NULL;
    }
    return bm;
}

/* hash_open - hash:NAME reads NAME.db */
static void *hash_open(const char *name, struct strbuf *err)
{
    return bdb_open(name, DB_HASH, "hash", err);
}

/* btree_open - btree:NAME reads NAME.db */
static void *btree_open(const char *name, struct strbuf *err)
{
    return bdb_open(name, DB_BTREE, "btree", err);
}

/* bdb_get - one exact lookup; 0 found, DB_NOTFOUND, or an error code */
static int bdb_get(struct bdb_map *bm, const char *key, size_t len, DBT *val)
{
    DBT     k;

    memset(&k, 0, sizeof(k));
    memset(val, 0, sizeof(*val));
    k.data = (void *) key;
    k.size = (u_int32_t) len;
    return bm->db->get(bm->db, NULL, &k, val, 0);
}

/* bdb_lookup - key with its NUL (postmap style), then without */
static enum map_status bdb_lookup(void *handle, const char *key, struct strbuf *value)
{
    struct bdb_map *bm = handle;
    size_t  len = strlen(key);
    DBT     val;
    int     ret;

    bdb_last_error[0] = '\0';
    ret = bdb_get(bm, key, len + 1, &val);
    if (ret == DB_NOTFOUND)
        ret = bdb_get(bm, key, len, &val);
    if (ret == DB_NOTFOUND)
        return MAP_NOTFOUND;
    if (ret != 0) {
        sb_printf(value, "%s:%s: lookup error: ", bm->typename, bm->name);
        bdb_reason(value, ret);
        return MAP_TEMPFAIL;
    }
    /* The value is C text to every caller: stop at its (first) NUL. */
    len = val.data ? strnlen(val.data, val.size) : 0;
    if (len > MAP_LINE_MAX) {
        sb_printf(value, "%s:%s: value for '%s' is longer than %d bytes",
                  bm->typename, bm->name, key, MAP_LINE_MAX);
        return MAP_TEMPFAIL;
    }
    sb_append(value, val.data, len);
    return MAP_FOUND;
}

/* bdb_changed - reopen a replaced file in place; true if it could not be */
static bool bdb_changed(void *handle)
{
    struct bdb_map *bm = handle;
    struct strbuf err = STRBUF_INIT;
    DB     *db;
    int     fd;
    struct stat st;

    switch (map_file_check(bm->fd, bm->path, &bm->st)) {
    case 0:
        return false;
    case -1:
        return true;
    }
    if (bdb_open_file(bm, &db, &fd, &st, &err) < 0) {
        /* Keep serving what we have; the daemon retires when it can. */
        sb_free(&err);
        return true;
    }
    bm->db->close(bm->db, 0);
    bm->db = db;
    bm->fd = fd;
    bm->st = st;
    return false;
}

/* bdb_close - release the handle and its Berkeley DB */
static void bdb_close(void *handle)
{
    struct bdb_map *bm = handle;

    bm->db->close(bm->db, 0);
    free(bm->name);
    free(bm->path);
    free(bm);
}

/* bdb_store - one compiled entry, both with their NUL; duplicates keep the first */
static int bdb_store(void *arg, const char *key, const char *value, struct strbuf *err)
{
    DB     *db = arg;
    DBT     k, v;
    int     ret;

    memset(&k, 0, sizeof(k));
    memset(&v, 0, sizeof(v));
    k.data = (void *) key;
    k.size = (u_int32_t) strlen(key) + 1;
    v.data = (void *) value;
    v.size = (u_int32_t) strlen(value) + 1;
    ret = db->put(db, NULL, &k, &v, DB_NOOVERWRITE);
    if (ret == DB_KEYEXIST)
        return 1;
    if (ret != 0) {
        sb_puts(err, "write error: ");
        bdb_reason(err, ret);
        return -1;
    }
    return 0;
}

/* fsync_dir - make the rename durable */
static int fsync_dir(const char *path, struct strbuf *err)
{
    char   *copy = xstrdup(path);
    const char *dir = dirname(copy);
    int     fd, ret = 0;

    if ((fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0 || fsync(fd) < 0) {
        sb_printf(err, "fsync directory %s: %s", dir, strerror(errno));
        ret = -1;
    }
    if (fd >= 0)
        close(fd);
    free(copy);
    return ret;
}

/* set_owner_mode - the compiled file gets the source's owner and mode, then is synced */
static int set_owner_mode(const char *tmp, const struct stat *src, const char *name,
                          struct strbuf *warnings, struct strbuf *err)
{
    int     fd;
    int     ret = -1;

    if ((fd = open(tmp, O_RDONLY | O_NOFOLLOW | O_CLOEXEC)) < 0) {
        sb_printf(err, "open %s: %s", tmp, strerror(errno));
        return -1;
    }
    if (fchown(fd, src->st_uid, src->st_gid) < 0) {
        /* Without root we can only keep our own owner: say so, but still compile. */
        if (geteuid() == 0) {
            sb_printf(err, "chown %s: %s", tmp, strerror(errno));
            goto out;
        }
        if (warnings)
            sb_printf(warnings, "%s: cannot give %s.db the source's owner %ld:%ld (%s); "
                      "run postctl map as root\n", name, name, (long) src->st_uid,
                      (long) src->st_gid, strerror(errno));
    }
    if (fchmod(fd, src->st_mode & 0777) < 0) {
        sb_printf(err, "chmod %s: %s", tmp, strerror(errno));
        goto out;
    }
    if (fsync(fd) < 0) {
        sb_printf(err, "fsync %s: %s", tmp, strerror(errno));
        goto out;
    }
    ret = 0;
out:
    close(fd);
    return ret;
}

/* bdb_compile - NAME -> NAME.db, atomically */
static int bdb_compile(const char *name, DBTYPE dbtype, struct strbuf *warnings,
                       struct strbuf *err)
{
    char   *path = db_path(name);
    struct strbuf tmp = STRBUF_INIT;
    struct stat src_st;
    int     src_fd = -1, tmp_fd;
    DB     *db = NULL;
    int     ret, status = -1;
    bool    created = false;

    if ((src_fd = open(name, O_RDONLY | O_CLOEXEC)) < 0) {
        sb_printf(err, "open %s: %s", name, strerror(errno));
        goto out;
    }
    if (fstat(src_fd, &src_st) < 0 || !S_ISREG(src_st.st_mode)) {
        sb_printf(err, "%s: not a regular file", name);
        goto out;
    }
    sb_printf(&tmp, "%s.tmpXXXXXX", path);
    if ((tmp_fd = mkostemp(tmp.data, O_CLOEXEC)) < 0) {
        sb_printf(err, "create %s: %s", sb_str(&tmp), strerror(errno));
        goto out;
    }
    created = true;
    close(tmp_fd);

    bdb_last_error[0] = '\0';
    if ((ret = db_create(&db, NULL, 0)) != 0) {
        sb_printf(err, "create %s: db_create: %s", sb_str(&tmp), db_strerror(ret));
        db = NULL;
        goto out;
    }
    db->set_errcall(db, bdb_errcall);
    if ((ret = db->open(db, NULL, sb_str(&tmp), NULL, dbtype, DB_CREATE | DB_TRUNCATE, 0600)) != 0) {
        sb_printf(err, "create %s: ", sb_str(&tmp));
        bdb_reason(err, ret);
        goto out;
    }
    /* A syntax error stops here, before the old NAME.db is touched. */
    if (map_parse_text(src_fd, name, bdb_store, db, warnings, err) < 0)
        goto out;
    ret = db->sync(db, 0);
    if (ret == 0)
        ret = db->close(db, 0);
    else
        db->close(db, 0);
    db = NULL;
    if (ret != 0) {
        sb_printf(err, "write %s: ", sb_str(&tmp));
        bdb_reason(err, ret);
        goto out;
    }
    if (set_owner_mode(sb_str(&tmp), &src_st, name, warnings, err) < 0)
        goto out;
    if (rename(sb_str(&tmp), path) < 0) {
        sb_printf(err, "rename %s to %s: %s", sb_str(&tmp), path, strerror(errno));
        goto out;
    }
    created = false;
    if (fsync_dir(path, err) < 0)
        goto out;
    status = 0;
out:
    if (db)
        db->close(db, 0);
    if (created)
        (void) unlink(sb_str(&tmp));
    if (src_fd >= 0)
        close(src_fd);
    sb_free(&tmp);
    free(path);
    return status;
}

/* hash_compile - NAME -> NAME.db as a hash file */
static int hash_compile(const char *name, struct strbuf *warnings, struct strbuf *err)
{
    return bdb_compile(name, DB_HASH, warnings, err);
}

/* btree_compile - NAME -> NAME.db as a btree file */
static int btree_compile(const char *name, struct strbuf *warnings, struct strbuf *err)
{
    return bdb_compile(name, DB_BTREE, warnings, err);
}

const struct map_type map_type_hash = {
    .name = "hash",
    .open = hash_open,
    .lookup = bdb_lookup,
    .changed = bdb_changed,
    .close = bdb_close,
    .compile = hash_compile,
};

const struct map_type map_type_btree = {
    .name = "btree",
    .open = btree_open,
    .lookup = bdb_lookup,
    .changed = bdb_changed,
    .close = bdb_close,
    .compile = btree_compile,
};
