/*
 * test_directory - lib/directory.c against real Berkeley DB tables and a
 * main.cf in a temp dir: each domain class from literal names and tables
 * mixed, case and trailing dot, overlaps, virtual_alias_domains defaulting to
 * the alias map's keys, mailbox and alias lookups with catch-alls and the
 * local "user" form, and alias expansion: one-to-many, recursive,
 * self-inclusion, loops, limits, duplicates, unqualified destinations, and a
 * failing table (temporary errors, never permanent ones).
 */
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <unistd.h>
#include <cmocka.h>

#include <db.h>

#include "config.h"
#include "directory.h"
#include "map.h"
#include "strbuf.h"
#include "strlist.h"

static char tmpdir[64];

/* path_in - tmpdir/name into sb */
static const char *path_in(struct strbuf *sb, const char *name)
{
    sb_reset(sb);
    sb_printf(sb, "%s/%s", tmpdir, name);
    return sb_str(sb);
}

/* write_file - tmpdir/name with text */
static void write_file(const char *name, const char *text)
{
    struct strbuf path = STRBUF_INIT;
    FILE   *fp = fopen(path_in(&path, name), "w");

    assert_non_null(fp);
    fputs(text, fp);
    assert_int_equal(fclose(fp), 0);
    sb_free(&path);
}

/* make_table - tmpdir/name from text, compiled as type:tmpdir/name */
static void make_table(const char *type, const char *name, const char *text)
{
    struct strbuf spec = STRBUF_INIT, warn = STRBUF_INIT, err = STRBUF_INIT;

    write_file(name, text);
    sb_printf(&spec, "%s:%s/%s", type, tmpdir, name);
    if (map_compile(sb_str(&spec), &warn, &err) < 0)
        fail_msg("map_compile %s: %s", sb_str(&spec), sb_str(&err));
    assert_string_equal(sb_str(&warn), "");
    sb_free(&spec);
    sb_free(&warn);
    sb_free(&err);
}

/*
 * write_main_cf - main.cf from text where "@D@" stands for the temp dir
 * (so the tables can be named by absolute path).
 */
static void write_main_cf(const char *text)
{
    struct strbuf out = STRBUF_INIT;
    const char *p = text, *hit;

    while ((hit = strstr(p, "@D@")) != NULL) {
        sb_append(&out, p, (size_t) (hit - p));
        sb_puts(&out, tmpdir);
        p = hit + 3;
    }
    sb_puts(&out, p);
    write_file("main.cf", sb_str(&out));
    sb_free(&out);
}

/* open_with - load main.cf text and open the directory; NULL with err */
static struct directory *open_with(const char *main_cf, struct config **cfgp, struct strbuf *err)
{
    struct config *cfg;

    write_main_cf(main_cf);
    if ((cfg = config_load(tmpdir, err)) == NULL)
        fail_msg("config_load: %s", sb_str(err));
    *cfgp = cfg;
    return directory_open(cfg, err);
}

static const char standard_cf[] =
    "myhostname = mx.example.test\n"
    "mydomain = example.test\n"
    "myorigin = origin.test\n"
    "mydestination = $myhostname, localhost, Both.Test\n"
    "virtual_alias_domains = AliasOnly.Test., hash:@D@/aliasdomains\n"
    "virtual_mailbox_domains = literal.example hash:@D@/domains, both.test\n"
    "relay_domains = relay.test,btree:@D@/relays\n"
    "virtual_mailbox_maps = hash:@D@/mailboxes\n"
    "virtual_alias_maps = hash:@D@/aliases\n";

/* setup - temp dir with the standard tables */
static int setup(void **state)
{
    (void) state;
    snprintf(tmpdir, sizeof(tmpdir), "/tmp/test_directory.XXXXXX");
    if (mkdtemp(tmpdir) == NULL)
        return -1;
    make_table("hash", "domains", "example.com OK\nMailbox.Test OK\ncatchall.test OK\n");
    make_table("hash", "aliasdomains", "alias.table.test anything\n");
    make_table("btree", "relays", "backup.test OK\n");
    make_table("hash", "mailboxes",
               "alice@example.com example.com/alice/\n"
               "bob@example.com example.com/bob/\n"
               "@catchall.test catchall.test/all/\n"
               "bob@catchall.test catchall.test/bob/\n");
    make_table("hash", "aliases",
               "postmaster@example.com admin@example.com\n"
               "admin@example.com alice@example.com, bob@example.com\n"
               "list@example.com alice@example.com bob@example.com,carol@other.test\n"
               "Self@Example.com self@example.com, archive@example.com\n"
               "loop-a@example.com loop-b@example.com\n"
               "loop-b@example.com loop-a@example.com\n"
               "tri-a@example.com tri-b@example.com\n"
               "tri-b@example.com alice@example.com, tri-c@example.com\n"
               "tri-c@example.com tri-b@example.com\n"
               "@aliasonly.test alice@example.com\n"
               "info@aliasonly.test Bob@Example.com\n"
               "root alice@example.com\n"
               "abuse@mx.example.test carol@other.test\n"
               "unqualified@example.com frank, grace@other.test\n"
               "dup@example.com alice@example.com, ALICE@example.com, admin@example.com\n"
               "quoted@example.com \"john doe\"@example.com, \"a,b\"@example.com\n"
               "diamond@example.com admin@example.com, list@example.com\n");
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

/* class_of - directory_classify() that must succeed */
static enum domain_class class_of(struct directory *dir, const char *domain)
{
    enum domain_class cls = DOMAIN_OTHER;

    assert_int_equal(directory_classify(dir, domain, &cls), DIRECTORY_OK);
    return cls;
}

/* expect_expand - expansion succeeds with exactly the want recipients, in order */
static void expect_expand(struct directory *dir, const char *address, const char *const *want)
{
    struct strlist out = STRLIST_INIT;
    struct strbuf err = STRBUF_INIT;
    size_t  n = 0;

    if (directory_expand(dir, address, &out, &err) != DIRECTORY_OK)
        fail_msg("expand %s: %s", address, sb_str(&err));
    while (want[n])
        n++;
    if (out.count != n) {
        for (size_t i = 0; i < out.count; i++)
            fprintf(stderr, "  got %s\n", out.items[i]);
        fail_msg("expand %s: %zu recipients, expected %zu", address, out.count, n);
    }
    for (size_t i = 0; i < n; i++)
        assert_string_equal(out.items[i], want[i]);
    strlist_free(&out);
    sb_free(&err);
}

/* expect_fail - expansion fails with status st and an error containing what */
static void expect_fail(struct directory *dir, const char *address, enum directory_status st,
                        const char *what)
{
    struct strlist out = STRLIST_INIT;
    struct strbuf err = STRBUF_INIT;

    assert_int_equal(directory_expand(dir, address, &out, &err), st);
    if (strstr(sb_str(&err), what) == NULL)
        fail_msg("expand %s: error '%s' does not contain '%s'", address, sb_str(&err), what);
    strlist_free(&out);
    sb_free(&err);
}

static void test_classify(void **state)
{
    struct strbuf err = STRBUF_INIT;
    struct config *cfg;
    struct directory *dir;

    (void) state;
    dir = open_with(standard_cf, &cfg, &err);
    if (dir == NULL)
        fail_msg("directory_open: %s", sb_str(&err));

    /* Literal names, exact, any case, one trailing dot. */
    assert_int_equal(class_of(dir, "mx.example.test"), DOMAIN_LOCAL);
    assert_int_equal(class_of(dir, "MX.Example.TEST."), DOMAIN_LOCAL);
    assert_int_equal(class_of(dir, "localhost"), DOMAIN_LOCAL);
    assert_int_equal(class_of(dir, "aliasonly.test"), DOMAIN_ALIAS);
    assert_int_equal(class_of(dir, "literal.example"), DOMAIN_MAILBOX);
    assert_int_equal(class_of(dir, "LITERAL.example."), DOMAIN_MAILBOX);
    assert_int_equal(class_of(dir, "relay.test"), DOMAIN_RELAY);
    /* Table entries: the domain is a key; case folded; trailing dot dropped. */
    assert_int_equal(class_of(dir, "alias.table.test"), DOMAIN_ALIAS);
    assert_int_equal(class_of(dir, "example.com"), DOMAIN_MAILBOX);
    assert_int_equal(class_of(dir, "EXAMPLE.COM."), DOMAIN_MAILBOX);
    assert_int_equal(class_of(dir, "mailbox.test"), DOMAIN_MAILBOX);
    assert_int_equal(class_of(dir, "backup.test"), DOMAIN_RELAY);
    /* Overlap: local comes first. */
    assert_int_equal(class_of(dir, "both.test"), DOMAIN_LOCAL);
    /* Exact only: no parent or sub domain, only one dot dropped. */
    assert_int_equal(class_of(dir, "sub.example.com"), DOMAIN_OTHER);
    assert_int_equal(class_of(dir, "com"), DOMAIN_OTHER);
    assert_int_equal(class_of(dir, "example.com.."), DOMAIN_OTHER);
    assert_int_equal(class_of(dir, "nowhere.test"), DOMAIN_OTHER);
    assert_int_equal(class_of(dir, ""), DOMAIN_OTHER);
    assert_int_equal(class_of(dir, "."), DOMAIN_OTHER);
    /* Keys that are addresses do not make domains. */
    assert_int_equal(class_of(dir, "alice@example.com"), DOMAIN_OTHER);

    assert_string_equal(domain_class_name(DOMAIN_LOCAL), "local");
    assert_string_equal(domain_class_name(DOMAIN_ALIAS), "alias");
    assert_string_equal(domain_class_name(DOMAIN_MAILBOX), "mailbox");
    assert_string_equal(domain_class_name(DOMAIN_RELAY), "relay");
    assert_string_equal(domain_class_name(DOMAIN_OTHER), "other");
    directory_close(dir);
    config_free(cfg);
    sb_free(&err);
}

static void test_alias_domains_default(void **state)
{
    struct strbuf err = STRBUF_INIT;
    struct config *cfg;
    struct directory *dir;

    (void) state;
    make_table("hash", "aliases2",
               "aliasdom.test anything\n"
               "someone@aliasdom.test alice@example.com\n");
    /* virtual_alias_domains not set: "$virtual_alias_maps", its keys are the domains. */
    dir = open_with("myhostname = mx.example.test\n"
                    "mydestination =\n"
                    "virtual_alias_maps = hash:@D@/aliases2\n", &cfg, &err);
    if (dir == NULL)
        fail_msg("directory_open: %s", sb_str(&err));
    assert_int_equal(class_of(dir, "aliasdom.test"), DOMAIN_ALIAS);
    assert_int_equal(class_of(dir, "AliasDom.Test."), DOMAIN_ALIAS);
    assert_int_equal(class_of(dir, "mx.example.test"), DOMAIN_OTHER);
    assert_int_equal(class_of(dir, "example.com"), DOMAIN_OTHER);
    expect_expand(dir, "someone@aliasdom.test", (const char *const[]) { "alice@example.com", NULL });
    directory_close(dir);
    config_free(cfg);

    /* Nothing configured: everything is "other", nothing is an alias or mailbox. */
    dir = open_with("myhostname = mx.example.test\nmydestination =\n", &cfg, &err);
    if (dir == NULL)
        fail_msg("directory_open: %s", sb_str(&err));
    assert_int_equal(class_of(dir, "example.com"), DOMAIN_OTHER);
    {
        struct strbuf v = STRBUF_INIT;

        assert_int_equal(directory_mailbox(dir, "alice@example.com", &v), MAP_NOTFOUND);
        assert_int_equal(directory_alias(dir, "alice@example.com", &v), MAP_NOTFOUND);
        sb_free(&v);
    }
    expect_expand(dir, "Alice@Example.com", (const char *const[]) { "Alice@Example.com", NULL });
    directory_close(dir);
    config_free(cfg);
    sb_free(&err);
}

static void test_mailbox(void **state)
{
    struct strbuf err = STRBUF_INIT, path = STRBUF_INIT;
    struct config *cfg;
    struct directory *dir;

    (void) state;
    dir = open_with(standard_cf, &cfg, &err);
    assert_non_null(dir);
    assert_int_equal(directory_mailbox(dir, "alice@example.com", &path), MAP_FOUND);
    assert_string_equal(sb_str(&path), "example.com/alice/");
    assert_int_equal(directory_mailbox(dir, "ALICE@Example.COM.", &path), MAP_FOUND);
    assert_string_equal(sb_str(&path), "example.com/alice/");
    assert_int_equal(directory_mailbox(dir, "nobody@example.com", &path), MAP_NOTFOUND);
    /* Catch-all, and a specific entry before it. */
    assert_int_equal(directory_mailbox(dir, "anyone@catchall.test", &path), MAP_FOUND);
    assert_string_equal(sb_str(&path), "catchall.test/all/");
    assert_int_equal(directory_mailbox(dir, "Bob@CatchAll.Test", &path), MAP_FOUND);
    assert_string_equal(sb_str(&path), "catchall.test/bob/");
    /* No "user" form for mailboxes, and no domain match across domains. */
    assert_int_equal(directory_mailbox(dir, "alice", &path), MAP_NOTFOUND);
    assert_int_equal(directory_mailbox(dir, "alice@sub.example.com", &path), MAP_NOTFOUND);
    assert_int_equal(directory_mailbox(dir, "", &path), MAP_NOTFOUND);
    directory_close(dir);
    config_free(cfg);
    sb_free(&err);
    sb_free(&path);
}

static void test_alias_lookup(void **state)
{
    struct strbuf err = STRBUF_INIT, v = STRBUF_INIT;
    struct config *cfg;
    struct directory *dir;

    (void) state;
    dir = open_with(standard_cf, &cfg, &err);
    assert_non_null(dir);
    assert_int_equal(directory_alias(dir, "admin@example.com", &v), MAP_FOUND);
    assert_string_equal(sb_str(&v), "alice@example.com, bob@example.com");
    assert_int_equal(directory_alias(dir, "Admin@EXAMPLE.com.", &v), MAP_FOUND);
    assert_int_equal(directory_alias(dir, "alice@example.com", &v), MAP_NOTFOUND);
    /* Catch-all alias, a specific entry first. */
    assert_int_equal(directory_alias(dir, "whoever@aliasonly.test", &v), MAP_FOUND);
    assert_string_equal(sb_str(&v), "alice@example.com");
    assert_int_equal(directory_alias(dir, "info@aliasonly.test", &v), MAP_FOUND);
    assert_string_equal(sb_str(&v), "Bob@Example.com");
    /* "user" form: only for the local class. */
    assert_int_equal(directory_alias(dir, "root@mx.example.test", &v), MAP_FOUND);
    assert_string_equal(sb_str(&v), "alice@example.com");
    assert_int_equal(directory_alias(dir, "root@localhost.", &v), MAP_FOUND);
    assert_int_equal(directory_alias(dir, "root@example.com", &v), MAP_NOTFOUND);
    assert_int_equal(directory_alias(dir, "root@nowhere.test", &v), MAP_NOTFOUND);
    assert_int_equal(directory_alias(dir, "root@Origin.Test.", &v), MAP_FOUND);     /* myorigin */
    /* user@domain is found before the user form. */
    assert_int_equal(directory_alias(dir, "abuse@mx.example.test", &v), MAP_FOUND);
    assert_string_equal(sb_str(&v), "carol@other.test");
    directory_close(dir);
    config_free(cfg);
    sb_free(&err);
    sb_free(&v);
}

static void test_expand(void **state)
{
    struct strbuf err = STRBUF_INIT;
    struct config *cfg;
    struct directory *dir;

    (void) state;
    dir = open_with(standard_cf, &cfg, &err);
    assert_non_null(dir);
    /* No alias: the address itself, as written. */
    expect_expand(dir, "Alice@Example.com", (const char *const[]) { "Alice@Example.com", NULL });
    /* One-to-many, separators mixed. */
    expect_expand(dir, "list@example.com", (const char *const[]) {
                  "alice@example.com", "bob@example.com", "carol@other.test", NULL });
    /* Recursive. */
    expect_expand(dir, "postmaster@example.com", (const char *const[]) {
                  "alice@example.com", "bob@example.com", NULL });
    /* Self-inclusion: kept once, as written in the table; the others expanded. */
    expect_expand(dir, "self@example.com", (const char *const[]) {
                  "self@example.com", "archive@example.com", NULL });
    /* Catch-all and the local user form, through expansion. */
    expect_expand(dir, "x@AliasOnly.Test", (const char *const[]) { "alice@example.com", NULL });
    expect_expand(dir, "info@aliasonly.test", (const char *const[]) { "Bob@Example.com", NULL });
    expect_expand(dir, "root@mx.example.test", (const char *const[]) { "alice@example.com", NULL });
    /* Duplicates (any case, through recursion) dropped, the first kept. */
    expect_expand(dir, "dup@example.com", (const char *const[]) {
                  "alice@example.com", "bob@example.com", NULL });
    /* Reaching the same address twice is not a loop. */
    expect_expand(dir, "diamond@example.com", (const char *const[]) {
                  "alice@example.com", "bob@example.com", "carol@other.test", NULL });
    /* A destination without a domain gets @myorigin; so does the address. */
    expect_expand(dir, "unqualified@example.com", (const char *const[]) {
                  "frank@origin.test", "grace@other.test", NULL });
    expect_expand(dir, "someone", (const char *const[]) { "someone@origin.test", NULL });
    /* Quoted local parts hold separators. */
    expect_expand(dir, "quoted@example.com", (const char *const[]) {
                  "\"john doe\"@example.com", "\"a,b\"@example.com", NULL });

    /* The list may hold other recipients' results: they neither dedupe nor count. */
    {
        struct strlist out = STRLIST_INIT;

        strlist_add(&out, "alice@example.com");
        assert_int_equal(directory_expand(dir, "admin@example.com", &out, &err), DIRECTORY_OK);
        assert_int_equal(out.count, 3);
        assert_string_equal(out.items[1], "alice@example.com");
        assert_string_equal(out.items[2], "bob@example.com");
        strlist_free(&out);
    }
    directory_close(dir);
    config_free(cfg);
    sb_free(&err);
}

static void test_loops(void **state)
{
    struct strbuf err = STRBUF_INIT;
    struct config *cfg;
    struct directory *dir;

    (void) state;
    dir = open_with(standard_cf, &cfg, &err);
    assert_non_null(dir);
    expect_fail(dir, "loop-a@example.com", DIRECTORY_PERMFAIL,
                "virtual alias loop for loop-a@example.com");
    /* The address reached again is named as the table writes it. */
    expect_fail(dir, "LOOP-B@example.com", DIRECTORY_PERMFAIL,
                "virtual alias loop for loop-b@example.com");
    /* A loop further down: a -> b -> c -> b. */
    expect_fail(dir, "tri-a@example.com", DIRECTORY_PERMFAIL,
                "virtual alias loop for tri-b@example.com");
    directory_close(dir);
    config_free(cfg);
    sb_free(&err);
}

/* big_alias_table - n destinations for wide@example.com, a chain of depth levels */
static void big_alias_table(int n, int depth)
{
    struct strbuf text = STRBUF_INIT;

    sb_puts(&text, "wide@example.com");
    for (int i = 0; i < n; i++)
        sb_printf(&text, "%su%d@example.com", i ? ", " : " ", i);
    sb_puts(&text, "\n");
    for (int i = 0; i < depth; i++)
        sb_printf(&text, "d%d@example.com d%d@example.com\n", i, i + 1);
    /* 2^40 paths through 40 diamonds (80 levels): must not take 2^40 steps. */
    for (int i = 0; i < 40; i++)
        sb_printf(&text, "m%d@example.com l%d@example.com, r%d@example.com\n"
                  "l%d@example.com m%d@example.com\nr%d@example.com m%d@example.com\n",
                  i, i, i, i, i + 1, i, i + 1);
    make_table("hash", "bigaliases", sb_str(&text));
    sb_free(&text);
}

static void test_limits(void **state)
{
    struct strbuf err = STRBUF_INIT;
    struct strlist out = STRLIST_INIT;
    struct config *cfg;
    struct directory *dir;
    static const char cf[] = "myhostname = mx.example.test\n"
        "virtual_alias_maps = hash:@D@/bigaliases\n";

    (void) state;
    /* Exactly at the limits: fine. */
    big_alias_table(1000, 100);
    dir = open_with(cf, &cfg, &err);
    assert_non_null(dir);
    assert_int_equal(directory_expand(dir, "wide@example.com", &out, &err), DIRECTORY_OK);
    assert_int_equal(out.count, 1000);
    assert_string_equal(out.items[999], "u999@example.com");
    strlist_free(&out);
    expect_expand(dir, "d0@example.com", (const char *const[]) { "d100@example.com", NULL });
    expect_expand(dir, "m0@example.com", (const char *const[]) { "m40@example.com", NULL });
    directory_close(dir);
    config_free(cfg);

    /* One more: permanent errors. */
    big_alias_table(1001, 101);
    dir = open_with(cf, &cfg, &err);
    assert_non_null(dir);
    expect_fail(dir, "wide@example.com", DIRECTORY_PERMFAIL, "virtual_alias_expansion_limit exceeded");
    expect_fail(dir, "d0@example.com", DIRECTORY_PERMFAIL, "recursion limit");
    expect_expand(dir, "d1@example.com", (const char *const[]) { "d101@example.com", NULL });
    directory_close(dir);
    config_free(cfg);
    sb_free(&err);
}

/*
 * write_bad_db - a hash file whose value for key is longer than any compiled
 * value can be: map_bdb refuses it with MAP_TEMPFAIL, as a broken table would.
 */
static void write_bad_db(const char *name, const char *const *keys)
{
    struct strbuf path = STRBUF_INIT;
    size_t  vlen = MAP_LINE_MAX + 100;
    char   *big = malloc(vlen + 1);
    DB     *db;
    DBT     k, v;

    assert_non_null(big);
    memset(big, 'x', vlen);
    big[vlen] = '\0';
    sb_printf(&path, "%s/%s.db", tmpdir, name);
    assert_int_equal(db_create(&db, NULL, 0), 0);
    assert_int_equal(db->open(db, NULL, sb_str(&path), NULL, DB_HASH, DB_CREATE | DB_TRUNCATE, 0600), 0);
    for (; *keys; keys++) {
        memset(&k, 0, sizeof(k));
        memset(&v, 0, sizeof(v));
        k.data = (void *) *keys;
        k.size = (u_int32_t) strlen(*keys) + 1;
        v.data = big;
        v.size = (u_int32_t) vlen + 1;
        assert_int_equal(db->put(db, NULL, &k, &v, 0), 0);
    }
    assert_int_equal(db->close(db, 0), 0);
    free(big);
    sb_free(&path);
}

static void test_tempfail(void **state)
{
    struct strbuf err = STRBUF_INIT, v = STRBUF_INIT;
    struct config *cfg;
    struct directory *dir;
    enum domain_class cls = DOMAIN_LOCAL;

    (void) state;
    write_bad_db("bad", (const char *const[]) {
                 "broken@example.com", "@catchall.test", "flaky.test", "localuser", NULL });
    dir = open_with("myhostname = mx.example.test\n"
                    "mydestination = $myhostname\n"
                    "relay_domains = hash:@D@/bad\n"
                    "virtual_mailbox_domains = hash:@D@/domains\n"
                    "virtual_mailbox_maps = hash:@D@/bad\n"
                    "virtual_alias_maps = hash:@D@/aliases, hash:@D@/bad\n", &cfg, &err);
    if (dir == NULL)
        fail_msg("directory_open: %s", sb_str(&err));

    /* Domain table failing: classification cannot say "other". */
    assert_int_equal(directory_classify(dir, "flaky.test", &cls), DIRECTORY_TEMPFAIL);
    /* Earlier lists answer before the failing one is asked. */
    assert_int_equal(class_of(dir, "example.com"), DOMAIN_MAILBOX);

    assert_int_equal(directory_mailbox(dir, "broken@example.com", &v), MAP_TEMPFAIL);
    assert_true(strstr(sb_str(&v), "lookup error") != NULL || strstr(sb_str(&v), "longer") != NULL);
    assert_int_equal(directory_mailbox(dir, "x@catchall.test", &v), MAP_TEMPFAIL);
    assert_int_equal(directory_mailbox(dir, "x@example.com", &v), MAP_NOTFOUND);

    /* Directly and through an alias; a found alias before the bad table still works. */
    expect_fail(dir, "broken@example.com", DIRECTORY_TEMPFAIL, "virtual_alias_maps lookup of broken@example.com failed");
    /* The local user form reaches the bad table too. */
    expect_fail(dir, "localuser@mx.example.test", DIRECTORY_TEMPFAIL, "localuser@mx.example.test");
    expect_expand(dir, "root@mx.example.test", (const char *const[]) { "alice@example.com", NULL });
    expect_expand(dir, "admin@example.com", (const char *const[]) {
                  "alice@example.com", "bob@example.com", NULL });
    /* The user form needs the class; the class needs the failing table. */
    assert_int_equal(directory_alias(dir, "someone@flaky.test", &v), MAP_TEMPFAIL);
    expect_fail(dir, "someone@flaky.test", DIRECTORY_TEMPFAIL, "someone@flaky.test");
    directory_close(dir);
    config_free(cfg);
    sb_free(&err);
    sb_free(&v);
}

/* open_fails - directory_open() with main_cf fails with an error containing what */
static void open_fails(const char *main_cf, const char *what)
{
    struct strbuf err = STRBUF_INIT;
    struct config *cfg;
    struct directory *dir = open_with(main_cf, &cfg, &err);

    if (dir != NULL)
        fail_msg("directory_open accepted: %s", main_cf);
    if (strstr(sb_str(&err), what) == NULL)
        fail_msg("error '%s' does not contain '%s'", sb_str(&err), what);
    config_free(cfg);
    sb_free(&err);
}

static void test_open_errors(void **state)
{
    struct strbuf want = STRBUF_INIT;

    (void) state;
    sb_printf(&want, "%s/main.cf:2: virtual_mailbox_maps: hash:%s/missing: open %s/missing.db",
              tmpdir, tmpdir, tmpdir);
    open_fails("myhostname = mx.example.test\nvirtual_mailbox_maps = hash:@D@/missing\n", sb_str(&want));
    open_fails("virtual_alias_domains =\nvirtual_alias_maps = nosuch:/x\n", "main.cf:2: virtual_alias_maps: nosuch:/x: unknown map type");
    open_fails("relay_domains = example.com, hash:@D@/missing\n", "main.cf:1: relay_domains: hash:");
    open_fails("virtual_mailbox_domains = !example.com\n", "virtual_mailbox_domains: '!example.com': negation is not supported");
    open_fails("mydestination = /etc/postern/domains\n", "mydestination: '/etc/postern/domains': file lists are not supported; use hash:/etc/postern/domains");
    open_fails("virtual_alias_domains = inline:{ a.test=x\n", "virtual_alias_domains: 'inline:{ a.test=x': missing '}'");
    open_fails("relay_domains = .\n", "relay_domains: '.': not a domain name");
    /* A broken default names the parameter it came from. */
    open_fails("virtual_alias_maps = hash:@D@/missing\n", "virtual_alias_domains (default \"hash:");
    sb_free(&want);
}

static void test_inline_and_overlap(void **state)
{
    struct strbuf err = STRBUF_INIT;
    struct config *cfg;
    struct directory *dir;

    (void) state;
    /* Table entries with separators inside braces; the same domain in two lists. */
    dir = open_with("myhostname = mx.example.test\n"
                    "mydestination = localhost\n"
                    "virtual_alias_domains = inline:{ a.test=x, b.test=y }, c.test\n"
                    "virtual_mailbox_domains = c.test, inline:{a.test=1} d.test\n"
                    "relay_domains = d.test [192.0.2.1]\n", &cfg, &err);
    if (dir == NULL)
        fail_msg("directory_open: %s", sb_str(&err));
    assert_int_equal(class_of(dir, "a.test"), DOMAIN_ALIAS);
    assert_int_equal(class_of(dir, "B.test"), DOMAIN_ALIAS);
    assert_int_equal(class_of(dir, "c.test"), DOMAIN_ALIAS);
    assert_int_equal(class_of(dir, "d.test"), DOMAIN_MAILBOX);
    assert_int_equal(class_of(dir, "[192.0.2.1]"), DOMAIN_RELAY);
    directory_close(dir);
    config_free(cfg);
    sb_free(&err);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_classify, setup, teardown),
        cmocka_unit_test_setup_teardown(test_alias_domains_default, setup, teardown),
        cmocka_unit_test_setup_teardown(test_mailbox, setup, teardown),
        cmocka_unit_test_setup_teardown(test_alias_lookup, setup, teardown),
        cmocka_unit_test_setup_teardown(test_expand, setup, teardown),
        cmocka_unit_test_setup_teardown(test_loops, setup, teardown),
        cmocka_unit_test_setup_teardown(test_limits, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tempfail, setup, teardown),
        cmocka_unit_test_setup_teardown(test_open_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_inline_and_overlap, setup, teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
