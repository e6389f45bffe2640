/*
 * postctl_alias - "postctl alias add|del|list": virtual aliases (virtual_alias_maps).
 *
 *   add ADDRESS DEST...      ADDRESS (or @DOMAIN, a catch-all) in one of our
 *                            domains (mailbox, alias, or mydestination, where
 *                            postmaster@$myhostname must lead somewhere);
 *                            DESTs are added to any it has already
 *   del ADDRESS [DEST...]    the whole alias, or just those destinations
 *   list [--json]
 */
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "config.h"
#include "json.h"
#include "strbuf.h"
#include "strlist.h"

#include "postctl.h"
#include "postctl_pgsql.h"
#include "postctl_table.h"

static void alias_usage(FILE *out)
{
    fprintf(out, "usage: postctl alias add ADDRESS|@DOMAIN DEST...\n"
            "       postctl alias del ADDRESS|@DOMAIN [DEST...]\n"
            "       postctl alias list [--json]\n");
}

/* alias_key - a checked, lower-cased alias address or "@domain"; its domain in domain */
static int alias_key(const char *text, struct strbuf *key, struct strbuf *domain, struct strbuf *err)
{
    if (text[0] == '@') {
        if (admin_domain(text + 1, domain, err) < 0)
            return -1;
        sb_reset(key);
        sb_printf(key, "@%s", domain->data);
        return 0;
    }
    return admin_address(text, key, domain, err);
}

/* join - the destination list as the table stores it */
static void join(const struct strlist *l, struct strbuf *out)
{
    sb_reset(out);
    for (size_t i = 0; i < l->count; i++)
        sb_printf(out, "%s%s", i ? ", " : "", l->items[i]);
}

/* open_alias_table - the table behind virtual_alias_maps, locked */
static int open_alias_table(struct config *cfg, struct text_table *t, struct strbuf *spec, struct strbuf *err)
{
    struct strbuf path = STRBUF_INIT;
    int     rc = -1;

    if (table_file_for(cfg, "virtual_alias_maps", spec, &path, err) == 0)
        rc = table_open(t, path.data, ' ', err);
    sb_free(&path);
    return rc;
}

static int alias_edit(struct config *cfg, int argc, char **argv, bool add)
{
    struct strbuf key = STRBUF_INIT, domain = STRBUF_INIT, err = STRBUF_INIT, spec = STRBUF_INIT;
    struct strbuf dest = STRBUF_INIT, ddomain = STRBUF_INIT, current = STRBUF_INIT;
    struct strlist dests = STRLIST_INIT, kept = STRLIST_INIT;
    struct text_table t;
    int     rc = POSTCTL_FAILED;
    bool    open = false;

    if (argc < (add ? 4 : 3)) {
        alias_usage(stderr);
        return POSTCTL_USAGE;
    }
    if (alias_key(argv[2], &key, &domain, &err) < 0)
        goto out;
    if (add) {
        const char *cls = admin_domain_class(cfg, domain.data, &err);

        if (cls == NULL && admin_domain_is_local(cfg, domain.data))
            cls = "local";              /* mydestination: only aliases live there (postmaster@$myhostname) */
        if (cls == NULL || strcmp(cls, "relay") == 0) {
            sb_reset(&err);
            sb_printf(&err, "%s is not a mailbox or alias domain of this instance; first: "
                      "postctl domain add %s [--alias-domain]", domain.data, domain.data);
            goto out;
        }
    }
    for (int i = 3; i < argc; i++) {
        if (admin_address(argv[i], &dest, &ddomain, &err) < 0)
            goto out;
        if (!strlist_contains_nocase(&dests, dest.data))
            strlist_add(&dests, dest.data);
    }
    if (open_alias_table(cfg, &t, &spec, &err) < 0)
        goto out;
    open = true;
    if (table_get(&t, key.data, &current))
        strlist_split(&kept, current.data);
    else if (!add) {
        sb_printf(&err, "%s is not an alias", key.data);
        goto out;
    }
    if (add) {
        for (size_t i = 0; i < dests.count; i++)
            if (!strlist_contains_nocase(&kept, dests.items[i]))
                strlist_add(&kept, dests.items[i]);
    } else if (dests.count > 0) {
        struct strlist left = STRLIST_INIT;

        for (size_t i = 0; i < kept.count; i++)
            if (!strlist_contains_nocase(&dests, kept.items[i]))
                strlist_add(&left, kept.items[i]);
        strlist_free(&kept);
        kept = left;
    } else {
        strlist_free(&kept);
    }
    if (kept.count > 0) {
        join(&kept, &current);
        table_set(&t, key.data, current.data);
    } else {
        table_remove(&t, key.data);
    }
    open = false;
    if (table_commit(&t, spec.data, &err) < 0)
        goto out;
    if (kept.count > 0)
        printf("postctl alias: %s -> %s\n", key.data, current.data);
    else
        printf("postctl alias: deleted %s\n", key.data);
    rc = POSTCTL_OK;
out:
    if (open)
        table_close(&t);
    if (rc != POSTCTL_OK)
        fprintf(stderr, "postctl alias %s: %s\n", add ? "add" : "del", sb_str(&err));
    sb_free(&key), sb_free(&domain), sb_free(&err), sb_free(&spec);
    sb_free(&dest), sb_free(&ddomain), sb_free(&current);
    strlist_free(&dests), strlist_free(&kept);
    return rc;
}

static int alias_list(struct config *cfg, int argc, char **argv)
{
    struct strbuf spec = STRBUF_INIT, err = STRBUF_INIT, key = STRBUF_INIT, value = STRBUF_INIT;
    struct strbuf out = STRBUF_INIT;
    struct text_table t;
    bool    json = argc == 3 && strcmp(argv[2], "--json") == 0;
    size_t  pos = 0, n = 0;

    if (argc > 3 || (argc == 3 && !json)) {
        alias_usage(stderr);
        return POSTCTL_USAGE;
    }
    if (open_alias_table(cfg, &t, &spec, &err) < 0) {
        fprintf(stderr, "postctl alias list: %s\n", sb_str(&err));
        sb_free(&spec), sb_free(&err);
        return POSTCTL_FAILED;
    }
    if (json)
        sb_putc(&out, '[');
    while (table_next(&t, &pos, &key, &value)) {
        if (json) {
            struct strlist dests = STRLIST_INIT;

            strlist_split(&dests, value.data);
            sb_puts(&out, n ? ",{\"alias\":" : "{\"alias\":");
            json_string(&out, key.data);
            sb_puts(&out, ",\"destinations\":[");
            for (size_t i = 0; i < dests.count; i++) {
                if (i)
                    sb_putc(&out, ',');
                json_string(&out, dests.items[i]);
            }
            sb_puts(&out, "]}");
            strlist_free(&dests);
        } else {
            sb_printf(&out, "%-40s %s\n", key.data, value.data);
        }
        n++;
    }
    if (json)
        sb_puts(&out, "]\n");
    fputs(sb_str(&out), stdout);
    table_close(&t);
    sb_free(&spec), sb_free(&err), sb_free(&key), sb_free(&value), sb_free(&out);
    return POSTCTL_OK;
}

int cmd_alias(struct postctl *ctl, int argc, char **argv)
{
    struct config *cfg;
    int     rc;

    if (postctl_wants_help(argc, argv)) {
        alias_usage(stdout);
        return POSTCTL_OK;
    }
    if (argc < 2) {
        alias_usage(stderr);
        return POSTCTL_USAGE;
    }
    if ((cfg = admin_load_config(ctl->config_dir, "alias")) == NULL)
        return POSTCTL_FAILED;
    if (postctl_pgsql_dispatch(cfg, "alias", argc, argv, &rc) == 0) {
        config_free(cfg);
        return rc;
    }
    if (strcmp(argv[1], "add") == 0)
        rc = alias_edit(cfg, argc, argv, true);
    else if (strcmp(argv[1], "del") == 0)
        rc = alias_edit(cfg, argc, argv, false);
    else if (strcmp(argv[1], "list") == 0)
        rc = alias_list(cfg, argc, argv);
    else {
        alias_usage(stderr);
        rc = POSTCTL_USAGE;
    }
    config_free(cfg);
    return rc;
}
