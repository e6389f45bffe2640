/*
 * map - "type:name" lookup tables: the type table, the generic map and list
 * handles, and the pieces the map types share.
 *
 * Interface (map.h): map_open(), map_lookup(), map_changed(), map_spec(),
 * map_close(); maplist_open(), maplist_lookup(), maplist_changed(),
 * maplist_empty(), maplist_close(); map_compile(). For the types:
 * map_parse_text() (the "key value" source format), map_file_check()
 * (replaced-file detection), map_source_*() (tables read whole from a text
 * file and read again on change), map_token()/map_unbrace() (brace-aware lists),
 * map_set_check_interval_ms().
 *
 * Keys are folded to lower case here, once, before a type sees them. The
 * file check behind map_changed() and map_lookup() runs at most once per
 * check interval per map, so a busy daemon pays one fstat()+stat() a second.
 *
 * Diagnostics: every error names the map ("hash:/etc/x: ...") or the source
 * line ("/etc/x:12: ..."); lookups never log, they return MAP_TEMPFAIL with
 * the reason in the value buffer.
 */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "mem.h"
#include "strbuf.h"
#include "map.h"

/* Adding a map type means adding its file and one line here. */
static const struct map_type *const map_types[] = {
    &map_type_hash,
    &map_type_btree,
    &map_type_texthash,
    &map_type_static,
    &map_type_inline,
    &map_type_pgsql,
    &map_type_regexp,
};

#define MAP_NTYPES (sizeof(map_types) / sizeof(map_types[0]))

struct map {
    const struct map_type *type;
    void   *handle;
    char   *spec;
    long long last_check_ms;            /* monotonic time of the last file check */
    bool    changed;                    /* result of the last file check */
    struct strbuf key;                  /* folded key, reused */
};

struct maplist {
    struct map **maps;
    size_t  count;
};

static long map_check_interval_ms = 1000;

/* map_set_check_interval_ms - tests shorten the once-a-second file check */
void map_set_check_interval_ms(long ms)
{
    map_check_interval_ms = ms < 0 ? 0 : ms;
}

/* now_ms - monotonic milliseconds, immune to clock steps */
static long long now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* find_type - the type named by the first len bytes of text */
static const struct map_type *find_type(const char *text, size_t len)
{
    for (size_t i = 0; i < MAP_NTYPES; i++)
        if (strlen(map_types[i]->name) == len && memcmp(map_types[i]->name, text, len) == 0)
            return map_types[i];
    return NULL;
}

/* known_types - "hash, btree, ..." for error messages */
static void known_types(struct strbuf *out)
{
    for (size_t i = 0; i < MAP_NTYPES; i++) {
        if (i)
            sb_puts(out, ", ");
        sb_puts(out, map_types[i]->name);
    }
}

/* split_spec - "type:name" into its type and name; -1 with err */
static const struct map_type *split_spec(const char *spec, const char **name, struct strbuf *err)
{
    const char *colon = strchr(spec, ':');
    const struct map_type *type;

    if (colon == NULL || colon == spec) {
        sb_printf(err, "'%s': expected type:name, e.g. hash:/etc/postern/virtual", spec);
        return NULL;
    }
    if ((type = find_type(spec, (size_t) (colon - spec))) == NULL) {
        if (colon - spec == 4 && strncmp(spec, "pcre", 4) == 0) {
            sb_printf(err, "%s: pcre: tables are not supported; use regexp:%s (POSIX extended "
                      "regular expressions, the same /pattern/flags result lines)", spec, colon + 1);
            return NULL;
        }
        sb_printf(err, "%s: unknown map type '%.*s'; known types: ", spec,
                  (int) (colon - spec), spec);
        known_types(err);
        return NULL;
    }
    *name = colon + 1;
    return type;
}

/* map_open - open "type:name" */
struct map *map_open(const char *spec, struct strbuf *err)
{
    const struct map_type *type;
    const char *name;
    struct strbuf why = STRBUF_INIT;
    void   *handle;
    struct map *map;

    sb_reset(err);
    if (spec == NULL || *spec == '\0') {
        sb_puts(err, "empty map name; expected type:name, e.g. hash:/etc/postern/virtual");
        return NULL;
    }
    if ((type = split_spec(spec, &name, err)) == NULL)
        return NULL;
    if ((handle = type->open(name, &why)) == NULL) {
        sb_printf(err, "%s: %s", spec, sb_str(&why));
        sb_free(&why);
        return NULL;
    }
    sb_free(&why);
    map = xcalloc(1, sizeof(*map));
    map->type = type;
    map->handle = handle;
    map->spec = xstrdup(spec);
    map->last_check_ms = now_ms();
    sb_init(&map->key);
    return map;
}

/* map_check - run the type's file check if the interval has passed */
static void map_check(struct map *map)
{
    long long now;

    if (map->type->changed == NULL)
        return;
    now = now_ms();
    if (now - map->last_check_ms < map_check_interval_ms)
        return;
    map->last_check_ms = now;
    map->changed = map->type->changed(map->handle);
}

/* map_lookup - fold the key, look it up */
enum map_status map_lookup(struct map *map, const char *key, struct strbuf *value)
{
    size_t  len;

    sb_reset(value);
    if (key == NULL || *key == '\0')
        return MAP_NOTFOUND;
    /* Nothing longer can have been compiled in, so it cannot match. */
    if ((len = strlen(key)) > MAP_LINE_MAX)
        return MAP_NOTFOUND;
    map_check(map);
    sb_reset(&map->key);
    sb_append(&map->key, key, len);
    if (!map->type->keep_case)
        sb_lowercase(&map->key);
    return map->type->lookup(map->handle, sb_str(&map->key), value);
}

/* map_changed - true when the file was replaced and could not be reopened */
bool map_changed(struct map *map)
{
    map_check(map);
    return map->changed;
}

/* map_spec - the "type:name" the map was opened with */
const char *map_spec(const struct map *map)
{
    return map->spec;
}

/* map_close - release the map and its type's handle */
void map_close(struct map *map)
{
    if (map == NULL)
        return;
    map->type->close(map->handle);
    free(map->spec);
    sb_free(&map->key);
    free(map);
}

/* maplist_open - open every map of a main.cf list value, in order */
struct maplist *maplist_open(const char *value, struct strbuf *err)
{
    struct maplist *list = xcalloc(1, sizeof(*list));
    struct strbuf tok = STRBUF_INIT;
    const char *cp = value ? value : "";
    struct map *map;
    int     ret;

    sb_reset(err);
    while ((ret = map_token(&cp, &tok, err)) > 0) {
        if ((map = map_open(sb_str(&tok), err)) == NULL)
            break;
        list->maps = xreallocarray(list->maps, list->count + 1, sizeof(*list->maps));
        list->maps[list->count++] = map;
    }
    sb_free(&tok);
    if (ret != 0) {
        maplist_close(list);
        return NULL;
    }
    return list;
}

/* maplist_lookup - first match wins; a failing map stops the search */
enum map_status maplist_lookup(struct maplist *list, const char *key, struct strbuf *value)
{
    enum map_status st;

    /*
     * Going on past a map that failed could return a later map's answer
     * where the failed map would have said something else: defer instead.
     */
    for (size_t i = 0; i < list->count; i++)
        if ((st = map_lookup(list->maps[i], key, value)) != MAP_NOTFOUND)
            return st;
    sb_reset(value);
    return MAP_NOTFOUND;
}

/* maplist_changed - any map of the list changed beyond reach */
bool maplist_changed(struct maplist *list)
{
    bool    changed = false;

    for (size_t i = 0; i < list->count; i++)
        if (map_changed(list->maps[i]))
            changed = true;
    return changed;
}

/* maplist_refresh - check every file now, whatever the interval: true if one changed beyond reach */
bool maplist_refresh(struct maplist *list)
{
    for (size_t i = 0; i < list->count; i++)
        list->maps[i]->last_check_ms = now_ms() - map_check_interval_ms - 1;
    return maplist_changed(list);
}

/* maplist_empty - no maps configured (the parameter was empty) */
bool maplist_empty(const struct maplist *list)
{
    return list == NULL || list->count == 0;
}

struct value_walk {
    int     (*fn)(void *arg, const char *spec, const char *value, int line);
    void   *arg;
    const char *spec;
};

/* value_walk_one - adds the map's spec to a type's foreach_value call */
static int value_walk_one(void *arg, const char *value, int line)
{
    struct value_walk *w = arg;

    return w->fn(w->arg, w->spec, value, line);
}

/* maplist_foreach_value - every listable value of every map, in order */
int maplist_foreach_value(struct maplist *list,
                          int (*fn)(void *arg, const char *spec, const char *value, int line),
                          void *arg)
{
    struct value_walk w = {fn, arg, NULL};
    int     rc;

    for (size_t i = 0; list != NULL && i < list->count; i++) {
        struct map *map = list->maps[i];

        if (map->type->foreach_value == NULL)
            continue;
        w.spec = map->spec;
        if ((rc = map->type->foreach_value(map->handle, value_walk_one, &w)) != 0)
            return rc;
    }
    return 0;
}

/* maplist_close - close every map of the list */
void maplist_close(struct maplist *list)
{
    if (list == NULL)
        return;
    for (size_t i = 0; i < list->count; i++)
        map_close(list->maps[i]);
    free(list->maps);
    free(list);
}

/* map_compile - dispatch to the type's compiler */
int map_compile(const char *spec, struct strbuf *warnings, struct strbuf *err)
{
    const struct map_type *type;
    const char *name;
    struct strbuf why = STRBUF_INIT;

    sb_reset(err);
    if (spec == NULL || (type = split_spec(spec, &name, err)) == NULL) {
        if (spec == NULL)
            sb_puts(err, "no map given");
        return -1;
    }
    if (type->compile == NULL) {
        sb_printf(err, "%s: type %s has no file to compile; only hash: and btree: are compiled",
                  spec, type->name);
        return -1;
    }
    if (*name == '\0') {
        sb_printf(err, "%s: missing file name, e.g. %s:/etc/postern/virtual", spec, type->name);
        return -1;
    }
    if (type->compile(name, warnings, &why) < 0) {
        sb_puts(err, sb_str(&why));
        sb_free(&why);
        return -1;
    }
    sb_free(&why);
    return 0;
}

/*
 * Source text format.
 */

struct text_reader {
    FILE   *fp;
    const char *path;
    int     lineno;                     /* of the physical line just read */
};

enum { LINE_EOF = 0, LINE_OK = 1, LINE_TOO_LONG = -1, LINE_NUL = -2, LINE_IOERR = -3 };

/* read_line - one physical line without its newline, bounded */
static int read_line(struct text_reader *rd, struct strbuf *line)
{
    int     ch;
    int     status = LINE_OK;
    bool    any = false;

    sb_reset(line);
    while ((ch = getc(rd->fp)) != EOF) {
        any = true;
        if (ch == '\n')
            break;
        /* Keep reading to the newline, so the error names the right line. */
        if (status != LINE_OK)
            continue;
        if (ch == '\0')
            status = LINE_NUL;
        else if (sb_len(line) >= MAP_LINE_MAX)
            status = LINE_TOO_LONG;
        else
            sb_putc(line, ch);
    }
    if (ferror(rd->fp))
        return LINE_IOERR;
    if (!any)
        return LINE_EOF;
    rd->lineno++;
    return status;
}

/* trim - the [start, end) span of text without surrounding white space */
static void trim(const char **start, const char **end)
{
    while (*start < *end && isspace((unsigned char) **start))
        (*start)++;
    while (*end > *start && isspace((unsigned char) (*end)[-1]))
        (*end)--;
}

/* finish_entry - split a logical line into key and value and store it */
static int finish_entry(struct text_reader *rd, int lineno, struct strbuf *logical,
                        map_store_fn store, void *arg, struct strbuf *warnings,
                        struct strbuf *err)
{
    char   *text = logical->data;
    char   *key_end = text;
    const char *val = NULL, *val_end;
    struct strbuf why = STRBUF_INIT;
    int     ret;

    while (*key_end && !isspace((unsigned char) *key_end))
        key_end++;
    if (*key_end) {
        val = key_end;
        val_end = text + sb_len(logical);
        trim(&val, &val_end);
        *(char *) val_end = '\0';
    }
    if (val == NULL || *val == '\0') {
        sb_printf(err, "%s:%d: expected format: key whitespace value", rd->path, lineno);
        return -1;
    }
    *key_end = '\0';
    for (char *cp = text; cp < key_end; cp++)
        *cp = (char) tolower((unsigned char) *cp);
    ret = store(arg, text, val, &why);
    if (ret < 0) {
        sb_printf(err, "%s:%d: %s", rd->path, lineno, sb_str(&why));
    } else if (ret == 1 && warnings != NULL) {
        sb_printf(warnings, "%s:%d: duplicate entry: %s; the first one is used\n",
                  rd->path, lineno, text);
    }
    sb_free(&why);
    return ret < 0 ? -1 : 0;
}

/* map_parse_text - read the whole source, entry by entry */
int map_parse_text(int fd, const char *path, map_store_fn store, void *arg,
                   struct strbuf *warnings, struct strbuf *err)
{
    struct text_reader rd;
    struct strbuf line = STRBUF_INIT;
    struct strbuf logical = STRBUF_INIT;
    int     entry_line = 0;             /* first line of the pending entry, 0: none */
    int     dupfd, st, ret = -1;
    const char *start, *end;

    if ((dupfd = dup(fd)) < 0 || (rd.fp = fdopen(dupfd, "r")) == NULL) {
        sb_printf(err, "%s: read: %s", path, strerror(errno));
        if (dupfd >= 0)
            close(dupfd);
        return -1;
    }
    rd.path = path;
    rd.lineno = 0;
    for (;;) {
        st = read_line(&rd, &line);
        if (st == LINE_IOERR) {
            sb_printf(err, "%s:%d: read error: %s", path, rd.lineno + 1, strerror(errno));
            goto out;
        }
        if (st == LINE_TOO_LONG) {
            sb_printf(err, "%s:%d: line longer than %d bytes", path, rd.lineno, MAP_LINE_MAX);
            goto out;
        }
        if (st == LINE_NUL) {
            sb_printf(err, "%s:%d: NUL byte in line; is this a text file?", path, rd.lineno);
            goto out;
        }
        if (st == LINE_EOF)
            break;
        start = line.data;
        end = start + sb_len(&line);
        trim(&start, &end);
        /* Comments and empty lines neither start nor end an entry. */
        if (start == end || *start == '#')
            continue;
        if (isspace((unsigned char) line.data[0])) {
            if (entry_line == 0) {
                sb_printf(err, "%s:%d: continuation line without an entry before it; "
                          "remove the leading white space", path, rd.lineno);
                goto out;
            }
            if (sb_len(&logical) + 1 + (size_t) (end - start) > MAP_LINE_MAX) {
                sb_printf(err, "%s:%d: entry longer than %d bytes", path, entry_line,
                          MAP_LINE_MAX);
                goto out;
            }
            sb_putc(&logical, ' ');
            sb_append(&logical, start, (size_t) (end - start));
            continue;
        }
        if (entry_line && finish_entry(&rd, entry_line, &logical, store, arg, warnings, err) < 0)
            goto out;
        sb_reset(&logical);
        sb_append(&logical, start, (size_t) (end - start));
        entry_line = rd.lineno;
    }
    if (entry_line && finish_entry(&rd, entry_line, &logical, store, arg, warnings, err) < 0)
        goto out;
    ret = 0;
out:
    fclose(rd.fp);
    sb_free(&line);
    sb_free(&logical);
    return ret;
}

/* same_file - the identity a map remembers: inode, and size/mtime for in-place edits */
static bool same_file(const struct stat *a, const struct stat *b)
{
    return a->st_dev == b->st_dev && a->st_ino == b->st_ino
        && a->st_size == b->st_size
        && a->st_mtim.tv_sec == b->st_mtim.tv_sec
        && a->st_mtim.tv_nsec == b->st_mtim.tv_nsec;
}

/* map_file_check - compare the open file and the path */
int map_file_check(int fd, const char *path, const struct stat *opened)
{
    struct stat fst, pst;
    bool    unlinked;

    /*
     * Renaming a new file into place unlinks the old one, which an open
     * descriptor sees as st_nlink == 0 even from inside a chroot where the
     * path itself is out of reach.
     */
    unlinked = fstat(fd, &fst) == 0 && fst.st_nlink == 0;
    if (stat(path, &pst) == 0)
        return same_file(&pst, opened) ? 0 : 1;
    if (unlinked)
        return -1;
    /* Out of reach (chroot), but edited in place: the descriptor sees that too. */
    if (fstat(fd, &fst) == 0 && !same_file(&fst, opened))
        return -1;
    return 0;
}

int map_source_open(const char *path, int *fdp, struct stat *stp, struct strbuf *err)
{
    int     fd = open(path, O_RDONLY | O_CLOEXEC);

    if (fd < 0) {
        sb_printf(err, "open %s: %s", path, strerror(errno));
        return -1;
    }
    if (fstat(fd, stp) < 0 || !S_ISREG(stp->st_mode)) {
        sb_printf(err, "%s: not a regular file", path);
        close(fd);
        return -1;
    }
    *fdp = fd;
    return 0;
}

int map_source_reload_due(const struct map_source *src)
{
    struct stat st;

    switch (map_file_check(src->fd, src->path, &src->st)) {
    case 0:
        return 0;
    case -1:
        return -1;
    }
    if (src->have_bad && stat(src->path, &st) == 0 && same_file(&st, &src->bad))
        return -1;
    return 1;
}

void map_source_reload_failed(struct map_source *src, const char *type, const struct strbuf *err)
{
    msg_warn("%s:%s: keeping the old table: %s", type, src->path, sb_str(err));
    src->have_bad = stat(src->path, &src->bad) == 0;
}

void map_source_reloaded(struct map_source *src, int fd, const struct stat *st)
{
    close(src->fd);
    src->fd = fd;
    src->st = *st;
    src->have_bad = false;
}

void map_source_close(struct map_source *src)
{
    close(src->fd);
    src->fd = -1;
    free(src->path);
    src->path = NULL;
}

/* map_token - next list item; braces group separators */
int map_token(const char **cp, struct strbuf *tok, struct strbuf *err)
{
    const char *p = *cp;
    const char *start;
    int     depth = 0;

    sb_reset(tok);
    while (*p && (*p == ',' || isspace((unsigned char) *p)))
        p++;
    if (*p == '\0') {
        *cp = p;
        return 0;
    }
    start = p;
    for (; *p; p++) {
        if (*p == '{') {
            depth++;
        } else if (*p == '}') {
            if (--depth < 0) {
                sb_printf(err, "'%s': '}' without '{'", start);
                return -1;
            }
        } else if (depth == 0 && (*p == ',' || isspace((unsigned char) *p))) {
            break;
        }
    }
    if (depth > 0) {
        sb_printf(err, "'%s': missing '}'", start);
        return -1;
    }
    sb_append(tok, start, (size_t) (p - start));
    *cp = p;
    return 1;
}

/* map_unbrace - strip one "{ ... }" group */
int map_unbrace(const char *text, struct strbuf *out, struct strbuf *err)
{
    const char *start = text, *end = text + strlen(text);
    int     depth = 0;

    sb_reset(out);
    trim(&start, &end);
    if (start == end || *start != '{') {
        sb_printf(err, "'%s': expected '{'", text);
        return -1;
    }
    for (const char *p = start; p < end; p++) {
        if (*p == '{') {
            depth++;
        } else if (*p == '}' && --depth == 0) {
            if (p + 1 != end) {
                sb_printf(err, "'%s': text after '}'", text);
                return -1;
            }
            start++;
            end = p;
            trim(&start, &end);
            sb_append(out, start, (size_t) (end - start));
            return 0;
        }
    }
    sb_printf(err, "'%s': missing '}'", text);
    return -1;
}
