/*
 * test_map_bdb - lib/map_bdb.c: compiling text into hash/btree files, the
 * source format, lookups (case, NUL conventions), atomic replacement with the
 * source's owner and mode, and noticing a replaced file while open.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>

#include <db.h>

#include "map.h"
#include "strbuf.h"

static char tmpdir[64];
static char src[128];                   /* tmpdir/table */
static char dbfile[128];                /* tmpdir/table.db */
static char spec[160];                  /* hash:tmpdir/table */

/* setup - fresh temp dir per test, default check interval */
static int setup(void **state)
{
    (void) state;
    snprintf(tmpdir, sizeof(tmpdir), "/tmp/test_map_bdb.XXXXXX");
    if (mkdtemp(tmpdir) == NULL)
        return -1;
    snprintf(src, sizeof(src), "%s/table", tmpdir);
    snprintf(dbfile, sizeof(dbfile), "%s/table.db", tmpdir);
    snprintf(spec, sizeof(spec), "hash:%s", src);
    map_set_check_interval_ms(1000);
    return 0;
}

/* teardown - remove everything in the temp dir */
static int teardown(void **state)
{
    DIR    *d = opendir(tmpdir);
    struct dirent *e;
    char    path[512];

    (void) state;
    while (d && (e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        snprintf(path, sizeof(path), "%s/%s", tmpdir, e->d_name);
        unlink(path);
    }
    if (d)
        closedir(d);
    rmdir(tmpdir);
    return 0;
}

/* write_file - replace path's content (by rewriting it in place) */
static void write_file(const char *path, const char *text)
{
    FILE   *fp = fopen(path, "w");

    assert_non_null(fp);
    fputs(text, fp);
    assert_int_equal(fclose(fp), 0);
}

/* count_files - entries in tmpdir, to see no temporary file is left behind */
static int count_files(void)
{
    DIR    *d = opendir(tmpdir);
    struct dirent *e;
    int     n = 0;

    while ((e = readdir(d)) != NULL)
        if (e->d_name[0] != '.')
            n++;
    closedir(d);
    return n;
}

/* compile_ok - compile text into spec, no warnings expected */
static void compile_ok(const char *text)
{
    struct strbuf warnings = STRBUF_INIT, err = STRBUF_INIT;

    write_file(src, text);
    assert_int_equal(map_compile(spec, &warnings, &err), 0);
    assert_string_equal(sb_str(&warnings), "");
    sb_free(&warnings);
    sb_free(&err);
}

/* expect - lookup result */
static void expect(struct map *map, const char *key, enum map_status want, const char *value)
{
    struct strbuf v = STRBUF_INIT;

    assert_int_equal(map_lookup(map, key, &v), want);
    if (value)
        assert_string_equal(sb_str(&v), value);
    sb_free(&v);
}

static void test_compile_lookup(void **state)
{
    struct strbuf err = STRBUF_INIT;
    struct map *map;

    (void) state;
    compile_ok("# a comment\n"
               "\n"
               "User@Example.COM   local part with spaces  \n"
               "   # indented comment\n"
               "alias first,\n"
               "  second,\n"
               "\tthird\n"
               "crlf value\r\n"
               "example.org OK\n"
               "last no-newline");
    map = map_open(spec, &err);
    assert_non_null(map);
    assert_string_equal(map_spec(map), spec);
    expect(map, "user@example.com", MAP_FOUND, "local part with spaces");
    expect(map, "USER@EXAMPLE.COM", MAP_FOUND, "local part with spaces");
    expect(map, "alias", MAP_FOUND, "first, second, third");
    expect(map, "crlf", MAP_FOUND, "value");
    expect(map, "EXAMPLE.ORG", MAP_FOUND, "OK");
    expect(map, "last", MAP_FOUND, "no-newline");
    expect(map, "#", MAP_NOTFOUND, "");
    expect(map, "missing", MAP_NOTFOUND, "");
    expect(map, "", MAP_NOTFOUND, "");
    expect(map, "example", MAP_NOTFOUND, "");
    assert_false(map_changed(map));
    map_close(map);
    assert_int_equal(count_files(), 2);
    sb_free(&err);
}

/* raw_get - read the compiled file directly, to check the NUL convention */
static int raw_get(const char *path, DBTYPE type, const void *key, size_t klen, DBT *val)
{
    DB     *db;
    DBT     k;
    int     ret;

    assert_int_equal(db_create(&db, NULL, 0), 0);
    assert_int_equal(db->open(db, NULL, path, NULL, type, DB_RDONLY, 0), 0);
    memset(&k, 0, sizeof(k));
    memset(val, 0, sizeof(*val));
    k.data = (void *) key;
    k.size = (u_int32_t) klen;
    val->flags = DB_DBT_MALLOC;
    ret = db->get(db, NULL, &k, val, 0);
    db->close(db, 0);
    return ret;
}

static void test_nul_convention(void **state)
{
    struct strbuf err = STRBUF_INIT;
    struct map *map;
    DBT     val;
    DB     *db;
    DBT     k, v;

    (void) state;
    compile_ok("key value\n");
    /* As postmap writes: key and value include their NUL. */
    assert_int_equal(raw_get(dbfile, DB_HASH, "key", 4, &val), 0);
    assert_int_equal(val.size, 6);
    assert_memory_equal(val.data, "value", 6);
    free(val.data);
    assert_int_equal(raw_get(dbfile, DB_HASH, "key", 3, &val), DB_NOTFOUND);

    /* A file written without NULs (postmap -N style) reads as well. */
    unlink(dbfile);
    assert_int_equal(db_create(&db, NULL, 0), 0);
    assert_int_equal(db->open(db, NULL, dbfile, NULL, DB_HASH, DB_CREATE, 0644), 0);
    memset(&k, 0, sizeof(k));
    memset(&v, 0, sizeof(v));
    k.data = "nonul";
    k.size = 5;
    v.data = "plain";
    v.size = 5;
    assert_int_equal(db->put(db, NULL, &k, &v, 0), 0);
    db->close(db, 0);
    map = map_open(spec, &err);
    assert_non_null(map);
    expect(map, "NoNul", MAP_FOUND, "plain");
    expect(map, "nonu", MAP_NOTFOUND, "");
    map_close(map);
    sb_free(&err);
}

static void test_duplicate(void **state)
{
    struct strbuf warnings = STRBUF_INIT, err = STRBUF_INIT;
    struct strbuf want = STRBUF_INIT;
    struct map *map;

    (void) state;
    write_file(src, "a first\nb x\nA second\n");
    assert_int_equal(map_compile(spec, &warnings, &err), 0);
    sb_printf(&want, "%s:3: duplicate entry: a", src);
    assert_non_null(strstr(sb_str(&warnings), sb_str(&want)));
    map = map_open(spec, &err);
    assert_non_null(map);
    expect(map, "a", MAP_FOUND, "first");
    map_close(map);
    sb_free(&warnings);
    sb_free(&err);
    sb_free(&want);
}

/* compile_fails - compile text, expect an error containing what */
static void compile_fails(const char *text, const char *what)
{
    struct strbuf warnings = STRBUF_INIT, err = STRBUF_INIT;

    write_file(src, text);
    assert_int_equal(map_compile(spec, &warnings, &err), -1);
    if (strstr(sb_str(&err), what) == NULL)
        fail_msg("error '%s' does not contain '%s'", sb_str(&err), what);
    sb_free(&warnings);
    sb_free(&err);
}

static void test_syntax_error_keeps_old(void **state)
{
    struct strbuf err = STRBUF_INIT, want = STRBUF_INIT;
    struct stat before, after;
    struct map *map;
    char   *big;

    (void) state;
    compile_ok("key old\n");
    assert_int_equal(stat(dbfile, &before), 0);

    sb_printf(&want, "%s:3: expected format: key whitespace value", src);
    compile_fails("key new\n# c\nlonely\nother x\n", sb_str(&want));
    sb_reset(&want);
    sb_printf(&want, "%s:2: continuation line without an entry", src);
    compile_fails("# only a comment\n  indented\n", sb_str(&want));
    sb_reset(&want);
    sb_printf(&want, "%s:1: expected format", src);
    compile_fails("key   \t\nfoo bar\n", sb_str(&want));
    sb_reset(&want);
    sb_printf(&want, "%s:2: NUL byte", src);
    {
        FILE   *fp = fopen(src, "w");

        fwrite("a b\nc d\0e\n", 1, 10, fp);
        fclose(fp);
        assert_int_equal(map_compile(spec, NULL, &err), -1);
        assert_non_null(strstr(sb_str(&err), sb_str(&want)));
    }
    big = malloc(MAP_LINE_MAX + 100);
    memset(big, 'x', MAP_LINE_MAX + 99);
    big[MAP_LINE_MAX + 99] = '\0';
    big[3] = ' ';
    sb_reset(&want);
    sb_printf(&want, "%s:2: line longer than", src);
    {
        struct strbuf text = STRBUF_INIT;

        sb_printf(&text, "a b\n%s\nc d\n", big);
        compile_fails(sb_str(&text), sb_str(&want));
        /* Continuations are bounded too. */
        sb_reset(&text);
        sb_puts(&text, "a b\n");
        for (int i = 0; i < 3; i++)
            sb_printf(&text, " %.*s\n", MAP_LINE_MAX / 2, big + 10);
        sb_reset(&want);
        sb_printf(&want, "%s:1: entry longer than", src);
        compile_fails(sb_str(&text), sb_str(&want));
        sb_free(&text);
    }
    free(big);

    /* The old file is untouched and no temporary file is left. */
    assert_int_equal(stat(dbfile, &after), 0);
    assert_int_equal(before.st_ino, after.st_ino);
    assert_int_equal(before.st_mtim.tv_nsec, after.st_mtim.tv_nsec);
    assert_int_equal(count_files(), 2);
    map = map_open(spec, &err);
    assert_non_null(map);
    expect(map, "key", MAP_FOUND, "old");
    map_close(map);
    sb_free(&err);
    sb_free(&want);
}

static void test_compile_errors(void **state)
{
    struct strbuf err = STRBUF_INIT;

    (void) state;
    /* Missing source. */
    assert_int_equal(map_compile(spec, NULL, &err), -1);
    assert_non_null(strstr(sb_str(&err), "No such file or directory"));
    assert_non_null(strstr(sb_str(&err), src));
    /* A directory is not a table. */
    snprintf(spec, sizeof(spec), "hash:%s", tmpdir);
    assert_int_equal(map_compile(spec, NULL, &err), -1);
    assert_non_null(strstr(sb_str(&err), "not a regular file"));
    assert_int_equal(map_compile("hash:", NULL, &err), -1);
    assert_non_null(strstr(sb_str(&err), "missing file name"));
    assert_int_equal(map_compile("nosuch:/x", NULL, &err), -1);
    assert_non_null(strstr(sb_str(&err), "unknown map type"));
    assert_int_equal(map_compile("static:x", NULL, &err), -1);
    assert_non_null(strstr(sb_str(&err), "only hash: and btree:"));
    sb_free(&err);
}

static void test_empty_source(void **state)
{
    struct strbuf err = STRBUF_INIT;
    struct map *map;

    (void) state;
    compile_ok("# nothing yet\n");
    map = map_open(spec, &err);
    assert_non_null(map);
    expect(map, "anything", MAP_NOTFOUND, "");
    map_close(map);
    sb_free(&err);
}

static void test_missing_db(void **state)
{
    struct strbuf err = STRBUF_INIT, want = STRBUF_INIT;

    (void) state;
    assert_null(map_open(spec, &err));
    sb_printf(&want, "%s: open %s: No such file or directory; run postctl map %s",
              spec, dbfile, src);
    assert_string_equal(sb_str(&err), sb_str(&want));
    snprintf(spec, sizeof(spec), "btree:%s", src);
    assert_null(map_open(spec, &err));
    assert_non_null(strstr(sb_str(&err), "run postctl map btree:"));
    sb_free(&err);
    sb_free(&want);
}

static void test_btree(void **state)
{
    struct strbuf err = STRBUF_INIT;
    struct map *map;
    DBT     val;

    (void) state;
    snprintf(spec, sizeof(spec), "btree:%s", src);
    compile_ok("b 2\na 1\nC three  \n");
    map = map_open(spec, &err);
    assert_non_null(map);
    expect(map, "A", MAP_FOUND, "1");
    expect(map, "b", MAP_FOUND, "2");
    expect(map, "c", MAP_FOUND, "three");
    expect(map, "d", MAP_NOTFOUND, "");
    map_close(map);
    assert_int_equal(raw_get(dbfile, DB_BTREE, "a", 2, &val), 0);
    free(val.data);
    /* The wrong type is an error, not garbage. */
    snprintf(spec, sizeof(spec), "hash:%s", src);
    assert_null(map_open(spec, &err));
    assert_non_null(strstr(sb_str(&err), dbfile));
    sb_free(&err);
}

static void test_owner_mode(void **state)
{
    struct stat st;

    (void) state;
    write_file(src, "k v\n");
    assert_int_equal(chmod(src, 0640), 0);
    if (geteuid() == 0)
        assert_int_equal(chown(src, 4321, 8765), 0);
    compile_ok("k v\n");
    assert_int_equal(stat(dbfile, &st), 0);
    assert_int_equal(st.st_mode & 07777, 0640);
    if (geteuid() == 0) {
        assert_int_equal(st.st_uid, 4321);
        assert_int_equal(st.st_gid, 8765);
    }
    assert_int_equal(chmod(src, 0604), 0);
    compile_ok("k v\n");
    assert_int_equal(stat(dbfile, &st), 0);
    assert_int_equal(st.st_mode & 07777, 0604);
}

/* replace - compile a new source over the open map, the way postctl map does */
static void replace(const char *text)
{
    compile_ok(text);
}

static void test_replace_while_open(void **state)
{
    struct strbuf err = STRBUF_INIT;
    struct map *map;

    (void) state;
    map_set_check_interval_ms(200);
    compile_ok("key old\ngone x\n");
    map = map_open(spec, &err);
    assert_non_null(map);
    expect(map, "key", MAP_FOUND, "old");
    replace("key new\nadded y\n");
    /* Within the check interval the map does not even look. */
    expect(map, "key", MAP_FOUND, "old");
    usleep(250 * 1000);
    expect(map, "key", MAP_FOUND, "new");
    expect(map, "added", MAP_FOUND, "y");
    expect(map, "gone", MAP_NOTFOUND, "");
    assert_false(map_changed(map));

    /* And again, now checking at every lookup. */
    map_set_check_interval_ms(0);
    replace("key newer\n");
    expect(map, "key", MAP_FOUND, "newer");
    assert_false(map_changed(map));
    map_close(map);
    sb_free(&err);
}

static void test_replaced_unreachable(void **state)
{
    struct strbuf err = STRBUF_INIT;
    struct map *map;

    (void) state;
    map_set_check_interval_ms(0);
    compile_ok("key old\n");
    map = map_open(spec, &err);
    assert_non_null(map);
    assert_false(map_changed(map));
    /* A new file is renamed in, and then the path is gone (as from a chroot). */
    replace("key new\n");
    assert_int_equal(unlink(dbfile), 0);
    assert_true(map_changed(map));
    expect(map, "key", MAP_FOUND, "old");
    assert_true(map_changed(map));
    /* Once the path is back, the map picks it up. */
    replace("key newest\n");
    expect(map, "key", MAP_FOUND, "newest");
    assert_false(map_changed(map));

    /* A replacement that cannot be opened: keep the old data, say changed. */
    {
        char    junk[160];

        snprintf(junk, sizeof(junk), "%s/junk", tmpdir);
        write_file(junk, "not a berkeley db file at all, just text...........\n");
        assert_int_equal(rename(junk, dbfile), 0);
    }
    expect(map, "key", MAP_FOUND, "newest");
    assert_true(map_changed(map));
    map_close(map);

    /* Removed without a replacement: also changed. */
    replace("key v\n");
    map = map_open(spec, &err);
    assert_non_null(map);
    assert_int_equal(unlink(dbfile), 0);
    assert_true(map_changed(map));
    expect(map, "key", MAP_FOUND, "v");
    map_close(map);
    sb_free(&err);
}

static void test_many_entries(void **state)
{
    struct strbuf text = STRBUF_INIT, err = STRBUF_INIT, key = STRBUF_INIT;
    struct strbuf val = STRBUF_INIT;
    struct map *map;

    (void) state;
    for (int i = 0; i < 5000; i++)
        sb_printf(&text, "user%d@example.com  mailbox/%d/\n", i, i);
    compile_ok(sb_str(&text));
    map = map_open(spec, &err);
    assert_non_null(map);
    for (int i = 0; i < 5000; i += 97) {
        sb_reset(&key);
        sb_reset(&val);
        sb_printf(&key, "USER%d@example.com", i);
        sb_printf(&val, "mailbox/%d/", i);
        expect(map, sb_str(&key), MAP_FOUND, sb_str(&val));
    }
    map_close(map);
    sb_free(&text);
    sb_free(&err);
    sb_free(&key);
    sb_free(&val);
}

/* Readers in several processes while the file is replaced again and again: never a wrong answer. */
static void test_concurrent_replace(void **state)
{
    struct strbuf err = STRBUF_INIT, v = STRBUF_INIT, text = STRBUF_INIT;
    pid_t   readers[3];
    int     status;

    (void) state;
    map_set_check_interval_ms(0);
    compile_ok("key gen0\n");
    for (int r = 0; r < 3; r++) {
        if ((readers[r] = fork()) == 0) {
            struct map *map = map_open(spec, &err);
            int     bad = map == NULL;

            for (int i = 0; i < 20000 && !bad; i++) {
                if (map_lookup(map, "KEY", &v) != MAP_FOUND || sb_len(&v) < 3 || memcmp(v.data, "gen", 3) != 0)
                    bad = 1;
                if (map_changed(map))
                    bad = 1;
            }
            if (map)
                map_close(map);
            _exit(bad);
        }
        assert_true(readers[r] > 0);
    }
    for (int g = 1; g <= 50; g++) {
        sb_reset(&text);
        sb_printf(&text, "key gen%d\nother x\n", g);
        compile_ok(sb_str(&text));
    }
    for (int r = 0; r < 3; r++) {
        assert_int_equal(waitpid(readers[r], &status, 0), readers[r]);
        assert_true(WIFEXITED(status));
        assert_int_equal(WEXITSTATUS(status), 0);
    }
    sb_free(&err);
    sb_free(&v);
    sb_free(&text);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_compile_lookup, setup, teardown),
        cmocka_unit_test_setup_teardown(test_nul_convention, setup, teardown),
        cmocka_unit_test_setup_teardown(test_duplicate, setup, teardown),
        cmocka_unit_test_setup_teardown(test_syntax_error_keeps_old, setup, teardown),
        cmocka_unit_test_setup_teardown(test_compile_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_empty_source, setup, teardown),
        cmocka_unit_test_setup_teardown(test_missing_db, setup, teardown),
        cmocka_unit_test_setup_teardown(test_btree, setup, teardown),
        cmocka_unit_test_setup_teardown(test_owner_mode, setup, teardown),
        cmocka_unit_test_setup_teardown(test_replace_while_open, setup, teardown),
        cmocka_unit_test_setup_teardown(test_replaced_unreachable, setup, teardown),
        cmocka_unit_test_setup_teardown(test_many_entries, setup, teardown),
        cmocka_unit_test_setup_teardown(test_concurrent_replace, setup, teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
