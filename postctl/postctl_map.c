/*
 * postctl_map - "postctl map": compile or query lookup tables (like postmap).
 *
 *   postctl map FILE|type:FILE...       compile FILE into FILE.db
 *   postctl map -q KEY FILE|type:NAME...  print the first value found for KEY
 *
 * A bare FILE gets main.cf's default_database_type (hash when there is no
 * main.cf). Compiling is atomic (see map_compile()); duplicate keys are
 * warnings on stderr. Exit status: 0 ok, 1 failed or key not found, 2 usage.
 */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "map.h"
#include "mem.h"
#include "strbuf.h"

#include "postctl.h"

/* map_usage - the synopsis */
static void map_usage(FILE *out)
{
    fprintf(out,
            "usage: postctl map FILE|type:FILE...\n"
            "       postctl map -q KEY FILE|type:NAME...\n"
            "\n"
            "Compile each text table FILE (\"key value\" lines) into FILE.db, atomically,\n"
            "with the owner and mode of FILE. A bare FILE has the type default_database_type\n"
            "from main.cf (hash if unset); types that compile: hash, btree.\n"
            "\n"
            "  -q KEY   look KEY up in the tables instead (any map type, e.g. inline:{a=b});\n"
            "           print the first value found, exit 1 if there is none\n"
            "  -h       this help\n");
}

/* has_type - "word:" prefix of lower-case letters and digits, as in "hash:/etc/x" */
static bool has_type(const char *arg)
{
    const char *cp = arg;

    while (islower((unsigned char) *cp) || isdigit((unsigned char) *cp))
        cp++;
    return cp > arg && *cp == ':';
}

/* default_type - default_database_type from main.cf, hash without one */
static char *default_type(struct postctl *ctl)
{
    struct strbuf err = STRBUF_INIT;
    struct strbuf path = STRBUF_INIT;
    struct config *cfg;
    char   *type = NULL;

    sb_printf(&path, "%s/main.cf", ctl->config_dir ? ctl->config_dir : ".");
    if (ctl->config_dir && access(sb_str(&path), F_OK) == 0) {
        if ((cfg = config_load(ctl->config_dir, &err)) != NULL) {
            const char *t = config_str(cfg, "default_database_type");

            if (t && *t)
                type = xstrdup(t);
            config_free(cfg);
        } else {
            fprintf(stderr, "postctl map: warning: %s; using hash\n", sb_str(&err));
        }
    }
    sb_free(&err);
    sb_free(&path);
    return type ? type : xstrdup("hash");
}

/* make_spec - "type:FILE" for an argument */
static void make_spec(struct strbuf *spec, const char *arg, const char *deftype)
{
    sb_reset(spec);
    if (has_type(arg))
        sb_puts(spec, arg);
    else
        sb_printf(spec, "%s:%s", deftype, arg);
}

/* print_warnings - one stderr line per warning */
static void print_warnings(const char *text)
{
    while (text && *text) {
        const char *nl = strchr(text, '\n');
        int     len = nl ? (int) (nl - text) : (int) strlen(text);

        if (len > 0)
            fprintf(stderr, "postctl map: warning: %.*s\n", len, text);
        text += len + (nl ? 1 : 0);
    }
}

/* map_query - -q KEY: first value found in the given maps */
static int map_query(const char *key, int argc, char **argv, const char *deftype)
{
    struct strbuf spec = STRBUF_INIT;
    struct strbuf err = STRBUF_INIT;
    struct strbuf value = STRBUF_INIT;
    struct map *map;
    int     status = POSTCTL_FAILED;

    for (int i = 0; i < argc; i++) {
        make_spec(&spec, argv[i], deftype);
        if ((map = map_open(sb_str(&spec), &err)) == NULL) {
            fprintf(stderr, "postctl map: %s\n", sb_str(&err));
            break;
        }
        switch (map_lookup(map, key, &value)) {
        case MAP_FOUND:
            printf("%s\n", sb_str(&value));
            status = POSTCTL_OK;
            break;
        case MAP_NOTFOUND:
            break;
        case MAP_TEMPFAIL:
            fprintf(stderr, "postctl map: %s\n", sb_str(&value));
            i = argc;                   /* a later map's answer could be the wrong one */
            break;
        }
        map_close(map);
        if (status == POSTCTL_OK)
            break;
    }
    sb_free(&spec);
    sb_free(&err);
    sb_free(&value);
    return status;
}

/* cmd_map - postctl map [-q KEY] FILE... */
int cmd_map(struct postctl *ctl, int argc, char **argv)
{
    struct strbuf spec = STRBUF_INIT;
    struct strbuf warnings = STRBUF_INIT;
    struct strbuf err = STRBUF_INIT;
    const char *query = NULL;
    char   *deftype;
    int     i, status = POSTCTL_OK;

    if (postctl_wants_help(argc, argv)) {
        map_usage(stdout);
        return POSTCTL_OK;
    }
    for (i = 1; i < argc && argv[i][0] == '-' && argv[i][1] != '\0'; i++) {
        if (strcmp(argv[i], "--") == 0) {
            i++;
            break;
        }
        if (strcmp(argv[i], "-q") == 0 && i + 1 < argc) {
            query = argv[++i];
        } else {
            fprintf(stderr, "postctl map: %s %s\n", strcmp(argv[i], "-q") == 0 ?
                    "missing KEY after" : "unknown option", argv[i]);
            map_usage(stderr);
            return POSTCTL_USAGE;
        }
    }
    if (i >= argc) {
        fprintf(stderr, "postctl map: no table given\n");
        map_usage(stderr);
        return POSTCTL_USAGE;
    }
    deftype = default_type(ctl);
    if (query) {
        status = map_query(query, argc - i, argv + i, deftype);
        free(deftype);
        return status;
    }
    for (; i < argc; i++) {
        make_spec(&spec, argv[i], deftype);
        sb_reset(&warnings);
        if (map_compile(sb_str(&spec), &warnings, &err) < 0) {
            print_warnings(sb_str(&warnings));
            fprintf(stderr, "postctl map: %s\n", sb_str(&err));
            status = POSTCTL_FAILED;
            continue;
        }
        print_warnings(sb_str(&warnings));
    }
    free(deftype);
    sb_free(&spec);
    sb_free(&warnings);
    sb_free(&err);
    return status;
}
