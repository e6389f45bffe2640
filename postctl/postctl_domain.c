/*
 * postctl_domain - "postctl domain add|del|list": the domains this instance serves.
 *
 *   add DOMAIN                 a mailbox domain (virtual_mailbox_domains)
 *   add DOMAIN --alias-domain  every address is an alias (virtual_alias_domains)
 *   add DOMAIN --relay         backup MX: accept and forward (relay_domains)
 *   del DOMAIN [--force]       refused while mailboxes or aliases use it, unless --force
 *   list [--json]
 */
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "config.h"
#include "json.h"
#include "strbuf.h"

#include "postctl.h"
#include "postctl_pgsql.h"
#include "postctl_table.h"

static const struct {
    const char *cls;
    const char *param;
} domain_tables[] = {
    {"mailbox", "virtual_mailbox_domains"},
    {"alias", "virtual_alias_domains"},
    {"relay", "relay_domains"},
};

#define NTABLES (sizeof(domain_tables) / sizeof(domain_tables[0]))

static void domain_usage(FILE *out)
{
    fprintf(out, "usage: postctl domain add DOMAIN [--relay | --alias-domain]\n"
            "       postctl domain del DOMAIN [--force]\n"
            "       postctl domain list [--json]\n");
}

/* edit_domain_table - add (value non-NULL) or remove domain in the table of param */
static int edit_domain_table(struct config *cfg, const char *param, const char *domain, bool add,
                             struct strbuf *err)
{
    struct strbuf spec = STRBUF_INIT;
    struct strbuf path = STRBUF_INIT;
    struct text_table t;
    int     rc = -1;

    if (table_file_for(cfg, param, &spec, &path, err) == 0 && table_open(&t, path.data, ' ', err) == 0) {
        if (add)
            table_set(&t, domain, "OK");
        else
            table_remove(&t, domain);
        rc = table_commit(&t, spec.data, err);
    }
    sb_free(&spec);
    sb_free(&path);
    return rc;
}

/* count_users_of - entries of an address table in domain */
static size_t count_users_of(struct config *cfg, const char *param, const char *domain)
{
    struct strbuf spec = STRBUF_INIT, path = STRBUF_INIT, err = STRBUF_INIT;
    struct strbuf key = STRBUF_INIT, value = STRBUF_INIT;
    struct text_table t;
    size_t  n = 0, pos = 0;
    size_t  dlen = strlen(domain);

    if (table_file_for(cfg, param, &spec, &path, &err) == 0 && table_open(&t, path.data, ' ', &err) == 0) {
        while (table_next(&t, &pos, &key, &value)) {
            const char *at = strrchr(key.data, '@');

            if (at && strlen(at + 1) == dlen && strcasecmp(at + 1, domain) == 0)
                n++;
        }
        table_close(&t);
    }
    sb_free(&spec), sb_free(&path), sb_free(&err), sb_free(&key), sb_free(&value);
    return n;
}

static int domain_add(struct config *cfg, int argc, char **argv)
{
    struct strbuf domain = STRBUF_INIT;
    struct strbuf err = STRBUF_INIT;
    const char *param = "virtual_mailbox_domains";
    const char *existing;
    const char *name = NULL;
    int     rc = POSTCTL_FAILED;

    for (int i = 2; i < argc; i++) {
        if (strcmp(argv[i], "--relay") == 0)
            param = "relay_domains";
        else if (strcmp(argv[i], "--alias-domain") == 0)
            param = "virtual_alias_domains";
        else if (argv[i][0] == '-' || name) {
            domain_usage(stderr);
            return POSTCTL_USAGE;
        } else
            name = argv[i];
    }
    if (name == NULL) {
        domain_usage(stderr);
        return POSTCTL_USAGE;
    }
    if (admin_domain(name, &domain, &err) < 0)
        goto out;
    if ((existing = admin_domain_class(cfg, domain.data, &err)) != NULL) {
        sb_reset(&err);
        sb_printf(&err, "%s is already a %s domain", domain.data, existing);
        goto out;
    }
    sb_reset(&err);
    if (edit_domain_table(cfg, param, domain.data, true, &err) < 0)
        goto out;
    printf("postctl domain: added %s (%s)\n", domain.data, param);
    rc = POSTCTL_OK;
out:
    if (rc != POSTCTL_OK)
        fprintf(stderr, "postctl domain add: %s\n", sb_str(&err));
    sb_free(&domain);
    sb_free(&err);
    return rc;
}

static int domain_del(struct config *cfg, int argc, char **argv)
{
    struct strbuf domain = STRBUF_INIT;
    struct strbuf err = STRBUF_INIT;
    bool    force = argc == 4 && strcmp(argv[3], "--force") == 0;
    const char *cls;
    int     rc = POSTCTL_FAILED;

    if (argc < 3 || (argc == 4 && !force) || argc > 4) {
        domain_usage(stderr);
        return POSTCTL_USAGE;
    }
    if (admin_domain(argv[2], &domain, &err) < 0)
        goto out;
    if ((cls = admin_domain_class(cfg, domain.data, &err)) == NULL) {
        sb_reset(&err);
        sb_printf(&err, "%s is not a domain of this instance", domain.data);
        goto out;
    }
    size_t  users = count_users_of(cfg, "virtual_mailbox_maps", domain.data);
    size_t  aliases = count_users_of(cfg, "virtual_alias_maps", domain.data);

    if ((users || aliases) && !force) {
        sb_reset(&err);
        sb_printf(&err, "%s still has %zu mailbox(es) and %zu alias(es); delete them first, "
                  "or use --force to remove only the domain entry", domain.data, users, aliases);
        goto out;
    }
    for (size_t i = 0; i < NTABLES; i++)
        if (strcmp(domain_tables[i].cls, cls) == 0
            && edit_domain_table(cfg, domain_tables[i].param, domain.data, false, &err) < 0)
            goto out;
    printf("postctl domain: deleted %s\n", domain.data);
    rc = POSTCTL_OK;
out:
    if (rc != POSTCTL_OK)
        fprintf(stderr, "postctl domain del: %s\n", sb_str(&err));
    sb_free(&domain);
    sb_free(&err);
    return rc;
}

static int domain_list(struct config *cfg, int argc, char **argv)
{
    bool    json = argc == 3 && strcmp(argv[2], "--json") == 0;
    struct strbuf out = STRBUF_INIT;
    struct strbuf spec = STRBUF_INIT, path = STRBUF_INIT, err = STRBUF_INIT;
    struct strbuf key = STRBUF_INIT, value = STRBUF_INIT;
    size_t  n = 0;

    if (argc > 3 || (argc == 3 && !json)) {
        domain_usage(stderr);
        return POSTCTL_USAGE;
    }
    if (json)
        sb_putc(&out, '[');
    for (size_t i = 0; i < NTABLES; i++) {
        struct text_table t;
        size_t  pos = 0;

        if (table_file_for(cfg, domain_tables[i].param, &spec, &path, &err) < 0
            || table_open(&t, path.data, ' ', &err) < 0)
            continue;
        while (table_next(&t, &pos, &key, &value)) {
            if (json) {
                sb_puts(&out, n ? ",{\"domain\":" : "{\"domain\":");
                json_string(&out, key.data);
                sb_printf(&out, ",\"class\":\"%s\"}", domain_tables[i].cls);
            } else {
                sb_printf(&out, "%-40s %s\n", key.data, domain_tables[i].cls);
            }
            n++;
        }
        table_close(&t);
    }
    if (json)
        sb_puts(&out, "]\n");
    fputs(sb_str(&out), stdout);
    sb_free(&out), sb_free(&spec), sb_free(&path), sb_free(&err), sb_free(&key), sb_free(&value);
    return POSTCTL_OK;
}

int cmd_domain(struct postctl *ctl, int argc, char **argv)
{
    struct config *cfg;
    int     rc;

    if (postctl_wants_help(argc, argv)) {
        domain_usage(stdout);
        return POSTCTL_OK;
    }
    if (argc < 2) {
        domain_usage(stderr);
        return POSTCTL_USAGE;
    }
    if ((cfg = admin_load_config(ctl->config_dir, "domain")) == NULL)
        return POSTCTL_FAILED;
    if (postctl_pgsql_dispatch(cfg, "domain", argc, argv, &rc) == 0) {
        config_free(cfg);
        return rc;
    }
    if (strcmp(argv[1], "add") == 0)
        rc = domain_add(cfg, argc, argv);
    else if (strcmp(argv[1], "del") == 0)
        rc = domain_del(cfg, argc, argv);
    else if (strcmp(argv[1], "list") == 0)
        rc = domain_list(cfg, argc, argv);
    else {
        domain_usage(stderr);
        rc = POSTCTL_USAGE;
    }
    config_free(cfg);
    return rc;
}
