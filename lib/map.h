/*
 * map - lookup tables behind one small interface, as Postfix's "type:name".
 *
 *   hash:/path     Berkeley DB hash file /path.db, compiled by map_compile()
 *   btree:/path    Berkeley DB btree file /path.db
 *   texthash:/path the text file itself, read into memory
 *   static:VALUE   every key gives VALUE
 *   inline:{ key=value, { key = value with, commas } }
 *   pgsql:/path.cf PostgreSQL query (map_pgsql.c, Postfix's pgsql_table(5))
 *   regexp:/path   /pattern/flags result lines (map_regexp.c, Postfix's regexp_table(5))
 *
 * Keys are case-insensitive: they are folded to lower case when compiled and
 * when looked up, as Postfix does (not for regexp:, whose flags decide).
 * File-backed maps notice when their file is replaced (postctl map renames a
 * new file into place) and reopen it at the next lookup; where the new file cannot be reached (the daemon is chrooted
 * away from it), map_changed() says so and the daemon retires so that master
 * starts a fresh one. Each type lives in its own file (map_bdb.c,
 * map_texthash.c, map_static.c, map_inline.c) behind struct map_type.
 */
#ifndef POSTERN_MAP_H
#define POSTERN_MAP_H

#include <stdbool.h>
#include <sys/stat.h>
#include "strbuf.h"

enum map_status {
    MAP_FOUND = 0,
    MAP_NOTFOUND = 1,
    MAP_TEMPFAIL = -1,                  /* try again later: 4xx/defer, never 5xx/bounce */
};

struct map;

/* map_open - "type:name"; NULL with a message in err (unknown type, missing file, ...) */
struct map *map_open(const char *spec, struct strbuf *err);
/* map_lookup - value into *value on MAP_FOUND; on MAP_TEMPFAIL a reason in *value */
enum map_status map_lookup(struct map *map, const char *key, struct strbuf *value);
/* map_changed - the file behind the map was replaced and could not be reopened */
bool map_changed(struct map *map);
const char *map_spec(const struct map *map);
void map_close(struct map *map);

/* A list as main.cf writes it: "hash:/a, hash:/b" (commas and/or spaces). First match wins. */
struct maplist;
struct maplist *maplist_open(const char *value, struct strbuf *err);   /* "" gives an empty list */
enum map_status maplist_lookup(struct maplist *list, const char *key, struct strbuf *value);
bool maplist_changed(struct maplist *list);
/*
 * maplist_refresh - look at the files now rather than at the next interval:
 * before a permanent verdict (a bounce) on what a table does not contain.
 * Maps that can be reopened are; true if one changed beyond reach.
 */
bool maplist_refresh(struct maplist *list);
bool maplist_empty(const struct maplist *list);
/*
 * maplist_foreach_value - fn(arg, spec, value, line) for every value of the
 * maps that can list theirs (regexp:), to check at start what a table may
 * answer; stops at and returns fn's first nonzero result.
 */
int  maplist_foreach_value(struct maplist *list,
                           int (*fn)(void *arg, const char *spec, const char *value, int line),
                           void *arg);
void maplist_close(struct maplist *list);

/*
 * map_compile - like postmap: read the text file NAME of spec "hash:NAME" or
 * "btree:NAME" and atomically replace NAME.db (temporary file, fsync, rename),
 * with the source file's owner and mode. Duplicate keys keep the first entry
 * and are reported in warnings as "NAME:LINE: ..."; -1 with err on failure.
 */
int map_compile(const char *spec, struct strbuf *warnings, struct strbuf *err);

/* The interface each map type implements (one file per type). */
struct map_type {
    const char *name;                   /* "hash", "btree", ... */
    void   *(*open)(const char *name, struct strbuf *err);
    enum map_status (*lookup)(void *handle, const char *key, struct strbuf *value);
    bool    (*changed)(void *handle);   /* may reopen in place; true only if it could not */
    void    (*close)(void *handle);
    int     (*compile)(const char *name, struct strbuf *warnings, struct strbuf *err); /* NULL: not compilable */
    bool    keep_case;                  /* keys are passed as given, not folded (regexp:) */
    /* foreach_value - fn(arg, value, line) for every value the table holds; NULL: cannot list */
    int     (*foreach_value)(void *handle, int (*fn)(void *arg, const char *value, int line),
                             void *arg);
};

/*
 * Shared by the map_*.c implementations (and their tests); not for daemons.
 */
#define MAP_LINE_MAX 65536              /* longest logical source line, key or value */

extern const struct map_type map_type_hash, map_type_btree, map_type_texthash,
    map_type_static, map_type_inline, map_type_pgsql, map_type_regexp;

/* map_set_check_interval_ms - how often a map looks for a replaced file (default 1000) */
void map_set_check_interval_ms(long ms);

/*
 * map_parse_text - read a "key value" source file (comments, continuation
 * lines), fold keys to lower case and hand each entry to store(), which
 * returns 0 (stored), 1 (duplicate: warned about, first kept) or -1 (err set).
 * Returns -1 with "path:line: ..." in err on the first syntax error.
 */
typedef int (*map_store_fn)(void *arg, const char *key, const char *value, struct strbuf *err);
int map_parse_text(int fd, const char *path, map_store_fn store, void *arg,
                   struct strbuf *warnings, struct strbuf *err);

/*
 * map_file_check - has the file opened as fd (identity saved in *opened) been
 * replaced? 0: no; 1: the path names a different file now (reopen it);
 * -1: the old file was unlinked and the path cannot be reached (keep the old data).
 */
int map_file_check(int fd, const char *path, const struct stat *opened);

/*
 * A table read whole from one text file (texthash:, regexp:) and read again
 * when the file changes. A replacement that does not load leaves the old
 * table in service and is warned about once, not at every check:
 *
 *   switch (map_source_reload_due(&src)) { 0: unchanged; -1: report "changed" }
 *   load src.path into a new table -> on failure map_source_reload_failed(), report "changed"
 *   map_source_reloaded(&src, fd, &st) and swap the tables
 */
struct map_source {
    char   *path;
    int     fd;                         /* the file the table was read from */
    struct stat st;
    struct stat bad;                    /* a replacement that failed to load */
    bool    have_bad;
};
/* map_source_open - open path, which must be a regular file; its fd and identity; -1 with err */
int  map_source_open(const char *path, int *fdp, struct stat *stp, struct strbuf *err);
/* map_source_reload_due - 1: read the file again now; 0: unchanged; -1: out of reach, or the broken file seen before */
int  map_source_reload_due(const struct map_source *src);
/* map_source_reload_failed - warn "TYPE:PATH: keeping the old table: ERR" and remember this version */
void map_source_reload_failed(struct map_source *src, const char *type, const struct strbuf *err);
/* map_source_reloaded - the new version (fd, st) is in service; the old descriptor is closed */
void map_source_reloaded(struct map_source *src, int fd, const struct stat *st);
/* map_source_close - the descriptor and the path go */
void map_source_close(struct map_source *src);

/*
 * map_token - next item of a comma/whitespace separated list, where "{...}"
 * (nested) groups may hold separators: 1 with the item in tok, 0 at the end,
 * -1 with err on unbalanced braces. *cp advances.
 */
int map_token(const char **cp, struct strbuf *tok, struct strbuf *err);
/* map_unbrace - "{ text }" -> "text" (trimmed); -1 with err if not exactly one group */
int map_unbrace(const char *text, struct strbuf *out, struct strbuf *err);

#endif
