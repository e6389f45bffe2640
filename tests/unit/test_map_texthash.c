/*
 * test_map_texthash - lib/map_texthash.c: reading the text file into memory,
 * errors with file:line, duplicate warnings, a large table (the hash table
 * grows), and rereading a replaced file or keeping the old table when the
 * replacement is broken or out of reach.
 */
#include <fcntl.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "log.h"
#include "map.h"
#include "strbuf.h"

static char tmpdir[64];
static char src[128];
static char spec[160];
static char logpath[128];

static int setup(void **state)
{
    (void) state;
    snprintf(tmpdir, sizeof(tmpdir), "/tmp/test_map_texthash.XXXXXX");
    if (mkdtemp(tmpdir) == NULL)
        return -1;
    snprintf(src, sizeof(src), "%s/table", tmpdir);
    snprintf(spec, sizeof(spec), "texthash:%s", src);
    snprintf(logpath, sizeof(logpath), "%s/log", tmpdir);
    log_to_stderr(0);
    map_set_check_interval_ms(0);
    return log_open_file(logpath);
}

static int teardown(void **state)
{
    char    path[160];

    (void) state;
    unlink(src);
    unlink(logpath);
    snprintf(path, sizeof(path), "%s/new", tmpdir);
    unlink(path);
    rmdir(tmpdir);
    return 0;
}

static void write_file(const char *path, const char *text)
{
    FILE   *fp = fopen(path, "w");

    assert_non_null(fp);
    fputs(text, fp);
    assert_int_equal(fclose(fp), 0);
}

/* replace - a new file renamed over src, as an editor or a script does */
static void replace(const char *text)
{
    char    path[160];

    snprintf(path, sizeof(path), "%s/new", tmpdir);
    write_file(path, text);
    assert_int_equal(rename(path, src), 0);
}

static void expect(struct map *map, const char *key, enum map_status want, const char *value)
{
    struct strbuf v = STRBUF_INIT;

    assert_int_equal(map_lookup(map, key, &v), want);
    assert_string_equal(sb_str(&v), value);
    sb_free(&v);
}

/* log_contains - the log file mentions text */
static bool log_contains(const char *text)
{
    struct strbuf sb = STRBUF_INIT;
    char    buf[4096];
    ssize_t n;
    int     fd = open(logpath, O_RDONLY);
    bool    found;

    assert_true(fd >= 0);
    while ((n = read(fd, buf, sizeof(buf))) > 0)
        sb_append(&sb, buf, (size_t) n);
    close(fd);
    found = strstr(sb_str(&sb), text) != NULL;
    sb_free(&sb);
    return found;
}

static void test_load_lookup(void **state)
{
    struct strbuf err = STRBUF_INIT, want = STRBUF_INIT;
    struct map *map;

    (void) state;
    write_file(src, "# comment\nFoo@Example.com  bar baz \ncont a\n  b\nfoo@example.com dup\n");
    map = map_open(spec, &err);
    if (map == NULL)
        fail_msg("%s", sb_str(&err));
    expect(map, "foo@example.com", MAP_FOUND, "bar baz");
    expect(map, "FOO@EXAMPLE.COM", MAP_FOUND, "bar baz");
    expect(map, "cont", MAP_FOUND, "a b");
    expect(map, "b", MAP_NOTFOUND, "");
    expect(map, "", MAP_NOTFOUND, "");
    assert_false(map_changed(map));
    sb_printf(&want, "%s:5: duplicate entry: foo@example.com", src);
    assert_true(log_contains(sb_str(&want)));
    map_close(map);
    sb_free(&err);
    sb_free(&want);
}

static void test_errors(void **state)
{
    struct strbuf err = STRBUF_INIT, want = STRBUF_INIT;

    (void) state;
    assert_null(map_open(spec, &err));
    sb_printf(&want, "%s: open %s: No such file or directory", spec, src);
    assert_string_equal(sb_str(&err), sb_str(&want));
    write_file(src, "a b\n\nnovalue\n");
    assert_null(map_open(spec, &err));
    sb_reset(&want);
    sb_printf(&want, "%s:3: expected format: key whitespace value", src);
    assert_non_null(strstr(sb_str(&err), sb_str(&want)));
    assert_null(map_open("texthash:/tmp", &err));
    assert_non_null(strstr(sb_str(&err), "not a regular file"));
    sb_free(&err);
    sb_free(&want);
}

static void test_large(void **state)
{
    struct strbuf text = STRBUF_INIT, err = STRBUF_INIT, k = STRBUF_INIT, v = STRBUF_INIT;
    struct map *map;

    (void) state;
    for (int i = 0; i < 3000; i++)
        sb_printf(&text, "key%d value%d\n", i, i);
    write_file(src, sb_str(&text));
    map = map_open(spec, &err);
    assert_non_null(map);
    for (int i = 0; i < 3000; i++) {
        sb_reset(&k);
        sb_reset(&v);
        sb_printf(&k, "KEY%d", i);
        sb_printf(&v, "value%d", i);
        expect(map, sb_str(&k), MAP_FOUND, sb_str(&v));
    }
    expect(map, "key3000", MAP_NOTFOUND, "");
    map_close(map);
    sb_free(&text);
    sb_free(&err);
    sb_free(&k);
    sb_free(&v);
}

static void test_replace(void **state)
{
    struct strbuf err = STRBUF_INIT;
    struct map *map;

    (void) state;
    write_file(src, "k old\n");
    map = map_open(spec, &err);
    assert_non_null(map);
    replace("k new\nj added\n");
    expect(map, "k", MAP_FOUND, "new");
    expect(map, "j", MAP_FOUND, "added");
    assert_false(map_changed(map));

    /* A broken replacement: the old table stays, and the map says it changed. */
    replace("k newer\nbroken\n");
    expect(map, "k", MAP_FOUND, "new");
    assert_true(map_changed(map));
    assert_true(log_contains("keeping the old table"));
    /* Fixed: read again. */
    replace("k fixed\n");
    expect(map, "k", MAP_FOUND, "fixed");
    assert_false(map_changed(map));

    /* Replaced and then out of reach (as from a chroot). */
    replace("k unseen\n");
    assert_int_equal(unlink(src), 0);
    assert_true(map_changed(map));
    expect(map, "k", MAP_FOUND, "fixed");
    map_close(map);

    /* With the default interval, a replacement is not seen at once. */
    map_set_check_interval_ms(1000);
    write_file(src, "k one\n");
    map = map_open(spec, &err);
    assert_non_null(map);
    replace("k two\n");
    expect(map, "k", MAP_FOUND, "one");
    assert_false(map_changed(map));
    map_close(map);
    sb_free(&err);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_load_lookup, setup, teardown),
        cmocka_unit_test_setup_teardown(test_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_large, setup, teardown),
        cmocka_unit_test_setup_teardown(test_replace, setup, teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
