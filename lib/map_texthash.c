/*
 * map_texthash - texthash: maps, the "key value" text file read into memory.
 *
 * Interface: map_type_texthash (map.h). "texthash:/etc/x" reads /etc/x in
 * the format of map_parse_text() into an open-addressing hash table (linear
 * probing, FNV-1a, at most half full). The file stays open so that a
 * replaced file is noticed through its link count even from a chroot; a new
 * file at the path is read again, and if that fails (syntax error, gone) the
 * old table is kept and map_changed() says so.
 *
 * Diagnostics: open errors name the file and line; duplicate keys are logged
 * as warnings and the first entry is kept, as Postfix does.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"
#include "mem.h"
#include "strbuf.h"
#include "map.h"

struct th_entry {
    char   *key;                        /* NULL: empty slot */
    char   *value;
};

struct th_table {
    struct th_entry *slots;
    size_t  size;                       /* power of two */
    size_t  count;
};

struct th_map {
    struct map_source src;
    struct th_table table;
};

/* th_hash - FNV-1a */
static size_t th_hash(const char *key)
{
    uint64_t h = 14695981039346656037ULL;

    for (; *key; key++) {
        h ^= (unsigned char) *key;
        h *= 1099511628211ULL;
    }
    return (size_t) h;
}

/* th_find - the slot holding key, or the empty slot where it would go */
static struct th_entry *th_find(const struct th_table *t, const char *key)
{
    size_t  i = th_hash(key) & (t->size - 1);

    while (t->slots[i].key && strcmp(t->slots[i].key, key) != 0)
        i = (i + 1) & (t->size - 1);
    return &t->slots[i];
}

/* th_grow - double the table, keeping it at most half full */
static void th_grow(struct th_table *t)
{
    struct th_table n = { NULL, t->size ? t->size * 2 : 64, t->count };

    n.slots = xcalloc(n.size, sizeof(*n.slots));
    for (size_t i = 0; i < t->size; i++)
        if (t->slots[i].key)
            *th_find(&n, t->slots[i].key) = t->slots[i];
    free(t->slots);
    *t = n;
}

/* th_store - map_parse_text() callback: 1 for a duplicate, first one kept */
static int th_store(void *arg, const char *key, const char *value, struct strbuf *err)
{
    struct th_table *t = arg;
    struct th_entry *e;

    (void) err;
    if ((t->count + 1) * 2 > t->size)
        th_grow(t);
    e = th_find(t, key);
    if (e->key)
        return 1;
    e->key = xstrdup(key);
    e->value = xstrdup(value);
    t->count++;
    return 0;
}

/* th_free_table - release every entry */
static void th_free_table(struct th_table *t)
{
    for (size_t i = 0; i < t->size; i++) {
        free(t->slots[i].key);
        free(t->slots[i].value);
    }
    free(t->slots);
    t->slots = NULL;
    t->size = t->count = 0;
}

/* th_load - read path into a new table; -1 with err */
static int th_load(const char *path, int *fdp, struct stat *stp, struct th_table *t,
                   struct strbuf *err)
{
    struct strbuf warnings = STRBUF_INIT;
    int     fd;
    char   *line, *next;

    memset(t, 0, sizeof(*t));
    if (map_source_open(path, &fd, stp, err) < 0)
        return -1;
    th_grow(t);
    if (map_parse_text(fd, path, th_store, t, &warnings, err) < 0) {
        th_free_table(t);
        sb_free(&warnings);
        close(fd);
        return -1;
    }
    for (line = warnings.data; line && *line; line = next) {
        if ((next = strchr(line, '\n')) != NULL)
            *next++ = '\0';
        else
            next = line + strlen(line);
        msg_warn("texthash:%s", line);
    }
    sb_free(&warnings);
    *fdp = fd;
    return 0;
}

/* th_open - texthash:NAME reads the file NAME */
static void *th_open(const char *name, struct strbuf *err)
{
    struct th_map *tm;

    if (*name == '\0') {
        sb_puts(err, "missing file name, e.g. texthash:/etc/postern/virtual");
        return NULL;
    }
    tm = xcalloc(1, sizeof(*tm));
    tm->src.path = xstrdup(name);
    if (th_load(name, &tm->src.fd, &tm->src.st, &tm->table, err) < 0) {
        free(tm->src.path);
        free(tm);
        return NULL;
    }
    return tm;
}

/* th_lookup - one probe sequence in the table */
static enum map_status th_lookup(void *handle, const char *key, struct strbuf *value)
{
    struct th_map *tm = handle;
    struct th_entry *e = th_find(&tm->table, key);

    if (e->key == NULL)
        return MAP_NOTFOUND;
    sb_puts(value, e->value);
    return MAP_FOUND;
}

/* th_changed - read a replaced file again; true if that failed */
static bool th_changed(void *handle)
{
    struct th_map *tm = handle;
    struct strbuf err = STRBUF_INIT;
    struct th_table t;
    struct stat st;
    int     fd;

    switch (map_source_reload_due(&tm->src)) {
    case 0:
        return false;
    case -1:
        return true;
    }
    if (th_load(tm->src.path, &fd, &st, &t, &err) < 0) {
        map_source_reload_failed(&tm->src, "texthash", &err);
        sb_free(&err);
        return true;
    }
    map_source_reloaded(&tm->src, fd, &st);
    th_free_table(&tm->table);
    tm->table = t;
    return false;
}

/* th_close - free the table and close the file */
static void th_close(void *handle)
{
    struct th_map *tm = handle;

    th_free_table(&tm->table);
    map_source_close(&tm->src);
    free(tm);
}

const struct map_type map_type_texthash = {
    .name = "texthash",
    .open = th_open,
    .lookup = th_lookup,
    .changed = th_changed,
    .close = th_close,
    .compile = NULL,
};
