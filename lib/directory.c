/*
 * directory - domain classes, mailbox and alias tables (DESIGN.md section 3),
 * with Postfix's semantics (virtual(5), postconf(5)).
 *
 * Interface (directory.h): directory_open(), directory_close(),
 * directory_watch(), directory_classify(), directory_mailbox(),
 * directory_alias(), directory_expand(), domain_class_name().
 *
 * Domain lists (mydestination, virtual_alias_domains, virtual_mailbox_domains,
 * relay_domains) mix literal names and type:table entries; a literal matches
 * the domain exactly, a table when the domain is one of its keys (the value
 * is ignored, so virtual_alias_domains = $virtual_alias_maps works as in
 * Postfix: a "example.com  anything" line makes the alias domain). Domains
 * compare case-insensitively, without one trailing dot. A domain in several
 * lists takes the first class of local, alias, mailbox, relay (Postfix warns
 * about such overlaps; we warn at open for the literal ones).
 *
 * The bare "user" alias key applies, as in Postfix, to the domains of
 * mydestination and to myorigin (an unqualified destination gets @myorigin).
 *
 * Alias expansion is depth-first. A destination equal to the address that
 * lists it is final (delivered as it is); reaching an address that is being
 * expanded further up is a loop; an address already expanded elsewhere adds
 * nothing new (its results are in the list already), which also keeps
 * diamond-shaped tables from costing exponential time. Results are
 * de-duplicated case-insensitively, the first kept.
 *
 * Diagnostics: directory_open() errors name main.cf's line (when set there)
 * and the parameter; a table that fails in directory_classify() is logged as
 * a warning (the interface returns only the status); expansion failures come
 * back in err.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "config.h"
#include "log.h"
#include "map.h"
#include "mem.h"
#include "service.h"
#include "strbuf.h"
#include "strlist.h"
#include "directory.h"

#define EXPAND_LIMIT        1000        /* Postfix virtual_alias_expansion_limit */
#define RECURSION_LIMIT     100         /* levels of aliases */
#define LOOKUP_LIMIT        10000       /* alias lookups per expansion */

/* One domain list parameter: its literal names and its tables. */
struct domain_list {
    const char *param;
    struct strlist names;               /* lower case, no trailing dot */
    struct maplist *tables;             /* never NULL once opened */
};

/* The list parameters in classification order, indexed by enum domain_class. */
static const char *const domain_params[] = {
    "mydestination",
    "virtual_alias_domains",
    "virtual_mailbox_domains",
    "relay_domains",
};

#define NDOMAIN_LISTS (sizeof(domain_params) / sizeof(domain_params[0]))

struct directory {
    struct domain_list lists[NDOMAIN_LISTS];
    struct maplist *mailbox_maps;
    struct maplist *alias_maps;
    char   *myorigin;                   /* normalized: the "user" form applies there too */
    long    expand_limit;
    long    recursion_limit;
};

/* norm_domain - lower case, one trailing dot dropped */
static void norm_domain(struct strbuf *out, const char *domain)
{
    size_t  len = strlen(domain);

    sb_reset(out);
    if (len > 0 && domain[len - 1] == '.')
        len--;
    sb_append(out, domain, len);
    sb_lowercase(out);
}

/* param_error - "main.cf:LINE: name: " when set there, else "name: " */
static void param_error(struct config *cfg, const char *name, struct strbuf *err,
                        const char *why)
{
    struct strbuf msg = STRBUF_INIT;
    int     line = config_line(cfg, name);

    if (line > 0)
        sb_printf(&msg, "%s:%d: %s: %s", config_path(cfg), line, name, why);
    else
        sb_printf(&msg, "%s (default \"%s\"): %s", name, config_str(cfg, name), why);
    sb_set(err, sb_str(&msg));
    sb_free(&msg);
}

/* open_domain_list - split a list into literal names and tables */
static int open_domain_list(struct config *cfg, struct domain_list *dl, const char *param,
                            struct strbuf *err)
{
    const char *value = config_str(cfg, param);
    const char *cp = value;
    struct strbuf tok = STRBUF_INIT, specs = STRBUF_INIT, why = STRBUF_INIT,
        name = STRBUF_INIT;
    int     ret;
    int     status = -1;

    dl->param = param;
    while ((ret = map_token(&cp, &tok, &why)) > 0) {
        const char *t = sb_str(&tok);

        if (t[0] == '!') {
            sb_printf(&why, "'%s': negation is not supported; list the domains to match", t);
            goto out;
        }
        if (t[0] == '/') {
            sb_printf(&why, "'%s': file lists are not supported; use hash:%s (postctl map %s)",
                      t, t, t);
            goto out;
        }
        /* "[...]" is an address literal, not a table, even with colons in it. */
        if (t[0] != '[' && strchr(t, ':') != NULL) {
            if (sb_len(&specs))
                sb_puts(&specs, ", ");
            sb_puts(&specs, t);
            continue;
        }
        norm_domain(&name, t);
        if (sb_len(&name) == 0) {
            sb_printf(&why, "'%s': not a domain name", t);
            goto out;
        }
        if (!strlist_contains(&dl->names, sb_str(&name)))
            strlist_add(&dl->names, sb_str(&name));
    }
    if (ret < 0)
        goto out;
    if ((dl->tables = maplist_open(sb_str(&specs), &why)) == NULL)
        goto out;
    status = 0;

out:
    if (status < 0)
        param_error(cfg, param, err, sb_str(&why));
    sb_free(&tok);
    sb_free(&specs);
    sb_free(&why);
    sb_free(&name);
    return status;
}

/* open_maps - maplist_open() of a parameter, errors naming it */
static struct maplist *open_maps(struct config *cfg, const char *param, struct strbuf *err)
{
    struct strbuf why = STRBUF_INIT;
    struct maplist *list;

    if ((list = maplist_open(config_str(cfg, param), &why)) == NULL)
        param_error(cfg, param, err, sb_str(&why));
    sb_free(&why);
    return list;
}

/* optional_limit - a limit parameter if config knows it, else the default */
static long optional_limit(struct config *cfg, const char *name, long def)
{
    const char *text = config_lookup(cfg, name);
    char   *end;
    long    v;

    if (text == NULL || *text == '\0')
        return def;
    v = strtol(text, &end, 10);
    if (*end != '\0' || v <= 0 || v > 1000000) {
        msg_warn("%s = %s: expected a number from 1 to 1000000; using %ld", name, text, def);
        return def;
    }
    return v;
}

/* warn_overlaps - Postfix warns about a domain listed for two classes */
static void warn_overlaps(struct directory *dir)
{
    for (size_t i = 0; i < NDOMAIN_LISTS; i++)
        for (size_t j = 0; j < dir->lists[i].names.count; j++)
            for (size_t k = i + 1; k < NDOMAIN_LISTS; k++)
                if (strlist_contains(&dir->lists[k].names, dir->lists[i].names.items[j]))
                    msg_warn("do not list domain %s in BOTH %s and %s; it is treated as %s",
                             dir->lists[i].names.items[j], dir->lists[i].param,
                             dir->lists[k].param, domain_class_name((enum domain_class) i));
}

/* directory_open - the domain lists and address tables main.cf names */
struct directory *directory_open(struct config *cfg, struct strbuf *err)
{
    struct directory *dir = xcalloc(1, sizeof(*dir));
    struct strbuf origin = STRBUF_INIT;

    sb_reset(err);
    for (size_t i = 0; i < NDOMAIN_LISTS; i++)
        if (open_domain_list(cfg, &dir->lists[i], domain_params[i], err) < 0)
            goto fail;
    if ((dir->mailbox_maps = open_maps(cfg, "virtual_mailbox_maps", err)) == NULL)
        goto fail;
    if ((dir->alias_maps = open_maps(cfg, "virtual_alias_maps", err)) == NULL)
        goto fail;
    norm_domain(&origin, config_str(cfg, "myorigin"));
    dir->myorigin = sb_detach(&origin);
    dir->expand_limit = optional_limit(cfg, "virtual_alias_expansion_limit", EXPAND_LIMIT);
    dir->recursion_limit = optional_limit(cfg, "virtual_alias_recursion_limit", RECURSION_LIMIT);
    warn_overlaps(dir);
    return dir;

fail:
    directory_close(dir);
    return NULL;
}

/* directory_close - release tables and names */
void directory_close(struct directory *dir)
{
    if (dir == NULL)
        return;
    for (size_t i = 0; i < NDOMAIN_LISTS; i++) {
        strlist_free(&dir->lists[i].names);
        maplist_close(dir->lists[i].tables);
    }
    maplist_close(dir->mailbox_maps);
    maplist_close(dir->alias_maps);
    free(dir->myorigin);
    free(dir);
}

/* directory_watch - every table we opened retires the service when replaced beyond reach */
void directory_watch(struct directory *dir, struct service *svc)
{
    for (size_t i = 0; i < NDOMAIN_LISTS; i++)
        if (!maplist_empty(dir->lists[i].tables))
            service_watch_maps(svc, dir->lists[i].tables);
    if (!maplist_empty(dir->mailbox_maps))
        service_watch_maps(svc, dir->mailbox_maps);
    if (!maplist_empty(dir->alias_maps))
        service_watch_maps(svc, dir->alias_maps);
}

bool directory_refresh(struct directory *dir)
{
    bool    stale = false;

    for (size_t i = 0; i < NDOMAIN_LISTS; i++)
        if (!maplist_empty(dir->lists[i].tables) && maplist_refresh(dir->lists[i].tables))
            stale = true;
    if (!maplist_empty(dir->mailbox_maps) && maplist_refresh(dir->mailbox_maps))
        stale = true;
    if (!maplist_empty(dir->alias_maps) && maplist_refresh(dir->alias_maps))
        stale = true;
    return stale;
}

/* in_list - 1 listed, 0 not, -1 a table failed (logged) */
static int in_list(struct domain_list *dl, const char *domain)
{
    struct strbuf value = STRBUF_INIT;
    enum map_status st;

    if (strlist_contains(&dl->names, domain))
        return 1;
    st = maplist_lookup(dl->tables, domain, &value);
    if (st == MAP_TEMPFAIL)
        msg_warn("%s: lookup of %s failed: %s", dl->param, domain, sb_str(&value));
    sb_free(&value);
    return st == MAP_FOUND ? 1 : st == MAP_TEMPFAIL ? -1 : 0;
}

/* classify_norm - classify an already normalized domain */
static enum directory_status classify_norm(struct directory *dir, const char *domain,
                                           enum domain_class *cls)
{
    *cls = DOMAIN_OTHER;
    if (*domain == '\0')
        return DIRECTORY_OK;
    for (size_t i = 0; i < NDOMAIN_LISTS; i++) {
        switch (in_list(&dir->lists[i], domain)) {
        case 1:
            *cls = (enum domain_class) i;
            return DIRECTORY_OK;
        case -1:
            return DIRECTORY_TEMPFAIL;
        }
    }
    return DIRECTORY_OK;
}

/* directory_classify - the class of a domain, first of local, alias, mailbox, relay */
enum directory_status directory_classify(struct directory *dir, const char *domain,
                                         enum domain_class *cls)
{
    struct strbuf norm = STRBUF_INIT;
    enum directory_status st;

    norm_domain(&norm, domain ? domain : "");
    st = classify_norm(dir, sb_str(&norm), cls);
    sb_free(&norm);
    return st;
}

/*
 * split_address - local part, normalized domain and the user@domain key; the
 * domain starts after the last '@' (a quoted local part may hold one).
 * Without '@' the domain is empty and the key is the address as it is.
 */
static void split_address(const char *address, struct strbuf *local, struct strbuf *domain,
                          struct strbuf *key)
{
    const char *at = strrchr(address, '@');

    sb_reset(local);
    sb_reset(key);
    if (at == NULL) {
        sb_puts(local, address);
        sb_reset(domain);
        sb_puts(key, address);
        return;
    }
    sb_append(local, address, (size_t) (at - address));
    norm_domain(domain, at + 1);
    sb_printf(key, "%s@%s", sb_str(local), sb_str(domain));
}

/* lookup_key - maplist lookup with the key built in a scratch buffer */
static enum map_status lookup_key(struct maplist *list, struct strbuf *key, struct strbuf *value)
{
    return maplist_lookup(list, sb_str(key), value);
}

/* directory_mailbox - virtual_mailbox_maps: user@domain, then @domain */
enum map_status directory_mailbox(struct directory *dir, const char *address, struct strbuf *path)
{
    struct strbuf local = STRBUF_INIT, domain = STRBUF_INIT, key = STRBUF_INIT;
    enum map_status st;

    split_address(address, &local, &domain, &key);
    st = lookup_key(dir->mailbox_maps, &key, path);
    if (st == MAP_NOTFOUND && sb_len(&domain) > 0) {
        sb_reset(&key);
        sb_printf(&key, "@%s", sb_str(&domain));
        st = lookup_key(dir->mailbox_maps, &key, path);
    }
    sb_free(&local);
    sb_free(&domain);
    sb_free(&key);
    return st;
}

/* directory_alias - virtual_alias_maps: user@domain, user (mydestination, myorigin), @domain */
enum map_status directory_alias(struct directory *dir, const char *address, struct strbuf *dests)
{
    struct strbuf local = STRBUF_INIT, domain = STRBUF_INIT, key = STRBUF_INIT;
    enum domain_class cls;
    enum map_status st;

    split_address(address, &local, &domain, &key);
    st = lookup_key(dir->alias_maps, &key, dests);
    /* The bare "user" form is Postfix's, for local domains and myorigin only. */
    if (st == MAP_NOTFOUND && sb_len(&local) > 0 && sb_len(&domain) > 0) {
        if (strcmp(sb_str(&domain), dir->myorigin) == 0) {
            st = lookup_key(dir->alias_maps, &local, dests);
        } else if (classify_norm(dir, sb_str(&domain), &cls) != DIRECTORY_OK) {
            sb_set(dests, "");
            sb_printf(dests, "cannot classify domain %s: a domain table lookup failed "
                      "(see the warning logged)", sb_str(&domain));
            st = MAP_TEMPFAIL;
        } else if (cls == DOMAIN_LOCAL) {
            st = lookup_key(dir->alias_maps, &local, dests);
        }
    }
    if (st == MAP_NOTFOUND && sb_len(&domain) > 0) {
        sb_reset(&key);
        sb_printf(&key, "@%s", sb_str(&domain));
        st = lookup_key(dir->alias_maps, &key, dests);
    }
    sb_free(&local);
    sb_free(&domain);
    sb_free(&key);
    return st;
}

/*
 * split_dests - the addresses of an alias value: separated by commas and/or
 * white space outside double quotes (a quoted local part may hold either).
 */
static void split_dests(const char *text, struct strlist *out)
{
    struct strbuf item = STRBUF_INIT;
    const char *p = text;

    while (*p) {
        bool    quoted = false;

        while (*p == ',' || *p == ' ' || *p == '\t' || *p == '\r' || *p == '\n')
            p++;
        if (*p == '\0')
            break;
        sb_reset(&item);
        for (; *p; p++) {
            if (*p == '\\' && quoted && p[1]) {
                sb_putc(&item, *p++);
            } else if (*p == '"') {
                quoted = !quoted;
            } else if (!quoted && (*p == ',' || *p == ' ' || *p == '\t' || *p == '\r'
                                   || *p == '\n')) {
                break;
            }
            sb_putc(&item, *p);
        }
        strlist_add(out, sb_str(&item));
    }
    sb_free(&item);
}

/* State of one directory_expand(). */
struct expansion {
    struct directory *dir;
    struct strlist *out;
    size_t  base;                       /* out's items before this expansion */
    struct strlist path;                /* addresses being expanded, outermost first */
    struct strlist done;                /* addresses fully expanded */
    long    lookups;
    struct strbuf *err;
};

/* add_final - a final recipient, unless this expansion has it; PERMFAIL past the limit */
static enum directory_status add_final(struct expansion *ex, const char *address)
{
    for (size_t i = ex->base; i < ex->out->count; i++)
        if (strcasecmp(ex->out->items[i], address) == 0)
            return DIRECTORY_OK;
    if ((long) (ex->out->count - ex->base) >= ex->dir->expand_limit) {
        sb_printf(ex->err, "virtual_alias_expansion_limit exceeded: more than %ld recipients",
                  ex->dir->expand_limit);
        return DIRECTORY_PERMFAIL;
    }
    strlist_add(ex->out, address);
    return DIRECTORY_OK;
}

/* qualify - "user" gets "@myorigin", as Postfix's canonicalization appends it */
static void qualify(struct directory *dir, const char *address, struct strbuf *out)
{
    sb_set(out, address);
    if (strchr(address, '@') == NULL)
        sb_printf(out, "@%s", dir->myorigin);
}

/* expand - one address at depth levels below the original */
static enum directory_status expand(struct expansion *ex, const char *address, int depth)
{
    struct strbuf value = STRBUF_INIT, dest = STRBUF_INIT;
    struct strlist dests = STRLIST_INIT;
    enum directory_status st = DIRECTORY_OK;
    enum map_status ms;

    if (strlist_contains_nocase(&ex->path, address)) {
        sb_printf(ex->err, "virtual alias loop for %s", address);
        return DIRECTORY_PERMFAIL;
    }
    if (strlist_contains_nocase(&ex->done, address))
        return DIRECTORY_OK;
    if (depth > ex->dir->recursion_limit) {
        sb_printf(ex->err, "virtual alias recursion limit (%ld levels) exceeded at %s",
                  ex->dir->recursion_limit, address);
        return DIRECTORY_PERMFAIL;
    }
    if (++ex->lookups > LOOKUP_LIMIT) {
        sb_printf(ex->err, "virtual_alias_expansion_limit exceeded: more than %d alias lookups",
                  LOOKUP_LIMIT);
        return DIRECTORY_PERMFAIL;
    }
    ms = directory_alias(ex->dir, address, &value);
    if (ms == MAP_TEMPFAIL) {
        sb_printf(ex->err, "virtual_alias_maps lookup of %s failed: %s", address, sb_str(&value));
        st = DIRECTORY_TEMPFAIL;
    } else if (ms == MAP_NOTFOUND) {
        st = add_final(ex, address);
    } else {
        split_dests(sb_str(&value), &dests);
        /* Losing the mail without a trace would be worse than bouncing it. */
        if (dests.count == 0) {
            sb_printf(ex->err, "virtual alias for %s has no destinations", address);
            st = DIRECTORY_PERMFAIL;
        }
        strlist_add(&ex->path, address);
        for (size_t i = 0; st == DIRECTORY_OK && i < dests.count; i++) {
            qualify(ex->dir, dests.items[i], &dest);
            if (strcasecmp(sb_str(&dest), address) == 0)
                st = add_final(ex, address);
            else
                st = expand(ex, sb_str(&dest), depth + 1);
        }
        free(ex->path.items[--ex->path.count]);
    }
    if (st == DIRECTORY_OK)
        strlist_add(&ex->done, address);
    sb_free(&value);
    sb_free(&dest);
    strlist_free(&dests);
    return st;
}

/* directory_expand - final recipients after recursive aliasing */
enum directory_status directory_expand(struct directory *dir, const char *address,
                                       struct strlist *out, struct strbuf *err)
{
    struct expansion ex = { dir, out, out->count, STRLIST_INIT, STRLIST_INIT, 0, err };
    struct strbuf addr = STRBUF_INIT;
    enum directory_status st;

    sb_reset(err);
    qualify(dir, address, &addr);
    st = expand(&ex, sb_str(&addr), 0);
    strlist_free(&ex.path);
    strlist_free(&ex.done);
    sb_free(&addr);
    return st;
}

/* domain_class_name - for logs and postctl */
const char *domain_class_name(enum domain_class cls)
{
    switch (cls) {
    case DOMAIN_LOCAL:
        return "local";
    case DOMAIN_ALIAS:
        return "alias";
    case DOMAIN_MAILBOX:
        return "mailbox";
    case DOMAIN_RELAY:
        return "relay";
    case DOMAIN_OTHER:
        return "other";
    }
    return "unknown";
}
